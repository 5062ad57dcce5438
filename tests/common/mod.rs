//! Helpers shared by the SoftRoCE end-to-end test binaries: the bed check,
//! running `infab` with a deadline, and results-file validation.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_infab");

/// The bed's two-node topology (node 0 on rxe0, node 1 on rxe1).
pub const TWO_NODES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/topologies/softroce-2node.toml"
);

/// Starts infab with `args`, stdout and stderr piped (collect with [`wait`]).
pub fn spawn_infab<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `run pairs` as node `rank` of [`TWO_NODES`], one pair of 1 MiB
/// transfers; the caller appends the test's own flags.
pub fn pairs_node_args(rank: &str) -> Vec<String> {
    [
        "run",
        "pairs",
        "--topology",
        TWO_NODES,
        "--node-rank",
        rank,
        "--rendezvous-timeout",
        "30",
        "--pairs",
        "1",
        "--size",
        "1M",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn bed() -> Option<(String, String, String)> {
    if !Path::new("/sys/class/infiniband/rxe0").exists() {
        eprintln!("skipped: no RDMA device (run inside tests/softroce/vm.sh)");
        return None;
    }
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    Some((
        env("INFAB_DEV0", "rxe0"),
        env("INFAB_DEV1", "rxe1"),
        env("INFAB_IP0", "198.18.0.1"),
    ))
}

pub fn out_dir() -> PathBuf {
    let dir = std::env::var("INFAB_RESULTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("softroce-results"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs infab with a hard deadline; returns its output.
pub fn infab(args: &[&str], deadline: Duration) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait(child, deadline, args)
}

pub fn wait(mut child: Child, deadline: Duration, args: &[&str]) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "infab {args:?} hung for {:?}\nstdout:\n{}\nstderr:\n{}",
                deadline,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `infab serve` and waits (up to 60 s: the emulated CPU is slow to
/// open a device) until it says it listens.
pub fn start_server(args: &[&str]) -> Child {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
            if line.contains("ready on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("infab serve did not start listening within 60 s");
    child
}

pub fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/results-schema/infab-results.schema.json"
    ))
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Loads a results file, validates it, and checks invariants every run must hold.
pub fn check_results(path: &Path) -> Value {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = schema();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{} does not match the schema:\n{}",
        path.display(),
        errors.join("\n")
    );
    for config in doc["results"].as_array().unwrap() {
        for clock in config["summary"]["latency"].as_array().unwrap() {
            let s = &clock["summary"];
            let p: Vec<u64> = ["min_ns", "p50_ns", "p95_ns", "p99_ns", "p999_ns", "max_ns"]
                .iter()
                .map(|k| s[k].as_u64().unwrap())
                .collect();
            assert!(
                p.windows(2).all(|w| w[0] <= w[1]),
                "percentiles out of order in {}: {p:?}",
                path.display()
            );
        }
        if let Some(m) = config["summary"]["verify_mismatches"].as_u64() {
            assert_eq!(m, 0, "payload mismatches in {}", path.display());
        }
        for trial in config["trials"].as_array().unwrap() {
            let per_qp: Vec<f64> = trial["per_qp"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| q["bytes"].as_f64().unwrap())
                .collect();
            if per_qp.len() > 1 {
                let sum: f64 = per_qp.iter().sum();
                let sq: f64 = per_qp.iter().map(|x| x * x).sum();
                let jfi = sum * sum / (per_qp.len() as f64 * sq);
                assert!(
                    (trial["jain_index"].as_f64().unwrap() - jfi).abs() < 1e-9,
                    "JFI differs from its formula"
                );
            }
            assert!(
                trial["throughput"]["bytes"].as_u64().unwrap() > 0,
                "a trial moved no bytes in {}",
                path.display()
            );
        }
    }
    doc
}

pub fn ok(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
}
