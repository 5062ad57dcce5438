//! Statistics: latency histograms, percentiles, throughput, Jain fairness and
//! confidence intervals across trials.
//!
//! This module is a leaf: it takes plain numbers (nanoseconds, byte counts,
//! per-flow rates, per-trial results) and knows nothing of verbs, engines or
//! reports. Everything here is safe, allocation-light and never panics on odd
//! input (empty slices, zero durations, NaN); where a metric is undefined it
//! returns `None` or a flagged value instead of a NaN, because every result
//! ends up in JSON and JSON cannot hold NaN or infinity.
//!
//! # Metric definitions (the single place they are defined)
//!
//! - **Latency percentiles** (`p50_ns`, `p95_ns`, `p99_ns`, `p999_ns`, `max_ns`)
//!   come from an [HdrHistogram](https://hdrhistogram.github.io/HdrHistogram/)
//!   of nanosecond samples kept to **3 significant decimal digits**: every
//!   reported value is within 0.1 % of a recorded sample (exact below 2048 ns).
//!   Pq is the smallest bucket upper edge such that at least a fraction q of
//!   the samples are at or below it (`ceil(q·count)`-th smallest sample).
//!   `mean_ns` and `stdev_ns` are computed over the bucket midpoints; the
//!   stdev is the population one (divide by `count`), because the histogram
//!   is the whole population of samples from one run, not a sample of trials.
//! - **Tail spread** `p99_minus_p50_ns = P99 − P50` (draft §5.2 derived
//!   metric): how far the tail sits from the body, independent of base latency.
//! - **P99.9 reliability**: `p999_reliable` is false when fewer than 1000
//!   samples were recorded, because P99.9 of fewer than 1000 samples is just
//!   the maximum (or close to it) and must not be read as a percentile.
//! - **Throughput**: `gbytes_per_s = bytes / seconds / 1e9` (GB = 10⁹ bytes),
//!   `gbits_per_s = 8·bytes / seconds / 1e9` (Gb = 10⁹ bits, like link speeds),
//!   `msgs_per_s = messages / seconds`. `mib_per_s` (MiB = 2²⁰ bytes) exists
//!   only to compare with perftest, which reports MiB/s.
//! - **Jain's fairness index** `J = (Σxᵢ)² / (n·Σxᵢ²)` over per-flow rates:
//!   1 when all flows get the same rate, `1/n` when one flow gets everything.
//!   `max_min_ratio = max(x) / min(x)` is the blunter companion.
//! - **Across-trial interval**: for trial results `x₁…xₙ`, the mean `x̄`, the
//!   sample stdev `s = sqrt(Σ(xᵢ−x̄)² / (n−1))` and the two-sided 95 %
//!   confidence interval `x̄ ± t₀.₉₇₅(n−1) · s / √n` with Student's t, because
//!   benchmark trial counts are small (3–10) and the normal 1.96 would claim
//!   too much confidence. With one trial there is no interval (`None`).
//! - **Degradation factor and inflection point** (draft §10.4): see
//!   [`inflection`]: `P99(load) / P99(0)`, and the lowest load whose factor
//!   exceeds 2.
//! - **Rate series and convergence** (draft §8.3): see [`series`] (bytes
//!   per bin on the trial's clock) and [`convergence`] (steady state = the
//!   last third of the window, settled within 5 %).

pub mod bursts;
pub mod cdf;
pub mod convergence;
pub mod fairness;
pub mod histogram;
pub mod inflection;
pub mod interval;
pub mod mean;
pub mod series;
pub mod significance;
pub mod summary;
pub mod throughput;
pub mod trend;

pub use cdf::{nearest_rank, CdfPoint};
pub use convergence::{
    convergence, Convergence, ConvergenceRule, CONVERGENCE_TOLERANCE, STEADY_FRACTION,
};
pub use fairness::{jain_index, max_min_ratio};
pub use histogram::LatencyHistogram;
pub use inflection::{degradation_factor, inflection_level, INFLECTION_FACTOR};
pub use interval::{across_trials, student_t_975, TrialInterval};
pub use mean::{mean, sample_stdev};
pub use series::{RateSeries, SeriesClock, MAX_SERIES_BINS};
pub use significance::{mann_whitney, welch, MannWhitney, Welch};
pub use summary::LatencySummary;
pub use throughput::Throughput;
pub use trend::{cv_percent, linear_trend, LinearTrend};
