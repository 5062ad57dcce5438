//! IETF 8.3 analysis: from one trial's rate series (KV flows, EP ranks)
//! and counter series, the convergence time of each class after the other
//! joined, the steady-state allocation, its JFI and the retransmission and
//! loss counters over the convergence window. The trial itself runs in
//! [`super::contention`]; the rules (steady state, band, smoothing) are in
//! [`crate::stats::convergence`].

use crate::results::{
    ClassAcrossTrials, ClassConvergence, ClassSeries, ConvergenceOrder, ConvergenceTrial,
    WindowCounters,
};
use crate::stats::{across_trials, convergence, jain_index, ConvergenceRule, RateSeries};

use super::fabric::TrialOutcome;

/// Which class runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOrder {
    /// The KV stream runs; EP AllToAll joins at t0.
    KvFirst,
    /// EP AllToAll runs; the KV stream joins at t0.
    EpFirst,
}

impl JoinOrder {
    /// "kv-first" or "ep-first".
    pub fn name(self) -> &'static str {
        match self {
            JoinOrder::KvFirst => "kv-first",
            JoinOrder::EpFirst => "ep-first",
        }
    }

    /// `(first, joining)` class names.
    pub fn classes(self) -> (&'static str, &'static str) {
        match self {
            JoinOrder::KvFirst => ("kv", "ep"),
            JoinOrder::EpFirst => ("ep", "kv"),
        }
    }
}

/// Sums lane series into one class series (lanes without a series are
/// skipped); returns the series and the lanes summed.
fn class_series<'a>(bin_ns: u64, lanes: impl Iterator<Item = &'a RateSeries>) -> (RateSeries, u32) {
    let mut sum = RateSeries::sum_of(bin_ns);
    let mut n = 0;
    for lane in lanes {
        if sum.add(lane) {
            n += 1;
        }
    }
    (sum, n)
}

/// Analyses one 8.3 trial. Times in the result are ns after the trial's
/// common start; `bin_ns` is the series' bin; `end_ns` the trial's
/// scheduled end (streams stop posting there: what completes later is
/// their drain, not a rate the fabric settled to).
pub fn analyse_trial(
    outcome: &TrialOutcome,
    order: JoinOrder,
    bin_ns: u64,
    rule: ConvergenceRule,
    end_ns: u64,
) -> ConvergenceTrial {
    let start = outcome.start_ns;
    let rel = |t: u64| t.saturating_sub(start);
    let (kv, kv_lanes) = class_series(
        bin_ns,
        outcome.flows.iter().filter_map(|f| f.tally.series.as_ref()),
    );
    let (ep, ep_lanes) = class_series(
        bin_ns,
        outcome.dispatch.iter().filter_map(|r| r.series.as_ref()),
    );
    // recorded times: first post and last completion of each class
    let kv_span = (
        outcome.flows.iter().map(|f| rel(f.tally.start_ns)).min(),
        outcome.flows.iter().map(|f| rel(f.tally.end_ns)).max(),
    );
    let ep_span = (
        outcome
            .dispatch
            .iter()
            .filter_map(|r| r.iterations.first().map(|i| rel(i.0)))
            .min(),
        outcome
            .dispatch
            .iter()
            .filter_map(|r| r.iterations.last().map(|i| rel(i.2)))
            .max(),
    );
    let (joining_span, first_span) = match order {
        JoinOrder::KvFirst => (ep_span, kv_span),
        JoinOrder::EpFirst => (kv_span, ep_span),
    };
    let t0_ns = joining_span.0.unwrap_or(0);
    let window_end_ns = match (first_span.1, joining_span.1) {
        (Some(a), Some(b)) => a.min(b).min(end_ns).max(t0_ns),
        _ => t0_ns,
    };
    let bin = bin_ns.max(1);
    // whole bins only: the one t0 falls in is partly before the join
    let from = t0_ns.div_ceil(bin) as usize;
    let to = (window_end_ns / bin) as usize;
    let judge = |series: &RateSeries| {
        let mut rates = series.rates_bytes_per_s();
        rates.resize(rates.len().max(to), 0.0);
        convergence(&rates, from, to, rule)
    };
    let (kv_c, ep_c) = (judge(&kv), judge(&ep));
    let steady_from_ns = kv_c.steady_from_bin as u64 * bin;
    let rates = [kv_c.steady_rate, ep_c.steady_rate];
    let total: Option<f64> = rates.iter().copied().sum();
    let class = |name: &str, c: &crate::stats::Convergence| ClassConvergence {
        class: name.into(),
        steady_gbytes_per_s: c.steady_rate.map(|r| r / 1e9),
        steady_share: match (c.steady_rate, total) {
            (Some(r), Some(t)) if t > 0.0 => Some(r / t),
            _ => None,
        },
        convergence_ns: c
            .converged_after_bins
            .map(|b| ((from + b) as u64 * bin).saturating_sub(t0_ns)),
    };
    let classes = vec![class("kv", &kv_c), class("ep", &ep_c)];
    let jfi = rates
        .iter()
        .copied()
        .collect::<Option<Vec<f64>>>()
        .and_then(|r| jain_index(&r));
    // the convergence window: t0 to the later class's convergence, or the
    // window's end when a class did not converge
    let settled = classes
        .iter()
        .map(|c| c.convergence_ns)
        .collect::<Option<Vec<u64>>>()
        .map(|c| t0_ns + c.into_iter().max().unwrap_or(0));
    let window_to = settled.unwrap_or(window_end_ns).max(t0_ns);
    ConvergenceTrial {
        trial: outcome.trial,
        t0_ns,
        window_end_ns,
        steady_from_ns,
        classes,
        jfi,
        window_counters: WindowCounters::over(&outcome.counter_series, t0_ns, window_to),
        series: vec![
            ClassSeries {
                class: "kv".into(),
                lanes: kv_lanes,
                series: kv,
            },
            ClassSeries {
                class: "ep".into(),
                lanes: ep_lanes,
                series: ep,
            },
        ],
        counter_series: outcome.counter_series.clone(),
    }
}

/// Recomputes an order's across-trial intervals from its trials.
pub fn summarise_order(order: &mut ConvergenceOrder) {
    let trials = order.trials.len() as u32;
    order.classes = ["kv", "ep"]
        .iter()
        .map(|&name| {
            let of = |t: &ConvergenceTrial| t.classes.iter().find(|c| c.class == name).cloned();
            let converged: Vec<f64> = order
                .trials
                .iter()
                .filter_map(|t| of(t)?.convergence_ns.map(|n| n as f64))
                .collect();
            let steady: Vec<f64> = order
                .trials
                .iter()
                .filter_map(|t| of(t)?.steady_gbytes_per_s)
                .collect();
            ClassAcrossTrials {
                class: name.into(),
                convergence_ns: across_trials(&converged),
                converged_trials: converged.len() as u32,
                trials,
                steady_gbytes_per_s: across_trials(&steady),
            }
        })
        .collect();
    let jfi: Vec<f64> = order.trials.iter().filter_map(|t| t.jfi).collect();
    order.jfi = across_trials(&jfi);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Flow, FlowTrial, RankDispatchTrial};
    use crate::stats::SeriesClock;
    use crate::suite::fabric::FlowOutcome;

    const MS: u64 = 1_000_000;

    /// KV at 100 MB/s alone, EP joins at 30 ms and KV drops to 60 MB/s at
    /// 40 ms; EP runs at 40 MB/s from 30 ms; both end at 90 ms.
    fn outcome() -> TrialOutcome {
        let start = 1_000 * MS;
        let clock = SeriesClock::covering(start, MS, 100 * MS);
        let mut kv = RateSeries::new(clock);
        let mut ep = RateSeries::new(clock);
        for ms in 0..90 {
            let t = start + ms * MS + MS / 2;
            kv.record(t, if ms < 40 { 100_000 } else { 60_000 }, 1);
            if ms >= 30 {
                ep.record(t, 40_000, 1);
            }
        }
        TrialOutcome {
            trial: 0,
            start_ns: start,
            flows: vec![FlowOutcome {
                flow: Flow {
                    id: 0,
                    sender: 0,
                    receiver: 1,
                    qps: 1,
                    slot: false,
                },
                tally: FlowTrial {
                    flow: 0,
                    messages: 90,
                    bytes: 0,
                    start_ns: start,
                    end_ns: start + 90 * MS,
                    latency: Vec::new(),
                    transfers: Vec::new(),
                    cpu_s: 0.0,
                    series: Some(kv),
                },
            }],
            dispatch: vec![RankDispatchTrial {
                rank: 2,
                iterations: vec![
                    (start + 30 * MS, start + 30 * MS, start + 31 * MS),
                    (start + 89 * MS, start + 89 * MS, start + 90 * MS),
                ],
                combine: Vec::new(),
                bytes_sent: 0,
                messages_received: 0,
                cpu_s: 0.0,
                series: Some(ep),
            }],
            ..TrialOutcome::default()
        }
    }

    #[test]
    fn kv_settles_ten_ms_after_ep_joins() {
        let rule = ConvergenceRule {
            tolerance: 0.05,
            smooth_bins: 1,
        };
        let t = analyse_trial(&outcome(), JoinOrder::KvFirst, MS, rule, 95 * MS);
        // a scheduled end before the last completion ends the window
        let short = analyse_trial(&outcome(), JoinOrder::KvFirst, MS, rule, 60 * MS);
        assert_eq!(short.window_end_ns, 60 * MS);
        assert_eq!(t.t0_ns, 30 * MS);
        assert_eq!(t.window_end_ns, 90 * MS);
        let kv = &t.classes[0];
        let ep = &t.classes[1];
        assert_eq!(kv.convergence_ns, Some(10 * MS));
        assert_eq!(ep.convergence_ns, Some(0));
        assert!((kv.steady_gbytes_per_s.unwrap() - 0.06).abs() < 1e-12);
        assert!((ep.steady_gbytes_per_s.unwrap() - 0.04).abs() < 1e-12);
        assert!((kv.steady_share.unwrap() - 0.6).abs() < 1e-12);
        // (0.06 + 0.04)² / (2 · (0.06² + 0.04²)) = 0.01 / 0.0104
        assert!((t.jfi.unwrap() - 0.01 / 0.0104).abs() < 1e-9);
        assert_eq!(t.window_counters.from_ns, 30 * MS);
        assert_eq!(t.window_counters.to_ns, 40 * MS);
        assert_eq!(t.window_counters.retransmissions, None);
        assert_eq!(t.series[0].series.bytes.len(), 90);
        let mut order = ConvergenceOrder {
            trials: vec![t.clone(), t],
            ..ConvergenceOrder::default()
        };
        summarise_order(&mut order);
        assert_eq!(order.classes[0].converged_trials, 2);
        assert_eq!(
            order.classes[0].convergence_ns.as_ref().map(|i| i.mean),
            Some(10.0 * MS as f64)
        );
    }
}
