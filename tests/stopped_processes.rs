//! A peer or the hub stopped for 300 ms (SIGSTOP), as a stall of a shared host or a busy
//! laptop stops one: real processes on loopback with `virtual` devices. What the hub
//! counts for a peer that stopped (its inputs' misses, the stream time the peer skipped),
//! and what a hub that stopped skips (its stream and its inputs, by the time its clock
//! lost).

#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::time::Duration;

use procs::{hub, metrics, peer, rt_counters_armed, serial, wait_for};
use serde_json::Value;

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn the_hub_counts_the_periods_its_inputs_missed_in() {
    let _serial = serial();
    let (_hub, addr, hub_metrics) = hub(&[]);
    let (_alice, _) = peer(addr, "alice", "virtual:tone=440", &[]);
    let (bob, bob_metrics) = peer(addr, "bob", "virtual:tone=660", &[]);
    let mixed = |m: &Value, user: &str| m["connections"][user]["jitterTargetFrames"].is_u64();
    wait_for("alice and bob mixed", SECS(10), || {
        let m = metrics(hub_metrics);
        (mixed(&m, "alice") && mixed(&m, "bob")).then_some(())
    });
    std::thread::sleep(SECS(1));
    // Bob's stream: its newest position, the packets the hub has had from it, and the
    // stream time the hub saw it skip.
    let stream = |m: &Value| {
        let b = &m["connections"]["bob"];
        let position = b["head"]["position"].as_u64().unwrap() + 64;
        let skipped = b["senderSkippedFrames"].as_u64().unwrap();
        (position, b["packetsIn"].as_u64().unwrap(), skipped)
    };
    let before = stream(&metrics(hub_metrics));
    bob.stall(Duration::from_millis(300));
    std::thread::sleep(SECS(1));
    let m = metrics(hub_metrics);
    let after = stream(&m);
    // Positions moved on by more than the packets carried, by about the stop (the card
    // skipped whole periods): before, the stream went on where it was and read 300 ms
    // late at the hub, whose floor for bob then held the largest target for 32 s.
    let gap = (after.0 - before.0) - 64 * (after.1 - before.1);
    assert!(
        (9_600..=16_000).contains(&gap),
        "bob's positions skipped {gap} frames: {before:?} -> {after:?}"
    );
    // The hub counts it as skipped by the sender: the gap, to within what the packets
    // that were not a period long make of the estimate above (bob resamples its capture
    // by its clock estimate, so a packet is now and then a frame longer, sent as two).
    let seen = after.2 - before.2;
    assert!(
        gap.abs_diff(seen) <= 256,
        "the hub saw bob skip {seen}, the gap is {gap}"
    );
    // And bob says so.
    let skipped = metrics(bob_metrics)["outgoingAudioTracks"][0]["skippedFrames"].as_u64();
    assert!(
        skipped.is_some_and(|s| (9_600..=16_000).contains(&s)),
        "bob skipped {skipped:?}"
    );
    let misses = |user: &str| m["connections"][user]["jitterMisses"].as_u64().unwrap();
    let (alice, bob) = (misses("alice"), misses("bob"));
    let figure = |user: &str, key: &str| m["connections"][user][key].as_u64().unwrap();
    // Lost, not late: bob's floor did not rise to the cap (21 ms) for it; no floor is
    // above its target.
    let floor = |user: &str| figure(user, "jitterFloorFrames");
    assert!(
        floor("bob") < figure("bob", "jitterMaxFrames"),
        "{}",
        m["connections"]
    );
    for user in ["alice", "bob"] {
        assert!(floor(user) <= figure(user, "jitterTargetFrames"), "{user}");
    }
    let periods = m["hub"]["missPeriods"].as_u64().unwrap();
    let widest = m["hub"]["widestMiss"].as_u64().unwrap();
    // 300 ms is 225 periods of 64 frames.
    assert!(bob >= 100, "bob's misses {bob}: {}", m["connections"]);
    assert!(
        (bob..=alice + bob).contains(&periods),
        "missPeriods {periods}, misses alice {alice} bob {bob}"
    );
    assert!((1..=2).contains(&widest), "widestMiss {widest}");
}

/// The hub's process stops for 300 ms: its clock device (`virtual`, like a card) skips
/// the time it was stopped, past what it catches up. No mix was made for that time, so the
/// hub's stream skips it too: the peer finds the hub's positions moved on by about the
/// stop, and the hub's input for the peer moves on with it, keeping its depth. Before,
/// the hub's stream went on where it was, 300 ms behind, and its input held the burst
/// that came after the stop as latency until a trim or a drop cut it out.
#[test]
fn a_stopped_hub_skips_the_time_it_lost_in_its_stream_and_its_inputs() {
    let _serial = serial();
    let (hub, addr, hub_metrics) = hub(&[]);
    let (_alice, alice_metrics) = peer(addr, "alice", "virtual:tone=440", &[]);
    wait_for("alice mixed", SECS(10), || {
        let m = metrics(hub_metrics);
        m["connections"]["alice"]["jitterTargetFrames"]
            .is_u64()
            .then_some(())
    });
    std::thread::sleep(SECS(1));
    // The hub's stream as alice receives it: its newest position, and the packets so far.
    let stream = || {
        let m = metrics(alice_metrics);
        let c = &m["connections"]["alice"];
        let position = c["head"]["position"].as_u64().unwrap() + 64;
        (position, c["packetsIn"].as_u64().unwrap())
    };
    let before = stream();
    hub.stall(Duration::from_millis(300));
    std::thread::sleep(SECS(1));
    let after = stream();
    let gap = (after.0 - before.0) - 64 * (after.1 - before.1);
    let m = metrics(hub_metrics);
    let lost = m["realtime"]["izyrt-hub-mixer"]["lostFrames"].as_u64();
    // 300 ms is 14 400 frames; the virtual clock catches up at most 16 periods of it.
    assert!(
        (9_600..=16_000).contains(&gap),
        "the hub's positions skipped {gap} frames: {before:?} -> {after:?}; its device lost {lost:?}"
    );
    assert!(lost.is_some_and(|l| l >= gap), "lost {lost:?}, gap {gap}");
    // The input kept the depth it needs: within two periods of its target.
    let alice = &m["connections"]["alice"];
    let figure = |key: &str| alice[key].as_u64().unwrap();
    assert!(
        figure("jitterDepthFrames") <= figure("jitterTargetFrames") + 128,
        "{alice}"
    );
}

/// What the RT threads do to recover from a stop (the device's xrun, the capture's gap
/// sent on, the hub's inputs and stream skipped on, the speaker's concealment and rejoin)
/// is izyrt's own code on `virtual`, and it allocates nothing: `recoveryAllocations`, the
/// calls of the periods left out of `steadyAllocations`, stays 0 through stops of the hub
/// and of a peer. (On the ALSA `jack` PCM it would not: the plugin's restart allocates.)
#[test]
fn recovering_from_a_stop_allocates_nothing_on_the_rt_threads() {
    let _serial = serial();
    let (hub, addr, hub_metrics) = hub(&[]);
    let (alice, alice_metrics) = peer(addr, "alice", "virtual:tone=440", &[]);
    let (_bob, _) = peer(addr, "bob", "virtual:tone=660", &[]);
    rt_counters_armed(hub_metrics);
    rt_counters_armed(alice_metrics);
    for _ in 0..2 {
        hub.stall(Duration::from_millis(100));
        std::thread::sleep(Duration::from_millis(500));
        alice.stall(Duration::from_millis(100));
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(SECS(1));
    for (who, addr) in [("hub", hub_metrics), ("alice", alice_metrics)] {
        let m = metrics(addr);
        for (thread, t) in m["realtime"].as_object().unwrap() {
            assert!(
                t["xruns"].as_u64().unwrap() >= 2,
                "{who} {thread} did not recover from the stops: {t}"
            );
            assert_eq!(t["recoveryAllocations"], 0, "{who} {thread}: {t}");
            assert_eq!(t["steadyAllocations"], 0, "{who} {thread}: {t}");
        }
    }
    // And the speaker went on: alice still hears the mix.
    let c = &metrics(alice_metrics)["connections"]["alice"];
    assert!(c["packetsIn"].as_u64().unwrap() > 1000, "{c}");
}
