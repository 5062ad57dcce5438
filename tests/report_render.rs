//! `infab report` end to end: the real binary renders the fixture results
//! (tests/fixtures/results/, from SoftRoCE runs) into a folder, then Debian's
//! headless Chromium loads report.html to check that the charts and tables
//! are really there once a browser has parsed the page, and takes a
//! screenshot for people to look at: target/report-screenshot.png for the
//! point-to-point files (5.1, 5.2), target/report-fabric-screenshot.png for
//! the multi-rank ones (5.3 pairs, 8.2 and 8.1 incast),
//! target/report-moe-screenshot.png for the AllToAll (7.2), KV/EP
//! contention (7.4) and loaded latency (5.2 with background) files,
//! target/report-kv-screenshot.png for the KV-transfer file (10.1, with
//! 6.1's TTFT decomposition).
//!
//! Without Chromium the browser test fails with the install command, unless
//! INFAB_SKIP_BROWSER=1 says to skip it (it then prints that it skipped).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const FIXTURES: [&str; 3] = ["bw-write.json", "lat-write-imm.json", "dead-peer.json"];
/// Inline SVG charts the fixtures make: 5.1 throughput twice (bw-write,
/// dead-peer), 5.2 one per clock (initiator, pingpong, target).
const CHARTS: usize = 5;
/// The multi-rank fixtures (schema 1.1: system, cluster, counters).
const FABRIC_FIXTURES: [&str; 3] = [
    "pairs-5.3.json",
    "incast-8.2.json",
    "incast-single-host.json",
];
/// 5.3 dual-axis chart, one FCT CDF per incast file.
const FABRIC_CHARTS: usize = 3;
/// The MoE and loaded-latency fixtures.
const MOE_FIXTURES: [&str; 3] = [
    "alltoall-7.2.json",
    "contention-7.4.json",
    "lat-loaded.json",
];
/// One busbw heatmap per (mode, routing) of 7.2 (4), the 7.4 bars, one
/// 5.2 latency chart per clock of lat-loaded (initiator, pingpong, target).
const MOE_CHARTS: usize = 8;
/// The KV-transfer fixture: `infab run kv` (test 10.1) of Llama-3.1-8B,
/// vLLM pages pushed with WRITE-with-immediate over 4 QPs, pipelined per 8
/// layers, prompts 512, 1024, 2048; 2 trials of 4 requests on SoftRoCE.
const KV_FIXTURES: [&str; 1] = ["kv-10.1.json"];
/// 10.1's TTFT line graph and 6.1's stacked bars.
const KV_CHARTS: usize = 2;
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/results")
        .join(name)
}

fn infab(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infab"))
        .args(args)
        .output()
        .expect("run the infab binary")
}

/// Renders `fixtures` into `out`; returns the paths infab printed.
fn render_files(fixtures: &[&str], out: &Path) -> Vec<PathBuf> {
    let mut args: Vec<std::ffi::OsString> = vec!["report".into()];
    args.extend(fixtures.iter().map(|f| fixture(f).into_os_string()));
    args.extend(["-o".into(), out.as_os_str().to_owned()]);
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let output = infab(&refs);
    assert!(
        output.status.success(),
        "infab report failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// Renders the point-to-point fixtures into `out`.
fn render(out: &Path) -> Vec<PathBuf> {
    render_files(&FIXTURES, out)
}

/// Every schema violation of the file at `path` (empty when valid), against
/// results-schema/ (the helper pattern of tests/schema.rs).
fn schema_errors(path: &Path) -> Vec<String> {
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("results-schema/infab-results.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let instance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let errors = validator
        .iter_errors(&instance)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    errors
}

#[test]
fn fabric_fixtures_match_the_schema() {
    for name in FABRIC_FIXTURES {
        let errors = schema_errors(&fixture(name));
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn moe_fixtures_match_the_schema() {
    for name in MOE_FIXTURES {
        let errors = schema_errors(&fixture(name));
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

/// The kv fixture validates, and its numbers add up the way `infab run
/// kv` writes them: TTFT = T_prefill + exposed T_transfer + T_decode_init
/// per request, exposed ≤ measured, and each summary counts its requests.
#[test]
fn kv_fixture_matches_the_schema_and_adds_up() {
    for name in KV_FIXTURES {
        let errors = schema_errors(&fixture(name));
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("kv-10.1.json")).unwrap()).unwrap();
    assert_eq!(doc["test_id"], "10.1");
    let kv = &doc["kv"];
    let points = kv["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    for point in points {
        let requests = point["requests"].as_array().unwrap();
        let trials = point["trials"].as_array().unwrap();
        assert_eq!(trials.len(), 2);
        assert_eq!(
            point["summary"]["requests"].as_u64().unwrap(),
            requests.len() as u64
        );
        let per_trial: u64 = trials.iter().map(|t| t["requests"].as_u64().unwrap()).sum();
        assert_eq!(per_trial, requests.len() as u64);
        for r in requests {
            let ns = |k: &str| r[k].as_u64().unwrap();
            assert_eq!(
                ns("ttft_ns"),
                ns("t_prefill_modelled_ns")
                    + ns("t_transfer_exposed_ns")
                    + ns("t_decode_init_modelled_ns"),
                "{r}"
            );
            assert!(ns("t_transfer_exposed_ns") <= ns("t_transfer_ns"));
            assert_eq!(
                ns("t_prefill_modelled_ns"),
                point["t_prefill_modelled_ns"].as_u64().unwrap()
            );
            assert_eq!(ns("bytes"), point["bytes_per_request"].as_u64().unwrap());
            assert_eq!(
                ns("descriptors"),
                point["descriptors_per_request"].as_u64().unwrap()
            );
        }
        // The summaries come from HDR histograms (3 significant digits):
        // their max is the largest request's bucket, within 0.1 %.
        for (summary, field) in [("ttft", "ttft_ns"), ("t_transfer", "t_transfer_ns")] {
            let max = requests
                .iter()
                .map(|r| r[field].as_u64().unwrap())
                .max()
                .unwrap() as f64;
            let summarised = point["summary"][summary]["max_ns"].as_u64().unwrap() as f64;
            assert!(
                (summarised - max).abs() <= max * 1e-3,
                "{summary}: max {summarised} vs the largest request {max}"
            );
        }
    }
}

/// The KV prompt-mix fixture: `infab run kv --prompt-dist uniform:16..128`
/// (test 10.1) of Llama-3.1-8B, vLLM pages pulled over 2 QPs, Poisson
/// arrivals at 20/s; one trial of 12 requests, each its own prompt length,
/// on SoftRoCE.
const KV_MIX_FIXTURE: &str = "kv-10.1-mix.json";

/// The mix fixture validates and adds up the way `infab run kv
/// --prompt-dist` writes it (one point, a length per request, TTFT =
/// T_queue + T_prefill + exposed T_transfer + T_decode_init); its report
/// draws the per-request scatter and the bars per prompt-length bin
/// instead of lines over prompt lengths, and tabulates the bins.
#[test]
fn kv_mix_report_has_the_scatter_and_the_bins_table() {
    let errors = schema_errors(&fixture(KV_MIX_FIXTURE));
    assert!(errors.is_empty(), "{KV_MIX_FIXTURE}: {errors:#?}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(KV_MIX_FIXTURE)).unwrap()).unwrap();
    assert_eq!(doc["test_id"], "10.1");
    assert_eq!(doc["kv"]["prompt_dist"], "uniform:16..128");
    let points = doc["kv"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "a prompt mix is one point");
    let requests = points[0]["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 12);
    for r in requests {
        let ns = |k: &str| r[k].as_u64().unwrap();
        assert!((16..=128).contains(&ns("prompt_tokens")), "{r}");
        assert_eq!(
            ns("ttft_ns"),
            ns("t_queue_ns")
                + ns("t_prefill_modelled_ns")
                + ns("t_transfer_exposed_ns")
                + ns("t_decode_init_modelled_ns"),
            "{r}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let written = render_files(&[KV_MIX_FIXTURE], dir.path());
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in [
        "kv-10.1-mix-ttft-per-request.svg",
        "kv-10.1-mix-ttft-breakdown.svg",
        "kv.csv",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    assert_eq!(names.iter().filter(|n| n.ends_with(".svg")).count(), 2);
    let svg = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let scatter = svg("kv-10.1-mix-ttft-per-request.svg");
    for text in [
        "Test 10.1: TTFT and T_transfer per request (prompt mix)",
        "TTFT (T_prefill, T_decode_init modelled)",
        "T_transfer (measured)",
        "prompt length of the request (tokens)",
        "time (s)",
    ] {
        assert!(scatter.contains(text), "'{text}' not in the scatter");
    }
    let bars = svg("kv-10.1-mix-ttft-breakdown.svg");
    for text in [
        "prompt length bin (tokens)",
        "T_prefill (modelled)",
        "T_decode_init (modelled)",
        "16–52",
    ] {
        assert!(bars.contains(text), "'{text}' not in the bars per bin");
    }

    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for text in [
        "| headline | prompt mix uniform:16..128: TTFT P99 1.545 s, P50 1.049 s over 12 requests",
        "Prompt mix uniform:16..128: each request draws its own prompt length from it; the point's prompt tokens, bytes, descriptors, WRs and T_prefill are means over its requests.",
        "| prompt mix | uniform:16..128 (",
        "![TTFT and T_transfer per request, prompt mix uniform:16..128 (10.1)](kv-10.1-mix-ttft-per-request.svg)",
        "![TTFT decomposition per prompt-length bin (6.1)](kv-10.1-mix-ttft-breakdown.svg)",
        "### TTFT per prompt-length bin, prompt mix uniform:16..128",
        "| prompt tokens | requests | mean bytes per request | T_transfer P50 (measured) | T_transfer P99 (measured) | TTFT P50 | TTFT P99 |",
        "| 16–52 | 3 | 4.667 MiB | 23.89 ms | 45.29 ms | 1.503 s | 1.545 s |",
        "| 116–126 | 3 | 16.00 MiB |",
        "### TTFT decomposition over the prompt mix uniform:16..128",
        "| prompt tokens (mean) | bytes per request (mean) |",
    ] {
        assert!(md.contains(text), "'{text}' not in report.md");
    }
    assert!(!md.contains("TTFT vs prompt length (10.1)"));
    let bin_rows = md
        .lines()
        .skip_while(|l| !l.starts_with("### TTFT per prompt-length bin"))
        // the heading, a blank line, the header and its rule
        .skip(4)
        .take_while(|l| l.starts_with("| "))
        .count();
    assert_eq!(bin_rows, 4, "quartile bins of 12 requests");
}

/// The memory-tier fixture: `infab run tiers` (test 5.4) in the SoftRoCE
/// bed, 64K and 1M, 2 trials: DRAM→DRAM and DRAM→file measured, the GPU
/// tiers not run (no GPU there).
const TIERS_FIXTURE: &str = "tiers-5.4.json";

#[test]
fn tiers_fixture_validates_and_renders_its_table() {
    let errors = schema_errors(&fixture(TIERS_FIXTURE));
    assert!(errors.is_empty(), "{TIERS_FIXTURE}: {errors:#?}");
    let dir = tempfile::tempdir().unwrap();
    render_files(&[TIERS_FIXTURE], dir.path());
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for text in [
        "Test 5.4: Multi-Tier Storage Transfer Characterization",
        "KV transfer across memory tiers (IETF 5.4)",
        "CPU DRAM → remote CPU DRAM (RDMA)",
        "CPU DRAM → file (O_DIRECT)",
        "1M GB/s",
        "64K P99",
        "not run",
        "ratio to DRAM→DRAM (no GPU→GPU on this host)",
        "GPUs and their distance to the RDMA devices",
    ] {
        assert!(md.contains(text), "'{text}' not in the 5.4 report");
    }
}

/// The memory-tier fixture from a GPU host: `infab run tiers` with only
/// --file-dir on an NVIDIA H200 VM without an RDMA device (the device check
/// of issue 15): DRAM→file and GPU→file (cuFile in compatibility mode)
/// measured, the RDMA tiers not run, no endpoints.
const TIERS_GPU_FIXTURE: &str = "tiers-5.4-h200-files.json";

#[test]
fn tiers_gpu_fixture_validates_and_renders_without_endpoints() {
    let errors = schema_errors(&fixture(TIERS_GPU_FIXTURE));
    assert!(errors.is_empty(), "{TIERS_GPU_FIXTURE}: {errors:#?}");
    let dir = tempfile::tempdir().unwrap();
    render_files(&[TIERS_GPU_FIXTURE], dir.path());
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for text in [
        "Test 5.4: Multi-Tier Storage Transfer Characterization",
        "GPU HBM → file (GPUDirect Storage)",
        "gds-compat",
        "not a GPUDirect Storage number",
        "Endpoints: none, the run used no RDMA device.",
        "NVIDIA H200",
        "no RDMA target given",
    ] {
        assert!(md.contains(text), "'{text}' not in the 5.4 GPU report");
    }
}

/// The multi-tenant fixture: `infab run serving` with two --tenant flags
/// (test 10.3) in the SoftRoCE bed, Llama-3.1-8B 1P1D at 10 req/s and
/// Llama-3.1-70B 1P1D at 5 req/s, 12 requests, 2 trials, each alone then
/// shared.
const TENANTS_FIXTURE: &str = "serving-10.3.json";

#[test]
fn tenants_fixture_validates_and_renders_its_table_and_bars() {
    let errors = schema_errors(&fixture(TENANTS_FIXTURE));
    assert!(errors.is_empty(), "{TENANTS_FIXTURE}: {errors:#?}");
    let dir = tempfile::tempdir().unwrap();
    let written = render_files(&[TENANTS_FIXTURE], dir.path());
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for text in [
        "Test 10.3: End-to-End Latency Under Multi-Tenant Load",
        "Tenants: alone vs shared (10.3)",
        "TTFT penalty",
        "A: 1P1D alone",
        "B: 1P1D shared",
        "llama-3.1-70b",
    ] {
        assert!(md.contains(text), "'{text}' not in the 10.3 report");
    }
    let bars = written
        .iter()
        .find(|p| p.to_string_lossy().ends_with("tenants-ttft.svg"))
        .unwrap_or_else(|| panic!("no tenants-ttft.svg in {written:?}"));
    let svg = std::fs::read_to_string(bars).unwrap();
    for text in ["alone", "shared", "TTFT P99 (ms)"] {
        assert!(svg.contains(text), "'{text}' not in the 10.3 bars");
    }
}

#[test]
fn kv_report_has_both_charts_the_table_and_kv_csv() {
    let dir = tempfile::tempdir().unwrap();
    let written = render_files(&KV_FIXTURES, dir.path());
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in [
        "kv-10.1-ttft-vs-prompt.svg",
        "kv-10.1-ttft-breakdown.svg",
        "kv.csv",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".svg")).count(),
        KV_CHARTS
    );
    let svg = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let lines = svg("kv-10.1-ttft-vs-prompt.svg");
    for text in [
        "Test 10.1: TTFT vs prompt length",
        "TTFT P50",
        "TTFT P99",
        "T_transfer (measured), exposed P50 (shaded)",
        "prompt length (tokens, log₂ scale)",
        "time to first token (ms)",
    ] {
        assert!(lines.contains(text), "'{text}' not in the 10.1 line graph");
    }
    // Tick labels at the prompt lengths measured (each text on its own line).
    for tick in ["512", "1024", "2048"] {
        assert!(
            lines.lines().any(|l| l.trim() == tick),
            "no x tick {tick} in the 10.1 line graph"
        );
    }
    let bars = svg("kv-10.1-ttft-breakdown.svg");
    for text in [
        "T_prefill (modelled)",
        "T_transfer (measured)",
        "T_decode_init (modelled)",
        "time (ms, P50)",
        "TTFT 704.64 ms",
    ] {
        assert!(bars.contains(text), "'{text}' not in the 6.1 stacked bars");
    }

    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for text in [
        "## Test 10.1: TTFT Under Varying Prompt Lengths (KV-cache transfer)",
        "| headline | TTFT P50 704.64 ms at 2048 prompt tokens",
        "llama-3.1-8b (L 32, H_kv 8, D 128, P_bytes 2), tp 1; vllm layout, push, notification imm, pipeline layer:8; T_prefill modelled: flops",
        "### KV transfer setup",
        "| T_prefill model (modelled) | flops 2 x 8B params",
        "### TTFT decomposition per prompt length",
        "| prompt tokens | bytes per request | descriptors | WRs | requests | T_prefill (modelled) |",
        "| 2048 | 256M | 8192 | 8192 | 8 | 82.83 ms | - | 678.95 ms / 829.95 ms / 829.95 ms | 616.56 ms / 768.08 ms / 768.08 ms | 704.64 ms / 855.64 ms / 855.64 ms | 96.4 % / 97.0 % / 97.0 % |",
        "![TTFT vs prompt length (10.1)](kv-10.1-ttft-vs-prompt.svg)",
        "![TTFT decomposition per prompt length (6.1)](kv-10.1-ttft-breakdown.svg)",
        "### Parameters (multi-rank run)",
    ] {
        assert!(md.contains(text), "'{text}' not in report.md");
    }
    assert!(
        !md.contains("### KPI summary (per configuration)"),
        "a kv file has no (size, QP) configurations to summarise"
    );
    assert!(!md.contains("has no chart for test 10.1"));

    let mut reader = csv::Reader::from_path(dir.path().join("kv.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3, "one row per prompt length");
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let tokens: Vec<&str> = records.iter().map(|r| &r[col("prompt_tokens")]).collect();
    assert_eq!(tokens, ["512", "1024", "2048"]);
    let last = &records[2];
    assert_eq!(&last[col("ttft_p50_ns")], "704643071");
    assert_eq!(&last[col("t_transfer_exposed_p50_ns")], "616562687");
    assert_eq!(&last[col("t_prefill_modelled_ns")], "82831143");
    assert_eq!(&last[col("descriptors_per_request")], "8192");
    assert_eq!(
        &last[col("file")],
        fixture("kv-10.1.json").display().to_string()
    );
    assert!(!last[col("gbytes_per_s_ci95_half_width")].is_empty());
    assert_eq!(
        &last[col("verify_mismatches")],
        "",
        "no --verify: empty, not 0"
    );
}

#[test]
fn moe_report_has_its_charts_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let written = render_files(&MOE_FIXTURES, dir.path());
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in [
        "alltoall-7.2-busbw-heatmap-normal-top-k.svg",
        "alltoall-7.2-busbw-heatmap-low-latency-zipf_alpha_1.2.svg",
        "contention-7.4-contention-p99.svg",
        "lat-loaded-latency-initiator.svg",
        "alltoall.csv",
        "contention.csv",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".svg")).count(),
        MOE_CHARTS
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for text in [
        "### MoE configuration rows used (draft Table 6)",
        "### Dispatch latency, dispatch mode normal, routing mode top-k",
        "### Dispatch latency, dispatch mode low-latency, routing mode zipf:alpha=1.2",
        "### Phases",
        "### Contention penalty (contended P99 / isolated P99)",
        "### Parameters (multi-rank run)",
        "within ±5 %",
    ] {
        assert!(md.contains(text), "'{text}' not in report.md");
    }
    // Multi-rank files drop the p2p endpoints; the p2p file keeps them.
    assert_eq!(md.matches("### Endpoints").count(), 1);
}

#[test]
fn fabric_report_has_its_charts_tables_and_csvs() {
    let dir = tempfile::tempdir().unwrap();
    let written = render_files(&FABRIC_FIXTURES, dir.path());
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in [
        "pairs-5.3-pairs-scaling.svg",
        "incast-8.2-fct-cdf.svg",
        "incast-single-host-fct-cdf.svg",
        "pairs.csv",
        "incast.csv",
        "counters.csv",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".svg")).count(),
        FABRIC_CHARTS
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for text in [
        "### KPI summary per N concurrent pairs",
        "### Per pair at N = 4 (the largest N)",
        "### KPI summary per incast point",
        "### Fabric Health Indicators (NIC counters, draft §4.4)",
        "| NIC QP State |",
        "### System configuration (draft §14)",
        "### Device under test (from the topology file)",
        "### Workload parameters (draft §14)",
    ] {
        assert!(md.contains(text), "'{text}' not in report.md");
    }
    // rxe has no ECN counter: shown as n/a, never as 0.
    assert!(md.contains(
        "| ECN-CE marked packets received | report (§4.3 ECN_marking_rate) | n/a | n/a |"
    ));
}

#[test]
fn report_writes_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let written = render(dir.path());
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in [
        "report.md",
        "report.html",
        "kpis.csv",
        "trials.csv",
        "bw-write-throughput.svg",
        "lat-write-imm-latency-initiator.svg",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    assert_eq!(names.iter().filter(|n| n.ends_with(".svg")).count(), CHARTS);
    for path in &written {
        assert!(
            path.metadata().unwrap().len() > 0,
            "{} is empty",
            path.display()
        );
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("![Throughput vs message size](bw-write-throughput.svg)"));
    assert!(md.contains("## Test 5.2: KV Cache Transfer Latency"));
    assert!(
        md.contains("no completion for 5.0 s"),
        "the partial run's error is shown"
    );

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for banned in ["http://", "https://", "<script", " src=", "<link"] {
        assert!(
            !html.contains(banned),
            "report.html is not self-contained: {banned}"
        );
    }
}

#[test]
fn a_corrupt_file_fails_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("cut.json");
    let text = std::fs::read_to_string(fixture("bw-write.json")).unwrap();
    std::fs::write(&bad, &text[..200]).unwrap();
    let out = dir.path().join("out");
    let output = infab(&[
        "report".as_ref(),
        bad.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:", bad.display())) && stderr.contains("not valid JSON"),
        "{stderr}"
    );
    assert!(
        !out.join("report.html").exists(),
        "nothing is written on error"
    );
}

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("INFAB_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs headless Chromium with `args` then `url`, stdout into `stdout_file`;
/// kills it after [`CHROMIUM_TIMEOUT`].
fn run_chromium(browser: &Path, profile: &Path, args: &[&str], url: &str, stdout_file: &Path) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(stdout_file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {args:?} exited with {status}");
            return;
        }
        if start.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish in {CHROMIUM_TIMEOUT:?}; killed it");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Headless Chromium, or `None` after saying why the browser test is skipped.
fn browser_or_skip() -> Option<PathBuf> {
    let browser = chromium();
    if browser.is_none() {
        if std::env::var("INFAB_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("skipped: no chromium (INFAB_SKIP_BROWSER=1)");
            return None;
        }
        panic!("headless Chromium is needed to check report.html: apt-get install chromium (or set INFAB_SKIP_BROWSER=1 to skip this test)");
    }
    browser
}

/// Loads `out/report.html` in Chromium; returns the DOM after parsing.
fn dump_dom(browser: &Path, work: &Path, out: &Path) -> String {
    let url = format!("file://{}", out.join("report.html").display());
    let dom_file = work.join("dom.html");
    run_chromium(
        browser,
        &work.join("profile-dom"),
        &["--dump-dom"],
        &url,
        &dom_file,
    );
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    assert!(
        dom.contains("<h1>infab report</h1>"),
        "no report in the DOM: {}",
        &dom[..dom.len().min(500)]
    );
    dom
}

/// Screenshots `out/report.html` into target/`name`, `height` px tall.
fn screenshot(browser: &Path, work: &Path, out: &Path, name: &str, height: u32) {
    let url = format!("file://{}", out.join("report.html").display());
    let shot = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        browser,
        &work.join("profile-shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            &format!("--window-size=1280,{height}"),
        ],
        &url,
        &work.join("shot.log"),
    );
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 50_000,
        "screenshot only {} bytes: a blank page?",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}

#[test]
fn chromium_renders_the_charts_and_tables() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    render(&out);
    let dom = dump_dom(&browser, dir.path(), &out);
    assert_eq!(
        dom.matches("<svg").count(),
        CHARTS,
        "inline SVG charts in the DOM"
    );
    assert!(dom.matches("<figure").count() == CHARTS);
    // Per file: run, parameters, endpoints, workload, KPI summary (+
    // deviations when any); 5.2 adds the percentile table.
    let tables = dom.matches("<table").count();
    assert!(
        tables >= 16,
        "{tables} tables in the DOM, expected 5 per file + 1"
    );
    for text in [
        "Test 5.1: throughput vs message size",
        "line rate 10 Gb/s = 1.250 GB/s",
        "Test 5.2: latency percentile points (target clock)",
        "not a full CDF",
        "Latency percentiles per message size and clock",
        "KPI summary (per configuration)",
        "Endpoints",
        "Workload parameters (draft §14)",
        "predates 1.1",
    ] {
        assert!(dom.contains(text), "'{text}' not in the DOM");
    }
    // the answer first: each file's first chart above its metadata and its
    // §14 tables, which sit in collapsed <details>
    for section in dom.split("<section id=").skip(1) {
        let first_chart = section.find("<figure").expect("a chart per file");
        let details = section.find("<details>").expect("collapsed metadata");
        assert!(
            first_chart < details,
            "the first chart comes after the metadata"
        );
        let system = section
            .find("System configuration report (draft §14)")
            .expect("the §14 section");
        assert!(first_chart < system);
        for table in ["Endpoints", "Workload parameters (draft §14)"] {
            if let Some(at) = section.find(table) {
                assert!(at > details, "{table} is inside the collapsed metadata");
            }
        }
    }
    assert!(!dom.contains("<details open"), "metadata starts collapsed");
    // the headline fits the first screen: 1,200 px
    screenshot(&browser, dir.path(), &out, "report-headline.png", 1200);
    screenshot(&browser, dir.path(), &out, "report-screenshot.png", 2400);
}

#[test]
fn chromium_renders_the_moe_charts_and_tables() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    render_files(&MOE_FIXTURES, &out);
    let dom = dump_dom(&browser, dir.path(), &out);
    assert_eq!(
        dom.matches("<svg").count(),
        MOE_CHARTS,
        "inline SVG charts in the DOM"
    );
    let tables = dom.matches("<table").count();
    assert!(tables >= 25, "{tables} tables in the DOM");
    for text in [
        "busbw: normal dispatch, routing top-k",
        "busbw: low-latency dispatch, routing zipf:alpha=1.2",
        "EP group size n",
        "tokens per rank B (batch)",
        "MoE configuration rows used (draft Table 6)",
        "T_dispatch bytes",
        "n/a (smallest EP)",
        "Per rank at the last point",
        "Bytes per dispatch, EP index i → j",
        "Test 7.4: P99 isolated vs contended, per class and KV load",
        "penalty 12.84×",
        "Contention penalty (contended P99 / isolated P99)",
        "Parameters (multi-rank run)",
        "50 % load",
        "within ±5 %",
    ] {
        assert!(dom.contains(text), "'{text}' not in the DOM");
    }
    screenshot(
        &browser,
        dir.path(),
        &out,
        "report-moe-screenshot.png",
        7200,
    );
}

#[test]
fn chromium_renders_the_fabric_charts_and_tables() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    render_files(&FABRIC_FIXTURES, &out);
    let dom = dump_dom(&browser, dir.path(), &out);
    assert_eq!(
        dom.matches("<svg").count(),
        FABRIC_CHARTS,
        "inline SVG charts in the DOM"
    );
    // Per file: run, deviations, parameters, system, devices,
    // DUT, nodes, workload, fabric health, raw counters; 5.3 adds two
    // tables, each incast file two.
    let tables = dom.matches("<table").count();
    assert!(tables >= 3 * 10 + 6, "{tables} tables in the DOM");
    for text in [
        "Test 5.3: aggregate throughput and P99 vs concurrent pairs",
        "JFI n/a (1 pair)",
        "P99 latency (ms)",
        "Test 8.2: flow completion time, empirical CDF",
        "Test 8.1: flow completion time, empirical CDF",
        "Empirical CDF of every transfer",
        "KPI summary per N concurrent pairs",
        "Per pair at N = 4 (the largest N)",
        "KPI summary per incast point",
        "Per sender at the last point",
        "Fabric Health Indicators (NIC counters, draft §4.4)",
        "NIC QP State",
        "NIC counters: raw non-zero deltas",
        "System configuration (draft §14)",
        "Devices and ports",
        "Device under test (from the topology file)",
        "Nodes and ranks",
        "Workload parameters (draft §14)",
    ] {
        assert!(dom.contains(text), "'{text}' not in the DOM");
    }
    screenshot(
        &browser,
        dir.path(),
        &out,
        "report-fabric-screenshot.png",
        7200,
    );
}

#[test]
fn chromium_renders_the_kv_charts_and_tables() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    render_files(&KV_FIXTURES, &out);
    let dom = dump_dom(&browser, dir.path(), &out);
    assert_eq!(
        dom.matches("<svg").count(),
        KV_CHARTS,
        "inline SVG charts in the DOM"
    );
    for text in [
        "Test 10.1: TTFT vs prompt length",
        "Test 6.1: TTFT = T_prefill + T_transfer + T_decode_init (P50)",
        "T_transfer (measured), exposed P50 (shaded)",
        "T_prefill (modelled)",
        "T_decode_init (modelled)",
        "KV transfer setup",
        "TTFT decomposition per prompt length",
        "TTFT P50 704.64 ms at 2048 prompt tokens",
        "Parameters (multi-rank run)",
    ] {
        assert!(dom.contains(text), "'{text}' not in the DOM");
    }
    screenshot(&browser, dir.path(), &out, "report-kv-screenshot.png", 6000);
}

/// A real 10.4 sweep (SoftRoCE, 0..95 % background in 5 % steps) renders
/// its latency-vs-load chart and the inflection table.
#[test]
fn load_sweep_report_has_its_chart_and_inflection() {
    let name = "lat-sweep-10.4.json";
    let errors = schema_errors(&fixture(name));
    assert!(errors.is_empty(), "{name}: {errors:#?}");
    let dir = tempfile::tempdir().unwrap();
    let written = render_files(&[name], dir.path());
    assert!(
        written
            .iter()
            .any(|p| p.file_name().unwrap() == "lat-sweep-10.4-latency-vs-load.svg"),
        "{written:?}"
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("### Inflection point and degradation factor per size and clock"));
}

/// `infab compare -o` on a results file against itself with its trials
/// shifted: compare.html parses in Chromium with the verdict table above
/// one inline chart per configuration, and nothing it loads from outside.
#[test]
fn chromium_renders_compare_html() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = fixture("lat-loaded.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    for config in doc["results"].as_array_mut().unwrap() {
        for trial in config["trials"].as_array_mut().unwrap() {
            for l in trial["latency"].as_array_mut().unwrap() {
                let v = l["summary"]["p99_ns"].as_f64().unwrap();
                l["summary"]["p99_ns"] = serde_json::Value::from((v * 1.2) as u64);
            }
        }
    }
    let new = dir.path().join("new.json");
    std::fs::write(&new, doc.to_string()).unwrap();
    let out = dir.path().join("cmp");
    let output = infab(&[
        "compare".as_ref(),
        base.as_os_str(),
        new.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = format!("file://{}", out.join("compare.html").display());
    let dom_file = dir.path().join("compare-dom.html");
    run_chromium(
        &browser,
        &dir.path().join("profile-compare"),
        &["--dump-dom"],
        &url,
        &dom_file,
    );
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    assert!(
        dom.contains("<h1>infab compare</h1>"),
        "{}",
        &dom[..dom.len().min(500)]
    );
    let configs = doc["results"].as_array().unwrap().len();
    assert_eq!(
        dom.matches("<figure").count(),
        configs,
        "a chart per configuration"
    );
    assert_eq!(dom.matches("<svg").count(), configs);
    let table = dom.find("<table").unwrap();
    assert!(
        table < dom.find("<svg").unwrap(),
        "verdicts above the charts"
    );
    assert!(dom.contains("BASE vs NEW per trial"));
    assert!(!dom.contains("<script") && !dom.contains("src=\"http"));
}

/// The 8.3 fixture (SoftRoCE, 2 trials per order, 1.5 s trials, 2 ms bins)
/// and the 8.1 fixture with `--counter-interval 1ms`.
#[test]
fn convergence_and_onset_reports_have_their_plots_and_tables() {
    for name in ["convergence-8.3.json", "incast-8.1-onset.json"] {
        let errors = schema_errors(&fixture(name));
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let written = render_files(&["convergence-8.3.json"], dir.path());
    for order in ["kv-first", "ep-first"] {
        let svg = format!("convergence-8.3-convergence-{order}.svg");
        assert!(
            written
                .iter()
                .any(|p| p.file_name().unwrap() == svg.as_str()),
            "{svg} missing from {written:?}"
        );
        let text = std::fs::read_to_string(dir.path().join(&svg)).unwrap();
        assert!(text.contains("t0 = 50"), "{svg}: no t0 marked");
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("### Convergence per order and class"));
    assert!(md.contains("### Convergence setup"));
    let dir = tempfile::tempdir().unwrap();
    render_files(&["incast-8.1-onset.json"], dir.path());
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("### Marking onset relative to the burst start"));
    // rxe exposes no ECN, CNP or PFC counters
    assert!(md.contains("not exposed"));
}
