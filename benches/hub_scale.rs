//! Hub scale: N simulated peers from this one load-generator process, over real TCP
//! sockets on loopback, against a real `izyrt hub` process: stereo f32 at 64-frame
//! periods (750 packets a second each), every peer also reading its mix. For each N the
//! hub runs `IZYRT_BENCH_SECS` (default 30) after a 5 s warm-up; reported: the misses of
//! all its jitter buffers and its mixer's xruns over that time, its CPU time per peer per
//! period, its RSS. The largest N with zero misses is the figure.
//!
//! `cargo bench --bench hub_scale`; `IZYRT_BENCH_PEERS` (default `16,32,64,128,192,256`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use izyrt::rt::clock::{PeriodClock, now_ns};
use izyrt::wire::{AudioFormat, AudioHeader, Kind, Samples, encode_audio, encode_json};
use serde_json::{Value, json};

const PERIOD: u32 = 64;
const RATE: u32 = 48_000;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

fn get(addr: SocketAddr) -> Value {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /service/mixeradminclient?getMetrics HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

struct HubProc(Child);

impl Drop for HubProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the hub; returns it with its stream and metrics addresses.
fn start_hub(max: usize) -> (HubProc, SocketAddr, SocketAddr) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .args(["hub", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .args(["--max-clients", &max.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    let mut metrics = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let after = |m: &str| {
            line.split_once(m).map(|(_, r)| {
                r.trim_start_matches("http://")
                    .split([' ', '/'])
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
        };
        addr = addr.or(after("listening on "));
        metrics = metrics.or(after("metrics:   "));
        if addr.is_some() && metrics.is_some() {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {}); // keep draining its stderr
    (HubProc(child), addr.unwrap(), metrics.unwrap())
}

/// One simulated peer's socket, joined.
fn join(addr: SocketAddr, user: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let hello = json!({"proto":"streamproto1","role":"peer","user":user,"sampleRate":RATE,
        "channels":2,"format":"f32","framesPerPacket":PERIOD});
    let mut buf = [0u8; 512];
    let n = encode_json(&mut buf, Kind::Hello, 0, 0, &hello).unwrap();
    s.write_all(&buf[..n]).unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// Sends a packet per peer per period on an absolute clock until `stop`; counts sends
/// that would have blocked.
fn sender(mut socks: Vec<TcpStream>, stop: Arc<AtomicBool>, blocked: Arc<AtomicU64>) {
    let samples: Vec<f32> = (0..PERIOD * 2)
        .map(|i| (i as f32 * 0.05).sin() * 0.25)
        .collect();
    let mut frame = vec![0u8; 1024];
    let mut clock = PeriodClock::new(RATE, PERIOD, 0.0).unwrap();
    clock.start();
    let mut seq = 0u32;
    while !stop.load(Ordering::Relaxed) {
        clock.wait();
        let h = AudioHeader {
            sample_rate: RATE,
            channels: 2,
            format: AudioFormat::F32,
            frames: PERIOD,
            position: u64::from(seq) * u64::from(PERIOD),
            origin_ns: now_ns(),
            echo_ns: 0,
        };
        let n = encode_audio(&mut frame, 0, seq, &h, Samples::F32(&samples)).unwrap();
        for s in &mut socks {
            if s.write_all(&frame[..n]).is_err() {
                blocked.fetch_add(1, Ordering::Relaxed);
            }
        }
        seq = seq.wrapping_add(1);
    }
}

/// Drains every socket's mix until `stop`.
fn reader(mut socks: Vec<TcpStream>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut any = false;
        for s in &mut socks {
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                any = true;
            }
        }
        if !any {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

fn misses(m: &Value) -> u64 {
    m["connections"]
        .as_object()
        .map(|c| c.values().filter_map(|u| u["jitterMisses"].as_u64()).sum())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = env("IZYRT_BENCH_SECS").unwrap_or(30);
    let counts: Vec<usize> = std::env::var("IZYRT_BENCH_PEERS")
        .unwrap_or_else(|_| "16,32,64,128,192,256".into())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    println!(
        "| peers | misses | mixer xruns | blocked sends | hub CPU µs per peer per period | hub CPU % | hub RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut best = 0;
    for n in counts {
        let (hub, addr, metrics) = start_hub(n);
        let pid = hub.0.id();
        let socks: Vec<TcpStream> = (0..n).map(|i| join(addr, &format!("load{i}"))).collect();
        let readers: Vec<TcpStream> = socks.iter().map(|s| s.try_clone().unwrap()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let blocked = Arc::new(AtomicU64::new(0));
        let tx = {
            let (stop, blocked) = (Arc::clone(&stop), Arc::clone(&blocked));
            std::thread::spawn(move || sender(socks, stop, blocked))
        };
        let rx = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || reader(readers, stop))
        };
        std::thread::sleep(Duration::from_secs(5));
        let m0 = get(metrics);
        let (cpu0, t0, blocked0) = (
            cpu_seconds(pid),
            Instant::now(),
            blocked.load(Ordering::Relaxed),
        );
        std::thread::sleep(Duration::from_secs(secs));
        let m1 = get(metrics);
        let (cpu, wall) = (cpu_seconds(pid) - cpu0, t0.elapsed().as_secs_f64());
        let rss = rss_mib(pid);
        stop.store(true, Ordering::Relaxed);
        let _ = tx.join();
        let _ = rx.join();
        let joined = m1["hub"]["clients"].as_u64().unwrap_or(0);
        let missed = misses(&m1).saturating_sub(misses(&m0));
        let xruns = |m: &Value| {
            m["realtime"]["izyrt-hub-mixer"]["xruns"]
                .as_u64()
                .unwrap_or(0)
        };
        let periods = wall * f64::from(RATE) / f64::from(PERIOD);
        println!(
            "| {n}{} | {missed} | {} | {} | {:.2} | {:.0} | {rss:.0} |",
            if joined as usize == n {
                String::new()
            } else {
                format!(" ({joined} joined)")
            },
            xruns(&m1) - xruns(&m0),
            blocked.load(Ordering::Relaxed) - blocked0,
            cpu * 1e6 / (n as f64 * periods),
            100.0 * cpu / wall,
        );
        if missed == 0 && joined as usize == n {
            best = n;
        }
        drop(hub);
    }
    println!("\nlargest N served with zero misses: {best}");
}
