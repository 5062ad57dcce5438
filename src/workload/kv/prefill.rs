//! The modelled prefill compute time T_prefill (draft §10.1 splits TTFT
//! into T_prefill, T_transfer and T_decode_init).
//!
//! T_prefill is not a fabric quantity: infab runs no model, so it models
//! the time and every report labels it "modelled", with the inputs
//! recorded. Three models:
//!
//! - `rate:<tokens/s>`: T = C / rate.
//! - `flops:TFLOPS=<peak>,MFU=<0..1>[,PARAMS_B=<billions>]`: the dense
//!   forward cost of 2 FLOPs per (active) parameter per token,
//!   T = 2 · params · C / (TFLOPS · 10¹² · MFU). Attention's term that grows
//!   with C² is left out, so long prompts come out optimistic.
//! - `table:<file.csv>`: measured points `prompt_tokens,prefill_ms`,
//!   interpolated linearly, extrapolated linearly beyond the ends from the
//!   two nearest rows, clamped at 0.
//!
//! Layers finish in equal shares of T, which is when the layer-wise
//! transfer of a layer's pages may start. This module reads the table file
//! and does that arithmetic; it never sleeps or reads a clock.

use serde::{Deserialize, Serialize};

use super::{KvError, KvModel};

/// The header line a prefill table file starts with.
pub const TABLE_HEADER: &str = "prompt_tokens,prefill_ms";

/// The modelled prefill compute time (T_prefill is not a fabric quantity;
/// infab models it, and every report labels it "modelled").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrefillModel {
    /// A fixed prefill throughput: `rate:20000`.
    Rate {
        /// Prompt tokens processed per second.
        tokens_per_s: f64,
    },
    /// Dense FLOPs at a model FLOPs utilisation:
    /// `flops:TFLOPS=989,MFU=0.4`; T = 2·params·C / (TFLOPS·1e12·MFU).
    Flops {
        /// Peak dense TFLOPS of the prefill GPU.
        tflops: f64,
        /// Model FLOPs utilisation, in (0, 1].
        mfu: f64,
        /// (Active) parameters, billions.
        params_b: f64,
    },
    /// Measured points from a CSV file: `table:FILE.csv`.
    Table {
        /// The file the rows came from.
        path: String,
        /// (prompt tokens, prefill ms), prompt tokens strictly increasing.
        rows: Vec<(u64, f64)>,
    },
}

impl PrefillModel {
    /// Parses `rate:<tokens/s>`, `flops:TFLOPS=<t>,MFU=<m>[,PARAMS_B=<b>]`
    /// or `table:<file.csv>` (kind and keys in any case). The flops model
    /// takes the parameter count from `PARAMS_B` or else `model.params_b`.
    pub fn parse(text: &str, model: &KvModel) -> Result<PrefillModel, KvError> {
        let text = text.trim();
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| KvError::UnknownPrefill(text.to_string()))?;
        let rest = rest.trim();
        match kind.trim().to_ascii_lowercase().as_str() {
            "rate" => {
                let tokens_per_s = positive(rest).ok_or_else(|| KvError::PrefillParam {
                    kind: "rate",
                    param: "tokens_per_s",
                    value: rest.to_string(),
                    fix: "give a positive prefill throughput in tokens per second, e.g. rate:20000",
                })?;
                Ok(PrefillModel::Rate { tokens_per_s })
            }
            "flops" => parse_flops(rest, model),
            "table" => {
                if rest.is_empty() {
                    return Err(KvError::UnknownPrefill(text.to_string()));
                }
                let rows = read_table(rest)?;
                Ok(PrefillModel::Table {
                    path: rest.to_string(),
                    rows,
                })
            }
            _ => Err(KvError::UnknownPrefill(text.to_string())),
        }
    }

    /// Modelled prefill time of a `tokens`-token prompt, ns.
    pub fn prefill_ns(&self, tokens: u64) -> u64 {
        let c = tokens as f64;
        let seconds = match self {
            PrefillModel::Rate { tokens_per_s } => c / tokens_per_s,
            PrefillModel::Flops {
                tflops,
                mfu,
                params_b,
            } => 2.0 * params_b * 1e9 * c / (tflops * 1e12 * mfu),
            PrefillModel::Table { rows, .. } => table_ms(rows, tokens) / 1e3,
        };
        // `as` saturates: negative or NaN to 0, huge to u64::MAX.
        (seconds * 1e9).round() as u64
    }

    /// When layer `layer` (0-based) of `layers` finishes, ns after prefill
    /// start: layers take equal shares (prefill_ns·(layer+1)/layers). A
    /// layer past the last, or `layers` 0, gives the whole prefill time.
    pub fn layer_done_ns(&self, tokens: u64, layer: u32, layers: u32) -> u64 {
        let total = self.prefill_ns(tokens);
        if layers == 0 {
            return total;
        }
        let done = u128::from(layer.saturating_add(1).min(layers));
        (u128::from(total) * done / u128::from(layers)) as u64
    }

    /// One line for reports, e.g. "rate 20000 tokens/s (modelled)".
    pub fn describe(&self) -> String {
        match self {
            PrefillModel::Rate { tokens_per_s } => {
                format!("rate {tokens_per_s} tokens/s (modelled)")
            }
            PrefillModel::Flops {
                tflops,
                mfu,
                params_b,
            } => format!(
                "flops 2 x {params_b}B params x tokens / ({tflops} TFLOPS x MFU {mfu}), \
                 attention's quadratic term left out (modelled)"
            ),
            PrefillModel::Table { path, rows } => format!(
                "table {path} ({} rows, linear interpolation) (modelled)",
                rows.len()
            ),
        }
    }
}

fn positive(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
}

fn parse_flops(rest: &str, model: &KvModel) -> Result<PrefillModel, KvError> {
    const FORM: &str = "write flops:TFLOPS=<peak dense TFLOPS>,MFU=<0..1>[,PARAMS_B=<billions>], \
                        e.g. flops:TFLOPS=989,MFU=0.4";
    let mut tflops = None;
    let mut mfu = None;
    let mut params_b = None;
    for item in rest.split(',').filter(|i| !i.trim().is_empty()) {
        let (key, value) = item.split_once('=').ok_or_else(|| KvError::PrefillParam {
            kind: "flops",
            param: "item",
            value: item.trim().to_string(),
            fix: FORM,
        })?;
        let value = value.trim();
        let (slot, param, fix) = match key.trim().to_ascii_lowercase().as_str() {
            "tflops" => (
                &mut tflops,
                "TFLOPS",
                "give the GPU's peak dense TFLOPS as a positive number, e.g. TFLOPS=989",
            ),
            "mfu" => (
                &mut mfu,
                "MFU",
                "give the model FLOPs utilisation as a fraction in (0, 1], e.g. MFU=0.4",
            ),
            "params_b" => (
                &mut params_b,
                "PARAMS_B",
                "give the (active) parameters in billions as a positive number, e.g. PARAMS_B=70",
            ),
            _ => {
                return Err(KvError::PrefillParam {
                    kind: "flops",
                    param: "key",
                    value: key.trim().to_string(),
                    fix: "the keys are TFLOPS, MFU and PARAMS_B",
                })
            }
        };
        let number = positive(value)
            .filter(|v| param != "MFU" || *v <= 1.0)
            .ok_or_else(|| KvError::PrefillParam {
                kind: "flops",
                param,
                value: value.to_string(),
                fix,
            })?;
        if slot.replace(number).is_some() {
            return Err(KvError::PrefillParam {
                kind: "flops",
                param,
                value: value.to_string(),
                fix: "give each key once",
            });
        }
    }
    let missing = |param| KvError::PrefillParam {
        kind: "flops",
        param,
        value: "(missing)".to_string(),
        fix: FORM,
    };
    let tflops = tflops.ok_or_else(|| missing("TFLOPS"))?;
    let mfu = mfu.ok_or_else(|| missing("MFU"))?;
    let params_b = params_b
        .or(model.params_b)
        .ok_or_else(|| KvError::PrefillNeedsParams {
            model: model.name.clone(),
        })?;
    Ok(PrefillModel::Flops {
        tflops,
        mfu,
        params_b,
    })
}

/// Reads a `prompt_tokens,prefill_ms` CSV file. Blank lines and lines
/// starting with `#` are skipped; the first other line must be the header.
fn read_table(path: &str) -> Result<Vec<(u64, f64)>, KvError> {
    let text = std::fs::read_to_string(path).map_err(|e| KvError::PrefillTableIo {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    let mut rows: Vec<(u64, f64)> = Vec::new();
    let mut header_seen = false;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| KvError::PrefillTableLine {
            path: path.to_string(),
            line: index + 1,
            reason,
        };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if !header_seen {
            let header = fields.join(",").to_ascii_lowercase();
            if header != TABLE_HEADER {
                return Err(bad(format!(
                    "expected the header {TABLE_HEADER}, found '{line}'"
                )));
            }
            header_seen = true;
            continue;
        }
        if fields.len() != 2 {
            return Err(bad(format!(
                "expected 2 fields, found {} in '{line}'",
                fields.len()
            )));
        }
        let tokens: u64 = fields[0].parse().map_err(|_| {
            bad(format!(
                "prompt_tokens '{}' is not a whole number",
                fields[0]
            ))
        })?;
        let ms: f64 = fields[1]
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                bad(format!(
                    "prefill_ms '{}' is not a non-negative number",
                    fields[1]
                ))
            })?;
        if let Some(&(previous, _)) = rows.last() {
            if tokens <= previous {
                return Err(bad(format!(
                    "prompt_tokens {tokens} does not increase on the previous row's {previous}"
                )));
            }
        }
        rows.push((tokens, ms));
    }
    if rows.is_empty() {
        return Err(KvError::PrefillTableEmpty {
            path: path.to_string(),
        });
    }
    Ok(rows)
}

/// Linear interpolation of the table at `tokens`, ms; beyond the ends the
/// line through the two nearest rows, clamped at 0. A single row is read
/// as a rate: the line through the origin and that row.
fn table_ms(rows: &[(u64, f64)], tokens: u64) -> f64 {
    let c = tokens as f64;
    let (a, b) = match rows {
        [] => return 0.0,
        [(t, ms)] => {
            return if *t == 0 { *ms } else { ms * c / *t as f64 };
        }
        _ => {
            // The first row at or above `tokens`, kept inside 1..len so the
            // segment [i-1, i] exists; past either end this picks the end
            // segment, which extrapolates.
            let i = rows
                .partition_point(|&(t, _)| t < tokens)
                .clamp(1, rows.len() - 1);
            (rows[i - 1], rows[i])
        }
    };
    let (ta, ma) = (a.0 as f64, a.1);
    let (tb, mb) = (b.0 as f64, b.1);
    (ma + (mb - ma) * (c - ta) / (tb - ta)).max(0.0)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn table_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn parse(text: &str) -> Result<PrefillModel, KvError> {
        PrefillModel::parse(text, &KvModel::llama_3_1_70b())
    }

    #[test]
    fn rate_model() {
        let m = parse("rate:20000").unwrap();
        assert_eq!(
            m,
            PrefillModel::Rate {
                tokens_per_s: 20000.0
            }
        );
        assert_eq!(m.prefill_ns(20000), 1_000_000_000);
        assert_eq!(m.prefill_ns(4096), 204_800_000);
        assert_eq!(m.prefill_ns(0), 0);
        assert_eq!(m.describe(), "rate 20000 tokens/s (modelled)");
        assert_eq!(
            PrefillModel::parse(" RATE: 1e3 ", &KvModel::cfg_a())
                .unwrap()
                .prefill_ns(1),
            1_000_000
        );
    }

    #[test]
    fn flops_model() {
        // 2 · 70e9 · 4096 / (989e12 · 0.4) s = 1.449545... s.
        let m = parse("flops:TFLOPS=989,MFU=0.4").unwrap();
        assert_eq!(
            m,
            PrefillModel::Flops {
                tflops: 989.0,
                mfu: 0.4,
                params_b: 70.0
            }
        );
        let expected: f64 = 2.0 * 70e9 * 4096.0 / (989e12 * 0.4) * 1e9;
        assert_eq!(m.prefill_ns(4096), expected.round() as u64);
        assert_eq!(m.prefill_ns(4096), 1_449_544_995);
        assert!(m.describe().contains("(modelled)"));
        // PARAMS_B overrides the model's count and serves models without one.
        let cfg = PrefillModel::parse("flops:tflops=1000,mfu=0.5,params_b=10", &KvModel::cfg_a())
            .unwrap();
        assert_eq!(cfg.prefill_ns(1000), 40_000_000);
    }

    #[test]
    fn flops_without_params_names_the_rate_fix() {
        let err = PrefillModel::parse("flops:TFLOPS=989,MFU=0.4", &KvModel::cfg_b()).unwrap_err();
        assert_eq!(
            err,
            KvError::PrefillNeedsParams {
                model: "CFG-B".into()
            }
        );
        assert!(err.to_string().contains("--prefill rate:"), "{err}");
    }

    #[test]
    fn rejects_bad_prefill_specs() {
        for bad in ["", "rate", "speed:10", "table:"] {
            assert!(
                matches!(parse(bad), Err(KvError::UnknownPrefill(_))),
                "{bad}"
            );
        }
        for bad in [
            "rate:0",
            "rate:-5",
            "rate:fast",
            "rate:inf",
            "flops:TFLOPS=989",
            "flops:MFU=0.4",
            "flops:TFLOPS=989,MFU=1.5",
            "flops:TFLOPS=989,MFU=0",
            "flops:TFLOPS=-1,MFU=0.4",
            "flops:TFLOPS=989,MFU=0.4,X=1",
            "flops:TFLOPS=989,MFU=0.4,MFU=0.3",
            "flops:TFLOPS",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, KvError::PrefillParam { .. }), "{bad}: {err}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn table_interpolates_and_extrapolates() {
        let file = table_file(
            "# measured on one GPU\nprompt_tokens,prefill_ms\n1000,100\n\n2000,150\n4000,350\n",
        );
        let path = file.path().to_str().unwrap().to_string();
        let m = parse(&format!("table:{path}")).unwrap();
        assert_eq!(
            m,
            PrefillModel::Table {
                path: path.clone(),
                rows: vec![(1000, 100.0), (2000, 150.0), (4000, 350.0)]
            }
        );
        let ms = |tokens| m.prefill_ns(tokens) as f64 / 1e6;
        assert_eq!(ms(1000), 100.0);
        assert_eq!(ms(1500), 125.0);
        assert_eq!(ms(2000), 150.0);
        assert_eq!(ms(3000), 250.0);
        assert_eq!(ms(4000), 350.0);
        // Beyond the ends: the line through the two nearest rows.
        assert_eq!(ms(5000), 450.0);
        assert_eq!(ms(500), 75.0);
        // ... clamped at 0 (the first segment reaches 0 at -1000 tokens).
        let steep = table_file("prompt_tokens,prefill_ms\n100,10\n200,100\n");
        let steep = parse(&format!("table:{}", steep.path().display())).unwrap();
        assert_eq!(steep.prefill_ns(50), 0);
        assert_eq!(steep.prefill_ns(0), 0);
        assert!(m.describe().contains("3 rows") && m.describe().contains("(modelled)"));
    }

    #[test]
    fn table_with_one_row_is_a_rate() {
        let file = table_file("Prompt_Tokens , Prefill_ms\r\n2048,100\r\n");
        let m = parse(&format!("table:{}", file.path().display())).unwrap();
        assert_eq!(m.prefill_ns(2048), 100_000_000);
        assert_eq!(m.prefill_ns(4096), 200_000_000);
    }

    #[test]
    fn malformed_table_lines_name_the_line() {
        let cases = [
            ("prompt_tokens,prefill_ms\n128,5\n256,abc\n", 3),
            ("prompt_tokens,prefill_ms\n128,5,7\n", 2),
            ("tokens,ms\n128,5\n", 1),
            ("prompt_tokens,prefill_ms\n\n256,5\n128,3\n", 4),
            ("prompt_tokens,prefill_ms\n128,5\n128,6\n", 3),
            ("prompt_tokens,prefill_ms\n-1,5\n", 2),
            ("prompt_tokens,prefill_ms\n1,-5\n", 2),
        ];
        for (text, line) in cases {
            let file = table_file(text);
            let err = parse(&format!("table:{}", file.path().display())).unwrap_err();
            assert!(
                matches!(err, KvError::PrefillTableLine { line: l, .. } if l == line),
                "{text:?}: {err}"
            );
            assert!(err.to_string().contains(&format!("line {line}:")), "{err}");
        }
        let empty = table_file("prompt_tokens,prefill_ms\n");
        assert!(matches!(
            parse(&format!("table:{}", empty.path().display())),
            Err(KvError::PrefillTableEmpty { .. })
        ));
        assert!(matches!(
            parse("table:/nonexistent/infab-prefill.csv"),
            Err(KvError::PrefillTableIo { .. })
        ));
    }

    #[test]
    fn layers_finish_in_equal_shares() {
        let m = PrefillModel::Rate {
            tokens_per_s: 1000.0,
        };
        // 80 tokens at 1000 tokens/s = 80 ms over 80 layers: 1 ms each.
        assert_eq!(m.layer_done_ns(80, 0, 80), 1_000_000);
        assert_eq!(m.layer_done_ns(80, 39, 80), 40_000_000);
        assert_eq!(m.layer_done_ns(80, 79, 80), m.prefill_ns(80));
        assert_eq!(m.layer_done_ns(80, 200, 80), m.prefill_ns(80));
        assert_eq!(m.layer_done_ns(80, 0, 0), m.prefill_ns(80));
        let mut last = 0;
        for layer in 0..61 {
            let t = m.layer_done_ns(4096, layer, 61);
            assert!(t >= last);
            last = t;
        }
        assert_eq!(last, m.prefill_ns(4096));
    }

    #[test]
    fn serde_is_tagged() {
        let m = PrefillModel::Rate { tokens_per_s: 5.0 };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"kind":"rate","tokens_per_s":5.0}"#);
        assert_eq!(serde_json::from_str::<PrefillModel>(&json).unwrap(), m);
    }
}
