//! ALSA devices: any PCM name, `hw:CARD,DEV` first (Linux only).
//!
//! # Design
//!
//! **One thread, one wait, one period.** An [`AlsaDevice`] is owned by one RT thread
//! which calls [`Device::cycle`] in a loop. Each cycle blocks in `poll(2)` until capture
//! holds a period and playback has room for one, reads, converts to f32, calls the
//! engine's `process`, converts back and writes. This is JACK's model rather than
//! cpal's callback thread: the engine keeps control of its thread (priority, pinning,
//! wakeup-latency histogram) and the device is just the thing it blocks on.
//!
//! **Nonblocking PCMs and our own poll.** PCMs are opened `SND_PCM_NONBLOCK` and never
//! block inside alsa-lib; the only blocking call is our `poll` on descriptors fetched at
//! open into a preallocated array, with a timeout so a dead clock surfaces as an error
//! instead of a hung RT thread. `avail_min` is one period and the start threshold is
//! "never", so wakeups are exactly the period boundaries and starting is explicit.
//!
//! **Nothing allocated in steady state.** The native-format buffer, the f32 buffers and
//! the pollfds are sized at open; transfers go through the `alsa` crate's untyped byte I/O
//! (its typed handles query the hardware parameters, which mallocs); errors are reduced to
//! a `Copy` fault and only turned into a [`DeviceError`] (with strings) when a cycle gives
//! up. The tests run `cycle` under a counting allocator to keep this true. What this
//! module cannot promise is what alsa-lib's plugins do inside: `hw` PCMs are plain
//! ioctls, while plugin PCMs (JACK, dmix, plug…) take alsa-lib's per-PCM mutex
//! (uncontended, only this thread uses the PCM) and may do more, which is one reason
//! [`Obtained::sound_server`] warns about them.
//!
//! **Negotiation.** Rate and channels are exact or refused with the device's ranges in
//! the message; period size and count are set near and reported; formats are tried as
//! f32, s32, s24, s24_3, s16 (override with [`OpenOptions::formats`]). A duplex stream
//! opens playback, then capture of the same name, gives capture the playback period and
//! links the two (`snd_pcm_link`) so one start, one clock and one xrun serve both;
//! plugins that cannot link run unlinked and the poll loop waits for both sides.
//!
//! **Faults.** Xruns and suspends are recovered inside `cycle` (drop, prepare, prefill,
//! start) and counted in [`DeviceCounters`]. The stream time a fault skipped is counted
//! too ([`DeviceCounters::lost_frames`]): ALSA cannot say how many frames a restart threw
//! away, so it is the time from the end of the last period read to the restart, in whole
//! periods (the restarted stream's first period comes one period later, as it would have
//! without the fault), so the metrics say how much audio a glitch cost, not only that it
//! happened. An unplugged device becomes
//! [`DeviceError::Gone`]; [`Device::reopen`] opens the same name with the same
//! configuration again.
//!
//! **What is refused.** alsa-lib's `null` PCM (and a `file` PCM writing over `null`)
//! accepts audio instantly and would make an RT loop spin at 100% CPU, so it is refused
//! unless [`OpenOptions::allow_unpaced`] is set, which only functional tests should do.
//! Everything that is not a plain card is flagged in [`Obtained::sound_server`]: the
//! plugin chain is read from `snd_pcm_dump`, because the PCM name alone cannot tell
//! `default` on a card from `default` through PulseAudio.

mod chain;
mod negotiate;
mod probe;
mod recover;
mod streams;
mod suggest;
mod transfer;
mod wait;

use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use chain::{Layer, PcmChain, sound_server_by_name};
pub use probe::{Card, CardDevice, HintedPcm, Listing, StreamCaps, StreamProbe, first_hw, list};

use self::recover::Fault;
use self::streams::Streams;
use super::{Device, DeviceCounters, DeviceError, Direction, Obtained, SampleFormat, StreamConfig};
use crate::rt::clock::{frames_ns, now_ns};

/// How many faults in a row one cycle recovers before giving up.
const MAX_RECOVERIES_PER_CYCLE: u32 = 8;

/// Choices beyond [`StreamConfig`] for [`AlsaDevice::open_with`].
///
/// # Example
/// ```
/// use izyrt::device::SampleFormat;
/// use izyrt::device::alsa::OpenOptions;
/// let opts = OpenOptions { formats: vec![SampleFormat::S16], ..OpenOptions::default() };
/// assert!(!opts.allow_unpaced);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Native formats to try, in order; empty means f32, s32, s24, s24_3, s16.
    pub formats: Vec<SampleFormat>,
    /// **Test only.** Accept a PCM that does not pace time (alsa-lib's `null`, or `file`
    /// over `null`) and make [`Device::cycle`] transfer without waiting, so functional
    /// tests can push audio through the conversion and transfer path as fast as the CPU
    /// goes. Never set this for a device an RT thread drives: it would spin.
    pub allow_unpaced: bool,
}

/// An ALSA PCM (capture, playback or linked duplex) driven by one RT thread.
///
/// # Example
/// ```no_run
/// use izyrt::device::{Device, Direction, StreamConfig};
/// use izyrt::device::alsa::AlsaDevice;
///
/// let mut dev = AlsaDevice::open("hw:1,0", Direction::Duplex, StreamConfig::default())?;
/// let got = dev.obtained();
/// println!("{} frames x {} periods, {:?}", got.period_frames,
///          got.buffer_frames / got.period_frames, got.format);
/// if let Some(why) = &got.sound_server { eprintln!("warning: {why}"); }
/// dev.start()?;
/// for _ in 0..48_000 / 64 {
///     // Loop the input back to the output.
///     dev.cycle(&mut |input, output| output.copy_from_slice(input))?;
/// }
/// dev.stop();
/// # Ok::<(), izyrt::device::DeviceError>(())
/// ```
pub struct AlsaDevice {
    dir: Direction,
    cfg: StreamConfig,
    opts: OpenOptions,
    obtained: Obtained,
    counters: Arc<DeviceCounters>,
    io: Streams,
    running: bool,
    /// Monotonic ns when the last period was read (or the stream started).
    last_read_ns: u64,
}

impl std::fmt::Debug for AlsaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlsaDevice")
            .field("obtained", &self.obtained)
            .field("dir", &self.dir)
            .field("linked", &self.io.linked)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl AlsaDevice {
    /// Opens the ALSA PCM `name` (`hw:CARD,DEV`, `plughw:…`, `default`, a name from the
    /// ALSA configuration…) for `dir` with the default [`OpenOptions`].
    ///
    /// # Errors
    /// [`DeviceError::Open`] naming what the device refused (rate, channels, formats, with
    /// its ranges), when it is busy or missing, or when it does not pace time (`null`);
    /// [`DeviceError::BadSpec`] for a name ALSA cannot take.
    pub fn open(name: &str, dir: Direction, cfg: StreamConfig) -> Result<AlsaDevice, DeviceError> {
        Self::open_with(name, dir, cfg, OpenOptions::default())
    }

    /// [`AlsaDevice::open`] with explicit options.
    ///
    /// # Errors
    /// As [`AlsaDevice::open`].
    ///
    /// # Example
    /// ```no_run
    /// use izyrt::device::{Direction, SampleFormat, StreamConfig};
    /// use izyrt::device::alsa::{AlsaDevice, OpenOptions};
    /// // Insist on 16-bit samples.
    /// let opts = OpenOptions { formats: vec![SampleFormat::S16], ..OpenOptions::default() };
    /// let dev = AlsaDevice::open_with("hw:0,0", Direction::Playback, StreamConfig::default(), opts)?;
    /// # Ok::<(), izyrt::device::DeviceError>(())
    /// ```
    pub fn open_with(
        name: &str,
        dir: Direction,
        cfg: StreamConfig,
        opts: OpenOptions,
    ) -> Result<AlsaDevice, DeviceError> {
        let n = Streams::open(name, dir, &cfg, &opts).map_err(suggest::on_first_open)?;
        let obtained = obtained(name, dir, &cfg, &n);
        Ok(AlsaDevice {
            dir,
            cfg,
            opts,
            obtained,
            counters: Arc::new(DeviceCounters::default()),
            io: n.streams,
            running: false,
            last_read_ns: 0,
        })
    }

    /// True when capture and playback are linked with `snd_pcm_link` (duplex on a device
    /// that supports it); false for a single direction or a plugin that cannot link.
    pub fn is_linked(&self) -> bool {
        self.io.linked
    }

    /// Turns a fault that recovery could not handle into the caller's error (cold path).
    #[cold]
    fn give_up(&mut self, fault: Fault) -> DeviceError {
        self.running = false;
        fault.into_error(&self.obtained.name)
    }

    /// Recovers from `fault`, counting it and the stream time it skipped; `Err` when the
    /// device is beyond recovery.
    fn recover(&mut self, fault: Fault) -> Result<(), DeviceError> {
        match fault {
            Fault::Xrun => DeviceCounters::bump(&self.counters.xruns),
            Fault::Suspended => DeviceCounters::bump(&self.counters.suspends),
            _ => {}
        }
        match self.io.recover(fault) {
            Ok(()) => {
                let now = now_ns();
                let lost = lost_frames(
                    now.saturating_sub(self.last_read_ns),
                    self.io.rate,
                    self.obtained.period_frames,
                );
                self.counters.lose(lost);
                self.last_read_ns = now;
                Ok(())
            }
            Err(f) => Err(self.give_up(f)),
        }
    }
}

/// The stream time a restart `elapsed_ns` after the last period read skipped, in whole
/// `period`s at `rate` (rounded to the nearest: a restart right after a read lost nothing).
fn lost_frames(elapsed_ns: u64, rate: u32, period: u32) -> u64 {
    let period_ns = frames_ns(u64::from(period), rate.max(1)).max(1);
    (elapsed_ns + period_ns / 2) / period_ns * u64::from(period)
}

fn obtained(name: &str, dir: Direction, cfg: &StreamConfig, n: &streams::Negotiated) -> Obtained {
    Obtained {
        name: name.to_string(),
        rate: cfg.rate,
        capture_channels: if dir.captures() { cfg.channels } else { 0 },
        playback_channels: if dir.plays() { cfg.channels } else { 0 },
        period_frames: n.period,
        buffer_frames: n.buffer,
        format: n.format,
        sound_server: n.sound_server.clone(),
    }
}

impl Device for AlsaDevice {
    fn obtained(&self) -> &Obtained {
        &self.obtained
    }

    fn counters(&self) -> Arc<DeviceCounters> {
        Arc::clone(&self.counters)
    }

    fn start(&mut self) -> Result<(), DeviceError> {
        if self.running {
            return Ok(());
        }
        if self.io.is_closed() {
            return Err(DeviceError::Gone {
                name: self.obtained.name.clone(),
            });
        }
        match self.io.prepare_and_start() {
            Ok(()) => {
                self.running = true;
                self.last_read_ns = now_ns();
                Ok(())
            }
            Err(f) => Err(self.give_up(f)),
        }
    }

    /// Waits for one period with `poll`, reads capture, calls `process`, writes playback.
    ///
    /// Returns the wakeup's lateness in ns (frames available beyond one period), or `None`
    /// in unpaced test mode. Xruns and suspends are recovered here and counted; recovery
    /// restarts the stream with silence, so the period being processed may be lost.
    fn cycle(
        &mut self,
        process: &mut (dyn FnMut(&[f32], &mut [f32]) + Send),
    ) -> Result<Option<u64>, DeviceError> {
        if !self.running {
            return Err(self.not_running());
        }
        let mut faults = 0;
        let late = loop {
            let step = if self.io.paced {
                self.io.wait_period().map(Some)
            } else {
                Ok(None)
            };
            match step.and_then(|late| self.io.read_period().map(|()| late)) {
                Ok(late) => {
                    self.last_read_ns = now_ns();
                    break late;
                }
                Err(f) => {
                    faults += 1;
                    if faults > MAX_RECOVERIES_PER_CYCLE {
                        return Err(self.give_up(f));
                    }
                    self.recover(f)?;
                }
            }
        };
        let (input, output) = self.io.buffers();
        output.fill(0.0);
        process(input, output);
        if let Err(f) = self.io.write_period() {
            self.recover(f)?;
        }
        DeviceCounters::bump(&self.counters.cycles);
        let late_ns = late.map(|frames| frames_ns(frames as u64, self.io.rate));
        if let Some(ns) = late_ns {
            self.counters
                .last_wakeup_late_ns
                .store(ns, Ordering::Relaxed);
        }
        Ok(late_ns)
    }

    fn stop(&mut self) {
        for s in [&self.io.capture, &self.io.playback].into_iter().flatten() {
            let _ = s.pcm.drop();
        }
        self.running = false;
    }

    /// Closes whatever is left of the device, then opens the same name with the same
    /// configuration and options. Counts a reopen on success; on failure the error says
    /// why (typically [`DeviceError::Open`] with "no such …" while it is unplugged) and
    /// the device stays closed ([`Device::cycle`] and [`Device::start`] return
    /// [`DeviceError::Gone`]).
    fn reopen(&mut self) -> Result<(), DeviceError> {
        self.running = false;
        // Close first: a hw PCM can be open only once.
        self.io = Streams::closed();
        let n = Streams::open(&self.obtained.name, self.dir, &self.cfg, &self.opts)?;
        self.obtained = obtained(&self.obtained.name, self.dir, &self.cfg, &n);
        self.io = n.streams;
        DeviceCounters::bump(&self.counters.reopens);
        Ok(())
    }
}

impl AlsaDevice {
    #[cold]
    fn not_running(&self) -> DeviceError {
        if self.io.is_closed() {
            DeviceError::Gone {
                name: self.obtained.name.clone(),
            }
        } else {
            DeviceError::not_running(&self.obtained.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lost_frames;

    #[test]
    fn lost_time_is_whole_periods_to_the_nearest() {
        // 64 frames at 48 kHz: 1.333 ms per period.
        assert_eq!(lost_frames(0, 48_000, 64), 0);
        assert_eq!(lost_frames(600_000, 48_000, 64), 0);
        assert_eq!(lost_frames(700_000, 48_000, 64), 64);
        assert_eq!(lost_frames(20_000_000, 48_000, 64), 15 * 64);
        assert_eq!(lost_frames(1_000_000_000, 48_000, 64), 750 * 64);
        // Degenerate inputs do not divide by zero.
        assert_eq!(lost_frames(5, 0, 1), 0);
    }
}
