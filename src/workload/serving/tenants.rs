//! Multi-tenant serving (IETF 10.3): two or more model instances, each on
//! its own prefill/decode pools, sharing one fabric. A tenant is plain
//! data (its model, pool ratio and, optionally, its own arrival rate);
//! the interference penalty is the draft's formula.

use super::plan::PoolRatio;
use crate::workload::error::WorkloadError;
use crate::workload::kv::KvModel;

/// One model instance of a 10.3 run.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Its label in results: "A", "B", ... in the order given.
    pub name: String,
    /// The model whose KV it moves.
    pub model: KvModel,
    /// Its own prefill and decode pools.
    pub ratio: PoolRatio,
    /// Its arrival rate (requests/s); None: the run's `--arrival`.
    pub rate: Option<f64>,
}

/// Most tenants one run takes (each is a set of worker threads).
pub const MAX_TENANTS: usize = 4;

impl Tenant {
    /// Parses `MODEL,XPYD[,rate=R]` (e.g. `llama-3.1-8b,1P1D,rate=5`), the
    /// `index`-th `--tenant` flag.
    pub fn parse(text: &str, index: usize) -> Result<Tenant, WorkloadError> {
        let bad = |why: String| {
            WorkloadError::Serving(format!(
                "--tenant '{text}': {why}; write MODEL,XPYD[,rate=R], e.g. llama-3.1-8b,1P1D,rate=5"
            ))
        };
        let mut parts = text.split(',').map(str::trim);
        let model = parts
            .next()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| bad("no model".into()))?;
        let model: KvModel = model.parse().map_err(|e| bad(format!("{e}")))?;
        let ratio = parts
            .next()
            .ok_or_else(|| bad("no xPyD pool ratio".into()))
            .and_then(|r| PoolRatio::parse(r).map_err(|e| bad(e.to_string())))?;
        let mut rate = None;
        for part in parts {
            match part.split_once('=') {
                Some(("rate", value)) => {
                    let r: f64 = value
                        .parse()
                        .map_err(|_| bad(format!("rate '{value}' is not a number")))?;
                    if !(r.is_finite() && r > 0.0) {
                        return Err(bad(format!("rate {value} must be above 0")));
                    }
                    rate = Some(r);
                }
                _ => return Err(bad(format!("unknown part '{part}'"))),
            }
        }
        Ok(Tenant {
            name: tenant_name(index),
            model,
            ratio,
            rate,
        })
    }

    /// Parses every `--tenant` flag: two to [`MAX_TENANTS`].
    pub fn parse_all(texts: &[String]) -> Result<Vec<Tenant>, WorkloadError> {
        if texts.len() < 2 || texts.len() > MAX_TENANTS {
            return Err(WorkloadError::Serving(format!(
                "10.3 needs two to {MAX_TENANTS} --tenant flags (model instances sharing the fabric); \
                 {} given",
                texts.len()
            )));
        }
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Tenant::parse(t, i))
            .collect()
    }
}

/// "A", "B", ... for tenant `index`.
pub fn tenant_name(index: usize) -> String {
    char::from(b'A' + (index % 26) as u8).to_string()
}

/// The draft's interference penalty, in percent: (multi-tenant −
/// single-tenant) / single-tenant × 100. None when the single-tenant value
/// is zero or either is not finite.
pub fn interference_penalty_pct(single: f64, multi: f64) -> Option<f64> {
    (single.is_finite() && multi.is_finite() && single > 0.0)
        .then(|| (multi - single) / single * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_parse_with_and_without_a_rate() {
        let t = Tenant::parse("llama-3.1-8b,2P1D,rate=7.5", 1).unwrap();
        assert_eq!(t.name, "B");
        assert_eq!(
            t.ratio,
            PoolRatio {
                prefill: 2,
                decode: 1
            }
        );
        assert_eq!(t.rate, Some(7.5));
        let t = Tenant::parse("llama-3.1-70b, 1P1D", 0).unwrap();
        assert_eq!((t.name.as_str(), t.rate), ("A", None));
    }

    #[test]
    fn bad_tenants_say_how_to_write_them() {
        for (text, want) in [
            ("", "no model"),
            ("llama-3.1-8b", "no xPyD"),
            ("llama-3.1-8b,3P", "xPyD"),
            ("llama-3.1-8b,1P1D,rate=0", "above 0"),
            ("llama-3.1-8b,1P1D,rate=x", "not a number"),
            ("llama-3.1-8b,1P1D,tp=2", "unknown part"),
            ("no-such-model,1P1D", "--tenant"),
        ] {
            let err = Tenant::parse(text, 0).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains("MODEL,XPYD"), "{text}: {err}");
        }
        let one = vec!["llama-3.1-8b,1P1D".to_string()];
        assert!(Tenant::parse_all(&one)
            .unwrap_err()
            .to_string()
            .contains("two to"));
    }

    #[test]
    fn the_penalty_is_the_drafts_formula() {
        assert_eq!(interference_penalty_pct(100.0, 150.0), Some(50.0));
        assert_eq!(interference_penalty_pct(200.0, 150.0), Some(-25.0));
        assert_eq!(interference_penalty_pct(0.0, 150.0), None);
        assert_eq!(interference_penalty_pct(100.0, f64::INFINITY), None);
    }
}
