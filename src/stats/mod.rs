//! Statistics: latency histograms, percentiles, Jain fairness, confidence intervals.
