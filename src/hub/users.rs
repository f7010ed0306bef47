//! The hub's per-user table and the JSON it publishes: METADATA for clients and the
//! `aggregatedStatesSnapshot` for getMetrics (net thread).
//!
//! Design: a user is keyed by its HELLO `user` and outlives its connections, so the
//! dashboard sees `connected: false` for one that left (the spec's "until it returns or
//! is forgotten": the oldest departed users are forgotten beyond [`MAX_REMEMBERED`]).
//! Everything updated per AUDIO frame is a plain counter here; the JSON is built only at
//! the METADATA cadence (every 500 ms) and on join/leave, off the per-frame path. The
//! latest QOS report is kept as the raw bytes received (validated, not parsed) and parsed
//! only when published.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use super::mixer_thread::SlotStats;
use super::sessions::{LifeTotals, MissWindow};
use crate::dsp::meter::MeterLevels;
use crate::metrics::IncomingTrack;
use crate::net::seq::SeqTracker;
use crate::rt::clock::ns_to_ms;
use crate::wire::{AudioHeader, AudioParams, Mix, Role};

/// Departed users remembered beyond the connected ones.
pub const MAX_REMEMBERED: usize = 256;

/// The latest AUDIO frame from a user.
#[derive(Debug, Clone, Copy, Default)]
pub struct Head {
    /// Frame header's track.
    pub track: u16,
    /// Frame header's seq.
    pub seq: u32,
    /// Its sub-header.
    pub audio: Option<AudioHeader>,
}

/// What the hub knows about one user.
#[derive(Debug, Clone)]
pub struct User {
    /// The `user` of its HELLO.
    pub name: String,
    /// Whether a connection of it is live.
    pub connected: bool,
    /// Its role.
    pub role: Role,
    /// The audio it sends, if any.
    pub audio: Option<AudioParams>,
    /// What it hears.
    pub mix: Option<Mix>,
    /// Whether it sends QOS.
    pub qos_enabled: bool,
    /// Its `software`.
    pub software: Option<String>,
    /// Remote address.
    pub addr: String,
    /// Mixer slot figures (jitter buffer).
    pub stats: Option<Arc<SlotStats>>,
    /// Its input levels.
    pub levels: Option<Arc<MeterLevels>>,
    /// AUDIO frames received.
    pub packets_in: u64,
    /// Gaps in their sequence numbers (judged per track).
    pub seq_gaps: u64,
    /// The last AUDIO seq per track, for the gaps.
    pub seq: SeqTracker,
    /// Frames of stream time its track 0 skipped over, over every connection: a packet
    /// whose position lies past the end of the one before it (over TCP nothing is lost
    /// on the way, so this is audio the sender lost, its capture device's xrun).
    pub sender_skipped_frames: u64,
    /// `sender_skipped_frames` when its live connection joined.
    pub sender_skipped_at_join: u64,
    /// The position its next track 0 packet continues at (`None` before the first).
    pub next_position: Option<u64>,
    /// f32 samples received NaN, infinite or subnormal (zeroed before the mix), this
    /// connection.
    pub non_finite_samples: u64,
    /// Monotonic ns when the seq last advanced.
    pub seq_advanced_ns: u64,
    /// Latest AUDIO frame.
    pub head: Head,
    /// AUDIO frames of its mix queued for it.
    pub packets_out: u64,
    /// Mix frames dropped for it (slow reader or full pipe).
    pub dropped_out: u64,
    /// Latest round trip, ns.
    pub rtt_ns: Option<u64>,
    /// Latest QOS report, raw JSON.
    pub qos: Vec<u8>,
    /// QOS reports received.
    pub qos_reports: u64,
    /// Times it connected.
    pub sessions: u64,
    /// Monotonic ns of the last change of `connected`.
    pub since_ns: u64,
    /// Why its last connection ended.
    pub left_because: Option<String>,
    /// Unix ms of the last change of `connected`.
    pub since_unix_ms: u64,
    /// Unix ms its last connection ended (`None` while its first is live).
    pub left_at_unix_ms: Option<u64>,
    /// The jitter figures of its earlier connections.
    pub life: LifeTotals,
    /// Its miss totals over the last seconds.
    pub miss_window: MissWindow,
}

impl User {
    fn new(name: &str) -> User {
        User {
            name: name.to_owned(),
            connected: false,
            role: Role::Peer,
            audio: None,
            mix: None,
            qos_enabled: false,
            software: None,
            addr: String::new(),
            stats: None,
            levels: None,
            packets_in: 0,
            seq_gaps: 0,
            seq: SeqTracker::default(),
            sender_skipped_frames: 0,
            sender_skipped_at_join: 0,
            next_position: None,
            non_finite_samples: 0,
            seq_advanced_ns: 0,
            head: Head::default(),
            packets_out: 0,
            dropped_out: 0,
            rtt_ns: None,
            qos: Vec::with_capacity(1024),
            qos_reports: 0,
            sessions: 0,
            since_ns: 0,
            left_because: None,
            since_unix_ms: 0,
            left_at_unix_ms: None,
            life: LifeTotals::default(),
            miss_window: MissWindow::default(),
        }
    }

    /// A new connection of this user: its slot's figures replace the previous slot's,
    /// whose counts join the life totals.
    pub fn joined(&mut self, stats: Arc<SlotStats>, now_ns: u64, unix_ms: u64) {
        if let Some(old) = self.stats.replace(stats) {
            self.life.fold(&old);
        }
        self.connected = true;
        self.sessions += 1;
        self.since_ns = now_ns;
        self.since_unix_ms = unix_ms;
        self.left_because = None;
        // Its stream starts afresh: what it skips is counted from here for this connection.
        self.sender_skipped_at_join = self.sender_skipped_frames;
        self.next_position = None;
        let misses = self.life.misses;
        self.miss_window.note(now_ns, misses);
    }

    /// Its connection ended because of `why`.
    pub fn left(&mut self, why: &str, now_ns: u64, unix_ms: u64) {
        self.connected = false;
        self.since_ns = now_ns;
        self.since_unix_ms = unix_ms;
        self.left_at_unix_ms = Some(unix_ms);
        self.left_because = Some(why.to_owned());
    }

    /// Hub-side misses over its life (every connection).
    pub fn total_misses(&self) -> u64 {
        self.life.with(self.stats.as_deref()).misses
    }

    /// Notes an AUDIO frame (per frame: no allocation).
    pub fn on_audio(&mut self, track: u16, seq: u32, h: AudioHeader, now_ns: u64) {
        let note = self.seq.note(track, seq);
        if note.gap {
            self.seq_gaps += 1;
        }
        if note.advanced {
            self.seq_advanced_ns = now_ns;
        }
        if track == 0 {
            if let Some(next) = self.next_position {
                // Wrapping: positions cross u64::MAX; a packet before `next` (a sender
                // that restarted its stream) skipped nothing.
                let ahead = h.position.wrapping_sub(next);
                if ahead as i64 >= 0 {
                    self.sender_skipped_frames = self.sender_skipped_frames.saturating_add(ahead);
                }
            }
            self.next_position = Some(h.position.wrapping_add(u64::from(h.frames)));
        }
        self.packets_in += 1;
        self.head = Head {
            track,
            seq,
            audio: Some(h),
        };
    }

    pub(super) fn latest_qos(&self) -> Value {
        if self.qos.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.qos).unwrap_or(Value::Null)
    }

    /// `audioInputMetadata`: the input levels as the mixer metered them.
    pub(super) fn input_metadata(&self) -> Value {
        self.levels.as_deref().map_or(Value::Null, levels_json)
    }
}

/// `audioInputMetadata` of one input from its levels (a client's or a file source's).
pub fn levels_json(l: &MeterLevels) -> Value {
    let r = l.reading();
    let peaks: Vec<f32> = (0..l.channels())
        .filter_map(|c| l.channel_peak_dbfs(c))
        .collect();
    json!({
        "peakDbfs": r.peak_dbfs,
        "rmsDbfs": r.rms_dbfs,
        "channelPeakDbfs": peaks,
        "silent": r.silent,
        "clippedSamples": r.clipped,
        "clipping": r.peak_dbfs >= 0.0,
    })
}

/// Every user the hub knows.
#[derive(Debug, Clone, Default)]
pub struct Users {
    list: Vec<User>,
    index: HashMap<String, usize>,
}

impl Users {
    /// The user called `name`, created if new (HELLO time; may forget a departed user).
    pub fn get_or_add(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let departed = self.list.iter().filter(|u| !u.connected).count();
        if departed >= MAX_REMEMBERED {
            if let Some(oldest) = self
                .list
                .iter()
                .enumerate()
                .filter(|(_, u)| !u.connected)
                .min_by_key(|(_, u)| u.since_ns)
                .map(|(i, _)| i)
            {
                self.list.swap_remove(oldest);
                self.reindex();
            }
        }
        self.list.push(User::new(name));
        let i = self.list.len() - 1;
        self.index.insert(name.to_owned(), i);
        i
    }

    fn reindex(&mut self) {
        self.index = self
            .list
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.clone(), i))
            .collect();
    }

    /// The user at `i`.
    pub fn at(&mut self, i: usize) -> &mut User {
        &mut self.list[i]
    }

    /// The index of `name`, if known.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Users with a live connection.
    pub fn connected(&self) -> usize {
        self.list.iter().filter(|u| u.connected).count()
    }

    /// Samples every user's miss total for `hubMisses10s` (net thread, at the METADATA
    /// cadence: one atomic load per user, no allocation).
    pub fn sample_misses(&mut self, now_ns: u64) {
        for u in &mut self.list {
            let total = u.total_misses();
            u.miss_window.note(now_ns, total);
        }
    }

    /// `mixeradminSharedState` (and getMetrics' `sessions`): per user, the entry of
    /// [`super::sessions::entry`].
    pub fn shared_state(&self, now_ns: u64) -> Value {
        let mut m = Map::new();
        for u in &self.list {
            m.insert(u.name.clone(), super::sessions::entry(u, now_ns));
        }
        Value::Object(m)
    }

    /// `connections`: per user, the protocol-level state of its connection.
    pub fn connections(&self, now_ns: u64) -> Value {
        let mut m = Map::new();
        for u in &self.list {
            let a = u.audio;
            let stats = u.stats.as_deref();
            let load = |f: fn(&SlotStats) -> &std::sync::atomic::AtomicU64| {
                stats.map(|s| f(s).load(Ordering::Relaxed))
            };
            let head = u.head.audio.map(|h| {
                json!({
                    "track": u.head.track,
                    "seq": u.head.seq,
                    "sampleRate": h.sample_rate,
                    "channels": h.channels,
                    "format": h.format.name(),
                    "frames": h.frames,
                    "position": h.position,
                    "originNs": h.origin_ns,
                })
            });
            m.insert(
                u.name.clone(),
                json!({
                    "connected": u.connected,
                    "role": u.role,
                    "addr": u.addr,
                    "software": u.software,
                    "mix": u.mix,
                    "sampleRate": a.map(|a| a.sample_rate),
                    "channels": a.map(|a| a.channels),
                    "format": a.map(|a| a.format.name()),
                    "framesPerPacket": a.map(|a| a.frames_per_packet),
                    "enableQOSMetrics": u.qos_enabled,
                    "packetsIn": u.packets_in,
                    "seqGaps": u.seq_gaps,
                    "senderSkippedFrames": u.sender_skipped_frames - u.sender_skipped_at_join,
                    "nonFiniteSamples": u.non_finite_samples,
                    "packetsOut": u.packets_out,
                    "droppedOut": u.dropped_out,
                    "qosReports": u.qos_reports,
                    "sessions": u.sessions,
                    "jitterDepthFrames": load(|s| &s.depth_frames),
                    "jitterTargetFrames": load(|s| &s.target_frames),
                    "jitterFloorFrames": load(|s| &s.floor_frames),
                    "jitterMaxFrames": load(|s| &s.max_frames),
                    "jitterMisses": load(|s| &s.misses),
                    "jitterLatePackets": load(|s| &s.late_frames),
                    "jitterDroppedFrames": load(|s| &s.dropped_frames),
                    "trimmedFrames": load(|s| &s.trimmed_frames),
                    "concealedFrames": load(|s| &s.concealed_frames),
                    "resumesInPhase": load(|s| &s.resumes_in_phase),
                    "lagSearchesSkipped": load(|s| &s.lag_searches_skipped),
                    "driftPpm": stats.and_then(SlotStats::drift_ppm),
                    "senderLocked": stats.map(SlotStats::sender_locked),
                    "rttMs": u.rtt_ns.map(ns_to_ms),
                    "secondsSinceChange": ns_to_ms(now_ns.saturating_sub(u.since_ns)) / 1000.0,
                    "leftBecause": u.left_because,
                    "head": head,
                }),
            );
        }
        Value::Object(m)
    }

    /// `incomingAudioTracks`: one per user that sends audio. A track is connected unless
    /// empty or its seq has not advanced for `threshold_ns`.
    pub fn incoming_tracks(&self, now_ns: u64, threshold_ns: u64) -> Vec<Value> {
        self.list
            .iter()
            .filter(|u| u.audio.is_some())
            .map(|u| {
                let since = now_ns.saturating_sub(u.seq_advanced_ns);
                let depth = u
                    .stats
                    .as_ref()
                    .map_or(0, |s| s.depth_frames.load(Ordering::Relaxed));
                let rate = u.audio.map_or(48_000, |a| a.sample_rate);
                IncomingTrack {
                    track: u.head.track,
                    from: &u.name,
                    kind: None,
                    connected: u.connected && u.packets_in > 0 && since <= threshold_ns,
                    seq: u.head.seq.into(),
                    packets: u.packets_in,
                    seq_gaps: u.seq_gaps,
                    since_advance_ns: (u.packets_in > 0).then_some(since),
                    latency_ms: depth as f64 * 1000.0 / f64::from(rate.max(1)),
                }
                .to_json()
            })
            .collect()
    }

    /// `outgoingAudioTracks`: the mix sent to each listening user.
    pub fn outgoing_tracks(&self) -> Vec<Value> {
        self.list
            .iter()
            .filter(|u| u.mix.is_some())
            .map(|u| {
                json!({
                    "track": 0,
                    "to": u.name,
                    "connected": u.connected,
                    "seq": u.packets_out.saturating_sub(1),
                    "packets": u.packets_out,
                    "droppedPackets": u.dropped_out,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
