//! The command line: clap types ([`args`]), validation into suite options,
//! and dispatch. The only place (with main.rs) that uses anyhow.

pub mod args;
mod compare_cmd;
mod docs_cmd;
mod fabric_cmd;
mod gpu_check;
mod kv_cmd;
mod memory;
mod output;
pub mod progress;
mod report_cmd;
mod serving_cmd;
mod size;
mod tiers_cmd;
mod validate_cmd;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::control::Op;
use crate::report::render_table;
use crate::suite::p2p::{run_p2p, spawn_local_target, Clock, P2pOptions};
use crate::suite::serve::{serve, ServeOptions};
use crate::suite::soak::SoakOptions;
use crate::verbs::{list_devices, DeviceSelector, QpPathOptions, RdmaDevice};

pub use args::Cli;
use args::{
    ClockArg, Command, DeviceArgs, OpArg, P2pArgs, PollArg, RunCommand, ServeArgs, SoakArgs,
};
pub use size::{parse_count_list, parse_size, parse_size_list};

/// Largest message infab accepts (the draft's sweep ends at 1 GB).
const MAX_MSG_BYTES: u64 = 4 << 30;
/// Most QPs per configuration (the draft asks for up to 256).
const MAX_QPS: u32 = 256;

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Devices(args) if args.gpu => gpu_check::gpu_check(),
        Command::Devices(_) => devices(),
        Command::Serve(args) => serve_command(&args),
        Command::Run(RunCommand::P2p(args)) => p2p_command(&args),
        Command::Report(args) => report_cmd::report_command(&args),
        Command::Run(RunCommand::Pairs(args)) => fabric_cmd::pairs_command(&args),
        Command::Run(RunCommand::Incast(args)) => fabric_cmd::incast_command(&args),
        Command::Run(RunCommand::Alltoall(args)) => fabric_cmd::alltoall_command(&args),
        Command::Run(RunCommand::Contention(args)) => fabric_cmd::contention_command(&args),
        Command::Run(RunCommand::DecodeSteps(args)) => fabric_cmd::decode_steps_command(&args),
        Command::Run(RunCommand::Kv(args)) => kv_cmd::kv_command(&args),
        Command::Run(RunCommand::Serving(args)) => serving_cmd::serving_command(&args),
        Command::Run(RunCommand::Tiers(args)) => tiers_cmd::tiers_command(&args),
        Command::Validate(args) => validate_cmd::validate_command(&args),
        Command::Compare(args) => compare_cmd::compare_command(&args),
        Command::Completions { shell } => docs_cmd::completions(shell),
        Command::Man { dir } => docs_cmd::man(dir.as_deref()),
    }
}

pub(super) fn open_device(args: &DeviceArgs) -> Result<Arc<RdmaDevice>> {
    let selector = args.device.as_deref().map(DeviceSelector::parse);
    let device = RdmaDevice::open(selector.as_ref(), args.ib_port, args.gid_index)?;
    let facts = device.facts();
    log::info!(
        "device {} port {}: GID index {} {} ({}), MTU {}",
        facts.name,
        facts.port,
        facts.gid.index,
        facts.gid.gid,
        facts.gid.chosen_by,
        facts.active_mtu_bytes
    );
    Ok(Arc::new(device))
}

fn devices() -> Result<i32> {
    let list = list_devices()?;
    for device in list {
        println!(
            "{}  port 1 {}  MTU {}",
            device.name, device.port_state, device.active_mtu_bytes
        );
        for gid in device.gids {
            println!(
                "  GID index {:>3}  {:<8} {:<40} {}",
                gid.index,
                gid.gid_type,
                gid.gid,
                gid.netdev.unwrap_or_default()
            );
        }
    }
    Ok(0)
}

fn socket_addr(text: &str, default_port: u16) -> Result<SocketAddr> {
    let with_port =
        if text.parse::<SocketAddr>().is_ok() || (text.contains(':') && !text.contains("::")) {
            text.to_string()
        } else if text.contains("::") {
            format!("[{text}]:{default_port}")
        } else {
            format!("{text}:{default_port}")
        };
    with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve '{text}'"))?
        .next()
        .with_context(|| format!("'{text}' resolves to no address"))
}

/// `--max-wr-bytes`: a size of 1 B ..= 4 GiB − 1 (one work request's length).
fn max_wr_bytes(text: Option<&str>) -> Result<Option<u64>> {
    text.map(|text| {
        let bytes = parse_size(text)
            .map_err(anyhow::Error::msg)
            .context("--max-wr-bytes")?;
        if bytes == 0 || bytes > u64::from(u32::MAX) {
            bail!("--max-wr-bytes must be between 1 and 4 GiB - 1");
        }
        Ok(bytes)
    })
    .transpose()
}

pub(super) fn seconds(value: f64, flag: &str) -> Result<Duration> {
    if !value.is_finite() || value <= 0.0 || value > 86_400.0 {
        bail!("{flag} must be between 0 and 86400 seconds, not {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

fn serve_options(args: &ServeArgs) -> Result<ServeOptions> {
    Ok(ServeOptions {
        token: args.token.clone(),
        once: args.once,
        memory: memory::memory_options(
            &args::MemArgs {
                mem: args.mem.clone(),
                target_mem: None,
            },
            args.huge_pages,
        )?
        .initiator,
        idle_timeout: seconds(args.idle_timeout, "--idle-timeout")?,
        stall_timeout: seconds(args.stall_timeout, "--stall-timeout")?,
        core: args.core,
    })
}

fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).with_context(|| {
        format!("cannot listen on {addr}: is another infab serve running there, or is the address not local?")
    })
}

fn serve_command(args: &ServeArgs) -> Result<i32> {
    let options = serve_options(args)?;
    memory::check_local_gpus(&[("--mem", options.memory)])?;
    let addr = socket_addr(&args.bind, args.port)?;
    let device = open_device(&args.device)?;
    let listener = bind(addr)?;
    eprintln!("infab serve: {} ready on {addr}", device.name());
    serve(listener, device, &options)?;
    Ok(0)
}

fn op(arg: OpArg) -> Op {
    match arg {
        OpArg::Write => Op::Write,
        OpArg::WriteImm => Op::WriteImm,
        OpArg::Send => Op::Send,
        OpArg::Read => Op::Read,
    }
}

/// Validates the p2p flags into suite options.
/// Prints a soak's findings (13.1-13.3) after the results table.
fn print_soak(soak: Option<&crate::results::SoakReport>) {
    let Some(soak) = soak else { return };
    println!(
        "soak: {} samples over {:.0} s; throughput CV {}; P99 variation {}; {} QP errors, {} retransmissions",
        soak.samples.len(),
        soak.elapsed_s,
        soak.throughput_cv_percent
            .map_or("n/a".into(), |v| format!("{v:.2} %")),
        soak.latency_p99_variation_percent
            .map_or("n/a".into(), |v| format!("{v:.1} %")),
        soak.qp_errors,
        soak.retransmissions
    );
    for finding in &soak.findings {
        println!("soak: {finding}");
    }
}

/// The soak of `--soak`/`--sample-interval`, validated; `None` without `--soak`.
fn soak_options(args: &SoakArgs) -> Result<Option<SoakOptions>> {
    let Some(total) = &args.soak else {
        return Ok(None);
    };
    let parse = |text: &str, flag: &str| {
        humantime::parse_duration(text.trim())
            .or_else(|_| {
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or(())
            })
            .map_err(|_| anyhow::anyhow!("{flag}: '{text}' is not a duration like 90s, 10m or 24h"))
    };
    let duration = parse(total, "--soak")?;
    let interval = parse(&args.sample_interval, "--sample-interval")?;
    SoakOptions::new(duration, interval, args.soak_inject_leak)
        .map(Some)
        .map_err(anyhow::Error::msg)
}

fn p2p_options(args: &P2pArgs) -> Result<P2pOptions> {
    let op = op(args.op);
    let sizes = parse_size_list(&args.sizes)
        .map_err(anyhow::Error::msg)
        .context("--sizes")?;
    for &size in &sizes {
        if size == 0 || size > MAX_MSG_BYTES {
            bail!("--sizes: {size} bytes is outside 1 B ..= 4 GiB");
        }
    }
    let qps = parse_count_list(&args.qps)
        .map_err(anyhow::Error::msg)
        .context("--qps")?;
    if let Some(&bad) = qps.iter().find(|&&q| q == 0 || q > MAX_QPS) {
        bail!("--qps: {bad} QPs is outside 1 ..= {MAX_QPS}");
    }
    if args.trials == 0 {
        bail!("--trials must be at least 1 (the draft requires 20)");
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if args.cq_mod == 0 {
        bail!("--cq-mod must be at least 1");
    }
    if args.rx_depth == 0 {
        bail!("--rx-depth must be at least 1");
    }
    if args.tx_depth == Some(0) {
        bail!("--tx-depth must be at least 1");
    }
    if args.iters == Some(0) {
        bail!("--iters must be at least 1");
    }
    if args.cq_mod > 1 && op.target_receives() {
        bail!(
            "--cq-mod applies to write and read only: every {} message completes at the target",
            op.name()
        );
    }
    if op == Op::Read && args.verify {
        bail!("--verify checks the target's buffer and does not apply to --op read");
    }
    let background_levels = background_levels(args)?;
    let memory = memory::memory_options(&args.memory, args.huge_pages)?;
    let mut clocks: Vec<Clock> = args
        .clock
        .iter()
        .map(|c| match c {
            ClockArg::Initiator => Clock::Initiator,
            ClockArg::Target => Clock::Target,
            ClockArg::Pingpong => Clock::PingPong,
        })
        .collect();
    if args.latency {
        if qps != [1] {
            bail!("latency mode measures one outstanding message on one QP; drop --qps (5.2 load comes from a background stream)");
        }
        if clocks.is_empty() {
            clocks.push(Clock::Initiator);
            if op.target_receives() {
                clocks.push(Clock::Target);
            }
            // a WRITE ping-pong polls the buffer from the CPU: not on GPU memory
            if op != Op::Read && !(op == Op::Write && memory.any_gpu()) {
                clocks.push(Clock::PingPong);
            }
        }
        if clocks.contains(&Clock::Target) && !op.target_receives() {
            bail!(
                "--clock target needs a completion at the target: use --op write-imm or --op send"
            );
        }
        if clocks.contains(&Clock::PingPong) && op == Op::Read {
            bail!("--clock pingpong does not apply to --op read");
        }
        clocks.sort();
        clocks.dedup();
    } else if !clocks.is_empty() {
        bail!("--clock applies to --latency runs only");
    }
    let soak = soak_options(&args.soak)?;
    if let Some(soak) = &soak {
        if sizes.len() != 1 || qps.len() != 1 {
            bail!("--soak runs one configuration: give one --sizes and one --qps value");
        }
        if args.iters.is_some() {
            bail!("--soak times every sample by --sample-interval; drop --iters");
        }
        if args.background_sweep {
            bail!("--soak runs one configuration; --background-sweep is a sweep");
        }
        if soak.interval < Duration::from_secs(1) && args.latency {
            bail!("--sample-interval below 1 s leaves a latency sample too few iterations");
        }
    }
    let duration = match (args.duration, args.iters) {
        _ if soak.is_some() => soak.map(|s| s.interval),
        (Some(d), _) => Some(seconds(d, "--duration")?),
        (None, Some(_)) => None,
        (None, None) if args.latency => None,
        (None, None) => Some(Duration::from_secs(2)),
    };
    let iters = match (args.iters, duration, args.latency) {
        (Some(n), _, _) => Some(n),
        (None, None, true) => Some(1000),
        _ => None,
    };
    let max_wr_bytes = max_wr_bytes(args.max_wr_bytes.as_deref())?;
    if memory.any_gpu() && args.latency && clocks.contains(&Clock::PingPong) && op == Op::Write {
        bail!(
            "--clock pingpong with --op write polls the buffer's last byte from the CPU, which GPU \
             memory does not allow; with --mem/--target-mem cuda:N use --clock initiator,target \
             (or --op send)"
        );
    }
    Ok(P2pOptions {
        op,
        latency_mode: args.latency,
        clocks,
        sizes,
        qps,
        trials: soak.map_or(args.trials, |s| s.samples()),
        duration,
        iters,
        warmup_iters: args.warmup,
        tx_depth: args.tx_depth,
        rx_depth: args.rx_depth,
        cq_mod: args.cq_mod,
        threads: args.threads,
        verify: args.verify,
        memory: memory.initiator,
        target_memory: memory.target,
        max_wr_bytes,
        stall_timeout: seconds(args.stall_timeout, "--stall-timeout")?,
        path: QpPathOptions {
            traffic_class: args.tclass,
            service_level: args.sl,
            ..QpPathOptions::default()
        },
        token: args.token.clone(),
        json: args.json.clone(),
        dut_id: args.dut.clone(),
        cores: args.cores.clone(),
        local_target: None,
        background_levels,
        background_sweep: args.background_sweep,
        background_qps: args.background_qps,
        soak,
        poll: args.poll.map(PollArg::mode),
    })
}

/// The background levels of `--background LIST` / `--background-sweep`
/// (10.4: 0..95 % in 5 % steps); empty without either.
fn background_levels(args: &P2pArgs) -> Result<Vec<u32>> {
    let levels = match (&args.background, args.background_sweep) {
        (Some(_), true) => bail!(
            "--background and --background-sweep are exclusive: the sweep already runs 0..95 %"
        ),
        (None, true) => (0..=95).step_by(5).collect(),
        (None, false) => return Ok(Vec::new()),
        (Some(list), false) => list
            .split(',')
            .map(|item| background_level(item.trim()))
            .collect::<Result<Vec<u32>>>()?,
    };
    if !args.latency {
        bail!("--background and --background-sweep load a latency trial: add --latency");
    }
    if args.background_qps == 0 || args.background_qps > MAX_QPS {
        bail!(
            "--background-qps {} is outside 1 ..= {MAX_QPS}",
            args.background_qps
        );
    }
    Ok(levels)
}

fn background_level(item: &str) -> Result<u32> {
    let value: f64 = item.parse().map_err(|_| {
        anyhow::anyhow!("--background: '{item}' is not a percentage; write levels like 25,50,75,90")
    })?;
    if value.is_nan() || value < 0.0 {
        bail!("--background: {item}% is negative; loads run from 0 (unloaded) to 100%");
    }
    if value > 100.0 {
        bail!("--background: {item}%: rates > 100% of the measured capacity cannot be paced; use 0..=100");
    }
    if value.fract() != 0.0 {
        bail!("--background: {item}% is not a whole percent; use whole numbers such as 25 or 90");
    }
    Ok(value as u32)
}

fn p2p_command(args: &P2pArgs) -> Result<i32> {
    let mut options = p2p_options(args)?;
    if let Some(path) = &options.json {
        output::prepare_output(path, "--json")?;
    }
    // the GPUs first: a host without the driver hears about libcuda
    let mut gpus = vec![("--mem", options.memory)];
    if args.target.target_device.is_some() {
        gpus.extend(options.target_memory.map(|m| ("--target-mem", m)));
    }
    memory::check_local_gpus(&gpus)?;
    let device = open_device(&args.device)?;
    let target = &args.target;
    let (peer, local_target) = match (&target.peer, target.local_device(&args.device)) {
        (Some(peer), None) => (socket_addr(peer, target.port)?, None),
        (None, Some(target_args)) => {
            let target_device = open_device(&target_args)?;
            options.local_target = Some(target_device.facts().clone());
            let (addr, handle) = spawn_local_target(target_device, &options)
                .context("cannot listen on 127.0.0.1 for the in-process target")?;
            (addr, Some(handle))
        }
        _ => bail!("say where the target is: --peer HOST (with `infab serve` there) or --target-device DEV (in this process)"),
    };
    let levels = options.background_levels.len().max(1) as u64;
    let bar = progress::Progress::new(
        (options.sizes.len() * options.qps.len()) as u64 * levels,
        "infab p2p",
    );
    let mut on_config = |report: &crate::results::RunReport| {
        if let Some(last) = report.results.last() {
            let gbps = last
                .summary
                .gbytes_per_s
                .as_ref()
                .map(|g| g.mean)
                .unwrap_or(0.0);
            bar.println(format!(
                "infab: {} × {}: {} trials, {} mean",
                crate::report::human_bytes(last.msg_bytes),
                crate::report::qp_count(last.qps),
                last.summary.trials,
                crate::report::human_rate(gbps)
            ));
            bar.inc(format!("{} configurations done", report.results.len()));
        }
    };
    let (report, error) = run_p2p(device, peer, &options, &mut on_config);
    bar.finish();
    if !report.results.is_empty() {
        println!(
            "test {} ({}), op {}, {}",
            report.test_id,
            report.test_name,
            report.parameters.op,
            report.ends_text()
        );
        println!("{}", render_table(&report));
        for note in &report.deviations {
            println!("note: {note}");
        }
        println!("note: SoftRoCE (rxe) numbers are CPU-bound and functional only, never a NIC performance claim");
    }
    print_soak(report.soak.as_ref());
    if let Some(path) = &options.json {
        eprintln!("infab: results written to {}", path.display());
    }
    if let Some(handle) = local_target {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) if error.is_none() => {
                return Err(anyhow::Error::new(err).context("the in-process target failed"))
            }
            Ok(Err(err)) => log::warn!("the in-process target also failed: {err}"),
            Err(_) => bail!("the in-process target panicked"),
        }
    }
    if let Some(err) = error {
        let complete = report.results.iter().filter(|c| c.status.is_none()).count();
        let kept = match report.results.iter().find(|c| c.status.is_some()) {
            Some(c) => format!(
                "; {} B × {} QPs kept {} of {} trials",
                c.msg_bytes,
                c.qps,
                c.trials.len(),
                report.parameters.trials
            ),
            None => String::new(),
        };
        return Err(anyhow::Error::new(err).context(format!(
            "p2p run stopped ({complete} configurations completed{kept})"
        )));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(line: &str) -> Result<P2pOptions> {
        let cli = Cli::try_parse_from(line.split_whitespace())?;
        match cli.command {
            Command::Run(RunCommand::P2p(args)) => p2p_options(&args),
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_follow_the_draft() {
        let opts = parse("infab run p2p --peer h").unwrap();
        assert_eq!(opts.sizes.len(), 8);
        assert_eq!(opts.trials, 20);
        assert_eq!(opts.qps, vec![1]);
    }

    #[test]
    fn bad_input_is_rejected_with_reasons() {
        assert!(parse("infab run p2p --peer h --qps 0")
            .unwrap_err()
            .to_string()
            .contains("--qps"));
        assert!(parse("infab run p2p --peer h --qps 300").is_err());
        assert!(format!(
            "{:#}",
            parse("infab run p2p --peer h --sizes 12Q").unwrap_err()
        )
        .contains("unit"));
        assert!(parse("infab run p2p --peer h --latency --clock target --op write").is_err());
        assert!(parse("infab run p2p --peer h --op send --cq-mod 4").is_err());
        assert!(parse("infab run p2p --peer h --latency --qps 4").is_err());
    }

    #[test]
    fn background_levels_are_validated() {
        let opts = parse("infab run p2p --peer h --latency --background 0,25,50,75,90").unwrap();
        assert_eq!(opts.background_levels, vec![0, 25, 50, 75, 90]);
        assert_eq!(opts.background_qps, 4);
        assert!(!opts.background_sweep);
        let opts = parse("infab run p2p --peer h --latency --background-sweep --background-qps 2")
            .unwrap();
        assert_eq!(opts.background_levels.len(), 20);
        assert_eq!(opts.background_levels.first(), Some(&0));
        assert_eq!(opts.background_levels.last(), Some(&95));
        assert!(opts.background_sweep && opts.background_qps == 2);
        let none = parse("infab run p2p --peer h --latency").unwrap();
        assert!(none.background_levels.is_empty());
        for (line, needle) in [
            ("--latency --background 50,120", "rates > 100%"),
            ("--latency --background 101", "rates > 100%"),
            ("--latency --background -5", "negative"),
            ("--latency --background 25,-1", "negative"),
            ("--latency --background 12.5", "whole percent"),
            ("--latency --background 2x", "not a percentage"),
            ("--background 50", "add --latency"),
            (
                "--latency --background-sweep --background-qps 0",
                "--background-qps",
            ),
        ] {
            let err = format!(
                "{:#}",
                parse(&format!("infab run p2p --peer h {line}")).unwrap_err()
            );
            assert!(err.contains(needle), "{line}: {err}");
        }
        let both = parse("infab run p2p --peer h --latency --background 50 --background-sweep")
            .unwrap_err()
            .to_string();
        assert!(both.contains("cannot be used with"), "{both}");
    }

    #[test]
    fn latency_clocks_default_by_op() {
        let opts = parse("infab run p2p --peer h --latency --op write-imm").unwrap();
        assert_eq!(
            opts.clocks,
            vec![Clock::Initiator, Clock::Target, Clock::PingPong]
        );
        let opts = parse("infab run p2p --peer h --latency --op write").unwrap();
        assert_eq!(opts.clocks, vec![Clock::Initiator, Clock::PingPong]);
    }
}
