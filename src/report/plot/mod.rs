//! Test-specific report sections: the charts and tables one IETF test id
//! asks for (draft §5–§13 "Reporting Format"), drawn as SVG with plotters.
//!
//! Owns the section registry, [`SECTIONS`], keyed by `test_id`. The
//! overview and KPI summary every file gets are not here (overview.rs,
//! kpi.rs), nor is any formatting into Markdown or HTML.
//!
//! # Adding a section for a new test id
//!
//! 1. Write one file here, e.g. `pairs_scaling.rs` for 5.3, holding
//!    `pub(super) const SECTION: Section = Section { test_id: "5.3", title:
//!    "...", build }` and a `fn build(report: &RunReport) -> Result<Vec<Block>,
//!    PlotError>` that returns its tables ([`Block::Table`]) and charts
//!    (draw with [`style::svg_chart`], which gives the size, fonts and
//!    palette every chart shares, and wrap in [`Block::Chart`]).
//! 2. Add `mod pairs_scaling;` below and one line `pairs_scaling::SECTION,` to
//!    [`SECTIONS`].
//!
//! A section with `test_id: "*"` applies to every file (e.g. a NIC counters
//! table). A file whose test id has no section still gets its overview and
//! KPI summary, with a note that no chart exists for it yet. Sections must
//! not fail on odd data (no configuration, one trial, missing intervals):
//! they return fewer blocks or a [`Block::Note`] instead.

mod alltoall_dispatch;
mod convergence;
mod counter_series;
mod decode_itl;
mod fabric_health;
mod incast_fct;
mod kv_ep_contention;
mod kv_prompt_mix;
mod kv_ttft;
mod latency_load;
mod p2p_latency;
mod p2p_throughput;
mod pairs_scaling;
mod serving_pools;
mod serving_tenants;
mod soak_trends;
pub(crate) mod style;

use super::blocks::Block;
use crate::results::RunReport;

pub(crate) use kv_ttft::headline as kv_headline;

/// Drawing a chart failed (a plotters backend error; SVG into a string
/// should not fail, so this names the chart to report it).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart '{chart}': {message}; this is a bug in infab, please report it with the results file")]
pub struct PlotError {
    /// The chart's slug.
    pub chart: String,
    /// What plotters said.
    pub message: String,
}

/// The charts and tables of one test id.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// The IETF test id the section draws, e.g. "5.1"; "*" for every file.
    pub test_id: &'static str,
    /// What the section shows, for docs and `--help`.
    pub title: &'static str,
    /// Builds its blocks from a results file.
    pub build: fn(&RunReport) -> Result<Vec<Block>, PlotError>,
}

/// The registry: every section, in the order their blocks appear.
pub const SECTIONS: &[Section] = &[
    p2p_throughput::SECTION,
    p2p_latency::SECTION,
    pairs_scaling::SECTION,
    incast_fct::SECTION_8_1,
    incast_fct::SECTION_8_2,
    alltoall_dispatch::SECTION_7_1,
    alltoall_dispatch::SECTION_7_2,
    alltoall_dispatch::SECTION_7_3,
    kv_ep_contention::SECTION,
    convergence::SECTION,
    kv_ttft::SECTION_6_1,
    kv_ttft::SECTION_10_1,
    serving_pools::SECTION_6_2,
    serving_pools::SECTION_6_4,
    serving_tenants::SECTION_10_3,
    decode_itl::SECTION,
    latency_load::SECTION,
    fabric_health::SECTION,
    soak_trends::SECTION,
];

/// The sections that apply to `test_id`.
pub fn sections_for(test_id: &str) -> impl Iterator<Item = &'static Section> + '_ {
    SECTIONS
        .iter()
        .filter(move |s| s.test_id == test_id || s.test_id == "*")
}

/// The test-specific blocks of one file.
pub(crate) fn blocks(report: &RunReport) -> Result<Vec<Block>, PlotError> {
    let mut blocks = Vec::new();
    let mut specific = false;
    // "*" sections (fabric health) go after the test's own ones.
    let mut sections: Vec<&Section> = sections_for(&report.test_id).collect();
    sections.sort_by_key(|s| s.test_id == "*");
    for section in sections {
        specific |= section.test_id != "*";
        blocks.extend((section.build)(report)?);
    }
    if !specific {
        blocks.push(Block::Note(format!(
            "infab has no chart for test {} yet; the tables above hold all its KPIs.",
            report.test_id
        )));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_test_id_has_one_section() {
        let mut ids: Vec<_> = SECTIONS
            .iter()
            .map(|s| s.test_id)
            .filter(|id| *id != "*")
            .collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), before, "two sections claim one test id");
        // Every file also gets the "*" sections (fabric health, soak).
        let star = sections_for("9.9").count();
        assert_eq!(star, 2);
        for id in [
            "5.1", "5.2", "5.3", "6.1", "7.1", "7.2", "7.3", "7.4", "8.1", "8.2", "8.3", "10.1",
            "10.4",
        ] {
            assert_eq!(sections_for(id).count(), 1 + star, "{id}");
        }
    }
}
