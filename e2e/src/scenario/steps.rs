//! The run's steps besides the timeline loop: its directory and lock,
//! perturbations, log search, clocks, and the alert checks.

use super::*;

/// The run directory: `$STEP_E2E_DIR/<name>-<pid>-<ms>` (default under target/e2e).
pub(super) fn run_dir(name: &str) -> PathBuf {
    let base = std::env::var("STEP_E2E_DIR").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e"),
        PathBuf::from,
    );
    let ms = step_engine::pipeline::unix_now_ms();
    base.join(format!("{name}-{}-{ms}", std::process::id()))
}

/// One harness run at a time per machine (the addresses are fixed).
pub(super) fn machine_lock() -> anyhow::Result<std::fs::File> {
    #![allow(unsafe_code)]
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/step-e2e.lock")?;
    // SAFETY: flock on an fd we own; blocks until the other run ends.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        anyhow::bail!(
            "flock /tmp/step-e2e.lock: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(f)
}

/// The nice value the harness, its router threads and the validators run at:
/// `$STEP_E2E_NICE`, default -10. On a shared machine unrelated builds
/// (nice 0) would otherwise take most of the CPU from the validators and the
/// userspace router, and a scenario would measure the machine's contention
/// rather than the fault (docs/adr/0025-e2e-priority-and-vote-timeouts.md).
/// `0` leaves the priority alone.
pub(super) fn run_priority() -> anyhow::Result<i32> {
    #![allow(unsafe_code)]
    let nice: i32 = match std::env::var("STEP_E2E_NICE") {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("STEP_E2E_NICE={v:?} is not an integer"))?,
        Err(_) => -10,
    };
    if nice != 0 {
        // SAFETY: setpriority has no memory preconditions; `0` is this thread,
        // whose value every thread and process started after it inherits.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
            anyhow::bail!(
                "setpriority({nice}) (STEP_E2E_NICE; 0 to leave the priority alone): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(nice)
}

/// Sleeps until `t`, sending the due SIGCONTs of timed pauses on the way.
pub(super) fn sleep_until(t: Instant, resumes: &mut Vec<(Instant, usize)>, cluster: &mut Cluster) {
    loop {
        let now = Instant::now();
        resumes.retain(|(when, i)| {
            if *when <= now {
                let _ = cluster.resume(*i);
                false
            } else {
                true
            }
        });
        if now >= t {
            return;
        }
        let next = resumes.iter().map(|r| r.0).min().unwrap_or(t).min(t);
        std::thread::sleep(
            next.saturating_duration_since(now)
                .min(Duration::from_millis(50)),
        );
    }
}

/// Applies one perturbation; returns what it did and the node it paused.
pub(super) fn apply(
    p: &Perturb,
    net: &Net,
    cluster: &mut Cluster,
    load: Option<&Load>,
    addrs: &[std::net::SocketAddr],
) -> anyhow::Result<(String, Option<usize>)> {
    let n = cluster.validators.len();
    let node = p.node.unwrap_or(0);
    Ok(match p.kind {
        Kind::Kill => {
            let mut extra = String::new();
            if let (Some(k), Some(l)) = (p.after_accepted, load) {
                let deadline = Instant::now() + Duration::from_secs(30);
                while l.accepted_by(node) < k && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                extra = format!(" after it had answered {} 202s", l.accepted_by(node));
            }
            cluster.kill(node)?;
            (format!("kill node {node}{extra}"), None)
        }
        Kind::Restart => {
            cluster.start(net, node)?;
            (format!("restart node {node}"), None)
        }
        Kind::Pause => {
            let target = if p.proposer {
                let h = crate::http::status(0, addrs[0]).map_or(0, |s| s.height);
                // The next height's round-0 proposer.
                cluster.proposer(h + 1, 0)
            } else {
                node
            };
            cluster.pause(target)?;
            (
                format!(
                    "pause node {target}{}{}",
                    if p.proposer {
                        " (proposer of the next height)"
                    } else {
                        ""
                    },
                    p.for_s.map_or(String::new(), |f| format!(" for {f} s"))
                ),
                Some(target),
            )
        }
        Kind::Resume => {
            cluster.resume(node)?;
            (format!("resume node {node}"), None)
        }
        Kind::Disconnect => {
            for j in (0..n).filter(|j| *j != node) {
                net.set_pair(node, j, |l| l.blocked = true);
            }
            (format!("disconnect node {node}"), None)
        }
        Kind::Partition => {
            let groups = p.groups.clone().unwrap_or_default();
            let group_of = |i: usize| groups.iter().position(|g| g.contains(&i));
            for a in 0..n {
                for b in (a + 1)..n {
                    if group_of(a) != group_of(b) {
                        net.set_pair(a, b, |l| l.blocked = true);
                    }
                }
            }
            (format!("partition {groups:?}"), None)
        }
        Kind::Heal => {
            net.set_all(n, |l| l.blocked = false);
            ("heal".into(), None)
        }
        Kind::Delay => {
            let (ms, j) = (p.ms.unwrap_or(0.0), p.jitter_ms.unwrap_or(0.0));
            net.set_all(n, |l| {
                l.delay_ms = ms;
                l.jitter_ms = j;
            });
            (format!("delay {ms} ms ± {j} ms on every link"), None)
        }
        Kind::Loss => {
            let pct = p.percent.unwrap_or(0.0);
            net.set_all(n, |l| l.loss = pct / 100.0);
            (format!("loss {pct}% on every link"), None)
        }
        Kind::ClockSkew => {
            if cluster.running(node) {
                cluster.kill(node)?;
            }
            cluster.validators[node].faketime = p.offset.clone();
            cluster.start(net, node)?;
            (
                format!(
                    "clock_skew node {node} {} (restarted)",
                    p.offset.as_deref().unwrap_or("")
                ),
                None,
            )
        }
    })
}

/// The validator logs' lines matching any of `needles` (for diagnosis).
pub fn grep_logs(report: &Report, n: usize, needles: &[&str], max: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let p = report.dir.join(format!("node-{i}/node.log"));
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        for l in text
            .lines()
            .filter(|l| needles.iter().any(|x| l.contains(x)))
        {
            if out.len() < max {
                out.push(format!("node-{i}: {l}"));
            }
        }
    }
    out
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmm` UTC (the validators' log timestamps' prefix).
pub fn utc_now() -> String {
    let now = step_engine::proof::Timestamp::from_unix_ms(step_engine::pipeline::unix_now_ms())
        .expect("the wall clock reads a year in 0000-9999");
    now.as_str().trim_end_matches('Z').to_owned()
}

/// `/proc/loadavg`'s 1, 5 and 15 min figures (the runs share their CPUs).
pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The alert expectations against what Prometheus reported over time.
pub(super) fn check_alerts(
    report: &mut Report,
    want: &[crate::manifest::AlertExpect],
    seen: &[crate::prom::AlertsSeen],
    t0: Instant,
    end: Instant,
    n: usize,
) {
    let at = |s: f64| t0 + Duration::from_secs_f64(s);
    let firing = |s: &crate::prom::AlertsSeen, name: &str| -> BTreeSet<String> {
        s.alerts
            .iter()
            .filter(|(a, _, st)| a == name && st == "firing")
            .map(|(_, i, _)| i.clone())
            .collect()
    };
    // Every alert that fired, with first and last time.
    let mut spans: BTreeMap<String, (f64, f64, usize)> = BTreeMap::new();
    for s in seen {
        for (a, _, st) in &s.alerts {
            if st == "firing" {
                let t = s.at.saturating_duration_since(t0).as_secs_f64();
                let e = spans.entry(a.clone()).or_insert((t, t, 0));
                e.1 = t;
                e.2 = e.2.max(firing(s, a).len());
            }
        }
    }
    report.note(format!(
        "prometheus alerts firing (first s, last s, most instances at once): {spans:?} over {} polls",
        seen.len()
    ));
    for w in want {
        let min = w.min_instances.unwrap_or(n);
        let [from, to] = w.fires_between;
        let early: Vec<f64> = seen
            .iter()
            .filter(|s| s.at < at(from) && !firing(s, &w.name).is_empty())
            .map(|s| s.at.saturating_duration_since(t0).as_secs_f64())
            .collect();
        if let Some(t) = early.first() {
            report.fail(format!("{} fired at {t:.1} s, before {from} s", w.name));
        }
        let first = seen
            .iter()
            .filter(|s| s.at >= at(from) && s.at <= at(to))
            .find(|s| firing(s, &w.name).len() >= min)
            .map(|s| s.at.saturating_duration_since(t0).as_secs_f64());
        match first {
            Some(t) => report.note(format!(
                "{} firing on ≥ {min} instances at {t:.1} s",
                w.name
            )),
            None => report.fail(format!(
                "{} never fired on {min} instances between {from} and {to} s",
                w.name
            )),
        }
        if let Some(c) = w.clear_by_s {
            let late: Vec<f64> = seen
                .iter()
                .filter(|s| s.at >= at(c) && s.at <= end && !firing(s, &w.name).is_empty())
                .map(|s| s.at.saturating_duration_since(t0).as_secs_f64())
                .collect();
            if let Some(t) = late.last() {
                report.fail(format!(
                    "{} still firing at {t:.1} s (should clear by {c} s)",
                    w.name
                ));
            }
        }
    }
}
