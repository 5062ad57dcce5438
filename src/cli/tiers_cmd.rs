//! `infab run tiers` (IETF 5.4): flags into [`TiersOptions`], the target
//! (remote or in this process), the table at the end.

use anyhow::{bail, Context, Result};

use crate::report::render_tiers_table;
use crate::suite::tiers::{run_tiers, TierTarget, TiersOptions};
use crate::verbs::QpPathOptions;

use super::args::{PollArg, TiersArgs};
use super::{
    max_wr_bytes, open_device, output, parse_size_list, seconds, socket_addr, MAX_MSG_BYTES,
    MAX_QPS,
};

fn tiers_options(args: &TiersArgs) -> Result<TiersOptions> {
    let sizes = parse_size_list(&args.sizes)
        .map_err(anyhow::Error::msg)
        .context("--sizes")?;
    for &size in &sizes {
        if size == 0 || size > MAX_MSG_BYTES {
            bail!("--sizes: {size} bytes is outside 1 B ..= 4 GiB");
        }
    }
    if args.qps == 0 || args.qps > MAX_QPS {
        bail!("--qps: {} is outside 1 ..= {MAX_QPS}", args.qps);
    }
    if args.trials == 0 {
        bail!("--trials must be at least 1 (the draft requires 20)");
    }
    if args.latency_iters == 0 {
        bail!("--latency-iters must be at least 1");
    }
    if args.iters == Some(0) {
        bail!("--iters must be at least 1");
    }
    if let Some(dir) = &args.file_dir {
        if !dir.is_dir() {
            bail!(
                "--file-dir {}: not a directory; create it on the NVMe under test",
                dir.display()
            );
        }
    }
    let duration = match (args.duration, args.iters) {
        (Some(d), _) => Some(seconds(d, "--duration")?),
        (None, Some(_)) => None,
        (None, None) => Some(std::time::Duration::from_secs(2)),
    };
    Ok(TiersOptions {
        sizes,
        qps: args.qps,
        trials: args.trials,
        duration,
        iters: args.iters,
        latency_iters: args.latency_iters,
        warmup_iters: args.warmup,
        gpu: args.gpu,
        file_dir: args.file_dir.clone(),
        verify: args.verify,
        max_wr_bytes: max_wr_bytes(args.max_wr_bytes.as_deref())?,
        stall_timeout: seconds(args.stall_timeout, "--stall-timeout")?,
        path: QpPathOptions {
            traffic_class: args.tclass,
            service_level: args.sl,
            ..QpPathOptions::default()
        },
        token: args.token.clone(),
        json: args.json.clone(),
        dut_id: args.dut.clone(),
        poll: args.poll.map(PollArg::mode),
        cores: args.cores.clone(),
    })
}

pub(super) fn tiers_command(args: &TiersArgs) -> Result<i32> {
    let options = tiers_options(args)?;
    if let Some(path) = &options.json {
        output::prepare_output(path, "--json")?;
    }
    let target = &args.target;
    let rdma = match (&target.peer, target.local_device(&args.device)) {
        (Some(peer), None) => Ok((
            open_device(&args.device)?,
            TierTarget::Remote(socket_addr(peer, target.port)?),
        )),
        (None, Some(target_args)) => Ok((
            open_device(&args.device)?,
            TierTarget::Local(open_device(&target_args)?),
        )),
        (None, None) if options.file_dir.is_some() => Err(
            "no RDMA target given (--peer HOST with `infab serve` there, or --target-device DEV): \
             only the file tiers run"
                .to_string(),
        ),
        _ => bail!("say where the target is: --peer HOST (with `infab serve` there) or --target-device DEV (in this process); or give only --file-dir to run the file tiers alone"),
    };
    let mut on_tier = |tier: &crate::report::TierResult| {
        let what = match &tier.reason {
            Some(reason) => format!("{}: {reason}", tier.status),
            None => format!("{} ({} sizes)", tier.status, tier.points.len()),
        };
        eprintln!("infab tiers: {}: {what}", tier.label);
    };
    let (report, error) = run_tiers(rdma, &options, &mut on_tier);
    if let Some(tiers) = &report.tiers {
        println!(
            "test {} ({}), {}",
            report.test_id,
            report.test_name,
            report.ends_text()
        );
        println!("{}", render_tiers_table(tiers));
        for note in &report.deviations {
            println!("note: {note}");
        }
        if report.is_softroce() {
            println!("note: SoftRoCE (rxe) numbers are CPU-bound and functional only, never a NIC performance claim");
        }
    }
    if let Some(path) = &options.json {
        eprintln!("infab: results written to {}", path.display());
    }
    match error {
        Some(err) => Err(anyhow::Error::new(err).context("run tiers")),
        None => Ok(0),
    }
}
