//! Rate series: completed bytes and messages binned into fixed intervals on
//! a trial's common clock (IETF 8.3 convergence, marking onset).
//!
//! A [`RateSeries`] is a pair of arrays (bytes, messages), one entry per
//! bin of `bin_ns`, bin 0 starting at the trial's common start. Storage is
//! compact (12 bytes a bin: a 60 s trial at 1 ms bins is 720 kB a series)
//! and bounded: bins are added as completions reach them, never past
//! `max_bins`; what completes later is counted in `late_*`, what completes
//! before the start in `early_*`, so no byte is ever lost:
//! `early + Σ bins + late` = every byte recorded.
//!
//! The series knows nothing of flows or traffic classes; the engine keeps
//! one per lane, the suite adds them up per class ([`RateSeries::add`]).

use serde::{Deserialize, Serialize};

/// Longest series kept, bins: 10 minutes at 1 ms, 60 s at 100 µs (7.2 MB).
pub const MAX_SERIES_BINS: usize = 600_000;

/// Where a series' bins start and how wide they are; copied into every lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesClock {
    /// Start of bin 0, CLOCK_MONOTONIC ns of the recording node (the
    /// trial's agreed start in that node's clock).
    pub origin_ns: u64,
    /// Bin width, ns (> 0).
    pub bin_ns: u64,
    /// Bins kept at most (later completions count in `late_*`).
    pub max_bins: usize,
}

impl SeriesClock {
    /// A clock of `bin_ns` bins from `origin_ns` covering `span_ns` (plus
    /// one bin), capped at [`MAX_SERIES_BINS`].
    pub fn covering(origin_ns: u64, bin_ns: u64, span_ns: u64) -> SeriesClock {
        let bin_ns = bin_ns.max(1);
        let bins = span_ns.div_ceil(bin_ns).saturating_add(1);
        SeriesClock {
            origin_ns,
            bin_ns,
            max_bins: usize::try_from(bins)
                .unwrap_or(usize::MAX)
                .min(MAX_SERIES_BINS),
        }
    }
}

/// Completed bytes and messages per bin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateSeries {
    /// Bin width, ns.
    pub bin_ns: u64,
    /// Bytes completed in each bin; bin i covers [i·bin_ns, (i+1)·bin_ns)
    /// after the trial's start.
    pub bytes: Vec<u64>,
    /// Messages completed in each bin.
    pub messages: Vec<u32>,
    /// Bytes completed before the start.
    #[serde(default)]
    pub early_bytes: u64,
    /// Bytes completed after the last bin kept.
    #[serde(default)]
    pub late_bytes: u64,
    /// Messages completed outside the bins kept (before or after).
    #[serde(default)]
    pub outside_messages: u64,
    /// The clock (not serialized: a stored series starts at its trial's start).
    #[serde(skip)]
    clock: Option<SeriesClock>,
}

impl RateSeries {
    /// An empty series on `clock`; no memory is taken until bins fill.
    pub fn new(clock: SeriesClock) -> RateSeries {
        RateSeries {
            bin_ns: clock.bin_ns.max(1),
            clock: Some(SeriesClock {
                bin_ns: clock.bin_ns.max(1),
                ..clock
            }),
            ..RateSeries::default()
        }
    }

    /// An empty sum of `bin_ns` bins, to [`RateSeries::add`] lanes into
    /// (it records nothing itself).
    pub fn sum_of(bin_ns: u64) -> RateSeries {
        RateSeries {
            bin_ns,
            ..RateSeries::default()
        }
    }

    /// Counts `bytes` and `messages` completed at `t_ns` (the recorder's
    /// CLOCK_MONOTONIC).
    #[inline]
    pub fn record(&mut self, t_ns: u64, bytes: u64, messages: u32) {
        let Some(clock) = self.clock else {
            return;
        };
        if t_ns < clock.origin_ns {
            self.early_bytes += bytes;
            self.outside_messages += u64::from(messages);
            return;
        }
        let bin = ((t_ns - clock.origin_ns) / clock.bin_ns) as usize;
        if bin >= clock.max_bins {
            self.late_bytes += bytes;
            self.outside_messages += u64::from(messages);
            return;
        }
        if bin >= self.bytes.len() {
            if self.bytes.capacity() == 0 {
                // one allocation for the whole series: growth by doubling
                // could hold twice the bound
                self.bytes.reserve_exact(clock.max_bins);
                self.messages.reserve_exact(clock.max_bins);
            }
            self.bytes.resize(bin + 1, 0);
            self.messages.resize(bin + 1, 0);
        }
        self.bytes[bin] += bytes;
        self.messages[bin] = self.messages[bin].saturating_add(messages);
    }

    /// Every byte recorded: early + the bins + late.
    pub fn total_bytes(&self) -> u64 {
        self.early_bytes + self.bytes.iter().sum::<u64>() + self.late_bytes
    }

    /// Every message recorded.
    pub fn total_messages(&self) -> u64 {
        self.outside_messages + self.messages.iter().map(|&m| u64::from(m)).sum::<u64>()
    }

    /// Adds `other` bin by bin (both on the same trial's clock; a different
    /// bin width is refused, returning false).
    pub fn add(&mut self, other: &RateSeries) -> bool {
        if self.bytes.is_empty() && self.bin_ns != other.bin_ns && self.total_bytes() == 0 {
            self.bin_ns = other.bin_ns;
        }
        if self.bin_ns != other.bin_ns {
            return false;
        }
        if other.bytes.len() > self.bytes.len() {
            self.bytes.resize(other.bytes.len(), 0);
            self.messages.resize(other.bytes.len(), 0);
        }
        for (i, (&b, &m)) in other.bytes.iter().zip(&other.messages).enumerate() {
            self.bytes[i] += b;
            self.messages[i] = self.messages[i].saturating_add(m);
        }
        self.early_bytes += other.early_bytes;
        self.late_bytes += other.late_bytes;
        self.outside_messages += other.outside_messages;
        true
    }

    /// Bytes/s of each bin.
    pub fn rates_bytes_per_s(&self) -> Vec<f64> {
        let seconds = self.bin_ns as f64 / 1e9;
        self.bytes.iter().map(|&b| b as f64 / seconds).collect()
    }

    /// Heap bytes the series holds (its reserved arrays).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() * std::mem::size_of::<u64>()
            + self.messages.capacity() * std::mem::size_of::<u32>()
    }

    /// The first bin with a completion, if any.
    pub fn first_active_bin(&self) -> Option<usize> {
        self.bytes.iter().position(|&b| b > 0)
    }

    /// The last bin with a completion, if any.
    pub fn last_active_bin(&self) -> Option<usize> {
        self.bytes.iter().rposition(|&b| b > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(bin_ns: u64, span_ns: u64) -> SeriesClock {
        SeriesClock::covering(1_000, bin_ns, span_ns)
    }

    #[test]
    fn binning_conserves_bytes_and_messages() {
        let mut s = RateSeries::new(clock(100, 1_000));
        let mut bytes = 0;
        // before the start, inside, and past the last bin (11 bins kept)
        for (i, t) in [500u64, 1_000, 1_050, 1_099, 1_100, 1_999, 2_050, 9_000]
            .into_iter()
            .enumerate()
        {
            let b = 1_000 + i as u64;
            s.record(t, b, 1);
            bytes += b;
        }
        assert_eq!(s.total_bytes(), bytes);
        assert_eq!(s.total_messages(), 8);
        assert_eq!(s.early_bytes, 1_000);
        assert_eq!(s.late_bytes, 1_007);
        assert_eq!(s.bytes[0], 1_001 + 1_002 + 1_003);
        assert_eq!(s.messages[0], 3);
        assert_eq!(s.bytes[1], 1_004);
        assert_eq!(s.bytes[9], 1_005);
        assert_eq!(s.bytes[10], 1_006);
        assert_eq!(s.bytes.len(), 11);
    }

    #[test]
    fn sum_of_bins_equals_bytes_of_a_trial() {
        // a pseudo-random stream of completions inside the trial
        let mut s = RateSeries::new(clock(1_000_000, 2_000_000_000));
        let (mut t, mut total, mut x) = (1_000u64, 0u64, 7u64);
        while t < 2_000_000_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let bytes = 4096 + (x >> 40) % 65536;
            s.record(t, bytes, 1);
            total += bytes;
            t += 1 + (x >> 20) % 200_000;
        }
        assert_eq!(s.early_bytes + s.late_bytes, 0);
        assert_eq!(s.bytes.iter().sum::<u64>(), total);
    }

    #[test]
    fn merging_adds_bin_by_bin() {
        let mut a = RateSeries::new(clock(10, 100));
        let mut b = RateSeries::new(clock(10, 100));
        a.record(1_005, 3, 1);
        b.record(1_005, 4, 1);
        b.record(1_055, 5, 1);
        let mut class = RateSeries::default();
        assert!(class.add(&a));
        assert!(class.add(&b));
        assert_eq!(class.bytes, vec![7, 0, 0, 0, 0, 5]);
        assert_eq!(class.messages, vec![2, 0, 0, 0, 0, 1]);
        let other = RateSeries::new(clock(20, 100));
        let mut c = a.clone();
        c.record(1_000, 1, 1);
        assert!(!c.add(&RateSeries {
            bytes: vec![1],
            messages: vec![1],
            ..other
        }));
    }

    #[test]
    fn a_minute_at_1ms_stays_under_10_mb() {
        let mut s = RateSeries::new(SeriesClock::covering(0, 1_000_000, 60_000_000_000));
        for ms in 0..60_000u64 {
            s.record(ms * 1_000_000 + 1, 1 << 20, 1);
        }
        assert_eq!(s.bytes.len(), 60_001.min(s.bytes.len()));
        assert!(s.heap_bytes() < 10 << 20, "{} bytes", s.heap_bytes());
        // and 100 µs bins are capped at MAX_SERIES_BINS
        let c = SeriesClock::covering(0, 100_000, 3_600_000_000_000);
        assert_eq!(c.max_bins, MAX_SERIES_BINS);
        const { assert!(MAX_SERIES_BINS * 12 < 10 << 20) };
    }

    #[test]
    fn rates_are_bytes_per_second() {
        let mut s = RateSeries::new(clock(1_000_000, 10_000_000));
        s.record(1_000, 1_000, 1);
        assert_eq!(s.rates_bytes_per_s(), vec![1e6]);
        assert_eq!(s.first_active_bin(), Some(0));
    }
}
