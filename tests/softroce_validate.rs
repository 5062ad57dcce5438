//! End-to-end tests of `infab validate` on the SoftRoCE bed: the lenient
//! profile passes (exit 0), the strict one fails (exit 1) with readable
//! reasons and JUnit failures, and a bad profile cannot run (exit 2).
//!
//! Outside the bed every test prints "skipped" and returns, except the bad
//! profile, which needs no device.

use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

fn profile(name: &str) -> String {
    format!("{}/profiles/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn checks(path: &std::path::Path) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["checks"].as_array().unwrap().clone()
}

#[test]
fn lenient_profile_passes_on_the_bed() {
    if bed().is_none() {
        return;
    }
    // not a results file: kept apart from the ones the schema test validates
    let dir = out_dir().join("validate");
    std::fs::create_dir_all(&dir).unwrap();
    let junit = dir.join("validate-lenient.xml");
    let json = dir.join("validate-lenient.json");
    let runs = dir.join("validate-lenient-runs");
    let args = [
        "validate",
        "--profile",
        &profile("softroce-lenient.toml"),
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--results-dir",
        runs.to_str().unwrap(),
    ];
    let out = infab(&args, Duration::from_secs(600));
    let all = text(&out);
    println!("{all}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "lenient profile did not pass:\n{all}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testcase"), "{xml}");
    assert!(
        !xml.contains("<failure") && !xml.contains("<error"),
        "{xml}"
    );
    let checks = checks(&json);
    for name in [
        "QPs reach RTS",
        "active MTU rxe1",
        "RoCEv2 GID rxe0",
        "GB/s",
        "P99",
        "Jain index",
        "QP errors",
    ] {
        assert!(
            checks
                .iter()
                .any(|c| c["name"].as_str().unwrap().contains(name)),
            "no check named {name}: {checks:?}"
        );
    }
    // the short runs' results files are ordinary results files
    for file in ["test-0.json", "test-1.json"] {
        check_results(&runs.join(file));
    }
}

#[test]
fn strict_profile_fails_with_reasons() {
    if bed().is_none() {
        return;
    }
    // not a results file: kept apart from the ones the schema test validates
    let dir = out_dir().join("validate");
    std::fs::create_dir_all(&dir).unwrap();
    let junit = dir.join("validate-strict.xml");
    let json = dir.join("validate-strict.json");
    let args = [
        "validate",
        "--profile",
        &profile("softroce-strict.toml"),
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    let out = infab(&args, Duration::from_secs(600));
    let all = text(&out);
    println!("{all}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "strict profile did not fail:\n{all}"
    );
    assert!(all.contains("FAIL"), "{all}");
    assert!(
        all.contains("expected ≥ 50 GB/s"),
        "no bandwidth reason:\n{all}"
    );
    assert!(all.contains("expected ≤ 5 µs"), "no latency reason:\n{all}");
    assert!(all.contains("fix:"), "no fix:\n{all}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.matches("<failure").count() >= 3, "{xml}");
    let failed: Vec<String> = checks(&json)
        .iter()
        .filter(|c| c["status"] == "FAIL")
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        failed.iter().any(|n| n.contains("link speed")),
        "{failed:?}"
    );
    assert!(failed.iter().any(|n| n.contains("PFC")), "{failed:?}");
}

#[test]
fn bad_profile_cannot_run() {
    // not a results file: kept apart from the ones the schema test validates
    let dir = out_dir().join("validate");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("validate-bad.toml");
    std::fs::write(
        &bad,
        "[target]\ndevice = \"rxe1\"\n[preflight]\nmin_mtu_bytes = 9000\n",
    )
    .unwrap();
    let junit = dir.join("validate-bad.xml");
    let out = infab(
        &[
            "validate",
            "--profile",
            bad.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    let all = text(&out);
    println!("{all}");
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("preflight.min_mtu_bytes"), "{all}");
    assert!(std::fs::read_to_string(&junit).unwrap().contains("<error"));
    let out = infab(
        &["validate", "--profile", "/nonexistent/profile.toml"],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot read profile"));
}
