//! The spec's ERROR codes and the protocol error every codec failure maps to.

use std::fmt;

/// The ERROR codes of streamproto1 (`code` in an ERROR payload).
///
/// # Example
/// ```
/// use izyrt::wire::ErrorCode;
/// assert_eq!(ErrorCode::BadMagic.as_str(), "bad_magic");
/// assert_eq!("hub_full".parse::<ErrorCode>(), Ok(ErrorCode::HubFull));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame does not start with `IZ`.
    BadMagic,
    /// The frame's version is not 1.
    BadVersion,
    /// `len` is over 2 MiB.
    FrameTooLarge,
    /// An AUDIO payload is inconsistent or out of range.
    BadAudio,
    /// A JSON payload is not a UTF-8 object within the size and depth limits, or lacks
    /// a required field.
    BadJson,
    /// The first frame of a connection was not HELLO.
    HelloExpected,
    /// No HELLO within the handshake timeout.
    HelloTimeout,
    /// Missing or wrong token.
    Unauthorized,
    /// The client's audio format is not one the hub accepts.
    FormatUnsupported,
    /// The hub has no room for another connection.
    HubFull,
    /// A newer connection with the same `user` replaced this one.
    Replaced,
    /// The sender failed internally.
    Internal,
    /// A PING or PONG whose payload is not 8 bytes, or a BYE that is not empty. Not in
    /// the spec's list yet: proposed
    /// as an addition (a receiver that does not know it still closes on ERROR).
    BadFrame,
}

impl ErrorCode {
    /// Every code, in the spec's order.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::BadMagic,
        ErrorCode::BadVersion,
        ErrorCode::FrameTooLarge,
        ErrorCode::BadAudio,
        ErrorCode::BadJson,
        ErrorCode::HelloExpected,
        ErrorCode::HelloTimeout,
        ErrorCode::Unauthorized,
        ErrorCode::FormatUnsupported,
        ErrorCode::HubFull,
        ErrorCode::Replaced,
        ErrorCode::Internal,
        ErrorCode::BadFrame,
    ];

    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMagic => "bad_magic",
            ErrorCode::BadVersion => "bad_version",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::BadAudio => "bad_audio",
            ErrorCode::BadJson => "bad_json",
            ErrorCode::HelloExpected => "hello_expected",
            ErrorCode::HelloTimeout => "hello_timeout",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::FormatUnsupported => "format_unsupported",
            ErrorCode::HubFull => "hub_full",
            ErrorCode::Replaced => "replaced",
            ErrorCode::Internal => "internal",
            ErrorCode::BadFrame => "bad_frame",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

/// A protocol violation: the spec's code plus a human-readable detail.
///
/// Built only on the error path (the detail allocates); the receiver sends it as ERROR
/// and closes the connection.
///
/// # Example
/// ```
/// use izyrt::wire::{ErrorCode, ProtocolError};
/// let e = ProtocolError::new(ErrorCode::BadAudio, "channels 0 out of 1..=64");
/// assert_eq!(e.to_string(), "bad_audio: channels 0 out of 1..=64");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ProtocolError {
    /// The spec's code.
    pub code: ErrorCode,
    /// What exactly was wrong.
    pub detail: String,
}

impl ProtocolError {
    /// A new error with this code and detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ProtocolError {
            code,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_names() {
        for c in ErrorCode::ALL {
            assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(c));
        }
        assert!("nope".parse::<ErrorCode>().is_err());
    }
}
