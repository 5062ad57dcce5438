//! Tests 8.1 and 8.2: incast flow completion times (draft §8.1, §8.2). The
//! results keep every transfer's FCT, so the chart is a true empirical CDF
//! per (senders, arrival window) point, not a curve through percentiles.
//! Then a KPI table per point (FCT P50/P99, last byte, receive GB/s, JFI,
//! and the ECN and PFC counts the counters saw) and a per-sender table of
//! the last point. The full counter table is in fabric_health.rs.

use plotters::prelude::*;

use super::fabric_health::{kpi_total, KpiTotal};
use super::style::{color, draw_legend, short_number, svg_chart, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_bytes, mean_ci, optional_time, rate_ci, time_ci, TimeScale};
use crate::results::{CounterKpis, IncastPoint, RunReport};
use crate::stats::across_trials;
use crate::stats::nearest_rank;

/// The 8.1 section (ECN marking under incast).
pub(super) const SECTION_8_1: Section = Section {
    test_id: "8.1",
    title: "incast: empirical FCT CDF per (senders, window), KPI table per point, per-sender table",
    build,
};

/// The 8.2 section (PFC under bursty transfers): the same tables and chart.
pub(super) const SECTION_8_2: Section = Section {
    test_id: "8.2",
    title: "bursty incast: empirical FCT CDF per (senders, window), KPI table per point, per-sender table",
    build,
};

/// Most steps drawn per CDF line; beyond it every k-th sample is kept (the
/// last always), which keeps the SVG small and the curve exact at the
/// samples drawn.
const MAX_CDF_STEPS: usize = 2000;

/// `(M senders, T window)` as a legend or table label.
fn point_label(p: &IncastPoint) -> String {
    format!(
        "{} senders × {} burst{}, window {}",
        p.senders,
        p.bursts_per_sender,
        if p.bursts_per_sender == 1 { "" } else { "s" },
        window_label(p.arrival_window_ns)
    )
}

/// An arrival window in the unit that reads best: `0 (simultaneous)`, `100 µs`, `1 ms`.
fn window_label(ns: u64) -> String {
    if ns == 0 {
        "0 (simultaneous)".into()
    } else if ns % 1_000_000 == 0 {
        format!("{} ms", ns / 1_000_000)
    } else {
        format!("{} µs", ns as f64 / 1000.0)
    }
}

/// Every FCT of the point, all trials, sorted ascending, ns.
fn sorted_fcts<'a>(
    transfers: impl Iterator<Item = &'a crate::results::TransferResult>,
) -> Vec<u64> {
    let mut fcts: Vec<u64> = transfers.map(|t| t.fct_ns).collect();
    fcts.sort_unstable();
    fcts
}

/// The steps of the empirical CDF of `sorted`: (FCT in `scale`'s unit,
/// fraction ≤).
fn cdf_steps(sorted: &[u64], scale: TimeScale) -> Vec<(f64, f64)> {
    let n = sorted.len();
    let stride = n.div_ceil(MAX_CDF_STEPS).max(1);
    let mut steps: Vec<(f64, f64)> = sorted
        .iter()
        .enumerate()
        .filter(|(i, _)| (i + 1) % stride == 0 || i + 1 == n)
        .map(|(i, &v)| (scale.of(v), (i + 1) as f64 / n as f64))
        .collect();
    // Equal FCTs make one step, at the fraction of the last of them.
    steps.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 = later.1;
        }
        same
    });
    steps
}

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let lines: Vec<(String, Vec<u64>)> = report
        .incast
        .iter()
        .map(|p| {
            let fcts = sorted_fcts(
                p.trials
                    .iter()
                    .flat_map(|t| &t.per_sender)
                    .flat_map(|s| &s.transfers),
            );
            (point_label(p), fcts)
        })
        .filter(|(_, fcts)| !fcts.is_empty())
        .collect();
    if lines.is_empty() {
        return Ok(vec![Block::Note(format!(
            "No incast point completed a transfer: nothing to chart or tabulate for test {}.",
            report.test_id
        ))]);
    }
    let title = format!(
        "Test {}: flow completion time, empirical CDF",
        report.test_id
    );
    let svg = svg_chart("fct-cdf", |root| draw(root, &title, &lines))?;
    let total: usize = lines.iter().map(|(_, f)| f.len()).sum();
    let mut blocks = vec![Block::Chart(Chart {
        slug: "fct-cdf".into(),
        title: "Flow completion time (empirical CDF)".into(),
        caption: format!(
            "Empirical CDF of every transfer's flow completion time (FCT = last byte acknowledged − scheduled start, in {}), all trials pooled, one step line per (senders, arrival window) point; {total} transfers in all. Built from the raw per-transfer values in the results file, not from percentile summaries{}.",
            fct_scale(&lines).name,
            if lines.iter().any(|(_, f)| f.len() > MAX_CDF_STEPS) {
                format!("; lines with more than {MAX_CDF_STEPS} transfers are drawn through every k-th sample")
            } else {
                String::new()
            }
        ),
        svg,
    })];
    blocks.push(Block::Table(per_point_table(report)));
    if let Some(last) = report.incast.last() {
        blocks.push(Block::Table(per_sender_table(last)));
    }
    blocks.extend(super::counter_series::onset_blocks(report)?);
    Ok(blocks)
}

/// `total` of one KPI over every trial and node of `point`, as a cell.
fn counter_cell(point: &IncastPoint, kpi: fn(&CounterKpis) -> Option<i64>) -> String {
    let counters = point.trials.iter().flat_map(|t| &t.counters);
    let total: KpiTotal = kpi_total(counters.map(|c| kpi(&c.deltas.kpis)));
    total.to_string()
}

fn per_point_table(report: &RunReport) -> Table {
    let rows = report
        .incast
        .iter()
        .map(|p| {
            let s = &p.summary;
            vec![
                p.senders.to_string(),
                p.bursts_per_sender.to_string(),
                human_bytes(p.msg_bytes),
                window_label(p.arrival_window_ns),
                s.trials.to_string(),
                s.fct.count.to_string(),
                time_ci(s.fct_p50_ns.as_ref()),
                time_ci(s.fct_p99_ns.as_ref()),
                time_ci(s.last_byte_ns.as_ref()),
                rate_ci(s.aggregate_rx_gbytes_per_s.as_ref()),
                mean_ci(s.jain_index.as_ref(), 1.0, 4),
                counter_cell(p, |k| k.ecn_marked_packets),
                format!(
                    "{} / {}",
                    counter_cell(p, |k| k.pfc_rx_pause),
                    counter_cell(p, |k| k.pfc_tx_pause)
                ),
            ]
        })
        .collect();
    Table {
        title: "KPI summary per incast point".into(),
        columns: [
            "senders M",
            "bursts per sender",
            "size",
            "window",
            "trials",
            "transfers",
            "FCT P50 (mean ± CI95)",
            "FCT P99 (mean ± CI95)",
            "last byte",
            "rx throughput",
            "JFI",
            "ECN-CE marked pkts",
            "PFC pause rx / tx",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![
            "FCT P50/P99 and last byte (common start → last byte acknowledged): per-trial values, mean ± 95 % Student-t CI across trials. rx throughput: all bytes / (first post → last done), as the receiver port saw them. JFI: Jain index over the senders' throughput. ECN-CE and PFC counts: NIC counter deltas summed over every trial and node; n/a when no NIC of the run exposes the counter (not 0).".into(),
        ],
    }
}

fn per_sender_table(point: &IncastPoint) -> Table {
    let mut senders: Vec<u32> = point
        .trials
        .iter()
        .flat_map(|t| t.per_sender.iter().map(|s| s.sender))
        .collect();
    senders.sort_unstable();
    senders.dedup();
    let rows = senders
        .iter()
        .map(|&sender| {
            let of_sender: Vec<_> = point
                .trials
                .iter()
                .flat_map(|t| t.per_sender.iter().filter(move |s| s.sender == sender))
                .collect();
            let gbytes: Vec<f64> = of_sender.iter().map(|s| s.gbytes_per_s).collect();
            let fcts = sorted_fcts(of_sender.iter().flat_map(|s| &s.transfers));
            let first = of_sender[0];
            vec![
                sender.to_string(),
                format!("rank {} (node {})", first.rank, first.node),
                fcts.len().to_string(),
                rate_ci(across_trials(&gbytes).as_ref()),
                optional_time(nearest_rank(&fcts, 0.5)),
                optional_time(nearest_rank(&fcts, 0.99)),
                optional_time(fcts.last().copied()),
            ]
        })
        .collect();
    Table {
        title: format!("Per sender at the last point ({})", point_label(point)),
        columns: [
            "sender",
            "rank (node)",
            "transfers",
            "throughput (mean ± CI95)",
            "FCT P50",
            "FCT P99",
            "FCT max",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![
            "Throughput: the sender's bytes / (its first scheduled start → last done), mean ± CI95 across trials. FCT percentiles: nearest rank over the sender's raw transfer FCTs of all trials.".into(),
        ],
    }
}

/// The FCT axis' unit: from the longest FCT of every line.
fn fct_scale(lines: &[(String, Vec<u64>)]) -> TimeScale {
    let max = lines.iter().filter_map(|(_, f)| f.last()).max();
    TimeScale::for_max_ns(max.map_or(0.0, |&ns| ns as f64))
}

fn draw(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    lines: &[(String, Vec<u64>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let scale = fct_scale(lines);
    let max = lines
        .iter()
        .filter_map(|(_, f)| f.last())
        .map(|&ns| scale.of(ns))
        .fold(0.0f64, f64::max);
    let x_hi = if max > 0.0 { max * 1.05 } else { 1.0 };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_hi, 0.0..1.05)?;
    chart
        .configure_mesh()
        .x_desc(format!("flow completion time ({})", scale.name))
        .y_desc("fraction of transfers ≤ FCT")
        .x_label_formatter(&|x| short_number(*x))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, (label, fcts)) in lines.iter().enumerate() {
        let c = color(i);
        let steps = cdf_steps(fcts, scale);
        // A step line: flat at the previous fraction up to each sample,
        // then up to its fraction.
        let mut path = vec![(0.0, 0.0)];
        let mut previous = 0.0;
        for &(x, fraction) in &steps {
            path.push((x, previous));
            path.push((x, fraction));
            previous = fraction;
        }
        path.push((x_hi, previous));
        chart
            .draw_series(LineSeries::new(path, c.stroke_width(2)))?
            .label(format!("{label} (n={})", fcts.len()))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::blocks::tables;

    fn fixture() -> RunReport {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/incast-8.2.json"
        ))
        .unwrap()
    }

    #[test]
    fn the_cdf_is_empirical_with_one_line_per_point() {
        let report = fixture();
        let blocks = build(&report).unwrap();
        let Block::Chart(chart) = &blocks[0] else {
            panic!("{blocks:?}")
        };
        assert!(chart.caption.contains("Empirical CDF"));
        assert!(chart
            .svg
            .contains("2 senders × 2 bursts, window 1 ms (n=12)"));
        assert!(chart
            .svg
            .contains("3 senders × 2 bursts, window 1 ms (n=18)"));
        let t = tables(&blocks);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].rows.len(), 2);
        assert_eq!(t[0].rows[0][3], "1 ms");
        // SoftRoCE has no ECN or PFC counters: n/a, never 0.
        assert_eq!(t[0].rows[0][11], "n/a");
        assert_eq!(t[0].rows[0][12], "n/a / n/a");
        assert_eq!(t[1].rows.len(), 3, "3 senders at the last point");
        assert_eq!(t[1].rows[0][2], "6", "2 bursts × 3 trials");
    }

    #[test]
    fn percentiles_and_steps_are_exact() {
        let sorted = [10, 20, 30, 40];
        assert_eq!(nearest_rank(&sorted, 0.5), Some(20));
        assert_eq!(nearest_rank(&sorted, 0.99), Some(40));
        assert_eq!(nearest_rank(&sorted, 0.0), Some(10));
        assert_eq!(nearest_rank(&[], 0.5), None);
        let ms = TimeScale::for_max_ns(2e6);
        let steps = cdf_steps(&[1_000_000, 1_000_000, 2_000_000], ms);
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert_eq!(steps[0].0, 1.0);
        assert!((steps[0].1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(steps[1], (2.0, 1.0));
        let many: Vec<u64> = (0..10_000).collect();
        let thin = cdf_steps(&many, ms);
        assert!(thin.len() <= MAX_CDF_STEPS + 1);
        assert_eq!(thin.last().unwrap().1, 1.0);
        assert_eq!(window_label(0), "0 (simultaneous)");
        assert_eq!(window_label(100_000), "100 µs");
    }

    #[test]
    fn no_transfer_is_a_note() {
        let mut report = fixture();
        report.incast.clear();
        assert!(matches!(&build(&report).unwrap()[..], [Block::Note(_)]));
    }
}
