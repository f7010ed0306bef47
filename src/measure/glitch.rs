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
    Ok(GlitchReport {
        steps: steps.len(),
        holes: holes.len(),
        events: merge_events(parts, g.merge),
        tone_hz: median(&mut hz),
        amplitude: median(&mut amp),
        start_frame: start,
        end_frame: end,
        rate,
    })
}

/// Window levels below this (Ψ's square root, full scale 1) are digital silence.
const SILENCE: f64 = 1e-6;

/// Frame counts derived from the configuration and the rate.
struct Grid {
    rate: u32,
    /// Envelope window and hop, frames.
    win: usize,
    hop: usize,
    /// Frequency/level block, frames (10 ms).
    block: usize,
    /// Merge distance, frames.
    merge: usize,
    /// The step predictor's lag: the rate's multiple of 48 kHz (at least 1).
    lag: usize,
}

impl Grid {
    fn new(rate: u32, cfg: &GlitchConfig) -> Grid {
        let frames = |ms: f64| (ms * f64::from(rate) / 1000.0).round().max(0.0) as usize;
        let win = frames(cfg.window_ms).max(4);
        Grid {
            rate,
            win,
            hop: (win / 4).max(1),
            block: frames(10.0).max(win),
            merge: frames(cfg.merge_ms),
            lag: ((f64::from(rate) / 48_000.0).round() as usize).max(1),
        }
    }
}

/// One channel's samples and envelope.
struct Channel {
    x: Vec<f64>,
    /// `√median(Ψ)` of the window starting at `h × hop` (not yet divided by `sin ω`).
    level: Vec<f64>,
    /// The loud level (99th percentile of `level`).
    loud: f64,
    /// First frame of the first window, and one past the last frame of the last, at half
    /// the loud level or more.
    onset: usize,
    offset: usize,
}

impl Channel {
    fn new<'a>(samples: impl Iterator<Item = &'a f32>, g: &Grid) -> Channel {
        let x: Vec<f64> = samples.map(|&v| f64::from(v)).collect();
        let n = x.len();
        let psi: Vec<f64> = (0..n)
            .map(|i| {
                if i == 0 || i + 1 >= n {
                    0.0
                } else {
                    x[i] * x[i] - x[i - 1] * x[i + 1]
                }
            })
            .collect();
        let mut buf = Vec::with_capacity(g.win);
        let level: Vec<f64> = (0..(n.saturating_sub(g.win) / g.hop + usize::from(n >= g.win)))
            .map(|h| {
                buf.clear();
                buf.extend_from_slice(&psi[h * g.hop..h * g.hop + g.win]);
                median(&mut buf).max(0.0).sqrt()
            })
            .collect();
        let loud = percentile(&mut level.clone(), 0.99);
        let first = level.iter().position(|&l| l >= loud / 2.0).unwrap_or(0);
        let last = level.iter().rposition(|&l| l >= loud / 2.0).unwrap_or(0);
        Channel {
            onset: first * g.hop,
            offset: last * g.hop + g.win,
            x,
            level,
            loud,
        }
    }

    /// Steps and hole windows in `start..end`.
    fn analyse(
        &self,
        start: usize,
        end: usize,
        g: &Grid,
        cfg: &GlitchConfig,
    ) -> Result<Analysis, GlitchError> {
        let x = &self.x;
        let blocks = (end - start) / g.block + 1;
        let block_of = |frame: usize| ((frame.max(start) - start) / g.block).min(blocks - 1);
        let range = |b: usize| (start + b * g.block).max(2)..(start + (b + 1) * g.block).min(end);
        // Least-squares cos ω per block, from blocks with the tone at a quarter of its
        // typical energy or more.
        let energy: Vec<f64> = (0..blocks)
            .map(|b| {
                let r = range(b);
                let len = r.len().max(1) as f64;
                x[r].iter().map(|v| v * v).sum::<f64>() / len
            })
            .collect();
        let typical = median(&mut energy.clone());
        let hint = cfg.freq_hz.map(|f| f / f64::from(g.rate));
        let cos_of = |b: usize| -> Option<f64> {
            if energy[b] < typical / 4.0 || energy[b] <= 0.0 {
                return None;
            }
            let (mut num, mut den) = (0.0, 0.0);
            for n in range(b) {
                num += x[n - 1] * (x[n] + x[n - 2]);
                den += 2.0 * x[n - 1] * x[n - 1];
            }
            let c = num / den;
            if !(-1.0..1.0).contains(&c) {
                return None;
            }
            let cycles = c.acos() / std::f64::consts::TAU;
            match hint {
                Some(h) if (cycles / h - 1.0).abs() > 0.02 => None,
                _ => Some(c),
            }
        };
        let est: Vec<Option<f64>> = (0..blocks).map(cos_of).collect();
        let mut all: Vec<f64> = est.iter().flatten().copied().collect();
        if all.is_empty() {
            return Err(GlitchError::NoTone(match cfg.freq_hz {
                Some(f) => format!("no sinusoid within 2 % of {f} Hz"),
                None => "no sinusoid in the signal".into(),
            }));
        }
        let global = median(&mut all);
        let near = 5; // blocks each side: ±50 ms
        let cos_w: Vec<f64> = (0..blocks)
            .map(|b| {
                let mut v: Vec<f64> = est[b.saturating_sub(near)..(b + near + 1).min(blocks)]
                    .iter()
                    .flatten()
                    .copied()
                    .collect();
                if v.is_empty() { global } else { median(&mut v) }
            })
            .collect();
        let sin_w: Vec<f64> = cos_w.iter().map(|c| (1.0 - c * c).sqrt()).collect();
        // Window levels in amplitude, and each block's level (median of its windows).
        let first_hop = start.div_ceil(g.hop);
        let hops: Vec<usize> = (first_hop..self.level.len())
            .take_while(|h| h * g.hop + g.win <= end)
            .collect();
        let amp_of = |h: usize| self.level[h] / sin_w[block_of(h * g.hop + g.win / 2)];
        let mut per_block: Vec<Vec<f64>> = vec![Vec::new(); blocks];
        for &h in &hops {
            per_block[block_of(h * g.hop + g.win / 2)].push(amp_of(h));
        }
        let block_amp: Vec<f64> = per_block
            .iter_mut()
            .map(|v| if v.is_empty() { 0.0 } else { median(v) })
            .collect();
        let tone = median(&mut block_amp.clone());
        let context = 100; // blocks each side: ±1 s
        let reference: Vec<f64> = (0..blocks)
            .map(|b| {
                let mut v =
                    block_amp[b.saturating_sub(context)..(b + context + 1).min(blocks)].to_vec();
                percentile(&mut v, 0.75).max(tone / 4.0)
            })
            .collect();
        // Holes: the fitted level under hole_ratio, the robust one under TKEO_GUARD.
        let fits: Vec<SineFit> = cos_w.iter().map(|&c| SineFit::new(c, g.win)).collect();
        let mut holes = Vec::new();
        for &h in &hops {
            let centre = h * g.hop + g.win / 2;
            let b = block_of(centre);
            if amp_of(h) >= TKEO_GUARD * reference[b] {
                continue;
            }
            let depth = fits[b].amplitude(&x[h * g.hop..h * g.hop + g.win]) / reference[b];
            if depth < cfg.hole_ratio {
                holes.push((centre, depth));
            }
        }
        // The predictor over k samples, k the rate's multiple of 48 kHz: a step has the
        // same residual at every rate.
        let k = g.lag;
        let cos_kw: Vec<f64> = cos_w.iter().map(|c| (k as f64 * c.acos()).cos()).collect();
        let mut steps = Vec::new();
        for n in start.max(2 * k)..end {
            let b = block_of(n);
            let r = x[n] - 2.0 * cos_kw[b] * x[n - k] + x[n - 2 * k];
            let size = r.abs() / reference[b];
            if size > cfg.step_ratio {
                steps.push((n, size));
            }
        }
        Ok(Analysis {
            steps,
            holes,
            tone_hz: global.acos() / std::f64::consts::TAU * f64::from(g.rate),
            amplitude: tone,
        })
    }
}

/// A window is a hole only if its Teager–Kaiser level is also under this fraction of the
/// reference (that level overestimates a fast dip, by up to 0.62 for a 1 ms gap at
/// 441 Hz, but a step does not lower it).
const TKEO_GUARD: f64 = 0.8;

/// Least-squares fit of `a·sin(ωk) + b·cos(ωk)`, k = 0..win, to a window: the
/// amplitude `√(a² + b²)` of the sinusoid at ω closest to it.
struct SineFit {
    sin: Vec<f64>,
    cos: Vec<f64>,
    /// The inverse of the basis' Gram matrix: [ss, sc; sc, cc]⁻¹ as (a, b, d) of
    /// [a, b; b, d].
    inv: (f64, f64, f64),
}

impl SineFit {
    fn new(cos_w: f64, win: usize) -> SineFit {
        let w = cos_w.clamp(-1.0, 1.0).acos();
        let sin: Vec<f64> = (0..win).map(|k| (w * k as f64).sin()).collect();
        let cos: Vec<f64> = (0..win).map(|k| (w * k as f64).cos()).collect();
        let dot = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(a, b)| a * b).sum::<f64>();
        let (ss, sc, cc) = (dot(&sin, &sin), dot(&sin, &cos), dot(&cos, &cos));
        let det = ss * cc - sc * sc;
        let inv = if det.abs() > 1e-12 {
            (cc / det, -sc / det, ss / det)
        } else {
            (0.0, 0.0, 0.0)
        };
        SineFit { sin, cos, inv }
    }

    fn amplitude(&self, x: &[f64]) -> f64 {
        let (mut ps, mut pc) = (0.0, 0.0);
        for ((v, s), c) in x.iter().zip(&self.sin).zip(&self.cos) {
            ps += v * s;
            pc += v * c;
        }
        let (i, j, d) = self.inv;
        let (a, b) = (i * ps + j * pc, j * ps + d * pc);
        (a * a + b * b).sqrt()
    }
}

/// One channel's findings.
struct Analysis {
    /// (frame, residual / amplitude).
    steps: Vec<(usize, f64)>,
    /// (window centre frame, level / reference).
    holes: Vec<(usize, f64)>,
    tone_hz: f64,
    amplitude: f64,
}

/// Points merged when closer than a distance.
struct Cluster {
    start: usize,
    end: usize,
    /// The largest (steps) or smallest (holes) value in it.
    worst: f64,
    count: usize,
}

/// Groups sorted `(frame, value)` points whose gaps are at most `merge`; a cluster's worst
/// value is the largest one (`largest`, steps) or the smallest (holes).
fn cluster(points: &[(usize, f64)], merge: usize, largest: bool) -> Vec<Cluster> {
    let mut out: Vec<Cluster> = Vec::new();
    for &(f, v) in points {
        match out.last_mut() {
            Some(c) if f <= c.end + merge => {
                c.end = c.end.max(f);
                c.count += 1;
                c.worst = if largest {
                    c.worst.max(v)
                } else {
                    c.worst.min(v)
                };
            }
            _ => out.push(Cluster {
                start: f,
                end: f,
                worst: v,
                count: 1,
            }),
        }
    }
    out
}

/// A step or a hole, before merging into events.
struct Part {
    start: usize,
    end: usize,
    step: f64,
    depth: f64,
    steps: usize,
    holes: usize,
    hole_ms: f64,
}

/// Merges parts sorted by start whose gaps are at most `merge` into events.
fn merge_events(parts: Vec<Part>, merge: usize) -> Vec<GlitchEvent> {
    let mut out: Vec<Part> = Vec::new();
    for p in parts {
        match out.last_mut() {
            Some(e) if p.start <= e.end + merge => {
                e.end = e.end.max(p.end);
                e.step = e.step.max(p.step);
                e.depth = e.depth.min(p.depth);
                e.steps += p.steps;
                e.holes += p.holes;
                e.hole_ms += p.hole_ms;
            }
            _ => out.push(p),
        }
    }
    out.into_iter()
        .map(|e| GlitchEvent {
            frame: e.start,
            end_frame: e.end,
            kind: match (e.steps > 0, e.holes > 0) {
                (true, true) => GlitchKind::StepAndHole,
                (true, false) => GlitchKind::Step,
                _ => GlitchKind::Hole,
            },
            steps: e.steps,
            holes: e.holes,
            step: e.step,
            depth: e.depth,
            hole_ms: e.hole_ms,
        })
        .collect()
}

/// The median (the upper one of an even count; 0 for none). Reorders `v`.
fn median(v: &mut [f64]) -> f64 {
    percentile(v, 0.5)
}

/// The `q` quantile by rank (0 for none). Reorders `v`.
fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    *v.select_nth_unstable_by(k, f64::total_cmp).1
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
mod tests {
    use super::*;
    use std::f64::consts::{PI, TAU};

    const RATE: u32 = 48_000;
    /// The virtual device's tone: −12 dBFS.
    const AMP: f64 = 0.251;

    /// `secs` of a 441 Hz tone at `amp` after 0.5 s of silence, with 0.3 s of silence
    /// after it.
    fn tone(secs: f64, amp: f64) -> Vec<f64> {
        let w = TAU * 441.0 / f64::from(RATE);
        let lead = RATE as usize / 2;
        let n = (secs * f64::from(RATE)) as usize;
        let mut x = vec![0.0; lead];
        x.extend((0..n).map(|i| amp * (w * i as f64 + 0.3).sin()));
        x.extend(vec![0.0; RATE as usize * 3 / 10]);
        x
    }

    /// Quantised to 16 bits, as a WAV file would hold it.
    fn s16(x: &[f64]) -> Vec<f32> {
        x.iter()
            .map(|v| ((v * 32768.0).round().clamp(-32768.0, 32767.0) / 32768.0) as f32)
            .collect()
    }

    fn run(x: &[f64]) -> GlitchReport {
        tone_glitches(&s16(x), 1, RATE, &GlitchConfig::default()).unwrap()
    }

    fn counts(r: &GlitchReport) -> (usize, usize, usize) {
        (r.steps, r.holes, r.events.len())
    }

    fn kinds(r: &GlitchReport) -> Vec<GlitchKind> {
        r.events.iter().map(|e| e.kind).collect()
    }

    /// Frame positions well inside the tone, at varied phases of it.
    fn places(k: usize) -> Vec<usize> {
        (0..k)
            .map(|i| RATE as usize * (1 + i) + 1_237 * i + 17)
            .collect()
    }

    #[test]
    fn a_clean_tone_has_no_glitch() {
        let r = run(&tone(5.0, AMP));
        assert_eq!(counts(&r), (0, 0, 0));
        assert!((r.tone_hz - 441.0).abs() < 0.01, "{}", r.tone_hz);
        assert!((r.amplitude - AMP).abs() < 0.002, "{}", r.amplitude);
        // The leading and trailing silence and merge_ms at each end are left out.
        let lead = RATE as usize / 2;
        assert!(
            r.start_frame.abs_diff(lead + 960) <= 24,
            "{}",
            r.start_frame
        );
        assert!((r.seconds() - 4.96).abs() < 0.003, "{}", r.seconds());
        assert_eq!(r.events_per_minute(), 0.0);
    }

    #[test]
    fn a_stereo_tone_counts_each_glitch_once() {
        let mut x = tone(4.0, AMP);
        for &at in &places(2) {
            x[at..at + 240].fill(0.0);
        }
        let q = s16(&x);
        let stereo: Vec<f32> = q.iter().flat_map(|&v| [v, v]).collect();
        let r = tone_glitches(&stereo, 2, RATE, &GlitchConfig::default()).unwrap();
        assert_eq!(counts(&r), (2, 2, 2));
    }

    #[test]
    fn a_frequency_drifting_by_1000_ppm_is_not_a_glitch() {
        // 441 Hz × (1 ± 0.001), a full swing every 2 s: what a resampler chasing a clock
        // does, and more.
        let lead = RATE as usize / 2;
        let mut x = vec![0.0; lead];
        let mut phase = 0.0;
        for i in 0..RATE as usize * 6 {
            let t = i as f64 / f64::from(RATE);
            let f = 441.0 * (1.0 + 1e-3 * (TAU * t / 2.0).sin());
            phase += TAU * f / f64::from(RATE);
            x.push(AMP * phase.sin());
        }
        let r = run(&x);
        assert_eq!(counts(&r), (0, 0, 0));
        assert!((r.tone_hz - 441.0).abs() < 0.5, "{}", r.tone_hz);
    }

    #[test]
    fn hard_cuts_to_zero_are_steps_and_holes() {
        for k in [1, 3, 5] {
            let mut x = tone(7.0, AMP);
            let at = places(k);
            for (i, &a) in at.iter().enumerate() {
                // 2 to 10 ms of zeros.
                x[a..a + 96 + 96 * i].fill(0.0);
            }
            let r = run(&x);
            assert_eq!(counts(&r), (k, k, k), "{k} cuts");
            assert_eq!(kinds(&r), vec![GlitchKind::StepAndHole; k]);
            for (e, &a) in r.events.iter().zip(&at) {
                assert!(
                    e.frame.abs_diff(a) < 48,
                    "event at {} for a cut at {a}",
                    e.frame
                );
                assert!(e.step > 0.02 && e.depth < 0.1, "{e:?}");
            }
        }
    }

    #[test]
    fn a_hard_cut_at_every_phase_is_a_step_at_48_and_96_khz() {
        // Cuts starting and ending between any two samples of a cycle, the zero
        // crossings included: the smallest residual a cut leaves.
        for rate in [48_000u32, 96_000] {
            let w = TAU * 441.0 / f64::from(rate);
            let per = f64::from(rate) / 441.0;
            let base: Vec<f64> = (0..rate as usize * 2)
                .map(|i| AMP * (w * i as f64).sin())
                .collect();
            for k in 0..40 {
                let mut x = base.clone();
                // From just before the k-th fortieth of a cycle to 4 whole cycles later.
                let a = rate as usize + (k as f64 * per / 40.0) as usize;
                let len = (4.0 * per).round() as usize;
                x[a..a + len].fill(0.0);
                let r = tone_glitches(&s16(&x), 1, rate, &GlitchConfig::default()).unwrap();
                assert_eq!(counts(&r), (1, 1, 1), "{rate} Hz, cut at phase {k}/40");
                assert_eq!(r.events[0].kind, GlitchKind::StepAndHole);
            }
        }
    }

    #[test]
    fn a_hard_cut_at_the_worst_phase_is_a_step_at_48_and_96_khz() {
        // The tone stops and restarts where it crosses zero half-way between two samples:
        // the smallest residual a cut can leave, A·sin(ω/2) (with the 48 kHz lag).
        for rate in [48_000u32, 96_000] {
            let w = TAU * 441.0 / f64::from(rate);
            let a = rate as usize;
            let mut x: Vec<f64> = (0..a)
                .map(|n| AMP * (w * (n as f64 - a as f64 + 0.5)).sin())
                .collect();
            x.extend(vec![0.0; rate as usize / 200]);
            x.extend((0..a).map(|n| AMP * (w * (n as f64 + 0.5)).sin()));
            let r = tone_glitches(&s16(&x), 1, rate, &GlitchConfig::default()).unwrap();
            assert_eq!(counts(&r), (1, 1, 1), "{rate} Hz");
            assert!(r.events[0].step < 0.05, "{:?}", r.events[0]); // near the bound
        }
    }

    #[test]
    fn raised_cosine_fades_are_holes_not_steps() {
        for gap_ms in [1.0, 2.0, 3.0] {
            let mut x = tone(4.0, AMP);
            let at = places(3);
            let len = (gap_ms * f64::from(RATE) / 1000.0) as usize;
            for &a in &at {
                // Fade out over half the gap, back in over the other half.
                for (i, v) in x[a..a + len].iter_mut().enumerate() {
                    *v *= 0.5 * (1.0 + (TAU * i as f64 / len as f64).cos());
                }
            }
            let r = run(&x);
            assert_eq!(counts(&r), (0, 3, 3), "{gap_ms} ms gaps");
            assert_eq!(kinds(&r), vec![GlitchKind::Hole; 3]);
            assert!(r.events.iter().all(|e| e.depth < 0.3), "{:?}", r.events);
        }
    }

    #[test]
    fn a_1_ms_fade_gap_at_every_phase_is_a_hole() {
        let base = tone(2.0, AMP);
        for k in 0..36 {
            let mut x = base.clone();
            let a = RATE as usize + k * 3;
            for (i, v) in x[a..a + 48].iter_mut().enumerate() {
                *v *= 0.5 * (1.0 + (TAU * i as f64 / 48.0).cos());
            }
            let r = run(&x);
            assert_eq!(counts(&r), (0, 1, 1), "gap at phase {k}/36");
        }
    }

    #[test]
    fn a_fade_with_silence_between_is_one_hole() {
        let mut x = tone(3.0, AMP);
        let a = places(1)[0];
        let (fade, gap) = (96, 480); // 2 ms fades, 10 ms of silence
        for i in 0..fade {
            let g = 0.5 * (1.0 + (PI * i as f64 / fade as f64).cos());
            x[a + i] *= g;
            x[a + fade + gap + fade - 1 - i] *= g;
        }
        x[a + fade..a + fade + gap].fill(0.0);
        let r = run(&x);
        assert_eq!(counts(&r), (0, 1, 1));
        assert!(
            (r.events[0].hole_ms - 12.0).abs() < 2.0,
            "{:?}",
            r.events[0]
        );
    }

    /// `x` with `len` frames at each place removed (`Drop`), replaced by a copy of the
    /// `len` before (`Repeat`), or by zeros inserted (`Silence`).
    fn splice(x: &[f64], at: &[usize], len: usize, how: &str) -> Vec<f64> {
        let mut out = Vec::new();
        let mut from = 0;
        for &a in at {
            out.extend_from_slice(&x[from..a]);
            match how {
                "drop" => from = a + len,
                "repeat" => {
                    out.extend_from_slice(&x[a - len..a]);
                    from = a;
                }
                _ => {
                    out.extend(vec![0.0; len]);
                    from = a;
                }
            }
        }
        out.extend_from_slice(&x[from..]);
        out
    }

    #[test]
    fn a_dropped_period_is_a_step() {
        // 64 frames of 441 Hz at 48 kHz: the phase jumps 3.69 rad. Twelve places, so the
        // jump falls on many phases of the tone.
        let x = splice(&tone(13.0, AMP), &places(12), 64, "drop");
        let r = run(&x);
        assert_eq!(counts(&r), (12, 0, 12));
        assert_eq!(kinds(&r), vec![GlitchKind::Step; 12]);
    }

    #[test]
    fn a_dropped_period_at_every_phase_is_a_step() {
        // The worst case of the bound in the design note: jumps at 48 phases of a cycle.
        let base = tone(2.0, AMP);
        for k in 0..48 {
            let x = splice(&base, &[RATE as usize + k * 2], 64, "drop");
            let r = run(&x);
            assert_eq!(counts(&r), (1, 0, 1), "drop at phase {k}/48");
        }
    }

    #[test]
    fn an_inserted_period_of_silence_is_a_step_and_a_hole() {
        let x = splice(&tone(5.0, AMP), &places(4), 64, "silence");
        let r = run(&x);
        assert_eq!(counts(&r), (4, 4, 4));
        assert_eq!(kinds(&r), vec![GlitchKind::StepAndHole; 4]);
    }

    #[test]
    fn a_repeated_period_is_a_step() {
        let x = splice(&tone(5.0, AMP), &places(4), 64, "repeat");
        let r = run(&x);
        assert_eq!(counts(&r), (4, 0, 4));
        assert_eq!(kinds(&r), vec![GlitchKind::Step; 4]);
    }

    #[test]
    fn a_quiet_tone_is_measured_alike() {
        // A tenth of the level, in 16 bits: clean, then with two cuts and two drops.
        let quiet = tone(6.0, AMP / 10.0);
        assert_eq!(counts(&run(&quiet)), (0, 0, 0));
        let at = places(4);
        let mut x = splice(&quiet, &at[2..], 64, "drop");
        for &a in &at[..2] {
            x[a..a + 240].fill(0.0);
        }
        let r = run(&x);
        assert_eq!(counts(&r), (4, 2, 4));
        assert_eq!(
            kinds(&r),
            [
                GlitchKind::StepAndHole,
                GlitchKind::StepAndHole,
                GlitchKind::Step,
                GlitchKind::Step
            ]
        );
        assert!((r.amplitude - AMP / 10.0).abs() < 0.001, "{}", r.amplitude);
    }

    #[test]
    fn glitches_closer_than_merge_ms_are_one_event() {
        let mut x = tone(3.0, AMP);
        let a = places(1)[0];
        x[a..a + 48].fill(0.0);
        let x = splice(&x, &[a + 48 + 480], 64, "drop"); // 10 ms later
        let r = run(&x);
        assert_eq!(counts(&r), (1, 1, 1), "{:?}", r.events);
        let mut x = tone(3.0, AMP);
        x[a..a + 48].fill(0.0);
        let x = splice(&x, &[a + 48 + 1_920], 64, "drop"); // 40 ms later
        let r = run(&x);
        assert_eq!(counts(&r), (2, 1, 2), "{:?}", r.events);
    }

    #[test]
    fn other_rates_and_the_freq_hint() {
        for rate in [44_100u32, 96_000] {
            let w = TAU * 441.0 / f64::from(rate);
            let mut x: Vec<f64> = (0..rate as usize * 3)
                .map(|i| AMP * (w * i as f64).sin())
                .collect();
            let a = rate as usize + 101;
            x[a..a + rate as usize / 200].fill(0.0);
            let cfg = GlitchConfig {
                freq_hz: Some(441.0),
                ..Default::default()
            };
            let r = tone_glitches(&s16(&x), 1, rate, &cfg).unwrap();
            assert_eq!(counts(&r), (1, 1, 1), "{rate} Hz");
            assert!((r.tone_hz - 441.0).abs() < 0.01, "{}", r.tone_hz);
        }
        let cfg = GlitchConfig {
            freq_hz: Some(1000.0),
            ..Default::default()
        };
        let err = tone_glitches(&s16(&tone(1.0, AMP)), 1, RATE, &cfg).unwrap_err();
        assert!(matches!(err, GlitchError::NoTone(_)), "{err}");
    }

    #[test]
    fn silence_noise_and_shapes_are_refused() {
        let cfg = GlitchConfig::default();
        let e = tone_glitches(&[0.0; 48_000], 1, RATE, &cfg).unwrap_err();
        assert!(matches!(e, GlitchError::NoTone(_)), "{e}");
        let e = tone_glitches(&[0.0; 3], 2, RATE, &cfg).unwrap_err();
        assert!(matches!(e, GlitchError::Shape(_)), "{e}");
        let short = s16(&tone(0.1, AMP));
        let e = tone_glitches(&short, 1, RATE, &cfg).unwrap_err();
        assert!(matches!(e, GlitchError::TooShort(_)), "{e}");
    }
}
