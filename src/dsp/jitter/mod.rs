//! An adaptive jitter buffer for one incoming stream, owned by the RT audio thread.
//!
//! Design: the net thread parses AUDIO packets and hands them (through an rtrb queue) to
//! the RT thread, which [`push`](JitterBuffer::push)es each one with the stream
//! `position` of its first frame and [`pull`](JitterBuffer::pull)s exactly one period per
//! cycle for the speaker. Everything lives in a ring of fixed capacity allocated by
//! [`JitterBuffer::new`]; after that nothing allocates, locks or panics on the data given.
//!
//! **Why place frames by position.** Frames are written at `position mod capacity`, not
//! appended. A stream is then a function from position to sample and every network
//! accident has an exact meaning: a reordered packet lands where it belongs; a duplicate
//! finds its frames already filled and is ignored; a packet older than the read point
//! (its time has passed) is dropped and counted as late; a hole in the positions stays
//! unfilled and is played as silence — and counted as a miss only if the reader actually
//! reached it (a hole that a trim discards cost nothing audible). Appending would instead
//! shift everything after a lost or reordered packet and turn one network hiccup into a
//! permanent offset. Each frame carries a "filled" flag, cleared when it is read or
//! discarded, so the ring never mistakes a stale frame for a new one.
//!
//! **Depth** is the span from the read point to one past the newest frame received
//! (holes included): that is the delay the buffer adds. Before the first packet the
//! buffer is idle; the first packet anchors the read point at its position (a packet
//! reordered before that first one is late). Positions wrap past u64::MAX as senders
//! count them: they are kept as distances from that first one.
//!
//! **Why these adaptation rules.** The target depth is what the buffer holds before it
//! starts (or restarts) playing, i.e. the latency it trades for safety against jitter:
//! - *Priming*: until the depth reaches the target, pulls output silence and are not
//!   misses (the stream has not started for the listener).
//! - *Miss*: when a pull finds less than a period (or a hole inside it), the speaker
//!   needed audio it did not have: the pull outputs what there is plus silence and counts
//!   a miss. After running dry the buffer *rebuffers* to the target, and each pull spent
//!   rebuffering counts as a miss (the speaker played silence it should not have).
//! - *Late → grow, lost → not*: running dry has two causes, and only one is helped by a
//!   deeper buffer. Audio that was *late* (a network or scheduling stall) comes back in a
//!   burst, as TCP delivers the backlog at once: the target then grows by one period (up
//!   to the maximum), once per event however long it lasted — a 2 s stall is one event,
//!   not a reason for the maximum latency forever. Audio that was *lost* (the sender's
//!   device xrun, a JACK server that skipped cycles: its stream falls behind) comes back
//!   at the ordinary rate: the buffer refills to the same target and the silence equals
//!   what was lost, whatever the target; growing it would only add latency at every such
//!   slip. A burst is a rise in depth between two rebuffering pulls of more than two
//!   periods (or one packet, when packets are larger): lateness of a period or less
//!   cannot be told from the two clocks' phase. So the target also grows when the buffer
//!   runs dry again within `drift_pulls` of the last time (frequent small lateness, or
//!   slips so frequent that fewer, longer refills are better). A hole inside received
//!   audio grows the target as lateness does.
//! - *At most one growth per `drift_pulls`*: a host or network disturbance often comes as
//!   a cluster of stalls within a fraction of a second. Each one runs the buffer dry, but
//!   a period more after the first would not have saved the others (they are as long as
//!   the first), and every period grown costs a whole shrink window to give back: growing
//!   at each stall of one 150 ms cluster took a 1-period target to 5 periods, and 20 s to
//!   come back. Lateness that persists still grows the target, a period a second.
//! - *Steady → shrink*: after `steady_pulls` pulls in a row without a miss, if the
//!   low-water mark of the depth (measured before each pull) left at least one whole
//!   period unused beyond the period being pulled, the jitter that the target was sized
//!   for did not happen: the target shrinks by one period (down to the minimum) and one
//!   period of the oldest audio is dropped so the latency really goes down (lowering the
//!   number alone would leave the delay where it was). The mark is taken over the whole
//!   window, so one late packet in five seconds keeps the target where it is.
//! - *Whole periods are not enough → a margin in time*: the low-water mark says whether
//!   the packet a shallower buffer would have needed had arrived before each pull, not by
//!   how much. Packets that arrive a few microseconds ahead of the reader pass that test,
//!   and a buffer that shrinks onto them misses at the next scheduling hiccup; at a hub
//!   every peer's buffer does so at once, because they all shrank together. So with
//!   arrival times ([`JitterBuffer::push_at`]) a shrink or drop of k periods also needs,
//!   in every pull of the window, `margin_ns` between the arrival of the newest
//!   frame the pull would then have needed and the pull (izyrt uses half a period:
//!   `benches/jitter_policy.rs` weighs it by simulation).
//! - *Start with the margin too*: a stream that starts (or restarts after running dry)
//!   the moment it holds the target plays at whatever phase its packets happen to have
//!   against the reader's clock, which is as likely a microsecond early as half a period.
//!   The thin half then misses at the first hiccup and only after that sits a period
//!   deeper. So a buffer that holds the target but whose newest needed frame has waited
//!   less than `margin_ns` waits one pull more (that frame has then waited a period
//!   more). It never waits longer than that. `jitter_policy` simulates 40 streams' first
//!   10 s (where the shrink rule has not acted yet): a margin of half a period against
//!   none takes their misses from 15 to 5 (rare spikes) and from 108 to 87 (a busy
//!   host), for 25 and 1.4 frames more mean depth. Over 300 s the rule took rare-spike
//!   misses at half a period from 153 to 132, for 2 frames.
//! - *Excess → drop at once*: the depth can also stand whole periods above the target,
//!   within the slack, where nothing else takes them back: a packet that came just after
//!   the pull that needed it (that pull was silence and the stream resumes where it
//!   stopped, a period later for good), a burst after a stall, periods the reader's own
//!   device skipped (an xrun) while packets kept coming. Those are accidents, not jitter
//!   the target was sized for: when a steady window's low-water mark stands whole periods
//!   above the target, they are all dropped at the window's end, and the target itself
//!   shrinks only in a later window, a period at a time.
//! - *A drop that was wrong → wait longer*: a period dropped is also the margin against
//!   the next late packet of the same size. When the buffer misses within one window of a
//!   drop, that period was needed: the window doubles (up to 8 × `steady_pulls`, 40 s), so
//!   a stream whose lateness recurs every few seconds pays a miss every 40 s at most, not
//!   every 5 s, while one that was late once gets its latency back after 5 s.
//! - *Drift → trim*: if the sender's clock runs faster than the speaker's, the depth
//!   creeps up forever. When `drift_pulls` pulls in a row find the depth above
//!   `target + slack`, the oldest frames are dropped to bring it back to the target
//!   (counted). `slack` must cover the largest packet and the normal burstiness; the run
//!   of pulls tells drift (a floor that stays high) from the burst that follows a stall
//!   (a spike that drains by itself): trimming a burst would throw away exactly the audio
//!   the next stall needs, then miss.
//! - *Full*: a packet that would not fit makes room by dropping the oldest frames
//!   (counted), as every bounded queue of the design does; the RT thread never waits.
//!
//! A sender that falls behind (slower clock) simply causes an occasional miss: the buffer
//! runs dry, refills at the ordinary rate and keeps its target. A sender whose stream
//! *skips ahead* while the buffer is dry (its device's xrun: the position jumps with the
//! time lost) resumes at the new position: the span it skipped was already heard here as
//! the rebuffering silence, and is not played again as a hole; such a dry spell is known
//! to be lost audio, so it does not count when the buffer runs dry again (a sender whose
//! device xruns every few hundred ms would otherwise take the target to its maximum, and
//! every later slip would cost a longer refill).

/// How a [`JitterBuffer`] is sized and adapts. All depths are in frames.
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
    /// Only [`JitterBuffer::push_at`] and [`JitterBuffer::pull_at`] see time.
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

/// Why a [`JitterBuffer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JitterError {
    /// A setting is out of range.
    #[error("jitter buffer {what} {value} is not allowed (allowed: {allowed})")]
    Config {
        /// The setting.
        what: &'static str,
        /// The value given.
        value: u64,
        /// What is allowed.
        allowed: String,
    },
}

/// What one [`JitterBuffer::pull`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullResult {
    /// Filling to the target (or no stream yet): silence, not a miss.
    Priming,
    /// A full period of received audio.
    Played,
    /// The speaker needed frames the buffer did not have: `silent` of the period's frames
    /// are silence, `played` are audio. Counted in [`JitterBuffer::misses`].
    Miss {
        /// Frames of received audio in the output.
        played: u32,
        /// Frames of silence in the output.
        silent: u32,
    },
}

/// What one [`JitterBuffer::push`] did with a packet, in frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushResult {
    /// Frames stored.
    pub stored: u64,
    /// Frames older than the read point, dropped.
    pub late: u64,
    /// Frames already held, ignored.
    pub duplicate: u64,
    /// Frames dropped to make room (buffer full): older frames held, and the oldest
    /// frames of a packet larger than the whole ring.
    pub evicted: u64,
    /// Positions a dry buffer jumped over to resume at this packet (the sender skipped
    /// ahead, or the packets between were lost): their time was already played as
    /// concealment, and their audio will never be queued.
    pub skipped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No packet yet.
    Idle,
    /// Filling to the target before the first play.
    Priming,
    Playing,
    /// Refilling to the target after an underrun; pulls are misses.
    Rebuffering,
}

/// The adaptive jitter buffer (see the module documentation for the rules).
///
/// # Example
/// ```
/// use izyrt::dsp::jitter::{JitterBuffer, JitterConfig, PullResult};
///
/// let cfg = JitterConfig { channels: 1, period_frames: 4, capacity_frames: 64,
///     initial_target_frames: 4, min_target_frames: 4, max_target_frames: 16,
///     slack_frames: 8, steady_pulls: 100, drift_pulls: 1, margin_ns: 0 };
/// let mut jb = JitterBuffer::new(cfg).unwrap();
/// let mut out = [0.0f32; 4];
/// // Packets may arrive out of order: they are placed by position.
/// jb.push(0, &[1.0, 2.0, 3.0, 4.0]);
/// jb.push(8, &[9.0, 10.0, 11.0, 12.0]);
/// jb.push(4, &[5.0, 6.0, 7.0, 8.0]);
/// jb.push(4, &[5.0, 6.0, 7.0, 8.0]); // a duplicate: ignored
/// for first in [1.0, 5.0, 9.0] {
///     assert_eq!(jb.pull(&mut out), PullResult::Played);
///     assert_eq!(out, [first, first + 1.0, first + 2.0, first + 3.0]);
/// }
/// assert_eq!(jb.duplicate_frames(), 4);
/// // Nothing left: a miss; the target stays until the audio comes back.
/// assert_eq!(jb.pull(&mut out), PullResult::Miss { played: 0, silent: 4 });
/// assert_eq!((jb.misses(), jb.target_frames()), (1, 4));
/// // It comes back in a burst (it was late, not lost): the target grows by a period.
/// for p in [12u64, 16, 20] {
///     jb.push(p, &[0.5; 4]);
/// }
/// assert_eq!(jb.pull(&mut out), PullResult::Played);
/// assert_eq!((jb.misses(), jb.target_frames()), (1, 8));
/// ```
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    channels: usize,
    capacity: u64,
    ring: Box<[f32]>,
    filled: Box<[bool]>,
    /// When each frame held arrived (monotonic ns; 0 when pushed without a time).
    arrivals: Box<[u64]>,
    state: State,
    /// The stream position of the first packet since construction or `reset`: `read` and
    /// `end` count from it (wrapping), so a stream may cross u64::MAX.
    origin: u64,
    /// Position of the next frame to read, from `origin`.
    read: u64,
    /// One past the newest position received, from `origin` (`read <= end <= read + capacity`).
    end: u64,
    target: u32,
    steady: u32,
    over: u32,
    low_water: u64,
    /// For k = 1..=[`SPARE_PERIODS`]: the least time, over the window, that the newest
    /// frame a pull would have needed, had the buffer held k periods less, had been
    /// waiting when it was needed (see `note_spare`), ns.
    spare_ns: [u64; SPARE_PERIODS],
    misses: u64,
    dropped_frames: u64,
    late_packets: u64,
    duplicate_frames: u64,
    /// The largest packet pushed so far, frames (what one arrival can add).
    largest_packet: u64,
    /// While rebuffering: the depth at the previous pull, and whether the depth has since
    /// risen by more than ordinary arrivals can bring between two pulls (a burst).
    rebuffer_depth: u64,
    rebuffer_burst: bool,
    /// Pulls so far; the marks below are the pull at which something last happened
    /// (`None`: never, or forgotten).
    pulls: u64,
    /// The buffer ran dry.
    dry_at: Option<u64>,
    /// For a reader that steers the depth itself ([`take`](Self::take)): frames it wanted
    /// past the newest frame since it last ran dry, the time already played as
    /// concealment, which is all a skip ahead of the stream may cover (`None`: the
    /// buffer's own policy reads it with `pull`, and rebuffers to its target instead).
    dry_frames: Option<u64>,
    /// The target grew.
    grew_at: Option<u64>,
    /// The steady rule dropped a period.
    dropped_at: Option<u64>,
    /// The steady window in `steady_pulls`: doubled (up to [`MAX_WINDOW_SCALE`]) each time
    /// a drop is followed by a miss within one window.
    window_scale: u32,
    /// The frames of the last pull that were silence for want of audio: from the first
    /// missing frame to one past the last (`None`: none missing).
    gap: Option<(u32, u32)>,
    /// The last pull's audio does not continue the pull before it (frames were dropped
    /// in between), and the same for the next pull.
    splice: bool,
    next_splice: bool,
    /// Frames the drift rule trimmed.
    trimmed: u64,
}

/// How many periods of drop the shrink margin is tracked for; a larger drop (a long
/// burst's leftovers) goes ahead when all of these leave the margin.
const SPARE_PERIODS: usize = 8;

/// The steady window grows to at most this many times `steady_pulls` (40 s at 5 s).
const MAX_WINDOW_SCALE: u32 = 8;

fn config_error(what: &'static str, value: u32, allowed: String) -> JitterError {
    JitterError::Config {
        what,
        value: u64::from(value),
        allowed,
    }
}

impl JitterBuffer {
    /// Builds the buffer, allocating its ring (main thread).
    ///
    /// # Errors
    /// [`JitterError::Config`] naming the setting, its value and what is allowed when:
    /// `channels` or `period_frames` is 0; the targets are not
    /// `period ≤ min ≤ initial ≤ max`; `slack_frames < period_frames`;
    /// `capacity_frames < max + slack + period` (or its samples overflow memory);
    /// `steady_pulls` or `drift_pulls` is 0.
    pub fn new(cfg: JitterConfig) -> Result<Self, JitterError> {
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
        let samples = samples.unwrap_or(0);
        Ok(JitterBuffer {
            cfg,
            channels: usize::from(cfg.channels),
            capacity: u64::from(cfg.capacity_frames),
            ring: vec![0.0; samples].into_boxed_slice(),
            filled: vec![false; cfg.capacity_frames as usize].into_boxed_slice(),
            arrivals: vec![0; cfg.capacity_frames as usize].into_boxed_slice(),
            state: State::Idle,
            origin: 0,
            read: 0,
            end: 0,
            target: cfg.initial_target_frames,
            steady: 0,
            over: 0,
            low_water: u64::MAX,
            spare_ns: [u64::MAX; SPARE_PERIODS],
            misses: 0,
            dropped_frames: 0,
            late_packets: 0,
            duplicate_frames: 0,
            largest_packet: 0,
            rebuffer_depth: 0,
            rebuffer_burst: false,
            pulls: 0,
            dry_at: None,
            dry_frames: None,
            grew_at: None,
            dropped_at: None,
            window_scale: 1,
            gap: None,
            splice: false,
            next_splice: false,
            trimmed: 0,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// Stores a packet of interleaved samples whose first frame is at stream `position`
    /// (RT thread; never allocates).
    ///
    /// Frames older than the read point are dropped (the packet counts once in
    /// [`late_packets`](Self::late_packets)); frames already held are ignored; when the
    /// packet reaches beyond the capacity the oldest frames are dropped to make room. A
    /// trailing partial frame is ignored. The first packet after construction or
    /// [`reset`](Self::reset) anchors the read point at `position`.
    pub fn push(&mut self, position: u64, samples: &[f32]) -> PushResult {
        self.push_at(position, samples, 0)
    }

    /// [`push`](Self::push) of a packet that arrived at `arrival_ns` (monotonic clock):
    /// what [`pull_at`](Self::pull_at) measures the shrink margin from.
    pub fn push_at(&mut self, position: u64, samples: &[f32], arrival_ns: u64) -> PushResult {
        let mut result = PushResult::default();
        let frames = (samples.len() / self.channels) as u64;
        if frames == 0 {
            return result;
        }
        if self.state == State::Idle {
            self.origin = position;
            self.read = 0;
            self.end = 0;
            self.state = State::Priming;
        }
        // Senders' positions wrap past u64::MAX: each is kept as its wrapping distance
        // from the first packet's, and one that falls before that is late.
        let position = position.wrapping_sub(self.origin);
        if position > i64::MAX as u64 {
            self.late_packets += 1;
            result.late = frames;
            return result;
        }
        if self.state == State::Rebuffering && self.end == self.read && position > self.read {
            // The sender skipped ahead while this buffer ran dry (its device's xrun moved
            // its stream on): the skipped span's time has passed here already, as the
            // rebuffering pulls' silence. Playing it again as a hole would be the same
            // loss twice, and the stream a span later for good. And this dry spell was
            // lost audio, not lateness: it does not count towards "dry again". For a
            // reader that steers the depth itself, only the time it already played dry
            // covers the span: the rest is a hole still ahead, concealed when the reader
            // gets there, so that a lost packet costs it no latency (jumping the whole
            // span would eat its cushion; `pull` rebuffers to its target instead).
            let span = position - self.read;
            result.skipped = self.dry_frames.map_or(span, |dry| span.min(dry));
            self.read += result.skipped;
            self.end = self.read;
            if let Some(dry) = &mut self.dry_frames {
                *dry = 0;
            }
            self.dry_at = None;
        }
        self.largest_packet = self.largest_packet.max(frames);
        let packet_end = position.saturating_add(frames);
        // Skip what is older than the read point.
        let first = position.max(self.read);
        if first > position {
            self.late_packets += 1;
            result.late = first.min(packet_end) - position;
        }
        if first >= packet_end {
            return result;
        }
        // Keep at most the newest `capacity` frames of the packet, then make room.
        let kept = first.max(packet_end.saturating_sub(self.capacity));
        result.evicted = kept - first;
        self.dropped_frames += kept - first;
        let first = kept;
        if packet_end > self.read.saturating_add(self.capacity) {
            result.evicted += self.discard(packet_end - self.capacity - self.read);
        }
        let ch = self.channels;
        // Contiguous runs of the ring, each copied whole unless it holds a duplicate.
        let mut pos = first;
        while pos < packet_end {
            let slot = (pos % self.capacity) as usize;
            let run = (packet_end - pos).min(self.capacity - slot as u64) as usize;
            let src = ((pos - position) as usize) * ch;
            let filled = &mut self.filled[slot..slot + run];
            let arrivals = &mut self.arrivals[slot..slot + run];
            let ring = &mut self.ring[slot * ch..(slot + run) * ch];
            let samples = &samples[src..src + run * ch];
            if filled.iter().any(|&f| f) {
                for (((f, at), to), from) in filled
                    .iter_mut()
                    .zip(arrivals.iter_mut())
                    .zip(ring.chunks_exact_mut(ch))
                    .zip(samples.chunks_exact(ch))
                {
                    if *f {
                        result.duplicate += 1;
                    } else {
                        to.copy_from_slice(from);
                        *f = true;
                        *at = arrival_ns;
                        result.stored += 1;
                    }
                }
            } else {
                ring.copy_from_slice(samples);
                filled.fill(true);
                arrivals.fill(arrival_ns);
                result.stored += run as u64;
            }
            pos += run as u64;
        }
        self.duplicate_frames += result.duplicate;
        self.end = self.end.max(packet_end);
        result
    }

    /// Fills `out` (one period, interleaved) for the speaker (RT thread; never allocates).
    ///
    /// Outputs silence while priming; received audio when the buffer holds a period;
    /// otherwise what it has plus silence, counting a miss (see the module documentation
    /// for the adaptation this drives). `out` is meant to be `period_frames × channels`
    /// samples; another length is served frame by frame all the same (a trailing partial
    /// frame is zeroed), while the target still moves in periods.
    pub fn pull(&mut self, out: &mut [f32]) -> PullResult {
        self.pull_at(out, u64::MAX)
    }

    /// [`pull`](Self::pull) at `now_ns` (monotonic clock, the clock of
    /// [`push_at`](Self::push_at)): a period of target or depth goes only when, for every
    /// pull of the steady window, the frame a period shallower buffer would have needed
    /// last had arrived at least `margin_ns` before the pull, and a stream starts only
    /// when the newest frame its first pull needs has (or when it waited one pull
    /// already). Whole-period depth alone cannot tell a packet that came half a period
    /// early from one that came a microsecond early, and playing onto the second trades a
    /// period of latency for a miss at the next scheduling hiccup (at a hub, at every peer
    /// at once).
    pub fn pull_at(&mut self, out: &mut [f32], now_ns: u64) -> PullResult {
        let ch = self.channels;
        let frames = (out.len() / ch) as u64;
        // Silence first: what is not copied below stays silent.
        out.fill(0.0);
        self.pulls += 1;
        self.splice = std::mem::take(&mut self.next_splice);
        self.gap = None;
        if self.state == State::Rebuffering && self.rebuffered_a_burst() {
            // The audio that ran out was late, not lost: grow the target (once per event).
            self.grow_target();
        }
        let target = u64::from(self.target);
        match self.state {
            State::Idle => return PullResult::Priming,
            State::Priming | State::Rebuffering if !self.may_start(target, frames, now_ns) => {
                if self.state == State::Priming {
                    return PullResult::Priming;
                }
                self.misses += 1;
                self.gap = Some((0, frames as u32));
                return PullResult::Miss {
                    played: 0,
                    silent: frames as u32,
                };
            }
            _ => self.state = State::Playing,
        }
        // Drift: not above target + slack for longer than `drift_pulls` pulls.
        let depth = self.depth_frames();
        if depth > target + u64::from(self.cfg.slack_frames) {
            self.over += 1;
            if self.over >= self.cfg.drift_pulls {
                let trimmed = self.discard(depth - target);
                self.trimmed += trimmed;
                self.splice |= trimmed > 0;
                self.over = 0;
            }
        } else {
            self.over = 0;
        }
        let depth = self.depth_frames();
        self.low_water = self.low_water.min(depth);
        self.note_spare(frames, now_ns);
        let played = self.copy_out(out, frames);
        // Consume what was there (never past the newest frame received).
        let consumed = frames.min(depth);
        self.read += consumed;
        let silent = frames as u32 - played;
        if silent > 0 {
            self.misses += 1;
            self.steady = 0;
            if self.within(self.dropped_at, self.cfg.steady_pulls) {
                // The period last dropped was needed after all: wait longer next time.
                self.window_scale = (self.window_scale * 2).min(MAX_WINDOW_SCALE);
                self.dropped_at = None;
            }
            self.forget_marks();
            if consumed < frames {
                // Ran dry: refill to the target. Whether it grows is decided by how the
                // audio comes back (see `rebuffered_a_burst`).
                self.state = State::Rebuffering;
                self.rebuffer_depth = self.depth_frames();
                self.rebuffer_burst = false;
                if self.within(self.dry_at, self.cfg.drift_pulls) {
                    // Dry again within `drift_pulls`: whatever the cause, the target is
                    // too small for this stream.
                    self.grow_target();
                }
                self.dry_at = Some(self.pulls);
            } else {
                // A hole inside received audio.
                self.grow_target();
            }
            return PullResult::Miss { played, silent };
        }
        self.steady += 1;
        if self.steady >= self.cfg.steady_pulls.saturating_mul(self.window_scale) {
            self.end_steady_window(frames);
        }
        PullResult::Played
    }

    /// Copies the frames from the read point on into `out` (up to `frames`, never past the
    /// newest frame received), clearing their flags; frames not received stay silent and
    /// make up [`gap`](Self::gap) with the frames beyond the newest. Returns the frames
    /// copied. The read point does not move.
    fn copy_out(&mut self, out: &mut [f32], frames: u64) -> u32 {
        let ch = self.channels;
        let mut played = 0u32;
        let mut gap: Option<(u32, u32)> = None;
        let mut missing = |i: u64, n: u64| {
            let (a, b) = (i as u32, (i + n) as u32);
            gap = Some(gap.map_or((a, b), |(s, _)| (s, b)));
        };
        let stop = self.read.saturating_add(frames).min(self.end);
        // Contiguous runs of the ring, each copied whole unless it has a hole.
        let mut pos = self.read;
        while pos < stop {
            let slot = (pos % self.capacity) as usize;
            let run = (stop - pos).min(self.capacity - slot as u64) as usize;
            let at = ((pos - self.read) as usize) * ch;
            let filled = &mut self.filled[slot..slot + run];
            let ring = &self.ring[slot * ch..(slot + run) * ch];
            let out = &mut out[at..at + run * ch];
            if filled.iter().all(|&f| f) {
                out.copy_from_slice(ring);
                filled.fill(false);
                played += run as u32;
            } else {
                for (i, ((f, from), to)) in filled
                    .iter_mut()
                    .zip(ring.chunks_exact(ch))
                    .zip(out.chunks_exact_mut(ch))
                    .enumerate()
                {
                    if *f {
                        to.copy_from_slice(from);
                        *f = false;
                        played += 1;
                    } else {
                        missing((at / ch + i) as u64, 1);
                    }
                }
            }
            pos += run as u64;
        }
        let got = stop.saturating_sub(self.read);
        if got < frames {
            missing(got, frames - got);
        }
        self.gap = gap;
        played
    }

    /// Reads the next frames into `out` for a reader that steers the depth itself (a
    /// client locked to the hub's clock: see `dsp::playout`), without any of the
    /// adaptation rules: no priming, trimming, growing or dropping. Copies from the read
    /// point up to `out`'s length or the newest frame received, whichever comes first, and
    /// moves the read point past them; holes are silent and reported by
    /// [`gap`](Self::gap) together with the frames not copied. Returns the frames read.
    /// A buffer read beyond its newest frame is marked dry, so that a sender that skips
    /// ahead meanwhile resumes further on, by at most the frames read dry: the time
    /// already concealed covers that much of the skipped span, and the rest stays a hole
    /// to conceal (reported in [`PushResult::skipped`]).
    ///
    /// Runs on: the RT audio thread. Must not: allocate, lock, block (any `out` length).
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::jitter::{JitterBuffer, JitterConfig};
    /// let mut jb = JitterBuffer::new(JitterConfig { channels: 1, ..JitterConfig::default() }).unwrap();
    /// jb.push(0, &[1.0, 2.0]);
    /// jb.push(3, &[4.0]);
    /// let mut out = [9.0f32; 6];
    /// assert_eq!(jb.take(&mut out), 4);
    /// assert_eq!(out, [1.0, 2.0, 0.0, 4.0, 0.0, 0.0]);
    /// assert_eq!(jb.gap(), Some(2..6)); // the hole, and what was not there yet
    /// ```
    pub fn take(&mut self, out: &mut [f32]) -> u64 {
        out.fill(0.0);
        self.splice = std::mem::take(&mut self.next_splice);
        let frames = (out.len() / self.channels) as u64;
        if self.state == State::Idle {
            self.gap = (frames > 0).then_some((0, frames as u32));
            return 0;
        }
        self.copy_out(out, frames);
        let got = frames.min(self.depth_frames());
        self.read += got;
        // Dry only when the reader wanted more than there was (it then conceals): a
        // stream that skips ahead meanwhile resumes at its new position. A buffer that was
        // merely emptied stays playing, so that a packet lost before the next one is a
        // hole to conceal, not a skip.
        let dry = self.dry_frames.get_or_insert(0);
        self.state = if got < frames {
            *dry += frames - got;
            State::Rebuffering
        } else {
            *dry = 0;
            State::Playing
        };
        got
    }

    /// Drops the oldest `n` frames held, for a reader that steers the depth itself (see
    /// [`take`](Self::take)); the next read is marked as [`spliced`](Self::spliced).
    /// Returns the received frames dropped (counted in
    /// [`dropped_frames`](Self::dropped_frames)).
    pub fn trim(&mut self, n: u64) -> u64 {
        let n = n.min(self.depth_frames());
        let dropped = self.discard(n);
        self.next_splice |= dropped > 0;
        dropped
    }

    /// The frames of the last pull or take that had no audio: from the first missing
    /// frame to one past the last (frames in between may be audio), `None` when none
    /// was missing. This is what a concealment fills.
    pub fn gap(&self) -> Option<std::ops::Range<usize>> {
        self.gap.map(|(a, b)| a as usize..b as usize)
    }

    /// Whether the last pull or take does not continue the audio before it: frames were
    /// dropped between the two (a trim, or a shrink of the target). A reader cross-fades
    /// such a join instead of playing the cut.
    pub fn spliced(&self) -> bool {
        self.splice
    }

    /// Whether a priming or rebuffering buffer may start playing at this pull: it holds
    /// the target, and the newest frame the pull needs has been waiting at least
    /// `margin_ns`. While packets keep their pace, that wait is the time every later pull
    /// will have to spare, so a thin one waits a pull more, which adds a period to it.
    fn may_start(&self, target: u64, frames: u64, now_ns: u64) -> bool {
        let depth = self.depth_frames();
        if depth < target {
            return false;
        }
        if depth >= target + u64::from(self.cfg.period_frames) {
            return true; // a period beyond the target (a burst, or it waited): no longer
        }
        self.waited_ns(frames.max(1) - 1, now_ns)
            .is_none_or(|w| w >= self.cfg.margin_ns)
    }

    /// How long the frame `offset` frames past the read point has been held at `now_ns`
    /// (`None`: not received).
    fn waited_ns(&self, offset: u64, now_ns: u64) -> Option<u64> {
        let pos = self.read.checked_add(offset)?;
        let slot = (pos % self.capacity) as usize;
        (pos < self.end && self.filled[slot]).then(|| now_ns.saturating_sub(self.arrivals[slot]))
    }

    /// A window of pulls without a miss ended: drop what its low-water mark shows was never
    /// needed (all whole periods above the target, else one period of the target).
    fn end_steady_window(&mut self, frames: u64) {
        let period = u64::from(self.cfg.period_frames);
        let extra = self
            .low_water
            .saturating_sub(u64::from(self.target).max(frames))
            / period;
        let shrink = extra == 0
            && self.low_water >= frames + period
            && self.target > self.cfg.min_target_frames;
        let drop = self.within_margin(if shrink { 1 } else { extra });
        if shrink && drop == 1 {
            self.target -= self.cfg.period_frames;
        }
        if drop > 0 {
            self.next_splice |= self.discard(drop * period) > 0;
            self.dropped_at = Some(self.pulls);
        }
        self.steady = 0;
        self.forget_marks();
    }

    /// Starts the window's marks (low water, spare time) afresh.
    fn forget_marks(&mut self) {
        self.low_water = u64::MAX;
        self.spare_ns = [u64::MAX; SPARE_PERIODS];
    }

    /// Before a pull of `frames` at `now_ns`: for each drop of k periods, how long the
    /// newest frame the pull would then need (`read + frames + k × period - 1`) has been
    /// waiting, into the window's least. Frames not there yet end the scan: the low-water
    /// mark already forbids those drops.
    fn note_spare(&mut self, frames: u64, now_ns: u64) {
        if self.cfg.margin_ns == 0 {
            return; // every drop leaves a margin of 0
        }
        let period = u64::from(self.cfg.period_frames);
        for (k, i) in (1..).zip(0..SPARE_PERIODS) {
            let Some(waited) = self.waited_ns(frames + k * period - 1, now_ns) else {
                break;
            };
            self.spare_ns[i] = self.spare_ns[i].min(waited);
        }
    }

    /// The largest drop, up to `periods`, that left every pull of the window at least
    /// `margin_ns` of spare time.
    fn within_margin(&self, periods: u64) -> u64 {
        let margin = self.cfg.margin_ns;
        let kept = self.spare_ns.iter().take_while(|&&s| s >= margin).count() as u64;
        if kept == SPARE_PERIODS as u64 {
            periods
        } else {
            periods.min(kept)
        }
    }

    /// Whether `mark` is fewer than `n` pulls ago.
    fn within(&self, mark: Option<u64>, n: u32) -> bool {
        mark.is_some_and(|at| self.pulls - at < u64::from(n))
    }

    /// One period more target, up to the maximum, unless it already grew within the last
    /// `drift_pulls` pulls (one disturbance, one period).
    fn grow_target(&mut self) {
        if self.within(self.grew_at, self.cfg.drift_pulls) {
            return;
        }
        self.grew_at = Some(self.pulls);
        self.target = (self.target + self.cfg.period_frames).min(self.cfg.max_target_frames);
    }

    /// While rebuffering, called once per pull: true the first time the depth has risen
    /// since the previous pull by more than ordinary arrivals bring (two periods, or one
    /// packet when packets are larger), i.e. audio held back arrived at once.
    fn rebuffered_a_burst(&mut self) -> bool {
        let depth = self.depth_frames();
        let rise = depth.saturating_sub(self.rebuffer_depth);
        self.rebuffer_depth = depth;
        let ordinary = (2 * u64::from(self.cfg.period_frames)).max(self.largest_packet);
        if self.rebuffer_burst || rise <= ordinary {
            return false;
        }
        self.rebuffer_burst = true;
        true
    }

    /// Drops everything held and waits for a new first packet (e.g. the sender restarted
    /// its stream); the target and the counters stay. RT-safe: clears the flags of the
    /// frames held, no allocation.
    pub fn reset(&mut self) {
        self.discard_quietly(self.end - self.read);
        self.state = State::Idle;
        if let Some(dry) = &mut self.dry_frames {
            *dry = 0;
        }
        self.steady = 0;
        self.over = 0;
        self.forget_marks();
    }

    /// Resets the miss counter (the design's rule: when speaker silence is detected or
    /// the aggregator input stops).
    pub fn reset_misses(&mut self) {
        self.misses = 0;
    }

    /// Frames between the read point and the newest frame received (holes included).
    pub fn depth_frames(&self) -> u64 {
        self.end - self.read
    }

    /// [`depth_frames`](Self::depth_frames) × channels: the
    /// `currentSpeakerBufferDepthInFloat32Samples` figure.
    pub fn depth_samples(&self) -> u64 {
        self.depth_frames() * self.channels as u64
    }

    /// [`depth_frames`](Self::depth_frames) as time at `rate_hz` frames per second, ms:
    /// the jitter-buffer part of `speakerScriptProcessorLatencyMS` (0.0 for a rate of 0).
    pub fn depth_ms(&self, rate_hz: u32) -> f64 {
        if rate_hz == 0 {
            return 0.0;
        }
        self.depth_frames() as f64 * 1_000.0 / f64::from(rate_hz)
    }

    /// The current target depth, frames.
    pub fn target_frames(&self) -> u32 {
        self.target
    }

    /// Whether the buffer is playing received audio (not idle, priming or rebuffering).
    pub fn is_playing(&self) -> bool {
        self.state == State::Playing
    }

    /// Pulls that lacked frames the speaker needed, since the last
    /// [`reset_misses`](Self::reset_misses): `speakerScriptProcessorIncomingBufferMisses`.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Received frames dropped without being played: evicted when full, trimmed for
    /// drift or when the target shrank.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// Packets that arrived (at least partly) after their time was read.
    pub fn late_packets(&self) -> u64 {
        self.late_packets
    }

    /// Received frames the drift rule trimmed (the sender's clock ran faster than the
    /// reader's), part of [`dropped_frames`](Self::dropped_frames).
    pub fn trimmed_frames(&self) -> u64 {
        self.trimmed
    }

    /// One past the newest stream position received (the sender's progress).
    pub fn end_position(&self) -> u64 {
        self.origin.wrapping_add(self.end)
    }

    /// Frames received twice (the second copy was ignored).
    pub fn duplicate_frames(&self) -> u64 {
        self.duplicate_frames
    }

    /// Advances the read point by `n` frames, counting the received frames dropped.
    fn discard(&mut self, n: u64) -> u64 {
        let dropped = self.discard_quietly(n);
        self.dropped_frames += dropped;
        dropped
    }

    /// Advances the read point by `n` frames (possibly past the newest frame received),
    /// clearing the flags of the frames passed; returns how many were filled. Touches at
    /// most the frames held, whatever `n`.
    fn discard_quietly(&mut self, n: u64) -> u64 {
        let held_end = self.end.min(self.read.saturating_add(n));
        let mut dropped = 0;
        for pos in self.read..held_end {
            let slot = (pos % self.capacity) as usize;
            if self.filled[slot] {
                self.filled[slot] = false;
                dropped += 1;
            }
        }
        self.read = self.read.saturating_add(n);
        self.end = self.end.max(self.read);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u32 = 4;

    fn cfg() -> JitterConfig {
        JitterConfig {
            channels: 2,
            period_frames: P,
            capacity_frames: 64,
            initial_target_frames: P,
            min_target_frames: P,
            max_target_frames: 4 * P,
            slack_frames: 2 * P,
            steady_pulls: 10,
            drift_pulls: 1,
            margin_ns: 0,
        }
    }

    /// A stereo packet whose frame at position `x` is (x, −x).
    fn packet(position: u64, frames: u64) -> Vec<f32> {
        (position..position + frames)
            .flat_map(|x| [x as f32, -(x as f32)])
            .collect()
    }

    fn pull(jb: &mut JitterBuffer) -> (PullResult, Vec<f32>) {
        let mut out = vec![9.0; (P * 2) as usize];
        let r = jb.pull(&mut out);
        (r, out)
    }

    /// Steady flow: push a period at `pos`, pull one; returns the next position.
    fn steady(jb: &mut JitterBuffer, mut pos: u64, pulls: u32) -> u64 {
        for _ in 0..pulls {
            jb.push(pos, &packet(pos, P.into()));
            pos += u64::from(P);
            let (r, out) = pull(jb);
            assert_eq!(r, PullResult::Played, "at {pos}");
            // A contiguous period of the stream.
            assert_eq!(out, packet(out[0] as u64, P.into()), "at {pos}");
        }
        pos
    }

    #[test]
    fn steady_flow_has_no_misses_after_priming() {
        // (No shrinking within this test: that is tested below.)
        let mut jb = JitterBuffer::new(JitterConfig {
            initial_target_frames: 2 * P,
            steady_pulls: 1_000,
            ..cfg()
        })
        .unwrap();
        assert_eq!(pull(&mut jb), (PullResult::Priming, vec![0.0; 8]));
        jb.push(0, &packet(0, 4));
        assert_eq!(pull(&mut jb).0, PullResult::Priming);
        jb.push(4, &packet(4, 4));
        // Primed: audio in order, from position 0.
        let mut expect = 0u64;
        for i in 0..100u64 {
            let (r, out) = pull(&mut jb);
            assert_eq!(r, PullResult::Played, "pull {i}");
            assert_eq!(out, packet(expect, 4));
            expect += 4;
            jb.push(8 + 4 * i, &packet(8 + 4 * i, 4));
        }
        assert_eq!(jb.misses(), 0);
        assert_eq!(jb.dropped_frames(), 0);
        assert_eq!(jb.depth_frames(), 8);
        assert_eq!(jb.depth_samples(), 16);
        assert_eq!(jb.depth_ms(8_000), 1.0);
        assert_eq!(jb.depth_ms(0), 0.0);
    }

    /// A buffer two periods deep whose every packet arrives `early` ns before the pull that
    /// would need it if the buffer were a period shallower: whole periods say a period can
    /// go whatever `early` is; the margin in time decides. Both ways a period goes: the
    /// target shrinking (target 2P), and depth standing above the target dropped (target
    /// P, as a late packet leaves it).
    #[test]
    fn a_shrink_or_drop_must_leave_the_margin_in_time() {
        let p = u64::from(P);
        for target in [2 * P, P] {
            for (early, margin, drops) in [(100, 500, false), (600, 500, true), (100, 0, true)] {
                let mut jb = JitterBuffer::new(JitterConfig {
                    initial_target_frames: target,
                    margin_ns: margin,
                    ..cfg()
                })
                .unwrap();
                // Pull k at t(k) plays packet k; packet k + 1 arrived `early` before it.
                let t = |k: u64| 1_000_000 + 1_000 * k;
                jb.push_at(0, &packet(0, p), t(0) - 1_000);
                jb.push_at(p, &packet(p, p), t(0) - early);
                let mut out = vec![0.0; 2 * P as usize];
                for k in 0..30 {
                    let r = jb.pull_at(&mut out, t(k));
                    assert_eq!(r, PullResult::Played, "{early} ns, pull {k}");
                    let next = (k + 2) * p;
                    jb.push_at(next, &packet(next, p), t(k + 1) - early);
                }
                let case = format!("target {target}, {early} ns early, margin {margin}");
                assert_eq!(jb.dropped_frames(), if drops { p } else { 0 }, "{case}");
                assert_eq!(jb.target_frames(), if drops { P } else { target }, "{case}");
                assert_eq!(jb.misses(), 0, "{case}");
            }
        }
    }

    /// A stream whose packets arrive `early` ns before the pull that needs them, on a
    /// clock of 1000 ns periods. With less than the margin it starts one pull later (a
    /// period deeper, so every later pull has a period more to spare), never later; and
    /// so does a restart after running dry.
    #[test]
    fn a_stream_starts_and_restarts_only_with_the_margin_in_time() {
        let p = u64::from(P);
        let t = |k: u64| 1_000_000 + 1_000 * k;
        let mut out = vec![0.0; 2 * P as usize];
        let buffer = |margin| {
            let c = JitterConfig {
                margin_ns: margin,
                steady_pulls: 1_000,
                ..cfg()
            };
            JitterBuffer::new(c).unwrap()
        };
        for (early, margin) in [(100, 500), (600, 500), (100, 0)] {
            let waits = early < margin;
            let case = format!("{early} ns early, margin {margin}");
            let mut jb = buffer(margin);
            jb.push_at(0, &packet(0, p), t(0) - early);
            let r = jb.pull_at(&mut out, t(0));
            assert_eq!(r == PullResult::Priming, waits, "start, {case}");
            // Packet k before pull k; what pull k plays shows the depth it started at.
            for k in 1..20 {
                jb.push_at(k * p, &packet(k * p, p), t(k) - early);
                assert_eq!(jb.pull_at(&mut out, t(k)), PullResult::Played, "{case}");
                let played = if waits { k - 1 } else { k };
                assert_eq!(out, packet(played * p, p), "pull {k}, {case}");
            }
            assert_eq!(jb.misses(), 0, "{case}");
        }
        // Started 600 ns early; packet 10 is lost and the sender resumes 100 ns early.
        for (margin, waits) in [(500, true), (0, false)] {
            let mut jb = buffer(margin);
            for k in 0..10 {
                jb.push_at(k * p, &packet(k * p, p), t(k) - 600);
                assert_eq!(jb.pull_at(&mut out, t(k)), PullResult::Played);
            }
            let dry = jb.pull_at(&mut out, t(10));
            assert!(matches!(dry, PullResult::Miss { .. }), "margin {margin}");
            jb.push_at(11 * p, &packet(11 * p, p), t(11) - 100);
            let r = jb.pull_at(&mut out, t(11));
            assert_eq!(
                matches!(r, PullResult::Miss { .. }),
                waits,
                "margin {margin}"
            );
            jb.push_at(12 * p, &packet(12 * p, p), t(12) - 100);
            assert_eq!(jb.pull_at(&mut out, t(12)), PullResult::Played);
            assert_eq!(out, packet(if waits { 11 } else { 12 } * p, p));
            assert_eq!(jb.misses(), if waits { 2 } else { 1 }, "margin {margin}");
        }
        // Arrival times that never look early (another clock): one pull late, not never.
        let mut jb = buffer(500);
        jb.push_at(0, &packet(0, p), t(5));
        assert_eq!(jb.pull_at(&mut out, t(0)), PullResult::Priming);
        jb.push_at(p, &packet(p, p), t(6));
        assert_eq!(jb.pull_at(&mut out, t(1)), PullResult::Played);
        assert_eq!(out, packet(0, p));
    }

    #[test]
    fn a_stall_causes_misses_and_one_target_growth_then_steady_flow_shrinks_it() {
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        let pos = steady(&mut jb, 0, 20);
        assert_eq!((jb.misses(), jb.target_frames()), (0, P));
        // Stall: three pulls without packets.
        assert_eq!(
            pull(&mut jb),
            (
                PullResult::Miss {
                    played: 0,
                    silent: P
                },
                vec![0.0; 8]
            )
        );
        // Not grown yet: nothing says yet whether the audio is late or lost.
        assert_eq!(jb.target_frames(), P);
        assert_eq!(
            pull(&mut jb).0,
            PullResult::Miss {
                played: 0,
                silent: P
            }
        );
        assert_eq!(
            pull(&mut jb).0,
            PullResult::Miss {
                played: 0,
                silent: P
            }
        );
        assert_eq!(jb.misses(), 3);
        assert_eq!(jb.target_frames(), P);
        // The backlog arrives at once (TCP): the audio was late, so the target grows, once
        // for the event; playing resumes at the stream position.
        for k in 0..3 {
            let p = pos + k * u64::from(P);
            jb.push(p, &packet(p, P.into()));
        }
        let (r, out) = pull(&mut jb);
        assert_eq!(r, PullResult::Played);
        assert_eq!(out, packet(pos, 4));
        assert_eq!(jb.misses(), 3);
        assert_eq!(jb.target_frames(), 2 * P);
        let pos = pos + 3 * u64::from(P);
        // Steady flow at depth 3P before each pull, a period above the 2P target (the
        // backlog). After `steady_pulls` clean pulls (the resumed pull plus 8 more) that
        // period is dropped; the target stays.
        let dropped = jb.dropped_frames();
        let pos = steady(&mut jb, pos, 8);
        assert_eq!(jb.dropped_frames(), dropped);
        let pos = steady(&mut jb, pos, 1);
        assert_eq!(jb.target_frames(), 2 * P);
        assert_eq!(jb.dropped_frames(), dropped + u64::from(P));
        assert_eq!(jb.depth_frames(), u64::from(P));
        // Now at depth 2P before each pull, one period of the target was never used: after
        // the next window the target shrinks back and a period is dropped.
        let pos = steady(&mut jb, pos, cfg().steady_pulls - 1);
        assert_eq!(jb.target_frames(), 2 * P);
        let pos = steady(&mut jb, pos, 1);
        assert_eq!(jb.target_frames(), P);
        assert_eq!(jb.dropped_frames(), dropped + 2 * u64::from(P));
        assert_eq!(jb.depth_frames(), 0);
        assert_eq!(jb.misses(), 3);
        // It does not go below the minimum.
        let _ = steady(&mut jb, pos, 50);
        assert_eq!(jb.target_frames(), P);
        jb.reset_misses();
        assert_eq!(jb.misses(), 0);
    }

    /// Feeds one period per pull until it plays, starves it until it misses, then delivers
    /// the audio held back at once (three periods, as TCP delivers a backlog) and pulls.
    /// Returns the next position.
    fn late_event(jb: &mut JitterBuffer, mut pos: u64) -> u64 {
        loop {
            jb.push(pos, &packet(pos, P.into()));
            pos += u64::from(P);
            if pull(jb).0 == PullResult::Played {
                break;
            }
        }
        while pull(jb).0 == PullResult::Played {}
        for _ in 0..3 {
            jb.push(pos, &packet(pos, P.into()));
            pos += u64::from(P);
        }
        let _ = pull(jb);
        pos
    }

    /// One packet comes just after the pull that needed it: one miss, then it and the next
    /// arrive together and the stream resumes a period later than before.
    fn one_late_packet(jb: &mut JitterBuffer, mut pos: u64) -> u64 {
        assert!(matches!(pull(jb).0, PullResult::Miss { .. }));
        for _ in 0..2 {
            jb.push(pos, &packet(pos, P.into()));
            pos += u64::from(P);
        }
        assert_eq!(pull(jb).0, PullResult::Played);
        pos
    }

    #[test]
    fn a_late_packet_at_the_minimum_target_costs_latency_only_until_the_next_window() {
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        let mut pos = steady(&mut jb, 0, 20);
        assert_eq!(jb.target_frames(), P);
        pos = one_late_packet(&mut jb, pos);
        assert_eq!((jb.target_frames(), jb.depth_frames()), (P, u64::from(P)));
        // The depth before each pull is now 2P with a P target (within the slack). After
        // `steady_pulls` clean pulls that period, never used, is dropped.
        let dropped = jb.dropped_frames();
        pos = steady(&mut jb, pos, cfg().steady_pulls - 2);
        assert_eq!(jb.dropped_frames(), dropped);
        let _ = steady(&mut jb, pos, 1);
        assert_eq!(jb.dropped_frames(), dropped + u64::from(P));
        assert_eq!((jb.target_frames(), jb.depth_frames()), (P, 0));
        assert_eq!(jb.misses(), 1);
    }

    #[test]
    fn a_sender_that_skips_ahead_while_dry_resumes_at_the_target() {
        // The sender's device lost 3 periods (an xrun): nothing comes for 3 pulls, then its
        // stream resumes 3 periods further on, at the ordinary rate.
        let (mut jb, mut pos) = playing_two_periods_deep(cfg().drift_pulls, 20);
        let misses = jb.misses();
        for _ in 0..3 {
            let _ = pull(&mut jb);
        }
        pos += 3 * u64::from(P);
        let mut silent = 0;
        loop {
            jb.push(pos, &packet(pos, P.into()));
            pos += u64::from(P);
            match pull(&mut jb) {
                (PullResult::Played, out) => {
                    // Audio from the new position on, not a hole's silence.
                    assert_eq!(out, packet(pos - 2 * u64::from(P), P.into()));
                    break;
                }
                _ => silent += 1,
            }
        }
        assert_eq!(
            jb.misses(),
            misses + 2 + silent,
            "2 dry pulls, then the refill"
        );
        assert!(silent <= 1, "{silent} pulls refilling");
        // Back at the target's depth, not 3 periods above it.
        let _ = steady(&mut jb, pos, 5);
        assert_eq!(jb.depth_frames(), u64::from(P));
        assert_eq!(jb.target_frames(), 2 * P);

        // Such slips every few pulls, well within `drift_pulls`: lost audio each time,
        // never lateness, so the target stays.
        let (mut jb, mut pos) = playing_two_periods_deep(1_000, 20);
        for _ in 0..10 {
            for _ in 0..3 {
                let _ = pull(&mut jb);
            }
            pos += 2 * u64::from(P);
            while pull(&mut jb).0 != PullResult::Played {
                jb.push(pos, &packet(pos, P.into()));
                pos += u64::from(P);
            }
            pos = steady(&mut jb, pos, 3);
        }
        assert_eq!(jb.target_frames(), 2 * P);
    }

    #[test]
    fn whole_periods_above_the_target_are_dropped_at_once() {
        // Three periods more than the target arrive at once and stay within the slack
        // (the reader's device skipped them, say): after one clean window all three go.
        let mut jb = JitterBuffer::new(JitterConfig {
            slack_frames: 4 * P,
            ..cfg()
        })
        .unwrap();
        let mut pos = steady(&mut jb, 0, cfg().steady_pulls);
        for _ in 0..3 {
            jb.push(pos, &packet(pos, P.into()));
            pos += u64::from(P);
        }
        let dropped = jb.dropped_frames();
        pos = steady(&mut jb, pos, cfg().steady_pulls);
        assert_eq!(jb.dropped_frames(), dropped + 3 * u64::from(P));
        assert_eq!((jb.target_frames(), jb.depth_frames()), (P, 0));
        let _ = steady(&mut jb, pos, cfg().steady_pulls);
        assert_eq!(jb.dropped_frames(), dropped + 3 * u64::from(P));
        assert_eq!(jb.misses(), 0);
    }

    #[test]
    fn a_drop_followed_by_a_miss_doubles_the_window() {
        let w = cfg().steady_pulls;
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        let mut pos = steady(&mut jb, 0, 20);
        // A late packet leaves an extra period: 1 miss.
        pos = one_late_packet(&mut jb, pos);
        // One window later the extra period goes; the same lateness right after costs a
        // miss again.
        let dropped = jb.dropped_frames();
        pos = steady(&mut jb, pos, w - 1);
        assert_eq!(jb.dropped_frames(), dropped + u64::from(P));
        pos = steady(&mut jb, pos, 2);
        pos = one_late_packet(&mut jb, pos);
        assert_eq!(jb.misses(), 2);
        // So the extra period it left is kept twice as long: not after one window...
        pos = steady(&mut jb, pos, w);
        assert_eq!(jb.dropped_frames(), dropped + u64::from(P));
        // ...but after two.
        let _ = steady(&mut jb, pos, w);
        assert_eq!(jb.dropped_frames(), dropped + 2 * u64::from(P));
    }

    #[test]
    fn a_cluster_of_stalls_grows_the_target_once() {
        // Five late events within `drift_pulls` (a host that stalled again and again for a
        // fraction of a second): one period more, not five.
        let drift_pulls = 100;
        let mut jb = JitterBuffer::new(JitterConfig {
            drift_pulls,
            steady_pulls: 1_000,
            ..cfg()
        })
        .unwrap();
        let mut pos = 0;
        let misses = jb.misses();
        for _ in 0..5 {
            pos = late_event(&mut jb, pos);
        }
        assert!(jb.misses() >= misses + 5, "each stall was a miss");
        assert_eq!(jb.target_frames(), 2 * P);
        // Once `drift_pulls` have passed, the next stall grows it again.
        pos = steady(&mut jb, pos, drift_pulls);
        let _ = late_event(&mut jb, pos);
        assert_eq!(jb.target_frames(), 3 * P);
    }

    #[test]
    fn target_grows_a_period_per_late_event_up_to_the_maximum() {
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        let mut pos = 0;
        for event in 1..=5 {
            pos = late_event(&mut jb, pos);
            assert_eq!(jb.target_frames(), (P + event * P).min(4 * P), "{event}");
        }
    }

    /// A buffer with a 2-period target, playing a steady flow after `pulls` pulls; and the
    /// next position.
    fn playing_two_periods_deep(drift_pulls: u32, pulls: u32) -> (JitterBuffer, u64) {
        let mut jb = JitterBuffer::new(JitterConfig {
            initial_target_frames: 2 * P,
            steady_pulls: 1_000,
            drift_pulls,
            ..cfg()
        })
        .unwrap();
        jb.push(0, &packet(0, P.into()));
        let _ = pull(&mut jb);
        let pos = steady(&mut jb, u64::from(P), pulls);
        (jb, pos)
    }

    #[test]
    fn lost_audio_is_silence_without_growth() {
        // The sender loses time (an xrun or a server that skipped cycles): packets stop,
        // then resume one per pull with no backlog. Every period it lost is one period of
        // silence here, and the latency stays at the target.
        let (mut jb, mut pos) = playing_two_periods_deep(cfg().drift_pulls, 20);
        for slip in 1..=5u64 {
            // The buffer held 2 periods: the first lost one is absorbed, the second runs
            // it dry and it refills to the target.
            for _ in 0..2 {
                let _ = pull(&mut jb);
            }
            let misses = jb.misses();
            let mut silent = 0;
            loop {
                jb.push(pos, &packet(pos, P.into()));
                pos += u64::from(P);
                match pull(&mut jb).0 {
                    PullResult::Played => break,
                    _ => silent += 1,
                }
            }
            assert_eq!(jb.target_frames(), 2 * P, "slip {slip}");
            assert_eq!(jb.misses(), misses + silent, "slip {slip}");
            assert!(silent <= 2, "slip {slip}: {silent} silent pulls");
            pos = steady(&mut jb, pos, 5);
            assert_eq!(jb.depth_frames(), u64::from(P), "slip {slip}");
        }

        // Running dry again within `drift_pulls` pulls grows it, whatever the cause.
        let (mut jb, mut pos) = playing_two_periods_deep(20, 30);
        for expect in [2 * P, 3 * P] {
            for _ in 0..2 {
                let _ = pull(&mut jb);
            }
            while pull(&mut jb).0 != PullResult::Played {
                jb.push(pos, &packet(pos, P.into()));
                pos += u64::from(P);
            }
            assert_eq!(jb.target_frames(), expect);
            pos = steady(&mut jb, pos, 3);
        }
    }

    #[test]
    fn a_capped_target_grows_only_to_the_cap() {
        // 8 ms at 1 kHz: 8 frames, two periods of 4 (the built-in maximum is 4 periods).
        let capped = cfg().capped(Some(8), 1_000);
        assert_eq!(capped.max_target_frames, 2 * P);
        let mut jb = JitterBuffer::new(capped).unwrap();
        let mut pos = 0;
        for event in 1..=4 {
            pos = late_event(&mut jb, pos);
            assert_eq!(jb.target_frames(), 2 * P, "{event}");
        }
        // A cap below a period is one period, and the start comes down to it.
        let one = JitterConfig {
            initial_target_frames: 3 * P,
            min_target_frames: 2 * P,
            ..cfg()
        }
        .capped(Some(1), 1_000);
        assert_eq!(
            (
                one.max_target_frames,
                one.initial_target_frames,
                one.min_target_frames
            ),
            (P, P, P)
        );
        assert!(JitterBuffer::new(one).is_ok());
    }

    #[test]
    fn jittery_flow_keeps_its_target() {
        // Packets arrive in pairs every other pull: the low-water mark is exactly one
        // period, so the grown target is needed and does not shrink.
        let mut jb = JitterBuffer::new(JitterConfig {
            initial_target_frames: 2 * P,
            ..cfg()
        })
        .unwrap();
        let mut pos = 0;
        for i in 0..200 {
            if i % 2 == 0 {
                for _ in 0..2 {
                    jb.push(pos, &packet(pos, P.into()));
                    pos += u64::from(P);
                }
            }
            assert_eq!(pull(&mut jb).0, PullResult::Played, "{i}");
        }
        assert_eq!(jb.misses(), 0);
        assert_eq!(jb.target_frames(), 2 * P);
    }

    #[test]
    fn reordered_duplicate_and_late_packets() {
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        // Reordered: 4 arrives before 0; duplicates of 4 are ignored.
        jb.push(0, &packet(0, 4));
        jb.push(8, &packet(8, 4));
        jb.push(4, &packet(4, 4));
        let dup = jb.push(4, &[7.0; 8]);
        assert_eq!(dup.duplicate, 4);
        assert_eq!(dup.stored, 0);
        assert_eq!(jb.duplicate_frames(), 4);
        for want in [0, 4, 8] {
            let (r, out) = pull(&mut jb);
            assert_eq!(r, PullResult::Played);
            assert_eq!(out, packet(want, 4));
        }
        // Late: position 4 was already read; dropped and counted, nothing changes.
        let late = jb.push(4, &packet(4, 4));
        assert_eq!((late.late, late.stored), (4, 0));
        assert_eq!(jb.late_packets(), 1);
        // Partly late: the in-time tail is kept.
        let part = jb.push(10, &packet(10, 4));
        assert_eq!((part.late, part.stored), (2, 2));
        assert_eq!(jb.late_packets(), 2);
        jb.push(14, &packet(14, 2));
        let (r, out) = pull(&mut jb);
        assert_eq!(r, PullResult::Played);
        assert_eq!(out, packet(12, 4));
        assert_eq!(jb.misses(), 0);
    }

    #[test]
    fn a_taking_reader_skips_only_the_span_it_already_played_dry() {
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        jb.push(0, &packet(0, 8));
        let mut out = vec![0.0; 2 * 8];
        assert_eq!(jb.take(&mut out), 8);
        // Dry by 3 frames, then the stream resumes 8 frames on (a lost packet).
        let mut out = vec![0.0; 2 * 3];
        assert_eq!(jb.take(&mut out), 0);
        let r = jb.push(16, &packet(16, 4));
        assert_eq!(r.skipped, 3, "{r:?}");
        // The 5 lost frames the dry reads did not cover are a hole ahead, then the audio.
        let mut out = vec![9.0; 2 * 9];
        assert_eq!(jb.take(&mut out), 9);
        assert_eq!(jb.gap(), Some(0..5));
        assert_eq!(out[10..], packet(16, 4)[..]);
    }

    #[test]
    fn packets_and_holes_across_the_ring_wrap() {
        // Capacity 64: positions 60..72 straddle the ring's end.
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        jb.push(60, &packet(60, 4));
        jb.push(66, &packet(66, 2));
        // 62..68 overlaps both sides of the hole at 64..66, across the wrap.
        let r = jb.push(62, &packet(62, 6));
        assert_eq!((r.stored, r.duplicate), (2, 4));
        assert_eq!(pull(&mut jb), (PullResult::Played, packet(60, 4)));
        assert_eq!(pull(&mut jb), (PullResult::Played, packet(64, 4)));
        // A hole at 68..70, then 70..74: the pull plays the hole as silence.
        jb.push(70, &packet(70, 4));
        let (_, out) = pull(&mut jb);
        assert_eq!(out, [&[0.0; 4][..], &packet(70, 2)].concat());
        assert_eq!(pull(&mut jb).1[..4], packet(72, 2)[..]);
    }

    #[test]
    fn a_gap_is_silence_and_a_miss_only_when_read() {
        let mut jb = JitterBuffer::new(JitterConfig {
            initial_target_frames: 3 * P,
            ..cfg()
        })
        .unwrap();
        // Position 4..8 never arrives.
        jb.push(0, &packet(0, 4));
        jb.push(8, &packet(8, 4));
        assert_eq!(jb.depth_frames(), 12);
        assert_eq!(pull(&mut jb).0, PullResult::Played);
        assert_eq!(jb.misses(), 0);
        let (r, out) = pull(&mut jb);
        assert_eq!(
            r,
            PullResult::Miss {
                played: 0,
                silent: 4
            }
        );
        assert_eq!(out, vec![0.0; 8]);
        assert_eq!(jb.misses(), 1);
        // The gap was passed over, not waited for: the next period is the audio after it.
        let (r, out) = pull(&mut jb);
        assert_eq!(r, PullResult::Played);
        assert_eq!(out, packet(8, 4));

        // A gap that a drift trim discards is never needed: no miss.
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        jb.push(0, &packet(0, 4));
        jb.push(8, &packet(8, 20)); // 4..8 missing, depth 28 > target 4 + slack 8
        let (r, out) = pull(&mut jb);
        assert_eq!(r, PullResult::Played);
        assert_eq!(out, packet(24, 4));
        assert_eq!(jb.misses(), 0);
        assert_eq!(jb.dropped_frames(), 20);
    }

    #[test]
    fn underrun_plays_what_it_has_then_silence() {
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        jb.push(0, &packet(0, 4));
        pull(&mut jb);
        jb.push(4, &packet(4, 2));
        let (r, out) = pull(&mut jb);
        assert_eq!(
            r,
            PullResult::Miss {
                played: 2,
                silent: 2
            }
        );
        assert_eq!(out, [4.0, -4.0, 5.0, -5.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(jb.depth_frames(), 0);
        assert!(!jb.is_playing());
        // Later frames continue where the stream is (position 6), after rebuffering.
        jb.push(6, &packet(6, 8));
        let (r, out) = pull(&mut jb);
        assert_eq!(r, PullResult::Played);
        assert_eq!(out, packet(6, 4));
    }

    #[test]
    fn fast_sender_drift_is_bounded() {
        // The sender delivers 5 frames per 4-frame pull (25 % fast, an extreme clock).
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        let bound = u64::from(jb.target_frames() + jb.config().slack_frames);
        let mut pos = 0;
        let mut max_depth = 0;
        for _ in 0..1_000 {
            jb.push(pos, &packet(pos, 5));
            pos += 5;
            assert_eq!(pull(&mut jb).0, PullResult::Played);
            max_depth = max_depth.max(jb.depth_frames());
            assert!(jb.depth_frames() <= bound, "{}", jb.depth_frames());
        }
        assert_eq!(jb.misses(), 0);
        assert_eq!(jb.target_frames(), P);
        // 5000 frames in, 1000 pulls × 4 out (minus the first priming fill): the rest was
        // trimmed, not accumulated.
        assert_eq!(jb.dropped_frames() + 4_000 + jb.depth_frames(), 5_000);
        assert!(
            max_depth > u64::from(P),
            "the drift never built up: {max_depth}"
        );
    }

    #[test]
    fn a_burst_after_a_stall_is_kept_while_drift_is_trimmed() {
        let mut jb = JitterBuffer::new(JitterConfig {
            drift_pulls: 4,
            ..cfg()
        })
        .unwrap();
        let mut pos = steady(&mut jb, 0, 20);
        // A stall, then its packets all at once: depth target + 3 periods, above the
        // 2-period slack for 3 pulls only; it drains by itself and nothing is dropped.
        for _ in 0..3 {
            jb.push(pos, &packet(pos, u64::from(P)));
            pos += u64::from(P);
        }
        for _ in 0..3 {
            jb.push(pos, &packet(pos, u64::from(P)));
            pos += u64::from(P);
            assert_eq!(pull(&mut jb).0, PullResult::Played);
        }
        for _ in 0..3 {
            assert_eq!(pull(&mut jb).0, PullResult::Played);
        }
        assert_eq!(jb.dropped_frames(), 0);
        // A floor that stays high (a fast sender): trimmed after 4 pulls above the slack.
        for _ in 0..4 {
            jb.push(pos, &packet(pos, u64::from(P)));
            pos += u64::from(P);
        }
        for _ in 0..4 {
            jb.push(pos, &packet(pos, u64::from(P)));
            pos += u64::from(P);
            assert_eq!(pull(&mut jb).0, PullResult::Played);
        }
        assert!(jb.dropped_frames() > 0);
        assert!(jb.depth_frames() <= u64::from(jb.target_frames()));
    }

    #[test]
    fn full_buffer_drops_the_oldest() {
        let mut jb = JitterBuffer::new(JitterConfig {
            initial_target_frames: 4 * P,
            ..cfg()
        })
        .unwrap();
        // 64 frames fit; 80 arrive without a pull.
        for k in 0..20 {
            let r = jb.push(4 * k, &packet(4 * k, 4));
            assert_eq!(r.evicted, if k >= 16 { 4 } else { 0 }, "{k}");
        }
        assert_eq!(jb.depth_frames(), 64);
        assert_eq!(jb.dropped_frames(), 16);
        // A packet larger than the ring keeps its newest frames.
        let r = jb.push(80, &packet(80, 70));
        assert_eq!((r.stored, r.evicted), (64, 70));
        assert_eq!(jb.dropped_frames(), 86);
        assert_eq!(jb.depth_frames(), 64);
        // A far jump: everything older goes, in bounded work.
        let r = jb.push(1 << 40, &packet(1 << 40, 4));
        assert_eq!(r.evicted, 64);
        assert_eq!(jb.depth_frames(), 64); // mostly a hole before the new packet
        // Drift trim on the next pull: depth > 16 + 8, back to the target (16 frames),
        // and those 16 are the newest: 12 frames of hole, then the packet.
        let (r, _) = pull(&mut jb);
        assert_eq!(
            r,
            PullResult::Miss {
                played: 0,
                silent: 4
            }
        );
        jb.reset();
        assert_eq!(jb.depth_frames(), 0);
        assert_eq!(pull(&mut jb).0, PullResult::Priming);
    }

    #[test]
    fn odd_input_does_not_panic() {
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        // A trailing partial frame is ignored; an empty packet does nothing.
        assert_eq!(jb.push(0, &[1.0, 2.0, 3.0]).stored, 1);
        assert_eq!(jb.push(5, &[]).stored, 0);
        jb.push(u64::MAX - 1, &[1.0; 8]);
        let mut odd = [5.0f32; 3];
        jb.pull(&mut odd);
        assert_eq!(odd[2], 0.0);
        jb.pull(&mut []);
        for _ in 0..100 {
            jb.push(u64::MAX - 1, &[1.0; 8]);
            jb.pull(&mut [0.0; 8]);
        }
    }

    #[test]
    fn constructor_errors_name_the_setting() {
        let cases: [(JitterConfig, &str); 8] = [
            (
                JitterConfig {
                    channels: 0,
                    ..cfg()
                },
                "channels 0",
            ),
            (
                JitterConfig {
                    period_frames: 0,
                    ..cfg()
                },
                "period_frames 0",
            ),
            (
                JitterConfig {
                    min_target_frames: 2,
                    ..cfg()
                },
                "min_target_frames 2",
            ),
            (
                JitterConfig {
                    max_target_frames: 3 * P,
                    initial_target_frames: 4 * P,
                    ..cfg()
                },
                "initial_target_frames 16",
            ),
            (
                JitterConfig {
                    slack_frames: 1,
                    ..cfg()
                },
                "slack_frames 1",
            ),
            (
                JitterConfig {
                    capacity_frames: 27,
                    ..cfg()
                },
                "capacity_frames 27 is not allowed (allowed: at least max_target_frames + slack_frames + period_frames (28)",
            ),
            (
                JitterConfig {
                    steady_pulls: 0,
                    ..cfg()
                },
                "steady_pulls 0",
            ),
            (
                JitterConfig {
                    drift_pulls: 0,
                    ..cfg()
                },
                "drift_pulls 0",
            ),
        ];
        for (c, needle) in cases {
            let e = JitterBuffer::new(c).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        assert!(JitterBuffer::new(JitterConfig::default()).is_ok());
    }
}
