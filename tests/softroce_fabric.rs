//! End-to-end tests of the multi-rank tests (5.3 pairs, 8.1/8.2 incast) on
//! real verbs in the SoftRoCE bed: rxe0/198.18.0.1 and rxe1/198.18.0.2 play
//! two nodes, each an `infab` process that finds the other through the
//! rendezvous (flags or torchrun-style env), as on a real cluster.
//!
//! Outside the bed every test prints "skipped" and returns.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

const TOPOLOGY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/topologies/softroce-2node.toml"
);

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs node 0 and node 1 of the bed; returns both outputs.
fn two_nodes(args: &[&str], via_env: bool) -> (Output, Output) {
    let node = |rank: &'static str| -> Child {
        let mut full = vec!["run"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--topology", TOPOLOGY, "--rendezvous-timeout", "30"]);
        if via_env {
            spawn(&full, &[("NODE_RANK", rank), ("NNODES", "2")])
        } else {
            full.extend_from_slice(&["--node-rank", rank]);
            spawn(&full, &[])
        }
    };
    let n0 = node("0");
    std::thread::sleep(Duration::from_millis(300));
    let n1 = node("1");
    let o1 = wait(n1, Duration::from_secs(300), args);
    let o0 = wait(n0, Duration::from_secs(60), args);
    (o0, o1)
}

/// Runs both nodes with `args` and `--json` into `file` in the results
/// folder; both must succeed; returns node 0's validated results.
fn two_nodes_ok(file: &str, args: &[&str], via_env: bool) -> Value {
    let json = out_dir().join(file);
    let json_s = json.to_str().unwrap();
    let mut full = args.to_vec();
    full.extend_from_slice(&["--json", json_s]);
    let (o0, o1) = two_nodes(&full, via_env);
    ok(&o1, "node 1");
    ok(&o0, "node 0");
    check_results(&json)
}

fn jfi(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let sq: f64 = values.iter().map(|x| x * x).sum();
    sum * sum / (values.len() as f64 * sq)
}

fn check_jfi(trial: &Value, per: &str) {
    let rates: Vec<f64> = trial[per]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["gbytes_per_s"].as_f64().unwrap())
        .collect();
    if rates.len() > 1 {
        let got = trial["jain_index"].as_f64().unwrap();
        assert!(
            (got - jfi(&rates)).abs() < 1e-12,
            "JFI {got} is not (Σx)²/(n·Σx²) of {rates:?}"
        );
    } else {
        assert!(trial["jain_index"].is_null());
    }
}

#[test]
fn pairs_across_two_nodes() {
    if bed().is_none() {
        return;
    }
    let doc = two_nodes_ok(
        "pairs-5.3.json",
        &[
            "pairs", "--pairs", "1,2,4", "--trials", "3", "-D", "0.5", "--size", "1M",
        ],
        false,
    );
    assert_eq!(doc["test_id"], "5.3");
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["cluster"]["nodes"].as_array().unwrap().len(), 2);
    let points = doc["pairs"].as_array().unwrap();
    assert_eq!(
        points
            .iter()
            .map(|p| p["pairs"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 4]
    );
    for point in points {
        let n = point["pairs"].as_u64().unwrap() as usize;
        assert_eq!(point["trials"].as_array().unwrap().len(), 3);
        for trial in point["trials"].as_array().unwrap() {
            let pairs = trial["per_pair"].as_array().unwrap();
            assert_eq!(pairs.len(), n);
            for p in pairs {
                assert_eq!(p["sender_node"], 1, "senders are on the prefill node");
                assert_eq!(p["receiver_node"], 0, "receivers are on the decode node");
                assert!(p["bytes"].as_u64().unwrap() > 0);
            }
            check_jfi(trial, "per_pair");
        }
    }
}

#[test]
fn incast_across_two_nodes_from_launcher_env() {
    if bed().is_none() {
        return;
    }
    let doc = two_nodes_ok(
        "incast-8.2.json",
        &[
            "incast",
            "--test",
            "8.2",
            "--senders",
            "2,3",
            "--bursts",
            "2",
            "--arrival-window",
            "1ms",
            "--trials",
            "3",
            "--size",
            "1M",
        ],
        true,
    );
    assert_eq!(doc["test_id"], "8.2");
    assert!(doc["cluster"]["launcher"]
        .as_str()
        .unwrap()
        .contains("torchrun"));
    let points = doc["incast"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for point in points {
        let m = point["senders"].as_u64().unwrap() as usize;
        assert_eq!(point["arrival_window_ns"], 1_000_000);
        for trial in point["trials"].as_array().unwrap() {
            let senders = trial["per_sender"].as_array().unwrap();
            assert_eq!(senders.len(), m);
            let mut last = 0;
            for s in senders {
                let transfers = s["transfers"].as_array().unwrap();
                assert_eq!(transfers.len(), 2);
                for t in transfers {
                    assert!(
                        t["scheduled_ns"].as_u64().unwrap() < 1_000_000,
                        "start outside T_arrival"
                    );
                    assert!(t["done_ns"].as_u64().unwrap() >= t["post_ns"].as_u64().unwrap());
                    last = last.max(t["done_ns"].as_u64().unwrap());
                }
            }
            assert_eq!(trial["last_byte_ns"].as_u64().unwrap(), last);
            assert_eq!(trial["fct"]["count"].as_u64().unwrap(), 2 * m as u64);
            check_jfi(trial, "per_sender");
        }
    }
}

#[test]
fn single_host_pairs_and_incast() {
    let Some((dev0, dev1, _)) = bed() else { return };
    let json = out_dir().join("pairs-single-host.json");
    let out = infab(
        &[
            "run",
            "pairs",
            "-d",
            &dev1,
            "--target-device",
            &dev0,
            "--pairs",
            "2",
            "--trials",
            "2",
            "-D",
            "0.3",
            "--size",
            "256K",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    ok(&out, "single-host pairs");
    assert_eq!(check_results(&json)["pairs"][0]["pairs"], 2);
    let json = out_dir().join("incast-single-host.json");
    let out = infab(
        &[
            "run",
            "incast",
            "-d",
            &dev1,
            "--target-device",
            &dev0,
            "--senders",
            "2",
            "--trials",
            "2",
            "--size",
            "256K",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    ok(&out, "single-host incast");
    assert_eq!(check_results(&json)["test_id"], "8.1");
}

#[test]
fn a_missing_node_is_named_and_the_port_in_use_is_explained() {
    if bed().is_none() {
        return;
    }
    let start = Instant::now();
    let node0 = spawn(
        &[
            "run",
            "pairs",
            "--topology",
            TOPOLOGY,
            "--node-rank",
            "0",
            "--pairs",
            "1",
            "--rendezvous-timeout",
            "4",
        ],
        &[],
    );
    std::thread::sleep(Duration::from_millis(1500));
    // a second node 0 finds the rendezvous port taken
    let clash = infab(
        &[
            "run",
            "pairs",
            "--topology",
            TOPOLOGY,
            "--node-rank",
            "0",
            "--pairs",
            "1",
            "--rendezvous-timeout",
            "4",
        ],
        Duration::from_secs(30),
    );
    assert!(!clash.status.success());
    let text = String::from_utf8_lossy(&clash.stderr);
    assert!(text.contains("cannot listen"), "{text}");
    let out = wait(node0, Duration::from_secs(30), &["node 0 alone"]);
    assert!(!out.status.success(), "node 0 alone must fail");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("node 1 (prefill0) did not join"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn a_node_that_dies_mid_run_ends_the_others_and_keeps_completed_trials() {
    if bed().is_none() {
        return;
    }
    let json = out_dir().join("pairs-dead-node.json");
    // a file from an earlier run would look like progress before node 1 joined
    let _ = std::fs::remove_file(&json);
    let common = [
        "--pairs",
        "1",
        "--trials",
        "200",
        "-D",
        "0.3",
        "--size",
        "1M",
        "--stall-timeout",
        "5",
    ];
    let mut a0 = vec![
        "run",
        "pairs",
        "--topology",
        TOPOLOGY,
        "--node-rank",
        "0",
        "--json",
        json.to_str().unwrap(),
    ];
    a0.extend_from_slice(&common);
    let node0 = spawn(&a0, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut a1 = vec!["run", "pairs", "--topology", TOPOLOGY, "--node-rank", "1"];
    a1.extend_from_slice(&common);
    let mut node1 = spawn(&a1, &[]);
    // wait until node 0 has written two trials, then kill node 1
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no trials were written");
        let trials = std::fs::read_to_string(&json)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|d| d["pairs"][0]["trials"].as_array().map(|a| a.len()))
            .unwrap_or(0);
        if trials >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    node1.kill().unwrap();
    let _ = node1.wait();
    let killed = Instant::now();
    let out = wait(
        node0,
        Duration::from_secs(60),
        &["node 0 after node 1 died"],
    );
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "node 0 took {:?}",
        killed.elapsed()
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("node 1 (prefill0)"), "{text}");
    let doc = check_results(&json);
    assert_eq!(doc["status"], "partial");
    assert!(doc["pairs"][0]["trials"].as_array().unwrap().len() >= 2);
    assert!(doc["error"].as_str().unwrap().contains("node 1"));
}

#[test]
fn decode_steps_unloaded_and_loaded_give_itl_per_condition() {
    if bed().is_none() {
        return;
    }
    let doc = two_nodes_ok(
        "decode-10.2.json",
        &[
            "decode-steps",
            "--ep",
            "2",
            "--batch",
            "8",
            "--layers",
            "2",
            "--steps",
            "40",
            "--trials",
            "2",
            "--load",
            "0,50,90",
            "--size",
            "1M",
        ],
        false,
    );
    assert_eq!(doc["test_id"], "10.2");
    let d = &doc["decode_steps"];
    assert!(d["capacity_gbytes_per_s"].as_f64().unwrap() > 0.0);
    let conditions = d["conditions"].as_array().unwrap();
    let names: Vec<&str> = conditions
        .iter()
        .map(|c| c["condition"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    for c in conditions {
        assert_eq!(c["trials"].as_array().unwrap().len(), 2);
        for t in c["trials"].as_array().unwrap() {
            assert_eq!(t["steps"], 40, "every step of {}", c["condition"]);
            // a step's fabric time never exceeds its wall time
            assert!(
                t["itl_fabric"]["p50_ns"].as_u64().unwrap()
                    <= t["itl_step"]["p50_ns"].as_u64().unwrap()
            );
            if c["load_percent"].as_u64().unwrap() > 0 {
                assert!(t["background_gbytes_per_s"].as_f64().unwrap() > 0.0);
                assert_eq!(t["background_covered"], true);
            }
        }
        assert_eq!(c["itl_fabric"]["count"], 80);
        assert!(!c["cdf"].as_array().unwrap().is_empty());
        eprintln!(
            "10.2 ({}) {} %: ITL_fabric P50 {} ns, P99 {} ns, max {} ns, stalls {}",
            c["condition"].as_str().unwrap(),
            c["load_percent"],
            c["itl_fabric"]["p50_ns"],
            c["itl_fabric"]["p99_ns"],
            c["itl_fabric"]["max_ns"],
            c["stalls"]
        );
    }
}

#[test]
fn alltoall_with_combine_in_every_poll_mode() {
    if bed().is_none() {
        return;
    }
    for (mode, op) in [
        ("spin", "write-imm"),
        ("yield", "send"),
        ("event", "write-imm"),
    ] {
        let doc = two_nodes_ok(
            &format!("alltoall-poll-{mode}.json"),
            &[
                "alltoall",
                "--moe",
                "E=4,k=4,H=256,P=2",
                "--ep",
                "4",
                "--batch",
                "32",
                "--iterations",
                "20",
                "--trials",
                "2",
                "--op",
                op,
                "--poll",
                mode,
            ],
            false,
        );
        assert_eq!(doc["parameters"]["poll"]["mode"], mode);
        let s = &doc["alltoall"][0]["summary"];
        assert_eq!(s["trials"], 2, "--poll {mode}");
        assert!(s["p50_ns"]["mean"].as_f64().unwrap() > 0.0);
        assert!(s["combine_p50_ns"]["mean"].as_f64().unwrap() > 0.0);
        assert!(s["layer_p50_ns"]["mean"].as_f64().unwrap() > 0.0);
        eprintln!(
            "--poll {mode} ({op}): dispatch P50 {:.0} ns, combine P50 {:.0} ns, layer P50 {:.0} ns",
            s["p50_ns"]["mean"].as_f64().unwrap(),
            s["combine_p50_ns"]["mean"].as_f64().unwrap(),
            s["layer_p50_ns"]["mean"].as_f64().unwrap()
        );
    }
}

#[test]
fn alltoall_four_ranks_over_two_nodes_matches_the_router() {
    use infab::workload::moe::{DispatchCopies, DispatchMatrix, MoeConfig, Router, RoutingMode};
    if bed().is_none() {
        return;
    }
    let doc = two_nodes_ok(
        "alltoall-7.2.json",
        &[
            "alltoall",
            "--test",
            "7.2",
            "--moe",
            "M1",
            "--ep",
            "4",
            "--batch",
            "16",
            "--iterations",
            "10",
            "--trials",
            "2",
            "--qps",
            "2",
        ],
        false,
    );
    assert_eq!(doc["test_id"], "7.2");
    let points = doc["alltoall"].as_array().unwrap();
    assert_eq!(points.len(), 4, "2 modes × 2 routing modes");
    let moe: MoeConfig = "M1".parse().unwrap();
    for p in points {
        let n = p["ep_ranks"].as_u64().unwrap() as u32;
        let routing: RoutingMode = p["routing"].as_str().unwrap().parse().unwrap();
        let routed = Router::new(routing, p["seed"].as_u64().unwrap())
            .route(&moe, n, 16)
            .unwrap();
        let mut matrix = DispatchMatrix::build(&moe, &routed, DispatchCopies::PerExpert).unwrap();
        if p["mode"] == "low-latency" {
            matrix = matrix.padded();
        }
        let pairs: Vec<Vec<u64>> = serde_json::from_value(p["pair_bytes"].clone()).unwrap();
        for i in 0..n {
            assert_eq!(
                pairs[i as usize],
                matrix.row_bytes(i),
                "row {i} differs from the router"
            );
        }
        // T_dispatch = B·k·H·P/N; uniform routing sends N·B·k·H·P in all
        let t = 16.0 * 2.0 * 4096.0 * 2.0 / f64::from(n);
        assert!((p["t_dispatch_bytes"].as_f64().unwrap() - t).abs() < 1e-6);
        if p["mode"] == "normal" {
            let total: u64 = pairs.iter().flatten().sum();
            assert_eq!(total as f64, t * f64::from(n) * f64::from(n));
        }
        // every iteration also combined: each rank sent its row and then the
        // transposed matrix's row (its column) back
        let trial = &p["trials"][0];
        assert!(trial["combine"]["latency"]["p50_ns"].as_u64().unwrap() > 0);
        assert!(
            trial["layer"]["latency"]["p50_ns"].as_u64().unwrap()
                >= trial["latency"]["p50_ns"].as_u64().unwrap()
        );
        assert!(p["summary"]["combine_p50_ns"]["mean"].as_f64().unwrap() > 0.0);
        let iterations = trial["iterations"].as_u64().unwrap();
        for r in trial["per_rank"].as_array().unwrap() {
            let i = r["ep_index"].as_u64().unwrap() as usize;
            let row: u64 = (0..n as usize)
                .filter(|&j| j != i)
                .map(|j| pairs[i][j])
                .sum();
            let column: u64 = (0..n as usize)
                .filter(|&j| j != i)
                .map(|j| pairs[j][i])
                .sum();
            assert_eq!(
                r["bytes_sent"].as_u64().unwrap(),
                iterations * (row + column),
                "rank {i}: dispatch row plus combine (transposed) row"
            );
        }
        let ranks = p["ranks"].as_array().unwrap();
        let nodes: std::collections::BTreeSet<u64> = p["trials"][0]["per_rank"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["node"].as_u64().unwrap())
            .collect();
        assert_eq!(ranks.len(), 4);
        assert_eq!(nodes.len(), 2, "the EP group spans both nodes");
        for trial in p["trials"].as_array().unwrap() {
            let alg = trial["algbw_gbytes_per_s"].as_f64().unwrap();
            let bus = trial["busbw_gbytes_per_s"].as_f64().unwrap();
            assert!(
                (bus - alg * 3.0 / 4.0).abs() < 1e-12,
                "busbw = algbw·(n−1)/n"
            );
            assert_eq!(trial["iterations"], 10);
            for r in trial["per_rank"].as_array().unwrap() {
                let i = r["ep_index"].as_u64().unwrap() as usize;
                let row: u64 = (0..4).filter(|&j| j != i).map(|j| pairs[i][j]).sum();
                assert_eq!(r["send_bytes_per_dispatch"].as_u64().unwrap(), row);
            }
        }
    }
}

#[test]
fn contention_reports_isolated_and_contended_p99_and_the_penalty() {
    if bed().is_none() {
        return;
    }
    let doc = two_nodes_ok(
        "contention-7.4.json",
        &[
            "contention",
            "--size",
            "256K",
            "--kv-load",
            "50",
            "--trials",
            "2",
            "-D",
            "0.5",
            "--ep",
            "2",
        ],
        false,
    );
    assert_eq!(doc["test_id"], "7.4");
    let c = &doc["contention"];
    let phases: Vec<&str> = c["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["capacity", "ep-isolated", "kv-isolated", "contended"]
    );
    let pen = &c["penalties"][0];
    for key in [
        "kv_isolated_p99_ns",
        "kv_contended_p99_ns",
        "ep_isolated_p99_ns",
        "ep_contended_p99_ns",
    ] {
        assert!(pen[key].as_f64().unwrap() > 0.0, "{key} missing");
    }
    let kv =
        pen["kv_contended_p99_ns"].as_f64().unwrap() / pen["kv_isolated_p99_ns"].as_f64().unwrap();
    assert!((pen["kv_penalty"].as_f64().unwrap() - kv).abs() < 1e-9);
    let ep =
        pen["ep_contended_p99_ns"].as_f64().unwrap() / pen["ep_isolated_p99_ns"].as_f64().unwrap();
    assert!((pen["ep_penalty"].as_f64().unwrap() - ep).abs() < 1e-9);
    // the isolated KV stream is paced to half the capacity measured in the run
    let iso = &c["phases"][2];
    let target = iso["kv_target_gbytes_per_s"].as_f64().unwrap();
    assert!((target / c["capacity_gbytes_per_s"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    for t in iso["trials"].as_array().unwrap() {
        let got = t["kv_gbytes_per_s"].as_f64().unwrap();
        println!("kv-isolated 50 %: target {target:.4} GB/s, achieved {got:.4} GB/s");
        assert!(
            (got / target - 1.0).abs() < 0.25,
            "pacing far off: {got} vs {target}"
        );
    }
}

/// Prints one order's convergence table (the bed is a function check:
/// rxe has no DCQCN, so these times measure the emulated CPU's sharing).
fn print_convergence(order: &Value) {
    println!(
        "8.3 {} ({} joins at t0):",
        order["order"].as_str().unwrap(),
        order["joining_class"].as_str().unwrap()
    );
    println!("  trial  t0 ms  class  steady GB/s  share  convergence ms  JFI");
    for t in order["trials"].as_array().unwrap() {
        for c in t["classes"].as_array().unwrap() {
            println!(
                "  {:>5}  {:>5.1}  {:>5}  {:>11.4}  {:>5.3}  {:>14}  {:.3}",
                t["trial"],
                t["t0_ns"].as_f64().unwrap() / 1e6,
                c["class"].as_str().unwrap(),
                c["steady_gbytes_per_s"].as_f64().unwrap_or(f64::NAN),
                c["steady_share"].as_f64().unwrap_or(f64::NAN),
                c["convergence_ns"]
                    .as_f64()
                    .map_or("not converged".into(), |n| format!("{:.1}", n / 1e6)),
                t["jfi"].as_f64().unwrap_or(f64::NAN),
            );
        }
        let w = &t["window_counters"];
        println!(
            "         window {:.1}..{:.1} ms: retransmissions {}, out of sequence {}, seq errors {}",
            w["from_ns"].as_f64().unwrap() / 1e6,
            w["to_ns"].as_f64().unwrap() / 1e6,
            w["retransmissions"],
            w["out_of_sequence"],
            w["packet_seq_errors"]
        );
    }
}

#[test]
fn convergence_8_3_in_both_orders_gives_series_and_convergence_times() {
    if bed().is_none() {
        return;
    }
    let doc = two_nodes_ok(
        "convergence-8.3.json",
        &[
            "contention",
            "--test",
            "8.3",
            "--size",
            "64K",
            "--trials",
            "2",
            "-D",
            "1.5",
            "--ep",
            "2",
            "--period",
            "5ms",
            "--bin",
            "2ms",
            "--smooth",
            "100ms",
            "--counter-interval",
            "10ms",
        ],
        false,
    );
    assert_eq!(doc["test_id"], "8.3");
    let c = &doc["contention"];
    let phases: Vec<&str> = c["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["capacity", "kv-first", "ep-first"]);
    let conv = &c["convergence"];
    assert_eq!(conv["kv_load_percent"], 80);
    assert_eq!(conv["bin_ns"], 2_000_000);
    assert_eq!(conv["smooth_bins"], 50);
    let join_ns = conv["join_after_ns"].as_u64().unwrap();
    assert_eq!(join_ns, 500_000_000);
    let orders = conv["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2);
    for order in orders {
        print_convergence(order);
        let joining = order["joining_class"].as_str().unwrap();
        for t in order["trials"].as_array().unwrap() {
            // t0 is recorded: the joining class's first post, at or after
            // its scheduled start
            let t0 = t["t0_ns"].as_u64().unwrap();
            assert!(
                t0 >= join_ns && t0 < join_ns + 200_000_000,
                "t0 {t0} vs scheduled {join_ns}"
            );
            let end = t["window_end_ns"].as_u64().unwrap();
            // the window ends by the trial's scheduled end
            assert!(end > t0 && end <= 1_500_000_000, "window end {end}");
            for s in t["series"].as_array().unwrap() {
                let class = s["class"].as_str().unwrap();
                let series = &s["series"];
                let bins: Vec<u64> = series["bytes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_u64().unwrap())
                    .collect();
                assert!(bins.iter().sum::<u64>() > 0, "{class}: an empty series");
                assert!(s["lanes"].as_u64().unwrap() >= 1);
                // nothing of the joining class completes before it joined
                let first = bins.iter().position(|&b| b > 0).unwrap() as u64;
                if class == joining {
                    assert!(first * 2_000_000 + 2_000_000 >= t0, "{class} before t0");
                } else {
                    assert!(first * 2_000_000 < t0, "{class} did not run first");
                }
            }
            let shares: f64 = t["classes"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|c| c["steady_share"].as_f64())
                .sum();
            assert!((shares - 1.0).abs() < 1e-9, "shares sum to {shares}");
            assert!(!t["counter_series"].as_array().unwrap().is_empty());
        }
        assert_eq!(order["classes"].as_array().unwrap().len(), 2);
    }
}

#[test]
fn incast_counter_series_give_the_marking_onset_or_say_not_exposed() {
    if bed().is_none() {
        return;
    }
    let doc = two_nodes_ok(
        "incast-8.1-onset.json",
        &[
            "incast",
            "--senders",
            "2",
            "--size",
            "1M",
            "--trials",
            "2",
            "--counter-interval",
            "1ms",
        ],
        false,
    );
    for p in doc["incast"].as_array().unwrap() {
        for t in p["trials"].as_array().unwrap() {
            let onset = &t["onset"];
            for signal in ["ecn", "cnp", "pfc"] {
                let s = &onset[signal];
                println!(
                    "8.1 trial {}: {signal} onset {}",
                    t["trial"],
                    if s["exposed"].as_bool().unwrap() {
                        s["onset_ns"]
                            .as_i64()
                            .map_or("none seen".into(), |n| format!("{:.3} ms", n as f64 / 1e6))
                    } else {
                        "not exposed".to_string()
                    }
                );
                if !s["exposed"].as_bool().unwrap() {
                    assert!(s["onset_ns"].is_null());
                }
            }
            let series = t["counter_series"].as_array().unwrap();
            assert_eq!(series.len(), 2, "one series per device of both nodes");
            for s in series {
                assert!(!s["t_ns"].as_array().unwrap().is_empty());
            }
        }
    }
}
