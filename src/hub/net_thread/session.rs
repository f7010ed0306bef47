//! A client's time in the mix, on the hub's net thread: joining once its HELLO is
//! accepted (taking over a live connection of the same user, building its mixer slot and
//! jitter buffer, WELCOME), leaving and closing. A slot is built here and handed to the
//! mixer thread whole, and comes back through the garbage queue (see
//! [`crate::hub::mixer_thread`]), so the RT thread never allocates or frees.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Client, HubNet, LOG, Phase};
use crate::dsp::jitter::JitterBuffer;
use crate::dsp::meter::Meter;
use crate::dsp::mixer::MixMode;
use crate::hub::mixer_thread::{Command, Input, Slot, SlotStats, input_jitter_config};
use crate::net::conn::Agreed;
use crate::rt::clock::{now_ns, unix_ms};
use crate::rt::pipe::{PipeRx, PipeTx, pipe};
use crate::wire::{AudioFormat, AudioParams, ErrorCode, Hello, Kind, Mix, PROTO, Role, Welcome};

impl HubNet {
    pub(super) fn run_pending(&mut self) {
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
                let jc = input_jitter_config(ch, period, packet, self.cfg.rate)
                    .capped(self.cfg.jitter_max_ms, self.cfg.rate)
                    .floored(self.cfg.jitter_min_ms, self.cfg.rate);
                let jitter = JitterBuffer::new(jc).map_err(|e| e.to_string())?;
                stats
                    .max_frames
                    .store(u64::from(jc.max_target_frames), Ordering::Relaxed);
                let (tx, rx) = pipe(ch, packet * 16, 64);
                let input = Input::pipe(rx, jitter, self.cfg.rate).map_err(|e| e.to_string())?;
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
    pub(super) fn leave(&mut self, idx: usize, why: &str) {
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

    pub(super) fn close(&mut self, idx: usize, why: &str) {
        self.leave(idx, why);
        if let Some(client) = self.clients[idx].take() {
            let _ = self.ev.deregister(client.conn.link.sock.as_fd());
        }
    }

    /// Hands the mixer the slots to empty; a slot is free for a new client once its Leave
    /// is queued (commands are in order). A full command queue (the mixer has not run for
    /// a while) keeps the rest for the next period rather than stalling this thread.
    pub(super) fn send_leaves(&mut self) {
        while let Some(&slot) = self.leaving.last() {
            if self.links.commands.push(Command::Leave(slot)).is_err() {
                return;
            }
            self.leaving.pop();
            self.free_slots.push(slot);
        }
    }
}
