//! The intake log's cost at an offered rate: appends at `--rate` proofs/s
//! for `--seconds` (open loop, one thread), each completed after its
//! group's fsync. Prints fsyncs/s, proofs per group, append→durable
//! latency p50/p99 and the process CPU per proof.
//!
//! `cargo run --release -p step-io --example intake_log_rate -- --rate 1000 --seconds 10 [--dir D] [--group-ms 2]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use step_io::intake_log::{IntakeLog, LogSettings};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn cpu_s() -> f64 {
    // utime + stime of this process, from /proc/self/stat (clock ticks).
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .expect("stat")
        .split_whitespace()
        .collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

fn main() {
    let rate: f64 = arg("--rate", "1000").parse().expect("--rate");
    let seconds: f64 = arg("--seconds", "10").parse().expect("--seconds");
    let group_ms: u64 = arg("--group-ms", "2").parse().expect("--group-ms");
    let dir = std::path::PathBuf::from(arg(
        "--dir",
        &std::env::temp_dir()
            .join(format!("step-intake-bench-{}", std::process::id()))
            .display()
            .to_string(),
    ));
    let n = (rate * seconds) as usize;
    // Distinct proofs (distinct ids), signed once before the clock starts.
    let t = step_engine::signing::root_triangle();
    let key = step_engine::signing::key("intake-bench", 0);
    let proofs: Vec<step_engine::Proof> = (0..n.min(20_000))
        .map(|k| {
            let body = step_engine::signing::simple_body(&key, &t, &format!("n{k}"));
            step_engine::proof::parse(&body).expect("parses")
        })
        .collect();
    let lat = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let sink = Arc::clone(&lat);
    let s = LogSettings {
        dir: dir.clone(),
        max_records: n + 1,
        group_commit: Duration::from_millis(group_ms),
        segment_bytes: 64 << 20,
    };
    let (log, _) = IntakeLog::open(&s, move |sent: Instant, r| {
        r.expect("durable");
        sink.lock()
            .expect("lat")
            .push(sent.elapsed().as_secs_f64() * 1e6);
    })
    .expect("open");
    let cpu0 = cpu_s();
    let start = Instant::now();
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        log.reserve().expect("room");
        assert!(
            log.append(&proofs[i % proofs.len()], Instant::now())
                .is_ok(),
            "the writer runs"
        );
        if i % proofs.len() == proofs.len() - 1 {
            // Reused proofs: forget them so each append is a new record.
            log.forget(
                proofs
                    .iter()
                    .filter_map(step_io::ledger::ProofId::of_proof)
                    .collect(),
            );
        }
    }
    log.close();
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_s() - cpu0;
    let st = log.stats();
    let fsyncs = st.fsyncs.load(Ordering::Relaxed);
    let mut l = lat.lock().expect("lat").clone();
    l.sort_by(f64::total_cmp);
    let q = |x: f64| l[((l.len() - 1) as f64 * x) as usize];
    println!(
        "rate {rate}/s, {n} appends in {wall:.2} s: {:.0} fsyncs/s, {:.1} proofs/fsync, durable after p50 {:.0} µs p99 {:.0} µs, CPU {:.2} µs/proof",
        fsyncs as f64 / wall,
        n as f64 / fsyncs as f64,
        q(0.5),
        q(0.99),
        cpu * 1e6 / n as f64
    );
    std::fs::remove_dir_all(&dir).ok();
}
