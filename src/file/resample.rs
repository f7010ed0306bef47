//! Converting a preloaded clip to the engine's rate with rubato.
//!
//! Design: a file is resampled once, on the main thread, before the RT thread starts, so
//! the whole clip is in memory and the ratio is fixed: rubato's synchronous FFT resampler is
//! the right tool (as good as its sinc resampler, much faster), and its `process_all` trims
//! the filter's start-up delay so the output lines up with the input and has
//! `ceil(frames × to / from)` frames.

use rubato::audioadapter_buffers::owned::InterleavedOwned;
use rubato::{Fft, FixedSync, Resampler};

/// Why a clip could not be resampled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot resample from {from} Hz to {to} Hz: {reason}")]
pub struct ResampleError {
    /// Source rate.
    pub from: u32,
    /// Target rate.
    pub to: u32,
    /// The resampler's reason.
    pub reason: String,
}

/// Resamples interleaved `samples` of `channels` channels from `from` Hz to `to` Hz.
/// Returns the input unchanged when the rates are equal.
///
/// Not for the RT thread: it allocates the resampler and the output.
///
/// # Errors
/// [`ResampleError`] when a rate or the channel count is 0, or rubato refuses the pair.
///
/// # Example
/// ```
/// let one_second = vec![0.0f32; 44_100 * 2];
/// let out = izyrt::file::resample(one_second, 2, 44_100, 48_000)?;
/// assert_eq!(out.len(), 48_000 * 2);
/// # Ok::<(), izyrt::file::ResampleError>(())
/// ```
pub fn resample(
    samples: Vec<f32>,
    channels: u16,
    from: u32,
    to: u32,
) -> Result<Vec<f32>, ResampleError> {
    let err = |reason: String| ResampleError { from, to, reason };
    if from == 0 || to == 0 || channels == 0 {
        return Err(err(format!(
            "rates and the channel count ({channels}) must be positive"
        )));
    }
    if from == to {
        return Ok(samples);
    }
    let ch = channels as usize;
    let frames = samples.len() / ch;
    if frames == 0 {
        return Ok(Vec::new());
    }
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, ch, FixedSync::Both)
        .map_err(|e| err(e.to_string()))?;
    let input = InterleavedOwned::new_from(samples, ch, frames).map_err(|e| err(e.to_string()))?;
    let output = resampler
        .process_all(&input, frames, None)
        .map_err(|e| err(e.to_string()))?;
    // Exactly ceil(frames × to / from) frames: rubato rounds its float ratio up, which can
    // leave one extra frame (22 050 → 48 000 gave 48 001 for one second).
    let mut out = output.take_data();
    let want = (frames as u128 * to as u128).div_ceil(from as u128) as usize;
    out.truncate(want * ch);
    Ok(out)
}
