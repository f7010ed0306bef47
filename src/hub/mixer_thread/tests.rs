//! The mixer thread's unit tests: one period at a time, with its inputs' buffers.

use super::*;
use crate::dsp::jitter::JitterConfig;
use crate::dsp::meter::MeterConfig;
use crate::dsp::mixer::{Limit, MixerConfig};
use crate::rt::pipe::pipe;
use rtrb::RingBuffer;

const P: u32 = 4;

fn client() -> (Box<Slot>, PipeTx) {
    client_with(JitterConfig::default())
}

/// A mono client of P-frame periods, its buffer `cfg` otherwise.
fn client_with(cfg: JitterConfig) -> (Box<Slot>, PipeTx) {
    client_of(JitterConfig {
        channels: 1,
        period_frames: P,
        initial_target_frames: P,
        min_target_frames: P,
        ..cfg
    })
}

/// A mono client whose buffer is `cfg`.
fn client_of(cfg: JitterConfig) -> (Box<Slot>, PipeTx) {
    let (tx, rx) = pipe(1, cfg.period_frames * 64, 64);
    let jitter = JitterBuffer::new(cfg).unwrap();
    let slot = Slot {
        input: Input::pipe(rx, jitter, 48_000).unwrap(),
        output: None,
        mode: MixMode::Minus,
        meter: Meter::new(MeterConfig {
            channels: 1,
            ..MeterConfig::default()
        })
        .unwrap(),
        stats: Arc::default(),
    };
    (Box::new(slot), tx)
}

/// A mixer of `slots` slots of P frames, its command queue and stats.
fn state(slots: usize, channels: u16) -> (MixerState, rtrb::Producer<Command>) {
    state_of(slots, channels, P)
}

/// A mixer of `slots` slots of `period` frames, its command queue and stats.
fn state_of(slots: usize, channels: u16, period: u32) -> (MixerState, rtrb::Producer<Command>) {
    let mixer = Mixer::new(MixerConfig {
        max_slots: slots,
        channels,
        period_frames: period,
        limit: Limit::SoftClip,
    })
    .unwrap();
    let (commands, commands_rx) = RingBuffer::new(8);
    let (garbage, _garbage_rx) = RingBuffer::new(8);
    let s = MixerState::new(
        mixer,
        48_000,
        Vec::new(),
        commands_rx,
        garbage,
        Arc::new(Waker::new().unwrap()),
        Arc::new(MixerStats::default()),
    );
    (s, commands)
}

#[test]
fn a_file_source_with_fewer_channels_than_the_mix_does_not_slice_past_its_input() {
    let (mut s, mut commands) = state(2, 2);
    let clip = crate::file::Clip::from_interleaved(vec![0.5; 64], 48_000, 1);
    let (slot, _tx) = client();
    let slot = Box::new(Slot {
        input: Input::File(ClipReader::new(Arc::new(clip), true)),
        output: None,
        ..*slot
    });
    commands.push(Command::Join(0, slot)).unwrap();
    let mut out = [0.0; 2 * P as usize];
    for _ in 0..4 {
        step(&mut s, &[], &mut out);
    }
    assert!(out.iter().all(|x| x.is_finite()));
}

#[test]
fn a_playback_period_other_than_the_mixers_is_served() {
    let (mut s, _commands) = state(1, 1);
    // A hub device reopened with another period: longer, shorter, empty.
    for len in [3 * P as usize, 1, 0] {
        let mut out = vec![f32::NAN; len];
        step(&mut s, &[], &mut out);
        assert!(out.iter().all(|&x| x == 0.0));
    }
}

#[test]
fn positions_wrap_past_the_end_of_the_stream() {
    let (mut s, _commands) = state(1, 1);
    s.position = u64::MAX - u64::from(P);
    let mut out = [0.0; P as usize];
    step(&mut s, &[], &mut out);
    step(&mut s, &[], &mut out);
    assert_eq!(s.position, u64::from(P) - 1);
}

#[test]
fn inputs_that_all_want_a_cut_in_one_period_take_turns() {
    // Five inputs whose buffers all stand above target + slack in the same period (a
    // burst after a host stall, and `drift_pulls: 1`): only CUTS_PER_PERIOD of them
    // search for their cut in that period, the others in the next ones.
    let (mut s, mut commands) = state(5, 1);
    let mut senders: Vec<PipeTx> = (0..5)
        .map(|i| {
            let (slot, tx) = client_with(JitterConfig {
                slack_frames: P,
                drift_pulls: 1,
                ..JitterConfig::default()
            });
            commands.push(Command::Join(i, slot)).unwrap();
            tx
        })
        .collect();
    let mut out = [0.0; P as usize];
    let mut position = 0;
    let mut send = |senders: &mut [PipeTx], packets: u64| {
        for _ in 0..packets {
            for tx in senders.iter_mut() {
                let meta = PacketMeta {
                    position,
                    origin_ns: 0,
                    frames: P,
                    arrival_ns: 0,
                    locked: false,
                };
                assert!(tx.push(meta, &[0.1; P as usize]));
            }
            position += u64::from(P);
        }
    };
    send(&mut senders, 1);
    step(&mut s, &[], &mut out);
    send(&mut senders, 5);
    let trimmed = |s: &MixerState| {
        s.slots
            .iter()
            .flatten()
            .filter(|slot| slot.stats.trimmed_frames.load(Ordering::Relaxed) > 0)
            .count()
    };
    let mut seen = Vec::new();
    for _ in 0..3 {
        step(&mut s, &[], &mut out);
        seen.push(trimmed(&s));
    }
    let n = CUTS_PER_PERIOD as usize;
    assert_eq!(seen, [n, (2 * n).min(5), (3 * n).min(5)]);
}

#[test]
fn misses_are_counted_per_period_with_the_most_inputs_in_one() {
    let (mut s, mut commands) = state(4, 1);
    let stats = Arc::clone(&s.stats);
    let mut senders: Vec<PipeTx> = (0..3)
        .map(|i| {
            let (slot, tx) = client();
            commands.push(Command::Join(i, slot)).unwrap();
            tx
        })
        .collect();
    let mut out = [0.0; P as usize];
    // Period k: the clients in `who` send their packet k, then the mixer runs.
    let mut period = |k: u64, who: &[usize]| {
        for &i in who {
            let meta = PacketMeta {
                position: k * u64::from(P),
                origin_ns: 0,
                frames: P,
                arrival_ns: 0,
                locked: false,
            };
            assert!(senders[i].push(meta, &[0.1; P as usize]));
        }
        step(&mut s, &[], &mut out);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (load(&stats.miss_periods), load(&stats.widest_miss))
    };
    assert_eq!(period(0, &[0, 1, 2]), (0, 0));
    assert_eq!(period(1, &[0, 1]), (1, 1), "one client late");
    assert_eq!(period(2, &[]), (2, 3), "all three late at once");
    assert_eq!(
        period(3, &[0, 1, 2]),
        (2, 3),
        "all resume where the streams are"
    );
}

/// A hub input whose sender stalls 5 ms every 7 s, over 60 s of 64-frame periods at
/// 48 kHz (the hub's own buffer configuration): it misses at the first stall only, and
/// then keeps the depth that stall showed (the lateness floor, `Input::pipe`). The
/// probing rules alone gave that depth back after a quiet 5 s and missed again (without
/// the floor: at 3 of the 8 stalls, 8 misses; with it, 4 misses at the first).
#[test]
fn a_recurring_stall_costs_misses_once() {
    const PERIOD: u32 = 64;
    let period_ns = u64::from(PERIOD) * 1_000_000_000 / 48_000;
    let (mut s, mut commands) = state_of(1, 1, PERIOD);
    let (slot, mut tx) = client_of(input_jitter_config(1, PERIOD, PERIOD, 48_000));
    let stats = Arc::clone(&slot.stats);
    commands.push(Command::Join(0, slot)).unwrap();
    let mut out = [0.0; PERIOD as usize];
    let mut position = 0u64;
    let mut held = 0u32;
    let mut misses_at = Vec::new();
    let mut floors = Vec::new();
    let stall = 4; // periods: 5.3 ms
    for k in 0..45_000u64 {
        // Pull k at t(k); a packet is captured every period and, unless the sender is
        // stalled, arrives 0.3 ms before the pull.
        let t = 1_000_000_000 + k * period_ns;
        let stalled = k >= 5_250 && k % 5_250 < stall;
        held += 1;
        if !stalled {
            for _ in 0..held {
                let meta = PacketMeta {
                    position,
                    origin_ns: 0,
                    frames: PERIOD,
                    arrival_ns: t - 300_000,
                    locked: false,
                };
                assert!(tx.push(meta, &[0.1; PERIOD as usize]));
                position += u64::from(PERIOD);
            }
            held = 0;
        }
        let before = stats.misses.load(Ordering::Relaxed);
        step_at(&mut s, &[], &mut out, t);
        if stats.misses.load(Ordering::Relaxed) > before {
            misses_at.push(k);
        }
        let floor = stats.floor_frames.load(Ordering::Relaxed);
        assert!(floor <= stats.target_frames.load(Ordering::Relaxed));
        if k % 5_250 == 5_249 {
            floors.push(floor);
        }
    }
    assert!(
        !misses_at.is_empty() && misses_at.iter().all(|&k| k / 5_250 == misses_at[0] / 5_250),
        "misses at pulls {misses_at:?} ({} in all): only the first stall may miss",
        misses_at.len()
    );
    // Published for getMetrics (`jitterFloorFrames`): a period before the first stall,
    // then the stall's 5.3 ms (256 frames) plus the pull's period, in whole periods.
    assert_eq!(
        floors[0],
        u64::from(PERIOD),
        "floors before each stall: {floors:?}"
    );
    assert!(
        floors[1..].iter().all(|&f| f >= 5 * u64::from(PERIOD)),
        "{floors:?}"
    );
}

/// The hub's own device skips 4 periods (an xrun: its thread alone was late) every
/// 3 s for 20 s, while a client keeps its pace. The hub's stream skips each span (its
/// listener finds the positions moved on by exactly the time lost) and the input moves
/// on with it, keeping its depth. Played on from where it was (the build before), the
/// input held each span as latency, up to 320 frames deep (5 periods), until steady
/// windows dropped the excess again, by cuts a listener could hear.
#[test]
fn the_hubs_own_xruns_skip_its_stream_and_its_inputs_keep_their_depth() {
    const PERIOD: u32 = 64;
    const SKIP: u64 = 4;
    let period_ns = u64::from(PERIOD) * 1_000_000_000 / 48_000;
    let counters = Arc::new(crate::device::DeviceCounters::default());
    let (s, mut commands) = state_of(1, 1, PERIOD);
    let mut s = s.following(SkippedFrames::of(Arc::clone(&counters)));
    let (slot, mut tx) = client_of(input_jitter_config(1, PERIOD, PERIOD, 48_000));
    let stats = Arc::clone(&slot.stats);
    let (out_tx, mut out_rx) = pipe(1, PERIOD * 64, 64);
    let slot = Box::new(Slot {
        output: Some(out_tx),
        ..*slot
    });
    commands.push(Command::Join(0, slot)).unwrap();
    let mut out = [0.0; PERIOD as usize];
    let (mut skips, mut heard) = (0, Vec::new());
    let mut deepest = 0;
    for k in 0..15_000u64 {
        // The client's packet k arrives 0.3 ms before the hub's pull k.
        let t = 1_000_000_000 + k * period_ns;
        let meta = PacketMeta {
            position: k * u64::from(PERIOD),
            origin_ns: 0,
            frames: PERIOD,
            arrival_ns: t - 300_000,
            locked: false,
        };
        assert!(tx.push(meta, &[0.1; PERIOD as usize]));
        if k >= 1_000 && k % 2_250 < SKIP {
            // The hub's device is in its xrun: no pull; it counts what it skipped.
            if k % 2_250 == SKIP - 1 {
                counters
                    .lost_frames
                    .fetch_add(SKIP * u64::from(PERIOD), Ordering::Relaxed);
                skips += 1;
            }
            continue;
        }
        step_at(&mut s, &[], &mut out, t);
        while out_rx.pop(|meta, _, _| heard.push(meta.position)) {}
        if k >= 750 {
            deepest = deepest.max(stats.depth_frames.load(Ordering::Relaxed));
        }
    }
    // The listener's stream: a period on at each packet, and the time lost on at a skip.
    let jumps: Vec<(usize, u64)> = heard
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] - w[0] != u64::from(PERIOD))
        .map(|(i, w)| (i, w[1] - w[0]))
        .collect();
    assert_eq!(jumps.len(), skips, "{jumps:?}");
    assert!(
        jumps
            .iter()
            .all(|&(_, d)| d == (SKIP + 1) * u64::from(PERIOD)),
        "{jumps:?}"
    );
    // The input kept its depth, missed nothing and dropped nothing.
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    assert!(deepest <= 2 * u64::from(PERIOD), "{deepest} frames deep");
    assert_eq!(
        (load(&stats.misses), load(&stats.dropped_frames)),
        (0, 0),
        "misses, drops"
    );
}

#[test]
fn inputs_that_all_miss_at_once_search_for_their_lags_within_the_budget() {
    // Six inputs, each a tone of its own, all dry in the same period (their senders'
    // host stalled): only CUTS_PER_PERIOD of them run a full search for their
    // continuation's lag in it; the others are counted as skipped. At the next common
    // miss the searched ones continue near the lag they found (no search), and the
    // budget goes to the others: every input has its lag after a few misses.
    const Q: u32 = 64;
    const N: usize = 6;
    let (mut s, mut commands) = state_of(N, 1, Q);
    let mut senders: Vec<PipeTx> = (0..N)
        .map(|i| {
            let (slot, tx) = client_of(JitterConfig {
                channels: 1,
                period_frames: Q,
                initial_target_frames: Q,
                min_target_frames: Q,
                // Held at one period, so that every withheld packet is a miss.
                max_target_frames: Q,
                ..JitterConfig::default()
            });
            commands.push(Command::Join(i, slot)).unwrap();
            tx
        })
        .collect();
    let tone = |i: usize, n: u64| {
        let f = 300.0 + 70.0 * i as f32;
        (std::f32::consts::TAU * f * n as f32 / 48_000.0).sin() * 0.1
    };
    let mut out = [0.0; Q as usize];
    let mut position = 0u64;
    let counts = |s: &MixerState| {
        s.slots
            .iter()
            .flatten()
            .fold((0, 0), |(full, skipped), slot| {
                let Input::Pipe { jitter, .. } = &slot.input else {
                    return (full, skipped);
                };
                let c = jitter.conceal();
                (full + c.lag_searches(), skipped + c.skipped_searches())
            })
    };
    let mut seen = Vec::new();
    // Every 40th period's packet is lost.
    for k in 1..=200u64 {
        if k % 40 == 0 {
            position += u64::from(Q);
        } else {
            for (i, tx) in senders.iter_mut().enumerate() {
                let meta = PacketMeta {
                    position,
                    origin_ns: 0,
                    frames: Q,
                    arrival_ns: 0,
                    // Half the senders say they are locked to the hub's clock.
                    locked: i % 2 == 0,
                };
                let samples: Vec<f32> = (position..position + u64::from(Q))
                    .map(|n| tone(i, n))
                    .collect();
                assert!(tx.push(meta, &samples));
            }
            position += u64::from(Q);
        }
        let before = counts(&s);
        step(&mut s, &[], &mut out);
        let after = counts(&s);
        assert!(
            after.0 - before.0 <= u64::from(CUTS_PER_PERIOD),
            "period {k}: {} searches",
            after.0 - before.0
        );
        if k % 40 == 0 {
            seen.push(after);
        }
    }
    let n = u64::from(CUTS_PER_PERIOD);
    assert_eq!(seen[0], (n, N as u64 - n), "the first common miss");
    assert_eq!(seen[1], (2 * n, N as u64 - n + N as u64 - 2 * n));
    assert_eq!(seen[2].0, N as u64, "every input searched once");
    assert_eq!(
        seen[4].0, N as u64,
        "and never again: the pitch did not move"
    );
    // What the mixer publishes for getMetrics says the same, input by input.
    let mut published = (0, 0);
    for slot in s.slots.iter().flatten() {
        let Input::Pipe { jitter, .. } = &slot.input else {
            continue;
        };
        let st = &slot.stats;
        let skipped = st.lag_searches_skipped.load(Ordering::Relaxed);
        assert_eq!(skipped, jitter.conceal().skipped_searches());
        let resumes = st.resumes_in_phase.load(Ordering::Relaxed);
        assert_eq!(resumes, jitter.buffer().aligned_resumes());
        published = (published.0 + skipped, published.1 + resumes);
    }
    assert_eq!(published.0, seen[4].1, "skipped searches published");
    assert!(published.1 > 0, "no gap ended in phase");
    let locked: Vec<bool> = s
        .slots
        .iter()
        .flatten()
        .map(|slot| slot.stats.sender_locked())
        .collect();
    assert_eq!(locked, (0..N).map(|i| i % 2 == 0).collect::<Vec<_>>());
}

/// Two clients whose inputs stand four periods above the target (a burst the sender
/// never repays): the one whose packets say `CLOCK_LOCKED` is trimmed after
/// [`LOCKED_TRIM_S`], the other after its buffer's `drift_pulls` (1 s), as before.
#[test]
fn a_locked_senders_input_waits_longer_before_its_drift_trim() {
    const PERIOD: u32 = 64;
    let period_ns = u64::from(PERIOD) * 1_000_000_000 / 48_000;
    let (mut s, mut commands) = state_of(2, 1, PERIOD);
    let mut senders: Vec<(PipeTx, Arc<SlotStats>)> = (0..2)
        .map(|i| {
            let (slot, tx) = client_of(input_jitter_config(1, PERIOD, PERIOD, 48_000));
            let stats = Arc::clone(&slot.stats);
            commands.push(Command::Join(i, slot)).unwrap();
            (tx, stats)
        })
        .collect();
    let mut out = [0.0; PERIOD as usize];
    let mut position = 0u64;
    let mut trimmed_at = [None; 2];
    let pulls = (LOCKED_TRIM_S * 1.5 * 48_000.0 / f64::from(PERIOD)) as u64;
    for k in 0..pulls {
        let t = 1_000_000_000 + k * period_ns;
        // Five packets at first, then one a period, each 0.3 ms before the pull.
        for _ in 0..if k == 0 { 5 } else { 1 } {
            for (i, (tx, _)) in senders.iter_mut().enumerate() {
                let meta = PacketMeta {
                    position,
                    origin_ns: 0,
                    frames: PERIOD,
                    arrival_ns: t - 300_000,
                    locked: i == 1,
                };
                assert!(tx.push(meta, &[0.1; PERIOD as usize]));
            }
            position += u64::from(PERIOD);
        }
        step_at(&mut s, &[], &mut out, t);
        for (at, (_, stats)) in trimmed_at.iter_mut().zip(&senders) {
            if at.is_none() && stats.trimmed_frames.load(Ordering::Relaxed) > 0 {
                *at = Some(k as f64 * f64::from(PERIOD) / 48_000.0);
            }
        }
    }
    let [Some(unlocked), Some(locked)] = trimmed_at else {
        panic!("both inputs should have been trimmed: {trimmed_at:?}");
    };
    assert!(
        (0.95..1.05).contains(&unlocked),
        "unlocked trimmed at {unlocked} s"
    );
    assert!(
        (LOCKED_TRIM_S - 0.05..LOCKED_TRIM_S + 0.05).contains(&locked),
        "locked trimmed at {locked} s"
    );
}
