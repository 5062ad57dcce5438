//! Writing a rendered report to a folder: which files each format makes,
//! and the errors that name the file that could not be written. The
//! content comes from the exporters beside this file (markdown.rs, html.rs,
//! kpi_csv.rs, the SVG charts of plot/); this file only decides names.
//!
//! | format | files |
//! |---|---|
//! | `md` | `report.md`, plus the SVG charts it links |
//! | `html` | `report.html` (charts inline) |
//! | `csv` | `kpis.csv`, `trials.csv`; `pairs.csv`, `incast.csv`, `alltoall.csv`, `contention.csv`, `kv.csv`, `counters.csv` when a file has such rows |
//! | `svg` | `ID-SLUG.svg` per chart (ID: the results file's stem) |

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::document::{build_document, chart_file_name};
use super::plot::PlotError;
use super::{
    alltoall_rows, contention_rows, counter_rows, incast_rows, kpi_rows, kv_rows, pairs_rows,
    render_html, render_markdown, trial_rows, write_alltoall_csv, write_contention_csv,
    write_counters_csv, write_incast_csv, write_kpis_csv, write_kv_csv, write_pairs_csv,
    write_trials_csv,
};
use crate::results::RunReport;

/// One output format of `infab report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportFormat {
    /// `report.md` and the SVG charts it links.
    Markdown,
    /// Self-contained `report.html`.
    Html,
    /// `kpis.csv` and `trials.csv`; `pairs.csv`, `incast.csv`,
    /// `alltoall.csv`, `contention.csv`, `kv.csv` and `counters.csv` when
    /// any input has such rows.
    Csv,
    /// One SVG file per chart.
    Svg,
}

impl ReportFormat {
    /// Every format, the default.
    pub const ALL: [ReportFormat; 4] = [
        ReportFormat::Markdown,
        ReportFormat::Html,
        ReportFormat::Csv,
        ReportFormat::Svg,
    ];
}

/// Writing the report failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The output folder could not be made.
    #[error("cannot create the output folder {dir}: {source}; check the path and its permissions")]
    CreateDir {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}; check the folder is writable and has space")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A CSV file could not be written.
    #[error("cannot write {path}: {source}; check the folder is writable and has space")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

fn write_file(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn write_csv(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), csv::Error>,
) -> Result<(), ReportError> {
    let io_err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut out = BufWriter::new(File::create(path).map_err(io_err)?);
    write(&mut out).map_err(|source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    })?;
    out.flush().map_err(io_err)
}

/// Renders `inputs` (path as given, parsed file) into `dir` in `formats`;
/// returns the paths written, in order. Creates `dir` if needed and
/// overwrites files of the same name.
pub fn write_report(
    inputs: &[(PathBuf, RunReport)],
    dir: &Path,
    formats: &[ReportFormat],
) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let has = |f| formats.contains(&f);
    let doc = build_document(inputs)?;
    let mut written = Vec::new();
    if has(ReportFormat::Svg) || has(ReportFormat::Markdown) {
        for (id, chart) in doc.charts() {
            let path = dir.join(chart_file_name(id, chart));
            write_file(&path, &chart.svg)?;
            written.push(path);
        }
    }
    if has(ReportFormat::Markdown) {
        let path = dir.join("report.md");
        write_file(&path, &render_markdown(&doc))?;
        written.push(path);
    }
    if has(ReportFormat::Html) {
        let path = dir.join("report.html");
        write_file(&path, &render_html(&doc))?;
        written.push(path);
    }
    if has(ReportFormat::Csv) {
        let file = |p: &PathBuf| p.display().to_string();
        let kpis: Vec<_> = inputs
            .iter()
            .flat_map(|(p, r)| kpi_rows(&file(p), r))
            .collect();
        let path = dir.join("kpis.csv");
        write_csv(&path, |out| write_kpis_csv(&kpis, out))?;
        written.push(path);
        let trials: Vec<_> = inputs
            .iter()
            .flat_map(|(p, r)| trial_rows(&file(p), r))
            .collect();
        let path = dir.join("trials.csv");
        write_csv(&path, |out| write_trials_csv(&trials, out))?;
        written.push(path);
        // The multi-rank files: only when some input has rows, so a p2p
        // report does not get three empty tables.
        let pairs: Vec<_> = inputs
            .iter()
            .flat_map(|(p, r)| pairs_rows(&file(p), r))
            .collect();
        if !pairs.is_empty() {
            let path = dir.join("pairs.csv");
            write_csv(&path, |out| write_pairs_csv(&pairs, out))?;
            written.push(path);
        }
        let incast: Vec<_> = inputs
            .iter()
            .flat_map(|(p, r)| incast_rows(&file(p), r))
            .collect();
        if !incast.is_empty() {
            let path = dir.join("incast.csv");
            write_csv(&path, |out| write_incast_csv(&incast, out))?;
            written.push(path);
        }
        let alltoall: Vec<_> = inputs
            .iter()
            .flat_map(|(p, r)| alltoall_rows(&file(p), r))
            .collect();
        if !alltoall.is_empty() {
            let path = dir.join("alltoall.csv");
            write_csv(&path, |out| write_alltoall_csv(&alltoall, out))?;
            written.push(path);
        }
        let contention: Vec<_> = inputs
            .iter()
            .flat_map(|(p, r)| contention_rows(&file(p), r))
            .collect();
        if !contention.is_empty() {
            let path = dir.join("contention.csv");
            write_csv(&path, |out| write_contention_csv(&contention, out))?;
            written.push(path);
        }
        let kv: Vec<_> = inputs
            .iter()
            .flat_map(|(p, r)| kv_rows(&file(p), r))
            .collect();
        if !kv.is_empty() {
            let path = dir.join("kv.csv");
            write_csv(&path, |out| write_kv_csv(&kv, out))?;
            written.push(path);
        }
        let counters: Vec<_> = inputs
            .iter()
            .flat_map(|(p, r)| counter_rows(&file(p), r))
            .collect();
        if !counters.is_empty() {
            let path = dir.join("counters.csv");
            write_csv(&path, |out| write_counters_csv(&counters, out))?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_writes_its_files() {
        let report: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/bw-write.json"))
                .unwrap();
        let inputs = vec![(PathBuf::from("bw-write.json"), report)];
        let dir = tempfile::tempdir().unwrap();
        let names = |formats: &[ReportFormat]| -> Vec<String> {
            let out = dir.path().join(format!("{formats:?}"));
            write_report(&inputs, &out, formats)
                .unwrap()
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(&[ReportFormat::Csv]), ["kpis.csv", "trials.csv"]);
        assert_eq!(names(&[ReportFormat::Html]), ["report.html"]);
        assert_eq!(
            names(&[ReportFormat::Markdown]),
            ["bw-write-throughput.svg", "report.md"]
        );
        assert_eq!(names(&ReportFormat::ALL).len(), 5);
    }

    #[test]
    fn multi_rank_files_add_their_csvs() {
        let parse = |text: &str| -> RunReport { serde_json::from_str(text).unwrap() };
        let inputs = vec![
            (
                PathBuf::from("pairs.json"),
                parse(include_str!("../../tests/fixtures/results/pairs-5.3.json")),
            ),
            (
                PathBuf::from("incast.json"),
                parse(include_str!("../../tests/fixtures/results/incast-8.2.json")),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = write_report(&inputs, dir.path(), &[ReportFormat::Csv])
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "kpis.csv",
                "trials.csv",
                "pairs.csv",
                "incast.csv",
                "counters.csv"
            ]
        );
    }

    #[test]
    fn a_kv_file_adds_kv_csv() {
        let report: RunReport =
            serde_json::from_str(include_str!("../../tests/fixtures/results/kv-10.1.json"))
                .unwrap();
        let inputs = vec![(PathBuf::from("kv-10.1.json"), report)];
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = write_report(&inputs, dir.path(), &[ReportFormat::Csv])
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "kv.csv"), "{names:?}");
    }

    #[test]
    fn an_unwritable_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let err = write_report(&[], &blocker.join("out"), &ReportFormat::ALL).unwrap_err();
        assert!(err.to_string().contains("out"), "{err}");
    }
}
