//! Dev mode, `izyrt --device DEV`: an embedded hub and one peer in one process (the peer
//! hears the hub's `full` mix), metrics on 127.0.0.1:7180, a one-line live status, Ctrl-C
//! stops it cleanly (main thread).
//!
//! The hub listens on loopback (an ephemeral port unless `--listen` says otherwise) and
//! the peer connects to it over real TCP, so dev mode exercises exactly the path a
//! workstation and a remote hub take. The metrics snapshot is the peer's, with the hub's
//! per-user `connections` and both processes' `realtime` threads merged in.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::CliError;
use super::peer::client_error;
use super::role_args::{RoleArgs, resolve_addr};
use super::serve;
use crate::client::{Client, ClientConfig, Devices};
use crate::hub::{Hub, HubConfig};
use crate::metrics::{SnapshotCell, default_snapshot};
use crate::wire::Mix;

/// Arguments of dev mode (`izyrt --device DEV`).
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Run dev mode on this device (`virtual:tone=440` without a sound card).
    #[arg(long, value_name = "DEV")]
    pub device: Option<String>,
    /// Where the embedded hub listens (default 127.0.0.1 on a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Decimate the capture by this ratio before sending (`downsampleRatio`; equal to
    /// `--upsample-ratio` on one duplex device).
    #[arg(long = "downsample-ratio", value_name = "N")]
    pub downsample_ratio: Option<u32>,
    /// Interpolate the mix by this ratio before playing (`upsampleRatio`).
    #[arg(long = "upsample-ratio", value_name = "N")]
    pub upsample_ratio: Option<u32>,
    /// Options every role takes.
    #[command(flatten)]
    pub role: RoleArgs,
}

/// Runs dev mode until Ctrl-C/SIGTERM.
///
/// # Errors
/// [`CliError`] naming what was refused or failed.
pub fn run(args: &DevArgs) -> Result<i32, CliError> {
    let role = args.role.resolve("127.0.0.1:7180")?;
    let device = role
        .device("--device", args.device.as_deref(), "device", None)?
        .ok_or_else(|| CliError::Usage("--device is required for dev mode".into()))?;
    let down = super::peer::ratio(&role, "downsampleRatio", args.downsample_ratio)?;
    let up = super::peer::ratio(&role, "upsampleRatio", args.upsample_ratio)?;
    let listen = resolve_addr("--listen", args.listen.as_deref().unwrap_or("127.0.0.1:0"))?;
    let mut hub_cfg = HubConfig::new(listen);
    hub_cfg.settings = role.settings.clone();
    hub_cfg.token = role.token.clone();
    hub_cfg.mix = Mix::Full;

    serve::prepare_signals();
    let hub = Hub::start(hub_cfg).map_err(|e| CliError::Usage(e.to_string()))?;
    let mut cfg = ClientConfig::peer(hub.local_addr(), "dev", Devices::Duplex(device));
    cfg.mix = Some(Mix::Full);
    cfg.qos = true;
    cfg.qos_interval_ms = 100;
    cfg.token = role.token.clone();
    cfg.settings = role.settings.clone();
    cfg.downsample_ratio = down;
    cfg.upsample_ratio = up;
    let client = match Client::start(cfg) {
        Ok(c) => c,
        Err(e) => {
            let _ = hub.stop();
            return Err(client_error(e));
        }
    };
    super::peer::warn_devices(&client);
    eprintln!(
        "dev mode:  hub on {}, peer \"dev\" hears the full mix",
        hub.local_addr()
    );
    let cell = Arc::new(SnapshotCell::new(default_snapshot()));
    let metrics = match serve::start_metrics(role.metrics, Arc::clone(&cell)) {
        Ok(m) => m,
        Err(e) => {
            let _ = client.stop();
            let _ = hub.stop();
            return Err(e);
        }
    };
    let tty = std::io::stderr().is_terminal();
    let mut last_line = Instant::now();
    let (hub_cell, peer_cell) = (hub.snapshot(), client.snapshot());
    let _ = serve::wait(
        || hub.has_failed() || client.has_ended(),
        || {
            let snap = merge(&peer_cell.latest(), &hub_cell.latest());
            let every = if tty { 250 } else { 5_000 };
            if last_line.elapsed().as_millis() >= every {
                last_line = Instant::now();
                let line = status_line(&snap);
                if tty {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
            }
            cell.publish(snap);
        },
    );
    if tty {
        eprintln!();
    }
    let c = client.stop();
    let h = hub.stop();
    if let Some(m) = metrics {
        m.stop();
    }
    c.map_err(client_error)?;
    h.map_err(|e| CliError::Failed(e.to_string()))?;
    eprintln!("dev mode:  stopped");
    Ok(0)
}

/// The peer's snapshot with the hub's `connections` and `realtime` merged in.
fn merge(peer: &Value, hub: &Value) -> Value {
    let mut snap = peer.clone();
    snap["role"] = Value::from("dev");
    if let (Some(rt), Some(hub_rt)) = (
        snap["realtime"].as_object_mut(),
        hub["realtime"].as_object(),
    ) {
        rt.extend(hub_rt.clone());
    }
    // Per user, the hub's view of the connection over the peer's own.
    if let (Some(conns), Some(hub_conns)) = (
        snap["connections"].as_object_mut(),
        hub["connections"].as_object(),
    ) {
        for (user, fields) in hub_conns {
            let entry = conns
                .entry(user.clone())
                .or_insert_with(|| Value::Object(Default::default()));
            if let (Some(e), Some(f)) = (entry.as_object_mut(), fields.as_object()) {
                e.extend(f.clone());
            }
        }
    }
    if let Some(h) = hub.get("hub") {
        snap["hub"] = h.clone();
    }
    snap
}

/// `latency 2.7 ms · buffer 128 smp · misses 0 · mic -12.0 dBFS · out -12.0 dBFS · rtt 0.2 ms · running`
fn status_line(s: &Value) -> String {
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let db = |v: &Value| match v.as_f64() {
        Some(x) if x > -150.0 => format!("{x:.1} dBFS"),
        _ => "silent".into(),
    };
    let rtt = s["connections"]["dev"]["rttMs"]
        .as_f64()
        .map_or("-".into(), |r| format!("{r:.2} ms"));
    format!(
        "latency {:.1} ms · buffer {} smp · misses {} · mic {} · speaker {} · rtt {} · hub {} · mic {}",
        num(&s["speakerScriptProcessorLatencyMS"]),
        s["currentSpeakerBufferDepthInFloat32Samples"],
        s["speakerScriptProcessorIncomingBufferMisses"],
        db(&s["levels"]["micPeakDbfs"]),
        db(&s["levels"]["speakerPeakDbfs"]),
        rtt,
        s["aggregatorStatus"].as_str().unwrap_or("?"),
        s["micStatus"].as_str().unwrap_or("?"),
    )
}
