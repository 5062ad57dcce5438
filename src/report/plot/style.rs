//! What every chart shares: canvas size, fonts, palette, and the log-scale
//! axes (drawn as linear axes over log values, with tick marks placed at the
//! values measured or at 1-2-5 steps, so labels read `64K`, `1M`, `20 µs`
//! instead of plotters' powers of ten). Charts themselves live one per file
//! beside this one.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::PlotError;
use crate::report::units::TimeScale;

/// Canvas of every chart, pixels.
pub(crate) const CHART_PX: (u32, u32) = (900, 520);

/// Font family of every text element (SVG `font-family`; the browser picks).
pub(crate) const FONT: &str = "sans-serif";

/// Tableau 10: distinct hues that survive grey-scale printing well enough.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The `i`-th series colour (wrapping).
pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Draws one chart into an SVG string. `draw` gets the whole canvas,
/// already filled white.
pub(crate) fn svg_chart(
    slug: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_PX).into_drawing_area();
        let result = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into));
        result.map_err(|e| PlotError {
            chart: slug.into(),
            message: e.to_string(),
        })?;
    }
    Ok(svg)
}

/// Draws the series legend every chart uses (14 px labels on a white,
/// slightly transparent box with a thin border) at `position`.
pub(crate) fn draw_legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    position: SeriesLabelPosition,
) -> Result<(), Box<dyn std::error::Error>> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

/// A linear f64 axis whose tick marks are exactly `ticks` (plotters' own
/// `with_key_points` loses the label formatter). Over log values it is a
/// log-scale axis with ticks where the data is.
#[derive(Debug, Clone)]
pub(crate) struct TickedAxis {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl TickedAxis {
    /// The axis over `range` with tick marks at `ticks`.
    pub(crate) fn new(range: Range<f64>, ticks: Vec<f64>) -> Self {
        TickedAxis { range, ticks }
    }
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let ratio = if span > 0.0 {
            (value - self.range.start) / span
        } else {
            0.5
        };
        limit.0 + (ratio * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// Tick positions for a log₂ axis: the distinct log₂ of `values`, thinned to
/// at most `max` evenly spaced ones (the first and last kept).
pub(crate) fn log2_ticks(values: &[f64], max: usize) -> Vec<f64> {
    let mut ticks: Vec<f64> = values.iter().map(|v| v.log2()).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    thin(ticks, max)
}

fn thin(ticks: Vec<f64>, max: usize) -> Vec<f64> {
    if ticks.len() <= max || max < 2 {
        return ticks;
    }
    let step = (ticks.len() - 1) as f64 / (max - 1) as f64;
    (0..max)
        .map(|i| ticks[(i as f64 * step).round() as usize])
        .collect()
}

/// Tick positions for a log₁₀ axis over `[lo, hi]` (log₁₀ values): every
/// 1, 2 and 5 × 10ᵏ inside, thinned to at most `max`.
pub(crate) fn log10_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = lo.floor() as i32;
    while f64::from(decade) <= hi.ceil() {
        for m in [1.0f64, 2.0, 5.0] {
            let t = m.log10() + f64::from(decade);
            if t >= lo - 1e-9 && t <= hi + 1e-9 {
                ticks.push(t);
            }
        }
        decade += 1;
    }
    if ticks.len() > max {
        // Keep the decades only, before thinning further.
        ticks.retain(|t| (t - t.round()).abs() < 1e-9);
    }
    thin(ticks, max)
}

/// A tick of a log₁₀ time axis whose values are log₁₀ of nanoseconds, in
/// the unit that reads best: 10^4.3 → `20 µs`, 10^6 → `1 ms`.
pub(crate) fn log_ns_label(x: f64) -> String {
    let ns = 10f64.powf(x);
    // a hair above, so 10^6 ns lands on `1 ms`, not `1000 µs`
    let scale = TimeScale::for_max_ns(ns * 1.000_001);
    format!("{} {}", short_number(ns * scale.per_ns), scale.name)
}

/// A tick value in a chosen unit: `20`, `2.5`, `0.05`.
pub(crate) fn short_number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{}", (v * 10.0).round() / 10.0)
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_ticks_are_the_sizes_measured() {
        let sizes = [65536.0, 1048576.0, 65536.0, 16777216.0];
        assert_eq!(log2_ticks(&sizes, 10), vec![16.0, 20.0, 24.0]);
        let many: Vec<f64> = (10..30).map(|k| 2f64.powi(k)).collect();
        let ticks = log2_ticks(&many, 5);
        assert_eq!(ticks.len(), 5);
        assert_eq!((ticks[0], ticks[4]), (10.0, 29.0));
    }

    #[test]
    fn log10_ticks_step_one_two_five() {
        let ticks: Vec<String> = log10_ticks(1.0, 3.0, 20)
            .into_iter()
            .map(|x| short_number(10f64.powf(x)))
            .collect();
        assert_eq!(ticks, ["10", "20", "50", "100", "200", "500", "1000"]);
        let wide = log10_ticks(-1.0, 6.0, 10);
        assert!(wide.len() <= 10);
        assert_eq!(short_number(0.1), "0.1");
        let times: Vec<String> = [2.0, 4.3, 6.0, 9.7].map(log_ns_label).to_vec();
        assert_eq!(times, ["100 ns", "20 µs", "1 ms", "5 s"]);
    }

    #[test]
    fn an_empty_chart_is_an_svg() {
        let svg = svg_chart("empty", |_| Ok(())).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
