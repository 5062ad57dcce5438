//! Tests 10.1 and 6.1: TTFT under varying prompt lengths, and its
//! decomposition into T_prefill, T_transfer and T_decode_init (draft §10.1
//! and §6.1 "Reporting Format"), from the `kv` part of a results file.
//!
//! Owns the setup table (the model's L, H_kv, D, P_bytes and how the
//! transfer was shaped), 6.1's stacked bar per prompt length, 10.1's line
//! graph of TTFT P50 and P99 against prompt length with the exposed
//! T_transfer shaded from 0, and the per-prompt-length table. T_prefill and
//! T_decode_init are modelled, not measured; every label says so. The NIC
//! counters of the trials are not here (fabric_health.rs).
//!
//! A prompt mix (`kv.prompt_dist`) shares the setup and the per-point
//! table; its per-request scatter and prompt-length bins are in
//! kv_prompt_mix.rs, which draws its bars with `draw_bars` from here.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::kv_prompt_mix::{mix_blocks, mix_headline};
use super::style::{color, draw_legend, log2_ticks, svg_chart, TickedAxis, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_bytes, human_ns, rate_ci, time_ns, TimeScale};
use crate::results::{KvPoint, KvReport, RunReport};
use crate::stats::LatencySummary;

/// The 10.1 section (what `infab run kv` writes).
pub(super) const SECTION_10_1: Section = Section {
    test_id: "10.1",
    title: "KV setup; TTFT P50/P99 vs prompt length with T_transfer shaded; T_prefill / T_transfer / T_decode_init stacked bars; per prompt length table",
    build,
};

/// The 6.1 section: the same results, should a file carry that test id.
pub(super) const SECTION_6_1: Section = Section {
    test_id: "6.1",
    title: "KV setup; T_prefill / T_transfer / T_decode_init stacked bars; TTFT P50/P99 vs prompt length; per prompt length table",
    build,
};

/// Legend labels: the draft's names, with what infab measures and models.
pub(super) const PREFILL_LABEL: &str = "T_prefill (modelled)";
pub(super) const TRANSFER_LABEL: &str = "T_transfer (measured)";
pub(super) const DECODE_LABEL: &str = "T_decode_init (modelled)";

/// `P50 / P95 / P99` of `s`, each in its own unit.
fn percentiles(s: &LatencySummary) -> String {
    format!(
        "{} / {} / {}",
        time_ns(s.p50_ns),
        time_ns(s.p95_ns),
        time_ns(s.p99_ns)
    )
}

/// A share as a percentage with one decimal.
pub(super) fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

/// The one-line headline of a KV run: TTFT P50 at the longest prompt
/// measured, its exposed T_transfer and share; with a prompt mix, TTFT P99
/// and P50 over the whole mix. `None` when no prompt length has a request.
pub(crate) fn headline(kv: &KvReport) -> Option<String> {
    if let Some(dist) = &kv.prompt_dist {
        return mix_headline(kv, dist);
    }
    let p = kv
        .points
        .iter()
        .filter(|p| p.summary.requests > 0)
        .max_by_key(|p| p.prompt_tokens)?;
    let s = &p.summary;
    Some(format!(
        "TTFT P50 {} at {} prompt tokens (T_transfer P50 {} measured, {} of it exposed; exposed T_transfer / TTFT {} at P50)",
        time_ns(s.ttft.p50_ns),
        p.prompt_tokens,
        time_ns(s.t_transfer.p50_ns),
        time_ns(s.t_transfer_exposed.p50_ns),
        percent(s.transfer_share.p50)
    ))
}

/// The measured prompt lengths, shortest first.
pub(super) fn measured(kv: &KvReport) -> Vec<&KvPoint> {
    let mut points: Vec<&KvPoint> = kv
        .points
        .iter()
        .filter(|p| p.summary.requests > 0)
        .collect();
    points.sort_by_key(|p| p.prompt_tokens);
    points
}

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let Some(kv) = &report.kv else {
        return Ok(vec![Block::Note(format!(
            "No KV-transfer result (`kv`) in this file: nothing to chart or tabulate for test {}.",
            report.test_id
        ))]);
    };
    let mut blocks = vec![
        Block::Note(setup_sentence(kv)),
        Block::Table(setup_table(kv)),
    ];
    let points = measured(kv);
    if points.is_empty() {
        blocks.push(Block::Note(
            "No prompt length completed a request: no TTFT chart or table.".into(),
        ));
        return Ok(blocks);
    }
    if let Some(dist) = &kv.prompt_dist {
        blocks.extend(mix_blocks(kv, dist, &points)?);
        return Ok(blocks);
    }
    let svg = svg_chart("ttft-vs-prompt", |root| draw_lines(root, &points))?;
    blocks.push(Block::Chart(Chart {
        slug: "ttft-vs-prompt".into(),
        title: "TTFT vs prompt length (10.1)".into(),
        caption: format!(
            "Prompt length in tokens on a log₂ x axis (ticks at the lengths measured); TTFT on y (in {}): P50 solid with circles, P99 dashed with triangles, over every request of every trial. The shaded region from 0 is T_transfer, measured: the P50 of its exposed part, the part that delays the first token ({}). TTFT = T_prefill (modelled: {}) + exposed T_transfer (measured) + T_decode_init (modelled: {}).",
            ttft_scale(&points).name,
            exposed_meaning(kv),
            kv.prefill_modelled,
            time_ns(kv.decode_init_modelled_ns)
        ),
        svg,
    }));
    let stacks: Vec<Stack> = points.iter().map(|p| point_stack(p)).collect();
    let svg = svg_chart("ttft-breakdown", |root| {
        draw_bars(root, &stacks, "prompt length (tokens)")
    })?;
    blocks.push(Block::Chart(Chart {
        slug: "ttft-breakdown".into(),
        title: "TTFT decomposition per prompt length (6.1)".into(),
        caption: format!(
            "One bar per prompt length, stacked from the bottom: {PREFILL_LABEL} (light), {TRANSFER_LABEL} (solid; the P50 of its exposed part, {}), {DECODE_LABEL} (light), each the P50 over every request, in {}. TTFT P50 is written above each bar (with constant modelled parts it equals the stack). Only T_transfer crosses the fabric: the other two are infab's model, not measurements.",
            exposed_meaning(kv),
            stack_scale(&stacks).name
        ),
        svg,
    }));
    blocks.push(Block::Table(points_table(&points, None)));
    Ok(blocks)
}

/// What "exposed" means for this run's pipeline.
pub(super) fn exposed_meaning(kv: &KvReport) -> String {
    if kv.pipeline == "request" {
        "pipeline request: posting starts after the prefill, so all of T_transfer is exposed".into()
    } else {
        format!(
            "pipeline {}: layer groups are posted as their compute ends, and only the transfer after the prefill's end is exposed",
            kv.pipeline
        )
    }
}

/// The model's shape in the draft's symbols: `L 32, H_kv 8, D 128, P_bytes 2`.
fn shape(kv: &KvReport) -> String {
    let m = &kv.model;
    format!(
        "L {}, H_kv {}, D {}, P_bytes {}{}",
        m.layers,
        m.kv_heads,
        m.head_dim,
        m.dtype_bytes,
        if m.mla {
            " (MLA: one latent per token per layer)"
        } else {
            ""
        }
    )
}

/// The headline sentence above the setup table; with a prompt mix it
/// names the mix and says the point's sizes are its means.
fn setup_sentence(kv: &KvReport) -> String {
    let run = format!(
        "{} ({}), tp {}; {} layout, {}, notification {}, pipeline {}; T_prefill modelled: {}; T_decode_init modelled: {}.",
        kv.model.name,
        shape(kv),
        kv.tp,
        kv.layout,
        kv.direction,
        kv.notify,
        kv.pipeline,
        kv.prefill_modelled,
        time_ns(kv.decode_init_modelled_ns)
    );
    match &kv.prompt_dist {
        Some(dist) => format!(
            "{run} Prompt mix {dist}: each request draws its own prompt length from it; the point's prompt tokens, bytes, descriptors, WRs and T_prefill are means over its requests."
        ),
        None => run,
    }
}

/// Distinct values in first-seen order, joined with ", ".
fn distinct(values: impl IntoIterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for v in values {
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    if seen.is_empty() {
        "-".into()
    } else {
        seen.join(", ")
    }
}

fn setup_table(kv: &KvReport) -> Table {
    let direction = match kv.direction.as_str() {
        "push" => "push (prefill side WRITEs)".to_string(),
        "pull" => "pull (decode side READs)".to_string(),
        other => other.to_string(),
    };
    // A mix has one point: "per prompt length" would name the mean.
    let per_length = if kv.prompt_dist.is_some() {
        ""
    } else {
        " per prompt length"
    };
    let mut rows: Vec<(String, String)> = vec![
        ("model", kv.model.name.clone()),
        ("L, H_kv, D, P_bytes", shape(kv)),
        ("model source", kv.model.source.clone()),
        (
            "tensor parallelism tp",
            format!(
                "{} ({} KV head(s) per rank pair)",
                kv.tp, kv.kv_heads_per_rank
            ),
        ),
        (
            "bytes per token per layer per tensor",
            kv.token_bytes.to_string(),
        ),
        ("layout", kv.layout.clone()),
        ("tokens per page", kv.block_tokens.to_string()),
        ("pages per pool", kv.pool_blocks.to_string()),
        ("free-list fragmentation", format!("{}", kv.fragmentation)),
        ("direction", direction),
        ("notification", kv.notify.clone()),
        ("pipeline", kv.pipeline.clone()),
        ("QPs", distinct(kv.points.iter().map(|p| p.qps.to_string()))),
        (
            "outstanding WRs per QP",
            distinct(kv.points.iter().map(|p| p.tx_depth.to_string())),
        ),
        ("largest WR", human_bytes(kv.max_wr_bytes)),
        ("T_prefill model (modelled)", kv.prefill_modelled.clone()),
        (
            "T_decode_init (modelled)",
            time_ns(kv.decode_init_modelled_ns),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(dist) = &kv.prompt_dist {
        rows.push((
            "prompt mix".into(),
            format!("{dist} (each request's prompt length drawn from it; the point's prompt tokens and sizes are means over its requests)"),
        ));
    }
    rows.extend([
        (
            format!("requests{per_length} per trial"),
            kv.requests_per_trial.to_string(),
        ),
        (
            "arrivals".into(),
            match kv.offered_rate_per_s {
                Some(rate) => format!(
                    "{} (open loop, {rate:.1} requests/s offered; TTFT from each intended arrival)",
                    kv.arrival
                ),
                None => format!(
                    "{} (each request starts when the one before ended)",
                    kv.arrival
                ),
            },
        ),
        (
            format!("trials{per_length}"),
            distinct(kv.points.iter().map(|p| p.trials.len().to_string())),
        ),
    ]);
    Table {
        title: "KV transfer setup".into(),
        columns: vec!["parameter".into(), "value".into()],
        rows: rows.into_iter().map(|(k, v)| vec![k, v]).collect(),
        notes: vec![
            "The draft's 10.1 reporting format states the model as L, H_kv, D and P_bytes; S_KV = 2 · L · H_kv · D · C · P_bytes (one tensor for MLA), of which this rank pair moves H_kv / tp heads. T_prefill and T_decode_init are modelled by infab, not measured.".into(),
        ],
    }
}

/// The per-point table; with a prompt mix (`mix`) its one row is over the
/// whole mix and its sizes are means.
pub(super) fn points_table(points: &[&KvPoint], mix: Option<&str>) -> Table {
    let rows = points
        .iter()
        .map(|p| {
            let s = &p.summary;
            let share = &s.transfer_share;
            vec![
                p.prompt_tokens.to_string(),
                human_bytes(p.bytes_per_request),
                p.descriptors_per_request.to_string(),
                p.wrs_per_request.to_string(),
                s.requests.to_string(),
                time_ns(p.t_prefill_modelled_ns),
                s.t_queue.as_ref().map_or_else(|| "-".into(), percentiles),
                percentiles(&s.t_transfer),
                percentiles(&s.t_transfer_exposed),
                percentiles(&s.ttft),
                format!(
                    "{} / {} / {}",
                    percent(share.p50),
                    percent(share.p95),
                    percent(share.p99)
                ),
                human_ns(s.post_ns_per_descriptor),
                s.notify_lag
                    .as_ref()
                    .map_or_else(|| "-".into(), |l| time_ns(l.p50_ns)),
                rate_ci(s.gbytes_per_s.as_ref()),
            ]
        })
        .collect();
    // A mix moves a different size per request, so its rate is each
    // trial's bytes over its summed T_transfer (suite/kv.rs).
    let (title, tokens, bytes, rate) = match mix {
        Some(dist) => (
            format!("TTFT decomposition over the prompt mix {dist}"),
            "prompt tokens (mean)",
            "bytes per request (mean)",
            "each trial's bytes / its summed T_transfer (the requests' sizes differ)",
        ),
        None => (
            "TTFT decomposition per prompt length".to_string(),
            "prompt tokens",
            "bytes per request",
            "bytes per request / each trial's median T_transfer",
        ),
    };
    Table {
        title,
        columns: [
            tokens,
            bytes,
            "descriptors",
            "WRs",
            "requests",
            "T_prefill (modelled)",
            "T_queue P50 / P95 / P99",
            "T_transfer P50 / P95 / P99",
            "exposed T_transfer P50 / P95 / P99",
            "TTFT P50 / P95 / P99",
            "T_transfer / TTFT P50 / P95 / P99",
            "post time per descriptor",
            "notification lag P50",
            "throughput (mean ± CI95)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![
            format!("Percentiles are over every request of every trial. T_transfer (measured): first post → the decode side has the request; exposed: its part after the prefill's end (all of it without layer pipelining). TTFT = T_queue + T_prefill (modelled) + exposed T_transfer + T_decode_init (modelled); T_queue (measured, open-loop arrivals only, - in closed loop): intended arrival → prefill start. T_transfer / TTFT: exposed T_transfer over TTFT, ratio of the two percentiles. Post time per descriptor: wall time inside ibv_post_send for the data WRs / descriptors, mean over requests. Notification lag: last data completion → notification complete on the other side (- : no notification). Throughput: {rate}, mean ± 95 % CI across trials (GB = 10⁹ bytes)."),
        ],
    }
}

/// A tick label in the axis' unit with as many decimals as its top needs.
pub(super) fn tick(value: f64, top: f64) -> String {
    if top >= 20.0 {
        format!("{value:.0}")
    } else if top >= 2.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The y axis' top: `max` plus headroom for labels and the legend.
pub(super) fn y_top(max: f64, headroom: f64) -> f64 {
    if max > 0.0 {
        max * headroom
    } else {
        1.0
    }
}

/// The y unit of the TTFT line chart: from the largest TTFT P99 (or P50).
fn ttft_scale(points: &[&KvPoint]) -> TimeScale {
    let max = points
        .iter()
        .map(|p| p.summary.ttft.p99_ns.max(p.summary.ttft.p50_ns))
        .max()
        .unwrap_or(0);
    TimeScale::for_max_ns(max as f64)
}

/// The y unit of the stacked bars: from the tallest stack.
pub(super) fn stack_scale(stacks: &[Stack]) -> TimeScale {
    let max = stacks
        .iter()
        .map(|s| s.parts_ns.iter().sum::<u64>().max(s.ttft_ns))
        .max()
        .unwrap_or(0);
    TimeScale::for_max_ns(max as f64)
}

fn draw_lines(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    points: &[&KvPoint],
) -> Result<(), Box<dyn std::error::Error>> {
    let tokens: Vec<f64> = points
        .iter()
        .map(|p| p.prompt_tokens.max(1) as f64)
        .collect();
    let ticks = log2_ticks(&tokens, 12);
    let (x_lo, x_hi) = (ticks[0] - 0.5, ticks[ticks.len() - 1] + 0.5);
    let x = |p: &KvPoint| (p.prompt_tokens.max(1) as f64).log2();
    let scale = ttft_scale(points);
    let hi = points
        .iter()
        .map(|p| scale.of(p.summary.ttft.p99_ns.max(p.summary.ttft.p50_ns)))
        .fold(0.0f64, f64::max);
    let hi = y_top(hi, 1.3);
    let mut chart = ChartBuilder::on(root)
        .caption("Test 10.1: TTFT vs prompt length", (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(TickedAxis::new(x_lo..x_hi, ticks), 0.0..hi)?;
    chart
        .configure_mesh()
        .x_desc("prompt length (tokens, log₂ scale)")
        .y_desc(format!("time to first token ({})", scale.name))
        .x_label_formatter(&|x| format!("{}", 2f64.powf(*x).round()))
        .y_label_formatter(&|y| tick(*y, hi))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;

    // The shaded T_transfer region, from 0 up to its exposed P50; one
    // prompt length gets a narrow band so it still shows.
    let transfer = color(3);
    let edge: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (x(p), scale.of(p.summary.t_transfer_exposed.p50_ns)))
        .collect();
    let region: Vec<(f64, f64)> = if edge.len() == 1 {
        let (x0, y0) = edge[0];
        vec![
            (x0 - 0.15, 0.0),
            (x0 - 0.15, y0),
            (x0 + 0.15, y0),
            (x0 + 0.15, 0.0),
        ]
    } else {
        let mut region = vec![(edge[0].0, 0.0)];
        region.extend(edge.iter().copied());
        region.push((edge[edge.len() - 1].0, 0.0));
        region
    };
    chart
        .draw_series(std::iter::once(Polygon::new(
            region,
            transfer.mix(0.3).filled(),
        )))?
        .label(format!("{TRANSFER_LABEL}, exposed P50 (shaded)"))
        .legend(move |(x, y)| {
            Rectangle::new([(x, y - 6), (x + 20, y + 6)], transfer.mix(0.3).filled())
        });
    chart.draw_series(LineSeries::new(edge, transfer.mix(0.8).stroke_width(1)))?;

    let (p50_color, p99_color) = (color(0), color(1));
    let p50: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (x(p), scale.of(p.summary.ttft.p50_ns)))
        .collect();
    let p99: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (x(p), scale.of(p.summary.ttft.p99_ns)))
        .collect();
    chart
        .draw_series(LineSeries::new(p50.clone(), p50_color.stroke_width(2)))?
        .label("TTFT P50")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], p50_color.stroke_width(2))
        });
    chart.draw_series(p50.iter().map(|&xy| Circle::new(xy, 4, p50_color.filled())))?;
    chart
        .draw_series(DashedLineSeries::new(
            p99.clone(),
            6,
            4,
            p99_color.stroke_width(2),
        ))?
        .label("TTFT P99")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], p99_color.stroke_width(2))
        });
    chart.draw_series(
        p99.iter()
            .map(|&xy| TriangleMarker::new(xy, 5, p99_color.filled())),
    )?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// One stacked bar: its x label, the P50s of T_prefill (modelled), exposed
/// T_transfer and T_decode_init (modelled), and TTFT P50, ns.
pub(super) struct Stack {
    /// The x label: a prompt length, or a bin's range of them.
    pub(super) label: String,
    /// T_prefill (modelled), exposed T_transfer, T_decode_init (modelled).
    pub(super) parts_ns: [u64; 3],
    /// TTFT P50, written above the bar.
    pub(super) ttft_ns: u64,
}

/// The bar of one prompt length.
fn point_stack(p: &KvPoint) -> Stack {
    let s = &p.summary;
    Stack {
        label: p.prompt_tokens.to_string(),
        parts_ns: [
            s.t_prefill_modelled.p50_ns,
            s.t_transfer_exposed.p50_ns,
            s.t_decode_init_modelled.p50_ns,
        ],
        ttft_ns: s.ttft.p50_ns,
    }
}

/// A stacked bar in the axis unit: the three parts and TTFT P50.
struct ScaledStack {
    parts: [f64; 3],
    ttft: f64,
    ttft_ns: u64,
}

/// 6.1's stacked bars, one per [`Stack`], with `x_desc` under the x axis.
pub(super) fn draw_bars(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    bars: &[Stack],
    x_desc: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let scale = stack_scale(bars);
    let stacks: Vec<ScaledStack> = bars
        .iter()
        .map(|s| ScaledStack {
            parts: s.parts_ns.map(|ns| scale.of(ns)),
            ttft: scale.of(s.ttft_ns),
            ttft_ns: s.ttft_ns,
        })
        .collect();
    let hi = stacks
        .iter()
        .map(|s| s.parts.iter().sum::<f64>().max(s.ttft))
        .fold(0.0f64, f64::max);
    let hi = y_top(hi, 1.3);
    let n = stacks.len() as f64;
    let centres: Vec<f64> = (0..stacks.len()).map(|i| i as f64 + 0.5).collect();
    let labels: Vec<String> = bars.iter().map(|s| s.label.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Test 6.1: TTFT = T_prefill + T_transfer + T_decode_init (P50)",
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(TickedAxis::new(0.0..n, centres), 0.0..hi)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(format!("time ({}, P50)", scale.name))
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| tick(*y, hi))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    // Modelled parts light, the measured transfer solid.
    let styles = [
        (PREFILL_LABEL, color(0).mix(0.45)),
        (TRANSFER_LABEL, color(3).mix(1.0)),
        (DECODE_LABEL, color(2).mix(0.45)),
    ];
    // Bars are 60 % of their slot, at most 0.3 either side of the centre.
    let half = 0.3;
    for (part, (label, fill)) in styles.into_iter().enumerate() {
        chart
            .draw_series(stacks.iter().enumerate().map(|(i, s)| {
                let bottom: f64 = s.parts[..part].iter().sum();
                let centre = i as f64 + 0.5;
                Rectangle::new(
                    [
                        (centre - half, bottom),
                        (centre + half, bottom + s.parts[part]),
                    ],
                    fill.filled(),
                )
            }))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], fill.filled()));
    }
    // The value of each part inside it, where the part is tall enough to
    // hold a 13 px label (about 4 % of the axis on a 520 px canvas).
    chart.draw_series(stacks.iter().enumerate().flat_map(|(i, s)| {
        let centre = i as f64 + 0.5;
        (0..3).filter_map(move |part| {
            let value = s.parts[part];
            (value >= hi * 0.04).then(|| {
                let bottom: f64 = s.parts[..part].iter().sum();
                Text::new(
                    format!("{value:.1}"),
                    (centre, bottom + value / 2.0),
                    (FONT, 13)
                        .into_font()
                        .color(if part == 1 { &WHITE } else { &BLACK })
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )
            })
        })
    }))?;
    chart.draw_series(stacks.iter().enumerate().map(|(i, s)| {
        let top = s.parts.iter().sum::<f64>().max(s.ttft);
        Text::new(
            format!("TTFT {}", time_ns(s.ttft_ns)),
            (i as f64 + 0.5, top),
            (FONT, 15)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        )
    }))?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::blocks::{charts, tables};

    fn fixture() -> RunReport {
        serde_json::from_str(include_str!("../../../tests/fixtures/results/kv-10.1.json")).unwrap()
    }

    #[test]
    fn setup_both_charts_and_the_table() {
        let report = fixture();
        let blocks = build(&report).unwrap();
        let Block::Note(headline) = &blocks[0] else {
            panic!("{blocks:?}")
        };
        assert!(headline.contains("llama-3.1-8b"), "{headline}");
        assert!(
            headline.contains("L 32, H_kv 8, D 128, P_bytes 2"),
            "{headline}"
        );
        assert!(headline.contains("T_prefill modelled"), "{headline}");
        let tables = tables(&blocks);
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[0].title, "KV transfer setup");
        let table = tables[1];
        assert_eq!(table.rows.len(), 3);
        let kv = report.kv.as_ref().unwrap();
        let last = &kv.points[2];
        let row = &table.rows[2];
        assert_eq!(row[0], last.prompt_tokens.to_string());
        assert_eq!(row[2], last.descriptors_per_request.to_string());
        assert_eq!(row[5], time_ns(last.t_prefill_modelled_ns));
        assert_eq!(row[6], "-", "closed loop: no T_queue");
        assert!(
            row[9].starts_with(&time_ns(last.summary.ttft.p50_ns)),
            "{row:?}"
        );
        assert!(row[10].ends_with(" %"), "{row:?}");
        assert!(row[13].contains(" ± "), "two trials give a CI: {row:?}");

        let charts = charts(&blocks);
        let slugs: Vec<&str> = charts.iter().map(|c| c.slug.as_str()).collect();
        assert_eq!(slugs, ["ttft-vs-prompt", "ttft-breakdown"]);
        let lines = &charts[0].svg;
        for text in [
            "TTFT P50",
            "TTFT P99",
            "T_transfer (measured), exposed P50 (shaded)",
            "prompt length (tokens, log₂ scale)",
            "time to first token (ms)",
            "2048",
        ] {
            assert!(lines.contains(text), "'{text}' not in the line graph");
        }
        let bars = &charts[1].svg;
        for text in [
            PREFILL_LABEL,
            TRANSFER_LABEL,
            DECODE_LABEL,
            "time (ms, P50)",
        ] {
            assert!(bars.contains(text), "'{text}' not in the stacked bars");
        }
        let top = format!("TTFT {}", time_ns(last.summary.ttft.p50_ns));
        assert!(bars.contains(&top), "'{top}' not above the last bar");
    }

    #[test]
    fn the_headline_is_the_longest_prompt() {
        let report = fixture();
        let kv = report.kv.as_ref().unwrap();
        let text = headline(kv).unwrap();
        let last = &kv.points[2];
        assert!(
            text.starts_with(&format!(
                "TTFT P50 {} at {} prompt tokens",
                time_ns(last.summary.ttft.p50_ns),
                last.prompt_tokens
            )),
            "{text}"
        );
    }

    #[test]
    fn no_kv_or_no_request_is_a_note_and_one_length_still_draws() {
        let mut report = fixture();
        report.kv = None;
        assert!(matches!(&build(&report).unwrap()[..], [Block::Note(_)]));

        let mut empty = fixture();
        for p in &mut empty.kv.as_mut().unwrap().points {
            p.summary.requests = 0;
        }
        let blocks = build(&empty).unwrap();
        assert!(matches!(blocks.last(), Some(Block::Note(_))));
        assert!(charts(&blocks).is_empty());
        assert!(headline(empty.kv.as_ref().unwrap()).is_none());

        let mut one = fixture();
        one.kv.as_mut().unwrap().points.truncate(1);
        let blocks = build(&one).unwrap();
        assert_eq!(charts(&blocks).len(), 2);
        assert_eq!(tables(&blocks)[1].rows.len(), 1);
    }
}
