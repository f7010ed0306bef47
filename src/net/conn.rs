//! One streamproto1 connection as the net thread holds it: socket, decoder, write queue,
//! sequence numbers, liveness and round-trip bookkeeping (net thread).
//!
//! Design: a [`Conn`] is two disjoint halves, the [`Decoder`] and the [`Link`] (everything
//! else), so a role can borrow a decoded frame from the first while it answers through the
//! second. Nothing here allocates per frame: frames are decoded in the decoder's fixed
//! buffer, AUDIO is encoded straight into a write-queue slot, control frames go through
//! one scratch buffer that only grows for an unusually large METADATA.
//!
//! **Closing.** After ERROR or BYE the link is *closing*: nothing more is read, the queue
//! drains, then the role drops the connection ([`Link::done`]). A peer that does not take
//! the bytes within the liveness time is dropped anyway.
//!
//! **Round trip.** Per the spec's echo rule the link remembers the `origin_ns` of the
//! latest AUDIO received and when it arrived, and stamps `echo_ns` on every AUDIO it sends;
//! an AUDIO received with `echo_ns ≠ 0` (or a PONG to our PING) gives [`Link::rtt_ns`].

use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::AsFd;

use serde::Serialize;

use super::seq::SeqCounters;
use super::write_queue::{WriteQueue, WriteQueueConfig};
use super::{EventLoop, Interest};
use crate::rt::clock::now_ns;
use crate::rt::pipe::{PacketMeta, PipeTx};
use crate::wire::{
    AUDIO_HEADER_LEN, AudioFormat, AudioHeader, AudioView, Decoder, EncodeError, ErrorCode,
    FLAG_CLOCK_LOCKED, Frame, HEADER_LEN, Header, Kind, ProtocolError, encode_bye, encode_error,
    encode_json_vec, encode_ping, put_f32_samples,
};

/// Bytes of an f32 AUDIO frame of `frames` × `channels` (the largest izyrt sends).
///
/// # Example
/// ```
/// assert_eq!(izyrt::net::conn::audio_frame_bytes(2, 2), 72); // the spec's vector A1
/// ```
pub fn audio_frame_bytes(frames: u32, channels: u16) -> usize {
    HEADER_LEN + AUDIO_HEADER_LEN + frames as usize * usize::from(channels) * 4
}

/// The AUDIO stream a handshake agreed on: what [`Link::take_audio`] accepts.
///
/// # Example
/// ```
/// use izyrt::{net::conn::Agreed, wire::AudioFormat};
/// let a = Agreed { rate: 48_000, channels: 2, format: AudioFormat::F32, frames_per_packet: 64,
///                  agreed_in: "HELLO" };
/// assert_eq!(a.frames_per_packet, 64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// Sample rate, Hz.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// Sample format on the wire.
    pub format: AudioFormat,
    /// Most frames in one AUDIO frame.
    pub frames_per_packet: u32,
    /// The frame that agreed it (`HELLO`, `WELCOME`), for the ERROR message.
    pub agreed_in: &'static str,
}

/// An AUDIO frame [`Link::take_audio`] accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Its sub-header.
    pub header: AudioHeader,
    /// Whether the pipe took it (else it was full and the frame dropped).
    pub queued: bool,
    /// f32 samples zeroed because they were NaN, infinite or subnormal.
    pub zeroed: u64,
}

/// A connection: decoder plus link.
#[derive(Debug)]
pub struct Conn {
    /// Incoming bytes, framed.
    pub dec: Decoder,
    /// Everything else.
    pub link: Link,
}

/// What a read pass ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    /// The socket has no more bytes for now.
    Drained,
    /// The peer closed its side.
    Eof,
    /// The socket failed.
    Failed(String),
    /// The peer sent a malformed frame (already answered with ERROR).
    Protocol(ProtocolError),
    /// `on_frame` asked to pause (frames after it are read on the next call).
    Paused,
}

impl Conn {
    /// Wraps a nonblocking socket registered with `token` and `interest`; its write queue
    /// holds AUDIO frames of up to `audio_frame_bytes` (see [`audio_frame_bytes`]).
    /// Knowing the interest lets [`Link::flush`] drop a write interest once the queue is
    /// idle (a nonblocking connect registers one): level-triggered on an idle socket, it
    /// would wake the loop forever.
    pub fn new(
        sock: TcpStream,
        token: u64,
        interest: Interest,
        peer: String,
        audio_frame_bytes: usize,
    ) -> Conn {
        let wq = WriteQueue::new(WriteQueueConfig {
            audio_slot_bytes: audio_frame_bytes,
            ..WriteQueueConfig::default()
        });
        Conn {
            dec: Decoder::new(),
            link: Link {
                sock,
                token,
                peer,
                wq,
                write_armed: interest.is_writable(),
                seq: SeqCounters::default(),
                error_sent: None,
                scratch: vec![0; 16 * 1024],
                closing: false,
                broken: false,
                last_rx_ns: now_ns(),
                echo_origin_ns: 0,
                echo_recv_ns: 0,
                rtt_ns: None,
            },
        }
    }

    /// Reads and hands every complete frame to `on_frame` until the socket is drained,
    /// closed or faulty, or `on_frame` returns `false` (to act on a frame before the next
    /// one is read, e.g. HELLO). A protocol error is answered with ERROR (the link is then
    /// closing). Nothing is read once the link is closing.
    pub fn read_frames(
        &mut self,
        mut on_frame: impl FnMut(&mut Link, Frame<'_>) -> bool,
    ) -> ReadEnd {
        // A read that returned less than it asked for emptied the socket: once its frames
        // are handled, stop instead of paying a syscall for the EAGAIN (level-triggered
        // epoll reports the socket again when more arrives).
        let mut drained = false;
        loop {
            if self.link.closing {
                return ReadEnd::Drained;
            }
            match self.dec.next_frame() {
                Ok(Some(frame)) => {
                    self.link.last_rx_ns = now_ns();
                    if !on_frame(&mut self.link, frame) {
                        return ReadEnd::Paused;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.link.send_error(&e);
                    return ReadEnd::Protocol(e);
                }
            }
            if drained {
                return ReadEnd::Drained;
            }
            let mut half = ReadHalf {
                sock: &self.link.sock,
                short: false,
            };
            match self.dec.read_from(&mut half) {
                Ok(0) => return ReadEnd::Eof,
                Ok(_) => drained = half.short,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return ReadEnd::Failed(e.to_string()),
            }
        }
    }
}

struct ReadHalf<'a> {
    sock: &'a TcpStream,
    /// The last read returned less than asked.
    short: bool,
}

impl Read for ReadHalf<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (&mut &*self.sock).read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

/// A connection minus its decoder.
#[derive(Debug)]
pub struct Link {
    /// The nonblocking socket.
    pub sock: TcpStream,
    /// Its event-loop token.
    pub token: u64,
    /// The remote address, for messages.
    pub peer: String,
    /// Outgoing frames.
    pub wq: WriteQueue,
    write_armed: bool,
    seq: SeqCounters,
    error_sent: Option<ErrorCode>,
    scratch: Vec<u8>,
    closing: bool,
    broken: bool,
    /// Monotonic ns of the latest frame received.
    pub last_rx_ns: u64,
    echo_origin_ns: u64,
    echo_recv_ns: u64,
    /// Latest round-trip time measured, ns.
    pub rtt_ns: Option<u64>,
}

impl Link {
    fn next_seq(&mut self, kind: Kind, track: u16) -> u32 {
        self.seq.next(kind, track)
    }

    /// Queues a JSON frame (HELLO, WELCOME, METADATA, QOS, ERROR). A peer that lets its
    /// control queue fill is stalled: the link is marked broken.
    pub fn send_json<T: Serialize + ?Sized>(&mut self, kind: Kind, value: &T) {
        if self.closing {
            return;
        }
        let seq = self.next_seq(kind, 0);
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Ok(n) = encode_json_vec(&mut scratch, kind, seq, value) {
            self.push_control(&scratch[..n]);
        }
        self.scratch = scratch;
    }

    /// Queues a frame encoded once for many links (METADATA to every client, serialised
    /// once per broadcast instead of once per client): its header is rewritten with this
    /// link's next seq for the frame's (kind, track). A frame whose header does not parse
    /// is not queued.
    pub fn send_shared(&mut self, frame: &mut [u8]) {
        if self.closing {
            return;
        }
        let Some(head) = frame.first_chunk_mut::<HEADER_LEN>() else {
            return;
        };
        let Ok(mut h) = Header::parse(head) else {
            return;
        };
        let Some(kind) = h.kind() else {
            return;
        };
        h.seq = self.next_seq(kind, h.track);
        h.write(head);
        self.push_control(frame);
    }

    /// Queues an already encoded control frame; nothing once the link is closing (no
    /// frame follows ERROR or BYE).
    pub fn push_control(&mut self, frame: &[u8]) {
        if self.closing {
            return;
        }
        self.push_last(frame);
    }

    fn push_last(&mut self, frame: &[u8]) {
        if self.wq.push_control(frame).is_err() {
            self.broken = true;
        }
    }

    /// Queues ERROR and starts closing.
    pub fn send_error(&mut self, e: &ProtocolError) {
        if self.closing {
            return;
        }
        let mut buf = [0u8; 1024];
        let seq = self.next_seq(Kind::Error, 0);
        let short;
        let e = if e.detail.len() > 900 {
            short = ProtocolError::new(e.code, e.detail.chars().take(200).collect::<String>());
            &short
        } else {
            e
        };
        if let Ok(n) = encode_error(&mut buf, seq, e) {
            self.push_last(&buf[..n]);
        }
        self.error_sent = Some(e.code);
        self.closing = true;
    }

    /// Queues an ERROR of `code` with `message` and starts closing.
    pub fn refuse(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.send_error(&ProtocolError::new(code, message));
    }

    /// Queues BYE and starts closing.
    pub fn send_bye(&mut self) {
        if self.closing {
            return;
        }
        let mut buf = [0u8; 16];
        let seq = self.next_seq(Kind::Bye, 0);
        if let Ok(n) = encode_bye(&mut buf, seq) {
            self.push_last(&buf[..n]);
        }
        self.closing = true;
    }

    /// Queues PING (`clock_ns` = now) or PONG (echoing `clock_ns`).
    pub fn send_ping(&mut self, kind: Kind, clock_ns: u64) {
        if self.closing {
            return;
        }
        let mut buf = [0u8; 24];
        let seq = self.next_seq(kind, 0);
        if let Ok(n) = encode_ping(&mut buf, kind, seq, clock_ns) {
            self.push_control(&buf[..n]);
        }
    }

    /// Answers PING with PONG, or takes the round trip from a PONG to our PING.
    pub fn on_ping_pong(&mut self, frame: &Frame<'_>) {
        let Some(clock) = frame.clock_ns() else {
            return;
        };
        match frame.kind() {
            Some(Kind::Ping) => self.send_ping(Kind::Pong, clock),
            Some(Kind::Pong) => {
                let now = now_ns();
                if clock <= now {
                    self.rtt_ns = Some(now - clock);
                }
            }
            _ => {}
        }
    }

    /// Notes an AUDIO frame received (for the echo) and takes the round trip it echoes.
    pub fn on_audio(&mut self, view: &AudioView<'_>) {
        let now = now_ns();
        self.echo_origin_ns = view.header.origin_ns;
        self.echo_recv_ns = now;
        let echo = view.header.echo_ns;
        if echo != 0 && echo <= now && now - echo < 60_000_000_000 {
            self.rtt_ns = Some(now - echo);
        }
    }

    /// Takes an AUDIO frame received: checks it against the stream agreed in the
    /// handshake (rate, channels, format, at most `framesPerPacket` frames; otherwise
    /// `bad_audio` naming what differs and the frame that agreed it), converts its samples
    /// through `scratch` into `pipe` (NaN, infinite and subnormal f32 samples zeroed and
    /// counted) and notes it for the echo. `None` after answering `bad_audio`.
    /// No allocation on the accepted path.
    pub fn take_audio(
        &mut self,
        view: &AudioView<'_>,
        flags: u16,
        agreed: &Agreed,
        scratch: &mut [f32],
        pipe: &mut PipeTx,
    ) -> Option<Taken> {
        let h = view.header;
        let what = agreed.agreed_in;
        if h.sample_rate != agreed.rate || h.channels != agreed.channels {
            self.refuse(
                ErrorCode::BadAudio,
                format!(
                    "AUDIO at {} Hz, {} channels; {what} said {} Hz, {} channels",
                    h.sample_rate, h.channels, agreed.rate, agreed.channels
                ),
            );
            return None;
        }
        if h.format != agreed.format {
            self.refuse(
                ErrorCode::BadAudio,
                format!(
                    "AUDIO in {}; {what} said {}",
                    h.format.name(),
                    agreed.format.name()
                ),
            );
            return None;
        }
        if h.frames > agreed.frames_per_packet {
            self.refuse(
                ErrorCode::BadAudio,
                format!(
                    "AUDIO of {} frames; {what} said framesPerPacket {}",
                    h.frames, agreed.frames_per_packet
                ),
            );
            return None;
        }
        let Some(out) = scratch.get_mut(..h.samples()) else {
            self.refuse(
                ErrorCode::BadAudio,
                format!("{} frames over this receiver's limit", h.frames),
            );
            return None;
        };
        let converted = view.read_f32_counted(out);
        let meta = PacketMeta {
            position: h.position,
            origin_ns: h.origin_ns,
            frames: h.frames,
            arrival_ns: self.last_rx_ns,
            locked: flags & FLAG_CLOCK_LOCKED != 0,
        };
        let queued = pipe.push(meta, out);
        self.on_audio(view);
        Some(Taken {
            header: h,
            queued,
            zeroed: converted.zeroed as u64,
        })
    }

    /// Queues one AUDIO frame on track 0 from two slices of interleaved f32 (as a
    /// [`crate::rt::pipe::PipeRx`] hands them), stamping `echo_ns`. Returns `false` when it
    /// cannot be encoded (too large for a slot).
    pub fn send_audio(
        &mut self,
        rate: u32,
        channels: u16,
        format: AudioFormat,
        meta: &PacketMeta,
        a: &[f32],
        b: &[f32],
    ) -> bool {
        let (position, origin_ns) = (meta.position, meta.origin_ns);
        let samples = a.len() + b.len();
        let frames = samples / usize::from(channels.max(1));
        let echo_ns = if self.echo_recv_ns == 0 {
            0
        } else {
            self.echo_origin_ns
                .wrapping_add(now_ns().saturating_sub(self.echo_recv_ns))
        };
        let h = AudioHeader {
            sample_rate: rate,
            channels,
            format,
            frames: frames as u32,
            position,
            origin_ns,
            echo_ns,
        };
        if self.closing {
            return false;
        }
        let seq = self.next_seq(Kind::Audio, 0);
        let flags = if meta.locked { FLAG_CLOCK_LOCKED } else { 0 };
        let ok = self
            .wq
            .push_audio(|out| encode_two(out, seq, flags, &h, a, b))
            .is_ok();
        if ok {
            // Out now: a burst larger than the queue's slots (after the thread was held up)
            // must not push its own first packets out of the queue.
            self.write_now();
        }
        ok
    }

    fn write_now(&mut self) {
        if self.broken {
            return;
        }
        if let Err(e) = self.wq.write_to(&mut WriteHalf(&self.sock)) {
            if e.kind() != io::ErrorKind::WouldBlock {
                self.broken = true;
            }
        }
    }

    /// Writes what the queue holds and keeps the write interest in step with it.
    pub fn flush(&mut self, ev: &EventLoop) {
        self.write_now();
        if self.broken {
            return;
        }
        let want = !self.wq.is_empty();
        if want != self.write_armed {
            let interest = if want {
                Interest::READ_WRITE
            } else {
                Interest::READABLE
            };
            if ev.modify(self.sock.as_fd(), self.token, interest).is_err() {
                self.broken = true;
            }
            self.write_armed = want;
        }
    }

    /// Whether ERROR or BYE was queued (nothing more is read).
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// The code of the ERROR this link sent, if it sent one.
    pub fn error_sent(&self) -> Option<ErrorCode> {
        self.error_sent
    }

    /// Whether the connection should be dropped now: the socket failed or the control
    /// queue overflowed, or it is closing and everything has been written.
    pub fn done(&self) -> bool {
        self.broken || (self.closing && self.wq.is_empty())
    }

    /// Marks the link unusable (the role then drops it).
    pub fn set_broken(&mut self) {
        self.broken = true;
    }
}

struct WriteHalf<'a>(&'a TcpStream);

impl io::Write for WriteHalf<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::Write::write(&mut &*self.0, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Encodes an AUDIO frame on track 0 whose samples come in two slices.
fn encode_two(
    out: &mut [u8],
    seq: u32,
    flags: u16,
    h: &AudioHeader,
    a: &[f32],
    b: &[f32],
) -> Result<usize, EncodeError> {
    h.validate().map_err(|e| EncodeError::Invalid(e.detail))?;
    if a.len() + b.len() != h.samples() {
        return Err(EncodeError::Invalid(
            "sample count does not match the header".into(),
        ));
    }
    let total = HEADER_LEN + h.payload_len();
    let Some(out) = out.get_mut(..total) else {
        return Err(EncodeError::BufferTooSmall {
            need: total,
            have: out.len(),
        });
    };
    let (head, rest) = out.split_at_mut(HEADER_LEN);
    let (sub, data) = rest.split_at_mut(AUDIO_HEADER_LEN);
    Header {
        flags,
        ..Header::new(Kind::Audio, 0, seq, h.payload_len() as u32)
    }
    .write(
        head.try_into()
            .map_err(|_| EncodeError::Invalid("header".into()))?,
    );
    h.write(
        sub.try_into()
            .map_err(|_| EncodeError::Invalid("sub-header".into()))?,
    );
    // Each slice in its own straight loop: a chained iterator kept the compiler from
    // vectorising the copy, which runs once per listener per period at a hub.
    let width = match h.format {
        AudioFormat::F32 => 4,
        AudioFormat::S16 => 2,
    };
    let (da, db) = data.split_at_mut((a.len() * width).min(data.len()));
    put_f32_samples(da, a, h.format);
    put_f32_samples(db, b, h.format);
    Ok(total)
}

#[cfg(test)]
mod tests;
