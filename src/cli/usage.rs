//! Command-line mistakes caught by clap, said the way izyrt says its own (main thread).
//!
//! Design: clap prints a block (error, usage, a tip) and exits 2; izyrt's own refusals
//! are one line and exit 64 (`EX_USAGE`). Every bad option now takes the second path:
//! the block is folded into one line (the error, clap's tip, the possible values, where
//! to read more), and a value that came from an `IZYRT_*` variable rather than a flag is
//! named by its variable, since that is what the person has to fix. `--help` and
//! `--version` still print as clap prints them and exit 0.

use clap::CommandFactory;
use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Exit status for a bad option or value, from clap or from izyrt (`EX_USAGE`).
pub const EXIT_USAGE: i32 = 64;

/// Prints `e` (one line, or clap's help and version text) and returns the exit status.
pub(super) fn clap_error(e: &clap::Error) -> i32 {
    if !e.use_stderr() {
        // --help, --version.
        let _ = e.print();
        return 0;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return EXIT_USAGE;
    }
    let argv: Vec<String> = std::env::args().collect();
    eprintln!("izyrt: {}", one_line(e, &argv));
    EXIT_USAGE
}

/// `e` as one line; `argv` tells a flag from an environment variable.
fn one_line(e: &clap::Error, argv: &[String]) -> String {
    let text = e.render().to_string();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let first = lines
        .first()
        .map_or("", |l| l.trim_start_matches("error: "));
    let possible = lines.iter().find(|l| l.starts_with("[possible values:"));
    if let Some(line) = from_env(e, argv, first) {
        return match possible {
            Some(p) => format!("{line} {p}"),
            None => line,
        };
    }
    let mut line = first.to_owned();
    if let Some(p) = possible {
        line.push_str(&format!(" {p}"));
    }
    if let Some(tip) = lines.iter().find_map(|l| l.strip_prefix("tip: ")) {
        line.push_str(&format!("; {tip}"));
    }
    let command: Vec<&str> = lines
        .iter()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(|u| {
            u.split_whitespace()
                .take_while(|w| !w.starts_with(['[', '-', '<']))
                .collect()
        })
        .unwrap_or_default();
    let command = if command.is_empty() {
        "izyrt".to_owned()
    } else {
        command.join(" ")
    };
    line.push_str(&format!(" (see {command} --help)"));
    line
}

/// "IZYRT_RATE=abc is not allowed for --rate: ..." when the refused value came from the
/// option's environment variable (set to it, and the flag not on the command line).
fn from_env(e: &clap::Error, argv: &[String], first: &str) -> Option<String> {
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        e.get(ContextKind::InvalidArg),
        e.get(ContextKind::InvalidValue),
    ) else {
        return None;
    };
    let long = arg.strip_prefix("--")?.split([' ', '=']).next()?;
    let flag = format!("--{long}");
    let on_command_line = argv
        .iter()
        .any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
    if on_command_line {
        return None;
    }
    let var = env_of(&super::Cli::command(), long)?;
    if std::env::var(&var).ok()? != *value {
        return None;
    }
    let reason = first
        .rsplit_once("': ")
        .map(|(_, r)| r.trim())
        .filter(|r| !r.is_empty());
    Some(match reason {
        Some(r) => format!("{var}={value} is not allowed for {flag}: {r}"),
        None => format!("{var}={value} is not allowed for {flag}"),
    })
}

/// The environment variable of the option `--long`, in `cmd` or its subcommands.
fn env_of(cmd: &clap::Command, long: &str) -> Option<String> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
        .or_else(|| cmd.get_subcommands().find_map(|c| env_of(c, long)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn line(args: &[&str]) -> String {
        let e = super::super::Cli::try_parse_from(args).unwrap_err();
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        one_line(&e, &argv)
    }

    #[test]
    fn clap_errors_fold_into_one_line() {
        let l = line(&["izyrt", "peer", "--tokn", "x"]);
        assert!(
            l.contains("unexpected argument '--tokn'") && l.contains("'--token'"),
            "{l}"
        );
        assert!(l.ends_with("(see izyrt peer --help)"), "{l}");
        assert!(!l.contains('\n'), "{l}");
        let l = line(&["izyrt", "hub", "--mix", "loud"]);
        assert!(
            l.contains("[possible values: minus, full, loopback]"),
            "{l}"
        );
        let l = line(&["izyrt", "hub", "--rate", "abc"]);
        assert!(l.starts_with("invalid value 'abc' for '--rate"), "{l}");
    }
}
