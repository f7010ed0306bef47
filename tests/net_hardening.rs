//! Hostile clients against real processes on loopback (issue 20): a flood of half-open
//! connections, AUDIO carrying NaN/Inf/subnormals, AUDIO off the agreed format or size,
//! interleaved tracks, and a hub that sends garbage to a peer.
#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use izyrt::wire::{AudioFormat, Decoder, ErrorMsg, Kind, encode_json};
use procs::{Raw, hub, metrics, peer, read_hello, wait_for};
use serde_json::{Value, json};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn audio(track: u16, seq: u32, format: AudioFormat, frames: u32, samples: &[f32]) -> Vec<u8> {
    procs::audio_frame(48_000, track, seq, format, frames, samples)
}

fn joined(raw: &mut Raw, user: &str) {
    raw.hello(user, json!({}));
    let (frames, closed) = raw.read_until(Kind::Welcome, SECS(5));
    assert!(
        !closed && frames.iter().any(|f| f.0 == Some(Kind::Welcome)),
        "{user} not WELCOMEd: {:?}",
        frames.iter().map(|f| f.0).collect::<Vec<_>>()
    );
}

fn connection(m: &Value, user: &str) -> Value {
    m["connections"][user].clone()
}

/// Raises this process's descriptor limit to at least `n` (up to the hard limit).
fn raise_fd_limit(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < n {
            lim.rlim_cur = n.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[test]
fn an_honest_hello_is_welcomed_within_1s_beside_1000_half_open_connections() {
    raise_fd_limit(4096);
    let (_hub, addr, hub_metrics) = hub(&[]);
    let mut flood = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&[0x49, 0x5a, 0x01]).unwrap(); // 3 bytes of a header, then nothing
        flood.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let mut honest = Raw::connect(addr);
    honest.hello("honest", json!({}));
    let (frames, closed) = honest.read_until(Kind::Welcome, SECS(5));
    let took = start.elapsed();
    let kinds: Vec<_> = frames.iter().map(|f| f.0).collect();
    let error = frames
        .iter()
        .find(|f| f.0 == Some(Kind::Error))
        .map(|f| ErrorMsg::parse(&f.1).unwrap());
    assert!(
        !closed && kinds.contains(&Some(Kind::Welcome)),
        "no WELCOME: {kinds:?} {error:?}"
    );
    eprintln!("WELCOME after {took:?} beside 1000 half-open connections");
    assert!(took < SECS(1), "WELCOME took {took:?}");
    // The flood may still be draining from the listen backlog: wait for its evictions and
    // the honest client beside them in one snapshot. (Snapshots come every 500 ms: the
    // first with the evictions may predate the join, since the flood is accepted first.)
    // (Times out, failing, if the honest client was dropped.)
    wait_for(
        "the evictions and the honest client published",
        SECS(20),
        || {
            let m = metrics(hub_metrics);
            let evicted = m["refusedConnections"]["pendingPerAddress"].as_u64() >= Some(900);
            (evicted && m["hub"]["clients"] == 1).then_some(())
        },
    );
    drop(flood);
}

#[test]
fn honest_clients_connecting_at_once_from_one_address_all_join() {
    // 48 peers behind one address start together: their HELLOs are all in the hub's
    // sockets before it reads any (it is stopped while they connect). The pending budget
    // per address (16) must not evict clients whose HELLO is there to be read.
    let (hub, addr, hub_metrics) = hub(&[]);
    hub.signal(libc::SIGSTOP);
    let mut clients: Vec<Raw> = (0..48)
        .map(|i| {
            let mut raw = Raw::connect(addr);
            raw.hello(&format!("p{i}"), json!({}));
            raw
        })
        .collect();
    hub.signal(libc::SIGCONT);
    for (i, raw) in clients.iter_mut().enumerate() {
        let (frames, closed) = raw.read_until(Kind::Welcome, SECS(5));
        let error = frames
            .iter()
            .find(|f| f.0 == Some(Kind::Error))
            .map(|f| ErrorMsg::parse(&f.1).unwrap());
        assert!(
            !closed && frames.iter().any(|f| f.0 == Some(Kind::Welcome)),
            "p{i} not WELCOMEd: {error:?}"
        );
    }
    let m = wait_for("48 clients published", SECS(10), || {
        let m = metrics(hub_metrics);
        (m["hub"]["clients"] == 48).then_some(m)
    });
    assert_eq!(m["refusedConnections"]["pendingPerAddress"], 0);
}

/// One getMetrics over a new connection; how long it took, or why it failed.
fn timed_get_metrics(addr: std::net::SocketAddr) -> Result<Duration, String> {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(SECS(3))).unwrap();
    s.write_all(b"GET /service/mixeradminclient?getMetrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("after {:?}: {e}", start.elapsed()))?;
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&raw);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v: Value = serde_json::from_str(body).map_err(|e| format!("{e}: {text}"))?;
    if v["role"] != "hub" {
        return Err(format!("not the hub's snapshot: {text}"));
    }
    Ok(took)
}

#[test]
fn get_metrics_answers_beside_256_idle_connections() {
    raise_fd_limit(4096);
    let (_hub, _, hub_metrics) = hub(&[]);
    let idle: Vec<TcpStream> = (0..256)
        .map(|_| TcpStream::connect(hub_metrics).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut times: Vec<Duration> = (0..5)
        .map(|i| timed_get_metrics(hub_metrics).unwrap_or_else(|e| panic!("request {i}: {e}")))
        .collect();
    times.sort();
    eprintln!("getMetrics beside 256 idle connections: {times:?}");
    // Typically about a millisecond; 100 ms is the goal, the bound leaves room for a
    // loaded 2-core host (the old server took seconds per idle connection).
    assert!(times[2] < Duration::from_millis(250), "median {times:?}");
    assert!(times[4] < SECS(1), "{times:?}");
    drop(idle);
}

#[test]
fn non_finite_and_subnormal_samples_are_zeroed_and_counted() {
    let (_hub, addr, hub_metrics) = hub(&[]);
    let mut raw = Raw::connect(addr);
    joined(&mut raw, "mallory");
    let mut samples = vec![0.25f32; 128];
    samples[0] = f32::NAN;
    samples[1] = f32::INFINITY;
    samples[2] = f32::NEG_INFINITY;
    samples[3] = 1e-40; // subnormal
    for seq in 0..10 {
        raw.send(&audio(0, seq, AudioFormat::F32, 64, &samples));
    }
    let c = wait_for("the samples counted", SECS(5), || {
        let c = connection(&metrics(hub_metrics), "mallory");
        (c["packetsIn"] == 10).then_some(c)
    });
    assert_eq!(c["nonFiniteSamples"], 40, "{c}");
    assert_eq!(c["connected"], true, "zeroed, not refused: {c}");
}

#[test]
fn audio_in_another_format_or_over_frames_per_packet_is_bad_audio() {
    let (_hub, addr, _) = hub(&[]);
    let mut s16 = Raw::connect(addr);
    joined(&mut s16, "s16");
    s16.send(&audio(0, 0, AudioFormat::S16, 64, &[0.0; 128]));
    let (code, closed) = s16.expect_error(SECS(5));
    assert_eq!((code.as_str(), closed), ("bad_audio", true));

    let mut big = Raw::connect(addr);
    joined(&mut big, "big");
    big.send(&audio(0, 0, AudioFormat::F32, 128, &[0.0; 256])); // HELLO said 64
    let (frames, _) = big.read_until(Kind::Error, SECS(5));
    let err = frames.iter().find(|f| f.0 == Some(Kind::Error)).unwrap();
    let msg = ErrorMsg::parse(&err.1).unwrap();
    assert_eq!(msg.code, "bad_audio");
    assert!(
        msg.message.contains("framesPerPacket 64"),
        "{}",
        msg.message
    );
}

#[test]
fn interleaved_tracks_each_count_their_own_seq() {
    let (_hub, addr, hub_metrics) = hub(&[]);
    let mut raw = Raw::connect(addr);
    joined(&mut raw, "twotracks");
    for seq in 0..20 {
        raw.send(&audio(0, seq, AudioFormat::F32, 64, &[0.0; 128]));
        raw.send(&audio(1, seq, AudioFormat::F32, 64, &[0.0; 128]));
    }
    let c = wait_for("the frames counted", SECS(5), || {
        let c = connection(&metrics(hub_metrics), "twotracks");
        (c["packetsIn"] == 40).then_some(c)
    });
    assert_eq!(c["seqGaps"], 0, "{c}");
}

/// A fake hub: accepts one peer, answers its HELLO with WELCOME, then calls `then`.
/// Returns every frame the peer sent after the WELCOME, until it closed.
fn fake_hub(then: impl FnOnce(&mut TcpStream)) -> Vec<(Option<Kind>, Vec<u8>)> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (peer_proc, _) = peer(addr, "victim", "virtual", &["--qos"]);
    let (mut sock, _) = listener.accept().unwrap();
    sock.set_read_timeout(Some(SECS(10))).unwrap();
    read_hello(&mut sock);
    let mut buf = [0u8; 4096];
    let welcome = json!({"proto":"streamproto1","session":"fake","hub":"fake/0",
        "sampleRate":48000,"channels":2,"format":"f32","framesPerPacket":64,"mix":"minus"});
    let mut out = vec![0u8; 1024];
    let n = encode_json(&mut out, Kind::Welcome, 0, 0, &welcome).unwrap();
    sock.write_all(&out[..n]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Forget what the peer sent so far (its capture).
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_millis(200) && sock.read(&mut buf).is_ok_and(|n| n > 0) {
    }
    let mut dec = Decoder::new();
    then(&mut sock);
    sock.set_read_timeout(Some(SECS(5))).unwrap();
    let mut frames = Vec::new();
    let mut synced = false;
    loop {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut rest = &buf[..n];
                // The drain above may have cut a frame: skip to the next magic once.
                if !synced {
                    let Some(i) = rest.windows(3).position(|w| w == [0x49, 0x5a, 1]) else {
                        continue;
                    };
                    rest = &rest[i..];
                    synced = true;
                }
                dec.feed(rest);
                while let Ok(Some(f)) = dec.next_frame() {
                    frames.push((f.kind(), f.payload.to_vec()));
                }
            }
        }
    }
    eprintln!("peer said:\n{}", peer_proc.output());
    frames
}

fn after_error(frames: &[(Option<Kind>, Vec<u8>)]) -> (Option<String>, Vec<Option<Kind>>) {
    let Some(i) = frames.iter().position(|f| f.0 == Some(Kind::Error)) else {
        return (None, Vec::new());
    };
    let code = ErrorMsg::parse(&frames[i].1).unwrap().code;
    (Some(code), frames[i + 1..].iter().map(|f| f.0).collect())
}

#[test]
fn a_peer_answers_a_malformed_frame_with_error_before_closing() {
    let frames = fake_hub(|s| s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap());
    let (code, after) = after_error(&frames);
    assert_eq!(code.as_deref(), Some("bad_magic"), "{:?}", frames.len());
    assert!(after.is_empty(), "frames after ERROR: {after:?}");
}

#[test]
fn nothing_follows_a_peers_error_not_even_qos() {
    let frames = fake_hub(|s| {
        // AUDIO at a rate WELCOME did not announce: bad_audio, after which a peer with
        // --qos used to queue its QOS report anyway.
        // One good frame first, so the peer has a head to report in QOS.
        s.write_all(&audio(0, 0, AudioFormat::F32, 64, &[0.0; 128]))
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let frame = procs::audio_frame(44_100, 0, 1, AudioFormat::F32, 64, &[0.0; 128]);
        s.write_all(&frame).unwrap();
    });
    let (code, after) = after_error(&frames);
    assert_eq!(code.as_deref(), Some("bad_audio"));
    assert!(after.is_empty(), "frames after ERROR: {after:?}");
}
