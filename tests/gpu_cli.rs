//! GPU memory flags end to end on a host without a GPU (CI): `--mem
//! cuda:N` must end with one line naming libcuda (or the missing GPU) and
//! exit 1, before any RDMA device is touched; `devices --gpu` likewise.
//! On a host where the CUDA driver loads these checks do not apply and
//! say so.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_infab");

/// Whether this host has a CUDA driver (then the no-GPU checks skip).
fn host_has_cuda() -> bool {
    match infab::verbs::cuda::driver() {
        Ok(driver) => {
            eprintln!(
                "skipped: this host has a CUDA driver ({})",
                driver.library()
            );
            true
        }
        Err(_) => false,
    }
}

/// Runs infab with `args`; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_naming_libcuda(code: i32, stderr: &str, flag: &str) {
    assert_eq!(code, 1, "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {stderr}");
    let line = lines[0];
    assert!(line.starts_with("infab: error: "), "{line}");
    assert!(line.contains(flag), "names the flag: {line}");
    assert!(
        line.contains("libcuda") || line.contains("no GPU"),
        "names libcuda or the missing GPU: {line}"
    );
    assert!(line.contains("--mem host"), "names the fix: {line}");
}

#[test]
fn p2p_with_gpu_memory_names_libcuda_and_exits_1() {
    if host_has_cuda() {
        return;
    }
    let (code, _, stderr) = run(&[
        "run",
        "p2p",
        "-d",
        "rxe1",
        "--target-device",
        "rxe0",
        "--mem",
        "cuda:0",
    ]);
    assert_one_line_naming_libcuda(code, &stderr, "--mem cuda:0");
}

#[test]
fn a_gpu_target_names_libcuda_too() {
    if host_has_cuda() {
        return;
    }
    let (code, _, stderr) = run(&[
        "run",
        "kv",
        "-d",
        "rxe1",
        "--target-device",
        "rxe0",
        "--target-mem",
        "cuda:1",
    ]);
    assert_one_line_naming_libcuda(code, &stderr, "--target-mem cuda:1");
}

#[test]
fn a_bad_memory_kind_is_refused_before_anything_runs() {
    let (code, _, stderr) = run(&[
        "run",
        "p2p",
        "-d",
        "rxe1",
        "--target-device",
        "rxe0",
        "--mem",
        "gpu",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--mem: 'gpu' is no memory kind; use host, huge or cuda:N"),
        "{stderr}"
    );
}

#[test]
fn cpu_polled_pingpong_is_refused_on_gpu_memory() {
    let (code, _, stderr) = run(&[
        "run",
        "p2p",
        "-d",
        "rxe1",
        "--target-device",
        "rxe0",
        "--latency",
        "--clock",
        "pingpong",
        "--mem",
        "cuda:0",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--clock initiator,target"), "{stderr}");
}

#[test]
fn devices_gpu_without_a_gpu_says_why_in_one_line_and_exits_1() {
    if host_has_cuda() {
        return;
    }
    let (code, stdout, stderr) = run(&["devices", "--gpu"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("infab: error: devices --gpu: "),
        "{stderr}"
    );
    assert!(lines[0].contains("libcuda"), "{stderr}");
}

#[test]
fn latency_on_gpu_memory_leaves_out_the_cpu_polled_clock_by_default() {
    if host_has_cuda() {
        return;
    }
    // the default clocks pass validation (no pingpong), so the GPU check is what stops it
    let (code, _, stderr) = run(&[
        "run",
        "p2p",
        "-d",
        "rxe1",
        "--target-device",
        "rxe0",
        "--latency",
        "--mem",
        "cuda:0",
    ]);
    assert_one_line_naming_libcuda(code, &stderr, "--mem cuda:0");
}

/// 5.4 on a host with neither RDMA nor (here) a GPU: `run tiers` with only
/// --file-dir runs the DRAM → file tier, lists every other tier as not run
/// with its reason, writes `endpoints: null`, and the file validates. Where
/// the file system refuses O_DIRECT the DRAM → file tier says so instead.
#[test]
fn tiers_with_only_a_file_dir_run_the_file_tiers_without_rdma() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("tiers-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("tiers.json");
    let (code, stdout, stderr) = run(&[
        "run",
        "tiers",
        "--file-dir",
        dir.to_str().unwrap(),
        "--sizes",
        "64K,1M",
        "--trials",
        "2",
        "--duration",
        "0.2",
        "--verify",
        "--json",
        json.to_str().unwrap(),
    ]);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let tier = |id: &str| {
        doc["tiers"]["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tier"] == id)
            .unwrap()
            .clone()
    };
    assert!(doc["endpoints"].is_null(), "{}", doc["endpoints"]);
    let dram_dram = tier("dram-dram");
    assert_eq!(dram_dram["status"], "not-run");
    assert!(dram_dram["reason"]
        .as_str()
        .unwrap()
        .contains("no RDMA target given"));
    let file = tier("dram-file");
    if file["status"] == "complete" {
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(file["points"].as_array().unwrap().len(), 2);
        assert_eq!(file["points"][0]["latency_clock"], "pwrite");
        assert!(stdout.contains("no RDMA device"), "{stdout}");
    } else {
        eprintln!("O_DIRECT not available under target/: {}", file["reason"]);
        assert_eq!(file["status"], "not-run");
    }
    if !host_has_cuda() {
        assert_eq!(tier("gpu-file")["status"], "not-run");
    }
    // the schema: endpoints may be null (1.3)
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("results-schema/infab-results.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without --file-dir and without a target, tiers has nothing to run: one
/// line that names both ways, exit 1.
#[test]
fn tiers_without_a_target_or_a_file_dir_say_what_to_give() {
    let (code, _, stderr) = run(&["run", "tiers"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--target-device"), "{stderr}");
    assert!(stderr.contains("--file-dir"), "{stderr}");
}
