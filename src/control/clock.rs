//! Clocks: the monotonic nanosecond clock every timestamp uses, and the
//! offset between the initiator's and the target's clocks.
//!
//! Target-side latency subtracts an initiator post time from a target
//! completion time. On one host both read the same CLOCK_MONOTONIC (same
//! kernel boot id) and the offset is exactly zero. Across hosts the offset is
//! estimated NTP-style over the control channel: of many probes, the one with
//! the smallest round trip gives offset = t_target − (t_send + t_recv)/2,
//! with error bound ± rtt/2, which the report carries.

use nix::time::{clock_gettime, ClockId};
use serde::{Deserialize, Serialize};

/// Nanoseconds of CLOCK_MONOTONIC.
#[inline]
pub fn monotonic_ns() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// The target clock minus the initiator clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockOffset {
    /// target − initiator, nanoseconds.
    pub offset_ns: i64,
    /// ± bound on the offset's error, nanoseconds (0 when exact).
    pub error_bound_ns: u64,
    /// "same-host" (shared CLOCK_MONOTONIC) or "estimated".
    pub method: String,
}

impl ClockOffset {
    /// The exact offset of two endpoints on one kernel.
    pub fn same_host() -> ClockOffset {
        ClockOffset {
            offset_ns: 0,
            error_bound_ns: 0,
            method: "same-host".into(),
        }
    }
}

/// Estimates the offset from probes `(t_send, t_target, t_recv)`, each in
/// its own clock's nanoseconds. Returns None for no probes.
pub fn estimate_offset(probes: &[(u64, u64, u64)]) -> Option<ClockOffset> {
    let best = probes
        .iter()
        .filter(|(s, _, r)| r >= s)
        .min_by_key(|(s, _, r)| r - s)?;
    let (send, target, recv) = *best;
    let mid = send as i128 + ((recv - send) / 2) as i128;
    Some(ClockOffset {
        offset_ns: (target as i128 - mid) as i64,
        error_bound_ns: (recv - send).div_ceil(2),
        method: "estimated".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_shortest_round_trip() {
        // true offset +1000 ns; the second probe has the shortest RTT (20 ns)
        let probes = [(0, 1100, 200), (500, 1510, 520), (900, 2000, 1300)];
        let est = estimate_offset(&probes).unwrap();
        assert_eq!(est.offset_ns, 1000);
        assert_eq!(est.error_bound_ns, 10);
        assert!(estimate_offset(&[]).is_none());
    }

    #[test]
    fn monotonic_advances() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
    }
}
