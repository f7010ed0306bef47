//! Hub, peers and monitor as users run them: real processes on loopback with `virtual`
//! devices. Who hears whom (tones detected in recordings of what each speaker played),
//! QoS per user in getMetrics, a peer killed, the hub restarted, and zero allocations on
//! every RT thread in steady state. Time bounds are generous: the machine is shared.

#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::time::Duration;

use izyrt::wire::Kind;
use procs::{
    Proc, Raw, hub, median_tones, metrics, monitor, peer, rt_counters_armed, scratch, serial,
    wait_for,
};
use serde_json::{Value, json};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn connected(snap: &Value, user: &str) -> bool {
    snap["connections"][user]["connected"] == true
}

/// Median amplitudes of 440 Hz and 660 Hz in what a speaker played.
fn tones(path: &std::path::Path) -> (f64, f64) {
    let a = median_tones(path, &[440.0, 660.0]);
    (a[0], a[1])
}

/// -12 dBFS, the `virtual` device's tone level.
const TONE: f64 = 0.251;

#[test]
fn two_peers_and_a_monitor_hear_the_right_mix_and_report_qos() {
    let _serial = serial();
    let dir = scratch("mix");
    let (a_wav, b_wav, m_wav) = (
        dir.join("alice.wav"),
        dir.join("bob.wav"),
        dir.join("mon.wav"),
    );
    let (mut hub, addr, hub_metrics) = hub(&[]);
    let (mut alice, alice_metrics) = peer(
        addr,
        "alice",
        "virtual:tone=440",
        &["--qos", "--record", a_wav.to_str().unwrap()],
    );
    let (mut bob, _) = peer(
        addr,
        "bob",
        "virtual:tone=660",
        &["--qos", "--record", b_wav.to_str().unwrap()],
    );
    let (mut mon, mon_metrics) = monitor(addr, "admin", &["--record", m_wav.to_str().unwrap()]);

    // Everyone joins; QOS of both peers reaches the hub and, through METADATA, the monitor.
    wait_for(
        "three users, metered, with QOS per peer at the hub",
        SECS(20),
        || {
            let m = metrics(hub_metrics);
            let s = &m["mixeradminSharedState"];
            let qos = |u: &str| s[u]["QOSMetrics"]["head"]["seq"].is_u64();
            let metered = |u: &str| s[u]["audioInputMetadata"]["peakDbfs"].as_f64() > Some(-100.0);
            let all = ["alice", "bob", "admin"].iter().all(|u| connected(&m, u));
            (all && qos("alice") && qos("bob") && metered("alice") && metered("bob")).then_some(())
        },
    );
    wait_for("QOS per peer at the monitor", SECS(10), || {
        let m = metrics(mon_metrics);
        let s = &m["mixeradminSharedState"];
        (s["alice"]["QOSMetrics"]["rttMs"].is_f64() && s["bob"]["QOSMetrics"]["latencyMs"].is_f64())
            .then_some(())
    });
    // The clock lock's keys ride along: the peer's own estimate (both cards are the hub's
    // clock here: near 0), whether it is locked, what it concealed, its target.
    let q = &metrics(hub_metrics)["mixeradminSharedState"]["alice"]["QOSMetrics"];
    assert!(
        q["clockRatioPpm"]
            .as_f64()
            .is_some_and(|p| p.abs() < 1000.0),
        "{q}"
    );
    assert!(q["locked"].is_boolean(), "{q}");
    assert!(q["concealedFrames"].is_u64(), "{q}");
    assert!(
        q["latencyTargetFrames"].as_u64().is_some_and(|t| t > 0),
        "{q}"
    );
    // METADATA at least every 500 ms.
    let frames = |m: &Value| {
        m["connections"]["admin"]["metadataFrames"]
            .as_u64()
            .unwrap()
    };
    let first = frames(&metrics(mon_metrics));
    std::thread::sleep(SECS(2));
    let got = frames(&metrics(mon_metrics)) - first;
    assert!(got >= 3, "{got} METADATA frames in 2 s");
    let h = metrics(hub_metrics);
    assert_eq!(h["connections"]["alice"]["mix"], "minus");
    assert_eq!(h["connections"]["admin"]["mix"], "full");
    assert_eq!(h["connections"]["admin"]["role"], "monitor");
    let alice_in = &h["mixeradminSharedState"]["alice"]["audioInputMetadata"];
    assert!(
        (alice_in["peakDbfs"].as_f64().unwrap() + 12.0).abs() < 0.5,
        "{alice_in}"
    );
    let tracks = h["incomingAudioTracks"].as_array().unwrap();
    assert!(
        tracks
            .iter()
            .any(|t| t["from"] == "alice" && t["connected"] == true),
        "{tracks:?}"
    );

    // The peer's own view: running, mic flowing, the round trip known.
    let a = metrics(alice_metrics);
    assert_eq!(a["aggregatorStatus"], "running", "{a}");
    assert_eq!(a["micStatus"], "green", "{a}");
    assert!(a["connections"]["alice"]["rttMs"].as_f64().unwrap() < 50.0);
    for key in izyrt::metrics::SNAPSHOT_KEYS {
        assert!(a.get(key).is_some() && h.get(key).is_some(), "{key}");
    }

    // One shape for every role (issue 18): who answers, and the hub's session table,
    // built by the hub and copied from METADATA by the monitor and the peer.
    let m_snap = metrics(mon_metrics);
    assert_eq!((&h["role"], &h["user"]), (&json!("hub"), &Value::Null));
    assert_eq!((&a["role"], &a["user"]), (&json!("peer"), &json!("alice")));
    assert_eq!(
        (&m_snap["role"], &m_snap["user"]),
        (&json!("monitor"), &json!("admin"))
    );
    for (who, m) in [("hub", &h), ("peer", &a), ("monitor", &m_snap)] {
        assert!(m["aggregatorStatus"].is_string(), "{who}: {m}");
        let alice = &m["sessions"]["alice"];
        for key in [
            "since",
            "hubMisses",
            "hubMisses10s",
            "jitterDepthFrames",
            "rttMs",
        ] {
            assert!(
                alice[key].is_number(),
                "{who}: sessions.alice.{key}: {alice}"
            );
        }
        for key in ["leftReason", "leftAt"] {
            assert!(alice[key].is_null(), "{who}: sessions.alice.{key}: {alice}");
        }
        assert!(alice["since"].as_u64() > Some(1_700_000_000_000), "{alice}");
        assert!(
            alice["audioInputMetadata"]["peakDbfs"].is_number(),
            "{alice}"
        );
        // The monitor sends no audio: its input figures do not apply.
        let admin = &m["sessions"]["admin"];
        assert!(admin["hubMisses"].is_null() && admin["audioInputMetadata"].is_null());
    }
    // What a role does not have is null, not a placeholder alarm.
    for key in [
        "micStatus",
        "speakerSilenceDetected",
        "speakerScriptProcessorIncomingBufferMisses",
    ] {
        assert!(h[key].is_null(), "hub {key}: {}", h[key]);
    }
    assert!(
        m_snap["micStatus"].is_null(),
        "monitor micStatus: {}",
        m_snap["micStatus"]
    );

    // Let the recordings hold a few seconds of steady mix, then stop cleanly.
    std::thread::sleep(SECS(3));
    for p in [&mut alice, &mut bob, &mut mon] {
        assert_eq!(
            p.interrupt(SECS(10)),
            Some(0),
            "{}:\n{}",
            p.name,
            p.output()
        );
    }
    let (a440, a660) = tones(&a_wav);
    let (b440, b660) = tones(&b_wav);
    let (m440, m660) = tones(&m_wav);
    // minus: each hears the other and not itself. The mix-minus is exact: what is left of
    // its own tone is leakage from dropouts, 30 dB down; the other's level is the tone's
    // in most 100 ms blocks (this shared machine stalls RT threads for milliseconds, and
    // each stall costs the block it falls in some of its level).
    assert!(
        a660 > 0.5 * TONE && a660 < 1.1 * TONE && a440 < 0.01,
        "alice: 440 {a440}, 660 {a660}"
    );
    assert!(
        b440 > 0.5 * TONE && b440 < 1.1 * TONE && b660 < 0.01,
        "bob: 440 {b440}, 660 {b660}"
    );
    // The monitor hears both.
    assert!(
        [m440, m660]
            .iter()
            .all(|&a| a > 0.5 * TONE && a < 1.1 * TONE),
        "monitor: {m440} {m660}"
    );
    assert_eq!(hub.interrupt(SECS(10)), Some(0), "{}", hub.output());
}

/// A peer whose process stops for 300 ms: the hub's misses are its, and the hub counts
/// the periods they fell in (`missPeriods`) and the most inputs in one (`widestMiss`).
/// The stop holds its card too, whose capture loses those 300 ms (an overrun): the peer
/// sends them as a gap in its stream positions, audio lost rather than late.
/// METADATA describes every user and goes to every client, so the hub hands it out a few
/// clients per mix period (one burst to all of them kept its net thread from the
/// sockets for milliseconds). Each client still gets it every 500 ms, naming everyone,
/// whether clients hear a mix (peers: spread over the periods) or nobody does (sources:
/// sent at the housekeeping tick).
#[test]
fn every_client_gets_metadata_naming_everyone_every_500_ms() {
    let _serial = serial();
    const N: usize = 12;
    for role in ["peer", "source"] {
        let (_hub, addr, _) = hub(&[]);
        let mut clients: Vec<Raw> = (0..N)
            .map(|i| {
                let mut c = Raw::connect(addr);
                c.hello(&format!("{role}{i}"), json!({ "role": role }));
                c.sock
                    .set_read_timeout(Some(Duration::from_millis(5)))
                    .unwrap();
                c
            })
            .collect();
        let mut counts = [0usize; N];
        let mut last = vec![Value::Null; N];
        let start = std::time::Instant::now();
        while start.elapsed() < SECS(3) {
            for (i, c) in clients.iter_mut().enumerate() {
                let (frames, closed) = c.read_until(Kind::Metadata, Duration::from_millis(1));
                assert!(!closed, "{role} {i} was closed: {frames:?}");
                for (kind, payload) in frames {
                    if kind == Some(Kind::Metadata) {
                        counts[i] += 1;
                        last[i] = serde_json::from_slice(&payload).unwrap();
                    }
                }
            }
        }
        // Six cadences in 3 s; four leave room for a slow start on a busy machine.
        assert!(
            counts.iter().all(|&n| n >= 4),
            "{role}s: METADATA frames {counts:?}"
        );
        for (i, m) in last.iter().enumerate() {
            let users = m["mixeradminSharedState"].as_object().unwrap();
            assert_eq!(users.len(), N, "{role} {i}'s last METADATA: {m}");
        }
    }
}

#[test]
fn rt_threads_and_audio_paths_of_hub_and_peer_do_not_allocate() {
    let _serial = serial();
    let (_hub, addr, hub_metrics) = hub(&[]);
    let (_alice, alice_metrics) = peer(addr, "alice", "virtual:tone=440", &["--qos"]);
    let (_bob, _) = peer(addr, "bob", "virtual:impulse", &[]);
    // The counter is armed after 2000 periods (2.7 s); then let it run 3 s more, in which a
    // third client joins and leaves (a join must not allocate on the mixer thread either).
    rt_counters_armed(hub_metrics);
    rt_counters_armed(alice_metrics);
    let (mut carol, _) = peer(addr, "carol", "virtual:tone=1000", &[]);
    wait_for("carol joined", SECS(10), || {
        connected(&metrics(hub_metrics), "carol").then_some(())
    });
    std::thread::sleep(SECS(2));
    carol.kill();
    std::thread::sleep(SECS(1));
    // The net threads' AUDIO paths (in, out, and alice's QOS after every frame) too.
    let h = metrics(hub_metrics);
    assert_eq!(h["hub"]["audioPathAllocations"], 0, "{}", h["hub"]);
    let a = metrics(alice_metrics);
    let c = &a["connections"]["alice"];
    assert_eq!(c["audioPathAllocations"], 0, "{c}");
    assert!(
        c["qosSent"].as_u64().unwrap() > 1000 && c["packetsOut"].as_u64().unwrap() > 1000,
        "{c}"
    );
    for (who, addr) in [("hub", hub_metrics), ("alice", alice_metrics)] {
        let m = metrics(addr);
        for (thread, t) in m["realtime"].as_object().unwrap() {
            assert_eq!(t["steadyAllocations"], 0, "{who} {thread}: {t}");
            assert_eq!(t["policy"], "SCHED_FIFO", "{who} {thread}");
            assert!(t["wakeups"].as_u64().unwrap() > 0, "{who} {thread}");
            // The period's own work was timed: some, and within the period it ran in.
            let work = &t["work"];
            let period_us = t["periodFrames"].as_f64().unwrap() / 48_000.0 * 1e6;
            let (p50, max) = (
                work["p50Us"].as_f64().unwrap(),
                work["maxUs"].as_f64().unwrap(),
            );
            assert!(
                p50 > 0.0 && p50 < period_us && max >= p50,
                "{who} {thread}: {work}"
            );
        }
    }
}

#[test]
fn a_killed_peer_leaves_the_others_playing_and_shows_disconnected() {
    let _serial = serial();
    let dir = scratch("kill");
    let m_wav = dir.join("mon.wav");
    let (_hub, addr, hub_metrics) = hub(&[]);
    let (mut alice, _) = peer(addr, "alice", "virtual:tone=440", &[]);
    let (_bob, bob_metrics) = peer(addr, "bob", "virtual:tone=660", &[]);
    let (mut mon, mon_metrics) = monitor(addr, "admin", &["--record", m_wav.to_str().unwrap()]);
    wait_for("all joined and playing", SECS(20), || {
        let m = metrics(hub_metrics);
        let tracks = m["incomingAudioTracks"].as_array()?.clone();
        (tracks.iter().filter(|t| t["connected"] == true).count() == 2 && connected(&m, "admin"))
            .then_some(())
    });
    std::thread::sleep(SECS(1));
    let bob_track = |m: &Value| {
        m["incomingAudioTracks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["from"] == "bob")
            .unwrap()
            .clone()
    };
    let before = bob_track(&metrics(hub_metrics));
    let t0 = std::time::Instant::now();

    alice.kill();
    // For 3 s after the kill, bob's track never stalls (its seq advances within the
    // 100 ms latency threshold at every look) and alice shows disconnected.
    let mut alice_gone = false;
    while t0.elapsed() < SECS(3) {
        let m = metrics(hub_metrics);
        assert_eq!(
            bob_track(&m)["connected"],
            true,
            "bob's track stalled after the kill: {}",
            bob_track(&m)
        );
        assert!(connected(&m, "bob") && connected(&m, "admin"));
        if m["connections"]["alice"]["connected"] == false {
            let t = m["incomingAudioTracks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["from"] == "alice")
                .unwrap()
                .clone();
            assert_eq!(t["connected"], false, "{t}");
            alice_gone = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(alice_gone, "alice still connected 3 s after being killed");
    // The session table shows her as left, and why, at the hub and at the monitor.
    for at in [hub_metrics, mon_metrics] {
        let alice = wait_for("alice left in the session table", SECS(5), || {
            let m = metrics(at);
            let alice = m["sessions"]["alice"].clone();
            (alice["connected"] == false).then_some(alice)
        });
        assert!(alice["leftReason"].is_string(), "{alice}");
        assert!(
            alice["leftAt"].as_u64() > Some(1_700_000_000_000),
            "{alice}"
        );
        assert_eq!(alice["leftAt"], alice["since"], "{alice}");
        assert!(alice["jitterDepthFrames"].is_null(), "{alice}");
    }
    let after = bob_track(&metrics(hub_metrics));
    let elapsed = t0.elapsed().as_secs_f64();
    // Not a packet lost, and the stream kept real time (750 packets/s at 64 frames).
    assert_eq!(after["seqGaps"], before["seqGaps"], "{before} → {after}");
    let packets = after["packets"].as_u64().unwrap() - before["packets"].as_u64().unwrap();
    assert!(
        packets as f64 > 0.8 * 750.0 * elapsed,
        "{packets} packets in {elapsed:.2} s"
    );
    assert_eq!(metrics(bob_metrics)["aggregatorStatus"], "running");
    // The monitor heard bob throughout; over the last second, alice's tone is gone.
    assert_eq!(mon.interrupt(SECS(10)), Some(0), "{}", mon.output());
    let (rate, x) = procs::wav_channel0(&m_wav);
    let last = &x[x.len() - rate as usize..];
    let a440 = procs::tone_amplitude(last, rate, 440.0);
    let b660 = median_tones(&m_wav, &[660.0])[0];
    assert!(
        a440 < 0.01 && b660 > 0.12,
        "monitor: alice {a440}, bob {b660}"
    );
}

#[test]
fn peers_come_back_by_themselves_when_the_hub_restarts() {
    let _serial = serial();
    // A fixed port, so the new hub is where the peers look.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let start_hub = || {
        let mut p = Proc::start(
            "hub",
            &[
                "hub",
                "--listen",
                &listen,
                "--metrics",
                "127.0.0.1:0",
                "--periods",
                procs::PERIODS,
            ],
        );
        let m = p.metrics_addr();
        (p, m)
    };
    let (mut first, m1) = start_hub();
    let addr = listen.parse().unwrap();
    // Alice's sound card runs 300 ppm fast against the hub's clock.
    let (_alice, alice_metrics) = peer(addr, "alice", "virtual:tone=440,skew=300", &[]);
    let (_bob, _) = peer(addr, "bob", "virtual:tone=660", &[]);
    wait_for("both joined", SECS(20), || {
        let m = metrics(m1);
        (connected(&m, "alice") && connected(&m, "bob")).then_some(())
    });
    let clock = |m: &Value| m["clockRatioPpm"].as_f64();
    wait_for("alice locked to the first hub", SECS(60), || {
        let m = metrics(alice_metrics);
        (m["locked"] == true && clock(&m).is_some_and(|c| (c + 300.0).abs() < 50.0)).then_some(())
    });
    first.kill();
    wait_for("alice sees the hub gone", SECS(5), || {
        let m = metrics(alice_metrics);
        // DESIGN.md: the miss counter resets when the aggregator input stops.
        let misses = m["speakerScriptProcessorIncomingBufferMisses"].as_u64();
        (m["aggregatorStatus"] != "running" && m["micStatus"] == "red" && misses == Some(0))
            .then_some(())
    });
    std::thread::sleep(SECS(2));
    let (_second, m2) = start_hub();
    let back = std::time::Instant::now();
    wait_for("both back at the new hub", SECS(5), || {
        let m = metrics(m2);
        (connected(&m, "alice") && connected(&m, "bob")).then_some(())
    });
    let took = back.elapsed();
    eprintln!("peers back {took:?} after the new hub was listening");
    assert!(took < SECS(2), "peers took {took:?} to return");
    wait_for("alice running again", SECS(5), || {
        let m = metrics(alice_metrics);
        (m["aggregatorStatus"] == "running" && m["micStatus"] == "green").then_some(())
    });
    let a = metrics(alice_metrics);
    assert_eq!(a["connections"]["alice"]["sessions"], 2, "{a}");
    // The same two clocks: the estimate is kept across the reconnect (a fresh one takes
    // 8 s of blocks), and the loop locks again (within 10 s by simulation,
    // `tests/playout_sim.rs`; a shared machine gets more time here).
    let kept = clock(&a).expect("the clock estimate kept across the reconnect");
    assert!((kept + 300.0).abs() < 50.0, "kept {kept} ppm");
    let relocked = wait_for("alice locked to the new hub", SECS(30), || {
        let m = metrics(alice_metrics);
        (m["locked"] == true).then_some(back.elapsed())
    });
    eprintln!("alice locked again {relocked:?} after the new hub was listening");
}

#[test]
fn dev_mode_runs_hub_and_peer_in_one_process() {
    let _serial = serial();
    let mut dev = Proc::start(
        "dev",
        &[
            "--device",
            "virtual:tone=440",
            "--metrics",
            "127.0.0.1:0",
            "--periods",
            procs::PERIODS,
        ],
    );
    let addr = dev.metrics_addr();
    let m = wait_for("dev mode running", SECS(20), || {
        let m = metrics(addr);
        let joined = m["connections"]["dev"]["mix"] == "full";
        (m["aggregatorStatus"] == "running" && m["micStatus"] == "green" && joined).then_some(m)
    });
    for key in izyrt::metrics::SNAPSHOT_KEYS {
        assert!(m.get(key).is_some(), "{key}");
    }
    assert_eq!(
        m["connections"]["dev"]["sessions"], 1,
        "the peer's own fields are kept"
    );
    let rt = m["realtime"].as_object().unwrap();
    assert!(
        rt.contains_key("izyrt-hub-mixer") && rt.contains_key("izyrt-peer-audio"),
        "{rt:?}"
    );
    // It hears itself through the hub (full mix): the tone at its level.
    wait_for("the tone on the speaker", SECS(10), || {
        let m = metrics(addr);
        let p = m["levels"]["speakerPeakDbfs"].as_f64()?;
        ((p + 12.0).abs() < 1.0).then_some(())
    });
    let status = dev.wait_line("latency ", SECS(10));
    assert!(
        status.contains("misses") && status.contains("buffer"),
        "{status}"
    );
    assert_eq!(dev.interrupt(SECS(5)), Some(0), "{}", dev.output());
    assert!(dev.output().contains("dev mode:  stopped"));
}
