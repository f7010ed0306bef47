//! The interpolation kernel of [`Resampler`](super::Resampler): a Kaiser-windowed sinc,
//! turned minimum-phase, sampled at `phases + 1` fractional offsets, built once on the
//! main thread.
//!
//! Design: a linear-phase (symmetric) kernel of `taps` frames delays every frequency by
//! half its length, 24 frames (0.5 ms) for the resampler's 48 taps, and a client runs two
//! of them (its capture on the way to the hub, the hub's mix on the way to its speaker):
//! a millisecond of every round trip spent on symmetry nobody hears. Its minimum-phase
//! twin has exactly the same magnitude response (same passband, same stopband, so the
//! same SNR through the resampler) with its energy at the start: about 3 frames of delay
//! at low frequencies, its group delay rising to about 7 near 18 kHz. The price is that
//! variation over the band, 0.08 ms, as in the "short delay" filters of many converters.
//! The twin is made by the real-cepstrum method (log magnitude, fold the cepstrum onto
//! positive quefrencies, exponentiate) on the whole prototype, with FFTs eight times its
//! length so the cepstrum does not alias.
//!
//! Row `p` holds the taps for an output at `p / phases` of a frame after the window's
//! newest input frame: tap `m` weighs the input `taps − 1 − m + p / phases` frames before
//! that position. The row after the last is the first one frame later, so linear
//! interpolation between two adjacent rows gives the taps for any fraction. Each row is
//! normalised to unity sum, so DC passes at exactly unity gain whatever the fraction.

pub(crate) use crate::dsp::fir::dot;
use crate::dsp::fir::{kaiser, lowpass_at};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use std::f64::consts::TAU;

/// The shape of a kernel: enough to rebuild its table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KernelSpec {
    /// Half the filter's length: it is `2 × half` input taps long.
    pub half: usize,
    /// Table rows per input frame (the table has `phases + 1` rows).
    pub phases: usize,
    /// −6 dB point of the low-pass, in cycles per input frame.
    pub cutoff: f64,
    /// Kaiser window β.
    pub beta: f64,
    /// The minimum-phase twin instead of the symmetric kernel.
    pub minimum_phase: bool,
}

impl KernelSpec {
    /// Filter length in input taps.
    pub fn taps(&self) -> usize {
        2 * self.half
    }
}

/// The symmetric kernel at every table step: sample `n` is the kernel `n / phases` frames
/// after its start (`n` from 0 to `taps × phases`; 0 at both ends).
fn prototype(spec: &KernelSpec) -> Vec<f64> {
    let half = spec.half as f64;
    let len = spec.taps() * spec.phases + 1;
    (0..len)
        .map(|n| {
            let t = n as f64 / spec.phases as f64 - half;
            let u = t / half;
            if u.abs() >= 1.0 {
                0.0
            } else {
                lowpass_at(spec.cutoff, t) * kaiser(spec.beta, u)
            }
        })
        .collect()
}

/// The minimum-phase sequence with `h`'s magnitude response, as long as `h` (real
/// cepstrum; a magnitude floor of −180 dB keeps the stopband's zeros finite).
fn minimum_phase(h: &[f64]) -> Vec<f64> {
    let n = (h.len() * 8).next_power_of_two().max(1024);
    let mut planner = FftPlanner::<f64>::new();
    let (fwd, inv) = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
    let mut buf: Vec<Complex<f64>> = (0..n)
        .map(|i| Complex::new(h.get(i).copied().unwrap_or(0.0), 0.0))
        .collect();
    fwd.process(&mut buf);
    let peak = buf.iter().map(|z| z.norm()).fold(0.0, f64::max);
    for z in &mut buf {
        *z = Complex::new(z.norm().max(peak * 1e-9).ln(), 0.0);
    }
    inv.process(&mut buf); // the real cepstrum, times n
    for (i, z) in buf.iter_mut().enumerate() {
        let fold = match i {
            0 => 1.0,
            i if i < n / 2 => 2.0,
            i if i == n / 2 => 1.0,
            _ => 0.0,
        };
        *z = Complex::new(z.re * fold / n as f64, 0.0);
    }
    fwd.process(&mut buf);
    for z in &mut buf {
        *z = z.exp();
    }
    inv.process(&mut buf);
    buf.iter().take(h.len()).map(|z| z.re / n as f64).collect()
}

/// Builds the phase table: `phases + 1` rows of `taps` f32 coefficients, row-major.
///
/// Tap `m` of row `p` is the kernel `taps − 1 − m + p / phases` frames after its start.
pub(crate) fn design_table(spec: &KernelSpec) -> Vec<f32> {
    let mut proto = prototype(spec);
    if spec.minimum_phase {
        proto = minimum_phase(&proto);
    }
    let (taps, phases) = (spec.taps(), spec.phases);
    let mut table = Vec::with_capacity((phases + 1) * taps);
    let mut row = vec![0.0f64; taps];
    for p in 0..=phases {
        for (m, v) in row.iter_mut().enumerate() {
            *v = proto
                .get(p + (taps - 1 - m) * phases)
                .copied()
                .unwrap_or(0.0);
        }
        let sum: f64 = row.iter().sum();
        table.extend(row.iter().map(|v| (v / sum) as f32));
    }
    table
}

/// A filter's response at `w` radians per frame, from its taps as (delay in frames,
/// coefficient) pairs: `Σ c · e^(−i·w·t)`, as (real, imaginary).
fn response(w: f64, taps: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    taps.fold((0.0, 0.0), |(re, im), (t, c)| {
        let a = -w * t;
        (re + c * a.cos(), im + c * a.sin())
    })
}

/// The delay, frames, at which `row` (a row for fraction 0) passes a sine of `freq`
/// cycles per frame: its phase, unwrapped from DC, over the angular frequency. At 0, the
/// group delay at DC (the taps' centroid).
pub(crate) fn phase_delay(row: &[f32], freq: f64) -> f64 {
    let taps = row.len();
    let lag = |m: usize| (taps - 1 - m) as f64;
    let centroid: f64 = row
        .iter()
        .enumerate()
        .map(|(m, &c)| f64::from(c) * lag(m))
        .sum();
    let omega = TAU * freq;
    if omega.abs() < 1e-12 {
        return centroid;
    }
    // The phase around the centroid's linear part, unwrapped in small steps.
    let residual = |w: f64| {
        let taps = row.iter().enumerate();
        let (re, im) = response(w, taps.map(|(m, &c)| (lag(m) - centroid, f64::from(c))));
        im.atan2(re)
    };
    let steps = 256;
    let (mut phase, mut last) = (0.0, 0.0);
    for k in 1..=steps {
        let now = residual(omega * k as f64 / steps as f64);
        let mut d = now - last;
        d -= TAU * (d / TAU).round();
        phase += d;
        last = now;
    }
    centroid - phase / omega
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
        minimum_phase: false,
    };
    const MIN: KernelSpec = KernelSpec {
        minimum_phase: true,
        ..SPEC
    };

    /// |H| in dB of `row` at `freq` cycles per frame.
    fn gain_db(row: &[f32], freq: f64) -> f64 {
        let taps = row
            .iter()
            .enumerate()
            .map(|(m, &c)| (m as f64, f64::from(c)));
        let (re, im) = response(TAU * freq, taps);
        10.0 * (re * re + im * im).log10()
    }

    #[test]
    fn rows_sum_to_one_and_the_last_is_the_first_shifted() {
        let taps = SPEC.taps();
        for spec in [SPEC, MIN] {
            let t = design_table(&spec);
            assert_eq!(t.len(), (spec.phases + 1) * taps);
            for row in t.chunks_exact(taps) {
                let sum: f64 = row.iter().map(|&v| f64::from(v)).sum();
                assert!((sum - 1.0).abs() < 1e-6, "{sum}");
            }
            // Fraction 1 is fraction 0 one input frame later: exactly for the symmetric
            // kernel, whose ends are 0; the twin starts at 1e−5 of its sum, which row 0's
            // normalisation counts and the last row's does not (−100 dB, the design's own
            // stopband).
            let tol = if spec.minimum_phase { 2e-5 } else { 1e-6 };
            let (first, last) = (&t[..taps], &t[spec.phases * taps..]);
            for m in 0..taps - 1 {
                assert!((first[m] - last[m + 1]).abs() < tol, "tap {m}");
            }
        }
        // Symmetric: fraction 1/2 is its own mirror image.
        let t = design_table(&SPEC);
        let mid = &t[SPEC.phases / 2 * taps..(SPEC.phases / 2 + 1) * taps];
        for m in 0..taps {
            assert!((mid[m] - mid[taps - 1 - m]).abs() < 1e-6, "tap {m}");
        }
    }

    #[test]
    fn the_minimum_phase_twin_keeps_the_magnitude_and_sheds_the_delay() {
        let taps = SPEC.taps();
        let lin = design_table(&SPEC);
        let min = design_table(&MIN);
        let (lin0, min0) = (&lin[..taps], &min[..taps]);
        // The same magnitude response: the passband within 0.01 dB, the stopband as deep.
        for k in 0..=40 {
            let f = 0.38 * f64::from(k) / 40.0;
            let (a, b) = (gain_db(lin0, f), gain_db(min0, f));
            assert!((a - b).abs() < 0.01, "{f}: {a:.4} against {b:.4} dB");
        }
        // The stopband (where a fractional delay's images fall) as deep: the prototypes'
        // response, in cycles per input frame.
        let (p_lin, p_min) = (prototype(&SPEC), minimum_phase(&prototype(&SPEC)));
        let proto_db = |h: &[f64], f: f64| {
            let step = 1.0 / SPEC.phases as f64;
            let taps = h.iter().enumerate().map(|(n, &c)| (n as f64 * step, c));
            let (re, im) = response(TAU * f, taps);
            let dc: f64 = h.iter().sum();
            10.0 * ((re * re + im * im) / (dc * dc)).log10()
        };
        for f in [0.6, 0.8, 1.0, 2.5, 7.0, 20.0] {
            let (a, b) = (proto_db(&p_lin, f), proto_db(&p_min, f));
            assert!(
                a < -80.0 && b < -80.0 && (a - b).abs() < 3.0,
                "{f}: {a:.1}, {b:.1} dB"
            );
        }
        // The symmetric kernel delays every frequency by half its length; its twin by a
        // few frames, a little more towards the band's top.
        for f in [0.0, 0.02, 0.2] {
            let d = phase_delay(lin0, f);
            assert!((d - 16.0).abs() < 1e-4, "symmetric at {f}: {d}");
        }
        let (low, high) = (phase_delay(min0, 0.02), phase_delay(min0, 0.2));
        assert!(low > 1.0 && low < 4.0, "minimum phase at 0.02: {low}");
        assert!(high > low && high < 5.0, "minimum phase at 0.2: {high}");
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
