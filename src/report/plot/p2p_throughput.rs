//! Test 5.1: throughput against message size (draft §5.1 "Reporting
//! Format"): log-scale message size on x, GB/s on y, one line per QP count
//! with 95 % CI error bars, and the NIC line rate as a reference line.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::style::{color, draw_legend, log2_ticks, short_number, svg_chart, TickedAxis, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart};
use crate::report::units::{human_bytes, human_rate, qp_count, RateScale};
use crate::results::RunReport;

/// The 5.1 section.
pub(super) const SECTION: Section = Section {
    test_id: "5.1",
    title: "throughput vs message size, one line per QP count, line-rate reference",
    build,
};

/// One measured point: log₂ size, mean GB/s, CI95 bounds when known.
struct Point {
    log2_bytes: f64,
    mean: f64,
    ci95: Option<(f64, f64)>,
}

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let mut lines: BTreeMap<u32, Vec<Point>> = BTreeMap::new();
    for config in &report.results {
        if let Some(iv) = &config.summary.gbytes_per_s {
            lines.entry(config.qps).or_default().push(Point {
                log2_bytes: (config.msg_bytes.max(1) as f64).log2(),
                mean: iv.mean,
                ci95: iv.ci95_low.zip(iv.ci95_high),
            });
        }
    }
    if lines.is_empty() {
        return Ok(vec![Block::Note(
            "No throughput to chart: no configuration completed.".into(),
        )]);
    }
    for points in lines.values_mut() {
        points.sort_by(|a, b| a.log2_bytes.total_cmp(&b.log2_bytes));
    }
    let line_rate_gbps = report
        .endpoints
        .as_ref()
        .and_then(|e| e.initiator.line_rate_gbps);
    let svg = svg_chart("throughput", |root| draw(root, &lines, line_rate_gbps))?;
    let rate = match line_rate_gbps {
        Some(gbps) => format!(
            "The dashed line is the initiator's line rate, {gbps} Gb/s = {} (speed × width as the port reports it).",
            human_rate(gbps / 8.0)
        ),
        None => "The initiator reports no line rate, so no reference line is drawn (the draft requires one: add it by hand for this DUT).".into(),
    };
    Ok(vec![Block::Chart(Chart {
        slug: "throughput".into(),
        title: "Throughput vs message size".into(),
        caption: format!(
            "Mean throughput (decimal units: 1 GB/s = 10⁹ bytes/s) across trials per message size (log scale), one line per QP count; bars are the 95 % CI across trials (none with one trial). {rate}"
        ),
        svg,
    })])
}

fn draw(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    lines: &BTreeMap<u32, Vec<Point>>,
    line_rate_gbps: Option<f64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let points = || lines.values().flatten();
    let xs: Vec<f64> = points().map(|p| 2f64.powf(p.log2_bytes)).collect();
    let ticks = log2_ticks(&xs, 12);
    let (x_lo, x_hi) = (ticks[0] - 0.5, ticks[ticks.len() - 1] + 0.5);
    let line_rate = line_rate_gbps.map(|g| g / 8.0);
    let top = points()
        .map(|p| p.ci95.map_or(p.mean, |(_, hi)| hi.max(p.mean)))
        .chain(line_rate)
        .fold(0.0f64, f64::max);
    // the y unit keeps 3–4 digits at the top (MB/s on SoftRoCE)
    let scale = RateScale::for_max_gbytes(top);
    let k = scale.per_gbyte;
    let y_hi = if top > 0.0 { top * k * 1.3 } else { 1.0 };

    let mut chart = ChartBuilder::on(root)
        .caption("Test 5.1: throughput vs message size", (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(TickedAxis::new(x_lo..x_hi, ticks), 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc("message size (log scale)")
        .y_desc(format!("throughput ({})", scale.name))
        .x_label_formatter(&|x| human_bytes(2f64.powf(*x).round() as u64))
        .y_label_formatter(&|y| short_number(*y))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;

    for (i, (qps, line)) in lines.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(
                line.iter().map(|p| (p.log2_bytes, p.mean * k)),
                c.stroke_width(2),
            ))?
            .label(qp_count(*qps))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(
            line.iter()
                .map(|p| Circle::new((p.log2_bytes, p.mean * k), 4, c.filled())),
        )?;
        chart.draw_series(line.iter().filter_map(|p| {
            p.ci95.map(|(lo, hi)| {
                ErrorBar::new_vertical(
                    p.log2_bytes,
                    lo.max(0.0) * k,
                    p.mean * k,
                    hi * k,
                    c.stroke_width(1),
                    8,
                )
            })
        }))?;
    }
    if let (Some(rate), Some(gbps)) = (line_rate, line_rate_gbps) {
        chart
            .draw_series(DashedLineSeries::new(
                [(x_lo, rate * k), (x_hi, rate * k)],
                8,
                5,
                BLACK.stroke_width(2),
            ))?
            .label(format!("line rate {gbps} Gb/s = {}", human_rate(rate)))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> RunReport {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/bw-write.json"
        ))
        .unwrap()
    }

    #[test]
    fn draws_a_line_per_qp_count_and_the_line_rate() {
        let report = fixture();
        let blocks = build(&report).unwrap();
        let Block::Chart(chart) = &blocks[0] else {
            panic!("{blocks:?}")
        };
        assert!(chart.svg.contains("1 QP"), "legend names 1 QP");
        assert!(chart.svg.contains("8 QPs"), "legend names 8 QPs");
        assert!(chart.svg.contains("line rate 10 Gb/s = 1.250 GB/s"));
        assert!(chart.svg.contains("\n64K\n") && chart.svg.contains("\n16M\n"));
        assert!(chart.caption.contains("10 Gb/s"));
    }

    #[test]
    fn no_line_rate_and_no_results_are_said() {
        let mut report = fixture();
        report.endpoints.as_mut().unwrap().initiator.line_rate_gbps = None;
        let Block::Chart(chart) = &build(&report).unwrap()[0] else {
            panic!()
        };
        assert!(!chart.svg.contains("line rate"));
        assert!(chart.caption.contains("no line rate"));
        report.results.clear();
        assert!(matches!(&build(&report).unwrap()[0], Block::Note(_)));
    }
}
