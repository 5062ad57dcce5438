//! The format-neutral report: what `infab report` says about a set of
//! results files, before it becomes Markdown, HTML or SVG files.
//!
//! Owns the shape (one [`FileSection`] per results file, each a list of
//! [`Block`]s from blocks.rs: tables, charts, notes) and its assembly: the overview every
//! file gets ([`overview`](super::overview)), the §14 system configuration
//! and workload tables (system_report.rs, workload.rs), the KPI summary, then the
//! blocks the section registry ([`plot`](super::plot)) has for the file's
//! test id. It does not format anything: markdown.rs and html.rs do, from
//! the same document, so the two never disagree.

use std::collections::HashSet;
use std::path::PathBuf;

use super::blocks::{Block, Chart};
use super::plot::{self, PlotError};
use super::{kpi, overview, system_report, workload};
use crate::results::RunReport;

/// Everything the report says about one results file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSection {
    /// The results file as given.
    pub source: PathBuf,
    /// A name unique within the report, safe for file names and HTML ids
    /// (the file's stem, with `-2`, `-3`... on clashes).
    pub id: String,
    /// "Test 5.1: Point-to-Point KV Cache Transfer Throughput".
    pub heading: String,
    /// For the index: status and the file's headline number, e.g.
    /// "complete; 1.234 GB/s at 1M × 8 QPs".
    pub index_note: String,
    /// The file's content, in order.
    pub blocks: Vec<Block>,
}

/// A whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportDocument {
    /// The infab that rendered it (not the one that measured).
    pub generator: String,
    /// One section per results file, in the order given.
    pub files: Vec<FileSection>,
}

impl ReportDocument {
    /// Every chart, with the id of the file section it belongs to.
    pub fn charts(&self) -> impl Iterator<Item = (&str, &Chart)> {
        self.files.iter().flat_map(|file| {
            file.blocks.iter().filter_map(move |block| match block {
                Block::Chart(chart) => Some((file.id.as_str(), chart)),
                _ => None,
            })
        })
    }
}

/// The SVG file name of `chart` in the section `file_id`.
pub fn chart_file_name(file_id: &str, chart: &Chart) -> String {
    format!("{file_id}-{}.svg", chart.slug)
}

/// Keeps `[A-Za-z0-9._-]`, turns the rest into `_`.
fn safe_name(text: &str) -> String {
    let name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "results".into()
    } else {
        name
    }
}

/// Builds the report for `inputs` (path as given, parsed file).
pub fn build_document(inputs: &[(PathBuf, RunReport)]) -> Result<ReportDocument, PlotError> {
    let mut used = HashSet::new();
    let mut files = Vec::with_capacity(inputs.len());
    for (path, report) in inputs {
        let stem = safe_name(&path.file_stem().unwrap_or_default().to_string_lossy());
        let mut id = stem.clone();
        let mut n = 1;
        while !used.insert(id.clone()) {
            n += 1;
            id = format!("{stem}-{n}");
        }
        // the answer first: the headline table, the KPI summary and the
        // test's charts; then the run metadata and the §14 system report,
        // collapsed
        let mut metadata = overview::blocks(path, report);
        let mut blocks = vec![metadata.remove(0)];
        // Multi-rank files have no (size, QP) configurations: their KPI
        // summary is the per-point table of their section.
        let multi_rank = report.cluster.is_some()
            || !report.pairs.is_empty()
            || !report.incast.is_empty()
            || !report.alltoall.is_empty()
            || report.contention.is_some()
            || report.kv.is_some()
            || report.tiers.is_some();
        if !(multi_rank && report.results.is_empty()) {
            blocks.push(Block::Table(kpi::summary_table(report)));
        }
        if let Some(tiers) = &report.tiers {
            blocks.push(Block::Table(super::tiers_table(tiers)));
        }
        blocks.extend(plot::blocks(report)?);
        metadata.extend(workload::blocks(report));
        let deviations = report.deviations.len();
        blocks.push(Block::Details {
            title: format!(
                "Run metadata: {} from the draft's procedure, parameters, endpoints, workload",
                match deviations {
                    0 => "no deviations".to_string(),
                    1 => "1 deviation".to_string(),
                    n => format!("{n} deviations"),
                }
            ),
            blocks: metadata,
        });
        blocks.push(Block::Details {
            title: "System configuration report (draft §14): hosts, devices, DUT".into(),
            blocks: system_report::blocks(report),
        });
        let index_note = match overview::headline_number(report) {
            Some(number) => format!("{}; {number}", report.status),
            None => report.status.clone(),
        };
        files.push(FileSection {
            index_note,
            source: path.clone(),
            id,
            heading: format!("Test {}: {}", report.test_id, report.test_name),
            blocks,
        });
    }
    Ok(ReportDocument {
        generator: format!("infab {}", env!("CARGO_PKG_VERSION")),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_and_unique() {
        assert_eq!(safe_name("5.1 run#2"), "5.1_run_2");
        assert_eq!(safe_name(""), "results");
        let report: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/bw-write.json"))
                .unwrap();
        let inputs = vec![
            (PathBuf::from("a/bw.json"), report.clone()),
            (PathBuf::from("b/bw.json"), report),
        ];
        let doc = build_document(&inputs).unwrap();
        let ids: Vec<_> = doc.files.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["bw", "bw-2"]);
        assert!(doc.charts().count() >= 2);
    }
}
