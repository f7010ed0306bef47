//! Playing a preloaded [`Clip`] period by period on the RT thread.
//!
//! Design: the reader is a cursor over a shared, immutable buffer, so it has nothing to
//! allocate and nothing to lock; a period that crosses the end of the clip is served in two
//! copies (wrapping when looping, silence after the end otherwise). The clip is held by
//! `Arc` so a hub can play one file to several outputs; the main thread should keep its own
//! `Arc` (or receive the reader back through a queue) so the last reference, and with it the
//! buffer, is never dropped on the RT thread.

use std::sync::Arc;

use super::clip::Clip;

/// An RT-safe cursor that hands out a [`Clip`] one period at a time, optionally looping.
///
/// # Realtime contract
/// [`ClipReader::read`] and the other methods neither allocate, lock, block nor panic.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use izyrt::file::{Clip, ClipReader};
///
/// let clip = Arc::new(Clip::from_interleaved(vec![1.0, 2.0, 3.0], 48_000, 1));
/// let mut reader = ClipReader::new(Arc::clone(&clip), true);
/// let mut period = [0.0f32; 2];
/// assert_eq!(reader.read(&mut period), 2);
/// assert_eq!(period, [1.0, 2.0]);
/// assert_eq!(reader.read(&mut period), 2); // wraps around
/// assert_eq!(period, [3.0, 1.0]);
/// ```
#[derive(Debug, Clone)]
pub struct ClipReader {
    clip: Arc<Clip>,
    /// Next frame to hand out.
    pos: usize,
    looping: bool,
    loops: u64,
}

impl ClipReader {
    /// A reader at the start of `clip`; `looping` restarts the clip when it ends.
    pub fn new(clip: Arc<Clip>, looping: bool) -> ClipReader {
        ClipReader {
            clip,
            pos: 0,
            looping,
            loops: 0,
        }
    }

    /// Fills `out` (interleaved, the clip's channel count) with the next frames and returns
    /// how many frames came from the clip. When not looping, frames after the end are
    /// silence; when looping, the clip restarts seamlessly. Samples of a trailing partial
    /// frame in `out` are set to silence. An empty clip yields silence.
    pub fn read(&mut self, out: &mut [f32]) -> usize {
        let ch = self.clip.channels() as usize;
        let samples = self.clip.samples();
        let total = samples.len() / ch;
        let mut written = 0; // frames
        let want = out.len() / ch;
        while written < want {
            if self.pos >= total {
                if self.looping && total > 0 {
                    self.pos = 0;
                    self.loops += 1;
                } else {
                    break;
                }
            }
            let n = (want - written).min(total - self.pos);
            out[written * ch..(written + n) * ch]
                .copy_from_slice(&samples[self.pos * ch..(self.pos + n) * ch]);
            written += n;
            self.pos += n;
        }
        out[written * ch..].fill(0.0);
        written
    }

    /// The next frame to be read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Moves to `frame` (clamped to the end of the clip).
    pub fn seek(&mut self, frame: usize) {
        self.pos = frame.min(self.clip.frames());
    }

    /// Back to the first frame.
    pub fn rewind(&mut self) {
        self.pos = 0;
    }

    /// True when not looping and every frame has been read.
    pub fn is_finished(&self) -> bool {
        !self.looping && self.pos >= self.clip.frames()
    }

    /// Whether the clip restarts at its end.
    pub fn looping(&self) -> bool {
        self.looping
    }

    /// Turns looping on or off from the next read.
    pub fn set_looping(&mut self, looping: bool) {
        self.looping = looping;
    }

    /// How many times the clip has wrapped around.
    pub fn loops_completed(&self) -> u64 {
        self.loops
    }

    /// The clip being played.
    pub fn clip(&self) -> &Arc<Clip> {
        &self.clip
    }
}
