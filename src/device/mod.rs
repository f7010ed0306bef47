//! Sound devices, driven from the RT audio thread.
//!
//! Design: a device is one object that an RT thread owns and drives period by period
//! through [`Device::cycle`], the way JACK drives a process callback. `cycle` blocks on
//! the only thing an RT thread may block on (the sound card, or an absolute-time clock),
//! converts the device's native samples to interleaved f32 in buffers allocated at open
//! time, calls the engine's `process`, and converts back. Capture and playback of a duplex
//! device are linked, so one wait serves both. Everything that allocates (open, format
//! negotiation, reopen after the device vanished) happens outside steady state; `cycle`
//! itself allocates nothing, takes no lock and never logs. Recoverable faults (xruns,
//! suspend) are recovered inside `cycle` and counted in [`DeviceCounters`], which other
//! threads read through atomics.

pub mod spec;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use spec::{DeviceSpec, Signal, VirtualOptions};

/// What the engine asks of a stream. The device reports what it actually got in [`Obtained`].
///
/// # Example
/// ```
/// let cfg = izyrt::device::StreamConfig::default();
/// assert_eq!((cfg.rate, cfg.channels, cfg.period_frames, cfg.periods), (48_000, 2, 64, 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels (same for capture and playback of a duplex stream).
    pub channels: u16,
    /// Frames per period: the unit of work of one RT cycle.
    pub period_frames: u32,
    /// Periods in the device buffer.
    pub periods: u32,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            rate: 48_000,
            channels: 2,
            period_frames: 64,
            periods: 2,
        }
    }
}

/// Which directions a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Capture only: `process` gets input, its output slice is empty.
    Capture,
    /// Playback only: `process` gets an empty input slice and fills the output.
    Playback,
    /// Both, linked to one clock.
    Duplex,
}

impl Direction {
    /// True when this direction includes capture.
    pub fn captures(self) -> bool {
        matches!(self, Direction::Capture | Direction::Duplex)
    }
    /// True when this direction includes playback.
    pub fn plays(self) -> bool {
        matches!(self, Direction::Playback | Direction::Duplex)
    }
}

/// A device's native sample format (the engine always works in f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SampleFormat {
    /// 32-bit float.
    F32,
    /// 32-bit signed integer.
    S32,
    /// 24-bit signed integer in the low bits of 32 (ALSA `S24_LE`).
    S24,
    /// 24-bit signed integer packed in 3 bytes (ALSA `S24_3LE`).
    S24Packed,
    /// 16-bit signed integer.
    S16,
}

impl SampleFormat {
    /// The short lower-case name (`f32`, `s32`, `s24`, `s24_3`, `s16`).
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::F32 => "f32",
            SampleFormat::S32 => "s32",
            SampleFormat::S24 => "s24",
            SampleFormat::S24Packed => "s24_3",
            SampleFormat::S16 => "s16",
        }
    }
}

/// What a device actually gave us after negotiation.
#[derive(Debug, Clone, PartialEq)]
pub struct Obtained {
    /// The device string it was opened with.
    pub name: String,
    /// Frames per second.
    pub rate: u32,
    /// Capture channels (0 without capture).
    pub capture_channels: u16,
    /// Playback channels (0 without playback).
    pub playback_channels: u16,
    /// Frames per period.
    pub period_frames: u32,
    /// Frames in the whole device buffer.
    pub buffer_frames: u32,
    /// The native sample format negotiated.
    pub format: SampleFormat,
    /// `Some(reason)` when the PCM goes through a sound server or plugin that adds latency.
    pub sound_server: Option<String>,
}

/// Counters a device publishes for other threads (metrics); written only by the RT thread.
#[derive(Debug, Default)]
pub struct DeviceCounters {
    /// Periods processed.
    pub cycles: AtomicU64,
    /// Xruns (EPIPE) recovered.
    pub xruns: AtomicU64,
    /// Suspends (ESTRPIPE) recovered.
    pub suspends: AtomicU64,
    /// Times the device vanished (ENODEV) and was reopened.
    pub reopens: AtomicU64,
    /// Lateness of the last wakeup against the period boundary, ns.
    pub last_wakeup_late_ns: AtomicU64,
}

impl DeviceCounters {
    /// Adds one to a counter (relaxed; counters are statistics, not synchronisation).
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A device stream that one RT thread owns and drives.
///
/// # Realtime contract
/// After [`Device::start`], [`Device::cycle`] must not allocate, lock, log or block on
/// anything but the device or its clock.
pub trait Device: Send {
    /// What was obtained at open.
    fn obtained(&self) -> &Obtained;

    /// Counters shared with other threads.
    fn counters(&self) -> Arc<DeviceCounters>;

    /// Starts the stream (prefills playback with silence).
    ///
    /// # Errors
    /// [`DeviceError`] when the device refuses to start.
    fn start(&mut self) -> Result<(), DeviceError>;

    /// Waits for one period, then calls `process(capture, playback)` with interleaved f32
    /// slices of `period_frames × channels` samples (empty for a direction not opened),
    /// and hands the playback samples to the device.
    ///
    /// Returns the lateness of this wakeup against the period boundary in ns, when the
    /// device can tell (the virtual clock always can).
    ///
    /// # Errors
    /// [`DeviceError::Gone`] when the device vanished (the caller may reopen it later);
    /// other variants for faults it could not recover.
    fn cycle(
        &mut self,
        process: &mut dyn FnMut(&[f32], &mut [f32]),
    ) -> Result<Option<u64>, DeviceError>;

    /// Stops the stream; `start` may be called again.
    fn stop(&mut self);

    /// Tries once to open the device again after [`DeviceError::Gone`] (not realtime-safe:
    /// the caller is out of steady state while the device is missing). On success the
    /// stream is ready for [`Device::start`].
    ///
    /// # Errors
    /// The reason it is still unavailable.
    fn reopen(&mut self) -> Result<(), DeviceError> {
        Err(DeviceError::Gone { name: self.obtained().name.clone() })
    }
}

/// Why a device could not be opened or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The device string is not valid.
    #[error("bad device '{spec}': {reason}")]
    BadSpec {
        /// The string given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The device could not be opened or configured.
    #[error("cannot open device '{name}': {reason}")]
    Open {
        /// The device.
        name: String,
        /// Why.
        reason: String,
    },
    /// The device vanished (unplugged, ENODEV).
    #[error("device '{name}' is gone (unplugged or removed)")]
    Gone {
        /// The device.
        name: String,
    },
    /// The device failed while running and could not recover.
    #[error("device '{name}' failed: {reason}")]
    Failed {
        /// The device.
        name: String,
        /// Why.
        reason: String,
    },
}
