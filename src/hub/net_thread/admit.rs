//! Admission, on the hub's net thread: accepting connections, keeping those awaiting HELLO
//! within their budget (evicting the oldest), counting and logging refusals, and checking
//! HELLO (the token compared in constant time, the stream's format and packet size).

use std::net::IpAddr;
use std::os::fd::AsFd;

use super::{Client, FIRST_CONN, HubNet, LOG, MAX_CLIENT_PACKET, NetConfig, PendingJoin, Phase};
use crate::hub::refusals::Refusal;
use crate::net::conn::{Conn, Link, audio_frame_bytes};
use crate::net::socket::{accept_nonblocking, tune};
use crate::net::{Interest, SocketTuning};
use crate::rt::clock::now_ns;
use crate::wire::{AudioFormat, ErrorCode, Frame, Hello, Kind, ProtocolError};

/// Connections accepted per wakeup of the listener.
const ACCEPTS_PER_WAKE: usize = 16;

/// What [`HubNet::pending_census`] found.
struct Census {
    same: usize,
    total: usize,
    /// (since_ns, index) of the oldest pending connection of the address, and of all.
    oldest_same: Option<(u64, usize)>,
    oldest_any: Option<(u64, usize)>,
}

impl Census {
    /// Which budget one more connection from the address would exceed, if any: the
    /// per-address one first.
    fn over(&self, cfg: &NetConfig) -> Option<Refusal> {
        if self.same >= cfg.max_pending_per_addr.max(1) {
            Some(Refusal::PendingPerAddress)
        } else if self.total >= cfg.max_pending.max(1) {
            Some(Refusal::PendingTotal)
        } else {
            None
        }
    }
}

impl HubNet {
    /// Accepts what waits in the listen queue, at most [`ACCEPTS_PER_WAKE`] at a time: the
    /// listener is level-triggered, so the rest wait for the next turn of the loop, and a
    /// burst of hundreds of connections (a flood) never holds the mix that is due behind
    /// it.
    pub(super) fn accept(&mut self) {
        for _ in 0..ACCEPTS_PER_WAKE {
            let (sock, addr) = match accept_nonblocking(&self.listener) {
                Ok(Some(x)) => x,
                Ok(None) => return,
                Err(e) => return self.accept_failed(&e),
            };
            self.make_room(addr.ip());
            let idx = match self.clients.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    self.clients.push(None);
                    self.gens.push(0);
                    self.clients.len() - 1
                }
            };
            self.gens[idx] = self.gens[idx].wrapping_add(1);
            let generation = self.gens[idx];
            let token = FIRST_CONN + ((u64::from(generation)) << 32 | idx as u64);
            let _ = tune(&sock, &SocketTuning::default());
            if self
                .ev
                .register(sock.as_fd(), token, Interest::READABLE)
                .is_err()
            {
                continue;
            }
            let bytes = audio_frame_bytes(self.cfg.period, self.cfg.channels);
            let conn = Conn::new(sock, token, Interest::READABLE, addr.to_string(), bytes);
            self.clients[idx] = Some(Client {
                conn,
                generation,
                phase: Phase::AwaitHello { since_ns: now_ns() },
                input: None,
                mix: None,
                format: AudioFormat::F32,
                agreed: None,
                closing_since: None,
                ip: addr.ip(),
                refusal_counted: false,
                refused_user: None,
            });
            self.flush(idx);
        }
    }

    /// Keeps the connections awaiting HELLO within their budget before one more from `ip`
    /// is taken: past the per-address or the total limit the oldest (of that address, or
    /// of all) is evicted with `hello_timeout`. Evicting rather than refusing the newcomer
    /// means a flood of idle connections can never keep an honest client, which sends its
    /// HELLO at once, from being read. Before evicting, the connections over budget are
    /// read: when many honest clients connect at once (a studio's peers behind one
    /// address, started together), their HELLOs wait unread in this loop's sockets while
    /// it accepts, and only those still silent after a read may be evicted.
    fn make_room(&mut self, ip: IpAddr) {
        let Some(why) = self.pending_census(ip).over(&self.cfg) else {
            return;
        };
        for i in 0..self.clients.len() {
            let waiting = self.clients[i]
                .as_ref()
                .is_some_and(|c| c.is_pending() && (why == Refusal::PendingTotal || c.ip == ip));
            if waiting {
                self.read(i);
            }
        }
        let census = self.pending_census(ip);
        let Some(why) = census.over(&self.cfg) else {
            return;
        };
        let (oldest, message) = if why == Refusal::PendingPerAddress {
            let message = format!(
                "evicted: {} connections from {ip} awaiting HELLO (limit {})",
                census.same, self.cfg.max_pending_per_addr
            );
            (census.oldest_same, message)
        } else {
            let message = format!(
                "evicted: {} connections awaiting HELLO (limit {})",
                census.total, self.cfg.max_pending
            );
            (census.oldest_any, message)
        };
        if let Some((_, idx)) = oldest {
            self.refuse_pending(idx, why, message);
        }
    }

    /// The connections awaiting HELLO: how many from `ip` and in all, and the oldest of
    /// each.
    fn pending_census(&self, ip: IpAddr) -> Census {
        let mut c = Census {
            same: 0,
            total: 0,
            oldest_same: None,
            oldest_any: None,
        };
        for (i, client) in self.clients.iter().enumerate() {
            let Some(client) = client else { continue };
            let Phase::AwaitHello { since_ns } = client.phase else {
                continue;
            };
            if !client.is_pending() {
                continue;
            }
            c.total += 1;
            if c.oldest_any.is_none_or(|(t, _)| since_ns < t) {
                c.oldest_any = Some((since_ns, i));
            }
            if client.ip == ip {
                c.same += 1;
                if c.oldest_same.is_none_or(|(t, _)| since_ns < t) {
                    c.oldest_same = Some((since_ns, i));
                }
            }
        }
        c
    }

    /// Refuses a connection that has not joined, counting `why`.
    fn refuse_pending(&mut self, idx: usize, why: Refusal, message: String) {
        let Some(Some(c)) = self.clients.get_mut(idx) else {
            return;
        };
        c.refusal_counted = true;
        self.refusals.count(why);
        self.logs.refused.log(
            now_ns(),
            LOG,
            format_args!("refused {}: {}: {message}", c.conn.link.peer, why.code()),
        );
        c.conn.link.refuse(why.code(), message);
        self.flush(idx);
    }

    /// An accept failed: out of descriptors is answered by closing the waiting connection
    /// through the spare descriptor; everything is counted and logged at a bounded rate.
    fn accept_failed(&mut self, e: &std::io::Error) {
        self.refusals.count(Refusal::AcceptFailed);
        let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
        self.logs
            .accept
            .log(now_ns(), LOG, format_args!("accept failed: {e}"));
        if out_of_fds {
            drop(self.spare_fd.take());
            drop(self.listener.accept());
            self.spare_fd = std::fs::File::open("/dev/null").ok();
        }
    }
}

/// The first frame of a connection; returns `false` (pause reading) once HELLO is accepted.
pub(super) fn on_hello(
    link: &mut Link,
    frame: &Frame<'_>,
    cfg: &NetConfig,
    idx: usize,
    pending: &mut Vec<PendingJoin>,
    refused_user: &mut Option<String>,
) -> bool {
    match check_hello(frame, cfg) {
        Ok(hello) => {
            pending.push((idx, hello));
            false
        }
        Err(e) => {
            // Who was refused, for the log (a HELLO that parses: a wrong token or rate).
            *refused_user = Hello::parse(frame.payload).ok().map(|h| h.user);
            link.send_error(&e);
            true
        }
    }
}

fn check_hello(frame: &Frame<'_>, cfg: &NetConfig) -> Result<Box<Hello>, ProtocolError> {
    if frame.kind() != Some(Kind::Hello) {
        let what = frame.kind().map_or("an unknown frame", |k| k.name());
        return Err(ProtocolError::new(
            ErrorCode::HelloExpected,
            format!("{what} before HELLO"),
        ));
    }
    let hello = Hello::parse(frame.payload)?;
    if let Some(want) = &cfg.token {
        let given = hello.token.as_deref().unwrap_or("");
        if !constant_time_eq(want.as_bytes(), given.as_bytes()) {
            return Err(ProtocolError::new(
                ErrorCode::Unauthorized,
                "wrong or missing token",
            ));
        }
    }
    if let Ok(Some(a)) = hello.audio() {
        if a.sample_rate != cfg.rate || a.channels != cfg.channels {
            return Err(ProtocolError::new(
                ErrorCode::FormatUnsupported,
                format!(
                    "this hub mixes {} Hz, {} channels; HELLO offers {} Hz, {} channels",
                    cfg.rate, cfg.channels, a.sample_rate, a.channels
                ),
            ));
        }
        if a.frames_per_packet > MAX_CLIENT_PACKET {
            return Err(ProtocolError::new(
                ErrorCode::FormatUnsupported,
                format!(
                    "framesPerPacket {} over this hub's limit {MAX_CLIENT_PACKET}",
                    a.frames_per_packet
                ),
            ));
        }
    }
    Ok(Box::new(hello))
}

/// Compares two byte strings in time that depends only on their lengths.
///
/// # Example
/// ```
/// use izyrt::hub::net_thread::constant_time_eq;
/// assert!(constant_time_eq(b"s3cret", b"s3cret"));
/// assert!(!constant_time_eq(b"s3cret", b"s3creT"));
/// assert!(!constant_time_eq(b"s3cret", b"s3cre"));
/// ```
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}
