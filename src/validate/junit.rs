//! JUnit XML of the checks, for CI systems that show test reports: one
//! `<testsuite>` per group (preflight, tests, health), one `<testcase>` per
//! check. FAIL becomes `<failure>`, ERROR `<error>`, SKIP `<skipped>`, and
//! WARN passes with the message in `<system-out>`.

use std::path::{Path, PathBuf};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::check::{Check, Status};

/// Writing the JUnit file failed.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    /// Serialising the XML failed.
    #[error("cannot serialise the JUnit report: {0}")]
    Serialize(String),
    /// Writing the file failed.
    #[error("cannot write the JUnit report {path}: {cause}; check that the folder exists and is writable")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
}

/// The JUnit XML text of `checks`; `name` names the report (the profile).
pub fn junit_xml(name: &str, checks: &[Check]) -> Result<String, JunitError> {
    let mut report = Report::new(format!("infab validate {name}"));
    let mut groups: Vec<&str> = Vec::new();
    for check in checks {
        if !groups.contains(&check.group.as_str()) {
            groups.push(&check.group);
        }
    }
    for group in groups {
        let mut suite = TestSuite::new(group);
        for check in checks.iter().filter(|c| c.group == group) {
            let status = match check.status {
                Status::Pass | Status::Warn => TestCaseStatus::success(),
                Status::Skip => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(check.message());
                    s
                }
                Status::Fail | Status::Error => {
                    let kind = if check.status == Status::Fail {
                        NonSuccessKind::Failure
                    } else {
                        NonSuccessKind::Error
                    };
                    let mut s = TestCaseStatus::non_success(kind);
                    s.set_message(check.message());
                    s.set_type(check.status.word());
                    s.set_description(format!(
                        "expected: {}\nseen: {}\nfix: {}",
                        check.expected, check.seen, check.fix
                    ));
                    s
                }
            };
            let mut case = TestCase::new(check.name.clone(), status);
            case.set_classname(format!("infab.validate.{group}"));
            if check.status == Status::Warn {
                case.set_system_out(check.message());
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .map_err(|err| JunitError::Serialize(err.to_string()))
}

/// Writes the JUnit XML of `checks` to `path`.
pub fn write_junit(path: &Path, name: &str, checks: &[Check]) -> Result<(), JunitError> {
    let text = junit_xml(name, checks)?;
    std::fs::write(path, text).map_err(|cause| JunitError::Write {
        path: path.to_path_buf(),
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_testcase_per_check_and_failures_carry_the_message() {
        let checks = vec![
            Check::new(
                "preflight",
                "active MTU rxe1",
                Status::Fail,
                "≥ 4096",
                "1024 <&>",
                "raise it",
            ),
            Check::new(
                "preflight",
                "PFC rxe1",
                Status::Warn,
                "on 3",
                "unknown",
                "x",
            ),
            Check::new("tests", "bw: GB/s", Status::Pass, "≥ 1", "2", ""),
            Check::new("tests", "lat: run", Status::Error, "done", "crashed", "y"),
            Check::new(
                "tests",
                "pairs: Jain index",
                Status::Skip,
                "≥ 0.9",
                "one pair",
                "z",
            ),
        ];
        let xml = junit_xml("p.toml", &checks).unwrap();
        assert_eq!(xml.matches("<testcase").count(), 5, "{xml}");
        assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
        assert!(xml.contains("<failure"), "{xml}");
        assert!(xml.contains("<error"), "{xml}");
        assert!(xml.contains("<skipped"), "{xml}");
        assert!(xml.contains("1024 &lt;&amp;&gt;"), "{xml}");
        assert!(xml.contains("fix: raise it"), "{xml}");
    }
}
