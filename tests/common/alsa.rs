//! Helpers for the ALSA tests on a machine without a sound card: a per-process ALSA
//! configuration (the stock one plus our PCM definitions), a `jackd -d dummy` server that
//! paces time, and a guard that stops it whatever the test did.
//!
//! alsa-lib reads `ALSA_CONFIG_PATH` once and the JACK plugin reads `JACK_DEFAULT_SERVER`,
//! both process-wide: every test binary sets them once (before any ALSA call) and the tests
//! of a binary that use jackd run one at a time behind [`serial`].

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

/// Rate of the paced JACK tests.
pub const RATE: u32 = 48_000;
/// Channels of the paced JACK tests.
pub const CHANNELS: u16 = 2;
/// Period of the streams the JACK tests open (64 × 2 over a jackd on a shared machine
/// xruns constantly; 256 × 4 does not).
pub const PERIOD: u32 = 256;

/// The stream the JACK tests open: 48 kHz stereo, 256 frames × 4 periods.
pub fn jack_stream() -> izyrt::device::StreamConfig {
    izyrt::device::StreamConfig {
        rate: RATE,
        channels: CHANNELS,
        period_frames: PERIOD,
        periods: 4,
    }
}

/// The stock alsa-lib configuration every custom configuration must load first.
pub const STOCK_ALSA_CONF: &str = "/usr/share/alsa/alsa.conf";

/// This process's scratch directory (removed at exit).
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("izyrt-alsa-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        extern "C" fn remove_scratch() {
            if let Some(dir) = DIR.get() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        // SAFETY: registers a plain extern "C" function; it runs at process exit.
        unsafe { libc::atexit(remove_scratch) };
        dir
    })
}

/// The JACK server name of this process.
pub fn jack_server_name() -> String {
    format!("izyrt-test-{}", std::process::id())
}

/// Writes `body` (PCM definitions) next to the stock configuration and points alsa-lib and
/// the JACK plugin at them. Only the first call of a process has an effect, so every test
/// of a binary must pass the same body.
pub fn use_alsa_config(body: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        assert!(
            Path::new(STOCK_ALSA_CONF).exists(),
            "{STOCK_ALSA_CONF} is missing: install alsa-lib's data (scripts/setup)"
        );
        let path = scratch_dir().join("izyrt-test-asound.conf");
        std::fs::write(&path, body).expect("write the ALSA configuration");
        let config_path = format!("{STOCK_ALSA_CONF}:{}", path.display());
        // SAFETY: called once, first thing in every test of the binary, while no other
        // thread of the test binary is inside alsa-lib or reading the environment (the
        // other tests wait on this `Once`).
        unsafe {
            std::env::set_var("ALSA_CONFIG_PATH", config_path);
            std::env::set_var("JACK_DEFAULT_SERVER", jack_server_name());
            std::env::set_var("JACK_NO_START_SERVER", "1");
            std::env::set_var("JACK_NO_AUDIO_RESERVATION", "1");
        }
    });
}

/// Serialises the tests of one binary that share the process-wide JACK server name.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What most JACK tests start with: [`JACK_PCMS`] as the configuration, the binary's
/// lock, and a server at `rate` and `period`; `None` (with a message) to skip.
pub fn locked_server(rate: u32, period: u32) -> Option<(MutexGuard<'static, ()>, JackServer)> {
    use_alsa_config(JACK_PCMS);
    let lock = serial();
    let server = JackServer::start(rate, period)?;
    Some((lock, server))
}

/// Starts a JACK server at `rate` and `period` again for `dev`, gone with the previous
/// one, and checks that it reopens once and cycles; returns the server.
pub fn reopen_on_a_new_server(
    dev: &mut dyn izyrt::device::Device,
    rate: u32,
    period: u32,
) -> JackServer {
    let jackd = JackServer::start(rate, period).expect("jackd started before");
    dev.reopen().unwrap();
    dev.start().unwrap();
    for _ in 0..20 {
        dev.cycle(&mut |i, o| o.copy_from_slice(i)).unwrap();
    }
    let reopens = dev
        .counters()
        .reopens
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(reopens, 1);
    jackd
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// True when libasound2-plugins' JACK PCM is installed where alsa-lib looks for plugins.
fn jack_plugin_installed() -> bool {
    let mut dirs = vec![
        PathBuf::from("/usr/lib/alsa-lib"),
        PathBuf::from("/usr/lib64/alsa-lib"),
    ];
    for base in ["/usr/lib", "/usr/lib64"] {
        if let Ok(entries) = std::fs::read_dir(base) {
            dirs.extend(entries.flatten().map(|e| e.path().join("alsa-lib")));
        }
    }
    dirs.iter()
        .any(|d| d.join("libasound_module_pcm_jack.so").is_file())
}

/// Says why a test is skipped, on the real stderr (libtest captures `println!` and
/// `eprintln!` of passing tests, which would hide it).
pub fn skip(why: &str) {
    to_stderr(&format!(
        "SKIPPED {}: {why}\n",
        std::thread::current().name().unwrap_or("test")
    ));
}

/// Writes `text` to the real stderr, past libtest's capture.
fn to_stderr(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// How long one JACK test may hold a server before [`Watchdog`] calls it hung (the slowest
/// takes about 20 s on this shared machine).
pub const JACK_TEST_LIMIT: Duration = Duration::from_secs(180);

/// Runs `cmd` (stdin and stderr closed) and returns its stdout, or `None` when it failed to
/// start or did not exit within `limit` (it is then killed). JACK's command-line clients
/// wait on the server without a timeout; a test must never wait on them forever.
pub fn stdout_within(cmd: &mut Command, limit: Duration) -> Option<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut out = child.stdout.take()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return rx.recv_timeout(Duration::from_secs(1)).ok(),
            Ok(None) if t0.elapsed() < limit => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Ends a test binary that is stuck, instead of letting CI wait on it for hours: when not
/// disarmed (dropped) within its limit, it prints what every thread of this process and
/// every child process is blocked in, and the jackd log's tail, stops the children
/// (clients first, then jackd with SIGTERM so that it leaves JACK's server registry) and
/// exits with status 101.
pub struct Watchdog {
    /// Dropping it disconnects the channel, which is what disarms the watchdog.
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    /// Arms it for `what`, whose jackd writes `log`.
    pub fn arm(what: String, limit: Duration, log: PathBuf, jackd: u32) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            // Disconnected (dropped in time) is the normal end.
            if rx.recv_timeout(limit) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            let mut report = format!(
                "WATCHDOG: {what} is still running after {limit:?}: stuck. Threads of the \
                 test process (name: kernel wait channel):\n"
            );
            for (tid, line) in proc_states("/proc/self/task") {
                report += &format!("  {tid} {line}\n");
            }
            let children = child_pids();
            report += "Child processes (pid name state: wait channel; kernel stack):\n";
            for pid in &children {
                let dir = format!("/proc/{pid}");
                report += &format!("  {pid} {}\n", proc_state(&dir));
                let stack = std::fs::read_to_string(format!("{dir}/stack")).unwrap_or_default();
                for l in stack.lines().take(8) {
                    report += &format!("      {l}\n");
                }
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            report += "jackd log, last lines:\n";
            for l in tail.iter().rev() {
                report += &format!("  {l}\n");
            }
            to_stderr(&report);
            for pid in children.iter().filter(|&&p| p != jackd) {
                // SAFETY: kill(2) on a child of this process.
                unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(500));
            // SAFETY: as above.
            unsafe { libc::kill(jackd as libc::pid_t, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(3));
            // SAFETY: as above.
            unsafe { libc::kill(jackd as libc::pid_t, libc::SIGKILL) };
            std::process::exit(101);
        });
        Watchdog { _disarm: tx }
    }
}

/// `name state: wchan` of a /proc process or task directory.
fn proc_state(dir: &str) -> String {
    let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).unwrap_or_default();
    let stat = read("stat");
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    format!("{} {state}: {}", read("comm").trim(), read("wchan").trim())
}

/// [`proc_state`] of every entry of a /proc directory of tasks.
fn proc_states(dir: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let s = proc_state(&format!("{dir}/{n}"));
                    (n, s)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The pids whose parent is this process.
fn child_pids() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1)?.parse::<u32>().ok());
            ppid == Some(me)
        })
        .collect()
}

/// A running `jackd -d dummy` that is stopped (SIGTERM, then SIGKILL) when dropped, even
/// when the test panics. While it runs, a [`Watchdog`] ends the test binary if the test
/// holds it longer than [`JACK_TEST_LIMIT`].
pub struct JackServer {
    child: Child,
    /// The server's name.
    pub name: String,
    /// Where its output goes (the dummy driver reports every late wakeup).
    pub log: PathBuf,
    _watchdog: Watchdog,
}

impl JackServer {
    /// Starts `jackd -n NAME -R -P 70 -d dummy -r RATE -p PERIOD` and waits until it
    /// accepts clients. `None` (after printing why) when jackd or the ALSA JACK plugin is
    /// not installed: the caller skips its test.
    pub fn start(rate: u32, period: u32) -> Option<JackServer> {
        if !on_path("jackd") {
            skip("jackd not found on PATH (install jackd2: scripts/setup)");
            return None;
        }
        if !jack_plugin_installed() {
            skip(
                "the ALSA jack plugin is not installed (install libasound2-plugins: scripts/setup)",
            );
            return None;
        }
        let name = jack_server_name();
        let log = scratch_dir().join("jackd.log");
        let out = std::fs::File::create(&log).expect("create the jackd log");
        let err = out.try_clone().expect("clone the jackd log");
        let mut cmd = Command::new("jackd");
        // Realtime when the system grants it (root, rtprio limits): a non-realtime jackd on
        // a loaded machine lets clients miss cycles. jackd falls back by itself otherwise.
        cmd.args(["-n", &name, "-R", "-P", "70", "-d", "dummy"])
            .args(["-r", &rate.to_string(), "-p", &period.to_string()])
            .env("JACK_NO_AUDIO_RESERVATION", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGTERM jackd
            // if this (test) thread dies without running the guard.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("spawn jackd");
        let what = format!(
            "the test {:?} (jackd '{name}')",
            std::thread::current().name().unwrap_or("?")
        );
        let _watchdog = Watchdog::arm(what, JACK_TEST_LIMIT, log.clone(), child.id());
        let mut server = JackServer {
            child,
            name,
            log,
            _watchdog,
        };
        server.wait_ready(Duration::from_secs(15));
        Some(server)
    }

    /// How many times so far jackd reported a client that missed its cycle (a JACK-level
    /// xrun: that client's audio for the cycle is lost, and ALSA cannot see it).
    pub fn client_xruns(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|log| {
                log.lines()
                    .filter(|l| l.contains("was not finished"))
                    .count()
            })
            .unwrap_or(0)
    }

    fn wait_ready(&mut self, limit: Duration) {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "jackd exited at start ({status}); its log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            let check = stdout_within(
                Command::new("jack_wait").args(["-s", &self.name, "-c"]),
                Duration::from_secs(5),
            );
            if check.is_some_and(|o| o.lines().any(|l| l.trim() == "running")) {
                return;
            }
            assert!(
                t0.elapsed() < limit,
                "jackd '{}' did not come up within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for JackServer {
    fn drop(&mut self) {
        // The test's clients are usually killed just before this: give jackd a moment to
        // notice. Stopping with a dead client it has not noticed, it writes to that
        // client's socket, dies of SIGPIPE and leaves its entry in JACK's machine-wide
        // server registry; after 8 such leaks no jackd starts ("Too many servers already
        // active").
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: signals the process we spawned and still own (not yet reaped).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // jackd2 leaves its clients' semaphores in /dev/shm even on a clean exit: remove
        // this server's (they carry its name).
        let ours = [format!("_{}_", self.name), format!("jack_{}_", self.name)];
        if let Ok(dir) = std::fs::read_dir("/dev/shm") {
            for f in dir.flatten() {
                let n = f.file_name().to_string_lossy().into_owned();
                if n.starts_with("jack") && ours.iter().any(|o| n.contains(o.as_str())) {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
    }
}

/// PCM definitions over the JACK server (libasound2-plugins' `jack` type):
///
/// - `izyrt_jack`: both directions on the dummy driver's system ports;
/// - `izyrt_play` (client `izyplay`) and `izyrt_rec` (client `izyrec`), whose capture ports
///   are fed by `izyplay`'s outputs: what is played into one is recorded by the other;
/// - `izyrt_loop`: `asym` over the two, so one duplex device plays into `izyrt_play` and
///   records from `izyrt_rec`.
pub const JACK_PCMS: &str = r#"
pcm.izyrt_jack {
    type jack
    playback_ports { 0 "system:playback_1" 1 "system:playback_2" }
    capture_ports { 0 "system:capture_1" 1 "system:capture_2" }
}
pcm.izyrt_play {
    type jack
    name "izyplay"
    playback_ports { 0 "system:playback_1" 1 "system:playback_2" }
    capture_ports { 0 "system:capture_1" 1 "system:capture_2" }
}
pcm.izyrt_rec {
    type jack
    name "izyrec"
    playback_ports { 0 "system:playback_1" 1 "system:playback_2" }
    capture_ports { 0 "izyplay:out_000" 1 "izyplay:out_001" }
}
pcm.izyrt_loop {
    type asym
    playback.pcm "izyrt_play"
    capture.pcm "izyrt_rec"
}
"#;
