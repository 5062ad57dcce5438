//! Page layouts of a KV pool: which serving engine's descriptor list to
//! mimic ([`KvLayout`]) and where each page lives in one side's pool
//! buffer ([`PoolGeometry`]).
//!
//! The pool buffer is one registered region per side, cut the way vLLM
//! registers its caches: for each layer and each tensor (K, V; the single
//! latent for MLA) one region of `blocks` pages, each page `block_tokens`
//! tokens of `token_bytes` bytes. The regions lie back to back, layer-major:
//!
//! ```text
//! page_offset(layer, tensor, block) = ((layer·tensors + tensor)·blocks + block)·page_bytes
//! ```
//!
//! This module owns that address arithmetic only; which pages a request
//! gets is `pool`'s job and which copies it makes is `plan`'s.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{KvError, KvModel};

/// Largest accepted tokens per page.
pub const MAX_BLOCK_TOKENS: u32 = 4096;
/// Largest accepted pool buffer, bytes (1 TiB).
pub const MAX_POOL_BYTES: u64 = 1 << 40;

/// Which engine's transfer descriptors a plan mimics (docs/workloads/kv.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvLayout {
    /// vLLM NixlConnector: one whole-page descriptor per page, per layer,
    /// per K/V tensor; no merging.
    Vllm,
    /// SGLang's Mooncake backend: used bytes of each page, runs merged where
    /// contiguous on both sides.
    Sglang,
    /// One region per request, one descriptor (the draft's 5.1-like
    /// baseline).
    Contiguous,
    /// vLLM-style pages over the single MLA latent tensor.
    Mla,
}

impl KvLayout {
    /// Every layout, in the order help texts list them.
    pub const ALL: [KvLayout; 4] = [
        KvLayout::Vllm,
        KvLayout::Sglang,
        KvLayout::Contiguous,
        KvLayout::Mla,
    ];

    /// The layout's name as the CLI and the results file spell it.
    pub fn name(&self) -> &'static str {
        match self {
            KvLayout::Vllm => "vllm",
            KvLayout::Sglang => "sglang",
            KvLayout::Contiguous => "contiguous",
            KvLayout::Mla => "mla",
        }
    }

    /// Checks that the layout fits the model: `mla` needs an MLA model. (An
    /// MLA model with `vllm` or `sglang` is fine: one tensor per layer.)
    pub fn check(&self, model: &KvModel) -> Result<(), KvError> {
        if *self == KvLayout::Mla && !model.mla {
            return Err(KvError::MlaLayoutNeedsMla {
                model: model.name.clone(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for KvLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses `vllm`, `sglang`, `contiguous` or `mla` (any case).
impl FromStr for KvLayout {
    type Err = KvError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        Self::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| KvError::UnknownLayout(text.to_string()))
    }
}

/// Where pages live in one side's KV pool buffer: per layer and tensor one
/// region of `blocks` pages (vLLM registers each layer's K and V as
/// separate regions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// L.
    pub layers: u32,
    /// Tensors per layer: 2 (K, V), 1 for MLA.
    pub tensors: u32,
    /// Pages per region (the pool's block count).
    pub blocks: u32,
    /// Tokens per page.
    pub block_tokens: u32,
    /// Bytes of one token, one layer, one tensor on one TP rank.
    pub token_bytes: u64,
}

impl PoolGeometry {
    /// The pool of one TP rank of `model`: `blocks` pages of `block_tokens`
    /// tokens. Rejects an invalid model or TP degree, `block_tokens` 0 or
    /// over 4096, `blocks` 0, and a pool over 1 TiB.
    pub fn new(
        model: &KvModel,
        tp: u32,
        block_tokens: u32,
        blocks: u32,
    ) -> Result<PoolGeometry, KvError> {
        model.validate()?;
        let token_bytes = model.token_bytes(tp)?;
        if block_tokens == 0 || block_tokens > MAX_BLOCK_TOKENS {
            return Err(KvError::BlockTokens(block_tokens));
        }
        if blocks == 0 {
            return Err(KvError::ZeroBlocks);
        }
        let geometry = PoolGeometry {
            layers: model.layers,
            tensors: model.tensors_per_layer(),
            blocks,
            block_tokens,
            token_bytes,
        };
        // Every factor is below 2^32 (token_bytes below 2^39), so the
        // product fits u128.
        let total = u128::from(geometry.layers)
            * u128::from(geometry.tensors)
            * u128::from(blocks)
            * u128::from(block_tokens)
            * u128::from(token_bytes);
        if total > u128::from(MAX_POOL_BYTES) {
            return Err(KvError::PoolTooLarge {
                bytes: u64::try_from(total).unwrap_or(u64::MAX),
            });
        }
        Ok(geometry)
    }

    /// Bytes of one page: block_tokens · token_bytes.
    pub fn page_bytes(&self) -> u64 {
        u64::from(self.block_tokens) * self.token_bytes
    }

    /// Bytes of one (layer, tensor) region: blocks · page_bytes.
    pub fn region_bytes(&self) -> u64 {
        u64::from(self.blocks) * self.page_bytes()
    }

    /// Bytes of the whole pool buffer: layers · tensors · region_bytes.
    pub fn total_bytes(&self) -> u64 {
        u64::from(self.layers) * u64::from(self.tensors) * self.region_bytes()
    }

    /// Offset of page `block` of tensor `tensor` of layer `layer`:
    /// ((layer·tensors + tensor)·blocks + block)·page_bytes.
    pub fn page_offset(&self, layer: u32, tensor: u32, block: u32) -> u64 {
        debug_assert!(layer < self.layers && tensor < self.tensors && block < self.blocks);
        let region = u64::from(layer) * u64::from(self.tensors) + u64::from(tensor);
        (region * u64::from(self.blocks) + u64::from(block)) * self.page_bytes()
    }

    /// Pages `tokens` tokens take: ceil(tokens / block_tokens).
    pub fn blocks_for(&self, tokens: u64) -> u64 {
        tokens.div_ceil(u64::from(self.block_tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_round_trip() {
        for layout in KvLayout::ALL {
            assert_eq!(layout.name().parse::<KvLayout>().unwrap(), layout);
            assert_eq!(layout.to_string(), layout.name());
            let json = serde_json::to_string(&layout).unwrap();
            assert_eq!(json, format!("\"{}\"", layout.name()));
        }
        assert_eq!(" SGLang ".parse::<KvLayout>().unwrap(), KvLayout::Sglang);
        let err = "nixl".parse::<KvLayout>().unwrap_err();
        assert_eq!(err, KvError::UnknownLayout("nixl".into()));
        assert!(err.to_string().contains("vllm, sglang, contiguous or mla"));
    }

    #[test]
    fn mla_layout_needs_an_mla_model() {
        let err = KvLayout::Mla.check(&KvModel::llama_3_1_8b()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("--layout vllm") && text.contains("sglang"),
            "{text}"
        );
        KvLayout::Mla.check(&KvModel::deepseek_v3()).unwrap();
        for layout in [KvLayout::Vllm, KvLayout::Sglang, KvLayout::Contiguous] {
            layout.check(&KvModel::deepseek_v3()).unwrap();
            layout.check(&KvModel::cfg_a()).unwrap();
        }
    }

    #[test]
    fn geometry_arithmetic() {
        // CFG-A, tp=2: 4 heads · 128 · 2 = 1024 bytes per token per tensor.
        let g = PoolGeometry::new(&KvModel::cfg_a(), 2, 16, 100).unwrap();
        assert_eq!(
            (g.layers, g.tensors, g.blocks, g.block_tokens, g.token_bytes),
            (32, 2, 100, 16, 1024)
        );
        assert_eq!(g.page_bytes(), 16 * 1024);
        assert_eq!(g.region_bytes(), 100 * 16 * 1024);
        assert_eq!(g.total_bytes(), 32 * 2 * 100 * 16 * 1024);
        assert_eq!(g.page_offset(0, 0, 0), 0);
        assert_eq!(g.page_offset(0, 0, 1), g.page_bytes());
        assert_eq!(g.page_offset(0, 1, 0), g.region_bytes());
        assert_eq!(g.page_offset(1, 0, 0), 2 * g.region_bytes());
        assert_eq!(g.page_offset(31, 1, 99) + g.page_bytes(), g.total_bytes());
        assert_eq!(g.blocks_for(1), 1);
        assert_eq!(g.blocks_for(16), 1);
        assert_eq!(g.blocks_for(17), 2);
        assert_eq!(g.blocks_for(4096), 256);
        let mla = PoolGeometry::new(&KvModel::deepseek_v3(), 8, 64, 10).unwrap();
        assert_eq!((mla.tensors, mla.token_bytes), (1, 576 * 2));
    }

    #[test]
    fn geometry_rejects_bad_sizes() {
        let m = KvModel::cfg_b();
        assert_eq!(
            PoolGeometry::new(&m, 1, 0, 10),
            Err(KvError::BlockTokens(0))
        );
        assert_eq!(
            PoolGeometry::new(&m, 1, 4097, 10),
            Err(KvError::BlockTokens(4097))
        );
        assert!(PoolGeometry::new(&m, 1, 4096, 1).is_ok());
        assert_eq!(PoolGeometry::new(&m, 1, 16, 0), Err(KvError::ZeroBlocks));
        // CFG-C, tp=1: 3 MiB per token; 2^40 / 3 MiB is about 350k tokens.
        let err = PoolGeometry::new(&KvModel::cfg_c(), 1, 4096, 1000).unwrap_err();
        assert!(matches!(err, KvError::PoolTooLarge { .. }), "{err}");
        assert!(matches!(
            PoolGeometry::new(&m, 3, 16, 10),
            Err(KvError::TpMismatch { .. })
        ));
        let mut bad = KvModel::cfg_a();
        bad.layers = 0;
        assert!(matches!(
            PoolGeometry::new(&bad, 1, 16, 10),
            Err(KvError::ZeroDimension { .. })
        ));
    }
}
