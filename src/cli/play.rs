//! `izyrt play FILE --device DEV`: plays a WAV file through the engine's own RT path.
//!
//! The main thread loads the whole file, converted to the stream's rate and channel count
//! (the file's own rate unless `--rate` says otherwise), opens the device for playback and
//! runs the driver on an RT thread whose only work per period is [`PlayCursor::fill`]. The
//! stream stops one device buffer after the clip ends, so the end is heard rather than
//! cut, or on Ctrl-C/SIGTERM. Progress lines go to stderr; `--json` puts the final summary
//! on stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::CliError;
use super::rt_session::{self, StreamArgs};
use crate::device::{Direction, StreamConfig};
use crate::dsp::ratio::Interpolator;
use crate::file::{Clip, ClipReader, WavInfo};

/// Arguments of `izyrt play`.
#[derive(Debug, clap::Args)]
pub struct PlayArgs {
    /// The WAV file to play.
    pub file: PathBuf,
    /// Stream rate, Hz [default: the file's rate; 48000 when that is outside 8000..=384000].
    #[arg(long, value_name = "R")]
    pub rate: Option<u32>,
    /// Interpolate the playback by this integer ratio, with anti-image filtering (the
    /// seed's `upsampleRatio`; 1 = off): the file is read at the stream rate divided by
    /// it. The period must be a multiple of it.
    #[arg(long = "upsample-ratio", value_name = "N", default_value_t = 1)]
    pub upsample_ratio: u32,
    /// Device and RT-thread options.
    #[command(flatten)]
    pub stream: StreamArgs,
}

/// The RT half of `izyrt play`: hands out the clip one period at a time, then silence,
/// and sets the stop flag once a whole device buffer of silence has followed the clip.
///
/// # Realtime contract
/// [`PlayCursor::fill`] neither allocates, locks, blocks nor prints.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use izyrt::cli::play::PlayCursor;
/// use izyrt::file::{Clip, ClipReader};
///
/// let clip = Arc::new(Clip::from_interleaved(vec![0.5; 5], 48_000, 1));
/// let stop = Arc::new(AtomicBool::new(false));
/// let mut cursor = PlayCursor::new(ClipReader::new(clip, false), 4, Arc::clone(&stop));
/// let mut period = [0.0f32; 4];
/// cursor.fill(&mut period); // 4 clip frames
/// cursor.fill(&mut period); // 1 clip frame, 3 of tail
/// assert!(!stop.load(Ordering::Relaxed));
/// cursor.fill(&mut period); // 4 more of tail: done
/// assert!(stop.load(Ordering::Relaxed));
/// assert_eq!(cursor.frames_played(), 5);
/// ```
#[derive(Debug)]
pub struct PlayCursor {
    reader: ClipReader,
    channels: usize,
    tail_frames: u64,
    tail_written: u64,
    played: u64,
    stop: Arc<AtomicBool>,
    /// The interpolator and its input buffer (one clip-rate period), when ratio > 1.
    interpolator: Option<(Interpolator, Box<[f32]>)>,
}

impl PlayCursor {
    /// A cursor over `reader` (which must not loop) that sets `stop` once `tail_frames`
    /// frames of silence have been written after the clip.
    pub fn new(reader: ClipReader, tail_frames: u32, stop: Arc<AtomicBool>) -> PlayCursor {
        PlayCursor {
            channels: usize::from(reader.clip().channels()),
            reader,
            tail_frames: u64::from(tail_frames),
            tail_written: 0,
            played: 0,
            stop,
            interpolator: None,
        }
    }

    /// Interpolates each period from the clip, read at the stream rate divided by the
    /// ratio. Allocates the interpolator's input buffer here, not per period.
    pub fn with_interpolator(mut self, interpolator: Interpolator) -> Self {
        let samples =
            interpolator.max_period_frames() / interpolator.ratio() as usize * self.channels;
        self.interpolator = Some((interpolator, vec![0.0; samples].into_boxed_slice()));
        self
    }

    /// Fills one period of interleaved playback (the clip's channel count). RT-safe.
    pub fn fill(&mut self, playback: &mut [f32]) {
        let frames = (playback.len() / self.channels) as u64;
        let (got, missing) = match &mut self.interpolator {
            Some((interp, input)) => {
                let ratio = interp.ratio() as u64;
                let want = (frames / ratio) as usize * self.channels;
                let len = want.min(input.len());
                let input = &mut input[..len];
                let got = self.reader.read(input) as u64;
                if interp.process(input, playback).is_err() {
                    playback.fill(0.0);
                }
                (got, (frames / ratio - got) * ratio)
            }
            None => {
                let got = self.reader.read(playback) as u64;
                (got, frames - got)
            }
        };
        self.played += got;
        self.tail_written += missing;
        if self.tail_written >= self.tail_frames {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Frames of the clip handed to the device so far.
    pub fn frames_played(&self) -> u64 {
        self.played
    }

    /// The clip being played.
    pub fn clip(&self) -> &Arc<Clip> {
        self.reader.clip()
    }
}

/// Runs `izyrt play`; returns the exit code: 0 when the whole file was played, 128 + the
/// signal number when Ctrl-C/SIGTERM cut it short.
///
/// # Errors
/// [`CliError::Usage`] for a bad device or option, [`CliError::Data`] for a file that
/// cannot be loaded (exit [`EXIT_DATA`](super::EXIT_DATA)), [`CliError::Failed`] when the device fails.
pub fn run(args: &PlayArgs) -> Result<i32, CliError> {
    let rate = args.rate.unwrap_or_else(|| file_rate(&args.file));
    let (spec, cfg) = args.stream.check(rate)?;
    let ratio = args.upsample_ratio;
    let usage = |e: crate::dsp::ratio::RatioError| CliError::Usage(e.to_string());
    let interpolator =
        Interpolator::new(ratio, cfg.channels, cfg.period_frames as usize).map_err(usage)?;
    rt_session::check_ratio_divides_rate("upsampleRatio", ratio, cfg.rate)?;
    let mut clip = load(&args.file, cfg.rate / ratio, cfg.channels)?;
    let device = rt_session::open_device(&spec, Direction::Playback, cfg)?;
    let obtained = device.obtained().clone();
    if (obtained.rate / ratio, obtained.playback_channels) != (clip.rate(), clip.channels()) {
        clip = load(
            &args.file,
            obtained.rate / ratio,
            obtained.playback_channels,
        )?;
    }
    let clip = Arc::new(clip);
    print_clip(&args.file, &clip);

    let driver = rt_session::driver()?;
    let reader = ClipReader::new(Arc::clone(&clip), false);
    let mut cursor = PlayCursor::new(reader, obtained.buffer_frames, driver.stop_flag());
    if ratio > 1 {
        eprintln!(
            "interp:    by {ratio} ({} Hz → {} Hz, filter delay {:.1} frames)",
            clip.rate(),
            obtained.rate,
            interpolator.delay_frames()
        );
        cursor = cursor.with_interpolator(interpolator);
    }
    rt_session::catch_signals();
    let outcome = rt_session::run(
        "play",
        &args.stream,
        Direction::Playback,
        device,
        driver,
        cursor,
        |cursor, _, playback| cursor.fill(playback),
    )?;

    let played = outcome.state.frames_played();
    let total = clip.frames() as u64;
    if args.stream.json {
        let mut summary = serde_json::Map::new();
        summary.insert("command".into(), "play".into());
        summary.insert("file".into(), args.file.display().to_string().into());
        summary.insert("framesPlayed".into(), played.into());
        summary.insert("clipFrames".into(), total.into());
        summary.insert("complete".into(), (played == total).into());
        summary.extend(outcome.json());
        rt_session::print_json(summary)?;
    } else {
        eprintln!(
            "played:    {played} of {total} frames ({:.3} s)",
            played as f64 / f64::from(clip.rate())
        );
        outcome.print_summary();
    }
    outcome.check()?;
    Ok(outcome.exit_code())
}

/// The file's rate when a stream can run at it, else the default rate (the loader will
/// report a file it cannot read).
fn file_rate(path: &Path) -> u32 {
    hound::WavReader::open(path)
        .ok()
        .map(|r| r.spec().sample_rate)
        .filter(|r| StreamConfig::RATES.contains(r))
        .unwrap_or(StreamConfig::default().rate)
}

fn load(path: &Path, rate: u32, channels: u16) -> Result<Clip, CliError> {
    Clip::load(path, rate, channels).map_err(|e| CliError::Data(e.to_string()))
}

fn print_clip(path: &Path, clip: &Clip) {
    let source = match clip.source() {
        Some(WavInfo {
            rate,
            channels,
            format,
            frames,
        }) => format!("{rate} Hz, {channels} ch, {format}, {frames} frames → "),
        None => String::new(),
    };
    eprintln!(
        "file:      {} ({source}{} Hz, {} ch, {} frames, {:.3} s)",
        path.display(),
        clip.rate(),
        clip.channels(),
        clip.frames(),
        clip.duration().as_secs_f64()
    );
}
