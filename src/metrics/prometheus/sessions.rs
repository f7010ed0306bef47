//! Per-user QoS (`sessions`) and hub-wide figures (`hub`, `refusedConnections`) as
//! Prometheus families (HTTP thread).
//!
//! `sessions` is the hub's session table: built by the hub, copied from METADATA by a
//! monitor (and a peer, whose exposition leaves it out: each peer would repeat the hub's
//! figures). Every series is labelled `user`, plus `role` on `izyrt_user_info`. The
//! jitter figures (`izyrt_user_jitter_*`, `izyrt_user_concealed_frames_total`) are the
//! hub's buffer for that user's input, over the user's life at the hub; `izyrt_user_rtt_seconds`
//! is the round trip the hub measured; `izyrt_user_reported_*` is what the user's own
//! QOS report said (its speaker, its round trip).

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{Field, Rows, Scale, counter, gauge, header, keyed, labelled, number, with_label};

const USER: &[Field] = &[
    gauge(
        "connected",
        "izyrt_user_connected",
        Scale::One,
        "1 while the user is connected to the hub.",
    ),
    gauge(
        "since",
        "izyrt_user_since_timestamp_seconds",
        Scale::Milli,
        "Unix time the user last connected or left.",
    ),
    gauge(
        "leftAt",
        "izyrt_user_left_timestamp_seconds",
        Scale::Milli,
        "Unix time the user's last connection ended (absent while connected).",
    ),
    counter(
        "hubMisses",
        "izyrt_user_jitter_misses_total",
        "Mixer periods the hub's buffer for the user's input was dry, over the user's life at the hub.",
    ),
    gauge(
        "hubMisses10s",
        "izyrt_user_jitter_misses_last_10s",
        Scale::One,
        "Mixer periods the hub's buffer for the user's input was dry in the last 10 s.",
    ),
    gauge(
        "jitterDepthFrames",
        "izyrt_user_jitter_depth_frames",
        Scale::One,
        "Frames queued in the hub's buffer for the user's input (absent when it has none).",
    ),
    gauge(
        "jitterTargetFrames",
        "izyrt_user_jitter_target_frames",
        Scale::One,
        "The depth the hub's buffer for the user's input aims at, frames.",
    ),
    gauge(
        "jitterExcessFrames",
        "izyrt_user_jitter_excess_frames",
        Scale::One,
        "Where the user's input stands against its target at the hub, frames (mean over 0.25 s; negative: short); an izyrt client's capture steers it to 0.",
    ),
    counter(
        "jitterLateFrames",
        "izyrt_user_jitter_late_frames_total",
        "Frames of the user's input that reached the hub after their time.",
    ),
    counter(
        "jitterDroppedFrames",
        "izyrt_user_jitter_dropped_frames_total",
        "Frames of the user's input the hub dropped (trims and overflow).",
    ),
    counter(
        "concealedFrames",
        "izyrt_user_concealed_frames_total",
        "Frames of the user's input the hub filled with a fading continuation.",
    ),
    // A counter in seconds, from the session table's milliseconds.
    Field {
        json: "senderSkippedMs",
        name: "izyrt_user_sender_skipped_seconds_total",
        counter: true,
        scale: Scale::Milli,
        help: "Audio the user's own device lost and sent as gaps (its packets skipped over that stream time).",
    },
    gauge(
        "rttMs",
        "izyrt_user_rtt_seconds",
        Scale::Milli,
        "Round trip to the user measured by the hub.",
    ),
    gauge(
        "driftPpm",
        "izyrt_user_drift_ppm",
        Scale::One,
        "Drift of the user's stream against the hub's clock, ppm.",
    ),
    gauge(
        "senderLocked",
        "izyrt_user_sender_locked",
        Scale::One,
        "1 while the user's packets say it resamples them to the hub's clock (AUDIO flag CLOCK_LOCKED).",
    ),
    gauge(
        "audioInputMetadata.peakDbfs",
        "izyrt_user_input_peak_dbfs",
        Scale::One,
        "Peak level of the user's input at the hub, dBFS (-150 for silence).",
    ),
    gauge(
        "audioInputMetadata.rmsDbfs",
        "izyrt_user_input_rms_dbfs",
        Scale::One,
        "RMS level of the user's input at the hub, dBFS (-150 for silence).",
    ),
    counter(
        "audioInputMetadata.clippedSamples",
        "izyrt_user_input_clipped_samples_total",
        "Samples of the user's input at or beyond full scale, this connection.",
    ),
    gauge(
        "audioInputMetadata.silent",
        "izyrt_user_input_silent",
        Scale::One,
        "1 while the user's input is below the silence threshold for the hold time.",
    ),
    gauge(
        "audioInputMetadata.clipping",
        "izyrt_user_input_clipping",
        Scale::One,
        "1 while the user's input peaks at full scale.",
    ),
    gauge(
        "QOSMetrics.latencyMs",
        "izyrt_user_reported_latency_seconds",
        Scale::Milli,
        "Speaker latency the user reports in its QOS (jitter buffer plus device buffer).",
    ),
    gauge(
        "QOSMetrics.incomingBufferMisses",
        "izyrt_user_reported_incoming_buffer_misses",
        Scale::One,
        "Speaker misses the user reports in its QOS (the seed's count, reset while its speaker is silent).",
    ),
    counter(
        "QOSMetrics.incomingBufferMissesTotal",
        "izyrt_user_reported_incoming_buffer_misses_total",
        "Speaker misses the user reports in its QOS, since its start (never reset).",
    ),
    gauge(
        "QOSMetrics.rttMs",
        "izyrt_user_reported_rtt_seconds",
        Scale::Milli,
        "Round trip the user reports in its QOS (measured on its side).",
    ),
    gauge(
        "QOSMetrics.clockRatioPpm",
        "izyrt_user_reported_clock_ratio_ppm",
        Scale::One,
        "The user's estimate of the hub's clock against its device's, ppm, from its QOS (its card's error, sign reversed).",
    ),
    gauge(
        "QOSMetrics.locked",
        "izyrt_user_reported_clock_locked",
        Scale::One,
        "1 while the user's QOS says its clock loop is locked to the hub's clock.",
    ),
    counter(
        "QOSMetrics.concealedFrames",
        "izyrt_user_reported_concealed_frames_total",
        "Frames of missing audio the user's speaker concealed, from its QOS.",
    ),
    gauge(
        "QOSMetrics.bufferDepthFloat32Samples",
        "izyrt_user_reported_buffer_depth_float32_samples",
        Scale::One,
        "Samples queued for the user's speaker, as it reports in its QOS.",
    ),
];

const HUB: &[Field] = &[
    gauge(
        "clients",
        "izyrt_hub_clients",
        Scale::One,
        "Clients connected to the hub.",
    ),
    gauge(
        "maxClients",
        "izyrt_hub_max_clients",
        Scale::One,
        "Clients the hub accepts at most (--max-clients).",
    ),
    counter(
        "missPeriods",
        "izyrt_hub_miss_periods_total",
        "Mixer periods in which at least one input missed.",
    ),
    gauge(
        "widestMiss",
        "izyrt_hub_widest_miss",
        Scale::One,
        "The most inputs that missed in one mixer period.",
    ),
    gauge(
        "uptimeSeconds",
        "izyrt_hub_uptime_seconds",
        Scale::One,
        "Time since the hub started.",
    ),
    counter(
        "leakedSlots",
        "izyrt_hub_leaked_slots_total",
        "Mixer slots that could not be handed back (a full garbage queue).",
    ),
];

/// `refusedConnections` keys, in order, as `reason` label values.
const REFUSALS: &[(&str, &str)] = &[
    ("pendingPerAddress", "pending_per_address"),
    ("pendingTotal", "pending_total"),
    ("helloTimeout", "hello_timeout"),
    ("hubFull", "hub_full"),
    ("unauthorized", "unauthorized"),
    ("formatUnsupported", "format_unsupported"),
    ("protocolError", "protocol_error"),
    ("internal", "internal"),
    ("acceptFailed", "accept_failed"),
];

/// Writes the per-user families (unless the role is `peer`) and the hub-wide ones.
pub(super) fn render(out: &mut String, obj: &Map<String, Value>) {
    if obj.get("role").and_then(Value::as_str) != Some("peer") {
        let users = keyed(obj.get("sessions"), "user");
        user_info(out, &users);
        labelled(out, USER, &users);
    }
    if let Some(hub) = obj.get("hub").and_then(Value::as_object) {
        labelled(out, HUB, &vec![(String::new(), hub)]);
    }
    if let Some(r) = obj.get("refusedConnections").and_then(Value::as_object) {
        let samples: Vec<(&str, String)> = REFUSALS
            .iter()
            .filter_map(|(key, reason)| Some((*reason, number(r.get(*key)?, Scale::One)?)))
            .collect();
        if !samples.is_empty() {
            let name = "izyrt_hub_refused_connections_total";
            header(
                out,
                name,
                "counter",
                "Connections the hub refused before they joined, by reason.",
            );
            for (reason, v) in samples {
                let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {v}");
            }
        }
    }
}

/// `izyrt_user_info{user,role} 1`: which users the table holds, and their role.
fn user_info(out: &mut String, users: &Rows<'_>) {
    if users.is_empty() {
        return;
    }
    let name = "izyrt_user_info";
    header(
        out,
        name,
        "gauge",
        "1 for every user of the hub's session table, labelled with its role.",
    );
    for (labels, obj) in users {
        let role = obj.get("role").and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(out, "{name}{} 1", with_label(labels, "role", role));
    }
}
