//! The human table of checks: name, status, expected, seen, fix.

use tabled::builder::Builder;
use tabled::settings::{Style, Width};

use super::check::Check;

/// Widest the "seen" and "fix" columns get before wrapping, characters.
const WRAP_CHARS: usize = 60;

/// Renders `checks` as a table, one row per check.
pub fn render_checks(checks: &[Check]) -> String {
    let mut builder = Builder::default();
    builder.push_record(["check", "status", "expected", "seen", "fix"]);
    for c in checks {
        builder.push_record([
            format!("{}: {}", c.group, c.name),
            c.status.word().to_string(),
            c.expected.clone(),
            c.seen.clone(),
            c.fix.clone(),
        ]);
    }
    let mut table = builder.build();
    table.with(Style::sharp());
    table.modify(
        tabled::settings::object::Columns::new(2..),
        Width::wrap(WRAP_CHARS).keep_words(true),
    );
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Status;

    #[test]
    fn one_row_per_check() {
        let checks = vec![
            Check::new(
                "preflight",
                "active MTU rxe1",
                Status::Fail,
                "≥ 4096 bytes",
                "1024 bytes",
                "raise the MTU",
            ),
            Check::new(
                "tests",
                "bw: GB/s",
                Status::Pass,
                "≥ 0.05 GB/s",
                "0.1 GB/s",
                "ignored",
            ),
        ];
        let text = render_checks(&checks);
        assert!(text.contains("preflight: active MTU rxe1"));
        assert!(text.contains("FAIL") && text.contains("PASS"));
        assert!(text.contains("raise the MTU"));
        assert!(!text.contains("ignored"));
    }
}
