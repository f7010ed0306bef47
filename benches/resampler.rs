//! Resampler micro-bench: one 64-frame stereo pull period at step 1.0005 (0.05 % faster),
//! as the speaker side of a clock-locked client runs it each device period: izyrt's own
//! resampler, and for comparison rubato 5's variable-ratio resamplers (`Async` sinc with
//! its default parameters, a shorter sinc, and its best polynomial), each with its output
//! side fixed at 64 frames.
//!
//! Before timing, it prints each one's SNR for a 1 kHz and a 10 kHz sine (48 kHz): the
//! output after warm-up against the best-fitting sine at the output frequency, so a
//! resampler's own delay and gain are not counted against it; then izyrt's delay.

use criterion::{Criterion, criterion_group, criterion_main};
use izyrt::dsp::resampler::Resampler as Own;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, PolynomialDegree, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};
use std::f64::consts::TAU;
use std::hint::black_box;
use std::time::Duration;

const STEP: f64 = 1.0005;
const FRAMES: usize = 64;
const CHANNELS: usize = 2;

/// One pull period: make `FRAMES` output frames from `input`, which starts at the next
/// frame not yet consumed; returns the input frames taken.
trait Period {
    fn period(&mut self, input: &[f32], out: &mut [f32]) -> usize;
    /// Back to silence, without allocating.
    fn restart(&mut self);
}

impl Period for Own {
    fn period(&mut self, input: &[f32], out: &mut [f32]) -> usize {
        let need = self.input_needed(FRAMES, STEP);
        self.push(&input[..need * CHANNELS]);
        self.process(out, STEP).unwrap();
        need
    }
    fn restart(&mut self) {
        self.reset();
    }
}

impl Period for Async<f32> {
    fn period(&mut self, input: &[f32], out: &mut [f32]) -> usize {
        let need = self.input_frames_next();
        let inp = InterleavedSlice::new(&input[..need * CHANNELS], CHANNELS, need).unwrap();
        let mut outp = InterleavedSlice::new_mut(out, CHANNELS, FRAMES).unwrap();
        let (taken, made) = self.process_into_buffer(&inp, &mut outp, None).unwrap();
        assert_eq!(made, FRAMES);
        taken
    }
    fn restart(&mut self) {
        Resampler::reset(self);
    }
}

fn own() -> Own {
    Own::new(CHANNELS as u16, FRAMES).unwrap()
}

fn rubato_sinc(len: usize, interpolation: SincInterpolationType, os: usize) -> Async<f32> {
    let params = SincInterpolationParameters::new(len, WindowFunction::BlackmanHarris2)
        .interpolation(interpolation)
        .oversampling_factor(os);
    Async::new_sinc(
        1.0 / STEP,
        1.01,
        &params,
        FRAMES,
        CHANNELS,
        FixedAsync::Output,
    )
    .unwrap()
}

fn rubato_poly() -> Async<f32> {
    Async::new_poly(
        1.0 / STEP,
        1.01,
        PolynomialDegree::Septic,
        FRAMES,
        CHANNELS,
        FixedAsync::Output,
    )
    .unwrap()
}

fn sine(freq: f64, frames: usize) -> Vec<f32> {
    let w = TAU * freq / 48_000.0;
    (0..frames)
        .flat_map(|k| {
            let x = (0.5 * (w * k as f64).sin()) as f32;
            [x; CHANNELS]
        })
        .collect()
}

/// SNR (dB) of `y` against its least-squares fit `a·sin(w·n) + b·cos(w·n) + c`.
fn fitted_snr(y: &[f64], w: f64) -> f64 {
    let basis = |n: usize| [(w * n as f64).sin(), (w * n as f64).cos(), 1.0];
    // Normal equations M·x = v, solved by Cramer's rule.
    let (mut m, mut v) = ([[0.0f64; 3]; 3], [0.0f64; 3]);
    for (n, &yn) in y.iter().enumerate() {
        let b = basis(n);
        for (row, bi) in m.iter_mut().zip(b) {
            for (mij, bj) in row.iter_mut().zip(b) {
                *mij += bi * bj;
            }
        }
        for (vi, bi) in v.iter_mut().zip(b) {
            *vi += bi * yn;
        }
    }
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&m);
    let coef: [f64; 3] = std::array::from_fn(|k| {
        let mut mk = m;
        for (row, vi) in mk.iter_mut().zip(v) {
            row[k] = vi;
        }
        det(&mk) / d
    });
    let (mut sig, mut err) = (0.0, 0.0);
    for (n, &yn) in y.iter().enumerate() {
        let f: f64 = basis(n).iter().zip(coef).map(|(b, c)| b * c).sum();
        sig += f * f;
        err += (yn - f) * (yn - f);
    }
    10.0 * (sig / err).log10()
}

fn snr(r: &mut dyn Period, freq: f64) -> f64 {
    let periods = 800;
    let input = sine(freq, periods * FRAMES * 2);
    let mut out = vec![0.0f32; FRAMES * CHANNELS];
    let (mut at, mut y) = (0, Vec::new());
    for _ in 0..periods {
        at += r.period(&input[at * CHANNELS..], &mut out);
        y.extend(out.iter().step_by(CHANNELS).map(|&v| f64::from(v)));
    }
    // Skip the warm-up (the longest filter here is 256 taps).
    fitted_snr(&y[1024..], TAU * freq / 48_000.0 * STEP)
}

/// Builds a fresh resampler under test.
type Make = fn() -> Box<dyn Period>;

fn resampler(c: &mut Criterion) {
    let candidates: [(&str, Make); 4] = [
        ("izyrt_48taps_256phases", || Box::new(own())),
        ("rubato_sinc256_cubic_x128", || {
            Box::new(rubato_sinc(256, SincInterpolationType::Cubic, 128))
        }),
        ("rubato_sinc64_linear_x256", || {
            Box::new(rubato_sinc(64, SincInterpolationType::Linear, 256))
        }),
        ("rubato_poly_septic", || Box::new(rubato_poly())),
    ];
    for (name, make) in &candidates {
        let low = snr(&mut *make(), 1_000.0);
        let high = snr(&mut *make(), 10_000.0);
        eprintln!("{name}: SNR 1 kHz {low:.1} dB, 10 kHz {high:.1} dB");
    }
    let o = own();
    let at = |hz: f64| o.phase_delay_frames(hz / 48_000.0);
    eprintln!(
        "izyrt's delay, frames: {:.2} at DC, {:.2} at 1 kHz, {:.2} at 10 kHz, {:.2} at 16 kHz \
         (minimum phase; the symmetric kernel's is 24 at every frequency)",
        o.delay_frames(),
        at(1_000.0),
        at(10_000.0),
        at(16_000.0)
    );

    let mut g = c.benchmark_group("resampler_2x64_step_1.0005");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    // A long input so the timed loop never runs out; it restarts (with a reset) at the end.
    let input = sine(1_000.0, 1 << 16);
    for (name, make) in &candidates {
        let mut r = make();
        let mut out = vec![0.0f32; FRAMES * CHANNELS];
        let mut at = 0;
        g.bench_function(*name, |b| {
            b.iter(|| {
                if (at + 2 * FRAMES) * CHANNELS > input.len() {
                    r.restart();
                    at = 0;
                }
                at += r.period(black_box(&input[at * CHANNELS..]), black_box(&mut out));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, resampler);
criterion_main!(benches);
