//! Test 10.3, multi-tenant serving: the setup, a row per tenant with its
//! TTFT and KV-transfer P99 alone and shared and the interference penalty,
//! the points (each tenant alone and shared), and per-tenant bars of TTFT
//! P99 alone against shared.

use plotters::prelude::*;

use super::serving_pools::{points_table, setup_table};
use super::style::{color, draw_legend, short_number, svg_chart, FONT};
use super::{PlotError, Section};
use crate::report::blocks::{Block, Chart, Table};
use crate::report::units::{human_ns, TimeScale};
use crate::results::{RunReport, ServingReport, TenantResult};

/// The 10.3 section.
pub(super) const SECTION_10_3: Section = Section {
    test_id: "10.3",
    title: "multi-tenant serving: per-tenant TTFT P99 alone and shared, interference penalty",
    build,
};

fn build(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let Some(s) = &report.serving else {
        return Ok(vec![Block::Note(
            "No serving result in this file: nothing to chart.".into(),
        )]);
    };
    let mut blocks = vec![
        Block::Table(setup_table(s)),
        Block::Table(tenants_table(s)),
        Block::Table(points_table(s)),
    ];
    let measured: Vec<&TenantResult> = s
        .tenants
        .iter()
        .filter(|t| t.ttft_p99_alone_ns.is_some() || t.ttft_p99_shared_ns.is_some())
        .collect();
    if measured.is_empty() {
        blocks.push(Block::Note(
            "No tenant completed a request: no chart.".into(),
        ));
        return Ok(blocks);
    }
    let svg = svg_chart("tenants-ttft", |root| draw_bars(root, &measured))?;
    blocks.push(Block::Chart(Chart {
        slug: "tenants-ttft".into(),
        title: "TTFT P99 per tenant, alone and sharing the fabric (10.3)".into(),
        caption: "Mean over trials of each trial's TTFT P99, counted from each request's intended arrival: each tenant on its own pools alone (left bar) and with every tenant at once (right bar), the same seeded requests both times; the label is the interference penalty. Prefill and decode are modelled; queueing and KV transfers are measured.".into(),
        svg,
    }));
    Ok(blocks)
}

fn penalty(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{p:+.1} %"))
}

fn tenants_table(s: &ServingReport) -> Table {
    let t = |ns: Option<f64>| ns.map_or("-".into(), human_ns);
    Table {
        title: "Tenants: alone vs shared (10.3)".into(),
        columns: [
            "tenant",
            "model",
            "pools",
            "arrival",
            "TTFT P99 alone",
            "TTFT P99 shared",
            "TTFT penalty",
            "T_transfer P99 alone",
            "T_transfer P99 shared",
            "T_transfer penalty",
            "ITL P99 (modelled)",
        ]
        .map(String::from)
        .to_vec(),
        rows: s
            .tenants
            .iter()
            .map(|r| {
                vec![
                    r.tenant.clone(),
                    r.model.clone(),
                    r.ratio.clone(),
                    r.arrival.clone(),
                    t(r.ttft_p99_alone_ns),
                    t(r.ttft_p99_shared_ns),
                    penalty(r.ttft_p99_penalty_pct),
                    t(r.t_transfer_p99_alone_ns),
                    t(r.t_transfer_p99_shared_ns),
                    penalty(r.t_transfer_p99_penalty_pct),
                    human_ns(r.itl_p99_modelled_ns as f64),
                ]
            })
            .collect(),
        notes: vec!["Penalty = (shared − alone) / alone × 100 % (the draft's interference penalty) of the mean over trials of each trial's P99. ITL is the modelled decode step, equal alone and shared, so its penalty is not measured.".into()],
    }
}

fn draw_bars(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    tenants: &[&TenantResult],
) -> Result<(), Box<dyn std::error::Error>> {
    let max_ns = tenants
        .iter()
        .flat_map(|t| [t.ttft_p99_alone_ns, t.ttft_p99_shared_ns])
        .flatten()
        .fold(0.0, f64::max);
    let scale = TimeScale::for_max_ns(max_ns);
    let y_hi = (max_ns * scale.per_ns * 1.25).max(1e-9);
    let n = tenants.len() as f64;
    let mut chart = ChartBuilder::on(root)
        .caption("TTFT P99 per tenant: alone vs shared", (FONT, 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..n, 0.0..y_hi)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(format!("TTFT P99 ({})", scale.name))
        .y_label_formatter(&|y| short_number(*y))
        .label_style((FONT, 14))
        .light_line_style(TRANSPARENT)
        .draw()?;
    let phases = ["alone", "shared"];
    let mut labelled = [false; 2];
    for (i, t) in tenants.iter().enumerate() {
        let x = i as f64;
        for (k, value) in [t.ttft_p99_alone_ns, t.ttft_p99_shared_ns]
            .into_iter()
            .enumerate()
        {
            let Some(ns) = value else { continue };
            let left = x + 0.15 + 0.35 * k as f64;
            let bar = chart.draw_series([Rectangle::new(
                [(left, 0.0), (left + 0.3, ns * scale.per_ns)],
                color(k).filled(),
            )])?;
            if !labelled[k] {
                labelled[k] = true;
                bar.label(phases[k]).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color(k).filled())
                });
            }
        }
        chart.draw_series([Text::new(
            format!("{} {} {}", t.tenant, t.model, t.ratio),
            (x + 0.15, -y_hi * 0.04),
            (FONT, 14),
        )])?;
        let top = [t.ttft_p99_alone_ns, t.ttft_p99_shared_ns]
            .into_iter()
            .flatten()
            .fold(0.0, f64::max)
            * scale.per_ns;
        chart.draw_series([Text::new(
            penalty(t.ttft_p99_penalty_pct),
            (x + 0.3, top + y_hi * 0.04),
            (FONT, 14),
        )])?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}
