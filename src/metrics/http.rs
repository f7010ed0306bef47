//! The metrics HTTP server (HTTP thread): its public face.
//!
//! One plain std thread (`izyrt-http`) answers three GET routes from the last published
//! [`SnapshotCell`] snapshot:
//!
//! | route | content type | body |
//! |-------|--------------|------|
//! | `/service/mixeradminclient?getMetrics` | `application/json` | the snapshot |
//! | `/metrics` | `text/plain; version=0.0.4` | [`render_prometheus`](super::render_prometheus) |
//! | `/` | `text/html; charset=utf-8` | a QoS dashboard polling getMetrics |
//!
//! The work is split in three: this file (binding, the thread, stopping it), the
//! connection handling ([`super::server`]: one epoll loop, per-connection deadlines, a
//! connection cap, keep-alive; read its design note) and the answers ([`super::routes`]:
//! a parsed request in, a response out). Only GET and HEAD are served (405 with `Allow`
//! otherwise), unparseable input gets 400, unknown paths 404, and every response carries
//! `Content-Length` and `Cache-Control: no-store`.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::server::Server;
use super::snapshot::SnapshotCell;
use crate::net::Waker;

/// The bounds applied to every connection; see `metrics::server`'s design note.
///
/// # Example
/// ```
/// let limits = izyrt::metrics::ServerLimits::default();
/// assert_eq!(limits.max_head, 8 * 1024);
/// assert_eq!(limits.read_timeout.as_secs(), 2);
/// assert_eq!(limits.max_connections, 512);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Deadline, from the accept, for the whole request head.
    pub read_timeout: Duration,
    /// Timeout of each write of the response.
    pub write_timeout: Duration,
    /// Largest request head accepted (bytes); larger gets 431.
    pub max_head: usize,
    /// How long to drain the client's leftover input after responding.
    pub linger: Duration,
    /// Most connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    /// 2 s to send the head, 2 s to take a response, 8 KiB of head, 1 s of linger, 512
    /// connections.
    fn default() -> ServerLimits {
        ServerLimits {
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            max_head: 8 * 1024,
            linger: Duration::from_secs(1),
            max_connections: 512,
        }
    }
}

/// A bound, not yet running, metrics server. [`MetricsServer::spawn`] starts its thread.
///
/// # Example
/// ```
/// use std::io::{Read, Write};
/// use std::sync::Arc;
/// use izyrt::metrics::{MetricsServer, SnapshotCell};
///
/// let cell = Arc::new(SnapshotCell::default());
/// let handle = MetricsServer::bind("127.0.0.1:0", cell).unwrap().spawn().unwrap();
/// let mut s = std::net::TcpStream::connect(handle.local_addr()).unwrap();
/// s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
/// let mut response = String::new();
/// s.read_to_string(&mut response).unwrap();
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// handle.stop();
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    cell: Arc<SnapshotCell>,
    limits: ServerLimits,
}

impl MetricsServer {
    /// Binds `addr` (the caller chooses; the intended default is `127.0.0.1`, since the
    /// server has no authentication) and serves snapshots from `cell` with the default
    /// [`ServerLimits`].
    ///
    /// # Errors
    /// The bind error (address in use, permission denied, unresolvable address).
    ///
    /// # Example
    /// See [`MetricsServer`].
    pub fn bind<A: ToSocketAddrs>(addr: A, cell: Arc<SnapshotCell>) -> io::Result<MetricsServer> {
        Ok(MetricsServer {
            listener: TcpListener::bind(addr)?,
            cell,
            limits: ServerLimits::default(),
        })
    }

    /// Replaces the per-connection limits.
    ///
    /// # Example
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use izyrt::metrics::{MetricsServer, ServerLimits, SnapshotCell};
    ///
    /// let limits = ServerLimits { read_timeout: Duration::from_millis(500), ..ServerLimits::default() };
    /// let server = MetricsServer::bind("127.0.0.1:0", Arc::new(SnapshotCell::default()))
    ///     .unwrap()
    ///     .with_limits(limits);
    /// assert!(server.local_addr().unwrap().port() != 0);
    /// ```
    pub fn with_limits(mut self, limits: ServerLimits) -> MetricsServer {
        self.limits = limits;
        self
    }

    /// The bound address (useful after binding port 0).
    ///
    /// # Errors
    /// As [`TcpListener::local_addr`].
    ///
    /// # Example
    /// See [`MetricsServer::with_limits`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts the `izyrt-http` thread.
    ///
    /// # Errors
    /// The listener's address cannot be read, or the thread cannot be created.
    ///
    /// # Example
    /// See [`MetricsServer`].
    pub fn spawn(self) -> io::Result<MetricsHandle> {
        let addr = self.listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(Waker::new()?);
        let server = Server::new(self.listener, self.cell, self.limits, Arc::clone(&waker))?;
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("izyrt-http".into())
            .spawn(move || server.run(&flag))?;
        Ok(MetricsHandle {
            addr,
            stop,
            waker,
            thread: Some(thread),
        })
    }
}

/// The running server. [`MetricsHandle::stop`] (or dropping it) ends the thread.
///
/// # Example
/// See [`MetricsServer`].
#[derive(Debug)]
pub struct MetricsHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsHandle {
    /// The address the server listens on.
    ///
    /// # Example
    /// See [`MetricsServer`].
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and joins its thread (at once: no connection holds the thread).
    /// Open connections are closed.
    ///
    /// # Example
    /// See [`MetricsServer`].
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        self.waker.wake();
        let _ = thread.join();
    }
}

impl Drop for MetricsHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
