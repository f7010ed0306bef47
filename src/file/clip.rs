//! A WAV file preloaded in the engine's format: the buffer a file source plays from.

use std::path::Path;
use std::time::Duration;

use super::channel_map::map_channels;
use super::decode::{LoadError, WavInfo, decode};
use super::resample::resample;

/// Interleaved f32 audio at the engine's rate and channel count, fully in memory.
///
/// Built on the main thread by [`Clip::load`] before the RT thread starts; the RT thread
/// plays it through a [`ClipReader`](super::ClipReader), which shares it by `Arc`.
///
/// # Example
/// ```no_run
/// use std::sync::Arc;
/// use izyrt::file::{Clip, ClipReader};
///
/// // Main thread: decode, map channels, resample to the engine's format.
/// let clip = Arc::new(Clip::load("song.wav", 48_000, 2)?);
/// println!("loaded {} s", clip.duration().as_secs_f64());
/// // RT thread: one period at a time, looping, allocation-free.
/// let mut reader = ClipReader::new(clip, true);
/// let mut period = [0.0f32; 64 * 2];
/// reader.read(&mut period);
/// # Ok::<(), izyrt::file::LoadError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    samples: Vec<f32>,
    rate: u32,
    channels: u16,
    source: Option<WavInfo>,
}

impl Clip {
    /// Loads a WAV file and converts it to `rate` Hz and `channels` interleaved channels:
    /// samples become f32 in [-1, 1), channels are mapped by the rules of
    /// [`map_channels`](super::map_channels), and a different rate is resampled with rubato's
    /// FFT resampler. Allocates; call it before the RT thread starts.
    ///
    /// # Errors
    /// A [`LoadError`] whose one-line message names the file and the reason.
    pub fn load(path: impl AsRef<Path>, rate: u32, channels: u16) -> Result<Clip, LoadError> {
        let path = path.as_ref();
        if rate == 0 || channels == 0 {
            return Err(LoadError::Target {
                path: path.to_owned(),
                rate,
                channels,
            });
        }
        let (info, mut samples) = decode(path)?;
        // Mapping and resampling commute (both are linear, per channel), so resample the
        // smaller channel count.
        if channels <= info.channels {
            samples = map_channels(samples, info.channels, channels);
        }
        let now = channels.min(info.channels);
        samples =
            resample(samples, now, info.rate, rate).map_err(|source| LoadError::Resample {
                path: path.to_owned(),
                source,
            })?;
        if channels > info.channels {
            samples = map_channels(samples, info.channels, channels);
        }
        Ok(Clip {
            samples,
            rate,
            channels,
            source: Some(info),
        })
    }

    /// Wraps interleaved samples already in the engine's format (a generated test signal,
    /// say).
    ///
    /// # Panics
    /// When `channels` is 0 or `samples.len()` is not a multiple of `channels`.
    ///
    /// # Example
    /// ```
    /// let clip = izyrt::file::Clip::from_interleaved(vec![0.0; 96], 48_000, 2);
    /// assert_eq!(clip.frames(), 48);
    /// ```
    pub fn from_interleaved(samples: Vec<f32>, rate: u32, channels: u16) -> Clip {
        assert!(channels > 0, "a clip needs at least one channel");
        assert!(
            samples.len() % channels as usize == 0,
            "{} samples are not a whole number of {channels}-channel frames",
            samples.len()
        );
        Clip {
            samples,
            rate,
            channels,
            source: None,
        }
    }

    /// The interleaved samples.
    pub fn samples(&self) -> &[f32] {
        &self.samples
    }

    /// Takes the samples out.
    pub fn into_samples(self) -> Vec<f32> {
        self.samples
    }

    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels as usize
    }

    /// Frames per second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Interleaved channels.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Playing time.
    pub fn duration(&self) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(self.frames() as f64 / self.rate as f64)
    }

    /// What the file held before conversion (`None` for [`Clip::from_interleaved`]).
    pub fn source(&self) -> Option<&WavInfo> {
        self.source.as_ref()
    }
}
