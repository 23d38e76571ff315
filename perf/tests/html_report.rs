//! `step bench --html`: the report renders in headless Chromium (Debian's
//! `chromium`, installed by scripts/test) and every chart is really drawn:
//! in a screenshot, each chart's box (as the page's own script measured it
//! after layout, read back with `--dump-dom`) holds pixels of each of its
//! lines' colours. Without Chromium the test fails under `CI=true` and is
//! skipped otherwise.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use step_perf::cpu::RecoveryCalibration;
use step_perf::load::html::{self, CHART_IDS, PALETTE};
use step_perf::load::latency::Latencies;
use step_perf::load::procs::ProcSample;
use step_perf::load::report::{Percentiles, Report, TimelinePoint, ValidatorReport};

/// A 20-second run of two validators, with a ramp in every series.
fn report() -> Report {
    let mut latency = Latencies::new();
    for ms in [300, 450, 800, 1200] {
        latency.record_us(ms * 1000);
    }
    let timeline = (1..=20u64)
        .map(|s| TimelinePoint {
            t_s: s as f64,
            scheduled: s * 1000,
            // Apart enough that no line hides another.
            sent: s * 850,
            accepted: s * 700,
            rejected: s * 150,
            errors: 0,
            dropped: s * 150,
            finalized: s * 500,
            finality: (s > 1).then_some(Percentiles {
                p50_ms: 400.0 + 10.0 * s as f64,
                p90_ms: 700.0 + 20.0 * s as f64,
                p99_ms: 1000.0 + 40.0 * s as f64,
                max_ms: 1500.0,
                count: 980,
            }),
            validators: (0..2u64)
                .map(|v| ProcSample {
                    peak_rss_bytes: Some((200 + 10 * s + 50 * v) << 20),
                    rss_bytes: Some((150 + 10 * s + 50 * v) << 20),
                    cpu_s: Some((s * s) as f64 * 0.02 + v as f64 * 0.1 * s as f64),
                })
                .collect(),
        })
        .collect();
    let mut r = Report {
        targets: vec![
            "http://127.0.0.1:27000".into(),
            "http://127.0.0.1:27001".into(),
        ],
        offered_rate: 1000.0,
        duration_s: 20.0,
        warmup_s: 0.0,
        batch: 1,
        connections_per_target: 64,
        queue_per_target: 128,
        scheduled: 20_000,
        tally: Default::default(),
        dropped_by_generator: 200,
        dropped_warmup: 0,
        window_ns: 20_000_000_000,
        measure_start_ns: 0,
        cooldown_s: 0.0,
        cooldown_rate: None,
        dropped_cooldown: 0,
        sends_done_s: 20.0,
        finality_tracked: true,
        events_errors: vec![],
        finality: Default::default(),
        validators: (0..2)
            .map(|i| ValidatorReport {
                index: i,
                pid: 1,
                http: format!("http://127.0.0.1:2700{i}"),
                alive: true,
                peak_rss_bytes: Some(400 << 20),
                rss_start_bytes: Some(150 << 20),
                rss_end_bytes: Some(350 << 20),
                cpu_s: Some(10.0),
            })
            .collect(),
        prepared_proofs: 20_000,
        prepared_from_cache: true,
        prepare_s: 1.0,
        accounts: 2000,
        invalid_ratio: 0.0,
        timeline,
        unfinalized_probe: Default::default(),
        generator_cpu_s: 0.3,
        generator_requests: 19_800,
        finalized_all_phases: 19_000,
        recovery: Some(RecoveryCalibration {
            recoveries: 25_000,
            wall_s: 1.0,
            cpu_s: 1.0,
        }),
    };
    r.finality.latency = latency;
    r.finality.finalized = 19_000;
    r
}

fn chromium() -> Option<PathBuf> {
    let name = std::env::var("STEP_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    let path = path.trim();
    (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

const WINDOW: (u32, u32) = (1000, 2200);

/// Runs headless Chromium on `page` with `args`; its stdout.
fn run_chromium(chromium: &Path, page: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("timeout")
        .arg("90")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--no-first-run",
            &format!("--window-size={},{}", WINDOW.0, WINDOW.1),
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The `data-box` the page's script wrote on chart `id`: (x, y, w, h).
fn chart_box(dom: &str, id: &str) -> (u32, u32, u32, u32) {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} in the DOM"));
    let tag_end = at + dom[at..].find('>').unwrap();
    let tag = &dom[at..tag_end];
    let start = tag
        .find("data-box=\"")
        .unwrap_or_else(|| panic!("{id}: the page's script did not run: {tag}"))
        + 10;
    let nums: Vec<u32> = tag[start..start + tag[start..].find('"').unwrap()]
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    (nums[0], nums[1], nums[2], nums[3])
}

/// Pixels of `colour` (within a small tolerance) in `bx` of an RGB or RGBA
/// image (`bpp` bytes per pixel).
fn pixels_of(
    img: &[u8],
    (width, bpp): (u32, u32),
    bx: (u32, u32, u32, u32),
    colour: (u8, u8, u8),
) -> usize {
    let near = |a: u8, b: u8| a.abs_diff(b) <= 24;
    let mut n = 0;
    for y in bx.1..bx.1 + bx.3 {
        for x in bx.0..(bx.0 + bx.2).min(width) {
            let i = ((y * width + x) * bpp) as usize;
            if i + 2 < img.len()
                && near(img[i], colour.0)
                && near(img[i + 1], colour.1)
                && near(img[i + 2], colour.2)
            {
                n += 1;
            }
        }
    }
    n
}

/// The figures the report's table and text print, from their parts.
#[test]
fn cpu_figures_are_ratios_of_their_parts() {
    let r = report();
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6 * b);
    // 0.3 CPU-s for 19,800 requests.
    assert!(close(r.generator_cpu_us_per_request(), 0.3e6 / 19_800.0));
    // Two validators of 10 CPU-s for 19,000 proofs; a recovery is 40 µs.
    assert!(close(r.validator_cpu_us_per_proof(), 20e6 / 19_000.0));
    assert!(close(
        r.cpu_per_proof_in_recoveries(),
        20e6 / 19_000.0 / 40.0
    ));
    let text = r.to_text();
    assert!(text.contains("= 15.2 µs per request"), "{text}");
    assert!(text.contains("= 26.32 recoveries"), "{text}");
    let j = r.to_json();
    assert_eq!(j["recovery_cpu_us"], 40.0, "{j}");
    let mut none = report();
    none.recovery = None;
    none.validators.clear();
    assert!(none.cpu_per_proof_in_recoveries().is_none());
    assert!(none.validator_cpu_us_per_proof().is_none());
}

#[test]
fn every_chart_is_drawn_in_chromium() {
    let page = html::render(&report()).unwrap();
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is not installed (scripts/test installs Debian's `chromium`)"
        );
        eprintln!("skipped: chromium is not installed");
        return;
    };
    let dir = std::env::temp_dir().join(format!("step-html-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("report.html");
    std::fs::write(&file, &page).unwrap();
    let shot = dir.join("shot.png");
    let dom = String::from_utf8(run_chromium(&chromium, &file, &["--dump-dom"])).unwrap();
    run_chromium(
        &chromium,
        &file,
        &[&format!("--screenshot={}", shot.display())],
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut img = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut img).unwrap();
    let bpp = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("a {other:?} screenshot"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{info:?}");
    // Lines per chart: offered/sent/accepted/finalized, p50/p90/p99, and
    // one per validator (2) in each validator chart.
    for (id, lines) in CHART_IDS.iter().zip([4, 3, 2, 2]) {
        let bx = chart_box(&dom, id);
        assert!(
            bx.1 + bx.3 <= info.height && bx.2 >= 800,
            "{id} at {bx:?} is outside the {}×{} screenshot",
            info.width,
            info.height
        );
        for (k, &colour) in PALETTE.iter().take(lines).enumerate() {
            let n = pixels_of(&img, (info.width, bpp), bx, colour);
            assert!(
                n >= 100,
                "{id}: line {k} ({colour:?}) has {n} pixels in {bx:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
