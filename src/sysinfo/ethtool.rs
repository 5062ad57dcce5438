//! The netdev's driver statistics from `ethtool -S <nd>` (PFC pause frames
//! live there, not in the RDMA sysfs counters). The command runs with a
//! 2 s timeout and is killed past it; a missing binary or a driver without
//! statistics is a reason, not an error.

use std::collections::BTreeMap;

use super::command::{run_with_timeout, COMMAND_TIMEOUT};

/// Every numeric statistic of `netdev`, keyed "ethtool/<name>", or why none.
pub(crate) fn read_ethtool_stats(netdev: &str) -> Result<BTreeMap<String, u64>, String> {
    let text = run_with_timeout("ethtool", &["-S", netdev], COMMAND_TIMEOUT)?;
    let stats = parse_ethtool_stats(&text);
    if stats.is_empty() {
        return Err(format!("`ethtool -S {netdev}`: no numeric statistics"));
    }
    Ok(stats)
}

/// Parses "     name: value" lines; the "NIC statistics:" header and any
/// line whose value is not an unsigned integer are skipped.
pub(crate) fn parse_ethtool_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(':')?;
            let name = name.trim();
            let value: u64 = value.trim().parse().ok()?;
            (!name.is_empty()).then(|| (format!("ethtool/{name}"), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlx5_style_output_parses() {
        let text = "NIC statistics:\n     rx_packets: 1234\n     tx_prio3_pause: 7\n     rx_prio3_pause: 0\n     weird: n/a\n";
        let got = parse_ethtool_stats(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got["ethtool/rx_packets"], 1234);
        assert_eq!(got["ethtool/tx_prio3_pause"], 7);
        assert!(!got.contains_key("ethtool/weird"));
        assert!(parse_ethtool_stats("no stats available").is_empty());
    }

    #[test]
    fn ice_names_with_dots_and_indexed_queues_parse() {
        let text = "NIC statistics:\n     rx_priority_3_xoff.nic: 5\n     [0]: rx_packets: 9\n";
        let got = parse_ethtool_stats(text);
        assert_eq!(got["ethtool/rx_priority_3_xoff.nic"], 5);
        assert_eq!(got["ethtool/[0]: rx_packets"], 9);
    }
}
