//! `izyrt dump` (being written).

/// Arguments of `izyrt dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// The stream to read: a file, or `-` for standard input.
    #[arg(default_value = "-")]
    pub input: String,
}

/// Runs `izyrt dump`.
pub fn run(_args: &DumpArgs) -> Result<i32, super::CliError> {
    Err(super::CliError::Failed("not yet".into()))
}
