//! How a buffer read with [`pull`](JitterBuffer::pull) chooses its depth: the policy of
//! the hub's inputs (RT mixer thread, once per period and input: `hub::mixer_thread`).
//!
//! Design: the hub mixes every input at its own clock and never resamples one, so that
//! its cost per peer does not grow. An input's latency can therefore move here only in
//! whole frames: by waiting (priming, rebuffering) to go deeper and by dropping frames
//! to come back, each drop a splice and each wait a miss (concealed, still a gap) in
//! every mix the input is part of. A client's playout (`dsp::playout`) is in the other
//! position: it reads the same ring with [`take`](JitterBuffer::take), measures each
//! packet's lateness against the hub's clock as it recovers it, and `playout/policy.rs`
//! sets the target from the largest lateness of the last 32 s, raising it at once and
//! lowering it only when that lateness ages out, while the resampler plays a little
//! faster or slower to reach it without a drop. The hub measures the same lateness of
//! its inputs (`hub::mixer_thread::InputBuffer`) and sets it as this buffer's *floor*
//! ([`set_floor`](JitterBuffer::set_floor)): the target is the larger of the floor and
//! what the rules below keep, so the probing never gives back depth that a stall of the
//! last 32 s needed (see *Floor* below). Above the floor the hub still probes in whole
//! periods, and the rules below exist to make the probing cheap: grow only on evidence that a
//! deeper buffer would have helped (lateness, not loss), once per disturbance; give a
//! period back only after a window that never needed it, with a margin in time, and
//! wait longer when a drop proves wrong. Clients lock to the hub's clock and send at its
//! rate, so the drift trim serves a client that does not lock.
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
//!   audio is lost audio too (a sender skips its position over what its capture device
//!   lost; over TCP nothing arrives out of order): it grows nothing.
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
//!   the next stall needs, then miss. The reader may set that wait apart from
//!   `drift_pulls` ([`set_trim_pulls`](JitterBuffer::set_trim_pulls)): the hub waits
//!   longer for a sender that says it is locked to the hub's clock, which does not drift
//!   and repays an excess itself (`hub::mixer_thread::LOCKED_TRIM_S`).
//!
//! - *Floor*: the largest lateness of the last 32 s plus the pull's need, measured on
//!   arrival stamps by the reader, in whole periods. It rises at once but inserts
//!   nothing: the depth follows it the next time the stream runs dry (the stall that
//!   raised it usually just did), refilling that deep. No steady window shrinks the
//!   target below it, and depth it holds is no excess. When it falls (the stall aged
//!   out), the depth above the target is an excess: it goes at the next window's end,
//!   in one drop. Without it, a stall every 7 s of 5 ms at 64-frame periods missed at
//!   3 of 8 stalls; with it, at the first only (`hub::mixer_thread` tests).
//!
//! - *Every drop cuts in phase* (`splice.rs`): the frames a shrink, an excess drop or a
//!   trim removes move by up to half the drop (or half a period more, where the low-water
//!   mark spares it) to where the waveform repeats, so the reader's cross-fade joins two
//!   waves in phase; a steady-window drop of audio that repeats with no such cut in reach
//!   waits for a later window (the target has still shrunk, so the excess grows into a
//!   drop that can reach one). A drift trim never waits.
//!
//! A sender that falls behind (slower clock) simply causes an occasional miss: the buffer
//! runs dry, refills at the ordinary rate and keeps its target. A sender whose stream
//! *skips ahead* while the buffer is dry (its device's xrun: the position jumps with the
//! time lost) resumes at the new position: the span it skipped was already heard here as
//! the rebuffering silence, and is not played again as a hole; such a dry spell is known
//! to be lost audio, so it does not count when the buffer runs dry again (a sender whose
//! device xruns every few hundred ms would otherwise take the target to its maximum, and
//! every later slip would cost a longer refill).
//!
//! The reader's own device may skip time too (the hub device's xrun): the mix for it is
//! never made, and the hub's stream skips it ([`skip`](JitterBuffer::skip)), so a playing
//! stream moves on by as much and keeps its depth.

use super::{JitterBuffer, PullResult, SPARE_PERIODS, State};

/// The steady window grows to at most this many times `steady_pulls` (40 s at 5 s).
const MAX_WINDOW_SCALE: u32 = 8;

impl JitterBuffer {
    /// Fills `out` (one period, interleaved) for the speaker (RT thread; never allocates).
    ///
    /// Outputs silence while priming; received audio when the buffer holds a period;
    /// otherwise what it has plus silence, counting a miss (see the rules at the top of
    /// `dsp/jitter/adapt.rs` for the adaptation this drives). `out` is meant to be
    /// `period_frames × channels` samples; another length is served frame by frame all
    /// the same (a trailing partial frame is zeroed), while the target still moves in
    /// periods.
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
        let mut unlimited = u32::MAX;
        self.pull_within(out, now_ns, &mut unlimited)
    }

    /// [`pull_at`](Self::pull_at) with a budget of searches for a cut in phase
    /// (`splice.rs`, 5–7 µs each), shared by every buffer one reader
    /// pulls in one period: a drop that finds `cuts` at 0 waits for a later pull (a drift
    /// trim for the next one, a steady window's drop for the next pull that has budget),
    /// and one that searches takes one from it. After a host stall every input of a hub
    /// may want its drift trim in the same period; the mixer's period must not grow with
    /// the number of inputs that do.
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::jitter::{JitterBuffer, JitterConfig};
    /// let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
    /// let mut out = vec![0.0f32; 128];
    /// let mut cuts = 4; // this period's budget, shared by every input pulled in it
    /// jb.pull_within(&mut out, 0, &mut cuts);
    /// assert_eq!(cuts, 4); // nothing was dropped, nothing searched
    /// ```
    pub fn pull_within(&mut self, out: &mut [f32], now_ns: u64, cuts: &mut u32) -> PullResult {
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
        let target = u64::from(self.target_frames());
        if self.state == State::Idle {
            return PullResult::Priming;
        }
        let waiting = matches!(self.state, State::Priming | State::Rebuffering);
        // A gap ends where the stream continues its concealment in phase (`resume.rs`).
        if waiting && !(self.may_start(target, frames, now_ns) && self.resume(target, cuts)) {
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
        self.state = State::Playing;
        // Drift: not above target + slack for longer than `drift_pulls` pulls.
        let depth = self.depth_frames();
        if depth > target + u64::from(self.cfg.slack_frames) {
            self.over = self.over.saturating_add(1);
            if self.over >= self.trim_pulls && spend(cuts) {
                // A trim in phase may take more (up to half a period), as long as this
                // pull keeps its frames.
                let cut = match self.aligned_drop(depth - target, target.saturating_sub(frames)) {
                    0 => depth - target,
                    cut => cut,
                };
                let trimmed = self.discard(cut);
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
            }
            // A hole inside received audio grows nothing either: over TCP nothing arrives
            // out of order, so a span no packet covered is audio the sender lost and
            // skipped (its capture device's xrun), not late.
            return PullResult::Miss { played, silent };
        }
        self.steady += 1;
        if self.steady >= self.cfg.steady_pulls.saturating_mul(self.window_scale) {
            self.end_steady_window(frames, cuts);
        }
        PullResult::Played
    }

    /// The reader's own device skipped `n` frames of its time (the hub device's xrun): no
    /// pull was made for them, and none will be. A playing stream moves on by as much, as
    /// if those pulls had been made, so that it keeps the depth it had; played on from
    /// where it was, it held the skipped span as latency, which only a drop a steady
    /// window later cut back out. The frames passed over are neither misses nor drops
    /// (nothing was due to play them); a packet of the span that comes later is late. A
    /// buffer priming or rebuffering waits for its target whatever the time: it has
    /// nothing to skip. Returns the received frames passed over.
    ///
    /// Runs on: the RT mixer thread, once per period. Must not: allocate, lock, block
    /// (touches at most the frames held, whatever `n`).
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::jitter::{JitterBuffer, JitterConfig, PullResult};
    /// let cfg = JitterConfig { channels: 1, period_frames: 4, capacity_frames: 64,
    ///     initial_target_frames: 8, min_target_frames: 4, max_target_frames: 16,
    ///     slack_frames: 8, steady_pulls: 100, drift_pulls: 1, margin_ns: 0 };
    /// let mut jb = JitterBuffer::new(cfg).unwrap();
    /// let mut out = [0.0f32; 4];
    /// for p in 0..4u64 {
    ///     jb.push(p * 4, &[p as f32; 4]);
    /// }
    /// assert_eq!(jb.pull(&mut out), PullResult::Played);
    /// assert_eq!(jb.depth_frames(), 12);
    /// // The reader's device skipped 8 frames, while the sender sent two packets more.
    /// jb.push(16, &[4.0; 4]);
    /// jb.push(20, &[5.0; 4]);
    /// assert_eq!(jb.skip(8), 8);
    /// assert_eq!(jb.depth_frames(), 12); // as deep as before the skip
    /// assert_eq!(jb.pull(&mut out), PullResult::Played);
    /// assert_eq!(out, [3.0; 4]); // the stream's time at the reader's
    /// ```
    pub fn skip(&mut self, n: u64) -> u64 {
        if self.state != State::Playing {
            return 0;
        }
        self.discard_quietly(n)
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
    /// needed (all whole periods above the target, else one period of the target). With
    /// no search left in this period's `cuts`, a drop waits: the window stays open and the
    /// next pull ends it.
    fn end_steady_window(&mut self, frames: u64, cuts: &mut u32) {
        let period = u64::from(self.cfg.period_frames);
        let extra = self
            .low_water
            .saturating_sub(u64::from(self.target_frames()).max(frames))
            / period;
        // A shrink gives back a period of the probing target, never one the measured
        // floor holds.
        let shrink = extra == 0
            && self.low_water >= frames + period
            && self.target > self.cfg.min_target_frames
            && self.target >= self.floor + self.cfg.period_frames;
        let drop = self.within_margin(if shrink { 1 } else { extra });
        if drop > 0 && !spend(cuts) {
            return;
        }
        if shrink && drop == 1 {
            self.target -= self.cfg.period_frames;
        }
        if drop > 0 {
            // A drop in phase may take more (up to half a period) of what the window's
            // low-water mark leaves above the target (see `splice.rs`).
            let want = drop * period;
            let keep = u64::from(self.target_frames()).saturating_sub(self.half_period()) + want;
            let spare = self.low_water.saturating_sub(frames).saturating_sub(keep);
            let cut = self.aligned_drop(want, spare);
            if cut > 0 {
                self.next_splice |= self.discard(cut) > 0;
                self.dropped_at = Some(self.pulls);
            }
        }
        self.steady = 0;
        self.forget_marks();
    }

    /// Half a period, frames: how much more than asked a drop may take to cut in phase.
    pub(super) fn half_period(&self) -> u64 {
        u64::from(self.cfg.period_frames / 2)
    }

    /// Starts the window's marks (low water, spare time) afresh.
    pub(super) fn forget_marks(&mut self) {
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
}

/// Takes one search (for a cut or a resume in phase, or a concealment's lag) from a
/// period's budget; false when none is left.
pub(crate) fn spend(cuts: &mut u32) -> bool {
    let left = cuts.checked_sub(1);
    *cuts = left.unwrap_or(0);
    left.is_some()
}
