//! What a jitter buffer is sized by, and which sizes it accepts. A [`JitterConfig`] is
//! built on the main or net thread and checked once, by
//! [`JitterBuffer::new`](super::JitterBuffer::new); the RT thread only reads it.

use super::JitterError;

/// How a [`JitterBuffer`](super::JitterBuffer) is sized and adapts. All depths are in
/// frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Interleaved channels of the stream.
    pub channels: u16,
    /// Frames the reader pulls per cycle; the target moves in steps of one period.
    pub period_frames: u32,
    /// Ring capacity, frames: at least `max_target_frames + slack_frames + period_frames`.
    pub capacity_frames: u32,
    /// Target depth at start.
    pub initial_target_frames: u32,
    /// The target never shrinks below this (at least one period).
    pub min_target_frames: u32,
    /// The target never grows beyond this.
    pub max_target_frames: u32,
    /// Depth allowed above the target before the oldest frames are trimmed (at least one
    /// period; it should cover the largest packet).
    pub slack_frames: u32,
    /// Pulls in a row without a miss before the target may shrink (e.g. 5 s worth).
    pub steady_pulls: u32,
    /// Pulls in a row above `target + slack` before the excess is trimmed (e.g. 1 s
    /// worth; 1 trims at once).
    pub drift_pulls: u32,
    /// Time, ns, between the arrival of a frame and the pull that plays it that the buffer
    /// keeps when it chooses its depth: a stream starts (or restarts) only when the
    /// newest frame its first pull needs has waited this long (else it waits one pull
    /// more), and a shrink of the target, or a drop of depth above it, must leave it in
    /// every pull of the steady window (0: whole periods only).
    /// Only [`JitterBuffer::push_at`](super::JitterBuffer::push_at) and
    /// [`JitterBuffer::pull_at`](super::JitterBuffer::pull_at) see time.
    pub margin_ns: u64,
}

impl Default for JitterConfig {
    /// Stereo, 64-frame periods (1.33 ms at 48 kHz): target 1–16 periods starting at 1,
    /// slack 4 periods, shrink after 5 s of clean pulls, trim drift after 1 s above the
    /// slack, at 48 kHz.
    fn default() -> Self {
        JitterConfig {
            channels: 2,
            period_frames: 64,
            capacity_frames: 64 * 32,
            initial_target_frames: 64,
            min_target_frames: 64,
            max_target_frames: 64 * 16,
            slack_frames: 64 * 4,
            steady_pulls: 3_750,
            drift_pulls: 750,
            margin_ns: 0,
        }
    }
}

impl JitterConfig {
    /// This configuration with its largest target set to `max_ms` (the user's
    /// `--jitter-max-ms`), rounded up to whole periods and at least one; `None` leaves it
    /// as it is. The initial and minimum targets come down with it when above it, and the
    /// ring grows when a larger maximum needs it.
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::jitter::JitterConfig;
    /// // 3 ms at 48 kHz is 144 frames: three 64-frame periods (192).
    /// let c = JitterConfig::default().capped(Some(3), 48_000);
    /// assert_eq!(c.max_target_frames, 192);
    /// // A larger maximum than the built-in one gets the ring it needs.
    /// let c = JitterConfig::default().capped(Some(100), 48_000);
    /// assert_eq!(c.max_target_frames, 4800);
    /// assert!(c.capacity_frames >= 4800 + c.slack_frames + c.period_frames);
    /// assert_eq!(JitterConfig::default().capped(None, 48_000), JitterConfig::default());
    /// ```
    pub fn capped(self, max_ms: Option<u32>, rate: u32) -> JitterConfig {
        let Some(ms) = max_ms else { return self };
        let max = self.whole_periods(ms, rate);
        JitterConfig {
            initial_target_frames: self.initial_target_frames.min(max),
            min_target_frames: self.min_target_frames.min(max),
            ..self.with_max(max)
        }
    }

    /// This configuration with its smallest target set to `min_ms` (the user's
    /// `--jitter-min-ms`), rounded up to whole periods: the buffer starts there and never
    /// shrinks below it. The initial and largest targets go up to it when below it, and
    /// the ring grows when it needs to; `None` leaves the configuration as it is.
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::jitter::JitterConfig;
    /// // 5 ms at 48 kHz is 240 frames: four 64-frame periods (256).
    /// let c = JitterConfig::default().floored(Some(5), 48_000);
    /// assert_eq!((c.min_target_frames, c.initial_target_frames), (256, 256));
    /// // A floor above the largest target raises that too, and the ring with it.
    /// let c = JitterConfig::default().floored(Some(100), 48_000);
    /// assert_eq!((c.min_target_frames, c.max_target_frames), (4800, 4800));
    /// assert!(c.capacity_frames >= 4800 + c.slack_frames + c.period_frames);
    /// assert_eq!(JitterConfig::default().floored(None, 48_000), JitterConfig::default());
    /// ```
    pub fn floored(self, min_ms: Option<u32>, rate: u32) -> JitterConfig {
        let Some(ms) = min_ms else { return self };
        let min = self.whole_periods(ms, rate);
        JitterConfig {
            min_target_frames: self.min_target_frames.max(min),
            initial_target_frames: self.initial_target_frames.max(min),
            ..self.with_max(self.max_target_frames.max(min))
        }
    }

    /// `ms` at `rate` in frames, rounded up to whole periods, at least one.
    fn whole_periods(&self, ms: u32, rate: u32) -> u32 {
        let p = u64::from(self.period_frames.max(1));
        let frames = (u64::from(ms) * u64::from(rate)).div_ceil(1000);
        u32::try_from((frames.div_ceil(p) * p).max(p)).unwrap_or(u32::MAX)
    }

    /// This configuration with `max` as its largest target and a ring large enough for it.
    fn with_max(self, max: u32) -> JitterConfig {
        let room = max
            .saturating_add(self.slack_frames)
            .saturating_add(self.period_frames);
        JitterConfig {
            capacity_frames: self.capacity_frames.max(room),
            max_target_frames: max,
            ..self
        }
    }
}

/// Half a period of `period_frames` at `rate_hz`, ns: the `margin_ns` izyrt's hub
/// and clients use (0 for a rate of 0).
///
/// # Example
/// ```
/// use izyrt::dsp::jitter::half_period_ns;
/// assert_eq!(half_period_ns(64, 48_000), 666_666);
/// ```
pub fn half_period_ns(period_frames: u32, rate_hz: u32) -> u64 {
    crate::rt::clock::frames_ns(u64::from(period_frames), rate_hz) / 2
}

impl JitterConfig {
    /// Checks everything [`JitterBuffer::new`](super::JitterBuffer::new) refuses (its
    /// `# Errors` list, in that order) and returns the ring's length in samples.
    pub(super) fn ring_samples(&self) -> Result<usize, JitterError> {
        let cfg = self;
        if cfg.channels == 0 {
            return Err(config_error(
                "channels",
                cfg.channels.into(),
                "1 or more".into(),
            ));
        }
        let p = cfg.period_frames;
        if p == 0 {
            return Err(config_error("period_frames", p, "1 or more".into()));
        }
        if cfg.min_target_frames < p {
            return Err(config_error(
                "min_target_frames",
                cfg.min_target_frames,
                format!("at least period_frames ({p})"),
            ));
        }
        if cfg.max_target_frames < cfg.min_target_frames {
            return Err(config_error(
                "max_target_frames",
                cfg.max_target_frames,
                format!("at least min_target_frames ({})", cfg.min_target_frames),
            ));
        }
        if !(cfg.min_target_frames..=cfg.max_target_frames).contains(&cfg.initial_target_frames) {
            return Err(config_error(
                "initial_target_frames",
                cfg.initial_target_frames,
                format!(
                    "{}..={} (min_target_frames..=max_target_frames)",
                    cfg.min_target_frames, cfg.max_target_frames
                ),
            ));
        }
        if cfg.slack_frames < p {
            return Err(config_error(
                "slack_frames",
                cfg.slack_frames,
                format!("at least period_frames ({p})"),
            ));
        }
        let need = u64::from(cfg.max_target_frames) + u64::from(cfg.slack_frames) + u64::from(p);
        let samples = usize::try_from(cfg.capacity_frames)
            .ok()
            .and_then(|c| c.checked_mul(usize::from(cfg.channels)))
            .filter(|s| {
                s.checked_mul(size_of::<f32>())
                    .is_some_and(|b| b <= isize::MAX as usize)
            });
        if u64::from(cfg.capacity_frames) < need || samples.is_none() {
            return Err(config_error(
                "capacity_frames",
                cfg.capacity_frames,
                format!(
                    "at least max_target_frames + slack_frames + period_frames ({need}), fitting in memory"
                ),
            ));
        }
        if cfg.steady_pulls == 0 {
            return Err(config_error("steady_pulls", 0, "1 or more".into()));
        }
        if cfg.drift_pulls == 0 {
            return Err(config_error("drift_pulls", 0, "1 or more".into()));
        }
        Ok(samples.unwrap_or(0))
    }
}

fn config_error(what: &'static str, value: u32, allowed: String) -> JitterError {
    JitterError::Config {
        what,
        value: u64::from(value),
        allowed,
    }
}
