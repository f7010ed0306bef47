//! WAV/RIFF sources: format round trips, WAVE_FORMAT_EXTENSIBLE, resampling, channel
//! mapping, bad files and the looping period reader (recordings: `tests/wav_record.rs`).
//! This binary counts allocations through the global allocator, to prove the RT-side
//! period reader allocates nothing.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use izyrt::file::{Clip, ClipReader, LoadError, WavSampleFormat, map_channels};
use izyrt::rt::alloc_count::{CountingAllocator, count_allocations};

#[path = "common/wav.rs"]
mod wav;
use wav::{assert_close, signal};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wav_file-{name}"))
}

fn hound_spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

/// Writes `x` with hound in the given integer depth or as f32.
fn write_with_hound(path: &Path, x: &[f64], channels: u16, rate: u32, bits: u16, float: bool) {
    let mut w = hound::WavWriter::create(path, hound_spec(channels, rate, bits, float)).unwrap();
    let full = (1i64 << (bits - 1)) as f64;
    for &s in x {
        if float {
            w.write_sample(s as f32).unwrap();
        } else {
            let v = (s * full).round().clamp(-full, full - 1.0) as i32;
            match bits {
                8 => w.write_sample(v as i8).unwrap(),
                16 => w.write_sample(v as i16).unwrap(),
                _ => w.write_sample(v).unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

/// A WAV file built by hand: `ext` = Some((valid bits, sub-format tag)) writes a
/// WAVE_FORMAT_EXTENSIBLE header.
#[allow(clippy::too_many_arguments)]
fn wav_bytes(
    tag: u16,
    channels: u16,
    rate: u32,
    container: u16,
    bits: u16,
    ext: Option<(u16, u16)>,
    extra_fmt: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let block_align = channels * container;
    let mut fmt = Vec::new();
    let tag = if ext.is_some() { 0xFFFE } else { tag };
    fmt.extend_from_slice(&tag.to_le_bytes());
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * block_align as u32).to_le_bytes());
    fmt.extend_from_slice(&block_align.to_le_bytes());
    fmt.extend_from_slice(&bits.to_le_bytes());
    if let Some((valid, sub)) = ext {
        fmt.extend_from_slice(&22u16.to_le_bytes());
        fmt.extend_from_slice(&valid.to_le_bytes());
        let mask: u32 = if channels == 1 { 0x4 } else { 0x3 };
        fmt.extend_from_slice(&mask.to_le_bytes());
        fmt.extend_from_slice(&sub.to_le_bytes());
        fmt.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
    }
    fmt.extend_from_slice(extra_fmt);
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + 8 + fmt.len() + 8 + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    out.extend_from_slice(&fmt);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn every_supported_format_round_trips_within_quantisation() {
    let rate = 48_000;
    for (bits, float, channels) in [
        (8u16, false, 1u16),
        (16, false, 2),
        (24, false, 3),
        (32, false, 6),
        (32, true, 2),
    ] {
        let path = tmp(&format!("rt-{bits}-{float}-{channels}.wav"));
        let x = signal(1000, channels as usize, rate);
        write_with_hound(&path, &x, channels, rate, bits, float);
        let clip = Clip::load(&path, rate, channels).unwrap();
        assert_eq!(clip.frames(), 1000);
        let info = clip.source().unwrap();
        let want_format = if float {
            WavSampleFormat::Float32
        } else {
            WavSampleFormat::Int { bits }
        };
        assert_eq!(
            (info.rate, info.channels, info.format, info.frames),
            (rate, channels, want_format, 1000)
        );
        // Half a step of the integer grid, plus f32 rounding of the value itself.
        let tol = if float {
            1e-7
        } else {
            0.5 / (1u64 << (bits - 1)) as f64 + 1e-7
        };
        assert_close(
            clip.samples(),
            &x,
            tol,
            &format!("{bits}-bit float={float}"),
        );
    }
}

#[test]
fn wave_format_extensible_headers_are_read() {
    let rate = 48_000;
    // 16-bit stereo PCM (hound itself would write a plain header for this).
    let x16: [i16; 4] = [1000, -2000, 32767, -32768];
    let data: Vec<u8> = x16.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bytes = wav_bytes(1, 2, rate, 2, 16, Some((16, 1)), &[], &data);
    assert_eq!(&bytes[20..22], &0xFFFEu16.to_le_bytes());
    let path = tmp("ext-16.wav");
    std::fs::write(&path, &bytes).unwrap();
    let clip = Clip::load(&path, rate, 2).unwrap();
    let want: Vec<f64> = x16.iter().map(|&v| v as f64 / 32768.0).collect();
    assert_close(clip.samples(), &want, 0.0, "extensible 16-bit");

    // 24 valid bits in 4-byte containers, mono.
    let x24: [i32; 3] = [8_388_607, -8_388_608, 12345];
    let data: Vec<u8> = x24
        .iter()
        .flat_map(|v| ((*v as u32) & 0x00FF_FFFF).to_le_bytes())
        .collect();
    let path = tmp("ext-24in32.wav");
    std::fs::write(
        &path,
        wav_bytes(1, 1, rate, 4, 32, Some((24, 1)), &[], &data),
    )
    .unwrap();
    let clip = Clip::load(&path, rate, 1).unwrap();
    let want: Vec<f64> = x24.iter().map(|&v| v as f64 / 8_388_608.0).collect();
    assert_close(clip.samples(), &want, 1e-7, "extensible 24-in-32");
    assert_eq!(
        clip.source().unwrap().format,
        WavSampleFormat::Int { bits: 24 }
    );

    // 32-bit float, mono.
    let xf: [f32; 3] = [0.5, -0.25, 0.999];
    let data: Vec<u8> = xf.iter().flat_map(|v| v.to_le_bytes()).collect();
    let path = tmp("ext-f32.wav");
    std::fs::write(
        &path,
        wav_bytes(3, 1, rate, 4, 32, Some((32, 3)), &[], &data),
    )
    .unwrap();
    let clip = Clip::load(&path, rate, 1).unwrap();
    assert_eq!(clip.samples(), &xf);
    assert_eq!(clip.source().unwrap().format, WavSampleFormat::Float32);
}

/// Frequency from rising zero crossings (linearly interpolated) and RMS of `x`.
fn frequency_and_rms(x: &[f32], rate: f64) -> (f64, f64) {
    let mut crossings = Vec::new();
    for i in 1..x.len() {
        let (a, b) = (x[i - 1] as f64, x[i] as f64);
        if a < 0.0 && b >= 0.0 {
            crossings.push((i - 1) as f64 + a / (a - b));
        }
    }
    let span = crossings.last().unwrap() - crossings.first().unwrap();
    let freq = (crossings.len() - 1) as f64 / span * rate;
    let rms = (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    (freq, rms)
}

#[test]
fn resampling_44k1_to_48k_keeps_frequency_and_amplitude() {
    let path = tmp("sine-44k1.wav");
    let (rate_in, rate_out, f, amp) = (44_100u32, 48_000u32, 1000.0, 0.5);
    let x: Vec<f64> = (0..2 * rate_in)
        .map(|n| amp * (2.0 * PI * f * n as f64 / rate_in as f64).sin())
        .collect();
    write_with_hound(&path, &x, 1, rate_in, 32, true);
    let clip = Clip::load(&path, rate_out, 1).unwrap();
    assert_eq!(clip.rate(), rate_out);
    assert_eq!(
        clip.frames(),
        2 * rate_out as usize,
        "frames after resampling 2 s"
    );
    // The middle second, away from the edges.
    let mid = &clip.samples()[24_000..72_000];
    let (freq, rms) = frequency_and_rms(mid, rate_out as f64);
    let want_rms = amp / 2f64.sqrt();
    println!("44.1k→48k: {freq:.4} Hz, RMS {rms:.6} (want {want_rms:.6})");
    assert!((freq - f).abs() < 0.05, "frequency {freq}");
    assert!((rms / want_rms - 1.0).abs() < 0.001, "rms {rms}");
    // Sample by sample it is the same sine at the new rate: fit amplitude and phase over
    // the middle second; what is left is resampling error. The phase gives the timing
    // offset, which must stay under one output frame (rubato trims its delay).
    let (mut a, mut b) = (0.0, 0.0);
    let mid_range = 24_000..72_000;
    let w = |i: usize| 2.0 * PI * f * i as f64 / rate_out as f64;
    for i in mid_range.clone() {
        a += clip.samples()[i] as f64 * w(i).sin();
        b += clip.samples()[i] as f64 * w(i).cos();
    }
    let (a, b) = (2.0 * a / 48_000.0, 2.0 * b / 48_000.0);
    let lag = -b.atan2(a) / (2.0 * PI * f) * rate_out as f64;
    let worst = mid_range
        .map(|i| (clip.samples()[i] as f64 - a * w(i).sin() - b * w(i).cos()).abs())
        .fold(0.0, f64::max);
    println!(
        "44.1k→48k: timing offset {lag:+.3} output frames, worst deviation from the fitted sine {worst:.2e}"
    );
    assert!(lag.abs() < 1.0, "timing offset {lag} frames");
    assert!(worst < 1e-4, "worst deviation {worst}");
}

#[test]
fn channels_are_mapped_by_the_documented_rules() {
    let rate = 48_000;
    let path = tmp("map-mono.wav");
    let mono = [0.5, -0.25, 0.125];
    write_with_hound(&path, &mono, 1, rate, 32, true);
    let clip = Clip::load(&path, rate, 2).unwrap();
    assert_eq!(clip.samples(), &[0.5, 0.5, -0.25, -0.25, 0.125, 0.125]);

    let path = tmp("map-stereo.wav");
    write_with_hound(&path, &[0.5, 0.25, -1.0, 1.0], 2, rate, 32, true);
    assert_eq!(Clip::load(&path, rate, 1).unwrap().samples(), &[0.375, 0.0]);
    assert_eq!(
        Clip::load(&path, rate, 4).unwrap().samples(),
        &[0.5, 0.25, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0]
    );

    let path = tmp("map-3ch.wav");
    write_with_hound(&path, &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 3, rate, 32, true);
    let two = Clip::load(&path, rate, 2).unwrap();
    assert_close(two.samples(), &[0.1, 0.2, 0.4, 0.5], 1e-7, "3 → 2");

    assert_eq!(map_channels(vec![0.3, 0.6, 0.9], 3, 1), [0.6]);
}

#[test]
fn channel_mapping_and_resampling_combine() {
    let path = tmp("map-resample.wav");
    let x: Vec<f64> = (0..22_050)
        .flat_map(|n| {
            let s = 0.5 * (2.0 * PI * 440.0 * n as f64 / 22_050.0).sin();
            [s, -s]
        })
        .collect();
    write_with_hound(&path, &x, 2, 22_050, 32, true);
    // Stereo → mono averages the antiphase channels to silence, at any rate.
    let mono = Clip::load(&path, 48_000, 1).unwrap();
    assert_eq!(mono.frames(), 48_000);
    assert!(mono.samples().iter().all(|v| v.abs() < 1e-6));
    // Stereo → 4 channels at 48 kHz: two resampled channels, two silent.
    let quad = Clip::load(&path, 48_000, 4).unwrap();
    assert_eq!(quad.frames(), 48_000);
    let frames: Vec<&[f32]> = quad.samples().chunks_exact(4).collect();
    assert!(
        frames
            .iter()
            .all(|f| f[2] == 0.0 && f[3] == 0.0 && (f[0] + f[1]).abs() < 1e-6)
    );
    let (freq, _) = frequency_and_rms(
        &frames[4800..43_200]
            .iter()
            .map(|f| f[0])
            .collect::<Vec<_>>(),
        48_000.0,
    );
    assert!((freq - 440.0).abs() < 0.05, "{freq}");
}

fn load_err(path: &Path) -> String {
    let err: LoadError = Clip::load(path, 48_000, 2).unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "message is not one line: {msg:?}");
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the file: {msg}"
    );
    msg
}

#[test]
fn bad_files_are_refused_with_a_one_line_reason() {
    let p = tmp("missing.wav");
    let _ = std::fs::remove_file(&p);
    assert_eq!(
        load_err(&p),
        format!(
            "cannot read WAV file '{}': No such file or directory (os error 2)",
            p.display()
        )
    );

    let p = tmp("text.wav");
    std::fs::write(&p, "hello, this is not audio\n").unwrap();
    assert_eq!(
        load_err(&p),
        format!(
            "'{}' is not a RIFF/WAVE file: it starts with 'hell' instead of 'RIFF'",
            p.display()
        )
    );

    let p = tmp("empty-file.wav");
    std::fs::write(&p, b"").unwrap();
    assert_eq!(
        load_err(&p),
        format!(
            "'{}' is not a RIFF/WAVE file: the file is empty",
            p.display()
        )
    );

    let p = tmp("avi.wav");
    let mut avi = wav_bytes(1, 1, 8000, 2, 16, None, &[], &[0; 4]);
    avi[8..12].copy_from_slice(b"AVI ");
    std::fs::write(&p, avi).unwrap();
    assert_eq!(
        load_err(&p),
        format!(
            "'{}' is not a RIFF/WAVE file: its RIFF form type is 'AVI ', not 'WAVE'",
            p.display()
        )
    );

    // Microsoft ADPCM as a real encoder writes it: 4 bits, 256-byte blocks, cbSize = 2
    // and wSamplesPerBlock (505); nAvgBytesPerSec is not block_align × rate.
    let p = tmp("adpcm.wav");
    let mut adpcm = wav_bytes(2, 1, 8000, 256, 4, None, &[2, 0, 0xF9, 0x01], &[0; 256]);
    adpcm[28..32].copy_from_slice(&4096u32.to_le_bytes());
    std::fs::write(&p, adpcm).unwrap();
    let unsupported = "supported are 8/16/24/32-bit integer PCM and 32-bit float";
    assert_eq!(
        load_err(&p),
        format!(
            "'{}' uses an unsupported format: Microsoft ADPCM (format tag 0x0002); {unsupported}",
            p.display()
        )
    );

    let p = tmp("f64.wav");
    std::fs::write(&p, wav_bytes(3, 1, 8000, 8, 64, None, &[], &[0; 16])).unwrap();
    assert_eq!(
        load_err(&p),
        format!(
            "'{}' uses an unsupported format: 64-bit float; {unsupported}",
            p.display()
        )
    );

    let p = tmp("alaw-ext.wav");
    std::fs::write(&p, wav_bytes(0, 1, 8000, 1, 8, Some((8, 6)), &[], &[0; 16])).unwrap();
    assert_eq!(
        load_err(&p),
        format!(
            "'{}' uses an unsupported format: A-law (format tag 0x0006) (WAVE_FORMAT_EXTENSIBLE); \
             {unsupported}",
            p.display()
        )
    );

    // A valid 16-bit stereo file of 1000 frames, then cut in the data, in the header, and
    // just before the data chunk.
    let good = tmp("good.wav");
    write_with_hound(&good, &signal(1000, 2, 48_000), 2, 48_000, 16, false);
    let bytes = std::fs::read(&good).unwrap();
    assert_eq!(&bytes[36..40], b"data");
    let p = tmp("cut-data.wav");
    std::fs::write(&p, &bytes[..44 + 400 * 4 + 2]).unwrap();
    assert_eq!(
        load_err(&p),
        format!(
            "'{}' is truncated: its data chunk declares 1000 frames but the file ends after 400",
            p.display()
        )
    );
    let p = tmp("cut-fmt.wav");
    std::fs::write(&p, &bytes[..30]).unwrap();
    assert_eq!(
        load_err(&p),
        format!(
            "'{}' is truncated: the file ends inside its fmt chunk",
            p.display()
        )
    );
    let p = tmp("cut-before-data.wav");
    std::fs::write(&p, &bytes[..40]).unwrap();
    assert_eq!(
        load_err(&p),
        format!(
            "'{}' is truncated: the file ends before its data chunk",
            p.display()
        )
    );

    let p = tmp("inconsistent.wav");
    let mut bad = bytes.clone();
    bad[28..32].copy_from_slice(&1234u32.to_le_bytes());
    std::fs::write(&p, bad).unwrap();
    assert_eq!(
        load_err(&p),
        format!(
            "'{}' is a malformed WAV file: inconsistent fmt chunk",
            p.display()
        )
    );

    let p = tmp("no-frames.wav");
    write_with_hound(&p, &[], 2, 48_000, 16, false);
    assert_eq!(
        load_err(&p),
        format!("'{}' holds no audio frames", p.display())
    );

    assert_eq!(
        Clip::load(&good, 0, 2).unwrap_err().to_string(),
        format!(
            "cannot load '{}' for 0 Hz and 2 channels: both must be positive",
            good.display()
        )
    );
}

#[test]
fn the_period_reader_loops_seamlessly_or_ends_in_silence() {
    let clip = Arc::new(Clip::from_interleaved(
        (0..10).map(|v| v as f32).collect(),
        48_000,
        2,
    ));
    let mut looping = ClipReader::new(Arc::clone(&clip), true);
    let mut period = [0.0f32; 6];
    let mut seen = Vec::new();
    for _ in 0..5 {
        assert_eq!(looping.read(&mut period), 3);
        seen.extend_from_slice(&period);
    }
    // 15 frames of a 5-frame clip: three whole passes, frame-aligned.
    let want: Vec<f32> = (0..3).flat_map(|_| (0..10).map(|v| v as f32)).collect();
    assert_eq!(seen, want);
    assert_eq!(looping.loops_completed(), 2);

    let mut once = ClipReader::new(clip, false);
    assert_eq!(once.read(&mut period), 3);
    assert_eq!(period, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(once.read(&mut period), 2);
    assert_eq!(period, [6.0, 7.0, 8.0, 9.0, 0.0, 0.0]);
    assert!(once.is_finished());
    period.fill(1.0);
    assert_eq!(once.read(&mut period), 0);
    assert_eq!(period, [0.0; 6]);
    once.seek(4);
    assert!(!once.is_finished());
    assert_eq!(once.read(&mut period), 1);
    assert_eq!(period, [8.0, 9.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn the_period_reader_allocates_nothing() {
    let path = tmp("alloc.wav");
    write_with_hound(&path, &signal(4_410, 2, 44_100), 2, 44_100, 16, false);
    let clip = Arc::new(Clip::load(&path, 48_000, 2).unwrap());
    let mut looping = ClipReader::new(Arc::clone(&clip), true);
    let mut once = ClipReader::new(Arc::clone(&clip), false);
    let mut period = vec![0.0f32; 64 * 2];
    let (energy, allocations) = count_allocations(|| {
        let mut energy = 0.0f32;
        for _ in 0..10_000 {
            looping.read(&mut period);
            energy += period[0].abs();
            once.read(&mut period);
            energy += period[1].abs();
        }
        energy
    });
    assert_eq!(
        allocations, 0,
        "the period reader allocated {allocations} times"
    );
    assert!(energy > 0.0);
    assert!(looping.loops_completed() > 100);
    assert!(once.is_finished());
    let (_, n) = count_allocations(|| vec![0u8; 1]);
    assert!(n > 0, "the counting allocator is not counting");
}
