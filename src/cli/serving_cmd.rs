//! `infab run serving`: validates the pool, arrival, length, model and SLO
//! flags into [`ServingParams`] (every bad value is a one-line error before
//! any traffic), opens the two devices and runs the points.

use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::engine::PollMode;
use crate::suite::serving::{run_serving, ServingParams, ServingSweep, TenantRun};
use crate::verbs::QpPathOptions;
use crate::workload::kv::{KvLayout, KvModel, PrefillModel};
use crate::workload::serving::{parse_multiples, PoolRatio, Tenant};
use crate::workload::Arrival;
use crate::workload::{LengthDist, TraceField};

use super::args::{DeviceArgs, DirectionArg, FabricArgs, MemArgs, ServingArgs};
use super::fabric_cmd::{fabric_command, RankNeeds};
use super::{max_wr_bytes, open_device, seconds};
use crate::suite::fabric::FabricTest;
use crate::suite::serving_nodes::ServingNodesTest;
use crate::topology::Role;
use crate::workload::serving::ServingControl;

/// Most worker threads one run starts (both roles of the largest ratio).
const MAX_WORKERS: u32 = 64;

/// Whether the run puts its pools on the multi-rank runtime (any of the
/// flags that name nodes).
fn across_nodes(args: &ServingArgs) -> bool {
    args.topology.is_some()
        || args.nnodes.is_some()
        || args.node_rank.is_some()
        || args.master.is_some()
        || !args.role.is_empty()
}

/// `infab run serving`.
pub(super) fn serving_command(args: &ServingArgs) -> Result<i32> {
    let params = serving_params(args)?;
    if across_nodes(args) {
        return serving_nodes_command(args, params);
    }
    let prefill_dev = open_device(&args.device)?;
    let decode_dev = match &args.target_device {
        Some(name) => open_device(&DeviceArgs {
            device: Some(name.clone()),
            ..args.device.clone()
        })?,
        None => Arc::clone(&prefill_dev),
    };
    let (report, err) = run_serving(&params, prefill_dev, decode_dev);
    if let Some(path) = &params.json {
        eprintln!("results: {} ({})", path.display(), report.status);
    }
    match err {
        Some(e) => Err(anyhow::Error::new(e).context("infab run serving")),
        None => Ok(0),
    }
}

/// The pools on the multi-rank runtime: every rank one worker, roles from
/// the topology or `--role`.
fn serving_nodes_command(args: &ServingArgs, params: ServingParams) -> Result<i32> {
    let mut test = ServingNodesTest::new(params).map_err(anyhow::Error::msg)?;
    let (prefill, decode) = test.ranks_needed();
    let needs = RankNeeds {
        prefill,
        decode,
        ep: 0,
        default_roles: vec![Role::Prefill, Role::Decode],
    };
    let trial_time = (0..test.points())
        .map(|p| test.trial_time(p))
        .max()
        .unwrap_or_default();
    let fabric = FabricArgs {
        device: args.device.clone(),
        target_device: args.target_device.clone(),
        topology: args.topology.clone(),
        nnodes: args.nnodes,
        node_rank: args.node_rank,
        master: args.master.clone(),
        role: args.role.clone(),
        ranks_per_node: None,
        rendezvous_timeout: args.rendezvous_timeout,
        token: args.token.clone(),
        trials: args.trials,
        size: "4K".into(),
        qps: args.qps,
        tx_depth: Some(args.tx_depth),
        max_wr_bytes: args.max_wr_bytes.clone(),
        stall_timeout: args.stall_timeout,
        tclass: args.tclass,
        sl: 0,
        cores: Vec::new(),
        huge_pages: args.huge_pages,
        memory: MemArgs {
            mem: None,
            target_mem: None,
        },
        json: args.json.clone(),
        dut: args.dut.clone(),
        poll: args.poll,
    };
    fabric_command(&fabric, &mut test, needs, trial_time, None)
}

/// A duration that must carry its unit: ns, us/µs, ms or s.
pub(super) fn parse_duration_ns(text: &str, flag: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "" => bail!("{flag} '{text}': give a unit, e.g. {text}ms (ns, us, ms or s)"),
        other => bail!("{flag} '{text}': unknown unit '{other}'; use ns, us, ms or s"),
    };
    let value: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .with_context(|| format!("{flag} '{text}': not a number followed by a unit"))?;
    let ns = value * scale;
    if ns > 3.6e12 {
        bail!("{flag} '{text}': above one hour");
    }
    Ok(ns.round() as u64)
}

/// Flags → validated parameters (no device is opened).
pub(super) fn serving_params(args: &ServingArgs) -> Result<ServingParams> {
    let tenants = if args.tenant.is_empty() {
        Vec::new()
    } else {
        Tenant::parse_all(&args.tenant).map_err(anyhow::Error::msg)?
    };
    let model: KvModel = match tenants.first() {
        Some(t) => t.model.clone(),
        None => args.model.parse().context("--model")?,
    };
    let layout: KvLayout = args.layout.parse().context("--layout")?;
    if args.block_tokens == 0 {
        bail!("--block-tokens must be at least 1 (vLLM's default is 16)");
    }
    if args.pool_blocks == 0 {
        bail!("--pool-blocks must be at least 1");
    }
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    if args.trials == 0 {
        bail!("--trials must be at least 1 (the draft requires 20)");
    }
    if args.qps == 0 || args.qps as usize > crate::engine::SERVING_MAX_QPS {
        bail!(
            "--qps must be 1 ..= {} (the immediate names the QPs a request used)",
            crate::engine::SERVING_MAX_QPS
        );
    }
    if args.tx_depth == 0 {
        bail!("--tx-depth must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.fragmentation) {
        bail!("--fragmentation {} is outside 0 ..= 1", args.fragmentation);
    }
    let ratios = match tenants.first() {
        Some(t) => vec![t.ratio],
        None => PoolRatio::parse_list(&args.xpyd).map_err(anyhow::Error::msg)?,
    };
    if let Some(r) = ratios.iter().find(|r| r.workers() > MAX_WORKERS) {
        bail!("--xpyd {r}: at most {MAX_WORKERS} workers (threads) per ratio on one host");
    }
    let tenant_workers: u32 = tenants.iter().map(|t| t.ratio.workers()).sum();
    if tenant_workers > MAX_WORKERS {
        bail!("--tenant: {tenant_workers} workers (threads) in all; at most {MAX_WORKERS} on one host");
    }
    let arrival = Arrival::parse(&args.arrival).map_err(anyhow::Error::msg)?;
    let trace_file = args.arrival.strip_prefix("trace:");
    let prompt_dist = LengthDist::parse(
        &args.prompt_dist,
        "--prompt-dist",
        trace_file,
        TraceField::Input,
    )
    .map_err(anyhow::Error::msg)?;
    let output_dist = LengthDist::parse(
        &args.output_dist,
        "--output-dist",
        trace_file,
        TraceField::Output,
    )
    .map_err(anyhow::Error::msg)?;
    let prefill_of = |model: &KvModel| {
        let text = match (&args.prefill, model.params_b) {
            (Some(text), _) => text.clone(),
            (None, Some(_)) => "flops:TFLOPS=989,MFU=0.4".into(),
            (None, None) => "rate:20000".into(),
        };
        PrefillModel::parse(&text, model).context("--prefill")
    };
    let prefill = prefill_of(&model)?;
    let sweep = match (&args.oversubscribe, &args.rate_sweep) {
        _ if !tenants.is_empty() => ServingSweep::Tenants(
            tenants
                .into_iter()
                .map(|tenant| {
                    Ok(TenantRun {
                        prefill: prefill_of(&tenant.model)
                            .with_context(|| format!("--tenant {}", tenant.name))?,
                        tenant,
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        (Some(text), _) => ServingSweep::Oversubscribe(
            parse_multiples(text, "--oversubscribe").map_err(anyhow::Error::msg)?,
        ),
        (None, Some(text)) => ServingSweep::RateSweep(
            parse_multiples(text, "--rate-sweep").map_err(anyhow::Error::msg)?,
        ),
        (None, None) => ServingSweep::Points,
    };
    let slo = |text: &Option<String>, flag: &str| {
        text.as_deref()
            .map(|t| parse_duration_ns(t, flag))
            .transpose()
    };
    let bin_ns = parse_duration_ns(&args.bin, "--bin")?;
    if bin_ns < 10_000 {
        bail!("--bin {}: at least 10us", args.bin);
    }
    let workers = ratios
        .iter()
        .map(|r| r.workers())
        .max()
        .unwrap_or(2)
        .max(tenant_workers) as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let poll = match args.poll {
        Some(flag) => flag.mode(),
        // a spinning worker takes the core another worker (or SoftRoCE's
        // packet work) needs
        None if cores < workers + 2 => PollMode::Event,
        None => PollMode::Spin,
    };
    let direction = DirectionArg::or_default_for(args.direction, layout);
    let params = ServingParams {
        model,
        tp: args.tp,
        layout,
        direction,
        block_tokens: args.block_tokens,
        pool_blocks: args.pool_blocks,
        fragmentation: args.fragmentation,
        max_wr_bytes: max_wr_bytes(args.max_wr_bytes.as_deref())?,
        qps: args.qps,
        tx_depth: args.tx_depth,
        ratios,
        arrival,
        prompt_dist,
        output_dist,
        requests: args.requests,
        prefill,
        decode_init_ns: parse_duration_ns(&args.decode_init, "--decode-init")?,
        decode_step_ns: parse_duration_ns(&args.decode_step, "--decode-step")?,
        route: args.route.parse().map_err(anyhow::Error::msg)?,
        admission: args.admission.parse().map_err(anyhow::Error::msg)?,
        control: match &args.control {
            Some(text) => text.parse().map_err(anyhow::Error::msg)?,
            None if across_nodes(args) => ServingControl::Fabric,
            None => ServingControl::Shared,
        },
        sweep,
        slo_ttft_ns: slo(&args.slo_ttft, "--slo-ttft")?,
        slo_itl_ns: slo(&args.slo_itl, "--slo-itl")?,
        bin_ns,
        verify: args.verify,
        seed: args.seed,
        trials: args.trials,
        stall_timeout: seconds(args.stall_timeout, "--stall-timeout")?,
        poll,
        huge_pages: args.huge_pages,
        path: QpPathOptions {
            traffic_class: args.tclass,
            ..QpPathOptions::default()
        },
        json: args.json.clone(),
        dut_id: args.dut.clone(),
    };
    params.check().map_err(anyhow::Error::msg)?;
    if let Some(path) = &params.json {
        super::output::prepare_output(path, "--json")?;
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Command, RunCommand};
    use crate::engine::KvDirection;
    use clap::Parser;

    fn parse(line: &str) -> Result<ServingParams> {
        let cli = Cli::try_parse_from(std::iter::once("infab").chain(line.split_whitespace()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match cli.command {
            Command::Run(RunCommand::Serving(args)) => serving_params(&args),
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_direction_follows_the_layout_unless_given() {
        assert_eq!(parse("run serving").unwrap().direction, KvDirection::Push);
        let p = parse("run serving --layout vllm").unwrap();
        assert_eq!(p.direction, KvDirection::Pull, "vLLM's NixlConnector pulls");
        let p = parse("run serving --layout vllm --direction push").unwrap();
        assert_eq!(p.direction, KvDirection::Push);
        let p = parse("run serving --direction pull").unwrap();
        assert_eq!(p.direction, KvDirection::Pull);
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(
            parse_duration_ns("500ms", "--slo-ttft").unwrap(),
            500_000_000
        );
        assert_eq!(parse_duration_ns("2.5s", "--x").unwrap(), 2_500_000_000);
        assert_eq!(parse_duration_ns("100us", "--x").unwrap(), 100_000);
        let err = parse_duration_ns("500", "--slo-ttft")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--slo-ttft '500': give a unit"), "{err}");
        assert!(parse_duration_ns("5 parsecs", "--x").is_err());
    }

    #[test]
    fn bad_input_is_one_line_before_any_traffic() {
        for (line, want) in [
            ("run serving --arrival poisson:0", "above 0"),
            ("run serving --arrival closed", "open-loop"),
            ("run serving --xpyd 3P", "xPyD"),
            ("run serving --slo-ttft 500", "give a unit"),
            ("run serving --rate-sweep 1..10:1", "--slo-ttft"),
            (
                "run serving --prompt-dist uniform:1..4096 --pool-blocks 8",
                "--pool-blocks",
            ),
            ("run serving --route nearest", "--route"),
            ("run serving --admission drop", "--admission"),
            ("run serving --control zmq", "--control"),
            (
                "run serving --control fabric --route least-loaded",
                "round-robin or random",
            ),
            ("run serving --tenant llama-3.1-8b,1P1D", "two to"),
            (
                "run serving --tenant llama-3.1-8b,1P1D --tenant llama-3.1-8b,1X",
                "MODEL,XPYD",
            ),
            (
                "run serving --tenant llama-3.1-8b,1P1D --tenant llama-3.1-8b,1P1D,rate=0",
                "above 0",
            ),
        ] {
            let err = format!("{:#}", parse(line).unwrap_err());
            assert!(err.contains(want), "{line}: {err}");
            assert!(!err.contains('\n'), "{line}: one line: {err}");
        }
    }

    #[test]
    fn tenants_make_a_10_3_run_with_their_own_models_and_rates() {
        let p = parse(
            "run serving --tenant llama-3.1-8b,1P1D,rate=4 --tenant llama-3.1-70b,2P1D --arrival poisson:2",
        )
        .unwrap();
        assert_eq!(p.test_id(), "10.3");
        let ServingSweep::Tenants(t) = &p.sweep else {
            panic!("{:?}", p.sweep)
        };
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].tenant.name.as_str(), t[0].tenant.rate),
            ("A", Some(4.0))
        );
        assert_eq!(t[1].tenant.model.name, "llama-3.1-70b");
        // each tenant's prefill comes from its own model
        assert_ne!(t[0].prefill.prefill_ns(1024), t[1].prefill.prefill_ns(1024));
        assert_eq!(p.model.name, "llama-3.1-8b");
        assert!(parse(
            "run serving --tenant llama-3.1-8b,1P1D --tenant llama-3.1-8b,1P1D --xpyd 2P2D"
        )
        .is_err());
    }

    #[test]
    fn a_trace_feeds_arrivals_and_lengths() {
        let dir = std::env::temp_dir().join(format!("infab-serving-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.jsonl");
        std::fs::write(
            &path,
            crate::workload::arrivals::synthetic_trace(20, 10.0, 3),
        )
        .unwrap();
        let p = parse(&format!(
            "run serving --arrival trace:{} --prompt-dist trace --output-dist trace",
            path.display()
        ))
        .unwrap();
        assert!(matches!(p.prompt_dist, LengthDist::Trace { .. }));
        let bad = dir.join("bad.jsonl");
        std::fs::write(&bad, "{\"timestamp\": 1, \"input_length\": 5}\nnot json\n").unwrap();
        let err = format!(
            "{:#}",
            parse(&format!("run serving --arrival trace:{}", bad.display())).unwrap_err()
        );
        assert!(err.contains("line 2"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
