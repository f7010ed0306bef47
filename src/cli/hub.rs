//! `izyrt hub --listen ADDR [--metrics ADDR] [--token T] [--file WAV]... [--device DEV]
//! [--mix minus|full|loopback]`: the mixer hub (main thread).

use std::path::PathBuf;

use super::CliError;
use super::role_args::{DEFAULT_HUB_PORT, RoleArgs, resolve_addr};
use super::serve;
use super::status_line::StatusLine;
use crate::hub::{Hub, HubConfig};
use crate::net::stamp::LinePrefix;
use crate::wire::Mix;

/// Arguments of `izyrt hub`.
#[derive(Debug, clap::Args)]
pub struct HubArgs {
    /// Where peers connect (default 0.0.0.0:7100).
    #[arg(long, value_name = "ADDR", env = "IZYRT_LISTEN")]
    pub listen: Option<String>,
    /// A WAV/RIFF file mixed in as a looping source named after the file (repeatable).
    #[arg(long = "file", value_name = "WAV")]
    pub files: Vec<PathBuf>,
    /// The mixer's clock and local output: `virtual` (default) or a sound card.
    #[arg(long, value_name = "DEV", env = "IZYRT_DEVICE")]
    pub device: Option<String>,
    /// What a peer hears unless it asks: everyone but itself, everyone, or only itself.
    #[arg(long, value_enum, env = "IZYRT_MIX")]
    pub mix: Option<MixArg>,
    /// Most clients at once; more get `hub_full` (default 256). Only joined clients
    /// count: connections still awaiting HELLO have their own budget (`--max-pending`).
    #[arg(long = "max-clients", value_name = "N", env = "IZYRT_MAX_CLIENTS")]
    pub max_clients: Option<u32>,
    /// Most connections awaiting HELLO at once; beyond, the oldest is evicted with
    /// `hello_timeout` (default 128).
    #[arg(long = "max-pending", value_name = "N", env = "IZYRT_MAX_PENDING")]
    pub max_pending: Option<u32>,
    /// Most connections awaiting HELLO from one IP address; beyond, its oldest is evicted
    /// (default 16).
    #[arg(
        long = "max-pending-per-addr",
        value_name = "N",
        env = "IZYRT_MAX_PENDING_PER_ADDR"
    )]
    pub max_pending_per_addr: Option<u32>,
    /// Time a connection has to send HELLO, ms (default 2000; the spec allows at most 5000).
    #[arg(
        long = "hello-timeout-ms",
        value_name = "MS",
        env = "IZYRT_HELLO_TIMEOUT_MS"
    )]
    pub hello_timeout_ms: Option<u32>,
    /// Options every role takes.
    #[command(flatten)]
    pub role: RoleArgs,
}

/// `--mix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MixArg {
    /// Everyone but the listener.
    Minus,
    /// Everyone.
    Full,
    /// Only the listener itself (round-trip measurement).
    Loopback,
}

impl MixArg {
    /// The wire value.
    pub fn mix(self) -> Mix {
        match self {
            MixArg::Minus => Mix::Minus,
            MixArg::Full => Mix::Full,
            MixArg::Loopback => Mix::Loopback,
        }
    }
}

/// Reads a mix from the config file's `mix` key.
pub(super) fn file_mix(role: &super::role_args::Role) -> Result<Option<Mix>, CliError> {
    let Some(text) = role
        .file
        .string("mix")
        .map_err(|e| CliError::Usage(e.to_string()))?
    else {
        return Ok(None);
    };
    match text.as_str() {
        "minus" => Ok(Some(Mix::Minus)),
        "full" => Ok(Some(Mix::Full)),
        "loopback" => Ok(Some(Mix::Loopback)),
        other => Err(CliError::Usage(format!(
            "--config: \"mix\" \"{other}\" is not allowed (allowed: minus, full, loopback)"
        ))),
    }
}

/// Builds the hub's configuration from the arguments.
///
/// # Errors
/// [`CliError::Usage`] naming a refused option.
pub(super) fn config(args: &HubArgs) -> Result<(HubConfig, super::role_args::Role), CliError> {
    let role = args.role.resolve("127.0.0.1:7180")?;
    let usage = |e: crate::config::ConfigError| CliError::Usage(e.to_string());
    let listen = match &args.listen {
        Some(l) => l.clone(),
        None => role
            .file
            .string("listen")
            .map_err(usage)?
            .unwrap_or_else(|| format!("0.0.0.0:{DEFAULT_HUB_PORT}")),
    };
    let mut cfg = HubConfig::new(resolve_addr("--listen", &listen, Some(DEFAULT_HUB_PORT))?);
    cfg.settings = role.settings.clone();
    cfg.token = role.token.clone();
    if let Some(d) = role.device("--device", args.device.as_deref(), "device", None)? {
        cfg.device = d;
    }
    cfg.mix = match args.mix {
        Some(m) => m.mix(),
        None => file_mix(&role)?.unwrap_or(Mix::Minus),
    };
    cfg.files = if args.files.is_empty() {
        role.file
            .strings("files")
            .map_err(usage)?
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect()
    } else {
        args.files.clone()
    };
    cfg.max_clients = crate::config::pick(
        "maxClients",
        args.max_clients,
        role.file.u32("maxClients").map_err(usage)?,
        256,
        1..=4096,
    )
    .map_err(usage)? as usize;
    cfg.max_pending = crate::config::pick(
        "maxPending",
        args.max_pending,
        role.file.u32("maxPending").map_err(usage)?,
        crate::hub::net_thread::DEFAULT_MAX_PENDING as u32,
        1..=65_536,
    )
    .map_err(usage)? as usize;
    cfg.max_pending_per_addr = crate::config::pick(
        "maxPendingPerAddr",
        args.max_pending_per_addr,
        role.file.u32("maxPendingPerAddr").map_err(usage)?,
        crate::hub::net_thread::DEFAULT_MAX_PENDING_PER_ADDR as u32,
        1..=65_536,
    )
    .map_err(usage)? as usize;
    cfg.hello_timeout_ms = crate::config::pick(
        "helloTimeoutMs",
        args.hello_timeout_ms,
        role.file.u32("helloTimeoutMs").map_err(usage)?,
        cfg.hello_timeout_ms,
        100..=5_000,
    )
    .map_err(usage)?;
    Ok((cfg, role))
}

/// Runs `izyrt hub` until Ctrl-C/SIGTERM.
///
/// # Errors
/// [`CliError`] naming what was refused or failed.
pub fn run(args: &HubArgs) -> Result<i32, CliError> {
    let (cfg, role) = config(args)?;
    serve::prepare_signals();
    let has_token = cfg.token.is_some();
    let summary = format!(
        "{} Hz, {} ch, {}-frame periods, mix {}, clock {}",
        cfg.settings.rate,
        cfg.settings.channels,
        cfg.settings.period,
        cfg.mix.name(),
        device_name(&cfg.device)
    );
    let files = cfg.files.clone();
    let hub = Hub::start(cfg).map_err(|e| match e {
        crate::hub::HubError::Failed(m) => CliError::Failed(m),
        e => CliError::Usage(e.to_string()),
    })?;
    let at = LinePrefix::now();
    eprintln!(
        "{at}hub:       listening on {} ({summary})",
        hub.local_addr()
    );
    if let Some(w) = super::token::open_hub_warning(hub.local_addr(), has_token) {
        eprintln!("{at}{w}");
    }
    for f in &files {
        eprintln!("{at}source:    {} (looping)", f.display());
    }
    eprintln!("{at}rt:        {}", hub.mixer_status().report);
    super::sound_server::warn(
        &hub.mixer_status().obtained,
        crate::device::Direction::Playback,
    );
    let metrics = match serve::start_metrics(role.metrics, hub.snapshot()) {
        Ok(m) => m,
        Err(e) => {
            let _ = hub.stop();
            return Err(e);
        }
    };
    let cell = hub.snapshot();
    let mut status = StatusLine::hub(StatusLine::terminal());
    let ended = serve::wait(|| hub.has_failed(), || status.update(&cell.latest()));
    status.finish();
    let result = hub.stop();
    if let Some(m) = metrics {
        m.stop();
    }
    result.map_err(|e| CliError::Failed(e.to_string()))?;
    if ended.is_err() {
        return Err(CliError::Failed("the hub stopped unexpectedly".into()));
    }
    eprintln!("{}hub:       stopped", LinePrefix::now());
    Ok(0)
}

/// A device spec for messages.
pub(super) fn device_name(d: &crate::device::DeviceSpec) -> String {
    match d {
        crate::device::DeviceSpec::Virtual(_) => "virtual".into(),
        crate::device::DeviceSpec::Alsa(name) => name.clone(),
        crate::device::DeviceSpec::Jack(o) => o.to_string(),
    }
}
