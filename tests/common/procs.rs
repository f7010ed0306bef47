//! Real `izyrt` processes for the network tests: start them, read what they print, ask
//! their getMetrics, stop them; plus a raw streamproto1 client and tone analysis.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use izyrt::wire::{
    AudioFormat, AudioHeader, Decoder, ErrorMsg, Kind, Samples, encode_audio, encode_json,
};
use serde_json::Value;

/// One encoded stereo AUDIO frame of `frames` f32 `samples` (sent as `format`) at
/// `rate`, on `track` with sequence number `seq` (its position `seq × frames`).
pub fn audio_frame(
    rate: u32,
    track: u16,
    seq: u32,
    format: AudioFormat,
    frames: u32,
    samples: &[f32],
) -> Vec<u8> {
    let h = AudioHeader {
        sample_rate: rate,
        channels: 2,
        format,
        frames,
        position: u64::from(seq) * u64::from(frames),
        origin_ns: 1,
        echo_ns: 0,
    };
    let mut buf = vec![0u8; 64 + frames as usize * 8];
    let n = encode_audio(&mut buf, track, seq, &h, Samples::F32(samples)).unwrap();
    buf.truncate(n);
    buf
}

/// A running `izyrt` process; killed when dropped.
pub struct Proc {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub name: String,
    /// Set when stderr has been read to its end (the process closed it: it exited).
    eof: Arc<AtomicBool>,
}

impl Proc {
    /// Starts `izyrt ARGS` with stderr collected line by line.
    pub fn start(name: &str, args: &[&str]) -> Proc {
        Proc::start_env(name, args, &[])
    }

    /// As [`Proc::start`] with extra environment variables.
    pub fn start_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_izyrt"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let eof = Arc::new(AtomicBool::new(false));
        let end = Arc::clone(&eof);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
            end.store(true, Ordering::Release);
        });
        Proc {
            child,
            lines,
            name: name.into(),
            eof,
        }
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "{} exited ({status}) before printing {needle:?}:\n{}",
                    self.name,
                    self.output()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "{} did not print {needle:?} within {timeout:?}:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address after `marker` in the first line containing it (e.g. `listening on `).
    pub fn addr_after(&mut self, marker: &str) -> SocketAddr {
        let line = self.wait_line(marker, Duration::from_secs(20));
        let rest = &line[line.find(marker).unwrap() + marker.len()..];
        let rest = rest.trim_start_matches("http://");
        let end = rest.find([' ', '/']).unwrap_or(rest.len());
        rest[..end].parse().unwrap()
    }

    /// The metrics address the process printed.
    pub fn metrics_addr(&mut self) -> SocketAddr {
        self.addr_after("metrics:   ")
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Stops the process for `d` (SIGSTOP, then SIGCONT), as a stall of the host or a busy
    /// laptop stops it: its threads and its device's clock stand still meanwhile.
    pub fn stall(&self, d: Duration) {
        self.signal(libc::SIGSTOP);
        std::thread::sleep(d);
        self.signal(libc::SIGCONT);
    }

    /// Sends SIGINT and waits for the exit status (killing it after `timeout`), and for its
    /// output to be read to the end, so that [`Proc::output`] after it has every line.
    pub fn interrupt(&mut self, timeout: Duration) -> Option<i32> {
        self.signal(libc::SIGINT);
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Its last lines may still be in the pipe: read them all, so that
                // `output` after this has everything the process printed.
                while !self.eof.load(Ordering::Acquire) && start.elapsed() < timeout {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return status.code();
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Device periods for the test processes: this machine is shared, and a 2-period buffer
/// turns every wakeup more than a period late into an xrun.
pub const PERIODS: &str = "8";

/// Appends `extra`, and `--periods PERIODS` unless `extra` sets it.
fn with_periods<'a>(args: &mut Vec<&'a str>, extra: &[&'a str]) {
    args.extend_from_slice(extra);
    if !extra.contains(&"--periods") {
        args.extend_from_slice(&["--periods", PERIODS]);
    }
}

/// One scenario at a time within a test binary: each runs several processes with RT
/// threads, and two cores shared by several scenarios would measure the machine rather
/// than izyrt. Hold the guard for the whole test.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A hub on loopback with its metrics; returns it with (stream address, metrics address).
pub fn hub(extra: &[&str]) -> (Proc, SocketAddr, SocketAddr) {
    let mut args = vec!["hub", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"];
    with_periods(&mut args, extra);
    let mut p = Proc::start("hub", &args);
    let addr = p.addr_after("listening on ");
    let metrics = p.metrics_addr();
    (p, addr, metrics)
}

/// A peer of `hub` as `user` on `device`, metrics on an ephemeral port.
pub fn peer(hub: SocketAddr, user: &str, device: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    client(
        "peer",
        hub,
        user,
        &[&["--device", device][..], extra].concat(),
    )
}

/// A monitor of `hub` as `user` (on `virtual`), metrics on an ephemeral port.
pub fn monitor(hub: SocketAddr, user: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    client("monitor", hub, user, extra)
}

fn client(role: &str, hub: SocketAddr, user: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let hub = hub.to_string();
    let mut args = vec![
        role,
        "--hub",
        &hub,
        "--user",
        user,
        "--metrics",
        "127.0.0.1:0",
    ];
    with_periods(&mut args, extra);
    let mut p = Proc::start(user, &args);
    let metrics = p.metrics_addr();
    (p, metrics)
}

/// GET a path from a metrics server; the body.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    body.to_owned()
}

/// getMetrics as JSON.
pub fn metrics(addr: SocketAddr) -> Value {
    serde_json::from_str(&http_get(addr, "/service/mixeradminclient?getMetrics")).unwrap()
}

/// Polls `f` until it returns `Some` or `timeout` passes (then panics with `what`).
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (up to 30 s) until every RT thread in `addr`'s getMetrics has armed its
/// allocation counter (`steadyAllocations` and `recoveryAllocations` numbers, not null:
/// after 2000 periods, 2.7 s at 64 frames).
pub fn rt_counters_armed(addr: SocketAddr) {
    wait_for(
        "the allocation counters armed",
        Duration::from_secs(30),
        || {
            let m = metrics(addr);
            let rt = m["realtime"].as_object()?.clone();
            rt.values()
                .all(|t| t["steadyAllocations"].is_u64() && t["recoveryAllocations"].is_u64())
                .then_some(())
        },
    );
}

/// A scratch directory for one test, inside this process's own, which is removed when the
/// process exits (pass or fail) unless `IZYRT_TEST_KEEP` is set: a run leaves nothing in
/// the temporary directory (it had left some 17 directories, up to 6 MiB each, per run).
pub fn scratch(test: &str) -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("izyrt-net-{}", std::process::id()));
        extern "C" fn remove_root() {
            if let Some(root) = ROOT.get() {
                let _ = std::fs::remove_dir_all(root);
            }
        }
        if std::env::var_os("IZYRT_TEST_KEEP").is_none() {
            // SAFETY: registers a plain extern "C" function; it runs at process exit.
            unsafe { libc::atexit(remove_root) };
        }
        root
    });
    let dir = root.join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The first channel of a WAV file (f32 or 16-bit).
pub fn wav_channel0(path: &Path) -> (u32, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let ch = usize::from(spec.channels);
    let all: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(Result::unwrap).collect(),
        hound::SampleFormat::Int => r
            .samples::<i32>()
            .map(|s| s.unwrap() as f32 / 32_768.0)
            .collect(),
    };
    (spec.sample_rate, all.chunks(ch).map(|f| f[0]).collect())
}

/// Amplitude of the `hz` component of `x` (Goertzel), full-scale sine → ~1.0.
pub fn tone_amplitude(x: &[f32], rate: u32, hz: f64) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let w = std::f64::consts::TAU * hz / f64::from(rate);
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &s) in x.iter().enumerate() {
        let ph = w * n as f64;
        re += f64::from(s) * ph.cos();
        im -= f64::from(s) * ph.sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len() as f64
}

/// The median over 100 ms blocks of the amplitude of each of `hz` in channel 0 of a
/// WAV file (robust to an occasional dropout, which would break one long transform's
/// phase coherence), skipping the first block (priming).
pub fn median_tones(path: &Path, hz: &[f64]) -> Vec<f64> {
    let (rate, x) = wav_channel0(path);
    let blk = (rate / 10) as usize;
    hz.iter()
        .map(|&f| {
            let mut a: Vec<f64> = x
                .chunks_exact(blk)
                .skip(1)
                .map(|b| tone_amplitude(b, rate, f))
                .collect();
            assert!(
                a.len() >= 10,
                "{} holds only {} blocks",
                path.display(),
                a.len()
            );
            a.sort_by(f64::total_cmp);
            a[a.len() / 2]
        })
        .collect()
}

/// A fake hub's first step: reads what a client sends until its HELLO has come (its
/// capture may follow at once; what came after the HELLO in the same read is dropped).
pub fn read_hello(sock: &mut TcpStream) {
    let mut dec = Decoder::new();
    let mut buf = [0u8; 4096];
    let mut hello = false;
    while !hello {
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "the client closed before HELLO");
        dec.feed(&buf[..n]);
        while let Ok(Some(f)) = dec.next_frame() {
            hello |= f.kind() == Some(Kind::Hello);
        }
    }
}

/// Frames read by [`Raw`]: kind (None for unknown) and payload.
pub type Frames = Vec<(Option<Kind>, Vec<u8>)>;

/// A raw streamproto1 client speaking straight to a hub.
pub struct Raw {
    pub sock: TcpStream,
    pub dec: Decoder,
    seq: u32,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw::from_stream(TcpStream::connect(addr).unwrap())
    }

    /// A client over an already connected socket (reads time out after 200 ms).
    pub fn from_stream(sock: TcpStream) -> Raw {
        let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
        Raw {
            sock,
            dec: Decoder::new(),
            seq: 0,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.sock.write_all(bytes);
    }

    pub fn send_json(&mut self, kind: Kind, value: &Value) {
        let mut buf = vec![0u8; 1 << 16];
        let n = encode_json(&mut buf, kind, 0, self.seq, value).unwrap();
        self.seq += 1;
        self.send(&buf[..n]);
    }

    pub fn hello(&mut self, user: &str, extra: Value) {
        let mut h = serde_json::json!({"proto":"streamproto1","role":"peer","user":user,
            "sampleRate":48000,"channels":2,"format":"f32","framesPerPacket":64});
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        self.send_json(Kind::Hello, &h);
    }

    /// Frames (kind, payload) until `kind` arrives, the peer closes, or `timeout`;
    /// returns all frames read and whether the connection was closed.
    pub fn read_until(&mut self, kind: Kind, timeout: Duration) -> (Frames, bool) {
        let start = Instant::now();
        let mut frames = Vec::new();
        loop {
            while let Ok(Some(f)) = self.dec.next_frame() {
                let k = f.kind();
                frames.push((k, f.payload.to_vec()));
                if k == Some(kind) {
                    return (frames, false);
                }
            }
            if start.elapsed() > timeout {
                return (frames, false);
            }
            match self.dec.read_from(&mut self.sock) {
                Ok(0) => return (frames, true),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (frames, true),
            }
        }
    }

    /// Reads until ERROR; returns its code and whether the hub then closed.
    pub fn expect_error(&mut self, timeout: Duration) -> (String, bool) {
        let (frames, _) = self.read_until(Kind::Error, timeout);
        let Some((_, payload)) = frames.iter().find(|(k, _)| *k == Some(Kind::Error)) else {
            panic!(
                "no ERROR within {timeout:?}; got {:?}",
                frames.iter().map(|f| f.0).collect::<Vec<_>>()
            );
        };
        let code = ErrorMsg::parse(payload).unwrap().code;
        let (_, closed) = self.read_until(Kind::Bye, Duration::from_secs(3));
        (code, closed)
    }
}
