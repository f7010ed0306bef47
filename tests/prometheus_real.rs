//! A real Prometheus scraping a real session: a hub and two peers on `virtual`, on
//! loopback, and `/usr/bin/prometheus` (scrape interval 1 s) against the hub's `/metrics`.
//! Asks the HTTP API for a per-user series by user name, then runs every PromQL
//! expression of `docs/grafana/izyrt.json` and requires data from each. Prints the
//! queries and their results (run with `--nocapture` to see them).
//!
//! Skipped, saying so, only when `/usr/bin/prometheus` is absent (`scripts/setup`
//! installs it).

#[path = "common/procs.rs"]
mod procs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use procs::{hub, metrics, peer, wait_for};
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A Prometheus server; killed (and its data removed) when dropped.
struct Prom {
    child: Child,
    dir: std::path::PathBuf,
    addr: SocketAddr,
}

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(target: SocketAddr) -> Prom {
    let dir = procs::scratch("prometheus");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: izyrt\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Prom { child, dir, addr }
}

/// Percent-encodes a query string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /api/v1/query?query=EXPR` on Prometheus: the `data.result` array, or `None`
/// while Prometheus is not answering.
fn query(prom: SocketAddr, expr: &str) -> Option<Vec<Value>> {
    let mut s = TcpStream::connect_timeout(&prom, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /api/v1/query?query={} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        encode(expr)
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let v: Value = serde_json::from_str(&body).ok()?;
    assert_eq!(v["status"], "success", "{expr}: {v}");
    v["data"]["result"].as_array().cloned()
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Every `expr` of the Grafana dashboard's panels.
fn grafana_exprs() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana/izyrt.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(dash["uid"].is_string(), "the dashboard has a uid");
    dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_real_prometheus_scrapes_per_user_qos_and_every_grafana_query_has_data() {
    if !std::path::Path::new(PROMETHEUS).exists() {
        println!("{PROMETHEUS} not found (scripts/setup installs it): skipping this test");
        return;
    }
    let t0 = Instant::now();
    let (_hub, addr, hub_metrics) = hub(&[]);
    let (_alice, _) = peer(addr, "alice", "virtual:tone=440", &["--qos"]);
    let (_bob, _) = peer(addr, "bob", "virtual:tone=660", &["--qos"]);
    wait_for("alice and bob at the hub", Duration::from_secs(20), || {
        let m = metrics(hub_metrics);
        let s = &m["sessions"];
        (s["alice"]["connected"] == true && s["bob"]["QOSMetrics"]["rttMs"].is_number())
            .then_some(())
    });
    let prom = start_prometheus(hub_metrics);

    let by_name = r#"izyrt_user_jitter_misses_total{user="alice"}"#;
    let result = wait_for(
        "Prometheus to answer the per-user query",
        Duration::from_secs(30),
        || query(prom.addr, by_name).filter(|r| !r.is_empty()),
    );
    println!("query: {by_name}\nresult: {}", Value::Array(result.clone()));
    assert_eq!(result[0]["metric"]["user"], "alice");
    assert_eq!(result[0]["metric"]["job"], "izyrt");

    // rate() needs two samples in its window: poll each until it has data.
    for expr in grafana_exprs() {
        let result = wait_for(&format!("data for {expr}"), Duration::from_secs(15), || {
            query(prom.addr, &expr).filter(|r| !r.is_empty())
        });
        println!("query: {expr}\nresult: {}", Value::Array(result.clone()));
        for series in &result {
            let v = series["value"][1].as_str().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{expr}: {series}");
        }
    }
    let info = query(prom.addr, "izyrt_info").unwrap();
    println!("query: izyrt_info\nresult: {}", Value::Array(info.clone()));
    assert_eq!(info[0]["metric"]["role"], "hub");
    println!("took {:.1} s", t0.elapsed().as_secs_f64());
}
