//! The report of a load run: human-readable text, or one JSON object.
//!
//! Counts are of the measured window (after the warm-up). They add up:
//! `scheduled = sent + dropped_by_generator` and
//! `sent = accepted + rejected + errors`; `finalized + rejected_at_execution
//! + unfinalized = accepted` (execution rejections as listed by the nodes'
//! `/events`).

use super::client::Tally;
use super::finality::FinalityStats;
use super::latency::Latencies;
use super::procs::ProcSample;
use crate::cpu::RecoveryCalibration;
use serde_json::{json, Value};

/// One validator process the run started.
#[derive(Debug, Clone)]
pub struct ValidatorReport {
    pub index: usize,
    pub pid: u32,
    pub http: String,
    /// Still running when the load ended.
    pub alive: bool,
    pub peak_rss_bytes: Option<u64>,
    pub rss_start_bytes: Option<u64>,
    pub rss_end_bytes: Option<u64>,
    /// CPU seconds it used during the load.
    pub cpu_s: Option<f64>,
}

/// Finality percentiles of one interval, in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub count: u64,
}

impl Percentiles {
    /// `None` for an empty histogram.
    pub fn of(l: &Latencies) -> Option<Percentiles> {
        (l.count() > 0).then(|| Percentiles {
            p50_ms: l.quantile_ms(0.5),
            p90_ms: l.quantile_ms(0.9),
            p99_ms: l.quantile_ms(0.99),
            max_ms: l.max_ms(),
            count: l.count(),
        })
    }
}

/// Cumulative counts at one moment of the run (all proofs, warm-up included).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimelinePoint {
    /// Seconds after the first send was due.
    pub t_s: f64,
    /// Proofs the schedule made due so far (sent, queued or dropped).
    pub scheduled: u64,
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub errors: u64,
    pub dropped: u64,
    pub finalized: u64,
    /// Finality latencies of the proofs finalized since the previous point.
    pub finality: Option<Percentiles>,
    /// Each started validator's RSS and CPU seconds so far.
    pub validators: Vec<ProcSample>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub targets: Vec<String>,
    pub offered_rate: f64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub batch: usize,
    pub connections_per_target: usize,
    pub queue_per_target: usize,
    /// Proofs due in the measured window.
    pub scheduled: u64,
    pub tally: Tally,
    pub dropped_by_generator: u64,
    pub dropped_warmup: u64,
    pub window_ns: u64,
    pub measure_start_ns: u64,
    pub cooldown_s: f64,
    /// Proofs/s offered in the cool-down (`None`: no cool-down).
    pub cooldown_rate: Option<f64>,
    pub dropped_cooldown: u64,
    pub sends_done_s: f64,
    pub finality_tracked: bool,
    pub events_errors: Vec<String>,
    pub finality: FinalityStats,
    pub validators: Vec<ValidatorReport>,
    pub prepared_proofs: u64,
    pub prepared_from_cache: bool,
    pub prepare_s: f64,
    pub accounts: u64,
    pub invalid_ratio: f64,
    /// About once a second, from the first send to the end of the wait for finality.
    pub timeline: Vec<TimelinePoint>,
    /// What `GET /proof/{id}` said of up to 16 accepted proofs never seen final.
    pub unfinalized_probe: std::collections::BTreeMap<String, u64>,
    /// CPU seconds the generator itself used while sending and waiting
    /// (`getrusage` of its process, whose one load thread does it all).
    pub generator_cpu_s: f64,
    /// Requests it wrote, every phase.
    pub generator_requests: u64,
    /// Accepted proofs of every phase seen final (what the validators'
    /// CPU over the load went to).
    pub finalized_all_phases: u64,
    /// Bare recovery timed in this process after the load.
    pub recovery: Option<RecoveryCalibration>,
}

impl Report {
    pub fn sent(&self) -> u64 {
        self.tally.sent
    }

    pub fn accepted(&self) -> u64 {
        self.tally.accepted
    }

    pub fn finalized(&self) -> u64 {
        self.finality.finalized
    }

    /// Proofs sent per second of the measured window.
    pub fn achieved_send_rate(&self) -> f64 {
        self.tally.sent as f64 / (self.window_ns as f64 / 1e9)
    }

    /// Finalized proofs per second, over the measured window or, if the last
    /// finality came later, from the window's start to it.
    pub fn finalized_per_sec(&self) -> f64 {
        if self.finality.finalized == 0 {
            return 0.0;
        }
        let span = self
            .finality
            .last_final_ns
            .saturating_sub(self.measure_start_ns)
            .max(self.window_ns);
        self.finality.finalized as f64 / (span as f64 / 1e9)
    }

    /// Accepted proofs not seen final when the run stopped waiting.
    pub fn unfinalized(&self) -> u64 {
        self.finality.outstanding
    }

    /// The highest peak RSS of the validators this run started.
    pub fn validator_peak_rss_bytes(&self) -> Option<u64> {
        self.validators
            .iter()
            .filter_map(|v| v.peak_rss_bytes)
            .max()
    }

    /// The generator's CPU µs per request written.
    pub fn generator_cpu_us_per_request(&self) -> Option<f64> {
        (self.generator_requests > 0)
            .then(|| self.generator_cpu_s * 1e6 / self.generator_requests as f64)
    }

    /// The started validators' CPU seconds during the load, summed.
    pub fn validator_cpu_s(&self) -> Option<f64> {
        if self.validators.is_empty() {
            return None;
        }
        self.validators.iter().map(|v| v.cpu_s).sum()
    }

    /// The validators' CPU µs (all of them together) per finalized proof.
    pub fn validator_cpu_us_per_proof(&self) -> Option<f64> {
        let cpu = self.validator_cpu_s()?;
        (self.finalized_all_phases > 0).then(|| cpu * 1e6 / self.finalized_all_phases as f64)
    }

    /// [`Report::validator_cpu_us_per_proof`] in recoveries' time, measured
    /// in the same run.
    pub fn cpu_per_proof_in_recoveries(&self) -> Option<f64> {
        let us = self.recovery?.cpu_us_per_recovery();
        Some(self.validator_cpu_us_per_proof()? / us)
    }

    fn cpu_json(&self) -> Value {
        json!({
            "generator_cpu_s": round3(self.generator_cpu_s),
            "generator_requests": self.generator_requests,
            "generator_cpu_us_per_request": self.generator_cpu_us_per_request().map(round1),
            "finalized_all_phases": self.finalized_all_phases,
            "validator_cpu_us_per_proof": self.validator_cpu_us_per_proof().map(round1),
            "recovery_cpu_us": self.recovery.map(|r| round3(r.cpu_us_per_recovery())),
            "recovery_wall_us": self.recovery.map(|r| round3(r.wall_us_per_recovery())),
            "recoveries_timed": self.recovery.map(|r| r.recoveries),
            "cpu_per_proof_in_recoveries": self.cpu_per_proof_in_recoveries().map(|x| (x * 100.0).round() / 100.0),
        })
    }

    pub fn to_json(&self) -> Value {
        let t = &self.tally;
        let validators: Vec<Value> = self
            .validators
            .iter()
            .map(|v| {
                json!({
                    "index": v.index, "pid": v.pid, "http": v.http, "alive": v.alive,
                    "peak_rss_bytes": v.peak_rss_bytes, "rss_start_bytes": v.rss_start_bytes,
                    "rss_end_bytes": v.rss_end_bytes, "cpu_s": v.cpu_s,
                })
            })
            .collect();
        let cpu_total = self.validator_cpu_s();
        let errors_by_kind: std::collections::BTreeMap<String, u64> = t
            .errors_by_kind
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let mut v = json!({
            "bench": "load",
            "targets": self.targets,
            "offered_rate": self.offered_rate,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "batch": self.batch,
            "connections_per_target": self.connections_per_target,
            "queue_per_target": self.queue_per_target,
            "invalid_ratio": self.invalid_ratio,
            "accounts": self.accounts,
            "scheduled": self.scheduled,
            "sent": t.sent,
            "requests": t.requests,
            "achieved_send_rate": round1(self.achieved_send_rate()),
            "dropped_by_generator": self.dropped_by_generator,
            "accepted": t.accepted,
            "rejected": t.rejected(),
            "rejected_by_code": t.rejected_by_code,
            "errors": t.errors(),
            "errors_by_kind": errors_by_kind,
            "unexpected_verdicts": t.unexpected,
            "unexpected_examples": t.unexpected_examples,
        });
        let more = json!({
            "finality_tracked": self.finality_tracked,
            "events_errors": self.events_errors,
            "finalized": self.finality.finalized,
            "finalized_per_sec": round1(self.finalized_per_sec()),
            "rejected_at_execution": self.finality.exec_rejected_by_code.values().sum::<u64>(),
            "rejected_at_execution_by_code": self.finality.exec_rejected_by_code,
            "unfinalized": self.unfinalized(),
            "unfinalized_probe": self.unfinalized_probe,
            "events_blocks": self.finality.blocks,
            "events_lagged_blocks": self.finality.lagged_blocks,
            "submit_ms": t.submit.summary_json(),
            "finality_ms": self.finality.latency.summary_json(),
            "send_lag_ms": t.send_lag.summary_json(),
            "warmup": {
                "sent": t.warmup.sent, "accepted": t.warmup.accepted,
                "rejected": t.warmup.rejected, "errors": t.warmup.errors,
                "dropped_by_generator": self.dropped_warmup,
                "finalized": self.finality.finalized_warmup,
            },
            "cooldown": self.cooldown_json(),
            "validator_peak_rss_bytes": self.validator_peak_rss_bytes(),
            "validator_cpu_s": cpu_total,
            "validators": validators,
            "prepared_proofs": self.prepared_proofs,
            "prepared_from_cache": self.prepared_from_cache,
            "prepare_s": round1(self.prepare_s),
            "load_average_1m": crate::load_average(),
            "timeline": self.timeline_json(),
        });
        for more in [more, self.cpu_json()] {
            if let (Some(a), Value::Object(b)) = (v.as_object_mut(), more) {
                a.extend(b);
            }
        }
        v
    }

    /// Finalized cool-down proofs per second of the cool-down (or up to the
    /// last one's finality, if later).
    pub fn cooldown_finalized_per_sec(&self) -> f64 {
        let start_ns = self.measure_start_ns + self.window_ns;
        let window_ns = (self.cooldown_s * 1e9) as u64;
        let span = self
            .finality
            .cooldown_last_final_ns
            .saturating_sub(start_ns)
            .max(window_ns)
            .max(1);
        self.finality.finalized_cooldown as f64 / (span as f64 / 1e9)
    }

    fn cooldown_json(&self) -> Value {
        let Some(rate) = self.cooldown_rate else {
            return Value::Null;
        };
        let c = &self.tally.cooldown;
        json!({
            "offered_rate": rate,
            "duration_s": self.cooldown_s,
            "sent": c.sent, "accepted": c.accepted, "rejected": c.rejected, "errors": c.errors,
            "dropped_by_generator": self.dropped_cooldown,
            "finalized": self.finality.finalized_cooldown,
            "finalized_per_sec": round1(self.cooldown_finalized_per_sec()),
            "unfinalized": self.finality.cooldown_outstanding,
            "rejected_at_execution": self.finality.cooldown_exec_rejected,
            "submit_ms": c.submit.summary_json(),
            "finality_ms": self.finality.cooldown_latency.summary_json(),
        })
    }

    /// Per interval: its end (s), and what happened in it.
    fn timeline_json(&self) -> Vec<Value> {
        let mut prev = TimelinePoint::default();
        self.timeline
            .iter()
            .map(|p| {
                let v = json!({
                    "t_s": round1(p.t_s),
                    "scheduled": p.scheduled - prev.scheduled,
                    "sent": p.sent - prev.sent,
                    "accepted": p.accepted - prev.accepted,
                    "rejected": p.rejected - prev.rejected,
                    "errors": p.errors - prev.errors,
                    "dropped": p.dropped - prev.dropped,
                    "finalized": p.finalized - prev.finalized,
                    "finality_ms": p.finality.map(|f| json!({
                        "p50": f.p50_ms, "p90": f.p90_ms, "p99": f.p99_ms, "max": f.max_ms, "count": f.count,
                    })),
                    "validators": p.validators.iter().map(|v| json!({
                        "rss_bytes": v.rss_bytes, "cpu_s": v.cpu_s,
                    })).collect::<Vec<_>>(),
                });
                prev = p.clone();
                v
            })
            .collect()
    }

    pub fn to_text(&self) -> String {
        let t = &self.tally;
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        line(format!(
            "targets: {} ({} connections each); {} proofs per request",
            self.targets.join(", "),
            self.connections_per_target,
            self.batch
        ));
        line(format!(
            "offered {:.0} proofs/s for {:.1} s (after {:.1} s warm-up): {} due, {} sent = {:.0} proofs/s achieved, {} dropped by the generator",
            self.offered_rate,
            self.duration_s,
            self.warmup_s,
            self.scheduled,
            t.sent,
            self.achieved_send_rate(),
            self.dropped_by_generator
        ));
        let codes = by_name(&t.rejected_by_code);
        line(format!(
            "verdicts: {} accepted, {} rejected ({}), {} errors{}",
            t.accepted,
            t.rejected(),
            if codes.is_empty() {
                "none".into()
            } else {
                codes
            },
            t.errors(),
            in_parens(by_name(&t.errors_by_kind))
        ));
        if t.unexpected > 0 {
            line(format!(
                "unexpected verdicts: {} (e.g. {})",
                t.unexpected,
                t.unexpected_examples.first().map_or("", String::as_str)
            ));
        }
        if self.finality_tracked {
            line(format!(
                "finalized: {} of {} accepted = {:.0} proofs/s; {} rejected at execution{}; {} not final when the run stopped waiting",
                self.finality.finalized,
                t.accepted,
                self.finalized_per_sec(),
                self.finality.exec_rejected_by_code.values().sum::<u64>(),
                in_parens(by_name(&self.finality.exec_rejected_by_code)),
                self.unfinalized()
            ));
            if !self.unfinalized_probe.is_empty() {
                let words = by_name(&self.unfinalized_probe);
                line(format!(
                    "  GET /proof/{{id}} for some of them: {} (NOT_FOUND: accepted at submission, then lost, or rejected at execution by a node that does not list it on /events)",
                    words
                ));
            }
            if !self.events_errors.is_empty() {
                line(format!("  /events: {}", self.events_errors.join("; ")));
            }
        } else {
            line(format!(
                "finality not tracked ({})",
                if self.events_errors.is_empty() {
                    "--no-finality".to_owned()
                } else {
                    self.events_errors.join("; ")
                }
            ));
        }
        line(format!(
            "submit→response (from the scheduled time): {}",
            t.submit.summary_text()
        ));
        line(format!(
            "submit→finality (from the scheduled time): {}",
            self.finality.latency.summary_text()
        ));
        line(format!(
            "send lag (actual − scheduled send): {}",
            t.send_lag.summary_text()
        ));
        if let Some(rate) = self.cooldown_rate {
            let c = &t.cooldown;
            line(format!(
                "cool-down, {rate:.0} proofs/s for {:.1} s: {} sent, {} accepted, {} rejected, {} errors, {} dropped by the generator; {} finalized = {:.0} proofs/s",
                self.cooldown_s,
                c.sent,
                c.accepted,
                c.rejected,
                c.errors,
                self.dropped_cooldown,
                self.finality.finalized_cooldown,
                self.cooldown_finalized_per_sec(),
            ));
            line(format!(
                "  cool-down submit→response: {}",
                c.submit.summary_text()
            ));
            line(format!(
                "  cool-down submit→finality: {}",
                self.finality.cooldown_latency.summary_text()
            ));
        }
        line(format!(
            "generator CPU: {:.2} s for {} requests = {} µs per request",
            self.generator_cpu_s,
            self.generator_requests,
            self.generator_cpu_us_per_request()
                .map_or("?".into(), |u| format!("{u:.1}"))
        ));
        if let Some(cpu) = self.validator_cpu_s() {
            let per = self.validator_cpu_us_per_proof();
            line(format!(
                "validators' CPU: {cpu:.1} s for {} finalized proofs (every phase) = {} µs per proof",
                self.finalized_all_phases,
                per.map_or("?".into(), |u| format!("{u:.1}"))
            ));
        }
        if let Some(r) = self.recovery {
            line(format!(
                "one recovery (bare libsecp256k1, 1 thread, {} timed after the load): {:.1} µs CPU ({:.1} µs wall); CPU per finalized proof = {} recoveries",
                r.recoveries,
                r.cpu_us_per_recovery(),
                r.wall_us_per_recovery(),
                self.cpu_per_proof_in_recoveries()
                    .map_or("?".into(), |x| format!("{x:.2}"))
            ));
        }
        for v in &self.validators {
            line(format!(
                "validator {} (pid {}{}): peak RSS {}, RSS {} → {}, CPU {} during the load",
                v.index,
                v.pid,
                if v.alive {
                    ""
                } else {
                    ", NOT RUNNING at the end"
                },
                mib(v.peak_rss_bytes),
                mib(v.rss_start_bytes),
                mib(v.rss_end_bytes),
                v.cpu_s.map_or("?".into(), |c| format!("{c:.1} s")),
            ));
        }
        s
    }
}

fn mib(b: Option<u64>) -> String {
    b.map_or("?".into(), |b| {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `name count, name count, …` for counts by name (empty for none).
fn by_name<K: std::fmt::Display, V: std::fmt::Display>(
    counts: impl IntoIterator<Item = (K, V)>,
) -> String {
    counts
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` (text)`, or nothing when `text` is empty.
fn in_parens(text: String) -> String {
    if text.is_empty() {
        text
    } else {
        format!(" ({text})")
    }
}
