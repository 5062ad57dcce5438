//! `infab compare` end to end on files made from a real SoftRoCE results
//! file (no RDMA needed): exit codes, the verdict for a known shift, and
//! the refusals.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_infab");

/// The 5.1 fixture with `trials` trials per configuration at `scale` × its
/// first trial's throughput (latencies ÷ scale), ±0.5 % alternating noise.
fn write_variant(dir: &Path, name: &str, scale: f64, trials: usize) -> String {
    let mut doc: Value =
        serde_json::from_str(include_str!("fixtures/results/bw-write.json")).unwrap();
    for config in doc["results"].as_array_mut().unwrap() {
        let template = config["trials"][0].clone();
        let list: Vec<Value> = (0..trials)
            .map(|i| {
                let mut t = template.clone();
                let noise = 1.0 + if i % 2 == 0 { 0.005 } else { -0.005 } * (1 + i % 3) as f64;
                t["trial"] = Value::from(i);
                let g = t["throughput"]["gbytes_per_s"].as_f64().unwrap();
                t["throughput"]["gbytes_per_s"] = Value::from(g * scale * noise);
                for l in t["latency"].as_array_mut().unwrap() {
                    for key in ["p50_ns", "p99_ns"] {
                        let v = l["summary"][key].as_f64().unwrap();
                        l["summary"][key] = Value::from((v / scale * noise) as u64);
                    }
                }
                t
            })
            .collect();
        config["trials"] = Value::from(list);
    }
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

fn compare(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("compare")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_regression_is_found_and_gates_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_variant(dir.path(), "base.json", 1.0, 6);
    let worse = write_variant(dir.path(), "worse.json", 0.95, 6);
    let same = write_variant(dir.path(), "same.json", 1.0, 6);
    let (code, stdout, stderr) = compare(&[&base, &worse]);
    assert_eq!(code, 0, "no gate without --fail-on-regression: {stderr}");
    assert!(stdout.contains("worse"), "{stdout}");
    let out_dir = dir.path().join("cmp");
    let (code, _, stderr) = compare(&[
        &base,
        &worse,
        "--fail-on-regression",
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("compare.json")).unwrap())
            .unwrap();
    let rows = json[0]["rows"].as_array().unwrap();
    let throughput: Vec<&Value> = rows.iter().filter(|r| r["kpi"] == "throughput").collect();
    assert_eq!(throughput.len(), 6, "every configuration matched");
    for r in throughput {
        assert_eq!(r["verdict"], "worse", "{r}");
        assert!(r["p_value"].as_f64().unwrap() < 0.05);
    }
    assert!(std::fs::read_to_string(out_dir.join("compare.md"))
        .unwrap()
        .contains("| verdict |"));
    // per-trial values travel in the JSON, and the page charts them
    assert_eq!(rows[0]["base_values"].as_array().unwrap().len(), 6);
    assert_eq!(rows[0]["new_values"].as_array().unwrap().len(), 6);
    let html = std::fs::read_to_string(out_dir.join("compare.html")).unwrap();
    assert!(html.find("<table>").unwrap() < html.find("<svg").unwrap());
    assert_eq!(
        html.matches("<figure").count(),
        6,
        "a chart per configuration"
    );
    assert!(html.contains("BASE vs NEW per trial"));
    // the same distribution: nothing significant, the gate stays open
    let (code, stdout, _) = compare(&[&base, &same, "--fail-on-regression"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(!stdout.contains("│ worse"), "{stdout}");
    assert!(stdout.contains("0 worse"), "{stdout}");
}

#[test]
fn incompatible_files_and_too_few_trials_are_said() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_variant(dir.path(), "base.json", 1.0, 2);
    let new = write_variant(dir.path(), "new.json", 0.5, 2);
    let (code, stdout, _) = compare(&[&base, &new, "--fail-on-regression"]);
    assert_eq!(code, 0, "too few trials cannot regress: {stdout}");
    assert!(
        stdout.contains("not testable") && stdout.contains("fewer than 3 trials"),
        "{stdout}"
    );
    let mut other: Value = serde_json::from_str(&std::fs::read_to_string(&new).unwrap()).unwrap();
    other["test_id"] = Value::from("5.3");
    let other_path = dir.path().join("other.json");
    std::fs::write(&other_path, other.to_string()).unwrap();
    let (code, _, stderr) = compare(&[&base, other_path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("compare files of one test"), "{stderr}");
    let (code, _, stderr) = compare(&[&base, "/nonexistent.json"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent.json"), "{stderr}");
}

#[test]
fn a_schema_1_0_file_compares_with_a_1_2_file() {
    // BASE as the bed wrote it in schema 1.0 ([clock, interval] pairs), NEW
    // the same document in the 1.2 form (objects keyed by clock name)
    let dir = tempfile::tempdir().unwrap();
    let legacy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/legacy/lat-write-imm-1.0.json"
    );
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(legacy).unwrap()).unwrap();
    for config in doc["results"].as_array_mut().unwrap() {
        for key in ["p50_ns", "p99_ns"] {
            let pairs = config["summary"][key].as_array().unwrap().clone();
            let map: serde_json::Map<String, Value> = pairs
                .into_iter()
                .map(|p| (p[0].as_str().unwrap().to_string(), p[1].clone()))
                .collect();
            config["summary"][key] = Value::from(map);
        }
    }
    doc["schema_version"] = Value::from("1.2");
    let new = dir.path().join("new.json");
    std::fs::write(&new, doc.to_string()).unwrap();
    let (code, stdout, stderr) = compare(&[legacy, new.to_str().unwrap(), "--fail-on-regression"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("P50 initiator"), "{stdout}");
    assert!(stdout.contains("0 worse"), "{stdout}");
}
