//! Replication lag: how long a record took from its signing to being stored
//! here, kept as a fixed-bucket histogram so metrics and benchmarks can
//! read quantiles without keeping every sample.

/// Upper bounds of the buckets, in ms; a last bucket takes everything above.
pub const LAG_BUCKETS_MS: [u64; 32] = [
    5, 10, 25, 50, 75, 100, 125, 150, 175, 200, 225, 250, 275, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1_000,
    1_250, 1_500, 2_000, 3_000, 5_000, 10_000, 30_000, 60_000, 300_000,
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LagHistogram {
    /// Samples per bucket; index `LAG_BUCKETS_MS.len()` is the overflow bucket.
    counts: [u64; LAG_BUCKETS_MS.len() + 1],
    sum_ms: u64,
    max_ms: u64,
    last_ms: u64,
}

impl Default for LagHistogram {
    fn default() -> LagHistogram {
        LagHistogram { counts: [0; LAG_BUCKETS_MS.len() + 1], sum_ms: 0, max_ms: 0, last_ms: 0 }
    }
}

impl LagHistogram {
    /// Records one lag; a negative one (clock skew between nodes) counts as 0.
    pub fn record(&mut self, lag_ms: i64) {
        let lag = lag_ms.max(0) as u64;
        let bucket = LAG_BUCKETS_MS.iter().position(|&bound| lag <= bound).unwrap_or(LAG_BUCKETS_MS.len());
        self.counts[bucket] += 1;
        self.sum_ms = self.sum_ms.saturating_add(lag);
        self.max_ms = self.max_ms.max(lag);
        self.last_ms = lag;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_ms(&self) -> u64 {
        self.sum_ms
    }

    pub fn max_ms(&self) -> u64 {
        self.max_ms
    }

    /// The lag of the most recent sample.
    pub fn last_ms(&self) -> u64 {
        self.last_ms
    }

    /// `(upper bound ms, samples at or below it)` for every bucket but the
    /// overflow one, as Prometheus histograms list them.
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let totals = self.counts.iter().scan(0, |total, &n| {
            *total += n;
            Some(*total)
        });
        LAG_BUCKETS_MS.iter().copied().zip(totals)
    }

    /// The upper bound of the bucket holding the `q`-quantile, capped at the
    /// largest sample: an over-estimate by at most one bucket's width.
    pub fn quantile_ms(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((count as f64 * q).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = LAG_BUCKETS_MS.get(bucket).copied().unwrap_or(u64::MAX);
                return bound.min(self.max_ms);
            }
        }
        self.max_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_bounds_capped_at_the_maximum() {
        let mut lag = LagHistogram::default();
        assert_eq!(lag.quantile_ms(0.99), 0);
        for ms in 1..=100 {
            lag.record(ms);
        }
        assert_eq!(lag.count(), 100);
        assert_eq!(lag.quantile_ms(0.5), 50);
        assert_eq!(lag.quantile_ms(0.99), 100);
        assert_eq!(lag.quantile_ms(0.05), 5);
        lag.record(400_000);
        assert_eq!(lag.quantile_ms(1.0), 400_000);
        assert_eq!(lag.max_ms(), 400_000);
        lag.record(-3);
        assert_eq!(lag.last_ms(), 0);
    }

    #[test]
    fn cumulative_counts() {
        let mut a = LagHistogram::default();
        a.record(7);
        a.record(7);
        a.record(90);
        let buckets: Vec<_> = a.cumulative().take(6).collect();
        assert_eq!(buckets, [(5, 0), (10, 2), (25, 2), (50, 2), (75, 2), (100, 3)]);
        assert_eq!(a.cumulative().count(), LAG_BUCKETS_MS.len());
        assert_eq!(a.sum_ms(), 104);
        assert_eq!(a.quantile_ms(0.9), 90);
    }
}
