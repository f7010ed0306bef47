//! How fast each client's stream arrives against the hub's clock, in ppm (RT mixer
//! thread): the operator's view of which peer does not lock (issue 17).
//!
//! Design: a client that locks to the hub's clock sends exactly the hub's rate; one that
//! does not (an older build, a third-party client) drifts by its sound card's error, and the
//! hub's buffer for it then trims or runs dry. The evidence is the stream's newest position
//! (less the part of the newest packet not yet earned, so that it advances smoothly
//! rather than a packet at a time) against the mixer's own frame count: their difference
//! moves by the drift. Its minimum
//! over each [`BLOCK_S`] block is steady (the earliest packets of a block), and the drift
//! is the slope through the last half minute of block minima, fitted as a client fits its
//! clock estimate (`dsp::slope`): a sender that lost time once (an xrun, a stall of its
//! host) is a step, not a slope (an exponential average of block slopes showed a peer
//! that locked at 650 ppm after one hiccup of a period, and hundreds for half a minute
//! after a stall). The first block of a stream is left out: its minimum holds whatever
//! the connection's set-up did to the first packets (measured: a peer that locks, shown
//! at −1000 ppm at 5 s and still −600 at 30 s).
//!
//! A client that locks changes its stream's rate once: it sends its card's rate until its
//! clock estimate is measured (about 9 s), then the hub's. A fit through that bend reads
//! the card's rate fading out of the window for half a minute (a peer locked at 8 s was
//! shown at 36–172 ppm at 20 s), and finding the bend in the minima themselves was not
//! reliable on a host that stalls (the lock slews over seconds; block minima jitter by
//! tens of ppm). So the client says it: its packets carry the AUDIO flag `CLOCK_LOCKED`
//! once they are resampled by a measured estimate, and where the flag changes the fit
//! starts again and the old reading is dropped: a locked peer reads near zero about ten
//! blocks after it locked (within ±17 ppm from 20 s after it on a quiet host). A short
//! fit is exposed to time lost in many small pieces, which the step test does not take
//! out when the increments' own spread is large: on a noisy stretch of this VM (tens of
//! input misses) a locked peer read up to a few hundred ppm for a while.

use crate::dsp::slope::{STEP_S, StepFit};

/// One block, s.
pub const BLOCK_S: f64 = 1.0;

/// The drift meter of one input.
///
/// # Example
/// ```
/// use izyrt::hub::drift::DriftMeter;
/// let mut d = DriftMeter::new(48_000);
/// // A sender 200 ppm fast: its newest position gains 0.0002 frames per frame mixed.
/// for i in 0..48_000 * 60 / 64u64 {
///     let mixed = i * 64;
///     d.observe((mixed as f64 * 1.0002) as u64 + 128, 0.0, mixed);
/// }
/// assert!((d.ppm().unwrap() - 200.0).abs() < 5.0);
/// ```
#[derive(Debug, Clone)]
pub struct DriftMeter {
    block_frames: u64,
    least_step: f64,
    /// The stream's first mixer frame, and the current block's (the first block is the
    /// one that starts at the origin: it is not measured).
    origin: Option<u64>,
    start: u64,
    least: f64,
    fit: StepFit,
    ppm: Option<f64>,
    /// What the sender's newest packet said of its clock.
    locked: bool,
}

impl DriftMeter {
    /// A meter for a mixer at `rate` Hz.
    pub fn new(rate: u32) -> DriftMeter {
        DriftMeter {
            block_frames: (f64::from(rate) * BLOCK_S) as u64,
            least_step: STEP_S * f64::from(rate),
            origin: None,
            start: 0,
            least: f64::INFINITY,
            fit: StepFit::new(),
            ppm: None,
            locked: false,
        }
    }

    /// One mixer period: the stream's newest position + 1 (`end`), less the part of the
    /// newest packet not yet earned (`unearned`, `dsp::playout::unearned_frames`), after
    /// `mixed` frames of the mixer's clock. Read plainly, the position steps by a packet
    /// at each arrival, and the block minima of a sender a few hundred ppm fast stand
    /// still for blocks and then step by a packet: every step larger than the least one
    /// the fit takes out, so the drift read 0 (a peer 500 ppm fast, trimmed by the hub
    /// every few seconds, was shown at 0.0 ppm).
    ///
    /// Runs on: the RT mixer thread, once per period per input. Must not: allocate, lock,
    /// block (arithmetic; a fit over fixed arrays once a block).
    pub fn observe(&mut self, end: u64, unearned: f64, mixed: u64) {
        let origin = match self.origin {
            Some(origin) => origin,
            None => {
                self.origin = Some(mixed);
                self.start = mixed;
                mixed
            }
        };
        let lead = end.wrapping_sub(mixed) as i64 as f64 - unearned;
        self.least = self.least.min(lead);
        if mixed.wrapping_sub(self.start) < self.block_frames {
            return;
        }
        if self.start != origin {
            let x = mixed.wrapping_sub(origin) as f64;
            self.fit.push(x, self.least);
            self.ppm = self
                .fit
                .slope(self.least_step)
                .map(|s| s * 1e6)
                .or(self.ppm);
        }
        self.least = f64::INFINITY;
        self.start = mixed;
    }

    /// The drift observed, ppm (positive: the sender runs fast), once [`MIN_POINTS`](crate::dsp::slope::MIN_POINTS)
    /// blocks were measured (the first is not); kept across a restart until new blocks
    /// replace it.
    pub fn ppm(&self) -> Option<f64> {
        self.ppm
    }

    /// Whether the sender says it is locked to the hub's clock (its newest packet's AUDIO
    /// flag `CLOCK_LOCKED`). Where this changes, the stream's rate changed: the fit starts
    /// again and the reading is dropped until new blocks make one.
    ///
    /// Runs on: the RT mixer thread, once per period per input. Must not: allocate, lock,
    /// block.
    pub fn set_sender_locked(&mut self, locked: bool) {
        if locked != self.locked {
            self.locked = locked;
            self.reset();
            self.ppm = None;
        }
    }

    /// What the sender's newest packet said of its clock ([`DriftMeter::set_sender_locked`]).
    pub fn sender_locked(&self) -> bool {
        self.locked
    }

    /// Forgets the stream (it restarted).
    pub fn reset(&mut self) {
        self.origin = None;
        self.least = f64::INFINITY;
        self.fit.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender at `ppm` for `secs`, its newest position `late(i)` frames behind at
    /// mixer period `i`; the meter's figure at the end.
    fn run(ppm: f64, secs: u64, late: impl Fn(u64) -> u64) -> Option<f64> {
        let mut d = DriftMeter::new(48_000);
        for i in 0..48_000 * secs / 64 {
            let mixed = i * 64;
            let end = (mixed as f64 * (1.0 + ppm * 1e-6)) as u64 + 1_000_000;
            d.observe(end - late(i), 0.0, mixed);
        }
        d.ppm()
    }

    #[test]
    fn a_hiccup_in_the_first_block_is_not_drift() {
        // A sender on the hub's clock whose first 0.2 s came 96 frames late.
        let ppm = run(0.0, 30, |i| if i < 150 { 96 } else { 0 }).unwrap();
        assert!(ppm.abs() < 5.0, "{ppm}");
    }

    #[test]
    fn a_sender_that_lost_time_once_is_not_drifting() {
        // A period lost 5 s in, then 200 ms lost 20 s in (a stall of its host): shown as
        // 650 ppm and hundreds for half a minute by an average of block slopes.
        for ppm in [0.0, 150.0] {
            let got = run(ppm, 40, |i| match i {
                i if i < 3_750 => 0,
                i if i < 15_000 => 64,
                _ => 64 + 9_600,
            })
            .unwrap();
            assert!((got - ppm).abs() < 5.0, "{ppm}: {got}");
        }
    }

    #[test]
    fn a_sender_that_says_it_locked_is_measured_from_there() {
        // A client's card 500 ppm fast, sending its card's rate for 9 s and then, locked,
        // the hub's (its packets flagged from there).
        let lock_at = 48_000 * 9 / 64u64;
        let mut told = DriftMeter::new(48_000);
        let mut untold = DriftMeter::new(48_000);
        let mut end = 1_000_000.0;
        for i in 0..48_000 * 30 / 64u64 {
            let mixed = i * 64;
            let locked = i >= lock_at;
            end += 64.0 * if locked { 1.0 } else { 1.0005 };
            told.set_sender_locked(locked);
            untold.observe(end as u64, 0.0, mixed);
            told.observe(end as u64, 0.0, mixed);
            if i == lock_at {
                assert!(told.sender_locked());
                assert_eq!(told.ppm(), None, "the card's rate is not the stream's now");
            }
            // Ten blocks after the lock (the first one is not measured).
            if i == lock_at + 48_000 * 10 / 64 {
                let ppm = told.ppm().expect("measured again");
                assert!(ppm.abs() < 5.0, "{ppm}");
                let old = untold.ppm().unwrap();
                assert!(old > 100.0, "the fit through the bend reads {old}");
            }
        }
        assert!(told.ppm().unwrap().abs() < 2.0);
        told.set_sender_locked(false);
        assert_eq!(told.ppm(), None, "unlocked: measured afresh");
    }

    #[test]
    fn none_before_enough_blocks() {
        assert_eq!(run(100.0, 8, |_| 0), None);
        assert!(run(100.0, 10, |_| 0).is_some());
    }

    #[test]
    fn a_sender_in_whole_packets_reads_its_drift() {
        // 64-frame packets from a sender `ppm` fast, each arriving when it is complete,
        // read each mixer period of 64 frames with the unearned part of the newest.
        for ppm in [500.0, -300.0, 80.0] {
            let mut d = DriftMeter::new(48_000);
            let mut plain = DriftMeter::new(48_000);
            let period_ns = 1e9 * 64.0 / 48_000.0;
            for i in 0..48_000 * 40 / 64u64 {
                let mixed = i * 64;
                let now = i as f64 * period_ns;
                // Packets the sender completed by now, and when the newest landed.
                let sent = (now / (period_ns / (1.0 + ppm * 1e-6))).floor();
                let landed = sent * period_ns / (1.0 + ppm * 1e-6);
                let end = sent as u64 * 64 + 1_000;
                let unearned =
                    crate::dsp::playout::unearned_frames(64, (now - landed) as u64, 48_000.0);
                d.observe(end, unearned, mixed);
                plain.observe(end, 0.0, mixed);
            }
            let got = d.ppm().unwrap();
            assert!((got - ppm).abs() < 10.0, "{ppm}: {got}");
            // Read plainly, the packets' steps were taken out as losses.
            let flat = plain.ppm().unwrap();
            assert!(
                (flat - ppm).abs() > 0.5 * ppm.abs(),
                "{ppm}: plainly {flat}"
            );
        }
    }
}
