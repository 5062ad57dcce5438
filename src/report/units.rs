//! How numbers read in a rendered report: sizes like the CLI takes them
//! (`64K`, `1M`), times and rates in the unit that keeps 3–4 significant
//! digits (`2.84 ms`, `123.4 MB/s`), `mean ± CI95` pairs, and the scale a
//! chart axis uses. Only text for people; JSON and CSV keep base units (ns,
//! GB/s) in named fields instead.

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

/// A memory amount for people, in binary units with 3–4 significant
/// digits: `512 B`, `1.500 KiB`, `12.34 MiB`, `-2.000 GiB` (memory is
/// counted in pages and MiB, unlike the decimal rates of the network).
pub(crate) fn human_size(bytes: f64) -> String {
    const UNITS: [(&str, f64); 4] = [
        ("TiB", 1_099_511_627_776.0),
        ("GiB", 1_073_741_824.0),
        ("MiB", 1_048_576.0),
        ("KiB", 1024.0),
    ];
    let a = bytes.abs();
    for (unit, size) in UNITS {
        if a >= size * 0.99995 {
            let v = bytes / size;
            return format!("{v:.*} {unit}", sig4_decimals(v));
        }
    }
    format!("{bytes:.0} B")
}

/// [`human_ns`] of an integer count of nanoseconds.
pub(crate) fn time_ns(ns: u64) -> String {
    human_ns(ns as f64)
}

/// An optional duration, `-` when absent.
pub(crate) fn optional_time(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".into(), time_ns)
}

/// The unit a time axis (or a column of times) reads in: the largest of
/// ns, µs, ms, s that keeps `max_ns` at 1 or more, so tick labels stay
/// short.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TimeScale {
    /// "ns", "µs", "ms" or "s".
    pub(crate) name: &'static str,
    /// Multiply nanoseconds by this to get the unit.
    pub(crate) per_ns: f64,
}

impl TimeScale {
    /// `ns` in this unit.
    pub(crate) fn of(&self, ns: u64) -> f64 {
        ns as f64 * self.per_ns
    }

    /// The scale for values up to `max_ns`.
    pub(crate) fn for_max_ns(max_ns: f64) -> Self {
        let (name, per_ns) = match max_ns.abs() {
            a if a < 1e3 => ("ns", 1.0),
            a if a < 1e6 => ("µs", 1e-3),
            a if a < 1e9 => ("ms", 1e-6),
            _ => ("s", 1e-9),
        };
        TimeScale { name, per_ns }
    }
}

/// The SI prefix of a rate axis or cell: the largest that keeps the value
/// at 1 or more (B/s … TB/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RateScale {
    /// "B/s", "kB/s", "MB/s", "GB/s" or "TB/s" (decimal: 1 GB = 10⁹ bytes).
    pub(crate) name: &'static str,
    /// Multiply GB/s by this to get the unit.
    pub(crate) per_gbyte: f64,
}

impl RateScale {
    /// The scale for rates up to `max_gbytes_per_s`.
    pub(crate) fn for_max_gbytes(max_gbytes_per_s: f64) -> Self {
        let (prefix, size) = si_prefix(max_gbytes_per_s * 1e9);
        let name = match prefix {
            "" => "B/s",
            "k" => "kB/s",
            "M" => "MB/s",
            "G" => "GB/s",
            _ => "TB/s",
        };
        // si_prefix scales bytes; a GB/s is 1e9 of them
        RateScale {
            name,
            per_gbyte: 1e9 / size,
        }
    }
}

/// The SI prefix ("", k, M, G, T) that puts `value` in [1, 1000) (after
/// rounding to 4 digits), and its size: divide by it.
fn si_prefix(value: f64) -> (&'static str, f64) {
    const PREFIXES: [(&str, f64); 4] = [("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)];
    let a = value.abs();
    for (prefix, size) in PREFIXES {
        if a >= size * 0.99995 {
            return (prefix, size);
        }
    }
    ("", 1.0)
}

/// The decimals that give `value` 4 significant digits (1.234, 12.34,
/// 123.4, 1234), at most 3.
fn sig4_decimals(value: f64) -> usize {
    match value.abs() {
        a if a == 0.0 || a >= 999.95 => 0,
        a if a >= 99.995 => 1,
        a if a >= 9.9995 => 2,
        _ => 3,
    }
}

/// A prefix and a unit: `MB/s`, `Gb/s`, but `M msg/s` (a prefix glued to a
/// word reads as a new word).
fn prefixed(prefix: &str, unit: &str) -> String {
    if prefix.is_empty() || unit.starts_with(['B', 'b']) {
        format!("{prefix}{unit}")
    } else {
        format!("{prefix} {unit}")
    }
}

/// `value` with an SI prefix and 4 significant digits: `123.4 MB/s`,
/// `1.250 GB/s`, `12.35 M msg/s`.
pub(crate) fn human_si(value: f64, unit: &str) -> String {
    let (prefix, size) = si_prefix(value);
    let v = value / size;
    format!("{v:.*} {}", sig4_decimals(v), prefixed(prefix, unit))
}

/// A byte rate given in GB/s (10⁹ bytes/s) for people: `12.35 GB/s`,
/// `850.2 MB/s`.
pub(crate) fn human_rate(gbytes_per_s: f64) -> String {
    human_si(gbytes_per_s * 1e9, "B/s")
}

/// An optional GB/s rate for people, `-` when absent.
pub(crate) fn optional_rate(gbytes_per_s: Option<f64>) -> String {
    gbytes_per_s.map_or_else(|| "-".into(), human_rate)
}

/// `mean ± half width` of a quantity in `unit` (base: bytes/s for
/// `B/s` after scaling by `to_base`, messages/s, ...), both in the mean's
/// SI prefix, the unit named once: `123.4 ± 2.1 MB/s`; the mean alone with
/// one trial; `-` when there is nothing.
pub(crate) fn si_ci(interval: Option<&TrialInterval>, to_base: f64, unit: &str) -> String {
    let Some(iv) = interval else {
        return "-".into();
    };
    let mean = iv.mean * to_base;
    let (prefix, size) = si_prefix(mean);
    let digits = sig4_decimals(mean / size);
    let unit = prefixed(prefix, unit);
    match iv.ci95_half_width {
        Some(hw) => format!(
            "{:.*} ± {:.*} {unit}",
            digits,
            mean / size,
            digits,
            hw * to_base / size
        ),
        None => format!("{:.*} {unit}", digits, mean / size),
    }
}

/// A GB/s interval for people: `1.234 ± 0.012 GB/s`, `850.2 MB/s`.
pub(crate) fn rate_ci(interval: Option<&TrialInterval>) -> String {
    si_ci(interval, 1e9, "B/s")
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

/// A time interval in nanoseconds for people: `12.50 ± 0.40 µs` (the
/// half width in the mean's unit, named once), the mean alone with one
/// trial, `-` when there is nothing.
pub(crate) fn time_ci(interval: Option<&TrialInterval>) -> String {
    let Some(iv) = interval else {
        return "-".into();
    };
    match iv.ci95_half_width {
        Some(hw) => {
            // the mean's digits as human_ns gives them, the unit once
            let (scale, unit, digits) = match iv.mean.abs() {
                a if a < 1e3 => (1.0, "ns", 0),
                a if a < 1e6 => (1e-3, "µs", 2),
                a if a < 1e9 => (1e-6, "ms", 2),
                _ => (1e-9, "s", 3),
            };
            format!(
                "{:.*} ± {:.*} {unit}",
                digits,
                iv.mean * scale,
                digits,
                hw * scale
            )
        }
        None => human_ns(iv.mean),
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
    fn rates_keep_four_significant_digits() {
        assert_eq!(human_rate(12.345), "12.35 GB/s");
        assert_eq!(human_rate(0.8502), "850.2 MB/s");
        assert_eq!(human_rate(1.25), "1.250 GB/s");
        assert_eq!(human_rate(0.000_012_34), "12.34 kB/s");
        assert_eq!(human_rate(0.0), "0 B/s");
        assert_eq!(human_rate(2500.0), "2.500 TB/s");
        assert_eq!(human_si(1_234_567.0, "msg/s"), "1.235 M msg/s");
        assert_eq!(human_si(999.99, "msg/s"), "1.000 k msg/s");
        let iv = TrialInterval {
            n: 3,
            mean: 0.1234,
            stdev: Some(0.001),
            ci95_half_width: Some(0.0021),
            ci95_low: Some(0.1213),
            ci95_high: Some(0.1255),
        };
        assert_eq!(rate_ci(Some(&iv)), "123.4 ± 2.1 MB/s");
        assert_eq!(rate_ci(None), "-");
    }

    #[test]
    fn memory_reads_in_binary_units() {
        assert_eq!(human_size(512.0), "512 B");
        assert_eq!(human_size(1536.0), "1.500 KiB");
        assert_eq!(human_size(12.34 * 1_048_576.0), "12.34 MiB");
        assert_eq!(human_size(-2.0 * 1_073_741_824.0), "-2.000 GiB");
    }

    #[test]
    fn scales_keep_axis_labels_short() {
        assert_eq!(TimeScale::for_max_ns(850.0).name, "ns");
        assert_eq!(TimeScale::for_max_ns(5e6).name, "ms");
        assert_eq!(TimeScale::for_max_ns(5e5).per_ns, 1e-3);
        assert_eq!(TimeScale::for_max_ns(2e9).name, "s");
        let r = RateScale::for_max_gbytes(0.25);
        assert_eq!((r.name, r.per_gbyte), ("MB/s", 1e3));
        assert_eq!(RateScale::for_max_gbytes(12.0).name, "GB/s");
        assert_eq!(RateScale::for_max_gbytes(12.0).per_gbyte, 1.0);
    }

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
        assert_eq!(time_ci(Some(&iv(12_500.0, Some(400.0)))), "12.50 ± 0.40 µs");
        assert_eq!(time_ci(Some(&iv(2_840_000.0, None))), "2.84 ms");
    }
    use super::*;
    use crate::stats::across_trials;

    #[test]
    fn numbers_read_like_the_cli_and_the_table() {
        assert_eq!(human_bytes(65536), "64K");
        assert_eq!(human_bytes(1 << 30), "1G");
        assert_eq!(human_bytes(1000), "1000");
        assert_eq!(time_ns(1500), "1.50 µs");
        assert_eq!(optional_time(None), "-");
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
