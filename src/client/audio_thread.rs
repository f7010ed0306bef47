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
//!   own rate and never trims or runs dry for this client) and by the correction the
//!   hub's reports of this client's input ask for (`hub_input.rs`: what the estimate
//!   cannot repay, such as a JACK server's lost cycles), push what it made, in packets
//!   of at most a period, to the net thread (stamped with their stream position and the
//!   clock) and wake it. Frames the capture device's xruns skipped are skipped in the
//!   stream's positions too ([`CaptureHalf::capture`]): the hub sees a gap, which it
//!   conceals and rejoins in phase, where a splice of the audio either side of the xrun
//!   was a step every listener heard, and the hub's buffer for this client a piece of
//!   time shorter for good.
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

use super::hub_input::{HubInputLoop, HubInputReport};
use crate::device::SkippedFrames;
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
    /// Stream frames skipped because the capture device's xruns skipped them: sent as
    /// a gap in the positions.
    pub skipped_frames: AtomicU64,
    /// The correction the hub's reports add to the capture's ratio, ppm (f64 bits):
    /// [`HubInputLoop`].
    pub correction_ppm: AtomicU64,
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
    /// Where this client's input stands at the hub (from METADATA, by the net thread):
    /// what the capture's [`HubInputLoop`] steers by.
    pub hub_input: HubInputReport,
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
/// playback half's estimate, and the correction that holds this client's input at the
/// hub at its target) and sends it in packets of at most one period.
pub struct CaptureLock {
    /// The resampler (device frames in, hub frames out).
    pub resampler: Resampler,
    /// Where the estimate, and the hub's report of this client's input, come from.
    pub clock: Arc<SpeakerStats>,
    /// The correction from the hub's reports.
    pub hub: HubInputLoop,
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
    /// What the capture device's xruns skipped.
    pub skipped: SkippedFrames,
}

impl CaptureHalf {
    /// One period of capture. Stream positions count time, not frames sent: frames the
    /// device's xruns skipped (a real card's capture loses them) move the position on by
    /// as many stream frames, so the hub conceals the gap and rejoins the audio after it
    /// in phase, and this client's input at the hub keeps its depth.
    ///
    /// Runs on: the RT audio thread, once per capture period. Must not: allocate, lock,
    /// block (it pushes to the net thread's pipe and wakes it).
    pub fn capture(&mut self, input: &[f32]) {
        self.capture_at(input, now_ns());
    }

    /// [`capture`](Self::capture) at `now` (monotonic ns).
    fn capture_at(&mut self, input: &[f32], now: u64) {
        let skipped = self.skipped.take();
        if skipped > 0 {
            self.skip(skipped);
        }
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
                now,
                false,
            ),
            Some(lock) => {
                // Device frames in, the hub's frames out: the hub receives its own rate.
                // Everything the resampler can make goes out now, in packets of at most a
                // period (one more, of a frame or two, when a fast hub clock has made the
                // output a little longer): holding frames back until a whole period had
                // gathered would add up to a period of latency for nothing.
                // Resampled by a measured estimate: the hub may take this stream's rate as
                // its own (wire flag CLOCK_LOCKED), and the hub's reports of where this
                // input stands steer it from then on.
                let locked = lock.clock.measured.load(Ordering::Relaxed) != 0;
                let correction = if locked {
                    lock.hub.correction_ppm(&lock.clock.hub_input, now)
                } else {
                    lock.hub.reset();
                    0.0
                };
                self.stats
                    .correction_ppm
                    .store(correction.to_bits(), Ordering::Relaxed);
                let step = 1.0 / (1.0 + (lock.clock.clock_ppm() + correction) * 1e-6);
                lock.resampler.push(wire);
                let ch = self.channels;
                let made = lock.resampler.process_available(&mut lock.out, step);
                let made = lock.out.get(..made * ch).unwrap_or(&[]);
                for packet in made.chunks((lock.period * ch).max(1)) {
                    Self::send(
                        &mut self.out,
                        &self.stats,
                        &mut self.position,
                        ch,
                        packet,
                        now,
                        locked,
                    );
                }
            }
        }
        self.stats.last_ns.store(now, Ordering::Relaxed);
        self.waker.wake();
    }

    /// Moves the stream position on by `device_frames` the device skipped: fewer by
    /// `downsampleRatio`, and at the hub's clock when the capture is resampled to it.
    fn skip(&mut self, device_frames: u64) {
        let down = self
            .decimator
            .as_ref()
            .map_or(1, |d| u64::from(d.ratio()).max(1));
        let wire = device_frames / down;
        let frames = match &self.lock {
            Some(lock) => (wire as f64 * (1.0 + lock.clock.clock_ppm() * 1e-6)).round() as u64,
            None => wire,
        };
        self.position = self.position.wrapping_add(frames);
        self.stats
            .skipped_frames
            .fetch_add(frames, Ordering::Relaxed);
    }

    /// Pushes one packet at the next stream position, captured at `now`, `locked` when it
    /// was resampled to the hub's clock by a measured estimate.
    fn send(
        out: &mut PipeTx,
        stats: &MicStats,
        position: &mut u64,
        channels: usize,
        wire: &[f32],
        now: u64,
        locked: bool,
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
    /// What the playback device's xruns skipped: frames the speaker will never pull,
    /// which the clock loop must not take for a fast hub.
    pub skipped: SkippedFrames,
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
        let skipped = self.skipped.take();
        if skipped > 0 {
            let up = self
                .interpolator
                .as_ref()
                .map_or(1, |i| u64::from(i.ratio()).max(1));
            self.playout.device_skipped(skipped / up);
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
mod tests;
