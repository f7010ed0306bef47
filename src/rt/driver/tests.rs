use super::*;
use crate::device::{
    DeviceCounters, Direction, DrivenPeriod, Obtained, StreamConfig, VirtualDevice, VirtualOptions,
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

/// Spins for `us` microseconds (a period's work that takes that long).
fn busy(us: u64) {
    let until = Instant::now() + std::time::Duration::from_micros(us);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

#[test]
fn times_the_work_of_every_period_on_either_thread() {
    let open = || {
        VirtualDevice::open(
            VirtualOptions::default(),
            Direction::Duplex,
            StreamConfig::default(),
        )
        .unwrap()
    };
    // Cycled here, then driven on the device's thread: 20 periods of 300 µs of work each.
    let mut cycled = open();
    let mut driven = OwnThread {
        inner: open(),
        vanish_after: u64::MAX,
        drives: 0,
    };
    for dev in [&mut cycled as &mut dyn Device, &mut driven] {
        let mut driver = Driver::new(DriverConfig::default()).unwrap();
        let (stop, work) = (driver.stop_flag(), driver.work_stats());
        let mut n = 0;
        driver
            .run(dev, &mut |_, _| {
                busy(300);
                n += 1;
                if n == 20 {
                    stop.store(true, Ordering::Relaxed);
                }
            })
            .unwrap();
        let w = work.snapshot();
        assert_eq!(w.count, 20, "{w:?}");
        // Not the wait for the device: a 64-frame period is 1333 µs, the work 300.
        assert!(w.p50_us() >= 299.0 && w.p50_us() < 1000.0, "{w:?}");
        assert!(w.max_us() >= w.p50_us(), "{w:?}");
    }
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
