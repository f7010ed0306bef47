//! Fuzzes the playout path: the first bytes choose a ring (channels, period, targets,
//! slack, capacity) and a rate; every further 4-byte group is one operation on the hub's
//! jitter buffer (with its concealment) and a client's locked playout side by side: push a
//! packet (any size, at the sender's position, behind it, or as a duplicate), lose one,
//! jump the stream anywhere in u64 (wrapping), pull a period (the hub: its mixer period;
//! the client: any device period), trim, reset, report a device xrun. Any panic is a bug;
//! so is an output sample that is not finite or beyond the bound the property test
//! (`tests/playout_props.rs`) states for finite input within [-1, 1], or a depth beyond the
//! ring's capacity.
#![no_main]

use izyrt::dsp::jitter::{JitterBuffer, JitterConfig, PullResult};
use izyrt::dsp::playout::conceal::Conceal;
use izyrt::dsp::playout::{Playout, PlayoutConfig};
use libfuzzer_sys::fuzz_target;

/// The resampler's worst-case gain (see `tests/playout_props.rs`).
const PLAYOUT_GAIN: f32 = 2.2;
/// The largest packet and pull, frames.
const MOST: usize = 4_096;

fuzz_target!(|data: &[u8]| {
    let Some((head, ops)) = data.split_first_chunk::<8>() else {
        return;
    };
    let channels = 1 + u16::from(head[0] & 1);
    let period = 1 + u32::from(head[1] & 127);
    let max = period * (1 + u32::from(head[2] & 7));
    let min = period * (1 + u32::from(head[3] & 7)).min(max / period);
    let slack = period * (1 + u32::from(head[4] & 3));
    let rate = [8_000, 44_100, 48_000, 96_000][usize::from(head[5] & 3)];
    let start = match head[6] & 3 {
        0 => 0,
        1 => u64::MAX - u64::from(head[7]) * 64,
        2 => u64::from(u32::MAX) - u64::from(head[7]) * 64,
        _ => u64::from(head[7]) << 56,
    };
    let cfg = JitterConfig {
        channels,
        period_frames: period,
        capacity_frames: max + slack + period + u32::from(head[7] & 63),
        initial_target_frames: min,
        min_target_frames: min,
        max_target_frames: max,
        slack_frames: slack,
        steady_pulls: 1 + u32::from(head[5] >> 2),
        drift_pulls: 1 + u32::from(head[6] >> 2),
        margin_ns: 500_000,
    };
    let ch = usize::from(channels);
    let Ok(mut jb) = JitterBuffer::new(cfg) else {
        return;
    };
    let Ok(mut conceal) = Conceal::new(channels, rate) else {
        return;
    };
    let Ok(mut playout) = Playout::new(PlayoutConfig {
        ring: cfg,
        rate,
        pull_frames: period,
    }) else {
        return;
    };
    let mut packet = vec![0.0f32; MOST * ch];
    let mut hub_out = vec![0.0f32; period as usize * ch];
    let mut client_out = vec![0.0f32; MOST * ch + 1];
    let mut pos = start;
    let mut last = (start, 0usize);
    let mut now = 1_000_000_000u64;
    for op in ops.chunks_exact(4) {
        let arg = usize::from(u16::from_le_bytes([op[1], op[2]]));
        let level = f32::from(op[3] as i8) / 128.0;
        match op[0] % 10 {
            // Send `arg` frames (mod MOST) at the sender's position, alternate signs.
            0..=2 => {
                let frames = arg % (MOST + 1);
                let p = &mut packet[..frames * ch];
                for (i, x) in p.iter_mut().enumerate() {
                    *x = if (i / ch) % 2 == 1 && op[0] & 0x80 != 0 {
                        -level
                    } else {
                        level
                    };
                }
                push(&mut jb, &mut playout, pos, p, now);
                last = (pos, frames);
                pos = pos.wrapping_add(frames as u64);
            }
            // Lose a packet.
            3 => pos = pos.wrapping_add((arg % (MOST + 1)) as u64),
            // The last packet again, or a packet `arg` frames behind.
            4 => {
                let (at, frames) = if op[0] & 0x80 != 0 {
                    last
                } else {
                    (pos.wrapping_sub(arg as u64), usize::from(op[3]) % 300)
                };
                push(&mut jb, &mut playout, at, &packet[..frames * ch], now);
            }
            // The stream jumps anywhere (wrapping).
            5 => {
                pos = pos.wrapping_add(u64::from_le_bytes([
                    op[1], op[2], op[3], op[1], op[2], op[3], 0, op[3],
                ]))
            }
            // Pull: the hub's period, and the client's device period (`arg`, up to MOST,
            // a trailing partial frame when the top bit is set).
            6..=8 => {
                now += 1_333_333 + u64::from(op[3]) * 10_000;
                hub_out.fill(f32::NAN);
                let r = jb.pull_at(&mut hub_out, now);
                if r == PullResult::Priming {
                    conceal.reset();
                } else {
                    conceal.process(&mut hub_out, jb.gap());
                }
                if let PullResult::Miss { played, silent } = r {
                    assert_eq!(played + silent, period);
                }
                check(&hub_out, 1.0);
                let frames = arg % (MOST + 1);
                let len = frames * ch + usize::from(op[0] & 0x80 != 0 && ch > 1);
                let out = &mut client_out[..len];
                out.fill(f32::NAN);
                playout.pull(out);
                check(out, PLAYOUT_GAIN);
                assert!(jb.depth_frames() <= u64::from(cfg.capacity_frames));
                assert!(playout.depth_frames() <= u64::from(cfg.capacity_frames));
                assert!((min..=max).contains(&jb.target_frames()));
                assert!(playout.target_frames() <= max);
            }
            // A device xrun on the client, or a stream restart on both.
            _ => {
                if op[0] & 0x80 != 0 {
                    jb.reset();
                    conceal.reset();
                    playout.reset();
                } else {
                    playout.device_skipped(arg as u64);
                }
            }
        }
    }
});

fn push(jb: &mut JitterBuffer, playout: &mut Playout, at: u64, samples: &[f32], now: u64) {
    let frames = (samples.len() / usize::from(jb.config().channels)) as u64;
    let r = jb.push_at(at, samples, now);
    // (`evicted` also counts older frames dropped to make room: not bounded by these.)
    assert!(r.stored + r.late + r.duplicate <= frames, "{r:?}");
    playout.push_at(at, samples, now);
}

fn check(out: &[f32], bound: f32) {
    for &x in out {
        assert!(x.is_finite() && x.abs() <= bound, "sample {x}");
    }
}
