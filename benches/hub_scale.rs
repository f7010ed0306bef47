//! Hub scale: N simulated peers from this one load-generator process, over real TCP
//! sockets on loopback, against a real `izyrt hub` process: stereo f32 at 64-frame
//! periods (750 packets a second each), every peer also reading its mix. For each N the
//! hub runs `IZYRT_BENCH_SECS` (default 30) after a 5 s warm-up; reported: the misses of
//! all its jitter buffers and its mixer's xruns over that time, its CPU time per peer per
//! period, its RSS; beside them the load generator's own CPU (it shares the machine) and
//! the host's stalls in the same window, measured by an absolute-sleep loop at the
//! mixer's priority pinned to each CPU (a vCPU the hypervisor stops stalls every thread
//! on it, and only a probe on that CPU sees it; a stall longer than the jitter buffers'
//! depth is a miss whatever the hub does), and how many mixer periods the misses fell
//! in, with the most peers that missed in one period (since the hub started): misses
//! that come every peer at once have a cause the peers share. The largest N with zero
//! misses is the figure.
//!
//! `cargo bench --bench hub_scale`; `IZYRT_BENCH_PEERS` (default `16,32,64,96,128`);
//! `IZYRT_BENCH_JITTER_MIN_MS` runs the hub with that `--jitter-min-ms`;
//! `IZYRT_BENCH_BIN` runs another `izyrt` binary as the hub (an older build, to compare).
//!
//! `IZYRT_BENCH_CALLGRIND=1` runs the hub under valgrind's callgrind and prints, below
//! the table, the instructions the hub executed in user space per peer per period over
//! the window (counters zeroed when it starts, dumped when it ends, `callgrind_control`).
//! Unlike CPU time, that count is the same for the same binary and load whatever else
//! the shared machine does, so two builds compare in one run (kernel time, the TCP
//! paths, is not in it). Valgrind slows the hub about 50×: use a few peers
//! (`IZYRT_BENCH_PEERS=2`), and read the table's CPU and miss columns as valgrind's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use izyrt::net::{EventLoop, Events, Interest};
use izyrt::rt::clock::{PeriodClock, now_ns, sleep_until_ns};
use izyrt::rt::thread::{RtOptions, RtThread, spawn};
use izyrt::wire::{AudioFormat, AudioHeader, Kind, Samples, encode_audio, encode_json};
use serde_json::{Value, json};

const PERIOD: u32 = 64;
const RATE: u32 = 48_000;
const PERIOD_NS: u64 = PERIOD as u64 * 1_000_000_000 / RATE as u64;

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

/// utime + stime of a process (`/proc/PID`) or thread (`/proc/PID/task/TID`), seconds.
fn cpu_seconds(proc_dir: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Resident memory of the process under `proc_dir` (`/proc/PID`), MiB.
fn rss_mib(proc_dir: &str) -> f64 {
    let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap_or_default();
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
/// Under callgrind, dumps go to `dir` (`IZYRT_BENCH_CALLGRIND`).
fn start_hub(max: usize, callgrind: Option<&str>) -> (HubProc, SocketAddr, SocketAddr) {
    use std::io::BufRead;
    let bin = std::env::var("IZYRT_BENCH_BIN").unwrap_or(env!("CARGO_BIN_EXE_izyrt").into());
    let mut cmd = match callgrind {
        Some(dir) => {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={dir}/hub.%p"))
                .arg(format!("--log-file={dir}/valgrind.%p.log"))
                .arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(["hub", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .args(["--max-clients", &max.to_string()]);
    if let Some(ms) = env::<u32>("IZYRT_BENCH_JITTER_MIN_MS") {
        cmd.args(["--jitter-min-ms", &ms.to_string()]);
    }
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
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

/// Sends a packet per peer per period on an absolute clock until `stop`, on a
/// `SCHED_FIFO` thread below the hub's (a real peer sends from its RT capture thread, so
/// the hub, not this process's scheduling, is what is measured); counts sends that would
/// have blocked and periods whose last packet left more than a period after its deadline
/// (the generator, not the hub, was late: a miss that is not the hub's).
fn sender(mut socks: Vec<TcpStream>, stop: Arc<AtomicBool>, stats: Arc<SendStats>) {
    let samples: Vec<f32> = (0..PERIOD * 2)
        .map(|i| (i as f32 * 0.05).sin() * 0.25)
        .collect();
    let mut frame = vec![0u8; 1024];
    let mut clock = PeriodClock::new(RATE, PERIOD, 0.0).unwrap();
    clock.start();
    let mut seq = 0u32;
    while !stop.load(Ordering::Relaxed) {
        clock.wait();
        for s in &mut socks {
            // Stamped per peer, as each real peer stamps its own send.
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
            if s.write_all(&frame[..n]).is_err() {
                stats.blocked.fetch_add(1, Ordering::Relaxed);
            }
        }
        let late = now_ns().saturating_sub(clock.deadline_ns(clock.index()));
        stats.worst.fetch_max(late, Ordering::Relaxed);
        if late > PERIOD_NS {
            stats.late.fetch_add(1, Ordering::Relaxed);
        }
        seq = seq.wrapping_add(1);
    }
}

/// What the sender counts.
#[derive(Default)]
struct SendStats {
    blocked: AtomicU64,
    late: AtomicU64,
    /// The latest a period's last packet left after its deadline, ns (since the last reset).
    worst: AtomicU64,
}

/// Drains every socket's mix until `stop`, sleeping in epoll between packets as a peer's
/// net thread does (no polling: this process shares the hub's two cores).
fn reader(socks: Vec<TcpStream>, stop: Arc<AtomicBool>) {
    let mut ev = EventLoop::new().unwrap();
    for (i, s) in socks.iter().enumerate() {
        ev.register(s.as_fd(), i as u64, Interest::READABLE)
            .unwrap();
    }
    let mut events = Events::with_capacity(socks.len().max(1));
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let _ = ev.poll(Some(Duration::from_millis(50)), &mut events);
        for e in events.iter() {
            let _ = (&socks[e.token() as usize]).read(&mut buf);
        }
    }
}

/// Measures the host's own stalls on `cpu` while the hub runs: an absolute-sleep loop at
/// the mixer's priority and period pinned there, like the wakeup bench's reference.
/// Returns its worst lateness and how many wakeups were more than a period late, ns and
/// count.
fn stall_probe(stop: Arc<AtomicBool>, cpu: usize) -> RtThread<(u64, u64)> {
    let opts = RtOptions {
        name: format!("load-probe{cpu}"),
        cpu: Some(cpu),
        lock_memory: false,
        ..RtOptions::default()
    };
    spawn(&opts, move || {
        let (start, mut worst, mut stalls) = (now_ns(), 0, 0);
        let mut n = 1;
        while !stop.load(Ordering::Relaxed) {
            let deadline = start + n * PERIOD_NS;
            sleep_until_ns(deadline);
            let late = now_ns().saturating_sub(deadline);
            worst = worst.max(late);
            stalls += u64::from(late > PERIOD_NS);
            n = (now_ns() - start) / PERIOD_NS + 1;
        }
        (worst, stalls)
    })
    .unwrap()
}

fn misses(m: &Value) -> u64 {
    m["connections"]
        .as_object()
        .map(|c| c.values().filter_map(|u| u["jitterMisses"].as_u64()).sum())
        .unwrap_or(0)
}

/// A figure of getMetrics' `hub` object.
fn hub_figure(m: &Value, key: &str) -> u64 {
    m["hub"][key].as_u64().unwrap_or(0)
}

/// The bare TCP floor: one thread echoing every byte back over the same sockets and load
/// (epoll, one read and one write per packet, nothing else: no decoding, jitter buffers,
/// mixing or second thread). What the hub costs beyond this is izyrt's own work.
fn start_echo(
    n: usize,
) -> (
    SocketAddr,
    String,
    Arc<AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let halt = Arc::clone(&stop);
    let t = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let mut ev = EventLoop::new().unwrap();
        let socks: Vec<TcpStream> = (0..n).map(|_| listener.accept().unwrap().0).collect();
        for (i, s) in socks.iter().enumerate() {
            s.set_nodelay(true).unwrap();
            s.set_nonblocking(true).unwrap();
            ev.register(s.as_fd(), i as u64, Interest::READABLE)
                .unwrap();
        }
        let mut events = Events::with_capacity(n.max(1));
        let mut buf = vec![0u8; 64 * 1024];
        while !halt.load(Ordering::Relaxed) {
            let _ = ev.poll(Some(Duration::from_millis(50)), &mut events);
            for e in events.iter() {
                let mut s = &socks[e.token() as usize];
                if let Ok(k) = s.read(&mut buf) {
                    let _ = s.write(&buf[..k]);
                }
            }
        }
    });
    let tid = tid_rx.recv().unwrap();
    let dir = format!("/proc/{}/task/{tid}", std::process::id());
    (addr, dir, stop, t)
}

/// CPU seconds of each thread of the process under `proc_dir` (`/proc/PID`), by tid.
fn thread_cpu(proc_dir: &str) -> Vec<(String, f64)> {
    let Ok(dir) = std::fs::read_dir(format!("{proc_dir}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|t| {
            let p = t.path().display().to_string();
            (p.clone(), cpu_seconds(&p))
        })
        .collect()
}

/// What one load run measured.
struct Load {
    /// The server's busiest thread's share of one core over the window, %.
    busiest: f64,
    /// CPU of the measured server (process or thread), seconds.
    cpu: f64,
    wall: f64,
    /// This process's CPU, the server's excluded when it is a thread of ours, seconds.
    generator: f64,
    blocked: u64,
    /// Periods the generator sent more than a period late, and its worst lateness, ns.
    late: u64,
    late_worst: u64,
    /// The server's resident memory at the end of the window, with every peer connected.
    rss: f64,
    /// Per CPU: the host's worst wakeup lateness there, ns, and how many were over a
    /// period late.
    stalls: Vec<(u64, u64)>,
    /// getMetrics before and after, for a hub.
    metrics: Option<(Value, Value)>,
}

/// Sends `callgrind_control` option `op` (`-z` zero, `-d` dump) to the callgrind run `pid`.
fn callgrind_control(op: &str, pid: u32) {
    let ok = Command::new("callgrind_control")
        .args([op, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "callgrind_control {op} {pid} failed (is valgrind installed?)"
    );
}

/// The instructions counted in callgrind's first dump of `pid` under `dir` (waits up to
/// 10 s for it to be written).
fn callgrind_dump(dir: &str, pid: u32) -> u64 {
    let path = format!("{dir}/hub.{pid}.1");
    for _ in 0..100 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let total = text
            .lines()
            .find_map(|l| l.strip_prefix("totals: ").or(l.strip_prefix("summary: ")));
        if let Some(n) = total.and_then(|t| t.trim().parse().ok()) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no callgrind dump in {path}");
}

/// N peers against `addr`: warm up 5 s, then measure `secs`.
fn run_load(
    addr: SocketAddr,
    n: usize,
    secs: u64,
    server: &str,
    metrics: Option<SocketAddr>,
    callgrind: Option<u32>,
) -> Load {
    let socks: Vec<TcpStream> = (0..n).map(|i| join(addr, &format!("load{i}"))).collect();
    let readers: Vec<TcpStream> = socks.iter().map(|s| s.try_clone().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(SendStats::default());
    let tx = {
        let (stop, stats) = (Arc::clone(&stop), Arc::clone(&stats));
        let opts = RtOptions {
            name: "load-send".into(),
            priority: 60,
            lock_memory: false,
            ..RtOptions::default()
        };
        spawn(&opts, move || sender(socks, stop, stats)).unwrap()
    };
    let rx = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || reader(readers, stop))
    };
    std::thread::sleep(Duration::from_secs(5));
    if let Some(pid) = callgrind {
        callgrind_control("-z", pid);
    }
    let m0 = metrics.map(get);
    let me = format!("/proc/{}", std::process::id());
    let ours = server.starts_with(&me);
    let threads0 = thread_cpu(server);
    let (cpu0, gen0, t0, blocked0, late0) = (
        cpu_seconds(server),
        cpu_seconds(&me),
        Instant::now(),
        stats.blocked.load(Ordering::Relaxed),
        stats.late.load(Ordering::Relaxed),
    );
    stats.worst.store(0, Ordering::Relaxed);
    let probe_stop = Arc::new(AtomicBool::new(false));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let probes: Vec<_> = (0..cpus)
        .map(|cpu| stall_probe(Arc::clone(&probe_stop), cpu))
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    let m1 = metrics.map(get);
    let (cpu, wall) = (cpu_seconds(server) - cpu0, t0.elapsed().as_secs_f64());
    if let Some(pid) = callgrind {
        callgrind_control("-d", pid);
    }
    let rss = rss_mib(server);
    let busiest = threads0
        .iter()
        .map(|(t, c0)| cpu_seconds(t) - c0)
        .fold(0.0, f64::max);
    let generator = cpu_seconds(&me) - gen0 - if ours { cpu } else { 0.0 };
    probe_stop.store(true, Ordering::Relaxed);
    let stalls = probes.into_iter().map(|p| p.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let _ = tx.join();
    let _ = rx.join();
    Load {
        busiest: 100.0 * busiest / wall,
        cpu,
        wall,
        generator,
        blocked: stats.blocked.load(Ordering::Relaxed) - blocked0,
        late: stats.late.load(Ordering::Relaxed) - late0,
        late_worst: stats.worst.load(Ordering::Relaxed),
        rss,
        stalls,
        metrics: m0.zip(m1),
    }
}

/// Peer-periods in `wall` seconds of `n` peers: what every per-peer-per-period figure
/// divides by.
fn peer_periods(n: usize, wall: f64) -> f64 {
    n as f64 * wall * f64::from(RATE) / f64::from(PERIOD)
}

fn per_peer_period_us(cpu: f64, n: usize, wall: f64) -> f64 {
    cpu * 1e6 / peer_periods(n, wall)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = env("IZYRT_BENCH_SECS").unwrap_or(30);
    let counts: Vec<usize> = std::env::var("IZYRT_BENCH_PEERS")
        .unwrap_or_else(|_| "16,32,64,96,128".into())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    println!(
        "| peers | misses | periods with a miss (most peers in one, since the hub started) | mixer xruns | blocked sends | hub CPU µs per peer per period | hub CPU % | busiest hub thread, % of a core | hub RSS MiB | load generator CPU % | generator periods sent > 1 period late (worst, ms) | bare TCP echo µs per peer per period | hub / echo | host stalls > 1 period per CPU (worst, ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let callgrind = std::env::var_os("IZYRT_BENCH_CALLGRIND").map(|_| {
        let dir = std::env::temp_dir().join(format!("izyrt-callgrind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.display().to_string()
    });
    let mut instructions = Vec::new();
    let mut best = 0;
    for n in counts {
        let (hub, addr, metrics) = start_hub(n, callgrind.as_deref());
        let pid = hub.0.id();
        let under = callgrind.as_ref().map(|_| pid);
        let load = run_load(addr, n, secs, &format!("/proc/{pid}"), Some(metrics), under);
        let rss = load.rss;
        if let Some(dir) = &callgrind {
            instructions.push((
                n,
                callgrind_dump(dir, pid) as f64 / peer_periods(n, load.wall),
            ));
        }
        drop(hub);
        let (m0, m1) = load.metrics.unwrap();
        let (echo_addr, echo_dir, echo_stop, echo) = start_echo(n);
        let bare = run_load(echo_addr, n, secs.min(10), &echo_dir, None, None);
        echo_stop.store(true, Ordering::Relaxed);
        let _ = echo.join();
        let joined = m1["hub"]["clients"].as_u64().unwrap_or(0);
        let missed = misses(&m1).saturating_sub(misses(&m0));
        let miss_periods =
            hub_figure(&m1, "missPeriods").saturating_sub(hub_figure(&m0, "missPeriods"));
        let xruns = |m: &Value| {
            m["realtime"]["izyrt-hub-mixer"]["xruns"]
                .as_u64()
                .unwrap_or(0)
        };
        let hub_us = per_peer_period_us(load.cpu, n, load.wall);
        let echo_us = per_peer_period_us(bare.cpu, n, bare.wall);
        println!(
            "| {n}{} | {missed} | {miss_periods} ({}) | {} | {} | {hub_us:.2} | {:.0} | {:.0} | {rss:.0} | {:.0} | {} ({:.1}) | {echo_us:.2} | {:.2} | {} |",
            if joined as usize == n {
                String::new()
            } else {
                format!(" ({joined} joined)")
            },
            // widestMiss counts from the start: shown only beside misses in the window.
            if miss_periods == 0 {
                "-".to_string()
            } else {
                hub_figure(&m1, "widestMiss").to_string()
            },
            xruns(&m1) - xruns(&m0),
            load.blocked,
            100.0 * load.cpu / load.wall,
            load.busiest,
            100.0 * load.generator / load.wall,
            load.late,
            load.late_worst as f64 / 1e6,
            hub_us / echo_us,
            load.stalls
                .iter()
                .enumerate()
                .map(|(cpu, (worst, n))| format!("cpu{cpu}: {n} ({:.1})", *worst as f64 / 1e6))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if missed == 0 && joined as usize == n {
            best = n;
        }
    }
    println!("\nlargest N served with zero misses: {best}");
    if let Some(dir) = callgrind {
        println!("\n| peers | hub instructions per peer per period (user space, callgrind) |");
        println!("|---:|---:|");
        for (n, per) in instructions {
            println!("| {n} | {per:.0} |");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
