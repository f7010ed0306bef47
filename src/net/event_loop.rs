//! [`EventLoop`]: one epoll instance, the only place the net thread sleeps (net thread).
//!
//! Design: any file descriptor (socket, eventfd, timerfd) is registered with a `u64`
//! token chosen by the caller; [`EventLoop::poll`] fills a preallocated [`Events`] buffer
//! with `(token, readiness)` pairs, so a poll in steady state makes one `epoll_wait`
//! syscall and no allocation. `EINTR` is retried with the time left, so a signal neither
//! surfaces as an error nor stretches the timeout.
//!
//! Level-triggered by default: an fd stays ready until its condition is consumed, so a
//! handler may stop early (to bound the work done per wakeup and keep the other
//! connections' latency low) and is called again on the next poll. Edge-triggered
//! registration is available ([`Interest::edge_triggered`]) but every handler must then
//! read or write until `EAGAIN`, or the fd silently never reports again: a bug class not
//! worth its saving of a few spurious wakeups. The price of level triggering is that
//! writable interest must be dropped ([`EventLoop::modify`]) while there is nothing to
//! send, or the loop spins.
//!
//! Timeouts are rounded up to whole milliseconds (epoll's resolution), so a short timeout
//! never degenerates into a busy poll; precise deadlines belong to a [`super::Timer`].

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

/// What readiness a registration asks for, and how it is reported.
///
/// Errors and hang-ups are always reported, whatever the interest.
///
/// # Example
/// ```
/// use izyrt::net::Interest;
/// let i = Interest::READABLE.add(Interest::WRITABLE);
/// assert!(i.is_readable() && i.is_writable() && !i.is_edge_triggered());
/// assert!(Interest::READABLE.edge_triggered().is_edge_triggered());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    readable: bool,
    writable: bool,
    edge: bool,
}

impl Interest {
    /// Readable (data, a pending connection, or the peer's half-close), level-triggered.
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
        edge: false,
    };
    /// Writable (room in the send buffer, or a nonblocking connect finished),
    /// level-triggered.
    pub const WRITABLE: Interest = Interest {
        readable: false,
        writable: true,
        edge: false,
    };
    /// Readable and writable, level-triggered.
    pub const READ_WRITE: Interest = Interest {
        readable: true,
        writable: true,
        edge: false,
    };

    /// Both interests combined (edge-triggered if either is).
    ///
    /// # Example
    /// ```
    /// use izyrt::net::Interest;
    /// assert_eq!(Interest::READABLE.add(Interest::WRITABLE), Interest::READ_WRITE);
    /// ```
    pub const fn add(self, other: Interest) -> Interest {
        Interest {
            readable: self.readable || other.readable,
            writable: self.writable || other.writable,
            edge: self.edge || other.edge,
        }
    }

    /// The same interest, edge-triggered (`EPOLLET`): reported once per change, so the
    /// handler must consume until `EAGAIN`. See the module docs for why this is not the
    /// default.
    ///
    /// # Example
    /// ```
    /// use izyrt::net::Interest;
    /// assert!(Interest::WRITABLE.edge_triggered().is_edge_triggered());
    /// ```
    pub const fn edge_triggered(self) -> Interest {
        Interest { edge: true, ..self }
    }

    /// Whether readability is asked for.
    ///
    /// # Example
    /// ```
    /// assert!(izyrt::net::Interest::READABLE.is_readable());
    /// ```
    pub const fn is_readable(self) -> bool {
        self.readable
    }

    /// Whether writability is asked for.
    ///
    /// # Example
    /// ```
    /// assert!(!izyrt::net::Interest::READABLE.is_writable());
    /// ```
    pub const fn is_writable(self) -> bool {
        self.writable
    }

    /// Whether the registration is edge-triggered.
    ///
    /// # Example
    /// ```
    /// assert!(!izyrt::net::Interest::READ_WRITE.is_edge_triggered());
    /// ```
    pub const fn is_edge_triggered(self) -> bool {
        self.edge
    }

    fn flags(self) -> EpollFlags {
        let mut f = EpollFlags::empty();
        if self.readable {
            // RDHUP: the peer's half-close wakes the reader even with no data left.
            f |= EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        }
        if self.writable {
            f |= EpollFlags::EPOLLOUT;
        }
        if self.edge {
            f |= EpollFlags::EPOLLET;
        }
        f
    }
}

/// One readiness report: the token given at registration and what the fd is ready for.
///
/// # Example
/// ```
/// use izyrt::net::{EventLoop, Events, Interest, Waker};
/// let mut lp = EventLoop::new()?;
/// let waker = Waker::new()?;
/// lp.register(&waker, 7, Interest::READABLE)?;
/// waker.wake();
/// let mut events = Events::with_capacity(8);
/// lp.poll(None, &mut events)?;
/// let ev = events.iter().next().unwrap();
/// assert_eq!(ev.token(), 7);
/// assert!(ev.is_readable() && !ev.is_writable() && !ev.is_error());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    token: u64,
    flags: EpollFlags,
}

impl Event {
    /// The token the fd was registered with.
    ///
    /// # Example
    /// See [`Event`].
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Data (or a connection, or end of stream) can be read without blocking.
    ///
    /// # Example
    /// See [`Event`].
    pub fn is_readable(&self) -> bool {
        self.flags
            .intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLPRI)
    }

    /// Data can be written without blocking (or a nonblocking connect completed: check
    /// `TcpStream::take_error`).
    ///
    /// # Example
    /// See [`Event`].
    pub fn is_writable(&self) -> bool {
        self.flags.contains(EpollFlags::EPOLLOUT)
    }

    /// The peer closed its side (`EPOLLHUP` or `EPOLLRDHUP`); reads will soon return 0.
    ///
    /// # Example
    /// See [`Event`] (`is_hangup` is false there).
    pub fn is_hangup(&self) -> bool {
        self.flags
            .intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLRDHUP)
    }

    /// An error is pending on the fd (`EPOLLERR`); for a socket, `take_error` says which.
    ///
    /// # Example
    /// See [`Event`].
    pub fn is_error(&self) -> bool {
        self.flags.contains(EpollFlags::EPOLLERR)
    }
}

/// A preallocated buffer of readiness reports, filled by [`EventLoop::poll`].
///
/// # Example
/// ```
/// let events = izyrt::net::Events::with_capacity(64);
/// assert_eq!(events.capacity(), 64);
/// assert!(events.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Events {
    buf: Vec<EpollEvent>,
    len: usize,
}

impl Events {
    /// A buffer for at most `capacity` reports per poll (at least 1). Fds ready beyond
    /// that are reported by the next poll (level-triggered) or round-robin (epoll).
    ///
    /// # Example
    /// ```
    /// assert_eq!(izyrt::net::Events::with_capacity(0).capacity(), 1);
    /// ```
    pub fn with_capacity(capacity: usize) -> Events {
        let capacity = capacity.clamp(1, i32::MAX as usize);
        Events {
            buf: vec![EpollEvent::empty(); capacity],
            len: 0,
        }
    }

    /// How many reports one poll can return.
    ///
    /// # Example
    /// ```
    /// assert_eq!(izyrt::net::Events::with_capacity(3).capacity(), 3);
    /// ```
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// How many reports the last poll returned.
    ///
    /// # Example
    /// ```
    /// assert_eq!(izyrt::net::Events::with_capacity(3).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the last poll returned no report (timed out).
    ///
    /// # Example
    /// ```
    /// assert!(izyrt::net::Events::with_capacity(3).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The reports of the last poll. Does not allocate.
    ///
    /// # Example
    /// See [`Event`].
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.buf[..self.len].iter().map(|e| Event {
            token: e.data(),
            flags: e.events(),
        })
    }
}

/// One epoll instance: register fds with tokens, then [`poll`](EventLoop::poll).
///
/// Registration follows the open file: closing the last fd of a registered socket removes
/// it from the interest list, but a `dup`ed fd keeps it alive, so deregister before
/// dropping.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use izyrt::net::{EventLoop, Events, Interest, Timer};
/// let mut lp = EventLoop::new()?;
/// let timer = Timer::new()?;
/// lp.register(&timer, 1, Interest::READABLE)?;
/// timer.arm_once(Duration::from_millis(1))?;
/// let mut events = Events::with_capacity(8);
/// while lp.poll(Some(Duration::from_secs(2)), &mut events)? == 0 {}
/// assert_eq!(events.iter().next().unwrap().token(), 1);
/// assert_eq!(timer.expirations()?, 1);
/// lp.deregister(&timer)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct EventLoop {
    epoll: Epoll,
}

impl EventLoop {
    /// Creates the epoll instance (close-on-exec).
    ///
    /// # Example
    /// ```
    /// let _lp = izyrt::net::EventLoop::new()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<EventLoop> {
        Ok(EventLoop {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
        })
    }

    /// Adds `fd` to the loop; its readiness is reported with `token`. Fails with
    /// `EEXIST` if it is already registered.
    ///
    /// # Example
    /// See [`EventLoop`].
    pub fn register(&self, fd: impl AsFd, token: u64, interest: Interest) -> io::Result<()> {
        Ok(self
            .epoll
            .add(fd, EpollEvent::new(interest.flags(), token))?)
    }

    /// Changes the token or interest of a registered `fd` (e.g. adds writable interest
    /// while output is queued, drops it when the queue is empty).
    ///
    /// # Example
    /// ```
    /// use izyrt::net::{EventLoop, Interest, Waker};
    /// let lp = EventLoop::new()?;
    /// let waker = Waker::new()?;
    /// lp.register(&waker, 1, Interest::READABLE)?;
    /// lp.modify(&waker, 2, Interest::READ_WRITE)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn modify(&self, fd: impl AsFd, token: u64, interest: Interest) -> io::Result<()> {
        let mut ev = EpollEvent::new(interest.flags(), token);
        Ok(self.epoll.modify(fd, &mut ev)?)
    }

    /// Removes `fd` from the loop; it is reported no more. Fails with `ENOENT` if it was
    /// not registered.
    ///
    /// # Example
    /// See [`EventLoop`].
    pub fn deregister(&self, fd: impl AsFd) -> io::Result<()> {
        Ok(self.epoll.delete(fd)?)
    }

    /// Waits until at least one registered fd is ready or `timeout` passes (`None`: no
    /// timeout; `Some(Duration::ZERO)`: don't wait), fills `events` and returns how many
    /// reports it holds (0 on timeout). `EINTR` is retried with the remaining time.
    /// Allocation-free.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use izyrt::net::{EventLoop, Events};
    /// let mut lp = EventLoop::new()?;
    /// let mut events = Events::with_capacity(8);
    /// assert_eq!(lp.poll(Some(Duration::ZERO), &mut events)?, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn poll(&mut self, timeout: Option<Duration>, events: &mut Events) -> io::Result<usize> {
        events.len = 0;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut left = timeout;
        loop {
            match self.epoll.wait(&mut events.buf, epoll_timeout(left)) {
                Ok(n) => {
                    events.len = n;
                    return Ok(n);
                }
                Err(Errno::EINTR) => {
                    if let Some(d) = deadline {
                        left = Some(d.saturating_duration_since(Instant::now()));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// `timeout` in epoll's whole milliseconds, rounded up so a nonzero timeout never becomes
/// a busy poll, and clamped to the largest finite timeout.
fn epoll_timeout(timeout: Option<Duration>) -> EpollTimeout {
    match timeout {
        None => EpollTimeout::NONE,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as u32;
            EpollTimeout::try_from(ms).unwrap_or(EpollTimeout::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    const WAIT: Option<Duration> = Some(Duration::from_secs(2));

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(epoll_timeout(None), EpollTimeout::NONE);
        assert_eq!(epoll_timeout(Some(Duration::ZERO)), EpollTimeout::ZERO);
        let one = EpollTimeout::try_from(1u32).unwrap();
        assert_eq!(epoll_timeout(Some(Duration::from_nanos(1))), one);
        assert_eq!(epoll_timeout(Some(Duration::from_millis(1))), one);
        let two = EpollTimeout::try_from(2u32).unwrap();
        assert_eq!(epoll_timeout(Some(Duration::from_micros(1001))), two);
        assert_eq!(epoll_timeout(Some(Duration::MAX)), EpollTimeout::MAX);
    }

    #[test]
    fn reports_readable_writable_modify_and_deregister() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut lp = EventLoop::new().unwrap();
        let mut events = Events::with_capacity(4);
        lp.register(&a, 10, Interest::READABLE).unwrap();
        assert_eq!(lp.poll(Some(Duration::ZERO), &mut events).unwrap(), 0);

        b.write_all(b"x").unwrap();
        assert_eq!(lp.poll(WAIT, &mut events).unwrap(), 1);
        let ev = events.iter().next().unwrap();
        assert_eq!(
            (ev.token(), ev.is_readable(), ev.is_writable()),
            (10, true, false)
        );

        // Level-triggered: still ready until consumed.
        assert_eq!(lp.poll(Some(Duration::ZERO), &mut events).unwrap(), 1);
        let mut buf = [0u8; 4];
        assert_eq!(a.read(&mut buf).unwrap(), 1);
        assert_eq!(lp.poll(Some(Duration::ZERO), &mut events).unwrap(), 0);

        lp.modify(&a, 11, Interest::WRITABLE).unwrap();
        assert_eq!(lp.poll(WAIT, &mut events).unwrap(), 1);
        let ev = events.iter().next().unwrap();
        assert_eq!((ev.token(), ev.is_writable()), (11, true));

        lp.deregister(&a).unwrap();
        b.write_all(b"y").unwrap();
        assert_eq!(
            lp.poll(Some(Duration::from_millis(20)), &mut events)
                .unwrap(),
            0
        );
        assert!(events.is_empty());
        assert_eq!(
            lp.deregister(&a).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
    }

    #[test]
    fn double_register_is_an_error() {
        let (a, _b) = UnixStream::pair().unwrap();
        let lp = EventLoop::new().unwrap();
        lp.register(&a, 1, Interest::READABLE).unwrap();
        let err = lp.register(&a, 2, Interest::READABLE).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    }

    #[test]
    fn hangup_is_reported() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut lp = EventLoop::new().unwrap();
        lp.register(&a, 3, Interest::READABLE).unwrap();
        let mut events = events_of(4);
        assert_eq!(lp.poll(Some(Duration::ZERO), &mut events).unwrap(), 0);
        drop(b);
        assert_eq!(lp.poll(WAIT, &mut events).unwrap(), 1);
        assert!(events.iter().next().unwrap().is_hangup());
    }

    #[test]
    fn edge_triggered_reports_once_per_change() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut lp = EventLoop::new().unwrap();
        let mut events = events_of(4);
        lp.register(&a, 4, Interest::READABLE.edge_triggered())
            .unwrap();
        b.write_all(b"x").unwrap();
        assert_eq!(lp.poll(WAIT, &mut events).unwrap(), 1);
        assert_eq!(lp.poll(Some(Duration::ZERO), &mut events).unwrap(), 0);
        b.write_all(b"y").unwrap();
        assert_eq!(lp.poll(WAIT, &mut events).unwrap(), 1);
    }

    #[test]
    fn more_ready_fds_than_capacity_are_reported_by_the_next_poll() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (c, mut d) = UnixStream::pair().unwrap();
        let mut lp = EventLoop::new().unwrap();
        lp.register(&a, 1, Interest::READABLE).unwrap();
        lp.register(&c, 2, Interest::READABLE).unwrap();
        b.write_all(b"x").unwrap();
        d.write_all(b"x").unwrap();
        let mut events = events_of(1);
        let mut seen = [false; 3];
        for _ in 0..2 {
            assert_eq!(lp.poll(WAIT, &mut events).unwrap(), 1);
            seen[events.iter().next().unwrap().token() as usize] = true;
        }
        assert!(seen[1] && seen[2], "{seen:?}");
    }

    fn events_of(n: usize) -> Events {
        Events::with_capacity(n)
    }
}
