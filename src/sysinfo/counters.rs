//! NIC counter snapshots: every file of a port's `counters/` and
//! `hw_counters/` folders, plus `ethtool -S` of its netdev, read once before
//! and once after a trial; [`CounterSnapshot::delta`] subtracts them into a
//! [`CounterDeltas`] and maps known names to the draft's KPIs (kpi.rs).
//!
//! A snapshot costs one small file read per counter (a few dozen on mlx5,
//! 15 on rxe; mlx5's reads go to firmware, about 10-100 µs each) plus, when a
//! netdev is given, one `ethtool` process (a few ms). Pass `netdev: None` to
//! skip ethtool (PFC pause counters then stay unknown).
//!
//! Counters that go backwards (a driver reload, `rdma statistic` reset, or a
//! 32-bit counter wrapping) have no knowable delta: they are left out of
//! `raw`, named in `unavailable`, and any KPI built from them is `None`.
//! Wraps are not guessed, because a wrap and a reset look the same.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::Instant;

use crate::results::CounterDeltas;

use super::ethtool::read_ethtool_stats;
use super::kpi::map_kpis;
use super::root::{read_parsed, HostRoot};

/// Counter values of one device port at one instant.
#[derive(Debug, Clone)]
pub struct CounterSnapshot {
    device: String,
    port: u8,
    netdev: Option<String>,
    taken_at: Instant,
    values: BTreeMap<String, u64>,
    unavailable: Vec<String>,
}

impl CounterSnapshot {
    /// A snapshot of a device a run opened, on this host (live /sys), its
    /// netdev's `ethtool -S` included when verbs named the netdev.
    pub fn of_device(facts: &crate::results::DeviceFacts) -> Self {
        CounterSnapshot::take(
            &HostRoot::live(),
            &facts.name,
            facts.port,
            facts.gid.netdev.as_deref(),
        )
    }

    /// Reads every counter of `device` port `port`, and `ethtool -S netdev`
    /// when a netdev is given and `root.run_commands`. Never fails: what
    /// cannot be read is listed in [`Self::unavailable`].
    pub fn take(root: &HostRoot, device: &str, port: u8, netdev: Option<&str>) -> Self {
        let mut values = BTreeMap::new();
        let mut unavailable = Vec::new();
        let port_dir = root.ib_port(device, port);
        for source in ["counters", "hw_counters"] {
            read_counter_dir(
                &port_dir.join(source),
                source,
                &mut values,
                &mut unavailable,
            );
        }
        match netdev {
            None => unavailable.push("ethtool: skipped (no netdev given)".to_string()),
            Some(_) if !root.run_commands => {
                unavailable.push("ethtool: skipped (commands off)".to_string())
            }
            Some(nd) => match read_ethtool_stats(nd) {
                Ok(stats) => values.extend(stats),
                Err(why) => unavailable.push(format!("ethtool: {why}")),
            },
        }
        Self {
            device: device.to_string(),
            port,
            netdev: netdev.map(str::to_string),
            taken_at: Instant::now(),
            values,
            unavailable,
        }
    }

    /// Every counter read, keyed `counters/<name>`, `hw_counters/<name>` or
    /// `ethtool/<name>`.
    pub fn values(&self) -> &BTreeMap<String, u64> {
        &self.values
    }

    /// What could not be read, and why.
    pub fn unavailable(&self) -> &[String] {
        &self.unavailable
    }

    /// after − self for every counter in both, with the KPIs. Never fails;
    /// `after` should be a later snapshot of the same port (if not, `raw` is
    /// empty and `unavailable` says so).
    pub fn delta(&self, after: &CounterSnapshot) -> CounterDeltas {
        let mut unavailable = Vec::new();
        for line in self.unavailable.iter().chain(&after.unavailable) {
            if !unavailable.contains(line) {
                unavailable.push(line.clone());
            }
        }
        let mut raw = BTreeMap::new();
        let mut unknown = BTreeSet::new();
        if (self.device.as_str(), self.port) != (after.device.as_str(), after.port) {
            unavailable.push(format!(
                "snapshots of different ports ({} port {} and {} port {}): no deltas",
                self.device, self.port, after.device, after.port
            ));
        } else {
            for (key, &before) in &self.values {
                match after.values.get(key) {
                    Some(&now) if now >= before => {
                        raw.insert(key.clone(), i64::try_from(now - before).unwrap_or(i64::MAX));
                    }
                    Some(&now) => {
                        unknown.insert(key.clone());
                        unavailable.push(format!(
                            "{key}: went backwards ({before} -> {now}): reset or wrapped, delta unknown"
                        ));
                    }
                    None => {
                        unknown.insert(key.clone());
                        unavailable.push(format!("{key}: read before the trial but not after"));
                    }
                }
            }
            for key in after
                .values
                .keys()
                .filter(|k| !self.values.contains_key(*k))
            {
                unknown.insert(key.clone());
                unavailable.push(format!("{key}: read after the trial but not before"));
            }
        }
        let kpis = map_kpis(&raw, &unknown);
        CounterDeltas {
            device: self.device.clone(),
            port: self.port,
            netdev: self.netdev.clone(),
            elapsed_ns: u64::try_from(
                after
                    .taken_at
                    .saturating_duration_since(self.taken_at)
                    .as_nanos(),
            )
            .unwrap_or(u64::MAX),
            raw,
            unavailable,
            kpis,
        }
    }
}

/// Reads every counter file in `dir` as "<source>/<name>".
fn read_counter_dir(
    dir: &Path,
    source: &str,
    values: &mut BTreeMap<String, u64>,
    unavailable: &mut Vec<String>,
) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            unavailable.push(format!("{source}: {} absent", dir.display()));
            return;
        }
        Err(e) => {
            unavailable.push(format!("{source}: {} unreadable ({e})", dir.display()));
            return;
        }
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `hw_counters/lifespan` is the cache lifetime in ms, a knob, not a counter.
        if name == "lifespan" || entry.path().is_dir() {
            continue;
        }
        match read_parsed::<u64>(&entry.path()) {
            Ok(v) => {
                values.insert(format!("{source}/{name}"), v);
            }
            Err(why) => unavailable.push(format!("{source}/{name}: {why}")),
        }
    }
}
