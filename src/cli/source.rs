//! `izyrt source --hub ADDR --user ID --file WAV [--loop]`: stream a WAV file to a hub as
//! the `source` role, paced in real time (main thread).

use std::path::PathBuf;

use super::CliError;
use super::peer::{WireFormat, client_error, hub_and_user};
use super::role_args::RoleArgs;
use super::serve;
use crate::client::source::{Source, SourceConfig};

/// Arguments of `izyrt source`.
#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    /// The hub, HOST:PORT.
    #[arg(long, value_name = "ADDR", env = "IZYRT_HUB")]
    pub hub: Option<String>,
    /// This source's name at the hub: 1..=64 of [A-Za-z0-9._-].
    #[arg(long, value_name = "ID", env = "IZYRT_USER")]
    pub user: Option<String>,
    /// The WAV/RIFF file to stream (resampled to --rate, the hub's rate, when it differs).
    #[arg(long, value_name = "WAV")]
    pub file: PathBuf,
    /// Start the file again at its end instead of ending (until Ctrl-C).
    #[arg(long = "loop")]
    pub looping: bool,
    /// Sample format on the wire.
    #[arg(long, value_enum, default_value_t = WireFormat::F32)]
    pub format: WireFormat,
    /// Options every role takes.
    #[command(flatten)]
    pub role: RoleArgs,
}

/// Runs `izyrt source` until the end of the file (or, with `--loop`, Ctrl-C/SIGTERM).
///
/// # Errors
/// [`CliError`] naming what was refused or failed (the hub's refusal included).
pub fn run(args: &SourceArgs) -> Result<i32, CliError> {
    let role = args.role.resolve("none")?;
    let (hub, user) = hub_and_user(&args.hub, &args.user, &role)?;
    let mut cfg = SourceConfig::new(hub, &user, args.file.clone());
    cfg.token = role.token.clone();
    cfg.settings = role.settings.clone();
    cfg.looping = args.looping;
    cfg.format = args.format.into();
    let s = &cfg.settings;
    let what = format!(
        "{} as {user} ({} Hz, {} ch, {}-frame packets)",
        cfg.hub, s.rate, s.channels, s.period
    );
    serve::prepare_signals();
    let source = Source::start(cfg).map_err(client_error)?;
    eprintln!(
        "source:    {} ({:.3} s{}), connecting to {what}",
        args.file.display(),
        source.seconds(),
        if args.looping { ", looping" } else { "" }
    );
    let metrics = serve::start_metrics(role.metrics, source.snapshot())?;
    let mut streaming = false;
    let ended = serve::wait(
        || source.has_ended() || source.finished(),
        || {
            if !streaming && source.joined() {
                source.go();
                streaming = true;
                eprintln!("source:    streaming");
            }
        },
    );
    let finished = source.finished();
    let result = source.stop();
    if let Some(m) = metrics {
        m.stop();
    }
    result.map_err(client_error)?;
    match (ended, finished) {
        (Err(()), true) => eprintln!("source:    end of file, stopped"),
        (Err(()), false) => return Err(CliError::Failed("the source stopped unexpectedly".into())),
        (Ok(()), _) => eprintln!("source:    stopped"),
    }
    Ok(0)
}
