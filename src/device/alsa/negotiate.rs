//! Opening one PCM and negotiating its hardware and software parameters (main thread).
//!
//! Design: rate and channels are the engine's contract with the network and the mixer, so
//! they are set exactly or refused with the device's ranges in the message (no silent
//! resampling). Period size and count are wishes: set near, then read back and reported.
//! Formats are tried in the caller's order and the first the device takes wins; the RT
//! thread converts. Software parameters make the stream start only when told (playback is
//! prefilled first, linked streams start together) and wake the poll loop once per period.

use std::ffi::CString;

use ::alsa::pcm::{Access, Format, Frames, HwParams, PCM};
use ::alsa::{Direction as AlsaDirection, Output, ValueOr};

use super::chain::PcmChain;
use crate::device::{DeviceError, SampleFormat};

/// The formats tried when the caller does not choose: best quality and cheapest first.
pub(super) const FORMAT_ORDER: [SampleFormat; 5] = [
    SampleFormat::F32,
    SampleFormat::S32,
    SampleFormat::S24,
    SampleFormat::S24Packed,
    SampleFormat::S16,
];

/// The ALSA little-endian format for one of ours.
pub(super) fn alsa_format(f: SampleFormat) -> Format {
    match f {
        SampleFormat::F32 => Format::FloatLE,
        SampleFormat::S32 => Format::S32LE,
        SampleFormat::S24 => Format::S24LE,
        SampleFormat::S24Packed => Format::S243LE,
        SampleFormat::S16 => Format::S16LE,
    }
}

/// "capture" or "playback", for messages.
pub(super) fn label(dir: AlsaDirection) -> &'static str {
    match dir {
        AlsaDirection::Capture => "capture",
        AlsaDirection::Playback => "playback",
    }
}

/// An ALSA error as `function: strerror`.
pub(super) fn describe(e: ::alsa::Error) -> String {
    let os = std::io::Error::from_raw_os_error(e.errno().abs());
    format!("{}: {os}", e.func())
}

/// A PCM opened (nonblocking) and judged, not yet configured.
pub(super) struct Opened {
    pub pcm: PCM,
    pub chain: PcmChain,
}

/// Opens `name` for one direction in nonblocking mode and reads its plugin chain. Refuses a
/// chain that does not pace time unless `allow_unpaced`.
pub(super) fn open_pcm(
    name: &str,
    dir: AlsaDirection,
    allow_unpaced: bool,
) -> Result<Opened, DeviceError> {
    let cname = CString::new(name).map_err(|_| DeviceError::BadSpec {
        spec: name.escape_debug().to_string(),
        reason: "the name contains a NUL byte".into(),
    })?;
    // alsa-lib prints its own error lines on stderr unless a handler takes them: take
    // them on this thread, and say them in izyrt's one error line instead.
    let lib_said = ::alsa::Output::local_error_handler().ok();
    let pcm = PCM::open(&cname, dir, true).map_err(|e| {
        let said = lib_said.map_or_else(String::new, |o| o.borrow().to_string());
        open_error(name, dir, e, &said)
    })?;
    let chain = dump_chain(&pcm);
    if !chain.paces_time() && !allow_unpaced {
        return Err(DeviceError::Open {
            name: name.to_string(),
            reason: format!(
                "refused for realtime use: this PCM does not pace time (chain: {}), so an RT \
                 loop on it would spin; use a sound card (hw:CARD,DEV) or a paced PCM such as \
                 jack",
                chain.headers.join(" -> ")
            ),
        });
    }
    Ok(Opened { pcm, chain })
}

/// The reason an open failed, in words a user can act on; `lib_said` is what alsa-lib
/// said about it (its error lines, captured). Cheap: a reopen on the RT thread comes
/// here too (the nearest known name is added by the first open only, see
/// `suggest::on_first_open`).
pub(super) fn open_error(
    name: &str,
    dir: AlsaDirection,
    e: ::alsa::Error,
    lib_said: &str,
) -> DeviceError {
    let why = match e.errno().abs() {
        libc::ENOENT => format!(
            "no such {} PCM: not defined in the ALSA configuration, or its card, device or \
             sound server is not there (see `izyrt devices`)",
            label(dir)
        ),
        libc::EBUSY => format!(
            "the {} PCM is busy: another program is using it",
            label(dir)
        ),
        libc::EACCES | libc::EPERM => {
            "permission denied (is the user in the 'audio' group?)".to_string()
        }
        libc::ENODEV | libc::ENXIO => format!("no such {} device", label(dir)),
        libc::EINVAL => format!("alsa-lib rejected the {} PCM definition", label(dir)),
        _ => format!("{} open failed: {}", label(dir), describe(e)),
    };
    let mut reason = why;
    let said: Vec<&str> = lib_said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !said.is_empty() {
        reason.push_str(&format!(" (alsa-lib: {})", said.join("; ")));
    }
    DeviceError::Open {
        name: name.to_string(),
        reason,
    }
}

fn dump_chain(pcm: &PCM) -> PcmChain {
    let text = Output::buffer_open()
        .and_then(|mut out| {
            pcm.dump(&mut out)?;
            Ok(out.buffer_string(|b| String::from_utf8_lossy(b).into_owned()))
        })
        .unwrap_or_default();
    PcmChain::from_dump(&text)
}

/// What one direction is asked for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Want {
    pub format: SampleFormat,
    pub channels: u32,
    pub rate: u32,
    pub period: u32,
    pub periods: u32,
    /// The period must be exactly `period` (the second half of a duplex pair).
    pub exact_period: bool,
}

/// What one direction got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Got {
    pub period: usize,
    pub buffer: usize,
}

fn range<T: PartialEq + std::fmt::Display>(
    lo: Result<T, ::alsa::Error>,
    hi: Result<T, ::alsa::Error>,
    unit: &str,
) -> String {
    match (lo, hi) {
        (Ok(a), Ok(b)) if a == b => format!("{a}{unit}"),
        (Ok(a), Ok(b)) => format!("{a}..={b}{unit}"),
        _ => "unknown".to_string(),
    }
}

fn with_access<'a>(
    name: &str,
    dir: AlsaDirection,
    pcm: &'a PCM,
) -> Result<HwParams<'a>, DeviceError> {
    let fail = |reason: String| DeviceError::Open {
        name: name.to_string(),
        reason,
    };
    let hw = HwParams::any(pcm)
        .map_err(|e| fail(format!("{} parameters: {}", label(dir), describe(e))))?;
    hw.set_access(Access::RWInterleaved).map_err(|_| {
        fail(format!(
            "{} does not offer read/write interleaved access",
            label(dir)
        ))
    })?;
    Ok(hw)
}

/// The formats of `order` this PCM accepts (with RW interleaved access), in that order.
pub(super) fn accepted_formats(
    name: &str,
    dir: AlsaDirection,
    pcm: &PCM,
    order: &[SampleFormat],
) -> Result<Vec<SampleFormat>, DeviceError> {
    let hw = with_access(name, dir, pcm)?;
    Ok(order
        .iter()
        .copied()
        .filter(|f| hw.test_format(alsa_format(*f)).is_ok())
        .collect())
}

/// Every ALSA format the PCM offers, for an error message.
pub(super) fn offered_formats(pcm: &PCM) -> String {
    let Ok(hw) = HwParams::any(pcm) else {
        return "unknown".to_string();
    };
    let names: Vec<String> = Format::all()
        .iter()
        // `Unknown` is -1: alsa-lib asserts on it instead of refusing.
        .filter(|f| **f != Format::Unknown && hw.test_format(**f).is_ok())
        .map(|f| f.to_string())
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(" ")
    }
}

/// Sets access, format, channels and rate exactly, period and period count near; applies
/// them; then sets the software parameters for manual start and one wakeup per period.
pub(super) fn configure(
    name: &str,
    dir: AlsaDirection,
    pcm: &PCM,
    want: Want,
) -> Result<Got, DeviceError> {
    let fail = |reason: String| DeviceError::Open {
        name: name.to_string(),
        reason,
    };
    let side = label(dir);
    let hw = with_access(name, dir, pcm)?;
    hw.set_format(alsa_format(want.format)).map_err(|e| {
        fail(format!(
            "{side} format {}: {}",
            want.format.name(),
            describe(e)
        ))
    })?;
    if hw.set_channels(want.channels).is_err() {
        return Err(fail(format!(
            "{} channels not available for {side} (the device allows {} in {})",
            want.channels,
            range(hw.get_channels_min(), hw.get_channels_max(), ""),
            want.format.name()
        )));
    }
    if hw.set_rate(want.rate, ValueOr::Nearest).is_err() {
        return Err(fail(format!(
            "rate {} Hz not available for {side} (the device allows {} with {} channels)",
            want.rate,
            range(hw.get_rate_min(), hw.get_rate_max(), " Hz"),
            want.channels
        )));
    }
    let period = Frames::from(want.period);
    if want.exact_period {
        if hw.set_period_size(period, ValueOr::Nearest).is_err() {
            return Err(fail(format!(
                "{side} cannot use the other direction's period of {} frames (it allows {} frames)",
                want.period,
                range(hw.get_period_size_min(), hw.get_period_size_max(), "")
            )));
        }
    } else {
        hw.set_period_size_near(period, ValueOr::Nearest)
            .map_err(|e| {
                fail(format!(
                    "{side} period near {} frames (the device allows {} frames): {}",
                    want.period,
                    range(hw.get_period_size_min(), hw.get_period_size_max(), ""),
                    describe(e)
                ))
            })?;
    }
    hw.set_periods_near(want.periods, ValueOr::Nearest)
        .map_err(|e| {
            fail(format!(
                "{side} period count near {} (the device allows {}): {}",
                want.periods,
                range(hw.get_periods_min(), hw.get_periods_max(), ""),
                describe(e)
            ))
        })?;
    pcm.hw_params(&hw)
        .map_err(|e| fail(format!("{side} parameters refused: {}", describe(e))))?;

    let cur = pcm
        .hw_params_current()
        .map_err(|e| fail(format!("{side} parameters: {}", describe(e))))?;
    let got_period = cur.get_period_size().map_err(|e| fail(describe(e)))?;
    let got_buffer = cur.get_buffer_size().map_err(|e| fail(describe(e)))?;
    drop(cur);
    if got_period <= 0 || got_buffer < 2 * got_period {
        return Err(fail(format!(
            "{side} got an unusable buffer: period {got_period} frames, buffer {got_buffer} frames"
        )));
    }

    let sw = pcm
        .sw_params_current()
        .map_err(|e| fail(format!("{side} software parameters: {}", describe(e))))?;
    let boundary = sw.get_boundary().map_err(|e| fail(describe(e)))?;
    sw.set_avail_min(got_period)
        .and_then(|()| sw.set_start_threshold(boundary))
        .and_then(|()| sw.set_stop_threshold(got_buffer))
        .and_then(|()| pcm.sw_params(&sw))
        .map_err(|e| {
            fail(format!(
                "{side} software parameters refused: {}",
                describe(e)
            ))
        })?;

    Ok(Got {
        period: got_period as usize,
        buffer: got_buffer as usize,
    })
}
