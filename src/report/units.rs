//! How numbers read in a rendered report: sizes like the CLI takes them
//! (`64K`, `1M`), latencies in microseconds, `mean ± CI95` pairs. Only text
//! for people; the CSV export keeps raw numbers in named units instead.

use crate::stats::TrialInterval;

/// `65536` → `64K`, `1073741824` → `1G`; sizes that are not a whole number
/// of the unit stay in bytes.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// A duration for people: `850 ns`, `12.50 µs`, `2.84 ms`, `1.234 s` (the
/// unit that keeps 3–4 significant digits).
pub(crate) fn human_ns(ns: f64) -> String {
    match ns.abs() {
        a if a < 1e3 => format!("{ns:.0} ns"),
        a if a < 1e6 => format!("{:.2} µs", ns / 1e3),
        a if a < 1e9 => format!("{:.2} ms", ns / 1e6),
        _ => format!("{:.3} s", ns / 1e9),
    }
}

/// Nanoseconds as microseconds with two decimals.
pub(crate) fn micros(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

/// `mean ± half width` scaled by `scale`, or the mean alone with one trial,
/// or `-` when there is nothing.
pub(crate) fn mean_ci(interval: Option<&TrialInterval>, scale: f64, digits: usize) -> String {
    match interval {
        Some(iv) => match iv.ci95_half_width {
            Some(hw) => format!("{:.*} ± {:.*}", digits, iv.mean * scale, digits, hw * scale),
            None => format!("{:.*}", digits, iv.mean * scale),
        },
        None => "-".into(),
    }
}

/// A time interval in nanoseconds for people: `12.50 µs ± 0.40 µs` (the
/// half width in the mean's unit), the mean alone with one trial, `-` when
/// there is nothing.
pub(crate) fn time_ci(interval: Option<&TrialInterval>) -> String {
    let Some(iv) = interval else {
        return "-".into();
    };
    let mean = human_ns(iv.mean);
    match iv.ci95_half_width {
        Some(hw) => {
            let (scale, unit) = match iv.mean.abs() {
                a if a < 1e3 => (1.0, "ns"),
                a if a < 1e6 => (1e-3, "µs"),
                a if a < 1e9 => (1e-6, "ms"),
                _ => (1e-9, "s"),
            };
            format!("{mean} ± {:.2} {unit}", hw * scale)
        }
        None => mean,
    }
}

/// An optional number with `digits` decimals, `-` when absent.
pub(crate) fn optional(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// "1 QP", "8 QPs".
pub(crate) fn qp_count(qps: u32) -> String {
    if qps == 1 {
        "1 QP".into()
    } else {
        format!("{qps} QPs")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn time_intervals_read_in_the_means_unit() {
        let iv = |mean: f64, hw: Option<f64>| TrialInterval {
            n: if hw.is_some() { 3 } else { 1 },
            mean,
            stdev: hw,
            ci95_half_width: hw,
            ci95_low: hw.map(|h| mean - h),
            ci95_high: hw.map(|h| mean + h),
        };
        assert_eq!(time_ci(None), "-");
        assert_eq!(
            time_ci(Some(&iv(12_500.0, Some(400.0)))),
            "12.50 µs ± 0.40 µs"
        );
        assert_eq!(time_ci(Some(&iv(2_840_000.0, None))), "2.84 ms");
    }
    use super::*;
    use crate::stats::across_trials;

    #[test]
    fn numbers_read_like_the_cli_and_the_table() {
        assert_eq!(human_bytes(65536), "64K");
        assert_eq!(human_bytes(1 << 30), "1G");
        assert_eq!(human_bytes(1000), "1000");
        assert_eq!(micros(1500), "1.50");
        assert_eq!(qp_count(1), "1 QP");
        assert_eq!(qp_count(8), "8 QPs");
        assert_eq!(optional(None, 2), "-");
        assert_eq!(mean_ci(across_trials(&[2.0]).as_ref(), 1.0, 1), "2.0");
        // mean 2, s = √2, t(1) = 12.706: half width 12.706 · √2 / √2.
        assert_eq!(
            mean_ci(across_trials(&[1.0, 3.0]).as_ref(), 1.0, 2),
            "2.00 ± 12.71"
        );
    }
}
