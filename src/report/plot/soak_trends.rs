//! Soak runs (tests 13.1–13.3), for any file with a `soak` section: the
//! throughput and P99 of every sample against time (stability), each
//! process's resident memory and registered MRs against time (leak
//! detection), the trend table with each slope's 95 % interval, and the
//! findings.

use plotters::prelude::*;

use super::style::{color, draw_legend, svg_chart, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_size, RateScale, TimeScale};
use crate::results::{RunReport, SoakReport};

/// The soak section (every test id; empty without a `soak` section).
pub(super) const SECTION: Section = Section {
    test_id: "*",
    title: "soak: throughput, P99, memory and MRs per sample over time; trend table",
    build,
};

/// A named series of (time, value).
type Series = (String, Vec<(f64, f64)>);

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let Some(soak) = &report.soak else {
        return Ok(Vec::new());
    };
    if soak.samples.is_empty() {
        return Ok(vec![Block::Note("Soak: no sample completed.".into())]);
    }
    // the time axis in the unit that keeps its labels distinct
    let span_s = soak.samples.last().map_or(0.0, |s| s.t_s);
    let (scale, unit) = match span_s {
        s if s < 300.0 => (1.0, "s"),
        s if s < 3.0 * 3600.0 => (60.0, "min"),
        _ => (3600.0, "h"),
    };
    let at = |t_s: f64| t_s / scale;
    let mut blocks = Vec::new();
    let rate = RateScale::for_max_gbytes(
        soak.samples
            .iter()
            .map(|s| s.throughput_gbytes_per_s)
            .fold(0.0, f64::max),
    );
    let throughput: Series = (
        "throughput".into(),
        soak.samples
            .iter()
            .map(|s| (at(s.t_s), s.throughput_gbytes_per_s * rate.per_gbyte))
            .collect(),
    );
    let time = TimeScale::for_max_ns(
        soak.samples
            .iter()
            .filter_map(|s| s.latency_p99_ns)
            .fold(0.0, f64::max),
    );
    let p99: Series = (
        "P99".into(),
        soak.samples
            .iter()
            .filter_map(|s| Some((at(s.t_s), s.latency_p99_ns? * time.per_ns)))
            .collect(),
    );
    blocks.push(chart(
        unit,
        "soak-throughput",
        "Soak: throughput per sample",
        &format!("throughput ({})", rate.name),
        &[throughput],
        format!(
            "One point per {:.0} s sample; CV across samples {}.",
            soak.sample_interval_s,
            soak.throughput_cv_percent
                .map_or("n/a".into(), |v| format!("{v:.2} %"))
        ),
    )?);
    if !p99.1.is_empty() {
        blocks.push(chart(
            unit,
            "soak-p99",
            "Soak: P99 latency per sample",
            &format!("P99 latency ({})", time.name),
            &[p99],
            format!(
                "P99 of each sample's latency distribution; (max − min) / median {} (13.1 asks < 1 %).",
                soak.latency_p99_variation_percent
                    .map_or("n/a".into(), |v| format!("{v:.1} %"))
            ),
        )?);
    }
    let per_process = |value: fn(&crate::results::ProcessResources) -> Option<f64>| -> Vec<Series> {
        let mut out: Vec<Series> = Vec::new();
        for sample in &soak.samples {
            for p in &sample.processes {
                let Some(v) = value(&p.resources) else {
                    continue;
                };
                match out.iter_mut().find(|(name, _)| *name == p.process) {
                    Some((_, points)) => points.push((at(sample.t_s), v)),
                    None => out.push((p.process.clone(), vec![(at(sample.t_s), v)])),
                }
            }
        }
        out
    };
    let rss = per_process(|r| r.rss_bytes.map(|b| b as f64 / f64::from(1 << 20)));
    if !rss.is_empty() {
        blocks.push(chart(
            unit,
            "soak-rss",
            "Soak: resident memory per process",
            "resident set (MiB)",
            &rss,
            "VmRSS of each process at the end of each sample (13.2).".into(),
        )?);
    }
    let mrs = per_process(|r| r.rdma.as_ref().map(|x| x.mrs as f64));
    if !mrs.is_empty() {
        blocks.push(chart(
            unit,
            "soak-mrs",
            "Soak: registered memory regions per process",
            "MRs (kernel's count)",
            &mrs,
            "The memory regions the kernel holds for each process (`rdma resource show mr`), per sample (13.2).".into(),
        )?);
    }
    blocks.push(Block::Table(trend_table(soak)));
    for finding in &soak.findings {
        blocks.push(Block::Note(format!("Soak: {finding}.")));
    }
    Ok(blocks)
}

fn trend_table(soak: &SoakReport) -> Table {
    Table {
        title: "Soak trends (least-squares slope, 95 % CI)".into(),
        columns: [
            "process",
            "metric",
            "samples fitted",
            "slope /h",
            "95 % CI /h",
            "first",
            "last",
            "max",
            "leak?",
        ]
        .map(String::from)
        .to_vec(),
        rows: soak
            .trends
            .iter()
            .map(|t| {
                // byte metrics in KiB/MiB/GiB, counts as they are
                let bytes = t.metric.ends_with("_bytes");
                let value = |v: f64| {
                    if bytes {
                        human_size(v)
                    } else {
                        format!("{v:.0}")
                    }
                };
                let slope = |v: f64| {
                    if bytes {
                        format!("{}{}", if v >= 0.0 { "+" } else { "" }, human_size(v))
                    } else {
                        format!("{v:+.1}")
                    }
                };
                vec![
                    t.process.clone(),
                    t.metric.clone(),
                    t.n.to_string(),
                    slope(t.slope_per_hour),
                    format!(
                        "{} .. {}",
                        slope(t.ci95_low_per_hour),
                        slope(t.ci95_high_per_hour)
                    ),
                    value(t.first),
                    value(t.last),
                    value(t.max),
                    if t.leak_suspected { "suspected" } else { "no" }.into(),
                ]
            })
            .collect(),
        notes: vec![format!(
            "{} warm-up sample(s) left out of the fits. A metric is a suspected leak when its slope's whole 95 % interval is above zero and the growth exceeds one object (counts) or 1 MiB and 1 % (bytes).{}",
            soak.warmup_samples,
            if soak.injected_leak {
                " This run had the test-only --soak-inject-leak flag on: its growth is deliberate."
            } else {
                ""
            }
        )],
    }
}

fn chart(
    unit: &str,
    slug: &str,
    title: &str,
    y_desc: &str,
    series: &[Series],
    caption: String,
) -> Result<Block, PlotError> {
    let svg = svg_chart(slug, |root| draw(root, unit, title, y_desc, series))?;
    Ok(Block::Chart(Chart {
        slug: slug.into(),
        title: title.into(),
        caption,
        svg,
    }))
}

fn draw(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    unit: &str,
    title: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let x_hi = points().map(|p| p.0).fold(0.0f64, f64::max).max(1e-3) * 1.05;
    let y_top = points().map(|p| p.1).fold(0.0f64, f64::max);
    let y_hi = if y_top > 0.0 { y_top * 1.25 } else { 1.0 };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc(format!("time since the soak began ({unit})"))
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&|y| match y_hi {
            h if h >= 100.0 => format!("{y:.0}"),
            h if h >= 10.0 => format!("{y:.1}"),
            _ => format!("{y:.3}"),
        })
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, (name, line)) in series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(line.iter().copied(), c.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(line.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{ProcessResources, ProcessSample, RdmaResources, SoakSample};
    use crate::suite::soak::{analyse, SoakOptions};
    use std::time::Duration;

    fn soak(leak: bool) -> SoakReport {
        let samples = (0..20u32)
            .map(|i| SoakSample {
                index: i,
                trial: i,
                t_s: f64::from(i + 1) * 30.0,
                throughput_gbytes_per_s: 0.1,
                latency_p50_ns: Some(40_000.0),
                latency_p99_ns: Some(90_000.0),
                retransmissions: Some(0),
                qp_errors: Some(0),
                processes: vec![ProcessSample {
                    process: "initiator".into(),
                    resources: ProcessResources {
                        rss_bytes: Some(40 << 20),
                        pinned_bytes: Some(1 << 20),
                        locked_bytes: Some(0),
                        rdma: Some(RdmaResources {
                            pds: 1,
                            cqs: 1,
                            qps: 1,
                            qps_in_error: 0,
                            mrs: if leak { 1 + u64::from(i) } else { 1 },
                            mr_bytes: 1 << 20,
                        }),
                        unavailable: Vec::new(),
                    },
                }],
            })
            .collect();
        let options =
            SoakOptions::new(Duration::from_secs(600), Duration::from_secs(30), leak).unwrap();
        analyse(options, 601.0, samples)
    }

    #[test]
    fn no_soak_no_blocks() {
        let report: RunReport = serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/bw-write.json"
        ))
        .unwrap();
        assert!(build(&report).unwrap().is_empty());
    }

    #[test]
    fn charts_the_series_and_tables_the_trends() {
        let mut report: RunReport = serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/bw-write.json"
        ))
        .unwrap();
        report.soak = Some(soak(true));
        let blocks = build(&report).unwrap();
        let slugs: Vec<&str> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::Chart(c) => Some(c.slug.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            slugs,
            ["soak-throughput", "soak-p99", "soak-rss", "soak-mrs"]
        );
        let table = blocks
            .iter()
            .find_map(|b| match b {
                Block::Table(t) => Some(t),
                _ => None,
            })
            .unwrap();
        let mrs = table.rows.iter().find(|r| r[1] == "rdma_mrs").unwrap();
        assert_eq!(mrs[8], "suspected");
        assert!(!mrs[5].contains("iB"), "counts stay counts: {mrs:?}");
        let rss = table.rows.iter().find(|r| r[1] == "rss_bytes").unwrap();
        assert_eq!(rss[5], "40.00 MiB", "{rss:?}");
        assert!(rss[3].starts_with('+') && rss[3].ends_with('B'), "{rss:?}");
        assert!(table.notes[0].contains("deliberate"));
        assert!(blocks
            .iter()
            .any(|b| matches!(b, Block::Note(n) if n.contains("potential leak"))));
    }
}
