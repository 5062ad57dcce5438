//! Runs a short external command (`ethtool -S`, `dcb pfc show`,
//! `dpkg-query`) with a deadline: the child is killed when it runs past it,
//! so a hung driver or tool never stalls a benchmark. Every failure comes
//! back as a reason string.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a command may run before it is killed.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the child is polled while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// Runs `program args...` with the C locale; its stdout when it exits 0
/// within `timeout`, else why not (not installed, timed out and killed,
/// exit status with the first line of stderr).
pub(crate) fn run_with_timeout(
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, String> {
    run_with_input(program, args, None, timeout)
}

/// Like [`run_with_timeout`], with `input` written to the child's stdin
/// (batch modes such as `rdma -b -`: one exec instead of several).
pub(crate) fn run_with_input(
    program: &str,
    args: &[&str],
    input: Option<&str>,
    timeout: Duration,
) -> Result<String, String> {
    let line = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("`{line}`: {program} not installed")
            } else {
                format!("`{line}`: cannot start ({e})")
            }
        })?;
    // Drain both pipes on their own threads: output larger than the pipe
    // buffer (ethtool -S on a NIC with many queues) would otherwise block
    // the child and look like a hang.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut out);
            }
            out
        })
    };
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // small batches fit the pipe; a child that exits early is an error below
        let _ = std::io::Write::write_all(&mut stdin, text.as_bytes());
    }
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                // The drain threads end when the pipes close; not joined, in
                // case a grandchild keeps them open.
                return Err(format!(
                    "`{line}`: no answer within {} ms; killed",
                    timeout.as_millis()
                ));
            }
            Ok(None) => thread::sleep(POLL_INTERVAL),
            Err(e) => return Err(format!("`{line}`: cannot wait ({e})")),
        }
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    if status.success() {
        Ok(String::from_utf8_lossy(&out).into_owned())
    } else {
        let err = String::from_utf8_lossy(&err);
        let first = err.lines().next().unwrap_or("").trim();
        Err(format!(
            "`{line}`: {status}{}{first}",
            if first.is_empty() { "" } else { ": " }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_of_a_quick_command() {
        let out = run_with_timeout("sh", &["-c", "echo hello"], COMMAND_TIMEOUT).unwrap();
        assert_eq!(out, "hello\n");
    }

    #[test]
    fn input_reaches_the_child() {
        let out = run_with_input("cat", &[], Some("a\nb\n"), COMMAND_TIMEOUT).unwrap();
        assert_eq!(out, "a\nb\n");
    }

    #[test]
    fn missing_binary_is_a_reason() {
        let why = run_with_timeout("infab-no-such-tool", &[], COMMAND_TIMEOUT).unwrap_err();
        assert!(why.contains("not installed"), "{why}");
    }

    #[test]
    fn failure_carries_stderr() {
        let why =
            run_with_timeout("sh", &["-c", "echo boom >&2; exit 3"], COMMAND_TIMEOUT).unwrap_err();
        assert!(why.contains("boom") && why.contains('3'), "{why}");
    }

    #[test]
    fn a_hung_command_is_killed_at_the_deadline() {
        let started = Instant::now();
        let why = run_with_timeout("sleep", &["30"], Duration::from_millis(200)).unwrap_err();
        assert!(why.contains("killed"), "{why}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn large_output_does_not_block() {
        let out =
            run_with_timeout("sh", &["-c", "yes x | head -c 300000"], COMMAND_TIMEOUT).unwrap();
        assert_eq!(out.len(), 300_000);
    }
}
