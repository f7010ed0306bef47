//! `aggregatedStatesSnapshot` as Prometheus text exposition, format 0.0.4 (HTTP thread).
//!
//! Mapping (every name is prefixed `izyrt_` and snake_case):
//! - Scalar numbers become gauges, booleans gauges of 0/1. Cumulative figures that only
//!   grow (packets, sequence gaps, dropped packets, misses, xruns) are counters named
//!   `_total`. A figure the engine resets by design is a gauge, never a `_total`:
//!   `speakerScriptProcessorIncomingBufferMisses` (the seed's count, reset while the speaker
//!   is silent) is `izyrt_speaker_incoming_buffer_misses`, and the monotonic
//!   `speakerIncomingBufferMissesTotal` beside it is `izyrt_speaker_incoming_buffer_misses_total`
//!   (`rate()` reads it right). A counter may still restart with its connection (a user's
//!   new slot), which Prometheus treats as an ordinary counter reset.
//! - Times are converted to seconds (Prometheus base unit): `…Ms`/`…MS` fields and Unix
//!   ms timestamps are divided by 1000, `…Us` fields by 1 000 000.
//! - `aggregatorStatus` and `micStatus` become one state gauge each with a `status`
//!   label, one line per possible state, 1 for the current one (no line at all when the
//!   field is `null`: the hub has no mic).
//! - **One label name for a user: `user`.** `incomingAudioTracks` / `outgoingAudioTracks`
//!   are labelled `track` and `user` (the track's `from` / `to`); `connections` and
//!   `sessions` are labelled `user`; `realtime` is labelled `thread`.
//! - `sessions` (the hub's session table; a monitor's copy from METADATA) gives the
//!   per-user `izyrt_user_*` series on every role but `peer` (a peer's copy would repeat
//!   the hub's figures once per peer): see [`sessions`]. A user the hub forgot is no longer
//!   in `sessions`, so its series are gone from the next scrape.
//! - `hub` and `refusedConnections` give the hub-wide `izyrt_hub_*` series.
//! - `realtime.THREAD.wakeupHistogram` gives the histogram
//!   `izyrt_rt_wakeup_lateness_seconds` ([`histogram`]).
//! - `izyrt_build_info{version,commit}` and `izyrt_info{role,user,hub}` (value 1) on every
//!   role ([`info`]).
//!
//! A missing, `null` or non-numeric field is skipped (so is a track without a `track`
//! label); the renderer never panics on any JSON, and a family without samples is not
//! written.

use std::fmt::Write as _;

use serde_json::{Map, Value};

mod fields;
mod histogram;
mod info;
mod sessions;
#[cfg(test)]
mod tests;

/// How a JSON field's number is scaled into the exported unit.
#[derive(Clone, Copy)]
enum Scale {
    One,
    /// Milliseconds to seconds.
    Milli,
    /// Microseconds to seconds.
    Micro,
}

/// One exported metric family drawn from one JSON field (`a.b` reaches into a nested
/// object).
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
///     "role": "hub",
///     "currentSpeakerBufferDepthInFloat32Samples": 960,
///     "aggregatorStatus": "running",
///     "incomingAudioTracks": [{ "track": 1, "from": "alice", "packets": 12 }],
///     "sessions": { "alice": { "hubMisses": 3 } },
/// }));
/// assert!(text.contains("izyrt_current_speaker_buffer_depth_float32_samples 960\n"));
/// assert!(text.contains("izyrt_aggregator_status{status=\"running\"} 1\n"));
/// assert!(text.contains("izyrt_aggregator_status{status=\"stopped\"} 0\n"));
/// assert!(text.contains(
///     "izyrt_incoming_track_packets_total{track=\"1\",user=\"alice\"} 12\n"
/// ));
/// assert!(text.contains("izyrt_user_jitter_misses_total{user=\"alice\"} 3\n"));
/// assert!(text.contains("izyrt_info{role=\"hub\",user=\"\",hub=\"\"} 1\n"));
/// ```
pub fn render_prometheus(snapshot: &Value) -> String {
    let mut out = String::new();
    let Some(obj) = snapshot.as_object() else {
        return out;
    };
    info::render(&mut out, obj);
    for field in fields::SCALARS {
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
    labelled(&mut out, fields::INCOMING, &incoming);
    let outgoing = tracks(obj.get("outgoingAudioTracks"), "to");
    labelled(&mut out, fields::OUTGOING, &outgoing);
    let connections = keyed(obj.get("connections"), "user");
    labelled(&mut out, fields::CONNECTIONS, &connections);
    sessions::render(&mut out, obj);
    let realtime = keyed(obj.get("realtime"), "thread");
    labelled(&mut out, fields::REALTIME, &realtime);
    histogram::render(&mut out, &realtime);
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

/// `obj`'s field at `path` (`a.b` for a field of a nested object).
fn lookup<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = obj.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

/// Writes `# HELP` and `# TYPE` of a family.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes `# HELP`, `# TYPE` and `samples` (each a rendered label set, possibly empty,
/// and a value), or nothing when there are no samples.
fn family(out: &mut String, field: &Field, samples: &[(String, String)]) {
    if samples.is_empty() {
        return;
    }
    let kind = if field.counter { "counter" } else { "gauge" };
    header(out, field.name, kind, field.help);
    for (labels, value) in samples {
        let _ = writeln!(out, "{}{labels} {value}", field.name);
    }
}

fn state(out: &mut String, v: Option<&Value>, name: &str, help: &str, states: &[&str]) {
    let Some(current) = v.and_then(Value::as_str) else {
        return;
    };
    header(out, name, "gauge", help);
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
                let v = number(lookup(obj, field.json)?, field.scale)?;
                Some((labels.clone(), v))
            })
            .collect();
        family(out, field, &samples);
    }
}

/// Track arrays: labels `track` (required) and `user`, taken from the track's field
/// `peer` (`from` / `to`; empty if absent).
fn tracks<'a>(v: Option<&'a Value>, peer: &str) -> Rows<'a> {
    let Some(items) = v.and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let obj = item.as_object()?;
            let track = label_value(obj.get("track")?)?;
            let user = obj.get(peer).and_then(label_value).unwrap_or_default();
            let labels = format!(
                "{{track=\"{}\",user=\"{}\"}}",
                escape(&track),
                escape(&user)
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

/// `labels` (`{a="x"}`) with `key="value"` added inside the braces (`value` escaped).
fn with_label(labels: &str, key: &str, value: &str) -> String {
    format!(
        "{},{key}=\"{}\"}}",
        labels.trim_end_matches('}'),
        escape(value)
    )
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
