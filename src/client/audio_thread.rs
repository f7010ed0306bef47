//! A client's device periods: capture to the hub, the hub's mix to the speaker (RT audio
//! thread).
//!
//! Design: the work is two independent halves so that one duplex device runs both in one
//! thread ([`step_duplex`]) while separate capture and playback devices each run one half
//! on their own RT thread ([`step_capture`], [`step_playback`]). Everything is allocated on
//! the main thread; a period is metering, optional resampling, and pipe pushes and pops.
//!
//! - **Capture**: meter (for `micStatus` and levels), decimate by `downsampleRatio`,
//!   resample to the hub's clock by the playback half's estimate (so the hub receives its
//!   own rate and never trims or runs dry for this client), push what it made, in packets
//!   of at most a period, to the net thread (stamped with their stream position and the
//!   clock) and wake it.
//! - **Playback**: move the mix packets the net thread queued into the locked playout
//!   (`dsp::playout`: jitter ring, clock loop, resampler, concealment), pull one period at
//!   the wire rate, interpolate by `upsampleRatio`, meter. The miss counter
//!   follows DESIGN.md: it is reset while the speaker is silent (the meter's hold time
//!   elapsed) and while the net thread reports the hub input stopped on a live
//!   connection (the mix's seq stalled beyond the latency threshold), and the whole buffer
//!   is reset when the connection is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rtrb::Consumer;

use crate::device::DeviceCounters;
use crate::dsp::meter::{Meter, MeterLevels};
use crate::dsp::playout::Playout;
use crate::dsp::ratio::{Decimator, Interpolator};
use crate::dsp::resampler::Resampler;
use crate::file::RecordTap;
use crate::net::Waker;
use crate::rt::clock::now_ns;
use crate::rt::pipe::{PacketMeta, PipeRx, PipeTx};

/// Figures of the capture half, written by its RT thread.
#[derive(Debug, Default)]
pub struct MicStats {
    /// Packets dropped because the net thread had not taken the earlier ones.
    pub dropped: AtomicU64,
    /// Monotonic ns of the latest period captured.
    pub last_ns: AtomicU64,
    /// Periods not sent because they no longer fit the buffers built at the start (a
    /// device reopened with a longer period, with `--downsample-ratio`).
    pub unfit_periods: AtomicU64,
}

/// Figures of the playback half, written by its RT thread.
#[derive(Debug, Default)]
pub struct SpeakerStats {
    /// Frames in the jitter buffer (wire rate).
    pub depth_frames: AtomicU64,
    /// Its target, frames.
    pub target_frames: AtomicU64,
    /// The largest target it may grow to, frames (`--jitter-max-ms`); set once, when
    /// the buffer is built.
    pub max_frames: AtomicU64,
    /// Periods the speaker lacked audio (reset by the silence rule).
    pub misses: AtomicU64,
    /// Misses since the start (never reset).
    pub misses_total: AtomicU64,
    /// Frames that arrived too late.
    pub late: AtomicU64,
    /// Frames dropped by trims and overflow.
    pub dropped_frames: AtomicU64,
    /// Frames concealed (missing audio filled by a fading continuation).
    pub concealed_frames: AtomicU64,
    /// Gaps that rejoined the stream in phase with their concealment.
    pub rejoins_in_phase: AtomicU64,
    /// The clock loop's estimate of the hub's clock against the device's, ppm (f64 bits).
    pub clock_ppm: AtomicU64,
    /// The ratio the mix is resampled by (f64 bits; 0 before the first period).
    pub ratio: AtomicU64,
    /// 1 while the clock loop is locked.
    pub locked: AtomicU64,
    /// 1 once the clock estimate is measured (`Playout::clock_measured`): the capture is
    /// then resampled by it and sent flagged `CLOCK_LOCKED`.
    pub measured: AtomicU64,
}

impl SpeakerStats {
    /// The clock estimate, ppm (what the capture half resamples by).
    pub fn clock_ppm(&self) -> f64 {
        f64::from_bits(self.clock_ppm.load(Ordering::Relaxed))
    }

    /// The resampling ratio (`None` before the first period played).
    pub fn ratio(&self) -> Option<f64> {
        let r = f64::from_bits(self.ratio.load(Ordering::Relaxed));
        (r > 0.0).then_some(r)
    }
}

/// The capture side of the clock lock: resamples the capture to the hub's clock (by the
/// playback half's estimate) and sends it in packets of at most one period.
pub struct CaptureLock {
    /// The resampler (device frames in, hub frames out).
    pub resampler: Resampler,
    /// Where the estimate comes from.
    pub clock: Arc<SpeakerStats>,
    /// One period's resampled frames, interleaved (room for a few periods).
    pub out: Vec<f32>,
    /// The most frames in one packet (`framesPerPacket`).
    pub period: usize,
}

/// A command from the net thread to the playback half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaybackCommand {
    /// The connection was lost: forget the buffered stream (and its misses).
    Reset,
    /// The mix stalled on a live connection (its seq has not advanced for the latency
    /// threshold): the misses are reset and held at 0 until it runs again, as when the
    /// connection is lost; the buffered stream is kept.
    InputStopped,
    /// The mix advances again.
    InputRunning,
}

/// The capture half.
pub struct CaptureHalf {
    /// Packets to the net thread.
    pub out: PipeTx,
    /// Signals the net thread.
    pub waker: Arc<Waker>,
    /// Decimates by `downsampleRatio` (None for 1).
    pub decimator: Option<Decimator>,
    /// Decimator output, one period.
    pub wire: Vec<f32>,
    /// Meters the capture.
    pub meter: Meter,
    /// Published figures.
    pub stats: Arc<MicStats>,
    /// Channels.
    pub channels: usize,
    /// Next stream position (wire frames).
    pub position: u64,
    /// Records what is sent (`--record-capture`).
    pub tap: Option<RecordTap>,
    /// Resamples to the hub's clock (`None`: sent at the device's own clock).
    pub lock: Option<CaptureLock>,
}

impl CaptureHalf {
    /// One period of capture.
    ///
    /// Runs on: the RT audio thread, once per capture period. Must not: allocate, lock,
    /// block (it pushes to the net thread's pipe and wakes it).
    pub fn capture(&mut self, input: &[f32]) {
        let now = now_ns();
        self.meter.process(input);
        let wire: &[f32] = match &mut self.decimator {
            Some(d) => match d
                .process(input, &mut self.wire)
                .ok()
                .and_then(|frames| self.wire.get(..frames * self.channels))
            {
                Some(wire) => wire,
                None => {
                    // A period longer than the decimator was built for (a reopen).
                    self.stats.unfit_periods.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            None => input,
        };
        if let Some(tap) = &mut self.tap {
            tap.push(wire);
        }
        match &mut self.lock {
            None => Self::send(
                &mut self.out,
                &self.stats,
                &mut self.position,
                self.channels,
                wire,
                (now, false),
            ),
            Some(lock) => {
                // Device frames in, the hub's frames out: the hub receives its own rate.
                // Everything the resampler can make goes out now, in packets of at most a
                // period (one more, of a frame or two, when a fast hub clock has made the
                // output a little longer): holding frames back until a whole period had
                // gathered would add up to a period of latency for nothing.
                let step = 1.0 / (1.0 + lock.clock.clock_ppm() * 1e-6);
                lock.resampler.push(wire);
                let ch = self.channels;
                let made = lock.resampler.process_available(&mut lock.out, step);
                let made = lock.out.get(..made * ch).unwrap_or(&[]);
                // Resampled by a measured estimate: the hub may take this stream's rate as
                // its own (wire flag CLOCK_LOCKED).
                let locked = lock.clock.measured.load(Ordering::Relaxed) != 0;
                for packet in made.chunks((lock.period * ch).max(1)) {
                    Self::send(
                        &mut self.out,
                        &self.stats,
                        &mut self.position,
                        ch,
                        packet,
                        (now, locked),
                    );
                }
            }
        }
        self.stats.last_ns.store(now, Ordering::Relaxed);
        self.waker.wake();
    }

    /// Pushes one packet at the next stream position, captured at `now`, `locked` when it
    /// was resampled to the hub's clock by a measured estimate.
    fn send(
        out: &mut PipeTx,
        stats: &MicStats,
        position: &mut u64,
        channels: usize,
        wire: &[f32],
        (now, locked): (u64, bool),
    ) {
        let frames = (wire.len() / channels.max(1)) as u32;
        let meta = PacketMeta {
            position: *position,
            origin_ns: now,
            frames,
            arrival_ns: now,
            locked,
        };
        *position = position.wrapping_add(u64::from(frames));
        if !out.push(meta, wire) {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The playback half.
pub struct PlaybackHalf {
    /// Mix packets from the net thread.
    pub input: PipeRx,
    /// Commands from the net thread.
    pub commands: Consumer<PlaybackCommand>,
    /// Reorders the mix and plays it at the hub's clock.
    pub playout: Playout,
    /// Interpolates by `upsampleRatio` (None for 1).
    pub interpolator: Option<Interpolator>,
    /// One period at the wire rate.
    pub wire: Vec<f32>,
    /// Meters what the speaker plays (silence detection).
    pub meter: Meter,
    /// The meter's levels (read here for the silence rule).
    pub levels: Arc<MeterLevels>,
    /// Published figures.
    pub stats: Arc<SpeakerStats>,
    /// Channels.
    pub channels: usize,
    /// Records what the speaker plays (`--record`).
    pub tap: Option<RecordTap>,
    /// Plays a click train instead of the mix (`izyrt latency` through a loopback cable;
    /// the mix is still recorded by `tap`).
    pub clicks: Option<ClickTrain>,
    /// The playback device's counters: frames its xruns skipped are frames the speaker will
    /// never pull, which the clock loop must not take for a fast hub.
    pub device: Option<Arc<DeviceCounters>>,
    /// `lost_frames` already told to the playout.
    pub lost_seen: u64,
    /// The hub input stopped (a stall on a live connection): misses are held at 0.
    pub input_stopped: bool,
}

/// A full-scale click on every channel every `every` frames, from frame 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClickTrain {
    /// Frames between clicks.
    pub every: u64,
    /// Frames played so far.
    pub played: u64,
}

impl ClickTrain {
    /// Writes the next period of the train into `out` (RT).
    pub fn fill(&mut self, out: &mut [f32], channels: usize) {
        out.fill(0.0);
        for frame in out.chunks_exact_mut(channels.max(1)) {
            if self.played % self.every.max(1) == 0 {
                frame.fill(1.0);
            }
            self.played += 1;
        }
    }
}

impl PlaybackHalf {
    /// One period of playback.
    ///
    /// Runs on: the RT audio thread, once per playback period. Must not: allocate, lock,
    /// block (it pops the net thread's pipe and publishes atomics).
    pub fn play(&mut self, out: &mut [f32]) {
        while let Ok(command) = self.commands.pop() {
            match command {
                PlaybackCommand::Reset => {
                    self.playout.reset();
                    self.playout.reset_misses();
                    self.input.clear();
                    self.input_stopped = false;
                }
                PlaybackCommand::InputStopped => self.input_stopped = true,
                PlaybackCommand::InputRunning => self.input_stopped = false,
            }
        }
        let ch = self.channels;
        let playout = &mut self.playout;
        self.input.drain_runs(|position, samples, at| {
            playout.push_at(position, samples, at);
        });
        if let Some(c) = &self.device {
            let lost = c.lost_frames.load(Ordering::Relaxed);
            if lost > self.lost_seen {
                let up = self
                    .interpolator
                    .as_ref()
                    .map_or(1, |i| u64::from(i.ratio()).max(1));
                self.playout.device_skipped((lost - self.lost_seen) / up);
            }
            // Also when the count went back (a device rebuilt with fresh counters): the
            // frames it skips from now on are counted from there.
            self.lost_seen = lost;
        }
        let before = self.playout.misses();
        let now = now_ns();
        match &mut self.interpolator {
            Some(interp) => {
                let wire_len = (out.len() / (interp.ratio() as usize).max(1)).min(self.wire.len());
                let wire = &mut self.wire[..wire_len];
                self.playout.pull_at(wire, now);
                if interp.process(wire, out).is_err() {
                    out.fill(0.0);
                }
            }
            None => {
                self.playout.pull_at(out, now);
            }
        }
        let s = &self.stats;
        if self.playout.misses() > before {
            s.misses_total.fetch_add(1, Ordering::Relaxed);
        }
        self.meter.process(out);
        if let Some(tap) = &mut self.tap {
            tap.push(out);
        }
        if let Some(clicks) = &mut self.clicks {
            clicks.fill(out, ch);
        }
        if self.levels.silent() || self.input_stopped {
            self.playout.reset_misses();
        }
        let p = &self.playout;
        s.depth_frames.store(p.depth_frames(), Ordering::Relaxed);
        s.target_frames
            .store(u64::from(p.target_frames()), Ordering::Relaxed);
        s.misses.store(p.misses(), Ordering::Relaxed);
        s.late.store(p.late_packets(), Ordering::Relaxed);
        s.dropped_frames
            .store(p.dropped_frames(), Ordering::Relaxed);
        s.concealed_frames
            .store(p.concealed_frames(), Ordering::Relaxed);
        s.rejoins_in_phase
            .store(p.rejoins_in_phase(), Ordering::Relaxed);
        s.clock_ppm
            .store(p.clock_ppm().to_bits(), Ordering::Relaxed);
        s.ratio.store(p.ratio().to_bits(), Ordering::Relaxed);
        s.locked.store(u64::from(p.locked()), Ordering::Relaxed);
        s.measured
            .store(u64::from(p.clock_measured()), Ordering::Relaxed);
    }
}

/// Both halves on one duplex device.
pub struct Duplex {
    /// Capture.
    pub capture: CaptureHalf,
    /// Playback.
    pub playback: PlaybackHalf,
}

/// One period of a duplex device (RT).
pub fn step_duplex(s: &mut Duplex, capture: &[f32], playback: &mut [f32]) {
    s.capture.capture(capture);
    s.playback.play(playback);
}

/// One period of a capture-only device (RT).
pub fn step_capture(s: &mut CaptureHalf, capture: &[f32], _playback: &mut [f32]) {
    s.capture(capture);
}

/// One period of a playback-only device (RT).
pub fn step_playback(s: &mut PlaybackHalf, _capture: &[f32], playback: &mut [f32]) {
    s.play(playback);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::jitter::JitterConfig;
    use crate::dsp::meter::MeterConfig;
    use crate::rt::pipe::pipe;
    use rtrb::RingBuffer;

    const P: u32 = 64;

    fn half() -> (PlaybackHalf, PipeTx, rtrb::Producer<PlaybackCommand>) {
        let (tx, rx) = pipe(1, 4096, 64);
        let (cmd_tx, cmd_rx) = RingBuffer::new(4);
        let meter = Meter::new(MeterConfig {
            rate: 48_000,
            channels: 1,
            window_ms: 2,
            silence_threshold_dbfs: -60.0,
            silence_hold_ms: 10,
        })
        .unwrap();
        let levels = meter.levels();
        let playout = Playout::new(crate::dsp::playout::PlayoutConfig {
            ring: JitterConfig {
                channels: 1,
                period_frames: P,
                capacity_frames: P * 64,
                initial_target_frames: P,
                min_target_frames: P,
                max_target_frames: P * 8,
                slack_frames: P * 4,
                steady_pulls: 10_000,
                drift_pulls: 100,
                margin_ns: 0,
            },
            rate: 48_000,
            pull_frames: P,
        })
        .unwrap();
        let h = PlaybackHalf {
            input: rx,
            commands: cmd_rx,
            playout,
            interpolator: None,
            wire: vec![0.0; P as usize],
            meter,
            levels,
            stats: Arc::new(SpeakerStats::default()),
            channels: 1,
            tap: None,
            clicks: None,
            device: None,
            lost_seen: 0,
            input_stopped: false,
        };
        (h, tx, cmd_tx)
    }

    fn send(tx: &mut PipeTx, pos: &mut u64, value: f32) {
        let meta = PacketMeta {
            position: *pos,
            origin_ns: 0,
            frames: P,
            arrival_ns: 0,
            locked: false,
        };
        assert!(tx.push(meta, &[value; P as usize]));
        *pos += u64::from(P);
    }

    /// Plays a tone-level stream with one missing packet: one miss.
    fn with_a_miss() -> (PlaybackHalf, PipeTx, rtrb::Producer<PlaybackCommand>, u64) {
        let (mut h, mut tx, cmd) = half();
        let mut out = [0.0f32; P as usize];
        let mut pos = 0;
        for i in 0..40 {
            if i != 20 {
                send(&mut tx, &mut pos, 0.5);
            } else {
                pos += u64::from(P); // lost
            }
            h.play(&mut out);
        }
        assert!(h.stats.misses.load(Ordering::Relaxed) >= 1);
        (h, tx, cmd, pos)
    }

    #[test]
    fn misses_reset_when_the_speaker_turns_silent() {
        let (mut h, mut tx, _cmd, mut pos) = with_a_miss();
        let misses = h.stats.misses.load(Ordering::Relaxed);
        let mut out = [0.0f32; P as usize];
        // Still audible: the count stays.
        for _ in 0..5 {
            send(&mut tx, &mut pos, 0.5);
            h.play(&mut out);
        }
        assert_eq!(h.stats.misses.load(Ordering::Relaxed), misses);
        // Silence for longer than the 10 ms hold: reset.
        for _ in 0..20 {
            send(&mut tx, &mut pos, 0.0);
            h.play(&mut out);
        }
        assert!(h.levels.silent());
        assert_eq!(h.stats.misses.load(Ordering::Relaxed), 0);
        assert!(
            h.stats.misses_total.load(Ordering::Relaxed) >= misses,
            "the total keeps them"
        );
    }

    #[test]
    fn misses_are_held_at_zero_while_the_input_is_stalled_and_count_again_after() {
        let (mut h, mut tx, mut cmd, mut pos) = with_a_miss();
        let mut out = [0.0f32; P as usize];
        // The mix stops arriving on a live connection: misses pile up...
        for _ in 0..5 {
            h.play(&mut out);
        }
        assert!(h.stats.misses.load(Ordering::Relaxed) > 1);
        // ...until the net thread says the input stopped: reset, and held at 0.
        cmd.push(PlaybackCommand::InputStopped).unwrap();
        for _ in 0..5 {
            h.play(&mut out);
            assert_eq!(h.stats.misses.load(Ordering::Relaxed), 0);
        }
        assert!(
            h.stats.misses_total.load(Ordering::Relaxed) > 5,
            "the total keeps them"
        );
        // Running again: the counter counts again (the stream was kept, not reset).
        cmd.push(PlaybackCommand::InputRunning).unwrap();
        for i in 0..10 {
            if i != 4 {
                send(&mut tx, &mut pos, 0.5);
            } else {
                pos += u64::from(P);
            }
            h.play(&mut out);
        }
        assert!(h.stats.misses.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn device_skips_are_told_after_the_counter_restarts() {
        let (mut h, mut tx, _cmd) = half();
        let counters = Arc::new(DeviceCounters::default());
        h.device = Some(Arc::clone(&counters));
        let mut out = [0.0f32; P as usize];
        let mut pos = 0;
        counters.lost_frames.store(1_000, Ordering::Relaxed);
        send(&mut tx, &mut pos, 0.5);
        h.play(&mut out);
        assert_eq!(h.lost_seen, 1_000);
        // A reopened device counts from 0 again: its next skips are new ones.
        counters.lost_frames.store(64, Ordering::Relaxed);
        send(&mut tx, &mut pos, 0.5);
        h.play(&mut out);
        assert_eq!(h.lost_seen, 64, "a count that went back was ignored");
    }

    #[test]
    fn a_click_train_with_no_channels_does_not_panic() {
        let mut c = ClickTrain {
            every: 4,
            played: 0,
        };
        let mut out = [0.5f32; 8];
        c.fill(&mut out, 0);
        // Served sample by sample, as one channel.
        assert_eq!(c.played, 8);
        assert_eq!(out, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn a_capture_period_longer_than_the_decimator_takes_is_counted_not_sliced() {
        let (tx, _rx) = pipe(1, 4096, 64);
        let meter = Meter::new(MeterConfig {
            rate: 48_000,
            channels: 1,
            window_ms: 2,
            silence_threshold_dbfs: -60.0,
            silence_hold_ms: 10,
        })
        .unwrap();
        let mut c = CaptureHalf {
            out: tx,
            waker: Arc::new(Waker::new().unwrap()),
            decimator: Some(Decimator::new(2, 1, 2 * P as usize).unwrap()),
            wire: vec![0.0; P as usize],
            meter,
            stats: Arc::new(MicStats::default()),
            channels: 1,
            position: 0,
            tap: None,
            lock: None,
        };
        c.capture(&[0.25; 2 * P as usize]);
        assert_eq!(c.position, u64::from(P));
        // The device came back with twice the period: not sent, counted.
        c.capture(&[0.25; 4 * P as usize]);
        assert_eq!(c.stats.unfit_periods.load(Ordering::Relaxed), 1);
        assert_eq!(c.position, u64::from(P));
    }

    #[test]
    fn misses_reset_when_the_hub_input_stops() {
        let (mut h, _tx, mut cmd, _) = with_a_miss();
        cmd.push(PlaybackCommand::Reset).unwrap();
        let mut out = [0.0f32; P as usize];
        h.play(&mut out);
        assert_eq!(h.stats.misses.load(Ordering::Relaxed), 0);
        assert_eq!(h.stats.depth_frames.load(Ordering::Relaxed), 0);
        // With the stream gone the buffer waits for a new one: priming, not misses.
        for _ in 0..10 {
            h.play(&mut out);
        }
        assert_eq!(h.stats.misses.load(Ordering::Relaxed), 0);
    }
}
