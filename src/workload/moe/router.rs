//! A seeded, deterministic MoE router: for N ranks holding B tokens each, it
//! picks each token's experts according to a [`RoutingMode`].
//!
//! Tokens are numbered globally, `token = rank · B + index`. The same seed,
//! inputs and `fastrand` version give the same routing on every machine, so
//! both ends of a benchmark can build the same dispatch plan independently.
//! Scores are not modelled: where a real router takes the top-scoring experts
//! (or tokens), this one draws them at random, which is what a benchmark of
//! the fabric needs: the traffic shape, not the model's choices.
//!
//! This module owns expert selection only; bytes and ranks are counted in
//! [`super::DispatchMatrix`].

use super::{MoeConfig, RoutingMode};
use crate::workload::WorkloadError;

/// The most token-expert assignments (`N·B·k`) one routing holds: 2³¹, about
/// 8 GiB of expert ids, far above any EP dispatch (N=96, B=512, k=8 is 393,216).
pub const MAX_ASSIGNMENTS: u64 = 1 << 31;

/// A routing function: a mode and the seed of its random draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Router {
    /// How experts are picked.
    pub mode: RoutingMode,
    /// Seed of the random draws.
    pub seed: u64,
}

/// The experts chosen for every token of one dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    mode: RoutingMode,
    ranks: u32,
    tokens_per_rank: u32,
    experts: u32,
    /// `offsets[t]..offsets[t + 1]` indexes `expert_ids` for global token t.
    offsets: Vec<usize>,
    /// Chosen experts, ascending within each token.
    expert_ids: Vec<u32>,
    dropped_assignments: u64,
}

impl Router {
    /// A router for `mode`, seeded with `seed`.
    pub fn new(mode: RoutingMode, seed: u64) -> Self {
        Self { mode, seed }
    }

    /// Routes `tokens_per_rank` tokens on each of `ranks` ranks to the experts
    /// of `config`.
    ///
    /// Fails on an invalid config or mode, `ranks = 0`, `tokens_per_rank = 0`,
    /// a dispatch whose byte count overflows 64 bits or whose `N·B·k` exceeds
    /// [`MAX_ASSIGNMENTS`], or (expert choice) when
    /// `N·B·k` is not a multiple of E, because every expert must take the same
    /// whole number of tokens.
    pub fn route(
        &self,
        config: &MoeConfig,
        ranks: u32,
        tokens_per_rank: u32,
    ) -> Result<Routing, WorkloadError> {
        config.validate()?;
        self.mode.validate()?;
        if ranks == 0 {
            return Err(WorkloadError::ZeroRanks);
        }
        if tokens_per_rank == 0 {
            return Err(WorkloadError::ZeroTokens);
        }
        let assignments = u64::from(ranks) * u64::from(tokens_per_rank) * u64::from(config.top_k);
        let fits = assignments <= MAX_ASSIGNMENTS
            && assignments.checked_mul(config.token_bytes()).is_some();
        if !fits {
            return Err(WorkloadError::TooLarge {
                ranks,
                tokens_per_rank,
                top_k: config.top_k,
                token_bytes: config.token_bytes(),
            });
        }
        let tokens = ranks as usize * tokens_per_rank as usize;
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let (lists, dropped) = match self.mode {
            RoutingMode::TopK => (top_k(&mut rng, config, tokens), 0),
            RoutingMode::AuxLoss => (aux_loss(&mut rng, config, tokens), 0),
            RoutingMode::Zipf { alpha } => (zipf(&mut rng, config, tokens, alpha), 0),
            RoutingMode::ExpertChoice => {
                if assignments % u64::from(config.experts) != 0 {
                    return Err(expert_choice_infeasible(config, ranks, tokens_per_rank));
                }
                let capacity = (assignments / u64::from(config.experts)) as usize;
                (expert_choice(&mut rng, config, tokens, capacity), 0)
            }
            RoutingMode::TokenDrop { capacity_factor } => {
                let fair = assignments as f64 / f64::from(config.experts);
                let capacity = (capacity_factor * fair).ceil() as u64;
                let mut lists = top_k(&mut rng, config, tokens);
                let dropped = drop_over_capacity(&mut rng, config, &mut lists, capacity);
                (lists, dropped)
            }
        };
        let mut offsets = Vec::with_capacity(tokens + 1);
        let mut expert_ids = Vec::with_capacity(assignments as usize);
        offsets.push(0);
        for mut list in lists {
            list.sort_unstable();
            expert_ids.extend_from_slice(&list);
            offsets.push(expert_ids.len());
        }
        Ok(Routing {
            mode: self.mode,
            ranks,
            tokens_per_rank,
            experts: config.experts,
            offsets,
            expert_ids,
            dropped_assignments: dropped,
        })
    }
}

impl Routing {
    /// The mode that produced this routing.
    pub fn mode(&self) -> RoutingMode {
        self.mode
    }

    /// N.
    pub fn ranks(&self) -> u32 {
        self.ranks
    }

    /// B.
    pub fn tokens_per_rank(&self) -> u32 {
        self.tokens_per_rank
    }

    /// E.
    pub fn experts(&self) -> u32 {
        self.experts
    }

    /// The experts of token `token` (0..B) on rank `rank` (0..N), ascending.
    /// Empty for a token expert choice skipped or whose experts all dropped it.
    pub fn experts_of(&self, rank: u32, token: u32) -> &[u32] {
        let t = rank as usize * self.tokens_per_rank as usize + token as usize;
        &self.expert_ids[self.offsets[t]..self.offsets[t + 1]]
    }

    /// Token copies sent to experts (token-expert assignments), drops excluded.
    pub fn assignments(&self) -> u64 {
        self.expert_ids.len() as u64
    }

    /// Token-expert assignments dropped for exceeding an expert's capacity
    /// (token-drop mode only; 0 otherwise). A token that loses one of its k
    /// experts counts 1.
    pub fn dropped_assignments(&self) -> u64 {
        self.dropped_assignments
    }

    /// Tokens each expert receives, indexed by expert.
    pub fn expert_loads(&self) -> Vec<u64> {
        let mut loads = vec![0u64; self.experts as usize];
        for &e in &self.expert_ids {
            loads[e as usize] += 1;
        }
        loads
    }
}

fn expert_choice_infeasible(config: &MoeConfig, ranks: u32, tokens_per_rank: u32) -> WorkloadError {
    let per_b = u64::from(ranks) * u64::from(config.top_k);
    let experts = u64::from(config.experts);
    WorkloadError::ExpertChoiceInfeasible {
        ranks,
        tokens_per_rank,
        top_k: config.top_k,
        experts: config.experts,
        assignments: per_b * u64::from(tokens_per_rank),
        b_step: experts / gcd(per_b, experts),
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// k distinct experts per token, uniformly: a partial Fisher–Yates shuffle of
/// a reused permutation (any starting permutation gives a uniform k-subset).
fn top_k(rng: &mut fastrand::Rng, config: &MoeConfig, tokens: usize) -> Vec<Vec<u32>> {
    let (e, k) = (config.experts, config.top_k as usize);
    let mut perm: Vec<u32> = (0..e).collect();
    (0..tokens)
        .map(|_| {
            for i in 0..k {
                let j = rng.usize(i..e as usize);
                perm.swap(i, j);
            }
            perm[..k].to_vec()
        })
        .collect()
}

/// Near-uniform top-k: each of the k picks draws two distinct candidates not
/// yet chosen for this token and keeps the one with fewer tokens so far.
fn aux_loss(rng: &mut fastrand::Rng, config: &MoeConfig, tokens: usize) -> Vec<Vec<u32>> {
    let (e, k) = (config.experts as usize, config.top_k as usize);
    let mut perm: Vec<u32> = (0..config.experts).collect();
    let mut loads = vec![0u64; e];
    (0..tokens)
        .map(|_| {
            for i in 0..k {
                let a = rng.usize(i..e);
                perm.swap(i, a);
                if i + 1 < e {
                    let b = rng.usize(i + 1..e);
                    if loads[perm[b] as usize] < loads[perm[i] as usize] {
                        perm.swap(i, b);
                    }
                }
                loads[perm[i] as usize] += 1;
            }
            perm[..k].to_vec()
        })
        .collect()
}

/// k distinct experts per token drawn without replacement with weight
/// `1/(e+1)^alpha`, by the Gumbel-top-k trick: the k largest of
/// `ln w_e + G_e` (G_e standard Gumbel noise) are a weighted sample without
/// replacement. Working with `ln w_e = −alpha·ln(e+1)` keeps huge exponents
/// exact where the weights themselves would underflow.
fn zipf(rng: &mut fastrand::Rng, config: &MoeConfig, tokens: usize, alpha: f64) -> Vec<Vec<u32>> {
    let k = config.top_k as usize;
    let log_weights: Vec<f64> = (0..config.experts)
        .map(|e| -alpha * f64::from(e + 1).ln())
        .collect();
    let mut keys: Vec<(f64, u32)> = Vec::with_capacity(log_weights.len());
    (0..tokens)
        .map(|_| {
            keys.clear();
            keys.extend(log_weights.iter().zip(0..).map(|(lw, e)| {
                let gumbel = -(-rng.f64().ln()).ln();
                (lw + gumbel, e)
            }));
            if k < keys.len() {
                keys.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            }
            keys[..k].iter().map(|&(_, e)| e).collect()
        })
        .collect()
}

/// Each expert takes `capacity` distinct tokens drawn uniformly from all
/// tokens of the group.
fn expert_choice(
    rng: &mut fastrand::Rng,
    config: &MoeConfig,
    tokens: usize,
    capacity: usize,
) -> Vec<Vec<u32>> {
    let mut lists = vec![Vec::new(); tokens];
    let mut perm: Vec<usize> = (0..tokens).collect();
    for expert in 0..config.experts {
        for i in 0..capacity {
            let j = rng.usize(i..tokens);
            perm.swap(i, j);
            lists[perm[i]].push(expert);
        }
    }
    lists
}

/// Walks tokens in a seeded random order (like DeepSpeed's random token
/// selection, so no rank is favoured by its position) and drops every
/// assignment to an expert that already holds `capacity` tokens.
fn drop_over_capacity(
    rng: &mut fastrand::Rng,
    config: &MoeConfig,
    lists: &mut [Vec<u32>],
    capacity: u64,
) -> u64 {
    let mut order: Vec<usize> = (0..lists.len()).collect();
    rng.shuffle(&mut order);
    let mut loads = vec![0u64; config.experts as usize];
    let mut dropped = 0;
    for t in order {
        lists[t].retain(|&e| {
            let load = &mut loads[e as usize];
            if *load < capacity {
                *load += 1;
                true
            } else {
                dropped += 1;
                false
            }
        });
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(mode: RoutingMode, config: &MoeConfig, ranks: u32, b: u32, seed: u64) -> Routing {
        Router::new(mode, seed).route(config, ranks, b).unwrap()
    }

    fn is_distinct_sorted(list: &[u32]) -> bool {
        list.windows(2).all(|w| w[0] < w[1])
    }

    #[test]
    fn top_k_gives_k_distinct_experts_per_token() {
        let c = MoeConfig::m2();
        let r = route(RoutingMode::TopK, &c, 8, 64, 1);
        for rank in 0..8 {
            for t in 0..64 {
                let list = r.experts_of(rank, t);
                assert_eq!(list.len(), 4);
                assert!(is_distinct_sorted(list));
                assert!(list.iter().all(|&e| e < 64));
            }
        }
        assert_eq!(r.assignments(), 8 * 64 * 4);
        assert_eq!(r.dropped_assignments(), 0);
    }

    #[test]
    fn same_seed_same_routing_other_seed_differs() {
        let c = MoeConfig::m3();
        for mode in [
            RoutingMode::TopK,
            RoutingMode::ExpertChoice,
            RoutingMode::TokenDrop {
                capacity_factor: 0.8,
            },
            RoutingMode::AuxLoss,
            RoutingMode::Zipf { alpha: 1.0 },
        ] {
            let a = route(mode, &c, 8, 64, 42);
            assert_eq!(a, route(mode, &c, 8, 64, 42), "{mode}");
            assert_ne!(a, route(mode, &c, 8, 64, 43), "{mode}");
        }
    }

    #[test]
    fn k_equal_e_selects_every_expert() {
        let c = MoeConfig::custom(4, 4, 8, 2).unwrap();
        for mode in [
            RoutingMode::TopK,
            RoutingMode::AuxLoss,
            RoutingMode::Zipf { alpha: 3.0 },
        ] {
            let r = route(mode, &c, 2, 5, 7);
            for t in 0..5 {
                assert_eq!(r.experts_of(1, t), &[0, 1, 2, 3], "{mode}");
            }
        }
    }

    #[test]
    fn expert_choice_balances_expert_loads() {
        let c = MoeConfig::m2();
        let r = route(RoutingMode::ExpertChoice, &c, 8, 128, 3);
        let capacity = 8 * 128 * 4 / 64;
        assert!(r.expert_loads().iter().all(|&l| l == capacity));
        // Tokens get a variable number of experts, so per-token counts differ.
        let counts: Vec<usize> = (0..128).map(|t| r.experts_of(0, t).len()).collect();
        assert!(counts.iter().min() < counts.iter().max());
        assert!((0..128).all(|t| is_distinct_sorted(r.experts_of(0, t))));
    }

    #[test]
    fn expert_choice_rejects_uneven_capacity() {
        // N·B·k = 3·5·2 = 30 slots over E=8 experts.
        let c = MoeConfig::m1();
        let err = Router::new(RoutingMode::ExpertChoice, 0)
            .route(&c, 3, 5)
            .unwrap_err();
        assert!(
            matches!(
                err,
                WorkloadError::ExpertChoiceInfeasible {
                    assignments: 30,
                    b_step: 4,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("multiple of 4"));
    }

    #[test]
    fn token_drop_counts_drops_below_capacity_factor_one() {
        let c = MoeConfig::m2();
        let r = route(
            RoutingMode::TokenDrop {
                capacity_factor: 0.5,
            },
            &c,
            8,
            128,
            5,
        );
        let capacity = (0.5_f64 * (8.0 * 128.0 * 4.0) / 64.0).ceil() as u64;
        assert!(r.expert_loads().iter().all(|&l| l <= capacity));
        // At least half the slots cannot fit: 64 experts · capacity kept at most.
        assert!(r.dropped_assignments() >= 8 * 128 * 4 - 64 * capacity);
        assert_eq!(r.assignments() + r.dropped_assignments(), 8 * 128 * 4);
    }

    #[test]
    fn token_drop_with_ample_capacity_equals_top_k() {
        let c = MoeConfig::m2();
        let dropless = route(
            RoutingMode::TokenDrop {
                capacity_factor: 100.0,
            },
            &c,
            4,
            32,
            9,
        );
        let top_k = route(RoutingMode::TopK, &c, 4, 32, 9);
        assert_eq!(dropless.dropped_assignments(), 0);
        assert_eq!(dropless.expert_ids, top_k.expert_ids);
    }

    #[test]
    fn aux_loss_is_closer_to_uniform_than_top_k() {
        let c = MoeConfig::m3();
        let spread = |mode| {
            let loads = route(mode, &c, 16, 128, 11).expert_loads();
            loads.iter().max().unwrap() - loads.iter().min().unwrap()
        };
        let aux = spread(RoutingMode::AuxLoss);
        let top_k = spread(RoutingMode::TopK);
        // Mean load 16: top-k spreads like Poisson(16), aux-loss within a few.
        assert!(aux <= 6 && 2 * aux < top_k, "aux-loss {aux}, top-k {top_k}");
    }

    #[test]
    fn zipf_skews_toward_expert_zero() {
        let c = MoeConfig::m3();
        let loads = route(RoutingMode::Zipf { alpha: 1.5 }, &c, 8, 128, 2).expert_loads();
        assert!(loads[0] > loads[10] && loads[10] > loads[200]);
        let r = route(RoutingMode::Zipf { alpha: 50.0 }, &c, 4, 16, 2);
        for t in 0..16 {
            assert_eq!(r.experts_of(3, t), &[0, 1]);
        }
    }

    #[test]
    fn rejects_zero_ranks_and_tokens() {
        let c = MoeConfig::m1();
        let router = Router::new(RoutingMode::TopK, 0);
        assert_eq!(
            router.route(&c, 0, 8).unwrap_err(),
            WorkloadError::ZeroRanks
        );
        assert_eq!(
            router.route(&c, 8, 0).unwrap_err(),
            WorkloadError::ZeroTokens
        );
        let bad = MoeConfig {
            top_k: 9,
            ..MoeConfig::m1()
        };
        assert!(matches!(
            router.route(&bad, 8, 8).unwrap_err(),
            WorkloadError::TopKExceedsExperts { .. }
        ));
        // Too many assignments to hold, then too many bytes to count.
        let small = MoeConfig::custom(256, 8, 64, 2).unwrap();
        assert!(matches!(
            router.route(&small, 1024, u32::MAX).unwrap_err(),
            WorkloadError::TooLarge { .. }
        ));
        let wide = MoeConfig::custom(256, 256, u32::MAX, 8).unwrap();
        assert!(matches!(
            router.route(&wide, 1, 4_000_000).unwrap_err(),
            WorkloadError::TooLarge { .. }
        ));
    }
}
