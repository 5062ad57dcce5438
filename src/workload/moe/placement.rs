//! Which rank hosts which expert: contiguous blocks of experts per rank.
//!
//! Appendix D assumes "each GPU holds M/N experts". When E is a multiple of N
//! that is exactly what this does: rank r hosts experts `r·E/N ..
//! (r+1)·E/N`. The draft's own examples do not divide evenly (M3 with E=256
//! on N=96; Table 6 puts M1's 8 experts on N=96), so the remainder is placed
//! as `numpy.array_split` does: the first `E mod N` ranks host one extra
//! expert. When N > E the last `N − E` ranks host no expert: they still send
//! their tokens but receive nothing. Real deployments replicate experts
//! instead (redundant experts); that is out of scope here and visible in the
//! matrix as ranks with zero receive bytes ([`ExpertPlacement::idle_ranks`]).
//!
//! This module owns the mapping only, not routing or byte counts.

use crate::workload::WorkloadError;

/// The expert-to-rank map of one EP group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpertPlacement {
    experts: u32,
    ranks: u32,
}

impl ExpertPlacement {
    /// Places `experts` experts on `ranks` ranks in contiguous blocks.
    /// Fails when `ranks` or `experts` is 0.
    pub fn contiguous(experts: u32, ranks: u32) -> Result<Self, WorkloadError> {
        if ranks == 0 {
            return Err(WorkloadError::ZeroRanks);
        }
        if experts == 0 {
            return Err(WorkloadError::ZeroSize {
                config: "placement".into(),
                field: "E (experts)",
            });
        }
        Ok(Self { experts, ranks })
    }

    /// E.
    pub fn experts(&self) -> u32 {
        self.experts
    }

    /// N.
    pub fn ranks(&self) -> u32 {
        self.ranks
    }

    /// True when every rank hosts the same number of experts (`E mod N = 0`).
    pub fn is_even(&self) -> bool {
        self.experts % self.ranks == 0
    }

    /// Ranks that host no expert (`N − E` when N > E, else 0).
    pub fn idle_ranks(&self) -> u32 {
        self.ranks.saturating_sub(self.experts)
    }

    /// The rank that hosts `expert`. `expert` must be below E.
    pub fn rank_of(&self, expert: u32) -> u32 {
        debug_assert!(
            expert < self.experts,
            "expert {expert} >= E={}",
            self.experts
        );
        let base = self.experts / self.ranks;
        let extra = self.experts % self.ranks;
        let wide = extra * (base + 1);
        if expert < wide {
            expert / (base + 1)
        } else {
            extra + (expert - wide) / base
        }
    }

    /// The experts hosted by `rank`, as a half-open range.
    pub fn experts_of(&self, rank: u32) -> std::ops::Range<u32> {
        let base = self.experts / self.ranks;
        let extra = self.experts % self.ranks;
        let start = rank * base + rank.min(extra);
        let len = base + u32::from(rank < extra);
        start..start + len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_consistent(p: ExpertPlacement) {
        let mut next = 0;
        for r in 0..p.ranks() {
            let range = p.experts_of(r);
            assert_eq!(range.start, next);
            for e in range.clone() {
                assert_eq!(p.rank_of(e), r, "E={} N={} e={e}", p.experts(), p.ranks());
            }
            next = range.end;
        }
        assert_eq!(next, p.experts());
    }

    #[test]
    fn even_split_is_contiguous() {
        let p = ExpertPlacement::contiguous(64, 8).unwrap();
        assert!(p.is_even());
        assert_eq!(p.experts_of(3), 24..32);
        assert_eq!(p.rank_of(0), 0);
        assert_eq!(p.rank_of(63), 7);
        check_consistent(p);
    }

    #[test]
    fn remainder_goes_to_the_first_ranks() {
        // M3 on the draft's N=96: 256 = 64·3 + 32·2.
        let p = ExpertPlacement::contiguous(256, 96).unwrap();
        assert!(!p.is_even());
        assert_eq!(p.experts_of(0), 0..3);
        assert_eq!(p.experts_of(63), 189..192);
        assert_eq!(p.experts_of(64), 192..194);
        assert_eq!(p.experts_of(95), 254..256);
        check_consistent(p);
    }

    #[test]
    fn more_ranks_than_experts_leaves_ranks_idle() {
        // M1 on N=96 (Table 6): ranks 0..8 host one expert each.
        let p = ExpertPlacement::contiguous(8, 96).unwrap();
        assert_eq!(p.idle_ranks(), 88);
        assert_eq!(p.rank_of(7), 7);
        assert!(p.experts_of(8).is_empty());
        check_consistent(p);
    }

    #[test]
    fn zero_is_rejected() {
        assert_eq!(
            ExpertPlacement::contiguous(8, 0),
            Err(WorkloadError::ZeroRanks)
        );
        assert!(ExpertPlacement::contiguous(0, 8).is_err());
    }
}
