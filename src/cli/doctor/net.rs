//! The doctor's network checks (main thread): the ports the role would bind are free, and
//! the hub answers a real HELLO.
//!
//! The hub check connects, sends HELLO as a `monitor` named `izyrt-doctor-PID` (a name no
//! workstation uses, so it never replaces a live peer; a monitor is not mixed in) with the
//! role's token, rate, channels and period, reads frames until WELCOME or ERROR, then
//! sends BYE and closes. The hub applies to it the same checks as to a peer: token, rate
//! and channels.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::Check;
use crate::cli::role_args::{DEFAULT_HUB_PORT, Role, resolve_addr};
use crate::wire::{
    Decoder, ErrorMsg, Hello, Kind, PROTO, Role as WireRole, Welcome, encode_bye, encode_json_vec,
};

/// How long the hub has to accept and to answer HELLO.
const HUB_TIMEOUT: Duration = Duration::from_secs(3);

/// `metrics port` (or another named port): `addr` can be bound now.
pub(super) fn port_free(name: &'static str, addr: Option<SocketAddr>) -> Check {
    let Some(addr) = addr else {
        return Check::pass(name, "disabled (--metrics none)");
    };
    bind_verdict(name, addr, TcpListener::bind(addr).map(drop))
}

/// `listen port`: the hub's `--listen` address can be bound now.
pub(super) fn listen_port(text: &str) -> Check {
    const NAME: &str = "listen port";
    // As the hub reads it (a HOST alone is on the default port).
    match resolve_addr("--listen", text, Some(DEFAULT_HUB_PORT)) {
        Ok(addr) => bind_verdict(NAME, addr, TcpListener::bind(addr).map(drop)),
        Err(e) => Check::fail(
            NAME,
            e.to_string(),
            Some("--listen HOST:PORT, e.g. --listen 0.0.0.0:7100".into()),
        ),
    }
}

fn bind_verdict(name: &'static str, addr: SocketAddr, bound: std::io::Result<()>) -> Check {
    match bound {
        Ok(()) => Check::pass(name, format!("{addr} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Check::warn(
            name,
            format!("{addr} is in use (an izyrt already running there would explain it)"),
            Some(format!(
                "see who holds it: `ss -ltnp 'sport = :{}'`; or choose another port",
                addr.port()
            )),
        ),
        Err(e) => Check::fail(
            name,
            format!("cannot bind {addr}: {e}"),
            Some("choose an address of this machine (or a port above 1023)".into()),
        ),
    }
}

/// `hub`: HELLO → WELCOME at `text` with the role's token, rate and channels.
pub(super) fn hub(text: &str, role: &Role) -> Check {
    const NAME: &str = "hub";
    // As a peer reads it (a HOST alone is on the hub's default port).
    let addr = match resolve_addr("--hub", text, Some(DEFAULT_HUB_PORT)) {
        Ok(a) => a,
        Err(e) => {
            return Check::fail(
                NAME,
                e.to_string(),
                Some("--hub HOST:PORT with a host name this machine resolves".into()),
            );
        }
    };
    let e = match TcpStream::connect_timeout(&addr, HUB_TIMEOUT) {
        Ok(stream) => return greet(stream, addr, role),
        Err(e) => e,
    };
    Check::fail(
        NAME,
        format!("cannot connect to {addr}: {e}"),
        Some(
            "start the hub (`sudo systemctl start izyrt-hub`), or check --hub and the firewall"
                .into(),
        ),
    )
}

/// What the hub answered.
enum Answer {
    Welcome(Welcome),
    Error(ErrorMsg),
}

fn greet(mut stream: TcpStream, addr: SocketAddr, role: &Role) -> Check {
    const NAME: &str = "hub";
    let s = &role.settings;
    let hello = Hello {
        proto: PROTO.into(),
        role: WireRole::Monitor,
        user: format!("izyrt-doctor-{}", std::process::id()),
        token: role.token.clone(),
        sample_rate: Some(s.rate),
        channels: Some(s.channels),
        format: Some("f32".into()),
        frames_per_packet: Some(s.period),
        enable_qos_metrics: false,
        software: Some(format!("izyrt/{} doctor", env!("CARGO_PKG_VERSION"))),
        mix: None,
    };
    let started = Instant::now();
    let answer = send_hello(&mut stream, &hello);
    let rtt_ms = started.elapsed().as_secs_f64() * 1_000.0;
    // Leave as a client should: BYE, then close (ignored if the hub already closed).
    let mut bye = [0u8; 16];
    if let Ok(n) = encode_bye(&mut bye, 0) {
        let _ = stream.write_all(&bye[..n]);
    }
    let _ = stream.shutdown(Shutdown::Both);
    match answer {
        Ok(Answer::Welcome(w)) => Check::pass(
            NAME,
            format!(
                "{addr} ({}) welcomed us in {rtt_ms:.1} ms: {} Hz, {} ch, {}-frame packets, mix {}{}",
                w.hub,
                w.sample_rate,
                w.channels,
                w.frames_per_packet,
                w.mix.name(),
                if role.token.is_some() {
                    ", token accepted"
                } else {
                    ""
                }
            ),
        ),
        Ok(Answer::Error(e)) => {
            let fix = match e.code.as_str() {
                "unauthorized" => Some(if role.token.is_some() {
                    "use the hub's token: --token-file with the file the hub reads (/etc/izyrt/token in the units)".to_owned()
                } else {
                    "this hub requires a token: --token-file PATH (the hub's token)".to_owned()
                }),
                "format_unsupported" => {
                    Some("use the hub's --rate and --channels (its message says which)".to_owned())
                }
                "hub_full" => Some("raise the hub's --max-clients".to_owned()),
                _ => None,
            };
            let what = if e.code == "unauthorized" {
                if role.token.is_some() {
                    "refused our token"
                } else {
                    "requires a token, and none was given"
                }
            } else {
                "refused HELLO"
            };
            Check::fail(
                NAME,
                format!("{addr} {what}: {} ({})", e.code, e.message),
                fix,
            )
        }
        Err(why) => Check::fail(
            NAME,
            format!("{addr} did not answer HELLO: {why}"),
            Some("check that --hub names an izyrt hub (streamproto1), not another service".into()),
        ),
    }
}

/// Sends `hello` and reads until WELCOME or ERROR.
fn send_hello(stream: &mut TcpStream, hello: &Hello) -> Result<Answer, String> {
    let mut buf = Vec::new();
    let n = encode_json_vec(&mut buf, Kind::Hello, 0, hello).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(HUB_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream.write_all(&buf[..n]).map_err(|e| e.to_string())?;
    let mut dec = Decoder::new();
    loop {
        while let Some(frame) = dec.next_frame().map_err(|e| e.to_string())? {
            match frame.kind() {
                Some(Kind::Welcome) => {
                    return Welcome::parse(frame.payload)
                        .map(Answer::Welcome)
                        .map_err(|e| e.to_string());
                }
                Some(Kind::Error) => {
                    return ErrorMsg::parse(frame.payload)
                        .map(Answer::Error)
                        .map_err(|e| e.to_string());
                }
                _ => {}
            }
        }
        match dec.read_from(stream) {
            Ok(0) => return Err("the connection closed".into()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no answer within {} s", HUB_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
