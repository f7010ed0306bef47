//! What runs on JACK's own threads: the process callback (JACK's RT thread: interleave
//! the input ports, run izyrt's lent period closure on them, write the output ports) and
//! the server notifications.
//!
//! The process callback follows the RT rules like izyrt's own threads: no allocation, no
//! lock, no log, no wait; what it runs is izyrt's period, under the same rules. It arms
//! the counting allocator on its first call and publishes its count, so tests can prove
//! it. On that first call it also sets FTZ/DAZ on JACK's thread (`rt::denormals`), as
//! izyrt's own RT threads do at spawn, and publishes whether the mode took.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use jack::{AudioIn, AudioOut, Client, ClientStatus, Control, Frames, Port, ProcessScope};

use super::cancel;
use super::lend::{Lend, Served};
use crate::device::DeviceCounters;
use crate::rt::alloc_count::{arm_thread, thread_allocations};
use crate::rt::clock::frames_ns;
use crate::rt::denormals::{denormals_flushed, flush_denormals};
use crate::rt::promote::{
    CpuSlot, pin_current_thread, pinned_cpu, raise_to_fifo, realtime_priority,
};

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
    fn set(&self, why: u32, value: u32, lend: &Lend) {
        self.value.store(value, Ordering::Relaxed);
        self.why.store(why, Ordering::Release);
        lend.close();
    }
}

/// State both callbacks share with the device.
pub struct Shared {
    /// izyrt's period closure, lent to the callback.
    pub lend: Lend,
    /// Set while izyrt's RT thread is cycling ([`crate::device::Device::start`]): a cycle
    /// with nothing lent is then late; before, it is silence.
    pub running: AtomicBool,
    /// izyrt's RT thread's `SCHED_FIFO` priority (0: none), which the process thread
    /// takes when it runs lower.
    pub priority: AtomicI32,
    /// The CPU izyrt's RT thread is kept on (`--cpu`), where the process thread goes too.
    pub cpu: CpuSlot,
    /// Why the client stopped.
    pub stop: Stop,
    /// Allocator calls the process callback made since its first call.
    pub allocations: AtomicU64,
    /// Whether FTZ/DAZ is set on JACK's process thread (from its first call on).
    pub denormals_flushed: AtomicBool,
    /// xruns (cycles izyrt had lent nothing to while cycling) and lost frames.
    pub counters: Arc<DeviceCounters>,
}

/// The process callback's state.
pub struct Process {
    /// Input ports, one per capture channel.
    pub inputs: Vec<Port<AudioIn>>,
    /// Output ports, one per playback channel.
    pub outputs: Vec<Port<AudioOut>>,
    /// The capture period, interleaved.
    pub capture: Box<[f32]>,
    /// The playback period, interleaved.
    pub playback: Box<[f32]>,
    /// Frames per period (the server's buffer size at open).
    pub period: Frames,
    /// The server's rate.
    pub rate: u32,
    /// Shared with the device.
    pub shared: Arc<Shared>,
    /// Whether the allocation counter is armed on this thread.
    pub armed: bool,
    /// The priority and CPU this thread last tried to take.
    pub raised: (i32, Option<usize>),
}

impl jack::ProcessHandler for Process {
    /// Runs on: JACK's process thread, once per cycle. Must not: allocate, lock, block,
    /// log; it runs izyrt's period closure (`Lend::serve`) under the same rules.
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
        let cpu = sh.cpu.get();
        if (priority, cpu) != self.raised {
            // Once per start, outside steady state: this thread carries izyrt's audio now
            // and must not wait behind izyrt's own network threads (JACK gives its clients
            // a priority below the server's, often below those); and it goes where the
            // user put izyrt's RT thread (`--cpu`), since the work is done here.
            self.raised = (priority, cpu);
            if priority > 0 {
                raise_to_fifo(priority);
            }
            if let Some(cpu) = cpu {
                let _ = pin_current_thread(cpu);
            }
            sh.counters
                .device_thread_priority
                .store(realtime_priority().unwrap_or(0), Ordering::Relaxed);
            sh.counters.device_thread_cpu.set(pinned_cpu());
        }
        let served = if ps.n_frames() != self.period {
            // A buffer-size change the notification has not reported yet.
            sh.stop.set(NEW_PERIOD, ps.n_frames(), &sh.lend);
            Served::Closed
        } else {
            interleave(&self.inputs, ps, &mut self.capture);
            self.playback.fill(0.0);
            let late = frames_ns(u64::from(ps.frames_since_cycle_start()), self.rate);
            let served = sh.lend.serve(&self.capture, &mut self.playback, late);
            if served == Served::Done {
                DeviceCounters::bump(&sh.counters.cycles);
                sh.counters
                    .last_wakeup_late_ns
                    .store(late, Ordering::Relaxed);
            }
            served
        };
        if served == Served::Done {
            deinterleave(&self.playback, &mut self.outputs, ps);
        } else {
            for port in &mut self.outputs {
                port.as_mut_slice(ps).fill(0.0);
            }
            if served == Served::Idle && sh.running.load(Ordering::Acquire) {
                // izyrt's thread had not lent its period again: neither captured nor
                // played.
                DeviceCounters::bump(&sh.counters.xruns);
                sh.counters.lose(u64::from(self.period));
            }
        }
        sh.allocations
            .store(thread_allocations(), Ordering::Relaxed);
        Control::Continue
    }

    fn buffer_size(&mut self, _: &Client, size: Frames) -> Control {
        if size != self.period {
            let sh = &*self.shared;
            sh.stop.set(NEW_PERIOD, size, &sh.lend);
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
    /// Runs on: a JACK thread (the process or the notification thread), once, as libjack
    /// ends it. Must not: allocate, lock, block.
    unsafe fn shutdown(&mut self, _: ClientStatus, _: &str) {
        // Before the wake: izyrt's RT thread then closes the client, which cancels this
        // thread (`cancel`).
        cancel::leaving();
        let sh = &*self.shared;
        sh.stop.set(SHUT_DOWN, 0, &sh.lend);
    }

    /// Runs on: JACK's notification thread. Must not: allocate, lock, block.
    fn sample_rate(&mut self, _: &Client, rate: Frames) -> Control {
        if rate != self.rate {
            let sh = &*self.shared;
            sh.stop.set(NEW_RATE, rate, &sh.lend);
        }
        Control::Continue
    }
}
