//! [`Waker`]: the eventfd other threads (RT threads included) signal to wake the net
//! thread's [`super::EventLoop`].
//!
//! Design: an eventfd is a kernel counter behind one fd. [`Waker::wake`] adds 1 with a
//! single 8-byte `write` syscall: no allocation, no lock, no blocking (the fd is
//! nonblocking), so an RT thread may call it once per period after queueing audio. Wakes
//! coalesce: however many arrive before the net thread runs, the fd is simply readable,
//! and one [`Waker::drain`] reads and resets the counter. The net thread then drains the
//! queues, whose state (not the wake count) says what work there is.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};

/// An eventfd (nonblocking, close-on-exec) to register in an [`super::EventLoop`] with
/// readable interest. `Send + Sync`; share it through an `Arc`.
///
/// # Example
/// ```
/// use std::{sync::Arc, thread, time::Duration};
/// use izyrt::net::{EventLoop, Events, Interest, Waker};
/// let mut lp = EventLoop::new()?;
/// let waker = Arc::new(Waker::new()?);
/// lp.register(&*waker, 0, Interest::READABLE)?;
/// let w = Arc::clone(&waker);
/// let t = thread::spawn(move || w.wake());
/// let mut events = Events::with_capacity(8);
/// assert_eq!(lp.poll(Some(Duration::from_secs(5)), &mut events)?, 1);
/// assert_eq!(waker.drain()?, 1);
/// t.join().unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Waker {
    fd: EventFd,
}

impl Waker {
    /// Creates the eventfd (`EFD_NONBLOCK | EFD_CLOEXEC`, counter 0).
    ///
    /// # Example
    /// ```
    /// let waker = izyrt::net::Waker::new()?;
    /// assert_eq!(waker.drain()?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<Waker> {
        let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(Waker { fd })
    }

    /// Makes the eventfd readable: one `write` syscall, no allocation, no lock, never
    /// blocks. RT-safe.
    ///
    /// It cannot fail in a way the caller could act on: `EAGAIN` means the counter is
    /// saturated (about 2⁶⁴ wakes pending), so the fd is readable anyway; `EBADF` and
    /// `EINVAL` cannot happen on the owned eventfd with an 8-byte write.
    ///
    /// # Example
    /// ```
    /// let waker = izyrt::net::Waker::new()?;
    /// waker.wake();
    /// waker.wake();
    /// assert_eq!(waker.drain()?, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wake(&self) {
        // An interrupted write wrote nothing: retry, or the wake would be lost.
        while let Err(Errno::EINTR) = self.fd.write(1) {}
    }

    /// Net-thread side: reads and resets the counter, returning how many wakes it held
    /// (0 if none: `EAGAIN`). After it, the fd is no longer readable until the next wake.
    ///
    /// # Example
    /// ```
    /// let waker = izyrt::net::Waker::new()?;
    /// waker.wake();
    /// assert_eq!(waker.drain()?, 1);
    /// assert_eq!(waker.drain()?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn drain(&self) -> io::Result<u64> {
        loop {
            match self.fd.read() {
                Ok(n) => return Ok(n),
                Err(Errno::EAGAIN) => return Ok(0),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{EventLoop, Events, Interest};
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    const _: () = {
        const fn send_sync<T: Send + Sync>() {}
        send_sync::<Waker>();
    };

    #[test]
    fn wake_from_another_thread_wakes_poll() {
        let mut lp = EventLoop::new().unwrap();
        let waker = Arc::new(Waker::new().unwrap());
        lp.register(&*waker, 42, Interest::READABLE).unwrap();
        let mut events = Events::with_capacity(4);
        assert_eq!(lp.poll(Some(Duration::ZERO), &mut events).unwrap(), 0);

        let w = Arc::clone(&waker);
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            for _ in 0..1000 {
                w.wake();
            }
        });
        // A lone, generous timeout: the wake must end the poll, not the timeout.
        assert_eq!(
            lp.poll(Some(Duration::from_secs(10)), &mut events).unwrap(),
            1
        );
        assert_eq!(events.iter().next().unwrap().token(), 42);
        t.join().unwrap();

        // All wakes coalesce into one readiness and one drain.
        assert_eq!(lp.poll(Some(Duration::ZERO), &mut events).unwrap(), 1);
        assert_eq!(waker.drain().unwrap(), 1000);
        assert_eq!(lp.poll(Some(Duration::ZERO), &mut events).unwrap(), 0);
        assert_eq!(waker.drain().unwrap(), 0);
    }

    #[test]
    fn drained_waker_wakes_again() {
        let mut lp = EventLoop::new().unwrap();
        let waker = Waker::new().unwrap();
        lp.register(&waker, 1, Interest::READABLE).unwrap();
        let mut events = Events::with_capacity(4);
        for _ in 0..3 {
            waker.wake();
            assert_eq!(
                lp.poll(Some(Duration::from_secs(2)), &mut events).unwrap(),
                1
            );
            assert_eq!(waker.drain().unwrap(), 1);
            assert_eq!(lp.poll(Some(Duration::ZERO), &mut events).unwrap(), 0);
        }
    }
}
