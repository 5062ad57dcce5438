//! The draft's closed-form MoE dispatch sizes (§7.1, Appendix D) and the
//! AllToAll bus-bandwidth factor (§7.1 NOTE).
//!
//! These are expectations for uniform routing. The measured traffic of a
//! routed batch lives in [`super::DispatchMatrix`]; the formulas here are what
//! its totals are checked against.
//!
//! # What T_dispatch is
//!
//! §7.1 defines `T_dispatch = (B · k · H_model · P_bytes) / N` and calls it
//! "the dispatch payload per GPU per MoE layer"; Appendix D applies the same
//! expression and calls the result "per GPU pair" (M3, B=256, N=96: "~76 KB
//! per GPU pair"). Both readings agree when B is the batch held by *each* rank
//! (Table 12 gives 128–512 tokens per dispatch in normal mode): a rank sends
//! `B · k` token copies of `H_model · P_bytes` bytes, spread evenly over the N
//! ranks of the EP group (itself included), so `T_dispatch` is the expected
//! bytes one rank sends to one rank (one ordered pair, per GPU pair) per
//! dispatch, and the per-rank total is `N · T_dispatch = B · k · H_model · P_bytes`.
//! That per-rank total is what Table 6 lists for M1 (128·2·4096·2 = 2.1 MB/GPU).
//!
//! Table 6's M2–M4 values (29, 14, 58 MB/GPU) are four times
//! `B · k · H_model · 2`; they match neither reading at BF16 and are not used.

/// `T_dispatch` of draft §7.1 in bytes: the expected payload one rank sends to
/// each rank of the EP group (one ordered GPU pair, Appendix D) per MoE layer
/// dispatch, `B · k · H_model · P_bytes / N`, with B the tokens each rank holds.
///
/// The pair includes the rank itself (the local share, which never crosses the
/// fabric). Returns a real number because the draft's division is not exact;
/// returns 0.0 when `ranks` is 0.
pub fn t_dispatch_bytes(
    tokens_per_rank: u64,
    top_k: u32,
    hidden: u32,
    bytes_per_element: u32,
    ranks: u32,
) -> f64 {
    if ranks == 0 {
        return 0.0;
    }
    rank_dispatch_bytes(tokens_per_rank, top_k, hidden, bytes_per_element) as f64 / f64::from(ranks)
}

/// Bytes one rank sends per dispatch, local share included:
/// `B · k · H_model · P_bytes = N · T_dispatch` (the Table 6 "MB/GPU" column
/// for M1). Saturates at `u64::MAX` instead of wrapping.
pub fn rank_dispatch_bytes(
    tokens_per_rank: u64,
    top_k: u32,
    hidden: u32,
    bytes_per_element: u32,
) -> u64 {
    tokens_per_rank
        .saturating_mul(u64::from(top_k))
        .saturating_mul(u64::from(hidden))
        .saturating_mul(u64::from(bytes_per_element))
}

/// Expected bytes one rank sends over the fabric per dispatch under uniform
/// routing: the `(N − 1)/N` of [`rank_dispatch_bytes`] that does not stay
/// local. Returns 0.0 when `ranks` is 0.
pub fn rank_network_dispatch_bytes(
    tokens_per_rank: u64,
    top_k: u32,
    hidden: u32,
    bytes_per_element: u32,
    ranks: u32,
) -> f64 {
    rank_dispatch_bytes(tokens_per_rank, top_k, hidden, bytes_per_element) as f64
        * alltoall_busbw_factor(ranks)
}

/// The AllToAll bus-bandwidth factor `(n − 1)/n` for `n` EP ranks (draft §7.1
/// NOTE, and nccl-tests doc/PERFORMANCE.md): `busbw = algbw · (n − 1)/n`.
///
/// In an AllToAll each rank keeps `1/n` of its data, so only `(n − 1)/n` of
/// what `algbw` counts (bytes per rank / time) crosses the rank's link; busbw
/// is the link-level rate, comparable to the NIC line rate. Returns 0.0 for
/// `n = 0`.
pub fn alltoall_busbw_factor(ranks: u32) -> f64 {
    if ranks == 0 {
        return 0.0;
    }
    f64::from(ranks - 1) / f64::from(ranks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appendix_d_per_pair_examples() {
        // M3, N=96: normal B=256 -> ~76 KB per pair; low-latency B=8 -> ~2.4 KB.
        let normal = t_dispatch_bytes(256, 2, 7168, 2, 96);
        assert!((normal - 76_458.666).abs() < 0.01, "{normal}");
        let low_latency = t_dispatch_bytes(8, 2, 7168, 2, 96);
        assert!((low_latency - 2_389.333).abs() < 0.01, "{low_latency}");
    }

    #[test]
    fn table_6_m1_is_the_per_rank_total() {
        // 128·2·4096·2 = 2,097,152 bytes = "2.1 MB/GPU".
        assert_eq!(rank_dispatch_bytes(128, 2, 4096, 2), 2_097_152);
        let per_pair = t_dispatch_bytes(128, 2, 4096, 2, 96);
        assert!((per_pair * 96.0 - 2_097_152.0).abs() < 1e-6);
    }

    #[test]
    fn busbw_factor() {
        assert_eq!(alltoall_busbw_factor(0), 0.0);
        assert_eq!(alltoall_busbw_factor(1), 0.0);
        assert_eq!(alltoall_busbw_factor(8), 7.0 / 8.0);
        let net = rank_network_dispatch_bytes(128, 2, 4096, 2, 8);
        assert_eq!(net, 2_097_152.0 * 7.0 / 8.0);
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        assert_eq!(rank_dispatch_bytes(u64::MAX, 2, 2, 2), u64::MAX);
        assert_eq!(t_dispatch_bytes(1, 1, 1, 1, 0), 0.0);
    }
}
