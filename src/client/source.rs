//! A `source` client: streams a WAV file to a hub, paced in real time (main thread starts
//! and stops it; the pacing runs on an RT thread).
//!
//! Design: a source is a peer without a speaker. It shares the peer's net thread
//! ([`super::net_thread`]: HELLO with role `source`, reconnects, AUDIO out) and its
//! capture half ([`CaptureHalf`]: meter, packetize, hand to the net thread), and replaces
//! the sound card by the built-in `virtual` device, whose absolute-time clock
//! (`clock_nanosleep(TIMER_ABSTIME)`) wakes the RT thread once per period: each wakeup
//! hands the next period of the file to the capture half, so the file leaves at exactly
//! the stream rate, as a microphone would. The file is decoded and resampled to the stream
//! rate and channels before anything starts ([`Clip::load`]); the RT thread only copies
//! from it, allocation-free.
//!
//! The RT thread is held back until the hub has WELCOMEd the source, so the file is
//! streamed from its first frame. At the end of the file (unless looping) the RT thread
//! stops sending and raises [`Source::finished`]; [`Source::stop`] then lets the net thread
//! send what is queued, say BYE and end.
//!
//! # Example
//! ```no_run
//! use izyrt::client::source::{Source, SourceConfig};
//! let cfg = SourceConfig::new("127.0.0.1:7100".parse().unwrap(), "jingle", "jingle.wav".into());
//! let source = Source::start(cfg)?;
//! while !source.joined() && !source.has_ended() {
//!     std::thread::sleep(std::time::Duration::from_millis(10));
//! }
//! source.go();
//! while !source.finished() && !source.has_ended() {
//!     std::thread::sleep(std::time::Duration::from_millis(10));
//! }
//! source.stop()?;
//! # Ok::<(), izyrt::client::ClientError>(())
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rtrb::RingBuffer;

use super::ClientError;
use super::audio_thread::{CaptureHalf, MicStats, SpeakerStats};
use super::net_thread::{ClientLinks, ClientNet, Identity, Refused};
use super::status::ClientView;
use crate::config::Settings;
use crate::device::{DeviceSpec, Direction, SkippedFrames, StreamConfig, open};
use crate::dsp::meter::Meter;
use crate::file::{Clip, ClipReader};
use crate::metrics::{SnapshotCell, default_snapshot};
use crate::net::Waker;
use crate::rt::driver::{Driver, DriverConfig};
use crate::rt::pipe::pipe;
use crate::rt::runner::{self, RtHandle};
use crate::rt::thread::{self, RtOptions, RtThread};
use crate::wire::{AudioFormat, Role};

/// How a source is set up.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Hub address.
    pub hub: SocketAddr,
    /// `user` in HELLO.
    pub user: String,
    /// HELLO token.
    pub token: Option<String>,
    /// The WAV/RIFF file to stream.
    pub file: PathBuf,
    /// Start again at the end of the file instead of ending.
    pub looping: bool,
    /// Stream rate (the hub's), packet size, channels, RT priority.
    pub settings: Settings,
    /// Wire format sent.
    pub format: AudioFormat,
}

impl SourceConfig {
    /// A source with the defaults (48 kHz, 64-frame packets, stereo f32, no loop).
    pub fn new(hub: SocketAddr, user: &str, file: PathBuf) -> SourceConfig {
        SourceConfig {
            hub,
            user: user.into(),
            token: None,
            file,
            looping: false,
            settings: Settings::default(),
            format: AudioFormat::F32,
        }
    }
}

/// The RT state: the file, one period of it, and the capture half it feeds.
pub struct FilePacer {
    reader: ClipReader,
    period: Vec<f32>,
    capture: CaptureHalf,
    finished: Arc<AtomicBool>,
}

/// One period of the source (RT): the next period of the file to the capture half, or
/// nothing once the file has ended.
///
/// Runs on: the source's RT thread, once per period of its clock. Must not: allocate,
/// lock, block.
pub fn step_file(s: &mut FilePacer, _capture: &[f32], _playback: &mut [f32]) {
    if s.reader.is_finished() {
        s.finished.store(true, Ordering::Relaxed);
        return;
    }
    s.reader.read(&mut s.period);
    s.capture.capture(&s.period);
}

/// A running source.
pub struct Source {
    rt: RtHandle<FilePacer>,
    net: RtThread<Result<(), Refused>>,
    stop: Arc<Waker>,
    snapshot: Arc<SnapshotCell>,
    finished: Arc<AtomicBool>,
    user: String,
    clip_seconds: f64,
}

fn config_err(e: impl std::fmt::Display) -> ClientError {
    ClientError::Config(e.to_string())
}

impl Source {
    /// Loads the file, opens the clock, starts the net thread (which connects by itself)
    /// and the RT thread, held until [`Source::go`].
    ///
    /// # Errors
    /// [`ClientError::Config`] naming the file or setting refused.
    pub fn start(cfg: SourceConfig) -> Result<Source, ClientError> {
        let s = &cfg.settings;
        let ch = s.channels;
        let clip = Clip::load(&cfg.file, s.rate, ch)
            .map_err(|e| ClientError::Config(format!("--file {}: {e}", cfg.file.display())))?;
        let clip_seconds = clip.duration().as_secs_f64();
        let stream = StreamConfig {
            rate: s.rate,
            channels: ch,
            period_frames: s.period,
            periods: s.periods,
        };
        let clock = open(
            &DeviceSpec::Virtual(Default::default()),
            Direction::Capture,
            stream,
        )
        .map_err(config_err)?;
        let captured = Arc::new(Waker::new().map_err(config_err)?);
        let stop = Arc::new(Waker::new().map_err(config_err)?);
        let snapshot = Arc::new(SnapshotCell::new(default_snapshot()));
        let (tx, capture_rx) = pipe(ch, s.period * 32, 32);
        let meter = Meter::new(s.meter(s.rate)).map_err(config_err)?;
        let stats = Arc::new(MicStats::default());
        let mic = (Arc::clone(&stats), meter.levels());
        let samples = s.period as usize * usize::from(ch);
        let finished = Arc::new(AtomicBool::new(false));
        let pacer = FilePacer {
            reader: ClipReader::new(Arc::new(clip), cfg.looping),
            period: vec![0.0; samples],
            capture: CaptureHalf {
                out: tx,
                waker: Arc::clone(&captured),
                decimator: None,
                wire: vec![0.0; samples],
                meter,
                stats,
                channels: usize::from(ch),
                position: 0,
                tap: None,
                // The file is at the stream rate by construction: nothing to lock to.
                lock: None,
                skipped: SkippedFrames::default(),
            },
            finished: Arc::clone(&finished),
        };
        let opts = RtOptions {
            name: "izyrt-source-clock".into(),
            priority: s.priority,
            cpu: s.cpu,
            lock_memory: true,
            period_frames: s.period,
            rate: s.rate,
        };
        let driver = Driver::new(DriverConfig::default()).map_err(config_err)?;
        let rt = runner::start(&opts, clock, driver, pacer, step_file).map_err(config_err)?;

        // A source hears nothing: its speaker figures stay empty.
        let speaker_levels = Meter::new(s.meter(s.rate)).map_err(config_err)?.levels();
        let view = ClientView::new(
            Arc::new(SpeakerStats::default()),
            speaker_levels,
            Some(mic),
            vec![rt.status().clone()],
            s.rate,
            0,
            u64::from(s.latency_threshold_ms) * 1_000_000,
        );
        let id = Identity {
            hub: cfg.hub,
            user: cfg.user.clone(),
            token: cfg.token.clone(),
            role: Role::Source,
            mix: None,
            rate: s.rate,
            channels: ch,
            frames_per_packet: s.period,
            format: cfg.format,
            qos: false,
            qos_interval_ms: 0,
            liveness_ns: u64::from(s.liveness_ms) * 1_000_000,
        };
        let (mix, _) = pipe(ch, 256, 2);
        let (playback, _) = RingBuffer::new(1);
        let links = ClientLinks {
            capture: Some(capture_rx),
            captured,
            mix,
            playback,
            stop: Arc::clone(&stop),
            snapshot: Arc::clone(&snapshot),
        };
        let net = ClientNet::new(id, links, view).map_err(config_err)?;
        let net = thread::spawn(&rt.net_options("izyrt-source-net"), move || net.run())
            .map_err(config_err)?;
        Ok(Source {
            rt,
            net,
            stop,
            snapshot,
            finished,
            user: cfg.user,
            clip_seconds,
        })
    }

    /// Whether the hub has WELCOMEd this source (from the published snapshot).
    pub fn joined(&self) -> bool {
        self.snapshot.latest()["connections"][&self.user]["connected"] == true
    }

    /// Starts streaming the file (call once [`Source::joined`]).
    pub fn go(&self) {
        self.rt.go();
    }

    /// The file's length after conversion, seconds.
    pub fn seconds(&self) -> f64 {
        self.clip_seconds
    }

    /// Whether the whole file has been handed to the net thread (never when looping).
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    /// Whether a thread ended by itself (the hub refused the source, or the clock failed).
    pub fn has_ended(&self) -> bool {
        self.net.is_finished() || self.rt.is_finished()
    }

    /// Where the net thread publishes the metrics snapshot.
    pub fn snapshot(&self) -> Arc<SnapshotCell> {
        Arc::clone(&self.snapshot)
    }

    /// Sends what is queued, says BYE and stops both threads.
    ///
    /// # Errors
    /// [`ClientError::Refused`] when the hub refused the source; [`ClientError::Failed`]
    /// when the clock failed or a thread panicked.
    pub fn stop(self) -> Result<(), ClientError> {
        self.stop.wake();
        let net = self
            .net
            .join()
            .map_err(|_| ClientError::Failed("the net thread panicked".into()))?;
        self.rt.stop(); // a thread never told to go ends at once when joined

        let end = self
            .rt
            .join()
            .map_err(|_| ClientError::Failed("the source's RT thread panicked".into()))?;
        net?;
        end.result.map_err(|e| ClientError::Failed(e.to_string()))
    }
}
