//! A client's playout of the hub's mix, locked to the hub's clock (RT audio thread).
//!
//! Design: the hub's mixer clock is the one master clock of a session, and a client's
//! sound card never runs at exactly its rate. Rather than trim a period when the stream
//! runs ahead or play a hole when it falls behind (each one a click), the client plays the
//! stream slightly faster or slower through a resampler, by the ratio a clock-recovery
//! loop measures from the buffer's own fill. The parts, each in its own file:
//!
//! - the position-addressed ring (`dsp::jitter::JitterBuffer`, read with
//!   [`take`](crate::dsp::jitter::JitterBuffer::take): none of its own adaptation rules);
//! - [`policy`]: the latency target, from how late packets actually arrive, on the time of
//!   the device that plays them ([`device_time`]);
//! - [`clock`]: the loop that holds the fill at the target by the resampling ratio;
//! - [`rate`]: the clock estimate, measured from the stream's position against the
//!   device's frame count (the capture side resamples by it too, so the hub receives its
//!   own rate);
//! - `dsp::resampler`: the variable-ratio resampler;
//! - [`conceal`]: what plays when audio is missing, and cross-fades at any join;
//! - `rejoin.rs`: where the stream rejoins its concealment after a gap (in phase).
//!
//! Per period: measure the fill (ring plus what the resampler holds), let the loop choose
//! the step, read exactly the frames the resampler needs from the ring (concealing what is
//! not there, without moving the stream: a stall's burst then refills the buffer to the
//! depth the stall showed it needs), resample one device period. Nothing is dropped in
//! steady state; the only trim left is an emergency one (the fill far above the largest
//! target, after a long outage), and it is cross-faded.

pub mod clock;
pub mod conceal;
pub mod device_time;
pub mod policy;
pub mod rate;
mod rejoin;

use crate::dsp::jitter::{JitterBuffer, JitterConfig, JitterError, PullResult, PushResult};
use crate::dsp::resampler::{Resampler, ResamplerError};
use clock::ClockLock;
use conceal::{Conceal, ConcealError};
use device_time::DeviceTime;
use policy::{LatencyPolicy, PolicyConfig};
use rate::RateEstimate;
use rejoin::Rejoin;

/// The part of a packet of `frames` that counts as not yet arrived `age_ns` after it
/// landed, at `rate` Hz: all of it the instant it lands, none of it a packet's duration
/// later. A stream's newest position less this advances smoothly, where the position
/// itself steps by a packet at each arrival (see [`Playout::pull_at`]); the hub's drift
/// meter reads its inputs so too (`hub::drift`).
///
/// Runs on: any thread, RT included (arithmetic).
///
/// # Example
/// ```
/// use izyrt::dsp::playout::unearned_frames;
/// assert_eq!(unearned_frames(64, 0, 48_000.0), 64.0);
/// assert_eq!(unearned_frames(64, 666_667, 48_000.0).round(), 32.0);
/// assert_eq!(unearned_frames(64, 5_000_000, 48_000.0), 0.0);
/// ```
// Inlined across modules: the hub's mixer calls it per input per period.
#[inline]
pub fn unearned_frames(frames: u64, age_ns: u64, rate: f64) -> f64 {
    if frames == 0 {
        return 0.0;
    }
    let span_ns = frames as f64 / rate * 1e9;
    frames as f64 * (1.0 - age_ns as f64 / span_ns).clamp(0.0, 1.0)
}

/// How a [`Playout`] is sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayoutConfig {
    /// The ring: channels, capacity, and the target's limits (`min_target_frames`,
    /// `max_target_frames`; `slack_frames` is how far above the largest target the fill may
    /// stand before an emergency trim). Its adaptation settings are not used.
    pub ring: JitterConfig,
    /// Stream rate, Hz.
    pub rate: u32,
    /// Frames the speaker pulls per period (at the stream's rate).
    pub pull_frames: u32,
}

/// Why a [`Playout`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlayoutError {
    /// The ring's configuration was refused.
    #[error(transparent)]
    Ring(#[from] JitterError),
    /// The resampler's was.
    #[error("{0}")]
    Resampler(String),
    /// The concealment's was.
    #[error(transparent)]
    Conceal(#[from] ConcealError),
}

impl From<ResamplerError> for PlayoutError {
    fn from(e: ResamplerError) -> Self {
        PlayoutError::Resampler(e.to_string())
    }
}

/// The locked playout of one stream.
///
/// # Example
/// ```
/// use izyrt::dsp::jitter::JitterConfig;
/// use izyrt::dsp::jitter::PullResult;
/// use izyrt::dsp::playout::{Playout, PlayoutConfig};
/// let mut p = Playout::new(PlayoutConfig {
///     ring: JitterConfig { channels: 1, ..JitterConfig::default() },
///     rate: 48_000,
///     pull_frames: 64,
/// }).unwrap();
/// let mut out = [0.0f32; 64];
/// let period_ns = 1_333_333;
/// for i in 0..2_000u64 {
///     p.push_at(i * 64, &[0.25; 64], i * period_ns);
///     let r = p.pull(&mut out);
///     if i > 10 { assert_eq!(r, PullResult::Played); }
/// }
/// assert!((out[63] - 0.25).abs() < 1e-3);
/// assert_eq!((p.misses(), p.dropped_frames()), (0, 0));
/// ```
#[derive(Debug)]
pub struct Playout {
    ring: JitterBuffer,
    policy: LatencyPolicy,
    /// The device's time, which lateness is measured on.
    device_time: DeviceTime,
    clock: ClockLock,
    /// The clock estimate reported and used by the capture side (`rate.rs`).
    estimate: RateEstimate,
    /// Device frames pulled or skipped since the stream started playing.
    device_frames: u64,
    resampler: Resampler,
    conceal: Conceal,
    /// Where a gap ends (`rejoin.rs`).
    rejoin: Rejoin,
    /// Frames read from the ring for the resampler, one period's worth and some.
    scratch: Box<[f32]>,
    ch: usize,
    playing: bool,
    misses: u64,
    /// The current dry spell: the target when it began, and the frames concealed since
    /// (0: none).
    dry_from: u64,
    dry_frames: u64,
    trim_above: u64,
    /// The newest packet: when it arrived (monotonic ns), its frames, and the stream
    /// position it ends at (see [`Playout::pull_at`]).
    newest: (u64, u64, u64),
    rate: f64,
}

impl Playout {
    /// Builds the playout (main thread; allocates everything it will use).
    ///
    /// # Errors
    /// [`PlayoutError`] naming the part whose setting was refused.
    pub fn new(cfg: PlayoutConfig) -> Result<Playout, PlayoutError> {
        let ring = JitterBuffer::new(cfg.ring)?;
        let ch = usize::from(cfg.ring.channels);
        let pull = cfg.pull_frames.max(1);
        // The most one pull can need: a period at the fastest ratio, and the filter's reach.
        let most = pull as usize * 2 + 64;
        // The loop holds the fill as it would stand just before the next packet arrives
        // (see `pull_at`), so the margin covers only what that model misses: arrival
        // timestamps taken a little late, a pull a little early.
        let margin = pull / 4;
        let conceal = Conceal::new(cfg.ring.channels, cfg.rate)?;
        Ok(Playout {
            ring,
            policy: LatencyPolicy::new(PolicyConfig {
                rate: cfg.rate,
                need_frames: pull,
                margin_frames: margin,
                min_frames: cfg.ring.min_target_frames,
                max_frames: cfg.ring.max_target_frames,
            }),
            device_time: DeviceTime::new(cfg.rate),
            clock: ClockLock::new(cfg.rate),
            estimate: RateEstimate::new(cfg.rate),
            device_frames: 0,
            resampler: Resampler::new(cfg.ring.channels, most)?,
            rejoin: Rejoin::new(&conceal),
            conceal,
            scratch: vec![0.0; most * ch].into_boxed_slice(),
            ch,
            playing: false,
            misses: 0,
            dry_from: 0,
            dry_frames: 0,
            trim_above: u64::from(cfg.ring.max_target_frames) + u64::from(cfg.ring.slack_frames),
            newest: (0, 0, 0),
            rate: f64::from(cfg.rate.max(1)),
        })
    }

    /// Stores a packet of the hub's mix whose first frame is at stream `position`, received
    /// at `arrival_ns` (monotonic clock).
    ///
    /// Runs on: the RT audio thread, once per packet. Must not: allocate, lock, block.
    pub fn push_at(&mut self, position: u64, samples: &[f32], arrival_ns: u64) -> PushResult {
        let r = self.ring.push_at(position, samples, arrival_ns);
        // A dry ring that resumed further on: the frames concealed while it was dry were
        // taken as a lateness the stream would bring back (`ClockLock::shift`); those the
        // skip covers never come back. Without this, every lost packet would leave the
        // loop steering for a fill it cannot reach, running dry again and again.
        if self.playing && r.skipped > 0 {
            self.clock.shift(-(r.skipped as f64));
            // Nor was the dry spell so far lateness, as far as the skip covers it (still a
            // spell: its end rejoins in phase; the policy takes its share back itself).
            if self.dry_frames > 0 {
                self.dry_frames = self.dry_frames.saturating_sub(r.skipped).max(1);
            }
        }
        let frames = (samples.len() / self.ch) as u32;
        let end = position.saturating_add(u64::from(frames));
        if frames > 0 && end > self.newest.2 {
            self.newest = (arrival_ns, u64::from(frames), end);
        }
        if frames > 0 {
            let at = self.device_time.at(arrival_ns);
            self.policy
                .on_packet(position, frames, at, self.clock_ppm());
        }
        r
    }

    /// Fills `out` (one device period, interleaved) with the stream at the hub's clock.
    /// Silence before the stream has buffered its target; afterwards every period is
    /// audio, with what is missing concealed (a [`PullResult::Miss`]).
    ///
    /// Runs on: the RT audio thread, once per device period. Must not: allocate, lock,
    /// block or panic (any `out` length is served frame by frame).
    pub fn pull(&mut self, out: &mut [f32]) -> PullResult {
        self.pull_at(out, u64::MAX)
    }

    /// [`pull`](Self::pull) at `now_ns` (the monotonic clock of
    /// [`push_at`](Self::push_at)'s arrivals), which lets the clock loop see the fill
    /// independently of where the packets fall between pulls.
    ///
    /// Why: the fill read at a pull is a sawtooth sampled at a fixed phase. When the two
    /// clocks are close, that phase creeps, and when a packet's arrival crosses the pull
    /// instant the reading steps by a whole packet. A loop that held the reading at the
    /// target would, at every crossing towards later arrivals (every 4.4 s at −300 ppm
    /// with 64-frame packets), find a packet less than it counted on: a miss. So the loop
    /// holds the fill as it will stand just before the next packet lands: the reading,
    /// less the part of the newest packet that the time until the next arrival has not
    /// yet earned. That figure is continuous through a crossing. `u64::MAX`: no
    /// timestamps (the reading is used as it is).
    ///
    /// Runs on: the RT audio thread, once per device period. Must not: allocate, lock,
    /// block or panic.
    pub fn pull_at(&mut self, out: &mut [f32], now_ns: u64) -> PullResult {
        let frames = out.len() / self.ch;
        if now_ns != u64::MAX {
            self.device_time.tick(now_ns, frames as u64);
        }
        let target = u64::from(self.policy.target_frames());
        if !self.playing {
            out.fill(0.0);
            if self.ring.depth_frames() < target.max(1) {
                return PullResult::Priming;
            }
            self.playing = true;
            self.clock.reset();
            self.estimate.restart();
            self.resampler.reset();
            self.conceal.reset();
            self.rejoin.reset();
        }
        let depth = self.ring.depth_frames();
        if depth > self.trim_above {
            // The setpoint goes with the frames (or the loop would play slow to refill).
            let trimmed = self.ring.trim(depth - target);
            self.clock.shift(-(trimmed as f64));
        }
        let unearned = self.unearned_frames(now_ns);
        let fill = self.fill_frames() - unearned;
        self.estimate
            .observe(self.device_frames, self.newest.2 as f64 - unearned);
        self.device_frames = self.device_frames.saturating_add(frames as u64);
        let step = self.clock.update(
            fill,
            target as f64,
            u32::try_from(frames).unwrap_or(u32::MAX),
        );
        let need = self
            .resampler
            .input_needed(frames, step)
            .min(self.scratch.len() / self.ch);
        // A gap ending: the continuation may play on a little first, so that the stream
        // rejoins it in phase (`rejoin.rs`).
        if self.dry_frames > 0 {
            self.rejoin.plan(&self.ring, &self.conceal);
        }
        let ahead = self.rejoin.ahead(need);
        let buf = &mut self.scratch[..need * self.ch];
        let got = self.ring.take(&mut buf[ahead * self.ch..]);
        let hole = self.ring.gap();
        let missed = hole.is_some();
        // One range for the concealment: the continuation first, and any hole the ring
        // reported after it (a few real frames between the two are concealed too).
        let gap = match (ahead, hole) {
            (0, gap) => gap,
            (a, None) => Some(0..a),
            (a, Some(g)) => Some(0..a + g.end),
        };
        // Frames concealed without consuming the stream: the audio behind them now sits
        // that much deeper (see `ClockLock::shift`).
        self.clock.shift(need as f64 - got as f64);
        if self.ring.spliced() {
            self.conceal.splice();
        }
        self.conceal.process(buf, gap);
        self.resampler.push(buf);
        if self.resampler.process(out, step).is_err() {
            out.fill(0.0);
        }
        if missed {
            self.misses += 1;
            // What the lateness measure did not foresee: the target this spell shows
            // was needed is raised to at once.
            if self.dry_frames == 0 {
                self.dry_from = target;
            }
            self.dry_frames += (need as u64).saturating_sub(got);
            self.policy.cover(self.dry_from + self.dry_frames);
            let played = u32::try_from(got).unwrap_or(u32::MAX);
            return PullResult::Miss {
                played,
                silent: (need as u32).saturating_sub(played),
            };
        }
        if self.dry_frames > 0 {
            self.policy.resumed();
            self.dry_frames = 0;
        }
        PullResult::Played
    }

    /// The part of the newest packet that counts as not yet arrived at `now_ns`: all of it
    /// the instant it lands, none of it a packet's duration later (see
    /// [`pull_at`](Self::pull_at)).
    fn unearned_frames(&self, now_ns: u64) -> f64 {
        let (at, frames, _) = self.newest;
        if now_ns == u64::MAX {
            return 0.0;
        }
        unearned_frames(frames, now_ns.saturating_sub(at), self.rate)
    }

    /// The device skipped `frames` of stream time (an xrun): they will never be pulled, so
    /// the audio queued for them is not a sign of a fast hub. The clock loop takes it as a
    /// shift of its setpoint, and the policy's target then drains it as a latency move
    /// (played slightly faster), not learned as drift.
    ///
    /// Runs on: the RT audio thread. Must not: allocate, lock, block.
    pub fn device_skipped(&mut self, frames: u64) {
        if self.playing {
            self.clock.shift(frames as f64);
            self.device_frames = self.device_frames.saturating_add(frames);
        }
    }

    /// Forgets the stream (the hub input stopped): the next one primes afresh and fades
    /// in. The clock estimate is kept (the same two clocks). RT-safe.
    pub fn reset(&mut self) {
        self.ring.reset();
        self.resampler.reset();
        self.conceal.reset();
        self.rejoin.reset();
        self.clock.reset();
        self.policy.restart();
        self.dry_frames = 0;
        self.playing = false;
        self.newest = (0, 0, 0);
    }

    /// Gaps that ended in phase with their concealment, the continuation played on a
    /// little to meet the stream (`rejoin.rs`).
    pub fn rejoins_in_phase(&self) -> u64 {
        self.rejoin.moved()
    }

    /// Hub frames queued: the ring's depth plus what the resampler holds.
    pub fn fill_frames(&self) -> f64 {
        self.ring.depth_frames() as f64 + self.resampler.buffered_frames()
    }

    /// Frames in the ring (holes included).
    pub fn depth_frames(&self) -> u64 {
        self.ring.depth_frames()
    }

    /// The latency target the policy chose, frames.
    pub fn target_frames(&self) -> u32 {
        self.policy.target_frames()
    }

    /// Periods in which some audio was missing and concealed, since the last
    /// [`reset_misses`](Self::reset_misses).
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Resets the miss counter (speaker silence, the design's rule).
    pub fn reset_misses(&mut self) {
        self.misses = 0;
    }

    /// Frames filled by concealment since the start.
    pub fn concealed_frames(&self) -> u64 {
        self.conceal.concealed_frames()
    }

    /// Received frames dropped (ring overflow, emergency trims).
    pub fn dropped_frames(&self) -> u64 {
        self.ring.dropped_frames()
    }

    /// Packets that arrived after their time had been played.
    pub fn late_packets(&self) -> u64 {
        self.ring.late_packets()
    }

    /// The estimate of the hub's clock against this device's, ppm: measured over the last
    /// half minute (`rate.rs`) once there is enough of it, the clock loop's integral
    /// until then.
    pub fn clock_ppm(&self) -> f64 {
        self.estimate
            .ppm()
            .unwrap_or_else(|| self.clock.clock_ppm())
    }

    /// Whether [`Playout::clock_ppm`] is the measured estimate (`rate.rs`) rather than the
    /// loop's working one: from then on the capture resampled by it reaches the hub at the
    /// hub's own rate. Kept across a restart, as the estimate is.
    pub fn clock_measured(&self) -> bool {
        self.estimate.ppm().is_some()
    }

    /// The ratio the stream is resampled by now (hub frames per device frame).
    pub fn ratio(&self) -> f64 {
        self.clock.ratio()
    }

    /// Whether the clock loop is locked.
    pub fn locked(&self) -> bool {
        self.playing && self.clock.locked()
    }

    /// The largest packet lateness seen, ms.
    pub fn worst_lateness_ms(&self) -> f64 {
        self.policy.worst_lateness_ms()
    }
}

#[cfg(test)]
mod tests;
