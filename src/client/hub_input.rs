//! The capture's second loop: this client's input at the hub held at the hub's target by
//! the capture's resampler (the report: net thread, per METADATA; the loop: RT audio
//! thread, per capture period).
//!
//! Design: the capture is resampled by the clock estimate, so that the hub receives its
//! own rate *on average*. What the estimate cannot repay is time either side loses
//! without a trace in the stream: a JACK server's lost cycles (this VM's `jackd -d dummy`
//! loses one or two a second on each side), a card that stalls. Each loss moves this
//! client's input depth at the hub by the time lost, for good: the hub's input then walks
//! (a sawtooth of a period's drop and a slow climb, measured at 32 frames: 30 to 260
//! frames against a floor of 128) until it runs dry, a miss every mix hears, or stands so
//! far above its target that the hub trims it, a splice. The hub cannot resample its
//! inputs (that would cost it per peer); this client can, as it already does. So the hub
//! tells each client where its input stands (METADATA, `jitterExcessFrames`: the mean of
//! the depth before each of the hub's pulls less its target, over the last quarter
//! second; 0 where priming left it) and the capture adds a correction that brings it
//! back: what a client's playout does for its own buffer with the speaker's ratio, done
//! for the hub's.
//!
//! The correction is proportional: it repays the excess in [`TAU_S`], no faster than
//! [`MAX_PPM`] (the bound a latency move has on the speaker: 3.5 cents on the capture the
//! hub hears) and moves at most [`SLEW_PPM_PER_S`], so that a report's step is a glide. A
//! report older than [`STALE_S`] (a hub that does not send the key, a stalled link, a new
//! connection) lets the correction glide back to 0, and the capture is the estimate's
//! alone, as before. The estimate still does the work (a card's skew of hundreds of ppm);
//! this loop carries only the residue, so it needs no integral. In `playout_sim`'s JACK
//! rows (losses on both sides, the mixer's own input buffer) the hub's input misses
//! 35–63 % less often than by the estimate alone, at the same mean depth
//! (`benches/RESULTS.md`). The report comes every 500 ms (the hub's METADATA cadence)
//! and a few ms late, which a 2 s loop does not notice (tried in the simulation: 0.3 s
//! late moved the input's spread by about 1 ms). The hub's drift meter of this client
//! reads these moves as the stream's rate while they last (its input brought to a target
//! that moved; after the lock, the excess the unlocked start left).

use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds in which the correction repays an excess.
pub const TAU_S: f64 = 2.0;
/// The largest correction, ppm either way.
pub const MAX_PPM: f64 = 2000.0;
/// How fast the correction moves, ppm per second.
pub const SLEW_PPM_PER_S: f64 = 4000.0;
/// A report older than this no longer steers the capture, s.
pub const STALE_S: f64 = 2.0;

/// Where this client's input stands at the hub, as the hub last said (written by the net
/// thread, read by the capture).
///
/// # Example
/// ```
/// use izyrt::client::hub_input::HubInputReport;
/// let r = HubInputReport::default();
/// assert_eq!(r.latest(), None);
/// r.report(-48.0, 1_000);
/// assert_eq!(r.latest(), Some((-48.0, 1_000)));
/// r.clear();
/// assert_eq!(r.latest(), None);
/// ```
#[derive(Debug)]
pub struct HubInputReport {
    /// The excess, frames of the hub's stream (f64 bits).
    excess: AtomicU64,
    /// Monotonic ns the report arrived (0: none).
    at_ns: AtomicU64,
}

impl Default for HubInputReport {
    fn default() -> HubInputReport {
        HubInputReport {
            excess: AtomicU64::new(0f64.to_bits()),
            at_ns: AtomicU64::new(0),
        }
    }
}

impl HubInputReport {
    /// The hub said this client's input stands `excess_frames` above its target (below
    /// when negative), received at `now_ns`. Not finite: ignored.
    ///
    /// Runs on: the net thread, per METADATA. Must not: block (two stores).
    pub fn report(&self, excess_frames: f64, now_ns: u64) {
        if !excess_frames.is_finite() {
            return;
        }
        self.excess
            .store(excess_frames.to_bits(), Ordering::Relaxed);
        self.at_ns.store(now_ns.max(1), Ordering::Release);
    }

    /// Forgets the report (the connection ended: the next hub's input is another one).
    pub fn clear(&self) {
        self.at_ns.store(0, Ordering::Release);
    }

    /// The latest report and when it came, if any.
    pub fn latest(&self) -> Option<(f64, u64)> {
        let at = self.at_ns.load(Ordering::Acquire);
        (at != 0).then(|| (f64::from_bits(self.excess.load(Ordering::Relaxed)), at))
    }
}

/// The correction the capture adds to the clock estimate, from the hub's reports.
///
/// # Example
/// ```
/// use izyrt::client::hub_input::{HubInputReport, HubInputLoop, MAX_PPM};
/// let report = HubInputReport::default();
/// let mut l = HubInputLoop::new(48_000);
/// // The hub says the input is 480 frames short: 10 ms, to repay in 2 s, is 5000 ppm,
/// // more than the bound; the correction glides there.
/// report.report(-480.0, 1);
/// let mut ppm = 0.0;
/// for k in 1..=1000u64 {
///     ppm = l.correction_ppm(&report, k * 1_333_333);
/// }
/// assert_eq!(ppm, MAX_PPM);
/// ```
#[derive(Debug, Clone)]
pub struct HubInputLoop {
    rate: f64,
    ppm: f64,
    last_ns: Option<u64>,
}

impl HubInputLoop {
    /// A loop for a stream of `rate` Hz, with no correction yet.
    pub fn new(rate: u32) -> HubInputLoop {
        HubInputLoop {
            rate: f64::from(rate.max(1)),
            ppm: 0.0,
            last_ns: None,
        }
    }

    /// The correction at `now_ns` (monotonic), ppm: positive sends the hub more frames.
    ///
    /// Runs on: the RT audio thread, once per capture period. Must not: allocate, lock,
    /// block (arithmetic and two atomic loads).
    pub fn correction_ppm(&mut self, report: &HubInputReport, now_ns: u64) -> f64 {
        let want = match report.latest() {
            Some((excess, at)) if (now_ns.saturating_sub(at) as f64) < STALE_S * 1e9 => {
                (-excess / (TAU_S * self.rate) * 1e6).clamp(-MAX_PPM, MAX_PPM)
            }
            _ => 0.0,
        };
        let dt = self
            .last_ns
            .map_or(0.0, |t| now_ns.saturating_sub(t) as f64 / 1e9);
        self.last_ns = Some(now_ns);
        let step = SLEW_PPM_PER_S * dt.min(1.0);
        self.ppm += (want - self.ppm).clamp(-step, step);
        self.ppm
    }

    /// Back to no correction (a new connection).
    pub fn reset(&mut self) {
        self.ppm = 0.0;
        self.last_ns = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD_NS: u64 = 1_333_333;

    fn run(l: &mut HubInputLoop, r: &HubInputReport, from: u64, periods: u64) -> f64 {
        let mut ppm = 0.0;
        for k in from..from + periods {
            ppm = l.correction_ppm(r, k * PERIOD_NS);
        }
        ppm
    }

    #[test]
    fn an_excess_is_repaid_in_the_loops_time_the_other_way() {
        let r = HubInputReport::default();
        let mut l = HubInputLoop::new(48_000);
        // 48 frames above the target: 1 ms to repay in 2 s, 500 ppm fewer frames.
        r.report(48.0, 1);
        let ppm = run(&mut l, &r, 1, 750);
        assert!((ppm + 500.0).abs() < 1e-9, "{ppm}");
        r.report(-48.0, 750 * PERIOD_NS);
        let ppm = run(&mut l, &r, 751, 750);
        assert!((ppm - 500.0).abs() < 1e-9, "{ppm}");
    }

    #[test]
    fn a_step_in_the_report_is_a_glide() {
        let r = HubInputReport::default();
        let mut l = HubInputLoop::new(48_000);
        r.report(-1e6, 1);
        let mut last = 0.0;
        for k in 1..600u64 {
            let ppm = l.correction_ppm(&r, k * PERIOD_NS);
            let per_period = SLEW_PPM_PER_S * PERIOD_NS as f64 / 1e9;
            assert!(ppm - last <= per_period + 1e-9, "{last} → {ppm}");
            last = ppm;
        }
        assert_eq!(last, MAX_PPM, "bounded");
    }

    #[test]
    fn no_report_or_a_stale_one_steers_nothing() {
        let r = HubInputReport::default();
        let mut l = HubInputLoop::new(48_000);
        assert_eq!(run(&mut l, &r, 1, 1000), 0.0, "no report");
        r.report(-480.0, 1001 * PERIOD_NS);
        assert_eq!(run(&mut l, &r, 1001, 1000), MAX_PPM);
        // The hub went quiet: 2 s after its last report the correction glides back to 0.
        assert_eq!(run(&mut l, &r, 2001, 2000), 0.0, "stale");
        r.report(f64::NAN, 4001 * PERIOD_NS);
        assert_eq!(r.latest(), Some((-480.0, 1001 * PERIOD_NS)), "NaN ignored");
        r.report(-480.0, 4001 * PERIOD_NS);
        r.clear();
        assert_eq!(run(&mut l, &r, 4001, 1000), 0.0, "cleared");
    }
}
