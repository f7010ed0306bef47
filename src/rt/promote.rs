//! Realtime scheduling of the calling thread: pinning it, promoting it to `SCHED_FIFO`
//! (directly, under an `rtprio` limit, or through RTKit) and reading back what the kernel
//! granted (the new RT thread itself, before its loop; tools on their own threads). The
//! design note is `rt::thread`'s.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::thread::{RtOptions, RtReport, SchedPolicy};

#[cfg(target_os = "linux")]
pub(super) const MAX_CPUS: usize = libc::CPU_SETSIZE as usize;
#[cfg(not(target_os = "linux"))]
pub(super) const MAX_CPUS: usize = 1024;

/// Runs on the new thread: pin, promote, read back.
pub(super) fn promote(opts: &RtOptions) -> RtReport {
    let (cpu, cpu_refused) = match opts.cpu {
        None => (None, None),
        Some(cpu) => match pin_current_thread(cpu) {
            Ok(()) => (Some(cpu), None),
            Err(e) => (None, Some(e)),
        },
    };
    let (via, refused) = match promote_current_thread(opts, opts.priority) {
        Ok(via) => (Some(via), None),
        // An `rtprio` limit below the priority asked for: take what the limit allows
        // rather than nothing (the report shows the priority obtained).
        Err(e) => match rtprio_limit().filter(|&lim| lim > 0 && lim < opts.priority) {
            Some(lim) => match promote_current_thread(opts, lim) {
                Ok(via) => (Some(via), None),
                Err(_) => (None, Some(e)),
            },
            None => (None, Some(e)),
        },
    };
    let (policy, priority) = current_policy();
    let refused = match (policy.is_realtime(), refused) {
        (true, _) => None,
        (false, Some(e)) => Some(e),
        (false, None) => Some(format!("the kernel reports {}", policy.name())),
    };
    RtReport {
        thread: opts.name.clone(),
        policy,
        priority,
        via: if policy.is_realtime() { via } else { None },
        refused,
        memory_locked: false,
        memory_refused: None,
        cpu,
        cpu_refused,
        below_plugin: None,
    }
}

/// Keeps the calling thread on `cpu` (Linux; elsewhere an error). [`spawn`](super::thread::spawn) uses it for
/// `RtOptions::cpu`; tools use it to keep load off the CPUs they measure.
///
/// # Errors
/// The reason, when `cpu` is not below `CPU_SETSIZE` or the kernel refuses it.
///
/// # Example
/// ```
/// # #[cfg(target_os = "linux")]
/// assert!(izyrt::rt::promote::pin_current_thread(100_000).is_err());
/// ```
#[cfg(target_os = "linux")]
pub fn pin_current_thread(cpu: usize) -> Result<(), String> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(format!("cpu {cpu} is not below CPU_SETSIZE"));
    }
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set; `cpu` < CPU_SETSIZE was
    // checked above; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "sched_setaffinity(cpu {cpu}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The one CPU the calling thread is kept on (`Some` only when its affinity is exactly one
/// CPU, as [`pin_current_thread`] leaves it), so that another thread doing its work can be
/// kept on the same one.
///
/// # Example
/// ```
/// # #[cfg(target_os = "linux")]
/// # {
/// izyrt::rt::promote::pin_current_thread(0).unwrap();
/// assert_eq!(izyrt::rt::promote::pinned_cpu(), Some(0));
/// # }
/// ```
#[cfg(target_os = "linux")]
pub fn pinned_cpu() -> Option<usize> {
    // SAFETY: cpu_set_t is plain data; pid 0 is the calling thread; the size is the set's.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        if libc::CPU_COUNT(&set) != 1 {
            return None;
        }
        (0..libc::CPU_SETSIZE as usize).find(|&cpu| libc::CPU_ISSET(cpu, &set))
    }
}

/// A CPU number, or none, that one thread sets and another reads (lock-free: an
/// `AtomicU32` holding 1 + the CPU, 0 for none).
///
/// # Example
/// ```
/// use izyrt::rt::promote::CpuSlot;
/// let slot = CpuSlot::default();
/// assert_eq!(slot.get(), None);
/// slot.set(Some(0));
/// assert_eq!(slot.get(), Some(0));
/// ```
#[derive(Debug, Default)]
pub struct CpuSlot(AtomicU32);

impl CpuSlot {
    /// Stores `cpu` (relaxed: a setting, not synchronisation).
    pub fn set(&self, cpu: Option<usize>) {
        self.0
            .store(cpu.map_or(0, |c| c as u32 + 1), Ordering::Relaxed);
    }

    /// The CPU last stored, if any.
    pub fn get(&self) -> Option<usize> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n as usize - 1),
        }
    }
}

/// The one CPU the calling thread is kept on: never, off Linux.
#[cfg(not(target_os = "linux"))]
pub fn pinned_cpu() -> Option<usize> {
    None
}

/// Keeps the calling thread on `cpu`: only on Linux.
///
/// # Errors
/// Always, off Linux.
#[cfg(not(target_os = "linux"))]
pub fn pin_current_thread(cpu: usize) -> Result<(), String> {
    Err(format!("pinning to cpu {cpu} is only supported on Linux"))
}

/// Serialises promotions: `audio_thread_priority::set_rt_priority` is process-wide.
static PROMOTE_LOCK: Mutex<()> = Mutex::new(());

#[cfg(all(target_os = "linux", not(feature = "rtkit")))]
fn promote_current_thread(opts: &RtOptions, priority: u8) -> Result<&'static str, String> {
    let _guard = PROMOTE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    audio_thread_priority::set_rt_priority(Some(priority));
    // The handle only serves to demote (it has no Drop): the thread stays realtime until
    // it ends.
    let _handle =
        audio_thread_priority::promote_current_thread_to_real_time(opts.period_frames, opts.rate)
            .map_err(|e| plain_reason(&e))?;
    Ok("direct")
}

/// An `audio_thread_priority` error as a person reads it, without the crate's type name
/// (its Display starts with `AudioThreadPriorityError: `).
#[cfg(target_os = "linux")]
fn plain_reason(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    match text.split_once("Error: ") {
        Some((name, rest)) if !name.contains(' ') => rest.to_owned(),
        _ => text,
    }
}

#[cfg(all(target_os = "linux", feature = "rtkit"))]
fn promote_current_thread(opts: &RtOptions, priority: u8) -> Result<&'static str, String> {
    let _guard = PROMOTE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let direct = match set_fifo_directly(priority) {
        Ok(()) => return Ok("direct"),
        Err(e) => e,
    };
    let _handle =
        audio_thread_priority::promote_current_thread_to_real_time(opts.period_frames, opts.rate)
            .map_err(|e| format!("{direct}; RTKit: {}", plain_reason(&e)))?;
    Ok("rtkit")
}

#[cfg(not(target_os = "linux"))]
fn promote_current_thread(_opts: &RtOptions, priority: u8) -> Result<&'static str, String> {
    let _guard = PROMOTE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    set_fifo_directly(priority).map(|()| "direct")
}

/// `pthread_setschedparam(SCHED_FIFO, priority)` on the calling thread; its return code.
/// Allocates nothing, so a thread someone else created may call it from its callback.
fn set_fifo(priority: libc::c_int) -> libc::c_int {
    // SAFETY: sched_param is plain data; pthread_self is the calling thread.
    unsafe {
        let mut param: libc::sched_param = std::mem::zeroed();
        param.sched_priority = priority;
        libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param)
    }
}

#[cfg(any(not(target_os = "linux"), feature = "rtkit"))]
fn set_fifo_directly(priority: u8) -> Result<(), String> {
    let rc = set_fifo(libc::c_int::from(priority));
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "pthread_setschedparam(SCHED_FIFO {priority}): {}",
            std::io::Error::from_raw_os_error(rc)
        ))
    }
}

/// The soft `RLIMIT_RTPRIO` (the highest realtime priority an unprivileged thread may
/// take), when the platform has one.
#[cfg(target_os = "linux")]
fn rtprio_limit() -> Option<u8> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut lim) } != 0 {
        return None;
    }
    Some(lim.rlim_cur.min(99) as u8)
}

#[cfg(not(target_os = "linux"))]
fn rtprio_limit() -> Option<u8> {
    None
}

/// The calling thread's realtime priority (`SCHED_FIFO` or `SCHED_RR`), if it has one.
///
/// # Example
/// ```
/// // A test thread is not realtime.
/// assert_eq!(std::thread::spawn(izyrt::rt::promote::realtime_priority).join().unwrap(), None);
/// ```
pub fn realtime_priority() -> Option<i32> {
    let (policy, priority) = current_policy();
    policy.is_realtime().then_some(priority)
}

/// The realtime priority of thread `tid` (`SCHED_FIFO` or `SCHED_RR`), if it has one:
/// [`realtime_priority`] for a thread izyrt did not start (a device plugin's:
/// `rt::plugin_threads`) or one of another process (a test's look at a child's threads).
///
/// # Example
/// ```
/// // SAFETY: gettid has no preconditions.
/// let me = unsafe { libc::gettid() };
/// assert_eq!(izyrt::rt::promote::realtime_priority_of(me), izyrt::rt::promote::realtime_priority());
/// ```
#[cfg(target_os = "linux")]
pub fn realtime_priority_of(tid: libc::pid_t) -> Option<i32> {
    // SAFETY: plain syscalls on a thread id; `param` is plain data written by the kernel.
    unsafe {
        let policy = libc::sched_getscheduler(tid);
        let mut param: libc::sched_param = std::mem::zeroed();
        if policy < 0 || libc::sched_getparam(tid, &mut param) != 0 {
            return None;
        }
        SchedPolicy::from_raw(policy)
            .is_realtime()
            .then_some(param.sched_priority)
    }
}

/// Raises the calling thread to `SCHED_FIFO` at `priority` unless it already runs at
/// least that high; false when the system refused. For a thread that someone else
/// created for us (JACK's process thread) and that carries our audio period.
pub fn raise_to_fifo(priority: i32) -> bool {
    realtime_priority().is_some_and(|p| p >= priority) || set_fifo(priority) == 0
}

/// The calling thread's policy and priority, from the kernel.
pub(super) fn current_policy() -> (SchedPolicy, i32) {
    let mut policy = 0;
    // SAFETY: sched_param is plain data; valid out-pointers; pthread_self is valid.
    unsafe {
        let mut param: libc::sched_param = std::mem::zeroed();
        if libc::pthread_getschedparam(libc::pthread_self(), &mut policy, &mut param) != 0 {
            return (SchedPolicy::Unknown(-1), 0);
        }
        (SchedPolicy::from_raw(policy), param.sched_priority)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn refusals_carry_no_type_names() {
        use super::plain_reason;
        let e = "AudioThreadPriorityError: setrlimit failed";
        assert_eq!(plain_reason(&e), "setrlimit failed");
        let said = "no rights: Error: x";
        assert_eq!(plain_reason(&said), said);
    }
}
