//! `izyrt thru --device DEV`: copies what a duplex device captures straight to its
//! playback, period for period, with no network and no buffering of its own.
//!
//! It measures the floor of a device: run an external round-trip meter across it (for the
//! ALSA `jack` PCM, `jack_iodelay` connected to the PCM's capture and playback ports) and
//! what it reports is what the device and its driver add — the buffering of the ALSA
//! plugin in both directions and the periods of the device buffer — since izyrt adds
//! nothing but the one copy. `scripts/compare` subtracts it from the peer's round trip.
//!
//! The main thread opens the device for duplex and runs the driver on an RT thread whose
//! only work per period is [`ThruCopy::copy`]. The run ends after `--seconds` of frames
//! (counted in frames, not wall time), or on Ctrl-C/SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::CliError;
use super::rt_session::{self, StreamArgs};
use crate::device::Direction;

/// Arguments of `izyrt thru`.
#[derive(Debug, clap::Args)]
pub struct ThruArgs {
    /// Stream rate, Hz.
    #[arg(long, value_name = "R", default_value_t = 48_000)]
    pub rate: u32,
    /// Stop after this many seconds of audio (counted in frames, not wall time)
    /// [default: run until Ctrl-C or SIGTERM].
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub seconds: Option<f64>,
    /// Device and RT-thread options (the device is opened for capture and playback).
    #[command(flatten)]
    pub stream: StreamArgs,
}

/// The RT half of `izyrt thru`: copies each captured period to the playback period of the
/// same cycle, keeps the peak of what it played, and sets the stop flag once the requested
/// number of frames has gone through.
///
/// When the device obtained different channel counts for capture and playback, the common
/// channels are copied and the other playback channels are silent.
///
/// # Realtime contract
/// [`ThruCopy::copy`] neither allocates, locks, blocks nor prints.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use izyrt::cli::thru::ThruCopy;
///
/// let stop = Arc::new(AtomicBool::new(false));
/// let mut thru = ThruCopy::new(2, 2, 6, Arc::clone(&stop));
/// let mut out = [0.0f32; 8];
/// thru.copy(&[0.1, -0.5, 0.2, 0.0, 0.0, 0.0, 0.0, 0.25], &mut out); // 4 frames
/// assert_eq!(out, [0.1, -0.5, 0.2, 0.0, 0.0, 0.0, 0.0, 0.25]);
/// assert!(!stop.load(Ordering::Relaxed));
/// thru.copy(&[0.0; 8], &mut out); // 4 more: past the 6 asked for
/// assert!(stop.load(Ordering::Relaxed));
/// assert_eq!((thru.frames(), thru.peak()), (8, 0.5));
/// ```
#[derive(Debug)]
pub struct ThruCopy {
    capture_channels: usize,
    playback_channels: usize,
    target: u64,
    frames: u64,
    peak: f32,
    stop: Arc<AtomicBool>,
}

impl ThruCopy {
    /// A copier from `capture_channels` to `playback_channels` interleaved periods that
    /// sets `stop` once `target` frames have gone through (`u64::MAX`: never).
    ///
    /// # Panics
    /// When either channel count is 0.
    pub fn new(
        capture_channels: u16,
        playback_channels: u16,
        target: u64,
        stop: Arc<AtomicBool>,
    ) -> Self {
        assert!(
            capture_channels > 0 && playback_channels > 0,
            "thru needs at least one channel each way"
        );
        ThruCopy {
            capture_channels: usize::from(capture_channels),
            playback_channels: usize::from(playback_channels),
            target,
            frames: 0,
            peak: 0.0,
            stop,
        }
    }

    /// Copies one captured period (interleaved) into the playback period. RT-safe.
    pub fn copy(&mut self, capture: &[f32], playback: &mut [f32]) {
        let (cc, pc) = (self.capture_channels, self.playback_channels);
        let frames = (capture.len() / cc).min(playback.len() / pc);
        if cc == pc {
            let n = frames * cc;
            playback[..n].copy_from_slice(&capture[..n]);
            playback[n..].fill(0.0);
        } else {
            let common = cc.min(pc);
            for (out, inp) in playback.chunks_exact_mut(pc).zip(capture.chunks_exact(cc)) {
                out[..common].copy_from_slice(&inp[..common]);
                out[common..].fill(0.0);
            }
            playback[frames * pc..].fill(0.0);
        }
        self.peak = playback.iter().fold(self.peak, |peak, s| peak.max(s.abs()));
        self.frames += frames as u64;
        if self.frames >= self.target {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Frames copied so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The largest absolute sample played so far (linear, 1.0 = full scale).
    pub fn peak(&self) -> f32 {
        self.peak
    }
}

/// Runs `izyrt thru`; returns the exit code: 0 when the requested seconds went through, or
/// when a run without `--seconds` was stopped by Ctrl-C/SIGTERM (its normal end); 128 +
/// the signal when a signal cut a `--seconds` run short.
///
/// # Errors
/// [`CliError::Usage`] for a bad device or option, [`CliError::Failed`] when the device
/// cannot be opened for both directions or fails.
pub fn run(args: &ThruArgs) -> Result<i32, CliError> {
    let (spec, cfg) = args.stream.check(args.rate)?;
    let target = match args.seconds {
        Some(s) => rt_session::frames_for(s, cfg.rate)?,
        None => u64::MAX,
    };
    let device = rt_session::open_device(&spec, Direction::Duplex, cfg)?;
    let obtained = device.obtained().clone();
    let driver = rt_session::driver()?;
    let thru = ThruCopy::new(
        obtained.capture_channels,
        obtained.playback_channels,
        target,
        driver.stop_flag(),
    );
    match args.seconds {
        Some(s) => eprintln!("thru:      capture → playback for {s} s"),
        None => eprintln!("thru:      capture → playback until Ctrl-C"),
    }
    rt_session::catch_signals();
    let outcome = rt_session::run(
        "thru",
        &args.stream,
        Direction::Duplex,
        device,
        driver,
        thru,
        |thru, capture, playback| thru.copy(capture, playback),
    )?;

    let frames = outcome.state.frames();
    let peak = outcome.state.peak();
    if args.stream.json {
        let mut json = serde_json::Map::new();
        json.insert("command".into(), "thru".into());
        json.insert("framesCopied".into(), frames.into());
        json.insert("peak".into(), f64::from(peak).into());
        json.extend(outcome.json());
        rt_session::print_json(json)?;
    } else {
        let level = if peak > 0.0 {
            format!("{:.1} dBFS", 20.0 * peak.log10())
        } else {
            "silence".into()
        };
        eprintln!(
            "copied:    {frames} frames ({:.3} s), peak played {level}",
            frames as f64 / f64::from(outcome.obtained.rate.max(1))
        );
        outcome.print_summary();
    }
    outcome.check()?;
    Ok(match args.seconds {
        Some(_) => outcome.exit_code(),
        None => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copier(cc: u16, pc: u16, target: u64) -> (ThruCopy, Arc<AtomicBool>) {
        let stop = Arc::new(AtomicBool::new(false));
        (ThruCopy::new(cc, pc, target, Arc::clone(&stop)), stop)
    }

    #[test]
    fn copies_each_period_exactly() {
        let (mut t, stop) = copier(2, 2, u64::MAX);
        let input: Vec<f32> = (0..128).map(|i| i as f32 / 256.0 - 0.25).collect();
        let mut out = vec![9.0; 128];
        for _ in 0..1000 {
            t.copy(&input, &mut out);
            assert_eq!(out, input);
        }
        assert_eq!(t.frames(), 64_000);
        assert!(!stop.load(Ordering::Relaxed));
        assert_eq!(t.peak(), 0.25);
    }

    #[test]
    fn maps_differing_channel_counts() {
        // Mono capture to stereo playback: channel 0 copied, channel 1 silent.
        let (mut t, _) = copier(1, 2, u64::MAX);
        let mut out = [9.0f32; 6];
        t.copy(&[0.1, 0.2, 0.3], &mut out);
        assert_eq!(out, [0.1, 0.0, 0.2, 0.0, 0.3, 0.0]);
        // Three channels captured to two played: the third is dropped.
        let (mut t, _) = copier(3, 2, u64::MAX);
        let mut out = [9.0f32; 4];
        t.copy(&[0.1, 0.2, 0.9, 0.3, 0.4, 0.9], &mut out);
        assert_eq!(out, [0.1, 0.2, 0.3, 0.4]);
        assert_eq!((t.frames(), t.peak()), (2, 0.4));
    }

    #[test]
    fn a_short_capture_leaves_the_rest_of_playback_silent() {
        let (mut t, _) = copier(2, 2, u64::MAX);
        let mut out = [9.0f32; 6];
        t.copy(&[0.5, 0.5], &mut out);
        assert_eq!(out, [0.5, 0.5, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(t.frames(), 1);
    }

    #[test]
    fn stops_once_the_target_is_reached() {
        let (mut t, stop) = copier(1, 1, 10);
        let mut out = [0.0f32; 4];
        t.copy(&[0.0; 4], &mut out);
        t.copy(&[0.0; 4], &mut out);
        assert!(!stop.load(Ordering::Relaxed));
        t.copy(&[0.0; 4], &mut out);
        assert!(stop.load(Ordering::Relaxed));
    }

    #[test]
    fn seconds_are_checked() {
        assert_eq!(rt_session::frames_for(1.5, 48_000).unwrap(), 72_000);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-6] {
            assert!(rt_session::frames_for(bad, 48_000).is_err(), "{bad}");
        }
    }
}
