//! Encoders for the non-audio frames, writing into caller-provided buffers.
//!
//! Like [`encode_audio`](super::encode_audio) they never allocate on success: JSON is
//! serialised by `serde_json` straight into the slice after a header placeholder, and the
//! header's `len` is patched afterwards.

use std::io::Write;

use serde::Serialize;

use super::MAX_JSON_LEN;
use super::audio::EncodeError;
use super::error::ProtocolError;
use super::header::{HEADER_LEN, Header, Kind};
use super::json::ErrorMsg;

fn header_into(out: &mut [u8], h: Header) -> Result<(), EncodeError> {
    let need = HEADER_LEN + h.len as usize;
    if out.len() < need {
        return Err(EncodeError::BufferTooSmall {
            need,
            have: out.len(),
        });
    }
    h.write((&mut out[..HEADER_LEN]).try_into().expect("16 bytes"));
    Ok(())
}

/// Encodes a JSON frame (HELLO, WELCOME, METADATA, QOS or ERROR) into `out` and returns
/// its length.
///
/// # Errors
/// [`EncodeError::Invalid`] when `kind` is not a JSON kind, the value is not an object or
/// the payload would exceed 1 MiB; [`EncodeError::BufferTooSmall`] when `out` is short.
///
/// # Example
/// ```
/// use izyrt::wire::{encode_json, Kind};
/// let mut out = [0u8; 64];
/// let n = encode_json(&mut out, Kind::Error, 0, 0, &serde_json::json!({"code":"hub_full","message":""})).unwrap();
/// assert_eq!(&out[16..n], br#"{"code":"hub_full","message":""}"#);
/// ```
pub fn encode_json<T: Serialize + ?Sized>(
    out: &mut [u8],
    kind: Kind,
    track: u16,
    seq: u32,
    value: &T,
) -> Result<usize, EncodeError> {
    if !kind.is_json() {
        return Err(EncodeError::Invalid(format!(
            "{} does not carry JSON",
            kind.name()
        )));
    }
    let have = out.len();
    let Some(body) = out.get_mut(HEADER_LEN..) else {
        return Err(EncodeError::BufferTooSmall {
            need: HEADER_LEN,
            have,
        });
    };
    let room = body.len();
    let mut w: &mut [u8] = body;
    if let Err(e) = serde_json::to_writer(&mut w, value) {
        if !e.is_io() {
            return Err(EncodeError::Invalid(format!("cannot serialise: {e}")));
        }
        let mut count = CountingSink(0);
        serde_json::to_writer(&mut count, value)
            .map_err(|e| EncodeError::Invalid(e.to_string()))?;
        return Err(EncodeError::BufferTooSmall {
            need: HEADER_LEN + count.0,
            have,
        });
    }
    let len = room - w.len();
    let body = &out[HEADER_LEN..HEADER_LEN + len];
    if body.first() != Some(&b'{') {
        return Err(EncodeError::Invalid(
            "a JSON payload must be an object".into(),
        ));
    }
    if len > MAX_JSON_LEN {
        return Err(EncodeError::Invalid(format!(
            "JSON payload of {len} bytes over the 1 MiB limit"
        )));
    }
    header_into(out, Header::new(kind, track, seq, len as u32))?;
    Ok(HEADER_LEN + len)
}

/// [`encode_json`] into a growable buffer: `out` is grown to fit when it is too short
/// (allocating only then) and the frame is `out[..n]`.
///
/// # Errors
/// As [`encode_json`], except that a short buffer is never an error.
///
/// # Example
/// ```
/// use izyrt::wire::{encode_json_vec, Kind};
/// let mut out = Vec::new();
/// let n = encode_json_vec(&mut out, Kind::Metadata, 3, &serde_json::json!({"a": 1})).unwrap();
/// assert_eq!(&out[16..n], br#"{"a":1}"#);
/// ```
pub fn encode_json_vec<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    kind: Kind,
    seq: u32,
    value: &T,
) -> Result<usize, EncodeError> {
    loop {
        match encode_json(out, kind, 0, seq, value) {
            // Each retry grows `out` (to the header, then to the whole frame).
            Err(EncodeError::BufferTooSmall { need, have }) if need > have => {
                out.resize(need, 0);
            }
            done => return done,
        }
    }
}

struct CountingSink(usize);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encodes a PING or PONG carrying `clock_ns` and returns its length (24).
///
/// # Errors
/// [`EncodeError::Invalid`] for another kind; [`EncodeError::BufferTooSmall`].
///
/// # Example
/// ```
/// use izyrt::wire::{encode_ping, Kind};
/// let mut out = [0u8; 24];
/// encode_ping(&mut out, Kind::Ping, 1, 42).unwrap(); // the spec's vector P1
/// assert_eq!(out[3], 6);
/// ```
pub fn encode_ping(
    out: &mut [u8],
    kind: Kind,
    seq: u32,
    clock_ns: u64,
) -> Result<usize, EncodeError> {
    if !matches!(kind, Kind::Ping | Kind::Pong) {
        return Err(EncodeError::Invalid(format!(
            "{} is not ping or pong",
            kind.name()
        )));
    }
    header_into(out, Header::new(kind, 0, seq, 8))?;
    out[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&clock_ns.to_le_bytes());
    Ok(HEADER_LEN + 8)
}

/// Encodes a BYE (empty payload) and returns its length (16).
///
/// # Errors
/// [`EncodeError::BufferTooSmall`].
pub fn encode_bye(out: &mut [u8], seq: u32) -> Result<usize, EncodeError> {
    header_into(out, Header::new(Kind::Bye, 0, seq, 0))?;
    Ok(HEADER_LEN)
}

/// Encodes an ERROR for a protocol error and returns its length.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`].
pub fn encode_error(out: &mut [u8], seq: u32, e: &ProtocolError) -> Result<usize, EncodeError> {
    encode_json(out, Kind::Error, 0, seq, &ErrorMsg::from(e))
}
