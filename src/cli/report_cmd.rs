//! `infab report`: load results files, render them, print the paths
//! written. The rendering itself lives in the report module; this file only
//! turns flags into calls and adds context to errors.

use anyhow::{Context, Result};

use super::args::{ReportArgs, ReportFormatArg};
use crate::report::{write_report, ReportFormat};
use crate::results::load_report;

fn format(arg: ReportFormatArg) -> ReportFormat {
    match arg {
        ReportFormatArg::Md => ReportFormat::Markdown,
        ReportFormatArg::Html => ReportFormat::Html,
        ReportFormatArg::Csv => ReportFormat::Csv,
        ReportFormatArg::Svg => ReportFormat::Svg,
    }
}

/// Runs `infab report`; returns the exit code.
pub(crate) fn report_command(args: &ReportArgs) -> Result<i32> {
    let inputs = args
        .files
        .iter()
        .map(|path| Ok((path.clone(), load_report(path)?)))
        .collect::<Result<Vec<_>>>()
        .context("infab report reads results files written by `infab run ... --json`")?;
    super::output::prepare_output_dir(&args.out, "-o")?;
    let formats: Vec<ReportFormat> = args.format.iter().copied().map(format).collect();
    let written = write_report(&inputs, &args.out, &formats)
        .with_context(|| format!("writing the report into {}", args.out.display()))?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::args::{Command, ReportFormatArg};
    use super::super::Cli;

    #[test]
    fn formats_default_to_all_and_split_on_commas() {
        let cli =
            Cli::try_parse_from(["infab", "report", "a.json", "b.json", "-o", "out"]).unwrap();
        let Command::Report(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.files.len(), 2);
        assert_eq!(args.format.len(), 4);
        let cli = Cli::try_parse_from([
            "infab", "report", "a.json", "--out", "o", "--format", "md,csv",
        ])
        .unwrap();
        let Command::Report(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.format, [ReportFormatArg::Md, ReportFormatArg::Csv]);
        assert!(
            Cli::try_parse_from(["infab", "report", "-o", "o"]).is_err(),
            "files are required"
        );
        let cli = Cli::try_parse_from(["infab", "report", "a.json"]).unwrap();
        let Command::Report(args) = cli.command else {
            panic!()
        };
        assert_eq!(
            args.out,
            std::path::Path::new("report/"),
            "-o defaults to report/"
        );
    }
}
