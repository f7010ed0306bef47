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
//! matters at a hub with 128 inputs that all miss in the same host stall; the search
//! (`lag.rs`) first looks near the lag found at the stream's last gap, and runs in full
//! only within the reader's per-period budget ([`Conceal::process_within`]).
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
//! plays; `dsp/jitter/resume.rs`): 0 events in the same 160 stalls. A client's speaker
//! plays the continuation on until it meets the stream in phase (`dsp/playout/rejoin.rs`):
//! 0 events in 160 such stalls, 64 before.
//!
//! What is *not* done: time-stretching the gap away. The continuation fills exactly the
//! frames that were missing, so the stream's position is unchanged; whether latency grows
//! to absorb the next stall is the buffer policy's decision, not this file's.
//!
//! Everything is allocated in [`Conceal::new`]; [`Conceal::process`] only copies and
//! multiplies.

mod lag;

use lag::LagSearch;

/// How long the continuation plays at full level before it fades, ms.
pub const HOLD_MS: f64 = 10.0;
/// Duration of the continuation's fade-out after the hold, ms (at least 1 ms, as the
/// issue asks).
pub const FADE_OUT_MS: f64 = 5.0;
/// Duration of the cross-fade back into real audio, ms. Kept below the shortest lag so the
/// continuation never reads frames the resumed audio has just written.
pub const FADE_IN_MS: f64 = 1.5;

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
    search: LagSearch,
    fade_out: usize,
    /// [`HOLD_MS`] in frames.
    hold_frames: usize,
    fade_in: usize,
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
        let (search, cap) = LagSearch::new(ch, rate);
        Ok(Conceal {
            ch,
            hist: vec![0.0; cap * ch].into_boxed_slice(),
            cap,
            written: 0,
            valid: 0,
            search,
            fade_out: ms_frames(FADE_OUT_MS, rate).max(1),
            hold_frames: ms_frames(HOLD_MS, rate),
            fade_in: ms_frames(FADE_IN_MS, rate).max(1),
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
        let mut unbounded = u32::MAX;
        self.process_within(out, gap, &mut unbounded);
    }

    /// [`process`](Self::process), running a full search for the continuation's lag
    /// only while `*searches` allows (each spends one; the hub mixer's budget across its
    /// inputs): without one a gap continues at the lag near the last one found, or holds
    /// the last frame and fades it (`lag.rs`).
    ///
    /// Runs on: the RT audio thread, once per period per stream. Must not: allocate,
    /// lock, block or panic.
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::playout::conceal::Conceal;
    /// let tone = |n: usize| (2.0 * std::f32::consts::PI * 441.0 * n as f32 / 48_000.0).sin();
    /// let mut c = Conceal::new(1, 48_000).unwrap();
    /// let mut x: Vec<f32> = (0..960).map(tone).collect();
    /// c.process(&mut x, None);
    /// // No budget and no lag found before: the last frame is held.
    /// let mut gap = [0.0f32; 64];
    /// c.process_within(&mut gap, Some(0..64), &mut 0);
    /// assert_eq!((gap[0], gap[63]), (tone(959), tone(959)));
    /// assert_eq!(c.skipped_searches(), 1);
    /// ```
    pub fn process_within(
        &mut self,
        out: &mut [f32],
        gap: Option<std::ops::Range<usize>>,
        searches: &mut u32,
    ) {
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
        self.fill(mid, searches);
        self.pass(&mut tail[..(frames - b) * ch]);
    }

    /// Forgets the stream (a new one starts; what follows fades in from silence).
    /// RT-safe.
    pub fn reset(&mut self) {
        self.valid = 0;
        self.search.forget();
        self.state = State::Silent;
        self.last.fill(0.0);
    }

    /// The next real frame does not continue the last one (frames were dropped between
    /// them): it is cross-faded in from the last frames' continuation, as after a gap, so
    /// the cut is not heard as a step. RT-safe.
    pub fn splice(&mut self) {
        let mut unbounded = u32::MAX;
        self.splice_within(&mut unbounded);
    }

    /// [`splice`](Self::splice), its lag found within `*searches`
    /// ([`process_within`](Self::process_within)). RT-safe.
    pub fn splice_within(&mut self, searches: &mut u32) {
        if self.state == State::Clean {
            self.hold.copy_from_slice(&self.last);
            self.state = State::Resume {
                lag: self.find_lag(searches),
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
        let lag = self.ahead_lag();
        if lag == 0 {
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

    /// The lag [`ahead`](Self::ahead) would return, without writing anything.
    pub fn ahead_lag(&self) -> usize {
        match self.state {
            State::Conceal { lag, k } if k < self.hold_frames && self.periodic => lag,
            _ => 0,
        }
    }

    /// The longest lag a continuation repeats at, frames (20 ms): with a rejoin's cue
    /// (128 frames) more, the most [`ahead`](Self::ahead) is asked for.
    pub fn max_lag(&self) -> usize {
        self.search.max_lag()
    }

    /// Frames filled by a continuation or silence since construction.
    pub fn concealed_frames(&self) -> u64 {
        self.concealed
    }

    /// Full searches for a continuation's lag since construction (the rest were found
    /// near the lag before, `lag.rs`).
    pub fn lag_searches(&self) -> u64 {
        self.search.full_searches()
    }

    /// Searches for a continuation's lag that a budget did not allow
    /// ([`process_within`](Self::process_within)).
    pub fn skipped_searches(&self) -> u64 {
        self.search.skipped()
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
    fn fill(&mut self, frames: &mut [f32], searches: &mut u32) {
        let ch = self.ch;
        for f in frames.chunks_exact_mut(ch) {
            self.concealed += 1;
            let (lag, k) = match self.state {
                State::Clean => {
                    self.hold.copy_from_slice(&self.last);
                    (self.find_lag(searches), 0)
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

    /// The lag (frames) at which the last frames best repeat, or 0 (hold the last frame)
    /// when there is too little history, nothing periodic, or no budget for a search
    /// (`lag.rs`); notes whether the audio repeats closely there (`periodic`).
    fn find_lag(&mut self, budget: &mut u32) -> usize {
        let at = (self.written % self.cap as u64) as usize;
        let found = self.search.find(&self.hist, at, self.valid, budget);
        self.periodic = found.periodic;
        found.lag
    }
}

#[cfg(test)]
mod tests;
