//! What runs on JACK's own threads: the process callback (JACK's RT thread: interleave
//! the input ports, hand the period to izyrt's RT thread and wait for it, write the output
//! ports) and the server notifications.
//!
//! The process callback follows the RT rules like izyrt's own threads: no allocation, no
//! lock, no log; its only wait is the bounded one in [`Handoff::serve`]. It arms the
//! counting allocator on its first call and publishes its count, so tests can prove it.
//! On that first call it also sets FTZ/DAZ on JACK's thread (`rt::denormals`), as izyrt's
//! own RT threads do at spawn, and publishes whether the mode took.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use jack::{AudioIn, AudioOut, Client, ClientStatus, Control, Frames, Port, ProcessScope};

use super::handoff::{Handoff, Served};
use crate::device::DeviceCounters;
use crate::rt::alloc_count::{arm_thread, thread_allocations};
use crate::rt::clock::now_ns;
use crate::rt::denormals::{denormals_flushed, flush_denormals};
use crate::rt::promote::{raise_to_fifo, realtime_priority};

/// Why the server stopped serving this client (read by the device after a close).
#[derive(Debug, Default)]
pub struct Stop {
    /// 0: not stopped; [`SHUT_DOWN`], [`NEW_PERIOD`] or [`NEW_RATE`].
    pub why: AtomicU32,
    /// The new period or rate, for [`NEW_PERIOD`] and [`NEW_RATE`].
    pub value: AtomicU32,
}

/// The server shut the client down (it exited, or kicked the client out).
pub const SHUT_DOWN: u32 = 1;
/// The server changed its buffer size.
pub const NEW_PERIOD: u32 = 2;
/// The server changed its sample rate.
pub const NEW_RATE: u32 = 3;

impl Stop {
    fn set(&self, why: u32, value: u32, handoff: &Handoff) {
        self.value.store(value, Ordering::Relaxed);
        self.why.store(why, Ordering::Release);
        handoff.close();
    }
}

/// State both callbacks share with the device.
pub struct Shared {
    /// The period handoff.
    pub handoff: Handoff,
    /// Set while izyrt's RT thread is cycling ([`crate::device::Device::start`]); until
    /// then the callback plays silence without waiting.
    pub running: AtomicBool,
    /// izyrt's RT thread's `SCHED_FIFO` priority (0: none), which the process thread
    /// takes when it runs lower.
    pub priority: AtomicI32,
    /// The process thread's realtime priority after that (0: not realtime, or no cycle
    /// since the start yet).
    pub process_priority: AtomicI32,
    /// Why the client stopped.
    pub stop: Stop,
    /// Allocator calls the process callback made since its first call.
    pub allocations: AtomicU64,
    /// Whether FTZ/DAZ is set on JACK's process thread (from its first call on).
    pub denormals_flushed: AtomicBool,
    /// xruns (cycles izyrt did not answer in time) and lost frames.
    pub counters: Arc<DeviceCounters>,
}

/// The process callback's state.
pub struct Process {
    /// Input ports, one per capture channel.
    pub inputs: Vec<Port<AudioIn>>,
    /// Output ports, one per playback channel.
    pub outputs: Vec<Port<AudioOut>>,
    /// Frames per period (the server's buffer size at open).
    pub period: Frames,
    /// How long a cycle waits for izyrt's answer, ns.
    pub budget_ns: u64,
    /// Shared with the device.
    pub shared: Arc<Shared>,
    /// Whether the allocation counter is armed on this thread.
    pub armed: bool,
    /// The priority this thread last tried to take.
    pub raised: i32,
    /// The handoff's lost periods already counted.
    pub periods_lost_seen: u64,
}

impl jack::ProcessHandler for Process {
    fn process(&mut self, _: &Client, ps: &ProcessScope) -> Control {
        let sh = &*self.shared;
        if !self.armed {
            arm_thread();
            self.armed = true;
            // JACK's thread, not ours: set the mode our RT threads get at spawn.
            flush_denormals();
            sh.denormals_flushed
                .store(denormals_flushed(), Ordering::Relaxed);
        }
        let priority = sh.priority.load(Ordering::Relaxed);
        if priority != self.raised {
            // Once per start, outside steady state: this thread carries izyrt's audio now
            // and must not wait behind izyrt's own network threads (JACK gives its clients
            // a priority below the server's, often below those).
            self.raised = priority;
            if priority > 0 {
                raise_to_fifo(priority);
            }
            sh.process_priority
                .store(realtime_priority().unwrap_or(0), Ordering::Relaxed);
        }
        let served = if ps.n_frames() != self.period {
            // A buffer-size change the notification has not reported yet.
            sh.stop.set(NEW_PERIOD, ps.n_frames(), &sh.handoff);
            Served::Closed
        } else if sh.running.load(Ordering::Acquire) {
            let (inputs, outputs) = (&self.inputs, &mut self.outputs);
            let (seen, period) = (&mut self.periods_lost_seen, self.period);
            sh.handoff.serve(
                now_ns() + self.budget_ns,
                |capture| {
                    // Before izyrt gets this period: a period just taken back unread is
                    // skipped ahead of it, so a client's gap goes before this audio.
                    count_lost_periods(sh, seen, period);
                    interleave(inputs, ps, capture);
                },
                |playback| deinterleave(playback, outputs, ps),
            )
        } else {
            // Nobody to serve yet (or any more): silence, not an xrun.
            Served::Closed
        };
        if served != Served::Done {
            for port in &mut self.outputs {
                port.as_mut_slice(ps).fill(0.0);
            }
            if served == Served::Late {
                DeviceCounters::bump(&sh.counters.xruns);
                sh.counters
                    .lost_frames
                    .fetch_add(u64::from(self.period), Ordering::Relaxed);
            }
        }
        // A cycle izyrt was too busy to take: skipped before the next one.
        count_lost_periods(sh, &mut self.periods_lost_seen, self.period);
        sh.allocations
            .store(thread_allocations(), Ordering::Relaxed);
        Control::Continue
    }

    fn buffer_size(&mut self, _: &Client, size: Frames) -> Control {
        if size != self.period {
            let sh = &*self.shared;
            sh.stop.set(NEW_PERIOD, size, &sh.handoff);
        }
        Control::Continue
    }
}

/// Port buffers → one interleaved period.
fn interleave(inputs: &[Port<AudioIn>], ps: &ProcessScope, out: &mut [f32]) {
    let ch = inputs.len();
    if ch == 0 {
        return;
    }
    for (c, port) in inputs.iter().enumerate() {
        for (frame, x) in out.chunks_exact_mut(ch).zip(port.as_slice(ps)) {
            frame[c] = *x;
        }
    }
}

/// One interleaved period → port buffers.
fn deinterleave(input: &[f32], outputs: &mut [Port<AudioOut>], ps: &ProcessScope) {
    let ch = outputs.len();
    if ch == 0 {
        return;
    }
    for (c, port) in outputs.iter_mut().enumerate() {
        for (x, frame) in port.as_mut_slice(ps).iter_mut().zip(input.chunks_exact(ch)) {
            *x = frame[c];
        }
    }
}

/// Server notifications (JACK's notification thread).
pub struct Notify {
    /// Shared with the device.
    pub shared: Arc<Shared>,
    /// The rate at open.
    pub rate: u32,
}

impl jack::NotificationHandler for Notify {
    unsafe fn shutdown(&mut self, _: ClientStatus, _: &str) {
        let sh = &*self.shared;
        sh.stop.set(SHUT_DOWN, 0, &sh.handoff);
    }

    fn sample_rate(&mut self, _: &Client, rate: Frames) -> Control {
        if rate != self.rate {
            let sh = &*self.shared;
            sh.stop.set(NEW_RATE, rate, &sh.handoff);
        }
        Control::Continue
    }
}

/// Adds to the device's `skipped_frames` the periods izyrt never got since `seen`
/// (`Handoff::periods_lost`); a late cycle whose period izyrt still processed is not
/// one (it was captured and pulled; only its playback came too late).
///
/// Runs on: JACK's process thread, once or twice per cycle. Must not: allocate, lock,
/// block.
fn count_lost_periods(sh: &Shared, seen: &mut u64, period: Frames) {
    let lost = sh.handoff.periods_lost();
    let new = lost.saturating_sub(*seen);
    *seen = lost;
    if new > 0 {
        sh.counters
            .skipped_frames
            .fetch_add(new * u64::from(period), Ordering::Relaxed);
    }
}
