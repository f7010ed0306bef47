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
//! a buffer with another stream's.

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
}

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
        Ok(InputBuffer {
            conceal: Conceal::new(cfg.channels, rate)?,
            buffer,
            lateness,
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
        self.buffer
            .pull_concealed(out, now_ns, cuts, &mut self.conceal)
    }

    /// Moves a playing input on by `n` frames of the stream that the hub's device skipped
    /// ([`JitterBuffer::skip`]).
    ///
    /// Runs on: the RT mixer thread, once per period. Must not: allocate, lock, block.
    pub fn skip(&mut self, n: u64) -> u64 {
        self.buffer.skip(n)
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
