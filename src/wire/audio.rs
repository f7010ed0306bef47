//! The AUDIO payload: a 40-byte sub-header, then interleaved f32 or s16 LE samples.
//!
//! Decoding borrows the samples from the receive buffer ([`AudioView`]) and converts them
//! straight into the caller's f32 buffer, so no frame is copied on the way to the jitter
//! buffer. Encoding writes into a caller-provided slice. Neither allocates.

use super::error::{ErrorCode, ProtocolError};
use super::header::{HEADER_LEN, Header, Kind};
use crate::dsp::convert::{f32_to_s16, s16_to_f32};

/// Length of the AUDIO sub-header.
pub const AUDIO_HEADER_LEN: usize = 40;
/// Most frames in one AUDIO frame.
pub const MAX_FRAMES: u32 = 4096;
/// Most channels.
pub const MAX_CHANNELS: u16 = 64;
/// Allowed sample rates.
pub const RATE_RANGE: std::ops::RangeInclusive<u32> = 8_000..=384_000;
/// The largest AUDIO payload that can be valid (4096 frames × 64 channels × 4 bytes).
pub const MAX_AUDIO_PAYLOAD: usize =
    AUDIO_HEADER_LEN + MAX_FRAMES as usize * MAX_CHANNELS as usize * 4;

/// Sample encoding on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// 32-bit float, little-endian (wire value 1).
    F32,
    /// 16-bit signed integer, little-endian (wire value 2).
    S16,
}

impl AudioFormat {
    /// The format for a wire value.
    pub fn from_wire(v: u16) -> Option<AudioFormat> {
        match v {
            1 => Some(AudioFormat::F32),
            2 => Some(AudioFormat::S16),
            _ => None,
        }
    }
    /// The wire value.
    pub fn wire(self) -> u16 {
        match self {
            AudioFormat::F32 => 1,
            AudioFormat::S16 => 2,
        }
    }
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            AudioFormat::F32 => 4,
            AudioFormat::S16 => 2,
        }
    }
    /// The name used in JSON (`f32`, `s16`).
    pub fn name(self) -> &'static str {
        match self {
            AudioFormat::F32 => "f32",
            AudioFormat::S16 => "s16",
        }
    }
    /// The format for a JSON name.
    pub fn from_name(s: &str) -> Option<AudioFormat> {
        match s {
            "f32" => Some(AudioFormat::F32),
            "s16" => Some(AudioFormat::S16),
            _ => None,
        }
    }
}

/// The AUDIO sub-header.
///
/// # Example
/// ```
/// use izyrt::wire::{AudioFormat, AudioHeader};
/// let h = AudioHeader { sample_rate: 48_000, channels: 2, format: AudioFormat::F32, frames: 64,
///                       position: 0, origin_ns: 0, echo_ns: 0 };
/// assert_eq!(h.payload_len(), 40 + 64 * 2 * 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioHeader {
    /// Hz, 8000..=384000.
    pub sample_rate: u32,
    /// 1..=64.
    pub channels: u16,
    /// Sample encoding.
    pub format: AudioFormat,
    /// Frames in this packet, 1..=4096.
    pub frames: u32,
    /// Index of the first frame in the sender's stream.
    pub position: u64,
    /// Sender's monotonic clock (ns) when the first frame was captured or produced.
    pub origin_ns: u64,
    /// Round-trip echo, 0 when there is nothing to echo.
    pub echo_ns: u64,
}

impl AudioHeader {
    /// A 64-frame stereo f32 packet at 48 kHz, position 0, no timestamps: the header unit
    /// tests start from.
    #[cfg(test)]
    pub(crate) fn for_tests() -> AudioHeader {
        AudioHeader {
            sample_rate: 48_000,
            channels: 2,
            format: AudioFormat::F32,
            frames: 64,
            position: 0,
            origin_ns: 0,
            echo_ns: 0,
        }
    }

    /// Interleaved samples in the packet.
    pub fn samples(&self) -> usize {
        self.frames as usize * self.channels as usize
    }

    /// The payload length this header implies.
    pub fn payload_len(&self) -> usize {
        AUDIO_HEADER_LEN + self.samples() * self.format.bytes()
    }

    /// Checks the ranges of the spec.
    ///
    /// # Errors
    /// `bad_audio` naming the field out of range.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let bad = |what: String| Err(ProtocolError::new(ErrorCode::BadAudio, what));
        if !RATE_RANGE.contains(&self.sample_rate) {
            return bad(format!(
                "sample_rate {} outside 8000..=384000",
                self.sample_rate
            ));
        }
        if !(1..=MAX_CHANNELS).contains(&self.channels) {
            return bad(format!("channels {} outside 1..=64", self.channels));
        }
        if !(1..=MAX_FRAMES).contains(&self.frames) {
            return bad(format!("frames {} outside 1..=4096", self.frames));
        }
        Ok(())
    }

    /// Parses and validates the sub-header of a whole AUDIO payload.
    ///
    /// # Errors
    /// `bad_audio` when the payload is shorter than 40 bytes, a field is out of range,
    /// the format is unknown, or `len` differs from `40 + frames × channels × bytes`.
    pub fn parse(payload: &[u8]) -> Result<AudioHeader, ProtocolError> {
        let Some(b) = payload.first_chunk::<AUDIO_HEADER_LEN>() else {
            return Err(ProtocolError::new(
                ErrorCode::BadAudio,
                format!(
                    "AUDIO payload of {} bytes, shorter than its 40-byte sub-header",
                    payload.len()
                ),
            ));
        };
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let format = AudioFormat::from_wire(u16_at(6)).ok_or_else(|| {
            ProtocolError::new(
                ErrorCode::BadAudio,
                format!("format {} is not 1 (f32) or 2 (s16)", u16_at(6)),
            )
        })?;
        let h = AudioHeader {
            sample_rate: u32_at(0),
            channels: u16_at(4),
            format,
            frames: u32_at(8),
            position: u64_at(16),
            origin_ns: u64_at(24),
            echo_ns: u64_at(32),
        };
        h.validate()?;
        if payload.len() != h.payload_len() {
            return Err(ProtocolError::new(
                ErrorCode::BadAudio,
                format!(
                    "len {} but {} frames × {} channels of {} need {}",
                    payload.len(),
                    h.frames,
                    h.channels,
                    h.format.name(),
                    h.payload_len()
                ),
            ));
        }
        Ok(h)
    }

    /// Writes the sub-header (reserved field 0).
    pub fn write(&self, out: &mut [u8; AUDIO_HEADER_LEN]) {
        out[0..4].copy_from_slice(&self.sample_rate.to_le_bytes());
        out[4..6].copy_from_slice(&self.channels.to_le_bytes());
        out[6..8].copy_from_slice(&self.format.wire().to_le_bytes());
        out[8..12].copy_from_slice(&self.frames.to_le_bytes());
        out[12..16].fill(0);
        out[16..24].copy_from_slice(&self.position.to_le_bytes());
        out[24..32].copy_from_slice(&self.origin_ns.to_le_bytes());
        out[32..40].copy_from_slice(&self.echo_ns.to_le_bytes());
    }
}

/// A validated AUDIO payload borrowed from the receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct AudioView<'a> {
    /// The sub-header.
    pub header: AudioHeader,
    /// The raw interleaved samples (`header.samples()` of them in `header.format`).
    pub data: &'a [u8],
}

impl<'a> AudioView<'a> {
    /// Validates a whole AUDIO payload and borrows its samples.
    ///
    /// # Errors
    /// As [`AudioHeader::parse`].
    pub fn parse(payload: &'a [u8]) -> Result<AudioView<'a>, ProtocolError> {
        let header = AudioHeader::parse(payload)?;
        Ok(AudioView {
            header,
            data: &payload[AUDIO_HEADER_LEN..],
        })
    }

    /// The `i`-th interleaved sample as f32 (s16 is scaled by 1/32768).
    fn sample(&self, i: usize) -> f32 {
        match self.header.format {
            AudioFormat::F32 => {
                f32::from_le_bytes(self.data[i * 4..i * 4 + 4].try_into().expect("4 bytes"))
            }
            AudioFormat::S16 => {
                s16_to_f32(i16::from_le_bytes([self.data[i * 2], self.data[i * 2 + 1]]))
            }
        }
    }

    /// Converts the samples into `out` as f32 and returns how many were written
    /// (`min(out.len(), header.samples())`). f32 samples that are NaN, infinite or
    /// subnormal are written as 0 ([`AudioView::read_f32_counted`] says how many).
    /// Allocation-free.
    ///
    /// # Example
    /// ```
    /// # use izyrt::wire::{AudioView, AudioHeader, AudioFormat, Samples, encode_audio};
    /// let h = AudioHeader { sample_rate: 48_000, channels: 1, format: AudioFormat::S16, frames: 2,
    ///                       position: 0, origin_ns: 0, echo_ns: 0 };
    /// let mut buf = [0u8; 64];
    /// let n = encode_audio(&mut buf, 0, 0, &h, Samples::F32(&[0.5, -1.0])).unwrap();
    /// let view = AudioView::parse(&buf[16..n]).unwrap();
    /// let mut out = [0.0f32; 2];
    /// assert_eq!(view.read_f32(&mut out), 2);
    /// assert_eq!(out, [0.5, -1.0]);
    /// ```
    pub fn read_f32(&self, out: &mut [f32]) -> usize {
        self.read_f32_counted(out).written
    }

    /// As [`AudioView::read_f32`], also counting the f32 samples zeroed because they were
    /// NaN, ±infinite or subnormal (one client must not put a full-scale click or NaN
    /// into everyone's mix, nor slow the mixer down with denormal arithmetic).
    ///
    /// # Example
    /// ```
    /// # use izyrt::wire::{AudioView, AudioHeader, AudioFormat, Samples, encode_audio};
    /// let h = AudioHeader { sample_rate: 48_000, channels: 1, format: AudioFormat::F32, frames: 4,
    ///                       position: 0, origin_ns: 0, echo_ns: 0 };
    /// let mut buf = [0u8; 96];
    /// let bad = [0.25, f32::NAN, f32::INFINITY, 1e-40];
    /// let n = encode_audio(&mut buf, 0, 0, &h, Samples::F32(&bad)).unwrap();
    /// let view = AudioView::parse(&buf[16..n]).unwrap();
    /// let mut out = [1.0f32; 4];
    /// let got = view.read_f32_counted(&mut out);
    /// assert_eq!((got.written, got.zeroed), (4, 3));
    /// assert_eq!(out, [0.25, 0.0, 0.0, 0.0]);
    /// ```
    pub fn read_f32_counted(&self, out: &mut [f32]) -> Converted {
        let n = out.len().min(self.header.samples());
        let zeroed = match self.header.format {
            AudioFormat::F32 => {
                // Without branches, so that it vectorises: it runs on every sample the
                // hub receives. A finite normal magnitude lies in [2^-126, f32::MAX]:
                // its bits minus those of 2^-126 are below 0x7F00_0000. Below that
                // range but not zero: subnormal; above: ±inf or NaN.
                let mut bad_samples = 0u32;
                for (o, b) in out[..n].iter_mut().zip(self.data.chunks_exact(4)) {
                    let bits = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    let magnitude = bits & 0x7FFF_FFFF;
                    let bad = magnitude != 0 && magnitude.wrapping_sub(0x0080_0000) >= 0x7F00_0000;
                    *o = f32::from_bits(if bad { 0 } else { bits });
                    bad_samples += u32::from(bad);
                }
                bad_samples as usize
            }
            AudioFormat::S16 => {
                for (o, b) in out[..n].iter_mut().zip(self.data.chunks_exact(2)) {
                    *o = s16_to_f32(i16::from_le_bytes([b[0], b[1]]));
                }
                0
            }
        };
        Converted { written: n, zeroed }
    }

    /// The absolute peak of the samples (NaN ignored), 0 for silence, 1.0 at full scale.
    pub fn peak(&self) -> f32 {
        (0..self.header.samples())
            .map(|i| self.sample(i).abs())
            .filter(|v| !v.is_nan())
            .fold(0.0, f32::max)
    }
}

/// What [`AudioView::read_f32_counted`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Converted {
    /// Samples written.
    pub written: usize,
    /// Of those, f32 samples zeroed because they were NaN, infinite or subnormal.
    pub zeroed: usize,
}

/// Samples handed to [`encode_audio`]; converted to the header's wire format as needed.
#[derive(Debug, Clone, Copy)]
pub enum Samples<'a> {
    /// Float samples; for s16 they are clamped to ±1 and rounded.
    F32(&'a [f32]),
    /// 16-bit samples; for f32 they are scaled by 1/32768.
    S16(&'a [i16]),
}

impl Samples<'_> {
    fn len(&self) -> usize {
        match self {
            Samples::F32(s) => s.len(),
            Samples::S16(s) => s.len(),
        }
    }
}

/// Writes `xs` into `out` as little-endian samples of `format` (as many as both hold):
/// the one sample loop of every AUDIO encoder, kept straight so that it vectorises.
pub(crate) fn put_f32_samples(out: &mut [u8], xs: &[f32], format: AudioFormat) {
    match format {
        AudioFormat::F32 => {
            for (o, x) in out.chunks_exact_mut(4).zip(xs) {
                o.copy_from_slice(&x.to_le_bytes());
            }
        }
        AudioFormat::S16 => {
            for (o, x) in out.chunks_exact_mut(2).zip(xs) {
                o.copy_from_slice(&f32_to_s16(*x).to_le_bytes());
            }
        }
    }
}

/// Encodes a whole AUDIO frame (header, sub-header, samples) into `out` and returns its
/// length. Allocation-free.
///
/// # Errors
/// [`EncodeError::Invalid`] when the header is out of range or the sample count differs
/// from `frames × channels`; [`EncodeError::BufferTooSmall`] when `out` is too short.
///
/// # Example
/// ```
/// use izyrt::wire::{encode_audio, AudioFormat, AudioHeader, Samples};
/// let h = AudioHeader { sample_rate: 48_000, channels: 2, format: AudioFormat::F32, frames: 2,
///                       position: 128, origin_ns: 1000, echo_ns: 0 };
/// let mut out = [0u8; 128];
/// let n = encode_audio(&mut out, 0, 7, &h, Samples::F32(&[0.5, -0.5, 0.25, -0.25])).unwrap();
/// assert_eq!(n, 72); // the spec's vector A1
/// ```
pub fn encode_audio(
    out: &mut [u8],
    track: u16,
    seq: u32,
    h: &AudioHeader,
    samples: Samples<'_>,
) -> Result<usize, EncodeError> {
    h.validate().map_err(|e| EncodeError::Invalid(e.detail))?;
    if samples.len() != h.samples() {
        return Err(EncodeError::Invalid(format!(
            "{} samples given for {} frames × {} channels",
            samples.len(),
            h.frames,
            h.channels
        )));
    }
    let payload = h.payload_len();
    let total = HEADER_LEN + payload;
    let Some(out) = out.get_mut(..total) else {
        return Err(EncodeError::BufferTooSmall {
            need: total,
            have: out.len(),
        });
    };
    let (head, rest) = out.split_at_mut(HEADER_LEN);
    Header::new(Kind::Audio, track, seq, payload as u32).write(head.try_into().expect("16 bytes"));
    let (sub, data) = rest.split_at_mut(AUDIO_HEADER_LEN);
    h.write(sub.try_into().expect("40 bytes"));
    match (h.format, samples) {
        (format, Samples::F32(s)) => put_f32_samples(data, s, format),
        (AudioFormat::F32, Samples::S16(s)) => {
            for (o, x) in data.chunks_exact_mut(4).zip(s) {
                o.copy_from_slice(&s16_to_f32(*x).to_le_bytes());
            }
        }
        (AudioFormat::S16, Samples::S16(s)) => {
            for (o, x) in data.chunks_exact_mut(2).zip(s) {
                o.copy_from_slice(&x.to_le_bytes());
            }
        }
    }
    Ok(total)
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too short.
    #[error("output buffer of {have} bytes, frame needs {need}")]
    BufferTooSmall {
        /// Bytes the frame needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The frame would not be valid streamproto1.
    #[error("invalid frame: {0}")]
    Invalid(String),
}
