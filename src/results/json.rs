//! The JSON exporter. It rewrites the whole file after every configuration
//! (through a temporary file and a rename), so a crash or a dead peer loses
//! nothing already measured and never leaves half a file.

use std::io;
use std::path::{Path, PathBuf};

use super::RunReport;

/// Writing the results file failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write results to {path}: {source}; check the directory exists and is writable")]
pub struct JsonError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub source: io::Error,
}

/// Writes `report` to `path` atomically, pretty-printed with arrays of
/// numbers on one line ([`super::json_format`]).
pub fn write_json(report: &RunReport, path: &Path) -> Result<(), JsonError> {
    let err = |source| JsonError {
        path: path.to_path_buf(),
        source,
    };
    let text = super::json_format::to_string(report).map_err(|e| err(io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n").map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
