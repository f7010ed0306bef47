//! The loop an RT audio thread runs over a device (RT audio thread).
//!
//! Design: the driver is the only code between the device and the engine's `process`, so
//! it holds the RT rules for every device: in steady state one iteration is `cycle`, one
//! histogram recording, a few relaxed atomic stores and a load of the stop flag; nothing
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
//! count) goes with it, so it is the same code on either thread; this thread sleeps until
//! the stop, a fault or a vanished device, and recovers as above.
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
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Driver {
    config: DriverConfig,
    wakeup: WakeupHistogram,
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
            let (wakeup, stats) = (&mut self.wakeup, &*self.stats);
            // On the device's own thread when it has one (`Device::drive`), which then
            // runs every period until the stop; else here, one `cycle` per period.
            let mut period = |capture: &[f32], playback: &mut [f32], late: u64| {
                process(capture, playback);
                count_period(wakeup, stats, Some(late));
                stats.driven.store(true, Ordering::Relaxed);
            };
            let result = match device.drive(&mut period, &self.stop) {
                Some(result) => result,
                None => device
                    .cycle(process)
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
mod tests {
    use super::*;
    use crate::device::{
        DeviceCounters, Direction, DrivenPeriod, Obtained, StreamConfig, VirtualDevice,
        VirtualOptions,
    };
    use std::time::Instant;

    /// A virtual device that vanishes at a given cycle and refuses to come back for a
    /// number of reopen attempts (forever with `usize::MAX`), or fails outright.
    struct Flaky {
        inner: VirtualDevice,
        vanish_at: u64,
        fail_instead: bool,
        refusals: usize,
        reopen_times: Vec<Instant>,
        cycles: u64,
    }

    impl Flaky {
        fn new(vanish_at: u64, refusals: usize) -> Self {
            Flaky {
                inner: VirtualDevice::open(
                    VirtualOptions::default(),
                    Direction::Duplex,
                    StreamConfig::default(),
                )
                .unwrap(),
                vanish_at,
                fail_instead: false,
                refusals,
                reopen_times: Vec::new(),
                cycles: 0,
            }
        }
        fn gone(&self) -> DeviceError {
            DeviceError::Gone {
                name: "flaky".into(),
            }
        }
    }

    impl Device for Flaky {
        fn obtained(&self) -> &Obtained {
            self.inner.obtained()
        }
        fn counters(&self) -> Arc<DeviceCounters> {
            self.inner.counters()
        }
        fn start(&mut self) -> Result<(), DeviceError> {
            self.inner.start()
        }
        fn cycle(
            &mut self,
            process: &mut (dyn FnMut(&[f32], &mut [f32]) + Send),
        ) -> Result<Option<u64>, DeviceError> {
            self.cycles += 1;
            if self.cycles == self.vanish_at {
                if self.fail_instead {
                    return Err(DeviceError::Failed {
                        name: "flaky".into(),
                        reason: "on fire".into(),
                    });
                }
                return Err(self.gone());
            }
            self.inner.cycle(process)
        }
        fn stop(&mut self) {
            self.inner.stop()
        }
        fn reopen(&mut self) -> Result<(), DeviceError> {
            self.reopen_times.push(Instant::now());
            if self.refusals > 0 {
                self.refusals -= 1;
                // As ALSA reports an unplugged card: an open error, not `Gone`.
                return Err(DeviceError::Open {
                    name: "flaky".into(),
                    reason: "no such device".into(),
                });
            }
            self.inner.reopen()
        }
    }

    fn stop_after(stop: Arc<AtomicBool>, n: u64) -> impl FnMut(&[f32], &mut [f32]) {
        let mut seen = 0;
        move |_, _| {
            seen += 1;
            if seen == n {
                stop.store(true, Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn runs_until_stopped_and_records_every_wakeup() {
        let mut dev = Flaky::new(u64::MAX, 0);
        let mut driver = Driver::new(DriverConfig::default()).unwrap();
        let stats = driver.stats();
        assert_eq!(stats.state(), DriverState::Idle);
        let mut process = stop_after(driver.stop_flag(), 25);
        driver.run(&mut dev, &mut process).unwrap();
        assert_eq!(stats.cycles(), 25);
        assert!(!stats.driven(), "cycled on the driver's thread");
        assert_eq!(stats.state(), DriverState::Stopped);
        assert_eq!(driver.wakeup_stats().snapshot().count, 25);
        assert_eq!(dev.counters().cycles.load(Ordering::Relaxed), 25);
    }

    #[test]
    fn reopens_a_vanished_device_every_interval() {
        // Gone at cycle 10; the first two reopen attempts fail, the third works.
        let mut dev = Flaky::new(10, 2);
        let mut driver = Driver::new(DriverConfig {
            reopen_interval: Duration::from_millis(200),
            ..DriverConfig::default()
        })
        .unwrap();
        let stats = driver.stats();
        let mut process = stop_after(driver.stop_flag(), 30);
        driver.run(&mut dev, &mut process).unwrap();
        assert_eq!(stats.gone(), 1);
        assert_eq!(stats.reopen_attempts(), 3);
        assert_eq!(stats.reopens(), 1);
        // The device counts its own successful reopen.
        assert_eq!(dev.counters().reopens.load(Ordering::Relaxed), 1);
        assert_eq!(stats.cycles(), 30);
        // Attempts are spaced by the interval (sleeps are never shorter; no upper bound
        // asserted on a shared machine).
        for pair in dev.reopen_times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= Duration::from_millis(199), "{gap:?}");
        }
    }

    #[test]
    fn stop_is_honoured_while_reopening() {
        let mut dev = Flaky::new(5, usize::MAX);
        let mut driver = Driver::new(DriverConfig::default()).unwrap();
        let stats = driver.stats();
        let stop = driver.stop_flag();
        let t0 = Instant::now();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1_200));
            stop.store(true, Ordering::Relaxed);
        });
        driver.run(&mut dev, &mut |_, _| {}).unwrap();
        stopper.join().unwrap();
        let took = t0.elapsed();
        assert_eq!(stats.state(), DriverState::Stopped);
        assert_eq!(stats.reopens(), 0);
        // Attempts at ~0, ~500 and ~1000 ms, then the stop at ~1200 ms.
        assert!(stats.reopen_attempts() >= 2, "{}", stats.reopen_attempts());
        assert!(took >= Duration::from_millis(1_200));
        assert!(took < Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn other_errors_end_the_loop_with_the_error() {
        let mut dev = Flaky::new(7, 0);
        dev.fail_instead = true;
        let mut driver = Driver::new(DriverConfig::default()).unwrap();
        let stats = driver.stats();
        let e = driver.run(&mut dev, &mut |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("on fire"), "{e}");
        assert_eq!(stats.state(), DriverState::Failed);
        assert_eq!(stats.cycles(), 6);
        assert_eq!(stats.reopen_attempts(), 0);
    }

    /// A device whose periods come from a thread of its own, as a sound server's do: its
    /// `drive` runs them there, and the first drive ends with the device gone after
    /// `vanish_after` periods.
    struct OwnThread {
        inner: VirtualDevice,
        vanish_after: u64,
        drives: u32,
    }

    impl Device for OwnThread {
        fn obtained(&self) -> &Obtained {
            self.inner.obtained()
        }
        fn counters(&self) -> Arc<DeviceCounters> {
            self.inner.counters()
        }
        fn start(&mut self) -> Result<(), DeviceError> {
            Ok(())
        }
        fn cycle(
            &mut self,
            _: &mut (dyn FnMut(&[f32], &mut [f32]) + Send),
        ) -> Result<Option<u64>, DeviceError> {
            panic!("a device with a thread of its own is driven, not cycled")
        }
        fn drive(
            &mut self,
            period: &mut DrivenPeriod<'_>,
            stop: &AtomicBool,
        ) -> Option<Result<(), DeviceError>> {
            self.drives += 1;
            let vanish_after = (self.drives == 1).then_some(self.vanish_after);
            let ended = std::thread::scope(|s| {
                s.spawn(|| {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if Some(n) == vanish_after {
                            return Err(DeviceError::Gone { name: "own".into() });
                        }
                        std::thread::sleep(Duration::from_millis(1));
                        period(&[0.5; 2], &mut [0.0; 2], 1_000 + n);
                        n += 1;
                    }
                    Ok(())
                })
                .join()
                .unwrap()
            });
            Some(ended)
        }
        fn stop(&mut self) {}
        fn reopen(&mut self) -> Result<(), DeviceError> {
            Ok(())
        }
    }

    #[test]
    fn a_device_with_its_own_thread_runs_every_period_there() {
        let mut dev = OwnThread {
            inner: VirtualDevice::open(
                VirtualOptions::default(),
                Direction::Duplex,
                StreamConfig::default(),
            )
            .unwrap(),
            vanish_after: 10,
            drives: 0,
        };
        let mut driver = Driver::new(DriverConfig::default()).unwrap();
        let (stats, stop) = (driver.stats(), driver.stop_flag());
        let here = std::thread::current().id();
        let mut elsewhere = 0;
        let mut calls = 0;
        driver
            .run(&mut dev, &mut |capture, _| {
                assert_eq!(capture, [0.5; 2]);
                elsewhere += u32::from(std::thread::current().id() != here);
                calls += 1;
                if calls == 30 {
                    stop.store(true, Ordering::Relaxed);
                }
            })
            .unwrap();
        assert_eq!(
            (calls, elsewhere),
            (30, 30),
            "every period on the device's thread"
        );
        assert!(stats.driven());
        assert_eq!(stats.cycles(), 30);
        assert_eq!(
            driver.wakeup_stats().snapshot().count,
            30,
            "each lateness recorded"
        );
        // Gone after 10 periods, reopened, driven again.
        assert_eq!((stats.gone(), stats.reopens(), dev.drives), (1, 1, 2));
        assert_eq!(stats.state(), DriverState::Stopped);
    }

    #[test]
    fn state_names() {
        for s in [
            DriverState::Idle,
            DriverState::Running,
            DriverState::Reopening,
            DriverState::Stopped,
            DriverState::Failed,
        ] {
            assert_eq!(DriverState::from_u8(s as u8), s);
            assert!(!s.name().is_empty());
        }
    }
}
