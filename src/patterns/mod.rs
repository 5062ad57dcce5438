//! Traffic patterns: who sends to whom over how many QPs, and when. Each
//! pattern is one small file that turns the rank table into flows (and, for
//! scheduled patterns, start times). Pure functions: the cluster runtime
//! sets the flows up and the suite turns their tallies into results.

pub mod alltoall;
pub mod incast;
pub mod pairs;

use crate::cluster::RankInfo;
use crate::topology::Role;

/// Ranks of `role`, interleaved across nodes (local 0 of every node, then
/// local 1, ...), so N flows spread over every node that has the role.
pub fn ranks_interleaved(ranks: &[RankInfo], role: Role) -> Vec<&RankInfo> {
    let mut out: Vec<&RankInfo> = ranks.iter().filter(|r| r.role == role).collect();
    out.sort_by_key(|r| (r.local, r.node));
    out
}

#[cfg(test)]
pub(crate) fn table(layout: &[(u32, Role, u32)]) -> Vec<RankInfo> {
    let mut ranks = Vec::new();
    for &(node, role, count) in layout {
        for local in 0..count {
            ranks.push(RankInfo {
                rank: ranks.len() as u32,
                node,
                local,
                role,
                device: format!("dev{node}"),
            });
        }
    }
    ranks
}
