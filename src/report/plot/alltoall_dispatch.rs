//! Tests 7.1–7.3: MoE AllToAll dispatch (draft §7.1 "Reporting Format"):
//! per (dispatch mode, routing mode) a heatmap of busbw with EP group size
//! on y and batch size on x, and its companion latency table (§7.2 wants
//! each routing mode in its own table, labelled); the MoE config rows used
//! with T_dispatch; per-rank values and the router's byte matrix of the
//! last point. Counter deltas are not here (fabric_health.rs).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{svg_chart, TickedAxis, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_bytes, human_rate, rate_ci, time_ci, time_ns};
use crate::results::{AllToAllPoint, RunReport};

const TITLE: &str =
    "busbw heatmap (EP size × batch) and latency table per (mode, routing); MoE rows; per-rank and byte-matrix tables";

/// The 7.1 section.
pub(super) const SECTION_7_1: Section = Section {
    test_id: "7.1",
    title: TITLE,
    build,
};

/// The 7.2 section (the same blocks: one table per routing mode).
pub(super) const SECTION_7_2: Section = Section {
    test_id: "7.2",
    title: TITLE,
    build,
};

/// The 7.3 section (the same blocks; scaling efficiency per EP size).
pub(super) const SECTION_7_3: Section = Section {
    test_id: "7.3",
    title: TITLE,
    build,
};

/// Points of one (dispatch mode, routing mode), in run order.
struct Group<'a> {
    mode: &'a str,
    routing: &'a str,
    points: Vec<&'a AllToAllPoint>,
}

/// The (mode, routing) groups in order of first appearance.
fn groups(points: &[AllToAllPoint]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group> = Vec::new();
    for p in points {
        match groups
            .iter_mut()
            .find(|g| g.mode == p.mode && g.routing == p.routing)
        {
            Some(g) => g.points.push(p),
            None => groups.push(Group {
                mode: &p.mode,
                routing: &p.routing,
                points: vec![p],
            }),
        }
    }
    groups
}

/// `normal-zipf_alpha_1.2`: a slug part safe for file names.
fn slug_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    if report.alltoall.is_empty() {
        return Ok(vec![Block::Note(format!(
            "No AllToAll point completed: nothing to chart or tabulate for test {}.",
            report.test_id
        ))]);
    }
    // One colour scale for every heatmap, so the modes compare by eye.
    let max_busbw = report
        .alltoall
        .iter()
        .filter_map(|p| p.summary.busbw_gbytes_per_s.as_ref())
        .map(|iv| iv.mean)
        .fold(0.0f64, f64::max);
    let mut blocks = vec![Block::Table(moe_table(&report.alltoall))];
    for group in groups(&report.alltoall) {
        let slug = format!(
            "busbw-heatmap-{}-{}",
            slug_part(group.mode),
            slug_part(group.routing)
        );
        let svg = svg_chart(&slug, |root| draw_heatmap(root, &group, max_busbw))?;
        blocks.push(Block::Chart(Chart {
            slug,
            title: format!(
                "busbw heatmap: dispatch mode {}, routing {}",
                group.mode, group.routing
            ),
            caption: format!(
                "EP group size n on y, tokens per rank B on x, colour and number: busbw (decimal units, 1 GB/s = 10⁹ bytes/s; algbw · (n−1)/n, algbw = mean per-rank dispatch bytes / mean dispatch latency), mean across trials. Darker is faster; the colour scale is shared by every heatmap of this file (white 0, darkest {}). A blank cell was not measured. Dispatch mode {}, routing mode {}.",
                human_rate(max_busbw), group.mode, group.routing
            ),
            svg,
        }));
        blocks.push(Block::Table(latency_table(&group)));
    }
    if let Some(last) = report.alltoall.last() {
        blocks.push(Block::Table(per_rank_table(report, last)));
        blocks.push(Block::Table(matrix_table(last)));
    }
    Ok(blocks)
}

/// "M1 (E 8, k 2, H 4096, P 2 B)" for the captions and tests.
fn moe_label(p: &AllToAllPoint) -> String {
    format!(
        "{} (E {}, k {}, H {}, P {} B)",
        p.moe.name, p.moe.experts, p.moe.top_k, p.moe.hidden, p.moe.bytes_per_element
    )
}

fn moe_table(points: &[AllToAllPoint]) -> Table {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for p in points {
        let row = vec![
            p.moe.name.clone(),
            p.moe.experts.to_string(),
            p.moe.top_k.to_string(),
            p.moe.hidden.to_string(),
            p.moe.bytes_per_element.to_string(),
            p.ep_ranks.to_string(),
            p.batch_tokens.to_string(),
            format!("{:.0}", p.t_dispatch_bytes),
            p.copies.clone(),
            p.op.clone(),
            p.qps_per_peer.to_string(),
            p.seed.to_string(),
        ];
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    Table {
        title: "MoE configuration rows used (draft Table 6)".into(),
        columns: [
            "config",
            "experts E",
            "top-k",
            "hidden H",
            "bytes per element P",
            "EP ranks N",
            "tokens per rank B",
            "T_dispatch bytes",
            "copies",
            "op",
            "QPs per peer",
            "router seed",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![
            "T_dispatch = B·k·H·P/N, the draft's per-rank dispatch volume. M1–M4 are Table 6 rows; M5 is user-defined and lists the same fields.".into(),
        ],
    }
}

fn latency_table(group: &Group) -> Table {
    let combined = group
        .points
        .iter()
        .any(|p| p.summary.combine_p50_ns.is_some());
    let rows = group
        .points
        .iter()
        .map(|p| {
            let s = &p.summary;
            let mut row = vec![
                p.ep_ranks.to_string(),
                p.batch_tokens.to_string(),
                s.trials.to_string(),
                time_ci(s.p50_ns.as_ref()),
                time_ci(s.p99_ns.as_ref()),
                rate_ci(s.algbw_gbytes_per_s.as_ref()),
                rate_ci(s.busbw_gbytes_per_s.as_ref()),
            ];
            if combined {
                row.extend([
                    time_ci(s.combine_p50_ns.as_ref()),
                    time_ci(s.combine_p99_ns.as_ref()),
                    rate_ci(s.combine_busbw_gbytes_per_s.as_ref()),
                    time_ci(s.layer_p50_ns.as_ref()),
                    time_ci(s.layer_p99_ns.as_ref()),
                ]);
            }
            row.extend([
                time_ci(s.idle_p50_ns.as_ref()),
                human_bytes(p.slot_bytes),
                p.dropped_assignments.to_string(),
                p.scaling_efficiency
                    .map_or_else(|| "n/a (smallest EP)".into(), |e| format!("{e:.3}")),
            ]);
            row
        })
        .collect();
    let mut columns: Vec<&str> = vec![
        "EP ranks n",
        "tokens per rank B",
        "trials",
        "dispatch P50",
        "dispatch P99",
        "algbw",
        "busbw",
    ];
    if combined {
        columns.extend([
            "combine P50",
            "combine P99",
            "combine busbw",
            "layer P50",
            "layer P99",
        ]);
    }
    columns.extend([
        "idle P50",
        "slot bytes",
        "dropped assignments",
        "scaling efficiency",
    ]);
    Table {
        title: format!(
            "Dispatch latency, dispatch mode {}, routing mode {}",
            group.mode, group.routing
        ),
        columns: columns.into_iter().map(String::from).collect(),
        rows,
        notes: vec![
            "Each value is the mean ± 95 % CI across trials. Dispatch latency: per dispatch, the slowest rank (its start → its sends done and every payload in). Combine: each rank returns the expert outputs of the tokens it received to their source ranks (the transposed matrix), timed from the rank's combine start to its outputs all back; layer: dispatch start → combine done, slowest rank. Idle: last send posted → dispatch done, median rank. Scaling efficiency: (smallest EP's P50 / this P50) · (n / smallest n) at the same mode, routing and batch (draft §7.3).".into(),
        ],
    }
}

fn per_rank_table(report: &RunReport, point: &AllToAllPoint) -> Table {
    let Some(trial) = point.trials.last() else {
        return Table {
            title: "Per rank at the last point".into(),
            columns: vec!["note".into()],
            rows: vec![vec!["no trial completed".into()]],
            notes: Vec::new(),
        };
    };
    let node_name = |node: u32| {
        report
            .cluster
            .as_ref()
            .and_then(|c| c.nodes.iter().find(|n| n.node == node))
            .map_or_else(|| node.to_string(), |n| format!("{node} {}", n.name))
    };
    let rows = trial
        .per_rank
        .iter()
        .map(|r| {
            vec![
                r.ep_index.to_string(),
                r.rank.to_string(),
                node_name(r.node),
                human_bytes(r.send_bytes_per_dispatch),
                human_bytes(r.recv_bytes_per_dispatch),
                time_ns(r.latency.p50_ns),
                time_ns(r.latency.p99_ns),
                time_ns(r.idle.p50_ns),
                format!("{:.0}", r.cpu_percent),
            ]
        })
        .collect();
    Table {
        title: format!(
            "Per rank at the last point (n = {}, {}, {}, B = {}, trial {})",
            point.ep_ranks, point.mode, point.routing, point.batch_tokens, trial.trial
        ),
        columns: [
            "EP index",
            "rank",
            "node",
            "sent per dispatch",
            "received per dispatch",
            "P50",
            "P99",
            "idle P50",
            "CPU %",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![
            "The last trial of the last point. Bytes are network bytes (the rank's own share excluded). Latency: the rank's own dispatch (its start → its sends done and every payload in); idle: last send posted → done. CPU: the rank's thread, percent of one core.".into(),
        ],
    }
}

fn matrix_table(point: &AllToAllPoint) -> Table {
    let n = point.pair_bytes.len();
    let mut columns = vec!["sender \\ receiver".to_string()];
    columns.extend((0..n).map(|j| format!("→ {j}")));
    let rows = point
        .pair_bytes
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut cells = vec![i.to_string()];
            cells.extend((0..n).map(|j| {
                let b = row.get(j).copied().unwrap_or(0);
                if i == j {
                    format!("({})", human_bytes(b))
                } else {
                    human_bytes(b)
                }
            }));
            cells
        })
        .collect();
    Table {
        title: format!(
            "Bytes per dispatch, EP index i → j, at the last point ({}, {})",
            point.mode, point.routing
        ),
        columns,
        rows,
        notes: vec![format!(
            "The router's byte matrix for {}; the diagonal (in parentheses) stays local and is not sent. {}",
            moe_label(point),
            if point.mode == "low-latency" {
                "Low-latency mode pads every transfer to the slot."
            } else {
                "Normal mode sends the exact bytes."
            }
        )],
    }
}

/// White → dark blue as `ratio` goes 0 → 1.
fn shade(ratio: f64) -> RGBColor {
    let r = ratio.clamp(0.0, 1.0);
    let mix = |white: f64, dark: f64| (white + (dark - white) * r).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

fn draw_heatmap(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    group: &Group,
    max_busbw: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut eps: Vec<u32> = group.points.iter().map(|p| p.ep_ranks).collect();
    eps.sort_unstable();
    eps.dedup();
    let mut batches: Vec<u32> = group.points.iter().map(|p| p.batch_tokens).collect();
    batches.sort_unstable();
    batches.dedup();
    let (nx, ny) = (batches.len() as f64, eps.len() as f64);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("busbw: {} dispatch, routing {}", group.mode, group.routing),
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(
            TickedAxis::new(0.0..nx, centres(batches.len())),
            TickedAxis::new(0.0..ny, centres(eps.len())),
        )?;
    let x_labels = batches.clone();
    let y_labels = eps.clone();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("tokens per rank B (batch)")
        .y_desc("EP group size n")
        .x_label_formatter(&|x| cell_label(*x, &x_labels))
        .y_label_formatter(&|y| cell_label(*y, &y_labels))
        .label_style((FONT, 14))
        .draw()?;
    let scale = if max_busbw > 0.0 { max_busbw } else { 1.0 };
    for p in &group.points {
        let (Some(xi), Some(yi)) = (
            batches.iter().position(|&b| b == p.batch_tokens),
            eps.iter().position(|&e| e == p.ep_ranks),
        ) else {
            continue;
        };
        let (x, y) = (xi as f64, yi as f64);
        let value = p.summary.busbw_gbytes_per_s.as_ref().map(|iv| iv.mean);
        let fill = value.map_or(WHITE, |v| shade(v / scale));
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x + 0.02, y + 0.02), (x + 0.98, y + 0.98)],
            fill.filled(),
        )))?;
        let dark = value.is_some_and(|v| v / scale > 0.5);
        let text_color = if dark { WHITE } else { BLACK };
        chart.draw_series(std::iter::once(Text::new(
            value.map_or_else(|| "-".into(), human_rate),
            (x + 0.5, y + 0.5),
            (FONT, 18)
                .into_font()
                .color(&text_color)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        )))?;
    }
    Ok(())
}

/// Tick positions at the centres of `n` unit cells.
fn centres(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64 + 0.5).collect()
}

/// The label of the cell whose centre is at `v` (tick marks sit at the
/// centres).
fn cell_label(v: f64, labels: &[u32]) -> String {
    let centre = v - 0.5;
    if (centre - centre.round()).abs() < 1e-6 && centre >= 0.0 {
        labels
            .get(centre.round() as usize)
            .map_or(String::new(), u32::to_string)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::blocks::tables;

    fn fixture() -> RunReport {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/alltoall-7.2.json"
        ))
        .unwrap()
    }

    #[test]
    fn a_heatmap_and_a_table_per_mode_and_routing() {
        let report = fixture();
        let blocks = build(&report).unwrap();
        let charts: Vec<&Chart> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::Chart(c) => Some(c),
                _ => None,
            })
            .collect();
        // normal/low-latency × top-k/zipf.
        assert_eq!(charts.len(), 4);
        assert!(charts
            .iter()
            .any(|c| c.slug == "busbw-heatmap-low-latency-zipf_alpha_1.2"));
        let one = charts[0];
        assert!(one.svg.contains("EP group size n"), "{}", one.svg);
        assert!(one.svg.contains("B/s"), "a cell reads in a rate unit");
        // One EP size, one batch: a single labelled cell.
        assert!(one.svg.contains(">4<") || one.svg.contains("\n4\n"));
        assert!(one.svg.contains("16"));
        let t = tables(&blocks);
        // MoE rows, 4 latency tables, per rank, byte matrix.
        assert_eq!(t.len(), 7);
        assert_eq!(t[0].rows.len(), 1);
        assert_eq!(&t[0].rows[0][..5], ["M1", "8", "2", "4096", "2"]);
        assert!(t[1].title.contains("routing mode top-k"));
        assert!(t[1].rows[0][3].contains(" ± "), "{:?}", t[1].rows);
        assert_eq!(t[1].rows[0][10], "n/a (smallest EP)");
        assert_eq!(t[5].rows.len(), 4, "{:?}", t[5]);
        assert_eq!(t[6].columns.len(), 5);
        assert!(t[6].rows[0][1].starts_with('('), "diagonal is local");
    }

    #[test]
    fn no_point_is_a_note_and_odd_points_render() {
        let mut report = fixture();
        report.alltoall.clear();
        assert!(matches!(&build(&report).unwrap()[..], [Block::Note(_)]));
        let mut odd = fixture();
        odd.alltoall[0].trials.clear();
        odd.alltoall[0].summary.busbw_gbytes_per_s = None;
        odd.alltoall[3].trials.clear();
        assert!(build(&odd).is_ok());
    }

    #[test]
    fn cells_are_labelled_at_their_centres() {
        assert_eq!(cell_label(0.5, &[4, 8]), "4");
        assert_eq!(cell_label(1.5, &[4, 8]), "8");
        assert_eq!(cell_label(1.0, &[4, 8]), "");
        assert_eq!(shade(0.0), WHITE);
    }
}
