//! Locking the process's memory (`mlockall`) once, and only where it cannot hurt (main
//! thread, from [`spawn`](super::thread::spawn) or early in `main`).
//!
//! Design: `mlockall(MCL_CURRENT | MCL_FUTURE)` is attempted only with `CAP_IPC_LOCK`
//! (root, or `setcap`) or an unlimited `RLIMIT_MEMLOCK`. Under a finite limit `MCL_FUTURE`
//! would make later allocations fail once the locked total reaches the limit, which would
//! turn a missing privilege into a crash.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why the process's memory was not locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Locking was not attempted: without `CAP_IPC_LOCK`, `MCL_FUTURE` under a finite
    /// `RLIMIT_MEMLOCK` would make later allocations fail.
    #[error(
        "no CAP_IPC_LOCK and RLIMIT_MEMLOCK is {limit_kib} KiB: locking everything under a \
         finite limit would make later allocations fail"
    )]
    Limited {
        /// The soft memlock limit, KiB.
        limit_kib: u64,
    },
    /// `mlockall` failed with this errno.
    #[error("mlockall: {}", std::io::Error::from_raw_os_error(*.errno))]
    Failed {
        /// The errno.
        errno: i32,
    },
}

/// Locks all current and future memory of the process (`mlockall`), once; later calls
/// return the first call's outcome. Called by [`spawn`](super::thread::spawn); call it early from `main` to
/// lock before the process grows.
///
/// # Errors
/// [`LockError`]: why memory was not locked.
pub fn lock_memory() -> Result<(), LockError> {
    static LOCKED: OnceLock<Result<(), LockError>> = OnceLock::new();
    *LOCKED.get_or_init(|| {
        if !may_lock_all() {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: valid out-pointer.
            unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
            return Err(LockError::Limited {
                limit_kib: lim.rlim_cur / 1024,
            });
        }
        // SAFETY: plain syscall with flag arguments.
        let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
        if rc == 0 {
            MEMORY_LOCKED.store(true, Ordering::Relaxed);
            Ok(())
        } else {
            Err(LockError::Failed {
                errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            })
        }
    })
}

static MEMORY_LOCKED: AtomicBool = AtomicBool::new(false);

pub(super) fn memory_is_locked() -> bool {
    MEMORY_LOCKED.load(Ordering::Relaxed)
}

/// `CAP_IPC_LOCK` (locking is then unlimited) or an unlimited memlock limit.
fn may_lock_all() -> bool {
    if has_cap_ipc_lock() {
        return true;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    rc == 0 && lim.rlim_cur == libc::RLIM_INFINITY
}

/// Whether `CAP_IPC_LOCK` (bit 14) is in the process's effective set. Root in a
/// container may lack it, and a non-root binary may hold it through `setcap`.
#[cfg(target_os = "linux")]
fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

#[cfg(not(target_os = "linux"))]
fn has_cap_ipc_lock() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
