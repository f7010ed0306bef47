//! What a client knows about itself, and its `aggregatedStatesSnapshot` (net thread).
//!
//! Design: the net thread owns a [`ClientView`]: counters it updates per frame (plain
//! integers, no allocation), the latest METADATA as raw bytes, and `Arc`s of the figures
//! the RT threads publish. The snapshot JSON is built from it four times a second, off the
//! per-frame path.
//!
//! Status rules (DESIGN.md):
//! - `aggregatorStatus`: `connecting` while a connection to the hub is being made,
//!   `running` once WELCOMEd while the mix keeps arriving, `stopped` when the connection
//!   is lost or the mix has not advanced for the latency threshold.
//! - `micStatus`: `green` while capture packets flow out to the hub (one left within the
//!   threshold and none dropped meanwhile); `red` otherwise; `null` for a monitor, which
//!   has no capture (not applicable).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use super::audio_thread::{MicStats, SpeakerStats};
use super::net_thread::Identity;
use crate::dsp::meter::MeterLevels;
use crate::metrics::IncomingTrack;
use crate::net::seq::SeqTracker;
use crate::rt::clock::{now_ns, ns_to_ms};
use crate::rt::runner::RtStatus;
use crate::wire::{AudioHeader, Welcome};

/// The hub link's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Making a connection.
    Connecting,
    /// WELCOMEd.
    Running,
    /// Between attempts, or stopped.
    Stopped,
}

/// The speaker figures of the moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Speaker {
    /// Samples queued for the speaker (frames × channels).
    pub depth_samples: u64,
    /// Jitter buffer plus device buffer, ms.
    pub latency_ms: f64,
    /// Misses (reset by the silence rule).
    pub misses: u64,
}

/// The clock lock's figures a client reports, in getMetrics and in its QOS (issue 17).
///
/// # Example
/// ```
/// use izyrt::client::audio_thread::SpeakerStats;
/// use izyrt::client::status::LockFigures;
/// let f = LockFigures::of(&SpeakerStats::default());
/// assert_eq!(f.clock_ratio_ppm, None, "nothing played yet");
/// assert_eq!(serde_json::to_value(f).unwrap()["latencyTargetFrames"], 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockFigures {
    /// The estimate of the hub's clock against the device's, ppm (`None` before the
    /// speaker played a period).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_ratio_ppm: Option<f64>,
    /// Whether the clock loop is locked.
    pub locked: bool,
    /// Frames the speaker concealed.
    pub concealed_frames: u64,
    /// The latency target, frames.
    pub latency_target_frames: u64,
}

impl LockFigures {
    /// The figures the audio thread published last (any thread; no allocation).
    pub fn of(s: &SpeakerStats) -> LockFigures {
        LockFigures {
            clock_ratio_ppm: s.ratio().map(|_| s.clock_ppm()),
            locked: s.locked.load(Ordering::Relaxed) == 1,
            concealed_frames: s.concealed_frames.load(Ordering::Relaxed),
            latency_target_frames: s.target_frames.load(Ordering::Relaxed),
        }
    }
}

/// What the client's net thread knows.
#[derive(Debug)]
pub struct ClientView {
    /// The link.
    pub state: LinkState,
    /// The last WELCOME.
    pub welcome: Option<Welcome>,
    /// Connection attempts.
    pub attempts: u64,
    /// Sessions established.
    pub sessions: u64,
    /// Running connections lost.
    pub disconnects: u64,
    /// Why the last connection ended or failed.
    pub last_error: Option<String>,
    /// Why the hub could not be reached (the OS's reason, e.g. `connection refused`),
    /// until the next WELCOME.
    pub connect_error: Option<String>,
    /// Latest round trip, ns.
    pub rtt_ns: Option<u64>,
    /// Latest AUDIO frame received: track, seq, sub-header.
    pub head: Option<(u16, u32, AudioHeader)>,
    /// AUDIO frames received.
    pub packets_in: u64,
    /// Gaps in their seq (judged per track).
    pub seq_gaps: u64,
    /// The last AUDIO seq per track, for the gaps.
    pub seq: SeqTracker,
    /// f32 samples of the mix received NaN, infinite or subnormal (zeroed).
    pub non_finite_samples: u64,
    /// Monotonic ns the seq last advanced.
    pub seq_advanced_ns: u64,
    /// Mix packets the playback pipe refused.
    pub mix_dropped: u64,
    /// AUDIO frames queued to the hub.
    pub packets_out: u64,
    /// Capture packets dropped by the write queue (slow link).
    pub dropped_out: u64,
    /// Capture packets discarded while not connected.
    pub unsent: u64,
    /// QOS reports sent.
    pub qos_sent: u64,
    /// Latest METADATA, parsed once as it arrives (`Null` before the first).
    pub metadata: Value,
    /// METADATA frames received.
    pub metadata_frames: u64,
    /// Playback figures.
    pub speaker: Arc<SpeakerStats>,
    /// Speaker levels.
    pub speaker_levels: Arc<MeterLevels>,
    /// Capture figures (peer).
    pub mic: Option<Arc<MicStats>>,
    /// Capture levels (peer).
    pub mic_levels: Option<Arc<MeterLevels>>,
    /// The RT threads.
    pub threads: Vec<RtStatus>,
    /// Rate of the playback device, Hz.
    pub device_rate: u32,
    /// Frames of the playback device buffer.
    pub device_buffer_frames: u32,
    /// A track is disconnected after this long without its seq advancing, ns.
    pub threshold_ns: u64,
    /// Monotonic ns of the latest AUDIO frame queued to the hub.
    pub last_sent_ns: u64,
    /// Allocator calls on the AUDIO paths (0, or a bug).
    pub audio_allocs: u64,
}

impl ClientView {
    /// A fresh view.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        speaker: Arc<SpeakerStats>,
        speaker_levels: Arc<MeterLevels>,
        mic: Option<(Arc<MicStats>, Arc<MeterLevels>)>,
        threads: Vec<RtStatus>,
        device_rate: u32,
        device_buffer_frames: u32,
        threshold_ns: u64,
    ) -> ClientView {
        let (mic, mic_levels) = mic.unzip();
        ClientView {
            state: LinkState::Connecting,
            welcome: None,
            attempts: 0,
            sessions: 0,
            disconnects: 0,
            last_error: None,
            connect_error: None,
            rtt_ns: None,
            head: None,
            packets_in: 0,
            seq_gaps: 0,
            seq: SeqTracker::default(),
            non_finite_samples: 0,
            seq_advanced_ns: 0,
            mix_dropped: 0,
            packets_out: 0,
            dropped_out: 0,
            unsent: 0,
            qos_sent: 0,
            metadata: Value::Null,
            metadata_frames: 0,
            speaker,
            speaker_levels,
            mic,
            mic_levels,
            threads,
            device_rate,
            device_buffer_frames,
            threshold_ns,
            last_sent_ns: 0,
            audio_allocs: 0,
        }
    }

    /// Notes an AUDIO frame of the mix (per frame: no allocation). As at the hub, only a
    /// frame whose seq differs from its track's last one advances the track: a sender
    /// repeating a stuck seq does not keep it connected.
    pub fn on_audio(&mut self, track: u16, seq: u32, h: AudioHeader, now_ns: u64) {
        let note = self.seq.note(track, seq);
        if note.gap {
            self.seq_gaps += 1;
        }
        if note.advanced {
            self.seq_advanced_ns = now_ns;
        }
        self.packets_in += 1;
        self.head = Some((track, seq, h));
    }

    /// A new session: its tracks count their seq afresh.
    pub fn reset_tracks(&mut self) {
        self.seq.clear();
    }

    /// The speaker figures now.
    pub fn speaker(&self) -> Speaker {
        let s = &self.speaker;
        let channels = self.head.map_or(2, |(_, _, h)| u64::from(h.channels));
        let rate = self
            .head
            .map_or(self.device_rate, |(_, _, h)| h.sample_rate);
        let depth = s.depth_frames.load(Ordering::Relaxed);
        let jitter_ms = depth as f64 * 1000.0 / f64::from(rate.max(1));
        let device_ms =
            f64::from(self.device_buffer_frames) * 1000.0 / f64::from(self.device_rate.max(1));
        Speaker {
            depth_samples: depth * channels,
            latency_ms: jitter_ms + device_ms,
            misses: s.misses.load(Ordering::Relaxed),
        }
    }

    /// Whether the mix arrived and then its seq has not advanced for the latency
    /// threshold: the aggregator input stopped (the connection may still be live).
    pub fn input_stalled(&self, now: u64) -> bool {
        self.packets_in > 0 && now.saturating_sub(self.seq_advanced_ns) > self.threshold_ns
    }

    /// DESIGN.md's rule for the incoming track, as the hub applies it: connected unless
    /// empty or its seq has not advanced for the latency threshold.
    pub fn track_connected(&self, now: u64) -> bool {
        self.state == LinkState::Running && self.packets_in > 0 && !self.input_stalled(now)
    }

    fn aggregator_status(&self, now: u64) -> &'static str {
        match self.state {
            LinkState::Connecting => "connecting",
            LinkState::Stopped => "stopped",
            LinkState::Running if self.track_connected(now) => "running",
            LinkState::Running if self.packets_in == 0 => "connecting",
            LinkState::Running => "stopped",
        }
    }

    /// Green while capture flows out: the capture device delivered a period and a packet
    /// left for the hub within the threshold.
    /// `None` for a client without capture (a monitor): not applicable rather than `red`.
    fn mic_status(&self, now: u64) -> Option<&'static str> {
        let captured = self.mic.as_ref()?.last_ns.load(Ordering::Relaxed);
        let fresh = |t: u64| t != 0 && now.saturating_sub(t) <= self.threshold_ns;
        if self.state == LinkState::Running && fresh(captured) && fresh(self.last_sent_ns) {
            Some("green")
        } else {
            Some("red")
        }
    }

    /// The `aggregatedStatesSnapshot`.
    pub fn snapshot(&mut self, id: &Identity) -> Value {
        let now = now_ns();
        let speaker = self.speaker();
        let mic_status = self.mic_status(now);
        let s = &self.speaker;
        let mut snap = crate::metrics::default_snapshot();
        let since = now.saturating_sub(self.seq_advanced_ns);
        let rate = self.head.map_or(id.rate, |(_, _, h)| h.sample_rate);
        snap["currentSpeakerBufferDepthInFloat32Samples"] = json!(speaker.depth_samples);
        snap["currentSpeakerSampleRate"] = json!(self.device_rate);
        snap["speakerScriptProcessorLatencyMS"] = json!(speaker.latency_ms);
        snap["speakerScriptProcessorIncomingBufferMisses"] = json!(speaker.misses);
        // Beside the seed's resettable count, the monotonic one (a Prometheus counter).
        snap["speakerIncomingBufferMissesTotal"] = json!(s.misses_total.load(Ordering::Relaxed));
        snap["speakerSilenceDetected"] = json!(self.speaker_levels.silent());
        // The clock lock (issue 17): null until the first period has played.
        let lock = LockFigures::of(s);
        snap["clockRatioPpm"] = json!(lock.clock_ratio_ppm);
        snap["resampleRatio"] = json!(s.ratio());
        snap["locked"] = json!(lock.locked);
        snap["concealedFrames"] = json!(lock.concealed_frames);
        snap["rejoinsInPhase"] = json!(s.rejoins_in_phase.load(Ordering::Relaxed));
        snap["latencyTargetFrames"] = json!(lock.latency_target_frames);
        // What the capture adds to the estimate to hold this client's input at the hub at
        // its target (`client::hub_input`); null for a monitor.
        let correction =
            |m: &Arc<MicStats>| f64::from_bits(m.correction_ppm.load(Ordering::Relaxed));
        snap["captureCorrectionPpm"] = json!(self.mic.as_ref().map(correction));
        snap["hubInputExcessFrames"] = json!(s.hub_input.latest().map(|(x, _)| x));
        snap["aggregatorStatus"] = json!(self.aggregator_status(now));
        snap["micStatus"] = json!(mic_status);
        let (track, seq) = self.head.map_or((0, 0), |(t, s, _)| (t, s));
        snap["incomingAudioTracks"] = json!([IncomingTrack {
            track,
            from: "hub",
            kind: None,
            connected: self.track_connected(now),
            seq: seq.into(),
            packets: self.packets_in,
            seq_gaps: self.seq_gaps,
            since_advance_ns: (self.packets_in > 0).then_some(since),
            latency_ms: s.depth_frames.load(Ordering::Relaxed) as f64 * 1000.0
                / f64::from(rate.max(1)),
        }
        .to_json()]);
        if self.mic.is_some() {
            snap["outgoingAudioTracks"] = json!([{
                "track": 0,
                "to": "hub",
                "seq": self.packets_out.saturating_sub(1),
                "packets": self.packets_out,
                "droppedPackets": self.dropped_out + self.mic.as_ref().map_or(0, |m| m.dropped.load(Ordering::Relaxed)),
                "unfitPeriods": self.mic.as_ref().map_or(0, |m| m.unfit_periods.load(Ordering::Relaxed)),
                "skippedFrames": self.mic.as_ref().map_or(0, |m| m.skipped_frames.load(Ordering::Relaxed)),
            }]);
        }
        let w = self.welcome.as_ref();
        snap["connections"] = json!({ id.user.clone(): {
            "connected": self.state == LinkState::Running,
            "hub": id.hub.to_string(),
            "role": id.role,
            "session": w.map(|w| w.session.clone()),
            "mix": w.map(|w| w.mix),
            "sampleRate": w.map(|w| w.sample_rate),
            "channels": w.map(|w| w.channels),
            "format": w.map(|w| w.format.clone()),
            "framesPerPacket": w.map(|w| w.frames_per_packet),
            "attempts": self.attempts,
            "sessions": self.sessions,
            "disconnects": self.disconnects,
            "lastError": self.last_error,
            "connectError": self.connect_error,
            "packetsIn": self.packets_in,
            "packetsOut": self.packets_out,
            "unsentPackets": self.unsent,
            "mixDropped": self.mix_dropped,
            "nonFiniteSamples": self.non_finite_samples,
            "qosSent": self.qos_sent,
            "audioPathAllocations": self.audio_allocs,
            "metadataFrames": self.metadata_frames,
            "rttMs": self.rtt_ns.map(ns_to_ms),
            "jitterTargetFrames": s.target_frames.load(Ordering::Relaxed),
            "jitterMaxFrames": s.max_frames.load(Ordering::Relaxed),
            "jitterLateFrames": s.late.load(Ordering::Relaxed),
            "jitterDroppedFrames": s.dropped_frames.load(Ordering::Relaxed),
            "missesTotal": s.misses_total.load(Ordering::Relaxed),
            "head": self.head.map(|(t, q, h)| json!({
                "track": t, "seq": q, "sampleRate": h.sample_rate, "channels": h.channels,
                "format": h.format.name(), "frames": h.frames, "position": h.position,
                "originNs": h.origin_ns,
            })),
        }});
        let meta = self.metadata.clone();
        // The hub's session table, as the latest METADATA gave it ({} before the first).
        snap["sessions"] = json!({});
        if let Some(shared) = meta.get("mixeradminSharedState") {
            snap["mixeradminSharedState"] = shared.clone();
            snap["sessions"] = shared.clone();
        }
        let mut rt = Map::new();
        for t in &self.threads {
            rt.insert(t.report.thread.clone(), t.json());
        }
        snap["realtime"] = Value::Object(rt);
        snap["role"] = json!(id.role.name());
        snap["user"] = json!(id.user);
        snap["hubAddress"] = json!(id.hub.to_string());
        snap["levels"] = json!({
            "speakerPeakDbfs": self.speaker_levels.peak_dbfs(),
            "speakerRmsDbfs": self.speaker_levels.rms_dbfs(),
            "micPeakDbfs": self.mic_levels.as_ref().map(|l| l.peak_dbfs()),
            "micRmsDbfs": self.mic_levels.as_ref().map(|l| l.rms_dbfs()),
        });
        if !meta.is_null() {
            snap["hubMetadata"] = meta;
        }
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::meter::{Meter, MeterConfig};

    fn view() -> ClientView {
        let meter = Meter::new(MeterConfig {
            rate: 48_000,
            channels: 2,
            window_ms: 10,
            silence_threshold_dbfs: -60.0,
            silence_hold_ms: 1_000,
        })
        .unwrap();
        let mut v = ClientView::new(
            Arc::new(SpeakerStats::default()),
            meter.levels(),
            None,
            Vec::new(),
            48_000,
            128,
            100,
        );
        v.state = LinkState::Running;
        v
    }

    fn h() -> AudioHeader {
        AudioHeader::for_tests()
    }

    #[test]
    fn a_track_whose_seq_is_stuck_does_not_count_as_advancing() {
        let mut v = view();
        assert!(!v.track_connected(0), "empty");
        v.on_audio(0, 7, h(), 10);
        v.on_audio(0, 8, h(), 20);
        assert!(v.track_connected(120));
        // Frames keep arriving, but with the same seq: the track stalls all the same.
        for t in [50, 90, 130, 170] {
            v.on_audio(0, 8, h(), t);
        }
        assert_eq!(v.packets_in, 6);
        assert!(!v.track_connected(121), "seq last advanced at 20");
        assert!(v.input_stalled(121));
        assert_eq!(v.aggregator_status(121), "stopped");
        // An advancing seq connects it again.
        v.on_audio(0, 9, h(), 200);
        assert!(v.track_connected(250) && !v.input_stalled(250));
        assert_eq!(v.aggregator_status(250), "running");
    }
}
