//! The reader that steers the depth itself (a client's playout, locked to the hub's
//! clock: `dsp::playout`): [`take`](JitterBuffer::take) reads what it asks for and
//! [`trim`](JitterBuffer::trim) drops what it decides, with none of `adapt.rs`'s rules
//! (RT audio thread).

use super::{JitterBuffer, State};

impl JitterBuffer {
    /// Reads the next frames into `out` for a reader that steers the depth itself (a
    /// client locked to the hub's clock: see `dsp::playout`), without any of the
    /// adaptation rules: no priming, trimming, growing or dropping. Copies from the read
    /// point up to `out`'s length or the newest frame received, whichever comes first, and
    /// moves the read point past them; holes are silent and reported by
    /// [`gap`](Self::gap) together with the frames not copied. Returns the frames read.
    /// A buffer read beyond its newest frame is marked dry, so that a sender that skips
    /// ahead meanwhile resumes further on, by at most the frames read dry: the time
    /// already concealed covers that much of the skipped span, and the rest stays a hole
    /// to conceal (reported in [`PushResult::skipped`](super::PushResult::skipped)).
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
}
