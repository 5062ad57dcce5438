//! The serving schedule of one trial, as data: which prefill worker takes
//! each request (join the worker that frees up first, FCFS within it), its
//! modelled prefill time, and, for the static routes, its decode worker.
//!
//! The engine replays this plan in real time: a prefill worker really
//! waits for its queue and for the modelled compute, so T_queue is measured,
//! not computed. `least-loaded` routing and decode admission depend on what
//! the fabric does (when KV lands, when pages free), so the engine decides
//! them as it runs, with [`least_loaded`].

use std::str::FromStr;

use super::super::WorkloadError;

/// How the router picks a request's decode worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Request i goes to decode worker i mod D.
    RoundRobin,
    /// The worker holding the fewest requests when the prefill ends.
    LeastLoaded,
    /// A seeded uniform choice.
    Random,
}

impl Route {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Route::RoundRobin => "round-robin",
            Route::LeastLoaded => "least-loaded",
            Route::Random => "random",
        }
    }
}

impl FromStr for Route {
    type Err = WorkloadError;
    fn from_str(s: &str) -> Result<Route, WorkloadError> {
        match s.trim() {
            "round-robin" | "rr" => Ok(Route::RoundRobin),
            "least-loaded" => Ok(Route::LeastLoaded),
            "random" => Ok(Route::Random),
            _ => Err(WorkloadError::Serving(format!(
                "--route '{s}': use round-robin, least-loaded or random"
            ))),
        }
    }
}

/// What a decode worker does with a request whose pages do not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Admission {
    /// Queue it (FIFO) until pages free; the wait is measured.
    Wait,
    /// Refuse it; it is counted as rejected.
    Reject,
}

impl Admission {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Admission::Wait => "wait",
            Admission::Reject => "reject",
        }
    }
}

impl FromStr for Admission {
    type Err = WorkloadError;
    fn from_str(s: &str) -> Result<Admission, WorkloadError> {
        match s.trim() {
            "wait" => Ok(Admission::Wait),
            "reject" => Ok(Admission::Reject),
            _ => Err(WorkloadError::Serving(format!(
                "--admission '{s}': use wait or reject"
            ))),
        }
    }
}

/// How prefill workers ask decode workers for pages (`--control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingControl {
    /// In-process shared state: both pools in one process, asks and grants
    /// cost nothing (the serving engines' side channels are not the fabric
    /// under test).
    Shared,
    /// Messages on the fabric: an ASK, then a GRANT or REJECT, as SENDs on
    /// the first QP of each worker pair; T_admission includes their round
    /// trip. What pools on two hosts use.
    Fabric,
}

impl ServingControl {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            ServingControl::Shared => "shared",
            ServingControl::Fabric => "fabric",
        }
    }
}

impl FromStr for ServingControl {
    type Err = WorkloadError;
    fn from_str(s: &str) -> Result<ServingControl, WorkloadError> {
        match s.trim() {
            "shared" => Ok(ServingControl::Shared),
            "fabric" => Ok(ServingControl::Fabric),
            _ => Err(WorkloadError::Serving(format!(
                "--control '{s}': use shared or fabric"
            ))),
        }
    }
}

/// A prefill:decode worker ratio, `xPyD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRatio {
    /// Prefill workers.
    pub prefill: u32,
    /// Decode workers.
    pub decode: u32,
}

impl PoolRatio {
    /// Parses `xPyD` (e.g. `2P6D`), both at least 1.
    pub fn parse(text: &str) -> Result<PoolRatio, WorkloadError> {
        let bad = || {
            WorkloadError::Serving(format!(
                "--xpyd '{text}': write xPyD with x, y >= 1, e.g. 1P1D or 2P6D"
            ))
        };
        let t = text.trim().to_ascii_uppercase();
        let (p, d) = t.split_once('P').ok_or_else(bad)?;
        let d = d.strip_suffix('D').ok_or_else(bad)?;
        let prefill: u32 = p.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
        let decode: u32 = d.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
        Ok(PoolRatio { prefill, decode })
    }

    /// Parses a comma-separated list.
    pub fn parse_list(text: &str) -> Result<Vec<PoolRatio>, WorkloadError> {
        text.split(',').map(PoolRatio::parse).collect()
    }

    /// Workers in all.
    pub fn workers(&self) -> u32 {
        self.prefill + self.decode
    }
}

impl std::fmt::Display for PoolRatio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}P{}D", self.prefill, self.decode)
    }
}

/// One request of a trial, as planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedRequest {
    /// Its number in the trial (arrival order).
    pub request: u32,
    /// Intended arrival, ns after the trial's start.
    pub intended_ns: u64,
    /// Prompt tokens (the KV that moves).
    pub prompt_tokens: u64,
    /// Output tokens (decode steps it holds its pages for).
    pub output_tokens: u64,
    /// The prefill worker that serves it.
    pub prefill_worker: u32,
    /// Its modelled prefill time, ns.
    pub prefill_ns: u64,
    /// Its decode worker for the static routes; `None`: least-loaded,
    /// decided at run time.
    pub decode_worker: Option<u32>,
}

/// Assigns each request (arrival order) to the prefill worker whose
/// modelled queue empties first (on ties, the one idle longest, then the
/// lowest id), FCFS within a worker,
/// and picks decode workers for the static routes.
pub fn plan_requests(
    arrivals_ns: &[u64],
    prompts: &[u64],
    outputs: &[u64],
    prefill_ns: &dyn Fn(u64) -> u64,
    ratio: PoolRatio,
    route: Route,
    seed: u64,
) -> Vec<PlannedRequest> {
    let mut free_at = vec![0u64; ratio.prefill as usize];
    // when each worker last took a request: among workers free at the
    // arrival, the one idle longest takes it (a router spreads work)
    let mut last_taken = vec![0usize; ratio.prefill as usize];
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5e_7e_a4);
    arrivals_ns
        .iter()
        .zip(prompts)
        .zip(outputs)
        .enumerate()
        .map(|(i, ((&at, &prompt), &output))| {
            let worker = (0..free_at.len())
                .min_by_key(|&w| (free_at[w].max(at), last_taken[w], w))
                .unwrap_or(0);
            last_taken[worker] = i + 1;
            let service = prefill_ns(prompt);
            free_at[worker] = free_at[worker].max(at) + service;
            PlannedRequest {
                request: i as u32,
                intended_ns: at,
                prompt_tokens: prompt,
                output_tokens: output,
                prefill_worker: worker as u32,
                prefill_ns: service,
                decode_worker: match route {
                    Route::RoundRobin => Some(i as u32 % ratio.decode),
                    Route::Random => Some(rng.u32(0..ratio.decode)),
                    Route::LeastLoaded => None,
                },
            }
        })
        .collect()
}

/// The least-loaded worker: the fewest requests held, then the most free
/// pages, then the lowest id. `loads[w] = (requests held, pages free)`.
pub fn least_loaded(loads: &[(u32, u32)]) -> u32 {
    (0..loads.len())
        .min_by_key(|&w| (loads[w].0, u32::MAX - loads[w].1, w))
        .unwrap_or(0) as u32
}

/// Requests/s the prefill pool serves at most: workers over the mean
/// modelled prefill time of `prompts`.
pub fn prefill_capacity_per_s(
    prompts: &[u64],
    prefill_ns: &dyn Fn(u64) -> u64,
    workers: u32,
) -> f64 {
    if prompts.is_empty() {
        return 0.0;
    }
    let mean_ns = prompts.iter().map(|p| prefill_ns(*p) as f64).sum::<f64>() / prompts.len() as f64;
    if mean_ns <= 0.0 {
        return f64::INFINITY;
    }
    f64::from(workers) * 1e9 / mean_ns
}

/// Which points are Pareto-optimal when lower `cost` (e.g. TTFT P99) and
/// higher `value` (e.g. goodput per worker) are better: a point is dominated
/// when another is no worse in both and better in one.
pub fn pareto_optimal(points: &[(f64, f64)]) -> Vec<bool> {
    points
        .iter()
        .map(|&(c, v)| {
            !points
                .iter()
                .any(|&(c2, v2)| c2 <= c && v2 >= v && (c2 < c || v2 > v))
        })
        .collect()
}

/// Parses `A..B:STEP` (multiples of capacity, e.g. `1.0..2.0:0.25`) into
/// the list of multiples, both ends included.
pub fn parse_multiples(text: &str, flag: &str) -> Result<Vec<f64>, WorkloadError> {
    let bad = |why: &str| {
        WorkloadError::Serving(format!(
            "{flag} '{text}': {why}; write A..B:STEP, e.g. 1.0..2.0:0.25"
        ))
    };
    let (range, step) = text.split_once(':').unwrap_or((text, ""));
    let (a, b) = range.split_once("..").unwrap_or((range, range));
    let num = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let (a, b) = (
        num(a).ok_or_else(|| bad("A must be above 0"))?,
        num(b).ok_or_else(|| bad("B must be above 0"))?,
    );
    if a > b {
        return Err(bad("A is above B"));
    }
    let step = if step.is_empty() {
        (b - a).max(1.0)
    } else {
        num(step).ok_or_else(|| bad("STEP must be above 0"))?
    };
    let mut out = Vec::new();
    let mut i = 0.0;
    loop {
        let m = a + i * step;
        if m > b + 1e-9 || out.len() > 1000 {
            break;
        }
        out.push((m * 1e6).round() / 1e6);
        i += 1.0;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_parse_and_refuse() {
        assert_eq!(
            PoolRatio::parse_list("1P1D,2p6d").unwrap(),
            [
                PoolRatio {
                    prefill: 1,
                    decode: 1
                },
                PoolRatio {
                    prefill: 2,
                    decode: 6
                }
            ]
        );
        for bad in ["0P1D", "1P", "P1D", "1D1P", "xPyD"] {
            assert!(PoolRatio::parse(bad).unwrap_err().to_string().contains(bad));
        }
        assert_eq!(
            PoolRatio {
                prefill: 2,
                decode: 6
            }
            .to_string(),
            "2P6D"
        );
    }

    #[test]
    fn prefill_goes_to_the_worker_free_first_fcfs() {
        // two workers, 10 ms each, arrivals every 4 ms
        let arrivals = [0, 4, 8, 12, 16].map(|ms| ms * 1_000_000);
        let plan = plan_requests(
            &arrivals,
            &[1; 5],
            &[1; 5],
            &|_| 10_000_000,
            PoolRatio {
                prefill: 2,
                decode: 3,
            },
            Route::RoundRobin,
            1,
        );
        let workers: Vec<u32> = plan.iter().map(|p| p.prefill_worker).collect();
        // w0 free at 10, w1 at 14, then w0 at 20 (req 2 waits 2 ms), w1 at 24 ...
        assert_eq!(workers, [0, 1, 0, 1, 0]);
        let decode: Vec<Option<u32>> = plan.iter().map(|p| p.decode_worker).collect();
        assert_eq!(decode, [Some(0), Some(1), Some(2), Some(0), Some(1)]);
        // light load: every worker idle at each arrival, they take turns
        let sparse = [0, 100, 200, 300].map(|ms| ms * 1_000_000);
        let plan = plan_requests(
            &sparse,
            &[1; 4],
            &[1; 4],
            &|_| 10_000_000,
            PoolRatio {
                prefill: 3,
                decode: 1,
            },
            Route::RoundRobin,
            1,
        );
        let workers: Vec<u32> = plan.iter().map(|p| p.prefill_worker).collect();
        assert_eq!(workers, [0, 1, 2, 0]);
    }

    #[test]
    fn random_routes_are_seeded_and_spread() {
        let arrivals: Vec<u64> = (0..3000).collect();
        let ones = vec![1u64; 3000];
        let ratio = PoolRatio {
            prefill: 1,
            decode: 3,
        };
        let a = plan_requests(&arrivals, &ones, &ones, &|_| 1, ratio, Route::Random, 9);
        let b = plan_requests(&arrivals, &ones, &ones, &|_| 1, ratio, Route::Random, 9);
        assert_eq!(a, b);
        for w in 0..3 {
            let n = a.iter().filter(|p| p.decode_worker == Some(w)).count();
            assert!((900..1100).contains(&n), "worker {w}: {n}");
        }
        let ll = plan_requests(
            &arrivals,
            &ones,
            &ones,
            &|_| 1,
            ratio,
            Route::LeastLoaded,
            9,
        );
        assert!(ll.iter().all(|p| p.decode_worker.is_none()));
    }

    #[test]
    fn least_loaded_prefers_fewest_requests_then_free_pages() {
        assert_eq!(least_loaded(&[(2, 10), (1, 3), (1, 8)]), 2);
        assert_eq!(least_loaded(&[(0, 5), (0, 5)]), 0);
    }

    #[test]
    fn capacity_is_workers_over_mean_prefill() {
        let c = prefill_capacity_per_s(&[100, 300], &|t| t * 1_000_000, 2);
        assert!((c - 10.0).abs() < 1e-9, "{c}");
    }

    #[test]
    fn pareto_keeps_the_undominated() {
        let pts = [(10.0, 5.0), (12.0, 6.0), (11.0, 4.0), (10.0, 5.0)];
        assert_eq!(pareto_optimal(&pts), [true, true, false, true]);
    }

    #[test]
    fn multiples_include_both_ends() {
        assert_eq!(
            parse_multiples("1.0..2.0:0.25", "--oversubscribe").unwrap(),
            [1.0, 1.25, 1.5, 1.75, 2.0]
        );
        assert_eq!(parse_multiples("1.5", "--x").unwrap(), [1.5]);
        assert!(parse_multiples("2..1:0.5", "--x").is_err());
        assert!(parse_multiples("0..1:0.5", "--x").is_err());
    }
}
