//! Runs one manifest: network, validators, recorders, load, the timeline of
//! perturbations; then settles and checks what the manifest expects. The
//! [`Report`] holds every figure measured and every failed expectation.

use crate::http::{get, Recorders};
use crate::load::{Load, LoadSpec, Sent};
use crate::manifest::{Kind, Manifest, Perturb};
use crate::net::Net;
use crate::node::{http_addr, tail, Cluster};
use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod attack;
mod byz;
mod links;
mod observe;
mod steps;

use observe::{check_readiness, common_height, max_height_by, observations, quantile};
use steps::{apply, check_alerts, loadavg, machine_lock, run_dir, run_priority, sleep_until};
pub use steps::{grep_logs, utc_now};

/// What a run measured, and what failed.
#[derive(Debug, Default)]
pub struct Report {
    pub name: String,
    pub dir: PathBuf,
    pub lines: Vec<String>,
    pub failures: Vec<String>,
}

impl Report {
    fn note(&mut self, s: String) {
        eprintln!("[{}] {s}", self.name);
        self.lines.push(s);
    }
    fn fail(&mut self, s: String) {
        eprintln!("[{}] FAIL: {s}", self.name);
        self.failures.push(s);
    }
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "scenario {} (files: {})", self.name, self.dir.display())?;
        for l in &self.lines {
            writeln!(f, "  {l}")?;
        }
        for l in &self.failures {
            writeln!(f, "  FAIL: {l}")?;
        }
        write!(f, "  {}", if self.passed() { "PASSED" } else { "FAILED" })
    }
}

/// Runs the manifest; `Err` for a harness failure (setup), `Ok(report)` otherwise.
pub fn run(m: &Manifest) -> anyhow::Result<Report> {
    let _lock = machine_lock()?;
    let nice = run_priority()?;
    let dir = run_dir(&m.name);
    let mut report = Report {
        name: m.name.clone(),
        dir: dir.clone(),
        ..Report::default()
    };
    let n = m.validators;
    let seed_num = m.seed.as_deref().map_or(0x5eed, |s| {
        s.bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
    });
    let net = Net::create(n, seed_num).context("creating the network")?;
    let mut cluster = Cluster::prepare(&dir, n, &m.set)?;
    for p in &m.perturb {
        if p.kind == Kind::ClockSkew && p.at_s == 0.0 {
            cluster.validators[p.node.unwrap_or(0)].faketime = p.offset.clone();
        }
    }
    byz::configure(&mut cluster, &m.byzantine)?;
    let setup = Instant::now();
    for i in 0..n {
        cluster.start(&net, i)?;
    }
    cluster.wait_live(Duration::from_secs(60))?;
    let addrs: Vec<_> = (0..n).map(http_addr).collect();
    let rec = Recorders::start(&addrs, Duration::from_millis(100));
    // The chain is moving on every validator before the timeline starts.
    let ready_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let heights: Vec<u64> = (0..n)
            .map(|i| crate::http::status(i, addrs[i]).map_or(0, |s| s.height))
            .collect();
        if heights.iter().all(|h| *h >= 2) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < ready_deadline,
            "the chain did not start within 60 s: heights {heights:?}; node-0 log:\n{}",
            tail(&cluster.validators[0].log, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let prom = if m.prometheus {
        Some(crate::prom::Prometheus::start(
            &dir.join("prometheus"),
            n,
            m.prometheus_interval_s.unwrap_or(2),
        )?)
    } else {
        None
    };
    report.note(format!(
        "start-up to height 2 on all: {:.1} s; load average {}; nice {nice}",
        setup.elapsed().as_secs_f64(),
        loadavg()
    ));

    let t0 = Instant::now();
    let at = |s: f64| t0 + Duration::from_secs_f64(s);
    let seed = m
        .seed
        .clone()
        .unwrap_or_else(|| format!("{}-{}", m.name, std::process::id()));
    let load = m.load.as_ref().map(|l| {
        Load::start(
            &LoadSpec {
                rate: l.rate,
                start: Duration::from_secs_f64(l.start_s),
                stop: Duration::from_secs_f64(l.stop_s),
                targets: l.targets.clone().unwrap_or_else(|| (0..n).collect()),
                seed: seed.clone(),
            },
            t0,
        )
    });

    let attacks = attack::Attacks::start(m, t0)?;
    // The timeline.
    let mut perturb = m.perturb.clone();
    perturb.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let mut resumes: Vec<(Instant, usize)> = Vec::new();
    let mut applied: Vec<(f64, String)> = Vec::new();
    let mut heal_times: Vec<links::Applied> = Vec::new();
    report.note(format!("t=0 is UTC {}", utc_now()));
    for p in &perturb {
        if p.kind == Kind::ClockSkew && p.at_s == 0.0 {
            applied.push((
                0.0,
                format!(
                    "clock_skew node {} {}",
                    p.node.unwrap_or(0),
                    p.offset.as_deref().unwrap_or("")
                ),
            ));
            continue;
        }
        sleep_until(at(p.at_s), &mut resumes, &mut cluster);
        let what = apply(p, &net, &mut cluster, load.as_ref(), &addrs)
            .with_context(|| format!("applying {p:?}"))?;
        if let (Kind::Pause, Some(f)) = (p.kind, p.for_s) {
            if let Some(node) = what.1 {
                resumes.push((Instant::now() + Duration::from_secs_f64(f), node));
            }
        }
        let t = t0.elapsed().as_secs_f64();
        applied.push((t, format!("{} (UTC {})", what.0, utc_now())));
        heal_times.push((p.kind, utc_now(), p.groups.clone()));
    }
    sleep_until(at(m.duration_s), &mut resumes, &mut cluster);
    while !resumes.is_empty() {
        sleep_until(
            Instant::now() + Duration::from_millis(100),
            &mut resumes,
            &mut cluster,
        );
    }
    for (t, w) in &applied {
        report.note(format!("t={t:.1}s {w}"));
    }
    let sent: Vec<Sent> = load.map(Load::join).unwrap_or_default();
    attacks.finish(m, &mut report);
    let end_of_timeline = Instant::now();
    report.note(format!(
        "load average at the end of the timeline: {}",
        loadavg()
    ));

    // Validators that died on their own.
    for i in 0..n {
        if let Some(st) = cluster.exited(i) {
            report.fail(format!(
                "validator {i} exited by itself ({st}); log tail:\n{}",
                tail(&cluster.validators[i].log, 20)
            ));
        }
    }

    // Settle: every accepted proof in some validator's /events, within settle_s.
    let accepted: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.status == 202 && s.proof_id.is_some())
        .collect();
    let settle_deadline = Instant::now() + Duration::from_secs_f64(m.settle_s);
    let final_ids = |rec: &crate::http::Record| -> HashMap<String, Instant> {
        let mut h: HashMap<String, Instant> = HashMap::new();
        for b in &rec.blocks {
            for id in &b.proof_ids {
                h.entry(id.clone())
                    .and_modify(|t| *t = (*t).min(b.at))
                    .or_insert(b.at);
            }
        }
        h
    };
    let end_height = max_height_by(&observations(&rec.lock()), end_of_timeline, None);
    loop {
        let (done, common) = {
            let r = rec.lock();
            let ids = final_ids(&r);
            let done = accepted
                .iter()
                .all(|s| s.proof_id.as_ref().is_some_and(|id| ids.contains_key(id)));
            (done, common_height(&observations(&r), n, end_height))
        };
        if (done && common.is_some()) || Instant::now() > settle_deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let settled = end_of_timeline.elapsed();

    // ---- figures and checks ------------------------------------------------
    let rec_guard = rec.lock();
    let obs = observations(&rec_guard);
    let ids = final_ids(&rec_guard);
    byz::check_foreign(&mut report, &ids, &sent, &seed);
    let rejected: BTreeSet<&String> = rec_guard
        .blocks
        .iter()
        .flat_map(|b| b.rejected.iter())
        .collect();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for s in &sent {
        *by_status.entry(s.status).or_default() += 1;
    }
    report.note(format!(
        "load: {} sent, answers by status {:?} (0 = no answer: refused or timed out)",
        sent.len(),
        by_status
    ));
    let mut lat: Vec<f64> = accepted
        .iter()
        .filter_map(|s| {
            ids.get(s.proof_id.as_ref()?)
                .map(|t| t.saturating_duration_since(s.start).as_secs_f64())
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    if !lat.is_empty() {
        report.note(format!(
            "finality (request → first /events block holding it): p50 {:.2} s, p99 {:.2} s, max {:.2} s over {} proofs",
            quantile(&lat, 0.5),
            quantile(&lat, 0.99),
            lat[lat.len() - 1],
            lat.len()
        ));
    }
    let lost: Vec<&&Sent> = accepted
        .iter()
        .filter(|s| s.proof_id.as_ref().is_some_and(|id| !ids.contains_key(id)))
        .collect();
    report.note(format!(
        "accepted (202): {}, finalized: {}, rejected at execution: {}, lost: {} (settled {:.1} s after the timeline)",
        accepted.len(),
        accepted.len() - lost.len(),
        accepted.iter().filter(|s| s.proof_id.as_ref().is_some_and(|i| rejected.contains(i))).count(),
        lost.len(),
        settled.as_secs_f64()
    ));
    if !lost.is_empty() {
        // What each validator says of the lost proofs now.
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        for s in lost.iter().take(200) {
            let id = s.proof_id.as_deref().unwrap_or("");
            let mut who = Vec::new();
            for (i, a) in addrs.iter().enumerate() {
                let st = match get(*a, &format!("/proof/{id}")) {
                    Ok(r) if r.status == 200 => r
                        .json()
                        .and_then(|v| v["status"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| "200?".into()),
                    Ok(r) => r.status.to_string(),
                    Err(_) => "down".into(),
                };
                who.push(format!("{i}:{st}"));
            }
            *states
                .entry(format!(
                    "sent to {} → GET /proof: {}",
                    s.node,
                    who.join(" ")
                ))
                .or_default() += 1;
        }
        for (k, v) in &states {
            report.note(format!("lost ×{v}: {k}"));
        }
        let by_node = lost
            .iter()
            .fold(BTreeMap::new(), |mut m: BTreeMap<usize, usize>, s| {
                *m.entry(s.node).or_default() += 1;
                m
            });
        report.note(format!(
            "lost by the validator that answered 202: {by_node:?}"
        ));
        let times: Vec<String> = lost
            .iter()
            .take(30)
            .map(|s| format!("{:.2}", s.end.saturating_duration_since(t0).as_secs_f64()))
            .collect();
        report.note(format!(
            "lost proofs' 202 answers at t = {} s",
            times.join(", ")
        ));
    }
    let e = &m.expect;
    let lost_max = e.lost_max.unwrap_or(0);
    if lost.len() > lost_max {
        report.fail(format!(
            "{} accepted proofs never finalized (allowed {lost_max})",
            lost.len()
        ));
    }
    if !sent.is_empty() {
        let frac = accepted.len() as f64 / sent.len() as f64;
        let min = e.accepted_min_fraction.unwrap_or(0.5);
        if frac < min {
            report.fail(format!(
                "only {:.0}% of proofs answered 202 (need {:.0}%)",
                frac * 100.0,
                min * 100.0
            ));
        }
    }
    if let (Some(max), false) = (e.finality_p99_max_s, lat.is_empty()) {
        let p99 = quantile(&lat, 0.99);
        if p99 > max {
            report.fail(format!("finality p99 {p99:.2} s > {max} s"));
        }
    }

    // Forks: one root per height across every observation.
    let mut roots: BTreeMap<u64, BTreeMap<String, BTreeSet<usize>>> = BTreeMap::new();
    for o in &obs {
        roots
            .entry(o.height)
            .or_default()
            .entry(o.root.clone())
            .or_default()
            .insert(o.node);
    }
    let forks: Vec<_> = roots.iter().filter(|(_, r)| r.len() > 1).collect();
    if let Some((h, r)) = forks.first() {
        report.fail(format!(
            "FORK: {} heights with two roots; first: height {h}: {r:?}",
            forks.len()
        ));
    }
    match common_height(&obs, n, end_height) {
        Some((h, root)) => report.note(format!(
            "all {n} validators at height {h} with one state_root {}… (timeline ended at height {end_height})",
            &root[..16.min(root.len())]
        )),
        None => {
            let last: Vec<u64> = (0..n).map(|i| max_height_by(&obs, Instant::now(), Some(i))).collect();
            report.fail(format!(
                "no height ≥ {end_height} reported by every validator (last heights {last:?})"
            ));
        }
    }

    // Windows.
    if let Some(w) = &e.halt {
        let from = at(w.from_s + w.grace_s.unwrap_or(1.0));
        let before = max_height_by(&obs, from, None);
        let during = max_height_by(&obs, at(w.to_s), None);
        report.note(format!(
            "halt window {:.0}–{:.0} s: max height {before} at its start, {during} at its end",
            w.from_s, w.to_s
        ));
        if during > before {
            report.fail(format!(
                "{} height(s) finalized during the halt window {}–{} s",
                during - before,
                w.from_s,
                w.to_s
            ));
        }
    }
    if let Some(r) = &e.resume {
        let after = at(r.after_s);
        let base = max_height_by(&obs, after, None);
        let nodes = r.nodes.clone().unwrap_or_else(|| (0..n).collect());
        let mut delays = Vec::new();
        for i in &nodes {
            let first = obs
                .iter()
                .find(|o| o.node == *i && o.at > after && o.height > base);
            let d = first.map(|o| (o.at - after).as_secs_f64());
            delays.push((*i, d));
            match d {
                Some(d) if d <= r.within_s => {}
                Some(d) => report.fail(format!(
                    "validator {i} finalized its first height above {base} {d:.1} s after t={} s (allowed {} s)",
                    r.after_s, r.within_s
                )),
                None => report.fail(format!("validator {i} never finalized a height above {base} after t={} s", r.after_s)),
            }
        }
        report.note(format!(
            "resume after t={} s: first height above {base} per validator after {}",
            r.after_s,
            delays
                .iter()
                .map(|(i, d)| format!("{i}: {}", d.map_or("never".into(), |d| format!("{d:.1} s"))))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    check_readiness(&mut report, &e.readiness, &rec_guard.status, t0);
    for p in &e.progress {
        let who: Vec<Option<usize>> = p
            .nodes
            .as_ref()
            .map_or_else(|| vec![None], |v| v.iter().copied().map(Some).collect());
        let mut got = Vec::new();
        for i in who {
            let a = max_height_by(&obs, at(p.from_s), i);
            let b = max_height_by(&obs, at(p.to_s), i);
            let name = i.map_or("the chain".to_owned(), |i| format!("validator {i}"));
            got.push(format!("{name}: {}", b.saturating_sub(a)));
            if b.saturating_sub(a) < p.min_heights {
                report.fail(format!(
                    "{name} finalized {} heights in {}–{} s (need {})",
                    b.saturating_sub(a),
                    p.from_s,
                    p.to_s,
                    p.min_heights
                ));
            }
        }
        report.note(format!(
            "heights finalized in {}–{} s: {}",
            p.from_s,
            p.to_s,
            got.join(", ")
        ));
    }
    // Heights per 5 s, all validators: where the chain stalled.
    let mut line = String::new();
    let mut s = 0.0;
    while s < m.duration_s {
        let a = max_height_by(&obs, at(s), None);
        let b = max_height_by(&obs, at((s + 5.0).min(m.duration_s)), None);
        let _ = write!(line, "{}", b.saturating_sub(a));
        line.push(' ');
        s += 5.0;
    }
    report.note(format!("new heights per 5 s: {line}"));
    let peers: Vec<String> = (0..n)
        .map(|i| {
            rec_guard
                .status
                .iter()
                .rev()
                .find(|s| s.node == i)
                .map_or("?".into(), |s| {
                    format!("{i}:{} peers r{}", s.peers, s.round)
                })
        })
        .collect();
    report.note(format!("last /status: {}", peers.join(", ")));
    if !rec_guard.lagged.is_empty() {
        report.note(format!("/events lagged: {:?}", rec_guard.lagged));
    }
    let c = net.counters();
    report.note(format!(
        "router: {} packets forwarded, {} blocked, {} lost, {} delayed",
        c.forwarded.load(std::sync::atomic::Ordering::Relaxed),
        c.blocked.load(std::sync::atomic::Ordering::Relaxed),
        c.lost.load(std::sync::atomic::Ordering::Relaxed),
        c.delayed.load(std::sync::atomic::Ordering::Relaxed)
    ));
    if let Some(p) = &prom {
        let seen = p.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let log: String = seen
            .iter()
            .map(|s| {
                format!(
                    "{:.1} {:?}\n",
                    s.at.saturating_duration_since(t0).as_secs_f64(),
                    s.alerts
                )
            })
            .collect();
        let _ = std::fs::write(dir.join("prometheus/alerts.log"), log);
        check_alerts(&mut report, &e.alert, &seen, t0, end_of_timeline, n);
    }
    drop(prom);
    drop(rec_guard);
    drop(rec);
    links::report_reconnects(&mut report, &heal_times, &cluster);
    byz::check(&mut report, &e.byzantine, &cluster, &addrs);
    if e.links_closed_before_heal {
        links::check_logs(&mut report, &heal_times, &cluster);
    }
    cluster.kill_all();
    drop(net);
    let _ = std::fs::write(dir.join("report.txt"), format!("{report}\n"));
    if report.passed() && std::env::var_os("STEP_E2E_KEEP").is_none() {
        // Keep the logs only of failed runs (and on request).
        for v in &cluster.validators {
            let _ = std::fs::remove_dir_all(v.dir.join("wal"));
            let _ = std::fs::remove_file(v.dir.join("store.redb"));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::observe::Obs;
    use super::*;

    #[test]
    fn utc_now_looks_like_the_logs() {
        let t = utc_now();
        assert_eq!(t.len(), 23, "{t}");
        assert!(
            t.starts_with("20") && &t[10..11] == "T" && &t[19..20] == ".",
            "{t}"
        );
    }

    #[test]
    fn common_height_needs_every_validator() {
        let now = Instant::now();
        let o = |node, height| Obs {
            node,
            height,
            root: format!("r{height}"),
            at: now,
        };
        let obs = vec![o(0, 5), o(1, 5), o(0, 6), o(1, 7), o(0, 7)];
        assert_eq!(common_height(&obs, 2, 0), Some((7, "r7".into())));
        assert_eq!(common_height(&obs, 3, 0), None);
        assert_eq!(common_height(&obs, 2, 8), None);
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), 2.0);
    }
}
