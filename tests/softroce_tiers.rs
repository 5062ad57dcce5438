//! End-to-end test of `infab run tiers` (IETF 5.4) on real verbs in the
//! SoftRoCE bed: the DRAM→DRAM tier over RDMA and the DRAM→file tier
//! (O_DIRECT) run and measure every size, the GPU tiers are listed as not
//! run with the reason (the bed has no GPU), the ratios divide by
//! DRAM→DRAM and say so, and the results validate against the schema.
//!
//! Outside the bed the test prints "skipped" and returns.

use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

fn tier<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["tiers"]["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tier"] == id)
        .unwrap_or_else(|| panic!("no tier {id} in {}", doc["tiers"]))
}

#[test]
fn dram_tiers_run_and_gpu_tiers_say_why_not() {
    let Some((dev0, dev1, _)) = bed() else {
        return;
    };
    let dir = out_dir();
    let json = dir.join("tiers-5.4.json");
    let files = dir.join("tiers-files");
    std::fs::create_dir_all(&files).unwrap();
    let out = infab(
        &[
            "run",
            "tiers",
            "-d",
            &dev1,
            "--target-device",
            &dev0,
            "--sizes",
            "64K,1M",
            "--trials",
            "2",
            "--duration",
            "0.5",
            "--latency-iters",
            "50",
            "--verify",
            "--file-dir",
            files.to_str().unwrap(),
            "--stall-timeout",
            "20",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(300),
    );
    ok(&out, "run tiers");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    let doc = check_results(&json);
    assert_eq!(doc["test_id"], "5.4");
    assert_eq!(doc["status"], "complete", "{}", doc["error"]);

    let dram = tier(&doc, "dram-dram");
    assert_eq!(dram["status"], "complete", "{dram}");
    assert_eq!(dram["memory"]["initiator"], "host");
    assert_eq!(dram["memory"]["target"], "host");
    assert_eq!(dram["memory"]["initiator_registration"], "host");
    assert_eq!(dram["memory"]["target_registration"], "host");
    let file = tier(&doc, "dram-file");
    assert_eq!(file["status"], "complete", "{file}");
    assert_eq!(file["transport"], "o-direct-write");
    for t in [dram, file] {
        let points = t["points"].as_array().unwrap();
        let sizes: Vec<u64> = points
            .iter()
            .map(|p| p["msg_bytes"].as_u64().unwrap())
            .collect();
        assert_eq!(sizes, [64 << 10, 1 << 20], "{t}");
        for p in points {
            assert!(p["gbytes_per_s"]["mean"].as_f64().unwrap() > 0.0, "{p}");
            let lat = &p["latency"];
            assert!(lat["count"].as_u64().unwrap() > 0, "{p}");
            assert!(lat["p50_ns"].as_u64().unwrap() <= lat["p99_ns"].as_u64().unwrap());
            assert!(p["ratio_to_baseline"].as_f64().unwrap() > 0.0, "{p}");
        }
    }
    // the baseline's ratio to itself is 1
    for p in dram["points"].as_array().unwrap() {
        assert!((p["ratio_to_baseline"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    }
    assert_eq!(doc["tiers"]["baseline"], "dram-dram");
    assert!(doc["tiers"]["ratio_label"]
        .as_str()
        .unwrap()
        .contains("no GPU→GPU"));
    // no GPU in the bed: every GPU tier is listed, not run, and says why
    if doc["tiers"]["gpu"].is_null() {
        for id in ["gpu-gpu", "gpu-dram", "dram-gpu", "gpu-file"] {
            let t = tier(&doc, id);
            assert_eq!(t["status"], "not-run", "{t}");
            let reason = t["reason"].as_str().unwrap();
            assert!(
                reason.contains("libcuda") || reason.contains("no GPU"),
                "{reason}"
            );
            assert!(t["points"].as_array().unwrap().is_empty());
        }
    }
    // the file the file tier wrote is gone
    assert!(std::fs::read_dir(&files).unwrap().next().is_none());
    assert!(stdout.contains("CPU DRAM → file (O_DIRECT)"), "{stdout}");
    assert!(stdout.contains("not run"), "{stdout}");
}
