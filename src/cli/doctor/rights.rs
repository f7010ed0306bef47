//! The doctor's privilege checks: realtime scheduling and memory locking, through the
//! engine's own calls (main thread; the probe thread is promoted like an audio thread).
//!
//! The realtime probe is a thread spawned by [`crate::rt::thread::spawn`] with the role's
//! `--priority`: it obtains exactly what an audio thread would (direct `SCHED_FIFO`, the
//! `RLIMIT_RTPRIO` fallback, RTKit with the `rtkit` feature) and does nothing else. The
//! memory check calls [`crate::rt::memory::lock_memory`], which the engine calls before
//! its first RT thread: it locks the doctor's memory when it may, as the engine would.

use super::{Check, LIMITS_FIX};
use crate::config::Settings;
use crate::rt::memory::{LockError, lock_memory};
use crate::rt::thread::{RtOptions, spawn};

/// `realtime`: a probe thread asks for `SCHED_FIFO` at the role's priority.
pub(super) fn realtime(settings: &Settings) -> Check {
    const NAME: &str = "realtime";
    let opts = RtOptions {
        name: "izyrt-doctor".into(),
        priority: settings.priority,
        cpu: None,
        lock_memory: false,
        period_frames: settings.period,
        rate: settings.rate,
    };
    let thread = match spawn(&opts, || ()) {
        Ok(t) => t,
        Err(e) => return Check::fail(NAME, format!("cannot spawn the probe thread: {e}"), None),
    };
    let report = thread.report().clone();
    // The probe did nothing; a panic is impossible, and its result is of no interest.
    let _ = thread.join();
    let asked = i32::from(settings.priority);
    match (&report.refused, report.priority) {
        (None, got) if got >= asked => Check::pass(
            NAME,
            format!(
                "{} {got}{}",
                report.policy.name(),
                report.via.map(|v| format!(" ({v})")).unwrap_or_default()
            ),
        ),
        (None, got) => Check::warn(
            NAME,
            format!(
                "{} {got} only, below --priority {asked}: RLIMIT_RTPRIO caps it",
                report.policy.name()
            ),
            Some(LIMITS_FIX.into()),
        ),
        (Some(why), _) => Check::fail(
            NAME,
            format!(
                "SCHED_FIFO {asked} refused ({why}): audio threads would run as normal threads and drop out under load"
            ),
            Some(LIMITS_FIX.into()),
        ),
    }
}

/// `memlock`: izyrt locks all its memory (`mlockall`), which needs `CAP_IPC_LOCK` or an
/// unlimited `RLIMIT_MEMLOCK`.
pub(super) fn memlock() -> Check {
    const NAME: &str = "memlock";
    let limit = memlock_limit_kib();
    match lock_memory() {
        Ok(()) => Check::pass(
            NAME,
            match limit {
                None => "memory locked (RLIMIT_MEMLOCK unlimited)".into(),
                Some(kib) => format!(
                    "memory locked (CAP_IPC_LOCK; the {kib} KiB RLIMIT_MEMLOCK does not apply)"
                ),
            },
        ),
        Err(LockError::Limited { limit_kib }) => Check::warn(
            NAME,
            format!(
                "RLIMIT_MEMLOCK is {limit_kib} KiB without CAP_IPC_LOCK: izyrt locks all its memory, so it would run unlocked and page faults may cause dropouts"
            ),
            Some(LIMITS_FIX.into()),
        ),
        Err(e) => Check::warn(
            NAME,
            format!("memory could not be locked: {e}"),
            Some(LIMITS_FIX.into()),
        ),
    }
}

/// The soft `RLIMIT_MEMLOCK` in KiB, `None` when unlimited.
fn memlock_limit_kib() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur / 1024)
}
