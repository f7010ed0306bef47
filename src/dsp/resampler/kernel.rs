//! The interpolation kernel of [`Resampler`](super::Resampler): a Kaiser-windowed sinc
//! sampled at `phases + 1` fractional offsets, built once on the main thread.
//!
//! Row `p` holds the taps for an output whose centre lies `p / phases` of a frame after an
//! input frame; the row after it is the same kernel one table step later, so linear
//! interpolation between two adjacent rows gives the taps for any fraction. Each row is
//! normalised to unity sum, so DC passes at exactly unity gain whatever the fraction.

pub(crate) use crate::dsp::fir::dot;
use crate::dsp::fir::{kaiser, lowpass_at};

/// The shape of a kernel: enough to rebuild its table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KernelSpec {
    /// Input taps on each side of the centre; the filter is `2 × half` taps long.
    pub half: usize,
    /// Table rows per input frame (the table has `phases + 1` rows).
    pub phases: usize,
    /// −6 dB point of the low-pass, in cycles per input frame.
    pub cutoff: f64,
    /// Kaiser window β.
    pub beta: f64,
}

impl KernelSpec {
    /// Filter length in input taps.
    pub fn taps(&self) -> usize {
        2 * self.half
    }
}

/// The continuous kernel at `t` input frames from its centre (0 outside `(−half, half)`).
fn kernel_at(spec: &KernelSpec, t: f64) -> f64 {
    let half = spec.half as f64;
    let u = t / half;
    if u.abs() >= 1.0 {
        return 0.0;
    }
    lowpass_at(spec.cutoff, t) * kaiser(spec.beta, u)
}

/// Builds the phase table: `phases + 1` rows of `taps` f32 coefficients, row-major.
///
/// Tap `m` of row `p` weighs input frame `first + m` for an output centred at
/// `first + half − 1 + p / phases`, i.e. it is the kernel at `p / phases + half − 1 − m`.
pub(crate) fn design_table(spec: &KernelSpec) -> Vec<f32> {
    let taps = spec.taps();
    let mut table = Vec::with_capacity((spec.phases + 1) * taps);
    let mut row = vec![0.0f64; taps];
    for p in 0..=spec.phases {
        let frac = p as f64 / spec.phases as f64;
        for (m, v) in row.iter_mut().enumerate() {
            *v = kernel_at(spec, frac + spec.half as f64 - 1.0 - m as f64);
        }
        let sum: f64 = row.iter().sum();
        table.extend(row.iter().map(|v| (v / sum) as f32));
    }
    table
}

/// Writes into `out` the taps for fraction `a` (in table steps, `0 ≤ a < 1`) between rows
/// `r0` and `r1`.
#[inline]
pub(crate) fn lerp_rows(out: &mut [f32], r0: &[f32], r1: &[f32], a: f32) {
    // Equal lengths up front, so the loop vectorises (a three-way zip does not).
    let n = out.len().min(r0.len()).min(r1.len());
    let (out, r0, r1) = (&mut out[..n], &r0[..n], &r1[..n]);
    for i in 0..n {
        out[i] = r0[i] + a * (r1[i] - r0[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: KernelSpec = KernelSpec {
        half: 16,
        phases: 64,
        cutoff: 0.45,
        beta: 10.0,
    };

    #[test]
    fn rows_sum_to_one_and_the_last_is_the_first_shifted() {
        let t = design_table(&SPEC);
        let taps = SPEC.taps();
        assert_eq!(t.len(), (SPEC.phases + 1) * taps);
        for row in t.chunks_exact(taps) {
            let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
            assert!((sum - 1.0).abs() < 1e-6, "{sum}");
        }
        // Fraction 1 is fraction 0 one input frame later.
        let (first, last) = (&t[..taps], &t[SPEC.phases * taps..]);
        for m in 0..taps - 1 {
            assert!((first[m] - last[m + 1]).abs() < 1e-6, "tap {m}");
        }
        // Symmetric: fraction 1/2 is its own mirror image.
        let mid = &t[SPEC.phases / 2 * taps..(SPEC.phases / 2 + 1) * taps];
        for m in 0..taps {
            assert!((mid[m] - mid[taps - 1 - m]).abs() < 1e-6, "tap {m}");
        }
    }

    #[test]
    fn dot_and_lerp_match_naive_arithmetic() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.01).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
        let mut out = vec![0.0; 37];
        lerp_rows(&mut out, &a, &b, 0.25);
        for i in 0..37 {
            assert!((out[i] - (0.75 * a[i] + 0.25 * b[i])).abs() < 1e-5);
        }
    }
}
