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

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rtrb::{Consumer, Producer};

use super::fanout::{self, Fanout};
use super::mixer_thread::{Command, Input, MixerStats, Slot, SlotStats};
use super::publisher::{Publisher, PublisherHandle, Report};
use super::refusals::{Refusal, Refusals};
use super::users::Users;
use crate::dsp::jitter::{JitterBuffer, JitterConfig, half_period_ns};
use crate::dsp::meter::{Meter, MeterConfig};
use crate::dsp::mixer::MixMode;
use crate::dsp::playout::conceal::Conceal;
use crate::hub::drift::DriftMeter;
use crate::metrics::SnapshotCell;
use crate::net::conn::{Agreed, Conn, Link, ReadEnd, audio_frame_bytes};
use crate::net::log_limit::LogLimit;
use crate::net::socket::{accept_nonblocking, tune};
use crate::net::{EventLoop, Events, Interest, SocketTuning, Timer, Waker};
use crate::rt::alloc_count::count_allocations;
use crate::rt::clock::{now_ns, unix_ms};
use crate::rt::pipe::{PacketMeta, PipeRx, PipeTx, pipe};
use crate::rt::runner::RtStatus;
use crate::wire::{
    AudioFormat, AudioParams, ErrorCode, ErrorMsg, Frame, Hello, Kind, Mix, PROTO, ProtocolError,
    Role, Welcome, check_json_object,
};

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

    fn accept(&mut self) {
        loop {
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
    /// HELLO at once, from being read.
    fn make_room(&mut self, ip: IpAddr) {
        let (mut same, mut total) = (0, 0);
        // (since_ns, index) of the oldest pending connection of `ip`, and of all.
        let mut oldest_same: Option<(u64, usize)> = None;
        let mut oldest_any: Option<(u64, usize)> = None;
        for (i, c) in self.clients.iter().enumerate() {
            let Some(c) = c else { continue };
            let Phase::AwaitHello { since_ns } = c.phase else {
                continue;
            };
            if !c.is_pending() {
                continue;
            }
            total += 1;
            if oldest_any.is_none_or(|(t, _)| since_ns < t) {
                oldest_any = Some((since_ns, i));
            }
            if c.ip == ip {
                same += 1;
                if oldest_same.is_none_or(|(t, _)| since_ns < t) {
                    oldest_same = Some((since_ns, i));
                }
            }
        }
        let evict = if same >= self.cfg.max_pending_per_addr.max(1) {
            oldest_same.map(|(_, i)| (i, Refusal::PendingPerAddress))
        } else if total >= self.cfg.max_pending.max(1) {
            oldest_any.map(|(_, i)| (i, Refusal::PendingTotal))
        } else {
            None
        };
        if let Some((idx, why)) = evict {
            let message = match why {
                Refusal::PendingPerAddress => format!(
                    "evicted: {same} connections from {ip} awaiting HELLO (limit {})",
                    self.cfg.max_pending_per_addr
                ),
                _ => format!(
                    "evicted: {total} connections awaiting HELLO (limit {})",
                    self.cfg.max_pending
                ),
            };
            self.refuse_pending(idx, why, message);
        }
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

    fn read(&mut self, idx: usize) {
        let Some(client) = self.clients[idx].as_mut() else {
            return;
        };
        let users = &mut self.users;
        let scratch = &mut self.scratch;
        let pending = &mut self.pending;
        let cfg = &self.cfg;
        let Client {
            conn,
            phase,
            input,
            agreed,
            refused_user,
            ..
        } = client;
        let audio_allocs = &mut self.audio_allocs;
        let error_log = &mut self.logs.error;
        let end = conn.read_frames(|link, frame| match phase {
            Phase::AwaitHello { .. } => on_hello(link, &frame, cfg, idx, pending, refused_user),
            Phase::Joined { user, .. } => {
                let audio = frame.kind() == Some(Kind::Audio);
                let ((), n) = count_allocations(|| {
                    let to_mix = input.as_mut().zip(agreed.as_ref());
                    on_frame(link, &frame, users.at(*user), to_mix, scratch, error_log)
                });
                if audio {
                    *audio_allocs += n;
                }
                true
            }
        });
        match end {
            ReadEnd::Drained | ReadEnd::Protocol(_) => {}
            // HELLO read: join now, then read what the client sent after it.
            ReadEnd::Paused => {
                self.run_pending();
                self.read(idx);
            }
            ReadEnd::Eof => self.close(idx, "closed by the client"),
            ReadEnd::Failed(why) => self.close(idx, &why),
        }
    }

    fn run_pending(&mut self) {
        for (idx, hello) in std::mem::take(&mut self.pending) {
            self.join(idx, *hello);
            // Joins and leaves are announced at the next tick (≤ 100 ms), all at once: a
            // storm of N joins then costs one METADATA per client, not N.
            self.metadata_due = true;
        }
    }

    fn join(&mut self, idx: usize, hello: Hello) {
        let Some(Some(client)) = self.clients.get(idx) else {
            return;
        };
        if client.conn.link.is_closing() {
            return;
        }
        // Another live connection of this user is taken over (a peer back after a
        // network blip needs that), said in the log and to both connections.
        let mut replaced = None;
        if let Some(u) = self.users.find(&hello.user) {
            if self.users.at(u).connected {
                let old = self.clients.iter().position(|c| {
                    matches!(c, Some(Client { phase: Phase::Joined { user, .. }, .. }) if *user == u)
                });
                if let Some(old) = old {
                    let peer = |i: usize| {
                        self.clients[i]
                            .as_ref()
                            .map_or(String::new(), |c| c.conn.link.peer.clone())
                    };
                    let (addr, old_addr) = (peer(idx), peer(old));
                    self.logs.leave.log(
                        now_ns(),
                        LOG,
                        format_args!(
                            "user {} taken over by {addr}; the previous connection from {old_addr} closed",
                            hello.user
                        ),
                    );
                    self.leave_as(old, &format!("taken over by {addr}"), false);
                    if let Some(c) = self.clients[old].as_mut() {
                        c.conn.link.refuse(
                            ErrorCode::Replaced,
                            format!(
                                "user {} taken over by a new connection from {addr}; this connection is closed",
                                hello.user
                            ),
                        );
                    }
                    self.flush(old);
                    replaced = Some(old_addr);
                }
            }
        }
        let joined = self.users.connected();
        let slot = if joined >= self.cfg.max_clients {
            None
        } else {
            self.free_slots.pop()
        };
        let Some(slot) = slot else {
            self.rejected += 1;
            self.refuse(
                idx,
                ErrorCode::HubFull,
                format!("hub full: {joined} of {} clients", self.cfg.max_clients),
            );
            return;
        };
        let audio = hello.audio().ok().flatten();
        let mix = match hello.role {
            Role::Source => None,
            Role::Monitor => Some(hello.mix.unwrap_or(Mix::Full)),
            Role::Peer => Some(hello.mix.unwrap_or(self.cfg.default_mix)),
        };
        let built = self.build_slot(audio, mix);
        let (slot_box, input, mix_rx, stats, levels) = match built {
            Ok(x) => x,
            Err(why) => {
                self.free_slots.push(slot);
                self.refuse(idx, ErrorCode::Internal, why);
                return;
            }
        };
        if self
            .links
            .commands
            .push(Command::Join(slot, slot_box))
            .is_err()
        {
            self.free_slots.push(slot);
            self.refuse(idx, ErrorCode::Internal, "mixer command queue full");
            return;
        }
        let format = audio.map_or(AudioFormat::F32, |a| a.format);
        let welcome = Welcome {
            proto: PROTO.into(),
            session: self.cfg.session.clone(),
            hub: concat!("izyrt/", env!("CARGO_PKG_VERSION")).into(),
            sample_rate: self.cfg.rate,
            channels: self.cfg.channels,
            format: format.name().into(),
            frames_per_packet: self.cfg.period,
            mix: mix.unwrap_or(Mix::Minus),
            replaced,
        };
        let u = self.users.get_or_add(&hello.user);
        let Some(Some(client)) = self.clients.get_mut(idx) else {
            return;
        };
        client.conn.link.send_json(Kind::Welcome, &welcome);
        client.phase = Phase::Joined { user: u, slot };
        client.input = input;
        client.mix = mix_rx;
        client.format = format;
        client.agreed = audio.map(|a| Agreed {
            rate: a.sample_rate,
            channels: a.channels,
            format: a.format,
            frames_per_packet: a.frames_per_packet,
            agreed_in: "HELLO",
        });
        let user = self.users.at(u);
        user.connected = true;
        user.role = hello.role;
        user.audio = audio;
        user.mix = mix;
        user.qos_enabled = hello.enable_qos_metrics;
        user.software = hello.software;
        user.addr = client.conn.link.peer.clone();
        user.levels = Some(levels);
        user.joined(stats, now_ns(), unix_ms());
        user.packets_in = 0;
        user.seq.clear();
        user.non_finite_samples = 0;
        user.qos.clear();
        self.logs.join.log(
            now_ns(),
            LOG,
            format_args!(
                "{} joined as {} from {} (slot {slot}, hears {})",
                user.name,
                user.role.name(),
                user.addr,
                mix.map_or("nothing", Mix::name)
            ),
        );
        self.flush(idx);
    }

    #[allow(clippy::type_complexity)]
    fn build_slot(
        &self,
        audio: Option<AudioParams>,
        mix: Option<Mix>,
    ) -> Result<
        (
            Box<Slot>,
            Option<PipeTx>,
            Option<PipeRx>,
            Arc<SlotStats>,
            Arc<crate::dsp::meter::MeterLevels>,
        ),
        String,
    > {
        let ch = self.cfg.channels;
        let period = self.cfg.period;
        let meter = Meter::new(self.cfg.meter).map_err(|e| e.to_string())?;
        let levels = meter.levels();
        let stats = Arc::new(SlotStats::default());
        let (input, tx) = match audio {
            Some(a) => {
                let packet = a.frames_per_packet.max(period);
                let jc = jitter_config(ch, period, packet, self.cfg.rate)
                    .capped(self.cfg.jitter_max_ms, self.cfg.rate)
                    .floored(self.cfg.jitter_min_ms, self.cfg.rate);
                let jitter = JitterBuffer::new(jc).map_err(|e| e.to_string())?;
                stats
                    .max_frames
                    .store(u64::from(jc.max_target_frames), Ordering::Relaxed);
                let (tx, rx) = pipe(ch, packet * 16, 64);
                let conceal = Conceal::new(ch, self.cfg.rate).map_err(|e| e.to_string())?;
                let input = Input::Pipe {
                    rx,
                    jitter,
                    conceal,
                    drift: DriftMeter::new(self.cfg.rate),
                };
                (input, Some(tx))
            }
            None => (Input::None, None),
        };
        let (output, mix_rx) = match mix {
            Some(_) => {
                let (tx, rx) = pipe(ch, period * 32, 32);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let slot = Box::new(Slot {
            input,
            output,
            mode: match mix {
                Some(Mix::Full) => MixMode::Full,
                Some(Mix::Loopback) => MixMode::Loopback,
                _ => MixMode::Minus,
            },
            meter,
            stats: Arc::clone(&stats),
        });
        Ok((slot, tx, mix_rx, stats, levels))
    }

    fn refuse(&mut self, idx: usize, code: ErrorCode, why: impl Into<String>) {
        if let Some(Some(c)) = self.clients.get_mut(idx) {
            c.conn.link.refuse(code, why);
        }
        self.flush(idx);
    }

    /// Takes a joined client out of the mix (its connection may linger to flush).
    fn leave(&mut self, idx: usize, why: &str) {
        self.leave_as(idx, why, true);
    }

    /// As [`Self::leave`], writing the "left" log line only when `log`.
    fn leave_as(&mut self, idx: usize, why: &str, log: bool) {
        let Some(Some(client)) = self.clients.get_mut(idx) else {
            return;
        };
        let Phase::Joined { user, slot } = client.phase else {
            return;
        };
        client.phase = Phase::AwaitHello { since_ns: 0 };
        client.input = None;
        client.mix = None;
        self.leaving.push(slot);
        self.send_leaves();
        let u = self.users.at(user);
        u.left(why, now_ns(), unix_ms());
        if log {
            self.logs
                .leave
                .log(now_ns(), LOG, format_args!("{} left ({why})", u.name));
        }
        self.metadata_due = true;
    }

    fn close(&mut self, idx: usize, why: &str) {
        self.leave(idx, why);
        if let Some(client) = self.clients[idx].take() {
            let _ = self.ev.deregister(client.conn.link.sock.as_fd());
        }
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

    fn send_mixes(&mut self) {
        let rate = self.cfg.rate;
        let channels = self.cfg.channels;
        for idx in 0..self.clients.len() {
            let Some(client) = self.clients[idx].as_mut() else {
                continue;
            };
            let Some(mix) = client.mix.as_mut() else {
                continue;
            };
            let Phase::Joined { user, .. } = client.phase else {
                continue;
            };
            let link = &mut client.conn.link;
            let format = client.format;
            let mut sent = 0;
            let ((), n) = count_allocations(|| {
                while mix.pop(|m: PacketMeta, a, b| {
                    if link.send_audio(rate, channels, format, &m, a, b) {
                        sent += 1;
                    }
                }) {}
            });
            self.audio_allocs += n;
            let pipe_drops = mix.dropped();
            let queue_drops = link.wq.dropped_audio();
            let u = self.users.at(user);
            u.packets_out += sent;
            u.dropped_out = pipe_drops + queue_drops;
            self.flush(idx);
        }
        while let Ok(slot) = self.links.garbage.pop() {
            drop(slot);
        }
        self.send_leaves();
    }

    /// Hands the mixer the slots to empty; a slot is free for a new client once its Leave
    /// is queued (commands are in order). A full command queue (the mixer has not run for
    /// a while) keeps the rest for the next period rather than stalling this thread.
    fn send_leaves(&mut self) {
        while let Some(&slot) = self.leaving.last() {
            if self.links.commands.push(Command::Leave(slot)).is_err() {
                return;
            }
            self.leaving.pop();
            self.free_slots.push(slot);
        }
    }

    fn housekeeping(&mut self) {
        self.send_leaves();
        self.logs.flush(now_ns());
        if std::mem::take(&mut self.metadata_due) {
            self.report();
        }
        if !std::mem::take(&mut self.mixed_since_tick) {
            // No mix went out since the last tick (nobody listens): no period to spread
            // METADATA over, and no audio to keep waiting.
            self.send_metadata(usize::MAX);
        }
        let now = now_ns();
        for idx in 0..self.clients.len() {
            let Some(client) = self.clients[idx].as_mut() else {
                continue;
            };
            let link = &mut client.conn.link;
            if let Some(since) = client.closing_since {
                if now.saturating_sub(since) > LINGER_NS {
                    self.close(idx, "did not take its last frames");
                }
                continue;
            }
            match client.phase {
                Phase::AwaitHello { since_ns }
                    if now.saturating_sub(since_ns) > self.cfg.hello_timeout_ns =>
                {
                    link.refuse(
                        ErrorCode::HelloTimeout,
                        format!(
                            "no HELLO within {} ms",
                            self.cfg.hello_timeout_ns / 1_000_000
                        ),
                    );
                }
                Phase::Joined { user, .. } => {
                    if now.saturating_sub(link.last_rx_ns) > self.cfg.liveness_ns {
                        self.close(idx, "nothing received for the liveness time");
                        continue;
                    }
                    self.users.at(user).rtt_ns = link.rtt_ns;
                }
                _ => {}
            }
            self.flush(idx);
        }
    }

    /// Hands the publisher thread a copy of what the JSON needs (the copy is the only
    /// part done here: see [`super::publisher`]).
    fn report(&mut self) {
        let now = now_ns();
        self.users.sample_misses(now);
        let report = Report {
            users: self.users.clone(),
            now_ns: now,
            refused: self.rejected,
            refusals: self.refusals,
            audio_allocs: self.audio_allocs,
        };
        if !self.publisher.submit(report) && self.publisher.has_ended() && !self.publisher_ended {
            self.publisher_ended = true;
            self.logs.error.log(
                now_ns(),
                LOG,
                format_args!("the publisher thread ended: METADATA and metrics are frozen"),
            );
        }
    }

    /// Sends the METADATA frame being handed out to up to `max` more clients.
    fn send_metadata(&mut self, max: usize) {
        for _ in 0..max {
            let Some(idx) = self.fanout.next_client() else {
                return;
            };
            let Some(client) = self.clients.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if matches!(client.phase, Phase::Joined { .. }) && !client.conn.link.is_closing() {
                client.conn.link.send_shared(self.fanout.frame());
                self.flush(idx);
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

fn jitter_config(channels: u16, period: u32, packet: u32, rate: u32) -> JitterConfig {
    // Start at one packet (at least a period); grow on misses up to 16 packets; allow two
    // packets of burst before trimming; shrink after 5 s without a miss.
    let target = packet.div_ceil(period) * period;
    JitterConfig {
        channels,
        period_frames: period,
        capacity_frames: target * 16 + packet * 2 + period * 2,
        initial_target_frames: target,
        min_target_frames: period,
        max_target_frames: target * 16,
        slack_frames: (packet * 2).max(period * 2),
        steady_pulls: (rate * 5 / period).max(1),
        drift_pulls: (rate / period).max(1),
        margin_ns: half_period_ns(period, rate),
    }
}

/// The first frame of a connection; returns `false` (pause reading) once HELLO is accepted.
fn on_hello(
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

/// A frame from a joined client; `to_mix` is its input pipe and the stream its HELLO
/// announced (a monitor has neither: its AUDIO goes nowhere).
fn on_frame(
    link: &mut Link,
    frame: &Frame<'_>,
    user: &mut super::users::User,
    to_mix: Option<(&mut PipeTx, &Agreed)>,
    scratch: &mut [f32],
    error_log: &mut LogLimit,
) {
    match frame.kind() {
        Some(Kind::Audio) => {
            let Ok(view) = frame.audio() else { return };
            let Some((input, agreed)) = to_mix else {
                return;
            };
            if let Some(t) = link.take_audio(&view, agreed, scratch, input) {
                user.non_finite_samples += t.zeroed;
                user.on_audio(
                    frame.header.track,
                    frame.header.seq,
                    t.header,
                    link.last_rx_ns,
                );
                user.rtt_ns = link.rtt_ns;
            }
        }
        Some(Kind::Qos) => match check_json_object(frame.payload) {
            Ok(()) => {
                user.qos.clear();
                user.qos.extend_from_slice(frame.payload);
                user.qos_reports += 1;
            }
            Err(e) => link.send_error(&e),
        },
        Some(Kind::Metadata) => {
            if let Err(e) = check_json_object(frame.payload) {
                link.send_error(&e);
            }
        }
        Some(Kind::Ping | Kind::Pong) => link.on_ping_pong(frame),
        Some(Kind::Error) => {
            let msg = ErrorMsg::parse(frame.payload)
                .map_or_else(|e| e.to_string(), |m| format!("{}: {}", m.code, m.message));
            error_log.log(
                now_ns(),
                LOG,
                format_args!("{} sent ERROR {msg}", user.name),
            );
            link.set_broken();
        }
        Some(Kind::Bye) => link.set_broken(),
        // HELLO again, WELCOME, unknown kinds: skipped.
        _ => {}
    }
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
