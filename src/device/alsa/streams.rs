//! The RT thread's ALSA state: one or two configured PCMs with every buffer and poll
//! descriptor they will ever need, built on the main thread.
//!
//! Design: a duplex stream opens playback first, then capture. Order matters for plugins
//! whose capture side connects to ports the playback side registers (the JACK loopback in
//! the tests), and the capture period is then forced to the playback period so one period
//! of work serves both. The two PCMs are linked with `snd_pcm_link` so start, stop and
//! xruns hit both at once; plugins that cannot link (ioplug, e.g. JACK: ENOSYS) run
//! unlinked, started back to back, and the poll loop waits until both are ready.

use std::ops::Range;

use ::alsa::Direction as AlsaDirection;
use ::alsa::PollDescriptors;
use ::alsa::pcm::PCM;

use super::OpenOptions;
use super::chain::PcmChain;
use super::negotiate::{self, FORMAT_ORDER, Got, Want};
use crate::device::{DeviceError, Direction, SampleFormat, StreamConfig};
use crate::dsp::convert::sample_bytes;

/// One configured direction.
pub(super) struct Stream {
    pub pcm: PCM,
    pub format: SampleFormat,
    /// Bytes per frame in the device's format.
    pub frame_bytes: usize,
    /// Frames in the device buffer.
    pub buffer: usize,
    /// One period in the device's format.
    pub native: Vec<u8>,
    /// One period as interleaved f32, what `process` sees.
    pub samples: Vec<f32>,
    /// This stream's slice of [`Streams::pollfds`].
    pub fds: Range<usize>,
}

/// Everything `cycle` touches, allocated at open.
pub(super) struct Streams {
    pub capture: Option<Stream>,
    pub playback: Option<Stream>,
    /// `snd_pcm_link` succeeded: start, stop and prepare act on both.
    pub linked: bool,
    /// False only for a PCM allowed without pacing (test mode): no waiting at all.
    pub paced: bool,
    /// Frames per period (same for both directions).
    pub period: usize,
    /// Frames per second.
    pub rate: u32,
    /// Capture descriptors first, then playback.
    pub pollfds: Vec<libc::pollfd>,
    /// How long one wait may take before the device counts as stalled.
    pub timeout_ms: i32,
}

/// What an open produced, for [`crate::device::Obtained`].
pub(super) struct Negotiated {
    pub streams: Streams,
    pub format: SampleFormat,
    pub period: u32,
    pub buffer: u32,
    pub sound_server: Option<String>,
}

impl Streams {
    /// No PCM open (after the device vanished and before a reopen succeeded).
    pub fn closed() -> Streams {
        Streams {
            capture: None,
            playback: None,
            linked: false,
            paced: true,
            period: 0,
            rate: 0,
            pollfds: Vec::new(),
            timeout_ms: 0,
        }
    }

    /// True when no PCM is open.
    pub fn is_closed(&self) -> bool {
        self.capture.is_none() && self.playback.is_none()
    }

    /// Opens and configures `name` for `dir`.
    pub fn open(
        name: &str,
        dir: Direction,
        cfg: &StreamConfig,
        opts: &OpenOptions,
    ) -> Result<Negotiated, DeviceError> {
        cfg.validate()?;
        let order: &[SampleFormat] = if opts.formats.is_empty() {
            &FORMAT_ORDER
        } else {
            &opts.formats
        };
        let play = match dir.plays() {
            true => Some(negotiate::open_pcm(
                name,
                AlsaDirection::Playback,
                opts.allow_unpaced,
            )?),
            false => None,
        };
        let cap = match dir.captures() {
            true => Some(negotiate::open_pcm(
                name,
                AlsaDirection::Capture,
                opts.allow_unpaced,
            )?),
            false => None,
        };

        // The first format both directions accept.
        let mut common: Vec<SampleFormat> = order.to_vec();
        for (o, d) in [
            (&play, AlsaDirection::Playback),
            (&cap, AlsaDirection::Capture),
        ] {
            if let Some(o) = o {
                let ok = negotiate::accepted_formats(name, d, &o.pcm, order)?;
                common.retain(|f| ok.contains(f));
                if ok.is_empty() {
                    return Err(no_format(name, d, &o.pcm, order));
                }
            }
        }
        let Some(&format) = common.first() else {
            return Err(DeviceError::Open {
                name: name.to_string(),
                reason: format!(
                    "capture and playback share none of the formats {} (playback offers {}, capture offers {})",
                    names(order),
                    play.as_ref()
                        .map_or("-".into(), |o| negotiate::offered_formats(&o.pcm)),
                    cap.as_ref()
                        .map_or("-".into(), |o| negotiate::offered_formats(&o.pcm)),
                ),
            });
        };

        let mut want = Want {
            format,
            channels: u32::from(cfg.channels),
            rate: cfg.rate,
            period: cfg.period_frames,
            periods: cfg.periods,
            exact_period: false,
        };
        let mut first: Option<Got> = None;
        let mut chains: Vec<PcmChain> = Vec::new();
        let mut build = |o: Option<negotiate::Opened>,
                         d: AlsaDirection|
         -> Result<Option<Stream>, DeviceError> {
            let Some(o) = o else { return Ok(None) };
            let got = negotiate::configure(name, d, &o.pcm, want)?;
            if first.is_none() {
                first = Some(got);
                want.period = got.period as u32;
                want.exact_period = true;
            }
            chains.push(o.chain);
            let frame_bytes = sample_bytes(format) * usize::from(cfg.channels);
            Ok(Some(Stream {
                pcm: o.pcm,
                format,
                frame_bytes,
                buffer: got.buffer,
                native: vec![0; got.period * frame_bytes],
                samples: vec![0.0; got.period * usize::from(cfg.channels)],
                fds: 0..0,
            }))
        };
        let playback = build(play, AlsaDirection::Playback)?;
        let capture = build(cap, AlsaDirection::Capture)?;
        let got = first.expect("a direction was opened");

        let linked = match (&capture, &playback) {
            (Some(c), Some(p)) => c.pcm.link(&p.pcm).is_ok(),
            _ => false,
        };
        let paced = chains.iter().all(PcmChain::paces_time);
        let buffer = playback
            .as_ref()
            .or(capture.as_ref())
            .map_or(0, |s| s.buffer);
        // Generous: ten buffers, at least half a second. Only a dead clock trips it.
        let buffer_ms = (buffer as u64 * 1000).div_ceil(u64::from(cfg.rate));
        let timeout_ms = (10 * buffer_ms).clamp(500, 10_000) as i32;

        let mut streams = Streams {
            capture,
            playback,
            linked,
            paced,
            period: got.period,
            rate: cfg.rate,
            pollfds: Vec::new(),
            timeout_ms,
        };
        streams.alloc_pollfds(name)?;

        let mut reasons: Vec<String> = Vec::new();
        for chain in &chains {
            if let Some(r) = chain.sound_server() {
                if !reasons.contains(&r) {
                    reasons.push(r);
                }
            }
        }
        Ok(Negotiated {
            streams,
            format,
            period: got.period as u32,
            buffer: buffer as u32,
            sound_server: (!reasons.is_empty()).then(|| reasons.join(" | ")),
        })
    }

    /// Sizes and fills the pollfd array: capture's descriptors, then playback's.
    fn alloc_pollfds(&mut self, name: &str) -> Result<(), DeviceError> {
        let counts = [
            self.capture.as_ref().map_or(0, |s| s.pcm.count()),
            self.playback.as_ref().map_or(0, |s| s.pcm.count()),
        ];
        self.pollfds = vec![
            libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            };
            counts[0] + counts[1]
        ];
        let mut at = 0;
        for (stream, n) in [
            (&mut self.capture, counts[0]),
            (&mut self.playback, counts[1]),
        ] {
            if let Some(s) = stream {
                s.fds = at..at + n;
                at += n;
            }
        }
        self.refill_pollfds().map_err(|e| DeviceError::Open {
            name: name.to_string(),
            reason: format!("poll descriptors: {}", negotiate::describe(e)),
        })
    }

    /// Asks alsa-lib for the descriptors and events again (they may change after a
    /// prepare); writes into the preallocated array only.
    pub fn refill_pollfds(&mut self) -> Result<(), ::alsa::Error> {
        for s in [&self.capture, &self.playback].into_iter().flatten() {
            let fds = &mut self.pollfds[s.fds.clone()];
            if !fds.is_empty() {
                s.pcm.fill(fds)?;
            }
        }
        Ok(())
    }

    /// The f32 period buffers: capture (read-only for `process`) and playback; empty
    /// slices for a direction not opened.
    pub fn buffers(&mut self) -> (&[f32], &mut [f32]) {
        let cap: &[f32] = match &self.capture {
            Some(s) => &s.samples,
            None => &[],
        };
        let play: &mut [f32] = match &mut self.playback {
            Some(s) => &mut s.samples,
            None => &mut [],
        };
        (cap, play)
    }
}

fn names(formats: &[SampleFormat]) -> String {
    formats
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn no_format(name: &str, dir: AlsaDirection, pcm: &PCM, order: &[SampleFormat]) -> DeviceError {
    DeviceError::Open {
        name: name.to_string(),
        reason: format!(
            "{} offers none of the formats {} (it offers: {})",
            negotiate::label(dir),
            names(order),
            negotiate::offered_formats(pcm)
        ),
    }
}
