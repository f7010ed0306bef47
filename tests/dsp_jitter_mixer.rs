//! The RT rule for the jitter buffer and the mixer, proven with the counting allocator:
//! once built, a steady-state stretch of jitter-buffer pushes and pulls (with priming,
//! misses, a stall, reordered, duplicate and late packets, drift trims and a full buffer)
//! and mixer periods over 32 slots in every mode allocate nothing. A control shows the
//! counter does see an allocation made inside the same kind of stretch.

use izyrt::dsp::jitter::{JitterBuffer, JitterConfig, PullResult};
use izyrt::dsp::mixer::{Limit, MixMode, Mixer, MixerConfig};
use izyrt::rt::alloc_count::{CountingAllocator, count_allocations};

#[global_allocator]
static A: CountingAllocator = CountingAllocator;

const PERIOD: usize = 64;
const CHANNELS: usize = 2;

/// What a jitter-buffer stretch exercised.
#[derive(Debug, Default)]
struct Seen {
    played: u64,
    misses: u64,
    priming: u64,
    late_packets: u64,
    duplicate_frames: u64,
    dropped_frames: u64,
    max_target: u32,
    min_target_after_max: u32,
}

/// Drives a jitter buffer through every path for `cycles` periods, using only the
/// preallocated `packet` and `out` buffers. With `allocate_at`, allocates once in that
/// cycle (the control).
fn jitter_stretch(
    jb: &mut JitterBuffer,
    packet: &mut [f32],
    out: &mut [f32],
    cycles: u64,
    allocate_at: Option<u64>,
) -> Seen {
    let frames = PERIOD as u64;
    let mut pos = 0u64;
    let mut seen = Seen::default();
    let send = |jb: &mut JitterBuffer, at: u64, packet: &mut [f32]| {
        for (i, s) in packet.iter_mut().enumerate() {
            *s = ((at as usize * CHANNELS + i) % 1000) as f32 / 1000.0;
        }
        jb.push(at, packet);
    };
    for cycle in 0..cycles {
        match cycle % 400 {
            // Nothing yet: the reader primes.
            _ if cycle == 0 => {}
            // A stall: nothing arrives for 5 periods, then the backlog at once.
            100..105 => {}
            105 => {
                for _ in 0..6 {
                    send(jb, pos, packet);
                    pos += frames;
                }
            }
            // Reordered pair.
            200 => {
                send(jb, pos + frames, packet);
                send(jb, pos, packet);
                pos += 2 * frames;
            }
            // A duplicate and a late packet.
            250 => {
                send(jb, pos, packet);
                send(jb, pos, packet);
                send(jb, 0, packet);
                pos += frames;
            }
            // Fast sender: an extra packet every cycle for a while (drift trims).
            300..320 => {
                for _ in 0..2 {
                    send(jb, pos, packet);
                    pos += frames;
                }
            }
            // A burst larger than the ring: the oldest are evicted.
            350 => {
                for _ in 0..40 {
                    send(jb, pos, packet);
                    pos += frames;
                }
            }
            _ => {
                send(jb, pos, packet);
                pos += frames;
            }
        }
        match jb.pull(out) {
            PullResult::Played => seen.played += 1,
            PullResult::Priming => seen.priming += 1,
            PullResult::Miss { .. } => {}
        }
        seen.max_target = seen.max_target.max(jb.target_frames());
        if allocate_at == Some(cycle) {
            std::hint::black_box(Box::new(cycle));
        }
    }
    seen.misses = jb.misses();
    seen.late_packets = jb.late_packets();
    seen.duplicate_frames = jb.duplicate_frames();
    seen.dropped_frames = jb.dropped_frames();
    seen.min_target_after_max = jb.target_frames();
    jb.reset_misses();
    seen
}

fn jitter_buffer() -> JitterBuffer {
    JitterBuffer::new(JitterConfig {
        channels: CHANNELS as u16,
        period_frames: PERIOD as u32,
        capacity_frames: (PERIOD * 32) as u32,
        initial_target_frames: PERIOD as u32,
        min_target_frames: PERIOD as u32,
        max_target_frames: (PERIOD * 8) as u32,
        slack_frames: (PERIOD * 4) as u32,
        steady_pulls: 50,
        drift_pulls: 1,
        margin_ns: 0,
    })
    .unwrap()
}

#[test]
fn jitter_buffer_steady_state_allocates_nothing() {
    let mut jb = jitter_buffer();
    let mut packet = vec![0.0f32; PERIOD * CHANNELS];
    let mut out = vec![0.0f32; PERIOD * CHANNELS];
    let (seen, allocations) =
        count_allocations(|| jitter_stretch(&mut jb, &mut packet, &mut out, 1_200, None));
    eprintln!("jitter stretch: {seen:?}");
    assert_eq!(allocations, 0, "{seen:?}");
    // The stretch went through every path it claims to cover.
    assert!(seen.priming >= 1, "{seen:?}");
    assert!(seen.played > 1_000, "{seen:?}");
    assert!(seen.misses >= 3, "stall misses: {seen:?}");
    assert!(seen.max_target > PERIOD as u32, "target growth: {seen:?}");
    assert!(
        seen.min_target_after_max < seen.max_target,
        "shrink: {seen:?}"
    );
    assert!(seen.late_packets >= 3, "{seen:?}");
    assert!(seen.duplicate_frames >= 3 * PERIOD as u64, "{seen:?}");
    assert!(seen.dropped_frames > 0, "trims and evictions: {seen:?}");
    assert_eq!(jb.misses(), 0, "reset_misses");
}

#[test]
fn mixer_period_with_32_slots_allocates_nothing() {
    let mut m = Mixer::new(MixerConfig {
        max_slots: 32,
        channels: CHANNELS as u16,
        period_frames: PERIOD as u32,
        limit: Limit::SoftClip,
    })
    .unwrap();
    let mut outs = vec![vec![0.0f32; m.period_samples()]; 32];
    let modes = [MixMode::Minus, MixMode::Full, MixMode::Loopback];
    let ((), allocations) = count_allocations(|| {
        for period in 0..100usize {
            for slot in 0..32 {
                let v = (slot + period) as f32 / 64.0;
                m.input_mut(slot).unwrap().fill(v);
                m.set_active(slot, (slot + period) % 5 != 0);
                m.set_gain(slot, 0.5);
            }
            m.mix();
            for (listener, out) in outs.iter_mut().enumerate() {
                m.render(modes[listener % 3], listener, out);
            }
        }
    });
    assert_eq!(allocations, 0);
    // The work was real: the last period's full mix (period 99; slots with
    // (slot + 99) % 5 == 0 inactive) is what the outputs say.
    let expect: f32 = (0..32)
        .filter(|s| (s + 99) % 5 != 0)
        .map(|s| 0.5 * (s + 99) as f32 / 64.0)
        .sum();
    assert!(
        (m.full()[0] - expect).abs() < 1e-4,
        "{} vs {expect}",
        m.full()[0]
    );
    // Listener 1 (Full): soft-clipped sum, above the knee.
    assert!(outs[1][0] > 0.99 && outs[1][0] <= 1.0, "{}", outs[1][0]);
    // Listener 2 (Loopback), active: 0.5 × 101/64.
    assert_eq!(outs[2][0], izyrt::dsp::mixer::soft_clip(0.5 * 101.0 / 64.0));
}

#[test]
fn control_an_allocation_in_the_stretch_is_seen() {
    let mut jb = jitter_buffer();
    let mut packet = vec![0.0f32; PERIOD * CHANNELS];
    let mut out = vec![0.0f32; PERIOD * CHANNELS];
    let (_, allocations) =
        count_allocations(|| jitter_stretch(&mut jb, &mut packet, &mut out, 1_200, Some(700)));
    // One Box: an allocation and a free, and nothing else.
    assert_eq!(allocations, 2);
}
