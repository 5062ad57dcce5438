//! End-to-end tests on real verbs, in the SoftRoCE bed (two rxe devices on a
//! veth pair, see tests/softroce/). They drive the real `infab` binary and
//! validate every JSON it writes against results-schema/.
//!
//! Outside the bed (no /sys/class/infiniband/rxe0) each test prints
//! "skipped: no RDMA device" and returns. `make test` runs this binary inside
//! the VM: `tests/softroce/vm.sh target/.../softroce_e2e-*`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

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
fn every_poll_mode_runs_bandwidth_and_latency() {
    let Some((dev0, dev1, _)) = bed() else { return };
    for mode in ["spin", "yield", "event"] {
        for (what, extra) in [
            (
                "bandwidth",
                &[
                    "--op",
                    "write",
                    "--sizes",
                    "64K",
                    "--qps",
                    "2",
                    "--duration",
                    "0.5",
                ][..],
            ),
            (
                "latency",
                &[
                    "--latency",
                    "--op",
                    "send",
                    "--clock",
                    "pingpong",
                    "--sizes",
                    "64",
                    "--iters",
                    "300",
                ][..],
            ),
        ] {
            let json = out_dir().join(format!("poll-{mode}-{what}.json"));
            let mut args = vec![
                "run",
                "p2p",
                "-d",
                &dev1,
                "--target-device",
                &dev0,
                "--trials",
                "2",
                "--poll",
                mode,
                "--json",
                json.to_str().unwrap(),
            ];
            args.extend_from_slice(extra);
            let out = infab(&args, Duration::from_secs(120));
            ok(&out, &format!("--poll {mode} {what}"));
            let doc = check_results(&json);
            assert_eq!(doc["parameters"]["poll"]["mode"], mode);
            assert_eq!(doc["parameters"]["poll"]["forced"], true);
            let summary = &doc["results"][0]["summary"];
            if what == "bandwidth" {
                assert!(summary["gbytes_per_s"]["mean"].as_f64().unwrap() > 0.0);
            } else {
                let p50 = summary["latency"][0]["summary"]["p50_ns"].as_u64().unwrap();
                assert!(p50 > 0);
                println!("--poll {mode}: ping-pong 64 B P50 {p50} ns");
            }
        }
    }
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

#[test]
fn latency_under_background_load() {
    let Some((dev0, dev1, _)) = bed() else { return };
    let json = out_dir().join("lat-loaded.json");
    println!("== infab p2p latency write-imm 64K under 50 % background on {dev1} -> {dev0}");
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
            "write-imm",
            "--sizes",
            "64K",
            "--background",
            "0,50",
            "--trials",
            "2",
            "--duration",
            "1",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(180),
    );
    ok(&out, "latency under background load");
    let doc = check_results(&json);
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["test_id"], "5.2");
    assert!(doc["deviations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d.as_str().unwrap().starts_with("loaded")));
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "one configuration per level");
    let p99 = |config: &serde_json::Value, clock: &str| {
        config["summary"]["latency"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["clock"] == clock)
            .map(|l| l["summary"]["p99_ns"].as_u64().unwrap())
            .unwrap()
    };
    let unloaded = &results[0]["background"];
    assert_eq!(unloaded["level_percent"], 0);
    let bg = &results[1]["background"];
    assert_eq!(bg["level_percent"], 50);
    assert_eq!(bg["qps"], 4);
    assert_eq!(bg["msg_bytes"], 65_536);
    let capacity = bg["capacity_gbytes_per_s"].as_f64().unwrap();
    let target = bg["target_gbytes_per_s"].as_f64().unwrap();
    let achieved = bg["achieved_mean_gbytes_per_s"].as_f64().unwrap();
    assert!(capacity > 0.0);
    assert!(
        (target / capacity - 0.5).abs() < 1e-6,
        "{target} vs {capacity}"
    );
    assert_eq!(bg["achieved_gbytes_per_s"].as_array().unwrap().len(), 2);
    assert!(bg["within_5_percent"].is_boolean());
    for clock in ["initiator", "target", "pingpong"] {
        println!(
            "{clock}: P99 unloaded {} ns, at 50 % {} ns",
            p99(&results[0], clock),
            p99(&results[1], clock)
        );
    }
    println!(
        "background: capacity {capacity:.3} GB/s, target {target:.3} GB/s, achieved {achieved:.3} GB/s \
         (per trial {}), worst {:.2} %, within ±5 %: {}",
        bg["achieved_gbytes_per_s"],
        bg["worst_deviation_percent"].as_f64().unwrap(),
        bg["within_5_percent"]
    );
    // generous: SoftRoCE shares two vCPUs between the foreground, the
    // background and the kernel's rxe work; the JSON carries the real numbers
    assert!(
        achieved > 0.25 * target && achieved < 1.25 * target,
        "achieved {achieved} GB/s vs target {target} GB/s"
    );
}

/// Issue "engine speed": a 5.2 background stream paced in event mode holds
/// its rate and costs less CPU per byte moved than spinning. On rxe the
/// posting thread also runs the provider's packet work (in ibv_post_send),
/// the same in both modes: at 50 % that work is most of the thread's CPU and
/// the two modes' CPU per GB/s differ by run-to-run noise (measured −2 %,
/// −37 %, +14 % for event vs spin in three runs), so 50 % is printed, not
/// judged; at 20 % the waiting dominates and event mode must cost less.
#[test]
fn a_paced_background_stream_in_event_mode_costs_less_cpu_per_byte_than_spinning() {
    let Some((dev0, dev1, _)) = bed() else { return };
    // (mode, level) -> (CPU % per GB/s, achieved / target)
    let mut seen = std::collections::HashMap::new();
    for mode in ["spin", "event"] {
        let json = out_dir().join(format!("bg-poll-{mode}.json"));
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
                "write-imm",
                "--sizes",
                "64K",
                "--background",
                "20,50",
                "--trials",
                "3",
                "--duration",
                "1",
                "--poll",
                mode,
                "--json",
                json.to_str().unwrap(),
            ],
            Duration::from_secs(240),
        );
        ok(
            &out,
            &format!("background at 20 and 50 % with --poll {mode}"),
        );
        let doc = check_results(&json);
        for config in doc["results"].as_array().unwrap() {
            let bg = &config["background"];
            if bg.is_null() {
                continue;
            }
            assert_eq!(bg["poll"], mode);
            assert_eq!(bg["cpu_percent"].as_array().unwrap().len(), 3);
            let level = bg["level_percent"].as_u64().unwrap();
            let cpu = bg["cpu_mean_percent"].as_f64().unwrap();
            let achieved = bg["achieved_mean_gbytes_per_s"].as_f64().unwrap();
            let target = bg["target_gbytes_per_s"].as_f64().unwrap();
            println!(
                "--poll {mode} at {level} %: background CPU {cpu:.1} %, achieved {achieved:.4} of {target:.4} GB/s ({:.0} % CPU per GB/s), worst {:.1} %",
                cpu / achieved.max(1e-9),
                bg["worst_deviation_percent"].as_f64().unwrap()
            );
            // each run paces at its level of the capacity it measured
            // itself: compare the CPU per GB/s moved
            seen.insert((mode, level), (cpu / achieved.max(1e-9), achieved / target));
        }
    }
    let cost = |mode: &str, level: u64| seen[&(mode, level)].0;
    assert!(
        cost("event", 20) < cost("spin", 20),
        "at 20 %: event {:.0} % CPU per GB/s vs spin {:.0}",
        cost("event", 20),
        cost("spin", 20)
    );
    println!(
        "at 50 %: event {:.0} % CPU per GB/s vs spin {:.0} (rxe packet work dominates: not judged)",
        cost("event", 50),
        cost("spin", 50)
    );
    // generous on the bed (2 vCPUs shared with the kernel's rxe work)
    for level in [20, 50] {
        let held = seen[&("event", level)].1;
        assert!(
            (0.75..1.25).contains(&held),
            "event mode at {level} % achieved {held:.3} of its target"
        );
    }
}

/// Issue "A/B comparison": the same 5.1 point with --qps 1 and --qps 8 in
/// one boot, judged by `infab compare` (the knob that differs is the A/B
/// question); the JSON output carries a verdict and a p-value per KPI.
#[test]
fn compare_one_qp_against_eight() {
    let Some((dev0, dev1, _)) = bed() else { return };
    let mut files = Vec::new();
    for qps in ["1", "8"] {
        let json = out_dir().join(format!("compare-qps{qps}.json"));
        let out = infab(
            &[
                "run",
                "p2p",
                "-d",
                &dev1,
                "--target-device",
                &dev0,
                "--sizes",
                "64K",
                "--qps",
                qps,
                "--trials",
                "5",
                "--duration",
                "0.3",
                "--json",
                json.to_str().unwrap(),
            ],
            Duration::from_secs(120),
        );
        ok(&out, &format!("--qps {qps}"));
        files.push(json);
    }
    let dir = out_dir().join("compare-qps");
    let out = infab(
        &[
            "compare",
            files[0].to_str().unwrap(),
            files[1].to_str().unwrap(),
            "-o",
            dir.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    ok(&out, "compare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        stdout.contains("64K × 1 QP is compared with NEW's 64K × 8 QPs"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    let throughput = json[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kpi"] == "throughput")
        .unwrap()
        .clone();
    assert_eq!(throughput["base_n"], 5);
    assert!(throughput["p_value"].as_f64().is_some(), "{throughput}");
    assert!(
        ["better", "worse", "no_significant_change"]
            .contains(&throughput["verdict"].as_str().unwrap()),
        "{throughput}"
    );
}
