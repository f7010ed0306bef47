//! A counting global allocator: the proof that RT code allocates nothing.
//!
//! Design: counting is per thread and only while armed, so a test can arm it on the RT
//! thread for a steady-state stretch and read how many allocations, reallocations and
//! frees that thread made, undisturbed by what other threads do. The thread-locals are
//! `const`-initialised `Cell`s without destructors, so touching them never allocates
//! (which would recurse into the allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// A [`GlobalAlloc`] that forwards to [`System`] and counts calls made by armed threads.
///
/// # Example
/// ```
/// // In a test binary:
/// #[global_allocator]
/// static ALLOC: izyrt::rt::alloc_count::CountingAllocator = izyrt::rt::alloc_count::CountingAllocator;
///
/// let (_, n) = izyrt::rt::alloc_count::count_allocations(|| 1 + 1);
/// assert_eq!(n, 0);
/// let (_, n) = izyrt::rt::alloc_count::count_allocations(|| vec![1u8; 16]);
/// assert!(n >= 1);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the same arguments; counting touches
// only const thread-locals, which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note();
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` on the current thread with counting armed and returns its result and the
/// number of allocator calls (alloc, realloc, free) it made.
///
/// Counts are only meaningful when [`CountingAllocator`] is the global allocator of the
/// binary; otherwise the count is always 0.
pub fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, COUNT.with(|c| c.get()))
}

/// Starts counting on the current thread from zero and keeps counting until the thread
/// ends (for RT threads that publish their steady-state count in the metrics; read it with
/// [`thread_allocations`]). Meaningful only under [`CountingAllocator`], as the `izyrt`
/// binary installs it.
///
/// # Example
/// ```
/// izyrt::rt::alloc_count::arm_thread();
/// let _ = izyrt::rt::alloc_count::thread_allocations();
/// ```
pub fn arm_thread() {
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
}

/// Allocator calls counted on the current thread since [`arm_thread`] (0 when not armed).
/// Reading it never allocates.
pub fn thread_allocations() -> u64 {
    COUNT.with(|c| c.get())
}

/// An RT thread's steady-state allocations: what its armed counter saw, less what came in
/// the periods in which its device recovered (an xrun, a suspend, a reopen) and in the
/// [`SETTLE_PERIODS`] after each.
///
/// Why: a recovery is not steady state. On the ALSA `jack` PCM an xrun's recovery
/// restarts the plugin's JACK client on the RT thread, and that client allocates; counted,
/// one xrun on a stalling host made `steadyAllocations` read as if izyrt's own period had
/// allocated. The runner's published count and `tests/alsa_alloc.rs` both take this rule,
/// so the test proves what the metric reports.
///
/// # Example
/// ```
/// use izyrt::rt::alloc_count::{SETTLE_PERIODS, SteadyAllocations};
/// let mut s = SteadyAllocations::new(0);
/// assert_eq!(s.update(0, 0), 0); // a clean period
/// assert_eq!(s.update(5, 1), 0); // the device recovered: its 5 calls are left out
/// for _ in 0..SETTLE_PERIODS {
///     assert_eq!(s.update(6, 1), 0); // and the periods settling after it
/// }
/// assert_eq!(s.update(8, 1), 2); // a steady period that allocated twice counts
/// assert_eq!(s.periods(), 2);
/// assert_eq!(s.recovery_calls(), 6); // what the recovery and its settling made
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SteadyAllocations {
    /// Allocator calls left out so far.
    excluded: u64,
    /// The thread's count and the device's recoveries at the last update.
    last_count: u64,
    last_recoveries: u64,
    /// Periods still to leave out after the last recovery.
    settling: u32,
    /// Periods counted.
    periods: u64,
}

/// Periods after a recovery that are still left out: the restarted stream's first
/// wakeups, which may still touch the plugin's lazily built state.
pub const SETTLE_PERIODS: u32 = 10;

impl SteadyAllocations {
    /// Starts at the moment the counter is armed (count 0), the device having recovered
    /// `recoveries` times so far.
    pub fn new(recoveries: u64) -> SteadyAllocations {
        SteadyAllocations {
            excluded: 0,
            last_count: 0,
            last_recoveries: recoveries,
            settling: 0,
            periods: 0,
        }
    }

    /// The steady-state count after a period that ended with the thread's counter at
    /// `count` ([`thread_allocations`]) and the device's recoveries at `recoveries`.
    ///
    /// Runs on: the RT thread, once per period. Must not: allocate, lock, block.
    pub fn update(&mut self, count: u64, recoveries: u64) -> u64 {
        let calls = count.saturating_sub(self.last_count);
        self.last_count = count;
        if recoveries != self.last_recoveries {
            self.last_recoveries = recoveries;
            self.settling = SETTLE_PERIODS;
            self.excluded += calls;
        } else if self.settling > 0 {
            self.settling -= 1;
            self.excluded += calls;
        } else {
            self.periods += 1;
        }
        count.saturating_sub(self.excluded)
    }

    /// The steady periods counted so far.
    pub fn periods(&self) -> u64 {
        self.periods
    }

    /// The allocator calls left out: those of the recovery periods and the periods
    /// settling after them. While the recoveries are xruns on a device whose recovery is
    /// izyrt's own code alone (`virtual`) this is 0 too; on the ALSA `jack` PCM it holds
    /// the plugin's restarts.
    pub fn recovery_calls(&self) -> u64 {
        self.excluded
    }
}
