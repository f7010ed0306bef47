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
//! Cost: a coarse pass every [`COARSE`] frames with every second frame of the match,
//! then a fine pass around the best, and at most one periodicity scan: about 12 000
//! multiply-adds per drop, measured at 12 µs for a 256-frame drop and 20 µs for the
//! widest search (`benches/mixer.rs`, `hub_input_trim`, on this project's VM). Drops are
//! rare (at most one per input per steady window or drift trim), but may come together
//! after a host stall, so the reader bounds the searches per period
//! ([`pull_within`](JitterBuffer::pull_within); the hub's mixer allows two) and a drop
//! over the budget waits a pull.

use super::JitterBuffer;

/// Frames compared after the cut (2.7 ms at 48 kHz).
const MATCH: u64 = 128;
/// How far below `want` a drop may go, at most, frames (5.3 ms at 48 kHz: a pitch period
/// of 190 Hz or above fits in it).
const SPAN: u64 = 256;
/// Step of the coarse pass, frames.
const COARSE: u64 = 3;
/// Below this correlation nothing repeats well enough to move the cut for.
const MIN_SIMILARITY: f32 = 0.5;
/// Fewer frames than this to compare: no choice is made.
const MIN_MATCH: u64 = 32;
/// The shortest lag at which audio is taken to repeat itself, frames (a 1.5 kHz period).
const MIN_LAG: u64 = 32;
/// The correlation at which it does.
const REPEATS: f32 = 0.9;

impl JitterBuffer {
    /// A drop of about `want` frames, at most `over` more, whose cut continues the
    /// waveform (see the module notes); `want` itself for audio that does not repeat
    /// (noise-like, silent); 0 (wait) for audio that repeats with no whole period in reach.
    /// RT-safe: reads the ring, allocates nothing.
    pub(super) fn aligned_drop(&self, want: u64, over: u64) -> u64 {
        if want == 0 {
            return 0;
        }
        let lo = want.saturating_sub((want / 2).min(SPAN)).max(1);
        let hi = want.saturating_add(over);
        let matched = MATCH.min(self.depth_frames().saturating_sub(hi));
        if matched < MIN_MATCH {
            return if self.repeats() { 0 } else { want };
        }
        // Coarse pass, then every frame around the best.
        let mut best = (f32::MIN, want.min(hi).max(lo));
        let mut d = lo;
        while d <= hi {
            best = self.better(best, d, want, matched, 2);
            d += COARSE;
        }
        let (from, to) = (
            best.1.saturating_sub(COARSE).max(lo),
            (best.1 + COARSE).min(hi),
        );
        for d in from..=to {
            best = self.better(best, d, want, matched, 1);
        }
        if best.0 >= MIN_SIMILARITY {
            best.1
        } else if self.repeats() {
            // Periodic audio with no whole period in reach: cut later, when more is to go.
            0
        } else {
            want
        }
    }

    /// Whether the audio last played repeats itself (a tone, a voiced sound) at some lag
    /// up to [`SPAN`]: a cut out of phase would then be heard.
    fn repeats(&self) -> bool {
        let Some(last) = self.read.checked_sub(MATCH) else {
            return false;
        };
        let mut lag = MIN_LAG;
        while lag <= SPAN && lag <= last {
            if self.similarity(last - lag, last, MATCH, 2) >= REPEATS {
                return true;
            }
            lag += COARSE;
        }
        false
    }

    /// `best`, or drop `d` if its similarity (every `stride`th frame) is higher, or equal
    /// and nearer `want`.
    fn better(
        &self,
        best: (f32, u64),
        d: u64,
        want: u64,
        matched: u64,
        stride: usize,
    ) -> (f32, u64) {
        let s = self.similarity(self.read, self.read + d, matched, stride);
        if s > best.0 || (s == best.0 && d.abs_diff(want) < best.1.abs_diff(want)) {
            (s, d)
        } else {
            best
        }
    }

    /// Normalised cross-correlation of the channels' sum over `matched` frames (every
    /// `stride`th): the audio from position `a` against the audio from `b`. Frames not
    /// held count as silence. 0 when either side is silent.
    fn similarity(&self, a: u64, b: u64, matched: u64, stride: usize) -> f32 {
        let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
        for i in (0..matched).step_by(stride) {
            let x = self.mono(a + i);
            let y = self.mono(b + i);
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

    /// The sum of the channels of the frame at `pos` (from the origin): a frame held, or
    /// one already played whose slot no newer frame has taken yet; 0 otherwise.
    fn mono(&self, pos: u64) -> f32 {
        let held =
            pos >= self.read && pos < self.end && self.filled[(pos % self.capacity) as usize];
        let played = pos < self.read && pos + self.capacity >= self.end;
        if !(held || played) {
            return 0.0;
        }
        let ch = self.channels;
        let slot = (pos % self.capacity) as usize;
        self.ring[slot * ch..(slot + 1) * ch].iter().sum()
    }
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
        let jb = buffer_with(tone, 1024);
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
        let jb = buffer_with(tone, 1024);
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
        let jb = buffer_with(|n| x[n], 1024);
        assert_eq!(jb.aligned_drop(256, 32), 256);
        let jb = buffer_with(|_| 0.0, 1024);
        assert_eq!(jb.aligned_drop(256, 32), 256);
        // 300 frames held: a drop of 256 leaves too little to compare.
        let jb = buffer_with(tone, 300);
        assert_eq!(jb.aligned_drop(256, 32), 256);
    }
}
