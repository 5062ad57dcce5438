//! Throughput from raw counts: bytes and messages moved in a measured time.
//!
//! Decimal units throughout (GB = 10⁹ bytes, Gb = 10⁹ bits) because link
//! speeds (100/200/400 GbE) are decimal, so `gbits_per_s` compares directly
//! with the NIC's line rate. [`Throughput::mib_per_s`] exists only to line up
//! with perftest output, which uses MiB/s (2²⁰ bytes per second).

use serde::{Deserialize, Serialize};

/// Bytes per MiB, perftest's unit.
const BYTES_PER_MIB: f64 = 1_048_576.0;

/// Bytes and messages moved over a time span, with the derived rates.
///
/// Every field is always finite, so the struct can be written to JSON as is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Throughput {
    /// Payload bytes moved.
    pub bytes: u64,
    /// Messages (work requests) completed.
    pub messages: u64,
    /// Measured duration in seconds; 0.0 when the input duration was not a
    /// positive finite number.
    pub seconds: f64,
    /// Gigabytes per second, `bytes / seconds / 1e9`.
    pub gbytes_per_s: f64,
    /// Gigabits per second, `8 · bytes / seconds / 1e9`.
    pub gbits_per_s: f64,
    /// Messages per second, `messages / seconds`.
    pub msgs_per_s: f64,
}

impl Throughput {
    /// Compute rates from counts over `seconds`.
    ///
    /// If `seconds` is not a positive finite number (zero, negative, NaN,
    /// infinite), or so small that a rate would overflow to infinity, all
    /// rates are 0.0 and `seconds` is stored as given when finite (else 0.0).
    /// Why zeros and not an error: a zero-length window means "nothing was
    /// measured", and the report must stay valid JSON (no NaN or inf);
    /// callers that care check `seconds > 0.0`.
    pub fn from_counts(bytes: u64, messages: u64, seconds: f64) -> Throughput {
        let zero_rates = Throughput {
            bytes,
            messages,
            seconds: if seconds.is_finite() { seconds } else { 0.0 },
            gbytes_per_s: 0.0,
            gbits_per_s: 0.0,
            msgs_per_s: 0.0,
        };
        if !(seconds.is_finite() && seconds > 0.0) {
            return zero_rates;
        }
        let bytes_per_s = bytes as f64 / seconds;
        let msgs_per_s = messages as f64 / seconds;
        if !(bytes_per_s.is_finite() && msgs_per_s.is_finite()) {
            return zero_rates;
        }
        Throughput {
            bytes,
            messages,
            seconds,
            gbytes_per_s: bytes_per_s / 1e9,
            // Multiply after dividing so 8·bytes cannot overflow before the
            // division shrinks it.
            gbits_per_s: bytes_per_s * 8.0 / 1e9,
            msgs_per_s,
        }
    }

    /// Mebibytes per second (2²⁰ bytes/s), the unit perftest prints, so
    /// results can be checked against `ib_write_bw` and friends.
    pub fn mib_per_s(&self) -> f64 {
        self.gbytes_per_s * 1e9 / BYTES_PER_MIB
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn hand_computed_rates() {
        // 50 GB in 2 s: 25 GB/s, 200 Gb/s; 1 M messages → 500 k msg/s.
        let t = Throughput::from_counts(50_000_000_000, 1_000_000, 2.0);
        assert_eq!(t.bytes, 50_000_000_000);
        assert_eq!(t.messages, 1_000_000);
        assert_eq!(t.seconds, 2.0);
        assert!(close(t.gbytes_per_s, 25.0));
        assert!(close(t.gbits_per_s, 200.0));
        assert!(close(t.msgs_per_s, 500_000.0));
    }

    #[test]
    fn line_rate_400g() {
        // 400 Gb/s = 50 GB/s: 5e9 bytes in 0.1 s.
        let t = Throughput::from_counts(5_000_000_000, 0, 0.1);
        assert!(close(t.gbits_per_s, 400.0));
        assert!(close(t.gbytes_per_s, 50.0));
        assert_eq!(t.msgs_per_s, 0.0);
    }

    #[test]
    fn mib_per_s_matches_perftest_unit() {
        // 1 MiB in 1 s is exactly 1 MiB/s.
        assert!(close(
            Throughput::from_counts(1_048_576, 1, 1.0).mib_per_s(),
            1.0
        ));
        // 1 GB/s = 1e9 / 2^20 = 953.674316… MiB/s.
        let t = Throughput::from_counts(1_000_000_000, 1, 1.0);
        assert!(close(t.mib_per_s(), 953.674_316_406_25));
    }

    #[test]
    fn degenerate_durations_give_zero_rates_never_nan() {
        for seconds in [0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let t = Throughput::from_counts(1_000, 10, seconds);
            assert_eq!(t.gbytes_per_s, 0.0, "seconds = {seconds}");
            assert_eq!(t.gbits_per_s, 0.0);
            assert_eq!(t.msgs_per_s, 0.0);
            assert_eq!(t.mib_per_s(), 0.0);
            assert!(t.seconds.is_finite());
            assert_eq!((t.bytes, t.messages), (1_000, 10));
        }
        // A subnormal duration would overflow the rate to infinity.
        let t = Throughput::from_counts(u64::MAX, u64::MAX, f64::MIN_POSITIVE / 1e10);
        assert_eq!(t.gbits_per_s, 0.0);
    }

    #[test]
    fn huge_counts_stay_finite() {
        let t = Throughput::from_counts(u64::MAX, u64::MAX, 1e-9);
        assert!(t.gbits_per_s.is_finite() && t.gbits_per_s > 0.0);
    }

    #[test]
    fn serialises_to_json_and_back() {
        let t = Throughput::from_counts(4096, 1, 1e-6);
        let json = serde_json::to_string(&t).unwrap();
        let back: Throughput = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }
}
