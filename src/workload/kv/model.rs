//! KV-cache model shapes (draft §10.1, Table 8, Appendix E): the presets
//! CFG-A..CFG-D, named open models with the numbers of their Hugging Face
//! `config.json`, the custom row CFG-E, and the per-TP-rank byte counts.
//!
//! The formula is `S_KV = 2 · L · H_kv · D · C · P_bytes` (Appendix E): K
//! and V, per layer, per KV head, per head dimension, per token, per byte.
//! This module owns the model parameters and that arithmetic only; page
//! layouts live in `layout`, and the context length C belongs to a request.
//!
//! Sources of the named models (each the model's own `config.json` on the
//! Hugging Face Hub; see docs/workloads/kv.md for how each was checked):
//! - `llama-3.1-8b`: meta-llama/Llama-3.1-8B, config.json —
//!   num_hidden_layers 32, num_key_value_heads 8, head_dim 128, bfloat16.
//! - `llama-3.1-70b`: meta-llama/Llama-3.1-70B, config.json —
//!   num_hidden_layers 80, num_key_value_heads 8, hidden_size 8192 /
//!   num_attention_heads 64 = 128, bfloat16.
//! - `qwen3-235b-a22b`: Qwen/Qwen3-235B-A22B, config.json —
//!   num_hidden_layers 94, num_key_value_heads 4, head_dim 128, bfloat16;
//!   22B active parameters (the "A22B" of the name).
//! - `deepseek-v3`: deepseek-ai/DeepSeek-V3, config.json —
//!   num_hidden_layers 61, kv_lora_rank 512, qk_rope_head_dim 64 (MLA),
//!   bfloat16 cache; 37B activated parameters (the model card).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::KvError;

/// Largest accepted L (layers).
pub const MAX_LAYERS: u32 = 1000;
/// Largest accepted H_kv (KV heads).
pub const MAX_KV_HEADS: u32 = 1024;
/// Largest accepted D (head dimension).
pub const MAX_HEAD_DIM: u32 = 65536;
/// Name given to a user-defined shape (draft Table 8 row CFG-E).
pub const CUSTOM_NAME: &str = "CFG-E";

/// Every accepted preset name, in the order help texts list them.
const NAMES: [&str; 8] = [
    "CFG-A",
    "CFG-B",
    "CFG-C",
    "CFG-D",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "qwen3-235b-a22b",
    "deepseek-v3",
];

/// A model's KV-cache shape (draft §10.1, Appendix E:
/// S_KV = 2·L·H_kv·D·C·P_bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvModel {
    /// "llama-3.1-8b", "CFG-A", "CFG-E", ...
    pub name: String,
    /// L: transformer layers that keep a KV cache.
    pub layers: u32,
    /// H_kv: KV heads (GQA groups); 1 for MLA.
    pub kv_heads: u32,
    /// D: elements per head per token; for MLA the latent width
    /// kv_lora_rank + qk_rope_head_dim.
    pub head_dim: u32,
    /// P_bytes: bytes per cached element (BF16 = 2, FP8/INT8 = 1).
    pub dtype_bytes: u32,
    /// One compressed latent per token per layer (no separate K and V).
    pub mla: bool,
    /// (Active) parameters in billions, for the flops prefill model.
    pub params_b: Option<f64>,
    /// Where the numbers come from (draft Table 8 / the model's config.json).
    pub source: String,
}

impl KvModel {
    /// Every accepted preset name, for errors and help texts.
    pub fn names() -> &'static [&'static str] {
        &NAMES
    }

    /// Table 8 row CFG-A: "Small", L=32, H_kv=8 (GQA), D=128, BF16.
    pub fn cfg_a() -> Self {
        Self::table_8("CFG-A", 32, 8, 128, 2)
    }

    /// Table 8 row CFG-B: "Mid", L=80, H_kv=8 (GQA), D=128, BF16 (e.g.
    /// Llama-3 70B; Appendix E's worked example).
    pub fn cfg_b() -> Self {
        Self::table_8("CFG-B", 80, 8, 128, 2)
    }

    /// Table 8 row CFG-C: "Large MHA", L=96, H_kv=64, D=128, BF16.
    pub fn cfg_c() -> Self {
        Self::table_8("CFG-C", 96, 64, 128, 2)
    }

    /// Table 8 row CFG-D: "Mid INT8", L=80, H_kv=8 (GQA), D=128, INT8.
    pub fn cfg_d() -> Self {
        Self::table_8("CFG-D", 80, 8, 128, 1)
    }

    /// Llama 3.1 8B: 32 layers, 8 KV heads, head_dim 128, BF16.
    pub fn llama_3_1_8b() -> Self {
        Self::named(
            "llama-3.1-8b",
            (32, 8, 128, 2, false),
            Some(8.0),
            "huggingface.co/meta-llama/Llama-3.1-8B config.json: num_hidden_layers=32, \
             num_key_value_heads=8, head_dim=128, torch_dtype=bfloat16; 8B parameters (nominal)",
        )
    }

    /// Llama 3.1 70B: 80 layers, 8 KV heads, head_dim 128, BF16.
    pub fn llama_3_1_70b() -> Self {
        Self::named(
            "llama-3.1-70b",
            (80, 8, 128, 2, false),
            Some(70.0),
            "huggingface.co/meta-llama/Llama-3.1-70B config.json: num_hidden_layers=80, \
             num_key_value_heads=8, hidden_size/num_attention_heads=8192/64=128, \
             torch_dtype=bfloat16; 70B parameters (nominal)",
        )
    }

    /// Qwen3-235B-A22B: 94 layers, 4 KV heads, head_dim 128, BF16, 22B
    /// active parameters.
    pub fn qwen3_235b_a22b() -> Self {
        Self::named(
            "qwen3-235b-a22b",
            (94, 4, 128, 2, false),
            Some(22.0),
            "huggingface.co/Qwen/Qwen3-235B-A22B config.json: num_hidden_layers=94, \
             num_key_value_heads=4, head_dim=128, torch_dtype=bfloat16; 22B active parameters",
        )
    }

    /// DeepSeek-V3: 61 layers of MLA, a 512 + 64 = 576-element latent per
    /// token per layer, BF16, 37B active parameters.
    pub fn deepseek_v3() -> Self {
        Self::named(
            "deepseek-v3",
            (61, 1, 576, 2, true),
            Some(37.0),
            "huggingface.co/deepseek-ai/DeepSeek-V3 config.json: num_hidden_layers=61, MLA with \
             kv_lora_rank=512 + qk_rope_head_dim=64 = 576 per token per layer, bf16 cache; \
             37B activated parameters",
        )
    }

    /// Every preset, in the order of [`KvModel::names`].
    pub fn presets() -> Vec<Self> {
        vec![
            Self::cfg_a(),
            Self::cfg_b(),
            Self::cfg_c(),
            Self::cfg_d(),
            Self::llama_3_1_8b(),
            Self::llama_3_1_70b(),
            Self::qwen3_235b_a22b(),
            Self::deepseek_v3(),
        ]
    }

    /// A user-defined shape (Table 8 row CFG-E), validated.
    pub fn custom(
        layers: u32,
        kv_heads: u32,
        head_dim: u32,
        dtype_bytes: u32,
        mla: bool,
        params_b: Option<f64>,
    ) -> Result<Self, KvError> {
        let model = Self {
            name: CUSTOM_NAME.to_string(),
            layers,
            kv_heads,
            head_dim,
            dtype_bytes,
            mla,
            params_b,
            source: "user-defined (draft Table 8 row CFG-E)".to_string(),
        };
        model.validate()?;
        Ok(model)
    }

    /// Checks the shape: no zero or absurd dimension (L <= 1000,
    /// H_kv <= 1024, D <= 65536), P_bytes in {1, 2, 4, 8}, H_kv = 1 for MLA,
    /// a positive parameter count when one is given.
    pub fn validate(&self) -> Result<(), KvError> {
        let dims = [
            ("L (layers)", self.layers, MAX_LAYERS),
            ("H_kv (KV heads)", self.kv_heads, MAX_KV_HEADS),
            ("D (head dim)", self.head_dim, MAX_HEAD_DIM),
        ];
        for (field, value, max) in dims {
            if value == 0 {
                return Err(KvError::ZeroDimension {
                    model: self.name.clone(),
                    field,
                });
            }
            if value > max {
                return Err(KvError::DimensionTooLarge {
                    model: self.name.clone(),
                    field,
                    value,
                    max,
                });
            }
        }
        if ![1, 2, 4, 8].contains(&self.dtype_bytes) {
            return Err(KvError::BadDtype {
                model: self.name.clone(),
                bytes: self.dtype_bytes,
            });
        }
        if self.mla && self.kv_heads != 1 {
            return Err(KvError::MlaHeads {
                model: self.name.clone(),
                kv_heads: self.kv_heads,
            });
        }
        if let Some(params) = self.params_b {
            if !(params.is_finite() && params > 0.0) {
                return Err(KvError::BadParams {
                    model: self.name.clone(),
                    value: params,
                });
            }
        }
        Ok(())
    }

    /// Cached tensors per layer: 2 (K and V), 1 for MLA (one latent).
    pub fn tensors_per_layer(&self) -> u32 {
        if self.mla {
            1
        } else {
            2
        }
    }

    /// KV heads each TP rank holds: H_kv / tp; when tp > H_kv each rank
    /// holds 1 (the head replicated, as vLLM does); MLA: 1 (the latent is
    /// replicated on every TP rank). A tp that neither divides nor is a
    /// multiple of H_kv is rejected.
    pub fn heads_per_rank(&self, tp: u32) -> Result<u32, KvError> {
        if tp == 0 {
            return Err(KvError::ZeroTp);
        }
        if self.mla {
            return Ok(1);
        }
        let heads = self.kv_heads;
        if tp <= heads && heads % tp == 0 {
            Ok(heads / tp)
        } else if tp > heads && tp % heads == 0 {
            Ok(1)
        } else {
            Err(KvError::TpMismatch {
                model: self.name.clone(),
                kv_heads: heads,
                tp,
            })
        }
    }

    /// Bytes of one token, one layer, one tensor on one TP rank:
    /// heads_per_rank · D · P_bytes.
    pub fn token_bytes(&self, tp: u32) -> Result<u64, KvError> {
        let heads = u64::from(self.heads_per_rank(tp)?);
        Ok(heads * u64::from(self.head_dim) * u64::from(self.dtype_bytes))
    }

    /// KV bytes of `tokens` tokens on one TP rank:
    /// tensors · L · token_bytes · C. For tp = 1 and a non-MLA model this is
    /// exactly the draft's S_KV = 2·L·H_kv·D·C·P_bytes.
    pub fn kv_bytes(&self, tokens: u64, tp: u32) -> Result<u64, KvError> {
        let per_token =
            u64::from(self.tensors_per_layer()) * u64::from(self.layers) * self.token_bytes(tp)?;
        per_token
            .checked_mul(tokens)
            .ok_or_else(|| KvError::Overflow {
                what: format!("the KV cache of {tokens} tokens of {}", self.name),
            })
    }

    fn table_8(name: &str, layers: u32, kv_heads: u32, head_dim: u32, dtype_bytes: u32) -> Self {
        Self {
            name: name.to_string(),
            layers,
            kv_heads,
            head_dim,
            dtype_bytes,
            mla: false,
            params_b: None,
            source: format!("draft-calabria-bmwg-ai-fabric-inference-bench-01 Table 8 row {name}"),
        }
    }

    fn named(
        name: &str,
        (layers, kv_heads, head_dim, dtype_bytes, mla): (u32, u32, u32, u32, bool),
        params_b: Option<f64>,
        source: &str,
    ) -> Self {
        Self {
            name: name.to_string(),
            layers,
            kv_heads,
            head_dim,
            dtype_bytes,
            mla,
            params_b,
            source: source.to_string(),
        }
    }
}

impl fmt::Display for KvModel {
    /// Writes every parameter, as §10.1's reporting format asks for CFG-E:
    /// `CFG-E (L=32,H_kv=8,D=128,P=2)`, with `,MLA` for MLA models.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (L={},H_kv={},D={},P={}{})",
            self.name,
            self.layers,
            self.kv_heads,
            self.head_dim,
            self.dtype_bytes,
            if self.mla { ",MLA" } else { "" }
        )
    }
}

/// Parses a preset name or the custom form (case-insensitive).
///
/// - `CFG-A`..`CFG-D`, `llama-3.1-8b`, `llama-3.1-70b`, `qwen3-235b-a22b`,
///   `deepseek-v3`: the presets.
/// - `CFG-E:L=32,H_kv=8,D=128,P=2` or the bare `L=32,H_kv=8,D=128,P=2`: a
///   user-defined shape named CFG-E. `P` defaults to 2 (BF16); the optional
///   `MLA=1` marks an MLA model (then `H_kv=1`) and `PARAMS_B=<billions>`
///   gives the parameter count the flops prefill model needs.
impl FromStr for KvModel {
    type Err = KvError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if let Some(preset) = Self::presets()
            .into_iter()
            .find(|p| p.name.eq_ignore_ascii_case(text))
        {
            return Ok(preset);
        }
        let custom = match text.split_once(':') {
            Some((head, rest)) if head.trim().eq_ignore_ascii_case(CUSTOM_NAME) => rest,
            Some(_) => return Err(unknown(text)),
            None if text.contains('=') => text,
            None => return Err(unknown(text)),
        };
        parse_custom(custom)
    }
}

fn unknown(text: &str) -> KvError {
    KvError::UnknownModel {
        name: text.to_string(),
        names: NAMES.join(", "),
    }
}

fn parse_custom(text: &str) -> Result<KvModel, KvError> {
    let mut layers = None;
    let mut kv_heads = None;
    let mut head_dim = None;
    let mut dtype_bytes = None;
    let mut mla = None;
    let mut params_b = None;
    for item in text.split(',') {
        let syntax = |reason: &str| KvError::ModelSyntax {
            item: item.trim().to_string(),
            reason: reason.to_string(),
        };
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| syntax("expected key=value"))?;
        let value = value.trim();
        let whole = |v: &str| -> Result<u32, KvError> {
            v.parse().map_err(|_| syntax("value is not a whole number"))
        };
        let key = key.trim().to_ascii_lowercase();
        let fresh = match key.as_str() {
            "l" => layers.replace(whole(value)?).is_none(),
            "h_kv" | "hkv" => kv_heads.replace(whole(value)?).is_none(),
            "d" => head_dim.replace(whole(value)?).is_none(),
            "p" => dtype_bytes.replace(whole(value)?).is_none(),
            "mla" => {
                let flag = match value.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" => true,
                    "0" | "false" | "no" => false,
                    _ => return Err(syntax("MLA takes 0 or 1")),
                };
                mla.replace(flag).is_none()
            }
            "params_b" => {
                let number: f64 = value.parse().map_err(|_| syntax("value is not a number"))?;
                params_b.replace(number).is_none()
            }
            _ => {
                return Err(syntax(
                    "unknown key; the keys are L, H_kv, D, P, MLA and PARAMS_B",
                ))
            }
        };
        if !fresh {
            return Err(syntax("key given twice"));
        }
    }
    let missing = |key: &str| KvError::ModelSyntax {
        item: text.trim().to_string(),
        reason: format!("{key} is missing"),
    };
    KvModel::custom(
        layers.ok_or_else(|| missing("L"))?,
        kv_heads.ok_or_else(|| missing("H_kv"))?,
        head_dim.ok_or_else(|| missing("D"))?,
        dtype_bytes.unwrap_or(2),
        mla.unwrap_or(false),
        params_b,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const K4: u64 = 4096;
    const K32: u64 = 32768;
    const K128: u64 = 131072;

    /// The draft's formula, written out independently of the code.
    fn s_kv(l: u64, h: u64, d: u64, c: u64, p: u64) -> u64 {
        2 * l * h * d * c * p
    }

    #[test]
    fn presets_match_table_8() {
        let shapes: Vec<_> = [
            KvModel::cfg_a(),
            KvModel::cfg_b(),
            KvModel::cfg_c(),
            KvModel::cfg_d(),
        ]
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                m.layers,
                m.kv_heads,
                m.head_dim,
                m.dtype_bytes,
            )
        })
        .collect();
        assert_eq!(
            shapes,
            vec![
                ("CFG-A".to_string(), 32, 8, 128, 2),
                ("CFG-B".to_string(), 80, 8, 128, 2),
                ("CFG-C".to_string(), 96, 64, 128, 2),
                ("CFG-D".to_string(), 80, 8, 128, 1),
            ]
        );
        for preset in KvModel::presets() {
            preset.validate().unwrap();
        }
        let names: Vec<_> = KvModel::presets().into_iter().map(|m| m.name).collect();
        assert_eq!(names, KvModel::names());
    }

    #[test]
    fn appendix_e_worked_example() {
        // Appendix E: 2 x 80 x 8 x 128 x 4,096 x 2 = 1,342,177,280 bytes.
        assert_eq!(KvModel::cfg_b().kv_bytes(K4, 1).unwrap(), 1_342_177_280);
    }

    #[test]
    fn table_8_presets_follow_the_formula() {
        let cases = [
            (KvModel::cfg_a(), 32, 8, 128, 2),
            (KvModel::cfg_b(), 80, 8, 128, 2),
            (KvModel::cfg_c(), 96, 64, 128, 2),
            (KvModel::cfg_d(), 80, 8, 128, 1),
        ];
        for (model, l, h, d, p) in cases {
            for c in [K4, K32, K128] {
                assert_eq!(
                    model.kv_bytes(c, 1).unwrap(),
                    s_kv(l, h, d, c, p),
                    "{} at {c}",
                    model.name
                );
            }
        }
        // The exact values docs/workloads/kv.md lists against Table 8.
        let expected: [(KvModel, [u64; 3]); 4] = [
            (
                KvModel::cfg_a(),
                [536_870_912, 4_294_967_296, 17_179_869_184],
            ),
            (
                KvModel::cfg_b(),
                [1_342_177_280, 10_737_418_240, 42_949_672_960],
            ),
            (
                KvModel::cfg_c(),
                [12_884_901_888, 103_079_215_104, 412_316_860_416],
            ),
            (
                KvModel::cfg_d(),
                [671_088_640, 5_368_709_120, 21_474_836_480],
            ),
        ];
        for (model, bytes) in expected {
            let got: Vec<_> = [K4, K32, K128]
                .iter()
                .map(|&c| model.kv_bytes(c, 1).unwrap())
                .collect();
            assert_eq!(got, bytes, "{}", model.name);
        }
    }

    #[test]
    fn named_models_follow_the_formula() {
        for c in [1, 128, K4, K32, K128] {
            assert_eq!(
                KvModel::llama_3_1_8b().kv_bytes(c, 1).unwrap(),
                s_kv(32, 8, 128, c, 2)
            );
            assert_eq!(
                KvModel::llama_3_1_70b().kv_bytes(c, 1).unwrap(),
                s_kv(80, 8, 128, c, 2)
            );
            assert_eq!(
                KvModel::qwen3_235b_a22b().kv_bytes(c, 1).unwrap(),
                s_kv(94, 4, 128, c, 2)
            );
            // MLA: one 576-element latent per token per layer, no K/V pair.
            assert_eq!(
                KvModel::deepseek_v3().kv_bytes(c, 1).unwrap(),
                61 * 576 * 2 * c
            );
        }
        let ds = KvModel::deepseek_v3();
        assert!(ds.mla);
        assert_eq!(ds.tensors_per_layer(), 1);
        assert_eq!(ds.params_b, Some(37.0));
        assert_eq!(KvModel::qwen3_235b_a22b().params_b, Some(22.0));
        assert_eq!(KvModel::llama_3_1_8b().tensors_per_layer(), 2);
    }

    #[test]
    fn tp_splits_heads_or_replicates() {
        let m = KvModel::llama_3_1_70b();
        assert_eq!(m.heads_per_rank(1).unwrap(), 8);
        assert_eq!(m.heads_per_rank(2).unwrap(), 4);
        assert_eq!(m.token_bytes(2).unwrap(), 4 * 128 * 2);
        assert_eq!(m.heads_per_rank(8).unwrap(), 1);
        // tp=16 > H_kv=8: each rank holds one head, replicated.
        assert_eq!(m.heads_per_rank(16).unwrap(), 1);
        assert_eq!(m.token_bytes(16).unwrap(), 128 * 2);
        assert_eq!(m.kv_bytes(K4, 2).unwrap() * 2, m.kv_bytes(K4, 1).unwrap());
        let err = m.heads_per_rank(3).unwrap_err();
        assert_eq!(
            err,
            KvError::TpMismatch {
                model: "llama-3.1-70b".into(),
                kv_heads: 8,
                tp: 3
            }
        );
        assert!(err.to_string().contains("--tp 3"), "{err}");
        assert!(matches!(
            m.heads_per_rank(12),
            Err(KvError::TpMismatch { .. })
        ));
        assert_eq!(m.heads_per_rank(0), Err(KvError::ZeroTp));
        assert!(m.token_bytes(3).is_err());
        // MLA: the latent is replicated on every TP rank.
        let ds = KvModel::deepseek_v3();
        for tp in [1, 2, 3, 8, 16] {
            assert_eq!(ds.heads_per_rank(tp).unwrap(), 1);
            assert_eq!(ds.token_bytes(tp).unwrap(), 576 * 2);
        }
    }

    #[test]
    fn parses_names_in_any_case() {
        assert_eq!("cfg-b".parse::<KvModel>().unwrap(), KvModel::cfg_b());
        assert_eq!(
            " Llama-3.1-8B ".parse::<KvModel>().unwrap(),
            KvModel::llama_3_1_8b()
        );
        assert_eq!(
            "DEEPSEEK-V3".parse::<KvModel>().unwrap(),
            KvModel::deepseek_v3()
        );
        for name in KvModel::names() {
            assert_eq!(name.parse::<KvModel>().unwrap().name, *name);
        }
    }

    #[test]
    fn parses_custom_forms() {
        let bare: KvModel = "L=32,H_kv=8,D=128,P=2".parse().unwrap();
        let tagged: KvModel = "cfg-e: l=32, h_kv=8, d=128, p=2".parse().unwrap();
        assert_eq!(bare, tagged);
        assert_eq!(bare.name, "CFG-E");
        assert_eq!(
            bare.kv_bytes(K4, 1).unwrap(),
            KvModel::cfg_a().kv_bytes(K4, 1).unwrap()
        );
        assert_eq!(bare.to_string(), "CFG-E (L=32,H_kv=8,D=128,P=2)");
        let default_p: KvModel = "L=4,H_kv=2,D=64".parse().unwrap();
        assert_eq!(default_p.dtype_bytes, 2);
        let mla: KvModel = "CFG-E:L=61,H_kv=1,D=576,P=2,MLA=1,PARAMS_B=37"
            .parse()
            .unwrap();
        assert!(mla.mla);
        assert_eq!(mla.params_b, Some(37.0));
        assert_eq!(mla.kv_bytes(100, 1).unwrap(), 61 * 576 * 2 * 100);
        assert_eq!(mla.to_string(), "CFG-E (L=61,H_kv=1,D=576,P=2,MLA)");
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let err = "llama-9".parse::<KvModel>().unwrap_err();
        assert!(matches!(err, KvError::UnknownModel { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("'llama-9'"), "{text}");
        for name in KvModel::names() {
            assert!(text.contains(name), "{text} lacks {name}");
        }
        assert!(!text.contains('\n'));
        assert!(matches!(
            "CFG-Z:L=1,H_kv=1,D=1".parse::<KvModel>(),
            Err(KvError::UnknownModel { .. })
        ));
    }

    #[test]
    fn rejects_bad_custom_forms() {
        for bad in [
            "L=32,H_kv=8",
            "L=32,H_kv=8,D=128,X=1",
            "L=32,H_kv=8,D=128,L=3",
            "L=32,H_kv=eight,D=128",
            "L=32,H_kv=8,D",
            "L=32,H_kv=8,D=128,MLA=maybe",
        ] {
            let err = bad.parse::<KvModel>().unwrap_err();
            assert!(matches!(err, KvError::ModelSyntax { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn rejects_zero_and_absurd_dimensions() {
        for (bad, field) in [
            ("L=0,H_kv=8,D=128", "L (layers)"),
            ("L=32,H_kv=0,D=128", "H_kv (KV heads)"),
            ("L=32,H_kv=8,D=0", "D (head dim)"),
        ] {
            let err = bad.parse::<KvModel>().unwrap_err();
            assert_eq!(
                err,
                KvError::ZeroDimension {
                    model: "CFG-E".into(),
                    field
                }
            );
            assert!(err.to_string().contains("is 0"), "{err}");
        }
        for bad in [
            "L=1001,H_kv=8,D=128",
            "L=32,H_kv=1025,D=128",
            "L=32,H_kv=8,D=65537",
        ] {
            let err = bad.parse::<KvModel>().unwrap_err();
            assert!(
                matches!(err, KvError::DimensionTooLarge { .. }),
                "{bad}: {err}"
            );
            assert!(!err.to_string().contains('\n'));
        }
        assert!("L=1000,H_kv=1024,D=65536,P=8".parse::<KvModel>().is_ok());
        for p in [0, 3, 5, 16] {
            let err = format!("L=32,H_kv=8,D=128,P={p}")
                .parse::<KvModel>()
                .unwrap_err();
            assert_eq!(
                err,
                KvError::BadDtype {
                    model: "CFG-E".into(),
                    bytes: p
                }
            );
        }
        assert!(matches!(
            "L=61,H_kv=2,D=576,MLA=1".parse::<KvModel>(),
            Err(KvError::MlaHeads { kv_heads: 2, .. })
        ));
        assert!(matches!(
            "L=4,H_kv=2,D=64,PARAMS_B=-1".parse::<KvModel>(),
            Err(KvError::BadParams { .. })
        ));
    }

    #[test]
    fn kv_bytes_overflow_is_an_error() {
        let big = KvModel::custom(1000, 1024, 65536, 8, false, None).unwrap();
        assert!(matches!(
            big.kv_bytes(u64::MAX / 2, 1),
            Err(KvError::Overflow { .. })
        ));
    }

    #[test]
    fn serde_round_trip() {
        let m = KvModel::deepseek_v3();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<KvModel>(&json).unwrap(), m);
    }
}
