//! Test 8.3: congestion-control convergence (draft §8.3): the setup, a
//! table of each class's convergence time, steady rate and the JFI per
//! order, a convergence plot per order (rate per class against time, t0
//! and each class's convergence marked, from the first trial), and the
//! counter series of that trial.

use plotters::prelude::*;

use super::counter_series::counter_blocks;
use super::style::{color, draw_legend, svg_chart, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{mean_ci, optional, time_ci};
use crate::results::{ConvergenceOrder, ConvergenceReport, ConvergenceTrial, RunReport};

/// The 8.3 section.
pub(super) const SECTION: Section = Section {
    test_id: "8.3",
    title: "convergence: setup, convergence time / steady rate / JFI per order, rate per class vs time with t0 and convergence marked, counter series",
    build,
};

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let Some(c) = report
        .contention
        .as_ref()
        .and_then(|c| c.convergence.as_ref())
    else {
        return Ok(vec![Block::Note(
            "No convergence result in this file: nothing to chart or tabulate for test 8.3.".into(),
        )]);
    };
    let mut blocks = vec![Block::Table(setup_table(c)), Block::Table(orders_table(c))];
    for order in &c.orders {
        let Some(trial) = order.trials.first() else {
            continue;
        };
        let slug = format!("convergence-{}", order.order);
        let svg = svg_chart(&slug, |root| draw_rates(root, c, order, trial))?;
        blocks.push(Block::Chart(Chart {
            slug,
            title: format!(
                "Rate per class, {} ({} joins at t0), trial {}",
                order.order, order.joining_class, trial.trial
            ),
            caption: format!(
                "Each class's rate (GB/s) in {} bins, smoothed by the centred mean of {} bins (what convergence is judged on), against ms after the trial's start. Solid grey: t0 (the joining class's first post); dashed, per class: its convergence (within {:.0} % of its steady rate from there on); dotted: the steady state's start (the last third of the window both classes ran). A class without a dashed line did not converge.",
                crate::report::units::human_ns(c.bin_ns as f64),
                c.smooth_bins,
                c.tolerance * 100.0
            ),
            svg,
        }));
        blocks.extend(counter_blocks(
            &trial.counter_series,
            &format!("counters-{}", order.order),
            &format!("NIC counters, {} trial {}", order.order, trial.trial),
            trial.t0_ns as i64,
        )?);
    }
    Ok(blocks)
}

fn setup_table(c: &ConvergenceReport) -> Table {
    let ns = |v: u64| crate::report::units::human_ns(v as f64);
    Table {
        title: "Convergence setup".into(),
        columns: vec!["parameter".into(), "value".into()],
        rows: [
            ("KV load, % of measured capacity", c.kv_load_percent.to_string()),
            ("KV target GB/s", optional(c.kv_target_gbytes_per_s, 3)),
            ("joining class scheduled at", ns(c.join_after_ns)),
            ("rate-series bin", ns(c.bin_ns)),
            ("smoothing window (bins)", c.smooth_bins.to_string()),
            ("tolerance band", format!("{:.0} %", c.tolerance * 100.0)),
            ("steady state", format!("last {:.0} % of the window", c.steady_fraction * 100.0)),
            ("counter interval", c.counter_interval_ns.map_or("-".into(), ns)),
        ]
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect(),
        notes: vec!["The window runs from t0 to the end of the time both classes ran; see docs/tests/8.3.md for every definition.".into()],
    }
}

fn orders_table(c: &ConvergenceReport) -> Table {
    let mut rows = Vec::new();
    for o in &c.orders {
        for k in &o.classes {
            rows.push(vec![
                o.order.clone(),
                k.class.clone(),
                if k.class == o.joining_class {
                    "joins".into()
                } else {
                    "first".into()
                },
                time_ci(k.convergence_ns.as_ref()),
                format!("{}/{}", k.converged_trials, k.trials),
                mean_ci(k.steady_gbytes_per_s.as_ref(), 1.0, 3),
                mean_ci(o.jfi.as_ref(), 1.0, 3),
                window_counter(o, |t| t.window_counters.retransmissions),
                window_counter(o, |t| t.window_counters.out_of_sequence),
            ]);
        }
    }
    Table {
        title: "Convergence per order and class".into(),
        columns: [
            "order",
            "class",
            "role",
            "convergence time",
            "converged trials",
            "steady GB/s",
            "JFI (classes)",
            "retransmissions in window",
            "out-of-sequence in window",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        notes: vec!["Convergence time and steady rate: mean ± 95 % CI across trials (convergence over the trials that converged). Counters: summed over trials and devices, '-' where no device exposes them.".into()],
    }
}

fn window_counter(o: &ConvergenceOrder, pick: impl Fn(&ConvergenceTrial) -> Option<i64>) -> String {
    let values: Vec<i64> = o.trials.iter().filter_map(&pick).collect();
    if values.is_empty() {
        "not exposed".into()
    } else {
        values.iter().sum::<i64>().to_string()
    }
}

/// Centred moving mean of `values` over `width`, shifted inward at the
/// edges (as stats::convergence judges it).
fn smoothed(values: &[f64], width: usize) -> Vec<f64> {
    let len = values.len();
    let width = width.clamp(1, len.max(1));
    let half = width / 2;
    let mut prefix = vec![0.0];
    for v in values {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
    }
    (0..len)
        .map(|i| {
            let lo = i.saturating_sub(half).min(len - width);
            (prefix[lo + width] - prefix[lo]) / width as f64
        })
        .collect()
}

fn draw_rates(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    c: &ConvergenceReport,
    order: &ConvergenceOrder,
    trial: &ConvergenceTrial,
) -> Result<(), Box<dyn std::error::Error>> {
    let bin_ms = c.bin_ns as f64 / 1e6;
    let lines: Vec<(String, Vec<(f64, f64)>)> = trial
        .series
        .iter()
        .map(|s| {
            let rates: Vec<f64> = s
                .series
                .rates_bytes_per_s()
                .into_iter()
                .map(|r| r / 1e9)
                .collect();
            let points = smoothed(&rates, c.smooth_bins as usize)
                .into_iter()
                .enumerate()
                .map(|(i, r)| ((i as f64 + 0.5) * bin_ms, r))
                .collect();
            (s.class.clone(), points)
        })
        .collect();
    let x_hi = lines
        .iter()
        .filter_map(|(_, p)| p.last().map(|q| q.0))
        .fold(trial.window_end_ns as f64 / 1e6, f64::max)
        .max(1.0)
        * 1.02;
    let y_hi = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0f64, f64::max)
        .max(1e-6)
        * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption(format!("8.3 {}: rate per class", order.order), (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc("ms after the trial's start")
        .y_desc("GB/s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.3}"))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    let vline = |x: f64| vec![(x, 0.0), (x, y_hi)];
    let t0 = trial.t0_ns as f64 / 1e6;
    chart
        .draw_series(LineSeries::new(vline(t0), BLACK.mix(0.5).stroke_width(2)))?
        .label(format!("t0 = {t0:.1} ms"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    let steady = trial.steady_from_ns as f64 / 1e6;
    chart.draw_series(DashedLineSeries::new(
        vline(steady),
        2,
        6,
        BLACK.mix(0.4).into(),
    ))?;
    for (i, (class, points)) in lines.iter().enumerate() {
        let style = color(i);
        chart
            .draw_series(LineSeries::new(points.clone(), style.stroke_width(2)))?
            .label(class.to_uppercase())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(2))
            });
        let converged = trial
            .classes
            .iter()
            .find(|k| &k.class == class)
            .and_then(|k| k.convergence_ns);
        if let Some(ns) = converged {
            let x = (trial.t0_ns + ns) as f64 / 1e6;
            chart
                .draw_series(DashedLineSeries::new(vline(x), 8, 5, style.stroke_width(2)))?
                .label(format!(
                    "{} converged +{:.1} ms",
                    class.to_uppercase(),
                    ns as f64 / 1e6
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(1))
                });
        }
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{
        ClassConvergence, ClassSeries, ContentionReport, CounterSeries, WindowCounters,
    };
    use crate::stats::{RateSeries, SeriesClock};

    fn fixture() -> RunReport {
        let mut report: RunReport = serde_json::from_str(include_str!(
            "../../../tests/fixtures/results/contention-7.4.json"
        ))
        .unwrap();
        report.test_id = "8.3".into();
        let clock = SeriesClock::covering(0, 1_000_000, 90_000_000);
        let (mut kv, mut ep) = (RateSeries::new(clock), RateSeries::new(clock));
        for ms in 0..90u64 {
            kv.record(ms * 1_000_000, if ms < 40 { 100_000 } else { 60_000 }, 1);
            if ms >= 30 {
                ep.record(ms * 1_000_000, 40_000, 1);
            }
        }
        let trial = ConvergenceTrial {
            t0_ns: 30_000_000,
            window_end_ns: 90_000_000,
            steady_from_ns: 70_000_000,
            classes: vec![
                ClassConvergence {
                    class: "kv".into(),
                    steady_gbytes_per_s: Some(0.06),
                    steady_share: Some(0.6),
                    convergence_ns: Some(10_000_000),
                },
                ClassConvergence {
                    class: "ep".into(),
                    steady_gbytes_per_s: Some(0.04),
                    steady_share: Some(0.4),
                    convergence_ns: None,
                },
            ],
            series: vec![
                ClassSeries {
                    class: "kv".into(),
                    lanes: 1,
                    series: kv,
                },
                ClassSeries {
                    class: "ep".into(),
                    lanes: 2,
                    series: ep,
                },
            ],
            counter_series: vec![CounterSeries {
                device: "rxe0".into(),
                port: 1,
                interval_ns: 10_000_000,
                t_ns: vec![10_000_000, 20_000_000, 30_000_000, 40_000_000],
                retransmissions: Some(vec![0, 0, 3, 1]),
                ..CounterSeries::default()
            }],
            window_counters: WindowCounters {
                retransmissions: Some(4),
                ..WindowCounters::default()
            },
            ..ConvergenceTrial::default()
        };
        let mut order = ConvergenceOrder {
            order: "kv-first".into(),
            first_class: "kv".into(),
            joining_class: "ep".into(),
            trials: vec![trial],
            ..ConvergenceOrder::default()
        };
        crate::suite::convergence::summarise_order(&mut order);
        let c: &mut ContentionReport = report.contention.as_mut().unwrap();
        c.convergence = Some(ConvergenceReport {
            kv_load_percent: 80,
            bin_ns: 1_000_000,
            smooth_bins: 5,
            tolerance: 0.05,
            steady_fraction: 1.0 / 3.0,
            join_after_ns: 30_000_000,
            counter_interval_ns: Some(10_000_000),
            orders: vec![order],
            ..ConvergenceReport::default()
        });
        report
    }

    #[test]
    fn draws_the_rates_the_table_and_the_counters() {
        let blocks = build(&fixture()).unwrap();
        let charts: Vec<&Chart> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::Chart(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(charts.len(), 2);
        assert!(charts[0].svg.contains("t0 = 30.0 ms"));
        assert!(charts[0].svg.contains("KV converged +10.0 ms"));
        assert!(!charts[0].svg.contains("EP converged"));
        let Block::Table(table) = &blocks[1] else {
            panic!("the orders table comes second");
        };
        assert_eq!(table.rows.len(), 2);
        assert_eq!(table.rows[1][4], "0/1");
        assert_eq!(table.rows[0][7], "4");
        assert_eq!(table.rows[0][8], "not exposed");
    }

    #[test]
    fn a_file_without_convergence_gets_a_note() {
        let mut report = fixture();
        report.contention = None;
        assert!(matches!(build(&report).unwrap()[..], [Block::Note(_)]));
    }

    #[test]
    fn smoothing_matches_the_judged_series() {
        assert_eq!(smoothed(&[3.0, 0.0, 0.0, 3.0, 0.0, 0.0], 3), vec![1.0; 6]);
        assert_eq!(smoothed(&[], 3), Vec::<f64>::new());
    }
}
