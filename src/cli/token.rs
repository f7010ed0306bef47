//! The shared secret outside the command line (main thread): `--token-file PATH`,
//! `IZYRT_TOKEN_FILE` or the config key `tokenFile`, and the warning for a hub that
//! listens beyond loopback without one.
//!
//! Design: a token given with `--token` shows in `ps` and in the shell's history; a file
//! readable only by the service's user does not. The file holds the token on one line;
//! trailing line breaks are dropped (an editor adds one), anything else is kept. A file
//! other users may read defeats the purpose, so it is warned about, not refused (the
//! operator may have reasons, and refusing would stop a running deployment on upgrade).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::CliError;

/// Reads the token in `path`, named `option` in errors (`--token-file`, `tokenFile`).
///
/// # Errors
/// [`CliError::Usage`] naming the option and the path when the file cannot be read, is
/// not UTF-8, or holds no token.
///
/// # Example
/// ```no_run
/// # fn f() -> Result<(), izyrt::cli::CliError> {
/// let token = izyrt::cli::token::read_token_file("--token-file", "/etc/izyrt/token".as_ref())?;
/// # Ok(()) }
/// ```
pub fn read_token_file(option: &str, path: &Path) -> Result<String, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!("{option} {shown}: cannot read the token file: {e}"))
    })?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        return Err(CliError::Usage(format!(
            "{option} {shown}: the token file is empty"
        )));
    }
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o004 != 0
    {
        eprintln!(
            "izyrt: WARNING: token file {shown} is readable by every user of this machine: `chmod o-r {shown}`"
        );
    }
    Ok(token.to_owned())
}

/// The warning for a hub on `listen` without a token, when it listens beyond loopback.
///
/// # Example
/// ```
/// use izyrt::cli::token::open_hub_warning;
/// let w = open_hub_warning("0.0.0.0:7100".parse().unwrap(), false).unwrap();
/// assert!(w.contains("hub listens on 0.0.0.0:7100 without a token"));
/// assert!(open_hub_warning("127.0.0.1:7100".parse().unwrap(), false).is_none());
/// assert!(open_hub_warning("0.0.0.0:7100".parse().unwrap(), true).is_none());
/// ```
pub fn open_hub_warning(listen: std::net::SocketAddr, has_token: bool) -> Option<String> {
    (!has_token && !listen.ip().is_loopback()).then(|| {
        format!(
            "izyrt: WARNING: hub listens on {listen} without a token: anyone who can reach it can join; set --token-file"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_trims_and_refuses() {
        let dir = std::env::temp_dir().join(format!("izyrt-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "s3cret \n\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file("--token-file", &path).unwrap(), "s3cret ");
        std::fs::write(&path, "\n").unwrap();
        let e = read_token_file("--token-file", &path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is empty") && e.contains("--token-file"), "{e}");
        let e = read_token_file("tokenFile", &dir.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("tokenFile ") && e.contains("cannot read"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
