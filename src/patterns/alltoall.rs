//! AllToAll (IETF 7.x): the first N EP ranks (taken across nodes in turn)
//! each send to every other one. Flow id = i·N + j for EP indices i → j,
//! so the byte matrix row/column of a flow is in its id.

use crate::cluster::{Flow, RankInfo};
use crate::topology::Role;

use super::ranks_interleaved;

/// The flows of an EP group of `ep` ranks with `qps` QPs per peer, and the
/// global rank of each EP index.
pub fn alltoall_flows(
    ranks: &[RankInfo],
    ep: u32,
    qps: u32,
) -> Result<(Vec<Flow>, Vec<u32>), String> {
    let members: Vec<u32> = ranks_interleaved(ranks, Role::Ep)
        .iter()
        .map(|r| r.rank)
        .collect();
    let n = ep as usize;
    if n < 2 {
        return Err("an AllToAll needs at least 2 EP ranks".into());
    }
    if members.len() < n {
        return Err(format!(
            "EP size {ep} needs {ep} ep ranks; the nodes offer {} (give nodes the `ep` role, raise --ranks-per-node, or add nodes)",
            members.len()
        ));
    }
    let members = members[..n].to_vec();
    let mut flows = Vec::with_capacity(n * (n - 1));
    for i in 0..n {
        for j in 0..n {
            if i != j {
                flows.push(Flow {
                    id: (i * n + j) as u32,
                    sender: members[i],
                    receiver: members[j],
                    qps,
                    slot: false,
                });
            }
        }
    }
    Ok((flows, members))
}

/// The EP indices `(i, j)` of a flow id in a group of `ep` ranks.
pub fn flow_pair(id: u32, ep: u32) -> (u32, u32) {
    (id / ep, id % ep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::table;

    #[test]
    fn every_rank_to_every_other() {
        let ranks = table(&[(0, Role::Ep, 2), (1, Role::Ep, 2)]);
        let (flows, members) = alltoall_flows(&ranks, 4, 2).unwrap();
        assert_eq!(flows.len(), 12);
        // interleaved: node 0, node 1, node 0, node 1
        assert_eq!(members, vec![0, 2, 1, 3]);
        for f in &flows {
            let (i, j) = flow_pair(f.id, 4);
            assert_ne!(i, j);
            assert_eq!(f.sender, members[i as usize]);
            assert_eq!(f.receiver, members[j as usize]);
        }
        assert!(alltoall_flows(&ranks, 5, 1)
            .unwrap_err()
            .contains("EP size 5"));
        assert!(alltoall_flows(&ranks, 1, 1).is_err());
    }
}
