//! Misbehaving clients against a real hub: each gets the spec's ERROR code and is closed,
//! while a real peer connected all along plays on undisturbed (its track never stalls,
//! not a packet lost). Plus `hub_full` and `replaced`.
#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::time::Duration;

use izyrt::wire::{AudioFormat, Header, Kind};
use procs::{Raw, hub, metrics, peer, wait_for};
use serde_json::{Value, json};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn alice_track(m: &Value) -> Value {
    m["incomingAudioTracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["from"] == "alice")
        .cloned()
        .unwrap_or(Value::Null)
}

fn audio_frame(rate: u32) -> Vec<u8> {
    procs::audio_frame(rate, 0, 0, AudioFormat::F32, 64, &[0.0; 128])
}

#[test]
fn every_misbehaviour_gets_its_error_and_the_others_play_on() {
    let (_hub, addr, hub_metrics) = hub(&["--token", "s3cret"]);
    let (_alice, _) = peer(addr, "alice", "virtual:tone=440", &["--token", "s3cret"]);
    wait_for("alice playing", SECS(20), || {
        (alice_track(&metrics(hub_metrics))["connected"] == true).then_some(())
    });
    let before = alice_track(&metrics(hub_metrics));

    let mut oversize = Header::new(Kind::Audio, 0, 0, 0);
    oversize.len = 3 * 1024 * 1024;
    let mut oversize_bytes = [0u8; 16];
    oversize.write(&mut oversize_bytes);
    let token = json!({"token": "s3cret"});
    // (what, what the client does, expected code)
    type Act = Box<dyn Fn(&mut Raw)>;
    let cases: Vec<(&str, Act, &str)> = vec![
        (
            "garbage",
            Box::new(|c: &mut Raw| c.send(b"GET / HTTP/1.1\r\n\r\n")),
            "bad_magic",
        ),
        (
            "wrong version",
            Box::new(|c: &mut Raw| c.send(&[0x49, 0x5a, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
            "bad_version",
        ),
        (
            "oversized frame",
            Box::new(move |c: &mut Raw| c.send(&oversize_bytes)),
            "frame_too_large",
        ),
        (
            "AUDIO before HELLO",
            Box::new(|c: &mut Raw| c.send(&audio_frame(48_000))),
            "hello_expected",
        ),
        (
            "HELLO not JSON",
            Box::new(|c: &mut Raw| {
                let mut f = vec![0u8; 16];
                Header::new(Kind::Hello, 0, 0, 5).write((&mut f[..16]).try_into().unwrap());
                f.extend_from_slice(b"hello");
                c.send(&f);
            }),
            "bad_json",
        ),
        (
            "no token",
            Box::new(|c: &mut Raw| c.hello("mallory", json!({}))),
            "unauthorized",
        ),
        (
            "wrong token",
            Box::new(|c: &mut Raw| c.hello("mallory", json!({"token": "s3creT"}))),
            "unauthorized",
        ),
        (
            "another proto",
            Box::new(|c: &mut Raw| {
                c.hello("eve", json!({"token": "s3cret", "proto": "streamproto2"}))
            }),
            "bad_version",
        ),
        (
            "wrong rate",
            Box::new({
                let token = token.clone();
                move |c: &mut Raw| {
                    let mut x = token.clone();
                    x["sampleRate"] = json!(44_100);
                    c.hello("eve", x);
                }
            }),
            "format_unsupported",
        ),
        (
            "bad AUDIO after WELCOME",
            Box::new({
                let token = token.clone();
                move |c: &mut Raw| {
                    c.hello("eve", token.clone());
                    let (f, _) = c.read_until(Kind::Welcome, SECS(5));
                    assert!(f.iter().any(|(k, _)| *k == Some(Kind::Welcome)));
                    let mut a = audio_frame(48_000);
                    a[16 + 4] = 3; // 3 channels: len no longer matches
                    c.send(&a);
                }
            }),
            "bad_audio",
        ),
        (
            "bad QOS JSON",
            Box::new({
                let token = token.clone();
                move |c: &mut Raw| {
                    c.hello("eve", token.clone());
                    c.read_until(Kind::Welcome, SECS(5));
                    let mut f = vec![0u8; 16];
                    Header::new(Kind::Qos, 0, 0, 3).write((&mut f[..16]).try_into().unwrap());
                    f.extend_from_slice(b"[1]");
                    c.send(&f);
                }
            }),
            "bad_json",
        ),
    ];
    for (what, act, code) in &cases {
        let mut c = Raw::connect(addr);
        act(&mut c);
        let (got, closed) = c.expect_error(SECS(5));
        assert_eq!(&got, code, "{what}");
        assert!(closed, "{what}: the hub did not close the connection");
    }
    // Silence: no HELLO within 5 s.
    let mut quiet = Raw::connect(addr);
    let (got, closed) = quiet.expect_error(SECS(8));
    assert_eq!((got.as_str(), closed), ("hello_timeout", true));

    // Alice never noticed: her track stayed connected, without a seq gap.
    let m = metrics(hub_metrics);
    let after = alice_track(&m);
    assert_eq!(after["connected"], true, "{after}");
    assert_eq!(after["seqGaps"], before["seqGaps"], "{before} → {after}");
    assert!(after["packets"].as_u64() > before["packets"].as_u64());
    assert!(
        m["connections"].get("mallory").is_none(),
        "a refused client is no user"
    );
}

#[test]
fn a_full_hub_refuses_and_a_second_connection_replaces_the_first() {
    let (_hub, addr, hub_metrics) = hub(&["--max-clients", "1"]);
    let mut first = Raw::connect(addr);
    first.hello("carol", json!({}));
    let (f, _) = first.read_until(Kind::Welcome, SECS(5));
    assert!(f.iter().any(|(k, _)| *k == Some(Kind::Welcome)), "{f:?}");

    let mut other = Raw::connect(addr);
    other.hello("dave", json!({}));
    assert_eq!(other.expect_error(SECS(5)), ("hub_full".into(), true));

    // The same user again: the new connection takes over, the old one hears `replaced`.
    let mut again = Raw::connect(addr);
    again.hello("carol", json!({}));
    let (f, _) = again.read_until(Kind::Welcome, SECS(5));
    assert!(f.iter().any(|(k, _)| *k == Some(Kind::Welcome)), "{f:?}");
    assert_eq!(first.expect_error(SECS(5)), ("replaced".into(), true));
    let m = wait_for("carol connected once", SECS(5), || {
        let m = metrics(hub_metrics);
        (m["connections"]["carol"]["sessions"] == 2).then_some(m)
    });
    assert_eq!(m["connections"]["carol"]["connected"], true, "{m}");
}
