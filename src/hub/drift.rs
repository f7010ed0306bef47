//! How fast each client's stream arrives against the hub's clock, in ppm (RT mixer
//! thread): the operator's view of which peer does not lock (issue 17).
//!
//! Design: a client that locks to the hub's clock sends exactly the hub's rate; one that
//! does not (an older build, a third-party client) drifts by its sound card's error, and the
//! hub's buffer for it then trims or runs dry. The evidence is the stream's newest position
//! against the mixer's own frame count: their difference moves by the drift. Its minimum
//! over each [`BLOCK_S`] block is steady (the earliest packets of a block), so the slope
//! between consecutive blocks' minima, smoothed over about half a minute, is the drift
//! without the network's jitter. A block whose slope is absurd (a sender that skipped
//! ahead after an xrun, a restart) is left out, and so is the first block of a stream:
//! its minimum holds whatever the connection's set-up did to the first packets, and as
//! the first slope it seeded the average (measured: a peer that locks, shown at −1000 ppm
//! at 5 s and still −600 at 30 s).

/// One block, s.
pub const BLOCK_S: f64 = 2.0;
/// Blocks averaged (exponentially) into the estimate.
const SMOOTH_BLOCKS: f64 = 15.0;
/// A block slope beyond this is not drift, ppm.
const ABSURD_PPM: f64 = 5000.0;

/// The drift meter of one input.
///
/// # Example
/// ```
/// use izyrt::hub::drift::DriftMeter;
/// let mut d = DriftMeter::new(48_000);
/// // A sender 200 ppm fast: its newest position gains 0.0002 frames per frame mixed.
/// for i in 0..48_000 * 60 / 64u64 {
///     let mixed = i * 64;
///     d.observe((mixed as f64 * 1.0002) as u64 + 128, mixed);
/// }
/// assert!((d.ppm().unwrap() - 200.0).abs() < 5.0);
/// ```
#[derive(Debug, Clone)]
pub struct DriftMeter {
    block_frames: u64,
    start: Option<u64>,
    least: i64,
    prev: Option<i64>,
    /// Whether the stream's first block is over (it is not measured).
    warm: bool,
    ppm: Option<f64>,
}

impl DriftMeter {
    /// A meter for a mixer at `rate` Hz.
    pub fn new(rate: u32) -> DriftMeter {
        DriftMeter {
            block_frames: (f64::from(rate) * BLOCK_S) as u64,
            start: None,
            least: i64::MAX,
            prev: None,
            warm: false,
            ppm: None,
        }
    }

    /// One mixer period: the stream's newest position + 1 (`end`) after `mixed` frames
    /// of the mixer's clock.
    ///
    /// Runs on: the RT mixer thread, once per period per input. Must not: allocate, lock,
    /// block (integer and float arithmetic).
    pub fn observe(&mut self, end: u64, mixed: u64) {
        let start = *self.start.get_or_insert(mixed);
        let lead = end.wrapping_sub(mixed) as i64;
        self.least = self.least.min(lead);
        if mixed.wrapping_sub(start) < self.block_frames {
            return;
        }
        if !self.warm {
            self.warm = true;
            self.least = i64::MAX;
            self.start = Some(mixed);
            return;
        }
        if let Some(prev) = self.prev {
            let slope = (self.least.wrapping_sub(prev)) as f64 / self.block_frames as f64 * 1e6;
            if slope.abs() < ABSURD_PPM {
                let p = self.ppm.get_or_insert(slope);
                *p += (slope - *p) / SMOOTH_BLOCKS;
            }
        }
        self.prev = Some(self.least);
        self.least = i64::MAX;
        self.start = Some(mixed);
    }

    /// The drift observed, ppm (positive: the sender runs fast), once three blocks passed
    /// (the first is not measured).
    pub fn ppm(&self) -> Option<f64> {
        self.ppm
    }

    /// Forgets the stream (it restarted).
    pub fn reset(&mut self) {
        self.start = None;
        self.least = i64::MAX;
        self.prev = None;
        self.warm = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hiccup_in_the_first_block_is_not_drift() {
        let mut d = DriftMeter::new(48_000);
        // A sender on the hub's clock whose first 0.2 s came 96 frames late.
        for i in 0..48_000 * 30 / 64u64 {
            let mixed = i * 64;
            let late = if i < 150 { 96 } else { 0 };
            d.observe(mixed + 128 - late, mixed);
        }
        let ppm = d.ppm().unwrap();
        assert!(ppm.abs() < 5.0, "{ppm}");
    }
}
