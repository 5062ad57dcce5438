//! End-to-end tests of `infab run serving` (IETF 6.2, 6.4, 9.4, the
//! Request_Rate knee) on real verbs in the SoftRoCE bed: prefill workers on
//! rxe1, decode workers on rxe0, open-loop arrivals, every admitted
//! request's KV moved over RDMA and verified where it lands. rxe numbers
//! are function checks, never performance.
//!
//! Outside the bed every test prints "skipped" and returns.

use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

/// Small requests on Llama-3.1-8B dims (128 KiB per token): 16..64-token
/// prompts move 2..8 MiB each.
const SMALL: &[&str] = &[
    "--prompt-dist",
    "uniform:16..64",
    "--output-dist",
    "uniform:4..16",
    "--pool-blocks",
    "32",
    "--prefill",
    "rate:20000",
    "--decode-step",
    "5ms",
    "--stall-timeout",
    "20",
];

fn serving(name: &str, extra: &[&str]) -> Value {
    let (dev0, dev1, _) = bed().expect("checked by the caller");
    let json = out_dir().join(format!("serving-{name}.json"));
    let mut args = vec![
        "run",
        "serving",
        "-d",
        &dev1,
        "--target-device",
        &dev0,
        "--json",
        json.to_str().unwrap(),
    ];
    // the test's own flags replace the defaults of the same name
    for pair in SMALL.chunks(2) {
        if !extra.contains(&pair[0]) {
            args.extend_from_slice(pair);
        }
    }
    args.extend_from_slice(extra);
    let out = infab(&args, Duration::from_secs(300));
    ok(&out, name);
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let doc = check_results(&json);
    assert_eq!(doc["status"], "complete", "{name}");
    doc
}

/// Every trial accounts for every offered request, and every admitted
/// request landed with its bytes intact.
fn check_accounting(doc: &Value) {
    for point in doc["serving"]["points"].as_array().unwrap() {
        for t in point["trials"].as_array().unwrap() {
            let n = |k: &str| t[k].as_u64().unwrap();
            assert_eq!(
                n("admitted") + n("rejected") + n("unfinished"),
                n("offered"),
                "{t:#}"
            );
            assert_eq!(n("unfinished"), 0, "every request ended");
            assert_eq!(
                n("completed"),
                n("admitted"),
                "every admitted request landed"
            );
            assert!(
                t["verify_mismatches"].is_null() || t["verify_mismatches"] == 0,
                "pages verified"
            );
            for r in t["requests"].as_array().unwrap() {
                if r["status"] == "completed" {
                    let n = |k: &str| r[k].as_u64().unwrap();
                    let parts = n("t_queue_ns")
                        + n("t_prefill_elapsed_ns")
                        + n("t_admission_ns")
                        + n("t_transfer_ns")
                        + n("t_decode_init_modelled_ns");
                    assert_eq!(n("ttft_ns"), parts, "TTFT is the sum of its parts: {r:#}");
                    assert!(
                        n("t_prefill_elapsed_ns") >= n("t_prefill_modelled_ns"),
                        "{r:#}"
                    );
                }
            }
        }
    }
}

#[test]
fn one_prefill_one_decode_with_poisson_arrivals_lands_and_verifies() {
    if bed().is_none() {
        println!("skipped: no SoftRoCE bed");
        return;
    }
    let doc = serving(
        "1p1d",
        &[
            "--xpyd",
            "1P1D",
            "--arrival",
            "poisson:5",
            "--requests",
            "12",
            "--trials",
            "2",
            "--verify",
        ],
    );
    assert_eq!(doc["test_id"], "6.2");
    check_accounting(&doc);
    let t = &doc["serving"]["points"][0]["trials"][0];
    assert_eq!(t["completed"], 12);
    assert!(t["bursts"]["count"].as_u64().unwrap() >= 1);
    assert!(!t["rate_series_bytes"].as_array().unwrap().is_empty());
}

#[test]
fn two_by_two_pools_spread_requests_least_loaded() {
    if bed().is_none() {
        println!("skipped: no SoftRoCE bed");
        return;
    }
    let doc = serving(
        "2p2d",
        &[
            "--xpyd",
            "2P2D",
            "--arrival",
            "poisson:8",
            "--requests",
            "16",
            "--trials",
            "2",
            "--route",
            "least-loaded",
            "--verify",
        ],
    );
    check_accounting(&doc);
    let t = &doc["serving"]["points"][0]["trials"][0];
    let decode = t["decode_workers"].as_array().unwrap();
    assert_eq!(decode.len(), 2);
    assert!(
        decode.iter().all(|w| w["requests"].as_u64().unwrap() > 0),
        "{decode:#?}"
    );
    let jfi = t["jfi_decode_bytes"].as_f64().unwrap();
    assert!(jfi > 0.5 && jfi <= 1.0, "JFI {jfi}");
    let prefill = t["prefill_workers"].as_array().unwrap();
    assert!(
        prefill.iter().all(|w| w["requests"].as_u64().unwrap() > 0),
        "{prefill:#?}"
    );
}

/// Pull (vLLM's NixlConnector): decode workers READ each request's pages
/// from its prefill worker as soon as they granted theirs, then notify the
/// prefill worker with a SEND, which frees its pages. Small decode pools
/// make requests queue for pages, so pulls start both at once and from the
/// FIFO; every admitted request lands verified.
#[test]
fn decode_workers_pull_and_notify_every_admitted_request() {
    if bed().is_none() {
        println!("skipped: no SoftRoCE bed");
        return;
    }
    let doc = serving(
        "pull-2p2d",
        &[
            "--xpyd",
            "2P2D",
            "--layout",
            "vllm",
            "--arrival",
            "poisson:25",
            "--requests",
            "16",
            "--trials",
            "2",
            "--pool-blocks",
            "8",
            "--decode-step",
            "20ms",
            "--qps",
            "2",
            "--verify",
        ],
    );
    assert_eq!(doc["serving"]["direction"], "pull");
    check_accounting(&doc);
    let trials = doc["serving"]["points"][0]["trials"].as_array().unwrap();
    for t in trials {
        assert_eq!(t["completed"], 16, "{t:#}");
        assert_eq!(t["verify_mismatches"], 0);
        let decode = t["decode_workers"].as_array().unwrap();
        assert!(decode.iter().all(|w| w["requests"].as_u64().unwrap() > 0));
    }
    let waits: u64 = trials
        .iter()
        .map(|t| t["admission_waits"].as_u64().unwrap())
        .sum();
    assert!(waits > 0, "8-page pools make requests queue for pages");
    println!("pull 2P2D: {waits} admission waits over 2 trials");
}

#[test]
fn fabric_control_asks_and_grants_over_rdma_sends() {
    if bed().is_none() {
        println!("skipped: no SoftRoCE bed");
        return;
    }
    // 2P2D with 8-page pools: requests queue for pages, so GRANTs come
    // both at once and from the decode worker's FIFO; push and pull
    for (layout, direction) in [("sglang", "push"), ("vllm", "pull")] {
        let name = format!("fabric-{direction}");
        let doc = serving(
            &name,
            &[
                "--xpyd",
                "2P2D",
                "--layout",
                layout,
                "--control",
                "fabric",
                "--arrival",
                "poisson:25",
                "--requests",
                "16",
                "--trials",
                "2",
                "--pool-blocks",
                "8",
                "--decode-step",
                "20ms",
                "--qps",
                "2",
                "--verify",
            ],
        );
        assert_eq!(doc["serving"]["control"], "fabric");
        assert_eq!(doc["serving"]["direction"], direction);
        check_accounting(&doc);
        let trials = doc["serving"]["points"][0]["trials"].as_array().unwrap();
        let mut waits = 0;
        for t in trials {
            assert_eq!(t["completed"], 16, "{t:#}");
            assert_eq!(t["verify_mismatches"], 0);
            waits += t["admission_waits"].as_u64().unwrap();
            for r in t["requests"].as_array().unwrap() {
                // the ASK (and, pushed, the GRANT) crossed the fabric
                if !r["t_admission_ns"].is_null() && direction == "push" {
                    assert!(r["t_admission_ns"].as_u64().unwrap() > 0, "{r:#}");
                }
            }
        }
        assert!(waits > 0, "8-page pools make requests queue for pages");
        let admission = &trials[0]["t_admission"];
        println!(
            "fabric {direction} 2P2D: {waits} admission waits over 2 trials, T_admission P50 {} ns",
            admission["p50_ns"]
        );
    }
}

#[test]
fn a_full_decode_pool_rejects_and_counts_every_rejection() {
    if bed().is_none() {
        println!("skipped: no SoftRoCE bed");
        return;
    }
    // one 64+16-token request takes 5 of 6 pages for 16 × 50 ms: arrivals
    // every 50 ms find the pool full; with fabric control each refusal is
    // a REJECT message, counted at the prefill side
    for control in ["shared", "fabric"] {
        let doc = serving(
            &format!("reject-{control}"),
            &[
                "--control",
                control,
                "--arrival",
                "constant:20",
                "--requests",
                "10",
                "--trials",
                "1",
                "--prompt-dist",
                "fixed:64",
                "--output-dist",
                "fixed:16",
                "--pool-blocks",
                "6",
                "--decode-step",
                "50ms",
                "--admission",
                "reject",
                "--verify",
            ],
        );
        check_accounting(&doc);
        assert_eq!(doc["serving"]["control"], control);
        let t = &doc["serving"]["points"][0]["trials"][0];
        assert!(t["rejected"].as_u64().unwrap() > 0, "{}", t["rejected"]);
        assert!(t["completed"].as_u64().unwrap() > 0);
    }
}

#[test]
fn oversubscribing_the_prefill_pool_shows_queueing_not_a_lower_rate() {
    if bed().is_none() {
        println!("skipped: no SoftRoCE bed");
        return;
    }
    // 64-token prompts at 2,000 tokens/s: 32 ms of modelled prefill each
    let doc = serving(
        "6.4",
        &[
            "--prompt-dist",
            "fixed:64",
            "--prefill",
            "rate:2000",
            "--oversubscribe",
            "0.5..2.0:1.5",
            "--requests",
            "12",
            "--trials",
            "1",
            "--bin",
            "1ms",
        ],
    );
    assert_eq!(doc["test_id"], "6.4");
    check_accounting(&doc);
    let points = doc["serving"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    let q99 = |p: &Value| p["trials"][0]["t_queue"]["p99_ns"].as_u64().unwrap();
    let (low, high) = (&points[0], &points[1]);
    assert!((low["load_multiple"].as_f64().unwrap() - 0.5).abs() < 1e-6);
    assert!(
        q99(high) > q99(low) + 20_000_000,
        "T_queue P99 at 2x {} ns vs 0.5x {} ns",
        q99(high),
        q99(low)
    );
    for p in points {
        let b = &p["trials"][0]["bursts"];
        assert!(
            b["peak_gbytes_per_s"].as_f64().unwrap() >= b["mean_gbytes_per_s"].as_f64().unwrap()
        );
    }
}

#[test]
fn a_rate_sweep_reports_the_knee_and_ratios_their_pareto_front() {
    if bed().is_none() {
        println!("skipped: no SoftRoCE bed");
        return;
    }
    let doc = serving(
        "rate-sweep",
        &[
            "--rate-sweep",
            "2..200:99",
            "--slo-ttft",
            "1s",
            "--requests",
            "12",
            "--trials",
            "1",
        ],
    );
    let knee = doc["serving"]["knee_rate_per_s"].as_f64();
    println!("knee: {knee:?}");
    assert!(
        knee.is_some_and(|k| k >= 2.0),
        "2 req/s of 2-8 MiB requests meets a 1 s TTFT"
    );
    let doc = serving(
        "6.2",
        &[
            "--xpyd",
            "1P1D,1P2D",
            "--arrival",
            "poisson:10",
            "--requests",
            "10",
            "--trials",
            "1",
            "--slo-ttft",
            "2s",
        ],
    );
    let front = doc["serving"]["pareto_ratios"].as_array().unwrap();
    assert!(!front.is_empty());
}

/// 10.3: two model instances (Llama-3.1-8B at 10 req/s and Llama-3.1-70B at
/// 5 req/s), each on its own 1P1D pools, run alone and then at once on the
/// two devices. Every point accounts for and verifies its requests; each
/// tenant gets its TTFT and KV-transfer P99 alone and shared and the
/// penalty, which is the draft's formula of those two.
#[test]
fn two_tenants_run_alone_then_shared_and_report_the_penalty() {
    if bed().is_none() {
        println!("skipped: no SoftRoCE bed");
        return;
    }
    let doc = serving(
        "tenants-10.3",
        &[
            "--tenant",
            "llama-3.1-8b,1P1D,rate=10",
            "--tenant",
            "llama-3.1-70b,1P1D,rate=5",
            "--requests",
            "12",
            "--trials",
            "2",
            "--verify",
        ],
    );
    assert_eq!(doc["test_id"], "10.3");
    assert_eq!(doc["serving"]["sweep"], "tenants");
    check_accounting(&doc);
    let points = doc["serving"]["points"].as_array().unwrap();
    let keys: Vec<(String, String)> = points
        .iter()
        .map(|p| {
            (
                p["tenant"].as_str().unwrap().to_string(),
                p["phase"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("A", "alone"),
        ("B", "alone"),
        ("A", "shared"),
        ("B", "shared"),
    ] {
        assert!(
            keys.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {keys:?}"
        );
    }
    for p in points {
        assert_eq!(p["trials"].as_array().unwrap().len(), 2, "{}", p["tenant"]);
        for t in p["trials"].as_array().unwrap() {
            assert_eq!(t["completed"], 12, "{} {}", p["tenant"], p["phase"]);
        }
    }
    let tenants = doc["serving"]["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 2);
    assert_eq!(tenants[1]["model"], "llama-3.1-70b");
    for t in tenants {
        let f = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("{k} in {t:#}"));
        let (alone, shared) = (f("ttft_p99_alone_ns"), f("ttft_p99_shared_ns"));
        let want = (shared - alone) / alone * 100.0;
        assert!((f("ttft_p99_penalty_pct") - want).abs() < 1e-6, "{t:#}");
        assert!(f("t_transfer_p99_penalty_pct").is_finite());
        println!(
            "tenant {} ({}): TTFT P99 alone {:.2} ms, shared {:.2} ms, penalty {:+.1} %; \
             T_transfer P99 penalty {:+.1} %",
            t["tenant"],
            t["model"],
            alone / 1e6,
            shared / 1e6,
            f("ttft_p99_penalty_pct"),
            f("t_transfer_p99_penalty_pct")
        );
    }
}

/// Runs `infab run serving` as two nodes of the bed's topology (decode
/// ranks on rxe0 at node 0, prefill ranks on rxe1 at node 1) and returns
/// node 0's results.
fn serving_two_nodes(name: &str, extra: &[&str]) -> Value {
    let topology = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/topologies/softroce-2node.toml"
    );
    let json = out_dir().join(format!("serving-{name}.json"));
    let node = |rank: &str, json: Option<&str>| {
        let mut args = vec![
            "run",
            "serving",
            "--topology",
            topology,
            "--node-rank",
            rank,
            "--rendezvous-timeout",
            "30",
        ];
        for pair in SMALL.chunks(2) {
            if !extra.contains(&pair[0]) {
                args.extend_from_slice(pair);
            }
        }
        args.extend_from_slice(extra);
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
    let o1 = wait(n1, Duration::from_secs(240), &["serving node 1"]);
    let o0 = wait(n0, Duration::from_secs(60), &["serving node 0"]);
    ok(&o1, "serving node 1");
    ok(&o0, "serving node 0");
    println!("{}", String::from_utf8_lossy(&o0.stdout));
    let doc = check_results(&json);
    assert_eq!(doc["status"], "complete", "{name}");
    assert_eq!(doc["cluster"]["nodes"].as_array().unwrap().len(), 2);
    doc
}

#[test]
fn pools_across_two_nodes_push_and_pull_with_fabric_control() {
    if bed().is_none() {
        println!("skipped: no SoftRoCE bed");
        return;
    }
    // push, 1P1D then 2P2D: prefill ranks on node 1, decode ranks on node 0
    let doc = serving_two_nodes(
        "nodes-push",
        &[
            "--xpyd",
            "1P1D,2P2D",
            "--layout",
            "sglang",
            "--arrival",
            "poisson:25",
            "--requests",
            "12",
            "--trials",
            "2",
            "--verify",
        ],
    );
    assert_eq!(doc["serving"]["control"], "fabric");
    assert_eq!(doc["serving"]["direction"], "push");
    check_accounting(&doc);
    let points = doc["serving"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for p in points {
        for t in p["trials"].as_array().unwrap() {
            assert_eq!(t["completed"], 12, "{t:#}");
            assert_eq!(t["verify_mismatches"], 0);
        }
    }
    let decode = points[1]["trials"][0]["decode_workers"].as_array().unwrap();
    assert!(decode.iter().all(|w| w["requests"].as_u64().unwrap() > 0));
    // pull, 2P2D, 8-page pools: requests queue for pages at node 0
    let doc = serving_two_nodes(
        "nodes-pull",
        &[
            "--xpyd",
            "2P2D",
            "--layout",
            "vllm",
            "--arrival",
            "poisson:25",
            "--requests",
            "16",
            "--trials",
            "2",
            "--pool-blocks",
            "8",
            "--decode-step",
            "20ms",
            "--qps",
            "2",
            "--verify",
        ],
    );
    assert_eq!(doc["serving"]["direction"], "pull");
    check_accounting(&doc);
    let trials = doc["serving"]["points"][0]["trials"].as_array().unwrap();
    let mut waits = 0;
    for t in trials {
        assert_eq!(t["completed"], 16, "{t:#}");
        assert_eq!(t["verify_mismatches"], 0);
        waits += t["admission_waits"].as_u64().unwrap();
    }
    assert!(waits > 0, "8-page pools make requests queue for pages");
    println!("pull 2P2D across two nodes: {waits} admission waits over 2 trials");

    // across nodes the control plane must be the fabric: one line, no traffic
    let (dev0, _, _) = bed().expect("checked above");
    let out = infab(
        &[
            "run",
            "serving",
            "-d",
            &dev0,
            "--nnodes",
            "2",
            "--node-rank",
            "0",
            "--control",
            "shared",
        ],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--control fabric"), "{stderr}");
}
