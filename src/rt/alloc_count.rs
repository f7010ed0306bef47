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
