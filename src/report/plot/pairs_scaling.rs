//! Test 5.3: concurrent KV cache transfer scaling (draft §5.3 "Reporting
//! Format"): the dual-axis chart (N pairs on a log₂ x axis, aggregate GB/s
//! on the left y axis, P99 latency on the right, the JFI annotated at each
//! N), the KPI table per N and the per-pair table of the largest N. Counter
//! deltas are not here (fabric_health.rs).

use plotters::prelude::*;

use super::style::{color, draw_legend, log2_ticks, short_number, svg_chart, TickedAxis, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_bytes, mean_ci, rate_ci, time_ci, time_ns, RateScale, TimeScale};
use crate::results::{PairsPoint, RunReport};
use crate::stats::TrialInterval;

/// The 5.3 section.
pub(super) const SECTION: Section = Section {
    test_id: "5.3",
    title: "aggregate GB/s and P99 vs concurrent pairs (dual axis), JFI per N; per-N and per-pair tables",
    build,
};

/// One N on the chart: log₂ N, the aggregate GB/s and P99 across trials
/// (in the chart's [`RateScale`] and [`TimeScale`] units), and the JFI
/// label.
struct Point {
    log2_pairs: f64,
    gbytes_per_s: TrialInterval,
    p99: Option<TrialInterval>,
    jfi_label: String,
}

/// The annotation written above each N: `JFI 0.998`, or why there is none.
pub(super) fn jfi_label(point: &PairsPoint) -> String {
    match (&point.summary.jain_index, point.pairs) {
        (Some(iv), _) => format!("JFI {:.3}", iv.mean),
        (None, 1) => "JFI n/a (1 pair)".into(),
        (None, _) => "JFI n/a".into(),
    }
}

/// `iv` scaled by `scale` (ns → the axis unit, GB/s → the axis unit).
fn scaled(iv: &TrialInterval, scale: f64) -> TrialInterval {
    let s = |v: Option<f64>| v.map(|v| v * scale);
    TrialInterval {
        n: iv.n,
        mean: iv.mean * scale,
        stdev: s(iv.stdev),
        ci95_half_width: s(iv.ci95_half_width),
        ci95_low: s(iv.ci95_low),
        ci95_high: s(iv.ci95_high),
    }
}

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let mut sorted: Vec<&PairsPoint> = report.pairs.iter().collect();
    sorted.sort_by_key(|p| p.pairs);
    let max_p99_ns = sorted
        .iter()
        .filter_map(|p| p.summary.p99_ns.as_ref())
        .map(|iv| iv.ci95_high.unwrap_or(iv.mean).max(iv.mean))
        .fold(0.0f64, f64::max);
    let unit = TimeScale::for_max_ns(max_p99_ns);
    let max_gbytes = sorted
        .iter()
        .filter_map(|p| p.summary.aggregate_gbytes_per_s.as_ref())
        .map(|iv| iv.ci95_high.unwrap_or(iv.mean).max(iv.mean))
        .fold(0.0f64, f64::max);
    let rate = RateScale::for_max_gbytes(max_gbytes);
    let points: Vec<Point> = sorted
        .iter()
        .filter_map(|p| {
            p.summary.aggregate_gbytes_per_s.clone().map(|gb| Point {
                log2_pairs: f64::from(p.pairs.max(1)).log2(),
                gbytes_per_s: scaled(&gb, rate.per_gbyte),
                p99: p.summary.p99_ns.as_ref().map(|iv| scaled(iv, unit.per_ns)),
                jfi_label: jfi_label(p),
            })
        })
        .collect();
    if points.is_empty() {
        return Ok(vec![Block::Note(
            "No concurrent-pairs point completed: nothing to chart or tabulate for test 5.3."
                .into(),
        )]);
    }
    let svg = svg_chart("pairs-scaling", |root| draw(root, &points, rate, unit))?;
    let mut blocks = vec![Block::Chart(Chart {
        slug: "pairs-scaling".into(),
        title: "Aggregate throughput and P99 latency vs concurrent pairs".into(),
        caption: format!("N concurrent prefill→decode pairs on a log₂ x axis. Left axis (solid, circles): aggregate throughput in {} (decimal units; all pairs' bytes over first post → last completion), mean across trials with 95 % CI bars. Right axis (dashed, triangles): P99 message completion latency of the worst pair in {}, mean across trials with 95 % CI bars. The Jain fairness index across pairs' throughput (mean across trials) is written above each N; none for one pair.", rate.name, unit.name),
        svg,
    })];
    blocks.push(Block::Table(per_n_table(&sorted)));
    if let Some(largest) = sorted.last() {
        blocks.push(Block::Table(per_pair_table(report, largest)));
    }
    Ok(blocks)
}

/// `-` (no value) as `n/a`: JFI and max/min need two pairs.
fn na(cell: String) -> String {
    if cell == "-" {
        "n/a".into()
    } else {
        cell
    }
}

fn per_n_table(points: &[&PairsPoint]) -> Table {
    let rows = points
        .iter()
        .map(|p| {
            let s = &p.summary;
            vec![
                p.pairs.to_string(),
                human_bytes(p.msg_bytes),
                p.qps_per_pair.to_string(),
                s.trials.to_string(),
                rate_ci(s.aggregate_gbytes_per_s.as_ref()),
                rate_ci(s.per_pair_gbytes_per_s.as_ref()),
                time_ci(s.p50_ns.as_ref()),
                time_ci(s.p99_ns.as_ref()),
                na(mean_ci(s.jain_index.as_ref(), 1.0, 4)),
                na(mean_ci(s.max_min_ratio.as_ref(), 1.0, 2)),
            ]
        })
        .collect();
    Table {
        title: "KPI summary per N concurrent pairs".into(),
        columns: [
            "pairs N",
            "size",
            "QPs per pair",
            "trials",
            "aggregate throughput (mean ± CI95)",
            "per-pair throughput (mean ± CI95)",
            "P50 (median pair)",
            "P99 (worst pair)",
            "JFI",
            "max/min",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![
            "Every value is the mean ± 95 % Student-t CI across trials (no CI with one trial). Per-pair throughput: mean over pairs of each pair's bytes / (its first post → last completion). P50: median over pairs of each pair's P50; P99: the worst pair's P99. JFI: Jain index over the pairs' throughput; max/min: largest over smallest pair throughput.".into(),
        ],
    }
}

/// "rank 8 (node 1 prefill0)".
fn rank_label(report: &RunReport, rank: u32, node: u32) -> String {
    let name = report
        .cluster
        .as_ref()
        .and_then(|c| c.nodes.iter().find(|n| n.node == node))
        .map(|n| format!(" {}", n.name))
        .unwrap_or_default();
    format!("rank {rank} (node {node}{name})")
}

fn per_pair_table(report: &RunReport, point: &PairsPoint) -> Table {
    let rows = point
        .summary
        .per_pair
        .iter()
        .map(|pair| {
            let route = point
                .trials
                .iter()
                .flat_map(|t| &t.per_pair)
                .find(|r| r.pair == pair.pair)
                .map_or("-".into(), |r| {
                    format!(
                        "{} → {}",
                        rank_label(report, r.sender_rank, r.sender_node),
                        rank_label(report, r.receiver_rank, r.receiver_node)
                    )
                });
            let merged = &pair.latency;
            let (p50, p99) = if merged.count == 0 {
                ("-".into(), "-".into())
            } else {
                (time_ns(merged.p50_ns), time_ns(merged.p99_ns))
            };
            vec![
                pair.pair.to_string(),
                route,
                rate_ci(pair.gbytes_per_s.as_ref()),
                merged.count.to_string(),
                p50,
                p99,
            ]
        })
        .collect();
    Table {
        title: format!("Per pair at N = {} (the largest N)", point.pairs),
        columns: [
            "pair",
            "sender → receiver",
            "throughput (mean ± CI95)",
            "messages",
            "P50",
            "P99",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![
            "Throughput: the pair's bytes / (its first post → last completion), mean ± CI95 across trials. P50/P99: the pair's message completion latencies (post → completion) of all trials merged.".into(),
        ],
    }
}

fn draw(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    points: &[Point],
    rate: RateScale,
    unit: TimeScale,
) -> Result<(), Box<dyn std::error::Error>> {
    let ns: Vec<f64> = points.iter().map(|p| 2f64.powf(p.log2_pairs)).collect();
    let ticks = log2_ticks(&ns, 12);
    let (x_lo, x_hi) = (ticks[0] - 0.5, ticks[ticks.len() - 1] + 0.5);
    let top = |iv: &TrialInterval| iv.ci95_high.unwrap_or(iv.mean).max(iv.mean);
    let gb_hi = points
        .iter()
        .map(|p| top(&p.gbytes_per_s))
        .fold(0.0f64, f64::max);
    let us_hi = points
        .iter()
        .filter_map(|p| p.p99.as_ref().map(top))
        .fold(0.0f64, f64::max);
    // Headroom above the tallest bar for the JFI labels and the legend.
    let gb_hi = if gb_hi > 0.0 { gb_hi * 1.35 } else { 1.0 };
    let us_hi = if us_hi > 0.0 { us_hi * 1.35 } else { 1.0 };
    let x_axis = TickedAxis::new(x_lo..x_hi, ticks);

    let mut chart = ChartBuilder::on(root)
        .caption(
            "Test 5.3: aggregate throughput and P99 vs concurrent pairs",
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .right_y_label_area_size(72)
        .build_cartesian_2d(x_axis.clone(), 0.0..gb_hi)?
        .set_secondary_coord(x_axis, 0.0..us_hi);
    chart
        .configure_mesh()
        .x_desc("concurrent pairs N (log₂ scale)")
        .y_desc(format!("aggregate throughput ({})", rate.name))
        .x_label_formatter(&|x| format!("{}", 2f64.powf(*x).round()))
        .y_label_formatter(&|y| short_number(*y))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc(format!("P99 latency ({})", unit.name))
        .y_label_formatter(&|y| short_number(*y))
        .label_style((FONT, 14))
        .draw()?;

    let (gb_color, us_color) = (color(0), color(3));
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.log2_pairs, p.gbytes_per_s.mean)),
            gb_color.stroke_width(2),
        ))?
        .label(format!("aggregate {} (left)", rate.name))
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], gb_color.stroke_width(2))
        });
    chart.draw_series(
        points
            .iter()
            .map(|p| Circle::new((p.log2_pairs, p.gbytes_per_s.mean), 4, gb_color.filled())),
    )?;
    chart.draw_series(points.iter().filter_map(|p| {
        let iv = &p.gbytes_per_s;
        iv.ci95_low.zip(iv.ci95_high).map(|(lo, hi)| {
            ErrorBar::new_vertical(
                p.log2_pairs,
                lo.max(0.0),
                iv.mean,
                hi,
                gb_color.stroke_width(1),
                8,
            )
        })
    }))?;
    chart.draw_series(points.iter().map(|p| {
        let top = p.gbytes_per_s.ci95_high.unwrap_or(p.gbytes_per_s.mean);
        Text::new(
            p.jfi_label.clone(),
            (p.log2_pairs, top.max(p.gbytes_per_s.mean)),
            (FONT, 14)
                .into_font()
                .color(&BLACK)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Bottom,
                )),
        )
    }))?;

    let latency: Vec<(f64, &TrialInterval)> = points
        .iter()
        .filter_map(|p| p.p99.as_ref().map(|iv| (p.log2_pairs, iv)))
        .collect();
    chart
        .draw_secondary_series(DashedLineSeries::new(
            latency.iter().map(|(x, iv)| (*x, iv.mean)),
            8,
            5,
            us_color.stroke_width(2),
        ))?
        .label(format!("P99 latency {} (right)", unit.name))
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], us_color.stroke_width(2))
        });
    chart.draw_secondary_series(
        latency
            .iter()
            .map(|(x, iv)| TriangleMarker::new((*x, iv.mean), 6, us_color.filled())),
    )?;
    chart.draw_secondary_series(latency.iter().filter_map(|(x, iv)| {
        iv.ci95_low.zip(iv.ci95_high).map(|(lo, hi)| {
            ErrorBar::new_vertical(*x, lo.max(0.0), iv.mean, hi, us_color.stroke_width(1), 8)
        })
    }))?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> RunReport {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/pairs-5.3.json"
        ))
        .unwrap()
    }

    #[test]
    fn the_chart_has_both_axes_and_a_jfi_per_n() {
        let report = fixture();
        let blocks = build(&report).unwrap();
        let Block::Chart(chart) = &blocks[0] else {
            panic!("{blocks:?}")
        };
        // SoftRoCE moves well under 1 GB/s: the axis keeps 3–4 digits in MB/s.
        assert!(
            chart.svg.contains("aggregate throughput (MB/s)"),
            "{}",
            chart.svg
        );
        // SoftRoCE's P99 of 1 MiB writes reaches 100 ms: the axis is in ms.
        assert!(chart.svg.contains("P99 latency (ms)"));
        assert!(chart.caption.contains("latency of the worst pair in ms"));
        assert!(chart.svg.contains("JFI n/a (1 pair)"), "N = 1 has no JFI");
        for p in report.pairs.iter().filter(|p| p.pairs > 1) {
            let label = format!("JFI {:.3}", p.summary.jain_index.as_ref().unwrap().mean);
            assert!(chart.svg.contains(&label), "{label} not annotated");
        }
        // Ticks at the N measured.
        assert!(chart.svg.contains("\n4\n") && chart.svg.contains("\n2\n"));
    }

    #[test]
    fn tables_per_n_and_per_pair_of_the_largest_n() {
        let report = fixture();
        let blocks = build(&report).unwrap();
        let tables: Vec<&Table> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::Table(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[0].rows.len(), report.pairs.len());
        assert_eq!(tables[0].rows[0][0], "1");
        assert!(tables[0].rows[2][4].contains(" ± "), "{:?}", tables[0].rows);
        assert_eq!(tables[1].title, "Per pair at N = 4 (the largest N)");
        assert_eq!(tables[1].rows.len(), 4);
        assert!(
            tables[1].rows[0][1].contains("→ rank"),
            "{:?}",
            tables[1].rows[0]
        );
        assert!(tables[1].rows[0][1].contains("prefill0"));
    }

    #[test]
    fn no_point_is_a_note() {
        let mut report = fixture();
        report.pairs.clear();
        assert!(matches!(&build(&report).unwrap()[..], [Block::Note(_)]));
        let mut one = fixture();
        one.pairs.truncate(1);
        one.pairs[0].summary.jain_index = None;
        assert_eq!(jfi_label(&one.pairs[0]), "JFI n/a (1 pair)");
        assert!(build(&one).is_ok());
    }
}
