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
