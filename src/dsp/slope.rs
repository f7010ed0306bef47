//! The slope of a stream's position against a local clock, from one summary point per
//! block, with steps taken out: how a client measures the hub's clock against its device's
//! (`playout::rate`, RT audio thread) and how the hub shows each input's drift
//! (`hub::drift`, RT mixer thread). Once per block; fixed arrays, no allocation.
//!
//! Design: the points are (local frames, stream frames − local frames), one per block (a
//! median at a client, a minimum at the hub), and a straight line through them slopes by
//! the clock difference. A time that is *lost* is not a slope: a hub whose device xruns
//! skips the frames it missed and its stream falls behind for good; a device's skipped
//! frames are counted from the time the recovery took, which a plugin may not match. Each
//! leaves a step, and a least-squares line through a step tilts by it: on this VM a burst
//! of xruns at a stream's start (about 200 ms lost on both sides) read as −18 000 ppm at
//! a client for the window's half minute, and its capture, resampled by that, starved the
//! hub's input for a 20 ms hole every second; the hub's own meter showed a peer that
//! locked at hundreds of ppm after any hiccup of a period.
//!
//! So the line gets a free offset after each step. The increment between consecutive
//! points is compared with the median increment (the drift, robustly); one that departs
//! from it by more than the caller's least step ([`STEP_S`]) and by more than
//! [`STEP_SPREAD`] times the increments' own spread marks a step, and the slope is pooled
//! over the runs between steps, each centred on its own means. No step's size is
//! estimated, so a wrong mark costs a little precision rather than a tilt; that is why
//! steps that recur are safe: a dummy JACK server that wakes late loses up to 1.5 periods
//! every half second or so, in nearly every block, and the runs between the marks still
//! slope by its slower clock, which a client's capture must make up (the spread guard
//! keeps those marks few and the runs long).
//!
//! A step inside a block moves that block's median only part of the way when it came
//! near the block's middle (the median of a mixture lands within the noise's reach of
//! one side), and the rest shows in the neighbouring increment, too small to be marked
//! by itself: a neighbour of a mark that departs the same way by more than
//! [`REST_SPREAD`] spreads is marked with it.

use crate::dsp::quantile::median;

/// Points kept: the window of the fit, in blocks.
pub const POINTS: usize = 32;
/// Points needed before [`StepFit::slope`] gives a slope.
pub const MIN_POINTS: usize = 8;
/// The least step the callers take out, s of stream (smaller ones are kept as drift).
pub const STEP_S: f64 = 1e-3;
/// A step departs from the median increment by this many times the increments' spread
/// (their median absolute deviation, scaled to a standard deviation).
pub const STEP_SPREAD: f64 = 6.0;
/// A neighbour of a step that departs the same way by this many spreads is the step's
/// rest (a step inside a block moves that block's median only part of the way).
pub const REST_SPREAD: f64 = 3.0;

/// The last [`POINTS`] block summaries of one stream, and the slope through them.
///
/// # Example
/// ```
/// use izyrt::dsp::slope::StepFit;
/// // A stream 100 ppm fast that loses 2000 frames once, between its 10th and 11th second.
/// let mut f = StepFit::new();
/// for s in 0..20u32 {
///     let x = f64::from(s) * 48_000.0;
///     let lost = if s >= 10 { 2000.0 } else { 0.0 };
///     f.push(x, x * 100e-6 - lost);
/// }
/// assert!((f.slope(48.0).unwrap() * 1e6 - 100.0).abs() < 1e-6);
/// ```
#[derive(Debug, Clone)]
pub struct StepFit {
    points: [(f64, f64); POINTS],
    n: usize,
    head: usize,
}

impl Default for StepFit {
    fn default() -> Self {
        StepFit::new()
    }
}

impl StepFit {
    /// No points.
    pub fn new() -> StepFit {
        StepFit {
            points: [(0.0, 0.0); POINTS],
            n: 0,
            head: 0,
        }
    }

    /// Adds a block's point (the oldest goes once there are [`POINTS`]).
    ///
    /// Runs on: an RT thread, once per block. Must not: allocate, lock, block.
    pub fn push(&mut self, x: f64, y: f64) {
        self.points[self.head] = (x, y);
        self.head = (self.head + 1) % POINTS;
        self.n = (self.n + 1).min(POINTS);
    }

    /// Points held.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Forgets every point (a new stream).
    pub fn clear(&mut self) {
        self.n = 0;
        self.head = 0;
    }

    /// The slope through the points, in y per x, with a free offset after every step of
    /// more than `least_step` (in y's unit); `None` before [`MIN_POINTS`] points or when
    /// no run between steps spans any time.
    ///
    /// Runs on: an RT thread, once per block. Must not: allocate, lock, block (two
    /// selections and two passes over at most [`POINTS`] points, on the stack).
    pub fn slope(&self, least_step: f64) -> Option<f64> {
        if self.n < MIN_POINTS {
            return None;
        }
        // The points in time order, oldest first (the newest is at head − 1).
        let mut ordered = [(0.0, 0.0); POINTS];
        for (i, p) in ordered[..self.n].iter_mut().enumerate() {
            *p = self.points[(self.head + POINTS - self.n + i) % POINTS];
        }
        let points = &ordered[..self.n];
        let mut step = [false; POINTS];
        mark_steps(points, least_step, &mut step[..self.n]);
        fit(points, &step[..self.n])
    }
}

/// Marks the steps between `points` (in time order): `step[i]` when the increment from
/// point `i − 1` to `i` departs from the median increment by more than `least` and by
/// more than [`STEP_SPREAD`] spreads.
fn mark_steps(points: &[(f64, f64)], least: f64, step: &mut [bool]) {
    step.fill(false);
    if points.len() < 3 {
        return;
    }
    // The median slope between consecutive points: the drift, whatever a few steps did.
    let mut slopes = [0.0; POINTS];
    let mut k = 0;
    for w in points.windows(2) {
        let dx = w[1].0 - w[0].0;
        if dx > 0.0 {
            slopes[k] = (w[1].1 - w[0].1) / dx;
            k += 1;
        }
    }
    let Some(drift) = median(&mut slopes[..k]) else {
        return;
    };
    // Each increment's departure from it, and their spread.
    let mut departs = [0.0; POINTS];
    let mut spread = [0.0; POINTS];
    let n = points.len() - 1;
    for ((d, s), w) in departs.iter_mut().zip(&mut spread).zip(points.windows(2)) {
        *d = (w[1].1 - w[0].1) - drift * (w[1].0 - w[0].0);
        *s = d.abs();
    }
    let Some(mad) = median(&mut spread[..n]) else {
        return;
    };
    let sigma = 1.4826 * mad;
    let limit = least.max(STEP_SPREAD * sigma);
    for (s, d) in step[1..].iter_mut().zip(&departs[..n]) {
        *s = d.abs() > limit;
    }
    // A step inside a block is a mixture in that block's summary (a median), which
    // lands up to the noise's reach short of the step: the rest shows in the next or
    // the last increment. A neighbour of a step that departs the same way by more than
    // [`REST_SPREAD`] spreads is that rest, marked too (its point then weighs nothing).
    let marked = step;
    let mut rest = [false; POINTS];
    for i in 0..n {
        if marked[i + 1] {
            continue;
        }
        let d = departs[i];
        let beside = |j: usize| j < n && marked[j + 1] && departs[j] * d > 0.0;
        if d.abs() > REST_SPREAD * sigma && ((i > 0 && beside(i - 1)) || beside(i + 1)) {
            rest[i + 1] = true;
        }
    }
    for (s, r) in marked.iter_mut().zip(&rest[..=n]) {
        *s |= *r;
    }
}

/// The least-squares slope through `points` with a free offset after each step (`step[i]`:
/// between points `i − 1` and `i`): each run between steps is centred on its own means
/// and the slope is pooled over the runs (`None` when no run spans any time).
fn fit(points: &[(f64, f64)], step: &[bool]) -> Option<f64> {
    let (mut sxy, mut sxx) = (0.0, 0.0);
    let mut start = 0;
    for end in 1..=points.len() {
        if end < points.len() && !step[end] {
            continue;
        }
        let run = &points[start..end];
        let n = run.len() as f64;
        let mx = run.iter().map(|p| p.0).sum::<f64>() / n;
        let my = run.iter().map(|p| p.1).sum::<f64>() / n;
        for &(x, y) in run {
            sxy += (x - mx) * (y - my);
            sxx += (x - mx) * (x - mx);
        }
        start = end;
    }
    (sxx > 0.0).then(|| sxy / sxx).filter(|s| s.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_fits_its_last_points_in_time_order() {
        let mut f = StepFit::new();
        // 40 points: the first 8 (which leave the ring) on another slope entirely.
        for s in 0..40u32 {
            let x = f64::from(s) * 1000.0;
            let y = if s < 8 { -x } else { 0.5 * x };
            f.push(x, y);
        }
        assert_eq!(f.len(), POINTS);
        assert!((f.slope(1.0).unwrap() - 0.5).abs() < 1e-12);
        f.clear();
        assert!(f.is_empty());
        assert_eq!(f.slope(1.0), None);
        for s in 0..MIN_POINTS as u32 {
            assert_eq!(f.slope(1.0), None, "{s} points");
            f.push(f64::from(s), 0.5 * f64::from(s));
        }
        assert!(f.slope(1.0).is_some());
    }

    #[test]
    fn an_outlying_point_is_its_own_run() {
        // One block's summary thrown far off (a stall longer than half a block) and back:
        // two marks around it, and it weighs nothing.
        let mut f = StepFit::new();
        for s in 0..20u32 {
            let x = f64::from(s) * 1000.0;
            f.push(x, 0.001 * x + if s == 9 { 500.0 } else { 0.0 });
        }
        assert!((f.slope(10.0).unwrap() - 0.001).abs() < 1e-12);
    }

    #[test]
    fn a_step_split_over_two_medians_is_taken_out_whole() {
        // 64 frames lost inside block 10: its median moved 56 of them, block 11's the
        // other 8. The points jitter by a quarter of a frame.
        let mut f = StepFit::new();
        for s in 0..24u32 {
            let x = f64::from(s) * 48_000.0;
            let lost = match s {
                0..10 => 0.0,
                10 => 56.0,
                _ => 64.0,
            };
            let jitter = if s % 2 == 0 { 0.25 } else { -0.25 };
            f.push(x, x * 20e-6 - lost + jitter);
        }
        let ppm = f.slope(48.0).unwrap() * 1e6;
        assert!((ppm - 20.0).abs() < 1.0, "{ppm}");
    }
}
