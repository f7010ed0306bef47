//! Long runs against real processes (issue 20's "measured, not assumed"), `#[ignore]`d:
//! `scripts/soak` runs them (release build, `nice`d) and prints their tables.
//!
//! - [`soak`]: a hub, 16 peers on `virtual` and a monitor for `IZYRT_SOAK_MINUTES`
//!   (default 10); every `IZYRT_SOAK_SAMPLE_SECS` (10) the hub's RSS (`VmRSS`), its open
//!   descriptors (`/proc/PID/fd`) and how long its getMetrics took. After the warm-up
//!   (`IZYRT_SOAK_WARMUP_SECS`, 60) RSS and descriptors must stay flat: the last sample at
//!   most [`RSS_SLACK_KIB`] and [`FD_SLACK`] above the first; every client still joined
//!   and nothing refused.
//! - [`hostile`]: an honest peer (on `virtual:silence`) hears a second peer's 441 Hz tone
//!   through a hub (its `minus` mix: the hostile clients' audio too) and records it, for
//!   three windows of `IZYRT_SOAK_WINDOW_SECS` (60):
//!   a control, an attack (the clients of issue 20's "Why", below), a second control.
//!   Each window's audible events per minute (`izyrt glitches`' detector), the peer's
//!   speaker misses and the hub's getMetrics latency are printed side by side; the two
//!   controls' difference is this host's noise, and the verdict says whether the attack
//!   window was worse than the controls beyond it. The figures are printed, not asserted:
//!   they are times on a shared machine (the test asserts only that the hub kept serving,
//!   the honest peer stayed joined and heard no peak above half scale: the tone is at
//!   −12 dBFS). `IZYRT_SOAK_ATTACKS` (comma-separated names of the attack functions
//!   below, default all) runs some of them; `IZYRT_SOAK_ATTACK_CPU=N` keeps them on CPU N.
#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use izyrt::measure::{GlitchConfig, tone_glitches};
use izyrt::wire::{AudioFormat, Kind};
use procs::{Proc, Raw, hub, peer, scratch};
use serde_json::{Value, json};

/// How far the hub's RSS may rise from the first sample after warm-up to the last, KiB.
const RSS_SLACK_KIB: u64 = 2048;
/// How many descriptors more the last sample may hold than the first (a metrics
/// connection being answered when sampled).
const FD_SLACK: u64 = 2;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `VmRSS` of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Open descriptors of `pid`.
fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// getMetrics of `addr` and how long it took, ms (`None`: no answer within 2 s).
fn timed_metrics(addr: SocketAddr) -> (Option<Value>, f64) {
    let start = Instant::now();
    let get = || -> Option<Value> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            s,
            "GET /service/mixeradminclient?getMetrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        serde_json::from_str(raw.split_once("\r\n\r\n")?.1).ok()
    };
    let v = get();
    (v, start.elapsed().as_secs_f64() * 1e3)
}

/// The p50 and max of `v` (`NaN` when empty).
fn p50_max(v: &[f64]) -> (f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (v[v.len() / 2], v[v.len() - 1])
}

/// One sample of the hub's resources.
struct Sample {
    at_s: u64,
    rss_kib: u64,
    fds: u64,
    metrics_ms: f64,
    answered: bool,
}

#[test]
#[ignore = "a 10-minute soak: scripts/soak"]
fn soak() {
    let minutes = env("IZYRT_SOAK_MINUTES", 10);
    let every = env("IZYRT_SOAK_SAMPLE_SECS", 10).max(1);
    let warmup = env("IZYRT_SOAK_WARMUP_SECS", 60);
    let (hub_proc, addr, hub_metrics) = hub(&[]);
    let pid = hub_proc.child.id();
    let users: Vec<String> = (0..16).map(|i| format!("soak{i:02}")).collect();
    // Started at once and judged by the hub (a loaded host may take longer than a
    // test's usual 20 s to bring 17 processes up).
    let hub_at = addr.to_string();
    let client = |role: &str, user: &str, extra: &[&str]| {
        let base = [role, "--hub", &hub_at, "--user", user];
        let tail = ["--metrics", "127.0.0.1:0", "--periods", procs::PERIODS];
        Proc::start(user, &[&base[..], extra, &tail[..]].concat())
    };
    let mut clients: Vec<Proc> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let device = format!("virtual:tone={}", 300 + 20 * i);
            client("peer", u, &["--device", &device])
        })
        .collect();
    clients.push(client("monitor", "soakmonitor", &[]));
    let joined = |m: &Value| {
        users
            .iter()
            .filter(|u| m["connections"][u.as_str()]["connected"] == json!(true))
            .count()
    };
    procs::wait_for("16 peers joined", Duration::from_secs(300), || {
        let m = timed_metrics(hub_metrics).0?;
        (joined(&m) == 16).then_some(())
    });
    let start = Instant::now();
    let end = Duration::from_secs(minutes * 60);
    let mut samples = Vec::new();
    let mut tick = 0;
    println!("| s | hub RSS KiB | hub fds | getMetrics ms |");
    println!("|---:|---:|---:|---:|");
    loop {
        let (m, ms) = timed_metrics(hub_metrics);
        let s = Sample {
            at_s: start.elapsed().as_secs(),
            rss_kib: rss_kib(pid),
            fds: fds(pid),
            metrics_ms: ms,
            answered: m.is_some(),
        };
        println!(
            "| {} | {} | {} | {:.2}{} |",
            s.at_s,
            s.rss_kib,
            s.fds,
            s.metrics_ms,
            if s.answered { "" } else { " (no answer)" }
        );
        samples.push(s);
        if start.elapsed() >= end {
            break;
        }
        tick += 1;
        std::thread::sleep(
            (start + Duration::from_secs(every * tick)).saturating_duration_since(Instant::now()),
        );
    }
    let hub_m = timed_metrics(hub_metrics).0.unwrap_or(Value::Null);
    let mut steady: Vec<&Sample> = samples.iter().filter(|s| s.at_s >= warmup).collect();
    if steady.is_empty() {
        steady = samples.iter().collect(); // a run shorter than its warm-up
    }
    let (first, last) = (steady[0], steady[steady.len() - 1]);
    let max_rss = steady.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let max_fds = steady.iter().map(|s| s.fds).max().unwrap_or(0);
    let ms: Vec<f64> = samples.iter().map(|s| s.metrics_ms).collect();
    let (p50, worst) = p50_max(&ms);
    let unanswered = samples.iter().filter(|s| !s.answered).count();
    let joined = joined(&hub_m);
    let refused = hub_m["refusedConnections"]["total"].as_u64().unwrap_or(0);
    println!();
    println!(
        "soak: {minutes} min, {} samples; after {warmup} s warm-up: RSS first {} / last {} / max {} KiB; \
         fds first {} / last {} / max {}; getMetrics p50 {p50:.2} ms, max {worst:.2} ms, unanswered {unanswered}; \
         peers joined at the end {joined}/16; refused connections {refused}",
        samples.len(),
        first.rss_kib,
        last.rss_kib,
        max_rss,
        first.fds,
        last.fds,
        max_fds,
    );
    drop(clients);
    assert!(
        last.rss_kib <= first.rss_kib + RSS_SLACK_KIB,
        "RSS grew from {} to {} KiB",
        first.rss_kib,
        last.rss_kib
    );
    assert!(
        last.fds <= first.fds + FD_SLACK,
        "fds grew from {} to {}",
        first.fds,
        last.fds
    );
    assert_eq!(unanswered, 0, "getMetrics went unanswered");
    assert_eq!(joined, 16, "peers dropped out");
    assert_eq!(refused, 0, "the hub refused a connection");
}

/// The hostile clients of one attack window, each on its own thread until `stop`.
struct Attack {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Connections opened by all of them.
    opened: Arc<AtomicU64>,
}

impl Attack {
    fn start(hub: SocketAddr, hub_metrics: SocketAddr) -> Attack {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        // IZYRT_SOAK_ATTACKS picks some (one at a time shows which one costs);
        // IZYRT_SOAK_ATTACK_CPU keeps them on one CPU (the host's cost of an attacker
        // elsewhere stays off the hub's other CPU).
        let wanted = std::env::var("IZYRT_SOAK_ATTACKS").unwrap_or_default();
        let cpu: Option<usize> = std::env::var("IZYRT_SOAK_ATTACK_CPU")
            .ok()
            .and_then(|v| v.parse().ok());
        let mut spawn = |name: &str, f: fn(SocketAddr, &AtomicBool, &AtomicU64), to: SocketAddr| {
            if !wanted.is_empty() && !wanted.split(',').any(|w| w.trim() == name) {
                return;
            }
            let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
            threads.push(std::thread::spawn(move || {
                if let Some(cpu) = cpu {
                    // A CPU that cannot be had leaves the attacker unpinned.
                    let _ = izyrt::rt::promote::pin_current_thread(cpu);
                }
                f(to, &stop, &opened)
            }));
        };
        spawn("idle_metrics", idle_metrics, hub_metrics);
        spawn("half_open_flood", half_open_flood, hub);
        spawn("poisoned_audio", poisoned_audio, hub);
        spawn("malformed", malformed, hub);
        spawn("connect_fail_loop", connect_fail_loop, hub);
        spawn("never_reads", never_reads, hub);
        Attack {
            stop,
            threads,
            opened,
        }
    }

    /// Stops every client; returns the connections they opened.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.opened.load(Ordering::Relaxed)
    }
}

fn connect(to: SocketAddr, opened: &AtomicU64) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&to, Duration::from_secs(1)).ok()?;
    opened.fetch_add(1, Ordering::Relaxed);
    Some(s)
}

/// 64 connections to the metrics port that send nothing, renewed when closed.
fn idle_metrics(to: SocketAddr, stop: &AtomicBool, opened: &AtomicU64) {
    let mut held: Vec<TcpStream> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        held.retain(|s| {
            let mut b = [0u8; 1];
            s.set_nonblocking(true).is_ok()
                && matches!((&*s).read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        });
        while held.len() < 64 {
            match connect(to, opened) {
                Some(s) => held.push(s),
                None => break,
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// 300 connections that send three bytes of a header and wait, renewed every 5 s.
fn half_open_flood(to: SocketAddr, stop: &AtomicBool, opened: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        let mut held = Vec::new();
        for _ in 0..300 {
            if let Some(mut s) = connect(to, opened) {
                let _ = s.write_all(&[0x49, 0x5a, 0x01]);
                held.push(s);
            }
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A joined peer whose AUDIO carries NaN, ±Inf and subnormals at full rate.
fn poisoned_audio(to: SocketAddr, stop: &AtomicBool, opened: &AtomicU64) {
    let mut samples = [0.0f32; 128];
    for (i, x) in samples.iter_mut().enumerate() {
        *x = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40, -1e-42][i % 5];
    }
    while !stop.load(Ordering::Relaxed) {
        opened.fetch_add(1, Ordering::Relaxed);
        let Ok(sock) = TcpStream::connect(to) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let mut raw = Raw::from_stream(sock);
        raw.hello("nan", json!({}));
        let _ = raw.read_until(Kind::Welcome, Duration::from_secs(2));
        let _ = raw.sock.set_read_timeout(Some(Duration::from_millis(1)));
        let start = Instant::now();
        let mut seq = 0u32;
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(20) {
            // One 64-frame packet per 1.333 ms of stream, sent 8 at a time.
            let due = (start.elapsed().as_secs_f64() * 48_000.0 / 64.0) as u32;
            while seq < due {
                raw.send(&procs::audio_frame(
                    48_000,
                    0,
                    seq,
                    AudioFormat::F32,
                    64,
                    &samples,
                ));
                seq += 1;
            }
            let mut sink = [0u8; 65_536];
            for _ in 0..8 {
                if !matches!((&raw.sock).read(&mut sink), Ok(n) if n > 0) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Clients that join and then send garbage, an oversize frame, or AUDIO off the agreed
/// stream, in a loop.
fn malformed(to: SocketAddr, stop: &AtomicBool, opened: &AtomicU64) {
    let mut round = 0u32;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let Some(sock) = connect(to, opened) else {
            continue;
        };
        let mut raw = Raw::from_stream(sock);
        raw.hello(&format!("bad{}", round % 4), json!({}));
        let _ = raw.read_until(Kind::Welcome, Duration::from_millis(500));
        match round % 4 {
            0 => raw.send(&[0xff; 4096]),
            1 => {
                // A header announcing a 1 GiB payload.
                let mut f = procs::audio_frame(48_000, 0, 0, AudioFormat::F32, 64, &[0.0; 128]);
                f[12..16].copy_from_slice(&(1u32 << 30).to_le_bytes());
                raw.send(&f);
            }
            2 => raw.send(&procs::audio_frame(
                44_100,
                0,
                0,
                AudioFormat::F32,
                64,
                &[0.1; 128],
            )),
            _ => raw.send(&procs::audio_frame(
                48_000,
                0,
                0,
                AudioFormat::F32,
                512,
                &[0.1; 1024],
            )),
        }
        let _ = raw.read_until(Kind::Bye, Duration::from_millis(200));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects and disconnects in a loop: at once, after a HELLO with a wrong protocol, and
/// after a valid HELLO.
fn connect_fail_loop(to: SocketAddr, stop: &AtomicBool, opened: &AtomicU64) {
    let mut round = 0u32;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let Some(sock) = connect(to, opened) else {
            continue;
        };
        match round % 3 {
            0 => drop(sock),
            1 => Raw::from_stream(sock).hello("loop", json!({"proto": "streamproto0"})),
            _ => Raw::from_stream(sock).hello("loop", json!({})),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A joined peer that never reads its mix.
fn never_reads(to: SocketAddr, stop: &AtomicBool, opened: &AtomicU64) {
    let mut held = None;
    while !stop.load(Ordering::Relaxed) {
        if held.is_none() {
            if let Some(sock) = connect(to, opened) {
                let mut raw = Raw::from_stream(sock);
                raw.hello("deaf", json!({}));
                held = Some(raw);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Audible events per minute, events and the peak sample in `[from_s, to_s)` of `total_s`
/// of wall time, in a recording of a 441 Hz tone that spans them. A starved recorder or
/// device holds less audio than wall time passed: the windows are placed in proportion.
fn events_per_minute(
    path: &Path,
    from_s: f64,
    to_s: f64,
    total_s: f64,
) -> Result<(f64, usize, f32), String> {
    let (info, samples) = izyrt::file::decode(path).map_err(|e| e.to_string())?;
    let ch = usize::from(info.channels);
    let frames = samples.len() / ch.max(1);
    let frame = |s: f64| ((s / total_s * frames as f64) as usize * ch).min(samples.len());
    let window = &samples[frame(from_s)..frame(to_s)];
    let peak = window.iter().fold(0.0f32, |m, x| {
        if x.is_finite() {
            m.max(x.abs())
        } else {
            f32::INFINITY
        }
    });
    let r = tone_glitches(
        window,
        ch,
        info.rate,
        &GlitchConfig {
            freq_hz: Some(441.0),
            ..GlitchConfig::default()
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((r.events_per_minute(), r.events.len(), peak))
}

/// What one window showed.
struct Window {
    name: &'static str,
    from_s: f64,
    to_s: f64,
    metrics_ms: Vec<f64>,
    unanswered: usize,
    misses: u64,
    /// The hub's misses of the tone's stream (its input, before the mix).
    hub_misses: u64,
}

#[test]
#[ignore = "a 3-window hostile run: scripts/soak hostile"]
fn hostile() {
    let secs = env("IZYRT_SOAK_WINDOW_SECS", 60).max(10);
    let dir = scratch("hostile");
    let wav = dir.join("honest.wav");
    // The listener hears everyone but itself: the tone, and whatever the hostile clients
    // manage to put into the mix.
    let (_hub, addr, hub_metrics) = hub(&[]);
    let (_tone, _) = peer(addr, "tone", "virtual:tone=441", &[]);
    let (mut honest, honest_metrics) = peer(
        addr,
        "honest",
        "virtual:silence",
        &["--record", wav.to_str().unwrap()],
    );
    // The recording starts with the peer's first period, within a second of here.
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let misses_total = || {
        procs::metrics(honest_metrics)["connections"]
            .as_object()
            .and_then(|c| c.values().find_map(|v| v["missesTotal"].as_u64()))
            .unwrap_or(0)
    };
    let tone_hub_misses = || {
        procs::metrics(hub_metrics)["sessions"]["tone"]["hubMisses"]
            .as_u64()
            .unwrap_or(0)
    };
    let mut windows = Vec::new();
    let mut opened = 0;
    for (name, attack) in [("control", false), ("attack", true), ("control 2", false)] {
        let from_s = t0.elapsed().as_secs_f64();
        let misses0 = misses_total();
        let hub_misses0 = tone_hub_misses();
        let running = attack.then(|| Attack::start(addr, hub_metrics));
        let mut w = Window {
            name,
            from_s,
            to_s: 0.0,
            metrics_ms: Vec::new(),
            unanswered: 0,
            misses: 0,
            hub_misses: 0,
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            let (m, ms) = timed_metrics(hub_metrics);
            w.metrics_ms.push(ms);
            w.unanswered += usize::from(m.is_none());
            std::thread::sleep(
                Duration::from_secs(1).saturating_sub(Duration::from_secs_f64(ms / 1e3)),
            );
        }
        w.to_s = t0.elapsed().as_secs_f64();
        if let Some(a) = running {
            opened = a.stop(); // its wind-down falls between the windows
        }
        w.misses = misses_total().saturating_sub(misses0);
        w.hub_misses = tone_hub_misses().saturating_sub(hub_misses0);
        windows.push(w);
    }
    let still_joined =
        procs::metrics(hub_metrics)["connections"]["honest"]["connected"] == json!(true);
    let total_s = t0.elapsed().as_secs_f64();
    honest.interrupt(Duration::from_secs(10));
    println!(
        "| window | s of the recording | events/min | events | peak | honest speaker misses | hub misses of the tone | hub getMetrics p50 ms | max ms | unanswered |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (mut rates, mut peaks) = (Vec::new(), Vec::new());
    for w in &windows {
        let (p50, max) = p50_max(&w.metrics_ms);
        let (rate, events, peak) =
            events_per_minute(&wav, w.from_s, w.to_s, total_s).unwrap_or((f64::NAN, 0, f32::NAN));
        rates.push(rate);
        peaks.push(peak);
        println!(
            "| {} | {:.0}–{:.0} | {rate:.1} | {events} | {peak:.3} | {} | {} | {p50:.2} | {max:.2} | {} |",
            w.name, w.from_s, w.to_s, w.misses, w.hub_misses, w.unanswered
        );
    }
    let (c1, a, c2) = (rates[0], rates[1], rates[2]);
    let noise = (c1 - c2).abs();
    let worse = a > c1.max(c2) + noise;
    println!();
    println!(
        "hostile: {secs} s windows; attack connections opened {opened}; controls {c1:.1} and {c2:.1} events/min \
         (noise {noise:.1}); attack {a:.1}: {}",
        if worse {
            "WORSE than the controls beyond their noise"
        } else {
            "no worse than the controls beyond their noise"
        }
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(still_joined, "the honest peer was dropped");
    // The tone plays at 0.25: NaN, Inf or a full-scale click from the poisoned AUDIO
    // would show here.
    assert!(
        peaks.iter().all(|p| *p < 0.5),
        "the listener heard a peak of {peaks:?}"
    );
    assert!(
        windows.iter().all(|w| w.unanswered == 0),
        "getMetrics went unanswered"
    );
}
