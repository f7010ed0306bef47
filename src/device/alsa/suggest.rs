//! The known device name nearest to one ALSA does not know (main thread, on the error
//! path of an open).
//!
//! Candidates: izyrt's own `virtual` and `jack`, the PCM names alsa-lib's configuration
//! defines (its name hints: `default`, `null`, `pulse`, `hw:CARD=PCH,DEV=0`, ...) and,
//! for a `hw:`/`plughw:` name whose card is given by id, the ids of the cards present
//! (`/proc/asound/cards`). Built only when an open failed, so it may allocate freely.

use crate::config::suggest::nearest;

/// A first open's error (main thread), with the nearest known name added when the PCM was
/// not found. Not on [`open_error`](super::negotiate::open_error) itself: a reopen on the
/// RT thread, retried every half second while a card is unplugged, would walk alsa-lib's
/// name hints and `/proc` each time, for a message nobody reads.
pub(super) fn on_first_open(e: crate::device::DeviceError) -> crate::device::DeviceError {
    match e {
        crate::device::DeviceError::Open { name, mut reason } if reason.starts_with("no such") => {
            if let Some(near) = nearest_device(&name) {
                reason.push_str(&format!("; did you mean '{near}'?"));
            }
            crate::device::DeviceError::Open { name, reason }
        }
        e => e,
    }
}

/// A name like `name` that exists, when one is near (see [`crate::config::suggest`]).
pub(super) fn nearest_device(name: &str) -> Option<String> {
    // `virtal:tone=440`: the part before the options.
    let (head, tail) = match name.split_once(':') {
        Some((h, t)) => (h, Some(t)),
        None => (name, None),
    };
    let own = ["virtual", "jack", "hw", "plughw", "default", "null"];
    if let Some(near) = nearest(head, own) {
        return Some(match tail {
            Some(t) => format!("{near}:{t}"),
            None => near.to_owned(),
        });
    }
    if let (Some(t), "hw" | "plughw") = (tail, head) {
        return near_card(head, t);
    }
    let hints = pcm_hints();
    nearest(name, hints.iter().map(String::as_str)).map(str::to_owned)
}

/// `hw:PCHH,0` or `hw:CARD=PCHH,DEV=0` with a card id close to a present card's.
fn near_card(head: &str, args: &str) -> Option<String> {
    let (first, rest) = args.split_once(',').unwrap_or((args, ""));
    let (key, card) = match first.split_once('=') {
        Some((k, v)) => (format!("{k}="), v),
        None => (String::new(), first),
    };
    if card.is_empty() || card.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ids = card_ids();
    let near = nearest(card, ids.iter().map(String::as_str))?;
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!(",{rest}")
    };
    Some(format!("{head}:{key}{near}{rest}"))
}

/// The ids of the sound cards present, from `/proc/asound/cards` (` 0 [PCH    ]: ...`).
fn card_ids() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/asound/cards").unwrap_or_default();
    parse_card_ids(&text)
}

fn parse_card_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let open = l.find('[')?;
            let close = l[open..].find(']')? + open;
            l[..open]
                .trim()
                .parse::<u32>()
                .ok()
                .map(|_| l[open + 1..close].trim().to_owned())
        })
        .collect()
}

/// The PCM names alsa-lib's configuration defines.
fn pcm_hints() -> Vec<String> {
    ::alsa::device_name::HintIter::new_str(None, "pcm")
        .map(|hints| hints.filter_map(|h| h.name).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_names_and_card_ids() {
        assert_eq!(nearest_device("virtal").as_deref(), Some("virtual"));
        assert_eq!(
            nearest_device("virtaul:tone=440").as_deref(),
            Some("virtual:tone=440")
        );
        let cards = " 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n                      \
                     HDA Intel PCH at 0xf7f10000 irq 31\n 1 [USB            ]: USB-Audio - Scarlett\n";
        assert_eq!(parse_card_ids(cards), ["PCH", "USB"]);
    }
}
