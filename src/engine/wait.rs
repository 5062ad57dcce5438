//! How an engine thread waits for its next completion: spin, yield, or
//! sleep on the CQ's completion channel.
//!
//! Every wait loop polls its CQ(s); when a poll finds nothing it calls
//! [`IdleWait::wait`], and when one finds something [`IdleWait::reset`].
//! Spinning gives the lowest detection latency and keeps a core busy;
//! when engine threads outnumber the cores the process may use (ranks
//! beside a serving stack, SoftRoCE whose packet work runs on the same
//! CPUs), spinning takes the CPU from the work that completes the thread's
//! own requests, so the default then is to yield or to sleep.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::control::monotonic_ns;
use crate::verbs::{CompletionQueue, VerbsError};

/// How a thread waits for completions (`--poll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Busy-poll the CQ: the lowest detection latency, one core kept busy.
    Spin,
    /// Spin for a few empty polls, then yield the core after every empty
    /// poll (what MPI libraries do when oversubscribed).
    Yield,
    /// Spin briefly, then arm the CQ and sleep on its completion channel
    /// (bounded by the loop's deadline): the least CPU, one wake-up's delay.
    Event,
}

impl PollMode {
    /// The flag's word.
    pub fn name(self) -> &'static str {
        match self {
            PollMode::Spin => "spin",
            PollMode::Yield => "yield",
            PollMode::Event => "event",
        }
    }

    /// The default for `engine_threads` threads on `cores` usable cores:
    /// spin while the threads leave a core to everything else (the
    /// provider's and the kernel's transport work, the peer process on a
    /// one-host bed), yield otherwise.
    pub fn default_for(engine_threads: usize, cores: usize) -> PollMode {
        PollMode::default_for_run(engine_threads, cores, false)
    }

    /// [`PollMode::default_for`], where a latency run (one message in
    /// flight, detection delay is the measurement) spins as long as every
    /// thread has a core, as ib_write_lat does.
    pub fn default_for_run(engine_threads: usize, cores: usize, latency: bool) -> PollMode {
        if engine_threads < cores || (latency && engine_threads <= cores) {
            PollMode::Spin
        } else {
            PollMode::Yield
        }
    }
}

impl std::fmt::Display for PollMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The cores this process may run on (its affinity mask), at least 1.
pub fn usable_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The poll mode a run uses and why: recorded in the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollChoice {
    /// The mode every engine thread of this process uses.
    pub mode: PollMode,
    /// True when `--poll` set it; false when chosen by [`PollMode::default_for`].
    pub forced: bool,
    /// Engine threads (lanes, ranks, target workers) the process runs at once.
    pub engine_threads: u32,
    /// Cores the process may use.
    pub cores: u32,
    /// A latency run (spins while each thread has a core).
    pub latency: bool,
}

impl PollChoice {
    /// `flag` when given, else the default for `engine_threads` on this
    /// process's usable cores.
    pub fn resolve(flag: Option<PollMode>, engine_threads: usize) -> PollChoice {
        PollChoice::resolve_for(flag, engine_threads, false)
    }

    /// [`PollChoice::resolve`] for a latency run or not
    /// ([`PollMode::default_for_run`]).
    pub fn resolve_for(flag: Option<PollMode>, engine_threads: usize, latency: bool) -> PollChoice {
        let cores = usable_cores();
        PollChoice {
            mode: flag.unwrap_or_else(|| PollMode::default_for_run(engine_threads, cores, latency)),
            forced: flag.is_some(),
            engine_threads: engine_threads as u32,
            cores: cores as u32,
            latency,
        }
    }

    /// Whether spinning would starve other work: the threads leave no core
    /// to anything else (a latency run: they outnumber the cores).
    pub fn oversubscribed(&self) -> bool {
        if self.latency {
            self.engine_threads > self.cores
        } else {
            self.engine_threads >= self.cores
        }
    }

    /// The deviation note when the user forced spinning on an oversubscribed
    /// host (the measurement then includes threads starving each other).
    pub fn deviation(&self) -> Option<String> {
        (self.forced && self.mode == PollMode::Spin && self.oversubscribed()).then(|| {
            format!(
                "--poll spin with {} engine threads on {} usable cores: spinning threads take the CPU from the work that completes their requests, so latencies include that contention",
                self.engine_threads, self.cores
            )
        })
    }
}

/// Empty polls a `yield` waiter spins through before it starts yielding
/// (4 measured best for AllToAll on the bed: 4 ranks on 2 vCPUs).
const YIELD_AFTER_POLLS: u32 = 4;
/// How long an `event` waiter spins on empty polls before it sleeps.
const SLEEP_AFTER: Duration = Duration::from_micros(50);
/// The longest single sleep: loops check their abort flag and stall
/// deadline at least this often.
pub const LONGEST_SLEEP: Duration = Duration::from_millis(10);

/// One thread's waiting state.
#[derive(Debug, Clone)]
pub struct IdleWait {
    mode: PollMode,
    empty_polls: u32,
    idle_since_ns: u64,
    armed: bool,
}

impl IdleWait {
    /// A waiter in `mode`.
    pub fn new(mode: PollMode) -> IdleWait {
        IdleWait {
            mode,
            empty_polls: 0,
            idle_since_ns: 0,
            armed: false,
        }
    }

    /// The mode.
    pub fn mode(&self) -> PollMode {
        self.mode
    }

    /// A poll found completions: the next empty poll starts a new idle spell.
    #[inline]
    pub fn reset(&mut self) {
        self.empty_polls = 0;
    }

    /// A poll of `cqs` found nothing: spin on, yield, or (event mode) arm
    /// the CQs and, on the empty poll after arming, sleep until one raises
    /// an event or `cap` passes (at most [`LONGEST_SLEEP`]). The caller
    /// polls again after every call, so a completion that arrived before
    /// arming is never missed.
    #[inline]
    pub fn wait(
        &mut self,
        cqs: &mut [&mut CompletionQueue],
        cap: Duration,
    ) -> Result<(), VerbsError> {
        self.empty_polls = self.empty_polls.saturating_add(1);
        match self.mode {
            // nothing at all: a pause instruction would delay detection
            PollMode::Spin => {}
            PollMode::Yield => {
                if self.empty_polls > YIELD_AFTER_POLLS {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            PollMode::Event => {
                let now = monotonic_ns();
                if self.empty_polls == 1 {
                    self.idle_since_ns = now;
                    return Ok(());
                }
                if now.saturating_sub(self.idle_since_ns) < SLEEP_AFTER.as_nanos() as u64 {
                    std::hint::spin_loop();
                    return Ok(());
                }
                if !self.armed {
                    for cq in cqs.iter_mut() {
                        cq.arm()?;
                    }
                    self.armed = true;
                    return Ok(()); // poll once more: arming raises no event for the past
                }
                if cap.is_zero() {
                    return Ok(()); // due now: the caller has work to post
                }
                CompletionQueue::wait_any(cqs, cap.min(LONGEST_SLEEP))?;
                // an event (or a timeout) disarms: re-arm before the next sleep
                self.armed = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spins_only_with_a_core_per_thread() {
        assert_eq!(PollMode::default_for(1, 2), PollMode::Spin);
        assert_eq!(PollMode::default_for(7, 8), PollMode::Spin);
        assert_eq!(PollMode::default_for(2, 2), PollMode::Yield);
        assert_eq!(PollMode::default_for(3, 2), PollMode::Yield);
        assert_eq!(PollMode::default_for(1, 1), PollMode::Yield);
        // latency runs spin while each thread has a core
        assert_eq!(PollMode::default_for_run(2, 2, true), PollMode::Spin);
        assert_eq!(PollMode::default_for_run(3, 2, true), PollMode::Yield);
    }

    #[test]
    fn forcing_spin_when_oversubscribed_is_a_deviation() {
        let choice = |mode, forced, threads| PollChoice {
            mode,
            forced,
            engine_threads: threads,
            cores: 2,
            latency: false,
        };
        let latency = PollChoice {
            latency: true,
            ..choice(PollMode::Spin, true, 2)
        };
        assert!(latency.deviation().is_none());
        assert!(choice(PollMode::Spin, true, 4).deviation().is_some());
        assert!(choice(PollMode::Spin, true, 1).deviation().is_none());
        assert!(choice(PollMode::Spin, false, 4).deviation().is_none());
        assert!(choice(PollMode::Event, true, 4).deviation().is_none());
    }

    #[test]
    fn names_round_trip_through_json() {
        for mode in [PollMode::Spin, PollMode::Yield, PollMode::Event] {
            let text = serde_json::to_string(&mode).unwrap();
            assert_eq!(text, format!("\"{}\"", mode.name()));
            assert_eq!(serde_json::from_str::<PollMode>(&text).unwrap(), mode);
        }
    }
}
