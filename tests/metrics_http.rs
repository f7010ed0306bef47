//! The metrics HTTP server over real sockets on 127.0.0.1 (HTTP thread).
//!
//! Every wait is bounded by socket timeouts; timing asserts are generous (seconds) so a
//! loaded 2-core machine cannot make them flaky.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use izyrt::metrics::{MetricsHandle, MetricsServer, SNAPSHOT_KEYS, SnapshotCell, default_snapshot};
use serde_json::{Value, json};

/// Client-side bound on every read and write.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn start() -> (Arc<SnapshotCell>, MetricsHandle) {
    let cell = Arc::new(SnapshotCell::default());
    let handle = MetricsServer::bind("127.0.0.1:0", Arc::clone(&cell))
        .unwrap()
        .spawn()
        .unwrap();
    (cell, handle)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).unwrap();
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    s
}

/// Reads a whole response (the server closes after each one) and parses it.
fn read_reply(mut s: TcpStream) -> Reply {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = resp.parse(&raw).unwrap() else {
        panic!("incomplete response: {:?}", String::from_utf8_lossy(&raw));
    };
    let reply = Reply {
        status: resp.code.unwrap(),
        headers: resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: raw[len..].to_vec(),
    };
    let declared: usize = reply.header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(reply.header("Connection"), Some("close"));
    assert_eq!(reply.header("Cache-Control"), Some("no-store"));
    assert_eq!(declared, reply.body.len(), "Content-Length");
    reply
}

fn request(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    read_reply(s)
}

fn get(addr: SocketAddr, target: &str) -> Reply {
    request(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
}

const GET_METRICS: &str = "/service/mixeradminclient?getMetrics";

#[test]
fn get_metrics_json_is_the_snapshot_with_every_key() {
    let (_cell, handle) = start();
    let r = get(handle.local_addr(), GET_METRICS);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body, default_snapshot());
    for key in SNAPSHOT_KEYS {
        assert!(body.get(key).is_some(), "missing {key}");
    }
    handle.stop();
}

#[test]
fn the_originals_double_slash_path_is_served_the_same_snapshot() {
    let (cell, handle) = start();
    let mut snap = default_snapshot();
    snap["aggregatorStatus"] = json!("running");
    cell.publish(snap.clone());
    let r = get(handle.local_addr(), "//service/mixeradminclient?getMetrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap(), snap);
    assert_eq!(
        get(handle.local_addr(), "//service/other?getMetrics").status,
        404
    );
    handle.stop();
}

#[test]
fn a_published_snapshot_is_served_next() {
    let (cell, handle) = start();
    let mut snap = default_snapshot();
    snap["aggregatorStatus"] = json!("running");
    snap["currentSpeakerBufferDepthInFloat32Samples"] = json!(1920);
    snap["incomingAudioTracks"] = json!([{ "track": 3, "from": "alice", "packets": 41 }]);
    cell.publish(snap.clone());

    let r = get(handle.local_addr(), GET_METRICS);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body, snap);
    // Same key order as published (preserve_order).
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        serde_json::to_string(&snap).unwrap()
    );

    let r = get(handle.local_addr(), "/metrics");
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains("izyrt_aggregator_status{status=\"running\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("izyrt_current_speaker_buffer_depth_float32_samples 1920\n"));
    assert!(text.contains("izyrt_incoming_track_packets_total{track=\"3\",user=\"alice\"} 41\n"));
    handle.stop();
}

#[test]
fn prometheus_and_dashboard_routes() {
    let (_cell, handle) = start();
    let addr = handle.local_addr();

    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.contains("# TYPE izyrt_aggregator_status gauge\n"));
    assert!(text.contains("izyrt_mic_status{status=\"red\"} 1\n"));

    let r = get(addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(r.body).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("const METRICS = \"/service/mixeradminclient?getMetrics\";"));
    assert!(html.contains("fetch(METRICS"));
    // The SVG namespace is a name, not something fetched.
    let fetched = html.replace("\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !fetched.contains("http://") && !fetched.contains("https://"),
        "external asset"
    );

    // HEAD: the same headers, no body.
    let mut s = connect(addr);
    s.write_all(b"HEAD /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(raw.ends_with("\r\n\r\n"), "{raw}");
    assert!(raw.contains(&format!("Content-Length: {}\r\n", text.len())));
    handle.stop();
}

#[test]
fn errors_404_405_400_431() {
    let (_cell, handle) = start();
    let addr = handle.local_addr();

    assert_eq!(get(addr, "/nope").status, 404);
    assert_eq!(get(addr, "/service/mixeradminclient").status, 404);

    let r = request(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));

    // A TLS ClientHello is what garbage usually looks like on an HTTP port.
    let r = request(
        addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    );
    assert_eq!(r.status, 400);

    let big = format!(
        "GET /metrics HTTP/1.1\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(10 * 1024)
    );
    assert_eq!(request(addr, big.as_bytes()).status, 431);

    // Still serving after all that.
    assert_eq!(get(addr, "/metrics").status, 200);
    handle.stop();
}

#[test]
fn a_silent_client_does_not_block_the_next_one_for_long() {
    let (_cell, handle) = start();
    let addr = handle.local_addr();
    let silent = connect(addr);
    let t0 = Instant::now();
    let r = get(addr, "/metrics");
    let waited = t0.elapsed();
    assert_eq!(r.status, 200);
    // The default read deadline is 2 s; allow a wide margin for a loaded machine.
    assert!(
        waited < Duration::from_secs(10),
        "second client waited {waited:?}"
    );
    // The silent client was dropped without a response.
    let mut silent = silent;
    let mut buf = Vec::new();
    let n = silent.read_to_end(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf));
    handle.stop();
}

#[test]
fn a_byte_at_a_time_request_is_served() {
    let (_cell, handle) = start();
    let mut s = connect(handle.local_addr());
    s.set_nodelay(true).unwrap();
    for b in format!("GET {GET_METRICS} HTTP/1.1\r\nHost: localhost\r\n\r\n").bytes() {
        s.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = read_reply(s);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    handle.stop();
}

#[test]
fn stop_returns_promptly_when_idle_and_when_busy() {
    let (_cell, handle) = start();
    let addr = handle.local_addr();
    assert_eq!(get(addr, "/").status, 200);
    let t0 = Instant::now();
    handle.stop();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "idle stop took {:?}",
        t0.elapsed()
    );
    // The listener is gone.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());

    // Busy with a silent client: stop waits at most for that connection's deadline.
    let (_cell, handle) = start();
    let _silent = connect(handle.local_addr());
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    handle.stop();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "busy stop took {:?}",
        t0.elapsed()
    );
}

/// Reads one response off a kept-alive connection (by its Content-Length).
fn read_one(s: &mut TcpStream, pending: &mut Vec<u8>) -> (u16, String, Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(pending).unwrap() {
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
                    .unwrap()
            };
            let body_len: usize = header("Content-Length").parse().unwrap();
            let (code, connection) = (resp.code.unwrap(), header("Connection"));
            if pending.len() >= len + body_len {
                let body = pending[len..len + body_len].to_vec();
                pending.drain(..len + body_len);
                return (code, connection, body);
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed mid-response");
        pending.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn keep_alive_when_asked_pipelined_in_order_then_close() {
    let (_cell, handle) = start();
    let mut s = connect(handle.local_addr());
    let ka = "Host: x\r\nConnection: keep-alive\r\n\r\n";
    // Two pipelined requests in one write, then a third that asks to close.
    write!(s, "GET /metrics HTTP/1.1\r\n{ka}GET /nope HTTP/1.1\r\n{ka}").unwrap();
    let mut pending = Vec::new();
    let (code, conn, _) = read_one(&mut s, &mut pending);
    assert_eq!((code, conn.as_str()), (200, "keep-alive"));
    let (code, conn, _) = read_one(&mut s, &mut pending);
    assert_eq!((code, conn.as_str()), (404, "keep-alive"));
    write!(s, "GET {GET_METRICS} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (code, conn, body) = read_one(&mut s, &mut pending);
    assert_eq!((code, conn.as_str()), (200, "close"));
    assert!(serde_json::from_slice::<Value>(&body).is_ok());
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty() && pending.is_empty(),
        "closed after the last"
    );
    handle.stop();
}

#[test]
fn beyond_the_connection_cap_a_clean_503_and_the_rest_still_served() {
    let cell = Arc::new(SnapshotCell::default());
    let limits = izyrt::metrics::ServerLimits {
        max_connections: 4,
        read_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let handle = MetricsServer::bind("127.0.0.1:0", Arc::clone(&cell))
        .unwrap()
        .with_limits(limits)
        .spawn()
        .unwrap();
    let addr = handle.local_addr();
    let idle: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut busy = connect(addr);
    let mut raw = Vec::new();
    busy.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    drop(idle);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(addr, GET_METRICS).status, 200);
    handle.stop();
}
