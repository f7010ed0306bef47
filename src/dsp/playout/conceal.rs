//! Loss concealment: a stream that has no audio for a while fades out and back in instead
//! of stepping to silence (RT audio thread; the hub's mixer inputs and a client's speaker).
//!
//! Design: when audio a listener needs is missing, the worst answer is the obvious one:
//! zeros. A step from signal to zero and back is a click at each end, louder than the gap
//! itself. The cheapest continuation that does not step is *waveform substitution*: find
//! the lag at which the last few milliseconds best repeat themselves (the pitch period of a
//! voice or a tone, found by normalised cross-correlation), keep playing the signal from
//! one lag back at full level for [`HOLD_MS`], then fade that continuation out with a
//! raised cosine over [`FADE_OUT_MS`]. For periodic material the join is seamless; for
//! noise-like material it is no worse than a fade. When audio comes back it is
//! cross-faded in over [`FADE_IN_MS`] from whatever is playing then (the continuation, or
//! silence): never a step. JackTrip's PLC extrapolates by linear prediction (Burg);
//! substitution costs one correlation search per gap instead of a model per period, which
//! matters at a hub with 128 inputs that all miss in the same host stall: a coarse pass
//! every fourth lag on the history summed over runs of four frames, then every lag
//! around the best at full rate (about 15 000 multiply-adds for a stereo gap).
//!
//! Why the hold: it is ITU-T G.711 Appendix I's choice (pitch repetition at full level for
//! the first 10 ms of a loss). The gaps this engine conceals are mostly one to four periods
//! of a hub input or a speaker that ran dry in a host stall (1.3–5.3 ms at 64 frames), and
//! a continuation already fading through them left a dip a listener hears as a dropout.
//! Scripted through the hub's input path (`tests/hub_input_events.rs`: stalls of 0.5 to
//! 10.25 ms, 160 runs), a 441 Hz tone heard 152 events (all holes) without the hold and 76
//! with it. What remained was the join when audio returns: the stream returns where it
//! stopped, so the continuation and the stream meet at a phase the gap's length sets, and
//! a cross-fade between a tone and itself out of phase dips. A hub input therefore ends
//! its gap at the frame in phase with the continuation ([`Conceal::ahead`] tells it what
//! plays; `dsp/jitter/resume.rs`): 0 events in the same 160 stalls.
//!
//! What is *not* done: time-stretching the gap away. The continuation fills exactly the
//! frames that were missing, so the stream's position is unchanged; whether latency grows
//! to absorb the next stall is the buffer policy's decision, not this file's.
//!
//! Everything is allocated in [`Conceal::new`]; [`Conceal::process`] only copies and
//! multiplies.

/// How long the continuation plays at full level before it fades, ms.
pub const HOLD_MS: f64 = 10.0;
/// Duration of the continuation's fade-out after the hold, ms (at least 1 ms, as the
/// issue asks).
pub const FADE_OUT_MS: f64 = 5.0;
/// Duration of the cross-fade back into real audio, ms. Kept below the shortest lag so the
/// continuation never reads frames the resumed audio has just written.
pub const FADE_IN_MS: f64 = 1.5;
/// Shortest and longest lags searched, ms (a 400 Hz to 50 Hz period; a higher pitch is
/// found at a multiple of its period).
const LAG_MIN_MS: f64 = 2.5;
const LAG_MAX_MS: f64 = 20.0;
/// The correlation coefficient at the lag found from which the audio is taken to repeat
/// itself ([`Conceal::ahead`] offers a phase to resume at only then).
const PERIODIC: f32 = 0.9;
/// Step of the lag search's coarse pass, frames, and the runs its history is summed over.
const COARSE: usize = 4;
/// Length of the stretch matched against its lagged copy, ms.
const MATCH_MS: f64 = 2.5;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Passing real audio.
    Clean,
    /// Playing the continuation at `lag`, `k` frames into its hold and fade-out.
    Conceal { lag: usize, k: usize },
    /// Cross-fading into real audio: the continuation at `lag` started at gain `from` and
    /// `k` frames of the fade-in are done.
    Resume { lag: usize, from: f32, k: usize },
    /// The continuation has faded out (or there was nothing to continue): zeros until
    /// audio resumes, which then fades in.
    Silent,
}

/// The concealment state of one stream.
///
/// # Example
/// ```
/// use izyrt::dsp::playout::conceal::Conceal;
/// let mut c = Conceal::new(1, 48_000).unwrap();
/// // 20 ms of a 441 Hz tone fades in (a stream starts from silence), then passes untouched ...
/// let tone = |n: usize| (2.0 * std::f32::consts::PI * 441.0 * n as f32 / 48_000.0).sin() * 0.25;
/// let mut x: Vec<f32> = (0..960).map(tone).collect();
/// c.process(&mut x, None);
/// assert!(x[0].abs() < 1e-6);
/// assert_eq!(x[959], tone(959));
/// // ... then a period is missing: it is filled with the tone's continuation, not zeros.
/// let mut gap = vec![0.0f32; 64];
/// c.process(&mut gap, Some(0..64));
/// assert!((gap[0] - tone(960)).abs() < 0.02);
/// assert_eq!(c.concealed_frames(), 64);
/// ```
#[derive(Debug)]
pub struct Conceal {
    ch: usize,
    /// The last `cap` frames played (real or continuation at unit gain), interleaved ring.
    hist: Box<[f32]>,
    cap: usize,
    /// Frames written so far (the ring's write point is `written % cap`).
    written: u64,
    /// Frames of `hist` that hold audio of the current stream (≤ cap).
    valid: usize,
    /// The history in one straight run, for the lag search.
    lin: Box<[f32]>,
    /// The history summed over runs of [`COARSE`] frames, for the coarse pass.
    dec: Box<[f32]>,
    fade_out: usize,
    /// [`HOLD_MS`] in frames.
    hold_frames: usize,
    fade_in: usize,
    lag_min: usize,
    lag_max: usize,
    match_len: usize,
    state: State,
    /// Whether the last lag found repeats the audio closely (a tone, a voiced sound):
    /// only then is there a phase for a resume to meet ([`Conceal::ahead`]).
    periodic: bool,
    concealed: u64,
    /// The frame before the current one, and the frame a continuation without history
    /// holds (lag 0).
    last: Box<[f32]>,
    hold: Box<[f32]>,
}

/// Why a [`Conceal`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConcealError {
    /// `channels` was 0 or the rate outside 8000..=384000 Hz.
    #[error(
        "concealment: {channels} channels at {rate} Hz is not allowed (1+ channels, 8000..=384000 Hz)"
    )]
    Config {
        /// Channels given.
        channels: u16,
        /// Rate given.
        rate: u32,
    },
}

fn ms_frames(ms: f64, rate: u32) -> usize {
    (ms * f64::from(rate) / 1000.0).round() as usize
}

/// The raised-cosine gain `k` frames into a fade of `len` frames, from 1 down to 0.
fn fall(k: usize, len: usize) -> f32 {
    if k >= len {
        return 0.0;
    }
    let x = k as f32 / len as f32;
    0.5 + 0.5 * (std::f32::consts::PI * x).cos()
}

impl Conceal {
    /// Builds the state for a stream of `channels` at `rate` (main thread; allocates).
    ///
    /// # Errors
    /// [`ConcealError::Config`] when `channels` is 0 or `rate` is outside 8000..=384000.
    pub fn new(channels: u16, rate: u32) -> Result<Conceal, ConcealError> {
        if channels == 0 || !(8_000..=384_000).contains(&rate) {
            return Err(ConcealError::Config { channels, rate });
        }
        let ch = usize::from(channels);
        let lag_max = ms_frames(LAG_MAX_MS, rate);
        let match_len = ms_frames(MATCH_MS, rate);
        let cap = lag_max + match_len + 1;
        Ok(Conceal {
            ch,
            hist: vec![0.0; cap * ch].into_boxed_slice(),
            cap,
            written: 0,
            valid: 0,
            lin: vec![0.0; cap * ch].into_boxed_slice(),
            dec: vec![0.0; (cap / COARSE + 1) * ch].into_boxed_slice(),
            fade_out: ms_frames(FADE_OUT_MS, rate).max(1),
            hold_frames: ms_frames(HOLD_MS, rate),
            fade_in: ms_frames(FADE_IN_MS, rate).max(1),
            lag_min: ms_frames(LAG_MIN_MS, rate),
            lag_max,
            match_len,
            state: State::Silent,
            periodic: false,
            concealed: 0,
            last: vec![0.0; ch].into_boxed_slice(),
            hold: vec![0.0; ch].into_boxed_slice(),
        })
    }

    /// Conceals the frames `gap` (frame indices into `out`, interleaved) and passes the
    /// rest, fading in audio that follows a gap. `None`: every frame is real audio.
    ///
    /// Runs on: the RT audio thread, once per period per stream. Must not: allocate,
    /// lock, block or panic (any `gap` is clamped to `out`).
    pub fn process(&mut self, out: &mut [f32], gap: Option<std::ops::Range<usize>>) {
        let frames = out.len() / self.ch;
        let (a, b) = match gap {
            Some(g) => (
                g.start.min(frames),
                g.end.clamp(g.start.min(frames), frames),
            ),
            None => (frames, frames),
        };
        let ch = self.ch;
        let (head, rest) = out.split_at_mut(a * ch);
        let (mid, tail) = rest.split_at_mut((b - a) * ch);
        self.pass(head);
        self.fill(mid);
        self.pass(&mut tail[..(frames - b) * ch]);
    }

    /// Forgets the stream (a new one starts; what follows fades in from silence).
    /// RT-safe.
    pub fn reset(&mut self) {
        self.valid = 0;
        self.state = State::Silent;
        self.last.fill(0.0);
    }

    /// The next real frame does not continue the last one (frames were dropped between
    /// them): it is cross-faded in from the last frames' continuation, as after a gap, so
    /// the cut is not heard as a step. RT-safe.
    pub fn splice(&mut self) {
        if self.state == State::Clean {
            self.hold.copy_from_slice(&self.last);
            self.state = State::Resume {
                lag: self.find_lag(),
                from: 1.0,
                k: 0,
            };
        }
    }

    /// While a continuation plays at full level (in its hold): writes its next
    /// `out.len()` frames into `out` (the channels' sum, at unit gain: exactly what it
    /// will play if nothing resumes) and returns its lag, frames. 0, with `out`
    /// untouched, otherwise: real audio plays, the audio did not repeat itself closely
    /// (noise-like: no phase to meet), or the continuation has begun to fade. A reader
    /// about to resume the stream looks in it for the point of the stream in phase with
    /// what plays (`dsp/jitter/resume.rs`).
    ///
    /// Runs on: the RT thread that conceals, before a pull that may resume. Must not:
    /// allocate, lock, block (copies `out.len()` frames).
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::playout::conceal::Conceal;
    /// let mut c = Conceal::new(1, 48_000).unwrap();
    /// let tone = |n: usize| (2.0 * std::f32::consts::PI * 480.0 * n as f32 / 48_000.0).sin();
    /// let mut x: Vec<f32> = (0..960).map(tone).collect();
    /// c.process(&mut x, None);
    /// let mut cue = [0.0f32; 8];
    /// assert_eq!(c.ahead(&mut cue), 0); // real audio plays
    /// c.process(&mut [0.0; 64], Some(0..64)); // a period is missing
    /// let lag = c.ahead(&mut cue);
    /// assert!(lag > 0 && lag % 100 == 0); // 480 Hz repeats every 100 frames
    /// assert!((cue[0] - tone(960 + 64)).abs() < 1e-3);
    /// ```
    pub fn ahead(&self, out: &mut [f32]) -> usize {
        let State::Conceal { lag, k } = self.state else {
            return 0;
        };
        if lag == 0 || k >= self.hold_frames || !self.periodic {
            return 0;
        }
        // Each frame the continuation plays is the one `lag` before it, and goes into
        // the history: frame j ahead is the one `lag - j % lag` before the write point.
        for (j, o) in out.iter_mut().enumerate() {
            let back = lag - j % lag;
            *o = (0..self.ch).map(|c| self.lagged(back, c)).sum();
        }
        lag
    }

    /// Frames filled by a continuation or silence since construction.
    pub fn concealed_frames(&self) -> u64 {
        self.concealed
    }

    /// Whether the last frame processed was real audio at full gain (not concealed,
    /// fading or silent).
    pub fn is_clean(&self) -> bool {
        self.state == State::Clean
    }

    /// Real audio: passed, or cross-faded in after a gap.
    fn pass(&mut self, frames: &mut [f32]) {
        let ch = self.ch;
        let n = frames.len() / ch;
        let mut i = 0;
        // Frame by frame only while a fade runs; clean audio (nearly every period, at a
        // hub with one of these per input) is remembered in one or two block copies.
        while i < n && self.state != State::Clean {
            let f = &mut frames[i * ch..(i + 1) * ch];
            i += 1;
            match self.state {
                State::Clean => {}
                State::Conceal { lag, k } => {
                    let from = self.gain(k);
                    self.state = State::Resume { lag, from, k: 0 };
                    self.resume_frame(f);
                }
                State::Resume { .. } => self.resume_frame(f),
                State::Silent => {
                    self.state = State::Resume {
                        lag: 0,
                        from: 0.0,
                        k: 0,
                    };
                    self.resume_frame(f);
                }
            }
            self.remember(f);
        }
        self.remember(&frames[i * ch..n * ch]);
    }

    /// One frame of the fade back in: real audio rising, the continuation falling.
    fn resume_frame(&mut self, f: &mut [f32]) {
        let State::Resume { lag, from, k } = self.state else {
            return;
        };
        let up = 1.0 - fall(k, self.fade_in);
        let down = from * (1.0 - up);
        if down > 0.0 {
            for (c, x) in f.iter_mut().enumerate() {
                *x = *x * up + self.continuation(lag, c) * down;
            }
        } else {
            for x in f.iter_mut() {
                *x *= up;
            }
        }
        self.state = if k + 1 >= self.fade_in {
            State::Clean
        } else {
            State::Resume {
                lag,
                from,
                k: k + 1,
            }
        };
    }

    /// Missing frames: the continuation, fading out, then silence.
    fn fill(&mut self, frames: &mut [f32]) {
        let ch = self.ch;
        for f in frames.chunks_exact_mut(ch) {
            self.concealed += 1;
            let (lag, k) = match self.state {
                State::Clean => {
                    self.hold.copy_from_slice(&self.last);
                    (self.find_lag(), 0)
                }
                State::Conceal { lag, k } => (lag, k),
                State::Resume { lag, from, k } => {
                    // Missing again while fading in: continue the continuation from
                    // about the gain it had reached.
                    let g = from * fall(k, self.fade_in);
                    (lag, self.frames_at(g))
                }
                State::Silent => {
                    f.fill(0.0);
                    self.remember(f);
                    continue;
                }
            };
            let g = self.gain(k);
            for (c, x) in f.iter_mut().enumerate() {
                // Unit-gain continuation into the history, so that it keeps repeating.
                *x = self.continuation(lag, c);
            }
            self.remember(f);
            for x in f.iter_mut() {
                *x *= g;
            }
            self.state = if k + 1 >= self.hold_frames + self.fade_out {
                State::Silent
            } else {
                State::Conceal { lag, k: k + 1 }
            };
        }
    }

    /// The continuation's gain `k` frames into it: 1 through the hold, then the fade.
    fn gain(&self, k: usize) -> f32 {
        fall(k.saturating_sub(self.hold_frames), self.fade_out)
    }

    /// Where a continuation at gain `g` stands: the first frame of the hold at full gain,
    /// else the point of the fade-out with that gain.
    fn frames_at(&self, g: f32) -> usize {
        if g >= 1.0 {
            return 0;
        }
        self.hold_frames + self.fade_out - (g * self.fade_out as f32) as usize
    }

    /// Sample `c` of the continuation: `lag` frames back, or the held frame for lag 0.
    fn continuation(&self, lag: usize, c: usize) -> f32 {
        if lag == 0 {
            self.hold.get(c).copied().unwrap_or(0.0)
        } else {
            self.lagged(lag, c)
        }
    }

    /// Sample `c` of the frame `lag` frames before the next one to be written.
    fn lagged(&self, lag: usize, c: usize) -> f32 {
        let at = (self.written + self.cap as u64 - lag as u64) % self.cap as u64;
        self.hist
            .get(at as usize * self.ch + c)
            .copied()
            .unwrap_or(0.0)
    }

    /// Writes a run of whole frames (one, or a clean period) into the history ring, in
    /// at most two copies per turn of the ring, and keeps its last frame.
    fn remember(&mut self, block: &[f32]) {
        let ch = self.ch;
        let block = &block[..block.len() / ch * ch];
        let mut rest = block;
        while rest.len() >= ch {
            let at = (self.written % self.cap as u64) as usize;
            let take = (self.cap - at).min(rest.len() / ch);
            let (now, later) = rest.split_at(take * ch);
            if let Some(dst) = self.hist.get_mut(at * ch..(at + take) * ch) {
                dst.copy_from_slice(now);
            }
            self.written += take as u64;
            self.valid = (self.valid + take).min(self.cap);
            rest = later;
        }
        if let Some(last) = block.len().checked_sub(ch).and_then(|i| block.get(i..)) {
            self.last.copy_from_slice(last);
        }
    }

    /// The lag (frames) at which the last `match_len` frames best repeat, or 0 (hold the
    /// last frame) when there is too little history or nothing periodic. Every channel
    /// takes part (a mono sum would cancel a stereo pair in opposite phase).
    fn find_lag(&mut self) -> usize {
        let need = self.match_len + self.lag_min;
        if self.valid < need {
            return 0;
        }
        let ch = self.ch;
        let span = self.valid.min(self.cap - 1);
        let lag_max = self.lag_max.min(span - self.match_len);
        // The history, oldest first, in one straight run (frame i is `span - i` back):
        // the ring's two pieces, copied whole.
        let at = (self.written % self.cap as u64) as usize;
        let start = (at + self.cap - span) % self.cap;
        let first = span.min(self.cap - start);
        self.lin[..first * ch].copy_from_slice(&self.hist[start * ch..(start + first) * ch]);
        self.lin[first * ch..span * ch].copy_from_slice(&self.hist[..(span - first) * ch]);
        let x = &self.lin[..span * ch];
        let m = self.match_len * ch;
        let end = span * ch;
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
        let score = |x: &[f32], m: usize, lag: usize| -> f32 {
            let (end, d) = (x.len(), lag * ch);
            let (xy, yy) = dot_and_energy(&x[end - m..end], &x[end - m - d..end - d]);
            if yy <= 1e-12 { -1.0 } else { xy / yy.sqrt() }
        };
        let dec = &self.dec[..runs * ch];
        let dm = self.match_len / COARSE * ch;
        let mut coarse = (f32::MIN, 0usize);
        for l in self.lag_min.div_ceil(COARSE)..=lag_max / COARSE {
            let s = score(dec, dm, l);
            if s > coarse.0 {
                coarse = (s, l * COARSE);
            }
        }
        let mut best = (f32::MIN, 0usize);
        let (lo, hi) = (
            coarse.1.saturating_sub(COARSE).max(self.lag_min),
            (coarse.1 + COARSE).min(lag_max),
        );
        for lag in lo..=hi {
            let s = score(x, m, lag);
            if s > best.0 {
                best = (s, lag);
            }
        }
        // Normalised by the matched stretch's own energy too: a correlation coefficient.
        let (_, xx) = dot_and_energy(&x[end - m..end], &x[end - m..end]);
        self.periodic = best.0 >= PERIODIC * xx.sqrt();
        if best.0 <= 0.0 { 0 } else { best.1 }
    }
}

/// Σ a·b and Σ b·b over two slices of equal length, summed in eight lanes so that the
/// loop vectorises (a single running sum must add in order, and does not): the lag
/// search calls this some 200 times per gap, on every input of a hub that misses.
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
}
