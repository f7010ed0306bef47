//! Listing ALSA devices (main thread, for `izyrt devices`): the cards and their `hw:`
//! PCMs with the ranges they accept, then the other PCMs the ALSA configuration names.
//!
//! Design: a `hw:` PCM is opened nonblocking (a busy device answers EBUSY at once instead
//! of blocking), asked for its full configuration space (`snd_pcm_hw_params_any`) and
//! closed; nothing is configured. Other PCMs are listed from the name hints and judged by
//! name only: opening them could start a sound server (PulseAudio autospawns) or wait on
//! one.

use std::path::Path;

use ::alsa::Direction as AlsaDirection;
use ::alsa::card;
use ::alsa::ctl::{Ctl, DeviceIter};
use ::alsa::device_name::HintIter;
use ::alsa::pcm::{Access, HwParams, PCM};
use serde::Serialize;

use super::chain::sound_server_by_name;
use super::negotiate::{FORMAT_ORDER, alsa_format, describe};
use crate::device::hw_name::HwName;

/// Everything `izyrt devices` shows about ALSA.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// Sound cards, in card order.
    pub cards: Vec<Card>,
    /// Why there are no cards, when there are none.
    pub no_cards: Option<String>,
    /// Other PCMs from the ALSA name hints (not `hw:`), judged by name.
    pub pcms: Vec<HintedPcm>,
}

/// One sound card.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    /// Card index (`hw:INDEX,…`).
    pub index: i32,
    /// Short id (`hw:CARD=ID,…`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Long name.
    pub long_name: String,
    /// Its PCM devices.
    pub devices: Vec<CardDevice>,
}

/// One PCM device of a card.
#[derive(Debug, Clone, Serialize)]
pub struct CardDevice {
    /// The name to open it with, `hw:CARD,DEV`.
    pub pcm: String,
    /// The same device by the card's id, `hw:CARD=<id>,DEV=<n>`: stable when cards are
    /// replugged (`hw:X,Y` when the card has no id).
    pub stable: String,
    /// The device's name.
    pub name: String,
    /// Capture, when the device has it.
    pub capture: Option<StreamProbe>,
    /// Playback, when the device has it.
    pub playback: Option<StreamProbe>,
}

/// The result of opening one direction of a `hw:` PCM.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StreamProbe {
    /// Opened: what it accepts.
    Available(StreamCaps),
    /// Another program has it open.
    Busy,
    /// It could not be opened or asked.
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// The configuration space of one direction, as `[min, max]` ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamCaps {
    /// Channels.
    pub channels: [u32; 2],
    /// Rate, Hz.
    pub rate_hz: [u32; 2],
    /// Period size, frames.
    pub period_frames: [u64; 2],
    /// Periods per buffer.
    pub periods: [u32; 2],
    /// Buffer size, frames.
    pub buffer_frames: [u64; 2],
    /// The formats izyrt can use, in its order of preference (`f32`, `s32`, …).
    pub formats: Vec<&'static str>,
    /// Whether read/write interleaved access (what izyrt uses) is offered.
    pub rw_interleaved: bool,
}

/// A PCM from the ALSA name hints.
#[derive(Debug, Clone, Serialize)]
pub struct HintedPcm {
    /// The name to open it with.
    pub name: String,
    /// The configuration's description, lines joined.
    pub description: Option<String>,
    /// Offers capture.
    pub capture: bool,
    /// Offers playback.
    pub playback: bool,
    /// `Some(why)` when it goes (or may go) through a sound server or plugin.
    pub sound_server: Option<String>,
}

/// Lists cards, their `hw:` PCMs and the hinted PCMs. Never blocks on a busy device.
///
/// # Example
/// ```no_run
/// let listing = izyrt::device::alsa::list();
/// for card in &listing.cards {
///     for dev in &card.devices {
///         println!("{} {}", dev.pcm, dev.name);
///     }
/// }
/// if let Some(why) = &listing.no_cards { println!("{why}"); }
/// ```
pub fn list() -> Listing {
    let (cards, no_cards) = list_cards();
    Listing {
        cards,
        no_cards,
        pcms: list_hints(),
    }
}

fn list_cards() -> (Vec<Card>, Option<String>) {
    let mut cards = Vec::new();
    let mut problems = Vec::new();
    for c in card::Iter::new() {
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                problems.push(format!("enumerating cards: {}", describe(e)));
                break;
            }
        };
        match probe_card(&c) {
            Ok(card) => cards.push(card),
            Err(e) => problems.push(format!("card {}: {}", c.get_index(), describe(e))),
        }
    }
    if !cards.is_empty() {
        return (cards, None);
    }
    let why = if !Path::new("/dev/snd").exists() {
        "no sound cards: /dev/snd does not exist (no ALSA kernel driver loaded, or a container \
         without sound devices)"
            .to_string()
    } else {
        "no sound cards found by ALSA".to_string()
    };
    let why = match problems.is_empty() {
        true => why,
        false => format!("{why} ({})", problems.join("; ")),
    };
    (cards, Some(why))
}

fn probe_card(c: &card::Card) -> Result<Card, ::alsa::Error> {
    let index = c.get_index();
    let ctl = Ctl::from_card(c, false)?;
    let info = ctl.card_info()?;
    let mut card = Card {
        index,
        id: info.get_id().unwrap_or("").to_string(),
        name: info.get_name().unwrap_or("").to_string(),
        long_name: info.get_longname().unwrap_or("").to_string(),
        devices: Vec::new(),
    };
    for dev in DeviceIter::new(&ctl) {
        let dev = dev as u32;
        let pcm = format!("hw:{index},{dev}");
        let stable = match card.id.is_empty() {
            true => pcm.clone(),
            false => HwName::stable(&card.id, dev),
        };
        let mut name = String::new();
        let mut probe = |dir: AlsaDirection| {
            let info = ctl.pcm_info(dev, 0, dir).ok()?;
            if name.is_empty() {
                name = info.get_name().unwrap_or("").to_string();
            }
            Some(probe_stream(&pcm, dir))
        };
        let capture = probe(AlsaDirection::Capture);
        let playback = probe(AlsaDirection::Playback);
        card.devices.push(CardDevice {
            pcm,
            stable,
            name,
            capture,
            playback,
        });
    }
    Ok(card)
}

/// The stable name (`hw:CARD=<id>,DEV=<n>`) of the first card device that offers `dir`,
/// found from the cards' control interfaces without opening any PCM; `None` without one.
///
/// # Example
/// ```no_run
/// use izyrt::device::Direction;
/// match izyrt::device::alsa::first_hw(Direction::Capture) {
///     Some(name) => println!("use {name}"),
///     None => println!("no sound card"),
/// }
/// ```
pub fn first_hw(dir: crate::device::Direction) -> Option<String> {
    use crate::device::Direction;
    let wanted: &[AlsaDirection] = match dir {
        Direction::Capture => &[AlsaDirection::Capture],
        Direction::Playback => &[AlsaDirection::Playback],
        Direction::Duplex => &[AlsaDirection::Capture, AlsaDirection::Playback],
    };
    for c in card::Iter::new().map_while(Result::ok) {
        let Ok(ctl) = Ctl::from_card(&c, false) else {
            continue;
        };
        let Ok(info) = ctl.card_info() else { continue };
        let id = info.get_id().unwrap_or("").to_owned();
        for dev in DeviceIter::new(&ctl) {
            let dev = dev as u32;
            if wanted.iter().all(|d| ctl.pcm_info(dev, 0, *d).is_ok()) {
                return Some(match id.is_empty() {
                    true => format!("hw:{},{dev}", c.get_index()),
                    false => HwName::stable(&id, dev),
                });
            }
        }
    }
    None
}

/// Opens one direction nonblocking and reads its configuration space.
fn probe_stream(name: &str, dir: AlsaDirection) -> StreamProbe {
    let pcm = match PCM::new(name, dir, true) {
        Ok(p) => p,
        Err(e) if e.errno().abs() == libc::EBUSY => return StreamProbe::Busy,
        Err(e) => {
            return StreamProbe::Unavailable {
                reason: describe(e),
            };
        }
    };
    match caps(&pcm) {
        Ok(c) => StreamProbe::Available(c),
        Err(e) => StreamProbe::Unavailable {
            reason: describe(e),
        },
    }
}

fn caps(pcm: &PCM) -> Result<StreamCaps, ::alsa::Error> {
    let hw = HwParams::any(pcm)?;
    let rw_interleaved = hw.test_access(Access::RWInterleaved).is_ok();
    let formats = FORMAT_ORDER
        .iter()
        .filter(|f| hw.test_format(alsa_format(**f)).is_ok())
        .map(|f| f.name())
        .collect();
    let frames = |v: ::alsa::pcm::Frames| v.max(0) as u64;
    Ok(StreamCaps {
        channels: [hw.get_channels_min()?, hw.get_channels_max()?],
        rate_hz: [hw.get_rate_min()?, hw.get_rate_max()?],
        period_frames: [
            frames(hw.get_period_size_min()?),
            frames(hw.get_period_size_max()?),
        ],
        periods: [hw.get_periods_min()?, hw.get_periods_max()?],
        buffer_frames: [
            frames(hw.get_buffer_size_min()?),
            frames(hw.get_buffer_size_max()?),
        ],
        formats,
        rw_interleaved,
    })
}

fn list_hints() -> Vec<HintedPcm> {
    let Ok(hints) = HintIter::new_str(None, "pcm") else {
        return Vec::new();
    };
    let mut out: Vec<HintedPcm> = Vec::new();
    for h in hints {
        let Some(name) = h.name else { continue };
        if name.starts_with("hw:") || out.iter().any(|p| p.name == name) {
            continue; // cards are listed with their ranges above
        }
        let description = h
            .desc
            .map(|d| d.lines().map(str::trim).collect::<Vec<_>>().join(", "));
        let (capture, playback) = match h.direction {
            Some(AlsaDirection::Capture) => (true, false),
            Some(AlsaDirection::Playback) => (false, true),
            None => (true, true),
        };
        out.push(HintedPcm {
            sound_server: sound_server_by_name(&name),
            name,
            description,
            capture,
            playback,
        });
    }
    out
}
