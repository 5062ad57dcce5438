//! Test 10.2: ITL characterization (draft §10.2 "Measurement"): the setup,
//! ITL_fabric at P50/P95/P99/P99.9/max and the stall count per load
//! condition, and the ITL_fabric CDF, one line per condition.

use plotters::prelude::*;

use super::style::{color, draw_legend, short_number, svg_chart, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_bytes, human_ns, optional_rate, time_ci, TimeScale};
use crate::results::{DecodeCondition, DecodeStepsReport, RunReport};

/// The 10.2 section.
pub(super) const SECTION: Section = Section {
    test_id: "10.2",
    title:
        "decode-step setup, ITL_fabric percentiles and stalls per load condition, ITL_fabric CDF",
    build,
};

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let Some(d) = &report.decode_steps else {
        return Ok(vec![Block::Note(
            "No decode-step result in this file: nothing to chart or tabulate for test 10.2."
                .into(),
        )]);
    };
    let mut blocks = vec![
        Block::Table(setup_table(d)),
        Block::Table(conditions_table(d)),
    ];
    let lines: Vec<&DecodeCondition> = d.conditions.iter().filter(|c| !c.cdf.is_empty()).collect();
    if lines.is_empty() {
        blocks.push(Block::Note(
            "No condition completed a trial: no ITL_fabric CDF.".into(),
        ));
    } else {
        let svg = svg_chart("itl-cdf", |root| draw(root, &lines))?;
        blocks.push(Block::Chart(Chart {
            slug: "itl-cdf".into(),
            title: "ITL_fabric CDF per load condition".into(),
            caption: format!("Fraction of decode steps whose ITL_fabric (the step's wall time over every rank, first dispatch start → last combine done, less the modelled compute between its layers) is at or below x, every step of every trial of the condition; x in {}. (a) unloaded, (b) 50 %, (c) 90 % of the KV capacity measured first.", itl_scale(&lines).name),
            svg,
        }));
    }
    Ok(blocks)
}

fn setup_table(d: &DecodeStepsReport) -> Table {
    let slot = d.pair_bytes.iter().flatten().copied().max().unwrap_or(0);
    Table {
        title: "Decode-step setup".into(),
        columns: vec!["parameter".into(), "value".into()],
        rows: [
            ("MoE", format!("{} (E={}, k={}, H={}, P={})", d.moe.name, d.moe.experts, d.moe.top_k, d.moe.hidden, d.moe.bytes_per_element)),
            ("EP ranks", d.ep_ranks.to_string()),
            ("decode tokens per rank", d.batch_tokens.to_string()),
            ("MoE layers per step", d.layers.to_string()),
            ("compute gap per layer (modelled)", human_ns(d.modelled_compute_gap_ns as f64)),
            ("steps per trial", d.steps.to_string()),
            ("bytes per rank pair per dispatch (padded)", human_bytes(slot)),
            ("background KV pairs", d.kv_pairs.to_string()),
            ("KV capacity (unpaced, measured first)", optional_rate(d.capacity_gbytes_per_s)),
        ]
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect(),
        notes: vec!["Every layer is a low-latency (padded) AllToAll dispatch and its combine (the transposed matrix), on real QPs; only the compute gap between layers is modelled.".into()],
    }
}

fn conditions_table(d: &DecodeStepsReport) -> Table {
    let rows = d
        .conditions
        .iter()
        .map(|c| {
            let s = &c.itl_fabric;
            let achieved: Vec<f64> = c
                .trials
                .iter()
                .filter_map(|t| t.background_gbytes_per_s)
                .collect();
            let achieved = (!achieved.is_empty())
                .then(|| achieved.iter().sum::<f64>() / achieved.len() as f64);
            let uncovered = c.trials.iter().filter(|t| !t.background_covered).count();
            vec![
                format!("({})", c.condition),
                c.load_percent.to_string(),
                optional_rate(c.target_gbytes_per_s),
                optional_rate(achieved),
                c.trials.len().to_string(),
                s.count.to_string(),
                human_ns(s.p50_ns as f64),
                human_ns(s.p95_ns as f64),
                human_ns(s.p99_ns as f64),
                if s.p999_reliable {
                    human_ns(s.p999_ns as f64)
                } else {
                    format!("{} (< 1,000 steps)", human_ns(s.p999_ns as f64))
                },
                human_ns(s.max_ns as f64),
                time_ci(c.p99_ns.as_ref()),
                c.stalls.to_string(),
                if uncovered == 0 {
                    "yes".into()
                } else {
                    format!("no ({uncovered} trials)")
                },
            ]
        })
        .collect();
    Table {
        title: "ITL_fabric per load condition".into(),
        columns: [
            "condition",
            "load %",
            "KV target",
            "KV achieved",
            "trials",
            "steps",
            "P50",
            "P95",
            "P99",
            "P99.9",
            "max",
            "P99 across trials",
            "stalls > 100 ms",
            "load covered every step",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec!["Percentiles over every step of every trial of the condition (merged); 'P99 across trials' is the mean ± 95 % CI of the per-trial P99. The draft's ITL_fabric KPI target is P99 < 5 ms.".into()],
    }
}

/// The ITL axis' unit: from the longest step of every line.
fn itl_scale(lines: &[&DecodeCondition]) -> TimeScale {
    let max = lines
        .iter()
        .filter_map(|c| c.cdf.last())
        .map(|p| p.latency_ns)
        .max();
    TimeScale::for_max_ns(max.unwrap_or(0) as f64)
}

fn draw(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    lines: &[&DecodeCondition],
) -> Result<(), Box<dyn std::error::Error>> {
    let scale = itl_scale(lines);
    let max = lines
        .iter()
        .filter_map(|c| c.cdf.last())
        .map(|p| scale.of(p.latency_ns))
        .fold(0.0f64, f64::max);
    let x_hi = if max > 0.0 { max * 1.05 } else { 1.0 };
    let mut chart = ChartBuilder::on(root)
        .caption("ITL_fabric CDF", (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_hi, 0.0..1.05)?;
    chart
        .configure_mesh()
        .x_desc(format!("ITL_fabric per decode step ({})", scale.name))
        .y_desc("fraction of steps ≤ x")
        .x_label_formatter(&|x| short_number(*x))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, c) in lines.iter().enumerate() {
        let style = color(i);
        let mut path = vec![(0.0, 0.0)];
        let mut previous = 0.0;
        for p in &c.cdf {
            let x = scale.of(p.latency_ns);
            path.push((x, previous));
            path.push((x, p.fraction));
            previous = p.fraction;
        }
        path.push((x_hi, previous));
        chart
            .draw_series(LineSeries::new(path, style.stroke_width(2)))?
            .label(format!(
                "({}) {} % load (n={})",
                c.condition, c.load_percent, c.itl_fabric.count
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(2))
            });
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{DecodeTrial, MoeReport};
    use crate::stats::LatencyHistogram;

    fn fixture() -> RunReport {
        let mut report: RunReport = serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/contention-7.4.json"
        ))
        .unwrap();
        report.test_id = "10.2".into();
        let mut h = LatencyHistogram::new();
        for ns in [1_000_000u64, 1_200_000, 1_500_000, 150_000_000] {
            h.record(ns);
        }
        let trial = DecodeTrial {
            trial: 0,
            steps: 4,
            itl_fabric: h.summary(),
            itl_step: h.summary(),
            stalls: 1,
            background_gbytes_per_s: None,
            background_covered: true,
            counters: Vec::new(),
        };
        report.decode_steps = Some(DecodeStepsReport {
            moe: MoeReport {
                name: "M1".into(),
                experts: 8,
                top_k: 2,
                hidden: 4096,
                bytes_per_element: 2,
            },
            ep_ranks: 2,
            batch_tokens: 8,
            layers: 4,
            modelled_compute_gap_ns: 20_000,
            steps: 4,
            pair_bytes: vec![vec![0, 65536], vec![65536, 0]],
            kv_pairs: 1,
            capacity_gbytes_per_s: None,
            conditions: vec![DecodeCondition {
                condition: "a".into(),
                load_percent: 0,
                target_gbytes_per_s: None,
                trials: vec![trial],
                p50_ns: None,
                p99_ns: None,
                p999_ns: None,
                itl_fabric: h.summary(),
                stalls: 1,
                cdf: h.cdf_points(200),
            }],
        });
        report
    }

    #[test]
    fn a_condition_gives_its_row_and_a_cdf_line() {
        let blocks = build(&fixture()).unwrap();
        let tables: Vec<&Table> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::Table(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(tables.len(), 2);
        let row = &tables[1].rows[0];
        assert_eq!(row[0], "(a)");
        assert_eq!(row[12], "1", "one stall above 100 ms");
        assert!(blocks
            .iter()
            .any(|b| matches!(b, Block::Chart(c) if c.slug == "itl-cdf")));
    }

    #[test]
    fn no_result_is_a_note() {
        let mut report = fixture();
        report.decode_steps = None;
        assert!(matches!(build(&report).unwrap()[..], [Block::Note(_)]));
    }
}
