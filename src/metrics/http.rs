//! The metrics HTTP server (HTTP thread).
//!
//! Design: a deliberately small, synchronous server on one plain std thread
//! (`izyrt-http`). It answers three GET routes from the last published
//! [`SnapshotCell`] snapshot:
//!
//! | route | content type | body |
//! |-------|--------------|------|
//! | `/service/mixeradminclient?getMetrics` | `application/json` | the snapshot |
//! | `/metrics` | `text/plain; version=0.0.4` | [`render_prometheus`] |
//! | `/` | `text/html; charset=utf-8` | a QoS dashboard polling getMetrics |
//!
//! Why synchronous: the traffic is a dashboard and a scraper polling about once a second,
//! on loopback by default. A blocking accept and one connection at a time need no async
//! runtime, no extra threads and no shared state beyond the snapshot cell, and the thread
//! never touches RT data directly. The price is that a connection holds the thread, so
//! every connection is bounded ([`ServerLimits`]):
//!
//! - The whole request head must arrive within `read_timeout` of the accept (a deadline,
//!   not a per-read timeout, so a client trickling one byte a second cannot keep the
//!   thread longer). A client that sent nothing is dropped silently; a partial head gets
//!   408.
//! - The head is at most `max_head` bytes (8 KiB, like common proxies) or the answer is
//!   431; it is read into one preallocated buffer and parsed with `httparse` after each
//!   read until it is complete.
//! - Every write is bounded by `write_timeout`.
//! - After the response the server shuts its side down and drains what the client still
//!   sends for at most `linger` (and 64 KiB), so closing with unread input does not turn
//!   into a TCP reset that destroys the response before the client reads it (the 431
//!   case).
//!
//! So a single connection holds the thread for at most about
//! `read_timeout + write_timeout + linger` (5 s by default); the next client waits in the
//! listen backlog meanwhile. Only GET and HEAD are served (405 with `Allow` otherwise),
//! unparseable input gets 400, unknown paths 404, and every response carries
//! `Content-Length`, `Cache-Control: no-store` and `Connection: close`. Handling is also
//! wrapped in `catch_unwind`, so even a bug cannot end the thread.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::dashboard::DASHBOARD_HTML;
use super::prometheus::render_prometheus;
use super::snapshot::SnapshotCell;

/// The bounds applied to every connection; see the module documentation.
///
/// # Example
/// ```
/// let limits = izyrt::metrics::ServerLimits::default();
/// assert_eq!(limits.max_head, 8 * 1024);
/// assert_eq!(limits.read_timeout.as_secs(), 2);
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
}

impl Default for ServerLimits {
    /// 2 s to send the head, 2 s per write, 8 KiB of head, 1 s of linger.
    fn default() -> ServerLimits {
        ServerLimits {
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            max_head: 8 * 1024,
            linger: Duration::from_secs(1),
        }
    }
}

/// Most headers accepted in one request (more gets 431).
const MAX_HEADERS: usize = 32;
/// Most bytes drained after a response.
const MAX_DRAIN: usize = 64 * 1024;
/// Pause after a failed accept (e.g. out of file descriptors), so the loop cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

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
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("izyrt-http".into())
            .spawn(move || self.run(&flag))?;
        Ok(MetricsHandle {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    fn run(self, stop: &AtomicBool) {
        loop {
            let accepted = self.listener.accept();
            if stop.load(Ordering::Acquire) {
                return;
            }
            match accepted {
                Ok((stream, _)) => {
                    // A panic here would be a bug; it must not take the thread down.
                    let _ = catch_unwind(AssertUnwindSafe(|| {
                        let _ = serve(stream, &self.cell, &self.limits);
                    }));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => thread::sleep(ACCEPT_BACKOFF),
            }
        }
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

    /// Stops the server and joins its thread. Returns as soon as the thread sees the
    /// request: at once when idle, or after the connection it is serving ends (bounded by
    /// [`ServerLimits`]).
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
        // Wake the blocking accept with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            let _ = thread.join();
        }
        // If we could not connect, the thread stays blocked in accept; leave it detached
        // rather than hang the caller. It exits on the next connection.
    }
}

impl Drop for MetricsHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One response, before serialisation.
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    extra_header: Option<&'static str>,
    body: Vec<u8>,
}

impl Response {
    fn ok(content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status: 200,
            reason: "OK",
            content_type,
            extra_header: None,
            body,
        }
    }

    fn error(status: u16, reason: &'static str) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            extra_header: None,
            body: format!("{status} {reason}\n").into_bytes(),
        }
    }
}

/// Reads one request head within the deadline, answers it and closes.
fn serve(mut stream: TcpStream, cell: &SnapshotCell, limits: &ServerLimits) -> io::Result<()> {
    let deadline = Instant::now() + limits.read_timeout;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(limits.write_timeout))?;
    let mut buf = vec![0u8; limits.max_head];
    let mut filled = 0;
    let (response, head_only) = loop {
        if filled == buf.len() {
            break (
                Response::error(431, "Request Header Fields Too Large"),
                false,
            );
        }
        let Some(remaining) = deadline.checked_duration_since(Instant::now()) else {
            break timed_out(filled)?;
        };
        if remaining.is_zero() {
            break timed_out(filled)?;
        }
        stream.set_read_timeout(Some(remaining))?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Ok(()), // client gone
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break timed_out(filled)?;
            }
            Err(e) => return Err(e),
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(_)) => {
                let method = req.method.unwrap_or("");
                let path = req.path.unwrap_or("");
                break (route(method, path, cell), method == "HEAD");
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                break (
                    Response::error(431, "Request Header Fields Too Large"),
                    false,
                );
            }
            Err(_) => break (Response::error(400, "Bad Request"), false),
        }
    };
    write_response(&mut stream, &response, head_only)?;
    linger(&mut stream, limits.linger)
}

/// A read deadline passed: 408 if the client started a request, else close silently.
fn timed_out(filled: usize) -> io::Result<(Response, bool)> {
    if filled == 0 {
        Err(io::Error::new(ErrorKind::TimedOut, "client sent nothing"))
    } else {
        Ok((Response::error(408, "Request Timeout"), false))
    }
}

fn route(method: &str, target: &str, cell: &SnapshotCell) -> Response {
    if method != "GET" && method != "HEAD" {
        let mut r = Response::error(405, "Method Not Allowed");
        r.extra_header = Some("Allow: GET, HEAD\r\n");
        return r;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/service/mixeradminclient" if has_param(query, "getMetrics") => {
            let snapshot = cell.latest();
            match serde_json::to_vec(&*snapshot) {
                Ok(body) => Response::ok("application/json", body),
                Err(_) => Response::error(500, "Internal Server Error"),
            }
        }
        "/metrics" => Response::ok(
            "text/plain; version=0.0.4; charset=utf-8",
            render_prometheus(&cell.latest()).into_bytes(),
        ),
        "/" => Response::ok(
            "text/html; charset=utf-8",
            DASHBOARD_HTML.as_bytes().to_vec(),
        ),
        _ => Response::error(404, "Not Found"),
    }
}

/// Whether the query string has parameter `name` (`name`, `name=…`, among `&`s).
fn has_param(query: &str, name: &str) -> bool {
    query
        .split('&')
        .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == name)
}

fn write_response(stream: &mut TcpStream, r: &Response, head_only: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n{}\r\n",
        r.status,
        r.reason,
        r.content_type,
        r.body.len(),
        r.extra_header.unwrap_or(""),
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(&r.body);
    }
    stream.write_all(&out)?;
    stream.flush()
}

/// Half-closes and discards the client's leftover input (bounded by `linger` and
/// [`MAX_DRAIN`]) so the close does not reset the connection under the response.
fn linger(stream: &mut TcpStream, linger: Duration) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + linger;
    let mut scratch = [0u8; 4096];
    let mut drained = 0;
    while drained < MAX_DRAIN {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(remaining))?;
        match stream.read(&mut scratch) {
            Ok(0) => break,
            Ok(n) => drained += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameter_matching() {
        assert!(has_param("getMetrics", "getMetrics"));
        assert!(has_param("a=1&getMetrics=", "getMetrics"));
        assert!(!has_param("getMetricsX", "getMetrics"));
        assert!(!has_param("", "getMetrics"));
    }

    #[test]
    fn routes_and_methods() {
        let cell = SnapshotCell::default();
        assert_eq!(
            route("GET", "/service/mixeradminclient?getMetrics", &cell).status,
            200
        );
        assert_eq!(route("GET", "/service/mixeradminclient", &cell).status, 404);
        assert_eq!(route("HEAD", "/metrics?x", &cell).status, 200);
        assert_eq!(
            route("GET", "/", &cell).content_type,
            "text/html; charset=utf-8"
        );
        assert_eq!(route("GET", "/nope", &cell).status, 404);
        let r = route("DELETE", "/", &cell);
        assert_eq!(
            (r.status, r.extra_header),
            (405, Some("Allow: GET, HEAD\r\n"))
        );
    }
}
