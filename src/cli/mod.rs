//! The command line (main thread): parses arguments with `clap` and runs one command.
//!
//! Each command lives in its own file and exposes `run(args) -> Result<ExitCode-ish, CliError>`.
//! Errors are printed here, once, as one line naming what was wrong.

mod devices;
mod dump;
pub mod play;
pub mod record;
mod rt_session;

use clap::{Parser, Subcommand};

/// izyrt: hard-realtime, low-latency networked audio.
#[derive(Debug, Parser)]
#[command(name = "izyrt", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode a streamproto1 byte stream and print one JSON object per frame.
    Dump(dump::DumpArgs),
    /// List capture and playback devices: ALSA cards first, sound-server PCMs flagged.
    Devices(devices::DevicesArgs),
    /// Play a WAV file on a device through the engine's RT path.
    Play(play::PlayArgs),
    /// Record a device into a WAV file through the engine's RT path.
    Record(record::RecordArgs),
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

/// Exit status for bad data (a malformed stream, a refused file).
pub const EXIT_DATA: i32 = 2;

/// Parses the process arguments, runs the command and returns the process exit code.
///
/// # Example
/// ```no_run
/// std::process::exit(izyrt::cli::main());
/// ```
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dump(args) => dump::run(&args),
        Command::Devices(args) => devices::run(&args),
        Command::Play(args) => play::run(&args),
        Command::Record(args) => record::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("izyrt: {e}");
            match e {
                CliError::Usage(_) => 64,
                CliError::Data(_) => EXIT_DATA,
                _ => 1,
            }
        }
    }
}
