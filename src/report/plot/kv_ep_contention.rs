//! Test 7.4: KV cache transfer and EP AllToAll contention (draft §7.4
//! "Measurement"): the phases table (capacity, isolated, contended), the
//! contention penalty table (contended P99 / isolated P99 per traffic
//! class and KV load) and a grouped bar chart of isolated vs contended P99.
//! The ECN/PFC counts during the phases are in the fabric health section
//! (fabric_health.rs), not here.

use plotters::prelude::*;

use super::style::{color, draw_legend, svg_chart, TickedAxis, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_bytes, human_ns, optional_rate, rate_ci, time_ci, time_ns};
use crate::results::{ContentionReport, RunReport};

/// The 7.4 section.
pub(super) const SECTION: Section = Section {
    test_id: "7.4",
    title: "phases table, contention penalty table, isolated vs contended P99 bars per class and KV load",
    build,
};

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let Some(c) = &report.contention else {
        return Ok(vec![Block::Note(
            "No contention result in this file: nothing to chart or tabulate for test 7.4.".into(),
        )]);
    };
    let mut blocks = vec![
        Block::Table(setup_table(c)),
        Block::Table(phases_table(c)),
        Block::Table(penalty_table(c)),
    ];
    let bars = bars(c);
    if bars.is_empty() {
        blocks.push(Block::Note(
            "No KV load has both an isolated and a contended P99: no penalty chart.".into(),
        ));
    } else {
        let svg = svg_chart("contention-p99", |root| draw(root, &bars))?;
        blocks.push(Block::Chart(Chart {
            slug: "contention-p99".into(),
            title: "Isolated vs contended P99 per traffic class and KV load".into(),
            caption: "One group per (traffic class, KV load as % of the measured KV capacity): the P99 isolated (left bar) and contended (right bar), mean over trials, on a log₁₀ y axis (the two classes differ by orders of magnitude); the contention penalty (contended / isolated) is written above each group. KV: message completion latency of the paced KV stream; EP: AllToAll dispatch latency, slowest rank per dispatch.".into(),
            svg,
        }));
    }
    Ok(blocks)
}

fn setup_table(c: &ContentionReport) -> Table {
    Table {
        title: "Contention setup".into(),
        columns: vec!["parameter".into(), "value".into()],
        rows: [
            ("KV pairs", c.kv_pairs.to_string()),
            ("KV message size", human_bytes(c.kv_msg_bytes)),
            ("KV trial length", human_ns(c.kv_duration_s * 1e9)),
            (
                "KV capacity (unpaced, isolated)",
                optional_rate(c.capacity_gbytes_per_s),
            ),
            ("EP ranks", c.ep_ranks.to_string()),
            (
                "MoE config",
                format!(
                    "{} (E {}, k {}, H {}, P {} B)",
                    c.moe.name, c.moe.experts, c.moe.top_k, c.moe.hidden, c.moe.bytes_per_element
                ),
            ),
            ("tokens per rank B", c.batch_tokens.to_string()),
            ("dispatch mode", c.mode.clone()),
            ("routing mode", c.routing.clone()),
            ("dispatch period", time_ns(c.period_ns)),
            ("dispatches per trial", c.iterations.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect(),
        notes: Vec::new(),
    }
}

fn phases_table(c: &ContentionReport) -> Table {
    let rows = c
        .phases
        .iter()
        .map(|p| {
            vec![
                p.phase.clone(),
                p.kv_load_percent
                    .map_or_else(|| "-".into(), |l| format!("{l} %")),
                optional_rate(p.kv_target_gbytes_per_s),
                rate_ci(p.kv_gbytes_per_s.as_ref()),
                time_ci(p.kv_p99_ns.as_ref()),
                time_ci(p.ep_p99_ns.as_ref()),
                p.trials.len().to_string(),
            ]
        })
        .collect();
    Table {
        title: "Phases".into(),
        columns: [
            "phase",
            "KV load",
            "KV target",
            "KV achieved",
            "KV P99",
            "EP P99",
            "trials",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![
            "In run order. capacity: the KV stream unpaced and alone (its rate is the capacity the loads are percent of); kv-isolated / ep-isolated: one class alone; contended: both at once on their own QPs. Values are mean ± 95 % CI across trials; - : the phase has no such traffic or the stream was unpaced.".into(),
        ],
    }
}

fn penalty_table(c: &ContentionReport) -> Table {
    let us = |ns: Option<f64>| ns.map_or_else(|| "-".into(), human_ns);
    let times = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{v:.2}×"));
    let rows = c
        .penalties
        .iter()
        .map(|p| {
            vec![
                format!("{} %", p.kv_load_percent),
                us(p.kv_isolated_p99_ns),
                us(p.kv_contended_p99_ns),
                times(p.kv_penalty),
                us(p.ep_isolated_p99_ns),
                us(p.ep_contended_p99_ns),
                times(p.ep_penalty),
            ]
        })
        .collect();
    Table {
        title: "Contention penalty (contended P99 / isolated P99)".into(),
        columns: [
            "KV load",
            "KV isolated P99",
            "KV contended P99",
            "KV penalty",
            "EP isolated P99",
            "EP contended P99",
            "EP penalty",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec![
            "P99 values are means over trials. Penalty = contended / isolated, per traffic class (draft §7.4); 1.00× is no interference.".into(),
        ],
    }
}

/// One group of the chart: label, isolated and contended P99 (ns), penalty.
struct Bar {
    label: String,
    isolated_ns: f64,
    contended_ns: f64,
    penalty: Option<f64>,
}

fn bars(c: &ContentionReport) -> Vec<Bar> {
    let mut bars = Vec::new();
    for class in ["KV", "EP"] {
        for p in &c.penalties {
            let (iso, con, pen) = if class == "KV" {
                (p.kv_isolated_p99_ns, p.kv_contended_p99_ns, p.kv_penalty)
            } else {
                (p.ep_isolated_p99_ns, p.ep_contended_p99_ns, p.ep_penalty)
            };
            if let (Some(isolated_ns), Some(contended_ns)) = (iso, con) {
                if isolated_ns > 0.0 && contended_ns > 0.0 {
                    bars.push(Bar {
                        label: format!("{class} @ {} % KV load", p.kv_load_percent),
                        isolated_ns,
                        contended_ns,
                        penalty: pen,
                    });
                }
            }
        }
    }
    bars
}

fn draw(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    bars: &[Bar],
) -> Result<(), Box<dyn std::error::Error>> {
    let log_ns = |ns: f64| ns.max(1.0).log10();
    let lo = bars
        .iter()
        .map(|b| log_ns(b.isolated_ns.min(b.contended_ns)))
        .fold(f64::INFINITY, f64::min)
        .floor()
        - 0.0;
    let hi = bars
        .iter()
        .map(|b| log_ns(b.isolated_ns.max(b.contended_ns)))
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil()
        + 0.3;
    let n = bars.len() as f64;
    let centres: Vec<f64> = (0..bars.len()).map(|i| i as f64 + 0.5).collect();
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let y_ticks = super::style::log10_ticks(lo, hi, 12);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Test 7.4: P99 isolated vs contended, per class and KV load",
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(
            TickedAxis::new(0.0..n, centres),
            TickedAxis::new(lo..hi, y_ticks),
        )?;
    chart
        .configure_mesh()
        .x_desc("traffic class @ KV load")
        .y_desc("P99 latency (log₁₀ scale)")
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| super::style::log_ns_label(*y))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    let (iso_color, con_color) = (color(0), color(3));
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let x = i as f64;
            Rectangle::new(
                [(x + 0.15, lo), (x + 0.48, log_ns(b.isolated_ns))],
                iso_color.filled(),
            )
        }))?
        .label("isolated")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], iso_color.filled()));
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let x = i as f64;
            Rectangle::new(
                [(x + 0.52, lo), (x + 0.85, log_ns(b.contended_ns))],
                con_color.filled(),
            )
        }))?
        .label("contended")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], con_color.filled()));
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let top = log_ns(b.isolated_ns.max(b.contended_ns));
        Text::new(
            b.penalty
                .map_or_else(|| "penalty n/a".into(), |p| format!("penalty {p:.2}×")),
            (i as f64 + 0.5, top),
            (FONT, 15)
                .into_font()
                .color(&BLACK)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Bottom,
                )),
        )
    }))?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> RunReport {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/contention-7.4.json"
        ))
        .unwrap()
    }

    #[test]
    fn phases_penalties_and_a_bar_chart() {
        let report = fixture();
        let blocks = build(&report).unwrap();
        let tables: Vec<&Table> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::Table(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(tables.len(), 3);
        let phases = tables[1];
        assert_eq!(phases.rows.len(), 4);
        assert_eq!(phases.rows[0][0], "capacity");
        assert_eq!(phases.rows[3][1], "50 %");
        assert!(phases.rows[3][5].contains(" ± "), "{:?}", phases.rows[3]);
        let penalty = tables[2];
        assert_eq!(penalty.rows[0][3], "12.84×");
        assert_eq!(penalty.rows[0][6], "4.76×");
        let Some(Block::Chart(chart)) = blocks.last() else {
            panic!("{blocks:?}")
        };
        assert!(chart.svg.contains("KV @ 50 % KV load"));
        assert!(chart.svg.contains("EP @ 50 % KV load"));
        assert!(chart.svg.contains("penalty 12.84×"));
        assert!(chart.svg.contains("isolated") && chart.svg.contains("contended"));
    }

    #[test]
    fn no_contention_or_no_penalty_is_a_note() {
        let mut report = fixture();
        report.contention = None;
        assert!(matches!(&build(&report).unwrap()[..], [Block::Note(_)]));
        let mut bare = fixture();
        if let Some(c) = bare.contention.as_mut() {
            c.penalties.clear();
            c.phases[0].kv_p99_ns = None;
        }
        let blocks = build(&bare).unwrap();
        assert!(matches!(blocks.last(), Some(Block::Note(_))));
    }
}
