//! `infab run pairs` and `infab run incast`: work out this node's place
//! (flags, launcher env, topology), open its devices, host the rendezvous on
//! node 0, and run the node agent.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cluster::{run_node, ClusterError, Coordinator, Expectation, NodeOptions, NodeRole};
use crate::launch::{resolve_from_process, LaunchFlags, LaunchInfo, LaunchSource};
use crate::report::render_fabric_table;
use crate::results::{DutReport, RunReport};
use crate::suite::fabric::{run_fabric, FabricEvent, FabricOptions, FabricTest};

use super::progress::Progress;
use crate::suite::incast::IncastTest;
use crate::suite::pairs::PairsTest;
use crate::suite::soak::SoakOptions;
use crate::suite::SuiteError;
use crate::topology::{Role, Topology};
use crate::verbs::QpPathOptions;

use super::args::{
    AllToAllArgs, AllToAllTestArg, ContentionArgs, ContentionTestArg, DecodeStepsArgs, DeviceArgs,
    DispatchModeArg, DispatchOpArg, FabricArgs, IncastArgs, IncastTestArg, PairsArgs, PollArg,
    RoleArg,
};
use super::{max_wr_bytes, open_device, parse_count_list, parse_size, seconds, socket_addr};
use crate::suite::alltoall::{AllToAllParams, AllToAllTest, DispatchMode};
use crate::suite::contention::{ContentionParams, ContentionTest, ConvergenceParams};
use crate::suite::decode_steps::{DecodeStepsParams, DecodeStepsTest};
use crate::workload::moe::{DispatchCopies, MoeConfig, RoutingMode};

/// Largest pair / sender count (ranks are threads; the draft stops at 128).
const MAX_FLOWS: u32 = 256;

/// `infab run pairs`.
pub(super) fn pairs_command(args: &PairsArgs) -> Result<i32> {
    let pairs = counts(&args.pairs, "--pairs")?;
    let soak = super::soak_options(&args.soak)?;
    if soak.is_some() && pairs.len() != 1 {
        bail!("--soak runs one configuration: give one --pairs count");
    }
    let duration = match soak {
        Some(soak) => soak.interval,
        None => seconds(args.duration, "--duration")?,
    };
    let needs = RankNeeds {
        prefill: *pairs.iter().max().unwrap_or(&1),
        decode: *pairs.iter().max().unwrap_or(&1),
        ep: 0,
        default_roles: vec![Role::Prefill, Role::Decode],
    };
    let trial_time = duration;
    let mut test = PairsTest::new(pairs, duration);
    fabric_command(&args.fabric, &mut test, needs, trial_time, soak)
}

/// `infab run incast`.
pub(super) fn incast_command(args: &IncastArgs) -> Result<i32> {
    let senders = counts(&args.senders, "--senders")?;
    let (test_id, default_bursts, default_windows) = match args.test {
        IncastTestArg::Ecn => ("8.1", 1, "0"),
        IncastTestArg::Pfc => ("8.2", 8, "100us,1ms,10ms"),
    };
    let bursts = args.bursts.unwrap_or(default_bursts);
    if bursts == 0 || bursts > 4096 {
        bail!("--bursts must be between 1 and 4096, not {bursts}");
    }
    let windows = windows_ns(args.arrival_window.as_deref().unwrap_or(default_windows))?;
    let needs = RankNeeds {
        prefill: *senders.iter().max().unwrap_or(&1),
        decode: 1,
        ep: 0,
        default_roles: vec![Role::Prefill, Role::Decode],
    };
    let trial_time =
        Duration::from_nanos(*windows.iter().max().unwrap_or(&0)) + Duration::from_secs(5);
    let counter_interval = args
        .counter_interval
        .as_deref()
        .map(|text| duration_flag(Some(text), "", "--counter-interval"))
        .transpose()?;
    if let Some(interval) = counter_interval {
        if interval < crate::sysinfo::MIN_COUNTER_INTERVAL {
            bail!("--counter-interval {interval:?}: sysfs is sampled at most every 1ms");
        }
    }
    let mut test = IncastTest::new(test_id, senders, bursts, windows, args.seed)
        .with_counter_interval(counter_interval);
    fabric_command(&args.fabric, &mut test, needs, trial_time, None)
}

/// `infab run alltoall`.
pub(super) fn alltoall_command(args: &AllToAllArgs) -> Result<i32> {
    let (test_id, default_modes, default_routing): (&'static str, &[DispatchMode], &str) =
        match args.test {
            AllToAllTestArg::Throughput => ("7.1", &[DispatchMode::Normal], "top-k"),
            AllToAllTestArg::Modes => (
                "7.2",
                &[DispatchMode::Normal, DispatchMode::LowLatency],
                "top-k,zipf:alpha=1.2",
            ),
            AllToAllTestArg::Scaling => ("7.3", &[DispatchMode::Normal], "top-k"),
        };
    let moe: MoeConfig = args.moe.parse().context("--moe")?;
    let ep_sizes = counts(&args.ep, "--ep")?;
    if let Some(&bad) = ep_sizes.iter().find(|&&n| n < 2) {
        bail!("--ep: an AllToAll needs at least 2 ranks, not {bad}");
    }
    let modes: Vec<DispatchMode> = if args.mode.is_empty() {
        default_modes.to_vec()
    } else {
        args.mode
            .iter()
            .map(|m| match m {
                DispatchModeArg::Normal => DispatchMode::Normal,
                DispatchModeArg::LowLatency => DispatchMode::LowLatency,
            })
            .collect()
    };
    let routings = args
        .routing
        .as_deref()
        .unwrap_or(default_routing)
        .split(',')
        .map(|r| r.trim().parse::<RoutingMode>().context("--routing"))
        .collect::<Result<Vec<_>>>()?;
    let batches = counts(&args.batch, "--batch")?;
    if args.iterations == 0 || u64::from(args.iterations) > MAX_ALLTOALL_ITERATIONS {
        bail!("--iterations must be 1 ..= {MAX_ALLTOALL_ITERATIONS}");
    }
    let copies: DispatchCopies = args.copies.parse().context("--copies")?;
    let mut test = AllToAllTest::new(AllToAllParams {
        test_id,
        moe,
        ep_sizes,
        modes,
        routings,
        batches,
        iterations: args.iterations,
        send: args.op == DispatchOpArg::Send,
        copies,
        seed: args.seed,
        combine: !args.dispatch_only,
    })
    .context("the MoE workload")?;
    let needs = RankNeeds {
        prefill: 0,
        decode: 0,
        ep: test.max_ep(),
        default_roles: vec![Role::Ep],
    };
    let trial_time = Duration::from_secs(5) + Duration::from_millis(20) * args.iterations;
    fabric_command(&args.fabric, &mut test, needs, trial_time, None)
}

/// `infab run contention`.
pub(super) fn contention_command(args: &ContentionArgs) -> Result<i32> {
    if args.kv_pairs == 0 || args.kv_pairs > MAX_FLOWS {
        bail!("--kv-pairs must be between 1 and {MAX_FLOWS}");
    }
    let convergence = args.test == ContentionTestArg::Convergence;
    let loads = match (args.kv_load.is_empty(), convergence) {
        (false, _) => args.kv_load.clone(),
        (true, false) => vec![50, 75],
        (true, true) => vec![80],
    };
    if let Some(&bad) = loads.iter().find(|&&l| l == 0 || l > 100) {
        bail!("--kv-load {bad}%: loads are 1..=100 percent of the measured capacity (rates > 100% cannot be paced)");
    }
    if args.ep < 2 {
        bail!("--ep: an AllToAll needs at least 2 ranks");
    }
    let period = humantime::parse_duration(&args.period).with_context(|| {
        format!(
            "--period: '{}' is not a duration like 1ms or 500us",
            args.period
        )
    })?;
    if period.is_zero() {
        bail!("--period must be above zero");
    }
    let duration = seconds(args.duration, "--duration")?;
    let convergence = convergence_option(args, duration)?;
    let mut test = ContentionTest::new(ContentionParams {
        kv_pairs: args.kv_pairs,
        loads,
        duration,
        moe: args.moe.parse().context("--moe")?,
        ep: args.ep,
        batch: args.batch,
        mode: match args.mode {
            DispatchModeArg::Normal => DispatchMode::Normal,
            DispatchModeArg::LowLatency => DispatchMode::LowLatency,
        },
        routing: args.routing.parse().context("--routing")?,
        period,
        seed: args.seed,
        convergence,
    })
    .context("the MoE workload")?;
    let needs = RankNeeds {
        prefill: args.kv_pairs,
        decode: args.kv_pairs,
        ep: args.ep,
        default_roles: vec![Role::Prefill, Role::Decode, Role::Ep],
    };
    let trial_time = duration + period * 5000 + Duration::from_secs(5);
    fabric_command(&args.fabric, &mut test, needs, trial_time, None)
}

/// A duration flag like 1ms or 100us, or its default.
fn duration_flag(value: Option<&str>, default: &str, flag: &str) -> Result<Duration> {
    let text = value.unwrap_or(default);
    humantime::parse_duration(text)
        .with_context(|| format!("{flag}: '{text}' is not a duration like 1ms or 100us"))
}

/// The 8.3 knobs (None for 7.4, which refuses them).
fn convergence_option(
    args: &ContentionArgs,
    duration: Duration,
) -> Result<Option<ConvergenceParams>> {
    if args.test == ContentionTestArg::Convergence {
        return convergence_params(args, duration).map(Some);
    }
    for (flag, given) in [
        ("--bin", args.bin.is_some()),
        ("--counter-interval", args.counter_interval.is_some()),
        ("--smooth", args.smooth.is_some()),
    ] {
        if given {
            bail!("{flag} belongs to --test 8.3 (7.4 records no series)");
        }
    }
    Ok(None)
}

/// The 8.3 knobs, checked against the trial length.
fn convergence_params(args: &ContentionArgs, duration: Duration) -> Result<ConvergenceParams> {
    let bin = duration_flag(args.bin.as_deref(), "1ms", "--bin")?;
    if bin < Duration::from_micros(100) || bin > Duration::from_secs(1) {
        bail!("--bin {bin:?}: bins are 100us ..= 1s");
    }
    let counter_interval = duration_flag(
        args.counter_interval.as_deref(),
        "10ms",
        "--counter-interval",
    )?;
    if counter_interval < crate::sysinfo::MIN_COUNTER_INTERVAL {
        bail!("--counter-interval {counter_interval:?}: sysfs is sampled at most every 1ms");
    }
    let smooth = duration_flag(args.smooth.as_deref(), "10ms", "--smooth")?;
    if smooth < bin {
        bail!("--smooth {smooth:?} is shorter than one --bin ({bin:?})");
    }
    // the steady state is the last third of [t0 = duration/3, end]
    if duration < bin * 30 {
        bail!("--duration {duration:?}: 8.3 needs at least 30 bins ({:?}) per trial so each third holds 10", bin * 30);
    }
    if args.kv_load.len() > 1 {
        bail!(
            "--kv-load: 8.3 runs one load (the draft: 80), not {:?}",
            args.kv_load
        );
    }
    Ok(ConvergenceParams {
        bin,
        counter_interval,
        smooth,
    })
}

/// AllToAll iterations per trial: the iteration number travels in the low
/// 31 bits of the immediate (bit 31 marks a combine), and a trial's
/// per-iteration times are kept in memory.
const MAX_ALLTOALL_ITERATIONS: u64 = 10_000_000;

/// `infab run decode-steps`.
pub(super) fn decode_steps_command(args: &DecodeStepsArgs) -> Result<i32> {
    if args.kv_pairs == 0 || args.kv_pairs > MAX_FLOWS {
        bail!("--kv-pairs must be between 1 and {MAX_FLOWS}");
    }
    if args.load.is_empty() {
        bail!("--load needs at least one level, e.g. 0,50,90");
    }
    if let Some(&bad) = args.load.iter().find(|&&l| l > 100) {
        bail!("--load {bad}%: loads are 0..=100 percent of the measured capacity (rates > 100% cannot be paced)");
    }
    if args.ep < 2 {
        bail!("--ep: an AllToAll needs at least 2 ranks");
    }
    if args.layers == 0 || args.steps == 0 {
        bail!("--layers and --steps must be at least 1");
    }
    // iteration numbers travel in 31 bits of the immediate (bit 31 marks a combine)
    if u64::from(args.layers) * u64::from(args.steps) > MAX_ALLTOALL_ITERATIONS {
        bail!(
            "--steps {} × --layers {} is more than {MAX_ALLTOALL_ITERATIONS} AllToAll iterations per trial; use fewer steps per trial and more --trials",
            args.steps,
            args.layers
        );
    }
    let compute_gap = match args.compute_gap.trim() {
        "0" => Duration::ZERO,
        text => humantime::parse_duration(text).with_context(|| {
            format!("--compute-gap: '{text}' is not a duration like 20us or 1ms (or 0)")
        })?,
    };
    if compute_gap > Duration::from_secs(1) {
        bail!("--compute-gap {compute_gap:?}: a layer's compute is microseconds to milliseconds, not seconds");
    }
    let mut test = DecodeStepsTest::new(DecodeStepsParams {
        moe: args.moe.parse().context("--moe")?,
        ep: args.ep,
        batch: args.batch,
        layers: args.layers,
        compute_gap,
        steps: args.steps,
        loads: args.load.clone(),
        kv_pairs: args.kv_pairs,
        routing: args.routing.parse().context("--routing")?,
        seed: args.seed,
    })
    .context("the MoE workload")?;
    let loaded = args.load.iter().any(|&l| l > 0);
    let needs = RankNeeds {
        prefill: if loaded { args.kv_pairs } else { 0 },
        decode: if loaded { args.kv_pairs } else { 0 },
        ep: args.ep,
        default_roles: vec![Role::Prefill, Role::Decode, Role::Ep],
    };
    let per_step = (Duration::from_millis(40) + compute_gap) * args.layers;
    let trial_time = per_step * args.steps * 3 + Duration::from_secs(10);
    fabric_command(&args.fabric, &mut test, needs, trial_time, None)
}

fn counts(text: &str, flag: &str) -> Result<Vec<u32>> {
    let list = parse_count_list(text)
        .map_err(anyhow::Error::msg)
        .with_context(|| flag.to_string())?;
    if let Some(&bad) = list.iter().find(|&&n| n == 0 || n > MAX_FLOWS) {
        bail!("{flag}: {bad} is outside 1 ..= {MAX_FLOWS}");
    }
    Ok(list)
}

fn windows_ns(text: &str) -> Result<Vec<u64>> {
    text.split(',')
        .map(|item| {
            let item = item.trim();
            if item == "0" {
                return Ok(0);
            }
            let d = humantime::parse_duration(item).with_context(|| {
                format!("--arrival-window: '{item}' is not a duration like 100us, 1ms, 10ms")
            })?;
            if d > Duration::from_secs(60) {
                bail!("--arrival-window: {item} is longer than 60 s");
            }
            Ok(d.as_nanos() as u64)
        })
        .collect()
}

/// Ranks of each role the sweep needs in total, and the roles of a node
/// run without topology or --role.
#[derive(Debug, Clone)]
pub(super) struct RankNeeds {
    pub(super) prefill: u32,
    pub(super) decode: u32,
    pub(super) ep: u32,
    pub(super) default_roles: Vec<Role>,
}

/// This node, as flags, env and topology describe it.
struct NodePlace {
    launch: LaunchInfo,
    name: String,
    roles: Vec<(Role, DeviceArgs)>,
    master: String,
    topology: Option<Topology>,
}

fn role_of(arg: RoleArg) -> Role {
    match arg {
        RoleArg::Prefill => Role::Prefill,
        RoleArg::Decode => Role::Decode,
        RoleArg::Ep => Role::Ep,
    }
}

fn place(args: &FabricArgs, default_roles: &[Role]) -> Result<NodePlace> {
    let topology = match &args.topology {
        Some(path) => Some(Topology::load(path)?),
        None => None,
    };
    // a topology knows the node count; a launcher may give only the rank
    let nnodes = args
        .nnodes
        .or_else(|| topology.as_ref().map(|t| t.nodes.len() as u32))
        .filter(|_| args.node_rank.is_some() || args.nnodes.is_some());
    let mut launch = resolve_from_process(&LaunchFlags {
        node_rank: args.node_rank,
        nnodes,
        master: args.master.clone(),
    })
    .or_else(|err| match &topology {
        // env gave NODE_RANK without NNODES: the topology says how many
        Some(t) if err.0.contains("--nnodes") => resolve_from_process(&LaunchFlags {
            node_rank: std::env::var("NODE_RANK")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            nnodes: Some(t.nodes.len() as u32),
            master: args.master.clone(),
        }),
        _ => Err(err),
    })?;
    let Some(topology) = topology else {
        let roles: Vec<Role> = if args.role.is_empty() {
            default_roles.to_vec()
        } else {
            args.role.iter().map(|&r| role_of(r)).collect()
        };
        let mut out = Vec::new();
        for role in roles {
            let device = match (role, &args.target_device) {
                (Role::Decode, Some(target)) => DeviceArgs {
                    device: Some(target.clone()),
                    ..args.device.clone()
                },
                _ => args.device.clone(),
            };
            if let (Role::Ep, Some(target)) = (role, &args.target_device) {
                // one host, two devices: half the EP ranks on each
                out.push((
                    role,
                    DeviceArgs {
                        device: Some(target.clone()),
                        ..args.device.clone()
                    },
                ));
            }
            out.push((role, device));
        }
        let master = match (&launch.master_host, launch.nnodes) {
            (Some(host), _) => format!("{host}:{}", launch.master_port),
            (None, 1) => "127.0.0.1:0".into(),
            (None, n) => bail!(
                "{n} nodes but no rendezvous address: pass --master HOST[:PORT] (node 0's address), set MASTER_ADDR, or use --topology"
            ),
        };
        let name = format!("node{}@{}", launch.node_rank, crate::cluster::host_name());
        return Ok(NodePlace {
            launch,
            name,
            roles: out,
            master,
            topology: None,
        });
    };
    let count = topology.nodes.len() as u32;
    if launch.source == LaunchSource::SingleNode {
        if count > 1 {
            bail!(
                "the topology has {count} nodes: say which one this process is with --node-rank N (or the launcher's env: NODE_RANK, SLURM_NODEID, OMPI_COMM_WORLD_RANK)"
            );
        }
    } else if launch.nnodes != count && args.nnodes.is_some() {
        bail!(
            "--nnodes {} but the topology lists {count} nodes",
            launch.nnodes
        );
    }
    launch.nnodes = count;
    if launch.node_rank >= count {
        bail!(
            "node rank {} but the topology lists {count} nodes (0..{})",
            launch.node_rank,
            count - 1
        );
    }
    let node = &topology.nodes[launch.node_rank as usize];
    if !args.role.is_empty() {
        bail!(
            "--role conflicts with --topology: the topology gives node {} ({}) its roles",
            launch.node_rank,
            node.name
        );
    }
    if let Some(device) = &args.device.device {
        if device != &node.device {
            bail!(
                "rank/device mismatch: -d {device} but the topology gives node {} ({}) device {}; drop -d or fix the topology",
                launch.node_rank, node.name, node.device
            );
        }
    }
    let device = DeviceArgs {
        device: Some(node.device.clone()),
        gid_index: node.gid_index.or(args.device.gid_index),
        ib_port: node.port.unwrap_or(args.device.ib_port),
    };
    let roles = node
        .roles()
        .into_iter()
        .map(|r| (r, device.clone()))
        .collect();
    let host = launch
        .master_host
        .clone()
        .unwrap_or_else(|| topology.nodes[0].address.clone());
    let master = if host.contains(':') {
        format!("[{host}]:{}", launch.master_port)
    } else {
        format!("{host}:{}", launch.master_port)
    };
    Ok(NodePlace {
        launch,
        name: node.name.clone(),
        roles,
        master,
        topology: Some(topology),
    })
}

pub(super) fn fabric_command(
    args: &FabricArgs,
    test: &mut (dyn FabricTest + Send),
    needs: RankNeeds,
    trial_time: Duration,
    soak: Option<SoakOptions>,
) -> Result<i32> {
    if let Some(path) = &args.json {
        super::output::prepare_output(path, "--json")?;
    }
    let msg_bytes = parse_size(&args.size)
        .map_err(anyhow::Error::msg)
        .context("--size")?;
    if msg_bytes == 0 || msg_bytes > super::MAX_MSG_BYTES {
        bail!("--size: {msg_bytes} bytes is outside 1 B ..= 4 GiB");
    }
    if args.trials == 0 {
        bail!("--trials must be at least 1 (the draft requires 20)");
    }
    if args.qps == 0 || args.qps > super::MAX_QPS {
        bail!(
            "--qps: {} QPs per flow is outside 1 ..= {}",
            args.qps,
            super::MAX_QPS
        );
    }
    if args.tx_depth == Some(0) {
        bail!("--tx-depth must be at least 1");
    }
    if args.ranks_per_node == Some(0) {
        bail!("--ranks-per-node must be at least 1");
    }
    let stall_timeout = seconds(args.stall_timeout, "--stall-timeout")?;
    let join_timeout = seconds(args.rendezvous_timeout, "--rendezvous-timeout")?;
    let memory = super::memory::memory_options(&args.memory, args.huge_pages)?;
    // the GPUs first: a host without the driver hears about libcuda
    super::memory::check_local_gpus(&[
        ("--mem", memory.initiator),
        ("--target-mem", memory.target_or_host()),
    ])?;
    let place = place(args, &needs.default_roles)?;
    let node_rank = place.launch.node_rank;
    let topology_ranks = place
        .topology
        .as_ref()
        .and_then(|t| t.nodes[node_rank as usize].ranks);
    let mut roles = Vec::new();
    for (role, device_args) in &place.roles {
        let wanted = match role {
            Role::Prefill => needs.prefill,
            Role::Decode => needs.decode,
            Role::Ep => {
                let entries = place.roles.iter().filter(|(r, _)| *r == Role::Ep).count() as u32;
                needs.ep.div_ceil(entries.max(1))
            }
        };
        let ranks = args.ranks_per_node.or(topology_ranks).unwrap_or(wanted);
        let device = open_device(device_args)
            .with_context(|| format!("node {node_rank} ({}): the {role} device", place.name))?;
        roles.push(NodeRole {
            role: *role,
            device,
            ranks,
        });
    }
    let node_options = NodeOptions {
        node_rank,
        nnodes: place.launch.nnodes,
        name: place.name.clone(),
        test_id: test.test_id().into(),
        master: "127.0.0.1:1".parse().expect("a literal address"),
        token: args.token.clone(),
        roles,
        join_timeout,
        idle_timeout: trial_time + stall_timeout + Duration::from_secs(60),
        cores: args.cores.clone(),
        memory: memory.initiator,
        target_memory: memory.target_or_host(),
        traffic_class: args.tclass,
    };
    let master = socket_addr(&place.master, crate::launch::DEFAULT_MASTER_PORT)
        .with_context(|| format!("the rendezvous address {}", place.master))?;
    eprintln!(
        "infab {}: node {node_rank}/{} ({}), identity from {}, rendezvous {}",
        test.test_id(),
        place.launch.nnodes,
        place.name,
        place.launch.source,
        place.master
    );
    if node_rank != 0 {
        if args.json.is_some() {
            log::warn!("--json is written by node 0 only");
        }
        let options = NodeOptions {
            master,
            ..node_options
        };
        run_node(&options).with_context(|| format!("node {node_rank} ({})", place.name))?;
        eprintln!("infab: node {node_rank} done");
        return Ok(0);
    }
    let listener = TcpListener::bind(master).map_err(|cause| ClusterError::Bind {
        addr: master.to_string(),
        cause,
    })?;
    let bound = listener.local_addr().context("the rendezvous address")?;
    let names: Vec<String> = match &place.topology {
        Some(t) => t.nodes.iter().map(|n| n.name.clone()).collect(),
        None => Vec::new(),
    };
    let expectation = Expectation {
        nnodes: place.launch.nnodes,
        token: args.token.clone(),
        test_id: test.test_id().into(),
        join_timeout,
        names,
        master: bound.to_string(),
    };
    let fabric_options = FabricOptions {
        trials: soak.map_or(args.trials, |s| s.samples()),
        soak,
        msg_bytes,
        qps_per_flow: args.qps,
        tx_depth: args.tx_depth,
        max_wr_bytes: max_wr_bytes(args.max_wr_bytes.as_deref())?,
        path: QpPathOptions {
            traffic_class: args.tclass,
            service_level: args.sl,
            ..QpPathOptions::default()
        },
        stall_timeout,
        poll: args.poll.map(PollArg::mode),
        json: args.json.clone(),
        dut_id: args.dut.clone(),
        launcher: place.launch.source.to_string(),
        rendezvous: bound.to_string(),
        topology_file: args.topology.as_deref().map(|p| p.display().to_string()),
        dut: place
            .topology
            .as_ref()
            .map(|t| DutReport {
                description: t.dut.description.clone(),
                topology: t.dut.topology.clone(),
                link_speed: t.dut.link_speed.clone(),
                switch: t.dut.switch.clone(),
                notes: t.dut.notes.clone(),
            })
            .unwrap_or_default(),
        memory: memory.initiator,
        target_memory: memory.target_or_host(),
    };
    let local = NodeOptions {
        master: local_address(bound),
        ..node_options
    };
    let (report, error, node_result) = std::thread::scope(|scope| {
        let coordinator = scope.spawn(|| coordinate(listener, &expectation, test, &fabric_options));
        let node_result = run_node(&local);
        let (report, error) = coordinator.join().unwrap_or_else(|_| {
            (
                None,
                Some(SuiteError::Invalid("the coordinator panicked".into())),
            )
        });
        (report, error, node_result)
    });
    if let Some(report) = &report {
        print_report(report);
    }
    if let Some(path) = &args.json {
        if report.is_some() {
            eprintln!("infab: results written to {}", path.display());
        }
    }
    if let Some(err) = error {
        if let Err(node_err) = &node_result {
            log::warn!("node 0's own agent: {node_err}");
        }
        return Err(
            anyhow::Error::new(err).context(format!("{} run stopped", test_label(report.as_ref())))
        );
    }
    node_result.with_context(|| format!("node 0 ({})", place.name))?;
    Ok(0)
}

fn test_label(report: Option<&RunReport>) -> String {
    report.map_or("multi-rank".into(), |r| format!("test {}", r.test_id))
}

/// The address node 0's own agent dials: the bound one, or loopback when
/// bound to the unspecified address.
fn local_address(bound: SocketAddr) -> SocketAddr {
    if bound.ip().is_unspecified() {
        SocketAddr::new(
            "127.0.0.1".parse().expect("a literal address"),
            bound.port(),
        )
    } else {
        bound
    }
}

fn coordinate(
    listener: TcpListener,
    expectation: &Expectation,
    test: &mut (dyn FabricTest + Send),
    options: &FabricOptions,
) -> (Option<RunReport>, Option<SuiteError>) {
    let mut coordinator = match Coordinator::gather(listener, expectation) {
        Ok(c) => c,
        Err(err) => return (None, Some(err.into())),
    };
    let bar = Progress::new(
        (test.points() as u64) * u64::from(options.trials),
        &format!("infab {}", test.test_id()),
    );
    let mut progress = |event: FabricEvent<'_>| match event {
        FabricEvent::TrialDone {
            point,
            points,
            trial,
            trials,
        } => bar.inc(format!(
            "point {}/{points}, trial {}/{trials}",
            point + 1,
            trial + 1
        )),
        FabricEvent::PointDone(line) => bar.println(format!("infab: {line}")),
    };
    let (report, error) = run_fabric(&mut coordinator, test, options, &mut progress);
    bar.finish();
    (Some(report), error)
}

fn print_report(report: &RunReport) {
    if report.pairs.iter().all(|p| p.trials.is_empty())
        && report.incast.iter().all(|p| p.trials.is_empty())
        && report.alltoall.iter().all(|p| p.trials.is_empty())
        && report.contention.is_none()
        && report.kv.as_ref().is_none_or(|k| k.points.is_empty())
    {
        return;
    }
    println!("test {} ({})", report.test_id, report.test_name);
    println!("{}", render_fabric_table(report));
    for note in &report.deviations {
        println!("note: {note}");
    }
    println!("note: SoftRoCE (rxe) numbers are CPU-bound and functional only, never a NIC performance claim");
    super::print_soak(report.soak.as_ref());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Command, RunCommand};
    use crate::cli::Cli;
    use clap::Parser;

    fn convergence(line: &str) -> Result<Option<ConvergenceParams>> {
        let cli = Cli::try_parse_from(line.split_whitespace())?;
        let Command::Run(RunCommand::Contention(args)) = cli.command else {
            unreachable!()
        };
        convergence_option(&args, seconds(args.duration, "--duration")?)
    }

    #[test]
    fn the_8_3_knobs_default_and_bad_ones_are_refused() {
        let c = convergence("infab run contention --test 8.3 -d rxe0")
            .unwrap()
            .unwrap();
        assert_eq!(c.bin, Duration::from_millis(1));
        assert_eq!(c.counter_interval, Duration::from_millis(10));
        assert_eq!(c.smooth, Duration::from_millis(10));
        assert!(convergence("infab run contention -d rxe0")
            .unwrap()
            .is_none());
        for (line, says) in [
            (
                "infab run contention -d rxe0 --bin 1ms",
                "--bin belongs to --test 8.3",
            ),
            (
                "infab run contention --test 8.3 -d rxe0 --bin 10us",
                "100us",
            ),
            ("infab run contention --test 8.3 -d rxe0 --bin 2s", "100us"),
            (
                "infab run contention --test 8.3 -d rxe0 --counter-interval 100us",
                "1ms",
            ),
            (
                "infab run contention --test 8.3 -d rxe0 --smooth 100us",
                "shorter than one --bin",
            ),
            ("infab run contention --test 8.3 -d rxe0 -D 0.01", "30 bins"),
            (
                "infab run contention --test 8.3 -d rxe0 --kv-load 50,80",
                "one load",
            ),
            (
                "infab run contention --test 8.3 -d rxe0 --bin soon",
                "not a duration",
            ),
        ] {
            let err = format!("{:#}", convergence(line).unwrap_err());
            assert!(err.contains(says), "{line}: {err}");
        }
    }
}
