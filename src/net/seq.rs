//! Sequence numbers per (kind, track), as streamproto1 counts them (net thread).
//!
//! Design: the spec counts `seq` "per (kind, track) by the sender". A sender keeps one
//! counter per pair it uses ([`SeqCounters`]); a receiver judges gaps per track of a kind
//! ([`SeqTracker`]), so a client that interleaves two tracks, each counted from 0, is not
//! seen as losing every other frame. Both are fixed-size tables (track 0 and up to
//! [`TRACKS`] other tracks; beyond that the least recently used entry is reused), so the
//! per-frame path never allocates, and a hostile peer inventing thousands of tracks costs
//! nothing but wrong gap counts for itself.

use crate::wire::Kind;

/// Tracks (besides each kind's track 0) remembered per table.
pub const TRACKS: usize = 8;

/// Kinds with a counter of their own (the spec's 1..=9; other values share slot 0).
const KINDS: usize = 10;

/// A sender's next `seq` per (kind, track).
///
/// # Example
/// ```
/// use izyrt::{net::seq::SeqCounters, wire::Kind};
/// let mut s = SeqCounters::default();
/// assert_eq!(s.next(Kind::Audio, 0), 0);
/// assert_eq!(s.next(Kind::Audio, 0), 1);
/// assert_eq!(s.next(Kind::Audio, 3), 0, "another track counts on its own");
/// assert_eq!(s.next(Kind::Metadata, 0), 0, "another kind too");
/// ```
#[derive(Debug, Clone, Default)]
pub struct SeqCounters {
    track0: [u32; KINDS],
    others: [(u8, u16, u32, u64); TRACKS],
    uses: u64,
}

impl SeqCounters {
    /// The `seq` for the next frame of `kind` on `track` (wrapping at 2^32).
    ///
    /// # Example
    /// See [`SeqCounters`].
    pub fn next(&mut self, kind: Kind, track: u16) -> u32 {
        let k = kind as usize % KINDS;
        if track == 0 {
            let v = self.track0[k];
            self.track0[k] = v.wrapping_add(1);
            return v;
        }
        self.uses += 1;
        let uses = self.uses;
        let key = (k as u8, track);
        let i = match self
            .others
            .iter()
            .position(|e| (e.0, e.1) == key && e.3 != 0)
        {
            Some(i) => i,
            None => {
                let i = lru(self.others.iter().map(|e| e.3));
                self.others[i] = (key.0, key.1, 0, 0);
                i
            }
        };
        let e = &mut self.others[i];
        let v = e.2;
        e.2 = v.wrapping_add(1);
        e.3 = uses;
        v
    }
}

/// What one received `seq` meant for its track.
///
/// # Example
/// See [`SeqTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqNote {
    /// Not the successor of the track's previous `seq` (a loss, reorder or repeat).
    pub gap: bool,
    /// Different from the track's previous `seq` (the first frame of a track advances).
    pub advanced: bool,
}

/// A receiver's last `seq` per track of one kind.
///
/// # Example
/// ```
/// use izyrt::net::seq::SeqTracker;
/// let mut t = SeqTracker::default();
/// for (track, seq) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
///     assert!(!t.note(track, seq).gap, "interleaved tracks are not gaps");
/// }
/// assert!(t.note(0, 5).gap);
/// assert!(!t.note(1, 1).advanced && t.note(1, 1).gap, "a repeat");
/// ```
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    /// (track, last seq, last use; 0 = empty).
    entries: [(u16, u32, u64); TRACKS + 1],
    uses: u64,
}

impl SeqTracker {
    /// Notes `seq` received on `track`.
    ///
    /// # Example
    /// See [`SeqTracker`].
    pub fn note(&mut self, track: u16, seq: u32) -> SeqNote {
        self.uses += 1;
        let uses = self.uses;
        match self.entries.iter_mut().find(|e| e.0 == track && e.2 != 0) {
            Some(e) => {
                let note = SeqNote {
                    gap: seq != e.1.wrapping_add(1),
                    advanced: seq != e.1,
                };
                e.1 = seq;
                e.2 = uses;
                note
            }
            None => {
                let i = lru(self.entries.iter().map(|e| e.2));
                self.entries[i] = (track, seq, uses);
                SeqNote {
                    gap: false,
                    advanced: true,
                }
            }
        }
    }

    /// Forgets every track (a new connection).
    ///
    /// # Example
    /// ```
    /// let mut t = izyrt::net::seq::SeqTracker::default();
    /// t.note(0, 9);
    /// t.clear();
    /// assert!(!t.note(0, 0).gap);
    /// ```
    pub fn clear(&mut self) {
        *self = SeqTracker::default();
    }
}

/// The index of the least recently used entry (0 = empty comes first).
fn lru(uses: impl Iterator<Item = u64>) -> usize {
    uses.enumerate()
        .min_by_key(|&(_, u)| u)
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_tracks_reuse_the_oldest_entry() {
        let mut s = SeqCounters::default();
        for track in 1..=(TRACKS as u16 + 1) {
            assert_eq!(s.next(Kind::Audio, track), 0);
        }
        // Track 1 was the least recently used: it was forgotten and starts again.
        assert_eq!(s.next(Kind::Audio, 1), 0);
        assert_eq!(s.next(Kind::Audio, TRACKS as u16 + 1), 1);
        let mut t = SeqTracker::default();
        for track in 0..100u16 {
            assert!(!t.note(track, 7).gap);
        }
        assert!(!t.note(99, 8).gap);
    }

    #[test]
    fn wraps_at_two_to_the_32() {
        let mut t = SeqTracker::default();
        t.note(2, u32::MAX);
        assert!(!t.note(2, 0).gap);
    }
}
