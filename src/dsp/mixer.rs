//! The hub's mixer, run once per period on the hub's RT mixer thread.
//!
//! Design: a fixed number of input slots is allocated up front (a peer that joins is
//! handed a free slot, one that leaves gives it back; nothing is allocated per join or
//! per period). Each slot holds one period of interleaved samples, a gain and an
//! `active` flag. Per period the RT thread fills the slots (e.g. from each peer's
//! [`JitterBuffer`](crate::dsp::jitter::JitterBuffer)), calls [`Mixer::mix`] once, which
//! sums the active slots × gain into the *full* mix, and then renders each listener's
//! output with [`Mixer::render`]:
//!
//! - [`MixMode::Full`]: everyone (a monitor, or the peer of dev mode);
//! - [`MixMode::Minus`]: everyone but the listener itself (a mix-minus, so a peer does
//!   not hear its own delayed voice): computed as `full − own × gain`, one subtraction
//!   per sample instead of a sum over N − 1 slots, so N listeners cost O(N) per sample
//!   rather than O(N²);
//! - [`MixMode::Loopback`]: only the listener itself (a self-check of the path).
//!
//! An inactive slot contributes nothing (its samples are not even read), so its
//! listener's `minus` is the full mix and its `loopback` is silence.
//!
//! **Output limiting.** A sum of N full-scale inputs exceeds ±1.0 and would clip hard in
//! the device's integer conversion. With [`Limit::SoftClip`] each output sample goes
//! through a soft clipper: samples within ±[`SOFT_CLIP_KNEE`] pass unchanged (bit-exact,
//! so normal levels are untouched); above the knee the curve
//! `knee + (1 − knee)·tanh((|x| − knee)/(1 − knee))` (tanh by a rational approximation
//! within 1e-4) bends smoothly (continuous, slope 1
//! at the knee, monotonic) towards ±1.0, which it never exceeds; ±∞ map to ±1.0 and a
//! NaN (corrupt input) to 0.0, so the device never receives either. It is memoryless
//! (no attack or release), which keeps every listener's output independent and the cost
//! at one compare per sample below the knee; the price is some harmonic distortion on
//! the peaks that exceed the knee. [`Limit::None`] passes the sums through unchanged.

/// Below this magnitude [`Limit::SoftClip`] leaves samples unchanged.
pub const SOFT_CLIP_KNEE: f32 = 0.8;

/// Which mix a listener receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MixMode {
    /// Everyone but the listener itself.
    Minus,
    /// Everyone.
    Full,
    /// Only the listener itself.
    Loopback,
}

/// What happens to output samples beyond ±1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limit {
    /// Sums pass through unchanged (the device conversion clips).
    None,
    /// The soft clipper of the module documentation.
    #[default]
    SoftClip,
}

/// How a [`Mixer`] is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixerConfig {
    /// Input slots, fixed for the mixer's life.
    pub max_slots: usize,
    /// Interleaved channels of every input and output.
    pub channels: u16,
    /// Frames per period.
    pub period_frames: u32,
    /// Output limiting.
    pub limit: Limit,
}

impl Default for MixerConfig {
    /// 32 stereo slots of 64 frames, soft clipping.
    fn default() -> Self {
        MixerConfig {
            max_slots: 32,
            channels: 2,
            period_frames: 64,
            limit: Limit::SoftClip,
        }
    }
}

/// Why a [`Mixer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MixerError {
    /// A setting is out of range.
    #[error("mixer {what} {value} is not allowed (allowed: {allowed})")]
    Config {
        /// The setting.
        what: &'static str,
        /// The value given.
        value: u64,
        /// What is allowed.
        allowed: &'static str,
    },
}

/// Applies [`Limit::SoftClip`] to one sample (see the module documentation).
///
/// # Example
/// ```
/// use izyrt::dsp::mixer::soft_clip;
/// assert_eq!(soft_clip(0.5), 0.5);
/// assert!(soft_clip(0.9) > 0.85 && soft_clip(0.9) < 0.9);
/// assert!(soft_clip(3.0) > 0.99 && soft_clip(3.0) <= 1.0);
/// assert_eq!(soft_clip(-f32::INFINITY), -1.0);
/// assert_eq!(soft_clip(f32::NAN), 0.0);
/// ```
pub fn soft_clip(x: f32) -> f32 {
    // Both sides computed and one selected, without a branch, so that a loud period's
    // loop vectorises (every listener's mix goes through it once the room is loud).
    let a = x.abs();
    let room = 1.0 - SOFT_CLIP_KNEE;
    let curve = SOFT_CLIP_KNEE + room * tanh_approx((a - SOFT_CLIP_KNEE) / room);
    let y = if curve < 1.0 { curve } else { 1.0 };
    let y = if a <= SOFT_CLIP_KNEE { a } else { y };
    // NaN: 0 (a NaN fails both compares above and is caught here).
    if a.is_nan() { 0.0 } else { y.copysign(x) }
}

/// `tanh(t)` for `t ≥ 0` within 1e-4 (a 7/6 Padé approximant, clamped at 1.0 from
/// t ≈ 4.97 on): several times cheaper than libm's `tanhf` and without its branches, which
/// matters because every listener's mix goes through the clipper once the room is loud.
fn tanh_approx(t: f32) -> f32 {
    let t2 = t * t;
    let num = t * (135_135.0 + t2 * (17_325.0 + t2 * (378.0 + t2)));
    let den = 135_135.0 + t2 * (62_370.0 + t2 * (3_150.0 + 28.0 * t2));
    let y = num / den;
    // A plain compare (f32::min's NaN rule does not vectorise); for t = ∞, num / den is
    // NaN and the compare gives 1.0.
    if y < 1.0 { y } else { 1.0 }
}

/// The mixer: preallocated slots, one full mix per period, per-listener renders.
///
/// # Example
/// ```
/// use izyrt::dsp::mixer::{Limit, MixMode, Mixer, MixerConfig};
///
/// let mut m = Mixer::new(MixerConfig { max_slots: 3, channels: 1, period_frames: 2,
///     limit: Limit::None }).unwrap();
/// m.input_mut(0).unwrap().fill(0.25);
/// m.input_mut(1).unwrap().fill(0.5);
/// m.set_active(0, true);
/// m.set_active(1, true);
/// m.set_gain(1, 0.5);
/// m.mix();
/// let mut out = [0.0f32; 2];
/// m.render(MixMode::Full, 0, &mut out);
/// assert_eq!(out, [0.5, 0.5]); // 0.25 + 0.5 × 0.5
/// m.render(MixMode::Minus, 0, &mut out);
/// assert_eq!(out, [0.25, 0.25]); // everyone but slot 0
/// m.render(MixMode::Loopback, 1, &mut out);
/// assert_eq!(out, [0.25, 0.25]); // slot 1 alone, with its gain
/// ```
#[derive(Debug)]
pub struct Mixer {
    cfg: MixerConfig,
    period_samples: usize,
    inputs: Box<[f32]>,
    gains: Box<[f32]>,
    active: Box<[bool]>,
    full: Box<[f32]>,
}

impl Mixer {
    /// Builds the mixer, allocating every slot (main thread). Slots start inactive,
    /// silent, with gain 1.0.
    ///
    /// # Errors
    /// [`MixerError::Config`] naming the setting, its value and what is allowed when
    /// `max_slots`, `channels` or `period_frames` is 0, or the buffers would not fit in
    /// memory.
    pub fn new(cfg: MixerConfig) -> Result<Self, MixerError> {
        let err = |what, value: u64, allowed| MixerError::Config {
            what,
            value,
            allowed,
        };
        if cfg.max_slots == 0 {
            return Err(err("max_slots", 0, "1 or more"));
        }
        if cfg.channels == 0 {
            return Err(err("channels", 0, "1 or more"));
        }
        if cfg.period_frames == 0 {
            return Err(err("period_frames", 0, "1 or more"));
        }
        let period_samples = usize::try_from(cfg.period_frames)
            .ok()
            .and_then(|f| f.checked_mul(usize::from(cfg.channels)))
            .ok_or(err(
                "period_frames",
                cfg.period_frames.into(),
                "period_frames × channels samples fitting in memory",
            ))?;
        let total = period_samples
            .checked_mul(cfg.max_slots)
            .filter(|t| {
                t.checked_mul(size_of::<f32>())
                    .is_some_and(|b| b <= isize::MAX as usize)
            })
            .ok_or(err(
                "max_slots",
                cfg.max_slots as u64,
                "max_slots × period_frames × channels samples fitting in memory",
            ))?;
        Ok(Mixer {
            cfg,
            period_samples,
            inputs: vec![0.0; total].into_boxed_slice(),
            gains: vec![1.0; cfg.max_slots].into_boxed_slice(),
            active: vec![false; cfg.max_slots].into_boxed_slice(),
            full: vec![0.0; period_samples].into_boxed_slice(),
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &MixerConfig {
        &self.cfg
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.cfg.max_slots
    }

    /// Samples per period (`period_frames × channels`): the length of every input and
    /// output.
    pub fn period_samples(&self) -> usize {
        self.period_samples
    }

    /// The input period of `slot`, to fill before [`mix`](Self::mix); `None` past the
    /// last slot. Its content stays until overwritten.
    pub fn input_mut(&mut self, slot: usize) -> Option<&mut [f32]> {
        let n = self.period_samples;
        self.inputs.get_mut(slot * n..(slot + 1) * n)
    }

    /// Sets the gain (linear) of `slot`; returns `false` (and does nothing) past the last
    /// slot.
    pub fn set_gain(&mut self, slot: usize, gain: f32) -> bool {
        self.gains.get_mut(slot).map(|g| *g = gain).is_some()
    }

    /// The gain of `slot`; `None` past the last slot.
    pub fn gain(&self, slot: usize) -> Option<f32> {
        self.gains.get(slot).copied()
    }

    /// Makes `slot` part of the mix or not; returns `false` (and does nothing) past the
    /// last slot.
    pub fn set_active(&mut self, slot: usize, active: bool) -> bool {
        self.active.get_mut(slot).map(|a| *a = active).is_some()
    }

    /// Whether `slot` is part of the mix (`false` past the last slot).
    pub fn is_active(&self, slot: usize) -> bool {
        self.active.get(slot).copied().unwrap_or(false)
    }

    /// Sums the active slots × gain into the full mix of this period (RT thread; no
    /// allocation). Call once per period, after filling the inputs and before rendering.
    pub fn mix(&mut self) {
        self.full.fill(0.0);
        let n = self.period_samples;
        for (slot, input) in self.inputs.chunks_exact(n).enumerate() {
            if !self.active[slot] {
                continue;
            }
            let g = self.gains[slot];
            for (acc, x) in self.full.iter_mut().zip(input) {
                *acc += g * x;
            }
        }
    }

    /// The full mix of the last [`mix`](Self::mix), before limiting.
    pub fn full(&self) -> &[f32] {
        &self.full
    }

    /// Writes the `mode` mix for the listener in slot `listener` into `out`, limited as
    /// configured (RT thread; no allocation).
    ///
    /// `listener` matters only for `Minus` and `Loopback`; a listener without an active
    /// slot (or past the last slot) contributes nothing: its `Minus` is the full mix and
    /// its `Loopback` silence. `out` should be [`period_samples`](Self::period_samples)
    /// long; samples past the period are set to 0.0 and a shorter `out` receives the
    /// start of the period.
    pub fn render(&self, mode: MixMode, listener: usize, out: &mut [f32]) {
        let n = self.period_samples.min(out.len());
        let (head, tail) = out.split_at_mut(n);
        tail.fill(0.0);
        let own = if self.is_active(listener) {
            let start = listener * self.period_samples;
            Some((&self.inputs[start..start + n], self.gains[listener]))
        } else {
            None
        };
        let full = &self.full[..n];
        match (mode, own) {
            (MixMode::Full, _) | (MixMode::Minus, None) => head.copy_from_slice(full),
            (MixMode::Minus, Some((input, g))) => {
                for ((o, f), x) in head.iter_mut().zip(full).zip(input) {
                    *o = f - g * x;
                }
            }
            (MixMode::Loopback, Some((input, g))) => {
                for (o, x) in head.iter_mut().zip(input) {
                    *o = g * x;
                }
            }
            (MixMode::Loopback, None) => head.fill(0.0),
        }
        // The common, quiet case pays one compare per sample, without a branch so that
        // it vectorises; a NaN counts as loud.
        let loud = || {
            head.iter()
                .fold(false, |l, x| l | (x.abs() > SOFT_CLIP_KNEE) | x.is_nan())
        };
        if self.cfg.limit == Limit::SoftClip && loud() {
            for o in head {
                *o = soft_clip(*o);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four mono slots of 3 frames holding the constants 1/8, 1/4, 1/2 and 1/16
    /// (exact in binary, so the sums are exact), slots 0..3 active.
    fn mixer(limit: Limit) -> Mixer {
        let mut m = Mixer::new(MixerConfig {
            max_slots: 4,
            channels: 1,
            period_frames: 3,
            limit,
        })
        .unwrap();
        for (slot, v) in [0.125, 0.25, 0.5, 0.0625].into_iter().enumerate() {
            m.input_mut(slot).unwrap().fill(v);
            m.set_active(slot, slot < 3);
        }
        m.mix();
        m
    }

    fn render(m: &Mixer, mode: MixMode, listener: usize) -> Vec<f32> {
        let mut out = vec![9.0; m.period_samples()];
        m.render(mode, listener, &mut out);
        out
    }

    #[test]
    fn full_is_the_sum_of_the_active_slots() {
        let m = mixer(Limit::None);
        assert_eq!(m.full(), &[0.875; 3]);
        for listener in 0..5 {
            assert_eq!(render(&m, MixMode::Full, listener), vec![0.875; 3]);
        }
    }

    #[test]
    fn minus_is_everyone_but_the_listener() {
        let m = mixer(Limit::None);
        assert_eq!(render(&m, MixMode::Minus, 0), vec![0.75; 3]);
        assert_eq!(render(&m, MixMode::Minus, 1), vec![0.625; 3]);
        assert_eq!(render(&m, MixMode::Minus, 2), vec![0.375; 3]);
        // Inactive or absent listener: it is not in the mix, it hears everyone.
        assert_eq!(render(&m, MixMode::Minus, 3), vec![0.875; 3]);
        assert_eq!(render(&m, MixMode::Minus, 99), vec![0.875; 3]);
    }

    #[test]
    fn loopback_is_only_the_listener() {
        let m = mixer(Limit::None);
        assert_eq!(render(&m, MixMode::Loopback, 0), vec![0.125; 3]);
        assert_eq!(render(&m, MixMode::Loopback, 2), vec![0.5; 3]);
        assert_eq!(render(&m, MixMode::Loopback, 3), vec![0.0; 3]);
        assert_eq!(render(&m, MixMode::Loopback, 99), vec![0.0; 3]);
    }

    #[test]
    fn inactive_slots_are_silent_and_gain_applies() {
        let mut m = mixer(Limit::None);
        m.set_active(1, false);
        assert!(!m.is_active(1));
        assert!(m.set_gain(2, 0.25));
        assert_eq!(m.gain(2), Some(0.25));
        m.mix();
        // 0.125 + 0.5 × 0.25
        assert_eq!(m.full(), &[0.25; 3]);
        assert_eq!(render(&m, MixMode::Minus, 2), vec![0.125; 3]);
        assert_eq!(render(&m, MixMode::Loopback, 2), vec![0.125; 3]);
        assert_eq!(render(&m, MixMode::Loopback, 1), vec![0.0; 3]);
        assert_eq!(render(&m, MixMode::Minus, 1), vec![0.25; 3]);
        // Out-of-range slots are refused, not a panic.
        assert!(!m.set_gain(4, 1.0));
        assert!(!m.set_active(4, true));
        assert!(m.input_mut(4).is_none());
        assert_eq!(m.gain(4), None);
    }

    #[test]
    fn per_sample_values_are_kept_apart() {
        let mut m = Mixer::new(MixerConfig {
            max_slots: 2,
            channels: 2,
            period_frames: 2,
            limit: Limit::None,
        })
        .unwrap();
        m.input_mut(0)
            .unwrap()
            .copy_from_slice(&[0.5, -0.5, 0.25, 0.0]);
        m.input_mut(1)
            .unwrap()
            .copy_from_slice(&[0.125, 0.125, -0.25, 1.0]);
        m.set_active(0, true);
        m.set_active(1, true);
        m.mix();
        assert_eq!(m.full(), &[0.625, -0.375, 0.0, 1.0]);
        assert_eq!(
            render(&m, MixMode::Minus, 0),
            vec![0.125, 0.125, -0.25, 1.0]
        );
        // A short output gets the start of the period, a long one zeros after it.
        let mut short = [9.0; 3];
        m.render(MixMode::Full, 0, &mut short);
        assert_eq!(short, [0.625, -0.375, 0.0]);
        let mut long = [9.0; 6];
        m.render(MixMode::Loopback, 1, &mut long);
        assert_eq!(long, [0.125, 0.125, -0.25, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn soft_clip_bounds_the_output_and_leaves_normal_levels_alone() {
        let mut m = mixer(Limit::SoftClip);
        // Below the knee: bit-exact.
        assert_eq!(render(&m, MixMode::Minus, 0), vec![0.75; 3]);
        for slot in 0..3 {
            m.set_gain(slot, 4.0);
        }
        m.mix();
        assert_eq!(m.full(), &[3.5; 3]);
        let out = render(&m, MixMode::Full, 0);
        assert!(out.iter().all(|x| *x > 0.99 && *x <= 1.0), "{out:?}");
        // Without limiting the sum goes through.
        let mut m = mixer(Limit::None);
        m.set_gain(2, 4.0);
        m.mix();
        assert_eq!(render(&m, MixMode::Full, 0), vec![2.375; 3]);
    }

    #[test]
    fn one_loud_or_nan_sample_anywhere_sends_the_period_through_the_clipper() {
        // Slot 0 alone, 3 frames: each position in turn holds a loud sample, then a NaN.
        for bad in [3.0, f32::NAN] {
            for at in 0..3 {
                let mut m = mixer(Limit::SoftClip);
                for slot in 1..4 {
                    m.set_active(slot, false);
                }
                m.input_mut(0).unwrap()[at] = bad;
                m.mix();
                let out = render(&m, MixMode::Full, 1);
                for (i, y) in out.iter().enumerate() {
                    let want = if i == at { soft_clip(bad) } else { 0.125 };
                    assert_eq!(*y, want, "{bad} at {at}: {out:?}");
                }
                assert!(out[at].is_finite() && out[at].abs() <= 1.0);
            }
        }
    }

    #[test]
    fn soft_clip_curve() {
        let mut prev = 0.0f32;
        for i in 0..=4_000 {
            let x = i as f32 / 1_000.0;
            let y = soft_clip(x);
            assert!(y >= prev && y <= 1.0, "{x} → {y}");
            assert_eq!(soft_clip(-x), -y);
            prev = y;
        }
        // Continuous at the knee, no overshoot.
        assert!((soft_clip(SOFT_CLIP_KNEE + 1e-4) - (SOFT_CLIP_KNEE + 1e-4)).abs() < 1e-6);
        assert_eq!(soft_clip(f32::INFINITY), 1.0);
        assert_eq!(soft_clip(f32::NAN), 0.0);
    }

    #[test]
    fn the_clipper_follows_tanh() {
        let room = 1.0 - SOFT_CLIP_KNEE;
        for i in 0..=10_000 {
            let x = SOFT_CLIP_KNEE + i as f32 / 1_000.0;
            let exact = SOFT_CLIP_KNEE + room * ((x - SOFT_CLIP_KNEE) / room).tanh();
            assert!(
                (soft_clip(x) - exact).abs() < 2e-5,
                "{x}: {} vs {exact}",
                soft_clip(x)
            );
        }
    }

    #[test]
    fn constructor_errors_name_the_setting() {
        let ok = MixerConfig::default();
        for (cfg, needle) in [
            (MixerConfig { max_slots: 0, ..ok }, "max_slots 0"),
            (MixerConfig { channels: 0, ..ok }, "channels 0"),
            (
                MixerConfig {
                    period_frames: 0,
                    ..ok
                },
                "period_frames 0",
            ),
            (
                MixerConfig {
                    max_slots: usize::MAX,
                    ..ok
                },
                "max_slots 18446744073709551615",
            ),
        ] {
            let e = Mixer::new(cfg).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let m = Mixer::new(ok).unwrap();
        assert_eq!((m.slots(), m.period_samples()), (32, 128));
        assert_eq!(m.config(), &ok);
    }
}
