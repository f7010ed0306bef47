//! Functional ALSA tests without a sound card: alsa-lib's `file` plugin (over `null`)
//! records exactly what the device wrote, and feeds capture from a file. These PCMs do not
//! pace time, so they are opened in the test-only unpaced mode; opening them for real-time
//! use must be refused.
#![cfg(target_os = "linux")]

#[path = "common/alsa.rs"]
mod alsa_env;

use std::path::{Path, PathBuf};

use izyrt::device::alsa::{AlsaDevice, OpenOptions};
use izyrt::device::{Device, DeviceError, Direction, SampleFormat, StreamConfig};
use izyrt::dsp::convert::{from_f32, sample_bytes};

const CHANNELS: u16 = 2;
const PERIOD: u32 = 64;

fn cfg() -> StreamConfig {
    StreamConfig {
        rate: 48_000,
        channels: CHANNELS,
        period_frames: PERIOD,
        periods: 2,
    }
}

fn out_file(tag: &str) -> PathBuf {
    alsa_env::scratch_dir().join(format!("out_{tag}.raw"))
}

fn in_file(tag: &str) -> PathBuf {
    alsa_env::scratch_dir().join(format!("in_{tag}.raw"))
}

/// Our PCMs: one file-over-null per output format, one whose chain refuses float, and
/// file PCMs that capture from a file.
fn setup() {
    let mut body = String::new();
    for tag in ["s16", "s24", "s24_3", "s32"] {
        body += &format!(
            "pcm.izyrt_out_{tag} {{ type file slave.pcm \"null\" file \"{}\" format \"raw\" }}\n",
            out_file(tag).display()
        );
    }
    body += "pcm.izyrt_nofloat { type lfloat slave { pcm \"null\" format FLOAT_LE } }\n";
    body += &format!(
        "pcm.izyrt_out_nofloat {{ type file slave.pcm \"izyrt_nofloat\" file \"{}\" format \"raw\" }}\n",
        out_file("nofloat").display()
    );
    for tag in ["s16", "f32"] {
        body += &format!(
            "pcm.izyrt_in_{tag} {{ type file slave.pcm \"null\" file \"{}\" infile \"{}\" format \"raw\" }}\n",
            out_file(&format!("copy_{tag}")).display(),
            in_file(tag).display()
        );
    }
    alsa_env::use_alsa_config(&body);
}

fn unpaced(formats: &[SampleFormat]) -> OpenOptions {
    OpenOptions {
        formats: formats.to_vec(),
        allow_unpaced: true,
    }
}

/// A stereo sine per channel, with the extremes (and an overload, which must clip) first.
fn test_signal(periods: usize) -> Vec<f32> {
    let n = periods * PERIOD as usize * usize::from(CHANNELS);
    let mut x: Vec<f32> = (0..n)
        .map(|i| {
            let (frame, ch) = (i / 2, i % 2);
            let hz = if ch == 0 { 440.0 } else { 1_000.0 };
            0.8 * (2.0 * std::f32::consts::PI * hz * frame as f32 / 48_000.0).sin()
        })
        .collect();
    x[..6].copy_from_slice(&[1.0, -1.0, 1.5, -1.5, f32::NAN, 0.5]);
    x
}

/// Plays `signal` period by period through `name` and returns what the file holds.
fn play_through(
    name: &str,
    formats: &[SampleFormat],
    file: &Path,
    signal: &[f32],
) -> (SampleFormat, u32, Vec<u8>) {
    let _ = std::fs::remove_file(file);
    let mut dev = AlsaDevice::open_with(name, Direction::Playback, cfg(), unpaced(formats))
        .unwrap_or_else(|e| panic!("open {name}: {e}"));
    let got = dev.obtained().clone();
    assert_eq!(got.period_frames, PERIOD, "{got:?}");
    assert_eq!(got.playback_channels, CHANNELS);
    assert_eq!(got.capture_channels, 0);
    let why = got.sound_server.clone().expect("a file PCM is flagged");
    assert!(why.contains("file") && why.contains("Null PCM"), "{why}");
    dev.start().unwrap();
    let mut chunks = signal.chunks(PERIOD as usize * usize::from(CHANNELS));
    for _ in 0..signal.len() / (PERIOD as usize * usize::from(CHANNELS)) {
        let chunk = chunks.next().unwrap();
        let late = dev
            .cycle(&mut |input, output| {
                assert!(input.is_empty());
                output.copy_from_slice(chunk);
            })
            .unwrap();
        assert_eq!(late, None, "unpaced mode cannot tell lateness");
    }
    let counters = dev.counters();
    assert_eq!(counters.xruns.load(std::sync::atomic::Ordering::Relaxed), 0);
    dev.stop();
    drop(dev); // closing flushes the file plugin
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    (got.format, got.buffer_frames, bytes)
}

fn assert_file_holds(format: SampleFormat, buffer_frames: u32, bytes: &[u8], signal: &[f32]) {
    let frame_bytes = sample_bytes(format) * usize::from(CHANNELS);
    // start() prefills one buffer of silence; then every period we wrote, converted.
    let mut want = vec![0u8; buffer_frames as usize * frame_bytes];
    let mut converted = vec![0u8; signal.len() * sample_bytes(format)];
    assert_eq!(from_f32(format, signal, &mut converted), signal.len());
    want.extend_from_slice(&converted);
    assert_eq!(bytes.len(), want.len(), "{format:?}: file length");
    if let Some(i) = bytes.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "{format:?}: first difference at byte {i} (sample {}): got {:02x?}, want {:02x?}",
            i / sample_bytes(format),
            &bytes[i..(i + 8).min(bytes.len())],
            &want[i..(i + 8).min(want.len())]
        );
    }
}

#[test]
fn sine_played_through_a_file_pcm_is_sample_exact_in_every_format() {
    setup();
    let signal = test_signal(40);
    // Any PCM name: the stock `file` PCM, writing over `null`; f32 is tried first.
    let direct = out_file("f32");
    let name = format!("file:'{}',raw", direct.display());
    let (format, buffer, bytes) = play_through(&name, &[], &direct, &signal);
    assert_eq!(format, SampleFormat::F32, "f32 is negotiated first");
    assert_eq!(buffer, 2 * PERIOD);
    assert_file_holds(format, buffer, &bytes, &signal);

    for (tag, format) in [
        ("s16", SampleFormat::S16),
        ("s24", SampleFormat::S24),
        ("s24_3", SampleFormat::S24Packed),
        ("s32", SampleFormat::S32),
    ] {
        let (got, buffer, bytes) = play_through(
            &format!("izyrt_out_{tag}"),
            &[format],
            &out_file(tag),
            &signal,
        );
        assert_eq!(got, format);
        assert_file_holds(got, buffer, &bytes, &signal);
    }
}

#[test]
fn negotiation_falls_back_to_s32_when_the_chain_refuses_float() {
    setup();
    let signal = test_signal(8);
    let (format, buffer, bytes) =
        play_through("izyrt_out_nofloat", &[], &out_file("nofloat"), &signal);
    assert_eq!(format, SampleFormat::S32);
    assert_file_holds(format, buffer, &bytes, &signal);
}

#[test]
fn capture_from_a_file_pcm_converts_exactly() {
    setup();
    let periods = 16;
    let samples = periods * PERIOD as usize * usize::from(CHANNELS);
    // S16: every 31st code from the most negative up, both rails included.
    let codes: Vec<i16> = (0..samples)
        .map(|i| match i {
            0 => i16::MIN,
            1 => i16::MAX,
            _ => (-32_768 + (i as i32 * 31) % 65_536) as i16,
        })
        .collect();
    std::fs::write(
        in_file("s16"),
        codes
            .iter()
            .flat_map(|k| k.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let want16: Vec<f32> = codes.iter().map(|&k| f32::from(k) / 32_768.0).collect();
    // F32: arbitrary values pass bit-exact (NaN aside), including above full scale.
    let floats: Vec<f32> = (0..samples)
        .map(|i| (i as f32 * 0.37).sin() * 1.25)
        .collect();
    std::fs::write(
        in_file("f32"),
        floats
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();

    for (name, format, want) in [
        ("izyrt_in_s16", SampleFormat::S16, &want16),
        ("izyrt_in_f32", SampleFormat::F32, &floats),
    ] {
        let mut dev = AlsaDevice::open_with(name, Direction::Capture, cfg(), unpaced(&[format]))
            .unwrap_or_else(|e| panic!("open {name}: {e}"));
        assert_eq!(dev.obtained().format, format);
        assert_eq!(dev.obtained().capture_channels, CHANNELS);
        dev.start().unwrap();
        let mut got: Vec<f32> = Vec::new();
        for _ in 0..periods {
            dev.cycle(&mut |input, output| {
                assert!(output.is_empty());
                got.extend_from_slice(input);
            })
            .unwrap();
        }
        assert_eq!(got.len(), want.len());
        if let Some(i) = got
            .iter()
            .zip(want.iter())
            .position(|(a, b)| a.to_bits() != b.to_bits())
        {
            panic!("{name}: sample {i}: got {}, want {}", got[i], want[i]);
        }
    }
}

#[test]
fn duplex_gives_process_both_buffers() {
    setup();
    let mut dev = AlsaDevice::open_with("null", Direction::Duplex, cfg(), unpaced(&[])).unwrap();
    let got = dev.obtained().clone();
    assert_eq!(
        (got.capture_channels, got.playback_channels),
        (CHANNELS, CHANNELS)
    );
    dev.start().unwrap();
    let n = PERIOD as usize * usize::from(CHANNELS);
    let mut calls = 0;
    for _ in 0..10 {
        dev.cycle(&mut |input, output| {
            assert_eq!((input.len(), output.len()), (n, n));
            assert!(input.iter().all(|&x| x == 0.0), "null captures silence");
            output.copy_from_slice(input);
            calls += 1;
        })
        .unwrap();
    }
    assert_eq!(calls, 10);
    assert_eq!(
        dev.counters()
            .cycles
            .load(std::sync::atomic::Ordering::Relaxed),
        10
    );
    dev.stop();
    // After stop, cycling is an error until start.
    assert!(matches!(
        dev.cycle(&mut |_, _| {}),
        Err(DeviceError::Failed { .. })
    ));
    dev.start().unwrap();
    dev.cycle(&mut |_, _| {}).unwrap();
}

#[test]
fn null_and_file_over_null_are_refused_for_realtime_use() {
    setup();
    let file = format!("file:'{}',raw", out_file("refused").display());
    for name in ["null", file.as_str()] {
        for dir in [Direction::Playback, Direction::Capture, Direction::Duplex] {
            let e = AlsaDevice::open(name, dir, cfg()).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, DeviceError::Open { .. }), "{msg}");
            assert!(
                msg.contains("does not pace time")
                    && msg.contains("Null PCM")
                    && msg.contains(name),
                "{name} {dir:?}: {msg}"
            );
        }
    }
}

#[test]
fn open_errors_name_the_problem() {
    setup();
    let e = AlsaDevice::open("izyrt_no_such_pcm", Direction::Playback, cfg()).unwrap_err();
    assert!(
        e.to_string().contains("izyrt_no_such_pcm") && e.to_string().contains("no such"),
        "{e}"
    );
    let e = AlsaDevice::open("nul\0l", Direction::Playback, cfg()).unwrap_err();
    assert!(matches!(e, DeviceError::BadSpec { .. }), "{e}");
    let e = AlsaDevice::open(
        "null",
        Direction::Playback,
        StreamConfig {
            periods: 1,
            ..cfg()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("periods 1"), "{e}");
    // A format the chain cannot take is named, with what it offers.
    let e = AlsaDevice::open_with(
        "izyrt_out_nofloat",
        Direction::Playback,
        cfg(),
        unpaced(&[SampleFormat::F32]),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("none of the formats f32") && msg.contains("S32_LE"),
        "{msg}"
    );
}
