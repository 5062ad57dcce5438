//! The results schema (`results-schema/infab-results.schema.json`) against
//! what the library really serialises.
//!
//! - A realistic bandwidth report and latency report, built through the public
//!   API with real `LatencyHistogram` summaries, must validate; so must their
//!   "partial" and "failed" variants.
//! - Corrupted documents (missing field, wrong type, unknown field, bad
//!   enum, ...) must be rejected, at the right place.
//! - With `INFAB_RESULTS_DIR` set, every `*.json` in that folder must
//!   validate (how the SoftRoCE integration tests check real outputs):
//!
//!   ```text
//!   INFAB_RESULTS_DIR=results cargo test --test schema results_dir
//!   ```
//!
//! Other tests that want to validate a file can copy [`validator`] and
//! [`validate_file`] (or [`validate_value`]): they depend only on
//! `jsonschema`, `serde_json` and the schema path.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use infab::results::{
    BackgroundResult, ClockLatency, ClockReport, ConfigResult, ConfigSummary, CpuUse, DeviceFacts,
    DeviceLimits, EndpointsReport, GidChoice, LoadPoint, LoadSweep, MemoryReport, PollReport,
    QpResult, RunParameters, RunReport, ToolInfo, TrialResult, SCHEMA_VERSION,
};
use infab::stats::{across_trials, jain_index, max_min_ratio, LatencyHistogram, Throughput};
use serde_json::Value;

// ---------------------------------------------------------------------------
// The helper pattern: copy these three functions into any test that writes
// results files.
// ---------------------------------------------------------------------------

/// Path of the schema in this repository.
pub fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results-schema/infab-results.schema.json")
}

/// The compiled schema (draft 2020-12, `format` checked: date-time, ipv4, ipv6).
/// Panics if the schema file is missing or is not a valid 2020-12 schema.
pub fn validator() -> jsonschema::Validator {
    let path = schema_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid JSON Schema: {e}", path.display()))
}

/// Every schema violation of `instance`, one line each: `<json pointer>: <message>`.
/// Empty when valid.
pub fn validate_value(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| {
            let at = e.instance_path.to_string();
            format!("{}: {e}", if at.is_empty() { "/" } else { at.as_str() })
        })
        .collect()
}

/// Validates one results file; `Err` holds every problem (unreadable, not
/// JSON, or each schema violation).
pub fn validate_file(path: &Path) -> Result<(), Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read: {e}")])?;
    let instance: Value =
        serde_json::from_str(&text).map_err(|e| vec![format!("not JSON: {e}")])?;
    let errors = validate_value(&validator(), &instance);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------
// Realistic reports, built the way src/suite does it.
// ---------------------------------------------------------------------------

fn device(
    name: &str,
    ip: Option<Ipv4Addr>,
    netdev: Option<&str>,
    line_rate_gbps: Option<f64>,
) -> DeviceFacts {
    let (gid, index, chosen_by) = match ip {
        Some(ip) => (format!("::ffff:{ip}"), 1, "auto (first RoCE v2 IPv4 GID)"),
        None => ("fe80::5054:ff:fe12:3456".to_string(), 0, "user (-x)"),
    };
    DeviceFacts {
        name: name.into(),
        port: 1,
        node_guid: "5054:00ff:fe12:3456".into(),
        fw_ver: "0.0.0".into(),
        vendor_id: 0xffffff,
        vendor_part_id: 0,
        link_layer: "Ethernet".into(),
        port_state: "ACTIVE".into(),
        active_mtu_bytes: 4096,
        active_width: if line_rate_gbps.is_some() {
            "4X".into()
        } else {
            "unknown".into()
        },
        active_speed: if line_rate_gbps.is_some() {
            "EDR (25 Gb/s)".into()
        } else {
            "unknown (code 0)".into()
        },
        line_rate_gbps,
        gid: GidChoice {
            index,
            gid,
            gid_type: "RoCEv2".into(),
            netdev: netdev.map(str::to_string),
            ipv4: ip,
            chosen_by: chosen_by.into(),
        },
        limits: DeviceLimits {
            max_qp: 1_048_560,
            max_qp_wr: 1_048_576,
            max_sge: 32,
            max_cqe: 32_767,
            // rxe reports 2^64 − 1: must survive JSON as an integer.
            max_mr_size: u64::MAX,
            max_msg_bytes: 1 << 31,
            max_qp_rd_atom: 128,
        },
    }
}

fn parameters(latency: bool) -> RunParameters {
    RunParameters {
        op: if latency { "write-imm" } else { "write" }.into(),
        mode: if latency { "latency" } else { "bandwidth" }.into(),
        clocks: if latency {
            vec!["initiator".into(), "target".into(), "pingpong".into()]
        } else {
            vec!["message-completion".into()]
        },
        sizes_bytes: vec![65_536, 1 << 20],
        qps: if latency { vec![1] } else { vec![2, 1] },
        trials: 3,
        duration_s: if latency { None } else { Some(2.5) },
        iters: if latency { Some(1500) } else { None },
        warmup_iters: 100,
        tx_depth: 128,
        rx_depth: 512,
        cq_mod: 1,
        threads: 1,
        verify: !latency,
        huge_pages: false,
        max_wr_bytes: 1 << 31,
        stall_timeout_s: 10.0,
        traffic_class: 106,
        poll: Some(PollReport {
            mode: if latency { "spin" } else { "yield" }.into(),
            forced: latency,
            engine_threads: 3,
            cores: 2,
        }),
        memory: Some(MemoryReport {
            initiator: if latency { "cuda:0" } else { "host" }.into(),
            target: "host".into(),
            initiator_registration: Some(if latency { "dmabuf" } else { "host" }.into()),
            target_registration: Some("host".into()),
        }),
    }
}

/// A deterministic latency histogram: `n` samples around `base_ns` with a tail.
fn histogram(n: u64, base_ns: u64, seed: u64) -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = (x >> 33) % (base_ns / 10 + 1);
        let tail = if i % 97 == 0 { base_ns * 3 } else { 0 };
        h.record(base_ns + jitter + tail);
    }
    h
}

/// Trials → summary, as src/suite/summary.rs does it (it is crate-private).
fn summarize(trials: &[TrialResult], merged: &BTreeMap<String, LatencyHistogram>) -> ConfigSummary {
    let pick =
        |f: &dyn Fn(&TrialResult) -> f64| across_trials(&trials.iter().map(f).collect::<Vec<_>>());
    let per_clock = |clock: &str, f: &dyn Fn(&ClockLatency) -> u64| {
        let values: Vec<f64> = trials
            .iter()
            .filter_map(|t| t.latency.iter().find(|c| c.clock == clock).map(f))
            .map(|v| v as f64)
            .collect();
        across_trials(&values).map(|iv| (clock.to_string(), iv))
    };
    let mismatches: Vec<u64> = trials.iter().filter_map(|t| t.verify_mismatches).collect();
    ConfigSummary {
        trials: trials.len() as u32,
        gbytes_per_s: pick(&|t| t.throughput.gbytes_per_s),
        gbits_per_s: pick(&|t| t.throughput.gbits_per_s),
        msgs_per_s: pick(&|t| t.throughput.msgs_per_s),
        latency: merged
            .iter()
            .map(|(c, h)| ClockLatency {
                clock: c.clone(),
                summary: h.summary(),
            })
            .collect(),
        p50_ns: merged
            .keys()
            .filter_map(|c| per_clock(c, &|l| l.summary.p50_ns))
            .collect(),
        p99_ns: merged
            .keys()
            .filter_map(|c| per_clock(c, &|l| l.summary.p99_ns))
            .collect(),
        jain_index: across_trials(
            &trials
                .iter()
                .filter_map(|t| t.jain_index)
                .collect::<Vec<_>>(),
        ),
        verify_mismatches: (!mismatches.is_empty()).then(|| mismatches.iter().sum()),
    }
}

/// A bandwidth configuration: `qps` QPs, `trials` trials, verify on.
fn bandwidth_config(msg_bytes: u64, qps: u32, trials: u32) -> ConfigResult {
    let mut merged: BTreeMap<String, LatencyHistogram> = BTreeMap::new();
    let mut out = Vec::new();
    for trial in 0..trials {
        let seconds = 2.5 + 0.001 * f64::from(trial);
        let per_qp: Vec<(u64, u64)> = (0..u64::from(qps))
            .map(|q| {
                let messages = 40_000 + 1_000 * q + 37 * u64::from(trial);
                (messages * msg_bytes, messages)
            })
            .collect();
        let bytes: u64 = per_qp.iter().map(|p| p.0).sum();
        let messages: u64 = per_qp.iter().map(|p| p.1).sum();
        let per_qp_bytes: Vec<f64> = per_qp.iter().map(|p| p.0 as f64).collect();
        let h = histogram(messages.min(5_000), 12_000, u64::from(trial));
        merged
            .entry("message-completion".into())
            .or_default()
            .merge(&h);
        out.push(TrialResult {
            trial,
            throughput: Throughput::from_counts(bytes, messages, seconds),
            latency: vec![ClockLatency {
                clock: "message-completion".into(),
                summary: h.summary(),
            }],
            per_qp: per_qp
                .iter()
                .enumerate()
                .map(|(i, &(bytes, messages))| QpResult {
                    qp: i as u32,
                    messages,
                    bytes,
                    gbytes_per_s: bytes as f64 / seconds / 1e9,
                })
                .collect(),
            jain_index: if qps > 1 {
                jain_index(&per_qp_bytes)
            } else {
                None
            },
            max_min_ratio: if qps > 1 {
                max_min_ratio(&per_qp_bytes)
            } else {
                None
            },
            cpu: CpuUse {
                initiator_percent: 99.7,
                target_percent: 0.0,
            },
            target_receives: 0,
            verify_mismatches: Some(0),
            counters: Vec::new(),
        });
    }
    let summary = summarize(&out, &merged);
    ConfigResult {
        msg_bytes,
        qps,
        wr_bytes: msg_bytes,
        wrs_per_msg: 1,
        trials: out,
        summary,
        background: None,
        status: None,
        trials_completed: None,
        failed_trial: None,
        error: None,
    }
}

/// A latency configuration with the three clocks; `n` samples per clock per
/// trial (below 1000: P99.9 flagged unreliable).
fn latency_config(msg_bytes: u64, trials: u32, n: u64) -> ConfigResult {
    let mut merged: BTreeMap<String, LatencyHistogram> = BTreeMap::new();
    let mut out = Vec::new();
    for trial in 0..trials {
        let clocks = [("initiator", 9_000), ("target", 7_500), ("pingpong", 8_200)];
        let mut latency = Vec::new();
        for (i, (clock, base)) in clocks.iter().enumerate() {
            let h = histogram(n, *base, u64::from(trial) * 3 + i as u64);
            merged.entry(clock.to_string()).or_default().merge(&h);
            latency.push(ClockLatency {
                clock: clock.to_string(),
                summary: h.summary(),
            });
        }
        let seconds = n as f64 * 9e-6;
        out.push(TrialResult {
            trial,
            throughput: Throughput::from_counts(n * msg_bytes, n, seconds),
            latency,
            per_qp: vec![QpResult {
                qp: 0,
                messages: n,
                bytes: n * msg_bytes,
                gbytes_per_s: (n * msg_bytes) as f64 / seconds / 1e9,
            }],
            jain_index: None,
            max_min_ratio: None,
            cpu: CpuUse {
                initiator_percent: 100.0,
                target_percent: 63.2,
            },
            target_receives: n,
            verify_mismatches: None,
            counters: Vec::new(),
        });
    }
    let summary = summarize(&out, &merged);
    ConfigResult {
        msg_bytes,
        qps: 1,
        wr_bytes: msg_bytes,
        wrs_per_msg: 1,
        trials: out,
        summary,
        background: None,
        status: None,
        trials_completed: None,
        failed_trial: None,
        error: None,
    }
}

fn report(latency: bool, results: Vec<ConfigResult>) -> RunReport {
    RunReport {
        schema_version: SCHEMA_VERSION.into(),
        tool: ToolInfo {
            name: "infab".into(),
            version: "0.1.0".into(),
            git_commit: latency.then(|| "3da1f7b".into()),
        },
        test_id: if latency { "5.2" } else { "5.1" }.into(),
        test_name: if latency {
            "KV Cache Transfer Latency"
        } else {
            "Point-to-Point KV Cache Transfer Throughput"
        }
        .into(),
        dut_id: "softroce-vm".into(),
        started_at: "2026-11-24T10:00:00Z".into(),
        updated_at: "2026-11-24T10:03:17Z".into(),
        status: "complete".into(),
        error: None,
        deviations: vec!["3 trials per configuration; the draft asks for at least 20".into()],
        parameters: parameters(latency),
        endpoints: Some(EndpointsReport {
            initiator: device(
                "rxe1",
                Some(Ipv4Addr::new(198, 18, 0, 2)),
                Some("veth1"),
                None,
            ),
            target: device("rxe0", None, None, Some(100.0)),
            same_host: !latency,
        }),
        load_sweep: Vec::new(),
        clock: latency.then(|| ClockReport {
            offset_ns: -1_234_567,
            error_bound_ns: 21_000,
            method: "estimated".into(),
        }),
        results,
        system: None,
        cluster: None,
        pairs: Vec::new(),
        incast: Vec::new(),
        alltoall: Vec::new(),
        contention: None,
        kv: None,
        soak: None,
        decode_steps: None,
        serving: None,
        tiers: None,
    }
}

/// 5.1: 64 KiB × 2 QPs × 3 trials, then 1 MiB × 1 QP × 1 trial (n = 1: null spreads, null JFI).
fn bandwidth_report() -> RunReport {
    report(
        false,
        vec![
            bandwidth_config(65_536, 2, 3),
            bandwidth_config(1 << 20, 1, 1),
        ],
    )
}

/// 5.2: three clocks, 64 KiB with 1500 samples (P99.9 reliable), 1 MiB with 200 (not).
fn latency_report() -> RunReport {
    report(
        true,
        vec![
            latency_config(65_536, 3, 1500),
            latency_config(1 << 20, 2, 200),
        ],
    )
}

/// 10.4: 64 KiB at 0, 50 and 90 % background (the 90 % level missed its
/// target in one trial), with the load curve of every clock.
fn loaded_report() -> RunReport {
    let capacity = 2.4e9;
    let mut results = Vec::new();
    for (i, level) in [0u32, 50, 90].into_iter().enumerate() {
        let mut config = latency_config(65_536, 2, 1500);
        let target = capacity * f64::from(level) / 100.0;
        let achieved = if level == 90 {
            vec![target * 0.99, target * 0.93]
        } else {
            vec![target * 1.01, target * 0.995]
        };
        let worst = achieved
            .iter()
            .map(|a| {
                if target > 0.0 {
                    (a / target - 1.0).abs()
                } else {
                    0.0
                }
            })
            .fold(0.0, f64::max);
        config.background = Some(BackgroundResult {
            level_percent: level,
            qps: 4,
            msg_bytes: 65_536,
            capacity_gbytes_per_s: capacity / 1e9,
            target_gbytes_per_s: target / 1e9,
            achieved_gbytes_per_s: achieved.iter().map(|a| a / 1e9).collect(),
            achieved_mean_gbytes_per_s: achieved.iter().sum::<f64>() / 2.0 / 1e9,
            worst_deviation_percent: worst * 100.0,
            within_5_percent: worst <= 0.05,
            poll: Some("event".into()),
            cpu_percent: vec![12.5, 14.0],
            cpu_mean_percent: 13.25,
        });
        // latency grows with load
        for clock in &mut config.summary.latency {
            clock.summary.p99_ns *= 1 + i as u64 * 2;
        }
        results.push(config);
    }
    let mut r = report(true, results);
    r.test_id = "10.4".into();
    r.test_name = "Latency Sensitivity to Fabric Congestion".into();
    r.deviations
        .push("loaded: background is an RDMA WRITE stream on 4 extra QPs".into());
    let clocks: Vec<String> = r.results[0]
        .summary
        .latency
        .iter()
        .map(|l| l.clock.clone())
        .collect();
    for clock in clocks {
        let point = |c: &ConfigResult| {
            let s = &c
                .summary
                .latency
                .iter()
                .find(|l| l.clock == clock)
                .unwrap()
                .summary;
            (s.p50_ns, s.p99_ns)
        };
        let unloaded = point(&r.results[0]).1;
        r.load_sweep.push(LoadSweep {
            msg_bytes: 65_536,
            clock: clock.clone(),
            unloaded_p99_ns: Some(unloaded),
            threshold_factor: 2.0,
            inflection_percent: Some(50),
            points: r
                .results
                .iter()
                .map(|c| {
                    let bg = c.background.as_ref().unwrap();
                    LoadPoint {
                        level_percent: bg.level_percent,
                        achieved_gbytes_per_s: bg.achieved_mean_gbytes_per_s,
                        p50_ns: point(c).0,
                        p99_ns: point(c).1,
                        degradation_factor: Some(point(c).1 as f64 / unloaded as f64),
                    }
                })
                .collect(),
        });
    }
    r
}

fn to_value(report: &RunReport) -> Value {
    serde_json::to_value(report).expect("RunReport serialises")
}

fn assert_valid(validator: &jsonschema::Validator, what: &str, instance: &Value) {
    let errors = validate_value(validator, instance);
    assert!(
        errors.is_empty(),
        "{what} does not match the schema ({} errors):\n  {}",
        errors.len(),
        errors.join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn schema_is_a_valid_2020_12_schema() {
    let _ = validator();
}

#[test]
fn bandwidth_report_validates() {
    let r = bandwidth_report();
    // The fixture exercises what it claims to.
    assert_eq!(r.results[0].trials[0].per_qp.len(), 2);
    assert!(r.results[0].trials[0].jain_index.is_some());
    assert!(r.results[0]
        .summary
        .gbytes_per_s
        .as_ref()
        .unwrap()
        .ci95_half_width
        .is_some());
    assert!(r.results[1]
        .summary
        .gbytes_per_s
        .as_ref()
        .unwrap()
        .ci95_half_width
        .is_none());
    assert!(r.results[1].summary.jain_index.is_none());
    assert_valid(&validator(), "bandwidth report", &to_value(&r));
}

#[test]
fn latency_report_validates() {
    let r = latency_report();
    assert_eq!(r.results[0].summary.latency.len(), 3);
    assert_eq!(r.results[0].summary.p50_ns.len(), 3);
    assert!(r.results[0].summary.latency[0].summary.p999_reliable);
    assert!(!r.results[1].trials[0].latency[0].summary.p999_reliable);
    assert_valid(&validator(), "latency report", &to_value(&r));
}

#[test]
fn loaded_report_validates() {
    let r = loaded_report();
    assert_eq!(r.results.len(), 3);
    assert!(r.results[1].background.as_ref().unwrap().within_5_percent);
    assert!(!r.results[2].background.as_ref().unwrap().within_5_percent);
    assert_eq!(r.load_sweep.len(), 3);
    assert_valid(&validator(), "loaded (10.4) report", &to_value(&r));
}

#[test]
fn per_clock_values_are_objects_and_the_pair_lists_of_older_files_still_load() {
    let r = latency_report();
    let v = to_value(&r);
    let p50 = v.pointer("/results/0/summary/p50_ns").unwrap();
    assert!(p50.is_object(), "{p50}");
    assert!(p50.get("initiator").is_some(), "{p50}");
    // the same document as schema 1.1 wrote it: [clock, interval] pairs
    let mut old = v.clone();
    for config in old["results"].as_array_mut().unwrap() {
        for key in ["p50_ns", "p99_ns"] {
            let per = config["summary"][key].as_object().unwrap().clone();
            config["summary"][key] = Value::from(
                per.into_iter()
                    .map(|(k, v)| serde_json::json!([k, v]))
                    .collect::<Vec<_>>(),
            );
        }
    }
    old["schema_version"] = Value::from("1.1");
    let back: RunReport = serde_json::from_value(old).unwrap();
    assert_eq!(back.results, r.results);
    // and a real 1.0 file, as the bed wrote it
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy/lat-write-imm-1.0.json");
    let text = std::fs::read_to_string(&fixture).unwrap();
    assert!(
        text.contains("\"p50_ns\": [\n"),
        "the fixture keeps the pair form"
    );
    let legacy = infab::results::load_report(&fixture).unwrap();
    let summary = &legacy.results[0].summary;
    assert!(summary.p50_ns.get("initiator").is_some());
    assert_eq!(summary.p50_ns.len(), summary.latency.len());
    // written again, it is a 1.2 document that validates
    let mut again = to_value(&legacy);
    again["schema_version"] = Value::from(SCHEMA_VERSION);
    assert_valid(&validator(), "1.0 file rewritten", &again);
}

#[test]
fn files_without_background_fields_still_load() {
    // a 1.1 file written before background load existed
    let mut v = to_value(&latency_report());
    v.as_object_mut().unwrap().remove("load_sweep");
    for config in v["results"].as_array_mut().unwrap() {
        config.as_object_mut().unwrap().remove("background");
    }
    let r: RunReport = serde_json::from_value(v).unwrap();
    assert!(r.load_sweep.is_empty());
    assert!(r.results.iter().all(|c| c.background.is_none()));
}

#[test]
fn pretty_file_round_trips_and_validates() {
    // The exact bytes write_json puts on disk.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("5.1.json");
    let r = bandwidth_report();
    infab::results::write_json(&r, &path).unwrap();
    if let Err(errors) = validate_file(&path) {
        panic!(
            "{} does not validate:\n  {}",
            path.display(),
            errors.join("\n  ")
        );
    }
    // It reads back as a RunReport. serde_json's default float parser may
    // differ from the written value in the last bit (exact round trips need
    // its `float_roundtrip` feature), so floats are compared to 1e-15.
    let back: RunReport = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut diffs = Vec::new();
    same_json(&to_value(&back), &to_value(&r), "", &mut diffs);
    assert!(
        diffs.is_empty(),
        "read back differs:\n  {}",
        diffs.join("\n  ")
    );
}

/// Structural equality of two JSON values, floats to a relative 1e-15.
fn same_json(a: &Value, b: &Value, at: &str, diffs: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            if x.keys().ne(y.keys()) {
                diffs.push(format!("{at}: keys differ"));
            }
            for (k, v) in x {
                if let Some(w) = y.get(k) {
                    same_json(v, w, &format!("{at}/{k}"), diffs);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                same_json(v, w, &format!("{at}/{i}"), diffs);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            if (x - y).abs() > 1e-15 * x.abs().max(y.abs()) {
                diffs.push(format!("{at}: {x} != {y}"));
            }
        }
        _ if a == b => {}
        _ => diffs.push(format!("{at}: {a} != {b}")),
    }
}

/// A soak section as `infab run p2p --soak` writes it: samples with both
/// processes' footprints (one without the rdma tool) and the trend analysis.
#[test]
fn soak_report_validates() {
    use infab::results::{ProcessResources, ProcessSample, RdmaResources, SoakSample};
    use infab::suite::soak::{analyse, SoakOptions};
    use std::time::Duration;
    let samples =
        (0..12u32)
            .map(|i| SoakSample {
                index: i,
                trial: i,
                t_s: f64::from(i + 1) * 10.0,
                throughput_gbytes_per_s: 0.1,
                latency_p50_ns: Some(40_000.0),
                latency_p99_ns: Some(90_000.0),
                retransmissions: Some(0),
                qp_errors: None,
                processes: vec![
                    ProcessSample {
                        process: "initiator".into(),
                        resources: ProcessResources {
                            rss_bytes: Some((40 << 20) + (u64::from(i) << 20)),
                            pinned_bytes: Some(1 << 20),
                            locked_bytes: Some(0),
                            rdma: Some(RdmaResources {
                                pds: 1,
                                cqs: 1,
                                qps: 1,
                                qps_in_error: 0,
                                mrs: 1 + u64::from(i),
                                mr_bytes: (1 + u64::from(i)) << 20,
                            }),
                            unavailable: Vec::new(),
                        },
                    },
                    ProcessSample {
                        process: "target".into(),
                        resources: ProcessResources {
                            rss_bytes: Some(30 << 20),
                            pinned_bytes: None,
                            locked_bytes: None,
                            rdma: None,
                            unavailable: vec![
                                "rdma objects: `rdma -j -b -`: rdma not installed".into()
                            ],
                        },
                    },
                ],
            })
            .collect();
    let options =
        SoakOptions::new(Duration::from_secs(120), Duration::from_secs(10), true).unwrap();
    let mut doc = bandwidth_report();
    doc.results.truncate(1);
    doc.soak = Some(analyse(options, 121.0, samples));
    assert!(doc.soak.as_ref().unwrap().leak_suspected);
    let value = to_value(&doc);
    assert_valid(&validator(), "soak report", &value);
    let back: RunReport = serde_json::from_value(value).unwrap();
    assert_eq!(back.soak, doc.soak);
}

#[test]
fn partial_running_and_failed_reports_validate() {
    let v = validator();
    let mut running = bandwidth_report();
    running.status = "running".into();
    running.results.truncate(1);
    assert_valid(&v, "running report", &to_value(&running));

    let mut partial = latency_report();
    partial.status = "partial".into();
    partial.error = Some("peer closed the control channel while waiting for TrialReport".into());
    partial.results.truncate(1);
    assert_valid(&v, "partial report", &to_value(&partial));

    let mut failed = bandwidth_report();
    failed.status = "failed".into();
    failed.error = Some("cannot connect to 198.18.0.1:18515".into());
    failed.results.clear();
    failed.parameters.tx_depth = 0;
    assert_valid(&v, "failed report", &to_value(&failed));

    let mut same_host = latency_report();
    same_host.clock = Some(ClockReport {
        offset_ns: 0,
        error_bound_ns: 0,
        method: "same-host".into(),
    });
    assert_valid(&v, "same-host latency report", &to_value(&same_host));
}

#[test]
fn interrupted_configurations_keep_their_trials_and_validate() {
    // p2p rewrites the file after every trial: the last configuration is
    // "running" while trials are to come, "partial" once an error stops it.
    let v = validator();
    let mut running = bandwidth_report();
    running.status = "running".into();
    let last = running.results.last_mut().unwrap();
    last.trials.truncate(1);
    last.status = Some("running".into());
    last.trials_completed = Some(1);
    assert_valid(&v, "running configuration", &to_value(&running));

    let mut partial = running.clone();
    partial.status = "partial".into();
    partial.error = Some("QP 0x11 stalled: no completion for 10 s".into());
    let last = partial.results.last_mut().unwrap();
    last.status = Some("partial".into());
    last.failed_trial = Some(1);
    last.error = partial.error.clone();
    let doc = to_value(&partial);
    assert_valid(&v, "partial configuration", &doc);
    let back: RunReport = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(back.results.last().unwrap().failed_trial, Some(1));

    // a complete configuration writes none of the four fields
    let first = &doc["results"][0];
    for field in ["status", "trials_completed", "failed_trial", "error"] {
        assert!(
            first.get(field).is_none(),
            "{field} written for a complete configuration"
        );
    }
    // a partial configuration must say which trial failed and why
    let mut no_why = doc.clone();
    let config = no_why["results"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap();
    config.as_object_mut().unwrap().remove("error");
    assert!(
        !validate_value(&v, &no_why).is_empty(),
        "partial without error accepted"
    );
    let mut bad = doc;
    let config = bad["results"].as_array_mut().unwrap().last_mut().unwrap();
    config["status"] = Value::from("complete");
    assert!(
        !validate_value(&v, &bad).is_empty(),
        "unknown status accepted"
    );
}

/// Applies `corrupt` to a valid document and asserts the schema rejects it
/// with an error at `expect_at` (a JSON pointer prefix).
fn assert_rejected(what: &str, base: &Value, expect_at: &str, corrupt: impl FnOnce(&mut Value)) {
    let v = validator();
    let mut doc = base.clone();
    corrupt(&mut doc);
    let errors = validate_value(&v, &doc);
    assert!(
        !errors.is_empty(),
        "{what}: the corrupted document was accepted"
    );
    assert!(
        errors.iter().any(|e| e.starts_with(expect_at)),
        "{what}: no error at {expect_at}; got:\n  {}",
        errors.join("\n  ")
    );
    eprintln!("{what}: rejected as expected:\n  {}", errors.join("\n  "));
}

fn obj(v: &mut Value, pointer: &str) -> serde_json::Map<String, Value> {
    std::mem::take(
        v.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("no {pointer}"))
            .as_object_mut()
            .unwrap(),
    )
}

fn put(v: &mut Value, pointer: &str, map: serde_json::Map<String, Value>) {
    *v.pointer_mut(pointer).unwrap() = Value::Object(map);
}

#[test]
fn corrupted_documents_are_rejected() {
    let bw = to_value(&bandwidth_report());
    let lat = to_value(&latency_report());
    let loaded = to_value(&loaded_report());
    assert_rejected(
        "background without within_5_percent",
        &loaded,
        "/results/1/background",
        |d| {
            let mut m = obj(d, "/results/1/background");
            m.remove("within_5_percent");
            put(d, "/results/1/background", m);
        },
    );
    assert_rejected(
        "background level above 100 %",
        &loaded,
        "/results/2/background/level_percent",
        |d| {
            *d.pointer_mut("/results/2/background/level_percent")
                .unwrap() = Value::from(120);
        },
    );
    assert_rejected(
        "load sweep point without a P99",
        &loaded,
        "/load_sweep/0/points/1",
        |d| {
            let mut m = obj(d, "/load_sweep/0/points/1");
            m.remove("p99_ns");
            put(d, "/load_sweep/0/points/1", m);
        },
    );

    assert_rejected(
        "missing required field",
        &bw,
        "/results/0/trials/0/throughput",
        |d| {
            let mut m = obj(d, "/results/0/trials/0/throughput");
            m.remove("gbits_per_s");
            put(d, "/results/0/trials/0/throughput", m);
        },
    );
    assert_rejected(
        "missing Option field (must be null, not absent)",
        &bw,
        "/",
        |d| {
            d.as_object_mut().unwrap().remove("clock");
        },
    );
    assert_rejected(
        "wrong type: size as a string",
        &bw,
        "/results/0/msg_bytes",
        |d| {
            *d.pointer_mut("/results/0/msg_bytes").unwrap() = Value::from("64K");
        },
    );
    assert_rejected(
        "wrong type: float where an integer is due",
        &bw,
        "/results/0/trials/0/throughput/bytes",
        |d| {
            *d.pointer_mut("/results/0/trials/0/throughput/bytes")
                .unwrap() = Value::from(1.5);
        },
    );
    assert_rejected("negative count", &bw, "/results/0/qps", |d| {
        *d.pointer_mut("/results/0/qps").unwrap() = Value::from(-1);
    });
    assert_rejected(
        "NaN serialised as null in a non-Option float",
        &lat,
        "/results/0/summary/latency/0/summary/mean_ns",
        |d| {
            *d.pointer_mut("/results/0/summary/latency/0/summary/mean_ns")
                .unwrap() = Value::Null;
        },
    );
    assert_rejected("unknown field (drift)", &bw, "/parameters", |d| {
        d.pointer_mut("/parameters")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("new_knob".into(), Value::from(1));
    });
    assert_rejected("bad status", &bw, "/status", |d| {
        *d.pointer_mut("/status").unwrap() = Value::from("done");
    });
    assert_rejected("bad op", &bw, "/parameters/op", |d| {
        *d.pointer_mut("/parameters/op").unwrap() = Value::from("atomic");
    });
    assert_rejected("bad test id", &bw, "/test_id", |d| {
        *d.pointer_mut("/test_id").unwrap() = Value::from("five");
    });
    assert_rejected(
        "bad clock name",
        &lat,
        "/results/0/trials/0/latency/0/clock",
        |d| {
            *d.pointer_mut("/results/0/trials/0/latency/0/clock")
                .unwrap() = Value::from("wallclock");
        },
    );
    assert_rejected(
        "p50 keyed by an unknown clock",
        &lat,
        "/results/0/summary/p50_ns",
        |d| {
            let p50 = d
                .pointer_mut("/results/0/summary/p50_ns")
                .unwrap()
                .as_object_mut()
                .unwrap();
            let iv = p50.values().next().unwrap().clone();
            p50.insert("wallclock".into(), iv);
        },
    );
    assert_rejected(
        "p50 as the 1.1 pair list",
        &lat,
        "/results/0/summary/p50_ns",
        |d| {
            let p50 = d.pointer("/results/0/summary/p50_ns").unwrap().clone();
            let pairs: Vec<Value> = p50
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| serde_json::json!([k, v]))
                .collect();
            *d.pointer_mut("/results/0/summary/p50_ns").unwrap() = Value::from(pairs);
        },
    );
    assert_rejected(
        "IPv4 not an address",
        &bw,
        "/endpoints/initiator/gid/ipv4",
        |d| {
            *d.pointer_mut("/endpoints/initiator/gid/ipv4").unwrap() = Value::from("198.18.0");
        },
    );
    assert_rejected("timestamp not RFC 3339", &bw, "/started_at", |d| {
        *d.pointer_mut("/started_at").unwrap() = Value::from("yesterday");
    });
    assert_rejected("complete with an error", &bw, "/error", |d| {
        *d.pointer_mut("/error").unwrap() = Value::from("boom");
    });
    assert_rejected("partial without an error", &bw, "/error", |d| {
        *d.pointer_mut("/status").unwrap() = Value::from("partial");
    });
    assert_rejected(
        "interval of two trials without a CI",
        &bw,
        "/results/0/summary/gbytes_per_s/ci95_low",
        |d| {
            *d.pointer_mut("/results/0/summary/gbytes_per_s/ci95_low")
                .unwrap() = Value::Null;
        },
    );
    assert_rejected(
        "bandwidth mode with a latency clock",
        &bw,
        "/parameters/clocks/0",
        |d| {
            *d.pointer_mut("/parameters/clocks/0").unwrap() = Value::from("pingpong");
        },
    );
    assert_rejected("same-host offset not zero", &lat, "/clock/offset_ns", |d| {
        *d.pointer_mut("/clock/method").unwrap() = Value::from("same-host");
    });
    assert_rejected(
        "Jain index above 1",
        &bw,
        "/results/0/trials/0/jain_index",
        |d| {
            *d.pointer_mut("/results/0/trials/0/jain_index").unwrap() = Value::from(1.5);
        },
    );
}

/// Every property the schema names carries a description (units live there).
#[test]
fn every_schema_property_is_described() {
    fn walk(node: &Value, at: &str, missing: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    // `then`/`else` blocks restate properties described
                    // elsewhere; only full object schemas (with `required`) count.
                    let is_constraint_only = !map.contains_key("required");
                    for (name, sub) in props {
                        let described =
                            sub.get("description").is_some() || sub.get("$ref").is_some();
                        if !described && !is_constraint_only {
                            missing.push(format!("{at}/properties/{name}"));
                        }
                    }
                }
                for (k, v) in map {
                    // `if` blocks only test values; they describe nothing.
                    if k != "if" {
                        walk(v, &format!("{at}/{k}"), missing);
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{at}/{i}"), missing);
                }
            }
            _ => {}
        }
    }
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    let mut missing = Vec::new();
    walk(&schema, "#", &mut missing);
    assert!(
        missing.is_empty(),
        "properties without a description:\n  {}",
        missing.join("\n  ")
    );
    // Every $defs entry is described too ($ref-only properties inherit it).
    for (name, def) in schema["$defs"].as_object().unwrap() {
        assert!(
            def.get("description").is_some(),
            "$defs/{name} has no description"
        );
    }
}

/// With `INFAB_RESULTS_DIR` set, every `*.json` in it must validate.
#[test]
fn results_dir_files_validate() {
    let Some(dir) = std::env::var_os("INFAB_RESULTS_DIR") else {
        eprintln!("INFAB_RESULTS_DIR not set: nothing to validate");
        return;
    };
    let dir = PathBuf::from(dir);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("INFAB_RESULTS_DIR={}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "INFAB_RESULTS_DIR={} holds no *.json file",
        dir.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        match validate_file(file) {
            Ok(()) => eprintln!("ok: {}", file.display()),
            Err(errors) => failures.push(format!(
                "{}:\n    {}",
                file.display(),
                errors.join("\n    ")
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} results files do not match {}:\n  {}",
        failures.len(),
        files.len(),
        schema_path().display(),
        failures.join("\n  ")
    );
}
