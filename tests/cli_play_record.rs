//! `izyrt play` and `izyrt record` as a user runs them: real processes on the `virtual`
//! device (no sound card needed), plus the RT halves of both commands under the counting
//! allocator. Timing bounds are generous: the machine is shared.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use izyrt::cli::play::PlayCursor;
use izyrt::cli::record::RecordCursor;
use izyrt::dsp::ratio::{Decimator, Interpolator};
use izyrt::file::{Clip, ClipReader, RecordTap};
use izyrt::rt::alloc_count::{CountingAllocator, count_allocations};
use serde_json::Value;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// A scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("izyrt-cli-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn izyrt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_summary(out: &Output) -> Value {
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object on stdout, got {stdout:?}");
    serde_json::from_str(lines[0]).unwrap()
}

/// A 16-bit WAV holding a 440 Hz sine at half scale.
fn write_wav(path: &Path, rate: u32, channels: u16, frames: u32) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..frames {
        let v = 0.5 * (std::f64::consts::TAU * 440.0 * f64::from(i) / f64::from(rate)).sin();
        for _ in 0..channels {
            w.write_sample((v * 32_767.0) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn records_exactly_half_a_second_of_the_virtual_tone() {
    let dir = scratch("record");
    let wav = dir.join("tone.wav");
    // The tone's shape is judged below, on a take the device did not overrun.
    let out = record_clean(&[
        "record",
        s(&wav),
        "--device",
        "virtual:tone=1000",
        "--seconds",
        "0.5",
        "--rate",
        "48000",
        "--channels",
        "2",
    ]);
    let stderr = text(&out.stderr);
    for line in [
        "period:    64 frames (1.333 ms)",
        "buffer:    128 frames (2.667 ms, 2 periods)",
        "rt:        izyrt-record SCHED_",
        "recorded:  24000 of 24000 frames (0.500 s), dropped 0 frames",
        "faults:    xruns ",
        "wakeup:    p50 ",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in\n{stderr}");
    }

    let mut reader = hound::WavReader::open(&wav).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.sample_rate), (2, 48_000));
    assert_eq!(reader.duration(), 24_000);
    let samples: Vec<f32> = reader.samples::<f32>().map(Result::unwrap).collect();
    assert_eq!(samples.len(), 48_000);
    let left: Vec<f32> = samples.iter().step_by(2).copied().collect();
    assert!(
        samples.chunks(2).all(|f| f[0] == f[1]),
        "both channels carry the tone"
    );
    // 1 kHz for 0.5 s: 500 cycles, two zero crossings each.
    let crossings = left
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    assert!(
        (990..=1010).contains(&crossings),
        "{crossings} zero crossings"
    );
    // -12 dBFS peak; a sine's RMS is 3 dB below its peak.
    let peak = left.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let rms = (left.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / left.len() as f64).sqrt();
    let db = |a: f64| 20.0 * a.log10();
    assert!((db(f64::from(peak)) + 12.0).abs() < 0.5, "peak {peak}");
    assert!((db(rms * 2f64.sqrt()) + 12.0).abs() < 0.5, "rms {rms}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plays_a_wav_file_to_the_end_in_real_time() {
    let dir = scratch("play");
    let wav = dir.join("sine.wav");
    write_wav(&wav, 48_000, 2, 24_000);
    let started = Instant::now();
    let out = izyrt(&["play", s(&wav), "--device", "virtual", "--json"]);
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        (Duration::from_millis(300)..Duration::from_secs(5)).contains(&took),
        "{took:?}"
    );
    let j = json_summary(&out);
    assert_eq!(j["command"], "play");
    assert_eq!(j["framesPlayed"], 24_000);
    assert_eq!(j["clipFrames"], 24_000);
    assert_eq!(j["complete"], true);
    assert_eq!(
        (j["rate"].as_u64(), j["channels"].as_u64()),
        (Some(48_000), Some(2))
    );
    assert_eq!(j["periodFrames"], 64);
    assert_eq!(j["bufferFrames"], 128);
    assert_eq!(j["stoppedBy"], Value::Null);
    let elapsed = j["elapsedSeconds"].as_f64().unwrap();
    assert!((0.45..5.0).contains(&elapsed), "{elapsed}");
    let w = &j["realtime"]["wakeupLatencyUs"];
    // 375 periods of clip plus the 2-period tail.
    assert_eq!(w["count"], 377, "{w}");
    assert!(w["p50"].as_f64().unwrap() <= w["max"].as_f64().unwrap());
    // Each period's work timed too: every period, inside the period.
    let work = &j["realtime"]["workUs"];
    assert_eq!(work["count"], 377, "{work}");
    let p50 = work["p50"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 < 1333.0 && p50 <= work["max"].as_f64().unwrap());
    assert!(
        j["realtime"]["policy"]
            .as_str()
            .unwrap()
            .starts_with("SCHED_")
    );
    // The stream description comes first, on stderr.
    for line in [
        "device:    virtual (playback)",
        "stream:    48000 Hz, 2 ch, format f32",
        "period:    64 frames (1.333 ms)",
        "rt:        izyrt-play SCHED_",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in\n{stderr}");
    }
    assert!(
        !stderr.contains("played:"),
        "--json replaces the human summary"
    );

    // Without --json, the summary is on stderr.
    let out = izyrt(&["play", s(&wav), "--device", "virtual", "--period", "256"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("period:    256 frames (5.333 ms)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("played:    24000 of 24000 frames (0.500 s)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("work:      p50 ") && stderr.contains(" periods)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_44100_hz_mono_file_plays_resampled_at_48000() {
    let dir = scratch("resample");
    let wav = dir.join("cd.wav");
    write_wav(&wav, 44_100, 1, 22_050);
    let out = izyrt(&[
        "play",
        s(&wav),
        "--device",
        "virtual",
        "--rate",
        "48000",
        "--json",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "(44100 Hz, 1 ch, 16-bit integer, 22050 frames → 48000 Hz, 2 ch, 24000 frames"
        ),
        "{stderr}"
    );
    let j = json_summary(&out);
    assert_eq!(j["rate"], 48_000);
    assert_eq!(j["framesPlayed"], 24_000);
    assert_eq!(j["complete"], true);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_files_devices_and_options_are_one_line_each() {
    let dir = scratch("errors");
    let wav = dir.join("ok.wav");
    write_wav(&wav, 48_000, 2, 480);
    let not_wav = dir.join("notes.txt");
    std::fs::write(&not_wav, "just some text\n").unwrap();
    let missing = dir.join("missing.wav");
    let out_wav = dir.join("out.wav");
    let raw = dir.join("out.raw");
    let file_pcm = format!("file:'{}',raw", raw.display());

    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["play", s(&missing), "--device", "virtual"],
            2,
            format!("cannot read WAV file '{}'", missing.display()),
        ),
        (
            vec!["play", s(&not_wav), "--device", "virtual"],
            2,
            format!("'{}' is not a RIFF/WAVE file", not_wav.display()),
        ),
        (
            vec!["play", s(&wav), "--device", "virtual:bogus"],
            64,
            "bad device 'virtual:bogus': unknown option 'bogus'".into(),
        ),
        (
            vec!["play", s(&wav), "--device", "virtual", "--period", "0"],
            64,
            "--period 0 is not allowed (allowed: 1..=4096 frames)".into(),
        ),
        (
            vec![
                "record",
                s(&out_wav),
                "--device",
                "virtual",
                "--seconds",
                "-1",
            ],
            64,
            "--seconds -1 is not allowed".into(),
        ),
        (
            vec![
                "record",
                s(&out_wav),
                "--device",
                "virtual",
                "--seconds",
                "inf",
            ],
            64,
            "--seconds inf is not allowed".into(),
        ),
        (
            vec![
                "record",
                s(&out_wav),
                "--device",
                "virtual:bogus",
                "--seconds",
                "1",
            ],
            64,
            "bad device 'virtual:bogus'".into(),
        ),
        // An ALSA `file` PCM does not pace time: refused for an RT loop, by name.
        (
            vec!["play", s(&wav), "--device", &file_pcm],
            1,
            format!("cannot open device '{file_pcm}': refused for realtime use"),
        ),
    ];
    for (args, code, needle) in cases {
        let out = izyrt(&args);
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert_eq!(lines.len(), 1, "{args:?}: one line, got\n{stderr}");
        assert!(lines[0].starts_with("izyrt: "), "{args:?}: {stderr}");
        assert!(
            lines[0].contains(&needle),
            "{args:?}: want {needle:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(!out_wav.exists(), "a refused recording creates no file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigint_stops_a_recording_promptly_and_leaves_a_valid_wav() {
    let dir = scratch("sigint");
    let wav = dir.join("cut.wav");
    let mut child = Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .args([
            "record",
            s(&wav),
            "--device",
            "virtual:tone=1000",
            "--seconds",
            "10",
        ])
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until audio is reaching the disk (the handler is installed by then).
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(&wav).map_or(0, |m| m.len()) < 64 * 1024 {
        assert!(Instant::now() < deadline, "no audio written within 5 s");
        assert!(child.try_wait().unwrap().is_none(), "exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let sent = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "still running 3 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(128 + libc::SIGINT), "{stderr}");
    let j = json_summary(&out);
    assert_eq!(j["stoppedBy"], "SIGINT");
    assert_eq!(j["framesRequested"], 480_000);
    let recorded = j["framesRecorded"].as_u64().unwrap();
    assert!((1..480_000).contains(&recorded), "{recorded}");
    assert_eq!(
        j["framesCaptured"].as_u64().unwrap(),
        recorded + j["droppedFrames"].as_u64().unwrap()
    );

    let mut reader = hound::WavReader::open(&wav).unwrap();
    assert_eq!(u64::from(reader.duration()), recorded);
    let samples: Vec<f32> = reader.samples::<f32>().map(Result::unwrap).collect();
    assert_eq!(samples.len() as u64, recorded * 2);
    let peak = samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        (peak - 0.251).abs() < 0.01,
        "the tone is there: peak {peak}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_rt_halves_allocate_nothing() {
    // Play: the clip, its end, then the silent tail that sets the stop flag.
    let clip = Arc::new(Clip::from_interleaved(vec![0.25; 1_000 * 2], 48_000, 2));
    let stop = Arc::new(AtomicBool::new(false));
    let mut cursor = PlayCursor::new(
        ClipReader::new(Arc::clone(&clip), false),
        128,
        Arc::clone(&stop),
    );
    let mut period = vec![0.0f32; 64 * 2];
    let ((), n) = count_allocations(|| {
        while !stop.load(Ordering::Relaxed) {
            cursor.fill(&mut period);
        }
    });
    assert_eq!(n, 0, "PlayCursor::fill allocated");
    assert_eq!(cursor.frames_played(), 1_000);

    // Record: pushes, a full queue (dropped and counted), the last partial period.
    let (producer, consumer) = rtrb::RingBuffer::<f32>::new(10 * 64 * 2);
    let dropped = Arc::new(AtomicU64::new(0));
    let tap = RecordTap::new(producer, 2, Arc::clone(&dropped));
    let stop = Arc::new(AtomicBool::new(false));
    let mut cursor = RecordCursor::new(tap, 2, 1_000, Arc::clone(&stop));
    let capture = vec![0.5f32; 64 * 2];
    let ((), n) = count_allocations(|| {
        while !stop.load(Ordering::Relaxed) {
            cursor.take(&capture);
        }
    });
    assert_eq!(n, 0, "RecordCursor::take allocated");
    assert_eq!(cursor.frames_captured(), 1_000);
    assert_eq!(
        consumer.slots() as u64 / 2 + dropped.load(Ordering::Relaxed),
        1_000
    );
    assert!(dropped.load(Ordering::Relaxed) > 0, "the queue filled up");

    // The same with the seed's ratios: interpolating playback, decimating capture.
    let stop = Arc::new(AtomicBool::new(false));
    let mut cursor = PlayCursor::new(
        ClipReader::new(Arc::clone(&clip), false),
        128,
        Arc::clone(&stop),
    )
    .with_interpolator(Interpolator::new(4, 2, 64).unwrap());
    let ((), n) = count_allocations(|| {
        while !stop.load(Ordering::Relaxed) {
            cursor.fill(&mut period);
        }
    });
    assert_eq!(n, 0, "PlayCursor::fill allocated while interpolating");
    assert_eq!(cursor.frames_played(), 1_000);

    let (producer, _consumer) = rtrb::RingBuffer::<f32>::new(10 * 64 * 2);
    let tap = RecordTap::new(producer, 2, Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut cursor = RecordCursor::new(tap, 2, 1_000, Arc::clone(&stop))
        .with_decimator(Decimator::new(4, 2, 64).unwrap());
    let ((), n) = count_allocations(|| {
        while !stop.load(Ordering::Relaxed) {
            cursor.take(&capture);
        }
    });
    assert_eq!(n, 0, "RecordCursor::take allocated while decimating");
    assert_eq!(cursor.frames_captured(), 1_000);
}

/// Runs `izyrt ARGS` (a `record`) until a take in which the device did not overrun, at
/// most three times; returns that run's output.
///
/// The tests that use it judge the recorded tone, not scheduling: a take in which the
/// device overran on a loaded machine (an xrun skips ahead and puts a step in the tone, on
/// which a filter rings and which adds zero crossings: a fresh-clone CI run counted 1014
/// in a half-second take of 1 kHz) is recorded again.
fn record_clean(args: &[&str]) -> Output {
    for attempt in 1..=3 {
        let out = izyrt(args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let overran = if args.contains(&"--json") {
            json_summary(&out)["xruns"] != 0
        } else {
            !text(&out.stderr).contains("faults:    xruns 0,")
        };
        if !overran {
            return out;
        }
        eprintln!("attempt {attempt}: the device overran on a loaded machine; recording again");
    }
    panic!("the device overran in every attempt: the recording could not be judged");
}

/// Records 0.5 s of `device` decimated by `ratio` (a 16-period buffer rides out a loaded
/// machine; `record_clean` the rest); returns (rate, left channel).
fn record_decimated(test: &str, device: &str, ratio: u32) -> (u32, Vec<f32>) {
    let dir = scratch(test);
    let wav = dir.join("d.wav");
    let ratio = ratio.to_string();
    record_clean(&[
        "record",
        s(&wav),
        "--device",
        device,
        "--seconds",
        "0.5",
        "--periods",
        "16",
        "--downsample-ratio",
        &ratio,
        "--json",
    ]);
    let mut reader = hound::WavReader::open(&wav).unwrap();
    let rate = reader.spec().sample_rate;
    let samples: Vec<f32> = reader.samples::<f32>().map(Result::unwrap).collect();
    std::fs::remove_dir_all(&dir).unwrap();
    (rate, samples.iter().step_by(2).copied().collect())
}

#[test]
fn downsample_ratio_decimates_the_capture_with_anti_alias_filtering() {
    // A 1 kHz tone survives decimation by 2: a 24 kHz file of 12000 frames at -12 dBFS.
    let (rate, left) = record_decimated("decimate-pass", "virtual:tone=1000", 2);
    assert_eq!((rate, left.len()), (24_000, 12_000));
    let settled = &left[2_000..]; // past the filter's start-up
    let crossings = settled
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    assert!(
        (823..=843).contains(&crossings),
        "{crossings} zero crossings (1 kHz expected)"
    );
    let peak = settled.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        (20.0 * f64::from(peak).log10() + 12.0).abs() < 0.5,
        "peak {peak}"
    );

    // A 20 kHz tone decimated by 4 (new Nyquist 6 kHz) would alias to 4 kHz at -12 dBFS
    // without the filter; with it, it must be at least 60 dB lower.
    let (rate, left) = record_decimated("decimate-stop", "virtual:tone=20000", 4);
    assert_eq!((rate, left.len()), (12_000, 6_000));
    let peak = left[1_000..].iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(20.0 * f64::from(peak).log10() < -72.0, "alias at {peak}");
}

#[test]
fn upsample_ratio_interpolates_the_playback() {
    let dir = scratch("interpolate");
    let wav = dir.join("half-rate.wav");
    write_wav(&wav, 24_000, 2, 12_000);
    let out = izyrt(&[
        "play",
        s(&wav),
        "--device",
        "virtual",
        "--rate",
        "48000",
        "--upsample-ratio",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = json_summary(&out);
    assert_eq!(summary["framesPlayed"], 12_000, "{summary}");
    assert_eq!(summary["rate"], 48_000, "{summary}");
    assert!(text(&out.stderr).contains("interp:    by 2 (24000 Hz → 48000 Hz"));

    for (args, needle) in [
        (
            vec!["--upsample-ratio", "0"],
            "upsampleRatio 0 is not allowed",
        ),
        (
            vec!["--upsample-ratio", "3"],
            "must be a positive multiple of 3",
        ),
    ] {
        let out = izyrt(&[&["play", s(&wav), "--device", "virtual"][..], &args].concat());
        assert_eq!(out.status.code(), Some(64));
        assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
