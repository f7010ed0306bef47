//! The 16-byte frame header and the frame kinds.

use super::error::{ErrorCode, ProtocolError};
use super::{MAX_AUDIO_PAYLOAD, MAX_FRAME_LEN, MAX_JSON_LEN};

/// Length of the frame header in bytes.
pub const HEADER_LEN: usize = 16;
/// The two magic bytes, ASCII `IZ`.
pub const MAGIC: [u8; 2] = *b"IZ";
/// The protocol version this codec speaks.
pub const VERSION: u8 = 1;
/// AUDIO flag bit 0, `CLOCK_LOCKED` (an izyrt extension of the reserved `flags`, proposed
/// for the spec): the sender resamples this stream to the receiver's clock by a measured
/// estimate, so the frames arrive at the receiver's own rate. A client sets it on its
/// capture once its clock estimate is measured; the hub restarts its drift measurement of
/// that input where the bit changes, and shows it (`senderLocked`). A sender that does not
/// lock writes 0, as the spec asks of reserved bits, and a receiver that does not know the
/// bit ignores it.
///
/// # Example
/// ```
/// use izyrt::wire::{FLAG_CLOCK_LOCKED, Header, Kind};
/// let mut h = Header::new(Kind::Audio, 0, 1, 40);
/// h.flags |= FLAG_CLOCK_LOCKED;
/// let mut b = [0u8; 16];
/// h.write(&mut b);
/// assert_eq!(b[6..8], [1, 0]);
/// ```
pub const FLAG_CLOCK_LOCKED: u16 = 0x0001;

/// The frame kinds of streamproto1.
///
/// # Example
/// ```
/// use izyrt::wire::Kind;
/// assert_eq!(Kind::from_u8(3), Some(Kind::Audio));
/// assert_eq!(Kind::Audio.name(), "audio");
/// assert_eq!(Kind::from_u8(200), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Client → hub, the first frame of a connection (JSON).
    Hello = 1,
    /// Hub → client, the answer to HELLO (JSON).
    Welcome = 2,
    /// Audio, both ways (binary).
    Audio = 3,
    /// The sender's state (JSON).
    Metadata = 4,
    /// A `QOSMetrics` report, client → hub (JSON).
    Qos = 5,
    /// 8 bytes: the sender's clock in ns.
    Ping = 6,
    /// The 8 bytes of the PING it answers.
    Pong = 7,
    /// `{"code","message"}`; the sender then closes (JSON).
    Error = 8,
    /// Empty; graceful close.
    Bye = 9,
}

impl Kind {
    /// The kind for a wire value, `None` for kinds this version does not know.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Hello,
            2 => Kind::Welcome,
            3 => Kind::Audio,
            4 => Kind::Metadata,
            5 => Kind::Qos,
            6 => Kind::Ping,
            7 => Kind::Pong,
            8 => Kind::Error,
            9 => Kind::Bye,
            _ => return None,
        })
    }

    /// The lower-case name (`hello`, `audio`, …).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Welcome => "welcome",
            Kind::Audio => "audio",
            Kind::Metadata => "metadata",
            Kind::Qos => "qos",
            Kind::Ping => "ping",
            Kind::Pong => "pong",
            Kind::Error => "error",
            Kind::Bye => "bye",
        }
    }

    /// True for the kinds whose payload is a JSON object.
    pub fn is_json(self) -> bool {
        matches!(
            self,
            Kind::Hello | Kind::Welcome | Kind::Metadata | Kind::Qos | Kind::Error
        )
    }
}

/// A frame header. `kind` is kept raw so that unknown kinds can be reported and skipped.
///
/// # Example
/// ```
/// use izyrt::wire::{Header, Kind};
/// let h = Header::new(Kind::Ping, 0, 1, 8);
/// let mut b = [0u8; 16];
/// h.write(&mut b);
/// assert_eq!(Header::parse(&b).unwrap(), h);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The raw kind byte.
    pub kind: u8,
    /// Track id; 0 is the connection's primary track.
    pub track: u16,
    /// Flags: [`FLAG_CLOCK_LOCKED`] on AUDIO; other bits reserved (written as 0, ignored on
    /// receipt).
    pub flags: u16,
    /// Sequence number per (kind, track), wrapping.
    pub seq: u32,
    /// Payload length in bytes.
    pub len: u32,
}

impl Header {
    /// A header for a known kind with flags 0.
    pub fn new(kind: Kind, track: u16, seq: u32, len: u32) -> Header {
        Header {
            kind: kind as u8,
            track,
            flags: 0,
            seq,
            len,
        }
    }

    /// The known kind, or `None` for a kind to skip.
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.kind)
    }

    /// Parses and checks a header: magic, version, the 2 MiB limit, and the length
    /// limits of the known kinds (so an oversized payload is refused before it is read).
    ///
    /// # Errors
    /// `bad_magic`, `bad_version`, `frame_too_large`, or for a known kind whose `len`
    /// cannot be valid: `bad_audio`, `bad_json`, `bad_frame` (PING/PONG not 8 bytes, BYE
    /// not empty).
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Header, ProtocolError> {
        if b[0..2] != MAGIC {
            return Err(ProtocolError::new(
                ErrorCode::BadMagic,
                format!("magic {:02x}{:02x}, expected 495a (\"IZ\")", b[0], b[1]),
            ));
        }
        if b[2] != VERSION {
            return Err(ProtocolError::new(
                ErrorCode::BadVersion,
                format!("version {}, this side speaks {VERSION}", b[2]),
            ));
        }
        let h = Header {
            kind: b[3],
            track: u16::from_le_bytes([b[4], b[5]]),
            flags: u16::from_le_bytes([b[6], b[7]]),
            seq: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            len: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        };
        if h.len > MAX_FRAME_LEN {
            return Err(ProtocolError::new(
                ErrorCode::FrameTooLarge,
                format!("len {} over the limit of {MAX_FRAME_LEN}", h.len),
            ));
        }
        h.check_len()?;
        Ok(h)
    }

    fn check_len(&self) -> Result<(), ProtocolError> {
        let len = self.len as usize;
        let Some(kind) = self.kind() else {
            return Ok(());
        };
        let name = || kind.name().to_uppercase();
        // Exhaustive on purpose: a new kind must state its bound, because the decoder
        // buffers every known kind whole and relies on these limits.
        match kind {
            Kind::Audio if !(super::AUDIO_HEADER_LEN..=MAX_AUDIO_PAYLOAD).contains(&len) => {
                Err(ProtocolError::new(
                    ErrorCode::BadAudio,
                    format!("AUDIO len {len} outside 40..={MAX_AUDIO_PAYLOAD}"),
                ))
            }
            Kind::Hello | Kind::Welcome | Kind::Metadata | Kind::Qos | Kind::Error
                if len > MAX_JSON_LEN =>
            {
                Err(ProtocolError::new(
                    ErrorCode::BadJson,
                    format!("{} payload of {len} bytes over the 1 MiB limit", name()),
                ))
            }
            Kind::Ping | Kind::Pong if len != 8 => Err(ProtocolError::new(
                ErrorCode::BadFrame,
                format!("{} payload of {len} bytes, expected 8", name()),
            )),
            Kind::Bye if len != 0 => Err(ProtocolError::new(
                ErrorCode::BadFrame,
                format!("BYE payload of {len} bytes, expected none"),
            )),
            Kind::Audio
            | Kind::Hello
            | Kind::Welcome
            | Kind::Metadata
            | Kind::Qos
            | Kind::Error
            | Kind::Ping
            | Kind::Pong
            | Kind::Bye => Ok(()),
        }
    }

    /// Writes the header (magic and version included) into `out`.
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = VERSION;
        out[3] = self.kind;
        out[4..6].copy_from_slice(&self.track.to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..12].copy_from_slice(&self.seq.to_le_bytes());
        out[12..16].copy_from_slice(&self.len.to_le_bytes());
    }
}
