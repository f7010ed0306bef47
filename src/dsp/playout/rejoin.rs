//! Where the speaker's stream rejoins after a gap: in phase with the continuation that
//! filled it (RT audio thread; at the pulls that end a gap).
//!
//! Design: while the playout is dry its concealment plays the stream's last pitch period
//! over and over (`conceal/`), and the stream, when it comes back, starts where it
//! stopped: G frames behind the continuation after a gap of G frames. The cross-fade
//! between a tone and itself at a phase set by G dips, and a listener hears the dip.
//! Scripted (`tests/playout_events.rs`, 160 stalls of 0.5 to 10.25 ms): 64 events, every
//! one such a join. A hub input answers the same join by dropping the few frames of the
//! stream that put it in phase (`dsp/jitter/resume.rs`); a client's playout drops
//! nothing (its latency moves only through the resampler), so it does the reverse: the
//! continuation plays on for the `d` frames (fewer than one lag) after which it is most
//! like the stream's next [`CUE`] frames, and the stream starts there. Those `d` frames
//! are latency the clock loop then gives back by playing faster, as it gives back the
//! gap's own G (`ClockLock::shift`); the same search, with the two roles swapped
//! ([`in_phase_offset`]).
//!
//! Only while the continuation plays at full level (its hold) and only for audio that
//! repeated itself closely (`Conceal::ahead`), and only when the ring holds the
//! stream's next [`CUE`] frames: otherwise the stream resumes where it stopped, as before.

use crate::dsp::jitter::{CUE, JitterBuffer, in_phase_offset};

use super::conceal::Conceal;

/// The rejoin of one playout: the frames of continuation still to play, and the scratch
/// of its search.
#[derive(Debug)]
pub(super) struct Rejoin {
    /// Continuation frames still to play before the stream resumes (0: none planned).
    left: usize,
    /// The stream's next frames, mono.
    head: Box<[f32]>,
    /// The continuation's next frames, mono (one lag and the cue at most).
    cont: Box<[f32]>,
    /// Gaps whose end was moved into phase.
    moved: u64,
}

impl Rejoin {
    /// The rejoin for a stream concealed by `conceal` (main thread; allocates).
    pub(super) fn new(conceal: &Conceal) -> Rejoin {
        Rejoin {
            left: 0,
            head: vec![0.0; CUE].into_boxed_slice(),
            cont: vec![0.0; conceal.max_lag() + CUE].into_boxed_slice(),
            moved: 0,
        }
    }

    /// At a pull while the stream is dry: if the ring now holds the stream's next frames
    /// and the continuation offers a phase, plans how many frames of it play on first.
    ///
    /// Runs on: the RT audio thread, at the pulls of a dry spell. Must not: allocate,
    /// lock, block (one search over at most a lag, once per gap).
    pub(super) fn plan(&mut self, ring: &JitterBuffer, conceal: &Conceal) {
        if self.left > 0 {
            return;
        }
        let lag = conceal.ahead_lag();
        if lag == 0 || !ring.head_mono(&mut self.head) {
            return;
        }
        let reach = (lag - 1).min(self.cont.len() - CUE);
        let cont = &mut self.cont[..reach + CUE];
        conceal.ahead(cont);
        if let Some(d) = in_phase_offset(&self.head, cont, reach as u64) {
            self.left = d as usize;
            self.moved += u64::from(d > 0);
        }
    }

    /// Of the `need` frames a pull reads, how many are continuation before the stream
    /// (what is left of the plan). RT-safe.
    pub(super) fn ahead(&mut self, need: usize) -> usize {
        let n = self.left.min(need);
        self.left -= n;
        n
    }

    /// Forgets any plan (the stream restarts). RT-safe.
    pub(super) fn reset(&mut self) {
        self.left = 0;
    }

    /// Gaps whose end was moved into phase since construction.
    pub(super) fn moved(&self) -> u64 {
        self.moved
    }
}
