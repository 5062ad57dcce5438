//! `infab compare BASE.json NEW.json...`: A/B comparison of results files
//! with significance. Configurations are matched by what defines them
//! (size, QPs, pairs, senders, EP ranks, prompt length, background level);
//! per KPI the delta of the trial means with its Welch 95 % interval and a
//! test over the trials (Welch's t for means, Mann-Whitney U for per-trial
//! percentiles) give a verdict: better, worse, or no significant change
//! against `--min-effect`.
//!
//! Owns: extracting per-trial KPI values from results (`samples`), the
//! judgement (`verdict`), and its rendering (`render`: terminal, Markdown;
//! `html` and `chart`: compare.html with BASE and NEW overlaid). The tests
//! themselves live in `crate::stats::significance`.

mod chart;
mod html;
mod render;
mod samples;
mod verdict;

pub use html::render_html;
pub use render::{human, render_markdown, render_terminal};
pub use samples::{configurations, Better, ConfigSamples, KpiSamples, Statistic};
pub use verdict::{compare, CompareError, Comparison, KpiComparison, Verdict, ALPHA, MIN_TRIALS};
