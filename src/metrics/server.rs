//! The metrics server's connection handling: one epoll loop over every HTTP connection
//! (HTTP thread).
//!
//! Design: the first server served one connection at a time with a deadline of seconds,
//! so 64 idle sockets (connect, send nothing) kept getMetrics from answering for minutes.
//! Now nothing a client does can hold the thread: every socket is nonblocking and waits in
//! the same [`EventLoop`] as the net threads use, each connection is a small state machine
//! (*head* → *write* → *head* again for keep-alive, or *linger* → closed) with its own
//! deadline, and a 100 ms timerfd sweeps the deadlines. An idle connection costs a file
//! descriptor and a buffer, never time.
//!
//! Bounds ([`ServerLimits`]): the head must arrive within `read_timeout` of the accept (or
//! of the previous response on a kept-alive connection; a deadline, not a per-read
//! timeout: trickling a byte a second does not extend it) and within `max_head` bytes
//! (else 408 or 431); a response must be taken within `write_timeout`; after a response
//! that closes, the server shuts its side down and drains for at most `linger` (and
//! 64 KiB) so unread input does not turn the close into a reset that destroys the
//! response. At most `max_connections` are open at once: one more is answered 503 and
//! closed at once, without reading.
//!
//! Keep-alive: a connection stays open only when the request asks for it
//! (`Connection: keep-alive`), has no body, and fewer than [`MAX_REQUESTS_PER_CONN`] were
//! served on it; the response then says `Connection: keep-alive`, else `Connection:
//! close` (HTTP/1.1 lets a server close after any response; closing by default keeps
//! every existing read-to-end client working). Pipelined requests are answered in order.
//!
//! Running out of file descriptors: a spare descriptor is kept open; when accept fails
//! with `EMFILE`, it is closed to accept and drop the waiting connection (else the
//! level-triggered listener would spin the loop), then reopened.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::http::ServerLimits;
use super::routes::{Request, Response, route};
use super::snapshot::SnapshotCell;
use crate::net::{EventLoop, Events, Interest, Timer, Waker};

/// Requests served on one kept-alive connection before it is closed.
pub const MAX_REQUESTS_PER_CONN: u32 = 100;
/// Most headers accepted in one request (more gets 431).
const MAX_HEADERS: usize = 32;
/// Most bytes drained after a response.
const MAX_DRAIN: usize = 64 * 1024;
/// The answer beyond `max_connections`.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 24\r\nCache-Control: no-store\r\nConnection: close\r\nRetry-After: 1\r\n\r\n\
503 Service Unavailable\n";

const LISTENER: u64 = 0;
const STOP: u64 = 1;
const TICK: u64 = 2;
const FIRST_CONN: u64 = 16;

enum State {
    /// Reading a request head.
    Head,
    /// Writing `out[written..]`; then keep reading (`keep`) or linger.
    Write { keep: bool },
    /// Response sent and our side shut: discard input until EOF or the deadline.
    Linger { drained: usize },
}

struct HttpConn {
    sock: TcpStream,
    generation: u32,
    buf: Vec<u8>,
    filled: usize,
    out: Vec<u8>,
    written: usize,
    state: State,
    deadline: Instant,
    served: u32,
    write_armed: bool,
}

/// What a step of a connection ended with.
enum Step {
    /// Waiting for the socket.
    Blocked,
    /// Close it now.
    Close,
}

/// The server loop's state.
pub(super) struct Server {
    listener: TcpListener,
    cell: Arc<SnapshotCell>,
    limits: ServerLimits,
    ev: EventLoop,
    tick: Timer,
    stop_waker: Arc<Waker>,
    conns: Vec<Option<HttpConn>>,
    gens: Vec<u32>,
    open: usize,
    spare_fd: Option<std::fs::File>,
}

impl Server {
    /// Registers `listener` and the stop waker (caller's thread).
    pub(super) fn new(
        listener: TcpListener,
        cell: Arc<SnapshotCell>,
        limits: ServerLimits,
        stop_waker: Arc<Waker>,
    ) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let ev = EventLoop::new()?;
        ev.register(listener.as_fd(), LISTENER, Interest::READABLE)?;
        ev.register(stop_waker.as_fd(), STOP, Interest::READABLE)?;
        let tick = Timer::new()?;
        tick.arm_periodic(Duration::from_millis(100))?;
        ev.register(tick.as_fd(), TICK, Interest::READABLE)?;
        Ok(Server {
            listener,
            cell,
            limits,
            ev,
            tick,
            stop_waker,
            conns: Vec::new(),
            gens: Vec::new(),
            open: 0,
            spare_fd: std::fs::File::open("/dev/null").ok(),
        })
    }

    /// Serves until `stop` is set and the stop waker signalled.
    pub(super) fn run(mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(256);
        loop {
            if self.ev.poll(None, &mut events).is_err() {
                // epoll itself failed: nothing sensible is left but to pause and retry.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    STOP => {
                        let _ = self.stop_waker.drain();
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                    }
                    TICK => {
                        let _ = self.tick.expirations();
                        self.sweep();
                    }
                    token => self.on_conn(token),
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let (sock, _) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        drop(self.spare_fd.take());
                        drop(self.listener.accept());
                        self.spare_fd = std::fs::File::open("/dev/null").ok();
                    }
                    return;
                }
            };
            if self.open >= self.limits.max_connections || sock.set_nonblocking(true).is_err() {
                refuse_busy(sock);
                continue;
            }
            let _ = sock.set_nodelay(true);
            let idx = match self.conns.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    self.conns.push(None);
                    self.gens.push(0);
                    self.conns.len() - 1
                }
            };
            self.gens[idx] = self.gens[idx].wrapping_add(1);
            let generation = self.gens[idx];
            if self
                .ev
                .register(sock.as_fd(), token(idx, generation), Interest::READABLE)
                .is_err()
            {
                continue;
            }
            self.conns[idx] = Some(HttpConn {
                sock,
                generation,
                buf: vec![0; self.limits.max_head],
                filled: 0,
                out: Vec::new(),
                written: 0,
                state: State::Head,
                deadline: Instant::now() + self.limits.read_timeout,
                served: 0,
                write_armed: false,
            });
            self.open += 1;
        }
    }

    fn on_conn(&mut self, token: u64) {
        let Some(raw) = token.checked_sub(FIRST_CONN) else {
            return;
        };
        let idx = (raw & 0xFFFF_FFFF) as usize;
        let generation = (raw >> 32) as u32;
        match self.conns.get(idx) {
            Some(Some(c)) if c.generation == generation => self.drive(idx),
            _ => {}
        }
    }

    /// Runs connection `idx` until it waits for its socket, or closes it.
    fn drive(&mut self, idx: usize) {
        let Some(Some(conn)) = self.conns.get_mut(idx) else {
            return;
        };
        let (cell, limits) = (&*self.cell, &self.limits);
        // A panic here would be a bug; it must cost one connection, not the thread.
        let step =
            catch_unwind(AssertUnwindSafe(|| conn.advance(cell, limits))).unwrap_or(Step::Close);
        let keep = match step {
            Step::Close => false,
            Step::Blocked => {
                let want = matches!(conn.state, State::Write { .. });
                want == conn.write_armed || {
                    let interest = if want {
                        Interest::READ_WRITE
                    } else {
                        Interest::READABLE
                    };
                    let t = token(idx, conn.generation);
                    conn.write_armed = want;
                    self.ev.modify(conn.sock.as_fd(), t, interest).is_ok()
                }
            }
        };
        if !keep {
            self.close(idx);
        }
    }

    /// Applies every deadline that passed.
    fn sweep(&mut self) {
        let now = Instant::now();
        for idx in 0..self.conns.len() {
            let Some(Some(c)) = self.conns.get_mut(idx) else {
                continue;
            };
            if now < c.deadline {
                continue;
            }
            match c.state {
                // A partial head gets 408; a client that sent nothing is dropped.
                State::Head if c.filled > 0 => {
                    c.respond(&Response::error(408, "Request Timeout"), false, false);
                    c.deadline = now + self.limits.write_timeout;
                    self.drive(idx);
                }
                _ => self.close(idx),
            }
        }
    }

    fn close(&mut self, idx: usize) {
        if let Some(c) = self.conns.get_mut(idx).and_then(Option::take) {
            let _ = self.ev.deregister(c.sock.as_fd());
            self.open -= 1;
        }
    }
}

impl HttpConn {
    fn advance(&mut self, cell: &SnapshotCell, limits: &ServerLimits) -> Step {
        loop {
            match self.state {
                State::Head => {
                    if self.parse(cell, limits) {
                        continue;
                    }
                    if self.filled == self.buf.len() {
                        let r = Response::error(431, "Request Header Fields Too Large");
                        self.respond(&r, false, false);
                        self.deadline = Instant::now() + limits.write_timeout;
                        continue;
                    }
                    match self.sock.read(&mut self.buf[self.filled..]) {
                        Ok(0) => return Step::Close,
                        Ok(n) => self.filled += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Blocked,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => return Step::Close,
                    }
                }
                State::Write { keep } => {
                    if self.written < self.out.len() {
                        match self.sock.write(&self.out[self.written..]) {
                            Ok(0) => return Step::Close,
                            Ok(n) => self.written += n,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Blocked,
                            Err(e) if e.kind() == ErrorKind::Interrupted => {}
                            Err(_) => return Step::Close,
                        }
                        continue;
                    }
                    self.out = Vec::new();
                    self.written = 0;
                    if keep {
                        self.state = State::Head;
                        self.deadline = Instant::now() + limits.read_timeout;
                    } else {
                        if self.sock.shutdown(Shutdown::Write).is_err() {
                            return Step::Close;
                        }
                        self.state = State::Linger { drained: 0 };
                        self.deadline = Instant::now() + limits.linger;
                    }
                }
                State::Linger { ref mut drained } => {
                    let mut scratch = [0u8; 4096];
                    match self.sock.read(&mut scratch) {
                        Ok(0) => return Step::Close,
                        Ok(n) => {
                            *drained += n;
                            if *drained >= MAX_DRAIN {
                                return Step::Close;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Blocked,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => return Step::Close,
                    }
                }
            }
        }
    }

    /// Parses the buffered head; when it is complete (or malformed) queues the response
    /// and returns `true`.
    fn parse(&mut self, cell: &SnapshotCell, limits: &ServerLimits) -> bool {
        if self.filled == 0 {
            return false;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let (response, keep, head_only, used) = match req.parse(&self.buf[..self.filled]) {
            Ok(httparse::Status::Complete(used)) => {
                let method = req.method.unwrap_or("");
                let r = route(
                    &Request {
                        method,
                        target: req.path.unwrap_or(""),
                    },
                    cell,
                );
                let keep = wants_keep_alive(req.headers)
                    && !has_body(req.headers)
                    && self.served + 1 < MAX_REQUESTS_PER_CONN;
                (r, keep, method == "HEAD", used)
            }
            Ok(httparse::Status::Partial) => return false,
            Err(httparse::Error::TooManyHeaders) => (
                Response::error(431, "Request Header Fields Too Large"),
                false,
                false,
                self.filled,
            ),
            Err(_) => (
                Response::error(400, "Bad Request"),
                false,
                false,
                self.filled,
            ),
        };
        // Keep what follows the head: a pipelined request.
        self.buf.copy_within(used..self.filled, 0);
        self.filled -= used;
        self.served += 1;
        self.respond(&response, keep, head_only);
        self.deadline = Instant::now() + limits.write_timeout;
        true
    }

    fn respond(&mut self, r: &Response, keep: bool, head_only: bool) {
        self.out = r.to_bytes(keep, head_only);
        self.written = 0;
        self.state = State::Write { keep };
    }
}

fn token(idx: usize, generation: u32) -> u64 {
    FIRST_CONN + ((u64::from(generation) << 32) | idx as u64)
}

/// Whether the `Connection` header asks to keep the connection (and does not say close).
fn wants_keep_alive(headers: &[httparse::Header<'_>]) -> bool {
    let mut keep = false;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
    {
        for token in String::from_utf8_lossy(h.value).split(',') {
            let token = token.trim();
            if token.eq_ignore_ascii_case("close") {
                return false;
            }
            keep |= token.eq_ignore_ascii_case("keep-alive");
        }
    }
    keep
}

/// Whether the request announces a body (which this server does not read).
fn has_body(headers: &[httparse::Header<'_>]) -> bool {
    headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value.trim_ascii() != b"0")
    })
}

/// Answers 503 without reading and closes (best effort: one nonblocking write).
fn refuse_busy(sock: TcpStream) {
    let _ = sock.set_nonblocking(true);
    let _ = (&sock).write(BUSY);
    let _ = sock.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_only_when_asked() {
        let h = |v: &'static [u8]| httparse::Header {
            name: "Connection",
            value: v,
        };
        assert!(wants_keep_alive(&[h(b"keep-alive")]));
        assert!(wants_keep_alive(&[h(b"Upgrade, Keep-Alive")]));
        assert!(!wants_keep_alive(&[h(b"keep-alive, close")]));
        assert!(!wants_keep_alive(&[]));
        let cl = httparse::Header {
            name: "Content-Length",
            value: b" 3",
        };
        assert!(has_body(&[cl]));
    }
}
