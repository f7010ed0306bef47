//! The pieces every windowed-sinc filter here is built from (main thread, when a filter is
//! designed) and the dot product its taps are applied with (RT audio thread): shared by the
//! integer ratios (`dsp::ratio`) and the clock-locking resampler (`dsp::resampler`).

use std::f64::consts::PI;

/// Modified Bessel function of the first kind, order 0 (power series).
pub(crate) fn bessel_i0(x: f64) -> f64 {
    let half = x / 2.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut k = 1.0;
    while term > sum * 1e-17 {
        term *= (half / k) * (half / k);
        sum += term;
        k += 1.0;
    }
    sum
}

/// The Kaiser window of shape `beta` at `u` (−1 at one end, 0 at the centre, 1 at the
/// other), normalised to 1 at the centre.
pub(crate) fn kaiser(beta: f64, u: f64) -> f64 {
    bessel_i0(beta * (1.0 - u * u).max(0.0).sqrt()) / bessel_i0(beta)
}

/// An ideal low-pass's impulse response with its −6 dB point at `cutoff` cycles per
/// sample, `t` samples from its centre (unity DC gain).
pub(crate) fn lowpass_at(cutoff: f64, t: f64) -> f64 {
    let x = 2.0 * cutoff * t;
    let sinc = if x == 0.0 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    };
    2.0 * cutoff * sinc
}

/// Dot product with eight independent accumulators, so the compiler can vectorise it
/// without reassociating a single float sum; a length that is not a multiple of 8 has its
/// remainder summed too.
///
/// Runs on: the RT audio thread, per output sample. Must not: allocate (slices only).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, p), q) in acc.iter_mut().zip(x).zip(y) {
            *s += p * q;
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (p, q) in ra.iter().zip(rb) {
        sum += p * q;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bessel_i0_matches_known_values() {
        // I0(0) = 1, I0(1) = 1.2660658777520082, I0(5) = 27.239871823604442.
        assert!((bessel_i0(0.0) - 1.0).abs() < 1e-15);
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_2).abs() < 1e-12);
        assert!((bessel_i0(5.0) - 27.239_871_823_604_442).abs() < 1e-9);
    }

    #[test]
    fn kaiser_is_one_at_the_centre_and_symmetric() {
        assert!((kaiser(8.0, 0.0) - 1.0).abs() < 1e-15);
        assert!((kaiser(8.0, 0.3) - kaiser(8.0, -0.3)).abs() < 1e-15);
        assert!((kaiser(8.0, 1.0) - 1.0 / bessel_i0(8.0)).abs() < 1e-15);
    }

    #[test]
    fn dot_matches_naive_sum_for_odd_lengths() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.01).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }
}
