//! The latest `aggregatedStatesSnapshot`, shared between its producers and the HTTP
//! thread.
//!
//! Design: publication is a pointer swap under a [`Mutex`]: the producer builds a whole
//! new [`Value`] off-lock and swaps an [`Arc`] in; a reader clones the `Arc` and renders
//! from it after releasing the lock, so the lock is held for a few instructions on either
//! side. Neither side is an RT thread: **RT threads never touch a `SnapshotCell`** (a
//! mutex, allocation and JSON are all forbidden there); they publish atomics, which the
//! net or main thread reads to build the snapshot.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value, json};

/// Every key of `aggregatedStatesSnapshot` listed in `DESIGN.md`, in that order.
///
/// # Example
/// ```
/// let snap = izyrt::metrics::default_snapshot();
/// for key in izyrt::metrics::SNAPSHOT_KEYS {
///     assert!(snap.get(key).is_some(), "{key}");
/// }
/// ```
pub const SNAPSHOT_KEYS: [&str; 12] = [
    "currentSpeakerBufferDepthInFloat32Samples",
    "currentSpeakerSampleRate",
    "speakerScriptProcessorLatencyMS",
    "speakerScriptProcessorIncomingBufferMisses",
    "speakerSilenceDetected",
    "aggregatorStatus",
    "micStatus",
    "incomingAudioTracks",
    "outgoingAudioTracks",
    "connections",
    "mixeradminSharedState",
    "realtime",
];

/// The neutral snapshot served before anything was published: every [`SNAPSHOT_KEYS`]
/// key, numbers 0, `aggregatorStatus` `"stopped"`, `micStatus` `"red"`,
/// `speakerSilenceDetected` `true`, empty track lists and empty per-user/per-thread
/// objects.
///
/// # Example
/// ```
/// let snap = izyrt::metrics::default_snapshot();
/// assert_eq!(snap["aggregatorStatus"], "stopped");
/// assert_eq!(snap["micStatus"], "red");
/// ```
pub fn default_snapshot() -> Value {
    let mut map = Map::new();
    for key in SNAPSHOT_KEYS {
        let value = match key {
            "speakerSilenceDetected" => json!(true),
            "aggregatorStatus" => json!("stopped"),
            "micStatus" => json!("red"),
            "incomingAudioTracks" | "outgoingAudioTracks" => json!([]),
            "connections" | "mixeradminSharedState" | "realtime" => json!({}),
            _ => json!(0),
        };
        map.insert(key.to_owned(), value);
    }
    Value::Object(map)
}

/// Where the latest snapshot lives: written by [`SnapshotCell::publish`], read by
/// [`SnapshotCell::latest`]. Share it as an `Arc<SnapshotCell>`.
///
/// Not for RT threads (it locks a mutex and the producer allocates); see the module
/// documentation.
///
/// # Example
/// ```
/// use izyrt::metrics::SnapshotCell;
/// use serde_json::json;
///
/// let cell = SnapshotCell::default();
/// assert_eq!(cell.latest()["currentSpeakerSampleRate"], 0);
/// cell.publish(json!({ "currentSpeakerSampleRate": 48000 }));
/// assert_eq!(cell.latest()["currentSpeakerSampleRate"], 48000);
/// ```
#[derive(Debug)]
pub struct SnapshotCell {
    latest: Mutex<Arc<Value>>,
}

impl Default for SnapshotCell {
    /// A cell holding [`default_snapshot`].
    fn default() -> SnapshotCell {
        SnapshotCell::new(default_snapshot())
    }
}

impl SnapshotCell {
    /// A cell holding `initial`.
    ///
    /// # Example
    /// ```
    /// let cell = izyrt::metrics::SnapshotCell::new(serde_json::json!({}));
    /// assert!(cell.latest().as_object().unwrap().is_empty());
    /// ```
    pub fn new(initial: Value) -> SnapshotCell {
        SnapshotCell {
            latest: Mutex::new(Arc::new(initial)),
        }
    }

    /// Replaces the snapshot; readers see `snapshot` from their next
    /// [`SnapshotCell::latest`]. The previous value is dropped outside the lock (unless a
    /// reader still holds it, in which case that reader drops it).
    ///
    /// # Example
    /// See [`SnapshotCell`].
    pub fn publish(&self, snapshot: Value) {
        let new = Arc::new(snapshot);
        let old = {
            let mut guard = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *guard, new)
        };
        drop(old);
    }

    /// The latest published snapshot (or the initial one).
    ///
    /// # Example
    /// See [`SnapshotCell`].
    pub fn latest(&self) -> Arc<Value> {
        Arc::clone(&self.latest.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_has_every_key_with_neutral_values() {
        let snap = SnapshotCell::default().latest();
        let obj = snap.as_object().unwrap();
        assert_eq!(obj.len(), SNAPSHOT_KEYS.len());
        // preserve_order: the keys come out in DESIGN.md order.
        assert!(obj.keys().map(String::as_str).eq(SNAPSHOT_KEYS));
        assert_eq!(snap["currentSpeakerBufferDepthInFloat32Samples"], 0);
        assert_eq!(snap["speakerSilenceDetected"], true);
        assert_eq!(snap["incomingAudioTracks"], json!([]));
        assert_eq!(snap["realtime"], json!({}));
    }

    #[test]
    fn publish_replaces_and_old_readers_keep_their_copy() {
        let cell = SnapshotCell::default();
        let before = cell.latest();
        cell.publish(json!({ "micStatus": "green" }));
        assert_eq!(before["micStatus"], "red");
        assert_eq!(cell.latest()["micStatus"], "green");
    }

    #[test]
    fn publish_from_another_thread_is_seen() {
        let cell = Arc::new(SnapshotCell::default());
        let c = Arc::clone(&cell);
        std::thread::spawn(move || c.publish(json!({ "currentSpeakerSampleRate": 44100 })))
            .join()
            .unwrap();
        assert_eq!(cell.latest()["currentSpeakerSampleRate"], 44100);
    }
}
