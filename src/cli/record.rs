//! `izyrt record FILE --device DEV --seconds S`: records a device into a WAV file through
//! the engine's own RT path.
//!
//! The main thread opens the device for capture and creates the file; a recorder thread
//! writes it; the RT thread's only work per period is [`RecordCursor::take`], which pushes
//! the captured period into the recorder's queue (dropping and counting it if the queue is
//! full, never waiting for the disk). The length is counted in frames, not wall time: the
//! file holds exactly `S × rate` frames (less any dropped) unless Ctrl-C/SIGTERM stops it
//! first, in which case everything captured so far is written and the header finalised.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::CliError;
use super::rt_session::{self, StreamArgs};
use crate::device::Direction;
use crate::dsp::ratio::Decimator;
use crate::file::{RecordFormat, RecordTap, Recorder, WavRecording};

/// Seconds of audio the recorder queue holds (rides out disk stalls that long).
const QUEUE_SECONDS: u32 = 1;

/// Arguments of `izyrt record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The WAV file to write (created or truncated).
    pub file: PathBuf,
    /// How long to record, in seconds of audio (counted in frames, not wall time).
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub seconds: f64,
    /// Stream rate, Hz.
    #[arg(long, value_name = "R", default_value_t = 48_000)]
    pub rate: u32,
    /// Sample format of the file.
    #[arg(long, value_enum, default_value_t = FileFormat::F32)]
    pub format: FileFormat,
    /// Decimate the capture by this integer ratio before writing, with anti-alias
    /// filtering (the seed's `downsampleRatio`; 1 = off): the file's rate is the stream
    /// rate divided by it. The period must be a multiple of it.
    #[arg(long = "downsample-ratio", value_name = "N", default_value_t = 1)]
    pub downsample_ratio: u32,
    /// Device and RT-thread options.
    #[command(flatten)]
    pub stream: StreamArgs,
}

/// The sample format of the recorded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// 32-bit float (lossless).
    F32,
    /// 16-bit integer.
    S16,
    /// 24-bit integer.
    S24,
}

impl FileFormat {
    fn record_format(self) -> RecordFormat {
        match self {
            FileFormat::F32 => RecordFormat::F32,
            FileFormat::S16 => RecordFormat::I16,
            FileFormat::S24 => RecordFormat::I24,
        }
    }

    fn bytes(self) -> u64 {
        match self {
            FileFormat::F32 => 4,
            FileFormat::S16 => 2,
            FileFormat::S24 => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FileFormat::F32 => "f32",
            FileFormat::S16 => "s16",
            FileFormat::S24 => "s24",
        }
    }
}

/// The RT half of `izyrt record`: pushes each captured period into the recorder's queue
/// until the requested number of frames has been captured, then sets the stop flag.
///
/// # Realtime contract
/// [`RecordCursor::take`] neither allocates, locks, blocks nor prints.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
/// use izyrt::cli::record::RecordCursor;
/// use izyrt::file::RecordTap;
///
/// let (producer, mut consumer) = rtrb::RingBuffer::<f32>::new(64);
/// let tap = RecordTap::new(producer, 2, Arc::new(AtomicU64::new(0)));
/// let stop = Arc::new(AtomicBool::new(false));
/// let mut cursor = RecordCursor::new(tap, 2, 5, Arc::clone(&stop));
/// cursor.take(&[0.1; 8]); // 4 frames
/// assert!(!stop.load(Ordering::Relaxed));
/// cursor.take(&[0.2; 8]); // only 1 more frame is wanted
/// assert!(stop.load(Ordering::Relaxed));
/// assert_eq!((cursor.frames_captured(), consumer.slots()), (5, 10));
/// ```
#[derive(Debug)]
pub struct RecordCursor {
    tap: RecordTap,
    channels: usize,
    target: u64,
    captured: u64,
    stop: Arc<AtomicBool>,
    /// The decimator and its output buffer (one decimated period), when ratio > 1.
    decimator: Option<(Decimator, Box<[f32]>)>,
}

impl RecordCursor {
    /// A cursor that pushes interleaved `channels`-channel periods into `tap` until
    /// `target` frames have been captured, then sets `stop`.
    ///
    /// # Panics
    /// When `channels` is 0.
    pub fn new(tap: RecordTap, channels: u16, target: u64, stop: Arc<AtomicBool>) -> Self {
        assert!(channels > 0, "a recording needs at least one channel");
        RecordCursor {
            tap,
            channels: usize::from(channels),
            target,
            captured: 0,
            stop,
            decimator: None,
        }
    }

    /// Decimates each period before it is queued; `target` then counts decimated frames.
    /// Allocates the decimator's output buffer here, not per period.
    pub fn with_decimator(mut self, decimator: Decimator) -> Self {
        let samples = decimator.max_period_frames() / decimator.ratio() as usize * self.channels;
        self.decimator = Some((decimator, vec![0.0; samples].into_boxed_slice()));
        self
    }

    /// Takes one captured period (interleaved). RT-safe.
    pub fn take(&mut self, capture: &[f32]) {
        let capture: &[f32] = match &mut self.decimator {
            // A period that is not a multiple of the ratio cannot come from a device
            // whose period is; it is skipped rather than allowed to panic.
            Some((d, out)) => match d.process(capture, out) {
                Ok(frames) => &out[..frames * self.channels],
                Err(_) => &[],
            },
            None => capture,
        };
        let wanted = self.target - self.captured;
        let frames = ((capture.len() / self.channels) as u64).min(wanted);
        if frames > 0 {
            // Dropped frames are counted by the tap; the stream still advanced.
            self.tap.push(&capture[..frames as usize * self.channels]);
            self.captured += frames;
        }
        if self.captured >= self.target {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Frames captured so far (written or dropped).
    pub fn frames_captured(&self) -> u64 {
        self.captured
    }
}

/// Runs `izyrt record`; returns the exit code: 0 when all requested frames were captured,
/// 128 + the signal number when Ctrl-C/SIGTERM stopped it first (the file is still
/// complete and valid up to that point).
///
/// # Errors
/// [`CliError::Usage`] for a bad device or option, [`CliError::Failed`] when the device,
/// the file or the recorder fails.
pub fn run(args: &RecordArgs) -> Result<i32, CliError> {
    let (spec, cfg) = args.stream.check(args.rate)?;
    let ratio = args.downsample_ratio;
    let usage = |e: crate::dsp::ratio::RatioError| CliError::Usage(e.to_string());
    let decimator =
        Decimator::new(ratio, cfg.channels, cfg.period_frames as usize).map_err(usage)?;
    rt_session::check_ratio_divides_rate("downsampleRatio", ratio, cfg.rate)?;
    let target = frames_for(args, cfg.rate / ratio, cfg.channels)?;
    let device = rt_session::open_device(&spec, Direction::Capture, cfg)?;
    let obtained = device.obtained().clone();
    let channels = obtained.capture_channels;
    // What the file holds: the stream's rate divided by the ratio.
    let file_rate = obtained.rate / ratio;
    let failed = |e: crate::file::RecordError| CliError::Failed(e.to_string());
    let recording =
        WavRecording::create(&args.file, file_rate, channels, args.format.record_format())
            .map_err(failed)?;
    eprintln!(
        "file:      {} ({} Hz, {channels} ch, {}, {target} frames, {:.3} s)",
        args.file.display(),
        file_rate,
        args.format.name(),
        target as f64 / f64::from(file_rate)
    );
    if ratio > 1 {
        eprintln!(
            "decimate:  by {ratio} ({} Hz → {file_rate} Hz, filter delay {:.1} frames)",
            obtained.rate,
            decimator.delay_frames()
        );
    }

    let driver = rt_session::driver()?;
    rt_session::catch_signals(); // before the recorder thread: it inherits the block
    let queue = (QUEUE_SECONDS * obtained.rate).max(8 * obtained.buffer_frames);
    let (recorder, tap) = Recorder::with_tap(recording, queue as usize).map_err(failed)?;
    let mut cursor = RecordCursor::new(tap, channels, target, driver.stop_flag());
    if ratio > 1 {
        cursor = cursor.with_decimator(decimator);
    }
    let outcome = rt_session::run(
        "record",
        &args.stream,
        Direction::Capture,
        device,
        driver,
        cursor,
        |cursor, capture, _| cursor.take(capture),
    );
    // Whatever happened, write what was captured and finalise the header.
    let stopped = recorder.stop();
    let outcome = outcome?;
    let summary = stopped.map_err(failed)?;

    let captured = outcome.state.frames_captured();
    if args.stream.json {
        let mut json = serde_json::Map::new();
        json.insert("command".into(), "record".into());
        json.insert("file".into(), args.file.display().to_string().into());
        json.insert("fileFormat".into(), args.format.name().into());
        json.insert("framesRequested".into(), target.into());
        json.insert("framesCaptured".into(), captured.into());
        json.insert("framesRecorded".into(), summary.frames.into());
        json.insert("droppedFrames".into(), summary.dropped_frames.into());
        json.insert("clippedSamples".into(), summary.clipped_samples.into());
        json.extend(outcome.json());
        rt_session::print_json(json)?;
    } else {
        eprintln!(
            "recorded:  {} of {target} frames ({:.3} s), dropped {} frames, clipped {} samples",
            summary.frames,
            summary.frames as f64 / f64::from(file_rate),
            summary.dropped_frames,
            summary.clipped_samples
        );
        outcome.print_summary();
    }
    outcome.check()?;
    Ok(outcome.exit_code())
}

/// `--seconds` as a frame count at `rate`, checked as [`rt_session::frames_for`] does and
/// small enough for a WAV file (whose data chunk holds at most 4 GiB).
fn frames_for(args: &RecordArgs, rate: u32, channels: u16) -> Result<u64, CliError> {
    let s = args.seconds;
    let frames = rt_session::frames_for(s, rate)?;
    let max_frames = u64::from(u32::MAX) / (args.format.bytes() * u64::from(channels));
    if frames > max_frames {
        return Err(CliError::Usage(format!(
            "--seconds {s} is too long for a WAV file: at most {:.0} s at {rate} Hz, \
             {channels} ch, {}",
            (max_frames / u64::from(rate)) as f64,
            args.format.name()
        )));
    }
    Ok(frames)
}
