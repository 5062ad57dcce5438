//! One check of a validation run (what was expected, what was seen, the
//! likely fix) and how the checks decide the exit code.
//!
//! Owns the verdict rule only; the checks themselves are made in
//! preflight.rs and thresholds.rs, and written out by the CLI and junit.rs.

use serde::Serialize;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// The expectation holds.
    Pass,
    /// The expectation does not hold.
    Fail,
    /// Could not be judged (a setting not visible); does not fail the run.
    Warn,
    /// Not applicable, or not reached because an earlier check failed.
    Skip,
    /// Could not run (no device, a test crashed or hung).
    Error,
}

impl Status {
    /// The word in the table.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::Skip => "SKIP",
            Status::Error => "ERROR",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// "preflight", "tests" or "health".
    pub group: String,
    /// What was checked, e.g. "active MTU rxe1".
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// The profile's expectation, in words.
    pub expected: String,
    /// What the system showed.
    pub seen: String,
    /// The likely fix (empty when passed).
    pub fix: String,
}

impl Check {
    /// A check with its outcome; `fix` is dropped when it passed.
    pub fn new(
        group: &str,
        name: impl Into<String>,
        status: Status,
        expected: impl Into<String>,
        seen: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            group: group.into(),
            name: name.into(),
            status,
            expected: expected.into(),
            seen: seen.into(),
            fix: if status == Status::Pass {
                String::new()
            } else {
                fix.into()
            },
        }
    }

    /// One line for logs and failure messages: expected, seen, fix.
    pub fn message(&self) -> String {
        let mut text = format!(
            "{} {}: expected {}, saw {}",
            self.status.word(),
            self.name,
            self.expected,
            self.seen
        );
        if !self.fix.is_empty() {
            text.push_str("; fix: ");
            text.push_str(&self.fix);
        }
        text
    }
}

/// Exit code when every check passed (warnings and skips allowed).
pub const EXIT_PASS: i32 = 0;
/// Exit code when at least one check failed.
pub const EXIT_FAIL: i32 = 1;
/// Exit code when validation could not run (bad profile, no device, a
/// test crashed): the verdict is incomplete, whatever else failed.
pub const EXIT_ERROR: i32 = 2;

/// The process exit code for these checks.
pub fn exit_code(checks: &[Check]) -> i32 {
    if checks.iter().any(|c| c.status == Status::Error) {
        EXIT_ERROR
    } else if checks.iter().any(|c| c.status == Status::Fail) {
        EXIT_FAIL
    } else {
        EXIT_PASS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(status: Status) -> Check {
        Check::new("tests", "x", status, "a", "b", "c")
    }

    #[test]
    fn errors_outrank_failures_outrank_warnings() {
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(
            exit_code(&[with(Status::Pass), with(Status::Warn), with(Status::Skip)]),
            0
        );
        assert_eq!(exit_code(&[with(Status::Pass), with(Status::Fail)]), 1);
        assert_eq!(exit_code(&[with(Status::Fail), with(Status::Error)]), 2);
    }

    #[test]
    fn a_pass_carries_no_fix() {
        assert_eq!(with(Status::Pass).fix, "");
        let fail = with(Status::Fail);
        assert_eq!(fail.message(), "FAIL x: expected a, saw b; fix: c");
    }
}
