//! izyrt's period closure, lent to JACK's process thread and called there, inside the
//! cycle (both sides realtime; see the parent module for why).
//!
//! Design: izyrt's RT thread does not process a JACK period itself. It lends its period
//! closure to JACK's process thread, which calls it on the cycle's buffers, as any JACK
//! client does its work, so no cycle waits for a second thread to be scheduled. The
//! handoff this replaced (JACK posted the period, izyrt's thread woke and answered within
//! three quarters of the cycle) lost the cycle whenever izyrt's thread woke late: on a
//! host that stalls a CPU now and then, those were the native path's largest share of
//! audible events (`benches/RESULTS.md`), and the two wakeups per cycle cost CPU.
//!
//! One atomic word says whether a closure is lent and who is using it:
//!
//! ```text
//! IDLE ──izyrt: lend──► LENT ──JACK: cycle──► BUSY ──JACK: done──► LENT (lent until withdrawn, KEEP)
//!  ▲                     │                                     └──► DONE (lent for one period)
//!  └──izyrt: withdraw────┘ (never while BUSY)                           │
//!  └──────────────────────────izyrt: taken back─────────────────────────┘
//! ```
//!
//! The closure lives on izyrt's RT thread's stack. That thread never returns while JACK's
//! thread may call it: it withdraws LENT → IDLE, and waits out a BUSY call first, which is
//! what makes the lent pointer sound. A loan that ends on a stop leaves the HALTED flag:
//! the cycles until the next loan play silence without counting as late. A close (the
//! server went away, or changed its period) is a flag in the same word: JACK's side stops
//! calling at once, izyrt's side sees it, withdraws and returns. A panic in the closure is caught on JACK's thread (it
//! must not unwind into libjack) and resumed on izyrt's, where it would have been raised
//! before. Lent for good ([`Lend::lend`]), JACK's side makes no system call per cycle:
//! izyrt's thread sleeps and looks every [`LOOK_NS`] for a stop, a close or a stall; a stop
//! seen by JACK's side (set by anyone, or by the closure itself) wakes it at once.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::device::DrivenPeriod;
use crate::rt::clock::now_ns;

const IDLE: u32 = 0;
const LENT: u32 = 1;
const BUSY: u32 = 2;
const DONE: u32 = 3;
const PANICKED: u32 = 4;
/// The bits above: whose the closure is.
const STATE: u32 = 0xff;
/// Flag: lent until withdrawn (else for one period).
const KEEP: u32 = 0x100;
/// Flag: closed for good.
const CLOSED: u32 = 0x200;
/// Flag: taken back on a stop (cycles until the next loan are not late).
const HALTED: u32 = 0x400;

/// How often izyrt's sleeping side looks for a stop, a close or a stall (bounds how long a
/// stop set while no cycle runs goes unnoticed).
pub const LOOK_NS: u64 = 20_000_000;

/// What one JACK cycle got from izyrt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// izyrt's closure ran on this cycle's period.
    Done,
    /// Nothing was lent (izyrt's thread has not come back yet, or is not cycling): the
    /// caller plays silence, and counts it late if izyrt is meant to be cycling.
    Idle,
    /// Lent until a stop, and the stop is set (or the loan ended on it): silence, not a
    /// late cycle.
    Stopped,
    /// The lender is closed.
    Closed,
}

/// Why izyrt's side stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// No cycle came within the timeout.
    Stalled,
    /// The lender is closed.
    Closed,
}

/// A lent closure (its lifetime erased: see the module notes for why that is sound).
type Lent = NonNull<DrivenPeriod<'static>>;

/// The shared word, and what it guards, of one JACK device.
pub struct Lend {
    state: AtomicU32,
    /// Periods the closure has run (stall detection).
    served: AtomicU64,
    /// The lateness JACK's side gave the last call, ns.
    late_ns: AtomicU64,
    /// Written by izyrt's side before LENT is published.
    body: UnsafeCell<Option<Lent>>,
    /// The stop flag of a closure lent for good (with KEEP).
    stop: UnsafeCell<Option<NonNull<AtomicBool>>>,
    /// A caught panic: written by JACK's side while BUSY, read by izyrt's after PANICKED.
    panic: UnsafeCell<Option<Box<dyn Any + Send>>>,
}

// SAFETY: `body` and `stop` are written only by izyrt's side while the state is IDLE and
// read by JACK's side only after it acquired LENT; `panic` is written only by JACK's side
// while BUSY and read by izyrt's after it acquired PANICKED. The pointers they hold stay
// valid while lent (izyrt's side does not return before withdrawing), and the closure is
// `Send`.
unsafe impl Sync for Lend {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for Lend {}

impl Default for Lend {
    fn default() -> Self {
        Lend {
            state: AtomicU32::new(IDLE),
            served: AtomicU64::new(0),
            late_ns: AtomicU64::new(0),
            body: UnsafeCell::new(None),
            stop: UnsafeCell::new(None),
            panic: UnsafeCell::new(None),
        }
    }
}

impl Lend {
    /// JACK's side, once per cycle: calls the lent closure on `capture` and `playback`
    /// with `late_ns` (how late in its cycle JACK's thread runs), if one is lent.
    ///
    /// Runs on: JACK's process thread. Must not: allocate, lock, block (it makes a system
    /// call only to wake izyrt's side when a period lent once is done, or on a stop).
    pub fn serve(&self, capture: &[f32], playback: &mut [f32], late_ns: u64) -> Served {
        let s = self.state.load(Ordering::Acquire);
        if s & CLOSED != 0 {
            return Served::Closed;
        }
        if s & HALTED != 0 {
            return Served::Stopped;
        }
        if s & STATE != LENT {
            return Served::Idle;
        }
        if self
            .state
            .compare_exchange(s, (s & !STATE) | BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Withdrawn or closed just now.
            return Served::Idle;
        }
        let keep = s & KEEP != 0;
        // SAFETY: BUSY: izyrt's side does not return, nor lend anew, until this side
        // leaves BUSY; both pointers were written before LENT was published.
        let (body, stop) = unsafe { (*self.body.get(), *self.stop.get()) };
        // SAFETY: as above, the stop flag outlives the loan.
        let stopped = || stop.is_some_and(|p| unsafe { p.as_ref() }.load(Ordering::Relaxed));
        if keep && stopped() {
            self.release(LENT);
            futex_wake(&self.state);
            return Served::Stopped;
        }
        let called = body.map(|mut body| {
            catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: see above; only this thread calls it while BUSY.
                let body = unsafe { body.as_mut() };
                body(capture, playback, late_ns)
            }))
        });
        self.late_ns.store(late_ns, Ordering::Relaxed);
        self.served.fetch_add(1, Ordering::Relaxed);
        let next = match called {
            Some(Err(payload)) => {
                // SAFETY: BUSY: this side owns `panic` until it publishes PANICKED.
                unsafe { *self.panic.get() = Some(payload) };
                PANICKED
            }
            _ if keep => LENT,
            _ => DONE,
        };
        let was = self.release(next);
        if next != LENT || was & CLOSED != 0 || (keep && stopped()) {
            futex_wake(&self.state);
        }
        match next {
            PANICKED => Served::Idle,
            _ => Served::Done,
        }
    }

    /// JACK's side leaves BUSY for `next`, keeping the flags (a close may have come during
    /// the call); returns the word it replaced.
    fn release(&self, next: u32) -> u32 {
        self.state
            .fetch_update(Ordering::Release, Ordering::Relaxed, |w| {
                Some((w & !STATE) | next)
            })
            .unwrap_or(BUSY)
    }

    /// izyrt's side: lends `body` for one period and waits up to `timeout_ns` for JACK's
    /// next cycle to call it. Returns the lateness that cycle gave it, ns.
    ///
    /// # Errors
    /// [`WaitError::Stalled`] when no cycle came in time, [`WaitError::Closed`] once the
    /// lender is closed.
    ///
    /// # Panics
    /// Resumes a panic of `body` (caught on JACK's thread).
    pub fn lend_once(
        &self,
        body: &mut DrivenPeriod<'_>,
        timeout_ns: u64,
    ) -> Result<u64, WaitError> {
        self.put(body, None)?;
        let deadline = now_ns().saturating_add(timeout_ns);
        loop {
            let s = self.state.load(Ordering::Acquire);
            match s & STATE {
                DONE => {
                    self.state.fetch_and(!STATE, Ordering::Relaxed);
                    return Ok(self.late_ns.load(Ordering::Relaxed));
                }
                LENT => {
                    let now = now_ns();
                    let why = if s & CLOSED != 0 {
                        WaitError::Closed
                    } else if now >= deadline {
                        WaitError::Stalled
                    } else {
                        futex_wait(&self.state, s, deadline - now);
                        continue;
                    };
                    if self.withdraw(s) {
                        return Err(why);
                    }
                }
                _ => self.wait_out(s),
            }
        }
    }

    /// izyrt's side: lends `body` to every cycle until `stop` is set (by any thread, or by
    /// `body` itself), then takes it back. Sleeps meanwhile.
    ///
    /// # Errors
    /// [`WaitError::Stalled`] when no cycle ran for `stall_ns`, [`WaitError::Closed`] once
    /// the lender is closed; either way `body` has been taken back.
    ///
    /// # Panics
    /// Resumes a panic of `body` (caught on JACK's thread).
    pub fn lend(
        &self,
        body: &mut DrivenPeriod<'_>,
        stop: &AtomicBool,
        stall_ns: u64,
    ) -> Result<(), WaitError> {
        self.put(body, Some(stop))?;
        let (mut seen, mut since) = (self.served.load(Ordering::Relaxed), now_ns());
        loop {
            let s = self.state.load(Ordering::Acquire);
            if s & STATE != LENT {
                self.wait_out(s);
                continue;
            }
            let now = now_ns();
            let served = self.served.load(Ordering::Relaxed);
            if served != seen {
                (seen, since) = (served, now);
            }
            let why = if s & CLOSED != 0 {
                Err(WaitError::Closed)
            } else if stop.load(Ordering::Relaxed) {
                // Until the next loan, cycles are silence, not late.
                if self
                    .state
                    .compare_exchange(s, HALTED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            } else if now.saturating_sub(since) >= stall_ns {
                Err(WaitError::Stalled)
            } else {
                futex_wait(&self.state, s, LOOK_NS);
                continue;
            };
            if self.withdraw(s) {
                return why;
            }
        }
    }

    /// Publishes `body` (and, lent for good, `stop`).
    fn put(&self, body: &mut DrivenPeriod<'_>, stop: Option<&AtomicBool>) -> Result<(), WaitError> {
        let s = self.state.load(Ordering::Acquire);
        if s & CLOSED != 0 {
            return Err(WaitError::Closed);
        }
        debug_assert_eq!(s & STATE, IDLE, "one lender at a time");
        let body: NonNull<DrivenPeriod<'_>> = NonNull::from(body);
        // SAFETY: only the lifetime changes; the module notes say why it is not outlived.
        let body: Lent = unsafe { std::mem::transmute(body) };
        // SAFETY: IDLE: JACK's side does not read these until LENT is published below.
        unsafe {
            *self.body.get() = Some(body);
            *self.stop.get() = stop.map(NonNull::from);
        }
        let lent = LENT | if stop.is_some() { KEEP } else { 0 };
        match self.state.compare_exchange(
            s,
            (s & CLOSED) | lent,
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => Ok(()),
            // Only a close can have changed the word meanwhile.
            Err(_) => Err(WaitError::Closed),
        }
    }

    /// Takes a closure back from LENT (`s`); false when JACK's side took it first.
    fn withdraw(&self, s: u32) -> bool {
        self.state
            .compare_exchange(s, s & CLOSED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// While BUSY, waits for JACK's side to finish its call; on PANICKED, resumes the
    /// panic on this thread.
    fn wait_out(&self, s: u32) {
        match s & STATE {
            PANICKED => {
                // SAFETY: PANICKED acquired: JACK's side wrote the payload before it and
                // never touches it again.
                let payload = unsafe { (*self.panic.get()).take() };
                self.state.fetch_and(CLOSED, Ordering::Relaxed);
                resume_unwind(payload.unwrap_or_else(|| Box::new("JACK period panicked")));
            }
            // A call in progress: bounded by JACK's cycle.
            BUSY => futex_wait(&self.state, s, LOOK_NS),
            _ => {}
        }
    }

    /// Ends both sides' waits for good: JACK's side stops calling at once.
    pub fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::Release);
        futex_wake(&self.state);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout_ns` (spurious wakeups allowed).
fn futex_wait(word: &AtomicU32, expected: u32, timeout_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; the timeout is
    // a valid timespec; FUTEX_WAIT only reads them.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wakes the thread sleeping on `word`, if any.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE does not dereference beyond it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

#[cfg(test)]
mod tests;
