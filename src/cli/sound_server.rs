//! The one warning every role prints when its PCM goes through a sound server or a plugin
//! (main thread): play, record, thru, peer, monitor, the hub with a device and dev mode.
//!
//! The original system warned never to use the pulse devices: a sound server (PulseAudio,
//! PipeWire, JACK through the ALSA plugin), dmix/dsnoop or plug adds its own buffering and
//! takes locks in the audio path. The device layer judges the opened PCM by its plugin
//! chain ([`Obtained::sound_server`], so `default` is flagged when it maps to one of them);
//! this module turns that into one line naming the `hw:` device to use instead: the first
//! card offering the direction, by its stable name, or `izyrt devices` when none is found.

use crate::device::{Direction, Obtained};

/// The warning line for `device`, which goes through what `why` says. `instead` is
/// the `hw:` device to suggest (`None`: point to `izyrt devices`).
pub(super) fn warning_text(device: &str, why: &str, instead: Option<&str>) -> String {
    let fix = match instead {
        Some(hw) => format!("use --device {hw} instead (izyrt devices lists every card)"),
        None => "use a hw: device instead (run izyrt devices to list them)".to_owned(),
    };
    format!(
        "warning:   device {device} is not a direct sound card: {why}; it adds latency and takes locks in the audio path: {fix}"
    )
}

/// The first card device offering `dir`, by its stable name.
fn first_hw(dir: Direction) -> Option<String> {
    #[cfg(target_os = "linux")]
    return crate::device::alsa::first_hw(dir);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        None
    }
}

/// Prints the warning for `o` (opened for `dir`) on stderr when it goes through a sound
/// server or plugin; nothing for a direct device.
pub(super) fn warn(o: &Obtained, dir: Direction) {
    if let Some(why) = &o.sound_server {
        eprintln!("{}", warning_text(&o.name, why, first_hw(dir).as_deref()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_names_the_device_the_reason_and_the_fix() {
        let line = warning_text(
            "pulse",
            "goes through the PulseAudio sound server",
            Some("hw:CARD=PCH,DEV=0"),
        );
        assert!(line.starts_with("warning:   device pulse is not a direct sound card"));
        assert!(
            line.contains("goes through the PulseAudio sound server"),
            "{line}"
        );
        assert!(
            line.contains("use --device hw:CARD=PCH,DEV=0 instead"),
            "{line}"
        );
        let none = warning_text("default", "dmix shares the card", None);
        assert!(none.contains("run izyrt devices"), "{none}");
    }
}
