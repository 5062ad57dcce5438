//! The chart of one matched configuration in `compare.html`: one panel per
//! KPI, each trial's value of BASE and of NEW side by side on a shared
//! trial axis, with each side's mean as a dashed line, so the spread that
//! the test weighs is visible next to the shift it judged.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::verdict::KpiComparison;
use crate::report::plot::style::{color, short_number, FONT};
use crate::report::plot::PlotError;
use crate::report::units::{RateScale, TimeScale};

/// Width of the chart and height of one row of panels, pixels.
const WIDTH: u32 = 900;
const ROW_PX: u32 = 260;
/// Panels per row.
const COLUMNS: usize = 2;

/// How a KPI's base-unit values read on an axis: the factor and the unit.
fn axis_unit(unit: &str, max: f64) -> (f64, String) {
    match unit {
        "ns" => {
            let s = TimeScale::for_max_ns(max);
            (s.per_ns, s.name.to_string())
        }
        "GB/s" => {
            let s = RateScale::for_max_gbytes(max);
            (s.per_gbyte, s.name.to_string())
        }
        other => (1.0, other.to_string()),
    }
}

/// The SVG of one configuration: a panel per KPI of `rows` (all of one
/// configuration), BASE in the first palette colour (circles), NEW in the
/// second (triangles).
pub(crate) fn config_chart(config: &str, rows: &[&KpiComparison]) -> Result<String, PlotError> {
    let panel_rows = rows.len().div_ceil(COLUMNS).max(1);
    let size = (WIDTH, ROW_PX * panel_rows as u32 + 40);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let result = draw(&root, config, rows, panel_rows);
        result
            .and_then(|()| root.present().map_err(Into::into))
            .map_err(|e| PlotError {
                chart: format!("compare {config}"),
                message: e.to_string(),
            })?;
    }
    Ok(svg)
}

fn draw(
    root: &DrawingArea<SVGBackend, Shift>,
    config: &str,
    rows: &[&KpiComparison],
    panel_rows: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let root = root.titled(&format!("{config}: BASE vs NEW per trial"), (FONT, 20))?;
    let panels = root.split_evenly((panel_rows, COLUMNS));
    for (row, area) in rows.iter().zip(panels.iter()) {
        panel(area, row)?;
    }
    Ok(())
}

fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    row: &KpiComparison,
) -> Result<(), Box<dyn std::error::Error>> {
    let all = row.base_values.iter().chain(&row.new_values);
    let max = all.clone().copied().fold(0.0f64, f64::max);
    let min = all.copied().fold(f64::INFINITY, f64::min);
    let (k, unit) = axis_unit(row.unit, max);
    // room above the points for the legend
    let (lo, hi) = if min.is_finite() && max > min {
        let pad = (max - min) * 0.15;
        ((min - pad).max(0.0) * k, (max + 4.0 * pad) * k)
    } else if max > 0.0 {
        (max * k * 0.9, max * k * 1.2)
    } else {
        (0.0, 1.0)
    };
    let trials = row.base_values.len().max(row.new_values.len()).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{} — {}", row.kpi, row.verdict.name()), (FONT, 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..trials as f64 + 0.5, lo..hi)?;
    let y_desc = if unit.is_empty() {
        row.kpi.clone()
    } else {
        format!("{} ({unit})", row.kpi)
    };
    chart
        .configure_mesh()
        .x_desc("trial")
        .y_desc(y_desc)
        .x_labels(trials.min(10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| short_number(*y))
        .label_style((FONT, 12))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, (side, values)) in [("BASE", &row.base_values), ("NEW", &row.new_values)]
        .into_iter()
        .enumerate()
    {
        let c = color(i);
        // BASE a little left of the trial number, NEW a little right, so
        // equal values do not hide each other
        let dx = if i == 0 { -0.12 } else { 0.12 };
        let points: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(t, v)| ((t + 1) as f64 + dx, v * k))
            .collect();
        if i == 0 {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))?
                .label(side)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        } else {
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&p| TriangleMarker::new(p, 5, c.filled())),
                )?
                .label(side)
                .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 5, c.filled()));
        }
        if !values.is_empty() {
            let mean = values.iter().sum::<f64>() / values.len() as f64 * k;
            chart.draw_series(DashedLineSeries::new(
                [(0.5, mean), (trials as f64 + 0.5, mean)],
                6,
                4,
                c.stroke_width(1),
            ))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}
