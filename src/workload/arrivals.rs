//! Request arrival processes for open-loop load (draft §3.4.2: Poisson,
//! bursty, trace replay): each request gets an *intended* start time,
//! fixed before the trial runs, and every latency is measured from it, so a
//! slow request delays the ones behind it in the measurement too (no
//! coordinated omission).
//!
//! - `closed`: no arrival process; each request starts when the previous
//!   one finished (the closed loop of 10.1, which hides queueing).
//! - `constant:RATE`: one request every 1/RATE s.
//! - `poisson:RATE`: exponential gaps with mean 1/RATE (inversion:
//!   −ln(1 − U) / RATE).
//! - `bursty:RATE,cv=X`: gamma-distributed gaps with mean 1/RATE and
//!   coefficient of variation X (shape k = 1/X², scale 1/(RATE·k);
//!   Marsaglia–Tsang sampling): X = 1 is Poisson, X > 1 clusters requests
//!   into bursts with long silences between.
//! - `trace:FILE`: the `timestamp` (ms) of each line of a JSONL trace in the
//!   format of Mooncake's published traces (`{"timestamp": 0,
//!   "input_length": 512, "output_length": 64, "hash_ids": [...]}`), taken
//!   relative to the first line and cycled (shifted by the trace's span)
//!   when a trial has more requests than the trace has lines.
//!
//! RATE is in requests per second. Every process is seeded: the same seed
//! gives the same offsets on every host.

use std::path::Path;

use super::WorkloadError;

/// How requests arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// Back to back: the next request starts when the previous one ended.
    Closed,
    /// Evenly spaced at `rate` requests/s.
    Constant {
        /// Requests per second.
        rate: f64,
    },
    /// A Poisson process of `rate` requests/s.
    Poisson {
        /// Requests per second.
        rate: f64,
    },
    /// Gamma-distributed gaps: mean 1/`rate`, coefficient of variation `cv`.
    Bursty {
        /// Requests per second.
        rate: f64,
        /// Coefficient of variation of the gaps (1 = Poisson).
        cv: f64,
    },
    /// Replayed arrival offsets, ns from the first request.
    Trace {
        /// Where they came from (for the results).
        file: String,
        /// Offsets, ascending, the first 0.
        offsets_ns: Vec<u64>,
    },
}

impl Arrival {
    /// Parses `closed`, `constant:RATE`, `poisson:RATE`,
    /// `bursty:RATE,cv=X` or `trace:FILE` (reading the file).
    pub fn parse(text: &str) -> Result<Arrival, WorkloadError> {
        let bad = |why: String| WorkloadError::Arrival(format!("--arrival '{text}': {why}"));
        let (kind, rest) = text.split_once(':').unwrap_or((text, ""));
        let rate = |s: &str| -> Result<f64, WorkloadError> {
            let r: f64 = s
                .trim()
                .parse()
                .map_err(|_| bad(format!("'{s}' is not a rate in requests/s")))?;
            if r.is_finite() && r > 0.0 {
                Ok(r)
            } else {
                Err(bad("the rate must be above 0 requests/s".into()))
            }
        };
        match kind.trim() {
            "closed" if rest.is_empty() => Ok(Arrival::Closed),
            "constant" => Ok(Arrival::Constant { rate: rate(rest)? }),
            "poisson" => Ok(Arrival::Poisson { rate: rate(rest)? }),
            "bursty" => {
                let (r, cv) = rest
                    .split_once(',')
                    .ok_or_else(|| bad("bursty needs RATE,cv=X, e.g. bursty:100,cv=4".into()))?;
                let cv = cv
                    .trim()
                    .strip_prefix("cv=")
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .ok_or_else(|| bad(format!("'{cv}' is not cv=X with X > 0")))?;
                Ok(Arrival::Bursty { rate: rate(r)?, cv })
            }
            "trace" if !rest.is_empty() => {
                let text = std::fs::read_to_string(rest).map_err(|e| {
                    bad(format!("cannot read the trace {rest}: {e}"))
                })?;
                let offsets_ns = trace_offsets(&text).map_err(|e| bad(format!("{rest}: {e}")))?;
                Ok(Arrival::Trace {
                    file: Path::new(rest).display().to_string(),
                    offsets_ns,
                })
            }
            _ => Err(bad(
                "use closed, constant:RATE, poisson:RATE, bursty:RATE,cv=X or trace:FILE (RATE in requests/s)"
                    .into(),
            )),
        }
    }

    /// Whether requests have intended start times (open loop).
    pub fn is_open(&self) -> bool {
        !matches!(self, Arrival::Closed)
    }

    /// The mean rate, requests/s (`None` for closed loop; a trace's from
    /// its span).
    pub fn rate(&self) -> Option<f64> {
        match self {
            Arrival::Closed => None,
            Arrival::Constant { rate }
            | Arrival::Poisson { rate }
            | Arrival::Bursty { rate, .. } => Some(*rate),
            Arrival::Trace { offsets_ns, .. } => {
                let span = *offsets_ns.last()? as f64 / 1e9;
                (span > 0.0).then(|| (offsets_ns.len() - 1) as f64 / span)
            }
        }
    }

    /// For the results and the report: "poisson:100", "trace:FILE (N lines)".
    pub fn describe(&self) -> String {
        match self {
            Arrival::Closed => "closed".into(),
            Arrival::Constant { rate } => format!("constant:{rate}"),
            Arrival::Poisson { rate } => format!("poisson:{rate}"),
            Arrival::Bursty { rate, cv } => format!("bursty:{rate},cv={cv}"),
            Arrival::Trace { file, offsets_ns } => {
                format!("trace:{file} ({} arrivals)", offsets_ns.len())
            }
        }
    }

    /// The intended start of each of `n` requests, ns after the trial's
    /// start (the first at 0); empty for closed loop.
    pub fn offsets_ns(&self, n: u32, seed: u64) -> Vec<u64> {
        let n = n as usize;
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x0a11_7a15);
        let mut t = 0.0f64; // seconds
        let mut out = Vec::with_capacity(n);
        let mut gaps = |gap: &mut dyn FnMut(&mut fastrand::Rng) -> f64| {
            for i in 0..n {
                if i > 0 {
                    t += gap(&mut rng);
                }
                out.push((t * 1e9).round() as u64);
            }
        };
        match self {
            Arrival::Closed => return Vec::new(),
            Arrival::Constant { rate } => gaps(&mut |_| 1.0 / rate),
            Arrival::Poisson { rate } => gaps(&mut |rng| exponential(rng, *rate)),
            Arrival::Bursty { rate, cv } => {
                let shape = 1.0 / (cv * cv);
                let scale = 1.0 / (rate * shape);
                gaps(&mut |rng| gamma(rng, shape) * scale)
            }
            Arrival::Trace { offsets_ns, .. } => {
                let span = offsets_ns.last().copied().unwrap_or(0);
                // cycles keep their spacing: the next cycle starts one mean
                // gap after the last arrival
                let period = span + span / (offsets_ns.len().max(2) as u64 - 1).max(1);
                return (0..n)
                    .map(|i| {
                        let cycle = (i / offsets_ns.len().max(1)) as u64;
                        offsets_ns[i % offsets_ns.len().max(1)] + cycle * period.max(1)
                    })
                    .collect();
            }
        }
        out
    }
}

/// An exponential variate of rate `rate` by inversion.
fn exponential(rng: &mut fastrand::Rng, rate: f64) -> f64 {
    -(1.0 - rng.f64()).ln() / rate
}

/// A standard normal variate (Box–Muller).
pub(crate) fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64(); // (0, 1]
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Gamma(shape, 1) variate (Marsaglia–Tsang; shape < 1 by the
/// U^(1/shape) boost).
fn gamma(rng: &mut fastrand::Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.f64();
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - rng.f64();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// The arrival offsets of a Mooncake-format JSONL trace: `timestamp` in ms
/// per line, made relative to the first and sorted.
fn trace_offsets(text: &str) -> Result<Vec<u64>, String> {
    let mut ms = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON ({e})", i + 1))?;
        let t = value["timestamp"]
            .as_f64()
            .filter(|t| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| format!("line {}: no numeric \"timestamp\" (ms)", i + 1))?;
        ms.push(t);
    }
    if ms.is_empty() {
        return Err("the trace has no lines".into());
    }
    ms.sort_by(f64::total_cmp);
    let first = ms[0];
    Ok(ms
        .iter()
        .map(|t| ((t - first) * 1e6).round() as u64)
        .collect())
}

/// A small trace in Mooncake's JSONL format, generated (seeded) for tests
/// and demos: `n` requests, Poisson arrivals at `rate`/s, input lengths
/// uniform in 128..=4096 tokens, outputs in 16..=512.
pub fn synthetic_trace(n: usize, rate: f64, seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut t_ms = 0.0;
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            t_ms += exponential(&mut rng, rate) * 1e3;
        }
        let input = rng.u32(128..=4096);
        let output = rng.u32(16..=512);
        let blocks = input.div_ceil(512);
        let ids: Vec<String> = (0..blocks)
            .map(|b| (i as u32 * 16 + b).to_string())
            .collect();
        out.push_str(&format!(
            "{{\"timestamp\": {}, \"input_length\": {input}, \"output_length\": {output}, \"hash_ids\": [{}]}}\n",
            t_ms.round() as u64,
            ids.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps_s(offsets: &[u64]) -> Vec<f64> {
        offsets
            .windows(2)
            .map(|w| (w[1] - w[0]) as f64 / 1e9)
            .collect()
    }

    fn mean_cv(v: &[f64]) -> (f64, f64) {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64;
        (m, var.sqrt() / m)
    }

    #[test]
    fn parses_every_form_and_refuses_the_rest() {
        assert_eq!(Arrival::parse("closed").unwrap(), Arrival::Closed);
        assert_eq!(
            Arrival::parse("poisson:100").unwrap(),
            Arrival::Poisson { rate: 100.0 }
        );
        assert_eq!(
            Arrival::parse("bursty:50,cv=4").unwrap(),
            Arrival::Bursty {
                rate: 50.0,
                cv: 4.0
            }
        );
        assert_eq!(
            Arrival::parse("constant:2.5").unwrap(),
            Arrival::Constant { rate: 2.5 }
        );
        for bad in [
            "poisson",
            "poisson:0",
            "poisson:-3",
            "bursty:5",
            "bursty:5,cv=0",
            "uniform:3",
            "trace:/nonexistent",
        ] {
            let err = Arrival::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn constant_is_evenly_spaced_and_closed_has_no_offsets() {
        let o = Arrival::Constant { rate: 4.0 }.offsets_ns(5, 1);
        assert_eq!(o, [0, 250_000_000, 500_000_000, 750_000_000, 1_000_000_000]);
        assert!(Arrival::Closed.offsets_ns(5, 1).is_empty());
    }

    #[test]
    fn poisson_gaps_have_the_rate_and_cv_one() {
        let o = Arrival::Poisson { rate: 1000.0 }.offsets_ns(20_000, 7);
        let (m, cv) = mean_cv(&gaps_s(&o));
        assert!((m - 1e-3).abs() / 1e-3 < 0.03, "mean {m}");
        assert!((cv - 1.0).abs() < 0.05, "cv {cv}");
        assert_eq!(
            o,
            Arrival::Poisson { rate: 1000.0 }.offsets_ns(20_000, 7),
            "seeded"
        );
        assert_ne!(o, Arrival::Poisson { rate: 1000.0 }.offsets_ns(20_000, 8));
    }

    #[test]
    fn ten_thousand_poisson_gaps_are_within_three_percent_of_their_mean_and_cv() {
        for (rate, seed) in [(10.0, 1), (500.0, 2), (20_000.0, 3)] {
            let o = Arrival::Poisson { rate }.offsets_ns(10_001, seed);
            let (m, cv) = mean_cv(&gaps_s(&o));
            assert!((m * rate - 1.0).abs() < 0.03, "rate {rate}: mean gap {m}");
            assert!((cv - 1.0).abs() < 0.03, "rate {rate}: cv {cv}");
        }
    }

    #[test]
    fn bursty_gaps_have_the_rate_and_the_asked_cv() {
        for cv_asked in [0.5, 2.0, 4.0] {
            let a = Arrival::Bursty {
                rate: 100.0,
                cv: cv_asked,
            };
            let (m, cv) = mean_cv(&gaps_s(&a.offsets_ns(50_000, 3)));
            assert!((m - 0.01).abs() / 0.01 < 0.06, "cv {cv_asked}: mean {m}");
            assert!(
                (cv - cv_asked).abs() / cv_asked < 0.1,
                "asked {cv_asked}, got {cv}"
            );
        }
    }

    #[test]
    fn traces_replay_relative_and_cycle() {
        let text = "{\"timestamp\": 1000, \"input_length\": 10}\n{\"timestamp\": 1500}\n\n{\"timestamp\": 1250}\n";
        assert_eq!(trace_offsets(text).unwrap(), [0, 250_000_000, 500_000_000]);
        let a = Arrival::Trace {
            file: "t".into(),
            offsets_ns: vec![0, 250_000_000, 500_000_000],
        };
        // span 500 ms, mean gap 250 ms: the next cycle starts at 750 ms
        assert_eq!(
            a.offsets_ns(5, 0),
            [0, 250_000_000, 500_000_000, 750_000_000, 1_000_000_000]
        );
        assert!((a.rate().unwrap() - 4.0).abs() < 1e-9);
        assert!(trace_offsets("{\"ts\": 1}")
            .unwrap_err()
            .contains("timestamp"));
        assert!(trace_offsets("").is_err());
    }

    #[test]
    fn the_synthetic_trace_reads_back() {
        let text = synthetic_trace(200, 50.0, 1);
        let o = trace_offsets(&text).unwrap();
        assert_eq!(o.len(), 200);
        let (m, _) = mean_cv(&gaps_s(&o));
        assert!((m - 0.02).abs() / 0.02 < 0.2, "mean gap {m}");
        assert!(text
            .lines()
            .all(|l| l.contains("\"input_length\"") && l.contains("hash_ids")));
    }
}
