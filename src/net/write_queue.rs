//! [`WriteQueue`]: the outgoing bytes of one streamproto1 connection, written to its
//! nonblocking socket by the net thread.
//!
//! Design: two bounded stores, both allocated in [`WriteQueue::new`] and never grown, so
//! pushing and writing allocate nothing. Control frames (JSON, PING, PONG, ERROR, BYE) go
//! into one byte ring and are never dropped: one that does not fit is refused whole with
//! [`QueueFull`] (the peer is not reading; the connection is what to give up). Audio
//! frames are encoded straight into fixed slots, and audio is only worth sending while it
//! is fresh, so when every slot is taken the oldest frame not yet started is dropped and
//! counted. The wire must carry whole frames one after the other, so each write picks its
//! source: a partly written audio frame first, then control (which therefore drains
//! completely before audio starts), then audio, oldest first. The slots form a ring with
//! one spare buffer, so a new frame is encoded before any queued one is given up: a
//! failed encode leaves the queue exactly as it was.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Write};

use crate::wire::{AUDIO_HEADER_LEN, HEADER_LEN, MAX_FRAMES};

const DEFAULT_CONTROL_BYTES: usize = 256 * 1024;
const DEFAULT_AUDIO_SLOTS: usize = 8;
/// A whole stereo f32 AUDIO frame of [`MAX_FRAMES`] frames.
const DEFAULT_AUDIO_SLOT_BYTES: usize = HEADER_LEN + AUDIO_HEADER_LEN + MAX_FRAMES as usize * 2 * 4;

/// Sizes of a [`WriteQueue`], all allocated up front.
///
/// # Example
/// ```
/// use izyrt::net::WriteQueueConfig;
/// let cfg = WriteQueueConfig { audio_slots: 4, ..WriteQueueConfig::default() };
/// assert_eq!(cfg.control_bytes, 256 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteQueueConfig {
    /// Most control bytes queued at once.
    pub control_bytes: usize,
    /// Most audio frames queued at once (at least 2).
    pub audio_slots: usize,
    /// Largest audio frame, header included.
    pub audio_slot_bytes: usize,
}

impl Default for WriteQueueConfig {
    /// 256 KiB of control, 8 audio slots of 16 + 40 + 4096 × 2 × 4 bytes (a whole stereo
    /// f32 AUDIO frame of 4096 frames).
    ///
    /// # Example
    /// ```
    /// let cfg = izyrt::net::WriteQueueConfig::default();
    /// assert_eq!((cfg.audio_slots, cfg.audio_slot_bytes), (8, 32_824));
    /// ```
    fn default() -> Self {
        WriteQueueConfig {
            control_bytes: DEFAULT_CONTROL_BYTES,
            audio_slots: DEFAULT_AUDIO_SLOTS,
            audio_slot_bytes: DEFAULT_AUDIO_SLOT_BYTES,
        }
    }
}

/// A control frame did not fit; nothing of it was queued.
///
/// # Example
/// ```
/// let e = izyrt::net::QueueFull { need: 100, free: 10 };
/// assert_eq!(e.to_string(), "write queue full: a 100-byte control frame does not fit in 10 free bytes");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("write queue full: a {need}-byte control frame does not fit in {free} free bytes")]
pub struct QueueFull {
    /// Length of the refused frame.
    pub need: usize,
    /// Control bytes free at the time.
    pub free: usize,
}

/// The bounded, allocation-free outgoing queue of one connection (net thread).
///
/// # Example
/// ```
/// use izyrt::net::{WriteQueue, WriteQueueConfig};
/// let mut q = WriteQueue::new(WriteQueueConfig::default());
/// q.push_audio(|buf| { buf[..3].copy_from_slice(b"AUD"); Ok::<_, ()>(3) }).unwrap();
/// q.push_control(b"PING").unwrap();
/// let mut wire = Vec::new();
/// assert_eq!(q.write_to(&mut wire)?, 7);
/// assert_eq!(wire, b"PINGAUD"); // control first: the audio frame had not started
/// assert!(q.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct WriteQueue {
    control: VecDeque<u8>,
    control_cap: usize,
    /// `audio_slots + 1` buffers used as a ring: `count` queued frames from `head`, then
    /// the spare the next frame is encoded into.
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    head: usize,
    count: usize,
    /// Bytes of the frame at `head` already written (> 0: it has started).
    audio_off: usize,
    audio_pending: usize,
    dropped: u64,
    written: u64,
}

impl WriteQueue {
    /// Allocates every buffer the queue will ever use: `control_bytes` plus
    /// `(audio_slots + 1) × audio_slot_bytes` (the ring's spare included).
    ///
    /// # Panics
    /// If `cfg.audio_slots < 2` (a started frame and a new one must both fit), or
    /// `cfg.control_bytes` or `cfg.audio_slot_bytes` is 0.
    ///
    /// # Example
    /// ```
    /// let q = izyrt::net::WriteQueue::new(izyrt::net::WriteQueueConfig::default());
    /// assert!(q.is_empty());
    /// ```
    pub fn new(cfg: WriteQueueConfig) -> WriteQueue {
        assert!(cfg.audio_slots >= 2, "a write queue needs 2 audio slots");
        assert!(
            cfg.control_bytes.min(cfg.audio_slot_bytes) > 0,
            "write queue size 0"
        );
        let n = cfg.audio_slots + 1;
        WriteQueue {
            control: VecDeque::with_capacity(cfg.control_bytes),
            control_cap: cfg.control_bytes,
            bufs: (0..n).map(|_| vec![0; cfg.audio_slot_bytes]).collect(),
            lens: vec![0; n],
            head: 0,
            count: 0,
            audio_off: 0,
            audio_pending: 0,
            dropped: 0,
            written: 0,
        }
    }

    /// Queues a whole control frame, or nothing if it does not fit. Never allocates.
    ///
    /// # Example
    /// ```
    /// use izyrt::net::{QueueFull, WriteQueue, WriteQueueConfig};
    /// let mut q = WriteQueue::new(WriteQueueConfig { control_bytes: 8, ..WriteQueueConfig::default() });
    /// q.push_control(b"BYE!BYE!").unwrap();
    /// assert_eq!(q.push_control(b"X"), Err(QueueFull { need: 1, free: 0 }));
    /// ```
    pub fn push_control(&mut self, frame: &[u8]) -> Result<(), QueueFull> {
        let (need, free) = (frame.len(), self.control_cap - self.control.len());
        if need > free {
            return Err(QueueFull { need, free });
        }
        self.control.extend(frame);
        Ok(())
    }

    /// Queues one audio frame: `encode` writes it into a slot buffer (`audio_slot_bytes`
    /// long) and returns its length. If every slot was taken, the oldest frame not yet
    /// started is dropped (see [`WriteQueue::dropped_audio`]). On `Err` nothing is queued
    /// and nothing dropped; a length of 0 queues nothing. Never allocates or blocks.
    ///
    /// # Panics
    /// If `encode` returns a length larger than the buffer it was given.
    ///
    /// # Example
    /// ```
    /// use izyrt::net::{WriteQueue, WriteQueueConfig};
    /// let mut q = WriteQueue::new(WriteQueueConfig { audio_slots: 2, ..WriteQueueConfig::default() });
    /// for _ in 0..3 {
    ///     q.push_audio(|buf| { buf[0] = 1; Ok::<_, ()>(1) }).unwrap();
    /// }
    /// assert_eq!((q.queued_audio(), q.dropped_audio()), (2, 1));
    /// assert_eq!(q.push_audio(|_| Err("encode failed")), Err("encode failed"));
    /// assert_eq!((q.queued_audio(), q.dropped_audio()), (2, 1));
    /// ```
    pub fn push_audio<E>(
        &mut self,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<(), E> {
        let n = self.bufs.len();
        let spare = (self.head + self.count) % n;
        let len = encode(&mut self.bufs[spare])?;
        assert!(
            len <= self.bufs[spare].len(),
            "audio encoder overran its slot"
        );
        if len == 0 {
            return Ok(());
        }
        self.lens[spare] = len;
        self.count += 1;
        self.audio_pending += len;
        if self.count == n {
            // Every slot taken: drop the oldest frame not started. If the head has started,
            // swap it with the next one (a ring of ≥ 3 makes that never the new frame).
            if self.audio_off > 0 {
                let next = (self.head + 1) % n;
                self.bufs.swap(self.head, next);
                self.lens.swap(self.head, next);
            }
            self.audio_pending -= self.lens[self.head];
            self.head = (self.head + 1) % n;
            self.count -= 1;
            self.dropped += 1;
        }
        Ok(())
    }

    /// Writes as much as `w` takes: a partly written audio frame first, then control,
    /// then audio, oldest first, so only whole frames follow each other. Stops when the
    /// queue is empty or `w` returns `WouldBlock`, returning the bytes written; retries
    /// `Interrupted`; a write of 0 bytes is [`ErrorKind::WriteZero`]. On an error the
    /// queue still accounts for what was written before it. Never allocates.
    ///
    /// # Example
    /// ```
    /// let mut q = izyrt::net::WriteQueue::new(izyrt::net::WriteQueueConfig::default());
    /// q.push_control(b"{\"x\":1}").unwrap();
    /// let mut wire = [0u8; 3];
    /// assert_eq!(q.write_to(&mut &mut wire[..]).unwrap_err().kind(), std::io::ErrorKind::WriteZero);
    /// assert_eq!((&wire, q.pending_bytes()), (b"{\"x", 4));
    /// ```
    pub fn write_to<W: Write + ?Sized>(&mut self, w: &mut W) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let audio = self.audio_off > 0 || (self.control.is_empty() && self.count > 0);
            let chunk = if audio {
                &self.bufs[self.head][self.audio_off..self.lens[self.head]]
            } else if !self.control.is_empty() {
                self.control.as_slices().0
            } else {
                return Ok(total);
            };
            let n = match w.write(chunk) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => n.min(chunk.len()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(total),
                Err(e) => return Err(e),
            };
            total += n;
            if !audio {
                self.control.drain(..n);
                continue;
            }
            self.audio_off += n;
            self.audio_pending -= n;
            if self.audio_off == self.lens[self.head] {
                self.head = (self.head + 1) % self.bufs.len();
                self.count -= 1;
                self.audio_off = 0;
                self.written += 1;
            }
        }
    }

    /// Nothing left to write.
    ///
    /// # Example
    /// ```
    /// let mut q = izyrt::net::WriteQueue::new(izyrt::net::WriteQueueConfig::default());
    /// q.push_control(b"PONG").unwrap();
    /// assert!(!q.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.control.is_empty() && self.count == 0
    }

    /// Control and audio bytes not yet written.
    ///
    /// # Example
    /// ```
    /// let mut q = izyrt::net::WriteQueue::new(izyrt::net::WriteQueueConfig::default());
    /// q.push_control(b"PONG").unwrap();
    /// q.push_audio(|_| Ok::<_, ()>(100)).unwrap();
    /// assert_eq!(q.pending_bytes(), 104);
    /// ```
    pub fn pending_bytes(&self) -> usize {
        self.control.len() + self.audio_pending
    }

    /// Audio frames waiting, a partly written one included.
    ///
    /// # Example
    /// ```
    /// let mut q = izyrt::net::WriteQueue::new(izyrt::net::WriteQueueConfig::default());
    /// q.push_audio(|_| Ok::<_, ()>(100)).unwrap();
    /// assert_eq!(q.queued_audio(), 1);
    /// ```
    pub fn queued_audio(&self) -> usize {
        self.count
    }

    /// Audio frames dropped because every slot was taken (survives [`WriteQueue::clear`]).
    ///
    /// # Example
    /// ```
    /// let q = izyrt::net::WriteQueue::new(izyrt::net::WriteQueueConfig::default());
    /// assert_eq!(q.dropped_audio(), 0);
    /// ```
    pub fn dropped_audio(&self) -> u64 {
        self.dropped
    }

    /// Audio frames completely written (survives [`WriteQueue::clear`]).
    ///
    /// # Example
    /// ```
    /// let mut q = izyrt::net::WriteQueue::new(izyrt::net::WriteQueueConfig::default());
    /// q.push_audio(|_| Ok::<_, ()>(100)).unwrap();
    /// q.write_to(&mut std::io::sink())?;
    /// assert_eq!(q.written_audio(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn written_audio(&self) -> u64 {
        self.written
    }

    /// Forgets everything queued, a partly written frame included, for a new connection
    /// (on the old one the stream would be cut mid-frame). Counters are kept.
    ///
    /// # Example
    /// ```
    /// let mut q = izyrt::net::WriteQueue::new(izyrt::net::WriteQueueConfig::default());
    /// q.push_control(b"HELLO").unwrap();
    /// q.clear();
    /// assert!(q.is_empty() && q.pending_bytes() == 0);
    /// ```
    pub fn clear(&mut self) {
        self.control.clear();
        self.count = 0;
        self.audio_off = 0;
        self.audio_pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Test frame: kind (`C`/`A`), u32 id, u32 length, then the id's low byte repeated.
    const HDR: usize = 9;
    const SLOT: usize = 64;

    fn frame(buf: &mut [u8], kind: u8, id: u32, len: usize) -> usize {
        buf[0] = kind;
        buf[1..5].copy_from_slice(&id.to_le_bytes());
        buf[5..9].copy_from_slice(&(len as u32).to_le_bytes());
        buf[HDR..len].fill(id as u8);
        len
    }

    /// A failing encoder that has already scribbled over its buffer.
    fn scribble(buf: &mut [u8]) -> Result<usize, u8> {
        buf.fill(0xEE);
        Err(7)
    }

    /// The (kind, id) of each frame; panics unless `s` is exactly a run of whole frames.
    fn parse(mut s: &[u8]) -> Vec<(u8, u32)> {
        let mut out = Vec::new();
        while !s.is_empty() {
            assert!(s.len() >= HDR && b"CA".contains(&s[0]), "bad header {s:?}");
            let id = u32::from_le_bytes([s[1], s[2], s[3], s[4]]);
            let len = u32::from_le_bytes([s[5], s[6], s[7], s[8]]) as usize;
            assert!(len >= HDR && len <= s.len(), "cut frame {id}");
            assert!(s[HDR..len].iter().all(|&b| b == id as u8), "mixed {id}");
            out.push((s[0], id));
            s = &s[len..];
        }
        out
    }

    /// Records what it takes: `per_call` bytes per write, `budget` in all, then
    /// `WouldBlock`; every third call is `Interrupted`.
    #[derive(Default)]
    struct Sink {
        out: Vec<u8>,
        per_call: usize,
        budget: usize,
        calls: u64,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            let n = buf.len().min(self.per_call).min(self.budget);
            if self.calls % 3 == 0 {
                return Err(ErrorKind::Interrupted.into());
            } else if n == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            self.budget -= n;
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn cfg(control_bytes: usize, audio_slots: usize) -> WriteQueueConfig {
        let audio_slot_bytes = SLOT;
        WriteQueueConfig {
            control_bytes,
            audio_slots,
            audio_slot_bytes,
        }
    }

    fn sink(per_call: usize) -> Sink {
        Sink {
            per_call,
            ..Sink::default()
        }
    }

    fn push_a(q: &mut WriteQueue, id: u32, len: usize) {
        q.push_audio(|b| Ok::<_, ()>(frame(b, b'A', id, len)))
            .unwrap();
    }

    fn state(q: &WriteQueue) -> (usize, usize, u64) {
        (q.pending_bytes(), q.queued_audio(), q.dropped_audio())
    }

    /// Writes up to `budget` bytes and checks the count against what was pending.
    fn write(q: &mut WriteQueue, s: &mut Sink, budget: usize) {
        let before = q.pending_bytes();
        s.budget = budget;
        let n = q.write_to(s).unwrap();
        assert_eq!((n, q.pending_bytes()), (budget.min(before), before - n));
    }

    /// `"c20 a40 e w5 w"`: control/audio frame of 20/40 bytes, failed encode, write 5
    /// bytes, write everything.
    fn ops(s: &str) -> Vec<(u8, usize)> {
        let op = |w: &str| (w.as_bytes()[0], w[1..].parse().unwrap_or(usize::MAX));
        s.split_whitespace().map(op).collect()
    }

    /// Runs `ops` (each op takes the next id), drains, and checks the wire and the
    /// counters against what was pushed. Returns the queue and the frames on the wire.
    fn check(
        cfg: WriteQueueConfig,
        ops: &[(u8, usize)],
        per_call: usize,
    ) -> (WriteQueue, Vec<(u8, u32)>) {
        let mut q = WriteQueue::new(cfg);
        let mut s = sink(per_call);
        let (mut controls, mut audio) = (Vec::new(), Vec::new());
        for (id, &(op, len)) in (1..).zip(ops) {
            let before = state(&q);
            match op {
                b'c' => {
                    let (mut f, free) = (vec![0; len], cfg.control_bytes - q.control.len());
                    frame(&mut f, b'C', id, len);
                    match q.push_control(&f) {
                        Ok(()) => controls.push((b'C', id)),
                        Err(e) => assert_eq!(e, QueueFull { need: len, free }),
                    }
                    let added = if len <= free { len } else { 0 };
                    assert_eq!(q.pending_bytes(), before.0 + added);
                    assert_eq!(len <= free, controls.last() == Some(&(b'C', id)));
                }
                b'a' => {
                    push_a(&mut q, id, len);
                    audio.push((b'A', id));
                    let full = before.1 == cfg.audio_slots;
                    let want = (before.1 + usize::from(!full), before.2 + u64::from(full));
                    assert_eq!((q.queued_audio(), q.dropped_audio()), want);
                }
                b'e' => {
                    assert_eq!(q.push_audio(scribble), Err(7));
                    assert_eq!(state(&q), before);
                }
                _ => write(&mut q, &mut s, len),
            }
        }
        write(&mut q, &mut s, usize::MAX);
        assert!(q.is_empty() && q.queued_audio() == 0 && q.pending_bytes() == 0);
        let wire = parse(&s.out);
        let got_c: Vec<_> = wire.iter().copied().filter(|f| f.0 == b'C').collect();
        let got_a: Vec<_> = wire.iter().copied().filter(|f| f.0 == b'A').collect();
        assert_eq!(got_c, controls, "every control frame, in order");
        let mut rest = audio.iter();
        assert!(
            got_a.iter().all(|f| rest.any(|a| a == f)),
            "audio order {got_a:?}"
        );
        assert_eq!(got_a.len() as u64, q.written_audio());
        assert_eq!(audio.len() as u64, q.written_audio() + q.dropped_audio());
        (q, wire)
    }

    #[test]
    fn whole_frames_for_any_chunk_size() {
        let ops = ops("c20 a40 a64 w5 a9 c30 a33 a50 a20 w70 c100 a10 w1 a11 a12 a13 e c9 w3 a64");
        for k in [1, 2, 3, 7, 9, 64, 1000] {
            let (q, wire) = check(cfg(256, 3), &ops, k);
            assert_eq!((q.dropped_audio(), wire.len()), (8, 7), "k {k}");
        }
    }

    #[test]
    fn control_goes_first_unless_audio_has_started() {
        let run = |o: &str| check(cfg(256, 4), &ops(o), 1).1;
        assert_eq!(run("a20 a20 c20"), [(b'C', 3), (b'A', 1), (b'A', 2)]);
        assert_eq!(run("a20 w1 c20 a20"), [(b'A', 1), (b'C', 3), (b'A', 4)]);
        assert_eq!(run("c20 w1 a20 c20"), [(b'C', 1), (b'C', 4), (b'A', 3)]);
    }

    #[test]
    fn a_started_audio_frame_is_never_dropped() {
        let (q, wire) = check(
            cfg(64, 2),
            &ops("a30 w1 a20 a20 a20 a20 a20 w40 a20 a20"),
            1,
        );
        assert_eq!(wire, [(b'A', 1), (b'A', 7), (b'A', 10)]);
        assert_eq!((q.written_audio(), q.dropped_audio()), (3, 5));
    }

    #[test]
    fn control_overflow_and_failed_encode_queue_nothing() {
        let (_, wire) = check(cfg(50, 2), &ops("c30 c21 e c20 c9 a20 e"), 7);
        assert_eq!(wire, [(b'C', 1), (b'C', 4), (b'A', 6)]);
        let msg = "write queue full: a 21-byte control frame does not fit in 20 free bytes";
        assert_eq!(QueueFull { need: 21, free: 20 }.to_string(), msg);
    }

    #[test]
    fn clear_forgets_the_queue_and_keeps_counters() {
        let mut q = WriteQueue::new(cfg(100, 2));
        let mut s = sink(100);
        for id in 1..6 {
            push_a(&mut q, id, 20);
            write(&mut q, &mut s, if id == 1 { 20 } else { 0 });
        }
        write(&mut q, &mut s, 5);
        q.push_control(&[b'C'; 30]).unwrap();
        q.clear();
        assert!(q.is_empty() && q.pending_bytes() == 0 && q.queued_audio() == 0);
        assert_eq!((q.written_audio(), q.dropped_audio()), (1, 2));
        // A new connection starts clean: no leftover of the cut frame.
        let mut s = sink(3);
        push_a(&mut q, 7, 20);
        q.push_control(&[8; 9]).unwrap();
        write(&mut q, &mut s, usize::MAX);
        assert_eq!(
            (&s.out[..9], parse(&s.out[9..])),
            (&[8; 9][..], vec![(b'A', 7)])
        );
    }

    #[test]
    fn zero_write_is_an_error_and_empty_encode_queues_nothing() {
        let mut q = WriteQueue::new(cfg(100, 2));
        q.push_audio(|_| Ok::<_, ()>(0)).unwrap();
        assert!(q.is_empty());
        q.push_control(&[1; 20]).unwrap();
        let e = q.write_to(&mut &mut [0u8; 5][..]).unwrap_err();
        assert_eq!((e.kind(), q.pending_bytes()), (ErrorKind::WriteZero, 15));
    }

    fn op() -> impl Strategy<Value = (u8, usize)> {
        prop_oneof![
            3 => (HDR..90usize).prop_map(|n| (b'c', n)),
            4 => (HDR..=SLOT).prop_map(|n| (b'a', n)),
            1 => Just((b'e', 0)),
            3 => (0..200usize).prop_map(|n| (b'w', n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn any_pushes_and_chunks_keep_whole_frames(
            ops in proptest::collection::vec(op(), 0..80),
            slots in 2usize..6,
            control in 1usize..300,
            per_call in 1usize..80,
        ) {
            check(cfg(control, slots), &ops, per_call);
        }
    }
}
