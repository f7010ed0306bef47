//! What a listener hears when clocks drift: one real `izyrt hub` in `loopback` mix and
//! five real peers at once, each sending a 441 Hz tone from `virtual:tone=441,skew=S`
//! (S = 0, the control, then +100, −100, +500, −500 ppm) and recording what its speaker
//! plays (`--record`). After `IZYRT_BENCH_SECS` (default 60) seconds each recording's
//! first `IZYRT_BENCH_SECS` seconds are measured by `izyrt::measure::tone_glitches` (the
//! detector behind `izyrt glitches`): steps, holes and events per minute, independent of
//! the engine's own counters, which are printed beside them: the peer's clock-ratio
//! estimate (`clockRatioPpm`: at the end, at 30 s, and its largest distance from the true
//! −S over every sample from 30 s on) and `resampleRatio` when it publishes them, its speaker
//! latency sampled every 200 ms (mean and p99), its speaker misses
//! (`speakerScriptProcessorIncomingBufferMisses`, summed over its resets) and jitter
//! buffer counters, its RT threads' device xruns, and the hub's jitter buffer counters
//! for that peer (the hub's own xruns, heard by every peer, once below the table). A
//! device xrun is a cut no concealment sees: on this host, where the five peers' threads
//! wake late now and then, it is where events come from that no miss explains.
//!
//! All five share the host, so the control sees the same host noise as the others: a
//! skewed peer's events are drift only beyond the control's.
//!
//! `cargo bench --bench glitch`; `IZYRT_BENCH_SECS` (default 60); `IZYRT_BENCH_BIN` runs
//! another `izyrt` binary instead of this build's (an older build, as a control);
//! `IZYRT_BENCH_PERIODS` sets every device's buffer in periods (default 2).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use izyrt::measure::{GlitchConfig, tone_glitches};
use serde_json::Value;

const SKEWS: [i32; 5] = [0, 100, -100, 500, -500];

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

/// getMetrics of `addr`, or `None` when it does not answer within a second.
fn get(addr: SocketAddr) -> Option<Value> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(
        s,
        "GET /service/mixeradminclient?getMetrics HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    serde_json::from_str(raw.split_once("\r\n\r\n")?.1).ok()
}

/// A real `izyrt` process; interrupted (so that its recording is finalised) when dropped.
struct Proc(Child);

impl Proc {
    /// Starts `izyrt ARGS` and returns it with the addresses after each of `markers` in
    /// what it prints (`listening on `, `metrics:   `).
    fn start(args: &[&str], markers: &[&str]) -> (Proc, Vec<SocketAddr>) {
        let bin = std::env::var("IZYRT_BENCH_BIN").unwrap_or(env!("CARGO_BIN_EXE_izyrt").into());
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut found: Vec<Option<SocketAddr>> = vec![None; markers.len()];
        let until = Instant::now() + Duration::from_secs(20);
        while found.iter().any(Option::is_none) {
            let line = rx
                .recv_timeout(until.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("izyrt {args:?} did not print {markers:?}"));
            for (m, f) in markers.iter().zip(&mut found) {
                if let Some((_, rest)) = line.split_once(m) {
                    let rest = rest.trim_start_matches("http://");
                    *f = f.or(rest.split([' ', '/']).next().and_then(|a| a.parse().ok()));
                }
            }
        }
        std::thread::spawn(move || for _ in rx {}); // keep draining its stderr
        (Proc(child), found.into_iter().flatten().collect())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first `key` in a peer's snapshot: at the top, else in its own connection object;
/// `None` when absent or null.
fn find(m: &Value, key: &str) -> Option<f64> {
    m.get(key).and_then(Value::as_f64).or_else(|| {
        m["connections"]
            .as_object()?
            .values()
            .find_map(|c| c.get(key).and_then(Value::as_f64))
    })
}

/// The xruns of every RT thread of a process (its `realtime` entries): periods its
/// devices skipped because the thread woke late, heard as a cut whatever the engine does.
fn rt_xruns(m: &Value) -> Option<u64> {
    let threads = m.get("realtime")?.as_object()?;
    Some(threads.values().filter_map(|t| t["xruns"].as_u64()).sum())
}

/// What was sampled from one peer over the run.
#[derive(Default)]
struct Samples {
    latency: Vec<f64>,
    /// The clock estimate over the run: (seconds since the start, ppm).
    estimates: Vec<(f64, f64)>,
    /// Speaker misses, summed over the counter's resets.
    misses: u64,
    last_misses: u64,
    /// The latest getMetrics.
    last: Option<Value>,
}

impl Samples {
    fn add(&mut self, m: Value, at_s: f64) {
        if let Some(ppm) = find(&m, "clockRatioPpm") {
            self.estimates.push((at_s, ppm));
        }
        if let Some(l) = m["speakerScriptProcessorLatencyMS"].as_f64() {
            self.latency.push(l);
        }
        if let Some(n) = m["speakerScriptProcessorIncomingBufferMisses"].as_u64() {
            // The counter resets on silence: a drop means it started again from 0.
            self.misses += if n >= self.last_misses {
                n - self.last_misses
            } else {
                n
            };
            self.last_misses = n;
        }
        self.last = Some(m);
    }

    fn latency(&self) -> (String, String) {
        let mut v = self.latency.clone();
        if v.is_empty() {
            return ("n/a".into(), "n/a".into());
        }
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let p99 = v[((v.len() - 1) as f64 * 0.99).round() as usize];
        (format!("{mean:.2}"), format!("{p99:.2}"))
    }

    /// The estimate at the first sample from `ESTIMATE_FROM_S` on, and the largest error
    /// against `truth` over every sample from then on.
    fn estimate_after(&self, truth: f64) -> (String, String) {
        let later: Vec<f64> = self
            .estimates
            .iter()
            .filter(|(at, _)| *at >= ESTIMATE_FROM_S)
            .map(|(_, ppm)| *ppm)
            .collect();
        let Some(first) = later.first() else {
            return ("n/a".into(), "n/a".into());
        };
        let worst = later.iter().map(|p| (p - truth).abs()).fold(0.0, f64::max);
        (format!("{first:.1}"), format!("{worst:.1}"))
    }

    fn figure(&self, key: &str, digits: usize) -> String {
        self.last
            .as_ref()
            .and_then(|m| find(m, key))
            .map_or("n/a".into(), |v| format!("{v:.digits$}"))
    }
}

/// From when the clock estimate is held to the bound (within 5 ppm), s.
const ESTIMATE_FROM_S: f64 = 30.0;

/// The user name of the peer at `skew`.
fn user(skew: i32) -> String {
    match skew {
        0 => "control".into(),
        s if s > 0 => format!("fast{s}"),
        s => format!("slow{}", -s),
    }
}

/// Steps, holes, events and events per minute in the first `secs` of `path`.
fn measure(path: &Path, secs: u64) -> Result<(usize, usize, usize, f64, f64), String> {
    let (info, mut samples) = izyrt::file::decode(path).map_err(|e| e.to_string())?;
    let keep = secs as usize * info.rate as usize * usize::from(info.channels);
    samples.truncate(keep);
    let r = tone_glitches(
        &samples,
        usize::from(info.channels),
        info.rate,
        &GlitchConfig {
            freq_hz: Some(441.0),
            ..GlitchConfig::default()
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((
        r.steps,
        r.holes,
        r.events.len(),
        r.events_per_minute(),
        r.seconds(),
    ))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list
    }
    let secs: u64 = env("IZYRT_BENCH_SECS").unwrap_or(60).max(2);
    // Device buffers of every process: a virtual device whose thread wakes a buffer late
    // skips periods (an xrun, as a card would), which on a host that stalls is heard in
    // every row alike.
    let periods = env::<u32>("IZYRT_BENCH_PERIODS").unwrap_or(2).to_string();
    let dir = std::env::temp_dir().join(format!("izyrt-bench-glitch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (hub, hub_addrs) = Proc::start(
        &[
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--mix",
            "loopback",
            "--periods",
            &periods,
        ],
        &["listening on ", "metrics:   "],
    );
    let (hub_at, hub_metrics) = (hub_addrs[0].to_string(), hub_addrs[1]);
    let mut peers: Vec<(i32, Proc, SocketAddr, PathBuf)> = Vec::new();
    for skew in SKEWS {
        let wav = dir.join(format!("{}.wav", user(skew)));
        let device = format!("virtual:tone=441,skew={skew}");
        let (p, a) = Proc::start(
            &[
                "peer",
                "--hub",
                &hub_at,
                "--user",
                &user(skew),
                "--device",
                &device,
                "--metrics",
                "127.0.0.1:0",
                "--record",
                wav.to_str().unwrap(),
                "--periods",
                &periods,
            ],
            &["metrics:   "],
        );
        peers.push((skew, p, a[0], wav));
    }
    let mut samples: Vec<Samples> = peers.iter().map(|_| Samples::default()).collect();
    let start = Instant::now();
    let mut tick = 1;
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(
            (start + Duration::from_millis(200 * tick)).saturating_duration_since(Instant::now()),
        );
        tick += 1;
        for ((_, _, addr, _), s) in peers.iter().zip(&mut samples) {
            if let Some(m) = get(*addr) {
                s.add(m, start.elapsed().as_secs_f64());
            }
        }
    }
    let hub_m = get(hub_metrics).unwrap_or(Value::Null);
    let wavs: Vec<(i32, PathBuf)> = peers.iter().map(|(s, _, _, w)| (*s, w.clone())).collect();
    drop(peers); // interrupted: their recordings are finalised
    drop(hub);
    println!(
        "| skew ppm | events/min | events | steps | holes | s analysed | clockRatioPpm | at 30 s | largest error from 30 s | resampleRatio | speaker latency mean ms | speaker latency p99 ms | speaker misses (getMetrics, summed) | peer missesTotal | peer jitterDroppedFrames | peer RT xruns | hub jitterMisses | hub jitterDroppedFrames | hub driftPpm (senderLocked) |"
    );
    println!(
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut control = None;
    for ((skew, wav), s) in wavs.iter().zip(&samples) {
        let (mean, p99) = s.latency();
        // The truth: the device runs `skew` fast, so the hub's clock reads −skew against it.
        let (at_30, worst) = s.estimate_after(-f64::from(*skew));
        let hub_user = &hub_m["connections"][user(*skew)];
        let hub_figure = |k: &str| hub_user[k].as_u64().map_or("n/a".into(), |v| v.to_string());
        // The hub's view of the sender's clock: near 0 and locked for every izyrt peer.
        let hub_drift = format!(
            "{} ({})",
            hub_user["driftPpm"]
                .as_f64()
                .map_or("n/a".into(), |v| format!("{v:.1}")),
            hub_user["senderLocked"]
        );
        let glitches = match measure(wav, secs) {
            Ok((steps, holes, events, per_min, analysed)) => {
                if *skew == 0 {
                    control = Some(per_min);
                }
                format!("{per_min:.1} | {events} | {steps} | {holes} | {analysed:.1}")
            }
            Err(why) => format!("failed: {why} | | | |"),
        };
        let skew = if *skew == 0 {
            "0 (control)".to_string()
        } else {
            format!("{skew:+}")
        };
        println!(
            "| {skew} | {glitches} | {} | {at_30} | {worst} | {} | {mean} | {p99} | {} | {} | {} | {} | {} | {} | {hub_drift} |",
            s.figure("clockRatioPpm", 1),
            s.figure("resampleRatio", 6),
            s.misses,
            s.figure("missesTotal", 0),
            s.figure("jitterDroppedFrames", 0),
            s.last
                .as_ref()
                .and_then(rt_xruns)
                .map_or("n/a".into(), |n| n.to_string()),
            hub_figure("jitterMisses"),
            hub_figure("jitterDroppedFrames"),
        );
    }
    println!();
    match control {
        Some(c) => println!("- control (skew 0): {c:.1} events/min"),
        None => println!("- control (skew 0): not measured"),
    }
    match rt_xruns(&hub_m) {
        Some(n) => {
            println!("- hub RT xruns: {n} (the hub's device skipped periods: heard by every peer)")
        }
        None => println!("- hub RT xruns: not read"),
    }
    println!(
        "- run-to-run noise is to be judged against the control: the five peers share the host, \
         so only events beyond the control's are the drift's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
