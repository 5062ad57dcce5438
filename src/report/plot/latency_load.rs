//! Test 10.4: latency sensitivity to fabric congestion (draft §10.4
//! "Measurement"): P99 and P50 versus background load per (message size,
//! clock), with the inflection point marked, and the degradation factor at
//! 50, 75 and 90 % load. The curve and inflection come computed in the
//! results (`load_sweep`, see `stats::inflection`); nothing is refitted here.

use plotters::prelude::*;

use super::style::{color, draw_legend, log10_ticks, log_ns_label, svg_chart, TickedAxis, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_bytes, human_rate, optional, optional_time, time_ns};
use crate::results::{LoadSweep, RunReport};

/// The 10.4 section.
pub(super) const SECTION: Section = Section {
    test_id: "10.4",
    title:
        "P99 and P50 vs background load % per size and clock, inflection marked; degradation table",
    build,
};

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let sweeps: Vec<&LoadSweep> = report
        .load_sweep
        .iter()
        .filter(|s| s.points.iter().any(|p| p.p99_ns > 0))
        .collect();
    if sweeps.is_empty() {
        return Ok(vec![Block::Note(
            "No latency-versus-load curve in this file: nothing to chart for test 10.4.".into(),
        )]);
    }
    let svg = svg_chart("latency-vs-load", |root| draw(root, &sweeps))?;
    Ok(vec![
        Block::Chart(Chart {
            slug: "latency-vs-load".into(),
            title: "P99 and P50 latency vs background load".into(),
            caption: "Background load (percent of the measured capacity of the background QPs) on x; latency on a log₁₀ y axis: P99 solid with circles, P50 dashed, one colour per (message size, clock), all trials merged at each level. A large cross and a label mark the inflection point: the lowest level whose P99 exceeds the threshold factor × the unloaded P99 (none marked when no level does). These are verbs message latencies under a paced WRITE stream, standing in for the draft's TTFT/ITL.".into(),
            svg,
        }),
        Block::Table(summary_table(&sweeps)),
        Block::Table(points_table(&sweeps)),
    ])
}

/// Degradation factor at `level` %, or `-` when not measured.
fn factor_at(sweep: &LoadSweep, level: u32) -> String {
    sweep
        .points
        .iter()
        .find(|p| p.level_percent == level)
        .map_or_else(|| "-".into(), |p| optional(p.degradation_factor, 2))
}

fn summary_table(sweeps: &[&LoadSweep]) -> Table {
    let rows = sweeps
        .iter()
        .map(|s| {
            vec![
                human_bytes(s.msg_bytes),
                s.clock.clone(),
                optional_time(s.unloaded_p99_ns),
                format!("{:.2}", s.threshold_factor),
                s.inflection_percent
                    .map_or_else(|| "none".into(), |l| format!("{l} %")),
                factor_at(s, 50),
                factor_at(s, 75),
                factor_at(s, 90),
            ]
        })
        .collect();
    Table {
        title: "Inflection point and degradation factor per size and clock".into(),
        columns: [
            "size",
            "clock",
            "unloaded P99",
            "threshold factor",
            "inflection",
            "factor @ 50 %",
            "factor @ 75 %",
            "factor @ 90 %",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![
            "Degradation factor: P99 at the level / unloaded P99 (- : level not measured). Inflection: lowest level whose P99 exceeds threshold factor × unloaded P99; none: no level does.".into(),
        ],
    }
}

fn points_table(sweeps: &[&LoadSweep]) -> Table {
    let rows = sweeps
        .iter()
        .flat_map(|s| {
            s.points.iter().map(move |p| {
                vec![
                    human_bytes(s.msg_bytes),
                    s.clock.clone(),
                    format!("{} %", p.level_percent),
                    human_rate(p.achieved_gbytes_per_s),
                    time_ns(p.p50_ns),
                    time_ns(p.p99_ns),
                    optional(p.degradation_factor, 2),
                ]
            })
        })
        .collect();
    Table {
        title: "Latency vs background load".into(),
        columns: [
            "size",
            "clock",
            "load",
            "background achieved",
            "P50",
            "P99",
            "degradation factor",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: Vec::new(),
    }
}

fn draw(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    sweeps: &[&LoadSweep],
) -> Result<(), Box<dyn std::error::Error>> {
    let log_ns = |ns: u64| (ns.max(1) as f64).log10();
    let values: Vec<f64> = sweeps
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .flat_map(|p| [log_ns(p.p50_ns), log_ns(p.p99_ns)])
        })
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min) - 0.1;
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 0.3;
    let x_hi = sweeps
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.level_percent))
        .max()
        .unwrap_or(100)
        .max(10);
    let x_ticks: Vec<f64> = (0..=x_hi).step_by(10).map(f64::from).collect();
    let mut chart = ChartBuilder::on(root)
        .caption("Test 10.4: latency vs background load", (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(
            TickedAxis::new(-2.0..f64::from(x_hi) + 2.0, x_ticks),
            TickedAxis::new(lo..hi, log10_ticks(lo, hi, 12)),
        )?;
    chart
        .configure_mesh()
        .x_desc("background load (% of capacity)")
        .y_desc("latency (log₁₀ scale)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| log_ns_label(*y))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, s) in sweeps.iter().enumerate() {
        let c = color(i);
        let name = format!("{} {}", human_bytes(s.msg_bytes), s.clock);
        let p99: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| (f64::from(p.level_percent), log_ns(p.p99_ns)))
            .collect();
        let p50: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| (f64::from(p.level_percent), log_ns(p.p50_ns)))
            .collect();
        chart
            .draw_series(LineSeries::new(p99.clone(), c.stroke_width(2)))?
            .label(format!("{name} P99"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(p99.iter().map(|&xy| Circle::new(xy, 4, c.filled())))?;
        chart
            .draw_series(DashedLineSeries::new(p50, 6, 4, c.stroke_width(1)))?
            .label(format!("{name} P50"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(1)));
        if let Some(level) = s.inflection_percent {
            if let Some(&(x, y)) = p99.iter().find(|(x, _)| *x == f64::from(level)) {
                chart.draw_series(std::iter::once(Cross::new(
                    (x, y),
                    9,
                    BLACK.stroke_width(3),
                )))?;
                chart.draw_series(std::iter::once(Text::new(
                    format!("inflection {level} %"),
                    (x, y + 0.08),
                    (FONT, 14).into_font().color(&BLACK),
                )))?;
            }
        }
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::LoadPoint;

    fn sweep() -> LoadSweep {
        let point = |level: u32, p50: u64, p99: u64| LoadPoint {
            level_percent: level,
            achieved_gbytes_per_s: f64::from(level) / 100.0,
            p50_ns: p50,
            p99_ns: p99,
            degradation_factor: Some(p99 as f64 / 20_000.0),
        };
        LoadSweep {
            msg_bytes: 65536,
            clock: "initiator".into(),
            unloaded_p99_ns: Some(20_000),
            threshold_factor: 2.0,
            inflection_percent: Some(75),
            points: vec![
                point(0, 10_000, 20_000),
                point(25, 11_000, 22_000),
                point(50, 12_000, 30_000),
                point(75, 20_000, 60_000),
                point(90, 40_000, 200_000),
            ],
        }
    }

    fn report() -> RunReport {
        let mut report: RunReport = serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/lat-loaded.json"
        ))
        .unwrap();
        report.test_id = "10.4".into();
        report.load_sweep = vec![sweep()];
        report
    }

    #[test]
    fn curve_with_the_inflection_marked_and_tables() {
        let blocks = build(&report()).unwrap();
        let Block::Chart(chart) = &blocks[0] else {
            panic!("{blocks:?}")
        };
        assert!(chart.svg.contains("inflection 75 %"), "{}", chart.svg);
        assert!(chart.svg.contains("64K initiator P99"));
        assert!(chart.svg.contains("background load (% of capacity)"));
        let Block::Table(summary) = &blocks[1] else {
            panic!()
        };
        assert_eq!(
            summary.rows[0],
            [
                "64K",
                "initiator",
                "20.00 µs",
                "2.00",
                "75 %",
                "1.50",
                "3.00",
                "10.00"
            ]
        );
        let Block::Table(points) = &blocks[2] else {
            panic!()
        };
        assert_eq!(points.rows.len(), 5);
    }

    #[test]
    fn no_sweep_is_a_note_and_no_inflection_reads_none() {
        let mut empty = report();
        empty.load_sweep.clear();
        assert!(matches!(&build(&empty).unwrap()[..], [Block::Note(_)]));
        let mut flat = report();
        flat.load_sweep[0].inflection_percent = None;
        flat.load_sweep[0].points.truncate(1);
        let blocks = build(&flat).unwrap();
        let Block::Table(summary) = &blocks[1] else {
            panic!()
        };
        assert_eq!(summary.rows[0][4], "none");
        assert_eq!(summary.rows[0][5], "-");
    }
}
