//! The jitter buffer's unit tests: the ring, its readers and the configuration here, the
//! adaptation policy of `pull` in `adapt.rs` and `clocks.rs`; the helpers below serve all.

use super::*;

mod adapt;
mod clocks;
mod floor;

const P: u32 = 4;

fn cfg() -> JitterConfig {
    JitterConfig {
        channels: 2,
        period_frames: P,
        capacity_frames: 64,
        initial_target_frames: P,
        min_target_frames: P,
        max_target_frames: 4 * P,
        slack_frames: 2 * P,
        steady_pulls: 10,
        drift_pulls: 1,
        margin_ns: 0,
    }
}

/// A stereo packet whose frame at position `x` is (x, −x).
fn packet(position: u64, frames: u64) -> Vec<f32> {
    (position..position + frames)
        .flat_map(|x| [x as f32, -(x as f32)])
        .collect()
}

fn pull(jb: &mut JitterBuffer) -> (PullResult, Vec<f32>) {
    let mut out = vec![9.0; (P * 2) as usize];
    let r = jb.pull(&mut out);
    (r, out)
}

/// Steady flow: push a period at `pos`, pull one; returns the next position.
fn steady(jb: &mut JitterBuffer, mut pos: u64, pulls: u32) -> u64 {
    for _ in 0..pulls {
        jb.push(pos, &packet(pos, P.into()));
        pos += u64::from(P);
        let (r, out) = pull(jb);
        assert_eq!(r, PullResult::Played, "at {pos}");
        // A contiguous period of the stream.
        assert_eq!(out, packet(out[0] as u64, P.into()), "at {pos}");
    }
    pos
}

#[test]
fn steady_flow_has_no_misses_after_priming() {
    // (No shrinking within this test: that is tested below.)
    let mut jb = JitterBuffer::new(JitterConfig {
        initial_target_frames: 2 * P,
        steady_pulls: 1_000,
        ..cfg()
    })
    .unwrap();
    assert_eq!(pull(&mut jb), (PullResult::Priming, vec![0.0; 8]));
    jb.push(0, &packet(0, 4));
    assert_eq!(pull(&mut jb).0, PullResult::Priming);
    jb.push(4, &packet(4, 4));
    // Primed: audio in order, from position 0.
    let mut expect = 0u64;
    for i in 0..100u64 {
        let (r, out) = pull(&mut jb);
        assert_eq!(r, PullResult::Played, "pull {i}");
        assert_eq!(out, packet(expect, 4));
        expect += 4;
        jb.push(8 + 4 * i, &packet(8 + 4 * i, 4));
    }
    assert_eq!(jb.misses(), 0);
    assert_eq!(jb.dropped_frames(), 0);
    assert_eq!(jb.depth_frames(), 8);
    assert_eq!(jb.depth_samples(), 16);
    assert_eq!(jb.depth_ms(8_000), 1.0);
    assert_eq!(jb.depth_ms(0), 0.0);
}

#[test]
fn reordered_duplicate_and_late_packets() {
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    // Reordered: 4 arrives before 0; duplicates of 4 are ignored.
    jb.push(0, &packet(0, 4));
    jb.push(8, &packet(8, 4));
    jb.push(4, &packet(4, 4));
    let dup = jb.push(4, &[7.0; 8]);
    assert_eq!(dup.duplicate, 4);
    assert_eq!(dup.stored, 0);
    assert_eq!(jb.duplicate_frames(), 4);
    for want in [0, 4, 8] {
        let (r, out) = pull(&mut jb);
        assert_eq!(r, PullResult::Played);
        assert_eq!(out, packet(want, 4));
    }
    // Late: position 4 was already read; dropped and counted, nothing changes.
    let late = jb.push(4, &packet(4, 4));
    assert_eq!((late.late, late.stored), (4, 0));
    assert_eq!(jb.late_packets(), 1);
    // Partly late: the in-time tail is kept.
    let part = jb.push(10, &packet(10, 4));
    assert_eq!((part.late, part.stored), (2, 2));
    assert_eq!(jb.late_packets(), 2);
    jb.push(14, &packet(14, 2));
    let (r, out) = pull(&mut jb);
    assert_eq!(r, PullResult::Played);
    assert_eq!(out, packet(12, 4));
    assert_eq!(jb.misses(), 0);
}

#[test]
fn a_taking_reader_skips_only_the_span_it_already_played_dry() {
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    jb.push(0, &packet(0, 8));
    let mut out = vec![0.0; 2 * 8];
    assert_eq!(jb.take(&mut out), 8);
    // Dry by 3 frames, then the stream resumes 8 frames on (a lost packet).
    let mut out = vec![0.0; 2 * 3];
    assert_eq!(jb.take(&mut out), 0);
    let r = jb.push(16, &packet(16, 4));
    assert_eq!(r.skipped, 3, "{r:?}");
    // The 5 lost frames the dry reads did not cover are a hole ahead, then the audio.
    let mut out = vec![9.0; 2 * 9];
    assert_eq!(jb.take(&mut out), 9);
    assert_eq!(jb.gap(), Some(0..5));
    assert_eq!(out[10..], packet(16, 4)[..]);
}

#[test]
fn packets_and_holes_across_the_ring_wrap() {
    // Capacity 64: positions 60..72 straddle the ring's end.
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    jb.push(60, &packet(60, 4));
    jb.push(66, &packet(66, 2));
    // 62..68 overlaps both sides of the hole at 64..66, across the wrap.
    let r = jb.push(62, &packet(62, 6));
    assert_eq!((r.stored, r.duplicate), (2, 4));
    assert_eq!(pull(&mut jb), (PullResult::Played, packet(60, 4)));
    assert_eq!(pull(&mut jb), (PullResult::Played, packet(64, 4)));
    // A hole at 68..70, then 70..74: the pull plays the hole as silence.
    jb.push(70, &packet(70, 4));
    let (_, out) = pull(&mut jb);
    assert_eq!(out, [&[0.0; 4][..], &packet(70, 2)].concat());
    assert_eq!(pull(&mut jb).1[..4], packet(72, 2)[..]);
}

#[test]
fn a_gap_is_silence_and_a_miss_only_when_read() {
    let mut jb = JitterBuffer::new(JitterConfig {
        initial_target_frames: 3 * P,
        ..cfg()
    })
    .unwrap();
    // Position 4..8 never arrives.
    jb.push(0, &packet(0, 4));
    jb.push(8, &packet(8, 4));
    assert_eq!(jb.depth_frames(), 12);
    assert_eq!(pull(&mut jb).0, PullResult::Played);
    assert_eq!(jb.misses(), 0);
    let (r, out) = pull(&mut jb);
    assert_eq!(
        r,
        PullResult::Miss {
            played: 0,
            silent: 4
        }
    );
    assert_eq!(out, vec![0.0; 8]);
    assert_eq!(jb.misses(), 1);
    // Audio the sender skipped (over TCP nothing comes out of order): a deeper buffer
    // would not bring it back, so nothing grows.
    assert_eq!(jb.target_frames(), 3 * P);
    // The gap was passed over, not waited for: the next period is the audio after it.
    let (r, out) = pull(&mut jb);
    assert_eq!(r, PullResult::Played);
    assert_eq!(out, packet(8, 4));

    // A gap that a drift trim discards is never needed: no miss.
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    jb.push(0, &packet(0, 4));
    jb.push(8, &packet(8, 20)); // 4..8 missing, depth 28 > target 4 + slack 8
    let (r, out) = pull(&mut jb);
    assert_eq!(r, PullResult::Played);
    assert_eq!(out, packet(24, 4));
    assert_eq!(jb.misses(), 0);
    assert_eq!(jb.dropped_frames(), 20);
}

#[test]
fn underrun_plays_what_it_has_then_silence() {
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    jb.push(0, &packet(0, 4));
    pull(&mut jb);
    jb.push(4, &packet(4, 2));
    let (r, out) = pull(&mut jb);
    assert_eq!(
        r,
        PullResult::Miss {
            played: 2,
            silent: 2
        }
    );
    assert_eq!(out, [4.0, -4.0, 5.0, -5.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(jb.depth_frames(), 0);
    assert!(!jb.is_playing());
    // Later frames continue where the stream is (position 6), after rebuffering.
    jb.push(6, &packet(6, 8));
    let (r, out) = pull(&mut jb);
    assert_eq!(r, PullResult::Played);
    assert_eq!(out, packet(6, 4));
}

#[test]
fn full_buffer_drops_the_oldest() {
    let mut jb = JitterBuffer::new(JitterConfig {
        initial_target_frames: 4 * P,
        ..cfg()
    })
    .unwrap();
    // 64 frames fit; 80 arrive without a pull.
    for k in 0..20 {
        let r = jb.push(4 * k, &packet(4 * k, 4));
        assert_eq!(r.evicted, if k >= 16 { 4 } else { 0 }, "{k}");
    }
    assert_eq!(jb.depth_frames(), 64);
    assert_eq!(jb.dropped_frames(), 16);
    // A packet larger than the ring keeps its newest frames.
    let r = jb.push(80, &packet(80, 70));
    assert_eq!((r.stored, r.evicted), (64, 70));
    assert_eq!(jb.dropped_frames(), 86);
    assert_eq!(jb.depth_frames(), 64);
    // A far jump: everything older goes, in bounded work.
    let r = jb.push(1 << 40, &packet(1 << 40, 4));
    assert_eq!(r.evicted, 64);
    assert_eq!(jb.depth_frames(), 64); // mostly a hole before the new packet
    // Drift trim on the next pull: depth > 16 + 8, back to the target (16 frames),
    // and those 16 are the newest: 12 frames of hole, then the packet.
    let (r, _) = pull(&mut jb);
    assert_eq!(
        r,
        PullResult::Miss {
            played: 0,
            silent: 4
        }
    );
    jb.reset();
    assert_eq!(jb.depth_frames(), 0);
    assert_eq!(pull(&mut jb).0, PullResult::Priming);
}

#[test]
fn odd_input_does_not_panic() {
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    // A trailing partial frame is ignored; an empty packet does nothing.
    assert_eq!(jb.push(0, &[1.0, 2.0, 3.0]).stored, 1);
    assert_eq!(jb.push(5, &[]).stored, 0);
    jb.push(u64::MAX - 1, &[1.0; 8]);
    let mut odd = [5.0f32; 3];
    jb.pull(&mut odd);
    assert_eq!(odd[2], 0.0);
    jb.pull(&mut []);
    for _ in 0..100 {
        jb.push(u64::MAX - 1, &[1.0; 8]);
        jb.pull(&mut [0.0; 8]);
    }
}

#[test]
fn constructor_errors_name_the_setting() {
    let cases: [(JitterConfig, &str); 8] = [
        (
            JitterConfig {
                channels: 0,
                ..cfg()
            },
            "channels 0",
        ),
        (
            JitterConfig {
                period_frames: 0,
                ..cfg()
            },
            "period_frames 0",
        ),
        (
            JitterConfig {
                min_target_frames: 2,
                ..cfg()
            },
            "min_target_frames 2",
        ),
        (
            JitterConfig {
                max_target_frames: 3 * P,
                initial_target_frames: 4 * P,
                ..cfg()
            },
            "initial_target_frames 16",
        ),
        (
            JitterConfig {
                slack_frames: 1,
                ..cfg()
            },
            "slack_frames 1",
        ),
        (
            JitterConfig {
                capacity_frames: 27,
                ..cfg()
            },
            "capacity_frames 27 is not allowed (allowed: at least max_target_frames + slack_frames + period_frames (28)",
        ),
        (
            JitterConfig {
                steady_pulls: 0,
                ..cfg()
            },
            "steady_pulls 0",
        ),
        (
            JitterConfig {
                drift_pulls: 0,
                ..cfg()
            },
            "drift_pulls 0",
        ),
    ];
    for (c, needle) in cases {
        let e = JitterBuffer::new(c).unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    assert!(JitterBuffer::new(JitterConfig::default()).is_ok());
}
