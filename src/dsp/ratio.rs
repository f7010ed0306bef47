//! Integer rate ratios: the seed options `downsampleRatio` (capture) and `upsampleRatio`
//! (playback).
//!
//! Design: the seed divides or multiplies the device rate by a small integer, so a fixed
//! integer-ratio FIR is all that is needed; a general asynchronous resampler (rubato) would
//! cost more and add its own buffering. The filter is a linear-phase windowed sinc with its
//! −6 dB point at 0.45/ratio cycles per high-rate sample (0.9 of the low-rate Nyquist) and a
//! Kaiser window sized for [`STOPBAND_DB`] over a transition from 0.40/ratio to 0.50/ratio,
//! so everything that would fold back into the low-rate band is at least that far down, and
//! the band up to 0.8 of the low-rate Nyquist is flat. Its length is rounded up to a multiple
//! of the ratio so the interpolator splits it into `ratio` equal polyphase branches and never
//! multiplies the zeros that zero-stuffing would insert; the decimator likewise computes only
//! the outputs it keeps. The price is latency: about 29 low-rate frames of group delay
//! ([`Decimator::delay_frames`], [`Interpolator::delay_frames`]), ~1.2 ms at 24 kHz.
//!
//! State is one deinterleaved plane per channel: the filter's history (taps − 1 samples) in
//! front of room for the largest period. A period is copied in behind the history, filtered,
//! and the tail becomes the next history, so output does not depend on how the stream was cut
//! into periods. Every buffer is allocated in the constructor; `process` only copies and
//! multiplies, and reports a wrong buffer length as a (`Copy`, allocation-free) error instead
//! of panicking. The decimator requires periods that are a multiple of the ratio so that each
//! period yields a whole, fixed number of output frames; the interpolator's device-side
//! period must be a multiple of the ratio for the same reason.

use crate::dsp::fir::{dot, kaiser, lowpass_at};

/// The largest ratio accepted by [`Decimator::new`] and [`Interpolator::new`].
///
/// The filter grows linearly with the ratio (≈ 58 × ratio taps); 16 takes 48 kHz down to
/// 3 kHz, well past any useful voice rate.
pub const MAX_RATIO: u32 = 16;

/// Stopband attenuation the anti-alias / anti-image filter is designed for, in dB.
pub const STOPBAND_DB: f64 = 90.0;

/// −6 dB cutoff × ratio, in cycles per high-rate sample.
const CUTOFF: f64 = 0.45;
/// Transition width × ratio, in cycles per high-rate sample (0.40/R to 0.50/R).
const TRANSITION: f64 = 0.10;

/// Why a ratio converter could not be built, or why `process` refused its buffers.
///
/// Every message names the value and what is allowed.
///
/// # Example
/// ```
/// use izyrt::dsp::ratio::Decimator;
/// let err = Decimator::new(0, 2, 64).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "downsampleRatio 0 is not allowed: it must be an integer from 1 to 16 (1 = off)"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RatioError {
    /// The ratio is 0 or larger than [`MAX_RATIO`].
    #[error(
        "{option} {value} is not allowed: it must be an integer from 1 to {MAX_RATIO} (1 = off)"
    )]
    Ratio {
        /// `downsampleRatio` or `upsampleRatio`.
        option: &'static str,
        /// The ratio given.
        value: u32,
    },
    /// No channels.
    #[error("{option} needs at least 1 channel, got {channels}")]
    Channels {
        /// `downsampleRatio` or `upsampleRatio`.
        option: &'static str,
        /// The channel count given.
        channels: u16,
    },
    /// The device-side period is 0 or not a multiple of the ratio.
    #[error(
        "a period of {period} frames does not suit {option} {ratio}: \
         the period must be a positive multiple of {ratio} frames"
    )]
    Period {
        /// `downsampleRatio` or `upsampleRatio`.
        option: &'static str,
        /// The ratio.
        ratio: u32,
        /// The period given, in device (high-rate) frames.
        period: usize,
    },
    /// The input slice of a `process` call has a length that is not allowed.
    #[error(
        "input holds {len} samples: it must be a multiple of {multiple} samples, at most {max}"
    )]
    Input {
        /// Samples given.
        len: usize,
        /// The length must be a multiple of this (channels, × ratio for the decimator).
        multiple: usize,
        /// The most samples one call accepts.
        max: usize,
    },
    /// The output slice of a `process` call is too short for the input.
    #[error("output holds {len} samples: at least {needed} are needed for this input")]
    Output {
        /// Samples available.
        len: usize,
        /// Samples this call writes.
        needed: usize,
    },
}

fn check_common(
    option: &'static str,
    ratio: u32,
    channels: u16,
    max_period_frames: usize,
) -> Result<(), RatioError> {
    if ratio == 0 || ratio > MAX_RATIO {
        return Err(RatioError::Ratio {
            option,
            value: ratio,
        });
    }
    if channels == 0 {
        return Err(RatioError::Channels { option, channels });
    }
    if max_period_frames == 0 || max_period_frames % ratio as usize != 0 {
        return Err(RatioError::Period {
            option,
            ratio,
            period: max_period_frames,
        });
    }
    Ok(())
}

/// The Kaiser-windowed sinc low-pass shared by both directions, normalised to unity DC
/// gain; its length is a multiple of `ratio` (≥ 2).
fn design_lowpass(ratio: usize) -> Vec<f64> {
    let r = ratio as f64;
    let transition = TRANSITION / r;
    // Kaiser's estimate of the length needed for STOPBAND_DB over `transition`.
    let min_len = ((STOPBAND_DB - 7.95) / (14.36 * transition)).ceil() as usize + 1;
    let len = min_len.div_ceil(ratio) * ratio;
    let beta = 0.1102 * (STOPBAND_DB - 8.7);
    let fc = CUTOFF / r;
    let mid = (len - 1) as f64 / 2.0;
    let mut h: Vec<f64> = (0..len)
        .map(|n| {
            let t = n as f64 - mid;
            lowpass_at(fc, t) * kaiser(beta, t / mid)
        })
        .collect();
    let sum: f64 = h.iter().sum();
    for v in &mut h {
        *v /= sum;
    }
    h
}

/// Integer decimator for the capture path (`downsampleRatio`): low-pass, then keep one
/// frame in `ratio`, on interleaved multichannel f32.
///
/// # Realtime contract
/// [`Decimator::process`] and [`Decimator::reset`] neither allocate, lock nor panic; all
/// state is allocated by [`Decimator::new`]. The filter history carries across calls, so a
/// stream cut into periods gives the same output as one long block.
///
/// # Example
/// ```
/// use izyrt::dsp::ratio::Decimator;
///
/// // 48 kHz stereo capture, 64-frame periods, to 24 kHz.
/// let mut dec = Decimator::new(2, 2, 64)?;
/// let input = vec![0.25f32; 64 * 2];
/// let mut output = vec![0.0f32; 32 * 2];
/// for _ in 0..10 {
///     let frames = dec.process(&input, &mut output)?;
///     assert_eq!(frames, 32);
/// }
/// // Once the filter has filled, DC passes at unity gain.
/// assert!((output[63] - 0.25).abs() < 1e-4);
/// # Ok::<(), izyrt::dsp::ratio::RatioError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decimator {
    ratio: usize,
    channels: usize,
    max_period: usize,
    /// Filter taps (symmetric, so no reversal is needed); empty when `ratio` is 1.
    taps: Vec<f32>,
    /// `taps.len() - 1`: samples of history kept per channel.
    history: usize,
    /// One plane per channel: history then room for `max_period` input frames.
    planes: Vec<f32>,
}

impl Decimator {
    /// Builds a decimator by `ratio` for `channels` interleaved channels and input periods
    /// of at most `max_period_frames` (device-rate frames).
    ///
    /// A ratio of 1 is a plain copy.
    ///
    /// # Errors
    /// [`RatioError::Ratio`] unless `1 <= ratio <= MAX_RATIO`; [`RatioError::Channels`] for
    /// 0 channels; [`RatioError::Period`] when `max_period_frames` is 0 or not a multiple of
    /// `ratio`.
    pub fn new(ratio: u32, channels: u16, max_period_frames: usize) -> Result<Self, RatioError> {
        check_common("downsampleRatio", ratio, channels, max_period_frames)?;
        let r = ratio as usize;
        let channels = channels as usize;
        let taps: Vec<f32> = if r == 1 {
            Vec::new()
        } else {
            design_lowpass(r).into_iter().map(|v| v as f32).collect()
        };
        let history = taps.len().saturating_sub(1);
        Ok(Decimator {
            ratio: r,
            channels,
            max_period: max_period_frames,
            taps,
            history,
            planes: vec![0.0; channels * (history + max_period_frames)],
        })
    }

    /// The ratio (input frames per output frame).
    pub fn ratio(&self) -> u32 {
        self.ratio as u32
    }

    /// Interleaved channels.
    pub fn channels(&self) -> u16 {
        self.channels as u16
    }

    /// The largest input period accepted, in input frames.
    pub fn max_period_frames(&self) -> usize {
        self.max_period
    }

    /// Length of the low-pass filter in input-rate taps (0 when the ratio is 1).
    pub fn filter_len(&self) -> usize {
        self.taps.len()
    }

    /// Group delay of the filter, in input (device-rate) frames.
    pub fn delay_frames(&self) -> f64 {
        self.history as f64 / 2.0
    }

    /// Output frames produced for `input_frames` input frames.
    pub fn output_frames(&self, input_frames: usize) -> usize {
        input_frames / self.ratio
    }

    /// Forgets the stream: the next period starts from silence.
    pub fn reset(&mut self) {
        self.planes.fill(0.0);
    }

    /// Filters and decimates one period of interleaved `input` into the front of `output`,
    /// returning the output frames written (`input frames / ratio`).
    ///
    /// # Errors
    /// [`RatioError::Input`] when `input.len()` is not a multiple of `channels × ratio` or
    /// exceeds `max_period_frames × channels`; [`RatioError::Output`] when `output` is
    /// shorter than `input.len() / ratio`. Nothing is consumed on error.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<usize, RatioError> {
        let ch = self.channels;
        let r = self.ratio;
        let max = self.max_period * ch;
        if input.len() % (ch * r) != 0 || input.len() > max {
            return Err(RatioError::Input {
                len: input.len(),
                multiple: ch * r,
                max,
            });
        }
        let frames = input.len() / ch;
        let out_frames = frames / r;
        let needed = out_frames * ch;
        if output.len() < needed {
            return Err(RatioError::Output {
                len: output.len(),
                needed,
            });
        }
        if r == 1 {
            output[..input.len()].copy_from_slice(input);
            return Ok(frames);
        }
        let hist = self.history;
        let stride = hist + self.max_period;
        let taps = &self.taps;
        for (c, plane) in self.planes.chunks_exact_mut(stride).enumerate() {
            for (dst, frame) in plane[hist..hist + frames]
                .iter_mut()
                .zip(input.chunks_exact(ch))
            {
                *dst = frame[c];
            }
            // Output m is the filter centred (taps symmetric) so that its newest input is
            // stream frame m·r + r − 1, which sits at plane index m·r + r − 1 + hist.
            for (m, out) in output[..needed].chunks_exact_mut(ch).enumerate() {
                let start = m * r + r - 1;
                out[c] = dot(taps, &plane[start..start + taps.len()]);
            }
            plane.copy_within(frames..frames + hist, 0);
        }
        Ok(out_frames)
    }
}

/// Integer interpolator for the playback path (`upsampleRatio`): zero-stuff by `ratio`,
/// then low-pass (polyphase, so the stuffed zeros are never multiplied), on interleaved
/// multichannel f32.
///
/// # Realtime contract
/// [`Interpolator::process`] and [`Interpolator::reset`] neither allocate, lock nor panic;
/// all state is allocated by [`Interpolator::new`]. The filter history carries across calls.
///
/// # Example
/// ```
/// use izyrt::dsp::ratio::Interpolator;
///
/// // 24 kHz mono from the network, played on a 48 kHz device with 64-frame periods.
/// let mut up = Interpolator::new(2, 1, 64)?;
/// let input = vec![0.5f32; 32];
/// let mut output = vec![0.0f32; 64];
/// for _ in 0..10 {
///     let frames = up.process(&input, &mut output)?;
///     assert_eq!(frames, 64);
/// }
/// assert!(output.iter().all(|&v| (v - 0.5).abs() < 1e-3));
/// # Ok::<(), izyrt::dsp::ratio::RatioError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Interpolator {
    ratio: usize,
    channels: usize,
    /// Largest output (device-rate) period.
    max_period: usize,
    /// `ratio` branches of `branch_len` taps, each reversed and scaled by `ratio`.
    branches: Vec<f32>,
    branch_len: usize,
    /// `branch_len - 1`: low-rate samples of history kept per channel.
    history: usize,
    /// One plane per channel: history then room for `max_period / ratio` input frames.
    planes: Vec<f32>,
}

impl Interpolator {
    /// Builds an interpolator by `ratio` for `channels` interleaved channels, producing
    /// output (device) periods of at most `max_period_frames` frames, i.e. consuming at most
    /// `max_period_frames / ratio` input frames per call.
    ///
    /// A ratio of 1 is a plain copy.
    ///
    /// # Errors
    /// [`RatioError::Ratio`] unless `1 <= ratio <= MAX_RATIO`; [`RatioError::Channels`] for
    /// 0 channels; [`RatioError::Period`] when `max_period_frames` is 0 or not a multiple of
    /// `ratio`.
    pub fn new(ratio: u32, channels: u16, max_period_frames: usize) -> Result<Self, RatioError> {
        check_common("upsampleRatio", ratio, channels, max_period_frames)?;
        let r = ratio as usize;
        let channels = channels as usize;
        let (branches, branch_len) = if r == 1 {
            (Vec::new(), 0)
        } else {
            let h = design_lowpass(r);
            let k = h.len() / r;
            let mut branches = vec![0.0f32; h.len()];
            for p in 0..r {
                for j in 0..k {
                    // y[m·r + p] = r · Σₖ h[k·r + p] · x[m − k]; stored oldest-first.
                    branches[p * k + j] = (r as f64 * h[(k - 1 - j) * r + p]) as f32;
                }
            }
            (branches, k)
        };
        let history = branch_len.saturating_sub(1);
        let max_in = max_period_frames / r;
        Ok(Interpolator {
            ratio: r,
            channels,
            max_period: max_period_frames,
            branches,
            branch_len,
            history,
            planes: vec![0.0; channels * (history + max_in)],
        })
    }

    /// The ratio (output frames per input frame).
    pub fn ratio(&self) -> u32 {
        self.ratio as u32
    }

    /// Interleaved channels.
    pub fn channels(&self) -> u16 {
        self.channels as u16
    }

    /// The largest output period, in output (device-rate) frames.
    pub fn max_period_frames(&self) -> usize {
        self.max_period
    }

    /// Length of the low-pass filter in output-rate taps (0 when the ratio is 1).
    pub fn filter_len(&self) -> usize {
        self.branches.len()
    }

    /// Group delay of the filter, in output (device-rate) frames.
    pub fn delay_frames(&self) -> f64 {
        self.branches.len().saturating_sub(1) as f64 / 2.0
    }

    /// Input frames needed for `output_frames` output frames (a multiple of the ratio).
    pub fn input_frames(&self, output_frames: usize) -> usize {
        output_frames / self.ratio
    }

    /// Forgets the stream: the next period starts from silence.
    pub fn reset(&mut self) {
        self.planes.fill(0.0);
    }

    /// Interpolates one period of interleaved low-rate `input` into the front of `output`,
    /// returning the output frames written (`input frames × ratio`).
    ///
    /// # Errors
    /// [`RatioError::Input`] when `input.len()` is not a multiple of `channels` or exceeds
    /// `max_period_frames / ratio × channels`; [`RatioError::Output`] when `output` is
    /// shorter than `input.len() × ratio`. Nothing is consumed on error.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<usize, RatioError> {
        let ch = self.channels;
        let r = self.ratio;
        let max = self.max_period / r * ch;
        if input.len() % ch != 0 || input.len() > max {
            return Err(RatioError::Input {
                len: input.len(),
                multiple: ch,
                max,
            });
        }
        let frames = input.len() / ch;
        let needed = input.len() * r;
        if output.len() < needed {
            return Err(RatioError::Output {
                len: output.len(),
                needed,
            });
        }
        if r == 1 {
            output[..input.len()].copy_from_slice(input);
            return Ok(frames);
        }
        let hist = self.history;
        let k = self.branch_len;
        let stride = hist + self.max_period / r;
        let branches = &self.branches;
        for (c, plane) in self.planes.chunks_exact_mut(stride).enumerate() {
            for (dst, frame) in plane[hist..hist + frames]
                .iter_mut()
                .zip(input.chunks_exact(ch))
            {
                *dst = frame[c];
            }
            // Input frame m of this period sits at plane index m + hist; its window of the
            // last k inputs starts at m.
            for (m, group) in output[..needed].chunks_exact_mut(r * ch).enumerate() {
                let window = &plane[m..m + k];
                for (branch, out) in branches.chunks_exact(k).zip(group.chunks_exact_mut(ch)) {
                    out[c] = dot(branch, window);
                }
            }
            plane.copy_within(frames..frames + hist, 0);
        }
        Ok(frames * r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_is_symmetric_unity_gain_and_a_multiple_of_the_ratio() {
        for r in 2..=MAX_RATIO as usize {
            let h = design_lowpass(r);
            assert_eq!(h.len() % r, 0, "ratio {r}");
            let sum: f64 = h.iter().sum();
            assert!((sum - 1.0).abs() < 1e-12);
            for (a, b) in h.iter().zip(h.iter().rev()) {
                assert!((a - b).abs() < 1e-15);
            }
            // Each polyphase branch has ~1/r of the DC gain, so the interpolator passes DC.
            for p in 0..r {
                let branch: f64 = h.iter().skip(p).step_by(r).sum();
                assert!(
                    (branch * r as f64 - 1.0).abs() < 1e-3,
                    "ratio {r} branch {p}: {branch}"
                );
            }
        }
    }
}
