//! Errors of the KV-cache workload model: bad model shapes, TP degrees,
//! layouts, pool sizes, fragmentation, prompt lengths and prefill models.
//!
//! Every message is one line that names the offending value and how to fix
//! it, because these errors reach the user straight from a CLI flag. This
//! module owns only the error type; the checks live next to the code they
//! protect.

/// A KV-cache workload that cannot be built or planned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KvError {
    /// A model name that is neither a preset nor the custom form.
    #[error(
        "unknown KV model '{name}': use one of {names} or the custom form \
         L=<layers>,H_kv=<kv heads>,D=<head dim>[,P=<bytes per element>] (also as CFG-E:...)"
    )]
    UnknownModel {
        /// The name as written.
        name: String,
        /// Every accepted preset name, comma-separated.
        names: String,
    },
    /// A malformed `key=value` item of the custom model form.
    #[error(
        "bad KV model item '{item}': {reason}; write the custom form as \
         L=<layers>,H_kv=<kv heads>,D=<head dim>[,P=<bytes>][,MLA=0|1][,PARAMS_B=<billions>], \
         e.g. L=32,H_kv=8,D=128,P=2"
    )]
    ModelSyntax {
        /// The item as written.
        item: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A model dimension that must be positive is zero.
    #[error("KV model {model}: {field} is 0; it must be at least 1")]
    ZeroDimension {
        /// The model's name.
        model: String,
        /// The dimension (L, H_kv, D).
        field: &'static str,
    },
    /// A model dimension beyond any real model.
    #[error("KV model {model}: {field}={value} is implausibly large; use {field} <= {max}")]
    DimensionTooLarge {
        /// The model's name.
        model: String,
        /// The dimension (L, H_kv, D).
        field: &'static str,
        /// The value given.
        value: u32,
        /// The largest accepted value.
        max: u32,
    },
    /// Bytes per element outside 1, 2, 4, 8.
    #[error(
        "KV model {model}: P={bytes} bytes per element is not supported; use 1 (FP8/INT8), \
         2 (BF16/FP16), 4 (FP32) or 8 (FP64)"
    )]
    BadDtype {
        /// The model's name.
        model: String,
        /// P_bytes as given.
        bytes: u32,
    },
    /// An MLA model with more than one KV "head".
    #[error(
        "KV model {model}: an MLA model caches one latent per token per layer, so H_kv must \
         be 1 (got {kv_heads}); put the latent width (kv_lora_rank + qk_rope_head_dim) in D"
    )]
    MlaHeads {
        /// The model's name.
        model: String,
        /// H_kv as given.
        kv_heads: u32,
    },
    /// A `params_b` that is not a positive finite number.
    #[error(
        "KV model {model}: params_b={value} is not a positive number of billions of parameters"
    )]
    BadParams {
        /// The model's name.
        model: String,
        /// The value given.
        value: f64,
    },
    /// Tensor parallelism of zero ranks.
    #[error("tensor parallelism --tp 0: a model runs on at least 1 rank; pass --tp >= 1")]
    ZeroTp,
    /// A TP degree that splits the KV heads unevenly.
    #[error(
        "KV model {model}: --tp {tp} neither divides H_kv={kv_heads} nor is a multiple of it, \
         so the KV heads cannot be split evenly; use a divisor of {kv_heads} or a multiple of it"
    )]
    TpMismatch {
        /// The model's name.
        model: String,
        /// H_kv.
        kv_heads: u32,
        /// The TP degree given.
        tp: u32,
    },
    /// A byte count that does not fit 64 bits.
    #[error("{what} overflows 64-bit byte counts; use fewer tokens or a smaller model")]
    Overflow {
        /// The quantity that overflowed.
        what: String,
    },
    /// A layout name that does not parse.
    #[error("unknown KV layout '{0}': use vllm, sglang, contiguous or mla")]
    UnknownLayout(String),
    /// Layout `mla` asked for a model without MLA.
    #[error(
        "KV layout mla needs an MLA model (one latent per token per layer), but {model} keeps \
         separate K and V; use --layout vllm or --layout sglang"
    )]
    MlaLayoutNeedsMla {
        /// The model's name.
        model: String,
    },
    /// Tokens per page of zero or beyond any engine.
    #[error(
        "--block-tokens {0} is out of range; use 1..=4096 tokens per page (vLLM defaults to 16, \
         SGLang to 1)"
    )]
    BlockTokens(u32),
    /// A pool of zero pages.
    #[error("--pool-blocks 0: a KV pool needs at least 1 page; pass --pool-blocks >= 1")]
    ZeroBlocks,
    /// A pool whose buffer would exceed the size limit.
    #[error(
        "the KV pool would take {bytes} bytes (over the 1 TiB limit); lower --pool-blocks or \
         --block-tokens, or raise --tp"
    )]
    PoolTooLarge {
        /// The pool's size in bytes (saturated at u64::MAX).
        bytes: u64,
    },
    /// A fragmentation knob outside 0..=1.
    #[error(
        "--fragmentation {0} is out of range; use a number in 0..=1 (0 = consecutive pages, \
         1 = fully shuffled free list)"
    )]
    Fragmentation(f64),
    /// A request that needs more pages than the pool holds.
    #[error(
        "the prompt needs {needed} blocks but --pool-blocks is {blocks}; pass --pool-blocks >= \
         {needed} or a larger --block-tokens"
    )]
    PoolExhausted {
        /// Pages the request needs.
        needed: u64,
        /// Pages in the pool.
        blocks: u32,
    },
    /// A request of zero tokens.
    #[error("a KV request of 0 prompt tokens moves nothing; use prompts of at least 1 token")]
    ZeroTokens,
    /// A work-request size limit of zero.
    #[error(
        "--max-wr-bytes 0: every WR carries at least 1 byte; pass a limit such as 65536 \
         (Mooncake's MC_SLICE_SIZE) or 1048576"
    )]
    ZeroMaxWr,
    /// A prefill model string that does not parse.
    #[error(
        "unknown prefill model '{0}': use rate:<tokens per s>, \
         flops:TFLOPS=<peak>,MFU=<0..1>[,PARAMS_B=<billions>] or table:<file.csv>"
    )]
    UnknownPrefill(String),
    /// A prefill model parameter that is missing or out of range.
    #[error("prefill model {kind}: {param}={value} is not usable; {fix}")]
    PrefillParam {
        /// rate, flops or table.
        kind: &'static str,
        /// The parameter.
        param: &'static str,
        /// The value as written.
        value: String,
        /// How to fix it.
        fix: &'static str,
    },
    /// The flops prefill model for a model without a parameter count.
    #[error(
        "prefill model flops needs the model's parameter count, which {model} does not state; \
         use --prefill rate:<tokens per s>, or add PARAMS_B=<billions> to the flops spec"
    )]
    PrefillNeedsParams {
        /// The model's name.
        model: String,
    },
    /// A prefill table file that cannot be read.
    #[error(
        "cannot read prefill table {path}: {reason}; check the path given to --prefill table:"
    )]
    PrefillTableIo {
        /// The file.
        path: String,
        /// The I/O error, as text.
        reason: String,
    },
    /// A malformed line of a prefill table file.
    #[error(
        "prefill table {path} line {line}: {reason}; the file is CSV with the header \
         prompt_tokens,prefill_ms and rows such as 4096,180.5 in increasing prompt_tokens"
    )]
    PrefillTableLine {
        /// The file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A prefill table file without data rows.
    #[error(
        "prefill table {path} has no rows; add at least one line prompt_tokens,prefill_ms \
         after the header, e.g. 4096,180.5"
    )]
    PrefillTableEmpty {
        /// The file.
        path: String,
    },
}
