//! `infab completions SHELL` and `infab man`: shell completion scripts and
//! man pages generated from the CLI definition itself (clap_complete,
//! clap_mangen), so they never drift from the flags. `make install` puts
//! both in place.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::Cli;

/// Prints the completion script for `shell` to stdout (a closed pipe, as
/// with `| head`, is not an error).
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<i32> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "infab", &mut script);
    write_stdout(&script)
}

fn write_stdout(bytes: &[u8]) -> Result<i32> {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(0),
    }
}

/// Prints infab(1), or writes infab.1 and one page per (sub)command into `dir`.
pub(crate) fn man(dir: Option<&Path>) -> Result<i32> {
    let command = Cli::command();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("rendering the man page")?;
            return write_stdout(&page);
        }
        Some(dir) => {
            super::output::prepare_output_dir(dir, "--dir")?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            eprintln!("infab man: pages written to {}", dir.display());
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_gets_a_page() {
        let dir = tempfile::tempdir().unwrap();
        man(Some(dir.path())).unwrap();
        for page in [
            "infab.1",
            "infab-run.1",
            "infab-run-kv.1",
            "infab-compare.1",
            "infab-serve.1",
        ] {
            let text = std::fs::read_to_string(dir.path().join(page))
                .unwrap_or_else(|e| panic!("{page}: {e}"));
            assert!(
                text.starts_with(".ie") || text.contains(".TH"),
                "{page} is roff"
            );
        }
        let kv = std::fs::read_to_string(dir.path().join("infab-run-kv.1")).unwrap();
        assert!(kv.contains("arrival"), "the page lists the flags");
    }
}
