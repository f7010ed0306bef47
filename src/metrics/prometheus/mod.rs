//! `aggregatedStatesSnapshot` as Prometheus text exposition, format 0.0.4 (HTTP thread).
//!
//! Mapping (every name is prefixed `izyrt_` and snake_case):
//! - Scalar numbers become gauges, booleans gauges of 0/1. Cumulative figures (packets,
//!   sequence gaps, dropped packets, buffer misses, xruns) are counters named `_total`;
//!   `speakerScriptProcessorIncomingBufferMisses` is reset to 0 by the engine, which
//!   Prometheus treats as an ordinary counter reset.
//! - Times are converted to seconds (Prometheus base unit): `…Ms`/`…MS` fields are
//!   divided by 1000, `…Us` fields by 1 000 000.
//! - `aggregatorStatus` and `micStatus` become one state gauge each with a `status`
//!   label, one line per possible state, 1 for the current one.
//! - `incomingAudioTracks` / `outgoingAudioTracks`: one series per track and field,
//!   labelled `track` and `from` / `to`; `connections`: labelled `user`; `realtime`:
//!   labelled `thread` (fields `p50Us`, `p99Us`, `p999Us`, `maxUs`, `priority`, `xruns`,
//!   `lostFrames`; an object keyed by thread name, or an array of objects with a
//!   `thread` field).
//!
//! A missing or non-numeric field is skipped (so is a track without a `track` label);
//! the renderer never panics on any JSON, and a family without samples is not written.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// How a JSON field's number is scaled into the exported unit.
#[derive(Clone, Copy)]
enum Scale {
    One,
    /// Milliseconds to seconds.
    Milli,
    /// Microseconds to seconds.
    Micro,
}

/// One exported metric family drawn from one JSON field.
struct Field {
    json: &'static str,
    name: &'static str,
    counter: bool,
    scale: Scale,
    help: &'static str,
}

const fn gauge(json: &'static str, name: &'static str, scale: Scale, help: &'static str) -> Field {
    Field {
        json,
        name,
        counter: false,
        scale,
        help,
    }
}

const fn counter(json: &'static str, name: &'static str, help: &'static str) -> Field {
    Field {
        json,
        name,
        counter: true,
        scale: Scale::One,
        help,
    }
}

const SCALARS: &[Field] = &[
    gauge(
        "currentSpeakerBufferDepthInFloat32Samples",
        "izyrt_current_speaker_buffer_depth_float32_samples",
        Scale::One,
        "Samples (frames x channels) queued for the speaker.",
    ),
    gauge(
        "currentSpeakerSampleRate",
        "izyrt_current_speaker_sample_rate_hertz",
        Scale::One,
        "Sample rate of the speaker stream.",
    ),
    gauge(
        "speakerScriptProcessorLatencyMS",
        "izyrt_speaker_latency_seconds",
        Scale::Milli,
        "Speaker-path latency: jitter buffer plus device buffer.",
    ),
    counter(
        "speakerScriptProcessorIncomingBufferMisses",
        "izyrt_speaker_incoming_buffer_misses_total",
        "Periods the speaker needed audio the jitter buffer did not have.",
    ),
    gauge(
        "speakerSilenceDetected",
        "izyrt_speaker_silence_detected",
        Scale::One,
        "1 while the incoming mix is silent for the hold time.",
    ),
    gauge(
        "clockRatioPpm",
        "izyrt_clock_ratio_ppm",
        Scale::One,
        "The client's estimate of the hub's clock against its device's, ppm (positive: the hub runs fast).",
    ),
    gauge(
        "resampleRatio",
        "izyrt_resample_ratio",
        Scale::One,
        "Hub frames played per device frame: the clock estimate plus any latency move.",
    ),
    gauge(
        "locked",
        "izyrt_clock_locked",
        Scale::One,
        "1 while the client's clock loop is locked to the hub's clock.",
    ),
    counter(
        "concealedFrames",
        "izyrt_speaker_concealed_frames_total",
        "Frames of missing audio the speaker filled with a fading continuation.",
    ),
    gauge(
        "latencyTargetFrames",
        "izyrt_speaker_latency_target_frames",
        Scale::One,
        "Audio the client's clock loop keeps queued, frames (from measured packet lateness).",
    ),
];

const INCOMING: &[Field] = &[
    gauge(
        "connected",
        "izyrt_incoming_track_connected",
        Scale::One,
        "1 while the received track is connected.",
    ),
    gauge(
        "seq",
        "izyrt_incoming_track_seq",
        Scale::One,
        "Last sequence number received on the track.",
    ),
    counter(
        "packets",
        "izyrt_incoming_track_packets_total",
        "Packets received on the track.",
    ),
    counter(
        "seqGaps",
        "izyrt_incoming_track_seq_gaps_total",
        "Sequence gaps seen on the received track.",
    ),
    gauge(
        "msSinceSeqAdvance",
        "izyrt_incoming_track_since_seq_advance_seconds",
        Scale::Milli,
        "Time since the track's sequence number last advanced.",
    ),
    gauge(
        "latencyMs",
        "izyrt_incoming_track_latency_seconds",
        Scale::Milli,
        "Latency of the received track.",
    ),
];

const OUTGOING: &[Field] = &[
    gauge(
        "seq",
        "izyrt_outgoing_track_seq",
        Scale::One,
        "Last sequence number sent on the track.",
    ),
    counter(
        "packets",
        "izyrt_outgoing_track_packets_total",
        "Packets sent on the track.",
    ),
    counter(
        "droppedPackets",
        "izyrt_outgoing_track_dropped_packets_total",
        "Packets dropped because the socket was full.",
    ),
];

const CONNECTIONS: &[Field] = &[
    gauge(
        "connected",
        "izyrt_connection_connected",
        Scale::One,
        "1 while the user's connection is up.",
    ),
    gauge(
        "sampleRate",
        "izyrt_connection_sample_rate_hertz",
        Scale::One,
        "Sample rate announced on the connection.",
    ),
    gauge(
        "channels",
        "izyrt_connection_channels",
        Scale::One,
        "Channels announced on the connection.",
    ),
    gauge(
        "framesPerPacket",
        "izyrt_connection_frames_per_packet",
        Scale::One,
        "Frames per packet announced on the connection.",
    ),
    gauge(
        "rttMs",
        "izyrt_connection_rtt_seconds",
        Scale::Milli,
        "Round-trip time measured on the connection.",
    ),
    gauge(
        "driftPpm",
        "izyrt_connection_drift_ppm",
        Scale::One,
        "Drift of the user's stream against the hub's clock, ppm (about 0 for a client that locks).",
    ),
    counter(
        "trimmedFrames",
        "izyrt_connection_trimmed_frames_total",
        "Frames the hub trimmed from the user's input because its clock ran fast.",
    ),
    counter(
        "concealedFrames",
        "izyrt_connection_concealed_frames_total",
        "Frames of the user's input the hub filled with a fading continuation.",
    ),
];

const REALTIME: &[Field] = &[
    gauge(
        "p50Us",
        "izyrt_realtime_wakeup_latency_p50_seconds",
        Scale::Micro,
        "Median wakeup latency of the RT thread.",
    ),
    gauge(
        "p99Us",
        "izyrt_realtime_wakeup_latency_p99_seconds",
        Scale::Micro,
        "99th percentile wakeup latency of the RT thread.",
    ),
    gauge(
        "p999Us",
        "izyrt_realtime_wakeup_latency_p999_seconds",
        Scale::Micro,
        "99.9th percentile wakeup latency of the RT thread.",
    ),
    gauge(
        "maxUs",
        "izyrt_realtime_wakeup_latency_max_seconds",
        Scale::Micro,
        "Maximum wakeup latency of the RT thread.",
    ),
    gauge(
        "priority",
        "izyrt_realtime_priority",
        Scale::One,
        "Scheduling priority actually obtained by the RT thread.",
    ),
    counter(
        "xruns",
        "izyrt_realtime_xruns_total",
        "Xruns (underruns and overruns) of the RT thread.",
    ),
    counter(
        "lostFrames",
        "izyrt_realtime_lost_frames_total",
        "Frames of stream time that the RT thread's device faults skipped.",
    ),
];

const AGGREGATOR_STATES: &[&str] = &["connecting", "running", "stopped"];
const MIC_STATES: &[&str] = &["green", "red"];

/// Renders `snapshot` (an `aggregatedStatesSnapshot` object) as Prometheus text
/// exposition format 0.0.4 (serve it as `text/plain; version=0.0.4`). See the module
/// documentation for the mapping. Never panics; anything that is not a JSON object
/// renders as an empty string.
///
/// # Example
/// ```
/// use serde_json::json;
///
/// let text = izyrt::metrics::render_prometheus(&json!({
///     "currentSpeakerBufferDepthInFloat32Samples": 960,
///     "aggregatorStatus": "running",
///     "incomingAudioTracks": [{ "track": 1, "from": "alice", "packets": 12 }],
/// }));
/// assert!(text.contains("izyrt_current_speaker_buffer_depth_float32_samples 960\n"));
/// assert!(text.contains("izyrt_aggregator_status{status=\"running\"} 1\n"));
/// assert!(text.contains("izyrt_aggregator_status{status=\"stopped\"} 0\n"));
/// assert!(text.contains(
///     "izyrt_incoming_track_packets_total{track=\"1\",from=\"alice\"} 12\n"
/// ));
/// ```
pub fn render_prometheus(snapshot: &Value) -> String {
    let mut out = String::new();
    let Some(obj) = snapshot.as_object() else {
        return out;
    };
    for field in SCALARS {
        if let Some(v) = obj.get(field.json).and_then(|v| number(v, field.scale)) {
            family(&mut out, field, &[(String::new(), v)]);
        }
    }
    state(
        &mut out,
        obj.get("aggregatorStatus"),
        "izyrt_aggregator_status",
        "State of the hub input (1 for the current state).",
        AGGREGATOR_STATES,
    );
    state(
        &mut out,
        obj.get("micStatus"),
        "izyrt_mic_status",
        "Capture path state: green while capture flows out (1 for the current state).",
        MIC_STATES,
    );
    let incoming = tracks(obj.get("incomingAudioTracks"), "from");
    labelled(&mut out, INCOMING, &incoming);
    let outgoing = tracks(obj.get("outgoingAudioTracks"), "to");
    labelled(&mut out, OUTGOING, &outgoing);
    let connections = keyed(obj.get("connections"), "user");
    labelled(&mut out, CONNECTIONS, &connections);
    let realtime = keyed(obj.get("realtime"), "thread");
    labelled(&mut out, REALTIME, &realtime);
    out
}

/// A JSON value as an exposition number: integers exactly, floats in Rust's shortest
/// round-trip form, booleans 0/1; `None` for anything else.
fn number(v: &Value, scale: Scale) -> Option<String> {
    let f = match v {
        Value::Bool(b) => return Some(u8::from(*b).to_string()),
        Value::Number(n) => match (scale, n.as_u64(), n.as_i64()) {
            (Scale::One, Some(u), _) => return Some(u.to_string()),
            (Scale::One, None, Some(i)) => return Some(i.to_string()),
            _ => n.as_f64()?,
        },
        _ => return None,
    };
    let f = match scale {
        Scale::One => f,
        Scale::Milli => f / 1e3,
        Scale::Micro => f / 1e6,
    };
    f.is_finite().then(|| format!("{f}"))
}

/// Writes `# HELP`, `# TYPE` and `samples` (each a rendered label set, possibly empty,
/// and a value), or nothing when there are no samples.
fn family(out: &mut String, field: &Field, samples: &[(String, String)]) {
    if samples.is_empty() {
        return;
    }
    let kind = if field.counter { "counter" } else { "gauge" };
    let _ = writeln!(out, "# HELP {} {}", field.name, field.help);
    let _ = writeln!(out, "# TYPE {} {kind}", field.name);
    for (labels, value) in samples {
        let _ = writeln!(out, "{}{labels} {value}", field.name);
    }
}

fn state(out: &mut String, v: Option<&Value>, name: &str, help: &str, states: &[&str]) {
    let Some(current) = v.and_then(Value::as_str) else {
        return;
    };
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for s in states {
        let _ = writeln!(out, "{name}{{status=\"{s}\"}} {}", u8::from(*s == current));
    }
}

/// One labelled object per series: its rendered label set and the object.
type Rows<'a> = Vec<(String, &'a Map<String, Value>)>;

fn labelled(out: &mut String, fields: &[Field], rows: &Rows<'_>) {
    for field in fields {
        let samples: Vec<(String, String)> = rows
            .iter()
            .filter_map(|(labels, obj)| {
                let v = number(obj.get(field.json)?, field.scale)?;
                Some((labels.clone(), v))
            })
            .collect();
        family(out, field, &samples);
    }
}

/// Track arrays: labels `track` (required) and `peer` (`from` / `to`, empty if absent).
fn tracks<'a>(v: Option<&'a Value>, peer: &str) -> Rows<'a> {
    let Some(items) = v.and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let obj = item.as_object()?;
            let track = label_value(obj.get("track")?)?;
            let peer_value = obj.get(peer).and_then(label_value).unwrap_or_default();
            let labels = format!(
                "{{track=\"{}\",{peer}=\"{}\"}}",
                escape(&track),
                escape(&peer_value)
            );
            Some((labels, obj))
        })
        .collect()
}

/// Per-user / per-thread data: an object keyed by the label value, or an array of
/// objects carrying it in field `label`.
fn keyed<'a>(v: Option<&'a Value>, label: &str) -> Rows<'a> {
    let row = |key: String, obj| (format!("{{{label}=\"{}\"}}", escape(&key)), obj);
    match v {
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| Some(row(k.clone(), v.as_object()?)))
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| {
                let obj = item.as_object()?;
                Some(row(label_value(obj.get(label)?)?, obj))
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn label_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Label value escaping of the text format: backslash, double quote and line feed.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> Value {
        json!({
            "currentSpeakerBufferDepthInFloat32Samples": 1920,
            "currentSpeakerSampleRate": 48000,
            "speakerScriptProcessorLatencyMS": 25.5,
            "speakerScriptProcessorIncomingBufferMisses": 3,
            "speakerSilenceDetected": false,
            "clockRatioPpm": -12.5,
            "resampleRatio": 0.9999875,
            "locked": true,
            "concealedFrames": 64,
            "latencyTargetFrames": 160,
            "aggregatorStatus": "running",
            "micStatus": "green",
            "incomingAudioTracks": [
                { "track": 1, "from": "al\"ice\\\n", "connected": true, "seq": 99,
                  "packets": 100, "seqGaps": 2, "msSinceSeqAdvance": 5, "latencyMs": 40 },
                { "track": "2", "from": "bob", "connected": false, "packets": "n/a" },
                { "from": "no-track", "packets": 7 }
            ],
            "outgoingAudioTracks": [
                { "track": 0, "to": "hub", "seq": 10, "packets": 11, "droppedPackets": 1 }
            ],
            "connections": { "alice": { "connected": true, "rttMs": 12, "format": "f32",
                                        "driftPpm": 101.5, "trimmedFrames": 192,
                                        "concealedFrames": null } },
            "mixeradminSharedState": { "alice": { "audioInputMetadata": {} } },
            "realtime": {
                "izyrt-audio": { "policy": "SCHED_FIFO", "priority": 80, "p50Us": 12,
                                 "p99Us": 40, "p999Us": 90, "maxUs": 150, "xruns": 0,
                                 "lostFrames": 128 }
            }
        })
    }

    #[test]
    fn scalars_states_and_booleans() {
        let t = render_prometheus(&full());
        assert!(t.contains(
            "# TYPE izyrt_current_speaker_buffer_depth_float32_samples gauge\n\
             izyrt_current_speaker_buffer_depth_float32_samples 1920\n"
        ));
        assert!(t.contains("izyrt_current_speaker_sample_rate_hertz 48000\n"));
        assert!(t.contains("izyrt_speaker_latency_seconds 0.0255\n"));
        assert!(t.contains("# TYPE izyrt_speaker_incoming_buffer_misses_total counter\n"));
        assert!(t.contains("izyrt_speaker_incoming_buffer_misses_total 3\n"));
        assert!(t.contains("izyrt_speaker_silence_detected 0\n"));
        assert!(t.contains("izyrt_aggregator_status{status=\"connecting\"} 0\n"));
        assert!(t.contains("izyrt_aggregator_status{status=\"running\"} 1\n"));
        assert!(t.contains("izyrt_aggregator_status{status=\"stopped\"} 0\n"));
        assert!(t.contains("izyrt_mic_status{status=\"green\"} 1\n"));
        assert!(t.contains("izyrt_mic_status{status=\"red\"} 0\n"));
        // The clock lock.
        assert!(t.contains("izyrt_clock_ratio_ppm -12.5\n"));
        assert!(t.contains("izyrt_resample_ratio 0.9999875\n"));
        assert!(t.contains("izyrt_clock_locked 1\n"));
        assert!(t.contains("# TYPE izyrt_speaker_concealed_frames_total counter\n"));
        assert!(t.contains("izyrt_speaker_concealed_frames_total 64\n"));
        assert!(t.contains("izyrt_speaker_latency_target_frames 160\n"));
        assert!(t.contains("izyrt_connection_drift_ppm{user=\"alice\"} 101.5\n"));
        assert!(t.contains("izyrt_connection_trimmed_frames_total{user=\"alice\"} 192\n"));
        assert!(!t.contains("izyrt_connection_concealed_frames_total{user=\"alice\"}"));
    }

    #[test]
    fn tracks_are_labelled_escaped_and_skip_bad_fields() {
        let t = render_prometheus(&full());
        let alice = r#"{track="1",from="al\"ice\\\n"}"#;
        assert!(t.contains(&format!("izyrt_incoming_track_packets_total{alice} 100\n")));
        assert!(t.contains(&format!("izyrt_incoming_track_seq_gaps_total{alice} 2\n")));
        assert!(t.contains(&format!("izyrt_incoming_track_connected{alice} 1\n")));
        assert!(t.contains(&format!(
            "izyrt_incoming_track_latency_seconds{alice} 0.04\n"
        )));
        assert!(t.contains("izyrt_incoming_track_connected{track=\"2\",from=\"bob\"} 0\n"));
        // Non-numeric packets and the element without a track are skipped.
        assert!(!t.contains("n/a"));
        assert!(!t.contains("no-track"));
        assert!(
            t.contains("izyrt_outgoing_track_dropped_packets_total{track=\"0\",to=\"hub\"} 1\n")
        );
        assert!(t.contains("izyrt_connection_rtt_seconds{user=\"alice\"} 0.012\n"));
        assert!(!t.contains("f32"));
    }

    #[test]
    fn realtime_per_thread_object_or_array() {
        let t = render_prometheus(&full());
        let th = "{thread=\"izyrt-audio\"}";
        assert!(t.contains(&format!("izyrt_realtime_priority{th} 80\n")));
        assert!(t.contains(&format!(
            "izyrt_realtime_wakeup_latency_p99_seconds{th} 0.00004\n"
        )));
        assert!(t.contains(&format!("izyrt_realtime_xruns_total{th} 0\n")));
        assert!(t.contains(&format!("izyrt_realtime_lost_frames_total{th} 128\n")));
        assert!(!t.contains("SCHED_FIFO"));
        let arr = json!({ "realtime": [{ "thread": "hub", "maxUs": 1000 }, { "maxUs": 1 }] });
        assert_eq!(
            render_prometheus(&arr),
            "# HELP izyrt_realtime_wakeup_latency_max_seconds Maximum wakeup latency of the RT thread.\n\
             # TYPE izyrt_realtime_wakeup_latency_max_seconds gauge\n\
             izyrt_realtime_wakeup_latency_max_seconds{thread=\"hub\"} 0.001\n"
        );
    }

    #[test]
    fn every_sample_line_has_help_and_type_and_parses() {
        let t = render_prometheus(&full());
        let mut declared = std::collections::HashSet::new();
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{line}");
                assert!(name.starts_with("izyrt_"), "{line}");
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        assert!(t.ends_with('\n'));
    }

    #[test]
    fn odd_input_never_panics() {
        for v in [
            json!(null),
            json!([1, 2]),
            json!("x"),
            json!({}),
            json!({ "aggregatorStatus": 5, "micStatus": "purple", "realtime": 3,
                    "incomingAudioTracks": { "track": 1 }, "outgoingAudioTracks": [null, 1, []],
                    "currentSpeakerSampleRate": -1, "speakerScriptProcessorLatencyMS": 1e308,
                    "connections": { "u": 1 } }),
        ] {
            let _ = render_prometheus(&v);
        }
        assert_eq!(render_prometheus(&json!(null)), "");
        let odd =
            render_prometheus(&json!({ "micStatus": "purple", "currentSpeakerSampleRate": -1 }));
        assert!(odd.contains("izyrt_mic_status{status=\"green\"} 0\n"));
        assert!(odd.contains("izyrt_mic_status{status=\"red\"} 0\n"));
        assert!(odd.contains("izyrt_current_speaker_sample_rate_hertz -1\n"));
    }

    #[test]
    fn promtool_accepts_the_output() {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let Ok(mut child) = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        else {
            println!("promtool not found (apt-get install prometheus); skipping");
            return;
        };
        let text = render_prometheus(&full());
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
