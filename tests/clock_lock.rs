//! A peer whose sound card runs 500 ppm fast against the hub's, as users run them: real
//! processes on loopback with `virtual` devices. The peer must report the clock it
//! measured and resample its capture by it (with its pace), so that the hub receives its
//! own rate: the hub's own drift meter for that peer reads near zero. Without the
//! capture's resampling it reads the card's 500 ppm (measured: 494); before the meter read
//! its inputs' progress smoothly, it read 0.0 for that peer either way. Time bounds are generous: the
//! machine is shared.

#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::time::{Duration, Instant};

use procs::{hub, metrics, peer};

#[test]
fn a_skewed_peer_reports_its_clock_and_sends_the_hub_its_own_rate() {
    let (mut h, addr, hub_metrics) = hub(&[]);
    let (mut p, peer_metrics) = peer(addr, "alice", "virtual:tone=441,skew=500", &[]);
    // The hub shows an input's drift from the 9th second; the peer's estimate is measured
    // from the 8th. Both settle within a few seconds more: the last reading is judged.
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
        let snap = metrics(peer_metrics);
        let drift = metrics(hub_metrics)["connections"]["alice"]["driftPpm"].as_f64();
        let (Some(clock), Some(capture), Some(drift)) = (
            snap["clockRatioPpm"].as_f64(),
            snap["captureRatio"].as_f64(),
            drift,
        ) else {
            continue;
        };
        last = Some((clock, capture, drift));
        if start.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    let (clock, capture, drift) = last.expect("the peer's clock and the hub's drift measured");
    assert!(
        (clock + 500.0).abs() < 50.0,
        "the peer measured {clock} ppm"
    );
    // The capture goes at the measured clock, give or take the pace's correction, which
    // is small when nothing is lost; the hub then receives its own rate.
    let pace = (capture - 1.0) * 1e6 - clock;
    assert!(pace.abs() < 300.0, "capture {capture}, clock {clock} ppm");
    assert!(drift.abs() < 100.0, "the hub sees {drift} ppm");
    p.kill();
    h.kill();
}
