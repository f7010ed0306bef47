//! Unit tests of the Prometheus rendering.

use super::*;
use serde_json::json;

fn full() -> Value {
    let mut v = base();
    v["sessions"] = sessions();
    v
}

/// The hub's session table as a monitor would have it.
fn sessions() -> Value {
    json!({
            "alice": { "connected": true, "role": "peer", "since": 1795440000123_u64,
                       "leftReason": null, "leftAt": null, "hubMisses": 112,
                       "hubMisses10s": 4, "rttMs": 0.5, "driftPpm": null, "senderLocked": true,
                       "concealedFrames": 640, "jitterDepthFrames": 128, "senderSkippedMs": 42.5,
                       "jitterLateFrames": 64, "jitterDroppedFrames": 0,
                       "audioInputMetadata": { "peakDbfs": -6.5, "rmsDbfs": -20.25,
                                               "silent": false, "clippedSamples": 3,
                                               "clipping": false },
                       "QOSMetrics": { "latencyMs": 21.5, "incomingBufferMisses": 2,
                                       "incomingBufferMissesTotal": 9, "rttMs": 0.75,
                                       "clockRatioPpm": -480.5, "locked": true,
                                       "concealedFrames": 96 } },
            "admin": { "connected": false, "role": "monitor", "since": 1795440001000_u64,
                       "leftReason": "BYE", "leftAt": 1795440001000_u64,
                       "hubMisses": null, "jitterDepthFrames": null,
                       "audioInputMetadata": null, "QOSMetrics": null }
    })
}

fn base() -> Value {
    json!({
        "currentSpeakerBufferDepthInFloat32Samples": 1920,
        "currentSpeakerSampleRate": 48000,
        "speakerScriptProcessorLatencyMS": 25.5,
        "speakerScriptProcessorIncomingBufferMisses": 3,
        "speakerIncomingBufferMissesTotal": 17,
        "speakerSilenceDetected": false,
        "clockRatioPpm": -12.5,
        "resampleRatio": 0.9999875,
        "locked": true,
        "concealedFrames": 64,
        "rejoinsInPhase": 2,
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
                                    "driftPpm": 101.5, "trimmedFrames": 192, "senderLocked": false,
                                    "resumesInPhase": 12, "lagSearchesSkipped": 3,
                                    "jitterDepthFrames": 150, "jitterTargetFrames": 128,
                                    "jitterFloorFrames": 128, "senderSkippedFrames": 256,
                                    "concealedFrames": null } },
        "mixeradminSharedState": { "alice": { "audioInputMetadata": {} } },
        "role": "monitor",
        "user": "admin",
        "hubAddress": "10.0.0.1:7100",
        "hub": { "clients": 8, "maxClients": 256, "missPeriods": 240, "widestMiss": 3,
                 "uptimeSeconds": 12.5, "leakedSlots": 0, "session": "7f3a9c" },
        "refusedConnections": { "total": 3, "hubFull": 1, "helloTimeout": 2,
                                "unauthorized": 0 },
        "realtime": {
            "izyrt-audio": { "policy": "SCHED_FIFO", "priority": 80, "p50Us": 12,
                             "p99Us": 40, "p999Us": 90, "maxUs": 150, "xruns": 0,
                             "lostFrames": 128, "deviceThread": { "priority": 85 },
                             "work": { "p50Us": 8, "p99Us": 20, "p999Us": 45, "maxUs": 310 },
                             "wakeupHistogram": { "boundsUs": [10.0, 50.0, 1000.0],
                                                  "cumulative": [5, 9, 10, 12],
                                                  "sumUs": 1500.5 } }
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
    // The seed's resettable count is a gauge; the monotonic one is the counter.
    assert!(t.contains("# TYPE izyrt_speaker_incoming_buffer_misses gauge\n"));
    assert!(t.contains("izyrt_speaker_incoming_buffer_misses 3\n"));
    assert!(t.contains("# TYPE izyrt_speaker_incoming_buffer_misses_total counter\n"));
    assert!(t.contains("izyrt_speaker_incoming_buffer_misses_total 17\n"));
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
    assert!(t.contains("izyrt_speaker_rejoins_in_phase_total 2\n"));
    assert!(t.contains("izyrt_speaker_latency_target_frames 160\n"));
    assert!(t.contains("izyrt_connection_drift_ppm{user=\"alice\"} 101.5\n"));
    assert!(t.contains("izyrt_connection_sender_locked{user=\"alice\"} 0\n"));
    assert!(t.contains("izyrt_connection_resumes_in_phase_total{user=\"alice\"} 12\n"));
    assert!(t.contains("izyrt_connection_lag_searches_skipped_total{user=\"alice\"} 3\n"));
    assert!(t.contains("izyrt_connection_trimmed_frames_total{user=\"alice\"} 192\n"));
    assert!(t.contains("izyrt_connection_jitter_depth_frames{user=\"alice\"} 150\n"));
    assert!(t.contains("izyrt_connection_jitter_target_frames{user=\"alice\"} 128\n"));
    assert!(t.contains("izyrt_connection_jitter_floor_frames{user=\"alice\"} 128\n"));
    assert!(!t.contains("izyrt_connection_concealed_frames_total{user=\"alice\"}"));
    assert!(t.contains("# TYPE izyrt_connection_sender_skipped_frames_total counter\n"));
    assert!(t.contains("izyrt_connection_sender_skipped_frames_total{user=\"alice\"} 256\n"));
}

#[test]
fn tracks_are_labelled_escaped_and_skip_bad_fields() {
    let t = render_prometheus(&full());
    let alice = r#"{track="1",user="al\"ice\\\n"}"#;
    assert!(t.contains(&format!("izyrt_incoming_track_packets_total{alice} 100\n")));
    assert!(t.contains(&format!("izyrt_incoming_track_seq_gaps_total{alice} 2\n")));
    assert!(t.contains(&format!("izyrt_incoming_track_connected{alice} 1\n")));
    assert!(t.contains(&format!(
        "izyrt_incoming_track_latency_seconds{alice} 0.04\n"
    )));
    assert!(t.contains("izyrt_incoming_track_connected{track=\"2\",user=\"bob\"} 0\n"));
    // Non-numeric packets and the element without a track are skipped.
    assert!(!t.contains("n/a"));
    assert!(!t.contains("no-track"));
    assert!(t.contains("izyrt_outgoing_track_dropped_packets_total{track=\"0\",user=\"hub\"} 1\n"));
    assert!(t.contains("izyrt_connection_rtt_seconds{user=\"alice\"} 0.012\n"));
    assert!(!t.contains("f32"));
}

#[test]
fn realtime_per_thread_object_or_array() {
    let t = render_prometheus(&full());
    let th = "{thread=\"izyrt-audio\"}";
    assert!(t.contains(&format!("izyrt_realtime_priority{th} 80\n")));
    assert!(t.contains(&format!("izyrt_realtime_device_thread_priority{th} 85\n")));
    assert!(t.contains(&format!(
        "izyrt_realtime_wakeup_latency_p99_seconds{th} 0.00004\n"
    )));
    assert!(t.contains(&format!("izyrt_realtime_work_p999_seconds{th} 0.000045\n")));
    assert!(t.contains(&format!("izyrt_realtime_work_max_seconds{th} 0.00031\n")));
    assert!(t.contains(&format!("izyrt_realtime_xruns_total{th} 0\n")));
    assert!(t.contains(&format!("izyrt_realtime_lost_frames_total{th} 128\n")));
    // The allocation counts, once armed (null before: no sample).
    let armed = json!({ "realtime": { "izyrt-audio": { "steadyAllocations": 0, "recoveryAllocations": 6 },
                                      "izyrt-hub-mixer": { "steadyAllocations": null, "recoveryAllocations": null } } });
    let a = render_prometheus(&armed);
    assert!(a.contains(&format!("izyrt_realtime_steady_allocations_total{th} 0\n")));
    assert!(a.contains(&format!(
        "izyrt_realtime_recovery_allocations_total{th} 6\n"
    )));
    assert!(!a.contains("izyrt-hub-mixer"), "{a}");
    assert!(!t.contains("SCHED_FIFO"));
    // A thread that runs its own periods (`deviceThread` null) has no such sample.
    let arr = json!({ "realtime": [{ "thread": "hub", "maxUs": 1000, "deviceThread": null }, { "maxUs": 1 }] });
    assert!(render_prometheus(&arr).ends_with(
        "# HELP izyrt_realtime_wakeup_latency_max_seconds Maximum wakeup latency of the RT thread.\n\
         # TYPE izyrt_realtime_wakeup_latency_max_seconds gauge\n\
         izyrt_realtime_wakeup_latency_max_seconds{thread=\"hub\"} 0.001\n"
    ));
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
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| declared.contains(*base))
                .unwrap_or(name);
            assert!(declared.contains(family), "{line}");
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
    let odd = render_prometheus(&json!({ "micStatus": "purple", "currentSpeakerSampleRate": -1 }));
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

#[test]
fn sessions_give_per_user_series_labelled_user() {
    let t = render_prometheus(&full());
    let a = "{user=\"alice\"}";
    for line in [
        format!("izyrt_user_connected{a} 1"),
        format!("izyrt_user_since_timestamp_seconds{a} 1795440000.123"),
        format!("izyrt_user_jitter_misses_total{a} 112"),
        format!("izyrt_user_jitter_misses_last_10s{a} 4"),
        format!("izyrt_user_jitter_depth_frames{a} 128"),
        format!("izyrt_user_jitter_late_frames_total{a} 64"),
        format!("izyrt_user_jitter_dropped_frames_total{a} 0"),
        format!("izyrt_user_concealed_frames_total{a} 640"),
        format!("izyrt_user_sender_skipped_seconds_total{a} 0.0425"),
        format!("izyrt_user_rtt_seconds{a} 0.0005"),
        format!("izyrt_user_sender_locked{a} 1"),
        format!("izyrt_user_input_peak_dbfs{a} -6.5"),
        format!("izyrt_user_input_rms_dbfs{a} -20.25"),
        format!("izyrt_user_input_clipped_samples_total{a} 3"),
        format!("izyrt_user_input_silent{a} 0"),
        format!("izyrt_user_input_clipping{a} 0"),
        format!("izyrt_user_reported_latency_seconds{a} 0.0215"),
        format!("izyrt_user_reported_incoming_buffer_misses{a} 2"),
        format!("izyrt_user_reported_incoming_buffer_misses_total{a} 9"),
        format!("izyrt_user_reported_rtt_seconds{a} 0.00075"),
        format!("izyrt_user_reported_clock_ratio_ppm{a} -480.5"),
        format!("izyrt_user_reported_clock_locked{a} 1"),
        format!("izyrt_user_reported_concealed_frames_total{a} 96"),
        "izyrt_user_info{user=\"alice\",role=\"peer\"} 1".into(),
        "izyrt_user_info{user=\"admin\",role=\"monitor\"} 1".into(),
        "izyrt_user_connected{user=\"admin\"} 0".into(),
        "izyrt_user_left_timestamp_seconds{user=\"admin\"} 1795440001".into(),
    ] {
        assert!(t.contains(&format!("{line}\n")), "{line}\n{t}");
    }
    assert!(t.contains("# TYPE izyrt_user_jitter_misses_total counter\n"));
    // null is "not applicable": no sample, never a 0.
    assert!(!t.contains("izyrt_user_drift_ppm"));
    assert!(!t.contains("izyrt_user_jitter_misses_total{user=\"admin\"}"));
    assert!(!t.contains("izyrt_user_left_timestamp_seconds{user=\"alice\"}"));
    // One label name for a user, whatever the JSON called it.
    assert!(!t.contains("from=") && !t.contains("to=\""), "{t}");
}

#[test]
fn a_peer_leaves_the_session_table_out_and_forgotten_users_vanish() {
    let mut snap = full();
    snap["role"] = json!("peer");
    let t = render_prometheus(&snap);
    assert!(!t.contains("izyrt_user_"), "{t}");
    let mut snap = full();
    snap["sessions"].as_object_mut().unwrap().remove("alice");
    let t = render_prometheus(&snap);
    assert!(
        !t.lines()
            .any(|l| l.starts_with("izyrt_user_") && l.contains("alice"))
    );
}

#[test]
fn hub_wide_series_and_refusals_by_reason() {
    let t = render_prometheus(&full());
    for line in [
        "izyrt_hub_clients 8",
        "izyrt_hub_max_clients 256",
        "izyrt_hub_miss_periods_total 240",
        "izyrt_hub_widest_miss 3",
        "izyrt_hub_uptime_seconds 12.5",
        "izyrt_hub_refused_connections_total{reason=\"hub_full\"} 1",
        "izyrt_hub_refused_connections_total{reason=\"hello_timeout\"} 2",
        "izyrt_hub_refused_connections_total{reason=\"unauthorized\"} 0",
    ] {
        assert!(t.contains(&format!("{line}\n")), "{line}\n{t}");
    }
    assert!(!t.contains("reason=\"total\""));
    assert!(!t.contains("7f3a9c"));
}

#[test]
fn wakeup_histogram_is_cumulative_with_inf_sum_and_count() {
    let t = render_prometheus(&full());
    let want = "# HELP izyrt_rt_wakeup_lateness_seconds How late the RT thread woke up for its period, since its start.\n\
         # TYPE izyrt_rt_wakeup_lateness_seconds histogram\n\
         izyrt_rt_wakeup_lateness_seconds_bucket{thread=\"izyrt-audio\",le=\"0.00001\"} 5\n\
         izyrt_rt_wakeup_lateness_seconds_bucket{thread=\"izyrt-audio\",le=\"0.00005\"} 9\n\
         izyrt_rt_wakeup_lateness_seconds_bucket{thread=\"izyrt-audio\",le=\"0.001\"} 10\n\
         izyrt_rt_wakeup_lateness_seconds_bucket{thread=\"izyrt-audio\",le=\"+Inf\"} 12\n\
         izyrt_rt_wakeup_lateness_seconds_sum{thread=\"izyrt-audio\"} 0.0015005\n\
         izyrt_rt_wakeup_lateness_seconds_count{thread=\"izyrt-audio\"} 12\n";
    assert!(t.contains(want), "{t}");
    // Malformed: a count that goes down, or lengths that disagree: left out.
    for h in [
        json!({ "boundsUs": [10.0], "cumulative": [5, 4], "sumUs": 1 }),
        json!({ "boundsUs": [10.0, 20.0], "cumulative": [5, 6], "sumUs": 1 }),
        json!({ "boundsUs": [10.0], "cumulative": [5, "x"], "sumUs": 1 }),
    ] {
        let t = render_prometheus(&json!({ "realtime": { "t": { "wakeupHistogram": h } } }));
        assert!(!t.contains("lateness"), "{t}");
    }
}

#[test]
fn build_and_role_info_on_every_role() {
    let t = render_prometheus(&full());
    assert!(t.contains(&format!(
        "izyrt_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION"),
        info::COMMIT
    )));
    assert!(t.contains("izyrt_info{role=\"monitor\",user=\"admin\",hub=\"10.0.0.1:7100\"} 1\n"));
    let hub =
        render_prometheus(&json!({ "role": "hub", "user": null, "hubAddress": "0.0.0.0:7100" }));
    assert!(hub.contains("izyrt_info{role=\"hub\",user=\"\",hub=\"0.0.0.0:7100\"} 1\n"));
    // The hub's null mic and speaker-silence fields give no series at all.
    let hub = render_prometheus(&json!({ "micStatus": null, "speakerSilenceDetected": null }));
    assert!(
        !hub.contains("izyrt_mic_status") && !hub.contains("silence"),
        "{hub}"
    );
}
