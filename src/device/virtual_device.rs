//! The `virtual` device: a sound card made of a clock (RT audio thread).
//!
//! Design: it is the hub's default clock and what every test and bench runs on, so it
//! must behave like a good sound card and be exactly predictable. It is paced by
//! [`PeriodClock`]: period `n` is delivered at `start + n · period` exactly, so it never
//! drifts from the nominal rate unless a skew is configured, and two instances with
//! different skews drift apart exactly as two real cards would.
//!
//! Like a card, it has a buffer of `periods` periods. When the thread wakes so late that
//! the buffer would have overrun (at least `periods − 1` periods late), it counts an xrun
//! and drops the missed periods instead of delivering a burst: the clock skips to the
//! current period on the same grid and the stream position jumps with it, so the signal
//! stays aligned with stream time, as after a real card's recovery.
//!
//! Capture produces a test signal from the stream frame index: silence; a −12 dBFS sine
//! whose phase is kept in f64 cycles and wrapped every frame, so it stays continuous
//! across periods and accurate over hours; or a full-scale click on every channel at each
//! stream frame that is a multiple of the rate (one per second), so a round trip can be
//! measured to the frame. Playback is metered (peak, RMS, clipping, silence) into a
//! [`MeterLevels`] other threads read. Everything is allocated in [`VirtualDevice::open`];
//! `start`, `cycle` and `stop` allocate nothing (errors excepted, which leave steady state).

use std::f64::consts::TAU;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{
    Device, DeviceCounters, DeviceError, Direction, Obtained, SampleFormat, Signal, StreamConfig,
    VirtualOptions,
};
use crate::dsp::meter::{Meter, MeterConfig, MeterLevels, dbfs_to_amplitude};
use crate::rt::clock::PeriodClock;

/// Level of the test tone, dBFS.
pub const TONE_DBFS: f32 = -12.0;

/// The test-signal generator (capture side).
#[derive(Debug, Clone)]
enum SignalGen {
    Silence,
    Tone {
        /// Phase in cycles, in [0, 1).
        phase: f64,
        /// Cycles per frame.
        step: f64,
        amplitude: f64,
    },
    Impulse {
        rate: u64,
    },
}

impl SignalGen {
    fn new(signal: Signal, rate: u32) -> Self {
        match signal {
            Signal::Silence => SignalGen::Silence,
            Signal::Tone(hz) => SignalGen::Tone {
                phase: 0.0,
                step: f64::from(hz) / f64::from(rate),
                amplitude: f64::from(dbfs_to_amplitude(TONE_DBFS)),
            },
            Signal::Impulse => SignalGen::Impulse {
                rate: u64::from(rate),
            },
        }
    }

    /// Back to stream frame 0.
    fn restart(&mut self) {
        if let SignalGen::Tone { phase, .. } = self {
            *phase = 0.0;
        }
    }

    /// Advances over `frames` frames that are not delivered (after an xrun).
    fn skip(&mut self, frames: u64) {
        if let SignalGen::Tone { phase, step, .. } = self {
            *phase = (*phase + (frames as f64 * *step).fract()).fract();
        }
    }

    /// Fills interleaved `buf` with the frames starting at stream frame `first`.
    fn fill(&mut self, buf: &mut [f32], channels: usize, first: u64) {
        match self {
            SignalGen::Silence => buf.fill(0.0),
            SignalGen::Tone {
                phase,
                step,
                amplitude,
            } => {
                for frame in buf.chunks_exact_mut(channels) {
                    frame.fill((*amplitude * (TAU * *phase).sin()) as f32);
                    *phase += *step;
                    if *phase >= 1.0 {
                        *phase -= 1.0;
                    }
                }
            }
            SignalGen::Impulse { rate } => {
                buf.fill(0.0);
                let frames = (buf.len() / channels) as u64;
                let mut click = first.div_ceil(*rate) * *rate;
                while click < first + frames {
                    let at = (click - first) as usize * channels;
                    buf[at..at + channels].fill(1.0);
                    click += *rate;
                }
            }
        }
    }
}

/// The `virtual` device: capture produces a test signal, playback is metered, and both
/// are paced by an absolute-time clock.
///
/// # Example
/// ```
/// use izyrt::device::{Device, Direction, Signal, StreamConfig, VirtualDevice, VirtualOptions};
/// let opts = VirtualOptions { signal: Signal::Tone(1_000.0), skew_ppm: 0.0 };
/// let mut dev = VirtualDevice::open(opts, Direction::Duplex, StreamConfig::default())?;
/// let levels = dev.playback_levels().unwrap(); // read from any thread
/// dev.start()?;
/// for _ in 0..40 {
///     // ~1.33 ms per period: loop the tone back to playback
///     dev.cycle(&mut |capture, playback| playback.copy_from_slice(capture))?;
/// }
/// dev.stop();
/// assert!((levels.peak_dbfs() + 12.0).abs() < 0.1);
/// assert_eq!(dev.obtained().buffer_frames, 128);
/// # Ok::<(), izyrt::device::DeviceError>(())
/// ```
#[derive(Debug)]
pub struct VirtualDevice {
    obtained: Obtained,
    counters: Arc<DeviceCounters>,
    clock: PeriodClock,
    signal: SignalGen,
    channels: usize,
    period_frames: u64,
    periods: u64,
    capture: Box<[f32]>,
    playback: Box<[f32]>,
    meter: Option<Meter>,
    xrun_late_ns: u64,
    /// Stream frame index of the next period.
    frame: u64,
    running: bool,
}

impl VirtualDevice {
    /// Opens a virtual device with `opts` for `dir` at `cfg`.
    ///
    /// # Errors
    /// [`DeviceError::BadConfig`] when `cfg` is out of range (see
    /// [`StreamConfig::validate`]); [`DeviceError::BadSpec`] when the tone is not below
    /// the Nyquist frequency or the skew is out of range.
    pub fn open(
        opts: VirtualOptions,
        dir: Direction,
        cfg: StreamConfig,
    ) -> Result<VirtualDevice, DeviceError> {
        cfg.validate()?;
        let name = spec_string(&opts);
        if let Signal::Tone(hz) = opts.signal {
            if !(hz > 0.0 && f64::from(hz) < f64::from(cfg.rate) / 2.0) {
                return Err(DeviceError::BadSpec {
                    spec: name,
                    reason: format!(
                        "tone={hz} Hz must be between 0 and {} Hz (half the {} Hz rate)",
                        cfg.rate / 2,
                        cfg.rate
                    ),
                });
            }
        }
        let clock = PeriodClock::new(cfg.rate, cfg.period_frames, opts.skew_ppm).map_err(|e| {
            DeviceError::BadSpec {
                spec: name.clone(),
                reason: e.to_string(),
            }
        })?;
        let channels = usize::from(cfg.channels);
        let samples = cfg.period_frames as usize * channels;
        let meter = if dir.plays() {
            let meter = Meter::new(MeterConfig {
                rate: cfg.rate,
                channels: cfg.channels,
                ..MeterConfig::default()
            })
            .map_err(|e| DeviceError::Open {
                name: name.clone(),
                reason: e.to_string(),
            })?;
            Some(meter)
        } else {
            None
        };
        let xrun_late_ns = clock.offset_ns(u64::from(cfg.periods - 1));
        Ok(VirtualDevice {
            obtained: Obtained {
                name,
                rate: cfg.rate,
                capture_channels: if dir.captures() { cfg.channels } else { 0 },
                playback_channels: if dir.plays() { cfg.channels } else { 0 },
                period_frames: cfg.period_frames,
                buffer_frames: cfg.period_frames * cfg.periods,
                format: SampleFormat::F32,
                sound_server: None,
            },
            counters: Arc::new(DeviceCounters::default()),
            clock,
            signal: SignalGen::new(opts.signal, cfg.rate),
            channels,
            period_frames: u64::from(cfg.period_frames),
            periods: u64::from(cfg.periods),
            capture: vec![0.0; if dir.captures() { samples } else { 0 }].into_boxed_slice(),
            playback: vec![0.0; if dir.plays() { samples } else { 0 }].into_boxed_slice(),
            meter,
            xrun_late_ns,
            frame: 0,
            running: false,
        })
    }

    /// The playback meter's levels (`None` without playback), readable from any thread.
    pub fn playback_levels(&self) -> Option<Arc<MeterLevels>> {
        self.meter.as_ref().map(Meter::levels)
    }

    /// Stream frame index of the next period (frames delivered plus frames dropped by
    /// xruns since [`Device::start`]).
    pub fn position(&self) -> u64 {
        self.frame
    }

    /// The clock pacing the device.
    pub fn clock(&self) -> &PeriodClock {
        &self.clock
    }
}

/// The canonical device string for `opts` (parses back to the same options).
fn spec_string(opts: &VirtualOptions) -> String {
    let mut parts = Vec::new();
    match opts.signal {
        Signal::Silence => {}
        Signal::Tone(hz) => parts.push(format!("tone={hz}")),
        Signal::Impulse => parts.push("impulse".to_string()),
    }
    if opts.skew_ppm != 0.0 {
        parts.push(format!("skew={}", opts.skew_ppm));
    }
    if parts.is_empty() {
        "virtual".into()
    } else {
        format!("virtual:{}", parts.join(","))
    }
}

impl Device for VirtualDevice {
    fn obtained(&self) -> &Obtained {
        &self.obtained
    }

    fn counters(&self) -> Arc<DeviceCounters> {
        Arc::clone(&self.counters)
    }

    fn start(&mut self) -> Result<(), DeviceError> {
        self.playback.fill(0.0);
        self.signal.restart();
        self.frame = 0;
        self.clock.start();
        self.running = true;
        Ok(())
    }

    fn cycle(
        &mut self,
        process: &mut (dyn FnMut(&[f32], &mut [f32]) + Send),
    ) -> Result<Option<u64>, DeviceError> {
        if !self.running {
            return Err(DeviceError::not_running(&self.obtained.name));
        }
        let late = self.clock.wait();
        if late >= self.xrun_late_ns && self.periods > 1 {
            // The buffer would have overrun: drop the missed periods, stay on the grid.
            let skipped = self.clock.skip_missed() * self.period_frames;
            self.frame += skipped;
            self.signal.skip(skipped);
            DeviceCounters::bump(&self.counters.xruns);
            self.counters.lose(skipped);
        }
        if !self.capture.is_empty() {
            self.signal
                .fill(&mut self.capture, self.channels, self.frame);
        }
        process(&self.capture, &mut self.playback);
        if let Some(meter) = &mut self.meter {
            meter.process(&self.playback);
        }
        self.frame += self.period_frames;
        DeviceCounters::bump(&self.counters.cycles);
        self.counters
            .last_wakeup_late_ns
            .store(late, Ordering::Relaxed);
        Ok(Some(late))
    }

    fn stop(&mut self) {
        self.running = false;
    }

    /// The virtual device never goes away: reopening always succeeds (and is counted in
    /// [`DeviceCounters::reopens`], as a real device does).
    fn reopen(&mut self) -> Result<(), DeviceError> {
        self.running = false;
        DeviceCounters::bump(&self.counters.reopens);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceSpec;

    fn cfg(rate: u32, channels: u16, period_frames: u32, periods: u32) -> StreamConfig {
        StreamConfig {
            rate,
            channels,
            period_frames,
            periods,
        }
    }

    fn open(signal: Signal, dir: Direction, c: StreamConfig) -> VirtualDevice {
        VirtualDevice::open(
            VirtualOptions {
                signal,
                skew_ppm: 0.0,
            },
            dir,
            c,
        )
        .unwrap()
    }

    #[test]
    fn obtained_describes_the_stream() {
        for (dir, cap, play) in [
            (Direction::Capture, 2, 0),
            (Direction::Playback, 0, 2),
            (Direction::Duplex, 2, 2),
        ] {
            let d = open(Signal::Silence, dir, cfg(48_000, 2, 64, 3));
            let o = d.obtained();
            assert_eq!((o.capture_channels, o.playback_channels), (cap, play));
            assert_eq!(
                (o.rate, o.period_frames, o.buffer_frames),
                (48_000, 64, 192)
            );
            assert_eq!(o.format, SampleFormat::F32);
            assert_eq!(o.sound_server, None);
            assert_eq!(d.playback_levels().is_some(), dir.plays());
        }
    }

    #[test]
    fn name_parses_back_to_the_options() {
        for opts in [
            VirtualOptions::default(),
            VirtualOptions {
                signal: Signal::Tone(997.5),
                skew_ppm: -150.25,
            },
            VirtualOptions {
                signal: Signal::Impulse,
                skew_ppm: 0.0,
            },
        ] {
            let d = VirtualDevice::open(opts, Direction::Capture, StreamConfig::default()).unwrap();
            let spec: DeviceSpec = d.obtained().name.parse().unwrap();
            assert_eq!(spec, DeviceSpec::Virtual(opts), "{}", d.obtained().name);
        }
    }

    #[test]
    fn rejects_tones_above_nyquist_and_bad_configs() {
        let opts = VirtualOptions {
            signal: Signal::Tone(5_000.0),
            skew_ppm: 0.0,
        };
        let e = VirtualDevice::open(opts, Direction::Capture, cfg(8_000, 1, 64, 2)).unwrap_err();
        assert!(e.to_string().contains("tone=5000"), "{e}");
        let e = VirtualDevice::open(
            VirtualOptions::default(),
            Direction::Capture,
            cfg(48_000, 2, 5_000, 2),
        )
        .unwrap_err();
        assert!(e.to_string().contains("5000"), "{e}");
    }

    #[test]
    fn tone_is_minus_12_dbfs_and_continuous_across_periods() {
        let mut whole = SignalGen::new(Signal::Tone(1_000.0), 48_000);
        let mut cut = whole.clone();
        let mut a = vec![0.0f32; 2 * 4_800];
        whole.fill(&mut a, 2, 0);
        let mut b = vec![0.0f32; 2 * 4_800];
        let mut at = 0;
        for period in b.chunks_mut(2 * 37) {
            cut.fill(period, 2, at);
            at += (period.len() / 2) as u64;
        }
        assert_eq!(a, b);
        let peak = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!((20.0 * peak.log10() + 12.0).abs() < 1e-3, "{peak}");
        // Both channels carry the same sample.
        assert!(a.chunks_exact(2).all(|f| f[0] == f[1]));
    }

    #[test]
    fn tone_phase_stays_exact_over_a_long_run() {
        // 440 Hz at 48 kHz: the exact phase at frame n is (n·440 mod 48000) / 48000.
        let mut g = SignalGen::new(Signal::Tone(440.0), 48_000);
        let mut buf = vec![0.0f32; 4_096];
        let frames: u64 = 48_000 * 60 * 5; // five minutes
        let mut n = 0;
        while n < frames {
            g.fill(&mut buf, 1, n);
            n += buf.len() as u64;
        }
        let SignalGen::Tone { phase, .. } = g else {
            unreachable!()
        };
        let exact = (n * 440 % 48_000) as f64 / 48_000.0;
        let err = (phase - exact).abs().min(1.0 - (phase - exact).abs());
        assert!(err < 1e-9, "phase error {err} cycles after {n} frames");
    }

    #[test]
    fn impulses_fall_on_multiples_of_the_rate() {
        let mut g = SignalGen::new(Signal::Impulse, 8_000);
        let mut clicks = Vec::new();
        let mut buf = vec![0.0f32; 7 * 3];
        let mut first = 0u64;
        while first < 8_000 * 3 + 7 {
            g.fill(&mut buf, 3, first);
            for (i, f) in buf.chunks_exact(3).enumerate() {
                if f[0] != 0.0 {
                    assert_eq!(f, [1.0, 1.0, 1.0]);
                    clicks.push(first + i as u64);
                } else {
                    assert_eq!(f, [0.0, 0.0, 0.0]);
                }
            }
            first += 7;
        }
        assert_eq!(clicks, [0, 8_000, 16_000, 24_000]);
    }

    #[test]
    fn skipping_keeps_the_tone_on_stream_time() {
        let mut skipped = SignalGen::new(Signal::Tone(441.0), 48_000);
        let mut played = skipped.clone();
        let mut buf = vec![0.0f32; 64];
        skipped.skip(64 * 1_000);
        for i in 0..1_000 {
            played.fill(&mut buf, 1, i * 64);
        }
        let (SignalGen::Tone { phase: a, .. }, SignalGen::Tone { phase: b, .. }) =
            (skipped, played)
        else {
            unreachable!()
        };
        assert!((a - b).abs() < 1e-9, "{a} {b}");
    }

    #[test]
    fn cycle_before_start_is_an_error() {
        let mut d = open(Signal::Silence, Direction::Capture, StreamConfig::default());
        let e = d.cycle(&mut |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("before start"), "{e}");
    }

    #[test]
    fn duplex_loopback_is_metered() {
        let mut d = open(
            Signal::Tone(1_000.0),
            Direction::Duplex,
            StreamConfig::default(),
        );
        let levels = d.playback_levels().unwrap();
        let counters = d.counters();
        d.start().unwrap();
        let mut lens = (0, 0);
        for _ in 0..80 {
            let late = d
                .cycle(&mut |c, p| {
                    lens = (c.len(), p.len());
                    p.copy_from_slice(c);
                })
                .unwrap();
            assert!(late.is_some());
        }
        d.stop();
        assert_eq!(lens, (128, 128));
        assert_eq!(counters.cycles.load(Ordering::Relaxed), 80);
        // Dropped periods (xruns on a loaded machine) included.
        assert_eq!(d.position(), 64 * d.clock().index());
        let r = levels.reading();
        assert!(r.windows >= 1);
        assert!((r.peak_dbfs + 12.0).abs() < 0.05, "{r:?}");
        assert!((r.rms_dbfs + 15.01).abs() < 0.05, "{r:?}");
        assert_eq!(r.clipped, 0);
    }

    #[test]
    fn capture_and_playback_only_get_empty_slices_for_the_other_side() {
        let mut c = open(Signal::Impulse, Direction::Capture, StreamConfig::default());
        // A first wakeup late on a loaded machine would skip the period with the click.
        c.xrun_late_ns = u64::MAX;
        c.start().unwrap();
        c.cycle(&mut |cap, play| {
            assert_eq!((cap.len(), play.len()), (128, 0));
            // Stream frame 0 carries a click.
            assert_eq!(&cap[..2], [1.0, 1.0]);
        })
        .unwrap();
        let mut p = open(
            Signal::Impulse,
            Direction::Playback,
            StreamConfig::default(),
        );
        p.start().unwrap();
        p.cycle(&mut |cap, play| {
            assert_eq!((cap.len(), play.len()), (0, 128));
            play.fill(1.0);
        })
        .unwrap();
        // Full-scale playback counts as clipping.
        assert_eq!(p.playback_levels().unwrap().clipped(), 128);
    }

    #[test]
    fn a_late_wakeup_is_an_xrun_that_keeps_stream_time() {
        let mut d = open(Signal::Impulse, Direction::Capture, cfg(48_000, 1, 64, 2));
        let counters = d.counters();
        d.start().unwrap();
        // 20 ms asleep: 15 periods late with a 2-period buffer.
        std::thread::sleep(std::time::Duration::from_millis(20));
        d.cycle(&mut |_, _| {}).unwrap();
        assert_eq!(counters.xruns.load(Ordering::Relaxed), 1);
        // The stream position follows the clock, dropped periods included, and the
        // dropped periods are counted as lost stream time.
        assert_eq!(d.position(), d.clock().index() * 64);
        assert!(d.clock().index() >= 15);
        let lost = counters.lost_frames.load(Ordering::Relaxed);
        assert_eq!(lost, d.position() - 64, "all but the period just processed");
    }

    #[test]
    fn impulses_through_the_device_land_on_exact_frames() {
        // 8 kHz, 1000-frame periods: 9 periods ≈ 1.125 s of real time.
        let mut d = open(
            Signal::Impulse,
            Direction::Capture,
            cfg(8_000, 1, 1_000, 16),
        );
        let counters = d.counters();
        d.start().unwrap();
        let mut clicks = Vec::new();
        let mut base = 0u64;
        for _ in 0..9 {
            base = d.position();
            d.cycle(&mut |cap, _| {
                for (i, x) in cap.iter().enumerate() {
                    if *x != 0.0 {
                        clicks.push(base + i as u64);
                    }
                }
            })
            .unwrap();
        }
        assert!(base >= 8_000);
        if counters.xruns.load(Ordering::Relaxed) == 0 {
            assert_eq!(clicks, [0, 8_000]);
        } else {
            // A stall of over 15 periods dropped frames; the clicks still land on
            // multiples of the rate.
            assert!(clicks.iter().all(|c| c % 8_000 == 0), "{clicks:?}");
        }
    }
}
