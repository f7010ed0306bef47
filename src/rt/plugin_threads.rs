//! izyrt's RT threads on a device whose plugin runs realtime threads of its own in this
//! process (main thread, once, before the RT thread starts).
//!
//! Design: the ALSA `jack` PCM is fed by JACK's process thread for each of the plugin's
//! clients, started inside izyrt's process when the PCM is prepared: every JACK cycle it
//! copies between the server's ports and the ring that izyrt's audio thread reads, then
//! wakes that thread. izyrt's period cannot start before the copy, so a higher priority
//! gains izyrt nothing there and only lets its threads (the audio thread, the net threads
//! ten below it) preempt the copy, which the server then logs as a client that did not
//! finish its cycle. jackd runs its clients five below itself (65 under `-P 70`), below
//! izyrt's default 80 and its net threads' 70. Measured on this project's 2-core VM at
//! 32-frame periods, hub and peer each on the PCM, 40 s windows in alternating rounds
//! (`benches/RESULTS.md`): the servers logged a median of 41 such xruns per window with
//! izyrt at 80/70 and 28 with izyrt at 60/50, below JACK's clients, in 5 of 6 pairs fewer.
//! So on such a device izyrt's threads go one below the lowest realtime priority among
//! the threads izyrt did not start (its own are named `izyrt-…`). A native `jack:` device
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

/// The lowest `SCHED_FIFO`/`SCHED_RR` priority among this process's threads not named
/// `izyrt-…` (a plugin's), `None` when none runs realtime.
#[cfg(target_os = "linux")]
fn lowest_foreign_rt_priority() -> Option<u8> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            if comm.starts_with("izyrt-") {
                return None;
            }
            let tid: libc::pid_t = t.file_name().to_str()?.parse().ok()?;
            realtime_priority_of(tid).and_then(|p| u8::try_from(p).ok().filter(|&p| p > 0))
        })
        .min()
}

#[cfg(not(target_os = "linux"))]
fn lowest_foreign_rt_priority() -> Option<u8> {
    None
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
}
