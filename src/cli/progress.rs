//! A progress bar for long runs (sweeps × trials), drawn on stderr with
//! indicatif: steps done, elapsed time, ETA and what runs now. It draws
//! only when stderr is a terminal, so logs, pipes, CI and the JSON on stdout
//! never see control characters; otherwise every call does nothing. It does
//! not decide what a step is: the suites count them and call [`Progress::inc`].

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar's layout: label, bar, done/total, elapsed, ETA, current step.
const TEMPLATE: &str =
    "{prefix} [{bar:30}] {pos}/{len} steps, {elapsed_precise} elapsed, ETA {eta} {wide_msg}";

/// A progress bar on stderr, or nothing when stderr is not a terminal.
#[derive(Debug)]
pub struct Progress {
    /// `None` when not drawing.
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar of `total_steps` steps labelled `label` (e.g. "5.3 pairs"),
    /// drawn only when stderr is a terminal.
    pub fn new(total_steps: u64, label: &str) -> Self {
        Self::for_terminal(total_steps, label, std::io::stderr().is_terminal())
    }

    /// As [`Progress::new`], with the terminal test given (for tests).
    fn for_terminal(total_steps: u64, label: &str, stderr_is_terminal: bool) -> Self {
        if !stderr_is_terminal {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total_steps), ProgressDrawTarget::stderr());
        // The template is a constant; a typo in it falls back to the default
        // style rather than failing a run.
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        // Redraw for the elapsed time and ETA even while a long trial runs.
        bar.enable_steady_tick(Duration::from_millis(500));
        Progress { bar: Some(bar) }
    }

    /// Whether the bar is drawn (stderr is a terminal).
    pub fn is_drawing(&self) -> bool {
        self.bar.is_some()
    }

    /// One step done; `msg` says what runs next (e.g. "N=8 trial 3/20").
    pub fn inc(&self, msg: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.into());
            bar.inc(1);
        }
    }

    /// Prints a line above the bar (or to stderr when not drawing), so
    /// per-point results and the bar do not garble each other.
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(line.as_ref()),
            None => eprintln!("{}", line.as_ref()),
        }
    }

    /// Stops the bar and leaves its last state on screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_when_stderr_is_not_a_terminal() {
        let progress = Progress::for_terminal(10, "5.3 pairs", false);
        assert!(!progress.is_drawing());
        progress.inc("N=1 trial 1/3");
        progress.finish();
        // `cargo test` captures stderr, so it is not a terminal either.
        if !std::io::stderr().is_terminal() {
            assert!(!Progress::new(3, "x").is_drawing());
        }
    }

    #[test]
    fn counts_steps_when_drawing() {
        let progress = Progress::for_terminal(3, "8.2 incast", true);
        assert!(progress.is_drawing());
        progress.inc("M=2");
        progress.inc("M=4");
        assert_eq!(progress.bar.as_ref().unwrap().position(), 2);
        progress.finish();
        assert!(progress.bar.as_ref().unwrap().is_finished());
    }
}
