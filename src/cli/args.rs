//! The command line, as clap types. Nothing here runs anything; `validate`
//! turns it into the suite's options (two steps, like ripgrep's low/high args).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// infab: verbs-level benchmarks for RDMA/RoCEv2 fabrics carrying LLM-inference traffic.
#[derive(Debug, Parser)]
#[command(name = "infab", version, about, long_about = None)]
pub struct Cli {
    /// More logging (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List RDMA devices, port states and GID tables (--gpu: a GPU self-check instead).
    Devices(DevicesArgs),
    /// Run as the target (receiving / decode side) of p2p tests.
    Serve(ServeArgs),
    /// Run a test as the initiator (sending / prefill side).
    #[command(subcommand)]
    Run(RunCommand),
    /// Render results files as charts, Markdown, HTML and CSV.
    Report(ReportArgs),
    /// Pre-rollout checks from a profile (exit 0 pass, 1 fail, 2 could not run).
    Validate(ValidateArgs),
    /// A/B comparison of results files with significance (exit 0, 1 on a
    /// significant regression with --fail-on-regression, 2 could not compare).
    Compare(CompareArgs),
    /// Print a shell completion script (e.g. `infab completions bash > /etc/bash_completion.d/infab`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, or write one per command into --dir (make install does).
    Man {
        /// Write infab.1 and infab-COMMAND.1 pages into this folder instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `infab compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline results file.
    #[arg(value_name = "BASE.json")]
    pub base: PathBuf,
    /// One or more results files to judge against BASE.
    #[arg(required = true, value_name = "NEW.json")]
    pub new: Vec<PathBuf>,
    /// Smallest change of a mean that counts as better or worse, percent (e.g. 2%).
    #[arg(long, default_value = "2%")]
    pub min_effect: String,
    /// Exit 1 when any KPI is significantly worse (CI pipelines, pre-rollout gates).
    #[arg(long)]
    pub fail_on_regression: bool,
    /// Also write compare.md, compare.html (charts of both series) and compare.json into this folder (created if missing).
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Tests `infab run` knows.
#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Point-to-point KV-cache transfer: IETF 5.1 (bandwidth) and 5.2 (--latency).
    P2p(Box<P2pArgs>),
    /// Concurrent prefill→decode pairs: IETF 5.3 (one process per node).
    Pairs(Box<PairsArgs>),
    /// Incast of KV transfers into one decode port: IETF 8.1 / 8.2 (one process per node).
    Incast(Box<IncastArgs>),
    /// MoE AllToAll dispatch: IETF 7.1 / 7.2 / 7.3 (one process per node).
    Alltoall(Box<AllToAllArgs>),
    /// KV stream vs periodic AllToAll on shared links: IETF 7.4 (one process per node).
    Contention(Box<ContentionArgs>),
    /// KV-cache transfers shaped like a serving engine's, with TTFT decomposed: IETF 10.1 / 6.1.
    Kv(Box<KvArgs>),
    /// Decode steps (MoE dispatch + combine per layer) unloaded and beside KV load: ITL_fabric, IETF 10.2.
    DecodeSteps(Box<DecodeStepsArgs>),
    /// KV transfers across memory tiers (GPU HBM, DRAM, a file on NVMe): IETF 5.4.
    Tiers(Box<TiersArgs>),
    /// Open-loop requests through prefill/decode worker pools, KV over RDMA: IETF 6.2 (xPyD), 6.4 (oversubscription), 9.4, rate sweep.
    Serving(Box<ServingArgs>),
}

/// Where each side's buffers live (`--mem`, `--target-mem`).
#[derive(Debug, Args, Clone, Default)]
pub struct MemArgs {
    /// Where the initiator's (sending, prefill) buffers live: host, huge (2 MiB pages) or cuda:N (GPU N's memory, registered as a dma-buf; needs the NVIDIA driver).
    #[arg(long, value_name = "host|huge|cuda:N")]
    pub mem: Option<String>,
    /// Where the target's (receiving, decode) buffers live: host, huge or cuda:N (default: host, huge with --huge-pages; for `run p2p --peer`, the remote `infab serve`'s own --mem).
    #[arg(long, value_name = "host|huge|cuda:N")]
    pub target_mem: Option<String>,
}

/// Which device and GID to use.
#[derive(Debug, Args, Clone)]
pub struct DeviceArgs {
    /// RDMA device: its name (rxe0, mlx5_0), its netdev (eth2) or one of its IP addresses.
    #[arg(short = 'd', long = "device", env = "INFAB_DEVICE")]
    pub device: Option<String>,
    /// GID index (default: automatic, the RoCE v2 IPv4 GID matching the device).
    #[arg(short = 'x', long = "gid-index")]
    pub gid_index: Option<u8>,
    /// Port number of the device.
    #[arg(long = "ib-port", default_value_t = 1)]
    pub ib_port: u8,
}

/// Where the target of a p2p session is: `infab serve` on another host
/// (`--peer`), or in this process on another device (`--target-device`).
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// The target's address (`infab serve` there), HOST or HOST:PORT.
    #[arg(long, conflicts_with = "target_device")]
    pub peer: Option<String>,
    /// Run the target in this process on this device (single-host runs).
    #[arg(long)]
    pub target_device: Option<String>,
    /// GID index of the in-process target (default automatic).
    #[arg(long)]
    pub target_gid_index: Option<u8>,
    /// Control port when --peer has none.
    #[arg(long, default_value_t = 18711)]
    pub port: u16,
}

impl TargetArgs {
    /// The in-process target's device selection (`--target-device`,
    /// `--target-gid-index`, the initiator's port number), if any.
    pub fn local_device(&self, initiator: &DeviceArgs) -> Option<DeviceArgs> {
        self.target_device.as_ref().map(|device| DeviceArgs {
            device: Some(device.clone()),
            gid_index: self.target_gid_index,
            ib_port: initiator.ib_port,
        })
    }
}

/// `infab serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Device selection.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Address to listen on (only this one), e.g. 198.18.0.1 or 198.18.0.1:18711.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Control port (when --bind has none).
    #[arg(long, default_value_t = 18711)]
    pub port: u16,
    /// Shared token initiators must present.
    #[arg(long, env = "INFAB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Serve one session and exit with its status.
    #[arg(long)]
    pub once: bool,
    /// Use 2 MiB huge pages for the buffer (same as --mem huge).
    #[arg(long)]
    pub huge_pages: bool,
    /// Where the buffer lives unless the initiator's --target-mem says otherwise: host, huge or cuda:N.
    #[arg(long, value_name = "host|huge|cuda:N")]
    pub mem: Option<String>,
    /// Seconds to wait for an initiator's next message.
    #[arg(long, default_value_t = 60.0)]
    pub idle_timeout: f64,
    /// Seconds without a completion before a trial fails.
    #[arg(long, default_value_t = 30.0)]
    pub stall_timeout: f64,
    /// Pin the target worker thread to this core.
    #[arg(long)]
    pub core: Option<usize>,
}

/// The operation to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OpArg {
    /// RDMA WRITE (one-sided PUT).
    Write,
    /// RDMA WRITE with immediate (PUT with signal).
    WriteImm,
    /// SEND/RECV.
    Send,
    /// RDMA READ.
    Read,
}

/// A latency clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClockArg {
    /// Post → local completion at the initiator.
    Initiator,
    /// Post → receive completion at the target (write-imm or send).
    Target,
    /// Round trip / 2, like ib_write_lat.
    Pingpong,
}

/// `infab run p2p`.
#[derive(Debug, Args)]
pub struct P2pArgs {
    /// The initiator's device selection.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Where the target is.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Operation.
    #[arg(long, value_enum, default_value_t = OpArg::Write)]
    pub op: OpArg,
    /// Latency mode (test 5.2): one message outstanding.
    #[arg(long)]
    pub latency: bool,
    /// Latency clocks (default: every clock the operation allows).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub clock: Vec<ClockArg>,
    /// Latency under load (5.2 loaded): background WRITE levels, percent of the
    /// capacity measured per size, e.g. 0,25,50,75,90 (0 = unloaded).
    #[arg(
        long,
        value_name = "PERCENTS",
        allow_hyphen_values = true,
        conflicts_with = "background_sweep"
    )]
    pub background: Option<String>,
    /// Test 10.4: background load 0..95 % of capacity in 5 % steps, with the inflection point.
    #[arg(long)]
    pub background_sweep: bool,
    /// QPs of the background stream (their own QPs between the same endpoints).
    #[arg(long, default_value_t = 4)]
    pub background_qps: u32,
    /// Message sizes: list and/or ranges, e.g. 64K,1M or 4K..1G (doubling) or 64K..1G:x4.
    #[arg(
        short = 's',
        long = "sizes",
        alias = "size",
        default_value = "64K,256K,1M,4M,16M,64M,256M,1G"
    )]
    pub sizes: String,
    /// QP counts to sweep (1..256), e.g. 1,4,8,16,32,64,128.
    #[arg(short = 'q', long, default_value = "1")]
    pub qps: String,
    /// Trials per configuration (the draft requires at least 20).
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
    /// Seconds per trial (the draft asks 60 for 5.1, 120 for 5.2).
    #[arg(short = 'D', long)]
    pub duration: Option<f64>,
    /// Messages per QP per trial instead of a duration (latency: iterations).
    #[arg(short = 'n', long, conflicts_with = "duration")]
    pub iters: Option<u64>,
    /// Warmup messages per QP before a configuration's first trial (excluded from results).
    #[arg(long, default_value_t = 16)]
    pub warmup: u64,
    /// Outstanding work requests per QP (default 128, bounded by the CQ).
    #[arg(short = 't', long)]
    pub tx_depth: Option<u32>,
    /// Receives kept posted per QP at the target (send, write-imm).
    #[arg(short = 'r', long, default_value_t = 512)]
    pub rx_depth: u32,
    /// Request a completion every N messages (write/read only; latency is then an upper bound).
    #[arg(long, default_value_t = 1)]
    pub cq_mod: u32,
    /// Engine threads at the initiator (QPs are split between them).
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// CPU cores for engine threads, e.g. 2,3 (default: no pinning).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Fill payloads with a pattern and count mismatches at the target.
    #[arg(long)]
    pub verify: bool,
    /// Use 2 MiB huge pages for buffers (same as --mem huge on both sides).
    #[arg(long)]
    pub huge_pages: bool,
    /// Where buffers live.
    #[command(flatten)]
    pub memory: MemArgs,
    /// Largest bytes per work request (messages above are split). Default: the port's max message size.
    #[arg(long)]
    pub max_wr_bytes: Option<String>,
    /// Seconds without a completion before the run fails.
    #[arg(long, default_value_t = 30.0)]
    pub stall_timeout: f64,
    /// GRH traffic class (DSCP << 2).
    #[arg(long, default_value_t = 0)]
    pub tclass: u8,
    /// Service level.
    #[arg(long, default_value_t = 0)]
    pub sl: u8,
    /// Shared token the target requires.
    #[arg(long, env = "INFAB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Write results JSON here (rewritten after every trial; folders created).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A label for the device/fabric under test.
    #[arg(long, default_value = "unspecified")]
    pub dut: String,
    /// How engine threads wait for completions: spin, yield (after 4 empty polls) or event (sleep on the CQ's channel after 50 µs). Default: spin while the engine threads (lanes, background, in-process target) leave a core free (latency runs: while each has a core), else yield.
    #[arg(long, value_enum)]
    pub poll: Option<PollArg>,
    /// Soak mode (IETF 13.1-13.3).
    #[command(flatten)]
    pub soak: SoakArgs,
}

/// Soak mode: one configuration for hours, sampled as it runs.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Run one configuration for this long (e.g. 10m, 24h; the draft asks 24h),
    /// as back-to-back trials of --sample-interval: each trial is a sample
    /// with the processes' memory and RDMA objects, and the file gets trend tests.
    #[arg(long, conflicts_with_all = ["duration", "trials"])]
    pub soak: Option<String>,
    /// Length of each soak sample (e.g. 10s, 15m; the draft samples every 15m).
    #[arg(long, default_value = "60s", requires = "soak")]
    pub sample_interval: String,
    /// Test only: register and keep 1 MiB more every sample, so the leak
    /// detector has something to find.
    #[arg(long, hide = true, requires = "soak")]
    pub soak_inject_leak: bool,
}

/// An output format of `infab report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormatArg {
    /// report.md, with the SVG charts it links.
    Md,
    /// report.html, self-contained (inline CSS and SVG).
    Html,
    /// kpis.csv (per configuration) and trials.csv (per trial).
    Csv,
    /// One SVG file per chart.
    Svg,
}

/// `infab report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results files written by `infab run ... --json`.
    #[arg(required = true, value_name = "RESULTS.json")]
    pub files: Vec<PathBuf>,
    /// Folder to write the report into (created if missing).
    #[arg(
        short = 'o',
        long = "out",
        value_name = "DIR",
        default_value = "report/"
    )]
    pub out: PathBuf,
    /// Formats to write.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "md,html,csv,svg"
    )]
    pub format: Vec<ReportFormatArg>,
}

/// A role of a node's ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Sends KV blocks.
    Prefill,
    /// Receives KV blocks.
    Decode,
    /// Expert-parallel rank (AllToAll).
    Ep,
}

/// Flags every multi-rank test shares: where this node stands, its devices,
/// and the transfer settings.
#[derive(Debug, Args)]
pub struct FabricArgs {
    /// This node's device selection (prefill ranks; all ranks when --target-device is absent).
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Device for this node's decode ranks (single-host runs across two devices).
    #[arg(long)]
    pub target_device: Option<String>,
    /// Topology file (topologies/*.toml): nodes, addresses, devices, roles, DUT.
    #[arg(long)]
    pub topology: Option<PathBuf>,
    /// Number of nodes (default: launcher env, the topology, or 1).
    #[arg(long)]
    pub nnodes: Option<u32>,
    /// This node's rank, 0-based (default: launcher env NODE_RANK, SLURM_NODEID, OMPI_COMM_WORLD_RANK).
    #[arg(long)]
    pub node_rank: Option<u32>,
    /// Node 0's rendezvous HOST[:PORT] (default: MASTER_ADDR/MASTER_PORT, the topology's node 0, port 18712).
    #[arg(long)]
    pub master: Option<String>,
    /// This node's roles when no topology is given (default: prefill,decode on one node).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub role: Vec<RoleArg>,
    /// Ranks per role on this node (default: what the sweep needs).
    #[arg(long)]
    pub ranks_per_node: Option<u32>,
    /// Seconds to wait for every node to join (and for node 0 to answer).
    #[arg(long, default_value_t = 60.0)]
    pub rendezvous_timeout: f64,
    /// Shared token every node must present.
    #[arg(long, env = "INFAB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Trials per sweep point (the draft requires at least 20).
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
    /// Bytes per KV transfer (message).
    #[arg(short = 's', long, default_value = "16M")]
    pub size: String,
    /// QPs per flow (pair or sender).
    #[arg(short = 'q', long, default_value_t = 1)]
    pub qps: u32,
    /// Outstanding work requests per QP (default: ~32 MiB in flight, at most 128).
    #[arg(short = 't', long)]
    pub tx_depth: Option<u32>,
    /// Largest bytes per work request (messages above are split). Default: the port's max message size.
    #[arg(long)]
    pub max_wr_bytes: Option<String>,
    /// Seconds without a completion before the run fails.
    #[arg(long, default_value_t = 30.0)]
    pub stall_timeout: f64,
    /// GRH traffic class (DSCP << 2).
    #[arg(long, default_value_t = 0)]
    pub tclass: u8,
    /// Service level.
    #[arg(long, default_value_t = 0)]
    pub sl: u8,
    /// CPU cores for rank threads, e.g. 2,3 (default: no pinning).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Use 2 MiB huge pages for buffers (same as --mem huge on both sides).
    #[arg(long)]
    pub huge_pages: bool,
    /// Where buffers live.
    #[command(flatten)]
    pub memory: MemArgs,
    /// Write results JSON here (node 0; rewritten after every trial).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A label for the device/fabric under test.
    #[arg(long, default_value = "unspecified")]
    pub dut: String,
    /// How engine threads wait for completions: spin, yield (after 4 empty polls) or event (sleep on the CQ's channel after 50 µs). Default: spin while the engine threads leave a core free, else yield (run kv: event with fewer than 4 usable cores).
    #[arg(long, value_enum)]
    pub poll: Option<PollArg>,
}

/// `infab run pairs`.
#[derive(Debug, Args)]
pub struct PairsArgs {
    /// Node, device and transfer settings.
    #[command(flatten)]
    pub fabric: FabricArgs,
    /// Pair counts to sweep: a list and/or doubling ranges, e.g. 1..128 or 1,2,4.
    #[arg(long, default_value = "1..128")]
    pub pairs: String,
    /// Seconds per trial.
    #[arg(short = 'D', long, default_value_t = 2.0)]
    pub duration: f64,
    /// Soak mode (IETF 13.1-13.3).
    #[command(flatten)]
    pub soak: SoakArgs,
}

/// Who moves a KV cache's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    /// The prefill side WRITEs (SGLang's Mooncake backend).
    Push,
    /// The decode side READs (vLLM's NixlConnector).
    Pull,
}

impl DirectionArg {
    /// The flag's direction, or the engines' own for `layout`: vLLM's
    /// NixlConnector pulls its vllm (and mla) pages, SGLang's Mooncake
    /// backend pushes.
    pub fn or_default_for(
        flag: Option<DirectionArg>,
        layout: crate::workload::kv::KvLayout,
    ) -> crate::engine::KvDirection {
        use crate::engine::KvDirection;
        use crate::workload::kv::KvLayout;
        match flag {
            Some(DirectionArg::Push) => KvDirection::Push,
            Some(DirectionArg::Pull) => KvDirection::Pull,
            None => match layout {
                KvLayout::Vllm | KvLayout::Mla => KvDirection::Pull,
                KvLayout::Sglang | KvLayout::Contiguous => KvDirection::Push,
            },
        }
    }
}

/// How the waiting side learns a KV transfer is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotifyArg {
    /// WRITE_WITH_IMM (push: the last WR on every QP).
    Imm,
    /// A SEND with the request id after the data completed (NIXL-style).
    Send,
    /// None: the transfer ends at the posting side's last completion.
    None,
}

/// `infab run kv`.
#[derive(Debug, Args)]
pub struct KvArgs {
    /// Node, device and transfer settings (--size is not used: the model sizes every request).
    #[command(flatten)]
    pub fabric: FabricArgs,
    /// Model: llama-3.1-8b, llama-3.1-70b, qwen3-235b-a22b, deepseek-v3, CFG-A..CFG-D, or CFG-E:L=..,H_kv=..,D=..,P=..
    #[arg(long, default_value = "llama-3.1-8b")]
    pub model: String,
    /// Tensor parallelism: each rank pair moves H_kv / tp of the KV heads.
    #[arg(long, default_value_t = 1)]
    pub tp: u32,
    /// Page layout: vllm (a descriptor per page per layer per K/V), sglang (contiguous runs merged), contiguous (one region), mla.
    #[arg(long, default_value = "vllm")]
    pub layout: String,
    /// Tokens per page (vLLM's default block size is 16).
    #[arg(long, default_value_t = 16)]
    pub block_tokens: u32,
    /// Pages in each side's pool (default: the longest prompt's pages + 25 %).
    #[arg(long)]
    pub pool_blocks: Option<u32>,
    /// Free-list fragmentation: 0 = consecutive pages, 1 = fully shuffled.
    #[arg(long, default_value_t = 0.0)]
    pub fragmentation: f64,
    /// push (prefill WRITEs) or pull (decode READs) (default: pull for vllm and mla, push otherwise).
    #[arg(long, value_enum)]
    pub direction: Option<DirectionArg>,
    /// Notification: imm, send or none (default: imm for push, send for pull).
    #[arg(long, value_enum)]
    pub notify: Option<NotifyArg>,
    /// request (post after the prefill) or layer:K (post each group of K layers as its compute ends).
    #[arg(long, default_value = "request")]
    pub pipeline: String,
    /// Prompt lengths in tokens (the draft's 10.1 sweep by default).
    #[arg(long, default_value = "128,256,512,1024,2048,4096,8192,16384")]
    pub prompt: String,
    /// A prompt mix instead of the --prompt sweep: fixed:N, uniform:A..B, zipf:alpha=S,A..B,
    /// lognormal:mean=M,sigma=S or trace[:FILE] (Mooncake JSONL input_length; bare trace reads the
    /// --arrival trace file). One point; every request draws its own length (seeded per trial),
    /// clipped at the pool (--pool-blocks × --block-tokens).
    #[arg(long, conflicts_with = "prompt")]
    pub prompt_dist: Option<String>,
    /// Requests per prompt length per trial, one at a time (10.1 asks for at least 100).
    #[arg(long, default_value_t = 100)]
    pub requests: u32,
    /// How requests arrive: closed (back to back), or open loop with TTFT
    /// measured from each intended arrival: constant:RATE, poisson:RATE,
    /// bursty:RATE,cv=X, trace:FILE (Mooncake JSONL; RATE in requests/s).
    #[arg(long, default_value = "closed")]
    pub arrival: String,
    /// Modelled prefill: rate:TOKENS_PER_S, flops:TFLOPS=..,MFU=.. or table:FILE.csv (default: flops:TFLOPS=989,MFU=0.4, else rate:20000).
    #[arg(long)]
    pub prefill: Option<String>,
    /// Modelled decode initialisation, milliseconds.
    #[arg(long, default_value_t = 0.0)]
    pub decode_init: f64,
    /// Check every page's bytes at its destination page (outside the timed window).
    #[arg(long)]
    pub verify: bool,
    /// Seed of the pools' free lists.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// How engine threads wait for completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PollArg {
    /// Busy-poll (lowest latency, one core busy).
    Spin,
    /// Spin briefly, then yield the core after every empty poll.
    Yield,
    /// Sleep on the completion channel after a short spin.
    Event,
}

impl PollArg {
    /// The engine's mode.
    pub fn mode(self) -> crate::engine::PollMode {
        match self {
            PollArg::Spin => crate::engine::PollMode::Spin,
            PollArg::Yield => crate::engine::PollMode::Yield,
            PollArg::Event => crate::engine::PollMode::Event,
        }
    }
}

/// Which incast test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IncastTestArg {
    /// 8.1 ECN marking under incast: M senders, one transfer each, at once.
    #[value(name = "8.1")]
    Ecn,
    /// 8.2 PFC under bursty transfers: N_burst transfers inside T_arrival.
    #[value(name = "8.2")]
    Pfc,
}

/// `infab run incast`.
#[derive(Debug, Args)]
pub struct IncastArgs {
    /// Node, device and transfer settings.
    #[command(flatten)]
    pub fabric: FabricArgs,
    /// The draft's test: 8.1 (ECN) or 8.2 (PFC, bursts in an arrival window).
    #[arg(long, value_enum, default_value_t = IncastTestArg::Ecn)]
    pub test: IncastTestArg,
    /// Sender counts M to sweep, e.g. 2..32 or 2,3.
    #[arg(long, default_value = "2..32")]
    pub senders: String,
    /// Transfers per sender per trial, N_burst (default: 1 for 8.1, 8 for 8.2).
    #[arg(long)]
    pub bursts: Option<u32>,
    /// Arrival windows T_arrival, e.g. 100us,1ms,10ms (default: 0 for 8.1, 100us,1ms,10ms for 8.2).
    #[arg(long)]
    pub arrival_window: Option<String>,
    /// Seed of the transfers' start times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Sample the NIC counters every this long during each trial (e.g. 1ms, 10ms), so the onset of ECN/CNP/PFC is reported relative to the burst start.
    #[arg(long, value_name = "DURATION")]
    pub counter_interval: Option<String>,
}

/// Which contention test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ContentionTestArg {
    /// 7.4 contention penalty: each class isolated and contended.
    #[value(name = "7.4")]
    Penalty,
    /// 8.3 congestion-control convergence: one class joins the other at t0, both orders.
    #[value(name = "8.3")]
    Convergence,
}

/// Which AllToAll test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AllToAllTestArg {
    /// 7.1 dispatch throughput (heatmap EP × batch).
    #[value(name = "7.1")]
    Throughput,
    /// 7.2 dispatch and routing mode comparison.
    #[value(name = "7.2")]
    Modes,
    /// 7.3 wide-EP scaling (efficiency vs the smallest EP).
    #[value(name = "7.3")]
    Scaling,
}

/// A dispatch mode (Appendix D).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DispatchModeArg {
    /// Prefill: variable per-pair payloads from the router.
    Normal,
    /// Decode: every pair padded to the largest, WRITE_WITH_IMM into slots.
    LowLatency,
}

/// The dispatch primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DispatchOpArg {
    /// One-sided PUT with immediate into the peer's slot.
    WriteImm,
    /// Two-sided SEND (with immediate) into posted receives.
    Send,
}

/// `infab run alltoall`.
#[derive(Debug, Args)]
pub struct AllToAllArgs {
    /// Node, device and transfer settings (--qps is QPs per peer).
    #[command(flatten)]
    pub fabric: FabricArgs,
    /// The draft's test: 7.1, 7.2 or 7.3 (a label and defaults for the sweep).
    #[arg(long, value_enum, default_value_t = AllToAllTestArg::Throughput)]
    pub test: AllToAllTestArg,
    /// MoE configuration: M1..M4 (Table 6) or E=..,k=..,H=..[,P=..] (M5).
    #[arg(long, default_value = "M1")]
    pub moe: String,
    /// EP group sizes to sweep, e.g. 2,4 or 2..64.
    #[arg(long, default_value = "2")]
    pub ep: String,
    /// Dispatch modes (default: normal; 7.2: normal,low-latency).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub mode: Vec<DispatchModeArg>,
    /// Routing modes: top-k, expert-choice, token-drop:cf=1.25, aux-loss, zipf:alpha=1.2 (default top-k; 7.2: top-k,zipf:alpha=1.2).
    #[arg(long)]
    pub routing: Option<String>,
    /// Tokens per rank B (default 128; low-latency mode typically 1..16).
    #[arg(long, default_value = "128")]
    pub batch: String,
    /// Dispatches per trial.
    #[arg(long, default_value_t = 50)]
    pub iterations: u32,
    /// The dispatch primitive.
    #[arg(long, value_enum, default_value_t = DispatchOpArg::WriteImm)]
    pub op: DispatchOpArg,
    /// A token bound for several experts on one rank is sent once per expert or once per rank.
    #[arg(long, default_value = "per-expert")]
    pub copies: String,
    /// Router seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Time the dispatch only (default: every iteration also combines, the transposed matrix back, timed apart as DeepEP's tests do).
    #[arg(long)]
    pub dispatch_only: bool,
}

/// `infab run decode-steps`.
#[derive(Debug, Args)]
pub struct DecodeStepsArgs {
    /// Node, device and transfer settings (--size is the background KV message, --qps per flow).
    #[command(flatten)]
    pub fabric: FabricArgs,
    /// MoE configuration: M1..M4 or E=..,k=..,H=..[,P=..].
    #[arg(long, default_value = "M1")]
    pub moe: String,
    /// EP group size.
    #[arg(long, default_value_t = 2)]
    pub ep: u32,
    /// Decode tokens per rank per step (low-latency dispatch, padded to the largest pair).
    #[arg(long, default_value_t = 8)]
    pub batch: u32,
    /// MoE layers per decode step (DeepSeek-V3: 58).
    #[arg(long, default_value_t = 8)]
    pub layers: u32,
    /// Modelled compute after every layer (attention and expert work), e.g. 20us, 0.
    #[arg(long, default_value = "20us")]
    pub compute_gap: String,
    /// Decode steps per trial (the draft: at least 10,000 ITL samples per condition).
    #[arg(long, default_value_t = 10_000)]
    pub steps: u32,
    /// Background loads, percent of the KV capacity measured first: (a) 0, (b) 50, (c) 90.
    #[arg(long, value_delimiter = ',', default_value = "0,50,90")]
    pub load: Vec<u32>,
    /// Background KV prefill→decode pairs.
    #[arg(long, default_value_t = 1)]
    pub kv_pairs: u32,
    /// Routing mode.
    #[arg(long, default_value = "top-k")]
    pub routing: String,
    /// Router seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `infab validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The profile (TOML): devices, preflight expectations, tests and thresholds (profiles/*.toml).
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// Write the checks as JUnit XML here (one testcase per check).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the checks as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Keep the short runs' results files and logs in this folder (default: a temporary folder, removed).
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
}

/// `infab run contention`.
#[derive(Debug, Args)]
pub struct ContentionArgs {
    /// Node, device and transfer settings (--size is the KV message, --qps per flow).
    #[command(flatten)]
    pub fabric: FabricArgs,
    /// KV prefill→decode pairs.
    #[arg(long, default_value_t = 1)]
    pub kv_pairs: u32,
    /// The draft's test: 7.4 (contention penalty) or 8.3 (convergence).
    #[arg(long, value_enum, default_value_t = ContentionTestArg::Penalty)]
    pub test: ContentionTestArg,
    /// KV loads, percent of the KV capacity measured in the same run (default: 50,75 for 7.4, 80 for 8.3).
    #[arg(long, value_delimiter = ',')]
    pub kv_load: Vec<u32>,
    /// 8.3: rate-series bin, 100us..=1s (default 1ms).
    #[arg(long, value_name = "DURATION")]
    pub bin: Option<String>,
    /// 8.3: NIC counter sampling interval, at least 1ms; ethtool is read too from 50ms (default 10ms).
    #[arg(long, value_name = "DURATION")]
    pub counter_interval: Option<String>,
    /// 8.3: centred moving-mean window the convergence is judged on (default 10ms).
    #[arg(long, value_name = "DURATION")]
    pub smooth: Option<String>,
    /// Seconds per trial.
    #[arg(short = 'D', long, default_value_t = 2.0)]
    pub duration: f64,
    /// MoE configuration: M1..M4 or E=..,k=..,H=..[,P=..].
    #[arg(long, default_value = "M1")]
    pub moe: String,
    /// EP group size.
    #[arg(long, default_value_t = 2)]
    pub ep: u32,
    /// Tokens per rank.
    #[arg(long, default_value_t = 16)]
    pub batch: u32,
    /// Dispatch mode.
    #[arg(long, value_enum, default_value_t = DispatchModeArg::LowLatency)]
    pub mode: DispatchModeArg,
    /// Routing mode.
    #[arg(long, default_value = "top-k")]
    pub routing: String,
    /// One dispatch per MoE layer forward pass: the period, e.g. 1ms, 500us.
    #[arg(long, default_value = "1ms")]
    pub period: String,
    /// Router seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `infab run tiers`.
#[derive(Debug, Args)]
pub struct TiersArgs {
    /// The initiator's device selection.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Where the target is.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Message (KV block) sizes; the draft's are 1M,16M,256M.
    #[arg(short = 's', long = "sizes", default_value = "1M,16M,256M")]
    pub sizes: String,
    /// QPs of every RDMA tier.
    #[arg(short = 'q', long, default_value_t = 1)]
    pub qps: u32,
    /// Throughput trials per tier and size (latency runs as many).
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
    /// Seconds per throughput trial (default 2).
    #[arg(short = 'D', long)]
    pub duration: Option<f64>,
    /// Messages per QP (RDMA) or writes (file) per throughput trial instead of a duration.
    #[arg(short = 'n', long, conflicts_with = "duration")]
    pub iters: Option<u64>,
    /// Transfers per latency trial, one at a time.
    #[arg(long, default_value_t = 100)]
    pub latency_iters: u64,
    /// Warmup transfers before a size's first trial (excluded from results).
    #[arg(long, default_value_t = 16)]
    pub warmup: u64,
    /// The GPU of the GPU tiers (CUDA ordinal; on a remote target, its GPU of that ordinal).
    #[arg(long, default_value_t = 0)]
    pub gpu: u32,
    /// Directory the file tiers write into (a file system on the NVMe under test, with O_DIRECT); without it they do not run.
    #[arg(long, value_name = "DIR")]
    pub file_dir: Option<PathBuf>,
    /// Fill payloads with a pattern and count mismatches at the target (RDMA tiers).
    #[arg(long)]
    pub verify: bool,
    /// Largest bytes per work request (messages above are split). Default: the port's max message size.
    #[arg(long)]
    pub max_wr_bytes: Option<String>,
    /// Seconds without a completion (or one file write) before a tier fails.
    #[arg(long, default_value_t = 30.0)]
    pub stall_timeout: f64,
    /// GRH traffic class (DSCP << 2).
    #[arg(long, default_value_t = 0)]
    pub tclass: u8,
    /// Service level.
    #[arg(long, default_value_t = 0)]
    pub sl: u8,
    /// Shared token the target requires.
    #[arg(long, env = "INFAB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CPU cores for engine threads, e.g. 2,3 (default: no pinning).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Write results JSON here (rewritten after every tier).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A label for the device/fabric under test.
    #[arg(long, default_value = "unspecified")]
    pub dut: String,
    /// How engine threads wait for completions: spin, yield or event (default: chosen from threads and cores).
    #[arg(long, value_enum)]
    pub poll: Option<PollArg>,
}

/// `infab devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Check the GPUs instead (no RDMA NIC needed): the CUDA driver loads, attributes, allocations at odd sizes, dma-buf export, a host→device→host round trip, and the NICs near each GPU. Exit 1 when any check fails or there is no GPU.
    #[arg(long)]
    pub gpu: bool,
}

/// `infab run serving`.
#[derive(Debug, Args)]
pub struct ServingArgs {
    /// Device of the prefill workers.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Device of the decode workers (default: the prefill device, loopback).
    #[arg(long)]
    pub target_device: Option<String>,
    /// Pool ratios to run, xPyD each, e.g. 1P1D,2P2D,1P3D (every worker is one thread).
    #[arg(long, default_value = "1P1D")]
    pub xpyd: String,
    /// Arrival process (open loop): poisson:RATE, bursty:RATE,cv=X, constant:RATE or trace:FILE (Mooncake JSONL).
    #[arg(long, default_value = "poisson:10")]
    pub arrival: String,
    /// Prompt lengths: fixed:N, uniform:A..B, zipf:alpha=S,A..B, lognormal:mean=M,sigma=S or trace[:FILE].
    #[arg(long, default_value = "uniform:128..1024")]
    pub prompt_dist: String,
    /// Output lengths, same forms as --prompt-dist (trace reads output_length).
    #[arg(long, default_value = "uniform:16..256")]
    pub output_dist: String,
    /// Requests offered per point per trial.
    #[arg(long, default_value_t = 200)]
    pub requests: u32,
    /// Trials per point (the draft requires at least 20).
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
    /// Model: llama-3.1-8b, llama-3.1-70b, qwen3-235b-a22b, deepseek-v3, CFG-A..CFG-D, or CFG-E:L=..,H_kv=..,D=..,P=..
    #[arg(long, default_value = "llama-3.1-8b")]
    pub model: String,
    /// Tensor parallelism of each worker.
    #[arg(long, default_value_t = 1)]
    pub tp: u32,
    /// Page layout: vllm, sglang, contiguous or mla.
    #[arg(long, default_value = "sglang")]
    pub layout: String,
    /// push (prefill workers WRITE, SGLang/Mooncake) or pull (decode workers READ, then notify
    /// with a SEND; vLLM's NixlConnector). Default: pull for vllm and mla, push otherwise.
    #[arg(long, value_enum)]
    pub direction: Option<DirectionArg>,
    /// Tokens per page.
    #[arg(long, default_value_t = 16)]
    pub block_tokens: u32,
    /// Pages in each worker's KV pool (a decode worker holds prompt + output pages per request).
    #[arg(long, default_value_t = 1024)]
    pub pool_blocks: u32,
    /// Initial free-list fragmentation, 0..=1.
    #[arg(long, default_value_t = 0.0)]
    pub fragmentation: f64,
    /// Modelled prefill: rate:TOKENS_PER_S, flops:TFLOPS=..,MFU=.. or table:FILE.csv (default: flops:TFLOPS=989,MFU=0.4, else rate:20000).
    #[arg(long)]
    pub prefill: Option<String>,
    /// Modelled decode initialisation (e.g. 0, 2ms).
    #[arg(long, default_value = "0ms")]
    pub decode_init: String,
    /// Modelled decode step: one token per active request per step (e.g. 20ms).
    #[arg(long, default_value = "20ms")]
    pub decode_step: String,
    /// Decode routing: round-robin, least-loaded or random.
    #[arg(long, default_value = "round-robin")]
    pub route: String,
    /// When a decode pool is full: wait (FIFO) or reject.
    #[arg(long, default_value = "wait")]
    pub admission: String,
    /// How prefill workers ask decode workers for pages: shared (in-process state, free) or fabric (an ASK and a GRANT/REJECT as RDMA SENDs on each worker pair's first QP; T_admission then includes the ASK/GRANT round trip for push, the ASK's one-way trip for pull; needs --route round-robin or random). Default: shared on one host, fabric across nodes.
    #[arg(long)]
    pub control: Option<String>,
    /// Across hosts: topology file (topologies/*.toml) with the nodes, their devices and roles. Any of --topology, --nnodes, --node-rank, --master or --role runs the pools on the multi-rank runtime.
    #[arg(long)]
    pub topology: Option<PathBuf>,
    /// Across hosts: number of nodes.
    #[arg(long)]
    pub nnodes: Option<u32>,
    /// Across hosts: this node's rank, 0-based (node 0 plans, accounts and writes --json).
    #[arg(long)]
    pub node_rank: Option<u32>,
    /// Across hosts: node 0's rendezvous HOST[:PORT] (default port 18712).
    #[arg(long)]
    pub master: Option<String>,
    /// Across hosts: this node's roles when no topology is given: prefill, decode or both (each rank one worker).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub role: Vec<RoleArg>,
    /// Across hosts: seconds to wait for every node to join.
    #[arg(long, default_value_t = 60.0)]
    pub rendezvous_timeout: f64,
    /// Across hosts: shared token every node must present.
    #[arg(long, env = "INFAB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// 10.3, multi-tenant: a model instance on its own pools, MODEL,XPYD[,rate=R] (e.g. llama-3.1-8b,1P1D,rate=5); give it two to four times. Each runs alone, then all at once on the shared fabric; the penalty is (shared − alone) / alone × 100 %.
    #[arg(long, conflicts_with_all = ["oversubscribe", "rate_sweep", "xpyd", "model"])]
    pub tenant: Vec<String>,
    /// 6.4: arrival rate as multiples of the modelled prefill capacity, A..B:STEP (e.g. 1.0..2.0:0.25).
    #[arg(long, conflicts_with = "rate_sweep")]
    pub oversubscribe: Option<String>,
    /// Raise the arrival rate A..B:STEP requests/s until the TTFT P99 SLO fails; reports the knee.
    #[arg(long)]
    pub rate_sweep: Option<String>,
    /// TTFT SLO with its unit (e.g. 500ms).
    #[arg(long)]
    pub slo_ttft: Option<String>,
    /// ITL SLO with its unit (e.g. 50ms).
    #[arg(long)]
    pub slo_itl: Option<String>,
    /// Bin of the fabric rate series (e.g. 1ms, 100us).
    #[arg(long, default_value = "1ms")]
    pub bin: String,
    /// QPs from each prefill worker to each decode worker.
    #[arg(short = 'q', long, default_value_t = 1)]
    pub qps: u32,
    /// Outstanding work requests per QP.
    #[arg(short = 't', long, default_value_t = 128)]
    pub tx_depth: u32,
    /// Largest bytes per work request (default: the devices' max message).
    #[arg(long)]
    pub max_wr_bytes: Option<String>,
    /// Seconds without a completion before the run fails.
    #[arg(long, default_value_t = 30.0)]
    pub stall_timeout: f64,
    /// GRH traffic class (DSCP << 2).
    #[arg(long, default_value_t = 0)]
    pub tclass: u8,
    /// Check every page's bytes where it lands.
    #[arg(long)]
    pub verify: bool,
    /// Seed of arrivals, lengths, routes and page pools.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How worker threads wait: spin, yield or event (default: event with fewer cores than workers + 2).
    #[arg(long, value_enum)]
    pub poll: Option<PollArg>,
    /// Use 2 MiB huge pages for buffers.
    #[arg(long)]
    pub huge_pages: bool,
    /// Write results JSON here (rewritten after every trial).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A label for the device/fabric under test.
    #[arg(long, default_value = "unspecified")]
    pub dut: String,
}
