use super::*;
use std::f64::consts::{PI, TAU};

const RATE: u32 = 48_000;
/// The virtual device's tone: −12 dBFS.
const AMP: f64 = 0.251;

/// `secs` of a 441 Hz tone at `amp` after 0.5 s of silence, with 0.3 s of silence
/// after it.
fn tone(secs: f64, amp: f64) -> Vec<f64> {
    let w = TAU * 441.0 / f64::from(RATE);
    let lead = RATE as usize / 2;
    let n = (secs * f64::from(RATE)) as usize;
    let mut x = vec![0.0; lead];
    x.extend((0..n).map(|i| amp * (w * i as f64 + 0.3).sin()));
    x.extend(vec![0.0; RATE as usize * 3 / 10]);
    x
}

/// Quantised to 16 bits, as a WAV file would hold it.
fn s16(x: &[f64]) -> Vec<f32> {
    x.iter()
        .map(|v| ((v * 32768.0).round().clamp(-32768.0, 32767.0) / 32768.0) as f32)
        .collect()
}

fn run(x: &[f64]) -> GlitchReport {
    tone_glitches(&s16(x), 1, RATE, &GlitchConfig::default()).unwrap()
}

fn counts(r: &GlitchReport) -> (usize, usize, usize) {
    (r.steps, r.holes, r.events.len())
}

fn kinds(r: &GlitchReport) -> Vec<GlitchKind> {
    r.events.iter().map(|e| e.kind).collect()
}

/// Frame positions well inside the tone, at varied phases of it.
fn places(k: usize) -> Vec<usize> {
    (0..k)
        .map(|i| RATE as usize * (1 + i) + 1_237 * i + 17)
        .collect()
}

#[test]
fn a_clean_tone_has_no_glitch() {
    let r = run(&tone(5.0, AMP));
    assert_eq!(counts(&r), (0, 0, 0));
    assert!((r.tone_hz - 441.0).abs() < 0.01, "{}", r.tone_hz);
    assert!((r.amplitude - AMP).abs() < 0.002, "{}", r.amplitude);
    // The leading and trailing silence and merge_ms at each end are left out.
    let lead = RATE as usize / 2;
    assert!(
        r.start_frame.abs_diff(lead + 960) <= 24,
        "{}",
        r.start_frame
    );
    assert!((r.seconds() - 4.96).abs() < 0.003, "{}", r.seconds());
    assert_eq!(r.events_per_minute(), 0.0);
}

#[test]
fn a_stereo_tone_counts_each_glitch_once() {
    let mut x = tone(4.0, AMP);
    for &at in &places(2) {
        x[at..at + 240].fill(0.0);
    }
    let q = s16(&x);
    let stereo: Vec<f32> = q.iter().flat_map(|&v| [v, v]).collect();
    let r = tone_glitches(&stereo, 2, RATE, &GlitchConfig::default()).unwrap();
    assert_eq!(counts(&r), (2, 2, 2));
}

#[test]
fn a_frequency_drifting_by_1000_ppm_is_not_a_glitch() {
    // 441 Hz × (1 ± 0.001), a full swing every 2 s: what a resampler chasing a clock
    // does, and more.
    let lead = RATE as usize / 2;
    let mut x = vec![0.0; lead];
    let mut phase = 0.0;
    for i in 0..RATE as usize * 6 {
        let t = i as f64 / f64::from(RATE);
        let f = 441.0 * (1.0 + 1e-3 * (TAU * t / 2.0).sin());
        phase += TAU * f / f64::from(RATE);
        x.push(AMP * phase.sin());
    }
    let r = run(&x);
    assert_eq!(counts(&r), (0, 0, 0));
    assert!((r.tone_hz - 441.0).abs() < 0.5, "{}", r.tone_hz);
}

#[test]
fn hard_cuts_to_zero_are_steps_and_holes() {
    for k in [1, 3, 5] {
        let mut x = tone(7.0, AMP);
        let at = places(k);
        for (i, &a) in at.iter().enumerate() {
            // 2 to 10 ms of zeros.
            x[a..a + 96 + 96 * i].fill(0.0);
        }
        let r = run(&x);
        assert_eq!(counts(&r), (k, k, k), "{k} cuts");
        assert_eq!(kinds(&r), vec![GlitchKind::StepAndHole; k]);
        for (e, &a) in r.events.iter().zip(&at) {
            assert!(
                e.frame.abs_diff(a) < 48,
                "event at {} for a cut at {a}",
                e.frame
            );
            assert!(e.step > 0.02 && e.depth < 0.1, "{e:?}");
        }
    }
}

#[test]
fn a_hard_cut_at_every_phase_is_a_step_at_48_and_96_khz() {
    // Cuts starting and ending between any two samples of a cycle, the zero
    // crossings included: the smallest residual a cut leaves.
    for rate in [48_000u32, 96_000] {
        let w = TAU * 441.0 / f64::from(rate);
        let per = f64::from(rate) / 441.0;
        let base: Vec<f64> = (0..rate as usize * 2)
            .map(|i| AMP * (w * i as f64).sin())
            .collect();
        for k in 0..40 {
            let mut x = base.clone();
            // From just before the k-th fortieth of a cycle to 4 whole cycles later.
            let a = rate as usize + (k as f64 * per / 40.0) as usize;
            let len = (4.0 * per).round() as usize;
            x[a..a + len].fill(0.0);
            let r = tone_glitches(&s16(&x), 1, rate, &GlitchConfig::default()).unwrap();
            assert_eq!(counts(&r), (1, 1, 1), "{rate} Hz, cut at phase {k}/40");
            assert_eq!(r.events[0].kind, GlitchKind::StepAndHole);
        }
    }
}

#[test]
fn a_hard_cut_at_the_worst_phase_is_a_step_at_48_and_96_khz() {
    // The tone stops and restarts where it crosses zero half-way between two samples:
    // the smallest residual a cut can leave, A·sin(ω/2) (with the 48 kHz lag).
    for rate in [48_000u32, 96_000] {
        let w = TAU * 441.0 / f64::from(rate);
        let a = rate as usize;
        let mut x: Vec<f64> = (0..a)
            .map(|n| AMP * (w * (n as f64 - a as f64 + 0.5)).sin())
            .collect();
        x.extend(vec![0.0; rate as usize / 200]);
        x.extend((0..a).map(|n| AMP * (w * (n as f64 + 0.5)).sin()));
        let r = tone_glitches(&s16(&x), 1, rate, &GlitchConfig::default()).unwrap();
        assert_eq!(counts(&r), (1, 1, 1), "{rate} Hz");
        assert!(r.events[0].step < 0.05, "{:?}", r.events[0]); // near the bound
    }
}

#[test]
fn raised_cosine_fades_are_holes_not_steps() {
    for gap_ms in [1.0, 2.0, 3.0] {
        let mut x = tone(4.0, AMP);
        let at = places(3);
        let len = (gap_ms * f64::from(RATE) / 1000.0) as usize;
        for &a in &at {
            // Fade out over half the gap, back in over the other half.
            for (i, v) in x[a..a + len].iter_mut().enumerate() {
                *v *= 0.5 * (1.0 + (TAU * i as f64 / len as f64).cos());
            }
        }
        let r = run(&x);
        assert_eq!(counts(&r), (0, 3, 3), "{gap_ms} ms gaps");
        assert_eq!(kinds(&r), vec![GlitchKind::Hole; 3]);
        assert!(r.events.iter().all(|e| e.depth < 0.3), "{:?}", r.events);
    }
}

#[test]
fn a_1_ms_fade_gap_at_every_phase_is_a_hole() {
    let base = tone(2.0, AMP);
    for k in 0..36 {
        let mut x = base.clone();
        let a = RATE as usize + k * 3;
        for (i, v) in x[a..a + 48].iter_mut().enumerate() {
            *v *= 0.5 * (1.0 + (TAU * i as f64 / 48.0).cos());
        }
        let r = run(&x);
        assert_eq!(counts(&r), (0, 1, 1), "gap at phase {k}/36");
    }
}

#[test]
fn a_fade_with_silence_between_is_one_hole() {
    let mut x = tone(3.0, AMP);
    let a = places(1)[0];
    let (fade, gap) = (96, 480); // 2 ms fades, 10 ms of silence
    for i in 0..fade {
        let g = 0.5 * (1.0 + (PI * i as f64 / fade as f64).cos());
        x[a + i] *= g;
        x[a + fade + gap + fade - 1 - i] *= g;
    }
    x[a + fade..a + fade + gap].fill(0.0);
    let r = run(&x);
    assert_eq!(counts(&r), (0, 1, 1));
    assert!(
        (r.events[0].hole_ms - 12.0).abs() < 2.0,
        "{:?}",
        r.events[0]
    );
}

/// `x` with `len` frames at each place removed (`Drop`), replaced by a copy of the
/// `len` before (`Repeat`), or by zeros inserted (`Silence`).
fn splice(x: &[f64], at: &[usize], len: usize, how: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let mut from = 0;
    for &a in at {
        out.extend_from_slice(&x[from..a]);
        match how {
            "drop" => from = a + len,
            "repeat" => {
                out.extend_from_slice(&x[a - len..a]);
                from = a;
            }
            _ => {
                out.extend(vec![0.0; len]);
                from = a;
            }
        }
    }
    out.extend_from_slice(&x[from..]);
    out
}

#[test]
fn a_dropped_period_is_a_step() {
    // 64 frames of 441 Hz at 48 kHz: the phase jumps 3.69 rad. Twelve places, so the
    // jump falls on many phases of the tone.
    let x = splice(&tone(13.0, AMP), &places(12), 64, "drop");
    let r = run(&x);
    assert_eq!(counts(&r), (12, 0, 12));
    assert_eq!(kinds(&r), vec![GlitchKind::Step; 12]);
}

#[test]
fn a_dropped_period_at_every_phase_is_a_step() {
    // The worst case of the bound in the design note: jumps at 48 phases of a cycle.
    let base = tone(2.0, AMP);
    for k in 0..48 {
        let x = splice(&base, &[RATE as usize + k * 2], 64, "drop");
        let r = run(&x);
        assert_eq!(counts(&r), (1, 0, 1), "drop at phase {k}/48");
    }
}

#[test]
fn an_inserted_period_of_silence_is_a_step_and_a_hole() {
    let x = splice(&tone(5.0, AMP), &places(4), 64, "silence");
    let r = run(&x);
    assert_eq!(counts(&r), (4, 4, 4));
    assert_eq!(kinds(&r), vec![GlitchKind::StepAndHole; 4]);
}

#[test]
fn a_repeated_period_is_a_step() {
    let x = splice(&tone(5.0, AMP), &places(4), 64, "repeat");
    let r = run(&x);
    assert_eq!(counts(&r), (4, 0, 4));
    assert_eq!(kinds(&r), vec![GlitchKind::Step; 4]);
}

#[test]
fn a_quiet_tone_is_measured_alike() {
    // A tenth of the level, in 16 bits: clean, then with two cuts and two drops.
    let quiet = tone(6.0, AMP / 10.0);
    assert_eq!(counts(&run(&quiet)), (0, 0, 0));
    let at = places(4);
    let mut x = splice(&quiet, &at[2..], 64, "drop");
    for &a in &at[..2] {
        x[a..a + 240].fill(0.0);
    }
    let r = run(&x);
    assert_eq!(counts(&r), (4, 2, 4));
    assert_eq!(
        kinds(&r),
        [
            GlitchKind::StepAndHole,
            GlitchKind::StepAndHole,
            GlitchKind::Step,
            GlitchKind::Step
        ]
    );
    assert!((r.amplitude - AMP / 10.0).abs() < 0.001, "{}", r.amplitude);
}

#[test]
fn glitches_closer_than_merge_ms_are_one_event() {
    let mut x = tone(3.0, AMP);
    let a = places(1)[0];
    x[a..a + 48].fill(0.0);
    let x = splice(&x, &[a + 48 + 480], 64, "drop"); // 10 ms later
    let r = run(&x);
    assert_eq!(counts(&r), (1, 1, 1), "{:?}", r.events);
    let mut x = tone(3.0, AMP);
    x[a..a + 48].fill(0.0);
    let x = splice(&x, &[a + 48 + 1_920], 64, "drop"); // 40 ms later
    let r = run(&x);
    assert_eq!(counts(&r), (2, 1, 2), "{:?}", r.events);
}

#[test]
fn other_rates_and_the_freq_hint() {
    for rate in [44_100u32, 96_000] {
        let w = TAU * 441.0 / f64::from(rate);
        let mut x: Vec<f64> = (0..rate as usize * 3)
            .map(|i| AMP * (w * i as f64).sin())
            .collect();
        let a = rate as usize + 101;
        x[a..a + rate as usize / 200].fill(0.0);
        let cfg = GlitchConfig {
            freq_hz: Some(441.0),
            ..Default::default()
        };
        let r = tone_glitches(&s16(&x), 1, rate, &cfg).unwrap();
        assert_eq!(counts(&r), (1, 1, 1), "{rate} Hz");
        assert!((r.tone_hz - 441.0).abs() < 0.01, "{}", r.tone_hz);
    }
    let cfg = GlitchConfig {
        freq_hz: Some(1000.0),
        ..Default::default()
    };
    let err = tone_glitches(&s16(&tone(1.0, AMP)), 1, RATE, &cfg).unwrap_err();
    assert!(matches!(err, GlitchError::NoTone(_)), "{err}");
}

#[test]
fn silence_noise_and_shapes_are_refused() {
    let cfg = GlitchConfig::default();
    let e = tone_glitches(&[0.0; 48_000], 1, RATE, &cfg).unwrap_err();
    assert!(matches!(e, GlitchError::NoTone(_)), "{e}");
    let e = tone_glitches(&[0.0; 3], 2, RATE, &cfg).unwrap_err();
    assert!(matches!(e, GlitchError::Shape(_)), "{e}");
    let short = s16(&tone(0.1, AMP));
    let e = tone_glitches(&short, 1, RATE, &cfg).unwrap_err();
    assert!(matches!(e, GlitchError::TooShort(_)), "{e}");
}

/// The tone's period at 441 Hz, frames.
const TONE_PERIOD: f64 = 48_000.0 / 441.0;

/// `frames` wrapped to half the tone's period either way, as `jump_frames` reports them.
fn wrapped(frames: f64) -> f64 {
    let w = frames.rem_euclid(TONE_PERIOD);
    if w > TONE_PERIOD / 2.0 {
        w - TONE_PERIOD
    } else {
        w
    }
}

fn jumps(r: &GlitchReport) -> Vec<f64> {
    r.events
        .iter()
        .map(|e| e.jump_frames.expect("clean tone on both sides"))
        .collect()
}

#[test]
fn each_event_says_what_it_did_to_the_timeline() {
    // Dropped spans move the tone ahead by their length, repeated ones back, at any phase.
    for (how, len, sign) in [("drop", 64, 1.0), ("drop", 30, 1.0), ("repeat", 20, -1.0)] {
        let x = splice(&tone(5.0, AMP), &places(4), len, how);
        let r = run(&x);
        assert_eq!(r.events.len(), 4, "{how} {len}");
        for (j, e) in jumps(&r).iter().zip(&r.events) {
            let want = wrapped(sign * len as f64);
            assert!((j - want).abs() < 0.5, "{how} {len}: {j} (want {want})");
            assert_eq!(e.zero_frames, 0);
        }
    }
    // A dropped 64-frame period of 441 Hz reads −44.8: the jump is known modulo the tone.
    assert!((wrapped(64.0) + 44.84).abs() < 0.01);
}

#[test]
fn silence_over_the_timeline_is_zeros_without_a_jump_and_inserted_silence_a_jump_back() {
    // 192 frames of the tone replaced by zeros (a device that played silence while its
    // stream went on): a hole, the timeline where it was.
    let mut x = tone(5.0, AMP);
    let places = places(4);
    for &p in &places {
        x[p..p + 192].fill(0.0);
    }
    let r = run(&x);
    assert_eq!(r.events.len(), 4);
    for (j, e) in jumps(&r).iter().zip(&r.events) {
        assert!(j.abs() < 0.5, "{j}");
        assert_eq!(e.zero_frames, 192);
    }
    // 64 frames of zeros inserted (the stream waited): the tone comes back 64 late.
    let r = run(&splice(&tone(5.0, AMP), &places, 64, "silence"));
    for (j, e) in jumps(&r).iter().zip(&r.events) {
        assert!((j - wrapped(-64.0)).abs() < 0.5, "{j}");
        assert!(e.zero_frames >= 63, "{}", e.zero_frames);
    }
}

#[test]
fn close_events_each_measure_their_own_jump() {
    // Two drops 25 ms apart are two events (merge_ms is 20), with only 25 ms of tone
    // between them: each fits its own sides there. Three 2 ms apart are one event, the
    // jump of all three.
    let base = tone(3.0, AMP);
    let at = RATE as usize + 999;
    let r = run(&splice(&base, &[at, at + 1_200], 40, "drop"));
    assert_eq!(r.events.len(), 2);
    assert!(
        jumps(&r).iter().all(|j| (j - 40.0).abs() < 0.5),
        "{:?}",
        jumps(&r)
    );
    let r = run(&splice(&base, &[at, at + 96, at + 192], 10, "drop"));
    assert_eq!(r.events.len(), 1);
    assert!((jumps(&r)[0] - 30.0).abs() < 0.5, "{:?}", jumps(&r));
}
