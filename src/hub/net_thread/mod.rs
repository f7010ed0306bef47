//! The hub's net thread: accepts clients, speaks streamproto1 with each, feeds the mixer
//! thread and sends every listener its mix (net thread).
//!
//! Design: one epoll loop ([`EventLoop`]) over the listening socket, every client socket,
//! the eventfd the mixer signals after each period ([`Waker`]), a stop eventfd, the
//! eventfd the publisher signals, and two timerfds: a 100 ms housekeeping tick (HELLO
//! timeout, liveness, reaping) and the 500 ms METADATA cadence; joins and leaves are
//! announced at the next tick. At the cadence this thread only copies its user table to
//! the publisher thread ([`super::publisher`]), which builds METADATA and the metrics
//! snapshot; the frame it hands back goes out a few clients per mix period
//! ([`super::fanout`]), so the JSON about N users sent to N clients never keeps this
//! thread from the sockets. A client moves through
//! *awaiting HELLO* → *joined* → closed; anything wrong is answered with the spec's ERROR
//! code and the connection closed, and nothing one client does reaches another except
//! through the mix. Per AUDIO frame the path is decode (in the decoder's own buffer) →
//! convert into one scratch buffer → the client's input pipe; per period each listener's
//! mix goes from its output pipe straight into a write-queue slot. Neither allocates.
//!
//! The AUDIO paths (in and out) run under the per-thread allocation counter and report in
//! `hub.audioPathAllocations` how many allocator calls they made: 0, or a bug.
//!
//! A client that cannot keep up loses its oldest mix frames (the write queue drops them,
//! counted in `droppedOut`); a client whose control queue (METADATA, PONG) overflows is
//! stalled and is dropped. Tokens carry a generation so that a stale event for a closed
//! connection never reaches the one that reused its slot.
//!
//! The parts, all on this thread: this file holds the state, the loop and its dispatch,
//! and `flush` (which writes, and notices a connection closing); `admit.rs` accepting
//! connections and checking HELLO; `session.rs` joining, leaving and closing;
//! `frames.rs` reading a client's frames; `periodic.rs` the work of each mix period and
//! timer tick (mixes out, METADATA, housekeeping, the report to the publisher).

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use rtrb::{Consumer, Producer};

use super::fanout::{self, Fanout};
use super::mixer_thread::{Command, MixerStats, Slot};
use super::publisher::{Publisher, PublisherHandle, Report};
use super::refusals::{Refusal, Refusals};
use super::users::Users;
use crate::dsp::meter::MeterConfig;
use crate::metrics::SnapshotCell;
use crate::net::conn::{Agreed, Conn};
use crate::net::log_limit::LogLimit;
use crate::net::{EventLoop, Events, Interest, Timer, Waker};
use crate::rt::clock::now_ns;
use crate::rt::pipe::{PipeRx, PipeTx};
use crate::rt::runner::RtStatus;
use crate::wire::{AudioFormat, Hello, Mix};

mod admit;
mod frames;
mod periodic;
mod session;

pub use admit::constant_time_eq;

const LISTENER: u64 = 1;
const MIXED: u64 = 2;
const STOP: u64 = 3;
const TICK: u64 = 4;
const METADATA: u64 = 5;
const PUBLISHED: u64 = 6;
const FIRST_CONN: u64 = 16;

/// Largest `framesPerPacket` a client may send (its jitter buffer is sized for it).
pub const MAX_CLIENT_PACKET: u32 = 1024;
/// Time a client has to send HELLO, at most (the spec's 5 s); the hub's own deadline is
/// [`NetConfig::hello_timeout_ns`].
pub const HELLO_TIMEOUT_NS: u64 = 5_000_000_000;
/// Default [`NetConfig::hello_timeout_ns`]: 2 s.
pub const DEFAULT_HELLO_TIMEOUT_NS: u64 = 2_000_000_000;
/// Default [`NetConfig::max_pending`].
pub const DEFAULT_MAX_PENDING: usize = 128;
/// Default [`NetConfig::max_pending_per_addr`].
pub const DEFAULT_MAX_PENDING_PER_ADDR: usize = 16;
/// What the hub's log lines start with.
const LOG: &str = "izyrt hub";
/// Time a closing connection has to take its last bytes.
const LINGER_NS: u64 = 2_000_000_000;

/// What the hub's net thread needs to know.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Stream rate, Hz.
    pub rate: u32,
    /// Channels of every stream.
    pub channels: u16,
    /// Frames per period and per mix packet.
    pub period: u32,
    /// Required HELLO token, if any.
    pub token: Option<String>,
    /// The mix a client hears unless it asks.
    pub default_mix: Mix,
    /// Most joined clients at once (`hub_full` beyond); connections awaiting HELLO do not
    /// count.
    pub max_clients: usize,
    /// Most connections awaiting HELLO at once; beyond, the oldest is evicted.
    pub max_pending: usize,
    /// Most connections awaiting HELLO from one IP address; beyond, its oldest is evicted.
    pub max_pending_per_addr: usize,
    /// Time a connection has to send HELLO, ns.
    pub hello_timeout_ns: u64,
    /// Silence before a connection is considered dead, ns.
    pub liveness_ns: u64,
    /// A track is disconnected when its seq has not advanced for this long, ns.
    pub latency_threshold_ns: u64,
    /// Meter settings for client inputs.
    pub meter: MeterConfig,
    /// Session id sent in WELCOME.
    pub session: String,
    /// The WAV sources, by track name, in mixer slots `0..files.len()`.
    pub files: Vec<super::file_sources::FileSource>,
    /// Cap on each client input's jitter buffer, ms (`None`: 16 packets).
    pub jitter_max_ms: Option<u32>,
    /// Floor of each client input's jitter buffer, ms (`None`: one packet).
    pub jitter_min_ms: Option<u32>,
}

/// The channels between the net thread and the rest of the hub.
pub struct NetLinks {
    /// Commands to the mixer thread.
    pub commands: Producer<Command>,
    /// Slots the mixer hands back.
    pub garbage: Consumer<Box<Slot>>,
    /// Signalled by the mixer after each period.
    pub mixed: Arc<Waker>,
    /// Signalled by the main thread to stop.
    pub stop: Arc<Waker>,
    /// Where getMetrics reads.
    pub snapshot: Arc<SnapshotCell>,
    /// The mixer thread, for the `realtime` table.
    pub mixer: RtStatus,
    /// The mixer's own figures (leaked slots, miss periods).
    pub mixer_stats: Arc<MixerStats>,
}

enum Phase {
    AwaitHello { since_ns: u64 },
    Joined { user: usize, slot: usize },
}

struct Client {
    conn: Conn,
    generation: u32,
    phase: Phase,
    /// Client audio → mixer.
    input: Option<PipeTx>,
    /// Mixer → this client's mix.
    mix: Option<PipeRx>,
    format: AudioFormat,
    /// The AUDIO stream its HELLO announced (joined senders).
    agreed: Option<Agreed>,
    closing_since: Option<u64>,
    /// The remote IP address (the handshake budget is per address).
    ip: IpAddr,
    /// Its refusal was counted already (an eviction).
    refusal_counted: bool,
    /// The `user` of a HELLO that was refused, for the hub's log.
    refused_user: Option<String>,
}

impl Client {
    /// Awaiting HELLO and not yet refused.
    fn is_pending(&self) -> bool {
        matches!(self.phase, Phase::AwaitHello { .. }) && !self.conn.link.is_closing()
    }
}

/// One rate limit per log call site of the net thread (it runs `SCHED_FIFO`).
struct Logs {
    accept: LogLimit,
    join: LogLimit,
    leave: LogLimit,
    error: LogLimit,
    refused: LogLimit,
}

impl Logs {
    fn new() -> Logs {
        Logs {
            accept: LogLimit::per_site(),
            join: LogLimit::per_site(),
            leave: LogLimit::per_site(),
            error: LogLimit::per_site(),
            refused: LogLimit::per_site(),
        }
    }

    fn flush(&mut self, now: u64) {
        for l in [
            &mut self.accept,
            &mut self.join,
            &mut self.leave,
            &mut self.error,
            &mut self.refused,
        ] {
            l.flush(now, LOG);
        }
    }
}

/// The hub's net thread state.
pub struct HubNet {
    cfg: NetConfig,
    links: NetLinks,
    ev: EventLoop,
    listener: TcpListener,
    tick: Timer,
    metadata: Timer,
    clients: Vec<Option<Client>>,
    gens: Vec<u32>,
    free_slots: Vec<usize>,
    users: Users,
    scratch: Vec<f32>,
    pending: Vec<PendingJoin>,
    rejected: u64,
    /// Connections refused before they joined, by reason.
    refusals: Refusals,
    /// Rate limits of the log lines.
    logs: Logs,
    /// A descriptor kept in reserve: when accept fails for want of descriptors, it is
    /// closed to accept and close the waiting connection (else the listener stays ready
    /// and the loop spins), then reopened.
    spare_fd: Option<std::fs::File>,
    /// Allocator calls made while handling AUDIO in and out (0, or a bug).
    audio_allocs: u64,
    /// A client joined or left since the last METADATA.
    metadata_due: bool,
    /// Builds METADATA and the metrics snapshot.
    publisher: PublisherHandle,
    /// The publisher thread's end was reported.
    publisher_ended: bool,
    /// Signalled by the publisher when a METADATA frame is ready.
    published: Arc<Waker>,
    /// The METADATA frame being handed out.
    fanout: Fanout,
    /// A mix went out since the last housekeeping tick.
    mixed_since_tick: bool,
    /// Slots whose Leave the mixer has not been handed yet.
    leaving: Vec<usize>,
}

/// A HELLO accepted while its connection was being read, joined right after.
type PendingJoin = (usize, Box<Hello>);

impl HubNet {
    /// Builds the loop (main thread). `slots` is the mixer's slot count; the first
    /// `cfg.files.len()` are taken by WAV sources.
    ///
    /// # Errors
    /// When an epoll, eventfd or timerfd cannot be created or registered.
    pub fn new(
        cfg: NetConfig,
        links: NetLinks,
        listener: TcpListener,
        slots: usize,
    ) -> std::io::Result<HubNet> {
        let ev = EventLoop::new()?;
        listener.set_nonblocking(true)?;
        ev.register(listener.as_fd(), LISTENER, Interest::READABLE)?;
        ev.register(links.mixed.as_fd(), MIXED, Interest::READABLE)?;
        ev.register(links.stop.as_fd(), STOP, Interest::READABLE)?;
        let tick = Timer::new()?;
        tick.arm_periodic(Duration::from_millis(100))?;
        ev.register(tick.as_fd(), TICK, Interest::READABLE)?;
        let metadata = Timer::new()?;
        metadata.arm_periodic(Duration::from_millis(500))?;
        ev.register(metadata.as_fd(), METADATA, Interest::READABLE)?;
        let free_slots = (cfg.files.len()..slots).rev().collect();
        let started_ns = now_ns();
        let publisher = Publisher::new(
            cfg.clone(),
            links.mixer.clone(),
            Arc::clone(&links.mixer_stats),
            Arc::clone(&links.snapshot),
            listener.local_addr().ok(),
            started_ns,
        );
        // The first snapshot is there before anyone can ask for it.
        publisher.publish(&Report {
            now_ns: started_ns,
            ..Report::default()
        });
        let published = Arc::new(Waker::new()?);
        ev.register(published.as_fd(), PUBLISHED, Interest::READABLE)?;
        let publisher = publisher.spawn(Arc::clone(&published))?;
        let scratch = vec![0.0; MAX_CLIENT_PACKET as usize * usize::from(cfg.channels)];
        Ok(HubNet {
            cfg,
            links,
            ev,
            listener,
            tick,
            metadata,
            clients: Vec::new(),
            gens: Vec::new(),
            free_slots,
            users: Users::default(),
            scratch,
            pending: Vec::new(),
            rejected: 0,
            refusals: Refusals::default(),
            logs: Logs::new(),
            spare_fd: std::fs::File::open("/dev/null").ok(),
            audio_allocs: 0,
            metadata_due: false,
            publisher,
            publisher_ended: false,
            published,
            fanout: Fanout::default(),
            mixed_since_tick: false,
            leaving: Vec::new(),
        })
    }

    /// Runs until the stop eventfd is signalled, then says BYE to every client.
    ///
    /// # Errors
    /// When epoll itself fails.
    pub fn run(mut self) -> std::io::Result<()> {
        let mut events = Events::with_capacity(256);
        loop {
            self.ev.poll(None, &mut events)?;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    MIXED => {
                        let _ = self.links.mixed.drain();
                        self.send_mixes();
                        self.mixed_since_tick = true;
                        self.send_metadata(fanout::PER_PERIOD);
                    }
                    PUBLISHED => {
                        let _ = self.published.drain();
                        if let Some(frame) = self.publisher.latest_frame() {
                            let joined = self.clients.iter().enumerate().filter_map(|(i, c)| {
                                c.as_ref()
                                    .filter(|c| matches!(c.phase, Phase::Joined { .. }))
                                    .map(|_| i)
                            });
                            self.fanout.start(frame, joined);
                        }
                    }
                    STOP => {
                        self.shutdown();
                        return Ok(());
                    }
                    TICK => {
                        let _ = self.tick.expirations();
                        self.housekeeping();
                    }
                    METADATA => {
                        let _ = self.metadata.expirations();
                        self.report();
                    }
                    token => self.on_client(token, event.is_readable() || event.is_hangup()),
                }
            }
            self.run_pending();
        }
    }

    fn index_of(&self, token: u64) -> Option<usize> {
        let raw = token.checked_sub(FIRST_CONN)?;
        let idx = (raw & 0xFFFF_FFFF) as usize;
        let generation = (raw >> 32) as u32;
        match self.clients.get(idx) {
            Some(Some(c)) if c.generation == generation => Some(idx),
            _ => None,
        }
    }

    fn on_client(&mut self, token: u64, readable: bool) {
        let Some(idx) = self.index_of(token) else {
            return;
        };
        if readable {
            self.read(idx);
        }
        self.flush(idx);
    }

    fn flush(&mut self, idx: usize) {
        let Some(Some(client)) = self.clients.get_mut(idx) else {
            return;
        };
        client.conn.link.flush(&self.ev);
        if client.conn.link.is_closing() && client.closing_since.is_none() {
            client.closing_since = Some(now_ns());
            // An ERROR before WELCOME: a refused connection (evictions count themselves).
            if let (Phase::AwaitHello { since_ns }, false, Some(code)) = (
                &client.phase,
                client.refusal_counted,
                client.conn.link.error_sent(),
            ) {
                if *since_ns != 0 {
                    client.refusal_counted = true;
                    self.refusals.count(Refusal::Error(code));
                    let peer = &client.conn.link.peer;
                    match &client.refused_user {
                        Some(user) => self.logs.refused.log(
                            now_ns(),
                            LOG,
                            format_args!("refused HELLO from {peer} (user {user}): {code}"),
                        ),
                        None => self.logs.refused.log(
                            now_ns(),
                            LOG,
                            format_args!("refused {peer}: {code}"),
                        ),
                    }
                }
            }
            // A refused or departing client is out of the mix at once.
            if matches!(client.phase, Phase::Joined { .. }) {
                self.leave(idx, "closed after ERROR");
            }
        }
        if let Some(Some(client)) = self.clients.get(idx) {
            if client.conn.link.done() {
                self.close(idx, "connection closed");
            }
        }
    }

    fn shutdown(&mut self) {
        for idx in 0..self.clients.len() {
            if let Some(Some(c)) = self.clients.get_mut(idx) {
                c.conn.link.send_bye();
                c.conn.link.flush(&self.ev);
            }
        }
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}
