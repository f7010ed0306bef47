//! Wakeup latency of the RT driver over the `virtual` device (48 kHz / 64 frames, duplex,
//! tone looped back and metered) against a plain `clock_nanosleep(TIMER_ABSTIME)` loop at
//! the same period and the same `SCHED_FIFO` priority. The driver adds its work between
//! wakeups; the goal is a p99.9 within 1.25× of the plain loop's. The loops alternate in
//! rounds so a shared machine's changing load falls on both, and the device has a
//! 16-period buffer so that, like the plain loop, it catches up after a stall instead of
//! dropping periods as an xrun (which would record fewer late wakeups).
//!
//! `cargo bench --bench wakeup`; environment:
//! `IZYRT_BENCH_SECS` (seconds per loop, default 10), `IZYRT_BENCH_ROUNDS` (the loops
//! alternate in this many rounds, default 5), `IZYRT_BENCH_PRIO` (default 80),
//! `IZYRT_BENCH_CPU` (pin both loops to this CPU; default unpinned).

use std::sync::atomic::Ordering;

use izyrt::device::{Device, Direction, Signal, StreamConfig, VirtualDevice, VirtualOptions};
use izyrt::rt::clock::{now_ns, sleep_until_ns};
use izyrt::rt::driver::{Driver, DriverConfig};
use izyrt::rt::thread::{RtOptions, RtReport, spawn};
use izyrt::rt::wakeup::{WakeupHistogram, WakeupSnapshot};

const RATE: u64 = 48_000;
const FRAMES: u64 = 64;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    let v = std::env::var(name).ok()?;
    match v.parse() {
        Ok(x) => Some(x),
        Err(_) => {
            eprintln!("{name}={v} is not valid; using the default");
            None
        }
    }
}

/// (a) The driver over a virtual device, one round: the device and driver go to a fresh
/// RT thread and come back, so the histogram accumulates over rounds.
fn driver_round(
    opts: &RtOptions,
    periods: u64,
    mut dev: VirtualDevice,
    mut driver: Driver,
) -> (VirtualDevice, Driver, RtReport) {
    let stop = driver.stop_flag();
    stop.store(false, Ordering::Relaxed);
    let t = spawn(opts, move || {
        let mut n = 0;
        driver
            .run(&mut dev, &mut |capture, playback| {
                playback.copy_from_slice(capture);
                n += 1;
                if n >= periods {
                    stop.store(true, Ordering::Relaxed);
                }
            })
            .expect("driver run");
        (dev, driver)
    })
    .expect("spawn");
    let report = t.report().clone();
    let (dev, driver) = t.join().expect("driver thread");
    (dev, driver, report)
}

/// (b) The reference, one round: nothing but absolute sleeps on the same grid.
fn reference_round(
    opts: &RtOptions,
    periods: u64,
    mut hist: WakeupHistogram,
) -> (WakeupHistogram, RtReport) {
    let t = spawn(opts, move || {
        let start = now_ns();
        for n in 1..=periods {
            let deadline = start + n * FRAMES * 1_000_000_000 / RATE;
            sleep_until_ns(deadline);
            hist.record(now_ns().saturating_sub(deadline));
        }
        hist
    })
    .expect("spawn");
    let report = t.report().clone();
    (t.join().expect("reference thread"), report)
}

fn row(name: &str, s: &WakeupSnapshot) -> String {
    format!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        s.count,
        s.p50_us(),
        s.p99_us(),
        s.p999_us(),
        s.max_us()
    )
}

fn main() {
    let secs: f64 = env("IZYRT_BENCH_SECS").unwrap_or(10.0);
    let rounds: u64 = env("IZYRT_BENCH_ROUNDS").unwrap_or(5).max(1);
    let priority: u8 = env("IZYRT_BENCH_PRIO").unwrap_or(80);
    let cpu: Option<usize> = env("IZYRT_BENCH_CPU");
    let periods = ((secs * RATE as f64 / FRAMES as f64 / rounds as f64).round() as u64).max(1);
    let opts = |name: &str| RtOptions {
        name: name.into(),
        priority,
        cpu,
        period_frames: FRAMES as u32,
        rate: RATE as u32,
        ..RtOptions::default()
    };

    eprintln!(
        "wakeup bench: {rounds} alternating rounds of {periods} periods ({FRAMES} frames at \
         {RATE} Hz) per loop, {secs} s per loop in all..."
    );
    let mut dev = VirtualDevice::open(
        VirtualOptions {
            signal: Signal::Tone(1_000.0),
            skew_ppm: 0.0,
        },
        Direction::Duplex,
        StreamConfig {
            rate: RATE as u32,
            channels: 2,
            period_frames: FRAMES as u32,
            // A deep buffer, so that a stall is caught up period by period (each late
            // wakeup recorded) as in the plain loop, not dropped as an xrun.
            periods: 16,
        },
    )
    .expect("virtual device");
    let counters = dev.counters();
    let mut driver = Driver::new(DriverConfig::default()).expect("driver");
    let mut hist = WakeupHistogram::new(u32::MAX).expect("histogram");
    let (mut driver_rt, mut plain_rt) = (None, None);
    // Alternate, so that the machine's changing background load hits both loops alike.
    for _ in 0..rounds {
        let r;
        (dev, driver, r) = driver_round(&opts("bench-driver"), periods, dev, driver);
        driver_rt.get_or_insert(r);
        let r;
        (hist, r) = reference_round(&opts("bench-plain"), periods, hist);
        plain_rt.get_or_insert(r);
    }
    let driver_snap = driver.wakeup().compute();
    let plain = hist.compute();
    let xruns = counters.xruns.load(Ordering::Relaxed);

    println!();
    println!("driver thread: {}", driver_rt.expect("ran"));
    println!("plain thread:  {}", plain_rt.expect("ran"));
    println!();
    println!("| loop (48 kHz / 64 frames) | wakeups | p50 µs | p99 µs | p99.9 µs | max µs |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!("{}", row("RT driver + virtual device", &driver_snap));
    println!("{}", row("plain clock_nanosleep", &plain));
    let ratio = driver_snap.p999_ns as f64 / plain.p999_ns.max(1) as f64;
    println!();
    println!(
        "p99.9 ratio driver / plain: {ratio:.2}× (goal ≤ 1.25×: {}); driver xruns: {xruns}",
        if ratio <= 1.25 { "met" } else { "NOT met" }
    );
}
