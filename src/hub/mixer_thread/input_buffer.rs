//! A client input's jitter buffer with its lateness floor and its concealment (RT mixer
//! thread, per packet and per period).
//!
//! Design: the hub's inputs keep their depth in whole periods by the probing rules of
//! `dsp/jitter/adapt.rs`, and under that a *floor*: the largest lateness of the input's
//! last 32 s, measured as a client's playout measures the hub's mix
//! (`dsp/playout/policy.rs`, on the hub device's time: `dsp/playout/device_time.rs`), so
//! that no quiet stretch gives back the depth the next stall needs. The rule is two lines
//! (measure every packet as it is stored, set the floor before each pull) that the mixer,
//! the `jitter_policy` bench and the allocation test all need exactly as the mixer runs
//! it; this type is that rule, once. It owns the input's concealment too, which its pulls
//! need (a gap ends in phase with it: `dsp/jitter/resume.rs`), so that no caller can pair
//! a buffer with another stream's. It also measures where the input stands against its
//! target (the excess the hub reports to the client, which steers its capture by it) and
//! gives a sender that locks to the hub's clock longer before the drift trim cuts an
//! excess that the sender is repaying ([`LOCKED_TRIM_S`]).

use crate::dsp::jitter::{JitterBuffer, PullResult, PushResult};
use crate::dsp::playout::conceal::{Conceal, ConcealError};
use crate::dsp::playout::device_time::DeviceTime;
use crate::dsp::playout::policy::{LatencyPolicy, PolicyConfig};

/// A hub input's [`JitterBuffer`] whose target never falls below the lateness its packets
/// showed in the last 32 s, read with its [`Conceal`].
///
/// # Example
/// ```
/// use izyrt::dsp::jitter::JitterBuffer;
/// use izyrt::dsp::playout::device_time::DeviceTime;
/// use izyrt::hub::mixer_thread::{InputBuffer, input_jitter_config};
/// let cfg = input_jitter_config(1, 64, 64, 48_000);
/// let mut input = InputBuffer::new(JitterBuffer::new(cfg).unwrap(), 48_000).unwrap();
/// let mut device = DeviceTime::new(48_000);
/// let period_ns = 1_333_333u64;
/// let mut out = vec![0.0f32; 64];
/// let mut cuts = 2;
/// // 2 s on time: the floor is the one period a pull needs.
/// for k in 0..1_500u64 {
///     input.push_at(k * 64, &[0.1; 64], k * period_ns, &device);
///     input.pull_within(&mut out, k * period_ns, &mut cuts);
///     device.tick(k * period_ns, 64);
/// }
/// assert_eq!(input.buffer().floor_frames(), 64);
/// // The hub's device goes on, and one packet comes 10 ms (480 frames) late: the next
/// // pull's floor covers it, in whole periods (64 + 480 → 576).
/// let late = 1_500 * period_ns + 10_000_000;
/// for k in 1_500..1_508u64 {
///     device.tick(k * period_ns, 64);
/// }
/// input.push_at(1_500 * 64, &[0.1; 64], late, &device);
/// input.pull_within(&mut out, late, &mut cuts);
/// assert_eq!(input.buffer().floor_frames(), 576);
/// ```
#[derive(Debug)]
pub struct InputBuffer {
    buffer: JitterBuffer,
    lateness: LatencyPolicy,
    conceal: Conceal,
    /// The depth before each pull less the target, frames: a moving mean over about
    /// [`EXCESS_S`] (what the hub tells the client, which steers its capture by it:
    /// `client/hub_input.rs`). A buffer that started at its target (priming) and receives
    /// what it plays stands at 0: each pull finds the target.
    excess: f64,
    /// The mean's weight of one period.
    excess_weight: f64,
    /// The drift rule's wait for a sender locked to the hub's clock, pulls
    /// ([`LOCKED_TRIM_S`]).
    locked_trim_pulls: u32,
}

/// The time the reported excess averages over, s: long enough to smooth the phase of
/// the packets against the pulls (a period's swing), short against the client's loop
/// (`client::hub_input::TAU_S`).
pub const EXCESS_S: f64 = 0.25;

/// How long the input of a sender locked to the hub's clock (AUDIO flag `CLOCK_LOCKED`)
/// may stand above its target and slack before the drift rule trims it, s (an unlocked
/// sender's: `drift_pulls`, 1 s). A locked sender sends the hub's rate on average, so such
/// an excess is not drift but time one side lost (a lost cycle of the hub's device, a
/// burst), which an izyrt client repays from the hub's reports: at the loop's bound,
/// 2000 ppm, a lost cycle of 3 ms in 1.5 s, after a report that comes within 0.5 s and a
/// slew of up to 0.5 s. Trimmed after 1 s, what it was repaying is cut out (a splice) and
/// the repayment then digs the input short of its target (a miss later). By simulation
/// (`playout_sim`'s JACK rows, five seeds of 300 s) 4 s against 1 s: 0–36 % fewer misses
/// at the input and 0–100 % fewer frames dropped (never more), at 0–2.1 ms more mean
/// depth, an excess repaid rather than cut (`benches/RESULTS.md`). A locked sender that
/// does not follow the reports is trimmed all the same, 3 s later.
pub const LOCKED_TRIM_S: f64 = 4.0;

impl InputBuffer {
    /// `buffer` with its lateness measured and its gaps concealed at the hub's `rate`
    /// (net or main thread; allocates).
    ///
    /// # Errors
    /// [`ConcealError`] when `rate` or the buffer's channels are out of range.
    pub fn new(buffer: JitterBuffer, rate: u32) -> Result<InputBuffer, ConcealError> {
        let cfg = buffer.config();
        let lateness = LatencyPolicy::new(PolicyConfig {
            rate,
            need_frames: cfg.period_frames,
            // The buffer rounds the floor up to whole periods and starts with half a
            // period of margin in time (`JitterConfig::margin_ns`).
            margin_frames: 0,
            min_frames: cfg.min_target_frames,
            max_frames: cfg.max_target_frames,
        });
        let excess_weight =
            (f64::from(cfg.period_frames) / (f64::from(rate.max(1)) * EXCESS_S)).min(1.0);
        let locked_trim_pulls = ((LOCKED_TRIM_S * f64::from(rate) / f64::from(cfg.period_frames))
            as u32)
            .max(cfg.drift_pulls);
        Ok(InputBuffer {
            conceal: Conceal::new(cfg.channels, rate)?,
            buffer,
            lateness,
            excess: 0.0,
            excess_weight,
            locked_trim_pulls,
        })
    }

    /// Stores a packet at stream `position` that arrived at `arrival_ns` (monotonic) and
    /// measures its lateness on the time of the hub's `device`.
    ///
    /// Runs on: the RT mixer thread, once per packet. Must not: allocate, lock, block.
    pub fn push_at(
        &mut self,
        position: u64,
        samples: &[f32],
        arrival_ns: u64,
        device: &DeviceTime,
    ) -> PushResult {
        let r = self.buffer.push_at(position, samples, arrival_ns);
        // A locked client sends at the hub's rate; one that does not drifts by at most a
        // few hundred ppm, which tilts half a second's lateness base by a fraction of a
        // millisecond: no clock estimate here.
        let frames = (samples.len() / usize::from(self.buffer.config().channels).max(1)) as u32;
        self.lateness
            .on_packet(position, frames, device.at(arrival_ns), 0.0);
        r
    }

    /// Sets the floor from the lateness measured so far and pulls one period, concealed
    /// ([`JitterBuffer::pull_concealed`]): `out` is what the mix hears of this input.
    ///
    /// Runs on: the RT mixer thread, once per period. Must not: allocate, lock, block
    /// (at most `*cuts` searches for a cut, a resume in phase or a concealment's lag).
    pub fn pull_within(&mut self, out: &mut [f32], now_ns: u64, cuts: &mut u32) -> PullResult {
        self.buffer.set_floor(self.lateness.target_frames());
        let b = &self.buffer;
        let x = b.depth_frames() as f64 - f64::from(b.target_frames());
        self.excess += (x - self.excess) * self.excess_weight;
        self.buffer
            .pull_concealed(out, now_ns, cuts, &mut self.conceal)
    }

    /// Says whether the sender's newest packet carried `CLOCK_LOCKED`: the drift rule then
    /// waits [`LOCKED_TRIM_S`] before it trims, else the buffer's `drift_pulls`.
    ///
    /// Runs on: the RT mixer thread, once per period. Must not: allocate, lock, block.
    pub fn set_sender_locked(&mut self, locked: bool) {
        let pulls = if locked {
            self.locked_trim_pulls
        } else {
            self.buffer.config().drift_pulls
        };
        self.buffer.set_trim_pulls(pulls);
    }

    /// Moves a playing input on by `n` frames of the stream that the hub's device skipped
    /// ([`JitterBuffer::skip`]).
    ///
    /// Runs on: the RT mixer thread, once per period. Must not: allocate, lock, block.
    pub fn skip(&mut self, n: u64) -> u64 {
        self.buffer.skip(n)
    }

    /// Where the input stands against its target, frames: the mean over about
    /// [`EXCESS_S`] of its depth before each pull less the target (0 for an input that
    /// receives what it plays since it started at its target; negative: short).
    pub fn excess_frames(&self) -> f64 {
        self.excess
    }

    /// The concealment (its counters: frames filled, searches run and skipped).
    pub fn conceal(&self) -> &Conceal {
        &self.conceal
    }

    /// The buffer (its figures, its gap and splice for concealment).
    pub fn buffer(&self) -> &JitterBuffer {
        &self.buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::mixer_thread::input_jitter_config;

    #[test]
    fn the_excess_says_where_the_input_stands_against_its_target() {
        let cfg = input_jitter_config(1, 64, 64, 48_000);
        let mut input = InputBuffer::new(JitterBuffer::new(cfg).unwrap(), 48_000).unwrap();
        let mut device = DeviceTime::new(48_000);
        let period_ns = 1_333_333u64;
        let (mut out, mut sent) = (vec![0.0f32; 64], 0u64);
        let mut run = |input: &mut InputBuffer, from: u64, to: u64, per_period: u64| {
            for k in from..to {
                for _ in 0..per_period {
                    input.push_at(sent * 64, &[0.1; 64], k * period_ns, &device);
                    sent += 1;
                }
                input.pull_within(&mut out, k * period_ns, &mut 2);
                device.tick(k * period_ns, 64);
            }
        };
        // A packet a period, each arriving as the pull comes: the input started a period
        // above its target (the start's margin in time: the newest frame a pull needs
        // must have waited half a period) and stays there.
        run(&mut input, 0, 1500, 1);
        let x = input.excess_frames();
        assert!((x - 64.0).abs() < 1.0, "steady: {x}");
        assert_eq!(input.buffer().target_frames(), 64);
        // A period without a packet: the next comes a period late and the floor rises by
        // it at once, inserting nothing: the input stands a period short of its new
        // target, which is what the client's capture is asked to fill.
        run(&mut input, 1500, 1501, 0);
        run(&mut input, 1501, 3000, 1);
        let x = input.excess_frames();
        assert!((x + 64.0).abs() < 1.0, "short: {x}");
        assert_eq!(input.buffer().target_frames(), 128);
        // The sender sends a period more: at its target.
        run(&mut input, 3000, 3001, 2);
        run(&mut input, 3001, 4500, 1);
        let x = input.excess_frames();
        assert!(x.abs() < 1.0, "at the target: {x}");
    }
}
