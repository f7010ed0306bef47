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
//! **Full.** A packet that would not fit makes room by dropping the oldest frames
//! (counted), as every bounded queue of the design does; the RT thread never waits.
//!
//! **Two readers.** [`pull`](JitterBuffer::pull) reads one period per cycle and lets the
//! buffer choose its depth: it primes, rebuffers, grows and shrinks its target by the
//! rules written, with their reasons, at the top of `adapt.rs` (the hub reads its inputs
//! this way). [`take`](JitterBuffer::take) reads what a reader that steers the depth
//! itself asks for (a client's playout, locked to the hub's clock: `dsp::playout`) and
//! applies none of them.
//!
//! The parts: this file holds the ring, its position-addressed operations (push, take,
//! trim, discard), the result types and the counters; `config.rs` the settings and which
//! of them are accepted; `adapt.rs` [`pull`](JitterBuffer::pull) and its adaptation
//! policy; `splice.rs` where its drops cut (a length that keeps the waveform's phase);
//! `resume.rs` where its gaps end (the frame in phase with the concealment) and
//! [`pull_concealed`](JitterBuffer::pull_concealed), the hub's read with its concealment;
//! `readout.rs` what it tells its reader and the metrics (depth, target, floor, counters);
//! `take.rs` [`take`](JitterBuffer::take) and [`trim`](JitterBuffer::trim), for a reader
//! that steers the depth itself; `tests/` the unit tests.

mod adapt;
mod config;
mod readout;
mod resume;
mod splice;
mod take;
#[cfg(test)]
mod tests;

pub(crate) use adapt::spend;
pub use config::{JitterConfig, half_period_ns};
pub(crate) use resume::{CUE, in_phase_offset};

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

/// The adaptive jitter buffer (see the module documentation; `adapt.rs` for the rules).
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
    /// The channels' sum of the frames a search for a cut in phase reads (`splice.rs`).
    mono: Box<[f32]>,
    state: State,
    /// The stream position of the first packet since construction or `reset`: `read` and
    /// `end` count from it (wrapping), so a stream may cross u64::MAX.
    origin: u64,
    /// Position of the next frame to read, from `origin`.
    read: u64,
    /// One past the newest position received, from `origin` (`read <= end <= read + capacity`).
    end: u64,
    /// The target the probing rules (`adapt.rs`) keep; the buffer holds the larger of it
    /// and `floor`.
    target: u32,
    /// The least target the stream's measured lateness allows ([`set_floor`](Self::set_floor)),
    /// whole periods (0: none).
    floor: u32,
    steady: u32,
    over: u32,
    /// Pulls in a row above `target + slack` before the drift rule trims
    /// ([`set_trim_pulls`](Self::set_trim_pulls); `drift_pulls` until set).
    trim_pulls: u32,
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
    /// When the packet that last advanced `end` arrived (monotonic ns; 0: none with a time).
    newest_ns: u64,
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
    /// The steady window in `steady_pulls`: doubled (up to
    /// [`MAX_WINDOW_SCALE`](adapt::MAX_WINDOW_SCALE)) each time a drop is followed by a
    /// miss within one window.
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
    /// The continuation a concealment plays while the buffer is dry, its next frames'
    /// sum, and its lag (0: none): where a gap ends (`resume.rs`).
    cue: Box<[f32]>,
    cue_lag: usize,
    aligned_resumes: u64,
}

/// How many periods of drop the shrink margin is tracked for; a larger drop (a long
/// burst's leftovers) goes ahead when all of these leave the margin.
const SPARE_PERIODS: usize = 8;

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
        let samples = cfg.ring_samples()?;
        Ok(JitterBuffer {
            cfg,
            channels: usize::from(cfg.channels),
            capacity: u64::from(cfg.capacity_frames),
            ring: vec![0.0; samples].into_boxed_slice(),
            filled: vec![false; cfg.capacity_frames as usize].into_boxed_slice(),
            arrivals: vec![0; cfg.capacity_frames as usize].into_boxed_slice(),
            mono: vec![0.0; splice::scratch_frames(cfg.period_frames)].into_boxed_slice(),
            state: State::Idle,
            origin: 0,
            read: 0,
            end: 0,
            target: cfg.initial_target_frames,
            floor: 0,
            steady: 0,
            over: 0,
            trim_pulls: cfg.drift_pulls,
            low_water: u64::MAX,
            spare_ns: [u64::MAX; SPARE_PERIODS],
            misses: 0,
            dropped_frames: 0,
            late_packets: 0,
            duplicate_frames: 0,
            largest_packet: 0,
            newest_ns: 0,
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
            cue: vec![0.0; resume::CUE].into_boxed_slice(),
            cue_lag: 0,
            aligned_resumes: 0,
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
            self.newest_ns = 0;
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
            // Folds rather than any/all, which stop early and do not vectorise: these
            // run for every packet and period of every hub input.
            if filled.iter().fold(false, |any, &f| any | f) {
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
        if packet_end > self.end {
            self.end = packet_end;
            self.newest_ns = arrival_ns;
        }
        result
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
            if filled.iter().fold(true, |all, &f| all & f) {
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
