//! The detector behind [`tone_glitches`](super::tone_glitches): per-channel envelope,
//! tone fit and step predictor, and the clustering of what they find into events (main
//! thread, after the fact). The design note is the parent module's.

use super::{GlitchConfig, GlitchError, GlitchEvent, GlitchKind};
use crate::dsp::quantile::{median, quantile};

/// Window levels below this (Ψ's square root, full scale 1) are digital silence.
pub(super) const SILENCE: f64 = 1e-6;

/// Frame counts derived from the configuration and the rate.
pub(super) struct Grid {
    rate: u32,
    /// Envelope window and hop, frames.
    win: usize,
    pub(super) hop: usize,
    /// Frequency/level block, frames (10 ms).
    block: usize,
    /// Merge distance, frames.
    pub(super) merge: usize,
    /// The step predictor's lag: the rate's multiple of 48 kHz (at least 1).
    lag: usize,
}

impl Grid {
    pub(super) fn new(rate: u32, cfg: &GlitchConfig) -> Grid {
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
pub(super) struct Channel {
    x: Vec<f64>,
    /// `√median(Ψ)` of the window starting at `h × hop` (not yet divided by `sin ω`).
    level: Vec<f64>,
    /// The loud level (99th percentile of `level`).
    pub(super) loud: f64,
    /// First frame of the first window, and one past the last frame of the last, at half
    /// the loud level or more.
    pub(super) onset: usize,
    pub(super) offset: usize,
}

impl Channel {
    pub(super) fn new<'a>(samples: impl Iterator<Item = &'a f32>, g: &Grid) -> Channel {
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
                median(&mut buf).unwrap_or(0.0).max(0.0).sqrt()
            })
            .collect();
        let loud = quantile(&mut level.clone(), 0.99).unwrap_or(0.0);
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
    pub(super) fn analyse(
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
        let typical = median(&mut energy.clone()).unwrap_or(0.0);
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
        let global = median(&mut all).unwrap_or(0.0);
        let near = 5; // blocks each side: ±50 ms
        let cos_w: Vec<f64> = (0..blocks)
            .map(|b| {
                let mut v: Vec<f64> = est[b.saturating_sub(near)..(b + near + 1).min(blocks)]
                    .iter()
                    .flatten()
                    .copied()
                    .collect();
                median(&mut v).unwrap_or(global)
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
            .map(|v| median(v).unwrap_or(0.0))
            .collect();
        let tone = median(&mut block_amp.clone()).unwrap_or(0.0);
        let context = 100; // blocks each side: ±1 s
        let reference: Vec<f64> = (0..blocks)
            .map(|b| {
                let mut v =
                    block_amp[b.saturating_sub(context)..(b + context + 1).min(blocks)].to_vec();
                quantile(&mut v, 0.75).unwrap_or(0.0).max(tone / 4.0)
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
/// amplitude `√(a² + b²)` of the sinusoid at ω closest to it (holes), and its phase
/// (`jump.rs`).
pub(super) struct SineFit {
    sin: Vec<f64>,
    cos: Vec<f64>,
    /// The inverse of the basis' Gram matrix: [ss, sc; sc, cc]⁻¹ as (a, b, d) of
    /// [a, b; b, d].
    inv: (f64, f64, f64),
}

impl SineFit {
    pub(super) fn new(cos_w: f64, win: usize) -> SineFit {
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
        let (a, b) = self.coefficients(x);
        (a * a + b * b).sqrt()
    }

    /// `(a, b)` of the fit to `x` (as long as the window).
    pub(super) fn coefficients(&self, x: &[f64]) -> (f64, f64) {
        let (mut ps, mut pc) = (0.0, 0.0);
        for ((v, s), c) in x.iter().zip(&self.sin).zip(&self.cos) {
            ps += v * s;
            pc += v * c;
        }
        let (i, j, d) = self.inv;
        (i * ps + j * pc, j * ps + d * pc)
    }
}

/// One channel's findings.
pub(super) struct Analysis {
    /// (frame, residual / amplitude).
    pub(super) steps: Vec<(usize, f64)>,
    /// (window centre frame, level / reference).
    pub(super) holes: Vec<(usize, f64)>,
    pub(super) tone_hz: f64,
    pub(super) amplitude: f64,
}

/// Points merged when closer than a distance.
pub(super) struct Cluster {
    pub(super) start: usize,
    pub(super) end: usize,
    /// The largest (steps) or smallest (holes) value in it.
    pub(super) worst: f64,
    pub(super) count: usize,
}

/// Groups sorted `(frame, value)` points whose gaps are at most `merge`; a cluster's worst
/// value is the largest one (`largest`, steps) or the smallest (holes).
pub(super) fn cluster(points: &[(usize, f64)], merge: usize, largest: bool) -> Vec<Cluster> {
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
pub(super) struct Part {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) step: f64,
    pub(super) depth: f64,
    pub(super) steps: usize,
    pub(super) holes: usize,
    pub(super) hole_ms: f64,
}

/// Merges parts sorted by start whose gaps are at most `merge` into events.
pub(super) fn merge_events(parts: Vec<Part>, merge: usize) -> Vec<GlitchEvent> {
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
            // Filled by `jump::annotate`, which needs the samples.
            jump_frames: None,
            zero_frames: 0,
        })
        .collect()
}
