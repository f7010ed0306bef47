//! Reading the hub's frames, on the client's net thread: WELCOME (checked against what
//! this client plays, then the session starts), AUDIO (into the playback thread's mix
//! pipe, under the allocation counter, with a QOS report after each frame when asked),
//! METADATA, PING/PONG, and ERROR or BYE, which end the connection (for good when the
//! ERROR is one another attempt cannot fix).

use super::qos::send_qos;
use super::{BACKOFF_MIN_NS, ClientNet, Phase, log_prefix};
use crate::client::status::{ClientView, LinkState};
use crate::net::conn::{Agreed, ReadEnd};
use crate::rt::alloc_count::count_allocations;
use crate::rt::clock::now_ns;
use crate::rt::pipe::PipeTx;
use crate::wire::{AudioFormat, ErrorCode, ErrorMsg, Frame, Kind, Welcome, check_json_object};

/// Where a METADATA says `user`'s input stands at the hub: its entry's
/// `jitterExcessFrames` in `mixeradminSharedState` (`None` when absent: a hub that does
/// not say, or a user that sends no audio).
///
/// Runs on: the net thread, per METADATA (on the frame as parsed once for the view).
fn input_excess(metadata: &serde_json::Value, user: &str) -> Option<f64> {
    metadata
        .get("mixeradminSharedState")?
        .get(user)?
        .get("jitterExcessFrames")?
        .as_f64()
}

impl ClientNet {
    pub(super) fn read(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut welcome: Option<Welcome> = None;
        let mut error: Option<(String, String)> = None;
        let mut bye = false;
        let view = &mut self.view;
        let id = &self.id;
        let scratch = &mut self.scratch;
        let mix = &mut self.links.mix;
        let agreed = self.agreed.as_ref();
        let running = matches!(self.phase, Phase::Running);
        let end = conn.read_frames(|link, frame| {
            match frame.kind() {
                Some(Kind::Welcome) if !running && welcome.is_none() => {
                    match Welcome::parse(frame.payload) {
                        Ok(w) => welcome = Some(w),
                        Err(e) => link.send_error(&e),
                    }
                    return false;
                }
                Some(Kind::Audio) if running => {
                    let Some(agreed) = agreed else { return true };
                    let ((), n) = count_allocations(|| {
                        on_audio(link, &frame, view, agreed, scratch, mix);
                        if id.qos && id.qos_interval_ms == 0 {
                            send_qos(link, view);
                        }
                    });
                    view.audio_allocs += n;
                }
                Some(Kind::Metadata) => match check_json_object(frame.payload) {
                    Ok(()) => {
                        view.metadata = serde_json::from_slice(frame.payload)
                            .unwrap_or(serde_json::Value::Null);
                        view.metadata_frames += 1;
                        if let Some(excess) = input_excess(&view.metadata, &id.user) {
                            view.speaker.hub_input.report(excess, now_ns());
                        }
                    }
                    Err(e) => link.send_error(&e),
                },
                Some(Kind::Ping | Kind::Pong) => link.on_ping_pong(&frame),
                Some(Kind::Error) => {
                    error = Some(match ErrorMsg::parse(frame.payload) {
                        Ok(m) => (m.code, m.message),
                        Err(e) => ("bad_json".into(), e.to_string()),
                    });
                    link.set_broken();
                    return false;
                }
                Some(Kind::Bye) => {
                    bye = true;
                    link.set_broken();
                    return false;
                }
                _ => {}
            }
            true
        });
        self.view.rtt_ns = conn.link.rtt_ns;
        if let Some(w) = welcome {
            self.on_welcome(w);
            return self.read();
        }
        if let Some((code, message)) = error {
            let permanent = !matches!(
                ErrorCode::ALL.iter().find(|c| c.as_str() == code),
                Some(ErrorCode::HubFull | ErrorCode::Internal | ErrorCode::HelloTimeout) | None
            );
            // A permanent refusal ends the client: the main thread says it once, with
            // what to do; a transient one is logged here and retried.
            if permanent {
                self.fatal = Some(self.refused(&code, &message));
            } else {
                self.log_error.log(
                    now_ns(),
                    log_prefix(self.id.role),
                    format_args!("hub sent ERROR {code}: {message}"),
                );
            }
            return self.lost(&format!("ERROR {code}: {message}"));
        }
        if bye {
            return self.lost("the hub said BYE");
        }
        match end {
            ReadEnd::Drained | ReadEnd::Paused => {}
            ReadEnd::Protocol(e) => {
                // The ERROR is queued: send it before closing, as the spec asks.
                if let Some(c) = self.conn.as_mut() {
                    c.link.flush(&self.ev);
                }
                self.lost(&format!("protocol error from the hub: {e}"))
            }
            ReadEnd::Eof => self.lost("the hub closed the connection"),
            ReadEnd::Failed(why) => self.lost(&why),
        }
    }

    fn on_welcome(&mut self, w: Welcome) {
        let ok = w.sample_rate == self.id.rate && w.channels == self.id.channels;
        if !ok {
            let msg = format!(
                "the hub sends {} Hz, {} channels; this client plays {} Hz, {} channels",
                w.sample_rate, w.channels, self.id.rate, self.id.channels
            );
            self.fatal = Some(self.refused("format_unsupported", &msg));
            if let Some(c) = self.conn.as_mut() {
                c.link.refuse(ErrorCode::FormatUnsupported, msg);
            }
            return;
        }
        self.agreed = Some(Agreed {
            rate: w.sample_rate,
            channels: w.channels,
            format: AudioFormat::from_name(&w.format).unwrap_or(AudioFormat::F32),
            frames_per_packet: w.frames_per_packet,
            agreed_in: "WELCOME",
        });
        self.log_joined.log(
            now_ns(),
            log_prefix(self.id.role),
            format_args!(
                "joined the hub at {} as {} (session {}, hears {})",
                self.id.hub,
                self.id.user,
                w.session,
                w.mix.name()
            ),
        );
        if let Some(old) = &w.replaced {
            self.log_joined.log(
                now_ns(),
                log_prefix(self.id.role),
                format_args!(
                    "took over user {} from {old}: the hub closed that connection",
                    self.id.user
                ),
            );
        }
        self.view.reset_tracks();
        self.view.state = LinkState::Running;
        self.view.sessions += 1;
        self.view.welcome = Some(w);
        self.view.last_error = None;
        self.view.connect_error = None;
        self.phase = Phase::Running;
        self.backoff_ns = BACKOFF_MIN_NS;
        // Capture queued while connecting is stale.
        if let Some(c) = self.links.capture.as_mut() {
            c.clear();
        }
        self.publish();
    }
}

fn on_audio(
    link: &mut crate::net::conn::Link,
    frame: &Frame<'_>,
    view: &mut ClientView,
    agreed: &Agreed,
    scratch: &mut [f32],
    mix: &mut PipeTx,
) {
    let Ok(audio) = frame.audio() else { return };
    let Some(t) = link.take_audio(&audio, frame.header.flags, agreed, scratch, mix) else {
        return;
    };
    if !t.queued {
        view.mix_dropped += 1;
    }
    view.non_finite_samples += t.zeroed;
    view.on_audio(
        frame.header.track,
        frame.header.seq,
        t.header,
        link.last_rx_ns,
    );
}

#[cfg(test)]
mod tests {
    use super::input_excess;

    fn excess(m: &[u8], user: &str) -> Option<f64> {
        input_excess(&serde_json::from_slice(m).unwrap(), user)
    }

    #[test]
    fn a_metadata_says_where_this_users_input_stands() {
        let m = br#"{"mixeradminSharedState":{"alice":{"jitterExcessFrames":-12.5},
            "bob":{"jitterExcessFrames":40}},"aggregatorStatus":"running"}"#;
        assert_eq!(excess(m, "alice"), Some(-12.5));
        assert_eq!(excess(m, "bob"), Some(40.0));
        assert_eq!(excess(m, "carol"), None, "not in it");
        let old = br#"{"mixeradminSharedState":{"alice":{"jitterDepthFrames":64}}}"#;
        assert_eq!(excess(old, "alice"), None, "a hub that does not say");
        let null = br#"{"mixeradminSharedState":{"alice":{"jitterExcessFrames":null}}}"#;
        assert_eq!(excess(null, "alice"), None, "no audio");
    }
}
