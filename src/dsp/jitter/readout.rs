//! What a jitter buffer tells its reader and the metrics between pulls: the gap and splice
//! of the last read, its depth, target and floor, and its counters. Read on the reader's
//! thread (the hub's mixer or a client's audio thread), each an O(1) field read, except
//! [`set_floor`](JitterBuffer::set_floor), the one setting here.

use super::{JitterBuffer, State};

impl JitterBuffer {
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

    /// The current target depth, frames: the probing rules' target, or the floor
    /// [`set_floor`](Self::set_floor) set, whichever is larger.
    pub fn target_frames(&self) -> u32 {
        self.target.max(self.floor)
    }

    /// The least target [`set_floor`](Self::set_floor) last set, frames (whole periods;
    /// 0 when none was set).
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::jitter::{JitterBuffer, JitterConfig};
    /// let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
    /// jb.set_floor(100); // 64-frame periods: rounded up to two
    /// assert_eq!(jb.floor_frames(), 128);
    /// ```
    pub fn floor_frames(&self) -> u32 {
        self.floor
    }

    /// Sets the least target, frames (rounded up to whole periods, at most the largest
    /// target): the depth the stream's measured lateness asks for
    /// ([`LatencyPolicy`](crate::dsp::playout::policy::LatencyPolicy) fed the same
    /// arrivals). A floor above the target raises it at once: the next time the buffer
    /// rebuffers it refills that deep, and no steady window gives back what the floor
    /// holds. When the floor falls, the depth above the new target goes at the end of
    /// the next steady window, in one drop cut in phase (see `adapt.rs`).
    ///
    /// Runs on: the reader's RT thread, once per period. Must not: allocate, lock, block.
    ///
    /// # Example
    /// ```
    /// use izyrt::dsp::jitter::{JitterBuffer, JitterConfig};
    /// let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap(); // 64-frame periods
    /// assert_eq!(jb.target_frames(), 64);
    /// jb.set_floor(150); // 150 frames of lateness and one pull's need: three periods
    /// assert_eq!(jb.target_frames(), 192);
    /// jb.set_floor(0);
    /// assert_eq!(jb.target_frames(), 64);
    /// ```
    pub fn set_floor(&mut self, frames: u32) {
        let period = self.cfg.period_frames;
        self.floor = frames
            .div_ceil(period)
            .saturating_mul(period)
            .min(self.cfg.max_target_frames);
    }

    /// Sets how many pulls in a row above `target + slack` the drift rule waits before it
    /// trims (at least 1; `drift_pulls` until set).
    ///
    /// Runs on: the reader's RT thread, once per period. Must not: allocate, lock, block.
    pub fn set_trim_pulls(&mut self, pulls: u32) {
        self.trim_pulls = pulls.max(1);
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

    /// When the newest frame received arrived (monotonic ns), and the largest packet seen,
    /// frames: what reading the sender's progress smoothly needs
    /// (`dsp::playout::unearned_frames`). `None` before a packet pushed with a time.
    // Inlined across modules: the mixer calls it per input per period (measured by
    // callgrind: a call here, and in `unearned_frames`, cost the hub 3.5 % more
    // instructions per peer).
    #[inline]
    pub fn newest_arrival(&self) -> Option<(u64, u64)> {
        let live = self.state != State::Idle && self.newest_ns > 0;
        live.then_some((self.newest_ns, self.largest_packet))
    }

    /// Frames received twice (the second copy was ignored).
    pub fn duplicate_frames(&self) -> u64 {
        self.duplicate_frames
    }
}
