//! Where a drop cuts: the number of frames a drop removes, chosen near what the policy
//! asked for so that the audio after the cut continues the audio before it (RT thread
//! that reads the buffer with `pull`: the hub's mixer; only when a drop happens).
//!
//! Design: the hub's inputs have no resampler, so a buffer that gives latency back drops
//! frames (a shrink, the excess a burst left, a drift trim), and the reader cross-fades
//! the cut (`Conceal::splice`). A cross-fade hides the step, not the phase: dropping 64
//! frames of a 441 Hz tone (a period of 108.8 frames) joins two waves 212° apart, and
//! half-way through the fade they nearly cancel, a hole a listener hears and
//! `izyrt glitches` counts. Dropping 109 frames instead joins them in phase and nothing
//! is heard. So the drop's length moves, within bounds, to where the stream best repeats
//! itself: the overlap-add idea of WSOLA time-scale modification (a cut where the
//! waveform is most similar), applied to one cut instead of a stretch.
//!
//! The choice: among drops `d` in `[want − min(want/2, SPAN), want + over]` (`over`: what
//! the caller can spare, at most half a period), the one whose next [`MATCH`] frames (the
//! audio that will follow the cut) are most like the next [`MATCH`] frames without the
//! cut, by normalised cross-correlation of the channels' sum. It may drop a little more
//! than asked, as the cut needs the phase more than the last frames of margin.
//!
//! When nothing in reach is alike: noise-like audio or silence is cut at `want`, where a
//! cut is no worse than anywhere else. Audio that repeats itself (a tone, a voiced sound:
//! judged on the frames last played, which stay in the ring until newer ones take their
//! slots) but has no cut in phase within reach (one 64-frame period against a 109-frame
//! tone period), or too little held to compare, waits: the answer is 0, and the caller
//! tries again later with more to drop (the steady rule's next window). A drift trim,
//! which must happen, cuts at `want` then.
//!
//! Cost: the channels' sum of the frames involved is read once into the buffer's scratch
//! (reading the ring by position, a modulo and a held-frame check per sample, inside the
//! correlation loops cost 12–20 µs a search); then a coarse pass every [`COARSE`] frames
//! with every second frame of the match, a fine pass around the best, and at most one
//! periodicity scan run on plain slices: about 12 000 multiply-adds, measured at 4.8 µs
//! for a 256-frame drop and 6.7 µs for the widest search (`benches/mixer.rs`,
//! `hub_input_trim`, on this project's VM). Drops are rare (at most one per input per
//! steady window or drift trim), but may come together after a host stall, so the
//! reader bounds the searches per period ([`pull_within`](JitterBuffer::pull_within);
//! the hub's mixer allows two) and a drop over the budget waits a pull.

use super::JitterBuffer;

/// Frames compared after the cut (2.7 ms at 48 kHz).
const MATCH: u64 = 128;
/// How far below `want` a drop may go, at most, frames (5.3 ms at 48 kHz: a pitch period
/// of 190 Hz or above fits in it).
const SPAN: u64 = 256;
/// Step of the coarse pass, frames (also `resume.rs`'s).
pub(super) const COARSE: u64 = 3;
/// Below this correlation nothing repeats well enough to move the cut for.
const MIN_SIMILARITY: f32 = 0.5;
/// Fewer frames than this to compare: no choice is made.
const MIN_MATCH: u64 = 32;
/// The shortest lag at which audio is taken to repeat itself, frames (a 1.5 kHz period).
const MIN_LAG: u64 = 32;
/// The correlation at which it does.
const REPEATS: f32 = 0.9;

/// Frames of the mono scratch a buffer of `period_frames` needs for its searches: the
/// history and head (the [`MATCH`] frames played last, [`SPAN`] before them, the
/// [`MATCH`] frames to play next) and the candidates' span (at most [`SPAN`] below
/// `want`, half a period above it, and the match).
pub(super) fn scratch_frames(period_frames: u32) -> usize {
    (2 * MATCH + SPAN) as usize + (SPAN + MATCH) as usize + period_frames as usize / 2 + 1
}

impl JitterBuffer {
    /// A drop of about `want` frames, at most `over` (up to half a period) more, whose cut
    /// continues the waveform (see the module notes); `want` itself for audio that does
    /// not repeat (noise-like, silent); 0 (wait) for audio that repeats with no whole
    /// period in reach. RT-safe: reads the ring into the buffer's own scratch, allocates
    /// nothing.
    pub(super) fn aligned_drop(&mut self, want: u64, over: u64) -> u64 {
        if want == 0 {
            return 0;
        }
        let over = over.min(self.half_period());
        let lo = want.saturating_sub((want / 2).min(SPAN)).max(1);
        let hi = want.saturating_add(over);
        let matched = MATCH.min(self.depth_frames().saturating_sub(hi));
        // The channels' sum, read once: the history and the head from `h0`, the
        // candidates from `c0`. Frames not held read as silence.
        let mut scratch = std::mem::take(&mut self.mono);
        let h0 = self.read.saturating_sub(MATCH + SPAN);
        let h_len = (self.read + MATCH - h0) as usize;
        let c0 = self.read + lo;
        let c_len = (hi - lo + matched) as usize;
        let (history, candidates) = scratch.split_at_mut(h_len);
        self.read_mono(h0, history);
        self.read_mono(c0, &mut candidates[..c_len]);
        let head = &history[(self.read - h0) as usize..];
        let repeats = || repeats(history, (self.read - h0) as usize);
        let answer = if matched < MIN_MATCH {
            if repeats() { 0 } else { want }
        } else {
            let m = matched as usize;
            let at = |d: u64| &candidates[(d - lo) as usize..(d - lo) as usize + m];
            let better = |best: (f32, u64), d: u64, stride: usize| {
                let s = similarity(&head[..m], at(d), stride);
                if s > best.0 || (s == best.0 && d.abs_diff(want) < best.1.abs_diff(want)) {
                    (s, d)
                } else {
                    best
                }
            };
            // Coarse pass, then every frame around the best.
            let mut best = (f32::MIN, want.min(hi).max(lo));
            let mut d = lo;
            while d <= hi {
                best = better(best, d, 2);
                d += COARSE;
            }
            let (from, to) = (
                best.1.saturating_sub(COARSE).max(lo),
                (best.1 + COARSE).min(hi),
            );
            for d in from..=to {
                best = better(best, d, 1);
            }
            if best.0 >= MIN_SIMILARITY {
                best.1
            } else if repeats() {
                // Periodic audio with no whole period in reach: cut later, when more is
                // to go.
                0
            } else {
                want
            }
        };
        self.mono = scratch;
        answer
    }

    /// The channels' sum of the frames from position `from` (from the origin) into `out`:
    /// a frame held, or one already played whose slot no newer frame has taken yet; 0
    /// otherwise.
    pub(super) fn read_mono(&self, from: u64, out: &mut [f32]) {
        let ch = self.channels;
        for (pos, o) in (from..).zip(out.iter_mut()) {
            let slot = (pos % self.capacity) as usize;
            let held = pos >= self.read && pos < self.end && self.filled[slot];
            let played = pos < self.read && pos + self.capacity >= self.end;
            *o = if held || played {
                self.ring[slot * ch..(slot + 1) * ch].iter().sum()
            } else {
                0.0
            };
        }
    }
}

/// Whether the audio last played (the [`MATCH`] frames before `read` in `history`)
/// repeats itself (a tone, a voiced sound) at some lag up to [`SPAN`]: a cut out of
/// phase would then be heard.
fn repeats(history: &[f32], read: usize) -> bool {
    let m = MATCH as usize;
    let Some(last) = read.checked_sub(m) else {
        return false;
    };
    let mut lag = MIN_LAG as usize;
    while lag <= SPAN as usize && lag <= last {
        if similarity(
            &history[last - lag..last - lag + m],
            &history[last..read],
            2,
        ) >= REPEATS
        {
            return true;
        }
        lag += COARSE as usize;
    }
    false
}

/// Normalised cross-correlation of `a` against `b` (every `stride`th frame). 0 when
/// either side is silent.
pub(super) fn similarity(a: &[f32], b: &[f32], stride: usize) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().step_by(stride).zip(b.iter().step_by(stride)) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    let energy = aa * bb;
    if energy <= f32::MIN_POSITIVE {
        return 0.0;
    }
    ab / energy.sqrt()
}

#[cfg(test)]
mod tests {
    use crate::dsp::jitter::{JitterBuffer, JitterConfig};

    fn buffer_with(samples: impl Fn(usize) -> f32, frames: usize) -> JitterBuffer {
        let mut jb = JitterBuffer::new(JitterConfig {
            channels: 1,
            period_frames: 64,
            capacity_frames: 4096,
            ..JitterConfig::default()
        })
        .unwrap();
        let x: Vec<f32> = (0..frames).map(samples).collect();
        jb.push(0, &x);
        jb
    }

    fn tone(n: usize) -> f32 {
        (std::f32::consts::TAU * 441.0 * n as f32 / 48_000.0).sin() * 0.5
    }

    #[test]
    fn a_tone_is_cut_at_a_whole_number_of_its_periods() {
        let mut jb = buffer_with(tone, 1024);
        // 441 Hz at 48 kHz repeats every 108.84 frames.
        let d = jb.aligned_drop(256, 32);
        let periods = d as f64 / (48_000.0 / 441.0);
        assert!(
            (periods - periods.round()).abs() < 0.02,
            "{d} frames is {periods} periods"
        );
        assert!((128..=288).contains(&d), "{d}");
        // One period asked with half a period to spare: the nearest to a whole tone
        // period within reach (96); a little more asked and 109 is within reach.
        assert_eq!(jb.aligned_drop(64, 32), 96);
        assert_eq!(jb.aligned_drop(96, 32), 109);
    }

    #[test]
    fn never_more_than_over_nor_less_than_half() {
        let mut jb = buffer_with(tone, 1024);
        for want in [1u64, 2, 10, 64, 100, 300, 600] {
            for over in [0, 5, 64] {
                let d = jb.aligned_drop(want, over);
                assert!(
                    d <= want + over && d >= want.div_ceil(2),
                    "want {want} over {over}: {d}"
                );
            }
        }
    }

    #[test]
    fn noise_silence_and_a_shallow_buffer_drop_what_was_asked() {
        let mut seed = 7u32;
        let x: Vec<f32> = (0..1024)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        let mut jb = buffer_with(|n| x[n], 1024);
        assert_eq!(jb.aligned_drop(256, 32), 256);
        let mut jb = buffer_with(|_| 0.0, 1024);
        assert_eq!(jb.aligned_drop(256, 32), 256);
        // 300 frames held: a drop of 256 leaves too little to compare.
        let mut jb = buffer_with(tone, 300);
        assert_eq!(jb.aligned_drop(256, 32), 256);
    }
}
