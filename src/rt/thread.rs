//! Spawning RT audio threads: `SCHED_FIFO`, locked memory, optional CPU pinning, and an
//! honest report of what was obtained (main thread, and the new thread before its loop).
//!
//! Design: realtime scheduling is a privilege the process may not have, and an audio
//! engine that refuses to run without it is useless on a developer's laptop. So nothing
//! here fails because a privilege is missing: the thread runs anyway, an [`RtReport`]
//! says exactly what it got (policy, priority, memory locking, CPU) for the metrics, and
//! the *spawning* thread prints one loud warning per process saying how to grant it. The
//! warning is never printed from the RT thread: printing takes the stderr lock and may
//! block.
//!
//! Promotion happens on the new thread itself, before the caller's closure runs, and the
//! result travels back over a channel; [`spawn`] returns only once it is known, so the
//! report is never a guess. `audio_thread_priority` 0.38 built without D-Bus promotes the
//! calling thread directly with `pthread_setschedparam(SCHED_FIFO | SCHED_RESET_ON_FORK)`
//! (root, `CAP_SYS_NICE` or `RLIMIT_RTPRIO`), which is what we want; its priority is a
//! process-wide setting, so promotions are serialised. With the `rtkit` feature the crate
//! asks RTKit over D-Bus instead, at a low priority (it asks for 10, RTKit caps at its
//! configured maximum) and with an `RLIMIT_RTTIME` budget, so we first try the direct
//! call ourselves and fall back to RTKit only when it is refused. When an `rtprio` limit
//! below the asked priority is what refused it, the thread takes the limit rather than
//! nothing. The policy and priority in the report are read back from the kernel, not
//! assumed from what was asked.
//!
//! `mlockall` is done once per process, from the spawning thread, and only where it
//! cannot hurt (`rt::memory`); the promotion itself is `rt::promote`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::memory::{lock_memory, memory_is_locked};
use super::promote::{MAX_CPUS, promote};

/// The `SCHED_FIFO` priority asked for by default: above the kernel's threaded IRQ
/// handlers (50) and below the watchdogs (99), as JACK and PipeWire set up.
pub const DEFAULT_PRIORITY: u8 = 80;

/// How to spawn an RT thread.
///
/// # Example
/// ```
/// let opts = izyrt::rt::thread::RtOptions { cpu: Some(1), ..Default::default() };
/// assert_eq!(opts.priority, izyrt::rt::thread::DEFAULT_PRIORITY);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtOptions {
    /// Thread name (Linux shows the first 15 bytes).
    pub name: String,
    /// `SCHED_FIFO` priority, 1..=99.
    pub priority: u8,
    /// Pin the thread to this CPU.
    pub cpu: Option<usize>,
    /// Lock the process's memory (`mlockall`) before spawning.
    pub lock_memory: bool,
    /// Frames per period and rate of the stream the thread serves: RTKit sizes the CPU
    /// time budget from them (only used with the `rtkit` feature).
    pub period_frames: u32,
    /// See `period_frames`.
    pub rate: u32,
}

impl Default for RtOptions {
    fn default() -> Self {
        RtOptions {
            name: "izyrt-rt".into(),
            priority: DEFAULT_PRIORITY,
            cpu: None,
            lock_memory: true,
            period_frames: 64,
            rate: 48_000,
        }
    }
}

/// A scheduling policy, as read back from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchedPolicy {
    /// `SCHED_OTHER`: the normal time-sharing policy (realtime was not obtained).
    Other,
    /// `SCHED_FIFO`: realtime, first in first out.
    Fifo,
    /// `SCHED_RR`: realtime, round robin.
    RoundRobin,
    /// `SCHED_BATCH`.
    Batch,
    /// `SCHED_IDLE`.
    Idle,
    /// Any other value.
    Unknown(i32),
}

impl SchedPolicy {
    pub(super) fn from_raw(raw: libc::c_int) -> Self {
        // Drop SCHED_RESET_ON_FORK, which Linux reports or-ed into the policy.
        let raw = raw & !0x4000_0000;
        match raw {
            libc::SCHED_OTHER => SchedPolicy::Other,
            libc::SCHED_FIFO => SchedPolicy::Fifo,
            libc::SCHED_RR => SchedPolicy::RoundRobin,
            #[cfg(target_os = "linux")]
            libc::SCHED_BATCH => SchedPolicy::Batch,
            #[cfg(target_os = "linux")]
            libc::SCHED_IDLE => SchedPolicy::Idle,
            other => SchedPolicy::Unknown(other),
        }
    }

    /// The kernel's name (`SCHED_FIFO`, …).
    pub fn name(self) -> &'static str {
        match self {
            SchedPolicy::Other => "SCHED_OTHER",
            SchedPolicy::Fifo => "SCHED_FIFO",
            SchedPolicy::RoundRobin => "SCHED_RR",
            SchedPolicy::Batch => "SCHED_BATCH",
            SchedPolicy::Idle => "SCHED_IDLE",
            SchedPolicy::Unknown(_) => "unknown",
        }
    }

    /// True for the realtime policies.
    pub fn is_realtime(self) -> bool {
        matches!(self, SchedPolicy::Fifo | SchedPolicy::RoundRobin)
    }
}

/// What an RT thread actually obtained, for metrics (`realtime` in getMetrics).
///
/// # Example
/// ```
/// use izyrt::rt::thread::{spawn, RtOptions};
/// let t = spawn(&RtOptions { lock_memory: false, ..Default::default() }, || 6 * 7)?;
/// let report = t.report().clone();
/// // SCHED_FIFO 80 when privileged; SCHED_OTHER 0 plus a reason otherwise.
/// assert_eq!(report.policy.is_realtime(), report.refused.is_none());
/// assert_eq!(t.join().unwrap(), 42);
/// # Ok::<(), izyrt::rt::thread::SpawnError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtReport {
    /// The thread's name.
    pub thread: String,
    /// The scheduling policy in force.
    pub policy: SchedPolicy,
    /// Its priority (0 for `SCHED_OTHER`).
    pub priority: i32,
    /// How realtime was obtained: `"direct"` or `"rtkit"`, `None` when it was not.
    pub via: Option<&'static str>,
    /// Why realtime scheduling was refused, when it was.
    pub refused: Option<String>,
    /// Whether the process's memory is locked (`mlockall`).
    pub memory_locked: bool,
    /// Why memory is not locked, when it is not and locking was asked for.
    pub memory_refused: Option<String>,
    /// The CPU the thread is pinned to.
    pub cpu: Option<usize>,
    /// Why pinning failed, when it was asked for and failed.
    pub cpu_refused: Option<String>,
    /// The realtime priority of the device's own threads that this one was put below
    /// (`rt::plugin_threads`: a sound server's plugin in this process), if it was.
    pub below_plugin: Option<u8>,
}

impl RtReport {
    /// True when the thread runs under a realtime policy.
    pub fn is_realtime(&self) -> bool {
        self.policy.is_realtime()
    }
}

impl fmt::Display for RtReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.thread,
            self.policy.name(),
            self.priority
        )?;
        if let Some(via) = self.via {
            write!(f, " ({via})")?;
        }
        f.write_str(if self.memory_locked {
            ", memory locked"
        } else {
            ", memory not locked"
        })?;
        match self.cpu {
            Some(cpu) => write!(f, ", cpu {cpu}"),
            None => f.write_str(", not pinned"),
        }?;
        match self.below_plugin {
            Some(p) => write!(f, ", below its device's plugin threads ({p})"),
            None => Ok(()),
        }
    }
}

/// Why an RT thread could not be spawned (a refused privilege is not an error: see
/// [`RtReport`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The priority is outside 1..=99.
    #[error("RT priority {0} is not allowed (allowed: 1..=99)")]
    Priority(u8),
    /// The CPU index is beyond what the affinity mask can name.
    #[error("CPU {cpu} is not allowed (allowed: 0..{max})")]
    Cpu {
        /// The CPU asked for.
        cpu: usize,
        /// One past the largest CPU index.
        max: usize,
    },
    /// The operating system could not create the thread.
    #[error("cannot spawn thread '{name}': {source}")]
    Spawn {
        /// The thread's name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// The thread died (panicked) before it reported what it obtained.
    #[error("thread '{0}' died while setting up")]
    Died(String),
}

/// A running RT thread and what it obtained.
#[derive(Debug)]
pub struct RtThread<T> {
    handle: JoinHandle<T>,
    report: RtReport,
}

impl<T> RtThread<T> {
    /// What the thread obtained.
    pub fn report(&self) -> &RtReport {
        &self.report
    }

    /// True when the thread's closure has returned.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the thread's closure to return.
    ///
    /// # Errors
    /// The panic payload when the closure panicked.
    pub fn join(self) -> std::thread::Result<T> {
        self.handle.join()
    }
}

/// Spawns `f` on a new thread promoted to `SCHED_FIFO` at `opts.priority`, pinned to
/// `opts.cpu`, after locking the process's memory (once per process) if asked.
///
/// Returns once the thread has reported what it obtained, before `f` runs. When realtime
/// scheduling, memory locking or pinning is refused, `f` still runs, the refusal is in
/// [`RtThread::report`], and a one-time warning saying how to grant it is printed on
/// stderr from this (the calling) thread.
///
/// # Errors
/// [`SpawnError`] for a priority outside 1..=99, a CPU index beyond the affinity mask, or
/// when the thread cannot be created or dies during setup.
///
/// # Example
/// ```
/// use izyrt::rt::thread::{spawn, RtOptions};
/// let opts = RtOptions { name: "doc-rt".into(), lock_memory: false, ..Default::default() };
/// let t = spawn(&opts, || {
///     // the RT loop goes here
/// })?;
/// // e.g. "doc-rt SCHED_FIFO 80 (direct), memory not locked, not pinned"
/// println!("{}", t.report());
/// t.join().unwrap();
/// # Ok::<(), izyrt::rt::thread::SpawnError>(())
/// ```
pub fn spawn<F, T>(opts: &RtOptions, f: F) -> Result<RtThread<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if !(1..=99).contains(&opts.priority) {
        return Err(SpawnError::Priority(opts.priority));
    }
    match opts.cpu {
        Some(cpu) if cpu >= MAX_CPUS => return Err(SpawnError::Cpu { cpu, max: MAX_CPUS }),
        _ => {}
    }
    let memory = if opts.lock_memory {
        lock_memory()
    } else {
        Ok(())
    };

    let (tx, rx) = mpsc::sync_channel::<RtReport>(1);
    let name = opts.name.clone();
    let setup = opts.clone();
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            // Known as izyrt's own, not a plugin's (`rt::plugin_threads`), while it runs.
            let _own = super::plugin_threads::OwnThread::register();
            let mut report = promote(&setup);
            report.memory_locked = memory_is_locked();
            // Subnormals cost microcode assists: an RT thread flushes them to zero.
            super::denormals::flush_denormals();
            // The receiver only goes away if `spawn` itself unwound; run anyway.
            let _ = tx.send(report);
            drop(tx);
            f()
        })
        .map_err(|source| SpawnError::Spawn {
            name: name.clone(),
            source,
        })?;
    let mut report = rx.recv().map_err(|_| SpawnError::Died(name))?;
    match memory {
        Err(reason) if !report.memory_locked => {
            report.memory_refused = Some(reason.to_string());
        }
        _ => {}
    }
    warn_once(&report);
    Ok(RtThread { handle, report })
}

/// The options of a net thread serving the RT thread `audio`: SCHED_FIFO ten below it
/// (at least 1), same CPU policy, memory already locked by the audio thread.
///
/// Why realtime at all: the net thread carries the audio between sockets and RT
/// threads; at `SCHED_OTHER` any busy process on the machine (even one exiting and
/// tearing down its address space) delays it by milliseconds, which the jitter buffers
/// then have to absorb as latency. Below the audio threads, it never delays a period. (On
/// a sound server's plugin the audio thread is lowered below the plugin's threads and the
/// net threads go above them instead: [`crate::rt::runner::RtHandle::net_options`].)
///
/// # Example
/// ```
/// use izyrt::rt::thread::{net_thread_options, RtOptions};
/// let o = net_thread_options("izyrt-hub-net", &RtOptions::default());
/// assert_eq!((o.name.as_str(), o.priority, o.lock_memory), ("izyrt-hub-net", 70, false));
/// ```
pub fn net_thread_options(name: &str, audio: &RtOptions) -> RtOptions {
    RtOptions {
        name: name.to_owned(),
        priority: audio.priority.saturating_sub(10).max(1),
        lock_memory: false,
        ..audio.clone()
    }
}

/// Whether each kind of refusal warning was printed (or silenced).
static RT: AtomicBool = AtomicBool::new(false);
static MEM: AtomicBool = AtomicBool::new(false);
static CPU: AtomicBool = AtomicBool::new(false);

/// Stops [`spawn`] from printing its refusal warnings in this process: for a caller that
/// reports refusals itself from [`RtThread::report`] (`izyrt doctor`).
pub fn silence_refusal_warnings() {
    for warned in [&RT, &MEM, &CPU] {
        warned.store(true, Ordering::Relaxed);
    }
}

/// Prints each kind of refusal once per process.
fn warn_once(report: &RtReport) {
    if let Some(reason) = report
        .refused
        .as_ref()
        .filter(|_| !RT.swap(true, Ordering::Relaxed))
    {
        eprintln!("{}", rt_refused_warning(&report.thread, reason));
    }
    if let Some(reason) = report
        .memory_refused
        .as_ref()
        .filter(|_| !MEM.swap(true, Ordering::Relaxed))
    {
        eprintln!(
            "izyrt: WARNING: memory is not locked ({reason}); page faults may cause dropouts.\n\
             izyrt:   grant it: run as root, `sudo setcap cap_ipc_lock+ep {exe}`, or add\n\
             izyrt:   '@audio - memlock unlimited' to /etc/security/limits.d/95-audio.conf",
            exe = exe_name()
        );
    }
    if let Some(reason) = report
        .cpu_refused
        .as_ref()
        .filter(|_| !CPU.swap(true, Ordering::Relaxed))
    {
        eprintln!(
            "izyrt: WARNING: thread '{}' is not pinned: {reason}",
            report.thread
        );
    }
}

fn exe_name() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/path/to/izyrt".into())
}

/// The warning printed when realtime scheduling is refused.
fn rt_refused_warning(thread: &str, reason: &str) -> String {
    format!(
        "izyrt: WARNING: ********************************************************************\n\
         izyrt: WARNING: realtime scheduling was REFUSED for thread '{thread}': {reason}\n\
         izyrt: WARNING: it runs as a normal thread; expect dropouts under load.\n\
         izyrt: WARNING: grant it in one of these ways:\n\
         izyrt:   - run as root;\n\
         izyrt:   - sudo setcap cap_sys_nice,cap_ipc_lock+ep {exe}\n\
         izyrt:   - put '@audio - rtprio 95' and '@audio - memlock unlimited' in\n\
         izyrt:     /etc/security/limits.d/95-audio.conf, add yourself to the audio group\n\
         izyrt:     and log in again (systemd services: LimitRTPRIO=95, LimitMEMLOCK=infinity).\n\
         izyrt: WARNING: ********************************************************************",
        exe = exe_name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::memory::LockError;
    use crate::rt::promote::current_policy;

    #[test]
    fn an_rt_thread_flushes_subnormals_to_zero() {
        fn half_of_smallest_normal() -> f32 {
            std::hint::black_box(f32::MIN_POSITIVE) * std::hint::black_box(0.5f32)
        }
        // A plain thread keeps IEEE semantics (so the check below is not vacuous).
        let plain = std::thread::spawn(half_of_smallest_normal).join().unwrap();
        assert!(plain > 0.0 && !plain.is_normal(), "{plain}");
        let opts = RtOptions {
            name: "test-ftz".into(),
            lock_memory: false,
            ..Default::default()
        };
        let rt = spawn(&opts, half_of_smallest_normal)
            .unwrap()
            .join()
            .unwrap();
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            assert_eq!(rt, 0.0, "FTZ on the RT thread");
        }
    }

    fn opts(name: &str) -> RtOptions {
        RtOptions {
            name: name.into(),
            lock_memory: false,
            ..Default::default()
        }
    }

    #[test]
    fn report_matches_what_the_thread_sees() {
        let t = spawn(&opts("t-report"), current_policy).unwrap();
        let report = t.report().clone();
        let seen = t.join().unwrap();
        assert_eq!((report.policy, report.priority), seen);
        assert_eq!(report.thread, "t-report");
        if report.is_realtime() {
            assert_eq!(report.policy, SchedPolicy::Fifo);
            assert_eq!(report.priority, i32::from(DEFAULT_PRIORITY));
            assert!(report.refused.is_none());
            assert!(report.via.is_some());
        } else {
            assert!(report.refused.is_some(), "a refusal must say why");
            assert!(report.via.is_none());
        }
    }

    #[test]
    fn configured_priority_is_obtained_when_privileged() {
        let t = spawn(
            &RtOptions {
                priority: 42,
                ..opts("t-prio")
            },
            current_policy,
        )
        .unwrap();
        let report = t.report().clone();
        let (policy, prio) = t.join().unwrap();
        assert_eq!((report.policy, report.priority), (policy, prio));
        if report.is_realtime() {
            assert_eq!((policy, prio), (SchedPolicy::Fifo, 42));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pins_to_a_cpu() {
        let t = spawn(
            &RtOptions {
                cpu: Some(0),
                ..opts("t-pin")
            },
            // SAFETY: sched_getcpu has no preconditions.
            || unsafe { libc::sched_getcpu() },
        )
        .unwrap();
        let report = t.report().clone();
        let on = t.join().unwrap();
        if report.cpu_refused.is_none() {
            assert_eq!(report.cpu, Some(0));
            assert_eq!(on, 0);
        }
    }

    #[test]
    fn rejects_bad_options_by_value() {
        for p in [0u8, 100] {
            let e = spawn(
                &RtOptions {
                    priority: p,
                    ..opts("t-bad")
                },
                || (),
            )
            .unwrap_err();
            assert!(e.to_string().contains(&format!("priority {p}")), "{e}");
            assert!(e.to_string().contains("1..=99"), "{e}");
        }
        let e = spawn(
            &RtOptions {
                cpu: Some(1 << 20),
                ..opts("t-bad")
            },
            || (),
        )
        .unwrap_err();
        assert!(e.to_string().contains("CPU 1048576"), "{e}");
    }

    #[test]
    fn a_panic_in_the_closure_reaches_join() {
        let t = spawn(&opts("t-panic"), || panic!("boom")).unwrap();
        assert!(t.join().is_err());
    }

    #[test]
    fn refusal_warning_says_how_to_grant_it() {
        let w = rt_refused_warning("izyrt-capture", "Operation not permitted (os error 1)");
        for needle in [
            "izyrt-capture",
            "Operation not permitted",
            "root",
            "setcap cap_sys_nice",
            "@audio - rtprio 95",
            "limits.d",
        ] {
            assert!(w.contains(needle), "missing {needle:?} in\n{w}");
        }
    }

    #[test]
    fn lock_errors_name_the_limit_and_errno() {
        let e = LockError::Limited { limit_kib: 8192 }.to_string();
        assert!(e.contains("RLIMIT_MEMLOCK is 8192 KiB"), "{e}");
        let e = LockError::Failed {
            errno: libc::ENOMEM,
        }
        .to_string();
        assert!(e.starts_with("mlockall: "), "{e}");
        assert!(e.contains("memory"), "{e}");
    }

    #[test]
    fn policy_names() {
        assert_eq!(SchedPolicy::from_raw(libc::SCHED_FIFO).name(), "SCHED_FIFO");
        assert_eq!(
            SchedPolicy::from_raw(libc::SCHED_FIFO | 0x4000_0000),
            SchedPolicy::Fifo
        );
        assert!(!SchedPolicy::Other.is_realtime());
    }

    #[test]
    fn display_is_one_line() {
        let r = RtReport {
            thread: "x".into(),
            policy: SchedPolicy::Fifo,
            priority: 80,
            via: Some("direct"),
            refused: None,
            memory_locked: true,
            memory_refused: None,
            cpu: Some(1),
            cpu_refused: None,
            below_plugin: None,
        };
        assert_eq!(
            r.to_string(),
            "x SCHED_FIFO 80 (direct), memory locked, cpu 1"
        );
    }
}
