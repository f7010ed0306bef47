//! Level meters: peak and RMS in dBFS, clipping, and silence detection (fed on the RT
//! audio thread, read anywhere).
//!
//! Design: the RT thread owns a [`Meter`] and feeds it every period; other threads hold
//! the [`MeterLevels`] it publishes. Levels are integrated over a fixed window of frames
//! (not per period), so the figures mean the same at 32 and at 1024 frames per period,
//! and are published once per window as `f32` bits in `AtomicU32`s, so a reader never
//! locks and the writer never waits. Per-channel fields are individually atomic; a reader
//! may see channel 0 from one window and channel 1 from the next, which a level display
//! does not mind, and [`MeterLevels::windows`] tells it when a new window landed.
//!
//! Silence is decided per frame against a threshold and a hold time counted in frames,
//! so it does not depend on how the stream is cut into periods and needs no clock: the
//! stream is silent once every sample stayed below the threshold for the hold time, and
//! stops being silent at the first frame above it. Clipping counts samples at or beyond
//! full scale (|x| ≥ 1.0); a NaN or infinite sample counts as clipped and as full scale,
//! so corrupt input can neither poison the RMS nor panic the RT thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// The level reported for digital silence, dBFS (instead of −∞, which JSON cannot carry).
pub const DBFS_FLOOR: f32 = -150.0;

/// Converts a linear amplitude (1.0 = full scale) to dBFS, floored at [`DBFS_FLOOR`].
///
/// # Example
/// ```
/// use izyrt::dsp::meter::{amplitude_to_dbfs, DBFS_FLOOR};
/// assert_eq!(amplitude_to_dbfs(1.0), 0.0);
/// assert!((amplitude_to_dbfs(0.5) + 6.0206).abs() < 1e-3);
/// assert_eq!(amplitude_to_dbfs(0.0), DBFS_FLOOR);
/// ```
pub fn amplitude_to_dbfs(amplitude: f32) -> f32 {
    if amplitude > 0.0 {
        (20.0 * amplitude.log10()).max(DBFS_FLOOR)
    } else {
        DBFS_FLOOR
    }
}

/// Converts dBFS to a linear amplitude (1.0 = full scale).
pub fn dbfs_to_amplitude(dbfs: f32) -> f32 {
    10f32.powf(dbfs / 20.0)
}

/// How a [`Meter`] integrates and decides silence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterConfig {
    /// Frames per second of the metered stream.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Integration window of peak and RMS, ms.
    pub window_ms: u32,
    /// Silence threshold, dBFS: a sample at or above it is not silent.
    pub silence_threshold_dbfs: f32,
    /// How long every sample must stay below the threshold before the stream is silent, ms.
    pub silence_hold_ms: u32,
}

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig {
            rate: 48_000,
            channels: 2,
            window_ms: 50,
            silence_threshold_dbfs: -60.0,
            silence_hold_ms: 1_000,
        }
    }
}

/// Why a [`Meter`] could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError {
    /// A setting is out of range.
    #[error("meter {what} {value} is not allowed (allowed: {allowed})")]
    Config {
        /// The setting.
        what: &'static str,
        /// The value given.
        value: f64,
        /// What is allowed.
        allowed: &'static str,
    },
}

/// One consistent-enough reading of the overall levels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterReading {
    /// Highest |sample| over all channels in the last window, dBFS.
    pub peak_dbfs: f32,
    /// RMS over all samples of all channels in the last window, dBFS.
    pub rms_dbfs: f32,
    /// Samples at or beyond full scale since the start.
    pub clipped: u64,
    /// The stream has been below the silence threshold for the hold time.
    pub silent: bool,
    /// Windows published so far.
    pub windows: u64,
}

/// Levels a [`Meter`] publishes; shared (`Arc`) with other threads, read without locks.
#[derive(Debug)]
pub struct MeterLevels {
    peak: AtomicU32,
    rms: AtomicU32,
    channel_peak: Box<[AtomicU32]>,
    channel_rms: Box<[AtomicU32]>,
    clipped: AtomicU64,
    silent: AtomicBool,
    windows: AtomicU64,
}

fn load_f32(a: &AtomicU32) -> f32 {
    f32::from_bits(a.load(Ordering::Relaxed))
}

fn store_f32(a: &AtomicU32, v: f32) {
    a.store(v.to_bits(), Ordering::Relaxed);
}

impl MeterLevels {
    fn new(channels: usize) -> Self {
        let floor = || AtomicU32::new(DBFS_FLOOR.to_bits());
        MeterLevels {
            peak: floor(),
            rms: floor(),
            channel_peak: (0..channels).map(|_| floor()).collect(),
            channel_rms: (0..channels).map(|_| floor()).collect(),
            clipped: AtomicU64::new(0),
            silent: AtomicBool::new(false),
            windows: AtomicU64::new(0),
        }
    }

    /// Peak of the last window over all channels, dBFS ([`DBFS_FLOOR`] before the first).
    pub fn peak_dbfs(&self) -> f32 {
        load_f32(&self.peak)
    }

    /// RMS of the last window over all channels, dBFS.
    pub fn rms_dbfs(&self) -> f32 {
        load_f32(&self.rms)
    }

    /// Peak of channel `ch` in the last window, dBFS; `None` past the last channel.
    pub fn channel_peak_dbfs(&self, ch: usize) -> Option<f32> {
        self.channel_peak.get(ch).map(load_f32)
    }

    /// RMS of channel `ch` in the last window, dBFS; `None` past the last channel.
    pub fn channel_rms_dbfs(&self, ch: usize) -> Option<f32> {
        self.channel_rms.get(ch).map(load_f32)
    }

    /// Channels metered.
    pub fn channels(&self) -> usize {
        self.channel_peak.len()
    }

    /// Samples at or beyond full scale (or not finite) since the start.
    pub fn clipped(&self) -> u64 {
        self.clipped.load(Ordering::Relaxed)
    }

    /// True while the stream has been below the silence threshold for the hold time.
    pub fn silent(&self) -> bool {
        self.silent.load(Ordering::Relaxed)
    }

    /// Windows published so far.
    pub fn windows(&self) -> u64 {
        self.windows.load(Ordering::Acquire)
    }

    /// The overall figures.
    pub fn reading(&self) -> MeterReading {
        MeterReading {
            windows: self.windows(),
            peak_dbfs: self.peak_dbfs(),
            rms_dbfs: self.rms_dbfs(),
            clipped: self.clipped(),
            silent: self.silent(),
        }
    }
}

/// Meters an interleaved f32 stream on the RT thread.
///
/// # Example
/// ```
/// use izyrt::dsp::meter::{Meter, MeterConfig};
/// let cfg = MeterConfig { rate: 1_000, channels: 1, window_ms: 10, ..Default::default() };
/// let mut m = Meter::new(cfg)?;
/// let levels = m.levels(); // an Arc for other threads
/// m.process(&[0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0.5, 1.0]); // one 10-frame window
/// let r = levels.reading();
/// assert_eq!((r.windows, r.peak_dbfs, r.clipped), (1, 0.0, 1));
/// assert!((r.rms_dbfs + 4.88).abs() < 0.01); // √((9·0.25 + 1)/10)
/// # Ok::<(), izyrt::dsp::meter::MeterError>(())
/// ```
#[derive(Debug)]
pub struct Meter {
    channels: usize,
    window_frames: u32,
    hold_frames: u64,
    threshold: f32,
    frames_in_window: u32,
    peak: Box<[f32]>,
    sum_sq: Box<[f64]>,
    clipped: u64,
    quiet_frames: u64,
    levels: Arc<MeterLevels>,
}

impl Meter {
    /// A meter for `cfg`. Allocates: call it before the RT loop.
    ///
    /// # Errors
    /// [`MeterError::Config`] naming the setting when the rate is 0, channels are not
    /// 1..=64, the window is not 1..=10000 ms or rounds to no frame, the hold is over one
    /// hour, or the threshold is not a finite level below 0 dBFS.
    pub fn new(cfg: MeterConfig) -> Result<Self, MeterError> {
        let bad = |what, value: f64, allowed| MeterError::Config {
            what,
            value,
            allowed,
        };
        if cfg.rate == 0 {
            return Err(bad("rate", 0.0, "at least 1 Hz"));
        }
        if !(1..=64).contains(&cfg.channels) {
            return Err(bad("channels", cfg.channels.into(), "1..=64"));
        }
        let window_frames = u64::from(cfg.rate) * u64::from(cfg.window_ms) / 1_000;
        if !(1..=10_000).contains(&cfg.window_ms) || window_frames == 0 {
            return Err(bad(
                "window_ms",
                cfg.window_ms.into(),
                "1..=10000 ms and at least one frame",
            ));
        }
        if cfg.silence_hold_ms > 3_600_000 {
            return Err(bad(
                "silence_hold_ms",
                cfg.silence_hold_ms.into(),
                "0..=3600000 ms",
            ));
        }
        let t = cfg.silence_threshold_dbfs;
        if !t.is_finite() || t >= 0.0 {
            return Err(bad(
                "silence_threshold_dbfs",
                t.into(),
                "a finite level below 0 dBFS",
            ));
        }
        let channels = usize::from(cfg.channels);
        Ok(Meter {
            channels,
            window_frames: window_frames as u32,
            hold_frames: u64::from(cfg.rate) * u64::from(cfg.silence_hold_ms) / 1_000,
            threshold: dbfs_to_amplitude(t),
            frames_in_window: 0,
            peak: vec![0.0; channels].into_boxed_slice(),
            sum_sq: vec![0.0; channels].into_boxed_slice(),
            clipped: 0,
            quiet_frames: 0,
            levels: Arc::new(MeterLevels::new(channels)),
        })
    }

    /// The published levels, to hand to other threads.
    pub fn levels(&self) -> Arc<MeterLevels> {
        Arc::clone(&self.levels)
    }

    /// Meters interleaved samples (a trailing partial frame is ignored). Publishes at the
    /// end of each window. RT-safe: no allocation, no lock, no panic on any sample value.
    pub fn process(&mut self, interleaved: &[f32]) {
        let ch = self.channels;
        let mut rest = &interleaved[..interleaved.len() / ch * ch];
        while !rest.is_empty() {
            // Up to the end of the current window, so publishing stays out of the loop.
            let room = (self.window_frames - self.frames_in_window) as usize * ch;
            let (chunk, tail) = rest.split_at(room.min(rest.len()));
            self.accumulate(chunk);
            rest = tail;
            if self.frames_in_window == self.window_frames {
                self.publish_window();
            }
        }
        self.levels
            .silent
            .store(self.quiet_frames >= self.hold_frames, Ordering::Relaxed);
    }

    /// Adds whole frames within one window.
    ///
    /// Runs once per period on every input of a hub, so it is written to vectorise: the
    /// loudness test is one backward scan for the last loud sample (a loud stream stops
    /// at its last frame), and peak, energy and clipping go into [`LANES`] accumulators
    /// for the samples' positions modulo [`LANES`], folded into their channels at the end
    /// when the channel count divides it (1, 2, 4, 8), frame by frame otherwise. Energy
    /// is summed in f32 over at most [`BLOCK`] samples, then in f64.
    fn accumulate(&mut self, chunk: &[f32]) {
        let ch = self.channels;
        let frames = chunk.len() / ch;
        // A NaN or infinite sample is full scale, hence loud (the threshold is below it).
        let threshold = self.threshold;
        self.quiet_frames = match chunk
            .iter()
            .rposition(|x| x.abs() >= threshold || x.is_nan())
        {
            Some(i) => (frames - 1 - i / ch) as u64,
            None => self.quiet_frames + frames as u64,
        };
        self.frames_in_window += frames as u32;
        let mut clipped = 0u64;
        if LANES % ch == 0 {
            for block in chunk.chunks(BLOCK) {
                let mut acc = Lanes::default();
                let mut whole = block.chunks_exact(LANES);
                for lanes in &mut whole {
                    acc.add(lanes);
                }
                // The rest is whole frames too: lane l still holds channel l % ch.
                acc.add(whole.remainder());
                for (l, (&peak, &sum_sq)) in acc.peak.iter().zip(&acc.sum_sq).enumerate() {
                    let c = l % ch;
                    self.peak[c] = self.peak[c].max(peak);
                    self.sum_sq[c] += f64::from(sum_sq);
                }
                clipped += acc.clipped.iter().map(|&n| u64::from(n)).sum::<u64>();
            }
        } else {
            for frame in chunk.chunks_exact(ch) {
                for ((&x, peak), sum_sq) in frame.iter().zip(&mut *self.peak).zip(&mut *self.sum_sq)
                {
                    let (a, clip) = level(x);
                    clipped += u64::from(clip);
                    *peak = peak.max(a);
                    *sum_sq += f64::from(a) * f64::from(a);
                }
            }
        }
        if clipped > 0 {
            self.clipped += clipped;
            self.levels.clipped.store(self.clipped, Ordering::Relaxed);
        }
    }

    fn publish_window(&mut self) {
        let n = f64::from(self.frames_in_window);
        let mut peak = 0f32;
        let mut sum_sq = 0f64;
        for ch in 0..self.channels {
            let rms = (self.sum_sq[ch] / n).sqrt() as f32;
            store_f32(
                &self.levels.channel_peak[ch],
                amplitude_to_dbfs(self.peak[ch]),
            );
            store_f32(&self.levels.channel_rms[ch], amplitude_to_dbfs(rms));
            peak = peak.max(self.peak[ch]);
            sum_sq += self.sum_sq[ch];
            self.peak[ch] = 0.0;
            self.sum_sq[ch] = 0.0;
        }
        let rms = (sum_sq / (n * self.channels as f64)).sqrt() as f32;
        store_f32(&self.levels.peak, amplitude_to_dbfs(peak));
        store_f32(&self.levels.rms, amplitude_to_dbfs(rms));
        self.frames_in_window = 0;
        self.levels.windows.fetch_add(1, Ordering::Release);
    }
}

/// Accumulators of [`Meter::accumulate`]: one per sample position modulo this.
const LANES: usize = 8;

/// Samples summed in f32 before the energy moves to f64 (its rounding stays below
/// 0.001 dB).
const BLOCK: usize = 1024;

/// Peak, energy (f32, at most [`BLOCK`] samples) and clipped samples per lane.
#[derive(Default)]
struct Lanes {
    peak: [f32; LANES],
    sum_sq: [f32; LANES],
    clipped: [u32; LANES],
}

impl Lanes {
    /// Adds up to [`LANES`] samples, sample i into lane i.
    #[inline(always)]
    fn add(&mut self, xs: &[f32]) {
        for (i, &x) in xs.iter().enumerate().take(LANES) {
            let (a, clip) = level(x);
            // `a` is never NaN: a plain compare, which vectorises (f32::max does not).
            self.peak[i] = if a > self.peak[i] { a } else { self.peak[i] };
            self.sum_sq[i] += a * a;
            self.clipped[i] += u32::from(clip);
        }
    }
}

/// A sample's level (|x|, full scale for NaN or ±∞) and whether it clipped (|x| ≥ 1.0,
/// NaN and ±∞ included).
#[inline(always)]
fn level(x: f32) -> (f32, bool) {
    let a = x.abs();
    let clip = (a >= 1.0) | a.is_nan();
    (if a < f32::INFINITY { a } else { 1.0 }, clip)
}

#[cfg(test)]
mod tests;
