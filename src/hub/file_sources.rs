//! The hub's own WAV sources (`--file`) as the session sees them: an incoming track and a
//! user of role `source`, beside the clients (publisher thread).
//!
//! Design: a file source has no connection, so it has no row in the net thread's user
//! table ([`super::users`]); the publisher adds these rows to what it builds from that
//! table, in the same shapes: `incomingAudioTracks` (the track rule is the clients': a
//! track is connected unless empty or not advanced for the latency threshold, a period
//! mixed counting as a packet), `mixeradminSharedState` (its levels as
//! `audioInputMetadata`, no `QOSMetrics`) and `connections`. A client whose user is the
//! file's name keeps its own rows.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use super::mixer_thread::SlotStats;
use super::users::levels_json;
use crate::dsp::meter::MeterLevels;
use crate::metrics::IncomingTrack;

/// One `--file` source of the hub.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// Its track and user name (the file's name).
    pub name: String,
    /// The file as given.
    pub path: String,
    /// Its levels, metered by the mixer.
    pub levels: Arc<MeterLevels>,
    /// Its mixer slot's figures (`periods`, `last_period_ns`).
    pub stats: Arc<SlotStats>,
}

/// The stream every file source is mixed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStream {
    /// The hub's rate, Hz.
    pub rate: u32,
    /// The hub's channels.
    pub channels: u16,
    /// Frames mixed per period.
    pub period: u32,
}

impl FileSource {
    fn periods(&self) -> u64 {
        self.stats.periods.load(Ordering::Relaxed)
    }

    fn since_ns(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.stats.last_period_ns.load(Ordering::Relaxed))
    }

    /// Its `incomingAudioTracks` entry (the clients' keys, plus `kind: "file"`).
    pub fn incoming_track(&self, now_ns: u64, threshold_ns: u64) -> Value {
        let periods = self.periods();
        let since = self.since_ns(now_ns);
        IncomingTrack {
            track: 0,
            from: &self.name,
            kind: Some("file"),
            connected: periods > 0 && since <= threshold_ns,
            seq: periods.saturating_sub(1),
            packets: periods,
            seq_gaps: 0,
            since_advance_ns: (periods > 0).then_some(since),
            latency_ms: 0.0,
        }
        .to_json()
    }

    /// Its `mixeradminSharedState` entry.
    pub fn shared_state(&self) -> Value {
        json!({
            "connected": true,
            "role": "source",
            "kind": "file",
            "audioInputMetadata": levels_json(&self.levels),
            "QOSMetrics": Value::Null,
        })
    }

    /// Its `connections` entry.
    pub fn connection(&self, s: FileStream) -> Value {
        json!({
            "connected": true,
            "role": "source",
            "kind": "file",
            "file": self.path,
            "sampleRate": s.rate,
            "channels": s.channels,
            "format": "f32",
            "framesPerPacket": s.period,
            "packetsIn": self.periods(),
        })
    }
}

/// Adds `files`' entries to `shared` (`mixeradminSharedState`), leaving a client's entry
/// of the same name as it is.
pub fn add_shared(files: &[FileSource], shared: &mut Value) {
    add(files, shared, FileSource::shared_state);
}

/// Adds `files`' entries to `connections`, leaving a client's entry of the same name as it
/// is.
pub fn add_connections(files: &[FileSource], stream: FileStream, connections: &mut Value) {
    add(files, connections, |f| f.connection(stream));
}

fn add(files: &[FileSource], target: &mut Value, entry: impl Fn(&FileSource) -> Value) {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(map) = target.as_object_mut() {
        for f in files {
            map.entry(f.name.clone()).or_insert_with(|| entry(f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::meter::{Meter, MeterConfig};

    fn source() -> FileSource {
        let meter = Meter::new(MeterConfig {
            rate: 48_000,
            channels: 2,
            window_ms: 10,
            silence_threshold_dbfs: -60.0,
            silence_hold_ms: 1_000,
        })
        .unwrap();
        FileSource {
            name: "song.wav".into(),
            path: "/music/song.wav".into(),
            levels: meter.levels(),
            stats: Arc::new(SlotStats::default()),
        }
    }

    #[test]
    fn a_file_is_a_source_user_and_a_track_connected_while_it_is_mixed() {
        let f = source();
        assert_eq!(
            f.incoming_track(1_000, 100)["connected"],
            false,
            "not mixed yet"
        );
        f.stats.periods.store(10, Ordering::Relaxed);
        f.stats.last_period_ns.store(1_000, Ordering::Relaxed);
        let t = f.incoming_track(1_050, 100);
        assert_eq!(
            (
                t["from"].clone(),
                t["connected"].clone(),
                t["packets"].clone()
            ),
            (json!("song.wav"), json!(true), json!(10))
        );
        assert_eq!(
            f.incoming_track(1_101, 100)["connected"],
            false,
            "the mixer stopped"
        );

        let stream = FileStream {
            rate: 48_000,
            channels: 2,
            period: 64,
        };
        let mut shared = json!({"alice": {"role": "peer"}});
        let mut connections = json!({"song.wav": {"role": "peer", "addr": "x"}});
        add_shared(std::slice::from_ref(&f), &mut shared);
        add_connections(&[f], stream, &mut connections);
        assert_eq!(shared["song.wav"]["role"], "source");
        assert_eq!(shared["alice"]["role"], "peer");
        assert_eq!(
            connections["song.wav"]["addr"], "x",
            "a client of that name keeps its row"
        );
        let mut empty = Value::Null;
        add_connections(&[source()], stream, &mut empty);
        assert_eq!(empty["song.wav"]["sampleRate"], 48_000);
    }
}
