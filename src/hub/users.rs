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
                if ahead < 1 << 63 {
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
mod tests {
    use super::*;
    use crate::wire::AudioFormat;

    fn h() -> AudioHeader {
        AudioHeader {
            sample_rate: 48_000,
            channels: 2,
            format: AudioFormat::F32,
            frames: 64,
            position: 0,
            origin_ns: 0,
            echo_ns: 0,
        }
    }

    #[test]
    fn seq_gaps_and_track_connectedness() {
        let mut users = Users::default();
        let i = users.get_or_add("alice");
        assert_eq!(users.get_or_add("alice"), i);
        let u = users.at(i);
        u.connected = true;
        u.audio = Some(AudioParams {
            sample_rate: 48_000,
            channels: 2,
            format: AudioFormat::F32,
            frames_per_packet: 64,
        });
        assert_eq!(
            users.incoming_tracks(0, 100)[0]["connected"],
            false,
            "empty"
        );
        for (seq, t) in [(0, 10), (1, 20), (3, 30), (3, 40)] {
            users.at(i).on_audio(0, seq, h(), t);
        }
        assert_eq!(users.at(i).seq_gaps, 2, "0→1 ok, 1→3 gap, 3→3 repeat");
        let tracks = users.incoming_tracks(130, 100);
        assert_eq!(tracks[0]["connected"], true);
        assert_eq!(
            users.incoming_tracks(131, 100)[0]["connected"],
            false,
            "stalled"
        );
        for (track, seq, t) in [(1, 0, 201), (0, 4, 202), (1, 1, 203)] {
            users.at(i).on_audio(track, seq, h(), t);
        }
        assert_eq!(users.at(i).seq_gaps, 2, "track 1 counts its own seq from 0");
        assert_eq!(users.connections(200)["alice"]["sampleRate"], 48_000);
    }

    #[test]
    fn the_stream_time_a_sender_skipped_is_counted_from_its_positions() {
        let mut users = Users::default();
        let i = users.get_or_add("bob");
        let u = users.at(i);
        let at = |position: u64, frames: u32| AudioHeader {
            position,
            frames,
            ..h()
        };
        // On: 0, 64, 128; a capture xrun skips 256; a short packet, then on. Another
        // track's positions are not track 0's. A packet before the end (a restarted
        // stream, here at 0 and then just before u64::MAX) skips nothing; across the
        // wrap, a packet 96 frames past the end skips 96.
        let packets = [
            (0, at(0, 64)),
            (0, at(64, 64)),
            (0, at(128, 64)),
            (0, at(448, 32)),
            (1, at(9_999, 64)),
            (0, at(480, 64)),
            (0, at(0, 64)),
            (0, at(u64::MAX - 127, 64)),
            (0, at(32, 64)),
        ];
        for (seq, (track, h)) in packets.into_iter().enumerate() {
            u.on_audio(track, seq as u32, h, 0);
        }
        assert_eq!(u.sender_skipped_frames, 256 + 96);
        assert_eq!(users.connections(0)["bob"]["senderSkippedFrames"], 352);
        // A new connection counts its own; the session table keeps the user's total, in
        // ms at its rate.
        let u = users.at(i);
        u.audio = Some(params());
        u.joined(Arc::default(), 0, 0);
        u.on_audio(0, 0, at(1_000, 64), 0);
        u.on_audio(0, 1, at(1_112, 64), 0);
        assert_eq!(users.connections(0)["bob"]["senderSkippedFrames"], 48);
        let entry = super::super::sessions::entry(users.at(i), 0);
        let ms = entry["senderSkippedMs"].as_f64().unwrap();
        assert!((ms - 400.0 / 48.0).abs() < 1e-9, "{ms} ms");
    }

    fn params() -> AudioParams {
        AudioParams {
            sample_rate: 48_000,
            channels: 2,
            format: AudioFormat::F32,
            frames_per_packet: 64,
        }
    }

    #[test]
    fn session_entries_carry_the_table_and_null_what_does_not_apply() {
        const S: u64 = 1_000_000_000;
        let mut users = Users::default();
        let a = users.get_or_add("alice");
        users.at(a).audio = Some(params());
        let first = Arc::new(SlotStats::default());
        users.at(a).joined(Arc::clone(&first), S, 1_795_440_000_000);
        first.misses.store(5, Ordering::Relaxed);
        first.depth_frames.store(128, Ordering::Relaxed);
        users.at(a).rtt_ns = Some(1_500_000);
        let m = users.get_or_add("admin");
        users.at(m).role = Role::Monitor;
        users
            .at(m)
            .joined(Arc::new(SlotStats::default()), S, 1_795_440_000_000);
        users.sample_misses(2 * S);
        let e = users.shared_state(2 * S);
        let alice = &e["alice"];
        assert_eq!(alice["since"], 1_795_440_000_000_u64);
        assert_eq!(alice["leftReason"], Value::Null);
        assert_eq!(alice["leftAt"], Value::Null);
        assert_eq!(alice["hubMisses"], 5);
        assert_eq!(alice["hubMisses10s"], 5);
        assert_eq!(alice["jitterDepthFrames"], 128);
        assert_eq!(alice["rttMs"], 1.5);
        assert_eq!(alice["driftPpm"], Value::Null, "not measured yet");
        assert_eq!(alice["senderLocked"], false, "no packet flagged yet");
        assert_eq!(alice["concealedFrames"], 0);
        // A monitor sends no audio: its input figures do not apply.
        let admin = &e["admin"];
        for key in [
            "hubMisses",
            "hubMisses10s",
            "jitterDepthFrames",
            "concealedFrames",
            "senderLocked",
        ] {
            assert_eq!(admin[key], Value::Null, "{key}");
        }
        assert_eq!(admin["audioInputMetadata"], Value::Null);
        assert_eq!(admin["role"], "monitor");

        // alice leaves, comes back on a fresh slot: her misses go on from 5.
        users.at(a).left("BYE", 3 * S, 1_795_440_003_000);
        let e = users.shared_state(3 * S);
        assert_eq!(e["alice"]["leftReason"], "BYE");
        assert_eq!(e["alice"]["leftAt"], 1_795_440_003_000_u64);
        assert_eq!(e["alice"]["since"], 1_795_440_003_000_u64);
        assert_eq!(
            e["alice"]["jitterDepthFrames"],
            Value::Null,
            "no buffer now"
        );
        assert_eq!(e["alice"]["hubMisses"], 5);
        let second = Arc::new(SlotStats::default());
        users
            .at(a)
            .joined(Arc::clone(&second), 4 * S, 1_795_440_004_000);
        second.misses.store(2, Ordering::Relaxed);
        users.sample_misses(14 * S);
        let e = users.shared_state(14 * S);
        assert_eq!(e["alice"]["hubMisses"], 7, "monotonic over her life");
        assert_eq!(e["alice"]["leftReason"], Value::Null);
        assert_eq!(users.at(a).sessions, 2);
        users.sample_misses(26 * S);
        assert_eq!(users.shared_state(26 * S)["alice"]["hubMisses10s"], 0);
    }

    #[test]
    fn departed_users_are_forgotten_oldest_first() {
        let mut users = Users::default();
        for n in 0..=MAX_REMEMBERED {
            let i = users.get_or_add(&format!("u{n}"));
            users.at(i).since_ns = n as u64;
        }
        assert!(users.find("u0").is_none());
        // Forgotten: gone from the session table (and so from Prometheus).
        assert!(users.shared_state(0).get("u0").is_none());
        assert!(users.shared_state(0).get("u1").is_some());
        assert!(users.find("u1").is_some());
        assert!(users.find(&format!("u{MAX_REMEMBERED}")).is_some());
    }
}
