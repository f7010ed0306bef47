//! Glitches in a recorded pure tone: what a listener hears, counted from the outside
//! (main thread, after the fact).
//!
//! Design. A peer sends a pure tone through a hub in `loopback` mix and records what its
//! speaker plays. Everything in that file that is not the tone is damage: a **step** (a
//! sample the tone cannot explain: a dropped, inserted or repeated span, a hard cut) or a
//! **hole** (the tone's envelope dips: a fade-out/fade-in concealment, a run of silence).
//! Steps and holes within [`GlitchConfig::merge_ms`] (20 ms, about what the ear fuses
//! into one disturbance) are one **event**; events per minute is the headline figure.
//!
//! - **Predictor.** A sinusoid obeys `x[n] = 2cos(ω)·x[n−1] − x[n−2]` exactly, whatever its
//!   phase and amplitude, so the residual `r[n] = x[n] − 2cos(ω)x[n−1] + x[n−2]` is 0 on
//!   a clean tone. A phase jump of Δ at sample n leaves residuals equal to the difference
//!   of the two phase trajectories at n and n−1, `2A·sin(Δ/2)·cos(…)`: at least
//!   `2A·sin(Δ/2)·sin(ω/2)` whatever the phase the jump falls on (about 0.055·A for a
//!   dropped 64-frame period of 441 Hz at 48 kHz). A wrong ω costs only
//!   `2A·|cos ω − cos ω'| ≈ 2A·ω²·(δω/ω)`: 7·10⁻⁶·A for 1000 ppm at 441 Hz, so the drift
//!   a resampler adds is never a step. ω is still estimated locally, by least squares
//!   over 10 ms blocks (`cos ω = Σx[n−1](x[n]+x[n−2]) / 2Σx[n−1]²`, exact on a tone), each
//!   block using the median of the estimates of the blocks within ±50 ms so that a
//!   damaged block cannot bend its own predictor. `--freq` restricts the estimates to
//!   within 2 % of the given tone.
//! - **Step threshold.** `|r[n]| > 0.02 × A`, `A` the tone's reference amplitude (peak)
//!   around n. The smallest step is a hard cut to silence where the tone crosses zero:
//!   residuals `A·|x[n]|` and `A·|x[n−1]|` around a zero crossing, at least
//!   `A·sin(ω/2)` (0.029·A at 441 Hz/48 kHz). A dropped 64-frame period left at least
//!   0.063·A at every one of 96 phases. A concealment fade is not a step: a
//!   raised-cosine fade of L samples leaves residuals of order `A(π²/2L² + πω/L)`;
//!   measured, at most 0.009·A for fades of 0.5 to 1.5 ms each way (gaps of 1 to 3 ms),
//!   under half the threshold. 16-bit quantisation of a tone at a tenth of −12 dBFS
//!   leaves 0.002·A. A slope's change per sample shrinks as the rate grows, so above
//!   48 kHz the predictor spans k = rate/48 kHz samples (`x[n] ≈ 2cos(kω)x[n−k] −
//!   x[n−2k]`) and a step measures alike at every rate. The figures hold for tones of a
//!   few hundred Hz, the ones meant here; a much higher tone makes fades rougher (πω/L).
//! - **Envelope.** The Teager–Kaiser operator `Ψ[n] = x[n]² − x[n−1]x[n+1]` equals
//!   `A²·sin²ω` on a tone, whatever its phase: unlike an RMS it needs no whole number of
//!   cycles, so windows can be far shorter than a period. The level of a window
//!   ([`GlitchConfig::window_ms`], 0.5 ms, hop a quarter of it) is `√median(Ψ) / sin ω`:
//!   the median ignores the two or three samples a step disturbs, so a dropped period
//!   leaves it whole. A window must be at most about half of the shortest hole: a 1 ms
//!   fade-out/in gap lowers a centred 0.5 ms window's energy to 0.06 of the tone's,
//!   a 1 ms window's only to 0.38. But Ψ also counts fast amplitude change as energy
//!   (`A²·(g'² − g·g'')` for a gain g, large beside `A²·sin²ω` when ω is small): in a
//!   1 ms gap at 441 Hz it reads up to 0.62 of the level. So a second level decides
//!   holes: the amplitude of the sinusoid at ω fitted to the window by least squares,
//!   which follows a fast dip (at most 0.38 in 1 to 3 ms gaps, at any phase) but also dips
//!   where a phase jump splits the window. A window is in a hole when the fitted level
//!   is under [`GlitchConfig::hole_ratio`] (half) of the reference **and** the Ψ level
//!   under 0.8 of it: a fade or a cut lowers both, a step only the fit.
//! - **Hole reference.** The 75th percentile of the 10 ms block levels within ±1 s (it
//!   follows slow level changes, and holes filling up to three quarters of that context
//!   do not pull it down), and at least a quarter of the tone's median level over the span
//!   (so a dropout longer than the context is a hole throughout).
//! - **Span.** The tone starts at the first window at half of its loud level (the 99th
//!   percentile of window levels) and ends at the last; `merge_ms` is left out at both
//!   ends (the onset from silence is a step by nature). Channels whose level is a quarter
//!   of the loudest's or more are all analysed, over the span they share; a glitch in
//!   any of them counts once.

use std::fmt;

mod detect;
mod jump;

use crate::dsp::quantile::median;
use detect::{Channel, Grid, Part, SILENCE, cluster, merge_events};

/// What counts as a glitch. [`GlitchConfig::default`] holds the thresholds the design note
/// explains.
///
/// # Example
/// ```
/// let cfg = izyrt::measure::GlitchConfig { freq_hz: Some(441.0), ..Default::default() };
/// assert_eq!(cfg.merge_ms, 20.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlitchConfig {
    /// The tone's frequency when known: local estimates more than 2 % away from it are
    /// ignored. `None` finds it.
    pub freq_hz: Option<f64>,
    /// A step: the predictor's residual above this fraction of the tone's amplitude.
    pub step_ratio: f64,
    /// A hole: a window's level below this fraction of the reference level.
    pub hole_ratio: f64,
    /// Envelope window, ms (hop: a quarter of it).
    pub window_ms: f64,
    /// Steps, holes and events closer than this are merged, ms; also left out at both
    /// ends of the tone.
    pub merge_ms: f64,
}

impl Default for GlitchConfig {
    fn default() -> Self {
        GlitchConfig {
            freq_hz: None,
            step_ratio: 0.02,
            hole_ratio: 0.5,
            window_ms: 0.5,
            merge_ms: 20.0,
        }
    }
}

/// What an event is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlitchKind {
    /// Only steps: the waveform jumped, its level held (a dropped or repeated span).
    Step,
    /// Only a hole: the level dipped smoothly (a fade-out/fade-in concealment).
    Hole,
    /// Both (a hard cut to silence and back).
    StepAndHole,
}

impl GlitchKind {
    /// `step`, `hole` or `step+hole`.
    ///
    /// # Example
    /// ```
    /// assert_eq!(izyrt::measure::GlitchKind::StepAndHole.name(), "step+hole");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            GlitchKind::Step => "step",
            GlitchKind::Hole => "hole",
            GlitchKind::StepAndHole => "step+hole",
        }
    }
}

/// One audible event: steps and holes within [`GlitchConfig::merge_ms`] of each other.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlitchEvent {
    /// Frame of the file where it starts.
    pub frame: usize,
    /// Frame where it ends (its last step or hole window).
    pub end_frame: usize,
    /// What it is made of.
    pub kind: GlitchKind,
    /// Steps in it.
    pub steps: usize,
    /// Holes in it.
    pub holes: usize,
    /// Its largest residual, as a fraction of the tone's amplitude (0 without a step).
    pub step: f64,
    /// Its lowest level, as a fraction of the reference (1 without a hole).
    pub depth: f64,
    /// Time its level spent below the hole threshold, ms.
    pub hole_ms: f64,
    /// What it did to the tone's timeline, frames (`jump.rs`): the phase of the tone after
    /// it against the tone before it, positive when the audio after it is ahead (a span
    /// dropped), negative when behind (a span repeated or played late), about 0 when it
    /// left the timeline where it was (a gap concealed and rejoined in phase). Known only
    /// modulo the tone's period, so wrapped to half of it either way (a dropped 64-frame
    /// period of 441 Hz at 48 kHz reads −44.8); `None` without clean tone on both sides.
    pub jump_frames: Option<f64>,
    /// The longest run of exact digital zeros in it, frames (silence a device or a JACK
    /// cycle played, as against a fade); runs under 8 frames (the tone crossing zero)
    /// count as none.
    pub zero_frames: usize,
}

/// What [`tone_glitches`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct GlitchReport {
    /// Steps (residual exceedances merged within `merge_ms`).
    pub steps: usize,
    /// Holes (windows below the hole threshold merged within `merge_ms`).
    pub holes: usize,
    /// The events, in order.
    pub events: Vec<GlitchEvent>,
    /// The tone's frequency (median of the local estimates), Hz.
    pub tone_hz: f64,
    /// The tone's amplitude (peak, full scale 1), median over the span.
    pub amplitude: f64,
    /// First frame analysed.
    pub start_frame: usize,
    /// One past the last frame analysed.
    pub end_frame: usize,
    /// Frames per second of the input.
    pub rate: u32,
}

impl GlitchReport {
    /// Seconds analysed.
    ///
    /// # Example
    /// ```
    /// # use izyrt::measure::GlitchReport;
    /// let r = GlitchReport { steps: 0, holes: 0, events: vec![], tone_hz: 441.0,
    ///     amplitude: 0.25, start_frame: 960, end_frame: 960 + 96_000, rate: 48_000 };
    /// assert_eq!(r.seconds(), 2.0);
    /// ```
    pub fn seconds(&self) -> f64 {
        (self.end_frame - self.start_frame) as f64 / f64::from(self.rate)
    }

    /// Events per minute of the span analysed.
    ///
    /// # Example
    /// ```
    /// let rate = 48_000;
    /// let x: Vec<f32> = (0..rate * 4).map(|n| 0.25 * (n as f32 * 0.0577).sin()).collect();
    /// let r = izyrt::measure::tone_glitches(&x, 1, rate as u32, &Default::default()).unwrap();
    /// assert_eq!(r.events_per_minute(), 0.0);
    /// ```
    pub fn events_per_minute(&self) -> f64 {
        let s = self.seconds();
        if s > 0.0 {
            self.events.len() as f64 * 60.0 / s
        } else {
            0.0
        }
    }
}

/// Why a file could not be measured.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GlitchError {
    /// `channels` or `rate` is 0, or the samples are not whole frames.
    #[error("{0}")]
    Shape(String),
    /// Nothing louder than digital silence, or no sinusoid (at the `--freq` given).
    #[error("no tone found: {0}")]
    NoTone(String),
    /// The tone lasts too little to analyse (under 100 ms once its ends are left out).
    #[error("the tone lasts {0:.3} s: too short to analyse (at least 0.1 s between its ends)")]
    TooShort(f64),
}

/// Counts the steps, holes and events in a recorded pure tone (interleaved `samples`,
/// `channels` per frame, `rate` frames per second). See the module's design note.
///
/// # Errors
/// [`GlitchError`] for a malformed shape, a file without a tone, or a tone too short.
///
/// # Example
/// ```
/// use izyrt::measure::{GlitchConfig, GlitchKind, tone_glitches};
/// let rate = 48_000u32;
/// let w = 2.0 * std::f64::consts::PI * 441.0 / f64::from(rate);
/// // 3 s of silence, then 3 s of a stereo tone with 5 ms of zeros at 1.5 s in.
/// let mut x = Vec::new();
/// for n in 0..6 * rate as usize {
///     let cut = (4_500 * 48..4_505 * 48).contains(&n);
///     let v = if n < 3 * rate as usize || cut { 0.0 } else { 0.25 * (w * n as f64).sin() };
///     x.extend([v as f32, v as f32]);
/// }
/// let r = tone_glitches(&x, 2, rate, &GlitchConfig::default())?;
/// assert_eq!((r.steps, r.holes, r.events.len()), (1, 1, 1));
/// assert_eq!(r.events[0].kind, GlitchKind::StepAndHole);
/// assert!((r.tone_hz - 441.0).abs() < 0.01);
/// assert!(r.start_frame >= 3 * rate as usize);
/// # Ok::<(), izyrt::measure::GlitchError>(())
/// ```
pub fn tone_glitches(
    samples: &[f32],
    channels: usize,
    rate: u32,
    cfg: &GlitchConfig,
) -> Result<GlitchReport, GlitchError> {
    if channels == 0 || rate == 0 || samples.len() % channels != 0 {
        return Err(GlitchError::Shape(format!(
            "{} samples cannot be frames of {channels} channels at {rate} Hz",
            samples.len()
        )));
    }
    let g = Grid::new(rate, cfg);
    let chans: Vec<Channel> = (0..channels)
        .map(|c| Channel::new(samples.iter().skip(c).step_by(channels), &g))
        .collect();
    let loud = chans.iter().map(|c| c.loud).fold(0.0, f64::max);
    if loud < SILENCE {
        return Err(GlitchError::NoTone("the file is silent".into()));
    }
    // The loudest channel is the one whose tone says what each event did (`jump.rs`).
    let lead = (0..channels)
        .max_by(|&a, &b| chans[a].loud.total_cmp(&chans[b].loud))
        .unwrap_or(0);
    let chans: Vec<&Channel> = chans.iter().filter(|c| c.loud >= loud / 4.0).collect();
    // The span every tone channel shares, its ends left out.
    let onset = chans.iter().map(|c| c.onset).max().unwrap_or(0);
    let offset = chans.iter().map(|c| c.offset).min().unwrap_or(0);
    let start = onset + g.merge;
    let end = offset.saturating_sub(g.merge);
    if end < start + rate as usize / 10 {
        return Err(GlitchError::TooShort(
            offset.saturating_sub(onset) as f64 / f64::from(rate),
        ));
    }
    let mut steps = Vec::new();
    let mut holes = Vec::new();
    let (mut hz, mut amp) = (Vec::new(), Vec::new());
    for c in &chans {
        let a = c.analyse(start, end, &g, cfg)?;
        steps.extend(a.steps);
        holes.extend(a.holes);
        hz.push(a.tone_hz);
        amp.push(a.amplitude);
    }
    steps.sort_by_key(|s| s.0);
    holes.sort_by_key(|h| h.0);
    let steps = cluster(&steps, g.merge, true);
    let holes = cluster(&holes, g.merge, false);
    let hop_ms = g.hop as f64 * 1000.0 / f64::from(rate);
    let mut parts: Vec<Part> = steps
        .iter()
        .map(|s| Part {
            start: s.start,
            end: s.end,
            step: s.worst,
            depth: 1.0,
            steps: 1,
            holes: 0,
            hole_ms: 0.0,
        })
        .chain(holes.iter().map(|h| Part {
            start: h.start,
            end: h.end,
            step: 0.0,
            depth: h.worst,
            steps: 0,
            holes: 1,
            hole_ms: h.count as f64 * hop_ms / chans.len() as f64,
        }))
        .collect();
    parts.sort_by_key(|p| p.start);
    let mut events = merge_events(parts, g.merge);
    let tone_hz = median(&mut hz).unwrap_or(0.0);
    jump::annotate(
        &mut events,
        samples,
        channels,
        lead,
        rate,
        tone_hz,
        start..end,
    );
    Ok(GlitchReport {
        steps: steps.len(),
        holes: holes.len(),
        events,
        tone_hz,
        amplitude: median(&mut amp).unwrap_or(0.0),
        start_frame: start,
        end_frame: end,
        rate,
    })
}

impl fmt::Display for GlitchReport {
    /// One line: events (per minute), steps, holes, tone, seconds analysed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events ({:.2}/min): {} steps, {} holes; tone {:.2} Hz at {:.1} dBFS; {:.1} s analysed from {:.3} s",
            self.events.len(),
            self.events_per_minute(),
            self.steps,
            self.holes,
            self.tone_hz,
            20.0 * self.amplitude.max(1e-10).log10(),
            self.seconds(),
            self.start_frame as f64 / f64::from(self.rate),
        )
    }
}

#[cfg(test)]
mod tests;
