//! `infab compare`: load BASE and each NEW, judge them, print the table,
//! optionally write compare.md / compare.html / compare.json, and turn the
//! verdicts into the exit code (0; 1 on a significant regression with
//! `--fail-on-regression`; 2 when the files could not be compared).

use anyhow::{bail, Context, Result};

use super::args::CompareArgs;
use crate::compare::{compare, render_html, render_markdown, render_terminal, Comparison};
use crate::results::load_report;

/// Runs `infab compare`; returns the exit code.
pub(crate) fn compare_command(args: &CompareArgs) -> Result<i32> {
    match run(args) {
        Ok(comparisons) => {
            let regressed = comparisons.iter().any(Comparison::regressed);
            Ok(if regressed && args.fail_on_regression {
                1
            } else {
                0
            })
        }
        Err(err) => {
            eprintln!("infab compare: error: {err:#}");
            Ok(2)
        }
    }
}

fn run(args: &CompareArgs) -> Result<Vec<Comparison>> {
    let min_effect = min_effect(&args.min_effect)?;
    let load = |path: &std::path::Path| {
        load_report(path).with_context(|| {
            "infab compare reads results files written by `infab run ... --json`".to_string()
        })
    };
    let base = load(&args.base)?;
    let base_name = args.base.display().to_string();
    let mut comparisons = Vec::new();
    for path in &args.new {
        let new = load(path)?;
        let c = compare(
            &base_name,
            &base,
            &path.display().to_string(),
            &new,
            min_effect,
        )?;
        print!("{}", render_terminal(&c));
        comparisons.push(c);
    }
    if let Some(dir) = &args.out {
        super::output::prepare_output_dir(dir, "-o")?;
        let md = dir.join("compare.md");
        std::fs::write(&md, render_markdown(&comparisons))
            .with_context(|| format!("cannot write {}", md.display()))?;
        let html = dir.join("compare.html");
        let page = render_html(&comparisons).context("compare.html")?;
        std::fs::write(&html, page).with_context(|| format!("cannot write {}", html.display()))?;
        let json = dir.join("compare.json");
        let text = serde_json::to_string_pretty(&comparisons).context("compare.json")?;
        std::fs::write(&json, text + "\n")
            .with_context(|| format!("cannot write {}", json.display()))?;
        eprintln!(
            "infab compare: wrote {}, {} and {}",
            md.display(),
            html.display(),
            json.display()
        );
    }
    Ok(comparisons)
}

/// `2%`, `2` or `0.5 %` → percent; refuses negatives and ≥ 100.
fn min_effect(text: &str) -> Result<f64> {
    let number = text.trim().trim_end_matches('%').trim();
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--min-effect: '{text}' is not a percentage like 2%"))?;
    if !(0.0..100.0).contains(&value) {
        bail!("--min-effect: {value} % is outside 0 ..< 100 %");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_effect_reads_percentages() {
        assert_eq!(min_effect("2%").unwrap(), 2.0);
        assert_eq!(min_effect("0.5 %").unwrap(), 0.5);
        assert_eq!(min_effect("5").unwrap(), 5.0);
        assert!(min_effect("-1%").is_err());
        assert!(min_effect("lots").is_err());
    }
}
