//! Incast (IETF 8.1, 8.2): M prefill ranks each send N_burst transfers to
//! one decode rank, with start times drawn uniformly inside the arrival
//! window T_arrival (seeded, so a run can be repeated exactly).

use std::collections::BTreeMap;

use crate::cluster::{Flow, RankInfo};
use crate::topology::Role;

use super::ranks_interleaved;

/// The flows of `senders` senders into the first decode rank.
pub fn incast_flows(ranks: &[RankInfo], senders: u32, qps: u32) -> Result<Vec<Flow>, String> {
    let prefill = ranks_interleaved(ranks, Role::Prefill);
    let receiver = ranks_interleaved(ranks, Role::Decode)
        .first()
        .map(|r| r.rank)
        .ok_or("incast needs a decode rank: give one node the decode role")?;
    let m = senders as usize;
    if prefill.len() < m {
        return Err(format!(
            "{senders} incast senders need {senders} prefill ranks; the nodes offer {} \
             (raise --ranks-per-node or the topology's `ranks`, or add nodes)",
            prefill.len()
        ));
    }
    Ok((0..m)
        .map(|i| Flow {
            id: i as u32,
            sender: prefill[i].rank,
            receiver,
            qps,
            slot: false,
        })
        .collect())
}

/// Start offsets (ns) of `bursts` transfers per flow, uniform in
/// `[0, window_ns)`, sorted; deterministic in (`seed`, `trial`).
pub fn burst_offsets(
    flows: &[Flow],
    bursts: u32,
    window_ns: u64,
    seed: u64,
    trial: u32,
) -> BTreeMap<u32, Vec<u64>> {
    let mut rng = fastrand::Rng::with_seed(seed ^ (u64::from(trial) << 32 | 0x1ca5));
    flows
        .iter()
        .map(|flow| {
            let mut offsets: Vec<u64> = (0..bursts)
                .map(|_| {
                    if window_ns == 0 {
                        0
                    } else {
                        rng.u64(0..window_ns)
                    }
                })
                .collect();
            offsets.sort_unstable();
            (flow.id, offsets)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::table;

    #[test]
    fn senders_converge_on_one_receiver() {
        let ranks = table(&[(0, Role::Decode, 1), (1, Role::Prefill, 3)]);
        let flows = incast_flows(&ranks, 3, 1).unwrap();
        assert!(flows.iter().all(|f| f.receiver == 0));
        assert_eq!(
            flows.iter().map(|f| f.sender).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(incast_flows(&ranks, 4, 1)
            .unwrap_err()
            .contains("4 prefill"));
        let no_decode = table(&[(0, Role::Prefill, 2)]);
        assert!(incast_flows(&no_decode, 2, 1).is_err());
    }

    #[test]
    fn offsets_fall_inside_the_window_and_repeat_by_seed() {
        let ranks = table(&[(0, Role::Decode, 1), (0, Role::Prefill, 4)]);
        let flows = incast_flows(&ranks, 4, 1).unwrap();
        let a = burst_offsets(&flows, 8, 1_000_000, 7, 0);
        let b = burst_offsets(&flows, 8, 1_000_000, 7, 0);
        let c = burst_offsets(&flows, 8, 1_000_000, 7, 1);
        assert_eq!(a, b);
        assert_ne!(a, c);
        for offsets in a.values() {
            assert_eq!(offsets.len(), 8);
            assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
            assert!(offsets.iter().all(|&o| o < 1_000_000));
        }
        assert!(burst_offsets(&flows, 2, 0, 1, 0)
            .values()
            .flatten()
            .all(|&o| o == 0));
    }
}
