//! The attacks of a manifest's `[flood]` and `[hostile]`: started with the
//! timeline, joined at its end, checked against `expect.flood` / `expect.hostile`.

use super::observe::quantile;
use super::Report;
use crate::flood::{Flood, FloodResult, FloodSpec};
use crate::hostile::{Attempt, Hostile};
use crate::manifest::Manifest;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The running attacks.
#[derive(Debug, Default)]
pub(super) struct Attacks {
    flood: Option<Flood>,
    hostile: Option<Hostile>,
}

/// How long a hostile connection may stay open before the harness gives up.
fn give_up(m: &Manifest) -> Duration {
    Duration::from_secs_f64(
        m.expect
            .hostile
            .as_ref()
            .map_or(30.0, |h| h.closed_within_s)
            + 5.0,
    )
}

impl Attacks {
    pub(super) fn start(m: &Manifest, t0: Instant) -> anyhow::Result<Attacks> {
        let all: Vec<usize> = (0..m.validators).collect();
        let flood = match &m.flood {
            Some(f) => Some(Flood::start(
                &FloodSpec {
                    rate: f.rate,
                    sources: f.sources,
                    start: Duration::from_secs_f64(f.start_s),
                    stop: Duration::from_secs_f64(f.stop_s),
                    targets: f.targets.clone().unwrap_or_else(|| all.clone()),
                },
                t0,
            )?),
            None => None,
        };
        let hostile = m.hostile.as_ref().map(|h| {
            Hostile::start(
                h.targets.as_deref().unwrap_or(&all),
                h.connections,
                Duration::from_secs_f64(h.start_s),
                Duration::from_secs_f64(h.stop_s),
                give_up(m),
                t0,
            )
        });
        Ok(Attacks { flood, hostile })
    }

    /// Waits for both and checks what they got.
    pub(super) fn finish(self, m: &Manifest, report: &mut Report) {
        if let Some(f) = self.flood {
            check_flood(m, report, f.join());
        }
        if let Some(h) = self.hostile {
            let (attempts, panicked) = h.join();
            if panicked > 0 {
                report.fail(format!("hostile peer: {panicked} threads panicked"));
            }
            check_hostile(m, report, &attempts);
        }
    }
}

fn check_flood(m: &Manifest, report: &mut Report, mut r: FloodResult) {
    if r.panicked > 0 {
        report.fail(format!("flood: {} threads panicked", r.panicked));
    }
    let total: u64 = r.by_answer.values().sum();
    let count = |f: &dyn Fn(u16, &str) -> bool| -> u64 {
        r.by_answer
            .iter()
            .filter(|((s, c), _)| f(*s, c))
            .map(|(_, n)| n)
            .sum()
    };
    let refused = count(&|s, c| s == 429 && c == "RATE_LIMITED (ip)");
    let unanswered = count(&|s, _| s == 0);
    let accepted = count(&|s, _| (200..300).contains(&s));
    r.latency_ms.sort_by(f64::total_cmp);
    let p50 = quantile(&r.latency_ms, 0.5);
    let p99 = quantile(&r.latency_ms, 0.99);
    let mut per_sec: Vec<u64> = r.admitted_per_second.values().copied().collect();
    per_sec.sort_unstable();
    report.note(format!(
        "flood: {total} requests ({} more not sent: behind schedule at its end), answers (status, code) {:?}; \
         latency p50 {p50:.1} ms, p99 {p99:.1} ms; admitted per source per second: median {}, max {}",
        r.not_sent,
        r.by_answer,
        per_sec.get(per_sec.len() / 2).copied().unwrap_or(0),
        per_sec.last().copied().unwrap_or(0)
    ));
    let Some(e) = &m.expect.flood else { return };
    if accepted > 0 {
        report.fail(format!("flood: {accepted} forged proofs answered 2xx"));
    }
    let frac = |x: u64| {
        if total == 0 {
            0.0
        } else {
            x as f64 / total as f64
        }
    };
    if total == 0 || frac(refused) < e.refused_min_fraction {
        report.fail(format!(
            "flood: {:.0}% refused 429 RATE_LIMITED by the per-IP limit (need {:.0}%)",
            frac(refused) * 100.0,
            e.refused_min_fraction * 100.0
        ));
    }
    let max_un = e.unanswered_max_fraction.unwrap_or(0.05);
    if frac(unanswered) > max_un {
        report.fail(format!(
            "flood: {:.1}% unanswered (allowed {:.1}%)",
            frac(unanswered) * 100.0,
            max_un * 100.0
        ));
    }
    if let Some(max) = e.refused_p99_ms_max {
        if p99 > max {
            report.fail(format!("flood: answer p99 {p99:.1} ms > {max} ms"));
        }
    }
}

fn check_hostile(m: &Manifest, report: &mut Report, a: &[Attempt]) {
    let mut by: BTreeMap<String, (usize, usize, f64, usize)> = BTreeMap::new();
    for x in a {
        let e = by.entry(format!("{:?}", x.kind)).or_default();
        e.0 += 1;
        match (x.closed_after, &x.connect_error) {
            (_, Some(_)) => e.3 += 1,
            (Some(d), None) => {
                e.1 += 1;
                e.2 = e.2.max(d.as_secs_f64());
            }
            (None, None) => {}
        }
    }
    let line: Vec<String> = by
        .iter()
        .map(|(k, (n, closed, max, err))| {
            format!("{k}: {n} tries, {closed} closed by the validator (slowest {max:.1} s), {err} connects failed")
        })
        .collect();
    report.note(format!("hostile peer: {}", line.join("; ")));
    let Some(e) = &m.expect.hostile else { return };
    let connected: Vec<&Attempt> = a.iter().filter(|x| x.connect_error.is_none()).collect();
    if connected.len() < e.min_attempts {
        report.fail(format!(
            "hostile peer: {} connections made (need {})",
            connected.len(),
            e.min_attempts
        ));
    }
    let slow: Vec<String> = connected
        .iter()
        .filter(|x| {
            x.closed_after
                .is_none_or(|d| d.as_secs_f64() > e.closed_within_s)
        })
        .take(5)
        .map(|x| {
            format!(
                "node {} {:?} {}",
                x.node,
                x.kind,
                x.closed_after.map_or("never closed".into(), |d| format!(
                    "closed after {:.1} s",
                    d.as_secs_f64()
                ))
            )
        })
        .collect();
    if !slow.is_empty() {
        report.fail(format!(
            "hostile peer: connections not closed within {} s: {}",
            e.closed_within_s,
            slow.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostile::Junk;

    fn manifest(extra: &str) -> Manifest {
        Manifest::parse(&format!(
            "name = \"x\"\nvalidators = 4\nduration_s = 10\n\
             [flood]\nrate = 10\nsources = 2\nstart_s = 1\nstop_s = 5\n\
             [hostile]\nstart_s = 1\nstop_s = 5\nconnections = 1\n\
             [expect]\nflood = {{ refused_min_fraction = 0.5 }}\n\
             hostile = {{ closed_within_s = 5, min_attempts = 2 }}\n{extra}"
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn flood(answers: &[((u16, &str), u64)]) -> FloodResult {
        FloodResult {
            by_answer: answers
                .iter()
                .map(|((s, c), n)| ((*s, (*c).to_owned()), *n))
                .collect(),
            latency_ms: vec![1.0; 10],
            ..FloodResult::default()
        }
    }

    #[test]
    fn a_flood_check_fails_on_an_accepted_forgery_or_too_few_refusals() {
        let m = manifest("");
        let mut ok = Report::default();
        check_flood(
            &m,
            &mut ok,
            flood(&[((429, "RATE_LIMITED (ip)"), 6), ((401, "BAD_SIGNATURE"), 4)]),
        );
        assert!(ok.passed(), "{ok}");
        let mut forged = Report::default();
        check_flood(
            &m,
            &mut forged,
            flood(&[((429, "RATE_LIMITED (ip)"), 6), ((202, ""), 1)]),
        );
        assert!(
            forged.failures.iter().any(|f| f.contains("forged")),
            "{forged}"
        );
        let mut few = Report::default();
        // Refusals by the per-account limit are not the per-IP limit holding.
        check_flood(
            &m,
            &mut few,
            flood(&[
                ((429, "RATE_LIMITED (account)"), 6),
                ((401, "BAD_SIGNATURE"), 4),
            ]),
        );
        assert!(few.failures.iter().any(|f| f.contains("per-IP")), "{few}");
    }

    #[test]
    fn a_hostile_check_fails_on_a_connection_left_open() {
        let m = manifest("");
        let a = |closed: Option<f64>| Attempt {
            node: 0,
            kind: Junk::Silent,
            closed_after: closed.map(Duration::from_secs_f64),
            connect_error: None,
        };
        let mut ok = Report::default();
        check_hostile(&m, &mut ok, &[a(Some(1.0)), a(Some(4.9))]);
        assert!(ok.passed(), "{ok}");
        let mut open = Report::default();
        check_hostile(&m, &mut open, &[a(Some(1.0)), a(None)]);
        assert!(
            open.failures.iter().any(|f| f.contains("never closed")),
            "{open}"
        );
        let mut slow = Report::default();
        check_hostile(&m, &mut slow, &[a(Some(1.0)), a(Some(6.0))]);
        assert!(!slow.passed(), "{slow}");
        let mut few = Report::default();
        check_hostile(&m, &mut few, &[a(Some(1.0))]);
        assert!(few.failures.iter().any(|f| f.contains("need 2")), "{few}");
    }
}
