//! Test 10.1 for a prompt mix (`kv.prompt_dist`): the blocks after the
//! setup when each request draws its own prompt length.
//!
//! A mix has one point, whose sizes are means over its requests, so there
//! are no prompt lengths to draw a line over. Instead the section shows a
//! scatter of every request's TTFT and T_transfer against its own prompt
//! length, and splits the requests into up to four prompt-length bins
//! (quartiles) for the stacked bars and a table of P50 and P99 per bin.
//! The setup, the per-point table and the stacked-bar drawing are shared
//! with the per-length sweep and stay in kv_ttft.rs.

use std::ops::RangeInclusive;

use plotters::prelude::*;

use super::kv_ttft::{
    draw_bars, exposed_meaning, percent, points_table, stack_scale, tick, y_top, Stack,
    DECODE_LABEL, PREFILL_LABEL, TRANSFER_LABEL,
};
use super::style::{color, draw_legend, svg_chart, FONT};
use super::PlotError;
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_size, time_ns, TimeScale};
use crate::results::{KvPoint, KvReport, KvRequestResult};
use crate::stats::{mean, nearest_rank, LatencyHistogram, LatencySummary};

/// The headline of a prompt mix: its one point summarises every request.
pub(super) fn mix_headline(kv: &KvReport, dist: &str) -> Option<String> {
    let p = kv.points.iter().find(|p| p.summary.requests > 0)?;
    let s = &p.summary;
    Some(format!(
        "prompt mix {dist}: TTFT P99 {}, P50 {} over {} requests (T_transfer P99 {}, P50 {} measured; exposed T_transfer / TTFT {} at P50)",
        time_ns(s.ttft.p99_ns),
        time_ns(s.ttft.p50_ns),
        s.requests,
        time_ns(s.t_transfer.p99_ns),
        time_ns(s.t_transfer.p50_ns),
        percent(s.transfer_share.p50)
    ))
}

/// The blocks of a prompt mix after its setup: the per-request scatter,
/// the stacked bars per prompt-length bin, the table of bins and the
/// mix's overall decomposition.
pub(super) fn mix_blocks(
    kv: &KvReport,
    dist: &str,
    points: &[&KvPoint],
) -> Result<Vec<Block>, PlotError> {
    let samples = mix_samples(points);
    let mut blocks = Vec::new();
    if samples.is_empty() {
        blocks.push(Block::Note(format!(
            "Prompt mix {dist}: the file holds no per-request values (`requests`), so there is no per-request chart or prompt-length bin; the table below is over the whole mix."
        )));
        blocks.push(Block::Table(points_table(points, Some(dist))));
        return Ok(blocks);
    }
    let scale = scatter_scale(&samples);
    let svg = svg_chart("ttft-per-request", |root| {
        draw_scatter(root, &samples, scale)
    })?;
    blocks.push(Block::Chart(Chart {
        slug: "ttft-per-request".into(),
        title: format!("TTFT and T_transfer per request, prompt mix {dist} (10.1)"),
        caption: format!(
            "One point per request of every trial ({} in all), at its own prompt length in tokens (x, linear from 0, since the bytes moved grow linearly with it); time on y (in {}). Circles: TTFT = T_queue (measured, open loop only) + T_prefill (modelled: {}) + exposed T_transfer (measured) + T_decode_init (modelled: {}). Triangles: T_transfer, measured: first post → the decode side has the request ({}).",
            samples.len(),
            scale.name,
            kv.prefill_modelled,
            time_ns(kv.decode_init_modelled_ns),
            exposed_meaning(kv)
        ),
        svg,
    }));
    let bins = mix_bins(&samples);
    let stacks: Vec<Stack> = bins.iter().map(bin_stack).collect();
    let svg = svg_chart("ttft-breakdown", |root| {
        draw_bars(root, &stacks, "prompt length bin (tokens)")
    })?;
    blocks.push(Block::Chart(Chart {
        slug: "ttft-breakdown".into(),
        title: "TTFT decomposition per prompt-length bin (6.1)".into(),
        caption: format!(
            "One bar per prompt-length bin of the mix (the bins of the table below), stacked from the bottom: {PREFILL_LABEL} (light), {TRANSFER_LABEL} (solid; the P50 of its exposed part, {}), {DECODE_LABEL} (light), each the P50 over the bin's requests, in {}. TTFT P50 is written above each bar; it need not equal the stack, since the prompt lengths (and so T_prefill) vary inside a bin, percentiles do not add, and open-loop TTFT also holds T_queue. Only T_transfer crosses the fabric: the other two are infab's model, not measurements.",
            exposed_meaning(kv),
            stack_scale(&stacks).name
        ),
        svg,
    }));
    blocks.push(Block::Table(bins_table(dist, &bins)));
    blocks.push(Block::Table(points_table(points, Some(dist))));
    Ok(blocks)
}

/// Most prompt-length bins a mix is split into: its quartiles.
const MIX_BINS: usize = 4;

/// One request of a prompt mix with its own prompt length.
struct MixSample<'a> {
    tokens: u64,
    request: &'a KvRequestResult,
}

/// Every request of every measured point, with its prompt tokens (a file
/// before 1.4 has none per request: the point's are used).
fn mix_samples<'a>(points: &[&'a KvPoint]) -> Vec<MixSample<'a>> {
    points
        .iter()
        .flat_map(|p| {
            p.requests.iter().map(move |r| MixSample {
                tokens: if r.prompt_tokens > 0 {
                    r.prompt_tokens
                } else {
                    p.prompt_tokens
                },
                request: r,
            })
        })
        .collect()
}

/// The prompt-length bins of a mix: up to [`MIX_BINS`] inclusive token
/// ranges, shortest first, that hold every value of `tokens` exactly once,
/// each from the shortest to the longest length in it. With at most
/// [`MIX_BINS`] distinct lengths each length is a bin; otherwise the bins
/// end at the quartiles (nearest rank) and the longest length, so each
/// holds about a quarter of the requests (fewer bins where quartiles
/// coincide). Empty for no tokens.
fn prompt_bins(tokens: &[u64]) -> Vec<RangeInclusive<u64>> {
    let mut sorted = tokens.to_vec();
    sorted.sort_unstable();
    let mut ends = sorted.clone();
    ends.dedup();
    if ends.len() > MIX_BINS {
        ends = (1..=MIX_BINS)
            .filter_map(|i| nearest_rank(&sorted, i as f64 / MIX_BINS as f64))
            .collect();
        ends.dedup();
    }
    let mut bins = Vec::with_capacity(ends.len());
    let mut rest = &sorted[..];
    for end in ends {
        let n = rest.partition_point(|&t| t <= end);
        if n > 0 {
            bins.push(rest[0]..=rest[n - 1]);
        }
        rest = &rest[n..];
    }
    bins
}

/// `16–52`, or `128` for a bin of one length.
fn tokens_label(range: &RangeInclusive<u64>) -> String {
    if range.start() == range.end() {
        range.start().to_string()
    } else {
        format!("{}–{}", range.start(), range.end())
    }
}

/// One prompt-length bin of a mix, over its requests of every trial.
#[derive(Debug)]
struct MixBin {
    tokens: RangeInclusive<u64>,
    requests: usize,
    mean_bytes: f64,
    t_prefill_modelled: LatencySummary,
    t_transfer: LatencySummary,
    t_transfer_exposed: LatencySummary,
    t_decode_init_modelled: LatencySummary,
    ttft: LatencySummary,
}

/// The samples split into [`prompt_bins`], each summarised.
fn mix_bins(samples: &[MixSample]) -> Vec<MixBin> {
    let tokens: Vec<u64> = samples.iter().map(|s| s.tokens).collect();
    prompt_bins(&tokens)
        .into_iter()
        .map(|range| {
            let members: Vec<&KvRequestResult> = samples
                .iter()
                .filter(|s| range.contains(&s.tokens))
                .map(|s| s.request)
                .collect();
            let summary = |ns: fn(&KvRequestResult) -> u64| {
                let mut h = LatencyHistogram::new();
                for r in &members {
                    h.record(ns(r));
                }
                h.summary()
            };
            let bytes: Vec<f64> = members.iter().map(|r| r.bytes as f64).collect();
            MixBin {
                requests: members.len(),
                mean_bytes: mean(&bytes).unwrap_or(0.0),
                t_prefill_modelled: summary(|r| r.t_prefill_modelled_ns),
                t_transfer: summary(|r| r.t_transfer_ns),
                t_transfer_exposed: summary(|r| r.t_transfer_exposed_ns),
                t_decode_init_modelled: summary(|r| r.t_decode_init_modelled_ns),
                ttft: summary(|r| r.ttft_ns),
                tokens: range,
            }
        })
        .collect()
}

/// The bar of one prompt-length bin.
fn bin_stack(bin: &MixBin) -> Stack {
    Stack {
        label: tokens_label(&bin.tokens),
        parts_ns: [
            bin.t_prefill_modelled.p50_ns,
            bin.t_transfer_exposed.p50_ns,
            bin.t_decode_init_modelled.p50_ns,
        ],
        ttft_ns: bin.ttft.p50_ns,
    }
}

/// The table of a mix's prompt-length bins: T_transfer and TTFT P50/P99.
fn bins_table(dist: &str, bins: &[MixBin]) -> Table {
    let rows = bins
        .iter()
        .map(|b| {
            vec![
                tokens_label(&b.tokens),
                b.requests.to_string(),
                human_size(b.mean_bytes),
                time_ns(b.t_transfer.p50_ns),
                time_ns(b.t_transfer.p99_ns),
                time_ns(b.ttft.p50_ns),
                time_ns(b.ttft.p99_ns),
            ]
        })
        .collect();
    Table {
        title: format!("TTFT per prompt-length bin, prompt mix {dist}"),
        columns: [
            "prompt tokens",
            "requests",
            "mean bytes per request",
            "T_transfer P50 (measured)",
            "T_transfer P99 (measured)",
            "TTFT P50",
            "TTFT P99",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![
            format!("The mix's requests of every trial, split by their own prompt length at the quartiles of those lengths (nearest rank; one bin per length when there are {MIX_BINS} or fewer distinct ones): about a quarter of the requests each, unevenly where lengths repeat, since a length stays in one bin. A bin's range runs from its shortest to its longest prompt. Percentiles are over the bin's requests: with few requests P99 is the bin's largest value. T_transfer (measured): first post → the decode side has the request. TTFT = T_queue (measured, open loop only) + T_prefill (modelled) + exposed T_transfer (measured) + T_decode_init (modelled). Mean bytes: what each request moved (whole pages for vllm), mean over the bin (MiB = 2²⁰ bytes)."),
        ],
    }
}

/// The y unit of the per-request scatter: from the largest TTFT or
/// T_transfer of any request.
fn scatter_scale(samples: &[MixSample]) -> TimeScale {
    let max = samples
        .iter()
        .map(|s| s.request.ttft_ns.max(s.request.t_transfer_ns))
        .max()
        .unwrap_or(0);
    TimeScale::for_max_ns(max as f64)
}

/// TTFT's legend label in the scatter: two of its parts are modelled.
const TTFT_REQUEST_LABEL: &str = "TTFT (T_prefill, T_decode_init modelled)";

/// The per-request scatter: TTFT (circles) and T_transfer (triangles)
/// over each request's own prompt length.
fn draw_scatter(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    samples: &[MixSample],
    scale: TimeScale,
) -> Result<(), Box<dyn std::error::Error>> {
    let longest = samples.iter().map(|s| s.tokens).max().unwrap_or(0);
    let x_hi = (longest.max(1) as f64 * 1.05).ceil();
    let hi = samples
        .iter()
        .map(|s| scale.of(s.request.ttft_ns.max(s.request.t_transfer_ns)))
        .fold(0.0f64, f64::max);
    let hi = y_top(hi, 1.3);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Test 10.1: TTFT and T_transfer per request (prompt mix)",
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..x_hi, 0.0..hi)?;
    chart
        .configure_mesh()
        .x_desc("prompt length of the request (tokens)")
        .y_desc(format!("time ({})", scale.name))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| tick(*y, hi))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    let (ttft_color, transfer_color) = (color(0), color(3));
    chart
        .draw_series(samples.iter().map(|s| {
            Circle::new(
                (s.tokens as f64, scale.of(s.request.ttft_ns)),
                4,
                ttft_color.filled(),
            )
        }))?
        .label(TTFT_REQUEST_LABEL)
        .legend(move |(x, y)| Circle::new((x + 10, y), 4, ttft_color.filled()));
    chart
        .draw_series(samples.iter().map(|s| {
            TriangleMarker::new(
                (s.tokens as f64, scale.of(s.request.t_transfer_ns)),
                5,
                transfer_color.filled(),
            )
        }))?
        .label(TRANSFER_LABEL)
        .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 5, transfer_color.filled()));
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::blocks::{charts, tables};
    use crate::report::plot::kv_ttft::{headline, measured, SECTION_10_1};
    use crate::results::RunReport;

    /// The 10.1 section's blocks, prompt mix or not.
    fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
        (SECTION_10_1.build)(report)
    }

    fn mix_fixture() -> RunReport {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/kv-10.1-mix.json"
        ))
        .unwrap()
    }

    #[test]
    fn prompt_bins_end_at_the_quartiles() {
        // 12 lengths: the quartiles (nearest rank 3, 6, 9, 12) are 52, 101,
        // 111 and 126, and every length lands in exactly one bin.
        let tokens = [101, 111, 101, 116, 111, 126, 83, 125, 28, 91, 52, 16];
        assert_eq!(
            prompt_bins(&tokens),
            vec![16..=52, 83..=101, 111..=111, 116..=126]
        );
        // 1..=8: two lengths per bin.
        let even: Vec<u64> = (1..=8).collect();
        assert_eq!(prompt_bins(&even), vec![1..=2, 3..=4, 5..=6, 7..=8]);
        // Four or fewer distinct lengths: one bin each, however many repeats.
        assert_eq!(
            prompt_bins(&[64, 16, 16, 16, 16, 16, 16, 128]),
            vec![16..=16, 64..=64, 128..=128]
        );
        assert_eq!(prompt_bins(&[512; 5]), vec![512..=512]);
        // Quartiles that coincide merge: fewer bins, nothing lost.
        let tied = [10, 10, 10, 10, 10, 10, 10, 20, 30, 40, 50];
        let bins = prompt_bins(&tied);
        assert_eq!(bins, vec![10..=10, 20..=30, 40..=50]);
        assert!(prompt_bins(&[]).is_empty());
    }

    #[test]
    fn bins_summarise_their_requests() {
        let report = mix_fixture();
        let kv = report.kv.as_ref().unwrap();
        let points = measured(kv);
        let samples = mix_samples(&points);
        assert_eq!(samples.len(), 12);
        let bins = mix_bins(&samples);
        let counts: Vec<usize> = bins.iter().map(|b| b.requests).collect();
        assert_eq!(counts, [3, 4, 2, 3]);
        // 16–52: 16, 28 and 52 tokens moved 2, 4 and 8 MiB; T_transfer
        // 15.22, 23.89 and 45.28 ms (P50 the middle one, P99 the largest,
        // within the histogram's 0.1 %).
        let first = &bins[0];
        assert_eq!(first.tokens, 16..=52);
        assert_eq!(first.mean_bytes, (2 + 4 + 8) as f64 * 1048576.0 / 3.0);
        let within = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 1e-3;
        assert!(within(first.t_transfer.p50_ns, 23_887_088), "{first:?}");
        assert!(within(first.t_transfer.p99_ns, 45_275_888), "{first:?}");
        assert!(within(first.ttft.p99_ns, 1_544_175_359), "{first:?}");
        let stack = bin_stack(first);
        assert_eq!(stack.label, "16–52");
        assert_eq!(stack.parts_ns[1], first.t_transfer_exposed.p50_ns);
    }

    #[test]
    fn a_prompt_mix_gets_a_scatter_and_a_bins_table() {
        let report = mix_fixture();
        let blocks = build(&report).unwrap();
        let Block::Note(setup) = &blocks[0] else {
            panic!("{blocks:?}")
        };
        assert!(
            setup.contains("Prompt mix uniform:16..128")
                && setup.contains("means over its requests"),
            "{setup}"
        );
        let tables = tables(&blocks);
        let titles: Vec<&str> = tables.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "KV transfer setup",
                "TTFT per prompt-length bin, prompt mix uniform:16..128",
                "TTFT decomposition over the prompt mix uniform:16..128",
            ]
        );
        let setup_rows = &tables[0].rows;
        let mix_row = setup_rows.iter().find(|r| r[0] == "prompt mix").unwrap();
        assert!(mix_row[1].starts_with("uniform:16..128 ("), "{mix_row:?}");
        assert!(setup_rows.iter().any(|r| r[0] == "requests per trial"));
        assert!(setup_rows.iter().any(|r| r[0] == "trials"));

        let bins = tables[1];
        assert_eq!(
            bins.columns[..3],
            ["prompt tokens", "requests", "mean bytes per request"]
        );
        let first_column: Vec<&str> = bins.rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(first_column, ["16–52", "83–101", "111", "116–126"]);
        assert_eq!(bins.rows[0][1], "3");
        assert_eq!(bins.rows[0][2], "4.667 MiB");
        assert_eq!(tables[2].columns[0], "prompt tokens (mean)");
        assert!(tables[2].notes[0].contains("summed T_transfer"));

        let charts = charts(&blocks);
        let slugs: Vec<&str> = charts.iter().map(|c| c.slug.as_str()).collect();
        assert_eq!(slugs, ["ttft-per-request", "ttft-breakdown"]);
        let scatter = &charts[0].svg;
        for text in [
            "Test 10.1: TTFT and T_transfer per request (prompt mix)",
            TTFT_REQUEST_LABEL,
            TRANSFER_LABEL,
            "prompt length of the request (tokens)",
            "time (s)",
        ] {
            assert!(scatter.contains(text), "'{text}' not in the scatter");
        }
        // 12 requests, a circle and a triangle each (plus one of each in
        // the legend).
        assert_eq!(scatter.matches("<circle").count(), 13);
        assert!(charts[0].caption.contains("T_prefill (modelled"));
        let bars = &charts[1].svg;
        for text in ["prompt length bin (tokens)", "16–52", "116–126"] {
            assert!(bars.contains(text), "'{text}' not in the bars per bin");
        }
    }

    #[test]
    fn the_headline_of_a_mix_names_it() {
        let report = mix_fixture();
        let kv = report.kv.as_ref().unwrap();
        let text = headline(kv).unwrap();
        let s = &kv.points[0].summary;
        assert!(
            text.starts_with(&format!(
                "prompt mix uniform:16..128: TTFT P99 {}, P50 {} over 12 requests",
                time_ns(s.ttft.p99_ns),
                time_ns(s.ttft.p50_ns)
            )),
            "{text}"
        );
        assert!(!text.contains("prompt tokens"), "{text}");
    }

    #[test]
    fn a_mix_without_per_request_values_is_a_note_and_its_table() {
        let mut report = mix_fixture();
        report.kv.as_mut().unwrap().points[0].requests.clear();
        let blocks = build(&report).unwrap();
        assert!(charts(&blocks).is_empty());
        assert_eq!(tables(&blocks).len(), 2);
        assert!(blocks
            .iter()
            .any(|b| matches!(b, Block::Note(n) if n.contains("no per-request values"))));
    }
}
