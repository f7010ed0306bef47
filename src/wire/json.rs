//! The JSON payloads (HELLO, WELCOME, METADATA, QOS, ERROR) as typed, validated structs.
//!
//! Every JSON payload is first checked as the spec requires of all of them (UTF-8 object,
//! at most 1 MiB, nesting depth at most 32) by a byte scan that runs before `serde_json`
//! sees the input, so hostile nesting can never reach the parser's recursion. Unknown keys
//! are accepted and ignored (forward compatibility); QOS keeps them so the hub can pass
//! the whole report on.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::audio::{AudioFormat, MAX_CHANNELS, MAX_FRAMES, RATE_RANGE};
use super::error::{ErrorCode, ProtocolError};
use super::{MAX_JSON_DEPTH, MAX_JSON_LEN};

/// The protocol name carried in HELLO and WELCOME.
pub const PROTO: &str = "streamproto1";

fn bad_json(detail: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::BadJson, detail)
}

/// The nesting depth of a JSON text (objects and arrays), ignoring brackets inside strings.
/// Stops counting as soon as `limit` is exceeded.
pub fn json_depth(bytes: &[u8], limit: usize) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
                if max > limit {
                    return max;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Checks the rules every JSON payload obeys and parses it as an object.
///
/// # Errors
/// `bad_json` when it is over 1 MiB, nested deeper than 32, not UTF-8, not JSON, or not
/// an object.
///
/// # Example
/// ```
/// let m = izyrt::wire::parse_object(br#"{"a":[1,2]}"#).unwrap();
/// assert_eq!(m["a"][1], 2);
/// assert!(izyrt::wire::parse_object(b"[1]").is_err());
/// ```
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ProtocolError> {
    check_object_text(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| bad_json(format!("not a JSON object: {e}")))
}

/// Checks that a payload is a valid JSON object within the spec's limits without building
/// it (no allocation for ordinary payloads: for QOS and METADATA kept as received).
///
/// # Errors
/// `bad_json` as for [`parse_object`].
///
/// # Example
/// ```
/// assert!(izyrt::wire::check_json_object(br#"{"a":{"b":[1,"x"]}}"#).is_ok());
/// assert!(izyrt::wire::check_json_object(b" [1]").is_err());
/// assert!(izyrt::wire::check_json_object(b"{\"a\":").is_err());
/// ```
pub fn check_json_object(bytes: &[u8]) -> Result<(), ProtocolError> {
    check_object_text(bytes)?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(bad_json("not a JSON object"));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map(|_| ())
        .map_err(|e| bad_json(format!("not a JSON object: {e}")))
}

fn check_object_text(bytes: &[u8]) -> Result<(), ProtocolError> {
    if bytes.len() > MAX_JSON_LEN {
        return Err(bad_json(format!(
            "{} bytes, over the 1 MiB limit",
            bytes.len()
        )));
    }
    let depth = json_depth(bytes, MAX_JSON_DEPTH);
    if depth > MAX_JSON_DEPTH {
        return Err(bad_json(format!("nested deeper than {MAX_JSON_DEPTH}")));
    }
    std::str::from_utf8(bytes).map_err(|e| bad_json(format!("not UTF-8: {e}")))?;
    Ok(())
}

/// Parses a typed JSON payload after the common checks.
fn parse_typed<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, ProtocolError> {
    check_object_text(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| bad_json(format!("{what}: {e}")))
}

/// What kind of client a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends its capture, receives a mix.
    Peer,
    /// A mixeradmin client: receives the full mix and metadata, sends no audio.
    Monitor,
    /// Sends audio only (e.g. a file).
    Source,
}

impl Role {
    /// The role as HELLO spells it.
    ///
    /// # Example
    /// ```
    /// assert_eq!(izyrt::wire::Role::Source.name(), "source");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Role::Peer => "peer",
            Role::Monitor => "monitor",
            Role::Source => "source",
        }
    }
}

/// What a client hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    /// Everyone but itself.
    Minus,
    /// Everyone.
    Full,
    /// Only itself (round-trip measurement).
    Loopback,
}

impl Mix {
    /// The wire name: `minus`, `full` or `loopback`.
    ///
    /// # Example
    /// ```
    /// assert_eq!(izyrt::wire::Mix::Full.name(), "full");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Mix::Minus => "minus",
            Mix::Full => "full",
            Mix::Loopback => "loopback",
        }
    }
}

/// The audio a client sends on the wire, from HELLO or WELCOME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioParams {
    /// Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Sample encoding.
    pub format: AudioFormat,
    /// Frames per AUDIO packet.
    pub frames_per_packet: u32,
}

fn audio_params(
    rate: Option<u32>,
    channels: Option<u16>,
    format: Option<&str>,
    fpp: Option<u32>,
) -> Result<Option<AudioParams>, ProtocolError> {
    let unsupported = |d: String| ProtocolError::new(ErrorCode::FormatUnsupported, d);
    let (Some(sample_rate), Some(channels), Some(format), Some(frames_per_packet)) =
        (rate, channels, format, fpp)
    else {
        if rate.is_none() && channels.is_none() && format.is_none() && fpp.is_none() {
            return Ok(None);
        }
        return Err(bad_json(
            "sampleRate, channels, format and framesPerPacket go together",
        ));
    };
    if !RATE_RANGE.contains(&sample_rate) {
        return Err(unsupported(format!(
            "sampleRate {sample_rate} outside 8000..=384000"
        )));
    }
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(unsupported(format!("channels {channels} outside 1..=64")));
    }
    if !(1..=MAX_FRAMES).contains(&frames_per_packet) {
        return Err(unsupported(format!(
            "framesPerPacket {frames_per_packet} outside 1..=4096"
        )));
    }
    let format = AudioFormat::from_name(format)
        .ok_or_else(|| unsupported(format!("format \"{format}\" is not \"f32\" or \"s16\"")))?;
    Ok(Some(AudioParams {
        sample_rate,
        channels,
        format,
        frames_per_packet,
    }))
}

/// Checks a `user`: 1..=64 characters of `[A-Za-z0-9._-]`.
///
/// # Example
/// ```
/// assert!(izyrt::wire::valid_user("alice_2.b-c"));
/// assert!(!izyrt::wire::valid_user("al ice"));
/// assert!(!izyrt::wire::valid_user(""));
/// ```
pub fn valid_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// HELLO: the first frame of every connection, client → hub.
///
/// The four audio fields are required for `peer` and `source` and optional for
/// `monitor` (which sends no audio); [`Hello::parse`] enforces it.
///
/// # Example
/// ```
/// use izyrt::wire::{Hello, Role};
/// let h = Hello::parse(br#"{"proto":"streamproto1","role":"peer","user":"alice","sampleRate":48000,
///     "channels":2,"format":"f32","framesPerPacket":64,"enableQOSMetrics":true}"#).unwrap();
/// assert_eq!(h.role, Role::Peer);
/// assert_eq!(h.audio().unwrap().unwrap().channels, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// Always `streamproto1`.
    pub proto: String,
    /// The client's role.
    pub role: Role,
    /// The client's key in every per-user table.
    pub user: String,
    /// Required when the hub has a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Hz of the audio this client sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// Channels of the audio this client sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u16>,
    /// `f32` or `s16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Frames per AUDIO packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames_per_packet: Option<u32>,
    /// Whether the client sends QOS reports.
    #[serde(rename = "enableQOSMetrics", default)]
    pub enable_qos_metrics: bool,
    /// The client software, e.g. `izyrt/0.1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<String>,
    /// The mix this client asks to hear (izyrt extension, proposed for the spec); the
    /// hub's default when absent. WELCOME says what it will hear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<Mix>,
}

impl Hello {
    /// Parses and validates a HELLO payload.
    ///
    /// # Errors
    /// `bad_json` for malformed JSON, a missing field or a bad `user`; `bad_version` for
    /// another `proto`; `format_unsupported` for audio parameters out of range.
    pub fn parse(bytes: &[u8]) -> Result<Hello, ProtocolError> {
        let h: Hello = parse_typed(bytes, "HELLO")?;
        h.validate()?;
        Ok(h)
    }

    /// Checks the fields (see [`Hello::parse`]).
    ///
    /// # Errors
    /// As [`Hello::parse`].
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if self.proto != PROTO {
            return Err(ProtocolError::new(
                ErrorCode::BadVersion,
                format!("proto \"{}\", expected \"{PROTO}\"", self.proto),
            ));
        }
        if !valid_user(&self.user) {
            return Err(bad_json("user must be 1..=64 characters of [A-Za-z0-9._-]"));
        }
        if self.audio()?.is_none() && self.role != Role::Monitor {
            return Err(bad_json(
                "sampleRate, channels, format and framesPerPacket are required for a peer or source",
            ));
        }
        Ok(())
    }

    /// The audio this client sends, `None` for a monitor that gave none.
    ///
    /// # Errors
    /// As [`Hello::parse`] for the audio fields.
    pub fn audio(&self) -> Result<Option<AudioParams>, ProtocolError> {
        audio_params(
            self.sample_rate,
            self.channels,
            self.format.as_deref(),
            self.frames_per_packet,
        )
    }
}

/// WELCOME: the hub's answer to HELLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    /// Always `streamproto1`.
    pub proto: String,
    /// An opaque session id.
    pub session: String,
    /// The hub software, e.g. `izyrt/0.1.0`.
    pub hub: String,
    /// Hz of the mix the hub sends.
    pub sample_rate: u32,
    /// Channels of the mix.
    pub channels: u16,
    /// `f32` or `s16`.
    pub format: String,
    /// Frames per AUDIO packet of the mix.
    pub frames_per_packet: u32,
    /// What this client will hear.
    pub mix: Mix,
    /// The address of a live connection of the same `user` that this one took over (the
    /// hub closed it with `replaced`); absent otherwise. An izyrt extension: other
    /// clients ignore the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
}

impl Welcome {
    /// Parses and validates a WELCOME payload.
    ///
    /// # Errors
    /// `bad_json`, `bad_version` or `format_unsupported` as for HELLO.
    pub fn parse(bytes: &[u8]) -> Result<Welcome, ProtocolError> {
        let w: Welcome = parse_typed(bytes, "WELCOME")?;
        if w.proto != PROTO {
            return Err(ProtocolError::new(
                ErrorCode::BadVersion,
                format!("proto \"{}\"", w.proto),
            ));
        }
        w.audio()?;
        Ok(w)
    }

    /// The audio the hub sends.
    ///
    /// # Errors
    /// `format_unsupported` when out of range.
    pub fn audio(&self) -> Result<AudioParams, ProtocolError> {
        audio_params(
            Some(self.sample_rate),
            Some(self.channels),
            Some(&self.format),
            Some(self.frames_per_packet),
        )
        .map(|p| p.expect("all fields present"))
    }
}

/// ERROR: `{"code","message"}`. The code is kept as a string so unknown codes survive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorMsg {
    /// The spec's code, e.g. `unauthorized`.
    pub code: String,
    /// Human-readable detail.
    pub message: String,
}

impl ErrorMsg {
    /// Parses an ERROR payload.
    ///
    /// # Errors
    /// `bad_json` when malformed or a field is missing.
    pub fn parse(bytes: &[u8]) -> Result<ErrorMsg, ProtocolError> {
        parse_typed(bytes, "ERROR")
    }

    /// The code, when it is one this side knows.
    pub fn known_code(&self) -> Option<ErrorCode> {
        self.code.parse().ok()
    }
}

impl From<&ProtocolError> for ErrorMsg {
    fn from(e: &ProtocolError) -> Self {
        ErrorMsg {
            code: e.code.as_str().to_string(),
            message: e.detail.clone(),
        }
    }
}

/// The `head` of a QOS report: the header of the AUDIO frame received just before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QosHead {
    /// Track id.
    pub track: u16,
    /// Sequence number.
    pub seq: u32,
    /// Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// `f32` or `s16`.
    pub format: String,
    /// Frames in that packet.
    pub frames: u32,
    /// Stream position of its first frame.
    pub position: u64,
    /// Its `origin_ns`.
    pub origin_ns: u64,
}

/// A `QOSMetrics` report (QOS payload). Keys beyond the spec's are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QosMetrics {
    /// The AUDIO header this report follows.
    pub head: QosHead,
    /// Unix time, ms.
    pub qos_timestamp: u64,
    /// Samples queued for the speaker.
    pub buffer_depth_float32_samples: u64,
    /// Speaker-path latency, ms.
    pub latency_ms: f64,
    /// Periods the speaker lacked audio.
    pub incoming_buffer_misses: u64,
    /// Round-trip time, ms, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// Other keys, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl QosMetrics {
    /// Parses a QOS payload.
    ///
    /// # Errors
    /// `bad_json` when malformed or a required field is missing.
    pub fn parse(bytes: &[u8]) -> Result<QosMetrics, ProtocolError> {
        parse_typed(bytes, "QOS")
    }
}
