//! The hub's mixer, one period at a time (RT mixer thread).
//!
//! Design: the mixer thread owns a fixed array of slots. A client that joins is handed to
//! it whole — its input pipe and jitter buffer, its output pipe, its meter — inside one
//! boxed [`Slot`] through the command queue, built on the net thread; a client that leaves
//! is handed back through the garbage queue, so the RT thread never allocates or frees, and
//! a join or leave costs it one pointer move. WAV sources are slots whose input is a looping
//! [`ClipReader`] instead of a pipe.
//!
//! Per period: drain commands; move the hub's stream on by the time its device skipped
//! (an xrun), if any; for every slot move the packets waiting in its pipe into its
//! jitter buffer, move it on by that skip too, and pull one period into the mixer input
//! (metered); mix; render each listener's mix (`minus`, `full` or `loopback`) into its
//! output pipe, stamped with the hub's stream position and clock; wake the net thread
//! once; play the full mix on the hub's own device. Each slot publishes its jitter
//! figures through [`SlotStats`] atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rtrb::{Consumer, Producer};

use crate::device::SkippedFrames;
use crate::dsp::jitter::{JitterBuffer, JitterConfig, PullResult, half_period_ns};
use crate::dsp::meter::Meter;
use crate::dsp::mixer::{MixMode, Mixer};
use crate::dsp::playout::conceal::ConcealError;
use crate::dsp::playout::device_time::DeviceTime;
use crate::dsp::playout::unearned_frames;
use crate::file::ClipReader;
use crate::hub::drift::DriftMeter;
use crate::net::Waker;
use crate::rt::clock::now_ns;
use crate::rt::pipe::{PacketMeta, PipeRx, PipeTx};

mod input_buffer;

pub use input_buffer::{EXCESS_S, InputBuffer, LOCKED_TRIM_S};

/// Searches for a cut or a resume in phase (`dsp/jitter/splice.rs`, `resume.rs`) or for
/// a concealment's lag (`dsp/playout/conceal/lag.rs`) the mixer allows itself per period,
/// across all inputs: 5–7 µs a cut, about 2 µs a resume and 11–13 µs a lag on this
/// project's 2-core VM (`benches/mixer.rs`, `hub_input_trim` and `hub_input_resume`),
/// against a period of 667 µs at 32 frames.
/// After a host stall every input may want its drift trim, or its lag, in the same
/// period: 128 at once would take 0.86 ms (trims) or 1.5 ms (lags). With this bound the
/// rest wait a period or a few (a cut), or continue at the lag near their last one, or
/// hold and fade (a gap); two a period are 1500 a second at 64 frames, and a hub needs at
/// most one per input per second (a drift trim) or per steady window, and a lag search
/// only when an input's pitch moved since its last gap.
pub const CUTS_PER_PERIOD: u32 = 2;

/// Jitter and flow figures of one slot, written by the mixer thread.
#[derive(Debug)]
pub struct SlotStats {
    /// Frames queued in the jitter buffer.
    pub depth_frames: AtomicU64,
    /// The jitter buffer's current target, frames.
    pub target_frames: AtomicU64,
    /// Where the input stands against its target, frames (f64 bits):
    /// [`InputBuffer::excess_frames`].
    pub excess_frames: AtomicU64,
    /// Of that, the floor the input's measured lateness holds, frames (the target is the
    /// larger of this and what the buffer's own probing keeps).
    pub floor_frames: AtomicU64,
    /// The largest target it may grow to, frames (`--jitter-max-ms`); set once, by the
    /// net thread when it builds the buffer.
    pub max_frames: AtomicU64,
    /// Periods the mixer needed audio the buffer did not have.
    pub misses: AtomicU64,
    /// Frames that arrived after their time.
    pub late_frames: AtomicU64,
    /// Frames dropped by trims and overflow.
    pub dropped_frames: AtomicU64,
    /// Frames trimmed because the sender's clock ran faster than the hub's (a client that
    /// does not lock).
    pub trimmed_frames: AtomicU64,
    /// Frames concealed (missing audio faded out and back in).
    pub concealed_frames: AtomicU64,
    /// Gaps that ended in phase with their concealment (a few frames dropped to meet it).
    pub resumes_in_phase: AtomicU64,
    /// Gaps whose continuation's lag search the mixer's per-period budget did not allow
    /// (continued near the lag before, or held and faded).
    pub lag_searches_skipped: AtomicU64,
    /// The drift of the sender's stream against the hub's clock, ppm (f64 bits; NaN until
    /// measured).
    pub drift_ppm: AtomicU64,
    /// 1 when the sender's newest packet said it is locked to the hub's clock (AUDIO
    /// flag `CLOCK_LOCKED`).
    pub sender_locked: AtomicU64,
    /// Periods a file source was mixed (its packets, for `incomingAudioTracks`).
    pub periods: AtomicU64,
    /// Monotonic ns of the latest period a file source was mixed.
    pub last_period_ns: AtomicU64,
}

impl Default for SlotStats {
    /// Every count 0; the drift not measured (NaN), not 0 ppm.
    fn default() -> SlotStats {
        SlotStats {
            depth_frames: AtomicU64::new(0),
            target_frames: AtomicU64::new(0),
            excess_frames: AtomicU64::new(0f64.to_bits()),
            floor_frames: AtomicU64::new(0),
            max_frames: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            late_frames: AtomicU64::new(0),
            dropped_frames: AtomicU64::new(0),
            trimmed_frames: AtomicU64::new(0),
            concealed_frames: AtomicU64::new(0),
            resumes_in_phase: AtomicU64::new(0),
            lag_searches_skipped: AtomicU64::new(0),
            drift_ppm: AtomicU64::new(f64::NAN.to_bits()),
            sender_locked: AtomicU64::new(0),
            periods: AtomicU64::new(0),
            last_period_ns: AtomicU64::new(0),
        }
    }
}

impl SlotStats {
    /// The drift observed, ppm (`None` until measured).
    pub fn drift_ppm(&self) -> Option<f64> {
        let v = f64::from_bits(self.drift_ppm.load(Ordering::Relaxed));
        v.is_finite().then_some(v)
    }

    /// Whether the sender says it is locked to the hub's clock.
    pub fn sender_locked(&self) -> bool {
        self.sender_locked.load(Ordering::Relaxed) != 0
    }
}

/// Figures of the mixer as a whole, written by the mixer thread.
///
/// Why count miss *periods* beside each slot's misses: a hub operator who sees misses
/// needs to know whose they are. When one period finds many inputs dry at once, the cause
/// is common to them (the hub's host stalled, or every sender did): per-peer counts alone
/// cannot tell 300 misses in 3 host stalls from one peer's bad network.
#[derive(Debug, Default)]
pub struct MixerStats {
    /// Slots the mixer could not hand back (the garbage queue was full).
    pub leaked_slots: AtomicU64,
    /// Periods in which at least one input missed.
    pub miss_periods: AtomicU64,
    /// The most inputs that missed in one period.
    pub widest_miss: AtomicU64,
}

/// Where a slot's input comes from.
#[derive(Debug)]
// Every Input lives in a boxed Slot and is built once per join: the size of its largest
// variant costs nothing, while boxing the jitter buffer would add an indirection per pull.
#[allow(clippy::large_enum_variant)]
pub enum Input {
    /// A client's packets and its jitter buffer.
    Pipe {
        /// Packets from the net thread.
        rx: PipeRx,
        /// Reorders and paces them, no shallower than their measured lateness, and
        /// conceals what is missing.
        jitter: InputBuffer,
        /// Measures the sender's clock against the mixer's.
        drift: DriftMeter,
    },
    /// A WAV source, looping.
    File(ClipReader),
    /// Nothing (a monitor).
    None,
}

impl Input {
    /// A client's input: its packets' pipe and its jitter buffer, with the concealment,
    /// drift meter and lateness measure that go with them at the hub's `rate` (net or
    /// main thread; allocates).
    ///
    /// The lateness measure is the client playout's (`dsp/playout/policy.rs`): the
    /// largest lateness of the last 32 s, over the need of one pull. The buffer holds at
    /// least that ([`InputBuffer`]), so it stops probing by failing: after a stall it
    /// refills as deep as the stall was and keeps that depth while such stalls recur,
    /// where the probing rules alone grew it a period at a time and gave the depth back
    /// after every quiet 5 s.
    ///
    /// # Errors
    /// [`ConcealError`] when `rate` or the buffer's channels are out of range.
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::jitter::{JitterBuffer, JitterConfig};
    /// use izyrt::hub::mixer_thread::Input;
    /// use izyrt::rt::pipe::pipe;
    /// let (_tx, rx) = pipe(2, 1024, 16);
    /// let jitter = JitterBuffer::new(JitterConfig::default()).unwrap();
    /// assert!(matches!(Input::pipe(rx, jitter, 48_000), Ok(Input::Pipe { .. })));
    /// ```
    pub fn pipe(rx: PipeRx, jitter: JitterBuffer, rate: u32) -> Result<Input, ConcealError> {
        Ok(Input::Pipe {
            rx,
            drift: DriftMeter::new(rate),
            jitter: InputBuffer::new(jitter, rate)?,
        })
    }
}

/// The jitter buffer of a client's input: `channels` at the hub's `period` and `rate`,
/// the client sending packets of `packet` frames (at least a period). It starts at one
/// packet (rounded up to whole periods) and may grow to 16; two packets of burst pass
/// before a drift trim; a period goes back after 5 s without a miss, and never below
/// the lateness floor ([`Input::pipe`]).
///
/// # Example
/// ```
/// use izyrt::hub::mixer_thread::input_jitter_config;
/// let c = input_jitter_config(2, 64, 64, 48_000);
/// assert_eq!((c.initial_target_frames, c.max_target_frames), (64, 1024));
/// ```
pub fn input_jitter_config(channels: u16, period: u32, packet: u32, rate: u32) -> JitterConfig {
    let target = packet.div_ceil(period) * period;
    JitterConfig {
        channels,
        period_frames: period,
        capacity_frames: target * 16 + packet * 2 + period * 2,
        initial_target_frames: target,
        min_target_frames: period,
        max_target_frames: target * 16,
        slack_frames: (packet * 2).max(period * 2),
        steady_pulls: (rate * 5 / period).max(1),
        drift_pulls: (rate / period).max(1),
        margin_ns: half_period_ns(period, rate),
    }
}

/// One occupied mixer slot.
#[derive(Debug)]
pub struct Slot {
    /// Its input.
    pub input: Input,
    /// Where its mix goes (`None` for a source that listens to nothing).
    pub output: Option<PipeTx>,
    /// What it hears.
    pub mode: MixMode,
    /// Meters its input (levels for METADATA).
    pub meter: Meter,
    /// Published figures.
    pub stats: Arc<SlotStats>,
}

/// A command from the net thread.
#[derive(Debug)]
pub enum Command {
    /// Occupy `slot` (a free one).
    Join(usize, Box<Slot>),
    /// Empty `slot` and send its contents back.
    Leave(usize),
}

/// The mixer thread's state.
pub struct MixerState {
    slots: Vec<Option<Box<Slot>>>,
    mixer: Mixer,
    commands: Consumer<Command>,
    garbage: Producer<Box<Slot>>,
    waker: Arc<Waker>,
    scratch: Vec<f32>,
    channels: usize,
    period: u32,
    position: u64,
    /// The hub's rate, Hz.
    rate: f64,
    /// The hub device's time, which the inputs' lateness is measured on.
    device_time: DeviceTime,
    /// Stream time the hub's device skipped (its xruns), which the mix skips too.
    skipped: SkippedFrames,
    /// Published figures (leaked slots, miss periods).
    stats: Arc<MixerStats>,
}

impl MixerState {
    /// Builds the state (main thread) for a device at `rate` Hz. `slots` are the WAV
    /// sources, placed first.
    pub fn new(
        mixer: Mixer,
        rate: u32,
        files: Vec<Box<Slot>>,
        commands: Consumer<Command>,
        garbage: Producer<Box<Slot>>,
        waker: Arc<Waker>,
        stats: Arc<MixerStats>,
    ) -> MixerState {
        let cfg = *mixer.config();
        let mut slots: Vec<Option<Box<Slot>>> = (0..cfg.max_slots).map(|_| None).collect();
        for (i, f) in files.into_iter().enumerate() {
            slots[i] = Some(f);
        }
        MixerState {
            slots,
            scratch: vec![0.0; mixer.period_samples()],
            mixer,
            commands,
            garbage,
            waker,
            channels: usize::from(cfg.channels),
            period: cfg.period_frames,
            position: 0,
            rate: f64::from(rate.max(1)),
            device_time: DeviceTime::new(rate),
            skipped: SkippedFrames::default(),
            stats,
        }
    }

    /// Follows the stream time `skipped`'s device loses in its xruns (main thread): the
    /// hub's stream and every input skip it too (see [`step`]).
    ///
    /// # Example
    /// ```no_run
    /// # fn f(state: izyrt::hub::mixer_thread::MixerState, dev: &dyn izyrt::device::Device) {
    /// use izyrt::device::SkippedFrames;
    /// let state = state.following(SkippedFrames::of(dev.counters()));
    /// # }
    /// ```
    pub fn following(mut self, skipped: SkippedFrames) -> MixerState {
        self.skipped = skipped;
        self
    }

    fn discard(&mut self, slot: Box<Slot>) {
        if let Err(rtrb::PushError::Full(slot)) = self.garbage.push(slot) {
            // Never free on the RT thread: keep the memory rather than stall or free.
            self.stats.leaked_slots.fetch_add(1, Ordering::Relaxed);
            std::mem::forget(slot);
        }
    }
}

/// One period of the hub: see the module notes.
///
/// Runs on: the RT mixer thread, once per period. Must not: allocate, free, lock, block
/// (slots come and go through the command and garbage queues).
pub fn step(s: &mut MixerState, capture: &[f32], playback: &mut [f32]) {
    step_at(s, capture, playback, now_ns());
}

/// [`step`] at `now` (monotonic ns: the clock of the packets' arrival stamps).
fn step_at(s: &mut MixerState, _capture: &[f32], playback: &mut [f32], now: u64) {
    while let Ok(cmd) = s.commands.pop() {
        match cmd {
            Command::Join(i, slot) => match s.slots.get_mut(i) {
                Some(entry) => {
                    if let Some(old) = entry.replace(slot) {
                        s.discard(old);
                    }
                }
                // Never dropped here: a slot index out of range goes back as garbage.
                None => s.discard(slot),
            },
            Command::Leave(i) => {
                if let Some(old) = s.slots.get_mut(i).and_then(Option::take) {
                    s.discard(old);
                }
            }
        }
    }
    // Stream time the hub's device skipped since the last period (an xrun): no mix was
    // made for it, so the hub's stream skips it too (its listeners find a gap there, which
    // they conceal and rejoin in phase, and their clocks see no step), and every input
    // moves on by as much. Played on instead, each input held the span as latency until a
    // drop cut it back out seconds later, and every listener's stream fell behind by it.
    let skipped = s.skipped.take();
    s.position = s.position.wrapping_add(skipped);
    let channels = s.channels;
    let mut missed = 0u64;
    let mut cuts = CUTS_PER_PERIOD;
    for (i, entry) in s.slots.iter_mut().enumerate() {
        let Some(slot) = entry else {
            s.mixer.set_active(i, false);
            continue;
        };
        let Some(input) = s.mixer.input_mut(i) else {
            continue;
        };
        let active = match &mut slot.input {
            Input::Pipe { rx, jitter, drift } => {
                let device = &s.device_time;
                rx.drain_runs(|position, samples, at| {
                    jitter.push_at(position, samples, at, device);
                });
                if skipped > 0 {
                    jitter.skip(skipped);
                }
                drift.set_sender_locked(rx.sender_locked());
                jitter.set_sender_locked(rx.sender_locked());
                let r = jitter.pull_within(input, now, &mut cuts);
                let conceal = jitter.conceal();
                let (concealed, skipped) = (conceal.concealed_frames(), conceal.skipped_searches());
                let excess = jitter.excess_frames();
                let jitter = jitter.buffer();
                missed += u64::from(matches!(r, PullResult::Miss { .. }));
                if r != PullResult::Priming {
                    let unearned = jitter.newest_arrival().map_or(0.0, |(at, frames)| {
                        unearned_frames(frames, now.saturating_sub(at), s.rate)
                    });
                    drift.observe(jitter.end_position(), unearned, s.position);
                } else {
                    drift.reset();
                }
                let st = &slot.stats;
                st.concealed_frames.store(concealed, Ordering::Relaxed);
                st.lag_searches_skipped.store(skipped, Ordering::Relaxed);
                st.resumes_in_phase
                    .store(jitter.aligned_resumes(), Ordering::Relaxed);
                st.trimmed_frames
                    .store(jitter.trimmed_frames(), Ordering::Relaxed);
                st.drift_ppm
                    .store(drift.ppm().unwrap_or(f64::NAN).to_bits(), Ordering::Relaxed);
                st.sender_locked
                    .store(u64::from(drift.sender_locked()), Ordering::Relaxed);
                st.depth_frames
                    .store(jitter.depth_frames(), Ordering::Relaxed);
                st.target_frames
                    .store(u64::from(jitter.target_frames()), Ordering::Relaxed);
                st.floor_frames
                    .store(u64::from(jitter.floor_frames()), Ordering::Relaxed);
                st.excess_frames.store(excess.to_bits(), Ordering::Relaxed);
                st.misses.store(jitter.misses(), Ordering::Relaxed);
                st.late_frames
                    .store(jitter.late_packets(), Ordering::Relaxed);
                st.dropped_frames
                    .store(jitter.dropped_frames(), Ordering::Relaxed);
                r != PullResult::Priming
            }
            Input::File(reader) => {
                // The reader counts frames of its clip's channels: never slice past the
                // input with them.
                let n = reader.read(input);
                if let Some(rest) = input.get_mut(n.saturating_mul(channels)..) {
                    rest.fill(0.0);
                }
                slot.stats.periods.fetch_add(1, Ordering::Relaxed);
                slot.stats.last_period_ns.store(now, Ordering::Relaxed);
                true
            }
            Input::None => false,
        };
        if active {
            slot.meter.process(input);
        }
        s.mixer.set_active(i, active);
    }
    if missed > 0 {
        s.stats.miss_periods.fetch_add(1, Ordering::Relaxed);
        s.stats.widest_miss.fetch_max(missed, Ordering::Relaxed);
    }
    s.mixer.mix();
    let mut sent = false;
    for (i, entry) in s.slots.iter_mut().enumerate() {
        let Some(slot) = entry else { continue };
        let Some(out) = &mut slot.output else {
            continue;
        };
        s.mixer.render(slot.mode, i, &mut s.scratch);
        let meta = PacketMeta {
            position: s.position,
            origin_ns: now,
            frames: s.period,
            arrival_ns: now,
            locked: false,
        };
        sent |= out.push(meta, &s.scratch);
    }
    s.position = s.position.wrapping_add(u64::from(s.period));
    // The next period's arrivals are timed from this one.
    s.device_time.tick(now, u64::from(s.period));
    if sent {
        s.waker.wake();
    }
    // The hub's own device hears the full mix through the same limiter as every client.
    s.mixer.render(MixMode::Full, usize::MAX, playback);
}

#[cfg(test)]
mod tests;
