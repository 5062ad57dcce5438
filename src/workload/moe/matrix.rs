//! The dispatch matrix of one MoE layer: bytes and token copies each rank
//! sends each rank, built from a [`Routing`], with the combine (reverse)
//! direction and the padded fixed payloads of low-latency dispatch.
//!
//! Local traffic (src == dst) is kept on the diagonal and reported apart from
//! network traffic, because it never crosses the fabric. This module owns the
//! counting only: which QP carries which pair is the engine's business.
//!
//! # One copy per expert or per rank
//!
//! The draft's formula `T_dispatch = B·k·H_model·P_bytes / N` (§7.1) counts k
//! copies of every token, one per selected expert, even when several of its
//! experts live on the same rank; [`DispatchCopies::PerExpert`] does the same
//! and is what DeepEP's low-latency kernels send (each token is written into
//! each selected expert's receive slot). DeepEP's normal (high-throughput)
//! dispatch sends a token once to each rank that hosts any of its experts and
//! fans it out locally; that is [`DispatchCopies::PerRank`], which moves fewer
//! bytes than the formula whenever `k` experts share ranks.
//!
//! # Low-latency padding
//!
//! Appendix D, Table 12: low-latency dispatch has a "fixed (padded to max)"
//! payload per GPU pair, because CUDA-graph kernels need static shapes. A
//! padded matrix ([`DispatchMatrix::padded`]) sends the same slot of bytes on
//! every pair, empty pairs and the local pair included, while the token counts
//! stay the real ones. DeepEP sizes that slot for the worst case rather than
//! the observed maximum; [`static_slot_bytes`] gives that bound for
//! [`DispatchMatrix::padded_to_slot`].

use std::fmt;
use std::str::FromStr;

use super::{ExpertPlacement, MoeConfig, Routing};
use crate::workload::WorkloadError;

/// How many copies of a token travel to a rank hosting several of its experts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DispatchCopies {
    /// One copy per selected expert (the draft's formula; DeepEP low-latency).
    #[default]
    PerExpert,
    /// One copy per destination rank (DeepEP normal dispatch).
    PerRank,
}

impl fmt::Display for DispatchCopies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PerExpert => "per-expert",
            Self::PerRank => "per-rank",
        })
    }
}

/// Parses `per-expert` or `per-rank` (any case).
impl FromStr for DispatchCopies {
    type Err = WorkloadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "per-expert" => Ok(Self::PerExpert),
            "per-rank" => Ok(Self::PerRank),
            _ => Err(WorkloadError::ConfigSyntax {
                item: s.trim().to_string(),
                reason: "dispatch copies must be per-expert or per-rank".to_string(),
            }),
        }
    }
}

/// The worst-case bytes one rank can send one rank in a dispatch of
/// `tokens_per_rank` tokens: every token selects `min(k, experts on the
/// busiest rank)` experts there (or, per rank, is sent once). A slot this size
/// fits any routing, as a static-shape kernel needs.
pub fn static_slot_bytes(
    config: &MoeConfig,
    placement: &ExpertPlacement,
    tokens_per_rank: u32,
    copies: DispatchCopies,
) -> u64 {
    let copies_per_token = match copies {
        DispatchCopies::PerExpert => {
            let busiest = placement.experts_of(0).len() as u64;
            busiest.min(u64::from(config.top_k))
        }
        DispatchCopies::PerRank => 1,
    };
    u64::from(tokens_per_rank)
        .saturating_mul(copies_per_token)
        .saturating_mul(config.token_bytes())
}

/// Bytes and token copies per ordered rank pair for one dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchMatrix {
    ranks: usize,
    /// Row-major `ranks × ranks`: `bytes[src * ranks + dst]`.
    bytes: Vec<u64>,
    /// Row-major token copies, same layout as `bytes`.
    tokens: Vec<u64>,
    dropped_assignments: u64,
    slot_bytes: Option<u64>,
}

impl DispatchMatrix {
    /// Counts the dispatch of `routing`, whose tokens carry
    /// `config.token_bytes()` bytes each, with experts placed contiguously
    /// ([`ExpertPlacement::contiguous`]). Fails when `config` has a different
    /// E than the one routed.
    pub fn build(
        config: &MoeConfig,
        routing: &Routing,
        copies: DispatchCopies,
    ) -> Result<Self, WorkloadError> {
        if routing.experts() != config.experts {
            return Err(WorkloadError::ConfigMismatch {
                config: config.name.clone(),
                config_experts: config.experts,
                routing_experts: routing.experts(),
            });
        }
        let placement = ExpertPlacement::contiguous(routing.experts(), routing.ranks())?;
        let ranks = routing.ranks() as usize;
        let mut tokens = vec![0u64; ranks * ranks];
        let mut last_dst = Vec::with_capacity(config.top_k as usize);
        for src in 0..routing.ranks() {
            let row = &mut tokens[src as usize * ranks..][..ranks];
            for token in 0..routing.tokens_per_rank() {
                last_dst.clear();
                for &expert in routing.experts_of(src, token) {
                    let dst = placement.rank_of(expert);
                    // Experts are ascending, so one token's ranks are too.
                    if copies == DispatchCopies::PerRank && last_dst.last() == Some(&dst) {
                        continue;
                    }
                    last_dst.push(dst);
                    row[dst as usize] += 1;
                }
            }
        }
        let token_bytes = config.token_bytes();
        let bytes = tokens.iter().map(|t| t * token_bytes).collect();
        Ok(Self {
            ranks,
            bytes,
            tokens,
            dropped_assignments: routing.dropped_assignments(),
            slot_bytes: None,
        })
    }

    /// N.
    pub fn ranks(&self) -> u32 {
        self.ranks as u32
    }

    /// Bytes `src` sends `dst` (the local share when equal).
    pub fn bytes(&self, src: u32, dst: u32) -> u64 {
        self.bytes[self.index(src, dst)]
    }

    /// Token copies `src` sends `dst`: the real ones, also in a padded matrix.
    pub fn tokens(&self, src: u32, dst: u32) -> u64 {
        self.tokens[self.index(src, dst)]
    }

    /// The bytes `src` sends each rank, indexed by destination.
    pub fn row_bytes(&self, src: u32) -> &[u64] {
        &self.bytes[src as usize * self.ranks..][..self.ranks]
    }

    /// All bytes of the dispatch, local shares included.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }

    /// Bytes that stay on their rank (the diagonal).
    pub fn local_bytes(&self) -> u64 {
        (0..self.ranks()).map(|r| self.bytes(r, r)).sum()
    }

    /// Bytes that cross the fabric (off the diagonal).
    pub fn network_bytes(&self) -> u64 {
        self.total_bytes() - self.local_bytes()
    }

    /// Bytes `rank` sends over the fabric (its row, local share excluded).
    pub fn send_network_bytes(&self, rank: u32) -> u64 {
        self.row_bytes(rank).iter().sum::<u64>() - self.bytes(rank, rank)
    }

    /// Bytes `rank` receives over the fabric (its column, local excluded).
    pub fn recv_network_bytes(&self, rank: u32) -> u64 {
        (0..self.ranks())
            .filter(|&src| src != rank)
            .map(|src| self.bytes(src, rank))
            .sum()
    }

    /// The largest per-pair payload, local pairs included: the smallest slot
    /// that fits every pair.
    pub fn max_pair_bytes(&self) -> u64 {
        self.bytes.iter().copied().max().unwrap_or(0)
    }

    /// The largest payload on any network pair (src != dst); 0 for one rank.
    pub fn max_network_pair_bytes(&self) -> u64 {
        (0..self.ranks())
            .flat_map(|s| {
                (0..self.ranks())
                    .filter(move |&d| d != s)
                    .map(move |d| (s, d))
            })
            .map(|(s, d)| self.bytes(s, d))
            .max()
            .unwrap_or(0)
    }

    /// Mean bytes per ordered pair, local pairs included: `total / N²`, the
    /// measured counterpart of `T_dispatch` (§7.1, Appendix D).
    pub fn mean_pair_bytes(&self) -> f64 {
        self.total_bytes() as f64 / (self.ranks * self.ranks) as f64
    }

    /// Token-expert assignments dropped by the router (token-drop mode).
    pub fn dropped_assignments(&self) -> u64 {
        self.dropped_assignments
    }

    /// The fixed per-pair payload of a padded matrix; `None` when unpadded.
    pub fn slot_bytes(&self) -> Option<u64> {
        self.slot_bytes
    }

    /// The combine direction: expert outputs return to the ranks that sent the
    /// tokens, so `combine[src][dst] = dispatch[dst][src]`. A padded matrix
    /// stays padded.
    pub fn combine(&self) -> Self {
        let n = self.ranks;
        let mut out = self.clone();
        for s in 0..n {
            for d in 0..n {
                out.bytes[d * n + s] = self.bytes[s * n + d];
                out.tokens[d * n + s] = self.tokens[s * n + d];
            }
        }
        out
    }

    /// Low-latency form (Appendix D): every pair, empty and local pairs
    /// included, carries [`Self::max_pair_bytes`].
    pub fn padded(&self) -> Self {
        self.with_slot(self.max_pair_bytes())
    }

    /// Low-latency form with a fixed slot, such as [`static_slot_bytes`].
    /// Fails when a real payload would not fit the slot.
    pub fn padded_to_slot(&self, slot_bytes: u64) -> Result<Self, WorkloadError> {
        let max_pair_bytes = self.max_pair_bytes();
        if slot_bytes < max_pair_bytes {
            return Err(WorkloadError::SlotTooSmall {
                slot_bytes,
                max_pair_bytes,
            });
        }
        Ok(self.with_slot(slot_bytes))
    }

    fn with_slot(&self, slot_bytes: u64) -> Self {
        Self {
            bytes: vec![slot_bytes; self.bytes.len()],
            slot_bytes: Some(slot_bytes),
            ..self.clone()
        }
    }

    fn index(&self, src: u32, dst: u32) -> usize {
        assert!(
            (src as usize) < self.ranks && (dst as usize) < self.ranks,
            "rank pair ({src}, {dst}) outside an EP group of {} ranks",
            self.ranks
        );
        src as usize * self.ranks + dst as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::moe::{formula, Router, RoutingMode};

    fn matrix(
        mode: RoutingMode,
        c: &MoeConfig,
        n: u32,
        b: u32,
        copies: DispatchCopies,
    ) -> DispatchMatrix {
        let routing = Router::new(mode, 17).route(c, n, b).unwrap();
        DispatchMatrix::build(c, &routing, copies).unwrap()
    }

    #[test]
    fn uniform_totals_match_the_formula() {
        let c = MoeConfig::m2();
        let (n, b) = (8, 128);
        let m = matrix(RoutingMode::TopK, &c, n, b, DispatchCopies::PerExpert);
        // Σ over all pairs, local included = N·B·k·H·P.
        let per_rank =
            formula::rank_dispatch_bytes(b.into(), c.top_k, c.hidden, c.bytes_per_element);
        assert_eq!(m.total_bytes(), u64::from(n) * per_rank);
        assert_eq!(m.local_bytes() + m.network_bytes(), m.total_bytes());
        for r in 0..n {
            assert_eq!(m.row_bytes(r).iter().sum::<u64>(), per_rank);
        }
        // Mean per pair = T_dispatch exactly; each pair near it.
        let t = formula::t_dispatch_bytes(b.into(), c.top_k, c.hidden, c.bytes_per_element, n);
        assert!((m.mean_pair_bytes() - t).abs() < 1e-6);
        let sent: u64 = (0..n).map(|r| m.send_network_bytes(r)).sum();
        let received: u64 = (0..n).map(|r| m.recv_network_bytes(r)).sum();
        assert_eq!(sent, m.network_bytes());
        assert_eq!(received, m.network_bytes());
        // Network share ≈ (N−1)/N of the total.
        let share = m.network_bytes() as f64 / m.total_bytes() as f64;
        assert!(
            (share - formula::alltoall_busbw_factor(n)).abs() < 0.02,
            "{share}"
        );
        assert!(m.max_network_pair_bytes() <= m.max_pair_bytes());
        assert!((m.max_pair_bytes() as f64) < 1.5 * t);
    }

    #[test]
    fn per_rank_copies_merge_experts_on_one_rank() {
        // E=8 on N=2: 4 experts per rank, k=2 -> a token often hits one rank twice.
        let c = MoeConfig::m1();
        let per_expert = matrix(RoutingMode::TopK, &c, 2, 64, DispatchCopies::PerExpert);
        let per_rank = matrix(RoutingMode::TopK, &c, 2, 64, DispatchCopies::PerRank);
        assert!(per_rank.total_bytes() < per_expert.total_bytes());
        for s in 0..2 {
            for d in 0..2 {
                assert!(per_rank.tokens(s, d) <= 64);
                assert!(per_rank.tokens(s, d) <= per_expert.tokens(s, d));
            }
        }
        // With one expert per rank the two are the same.
        let c = MoeConfig::custom(8, 2, 64, 2).unwrap();
        assert_eq!(
            matrix(RoutingMode::TopK, &c, 8, 32, DispatchCopies::PerRank),
            matrix(RoutingMode::TopK, &c, 8, 32, DispatchCopies::PerExpert)
        );
    }

    #[test]
    fn combine_is_the_transpose() {
        let c = MoeConfig::m3();
        let m = matrix(
            RoutingMode::Zipf { alpha: 1.0 },
            &c,
            4,
            32,
            DispatchCopies::PerExpert,
        );
        let back = m.combine();
        for s in 0..4 {
            for d in 0..4 {
                assert_eq!(back.bytes(d, s), m.bytes(s, d));
                assert_eq!(back.tokens(d, s), m.tokens(s, d));
            }
            assert_eq!(back.send_network_bytes(s), m.recv_network_bytes(s));
        }
        assert_eq!(back.total_bytes(), m.total_bytes());
        assert_eq!(back.combine(), m);
    }

    #[test]
    fn padding_fills_every_pair_to_the_slot() {
        let c = MoeConfig::m3();
        let m = matrix(
            RoutingMode::ExpertChoice,
            &c,
            8,
            16,
            DispatchCopies::PerExpert,
        );
        let slot = m.max_pair_bytes();
        let p = m.padded();
        assert_eq!(p.slot_bytes(), Some(slot));
        assert_eq!(p.total_bytes(), 64 * slot);
        assert_eq!(p.local_bytes(), 8 * slot);
        assert_eq!(p.tokens(2, 5), m.tokens(2, 5));
        assert!(p.total_bytes() >= m.total_bytes());
        assert_eq!(m.slot_bytes(), None);
    }

    #[test]
    fn static_slot_fits_any_routing() {
        let c = MoeConfig::m4();
        let placement = ExpertPlacement::contiguous(256, 16).unwrap();
        let slot = static_slot_bytes(&c, &placement, 16, DispatchCopies::PerExpert);
        assert_eq!(slot, 16 * 8 * c.token_bytes());
        for mode in [RoutingMode::TopK, RoutingMode::Zipf { alpha: 20.0 }] {
            let m = matrix(mode, &c, 16, 16, DispatchCopies::PerExpert);
            assert_eq!(m.padded_to_slot(slot).unwrap().slot_bytes(), Some(slot));
        }
        let per_rank = static_slot_bytes(&c, &placement, 16, DispatchCopies::PerRank);
        assert_eq!(per_rank, 16 * c.token_bytes());
        let m = matrix(RoutingMode::TopK, &c, 16, 16, DispatchCopies::PerExpert);
        let err = m.padded_to_slot(1).unwrap_err();
        assert!(
            matches!(err, WorkloadError::SlotTooSmall { slot_bytes: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn hot_expert_concentrates_on_its_rank() {
        let c = MoeConfig::m3();
        let m = matrix(
            RoutingMode::Zipf { alpha: 8.0 },
            &c,
            8,
            64,
            DispatchCopies::PerExpert,
        );
        // Experts 0 and 1 (the two hottest) both live on rank 0.
        let to_rank0: u64 = (0..8).map(|s| m.bytes(s, 0)).sum();
        assert!(to_rank0 as f64 > 0.99 * m.total_bytes() as f64);
        // α = 0 is uniform: every destination near the mean.
        let u = matrix(
            RoutingMode::Zipf { alpha: 0.0 },
            &c,
            8,
            512,
            DispatchCopies::PerExpert,
        );
        let mean = u.total_bytes() as f64 / 8.0;
        for d in 0..8 {
            let col: u64 = (0..8).map(|s| u.bytes(s, d)).sum();
            assert!(
                (col as f64 - mean).abs() < 0.1 * mean,
                "rank {d}: {col} vs {mean}"
            );
        }
    }

    #[test]
    fn token_drop_is_visible_in_the_matrix() {
        let c = MoeConfig::m2();
        let m = matrix(
            RoutingMode::TokenDrop {
                capacity_factor: 0.75,
            },
            &c,
            8,
            64,
            DispatchCopies::PerExpert,
        );
        assert!(m.dropped_assignments() > 0);
        assert_eq!(
            m.total_bytes() + m.dropped_assignments() * c.token_bytes(),
            8 * 64 * 4 * c.token_bytes()
        );
    }

    #[test]
    fn idle_ranks_receive_nothing() {
        // M1 (E=8) on N=12: ranks 8..12 host no expert.
        let c = MoeConfig::m1();
        let m = matrix(RoutingMode::TopK, &c, 12, 16, DispatchCopies::PerExpert);
        for r in 8..12 {
            assert_eq!(m.recv_network_bytes(r), 0);
            assert!(m.send_network_bytes(r) > 0);
        }
    }

    #[test]
    fn rejects_a_routing_of_another_config() {
        let routing = Router::new(RoutingMode::TopK, 1)
            .route(&MoeConfig::m1(), 4, 4)
            .unwrap();
        let err = DispatchMatrix::build(&MoeConfig::m2(), &routing, DispatchCopies::PerExpert)
            .unwrap_err();
        assert!(matches!(
            err,
            WorkloadError::ConfigMismatch {
                config_experts: 64,
                routing_experts: 8,
                ..
            }
        ));
    }

    #[test]
    fn copies_parse_and_print() {
        for c in [DispatchCopies::PerExpert, DispatchCopies::PerRank] {
            assert_eq!(c.to_string().parse::<DispatchCopies>().unwrap(), c);
        }
        assert!("per-node".parse::<DispatchCopies>().is_err());
    }
}
