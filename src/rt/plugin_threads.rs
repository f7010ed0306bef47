//! izyrt's RT threads on a device whose plugin runs realtime threads of its own in this
//! process (main thread, once, before the RT thread starts).
//!
//! Design: the ALSA `jack` PCM is fed by JACK's process thread for each of the plugin's
//! clients, started inside izyrt's process when the PCM is prepared: every JACK cycle it
//! copies between the server's ports and the ring that izyrt's audio thread reads, then
//! wakes that thread. izyrt's period cannot start before the copy, so a higher priority
//! gains izyrt nothing there and only lets its audio thread (and its net threads, then ten
//! below it) preempt the copy, which the server then logs as a client that did not
//! finish its cycle. jackd runs its clients five below itself (65 under `-P 70`), below
//! izyrt's default 80 and its net threads' 70. Measured on this project's 2-core VM at
//! 32-frame periods, hub and peer each on the PCM, 40 s windows in alternating rounds
//! (`benches/RESULTS.md`): the servers logged a median of 41 such xruns per window with
//! izyrt at 80/70 and 28 with izyrt at 60/50, below JACK's clients, in 5 of 6 pairs fewer.
//! So on such a device izyrt's audio thread goes one below the lowest realtime priority
//! among the threads izyrt did not start, and its net threads one above it ([`net_priority`]
//! says why). Its own are told apart by thread id, registered as
//! [`crate::rt::thread::spawn`] starts them ([`OwnThread`]), not by name: a plugin's
//! threads inherit the name of the thread that created them, which is the executable's
//! name, and an izyrt installed as `izyrt-1.2` (or a copy named `izyrt-head`, as
//! `scripts/compare` ran its second build) would have passed every plugin thread off as
//! its own, so that it stayed at 80/70 above them. A native `jack:` device
//! is the other case: JACK's thread carries izyrt's period there and is raised to it
//! instead (`device/jack`). A plain `hw:` device has no such threads and nothing changes.

use crate::device::Obtained;
#[cfg(target_os = "linux")]
use crate::rt::promote::realtime_priority_of;
use crate::rt::thread::RtOptions;

/// `opts` for the RT thread of a device opened as `obtained`: unchanged, unless the device
/// goes through a sound server's plugin that runs realtime threads in this process at or
/// below `opts.priority`; then one below the lowest of those (at least 1), and that
/// lowest priority as the second value.
///
/// # Example
/// ```
/// use izyrt::device::{Obtained, SampleFormat};
/// use izyrt::rt::plugin_threads::below_plugin_threads;
/// use izyrt::rt::thread::RtOptions;
/// let direct = Obtained {
///     name: "hw:1,0".into(), rate: 48_000, capture_channels: 2, playback_channels: 2,
///     period_frames: 64, buffer_frames: 128, format: SampleFormat::S32, sound_server: None,
/// };
/// let (opts, below) = below_plugin_threads(&RtOptions::default(), &direct);
/// assert_eq!((opts.priority, below), (RtOptions::default().priority, None));
/// ```
pub fn below_plugin_threads(opts: &RtOptions, obtained: &Obtained) -> (RtOptions, Option<u8>) {
    if obtained.sound_server.is_none() {
        return (opts.clone(), None);
    }
    below(opts, lowest_foreign_rt_priority())
}

/// The priority of the net threads that serve an RT thread asked to run at `requested`
/// whose device's plugin threads run at `below_plugin` ([`below_plugin_threads`]'s second
/// value): ten below `requested` (as [`crate::rt::thread::net_thread_options`] makes it),
/// and on a plugin's device one above the plugin's threads when that is lower.
///
/// Why above the plugin's threads, and so above izyrt's own audio thread there: ten below
/// the lowered audio thread (54 under `jackd -P 70`) every realtime thread of both JACK
/// servers, their clients and izyrt's audio threads preempted the net threads, so each of
/// the four hops of the round trip (the peer's send, the hub's receive and send, the peer's
/// receive) waited for whatever ran; the hub's input and the peer's speaker then held that
/// wait as latency. A net thread's work per wake is short (a packet in or out), so above
/// the copy it delays the copy by microseconds, where the audio thread above it made the
/// servers log late clients. Measured side by side at 32-frame periods, hub and peer on the
/// PCM, 8 alternating pairs (`benches/RESULTS.md`): round trip 260.3 frames against 301.3
/// (medians), lower in 6 pairs; the servers' xruns alike (124 against 130). Never above
/// ten below `requested`: a `--priority` chosen low keeps its net threads low.
///
/// # Example
/// ```
/// use izyrt::rt::plugin_threads::net_priority;
/// assert_eq!(net_priority(80, None), 70); // a hw: device
/// assert_eq!(net_priority(80, Some(65)), 66); // the ALSA jack PCM under `jackd -P 70`
/// assert_eq!(net_priority(70, Some(65)), 60); // never above ten below --priority
/// ```
pub fn net_priority(requested: u8, below_plugin: Option<u8>) -> u8 {
    let usual = requested.saturating_sub(10).max(1);
    match below_plugin {
        Some(floor) => usual.min(floor.saturating_add(1)),
        None => usual,
    }
}

/// `opts` one below `floor` when `floor` is at or below its priority (at least 1).
fn below(opts: &RtOptions, floor: Option<u8>) -> (RtOptions, Option<u8>) {
    match floor {
        Some(floor) if floor <= opts.priority => (
            RtOptions {
                priority: floor.saturating_sub(1).max(1),
                ..opts.clone()
            },
            Some(floor),
        ),
        _ => (opts.clone(), None),
    }
}

/// The thread ids of the threads [`crate::rt::thread::spawn`] started and that still run.
#[cfg(target_os = "linux")]
static OWN: std::sync::Mutex<Vec<libc::pid_t>> = std::sync::Mutex::new(Vec::new());

/// The calling thread counted as izyrt's own (not a plugin's) until this is dropped.
/// Taken by [`crate::rt::thread::spawn`] as the thread starts, before it runs realtime.
///
/// Runs on: the new thread, once as it starts and once as it ends. Must not: be taken
/// in a period (it locks and allocates).
///
/// # Example
/// ```
/// let own = izyrt::rt::plugin_threads::OwnThread::register();
/// drop(own); // the thread is no longer counted as izyrt's
/// ```
#[derive(Debug)]
pub struct OwnThread {
    #[cfg(target_os = "linux")]
    tid: libc::pid_t,
}

impl OwnThread {
    /// Registers the calling thread.
    pub fn register() -> OwnThread {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            OWN.lock().unwrap_or_else(|e| e.into_inner()).push(tid);
            OwnThread { tid }
        }
        #[cfg(not(target_os = "linux"))]
        OwnThread {}
    }
}

impl Drop for OwnThread {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        {
            let mut own = OWN.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = own.iter().position(|&t| t == self.tid) {
                own.swap_remove(i);
            }
        }
    }
}

/// The lowest `SCHED_FIFO`/`SCHED_RR` priority among this process's threads that izyrt
/// did not start (a plugin's), `None` when none runs realtime.
fn lowest_foreign_rt_priority() -> Option<u8> {
    foreign_rt_threads().into_iter().map(|(_, p)| p).min()
}

/// This process's realtime threads that izyrt did not start: thread id and priority.
#[cfg(target_os = "linux")]
fn foreign_rt_threads() -> Vec<(libc::pid_t, u8)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let own = OWN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    tasks
        .filter_map(|t| {
            let tid: libc::pid_t = t.ok()?.file_name().to_str()?.parse().ok()?;
            if own.contains(&tid) {
                return None;
            }
            let p = realtime_priority_of(tid).and_then(|p| u8::try_from(p).ok())?;
            (p > 0).then_some((tid, p))
        })
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn foreign_rt_threads() -> Vec<(i32, u8)> {
    Vec::new()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::rt::promote::raise_to_fifo;
    use crate::rt::thread::RtOptions;

    #[test]
    fn izyrt_goes_one_below_a_plugin_thread_at_or_below_it_and_never_up() {
        let at = |priority| RtOptions {
            priority,
            ..RtOptions::default()
        };
        assert_eq!(below(&at(80), Some(65)).0.priority, 64);
        assert_eq!(below(&at(80), Some(65)).1, Some(65));
        assert_eq!(below(&at(65), Some(65)).0.priority, 64);
        assert_eq!(below(&at(40), Some(65)), (at(40), None));
        assert_eq!(below(&at(80), None), (at(80), None));
        assert_eq!(below(&at(80), Some(1)).0.priority, 1);
    }

    #[test]
    fn net_threads_go_one_above_a_plugin_but_never_above_ten_below_the_request() {
        assert_eq!(net_priority(80, None), 70);
        assert_eq!(net_priority(80, Some(65)), 66);
        assert_eq!(net_priority(80, Some(20)), 21);
        assert_eq!(net_priority(70, Some(65)), 60);
        assert_eq!(net_priority(5, None), 1);
        assert_eq!(net_priority(99, Some(99)), 89);
    }

    #[test]
    fn a_realtime_thread_not_named_izyrt_is_seen() {
        // A stand-in for a plugin's thread: realtime at 65, not named izyrt-….
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let plugin = std::thread::Builder::new()
            .name("plugin".into())
            .spawn(move || {
                ready_tx.send(raise_to_fifo(65)).unwrap();
                let _ = done_rx.recv();
            })
            .unwrap();
        let raised = ready_rx.recv().unwrap();
        let seen = lowest_foreign_rt_priority();
        done_tx.send(()).unwrap();
        plugin.join().unwrap();
        if raised {
            // Other tests' threads may run realtime lower still.
            assert!(seen.is_some_and(|p| p <= 65), "{seen:?}");
        }
    }

    /// A thread's name says nothing: a plugin's threads carry the executable's name
    /// (`izyrt-head` for a copy of the binary), and izyrt's own threads are known by id.
    #[test]
    fn own_threads_are_known_by_id_not_by_name() {
        let tid = || unsafe { libc::gettid() };
        // A plugin's thread named as a copy of the binary would name it.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let plugin = std::thread::Builder::new()
            .name("izyrt-head".into())
            .spawn(move || {
                ready_tx.send((tid(), raise_to_fifo(65))).unwrap();
                let _ = done_rx.recv();
            })
            .unwrap();
        // One of izyrt's own, whatever its name.
        let opts = RtOptions {
            name: "mixer".into(),
            priority: 66,
            lock_memory: false,
            ..RtOptions::default()
        };
        let (own_tx, own_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let own = crate::rt::thread::spawn(&opts, move || {
            own_tx.send(tid()).unwrap();
            let _ = stop_rx.recv();
        })
        .unwrap();
        let own_realtime = own.report().policy.is_realtime();
        let (plugin_tid, raised) = ready_rx.recv().unwrap();
        let own_tid = own_rx.recv().unwrap();
        let foreign = foreign_rt_threads();
        done_tx.send(()).unwrap();
        stop_tx.send(()).unwrap();
        plugin.join().unwrap();
        own.join().unwrap();
        if raised {
            assert!(foreign.contains(&(plugin_tid, 65)), "{foreign:?}");
        }
        if own_realtime {
            assert!(foreign.iter().all(|&(t, _)| t != own_tid), "{foreign:?}");
        }
        // Gone when it ended.
        assert!(!OWN.lock().unwrap().contains(&own_tid));
    }
}
