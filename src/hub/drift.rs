//! How fast each client's stream arrives against the hub's clock, in ppm (RT mixer
//! thread): the operator's view of which peer does not lock (issue 17).
//!
//! Design: a client that locks to the hub's clock sends exactly the hub's rate; one that
//! does not (an older build, a third-party client) drifts by its sound card's error, and the
//! hub's buffer for it then trims or runs dry. The evidence is the stream's newest position
//! (less the part of the newest packet not yet earned, so that it advances smoothly
//! rather than a packet at a time) against the mixer's own frame count: their difference
//! moves by the drift. That is the measurement a client makes of the hub's clock, with the
//! roles turned, so it is made by the same estimator (`dsp::playout::rate`): each block's
//! median, and the slope through the last half minute of medians with steps taken out
//! (`dsp::slope`), so that a sender that lost time once (an xrun, a stall of its host) is
//! a step, not a slope.
//!
//! The median, not the minimum this meter took at first: the minimum of a block is its
//! latest packet, which on a host that stalls is the stall's depth, different in every
//! block by hundreds of frames. A fit of a few blocks through such points read a locked
//! peer at −200 to −950 ppm on a noisy stretch of this VM, and the minima's spread hid
//! the steps of small losses from the step test, which then read as drift (a simulation of
//! a sender that stalls three times a second: 150 to 1430 ppm at worst, where the median
//! reads within a few; the tests). A median moves only for a stall longer than half a
//! block. It is taken over at most [`READINGS`] readings a block (every
//! `block / READINGS` frames of the mixer, whatever its period), so that a hub with
//! many inputs pays a selection of that many per input once a second; and inputs that
//! joined in the same period (a hub's peers reconnecting at once) do not all pay it in
//! the same period: each meter leaves out a little more than the first block, by one of
//! [`PHASES`] steps, the next meter built the next step.
//!
//! The first block of a stream is left out: it holds whatever the connection's set-up did
//! to the first packets (measured: a peer that locks, shown at −1000 ppm at 5 s and still
//! −600 at 30 s). A client that locks changes its stream's rate once: it sends its card's
//! rate until its clock estimate is measured (about 9 s), then the hub's. A fit through
//! that bend reads the card's rate fading out of the window for half a minute, so the
//! client says it: its packets carry the AUDIO flag `CLOCK_LOCKED` once they are resampled
//! by a measured estimate, and where the flag changes the measurement starts again and the
//! old reading is dropped.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::dsp::playout::rate::RateEstimate;

/// One block, s (the estimator's).
pub const BLOCK_S: f64 = crate::dsp::playout::rate::BLOCK_S;
/// The most readings one block's median is taken over.
pub const READINGS: usize = 128;
/// Phases the meters' blocks are spread over: at most 1/`PHASES` of a hub's inputs close
/// a block in one mixer period, whenever they joined.
pub const PHASES: u64 = 16;
/// Meters built so far (their phases, in turn).
static BUILT: AtomicU64 = AtomicU64::new(0);

/// The widest drift shown, ppm (± ten times a client's clamp: a sender that does not lock
/// is shown as it is).
pub const RANGE_PPM: f64 = 20_000.0;

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
#[derive(Debug)]
pub struct DriftMeter {
    /// Mixer frames left out at a stream's start: a block, and this meter's phase.
    skip_frames: u64,
    every_frames: u64,
    /// The stream's first mixer frame (its first block is not measured), and the next
    /// mixer frame read.
    origin: Option<u64>,
    next: u64,
    estimate: RateEstimate,
    /// What the sender's newest packet said of its clock.
    locked: bool,
}

impl DriftMeter {
    /// A meter for a mixer at `rate` Hz, its blocks at the next of [`PHASES`] phases
    /// (allocates its block: net or main thread).
    pub fn new(rate: u32) -> DriftMeter {
        DriftMeter::at_phase(rate, BUILT.fetch_add(1, Ordering::Relaxed))
    }

    /// A meter whose blocks start `phase` (mod [`PHASES`]) sixteenths of a block after
    /// the stream's first block (allocates: net or main thread).
    ///
    /// # Example
    /// ```
    /// use izyrt::hub::drift::DriftMeter;
    /// let (mut a, mut b) = (DriftMeter::at_phase(48_000, 0), DriftMeter::at_phase(48_000, 8));
    /// let mut first = [None, None];
    /// for i in 0..48_000 * 12 / 64u64 {
    ///     for (m, f) in [&mut a, &mut b].into_iter().zip(&mut first) {
    ///         m.observe(i * 64 + 500, 0.0, i * 64);
    ///         if f.is_none() && m.ppm().is_some() {
    ///             *f = Some(i);
    ///         }
    ///     }
    /// }
    /// // b's first reading comes half a block (375 periods of 64) after a's.
    /// assert_eq!(first[1].unwrap() - first[0].unwrap(), 375);
    /// ```
    pub fn at_phase(rate: u32, phase: u64) -> DriftMeter {
        let block_frames = (f64::from(rate.max(1)) * BLOCK_S) as u64;
        DriftMeter {
            skip_frames: block_frames + block_frames * (phase % PHASES) / PHASES,
            every_frames: (block_frames / READINGS as u64).max(1),
            origin: None,
            next: 0,
            // A block of READINGS readings spans a little less than BLOCK_S: room for the
            // one that closes it.
            estimate: RateEstimate::with_limits(rate, READINGS + 8, RANGE_PPM),
            locked: false,
        }
    }

    /// One mixer period: the stream's newest position + 1 (`end`), less the part of the
    /// newest packet not yet earned (`unearned`, `dsp::playout::unearned_frames`), after
    /// `mixed` frames of the mixer's clock.
    ///
    /// Runs on: the RT mixer thread, once per period per input. Must not: allocate, lock,
    /// block (a comparison most periods; a median over [`READINGS`] and a fit over fixed
    /// arrays once a block).
    pub fn observe(&mut self, end: u64, unearned: f64, mixed: u64) {
        let origin = *self.origin.get_or_insert(mixed);
        if mixed.wrapping_sub(origin) < self.skip_frames
            || (mixed.wrapping_sub(self.next) as i64) < 0
        {
            return;
        }
        self.next = mixed.wrapping_add(self.every_frames);
        self.estimate.observe(mixed, end as f64 - unearned);
    }

    /// The drift observed, ppm (positive: the sender runs fast), once
    /// [`MIN_POINTS`](crate::dsp::slope::MIN_POINTS) blocks were measured (the first is
    /// not); kept across a restart until new blocks replace it.
    pub fn ppm(&self) -> Option<f64> {
        self.estimate.ppm()
    }

    /// Whether the sender says it is locked to the hub's clock (its newest packet's AUDIO
    /// flag `CLOCK_LOCKED`). Where this changes, the stream's rate changed: the
    /// measurement starts again and the reading is dropped until new blocks make one.
    ///
    /// Runs on: the RT mixer thread, once per period per input. Must not: allocate, lock,
    /// block.
    pub fn set_sender_locked(&mut self, locked: bool) {
        if locked != self.locked {
            self.locked = locked;
            self.origin = None;
            self.estimate.forget();
        }
    }

    /// What the sender's newest packet said of its clock ([`DriftMeter::set_sender_locked`]).
    pub fn sender_locked(&self) -> bool {
        self.locked
    }

    /// Forgets the stream (it restarted; the reading is kept).
    ///
    /// Runs on: the RT mixer thread. Must not: allocate, lock, block.
    pub fn reset(&mut self) {
        self.origin = None;
        self.estimate.restart();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender at `ppm` for `secs`, its newest position `late(i)` frames behind at
    /// mixer period `i`; the meter's figure at the end.
    fn run(ppm: f64, secs: u64, late: impl Fn(u64) -> u64) -> Option<f64> {
        let mut d = DriftMeter::at_phase(48_000, 0);
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
        let mut told = DriftMeter::at_phase(48_000, 0);
        let mut untold = DriftMeter::at_phase(48_000, 0);
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
    fn a_sender_that_flips_its_lock_flag_at_every_packet_reads_nothing_until_it_stops() {
        // A broken or hostile client sets CLOCK_LOCKED on every other packet for 60 s:
        // each flip starts the measurement again (O(1)), so no reading forms from a
        // stream whose rate is not known, and none is kept from before; once the flag
        // holds, the meter reads the stream as it does from a lock.
        let mut d = DriftMeter::at_phase(48_000, 0);
        let mut end = 1_000_000u64;
        let steady_from = 48_000 * 60 / 64u64;
        for i in 0..48_000 * 80 / 64u64 {
            let mixed = i * 64;
            end += 64;
            d.set_sender_locked(i >= steady_from || i % 2 == 0);
            d.observe(end, 0.0, mixed);
            if i == steady_from - 1 {
                assert_eq!(d.ppm(), None, "a reading while the flag flipped");
            }
        }
        let ppm = d.ppm().expect("measured once the flag held");
        assert!(ppm.abs() < 2.0, "{ppm}");
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
            let mut d = DriftMeter::at_phase(48_000, 0);
            let mut plain = DriftMeter::at_phase(48_000, 0);
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

    /// A sender on the hub's clock whose host stalls: `stalls` a second (Poisson), each
    /// 2 to `longest_ms` ms, hold its packets back and then send them at once; the hub's
    /// mixer stalls half as often (its periods then run late, in a burst); `losses` a
    /// second its device loses a packet's time (an xrun: the stream falls behind for
    /// good). Packets of 64 frames, mixer periods of 64 at 48 kHz; the meter's reading at
    /// each second from the 11th (ten blocks after the first measured one).
    fn noisy(seed: u64, secs: u64, stalls: f64, longest_ms: f64, losses: f64) -> Vec<f64> {
        let mut rng = seed;
        let mut uniform = move || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        let period = 64.0 / 48_000.0;
        // Stall intervals, s: the sender's and the mixer's.
        let intervals = |rate: f64, uniform: &mut dyn FnMut() -> f64| {
            let mut v = Vec::new();
            let mut t = 0.0;
            while t < secs as f64 {
                t += -(1.0 - uniform()).ln() / rate;
                let len = (2.0 + uniform() * (longest_ms - 2.0)) * 1e-3;
                v.push((t, t + len));
                t += len;
            }
            v
        };
        let sender = intervals(stalls, &mut uniform);
        let mixer = intervals(stalls / 2.0, &mut uniform);
        let release = |t: f64, v: &[(f64, f64)]| {
            v.iter()
                .find(|&&(a, b)| t >= a && t < b)
                .map_or(t, |&(_, b)| b)
        };
        let mut d = DriftMeter::at_phase(48_000, 0);
        let mut readings = Vec::new();
        let (mut k, mut lost, mut last_arrival) = (0u64, 0u64, 0.0f64);
        let mut next: Option<(u64, f64)> = None;
        let mut newest: Option<(u64, f64)> = None;
        for i in 0..48_000 * secs / 64 {
            let now = release(i as f64 * period, &mixer);
            loop {
                let (end, at) = *next.get_or_insert_with(|| {
                    k += 1;
                    if uniform() < losses * period {
                        lost += 64;
                    }
                    let done = k as f64 * period;
                    let at = (release(done, &sender) + 2e-4 + uniform() * 5e-4).max(last_arrival);
                    last_arrival = at;
                    (k * 64 - lost + 1_000_000, at)
                });
                if at > now {
                    break;
                }
                newest = Some((end, at));
                next = None;
            }
            if let Some((end, at)) = newest {
                let age = ((now - at) * 1e9) as u64;
                let unearned = crate::dsp::playout::unearned_frames(64, age, 48_000.0);
                d.observe(end, unearned, i * 64);
            }
            if i % 750 == 0 && i >= 750 * 11 {
                readings.push(d.ppm().unwrap_or(f64::NAN));
            }
        }
        readings
    }

    #[test]
    fn a_locked_sender_on_a_host_that_stalls_reads_near_zero() {
        // Block minima read these at 150–1431 ppm at worst (stalls alone) and 478–1653
        // (with the losses); block medians at most 4 and 27.
        for seed in 1..=8 {
            let stalls = noisy(seed, 60, 3.0, 20.0, 0.0);
            let worst = stalls.iter().fold(0.0f64, |w, p| w.max(p.abs()));
            assert!(worst < 10.0, "seed {seed}, stalls: {stalls:?}");
            let both = noisy(seed, 60, 3.0, 20.0, 0.2);
            let worst = both.iter().fold(0.0f64, |w, p| w.max(p.abs()));
            assert!(worst < 30.0, "seed {seed}, stalls and losses: {both:?}");
        }
    }

    #[test]
    fn inputs_that_joined_together_close_their_blocks_apart() {
        // 128 inputs whose streams started in the same mixer period, meters built in turn:
        // in no period do more than 128 / PHASES of them make their first reading.
        let mut meters: Vec<DriftMeter> =
            (0..128).map(|n| DriftMeter::at_phase(48_000, n)).collect();
        let mut worst = 0;
        for i in 0..48_000 * 12 / 64u64 {
            let mut first = 0;
            for m in &mut meters {
                let before = m.ppm().is_some();
                m.observe(i * 64 + 500, 0.0, i * 64);
                first += usize::from(!before && m.ppm().is_some());
            }
            worst = worst.max(first);
        }
        assert!(meters.iter().all(|m| m.ppm().is_some()));
        assert_eq!(worst, 128 / PHASES as usize);
    }
}
