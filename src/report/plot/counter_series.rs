//! Counter series in reports: a chart of every exposed counter KPI per
//! sampled interval, and (8.1/8.2) the marking-onset table of every trial
//! that sampled its counters (`--counter-interval`).

use plotters::prelude::*;

use super::style::{color, draw_legend, svg_chart, FONT};
use super::PlotError;
use crate::report::blocks::{Block, Chart, Table};
use crate::results::{CounterSeries, OnsetSignal, RunReport};

/// The onset table of every incast trial with counter series, and the
/// counter chart of the first such trial; nothing without series.
pub(super) fn onset_blocks(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let show = |s: &OnsetSignal| {
        if !s.exposed {
            "not exposed".to_string()
        } else {
            s.onset_ns
                .map_or("none".into(), |ns| format!("{:+.3} ms", ns as f64 / 1e6))
        }
    };
    let mut rows = Vec::new();
    let mut first = None;
    for p in &report.incast {
        for t in &p.trials {
            if let Some(o) = &t.onset {
                rows.push(vec![
                    p.senders.to_string(),
                    crate::report::units::human_ns(p.arrival_window_ns as f64),
                    t.trial.to_string(),
                    show(&o.ecn),
                    show(&o.cnp),
                    show(&o.pfc),
                    crate::report::units::human_ns(o.interval_ns as f64),
                ]);
                if first.is_none() && !t.counter_series.is_empty() {
                    let burst = t
                        .per_sender
                        .iter()
                        .flat_map(|s| s.transfers.iter().map(|x| x.scheduled_ns))
                        .min()
                        .unwrap_or(0);
                    first = Some((p.senders, t, burst));
                }
            }
        }
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut blocks = vec![Block::Table(Table {
        title: "Marking onset relative to the burst start".into(),
        columns: ["senders", "window", "trial", "ECN", "CNP", "PFC", "resolution"]
            .map(String::from)
            .to_vec(),
        rows,
        notes: vec!["Onset: the end of the first sampled interval with a non-zero delta on any device, minus the earliest scheduled transfer; 'none': exposed but no event; 'not exposed': no device has the counter.".into()],
    })];
    if let Some((senders, t, burst)) = first {
        blocks.extend(counter_blocks(
            &t.counter_series,
            "incast-counters",
            &format!("NIC counters, {senders} senders, trial {}", t.trial),
            burst as i64,
        )?);
    }
    Ok(blocks)
}

/// The counter-series chart (every exposed KPI summed over devices, per
/// interval, against ms after the trial's start, `mark_ns` marked) and a
/// table of what each device exposes; a note when there is no series.
pub(super) fn counter_blocks(
    series: &[CounterSeries],
    slug: &str,
    title: &str,
    mark_ns: i64,
) -> Result<Vec<Block>, PlotError> {
    if series.is_empty() {
        return Ok(Vec::new());
    }
    let mut lines: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    for kpi in CounterSeries::KPIS {
        let mut by_time: std::collections::BTreeMap<i64, f64> = Default::default();
        let mut exposed = false;
        for s in series {
            if let Some(values) = s.kpi(kpi) {
                exposed = true;
                // devices sample apart: bucket each to its interval
                let step = s.interval_ns.max(1) as i64;
                for (&t, &v) in s.t_ns.iter().zip(values) {
                    *by_time.entry(t.div_euclid(step) * step).or_default() += v as f64;
                }
            }
        }
        if exposed {
            lines.push((
                kpi,
                by_time
                    .into_iter()
                    .map(|(t, v)| (t as f64 / 1e6, v))
                    .collect(),
            ));
        }
    }
    let exposed: Vec<&str> = lines.iter().map(|(k, _)| *k).collect();
    let missing: Vec<&str> = CounterSeries::KPIS
        .into_iter()
        .filter(|k| !exposed.contains(k))
        .collect();
    let mut blocks = vec![Block::Table(Table {
        title: format!("{title}: counters sampled"),
        columns: vec![
            "device".into(),
            "interval".into(),
            "samples".into(),
            "ethtool".into(),
        ],
        rows: series
            .iter()
            .map(|s| {
                vec![
                    format!("node {} {} port {}", s.node, s.device, s.port),
                    crate::report::units::human_ns(s.interval_ns as f64),
                    s.t_ns.len().to_string(),
                    if s.ethtool {
                        "read"
                    } else {
                        "not read (< 50 ms)"
                    }
                    .into(),
                ]
            })
            .collect(),
        notes: vec![format!(
            "Not exposed by any device: {}.",
            if missing.is_empty() {
                "none".into()
            } else {
                missing.join(", ")
            }
        )],
    })];
    if lines.iter().all(|(_, p)| p.iter().all(|q| q.1 == 0.0)) {
        blocks.push(Block::Note(format!(
            "{title}: every exposed counter stayed at 0 during the trial; no chart."
        )));
        return Ok(blocks);
    }
    let svg = svg_chart(slug, |root| draw_counters(root, &lines, mark_ns))?;
    blocks.push(Block::Chart(Chart {
        slug: slug.into(),
        title: title.into(),
        caption: "Per sampled interval, each exposed counter KPI's delta summed over every device, against ms after the trial's start; the grey line marks the burst start (8.1/8.2) or t0 (8.3). Counters a device does not expose are absent, not zero.".into(),
        svg,
    }));
    Ok(blocks)
}

fn draw_counters(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    lines: &[(&str, Vec<(f64, f64)>)],
    mark_ns: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    let points = lines.iter().flat_map(|(_, p)| p.iter());
    let (mut x_lo, mut x_hi, mut y_hi) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in points {
        x_lo = x_lo.min(x);
        x_hi = x_hi.max(x);
        y_hi = y_hi.max(y);
    }
    let mark = mark_ns as f64 / 1e6;
    x_lo = x_lo.min(mark);
    x_hi = x_hi.max(mark + 1e-3);
    let y_hi = y_hi.max(1.0) * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption("counter deltas per interval", (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x_lo..x_hi, 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc("ms after the trial's start")
        .y_desc("events per interval")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| {
            if y_hi < 10.0 {
                format!("{y:.1}")
            } else {
                format!("{y:.0}")
            }
        })
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    chart.draw_series(LineSeries::new(
        vec![(mark, 0.0), (mark, y_hi)],
        BLACK.mix(0.5).stroke_width(2),
    ))?;
    for (i, (kpi, p)) in lines.iter().enumerate() {
        let style = color(i);
        chart
            .draw_series(LineSeries::new(p.clone(), style.stroke_width(2)))?
            .label(kpi.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(2))
            });
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}
