//! `izyrt peer --hub ADDR --user ID [--device DEV | --capture DEV --playback DEV]
//! [--token T] [--qos] [--metrics ADDR]` and `izyrt monitor --hub ADDR --user ID
//! [--device DEV]`: the hub's clients (main thread).

use std::net::SocketAddr;
use std::sync::Arc;

use super::CliError;
use super::hub::{MixArg, file_mix};
use super::role_args::{DEFAULT_HUB_PORT, RoleArgs, resolve_addr};
use super::serve;
use super::status_line::StatusLine;
use crate::client::net_thread::Refused;
use crate::client::{Client, ClientConfig, ClientError, Devices};
use crate::config::pick;
use crate::metrics::{SnapshotCell, default_snapshot};
use crate::net::stamp::LinePrefix;
use crate::wire::{AudioFormat, valid_user};

/// Arguments of `izyrt peer`.
#[derive(Debug, clap::Args)]
pub struct PeerArgs {
    /// The hub, HOST:PORT.
    #[arg(long, value_name = "ADDR", env = "IZYRT_HUB")]
    pub hub: Option<String>,
    /// This workstation's name at the hub: 1..=64 of [A-Za-z0-9._-].
    #[arg(long, value_name = "ID", env = "IZYRT_USER")]
    pub user: Option<String>,
    /// One device for capture and playback (`virtual:tone=440`, `hw:1,0`, ...).
    #[arg(long, value_name = "DEV", env = "IZYRT_DEVICE", conflicts_with_all = ["capture", "playback"])]
    pub device: Option<String>,
    /// The capture device, when it is not the playback device.
    #[arg(long, value_name = "DEV", requires = "playback")]
    pub capture: Option<String>,
    /// The playback device, when it is not the capture device.
    #[arg(long, value_name = "DEV", requires = "capture")]
    pub playback: Option<String>,
    /// Send a QOS report to the hub (`enableQOSMetrics`).
    #[arg(long)]
    pub qos: bool,
    /// Send QOS every MS instead of after each AUDIO frame received.
    #[arg(long = "qos-interval-ms", value_name = "MS")]
    pub qos_interval_ms: Option<u32>,
    /// The mix to ask the hub for (default: the hub's choice).
    #[arg(long, value_enum)]
    pub mix: Option<MixArg>,
    /// Decimate the capture by this ratio before sending (`downsampleRatio`; the device
    /// then runs at rate × ratio).
    #[arg(long = "downsample-ratio", value_name = "N")]
    pub downsample_ratio: Option<u32>,
    /// Interpolate the mix by this ratio before playing (`upsampleRatio`).
    #[arg(long = "upsample-ratio", value_name = "N")]
    pub upsample_ratio: Option<u32>,
    /// Sample format on the wire.
    #[arg(long, value_enum, default_value_t = WireFormat::F32)]
    pub format: WireFormat,
    /// Record what the speaker plays (the hub's mix) into this WAV file.
    #[arg(long, value_name = "WAV")]
    pub record: Option<std::path::PathBuf>,
    /// Record what is sent to the hub into this WAV file.
    #[arg(long = "record-capture", value_name = "WAV")]
    pub record_capture: Option<std::path::PathBuf>,
    /// Options every role takes.
    #[command(flatten)]
    pub role: RoleArgs,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WireFormat {
    /// 32-bit float.
    F32,
    /// 16-bit integer (half the bandwidth).
    S16,
}

impl From<WireFormat> for AudioFormat {
    fn from(f: WireFormat) -> AudioFormat {
        match f {
            WireFormat::F32 => AudioFormat::F32,
            WireFormat::S16 => AudioFormat::S16,
        }
    }
}

/// Arguments of `izyrt monitor`.
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// The hub, HOST:PORT.
    #[arg(long, value_name = "ADDR", env = "IZYRT_HUB")]
    pub hub: Option<String>,
    /// This monitor's name at the hub.
    #[arg(long, value_name = "ID", env = "IZYRT_USER")]
    pub user: Option<String>,
    /// Play the mix on this device (default: `virtual`, which only meters it).
    #[arg(long, value_name = "DEV", env = "IZYRT_DEVICE")]
    pub device: Option<String>,
    /// Interpolate the mix by this ratio before playing (`upsampleRatio`; the device then
    /// runs at rate × ratio).
    #[arg(long = "upsample-ratio", value_name = "N")]
    pub upsample_ratio: Option<u32>,
    /// Record the mix into this WAV file.
    #[arg(long, value_name = "WAV")]
    pub record: Option<std::path::PathBuf>,
    /// Options every role takes.
    #[command(flatten)]
    pub role: RoleArgs,
}

fn required(
    option: &str,
    flag: &Option<String>,
    role: &super::role_args::Role,
    key: &str,
) -> Result<String, CliError> {
    match flag {
        Some(v) => Ok(v.clone()),
        None => role
            .file
            .string(key)
            .map_err(|e| CliError::Usage(e.to_string()))?
            .ok_or_else(|| CliError::Usage(format!("{option} is required"))),
    }
}

/// `--hub` (on port 7100 when it names no port) and `--user`, from the flags or the
/// config file, checked. Every client role (peer, monitor, source) shares it.
///
/// # Errors
/// [`CliError::Usage`] naming the missing or refused option.
pub(super) fn hub_and_user(
    hub: &Option<String>,
    user: &Option<String>,
    role: &super::role_args::Role,
) -> Result<(SocketAddr, String), CliError> {
    let hub = resolve_addr(
        "--hub",
        &required("--hub", hub, role, "hub")?,
        Some(DEFAULT_HUB_PORT),
    )?;
    let user = required("--user", user, role, "user")?;
    if !valid_user(&user) {
        return Err(CliError::Usage(format!(
            "--user {user:?} is not allowed (allowed: 1..=64 characters of [A-Za-z0-9._-])"
        )));
    }
    Ok((hub, user))
}

fn base(
    hub: &Option<String>,
    user: &Option<String>,
    role: &super::role_args::Role,
    devices: Devices,
) -> Result<ClientConfig, CliError> {
    let (hub, user) = hub_and_user(hub, user, role)?;
    let mut cfg = ClientConfig::peer(hub, &user, devices);
    cfg.token = role.token.clone();
    cfg.settings = role.settings.clone();
    Ok(cfg)
}

/// The seed's `downsampleRatio` or `upsampleRatio` (`key`): the flag (or its `IZYRT_*`
/// variable), else the config file, else 1; 1..=16. Peer, monitor and dev mode share it.
///
/// # Errors
/// [`CliError::Usage`] naming the option, the value and the range.
pub(super) fn ratio(
    role: &super::role_args::Role,
    key: &str,
    flag: Option<u32>,
) -> Result<u32, CliError> {
    let usage = |e: crate::config::ConfigError| CliError::Usage(e.to_string());
    pick(key, flag, role.file.u32(key).map_err(usage)?, 1, 1..=16).map_err(usage)
}

/// How messages name the hub: as the user gave it (flag, environment or config file).
fn hub_text(flag: &Option<String>, role: &super::role_args::Role) -> String {
    flag.clone()
        .or_else(|| role.file.string("hub").ok().flatten())
        .unwrap_or_default()
}

/// Builds a peer's configuration.
///
/// # Errors
/// [`CliError::Usage`] naming a refused option.
pub(super) fn peer_config(
    args: &PeerArgs,
    default_metrics: &str,
) -> Result<(ClientConfig, super::role_args::Role), CliError> {
    let role = args.role.resolve(default_metrics)?;
    let usage = |e: crate::config::ConfigError| CliError::Usage(e.to_string());
    let devices = match (&args.capture, &args.playback) {
        (Some(c), Some(p)) => Devices::Split {
            capture: role
                .device("--capture", Some(c), "capture", None)?
                .expect("given"),
            playback: role
                .device("--playback", Some(p), "playback", None)?
                .expect("given"),
        },
        _ => {
            let capture = role.device("--capture", None, "capture", None)?;
            let playback = role.device("--playback", None, "playback", None)?;
            match (capture, playback, args.device.is_some()) {
                (Some(capture), Some(playback), false) => Devices::Split { capture, playback },
                _ => Devices::Duplex(
                    role.device("--device", args.device.as_deref(), "device", None)?
                        .ok_or_else(|| {
                            CliError::Usage(
                                "--device (or --capture and --playback) is required".into(),
                            )
                        })?,
                ),
            }
        }
    };
    let mut cfg = base(&args.hub, &args.user, &role, devices)?;
    cfg.qos = args.qos
        || role
            .file
            .bool("enableQOSMetrics")
            .map_err(usage)?
            .unwrap_or(false);
    cfg.qos_interval_ms = pick(
        "qosIntervalMs",
        args.qos_interval_ms,
        role.file.u32("qosIntervalMs").map_err(usage)?,
        0,
        0..=60_000,
    )
    .map_err(usage)?;
    cfg.mix = match args.mix {
        Some(m) => Some(m.mix()),
        None => file_mix(&role)?,
    };
    cfg.downsample_ratio = ratio(&role, "downsampleRatio", args.downsample_ratio)?;
    cfg.upsample_ratio = ratio(&role, "upsampleRatio", args.upsample_ratio)?;
    cfg.record = args.record.clone();
    cfg.record_capture = args.record_capture.clone();
    cfg.format = args.format.into();
    Ok((cfg, role))
}

/// Runs `izyrt peer` until Ctrl-C/SIGTERM.
///
/// # Errors
/// [`CliError`] naming what was refused or failed (the hub's refusal included).
pub fn run_peer(args: &PeerArgs) -> Result<i32, CliError> {
    let (cfg, role) = peer_config(args, "127.0.0.1:7181")?;
    let hub = hub_text(&args.hub, &role);
    run_client(cfg, role, "peer", &hub)
}

/// Runs `izyrt monitor` until Ctrl-C/SIGTERM.
///
/// # Errors
/// As [`run_peer`].
pub fn run_monitor(args: &MonitorArgs) -> Result<i32, CliError> {
    let role = args.role.resolve("127.0.0.1:7182")?;
    let device = role
        .device(
            "--device",
            args.device.as_deref(),
            "device",
            Some("virtual"),
        )?
        .expect("defaulted");
    let mut cfg = base(
        &args.hub,
        &args.user,
        &role,
        Devices::Playback(device.clone()),
    )?;
    let monitor = ClientConfig::monitor(cfg.hub, &cfg.user, device);
    cfg.role = monitor.role;
    cfg.mix = monitor.mix;
    cfg.upsample_ratio = ratio(&role, "upsampleRatio", args.upsample_ratio)?;
    cfg.record = args.record.clone();
    let hub = hub_text(&args.hub, &role);
    run_client(cfg, role, "monitor", &hub)
}

/// The sound-server warning for each of a client's devices (peer, monitor, dev mode).
pub(super) fn warn_devices(client: &Client) {
    for (dir, o) in client.devices() {
        super::sound_server::warn(&o, dir);
    }
}

pub(super) fn client_error(e: ClientError) -> CliError {
    match e {
        ClientError::Config(m) => CliError::Usage(m),
        ClientError::Refused(r) => CliError::Failed(refusal(&r)),
        e => CliError::Failed(e.to_string()),
    }
}

/// A refusal by the hub, said once with what to do about it.
fn refusal(r: &Refused) -> String {
    let user = &r.user;
    let fix = match r.code.as_str() {
        "unauthorized" => "give the hub's token with --token or IZYRT_TOKEN",
        "format_unsupported" => "start with the hub's --rate and --channels",
        "replaced" => "two clients share this --user: give each its own",
        "bad_version" => "run the same izyrt version as the hub",
        _ => "",
    };
    let said = match r.code.as_str() {
        "replaced" => r.message.clone(),
        code => format!("the hub refused user {user}: {code}: {}", r.message),
    };
    if fix.is_empty() {
        said
    } else {
        format!("{said}; {fix}")
    }
}

fn run_client(
    mut cfg: ClientConfig,
    role: super::role_args::Role,
    label: &str,
    hub_text: &str,
) -> Result<i32, CliError> {
    serve::prepare_signals();
    let hub = if hub_text == cfg.hub.to_string() {
        hub_text.to_owned()
    } else {
        format!("{hub_text} ({})", cfg.hub)
    };
    let what = format!(
        "{hub} as {} ({} Hz, {} ch, {}-frame packets)",
        cfg.user, cfg.settings.rate, cfg.settings.channels, cfg.settings.period
    );
    // The metrics port first: a port taken stops the client before the hub sees it.
    let cell = Arc::new(SnapshotCell::new(default_snapshot()));
    // (Its handle stops the server when dropped, on every return below.)
    let metrics = serve::start_metrics(role.metrics, Arc::clone(&cell))?;
    cfg.snapshot = Some(Arc::clone(&cell));
    let user = cfg.user.clone();
    let client = Client::start(cfg).map_err(client_error)?;
    warn_devices(&client);
    eprintln!("{}client:    connecting to {what}", LinePrefix::now());
    let mut status = StatusLine::client(
        &format!("{label} {user}"),
        &user,
        hub_text,
        StatusLine::terminal(),
    );
    let _ = serve::wait(|| client.has_ended(), || status.update(&cell.latest()));
    status.finish();
    let result = client.stop();
    drop(metrics);
    result.map_err(client_error)?;
    eprintln!("{}client:    stopped", LinePrefix::now());
    Ok(0)
}
