//! Concurrent pairs (IETF 5.3): pair i is the i-th prefill rank streaming
//! to the i-th decode rank, ranks taken across nodes in turn.

use crate::cluster::{Flow, RankInfo};
use crate::topology::Role;

use super::ranks_interleaved;

/// The flows of `pairs` pairs with `qps` QPs each.
pub fn pair_flows(ranks: &[RankInfo], pairs: u32, qps: u32) -> Result<Vec<Flow>, String> {
    let senders = ranks_interleaved(ranks, Role::Prefill);
    let receivers = ranks_interleaved(ranks, Role::Decode);
    let n = pairs as usize;
    if senders.len() < n || receivers.len() < n {
        return Err(format!(
            "{pairs} pairs need {pairs} prefill and {pairs} decode ranks; the nodes offer {} and {} \
             (raise --ranks-per-node or the topology's `ranks`, or add nodes)",
            senders.len(),
            receivers.len()
        ));
    }
    Ok((0..n)
        .map(|i| Flow {
            id: i as u32,
            sender: senders[i].rank,
            receiver: receivers[i].rank,
            qps,
            slot: false,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::table;

    #[test]
    fn pairs_spread_over_nodes() {
        // node 0: 2 decode; node 1 and 2: 2 prefill each
        let ranks = table(&[
            (0, Role::Decode, 2),
            (1, Role::Prefill, 2),
            (2, Role::Prefill, 2),
        ]);
        let flows = pair_flows(&ranks, 2, 4).unwrap();
        assert_eq!(flows.len(), 2);
        // first sender on node 1, second on node 2
        assert_eq!(ranks[flows[0].sender as usize].node, 1);
        assert_eq!(ranks[flows[1].sender as usize].node, 2);
        assert_eq!(flows[1].receiver, 1);
        assert!(flows.iter().all(|f| f.qps == 4));
        let err = pair_flows(&ranks, 3, 1).unwrap_err();
        assert!(err.contains("3 pairs need"), "{err}");
    }
}
