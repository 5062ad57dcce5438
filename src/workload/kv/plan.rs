//! Per-request KV transfer plans: which pages a request gets on each side,
//! the copies (descriptors) its layout lists, and those copies cut into
//! work requests of at most `max_wr_bytes`.
//!
//! A plan is computed once, as data, before the request's timed window;
//! the engine only posts it. Both ends of a transfer build the same
//! [`KvPlanner`] from the same [`KvPlanSpec`], so they plan the very same
//! descriptors without exchanging them. The per-layout rules and their
//! count formula ([`descriptor_formula`]) are in docs/workloads/kv.md.
//!
//! Everything here is one TP rank's share: the geometry and byte counts use
//! [`KvModel::token_bytes`] for the spec's TP degree.

use std::ops::Range;

use super::{BlockPool, KvError, KvLayout, KvModel, PoolGeometry};

/// Mixed into the seed of the decode side's pool so the two sides scatter
/// differently (the 64-bit golden ratio, as in SplitMix64).
const DST_SEED_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

/// One contiguous copy: bytes at `src_offset` of the prefill side's pool
/// buffer go to `dst_offset` of the decode side's pool buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// The layer whose prefill must finish before this copy may start.
    pub layer: u32,
    /// The tensor: 0 = K (or the MLA latent), 1 = V.
    pub tensor: u32,
    /// Offset in the prefill side's pool buffer.
    pub src_offset: u64,
    /// Offset in the decode side's pool buffer.
    pub dst_offset: u64,
    /// Bytes to copy.
    pub bytes: u64,
}

/// Everything needed to plan requests.
#[derive(Debug, Clone, PartialEq)]
pub struct KvPlanSpec {
    /// The model's KV shape.
    pub model: KvModel,
    /// Tensor parallelism; plans cover one rank's share.
    pub tp: u32,
    /// Which engine's descriptor list to mimic.
    pub layout: KvLayout,
    /// Tokens per page.
    pub block_tokens: u32,
    /// Pages in each side's pool.
    pub pool_blocks: u32,
    /// Free-list fragmentation, 0..=1 (see [`BlockPool::new`]).
    pub fragmentation: f64,
    /// Largest work request, bytes (Mooncake slices at 64 KiB).
    pub max_wr_bytes: u64,
    /// Seed of the prefill side's free list; the decode side's is derived.
    pub seed: u64,
}

/// One request's transfer plan.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPlan {
    /// The request's number.
    pub request: u32,
    /// Prompt tokens C.
    pub tokens: u64,
    /// The request's pages in the prefill side's pool.
    pub src_blocks: Vec<u32>,
    /// The request's pages in the decode side's pool.
    pub dst_blocks: Vec<u32>,
    /// The copies as the layout lists them (after merging, before slicing),
    /// sorted by layer.
    pub descriptors: Vec<Descriptor>,
    /// The descriptors sliced to at most `max_wr_bytes`, sorted by layer
    /// (stable).
    pub wrs: Vec<Descriptor>,
    /// Sum of descriptor bytes.
    pub bytes: u64,
}

impl RequestPlan {
    /// The contiguous slice of `wrs` whose layer is in `layers` (empty for
    /// an empty range).
    pub fn wrs_of_layers(&self, layers: Range<u32>) -> &[Descriptor] {
        let start = self.wrs.partition_point(|w| w.layer < layers.start);
        let end = self.wrs.partition_point(|w| w.layer < layers.end);
        &self.wrs[start..end.max(start)]
    }
}

/// Plans requests one at a time from a spec, keeping both sides' free
/// lists.
#[derive(Debug, Clone)]
pub struct KvPlanner {
    spec: KvPlanSpec,
    geometry: PoolGeometry,
    src_pool: BlockPool,
    dst_pool: BlockPool,
}

impl KvPlanner {
    /// Validates the spec and builds both free lists: the prefill side's
    /// seeded with `seed`, the decode side's with a different derived seed,
    /// so the two sides scatter differently.
    pub fn new(spec: KvPlanSpec) -> Result<KvPlanner, KvError> {
        spec.layout.check(&spec.model)?;
        let geometry =
            PoolGeometry::new(&spec.model, spec.tp, spec.block_tokens, spec.pool_blocks)?;
        if spec.max_wr_bytes == 0 {
            return Err(KvError::ZeroMaxWr);
        }
        let src_pool = BlockPool::new(spec.pool_blocks, spec.fragmentation, spec.seed)?;
        let dst_pool = BlockPool::new(
            spec.pool_blocks,
            spec.fragmentation,
            spec.seed ^ DST_SEED_SALT,
        )?;
        Ok(KvPlanner {
            spec,
            geometry,
            src_pool,
            dst_pool,
        })
    }

    /// The pool geometry both sides share.
    pub fn geometry(&self) -> PoolGeometry {
        self.geometry
    }

    /// The spec the planner was built from.
    pub fn spec(&self) -> &KvPlanSpec {
        &self.spec
    }

    /// Checks, without planning, that a prompt of `tokens` tokens can be
    /// planned: at least 1 token, and no more pages than the pool holds.
    /// Returns the pages it needs. Call it for every prompt before a run
    /// starts.
    pub fn check_prompt(&self, tokens: u64) -> Result<u32, KvError> {
        if tokens == 0 {
            return Err(KvError::ZeroTokens);
        }
        let needed = self.geometry.blocks_for(tokens);
        if needed > u64::from(self.spec.pool_blocks) {
            return Err(KvError::PoolExhausted {
                needed,
                blocks: self.spec.pool_blocks,
            });
        }
        Ok(needed as u32)
    }

    /// Plans request `request` of `tokens` tokens: allocates its blocks on
    /// both sides, lists its descriptors.
    pub fn plan(&mut self, request: u32, tokens: u64) -> Result<RequestPlan, KvError> {
        let needed = self.check_prompt(tokens)?;
        let src_blocks = self.src_pool.allocate(needed)?;
        let dst_blocks = self.dst_pool.allocate(needed)?;
        self.plan_pages(request, tokens, src_blocks, dst_blocks)
    }

    /// Plans request `request` of `tokens` tokens onto pages the caller
    /// allocated (a serving pool's own allocators): the first
    /// `blocks_for(tokens)` pages of each list carry the prompt's KV.
    /// Errors when either list is too short.
    pub fn plan_pages(
        &self,
        request: u32,
        tokens: u64,
        mut src_blocks: Vec<u32>,
        mut dst_blocks: Vec<u32>,
    ) -> Result<RequestPlan, KvError> {
        let needed = self.check_prompt(tokens)? as usize;
        if src_blocks.len() < needed || dst_blocks.len() < needed {
            return Err(KvError::PoolExhausted {
                needed: needed as u64,
                blocks: src_blocks.len().min(dst_blocks.len()) as u32,
            });
        }
        src_blocks.truncate(needed);
        dst_blocks.truncate(needed);
        let descriptors = match self.spec.layout {
            KvLayout::Vllm | KvLayout::Mla => self.pages(tokens, &src_blocks, &dst_blocks, false),
            KvLayout::Sglang => merge_runs(self.pages(tokens, &src_blocks, &dst_blocks, true)),
            KvLayout::Contiguous => vec![Descriptor {
                layer: self.geometry.layers - 1,
                tensor: 0,
                src_offset: 0,
                dst_offset: 0,
                bytes: self.spec.model.kv_bytes(tokens, self.spec.tp)?,
            }],
        };
        let wrs = slice(&descriptors, self.spec.max_wr_bytes);
        let bytes = descriptors.iter().map(|d| d.bytes).sum();
        Ok(RequestPlan {
            request,
            tokens,
            src_blocks,
            dst_blocks,
            descriptors,
            wrs,
            bytes,
        })
    }

    /// One descriptor per page, per tensor, per layer, layer-major. With
    /// `used_only` the last page carries only the tokens in use (SGLang);
    /// otherwise every page is whole (vLLM moves block_len).
    fn pages(&self, tokens: u64, src: &[u32], dst: &[u32], used_only: bool) -> Vec<Descriptor> {
        let g = &self.geometry;
        let page = g.page_bytes();
        let tail_tokens = tokens % u64::from(g.block_tokens);
        let last_bytes = if used_only && tail_tokens != 0 {
            tail_tokens * g.token_bytes
        } else {
            page
        };
        let mut out = Vec::with_capacity((g.layers * g.tensors) as usize * src.len());
        for layer in 0..g.layers {
            for tensor in 0..g.tensors {
                for (i, (&s, &d)) in src.iter().zip(dst).enumerate() {
                    out.push(Descriptor {
                        layer,
                        tensor,
                        src_offset: g.page_offset(layer, tensor, s),
                        dst_offset: g.page_offset(layer, tensor, d),
                        bytes: if i + 1 == src.len() { last_bytes } else { page },
                    });
                }
            }
        }
        out
    }
}

/// Merges neighbours that are contiguous on both sides (next src offset ==
/// previous src end and next dst offset == previous dst end, same layer
/// and tensor), as SGLang's `group_concurrent_contiguous` does; never
/// across a gap on either side.
fn merge_runs(pages: Vec<Descriptor>) -> Vec<Descriptor> {
    let mut out: Vec<Descriptor> = Vec::with_capacity(pages.len());
    for page in pages {
        if let Some(run) = out.last_mut() {
            if run.layer == page.layer
                && run.tensor == page.tensor
                && run.src_offset + run.bytes == page.src_offset
                && run.dst_offset + run.bytes == page.dst_offset
            {
                run.bytes += page.bytes;
                continue;
            }
        }
        out.push(page);
    }
    out
}

/// Cuts every descriptor into pieces of at most `max_wr_bytes`, keeping
/// the layer order (stable).
fn slice(descriptors: &[Descriptor], max_wr_bytes: u64) -> Vec<Descriptor> {
    let mut wrs = Vec::new();
    for d in descriptors {
        let mut done = 0;
        while done < d.bytes {
            let bytes = (d.bytes - done).min(max_wr_bytes);
            wrs.push(Descriptor {
                src_offset: d.src_offset + done,
                dst_offset: d.dst_offset + done,
                bytes,
                ..*d
            });
            done += bytes;
        }
    }
    wrs.sort_by_key(|w| w.layer);
    wrs
}

/// The number of descriptors a layout lists for `tokens` tokens with
/// consecutive (unfragmented) pools: the formula the plans are tested
/// against.
///
/// - vllm, mla: tensors · L · ceil(C / B), whatever the fragmentation.
/// - sglang: tensors · L when the request's pages are consecutive on both
///   sides (`fragmentation_zero`, and the request does not wrap past the
///   pool's last page: see docs/workloads/kv.md); `None` otherwise, since
///   the count then depends on the shuffle.
/// - contiguous: 1.
pub fn descriptor_formula(
    layout: KvLayout,
    geometry: &PoolGeometry,
    tokens: u64,
    fragmentation_zero: bool,
) -> Option<u64> {
    let per_layer = u64::from(geometry.tensors) * u64::from(geometry.layers);
    match layout {
        KvLayout::Vllm | KvLayout::Mla => Some(per_layer * geometry.blocks_for(tokens)),
        KvLayout::Sglang => fragmentation_zero.then_some(per_layer),
        KvLayout::Contiguous => Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(model: KvModel, layout: KvLayout, fragmentation: f64) -> KvPlanSpec {
        KvPlanSpec {
            model,
            tp: 1,
            layout,
            block_tokens: 16,
            pool_blocks: 64,
            fragmentation,
            max_wr_bytes: 65536,
            seed: 1234,
        }
    }

    fn small() -> KvModel {
        "L=4,H_kv=2,D=64,P=2".parse().unwrap()
    }

    /// Checks what every plan must satisfy: ranges inside the pool, bytes
    /// conserved by slicing, WRs within the size limit and layer-sorted, no
    /// two WRs overlapping at the destination.
    fn check_invariants(plan: &RequestPlan, g: &PoolGeometry, max_wr: u64) {
        let total = g.total_bytes();
        for d in plan.descriptors.iter().chain(&plan.wrs) {
            assert!(d.bytes > 0);
            assert!(d.src_offset + d.bytes <= total, "{d:?} past {total}");
            assert!(d.dst_offset + d.bytes <= total, "{d:?} past {total}");
            assert!(d.layer < g.layers && d.tensor < g.tensors);
        }
        assert_eq!(
            plan.bytes,
            plan.descriptors.iter().map(|d| d.bytes).sum::<u64>()
        );
        assert_eq!(plan.bytes, plan.wrs.iter().map(|d| d.bytes).sum::<u64>());
        assert!(plan.wrs.iter().all(|w| w.bytes <= max_wr));
        assert!(plan.wrs.windows(2).all(|w| w[0].layer <= w[1].layer));
        assert!(plan
            .descriptors
            .windows(2)
            .all(|w| w[0].layer <= w[1].layer));
        let mut dst: Vec<_> = plan
            .wrs
            .iter()
            .map(|w| (w.dst_offset, w.dst_offset + w.bytes))
            .collect();
        dst.sort_unstable();
        assert!(dst.windows(2).all(|w| w[0].1 <= w[1].0), "dst overlap");
        let mut src: Vec<_> = plan
            .wrs
            .iter()
            .map(|w| (w.src_offset, w.src_offset + w.bytes))
            .collect();
        src.sort_unstable();
        assert!(src.windows(2).all(|w| w[0].1 <= w[1].0), "src overlap");
    }

    #[test]
    fn vllm_lists_every_page_whole() {
        let model = KvModel::cfg_a();
        for tokens in [1, 15, 16, 17, 100, 1024] {
            let mut planner = KvPlanner::new(spec(model.clone(), KvLayout::Vllm, 0.0)).unwrap();
            let g = planner.geometry();
            let plan = planner.plan(0, tokens).unwrap();
            let blocks = tokens.div_ceil(16);
            assert_eq!(plan.descriptors.len() as u64, 2 * 32 * blocks);
            assert_eq!(
                Some(plan.descriptors.len() as u64),
                descriptor_formula(KvLayout::Vllm, &g, tokens, true)
            );
            assert!(plan.descriptors.iter().all(|d| d.bytes == g.page_bytes()));
            assert_eq!(plan.bytes, 2 * 32 * blocks * g.page_bytes());
            check_invariants(&plan, &g, 65536);
        }
    }

    #[test]
    fn vllm_count_holds_when_fragmented() {
        let mut planner = KvPlanner::new(spec(small(), KvLayout::Vllm, 1.0)).unwrap();
        let g = planner.geometry();
        for r in 0..10 {
            let plan = planner.plan(r, 200).unwrap();
            assert_eq!(
                Some(plan.descriptors.len() as u64),
                descriptor_formula(KvLayout::Vllm, &g, 200, false)
            );
            let i = 3;
            let d = plan.descriptors[i];
            assert_eq!(d.src_offset, g.page_offset(0, 0, plan.src_blocks[i]));
            assert_eq!(d.dst_offset, g.page_offset(0, 0, plan.dst_blocks[i]));
            check_invariants(&plan, &g, 65536);
        }
    }

    #[test]
    fn sglang_without_fragmentation_merges_to_one_run_per_tensor_and_layer() {
        for (model, tokens) in [(KvModel::cfg_a(), 1000), (KvModel::deepseek_v3(), 512)] {
            let mut planner = KvPlanner::new(spec(model.clone(), KvLayout::Sglang, 0.0)).unwrap();
            let g = planner.geometry();
            let plan = planner.plan(0, tokens).unwrap();
            let expected = u64::from(g.tensors) * u64::from(g.layers);
            assert_eq!(plan.descriptors.len() as u64, expected);
            assert_eq!(
                descriptor_formula(KvLayout::Sglang, &g, tokens, true),
                Some(expected)
            );
            // Only the tokens in use move: exactly the model's KV bytes.
            assert_eq!(plan.bytes, model.kv_bytes(tokens, 1).unwrap());
            for d in &plan.descriptors {
                assert_eq!(d.bytes, tokens * g.token_bytes);
            }
            check_invariants(&plan, &g, 65536);
        }
    }

    #[test]
    fn sglang_last_page_carries_only_used_tokens() {
        let mut planner = KvPlanner::new(spec(small(), KvLayout::Sglang, 1.0)).unwrap();
        let g = planner.geometry();
        let plan = planner.plan(0, 37).unwrap();
        assert_eq!(plan.bytes, small().kv_bytes(37, 1).unwrap());
        check_invariants(&plan, &g, 65536);
    }

    #[test]
    fn sglang_never_merges_across_a_gap() {
        for seed in 0..20 {
            let mut s = spec(small(), KvLayout::Sglang, 0.5);
            s.seed = seed;
            s.pool_blocks = 32;
            let mut planner = KvPlanner::new(s).unwrap();
            let g = planner.geometry();
            for r in 0..5 {
                let tokens = 16 * 12 + 5; // 13 pages, the last partial
                let plan = planner.plan(r, tokens).unwrap();
                check_invariants(&plan, &g, 65536);
                let n = plan.src_blocks.len();
                for layer in 0..g.layers {
                    for tensor in 0..g.tensors {
                        let runs: Vec<_> = plan
                            .descriptors
                            .iter()
                            .filter(|d| d.layer == layer && d.tensor == tensor)
                            .collect();
                        // Walk the pages; each run must cover consecutive
                        // pages that are contiguous on both sides.
                        let mut page = 0;
                        for run in &runs {
                            let first = page;
                            let mut covered = 0;
                            while covered < run.bytes {
                                assert!(page < n, "run {run:?} runs past the request");
                                let s = g.page_offset(layer, tensor, plan.src_blocks[page]);
                                let d = g.page_offset(layer, tensor, plan.dst_blocks[page]);
                                assert_eq!(s, run.src_offset + covered, "src gap inside {run:?}");
                                assert_eq!(d, run.dst_offset + covered, "dst gap inside {run:?}");
                                if page > first {
                                    assert_eq!(
                                        plan.src_blocks[page],
                                        plan.src_blocks[page - 1] + 1
                                    );
                                    assert_eq!(
                                        plan.dst_blocks[page],
                                        plan.dst_blocks[page - 1] + 1
                                    );
                                }
                                covered += if page + 1 == n {
                                    5 * g.token_bytes
                                } else {
                                    g.page_bytes()
                                };
                                page += 1;
                            }
                            assert_eq!(covered, run.bytes);
                        }
                        assert_eq!(page, n);
                        // Maximal: neighbouring runs are not contiguous on both sides.
                        for pair in runs.windows(2) {
                            assert!(
                                pair[0].src_offset + pair[0].bytes != pair[1].src_offset
                                    || pair[0].dst_offset + pair[0].bytes != pair[1].dst_offset
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn sglang_contiguous_on_one_side_only_is_not_merged() {
        // Fragmented pools with different seeds: runs can be contiguous on
        // the prefill side only; count how many pages pair up on both.
        let mut planner = KvPlanner::new(spec(small(), KvLayout::Sglang, 1.0)).unwrap();
        let plan = planner.plan(0, 16 * 64).unwrap();
        let both = plan
            .src_blocks
            .windows(2)
            .zip(plan.dst_blocks.windows(2))
            .filter(|(s, d)| s[1] == s[0] + 1 && d[1] == d[0] + 1)
            .count();
        let per_tensor = plan.src_blocks.len() - both;
        assert_eq!(plan.descriptors.len(), per_tensor * 2 * 4);
    }

    #[test]
    fn contiguous_is_one_descriptor_ready_at_the_last_layer() {
        let model = KvModel::cfg_b();
        let mut s = spec(model.clone(), KvLayout::Contiguous, 0.7);
        s.pool_blocks = 300;
        s.max_wr_bytes = 1 << 20;
        let mut planner = KvPlanner::new(s).unwrap();
        let g = planner.geometry();
        let plan = planner.plan(0, 4096).unwrap();
        assert_eq!(
            plan.descriptors,
            vec![Descriptor {
                layer: 79,
                tensor: 0,
                src_offset: 0,
                dst_offset: 0,
                bytes: 1_342_177_280,
            }]
        );
        assert_eq!(
            descriptor_formula(KvLayout::Contiguous, &g, 4096, false),
            Some(1)
        );
        assert_eq!(plan.wrs.len(), 1280);
        assert!(plan.wrs_of_layers(0..79).is_empty());
        assert_eq!(plan.wrs_of_layers(79..80).len(), 1280);
        check_invariants(&plan, &g, 1 << 20);
    }

    #[test]
    fn mla_layout_is_one_page_per_layer() {
        let mut s = spec(KvModel::deepseek_v3(), KvLayout::Mla, 0.3);
        s.tp = 8;
        let mut planner = KvPlanner::new(s).unwrap();
        let g = planner.geometry();
        assert_eq!(g.tensors, 1);
        let plan = planner.plan(0, 300).unwrap();
        assert_eq!(plan.descriptors.len() as u64, 61 * 19);
        assert_eq!(
            descriptor_formula(KvLayout::Mla, &g, 300, false),
            Some(61 * 19)
        );
        assert!(plan.descriptors.iter().all(|d| d.tensor == 0));
        check_invariants(&plan, &g, 65536);
        assert!(matches!(
            KvPlanner::new(spec(KvModel::cfg_a(), KvLayout::Mla, 0.0)),
            Err(KvError::MlaLayoutNeedsMla { .. })
        ));
    }

    #[test]
    fn slicing_respects_the_limit_and_conserves_bytes() {
        for max_wr in [7, 1000, 4096, 65536, 1 << 30] {
            for layout in KvLayout::ALL {
                let model = if layout == KvLayout::Mla {
                    "L=4,H_kv=1,D=64,MLA=1".parse().unwrap()
                } else {
                    small()
                };
                let mut s = spec(model, layout, 0.4);
                s.max_wr_bytes = max_wr;
                let mut planner = KvPlanner::new(s).unwrap();
                let g = planner.geometry();
                let plan = planner.plan(0, 250).unwrap();
                check_invariants(&plan, &g, max_wr);
                let expected: u64 = plan
                    .descriptors
                    .iter()
                    .map(|d| d.bytes.div_ceil(max_wr))
                    .sum();
                assert_eq!(plan.wrs.len() as u64, expected, "{layout} {max_wr}");
            }
        }
    }

    #[test]
    fn wrs_of_layers_selects_contiguous_slices() {
        let mut s = spec(small(), KvLayout::Vllm, 1.0);
        s.max_wr_bytes = 1000;
        let mut planner = KvPlanner::new(s).unwrap();
        let plan = planner.plan(0, 100).unwrap();
        let mut joined = Vec::new();
        for layer in 0..4 {
            let part = plan.wrs_of_layers(layer..layer + 1);
            assert!(!part.is_empty());
            assert!(part.iter().all(|w| w.layer == layer));
            joined.extend_from_slice(part);
        }
        assert_eq!(joined, plan.wrs);
        assert_eq!(plan.wrs_of_layers(0..4), &plan.wrs[..]);
        assert_eq!(plan.wrs_of_layers(1..3).len(), plan.wrs.len() / 2);
        assert!(plan.wrs_of_layers(2..2).is_empty());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 3..1;
        assert!(plan.wrs_of_layers(backwards).is_empty());
        assert!(plan.wrs_of_layers(4..10).is_empty());
    }

    #[test]
    fn plans_are_deterministic_and_sides_differ() {
        let run = || {
            let mut planner = KvPlanner::new(spec(small(), KvLayout::Sglang, 0.8)).unwrap();
            (0..4)
                .map(|r| planner.plan(r, 150).unwrap())
                .collect::<Vec<_>>()
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        assert_ne!(a[0].src_blocks, a[0].dst_blocks);
        // Unfragmented pools hand out the same ids on both sides.
        let mut planner = KvPlanner::new(spec(small(), KvLayout::Vllm, 0.0)).unwrap();
        let plan = planner.plan(0, 150).unwrap();
        assert_eq!(plan.src_blocks, (0..10).collect::<Vec<_>>());
        assert_eq!(plan.src_blocks, plan.dst_blocks);
        assert_eq!(planner.plan(1, 16).unwrap().src_blocks, vec![10]);
    }

    #[test]
    fn every_request_stays_inside_the_pool() {
        for layout in [KvLayout::Vllm, KvLayout::Sglang, KvLayout::Contiguous] {
            let mut s = spec(KvModel::cfg_a(), layout, 0.9);
            s.tp = 4;
            s.pool_blocks = 40;
            let mut planner = KvPlanner::new(s).unwrap();
            let g = planner.geometry();
            for (r, tokens) in [1u64, 640, 639, 17, 320, 5].into_iter().enumerate() {
                let plan = planner.plan(r as u32, tokens).unwrap();
                assert_eq!(plan.request, r as u32);
                assert_eq!(plan.tokens, tokens);
                check_invariants(&plan, &g, 65536);
            }
        }
    }

    #[test]
    fn rejects_bad_requests_and_specs() {
        let mut planner = KvPlanner::new(spec(small(), KvLayout::Vllm, 0.0)).unwrap();
        assert_eq!(planner.plan(0, 0), Err(KvError::ZeroTokens));
        let err = planner.plan(0, 64 * 16 + 1).unwrap_err();
        assert_eq!(
            err,
            KvError::PoolExhausted {
                needed: 65,
                blocks: 64
            }
        );
        assert!(err.to_string().contains("--pool-blocks is 64"));
        assert_eq!(planner.check_prompt(64 * 16), Ok(64));
        assert!(planner.check_prompt(u64::MAX).is_err());
        // A rejected request leaves the free lists untouched.
        assert_eq!(planner.plan(0, 16).unwrap().src_blocks, vec![0]);

        let mut s = spec(small(), KvLayout::Vllm, 0.0);
        s.max_wr_bytes = 0;
        assert_eq!(KvPlanner::new(s).unwrap_err(), KvError::ZeroMaxWr);
        let mut s = spec(small(), KvLayout::Vllm, 0.0);
        s.block_tokens = 0;
        assert_eq!(KvPlanner::new(s).unwrap_err(), KvError::BlockTokens(0));
        let s = spec(small(), KvLayout::Vllm, 1.5);
        assert_eq!(KvPlanner::new(s).unwrap_err(), KvError::Fragmentation(1.5));
        let mut s = spec(small(), KvLayout::Vllm, 0.0);
        s.tp = 3;
        assert!(matches!(KvPlanner::new(s), Err(KvError::TpMismatch { .. })));
    }
}
