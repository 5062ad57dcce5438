//! End-to-end tests on real verbs, in the SoftRoCE bed (two rxe devices on a
//! veth pair, see tests/softroce/). They drive the real `infab` binary and
//! validate every JSON it writes against results-schema/.
//!
//! Outside the bed (no /sys/class/infiniband/rxe0) each test prints
//! "skipped: no RDMA device" and returns. `make test` runs this binary inside
//! the VM: `tests/softroce/vm.sh target/.../softroce_e2e-*`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_infab");

fn bed() -> Option<(String, String, String)> {
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

fn out_dir() -> PathBuf {
    let dir = std::env::var("INFAB_RESULTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("softroce-results"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs infab with a hard deadline; returns its output.
fn infab(args: &[&str], deadline: Duration) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait(child, deadline, args)
}

fn wait(mut child: Child, deadline: Duration, args: &[&str]) -> Output {
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
fn start_server(args: &[&str]) -> Child {
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

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/results-schema/infab-results.schema.json"
    ))
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Loads a results file, validates it, and checks invariants every run must hold.
fn check_results(path: &Path) -> Value {
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

fn ok(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn bandwidth_every_op_qps_and_size() {
    let Some((dev0, dev1, _)) = bed() else { return };
    for op in ["write", "write-imm", "send"] {
        let json = out_dir().join(format!("bw-{op}.json"));
        let json_s = json.to_str().unwrap();
        println!("== infab p2p bandwidth {op} on {dev1} -> {dev0}");
        let out = infab(
            &[
                "run",
                "p2p",
                "-d",
                &dev1,
                "--target-device",
                &dev0,
                "--op",
                op,
                "--sizes",
                "64K,1M,16M",
                "--qps",
                "1,8",
                "--trials",
                "2",
                "--duration",
                "0.3",
                "--warmup",
                "2",
                "--verify",
                "--json",
                json_s,
            ],
            Duration::from_secs(240),
        );
        ok(&out, op);
        let doc = check_results(&json);
        assert_eq!(doc["status"], "complete");
        assert_eq!(doc["test_id"], "5.1");
        assert_eq!(doc["results"].as_array().unwrap().len(), 6);
    }
}

#[test]
fn one_gigabyte_message_once() {
    let Some((dev0, dev1, _)) = bed() else { return };
    let json = out_dir().join("bw-1g.json");
    println!("== infab p2p 1 GiB write on {dev1} -> {dev0}");
    let out = infab(
        &[
            "run",
            "p2p",
            "-d",
            &dev1,
            "--target-device",
            &dev0,
            "--sizes",
            "1G",
            "--trials",
            "1",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(300),
    );
    ok(&out, "1 GiB");
    let doc = check_results(&json);
    assert_eq!(
        doc["results"][0]["trials"][0]["throughput"]["bytes"],
        1u64 << 30
    );
}

#[test]
fn latency_in_all_three_clocks() {
    let Some((dev0, dev1, _)) = bed() else { return };
    for (op, clocks) in [("write-imm", 3), ("send", 3), ("write", 2)] {
        let json = out_dir().join(format!("lat-{op}.json"));
        println!("== infab p2p latency {op} on {dev1} -> {dev0}");
        let out = infab(
            &[
                "run",
                "p2p",
                "-d",
                &dev1,
                "--target-device",
                &dev0,
                "--latency",
                "--op",
                op,
                "--sizes",
                "4K,64K",
                "--trials",
                "2",
                "--iters",
                "200",
                "--verify",
                "--json",
                json.to_str().unwrap(),
            ],
            Duration::from_secs(240),
        );
        ok(&out, op);
        let doc = check_results(&json);
        assert_eq!(doc["test_id"], "5.2");
        let names: Vec<&str> = doc["results"][0]["summary"]["latency"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["clock"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), clocks, "clocks {names:?}");
        for config in doc["results"].as_array().unwrap() {
            for clock in config["summary"]["latency"].as_array().unwrap() {
                assert_eq!(clock["summary"]["count"], 400, "{op} {}", clock["clock"]);
            }
        }
    }
}

#[test]
fn two_processes_over_the_control_channel() {
    let Some((dev0, dev1, ip0)) = bed() else {
        return;
    };
    let json = out_dir().join("two-process.json");
    let server = start_server(&[
        "serve", "-d", &dev0, "--bind", &ip0, "--port", "18801", "--once", "--token", "s3cret",
    ]);
    let peer = format!("{ip0}:18801");
    // wrong token first: refused, clear message, and the --once server exits
    let out = infab(
        &[
            "run", "p2p", "-d", &dev1, "--peer", &peer, "--token", "wrong", "--sizes", "64K",
            "--trials", "1",
        ],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = wait(server, Duration::from_secs(30), &["serve"]);
    let server = start_server(&[
        "serve", "-d", &dev0, "--bind", &ip0, "--port", "18801", "--once", "--token", "s3cret",
    ]);
    let out = infab(
        &[
            "run",
            "p2p",
            "-d",
            &dev1,
            "--peer",
            &peer,
            "--token",
            "s3cret",
            "--op",
            "write-imm",
            "--sizes",
            "64K,1M",
            "--qps",
            "1,4",
            "--trials",
            "2",
            "--duration",
            "0.3",
            "--verify",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    ok(&out, "two-process run");
    let served = wait(server, Duration::from_secs(30), &["serve"]);
    assert!(
        served.status.success(),
        "serve: {}",
        String::from_utf8_lossy(&served.stderr)
    );
    let doc = check_results(&json);
    assert_eq!(doc["endpoints"]["target"]["name"], dev0.as_str());
    assert_eq!(doc["endpoints"]["same_host"], true);
}

#[test]
fn failures_end_quickly_with_a_reason() {
    let Some((_, dev1, ip0)) = bed() else { return };
    let cases: [(&[&str], &str); 4] = [
        (
            &["run", "p2p", "-d", "nosuchdev", "--peer", "127.0.0.1"],
            "no RDMA device matches",
        ),
        (
            &[
                "run",
                "p2p",
                "-d",
                &dev1,
                "--peer",
                &format!("{ip0}:18899"),
                "--sizes",
                "64K",
            ],
            "cannot reach",
        ),
        (
            &[
                "run",
                "p2p",
                "-d",
                &dev1,
                "--peer",
                "127.0.0.1",
                "--sizes",
                "12Q",
            ],
            "unit",
        ),
        (
            &[
                "run",
                "p2p",
                "-d",
                &dev1,
                "--peer",
                "127.0.0.1",
                "--qps",
                "0",
            ],
            "--qps",
        ),
    ];
    for (args, needle) in cases {
        let start = Instant::now();
        let out = infab(args, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected '{needle}' in:\n{stderr}"
        );
        assert!(start.elapsed() < Duration::from_secs(15));
        println!("{args:?} -> {}", stderr.trim());
    }
}

#[test]
fn dead_peer_ends_the_run_and_keeps_completed_results() {
    let Some((dev0, dev1, ip0)) = bed() else {
        return;
    };
    let json = out_dir().join("dead-peer.json");
    let mut server = start_server(&[
        "serve", "-d", &dev0, "--bind", &ip0, "--port", "18802", "--once",
    ]);
    let client = Command::new(BIN)
        .args([
            "run",
            "p2p",
            "-d",
            &dev1,
            "--peer",
            &format!("{ip0}:18802"),
            "--sizes",
            "64K,1M",
            "--trials",
            "3",
            "--duration",
            "1",
            "--stall-timeout",
            "5",
            "--json",
            json.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    server.kill().unwrap();
    let _ = server.wait();
    let killed_at = Instant::now();
    let out = wait(client, Duration::from_secs(60), &["run"]);
    println!(
        "client ended {:?} after the kill: {}",
        killed_at.elapsed(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    assert!(!out.status.success());
    assert!(killed_at.elapsed() < Duration::from_secs(40));
    let doc = check_results(&json);
    assert!(["partial", "failed"].contains(&doc["status"].as_str().unwrap()));
    assert!(doc["error"].is_string());
}
