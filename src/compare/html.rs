//! `compare.html`: the comparisons as one self-contained page (inline CSS
//! and SVG, no script, no URL), as `report.html` is. Per NEW file the
//! verdict table comes first, then its notes, then one chart per matched
//! configuration with BASE's and NEW's per-trial values of every KPI
//! overlaid.

use std::fmt::Write;

use super::chart::config_chart;
use super::render::{cells, footer, HEADER};
use super::verdict::{Comparison, KpiComparison};
use crate::report::html::{esc, inline_svg, CSS};
use crate::report::plot::PlotError;

/// Extra style for verdict cells.
const VERDICT_CSS: &str = "\
td.worse{background:#fde0dc!important;font-weight:bold}
td.better{background:#dcf5dc!important;font-weight:bold}
";

/// The comparisons as one HTML page.
pub fn render_html(comparisons: &[Comparison]) -> Result<String, PlotError> {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>infab compare</title>\n<style>\n{CSS}{VERDICT_CSS}</style>\n</head>\n<body>\n<h1>infab compare</h1>\n"
    );
    for (i, c) in comparisons.iter().enumerate() {
        section(&mut out, i, c)?;
    }
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

fn section(out: &mut String, index: usize, c: &Comparison) -> Result<(), PlotError> {
    let _ = writeln!(
        out,
        "<section id=\"cmp-{index}\">\n<h2><code>{}</code> (BASE) → <code>{}</code> (NEW), test {}</h2>\n<p>Minimum effect {} %, α = {}. A KPI is <em>better</em> or <em>worse</em> only when its test gives p &lt; α and the change of the mean is at least the minimum effect.</p>",
        esc(&c.base),
        esc(&c.new),
        esc(&c.test_id),
        c.min_effect_percent,
        c.alpha
    );
    out.push_str("<table>\n<thead><tr>");
    for h in HEADER {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &c.rows {
        out.push_str("<tr>");
        let class = row.verdict.name().replace(' ', "-");
        for (i, cell) in cells(row).iter().enumerate() {
            if i + 1 == HEADER.len() {
                let _ = write!(out, "<td class=\"{class}\">{}</td>", esc(cell));
            } else {
                let _ = write!(out, "<td>{}</td>", esc(cell));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n<ul>\n");
    for line in footer(c) {
        let _ = writeln!(out, "<li>{}</li>", esc(&line));
    }
    out.push_str("</ul>\n");
    for (j, (config, rows)) in by_config(&c.rows).into_iter().enumerate() {
        let svg = config_chart(config, &rows)?;
        let _ = writeln!(
            out,
            "<figure id=\"cmp-{index}-{j}\">\n<h3>{}</h3>\n{}\n<figcaption>Each trial's value per KPI: BASE (circles, left of the trial number) and NEW (triangles, right), each side's mean dashed. The panel title gives the verdict.</figcaption>\n</figure>",
            esc(config),
            inline_svg(&svg)
        );
    }
    out.push_str("</section>\n");
    Ok(())
}

/// The rows grouped by configuration, in first-seen order.
fn by_config(rows: &[KpiComparison]) -> Vec<(&str, Vec<&KpiComparison>)> {
    let mut groups: Vec<(&str, Vec<&KpiComparison>)> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|(c, _)| *c == row.config) {
            Some((_, list)) => list.push(row),
            None => groups.push((&row.config, vec![row])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{Better, Statistic, Verdict};

    fn row(config: &str, kpi: &str, unit: &'static str, verdict: Verdict) -> KpiComparison {
        KpiComparison {
            config: config.into(),
            kpi: kpi.into(),
            unit,
            better: Better::Higher,
            statistic: Statistic::Mean,
            base_n: 3,
            new_n: 3,
            base_mean: Some(0.1),
            new_mean: Some(0.09),
            delta: Some(-0.01),
            delta_percent: Some(-10.0),
            delta_ci95: Some((-0.012, -0.008)),
            p_value: Some(0.001),
            verdict,
            base_values: vec![0.1, 0.101, 0.099],
            new_values: vec![0.09, 0.091, 0.089],
        }
    }

    #[test]
    fn the_verdict_table_comes_first_then_a_chart_per_configuration() {
        let mut p99 = row(
            "64K × 1 QP",
            "P99 <initiator>",
            "ns",
            Verdict::NoSignificantChange,
        );
        p99.base_values = vec![20_000.0, 21_000.0, 19_000.0];
        p99.new_values = vec![20_500.0, 20_000.0, 19_500.0];
        let c = Comparison {
            base: "a.json".into(),
            new: "b.json".into(),
            test_id: "5.1".into(),
            min_effect_percent: 2.0,
            alpha: 0.05,
            rows: vec![
                row("64K × 1 QP", "throughput", "GB/s", Verdict::Worse),
                p99,
                row("1M × 1 QP", "throughput", "GB/s", Verdict::NotTestable),
            ],
            unmatched: vec!["4M × 1 QP (only in BASE)".into()],
            notes: Vec::new(),
        };
        let html = render_html(&[c]).unwrap();
        let table = html.find("<table>").unwrap();
        let first_svg = html.find("<svg").unwrap();
        assert!(table < first_svg, "the verdicts come before any chart");
        assert_eq!(
            html.matches("<figure").count(),
            2,
            "one chart per configuration"
        );
        assert!(html.contains("<td class=\"worse\">worse</td>"));
        assert!(html.contains("not compared: 4M × 1 QP (only in BASE)"));
        // the KPI name is escaped in the table and in the SVG
        assert!(html.contains("P99 &lt;initiator&gt;"));
        assert!(!html.contains("<initiator>"));
        // both series, in human units on the axes
        assert!(html.contains("BASE") && html.contains("NEW"));
        assert!(html.contains("throughput (MB/s)"), "0.1 GB/s reads in MB/s");
        assert!(html.contains("(µs)"), "20 µs latencies read in µs");
        assert!(!html.contains("http://") && !html.contains("<script"));
    }
}
