//! Output paths (`--json`, `--junit`, `infab report -o`): made ready before
//! anything runs. A sweep can measure for hours; finding only afterwards that
//! its results file cannot be written throws all of it away. So every
//! command calls [`prepare_output`] (or [`prepare_output_dir`]) on each
//! output path before it opens a device: missing folders are created, and a
//! path that cannot be written is refused, naming it and the OS error.
//!
//! This module only makes the folder ready; writing the files stays with
//! their exporters (`results::write_json`, `validate::write_junit`, ...).

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Result};

/// Makes `path` (a file that `flag` names) writable: creates its missing
/// parent folders and checks that a file can be created there. Refuses a
/// path that is a folder, whose parent is a file, or whose folder is not
/// writable, naming the path and the OS error.
pub(crate) fn prepare_output(path: &Path, flag: &str) -> Result<()> {
    if path.is_dir() {
        bail!(
            "{flag} {}: is a folder; name a file, e.g. {}",
            path.display(),
            path.join("results.json").display()
        );
    }
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    ready_folder(folder, path, flag)
}

/// As [`prepare_output`], for a folder that `flag` names and that the
/// command writes files into (`infab report -o DIR`): creates it and checks
/// that a file can be created inside.
pub(crate) fn prepare_output_dir(dir: &Path, flag: &str) -> Result<()> {
    ready_folder(dir, dir, flag)
}

/// Creates `folder` (with its parents) and creates and removes a probe file
/// in it; `path` and `flag` are what the user typed, for the message.
fn ready_folder(folder: &Path, path: &Path, flag: &str) -> Result<()> {
    if let Err(err) = std::fs::create_dir_all(folder) {
        // EEXIST / ENOTDIR alone do not say which part is in the way
        if let Some(file) = folder.ancestors().find(|a| a.is_file()) {
            bail!(
                "{flag} {}: {} is a file, not a folder ({err}); choose another path",
                path.display(),
                file.display()
            );
        }
        bail!(
            "{flag} {}: cannot create the folder {}: {err}; create it or choose another path",
            path.display(),
            folder.display()
        );
    }
    // unique per process and call, so two checks never collide on one name
    static PROBES: AtomicU32 = AtomicU32::new(0);
    let probe = folder.join(format!(
        ".infab-write-probe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    ));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match created {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(err) => bail!(
            "{flag} {}: cannot write into the folder {}: {err}; check its permissions or choose another path",
            path.display(),
            folder.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_parents_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results/a/b/run.json");
        prepare_output(&path, "--json").unwrap();
        assert!(path.parent().unwrap().is_dir());
        assert!(!path.exists(), "only the folder is made, not the file");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert!(leftovers.is_empty(), "the probe file is removed");
        // an existing folder and a bare file name (the current folder) are fine
        prepare_output(&path, "--json").unwrap();
        prepare_output(Path::new("run.json"), "--json").unwrap();
        let out = dir.path().join("report/");
        prepare_output_dir(&out, "-o").unwrap();
        assert!(out.is_dir());
    }

    #[test]
    fn a_parent_that_is_a_file_is_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("results");
        std::fs::write(&file, "not a folder").unwrap();
        let path = file.join("run.json");
        let err = format!("{:#}", prepare_output(&path, "--json").unwrap_err());
        assert!(err.contains("--json"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("os error"), "names the OS error: {err}");
        assert!(err.contains("is a file, not a folder"), "{err}");
        let err = format!("{:#}", prepare_output_dir(&file, "-o").unwrap_err());
        assert!(err.contains(&file.display().to_string()), "{err}");
    }

    #[test]
    fn a_folder_given_as_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", prepare_output(dir.path(), "--json").unwrap_err());
        assert!(err.contains("is a folder"), "{err}");
    }
}
