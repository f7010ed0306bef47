//! Every role talks back, off a terminal (stderr is a pipe here): stamped lines on every
//! change of state and every 10 s, a hub that cannot be reached said at once and then at
//! most every 10 s, the dashboard's address at startup.
#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::net::TcpListener;
use std::time::Duration;

use procs::{PERIODS, Proc};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Asserts that `line` starts with an RFC 3339 UTC time (`2026-12-03T16:39:15.123Z `).
fn assert_stamped(line: &str) {
    let b = line.as_bytes();
    let ok = b.len() > 25
        && b.iter().take(24).enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && b[24] == b' ';
    assert!(ok, "not stamped: {line:?}");
}

/// How many lines of `p` hold `needle`.
fn count(p: &Proc, needle: &str) -> usize {
    p.output().lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_peer_and_a_monitor_say_what_their_hub_connection_does() {
    // A port nothing listens on (bound, then released), for a hub started later.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hub_addr = format!("127.0.0.1:{port}");
    let client = |role: &str, user: &str| {
        let mut args = vec![
            role,
            "--hub",
            &hub_addr,
            "--user",
            user,
            "--metrics",
            "127.0.0.1:0",
            "--periods",
            PERIODS,
        ];
        if role == "peer" {
            args.extend(["--device", "virtual:tone=440"]);
        }
        Proc::start(user, &args)
    };
    let mut peer = client("peer", "talker");
    let unreachable = format!("cannot reach hub {hub_addr}: connection refused; retrying");
    assert_stamped(&peer.wait_line(&unreachable, SECS(20)));
    let dashboard = peer.wait_line("dashboard: http://127.0.0.1:", SECS(5));
    assert!(dashboard.ends_with('/'), "{dashboard}");
    assert_stamped(&dashboard);
    assert_stamped(&peer.wait_line("peer talker: connecting · latency ", SECS(5)));

    let mut hub = Proc::start(
        "hub",
        &[
            "hub",
            "--listen",
            &hub_addr,
            "--metrics",
            "127.0.0.1:0",
            "--periods",
            PERIODS,
        ],
    );
    let running = peer.wait_line("peer talker: running · latency ", SECS(20));
    assert_stamped(&running);
    assert!(running.contains("mic green"), "{running}");
    let mut monitor = client("monitor", "watcher");
    let watching = monitor.wait_line("monitor watcher: running · latency ", SECS(20));
    assert!(
        !watching.contains("mic "),
        "a monitor has no mic: {watching}"
    );
    let hub_line = hub.wait_line("hub: 2 clients · misses ", SECS(20));
    assert_stamped(&hub_line);
    assert!(hub_line.contains(" in 10 s · worst "), "{hub_line}");
    // The hub's join lines are stamped too.
    assert_stamped(&hub.wait_line("izyrt hub: talker joined", SECS(5)));

    // The hub goes away: said at once, and the unreachable hub once more, not per attempt.
    let before = count(&peer, &unreachable);
    hub.kill();
    assert_stamped(&peer.wait_line("peer talker: reconnecting · ", SECS(20)));
    procs::wait_for("the unreachable hub said again", SECS(10), || {
        (count(&peer, &unreachable) > before).then_some(())
    });
    std::thread::sleep(SECS(3));
    assert_eq!(
        count(&peer, &unreachable),
        before + 1,
        "at most one line per 10 s:\n{}",
        peer.output()
    );
    peer.kill();
    monitor.kill();
}

#[test]
fn dev_mode_prints_its_dashboard_and_status() {
    let mut dev = Proc::start(
        "dev",
        &[
            "--device",
            "virtual:tone=440",
            "--metrics",
            "127.0.0.1:0",
            "--periods",
            PERIODS,
        ],
    );
    assert_stamped(&dev.wait_line("dashboard: http://127.0.0.1:", SECS(20)));
    let line = dev.wait_line("dev: running · latency ", SECS(20));
    assert_stamped(&line);
    assert!(line.contains("mic green"), "{line}");
    dev.kill();
}
