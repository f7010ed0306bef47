//! Unit tests of the hub's user table and the JSON it publishes.

use super::*;
use crate::wire::AudioFormat;

fn h() -> AudioHeader {
    AudioHeader::for_tests()
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
