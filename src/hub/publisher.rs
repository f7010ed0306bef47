//! The hub's METADATA and getMetrics snapshot, built off the net thread (publisher
//! thread).
//!
//! Design: why a thread of its own. Every 500 ms the hub describes every user twice: in
//! the METADATA frame each client receives and in the snapshot getMetrics serves. That is
//! JSON about N users, and the frame goes to N clients: O(N²) bytes. Built and sent on the
//! net thread, it kept that thread away from the sockets for 2–3 ms at 64 clients and
//! 4.5–7 ms at 128 on the 2-core bench machine, every 500 ms: nobody's audio was read,
//! and in a trace most of one run's misses (each hitting every peer) fell on that 500 ms
//! grid. Now the net thread only copies the user table (plain counters and short
//! strings) into a [`Report`] and hands it over a bounded queue; this thread, at normal
//! priority, builds the JSON, publishes the snapshot and hands the encoded METADATA
//! frame back, waking the net thread, which sends it to a few clients per mix period
//! ([`super::fanout`]).
//!
//! A report that finds the queue full (this thread is still on the last one) is dropped:
//! the next comes 500 ms later, and the net thread never waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::thread::JoinHandle;

use serde_json::{Value, json};

use super::file_sources;
use super::mixer_thread::MixerStats;
use super::net_thread::NetConfig;
use super::users::Users;
use crate::metrics::SnapshotCell;
use crate::net::Waker;
use crate::rt::runner::RtStatus;
use crate::wire::{Kind, encode_json_vec};

/// Reports waiting for the publisher: one being built, one waiting.
const QUEUE: usize = 1;

/// What the net thread knows that changes: a copy of its user table and its counters.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The user table as it was at `now_ns`.
    pub users: Users,
    /// When it was taken ([`crate::rt::clock::now_ns`]).
    pub now_ns: u64,
    /// Connections refused `hub_full` so far (`hub.refused`).
    pub refused: u64,
    /// Connections refused before they joined, by reason (`refusedConnections`).
    pub refusals: super::refusals::Refusals,
    /// Allocator calls made on the net thread's AUDIO paths (0, or a bug).
    pub audio_allocs: u64,
}

/// Builds the hub's JSON from [`Report`]s: what never changes is kept here.
pub struct Publisher {
    cfg: NetConfig,
    /// The mixer thread, for `aggregatorStatus` and the `realtime` table.
    mixer: RtStatus,
    stats: Arc<MixerStats>,
    snapshot: Arc<SnapshotCell>,
    listen: Option<String>,
    started_ns: u64,
}

impl Publisher {
    /// A publisher for the hub listening on `listen`, started at `started_ns`.
    pub fn new(
        cfg: NetConfig,
        mixer: RtStatus,
        stats: Arc<MixerStats>,
        snapshot: Arc<SnapshotCell>,
        listen: Option<SocketAddr>,
        started_ns: u64,
    ) -> Publisher {
        Publisher {
            cfg,
            mixer,
            stats,
            snapshot,
            listen: listen.map(|a| a.to_string()),
            started_ns,
        }
    }

    /// The METADATA frame for `r`, encoded with seq 0 (each link writes its own), or why
    /// it could not be.
    /// `shared` is the report's `mixeradminSharedState` ([`Users::shared_state`]).
    pub fn metadata_frame(&self, r: &Report, shared: &Value) -> Result<Vec<u8>, String> {
        let tracks: Vec<Value> = self
            .cfg
            .files
            .iter()
            .map(|f| {
                let r = f.levels.reading();
                json!({"name": f.name, "kind": "file", "connected": true,
                       "peakDbfs": r.peak_dbfs, "rmsDbfs": r.rms_dbfs, "silent": r.silent})
            })
            .chain(
                r.users
                    .incoming_tracks(r.now_ns, self.cfg.latency_threshold_ns),
            )
            .collect();
        let value = json!({
            "mixeradminSharedState": shared,
            "aggregatorStatus": self.aggregator_status(),
            "tracks": tracks,
            "hub": {
                "session": self.cfg.session,
                "sampleRate": self.cfg.rate,
                "channels": self.cfg.channels,
                "framesPerPacket": self.cfg.period,
                "clients": r.users.connected(),
                "maxClients": self.cfg.max_clients,
            },
        });
        let mut frame = Vec::new();
        let n =
            encode_json_vec(&mut frame, Kind::Metadata, 0, &value).map_err(|e| e.to_string())?;
        frame.truncate(n);
        Ok(frame)
    }

    /// `mixeradminSharedState`: every user's session entry, and the hub's `--file`
    /// sources as users of role `source`.
    fn shared_state(&self, r: &Report) -> Value {
        let mut shared = r.users.shared_state(r.now_ns);
        file_sources::add_shared(&self.cfg.files, &mut shared);
        shared
    }

    fn file_stream(&self) -> file_sources::FileStream {
        file_sources::FileStream {
            rate: self.cfg.rate,
            channels: self.cfg.channels,
            period: self.cfg.period,
        }
    }

    fn aggregator_status(&self) -> &'static str {
        use crate::rt::driver::DriverState;
        match self.mixer.driver.state() {
            DriverState::Running => "running",
            DriverState::Idle | DriverState::Reopening => "connecting",
            _ => "stopped",
        }
    }

    /// Publishes the getMetrics snapshot for `r`.
    pub fn publish(&self, r: &Report) {
        self.publish_shared(r, self.shared_state(r));
    }

    /// Publishes the getMetrics snapshot for `r`, whose `mixeradminSharedState` is
    /// `shared` (built once for METADATA and the snapshot).
    ///
    /// The hub has no capture and no jitter-buffered speaker: `micStatus`,
    /// `speakerSilenceDetected` and `speakerScriptProcessorIncomingBufferMisses` are
    /// `null` (not applicable), and so is `user`.
    pub fn publish_shared(&self, r: &Report, shared: Value) {
        let now = r.now_ns;
        let mut snap = crate::metrics::default_snapshot();
        let mixer = &self.mixer;
        snap["currentSpeakerSampleRate"] = json!(mixer.obtained.rate);
        snap["currentSpeakerBufferDepthInFloat32Samples"] =
            json!(u64::from(mixer.obtained.buffer_frames) * u64::from(self.cfg.channels));
        snap["speakerScriptProcessorLatencyMS"] = json!(
            f64::from(mixer.obtained.buffer_frames) * 1000.0
                / f64::from(mixer.obtained.rate.max(1))
        );
        snap["aggregatorStatus"] = json!(self.aggregator_status());
        let threshold = self.cfg.latency_threshold_ns;
        snap["incomingAudioTracks"] = Value::Array(
            self.cfg
                .files
                .iter()
                .map(|f| f.incoming_track(now, threshold))
                .chain(r.users.incoming_tracks(now, threshold))
                .collect(),
        );
        snap["outgoingAudioTracks"] = Value::Array(r.users.outgoing_tracks());
        let mut connections = r.users.connections(now);
        file_sources::add_connections(&self.cfg.files, self.file_stream(), &mut connections);
        snap["connections"] = connections;
        snap["micStatus"] = Value::Null;
        snap["speakerSilenceDetected"] = Value::Null;
        snap["speakerScriptProcessorIncomingBufferMisses"] = Value::Null;
        snap["sessions"] = shared.clone();
        snap["mixeradminSharedState"] = shared;
        snap["realtime"] = json!({ mixer.report.thread.clone(): mixer.json() });
        snap["role"] = json!("hub");
        snap["user"] = Value::Null;
        snap["hubAddress"] = json!(self.listen);
        snap["refusedConnections"] = json!(r.refusals);
        let stats = &self.stats;
        snap["hub"] = json!({
            "session": self.cfg.session,
            "listen": self.listen,
            "clients": r.users.connected(),
            "maxClients": self.cfg.max_clients,
            "refused": r.refused,
            "mix": self.cfg.default_mix,
            "files": self.cfg.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
            "uptimeSeconds": now.saturating_sub(self.started_ns) as f64 / 1e9,
            "leakedSlots": stats.leaked_slots.load(Ordering::Relaxed),
            "missPeriods": stats.miss_periods.load(Ordering::Relaxed),
            "widestMiss": stats.widest_miss.load(Ordering::Relaxed),
            "audioPathAllocations": r.audio_allocs,
        });
        self.snapshot.publish(snap);
    }

    /// Starts the publisher thread; `wake` is signalled after each METADATA frame.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn spawn(self, wake: Arc<Waker>) -> std::io::Result<PublisherHandle> {
        let (reports, inbox) = sync_channel::<Report>(QUEUE);
        let (outbox, frames) = sync_channel::<Vec<u8>>(QUEUE + 1);
        let thread = std::thread::Builder::new()
            .name("izyrt-hub-pub".into())
            .spawn(move || {
                let mut failures = crate::net::log_limit::LogLimit::per_site();
                for r in inbox {
                    let shared = self.shared_state(&r);
                    match self.metadata_frame(&r, &shared) {
                        // Full: the net thread has a newer frame still unread; keep that.
                        Ok(frame) => match outbox.try_send(frame) {
                            Ok(()) | Err(TrySendError::Full(_)) => wake.wake(),
                            Err(TrySendError::Disconnected(_)) => return,
                        },
                        Err(e) => failures.log(
                            crate::rt::clock::now_ns(),
                            "izyrt hub",
                            format_args!("METADATA not sent: {e}"),
                        ),
                    }
                    self.publish_shared(&r, shared);
                }
            })?;
        Ok(PublisherHandle {
            reports: Some(reports),
            frames,
            thread: Some(thread),
        })
    }
}

/// The net thread's end of the publisher thread.
pub struct PublisherHandle {
    reports: Option<SyncSender<Report>>,
    frames: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
}

impl PublisherHandle {
    /// Hands `r` over without waiting; `false` when the publisher is still busy with an
    /// earlier one (`r` is dropped) or has ended.
    pub fn submit(&self, r: Report) -> bool {
        self.reports
            .as_ref()
            .is_some_and(|tx| tx.try_send(r).is_ok())
    }

    /// Whether the thread has ended (it runs until this handle is dropped: a panic).
    pub fn has_ended(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// The newest METADATA frame built since the last call, if any. Never waits.
    pub fn latest_frame(&self) -> Option<Vec<u8>> {
        let mut latest = None;
        loop {
            match self.frames.try_recv() {
                Ok(f) => latest = Some(f),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return latest,
            }
        }
    }
}

impl Drop for PublisherHandle {
    /// Ends the thread: it finishes the report in hand, then sees the queue closed.
    fn drop(&mut self) {
        drop(self.reports.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
