//! The command line (main thread): parses arguments with `clap` and runs one command.
//!
//! Each command lives in its own file and exposes `run(args) -> Result<ExitCode-ish, CliError>`.
//! Errors are printed here, once, as one line naming what was wrong.

mod dev;
mod devices;
mod docs;
mod doctor;
mod dump;
mod glitches;
pub mod hub;
mod latency;
pub mod peer;
pub mod play;
pub mod record;
mod role_args;
mod rt_session;
mod serve;
mod sound_server;
mod source;
pub mod status_line;
pub mod thru;
pub mod token;
mod usage;

use clap::{Parser, Subcommand};

pub use usage::EXIT_USAGE;

/// izyrt: hard-realtime, low-latency networked audio.
///
/// Without a command, `izyrt --device DEV` runs dev mode: an embedded hub and one peer on
/// DEV, metrics on 127.0.0.1:7180 (`izyrt --device virtual:tone=440` without a sound card).
#[derive(Debug, Parser)]
#[command(name = "izyrt", version = VERSION, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Dev mode's options.
    #[command(flatten)]
    pub dev: dev::DevArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode a streamproto1 byte stream and print one JSON object per frame.
    Dump(dump::DumpArgs),
    /// List capture and playback devices: ALSA cards first, sound-server PCMs flagged.
    #[command(visible_alias = "getaudiodevices")]
    Devices(devices::DevicesArgs),
    /// Play a WAV file on a device through the engine's RT path.
    Play(play::PlayArgs),
    /// Record a device into a WAV file through the engine's RT path.
    Record(record::RecordArgs),
    /// Run the mixer hub: accept peers, mix them, send each its mix and METADATA.
    Hub(hub::HubArgs),
    /// Run a workstation: capture a device to the hub, play the hub's mix.
    Peer(peer::PeerArgs),
    /// Run a mixeradmin monitor: receive the hub's full mix and METADATA.
    Monitor(peer::MonitorArgs),
    /// Stream a WAV file to a hub as the `source` role, paced in real time.
    Source(source::SourceArgs),
    /// Measure the round trip capture → hub (loopback mix) → playback.
    Latency(latency::LatencyArgs),
    /// Copy a duplex device's capture straight to its playback (a device's latency floor).
    Thru(thru::ThruArgs),
    /// Count the steps, holes and audible events in a recorded pure tone (a WAV file).
    Glitches(glitches::GlitchesArgs),
    /// Check this machine for low-latency audio (realtime rights, kernel, device, ports,
    /// hub) and print the command that fixes each problem; exit status 1 on a FAIL.
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script on standard output.
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff) on standard output.
    Man,
}

/// An error that stops a command; printed as one line on stderr.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A user-supplied value is not acceptable.
    #[error("{0}")]
    Usage(String),
    /// A file's contents were refused (exit status [`EXIT_DATA`]); the message names it.
    #[error("{0}")]
    Data(String),
    /// The command ran but failed; the message says why.
    #[error("{0}")]
    Failed(String),
    /// Input/output failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The version `--version` prints: the package version and the git commit it was built
/// from (`unknown` outside a git checkout), set by `build.rs`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("IZYRT_GIT_COMMIT"),
    ")"
);

/// Exit status for bad data (a malformed stream, a refused file).
pub const EXIT_DATA: i32 = 2;

/// Parses the process arguments, runs the command and returns the process exit code.
///
/// # Example
/// ```no_run
/// std::process::exit(izyrt::cli::main());
/// ```
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage::clap_error(&e),
    };
    let result = match cli.command {
        Some(Command::Dump(args)) => dump::run(&args),
        Some(Command::Devices(args)) => devices::run(&args),
        Some(Command::Play(args)) => play::run(&args),
        Some(Command::Record(args)) => record::run(&args),
        Some(Command::Hub(args)) => hub::run(&args),
        Some(Command::Peer(args)) => peer::run_peer(&args),
        Some(Command::Monitor(args)) => peer::run_monitor(&args),
        Some(Command::Source(args)) => source::run(&args),
        Some(Command::Latency(args)) => latency::run(&args),
        Some(Command::Thru(args)) => thru::run(&args),
        Some(Command::Glitches(args)) => glitches::run(&args),
        Some(Command::Doctor(args)) => doctor::run(&args),
        Some(Command::Completions(args)) => docs::completions(&args),
        Some(Command::Man) => docs::man(),
        None if cli.dev.device.is_none()
            && std::env::var_os("IZYRT_CONFIG").is_none()
            && cli.dev.role.common.config.is_none() =>
        {
            Err(CliError::Usage(
                "give a command (see izyrt --help), or --device DEV for dev mode".into(),
            ))
        }
        None => dev::run(&cli.dev),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("izyrt: {e}");
            match e {
                CliError::Usage(_) => EXIT_USAGE,
                CliError::Data(_) => EXIT_DATA,
                _ => 1,
            }
        }
    }
}
