//! Mixer micro-bench: one hub period of 32 stereo 64-frame inputs, mixed once and
//! rendered for every listener (`minus`), as the RT mixer thread does per period: once
//! quiet (the sums stay below the soft clipper's knee) and once loud (every output sample
//! goes through the clipper, as in a full room).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use izyrt::dsp::mixer::{MixMode, Mixer, MixerConfig};
use std::hint::black_box;

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

criterion_group!(benches, mixer);
criterion_main!(benches);
