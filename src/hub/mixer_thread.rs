//! The hub's mixer, one period at a time (RT mixer thread).
//!
//! Design: the mixer thread owns a fixed array of slots. A client that joins is handed to
//! it whole — its input pipe and jitter buffer, its output pipe, its meter — inside one
//! boxed [`Slot`] through the command queue, built on the net thread; a client that leaves
//! is handed back through the garbage queue, so the RT thread never allocates or frees, and
//! a join or leave costs it one pointer move. WAV sources are slots whose input is a looping
//! [`ClipReader`] instead of a pipe.
//!
//! Per period: drain commands; for every slot move the packets waiting in its pipe into its
//! jitter buffer and pull one period into the mixer input (metered); mix; render each
//! listener's mix (`minus`, `full` or `loopback`) into its output pipe, stamped with the
//! hub's stream position and clock; wake the net thread once; play the full mix on the
//! hub's own device. Each slot publishes its jitter figures through [`SlotStats`] atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rtrb::{Consumer, Producer};

use crate::dsp::jitter::{JitterBuffer, PullResult};
use crate::dsp::meter::Meter;
use crate::dsp::mixer::{MixMode, Mixer};
use crate::dsp::playout::conceal::Conceal;
use crate::file::ClipReader;
use crate::hub::drift::DriftMeter;
use crate::net::Waker;
use crate::rt::clock::now_ns;
use crate::rt::pipe::{PacketMeta, PipeRx, PipeTx};

/// Searches for a cut in phase (`dsp/jitter/splice.rs`) the mixer allows itself per
/// period, across all inputs: 5–7 µs each on this project's 2-core VM
/// (`benches/mixer.rs`, `hub_input_trim`), against a period of 667 µs at 32 frames.
/// After a host stall every input may want its drift trim in the same period: 128 at
/// once would take 0.86 ms. With this bound the rest wait a period or a few; two a period
/// are 1500 a second at 64 frames, and a hub needs at most one per input per second (a
/// drift trim) or per steady window.
pub const CUTS_PER_PERIOD: u32 = 2;

/// Jitter and flow figures of one slot, written by the mixer thread.
#[derive(Debug)]
pub struct SlotStats {
    /// Frames queued in the jitter buffer.
    pub depth_frames: AtomicU64,
    /// The jitter buffer's current target, frames.
    pub target_frames: AtomicU64,
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
    /// The drift of the sender's stream against the hub's clock, ppm (f64 bits; NaN until
    /// measured).
    pub drift_ppm: AtomicU64,
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
            max_frames: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            late_frames: AtomicU64::new(0),
            dropped_frames: AtomicU64::new(0),
            trimmed_frames: AtomicU64::new(0),
            concealed_frames: AtomicU64::new(0),
            drift_ppm: AtomicU64::new(f64::NAN.to_bits()),
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
        /// Reorders and paces them.
        jitter: JitterBuffer,
        /// Fades what is missing out and back in; cross-fades trims and shrinks.
        conceal: Conceal,
        /// Measures the sender's clock against the mixer's.
        drift: DriftMeter,
    },
    /// A WAV source, looping.
    File(ClipReader),
    /// Nothing (a monitor).
    None,
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
    /// Published figures (leaked slots, miss periods).
    stats: Arc<MixerStats>,
}

impl MixerState {
    /// Builds the state (main thread). `slots` are the WAV sources, placed first.
    pub fn new(
        mixer: Mixer,
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
            stats,
        }
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
pub fn step(s: &mut MixerState, _capture: &[f32], playback: &mut [f32]) {
    let now = now_ns();
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
            Input::Pipe {
                rx,
                jitter,
                conceal,
                drift,
            } => {
                rx.drain_runs(|position, samples, at| {
                    jitter.push_at(position, samples, at);
                });
                let r = jitter.pull_within(input, now, &mut cuts);
                missed += u64::from(matches!(r, PullResult::Miss { .. }));
                if r != PullResult::Priming {
                    if jitter.spliced() {
                        conceal.splice();
                    }
                    conceal.process(input, jitter.gap());
                    drift.observe(jitter.end_position(), s.position);
                } else {
                    conceal.reset();
                    drift.reset();
                }
                let st = &slot.stats;
                st.concealed_frames
                    .store(conceal.concealed_frames(), Ordering::Relaxed);
                st.trimmed_frames
                    .store(jitter.trimmed_frames(), Ordering::Relaxed);
                st.drift_ppm
                    .store(drift.ppm().unwrap_or(f64::NAN).to_bits(), Ordering::Relaxed);
                st.depth_frames
                    .store(jitter.depth_frames(), Ordering::Relaxed);
                st.target_frames
                    .store(u64::from(jitter.target_frames()), Ordering::Relaxed);
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
        };
        sent |= out.push(meta, &s.scratch);
    }
    s.position = s.position.wrapping_add(u64::from(s.period));
    if sent {
        s.waker.wake();
    }
    // The hub's own device hears the full mix through the same limiter as every client.
    s.mixer.render(MixMode::Full, usize::MAX, playback);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::jitter::JitterConfig;
    use crate::dsp::meter::MeterConfig;
    use crate::dsp::mixer::{Limit, MixerConfig};
    use crate::rt::pipe::pipe;
    use rtrb::RingBuffer;

    const P: u32 = 4;

    fn client() -> (Box<Slot>, PipeTx) {
        client_with(JitterConfig::default())
    }

    /// A mono client of P-frame periods, its buffer `cfg` otherwise.
    fn client_with(cfg: JitterConfig) -> (Box<Slot>, PipeTx) {
        let (tx, rx) = pipe(1, 256, 16);
        let jitter = JitterBuffer::new(JitterConfig {
            channels: 1,
            period_frames: P,
            initial_target_frames: P,
            min_target_frames: P,
            ..cfg
        })
        .unwrap();
        let slot = Slot {
            input: Input::Pipe {
                rx,
                jitter,
                conceal: Conceal::new(1, 48_000).unwrap(),
                drift: DriftMeter::new(48_000),
            },
            output: None,
            mode: MixMode::Minus,
            meter: Meter::new(MeterConfig {
                channels: 1,
                ..MeterConfig::default()
            })
            .unwrap(),
            stats: Arc::default(),
        };
        (Box::new(slot), tx)
    }

    /// A mixer of `slots` mono slots of P frames, its command queue and stats.
    fn state(slots: usize, channels: u16) -> (MixerState, rtrb::Producer<Command>) {
        let mixer = Mixer::new(MixerConfig {
            max_slots: slots,
            channels,
            period_frames: P,
            limit: Limit::SoftClip,
        })
        .unwrap();
        let (commands, commands_rx) = RingBuffer::new(8);
        let (garbage, _garbage_rx) = RingBuffer::new(8);
        let s = MixerState::new(
            mixer,
            Vec::new(),
            commands_rx,
            garbage,
            Arc::new(Waker::new().unwrap()),
            Arc::new(MixerStats::default()),
        );
        (s, commands)
    }

    #[test]
    fn a_file_source_with_fewer_channels_than_the_mix_does_not_slice_past_its_input() {
        let (mut s, mut commands) = state(2, 2);
        let clip = crate::file::Clip::from_interleaved(vec![0.5; 64], 48_000, 1);
        let (slot, _tx) = client();
        let slot = Box::new(Slot {
            input: Input::File(ClipReader::new(Arc::new(clip), true)),
            output: None,
            ..*slot
        });
        commands.push(Command::Join(0, slot)).unwrap();
        let mut out = [0.0; 2 * P as usize];
        for _ in 0..4 {
            step(&mut s, &[], &mut out);
        }
        assert!(out.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn a_playback_period_other_than_the_mixers_is_served() {
        let (mut s, _commands) = state(1, 1);
        // A hub device reopened with another period: longer, shorter, empty.
        for len in [3 * P as usize, 1, 0] {
            let mut out = vec![f32::NAN; len];
            step(&mut s, &[], &mut out);
            assert!(out.iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn positions_wrap_past_the_end_of_the_stream() {
        let (mut s, _commands) = state(1, 1);
        s.position = u64::MAX - u64::from(P);
        let mut out = [0.0; P as usize];
        step(&mut s, &[], &mut out);
        step(&mut s, &[], &mut out);
        assert_eq!(s.position, u64::from(P) - 1);
    }

    #[test]
    fn inputs_that_all_want_a_cut_in_one_period_take_turns() {
        // Five inputs whose buffers all stand above target + slack in the same period (a
        // burst after a host stall, and `drift_pulls: 1`): only CUTS_PER_PERIOD of them
        // search for their cut in that period, the others in the next ones.
        let (mut s, mut commands) = state(5, 1);
        let mut senders: Vec<PipeTx> = (0..5)
            .map(|i| {
                let (slot, tx) = client_with(JitterConfig {
                    slack_frames: P,
                    drift_pulls: 1,
                    ..JitterConfig::default()
                });
                commands.push(Command::Join(i, slot)).unwrap();
                tx
            })
            .collect();
        let mut out = [0.0; P as usize];
        let mut position = 0;
        let mut send = |senders: &mut [PipeTx], packets: u64| {
            for _ in 0..packets {
                for tx in senders.iter_mut() {
                    let meta = PacketMeta {
                        position,
                        origin_ns: 0,
                        frames: P,
                        arrival_ns: 0,
                    };
                    assert!(tx.push(meta, &[0.1; P as usize]));
                }
                position += u64::from(P);
            }
        };
        send(&mut senders, 1);
        step(&mut s, &[], &mut out);
        send(&mut senders, 5);
        let trimmed = |s: &MixerState| {
            s.slots
                .iter()
                .flatten()
                .filter(|slot| slot.stats.trimmed_frames.load(Ordering::Relaxed) > 0)
                .count()
        };
        let mut seen = Vec::new();
        for _ in 0..3 {
            step(&mut s, &[], &mut out);
            seen.push(trimmed(&s));
        }
        let n = CUTS_PER_PERIOD as usize;
        assert_eq!(seen, [n, (2 * n).min(5), (3 * n).min(5)]);
    }

    #[test]
    fn misses_are_counted_per_period_with_the_most_inputs_in_one() {
        let mixer = Mixer::new(MixerConfig {
            max_slots: 4,
            channels: 1,
            period_frames: P,
            limit: Limit::SoftClip,
        })
        .unwrap();
        let (mut commands, commands_rx) = RingBuffer::new(8);
        let (garbage, _garbage_rx) = RingBuffer::new(8);
        let stats = Arc::new(MixerStats::default());
        let mut s = MixerState::new(
            mixer,
            Vec::new(),
            commands_rx,
            garbage,
            Arc::new(Waker::new().unwrap()),
            Arc::clone(&stats),
        );
        let mut senders: Vec<PipeTx> = (0..3)
            .map(|i| {
                let (slot, tx) = client();
                commands.push(Command::Join(i, slot)).unwrap();
                tx
            })
            .collect();
        let mut out = [0.0; P as usize];
        // Period k: the clients in `who` send their packet k, then the mixer runs.
        let mut period = |k: u64, who: &[usize]| {
            for &i in who {
                let meta = PacketMeta {
                    position: k * u64::from(P),
                    origin_ns: 0,
                    frames: P,
                    arrival_ns: 0,
                };
                assert!(senders[i].push(meta, &[0.1; P as usize]));
            }
            step(&mut s, &[], &mut out);
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            (load(&stats.miss_periods), load(&stats.widest_miss))
        };
        assert_eq!(period(0, &[0, 1, 2]), (0, 0));
        assert_eq!(period(1, &[0, 1]), (1, 1), "one client late");
        assert_eq!(period(2, &[]), (2, 3), "all three late at once");
        assert_eq!(
            period(3, &[0, 1, 2]),
            (2, 3),
            "all resume where the streams are"
        );
    }
}
