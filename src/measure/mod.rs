//! Measurements from recordings (main thread, after the fact): the round trip from a
//! click train, and the glitches in a pure tone.
//!
//! Round trip. Design: a click is a single full-scale sample, so its correlation with what came back
//! is what came back itself: the round trip is where the returned signal peaks, found to
//! a sample by a threshold and refined below a sample by a parabola through the peak and
//! its two neighbours (exact, a whole number, when the path is a pure delay, as on
//! `virtual` devices; fractional when filters or converters smeared the click).
//!
//! Two ways to know where the clicks started:
//! - [`pair_clicks`]: the clicks were *captured* (the `virtual` device's `impulse`
//!   signal) and both what was captured and what was played are recorded from the same
//!   first cycle of one duplex device. The two recordings advance together one period
//!   per cycle (even when the device skips periods after an xrun), so the difference of
//!   the indices is the round trip, with no clock to reconcile.
//! - [`click_delays`]: the clicks were *played* at `0, every, 2 × every, ...` (a loopback
//!   cable from output to input brings them back into the capture) and what came back
//!   from the hub is recorded from the same first cycle.
//!
//! [`tone_glitches`] (in `glitch.rs`) counts what a listener hears as damage in a recorded
//! pure tone: steps, holes and the events they make.

mod glitch;

pub use glitch::{GlitchConfig, GlitchError, GlitchEvent, GlitchKind, GlitchReport, tone_glitches};

/// Where each click of a train played at `0, every, 2 × every, ...` came back in `x`:
/// the delay in frames (sub-sample), or `None` when it did not within `max_delay`.
///
/// # Example
/// ```
/// let mut x = vec![0.0f32; 300];
/// x[100 + 7] = 0.9; // the click of frame 100, back 7 frames later
/// x[200 + 7] = -0.9;
/// let d = izyrt::measure::click_delays(&x, 100, 50);
/// assert_eq!(d, [None, Some(7.0), Some(7.0)]); // the first click, at frame 0, did not return
/// ```
pub fn click_delays(x: &[f32], every: usize, max_delay: usize) -> Vec<Option<f64>> {
    let every = every.max(1);
    (0..x.len().div_ceil(every))
        .map(|k| k * every)
        .filter(|&at| at + max_delay <= x.len())
        .map(|at| find_click(&x[at..at + max_delay]))
        .collect()
}

/// Pairs each click of `capture` (a sample above 0.5 in magnitude; at most one per
/// `min_gap` frames) with the click of `playback` that follows it within `max_delay`
/// frames: the round trip of each (sub-sample), `None` when it never came back.
///
/// # Example
/// ```
/// let mut c = vec![0.0f32; 400];
/// let mut p = vec![0.0f32; 400];
/// c[50] = 1.0;
/// p[50 + 96] = 0.5;
/// p[50 + 97] = 0.96;
/// p[50 + 98] = 0.5; // smeared symmetrically around 97
/// c[250] = 1.0; // lost on the way back
/// assert_eq!(izyrt::measure::pair_clicks(&c, &p, 100, 120), [Some(97.0), None]);
/// ```
pub fn pair_clicks(
    capture: &[f32],
    playback: &[f32],
    min_gap: usize,
    max_delay: usize,
) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < capture.len() {
        if capture[i].abs() > 0.5 {
            if i + max_delay <= playback.len() {
                out.push(find_click(&playback[i..i + max_delay]));
            }
            i += min_gap.max(1);
        } else {
            i += 1;
        }
    }
    out
}

/// What a returned click must reach, in magnitude. A full-scale click comes back smeared by
/// the client's two minimum-phase resamplers to a peak of 0.51–0.58 (by fraction); a sound
/// card's converters smear it further. A quarter of full scale is still far above any
/// loopback cable's noise.
const CLICK_BACK: f32 = 0.25;

/// The position of the first click in `x` (crossing [`CLICK_BACK`] in magnitude), refined
/// to the peak of |x| within the next few samples and below a sample by a parabola.
fn find_click(x: &[f32]) -> Option<f64> {
    let first = x.iter().position(|v| v.abs() > CLICK_BACK)?;
    let end = (first + 8).min(x.len());
    let peak = (first..end).max_by(|&a, &b| x[a].abs().total_cmp(&x[b].abs()))?;
    let at = |i: usize| f64::from(x[i].abs());
    let offset = if peak == 0 || peak + 1 >= x.len() {
        0.0
    } else {
        let (a, b, c) = (at(peak - 1), at(peak), at(peak + 1));
        let denom = a - 2.0 * b + c;
        if denom.abs() < 1e-12 {
            0.0
        } else {
            (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
        }
    };
    Some(peak as f64 + offset)
}

/// The figures of a set of delays, in frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Clicks measured.
    pub count: usize,
    /// Clicks that never came back.
    pub lost: usize,
    /// Median, frames.
    pub p50: f64,
    /// 99th percentile, frames.
    pub p99: f64,
    /// Largest, frames.
    pub max: f64,
}

/// Summarises delays (`None` when no click came back at all).
///
/// # Example
/// ```
/// let s = izyrt::measure::summarise(&[Some(3.0), Some(5.0), None, Some(4.0)]).unwrap();
/// assert_eq!((s.count, s.lost, s.p50, s.max), (3, 1, 4.0, 5.0));
/// ```
pub fn summarise(delays: &[Option<f64>]) -> Option<Summary> {
    let mut d: Vec<f64> = delays.iter().flatten().copied().collect();
    if d.is_empty() {
        return None;
    }
    d.sort_by(f64::total_cmp);
    let pick = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
    Some(Summary {
        count: d.len(),
        lost: delays.len() - d.len(),
        p50: pick(0.5),
        p99: pick(0.99),
        max: d[d.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_smeared_click_is_found_between_samples() {
        // A click centred at 10.25 seen through a short symmetric kernel.
        let mut x = vec![0.0f32; 64];
        let centre = 10.25f64;
        for (i, v) in x.iter_mut().enumerate() {
            let d = i as f64 - centre;
            *v = (1.0 - (d * d) / 4.0).max(0.0) as f32;
        }
        let got = find_click(&x).unwrap();
        assert!((got - centre).abs() < 0.05, "{got}");
        assert_eq!(find_click(&[0.0; 16]), None);
    }

    #[test]
    fn a_click_through_a_clients_two_resamplers_is_found() {
        use crate::dsp::resampler::Resampler;
        // A full-scale click through the capture side's resampler, then the speaker
        // side's, at steps that put it at 24 fractions of a frame: each comes back, near
        // where it went in (the two filters' delay is a few frames).
        let mut least = f32::MAX;
        for i in 0..24 {
            let step = 1.0 + f64::from(i) * 0.000_14;
            let mut x = vec![0.0f32; 512];
            x[300] = 1.0;
            let mut up = Resampler::new(1, 512).unwrap();
            up.push(&x);
            let mut mid = vec![0.0f32; 512];
            let n = up.process_available(&mut mid, step);
            let mut down = Resampler::new(1, 512).unwrap();
            down.push(&mid[..n]);
            let mut back = vec![0.0f32; 480];
            down.process(&mut back, step).unwrap();
            least = least.min(back.iter().fold(0.0, |m, v| m.max(v.abs())));
            let at = find_click(&back).unwrap_or_else(|| panic!("step {step}: not found"));
            let sent = 300.0 / (step * step);
            assert!(
                at > sent && at < sent + 10.0,
                "step {step}: {at} for {sent}"
            );
        }
        assert!(least > CLICK_BACK && least < 0.7, "smallest peak {least}");
    }
}
