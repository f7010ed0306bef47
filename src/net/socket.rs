//! TCP socket setup for streamproto1 connections (net thread).
//!
//! Design: every streamproto1 socket is nonblocking (it lives in the [`super::EventLoop`])
//! and tuned for latency rather than throughput:
//! - `TCP_NODELAY`: a small audio frame goes out now, not after Nagle waits for an ACK.
//! - `IP_TOS` = EF (DSCP 46, [`TOS_EF`]; `IPV6_TCLASS` on IPv6): networks that honour
//!   DSCP queue it ahead of bulk traffic.
//! - Bounded `SO_SNDBUF`/`SO_RCVBUF`: every byte queued in the kernel is latency, so the
//!   buffers are capped ([`SocketTuning`]) and the sender drops audio when the socket is
//!   full instead of queueing seconds of it.
//!
//! Linux doubles a requested buffer size (to leave room for its bookkeeping) and clamps it
//! to `net.core.{w,r}mem_max`, so [`tune`] reads the values back and returns what the
//! kernel actually set ([`AppliedTuning`]) for the metrics.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// The `IP_TOS` / `IPV6_TCLASS` byte for DSCP EF (expedited forwarding, 46 << 2).
pub const TOS_EF: u32 = 0xB8;

/// The DSCP bits of a TOS byte (the low 2 bits are ECN, which the kernel's TCP sets on
/// its own when ECN is negotiated).
const DSCP_MASK: u32 = 0xFC;

/// Requested kernel buffer sizes for one connection, in bytes (before the kernel doubles
/// them).
///
/// # Example
/// ```
/// let t = izyrt::net::SocketTuning::default();
/// assert_eq!((t.send_buffer, t.recv_buffer), (64 * 1024, 64 * 1024));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketTuning {
    /// Requested `SO_SNDBUF`.
    pub send_buffer: usize,
    /// Requested `SO_RCVBUF`.
    pub recv_buffer: usize,
}

impl Default for SocketTuning {
    /// 64 KiB each way: about 170 ms of 48 kHz stereo f32, enough to absorb a scheduling
    /// hiccup, small enough that a stalled link shows up as drops, not as growing delay.
    fn default() -> SocketTuning {
        SocketTuning {
            send_buffer: 64 * 1024,
            recv_buffer: 64 * 1024,
        }
    }
}

/// What the kernel actually set, read back after [`tune`].
///
/// # Example
/// See [`tune`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedTuning {
    /// `SO_SNDBUF` as the kernel reports it (usually twice the request).
    pub send_buffer: usize,
    /// `SO_RCVBUF` as the kernel reports it (usually twice the request).
    pub recv_buffer: usize,
    /// `TCP_NODELAY`.
    pub nodelay: bool,
    /// `IP_TOS` (IPv4) or `IPV6_TCLASS` (IPv6), ECN bits included.
    pub tos: u32,
}

impl AppliedTuning {
    /// Whether the DSCP bits of [`AppliedTuning::tos`] are EF (ignoring the ECN bits).
    ///
    /// # Example
    /// See [`tune`].
    pub fn is_ef(&self) -> bool {
        self.tos & DSCP_MASK == TOS_EF
    }
}

/// The OS's reason for `e` as a person reads it: `connection refused`, without the
/// `(os error 111)` tail.
///
/// # Example
/// ```
/// let e = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
/// assert_eq!(izyrt::net::socket::os_reason(&e), "connection refused");
/// ```
pub fn os_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text
        .find(" (os error ")
        .map_or(text.as_str(), |i| &text[..i]);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Starts a nonblocking TCP connect to `addr` and returns the stream at once; the connect
/// completes in the background (`EINPROGRESS` is not an error). Register the stream with
/// writable interest: when it is reported writable, `TcpStream::take_error` says whether
/// the connect succeeded. Then [`tune`] it.
///
/// # Example
/// ```
/// use izyrt::net::socket::{connect_nonblocking, listen};
/// let listener = listen("127.0.0.1:0".parse().unwrap(), 16)?;
/// let stream = connect_nonblocking(listener.local_addr()?)?;
/// # drop(stream);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

/// A nonblocking TCP listener on `addr` with `SO_REUSEADDR` (a restarted hub can bind its
/// port again while old connections sit in `TIME_WAIT`). Port 0 picks a free port.
///
/// # Example
/// ```
/// let listener = izyrt::net::socket::listen("127.0.0.1:0".parse().unwrap(), 128)?;
/// assert_ne!(listener.local_addr()?.port(), 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn listen(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Accepts one pending connection and makes it nonblocking; `Ok(None)` when none is
/// pending (`EAGAIN`). Call it until `None` when the listener is reported readable.
///
/// # Example
/// ```
/// use izyrt::net::socket::{accept_nonblocking, listen};
/// let listener = listen("127.0.0.1:0".parse().unwrap(), 16)?;
/// assert!(accept_nonblocking(&listener)?.is_none());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn accept_nonblocking(listener: &TcpListener) -> io::Result<Option<(TcpStream, SocketAddr)>> {
    match listener.accept() {
        Ok((stream, peer)) => {
            stream.set_nonblocking(true)?;
            Ok(Some((stream, peer)))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets `TCP_NODELAY`, `IP_TOS` = EF (`IPV6_TCLASS` on an IPv6 socket) and the bounded
/// buffer sizes on a TCP socket (a `TcpStream`, or a listener, whose accepted sockets
/// inherit the buffer sizes), and returns what the kernel actually set.
///
/// # Example
/// ```
/// use izyrt::net::{SocketTuning, socket::{listen, tune}};
/// let listener = listen("127.0.0.1:0".parse().unwrap(), 16)?;
/// let applied = tune(&listener, &SocketTuning { send_buffer: 16384, recv_buffer: 16384 })?;
/// assert!(applied.nodelay && applied.is_ef());
/// assert!(applied.send_buffer >= 16384);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn tune(socket: &impl AsFd, tuning: &SocketTuning) -> io::Result<AppliedTuning> {
    let s = SockRef::from(socket);
    let v6 = s.domain()? == Domain::IPV6;
    s.set_tcp_nodelay(true)?;
    if v6 {
        s.set_tclass_v6(TOS_EF)?;
    } else {
        s.set_tos_v4(TOS_EF)?;
    }
    s.set_send_buffer_size(tuning.send_buffer)?;
    s.set_recv_buffer_size(tuning.recv_buffer)?;
    Ok(AppliedTuning {
        send_buffer: s.send_buffer_size()?,
        recv_buffer: s.recv_buffer_size()?,
        nodelay: s.tcp_nodelay()?,
        tos: if v6 { s.tclass_v6()? } else { s.tos_v4()? },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tune_v4_reads_back_what_the_kernel_set() {
        let listener = listen("127.0.0.1:0".parse().unwrap(), 4).unwrap();
        let want = SocketTuning {
            send_buffer: 32 * 1024,
            recv_buffer: 48 * 1024,
        };
        let got = tune(&listener, &want).unwrap();
        assert!(got.nodelay);
        assert!(got.is_ef(), "tos {:#x}", got.tos);
        // Linux doubles; whatever it does, it is bounded near the request.
        assert!((want.send_buffer..=4 * want.send_buffer).contains(&got.send_buffer));
        assert!((want.recv_buffer..=4 * want.recv_buffer).contains(&got.recv_buffer));
        assert!(SockRef::from(&listener).reuse_address().unwrap());
        assert!(SockRef::from(&listener).nonblocking().unwrap());
    }

    #[test]
    fn tune_v6_sets_traffic_class() {
        let listener = match listen("[::1]:0".parse().unwrap(), 4) {
            Ok(l) => l,
            // No IPv6 loopback in this sandbox: nothing to test.
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => return,
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => return,
            Err(e) => panic!("{e}"),
        };
        let got = tune(&listener, &SocketTuning::default()).unwrap();
        assert!(got.nodelay && got.is_ef(), "{got:?}");
        assert_eq!(
            SockRef::from(&listener).tclass_v6().unwrap() & DSCP_MASK,
            TOS_EF
        );
    }

    #[test]
    fn connect_to_a_closed_port_reports_the_error_later() {
        // Bind then drop to get a port nobody listens on.
        let port = listen("127.0.0.1:0".parse().unwrap(), 1)
            .unwrap()
            .local_addr()
            .unwrap();
        let stream = match connect_nonblocking(port) {
            Ok(s) => s,
            // The kernel may also refuse a loopback connect at once.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return,
            Err(e) => panic!("{e}"),
        };
        assert!(SockRef::from(&stream).nonblocking().unwrap());
        let lp = crate::net::EventLoop::new().unwrap();
        lp.register(&stream, 1, crate::net::Interest::WRITABLE)
            .unwrap();
        let mut lp = lp;
        let mut events = crate::net::Events::with_capacity(1);
        assert_eq!(
            lp.poll(Some(std::time::Duration::from_secs(5)), &mut events)
                .unwrap(),
            1
        );
        let err = stream.take_error().unwrap().expect("connect should fail");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn accept_nonblocking_returns_none_then_the_connection() {
        let listener = listen("127.0.0.1:0".parse().unwrap(), 4).unwrap();
        assert!(accept_nonblocking(&listener).unwrap().is_none());
        let _client = connect_nonblocking(listener.local_addr().unwrap()).unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let (stream, _) = loop {
            if let Some(x) = accept_nonblocking(&listener).unwrap() {
                break x;
            }
            assert!(std::time::Instant::now() < end, "no connection accepted");
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert!(SockRef::from(&stream).nonblocking().unwrap());
    }
}
