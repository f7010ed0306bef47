//! Clock recovery: how fast to play the hub's stream so that a client's device follows
//! the hub's clock (RT audio thread, once per device period).
//!
//! Design: the only evidence a client has of the hub's clock is its own buffer. If the hub
//! runs faster than the local device, the queued audio creeps up; slower, it drains. So the
//! controller reads the queued audio (jitter buffer plus resampler, in hub frames), smooths
//! it over [`FILL_SMOOTH_S`] (the packet sawtooth and the network's jitter average out),
//! and drives a proportional-integral loop on its error against the target: the integral
//! term follows the clock ratio, the proportional term moves the fill towards the target.
//! This is zita-njbridge's second-order loop and roc-toolkit's frequency estimator in one
//! form; as a loop on the buffer's fill it needs no timestamps from the hub. The integral
//! is the loop's working estimate only: the figure reported (`clockRatioPpm`) and used by
//! the capture side is measured apart from the loop, in `rate.rs`, because the guards
//! below, which keep the loop steady through a stall, leave the integral a few ppm off on
//! a host whose stalls all point one way.
//!
//! The loop is critically damped (ζ = 1). Its bandwidth is scheduled: wide while acquiring
//! ([`ACQUIRE_HZ`]: a ±1000 ppm clock is followed within a few seconds, and the fill strays
//! by well under a period while it is), narrow once locked ([`TRACK_HZ`]: the estimate's
//! noise falls with the bandwidth, to a fraction of a ppm at a period of jitter). The
//! estimate learns from an error bounded to half a millisecond, not while a latency move
//! runs faster than 200 ppm, and not at all for half a second after a gap: on real hosts a stall of a few milliseconds and the burst after it
//! swung an unguarded estimate by a thousand ppm (measured: +2000 ppm within a second of a
//! stall, from a true −300).
//!
//! Latency moves ride on the same loop: when the buffer policy raises or lowers the target,
//! the loop's setpoint travels to it at a speed bounded to ±[`MOVE_PPM`], and that speed is
//! played directly (feed-forward), slower or faster, until the fill arrives. 2000 ppm is
//! 3.5 cents of pitch, below the smallest pitch difference listeners tell apart in a
//! sustained tone (about 5 cents), and it moves a 64-frame target in about a second. The
//! loop itself only follows the setpoint, so a move does not disturb the clock estimate.
//! Finally the output ratio is slewed by at most [`SLEW_PPM_PER_S`], so that nothing the
//! loop does can be heard as wobble.

/// The smoothing of the fill measurement, s (one-pole low-pass).
pub const FILL_SMOOTH_S: f64 = 0.1;
/// Loop bandwidth while acquiring, Hz.
pub const ACQUIRE_HZ: f64 = 0.2;
/// Loop bandwidth once locked, Hz.
pub const TRACK_HZ: f64 = 0.02;
/// Seconds of acquisition before the bandwidth narrows.
pub const ACQUIRE_S: f64 = 6.0;
/// The largest clock difference followed, ppm.
pub const RANGE_PPM: f64 = 2000.0;
/// The largest extra speed-up or slow-down used to move the latency, ppm.
pub const MOVE_PPM: f64 = 2000.0;
/// How fast the setpoint approaches a new target, 1/s: 1 ms away it moves at 0.1 %,
/// so a move starts and ends smoothly.
const MOVE_GAIN: f64 = 1.0;
/// The largest fill error, s, the clock estimate learns from.
const LEARN_MAX_S: f64 = 0.5e-3;
/// A latency move faster than this, ppm, holds the estimate's learning (the fill's error
/// then is the move's, not the clocks').
const LEARN_WHILE_MOVING_PPM: f64 = 200.0;
/// Seconds after a gap during which the clock estimate does not learn.
const HOLD_AFTER_GAP_S: f64 = 0.5;
/// The fastest the ratio may change, ppm per second.
pub const SLEW_PPM_PER_S: f64 = 4000.0;

/// The controller's state.
///
/// # Example
/// ```
/// use izyrt::dsp::playout::clock::ClockLock;
/// // The hub's clock runs 500 ppm fast against a client pulling 64 frames at 48 kHz.
/// let mut c = ClockLock::new(48_000);
/// let (mut fill, target) = (256.0, 256.0);
/// for _ in 0..48_000 * 60 / 64 {
///     fill += 64.0 * 1.0005;           // what the hub sent in one device period
///     let step = c.update(fill, target, 64);
///     fill -= 64.0 * step;             // what the resampler consumed
/// }
/// assert!((c.clock_ppm() - 500.0).abs() < 2.0, "{}", c.clock_ppm());
/// assert!(c.locked());
/// ```
#[derive(Debug, Clone)]
pub struct ClockLock {
    rate: f64,
    /// Smoothed fill, frames (`None` before the first update).
    fill: Option<f64>,
    /// Where the loop holds the fill now, frames: on its way to the target.
    setpoint: Option<f64>,
    /// The clock estimate: hub frames per local frame, minus 1.
    drift: f64,
    /// The ratio last returned, minus 1.
    out: f64,
    /// Seconds since start (or the last [`reset`](Self::reset)).
    elapsed: f64,
    /// Seconds the error has stayed within half a period, once tracking.
    settled: f64,
    /// The estimate does not learn before this (seconds since start): set after a gap.
    hold_until: f64,
    /// A shift is waiting to be checked against the fill once the hold ends (see
    /// [`shift`](Self::shift)).
    check_shift: bool,
}

impl ClockLock {
    /// A controller for a stream at `rate` Hz, with no estimate yet.
    pub fn new(rate: u32) -> ClockLock {
        ClockLock {
            rate: f64::from(rate.max(1)),
            fill: None,
            setpoint: None,
            drift: 0.0,
            out: 0.0,
            elapsed: 0.0,
            settled: 0.0,
            hold_until: 0.0,
            check_shift: false,
        }
    }

    /// One device period of `frames` local frames: with `fill` hub frames queued (jitter
    /// buffer plus resampler) and the policy's `target`, returns the step to resample by
    /// (hub frames to consume per local frame, near 1).
    ///
    /// Runs on: the RT audio thread, once per device period. Must not: allocate, lock,
    /// block (arithmetic only; a non-finite input is ignored).
    pub fn update(&mut self, fill: f64, target: f64, frames: u32) -> f64 {
        let dt = f64::from(frames.max(1)) / self.rate;
        if !fill.is_finite() || !target.is_finite() {
            return 1.0 + self.out;
        }
        self.elapsed += dt;
        let smooth = self.fill.get_or_insert(fill);
        *smooth += (fill - *smooth) * (dt / FILL_SMOOTH_S).min(1.0);
        let hz = if self.elapsed < ACQUIRE_S {
            ACQUIRE_HZ
        } else {
            TRACK_HZ
        };
        let wn = 2.0 * std::f64::consts::PI * hz;
        let (kp, ki) = (2.0 * wn, wn * wn);
        // The setpoint travels to the target at a bounded, smoothly varying speed, and
        // that speed is played directly (feed-forward): the loop itself only ever sees
        // the small error of following it, so a latency move leaves the clock estimate
        // alone.
        // (The setpoint moves at most at three quarters of the bound, so the loop keeps room
        // to correct while it follows.)
        let max_speed = 0.75 * MOVE_PPM * 1e-6 * self.rate;
        // A (re)start holds the fill it finds and travels to the target from there (a
        // priming burst read as drift would wind the estimate up the wrong way).
        let set = self.setpoint.get_or_insert(*smooth);
        if self.check_shift && self.elapsed >= self.hold_until {
            // Whatever of a shift has not come back by now never will: the stream fell
            // behind for good (a hub that lost time), or the ring could not hold the burst.
            // Steering for it would play slow at the bound until the fill overran (measured
            // in `playout_sim`: 30 s at −1700 ppm and three emergency trims after a hub's
            // 200 ms loss). Hold the fill there is, and let the target move it smoothly.
            self.check_shift = false;
            *set = set.min(*smooth);
        }
        let speed = ((target - *set) * MOVE_GAIN).clamp(-max_speed, max_speed);
        *set += speed * dt;
        let e = (*smooth - *set) / self.rate;
        // The estimate learns only from undisturbed periods, and from a bounded error: a
        // stall and the burst after it say nothing about the clocks, and one of a few
        // milliseconds would otherwise swing the estimate by a thousand ppm while the loop
        // is wide.
        let moving = speed.abs() / self.rate > LEARN_WHILE_MOVING_PPM * 1e-6;
        if self.elapsed >= self.hold_until && !moving {
            let learn = e.clamp(-LEARN_MAX_S, LEARN_MAX_S);
            self.drift = (self.drift + ki * learn * dt).clamp(-RANGE_PPM * 1e-6, RANGE_PPM * 1e-6);
        }
        let bound = MOVE_PPM * 1e-6;
        let want = self.drift + (kp * e - speed / self.rate).clamp(-bound, bound);
        let slew = SLEW_PPM_PER_S * 1e-6 * dt;
        self.out += (want - self.out).clamp(-slew, slew);
        let half_period = 0.5 * f64::from(frames) / self.rate;
        if self.elapsed >= ACQUIRE_S && e.abs() < half_period {
            self.settled += dt;
        } else {
            self.settled = 0.0;
        }
        1.0 + self.out
    }

    /// The loop's integral, ppm: its working estimate of the clock difference (positive
    /// when the hub's clock runs faster than this device's).
    pub fn clock_ppm(&self) -> f64 {
        self.drift * 1e6
    }

    /// The ratio currently resampled by (hub frames per local frame).
    pub fn ratio(&self) -> f64 {
        1.0 + self.out
    }

    /// The queue was shifted by `frames` that are not the clocks' doing: frames played
    /// while the buffer was dry (a concealment that did not consume the stream, so the
    /// audio that comes back later sits that much deeper). The setpoint moves with it, and
    /// the policy decides whether the depth stays (it measured the lateness that caused
    /// it) or drains smoothly. The audio is expected back with the burst that ends a stall;
    /// what has not come back when the hold after the gap ends is let go (the setpoint
    /// falls to the fill there is). RT-safe.
    pub fn shift(&mut self, frames: f64) {
        if !frames.is_finite() || frames == 0.0 {
            return;
        }
        // The stall behind it, and the burst that follows, are not the clocks' doing.
        self.hold_until = self.elapsed + HOLD_AFTER_GAP_S;
        self.check_shift = true;
        if let Some(s) = &mut self.setpoint {
            *s += frames;
        }
        if let Some(f) = &mut self.fill {
            *f += frames;
        }
    }

    /// Whether the loop has narrowed and its fill has followed the setpoint within half a
    /// period for a second.
    pub fn locked(&self) -> bool {
        self.settled >= 1.0
    }

    /// Starts acquiring again (a new stream, a reconnect), keeping the clock estimate: the
    /// device and the hub are likely the same two clocks.
    pub fn reset(&mut self) {
        self.fill = None;
        self.setpoint = None;
        self.check_shift = false;
        self.elapsed = 0.0;
        self.settled = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `secs` at `ppm` with the hub's packets of 64 frames arriving with a jitter of
    /// up to `jitter` frames; returns the controller, the lowest and highest fill after
    /// `settle` seconds.
    fn run(ppm: f64, secs: u32, jitter: f64, settle: f64) -> (ClockLock, f64, f64) {
        let mut c = ClockLock::new(48_000);
        let target = 160.0;
        let (mut fill, mut lo, mut hi) = (target, f64::MAX, f64::MIN);
        let mut seed = 12345u64;
        let periods = 48_000 * secs / 64;
        for i in 0..periods {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let j = (seed >> 33) as f64 / (1u64 << 31) as f64 * jitter;
            fill += 64.0 * (1.0 + ppm * 1e-6);
            let seen = fill - j;
            let step = c.update(seen, target, 64);
            fill -= 64.0 * step;
            if f64::from(i) * 64.0 / 48_000.0 > settle {
                lo = lo.min(seen);
                hi = hi.max(seen);
            }
        }
        (c, lo, hi)
    }

    #[test]
    fn a_shift_whose_audio_never_comes_back_is_let_go() {
        let mut c = ClockLock::new(48_000);
        let (target, mut fill) = (160.0, 160.0);
        let period = |c: &mut ClockLock, fill: &mut f64| {
            *fill += 64.0;
            let step = c.update(*fill, target, 64);
            *fill -= 64.0 * step;
        };
        for _ in 0..750 * 10 {
            period(&mut c, &mut fill);
        }
        // 1000 frames concealed while dry, and no burst after them (the hub lost time).
        c.shift(1000.0);
        for _ in 0..750 * 2 {
            period(&mut c, &mut fill);
        }
        // Two seconds on the loop plays at the clocks' ratio, not at the slow bound.
        assert!((c.ratio() - 1.0).abs() < 200e-6, "{}", c.ratio());
        assert!((fill - target).abs() < 100.0, "{fill}");
    }

    #[test]
    fn locks_to_a_thousand_ppm_either_way() {
        for ppm in [1000.0, -1000.0, 37.0] {
            let (c, lo, hi) = run(ppm, 60, 64.0, 10.0);
            assert!(
                (c.clock_ppm() - ppm).abs() < 2.0,
                "{ppm}: {}",
                c.clock_ppm()
            );
            assert!(c.locked(), "{ppm}");
            // After lock the fill stays within a period of the target (plus the jitter).
            assert!(
                lo > 160.0 - 64.0 - 64.0 && hi < 160.0 + 64.0,
                "{ppm}: {lo}..{hi}"
            );
        }
    }

    #[test]
    fn a_latency_move_is_bounded_and_does_not_disturb_the_estimate() {
        let mut c = ClockLock::new(48_000);
        // `seen`: the fill the loop measures, with the period's packet in.
        let period = |c: &mut ClockLock, fill: &mut f64, target: f64| {
            *fill += 64.0 * 1.0003;
            let seen = *fill;
            let step = c.update(seen, target, 64);
            *fill -= 64.0 * step;
            (seen, step)
        };
        let mut fill = 192.0;
        for _ in 0..48_000 * 20 / 64 {
            period(&mut c, &mut fill, 256.0);
        }
        let before = c.clock_ppm();
        // The target falls by 192 frames: played faster, by at most MOVE_PPM over the clock.
        let (mut max_ratio, mut seen) = (0.0f64, 0.0);
        for _ in 0..48_000 * 5 / 64 {
            let (s, step) = period(&mut c, &mut fill, 64.0);
            max_ratio = max_ratio.max(step);
            seen = s;
        }
        assert!(
            (max_ratio - 1.0) * 1e6 <= 300.0 + MOVE_PPM + 20.0,
            "{max_ratio}"
        );
        // Within a third of a period after 5 s; at the target after 20 s more, without
        // overshoot.
        assert!((seen - 64.0).abs() < 20.0, "arrived: {seen}");
        let mut lowest = seen;
        for _ in 0..48_000 * 20 / 64 {
            seen = period(&mut c, &mut fill, 64.0).0;
            lowest = lowest.min(seen);
        }
        assert!((seen - 64.0).abs() < 4.0, "settled: {seen}");
        assert!(lowest > 64.0 - 8.0, "overshoot to {lowest}");
        assert!(
            (c.clock_ppm() - before).abs() < 20.0,
            "{before} -> {}",
            c.clock_ppm()
        );
    }

    #[test]
    fn the_ratio_is_slewed() {
        let mut c = ClockLock::new(48_000);
        let mut last = c.update(0.0, 0.0, 64);
        for _ in 0..1000 {
            let r = c.update(10_000.0, 0.0, 64);
            assert!((r - last).abs() <= SLEW_PPM_PER_S * 1e-6 * 64.0 / 48_000.0 + 1e-12);
            last = r;
        }
        assert!(c.update(f64::NAN, 0.0, 64).is_finite());
    }
}
