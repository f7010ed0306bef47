//! Audio packets between the net thread and an RT thread (either end on either thread).
//!
//! Design: a packet is a small header ([`PacketMeta`]) plus `frames × channels` samples.
//! rtrb rings carry plain values, so a pipe is two rings: one of samples and one of
//! headers. The producer writes the samples first and the header second; the consumer
//! reads a header first, and its samples are then guaranteed to be in the sample ring
//! (SPSC ordering). Both rings are allocated by [`pipe`]; pushing and popping never
//! allocate, lock or block.
//!
//! **Full pipe.** The producer of an SPSC ring cannot remove what the consumer has not
//! taken, so when a packet does not fit the *new* packet is dropped and counted
//! ([`PipeTx::dropped`]). A pipe only fills when its consumer has stopped taking (a
//! stalled connection or thread), and the consumer's own policy (the jitter buffer's
//! trim, the write queue's drop-oldest) bounds the delay once it resumes.
//!
//! **Frame boundaries.** The sample ring holds a whole number of frames and every packet
//! is a whole number of frames, so the two slices a read may return split on a frame
//! boundary: the second slice's first frame is `position + first.len() / channels`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rtrb::{Consumer, Producer, RingBuffer};

/// The header of one packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Stream position of the first frame.
    pub position: u64,
    /// Monotonic clock, ns, when the first frame was captured or produced.
    pub origin_ns: u64,
    /// Frames in the packet.
    pub frames: u32,
    /// Monotonic clock, ns, when it reached this process (read from the socket, or
    /// produced here): what a jitter buffer measures its margin from.
    pub arrival_ns: u64,
    /// The sender resamples this stream to the receiver's clock by a measured estimate
    /// (AUDIO flag [`FLAG_CLOCK_LOCKED`](crate::wire::FLAG_CLOCK_LOCKED)).
    pub locked: bool,
}

/// Builds a pipe holding up to `capacity_frames` frames of `channels` channels in at most
/// `max_packets` packets (main or net thread: allocates).
///
/// # Panics
/// If `channels`, `capacity_frames` or `max_packets` is 0.
///
/// # Example
/// ```
/// use izyrt::rt::pipe::{pipe, PacketMeta};
/// let (mut tx, mut rx) = pipe(2, 256, 8);
/// let meta = PacketMeta { position: 64, origin_ns: 1, frames: 2, arrival_ns: 1, locked: true };
/// assert!(tx.push(meta, &[0.1, 0.2, 0.3, 0.4]));
/// let mut got = Vec::new();
/// assert!(rx.pop(|m, a, b| { assert_eq!(m, meta); got.extend_from_slice(a); got.extend_from_slice(b); }));
/// assert!(rx.sender_locked());
/// assert_eq!(got, [0.1, 0.2, 0.3, 0.4]);
/// assert!(!rx.pop(|_, _, _| {}));
/// ```
pub fn pipe(channels: u16, capacity_frames: u32, max_packets: usize) -> (PipeTx, PipeRx) {
    assert!(channels > 0 && capacity_frames > 0 && max_packets > 0);
    let (samples_tx, samples_rx) =
        RingBuffer::new(capacity_frames as usize * usize::from(channels));
    let (meta_tx, meta_rx) = RingBuffer::new(max_packets);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        PipeTx {
            samples: samples_tx,
            meta: meta_tx,
            channels: usize::from(channels),
            dropped: dropped.clone(),
        },
        PipeRx {
            samples: samples_rx,
            meta: meta_rx,
            channels: usize::from(channels),
            dropped,
            locked: false,
        },
    )
}

/// The producing end of a [`pipe`].
#[derive(Debug)]
pub struct PipeTx {
    samples: Producer<f32>,
    meta: Producer<PacketMeta>,
    channels: usize,
    dropped: Arc<AtomicU64>,
}

impl PipeTx {
    /// Queues one packet; `samples` must hold `meta.frames × channels` values. Returns
    /// `false` (and counts a drop) when the packet does not fit or is malformed.
    ///
    /// # Example
    /// See [`pipe`].
    pub fn push(&mut self, meta: PacketMeta, samples: &[f32]) -> bool {
        let n = meta.frames as usize * self.channels;
        if samples.len() != n || self.meta.slots() == 0 || self.samples.slots() < n {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let Ok(mut chunk) = self.samples.write_chunk_uninit(n) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let (a, b) = chunk.as_mut_slices();
        let (first, second) = samples.split_at(a.len());
        for (o, x) in a.iter_mut().zip(first) {
            o.write(*x);
        }
        for (o, x) in b.iter_mut().zip(second) {
            o.write(*x);
        }
        // SAFETY: every one of the n slots was written just above.
        unsafe { chunk.commit_all() };
        // Cannot fail: a slot was checked free and only this end fills the ring.
        let _ = self.meta.push(meta);
        true
    }

    /// Packets dropped because the pipe was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the consuming end has been dropped.
    pub fn is_abandoned(&self) -> bool {
        self.meta.is_abandoned()
    }
}

/// The consuming end of a [`pipe`].
#[derive(Debug)]
pub struct PipeRx {
    samples: Consumer<f32>,
    meta: Consumer<PacketMeta>,
    channels: usize,
    dropped: Arc<AtomicU64>,
    /// The newest packet's `locked`.
    locked: bool,
}

impl PipeRx {
    /// Takes the oldest packet, if any, and hands its header and samples (in two slices,
    /// split on a frame boundary) to `f`. Returns whether there was one.
    ///
    /// # Example
    /// See [`pipe`].
    pub fn pop(&mut self, f: impl FnOnce(PacketMeta, &[f32], &[f32])) -> bool {
        let Ok(meta) = self.meta.pop() else {
            return false;
        };
        self.locked = meta.locked;
        let n = meta.frames as usize * self.channels;
        match self.samples.read_chunk(n) {
            Ok(chunk) => {
                let (a, b) = chunk.as_slices();
                f(meta, a, b);
                chunk.commit_all();
            }
            // Cannot happen (the producer commits samples before the header); skip.
            Err(_) => f(meta, &[], &[]),
        }
        true
    }

    /// Takes every waiting packet and hands each run of its samples to `f` with the
    /// stream position of the run's first frame and the packet's arrival time: one call,
    /// or two when the packet wraps around the ring. The one path by which the hub's mixer
    /// and a client's speaker move packets into their buffers.
    ///
    /// Runs on: the RT audio thread, once per period. Must not: allocate, lock, block.
    ///
    /// # Example
    /// ```
    /// use izyrt::rt::pipe::{pipe, PacketMeta};
    /// let (mut tx, mut rx) = pipe(1, 8, 4);
    /// for p in [0u64, 3] {
    ///     let meta = PacketMeta { position: p, origin_ns: 0, frames: 3, arrival_ns: 7, locked: false };
    ///     assert!(tx.push(meta, &[1.0; 3]));
    /// }
    /// let mut runs = Vec::new();
    /// rx.drain_runs(|position, samples, at| runs.push((position, samples.len(), at)));
    /// assert_eq!(runs, [(0, 3, 7), (3, 3, 7)]);
    /// ```
    pub fn drain_runs(&mut self, mut f: impl FnMut(u64, &[f32], u64)) {
        let ch = self.channels as u64;
        while self.pop(|m, a, b| {
            f(m.position, a, m.arrival_ns);
            if !b.is_empty() {
                let next = m.position.wrapping_add(a.len() as u64 / ch);
                f(next, b, m.arrival_ns);
            }
        }) {}
    }

    /// Whether the newest packet taken said its sender is locked to this receiver's clock
    /// ([`PacketMeta::locked`]; `false` before the first).
    pub fn sender_locked(&self) -> bool {
        self.locked
    }

    /// Packets waiting.
    pub fn packets(&self) -> usize {
        self.meta.slots()
    }

    /// Drops every waiting packet; returns how many.
    pub fn clear(&mut self) -> usize {
        let mut n = 0;
        while self.pop(|_, _, _| {}) {
            n += 1;
        }
        n
    }

    /// Packets the producer dropped because the pipe was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the producing end has been dropped.
    pub fn is_abandoned(&self) -> bool {
        self.meta.is_abandoned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_on_frame_boundaries_and_drops_when_full() {
        let (mut tx, mut rx) = pipe(2, 5, 4);
        let m = |position, frames| PacketMeta {
            position,
            origin_ns: 0,
            frames,
            arrival_ns: 0,
            locked: false,
        };
        assert!(tx.push(m(0, 3), &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0]));
        assert!(!tx.push(m(3, 3), &[0.0; 6]), "5-frame ring holds 3 + 2");
        assert_eq!(tx.dropped(), 1);
        assert!(rx.pop(|_, a, b| assert_eq!((a.len(), b.len()), (6, 0))));
        assert!(tx.push(m(3, 4), &[4.0, 4.0, 5.0, 5.0, 6.0, 6.0, 7.0, 7.0]));
        assert!(rx.pop(|meta, a, b| {
            assert_eq!(meta.position, 3);
            assert_eq!(a.len() % 2, 0);
            let all: Vec<f32> = a.iter().chain(b).copied().collect();
            assert_eq!(all, [4.0, 4.0, 5.0, 5.0, 6.0, 6.0, 7.0, 7.0]);
        }));
        assert!(!tx.push(m(0, 1), &[0.0; 3]), "wrong sample count");
        assert_eq!(rx.dropped(), 2);
        assert_eq!(rx.clear(), 0);
    }

    #[test]
    fn the_lock_flag_is_the_newest_packets() {
        let (mut tx, mut rx) = pipe(1, 100, 4);
        let m = PacketMeta {
            frames: 1,
            ..PacketMeta::default()
        };
        let locked = PacketMeta { locked: true, ..m };
        assert!(tx.push(m, &[0.5]) && tx.push(locked, &[0.5]) && tx.push(m, &[0.5]));
        assert!(!rx.sender_locked(), "nothing taken yet");
        assert!(rx.pop(|_, _, _| {}) && rx.pop(|_, _, _| {}));
        assert!(rx.sender_locked());
        rx.drain_runs(|_, _, _| {});
        assert!(!rx.sender_locked(), "the newest packet did not say so");
    }

    #[test]
    fn header_ring_bounds_packet_count() {
        let (mut tx, mut rx) = pipe(1, 100, 2);
        let m = PacketMeta::default();
        let one = PacketMeta { frames: 1, ..m };
        assert!(tx.push(one, &[0.5]));
        assert!(tx.push(one, &[0.5]));
        assert!(!tx.push(one, &[0.5]));
        assert_eq!(rx.packets(), 2);
        assert_eq!(rx.clear(), 2);
        drop(tx);
        assert!(rx.is_abandoned());
    }
}
