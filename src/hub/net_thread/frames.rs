//! Reading a client's frames, on the hub's net thread: HELLO while one is awaited, then
//! AUDIO (into the client's input pipe, under the allocation counter), QOS, METADATA,
//! PING/PONG, ERROR and BYE.

use super::admit::on_hello;
use super::{Client, HubNet, LOG, Phase};
use crate::hub::users::User;
use crate::net::conn::{Agreed, Link, ReadEnd};
use crate::net::log_limit::LogLimit;
use crate::rt::alloc_count::count_allocations;
use crate::rt::clock::now_ns;
use crate::rt::pipe::PipeTx;
use crate::wire::{ErrorMsg, Frame, Kind, check_json_object};

impl HubNet {
    pub(super) fn read(&mut self, idx: usize) {
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
}

/// A frame from a joined client; `to_mix` is its input pipe and the stream its HELLO
/// announced (a monitor has neither: its AUDIO goes nowhere).
fn on_frame(
    link: &mut Link,
    frame: &Frame<'_>,
    user: &mut User,
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
            if let Some(t) = link.take_audio(&view, frame.header.flags, agreed, scratch, input) {
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
