//! The integer decimator and interpolator (`downsampleRatio` / `upsampleRatio`): gain,
//! anti-alias and anti-image rejection, continuity across periods, and no allocation per
//! call (this binary counts allocations through the global allocator).

use izyrt::dsp::ratio::{Decimator, Interpolator, MAX_RATIO, RatioError};
use izyrt::rt::alloc_count::{CountingAllocator, count_allocations};
use std::f64::consts::PI;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// Interleaved sine on channel `tone_ch` (others silent) at `f` cycles per sample.
fn sine(frames: usize, channels: usize, tone_ch: usize, f: f64, amp: f64) -> Vec<f32> {
    let mut v = vec![0.0f32; frames * channels];
    for (n, frame) in v.chunks_exact_mut(channels).enumerate() {
        frame[tone_ch] = (amp * (2.0 * PI * f * n as f64).sin()) as f32;
    }
    v
}

/// Deterministic white-ish noise in [-1, 1).
fn noise(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn channel(v: &[f32], channels: usize, c: usize) -> Vec<f64> {
    v.chunks_exact(channels).map(|f| f[c] as f64).collect()
}

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
}

/// Least-squares amplitude of the sinusoid at `f` cycles/sample and the RMS of what is
/// left after removing it. Exact when `x` spans a whole number of cycles.
fn fit(x: &[f64], f: f64) -> (f64, f64) {
    let n = x.len() as f64;
    let (mut a, mut b) = (0.0, 0.0);
    for (i, v) in x.iter().enumerate() {
        let w = 2.0 * PI * f * i as f64;
        a += v * w.cos();
        b += v * w.sin();
    }
    let (a, b) = (2.0 * a / n, 2.0 * b / n);
    let residual: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let w = 2.0 * PI * f * i as f64;
            v - a * w.cos() - b * w.sin()
        })
        .collect();
    ((a * a + b * b).sqrt(), rms(&residual))
}

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

/// Runs `input` (interleaved) through a decimator in periods of `period` frames.
fn decimate(dec: &mut Decimator, input: &[f32], period: usize) -> Vec<f32> {
    let ch = dec.channels() as usize;
    let r = dec.ratio() as usize;
    let mut out = vec![0.0f32; input.len() / r];
    let mut out_buf = vec![0.0f32; period / r * ch];
    let mut at = 0;
    for chunk in input.chunks(period * ch) {
        let n = dec.process(chunk, &mut out_buf).expect("decimate") * ch;
        out[at..at + n].copy_from_slice(&out_buf[..n]);
        at += n;
    }
    assert_eq!(at, out.len());
    out
}

/// Runs `input` (interleaved, low rate) through an interpolator in periods of `period`
/// input frames.
fn interpolate(up: &mut Interpolator, input: &[f32], period: usize) -> Vec<f32> {
    let ch = up.channels() as usize;
    let r = up.ratio() as usize;
    let mut out = vec![0.0f32; input.len() * r];
    let mut out_buf = vec![0.0f32; period * r * ch];
    let mut at = 0;
    for chunk in input.chunks(period * ch) {
        let n = up.process(chunk, &mut out_buf).expect("interpolate") * ch;
        out[at..at + n].copy_from_slice(&out_buf[..n]);
        at += n;
    }
    assert_eq!(at, out.len());
    out
}

const ANALYSIS: usize = 4096;

#[test]
fn decimator_passes_tones_below_the_new_nyquist_at_unity_gain() {
    for r in [2usize, 3, 4, 6, 8, 16] {
        let period = 32 * r;
        let mut dec = Decimator::new(r as u32, 2, period).unwrap();
        let settle = dec.filter_len() / r + 1;
        // Whole cycles in the analysis window; 0.1 and 0.35 cycles per output sample are
        // 0.2 and 0.7 of the new Nyquist.
        for k in [410usize, 1434] {
            let f_out = k as f64 / ANALYSIS as f64;
            let out_frames = (settle + ANALYSIS).div_ceil(32) * 32;
            let input = sine(out_frames * r, 2, 0, f_out / r as f64, 0.5);
            dec.reset();
            let out = decimate(&mut dec, &input, period);
            let y = channel(&out, 2, 0);
            let (amp, residual) = fit(&y[settle..settle + ANALYSIS], f_out);
            let gain_db = db(amp / 0.5);
            println!(
                "decimate ratio {r}: tone at {f_out:.3} cycles/out gain {gain_db:+.4} dB, residual {:.1} dB",
                db(residual / (0.5 / 2f64.sqrt()))
            );
            assert!(
                gain_db.abs() < 0.01,
                "ratio {r}, f {f_out}: gain {gain_db} dB"
            );
            assert!(db(residual / (0.5 / 2f64.sqrt())) < -60.0);
            // The silent channel stays exactly silent.
            assert!(channel(&out, 2, 1).iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn decimator_attenuates_tones_above_the_new_nyquist_by_at_least_60_db() {
    for r in [2usize, 3, 4, 8, 16] {
        let period = 32 * r;
        let mut dec = Decimator::new(r as u32, 1, period).unwrap();
        let settle = dec.filter_len() / r + 1;
        let mut worst = f64::INFINITY;
        // Just above the new Nyquist, further up, and near the input Nyquist.
        for f_in in [
            0.505 / r as f64,
            0.55 / r as f64,
            0.75 / r as f64,
            1.3 / r as f64,
            0.49,
        ] {
            if f_in >= 0.5 {
                continue;
            }
            let out_frames = (settle + ANALYSIS).div_ceil(32) * 32;
            let input = sine(out_frames * r, 1, 0, f_in, 1.0);
            dec.reset();
            let out = decimate(&mut dec, &input, period);
            let y: Vec<f64> = out[settle..settle + ANALYSIS]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let attenuation = -db(rms(&y) / (1.0 / 2f64.sqrt()));
            println!(
                "decimate ratio {r}: tone at {:.3} of input Nyquist attenuated {attenuation:.1} dB",
                f_in * 2.0
            );
            worst = worst.min(attenuation);
        }
        println!("decimate ratio {r}: worst attenuation above the new Nyquist {worst:.1} dB");
        assert!(worst >= 60.0, "ratio {r}: only {worst:.1} dB");
    }
}

#[test]
fn interpolator_has_unity_gain_and_rejects_images() {
    for r in [2usize, 3, 4, 8, 16] {
        let period_out = 32 * r;
        let mut up = Interpolator::new(r as u32, 2, period_out).unwrap();
        let settle = up.filter_len() / r + 1;
        // 0.1 and 0.35 cycles per input sample: images land at (1 ∓ f)/r and beyond.
        for k in [410usize, 1434] {
            let f_in = k as f64 / ANALYSIS as f64;
            let in_frames = (settle + ANALYSIS).div_ceil(32) * 32;
            let input = sine(in_frames, 2, 1, f_in, 0.5);
            up.reset();
            let out = interpolate(&mut up, &input, 32);
            let y = channel(&out, 2, 1);
            let window = &y[settle * r..(settle + ANALYSIS) * r];
            let (amp, residual) = fit(window, f_in / r as f64);
            let gain_db = db(amp / 0.5);
            let rejection = -db(residual / (amp / 2f64.sqrt()));
            println!(
                "interpolate ratio {r}: tone at {f_in:.3} cycles/in gain {gain_db:+.4} dB, images and noise {rejection:.1} dB down"
            );
            assert!(
                gain_db.abs() < 0.01,
                "ratio {r}, f {f_in}: gain {gain_db} dB"
            );
            assert!(
                rejection >= 60.0,
                "ratio {r}, f {f_in}: images only {rejection:.1} dB down"
            );
            assert!(channel(&out, 2, 0).iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn decimator_output_does_not_depend_on_how_the_stream_is_cut() {
    for r in [2usize, 3, 5, 16] {
        let ch = 2;
        let total = 200 * r;
        let input = noise(total * ch, r as u64);
        let mut whole = Decimator::new(r as u32, ch as u16, total).unwrap();
        let reference = decimate(&mut whole, &input, total);

        let max = 8 * r;
        let mut cut = Decimator::new(r as u32, ch as u16, max).unwrap();
        let mut buf = vec![0.0f32; max / r * ch];
        let sizes = [r, 4 * r, 2 * r, max, 3 * r];
        let out = in_pieces(&input, ch, &sizes, &mut buf, |i, o| {
            cut.process(i, o).unwrap()
        });
        assert_eq!(out, reference, "ratio {r}");
        assert!(reference.iter().any(|&v| v.abs() > 0.05));
    }
}

#[test]
fn interpolator_output_does_not_depend_on_how_the_stream_is_cut() {
    for r in [2usize, 3, 5, 16] {
        let ch = 3;
        let total = 300;
        let input = noise(total * ch, 100 + r as u64);
        let mut whole = Interpolator::new(r as u32, ch as u16, total * r).unwrap();
        let reference = interpolate(&mut whole, &input, total);

        let max_in = 7;
        let mut cut = Interpolator::new(r as u32, ch as u16, max_in * r).unwrap();
        let mut buf = vec![0.0f32; max_in * r * ch];
        let sizes = [1usize, 3, 7, 2, 5];
        let out = in_pieces(&input, ch, &sizes, &mut buf, |i, o| {
            cut.process(i, o).unwrap()
        });
        assert_eq!(out, reference, "ratio {r}");
        assert!(reference.iter().any(|&v| v.abs() > 0.05));
    }
}

/// Feeds `input` (interleaved, `ch` channels) to `process` in pieces of the given frame
/// counts, cycling, and collects what it outputs.
fn in_pieces(
    input: &[f32],
    ch: usize,
    sizes: &[usize],
    buf: &mut [f32],
    mut process: impl FnMut(&[f32], &mut [f32]) -> usize,
) -> Vec<f32> {
    let total = input.len() / ch;
    let (mut out, mut at) = (Vec::new(), 0);
    for n in sizes.iter().cycle() {
        if at == total {
            return out;
        }
        let n = (*n).min(total - at);
        let frames = process(&input[at * ch..(at + n) * ch], buf);
        out.extend_from_slice(&buf[..frames * ch]);
        at += n;
    }
    unreachable!("sizes is not empty")
}

#[test]
fn ratio_one_is_a_plain_copy() {
    let input = noise(64 * 2, 7);
    let mut dec = Decimator::new(1, 2, 64).unwrap();
    let mut up = Interpolator::new(1, 2, 64).unwrap();
    let mut out = vec![0.0f32; 128];
    assert_eq!(dec.process(&input, &mut out).unwrap(), 64);
    assert_eq!(out, input);
    out.fill(0.0);
    assert_eq!(up.process(&input, &mut out).unwrap(), 64);
    assert_eq!(out, input);
    assert_eq!(dec.delay_frames(), 0.0);
    assert_eq!(up.delay_frames(), 0.0);
}

#[test]
fn constructor_errors_name_the_value_and_what_is_allowed() {
    assert_eq!(
        Decimator::new(0, 2, 64).unwrap_err().to_string(),
        "downsampleRatio 0 is not allowed: it must be an integer from 1 to 16 (1 = off)"
    );
    assert_eq!(
        Interpolator::new(MAX_RATIO + 1, 2, 64)
            .unwrap_err()
            .to_string(),
        "upsampleRatio 17 is not allowed: it must be an integer from 1 to 16 (1 = off)"
    );
    assert_eq!(
        Decimator::new(3, 2, 64).unwrap_err().to_string(),
        "a period of 64 frames does not suit downsampleRatio 3: \
         the period must be a positive multiple of 3 frames"
    );
    assert_eq!(
        Interpolator::new(2, 2, 0).unwrap_err(),
        RatioError::Period {
            option: "upsampleRatio",
            ratio: 2,
            period: 0
        }
    );
    assert_eq!(
        Interpolator::new(2, 0, 64).unwrap_err().to_string(),
        "upsampleRatio needs at least 1 channel, got 0"
    );
}

#[test]
fn process_refuses_wrong_lengths_without_panicking() {
    let mut dec = Decimator::new(4, 2, 64).unwrap();
    let mut out = vec![0.0f32; 64];
    // 6 samples: not a multiple of channels × ratio = 8.
    assert_eq!(
        dec.process(&[0.0; 6], &mut out).unwrap_err().to_string(),
        "input holds 6 samples: it must be a multiple of 8 samples, at most 128"
    );
    assert!(matches!(
        dec.process(&[0.0; 136], &mut out),
        Err(RatioError::Input { .. })
    ));
    assert_eq!(
        dec.process(&[0.0; 128], &mut out[..31]).unwrap_err(),
        RatioError::Output {
            len: 31,
            needed: 32
        }
    );
    let mut up = Interpolator::new(4, 2, 64).unwrap();
    let mut out = vec![0.0f32; 128];
    assert!(matches!(
        up.process(&[0.0; 3], &mut out),
        Err(RatioError::Input {
            multiple: 2,
            max: 32,
            ..
        })
    ));
    assert!(matches!(
        up.process(&[0.0; 34], &mut out),
        Err(RatioError::Input { .. })
    ));
    assert_eq!(
        up.process(&[0.0; 32], &mut out[..127]).unwrap_err(),
        RatioError::Output {
            len: 127,
            needed: 128
        }
    );
}

#[test]
fn process_allocates_nothing() {
    let mut dec = Decimator::new(3, 2, 96).unwrap();
    let mut up = Interpolator::new(3, 2, 96).unwrap();
    let capture = noise(96 * 2, 1);
    let mut low = vec![0.0f32; 32 * 2];
    let mut playback = vec![0.0f32; 96 * 2];
    let (checksum, allocations) = count_allocations(|| {
        let mut checksum = 0.0f32;
        for _ in 0..1000 {
            dec.process(&capture, &mut low).unwrap();
            up.process(&low, &mut playback).unwrap();
            checksum += playback[5];
            // The error path is allocation-free as well.
            assert!(dec.process(&capture[..5], &mut low).is_err());
        }
        dec.reset();
        up.reset();
        checksum
    });
    assert_eq!(allocations, 0, "process allocated {allocations} times");
    assert!(checksum.is_finite() && checksum != 0.0);
    // The counter does count in this binary (the check above could not pass vacuously).
    let (_, n) = count_allocations(|| Decimator::new(2, 2, 64).unwrap());
    assert!(n > 0);
}
