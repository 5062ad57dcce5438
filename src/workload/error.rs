//! Errors of the workload layer: bad MoE configs, infeasible routing requests
//! and bad pacing rates.
//!
//! Every message names the offending value and how to fix it, because these
//! errors reach the user straight from a CLI flag. This module owns only the
//! error type; the checks live next to the code they protect.

/// A workload description that cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkloadError {
    /// A config name that is neither a Table 6 row nor the custom form.
    #[error(
        "unknown MoE config '{0}': use one of M1, M2, M3, M4 (draft Table 6) \
         or the custom form E=<experts>,k=<top-k>,H=<hidden>[,P=<bytes per element>]"
    )]
    UnknownConfig(String),
    /// A malformed `key=value` item in the custom config form.
    #[error(
        "bad MoE config item '{item}': {reason}; write the custom form as \
         E=<experts>,k=<top-k>,H=<hidden>[,P=<bytes per element>], e.g. E=64,k=4,H=7168,P=2"
    )]
    ConfigSyntax {
        /// The item as written.
        item: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A config parameter that must be positive is zero.
    #[error("MoE config {config}: {field} is 0; it must be at least 1")]
    ZeroSize {
        /// The config's name.
        config: String,
        /// The parameter (E, k, H, P).
        field: &'static str,
    },
    /// Top-k larger than the number of experts.
    #[error(
        "MoE config {config}: k={top_k} exceeds E={experts}; a token can select at most E \
         distinct experts, so use k <= {experts}"
    )]
    TopKExceedsExperts {
        /// The config's name.
        config: String,
        /// k.
        top_k: u32,
        /// E.
        experts: u32,
    },
    /// A bytes-per-element value outside 1..=8.
    #[error(
        "MoE config {config}: P={bytes_per_element} bytes per element is not supported; \
         use 1 (FP8/INT8), 2 (BF16/FP16), 4 (FP32) or up to 8"
    )]
    BadPrecision {
        /// The config's name.
        config: String,
        /// P_bytes.
        bytes_per_element: u32,
    },
    /// An EP group of zero ranks.
    #[error(
        "EP group size N=0: an AllToAll needs at least 1 rank; pass N >= 1 (the draft uses 8..96)"
    )]
    ZeroRanks,
    /// A batch of zero tokens per rank.
    #[error("batch size B=0 tokens per rank: a dispatch needs at least 1 token; pass B >= 1")]
    ZeroTokens,
    /// Expert choice needs every expert to take the same whole number of tokens.
    #[error(
        "expert-choice routing: N*B*k = {ranks}*{tokens_per_rank}*{top_k} = {assignments} \
         token slots cannot be split evenly over E={experts} experts; pick B so that \
         N*B*k is a multiple of E (e.g. B a multiple of {b_step})"
    )]
    ExpertChoiceInfeasible {
        /// N.
        ranks: u32,
        /// B.
        tokens_per_rank: u32,
        /// k.
        top_k: u32,
        /// E.
        experts: u32,
        /// N·B·k.
        assignments: u64,
        /// The smallest B step that makes N·B·k divisible by E.
        b_step: u64,
    },
    /// The dispatch would not fit 64-bit byte counters or the assignment limit.
    #[error(
        "dispatch of N={ranks} ranks x B={tokens_per_rank} tokens x k={top_k} x {token_bytes} bytes \
         is too large to plan (more than 2^31 token copies or 2^64 bytes); reduce B, N or H"
    )]
    TooLarge {
        /// N.
        ranks: u32,
        /// B.
        tokens_per_rank: u32,
        /// k.
        top_k: u32,
        /// H·P.
        token_bytes: u64,
    },
    /// A routing mode string that does not parse.
    #[error(
        "unknown routing mode '{0}': use top-k, expert-choice, token-drop:cf=<capacity factor>, \
         aux-loss or zipf:alpha=<exponent>"
    )]
    UnknownRouting(String),
    /// A routing parameter out of range (capacity factor, Zipf exponent).
    #[error("routing mode {mode}: {param}={value} is out of range; {fix}")]
    RoutingParam {
        /// The routing mode.
        mode: &'static str,
        /// The parameter name.
        param: &'static str,
        /// The value given.
        value: f64,
        /// How to fix it.
        fix: &'static str,
    },
    /// A routing built for a different config than the one counting it.
    #[error(
        "the routing was built for E={routing_experts} experts but config {config} has \
         E={config_experts}; route with the same config you build the matrix with"
    )]
    ConfigMismatch {
        /// The config's name.
        config: String,
        /// E of the config.
        config_experts: u32,
        /// E of the routing.
        routing_experts: u32,
    },
    /// A low-latency slot smaller than the largest real per-pair payload.
    #[error(
        "low-latency slot of {slot_bytes} bytes is smaller than the largest per-pair payload \
         ({max_pair_bytes} bytes); use a slot of at least {max_pair_bytes} bytes"
    )]
    SlotTooSmall {
        /// The slot asked for.
        slot_bytes: u64,
        /// The largest per-pair payload.
        max_pair_bytes: u64,
    },
    /// A background-load fraction outside (0, 1].
    #[error(
        "background load fraction {0} is out of range: it must be > 0 and <= 1.0 \
         (rates above 100% of the measured capacity cannot be paced; for 0% run without \
         a background stream)"
    )]
    LoadFraction(f64),
    /// A pacing rate or burst of zero, or a capacity that is not a positive number.
    #[error("pacer {field}={value} is not usable; it must be a positive number of bytes (per second for rates)")]
    PacerParam {
        /// rate_bytes_per_s, burst_bytes or capacity_bytes_per_s.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// An arrival process that cannot be built (the message names the flag
    /// value and the forms accepted).
    #[error("{0}")]
    Arrival(String),
    /// A prompt/output length distribution that cannot be built (the
    /// message names the flag value and the forms accepted).
    #[error("{0}")]
    Lengths(String),
    /// A serving-pool description that cannot be run (xPyD ratios, routes,
    /// admission, SLOs, sweeps); the message names the flag and the fix.
    #[error("{0}")]
    Serving(String),
}
