//! One period handed from JACK's process thread to izyrt's RT thread and back, inside the
//! same JACK cycle (both sides are realtime; see the parent module for why).
//!
//! Design: one atomic state word says who owns the two period buffers, and both threads
//! sleep on it with a futex, so a handoff is one store and one wake each way — no lock,
//! no allocation, no queue that could add a period of latency:
//!
//! ```text
//! IDLE ──JACK: capture written──► READY ──izyrt: picked up──► WORKING ──izyrt: playback written──► DONE
//!  ▲                                                                                                 │
//!  └──────────────────────────────────JACK: playback read────────────────────────────────────────────┘
//! ```
//!
//! JACK's thread waits for DONE only until a deadline inside its cycle; past it the cycle
//! plays silence (a late cycle, counted by the caller) and leaves the state as it is. The
//! next cycle takes back a period izyrt never picked up (READY → IDLE), drops one that
//! came back too late (DONE → IDLE), and skips its own turn while izyrt is still WORKING
//! on an old one: the buffers are only ever touched by the state's owner. CLOSED ends
//! both sides' waits for good (the server shut the client down, or the device closed).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::rt::clock::now_ns;

const IDLE: u32 = 0;
const READY: u32 = 1;
const WORKING: u32 = 2;
const DONE: u32 = 3;
const CLOSED: u32 = 4;

/// What one JACK cycle got back from izyrt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// izyrt's playback for this cycle was copied out.
    Done,
    /// izyrt did not answer before the deadline (or was still busy with an earlier
    /// cycle): the caller plays silence.
    Late,
    /// Nothing was served: the handoff is closed (the callback also uses it while izyrt's
    /// thread is not cycling).
    Closed,
}

/// Why izyrt's side stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// No cycle came within the timeout.
    Stalled,
    /// The handoff is closed.
    Closed,
}

/// The shared state and period buffers of one JACK device.
pub struct Handoff {
    state: AtomicU32,
    /// Monotonic ns when JACK's side made the current period READY.
    posted_ns: AtomicU64,
    /// Periods izyrt never got: taken back unread, or not written because izyrt was still
    /// working (a late cycle whose period izyrt picked up after its deadline lost only
    /// its playback).
    periods_lost: AtomicU64,
    capture: UnsafeCell<Box<[f32]>>,
    playback: UnsafeCell<Box<[f32]>>,
}

// SAFETY: the buffers are only accessed by the owner that `state` names (JACK's thread in
// IDLE and DONE→IDLE, izyrt's thread in WORKING), and ownership passes with
// release/acquire operations on `state`, which order the buffer accesses.
unsafe impl Sync for Handoff {}

impl Handoff {
    /// Buffers of `capture` and `playback` samples (interleaved), allocated here.
    pub fn new(capture: usize, playback: usize) -> Handoff {
        Handoff {
            state: AtomicU32::new(IDLE),
            posted_ns: AtomicU64::new(0),
            periods_lost: AtomicU64::new(0),
            capture: UnsafeCell::new(vec![0.0; capture].into_boxed_slice()),
            playback: UnsafeCell::new(vec![0.0; playback].into_boxed_slice()),
        }
    }

    /// JACK's side, once per cycle: `fill` writes the capture period, then izyrt's side
    /// runs, until `deadline_ns` (monotonic) at the latest, then `take` reads its playback
    /// period. On [`Served::Late`] and [`Served::Closed`], `take` is not called.
    pub fn serve(
        &self,
        deadline_ns: u64,
        fill: impl FnOnce(&mut [f32]),
        take: impl FnOnce(&[f32]),
    ) -> Served {
        match self.state.load(Ordering::Acquire) {
            CLOSED => return Served::Closed,
            // The last period came back after its deadline: too late to play.
            DONE => self.state.store(IDLE, Ordering::Release),
            // izyrt never picked the last one up: take it back (that period is lost),
            // unless it just did (then this cycle's is). One period is lost either way.
            READY => {
                self.periods_lost.fetch_add(1, Ordering::Relaxed);
                if self
                    .state
                    .compare_exchange(READY, IDLE, Ordering::Acquire, Ordering::Acquire)
                    .is_err()
                {
                    return Served::Late;
                }
            }
            WORKING => {
                self.periods_lost.fetch_add(1, Ordering::Relaxed);
                return Served::Late;
            }
            _ => {}
        }
        // SAFETY: IDLE: this thread owns the buffers until it publishes READY.
        fill(unsafe { &mut *self.capture.get() });
        self.posted_ns.store(now_ns(), Ordering::Relaxed);
        self.state.store(READY, Ordering::Release);
        futex_wake(&self.state);
        loop {
            let s = self.state.load(Ordering::Acquire);
            match s {
                DONE => break,
                CLOSED => return Served::Closed,
                _ => {}
            }
            let now = now_ns();
            if now >= deadline_ns {
                return Served::Late;
            }
            futex_wait(&self.state, s, deadline_ns - now);
        }
        // SAFETY: DONE: izyrt's side released the buffers to this thread.
        take(unsafe { &*self.playback.get() });
        self.state.store(IDLE, Ordering::Release);
        Served::Done
    }

    /// Periods izyrt never got so far ([`Handoff::serve`]'s late cycles lose their
    /// playback; these were neither captured for izyrt nor played by it).
    pub fn periods_lost(&self) -> u64 {
        self.periods_lost.load(Ordering::Relaxed)
    }

    /// izyrt's side: waits up to `timeout_ns` for a period, then calls
    /// `process(capture, playback)` and hands the playback back. Returns the time from
    /// JACK's post to this thread's wakeup, ns.
    ///
    /// # Errors
    /// [`WaitError::Stalled`] when no period came in time, [`WaitError::Closed`] once the
    /// handoff is closed.
    pub fn run(
        &self,
        timeout_ns: u64,
        process: &mut dyn FnMut(&[f32], &mut [f32]),
    ) -> Result<u64, WaitError> {
        let deadline = now_ns().saturating_add(timeout_ns);
        loop {
            let s = self.state.load(Ordering::Acquire);
            match s {
                READY => {
                    if self
                        .state
                        .compare_exchange(READY, WORKING, Ordering::Acquire, Ordering::Acquire)
                        .is_ok()
                    {
                        break;
                    }
                    continue;
                }
                CLOSED => return Err(WaitError::Closed),
                _ => {}
            }
            let now = now_ns();
            if now >= deadline {
                return Err(WaitError::Stalled);
            }
            futex_wait(&self.state, s, deadline - now);
        }
        let woke = now_ns().saturating_sub(self.posted_ns.load(Ordering::Relaxed));
        // SAFETY: WORKING: this thread owns both buffers until it publishes DONE.
        let (capture, playback) = unsafe { (&*self.capture.get(), &mut *self.playback.get()) };
        playback.fill(0.0);
        process(capture, playback);
        // A close while working stays a close.
        let _ = self
            .state
            .compare_exchange(WORKING, DONE, Ordering::Release, Ordering::Relaxed);
        futex_wake(&self.state);
        Ok(woke)
    }

    /// Ends both sides' waits for good.
    pub fn close(&self) {
        self.state.store(CLOSED, Ordering::Release);
        futex_wake(&self.state);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
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
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    fn izyrt_side(h: Arc<Handoff>, periods: usize) -> std::thread::JoinHandle<Vec<u64>> {
        std::thread::spawn(move || {
            let mut woke = Vec::new();
            for _ in 0..periods {
                let w = h
                    .run(5_000 * MS, &mut |c, p| {
                        for (o, i) in p.iter_mut().zip(c) {
                            *o = i * 2.0;
                        }
                    })
                    .unwrap();
                woke.push(w);
            }
            woke
        })
    }

    #[test]
    fn each_period_comes_back_processed_within_the_cycle() {
        let h = Arc::new(Handoff::new(4, 4));
        let t = izyrt_side(Arc::clone(&h), 100);
        for n in 0..100 {
            let mut out = [0.0f32; 4];
            let r = h.serve(
                now_ns() + 5_000 * MS,
                |c| c.fill(n as f32),
                |p| out.copy_from_slice(p),
            );
            assert_eq!(r, Served::Done);
            assert_eq!(out, [2.0 * n as f32; 4]);
        }
        assert_eq!(t.join().unwrap().len(), 100);
    }

    #[test]
    fn a_late_answer_is_dropped_and_the_next_cycle_goes_on() {
        let h = Arc::new(Handoff::new(1, 1));
        // Nobody on izyrt's side: the cycle is late, and the period stays READY.
        let r = h.serve(now_ns() + MS, |c| c[0] = 1.0, |_| panic!("nothing to take"));
        assert_eq!(r, Served::Late);
        // izyrt picks it up after the deadline and answers: too late for that cycle.
        h.run(MS, &mut |c, p| p[0] = c[0]).unwrap();
        // The next cycle drops it and serves its own period.
        let t = izyrt_side(Arc::clone(&h), 1);
        let mut out = 0.0;
        let r = h.serve(now_ns() + 5_000 * MS, |c| c[0] = 3.0, |p| out = p[0]);
        assert_eq!((r, out), (Served::Done, 6.0));
        t.join().unwrap();
        assert_eq!(
            h.periods_lost(),
            0,
            "the late period's capture was processed"
        );
        // A period never picked up is taken back by the next cycle.
        assert_eq!(h.serve(now_ns() + MS, |c| c[0] = 4.0, |_| {}), Served::Late);
        assert_eq!(h.serve(now_ns() + MS, |c| c[0] = 5.0, |_| {}), Served::Late);
        assert_eq!(h.periods_lost(), 1, "4.0 never reached izyrt");
        let mut seen = 0.0;
        h.run(MS, &mut |c, _| seen = c[0]).unwrap();
        assert_eq!(seen, 5.0, "the newest period, not the stale one");
    }

    #[test]
    fn a_cycle_while_izyrt_is_still_working_is_skipped_without_touching_the_buffers() {
        let h = Arc::new(Handoff::new(1, 1));
        let worker = {
            let h = Arc::clone(&h);
            std::thread::spawn(move || {
                h.run(5_000 * MS, &mut |c, p| {
                    std::thread::sleep(Duration::from_millis(50));
                    p[0] = c[0];
                })
                .unwrap()
            })
        };
        assert_eq!(
            h.serve(now_ns() + MS, |c| c[0] = 7.0, |_| panic!("late")),
            Served::Late
        );
        // izyrt is WORKING: this cycle must not write the capture buffer.
        while h.state.load(Ordering::Acquire) != WORKING {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            h.serve(now_ns() + MS, |_| panic!("busy"), |_| panic!("busy")),
            Served::Late
        );
        assert_eq!(
            h.periods_lost(),
            1,
            "this cycle's capture never reached izyrt"
        );
        worker.join().unwrap();
    }

    #[test]
    fn waits_end_on_stall_and_on_close() {
        let h = Arc::new(Handoff::new(1, 1));
        assert_eq!(h.run(MS, &mut |_, _| {}), Err(WaitError::Stalled));
        let waiter = {
            let h = Arc::clone(&h);
            std::thread::spawn(move || h.run(10_000 * MS, &mut |_, _| {}))
        };
        std::thread::sleep(Duration::from_millis(20));
        h.close();
        assert_eq!(waiter.join().unwrap(), Err(WaitError::Closed));
        assert!(h.is_closed());
        assert_eq!(h.serve(now_ns() + MS, |_| {}, |_| {}), Served::Closed);
    }
}
