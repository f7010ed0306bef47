//! What `izyrt play` and `izyrt record` share (main thread): the stream options, opening
//! the device, catching Ctrl-C/SIGTERM, running the [`Driver`] on an RT thread, and
//! reporting what was obtained and how the run went.
//!
//! Design: the command's RT half is a plain state value plus a `fn` that does one period
//! of work on it; [`run`] moves both onto the RT thread, drives the device until the stop
//! flag is set (by the state itself, or by the main thread on a signal), and hands the
//! state, the device and the driver back, so nothing is dropped on the RT thread.
//!
//! Signals: [`catch_signals`] installs a handler that only stores the signal number in an
//! atomic (async-signal-safe), and blocks SIGINT/SIGTERM in the calling thread, so every
//! thread spawned afterwards (the recorder, the RT thread) inherits the block and never
//! sees `EINTR`; [`run`] unblocks them in the main thread once the RT thread exists, and
//! the main thread, which polls every 10 ms, turns the signal into the driver's stop flag.
//! The handler is one-shot (`SA_RESETHAND`): a second Ctrl-C kills the process outright.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::CliError;
use crate::device::{Device, DeviceError, DeviceSpec, Direction, Obtained, StreamConfig, open};
use crate::rt::driver::{Driver, DriverConfig, DriverError};
use crate::rt::runner;
use crate::rt::thread::{DEFAULT_PRIORITY, RtOptions, RtReport, SpawnError};
use crate::rt::wakeup::WakeupSnapshot;

/// Stream and RT-thread options shared by `play` and `record`.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// The device: `virtual[:tone[=HZ]|impulse|silence][,skew=PPM]` or an ALSA PCM name
    /// such as `hw:1,0`.
    #[arg(long, value_name = "DEV")]
    pub device: String,
    /// Frames per period asked for (the device reports what it chose).
    #[arg(long, value_name = "FRAMES", default_value_t = 64)]
    pub period: u32,
    /// Periods in the device buffer asked for.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub periods: u32,
    /// Interleaved channels.
    #[arg(long, value_name = "C", default_value_t = 2)]
    pub channels: u16,
    /// Pin the RT thread to this CPU.
    #[arg(long, value_name = "N")]
    pub cpu: Option<usize>,
    /// SCHED_FIFO priority of the RT thread (1..=99).
    #[arg(long, value_name = "P", default_value_t = DEFAULT_PRIORITY)]
    pub priority: u8,
    /// Print the final summary as one JSON object on standard output (instead of the
    /// human summary on standard error).
    #[arg(long)]
    pub json: bool,
}

impl StreamArgs {
    /// Parses `--device` and checks every numeric option (before anything is opened).
    ///
    /// # Errors
    /// [`CliError::Usage`] naming the option, its value and what is allowed.
    pub(super) fn check(&self, rate: u32) -> Result<(DeviceSpec, StreamConfig), CliError> {
        let spec: DeviceSpec = self.device.parse().map_err(device_error)?;
        if !(1..=99).contains(&self.priority) {
            return Err(CliError::Usage(
                SpawnError::Priority(self.priority).to_string(),
            ));
        }
        super::role_args::check_cpu(self.cpu)?;
        let cfg = StreamConfig {
            rate,
            channels: self.channels,
            period_frames: self.period,
            periods: self.periods,
        };
        cfg.validate().map_err(device_error)?;
        Ok((spec, cfg))
    }
}

/// A device error as the user should read it: bad options name the command-line option.
fn device_error(e: DeviceError) -> CliError {
    match e {
        DeviceError::BadConfig {
            field,
            value,
            allowed,
        } => {
            let option = match field {
                "period" => "--period",
                "periods" => "--periods",
                "channels" => "--channels",
                _ => "--rate",
            };
            CliError::Usage(format!(
                "{option} {value} is not allowed (allowed: {allowed})"
            ))
        }
        e @ DeviceError::BadSpec { .. } => CliError::Usage(e.to_string()),
        e => CliError::Failed(e.to_string()),
    }
}

/// Opens the device for `dir` (main thread).
///
/// # Errors
/// [`CliError::Usage`] for a bad device string or option, [`CliError::Failed`] when the
/// device cannot be opened.
pub(super) fn open_device(
    spec: &DeviceSpec,
    dir: Direction,
    cfg: StreamConfig,
) -> Result<Box<dyn Device>, CliError> {
    open(spec, dir, cfg).map_err(device_error)
}

/// A driver with the default configuration (main thread: allocates its histogram).
///
/// # Errors
/// [`CliError::Failed`] if the histogram cannot be built.
pub(super) fn driver() -> Result<Driver, CliError> {
    Driver::new(DriverConfig::default()).map_err(|e| CliError::Failed(e.to_string()))
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::Relaxed);
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset takes valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Installs the SIGINT/SIGTERM handler and blocks both signals in the calling thread, so
/// threads spawned from now on inherit the block; [`run`] unblocks them here.
pub(crate) fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an atomic,
        // which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    set_mask(libc::SIG_BLOCK);
}

pub(crate) fn set_mask(how: libc::c_int) {
    let set = signal_set();
    // SAFETY: a valid set; the old mask is not wanted.
    unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
}

/// The signal that asked us to stop, if any.
pub(crate) fn interrupted() -> Option<i32> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        sig => Some(sig),
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// How an RT run went.
pub(super) struct Outcome<S> {
    /// The command's RT state, back on the main thread.
    pub state: S,
    /// The device as opened.
    pub obtained: Obtained,
    /// What the RT thread obtained.
    pub report: RtReport,
    /// Wall time of the driver loop.
    pub elapsed: Duration,
    /// Xruns recovered.
    pub xruns: u64,
    /// Suspends recovered.
    pub suspends: u64,
    /// Times the device vanished and was reopened.
    pub reopens: u64,
    /// Wakeup latency over the run.
    pub wakeup: WakeupSnapshot,
    /// How long the RT thread's work took per period over the run.
    pub work: WakeupSnapshot,
    /// Allocator calls the RT thread made in steady state (after
    /// [`WARM_UP_CYCLES`](runner::WARM_UP_CYCLES) periods); `None` when the run was shorter.
    /// Counted only where the counting allocator is installed (the `izyrt` binary).
    pub steady_allocations: Option<u64>,
    /// Allocator calls in the periods of the device's recoveries (and the settling after
    /// each), left out of `steady_allocations`; `None` when the run was shorter than the
    /// warm-up.
    pub recovery_allocations: Option<u64>,
    /// The signal that stopped the run early.
    pub signal: Option<i32>,
    /// Why the driver failed, when it did.
    pub failure: Option<DriverError>,
}

impl<S> Outcome<S> {
    /// The exit status for a run that did its job: 0, or 128 + the signal that cut it short.
    pub fn exit_code(&self) -> i32 {
        self.signal.map_or(0, |sig| 128 + sig)
    }

    /// `Err` with the driver's failure, if any.
    pub fn check(&self) -> Result<(), CliError> {
        match &self.failure {
            Some(e) => Err(CliError::Failed(e.to_string())),
            None => Ok(()),
        }
    }

    /// The human summary lines common to both commands.
    pub fn print_summary(&self) {
        if let Some(sig) = self.signal {
            eprintln!("stopped:   by {}", signal_name(sig));
        }
        eprintln!("elapsed:   {:.3} s", self.elapsed.as_secs_f64());
        eprintln!(
            "faults:    xruns {}, suspends {}, reopens {}",
            self.xruns, self.suspends, self.reopens
        );
        if self.wakeup.count == 0 {
            eprintln!("wakeup:    not measured (the device cannot tell its lateness)");
        } else {
            eprintln!("wakeup:    {}", quantiles(&self.wakeup, "wakeups"));
        }
        eprintln!("work:      {}", quantiles(&self.work, "periods"));
        if let Some(e) = &self.failure {
            eprintln!("failed:    {e}");
        }
    }

    /// The JSON fields common to both commands.
    pub fn json(&self) -> serde_json::Map<String, Value> {
        let o = &self.obtained;
        let r = &self.report;
        let w = &self.wakeup;
        let channels = o.capture_channels.max(o.playback_channels);
        let value = json!({
            "device": o.name,
            "rate": o.rate,
            "channels": channels,
            "periodFrames": o.period_frames,
            "bufferFrames": o.buffer_frames,
            "periodMs": ms(o.period_frames, o.rate),
            "bufferMs": ms(o.buffer_frames, o.rate),
            "format": o.format.name(),
            "soundServer": o.sound_server,
            "realtime": {
                "thread": r.thread,
                "policy": r.policy.name(),
                "priority": r.priority,
                "via": r.via,
                "refused": r.refused,
                "memoryLocked": r.memory_locked,
                "cpu": r.cpu,
                "wakeupLatencyUs": quantiles_json(w),
                // How long the thread's work took per period (the wait for the device not
                // counted).
                "workUs": quantiles_json(&self.work),
                "steadyAllocations": self.steady_allocations,
                "recoveryAllocations": self.recovery_allocations,
            },
            "elapsedSeconds": self.elapsed.as_secs_f64(),
            "xruns": self.xruns,
            "suspends": self.suspends,
            "reopens": self.reopens,
            "stoppedBy": self.signal.map(signal_name),
            "failure": self.failure.as_ref().map(|e| e.to_string()),
        });
        match value {
            Value::Object(map) => map,
            _ => unreachable!("json! of an object literal is an object"),
        }
    }
}

/// "p50 … µs, p99 … µs, p99.9 … µs, max … µs (N `what`)" for a summary line.
fn quantiles(w: &WakeupSnapshot, what: &str) -> String {
    format!(
        "p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs ({} {what})",
        w.p50_us(),
        w.p99_us(),
        w.p999_us(),
        w.max_us(),
        w.count
    )
}

/// The same figures for the JSON summary.
fn quantiles_json(w: &WakeupSnapshot) -> Value {
    json!({
        "count": w.count,
        "p50": w.p50_us(),
        "p99": w.p99_us(),
        "p99_9": w.p999_us(),
        "max": w.max_us(),
    })
}

fn ms(frames: u32, rate: u32) -> f64 {
    f64::from(frames) * 1_000.0 / f64::from(rate.max(1))
}

/// Writes one JSON object and a newline on standard output.
///
/// # Errors
/// [`CliError::Io`] when standard output cannot be written (a closed pipe is not an error).
pub(super) fn print_json(object: serde_json::Map<String, Value>) -> Result<(), CliError> {
    use std::io::Write;
    let mut text = Value::Object(object).to_string();
    text.push('\n');
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(CliError::Io {
            context: "writing the JSON summary".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Prints what the device and the RT thread obtained, before the stream starts.
fn print_obtained(dir: Direction, o: &Obtained, report: &RtReport) {
    let (what, channels) = match dir {
        Direction::Capture => ("capture", o.capture_channels.to_string()),
        Direction::Playback => ("playback", o.playback_channels.to_string()),
        Direction::Duplex if o.capture_channels == o.playback_channels => {
            ("duplex", o.capture_channels.to_string())
        }
        Direction::Duplex => (
            "duplex",
            format!("{} in / {} out", o.capture_channels, o.playback_channels),
        ),
    };
    eprintln!("device:    {} ({what})", o.name);
    eprintln!(
        "stream:    {} Hz, {channels} ch, format {}",
        o.rate,
        o.format.name()
    );
    eprintln!(
        "period:    {} frames ({:.3} ms)",
        o.period_frames,
        ms(o.period_frames, o.rate)
    );
    eprintln!(
        "buffer:    {} frames ({:.3} ms, {} periods)",
        o.buffer_frames,
        ms(o.buffer_frames, o.rate),
        o.buffer_frames / o.period_frames.max(1)
    );
    super::sound_server::warn(o, dir);
    match &report.refused {
        Some(why) => eprintln!("rt:        {report} (realtime refused: {why})"),
        None => eprintln!("rt:        {report}"),
    }
}

/// Runs `step(&mut state, capture, playback)` once per period of `device` on an RT thread
/// named `izyrt-{tag}` until the driver's stop flag is set (by `step` or on SIGINT/SIGTERM,
/// which needs [`catch_signals`] first), printing what was obtained before the stream
/// starts. `step` runs on the RT thread: it must not allocate, lock, block or print.
///
/// # Errors
/// [`CliError::Usage`] for a refused `--priority`/`--cpu`, [`CliError::Failed`] when the
/// thread cannot be spawned or panicked. A driver failure is in [`Outcome::failure`].
pub(super) fn run<S: Send + 'static>(
    tag: &str,
    args: &StreamArgs,
    dir: Direction,
    device: Box<dyn Device>,
    driver: Driver,
    state: S,
    step: fn(&mut S, &[f32], &mut [f32]),
) -> Result<Outcome<S>, CliError> {
    let obtained = device.obtained().clone();
    let opts = rt_options(tag, args.priority, args.cpu, &obtained);
    let spawned = runner::start(&opts, device, driver, state, step);
    set_mask(libc::SIG_UNBLOCK);
    let rt = spawned.map_err(spawn_error)?;
    let status = rt.status().clone();
    print_obtained(dir, &obtained, &status.report);
    rt.go();
    let mut signal = None;
    while !rt.is_finished() {
        if signal.is_none() {
            signal = interrupted();
            if signal.is_some() {
                rt.stop();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let end = rt
        .join()
        .map_err(|_| CliError::Failed(format!("RT thread 'izyrt-{tag}' panicked")))?;
    let steady_allocations = status.steady_allocation_count();
    let recovery_allocations = status.recovery_allocation_count();
    Ok(Outcome {
        state: end.state,
        obtained,
        report: status.report,
        elapsed: end.elapsed,
        xruns: status.counters.xruns.load(Ordering::Relaxed),
        suspends: status.counters.suspends.load(Ordering::Relaxed),
        reopens: status.driver.reopens(),
        wakeup: status.wakeups.snapshot(),
        work: status.work.snapshot(),
        steady_allocations,
        recovery_allocations,
        signal,
        failure: end.result.err(),
    })
}

/// The RT-thread options of a command's device thread `izyrt-{tag}`.
pub(super) fn rt_options(tag: &str, priority: u8, cpu: Option<usize>, o: &Obtained) -> RtOptions {
    RtOptions {
        name: format!("izyrt-{tag}"),
        priority,
        cpu,
        lock_memory: true,
        period_frames: o.period_frames,
        rate: o.rate,
    }
}

/// A refused `--priority`/`--cpu` is a usage error; anything else a failure.
pub(super) fn spawn_error(e: SpawnError) -> CliError {
    match e {
        e @ (SpawnError::Priority(_) | SpawnError::Cpu { .. }) => CliError::Usage(e.to_string()),
        e => CliError::Failed(e.to_string()),
    }
}

/// Checks that a seed ratio option (`downsampleRatio`, `upsampleRatio`) divides the
/// stream rate, so the file side has a whole rate.
///
/// # Errors
/// [`CliError::Usage`] naming the option, the ratio and the rate.
pub(super) fn check_ratio_divides_rate(
    option: &str,
    ratio: u32,
    rate: u32,
) -> Result<(), CliError> {
    if ratio == 0 || rate % ratio != 0 {
        return Err(CliError::Usage(format!(
            "{option} {ratio} does not divide the stream rate {rate} Hz"
        )));
    }
    Ok(())
}

/// `--seconds` as a frame count at `rate`: finite, above 0, at least one frame.
pub(super) fn frames_for(s: f64, rate: u32) -> Result<u64, CliError> {
    if !(s.is_finite() && s > 0.0) {
        return Err(CliError::Usage(format!(
            "--seconds {s} is not allowed (allowed: a finite number of seconds above 0)"
        )));
    }
    let frames = (s * f64::from(rate)).round();
    if frames < 1.0 {
        return Err(CliError::Usage(format!(
            "--seconds {s} is shorter than one frame at {rate} Hz"
        )));
    }
    Ok(frames as u64)
}
