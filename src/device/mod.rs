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

#[cfg(target_os = "linux")]
pub mod alsa;
pub mod hw_name;
#[cfg(target_os = "linux")]
pub mod jack;
mod skipped;
pub mod spec;
pub mod virtual_device;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use crate::rt::promote::CpuSlot;

pub use skipped::SkippedFrames;
pub use spec::{DeviceSpec, JackOptions, Signal, VirtualOptions};
pub use virtual_device::VirtualDevice;

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

impl StreamConfig {
    /// Allowed rates, Hz.
    pub const RATES: std::ops::RangeInclusive<u32> = 8_000..=384_000;
    /// Allowed channel counts.
    pub const CHANNELS: std::ops::RangeInclusive<u16> = 1..=64;
    /// Allowed frames per period.
    pub const PERIOD_FRAMES: std::ops::RangeInclusive<u32> = 1..=4096;
    /// Allowed periods per buffer.
    pub const PERIODS: std::ops::RangeInclusive<u32> = 2..=16;

    /// Checks every field against what devices accept.
    ///
    /// # Errors
    /// [`DeviceError::BadConfig`] naming the first field out of range, its value and the
    /// allowed range.
    ///
    /// # Example
    /// ```
    /// use izyrt::device::StreamConfig;
    /// let cfg = StreamConfig { rate: 7_000, ..Default::default() };
    /// let e = cfg.validate().unwrap_err().to_string();
    /// assert_eq!(e, "stream rate 7000 is not allowed (allowed: 8000..=384000 Hz)");
    /// assert!(StreamConfig::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), DeviceError> {
        let bad = |field, value: u32, allowed| {
            Err(DeviceError::BadConfig {
                field,
                value,
                allowed,
            })
        };
        if !Self::RATES.contains(&self.rate) {
            return bad("rate", self.rate, "8000..=384000 Hz");
        }
        if !Self::CHANNELS.contains(&self.channels) {
            return bad("channels", self.channels.into(), "1..=64");
        }
        if !Self::PERIOD_FRAMES.contains(&self.period_frames) {
            return bad("period", self.period_frames, "1..=4096 frames");
        }
        if !Self::PERIODS.contains(&self.periods) {
            return bad("periods", self.periods, "2..=16");
        }
        Ok(())
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
    /// Frames of stream time that xruns and suspends skipped: neither captured nor played
    /// (the time a glitch lasted, where `xruns` counts the glitches). A client's capture
    /// skips its stream position over these, and its playout takes them as a latency to
    /// drain ([`SkippedFrames`]).
    pub lost_frames: AtomicU64,
    /// Lateness of the last wakeup against the period boundary, ns.
    pub last_wakeup_late_ns: AtomicU64,
    /// The `SCHED_FIFO` priority of the device's own thread that runs the periods
    /// ([`Device::drive`]: JACK's process thread), once it has run one since the start
    /// (0: not realtime, or no such thread).
    pub device_thread_priority: AtomicI32,
    /// The CPU that thread is kept on, the RT thread's (`--cpu`); none when it is not kept
    /// on one.
    pub device_thread_cpu: CpuSlot,
}

impl DeviceCounters {
    /// Adds one to a counter (relaxed; counters are statistics, not synchronisation).
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `frames` of stream time an xrun cost: neither captured nor played (`lost_frames`).
    ///
    /// Runs on: the thread that runs the device's periods. Must not: allocate, lock,
    /// block.
    ///
    /// # Example
    /// ```
    /// use std::sync::atomic::Ordering;
    /// use izyrt::device::DeviceCounters;
    /// let c = DeviceCounters::default();
    /// c.lose(128);
    /// assert_eq!(c.lost_frames.load(Ordering::Relaxed), 128);
    /// ```
    pub fn lose(&self, frames: u64) {
        self.lost_frames.fetch_add(frames, Ordering::Relaxed);
    }

    /// Every recovery so far: xruns, suspends and reopens.
    ///
    /// Runs on: any thread, the RT thread once per period among them (three relaxed loads).
    ///
    /// # Example
    /// ```
    /// use izyrt::device::DeviceCounters;
    /// let c = DeviceCounters::default();
    /// DeviceCounters::bump(&c.xruns);
    /// DeviceCounters::bump(&c.reopens);
    /// assert_eq!(c.recoveries(), 2);
    /// ```
    pub fn recoveries(&self) -> u64 {
        self.xruns.load(Ordering::Relaxed)
            + self.suspends.load(Ordering::Relaxed)
            + self.reopens.load(Ordering::Relaxed)
    }
}

/// What [`Device::drive`] calls once per period on the device's own thread: capture,
/// playback (interleaved, as for [`Device::cycle`]) and how late in its period that thread
/// ran, ns.
pub type DrivenPeriod<'a> = dyn FnMut(&[f32], &mut [f32], u64) + Send + 'a;

/// A device stream that one RT thread owns and drives.
///
/// # Realtime contract
/// After [`Device::start`], [`Device::cycle`] must not allocate, lock, log or block on
/// anything but the device or its clock; nor may [`Device::drive`] on the device's own
/// thread, which runs the caller's closure there (so that closure must be `Send`).
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
        process: &mut (dyn FnMut(&[f32], &mut [f32]) + Send),
    ) -> Result<Option<u64>, DeviceError>;

    /// For a device whose periods come from a thread of its own (a sound server's process
    /// callback): runs `period(capture, playback, late_ns)` there, once per period, until
    /// `stop` is set, while the calling RT thread sleeps; `late_ns` is how late in its
    /// period that thread ran. `None` (the default) when the device has no such thread: the
    /// caller then calls [`Device::cycle`] once per period.
    ///
    /// # Errors
    /// As [`Device::cycle`].
    ///
    /// # Example
    /// ```
    /// use std::sync::atomic::AtomicBool;
    /// use izyrt::device::{open, DeviceSpec, Direction, StreamConfig};
    ///
    /// let spec: DeviceSpec = "virtual".parse()?;
    /// let mut dev = open(&spec, Direction::Duplex, StreamConfig::default())?;
    /// // `virtual` has no thread of its own: its caller cycles it (a `jack:` device runs
    /// // the closure on JACK's process thread until the stop).
    /// assert!(dev.drive(&mut |_, _, _| {}, &AtomicBool::new(false)).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn drive(
        &mut self,
        _period: &mut DrivenPeriod<'_>,
        _stop: &AtomicBool,
    ) -> Option<Result<(), DeviceError>> {
        None
    }

    /// Stops the stream; `start` may be called again.
    fn stop(&mut self);

    /// Tries once to open the device again after [`DeviceError::Gone`] (not realtime-safe:
    /// the caller is out of steady state while the device is missing). On success the
    /// stream is ready for [`Device::start`].
    ///
    /// # Errors
    /// The reason it is still unavailable.
    fn reopen(&mut self) -> Result<(), DeviceError> {
        Err(DeviceError::Gone {
            name: self.obtained().name.clone(),
        })
    }
}

/// Opens the device `spec` names for `dir` at `cfg` (main thread: allocates).
///
/// # Errors
/// [`DeviceError::BadConfig`] when `cfg` is out of range ([`StreamConfig::validate`]);
/// otherwise whatever the backend reports.
///
/// # Example
/// ```
/// use izyrt::device::{open, DeviceSpec, Direction, StreamConfig};
/// let spec: DeviceSpec = "virtual:tone=440".parse()?;
/// let dev = open(&spec, Direction::Capture, StreamConfig::default())?;
/// assert_eq!(dev.obtained().name, "virtual:tone=440");
/// # Ok::<(), izyrt::device::DeviceError>(())
/// ```
pub fn open(
    spec: &DeviceSpec,
    dir: Direction,
    cfg: StreamConfig,
) -> Result<Box<dyn Device>, DeviceError> {
    cfg.validate()?;
    match spec {
        DeviceSpec::Virtual(opts) => Ok(Box::new(VirtualDevice::open(*opts, dir, cfg)?)),
        #[cfg(target_os = "linux")]
        DeviceSpec::Alsa(name) => Ok(Box::new(alsa::AlsaDevice::open(name, dir, cfg)?)),
        #[cfg(not(target_os = "linux"))]
        DeviceSpec::Alsa(name) => Err(DeviceError::Open {
            name: name.clone(),
            reason: "ALSA devices exist only on Linux".into(),
        }),
        #[cfg(target_os = "linux")]
        DeviceSpec::Jack(opts) => Ok(Box::new(jack::JackDevice::open(opts, dir, cfg)?)),
        #[cfg(not(target_os = "linux"))]
        DeviceSpec::Jack(opts) => Err(DeviceError::Open {
            name: opts.to_string(),
            reason: "JACK devices are supported only on Linux".into(),
        }),
    }
}

/// Why a device could not be opened or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// A [`StreamConfig`] field is out of range.
    #[error("stream {field} {value} is not allowed (allowed: {allowed})")]
    BadConfig {
        /// The field (`rate`, `channels`, `period`, `periods`).
        field: &'static str,
        /// The value given.
        value: u32,
        /// What is allowed.
        allowed: &'static str,
    },
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

impl DeviceError {
    /// The error of a `cycle` on a stream that is not running (before `start`, after
    /// `stop` or a failure). Error path only: it allocates.
    #[cold]
    pub fn not_running(name: &str) -> DeviceError {
        DeviceError::Failed {
            name: name.to_string(),
            reason: "cycle called before start (or after stop or a failure)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_config_bounds_are_enforced_by_name() {
        let ok = StreamConfig::default();
        for (cfg, msg) in [
            (
                StreamConfig { rate: 7_999, ..ok },
                "stream rate 7999 is not allowed (allowed: 8000..=384000 Hz)",
            ),
            (
                StreamConfig {
                    rate: 384_001,
                    ..ok
                },
                "stream rate 384001 is not allowed (allowed: 8000..=384000 Hz)",
            ),
            (
                StreamConfig { channels: 0, ..ok },
                "stream channels 0 is not allowed (allowed: 1..=64)",
            ),
            (
                StreamConfig { channels: 65, ..ok },
                "stream channels 65 is not allowed (allowed: 1..=64)",
            ),
            (
                StreamConfig {
                    period_frames: 0,
                    ..ok
                },
                "stream period 0 is not allowed (allowed: 1..=4096 frames)",
            ),
            (
                StreamConfig {
                    period_frames: 4_097,
                    ..ok
                },
                "stream period 4097 is not allowed (allowed: 1..=4096 frames)",
            ),
            (
                StreamConfig { periods: 1, ..ok },
                "stream periods 1 is not allowed (allowed: 2..=16)",
            ),
            (
                StreamConfig { periods: 17, ..ok },
                "stream periods 17 is not allowed (allowed: 2..=16)",
            ),
        ] {
            assert_eq!(cfg.validate().unwrap_err().to_string(), msg);
            let spec = DeviceSpec::Virtual(VirtualOptions::default());
            let e = open(&spec, Direction::Duplex, cfg).err().unwrap();
            assert_eq!(e.to_string(), msg);
        }
        for cfg in [
            StreamConfig {
                rate: 8_000,
                channels: 1,
                period_frames: 1,
                periods: 2,
            },
            StreamConfig {
                rate: 384_000,
                channels: 64,
                period_frames: 4_096,
                periods: 16,
            },
        ] {
            assert!(cfg.validate().is_ok(), "{cfg:?}");
        }
    }

    #[test]
    fn open_dispatches_on_the_spec() {
        let spec: DeviceSpec = "virtual:impulse,skew=25".parse().unwrap();
        let dev = open(&spec, Direction::Playback, StreamConfig::default()).unwrap();
        assert_eq!(dev.obtained().name, "virtual:impulse,skew=25");
        assert_eq!(dev.obtained().playback_channels, 2);
        assert_eq!(dev.obtained().capture_channels, 0);
        let e = open(
            &DeviceSpec::Alsa("hw:9,0".into()),
            Direction::Capture,
            StreamConfig::default(),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("hw:9,0"), "{e}");
    }
}
