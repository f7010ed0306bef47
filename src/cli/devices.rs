//! `izyrt devices [--json]` (also `izyrt getaudiodevices`, the original's name): the
//! devices izyrt can open: ALSA cards first (`hw:X,Y` and the stable `hw:CARD=<id>,DEV=<n>`, with
//! the channels, rates, periods and formats each direction accepts), then the other PCMs
//! the ALSA configuration names, flagged when they go through a sound server or plugin,
//! then the built-in `virtual` device and the native JACK client.

use std::io::{self, Write};

use serde_json::{Value, json};

use super::CliError;

/// Arguments of `izyrt devices`.
#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

const VIRTUAL_NAME: &str = "virtual";
const VIRTUAL_DESCRIPTION: &str =
    "built-in device paced by the system clock: captures a test signal, meters playback";
const VIRTUAL_OPTIONS: &str = "virtual[:tone[=HZ]|impulse|silence][,skew=PPM]";
const JACK_NAME: &str = "jack:";
const JACK_DESCRIPTION: &str =
    "a native JACK client (needs a running JACK server; its rate and period are the server's)";
const JACK_OPTIONS: &str = "jack:[name=CLIENT][,noconnect]";

/// Runs `izyrt devices`; returns the exit code (0).
///
/// # Errors
/// [`CliError::Io`] when standard output cannot be written.
pub fn run(args: &DevicesArgs) -> Result<i32, CliError> {
    #[cfg(target_os = "linux")]
    let listing = Some(crate::device::alsa::list());
    #[cfg(not(target_os = "linux"))]
    let listing: Option<()> = None;

    let text = if args.json {
        let mut doc = serde_json::to_string_pretty(&to_json(listing.as_ref()))
            .map_err(|e| CliError::Failed(format!("cannot encode the device list as JSON: {e}")))?;
        doc.push('\n');
        doc
    } else {
        to_text(listing.as_ref())
    };
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(source) => Err(CliError::Io {
            context: "writing the device list".into(),
            source,
        }),
    }
}

fn virtual_json() -> Value {
    json!({
        "name": VIRTUAL_NAME,
        "description": VIRTUAL_DESCRIPTION,
        "capture": true,
        "playback": true,
        "options": VIRTUAL_OPTIONS,
    })
}

fn jack_json() -> Value {
    json!({
        "name": JACK_NAME,
        "description": JACK_DESCRIPTION,
        "capture": true,
        "playback": true,
        "options": JACK_OPTIONS,
        "available": cfg!(target_os = "linux"),
    })
}

#[cfg(target_os = "linux")]
fn to_json(listing: Option<&crate::device::alsa::Listing>) -> Value {
    json!({
        "alsa": listing.map(|l| serde_json::to_value(l).unwrap_or(Value::Null)),
        "virtual": virtual_json(),
        "jack": jack_json(),
    })
}

#[cfg(not(target_os = "linux"))]
fn to_json(_: Option<&()>) -> Value {
    json!({ "alsa": Value::Null, "virtual": virtual_json(), "jack": jack_json() })
}

#[cfg(target_os = "linux")]
fn to_text(listing: Option<&crate::device::alsa::Listing>) -> String {
    let mut s = String::new();
    if let Some(l) = listing {
        alsa_text(&mut s, l);
    }
    virtual_text(&mut s);
    s
}

#[cfg(not(target_os = "linux"))]
fn to_text(_: Option<&()>) -> String {
    let mut s = String::from("ALSA: not available on this system\n\n");
    virtual_text(&mut s);
    s
}

fn virtual_text(s: &mut String) {
    s.push_str("Built in:\n");
    s.push_str(&format!(
        "  {VIRTUAL_NAME:<24} capture+playback  {VIRTUAL_DESCRIPTION}\n"
    ));
    s.push_str(&format!("  {:<24} options: {VIRTUAL_OPTIONS}\n", ""));
    if cfg!(target_os = "linux") {
        s.push_str(&format!(
            "  {JACK_NAME:<24} capture+playback  {JACK_DESCRIPTION}\n"
        ));
        s.push_str(&format!("  {:<24} options: {JACK_OPTIONS}\n", ""));
    }
}

#[cfg(target_os = "linux")]
fn alsa_text(s: &mut String, l: &crate::device::alsa::Listing) {
    use crate::device::alsa::StreamProbe;
    use std::fmt::Display;

    fn span<T: PartialEq + Display>(r: &[T; 2]) -> String {
        if r[0] == r[1] {
            format!("{}", r[0])
        } else {
            format!("{}..{}", r[0], r[1])
        }
    }
    fn probe_line(p: &StreamProbe) -> String {
        match p {
            StreamProbe::Available(c) => format!(
                "{} ch, {} Hz, period {} frames, {} periods, buffer {} frames, formats {}{}",
                span(&c.channels),
                span(&c.rate_hz),
                span(&c.period_frames),
                span(&c.periods),
                span(&c.buffer_frames),
                if c.formats.is_empty() {
                    "none usable".to_string()
                } else {
                    c.formats.join(" ")
                },
                if c.rw_interleaved {
                    ""
                } else {
                    " (no RW interleaved access: unusable)"
                },
            ),
            StreamProbe::Busy => "busy (another program has it open)".to_string(),
            StreamProbe::Unavailable { reason } => format!("unavailable: {reason}"),
        }
    }

    s.push_str(
        "ALSA sound cards (hw:X,Y changes when USB cards are replugged; hw:CARD=<id>,DEV=<n> does not):\n",
    );
    if let Some(why) = &l.no_cards {
        s.push_str(&format!("  none: {why}\n"));
    }
    for card in &l.cards {
        s.push_str(&format!(
            "  card {}: {} [{}] ({})\n",
            card.index, card.id, card.name, card.long_name
        ));
        if card.devices.is_empty() {
            s.push_str("    no PCM devices\n");
        }
        for d in &card.devices {
            s.push_str(&format!("    {:<8} {:<22} {}\n", d.pcm, d.stable, d.name));
            if let Some(p) = &d.playback {
                s.push_str(&format!("      playback: {}\n", probe_line(p)));
            }
            if let Some(p) = &d.capture {
                s.push_str(&format!("      capture:  {}\n", probe_line(p)));
            }
        }
    }
    s.push('\n');
    s.push_str("Other ALSA PCMs (from the ALSA configuration, judged by name, not opened):\n");
    if l.pcms.is_empty() {
        s.push_str("  none\n");
    }
    for p in &l.pcms {
        let dirs = match (p.capture, p.playback) {
            (true, true) => "capture+playback",
            (true, false) => "capture",
            _ => "playback",
        };
        s.push_str(&format!(
            "  {:<24} {dirs:<16}  {}\n",
            p.name,
            p.description.as_deref().unwrap_or("")
        ));
        if let Some(why) = &p.sound_server {
            s.push_str(&format!("  {:<24} ! {why}\n", ""));
        }
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_names_the_built_in_devices_with_their_options() {
        let mut s = String::new();
        virtual_text(&mut s);
        assert!(s.contains(VIRTUAL_OPTIONS), "{s}");
        assert!(s.contains("jack:[name=CLIENT][,noconnect]"), "{s}");
        let j = jack_json();
        assert_eq!(j["options"], JACK_OPTIONS);
        // The names listed parse as device strings.
        for name in [VIRTUAL_NAME, JACK_NAME] {
            assert!(name.parse::<crate::device::DeviceSpec>().is_ok(), "{name}");
        }
    }
}
