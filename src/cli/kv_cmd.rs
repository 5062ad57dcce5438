//! `infab run kv`: validates the KV model, layout, transfer and prefill
//! flags into [`KvParams`] (every bad value is a one-line error before any
//! traffic), then runs the 10.1 sweep on the multi-rank runtime.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::engine::{KvDirection, KvNotify, PollMode};
use crate::suite::kv::{KvParams, KvPipeline, KvTest};
use crate::topology::Role;
use crate::workload::kv::{KvLayout, KvModel, PrefillModel};
use crate::workload::{Arrival, LengthDist, TraceField};

use super::args::{DirectionArg, KvArgs, NotifyArg};
use super::fabric_cmd::{fabric_command, RankNeeds};
use super::{max_wr_bytes, parse_count_list};

/// The longest prompt infab plans (the draft's sweep ends at 16 K; 10.x
/// discusses 128 K contexts).
const MAX_PROMPT_TOKENS: u64 = 1 << 20;

/// `infab run kv`.
pub(super) fn kv_command(args: &KvArgs) -> Result<i32> {
    let params = kv_params(args)?;
    let requests = params.requests;
    let mut test = KvTest::new(params).map_err(anyhow::Error::msg)?;
    let needs = RankNeeds {
        prefill: 1,
        decode: 1,
        ep: 0,
        default_roles: vec![Role::Prefill, Role::Decode],
    };
    // the driver's own bound per trial comes from the test; this one only
    // sizes how long a non-zero node waits for node 0's next command
    let trial_time = Duration::from_secs(60) + Duration::from_millis(50) * requests;
    fabric_command(&args.fabric, &mut test, needs, trial_time, None)
}

/// Flags → validated parameters (no device is opened).
pub(super) fn kv_params(args: &KvArgs) -> Result<KvParams> {
    let model: KvModel = args.model.parse().context("--model")?;
    let layout: KvLayout = args.layout.parse().context("--layout")?;
    if args.block_tokens == 0 {
        bail!("--block-tokens must be at least 1 (vLLM's default is 16)");
    }
    if args.requests == 0 {
        bail!("--requests must be at least 1 (10.1 asks for 100 per prompt length)");
    }
    if !(0.0..=1.0).contains(&args.fragmentation) {
        bail!(
            "--fragmentation {} is outside 0 (consecutive pages) ..= 1 (fully shuffled)",
            args.fragmentation
        );
    }
    let prompts = parse_count_list(&args.prompt)
        .map_err(anyhow::Error::msg)
        .context("--prompt")?
        .into_iter()
        .map(u64::from)
        .collect::<Vec<_>>();
    if let Some(&bad) = prompts.iter().find(|&&t| t == 0 || t > MAX_PROMPT_TOKENS) {
        bail!("--prompt {bad}: prompt lengths are 1 ..= {MAX_PROMPT_TOKENS} tokens");
    }
    let direction = DirectionArg::or_default_for(args.direction, layout);
    let notify = match args.notify {
        Some(NotifyArg::Imm) => KvNotify::Imm,
        Some(NotifyArg::Send) => KvNotify::Send,
        Some(NotifyArg::None) => KvNotify::None,
        None => match direction {
            KvDirection::Push => KvNotify::Imm,
            KvDirection::Pull => KvNotify::Send,
        },
    };
    let pipeline = match args.pipeline.trim() {
        "request" => KvPipeline::Request,
        other => match other.strip_prefix("layer:").map(str::parse::<u32>) {
            Some(Ok(k)) => KvPipeline::Layers(k),
            _ => bail!(
                "--pipeline '{other}': use request or layer:K (K layers per group, e.g. layer:1)"
            ),
        },
    };
    let prefill_text = match (&args.prefill, model.params_b) {
        (Some(text), _) => text.clone(),
        (None, Some(_)) => "flops:TFLOPS=989,MFU=0.4".into(),
        (None, None) => "rate:20000".into(),
    };
    let prefill = PrefillModel::parse(&prefill_text, &model).context("--prefill")?;
    if !(args.decode_init.is_finite() && (0.0..=60_000.0).contains(&args.decode_init)) {
        bail!(
            "--decode-init {} ms is outside 0 ..= 60000 ms",
            args.decode_init
        );
    }
    let arrival = Arrival::parse(&args.arrival).map_err(anyhow::Error::msg)?;
    let prompt_dist = match &args.prompt_dist {
        Some(text) => Some(
            LengthDist::parse(
                text,
                "--prompt-dist",
                args.arrival.strip_prefix("trace:"),
                TraceField::Input,
            )
            .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    // default: the largest message every device of the run takes (node 0 picks)
    let max_wr = max_wr_bytes(args.fabric.max_wr_bytes.as_deref())?;
    let (longest, flag) = match &prompt_dist {
        // an unbounded mix (log-normal) sizes the pool for the draft's
        // longest prompt (+ 25 %, as every default pool); longer draws are
        // clipped at the pool, and deviations say so
        Some(dist) => (dist.max().unwrap_or(16_384), "--prompt-dist"),
        None => (prompts.iter().copied().max().unwrap_or(1), "--prompt"),
    };
    if longest > MAX_PROMPT_TOKENS {
        bail!("{flag}: a prompt of {longest} tokens is beyond the {MAX_PROMPT_TOKENS} infab plans");
    }
    let pool_blocks = match args.pool_blocks {
        Some(0) => bail!("--pool-blocks must be at least 1"),
        Some(n) => n,
        None => {
            let pages = longest.div_ceil(u64::from(args.block_tokens));
            u32::try_from(pages + pages.div_ceil(4)).with_context(|| {
                format!("{flag}: the longest prompt needs more pages than a pool can index")
            })?
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (poll, poll_reason) = match args.fabric.poll {
        Some(flag) => (flag.mode(), format!("--poll {}", flag.mode())),
        // a spinning waiter beside the posting thread and the provider's own
        // work (SoftRoCE runs in the kernel on the same CPUs) takes the core
        // that completes its transfer
        None if cores < 4 => (
            PollMode::Event,
            format!("default: {cores} usable cores (< 4), the waiting end sleeps"),
        ),
        None => (
            PollMode::Spin,
            format!("default: {cores} usable cores (>= 4), the waiting end spins"),
        ),
    };
    Ok(KvParams {
        model,
        tp: args.tp,
        layout,
        block_tokens: args.block_tokens,
        pool_blocks,
        fragmentation: args.fragmentation,
        max_wr_bytes: max_wr,
        seed: args.seed,
        direction,
        notify,
        pipeline,
        prompts,
        prompt_dist,
        requests: args.requests,
        prefill,
        decode_init_ns: (args.decode_init * 1e6) as u64,
        verify: args.verify,
        poll,
        poll_reason,
        arrival,
        trials: args.fabric.trials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Command, RunCommand};
    use clap::Parser;

    fn parse(line: &str) -> Result<KvParams> {
        let cli =
            crate::cli::Cli::try_parse_from(line.split_whitespace()).expect("clap accepts it");
        match cli.command {
            Command::Run(RunCommand::Kv(args)) => kv_params(&args),
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_mimic_the_engines() {
        let p = parse("infab run kv").unwrap();
        assert_eq!(p.model.name, "llama-3.1-8b");
        assert_eq!(p.layout, KvLayout::Vllm);
        assert_eq!(p.direction, KvDirection::Pull);
        assert_eq!(p.notify, KvNotify::Send);
        assert_eq!(p.prompts.len(), 8);
        assert_eq!(p.requests, 100);
        // 16384 tokens = 1024 pages, + 25 %
        assert_eq!(p.pool_blocks, 1280);
        let p = parse("infab run kv --layout sglang --pipeline layer:4").unwrap();
        assert_eq!(p.direction, KvDirection::Push);
        assert_eq!(p.notify, KvNotify::Imm);
        assert_eq!(p.pipeline, KvPipeline::Layers(4));
    }

    #[test]
    fn bad_input_is_one_line_before_traffic() {
        for (line, needle) in [
            ("infab run kv --model gpt-9", "gpt-9"),
            ("infab run kv --block-tokens 0", "--block-tokens"),
            ("infab run kv --fragmentation 1.5", "--fragmentation"),
            ("infab run kv --pipeline layers", "--pipeline"),
            ("infab run kv --requests 0", "--requests"),
            ("infab run kv --prompt 0", "--prompt"),
        ] {
            let err = format!("{:#}", parse(line).unwrap_err());
            assert!(err.contains(needle), "{line}: {err}");
        }
        // a layer group larger than L, and a prompt beyond the pool, fail in KvTest::new
        let p = parse("infab run kv --pipeline layer:33 --prompt 128").unwrap();
        assert!(KvTest::new(p).unwrap_err().contains("layer group"));
        let p = parse("infab run kv --prompt 1024 --pool-blocks 8").unwrap();
        assert!(KvTest::new(p).is_err());
        let p = parse("infab run kv --direction push --notify none --verify --prompt 128").unwrap();
        assert!(KvTest::new(p).unwrap_err().contains("--verify"));
    }

    #[test]
    fn a_prompt_mix_is_one_point_of_seeded_clipped_draws() {
        use crate::cluster::TrialWork;
        use crate::suite::fabric::FabricTest;
        let p = parse("infab run kv --prompt-dist uniform:128..1024 --requests 50").unwrap();
        // 1024 tokens = 64 pages, + 25 %
        assert_eq!(p.pool_blocks, 80);
        let test = KvTest::new(p).unwrap();
        assert_eq!(test.points(), 1);
        let prompts_of = |trial: u32| match test.work(0, &[], trial) {
            TrialWork::Kv {
                prompts, schedules, ..
            } => {
                assert!(
                    schedules.is_empty(),
                    "request pipeline: the point's schedule"
                );
                prompts
            }
            _ => unreachable!(),
        };
        let a = prompts_of(3);
        assert_eq!(a.len(), 50);
        assert!(a.iter().all(|t| (128..=1024).contains(t)), "{a:?}");
        assert_eq!(a, prompts_of(3), "the accounting redraws the very same");
        assert_ne!(a, prompts_of(4), "every trial its own draw");
        // an unbounded mix is clipped at the pool, and pipelined requests
        // carry their own layer times
        let p = parse(
            "infab run kv --prompt-dist lognormal:mean=2048,sigma=1.5 --pool-blocks 64 --pipeline layer:8",
        )
        .unwrap();
        let test = KvTest::new(p).unwrap();
        let TrialWork::Kv {
            prompts, schedules, ..
        } = test.work(0, &[], 0)
        else {
            unreachable!()
        };
        assert!(prompts.iter().all(|&t| (1..=64 * 16).contains(&t)));
        assert!(prompts.contains(&1024), "a σ = 1.5 tail reaches the clip");
        assert_eq!(schedules.len(), prompts.len());
        // 32 layers in groups of 8
        assert!(schedules.iter().all(|s| s.groups.len() == 4));
    }

    #[test]
    fn a_bad_prompt_mix_is_one_line_before_traffic() {
        for (line, needle) in [
            (
                "infab run kv --prompt-dist zipf:alpha=0,1..2",
                "--prompt-dist",
            ),
            ("infab run kv --prompt-dist trace", "--arrival trace:FILE"),
            ("infab run kv --prompt-dist uniform:9..3", "empty"),
            ("infab run kv --prompt-dist fixed:2000000", "--prompt-dist"),
        ] {
            let err = format!("{:#}", parse(line).unwrap_err());
            assert!(err.contains(needle), "{line}: {err}");
        }
        // --prompt and --prompt-dist are one or the other
        assert!(crate::cli::Cli::try_parse_from(
            "infab run kv --prompt 128 --prompt-dist fixed:8".split_whitespace()
        )
        .is_err());
    }
}
