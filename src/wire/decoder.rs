//! The incremental decoder for nonblocking byte streams (net thread).
//!
//! Design. Bytes arrive split anywhere: one at a time, or many frames per read. The
//! decoder owns one fixed buffer per connection and reads the socket straight into it;
//! frames are handed out as borrowed views ([`Frame`]), so a frame's bytes are copied once,
//! by the kernel, and never moved afterwards. There is no compaction: instead the buffer is
//! split into a *read zone* (`zone` bytes) and a tail as long as the largest frame that can
//! be valid. Ordinary reads stop at the end of the zone, so every frame that starts inside
//! the zone fits in the buffer where it is. Once the zone is full, reads ask for exactly
//! the bytes that complete the current frame; that frame then ends the buffered data, and
//! once it is consumed the buffer is empty and starts again at 0.
//!
//! Memory. Room for the largest valid frame (`zone + MAX_BUFFERED_FRAME`, about 1.1 MiB)
//! would be resident for every connection: the RT roles lock all memory
//! (`mlockall(MCL_FUTURE)`), so even untouched zeroed pages count, and at 128 peers that
//! was most of the hub's RSS. So the tail starts at [`SMALL_TAIL`] (64 KiB, far above
//! an AUDIO frame of 1024 stereo f32 frames) and grows once, to the full size, the first
//! time a frame longer than it must be completed; it never shrinks. The growth happens in
//! [`Decoder::read_from`], on the net thread, outside the AUDIO paths.
//!
//! Frames of unknown kinds are reported with their header only and their payload is
//! discarded as it streams past, never buffered: up to 2 MiB of it costs no memory.
//! After a protocol error the decoder stays failed: the spec forbids resynchronising.

use std::io::{self, Read};

use super::MAX_JSON_LEN;
use super::audio::{AudioView, MAX_AUDIO_PAYLOAD};
use super::error::{ErrorCode, ProtocolError};
use super::header::{HEADER_LEN, Header, Kind};

/// The largest frame the decoder buffers whole: header plus the largest valid payload.
pub const MAX_BUFFERED_FRAME: usize = HEADER_LEN
    + if MAX_AUDIO_PAYLOAD > MAX_JSON_LEN {
        MAX_AUDIO_PAYLOAD
    } else {
        MAX_JSON_LEN
    };

/// Default size of the read zone (bytes a single ordinary read may bring in).
pub const DEFAULT_ZONE: usize = 64 * 1024;

/// The tail a decoder starts with: frames up to this long never make it grow.
pub const SMALL_TAIL: usize = 64 * 1024;

/// One decoded frame, borrowed from the decoder's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Byte offset of the frame's first byte in the stream.
    pub offset: u64,
    /// The frame header.
    pub header: Header,
    /// The payload; empty for a frame of unknown kind (its payload is skipped, not kept).
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The known kind, `None` for a kind to ignore.
    pub fn kind(&self) -> Option<Kind> {
        self.header.kind()
    }

    /// The AUDIO payload (already validated by the decoder).
    ///
    /// # Errors
    /// `bad_audio` when this frame is not AUDIO or is inconsistent.
    pub fn audio(&self) -> Result<AudioView<'a>, ProtocolError> {
        if self.kind() != Some(Kind::Audio) {
            return Err(ProtocolError::new(
                ErrorCode::BadAudio,
                "not an AUDIO frame",
            ));
        }
        AudioView::parse(self.payload)
    }

    /// The clock of a PING or PONG.
    pub fn clock_ns(&self) -> Option<u64> {
        match self.kind() {
            Some(Kind::Ping | Kind::Pong) => self
                .payload
                .first_chunk::<8>()
                .map(|b| u64::from_le_bytes(*b)),
            _ => None,
        }
    }
}

/// Decodes streamproto1 frames from a byte stream fed piecewise.
///
/// Use: call [`Decoder::next_frame`] until it returns `Ok(None)`, then give it more bytes
/// with [`Decoder::read_from`] (a socket or file) or [`Decoder::feed`] (a slice), and repeat.
///
/// # Example
/// ```
/// use izyrt::wire::{Decoder, Kind, encode_ping};
/// let mut bytes = [0u8; 24];
/// encode_ping(&mut bytes, Kind::Ping, 1, 42).unwrap();
/// let mut dec = Decoder::new();
/// let mut rest = &bytes[..];
/// let mut clocks = Vec::new();
/// while !rest.is_empty() {
///     let n = dec.feed(&rest[..rest.len().min(5)]); // five bytes at a time
///     rest = &rest[n..];
///     while let Some(frame) = dec.next_frame().unwrap() {
///         clocks.push(frame.clock_ns().unwrap());
///     }
/// }
/// assert_eq!(clocks, [42]);
/// ```
#[derive(Debug)]
pub struct Decoder {
    buf: Box<[u8]>,
    zone: usize,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
    /// Payload bytes of an unknown-kind frame still to discard.
    skip: u64,
    /// Stream offset of the frame being skipped.
    skip_from: u64,
    failed: Option<ProtocolError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with the default read zone.
    pub fn new() -> Decoder {
        Decoder::with_zone(DEFAULT_ZONE)
    }

    /// A decoder whose ordinary reads bring in at most `zone` bytes (at least 16).
    pub fn with_zone(zone: usize) -> Decoder {
        let zone = zone.max(HEADER_LEN);
        Decoder {
            buf: vec![0u8; zone + SMALL_TAIL.min(MAX_BUFFERED_FRAME)].into_boxed_slice(),
            zone,
            start: 0,
            end: 0,
            offset: 0,
            skip: 0,
            skip_from: 0,
            failed: None,
        }
    }

    /// The stream offset of the next byte to decode (the start of the faulty frame after
    /// an error).
    pub fn offset(&self) -> u64 {
        if self.skip > 0 {
            self.skip_from
        } else {
            self.offset
        }
    }

    /// `Some(offset)` of a frame that has started but is not complete: at the end of the
    /// stream this means it was truncated.
    pub fn partial(&self) -> Option<u64> {
        (self.skip > 0 || self.end > self.start).then(|| self.offset())
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    /// The protocol error of the first faulty frame; the decoder then stays failed and
    /// returns the same error on every call.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, ProtocolError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.skip > 0 {
            let n = self.skip.min((self.end - self.start) as u64);
            self.start += n as usize;
            self.offset += n;
            self.skip -= n;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        let avail = self.end - self.start;
        let Some(head) = self.buf[self.start..self.end].first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = match Header::parse(head) {
            Ok(h) => h,
            Err(e) => return Err(self.fail(e)),
        };
        let offset = self.offset;
        let Some(kind) = header.kind() else {
            self.start += HEADER_LEN;
            self.offset += HEADER_LEN as u64;
            self.skip = u64::from(header.len);
            self.skip_from = offset;
            return Ok(Some(Frame {
                offset,
                header,
                payload: &[],
            }));
        };
        let total = HEADER_LEN + header.len as usize;
        if avail < total {
            return Ok(None);
        }
        let (from, to) = (self.start + HEADER_LEN, self.start + total);
        if kind == Kind::Audio {
            if let Err(e) = AudioView::parse(&self.buf[from..to]) {
                return Err(self.fail(e));
            }
        }
        self.start += total;
        self.offset += total as u64;
        Ok(Some(Frame {
            offset,
            header,
            payload: &self.buf[from..to],
        }))
    }

    fn fail(&mut self, e: ProtocolError) -> ProtocolError {
        self.failed = Some(e.clone());
        e
    }

    /// How many bytes the next read may bring in without breaking the no-move rule.
    fn window(&mut self) -> (usize, usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.skip > 0 {
            // The buffer is empty while skipping; take no byte past the skipped payload.
            let n = self.skip.min(self.zone as u64) as usize;
            return (self.end, n);
        }
        if self.end < self.zone {
            return (self.end, self.zone - self.end);
        }
        let avail = self.end - self.start;
        let need = match self.buf[self.start..self.end].first_chunk::<HEADER_LEN>() {
            None => HEADER_LEN - avail,
            // A complete header was already checked by `next_frame`, which would have
            // failed or returned the frame; what remains is the rest of this frame.
            Some(head) => match Header::parse(head) {
                Ok(h) => (HEADER_LEN + h.len as usize).saturating_sub(avail),
                Err(_) => 0,
            },
        };
        if self.end + need > self.buf.len() {
            self.grow();
        }
        (self.end, need)
    }

    /// Gives the buffer its full size (room for the largest valid frame after a full
    /// zone), keeping what it holds. Once per decoder at most.
    fn grow(&mut self) {
        let mut full = vec![0u8; self.zone + MAX_BUFFERED_FRAME].into_boxed_slice();
        full[..self.end].copy_from_slice(&self.buf[..self.end]);
        self.buf = full;
    }

    /// Reads once from `r` into the buffer and returns the bytes read (0 only at the end
    /// of the stream). Call it only after [`Decoder::next_frame`] returned `Ok(None)`.
    ///
    /// # Errors
    /// The reader's error (`WouldBlock` on a nonblocking socket with nothing to read);
    /// `InvalidInput` when called while the decoder has failed or complete frames are
    /// still waiting to be taken.
    pub fn read_from<R: Read + ?Sized>(&mut self, r: &mut R) -> io::Result<usize> {
        let (at, n) = self.window();
        if n == 0 || self.failed.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "decoder cannot take bytes now: take the waiting frames (next_frame) first",
            ));
        }
        // The header bounds keep every buffered frame within the buffer; clamp anyway so
        // a future bound mistake is a stalled frame, never an out-of-bounds slice.
        let n = n.min(self.buf.len() - at);
        let got = r.read(&mut self.buf[at..at + n])?;
        self.end += got;
        Ok(got)
    }

    /// Copies as many bytes of `bytes` as the decoder can take now and returns how many.
    /// Call it only after [`Decoder::next_frame`] returned `Ok(None)`.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut r = bytes;
        self.read_from(&mut r).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode_json_vec;

    /// A METADATA frame whose JSON object holds an `n`-byte string.
    fn metadata(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let value = serde_json::json!({ "pad": "m".repeat(n) });
        let len = encode_json_vec(&mut out, Kind::Metadata, 7, &value).unwrap();
        out.truncate(len);
        out
    }

    #[test]
    fn the_buffer_grows_once_for_a_long_frame_and_keeps_the_stream() {
        let mut d = Decoder::new();
        assert_eq!(d.buf.len(), DEFAULT_ZONE + SMALL_TAIL);
        // Short frames across many zones: no growth.
        let short = metadata(1000);
        let mut stream: Vec<u8> = short.repeat(200);
        // A frame longer than the small tail, straddling the end of a zone; then more.
        let long = metadata(300 * 1024);
        stream.extend_from_slice(&long);
        stream.extend_from_slice(&short.repeat(3));
        let mut input = &stream[..];
        let mut lens = Vec::new();
        let mut grown_at = None;
        loop {
            while let Some(f) = d.next_frame().unwrap() {
                lens.push(f.payload.len());
            }
            if input.is_empty() {
                break;
            }
            let before = d.buf.len();
            let n = d.read_from(&mut input).unwrap();
            assert!(n > 0);
            if d.buf.len() != before {
                assert_eq!(grown_at, None, "grew twice");
                grown_at = Some(lens.len());
            }
        }
        let (s, l) = (short.len() - HEADER_LEN, long.len() - HEADER_LEN);
        let mut expect = vec![s; 200];
        expect.push(l);
        expect.extend([s; 3]);
        assert_eq!(lens, expect);
        // It grew while the long frame was being completed, to the full size.
        assert_eq!(grown_at, Some(200));
        assert_eq!(d.buf.len(), DEFAULT_ZONE + MAX_BUFFERED_FRAME);
        assert_eq!(d.partial(), None);
    }
}
