//! `izyrt latency --device DEV [--hub ADDR] [--seconds S] [--period FRAMES]`: the round
//! trip from capture to playback through a hub in `loopback` mix (main thread).
//!
//! Without `--hub` an embedded hub runs on loopback; with it, the peer asks that hub for
//! the `loopback` mix. Two ways of knowing when a click started (see `izyrt::measure`):
//! - on a `virtual` device its capture is replaced by the `impulse` click train, and what
//!   was captured and what was played are recorded from the same cycle: the figure is
//!   exact (a whole number of frames);
//! - on a sound card the speaker plays a click train instead of the mix and a loopback
//!   cable from output to input brings it back into the capture; the mix that returns
//!   from the hub is recorded and each click found to a fraction of a frame. The figure
//!   then includes the card's own output and input latency and the cable, i.e. the whole
//!   capture-to-playback path a musician experiences.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::CliError;
use super::peer::client_error;
use super::role_args::{DEFAULT_HUB_PORT, RoleArgs, resolve_addr};
use super::rt_session::print_json;
use super::serve;
use crate::client::{Client, ClientConfig, Devices};
use crate::device::{DeviceSpec, Signal};
use crate::hub::{Hub, HubConfig};
use crate::measure::{click_delays, pair_clicks, summarise};
use crate::wire::Mix;

/// Arguments of `izyrt latency`.
#[derive(Debug, clap::Args)]
pub struct LatencyArgs {
    /// The device: `virtual` (exact), or a sound card with a loopback cable from its
    /// output to its input.
    #[arg(long, value_name = "DEV")]
    pub device: String,
    /// Measure through this hub (asking it for the `loopback` mix) instead of an embedded
    /// one.
    #[arg(long, value_name = "ADDR")]
    pub hub: Option<String>,
    /// How long to measure (one click per second; the first two are not counted).
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub seconds: u64,
    /// User name at the hub.
    #[arg(long, value_name = "ID", default_value = "latency")]
    pub user: String,
    /// Print the result as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
    /// Options every role takes (`--period`, `--rate`, `--periods`, `--token`, ...).
    #[command(flatten)]
    pub role: RoleArgs,
}

/// Runs `izyrt latency`.
///
/// # Errors
/// [`CliError`] naming a refused option, or when no click came back.
pub fn run(args: &LatencyArgs) -> Result<i32, CliError> {
    let role = args.role.resolve("none")?;
    if args.seconds < 4 {
        return Err(CliError::Usage(format!(
            "--seconds {} is not allowed (allowed: 4 or more: one click a second, the first two skipped)",
            args.seconds
        )));
    }
    let spec: DeviceSpec = args
        .device
        .parse()
        .map_err(|e| CliError::Usage(format!("--device {}: {e}", args.device)))?;
    let cable = !matches!(spec, DeviceSpec::Virtual(_));
    let spec = match spec {
        DeviceSpec::Virtual(mut o) => {
            o.signal = Signal::Impulse;
            DeviceSpec::Virtual(o)
        }
        alsa => alsa,
    };
    let rate = role.settings.rate;
    serve::prepare_signals();
    let hub = match &args.hub {
        Some(_) => None,
        None => {
            let mut cfg = HubConfig::new(resolve_addr("--hub", "127.0.0.1:0", None)?);
            cfg.settings = role.settings.clone();
            cfg.mix = Mix::Loopback;
            cfg.token = role.token.clone();
            Some(Hub::start(cfg).map_err(|e| CliError::Usage(e.to_string()))?)
        }
    };
    let addr = match (&args.hub, &hub) {
        (Some(a), _) => resolve_addr("--hub", a, Some(DEFAULT_HUB_PORT))?,
        (None, Some(h)) => h.local_addr(),
        (None, None) => unreachable!("an embedded hub when none is given"),
    };
    let dir = std::env::temp_dir().join(format!("izyrt-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| CliError::Io {
        context: format!("creating {}", dir.display()),
        source: e,
    })?;
    let (played, sent) = (dir.join("played.wav"), dir.join("sent.wav"));
    let mut cfg = ClientConfig::peer(addr, &args.user, Devices::Duplex(spec));
    cfg.settings = role.settings.clone();
    cfg.token = role.token.clone();
    cfg.mix = Some(Mix::Loopback);
    cfg.record = Some(played.clone());
    if cable {
        cfg.click_every = Some(rate);
        eprintln!(
            "latency:   playing clicks on {}: connect its output to its input",
            args.device
        );
    } else {
        cfg.record_capture = Some(sent.clone());
    }
    let client = match Client::start(cfg) {
        Ok(c) => c,
        Err(e) => {
            if let Some(h) = hub {
                let _ = h.stop();
            }
            return Err(client_error(e));
        }
    };
    eprintln!(
        "latency:   {} s through the hub at {addr}, {}-frame periods at {rate} Hz",
        args.seconds, role.settings.period
    );
    let start = Instant::now();
    let until = Duration::from_secs(args.seconds);
    let ended = serve::wait(|| client.has_ended() || start.elapsed() >= until, || {});
    let peer = client.snapshot().latest();
    let hub_snap = hub.as_ref().map(|h| h.snapshot().latest());
    let stopped = client.stop();
    if let Some(h) = hub {
        let _ = h.stop();
    }
    stopped.map_err(client_error)?;
    let analysis = analyse(&played, &sent, cable, rate);
    let _ = std::fs::remove_dir_all(&dir);
    let delays = analysis?;
    let Some(s) = summarise(&delays[2.min(delays.len())..]) else {
        return Err(CliError::Failed(if cable {
            format!(
                "no click came back: is {}'s output cabled to its input?",
                args.device
            )
        } else {
            "no click came back through the hub".into()
        }));
    };
    let ms = |f: f64| f * 1000.0 / f64::from(rate);
    let misses = peer["connections"][&args.user]["missesTotal"]
        .as_u64()
        .unwrap_or(0);
    let hub_misses = hub_snap
        .as_ref()
        .and_then(|h| h["connections"][&args.user]["jitterMisses"].as_u64());
    let threads = || {
        std::iter::once(&*peer)
            .chain(hub_snap.as_deref())
            .flat_map(|s| s["realtime"].as_object().into_iter().flatten())
    };
    let xruns: u64 = threads().filter_map(|(_, t)| t["xruns"].as_u64()).sum();
    // How late the RT threads woke meanwhile: the machine's share of the figure. The worst
    // single wakeup says whether a miss was the host's (a stall longer than the buffers).
    let worst = |key: &str| {
        threads()
            .filter_map(|(_, t)| t[key].as_f64())
            .fold(0.0, f64::max)
    };
    let (wakeup, wakeup_max) = (worst("p999Us"), worst("maxUs"));
    if args.json {
        print_json(
            match json!({
                "device": args.device,
                "method": if cable { "loopback cable" } else { "virtual, exact" },
                "rate": rate,
                "periodFrames": role.settings.period,
                "clicks": s.count,
                "lost": s.lost,
                "p50Frames": s.p50, "p99Frames": s.p99, "maxFrames": s.max,
                "p50Ms": ms(s.p50), "p99Ms": ms(s.p99), "maxMs": ms(s.max),
                "peerMisses": misses,
                "hubMisses": hub_misses,
                "xruns": xruns,
                "worstWakeupP999Us": wakeup,
                "worstWakeupMaxUs": wakeup_max,
            }) {
                serde_json::Value::Object(m) => m,
                _ => unreachable!("an object literal"),
            },
        )?;
    } else {
        eprintln!(
            "round trip: p50 {:.1} frames ({:.3} ms), p99 {:.1} frames ({:.3} ms), max {:.1} frames ({:.3} ms)",
            s.p50,
            ms(s.p50),
            s.p99,
            ms(s.p99),
            s.max,
            ms(s.max)
        );
        eprintln!(
            "clicks:    {} measured, {} lost; misses: peer {misses}, hub {}; xruns {xruns}; worst RT wakeup p99.9 {wakeup:.0} µs, max {wakeup_max:.0} µs",
            s.count,
            s.lost,
            hub_misses.map_or("-".into(), |m| m.to_string())
        );
    }
    if ended.is_err() && start.elapsed() < until {
        return Err(CliError::Failed("the peer stopped early".into()));
    }
    Ok(0)
}

/// The delay of each click, from the recordings.
fn analyse(
    played: &Path,
    sent: &Path,
    cable: bool,
    rate: u32,
) -> Result<Vec<Option<f64>>, CliError> {
    let channel0 = |path: &Path| -> Result<Vec<f32>, CliError> {
        let mut r = hound::WavReader::open(path)
            .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))?;
        let ch = usize::from(r.spec().channels.max(1));
        r.samples::<f32>()
            .step_by(ch)
            .collect::<Result<_, _>>()
            .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))
    };
    let window = rate as usize / 2;
    Ok(if cable {
        click_delays(&channel0(played)?, rate as usize, window)
    } else {
        pair_clicks(&channel0(sent)?, &channel0(played)?, window, window)
    })
}
