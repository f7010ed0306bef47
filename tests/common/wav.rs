//! Helpers the WAV tests share (`tests/wav_file.rs`, `tests/wav_record.rs`).

use std::f64::consts::PI;

/// Interleaved test signal: channel c is a sine at (300 + 100 c) Hz, amplitude 0.7.
pub fn signal(frames: usize, channels: usize, rate: u32) -> Vec<f64> {
    let mut v = Vec::with_capacity(frames * channels);
    for n in 0..frames {
        for c in 0..channels {
            let f = 300.0 + 100.0 * c as f64;
            v.push(0.7 * (2.0 * PI * f * n as f64 / rate as f64).sin());
        }
    }
    v
}

/// Asserts `got` is `want` within `tol` per sample; `what` names the case.
pub fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= tol,
            "{what}: sample {i}: {g} vs {w} (tolerance {tol})"
        );
    }
}
