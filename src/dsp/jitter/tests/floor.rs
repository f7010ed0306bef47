//! Unit tests of the lateness floor (`JitterBuffer::set_floor`): the least target a
//! reader's measure of the stream's lateness sets under the probing rules of `adapt.rs`.

use super::*;

/// Playing a period deep, the floor rises to three periods: nothing is inserted (the
/// depth rises only when the stream next runs dry), the refill after the next stall goes
/// to the floor, and no steady window gives that depth back while the floor stands. When
/// it falls, what stands above the probing target goes in one drop at the next window's
/// end. The same stall without a floor: the depth goes back a period a window.
#[test]
fn the_floor_keeps_the_depth_a_stall_needed_and_falls_in_one_drop() {
    let p = u64::from(P);
    for floor in [true, false] {
        let mut jb = JitterBuffer::new(cfg()).unwrap();
        let mut pos = steady(&mut jb, 0, 5);
        if floor {
            jb.set_floor(2 * P + 1); // whole periods: 3P
            assert_eq!(jb.target_frames(), 3 * P);
        }
        pos = steady(&mut jb, pos, 5);
        assert_eq!((jb.misses(), jb.depth_frames()), (0, 0), "nothing inserted");
        // A stall: one pull dry, then the backlog arrives at once.
        assert!(matches!(pull(&mut jb).0, PullResult::Miss { .. }));
        for _ in 0..3 {
            jb.push(pos, &packet(pos, p));
            pos += p;
        }
        assert_eq!(pull(&mut jb).0, PullResult::Played);
        // Three windows of steady flow at 3P before each pull.
        pos = steady(&mut jb, pos, 30);
        let case = if floor { "floor" } else { "no floor" };
        assert_eq!(jb.misses(), 1, "{case}");
        if !floor {
            // The burst's extra period went, then the period the target grew by.
            assert_eq!(jb.dropped_frames(), 2 * p, "{case}");
            continue;
        }
        assert_eq!(jb.dropped_frames(), 0, "{case}: the floor's depth stays");
        assert_eq!(jb.depth_frames(), 2 * p);
        // The floor falls: the probing target (2P after the burst) is what remains, and
        // the period above it goes at the next window's end, at once.
        jb.set_floor(0);
        assert_eq!(jb.target_frames(), 2 * P);
        pos = steady(&mut jb, pos, 10);
        assert_eq!(jb.dropped_frames(), p);
        let _ = steady(&mut jb, pos, 5);
        assert_eq!(jb.misses(), 1);
    }
}

/// The floor is whole periods and never above the largest target.
#[test]
fn the_floor_is_whole_periods_within_the_largest_target() {
    let mut jb = JitterBuffer::new(cfg()).unwrap();
    for (floor, target) in [(0, P), (1, P), (P + 1, 2 * P), (100 * P, 4 * P)] {
        jb.set_floor(floor);
        assert_eq!(jb.target_frames(), target, "floor {floor}");
    }
}
