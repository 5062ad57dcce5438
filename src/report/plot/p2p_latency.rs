//! Test 5.2: latency percentiles (draft §5.2 "Reporting Format"): the
//! table of P50/P95/P99/P99.9/max per message size and clock, and one chart
//! per clock of the percentile points per size.
//!
//! Results files keep only percentile summaries, not the full distribution,
//! so the chart plots the points min, P50, P95, P99, P99.9 and max joined by
//! straight lines, and says so: it is not a CDF, and nothing is claimed
//! between the points. The y axis is in "nines" (−log₁₀(1 − p)) so the tail
//! gets as much room as the body.

use std::collections::BTreeMap;
use std::f64::consts::LOG10_2;

use plotters::prelude::*;

use super::style::{color, draw_legend, log10_ticks, log_ns_label, svg_chart, TickedAxis, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_bytes, human_rate, time_ci, time_ns};
use crate::results::{BackgroundResult, ConfigResult, RunReport};
use crate::stats::LatencySummary;

/// The 5.2 section.
pub(super) const SECTION: Section = Section {
    test_id: "5.2",
    title: "latency percentile table and percentile-point chart per clock",
    build,
};

/// The points drawn, with their height in nines, −log₁₀(1 − p): P50 is
/// log₁₀ 2, P95 1 + log₁₀ 2. Max sits half a nine above P99.9 (where a CDF
/// would reach 100 %, infinitely far up this axis).
const LEVELS: [(&str, f64); 6] = [
    ("min", 0.0),
    ("P50", LOG10_2),
    ("P95", 1.0 + LOG10_2),
    ("P99", 2.0),
    ("P99.9", 3.0),
    ("max", 3.5),
];

fn values_ns(s: &LatencySummary) -> [u64; 6] {
    [s.min_ns, s.p50_ns, s.p95_ns, s.p99_ns, s.p999_ns, s.max_ns]
}

/// "50 %: 75.90 → 73.20 MB/s, within ±5 %", or "none".
fn background_label(background: Option<&BackgroundResult>) -> String {
    match background {
        None => "none".into(),
        Some(b) if b.level_percent == 0 => "0 % (no stream)".into(),
        Some(b) => format!(
            "{} %: {} → {}, {}",
            b.level_percent,
            human_rate(b.target_gbytes_per_s),
            human_rate(b.achieved_mean_gbytes_per_s),
            if b.within_5_percent {
                "within ±5 %".to_string()
            } else {
                format!("NOT within ±5 % (worst {:.1} %)", b.worst_deviation_percent)
            }
        ),
    }
}

fn table(report: &RunReport) -> Table {
    let mut rows = Vec::new();
    let mut unreliable = false;
    for config in &report.results {
        let s = &config.summary;
        for clock in &s.latency {
            let l = &clock.summary;
            unreliable |= !l.p999_reliable;
            let across = |per: &crate::results::PerClock<crate::stats::TrialInterval>| {
                time_ci(per.get(&clock.clock))
            };
            rows.push(vec![
                human_bytes(config.msg_bytes),
                clock.clock.clone(),
                background_label(config.background.as_ref()),
                l.count.to_string(),
                time_ns(l.min_ns),
                time_ns(l.p50_ns),
                time_ns(l.p95_ns),
                time_ns(l.p99_ns),
                if l.p999_reliable {
                    time_ns(l.p999_ns)
                } else {
                    format!("{}*", time_ns(l.p999_ns))
                },
                time_ns(l.max_ns),
                time_ns(l.p99_minus_p50_ns),
                across(&s.p50_ns),
                across(&s.p99_ns),
            ]);
        }
    }
    let loaded = report.results.iter().any(|c| c.background.is_some());
    let mut notes = vec![
        "Percentiles of all trials' samples merged. The last two columns are the per-trial P50 and P99 as mean ± CI95 across trials: how stable they are run to run.".to_string(),
        if loaded {
            "Background load: a rate-paced WRITE stream on its own QPs between the same two endpoints, at the level shown (percent of the unpaced capacity of those QPs measured just before): target → achieved GB/s (mean over trials), and whether every trial held the target within ±5 %.".to_string()
        } else {
            "Background load: none. These are unloaded runs (one message outstanding); the draft's 25/50/75/90 % load levels are not measured by this file.".to_string()
        },
    ];
    if unreliable {
        notes.push(
            "* P99.9 from fewer than 1000 samples is the maximum or close to it, not a percentile."
                .into(),
        );
    }
    Table {
        title: "Latency percentiles per message size and clock".into(),
        columns: [
            "size",
            "clock",
            "background load",
            "samples",
            "min",
            "P50",
            "P95",
            "P99",
            "P99.9",
            "max",
            "P99−P50",
            "P50 across trials",
            "P99 across trials",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes,
    }
}

/// The legend label of one configuration: its size, and its background
/// level when loaded.
fn series_label(config: &ConfigResult) -> String {
    match &config.background {
        Some(b) => format!(
            "{} @ {} % load",
            human_bytes(config.msg_bytes),
            b.level_percent
        ),
        None => human_bytes(config.msg_bytes),
    }
}

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    // clock → [(size label, summary)], sizes in run order; loaded runs
    // name the background level too ("64K @ 50 %").
    let mut by_clock: BTreeMap<&str, Vec<(String, &LatencySummary)>> = BTreeMap::new();
    for config in &report.results {
        for clock in &config.summary.latency {
            if clock.summary.count > 0 {
                by_clock
                    .entry(clock.clock.as_str())
                    .or_default()
                    .push((series_label(config), &clock.summary));
            }
        }
    }
    let mut blocks = vec![Block::Table(table(report))];
    if by_clock.is_empty() {
        blocks.push(Block::Note(
            "No latency samples to chart: no configuration completed.".into(),
        ));
    }
    for (clock, series) in by_clock {
        let slug = format!("latency-{clock}");
        let svg = svg_chart(&slug, |root| draw(root, clock, &series))?;
        blocks.push(Block::Chart(Chart {
            slug,
            title: format!("Latency percentile points, {clock} clock"),
            caption: format!(
                "Percentile points (min, P50, P95, P99, P99.9, max) of the {clock} clock per message size, latency on a log scale, joined by straight lines. Not a full CDF: the results file keeps only these points. Hollow markers: P99.9 from fewer than 1000 samples."
            ),
            svg,
        }));
    }
    Ok(blocks)
}

fn draw(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    clock: &str,
    series: &[(String, &LatencySummary)],
) -> Result<(), Box<dyn std::error::Error>> {
    let log_ns = |ns: u64| (ns.max(1) as f64).log10();
    let all = series.iter().flat_map(|(_, s)| values_ns(s)).map(log_ns);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let pad = ((hi - lo) * 0.05).max(0.05);
    let (x_lo, x_hi) = (lo - pad, hi + pad);
    let ticks = log10_ticks(x_lo, x_hi, 12);
    let y_ticks: Vec<f64> = LEVELS.iter().map(|(_, y)| *y).collect();

    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Test 5.2: latency percentile points ({clock} clock)"),
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(
            TickedAxis::new(x_lo..x_hi, ticks),
            TickedAxis::new(-0.15..3.75, y_ticks),
        )?;
    chart
        .configure_mesh()
        .x_desc("latency (log scale)")
        .y_desc("percentile (not a full CDF)")
        .x_label_formatter(&|x| log_ns_label(*x))
        .y_label_formatter(&|y| {
            LEVELS
                .iter()
                .find(|(_, level)| (level - y).abs() < 1e-6)
                .map_or(String::new(), |(name, _)| (*name).to_string())
        })
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;

    for (i, (label, summary)) in series.iter().enumerate() {
        let c = color(i);
        let points: Vec<(f64, f64)> = values_ns(summary)
            .into_iter()
            .zip(LEVELS)
            .map(|(ns, (_, y))| (log_ns(ns), y))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        let reliable = summary.p999_reliable;
        chart.draw_series(points.into_iter().zip(LEVELS).map(move |(p, (name, _))| {
            let hollow = name == "P99.9" && !reliable;
            let style = if hollow {
                c.stroke_width(2)
            } else {
                c.filled()
            };
            Circle::new(p, 4, style)
        }))?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> RunReport {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/lat-write-imm.json"
        ))
        .unwrap()
    }

    #[test]
    fn a_table_row_per_size_and_clock_and_a_chart_per_clock() {
        let report = fixture();
        let blocks = build(&report).unwrap();
        let Block::Table(table) = &blocks[0] else {
            panic!()
        };
        let clocks: usize = report.results.iter().map(|c| c.summary.latency.len()).sum();
        assert_eq!(table.rows.len(), clocks);
        assert!(table.rows.iter().all(|r| r.len() == table.columns.len()));
        // 400 samples: P99.9 is flagged.
        assert!(table.rows[0][8].ends_with('*'), "{:?}", table.rows[0]);
        let charts: Vec<&Chart> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::Chart(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(charts.len(), 3, "initiator, pingpong, target");
        assert!(charts[0].svg.contains("not a full CDF"));
        assert!(charts[0].svg.contains("\nP99.9\n"));
        assert!(charts[0].caption.contains("Not a full CDF"));
    }

    #[test]
    fn loaded_runs_show_the_background_level() {
        let report: RunReport = serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/lat-loaded.json"
        ))
        .unwrap();
        let blocks = build(&report).unwrap();
        let Block::Table(table) = &blocks[0] else {
            panic!()
        };
        assert!(table.rows.iter().any(|r| r[2] == "0 % (no stream)"));
        let loaded = table
            .rows
            .iter()
            .find(|r| r[2].starts_with("50 %"))
            .unwrap();
        assert!(loaded[2].contains("B/s, within ±5 %"), "{loaded:?}");
        assert!(table.notes[1].contains("rate-paced"));
        let Block::Chart(chart) = &blocks[1] else {
            panic!()
        };
        assert!(chart.svg.contains("64K @ 50 % load"));
        assert_eq!(background_label(None), "none");
    }

    #[test]
    fn the_first_row_reads_in_human_units() {
        let report = fixture();
        let Block::Table(table) = &build(&report).unwrap()[0] else {
            panic!()
        };
        let s = &report.results[0].summary.latency[0].summary;
        assert_eq!(
            table.rows[0][5],
            crate::report::units::human_ns(s.p50_ns as f64)
        );
        assert!(table.rows[0][5].ends_with("s"), "{:?}", table.rows[0]);
    }
}
