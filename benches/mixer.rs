//! Mixer micro-bench: one hub period of 32 stereo 64-frame inputs, mixed once and
//! rendered for every listener (`minus`), as the RT mixer thread does per period: once
//! quiet (the sums stay below the soft clipper's knee) and once loud (every output sample
//! goes through the clipper, as in a full room). And one hub input's pull with and
//! without a drift trim on a 441 Hz tone (`hub_input_trim`): the difference is what one
//! search for a cut in phase (`dsp/jitter/splice.rs`) costs the mixer thread, the figure
//! its per-period budget (`hub::mixer_thread::CUTS_PER_PERIOD`) is sized by; and a gap
//! concealed and ended in phase against four fed pulls (`hub_input_resume`). And one
//! input's level meter over a period (`meter_64x2`), which the mixer runs on every input
//! every period (levels for METADATA). And the fit each input's drift meter runs once a
//! second (`drift_fit`: 32 block minima, steps marked, `dsp::slope`): at 64 inputs that
//! joined together, 64 of them can fall in one period. And a whole hub period of 64
//! stereo inputs in which every input's packet is lost at once (`hub_64_inputs`): what a
//! stall of every sender's host costs the mixer thread, with the concealment's lag
//! searches bounded by `CUTS_PER_PERIOD` (`dsp/playout/conceal/lag.rs`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use izyrt::dsp::jitter::{JitterBuffer, JitterConfig};
use izyrt::dsp::meter::{Meter, MeterConfig};
use izyrt::dsp::mixer::{MixMode, Mixer, MixerConfig};
use izyrt::dsp::playout::conceal::Conceal;
use izyrt::dsp::slope::StepFit;
use izyrt::hub::mixer_thread::{
    CUTS_PER_PERIOD, Command, Input, MixerState, MixerStats, Slot, SlotStats, step,
};
use izyrt::net::Waker;
use izyrt::rt::pipe::{PacketMeta, PipeTx, pipe};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn mixer(c: &mut Criterion) {
    let mut g = c.benchmark_group("mixer_32x2x64");
    for (name, level) in [
        ("mix_and_render_minus_for_all", 0.02),
        ("mix_and_render_minus_for_all_loud", 0.25),
    ] {
        bench(&mut g, name, level);
    }
    g.finish();
}

fn bench(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    level: f32,
) {
    let slots = 32;
    let mut m = Mixer::new(MixerConfig {
        max_slots: slots,
        ..MixerConfig::default()
    })
    .unwrap();
    for s in 0..slots {
        let input = m.input_mut(s).unwrap();
        for (i, x) in input.iter_mut().enumerate() {
            *x = ((i + s) as f32 * 0.01).sin() * level;
        }
        m.set_active(s, true);
    }
    let mut out = vec![0.0f32; m.period_samples()];
    g.throughput(Throughput::Elements(slots as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            m.mix();
            for s in 0..slots {
                m.render(MixMode::Minus, s, black_box(&mut out));
            }
        })
    });
}

/// One second of a stereo 441 Hz tone at 48 kHz, interleaved: 441 whole periods, so the
/// table repeats without a seam.
fn tone_second() -> Vec<f32> {
    (0..48_000)
        .flat_map(|n| {
            let x = (std::f64::consts::TAU * 441.0 * n as f64 / 48_000.0).sin() as f32 * 0.25;
            [x, x]
        })
        .collect()
}

/// One stereo hub input at 64-frame periods fed a 441 Hz tone: each iteration pushes a
/// period (`plain`), or a period and 256 or 512 frames more (`trim_256`, `trim_512`: the
/// depth stands above the one-period slack at every pull, and `drift_pulls: 1` trims the
/// excess, in phase, at every pull: 512 is the widest search, a drop can move by 256), and
/// pulls one.
fn hub_input_trim(c: &mut Criterion) {
    const P: u64 = 64;
    let table = tone_second();
    let mut g = c.benchmark_group("hub_input_trim");
    for (name, extra) in [("plain", 0), ("trim_256", 4 * P), ("trim_512", 8 * P)] {
        let mut jb = JitterBuffer::new(JitterConfig {
            slack_frames: P as u32,
            drift_pulls: 1,
            ..JitterConfig::default()
        })
        .unwrap();
        let mut out = vec![0.0f32; 2 * P as usize];
        let mut pos = 0u64;
        let mut packet = vec![0.0f32; 2 * (P + extra) as usize];
        g.bench_function(name, |b| {
            b.iter(|| {
                for (i, x) in packet.chunks_exact_mut(2).enumerate() {
                    let k = 2 * ((pos + i as u64) % 48_000) as usize;
                    x.copy_from_slice(&table[k..k + 2]);
                }
                jb.push(pos, &packet);
                pos += P + extra;
                jb.pull(black_box(&mut out));
            })
        });
        // (pos stays 0 when a filter skipped this case.)
        if extra > 0 && pos > 0 {
            assert!(jb.trimmed_frames() > 0, "the trim case never trimmed");
        }
    }
    g.finish();
}

/// One stereo hub input at 64-frame periods fed a 441 Hz tone, read as the mixer reads it
/// (`pull_concealed`, with its concealment): each iteration is four pulls, all fed
/// (`no_gap`), or the first dry and the second ending the gap after two periods arrive at
/// once (`gap_resumed_in_phase`: one period concealed, then the search for the frame in
/// phase with the continuation, `dsp/jitter/resume.rs`, which drops the 64 frames the gap
/// put the stream behind; the cross-fade in runs into the third pull). The difference is
/// what one gap costs the mixer thread. `conceal_gap_only` is the concealment alone
/// through the same four periods (one missing): the part of that cost which is the
/// continuation's, not the resume's (the tone's lag found near the one found before,
/// `dsp/playout/conceal/lag.rs`). `conceal_gap_full_search` is the same on noise, which
/// repeats at no lag: each gap a full search for its lag, what an input whose pitch
/// moved costs.
fn hub_input_resume(c: &mut Criterion) {
    const P: u64 = 64;
    let table = tone_second();
    let mut g = c.benchmark_group("hub_input_resume");
    g.throughput(Throughput::Elements(4));
    for (name, gap) in [("no_gap", false), ("gap_resumed_in_phase", true)] {
        let mut jb = JitterBuffer::new(JitterConfig {
            // Dry every fourth pull: never "dry again within drift_pulls", so the target
            // stays one period.
            drift_pulls: 1,
            ..JitterConfig::default()
        })
        .unwrap();
        let mut conceal = Conceal::new(2, 48_000).unwrap();
        let mut out = vec![0.0f32; 2 * P as usize];
        let mut pos = 0u64;
        let mut packet = vec![0.0f32; 2 * P as usize];
        let mut push = |jb: &mut JitterBuffer, pos: &mut u64| {
            for (i, x) in packet.chunks_exact_mut(2).enumerate() {
                let k = 2 * ((*pos + i as u64) % 48_000) as usize;
                x.copy_from_slice(&table[k..k + 2]);
            }
            jb.push(*pos, &packet);
            *pos += P;
        };
        // A second of the tone first, so that the concealment has a pitch to continue.
        for _ in 0..750 {
            push(&mut jb, &mut pos);
            let mut cuts = CUTS_PER_PERIOD;
            jb.pull_concealed(&mut out, 0, &mut cuts, &mut conceal);
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                for k in 0..4 {
                    let mut cuts = CUTS_PER_PERIOD;
                    // The gap: no packet for the first pull, two before the second.
                    if !gap || k > 1 {
                        push(&mut jb, &mut pos);
                    } else if k == 1 {
                        push(&mut jb, &mut pos);
                        push(&mut jb, &mut pos);
                    }
                    jb.pull_concealed(black_box(&mut out), 0, &mut cuts, &mut conceal);
                }
            })
        });
        if gap && pos > 48_000 {
            // Every gap resumed in phase.
            assert_eq!(
                jb.aligned_resumes(),
                jb.misses(),
                "a gap resumed out of phase"
            );
        }
    }
    let mut seed = 1u32;
    let noise: Vec<f32> = (0..table.len())
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.5
        })
        .collect();
    for (name, signal) in [
        ("conceal_gap_only", &table),
        ("conceal_gap_full_search", &noise),
    ] {
        let mut conceal = Conceal::new(2, 48_000).unwrap();
        let mut at = 0usize;
        let mut out = vec![0.0f32; 2 * P as usize];
        let mut gaps = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                for k in 0..4 {
                    let n = out.len();
                    out.copy_from_slice(&signal[at..at + n]);
                    at = (at + n) % (signal.len() - n);
                    let gap = (k == 0).then_some(0..P as usize);
                    let mut searches = CUTS_PER_PERIOD;
                    conceal.process_within(black_box(&mut out), gap, &mut searches);
                }
                gaps += 1;
            })
        });
        // The tone's lag is found near the last one in nearly every gap (a full search
        // when the gaps' own joins, every fourth period here, blur the history); noise
        // repeats at no lag, so every gap takes a full search (but the first: no
        // history yet).
        let searches = conceal.lag_searches();
        if name == "conceal_gap_full_search" {
            assert_eq!(searches, gaps.saturating_sub(1), "{name}");
        } else {
            assert!(searches * 10 <= gaps, "{name}: {searches} in {gaps}");
        }
    }
    g.finish();
}

/// One stereo 64-frame period of a -12 dBFS 441 Hz tone through a hub input's meter
/// (the default settings the hub meters with: 50 ms windows, so one period in 37.5
/// publishes).
fn meter(c: &mut Criterion) {
    let period: Vec<f32> = (0..64)
        .flat_map(|n| {
            let x = (std::f64::consts::TAU * 441.0 * n as f64 / 48_000.0).sin() as f32 * 0.25;
            [x, -x]
        })
        .collect();
    let mut m = Meter::new(MeterConfig::default()).unwrap();
    let mut g = c.benchmark_group("meter_64x2");
    g.bench_function("process", |b| b.iter(|| m.process(black_box(&period))));
    g.finish();
}

/// A hub of 64 stereo inputs at 64 frames (`minus` mixes, no listener pipes), each fed a
/// tone of its own pitch, or noise, for two seconds; then, each iteration, 20 fed periods
/// (not timed) and four timed periods: every packet there (`all_fed`), or every input's
/// packet lost at once (`all_miss_tones`: each gap continues near the lag its input found
/// at its last one; `all_miss_noise`: noise repeats at no lag, so every gap wants a full
/// search, two run from the period's budget and the rest continue at the best lag near
/// their last one). The buffers are held at one period, so every lost packet is a miss.
fn hub_mass_miss(c: &mut Criterion) {
    const P: u32 = 64;
    const N: usize = 64;
    let mut g = c.benchmark_group("hub_64_inputs");
    for (name, noise, lose) in [
        ("all_fed", false, false),
        ("all_miss_tones", false, true),
        ("all_miss_noise", true, true),
    ] {
        let mixer = Mixer::new(MixerConfig {
            max_slots: N,
            channels: 2,
            period_frames: P,
            limit: izyrt::dsp::mixer::Limit::SoftClip,
        })
        .unwrap();
        let (mut commands, commands_rx) = rtrb::RingBuffer::new(N);
        let (garbage, _garbage_rx) = rtrb::RingBuffer::new(N);
        let mut s = MixerState::new(
            mixer,
            48_000,
            Vec::new(),
            commands_rx,
            garbage,
            Arc::new(Waker::new().unwrap()),
            Arc::new(MixerStats::default()),
        );
        let mut senders: Vec<(PipeTx, Arc<SlotStats>)> = Vec::new();
        for i in 0..N {
            let cfg = JitterConfig {
                channels: 2,
                period_frames: P,
                initial_target_frames: P,
                min_target_frames: P,
                max_target_frames: P,
                ..JitterConfig::default()
            };
            let (tx, rx) = pipe(2, P * 64, 64);
            let stats = Arc::new(SlotStats::default());
            let slot = Slot {
                input: Input::pipe(rx, JitterBuffer::new(cfg).unwrap(), 48_000).unwrap(),
                output: None,
                mode: MixMode::Minus,
                meter: Meter::new(MeterConfig {
                    channels: 2,
                    ..MeterConfig::default()
                })
                .unwrap(),
                stats: Arc::clone(&stats),
            };
            commands.push(Command::Join(i, Box::new(slot))).unwrap();
            senders.push((tx, stats));
        }
        let mut position = 0u64;
        let mut seed = 1u32;
        let mut packet = vec![0.0f32; 2 * P as usize];
        // Every sender's next packet, or (lost) none.
        let mut send = |senders: &mut [(PipeTx, Arc<SlotStats>)], lost: bool| {
            for (i, (tx, _)) in senders.iter_mut().enumerate() {
                let f = 150.0 + 23.0 * i as f64;
                for (k, x) in packet.chunks_exact_mut(2).enumerate() {
                    let n = (position + k as u64) as f64;
                    let v = if noise {
                        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.2
                    } else {
                        ((std::f64::consts::TAU * f * n / 48_000.0).sin() * 0.1) as f32
                    };
                    x.fill(v);
                }
                let meta = PacketMeta {
                    position,
                    origin_ns: 0,
                    frames: P,
                    arrival_ns: 0,
                    locked: false,
                };
                if !lost {
                    tx.push(meta, &packet);
                }
            }
            position += u64::from(P);
        };
        let mut out = vec![0.0f32; 2 * P as usize];
        for _ in 0..1_500 {
            send(&mut senders, false);
            step(&mut s, &[], &mut out);
        }
        let misses = |senders: &[(PipeTx, Arc<SlotStats>)]| -> u64 {
            senders
                .iter()
                .map(|(_, st)| st.misses.load(Ordering::Relaxed))
                .sum()
        };
        let (mut timed, mut missed) = (0u64, 0u64);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    for _ in 0..20 {
                        send(&mut senders, false);
                        step(&mut s, &[], &mut out);
                    }
                    // The lost packets are due one to three periods later, as deep as each
                    // buffer stands: four periods are timed.
                    let before = misses(&senders);
                    for k in 0..4 {
                        send(&mut senders, lose && k == 0);
                        let t = Instant::now();
                        step(&mut s, &[], black_box(&mut out));
                        total += t.elapsed();
                    }
                    missed += misses(&senders) - before;
                    timed += 1;
                }
                total
            })
        });
        // Every input missed at every loss (one period or two: a resume may wait a pull),
        // and never when fed.
        if lose {
            assert!(
                missed >= timed * N as u64,
                "{name}: {missed} misses in {timed} losses"
            );
        } else {
            assert_eq!(missed, 0, "{name}: misses when fed");
        }
    }
    g.finish();
}

/// One fit through a full window of 32 one-second block minima of a stream 100 ppm fast,
/// jittered by a few frames, with one step of 9600 frames (200 ms lost) in the middle.
fn drift_fit(c: &mut Criterion) {
    let mut f = StepFit::new();
    for s in 0..32u32 {
        let x = f64::from(s) * 48_000.0;
        let jitter = f64::from((s * 7_919) % 5);
        let lost = if s >= 16 { 9_600.0 } else { 0.0 };
        f.push(x, x * 100e-6 + jitter - lost);
    }
    let ppm = f.slope(48.0).unwrap() * 1e6;
    assert!((ppm - 100.0).abs() < 5.0, "{ppm}");
    let mut g = c.benchmark_group("drift_fit");
    g.bench_function("32_points", |b| b.iter(|| black_box(&f).slope(48.0)));
    g.finish();
}

criterion_group!(
    benches,
    mixer,
    hub_input_trim,
    hub_input_resume,
    meter,
    drift_fit,
    hub_mass_miss
);
criterion_main!(benches);
