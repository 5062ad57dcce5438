//! Counter series: a thread samples every device's counters at a fixed
//! interval while a trial runs, so ECN marks, CNPs and pauses have times
//! (IETF 8.1/8.2 onset, 8.3 convergence window).
//!
//! Each sample reads sysfs (`counters/`, `hw_counters/`); `ethtool -S`
//! (where most NICs put PFC pause frames) runs a command per sample, so it
//! is read only at intervals of [`ETHTOOL_MIN_INTERVAL`] and more. The
//! series holds the KPIs of [`CounterSnapshot::delta`] per interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::control::monotonic_ns;
use crate::results::{CounterKpis, CounterSeries, DeviceFacts};
use crate::stats::MAX_SERIES_BINS;

use super::counters::CounterSnapshot;
use super::root::HostRoot;

/// Shortest interval at which `ethtool -S` is read too.
pub const ETHTOOL_MIN_INTERVAL: Duration = Duration::from_millis(50);

/// Shortest sampling interval accepted.
pub const MIN_COUNTER_INTERVAL: Duration = Duration::from_millis(1);

/// A running sampler; [`CounterSampler::finish`] stops it and so does
/// dropping it (a trial that failed), so no thread outlives its trial.
#[derive(Debug)]
pub struct CounterSampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<CounterSeries>>>,
}

impl CounterSampler {
    /// Starts sampling `devices` every `interval` (at least
    /// [`MIN_COUNTER_INTERVAL`]); times are kept relative to `origin_ns`
    /// (the trial's common start, CLOCK_MONOTONIC).
    pub fn start(
        node: u32,
        devices: Vec<DeviceFacts>,
        origin_ns: u64,
        interval: Duration,
    ) -> CounterSampler {
        let ports = devices
            .into_iter()
            .map(|d| Port {
                device: d.name,
                port: d.port,
                netdev: d.gid.netdev,
            })
            .collect();
        CounterSampler::start_on(HostRoot::live(), node, ports, origin_ns, interval)
    }

    /// [`CounterSampler::start`] on any root (tests use a fixture tree).
    fn start_on(
        root: HostRoot,
        node: u32,
        ports: Vec<Port>,
        origin_ns: u64,
        interval: Duration,
    ) -> CounterSampler {
        let interval = interval.max(MIN_COUNTER_INTERVAL);
        let root = HostRoot {
            run_commands: root.run_commands && interval >= ETHTOOL_MIN_INTERVAL,
            ..root
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle =
            std::thread::spawn(move || sample(&root, node, &ports, origin_ns, interval, &flag));
        CounterSampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the thread (after one last sample) and returns one series per
    /// device.
    pub fn finish(mut self) -> Vec<CounterSeries> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for CounterSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// One device port to sample.
#[derive(Debug, Clone)]
struct Port {
    device: String,
    port: u8,
    netdev: Option<String>,
}

fn snapshot(root: &HostRoot, p: &Port) -> CounterSnapshot {
    CounterSnapshot::take(root, &p.device, p.port, p.netdev.as_deref())
}

fn sample(
    root: &HostRoot,
    node: u32,
    devices: &[Port],
    origin_ns: u64,
    interval: Duration,
    stop: &AtomicBool,
) -> Vec<CounterSeries> {
    let mut out: Vec<CounterSeries> = devices
        .iter()
        .map(|d| CounterSeries {
            node,
            device: d.device.clone(),
            port: d.port,
            interval_ns: interval.as_nanos() as u64,
            ethtool: root.run_commands,
            ..CounterSeries::default()
        })
        .collect();
    let mut columns: Vec<Vec<Vec<Option<i64>>>> = vec![vec![Vec::new(); 8]; devices.len()];
    let mut before: Vec<CounterSnapshot> = devices.iter().map(|d| snapshot(root, d)).collect();
    let step = interval.as_nanos() as u64;
    let mut next = monotonic_ns() + step;
    loop {
        let last = stop.load(Ordering::Relaxed);
        if !last {
            let now = monotonic_ns();
            if next > now {
                // short sleeps, so a stop is noticed within a millisecond
                std::thread::sleep(Duration::from_nanos((next - now).min(1_000_000)));
                continue;
            }
            next += step;
        }
        let t = monotonic_ns() as i64 - origin_ns as i64;
        for (i, device) in devices.iter().enumerate() {
            let after = snapshot(root, device);
            let kpis = before[i].delta(&after).kpis;
            for (column, value) in columns[i].iter_mut().zip(kpi_values(&kpis)) {
                column.push(value);
            }
            out[i].t_ns.push(t);
            before[i] = after;
        }
        if last || out.first().is_some_and(|s| s.t_ns.len() >= MAX_SERIES_BINS) {
            break;
        }
    }
    for (series, columns) in out.iter_mut().zip(columns) {
        let mut columns = columns
            .into_iter()
            .map(|c| c.into_iter().collect::<Option<Vec<i64>>>());
        let mut take = || columns.next().flatten();
        series.ecn_marked_packets = take();
        series.cnp_sent = take();
        series.cnp_handled = take();
        series.pfc_rx_pause = take();
        series.pfc_tx_pause = take();
        series.retransmissions = take();
        series.out_of_sequence = take();
        series.packet_seq_errors = take();
    }
    out
}

/// The KPIs a series keeps, in [`CounterSeries`] field order.
fn kpi_values(k: &CounterKpis) -> [Option<i64>; 8] {
    [
        k.ecn_marked_packets,
        k.cnp_sent,
        k.cnp_handled,
        k.pfc_rx_pause,
        k.pfc_tx_pause,
        k.retransmissions,
        k.out_of_sequence,
        k.packet_seq_errors,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_deltas_per_interval_and_says_what_is_not_exposed() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot {
            sys: dir.path().join("sys"),
            run_commands: false,
            ..HostRoot::live()
        };
        let hw = root.ib_port("mlx5_0", 1).join("hw_counters");
        std::fs::create_dir_all(&hw).unwrap();
        // written whole (a rename), as sysfs reads never see half a value
        let set = |value: &str| {
            let tmp = dir.path().join("value");
            std::fs::write(&tmp, value).unwrap();
            std::fs::rename(&tmp, hw.join("np_ecn_marked_roce_packets")).unwrap();
        };
        set("100\n");
        let origin = monotonic_ns();
        let sampler = CounterSampler::start_on(
            root,
            3,
            vec![Port {
                device: "mlx5_0".into(),
                port: 1,
                netdev: None,
            }],
            origin,
            Duration::from_millis(2),
        );
        std::thread::sleep(Duration::from_millis(20));
        set("130\n");
        std::thread::sleep(Duration::from_millis(20));
        set("135\n");
        std::thread::sleep(Duration::from_millis(10));
        let series = sampler.finish();
        assert_eq!(series.len(), 1);
        let s = &series[0];
        assert_eq!((s.node, s.device.as_str(), s.port), (3, "mlx5_0", 1));
        assert!(!s.ethtool);
        assert!(s.t_ns.len() >= 5, "{} samples", s.t_ns.len());
        assert!(s.t_ns.windows(2).all(|w| w[0] <= w[1]));
        let ecn = s.ecn_marked_packets.as_ref().expect("ECN is exposed");
        assert_eq!(ecn.len(), s.t_ns.len());
        assert_eq!(ecn.iter().sum::<i64>(), 35);
        assert_eq!(ecn.iter().filter(|&&v| v > 0).count(), 2);
        // no CNP or PFC counter in the tree: not exposed, not zero
        assert_eq!(s.cnp_sent, None);
        assert_eq!(s.pfc_rx_pause, None);
    }
}
