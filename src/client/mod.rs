//! The hub's clients: a peer (captures a device, sends it to the hub, plays the mix it
//! gets back) and a monitor (receives the hub's full mix and METADATA, plays or meters it)
//! (main thread starts and stops them).
//!
//! Threads: one RT audio thread per device ([`audio_thread`]; a duplex device runs capture
//! and playback in one), the net thread ([`net_thread`]) and, started by the caller, the
//! HTTP metrics thread reading the [`SnapshotCell`] the net thread publishes into.
//!
//! # Example
//! ```no_run
//! use izyrt::client::{Client, ClientConfig, Devices};
//! let cfg = ClientConfig::peer("127.0.0.1:7100".parse().unwrap(), "alice",
//!     Devices::Duplex("virtual:tone=440".parse().unwrap()));
//! let client = Client::start(cfg)?;
//! client.stop()?;
//! # Ok::<(), izyrt::client::ClientError>(())
//! ```
#![cfg(target_os = "linux")]

pub mod audio_thread;
pub mod hub_input;
pub mod net_thread;
pub mod source;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rtrb::RingBuffer;

use crate::config::Settings;
use crate::device::{Device, DeviceSpec, Direction, SkippedFrames, StreamConfig, open};
use crate::dsp::jitter::{JitterConfig, half_period_ns};
use crate::dsp::meter::Meter;
use crate::dsp::playout::{Playout, PlayoutConfig};
use crate::dsp::ratio::{Decimator, Interpolator};
use crate::dsp::resampler::Resampler;
use crate::file::{RecordFormat, RecordTap, Recorder, WavRecording};
use crate::metrics::{SnapshotCell, default_snapshot};
use crate::net::Waker;
use crate::rt::driver::{Driver, DriverConfig};
use crate::rt::pipe::pipe;
use crate::rt::runner::{self, RtHandle, RtStatus};
use crate::rt::thread::{self, RtOptions, RtThread, net_thread_options};
use crate::wire::{AudioFormat, Mix, Role};
use audio_thread::{
    CaptureHalf, CaptureLock, ClickTrain, Duplex, MicStats, PlaybackHalf, SpeakerStats,
};
use net_thread::{ClientLinks, ClientNet, Identity, Refused};
use status::ClientView;

/// The devices a client uses.
#[derive(Debug, Clone)]
pub enum Devices {
    /// One device for capture and playback.
    Duplex(DeviceSpec),
    /// Separate capture and playback devices (two RT threads).
    Split {
        /// Capture device.
        capture: DeviceSpec,
        /// Playback device.
        playback: DeviceSpec,
    },
    /// Playback only (a monitor).
    Playback(DeviceSpec),
}

/// How a client is set up.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Hub address.
    pub hub: SocketAddr,
    /// `user`.
    pub user: String,
    /// HELLO token.
    pub token: Option<String>,
    /// `peer` or `monitor`.
    pub role: Role,
    /// Mix to ask for (None: the hub's default).
    pub mix: Option<Mix>,
    /// The devices.
    pub devices: Devices,
    /// Wire rate and packet size (the devices run at these × the ratios), channels,
    /// buffer, thresholds, RT priority.
    pub settings: Settings,
    /// `downsampleRatio`: capture decimation.
    pub downsample_ratio: u32,
    /// `upsampleRatio`: playback interpolation.
    pub upsample_ratio: u32,
    /// Wire format sent.
    pub format: AudioFormat,
    /// `enableQOSMetrics`.
    pub qos: bool,
    /// QOS interval, ms (0: after every AUDIO frame received).
    pub qos_interval_ms: u32,
    /// Record what the speaker plays into this WAV file (f32).
    pub record: Option<PathBuf>,
    /// Record what is sent to the hub (after decimation) into this WAV file (f32).
    pub record_capture: Option<PathBuf>,
    /// Play a click every this many device frames instead of the mix (`izyrt latency`
    /// through a loopback cable).
    pub click_every: Option<u32>,
    /// Publish the snapshot into this cell (one a metrics server already serves) instead
    /// of a new one.
    pub snapshot: Option<Arc<SnapshotCell>>,
}

impl ClientConfig {
    /// A peer with the defaults (48 kHz, 64-frame packets, stereo f32, no QOS).
    pub fn peer(hub: SocketAddr, user: &str, devices: Devices) -> ClientConfig {
        ClientConfig {
            hub,
            user: user.into(),
            token: None,
            role: Role::Peer,
            mix: None,
            devices,
            settings: Settings::default(),
            downsample_ratio: 1,
            upsample_ratio: 1,
            format: AudioFormat::F32,
            qos: false,
            qos_interval_ms: 0,
            record: None,
            record_capture: None,
            click_every: None,
            snapshot: None,
        }
    }

    /// A monitor: the full mix, played on `device` (`virtual` meters it).
    pub fn monitor(hub: SocketAddr, user: &str, device: DeviceSpec) -> ClientConfig {
        ClientConfig {
            role: Role::Monitor,
            mix: Some(Mix::Full),
            ..ClientConfig::peer(hub, user, Devices::Playback(device))
        }
    }
}

/// Why a client could not start or ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A setting or device was refused; the message names it.
    #[error("{0}")]
    Config(String),
    /// The hub refused this client for good.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// A thread failed.
    #[error("{0}")]
    Failed(String),
}

// Owned by the main thread, one per client: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Rt {
    Duplex(RtHandle<Duplex>),
    Split(RtHandle<CaptureHalf>, RtHandle<PlaybackHalf>),
    Playback(RtHandle<PlaybackHalf>),
}

/// A running client.
pub struct Client {
    rt: Rt,
    recorders: Vec<Recorder>,
    net: RtThread<Result<(), Refused>>,
    stop: Arc<Waker>,
    snapshot: Arc<SnapshotCell>,
}

fn config_err(e: impl std::fmt::Display) -> ClientError {
    ClientError::Config(e.to_string())
}

impl Client {
    /// Opens the devices and starts the RT and net threads; the client connects (and
    /// reconnects) by itself.
    ///
    /// # Errors
    /// [`ClientError::Config`] naming a refused setting or device.
    pub fn start(cfg: ClientConfig) -> Result<Client, ClientError> {
        let ch = cfg.settings.channels;
        let (down, up) = (cfg.downsample_ratio.max(1), cfg.upsample_ratio.max(1));
        if matches!(cfg.devices, Devices::Duplex(_)) && down != up {
            return Err(ClientError::Config(format!(
                "--downsample-ratio {down} and --upsample-ratio {up} must be equal on one duplex device"
            )));
        }
        let stream = |ratio: u32| StreamConfig {
            rate: cfg.settings.rate * ratio,
            channels: ch,
            period_frames: cfg.settings.period * ratio,
            periods: cfg.settings.periods,
        };
        let open_dev = |spec: &DeviceSpec, dir: Direction, ratio: u32| {
            let dev = open(spec, dir, stream(ratio)).map_err(config_err)?;
            check_obtained(&*dev, stream(ratio))?;
            Ok::<_, ClientError>(dev)
        };
        let meter_cfg = |rate: u32| cfg.settings.meter(rate);
        let captured = Arc::new(Waker::new().map_err(config_err)?);
        let stop = Arc::new(Waker::new().map_err(config_err)?);
        let snapshot = cfg
            .snapshot
            .clone()
            .unwrap_or_else(|| Arc::new(SnapshotCell::new(default_snapshot())));

        // Playback half.
        let (recorder, tap) = recording(cfg.record.as_deref(), cfg.settings.rate * up, ch)?;
        let (capture_recorder, capture_tap) =
            recording(cfg.record_capture.as_deref(), cfg.settings.rate, ch)?;
        let (mix_tx, mix_rx) = pipe(ch, 4096, 128);
        let (cmd_tx, cmd_rx) = RingBuffer::new(16);
        let speaker = Arc::new(SpeakerStats::default());
        let jc = jitter_config(ch, cfg.settings.period, cfg.settings.rate)
            .capped(cfg.settings.jitter_max_ms, cfg.settings.rate)
            .floored(cfg.settings.jitter_min_ms, cfg.settings.rate);
        speaker
            .max_frames
            .store(u64::from(jc.max_target_frames), Ordering::Relaxed);
        let meter = Meter::new(meter_cfg(cfg.settings.rate * up)).map_err(config_err)?;
        let speaker_levels = meter.levels();
        let mut playback = PlaybackHalf {
            input: mix_rx,
            commands: cmd_rx,
            playout: Playout::new(PlayoutConfig {
                ring: jc,
                rate: cfg.settings.rate,
                pull_frames: cfg.settings.period,
            })
            .map_err(config_err)?,
            interpolator: (up > 1)
                .then(|| Interpolator::new(up, ch, (cfg.settings.period * up) as usize))
                .transpose()
                .map_err(config_err)?,
            wire: vec![0.0; cfg.settings.period as usize * usize::from(ch)],
            meter,
            levels: Arc::clone(&speaker_levels),
            stats: Arc::clone(&speaker),
            channels: usize::from(ch),
            tap,
            clicks: cfg.click_every.map(|every| ClickTrain {
                every: u64::from(every),
                played: 0,
            }),
            skipped: SkippedFrames::default(),
            input_stopped: false,
        };

        // Capture half (peer).
        let mut capture_rx = None;
        let mut mic = None;
        let capture = if cfg.role == Role::Monitor {
            None
        } else {
            let (tx, rx) = pipe(ch, cfg.settings.period * 32, 32);
            capture_rx = Some(rx);
            let meter = Meter::new(meter_cfg(cfg.settings.rate * down)).map_err(config_err)?;
            let stats = Arc::new(MicStats::default());
            mic = Some((Arc::clone(&stats), meter.levels()));
            Some(CaptureHalf {
                out: tx,
                waker: Arc::clone(&captured),
                decimator: (down > 1)
                    .then(|| Decimator::new(down, ch, (cfg.settings.period * down) as usize))
                    .transpose()
                    .map_err(config_err)?,
                wire: vec![0.0; cfg.settings.period as usize * usize::from(ch)],
                meter,
                stats,
                channels: usize::from(ch),
                position: 0,
                tap: capture_tap,
                lock: Some(CaptureLock {
                    resampler: Resampler::new(ch, cfg.settings.period as usize * 4)
                        .map_err(config_err)?,
                    clock: Arc::clone(&speaker),
                    hub: hub_input::HubInputLoop::new(cfg.settings.rate),
                    out: vec![0.0; cfg.settings.period as usize * 4 * usize::from(ch)],
                    period: cfg.settings.period as usize,
                }),
                skipped: SkippedFrames::default(),
            })
        };

        let tag = if cfg.role == Role::Monitor {
            "monitor"
        } else {
            "peer"
        };
        let opts = |what: &str, ratio: u32| RtOptions {
            name: format!("izyrt-{tag}-{what}"),
            priority: cfg.settings.priority,
            cpu: cfg.settings.cpu,
            lock_memory: true,
            period_frames: cfg.settings.period * ratio,
            rate: cfg.settings.rate * ratio,
        };
        let driver = || Driver::new(DriverConfig::default()).map_err(config_err);
        let (rt, device_rate, device_buffer) = match (&cfg.devices, capture) {
            (Devices::Duplex(spec), Some(mut capture)) => {
                let dev = open_dev(spec, Direction::Duplex, up)?;
                let o = dev.obtained().clone();
                // One device: its xruns skip both directions' frames.
                playback.skipped = SkippedFrames::of(dev.counters());
                capture.skipped = SkippedFrames::of(dev.counters());
                let h = runner::start(
                    &opts("audio", up),
                    dev,
                    driver()?,
                    Duplex { capture, playback },
                    audio_thread::step_duplex,
                )
                .map_err(config_err)?;
                (Rt::Duplex(h), o.rate, o.buffer_frames)
            }
            (
                Devices::Split {
                    capture: c,
                    playback: p,
                },
                Some(mut capture),
            ) => {
                let cdev = open_dev(c, Direction::Capture, down)?;
                let pdev = open_dev(p, Direction::Playback, up)?;
                let o = pdev.obtained().clone();
                playback.skipped = SkippedFrames::of(pdev.counters());
                capture.skipped = SkippedFrames::of(cdev.counters());
                let ch = runner::start(
                    &opts("capture", down),
                    cdev,
                    driver()?,
                    capture,
                    audio_thread::step_capture,
                )
                .map_err(config_err)?;
                let ph = runner::start(
                    &opts("playback", up),
                    pdev,
                    driver()?,
                    playback,
                    audio_thread::step_playback,
                )
                .map_err(config_err)?;
                (Rt::Split(ch, ph), o.rate, o.buffer_frames)
            }
            (Devices::Playback(spec), None) => {
                let dev = open_dev(spec, Direction::Playback, up)?;
                let o = dev.obtained().clone();
                playback.skipped = SkippedFrames::of(dev.counters());
                let h = runner::start(
                    &opts("playback", up),
                    dev,
                    driver()?,
                    playback,
                    audio_thread::step_playback,
                )
                .map_err(config_err)?;
                (Rt::Playback(h), o.rate, o.buffer_frames)
            }
            _ => {
                return Err(ClientError::Config(
                    "a peer needs a capture device and a monitor must not have one".into(),
                ));
            }
        };
        let threads: Vec<RtStatus> = match &rt {
            Rt::Duplex(h) => vec![h.status().clone()],
            Rt::Split(c, p) => vec![c.status().clone(), p.status().clone()],
            Rt::Playback(h) => vec![h.status().clone()],
        };
        let view = ClientView::new(
            speaker,
            speaker_levels,
            mic,
            threads,
            device_rate,
            device_buffer,
            u64::from(cfg.settings.latency_threshold_ms) * 1_000_000,
        );
        let id = Identity {
            hub: cfg.hub,
            user: cfg.user.clone(),
            token: cfg.token.clone(),
            role: cfg.role,
            mix: cfg.mix,
            rate: cfg.settings.rate,
            channels: ch,
            frames_per_packet: cfg.settings.period,
            format: cfg.format,
            qos: cfg.qos,
            qos_interval_ms: cfg.qos_interval_ms,
            liveness_ns: u64::from(cfg.settings.liveness_ms) * 1_000_000,
        };
        let links = ClientLinks {
            capture: capture_rx,
            captured,
            mix: mix_tx,
            playback: cmd_tx,
            stop: Arc::clone(&stop),
            snapshot: Arc::clone(&snapshot),
        };
        let net = ClientNet::new(id, links, view).map_err(config_err)?;
        // The audio threads' net priority (a device's plugin may have moved it:
        // `rt::plugin_threads::net_priority`), the lower of two.
        let priority = match &rt {
            Rt::Duplex(h) => h.net_priority(),
            Rt::Playback(h) => h.net_priority(),
            Rt::Split(c, p) => c.net_priority().min(p.net_priority()),
        };
        let net_opts = RtOptions {
            priority,
            ..net_thread_options(&format!("izyrt-{tag}-net"), &opts("net", 1))
        };
        let net = thread::spawn(&net_opts, move || net.run()).map_err(config_err)?;
        match &rt {
            Rt::Duplex(h) => h.go(),
            Rt::Split(c, p) => {
                c.go();
                p.go();
            }
            Rt::Playback(h) => h.go(),
        }
        Ok(Client {
            rt,
            recorders: recorder.into_iter().chain(capture_recorder).collect(),
            net,
            stop,
            snapshot,
        })
    }

    /// Each device as opened, with the direction it runs (for the sound-server warning).
    pub fn devices(&self) -> Vec<(Direction, crate::device::Obtained)> {
        match &self.rt {
            Rt::Duplex(h) => vec![(Direction::Duplex, h.status().obtained.clone())],
            Rt::Split(c, p) => vec![
                (Direction::Capture, c.status().obtained.clone()),
                (Direction::Playback, p.status().obtained.clone()),
            ],
            Rt::Playback(h) => vec![(Direction::Playback, h.status().obtained.clone())],
        }
    }

    /// Where the net thread publishes the metrics snapshot.
    pub fn snapshot(&self) -> Arc<SnapshotCell> {
        Arc::clone(&self.snapshot)
    }

    /// Whether the client ended by itself (refused by the hub, or a thread failed).
    pub fn has_ended(&self) -> bool {
        self.net.is_finished()
            || match &self.rt {
                Rt::Duplex(h) => h.is_finished(),
                Rt::Split(c, p) => c.is_finished() || p.is_finished(),
                Rt::Playback(h) => h.is_finished(),
            }
    }

    /// Says BYE to the hub and stops every thread.
    ///
    /// # Errors
    /// [`ClientError::Refused`] when the hub had refused this client for good;
    /// [`ClientError::Failed`] when a device failed or a thread panicked.
    pub fn stop(self) -> Result<(), ClientError> {
        self.stop.wake();
        let net = self
            .net
            .join()
            .map_err(|_| ClientError::Failed("the net thread panicked".into()))?;
        let mut failure = None;
        let mut end = |r: std::thread::Result<Result<(), crate::rt::driver::DriverError>>| match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e.to_string()),
            Err(_) => failure = Some("an RT thread panicked".into()),
        };
        match self.rt {
            Rt::Duplex(h) => {
                h.stop();
                end(h.join().map(|e| e.result));
            }
            Rt::Split(c, p) => {
                c.stop();
                p.stop();
                end(c.join().map(|e| e.result));
                end(p.join().map(|e| e.result));
            }
            Rt::Playback(h) => {
                h.stop();
                end(h.join().map(|e| e.result));
            }
        }
        for r in self.recorders {
            if let Err(e) = r.stop() {
                failure.get_or_insert(e.to_string());
            }
        }
        net?;
        match failure {
            Some(f) => Err(ClientError::Failed(f)),
            None => Ok(()),
        }
    }
}

/// A WAV recording fed from an RT thread through a tap, when `path` is given.
fn recording(
    path: Option<&std::path::Path>,
    rate: u32,
    channels: u16,
) -> Result<(Option<Recorder>, Option<RecordTap>), ClientError> {
    let Some(path) = path else {
        return Ok((None, None));
    };
    let wav = WavRecording::create(path, rate, channels, RecordFormat::F32).map_err(config_err)?;
    let (r, t) = Recorder::with_tap(wav, rate as usize).map_err(config_err)?;
    Ok((Some(r), Some(t)))
}

/// The device must run at the rate asked (the wire rate follows from it) and at the
/// period asked (one packet per period).
fn check_obtained(dev: &dyn Device, asked: StreamConfig) -> Result<(), ClientError> {
    let o = dev.obtained();
    if o.rate != asked.rate || o.period_frames != asked.period_frames {
        return Err(ClientError::Config(format!(
            "device {} gave {} Hz with {}-frame periods; izyrt needs exactly {} Hz and {}-frame periods (try another --period)",
            o.name, o.rate, o.period_frames, asked.rate, asked.period_frames
        )));
    }
    Ok(())
}

/// The speaker's jitter buffer: pulled one wire period at a time. The hub's packets may
/// be larger than ours, so the ring has room for 256 frames beyond the largest target.
/// The slack stays 4 periods: a large packet lifts the depth above it only until the next
/// few pulls, so it is never trimmed (that needs a whole second above), while the excess
/// a speaker's xruns leave behind is trimmed down to 4 periods, not 256 frames (16
/// periods at 16 frames).
fn jitter_config(channels: u16, period: u32, rate: u32) -> JitterConfig {
    let slack = period * 4;
    let max_target = period * 32;
    JitterConfig {
        channels,
        period_frames: period,
        capacity_frames: max_target + slack.max(256) + period * 2,
        initial_target_frames: period,
        min_target_frames: period,
        max_target_frames: max_target,
        slack_frames: slack,
        steady_pulls: (rate * 5 / period).max(1),
        drift_pulls: (rate / period).max(1),
        margin_ns: half_period_ns(period, rate),
    }
}

#[cfg(test)]
mod tests;
