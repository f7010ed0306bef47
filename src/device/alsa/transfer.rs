//! Moving one period between the device and the f32 buffers (RT audio thread).
//!
//! Design: transfers use the RW interleaved calls on byte slices (`snd_pcm_readi` /
//! `snd_pcm_writei` through the `alsa` crate's untyped I/O handle, which neither allocates
//! nor re-reads the hardware parameters the way its typed handles do), into a native
//! buffer sized at open; [`crate::dsp::convert`] does the format work. After the poll loop
//! a whole period is available, so a transfer is normally one call; a short one (a plugin
//! delivering in smaller chunks) waits on that direction alone and continues.

use super::recover::Fault;
use super::streams::{Stream, Streams};
use crate::dsp::convert;

/// In unpaced (test) mode, how many empty transfers in a row count as a stall.
const UNPACED_RETRIES: u32 = 1000;

impl Streams {
    /// Reads one period from capture and converts it to f32.
    pub fn read_period(&mut self) -> Result<(), Fault> {
        let mut done = 0;
        let mut idle = 0;
        loop {
            let Some(s) = self.capture.as_mut() else {
                return Ok(());
            };
            let total = s.native.len();
            if done == total {
                convert::to_f32(s.format, &s.native, &mut s.samples);
                return Ok(());
            }
            let r = s.pcm.io_bytes().readi(&mut s.native[done..]);
            let n = progress(s, r, "snd_pcm_readi")?;
            done += n;
            if n == 0 {
                self.stall_or_wait(true, &mut idle)?;
            }
        }
    }

    /// Converts the playback f32 buffer and writes it as one period.
    pub fn write_period(&mut self) -> Result<(), Fault> {
        let Some(s) = self.playback.as_mut() else {
            return Ok(());
        };
        convert::from_f32(s.format, &s.samples, &mut s.native);
        self.write_native(false).map(|_| ())
    }

    /// Fills the playback buffer with silence before a start.
    pub fn prefill(&mut self) -> Result<(), Fault> {
        let Some(s) = self.playback.as_mut() else {
            return Ok(());
        };
        s.native.fill(0);
        let periods = s.buffer.div_ceil(self.period.max(1));
        for _ in 0..periods {
            if !self.write_native(true)? {
                break;
            }
        }
        Ok(())
    }

    /// Writes the whole native playback buffer. With `until_full`, stops at the first
    /// refusal instead of waiting (prefill of a prepared stream) and returns false.
    fn write_native(&mut self, until_full: bool) -> Result<bool, Fault> {
        let mut done = 0;
        let mut idle = 0;
        loop {
            let Some(s) = self.playback.as_mut() else {
                return Ok(true);
            };
            let total = s.native.len();
            if done == total {
                return Ok(true);
            }
            let r = s.pcm.io_bytes().writei(&s.native[done..]);
            let n = progress(s, r, "snd_pcm_writei")?;
            done += n;
            if n == 0 {
                if until_full {
                    return Ok(false);
                }
                self.stall_or_wait(false, &mut idle)?;
            }
        }
    }

    fn stall_or_wait(&mut self, capture: bool, idle: &mut u32) -> Result<(), Fault> {
        if self.paced {
            return self.wait_stream(capture);
        }
        *idle += 1;
        if *idle > UNPACED_RETRIES {
            return Err(Fault::Stalled { ms: 0 });
        }
        std::thread::yield_now();
        Ok(())
    }
}

/// Bytes moved by one transfer call (0 for EAGAIN), or the fault.
fn progress(s: &Stream, r: Result<usize, ::alsa::Error>, op: &'static str) -> Result<usize, Fault> {
    match r {
        Ok(frames) => Ok(frames * s.frame_bytes),
        Err(e) if e.errno().abs() == libc::EAGAIN => Ok(0),
        Err(e) => Err(Fault::from_alsa(op, e)),
    }
}
