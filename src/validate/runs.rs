//! The traffic part of validation: "QPs reach RTS to the peer" (a one-message
//! p2p run) and the profile's short test runs, each as an `infab run`
//! subprocess writing a results file that is then judged.
//!
//! Why a subprocess and not an in-process call: a crash, abort or hang of
//! one run cannot take the verdict down with it (it becomes an ERROR check
//! with the run's last stderr lines), every run gets a hard deadline (the
//! child is killed), and the runs take exactly the path an operator's
//! `infab run` takes, flags included. Owns the argument lists, the deadline
//! and reading the results back; not the thresholds (thresholds.rs).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::results::{load_report, DeviceFacts, RunReport};
use crate::sysinfo::{CounterSnapshot, HostRoot};

use super::check::{Check, Status};
use super::profile::{Profile, TestSpec};
use super::thresholds::{judge, qp_errors};

/// Launcher variables a child must not inherit: validation runs are
/// single-node, whatever job they sit in.
const LAUNCHER_ENV: &[&str] = &[
    "NODE_RANK",
    "NNODES",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_NODEID",
    "SLURM_NNODES",
    "SLURM_JOB_NODELIST",
    "SLURM_NODELIST",
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "INFAB_DEVICE",
];

/// Deadline of the one-message connection check.
const REACH_TIMEOUT: Duration = Duration::from_secs(120);

/// How one subprocess run ended.
#[derive(Debug)]
pub enum RunOutcome {
    /// It exited and left a results file (status complete, partial or failed).
    Finished(Box<RunReport>),
    /// It crashed, hung or left no readable results file.
    Crashed(String),
}

/// Where and how to run `infab`.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The infab binary (the running one, as a rule).
    pub exe: PathBuf,
    /// Folder for results files and each run's stdout/stderr.
    pub dir: PathBuf,
}

fn device_args(profile: &Profile) -> Vec<String> {
    let t = &profile.target;
    let mut args = vec![
        "-d".to_string(),
        t.device.clone(),
        "--ib-port".into(),
        t.ib_port.to_string(),
    ];
    if let Some(x) = t.gid_index {
        args.extend(["-x".into(), x.to_string()]);
    }
    args
}

/// Where the p2p target is: the peer, the target device, or the device
/// itself (loopback through the NIC).
fn p2p_target_args(profile: &Profile) -> Vec<String> {
    let t = &profile.target;
    match (&t.peer, &t.target_device) {
        (Some(peer), _) => vec![
            "--peer".into(),
            peer.clone(),
            "--port".into(),
            t.port.to_string(),
        ],
        (None, target) => {
            let mut args = vec![
                "--target-device".into(),
                target.clone().unwrap_or_else(|| t.device.clone()),
            ];
            if let Some(x) =
                t.target_gid_index
                    .or(if target.is_none() { t.gid_index } else { None })
            {
                args.extend(["--target-gid-index".into(), x.to_string()]);
            }
            args
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The arguments of the one-message run that proves QPs reach RTS.
pub fn reach_args(profile: &Profile, json: &Path) -> Vec<String> {
    let mut args = strings(&["run", "p2p"]);
    args.extend(device_args(profile));
    args.extend(p2p_target_args(profile));
    args.extend(strings(&[
        "--sizes", "4K", "--qps", "1", "--trials", "1", "--iters", "1", "--warmup", "0",
    ]));
    args.extend(["--tclass".into(), profile.target.tclass.to_string()]);
    args.extend([
        "--dut".into(),
        "infab-validate".into(),
        "--json".into(),
        json.display().to_string(),
    ]);
    args
}

/// The arguments of one test run, or why it cannot run here.
pub fn test_args(profile: &Profile, test: &TestSpec, json: &Path) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    match test {
        TestSpec::P2pBandwidth(t) => {
            args.extend(strings(&["run", "p2p"]));
            args.extend(device_args(profile));
            args.extend(p2p_target_args(profile));
            args.extend([
                "--op".into(),
                t.op.flag().into(),
                "--sizes".into(),
                t.size.clone(),
            ]);
            args.extend([
                "--qps".into(),
                t.qps.to_string(),
                "--trials".into(),
                t.trials.to_string(),
            ]);
            args.extend(["--duration".into(), t.duration_s.to_string()]);
        }
        TestSpec::P2pLatency(t) => {
            args.extend(strings(&["run", "p2p"]));
            args.extend(device_args(profile));
            args.extend(p2p_target_args(profile));
            args.extend(["--latency".into(), "--op".into(), t.op.flag().into()]);
            args.extend([
                "--clock".into(),
                t.clock.flag().into(),
                "--sizes".into(),
                t.size.clone(),
            ]);
            args.extend(["--trials".into(), t.trials.to_string()]);
            match t.duration_s {
                Some(d) => args.extend(["--duration".into(), d.to_string()]),
                None => args.extend(["--iters".into(), t.iters.to_string()]),
            }
        }
        TestSpec::Pairs(t) => {
            if profile.target.peer.is_some() {
                return Err("pairs runs on one host (device → target_device); across hosts run `infab run pairs --topology` on every node".into());
            }
            args.extend(strings(&["run", "pairs"]));
            args.extend(device_args(profile));
            if let Some(target) = &profile.target.target_device {
                args.extend(["--target-device".into(), target.clone()]);
            }
            args.extend(strings(&["--node-rank", "0", "--nnodes", "1"]));
            args.extend([
                "--pairs".into(),
                t.pairs.to_string(),
                "--size".into(),
                t.size.clone(),
            ]);
            args.extend([
                "--qps".into(),
                t.qps.to_string(),
                "--trials".into(),
                t.trials.to_string(),
            ]);
            args.extend(["--duration".into(), t.duration_s.to_string()]);
        }
    }
    args.extend(["--tclass".into(), profile.target.tclass.to_string()]);
    args.extend([
        "--dut".into(),
        "infab-validate".into(),
        "--json".into(),
        json.display().to_string(),
    ]);
    Ok(args)
}

/// The last few non-empty lines of a file, for crash messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let kept: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    kept[kept.len().saturating_sub(lines)..].join(" | ")
}

impl Runner {
    /// Runs `infab ARGS` with a deadline; its stdout/stderr go to
    /// `<dir>/<tag>.out` / `.err`, its results to `json`.
    pub fn run(&self, tag: &str, args: &[String], json: &Path, deadline: Duration) -> RunOutcome {
        let out_path = self.dir.join(format!("{tag}.out"));
        let err_path = self.dir.join(format!("{tag}.err"));
        let _ = std::fs::remove_file(json);
        let files = File::create(&out_path).and_then(|o| Ok((o, File::create(&err_path)?)));
        let (out, err) = match files {
            Ok(pair) => pair,
            Err(e) => {
                return RunOutcome::Crashed(format!(
                    "cannot create {} ({e}); check the results folder",
                    out_path.display()
                ))
            }
        };
        let mut command = Command::new(&self.exe);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for name in LAUNCHER_ENV {
            command.env_remove(name);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                return RunOutcome::Crashed(format!("cannot start {} ({e})", self.exe.display()))
            }
        };
        let start = Instant::now();
        let status: ExitStatus = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return RunOutcome::Crashed(format!(
                        "hung: killed after {:.0} s (timeout_s); last stderr: {}",
                        deadline.as_secs_f64(),
                        tail(&err_path, 3)
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => return RunOutcome::Crashed(format!("cannot wait for the run ({e})")),
            }
        };
        match load_report(json) {
            Ok(report) if report.status != "running" => RunOutcome::Finished(Box::new(report)),
            Ok(_) => RunOutcome::Crashed(format!(
                "{status}: the run died mid-way (results still \"running\"); last stderr: {}",
                tail(&err_path, 3)
            )),
            Err(_) => RunOutcome::Crashed(format!(
                "{status}, no results file; last stderr: {}",
                tail(&err_path, 3)
            )),
        }
    }
}

fn snapshots(opened: &[DeviceFacts]) -> Vec<CounterSnapshot> {
    let root = HostRoot::live();
    opened
        .iter()
        .map(|f| CounterSnapshot::take(&root, &f.name, f.port, f.gid.netdev.as_deref()))
        .collect()
}

/// The connection check and every test, then the global QP-error check.
/// `usable` false (preflight could not open a device) skips them all.
pub fn run_traffic(
    profile: &Profile,
    runner: &Runner,
    opened: &[DeviceFacts],
    usable: bool,
    progress: &mut dyn FnMut(&str),
) -> Vec<Check> {
    let mut checks = Vec::new();
    let peer = match (&profile.target.peer, &profile.target.target_device) {
        (Some(peer), _) => format!("peer {peer}"),
        (None, Some(t)) => format!("{} → {t}", profile.target.device),
        (None, None) => format!("{} loopback", profile.target.device),
    };
    let reach_name = format!("QPs reach RTS ({peer})");
    if !usable {
        checks.push(Check::new(
            "preflight",
            reach_name,
            Status::Skip,
            "a connected RC QP pair",
            "not tried",
            "fix the device checks above first",
        ));
        for test in &profile.tests {
            checks.push(skipped(
                test,
                "not run: a device check above could not open the device",
            ));
        }
        return checks;
    }
    let before = snapshots(opened);
    progress(&format!("connecting one RC QP pair ({peer})"));
    let json = runner.dir.join("reach.json");
    let reached = match runner.run("reach", &reach_args(profile, &json), &json, REACH_TIMEOUT) {
        RunOutcome::Finished(report) if report.status == "complete" => {
            checks.push(Check::new(
                "preflight",
                reach_name,
                Status::Pass,
                "a connected RC QP pair moving 1 message",
                "RTS, 1 message completed",
                "",
            ));
            true
        }
        RunOutcome::Finished(report) => {
            checks.push(Check::new(
                "preflight",
                reach_name,
                Status::Fail,
                "a connected RC QP pair moving 1 message",
                report.error.unwrap_or_else(|| format!("status {}", report.status)),
                "the error names the failing step: check that `infab serve` runs at the peer, the GIDs route to each other (same subnet or routes), the MTU, and firewalls on the control port",
            ));
            false
        }
        RunOutcome::Crashed(why) => {
            checks.push(Check::new(
                "preflight",
                reach_name,
                Status::Error,
                "a connected RC QP pair",
                why,
                "see reach.err in the results folder (--results-dir)",
            ));
            false
        }
    };
    // runs that ended with a transport or setup error (not crashes: those are ERROR checks)
    let mut stopped_runs =
        u64::from(!reached && checks.last().is_some_and(|c| c.status == Status::Fail));
    for (i, test) in profile.tests.iter().enumerate() {
        if !reached {
            checks.push(skipped(test, "not run: QPs did not reach RTS"));
            continue;
        }
        let json = runner.dir.join(format!("test-{i}.json"));
        let args = match test_args(profile, test, &json) {
            Ok(args) => args,
            Err(why) => {
                checks.push(skipped(test, &why));
                continue;
            }
        };
        progress(&format!(
            "running {} (up to {:.0} s)",
            test.label(),
            test.timeout_s()
        ));
        match runner.run(
            &format!("test-{i}"),
            &args,
            &json,
            Duration::from_secs_f64(test.timeout_s()),
        ) {
            RunOutcome::Finished(report) => {
                if report.status != "complete" {
                    stopped_runs += 1;
                }
                checks.extend(judge(test, &report));
            }
            RunOutcome::Crashed(why) => {
                checks.push(Check::new(
                    "tests",
                    format!("{}: run", test.label()),
                    Status::Error,
                    "the run completes",
                    why,
                    format!("see test-{i}.err in the results folder (--results-dir); raise timeout_s if the run is just slow"),
                ));
            }
        }
    }
    let after = snapshots(opened);
    let mut counter_errors = Some(0i64);
    for (b, a) in before.iter().zip(&after) {
        let delta = b.delta(a).kpis.qp_errors;
        counter_errors = counter_errors.zip(delta).map(|(x, y)| x + y);
    }
    let devices: Vec<&str> = opened.iter().map(|f| f.name.as_str()).collect();
    checks.push(qp_errors(
        profile.max_qp_errors,
        counter_errors,
        stopped_runs,
        &devices.join(", "),
    ));
    checks
}

fn skipped(test: &TestSpec, why: &str) -> Check {
    Check::new("tests", test.label(), Status::Skip, "a run", why, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(target: &str, test: &str) -> Profile {
        Profile::parse(
            &format!("[target]\n{target}\n[[tests]]\n{test}"),
            Path::new("p.toml"),
        )
        .unwrap()
    }

    #[test]
    fn single_host_p2p_runs_the_target_in_process() {
        let p = profile(
            "device = \"rxe1\"\ntarget_device = \"rxe0\"\ngid_index = 1\ntarget_gid_index = 1",
            "kind = \"p2p-bandwidth\"\nsize = \"1M\"\nqps = 2\nmin_gbytes_per_s = 0.01",
        );
        let args = test_args(&p, &p.tests[0], Path::new("/r/t.json"))
            .unwrap()
            .join(" ");
        assert!(
            args.starts_with(
                "run p2p -d rxe1 --ib-port 1 -x 1 --target-device rxe0 --target-gid-index 1"
            ),
            "{args}"
        );
        assert!(
            args.contains("--sizes 1M --qps 2 --trials 3 --duration 1"),
            "{args}"
        );
        assert!(args.ends_with("--json /r/t.json"), "{args}");
        let reach = reach_args(&p, Path::new("/r/reach.json")).join(" ");
        assert!(reach.contains("--iters 1 --warmup 0"), "{reach}");
    }

    #[test]
    fn peers_and_latency_map_to_flags() {
        let p = profile(
            "device = \"mlx5_0\"\npeer = \"10.0.0.2\"\nport = 9000",
            "kind = \"p2p-latency\"\nsize = \"64K\"\nop = \"write-imm\"\nclock = \"target\"\nmax_p99_us = 9",
        );
        let args = test_args(&p, &p.tests[0], Path::new("x.json"))
            .unwrap()
            .join(" ");
        assert!(args.contains("--peer 10.0.0.2 --port 9000"), "{args}");
        assert!(
            args.contains(
                "--latency --op write-imm --clock target --sizes 64K --trials 3 --iters 1000"
            ),
            "{args}"
        );
    }

    #[test]
    fn pairs_run_single_node_and_not_across_a_peer() {
        let p = profile(
            "device = \"rxe1\"\ntarget_device = \"rxe0\"",
            "kind = \"pairs\"\npairs = 2\nmin_jain_index = 0.9",
        );
        let args = test_args(&p, &p.tests[0], Path::new("x.json"))
            .unwrap()
            .join(" ");
        assert!(
            args.contains(
                "run pairs -d rxe1 --ib-port 1 --target-device rxe0 --node-rank 0 --nnodes 1"
            ),
            "{args}"
        );
        assert!(args.contains("--pairs 2 --size 16M"), "{args}");
        let p = profile(
            "device = \"rxe1\"\npeer = \"h\"",
            "kind = \"pairs\"\npairs = 2\nmin_jain_index = 0.9",
        );
        assert!(test_args(&p, &p.tests[0], Path::new("x.json"))
            .unwrap_err()
            .contains("--topology"));
    }

    #[test]
    fn a_missing_binary_is_a_crash_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("infab-validate-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let runner = Runner {
            exe: dir.join("no-such-infab"),
            dir: dir.clone(),
        };
        let outcome = runner.run("x", &[], &dir.join("x.json"), Duration::from_secs(1));
        assert!(
            matches!(outcome, RunOutcome::Crashed(ref why) if why.contains("cannot start")),
            "{outcome:?}"
        );
        let runner = Runner {
            exe: PathBuf::from("/bin/sh"),
            dir: dir.clone(),
        };
        let args = strings(&["-c", "echo oops >&2; exit 3"]);
        let outcome = runner.run("y", &args, &dir.join("y.json"), Duration::from_secs(10));
        assert!(
            matches!(outcome, RunOutcome::Crashed(ref why) if why.contains("oops")),
            "{outcome:?}"
        );
        let args = strings(&["-c", "sleep 5"]);
        let outcome = runner.run("z", &args, &dir.join("z.json"), Duration::from_millis(300));
        assert!(
            matches!(outcome, RunOutcome::Crashed(ref why) if why.contains("hung")),
            "{outcome:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
