//! The QOS report a client sends the hub (net thread): serialised straight into the write
//! queue from borrowed fields, so a report per AUDIO frame allocates nothing.

use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::client::status::{ClientView, LockFigures};
use crate::rt::clock::{ns_to_ms, unix_ms};
use crate::wire::Kind;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QosHeadOut<'a> {
    track: u16,
    seq: u32,
    sample_rate: u32,
    channels: u16,
    format: &'a str,
    frames: u32,
    position: u64,
    origin_ns: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QosOut<'a> {
    head: QosHeadOut<'a>,
    qos_timestamp: u64,
    buffer_depth_float32_samples: u64,
    latency_ms: f64,
    incoming_buffer_misses: u64,
    /// Beside the seed's resettable count, the monotonic one (an additional key).
    incoming_buffer_misses_total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_ms: Option<f64>,
    /// The client's clock lock (additional keys, issue 17), as its getMetrics has them.
    #[serde(flatten)]
    lock: LockFigures,
}

/// Sends a QOS report about the latest AUDIO frame received (no allocation).
pub(super) fn send_qos(link: &mut crate::net::conn::Link, view: &mut ClientView) {
    let Some((track, seq, h)) = view.head else {
        return;
    };
    let speaker = view.speaker();
    let report = QosOut {
        head: QosHeadOut {
            track,
            seq,
            sample_rate: h.sample_rate,
            channels: h.channels,
            format: h.format.name(),
            frames: h.frames,
            position: h.position,
            origin_ns: h.origin_ns,
        },
        qos_timestamp: unix_ms(),
        buffer_depth_float32_samples: speaker.depth_samples,
        latency_ms: speaker.latency_ms,
        incoming_buffer_misses: speaker.misses,
        incoming_buffer_misses_total: view.speaker.misses_total.load(Ordering::Relaxed),
        rtt_ms: link.rtt_ns.map(ns_to_ms),
        lock: LockFigures::of(&view.speaker),
    };
    link.send_json(Kind::Qos, &report);
    view.qos_sent += 1;
}
