//! The routing modes of draft Table 7 (§7.2), plus a skewed hot-expert mode,
//! as a parseable, printable enum.
//!
//! This module owns the names, parameters and their validation. How each mode
//! picks experts for tokens is in [`super::router`].

use std::fmt;
use std::str::FromStr;

use crate::workload::WorkloadError;

/// How tokens are assigned to experts.
///
/// The text form (`FromStr`/`Display`, round-trips) is the one the CLI takes:
/// `top-k`, `expert-choice`, `token-drop:cf=<f>`, `aux-loss`, `zipf:alpha=<a>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RoutingMode {
    /// Standard top-k (Table 7): each token goes to k distinct experts drawn
    /// uniformly at random. "Fixed, uniform AllToAll dispatch volume."
    TopK,
    /// Expert choice (Table 7): each expert takes the same capacity of
    /// `N·B·k/E` tokens, drawn uniformly from all tokens of the group, so
    /// expert loads are exactly equal while tokens get 0..E experts each:
    /// "non-uniform message sizes".
    ExpertChoice,
    /// Top-k with token drop (Table 7): standard top-k, then each expert
    /// keeps at most `ceil(cf · N·B·k/E)` tokens; the rest are dropped and
    /// counted. "Lower peak traffic."
    TokenDrop {
        /// Capacity factor `cf` (> 0); `cf < 1` always drops.
        capacity_factor: f64,
    },
    /// Auxiliary-loss top-k (Table 7): top-k whose training loss balances
    /// experts; modelled as "near-uniform" load by giving each pick two random
    /// candidate experts and keeping the less loaded one (power of two choices).
    AuxLoss,
    /// Skewed hot experts (not in Table 7; the hot-spot case Table 7 warns of):
    /// k distinct experts per token drawn without replacement with weight
    /// `1/(e+1)^alpha`, so expert 0 is the hottest. `alpha = 0` is uniform.
    Zipf {
        /// Zipf exponent (>= 0).
        alpha: f64,
    },
}

impl RoutingMode {
    /// Every mode's short label, for result tables (§7.2: "routing mode
    /// labelled"). Parameters are not included; see `Display` for those.
    pub fn label(&self) -> &'static str {
        match self {
            Self::TopK => "top-k",
            Self::ExpertChoice => "expert-choice",
            Self::TokenDrop { .. } => "token-drop",
            Self::AuxLoss => "aux-loss",
            Self::Zipf { .. } => "zipf",
        }
    }

    /// Checks the parameters: `cf` finite and > 0, `alpha` finite and >= 0.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        match *self {
            Self::TokenDrop { capacity_factor }
                if !(capacity_factor.is_finite() && capacity_factor > 0.0) =>
            {
                Err(WorkloadError::RoutingParam {
                    mode: "token-drop",
                    param: "cf",
                    value: capacity_factor,
                    fix: "use a capacity factor > 0, e.g. cf=1.0 (cf < 1 drops tokens by design)",
                })
            }
            Self::Zipf { alpha } if !(alpha.is_finite() && alpha >= 0.0) => {
                Err(WorkloadError::RoutingParam {
                    mode: "zipf",
                    param: "alpha",
                    value: alpha,
                    fix: "use an exponent >= 0 (0 is uniform, 1.0 is classic Zipf)",
                })
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for RoutingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TokenDrop { capacity_factor } => write!(f, "token-drop:cf={capacity_factor}"),
            Self::Zipf { alpha } => write!(f, "zipf:alpha={alpha}"),
            other => f.write_str(other.label()),
        }
    }
}

/// Parses the text form. Names are case-insensitive; `standard`/`topk`
/// alias `top-k` and `ec` aliases `expert-choice`. Parameterised modes need
/// their parameter: `token-drop:cf=1.25`, `zipf:alpha=1.2`.
impl FromStr for RoutingMode {
    type Err = WorkloadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim().to_ascii_lowercase();
        let unknown = || WorkloadError::UnknownRouting(s.trim().to_string());
        let (name, param) = match text.split_once(':') {
            Some((name, param)) => (name.trim(), Some(param.trim())),
            None => (text.as_str(), None),
        };
        let value_of = |key: &str| -> Result<f64, WorkloadError> {
            let (k, v) = param.and_then(|p| p.split_once('=')).ok_or_else(unknown)?;
            if k.trim() != key {
                return Err(unknown());
            }
            v.trim().parse().map_err(|_| unknown())
        };
        let mode = match (name, param) {
            ("top-k" | "topk" | "standard", None) => Self::TopK,
            ("expert-choice" | "ec", None) => Self::ExpertChoice,
            ("aux-loss", None) => Self::AuxLoss,
            ("token-drop", Some(_)) => Self::TokenDrop {
                capacity_factor: value_of("cf")?,
            },
            ("zipf", Some(_)) => Self::Zipf {
                alpha: value_of("alpha")?,
            },
            _ => return Err(unknown()),
        };
        mode.validate()?;
        Ok(mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for mode in [
            RoutingMode::TopK,
            RoutingMode::ExpertChoice,
            RoutingMode::TokenDrop {
                capacity_factor: 1.25,
            },
            RoutingMode::AuxLoss,
            RoutingMode::Zipf { alpha: 0.0 },
            RoutingMode::Zipf { alpha: 1.2 },
        ] {
            assert_eq!(
                mode.to_string().parse::<RoutingMode>().unwrap(),
                mode,
                "{mode}"
            );
        }
    }

    #[test]
    fn parses_aliases_and_case() {
        assert_eq!(
            "Standard".parse::<RoutingMode>().unwrap(),
            RoutingMode::TopK
        );
        assert_eq!(
            "EC".parse::<RoutingMode>().unwrap(),
            RoutingMode::ExpertChoice
        );
        assert_eq!(
            " Token-Drop: cf = 0.5 ".parse::<RoutingMode>().unwrap(),
            RoutingMode::TokenDrop {
                capacity_factor: 0.5
            }
        );
    }

    #[test]
    fn rejects_unknown_and_bad_params() {
        for bad in [
            "random",
            "token-drop",
            "zipf",
            "zipf:a=1",
            "top-k:cf=1",
            "token-drop:cf=x",
        ] {
            let err = bad.parse::<RoutingMode>().unwrap_err();
            assert!(
                matches!(err, WorkloadError::UnknownRouting(_)),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("expert-choice"));
        }
        for bad in [
            "token-drop:cf=0",
            "token-drop:cf=-1",
            "zipf:alpha=-0.5",
            "zipf:alpha=inf",
        ] {
            let err = bad.parse::<RoutingMode>().unwrap_err();
            assert!(
                matches!(err, WorkloadError::RoutingParam { .. }),
                "{bad}: {err}"
            );
        }
    }
}
