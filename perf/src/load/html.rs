//! `step bench --html FILE`: one self-contained HTML page (no external
//! file, font or script) with the run's figures and four charts drawn as
//! inline SVG by `plotters` (ADR 0041):
//!
//! 1. offered, sent, accepted and finalized proofs per second;
//! 2. finality p50 / p90 / p99 of the proofs finalized in each interval;
//! 3. each started validator's RSS;
//! 4. each started validator's CPU (cores busy in each interval).
//!
//! Every chart is a `<figure class="chart" id="chart-…">`; a few lines of
//! script write each one's box into `data-box` once the page is laid out
//! (what the headless-Chromium test reads to find the charts' pixels).

use super::report::{Report, TimelinePoint};
use plotters::prelude::*;

/// The series' colours, in order (the test looks for them).
pub const PALETTE: [(u8, u8, u8); 4] =
    [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)];
/// Each chart's size in CSS pixels.
pub const CHART_PX: (u32, u32) = (900, 320);
/// The charts' ids, in page order (the validators' two only with validators).
pub const CHART_IDS: [&str; 4] = [
    "chart-rates",
    "chart-finality",
    "chart-validator-rss",
    "chart-validator-cpu",
];

/// Why the report could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the {chart} chart: {reason}")]
pub struct HtmlError {
    pub chart: &'static str,
    pub reason: String,
}

/// One line of a chart: its name and (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Draws one line chart as an SVG document.
pub fn line_chart(
    id: &'static str,
    title: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<String, HtmlError> {
    let err = |e: &dyn std::fmt::Display| HtmlError {
        chart: id,
        reason: e.to_string(),
    };
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let x_max = pts().map(|p| p.0).fold(1.0, f64::max);
    let y_max = pts().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_PX).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("seconds after the first send")
            .y_desc(y_desc)
            .draw()
            .map_err(|e| err(&e))?;
        for (i, s) in series.iter().enumerate() {
            let (r, g, b) = PALETTE[i % PALETTE.len()];
            let colour = RGBColor(r, g, b);
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

/// `(t, Δfield / Δt)` per interval of the timeline.
fn per_second(
    tl: &[TimelinePoint],
    field: impl Fn(&TimelinePoint) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let mut prev: Option<(f64, f64)> = Some((0.0, 0.0));
    let mut out = Vec::new();
    for p in tl {
        let now = field(p).map(|v| (p.t_s, v));
        if let (Some((t0, v0)), Some((t1, v1))) = (prev, now) {
            if t1 > t0 {
                out.push((t1, (v1 - v0) / (t1 - t0)));
            }
        }
        prev = now.or(prev);
    }
    out
}

/// The four charts' SVG documents for `report` (the validators' two only
/// when the run started validators).
pub fn charts(report: &Report) -> Result<Vec<(&'static str, String)>, HtmlError> {
    let tl = &report.timeline;
    let count = |name: &str, f: fn(&TimelinePoint) -> u64| Series {
        name: name.to_owned(),
        points: per_second(tl, |p| Some(f(p) as f64)),
    };
    let rates = vec![
        count("offered", |p| p.scheduled),
        count("sent", |p| p.sent),
        count("accepted", |p| p.accepted),
        count("finalized", |p| p.finalized),
    ];
    let quantile = |name: &str, f: fn(&super::report::Percentiles) -> f64| Series {
        name: name.to_owned(),
        points: tl
            .iter()
            .filter_map(|p| p.finality.as_ref().map(|q| (p.t_s, f(q))))
            .collect(),
    };
    let finality = vec![
        quantile("p50", |q| q.p50_ms),
        quantile("p90", |q| q.p90_ms),
        quantile("p99", |q| q.p99_ms),
    ];
    let mut out = vec![
        (
            CHART_IDS[0],
            line_chart(CHART_IDS[0], "Proofs per second", "proofs/s", &rates)?,
        ),
        (
            CHART_IDS[1],
            line_chart(
                CHART_IDS[1],
                "Finality latency of the proofs finalized in each interval",
                "ms from the scheduled send",
                &finality,
            )?,
        ),
    ];
    if !report.validators.is_empty() {
        let per_validator = |f: &dyn Fn(usize) -> Series| -> Vec<Series> {
            (0..report.validators.len()).map(f).collect()
        };
        let rss = per_validator(&|i| Series {
            name: format!("validator {}", report.validators[i].index),
            points: tl
                .iter()
                .filter_map(|p| {
                    let b = p.validators.get(i)?.rss_bytes?;
                    Some((p.t_s, b as f64 / (1024.0 * 1024.0)))
                })
                .collect(),
        });
        let cpu = per_validator(&|i| Series {
            name: format!("validator {}", report.validators[i].index),
            points: cpu_cores(tl, i),
        });
        out.push((
            CHART_IDS[2],
            line_chart(CHART_IDS[2], "Validators' resident memory", "MiB", &rss)?,
        ));
        out.push((
            CHART_IDS[3],
            line_chart(CHART_IDS[3], "Validators' CPU", "cores busy", &cpu)?,
        ));
    }
    Ok(out)
}

/// Validator `i`'s cores busy per interval (its first sample is the base).
fn cpu_cores(tl: &[TimelinePoint], i: usize) -> Vec<(f64, f64)> {
    let samples: Vec<(f64, f64)> = tl
        .iter()
        .filter_map(|p| Some((p.t_s, p.validators.get(i)?.cpu_s?)))
        .collect();
    samples
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| (w[1].0, (w[1].1 - w[0].1) / (w[1].0 - w[0].0)))
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("?".into(), |x| format!("{x:.digits$}"))
}

/// The whole page.
pub fn render(report: &Report) -> Result<String, HtmlError> {
    let r = report;
    let fin = &r.finality.latency;
    let rows = [
        ("targets", escape(&r.targets.join(", "))),
        (
            "offered",
            format!(
                "{:.0} proofs/s for {:.1} s, {} per request",
                r.offered_rate, r.duration_s, r.batch
            ),
        ),
        (
            "sent (dropped by the generator)",
            format!("{} ({})", r.sent(), r.dropped_by_generator),
        ),
        ("accepted", r.accepted().to_string()),
        (
            "finalized",
            format!("{} = {:.0} proofs/s", r.finalized(), r.finalized_per_sec()),
        ),
        (
            "finality p50 / p99",
            if fin.count() == 0 {
                "no samples".into()
            } else {
                format!(
                    "{:.0} ms / {:.0} ms",
                    fin.quantile_ms(0.5),
                    fin.quantile_ms(0.99)
                )
            },
        ),
        (
            "generator CPU per request",
            format!("{} µs", opt(r.generator_cpu_us_per_request(), 1)),
        ),
        (
            "validators' CPU per finalized proof",
            format!("{} µs", opt(r.validator_cpu_us_per_proof(), 1)),
        ),
        (
            "one recovery (CPU, this process)",
            format!("{} µs", opt(r.recovery.map(|c| c.cpu_us_per_recovery()), 1)),
        ),
        (
            "CPU per proof / one recovery",
            opt(r.cpu_per_proof_in_recoveries(), 2),
        ),
    ];
    let mut page = String::from(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>step bench report</title><style>",
        "body{font-family:sans-serif;margin:16px;background:#fff;color:#222}",
        "table{border-collapse:collapse;margin-bottom:16px}",
        "td{border:1px solid #ccc;padding:2px 8px}",
        "figure.chart{margin:0 0 16px 0;width:900px;height:320px}",
        "</style></head><body><h1>step bench</h1><table>\n"
    ));
    for (k, v) in rows {
        page.push_str(&format!("<tr><td>{k}</td><td>{v}</td></tr>\n"));
    }
    page.push_str("</table>\n");
    for (id, svg) in charts(report)? {
        // plotters writes a whole SVG document: keep only the <svg> element.
        let at = svg.find("<svg").unwrap_or(0);
        page.push_str(&format!(
            "<figure class=\"chart\" id=\"{id}\">{}</figure>\n",
            &svg[at..]
        ));
    }
    page.push_str(concat!(
        "<script>for (const f of document.querySelectorAll('figure.chart')) {",
        " const b = f.getBoundingClientRect();",
        " f.dataset.box = [b.left, b.top, b.width, b.height].map(Math.round).join(','); }",
        "</script>\n</body></html>\n"
    ));
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_per_interval() {
        let tl: Vec<TimelinePoint> = [(1.0, 100), (2.0, 300), (2.5, 400)]
            .iter()
            .map(|&(t_s, sent)| TimelinePoint {
                t_s,
                sent,
                ..TimelinePoint::default()
            })
            .collect();
        assert_eq!(
            per_second(&tl, |p| Some(p.sent as f64)),
            vec![(1.0, 100.0), (2.0, 200.0), (2.5, 200.0)]
        );
    }

    #[test]
    fn a_chart_is_an_svg_with_its_lines() -> Result<(), HtmlError> {
        let s = Series {
            name: "offered".into(),
            points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)],
        };
        let svg = line_chart("chart-rates", "t", "y", &[s])?;
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("offered"));
        let (r, g, b) = PALETTE[0];
        assert!(
            svg.to_uppercase()
                .contains(&format!("#{r:02X}{g:02X}{b:02X}")),
            "{svg}"
        );
        Ok(())
    }
}
