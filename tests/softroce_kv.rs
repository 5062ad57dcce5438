//! End-to-end tests of `infab run kv` (IETF 10.1 / 6.1) on real verbs in the
//! SoftRoCE bed: every layout × direction × notification × pipeline mode on
//! Llama-3.1-8B-sized requests, with `--verify` checking every page's bytes
//! at its destination page; two nodes through the rendezvous; a prompt
//! that does not fit the pool refused before traffic.
//!
//! Outside the bed every test prints "skipped" and returns.

use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

/// Runs one single-host kv configuration and returns its validated results.
fn kv_run(name: &str, extra: &[&str]) -> Value {
    let (dev0, dev1, _) = bed().expect("checked by the caller");
    let json = out_dir().join(format!("kv-{name}.json"));
    let mut args = vec![
        "run",
        "kv",
        "-d",
        &dev1,
        "--target-device",
        &dev0,
        "--trials",
        "1",
        "--stall-timeout",
        "20",
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = infab(&args, Duration::from_secs(240));
    ok(&out, name);
    check_results(&json)
}

/// TTFT is exactly its parts: T_queue + T_prefill (modelled) + exposed
/// T_transfer + T_decode_init (modelled).
fn assert_ttft_adds_up(r: &Value) {
    let ns = |k: &str| r[k].as_u64().unwrap();
    assert_eq!(
        ns("ttft_ns"),
        ns("t_queue_ns")
            + ns("t_prefill_modelled_ns")
            + ns("t_transfer_exposed_ns")
            + ns("t_decode_init_modelled_ns"),
        "{r}"
    );
}

/// Checks one kv results file: every request measured, TTFT = its parts,
/// every page verified.
fn check_kv(doc: &Value, requests: u64, verified: bool) {
    assert_eq!(doc["test_id"], "10.1");
    assert_eq!(doc["status"], "complete");
    let kv = &doc["kv"];
    for point in kv["points"].as_array().unwrap() {
        let s = &point["summary"];
        assert_eq!(s["requests"].as_u64().unwrap(), requests, "{point}");
        assert_eq!(
            s["verify_mismatches"].as_u64(),
            verified.then_some(0),
            "pages landed wrong: {}",
            kv["layout"]
        );
        for r in point["requests"].as_array().unwrap() {
            let ns = |k: &str| r[k].as_u64().unwrap();
            assert!(ns("t_transfer_ns") > 0);
            assert_ttft_adds_up(r);
            assert!(ns("post_ns") > 0 && ns("wrs") >= ns("descriptors"));
            assert_eq!(ns("bytes"), point["bytes_per_request"].as_u64().unwrap());
        }
    }
}

#[test]
fn every_layout_direction_notification_and_pipeline_verifies() {
    if bed().is_none() {
        return;
    }
    // 32 tokens of Llama-3.1-8B: 32 layers × K/V × 2 pages of 32 KiB = 4 MiB
    let mut ran = 0;
    for layout in ["vllm", "sglang", "contiguous"] {
        for direction in ["push", "pull"] {
            for notify in ["imm", "send", "none"] {
                for pipeline in ["request", "layer:8"] {
                    // push without a notification: nothing tells the decode
                    // side when to check its pages, so no --verify there
                    let verify = !(direction == "push" && notify == "none");
                    let name = format!(
                        "{layout}-{direction}-{notify}-{}",
                        pipeline.replace(':', "")
                    );
                    let doc = kv_run(
                        &name,
                        &[
                            "--model",
                            "llama-3.1-8b",
                            "--layout",
                            layout,
                            "--direction",
                            direction,
                            "--notify",
                            notify,
                            "--pipeline",
                            pipeline,
                            "--prompt",
                            "32",
                            "--requests",
                            "2",
                            "--qps",
                            "4",
                            "--fragmentation",
                            "0.5",
                            "--pool-blocks",
                            "8",
                            "--prefill",
                            "rate:200000",
                            "--decode-init",
                            "0.5",
                            if verify { "--verify" } else { "--poll=event" },
                        ],
                    );
                    check_kv(&doc, 2, verify);
                    let point = &doc["kv"]["points"][0];
                    let descs = point["descriptors_per_request"].as_u64().unwrap();
                    match layout {
                        // 2 · L · ceil(C / 16)
                        "vllm" => assert_eq!(descs, 2 * 32 * 2),
                        "contiguous" => assert_eq!(descs, 1),
                        // merging shortens the list but never below one per layer per K/V
                        _ => assert!((64..=128).contains(&descs), "{descs}"),
                    }
                    ran += 1;
                }
            }
        }
    }
    // MLA: DeepSeek-V3's single latent region
    let doc = kv_run(
        "mla-pull",
        &[
            "--model",
            "deepseek-v3",
            "--layout",
            "mla",
            "--prompt",
            "64",
            "--requests",
            "2",
            "--qps",
            "2",
            "--verify",
        ],
    );
    check_kv(&doc, 2, true);
    // 61 layers × 4 pages, one tensor
    assert_eq!(
        doc["kv"]["points"][0]["descriptors_per_request"].as_u64(),
        Some(61 * 4)
    );
    eprintln!("{} kv configurations ran", ran + 1);
}

#[test]
fn kv_across_two_nodes_and_bad_input_before_traffic() {
    let Some((dev0, dev1, _)) = bed() else { return };
    let topology = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/topologies/softroce-2node.toml"
    );
    let json = out_dir().join("kv-two-nodes.json");
    let node = |rank: &str, json: Option<&str>| {
        let mut args = vec![
            "run",
            "kv",
            "--topology",
            topology,
            "--node-rank",
            rank,
            "--rendezvous-timeout",
            "30",
            "--prompt",
            "128,256",
            "--requests",
            "4",
            "--trials",
            "2",
            "--layout",
            "sglang",
            "--fragmentation",
            "1",
            "--pool-blocks",
            "40",
            "--verify",
        ];
        if let Some(json) = json {
            args.extend_from_slice(&["--json", json]);
        }
        std::process::Command::new(BIN)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let n0 = node("0", json.to_str());
    std::thread::sleep(Duration::from_millis(300));
    let n1 = node("1", None);
    let o1 = wait(n1, Duration::from_secs(240), &["kv node 1"]);
    let o0 = wait(n0, Duration::from_secs(60), &["kv node 0"]);
    ok(&o1, "kv node 1");
    ok(&o0, "kv node 0");
    let doc = check_results(&json);
    check_kv(&doc, 8, true);
    assert_eq!(doc["kv"]["points"].as_array().unwrap().len(), 2);
    assert_eq!(doc["cluster"]["nodes"].as_array().unwrap().len(), 2);

    // a prompt that does not fit the pool: one line, non-zero, no results
    let bad = out_dir().join("kv-bad.json");
    let started = std::time::Instant::now();
    let out = infab(
        &[
            "run",
            "kv",
            "-d",
            &dev1,
            "--target-device",
            &dev0,
            "--prompt",
            "1024",
            "--pool-blocks",
            "8",
            "--json",
            bad.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--pool-blocks"), "{stderr}");
    assert!(!bad.exists(), "a refused run wrote results");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_link_cut_mid_trial_keeps_the_completed_requests() {
    let Some((dev0, dev1, _)) = bed() else { return };
    if std::env::var("INFAB_SOFTROCE").is_err() {
        eprintln!("skipped: fault injection runs only inside the VM bed (INFAB_SOFTROCE)");
        return;
    }
    let json = out_dir().join("kv-link-cut.json");
    let _ = std::fs::remove_file(&json);
    let args = [
        "run",
        "kv",
        "-d",
        &dev1,
        "--target-device",
        &dev0,
        "--prompt",
        "256",
        "--requests",
        "400",
        "--trials",
        "1",
        "--stall-timeout",
        "3",
        "--json",
        json.to_str().unwrap(),
    ];
    let child = std::process::Command::new(BIN)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the warmup and a few requests of trial 0 complete, then the link goes
    std::thread::sleep(Duration::from_secs(8));
    let ip = |state: &str| {
        std::process::Command::new("ip")
            .args(["link", "set", "veth1", state])
            .status()
            .unwrap()
    };
    assert!(ip("down").success());
    let cut = std::time::Instant::now();
    let out = wait(child, Duration::from_secs(120), &args);
    let took = cut.elapsed();
    assert!(ip("up").success());
    std::thread::sleep(Duration::from_secs(2)); // the bed's GIDs come back
    assert!(!out.status.success(), "a cut link must fail the run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("completed requests are kept"), "{stderr}");
    let doc = check_results(&json);
    assert_eq!(doc["status"], "partial");
    let requests = doc["kv"]["points"][0]["requests"].as_array().unwrap().len();
    assert!(requests > 0 && requests < 400, "{requests} requests kept");
    eprintln!("link cut: error after {took:?}, {requests} completed requests kept");
    // stall timeout 3 s plus the RC retries: well under the 10 s a user waits
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// Open-loop arrivals (issue "serving traffic"): at a rate far above what
/// one flow serves, every request queues behind the one before it and
/// T_queue grows request by request, measured from the intended arrival;
/// at a rate far below, nothing queues; a Poisson process and a replayed
/// trace in Mooncake's format run and validate.
#[test]
fn open_loop_arrivals_measure_queueing_from_the_intended_arrival() {
    if bed().is_none() {
        return;
    }
    let common = [
        "--model",
        "llama-3.1-8b",
        "--prompt",
        "32",
        "--requests",
        "8",
        "--qps",
        "4",
        "--pool-blocks",
        "8",
        "--verify",
    ];
    let queue_of = |doc: &Value| -> Vec<u64> {
        doc["kv"]["points"][0]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["t_queue_ns"].as_u64().unwrap())
            .collect()
    };
    // 1000 requests/s: 1 ms apart, each transfer takes tens of ms on rxe
    let mut args = common.to_vec();
    args.extend_from_slice(&["--arrival", "constant:1000"]);
    let fast = kv_run("open-loop-overload", &args);
    check_kv(&fast, 8, true);
    assert_eq!(fast["kv"]["arrival"], "constant:1000");
    assert_eq!(fast["kv"]["offered_rate_per_s"], 1000.0);
    let q = queue_of(&fast);
    assert!(q[0] < 5_000_000, "the first request does not queue: {q:?}");
    assert!(
        q.windows(2).all(|w| w[1] > w[0]) && q[7] > 20_000_000,
        "each request waits longer than the one before: {q:?}"
    );
    assert!(
        fast["kv"]["points"][0]["summary"]["t_queue"]["p99_ns"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(fast["deviations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d.as_str().unwrap().contains("open-loop arrivals")));
    // 4 requests/s: 250 ms apart, every request done before the next arrives
    let mut args = common.to_vec();
    args.extend_from_slice(&["--arrival", "constant:4"]);
    let slow = kv_run("open-loop-light", &args);
    check_kv(&slow, 8, true);
    let q = queue_of(&slow);
    assert!(q.iter().all(|&ns| ns < 5_000_000), "nothing queues: {q:?}");
    // Poisson and a replayed trace (Mooncake JSONL, generated here)
    let trace = out_dir().join("kv-trace.jsonl");
    std::fs::write(
        &trace,
        infab::workload::arrivals::synthetic_trace(8, 20.0, 1),
    )
    .unwrap();
    let trace_arg = format!("trace:{}", trace.display());
    for (name, arrival) in [
        ("open-loop-poisson", "poisson:20"),
        ("open-loop-trace", trace_arg.as_str()),
    ] {
        let mut args = common.to_vec();
        args.extend_from_slice(&["--arrival", arrival]);
        let doc = kv_run(name, &args);
        check_kv(&doc, 8, true);
        println!("{name}: T_queue per request {:?} ns", queue_of(&doc));
    }
    println!(
        "overload (constant:1000): T_queue per request {:?} ns",
        queue_of(&fast)
    );
}

/// Checks a prompt-mix results file: one point, every request its own
/// length from the mix, its bytes growing with its length, TTFT its parts,
/// every page verified, and the point's length the mean.
fn check_mix(doc: &Value, requests: u64, lengths: impl Fn(u64) -> bool) -> Vec<u64> {
    assert_eq!(doc["test_id"], "10.1");
    assert_eq!(doc["status"], "complete");
    let kv = &doc["kv"];
    assert!(kv["prompt_dist"].is_string(), "{}", kv["prompt_dist"]);
    let points = kv["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "a mix is one point");
    let point = &points[0];
    assert_eq!(point["summary"]["requests"].as_u64().unwrap(), requests);
    assert_eq!(point["summary"]["verify_mismatches"].as_u64(), Some(0));
    let mut by_length: Vec<(u64, u64)> = Vec::new();
    let mut prompts = Vec::new();
    for r in point["requests"].as_array().unwrap() {
        let ns = |k: &str| r[k].as_u64().unwrap();
        assert!(lengths(ns("prompt_tokens")), "{r}");
        assert_ttft_adds_up(r);
        assert_eq!(r["verify_mismatches"].as_u64(), Some(0));
        by_length.push((ns("prompt_tokens"), ns("bytes")));
        prompts.push(ns("prompt_tokens"));
    }
    by_length.sort();
    assert!(
        by_length.windows(2).all(|w| w[1].1 >= w[0].1),
        "a longer prompt moves no fewer bytes: {by_length:?}"
    );
    let mean = prompts.iter().sum::<u64>() / prompts.len() as u64;
    assert_eq!(point["prompt_tokens"].as_u64().unwrap(), mean);
    assert!(doc["deviations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d.as_str().unwrap().contains("prompt mix")));
    prompts
}

/// A prompt mix on `run kv` (issue "serving traffic": --prompt-dist):
/// every request draws its own length, both ends plan it alike (pull and
/// push, request-sized and layer-pipelined), every page lands verified; a
/// replayed Mooncake trace gives arrivals and prompt lengths from the same
/// lines.
#[test]
fn a_prompt_mix_gives_every_request_its_own_length() {
    if bed().is_none() {
        return;
    }
    for (name, extra) in [
        (
            "mix-uniform-pull-poisson",
            [
                "--layout",
                "vllm",
                "--prompt-dist",
                "uniform:16..128",
                "--arrival",
                "poisson:20",
            ],
        ),
        (
            "mix-zipf-push-layer",
            [
                "--layout",
                "sglang",
                "--prompt-dist",
                "zipf:alpha=1.0,16..128",
                "--pipeline",
                "layer:8",
            ],
        ),
    ] {
        let mut args = vec![
            "--model",
            "llama-3.1-8b",
            "--requests",
            "12",
            "--qps",
            "2",
            "--verify",
        ];
        args.extend_from_slice(&extra);
        let doc = kv_run(name, &args);
        let prompts = check_mix(&doc, 12, |t| (16..=128).contains(&t));
        let mut distinct = prompts.clone();
        distinct.sort();
        distinct.dedup();
        assert!(
            distinct.len() >= 4,
            "{name}: a mix, not one length: {prompts:?}"
        );
        println!("{name}: prompt tokens per request {prompts:?}");
    }
    // a replayed trace: request i arrives at line i's timestamp with line
    // i's input_length (a small custom model: 2 KiB per token)
    let trace = out_dir().join("kv-mix-trace.jsonl");
    let text = infab::workload::arrivals::synthetic_trace(10, 20.0, 3);
    std::fs::write(&trace, &text).unwrap();
    let expected =
        infab::workload::lengths::trace_lengths(&text, infab::workload::TraceField::Input).unwrap();
    let arrival = format!("trace:{}", trace.display());
    let doc = kv_run(
        "mix-trace",
        &[
            "--model",
            "CFG-E:L=4,H_kv=2,D=64,P=2",
            "--layout",
            "sglang",
            "--arrival",
            &arrival,
            "--prompt-dist",
            "trace",
            "--requests",
            "10",
            "--verify",
        ],
    );
    let prompts = check_mix(&doc, 10, |t| (128..=4096).contains(&t));
    assert_eq!(
        prompts,
        expected[..10],
        "the trace's input lengths, in order"
    );
    println!("mix-trace: prompt tokens per request {prompts:?}");
}
