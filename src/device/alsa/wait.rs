//! Waiting for one period (RT audio thread): `poll` on the preallocated descriptors until
//! capture has a period to read and playback room for a period to write.
//!
//! Design: `avail_update` is asked first, so a wakeup that is already due costs no
//! syscall beyond it; `poll` runs only on the descriptors of the directions still short of
//! a period (capture's and playback's descriptors are adjacent, so that is always one
//! contiguous slice), which keeps an unlinked duplex pair from spinning on the side that
//! is already ready. After `poll`, `snd_pcm_poll_descriptors_revents` must run: plugins
//! (JACK, dmix) translate their private descriptors there, and POLLERR is how an xrun, a
//! suspend or an unplugged card shows up. How late the wakeup was is read off `avail`:
//! every frame beyond one period accumulated after the period boundary.

use ::alsa::PollDescriptors;
use ::alsa::pcm::State;
use ::alsa::poll::Flags;

use super::recover::Fault;
use super::streams::{Stream, Streams};

impl Streams {
    /// Blocks until every open direction is ready for one period. Returns how many frames
    /// beyond one period the readiest-late direction had (0 when woken right on time).
    ///
    /// # Errors
    /// A [`Fault`] for xruns, suspends, a vanished device or a stalled clock.
    pub fn wait_period(&mut self) -> Result<usize, Fault> {
        let mut need_capture = self.capture.is_some();
        let mut need_playback = self.playback.is_some();
        let mut late = 0usize;
        loop {
            if need_capture {
                if let Some(extra) = beyond_period(self.capture.as_ref(), self.period)? {
                    need_capture = false;
                    late = late.max(extra);
                }
            }
            if need_playback {
                if let Some(extra) = beyond_period(self.playback.as_ref(), self.period)? {
                    need_playback = false;
                    late = late.max(extra);
                }
            }
            if !need_capture && !need_playback {
                return Ok(late);
            }
            let cap = self.capture.as_ref().map_or(0..0, |s| s.fds.clone());
            let play = self.playback.as_ref().map_or(0..0, |s| s.fds.clone());
            let span = match (need_capture, need_playback) {
                (true, true) => cap.start.min(play.start)..cap.end.max(play.end),
                (true, false) => cap,
                _ => play,
            };
            self.poll(span)?;
            if need_capture {
                check_revents(self.capture.as_ref(), &self.pollfds)?;
            }
            if need_playback {
                check_revents(self.playback.as_ref(), &self.pollfds)?;
            }
        }
    }

    /// Waits for one direction only (after a short transfer).
    pub fn wait_stream(&mut self, capture: bool) -> Result<(), Fault> {
        let stream = if capture {
            &self.capture
        } else {
            &self.playback
        };
        let Some(span) = stream.as_ref().map(|s| s.fds.clone()) else {
            return Ok(());
        };
        self.poll(span)?;
        let stream = if capture {
            &self.capture
        } else {
            &self.playback
        };
        check_revents(stream.as_ref(), &self.pollfds).map(|_| ())
    }

    fn poll(&mut self, span: std::ops::Range<usize>) -> Result<(), Fault> {
        let fds = &mut self.pollfds[span];
        if fds.is_empty() {
            // A PCM without descriptors cannot be waited on; treat it as always ready.
            return Ok(());
        }
        loop {
            // SAFETY: `fds` is a valid, exclusively borrowed slice of `pollfd`.
            let n =
                unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, self.timeout_ms) };
            if n > 0 {
                return Ok(());
            }
            if n == 0 {
                return Err(Fault::Stalled {
                    ms: self.timeout_ms,
                });
            }
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if errno != libc::EINTR {
                return Err(Fault::Other { op: "poll", errno });
            }
        }
    }
}

/// `Some(frames beyond one period)` when the stream has a period available.
fn beyond_period(stream: Option<&Stream>, period: usize) -> Result<Option<usize>, Fault> {
    let Some(s) = stream else { return Ok(None) };
    let avail = s
        .pcm
        .avail_update()
        .map_err(|e| Fault::from_alsa("snd_pcm_avail_update", e))?;
    let avail = avail.max(0) as usize;
    Ok((avail >= period).then(|| avail - period))
}

/// Lets the plugin demangle its descriptors' events; turns POLLERR into the fault the
/// stream's state names.
fn check_revents(stream: Option<&Stream>, pollfds: &[libc::pollfd]) -> Result<Flags, Fault> {
    let Some(s) = stream else {
        return Ok(Flags::empty());
    };
    let fds = &pollfds[s.fds.clone()];
    let flags = s
        .pcm
        .revents(fds)
        .map_err(|e| Fault::from_alsa("snd_pcm_poll_descriptors_revents", e))?;
    if flags.intersects(Flags::ERR | Flags::HUP | Flags::NVAL) {
        return Err(match s.pcm.state() {
            State::XRun => Fault::Xrun,
            State::Suspended => Fault::Suspended,
            State::Disconnected => Fault::Gone,
            _ if flags.contains(Flags::NVAL) => Fault::Gone,
            // POLLERR in any other state: the stream is not running (stopped under us).
            _ => Fault::Xrun,
        });
    }
    Ok(flags)
}
