//! Unit tests of the adaptation policy `pull` applies (`jitter/adapt.rs`): priming and
//! margins, growth on lateness, shrinking and dropping after steady windows (drift and a
//! reader's skipped time: `clocks.rs`).

use super::*;

/// A buffer two periods deep whose every packet arrives `early` ns before the pull that
/// would need it if the buffer were a period shallower: whole periods say a period can
/// go whatever `early` is; the margin in time decides. Both ways a period goes: the
/// target shrinking (target 2P), and depth standing above the target dropped (target
/// P, as a late packet leaves it).
#[test]
fn a_shrink_or_drop_must_leave_the_margin_in_time() {
    let p = u64::from(P);
    for target in [2 * P, P] {
        for (early, margin, drops) in [(100, 500, false), (600, 500, true), (100, 0, true)] {
            let mut jb = JitterBuffer::new(JitterConfig {
                initial_target_frames: target,
                margin_ns: margin,
                ..cfg()
            })
            .unwrap();
            // Pull k at t(k) plays packet k; packet k + 1 arrived `early` before it.
            let t = |k: u64| 1_000_000 + 1_000 * k;
            jb.push_at(0, &packet(0, p), t(0) - 1_000);
            jb.push_at(p, &packet(p, p), t(0) - early);
            let mut out = vec![0.0; 2 * P as usize];
            for k in 0..30 {
                let r = jb.pull_at(&mut out, t(k));
                assert_eq!(r, PullResult::Played, "{early} ns, pull {k}");
                let next = (k + 2) * p;
                jb.push_at(next, &packet(next, p), t(k + 1) - early);
            }
            let case = format!("target {target}, {early} ns early, margin {margin}");
            assert_eq!(jb.dropped_frames(), if drops { p } else { 0 }, "{case}");
            assert_eq!(jb.target_frames(), if drops { P } else { target }, "{case}");
            assert_eq!(jb.misses(), 0, "{case}");
        }
    }
}

/// A stream whose packets arrive `early` ns before the pull that needs them, on a
/// clock of 1000 ns periods. With less than the margin it starts one pull later (a
/// period deeper, so every later pull has a period more to spare), never later; and
/// so does a restart after running dry.
#[test]
fn a_stream_starts_and_restarts_only_with_the_margin_in_time() {
    let p = u64::from(P);
    let t = |k: u64| 1_000_000 + 1_000 * k;
    let mut out = vec![0.0; 2 * P as usize];
    let buffer = |margin| {
        let c = JitterConfig {
            margin_ns: margin,
            steady_pulls: 1_000,
            ..cfg()
        };
        JitterBuffer::new(c).unwrap()
    };
    for (early, margin) in [(100, 500), (600, 500), (100, 0)] {
        let waits = early < margin;
        let case = format!("{early} ns early, margin {margin}");
        let mut jb = buffer(margin);
        jb.push_at(0, &packet(0, p), t(0) - early);
        let r = jb.pull_at(&mut out, t(0));
        assert_eq!(r == PullResult::Priming, waits, "start, {case}");
        // Packet k before pull k; what pull k plays shows the depth it started at.
        for k in 1..20 {
            jb.push_at(k * p, &packet(k * p, p), t(k) - early);
            assert_eq!(jb.pull_at(&mut out, t(k)), PullResult::Played, "{case}");
            let played = if waits { k - 1 } else { k };
            assert_eq!(out, packet(played * p, p), "pull {k}, {case}");
        }
        assert_eq!(jb.misses(), 0, "{case}");
    }
    // Started 600 ns early; packet 10 is lost and the sender resumes 100 ns early.
    for (margin, waits) in [(500, true), (0, false)] {
        let mut jb = buffer(margin);
        for k in 0..10 {
            jb.push_at(k * p, &packet(k * p, p), t(k) - 600);
            assert_eq!(jb.pull_at(&mut out, t(k)), PullResult::Played);
        }
        let dry = jb.pull_at(&mut out, t(10));
        assert!(matches!(dry, PullResult::Miss { .. }), "margin {margin}");
        jb.push_at(11 * p, &packet(11 * p, p), t(11) - 100);
        let r = jb.pull_at(&mut out, t(11));
        assert_eq!(
            matches!(r, PullResult::Miss { .. }),
            waits,
            "margin {margin}"
        );
        jb.push_at(12 * p, &packet(12 * p, p), t(12) - 100);
        assert_eq!(jb.pull_at(&mut out, t(12)), PullResult::Played);
        assert_eq!(out, packet(if waits { 11 } else { 12 } * p, p));
        assert_eq!(jb.misses(), if waits { 2 } else { 1 }, "margin {margin}");
    }
    // Arrival times that never look early (another clock): one pull late, not never.
    let mut jb = buffer(500);
    jb.push_at(0, &packet(0, p), t(5));
    assert_eq!(jb.pull_at(&mut out, t(0)), PullResult::Priming);
    jb.push_at(p, &packet(p, p), t(6));
    assert_eq!(jb.pull_at(&mut out, t(1)), PullResult::Played);
    assert_eq!(out, packet(0, p));
}

#[test]
fn a_stall_causes_misses_and_one_target_growth_then_steady_flow_shrinks_it() {
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    let pos = steady(&mut jb, 0, 20);
    assert_eq!((jb.misses(), jb.target_frames()), (0, P));
    // Stall: three pulls without packets.
    assert_eq!(
        pull(&mut jb),
        (
            PullResult::Miss {
                played: 0,
                silent: P
            },
            vec![0.0; 8]
        )
    );
    // Not grown yet: nothing says yet whether the audio is late or lost.
    assert_eq!(jb.target_frames(), P);
    assert_eq!(
        pull(&mut jb).0,
        PullResult::Miss {
            played: 0,
            silent: P
        }
    );
    assert_eq!(
        pull(&mut jb).0,
        PullResult::Miss {
            played: 0,
            silent: P
        }
    );
    assert_eq!(jb.misses(), 3);
    assert_eq!(jb.target_frames(), P);
    // The backlog arrives at once (TCP): the audio was late, so the target grows, once
    // for the event; playing resumes at the stream position.
    for k in 0..3 {
        let p = pos + k * u64::from(P);
        jb.push(p, &packet(p, P.into()));
    }
    let (r, out) = pull(&mut jb);
    assert_eq!(r, PullResult::Played);
    assert_eq!(out, packet(pos, 4));
    assert_eq!(jb.misses(), 3);
    assert_eq!(jb.target_frames(), 2 * P);
    let pos = pos + 3 * u64::from(P);
    // Steady flow at depth 3P before each pull, a period above the 2P target (the
    // backlog). After `steady_pulls` clean pulls (the resumed pull plus 8 more) that
    // period is dropped; the target stays.
    let dropped = jb.dropped_frames();
    let pos = steady(&mut jb, pos, 8);
    assert_eq!(jb.dropped_frames(), dropped);
    let pos = steady(&mut jb, pos, 1);
    assert_eq!(jb.target_frames(), 2 * P);
    assert_eq!(jb.dropped_frames(), dropped + u64::from(P));
    assert_eq!(jb.depth_frames(), u64::from(P));
    // Now at depth 2P before each pull, one period of the target was never used: after
    // the next window the target shrinks back and a period is dropped.
    let pos = steady(&mut jb, pos, cfg().steady_pulls - 1);
    assert_eq!(jb.target_frames(), 2 * P);
    let pos = steady(&mut jb, pos, 1);
    assert_eq!(jb.target_frames(), P);
    assert_eq!(jb.dropped_frames(), dropped + 2 * u64::from(P));
    assert_eq!(jb.depth_frames(), 0);
    assert_eq!(jb.misses(), 3);
    // It does not go below the minimum.
    let _ = steady(&mut jb, pos, 50);
    assert_eq!(jb.target_frames(), P);
    jb.reset_misses();
    assert_eq!(jb.misses(), 0);
}

/// Feeds one period per pull until it plays, starves it until it misses, then delivers
/// the audio held back at once (three periods, as TCP delivers a backlog) and pulls.
/// Returns the next position.
fn late_event(jb: &mut JitterBuffer, mut pos: u64) -> u64 {
    loop {
        jb.push(pos, &packet(pos, P.into()));
        pos += u64::from(P);
        if pull(jb).0 == PullResult::Played {
            break;
        }
    }
    while pull(jb).0 == PullResult::Played {}
    for _ in 0..3 {
        jb.push(pos, &packet(pos, P.into()));
        pos += u64::from(P);
    }
    let _ = pull(jb);
    pos
}

/// One packet comes just after the pull that needed it: one miss, then it and the next
/// arrive together and the stream resumes a period later than before.
fn one_late_packet(jb: &mut JitterBuffer, mut pos: u64) -> u64 {
    assert!(matches!(pull(jb).0, PullResult::Miss { .. }));
    for _ in 0..2 {
        jb.push(pos, &packet(pos, P.into()));
        pos += u64::from(P);
    }
    assert_eq!(pull(jb).0, PullResult::Played);
    pos
}

#[test]
fn a_late_packet_at_the_minimum_target_costs_latency_only_until_the_next_window() {
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    let mut pos = steady(&mut jb, 0, 20);
    assert_eq!(jb.target_frames(), P);
    pos = one_late_packet(&mut jb, pos);
    assert_eq!((jb.target_frames(), jb.depth_frames()), (P, u64::from(P)));
    // The depth before each pull is now 2P with a P target (within the slack). After
    // `steady_pulls` clean pulls that period, never used, is dropped.
    let dropped = jb.dropped_frames();
    pos = steady(&mut jb, pos, cfg().steady_pulls - 2);
    assert_eq!(jb.dropped_frames(), dropped);
    let _ = steady(&mut jb, pos, 1);
    assert_eq!(jb.dropped_frames(), dropped + u64::from(P));
    assert_eq!((jb.target_frames(), jb.depth_frames()), (P, 0));
    assert_eq!(jb.misses(), 1);
}

#[test]
fn a_sender_that_skips_ahead_while_dry_resumes_at_the_target() {
    // The sender's device lost 3 periods (an xrun): nothing comes for 3 pulls, then its
    // stream resumes 3 periods further on, at the ordinary rate.
    let (mut jb, mut pos) = playing_two_periods_deep(cfg().drift_pulls, 20);
    let misses = jb.misses();
    for _ in 0..3 {
        let _ = pull(&mut jb);
    }
    pos += 3 * u64::from(P);
    let mut silent = 0;
    loop {
        jb.push(pos, &packet(pos, P.into()));
        pos += u64::from(P);
        match pull(&mut jb) {
            (PullResult::Played, out) => {
                // Audio from the new position on, not a hole's silence.
                assert_eq!(out, packet(pos - 2 * u64::from(P), P.into()));
                break;
            }
            _ => silent += 1,
        }
    }
    assert_eq!(
        jb.misses(),
        misses + 2 + silent,
        "2 dry pulls, then the refill"
    );
    assert!(silent <= 1, "{silent} pulls refilling");
    // Back at the target's depth, not 3 periods above it.
    let _ = steady(&mut jb, pos, 5);
    assert_eq!(jb.depth_frames(), u64::from(P));
    assert_eq!(jb.target_frames(), 2 * P);

    // Such slips every few pulls, well within `drift_pulls`: lost audio each time,
    // never lateness, so the target stays.
    let (mut jb, mut pos) = playing_two_periods_deep(1_000, 20);
    for _ in 0..10 {
        for _ in 0..3 {
            let _ = pull(&mut jb);
        }
        pos += 2 * u64::from(P);
        while pull(&mut jb).0 != PullResult::Played {
            jb.push(pos, &packet(pos, P.into()));
            pos += u64::from(P);
        }
        pos = steady(&mut jb, pos, 3);
    }
    assert_eq!(jb.target_frames(), 2 * P);
}

#[test]
fn whole_periods_above_the_target_are_dropped_at_once() {
    // Three periods more than the target arrive at once and stay within the slack
    // (the reader's device skipped them, say): after one clean window all three go.
    let mut jb = JitterBuffer::new(JitterConfig {
        slack_frames: 4 * P,
        ..cfg()
    })
    .unwrap();
    let mut pos = steady(&mut jb, 0, cfg().steady_pulls);
    for _ in 0..3 {
        jb.push(pos, &packet(pos, P.into()));
        pos += u64::from(P);
    }
    let dropped = jb.dropped_frames();
    pos = steady(&mut jb, pos, cfg().steady_pulls);
    assert_eq!(jb.dropped_frames(), dropped + 3 * u64::from(P));
    assert_eq!((jb.target_frames(), jb.depth_frames()), (P, 0));
    let _ = steady(&mut jb, pos, cfg().steady_pulls);
    assert_eq!(jb.dropped_frames(), dropped + 3 * u64::from(P));
    assert_eq!(jb.misses(), 0);
}

#[test]
fn a_drop_followed_by_a_miss_doubles_the_window() {
    let w = cfg().steady_pulls;
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    let mut pos = steady(&mut jb, 0, 20);
    // A late packet leaves an extra period: 1 miss.
    pos = one_late_packet(&mut jb, pos);
    // One window later the extra period goes; the same lateness right after costs a
    // miss again.
    let dropped = jb.dropped_frames();
    pos = steady(&mut jb, pos, w - 1);
    assert_eq!(jb.dropped_frames(), dropped + u64::from(P));
    pos = steady(&mut jb, pos, 2);
    pos = one_late_packet(&mut jb, pos);
    assert_eq!(jb.misses(), 2);
    // So the extra period it left is kept twice as long: not after one window...
    pos = steady(&mut jb, pos, w);
    assert_eq!(jb.dropped_frames(), dropped + u64::from(P));
    // ...but after two.
    let _ = steady(&mut jb, pos, w);
    assert_eq!(jb.dropped_frames(), dropped + 2 * u64::from(P));
}

#[test]
fn a_cluster_of_stalls_grows_the_target_once() {
    // Five late events within `drift_pulls` (a host that stalled again and again for a
    // fraction of a second): one period more, not five.
    let drift_pulls = 100;
    let mut jb = JitterBuffer::new(JitterConfig {
        drift_pulls,
        steady_pulls: 1_000,
        ..cfg()
    })
    .unwrap();
    let mut pos = 0;
    let misses = jb.misses();
    for _ in 0..5 {
        pos = late_event(&mut jb, pos);
    }
    assert!(jb.misses() >= misses + 5, "each stall was a miss");
    assert_eq!(jb.target_frames(), 2 * P);
    // Once `drift_pulls` have passed, the next stall grows it again.
    pos = steady(&mut jb, pos, drift_pulls);
    let _ = late_event(&mut jb, pos);
    assert_eq!(jb.target_frames(), 3 * P);
}

#[test]
fn target_grows_a_period_per_late_event_up_to_the_maximum() {
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    let mut pos = 0;
    for event in 1..=5 {
        pos = late_event(&mut jb, pos);
        assert_eq!(jb.target_frames(), (P + event * P).min(4 * P), "{event}");
    }
}

/// A buffer with a 2-period target, playing a steady flow after `pulls` pulls; and the
/// next position.
fn playing_two_periods_deep(drift_pulls: u32, pulls: u32) -> (JitterBuffer, u64) {
    let mut jb = JitterBuffer::new(JitterConfig {
        initial_target_frames: 2 * P,
        steady_pulls: 1_000,
        drift_pulls,
        ..cfg()
    })
    .unwrap();
    jb.push(0, &packet(0, P.into()));
    let _ = pull(&mut jb);
    let pos = steady(&mut jb, u64::from(P), pulls);
    (jb, pos)
}

#[test]
fn lost_audio_is_silence_without_growth() {
    // The sender loses time (an xrun or a server that skipped cycles): packets stop,
    // then resume one per pull with no backlog. Every period it lost is one period of
    // silence here, and the latency stays at the target.
    let (mut jb, mut pos) = playing_two_periods_deep(cfg().drift_pulls, 20);
    for slip in 1..=5u64 {
        // The buffer held 2 periods: the first lost one is absorbed, the second runs
        // it dry and it refills to the target.
        for _ in 0..2 {
            let _ = pull(&mut jb);
        }
        let misses = jb.misses();
        let mut silent = 0;
        loop {
            jb.push(pos, &packet(pos, P.into()));
            pos += u64::from(P);
            match pull(&mut jb).0 {
                PullResult::Played => break,
                _ => silent += 1,
            }
        }
        assert_eq!(jb.target_frames(), 2 * P, "slip {slip}");
        assert_eq!(jb.misses(), misses + silent, "slip {slip}");
        assert!(silent <= 2, "slip {slip}: {silent} silent pulls");
        pos = steady(&mut jb, pos, 5);
        assert_eq!(jb.depth_frames(), u64::from(P), "slip {slip}");
    }

    // Running dry again within `drift_pulls` pulls grows it, whatever the cause.
    let (mut jb, mut pos) = playing_two_periods_deep(20, 30);
    for expect in [2 * P, 3 * P] {
        for _ in 0..2 {
            let _ = pull(&mut jb);
        }
        while pull(&mut jb).0 != PullResult::Played {
            jb.push(pos, &packet(pos, P.into()));
            pos += u64::from(P);
        }
        assert_eq!(jb.target_frames(), expect);
        pos = steady(&mut jb, pos, 3);
    }
}

#[test]
fn a_capped_target_grows_only_to_the_cap() {
    // 8 ms at 1 kHz: 8 frames, two periods of 4 (the built-in maximum is 4 periods).
    let capped = cfg().capped(Some(8), 1_000);
    assert_eq!(capped.max_target_frames, 2 * P);
    let mut jb = JitterBuffer::new(capped).unwrap();
    let mut pos = 0;
    for event in 1..=4 {
        pos = late_event(&mut jb, pos);
        assert_eq!(jb.target_frames(), 2 * P, "{event}");
    }
    // A cap below a period is one period, and the start comes down to it.
    let one = JitterConfig {
        initial_target_frames: 3 * P,
        min_target_frames: 2 * P,
        ..cfg()
    }
    .capped(Some(1), 1_000);
    assert_eq!(
        (
            one.max_target_frames,
            one.initial_target_frames,
            one.min_target_frames
        ),
        (P, P, P)
    );
    assert!(JitterBuffer::new(one).is_ok());
}

#[test]
fn jittery_flow_keeps_its_target() {
    // Packets arrive in pairs every other pull: the low-water mark is exactly one
    // period, so the grown target is needed and does not shrink.
    let mut jb = JitterBuffer::new(JitterConfig {
        initial_target_frames: 2 * P,
        ..cfg()
    })
    .unwrap();
    let mut pos = 0;
    for i in 0..200 {
        if i % 2 == 0 {
            for _ in 0..2 {
                jb.push(pos, &packet(pos, P.into()));
                pos += u64::from(P);
            }
        }
        assert_eq!(pull(&mut jb).0, PullResult::Played, "{i}");
    }
    assert_eq!(jb.misses(), 0);
    assert_eq!(jb.target_frames(), 2 * P);
}

/// Pulls one period with `cuts` searches for a cut in phase left in this period.
fn pull_within(jb: &mut JitterBuffer, cuts: &mut u32) -> PullResult {
    let mut out = vec![9.0; (P * 2) as usize];
    jb.pull_within(&mut out, u64::MAX, cuts)
}

#[test]
fn drops_wait_for_the_periods_budget_of_cut_searches() {
    // A drift trim due, with no search left in this period: it waits, and takes one
    // from the next period's budget.
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    let mut pos = steady(&mut jb, 0, 3);
    // Four periods deep: above the target and the slack (three).
    for _ in 0..4 {
        jb.push(pos, &packet(pos, u64::from(P)));
        pos += u64::from(P);
    }
    let mut none = 0;
    assert_eq!(pull_within(&mut jb, &mut none), PullResult::Played);
    assert_eq!(jb.dropped_frames(), 0, "trimmed without budget");
    jb.push(pos, &packet(pos, u64::from(P)));
    let mut one = 1;
    assert_eq!(pull_within(&mut jb, &mut one), PullResult::Played);
    assert!(jb.dropped_frames() > 0, "the deferred trim never came");
    assert_eq!(one, 0);

    // A steady window's drop (the period a late packet left): the window stays open
    // while the budget is spent and ends at the next pull that has one.
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    let mut pos = steady(&mut jb, 0, 20);
    pos = one_late_packet(&mut jb, pos);
    pos = steady(&mut jb, pos, cfg().steady_pulls - 2);
    let dropped = jb.dropped_frames();
    for _ in 0..3 {
        jb.push(pos, &packet(pos, u64::from(P)));
        pos += u64::from(P);
        assert_eq!(pull_within(&mut jb, &mut none), PullResult::Played);
        assert_eq!(jb.dropped_frames(), dropped, "dropped without budget");
    }
    jb.push(pos, &packet(pos, u64::from(P)));
    let mut one = 1;
    assert_eq!(pull_within(&mut jb, &mut one), PullResult::Played);
    assert_eq!(jb.dropped_frames(), dropped + u64::from(P));
    assert_eq!(one, 0);
    // A pull that drops nothing spends nothing.
    let mut two = 2;
    let _ = pull_within(&mut jb, &mut two);
    assert_eq!(two, 2);
}
