//! Faults of a running stream and the way back to steady state (RT audio thread, but
//! outside steady state: recovery is allowed to take its time, never to allocate).
//!
//! Design: every error on the RT path is first reduced to a `Copy` [`Fault`] (no strings),
//! so the common, recoverable ones cost nothing. Xruns (EPIPE) and suspends (ESTRPIPE) are
//! recovered the same way, by restarting both directions from a known state: drop,
//! prepare, prefill playback with silence, start (once when linked; playback then capture
//! when not). That keeps capture and playback of a duplex stream aligned, which
//! `snd_pcm_recover` on one PCM would not. A suspend first waits (bounded) for
//! `snd_pcm_resume`, as the hardware may need it before a prepare. A vanished device
//! (ENODEV, or POLLERR in the DISCONNECTED state) is not recoverable here: it becomes
//! `DeviceError::Gone` and the caller reopens later. Only that error path builds strings.

use std::time::Duration;

use super::streams::Streams;
use crate::device::DeviceError;

/// What went wrong on the RT path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// Overrun or underrun (EPIPE).
    Xrun,
    /// The system suspended the device (ESTRPIPE).
    Suspended,
    /// The device vanished (ENODEV, disconnected).
    Gone,
    /// No period arrived within the timeout.
    Stalled {
        /// The timeout, ms.
        ms: i32,
    },
    /// Anything else: the call and its errno.
    Other {
        /// The failing call.
        op: &'static str,
        /// Its errno (positive).
        errno: i32,
    },
}

impl Fault {
    /// Classifies an ALSA error by errno.
    pub fn from_alsa(op: &'static str, e: ::alsa::Error) -> Fault {
        Fault::from_errno(op, e.errno().abs())
    }

    /// Classifies an errno (positive).
    pub fn from_errno(op: &'static str, errno: i32) -> Fault {
        match errno {
            libc::EPIPE => Fault::Xrun,
            libc::ESTRPIPE => Fault::Suspended,
            libc::ENODEV | libc::ENXIO => Fault::Gone,
            _ => Fault::Other { op, errno },
        }
    }

    /// The error a caller sees when this fault could not be recovered (error path only).
    pub fn into_error(self, name: &str) -> DeviceError {
        let name = name.to_string();
        match self {
            Fault::Gone => DeviceError::Gone { name },
            Fault::Stalled { ms } => DeviceError::Failed {
                name,
                reason: format!("no period arrived within {ms} ms: the device's clock stopped"),
            },
            Fault::Xrun => DeviceError::Failed {
                name,
                reason: "xruns keep recurring right after recovery".into(),
            },
            Fault::Suspended => DeviceError::Failed {
                name,
                reason: "the device stays suspended".into(),
            },
            Fault::Other { op, errno } => DeviceError::Failed {
                name,
                reason: format!("{op}: {}", std::io::Error::from_raw_os_error(errno)),
            },
        }
    }
}

/// How long a suspended device may take to come back before we prepare it anyway.
const RESUME_TRIES: u32 = 100;
const RESUME_PAUSE: Duration = Duration::from_millis(10);

impl Streams {
    /// Brings the streams back after `fault`; `Err` with the fault that stops us.
    pub fn recover(&mut self, fault: Fault) -> Result<(), Fault> {
        match fault {
            Fault::Xrun => self.restart(),
            Fault::Suspended => {
                self.resume();
                self.restart()
            }
            other => Err(other),
        }
    }

    /// Waits for a suspended device to resume (bounded); on failure the restart's prepare
    /// takes over.
    fn resume(&mut self) {
        for s in [&self.capture, &self.playback].into_iter().flatten() {
            for _ in 0..RESUME_TRIES {
                match s.pcm.resume() {
                    Err(e) if e.errno().abs() == libc::EAGAIN => std::thread::sleep(RESUME_PAUSE),
                    _ => break,
                }
            }
        }
    }

    /// Drop, prepare, prefill, start: a clean start of every direction.
    pub fn restart(&mut self) -> Result<(), Fault> {
        for s in [&self.capture, &self.playback].into_iter().flatten() {
            // Dropping a stream that is already stopped fails harmlessly.
            let _ = s.pcm.drop();
        }
        self.prepare_and_start()
    }

    /// Prepare (if needed), prefill playback with one buffer of silence, start.
    pub fn prepare_and_start(&mut self) -> Result<(), Fault> {
        for s in [&self.capture, &self.playback].into_iter().flatten() {
            if s.pcm.state() != ::alsa::pcm::State::Prepared {
                s.pcm
                    .prepare()
                    .map_err(|e| Fault::from_alsa("snd_pcm_prepare", e))?;
            }
        }
        self.refill_pollfds()
            .map_err(|e| Fault::from_alsa("snd_pcm_poll_descriptors", e))?;
        self.prefill()?;
        let start = |s: &Option<super::streams::Stream>| -> Result<(), Fault> {
            match s {
                Some(s) if s.pcm.state() == ::alsa::pcm::State::Prepared => s
                    .pcm
                    .start()
                    .map_err(|e| Fault::from_alsa("snd_pcm_start", e)),
                _ => Ok(()),
            }
        };
        // Playback first: its prefilled buffer starts draining as capture starts filling.
        // When linked, the first start starts both and the second finds nothing to do.
        start(&self.playback)?;
        start(&self.capture)
    }
}
