//! `infab compare`'s outputs: a terminal table, Markdown and JSON, with
//! values in the units people read (ns/µs/ms/s, kB/s…GB/s keeping 3–4
//! digits) and the JSON in base units.

use tabled::builder::Builder;
use tabled::settings::Style;

use super::verdict::{Comparison, KpiComparison};

/// A value of `unit` for people: ns become ns/µs/ms/s, GB/s the SI rate
/// that keeps 4 digits (`850.2 MB/s`), the rest 4 digits.
pub fn human(value: f64, unit: &str) -> String {
    match unit {
        "ns" => return crate::report::human_ns(value),
        "GB/s" => return crate::report::human_rate(value),
        _ => {}
    }
    let digits = match value.abs() {
        a if a >= 100.0 => 1,
        a if a >= 1.0 => 3,
        _ => 4,
    };
    if unit.is_empty() {
        format!("{value:.digits$}")
    } else {
        format!("{value:.digits$} {unit}")
    }
}

/// [`human`] with a sign: `+1.20 µs`, `-850.2 MB/s`.
fn signed(value: f64, unit: &str) -> String {
    let text = human(value, unit);
    if value >= 0.0 {
        format!("+{text}")
    } else {
        text
    }
}

pub(crate) fn cells(r: &KpiComparison) -> [String; 8] {
    let opt = |v: Option<f64>| v.map_or("-".into(), |v| human(v, r.unit));
    [
        r.config.clone(),
        r.kpi.clone(),
        format!("{} ({})", opt(r.base_mean), r.base_n),
        format!("{} ({})", opt(r.new_mean), r.new_n),
        match (r.delta, r.delta_percent) {
            (Some(d), Some(p)) => format!("{} ({p:+.1} %)", signed(d, r.unit)),
            (Some(d), None) => human(d, r.unit),
            _ => "-".into(),
        },
        r.delta_ci95.map_or("-".into(), |(lo, hi)| {
            format!("{} .. {}", human(lo, r.unit), human(hi, r.unit))
        }),
        r.p_value.map_or("-".into(), |p| format!("{p:.4}")),
        r.verdict.name().to_string(),
    ]
}

pub(crate) const HEADER: [&str; 8] = [
    "configuration",
    "KPI",
    "BASE mean (trials)",
    "NEW mean (trials)",
    "delta",
    "delta 95 % CI (Welch)",
    "p",
    "verdict",
];

/// The comparison as a terminal table with its notes.
pub fn render_terminal(c: &Comparison) -> String {
    let mut builder = Builder::default();
    builder.push_record(HEADER);
    for row in &c.rows {
        builder.push_record(cells(row));
    }
    let mut out = format!(
        "compare {} (BASE) → {} (NEW), test {}: minimum effect {} %, α = {}\n{}\n",
        c.base,
        c.new,
        c.test_id,
        c.min_effect_percent,
        c.alpha,
        builder.build().with(Style::rounded())
    );
    for line in footer(c) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

pub(crate) fn footer(c: &Comparison) -> Vec<String> {
    let mut out = Vec::new();
    for u in &c.unmatched {
        out.push(format!("not compared: {u}"));
    }
    for n in &c.notes {
        out.push(format!("note: {n}"));
    }
    let worse = c
        .rows
        .iter()
        .filter(|r| r.verdict.name() == "worse")
        .count();
    let better = c
        .rows
        .iter()
        .filter(|r| r.verdict.name() == "better")
        .count();
    out.push(format!(
        "summary: {better} better, {worse} worse, {} unchanged or not testable (p from Welch's t for means, Mann-Whitney U for per-trial percentiles)",
        c.rows.len() - better - worse
    ));
    out
}

/// The comparisons as one Markdown document.
pub fn render_markdown(comparisons: &[Comparison]) -> String {
    let mut out = String::from("# infab compare\n\n");
    for c in comparisons {
        out.push_str(&format!(
            "## {} → {} (test {})\n\nMinimum effect {} %, α = {}. A KPI is *better* or *worse* only when its test gives p < α and the change of the mean is at least the minimum effect.\n\n",
            c.base, c.new, c.test_id, c.min_effect_percent, c.alpha
        ));
        out.push_str(&format!("| {} |\n", HEADER.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(HEADER.len())));
        for row in &c.rows {
            out.push_str(&format!("| {} |\n", cells(row).join(" | ")));
        }
        out.push('\n');
        for line in footer(c) {
            out.push_str(&format!("- {line}\n"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_for_people() {
        assert_eq!(human(850.0, "ns"), "850 ns");
        assert_eq!(human(2_837_446.65, "ns"), "2.84 ms");
        assert_eq!(human(12_500.0, "ns"), "12.50 µs");
        assert_eq!(human(-12_500.0, "ns"), "-12.50 µs");
        assert_eq!(human(1.23456, "GB/s"), "1.235 GB/s");
        assert_eq!(human(0.0812, "GB/s"), "81.20 MB/s");
        assert_eq!(signed(12_500.0, "ns"), "+12.50 µs");
        assert_eq!(signed(-0.0812, "GB/s"), "-81.20 MB/s");
        assert_eq!(human(0.98765, ""), "0.9877");
    }
}
