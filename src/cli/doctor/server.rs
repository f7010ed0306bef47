//! The doctor's sound-server check (main thread): which sound servers run, and whether a
//! process holds the card izyrt is to open (`/proc/asound/cardN/pcm*/sub*/status` names
//! the `owner_pid` of every open substream).

use std::path::Path;

use super::Check;
use crate::device::DeviceSpec;

/// Processes that grab sound cards.
const SERVERS: &[&str] = &[
    "pipewire",
    "pipewire-pulse",
    "wireplumber",
    "pulseaudio",
    "jackd",
    "jackdbus",
];

/// The ALSA card index a device names (`hw:1,0`, `hw:CARD=USB,DEV=0`, `plughw:PCH`), when
/// it names one (a card id is looked up in `/proc/asound`).
pub(super) fn card_of(spec: &DeviceSpec) -> Option<u32> {
    let DeviceSpec::Alsa(name) = spec else {
        return None;
    };
    card_in(name, |id| {
        std::fs::read_link(Path::new("/proc/asound").join(id))
            .ok()
            .and_then(|t| t.to_str()?.strip_prefix("card")?.parse().ok())
    })
}

/// [`card_of`] with the card id → index lookup given.
fn card_in(name: &str, index_of: impl Fn(&str) -> Option<u32>) -> Option<u32> {
    let (plugin, args) = name.split_once(':')?;
    if !plugin.ends_with("hw") {
        return None;
    }
    let first = args.split(',').next()?;
    let card = first.strip_prefix("CARD=").unwrap_or(first);
    card.parse().ok().or_else(|| index_of(card))
}

/// An open substream: card, its status file, the owning pid.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    card: u32,
    substream: String,
    pid: u32,
}

/// `sound server`: with a card to open, FAIL when a process holds it, WARN when a sound
/// server runs that may grab it; without, list what runs.
pub(super) fn sound_server(card: Option<u32>) -> Check {
    sound_server_verdict(card, &holders(), &running_servers(), &comm)
}

fn sound_server_verdict(
    card: Option<u32>,
    holders: &[Holder],
    servers: &[(u32, String)],
    comm_of: &dyn Fn(u32) -> Option<String>,
) -> Check {
    const NAME: &str = "sound server";
    let running: Vec<String> = servers
        .iter()
        .map(|(pid, name)| format!("{name} (pid {pid})"))
        .collect();
    let Some(card) = card else {
        return Check::pass(
            NAME,
            if running.is_empty() {
                "no card to open; no sound server runs".into()
            } else {
                format!("no card to open; running: {}", running.join(", "))
            },
        );
    };
    if let Some(h) = holders.iter().find(|h| h.card == card) {
        let who = comm_of(h.pid).unwrap_or_else(|| "a process".into());
        return Check::fail(
            NAME,
            format!(
                "card {card} is held by {who} (pid {}, {}): izyrt cannot open its hw: device",
                h.pid, h.substream
            ),
            Some(stop_fix(&who, h.pid)),
        );
    }
    match servers.first() {
        None => Check::pass(NAME, format!("card {card} is free; no sound server runs")),
        Some((pid, name)) => Check::warn(
            NAME,
            format!(
                "card {card} is free now, but {} may grab it",
                running.join(", ")
            ),
            Some(stop_fix(name, *pid)),
        ),
    }
}

/// The command that stops `who` (a sound server, or any process).
fn stop_fix(who: &str, pid: u32) -> String {
    match who {
        "pipewire" | "pipewire-pulse" | "wireplumber" => {
            "systemctl --user stop pipewire.socket pipewire-pulse.socket pipewire wireplumber (or give izyrt another card)".into()
        }
        "pulseaudio" => "systemctl --user stop pulseaudio.socket pulseaudio (or `pulseaudio --kill`)".into(),
        "jackd" | "jackdbus" => "stop JACK, or open it as a client with --device jack:".into(),
        _ => format!("stop {who} (`kill {pid}`)"),
    }
}

/// Every open substream of every card.
fn holders() -> Vec<Holder> {
    let mut out = Vec::new();
    let Ok(cards) = std::fs::read_dir("/proc/asound") else {
        return out;
    };
    for card in cards.flatten() {
        let name = card.file_name().to_string_lossy().into_owned();
        let Some(n) = name.strip_prefix("card").and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(pcms) = std::fs::read_dir(card.path()) else {
            continue;
        };
        for pcm in pcms.flatten() {
            let Ok(subs) = std::fs::read_dir(pcm.path()) else {
                continue;
            };
            for sub in subs.flatten() {
                let status = sub.path().join("status");
                let Ok(text) = std::fs::read_to_string(&status) else {
                    continue;
                };
                if let Some(pid) = owner_pid(&text) {
                    out.push(Holder {
                        card: n,
                        substream: format!(
                            "{}/{}",
                            pcm.file_name().to_string_lossy(),
                            sub.file_name().to_string_lossy()
                        ),
                        pid,
                    });
                }
            }
        }
    }
    out
}

/// The `owner_pid` line of a substream's `status` (absent when it is `closed`).
fn owner_pid(status: &str) -> Option<u32> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "owner_pid").then(|| v.trim().parse().ok())?
    })
}

/// Running sound servers, by pid.
fn running_servers() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(name) = comm(pid).filter(|n| SERVERS.contains(&n.as_str())) {
            out.push((pid, name));
        }
    }
    out.sort();
    out
}

/// A process's command name.
fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn cards_from_device_names() {
        let ids = |id: &str| (id == "USB").then_some(3);
        assert_eq!(card_in("hw:1,0", ids), Some(1));
        assert_eq!(card_in("hw:CARD=USB,DEV=0", ids), Some(3));
        assert_eq!(card_in("plughw:USB", ids), Some(3));
        assert_eq!(card_in("hw:Nope", ids), None);
        assert_eq!(card_in("pulse", ids), None);
        assert_eq!(card_in("dmix:0", ids), None);
        assert_eq!(card_of(&"virtual".parse().unwrap()), None);
    }

    #[test]
    fn owner_pid_is_read_from_status() {
        let open = "state: RUNNING\nowner_pid   : 1234\ntrigger_time: 1.0\n";
        assert_eq!(owner_pid(open), Some(1234));
        assert_eq!(owner_pid("closed\n"), None);
    }

    #[test]
    fn verdicts() {
        let comm_of = |pid: u32| (pid == 42).then(|| "pipewire".to_owned());
        let held = [Holder {
            card: 1,
            substream: "pcm0p/sub0".into(),
            pid: 42,
        }];
        let servers = [(42, "pipewire".to_owned())];
        let c = sound_server_verdict(Some(1), &held, &servers, &comm_of);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail.contains("held by pipewire (pid 42"),
            "{}",
            c.detail
        );
        assert!(c.fix.unwrap().contains("systemctl --user stop pipewire"));
        let c = sound_server_verdict(Some(2), &held, &servers, &comm_of);
        assert_eq!(c.status, Status::Warn);
        assert_eq!(
            sound_server_verdict(Some(2), &[], &[], &comm_of).status,
            Status::Pass
        );
        assert_eq!(
            sound_server_verdict(None, &held, &servers, &comm_of).status,
            Status::Pass
        );
    }
}
