//! IETF 5.4, KV transfers across memory tiers: GPU HBM → GPU HBM, GPU HBM →
//! remote CPU DRAM (offload), CPU DRAM → GPU HBM (reload), DRAM → DRAM
//! over RDMA, and DRAM or GPU HBM → a file on NVMe. Per tier and message
//! size: throughput (the p2p bandwidth loop, one window of WRITEs per QP)
//! and transfer latency P50/P99 (the p2p latency loop, one message at a
//! time, initiator clock), then each tier's ratio to GPU→GPU (to
//! DRAM→DRAM, labelled so, without a GPU).
//!
//! The RDMA tiers are p2p sessions ([`run_p2p`]) with the two ends' memory
//! set per tier, never a transport of their own; the file tiers time
//! `O_DIRECT` writes ([`DirectFile`]). A tier the host lacks (no GPU, no
//! cuFile, no --file-dir) is a row that says why it did not run; a tier
//! that fails keeps its error and the others still run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::control::Op;
use crate::engine::{DirectFile, EngineError, FileWritePlan, PollMode};
use crate::report::{
    write_json, ConfigResult, EndpointsReport, RunReport, TierPoint, TierResult, TiersReport,
};
use crate::stats::{across_trials, LatencyHistogram};
use crate::verbs::cuda::{CudaError, CudaGpu};
use crate::verbs::{MemoryKind, QpPathOptions, RdmaDevice, VerbsError};

use super::p2p::{blank_report, blank_report_on, run_p2p, spawn_local_target, Clock, P2pOptions};
use super::{conclude, rfc3339_now, SuiteError};

/// Where the target of the RDMA tiers runs.
#[derive(Debug, Clone)]
pub enum TierTarget {
    /// `infab serve` at this address (its GPU, when a tier asks for one).
    Remote(SocketAddr),
    /// In this process, on this device (one host, two devices).
    Local(Arc<RdmaDevice>),
}

/// Everything a tiers run needs, validated by the CLI.
#[derive(Debug, Clone)]
pub struct TiersOptions {
    /// Message (KV block) sizes.
    pub sizes: Vec<u64>,
    /// QPs of every RDMA tier.
    pub qps: u32,
    /// Throughput trials per tier and size.
    pub trials: u32,
    /// Trial length when timed.
    pub duration: Option<Duration>,
    /// Messages per QP (RDMA) or writes (file) per trial when counted.
    pub iters: Option<u64>,
    /// Transfers per latency trial (one at a time).
    pub latency_iters: u64,
    /// Warmup messages per QP.
    pub warmup_iters: u64,
    /// The GPU of the GPU tiers.
    pub gpu: u32,
    /// Where the file tiers write (None: they do not run).
    pub file_dir: Option<PathBuf>,
    /// Verify RDMA payloads (through cuMemcpy on GPU memory) and read back
    /// what the file tiers wrote.
    pub verify: bool,
    /// Cap on bytes per WR.
    pub max_wr_bytes: Option<u64>,
    /// Stall timeout.
    pub stall_timeout: Duration,
    /// Transport knobs.
    pub path: QpPathOptions,
    /// Shared token.
    pub token: Option<String>,
    /// Results file.
    pub json: Option<PathBuf>,
    /// DUT label.
    pub dut_id: String,
    /// `--poll`.
    pub poll: Option<PollMode>,
    /// Cores for engine threads.
    pub cores: Vec<usize>,
}

/// One tier pair: its id, its label, and each end.
#[derive(Debug, Clone, Copy)]
struct Tier {
    id: &'static str,
    label: &'static str,
    source: End,
    destination: End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Gpu,
    Dram,
    File,
}

/// The draft's tier pairs, GPU→GPU (the ratios' baseline) first.
const TIERS: [Tier; 6] = [
    Tier {
        id: "gpu-gpu",
        label: "GPU HBM → GPU HBM (GPUDirect RDMA)",
        source: End::Gpu,
        destination: End::Gpu,
    },
    Tier {
        id: "gpu-dram",
        label: "GPU HBM → remote CPU DRAM (offload)",
        source: End::Gpu,
        destination: End::Dram,
    },
    Tier {
        id: "dram-gpu",
        label: "CPU DRAM → GPU HBM (reload)",
        source: End::Dram,
        destination: End::Gpu,
    },
    Tier {
        id: "dram-dram",
        label: "CPU DRAM → remote CPU DRAM (RDMA)",
        source: End::Dram,
        destination: End::Dram,
    },
    Tier {
        id: "dram-file",
        label: "CPU DRAM → file (O_DIRECT)",
        source: End::Dram,
        destination: End::File,
    },
    Tier {
        id: "gpu-file",
        label: "GPU HBM → file (GPUDirect Storage)",
        source: End::Gpu,
        destination: End::File,
    },
];

/// The RDMA side of a tiers run: the initiator's device and the target, or
/// why there is none (the RDMA tiers are then rows that say so).
pub type TierRdma = Result<(Arc<RdmaDevice>, TierTarget), String>;

/// Runs every tier the host supports. Always returns the report (status
/// "complete", or "partial"/"failed" when a tier failed), plus the first
/// error, if any.
pub fn run_tiers(
    rdma: TierRdma,
    options: &TiersOptions,
    on_tier: &mut dyn FnMut(&TierResult),
) -> (RunReport, Option<SuiteError>) {
    let mut report = blank_report_on(
        rdma.as_ref().ok().map(|(device, _)| device.as_ref()),
        &p2p_options(options, MemoryKind::Host, MemoryKind::Host, false),
    );
    report.test_id = "5.4".into();
    report.test_name = "Multi-Tier Storage Transfer Characterization".into();
    report.parameters.sizes_bytes = options.sizes.clone();
    report.parameters.qps = vec![options.qps];
    let gpu = CudaGpu::open(options.gpu);
    let mut tiers = TiersReport {
        baseline: None,
        ratio_label: String::new(),
        gpu: gpu.as_ref().ok().map(|g| g.label()),
        tiers: Vec::new(),
    };
    let gpu_reason = gpu.as_ref().err().map(|e| format!("no GPU: {e}"));
    let mut first_error = None;
    let mut deviations = report.deviations.clone();
    let mut have_endpoints = false;
    for tier in TIERS {
        let uses_gpu = tier.source == End::Gpu || tier.destination == End::Gpu;
        // a remote target's GPU is the target's business: ask, and hear
        let local_gpu_needed = match &rdma {
            Ok((_, TierTarget::Remote(_))) if tier.destination != End::File => {
                tier.source == End::Gpu
            }
            _ => uses_gpu,
        };
        let result = match (&gpu_reason, local_gpu_needed, &rdma) {
            (Some(reason), true, _) => not_run(tier, reason.clone()),
            _ if tier.destination == End::File => {
                let (result, note) = file_tier(tier, gpu.as_ref().ok(), options);
                if let Some(note) = note.filter(|n| !deviations.contains(n)) {
                    deviations.push(note);
                }
                result
            }
            (_, _, Err(why)) => not_run(tier, why.clone()),
            (_, _, Ok((device, target))) => {
                let (result, notes, endpoints) = rdma_tier(tier, device, target, options);
                if let Some(endpoints) = endpoints.filter(|_| !have_endpoints) {
                    report.endpoints = Some(endpoints);
                    have_endpoints = true;
                }
                // a session's deviation the run already states is not repeated per tier
                for (note, bare) in notes {
                    if !deviations.contains(&bare) && !deviations.contains(&note) {
                        deviations.push(note);
                    }
                }
                result
            }
        };
        if result.status == "failed" && first_error.is_none() {
            first_error = Some(SuiteError::Invalid(format!(
                "tier {}: {}",
                result.tier,
                result.reason.clone().unwrap_or_default()
            )));
        }
        on_tier(&result);
        tiers.tiers.push(result);
        tiers.apply_ratios();
        report.tiers = Some(tiers.clone());
        report.deviations = deviations.clone();
        report.updated_at = rfc3339_now();
        if let Some(path) = &options.json {
            if let Err(err) = write_json(&report, path) {
                first_error.get_or_insert(err.into());
            }
        }
    }
    report.deviations.push(
        "5.4: latency is the transfer of one message at a time (RDMA: post → local completion, \
         initiator clock; file: the O_DIRECT pwrite or cuFileWrite call); RDMA throughput comes \
         from separate trials with a window of messages in flight, file throughput from one \
         write at a time"
            .into(),
    );
    let measured = tiers.tiers.iter().any(|t| !t.points.is_empty());
    let result = match first_error {
        Some(err) => Err(err),
        None => Ok(()),
    };
    let error = conclude(&mut report, result, measured, options.json.as_deref());
    (report, error)
}

fn not_run(tier: Tier, reason: String) -> TierResult {
    TierResult {
        tier: tier.id.into(),
        label: tier.label.into(),
        transport: match tier.destination {
            End::File if tier.source == End::Gpu => "gds",
            End::File => "o-direct-write",
            _ => "rdma-write",
        }
        .into(),
        status: "not-run".into(),
        reason: Some(reason),
        memory: None,
        file: None,
        points: Vec::new(),
    }
}

fn p2p_options(
    options: &TiersOptions,
    memory: MemoryKind,
    target_memory: MemoryKind,
    latency: bool,
) -> P2pOptions {
    P2pOptions {
        op: Op::Write,
        latency_mode: latency,
        clocks: if latency {
            vec![Clock::Initiator]
        } else {
            Vec::new()
        },
        sizes: options.sizes.clone(),
        qps: vec![options.qps],
        trials: options.trials,
        duration: if latency { None } else { options.duration },
        iters: if latency {
            Some(options.latency_iters)
        } else if options.duration.is_none() {
            options.iters
        } else {
            None
        },
        warmup_iters: options.warmup_iters,
        tx_depth: None,
        rx_depth: 512,
        cq_mod: 1,
        threads: 1,
        verify: options.verify && !latency,
        memory,
        target_memory: Some(target_memory),
        max_wr_bytes: options.max_wr_bytes,
        stall_timeout: options.stall_timeout,
        path: options.path,
        token: options.token.clone(),
        json: None,
        dut_id: options.dut_id.clone(),
        cores: options.cores.clone(),
        local_target: None,
        background_levels: Vec::new(),
        background_sweep: false,
        background_qps: 0,
        soak: None,
        poll: options.poll,
    }
}

fn memory_of(end: End, gpu: u32) -> MemoryKind {
    match end {
        End::Gpu => MemoryKind::Cuda(gpu),
        _ => MemoryKind::Host,
    }
}

/// One p2p session against the tier's target: a fresh in-process target
/// per session (it serves one), or the remote one.
fn session(
    device: &Arc<RdmaDevice>,
    target: &TierTarget,
    mut p2p: P2pOptions,
) -> (RunReport, Option<SuiteError>) {
    let (peer, local) = match target {
        TierTarget::Remote(peer) => (*peer, None),
        TierTarget::Local(target_device) => {
            p2p.local_target = Some(target_device.facts().clone());
            match spawn_local_target(Arc::clone(target_device), &p2p) {
                Ok((peer, handle)) => (peer, Some(handle)),
                Err(err) => {
                    let report = blank_report(device, &p2p);
                    return (
                        report,
                        Some(SuiteError::Invalid(format!(
                            "binding the in-process target: {err}"
                        ))),
                    );
                }
            }
        }
    };
    let (report, mut error) = run_p2p(Arc::clone(device), peer, &p2p, &mut |_| {});
    if let Some(handle) = local {
        match handle.join() {
            Ok(Err(err)) if error.is_none() => error = Some(err),
            Ok(Err(err)) => log::debug!("the in-process target also failed: {err}"),
            Ok(Ok(())) => {}
            Err(_) => {
                error.get_or_insert(SuiteError::Invalid("the in-process target panicked".into()));
            }
        }
    }
    (report, error)
}

/// An RDMA tier: a bandwidth session, then a latency session; the
/// sessions' deviations come back for the run's list.
fn rdma_tier(
    tier: Tier,
    device: &Arc<RdmaDevice>,
    target: &TierTarget,
    options: &TiersOptions,
) -> (TierResult, Vec<(String, String)>, Option<EndpointsReport>) {
    let memory = memory_of(tier.source, options.gpu);
    let target_memory = memory_of(tier.destination, options.gpu);
    let mut result = not_run(tier, String::new());
    result.reason = None;
    let mut notes = Vec::new();
    let (bandwidth, error) = session(
        device,
        target,
        p2p_options(options, memory, target_memory, false),
    );
    notes.extend(
        bandwidth
            .deviations
            .iter()
            .map(|d| (format!("{}: {d}", tier.id), d.clone())),
    );
    result.memory = bandwidth.parameters.memory.clone();
    if let Some(err) = error {
        let lacks = lacks_gpu_path(&err, tier);
        result.status = if lacks { "not-run" } else { "failed" }.into();
        result.reason = Some(err.to_string());
        result.points = points(&bandwidth.results, &[]);
        return (result, notes, None);
    }
    let (latency, error) = session(
        device,
        target,
        p2p_options(options, memory, target_memory, true),
    );
    result.points = points(&bandwidth.results, &latency.results);
    match error {
        Some(err) => {
            result.status = "failed".into();
            result.reason = Some(format!("latency: {err}"));
        }
        None => result.status = "complete".into(),
    }
    (result, notes, bandwidth.endpoints)
}

/// Whether `err` says the hosts lack the tier rather than that it failed:
/// the target refused to allocate GPU memory (no GPU there), or a NIC cannot
/// register GPU memory by any path (no dma-buf import, no nvidia-peermem).
fn lacks_gpu_path(err: &SuiteError, tier: Tier) -> bool {
    let verbs = match err {
        SuiteError::Rejected(_) => return tier.destination == End::Gpu,
        SuiteError::Verbs(v) => v,
        SuiteError::Engine(EngineError::Verbs(v)) => v,
        _ => return false,
    };
    // a failed call (out of memory, a copy) is a failure, not a missing tier
    matches!(
        verbs,
        VerbsError::GpuRegistration { .. }
            | VerbsError::Cuda(
                CudaError::Load { .. }
                    | CudaError::Symbol { .. }
                    | CudaError::NoDevice { .. }
                    | CudaError::Unsupported { .. }
            )
    )
}

/// One point per bandwidth configuration, with the latency session's
/// initiator clock at the same size.
fn points(bandwidth: &[ConfigResult], latency: &[ConfigResult]) -> Vec<TierPoint> {
    bandwidth
        .iter()
        .filter(|c| c.status.is_none())
        .map(|c| TierPoint {
            msg_bytes: c.msg_bytes,
            trials: c.summary.trials,
            gbytes_per_s: c.summary.gbytes_per_s.clone(),
            latency: latency
                .iter()
                .find(|l| l.msg_bytes == c.msg_bytes && l.status.is_none())
                .and_then(|l| l.summary.latency.iter().find(|x| x.clock == "initiator"))
                .map(|x| x.summary.clone()),
            latency_clock: "initiator".into(),
            ratio_to_baseline: None,
        })
        .collect()
}

/// A file tier: DRAM through O_DIRECT writes, GPU through cuFile (never a
/// host-staged copy of infab's own). Also returns the run's deviation when
/// cuFile ran in compatibility mode.
fn file_tier(
    tier: Tier,
    gpu: Option<&Arc<CudaGpu>>,
    options: &TiersOptions,
) -> (TierResult, Option<String>) {
    let Some(dir) = &options.file_dir else {
        return (
            not_run(
                tier,
                "no --file-dir: point it at a directory on the NVMe (or disk) under test".into(),
            ),
            None,
        );
    };
    let gpu = match (tier.source, gpu) {
        (End::Gpu, None) => return (not_run(tier, "no GPU".into()), None),
        (End::Gpu, Some(gpu)) => Some(gpu),
        _ => None,
    };
    let mut result = not_run(tier, String::new());
    result.reason = None;
    let name = format!("infab-tiers-{}-{}.bin", tier.id, std::process::id());
    result.file = Some(dir.join(&name).display().to_string());
    let mut note = None;
    for &msg_bytes in &options.sizes {
        match file_point(dir, &name, msg_bytes, gpu, options) {
            Ok((point, transport)) => {
                if transport != "gds" && transport != "o-direct-write" {
                    note = Some(match transport {
                        "gds-compat" => format!(
                            "{}: cuFile ran in compatibility mode (nvidia-fs is not loaded): it \
                             stages the bytes through host memory, so this is not a GPUDirect \
                             Storage number",
                            tier.id
                        ),
                        _ => format!(
                            "{}: nvidia-fs is loaded but its write counters did not show these \
                             writes (rw_stats_enabled off, or cuFile fell back to compatibility \
                             mode for this file): GPUDirect Storage is not confirmed",
                            tier.id
                        ),
                    });
                }
                result.transport = transport.into();
                result.points.push(point);
            }
            Err(err) => {
                let text = err.to_string();
                let lacks = host_lacks_file_tier(&err);
                result.status = if lacks { "not-run" } else { "failed" }.into();
                result.reason = Some(text);
                if lacks {
                    result.points.clear();
                }
                return (result, note);
            }
        }
    }
    result.status = "complete".into();
    (result, note)
}

/// Whether a file tier's error says the host lacks the tier rather than
/// that it failed: a file system without O_DIRECT, no cuFile, or cuFile
/// refusing its driver, the file or the buffer. Errors of the writes
/// themselves and of --verify are failures.
fn host_lacks_file_tier(err: &EngineError) -> bool {
    err.to_string().contains("does not support O_DIRECT")
        || matches!(
            err,
            EngineError::Verbs(VerbsError::Cuda(
                CudaError::CuFileLoad { .. }
                    | CudaError::Unsupported { .. }
                    | CudaError::Call {
                        call: "cuFileDriverOpen" | "cuFileHandleRegister" | "cuFileBufRegister",
                        ..
                    }
            ))
        )
}

fn file_point(
    dir: &std::path::Path,
    name: &str,
    msg_bytes: u64,
    gpu: Option<&Arc<CudaGpu>>,
    options: &TiersOptions,
) -> Result<(TierPoint, &'static str), EngineError> {
    let mut file = match gpu {
        Some(gpu) => DirectFile::create_gpu(dir, name, msg_bytes, gpu)?,
        None => DirectFile::create(dir, name, msg_bytes)?,
    };
    let plan = |iters: Option<u64>, duration: Option<Duration>| FileWritePlan {
        msg_bytes,
        duration,
        iters,
        stall_timeout: options.stall_timeout,
    };
    let mut written = 0;
    if options.warmup_iters > 0 {
        written += file
            .run(&plan(Some(options.warmup_iters.min(16)), None))?
            .writes;
    }
    let mut rates = Vec::new();
    let mut merged = LatencyHistogram::new();
    for _ in 0..options.trials {
        let trial = match options.duration {
            Some(d) => file.run(&plan(None, Some(d)))?,
            None => file.run(&plan(
                Some(options.iters.unwrap_or(options.latency_iters)),
                None,
            ))?,
        };
        if trial.seconds > 0.0 {
            rates.push(trial.bytes as f64 / trial.seconds / 1e9);
        }
        merged.merge(&trial.histogram);
        written += trial.writes;
    }
    if options.verify {
        file.verify_last(written)?;
    }
    let point = TierPoint {
        msg_bytes,
        trials: rates.len() as u32,
        gbytes_per_s: across_trials(&rates),
        latency: (merged.summary().count > 0).then(|| merged.summary()),
        latency_clock: file.latency_clock().into(),
        ratio_to_baseline: None,
    };
    Ok((point, file.transport()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_to_gpu_comes_first_and_every_pair_of_the_draft_is_there() {
        assert_eq!(TIERS[0].id, crate::report::GPU_GPU);
        assert_eq!(TIERS[3].id, crate::report::DRAM_DRAM);
        let ids: Vec<&str> = TIERS.iter().map(|t| t.id).collect();
        assert_eq!(
            ids,
            [
                "gpu-gpu",
                "gpu-dram",
                "dram-gpu",
                "dram-dram",
                "dram-file",
                "gpu-file"
            ]
        );
    }

    #[test]
    fn a_gpu_to_file_tier_is_gds_and_says_why_not() {
        let options = TiersOptions {
            sizes: vec![1 << 20],
            qps: 1,
            trials: 1,
            duration: None,
            iters: Some(1),
            latency_iters: 1,
            warmup_iters: 0,
            gpu: 0,
            file_dir: Some(PathBuf::from("/tmp")),
            verify: false,
            max_wr_bytes: None,
            stall_timeout: Duration::from_secs(5),
            path: QpPathOptions::default(),
            token: None,
            json: None,
            dut_id: "t".into(),
            poll: None,
            cores: Vec::new(),
        };
        // without a GPU the GPU → file tier says so (a GPU host without
        // libcufile would name nvidia-gds instead)
        let (r, note) = file_tier(TIERS[5], None, &options);
        assert_eq!(
            (r.status.as_str(), r.transport.as_str()),
            ("not-run", "gds")
        );
        assert!(r.reason.unwrap().contains("no GPU"));
        // cuFile refusing the file is a tier the host lacks, not a failure
        let refused = EngineError::Verbs(VerbsError::Cuda(CudaError::Call {
            call: "cuFileHandleRegister",
            code: 5027,
            name: "CU_FILE_HANDLE_NOT_REGISTERED".into(),
            description: String::new(),
            hint: String::new(),
        }));
        assert!(host_lacks_file_tier(&refused));
        assert!(note.is_none());
        let (r, _) = file_tier(
            TIERS[4],
            None,
            &TiersOptions {
                file_dir: None,
                ..options
            },
        );
        assert_eq!(r.status, "not-run");
        assert!(r.reason.unwrap().contains("--file-dir"));
    }

    #[test]
    fn a_nic_without_a_gpu_path_means_the_tier_is_not_there() {
        let registration = SuiteError::Engine(EngineError::Verbs(VerbsError::GpuRegistration {
            device: "rxe0".into(),
            gpu: "cuda:0 (X)".into(),
            detail: "ibv_reg_dmabuf_mr: Operation not supported".into(),
            fix: "modprobe nvidia_peermem",
        }));
        assert!(lacks_gpu_path(&registration, TIERS[0]));
        let refused = SuiteError::Rejected("target: no GPU".into());
        assert!(lacks_gpu_path(&refused, TIERS[2]));
        assert!(!lacks_gpu_path(&refused, TIERS[3]));
        assert!(!lacks_gpu_path(
            &SuiteError::Invalid("stall".into()),
            TIERS[0]
        ));
    }

    #[test]
    fn p2p_sessions_carry_each_ends_memory() {
        let options = TiersOptions {
            sizes: vec![1 << 20],
            qps: 2,
            trials: 3,
            duration: Some(Duration::from_secs(1)),
            iters: None,
            latency_iters: 100,
            warmup_iters: 10,
            gpu: 1,
            file_dir: None,
            verify: true,
            max_wr_bytes: None,
            stall_timeout: Duration::from_secs(5),
            path: QpPathOptions::default(),
            token: None,
            json: None,
            dut_id: "t".into(),
            poll: None,
            cores: Vec::new(),
        };
        let bw = p2p_options(&options, MemoryKind::Cuda(1), MemoryKind::Host, false);
        assert_eq!(
            (bw.memory, bw.target_memory),
            (MemoryKind::Cuda(1), Some(MemoryKind::Host))
        );
        assert!(!bw.latency_mode && bw.verify && bw.duration.is_some());
        let lat = p2p_options(&options, MemoryKind::Host, MemoryKind::Cuda(1), true);
        assert_eq!(lat.clocks, vec![Clock::Initiator]);
        assert_eq!(
            (lat.iters, lat.duration, lat.verify),
            (Some(100), None, false)
        );
        assert_eq!(memory_of(End::Gpu, 1), MemoryKind::Cuda(1));
    }
}
