//! Where a stream resumes after a gap: a buffer read with `pull` that ran dry (the hub's
//! inputs) starts playing again at the frame that continues, in phase, what its
//! concealment is playing (RT mixer thread; only at a pull that ends a gap).
//!
//! Design: while an input is dry its concealment plays the stream's last pitch period
//! over and over (`dsp/playout/conceal/`), so at the end of a gap of G frames the
//! continuation stands G frames ahead of the stream, which returns where it stopped. The
//! two meet at a phase set by G; the cross-fade between a tone and itself out of phase
//! dips, and a listener hears the dip. Scripted through this path
//! (`tests/hub_input_events.rs`), those joins were every event left once the
//! continuation held its level through the gap. So the pull that would end the gap
//! first looks, among the next frames of the stream, for the `d` whose audio is most
//! like the continuation's next [`CUE`] frames (normalised cross-correlation of the
//! channels' sum), and drops those `d` frames: the cross-fade then joins two waves in
//! phase. Waveform-similarity overlap-add (WSOLA) picks its cuts the same way; here the
//! reference is the continuation, not the stream's own past (`splice.rs`).
//!
//! What it may drop: `d` is below one period of the continuation, and never leaves the
//! buffer under its target, so latency the buffer chose is never given away. The frames
//! it drops are, nearly always, the excess the gap left: the stream is G frames late,
//! and the steady rule (`adapt.rs`) would drop that excess at its window's end anyway,
//! in a second cut. When the buffer holds too little beyond its target to reach a cut in
//! phase, the gap lasts one pull more (packets keep arriving, so the reach grows by
//! about a period a pull); the concealment offers its continuation only while that
//! plays at full level, so a gap is never stretched into the continuation's fade, and
//! only for audio that repeated itself closely (a correlation of 0.9 at the lag it
//! continues), so noise-like audio, which has no phase to meet, resumes at once where it
//! stopped, as before. Audio with no point in phase within a whole period of the
//! continuation (it changed during the gap) resumes there too.
//!
//! A client's playout ([`take`](JitterBuffer::take)) moves latency only through its
//! resampler, never by dropping: there the continuation plays on instead, by the frames
//! after which it meets the stream in phase (`dsp/playout/rejoin.rs`), found by the same
//! search with the two roles swapped ([`in_phase_offset`]).
//!
//! Cost: the candidates' sum read once from the ring, a coarse pass every third frame
//! of every second frame of the cue, and a fine pass around the best: about 3 000
//! multiply-adds for a 441 Hz tone. It takes one search from the reader's per-period
//! budget (`pull_within`'s `cuts`, shared with the drops of `splice.rs` and the
//! concealment's lag searches); without one the gap waits a pull.

use super::adapt::spend;
use super::splice::{COARSE, similarity};
use super::{JitterBuffer, PullResult, State};
use crate::dsp::playout::conceal::Conceal;

/// Frames of the continuation the stream is compared with (2.7 ms at 48 kHz): more than
/// the cross-fade back in (`conceal::FADE_IN_MS`, 1.5 ms).
pub(crate) const CUE: usize = 128;
/// Fewer frames than this to compare: no choice is made.
const MIN_CUE: usize = 32;
/// The correlation from which the stream continues the continuation in phase (a phase
/// error of about 25°, which a cross-fade does not dip audibly).
const IN_PHASE: f32 = 0.9;
/// A peak that stops the search: a phase error of about 14°.
const CLEARLY_IN_PHASE: f32 = 0.97;

/// Where a gap may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resume {
    /// Play, `d` frames on from the read point.
    At(u64),
    /// Stay dry for one pull more: a cut in phase needs more audio held, or a search
    /// this pull has no budget for.
    Wait,
}

impl JitterBuffer {
    /// [`pull_within`](Self::pull_within) with `conceal` (the stream's concealment, as
    /// the hub's mixer runs one per input) filling what is missing, fading audio back
    /// in after a gap and cross-fading drops; a gap ends at the frame in phase with the
    /// continuation `conceal` plays (see `resume.rs`). `out` is what the listener hears.
    ///
    /// Runs on: the RT mixer thread, once per period per input. Must not: allocate,
    /// lock, block (at most `*cuts` searches for a cut, a resume in phase or the
    /// concealment's lag).
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::jitter::{JitterBuffer, JitterConfig, PullResult};
    /// use izyrt::dsp::playout::conceal::Conceal;
    /// let mut jb = JitterBuffer::new(JitterConfig { channels: 1, ..JitterConfig::default() }).unwrap();
    /// let mut conceal = Conceal::new(1, 48_000).unwrap();
    /// let mut out = [0.0f32; 128];
    /// let mut cuts = 2;
    /// jb.push(0, &[0.25; 256]);
    /// assert_eq!(jb.pull_concealed(&mut out, 0, &mut cuts, &mut conceal), PullResult::Played);
    /// assert!(out[0].abs() < 0.01 && out[127] == 0.25); // the stream fades in
    /// ```
    pub fn pull_concealed(
        &mut self,
        out: &mut [f32],
        now_ns: u64,
        cuts: &mut u32,
        conceal: &mut Conceal,
    ) -> PullResult {
        self.cue_lag = if self.state == State::Rebuffering {
            conceal.ahead(&mut self.cue)
        } else {
            0
        };
        let r = self.pull_within(out, now_ns, cuts);
        if r == PullResult::Priming {
            conceal.reset();
        } else {
            if self.splice {
                conceal.splice_within(cuts);
            }
            conceal.process_within(out, self.gap(), cuts);
        }
        r
    }

    /// The mono sum of the next `out.len()` frames from the read point, when every one
    /// of them is held (false, `out` untouched, otherwise): what a client's resume in
    /// phase compares the continuation with. RT-safe.
    pub(crate) fn head_mono(&self, out: &mut [f32]) -> bool {
        let end = self.read.saturating_add(out.len() as u64);
        if end > self.end || !(self.read..end).all(|p| self.filled[(p % self.capacity) as usize]) {
            return false;
        }
        self.read_mono(self.read, out);
        true
    }

    /// Gaps that ended a few frames on, in phase with the concealment (the frames
    /// dropped to do so are in [`dropped_frames`](Self::dropped_frames)).
    pub fn aligned_resumes(&self) -> u64 {
        self.aligned_resumes
    }

    /// At a pull that may start the stream, with `target` the depth to keep: false to
    /// stay dry one pull more; true to play, after dropping the frames that put the
    /// stream in phase with the concealment (a gap's end with a cue). RT-safe.
    pub(super) fn resume(&mut self, target: u64, cuts: &mut u32) -> bool {
        match self.resume_point(target, cuts) {
            Resume::Wait => false,
            Resume::At(d) => {
                if d > 0 {
                    self.discard(d);
                    self.aligned_resumes += 1;
                }
                true
            }
        }
    }

    /// Where a gap ends (the cue, if any, is used up): see the module notes. RT-safe:
    /// reads the ring into the buffer's scratch.
    fn resume_point(&mut self, target: u64, cuts: &mut u32) -> Resume {
        let lag = std::mem::take(&mut self.cue_lag) as u64;
        if lag == 0 {
            return Resume::At(0);
        }
        let spare = self.depth_frames().saturating_sub(target);
        let reach = (lag - 1)
            .min(spare)
            .min(self.mono.len().saturating_sub(CUE) as u64);
        let m = CUE.min((self.depth_frames() - reach) as usize);
        if m < MIN_CUE {
            return Resume::At(0);
        }
        if !spend(cuts) {
            return Resume::Wait;
        }
        let mut scratch = std::mem::take(&mut self.mono);
        let stream = &mut scratch[..reach as usize + m];
        self.read_mono(self.read, stream);
        let found = in_phase_offset(&self.cue[..m], stream, reach);
        self.mono = scratch;
        if let Some(d) = found {
            Resume::At(d)
        } else if reach < lag - 1 && spare == reach {
            // Not a whole period of the stream held beyond the target: more will be.
            Resume::Wait
        } else {
            Resume::At(0)
        }
    }
}

/// The offset `d` (at most `reach`) at which `sliding[d..]` continues most like `fixed`
/// (normalised cross-correlation over `fixed.len()` frames, mono sums), when that is in
/// phase (≥ [`IN_PHASE`]). Searched every [`COARSE`]th offset up to the first peak that is
/// clearly in phase (the lag is often a multiple of the pitch period, and each period
/// further is that much more dropped or delayed), then every offset around the best. A
/// hub input's resume slides the stream past the continuation (the frames it drops); a
/// client's slides the continuation past the stream (the frames it plays on).
///
/// Runs on: the RT thread that conceals, at a gap's end. Must not: allocate, lock, block.
pub(crate) fn in_phase_offset(fixed: &[f32], sliding: &[f32], reach: u64) -> Option<u64> {
    let m = fixed.len();
    let reach = reach.min(sliding.len().saturating_sub(m) as u64);
    let score = |d: u64, stride: usize| similarity(fixed, &sliding[d as usize..][..m], stride);
    let mut best = (f32::MIN, 0u64);
    for d in (0..=reach).step_by(COARSE as usize) {
        let s = score(d, 2);
        if s > best.0 {
            best = (s, d);
        } else if best.0 >= CLEARLY_IN_PHASE {
            break;
        }
    }
    let around = best.1.saturating_sub(COARSE)..=(best.1 + COARSE).min(reach);
    for d in around {
        let s = score(d, 1);
        if s > best.0 {
            best = (s, d);
        }
    }
    (best.0 >= IN_PHASE).then_some(best.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::jitter::JitterConfig;

    #[test]
    fn the_offset_into_phase_is_the_first_in_phase_either_way_round() {
        // A 441 Hz tone (108.8 frames a period): `sliding` starts 40 frames before
        // `fixed` does, so 40 frames on it is in phase (and again a period later, which
        // the search does not go on to); a tone of another pitch never is.
        let at = |n: usize, f: f32| (std::f32::consts::TAU * f * n as f32 / 48_000.0).sin();
        let fixed: Vec<f32> = (1_000..1_128).map(|n| at(n, 441.0)).collect();
        let sliding: Vec<f32> = (960..1_400).map(|n| at(n, 441.0)).collect();
        assert_eq!(in_phase_offset(&fixed, &sliding, 300), Some(40));
        let other: Vec<f32> = (960..1_400).map(|n| at(n, 1_234.5) * at(n, 77.0)).collect();
        assert_eq!(in_phase_offset(&fixed, &other, 300), None);
        // A reach beyond what `sliding` holds is clamped to it: 22 frames here, short of
        // the phase, so nothing (and no slice past its end).
        assert_eq!(in_phase_offset(&fixed, &sliding[..150], 10_000), None);
    }

    const RATE: f64 = 48_000.0;

    fn tone(n: u64) -> f32 {
        (std::f64::consts::TAU * 441.0 * n as f64 / RATE).sin() as f32 * 0.25
    }

    /// A 441 Hz tone through a 64-frame buffer whose sender stops at 1 s for `gap`
    /// pulls, then sends everything it owes at once: how far the first period played
    /// after the gap strays from the continuation it fades out (0 when the two are in
    /// phase), and the frames dropped to resume.
    fn gap_of(gap: u64) -> (f32, u64) {
        let mut jb = JitterBuffer::new(JitterConfig {
            channels: 1,
            ..JitterConfig::default()
        })
        .unwrap();
        let mut conceal = Conceal::new(1, RATE as u32).unwrap();
        let mut out = [0.0f32; 64];
        let mut packet = [0.0f32; 64];
        let mut sent = 0u64;
        let stop = 750;
        let (mut stray, mut dropped) = (f32::NAN, 0);
        for j in 0..stop + gap + 20 {
            while sent <= j && !(stop..stop + gap).contains(&j) {
                for (i, x) in packet.iter_mut().enumerate() {
                    *x = tone(sent * 64 + i as u64);
                }
                jb.push(sent * 64, &packet);
                sent += 1;
            }
            let mut cue = [0.0f32; 64];
            let concealing = conceal.ahead(&mut cue) > 0;
            let mut cuts = 2;
            let r = jb.pull_concealed(&mut out, u64::MAX, &mut cuts, &mut conceal);
            if concealing && r == PullResult::Played {
                stray = out
                    .iter()
                    .zip(cue)
                    .map(|(o, c)| (o - c).abs())
                    .fold(0.0, f32::max);
                dropped = jb.dropped_frames();
            }
        }
        (stray, dropped)
    }

    #[test]
    fn a_tone_resumes_in_phase_with_its_continuation() {
        for gap in 1..=6 {
            let (stray, dropped) = gap_of(gap);
            assert!(stray < 0.02, "gap of {gap} pulls: strays {stray}");
            // Within one period of the tone (108.8 frames), though the concealment's
            // lag is two of them.
            assert!(dropped < 112, "gap of {gap}: {dropped} frames dropped");
        }
    }
}
