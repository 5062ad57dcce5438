//! Tests 6.2 and 6.4 (and 9.4, the Request_Rate knee): serving pools. The
//! setup, a row per point (ratio × offered rate) with admission counts,
//! TTFT and its queueing, goodput, decode-worker fairness and fabric
//! bursts; TTFT P99 and T_queue P99 against the offered rate, one line per
//! ratio, with the SLO and the knee marked; the Pareto front of the ratios
//! (6.2); and the fabric rate series of the most loaded point (6.4).

use plotters::prelude::*;

use super::style::{color, draw_legend, short_number, svg_chart, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_bytes, human_ns, optional, time_ci, TimeScale};
use crate::results::{RunReport, ServingPoint, ServingReport};

/// The 6.2 section (xPyD points and rate sweeps).
pub(super) const SECTION_6_2: Section = Section {
    test_id: "6.2",
    title: "serving pools: points per xPyD ratio, TTFT/T_queue vs offered rate, Pareto front",
    build,
};

/// The 6.4 section (prefill oversubscription).
pub(super) const SECTION_6_4: Section = Section {
    test_id: "6.4",
    title: "prefill oversubscription: points per load multiple, TTFT/T_queue vs rate, fabric rate series",
    build,
};

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let Some(s) = &report.serving else {
        return Ok(vec![Block::Note(
            "No serving-pool result in this file: nothing to chart.".into(),
        )]);
    };
    let mut blocks = vec![Block::Table(setup_table(s)), Block::Table(points_table(s))];
    let measured: Vec<&ServingPoint> = s
        .points
        .iter()
        .filter(|p| p.summary.ttft_p99_ns.is_some())
        .collect();
    if measured.is_empty() {
        blocks.push(Block::Note(
            "No point completed a request: no charts.".into(),
        ));
        return Ok(blocks);
    }
    let svg = svg_chart("serving-latency-rate", |root| {
        draw_latency(root, s, &measured)
    })?;
    blocks.push(Block::Chart(Chart {
        slug: "serving-latency-rate".into(),
        title: "TTFT P99 and T_queue P99 vs offered rate".into(),
        caption: "Mean over trials of each trial's TTFT P99 (solid) and T_queue P99 (dashed), from each request's intended arrival, per xPyD ratio against the offered rate; the dotted line is the TTFT SLO, the vertical line the knee (highest rate meeting it). Prefill compute and decode are modelled; queueing and KV transfers are measured.".into(),
        svg,
    }));
    if s.points
        .iter()
        .map(|p| &p.ratio)
        .collect::<std::collections::HashSet<_>>()
        .len()
        > 1
    {
        let svg = svg_chart("serving-pareto", |root| draw_pareto(root, s, &measured))?;
        blocks.push(Block::Chart(Chart {
            slug: "serving-pareto".into(),
            title: "xPyD ratios: TTFT P99 vs goodput per worker (6.2)".into(),
            caption: "Each point a ratio (at its offered rate): TTFT P99 against goodput (TPS_output without an SLO) per worker; ratios on the Pareto front (no other ratio is at least as good on both) are filled.".into(),
            svg,
        }));
    }
    if let Some((point, series)) = busiest_series(s) {
        let bin_ns = s.bin_ns;
        let svg = svg_chart("serving-rate-series", |root| {
            draw_series(root, point, series, bin_ns)
        })?;
        blocks.push(Block::Chart(Chart {
            slug: "serving-rate-series".into(),
            title: format!("Fabric rate, {} at {:.1} requests/s (first trial)", point.ratio, point.offered_rate_per_s),
            caption: format!("KV bytes landing per {} bin (each transfer spread evenly over its first post → landing interval), in GB/s, from the trial's start: the bursts 6.4 characterises.", human_ns(bin_ns as f64)),
            svg,
        }));
    }
    Ok(blocks)
}

pub(super) fn setup_table(s: &ServingReport) -> Table {
    let rows = [
        ("model", format!("{}", s.model)),
        (
            "layout, direction",
            format!(
                "{}, {} ({})",
                s.layout,
                s.direction,
                match s.direction.as_str() {
                    "pull" => "decode workers READ, then notify with a SEND_WITH_IMM",
                    _ => "WRITE_WITH_IMM on every used QP's last WR",
                }
            ),
        ),
        ("QPs per worker pair", s.qps_per_pair.to_string()),
        (
            "pages per worker (tokens per page)",
            format!("{} ({})", s.decode_pool_blocks, s.block_tokens),
        ),
        ("arrival", s.arrival.clone()),
        ("prompt lengths", s.prompt_dist.clone()),
        ("output lengths", s.output_dist.clone()),
        (
            "requests per point per trial",
            s.requests_per_trial.to_string(),
        ),
        ("route, admission", format!("{}, {}", s.route, s.admission)),
        (
            "control plane",
            match s.control.as_str() {
                "fabric" => "fabric (ASK, GRANT / REJECT as RDMA SENDs; in T_admission)".into(),
                other => format!("{other} (in-process state)"),
            },
        ),
        ("prefill (modelled)", s.prefill_modelled.clone()),
        (
            "decode init, step (modelled)",
            format!(
                "{}, {}",
                human_ns(s.decode_init_modelled_ns as f64),
                human_ns(s.decode_step_modelled_ns as f64)
            ),
        ),
        (
            "SLO TTFT, ITL",
            format!(
                "{}, {}",
                s.slo_ttft_ns.map_or("-".into(), |n| human_ns(n as f64)),
                s.slo_itl_ns.map_or("-".into(), |n| human_ns(n as f64))
            ),
        ),
        ("sweep", s.sweep.clone()),
        (
            "knee (highest rate meeting the TTFT SLO)",
            s.knee_rate_per_s
                .map_or("-".into(), |r| format!("{r:.1} requests/s")),
        ),
        (
            "Pareto-optimal ratios",
            if s.pareto_ratios.is_empty() {
                "-".into()
            } else {
                s.pareto_ratios.join(", ")
            },
        ),
    ];
    Table {
        title: "Serving pool setup".into(),
        columns: vec!["parameter".into(), "value".into()],
        rows: rows.into_iter().map(|(k, v)| vec![k.to_string(), v]).collect(),
        notes: vec!["Every admitted request's KV cache crosses the fabric as the layout's descriptors; prefill compute, decode initialisation and decode steps are modelled (the workers wait that long).".into()],
    }
}

pub(super) fn points_table(s: &ServingReport) -> Table {
    let rows = s
        .points
        .iter()
        .map(|p| {
            let sum = |f: &dyn Fn(&crate::results::ServingTrial) -> u32| {
                p.trials.iter().map(f).sum::<u32>()
            };
            let largest = p
                .trials
                .iter()
                .map(|t| t.bursts.size_max_bytes)
                .max()
                .unwrap_or(0);
            vec![
                match (&p.tenant, &p.phase) {
                    (Some(t), Some(phase)) => format!("{t}: {} {phase}", p.ratio),
                    _ => p.ratio.clone(),
                },
                format!("{:.1}", p.offered_rate_per_s),
                format!("{:.2}", p.load_multiple),
                p.trials.len().to_string(),
                format!(
                    "{} / {} / {} / {} / {}",
                    sum(&|t| t.offered),
                    sum(&|t| t.admitted),
                    sum(&|t| t.admission_waits),
                    sum(&|t| t.rejected),
                    sum(&|t| t.completed)
                ),
                time_ci(p.summary.ttft_p50_ns.as_ref()),
                time_ci(p.summary.ttft_p99_ns.as_ref()),
                time_ci(p.summary.t_queue_p99_ns.as_ref()),
                time_ci(p.summary.t_transfer_p99_ns.as_ref()),
                optional(p.summary.goodput_per_s.as_ref().map(|i| i.mean), 1),
                optional(p.summary.tps_output_modelled.as_ref().map(|i| i.mean), 0),
                optional(p.summary.jfi_decode_bytes.as_ref().map(|i| i.mean), 4),
                human_bytes(largest),
                format!(
                    "{} / {}",
                    optional(p.summary.peak_gbytes_per_s.as_ref().map(|i| i.mean), 3),
                    optional(p.summary.mean_gbytes_per_s.as_ref().map(|i| i.mean), 3)
                ),
                match p.summary.meets_slo {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    Table {
        title: "Serving points".into(),
        columns: [
            "ratio",
            "offered req/s",
            "× prefill capacity",
            "trials",
            "offered / admitted / waited / rejected / completed",
            "TTFT P50",
            "TTFT P99",
            "T_queue P99",
            "T_transfer P99",
            "goodput req/s",
            "TPS_output (modelled decode)",
            "JFI decode bytes (9.4)",
            "largest burst",
            "fabric peak / mean GB/s",
            "meets TTFT SLO",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec!["Latencies are mean ± 95 % CI over trials of each trial's percentile, counted from each request's intended arrival. Counts are summed over trials; admitted + rejected + unfinished = offered.".into()],
    }
}

/// The most loaded point's first trial with a non-empty series.
fn busiest_series(s: &ServingReport) -> Option<(&ServingPoint, &[f64])> {
    s.points
        .iter()
        .filter_map(|p| {
            p.trials
                .iter()
                .find(|t| !t.rate_series_bytes.is_empty())
                .map(|t| (p, t.rate_series_bytes.as_slice()))
        })
        .max_by(|a, b| a.0.offered_rate_per_s.total_cmp(&b.0.offered_rate_per_s))
}

fn draw_latency(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    s: &ServingReport,
    points: &[&ServingPoint],
) -> Result<(), Box<dyn std::error::Error>> {
    let mean = |i: &Option<crate::stats::TrialInterval>| i.as_ref().map_or(0.0, |i| i.mean);
    let max_ns = points
        .iter()
        .map(|p| mean(&p.summary.ttft_p99_ns).max(mean(&p.summary.t_queue_p99_ns)))
        .fold(s.slo_ttft_ns.unwrap_or(0) as f64, f64::max);
    let scale = TimeScale::for_max_ns(max_ns);
    let y_hi = (max_ns * scale.per_ns * 1.1).max(1e-9);
    let x_hi = points
        .iter()
        .map(|p| p.offered_rate_per_s)
        .fold(0.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption("TTFT P99 and T_queue P99 vs offered rate", (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_hi.max(1e-9), 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc("offered rate (requests/s)")
        .y_desc(format!("latency from intended arrival ({})", scale.name))
        .x_label_formatter(&|x| short_number(*x))
        .y_label_formatter(&|y| short_number(*y))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    let mut ratios: Vec<&str> = Vec::new();
    for p in points {
        if !ratios.contains(&p.ratio.as_str()) {
            ratios.push(&p.ratio);
        }
    }
    for (i, ratio) in ratios.iter().enumerate() {
        let style = color(i);
        let line = |f: &dyn Fn(&ServingPoint) -> f64| -> Vec<(f64, f64)> {
            let mut v: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.ratio == *ratio)
                .map(|p| (p.offered_rate_per_s, f(p) * scale.per_ns))
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v
        };
        let ttft = line(&|p| mean(&p.summary.ttft_p99_ns));
        chart
            .draw_series(LineSeries::new(ttft.clone(), style.stroke_width(2)))?
            .label(format!("{ratio} TTFT P99"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(2))
            });
        chart.draw_series(
            ttft.iter()
                .map(|&(x, y)| Circle::new((x, y), 3, style.filled())),
        )?;
        let queue = line(&|p| mean(&p.summary.t_queue_p99_ns));
        chart
            .draw_series(DashedLineSeries::new(queue, 6, 4, style.stroke_width(1)))?
            .label(format!("{ratio} T_queue P99"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(1))
            });
    }
    if let Some(slo) = s.slo_ttft_ns {
        let y = slo as f64 * scale.per_ns;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, y), (x_hi, y)],
                2,
                4,
                BLACK.stroke_width(1),
            ))?
            .label("TTFT SLO")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    }
    if let Some(knee) = s.knee_rate_per_s {
        chart
            .draw_series(LineSeries::new(
                vec![(knee, 0.0), (knee, y_hi)],
                RED.stroke_width(1),
            ))?
            .label(format!("knee {knee:.1} req/s"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(1)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn draw_pareto(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    s: &ServingReport,
    points: &[&ServingPoint],
) -> Result<(), Box<dyn std::error::Error>> {
    let value = |p: &ServingPoint| {
        p.summary
            .goodput_per_s
            .as_ref()
            .or(p.summary.tps_output_modelled.as_ref())
            .map_or(0.0, |i| i.mean)
            / f64::from((p.prefill_workers + p.decode_workers).max(1))
    };
    let ttft = |p: &ServingPoint| p.summary.ttft_p99_ns.as_ref().map_or(0.0, |i| i.mean);
    let max_ns = points.iter().map(|p| ttft(p)).fold(0.0, f64::max);
    let scale = TimeScale::for_max_ns(max_ns);
    let x_hi = (max_ns * scale.per_ns * 1.15).max(1e-9);
    let y_hi = (points.iter().map(|p| value(p)).fold(0.0, f64::max) * 1.2).max(1e-9);
    let mut chart = ChartBuilder::on(root)
        .caption("xPyD ratios: TTFT P99 vs goodput per worker", (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc(format!("TTFT P99 ({})", scale.name))
        .y_desc("goodput per worker (requests/s; TPS_output without an SLO)")
        .x_label_formatter(&|x| short_number(*x))
        .y_label_formatter(&|y| short_number(*y))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, p) in points.iter().enumerate() {
        let on_front = s.pareto_ratios.contains(&p.ratio);
        let style = color(i);
        let at = (ttft(p) * scale.per_ns, value(p));
        let marker = if on_front {
            style.filled()
        } else {
            style.stroke_width(2)
        };
        chart.draw_series([Circle::new(at, 6, marker)])?;
        chart.draw_series([Text::new(
            format!("{}{}", p.ratio, if on_front { " (Pareto)" } else { "" }),
            (at.0, at.1),
            (FONT, 14),
        )])?;
    }
    Ok(())
}

fn draw_series(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    point: &ServingPoint,
    series: &[f64],
    bin_ns: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let gbps: Vec<(f64, f64)> = series
        .iter()
        .enumerate()
        .map(|(i, b)| (i as f64 * bin_ns as f64 / 1e6, b / bin_ns.max(1) as f64))
        .collect();
    let x_hi = (series.len() as f64 * bin_ns as f64 / 1e6).max(1e-9);
    let y_hi = (gbps.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1).max(1e-9);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Fabric rate, {} at {:.1} req/s",
                point.ratio, point.offered_rate_per_s
            ),
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc("time from the trial's start (ms)")
        .y_desc("KV landing (GB/s)")
        .x_label_formatter(&|x| short_number(*x))
        .y_label_formatter(&|y| short_number(*y))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    chart.draw_series(LineSeries::new(gbps, color(0).stroke_width(1)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bed_fixture_renders_tables_and_charts() {
        let report: RunReport = serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/serving-6.4.json"
        ))
        .unwrap();
        let blocks = build(&report).unwrap();
        let charts = blocks
            .iter()
            .filter(|b| matches!(b, Block::Chart(_)))
            .count();
        assert!(charts >= 2, "{charts} charts");
        assert!(blocks
            .iter()
            .any(|b| matches!(b, Block::Table(t) if t.title == "Serving points")));
    }
}
