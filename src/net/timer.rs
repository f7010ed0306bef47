//! [`Timer`]: a timerfd on `CLOCK_MONOTONIC` for the net thread's deadlines (handshake
//! and liveness timeouts, METADATA cadence, reconnect backoff).
//!
//! Design: a timer is a file descriptor, so it is waited on by the same `epoll_wait` as the
//! sockets and the [`super::Waker`], and the loop never computes poll timeouts itself.
//! `CLOCK_MONOTONIC` because wall-clock steps must not fire or postpone timeouts. The fd
//! is nonblocking: [`Timer::expirations`] on a spurious readiness returns 0 instead of
//! blocking the net thread. A periodic timer that the loop services late does not lose
//! ticks: the kernel counts every expiration, and the count says how many were missed.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// A timerfd (`CLOCK_MONOTONIC`, nonblocking, close-on-exec); register it in an
/// [`super::EventLoop`] with readable interest. Starts disarmed.
///
/// # Example
/// ```
/// use std::time::Duration;
/// let timer = izyrt::net::Timer::new()?;
/// timer.arm_periodic(Duration::from_millis(500))?; // METADATA cadence
/// assert!(timer.is_armed()?);
/// timer.disarm()?;
/// assert!(!timer.is_armed()?);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Timer {
    fd: TimerFd,
}

impl Timer {
    /// Creates a disarmed timer.
    ///
    /// # Example
    /// ```
    /// let timer = izyrt::net::Timer::new()?;
    /// assert!(!timer.is_armed()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<Timer> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        Ok(Timer { fd })
    }

    /// Fires once, `after` from now (replacing any earlier arming). A zero `after` fires
    /// at once (the kernel would read zero as "disarm").
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let timer = izyrt::net::Timer::new()?;
    /// timer.arm_once(Duration::from_secs(5))?; // handshake timeout
    /// assert!(timer.is_armed()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn arm_once(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        self.set(Expiration::OneShot(TimeSpec::from_duration(after)))
    }

    /// Fires every `period`, the first time `period` from now (replacing any earlier
    /// arming). Fails with `InvalidInput` if `period` is zero.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// let timer = izyrt::net::Timer::new()?;
    /// assert!(timer.arm_periodic(Duration::ZERO).is_err());
    /// timer.arm_periodic(Duration::from_millis(500))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn arm_periodic(&self, period: Duration) -> io::Result<()> {
        if period.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "timer period must be nonzero",
            ));
        }
        self.set(Expiration::Interval(TimeSpec::from_duration(period)))
    }

    /// Stops the timer. Expirations already counted stay readable until
    /// [`Timer::expirations`] reads them.
    ///
    /// # Example
    /// See [`Timer`].
    pub fn disarm(&self) -> io::Result<()> {
        Ok(self.fd.unset()?)
    }

    /// Whether the timer will fire again.
    ///
    /// # Example
    /// See [`Timer`].
    pub fn is_armed(&self) -> io::Result<bool> {
        Ok(self.fd.get()?.is_some())
    }

    /// Reads and resets the number of expirations since the last read; 0 if none
    /// (`EAGAIN`). Call it when the loop reports the timer readable: until it is called,
    /// the timer stays readable. Allocation-free.
    ///
    /// # Example
    /// ```
    /// let timer = izyrt::net::Timer::new()?;
    /// assert_eq!(timer.expirations()?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn expirations(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        loop {
            match nix::unistd::read(&self.fd, &mut buf) {
                Ok(8) => return Ok(u64::from_ne_bytes(buf)),
                Ok(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("timerfd read returned {n} bytes, not 8"),
                    ));
                }
                Err(Errno::EAGAIN) => return Ok(0),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn set(&self, expiration: Expiration) -> io::Result<()> {
        Ok(self.fd.set(expiration, TimerSetTimeFlags::empty())?)
    }
}

impl AsFd for Timer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{EventLoop, Events, Interest};
    use std::time::Instant;

    /// Polls until the timer is readable or `limit` passes; returns whether it was.
    fn wait_readable(lp: &mut EventLoop, events: &mut Events, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if lp.poll(Some(left), events).unwrap() > 0 {
                return true;
            }
            if left.is_zero() {
                return false;
            }
        }
    }

    #[test]
    fn one_shot_fires_once() {
        let mut lp = EventLoop::new().unwrap();
        let timer = Timer::new().unwrap();
        lp.register(&timer, 9, Interest::READABLE).unwrap();
        let mut events = Events::with_capacity(4);
        let start = Instant::now();
        timer.arm_once(Duration::from_millis(20)).unwrap();
        assert!(wait_readable(&mut lp, &mut events, Duration::from_secs(2)));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(events.iter().next().unwrap().token(), 9);
        assert_eq!(timer.expirations().unwrap(), 1);
        assert!(!timer.is_armed().unwrap());
        // Fired once: not readable again.
        assert!(!wait_readable(
            &mut lp,
            &mut events,
            Duration::from_millis(60)
        ));
        assert_eq!(timer.expirations().unwrap(), 0);
    }

    #[test]
    fn zero_one_shot_fires_at_once() {
        let timer = Timer::new().unwrap();
        timer.arm_once(Duration::ZERO).unwrap();
        let mut lp = EventLoop::new().unwrap();
        lp.register(&timer, 1, Interest::READABLE).unwrap();
        let mut events = Events::with_capacity(1);
        assert!(wait_readable(&mut lp, &mut events, Duration::from_secs(2)));
        assert_eq!(timer.expirations().unwrap(), 1);
    }

    #[test]
    fn periodic_accumulates_expirations() {
        let timer = Timer::new().unwrap();
        timer.arm_periodic(Duration::from_millis(5)).unwrap();
        // Not serviced for a while: ticks pile up in the kernel's count.
        std::thread::sleep(Duration::from_millis(60));
        let n = timer.expirations().unwrap();
        assert!(n >= 2, "expected several expirations, got {n}");
        assert!(timer.is_armed().unwrap());
        let mut lp = EventLoop::new().unwrap();
        lp.register(&timer, 1, Interest::READABLE).unwrap();
        let mut events = Events::with_capacity(1);
        assert!(wait_readable(&mut lp, &mut events, Duration::from_secs(2)));
        assert!(timer.expirations().unwrap() >= 1);
    }

    #[test]
    fn disarm_prevents_firing_and_rearm_replaces() {
        let timer = Timer::new().unwrap();
        timer.arm_once(Duration::from_millis(10)).unwrap();
        timer.disarm().unwrap();
        assert!(!timer.is_armed().unwrap());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(timer.expirations().unwrap(), 0);

        timer.arm_periodic(Duration::from_millis(200)).unwrap();
        timer.arm_once(Duration::from_secs(60)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(timer.expirations().unwrap(), 0);
        assert!(timer.is_armed().unwrap());
    }
}
