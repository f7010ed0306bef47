//! The loop an RT audio thread runs over a device (RT audio thread).
//!
//! Design: the driver is the only code between the device and the engine's `process`, so
//! it holds the RT rules for every device: in steady state one iteration is `cycle`, two
//! histogram recordings, a few relaxed atomic stores and a load of the stop flag; nothing
//! allocates, locks, logs or blocks except the device's own wait. Everything it needs
//! (the histogram, the shared counters) is built by [`Driver::new`] on the main thread.
//!
//! A device that vanishes (USB unplugged: [`DeviceError::Gone`]) must not end the stream
//! for good, nor make the thread spin: the driver leaves steady state, stops the device,
//! and retries [`Device::reopen`] at once and then every `reopen_interval` (500 ms by
//! default), sleeping on the monotonic clock in short slices so that the stop flag is
//! still honoured within ~20 ms. Reopening allocates (it opens a device), which is allowed
//! precisely because the thread is out of steady state while the device is missing; once
//! the device is back it is restarted and the loop resumes. While recovering, every
//! failure of `reopen` or of the restart means "still unavailable" (an unplugged ALSA
//! card reports "no such device" as an open error, not as `Gone`), so the driver keeps
//! retrying until the device returns or it is told to stop; [`DriverStats`] shows the
//! attempts. Any other error in steady state is a fault the device could not recover from
//! itself (it already recovers xruns and suspends inside `cycle`), so the loop stops the
//! device and returns the error to whoever joins the thread.
//!
//! A device whose periods come from a thread of its own (a native JACK client: JACK's
//! process thread) runs the loop's period there ([`Device::drive`]): doing the work inside
//! the server's cycle, as every JACK client does, is what keeps a period from depending on
//! this thread being scheduled in time. The per-period bookkeeping (wakeup histogram, cycle
//! count, work time) goes with it, so it is the same code on either thread; this thread
//! sleeps until the stop, a fault or a vanished device, and recovers as above.
//!
//! **Work time.** How long `process` took, every period, in a second histogram: the share of
//! the period izyrt's own work uses (JACK's "DSP load", per thread), so that an operator can
//! tell a host that runs izyrt late (wakeups) from izyrt running out of time (work). Two
//! `CLOCK_MONOTONIC` reads per period (vDSO: no system call).
//!
//! The device counts its own reopens ([`DeviceCounters::reopens`](crate::device::DeviceCounters));
//! the driver counts recoveries (reopened and restarted) in [`DriverStats::reopens`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use crate::device::{Device, DeviceError};
use crate::rt::clock::{now_ns, sleep_until_ns};
use crate::rt::wakeup::{DEFAULT_PUBLISH_EVERY, WakeupError, WakeupHistogram, WakeupStats};

/// Longest single sleep while waiting to retry a reopen: bounds how long a stop request
/// can go unnoticed.
const STOP_POLL_NS: u64 = 20_000_000;

/// How a [`Driver`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverConfig {
    /// Time between reopen attempts while the device is gone.
    pub reopen_interval: Duration,
    /// Wakeups between publications of the wakeup-latency figures.
    pub publish_every: u32,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            reopen_interval: Duration::from_millis(500),
            publish_every: DEFAULT_PUBLISH_EVERY,
        }
    }
}

/// Where a driver loop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DriverState {
    /// Not running yet.
    Idle = 0,
    /// In steady state.
    Running = 1,
    /// The device is gone; retrying to reopen it.
    Reopening = 2,
    /// Stopped on request.
    Stopped = 3,
    /// Ended with an error.
    Failed = 4,
}

impl DriverState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => DriverState::Running,
            2 => DriverState::Reopening,
            3 => DriverState::Stopped,
            4 => DriverState::Failed,
            _ => DriverState::Idle,
        }
    }

    /// Lower-case name for metrics (`idle`, `running`, `reopening`, `stopped`, `failed`).
    pub fn name(self) -> &'static str {
        match self {
            DriverState::Idle => "idle",
            DriverState::Running => "running",
            DriverState::Reopening => "reopening",
            DriverState::Stopped => "stopped",
            DriverState::Failed => "failed",
        }
    }
}

/// Counters a driver publishes for other threads (written only by the RT thread).
#[derive(Debug, Default)]
pub struct DriverStats {
    state: AtomicU8,
    cycles: AtomicU64,
    gone: AtomicU64,
    reopen_attempts: AtomicU64,
    reopens: AtomicU64,
    driven: AtomicBool,
}

impl DriverStats {
    /// The loop's state.
    pub fn state(&self) -> DriverState {
        DriverState::from_u8(self.state.load(Ordering::Relaxed))
    }
    /// Periods processed in steady state.
    pub fn cycles(&self) -> u64 {
        self.cycles.load(Ordering::Relaxed)
    }
    /// Times the device vanished.
    pub fn gone(&self) -> u64 {
        self.gone.load(Ordering::Relaxed)
    }
    /// Reopen attempts made (successful or not).
    pub fn reopen_attempts(&self) -> u64 {
        self.reopen_attempts.load(Ordering::Relaxed)
    }
    /// Recoveries completed (reopened and restarted).
    pub fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::Relaxed)
    }
    /// Whether the periods run on the device's own thread ([`Device::drive`]: JACK's
    /// process thread), not on the driver's.
    pub fn driven(&self) -> bool {
        self.driven.load(Ordering::Relaxed)
    }
    fn set_state(&self, s: DriverState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
}

/// Why a driver loop ended other than by its stop flag.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The device failed and could not recover.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// Drives a [`Device`] period by period on the calling (RT) thread until its stop flag is
/// set, recording wakeup latency and recovering from a vanished device.
///
/// # Example
/// ```
/// use izyrt::device::{open, DeviceSpec, Direction, StreamConfig};
/// use izyrt::rt::driver::{Driver, DriverConfig};
/// use std::sync::atomic::Ordering;
///
/// let spec: DeviceSpec = "virtual:tone=440".parse()?;
/// let mut dev = open(&spec, Direction::Duplex, StreamConfig::default())?;
/// let mut driver = Driver::new(DriverConfig::default())?; // main thread: allocates
/// let (stop, stats, wakeups) = (driver.stop_flag(), driver.stats(), driver.wakeup_stats());
/// let work = driver.work_stats();
/// let rt = std::thread::spawn(move || {
///     // RT thread (normally through izyrt::rt::thread::spawn)
///     let mut n = 0;
///     driver.run(&mut *dev, &mut |capture, playback| {
///         playback.copy_from_slice(capture);
///         n += 1;
///         if n == 30 { stop.store(true, Ordering::Relaxed) } // or from any other thread
///     })
/// });
/// rt.join().unwrap()?;
/// assert_eq!(stats.cycles(), 30);
/// assert_eq!(wakeups.snapshot().count, 30);
/// assert_eq!(work.snapshot().count, 30); // how long each `process` took
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Driver {
    config: DriverConfig,
    wakeup: WakeupHistogram,
    work: WakeupHistogram,
    stats: Arc<DriverStats>,
    stop: Arc<AtomicBool>,
}

impl Driver {
    /// A driver with its histogram and counters. Allocates: call it off the RT thread.
    ///
    /// # Errors
    /// [`WakeupError`] when `publish_every` is 0.
    pub fn new(config: DriverConfig) -> Result<Self, WakeupError> {
        Ok(Driver {
            config,
            wakeup: WakeupHistogram::new(config.publish_every)?,
            work: WakeupHistogram::new(config.publish_every)?,
            stats: Arc::new(DriverStats::default()),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The flag that ends [`Driver::run`] (set it to `true` from any thread, or from
    /// `process`). `run` does not clear it: clear it before running again.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The driver's counters, for other threads.
    pub fn stats(&self) -> Arc<DriverStats> {
        Arc::clone(&self.stats)
    }

    /// The published wakeup-latency figures, for other threads.
    pub fn wakeup_stats(&self) -> Arc<WakeupStats> {
        self.wakeup.stats()
    }

    /// The published work-time figures (how long `process` took each period), for other
    /// threads.
    pub fn work_stats(&self) -> Arc<WakeupStats> {
        self.work.stats()
    }

    /// The wakeup histogram itself (for a full report once the loop has ended).
    pub fn wakeup(&self) -> &WakeupHistogram {
        &self.wakeup
    }

    /// Starts `device` and calls `device.cycle(process)` once per period until the stop
    /// flag is set, then stops the device. A device with a thread of its own runs
    /// `process` there instead ([`Device::drive`]), while this thread sleeps. Recovers from [`DeviceError::Gone`] by
    /// reopening (see the module notes); publishes the wakeup figures once more on exit.
    ///
    /// # Errors
    /// [`DriverError::Device`] with the first error other than `Gone` from the first
    /// `start` or from `cycle`.
    pub fn run(
        &mut self,
        device: &mut dyn Device,
        process: &mut (dyn FnMut(&[f32], &mut [f32]) + Send),
    ) -> Result<(), DriverError> {
        let result = self.run_inner(device, process);
        self.wakeup.publish();
        self.work.publish();
        self.stats.set_state(match result {
            Ok(()) => DriverState::Stopped,
            Err(_) => DriverState::Failed,
        });
        result
    }

    fn run_inner(
        &mut self,
        device: &mut dyn Device,
        process: &mut (dyn FnMut(&[f32], &mut [f32]) + Send),
    ) -> Result<(), DriverError> {
        match device.start() {
            Ok(()) => {}
            Err(DeviceError::Gone { .. }) => {
                if !self.recover(device) {
                    return Ok(());
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.stats.set_state(DriverState::Running);
        while !self.stop.load(Ordering::Relaxed) {
            let (wakeup, work, stats) = (&mut self.wakeup, &mut self.work, &*self.stats);
            // On the device's own thread when it has one (`Device::drive`), which then
            // runs every period until the stop; else here, one `cycle` per period.
            let mut period = |capture: &[f32], playback: &mut [f32], late: u64| {
                timed(work, process, capture, playback);
                count_period(wakeup, stats, Some(late));
                stats.driven.store(true, Ordering::Relaxed);
            };
            let result = match device.drive(&mut period, &self.stop) {
                Some(result) => result,
                None => device
                    .cycle(&mut |capture, playback| {
                        timed(&mut self.work, process, capture, playback);
                    })
                    .map(|late| count_period(&mut self.wakeup, &self.stats, late)),
            };
            match result {
                Ok(()) => {}
                Err(DeviceError::Gone { .. }) => {
                    if !self.recover(device) {
                        return Ok(());
                    }
                    self.stats.set_state(DriverState::Running);
                }
                Err(e) => {
                    device.stop();
                    return Err(e.into());
                }
            }
        }
        device.stop();
        Ok(())
    }

    /// Out of steady state: reopens and restarts the device, retrying every
    /// `reopen_interval` whatever the failure. Returns `false` when stopped meanwhile
    /// (device stopped).
    fn recover(&mut self, device: &mut dyn Device) -> bool {
        self.stats.gone.fetch_add(1, Ordering::Relaxed);
        self.stats.set_state(DriverState::Reopening);
        device.stop();
        let interval = u64::try_from(self.config.reopen_interval.as_nanos()).unwrap_or(u64::MAX);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let attempt_at = now_ns();
            self.stats.reopen_attempts.fetch_add(1, Ordering::Relaxed);
            if device.reopen().and_then(|()| device.start()).is_ok() {
                self.stats.reopens.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            // Still unavailable: make sure it is not left half-started.
            device.stop();
            // Sleep until the next attempt, in slices, so a stop request is noticed.
            let next = attempt_at.saturating_add(interval);
            loop {
                let now = now_ns();
                if now >= next || self.stop.load(Ordering::Relaxed) {
                    break;
                }
                sleep_until_ns(next.min(now + STOP_POLL_NS));
            }
        }
    }
}

/// Runs `process` and records how long it took.
///
/// Runs on: the thread that runs the periods (the driver's, or the device's own), once per
/// period. Must not: allocate, lock, block.
fn timed(
    work: &mut WakeupHistogram,
    process: &mut (dyn FnMut(&[f32], &mut [f32]) + Send),
    capture: &[f32],
    playback: &mut [f32],
) {
    let start = now_ns();
    process(capture, playback);
    work.record(now_ns().saturating_sub(start));
}

/// One period done: its lateness recorded (when the device can tell) and counted.
///
/// Runs on: the thread that runs the periods (the driver's, or the device's own), once per
/// period. Must not: allocate, lock, block.
fn count_period(wakeup: &mut WakeupHistogram, stats: &DriverStats, late: Option<u64>) {
    if let Some(late) = late {
        wakeup.record(late);
    }
    stats.cycles.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests;
