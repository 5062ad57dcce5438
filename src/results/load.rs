//! Reading results files back: the inverse of [`write_json`](super::write_json).
//!
//! Owns the checks a reader needs before trusting a file: the JSON parses,
//! its `schema_version` is one this build understands, and every field has
//! the type [`RunReport`] expects. Each failure names the file, where in it
//! (line:column, or the JSON path of the bad field) and what to do. It does
//! not validate against the JSON Schema (tests/schema.rs does that) and does
//! not look at what the numbers mean.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{RunReport, SCHEMA_VERSION};

/// Reading a results file failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read at all.
    #[error("cannot read results file {path}: {source}; check the path and its permissions")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The text is not JSON (cut short, edited by hand, not a results file).
    #[error("{path}:{line}:{column}: not valid JSON: {message}; the file may be truncated or not an infab results file")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// The file has no usable `schema_version`, or one this build cannot read.
    #[error("{path}: field `schema_version`: {found}; this infab reads schema {supported} (major {major}); {fix}",
        supported = SCHEMA_VERSION, major = supported_major())]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// What the file holds, described (e.g. `"2.0" is newer`).
        found: String,
        /// What to do about it.
        fix: String,
    },
    /// A field is missing or has the wrong type.
    #[error("{path}:{line}:{column}: field `{field}`: {message}; the file does not match results schema {supported}, fix or regenerate it",
        supported = SCHEMA_VERSION)]
    Field {
        /// The file.
        path: PathBuf,
        /// JSON path of the offending field, e.g. `results[0].summary.trials`.
        field: String,
        /// 1-based line where the parser stopped.
        line: usize,
        /// 1-based column where the parser stopped.
        column: usize,
        /// serde's description (expected type, missing field...).
        message: String,
    },
}

/// The part of a results file read before anything else.
#[derive(Deserialize)]
struct VersionProbe {
    schema_version: String,
}

fn supported_major() -> u32 {
    parse_version(SCHEMA_VERSION).map_or(0, |(major, _)| major)
}

/// `"1.0"` → `(1, 0)`.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Checks a file's `schema_version` against [`SCHEMA_VERSION`]: the same
/// major and a minor no newer than ours. Minor bumps only add meaning, so an
/// older minor still reads; a newer one may carry fields this build rejects.
fn check_version(path: &Path, found: &str) -> Result<(), LoadError> {
    let err = |found: String, fix: &str| LoadError::SchemaVersion {
        path: path.to_path_buf(),
        found,
        fix: fix.to_string(),
    };
    let ours = parse_version(SCHEMA_VERSION).expect("SCHEMA_VERSION is MAJOR.MINOR");
    match parse_version(found) {
        None => Err(err(
            format!("\"{found}\" is not MAJOR.MINOR"),
            "the file was not written by infab",
        )),
        Some(theirs) if theirs.0 > ours.0 || (theirs.0 == ours.0 && theirs.1 > ours.1) => Err(err(
            format!("\"{found}\" is newer"),
            "upgrade infab to read it",
        )),
        Some(theirs) if theirs.0 < ours.0 => Err(err(
            format!("\"{found}\" is an older, incompatible major"),
            "read it with the infab release that wrote it",
        )),
        Some(_) => Ok(()),
    }
}

fn json_error(path: &Path, field: String, error: serde_json::Error) -> LoadError {
    let message = strip_position(&error);
    if error.is_syntax() || error.is_eof() {
        LoadError::Syntax {
            path: path.to_path_buf(),
            line: error.line(),
            column: error.column(),
            message,
        }
    } else {
        LoadError::Field {
            path: path.to_path_buf(),
            field,
            line: error.line(),
            column: error.column(),
            message,
        }
    }
}

/// serde_json appends " at line L column C"; the error names those itself.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Parses `text` as the results file `path` (used for messages only).
pub fn parse_report(path: &Path, text: &str) -> Result<RunReport, LoadError> {
    let probe: Result<VersionProbe, _> =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text));
    match probe {
        Ok(probe) => check_version(path, &probe.schema_version)?,
        Err(e) => {
            let field = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() && field == "." {
                // No `schema_version` at all (or a non-object): say that first,
                // before complaining about the fields that follow from it.
                return Err(LoadError::SchemaVersion {
                    path: path.to_path_buf(),
                    found: strip_position(&inner),
                    fix: "the file was not written by infab, or is not a results file".into(),
                });
            }
            return Err(json_error(path, field, inner));
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let report: RunReport = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        json_error(path, field, e.into_inner())
    })?;
    de.end().map_err(|e| json_error(path, ".".into(), e))?;
    Ok(report)
}

/// Reads and parses one results file.
pub fn load_report(path: &Path) -> Result<RunReport, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_report(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/results/bw-write.json");

    fn parse(text: &str) -> Result<RunReport, LoadError> {
        parse_report(Path::new("r.json"), text)
    }

    #[test]
    fn the_fixture_loads() {
        let report = parse(FIXTURE).unwrap();
        assert_eq!(report.test_id, "5.1");
        assert!(!report.results.is_empty());
    }

    #[test]
    fn corrupt_json_names_file_line_and_column() {
        let cut = &FIXTURE[..FIXTURE.len() / 2];
        let err = parse(cut).unwrap_err();
        assert!(matches!(err, LoadError::Syntax { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("r.json:"), "{text}");
        assert!(text.contains("not valid JSON"), "{text}");

        let err = parse("{\n  \"schema_version\": \"1.0\",\n  oops\n}").unwrap_err();
        match err {
            LoadError::Syntax { line, column, .. } => assert_eq!((line, column), (3, 3)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_field_type_names_the_json_path() {
        // The second `"trials": 2,` is the first configuration's summary
        // (the first is in `parameters`).
        let at = FIXTURE.match_indices("\"trials\": 2,").nth(1).unwrap().0;
        let bad = format!(
            "{}\"trials\": \"two\",{}",
            &FIXTURE[..at],
            &FIXTURE[at + 12..]
        );
        let err = parse(&bad).unwrap_err();
        let text = err.to_string();
        match &err {
            LoadError::Field { field, line, .. } => {
                assert_eq!(field, "results[0].summary.trials");
                assert!(*line > 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(text.contains("r.json:"), "{text}");
        assert!(text.contains("`results[0].summary.trials`"), "{text}");
        assert!(text.contains("expected u32"), "{text}");
    }

    #[test]
    fn missing_field_is_named() {
        let bad = FIXTURE.replacen("\"dut_id\"", "\"dut_label\"", 1);
        let text = parse(&bad).unwrap_err().to_string();
        assert!(text.contains("missing field `dut_id`"), "{text}");
    }

    #[test]
    fn newer_or_foreign_schema_versions_are_rejected() {
        let newer = FIXTURE.replacen(
            "\"schema_version\": \"1.0\"",
            "\"schema_version\": \"2.0\"",
            1,
        );
        let err = parse(&newer).unwrap_err();
        assert!(matches!(err, LoadError::SchemaVersion { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("\"2.0\" is newer"), "{text}");
        assert!(text.contains("upgrade infab"), "{text}");

        let minor = FIXTURE.replacen(
            "\"schema_version\": \"1.0\"",
            "\"schema_version\": \"1.7\"",
            1,
        );
        assert!(matches!(
            parse(&minor).unwrap_err(),
            LoadError::SchemaVersion { .. }
        ));

        let junk = FIXTURE.replacen(
            "\"schema_version\": \"1.0\"",
            "\"schema_version\": \"x\"",
            1,
        );
        assert!(parse(&junk)
            .unwrap_err()
            .to_string()
            .contains("not MAJOR.MINOR"));

        let err = parse("{\"hello\": 1}").unwrap_err();
        assert!(matches!(err, LoadError::SchemaVersion { .. }), "{err:?}");
        assert!(err.to_string().contains("missing field `schema_version`"));
    }

    #[test]
    fn an_unreadable_file_names_the_path() {
        let err = load_report(Path::new("/nonexistent/infab.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/infab.json"));
    }
}
