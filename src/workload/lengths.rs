//! Prompt and output length distributions (draft §3.4.2: uniform, Zipf,
//! trace replay; plus fixed and log-normal), drawn seeded so every host
//! and every rerun sees the same request mix.
//!
//! - `fixed:N`: every request N tokens.
//! - `uniform:A..B`: integers A..=B, equally likely.
//! - `zipf:alpha=S,A..B`: the length A + r − 1 for rank r = 1..=(B − A + 1)
//!   with P(r) ∝ r^−S (short lengths most common), drawn by inverting the
//!   cumulative weights.
//! - `lognormal:mean=M,sigma=S`: exp(μ + S·Z) with μ = ln M − S²/2, so the
//!   distribution's mean is M tokens; rounded, at least 1.
//! - `trace[:FILE]`: the `input_length` (prompts) or `output_length`
//!   (outputs) of each line of a Mooncake-format JSONL trace, in timestamp
//!   order, cycled. Without FILE the `--arrival trace:FILE` file is used.

use super::arrivals::normal;
use super::WorkloadError;

/// Which field of a trace line a length comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceField {
    /// `input_length`: prompt tokens.
    Input,
    /// `output_length`: generated tokens.
    Output,
}

impl TraceField {
    fn key(self) -> &'static str {
        match self {
            TraceField::Input => "input_length",
            TraceField::Output => "output_length",
        }
    }
}

/// A distribution of token counts.
#[derive(Debug, Clone, PartialEq)]
pub enum LengthDist {
    /// Always `n` tokens.
    Fixed(u64),
    /// Uniform integers in `lo..=hi`.
    Uniform {
        /// Smallest length.
        lo: u64,
        /// Largest length.
        hi: u64,
    },
    /// Zipf over the ranks of `lo..=hi` with exponent `alpha`.
    Zipf {
        /// Exponent S of P(r) ∝ r^−S.
        alpha: f64,
        /// Smallest (most likely) length.
        lo: u64,
        /// Largest length.
        hi: u64,
    },
    /// Log-normal with distribution mean `mean` tokens and log-space
    /// standard deviation `sigma`.
    LogNormal {
        /// Mean of the distribution, tokens.
        mean: f64,
        /// Standard deviation of ln(length).
        sigma: f64,
    },
    /// Lengths replayed from a trace, cycled.
    Trace {
        /// Where they came from.
        file: String,
        /// The lengths in timestamp order.
        lengths: Vec<u64>,
    },
}

/// Zipf tables larger than this many ranks are refused (the CDF is held in
/// memory).
const ZIPF_MAX_RANKS: u64 = 4_000_000;

impl LengthDist {
    /// Parses one of the forms in the module docs. `flag` names the option
    /// in errors; `trace_file` is the `--arrival trace:FILE` file (for a bare
    /// `trace`); `field` says which trace column to read.
    pub fn parse(
        text: &str,
        flag: &str,
        trace_file: Option<&str>,
        field: TraceField,
    ) -> Result<LengthDist, WorkloadError> {
        let bad = |why: String| WorkloadError::Lengths(format!("{flag} '{text}': {why}"));
        let (kind, rest) = text.split_once(':').unwrap_or((text, ""));
        let count = |s: &str| -> Result<u64, WorkloadError> {
            s.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(format!("'{s}' is not a token count of at least 1")))
        };
        let range = |s: &str| -> Result<(u64, u64), WorkloadError> {
            let (a, b) = s
                .split_once("..")
                .ok_or_else(|| bad(format!("'{s}' is not a range A..B")))?;
            let (a, b) = (count(a)?, count(b)?);
            if a > b {
                return Err(bad(format!("the range {a}..{b} is empty")));
            }
            Ok((a, b))
        };
        let positive = |key: &str, s: &str| -> Result<f64, WorkloadError> {
            s.trim()
                .strip_prefix(key)
                .and_then(|v| v.strip_prefix('='))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| bad(format!("'{s}' is not {key}=X with X > 0")))
        };
        match kind.trim() {
            "fixed" => Ok(LengthDist::Fixed(count(rest)?)),
            "uniform" => {
                let (lo, hi) = range(rest)?;
                Ok(LengthDist::Uniform { lo, hi })
            }
            "zipf" => {
                let (a, r) = rest
                    .split_once(',')
                    .ok_or_else(|| bad("zipf needs alpha=S,A..B, e.g. zipf:alpha=1.0,128..4096".into()))?;
                let alpha = positive("alpha", a)?;
                let (lo, hi) = range(r)?;
                if hi - lo + 1 > ZIPF_MAX_RANKS {
                    return Err(bad(format!(
                        "the range has more than {ZIPF_MAX_RANKS} lengths; narrow it"
                    )));
                }
                Ok(LengthDist::Zipf { alpha, lo, hi })
            }
            "lognormal" => {
                let (m, s) = rest.split_once(',').ok_or_else(|| {
                    bad("lognormal needs mean=M,sigma=S, e.g. lognormal:mean=1024,sigma=0.8".into())
                })?;
                Ok(LengthDist::LogNormal {
                    mean: positive("mean", m)?,
                    sigma: positive("sigma", s)?,
                })
            }
            "trace" => {
                let file = if rest.is_empty() { trace_file } else { Some(rest) };
                let file = file.ok_or_else(|| {
                    bad("a bare 'trace' reads the --arrival trace:FILE file; give one, or write trace:FILE".into())
                })?;
                let body = std::fs::read_to_string(file)
                    .map_err(|e| bad(format!("cannot read the trace {file}: {e}")))?;
                let lengths = trace_lengths(&body, field).map_err(|e| bad(format!("{file}: {e}")))?;
                Ok(LengthDist::Trace {
                    file: file.to_string(),
                    lengths,
                })
            }
            "" => Err(bad("empty".into())),
            _ => match text.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(LengthDist::Fixed(n)),
                _ => Err(bad(
                    "use fixed:N, uniform:A..B, zipf:alpha=S,A..B, lognormal:mean=M,sigma=S or trace[:FILE]".into(),
                )),
            },
        }
    }

    /// For the results: the form it was given in (a trace by file and size).
    pub fn describe(&self) -> String {
        match self {
            LengthDist::Fixed(n) => format!("fixed:{n}"),
            LengthDist::Uniform { lo, hi } => format!("uniform:{lo}..{hi}"),
            LengthDist::Zipf { alpha, lo, hi } => format!("zipf:alpha={alpha},{lo}..{hi}"),
            LengthDist::LogNormal { mean, sigma } => format!("lognormal:mean={mean},sigma={sigma}"),
            LengthDist::Trace { file, lengths } => {
                format!("trace:{file} ({} lines)", lengths.len())
            }
        }
    }

    /// The longest length a draw can give (`None`: unbounded, log-normal).
    pub fn max(&self) -> Option<u64> {
        match self {
            LengthDist::Fixed(n) => Some(*n),
            LengthDist::Uniform { hi, .. } | LengthDist::Zipf { hi, .. } => Some(*hi),
            LengthDist::LogNormal { .. } => None,
            LengthDist::Trace { lengths, .. } => lengths.iter().copied().max(),
        }
    }

    /// `n` lengths, seeded. Every draw is at least 1 and, when `cap` is
    /// given, at most `cap` (a log-normal tail is clipped there; the caller
    /// records the cap).
    pub fn draw(&self, n: usize, seed: u64, cap: Option<u64>) -> Vec<u64> {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x1e_4e47_4853);
        let clip = |v: u64| v.max(1).min(cap.unwrap_or(u64::MAX));
        match self {
            LengthDist::Fixed(v) => vec![clip(*v); n],
            LengthDist::Uniform { lo, hi } => (0..n).map(|_| clip(rng.u64(*lo..=*hi))).collect(),
            LengthDist::Zipf { alpha, lo, hi } => {
                let cdf = zipf_cdf(*alpha, hi - lo + 1);
                (0..n)
                    .map(|_| {
                        let u = rng.f64() * cdf[cdf.len() - 1];
                        let rank = cdf.partition_point(|c| *c <= u) as u64;
                        clip(lo + rank.min(hi - lo))
                    })
                    .collect()
            }
            LengthDist::LogNormal { mean, sigma } => {
                let mu = mean.ln() - sigma * sigma / 2.0;
                (0..n)
                    .map(|_| clip((mu + sigma * normal(&mut rng)).exp().round() as u64))
                    .collect()
            }
            LengthDist::Trace { lengths, .. } => {
                (0..n).map(|i| clip(lengths[i % lengths.len()])).collect()
            }
        }
    }
}

/// Cumulative (unnormalised) Zipf weights of ranks 1..=ranks.
fn zipf_cdf(alpha: f64, ranks: u64) -> Vec<f64> {
    let mut total = 0.0;
    (1..=ranks)
        .map(|r| {
            total += (r as f64).powf(-alpha);
            total
        })
        .collect()
}

/// The `field` of every line of a Mooncake-format JSONL trace, in
/// timestamp order (a line without a timestamp keeps its file order).
pub fn trace_lengths(text: &str, field: TraceField) -> Result<Vec<u64>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON ({e})", i + 1))?;
        let len = value[field.key()]
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("line {}: no \"{}\" of at least 1", i + 1, field.key()))?;
        let t = value["timestamp"].as_f64().unwrap_or(rows.len() as f64);
        rows.push((t, len));
    }
    if rows.is_empty() {
        return Err("the trace has no lines".into());
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(rows.into_iter().map(|(_, len)| len).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LengthDist, WorkloadError> {
        LengthDist::parse(text, "--prompt-dist", None, TraceField::Input)
    }

    #[test]
    fn parses_every_form_and_refuses_the_rest() {
        assert_eq!(parse("fixed:512").unwrap(), LengthDist::Fixed(512));
        assert_eq!(parse("512").unwrap(), LengthDist::Fixed(512));
        assert_eq!(
            parse("uniform:128..4096").unwrap(),
            LengthDist::Uniform { lo: 128, hi: 4096 }
        );
        assert_eq!(
            parse("zipf:alpha=1.2,16..64").unwrap(),
            LengthDist::Zipf {
                alpha: 1.2,
                lo: 16,
                hi: 64
            }
        );
        assert_eq!(
            parse("lognormal:mean=1000,sigma=0.5").unwrap(),
            LengthDist::LogNormal {
                mean: 1000.0,
                sigma: 0.5
            }
        );
        for bad in [
            "fixed:0",
            "uniform:9..3",
            "uniform:3",
            "zipf:1.0,1..9",
            "zipf:alpha=0,1..9",
            "lognormal:mean=5",
            "trace",
            "trace:/nonexistent",
            "gauss:4",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(
                err.contains(bad) && err.contains("--prompt-dist"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn uniform_draws_cover_the_range_with_its_mean() {
        let v = LengthDist::Uniform { lo: 10, hi: 20 }.draw(20_000, 3, None);
        assert!(v.iter().all(|x| (10..=20).contains(x)));
        let mean = v.iter().sum::<u64>() as f64 / v.len() as f64;
        assert!((mean - 15.0).abs() < 0.1, "mean {mean}");
        assert_eq!(
            v,
            LengthDist::Uniform { lo: 10, hi: 20 }.draw(20_000, 3, None)
        );
    }

    #[test]
    fn zipf_frequencies_follow_rank_to_the_minus_alpha() {
        let d = LengthDist::Zipf {
            alpha: 1.0,
            lo: 100,
            hi: 109,
        };
        let n = 100_000;
        let v = d.draw(n, 11, None);
        let h: f64 = (1..=10).map(|r| 1.0 / r as f64).sum();
        for rank in 1..=4u64 {
            let seen = v.iter().filter(|x| **x == 99 + rank).count() as f64 / n as f64;
            let want = (1.0 / rank as f64) / h;
            assert!(
                (seen - want).abs() / want < 0.05,
                "rank {rank}: {seen} vs {want}"
            );
        }
    }

    #[test]
    fn lognormal_has_the_asked_mean_and_the_cap_clips() {
        let d = LengthDist::LogNormal {
            mean: 1000.0,
            sigma: 0.5,
        };
        let v = d.draw(50_000, 5, None);
        let mean = v.iter().sum::<u64>() as f64 / v.len() as f64;
        assert!((mean - 1000.0).abs() / 1000.0 < 0.03, "mean {mean}");
        assert!(d.draw(1000, 5, Some(800)).iter().all(|x| *x <= 800));
    }

    #[test]
    fn traces_give_lengths_in_timestamp_order_and_cycle() {
        let text = "{\"timestamp\": 20, \"input_length\": 7, \"output_length\": 3}\n\
                    {\"timestamp\": 10, \"input_length\": 5, \"output_length\": 2}\n";
        assert_eq!(trace_lengths(text, TraceField::Input).unwrap(), [5, 7]);
        assert_eq!(trace_lengths(text, TraceField::Output).unwrap(), [2, 3]);
        let d = LengthDist::Trace {
            file: "t".into(),
            lengths: vec![5, 7],
        };
        assert_eq!(d.draw(5, 0, None), [5, 7, 5, 7, 5]);
        let err = trace_lengths(
            "{\"timestamp\": 1}\n{\"input_length\": 0}",
            TraceField::Input,
        )
        .unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        let synthetic = crate::workload::arrivals::synthetic_trace(50, 10.0, 1);
        let lens = trace_lengths(&synthetic, TraceField::Input).unwrap();
        assert_eq!(lens.len(), 50);
        assert!(lens.iter().all(|l| (128..=4096).contains(l)));
    }
}
