//! A pure token-bucket pacer for rate-paced background streams (draft §5.2:
//! background traffic at 25/50/75/90 % of fabric capacity; §10.4: 0–95 % in
//! 5 % steps; §7.4: KV transfers at a sustained rate).
//!
//! The pacer never reads a clock: the caller passes `now_ns` from whatever
//! clock its posting loop uses, so the arithmetic is exact and testable. It
//! owns the rate arithmetic only, not the posting loop, sleeping or capacity
//! measurement.
//!
//! # Arithmetic
//!
//! Credit is kept in integer units of 10⁻⁹ byte: a rate of `r` bytes/s adds
//! exactly `r` units per nanosecond, so long runs do not drift. The bucket
//! starts full (`burst_bytes` of credit, as RFC 2697's token buckets do) and
//! holds at most `burst_bytes`; over any interval of length `T` the pacer
//! releases at most `burst_bytes + r·T` bytes.
//!
//! A message larger than the burst is released once the bucket is full and
//! leaves the bucket in debt, so it never stalls a loop; the long-run rate
//! stays exact and the bound becomes `max(burst, msg) + r·T`. Pick
//! `burst_bytes >= msg_bytes` to keep the bound at `burst_bytes`.

use crate::workload::WorkloadError;

const UNITS_PER_BYTE: i128 = 1_000_000_000;

/// A token bucket that releases at most `rate_bytes_per_s` on average.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    rate_bytes_per_s: u64,
    burst_bytes: u64,
    /// Credit in 10⁻⁹ byte; negative after an oversize message.
    credit: i128,
    /// The time up to which credit has been added.
    last_ns: u64,
}

impl TokenBucket {
    /// A full bucket refilling at `rate_bytes_per_s` and holding at most
    /// `burst_bytes`. The clock starts at `now_ns = 0`; pass times from the
    /// same clock, offset so the stream starts near 0, or call
    /// [`Self::starting_at`]. Fails when either is 0.
    pub fn new(rate_bytes_per_s: u64, burst_bytes: u64) -> Result<Self, WorkloadError> {
        Self::starting_at(rate_bytes_per_s, burst_bytes, 0)
    }

    /// As [`Self::new`], with the bucket's clock starting at `start_ns`.
    pub fn starting_at(
        rate_bytes_per_s: u64,
        burst_bytes: u64,
        start_ns: u64,
    ) -> Result<Self, WorkloadError> {
        if rate_bytes_per_s == 0 {
            return Err(WorkloadError::PacerParam {
                field: "rate_bytes_per_s",
                value: 0.0,
            });
        }
        if burst_bytes == 0 {
            return Err(WorkloadError::PacerParam {
                field: "burst_bytes",
                value: 0.0,
            });
        }
        Ok(Self {
            rate_bytes_per_s,
            burst_bytes,
            credit: i128::from(burst_bytes) * UNITS_PER_BYTE,
            last_ns: start_ns,
        })
    }

    /// The refill rate.
    pub fn rate_bytes_per_s(&self) -> u64 {
        self.rate_bytes_per_s
    }

    /// The bucket size.
    pub fn burst_bytes(&self) -> u64 {
        self.burst_bytes
    }

    /// For a spinning loop: takes `msg_bytes` and returns true when the
    /// message may be posted at `now_ns`; returns false and takes nothing
    /// otherwise. Times earlier than the bucket's clock add no credit.
    pub fn try_take(&mut self, now_ns: u64, msg_bytes: u64) -> bool {
        self.refill(now_ns);
        if self.credit >= self.threshold(msg_bytes) {
            self.credit -= i128::from(msg_bytes) * UNITS_PER_BYTE;
            true
        } else {
            false
        }
    }

    /// How long after `now_ns` a [`Self::try_take`] of `msg_bytes` would
    /// first succeed (0: now), without taking anything: for a loop that
    /// sleeps between refusals instead of spinning.
    pub fn wait_ns(&mut self, now_ns: u64, msg_bytes: u64) -> u64 {
        self.refill(now_ns);
        let deficit = self.threshold(msg_bytes) - self.credit;
        if deficit <= 0 {
            return 0;
        }
        let rate = i128::from(self.rate_bytes_per_s);
        u64::try_from((deficit + rate - 1) / rate).unwrap_or(u64::MAX)
    }

    /// For a sleeping loop: reserves `msg_bytes` and returns the earliest time
    /// (≥ `now_ns`, ns) at which the message may be posted; the caller sleeps
    /// until then and posts. Successive calls queue messages back to back,
    /// even when the caller passes the same `now_ns` again.
    pub fn ready_at_ns(&mut self, now_ns: u64, msg_bytes: u64) -> u64 {
        self.refill(now_ns);
        let start_ns = now_ns.max(self.last_ns);
        let deficit = self.threshold(msg_bytes) - self.credit;
        let ready_ns = if deficit <= 0 {
            start_ns
        } else {
            let rate = i128::from(self.rate_bytes_per_s);
            let wait_ns = (deficit + rate - 1) / rate;
            start_ns.saturating_add(u64::try_from(wait_ns).unwrap_or(u64::MAX))
        };
        self.refill(ready_ns);
        self.credit -= i128::from(msg_bytes) * UNITS_PER_BYTE;
        ready_ns
    }

    /// Credit needed to release `msg_bytes`: the message, or a full bucket
    /// for a message larger than the bucket.
    fn threshold(&self, msg_bytes: u64) -> i128 {
        i128::from(msg_bytes.min(self.burst_bytes)) * UNITS_PER_BYTE
    }

    fn refill(&mut self, now_ns: u64) {
        if now_ns <= self.last_ns {
            return;
        }
        let cap = i128::from(self.burst_bytes) * UNITS_PER_BYTE;
        let added = i128::from(now_ns - self.last_ns) * i128::from(self.rate_bytes_per_s);
        self.credit = (self.credit + added).min(cap);
        self.last_ns = now_ns;
    }
}

/// The bucket size of a paced stream: 20 ms of credit, but at least one
/// message per QP. The load the draft asks for is a rate over the trial; a
/// thread descheduled for a few ms (or a window that was full) catches up
/// within 20 ms instead of losing the credit, which kept SoftRoCE runs
/// 20–40 % under target with a 1 ms bucket. The catch-up burst is at most
/// 20 ms of the target rate.
pub fn paced_burst_bytes(rate_bytes_per_s: u64, msg_bytes: u64, qps: u32) -> u64 {
    (rate_bytes_per_s / 50).max(msg_bytes * u64::from(qps.max(1)))
}

/// The pacing rate for a background load of `fraction` of a measured
/// capacity, `rate = fraction × capacity`, rounded down to whole bytes/s.
///
/// `fraction` must be in (0, 1.0]: rates above 100 % of capacity cannot be
/// paced, and a 0 % load is no stream at all. `capacity_bytes_per_s` must be
/// a positive finite number.
pub fn fraction_of_capacity(
    fraction: f64,
    capacity_bytes_per_s: f64,
) -> Result<u64, WorkloadError> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(WorkloadError::LoadFraction(fraction));
    }
    if !(capacity_bytes_per_s.is_finite() && capacity_bytes_per_s >= 1.0) {
        return Err(WorkloadError::PacerParam {
            field: "capacity_bytes_per_s",
            value: capacity_bytes_per_s,
        });
    }
    let rate = (fraction * capacity_bytes_per_s).floor();
    if rate < 1.0 {
        return Err(WorkloadError::PacerParam {
            field: "rate_bytes_per_s",
            value: rate,
        });
    }
    Ok(rate as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_twenty_milliseconds_or_a_message_per_qp() {
        assert_eq!(paced_burst_bytes(10_000_000_000, 65_536, 4), 200_000_000);
        assert_eq!(paced_burst_bytes(1_000_000, 65_536, 4), 4 * 65_536);
    }

    const SECOND_NS: u64 = 1_000_000_000;

    #[test]
    fn sleeping_loop_hits_the_rate() {
        // 12.5 GB/s (100 Gb/s) of 64 KiB messages for 10 simulated seconds.
        let rate = 12_500_000_000;
        let msg = 65_536;
        let mut bucket = TokenBucket::new(rate, 4 * msg).unwrap();
        let (mut now, mut sent) = (0, 0u64);
        loop {
            now = bucket.ready_at_ns(now, msg);
            if now >= 10 * SECOND_NS {
                break;
            }
            sent += msg;
        }
        let achieved = sent as f64 / 10.0;
        assert!((achieved / rate as f64 - 1.0).abs() < 0.01, "{achieved}");
    }

    #[test]
    fn spinning_loop_hits_the_rate_and_respects_the_burst() {
        // 1 GB/s of 4000-byte messages, polled every 700 ns, for 2 s.
        let rate = 1_000_000_000;
        let (msg, burst) = (4_000, 16_000);
        let mut bucket = TokenBucket::new(rate, burst).unwrap();
        let mut posts = Vec::new();
        let mut now = 0;
        while now < 2 * SECOND_NS {
            while bucket.try_take(now, msg) {
                posts.push(now);
            }
            now += 700;
        }
        let achieved = posts.len() as f64 * msg as f64 / 2.0;
        assert!((achieved / rate as f64 - 1.0).abs() < 0.01, "{achieved}");
        // Any window [t, t + w] releases at most burst + rate·w bytes.
        for w in [0u64, 1_000, 10_000, 1_000_000] {
            let mut start = 0;
            for end in 0..posts.len() {
                while posts[end] - posts[start] > w {
                    start += 1;
                }
                let bytes = (end - start + 1) as u64 * msg;
                assert!(
                    bytes <= burst + rate * w / SECOND_NS,
                    "window {w} ns: {bytes}"
                );
            }
        }
    }

    #[test]
    fn full_bucket_releases_one_burst_at_once() {
        let mut bucket = TokenBucket::new(1_000, 3_000).unwrap();
        assert!(bucket.try_take(0, 1_000));
        assert!(bucket.try_take(0, 1_000));
        assert!(bucket.try_take(0, 1_000));
        assert!(!bucket.try_take(0, 1_000));
        // One second later exactly one more message fits.
        assert!(!bucket.try_take(SECOND_NS - 1, 1_000));
        assert!(bucket.try_take(SECOND_NS, 1_000));
        assert!(!bucket.try_take(SECOND_NS, 1));
    }

    #[test]
    fn reservations_queue_back_to_back() {
        let mut bucket = TokenBucket::new(1_000, 1_000).unwrap();
        assert_eq!(bucket.ready_at_ns(0, 1_000), 0);
        assert_eq!(bucket.ready_at_ns(0, 1_000), SECOND_NS);
        assert_eq!(bucket.ready_at_ns(0, 500), SECOND_NS + SECOND_NS / 2);
        // After a long idle the bucket is full again, but no fuller.
        assert_eq!(bucket.ready_at_ns(100 * SECOND_NS, 1_000), 100 * SECOND_NS);
        assert_eq!(
            bucket.ready_at_ns(100 * SECOND_NS, 1),
            100 * SECOND_NS + 1_000_000
        );
    }

    #[test]
    fn oversize_message_waits_for_a_full_bucket_then_owes() {
        let mut bucket = TokenBucket::new(1_000, 1_000).unwrap();
        assert_eq!(bucket.ready_at_ns(0, 3_000), 0);
        // The debt of 2000 bytes plus the next 1000 take 3 s to earn.
        assert_eq!(bucket.ready_at_ns(0, 1_000), 3 * SECOND_NS);
    }

    #[test]
    fn rejects_zero_rate_and_burst() {
        assert!(matches!(
            TokenBucket::new(0, 1),
            Err(WorkloadError::PacerParam {
                field: "rate_bytes_per_s",
                ..
            })
        ));
        assert!(matches!(
            TokenBucket::new(1, 0),
            Err(WorkloadError::PacerParam {
                field: "burst_bytes",
                ..
            })
        ));
    }

    #[test]
    fn fraction_of_capacity_checks_the_range() {
        assert_eq!(fraction_of_capacity(0.5, 12.5e9).unwrap(), 6_250_000_000);
        assert_eq!(fraction_of_capacity(1.0, 1000.0).unwrap(), 1000);
        for bad in [0.0, -0.25, 1.01, 25.0, f64::NAN, f64::INFINITY] {
            let err = fraction_of_capacity(bad, 12.5e9).unwrap_err();
            assert!(matches!(err, WorkloadError::LoadFraction(_)), "{bad}");
        }
        let text = fraction_of_capacity(1.5, 12.5e9).unwrap_err().to_string();
        assert!(text.contains("1.5") && text.contains("100%"), "{text}");
        assert!(fraction_of_capacity(0.5, 0.0).is_err());
        assert!(fraction_of_capacity(0.5, f64::NAN).is_err());
        assert!(fraction_of_capacity(1e-12, 1.0).is_err());
    }

    #[test]
    fn wait_ns_is_the_time_until_the_next_take() {
        // 1 GB/s, 1 MB bucket: empty it, then 1 MB needs 1 ms
        let mut b = TokenBucket::new(1_000_000_000, 1_000_000).unwrap();
        assert_eq!(b.wait_ns(0, 1_000_000), 0);
        assert!(b.try_take(0, 1_000_000));
        assert_eq!(b.wait_ns(0, 1_000_000), 1_000_000);
        assert_eq!(b.wait_ns(400_000, 1_000_000), 600_000);
        assert!(!b.try_take(999_999, 1_000_000));
        assert!(b.try_take(1_000_000, 1_000_000));
    }
}
