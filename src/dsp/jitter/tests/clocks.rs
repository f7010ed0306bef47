//! Unit tests of `pull` between two clocks (`jitter/adapt.rs`): a sender faster than
//! the reader, whose excess is trimmed while a stall's burst is kept, and a reader whose
//! device skipped time ([`skip`](JitterBuffer::skip)).

use super::*;

#[test]
fn fast_sender_drift_is_bounded() {
    // The sender delivers 5 frames per 4-frame pull (25 % fast, an extreme clock).
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    let bound = u64::from(jb.target_frames() + jb.config().slack_frames);
    let mut pos = 0;
    let mut max_depth = 0;
    for _ in 0..1_000 {
        jb.push(pos, &packet(pos, 5));
        pos += 5;
        assert_eq!(pull(&mut jb).0, PullResult::Played);
        max_depth = max_depth.max(jb.depth_frames());
        assert!(jb.depth_frames() <= bound, "{}", jb.depth_frames());
    }
    assert_eq!(jb.misses(), 0);
    assert_eq!(jb.target_frames(), P);
    // 5000 frames in, 1000 pulls × 4 out (minus the first priming fill): the rest was
    // trimmed, not accumulated.
    assert_eq!(jb.dropped_frames() + 4_000 + jb.depth_frames(), 5_000);
    assert!(
        max_depth > u64::from(P),
        "the drift never built up: {max_depth}"
    );
}

#[test]
fn a_burst_after_a_stall_is_kept_while_drift_is_trimmed() {
    let mut jb = JitterBuffer::new(JitterConfig {
        drift_pulls: 4,
        ..cfg()
    })
    .unwrap();
    let mut pos = steady(&mut jb, 0, 20);
    // A stall, then its packets all at once: depth target + 3 periods, above the
    // 2-period slack for 3 pulls only; it drains by itself and nothing is dropped.
    pos = ahead_by(&mut jb, pos, 3);
    for _ in 0..3 {
        assert_eq!(pull(&mut jb).0, PullResult::Played);
    }
    assert_eq!(jb.dropped_frames(), 0);
    // A floor that stays high (a fast sender): trimmed after 4 pulls above the slack.
    let _ = ahead_by(&mut jb, pos, 4);
    assert!(jb.dropped_frames() > 0);
    assert!(jb.depth_frames() <= u64::from(jb.target_frames()));
}

/// Pushes `periods` periods from `pos` at once, then as many again each with a pull (all
/// played, each a contiguous period): the buffer stands `periods` above where it was for that many pulls. Returns
/// the next position.
fn ahead_by(jb: &mut JitterBuffer, mut pos: u64, periods: u32) -> u64 {
    for _ in 0..periods {
        jb.push(pos, &packet(pos, u64::from(P)));
        pos += u64::from(P);
    }
    steady(jb, pos, periods)
}

#[test]
fn a_skip_of_the_readers_time_moves_a_playing_stream_on_and_nothing_else() {
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    // Priming: nothing to skip, the stream starts where it was.
    jb.push(0, &packet(0, P.into()));
    assert_eq!(jb.skip(u64::from(8 * P)), 0);
    let mut pos = steady(&mut jb, u64::from(P), 5);
    // Playing: the sender went on while the reader's device skipped 3 periods; the
    // stream moves on by them and plays its time at the reader's, as deep as before.
    let depth = jb.depth_frames();
    for _ in 0..3 {
        jb.push(pos, &packet(pos, P.into()));
        pos += u64::from(P);
    }
    assert_eq!(jb.skip(u64::from(3 * P)), u64::from(3 * P));
    assert_eq!(jb.depth_frames(), depth);
    let expected = pos - depth;
    jb.push(pos, &packet(pos, P.into()));
    pos += u64::from(P);
    let (r, out) = pull(&mut jb);
    assert_eq!((r, out), (PullResult::Played, packet(expected, P.into())));
    // Not a miss, not a drop.
    assert_eq!((jb.misses(), jb.dropped_frames()), (0, 0));
    // A skip past what came: the reader's time is ahead of the stream; what comes for
    // the skipped span is late, and the stream refills to its target after it.
    let held = jb.depth_frames();
    assert_eq!(jb.skip(held + u64::from(2 * P)), held);
    assert_eq!(jb.depth_frames(), 0);
    let (r, _) = pull(&mut jb);
    assert!(matches!(r, PullResult::Miss { .. }), "{r:?}");
    jb.push(pos, &packet(pos, P.into()));
    assert!(jb.late_packets() > 0);
    // Rebuffering: waits for its target, skips nothing.
    assert_eq!(jb.skip(u64::from(P)), 0);
}
