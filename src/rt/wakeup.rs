//! Wakeup-latency histogram of one RT thread, and its publication to other threads
//! (recorded and published on the RT audio thread, read anywhere).
//!
//! Design: the RT thread records how late every wakeup was into an HdrHistogram whose
//! bounds are fixed at construction (1 ns to 10 s, 2 significant digits), so a recording
//! only increments one preallocated counter: `saturating_record` clamps outliers to the
//! top bucket instead of resizing. The exact maximum is kept beside it, so a clamped
//! outlier still shows.
//!
//! Quantiles are computed on the RT thread, not by the reader, because the histogram is
//! not shared: sharing it would need a lock or a copy. Every `publish_every` recordings
//! the RT thread walks the recorded buckets once (up to the largest value seen, a few
//! hundred counters for microsecond latencies), picks p50/p99/p99.9 in that single pass,
//! and stores them in atomics behind a sequence counter (a seqlock): the writer never
//! waits, and a reader retries the rare read that overlapped a publication, so it never
//! sees p50 from one publication and p99 from another.
//!
//! The figures are cumulative since the start (or since the last
//! [`WakeupStats::request_reset`], which the RT thread honours at its next publication).
//!
//! **Prometheus buckets.** Beside the HdrHistogram, every recording also increments one
//! of [`BUCKET_BOUNDS_NS`]' counters (a binary search over a constant array: no
//! allocation) and adds to an exact sum. These never reset: they are published with the
//! quantiles, under the same seqlock, as a cumulative histogram whose counters only grow,
//! so that `histogram_quantile(0.999, rate(..._bucket[1m]))` gives the recent tail, which
//! the since-the-start quantiles cannot.

use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};

/// Highest lateness tracked exactly, ns (10 s); later wakeups count in the top bucket.
pub const HIGHEST_NS: u64 = 10_000_000_000;
/// Significant decimal digits kept (1 % resolution). The walk that picks the quantiles
/// visits every counter up to the largest value, and with 3 digits (2048 per power of two
/// against 256) it was 9 % of the hub's own instructions at 2 peers, two histograms (the
/// wakeups and the work) walked every 500 periods (`benches/RESULTS.md`); a wakeup or a
/// period's work known to 1 % says all that they are read for.
pub const SIGFIG: u8 = 2;
/// Default publication interval, in recordings (~0.67 s at 48 kHz / 64 frames).
pub const DEFAULT_PUBLISH_EVERY: u32 = 500;

/// Upper bounds of the exported lateness buckets, ns (a last bucket, `+Inf`, takes the
/// rest): fine around the tens of µs a good RT wakeup takes, up to a few periods.
pub const BUCKET_BOUNDS_NS: [u64; 18] = [
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    300_000,
    500_000,
    750_000,
    1_000_000,
    1_500_000,
    2_000_000,
    3_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
];
/// Exported buckets, `+Inf` included.
pub const BUCKETS: usize = BUCKET_BOUNDS_NS.len() + 1;

/// One consistent set of published wakeup-latency figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WakeupSnapshot {
    /// Wakeups recorded.
    pub count: u64,
    /// Median lateness, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Largest lateness seen, ns (exact, even beyond [`HIGHEST_NS`]).
    pub max_ns: u64,
    /// Wakeups per bucket of [`BUCKET_BOUNDS_NS`] (not cumulative; the last is `+Inf`),
    /// since the start: never reset.
    pub buckets: [u64; BUCKETS],
    /// Sum of every lateness recorded since the start, ns: never reset.
    pub sum_ns: u64,
}

impl WakeupSnapshot {
    /// `ns` in microseconds.
    pub fn us(ns: u64) -> f64 {
        ns as f64 / 1_000.0
    }
    /// Median, µs.
    pub fn p50_us(&self) -> f64 {
        Self::us(self.p50_ns)
    }
    /// 99th percentile, µs.
    pub fn p99_us(&self) -> f64 {
        Self::us(self.p99_ns)
    }
    /// 99.9th percentile, µs.
    pub fn p999_us(&self) -> f64 {
        Self::us(self.p999_ns)
    }
    /// Maximum, µs.
    pub fn max_us(&self) -> f64 {
        Self::us(self.max_ns)
    }

    /// The buckets as Prometheus wants them: cumulative counts (each bucket's count is
    /// of the wakeups at or below its bound), the last being the total.
    pub fn cumulative_buckets(&self) -> [u64; BUCKETS] {
        let mut acc = 0u64;
        self.buckets.map(|n| {
            acc += n;
            acc
        })
    }
}

/// The published figures of one RT thread, shared (`Arc`) with metrics threads.
#[derive(Debug, Default)]
pub struct WakeupStats {
    seq: AtomicU64,
    count: AtomicU64,
    p50: AtomicU64,
    p99: AtomicU64,
    p999: AtomicU64,
    max: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
    reset: AtomicBool,
}

impl WakeupStats {
    /// The last published figures (all zero before the first publication). Never blocks
    /// the RT thread; retries (yielding) while a publication is in progress. Not for the RT
    /// thread itself.
    pub fn snapshot(&self) -> WakeupSnapshot {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                // A publication is in progress; if it is our own core's writer that we
                // preempted (RT refused), yielding lets it finish.
                std::thread::yield_now();
                continue;
            }
            let snap = WakeupSnapshot {
                count: self.count.load(Ordering::Relaxed),
                p50_ns: self.p50.load(Ordering::Relaxed),
                p99_ns: self.p99.load(Ordering::Relaxed),
                p999_ns: self.p999.load(Ordering::Relaxed),
                max_ns: self.max.load(Ordering::Relaxed),
                buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
                sum_ns: self.sum_ns.load(Ordering::Relaxed),
            };
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return snap;
            }
        }
    }

    /// Asks the RT thread to start over at its next publication.
    pub fn request_reset(&self) {
        self.reset.store(true, Ordering::Relaxed);
    }

    /// Publications so far (a reader can tell whether the figures moved).
    pub fn publications(&self) -> u64 {
        self.seq.load(Ordering::Acquire) / 2
    }

    fn store(&self, snap: &WakeupSnapshot) {
        // Only the owning RT thread writes, so a plain odd/even sequence suffices.
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.count.store(snap.count, Ordering::Relaxed);
        self.p50.store(snap.p50_ns, Ordering::Relaxed);
        self.p99.store(snap.p99_ns, Ordering::Relaxed);
        self.p999.store(snap.p999_ns, Ordering::Relaxed);
        self.max.store(snap.max_ns, Ordering::Relaxed);
        for (a, &n) in self.buckets.iter().zip(&snap.buckets) {
            a.store(n, Ordering::Relaxed);
        }
        self.sum_ns.store(snap.sum_ns, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }
}

/// Why a [`WakeupHistogram`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WakeupError {
    /// The publication interval is zero.
    #[error("wakeup publication interval 0 is not allowed (must be at least 1 wakeup)")]
    PublishEvery,
}

/// Records an RT thread's wakeup lateness and publishes its quantiles every
/// `publish_every` recordings. Built on the main thread, then owned by the RT thread.
///
/// # Example
/// ```
/// use izyrt::rt::wakeup::WakeupHistogram;
/// let mut h = WakeupHistogram::new(4)?;
/// let stats = h.stats(); // give this Arc to the metrics thread
/// for late_ns in [10_000, 12_000, 11_000, 90_000] {
///     h.record(late_ns); // RT-safe; the 4th recording publishes
/// }
/// let s = stats.snapshot();
/// assert_eq!((s.count, s.max_ns), (4, 90_000));
/// assert!((11_000..=11_020).contains(&s.p50_ns));
/// # Ok::<(), izyrt::rt::wakeup::WakeupError>(())
/// ```
#[derive(Debug)]
pub struct WakeupHistogram {
    hist: Histogram<u64>,
    max_ns: u64,
    /// The exported buckets and sum (never reset).
    buckets: [u64; BUCKETS],
    sum_ns: u64,
    publish_every: u32,
    since_publish: u32,
    stats: Arc<WakeupStats>,
}

impl WakeupHistogram {
    /// A histogram over 1 ns ..= [`HIGHEST_NS`] that publishes every `publish_every`
    /// recordings. Allocates (about 200 KiB): call it before the RT loop.
    ///
    /// # Errors
    /// [`WakeupError::PublishEvery`] when `publish_every` is 0.
    pub fn new(publish_every: u32) -> Result<Self, WakeupError> {
        if publish_every == 0 {
            return Err(WakeupError::PublishEvery);
        }
        let hist =
            Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIG).expect("constant bounds are valid");
        Ok(WakeupHistogram {
            hist,
            max_ns: 0,
            buckets: [0; BUCKETS],
            sum_ns: 0,
            publish_every,
            since_publish: 0,
            stats: Arc::new(WakeupStats::default()),
        })
    }

    /// The published figures, to hand to other threads.
    pub fn stats(&self) -> Arc<WakeupStats> {
        Arc::clone(&self.stats)
    }

    /// Records one wakeup `late_ns` late; publishes when the interval is due.
    /// RT-safe: no allocation, no lock, no panic.
    pub fn record(&mut self, late_ns: u64) {
        self.hist.saturating_record(late_ns);
        self.max_ns = self.max_ns.max(late_ns);
        self.buckets[BUCKET_BOUNDS_NS.partition_point(|&b| b < late_ns)] += 1;
        self.sum_ns = self.sum_ns.saturating_add(late_ns);
        self.since_publish += 1;
        if self.since_publish >= self.publish_every {
            self.publish();
        }
    }

    /// Computes the quantiles now and publishes them (and honours a pending reset).
    /// RT-safe: one pass over the recorded buckets, no allocation.
    pub fn publish(&mut self) {
        self.since_publish = 0;
        let snap = self.compute();
        self.stats.store(&snap);
        if self.stats.reset.swap(false, Ordering::Relaxed) {
            self.reset();
        }
    }

    /// The figures as of now (what [`WakeupHistogram::publish`] would publish).
    pub fn compute(&self) -> WakeupSnapshot {
        let count = self.hist.len();
        if count == 0 {
            return WakeupSnapshot {
                buckets: self.buckets,
                sum_ns: self.sum_ns,
                ..WakeupSnapshot::default()
            };
        }
        // Same rule as Histogram::value_at_quantile (the smallest value with at least
        // ⌈q·count⌉ recordings at or below it), for three quantiles in one pass.
        let rank = |q: f64| ((q * count as f64).ceil() as u64).max(1);
        let ranks = [rank(0.5), rank(0.99), rank(0.999)];
        let mut values = [0u64; 3];
        let mut found = 0;
        let mut seen = 0u64;
        for v in self.hist.iter_recorded() {
            seen += v.count_at_value();
            while found < 3 && seen >= ranks[found] {
                values[found] = v.value_iterated_to();
                found += 1;
            }
            if found == 3 {
                break;
            }
        }
        WakeupSnapshot {
            count,
            // Quantiles are bucket tops; never report one above the exact maximum.
            p50_ns: values[0].min(self.max_ns),
            p99_ns: values[1].min(self.max_ns),
            p999_ns: values[2].min(self.max_ns),
            max_ns: self.max_ns,
            buckets: self.buckets,
            sum_ns: self.sum_ns,
        }
    }

    /// Forgets everything recorded for the quantiles (RT-safe: zeroes the counters in
    /// place); the exported buckets and sum go on.
    pub fn reset(&mut self) {
        self.hist.reset();
        self.max_ns = 0;
    }

    /// The underlying histogram, for a full report off the RT thread.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_hdrhistogram() {
        let mut h = WakeupHistogram::new(u32::MAX).unwrap();
        // 10 000 values: 1..=10 000 µs with a few large outliers.
        for i in 1..=10_000u64 {
            h.record(i * 1_000);
        }
        for _ in 0..5 {
            h.record(50_000_000);
        }
        let s = h.compute();
        let hist = h.histogram();
        assert_eq!(s.count, 10_005);
        assert_eq!(s.p50_ns, hist.value_at_quantile(0.5));
        assert_eq!(s.p99_ns, hist.value_at_quantile(0.99));
        assert_eq!(s.p999_ns, hist.value_at_quantile(0.999));
        assert_eq!(s.max_ns, 50_000_000);
        // Within the 1 % resolution of the true values.
        let near = |got: u64, want: u64| (got as f64 / want as f64 - 1.0).abs() < 0.01;
        assert!(near(s.p50_ns, 5_003_000), "{}", s.p50_ns);
        assert!(near(s.p99_ns, 9_905_000), "{}", s.p99_ns);
    }

    #[test]
    fn publishes_every_n_and_readers_see_it() {
        let mut h = WakeupHistogram::new(3).unwrap();
        let stats = h.stats();
        h.record(1_000);
        h.record(2_000);
        assert_eq!(stats.snapshot(), WakeupSnapshot::default());
        assert_eq!(stats.publications(), 0);
        h.record(3_000);
        assert_eq!(stats.publications(), 1);
        let s = stats.snapshot();
        assert_eq!((s.count, s.max_ns), (3, 3_000));
        // A bucket's top, within the 1 % resolution.
        assert!((2_000..=2_020).contains(&s.p50_ns), "{}", s.p50_ns);
        assert_eq!(s.p999_us(), 3.0);
    }

    #[test]
    fn outliers_saturate_but_max_is_exact() {
        let mut h = WakeupHistogram::new(1).unwrap();
        h.record(0);
        h.record(u64::MAX / 2);
        let s = h.stats().snapshot();
        assert_eq!(s.count, 2);
        assert_eq!(s.max_ns, u64::MAX / 2);
        assert!(s.p999_ns >= HIGHEST_NS);
    }

    #[test]
    fn reset_is_honoured_at_the_next_publication() {
        let mut h = WakeupHistogram::new(2).unwrap();
        let stats = h.stats();
        h.record(5_000);
        h.record(5_000);
        assert_eq!(stats.snapshot().count, 2);
        stats.request_reset();
        h.record(5_000);
        h.record(5_000); // publishes 4, then resets
        assert_eq!(stats.snapshot().count, 4);
        h.record(1_000);
        h.record(1_000);
        let s = stats.snapshot();
        assert_eq!((s.count, s.max_ns), (2, 1_000));
    }

    #[test]
    fn buckets_are_cumulative_exact_and_survive_resets() {
        let mut h = WakeupHistogram::new(1).unwrap();
        let stats = h.stats();
        // On a bound counts in that bucket (le = less or equal); beyond the last, +Inf.
        for ns in [0, 5_000, 5_001, 10_000, 99_999, 200_000_000] {
            h.record(ns);
        }
        let s = stats.snapshot();
        let c = s.cumulative_buckets();
        assert_eq!(&c[..4], &[2, 4, 4, 4], "{c:?}");
        assert_eq!(c[4], 5, "99 999 ns is at or below 100 µs");
        assert_eq!(c[BUCKETS - 2], 5);
        assert_eq!(c[BUCKETS - 1], 6);
        assert_eq!(s.sum_ns, 5_000 + 5_001 + 10_000 + 99_999 + 200_000_000);
        stats.request_reset();
        h.record(1_000); // publishes, then resets the quantiles only
        h.record(1_000);
        let after = stats.snapshot();
        assert_eq!(after.count, 1, "the quantiles started over");
        assert_eq!(
            after.cumulative_buckets()[BUCKETS - 1],
            8,
            "the buckets did not"
        );
        assert!(
            after
                .cumulative_buckets()
                .iter()
                .zip(c)
                .all(|(a, b)| *a >= b)
        );
    }

    #[test]
    fn zero_interval_is_rejected() {
        let e = WakeupHistogram::new(0).unwrap_err();
        assert!(e.to_string().contains("interval 0"));
    }

    #[test]
    fn snapshots_are_never_torn() {
        // The writer publishes sets where every field equals the count; a torn read
        // would mix two sets.
        let stats = Arc::new(WakeupStats::default());
        let w = Arc::clone(&stats);
        let writer = std::thread::spawn(move || {
            for i in 1..=200_000u64 {
                w.store(&WakeupSnapshot {
                    count: i,
                    p50_ns: i,
                    p99_ns: i,
                    p999_ns: i,
                    max_ns: i,
                    ..WakeupSnapshot::default()
                });
            }
        });
        let mut last = 0;
        while last < 200_000 {
            let s = stats.snapshot();
            assert!(
                s.p50_ns == s.count
                    && s.p99_ns == s.count
                    && s.p999_ns == s.count
                    && s.max_ns == s.count,
                "torn: {s:?}"
            );
            assert!(s.count >= last);
            last = s.count;
            if writer.is_finished() && s.count == 200_000 {
                break;
            }
        }
        writer.join().unwrap();
    }
}
