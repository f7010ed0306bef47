//! The live status of a running role, one path for dev mode, peer, monitor and hub (main
//! thread, reading the snapshot the role publishes; never an RT thread).
//!
//! Design: every role already publishes its `aggregatedStatesSnapshot` for getMetrics; the
//! main thread, which polls every 100 ms while it waits for a signal, hands the latest one
//! to [`StatusLine::update`]. [`StatusLine::lines`] decides what to say and is pure (the
//! clock is passed in), so tests drive it with fake snapshots:
//!
//! - on a terminal, one line redrawn in place four times a second
//!   ([`Out::Redraw`]);
//! - off a terminal (a pipe, a file, journald), a line every 10 s and at once on every
//!   change of state (connecting → running → reconnecting; a hub's client count or mixer
//!   state), each starting with its RFC 3339 UTC time ([`crate::net::stamp`]);
//! - on both, events as lines of their own ([`Out::Line`]): a hub that cannot be reached
//!   is said at once and then at most every 10 s while it stays unreachable.
//!
//! A client's state: `running` while the mix arrives; `connecting` before the first
//! session; `reconnecting` after one was lost; `joined` between WELCOME and the first mix
//! packet, `stalled` when a live connection's mix stops. A hub's line: joined clients,
//! jitter-buffer misses of the last 10 s as the hub counts them
//! (`sessions.USER.hubMisses10s`, what the dashboard shows) and the user with the most.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::net::stamp::{LinePrefix, stderr_is_terminal};

/// How often a line is written off a terminal when nothing changes.
pub const EVERY: Duration = Duration::from_secs(10);
/// How often the terminal line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Redraw the terminal's status line with this text.
    Redraw(String),
    /// A line of its own (stamped off a terminal).
    Line(String),
}

#[derive(Debug)]
enum Who {
    /// A peer, monitor or dev mode: its user (its key in `connections`) and what it
    /// calls the hub in messages.
    Client {
        label: String,
        user: String,
        hub: String,
    },
    /// A hub.
    Hub,
}

/// The status of one role. See the module docs.
#[derive(Debug)]
pub struct StatusLine {
    who: Who,
    tty: bool,
    drawn: bool,
    last_out: Option<Instant>,
    last_state: Option<String>,
    unreachable_said: Option<Instant>,
}

impl StatusLine {
    /// The status of a client known to the hub as `user`; `label` starts its lines
    /// (`peer alice`, `dev`); `hub` is how messages name the hub.
    pub fn client(label: &str, user: &str, hub: &str, tty: bool) -> StatusLine {
        StatusLine::new(
            Who::Client {
                label: label.into(),
                user: user.into(),
                hub: hub.into(),
            },
            tty,
        )
    }

    /// The status of a hub.
    pub fn hub(tty: bool) -> StatusLine {
        StatusLine::new(Who::Hub, tty)
    }

    fn new(who: Who, tty: bool) -> StatusLine {
        StatusLine {
            who,
            tty,
            drawn: false,
            last_out: None,
            last_state: None,
            unreachable_said: None,
        }
    }

    /// Whether stderr is a terminal (for the constructors).
    pub fn terminal() -> bool {
        stderr_is_terminal()
    }

    /// What to write for the snapshot `snap` at `now` (nothing when nothing is due).
    pub fn lines(&mut self, snap: &Value, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        let (state, text) = match &mut self.who {
            Who::Client { label, user, hub } => {
                let conn = &snap["connections"][user.as_str()];
                let state = client_state(snap, conn);
                match conn["connectError"].as_str() {
                    Some(why) if state != "running" => {
                        if self
                            .unreachable_said
                            .is_none_or(|t| now.duration_since(t) >= EVERY)
                        {
                            self.unreachable_said = Some(now);
                            out.push(Out::Line(format!(
                                "cannot reach hub {hub}: {why}; retrying"
                            )));
                        }
                    }
                    _ => self.unreachable_said = None,
                }
                let text = format!("{label}: {state} · {}", client_figures(snap, conn));
                (state.to_owned(), text)
            }
            Who::Hub => hub_summary(snap),
        };
        let changed = self.last_state.as_deref() != Some(state.as_str());
        if self.tty {
            if changed
                || self
                    .last_out
                    .is_none_or(|t| now.duration_since(t) >= REDRAW)
            {
                self.last_out = Some(now);
                out.push(Out::Redraw(text));
            }
        } else if changed || self.last_out.is_none_or(|t| now.duration_since(t) >= EVERY) {
            self.last_out = Some(now);
            out.push(Out::Line(text));
        }
        self.last_state = Some(state);
        out
    }

    /// Writes what is due for `snap` on stderr.
    pub fn update(&mut self, snap: &Value) {
        for o in self.lines(snap, Instant::now()) {
            self.write(&o);
        }
    }

    fn write(&mut self, o: &Out) {
        let mut err = std::io::stderr().lock();
        let _ = match (o, self.tty) {
            (Out::Redraw(text), _) => {
                self.drawn = true;
                write!(err, "\r\x1b[2K{text}")
            }
            (Out::Line(text), true) => {
                let r = writeln!(err, "\r\x1b[2K{text}");
                self.drawn = false;
                r
            }
            (Out::Line(text), false) => writeln!(err, "{}{text}", LinePrefix::now()),
        };
        let _ = err.flush();
    }

    /// Ends the terminal's status line (before the role's last lines).
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// `running`, `joined`, `stalled`, `connecting` or `reconnecting`.
fn client_state(snap: &Value, conn: &Value) -> &'static str {
    if snap["aggregatorStatus"] == "running" {
        "running"
    } else if conn["connected"] == true {
        if conn["packetsIn"].as_u64().unwrap_or(0) == 0 {
            "joined"
        } else {
            "stalled"
        }
    } else if conn["sessions"].as_u64().unwrap_or(0) == 0 {
        "connecting"
    } else {
        "reconnecting"
    }
}

/// `latency 2.7 ms · buffer 128 smp · misses 0 · mic -12.0 dBFS · speaker -12.0 dBFS ·
/// rtt 0.20 ms · mic green` (a monitor has no mic).
fn client_figures(s: &Value, conn: &Value) -> String {
    let db = |v: &Value| match v.as_f64() {
        Some(x) if x > -150.0 => format!("{x:.1} dBFS"),
        _ => "silent".into(),
    };
    let rtt = conn["rttMs"]
        .as_f64()
        .map_or("-".into(), |r| format!("{r:.2} ms"));
    let mut line = format!(
        "latency {:.1} ms · buffer {} smp · misses {}",
        s["speakerScriptProcessorLatencyMS"]
            .as_f64()
            .unwrap_or(f64::NAN),
        s["currentSpeakerBufferDepthInFloat32Samples"],
        s["speakerScriptProcessorIncomingBufferMisses"],
    );
    let has_mic = !s["levels"]["micPeakDbfs"].is_null() || s["role"] == "dev";
    if has_mic {
        line.push_str(&format!(" · mic {}", db(&s["levels"]["micPeakDbfs"])));
    }
    line.push_str(&format!(
        " · speaker {} · rtt {rtt}",
        db(&s["levels"]["speakerPeakDbfs"])
    ));
    if has_mic {
        line.push_str(&format!(
            " · mic {}",
            s["micStatus"].as_str().unwrap_or("?")
        ));
    }
    line
}

/// The hub's state key (clients and mixer state) and its line.
/// The hub's line: its clients, and the misses of the last 10 s per connected user as the
/// hub itself counts them (`sessions.USER.hubMisses10s`, what the dashboard and
/// Prometheus show).
fn hub_summary(snap: &Value) -> (String, String) {
    let clients = snap["hub"]["clients"].as_u64().unwrap_or(0);
    let mixer = snap["aggregatorStatus"].as_str().unwrap_or("?");
    let mut per_user: Vec<(&String, u64)> = snap["sessions"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, u)| u["connected"] == true)
                .map(|(u, e)| (u, e["hubMisses10s"].as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    per_user.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let total: u64 = per_user.iter().map(|(_, n)| n).sum();
    let worst = match per_user.first() {
        Some((u, n)) if *n > 0 => format!("{u} ({n})"),
        _ => "-".into(),
    };
    let plural = if clients == 1 { "client" } else { "clients" };
    let text =
        format!("hub: {clients} {plural} · misses {total} in 10 s · worst {worst} · mixer {mixer}");
    (format!("{clients} {mixer}"), text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn peer_snap(status: &str, connected: bool, sessions: u64, err: Option<&str>) -> Value {
        json!({
            "role": "peer",
            "aggregatorStatus": status,
            "micStatus": "green",
            "speakerScriptProcessorLatencyMS": 2.66,
            "currentSpeakerBufferDepthInFloat32Samples": 128,
            "speakerScriptProcessorIncomingBufferMisses": 0,
            "levels": {"micPeakDbfs": -12.0, "speakerPeakDbfs": null},
            "connections": {"alice": {
                "connected": connected, "sessions": sessions, "packetsIn": 5,
                "connectError": err, "rttMs": 0.2,
            }},
        })
    }

    #[test]
    fn off_a_terminal_a_line_per_change_and_every_10_s() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        let mut s = StatusLine::client("peer alice", "alice", "studio:7100", false);
        let refused = peer_snap("stopped", false, 0, Some("connection refused"));
        let out = s.lines(&refused, at(0));
        assert_eq!(
            out[0],
            Out::Line("cannot reach hub studio:7100: connection refused; retrying".into())
        );
        assert!(
            matches!(&out[1], Out::Line(l) if l.starts_with("peer alice: connecting · latency 2.7 ms")),
            "{out:?}"
        );
        // Nothing new for 10 s: silence, then both lines again.
        assert!(s.lines(&refused, at(9_900)).is_empty());
        assert_eq!(s.lines(&refused, at(10_000)).len(), 2);
        let running = peer_snap("running", true, 1, None);
        let out = s.lines(&running, at(10_100));
        assert!(
            matches!(&out[..], [Out::Line(l)] if l.contains(": running ·") && l.contains("rtt 0.20 ms · mic green")),
            "{out:?}"
        );
        assert!(s.lines(&running, at(15_000)).is_empty());
        let lost = peer_snap("stopped", false, 1, Some("connection refused"));
        let out = s.lines(&lost, at(15_100));
        assert_eq!(out.len(), 2, "said at once after running: {out:?}");
        assert!(matches!(&out[1], Out::Line(l) if l.contains(": reconnecting ·")));
    }

    #[test]
    fn on_a_terminal_the_line_is_redrawn() {
        let t0 = Instant::now();
        let mut s = StatusLine::client("dev", "alice", "127.0.0.1:7100", true);
        let running = peer_snap("running", true, 1, None);
        assert!(matches!(&s.lines(&running, t0)[..], [Out::Redraw(_)]));
        assert!(
            s.lines(&running, t0 + Duration::from_millis(100))
                .is_empty()
        );
        assert!(matches!(
            &s.lines(&running, t0 + Duration::from_millis(300))[..],
            [Out::Redraw(_)]
        ));
    }

    #[test]
    fn the_hub_counts_misses_of_the_last_10_s() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // The hub's own counts of the last 10 s, per user.
        let snap = |a: u64, b: u64| {
            json!({"aggregatorStatus": "running", "hub": {"clients": 2}, "sessions": {
                "alice": {"connected": true, "hubMisses10s": a},
                "bob": {"connected": true, "hubMisses10s": b},
                "gone": {"connected": false, "hubMisses10s": 99},
            }})
        };
        let mut s = StatusLine::hub(false);
        let out = s.lines(&snap(5, 0), at(0));
        assert_eq!(
            out,
            [Out::Line(
                "hub: 2 clients · misses 5 in 10 s · worst alice (5) · mixer running".into()
            )]
        );
        assert!(s.lines(&snap(2, 3), at(5)).is_empty());
        let out = s.lines(&snap(4, 3), at(10));
        assert_eq!(
            out,
            [Out::Line(
                "hub: 2 clients · misses 7 in 10 s · worst alice (4) · mixer running".into()
            )]
        );
        // A client leaves: said at once.
        let one = json!({"aggregatorStatus": "running", "hub": {"clients": 1},
                         "sessions": {"alice": {"connected": true, "hubMisses10s": 4}}});
        let out = s.lines(&one, at(11));
        assert!(
            matches!(&out[..], [Out::Line(l)] if l.starts_with("hub: 1 client ·")),
            "{out:?}"
        );
    }
}
