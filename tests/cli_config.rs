//! Options of the networked roles as a user gives them: flags, `IZYRT_*` variables and a
//! `--config` JSON file, in that order of precedence; a bad value stops the program with
//! one line naming it. Also the hub's Prometheus output checked by `promtool`.
#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use izyrt::wire::{Kind, Welcome};
use procs::{Proc, Raw, http_get, metrics, scratch};
use serde_json::json;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Runs `izyrt ARGS` to completion: (exit code, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_values_stop_with_one_line_naming_them() {
    let dir = scratch("cfg-bad");
    let typo = dir.join("typo.json");
    std::fs::write(&typo, r#"{"rte": 48000}"#).unwrap();
    let wrong_type = dir.join("type.json");
    std::fs::write(&wrong_type, r#"{"period": "fast"}"#).unwrap();
    // (arguments, environment, what the one line says)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["hub", "--rate", "7"],
            vec![],
            "--rate 7 is not allowed (allowed: 8000..=384000)",
        ),
        (
            vec!["hub"],
            vec![("IZYRT_PERIOD", "0")],
            "--period 0 is not allowed (allowed: 1..=4096)",
        ),
        (
            vec!["hub", "--channels", "65"],
            vec![],
            "--channels 65 is not allowed",
        ),
        (
            vec!["hub", "--config", typo.to_str().unwrap()],
            vec![],
            "unknown option \"rte\"",
        ),
        (
            vec!["hub", "--config", wrong_type.to_str().unwrap()],
            vec![],
            "\"period\" \"fast\" is not allowed",
        ),
        (
            vec!["hub", "--config", "/nonexistent.json"],
            vec![],
            "--config /nonexistent.json",
        ),
        (
            vec!["hub", "--listen", "127.0.0.1:x"],
            vec![],
            "--listen 127.0.0.1:x: port 'x' is not allowed (allowed: 0..=65535)",
        ),
        (vec!["hub", "--device", "virtual:bogus"], vec![], "--device"),
        (
            vec!["hub", "--file", "/nonexistent.wav"],
            vec![],
            "--file /nonexistent.wav",
        ),
        (
            vec!["peer", "--user", "a", "--device", "virtual"],
            vec![],
            "--hub is required",
        ),
        (
            vec![
                "peer",
                "--hub",
                "127.0.0.1:1",
                "--user",
                "a b",
                "--device",
                "virtual",
            ],
            vec![],
            "--user \"a b\" is not allowed",
        ),
        (
            vec!["peer", "--hub", "127.0.0.1:1", "--user", "a"],
            vec![],
            "--device (or --capture and --playback) is required",
        ),
        (
            vec!["hub", "--liveness-ms", "5"],
            vec![],
            "--liveness-ms 5 is not allowed",
        ),
        (
            vec!["hub"],
            vec![("IZYRT_JITTER_MAX_MS", "0")],
            "--jitter-max-ms 0 is not allowed (allowed: 1..=2000)",
        ),
        (
            vec!["hub", "--jitter-min-ms", "20", "--jitter-max-ms", "10"],
            vec![],
            "--jitter-min-ms 20 is above --jitter-max-ms 10",
        ),
        (
            vec!["hub"],
            vec![("IZYRT_JITTER_MIN_MS", "2001")],
            "--jitter-min-ms 2001 is not allowed (allowed: 1..=2000)",
        ),
        (vec![], vec![], "give a command"),
    ];
    for (args, env, needle) in cases {
        let (code, err) = run(&args, &env);
        assert_eq!(code, Some(64), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got {err:?}");
        assert!(
            lines[0].starts_with("izyrt: ") && lines[0].contains(needle),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn flags_beat_environment_beat_config_file() {
    let dir = scratch("cfg-good");
    let cfg = dir.join("izyrt.json");
    std::fs::write(
        &cfg,
        json!({"period": 128, "maxClients": 3, "mix": "loopback", "latencyThresholdMs": 250})
            .to_string(),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let mut hub = Proc::start_env(
        "hub",
        &[
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--config",
            cfg,
            "--mix",
            "full",
        ],
        &[("IZYRT_MAX_CLIENTS", "5")],
    );
    let addr = hub.addr_after("listening on ");
    let m = metrics(hub.metrics_addr());
    // File: period 128. Environment over file: 5 clients. Flag over file: full.
    assert_eq!(m["hub"]["maxClients"], 5, "{m}");
    assert_eq!(m["hub"]["mix"], "full");
    let mut c = Raw::connect(addr);
    c.hello("alice", json!({"framesPerPacket": 64}));
    let (frames, _) = c.read_until(Kind::Welcome, SECS(5));
    let (_, payload) = frames
        .iter()
        .find(|(k, _)| *k == Some(Kind::Welcome))
        .unwrap();
    let w = Welcome::parse(payload).unwrap();
    assert_eq!(w.frames_per_packet, 128);
    assert_eq!(format!("{:?}", w.mix), "Full");
    // A client may ask for its own mix (HELLO "mix").
    let mut c = Raw::connect(addr);
    c.hello("bob", json!({"mix": "loopback"}));
    let (frames, _) = c.read_until(Kind::Welcome, SECS(5));
    let (_, payload) = frames
        .iter()
        .find(|(k, _)| *k == Some(Kind::Welcome))
        .unwrap();
    assert_eq!(
        format!("{:?}", Welcome::parse(payload).unwrap().mix),
        "Loopback"
    );
}

/// A hub started with `hub_args` and a peer `user` on a tone, configured by the config
/// file `peer_config`: the hub, its address and metrics address, the peer and its metrics
/// address.
fn hub_and_configured_peer(
    hub_args: &[&str],
    peer_config: serde_json::Value,
    user: &str,
) -> (Proc, SocketAddr, SocketAddr, Proc, SocketAddr) {
    let cfg = scratch(&format!("cfg-{user}")).join("peer.json");
    std::fs::write(&cfg, peer_config.to_string()).unwrap();
    let (hub, addr, hub_metrics) = procs::hub(hub_args);
    let (peer, peer_metrics) = procs::peer(
        addr,
        user,
        "virtual:tone=440",
        &["--config", cfg.to_str().unwrap()],
    );
    (hub, addr, hub_metrics, peer, peer_metrics)
}

#[test]
fn jitter_max_ms_caps_the_hub_and_peer_buffers() {
    // The hub's cap from the flag: 10 ms = 480 frames, 8 periods of 64; the peer's from
    // its config file: 3 ms = 144 frames, rounded up to 3 periods.
    let (_hub, addr, hub_metrics, _peer, peer_metrics) = hub_and_configured_peer(
        &["--jitter-max-ms", "10"],
        json!({"jitterMaxMs": 3}),
        "capped",
    );
    // And a peer without it: the built-in 32 periods.
    let (_other, other_metrics) = procs::peer(addr, "free", "virtual", &[]);
    let max = |m: &serde_json::Value, user: &str| m["connections"][user]["jitterMaxFrames"].clone();
    let (peer, other) = procs::wait_for("both peers' speaker buffers", SECS(10), || {
        let (a, b) = (metrics(peer_metrics), metrics(other_metrics));
        // Set when each peer builds its speaker buffer (0 before).
        let published = |v: serde_json::Value| v.as_u64().is_some_and(|n| n > 0);
        (published(max(&a, "capped")) && published(max(&b, "free"))).then_some((a, b))
    });
    assert_eq!(max(&peer, "capped"), 192, "{peer}");
    assert_eq!(max(&other, "free"), 64 * 32, "{other}");
    // At the hub, both inputs have its cap.
    let hub = procs::wait_for("the hub's input buffers", SECS(10), || {
        let m = metrics(hub_metrics);
        (max(&m, "capped").as_u64() == Some(512) && max(&m, "free").as_u64() == Some(512))
            .then_some(m)
    });
    assert_eq!(hub["hub"]["clients"], 2, "{hub}");
}

#[test]
fn jitter_min_ms_floors_the_hub_and_peer_buffers() {
    // The hub's floor from the flag: 5 ms = 240 frames, 4 periods of 64; the peer's from
    // its config file: 3 ms = 144 frames, rounded up to 3 periods.
    let (_hub, _, hub_metrics, _peer, peer_metrics) = hub_and_configured_peer(
        &["--jitter-min-ms", "5"],
        json!({"jitterMinMs": 3}),
        "floored",
    );
    let target = |m: &serde_json::Value| {
        m["connections"]["floored"]["jitterTargetFrames"]
            .as_u64()
            .unwrap_or(0)
    };
    // Each buffer starts at its floor (a target grows only on a late packet, and never
    // shrinks below the floor); without one, both would start at a single period (64).
    let published = |what: &str, at: SocketAddr| {
        procs::wait_for(what, SECS(10), || {
            let m = metrics(at);
            (target(&m) > 0).then_some(m)
        })
    };
    let peer = published("the peer's speaker buffer", peer_metrics);
    assert!(target(&peer) >= 192, "{peer}");
    let hub = published("the hub's input buffer", hub_metrics);
    assert!(target(&hub) >= 256, "{hub}");
    assert!(target(&hub) <= 64 * 16, "{hub}");
}

#[test]
fn hub_prometheus_output_passes_promtool() {
    let mut hub = Proc::start(
        "hub",
        &["hub", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"],
    );
    let addr = hub.addr_after("listening on ");
    let m_addr = hub.metrics_addr();
    let mut c = Raw::connect(addr);
    c.hello("alice", json!({}));
    c.read_until(Kind::Welcome, SECS(5));
    procs::wait_for("alice in the snapshot", SECS(5), || {
        (metrics(m_addr)["connections"]["alice"]["connected"] == true).then_some(())
    });
    let text = http_get(m_addr, "/metrics");
    assert!(
        text.contains("izyrt_connection_rtt_seconds") || text.contains("user=\"alice\""),
        "{text}"
    );
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        println!("promtool not found (scripts/setup installs it); skipping the check");
        return;
    };
    use std::io::Write;
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
fn latency_on_virtual_devices_is_exact() {
    // The measurement is judged, not the host: a run in which the hub or the peer missed
    // a packet (a stall of this VM; fresh-clone CI, 2026-12-08: a click lost with one
    // peer miss and two hub misses, the worst wakeup 3.2 ms late) is measured again, up
    // to three times.
    let mut v = serde_json::Value::Null;
    for attempt in 1..=3 {
        let out = Command::new(env!("CARGO_BIN_EXE_izyrt"))
            .args([
                "latency",
                "--device",
                "virtual",
                "--seconds",
                "5",
                "--periods",
                procs::PERIODS,
                "--json",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        v = serde_json::from_slice(&out.stdout).unwrap();
        let misses = v["peerMisses"].as_u64().unwrap_or(0) + v["hubMisses"].as_u64().unwrap_or(0);
        if misses == 0 {
            break;
        }
        eprintln!("attempt {attempt}: {misses} misses on a loaded machine; measuring again: {v}");
    }
    assert_eq!(v["method"], "virtual, exact", "{v}");
    assert!(v["clicks"].as_u64().unwrap() >= 2 && v["lost"] == 0, "{v}");
    for key in ["p50Frames", "p99Frames", "maxFrames"] {
        let f = v[key].as_f64().unwrap();
        // At least one period (capture to send), under 0.5 s. Not whole frames: the
        // clients resample to the hub's clock, so the path is a delay of a fraction of a
        // frame too (the click comes back smeared by the resampler's filter).
        assert!((64.0..24_000.0).contains(&f), "{key}: {v}");
    }
    assert!((v["p50Ms"].as_f64().unwrap() - v["p50Frames"].as_f64().unwrap() / 48.0).abs() < 1e-9);
    // The RT threads woke (a positive p99.9), and no wakeup was later than the worst one.
    let (p999, max) = (
        v["worstWakeupP999Us"].as_f64(),
        v["worstWakeupMaxUs"].as_f64(),
    );
    assert!(p999 > Some(0.0) && max >= p999, "{v}");
    let (code, err) = run(&["latency", "--device", "virtual", "--seconds", "1"], &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--seconds 1 is not allowed"), "{err}");
}
