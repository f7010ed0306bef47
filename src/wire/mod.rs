//! streamproto1, the wire format (`../shared/streamproto1.md`, normative).
//!
//! Used by the net thread (and `izyrt dump`). Encoding writes into caller-provided
//! buffers and decoding borrows from one fixed buffer per connection, so the audio hot
//! path allocates nothing; the JSON kinds are parsed into typed, validated structs.
//!
//! # Example
//! ```
//! use izyrt::wire::{encode_audio, AudioFormat, AudioHeader, Decoder, Samples};
//! let h = AudioHeader { sample_rate: 48_000, channels: 2, format: AudioFormat::F32, frames: 2,
//!                       position: 128, origin_ns: 1000, echo_ns: 0 };
//! let mut buf = [0u8; 128];
//! let n = encode_audio(&mut buf, 0, 7, &h, Samples::F32(&[0.5, -0.5, 0.25, -0.25])).unwrap();
//! let mut dec = Decoder::new();
//! assert_eq!(dec.feed(&buf[..n]), n);
//! let frame = dec.next_frame().unwrap().unwrap();
//! assert_eq!(frame.audio().unwrap().header, h);
//! ```

mod audio;
mod decoder;
mod encode;
mod error;
mod header;
mod json;

pub(crate) use audio::put_f32_samples;
pub use audio::{
    AUDIO_HEADER_LEN, AudioFormat, AudioHeader, AudioView, Converted, EncodeError,
    MAX_AUDIO_PAYLOAD, MAX_CHANNELS, MAX_FRAMES, RATE_RANGE, Samples, encode_audio,
};
pub use decoder::{DEFAULT_ZONE, Decoder, Frame, MAX_BUFFERED_FRAME};
pub use encode::{encode_bye, encode_error, encode_json, encode_json_vec, encode_ping};
pub use error::{ErrorCode, ProtocolError};
pub use header::{FLAG_CLOCK_LOCKED, HEADER_LEN, Header, Kind, MAGIC, VERSION};
pub use json::{
    AudioParams, ErrorMsg, Hello, Mix, PROTO, QosHead, QosMetrics, Role, Welcome,
    check_json_object, json_depth, parse_object, valid_user,
};

/// Largest `len` a frame may declare (2 MiB).
pub const MAX_FRAME_LEN: u32 = 2 * 1024 * 1024;
/// Largest JSON payload (1 MiB).
pub const MAX_JSON_LEN: usize = 1024 * 1024;
/// Deepest JSON nesting allowed.
pub const MAX_JSON_DEPTH: usize = 32;
