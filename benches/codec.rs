//! Codec micro-benches: encode and decode of one 64-frame stereo AUDIO frame, as the net
//! thread does per packet (decode includes converting the samples to f32).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use izyrt::wire::{AudioFormat, AudioHeader, Decoder, Samples, encode_audio};
use std::hint::black_box;

fn header(format: AudioFormat) -> AudioHeader {
    AudioHeader {
        sample_rate: 48_000,
        channels: 2,
        format,
        frames: 64,
        position: 0,
        origin_ns: 0,
        echo_ns: 0,
    }
}

fn codec(c: &mut Criterion) {
    let samples: Vec<f32> = (0..128).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
    let mut g = c.benchmark_group("audio_64x2");
    g.throughput(Throughput::Elements(1));
    for format in [AudioFormat::F32, AudioFormat::S16] {
        let h = header(format);
        let mut buf = [0u8; 1024];
        g.bench_function(format!("encode_{}", format.name()), |b| {
            b.iter(|| {
                encode_audio(
                    black_box(&mut buf),
                    0,
                    1,
                    black_box(&h),
                    Samples::F32(black_box(&samples)),
                )
                .unwrap()
            })
        });
        let n = encode_audio(&mut buf, 0, 1, &h, Samples::F32(&samples)).unwrap();
        let frame = buf[..n].to_vec();
        let mut dec = Decoder::new();
        let mut out = [0f32; 128];
        g.bench_function(format!("decode_{}", format.name()), |b| {
            b.iter(|| {
                dec.feed(black_box(&frame));
                let f = dec.next_frame().unwrap().unwrap();
                f.audio().unwrap().read_f32(&mut out)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
