//! What the hub's net thread does on the mixer's signal and on its timers: every
//! listener's mix out (each period), the METADATA frame handed out a few clients per
//! period, the 100 ms housekeeping (HELLO timeouts, liveness, lingering closes, log
//! flushes) and the 500 ms report to the publisher thread.

use super::{HubNet, LINGER_NS, LOG, Phase};
use crate::hub::publisher::Report;
use crate::rt::alloc_count::count_allocations;
use crate::rt::clock::now_ns;
use crate::rt::pipe::PacketMeta;
use crate::wire::ErrorCode;

impl HubNet {
    pub(super) fn send_mixes(&mut self) {
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

    pub(super) fn housekeeping(&mut self) {
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
    /// part done here: see [`crate::hub::publisher`]).
    pub(super) fn report(&mut self) {
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
    pub(super) fn send_metadata(&mut self, max: usize) {
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
}
