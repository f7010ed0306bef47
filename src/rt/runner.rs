//! Starting an RT audio thread that drives one device, and watching it from other
//! threads (main thread starts it; the loop runs on the RT thread).
//!
//! Design: the caller builds everything on the main thread (device, driver, the
//! command's RT state) and [`start`] moves it onto a new SCHED_FIFO thread, which waits for
//! [`RtHandle::go`] before touching the device, so the caller can print what was obtained
//! first. When the loop ends, the thread hands the state, device and driver back through
//! [`RtHandle::join`], so nothing is ever dropped on the RT thread.
//!
//! **Steady-state allocation count.** After [`WARM_UP_CYCLES`] periods the thread arms the
//! per-thread allocation counter ([`crate::rt::alloc_count`]) and publishes the count
//! every period in [`RtStatus::steady_allocations`]: with the counting allocator installed
//! (the `izyrt` binary installs it) any allocation, reallocation or free on an RT thread in
//! steady state shows up in getMetrics, where tests check it is 0. A period in which the
//! device recovered (an xrun, a suspend, a reopen) is not steady state and is left out
//! ([`SteadyAllocations`]); what those periods allocated is published apart
//! ([`RtStatus::recovery_allocations`]), so that izyrt's own recovery code is still held to
//! zero where nothing else runs in it (an xrun on `virtual`: `tests/stopped_processes.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::device::{Device, DeviceCounters, Obtained};
use crate::rt::alloc_count::{SteadyAllocations, arm_thread, thread_allocations};
use crate::rt::driver::{Driver, DriverError, DriverStats};
use crate::rt::plugin_threads::{self, below_plugin_threads};
use crate::rt::thread::{RtOptions, RtReport, RtThread, SpawnError, net_thread_options, spawn};
use crate::rt::wakeup::{WakeupSnapshot, WakeupStats};

/// Periods before the allocation counter is armed (2.7 s at 64 frames / 48 kHz): opening
/// the stream and the first wakeups may allocate inside the device layer.
pub const WARM_UP_CYCLES: u64 = 2_000;

/// What other threads can read about a running RT thread.
#[derive(Debug, Clone)]
pub struct RtStatus {
    /// What the thread obtained (policy, priority, memory lock, CPU).
    pub report: RtReport,
    /// The device as opened.
    pub obtained: Obtained,
    /// Wakeup-latency figures, published by the driver.
    pub wakeups: Arc<WakeupStats>,
    /// How long the engine's work took each period, published by the driver.
    pub work: Arc<WakeupStats>,
    /// The device's counters (xruns, suspends, reopens).
    pub counters: Arc<DeviceCounters>,
    /// The driver's state and recovery counters.
    pub driver: Arc<DriverStats>,
    /// Allocator calls made by the thread since it was armed, its device's recoveries left
    /// out (`u64::MAX` before).
    pub steady_allocations: Arc<AtomicU64>,
    /// Allocator calls made in the periods left out of `steady_allocations` (`u64::MAX`
    /// before the counter arms).
    pub recovery_allocations: Arc<AtomicU64>,
}

impl RtStatus {
    /// Allocator calls since the counter armed; `None` before it arms.
    pub fn steady_allocation_count(&self) -> Option<u64> {
        armed_count(&self.steady_allocations)
    }

    /// Allocator calls in the periods of the device's recoveries and the
    /// [`SETTLE_PERIODS`](crate::rt::alloc_count::SETTLE_PERIODS) after each, since the
    /// counter armed; `None` before it arms. 0 while the recoveries are xruns on `virtual`,
    /// whose recovery is izyrt's own code alone; a reopen (a vanished device opened again)
    /// and an xrun on an ALSA plugin add the device layer's own work.
    pub fn recovery_allocation_count(&self) -> Option<u64> {
        armed_count(&self.recovery_allocations)
    }

    /// The thread's entry in the snapshot's `realtime` table.
    ///
    /// # Example
    /// ```no_run
    /// # fn f(s: &izyrt::rt::runner::RtStatus) {
    /// let v = s.json();
    /// assert!(v.get("p999Us").is_some());
    /// # }
    /// ```
    pub fn json(&self) -> Value {
        let w = self.wakeups.snapshot();
        let work = self.work.snapshot();
        json!({
            "policy": self.report.policy.name(),
            "priority": self.report.priority,
            // The device's own threads' priority this one runs below (`rt::plugin_threads`).
            "belowPluginThreads": self.report.below_plugin,
            "memoryLocked": self.report.memory_locked,
            "cpu": self.report.cpu,
            "device": self.obtained.name,
            "periodFrames": self.obtained.period_frames,
            "bufferFrames": self.obtained.buffer_frames,
            "wakeups": w.count,
            "p50Us": w.p50_us(),
            "p99Us": w.p99_us(),
            "p999Us": w.p999_us(),
            "maxUs": w.max_us(),
            // Since the start, never reset: the Prometheus histogram.
            "wakeupHistogram": {
                "boundsUs": crate::rt::wakeup::BUCKET_BOUNDS_NS.map(WakeupSnapshot::us),
                "cumulative": w.cumulative_buckets(),
                "sumUs": WakeupSnapshot::us(w.sum_ns),
            },
            "xruns": self.counters.xruns.load(Ordering::Relaxed),
            "lostFrames": self.counters.lost_frames.load(Ordering::Relaxed),
            "suspends": self.counters.suspends.load(Ordering::Relaxed),
            "reopens": self.driver.reopens(),
            "state": self.driver.state().name(),
            "steadyAllocations": self.steady_allocation_count(),
            "recoveryAllocations": self.recovery_allocation_count(),
            // The device's own thread that runs the periods (JACK's process thread).
            // How long the period's work took (not counting the wait for the device).
            "work": {
                "p50Us": work.p50_us(),
                "p99Us": work.p99_us(),
                "p999Us": work.p999_us(),
                "maxUs": work.max_us(),
            },
            "deviceThread": self.driver.driven().then(|| json!({
                "priority": self.counters.device_thread_priority.load(Ordering::Relaxed),
                "cpu": self.counters.device_thread_cpu.get(),
            })),
        })
    }
}

/// A published count: `None` while it holds `u64::MAX` (the counter not armed yet).
fn armed_count(n: &AtomicU64) -> Option<u64> {
    match n.load(Ordering::Relaxed) {
        u64::MAX => None,
        n => Some(n),
    }
}

/// What the RT thread hands back when its loop ends.
pub struct RtEnd<S> {
    /// The driver's result.
    pub result: Result<(), DriverError>,
    /// Wall time of the loop.
    pub elapsed: Duration,
    /// The state, back on the joining thread.
    pub state: S,
    /// The device, to be dropped by the joining thread.
    pub device: Box<dyn Device>,
    /// The driver, likewise.
    pub driver: Driver,
}

/// A started RT thread.
pub struct RtHandle<S> {
    thread: RtThread<RtEnd<S>>,
    go: mpsc::SyncSender<bool>,
    stop: Arc<AtomicBool>,
    status: RtStatus,
    opts: RtOptions,
    /// The priority of the net threads that serve it (`rt::plugin_threads::net_priority`).
    net_priority: u8,
}

/// Spawns the RT thread for `device` (see the module notes). `step(&mut state, capture,
/// playback)` runs once per period on it and must not allocate, lock, block or print.
///
/// # Errors
/// [`SpawnError`] when the thread cannot be created or `opts` are refused.
///
/// # Example
/// ```no_run
/// use izyrt::device::{open, DeviceSpec, Direction, StreamConfig};
/// use izyrt::rt::{driver::{Driver, DriverConfig}, runner::start, thread::RtOptions};
/// let dev = open(&"virtual".parse::<DeviceSpec>().unwrap(), Direction::Playback, StreamConfig::default()).unwrap();
/// let driver = Driver::new(DriverConfig::default()).unwrap();
/// let rt = start(&RtOptions::default(), dev, driver, 0u64, |n, _c, p| { *n += 1; p.fill(0.0) }).unwrap();
/// rt.go();
/// rt.stop();
/// let end = rt.join().unwrap();
/// assert!(end.state > 0 || end.result.is_err());
/// ```
pub fn start<S: Send + 'static>(
    opts: &RtOptions,
    mut device: Box<dyn Device>,
    mut driver: Driver,
    mut state: S,
    step: fn(&mut S, &[f32], &mut [f32]),
) -> Result<RtHandle<S>, SpawnError> {
    let obtained = device.obtained().clone();
    let requested = opts.priority;
    // On a sound server's plugin, below the threads that feed the device (and the net
    // threads above them).
    let (opts, below_plugin) = below_plugin_threads(opts, &obtained);
    let net_priority = plugin_threads::net_priority(requested, below_plugin);
    let counters = device.counters();
    let stop = driver.stop_flag();
    let allocs = Arc::new(AtomicU64::new(u64::MAX));
    let recovery_allocs = Arc::new(AtomicU64::new(u64::MAX));
    let driver_stats = driver.stats();
    let wakeups = driver.wakeup_stats();
    let work = driver.work_stats();
    let published = Arc::clone(&allocs);
    let published_recovery = Arc::clone(&recovery_allocs);
    let device_counters = Arc::clone(&counters);
    let (go_tx, go_rx) = mpsc::sync_channel::<bool>(1);
    let body = move || {
        let go = go_rx.recv().unwrap_or(false);
        drop(go_rx);
        let start = Instant::now();
        let mut cycles = 0u64;
        // Armed after the warm-up.
        let mut steady: Option<SteadyAllocations> = None;
        let result = if go {
            driver.run(&mut *device, &mut |capture, playback| {
                step(&mut state, capture, playback);
                cycles += 1;
                if cycles == WARM_UP_CYCLES {
                    arm_thread();
                    steady = Some(SteadyAllocations::new(device_counters.recoveries()));
                }
                if let Some(steady) = &mut steady {
                    let n = steady.update(thread_allocations(), device_counters.recoveries());
                    published.store(n, Ordering::Relaxed);
                    published_recovery.store(steady.recovery_calls(), Ordering::Relaxed);
                }
            })
        } else {
            Ok(())
        };
        RtEnd {
            result,
            elapsed: start.elapsed(),
            state,
            device,
            driver,
        }
    };
    let thread = spawn(&opts, body)?;
    let status = RtStatus {
        report: RtReport {
            below_plugin,
            ..thread.report().clone()
        },
        obtained,
        wakeups,
        work,
        counters,
        driver: driver_stats,
        steady_allocations: allocs,
        recovery_allocations: recovery_allocs,
    };
    Ok(RtHandle {
        thread,
        go: go_tx,
        stop,
        status,
        opts,
        net_priority,
    })
}

impl<S> RtHandle<S> {
    /// The options the thread was started with: the caller's, with the priority lowered
    /// on a sound server's plugin (`rt::plugin_threads`). The net threads that serve it
    /// derive theirs from these.
    pub fn options(&self) -> &RtOptions {
        &self.opts
    }

    /// The priority of the net threads that serve this thread: ten below the priority it
    /// was asked for, or on a sound server's plugin one above the plugin's threads when
    /// that is lower (`rt::plugin_threads::net_priority`).
    pub fn net_priority(&self) -> u8 {
        self.net_priority
    }

    /// The options of a net thread named `name` that serves this thread
    /// ([`net_thread_options`] at [`RtHandle::net_priority`]).
    pub fn net_options(&self, name: &str) -> RtOptions {
        RtOptions {
            priority: self.net_priority,
            ..net_thread_options(name, &self.opts)
        }
    }

    /// Lets the thread start the device.
    pub fn go(&self) {
        let _ = self.go.try_send(true);
    }

    /// Asks the loop to end (it ends within a period).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The stop flag itself.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// What other threads can read.
    pub fn status(&self) -> &RtStatus {
        &self.status
    }

    /// Waits for the thread (call [`RtHandle::stop`] first, or it runs forever). A thread
    /// that was never told to [`go`](RtHandle::go) ends at once.
    ///
    /// # Errors
    /// The panic payload if the thread panicked.
    pub fn join(self) -> std::thread::Result<RtEnd<S>> {
        let _ = self.go.try_send(false);
        self.thread.join()
    }
}
