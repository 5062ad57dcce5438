//! Judging a short run's results file against the profile's thresholds:
//! pure comparisons, no I/O, so they test on literal reports.
//!
//! Owns which number of a results file each threshold reads: the mean
//! across trials for rates and Jain's index, and the merged distribution of
//! all trials for latency percentiles. It does not run anything.

use crate::results::RunReport;

use super::check::{Check, Status};
use super::profile::{BandwidthTest, LatencyTest, PairsTest, TestSpec};

const GROUP: &str = "tests";

const FIX_BANDWIDTH: &str = "below the SLO: check the port rate and MTU (preflight), PFC/ECN on the lossless priority, NIC and switch port error and pause counters, CPU frequency scaling; confirm with ib_write_bw in the same setup";
const FIX_LATENCY: &str = "above the SLO: look for congestion (ECN marks, PFC pauses, retransmissions in the NIC counters), CPU frequency scaling and C-states, interrupt moderation, and NUMA placement of the test threads (--cores near the NIC)";
const FIX_JAIN: &str = "pairs share the path unevenly: check ECMP hashing of RoCEv2 UDP source ports, DCQCN/ECN settings and per-port counters on the switch";

/// Checks of one test's results: did the run complete, and does every
/// threshold hold.
pub fn judge(test: &TestSpec, report: &RunReport) -> Vec<Check> {
    let label = test.label();
    let mut checks = vec![run_check(&label, report)];
    if report.status != "complete" {
        checks.push(Check::new(
            GROUP,
            format!("{label}: thresholds"),
            Status::Skip,
            "a complete run",
            format!("status {}", report.status),
            "see the run check",
        ));
        return checks;
    }
    match test {
        TestSpec::P2pBandwidth(t) => checks.extend(bandwidth(&label, t, report)),
        TestSpec::P2pLatency(t) => checks.extend(latency(&label, t, report)),
        TestSpec::Pairs(t) => checks.extend(pairs(&label, t, report)),
    }
    checks
}

fn run_check(label: &str, report: &RunReport) -> Check {
    let complete = report.status == "complete";
    Check::new(
        GROUP,
        format!("{label}: run"),
        if complete { Status::Pass } else { Status::Fail },
        "the run completes without error",
        if complete {
            format!("complete ({})", report.test_id)
        } else {
            format!(
                "status {}: {}",
                report.status,
                report.error.as_deref().unwrap_or("no error recorded")
            )
        },
        "the error above names the cause; a transport error (retry exceeded, QP to error state) points at the link, PFC/ECN or the path to the peer",
    )
}

fn at_least(value: f64, min: f64) -> Status {
    if value >= min {
        Status::Pass
    } else {
        Status::Fail
    }
}

fn at_most(value: f64, max: f64) -> Status {
    if value <= max {
        Status::Pass
    } else {
        Status::Fail
    }
}

fn missing(label: &str, what: &str) -> Check {
    Check::new(
        GROUP,
        format!("{label}: {what}"),
        Status::Error,
        format!("{what} in the results file"),
        "absent",
        "the run completed but recorded no such value; report this as an infab bug",
    )
}

fn bandwidth(label: &str, t: &BandwidthTest, report: &RunReport) -> Vec<Check> {
    let Some(gbytes) = report
        .results
        .last()
        .and_then(|c| c.summary.gbytes_per_s.as_ref())
    else {
        return vec![missing(label, "GB/s")];
    };
    vec![Check::new(
        GROUP,
        format!("{label}: GB/s"),
        at_least(gbytes.mean, t.min_gbytes_per_s),
        format!(
            "≥ {} GB/s (mean of {} trials)",
            t.min_gbytes_per_s, t.trials
        ),
        format!("{:.4} GB/s", gbytes.mean),
        FIX_BANDWIDTH,
    )]
}

fn latency(label: &str, t: &LatencyTest, report: &RunReport) -> Vec<Check> {
    let clock = t.clock.flag();
    let Some(summary) = report
        .results
        .last()
        .and_then(|c| c.summary.latency.iter().find(|l| l.clock == clock))
        .map(|l| &l.summary)
    else {
        return vec![missing(label, &format!("{clock} latency"))];
    };
    let mut checks = Vec::new();
    for (name, max_us, seen_ns) in [
        ("P50", t.max_p50_us, summary.p50_ns),
        ("P99", t.max_p99_us, summary.p99_ns),
    ] {
        let Some(max_us) = max_us else { continue };
        let seen_us = seen_ns as f64 / 1000.0;
        checks.push(Check::new(
            GROUP,
            format!("{label}: {name} µs"),
            at_most(seen_us, max_us),
            format!(
                "≤ {max_us} µs ({clock} clock, {} samples merged)",
                summary.count
            ),
            format!("{seen_us:.2} µs"),
            FIX_LATENCY,
        ));
    }
    checks
}

fn pairs(label: &str, t: &PairsTest, report: &RunReport) -> Vec<Check> {
    let Some(point) = report.pairs.iter().find(|p| p.pairs == t.pairs) else {
        return vec![missing(label, &format!("{} pairs point", t.pairs))];
    };
    let mut checks = Vec::new();
    if let Some(min) = t.min_aggregate_gbytes_per_s {
        checks.push(match &point.summary.aggregate_gbytes_per_s {
            Some(agg) => Check::new(
                GROUP,
                format!("{label}: aggregate GB/s"),
                at_least(agg.mean, min),
                format!("≥ {min} GB/s (mean of {} trials)", agg.n),
                format!("{:.4} GB/s", agg.mean),
                FIX_BANDWIDTH,
            ),
            None => missing(label, "aggregate GB/s"),
        });
    }
    if let Some(min) = t.min_jain_index {
        checks.push(match &point.summary.jain_index {
            Some(jfi) => Check::new(
                GROUP,
                format!("{label}: Jain index"),
                at_least(jfi.mean, min),
                format!("≥ {min} (mean of {} trials)", jfi.n),
                format!("{:.4}", jfi.mean),
                FIX_JAIN,
            ),
            None => Check::new(
                GROUP,
                format!("{label}: Jain index"),
                Status::Skip,
                format!("≥ {min}"),
                "undefined for one pair",
                "use pairs ≥ 2 to judge fairness",
            ),
        });
    }
    checks
}

/// The global QP-error check: NIC counter deltas (where the driver has a
/// QP-error counter) plus runs stopped by an error.
pub fn qp_errors(max: u64, counter_errors: Option<i64>, stopped_runs: u64, devices: &str) -> Check {
    let counted = counter_errors.unwrap_or(0).max(0) as u64 + stopped_runs;
    let seen = match counter_errors {
        Some(n) => format!("{n} in counter deltas of {devices}, {stopped_runs} runs stopped by an error"),
        None => format!("counters unknown on {devices} (no QP-error counter), {stopped_runs} runs stopped by an error"),
    };
    let status = if counted > max {
        Status::Fail
    } else if counter_errors.is_none() {
        Status::Warn
    } else {
        Status::Pass
    };
    Check::new(
        "health",
        "QP errors",
        status,
        format!("≤ {max} (draft 4.4: every QP active, no error/reset)"),
        seen,
        if counted > max {
            "QPs went to the error state: check retransmission and sequence-error counters, link flaps, PFC on the lossless priority, and the path MTU"
        } else {
            "the driver exposes no QP-error counter (docs/counters.md); only stopped runs were counted"
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{ClockLatency, ConfigResult, ConfigSummary};
    use crate::stats::{LatencySummary, TrialInterval};

    fn interval(mean: f64, n: usize) -> TrialInterval {
        TrialInterval {
            n,
            mean,
            stdev: None,
            ci95_half_width: None,
            ci95_low: None,
            ci95_high: None,
        }
    }

    fn latency_summary(p50_ns: u64, p99_ns: u64) -> LatencySummary {
        let mut s = LatencySummary::empty();
        s.count = 100;
        s.p50_ns = p50_ns;
        s.p99_ns = p99_ns;
        s
    }

    fn report(status: &str, gbytes: f64, p50_ns: u64, p99_ns: u64) -> RunReport {
        let text = include_str!("../../tests/fixtures/results/bw-write.json");
        let mut report: RunReport = serde_json::from_str(text).unwrap();
        report.status = status.into();
        report.results = vec![ConfigResult {
            msg_bytes: 1 << 20,
            qps: 1,
            wr_bytes: 1 << 20,
            wrs_per_msg: 1,
            background: None,
            status: None,
            trials_completed: None,
            failed_trial: None,
            error: None,
            trials: Vec::new(),
            summary: ConfigSummary {
                trials: 3,
                gbytes_per_s: Some(interval(gbytes, 3)),
                gbits_per_s: None,
                msgs_per_s: None,
                latency: vec![ClockLatency {
                    clock: "initiator".into(),
                    summary: latency_summary(p50_ns, p99_ns),
                }],
                p50_ns: crate::results::PerClock::new(),
                p99_ns: crate::results::PerClock::new(),
                jain_index: None,
                verify_mismatches: None,
            },
        }];
        report
    }

    fn spec(text: &str) -> TestSpec {
        let profile = format!("[target]\ndevice = \"d\"\n[[tests]]\n{text}");
        super::super::profile::Profile::parse(&profile, std::path::Path::new("t.toml"))
            .unwrap()
            .tests
            .remove(0)
    }

    #[test]
    fn bandwidth_threshold_is_a_floor() {
        let t = spec("kind = \"p2p-bandwidth\"\nsize = \"1M\"\nmin_gbytes_per_s = 0.5\n");
        let checks = judge(&t, &report("complete", 0.6, 0, 0));
        assert_eq!(checks.len(), 2);
        assert!(
            checks.iter().all(|c| c.status == Status::Pass),
            "{checks:?}"
        );
        let checks = judge(&t, &report("complete", 0.4, 0, 0));
        assert_eq!(checks[1].status, Status::Fail);
        assert!(checks[1].expected.contains("≥ 0.5"));
        assert!(checks[1].seen.contains("0.4000"));
        assert!(!checks[1].fix.is_empty());
    }

    #[test]
    fn latency_thresholds_are_ceilings_in_microseconds() {
        let t = spec("kind = \"p2p-latency\"\nsize = \"1M\"\nmax_p50_us = 10\nmax_p99_us = 20\n");
        let checks = judge(&t, &report("complete", 1.0, 9_000, 25_000));
        let status: Vec<Status> = checks.iter().map(|c| c.status).collect();
        assert_eq!(status, vec![Status::Pass, Status::Pass, Status::Fail]);
        assert_eq!(checks[2].seen, "25.00 µs");
    }

    #[test]
    fn a_stopped_run_fails_and_skips_its_thresholds() {
        let t = spec("kind = \"p2p-bandwidth\"\nsize = \"1M\"\nmin_gbytes_per_s = 0.5\n");
        let mut r = report("partial", 9.0, 0, 0);
        r.error = Some("retry exceeded".into());
        let checks = judge(&t, &r);
        assert_eq!(checks[0].status, Status::Fail);
        assert!(checks[0].seen.contains("retry exceeded"));
        assert_eq!(checks[1].status, Status::Skip);
    }

    #[test]
    fn qp_errors_count_counters_and_stopped_runs() {
        assert_eq!(qp_errors(0, Some(0), 0, "rxe0").status, Status::Pass);
        assert_eq!(qp_errors(0, Some(2), 0, "rxe0").status, Status::Fail);
        assert_eq!(qp_errors(0, None, 0, "rxe0").status, Status::Warn);
        assert_eq!(qp_errors(0, None, 1, "rxe0").status, Status::Fail);
        assert_eq!(qp_errors(3, Some(2), 1, "rxe0").status, Status::Pass);
    }
}
