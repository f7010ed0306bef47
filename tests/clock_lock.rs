//! Two clocks as users run them: real processes on loopback. A peer whose sound card
//! (`virtual`) runs 500 ppm fast against the hub's must report the clock it measured and
//! resample its capture by it, so that the hub receives its own rate: the hub's drift
//! meter for that peer reads near zero (without the capture's resampling it reads the
//! card's 500 ppm, measured 494) and shows it locked (`senderLocked`, from the AUDIO flag
//! `CLOCK_LOCKED` on its packets). A client that does not lock at all (a third-party one,
//! sending at its own clock) must show at the hub as drifting, and be trimmed. (Before
//! the hub's meter read its inputs' progress smoothly, the skewed peer *not* resampled
//! read 0.0: its packets arrived at a steady phase, so the progress moved a packet at a
//! time. This client's jittered arrivals hid that fault; `hub::drift`'s unit test
//! `a_sender_in_whole_packets_reads_its_drift` is the one that catches it.) Time bounds
//! are generous: the machine is shared.

#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::io::Read;
use std::time::{Duration, Instant};

use izyrt::dsp::quantile::median;
use izyrt::wire::{AudioFormat, Kind};
use procs::{Raw, audio_frame, hub, metrics, peer, serial};
use serde_json::json;

#[test]
fn a_skewed_peer_reports_its_clock_and_sends_the_hub_its_own_rate() {
    // One scenario at a time: the other test's realtime sender, beside this one on two
    // cores, made the hub's input for alice miss in the stretch its meter reads.
    let _serial = serial();
    // The hub's input held at 20 ms, floor and cap: the peer's capture also steers that
    // input to its target from the hub's reports, and a target that moves is followed at
    // up to 2000 ppm, which the hub's meter reads as the stream's rate while it lasts (a
    // noisy stretch of this machine raised it to the cap in one traced run of eight; with
    // only the floor set, the target stepped between 960 and its 1024-frame cap without
    // a miss, and the meter read −61 to +59 ppm while the peer followed: traced). Held at
    // 150 ms instead, the input still missed (the peer's card losing time sends a gap no
    // depth covers) and the start's repayment lasted longer than the lock's first 45 s.
    let (mut h, addr, hub_metrics) = hub(&["--jitter-min-ms", "20", "--jitter-max-ms", "20"]);
    let (mut p, peer_metrics) = peer(addr, "alice", "virtual:tone=441,skew=500", &[]);
    // The peer's estimate is measured from about the 9th second, and its capture is
    // resampled by it and flagged CLOCK_LOCKED from then on. The hub starts its drift
    // measurement again where the flag comes on, so it reads the stream sent from then
    // on, not the card's 500 ppm of the first seconds (before the flag, read at 20 s, the
    // hub showed 11 to 134 ppm; near zero only from about the 40th second). Its first
    // reading comes 7–9 s after the lock. Block medians (`hub::drift`): eight traced runs
    // within 0.9 ppm from 20 s after the lock, but for one very noisy stretch (47 hub
    // input misses, its target at the cap), within 15.4. Block minima, the meter before,
    // had read 54 to 681 ppm on noisy stretches with 7 to 24 misses, which a bound of
    // 50 ppm catches. Since the hub reports where each input stands (2026-12-07), the
    // peer also repays, in the seconds after the lock, what its unlocked start left in
    // its input at the hub (the card's 500 ppm for 9 s), and the hub's fit shows that
    // repayment for the 32 s it spans (−60 to −78 ppm at 20–24 s after the lock in the
    // run that found it).
    //
    // So is every later loss repaid: a stall of this host that empties alice's input, or
    // costs the peer's card time it then sends as a gap, is made good by the capture's
    // correction at up to 2000 ppm (a whole 20 ms in 10 s), and the hub's meter reads the
    // repayment for the 32 s its fit spans (fresh-clone CI, 2026-12-08: 228 ppm after 159
    // misses). That is the stream's true rate while it lasts, not a failure to lock. This
    // VM's storms are the hypervisor taking 50–75 % of both cores for 20–40 s at a time
    // (traced: `steal` in /proc/stat, a realtime thread's 1 ms sleeps late by up to
    // 108 ms, thousands of misses), with quiet minutes between. So the hub's reading is
    // judged only where nothing was repaid in the stretch its fit spans: [`QUIET`] after
    // the lock (the fit's 32 s, a block, and a repayment's tail) without a miss or a trim
    // at the hub, and with every sample of the peer's correction under [`REPAYING_PPM`]
    // (a repayment rides its 2000 ppm bound; at rest the samples swing within ±300 ppm
    // from one METADATA report to the next, traced); the test waits for such a stretch.
    //
    // The capture's correction itself must rest near zero: were the capture not resampled
    // by the estimate, the correction would carry the card's 500 ppm (a mutation that
    // dropped the estimate from the capture's ratio: a median of −536 ppm), and the hub
    // would read zero all the same. Repayments are bursts, so the median of its samples
    // since the lock is judged, whatever the host did.
    const QUIET: Duration = Duration::from_secs(36);
    const REPAYING_PPM: f64 = 500.0;
    let start = Instant::now();
    let mut locked_at = None;
    let mut readings = Vec::new();
    // Each second: when, alice's misses and trimmed frames at the hub, and the peer's
    // capture correction (ppm).
    let mut trace: Vec<(Instant, (u64, u64), f64)> = Vec::new();
    while start.elapsed() < Duration::from_secs(240) {
        std::thread::sleep(Duration::from_millis(1000));
        let alice = metrics(hub_metrics)["connections"]["alice"].clone();
        let peer_now = metrics(peer_metrics);
        let now = Instant::now();
        let faults = (
            alice["jitterMisses"].as_u64().unwrap_or(0),
            alice["trimmedFrames"].as_u64().unwrap_or(0),
        );
        let correction = peer_now["captureCorrectionPpm"].as_f64();
        if alice["senderLocked"] != true {
            assert!(locked_at.is_none(), "the lock flag went off: {alice}");
            continue;
        }
        let at = *locked_at.get_or_insert(now);
        let correction = correction.expect("the peer's capture correction");
        trace.push((now, faults, correction));
        let quiet = now - at >= QUIET
            && trace
                .iter()
                .filter(|t| now - t.0 <= QUIET)
                .all(|t| t.1 == faults && t.2.abs() < REPAYING_PPM);
        if quiet {
            readings.push((
                peer_now["clockRatioPpm"]
                    .as_f64()
                    .expect("the peer's clock"),
                alice["driftPpm"].as_f64().expect("the hub's drift"),
            ));
            if readings.len() == 3 {
                break;
            }
        }
    }
    let locked_at = locked_at.expect("the hub saw alice's packets flagged CLOCK_LOCKED");
    let seen: Vec<String> = trace
        .iter()
        .map(|(_, (m, t), c)| format!("{m}/{t}/{c:.0}"))
        .collect();
    eprintln!(
        "locked {:.1} s after the start; each second since, alice's misses/trimmed frames \
         at the hub/the capture's correction (ppm): {}; the peer measured, and the hub \
         sees, ppm: {readings:?}",
        (locked_at - start).as_secs_f64(),
        seen.join(" ")
    );
    let mut corrections: Vec<f64> = trace.iter().map(|t| t.2).collect();
    let median = median(&mut corrections).expect("a correction since the lock");
    assert!(
        median.abs() < 150.0,
        "the capture's correction carried {median} ppm (median since the lock)"
    );
    assert!(
        readings.len() == 3,
        "only {} readings: the host never let alice's input at the hub go {QUIET:?} \
         without a repayment (each second above)",
        readings.len()
    );
    for (clock, drift) in readings {
        assert!(
            (clock + 500.0).abs() < 50.0,
            "the peer measured {clock} ppm"
        );
        assert!(drift.abs() < 50.0, "the hub sees {drift} ppm");
    }
    p.kill();
    h.kill();
}

#[test]
fn a_client_that_does_not_lock_shows_its_drift_at_the_hub() {
    // A third-party client written from the spec, which sends at its own clock: 64-frame
    // packets paced 500 ppm fast. The hub cannot make it lock; it must show the operator
    // which peer this is (`driftPpm`) and trim it (`trimmedFrames`). The input's depth is
    // capped at 4 ms (192 frames), so that the surplus (480 frames in 20 s) must be
    // trimmed: uncapped, a stalling host raised the input's floor toward its 1024-frame
    // cap and the surplus fitted under it (fresh-clone CI, 2026-12-07: "nothing trimmed").
    let _serial = serial();
    let (mut h, addr, hub_metrics) = hub(&["--jitter-max-ms", "4"]);
    let mut raw = Raw::connect(addr);
    raw.hello("carol", json!({}));
    let (frames, closed) = raw.read_until(Kind::Welcome, Duration::from_secs(5));
    assert!(
        !closed && frames.iter().any(|f| f.0 == Some(Kind::Welcome)),
        "not WELCOMEd"
    );
    // The hub's mix comes back: read it away, or the hub would drop a client that stalls.
    let mut sink = raw.sock.try_clone().unwrap();
    let _ = sink.set_read_timeout(None);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while matches!(sink.read(&mut buf), Ok(n) if n > 0) {}
    });
    // Paced on absolute deadlines for 20 s (the hub shows a drift from the 9th second),
    // from a realtime thread as a real client's capture would send (below the hub's
    // threads, as `benches/hub_scale.rs` does): paced by an ordinary thread on a loaded
    // machine (a build beside the tests), the sender stalled and the hub read 185 ppm.
    let _ = izyrt::rt::promote::raise_to_fifo(60);
    let period = Duration::from_secs_f64(64.0 / 48_000.0 / 1.0005);
    let samples = [0.1f32; 128];
    let start = Instant::now();
    for seq in 0u32.. {
        if let Some(wait) = (start + period * seq).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        raw.send(&audio_frame(48_000, 0, seq, AudioFormat::F32, 64, &samples));
        if start.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    let carol = metrics(hub_metrics)["connections"]["carol"].clone();
    let last = carol["driftPpm"]
        .as_f64()
        .map(|d| (d, carol["trimmedFrames"].as_u64().unwrap_or(0)));
    let (drift, trimmed) = last.expect("the hub showed carol's drift");
    assert_eq!(
        carol["senderLocked"], false,
        "carol's packets are not flagged"
    );
    // Drifting, not locked (which reads near 0): within 150 ppm of the truth, for a
    // sender whose pacing a shared machine may still delay.
    assert!((drift - 500.0).abs() < 150.0, "the hub sees {drift} ppm");
    assert!(trimmed > 0, "nothing trimmed");
    h.kill();
}
