//! The C ABI of izyrt (`include/izyrt.h`): the streamproto1 codec for programs that
//! embed the engine.
//!
//! Every exported function catches panics (`catch_unwind`) so none unwinds into C, and
//! checks its pointers; errors are negative `IZYRT_ERR_*` codes.
#![deny(missing_docs)]
// The C names are the ABI, as spelled in `include/izyrt.h`.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

use izyrt::wire::{
    AudioFormat, AudioHeader, AudioView, Decoder, EncodeError, ProtocolError, Samples,
};

/// The frame would not be valid streamproto1.
pub const IZYRT_ERR_INVALID: i64 = -1;
/// The output buffer is too short.
pub const IZYRT_ERR_TOO_SMALL: i64 = -2;
/// A required pointer was NULL.
pub const IZYRT_ERR_NULL: i64 = -3;
/// The stream is malformed.
pub const IZYRT_ERR_PROTOCOL: i64 = -4;
/// A panic was caught.
pub const IZYRT_ERR_PANIC: i64 = -5;

/// The AUDIO sub-header, as in `izyrt.h`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct izyrt_audio_header {
    /// Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// 1 = f32, 2 = s16.
    pub format: u16,
    /// Frames.
    pub frames: u32,
    /// Stream position of the first frame.
    pub position: u64,
    /// Sender clock, ns.
    pub origin_ns: u64,
    /// Round-trip echo, ns.
    pub echo_ns: u64,
}

/// One decoded frame, as in `izyrt.h`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct izyrt_frame {
    /// Byte offset in the stream.
    pub offset: u64,
    /// Raw kind.
    pub kind: u8,
    /// Track id.
    pub track: u16,
    /// Flags.
    pub flags: u16,
    /// Sequence number.
    pub seq: u32,
    /// Payload length from the header.
    pub len: u32,
    /// Payload bytes (valid until the next decoder call).
    pub payload: *const u8,
    /// Payload bytes available (0 for unknown kinds).
    pub payload_len: usize,
}

/// An opaque decoder.
#[derive(Debug)]
pub struct izyrt_decoder {
    inner: Decoder,
    error: Option<ProtocolError>,
}

fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

fn to_header(h: &izyrt_audio_header) -> Option<AudioHeader> {
    Some(AudioHeader {
        sample_rate: h.sample_rate,
        channels: h.channels,
        format: AudioFormat::from_wire(h.format)?,
        frames: h.frames,
        position: h.position,
        origin_ns: h.origin_ns,
        echo_ns: h.echo_ns,
    })
}

/// The library version (static, NUL-terminated).
#[unsafe(no_mangle)]
pub extern "C" fn izyrt_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Encodes one AUDIO frame; see `izyrt.h`.
///
/// # Safety
/// `out` must be valid for `out_len` bytes, `header` for one struct, `samples` for
/// `n_samples` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn izyrt_encode_audio(
    out: *mut u8,
    out_len: usize,
    track: u16,
    seq: u32,
    header: *const izyrt_audio_header,
    samples: *const f32,
    n_samples: usize,
) -> i64 {
    guard(IZYRT_ERR_PANIC, || {
        if out.is_null() || header.is_null() || (samples.is_null() && n_samples > 0) {
            return IZYRT_ERR_NULL;
        }
        // SAFETY: non-null and sized as the caller promised.
        let (out, h) = unsafe { (std::slice::from_raw_parts_mut(out, out_len), &*header) };
        let samples = if n_samples == 0 {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(samples, n_samples) }
        };
        let Some(h) = to_header(h) else {
            return IZYRT_ERR_INVALID;
        };
        match izyrt::wire::encode_audio(out, track, seq, &h, Samples::F32(samples)) {
            Ok(n) => n as i64,
            Err(EncodeError::BufferTooSmall { .. }) => IZYRT_ERR_TOO_SMALL,
            Err(_) => IZYRT_ERR_INVALID,
        }
    })
}

/// Parses an AUDIO payload; see `izyrt.h`.
///
/// # Safety
/// `payload` valid for `payload_len` bytes, `header` for one struct, `out` for `out_len` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn izyrt_audio_read(
    payload: *const u8,
    payload_len: usize,
    header: *mut izyrt_audio_header,
    out: *mut f32,
    out_len: usize,
) -> i64 {
    guard(IZYRT_ERR_PANIC, || {
        if payload.is_null() || header.is_null() || (out.is_null() && out_len > 0) {
            return IZYRT_ERR_NULL;
        }
        // SAFETY: non-null and sized as the caller promised.
        let payload = unsafe { std::slice::from_raw_parts(payload, payload_len) };
        let Ok(v) = AudioView::parse(payload) else {
            return IZYRT_ERR_PROTOCOL;
        };
        let h = v.header;
        // SAFETY: non-null, one struct.
        unsafe {
            *header = izyrt_audio_header {
                sample_rate: h.sample_rate,
                channels: h.channels,
                format: h.format.wire(),
                frames: h.frames,
                position: h.position,
                origin_ns: h.origin_ns,
                echo_ns: h.echo_ns,
            };
        }
        if out_len == 0 {
            return 0;
        }
        // SAFETY: non-null, out_len floats.
        let out = unsafe { std::slice::from_raw_parts_mut(out, out_len) };
        v.read_f32(out) as i64
    })
}

/// A new decoder, NULL on failure. Free it with [`izyrt_decoder_free`].
#[unsafe(no_mangle)]
pub extern "C" fn izyrt_decoder_new() -> *mut izyrt_decoder {
    guard(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(izyrt_decoder {
            inner: Decoder::new(),
            error: None,
        }))
    })
}

/// Frees a decoder (NULL is ignored).
///
/// # Safety
/// `d` must come from [`izyrt_decoder_new`] and not be used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn izyrt_decoder_free(d: *mut izyrt_decoder) {
    if !d.is_null() {
        // SAFETY: from Box::into_raw in izyrt_decoder_new.
        guard((), || drop(unsafe { Box::from_raw(d) }));
    }
}

/// Feeds bytes; returns how many were taken.
///
/// # Safety
/// `d` from [`izyrt_decoder_new`]; `bytes` valid for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn izyrt_decoder_feed(
    d: *mut izyrt_decoder,
    bytes: *const u8,
    len: usize,
) -> usize {
    guard(0, || {
        if d.is_null() || bytes.is_null() {
            return 0;
        }
        // SAFETY: as promised by the caller.
        let (d, bytes) = unsafe { (&mut *d, std::slice::from_raw_parts(bytes, len)) };
        d.inner.feed(bytes)
    })
}

/// The next frame: 1 written, 0 more bytes needed, negative on error.
///
/// # Safety
/// `d` from [`izyrt_decoder_new`]; `frame` valid for one struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn izyrt_decoder_next(
    d: *mut izyrt_decoder,
    frame: *mut izyrt_frame,
) -> c_int {
    guard(IZYRT_ERR_PANIC as c_int, || {
        if d.is_null() || frame.is_null() {
            return IZYRT_ERR_NULL as c_int;
        }
        // SAFETY: as promised by the caller.
        let d = unsafe { &mut *d };
        match d.inner.next_frame() {
            Ok(None) => 0,
            Ok(Some(f)) => {
                let h = f.header;
                // SAFETY: one struct.
                unsafe {
                    *frame = izyrt_frame {
                        offset: f.offset,
                        kind: h.kind,
                        track: h.track,
                        flags: h.flags,
                        seq: h.seq,
                        len: h.len,
                        payload: f.payload.as_ptr(),
                        payload_len: f.payload.len(),
                    };
                }
                1
            }
            Err(e) => {
                d.error = Some(e);
                IZYRT_ERR_PROTOCOL as c_int
            }
        }
    })
}

/// The error code of a failed decoder (static string), or NULL.
///
/// # Safety
/// `d` from [`izyrt_decoder_new`] or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn izyrt_decoder_error(d: *const izyrt_decoder) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: as promised by the caller.
        match unsafe { d.as_ref() }.and_then(|d| d.error.as_ref()) {
            Some(e) => code_cstr(e.code.as_str()),
            None => std::ptr::null(),
        }
    })
}

/// A static NUL-terminated copy of a static error-code name.
fn code_cstr(code: &'static str) -> *const c_char {
    use izyrt::wire::ErrorCode;
    const NAMES: [&str; 13] = [
        "bad_magic\0",
        "bad_version\0",
        "frame_too_large\0",
        "bad_audio\0",
        "bad_json\0",
        "hello_expected\0",
        "hello_timeout\0",
        "unauthorized\0",
        "format_unsupported\0",
        "hub_full\0",
        "replaced\0",
        "internal\0",
        "bad_frame\0",
    ];
    let i = ErrorCode::ALL
        .iter()
        .position(|c| c.as_str() == code)
        .unwrap_or(11);
    NAMES[i].as_ptr().cast()
}
