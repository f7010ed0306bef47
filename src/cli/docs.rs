//! `izyrt completions SHELL` and `izyrt man`: shell completions and the man page, made
//! from the command-line definition itself (main thread), so they never drift from it.
//! `scripts/deb` writes both into `target/` for the Debian package.

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, CliError};

/// Arguments of `izyrt completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script for `args.shell` on standard output.
///
/// # Errors
/// Never in practice (the generator writes to standard output and ignores a closed pipe).
pub fn completions(args: &CompletionsArgs) -> Result<i32, CliError> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "izyrt", &mut std::io::stdout());
    Ok(0)
}

/// Prints the man page, `izyrt(1)` in roff, on standard output.
///
/// # Errors
/// [`CliError::Io`] when standard output cannot be written.
pub fn man() -> Result<i32, CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .and_then(|()| std::io::stdout().write_all(&page))
        .map_err(|source| CliError::Io {
            context: "writing the man page".into(),
            source,
        })?;
    Ok(0)
}
