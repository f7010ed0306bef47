use super::*;

const RATE: u32 = 48_000;

fn tone(n: usize) -> f32 {
    (2.0 * std::f32::consts::PI * 441.0 * n as f32 / RATE as f32).sin() * 0.25
}

/// The largest sample-to-sample change: a 441 Hz tone at 0.25 moves at most
/// 0.25 × 2π × 441 / 48000 ≈ 0.0144 per sample.
fn max_step(x: &[f32]) -> f32 {
    x.windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_gap_in_a_tone_fades_out_and_back_in_without_a_step() {
    let mut c = Conceal::new(1, RATE).unwrap();
    let mut played = Vec::new();
    let mut n = 0;
    // 40 periods of tone, 20 missing, 40 of tone (which resumes at its own phase).
    for p in 0..100 {
        let mut x: Vec<f32> = (n..n + 64).map(tone).collect();
        n += 64;
        let gap = (40..60).contains(&p).then_some(0..64);
        c.process(&mut x, gap);
        played.extend_from_slice(&x);
    }
    assert!(max_step(&played) < 0.02, "step {}", max_step(&played));
    // The gap is 1280 frames (27 ms): the continuation plays at full level for 10 ms
    // (480 frames), then is faded out within 5 ms (240).
    let gap = &played[40 * 64..60 * 64];
    assert!(gap[720..].iter().all(|&v| v == 0.0));
    assert!(
        gap[..60].iter().any(|&v| v.abs() > 0.24),
        "continued at first"
    );
    assert!(
        gap[420..480].iter().any(|&v| v.abs() > 0.24),
        "at full level to the end of the hold"
    );
    assert_eq!(c.concealed_frames(), 1280);
    assert!(c.is_clean());
}

#[test]
fn a_short_gap_is_bridged_by_the_continuation() {
    let mut c = Conceal::new(2, RATE).unwrap();
    let mut played = Vec::new();
    let mut n = 0;
    for p in 0..30 {
        let mut x: Vec<f32> = (n..n + 64).flat_map(|i| [tone(i), -tone(i)]).collect();
        n += 64;
        c.process(&mut x, (p == 20).then_some(16..48));
        played.extend(x.chunks(2).map(|f| f[0]));
    }
    assert!(max_step(&played) < 0.02, "step {}", max_step(&played));
    // Within 32 frames of a 5 ms fade the level stays above 80 %.
    let bridged = &played[20 * 64 + 16..20 * 64 + 48];
    let ideal: Vec<f32> = (20 * 64 + 16..20 * 64 + 48).map(tone).collect();
    for (a, b) in bridged.iter().zip(&ideal) {
        assert!((a - b).abs() < 0.06, "{a} vs {b}");
    }
}

#[test]
fn only_audio_that_repeats_offers_a_phase_to_resume_at() {
    let mut seed = 7u32;
    let mut noise = || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let mut cue = [0.0f32; 16];
    for (tonal, want) in [(true, true), (false, false)] {
        let mut c = Conceal::new(1, RATE).unwrap();
        let mut x: Vec<f32> = (0..2048)
            .map(|n| if tonal { tone(n) } else { noise() })
            .collect();
        c.process(&mut x, None);
        c.process(&mut [0.0; 64], Some(0..64));
        assert_eq!(c.ahead(&mut cue) > 0, want, "tonal {tonal}");
    }
}

#[test]
fn a_voiced_sound_is_continued_at_its_pitch_period() {
    // 150 Hz (320 frames) with partials up to 4.5 kHz, stereo in opposite phase: the
    // coarse pass's sums over four frames must not lose the period.
    let voice = |n: usize| {
        let t = n as f32 / RATE as f32;
        [1.0f32, 2.0, 5.0, 30.0]
            .iter()
            .map(|&k| (std::f32::consts::TAU * 150.0 * k * t).sin() / k)
            .sum::<f32>()
            * 0.2
    };
    let mut c = Conceal::new(2, RATE).unwrap();
    let mut x: Vec<f32> = (0..2048).flat_map(|n| [voice(n), -voice(n)]).collect();
    c.process(&mut x, None);
    let mut gap = vec![0.0f32; 128];
    c.process(&mut gap, Some(0..64));
    let mut cue = [0.0f32; 1];
    let lag = c.ahead(&mut cue);
    assert!(lag == 320 || lag == 640, "lag {lag}");
    for (i, f) in gap.chunks(2).enumerate() {
        assert!((f[0] - voice(2048 + i)).abs() < 1e-3, "frame {i}");
    }
}

#[test]
fn a_stream_that_starts_or_resumes_from_silence_fades_in() {
    let mut c = Conceal::new(1, RATE).unwrap();
    let mut x = vec![0.5f32; 128];
    c.process(&mut x, None);
    assert!(x[0].abs() < 0.01, "starts near zero: {}", x[0]);
    assert!(max_step(&x) < 0.05);
    assert_eq!(x[127], 0.5);
}

#[test]
fn without_history_the_last_frame_is_held_and_faded() {
    let mut c = Conceal::new(1, RATE).unwrap();
    let mut x = vec![0.3f32; 100];
    c.process(&mut x, None);
    let mut gap = vec![0.0f32; 800];
    c.process(&mut gap, Some(0..800));
    assert!((gap[0] - 0.3).abs() < 1e-3);
    assert!((gap[479] - 0.3).abs() < 1e-3, "held through the hold");
    assert!(max_step(&gap) < 0.01);
    assert_eq!(gap[799], 0.0);
}

#[test]
fn block_and_frame_by_frame_remember_the_same_history() {
    // Stereo, blocks of every size (longer than the ring too), then one gap: the
    // continuation depends on every frame remembered, and must not depend on how
    // the clean audio was cut into calls.
    let sig = |n: usize, c: usize| tone(n) * if c == 0 { 1.0 } else { -0.5 };
    let (mut blocks, mut frames) = (
        Conceal::new(2, RATE).unwrap(),
        Conceal::new(2, RATE).unwrap(),
    );
    let mut n = 0;
    for len in [1usize, 7, 64, 5000, 3, 64, 900] {
        let x: Vec<f32> = (n..n + len).flat_map(|i| [sig(i, 0), sig(i, 1)]).collect();
        let mut a = x.clone();
        blocks.process(&mut a, None);
        let mut b = x;
        for f in b.chunks_exact_mut(2) {
            frames.process(f, None);
        }
        assert_eq!(a, b, "clean audio at block {len}");
        n += len;
    }
    assert_eq!(blocks.hist, frames.hist);
    assert_eq!(
        (blocks.written, blocks.valid),
        (frames.written, frames.valid)
    );
    let (mut a, mut b) = (vec![0.0f32; 256], vec![0.0f32; 256]);
    blocks.process(&mut a, Some(0..128));
    frames.process(&mut b, Some(0..128));
    assert_eq!(a, b);
    let loudest = a[..128].iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(loudest > 0.2, "the continuation plays the tone: {loudest}");
}

#[test]
fn odd_input_does_not_panic() {
    let mut c = Conceal::new(3, RATE).unwrap();
    for (len, gap) in [
        (0, Some(std::ops::Range { start: 5, end: 1 })),
        (7, Some(0..100)),
        (9, None),
        (30, Some(std::ops::Range { start: 9, end: 3 })),
    ] {
        let mut x = vec![f32::NAN; len];
        c.process(&mut x, gap);
    }
    assert!(Conceal::new(0, RATE).is_err());
    assert!(Conceal::new(1, 100).is_err());
}

/// `periods` of `signal` (frame n → sample, mono) from frame `n` through `c`, the period
/// at index `gap` missing, with a budget of `budget` searches for that period.
fn play(
    c: &mut Conceal,
    signal: impl Fn(usize) -> f32,
    n: &mut usize,
    periods: usize,
    gap: usize,
    budget: u32,
) -> Vec<f32> {
    let mut played = Vec::new();
    for p in 0..periods {
        let mut x: Vec<f32> = (*n..*n + 64).map(&signal).collect();
        *n += 64;
        c.process_within(&mut x, (p == gap).then_some(0..64), &mut budget.clone());
        played.extend_from_slice(&x);
    }
    played
}

#[test]
fn a_later_gap_continues_near_the_lag_found_before_without_a_full_search() {
    let mut c = Conceal::new(1, RATE).unwrap();
    let mut n = 0;
    let mut played = play(&mut c, tone, &mut n, 40, 20, 1);
    assert_eq!((c.lag_searches(), c.skipped_searches()), (1, 0));
    // Two more gaps with no budget at all: the pitch has not moved, the lag near the
    // last one still repeats the tone, and nothing steps.
    played.extend(play(&mut c, tone, &mut n, 40, 20, 0));
    played.extend(play(&mut c, tone, &mut n, 40, 20, 0));
    assert_eq!((c.lag_searches(), c.skipped_searches()), (1, 0));
    assert!(max_step(&played) < 0.02, "step {}", max_step(&played));
}

#[test]
fn a_pitch_that_moved_is_searched_again_when_the_budget_allows() {
    // 441 Hz, then a fifth below (294 Hz, another period): near the 441 Hz lag the new
    // tone does not repeat, so its gap takes a full search from the budget, and the
    // continuation plays the new tone.
    let low = |n: usize| (std::f32::consts::TAU * 294.0 * n as f32 / RATE as f32).sin() * 0.25;
    let mut c = Conceal::new(1, RATE).unwrap();
    let mut n = 0;
    play(&mut c, tone, &mut n, 40, 20, 1);
    let played = play(&mut c, low, &mut n, 40, 30, 1);
    assert_eq!((c.lag_searches(), c.skipped_searches()), (2, 0));
    assert!(max_step(&played[64..]) < 0.02, "step {}", max_step(&played));
    let gap = &played[30 * 64..31 * 64];
    let ideal: Vec<f32> = (n - 10 * 64..n - 9 * 64).map(low).collect();
    for (a, b) in gap.iter().zip(&ideal) {
        assert!((a - b).abs() < 0.02, "{a} vs {b}");
    }
    // The same change without a budget: the search is skipped, counted, and the gap
    // is still filled from the history (no panic, no silence at its start).
    let mut c = Conceal::new(1, RATE).unwrap();
    let mut n = 0;
    play(&mut c, tone, &mut n, 40, 20, 1);
    let played = play(&mut c, low, &mut n, 40, 30, 0);
    assert_eq!((c.lag_searches(), c.skipped_searches()), (1, 1));
    assert!(played[30 * 64..30 * 64 + 8].iter().any(|v| v.abs() > 0.01));
}
