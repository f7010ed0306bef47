//! Round-trip measurement from a known click train (main thread, after the fact).
//!
//! Design: the `virtual` device's `impulse` signal puts a full-scale click on every
//! channel once a second. A peer that records what it captured (`--record-capture`) and
//! what it played (`--record`) from the same first cycle of one duplex device hears its
//! own clicks back through a hub in `loopback` mix; the two recordings advance together
//! one period per cycle (even when the device skips periods after an xrun), so a click's
//! frame index in the playback recording minus its index in the capture recording is the
//! round trip in frames, exactly, with no clock to reconcile.

/// Where each click of a train came back: the delay in frames after its capture, or
/// `None` when it never did within `max_delay` frames (lost, e.g. to a miss).
///
/// `x` is one channel of what the speaker played, starting at the device's first frame;
/// clicks were captured at `0, every, 2 × every, ...`.
///
/// # Example
/// ```
/// let mut x = vec![0.0f32; 300];
/// x[100 + 7] = 0.9; // the click captured at frame 100, back 7 frames later
/// x[200 + 7] = -0.9;
/// let d = izyrt::measure::click_delays(&x, 100, 50);
/// assert_eq!(d, [None, Some(7), Some(7)]); // the first click, at frame 0, did not return
/// ```
pub fn click_delays(x: &[f32], every: usize, max_delay: usize) -> Vec<Option<usize>> {
    let every = every.max(1);
    (0..x.len().div_ceil(every))
        .map(|k| k * every)
        .filter(|&at| at + max_delay <= x.len())
        .map(|at| {
            let end = (at + max_delay).min(x.len());
            x[at..end].iter().position(|v| v.abs() > 0.5)
        })
        .collect()
}

/// The figures of a set of delays, in frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Clicks measured.
    pub count: usize,
    /// Clicks that never came back.
    pub lost: usize,
    /// Median, frames.
    pub p50: usize,
    /// 99th percentile, frames.
    pub p99: usize,
    /// Largest, frames.
    pub max: usize,
}

/// Pairs each click of `capture` (a sample above 0.5 in magnitude; one per
/// `min_gap` frames at most) with the first click of `playback` at or after it, within
/// `max_delay` frames: the round trip of each, `None` when it never came back.
///
/// # Example
/// ```
/// let mut c = vec![0.0f32; 400];
/// let mut p = vec![0.0f32; 400];
/// c[50] = 1.0;
/// p[50 + 96] = 0.96;
/// c[250] = 1.0; // lost on the way back
/// assert_eq!(izyrt::measure::pair_clicks(&c, &p, 100, 120), [Some(96), None]);
/// ```
pub fn pair_clicks(
    capture: &[f32],
    playback: &[f32],
    min_gap: usize,
    max_delay: usize,
) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < capture.len() {
        if capture[i].abs() > 0.5 {
            if i + max_delay <= playback.len() {
                let end = i + max_delay;
                out.push(playback[i..end].iter().position(|v| v.abs() > 0.5));
            }
            i += min_gap.max(1);
        } else {
            i += 1;
        }
    }
    out
}

/// Summarises [`click_delays`] (`None` when no click came back at all).
///
/// # Example
/// ```
/// let s = izyrt::measure::summarise(&[Some(3), Some(5), None, Some(4)]).unwrap();
/// assert_eq!((s.count, s.lost, s.p50, s.max), (3, 1, 4, 5));
/// ```
pub fn summarise(delays: &[Option<usize>]) -> Option<Summary> {
    let mut d: Vec<usize> = delays.iter().flatten().copied().collect();
    if d.is_empty() {
        return None;
    }
    d.sort_unstable();
    let pick = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
    Some(Summary {
        count: d.len(),
        lost: delays.len() - d.len(),
        p50: pick(0.5),
        p99: pick(0.99),
        max: d[d.len() - 1],
    })
}
