//! One `incomingAudioTracks` entry, as the hub (per client, per file source) and a client
//! (the hub's mix) report it (net or main thread, when a snapshot is built).
//!
//! Design: three producers report the same keys (`DESIGN.md`); one builder keeps their
//! names, order and units from drifting apart.

use serde_json::{Value, json};

use crate::rt::clock::ns_to_ms;

/// The figures of one incoming track.
///
/// # Example
/// ```
/// use izyrt::metrics::IncomingTrack;
/// let t = IncomingTrack {
///     track: 0,
///     from: "hub",
///     kind: None,
///     connected: true,
///     seq: 41,
///     packets: 42,
///     seq_gaps: 0,
///     since_advance_ns: Some(1_500_000),
///     latency_ms: 2.5,
/// };
/// let v = t.to_json();
/// assert_eq!(v["msSinceSeqAdvance"], 1.5);
/// assert!(v.get("kind").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IncomingTrack<'a> {
    /// The track number.
    pub track: u16,
    /// Who sends it (a user name, a file source's name, `hub`).
    pub from: &'a str,
    /// `Some("file")` for a file source; absent for a client's stream.
    pub kind: Option<&'a str>,
    /// Whether it is connected and advancing.
    pub connected: bool,
    /// The newest sequence number.
    pub seq: u64,
    /// Packets received.
    pub packets: u64,
    /// Gaps in the sequence numbers.
    pub seq_gaps: u64,
    /// Nanoseconds since the sequence last advanced (`None`: nothing received yet).
    pub since_advance_ns: Option<u64>,
    /// Audio queued for it, ms.
    pub latency_ms: f64,
}

impl IncomingTrack<'_> {
    /// Its JSON object, keys in `DESIGN.md`'s order (`kind` after `from`, when set).
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "track": self.track, "from": self.from });
        if let Some(kind) = self.kind {
            v["kind"] = json!(kind);
        }
        v["connected"] = json!(self.connected);
        v["seq"] = json!(self.seq);
        v["packets"] = json!(self.packets);
        v["seqGaps"] = json!(self.seq_gaps);
        v["msSinceSeqAdvance"] = json!(self.since_advance_ns.map(ns_to_ms));
        v["latencyMs"] = json!(self.latency_ms);
        v
    }
}
