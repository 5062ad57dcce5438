//! MoE model shapes: the canonical rows M1–M4 of draft Table 6 (§7.1) and the
//! implementer-defined row M5, with parsing and validation.
//!
//! This module owns only the model parameters (E, k, H_model, P_bytes). The
//! batch size B and the EP group size N belong to a run, not to a model, and
//! are passed to the router and formulas separately.

use std::fmt;
use std::str::FromStr;

use crate::workload::WorkloadError;

/// Bytes per element of the canonical rows: Table 6 states T_dispatch "BF16"
/// and §7.1 defines "P_bytes = precision bytes (BF16=2)".
pub const BF16_BYTES: u32 = 2;

/// Names of the canonical rows of draft Table 6, in table order.
pub const PRESET_NAMES: [&str; 4] = ["M1", "M2", "M3", "M4"];

/// Name given to a user-defined config (draft Table 6 row M5).
pub const CUSTOM_NAME: &str = "M5";

/// One MoE model shape, as the draft's §7.1 parameters.
///
/// `Display` writes every parameter, as §7.1 requires for M5 ("M5 MUST
/// include E, k, H_model, P_bytes, and N in the results table"; N is a run
/// parameter and is reported by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoeConfig {
    /// Table 6 row name ("M1".."M4"), or "M5" for a user-defined shape.
    pub name: String,
    /// E: number of experts in the MoE layer.
    pub experts: u32,
    /// k: experts each token is routed to (top-k).
    pub top_k: u32,
    /// H_model: hidden dimension, elements per token embedding.
    pub hidden: u32,
    /// P_bytes: bytes per element (BF16 = 2, FP8 = 1).
    pub bytes_per_element: u32,
}

impl MoeConfig {
    /// Table 6 row M1: E=8, k=2, H_model=4096, BF16.
    pub fn m1() -> Self {
        Self::preset("M1", 8, 2, 4096)
    }

    /// Table 6 row M2: E=64, k=4, H_model=7168, BF16.
    pub fn m2() -> Self {
        Self::preset("M2", 64, 4, 7168)
    }

    /// Table 6 row M3: E=256, k=2, H_model=7168, BF16.
    pub fn m3() -> Self {
        Self::preset("M3", 256, 2, 7168)
    }

    /// Table 6 row M4: E=256, k=8, H_model=7168, BF16.
    pub fn m4() -> Self {
        Self::preset("M4", 256, 8, 7168)
    }

    /// The canonical rows M1–M4, in table order.
    pub fn presets() -> [Self; 4] {
        [Self::m1(), Self::m2(), Self::m3(), Self::m4()]
    }

    /// A user-defined shape (row M5), validated.
    pub fn custom(
        experts: u32,
        top_k: u32,
        hidden: u32,
        bytes_per_element: u32,
    ) -> Result<Self, WorkloadError> {
        let config = Self {
            name: CUSTOM_NAME.to_string(),
            experts,
            top_k,
            hidden,
            bytes_per_element,
        };
        config.validate()?;
        Ok(config)
    }

    /// Bytes of one token embedding, `H_model · P_bytes`: the unit every
    /// dispatch payload is made of.
    pub fn token_bytes(&self) -> u64 {
        u64::from(self.hidden) * u64::from(self.bytes_per_element)
    }

    /// Checks the shape: no zero sizes, `k <= E`, `P_bytes` in 1..=8.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        let zero = |field| WorkloadError::ZeroSize {
            config: self.name.clone(),
            field,
        };
        if self.experts == 0 {
            return Err(zero("E (experts)"));
        }
        if self.top_k == 0 {
            return Err(zero("k (top-k)"));
        }
        if self.hidden == 0 {
            return Err(zero("H (hidden)"));
        }
        if self.bytes_per_element == 0 {
            return Err(zero("P (bytes per element)"));
        }
        if self.top_k > self.experts {
            return Err(WorkloadError::TopKExceedsExperts {
                config: self.name.clone(),
                top_k: self.top_k,
                experts: self.experts,
            });
        }
        if self.bytes_per_element > 8 {
            return Err(WorkloadError::BadPrecision {
                config: self.name.clone(),
                bytes_per_element: self.bytes_per_element,
            });
        }
        Ok(())
    }

    fn preset(name: &str, experts: u32, top_k: u32, hidden: u32) -> Self {
        Self {
            name: name.to_string(),
            experts,
            top_k,
            hidden,
            bytes_per_element: BF16_BYTES,
        }
    }
}

impl fmt::Display for MoeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (E={},k={},H={},P={})",
            self.name, self.experts, self.top_k, self.hidden, self.bytes_per_element
        )
    }
}

/// Parses a Table 6 row name or the custom form.
///
/// - `M1`, `M2`, `M3`, `M4` (any case): the canonical rows, BF16.
/// - `E=<experts>,k=<top-k>,H=<hidden>[,P=<bytes per element>]`: a
///   user-defined row named M5. Keys are case-insensitive, items may come in
///   any order and may be surrounded by spaces; `P` defaults to 2 (BF16, the
///   draft's precision for Table 6). Example: `E=64,k=4,H=7168,P=1`.
impl FromStr for MoeConfig {
    type Err = WorkloadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if let Some(preset) = Self::presets()
            .into_iter()
            .find(|p| p.name.eq_ignore_ascii_case(text))
        {
            return Ok(preset);
        }
        if !text.contains('=') {
            return Err(WorkloadError::UnknownConfig(text.to_string()));
        }
        parse_custom(text)
    }
}

fn parse_custom(text: &str) -> Result<MoeConfig, WorkloadError> {
    let mut experts = None;
    let mut top_k = None;
    let mut hidden = None;
    let mut bytes_per_element = None;
    for item in text.split(',') {
        let syntax = |reason: &str| WorkloadError::ConfigSyntax {
            item: item.trim().to_string(),
            reason: reason.to_string(),
        };
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| syntax("expected key=value"))?;
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "e" => &mut experts,
            "k" => &mut top_k,
            "h" => &mut hidden,
            "p" => &mut bytes_per_element,
            _ => return Err(syntax("unknown key; the keys are E, k, H and P")),
        };
        if slot.is_some() {
            return Err(syntax("key given twice"));
        }
        let number: u32 = value
            .trim()
            .parse()
            .map_err(|_| syntax("value is not a whole number"))?;
        *slot = Some(number);
    }
    let missing = |key: &str| WorkloadError::ConfigSyntax {
        item: text.to_string(),
        reason: format!("{key} is missing"),
    };
    MoeConfig::custom(
        experts.ok_or_else(|| missing("E"))?,
        top_k.ok_or_else(|| missing("k"))?,
        hidden.ok_or_else(|| missing("H"))?,
        bytes_per_element.unwrap_or(BF16_BYTES),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_table_6() {
        let shapes: Vec<_> = MoeConfig::presets()
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.experts,
                    c.top_k,
                    c.hidden,
                    c.bytes_per_element,
                )
            })
            .collect();
        assert_eq!(
            shapes,
            vec![
                ("M1".to_string(), 8, 2, 4096, 2),
                ("M2".to_string(), 64, 4, 7168, 2),
                ("M3".to_string(), 256, 2, 7168, 2),
                ("M4".to_string(), 256, 8, 7168, 2),
            ]
        );
        for preset in MoeConfig::presets() {
            preset.validate().unwrap();
        }
    }

    #[test]
    fn parses_names_in_any_case() {
        assert_eq!("m3".parse::<MoeConfig>().unwrap(), MoeConfig::m3());
        assert_eq!(" M4 ".parse::<MoeConfig>().unwrap(), MoeConfig::m4());
    }

    #[test]
    fn parses_custom_form() {
        let c: MoeConfig = "E=64,k=4,H=7168,P=1".parse().unwrap();
        assert_eq!(c, MoeConfig::custom(64, 4, 7168, 1).unwrap());
        assert_eq!(c.name, "M5");
        let d: MoeConfig = " h=1024 , K=1, e=16 ".parse().unwrap();
        assert_eq!(
            (d.experts, d.top_k, d.hidden, d.bytes_per_element),
            (16, 1, 1024, 2)
        );
        assert_eq!(d.to_string(), "M5 (E=16,k=1,H=1024,P=2)");
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let err = "M9".parse::<MoeConfig>().unwrap_err();
        assert_eq!(err, WorkloadError::UnknownConfig("M9".into()));
        let text = err.to_string();
        assert!(
            text.contains("M9") && text.contains("M1, M2, M3, M4"),
            "{text}"
        );
    }

    #[test]
    fn rejects_bad_custom_forms() {
        for bad in [
            "E=8,k=2",
            "E=8,k=2,H=64,X=1",
            "E=8,k=2,H=64,E=9",
            "E=8,k=two,H=64",
            "E=8,k=2,H",
        ] {
            let err = bad.parse::<MoeConfig>().unwrap_err();
            assert!(
                matches!(err, WorkloadError::ConfigSyntax { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn rejects_k_above_e_and_zero_sizes() {
        let err = "E=4,k=5,H=64".parse::<MoeConfig>().unwrap_err();
        assert!(matches!(
            err,
            WorkloadError::TopKExceedsExperts {
                top_k: 5,
                experts: 4,
                ..
            }
        ));
        assert!(err.to_string().contains("k <= 4"));
        for bad in [
            "E=4,k=0,H=64",
            "E=0,k=1,H=64",
            "E=4,k=1,H=0",
            "E=4,k=1,H=64,P=0",
        ] {
            let err = bad.parse::<MoeConfig>().unwrap_err();
            assert!(
                matches!(err, WorkloadError::ZeroSize { .. }),
                "{bad}: {err}"
            );
        }
        assert!(matches!(
            MoeConfig::custom(4, 1, 64, 16),
            Err(WorkloadError::BadPrecision {
                bytes_per_element: 16,
                ..
            })
        ));
    }
}
