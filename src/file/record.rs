//! Writing interleaved f32 to a WAV file: the recording side of the file device.
//!
//! Design: this is the disk end of a recording and runs on a non-RT thread (see
//! [`Recorder`](super::Recorder)); it owns the `hound` writer behind a `BufWriter`. Integer
//! formats are scaled by 2^(bits−1), rounded and clamped, the same scale the loader divides
//! by, so a recording reads back exactly for samples on the integer grid; samples outside
//! [-1, 1) are clipped and counted rather than wrapped.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::dsp::convert;

/// The sample format of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordFormat {
    /// 32-bit IEEE float: lossless for the engine's samples.
    #[default]
    F32,
    /// 16-bit integer PCM.
    I16,
    /// 24-bit integer PCM (3-byte containers, `WAVE_FORMAT_EXTENSIBLE`).
    I24,
}

impl RecordFormat {
    fn spec(self, rate: u32, channels: u16) -> hound::WavSpec {
        let (bits_per_sample, sample_format) = match self {
            RecordFormat::F32 => (32, hound::SampleFormat::Float),
            RecordFormat::I16 => (16, hound::SampleFormat::Int),
            RecordFormat::I24 => (24, hound::SampleFormat::Int),
        };
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample,
            sample_format,
        }
    }
}

/// Why a recording failed. The `Display` text is one line that names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The format asked for is impossible.
    #[error(
        "cannot record '{}' at {rate} Hz with {channels} channels: both must be positive",
        path.display()
    )]
    Spec {
        /// The file.
        path: PathBuf,
        /// The rate asked for.
        rate: u32,
        /// The channel count asked for.
        channels: u16,
    },
    /// The file could not be created.
    #[error("cannot create recording '{}': {reason}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing samples failed (disk full, I/O error).
    #[error("cannot write recording '{}': {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Completing the header failed.
    #[error("cannot finish recording '{}': {reason}", path.display())]
    Finalize {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The recorder thread could not start, or died.
    #[error("recorder thread for '{}' {reason}", path.display())]
    Thread {
        /// The file.
        path: PathBuf,
        /// What happened to it.
        reason: String,
    },
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSummary {
    /// The file.
    pub path: PathBuf,
    /// Frames written.
    pub frames: u64,
    /// Samples clipped to the integer range (always 0 for [`RecordFormat::F32`]).
    pub clipped_samples: u64,
    /// Frames the RT side dropped because the queue was full (filled in by
    /// [`Recorder`](super::Recorder); 0 when writing directly).
    pub dropped_frames: u64,
}

/// A WAV file being written from interleaved f32 samples.
///
/// Not for the RT thread (it writes to disk); feed it through a
/// [`Recorder`](super::Recorder).
///
/// # Example
/// ```
/// use izyrt::file::{RecordFormat, WavRecording};
/// let path = std::env::temp_dir().join(format!("izyrt-doc-{}.wav", std::process::id()));
/// let mut rec = WavRecording::create(&path, 48_000, 2, RecordFormat::I16)?;
/// rec.write(&[0.5, -0.5, 0.25, -0.25])?;
/// let summary = rec.finalize()?;
/// assert_eq!(summary.frames, 2);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), izyrt::file::RecordError>(())
/// ```
pub struct WavRecording {
    writer: hound::WavWriter<BufWriter<File>>,
    path: PathBuf,
    format: RecordFormat,
    rate: u32,
    channels: u16,
    samples: u64,
    clipped: u64,
}

impl std::fmt::Debug for WavRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavRecording")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .field("samples", &self.samples)
            .field("clipped", &self.clipped)
            .finish_non_exhaustive()
    }
}

impl WavRecording {
    /// Creates (or truncates) `path` and writes the header.
    ///
    /// # Errors
    /// [`RecordError::Spec`] for 0 Hz or 0 channels; [`RecordError::Create`] when the file
    /// cannot be created.
    pub fn create(
        path: impl AsRef<Path>,
        rate: u32,
        channels: u16,
        format: RecordFormat,
    ) -> Result<WavRecording, RecordError> {
        let path = path.as_ref().to_owned();
        if rate == 0 || channels == 0 {
            return Err(RecordError::Spec {
                path,
                rate,
                channels,
            });
        }
        let writer = hound::WavWriter::create(&path, format.spec(rate, channels)).map_err(|e| {
            RecordError::Create {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(WavRecording {
            writer,
            path,
            format,
            rate,
            channels,
            samples: 0,
            clipped: 0,
        })
    }

    /// Appends interleaved samples. Calls need not end on a frame boundary.
    ///
    /// # Errors
    /// [`RecordError::Write`] when the disk refuses.
    pub fn write(&mut self, samples: &[f32]) -> Result<(), RecordError> {
        let result = match self.format {
            RecordFormat::F32 => samples
                .iter()
                .try_for_each(|&s| self.writer.write_sample(s)),
            RecordFormat::I16 => samples.iter().try_for_each(|&s| {
                self.clipped += u64::from(clips(s));
                self.writer.write_sample(convert::f32_to_s16(s))
            }),
            RecordFormat::I24 => samples.iter().try_for_each(|&s| {
                self.clipped += u64::from(clips(s));
                self.writer.write_sample(convert::f32_to_s24(s))
            }),
        };
        result.map_err(|e| RecordError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        self.samples += samples.len() as u64;
        Ok(())
    }

    /// Frames written so far (whole frames).
    pub fn frames(&self) -> u64 {
        self.samples / self.channels as u64
    }

    /// Interleaved channels.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Frames per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Completes a trailing partial frame with silence, writes the final sizes into the
    /// header and flushes.
    ///
    /// # Errors
    /// [`RecordError::Write`] or [`RecordError::Finalize`] when the disk refuses.
    pub fn finalize(mut self) -> Result<RecordSummary, RecordError> {
        let ch = self.channels as u64;
        let partial = self.samples % ch;
        if partial != 0 {
            let pad = [0.0f32; 1];
            for _ in partial..ch {
                self.write(&pad)?;
            }
        }
        let summary = RecordSummary {
            path: self.path.clone(),
            frames: self.samples / ch,
            clipped_samples: self.clipped,
            dropped_frames: 0,
        };
        let path = self.path;
        self.writer.finalize().map_err(|e| RecordError::Finalize {
            path,
            reason: e.to_string(),
        })?;
        Ok(summary)
    }
}

/// True for a sample the integer formats cannot hold: outside `[-1, 1)`, or NaN. The
/// conversion itself (rounding, saturation) is `dsp::convert`'s.
fn clips(s: f32) -> bool {
    !(-1.0..1.0).contains(&s)
}
