//! Time-resolved results: NIC counter series, the marking onset of an
//! incast (8.1/8.2), and congestion-control convergence (8.3).
//!
//! Owns the serde types that mirror results-schema/ for these; the rate
//! series themselves are [`crate::stats::RateSeries`] (plain arrays). How
//! they are computed lives in suite/ and stats/.

use serde::{Deserialize, Serialize};

use crate::stats::{RateSeries, TrialInterval};

/// One device's counter KPIs sampled during a trial: per interval, the
/// delta of each KPI (ECN marks, CNPs, pauses, retransmissions) over that
/// interval. A KPI the device does not expose (or whose counter went
/// backwards in some interval) is `None` for the whole series: "not
/// exposed", never 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterSeries {
    /// Node rank that sampled it.
    #[serde(default)]
    pub node: u32,
    /// RDMA device.
    pub device: String,
    /// Port (1-based).
    pub port: u8,
    /// Requested sampling interval, ns.
    pub interval_ns: u64,
    /// Whether `ethtool -S` was read too (PFC pause frames live there on
    /// most NICs; it is read only at intervals of 50 ms and more).
    pub ethtool: bool,
    /// End of each interval, ns after the trial's common start (negative:
    /// before it).
    pub t_ns: Vec<i64>,
    /// ECN-CE marked packets received per interval.
    pub ecn_marked_packets: Option<Vec<i64>>,
    /// CNPs sent per interval.
    pub cnp_sent: Option<Vec<i64>>,
    /// CNPs handled per interval.
    pub cnp_handled: Option<Vec<i64>>,
    /// PAUSE frames received per interval.
    pub pfc_rx_pause: Option<Vec<i64>>,
    /// PAUSE frames sent per interval.
    pub pfc_tx_pause: Option<Vec<i64>>,
    /// Retransmission events per interval.
    pub retransmissions: Option<Vec<i64>>,
    /// Out-of-sequence packets (losses seen by the responder) per interval.
    pub out_of_sequence: Option<Vec<i64>>,
    /// Sequence-error NAKs per interval.
    pub packet_seq_errors: Option<Vec<i64>>,
}

impl CounterSeries {
    /// The named KPI's per-interval deltas ("ecn", "cnp", "pfc", ...).
    pub fn kpi(&self, name: &str) -> Option<&[i64]> {
        match name {
            "ecn" => self.ecn_marked_packets.as_deref(),
            "cnp_sent" => self.cnp_sent.as_deref(),
            "cnp_handled" => self.cnp_handled.as_deref(),
            "pfc_rx" => self.pfc_rx_pause.as_deref(),
            "pfc_tx" => self.pfc_tx_pause.as_deref(),
            "retransmissions" => self.retransmissions.as_deref(),
            "out_of_sequence" => self.out_of_sequence.as_deref(),
            "packet_seq_errors" => self.packet_seq_errors.as_deref(),
            _ => None,
        }
    }

    /// The KPI names [`Self::kpi`] knows, in report order.
    pub const KPIS: [&'static str; 8] = [
        "ecn",
        "cnp_sent",
        "cnp_handled",
        "pfc_rx",
        "pfc_tx",
        "retransmissions",
        "out_of_sequence",
        "packet_seq_errors",
    ];
}

/// When marking began in an incast trial, per signal: the end of the first
/// sampled interval with a non-zero delta on any device, relative to the
/// burst start (the earliest scheduled transfer). `exposed` false: no
/// device exposes the signal; `onset_ns` None with `exposed`: none seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarkingOnset {
    /// ECN-CE marks.
    pub ecn: OnsetSignal,
    /// CNPs (sent or handled).
    pub cnp: OnsetSignal,
    /// PAUSE frames (received or sent).
    pub pfc: OnsetSignal,
    /// Sampling interval, ns (the onset's resolution).
    pub interval_ns: u64,
}

/// One signal's onset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OnsetSignal {
    /// Some device exposes the signal.
    pub exposed: bool,
    /// ns after the burst start (negative: before it) of the end of the
    /// first interval with a delta; None: not exposed, or no delta.
    pub onset_ns: Option<i64>,
}

/// IETF 8.3: congestion-control convergence of KV and EP traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConvergenceReport {
    /// KV stream load, percent of the capacity measured in the run.
    pub kv_load_percent: u32,
    /// The KV stream's target rate.
    pub kv_target_gbytes_per_s: Option<f64>,
    /// Rate-series bin, ns.
    pub bin_ns: u64,
    /// Centred moving-mean window used to judge convergence, bins.
    pub smooth_bins: u32,
    /// Band around the steady rate, fraction (0.05).
    pub tolerance: f64,
    /// The steady state: this last fraction of the window (1/3).
    pub steady_fraction: f64,
    /// The joining class is scheduled this long after the trial's start, ns.
    pub join_after_ns: u64,
    /// Counter sampling interval, ns (None: no counter series).
    pub counter_interval_ns: Option<u64>,
    /// One per order: "kv-first" (EP joins) and "ep-first" (KV joins).
    pub orders: Vec<ConvergenceOrder>,
}

/// One order's trials and their intervals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConvergenceOrder {
    /// "kv-first" or "ep-first".
    pub order: String,
    /// The class running from the start ("kv" or "ep").
    pub first_class: String,
    /// The class joining at t0.
    pub joining_class: String,
    /// Every trial.
    pub trials: Vec<ConvergenceTrial>,
    /// Across trials, per class: convergence time (trials that converged),
    /// steady rate, share; and the JFI.
    pub classes: Vec<ClassAcrossTrials>,
    /// JFI of the steady-state allocation across trials.
    pub jfi: Option<TrialInterval>,
}

/// One class across an order's trials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassAcrossTrials {
    /// "kv" or "ep".
    pub class: String,
    /// Convergence time, ns, over the trials that converged.
    pub convergence_ns: Option<TrialInterval>,
    /// Trials in which the class converged, of `trials`.
    pub converged_trials: u32,
    /// Trials.
    pub trials: u32,
    /// Steady-state rate, GB/s.
    pub steady_gbytes_per_s: Option<TrialInterval>,
}

/// One 8.3 trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConvergenceTrial {
    /// Trial number.
    pub trial: u32,
    /// t0: the joining class's first post, ns after the trial's start
    /// (recorded, not the scheduled time).
    pub t0_ns: u64,
    /// End of the window both classes ran in (the earliest of their last
    /// completions and the trial's scheduled end), ns after the start.
    pub window_end_ns: u64,
    /// Start of the steady state, ns after the start.
    pub steady_from_ns: u64,
    /// Per class, in the order kv, ep.
    pub classes: Vec<ClassConvergence>,
    /// Jain index of the classes' steady rates.
    pub jfi: Option<f64>,
    /// Counter deltas over the convergence window (t0 to the later class's
    /// convergence, or the window's end when one did not converge).
    pub window_counters: WindowCounters,
    /// The rate series of each class (bytes per bin, bin 0 at the start).
    pub series: Vec<ClassSeries>,
    /// The counter series of every device.
    pub counter_series: Vec<CounterSeries>,
}

/// One class in one trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassConvergence {
    /// "kv" or "ep".
    pub class: String,
    /// Mean rate over the steady state, GB/s.
    pub steady_gbytes_per_s: Option<f64>,
    /// Its share of the classes' summed steady rates.
    pub steady_share: Option<f64>,
    /// From t0 until the class stayed within the tolerance of its steady
    /// rate, ns; None: not converged.
    pub convergence_ns: Option<u64>,
}

/// A class's rate series in one trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassSeries {
    /// "kv" or "ep".
    pub class: String,
    /// Flows (KV) or ranks (EP) summed into it.
    pub lanes: u32,
    /// The bins.
    pub series: RateSeries,
}

/// Retransmission and loss counters over the convergence window: sums of
/// the counter series' intervals ending inside it, over every device
/// (None: no device exposes the counter, or no counter series).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowCounters {
    /// Window start, ns after the trial's start.
    pub from_ns: u64,
    /// Window end, ns after the trial's start.
    pub to_ns: u64,
    /// Retransmission events.
    pub retransmissions: Option<i64>,
    /// Out-of-sequence packets (losses).
    pub out_of_sequence: Option<i64>,
    /// Sequence-error NAKs.
    pub packet_seq_errors: Option<i64>,
    /// ECN-CE marks.
    pub ecn_marked_packets: Option<i64>,
    /// CNPs sent.
    pub cnp_sent: Option<i64>,
}

impl WindowCounters {
    /// Sums `series` over the intervals ending in `(from_ns, to_ns]`.
    pub fn over(series: &[CounterSeries], from_ns: u64, to_ns: u64) -> WindowCounters {
        let sum = |name: &str| {
            let mut total: Option<i64> = None;
            for s in series {
                if let Some(values) = s.kpi(name) {
                    let part: i64 = s
                        .t_ns
                        .iter()
                        .zip(values)
                        .filter(|(&t, _)| t > from_ns as i64 && t <= to_ns as i64)
                        .map(|(_, &v)| v)
                        .sum();
                    total = Some(total.unwrap_or(0) + part);
                }
            }
            total
        };
        WindowCounters {
            from_ns,
            to_ns,
            retransmissions: sum("retransmissions"),
            out_of_sequence: sum("out_of_sequence"),
            packet_seq_errors: sum("packet_seq_errors"),
            ecn_marked_packets: sum("ecn"),
            cnp_sent: sum("cnp_sent"),
        }
    }
}

/// The onset of each signal in `series` relative to `burst_start_ns` (ns
/// after the trial's start).
pub fn marking_onset(series: &[CounterSeries], burst_start_ns: u64) -> MarkingOnset {
    let signal = |names: &[&str]| {
        let mut exposed = false;
        let mut first: Option<i64> = None;
        for s in series {
            for name in names {
                if let Some(values) = s.kpi(name) {
                    exposed = true;
                    if let Some((&t, _)) = s.t_ns.iter().zip(values).find(|(_, &v)| v > 0) {
                        first = Some(first.map_or(t, |f| f.min(t)));
                    }
                }
            }
        }
        OnsetSignal {
            exposed,
            onset_ns: first.map(|t| t - burst_start_ns as i64),
        }
    };
    MarkingOnset {
        ecn: signal(&["ecn"]),
        cnp: signal(&["cnp_sent", "cnp_handled"]),
        pfc: signal(&["pfc_rx", "pfc_tx"]),
        interval_ns: series.first().map_or(0, |s| s.interval_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> CounterSeries {
        CounterSeries {
            device: "mlx5_0".into(),
            port: 1,
            interval_ns: 1_000_000,
            t_ns: vec![-1_000_000, 0, 1_000_000, 2_000_000, 3_000_000],
            ecn_marked_packets: Some(vec![0, 0, 0, 5, 9]),
            cnp_sent: Some(vec![0, 0, 0, 0, 4]),
            retransmissions: Some(vec![1, 0, 2, 0, 3]),
            ..CounterSeries::default()
        }
    }

    #[test]
    fn onset_is_the_first_interval_with_a_delta() {
        let onset = marking_onset(&[series()], 500_000);
        assert_eq!(onset.ecn.onset_ns, Some(1_500_000));
        assert_eq!(onset.cnp.onset_ns, Some(2_500_000));
        assert!(onset.ecn.exposed);
        assert!(!onset.pfc.exposed);
        assert_eq!(onset.pfc.onset_ns, None);
        assert_eq!(onset.interval_ns, 1_000_000);
    }

    #[test]
    fn window_sums_intervals_ending_inside() {
        let w = WindowCounters::over(&[series(), series()], 0, 2_000_000);
        assert_eq!(w.retransmissions, Some(4));
        assert_eq!(w.ecn_marked_packets, Some(10));
        assert_eq!(w.out_of_sequence, None);
    }
}
