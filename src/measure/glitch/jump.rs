//! What an event did to the tone's timeline: the phase jump across it, in frames, and the
//! longest run of digital zeros in it (main thread, after the fact).
//!
//! Design: counting events says how often a listener hears something, not what broke. The
//! tone itself tells more. Fitted by least squares at its frequency on clean tone just
//! before an event and just after it, against one time axis, its phase moves by exactly
//! what the event did to the timeline: a span dropped moves it ahead by the span's length,
//! a span repeated or played late moves it back, and a gap that resumed where the
//! timeline is (a concealment that rejoined in phase, a device's silence whose stream
//! skipped as much) moves it not at all. So a dropped 64-frame period, a late JACK cycle
//! replayed, a drift trim and a concealed hub miss each leave their own signature, and
//! runs of exact zeros (silence a device or a JACK cycle played) tell a dropout from a
//! fade. A pure tone repeats every period, so the jump is known only modulo the tone's
//! period (108.8 frames for 441 Hz at 48 kHz): it is reported wrapped to half a period
//! either way, and a dropped 64-frame period reads −44.8.

use std::ops::Range;

use super::GlitchEvent;
use super::detect::SineFit;

/// Clean tone fitted on each side, ms.
const FIT_MS: f64 = 10.0;
/// Kept clear of the event's first and last disturbance, ms (the detector marks a step
/// where its residual first exceeds, and a hole by 0.5 ms windows).
const GUARD_MS: f64 = 1.5;
/// Shorter runs of exact zeros are the tone crossing zero (one sample, more in a quiet
/// tone at 16 bits), not silence played, frames.
const MIN_ZERO_RUN: usize = 8;
/// Less clean tone than this on either side (or than one period of the tone) and the
/// jump is not measured, ms.
const MIN_FIT_MS: f64 = 2.0;

/// Fills each event's `jump_frames` and `zero_frames` from channel `lead` of `samples`
/// (interleaved, `channels` per frame), a tone of `tone_hz` at `rate`, within the span
/// `span` the events were found in.
pub(super) fn annotate(
    events: &mut [GlitchEvent],
    samples: &[f32],
    channels: usize,
    lead: usize,
    rate: u32,
    tone_hz: f64,
    span: Range<usize>,
) {
    let at = |n: usize| samples[n * channels + lead];
    let ms = |v: f64| (v * f64::from(rate) / 1000.0).round() as usize;
    let (fit, guard) = (ms(FIT_MS), ms(GUARD_MS));
    let omega = std::f64::consts::TAU * tone_hz / f64::from(rate);
    let least = ms(MIN_FIT_MS).max(if tone_hz > 0.0 {
        (f64::from(rate) / tone_hz).ceil() as usize
    } else {
        usize::MAX
    });
    let frames = samples.len() / channels;
    for i in 0..events.len() {
        let prev_end = if i > 0 {
            events[i - 1].end_frame
        } else {
            span.start
        };
        let next_start = events.get(i + 1).map_or(span.end, |e| e.frame);
        let e = &mut events[i];
        let before_end = e.frame.saturating_sub(guard);
        let before = before_end.saturating_sub(fit).max(prev_end + guard)..before_end;
        let after_start = e.end_frame + guard;
        let after = after_start..(after_start + fit).min(next_start.saturating_sub(guard));
        e.jump_frames = match (
            phase(&at, before.clone(), omega, least),
            phase(&at, after.clone(), omega, least),
        ) {
            // Each phase is at its window's first frame: the tone alone would have moved
            // ω per frame between them.
            (Some(a), Some(b)) => {
                let moved = omega * (after.start - before.start) as f64;
                Some(wrap(b - a - moved) / omega)
            }
            _ => None,
        };
        let look = e.frame.saturating_sub(guard)..(e.end_frame + guard).min(frames);
        e.zero_frames = longest_zero_run(look.map(at));
    }
}

/// The phase, rad, at the first frame of `range`, of the sinusoid at `omega` (rad per
/// frame) that best fits it ([`SineFit`]); `None` when the range is shorter than `least`
/// or holds no tone.
fn phase(at: &impl Fn(usize) -> f32, range: Range<usize>, omega: f64, least: usize) -> Option<f64> {
    if range.len() < least || !omega.is_finite() || omega <= 0.0 {
        return None;
    }
    let x: Vec<f64> = range.map(|n| f64::from(at(n))).collect();
    // a·sin(ωk) + b·cos(ωk) = A·sin(ωk + φ) with a = A·cos φ, b = A·sin φ.
    let (a, b) = SineFit::new(omega.cos(), x.len()).coefficients(&x);
    (a.hypot(b) > 1e-6).then(|| b.atan2(a))
}

/// `x` wrapped to (−π, π].
fn wrap(x: f64) -> f64 {
    let t = std::f64::consts::TAU;
    let w = x.rem_euclid(t);
    if w > std::f64::consts::PI { w - t } else { w }
}

/// The longest run of exact zeros, 0 when shorter than [`MIN_ZERO_RUN`].
fn longest_zero_run(x: impl Iterator<Item = f32>) -> usize {
    let (mut run, mut most) = (0, 0);
    for v in x {
        run = if v == 0.0 { run + 1 } else { 0 };
        most = most.max(run);
    }
    if most >= MIN_ZERO_RUN { most } else { 0 }
}
