//! The hub: accepts peers, mixes them on its own clock and sends each its mix, with
//! METADATA and per-user QoS (main thread starts and stops it).
//!
//! Threads: the RT mixer thread ([`mixer_thread`], paced by the `virtual` clock or a
//! sound card), the net thread ([`net_thread`]), the publisher thread ([`publisher`],
//! normal priority: METADATA and the metrics snapshot, built from a copy of the net
//! thread's user table) and, started by the caller, the HTTP metrics thread reading the
//! [`SnapshotCell`] the publisher publishes into.
//!
//! # Example
//! ```no_run
//! use izyrt::hub::{Hub, HubConfig};
//! let hub = Hub::start(HubConfig::new("127.0.0.1:0".parse().unwrap()))?;
//! println!("listening on {}", hub.local_addr());
//! hub.stop()?;
//! # Ok::<(), izyrt::hub::HubError>(())
//! ```
#![cfg(target_os = "linux")]

pub mod drift;
pub mod fanout;
pub mod file_sources;
pub mod mixer_thread;
pub mod net_thread;
pub mod publisher;
pub mod refusals;
pub mod sessions;
pub mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rtrb::RingBuffer;

use crate::config::Settings;
use crate::device::{DeviceSpec, Direction, SkippedFrames, StreamConfig, open};
use crate::dsp::meter::Meter;
use crate::dsp::mixer::{Limit, MixMode, Mixer, MixerConfig};
use crate::file::{Clip, ClipReader};
use crate::metrics::{SnapshotCell, default_snapshot};
use crate::net::{SocketTuning, Waker, socket};
use crate::rt::driver::{Driver, DriverConfig};
use crate::rt::runner::{self, RtHandle, RtStatus};
use crate::rt::thread::{self, RtOptions, RtThread};
use crate::wire::Mix;
use file_sources::FileSource;
use mixer_thread::{Input, MixerState, MixerStats, Slot, SlotStats};
use net_thread::{HubNet, NetConfig, NetLinks};

/// How a hub is set up.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Where to listen for clients.
    pub listen: SocketAddr,
    /// Rate, period, channels, buffer, thresholds, RT priority.
    pub settings: Settings,
    /// The clock and local output: `virtual` by default, or a sound card.
    pub device: DeviceSpec,
    /// Required HELLO token.
    pub token: Option<String>,
    /// What a peer hears unless it asks.
    pub mix: Mix,
    /// WAV files mixed in as looping sources.
    pub files: Vec<PathBuf>,
    /// Most joined clients at once.
    pub max_clients: usize,
    /// Most connections awaiting HELLO at once (the oldest is evicted beyond).
    pub max_pending: usize,
    /// Most connections awaiting HELLO from one IP address.
    pub max_pending_per_addr: usize,
    /// Time a connection has to send HELLO, ms.
    pub hello_timeout_ms: u32,
}

impl HubConfig {
    /// Defaults: 48 kHz, 64-frame periods, stereo, `virtual` clock, `minus` mix, 256
    /// clients, 5 s liveness, 100 ms latency threshold.
    pub fn new(listen: SocketAddr) -> HubConfig {
        HubConfig {
            listen,
            settings: Settings::default(),
            device: DeviceSpec::Virtual(Default::default()),
            token: None,
            mix: Mix::Minus,
            files: Vec::new(),
            max_clients: 256,
            max_pending: net_thread::DEFAULT_MAX_PENDING,
            max_pending_per_addr: net_thread::DEFAULT_MAX_PENDING_PER_ADDR,
            hello_timeout_ms: (net_thread::DEFAULT_HELLO_TIMEOUT_NS / 1_000_000) as u32,
        }
    }
}

/// Why a hub could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// A setting or file was refused; the message names it.
    #[error("{0}")]
    Config(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Something else failed to start or stop.
    #[error("{0}")]
    Failed(String),
}

/// A running hub.
pub struct Hub {
    rt: RtHandle<MixerState>,
    net: RtThread<std::io::Result<()>>,
    stop: Arc<Waker>,
    snapshot: Arc<SnapshotCell>,
    addr: SocketAddr,
}

impl Hub {
    /// Opens the clock device, loads the files, binds the socket and starts the mixer and
    /// net threads.
    ///
    /// # Errors
    /// [`HubError`] naming what was refused.
    pub fn start(cfg: HubConfig) -> Result<Hub, HubError> {
        // The virtual clock has no buffer to play out: its "periods" only decide how late
        // a wakeup may be before periods are skipped rather than caught up. Skipped
        // periods are holes in every client's mix, caught-up ones a burst their jitter
        // buffers absorb, so the hub's clock catches up over up to 16 periods.
        let periods = match cfg.device {
            DeviceSpec::Virtual(_) => StreamConfig::PERIODS.end().to_owned(),
            DeviceSpec::Alsa(_) | DeviceSpec::Jack(_) => cfg.settings.periods,
        };
        let stream = StreamConfig {
            rate: cfg.settings.rate,
            channels: cfg.settings.channels,
            period_frames: cfg.settings.period,
            periods,
        };
        let device = open(&cfg.device, Direction::Playback, stream)
            .map_err(|e| HubError::Config(e.to_string()))?;
        let obtained = device.obtained().clone();
        if obtained.rate != cfg.settings.rate {
            return Err(HubError::Config(format!(
                "device {} runs at {} Hz, not the {} Hz asked for",
                obtained.name, obtained.rate, cfg.settings.rate
            )));
        }
        let period = obtained.period_frames;
        let meter_cfg = cfg.settings.meter(cfg.settings.rate);
        let mut file_slots = Vec::new();
        let mut file_tracks = Vec::new();
        for path in &cfg.files {
            let clip = Clip::load(path, cfg.settings.rate, cfg.settings.channels)
                .map_err(|e| HubError::Config(format!("--file {}: {e}", path.display())))?;
            let meter = Meter::new(meter_cfg).map_err(|e| HubError::Config(e.to_string()))?;
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let stats = Arc::new(SlotStats::default());
            file_tracks.push(FileSource {
                name,
                path: path.display().to_string(),
                levels: meter.levels(),
                stats: Arc::clone(&stats),
            });
            file_slots.push(Box::new(Slot {
                input: Input::File(ClipReader::new(Arc::new(clip), true)),
                output: None,
                mode: MixMode::Full,
                meter,
                stats,
            }));
        }
        let slots = file_slots.len() + cfg.max_clients;
        let mixer = Mixer::new(MixerConfig {
            max_slots: slots,
            channels: cfg.settings.channels,
            period_frames: period,
            limit: Limit::SoftClip,
        })
        .map_err(|e| HubError::Config(e.to_string()))?;
        let (commands_tx, commands_rx) = RingBuffer::new(slots * 4 + 16);
        let (garbage_tx, garbage_rx) = RingBuffer::new(slots * 4 + 16);
        let failed = |e: std::io::Error| HubError::Failed(e.to_string());
        let mixed = Arc::new(Waker::new().map_err(failed)?);
        let stop = Arc::new(Waker::new().map_err(failed)?);
        let mixer_stats = Arc::new(MixerStats::default());
        let state = MixerState::new(
            mixer,
            cfg.settings.rate,
            file_slots,
            commands_rx,
            garbage_tx,
            Arc::clone(&mixed),
            Arc::clone(&mixer_stats),
        )
        .following(SkippedFrames::of(device.counters()));
        let listener = socket::listen(cfg.listen, 128).map_err(|source| HubError::Listen {
            addr: cfg.listen,
            source,
        })?;
        let _ = socket::tune(&listener, &SocketTuning::default());
        let addr = listener.local_addr().map_err(failed)?;
        let driver =
            Driver::new(DriverConfig::default()).map_err(|e| HubError::Failed(e.to_string()))?;
        let opts = RtOptions {
            name: "izyrt-hub-mixer".into(),
            priority: cfg.settings.priority,
            cpu: cfg.settings.cpu,
            lock_memory: true,
            period_frames: period,
            rate: cfg.settings.rate,
        };
        let rt = runner::start(&opts, device, driver, state, mixer_thread::step)
            .map_err(|e| HubError::Config(e.to_string()))?;
        let snapshot = Arc::new(SnapshotCell::new(default_snapshot()));
        let net_cfg = NetConfig {
            rate: cfg.settings.rate,
            channels: cfg.settings.channels,
            period,
            token: cfg.token.clone(),
            default_mix: cfg.mix,
            max_clients: cfg.max_clients,
            max_pending: cfg.max_pending,
            max_pending_per_addr: cfg.max_pending_per_addr,
            hello_timeout_ns: u64::from(cfg.hello_timeout_ms) * 1_000_000,
            liveness_ns: u64::from(cfg.settings.liveness_ms) * 1_000_000,
            latency_threshold_ns: u64::from(cfg.settings.latency_threshold_ms) * 1_000_000,
            meter: meter_cfg,
            session: session_id(),
            files: file_tracks,
            jitter_max_ms: cfg.settings.jitter_max_ms,
            jitter_min_ms: cfg.settings.jitter_min_ms,
        };
        let links = NetLinks {
            commands: commands_tx,
            garbage: garbage_rx,
            mixed,
            stop: Arc::clone(&stop),
            snapshot: Arc::clone(&snapshot),
            mixer: rt.status().clone(),
            mixer_stats,
        };
        let net = HubNet::new(net_cfg, links, listener, slots).map_err(failed)?;
        let net = thread::spawn(&rt.net_options("izyrt-hub-net"), move || net.run())
            .map_err(|e| HubError::Failed(e.to_string()))?;
        rt.go();
        Ok(Hub {
            rt,
            net,
            stop,
            snapshot,
            addr,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the publisher thread publishes the metrics snapshot.
    pub fn snapshot(&self) -> Arc<SnapshotCell> {
        Arc::clone(&self.snapshot)
    }

    /// The mixer thread's status.
    pub fn mixer_status(&self) -> &RtStatus {
        self.rt.status()
    }

    /// Whether a thread of the hub has ended (it should run until stopped).
    pub fn has_failed(&self) -> bool {
        self.rt.is_finished() || self.net.is_finished()
    }

    /// Says BYE to every client and stops both threads.
    ///
    /// # Errors
    /// [`HubError::Failed`] when a thread failed or panicked.
    pub fn stop(self) -> Result<(), HubError> {
        self.stop.wake();
        let net = self.net.join();
        self.rt.stop();
        let rt = self.rt.join();
        match (net, rt) {
            (Ok(Ok(())), Ok(end)) => end
                .result
                .map_err(|e| HubError::Failed(format!("mixer thread: {e}"))),
            (Ok(Err(e)), _) => Err(HubError::Failed(format!("net thread: {e}"))),
            _ => Err(HubError::Failed("a hub thread panicked".into())),
        }
    }
}

fn session_id() -> String {
    let t = crate::rt::clock::now_ns();
    format!("{:08x}", (t ^ (u64::from(std::process::id()) << 20)) as u32)
}
