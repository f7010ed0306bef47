//! A variable-ratio resampler for locking a client's clock to the hub's (issue 17).
//!
//! Design: the ratio stays within a few thousand ppm of 1.0 and the controller changes it
//! every period, so the resampler is driven one period at a time in two ways: the speaker
//! side *pulls* exactly N output frames per device period (asking first how much input
//! that takes), the capture side *pushes* N input frames and takes whatever output they
//! make. Both need an exact, fractional account of the input still queued
//! ([`Resampler::buffered_frames`]), which the controller adds to its jitter buffer's depth.
//!
//! Why not rubato 5.0.1's variable-ratio `Async`: its chunk size is fixed at construction,
//! and it keeps its own input buffer whose fill and fractional position it does not
//! expose, so the controller could not count the queued audio exactly; it also costs more
//! for the same quality and adds more delay. Measured with `benches/resampler.rs` (one
//! 64-frame stereo pull period at step 1.0005 on the shared 2-core VM, quiet; SNR against
//! the best-fitting sine at the output frequency, after warm-up; delay at 1 kHz as each
//! reports it):
//!
//! | resampler | SNR 1 kHz | SNR 10 kHz | ns / period | delay, frames |
//! |-----------|-----------|------------|-------------|---------------|
//! | this one: 48 taps, 256 phases, blended, minimum phase | 123.7 dB | 112.6 dB | 1 520 | 2.9 |
//! | rubato `Async` sinc 256, cubic, ×128 (its default) | 134.8 dB | 133.5 dB | 6 890 | 128 |
//! | rubato `Async` sinc 64, linear, ×256 | 141.4 dB | 120.2 dB | 2 370 | 32 |
//! | rubato `Async` polynomial, septic | 145.9 dB | 53.4 dB | 1 900 | 4 |
//!
//! Against the exact ideal (its phase delay and gain counted, the unit tests) this one
//! keeps 110.7 dB at 1 kHz and 111.9 dB at 10 kHz. rubato's sinc filters are cleaner
//! (their Blackman-Harris windows go deeper than this kernel's 100 dB design), but at
//! 1.6× to 4.5× the cost and 11× to 44× the delay, for a difference far below any
//! converter's own noise; its polynomial is as cheap and nearly as short but loses high
//! frequencies (53 dB at 10 kHz). A survey of kernels (`kernel_survey` in the tests, SNR
//! at 1 / 10 / 16 kHz) set the size: 24 taps lose 16 kHz (62 dB); 32 taps keep ≈ 100 dB
//! at all three but are flat only to ≈ 16.6 kHz (Kaiser's estimate); 48 taps (108 / 116
//! / 104 dB) stay flat to ≈ 18 kHz; 64 taps gain ≈ 5 dB at 1 kHz only. Below 256 phases
//! the blend limits 10 kHz (89 dB at 64 phases, 102 at 128).
//!
//! The filter is a Kaiser-windowed sinc ([`FILTER_TAPS`] taps, β for ≈ 100 dB, −6 dB at
//! 0.45 of the input rate, flat to ≈ 0.38) made minimum-phase (`kernel.rs`: the same
//! magnitude response, 2.9 frames of delay at low frequencies and 3.5 at 16 kHz instead
//! of the symmetric kernel's 24 everywhere: 21 frames less on each of a client's two
//! resamplers, 0.9 ms of every round trip at 48 kHz), sampled at [`PHASES`] fractional
//! offsets; the taps for any fraction are a linear blend of the two nearest rows,
//! computed once per output frame and shared by all channels. The filter is causal: an
//! output frame reads no input after its own position, so nothing waits for look-ahead.
//! Since the ratio is ≈ 1 the images a
//! fractional delay creates lie above the stopband edge and no extra anti-aliasing is
//! needed. It is not meant for ratios far from 1: steps from 0.5 to 2 are accepted, but a
//! step well above 1 aliases what lies between the output's Nyquist frequency (0.5 / step
//! of the input rate) and the stopband edge (≈ 0.52).
//!
//! The read position is an input frame index plus a 40-bit fixed-point fraction, advanced
//! by the (fixed-point) step once per output frame. Integer addition makes it exact: a
//! ratio change never jumps the phase, the output depends neither on how the input was
//! cut into pushes nor on how the output was cut into calls, and
//! [`Resampler::input_needed`] computes in one multiplication exactly where that many
//! additions will land, so it agrees with [`Resampler::process`] to the frame (a float
//! position would need the additions replayed: measured, that replay was a third of the
//! cost of a period).
//! The FIFO is one plane per channel, allocated by [`Resampler::new`]; when a push would
//! run off its end, the frames still needed (filter window plus queue) are moved to the
//! front, a copy of about [`FILTER_TAPS`] frames in steady state.

mod error;
mod kernel;
#[cfg(test)]
mod tests;

pub use error::ResamplerError;

use kernel::{KernelSpec, design_table, dot, lerp_rows, phase_delay};

/// Length of the interpolation filter, in input frames; also the frames the FIFO keeps
/// around the read position.
pub const FILTER_TAPS: usize = 48;

/// Filter rows per input frame (the blend between two rows gives any fraction).
pub const PHASES: usize = 256;

/// The smallest step (input frames per output frame) accepted.
pub const MIN_STEP: f64 = 0.5;

/// The largest step accepted.
pub const MAX_STEP: f64 = 2.0;

/// The largest `max_frames` accepted by [`Resampler::new`].
pub const MAX_FRAMES: usize = 1 << 16;

/// The filter this module uses.
const SPEC: KernelSpec = KernelSpec {
    half: FILTER_TAPS / 2,
    phases: PHASES,
    cutoff: 0.45,
    // Kaiser's β for 100 dB of stopband attenuation: 0.1102 × (100 − 8.7).
    beta: 10.06,
    minimum_phase: true,
};

/// [`SPEC`]'s table, designed once per process (three FFTs of 2^17 points).
fn spec_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| design_table(&SPEC))
}

/// A variable-ratio resampler on interleaved f32, for steps (input frames per output
/// frame) near 1: a FIFO of input frames and a fractional read position.
///
/// # Realtime contract
/// After [`Resampler::new`], no method allocates, frees, locks, logs or panics, whatever
/// the lengths and values given.
///
/// # Example
/// The pull (speaker) side: exactly 64 output frames per period, at 0.05 % faster.
/// ```
/// use izyrt::dsp::resampler::Resampler;
///
/// let mut rs = Resampler::new(2, 64)?;
/// let step = 1.0005;
/// let mut out = vec![0.0f32; 64 * 2];
/// for _ in 0..100 {
///     let need = rs.input_needed(64, step);
///     let input = vec![0.25f32; need * 2]; // from the jitter buffer
///     assert_eq!(rs.push(&input), need);
///     rs.process(&mut out, step)?;
/// }
/// // DC passes at unity gain once the filter has filled.
/// assert!(out.iter().all(|&v| (v - 0.25).abs() < 1e-6));
/// // 6400 output frames took 6403 input frames; the next one is centred at 6403.2.
/// assert!((rs.buffered_frames() + 0.2).abs() < 1e-9);
/// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
/// ```
pub struct Resampler {
    channels: usize,
    max_frames: usize,
    taps: usize,
    phases: usize,
    /// `phases + 1` rows of `taps` coefficients.
    table: Vec<f32>,
    /// The blended taps of the output frame being computed.
    coeffs: Vec<f32>,
    /// One plane of `plane_len` frames per channel.
    planes: Vec<f32>,
    plane_len: usize,
    /// Most input frames buffered beyond the filter window.
    capacity: usize,
    /// Most frames the FIFO holds: `taps − 1 + capacity`.
    hold: usize,
    /// Plane index of the first tap of the next output frame.
    start: usize,
    /// Plane index after the newest frame.
    end: usize,
    /// Where the next output's centre lies past its input frame, in units of
    /// 2^−[`FRAC_BITS`] frame (below [`ONE`]).
    frac: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("channels", &self.channels)
            .field("max_frames", &self.max_frames)
            .field("taps", &self.taps)
            .field("phases", &self.phases)
            .field("capacity", &self.capacity)
            .field("buffered_frames", &self.buffered_frames())
            .finish_non_exhaustive()
    }
}

/// Whether `process` accepts `step`.
fn valid_step(step: f64) -> bool {
    (MIN_STEP..=MAX_STEP).contains(&step)
}

/// Bits of the read position's fraction.
const FRAC_BITS: u32 = 40;
/// One input frame in units of the fraction.
const ONE: u64 = 1 << FRAC_BITS;

/// `step` (valid) in units of the fraction: exact to 1e−12 frame, so a step's rounding
/// drifts the position by less than 1e−7 frame an hour.
fn fixed_step(step: f64) -> u64 {
    (step * ONE as f64).round() as u64
}

impl Resampler {
    /// Builds a resampler for `channels` interleaved channels whose calls each handle at
    /// most `max_frames` input or output frames. The FIFO holds up to
    /// [`Resampler::capacity_frames`] = 4 × `max_frames` input frames beyond the filter
    /// window. Starts from silence, like after [`Resampler::reset`].
    ///
    /// Runs on: the main thread (it allocates).
    ///
    /// # Errors
    /// [`ResamplerError::Channels`] for 0 channels, [`ResamplerError::MaxFrames`] unless
    /// `1 <= max_frames <= MAX_FRAMES`, [`ResamplerError::Memory`] when the FIFO cannot be
    /// allocated.
    ///
    /// # Example
    /// ```
    /// let rs = izyrt::dsp::resampler::Resampler::new(2, 1024)?;
    /// assert_eq!(rs.capacity_frames(), 4096);
    /// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
    /// ```
    pub fn new(channels: u16, max_frames: usize) -> Result<Self, ResamplerError> {
        Self::with_spec(channels, max_frames, &SPEC)
    }

    fn with_spec(
        channels: u16,
        max_frames: usize,
        spec: &KernelSpec,
    ) -> Result<Self, ResamplerError> {
        if channels == 0 {
            return Err(ResamplerError::Channels { channels });
        }
        if max_frames == 0 || max_frames > MAX_FRAMES {
            return Err(ResamplerError::MaxFrames { max_frames });
        }
        let ch = usize::from(channels);
        let taps = spec.taps();
        let capacity = 4 * max_frames;
        let hold = taps - 1 + capacity;
        let plane_len = 2 * hold;
        let samples = ch * plane_len;
        let mut planes = Vec::new();
        planes
            .try_reserve_exact(samples)
            .map_err(|_| ResamplerError::Memory { samples })?;
        planes.resize(samples, 0.0);
        let table = if *spec == SPEC {
            spec_table().to_vec()
        } else {
            design_table(spec)
        };
        let mut rs = Resampler {
            channels: ch,
            max_frames,
            taps,
            phases: spec.phases,
            table,
            coeffs: vec![0.0; taps],
            planes,
            plane_len,
            capacity,
            hold,
            start: 0,
            end: 0,
            frac: 0,
        };
        rs.reset();
        Ok(rs)
    }

    /// Interleaved channels.
    ///
    /// # Example
    /// ```
    /// let rs = izyrt::dsp::resampler::Resampler::new(2, 64)?;
    /// assert_eq!(rs.channels(), 2);
    /// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
    /// ```
    pub fn channels(&self) -> u16 {
        self.channels as u16
    }

    /// The `max_frames` given to [`Resampler::new`].
    ///
    /// # Example
    /// ```
    /// let rs = izyrt::dsp::resampler::Resampler::new(2, 64)?;
    /// assert_eq!(rs.max_frames(), 64);
    /// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
    /// ```
    pub fn max_frames(&self) -> usize {
        self.max_frames
    }

    /// Most input frames the FIFO queues beyond the filter window:
    /// [`Resampler::buffered_frames`] never exceeds it.
    ///
    /// # Example
    /// ```
    /// let mut rs = izyrt::dsp::resampler::Resampler::new(1, 8)?;
    /// assert_eq!(rs.push(&[0.0; 100]), rs.capacity_frames());
    /// assert_eq!(rs.buffered_frames(), 32.0);
    /// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
    /// ```
    pub fn capacity_frames(&self) -> usize {
        self.capacity
    }

    /// Input frames still to push before [`Resampler::process`] can make `out_frames`
    /// output frames at `step` (input frames per output frame); 0 when enough is
    /// buffered, and 0 for a step `process` would refuse.
    ///
    /// Runs on: the RT audio thread, once per period. Must not: allocate, lock, block.
    ///
    /// # Example
    /// ```
    /// let mut rs = izyrt::dsp::resampler::Resampler::new(1, 64)?;
    /// // From reset, 64 frames at step 1.0 need 64 input frames.
    /// assert_eq!(rs.input_needed(64, 1.0), 64);
    /// rs.push(&[0.0; 10]);
    /// assert_eq!(rs.input_needed(64, 1.0), 54);
    /// // Frames 0, 1.5, …, 94.5: 95 input frames.
    /// assert_eq!(rs.input_needed(64, 1.5), 85);
    /// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
    /// ```
    pub fn input_needed(&self, out_frames: usize, step: f64) -> usize {
        if out_frames == 0 || !valid_step(step) {
            return 0;
        }
        self.last_start(out_frames, fixed_step(step))
            .saturating_add(self.taps)
            .saturating_sub(self.end)
    }

    /// Plane index of the first tap of output frame `frames − 1` from now (`frames ≥ 1`):
    /// in integers, exactly where `frames − 1` single advances would put it.
    fn last_start(&self, frames: usize, step: u64) -> usize {
        let ahead = (u128::from(self.frac) + (frames as u128).saturating_sub(1) * u128::from(step))
            >> FRAC_BITS;
        self.start
            .saturating_add(usize::try_from(ahead).unwrap_or(usize::MAX))
    }

    /// Appends interleaved `input` and returns the frames taken: all of them unless the
    /// FIFO is full ([`Resampler::capacity_frames`]). A partial trailing frame is ignored.
    ///
    /// Runs on: the RT audio thread, once per period. Must not: allocate, lock, block.
    ///
    /// # Example
    /// ```
    /// let mut rs = izyrt::dsp::resampler::Resampler::new(2, 16)?;
    /// assert_eq!(rs.push(&[0.1; 7]), 3); // 3 stereo frames, the lone sample ignored
    /// assert_eq!(rs.buffered_frames(), 3.0);
    /// assert_eq!(rs.push(&vec![0.1; 1000]), 64 - 3); // full: 4 × 16 frames
    /// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
    /// ```
    pub fn push(&mut self, input: &[f32]) -> usize {
        let ch = self.channels;
        let held = self.end.saturating_sub(self.start);
        let n = (input.len() / ch).min(self.hold.saturating_sub(held));
        if n == 0 {
            return 0;
        }
        if self.end.saturating_add(n) > self.plane_len {
            // start ≤ end ≤ plane_len always holds; checked anyway, as copy_within panics.
            let from = self.start.min(self.end)..self.end.min(self.plane_len);
            for plane in self.planes.chunks_exact_mut(self.plane_len) {
                plane.copy_within(from.clone(), 0);
            }
            self.end = from.len();
            self.start = 0;
        }
        let (from, to) = (self.end, self.end + n);
        for (c, plane) in self.planes.chunks_exact_mut(self.plane_len).enumerate() {
            let Some(dst) = plane.get_mut(from..to) else {
                return 0;
            };
            for (d, frame) in dst.iter_mut().zip(input.chunks_exact(ch)) {
                *d = frame.get(c).copied().unwrap_or(0.0);
            }
        }
        self.end = to;
        n
    }

    /// Fills all of `out` (interleaved) at `step`, consuming the input it passes. A
    /// partial trailing frame of `out` is zeroed.
    ///
    /// Runs on: the RT audio thread, once per period. Must not: allocate, lock, block.
    ///
    /// # Errors
    /// [`ResamplerError::Step`] when `step` is not finite or outside
    /// [`MIN_STEP`]..=[`MAX_STEP`]; [`ResamplerError::NotEnoughInput`] when fewer input
    /// frames are buffered than [`Resampler::input_needed`] says. Then nothing is
    /// consumed and `out` is zeroed.
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::resampler::{Resampler, ResamplerError};
    /// let mut rs = Resampler::new(1, 64)?;
    /// let mut out = [1.0f32; 64];
    /// let err = rs.process(&mut out, 1.0).unwrap_err();
    /// assert_eq!(err, ResamplerError::NotEnoughInput { out_frames: 64, needed: 64 });
    /// assert!(out.iter().all(|&v| v == 0.0));
    /// # Ok::<(), ResamplerError>(())
    /// ```
    pub fn process(&mut self, out: &mut [f32], step: f64) -> Result<(), ResamplerError> {
        let frames = out.len() / self.channels;
        if !valid_step(step) {
            out.fill(0.0);
            return Err(ResamplerError::Step { step });
        }
        if frames > 0 {
            let needed = self
                .last_start(frames, fixed_step(step))
                .saturating_add(self.taps)
                .saturating_sub(self.end);
            if needed > 0 {
                out.fill(0.0);
                return Err(ResamplerError::NotEnoughInput {
                    out_frames: frames,
                    needed,
                });
            }
        }
        let written = self.render(out, step);
        if let Some(rest) = out.get_mut(written * self.channels..) {
            rest.fill(0.0);
        }
        Ok(())
    }

    /// Produces as many whole output frames at `step` as the buffered input allows, up to
    /// `out.len() / channels`, and returns the frames written (0 for a step
    /// [`Resampler::process`] would refuse). The rest of `out` is left as it was.
    ///
    /// Runs on: the RT audio thread, once per period. Must not: allocate, lock, block.
    ///
    /// # Example
    /// The push (capture) side: 64 input frames per period, all the output they make.
    /// ```
    /// let mut rs = izyrt::dsp::resampler::Resampler::new(1, 64)?;
    /// let mut out = [0.0f32; 66];
    /// let mut made = 0;
    /// for _ in 0..100 {
    ///     rs.push(&[0.5; 64]);
    ///     made += rs.process_available(&mut out, 1.0005);
    /// }
    /// assert_eq!(made, 6397); // 6400 / 1.0005 = 6396.8
    /// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
    /// ```
    pub fn process_available(&mut self, out: &mut [f32], step: f64) -> usize {
        if !valid_step(step) {
            return 0;
        }
        self.render(out, step)
    }

    /// Writes output frames into `out` until it is full or the input runs short; returns
    /// the frames written. `step` is valid.
    fn render(&mut self, out: &mut [f32], step: f64) -> usize {
        let Resampler {
            channels,
            taps,
            phases,
            table,
            coeffs,
            planes,
            plane_len,
            start,
            end,
            frac,
            ..
        } = self;
        let (ch, taps, phases) = (*channels, *taps, *phases as u64);
        let step = fixed_step(step);
        let mut written = 0;
        for frame in out.chunks_exact_mut(ch) {
            let first = *start;
            if first.saturating_add(taps) > *end {
                break;
            }
            // frac < 2^40 and phases ≤ 2^16: no overflow.
            let pos = *frac * phases;
            let row = (pos >> FRAC_BITS) as usize;
            let blend = ((pos & (ONE - 1)) as f64 / ONE as f64) as f32;
            let (Some(r0), Some(r1)) = (
                table.get(row * taps..(row + 1) * taps),
                table.get((row + 1) * taps..(row + 2) * taps),
            ) else {
                break;
            };
            lerp_rows(coeffs, r0, r1, blend);
            for (o, plane) in frame.iter_mut().zip(planes.chunks_exact(*plane_len)) {
                *o = plane
                    .get(first..first + taps)
                    .map_or(0.0, |x| dot(coeffs, x));
            }
            let t = *frac + step;
            *start = first.saturating_add((t >> FRAC_BITS) as usize);
            *frac = t & (ONE - 1);
            written += 1;
        }
        written
    }

    /// Input frames pushed and not yet passed by the fractional read position (the filter
    /// is causal: it reads nothing ahead of that position): the audio queued here, to
    /// add to the jitter buffer's depth. An output frame can be made while it is
    /// above 0; after [`Resampler::process_available`] has drained the FIFO it lies in
    /// (−step, 0].
    ///
    /// Runs on: the RT audio thread, once per period. Must not: allocate, lock, block.
    ///
    /// # Example
    /// ```
    /// let mut rs = izyrt::dsp::resampler::Resampler::new(1, 64)?;
    /// rs.push(&[0.0; 64]);
    /// let mut out = [0.0f32; 32];
    /// rs.process(&mut out, 1.25)?;
    /// assert_eq!(rs.buffered_frames(), 64.0 - 32.0 * 1.25);
    /// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
    /// ```
    pub fn buffered_frames(&self) -> f64 {
        self.end as f64 - self.start as f64 - (self.taps - 1) as f64 - self.frac as f64 / ONE as f64
    }

    /// The filter's delay at low frequencies, input frames: output frame n is the input
    /// at `Σ steps before n − delay_frames()` (counted from the first frame pushed after
    /// [`Resampler::reset`]), exactly for DC and for a ramp. The kernel is minimum-phase,
    /// so higher frequencies come a little later ([`Resampler::phase_delay_frames`]).
    ///
    /// # Example
    /// ```
    /// let rs = izyrt::dsp::resampler::Resampler::new(1, 64)?;
    /// let d = rs.delay_frames();
    /// assert!(d > 2.0 && d < 4.0, "{d}"); // about 0.06 ms at 48 kHz
    /// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
    /// ```
    pub fn delay_frames(&self) -> f64 {
        self.phase_delay_frames(0.0)
    }

    /// The delay, input frames, at which a sine of `freq` cycles per input frame passes
    /// (its phase delay): [`Resampler::delay_frames`] at 0, rising towards the top of the
    /// band.
    ///
    /// Runs on: any thread, not per period (a few thousand multiplications).
    ///
    /// # Example
    /// ```
    /// let rs = izyrt::dsp::resampler::Resampler::new(1, 64)?;
    /// let (low, high) = (rs.phase_delay_frames(0.0), rs.phase_delay_frames(10_000.0 / 48_000.0));
    /// assert!(high > low && high < low + 1.0, "{low} {high}");
    /// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
    /// ```
    pub fn phase_delay_frames(&self, freq: f64) -> f64 {
        phase_delay(self.table.get(..self.taps).unwrap_or(&[]), freq)
    }

    /// Forgets all input and the read position: the next output starts from silence, as
    /// after [`Resampler::new`].
    ///
    /// Runs on: the RT audio thread, when the stream restarts. Must not: allocate, lock,
    /// block.
    ///
    /// # Example
    /// ```
    /// let mut rs = izyrt::dsp::resampler::Resampler::new(1, 64)?;
    /// rs.push(&[1.0; 64]);
    /// rs.reset();
    /// assert_eq!(rs.buffered_frames(), 0.0);
    /// # Ok::<(), izyrt::dsp::resampler::ResamplerError>(())
    /// ```
    pub fn reset(&mut self) {
        let history = self.taps - 1;
        for plane in self.planes.chunks_exact_mut(self.plane_len) {
            if let Some(h) = plane.get_mut(..history) {
                h.fill(0.0);
            }
        }
        self.start = 0;
        self.end = history;
        self.frac = 0;
    }
}
