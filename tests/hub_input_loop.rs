//! A peer's input at the hub held at the hub's target by the peer's capture (real
//! processes on loopback). The hub reports where each input stands (METADATA,
//! `jitterExcessFrames`), and a peer that has measured the hub's clock resamples its
//! capture to bring its input there (`captureCorrectionPpm`, `client::hub_input`).
//!
//! Two tests: a real hub and peer show both ends of the report; and a fake hub (this
//! process: a paced mix, METADATA every 500 ms saying what the test chooses) sees the
//! peer send more frames per second of its capture's own clock when its input is said to
//! be short, and fewer when long. Time bounds are generous: the machine is shared.

#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use izyrt::wire::{AudioFormat, Decoder, FLAG_CLOCK_LOCKED, Kind, encode_json};
use procs::{audio_frame, hub, metrics, peer, read_hello, serial, wait_for};
use serde_json::json;

#[test]
fn a_hub_reports_each_input_and_its_peer_shows_the_report() {
    let _serial = serial();
    let (mut h, addr, hub_metrics) = hub(&[]);
    let (mut p, peer_metrics) = peer(addr, "alice", "virtual:tone=441", &[]);
    let (hub_says, peer_heard) = wait_for("the report", Duration::from_secs(60), || {
        let a = metrics(hub_metrics)["sessions"]["alice"].clone();
        let m = metrics(peer_metrics);
        let heard = m["hubInputExcessFrames"].as_f64()?;
        // Once the estimate is measured, the capture follows it (a number, bounded).
        let ppm = m["captureCorrectionPpm"].as_f64()?;
        assert!(ppm.abs() <= 2000.0, "{ppm}");
        (a["senderLocked"] == true).then_some((a, heard))
    });
    let excess = hub_says["jitterExcessFrames"].as_f64().expect("a number");
    let target = hub_says["jitterTargetFrames"].as_u64().expect("a number");
    assert!(target >= 64, "{hub_says}");
    // Both are where the input stood, a moment apart: within its target of each other.
    assert!(
        (excess - peer_heard).abs() <= target as f64,
        "{excess} {peer_heard}"
    );
    p.kill();
    h.kill();
}

/// A fake hub for one peer: WELCOME, then the mix paced at 48 kHz and a METADATA every
/// 500 ms saying the peer's input stands `excess` frames from its target, until `stop`.
fn fake_hub(mut sock: TcpStream, excess: Arc<AtomicI64>, stop: Arc<AtomicBool>) {
    let welcome = json!({"proto":"streamproto1","session":"fake","hub":"fake/0",
        "sampleRate":48000,"channels":2,"format":"f32","framesPerPacket":64,"mix":"minus"});
    let mut out = vec![0u8; 4096];
    let n = encode_json(&mut out, Kind::Welcome, 0, 0, &welcome).unwrap();
    sock.write_all(&out[..n]).unwrap();
    // Paced on absolute deadlines from a realtime thread, as a hub's mixer sends.
    let _ = izyrt::rt::promote::raise_to_fifo(60);
    let period = Duration::from_secs_f64(64.0 / 48_000.0);
    let samples = [0.1f32; 128];
    let start = Instant::now();
    for seq in 0u32.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Some(wait) = (start + period * seq).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let frame = audio_frame(48_000, 0, seq, AudioFormat::F32, 64, &samples);
        if sock.write_all(&frame).is_err() {
            return;
        }
        if seq % 375 == 0 {
            let x = excess.load(Ordering::Relaxed);
            let meta = json!({"mixeradminSharedState":{"alice":{"jitterExcessFrames": x}}});
            let n = encode_json(&mut out, Kind::Metadata, 0, seq / 375, &meta).unwrap();
            if sock.write_all(&out[..n]).is_err() {
                return;
            }
        }
    }
}

/// The peer's AUDIO frames received for `secs` from `sock`: (origin time s, position,
/// flagged `CLOCK_LOCKED`).
fn capture(sock: &mut TcpStream, dec: &mut Decoder, secs: f64) -> Vec<(f64, f64, bool)> {
    let mut buf = vec![0u8; 1 << 16];
    let start = Instant::now();
    let mut pts = Vec::new();
    while start.elapsed().as_secs_f64() < secs {
        let n = sock.read(&mut buf).expect("the peer's stream");
        assert!(n > 0, "the peer closed");
        dec.feed(&buf[..n]);
        while let Ok(Some(f)) = dec.next_frame() {
            if f.kind() == Some(Kind::Audio) {
                let h = f.audio().expect("audio").header;
                let locked = f.header.flags & FLAG_CLOCK_LOCKED != 0;
                pts.push((h.origin_ns as f64 / 1e9, h.position as f64, locked));
            }
        }
    }
    pts
}

/// The capture's rate against its own clock, ppm: the least-squares slope of position on
/// origin time.
fn rate_ppm(pts: &[(f64, f64, bool)]) -> f64 {
    let n = pts.len() as f64;
    let (mt, mp) = pts
        .iter()
        .fold((0.0, 0.0), |(a, b), (t, p, _)| (a + t / n, b + p / n));
    let (sxy, sxx) = pts.iter().fold((0.0, 0.0), |(a, b), (t, p, _)| {
        (a + (t - mt) * (p - mp), b + (t - mt) * (t - mt))
    });
    (sxy / sxx / 48_000.0 - 1.0) * 1e6
}

#[test]
fn a_peer_told_its_input_is_short_sends_more_and_long_fewer() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut p, peer_metrics) = peer(
        listener.local_addr().unwrap(),
        "alice",
        "virtual:tone=441",
        &[],
    );
    let (mut sock, _) = listener.accept().unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    read_hello(&mut sock);
    let excess = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (sock, excess, stop) = (sock.try_clone().unwrap(), excess.clone(), stop.clone());
        std::thread::spawn(move || fake_hub(sock, excess, stop))
    };
    let mut dec = Decoder::new();
    // Its capture is flagged CLOCK_LOCKED once its estimate is measured (about the 9th
    // second), and follows the reports from then on.
    wait_for(
        "the peer to measure the clock",
        Duration::from_secs(60),
        || {
            let pts = capture(&mut sock, &mut dec, 0.2);
            pts.iter().any(|p| p.2).then_some(())
        },
    );
    let mut rate = |x: i64, want: f64| {
        excess.store(x, Ordering::Relaxed);
        // The glide (half a second) and a report's wait, then 4 s measured.
        let _ = capture(&mut sock, &mut dec, 2.0);
        let ppm = rate_ppm(&capture(&mut sock, &mut dec, 4.0));
        let m = metrics(peer_metrics);
        assert_eq!(m["captureCorrectionPpm"], want, "told {x}: {m}");
        assert_eq!(m["hubInputExcessFrames"], x as f64);
        ppm
    };
    // 480 frames is 10 ms, more than 2 s at the bound repays: the bound either way.
    let short = rate(-480, 2000.0);
    let long = rate(480, -2000.0);
    let level = rate(0, 0.0);
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    eprintln!("short {short:.0}, level {level:.0}, long {long:.0} ppm");
    // Measured on the capture's own clock, apart by the two corrections (4000 ppm),
    // within what the device's wakeups leave in 4 s of timestamps.
    assert!(
        short - long > 3000.0 && short - level > 1500.0 && level - long > 1500.0,
        "short {short:.0}, level {level:.0}, long {long:.0} ppm"
    );
    p.kill();
}
