//! `infab validate --profile FILE [--junit PATH] [--json PATH]`: load and
//! check the profile, run the checks (`crate::validate`), print the table
//! and write the JUnit and JSON files. Every outcome is an exit code
//! (0 pass, 1 fail, 2 could not run), never an `Err`, so a pipeline can
//! tell a failed check from a broken run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::validate::{
    exit_code, render_checks, validate, write_junit, Check, Profile, Runner, Status,
    ValidateReport, EXIT_ERROR,
};

use super::args::ValidateArgs;
use super::{parse_size, MAX_MSG_BYTES};

/// `infab validate`.
pub(super) fn validate_command(args: &ValidateArgs) -> Result<i32> {
    let name = args.profile.display().to_string();
    // refuse before any run rather than lose its checks at the end
    for (path, flag) in [(&args.junit, "--junit"), (&args.json, "--json")] {
        if let Some(path) = path {
            if let Err(err) = super::output::prepare_output(path, flag) {
                eprintln!("infab validate: error: {err:#}");
                return Ok(EXIT_ERROR);
            }
        }
    }
    let checks = match load(&args.profile) {
        Ok(profile) => match run(&profile, args) {
            Ok(checks) => checks,
            Err(err) => vec![could_not_run("setup", format!("{err:#}"))],
        },
        Err(err) => vec![could_not_run("profile", format!("{err:#}"))],
    };
    println!("{}", render_checks(&checks));
    for check in checks
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Error))
    {
        println!("{}", check.message());
    }
    let mut code = exit_code(&checks);
    let report = ValidateReport::new(&name, checks);
    if let Err(err) = write_outputs(args, &name, &report) {
        eprintln!("infab validate: error: {err:#}");
        code = EXIT_ERROR;
    }
    let counts = |s: Status| report.checks.iter().filter(|c| c.status == s).count();
    println!(
        "infab validate {name}: {} ({} passed, {} failed, {} warnings, {} skipped, {} errors); exit {code}",
        report.verdict.to_uppercase(),
        counts(Status::Pass),
        counts(Status::Fail),
        counts(Status::Warn),
        counts(Status::Skip),
        counts(Status::Error),
    );
    println!("note: thresholds are this deployment's SLOs; the draft forbids pass/fail thresholds in vendor comparisons");
    Ok(code)
}

fn could_not_run(what: &str, why: String) -> Check {
    eprintln!("infab validate: error: {why}");
    Check::new(
        "setup",
        what,
        Status::Error,
        "a usable profile and environment",
        why,
        "fix what the message names, then run again",
    )
}

/// Loads the profile and checks its message sizes with `infab run`'s parser.
fn load(path: &Path) -> Result<Profile> {
    let profile = Profile::load(path)?;
    for (i, test) in profile.tests.iter().enumerate() {
        let bytes = parse_size(test.size())
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("profile {}: field `tests[{i}].size`", path.display()))?;
        if bytes == 0 || bytes > MAX_MSG_BYTES {
            anyhow::bail!(
                "profile {}: field `tests[{i}].size`: {bytes} bytes is outside 1 B ..= 4 GiB",
                path.display()
            );
        }
    }
    Ok(profile)
}

/// A folder for the runs' files: the user's (kept) or a temporary one.
struct ResultsDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for ResultsDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn results_dir(args: &ValidateArgs) -> Result<ResultsDir> {
    let (path, remove) = match &args.results_dir {
        Some(dir) => (dir.clone(), false),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let name = format!("infab-validate-{}-{nanos}", std::process::id());
            (std::env::temp_dir().join(name), true)
        }
    };
    std::fs::create_dir_all(&path).with_context(|| {
        format!(
            "cannot create the results folder {}; pass a writable --results-dir",
            path.display()
        )
    })?;
    Ok(ResultsDir { path, remove })
}

fn run(profile: &Profile, args: &ValidateArgs) -> Result<Vec<Check>> {
    let dir = results_dir(args)?;
    let exe =
        std::env::current_exe().context("cannot find the infab binary itself (current_exe)")?;
    let runner = Runner {
        exe,
        dir: dir.path.clone(),
    };
    let mut progress = |line: &str| eprintln!("infab validate: {line}");
    let checks = validate(profile, &runner, &mut progress);
    if !dir.remove {
        eprintln!(
            "infab validate: runs' results and logs kept in {}",
            dir.path.display()
        );
    }
    Ok(checks)
}

fn write_outputs(args: &ValidateArgs, name: &str, report: &ValidateReport) -> Result<()> {
    if let Some(path) = &args.junit {
        write_junit(path, name, &report.checks)?;
        eprintln!("infab validate: JUnit written to {}", path.display());
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(report).context("serialising the checks")?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("infab validate: JSON written to {}", path.display());
    }
    Ok(())
}
