use super::jitter_config;
use crate::dsp::jitter::JitterBuffer;

#[test]
fn the_speaker_buffer_keeps_large_hub_packets_and_trims_what_xruns_leave() {
    let (p, rate) = (16u32, 48_000);
    let pulls_per_s = rate / p;
    let mut jb = JitterBuffer::new(jitter_config(2, p, rate)).unwrap();
    let mut out = vec![0.0; 2 * p as usize];
    // A hub with 256-frame packets: one every 16 pulls, for 10 s. The depth swings by
    // 16 periods, far above the slack, and nothing is trimmed or missed.
    let big = vec![0.25; 2 * 256];
    let mut pos = 0u64;
    for i in 0..pulls_per_s * 10 {
        if i % 16 == 0 {
            jb.push(pos, &big);
            pos += 256;
        }
        let _ = jb.pull(&mut out);
    }
    assert_eq!((jb.dropped_frames(), jb.misses()), (0, 0));

    // Packets of one period, and the speaker misses 10 periods (an xrun): the 10
    // periods of excess are trimmed within a second and a half, not kept for good.
    let mut jb = JitterBuffer::new(jitter_config(2, p, rate)).unwrap();
    let small = vec![0.25; 2 * p as usize];
    let mut pos = 0u64;
    let mut push = |jb: &mut JitterBuffer| {
        jb.push(pos, &small);
        pos += u64::from(p);
    };
    for _ in 0..pulls_per_s {
        push(&mut jb);
        let _ = jb.pull(&mut out);
    }
    let before = jb.depth_frames();
    for _ in 0..10 {
        push(&mut jb);
    }
    assert_eq!(jb.depth_frames(), before + 10 * u64::from(p));
    for _ in 0..pulls_per_s * 3 / 2 {
        push(&mut jb);
        let _ = jb.pull(&mut out);
    }
    assert!(
        jb.depth_frames() <= u64::from(jb.target_frames() + 4 * p),
        "depth {} with target {}",
        jb.depth_frames(),
        jb.target_frames()
    );
    assert_eq!(jb.misses(), 0);
}
