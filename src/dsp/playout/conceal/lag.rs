//! The lag a concealment continues at: where the last few milliseconds best repeat
//! themselves (RT audio thread; once at the start of a gap or at a splice).
//!
//! Design: the search is normalised cross-correlation of the last [`MATCH_MS`] against
//! every lag from 2.5 to 20 ms, every channel taking part (a mono sum would cancel a
//! stereo pair in opposite phase). Done plainly that is some 50 000 multiply-adds for a
//! stereo stream at 48 kHz; here a coarse pass looks at every [`COARSE`]th lag on the
//! history summed over runs of that many frames, and a fine pass at every lag around the
//! best at full rate: about 15 000, 11 µs on this project's 2-core VM
//! (`benches/mixer.rs`, `hub_input_resume/conceal_gap_full_search`).
//!
//! Why a budget: a hub conceals each of its inputs, and the inputs miss together (every
//! peer of one host stalls with it, a network hiccup delays them all). 64 inputs that
//! start a gap in the same period would search for 0.7 ms in it: more than a whole
//! period at 32 frames, so the mixer would be late and every listener would hear it.
//! Two rules bound it:
//! - a stream's pitch rarely moves far between two gaps, so the search first looks only
//!   at the lags within [`COARSE`] frames of the one it found last (nine lags at full
//!   rate, about 2 µs), and keeps the best of them when the audio still repeats there as
//!   closely as a tone does (correlation ≥ `PERIODIC`);
//! - the full search runs only from the reader's per-period budget (the hub mixer's
//!   `CUTS_PER_PERIOD`, shared with its cuts and resumes in phase; a client's speaker,
//!   one stream, passes no bound). Without one, the best lag near the last one is taken
//!   anyway if the audio correlates there at all, else the last frame is held and faded
//!   (as with too little history): a fade, never a step. These are counted
//!   ([`Conceal::skipped_searches`](super::Conceal::skipped_searches)).
//!
//! Everything is allocated in [`LagSearch::new`].

use super::ms_frames;
use crate::dsp::jitter::spend;

/// Shortest and longest lags searched, ms (a 400 Hz to 50 Hz period; a higher pitch is
/// found at a multiple of its period).
const LAG_MIN_MS: f64 = 2.5;
const LAG_MAX_MS: f64 = 20.0;
/// The correlation coefficient at the lag found from which the audio is taken to repeat
/// itself: a concealment offers a phase to resume at only then, and a lag near the last
/// one found is kept without a full search only then.
const PERIODIC: f32 = 0.9;
/// Step of the coarse pass, frames, and the runs its history is summed over; also how
/// far from the last lag the first look goes.
const COARSE: usize = 4;
/// Length of the stretch matched against its lagged copy, ms.
const MATCH_MS: f64 = 2.5;

/// A lag found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    /// Frames; 0: nothing repeats (hold the last frame).
    pub lag: usize,
    /// Whether the audio repeats closely at `lag` (a tone, a voiced sound).
    pub periodic: bool,
}

/// The lag search of one stream, with its scratch.
#[derive(Debug)]
pub(super) struct LagSearch {
    ch: usize,
    lag_min: usize,
    lag_max: usize,
    match_len: usize,
    /// The history in one straight run.
    lin: Box<[f32]>,
    /// The history summed over runs of [`COARSE`] frames, for the coarse pass.
    dec: Box<[f32]>,
    /// The lag found last in this stream (0: none yet).
    last: usize,
    full: u64,
    skipped: u64,
}

impl LagSearch {
    /// The search for `ch` channels at `rate` Hz, and the frames of history it reads
    /// (main thread; allocates).
    pub(super) fn new(ch: usize, rate: u32) -> (LagSearch, usize) {
        let lag_max = ms_frames(LAG_MAX_MS, rate);
        let match_len = ms_frames(MATCH_MS, rate);
        let cap = lag_max + match_len + 1;
        let search = LagSearch {
            ch,
            lag_min: ms_frames(LAG_MIN_MS, rate),
            lag_max,
            match_len,
            lin: vec![0.0; cap * ch].into_boxed_slice(),
            dec: vec![0.0; (cap / COARSE + 1) * ch].into_boxed_slice(),
            last: 0,
            full: 0,
            skipped: 0,
        };
        (search, cap)
    }

    /// The stream is a new one: its last lag says nothing of it.
    pub(super) fn forget(&mut self) {
        self.last = 0;
    }

    /// The longest lag searched, frames.
    pub(super) fn max_lag(&self) -> usize {
        self.lag_max
    }

    /// Full searches run since construction.
    pub(super) fn full_searches(&self) -> u64 {
        self.full
    }

    /// Searches wanted and not run for want of budget.
    pub(super) fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The lag at which the last `match_len` frames of the history best repeat: `hist`
    /// is the ring (interleaved, `ch` channels), `at` its write point, `valid` the frames
    /// of it that hold this stream. A full search spends one of `*budget` (see the
    /// module notes).
    ///
    /// Runs on: the RT audio thread, at the start of a gap or at a splice. Must not:
    /// allocate, lock, block (copies the history and correlates in preallocated scratch).
    pub(super) fn find(
        &mut self,
        hist: &[f32],
        at: usize,
        valid: usize,
        budget: &mut u32,
    ) -> Found {
        const NONE: Found = Found {
            lag: 0,
            periodic: false,
        };
        let ch = self.ch;
        let cap = hist.len() / ch;
        if valid < self.match_len + self.lag_min || cap < 2 || at >= cap {
            return NONE;
        }
        let span = valid.min(cap - 1);
        let lag_max = self.lag_max.min(span - self.match_len);
        // The history, oldest first, in one straight run (frame i is `span - i` back):
        // the ring's two pieces, copied whole.
        let start = (at + cap - span) % cap;
        let first = span.min(cap - start);
        self.lin[..first * ch].copy_from_slice(&hist[start * ch..(start + first) * ch]);
        self.lin[first * ch..span * ch].copy_from_slice(&hist[..(span - first) * ch]);
        let x = &self.lin[..span * ch];
        let m = self.match_len * ch;
        // Normalised by the matched stretch's own energy too: a correlation coefficient.
        let (_, xx) = dot_and_energy(&x[span * ch - m..], &x[span * ch - m..]);
        let periodic = PERIODIC * xx.sqrt();
        let near = (self.last > 0).then(|| {
            let lo = self.last.saturating_sub(COARSE).max(self.lag_min);
            best_lag(x, ch, m, lo..=(self.last + COARSE).min(lag_max))
        });

        let best = match near {
            Some(b) if b.0 >= periodic => b,
            _ if spend(budget) => {
                self.full += 1;
                self.full_search(span, lag_max)
            }
            other => {
                self.skipped += 1;
                other.unwrap_or((f32::MIN, 0))
            }
        };
        if best.0 <= 0.0 {
            return NONE;
        }
        self.last = best.1;
        Found {
            lag: best.1,
            periodic: best.0 >= periodic,
        }
    }

    /// The coarse pass over every lag up to `lag_max` and the fine pass around its best,
    /// on the first `span` frames of `lin`: (score, lag).
    fn full_search(&mut self, span: usize, lag_max: usize) -> (f32, usize) {
        let ch = self.ch;
        let x = &self.lin[..span * ch];
        // The coarse pass: every [`COARSE`]th lag, on the history summed over runs of
        // that many frames (aligned to its end), a [`COARSE`]th of the work of the same
        // lags at full rate. A pitch's correlation peak is wider than the run below
        // 1.5 kHz (the sum halves a 6 kHz partial), and the fine pass looks again at
        // every lag around the best at full rate.
        let runs = span / COARSE;
        let skip = span - runs * COARSE;
        for (j, run) in x[skip * ch..].chunks_exact(COARSE * ch).enumerate() {
            for c in 0..ch {
                self.dec[j * ch + c] = (0..COARSE).map(|k| run[k * ch + c]).sum();
            }
        }
        let dec = &self.dec[..runs * ch];
        let dm = self.match_len / COARSE * ch;
        let lo = self.lag_min.div_ceil(COARSE);
        let coarse = best_lag(dec, ch, dm, lo..=lag_max / COARSE).1 * COARSE;
        let lo = coarse.saturating_sub(COARSE).max(self.lag_min);
        best_lag(
            x,
            ch,
            self.match_len * ch,
            lo..=(coarse + COARSE).min(lag_max),
        )
    }
}

/// The lag in `lags` at which the last `m` samples of `x` (interleaved, `ch` channels)
/// best match the samples that lag before them: (score, lag), the score being the cross
/// term over the lagged stretch's root energy; (`f32::MIN`, 0) for no lag.
fn best_lag(x: &[f32], ch: usize, m: usize, lags: std::ops::RangeInclusive<usize>) -> (f32, usize) {
    let end = x.len();
    let mut best = (f32::MIN, 0usize);
    for lag in lags {
        let d = lag * ch;
        let Some(lagged) = end.checked_sub(m + d).map(|a| &x[a..end - d]) else {
            break;
        };
        let (xy, yy) = dot_and_energy(&x[end - m..], lagged);
        let s = if yy <= 1e-12 { -1.0 } else { xy / yy.sqrt() };
        if s > best.0 {
            best = (s, lag);
        }
    }
    best
}

/// Σ a·b and Σ b·b over two slices of equal length, summed in eight lanes so that the
/// loop vectorises (a single running sum must add in order, and does not): a full search
/// calls this some 200 times, on every input of a hub that misses.
fn dot_and_energy(a: &[f32], b: &[f32]) -> (f32, f32) {
    const LANES: usize = 8;
    let (mut ab, mut bb) = ([0.0f32; LANES], [0.0f32; LANES]);
    let (a8, b8) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (a8.remainder(), b8.remainder());
    for (x, y) in a8.zip(b8) {
        for k in 0..LANES {
            ab[k] += x[k] * y[k];
            bb[k] += y[k] * y[k];
        }
    }
    let mut sums = (ab.iter().sum::<f32>(), bb.iter().sum::<f32>());
    for (x, y) in ar.iter().zip(br) {
        sums.0 += x * y;
        sums.1 += y * y;
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_sums_are_the_plain_sums() {
        for n in [0usize, 1, 7, 8, 9, 120, 240, 243] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let (ab, bb) = dot_and_energy(&a, &b);
            let want_ab: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let want_bb: f32 = b.iter().map(|y| y * y).sum();
            assert!(
                (ab - want_ab).abs() < 1e-4 && (bb - want_bb).abs() < 1e-4,
                "{n}"
            );
        }
    }
}
