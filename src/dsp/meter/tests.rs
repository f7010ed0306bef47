//! The meter's tests: levels, clipping, silence, and the vectorised accumulation against
//! the plain per-sample rules.

use super::*;

fn meter(channels: u16, window_ms: u32) -> Meter {
    Meter::new(MeterConfig {
        rate: 48_000,
        channels,
        window_ms,
        silence_threshold_dbfs: -60.0,
        silence_hold_ms: 100,
    })
    .unwrap()
}

fn sine(frames: usize, channels: usize, amp: f32, hz: f64) -> Vec<f32> {
    let mut v = Vec::with_capacity(frames * channels);
    for n in 0..frames {
        let x = amp * (2.0 * std::f64::consts::PI * hz * n as f64 / 48_000.0).sin() as f32;
        v.extend(std::iter::repeat_n(x, channels));
    }
    v
}

#[test]
fn sine_peak_and_rms() {
    let mut m = meter(2, 100);
    let levels = m.levels();
    // -12 dBFS sine at 1 kHz: peak -12, RMS -15.01 dBFS; windows of 4800 frames.
    let amp = dbfs_to_amplitude(-12.0);
    let s = sine(4_800 * 3, 2, amp, 1_000.0);
    // Fed in odd-sized periods: the window does not care.
    for period in s.chunks(2 * 37) {
        m.process(period);
    }
    let r = levels.reading();
    assert_eq!(r.windows, 3);
    assert!((r.peak_dbfs + 12.0).abs() < 0.01, "{}", r.peak_dbfs);
    assert!((r.rms_dbfs + 15.01).abs() < 0.01, "{}", r.rms_dbfs);
    assert_eq!(r.clipped, 0);
    assert!(!r.silent);
    assert_eq!(levels.channels(), 2);
    assert!((levels.channel_rms_dbfs(1).unwrap() + 15.01).abs() < 0.01);
    assert_eq!(levels.channel_peak_dbfs(2), None);
}

#[test]
fn channels_are_metered_separately() {
    let mut m = meter(2, 10);
    let levels = m.levels();
    let frames = 480;
    let mut s = vec![0.0f32; frames * 2];
    for f in s.chunks_exact_mut(2) {
        f[1] = 0.25;
    }
    m.process(&s);
    assert_eq!(levels.channel_peak_dbfs(0), Some(DBFS_FLOOR));
    assert!((levels.channel_peak_dbfs(1).unwrap() + 12.04).abs() < 0.01);
    // Overall RMS over both channels: 0.25/√2.
    assert!((levels.rms_dbfs() + 15.05).abs() < 0.01);
    assert!((levels.peak_dbfs() + 12.04).abs() < 0.01);
}

#[test]
fn counts_clipping_at_and_beyond_full_scale() {
    let mut m = meter(1, 10);
    let levels = m.levels();
    m.process(&[0.999, 1.0, -1.0, 1.5, f32::NAN, f32::INFINITY, 0.0]);
    assert_eq!(levels.clipped(), 5);
    m.process(&[-2.0]);
    assert_eq!(levels.clipped(), 6);
    // Fill the window: the peak is the -2.0 (over full scale); NaN and ∞ count as
    // full scale and do not poison the RMS.
    m.process(&vec![0.0; 480 - 8]);
    let r = levels.reading();
    assert_eq!(r.windows, 1);
    assert!((r.peak_dbfs - amplitude_to_dbfs(2.0)).abs() < 1e-4);
    assert!(r.rms_dbfs.is_finite());
}

#[test]
fn silence_needs_the_hold_time_and_ends_at_once() {
    let mut m = meter(2, 10);
    let levels = m.levels();
    // 100 ms hold = 4800 frames. -70 dBFS noise is below the -60 dBFS threshold.
    let quiet = sine(64, 2, dbfs_to_amplitude(-70.0), 440.0);
    for _ in 0..74 {
        m.process(&quiet); // 4736 frames
    }
    assert!(!levels.silent(), "silent before the hold time");
    m.process(&quiet); // 4800
    assert!(levels.silent());
    // One loud sample on one channel (the last frame's right) ends it.
    let mut blip = vec![0.0f32; 128];
    blip[127] = dbfs_to_amplitude(-59.0);
    m.process(&blip);
    assert!(!levels.silent());
    // And the hold starts over.
    m.process(&vec![0.0; 2 * 4_800 - 2]);
    assert!(!levels.silent());
    m.process(&[0.0; 4]);
    assert!(levels.silent());
}

/// The meter as its rules say, one sample at a time, in f64: what the vectorised
/// accumulation must agree with.
struct Plain {
    ch: usize,
    window: u32,
    hold: u64,
    threshold: f32,
    frames: u32,
    peak: Vec<f32>,
    sum_sq: Vec<f64>,
    clipped: u64,
    quiet: u64,
    published: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Plain {
    fn process(&mut self, xs: &[f32]) {
        for frame in xs.chunks_exact(self.ch) {
            let mut loud = false;
            for (c, &x) in frame.iter().enumerate() {
                let a = if x.is_finite() { x.abs() } else { 1.0 };
                self.clipped += u64::from(x.abs() >= 1.0 || x.is_nan());
                loud |= a >= self.threshold;
                self.peak[c] = self.peak[c].max(a);
                self.sum_sq[c] += f64::from(a) * f64::from(a);
            }
            self.quiet = if loud { 0 } else { self.quiet + 1 };
            self.frames += 1;
            if self.frames == self.window {
                let n = f64::from(self.frames);
                let rms = self
                    .sum_sq
                    .iter()
                    .map(|&s| amplitude_to_dbfs((s / n).sqrt() as f32));
                let peaks = self.peak.iter().map(|&p| amplitude_to_dbfs(p)).collect();
                self.published.push((peaks, rms.collect()));
                self.peak.fill(0.0);
                self.sum_sq.fill(0.0);
                self.frames = 0;
            }
        }
    }
}

#[test]
fn agrees_with_the_plain_rules_for_any_channels_and_cut() {
    // Quiet noise, loud bursts, clipping, NaN and ±∞, and digital silence long
    // enough for the hold; 1..=9 channels (the lane path for 1, 2, 4 and 8, frame by
    // frame for the rest), cut into calls of 1, 37, 64 and 5000 frames.
    let mut seed = 0x2545_f491_u32;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed as f32 / u32::MAX as f32 * 2.0 - 1.0
    };
    for ch in 1..=9usize {
        let frames = 12_000;
        let signal: Vec<f32> = (0..frames * ch)
            .map(|i| match (i / ch) % 6_000 {
                0..1_000 => noise() * 0.0005,
                1_000..2_000 => noise() * 0.9,
                2_000 => [1.5, f32::NAN, -1.0, f32::INFINITY, 0.3][i % 5],
                2_001..2_100 => noise() * 0.1,
                _ => 0.0,
            })
            .collect();
        for cut in [1, 37, 64, 5_000] {
            let mut m = meter(ch as u16, 10);
            let levels = m.levels();
            let mut plain = Plain {
                ch,
                window: 480,
                hold: 4_800,
                threshold: dbfs_to_amplitude(-60.0),
                frames: 0,
                peak: vec![0.0; ch],
                sum_sq: vec![0.0; ch],
                clipped: 0,
                quiet: 0,
                published: Vec::new(),
            };
            for call in signal.chunks(cut * ch) {
                m.process(call);
                plain.process(call);
                let what = format!("{ch} channels, calls of {cut} frames");
                assert_eq!(levels.clipped(), plain.clipped, "{what}");
                assert_eq!(levels.silent(), plain.quiet >= plain.hold, "{what}");
                assert_eq!(levels.windows(), plain.published.len() as u64, "{what}");
                let Some((peaks, rms)) = plain.published.last() else {
                    continue;
                };
                for c in 0..ch {
                    assert_eq!(levels.channel_peak_dbfs(c), Some(peaks[c]), "{what}");
                    let got = levels.channel_rms_dbfs(c).unwrap();
                    assert!((got - rms[c]).abs() < 1e-3, "{what}: {got} vs {}", rms[c]);
                }
            }
        }
    }
}

#[test]
fn digital_silence_reads_the_floor() {
    let mut m = meter(1, 1);
    let levels = m.levels();
    m.process(&[0.0; 48]);
    assert_eq!(levels.peak_dbfs(), DBFS_FLOOR);
    assert_eq!(levels.rms_dbfs(), DBFS_FLOOR);
}

#[test]
fn rejects_bad_settings_by_name() {
    let base = MeterConfig::default();
    for (cfg, needle) in [
        (
            MeterConfig {
                channels: 0,
                ..base
            },
            "channels 0",
        ),
        (
            MeterConfig {
                channels: 65,
                ..base
            },
            "channels 65",
        ),
        (
            MeterConfig {
                window_ms: 0,
                ..base
            },
            "window_ms 0",
        ),
        (
            MeterConfig {
                rate: 100,
                window_ms: 5,
                ..base
            },
            "window_ms 5",
        ),
        (
            MeterConfig {
                silence_threshold_dbfs: 3.0,
                ..base
            },
            "silence_threshold_dbfs 3",
        ),
        (MeterConfig { rate: 0, ..base }, "rate 0"),
    ] {
        let e = Meter::new(cfg).unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
}
