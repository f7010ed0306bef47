//! Why a [`Resampler`](super::Resampler) could not be built or a call was refused (main
//! thread when built; returned, never logged, by the RT calls).

use super::{MAX_FRAMES, MAX_STEP, MIN_STEP};

/// Why a [`Resampler`](super::Resampler) could not be built or a call was refused.
///
/// Every message names the value and what is allowed.
///
/// # Example
/// ```
/// use izyrt::dsp::resampler::Resampler;
/// let err = Resampler::new(0, 64).unwrap_err();
/// assert_eq!(err.to_string(), "a resampler needs at least 1 channel, got 0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ResamplerError {
    /// No channels.
    #[error("a resampler needs at least 1 channel, got {channels}")]
    Channels {
        /// The channel count given.
        channels: u16,
    },
    /// `max_frames` is 0 or above [`MAX_FRAMES`].
    #[error("max_frames {max_frames} is not allowed: it must be from 1 to {MAX_FRAMES}")]
    MaxFrames {
        /// The value given.
        max_frames: usize,
    },
    /// The FIFO could not be allocated.
    #[error("cannot allocate the resampler's FIFO of {samples} samples")]
    Memory {
        /// Samples asked for.
        samples: usize,
    },
    /// The step is not finite or outside [`MIN_STEP`]..=[`MAX_STEP`].
    #[error(
        "step {step} is not allowed: it must be from {MIN_STEP} to {MAX_STEP} input frames \
         per output frame"
    )]
    Step {
        /// The step given.
        step: f64,
    },
    /// Too little input is buffered for the output asked for.
    #[error("{out_frames} output frames need {needed} more input frames than are buffered")]
    NotEnoughInput {
        /// Output frames asked for.
        out_frames: usize,
        /// Input frames still to push ([`Resampler::input_needed`](super::Resampler::input_needed)).
        needed: usize,
    },
}
