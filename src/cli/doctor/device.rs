//! The doctor's device checks (main thread opens; the run is on an RT thread): the device
//! opens at the role's rate, period and periods, then runs for [`RUN_SECONDS`] through
//! the engine's RT runner (`rt::runner`, as `play`/`record`/`thru` do), playing silence,
//! while the driver records how late every wakeup was and the device counts xruns.
//!
//! Two checks come out: `device` (did it open, at what was asked) and `wakeup` (how the
//! run went: p99.9 lateness, xruns). The figures depend on the machine's load; they are
//! reported, and an xrun at the wanted buffer is a FAIL because the role would glitch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Check;
use crate::cli::rt_session::{driver, rt_options};
use crate::config::Settings;
use crate::device::{Device, DeviceSpec, Direction, Obtained, StreamConfig, open};
use crate::rt::runner;

/// Length of the wakeup run, s.
pub const RUN_SECONDS: u32 = 2;

/// The RT state of the run: counts periods and stops the driver after the last.
struct Run {
    left: u64,
    stop: Arc<AtomicBool>,
}

/// One period (RT thread): silence out, count down, stop at zero. No allocation.
fn step(run: &mut Run, _capture: &[f32], playback: &mut [f32]) {
    playback.fill(0.0);
    run.left = run.left.saturating_sub(1);
    if run.left == 0 {
        run.stop.store(true, Ordering::Relaxed);
    }
}

/// Opens `spec` for both directions (else playback, else capture) at the role's stream.
fn open_any(
    spec: &DeviceSpec,
    cfg: StreamConfig,
) -> Result<(Box<dyn Device>, Direction), crate::device::DeviceError> {
    let mut first = None;
    for dir in [Direction::Duplex, Direction::Playback, Direction::Capture] {
        match open(spec, dir, cfg) {
            Ok(d) => return Ok((d, dir)),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.expect("three attempts"))
}

fn ms(frames: u32, rate: u32) -> f64 {
    f64::from(frames) * 1_000.0 / f64::from(rate.max(1))
}

/// `device` and, when it opened, `wakeup`.
pub(super) fn open_and_run(spec: &DeviceSpec, name: &str, settings: &Settings) -> Vec<Check> {
    let cfg = StreamConfig {
        rate: settings.rate,
        channels: settings.channels,
        period_frames: settings.period,
        periods: settings.periods,
    };
    let (device, dir) = match open_any(spec, cfg) {
        Ok(d) => d,
        Err(e) => {
            return vec![Check::fail(
                "device",
                e.to_string(),
                Some(
                    "`izyrt devices` lists what opens; try a larger --period or --periods, or the rate the card supports (--rate)"
                        .into(),
                ),
            )];
        }
    };
    let o = device.obtained().clone();
    let mut checks = vec![device_verdict(name, dir, &cfg, &o)];
    checks.push(run(device, settings, &o));
    checks
}

fn device_verdict(name: &str, dir: Direction, asked: &StreamConfig, o: &Obtained) -> Check {
    const NAME: &str = "device";
    let what = match dir {
        Direction::Duplex => "duplex",
        Direction::Playback => "playback only",
        Direction::Capture => "capture only",
    };
    let detail = format!(
        "{name}: {what}, {} Hz, {} × {} frames ({:.1} ms buffer), {}",
        o.rate,
        o.period_frames,
        o.buffer_frames / o.period_frames.max(1),
        ms(o.buffer_frames, o.rate),
        o.format.name()
    );
    if let Some(why) = &o.sound_server {
        return Check::warn(
            NAME,
            format!("{detail}; {why}"),
            Some("open the card directly: a hw: device from `izyrt devices`".into()),
        );
    }
    let asked_buffer = asked.period_frames * asked.periods;
    if o.rate != asked.rate
        || o.period_frames != asked.period_frames
        || o.buffer_frames != asked_buffer
    {
        return Check::warn(
            NAME,
            format!(
                "{detail}; asked {} Hz, {} × {} frames",
                asked.rate, asked.period_frames, asked.periods
            ),
            Some(format!(
                "ask for what the device gives: --rate {} --period {} --periods {}",
                o.rate,
                o.period_frames,
                o.buffer_frames / o.period_frames.max(1)
            )),
        );
    }
    Check::pass(NAME, detail)
}

/// Runs the device for [`RUN_SECONDS`] on an RT thread; the `wakeup` check.
fn run(device: Box<dyn Device>, settings: &Settings, o: &Obtained) -> Check {
    const NAME: &str = "wakeup";
    let driver = match driver() {
        Ok(d) => d,
        Err(e) => return Check::fail(NAME, e.to_string(), None),
    };
    let periods = u64::from(RUN_SECONDS) * u64::from(o.rate) / u64::from(o.period_frames.max(1));
    let state = Run {
        left: periods.max(1),
        stop: driver.stop_flag(),
    };
    let opts = rt_options("doctor", settings.priority, settings.cpu, o);
    let rt = match runner::start(&opts, device, driver, state, step) {
        Ok(rt) => rt,
        Err(e) => return Check::fail(NAME, format!("cannot start the RT thread: {e}"), None),
    };
    let status = rt.status().clone();
    rt.go();
    // A device that stops waking up would hold the run forever: give it a margin, then
    // ask the loop to end.
    let deadline = Instant::now() + Duration::from_secs(u64::from(RUN_SECONDS) + 5);
    while !rt.is_finished() {
        if Instant::now() > deadline {
            rt.stop();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let end = match rt.join() {
        Ok(end) => end,
        Err(_) => return Check::fail(NAME, "the RT thread panicked", None),
    };
    if let Err(e) = end.result {
        return Check::fail(NAME, format!("the device failed while running: {e}"), None);
    }
    let w = status.wakeups.snapshot();
    let xruns = status.counters.xruns.load(Ordering::Relaxed);
    let sched = if status.report.is_realtime() {
        format!("{} {}", status.report.policy.name(), status.report.priority)
    } else {
        "SCHED_OTHER (realtime refused)".into()
    };
    let period_us = ms(o.period_frames, o.rate) * 1_000.0;
    let figures = if w.count == 0 {
        "lateness not measured (the device cannot tell)".to_owned()
    } else {
        format!(
            "p99.9 late {:.0} µs (p50 {:.0}, max {:.0}; period {:.0} µs)",
            w.p999_us(),
            w.p50_us(),
            w.max_us(),
            period_us
        )
    };
    let detail = format!(
        "{:.1} s at {sched}: {figures}, {xruns} xrun{}",
        end.elapsed.as_secs_f64(),
        if xruns == 1 { "" } else { "s" }
    );
    let bigger = format!(
        "a larger buffer: --periods {} (or --period {}); and see the realtime check",
        (o.buffer_frames / o.period_frames.max(1) + 1).min(16),
        (o.period_frames * 2).min(4096)
    );
    if xruns > 0 {
        Check::fail(NAME, detail, Some(bigger))
    } else if w.count > 0 && w.p999_us() > period_us / 2.0 {
        Check::warn(
            NAME,
            format!("{detail}: wakeups come late by half a period and more"),
            Some(bigger),
        )
    } else {
        Check::pass(NAME, detail)
    }
}
