//! A client's net thread (peer, monitor): connects to the hub, keeps the connection
//! alive, sends the capture, receives the mix and METADATA, reports QoS (net thread).
//!
//! Design: one epoll loop over the hub socket, the eventfd the capture thread signals per
//! packet, a stop eventfd, and a 50 ms housekeeping timerfd that drives the connection's
//! state machine: *idle* (waiting for the next attempt) → *connecting* (nonblocking
//! connect) → *hello sent* → *running*. Any failure — refused connect, a hub that dies,
//! BYE, liveness expiry, a transient ERROR such as `hub_full` — goes back to idle with a
//! backoff that starts at 100 ms and doubles up to 500 ms, so the client is back within
//! about half a second of the hub's return. ERRORs that another attempt cannot fix
//! (`unauthorized`, `format_unsupported`, `bad_version`, `replaced`, ...) end the client
//! with that error instead of hammering the hub.
//!
//! The AUDIO paths (capture out; mix in, with its QOS report) run under the per-thread
//! allocation counter and report in `connections.USER.audioPathAllocations` how many
//! allocator calls they made: 0, or a bug.
//!
//! When the hub input stops the miss counter is reset (DESIGN.md's rule): on a lost
//! connection the playback thread is told to reset its jitter buffer, which resets the
//! counter too; on a live connection whose mix stalls (its seq has not advanced for the
//! latency threshold, checked every 50 ms) it is told to hold the counter at 0 until the
//! mix advances again, keeping the buffered stream. QOS reports are
//! serialised straight into the write queue from borrowed fields: no allocation per frame.
//!
//! The parts, all on this thread: this file holds the identity and links, the
//! connection's state machine, the loop, the capture sent out and the housekeeping;
//! `frames.rs` reading the hub's frames (WELCOME, the mix, METADATA, ERROR, BYE);
//! `qos.rs` the QOS report.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use rtrb::Producer;
use serde_json::Value;

use super::audio_thread::PlaybackCommand;
use super::status::{ClientView, LinkState};
use crate::metrics::SnapshotCell;
use crate::net::conn::{Agreed, Conn, audio_frame_bytes};
use crate::net::log_limit::LogLimit;
use crate::net::socket::{connect_nonblocking, os_reason, tune};
use crate::net::{EventLoop, Events, Interest, SocketTuning, Timer, Waker};
use crate::rt::alloc_count::count_allocations;
use crate::rt::clock::now_ns;
use crate::rt::pipe::{PacketMeta, PipeRx, PipeTx};
use crate::wire::{AudioFormat, Hello, Kind, Mix, PROTO, Role};

mod frames;
mod qos;

use qos::send_qos;

const CONN: u64 = 16;
const CAPTURED: u64 = 1;
const STOP: u64 = 2;
const TICK: u64 = 3;

const CONNECT_TIMEOUT_NS: u64 = 2_000_000_000;
const WELCOME_TIMEOUT_NS: u64 = 5_000_000_000;
const PING_EVERY_NS: u64 = 1_000_000_000;
const PUBLISH_EVERY_NS: u64 = 250_000_000;
const BACKOFF_MIN_NS: u64 = 100_000_000;
const BACKOFF_MAX_NS: u64 = 500_000_000;

/// Who this client is and what it sends.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Hub address.
    pub hub: SocketAddr,
    /// `user` in HELLO.
    pub user: String,
    /// `token` in HELLO.
    pub token: Option<String>,
    /// `peer` or `monitor`.
    pub role: Role,
    /// Mix asked for (None: the hub's default).
    pub mix: Option<Mix>,
    /// Wire rate, Hz.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// Frames per packet sent (peer).
    pub frames_per_packet: u32,
    /// Wire format sent.
    pub format: AudioFormat,
    /// `enableQOSMetrics`.
    pub qos: bool,
    /// QOS interval, ms (0: after each AUDIO frame received).
    pub qos_interval_ms: u32,
    /// Silence before the connection is dead, ns.
    pub liveness_ns: u64,
}

/// The channels between the net thread and the rest of the client.
pub struct ClientLinks {
    /// Capture packets (peer).
    pub capture: Option<PipeRx>,
    /// Signalled per capture packet.
    pub captured: Arc<Waker>,
    /// Mix packets to the playback thread.
    pub mix: PipeTx,
    /// Commands to the playback thread.
    pub playback: Producer<PlaybackCommand>,
    /// Signalled by the main thread to stop.
    pub stop: Arc<Waker>,
    /// Where getMetrics reads.
    pub snapshot: Arc<SnapshotCell>,
}

enum Phase {
    Idle { retry_at_ns: u64 },
    Connecting { since_ns: u64 },
    HelloSent { since_ns: u64 },
    Running,
}

/// Why the client stopped for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the hub refused {user}: {code}: {message}")]
pub struct Refused {
    /// Our user.
    pub user: String,
    /// The ERROR code.
    pub code: String,
    /// Its message.
    pub message: String,
}

/// The client's net thread state.
pub struct ClientNet {
    id: Identity,
    links: ClientLinks,
    view: ClientView,
    ev: EventLoop,
    tick: Timer,
    conn: Option<Conn>,
    generation: u64,
    phase: Phase,
    backoff_ns: u64,
    scratch: Vec<f32>,
    last_ping_ns: u64,
    last_qos_ns: u64,
    last_publish_ns: u64,
    fatal: Option<Refused>,
    /// The mix stream the last WELCOME announced.
    agreed: Option<Agreed>,
    /// Rate limits of the log lines (this thread runs `SCHED_FIFO`).
    log_lost: LogLimit,
    log_error: LogLimit,
    log_joined: LogLimit,
    /// The playback half was told the mix stalled (and not yet that it runs again).
    input_stopped: bool,
}

impl ClientNet {
    /// Builds the loop (main thread).
    ///
    /// # Errors
    /// When an epoll, eventfd or timerfd cannot be created or registered.
    pub fn new(id: Identity, links: ClientLinks, view: ClientView) -> std::io::Result<ClientNet> {
        let ev = EventLoop::new()?;
        ev.register(links.captured.as_fd(), CAPTURED, Interest::READABLE)?;
        ev.register(links.stop.as_fd(), STOP, Interest::READABLE)?;
        let tick = Timer::new()?;
        tick.arm_periodic(Duration::from_millis(50))?;
        ev.register(tick.as_fd(), TICK, Interest::READABLE)?;
        let scratch = vec![0.0; crate::wire::MAX_FRAMES as usize * usize::from(id.channels)];
        Ok(ClientNet {
            id,
            links,
            view,
            ev,
            tick,
            conn: None,
            generation: 0,
            phase: Phase::Idle { retry_at_ns: 0 },
            backoff_ns: BACKOFF_MIN_NS,
            scratch,
            last_ping_ns: 0,
            last_qos_ns: 0,
            last_publish_ns: 0,
            fatal: None,
            agreed: None,
            log_lost: LogLimit::per_site(),
            log_error: LogLimit::per_site(),
            log_joined: LogLimit::per_site(),
            input_stopped: false,
        })
    }

    /// Runs until stopped (BYE to the hub) or refused for good.
    ///
    /// # Errors
    /// [`Refused`] when the hub refused this client with an ERROR another attempt cannot
    /// fix; an epoll failure is reported the same way with code `internal`.
    pub fn run(mut self) -> Result<(), Refused> {
        let mut events = Events::with_capacity(16);
        self.attempt();
        loop {
            if let Err(e) = self.ev.poll(None, &mut events) {
                return Err(self.refused("internal", &format!("epoll: {e}")));
            }
            for event in events.iter() {
                match event.token() {
                    CAPTURED => {
                        let _ = self.links.captured.drain();
                        self.send_capture();
                    }
                    STOP => {
                        // What the capture queued before the stop still goes out (a
                        // source's last periods), then BYE.
                        self.send_capture();
                        self.bye();
                        self.publish();
                        return Ok(());
                    }
                    TICK => {
                        let _ = self.tick.expirations();
                        self.housekeeping();
                    }
                    t if t == CONN + (self.generation << 32) => self.on_socket(event.is_writable()),
                    _ => {}
                }
            }
            if let Some(f) = self.fatal.take() {
                self.publish();
                return Err(f);
            }
        }
    }

    fn refused(&self, code: &str, message: &str) -> Refused {
        Refused {
            user: self.id.user.clone(),
            code: code.into(),
            message: message.into(),
        }
    }

    fn token(&self) -> u64 {
        CONN + (self.generation << 32)
    }

    fn attempt(&mut self) {
        self.generation += 1;
        self.view.attempts += 1;
        let now = now_ns();
        match connect_nonblocking(self.id.hub) {
            Ok(sock) => {
                let _ = tune(&sock, &SocketTuning::default());
                if self
                    .ev
                    .register(sock.as_fd(), self.token(), Interest::READ_WRITE)
                    .is_err()
                {
                    return self.lost("cannot register the socket");
                }
                let bytes = audio_frame_bytes(self.id.frames_per_packet, self.id.channels);
                let peer = self.id.hub.to_string();
                let interest = Interest::READ_WRITE; // writable: the connect completed
                self.conn = Some(Conn::new(sock, self.token(), interest, peer, bytes));
                self.phase = Phase::Connecting { since_ns: now };
                self.view.state = LinkState::Connecting;
            }
            Err(e) => self.unreachable(&e),
        }
    }

    /// The hub could not be reached: say why in `connectError` (for the status line's
    /// "cannot reach hub"), then as [`Self::lost`].
    fn unreachable(&mut self, e: &std::io::Error) {
        let why = os_reason(e);
        self.lost(&format!("connect: {why}"));
        self.view.connect_error = Some(why);
    }

    /// The connection is gone: tell the speaker, schedule the next attempt.
    fn lost(&mut self, why: &str) {
        if let Some(conn) = self.conn.take() {
            let _ = self.ev.deregister(conn.link.sock.as_fd());
        }
        self.input_stopped = false; // the Reset below (or the next session) clears it
        // The next session's input at the hub is another one.
        self.view.speaker.hub_input.clear();
        if matches!(self.phase, Phase::Running) {
            let _ = self.links.playback.push(PlaybackCommand::Reset);
            self.view.disconnects += 1;
            let what = log_prefix(self.id.role);
            self.log_lost
                .log(now_ns(), what, format_args!("lost the hub: {why}"));
        }
        if self.view.last_error.as_deref() != Some(why) {
            self.view.last_error = Some(why.to_owned());
        }
        self.view.state = LinkState::Stopped;
        self.phase = Phase::Idle {
            retry_at_ns: now_ns() + self.backoff_ns,
        };
        self.backoff_ns = (self.backoff_ns * 2).min(BACKOFF_MAX_NS);
    }

    fn on_socket(&mut self, writable: bool) {
        if let Phase::Connecting { .. } = self.phase {
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            match conn.link.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.unreachable(&e),
            }
            if conn.link.sock.peer_addr().is_err() {
                if writable {
                    let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
                    return self.unreachable(&refused);
                }
                return;
            }
            self.send_hello();
        }
        self.read();
        self.flush();
    }

    fn send_hello(&mut self) {
        let id = &self.id;
        let sends = id.role != Role::Monitor;
        let hello = Hello {
            proto: PROTO.into(),
            role: id.role,
            user: id.user.clone(),
            token: id.token.clone(),
            sample_rate: sends.then_some(id.rate),
            channels: sends.then_some(id.channels),
            format: sends.then(|| id.format.name().to_owned()),
            frames_per_packet: sends.then_some(id.frames_per_packet),
            enable_qos_metrics: id.qos,
            software: Some(concat!("izyrt/", env!("CARGO_PKG_VERSION")).into()),
            mix: id.mix,
        };
        if let Some(conn) = self.conn.as_mut() {
            conn.link.send_json(Kind::Hello, &hello);
        }
        self.phase = Phase::HelloSent { since_ns: now_ns() };
    }

    fn send_capture(&mut self) {
        let Some(capture) = self.links.capture.as_mut() else {
            return;
        };
        let conn = match (&self.phase, self.conn.as_mut()) {
            (Phase::Running, Some(conn)) => conn,
            _ => {
                self.view.unsent += capture.clear() as u64;
                return;
            }
        };
        let id = &self.id;
        let view = &mut self.view;
        let now = now_ns();
        let ((), n) = count_allocations(|| {
            while capture.pop(|m: PacketMeta, a, b| {
                let link = &mut conn.link;
                if link.send_audio(id.rate, id.channels, id.format, &m, a, b) {
                    view.packets_out += 1;
                    view.last_sent_ns = now;
                }
            }) {}
        });
        view.audio_allocs += n;
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.link.flush(&self.ev);
            self.view.dropped_out = conn.link.wq.dropped_audio();
            if conn.link.done() {
                let why = if conn.link.is_closing() {
                    "closed after ERROR"
                } else {
                    "the connection failed"
                };
                self.lost(why);
            }
        }
    }

    fn housekeeping(&mut self) {
        let now = now_ns();
        match self.phase {
            Phase::Idle { retry_at_ns } if now >= retry_at_ns => self.attempt(),
            Phase::Connecting { since_ns } if now - since_ns > CONNECT_TIMEOUT_NS => {
                let timed_out = std::io::Error::from_raw_os_error(libc::ETIMEDOUT);
                self.unreachable(&timed_out)
            }
            Phase::HelloSent { since_ns } if now - since_ns > WELCOME_TIMEOUT_NS => {
                self.lost("no WELCOME within 5 s")
            }
            Phase::Running => {
                let what = log_prefix(self.id.role);
                for l in [
                    &mut self.log_lost,
                    &mut self.log_error,
                    &mut self.log_joined,
                ] {
                    l.flush(now, what);
                }
                let Some(conn) = self.conn.as_mut() else {
                    return;
                };
                if now.saturating_sub(conn.link.last_rx_ns) > self.id.liveness_ns {
                    return self.lost("nothing received for the liveness time");
                }
                // The aggregator input stopped on a live connection (the mix's seq has not
                // advanced for the latency threshold), or runs again: the speaker's misses
                // are reset and held, as on a lost connection (DESIGN.md).
                let stalled = self.view.input_stalled(now);
                if stalled != self.input_stopped {
                    let command = match stalled {
                        true => PlaybackCommand::InputStopped,
                        false => PlaybackCommand::InputRunning,
                    };
                    if self.links.playback.push(command).is_ok() {
                        self.input_stopped = stalled;
                    }
                }
                if now - self.last_ping_ns >= PING_EVERY_NS {
                    conn.link.send_ping(Kind::Ping, now);
                    self.last_ping_ns = now;
                }
                let every = u64::from(self.id.qos_interval_ms) * 1_000_000;
                if self.id.qos
                    && every > 0
                    && now - self.last_qos_ns >= every
                    && self.view.head.is_some()
                {
                    send_qos(&mut conn.link, &mut self.view);
                    self.last_qos_ns = now;
                }
                self.flush();
            }
            _ => {}
        }
        if now - self.last_publish_ns >= PUBLISH_EVERY_NS {
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.last_publish_ns = now_ns();
        let snap: Value = self.view.snapshot(&self.id);
        self.links.snapshot.publish(snap);
    }

    fn bye(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.link.send_bye();
            conn.link.flush(&self.ev);
        }
        self.view.state = LinkState::Stopped;
    }
}

/// What this client's log lines start with (`izyrt peer`, `izyrt monitor`, `izyrt source`).
fn log_prefix(role: Role) -> &'static str {
    match role {
        Role::Peer => "izyrt peer",
        Role::Monitor => "izyrt monitor",
        Role::Source => "izyrt source",
    }
}
