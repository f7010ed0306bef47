//! JACK's thread cancelled while it runs izyrt's shutdown callback (JACK's process or
//! notification thread, as libjack ends it).
//!
//! Design: libjack (jack2) stops a client's threads with `pthread_cancel`, and its threads
//! take cancellation *asynchronously*: at any instruction. A cancellation is a forced
//! unwind; one that lands while the thread runs izyrt's callback unwinds into Rust frames
//! that must not unwind (`extern "C"`), and the process aborts (SIGABRT, no message). That
//! is what a JACK server that went away did to a third of the hubs and peers on `jack:`
//! (13 in 40, the stack in the shutdown callback's wake; none in 70 since): the server's
//! end reaches izyrt as the shutdown callback, which wakes izyrt's RT thread, which closes
//! the client to reopen it later, and `jack_client_close` cancels JACK's thread while it
//! is still on its way out of the callback.
//!
//! So the shutdown callback first takes its own thread out of cancellation's reach
//! ([`leaving`]). libjack ends that thread itself right after the callback
//! (`pthread_exit` on the process thread, the end of its loop on the notification thread),
//! so `jack_client_close`, which joins the thread after cancelling it, still returns. Both
//! threads may run that callback when the server goes; the first to run it wakes izyrt,
//! and the other can then be cancelled in it only in the few instructions before it makes
//! itself immune (never seen). Closing such a client later instead, after a
//! failed reopen, crashed libjack (SIGSEGV in every run): it is closed at once, as before.
//! The other callbacks need nothing: the server is alive when they run, and a client closed
//! while the server runs is deactivated first, which waits for the server's next cycle
//! before libjack cancels the threads: they are waiting in libjack's frames by then.

use libc::c_int;

/// glibc's and musl's value on Linux (`<pthread.h>`); the `libc` crate does not declare
/// the cancellation calls for Linux.
const PTHREAD_CANCEL_DISABLE: c_int = 1;

unsafe extern "C" {
    fn pthread_setcancelstate(state: c_int, oldstate: *mut c_int) -> c_int;
}

/// Makes the calling thread immune to cancellation for the rest of its life: for the
/// callback after which libjack ends the thread. The first thing that callback does,
/// before it wakes anyone.
///
/// Runs on: a JACK thread, in the shutdown callback. Must not: allocate, lock, block.
pub(super) fn leaving() {
    let mut old = 0;
    // SAFETY: a libc call on the calling thread; `old` outlives it.
    unsafe {
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut old);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::thread::JoinHandleExt;
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    use super::*;

    unsafe extern "C" {
        fn pthread_setcanceltype(kind: c_int, oldtype: *mut c_int) -> c_int;
    }
    const PTHREAD_CANCEL_ASYNCHRONOUS: c_int = 1;

    /// A thread as libjack runs its own (cancellation asynchronous) calls `leaving` and is
    /// cancelled while busy after it, then reaches a cancellation point and ends by
    /// itself. A cancel that acted would unwind into Rust frames and abort this whole test
    /// binary: that is how this test fails (without `leaving`, it does).
    #[test]
    fn a_cancel_after_leaving_does_not_act() {
        let inside = Arc::new(Barrier::new(2));
        let b = Arc::clone(&inside);
        let t = std::thread::spawn(move || {
            let mut old = 0;
            // SAFETY: a libc call on this thread.
            unsafe { pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &mut old) };
            leaving();
            b.wait();
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(20) {
                std::hint::spin_loop();
            }
            std::thread::sleep(Duration::from_millis(1));
            7
        });
        inside.wait();
        // SAFETY: the thread is alive until it is joined below.
        unsafe { libc::pthread_cancel(t.as_pthread_t()) };
        assert_eq!(t.join().unwrap(), 7);
    }
}
