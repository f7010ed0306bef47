//! `izyrt glitches` as a user runs it: the real binary on WAV files with known defects,
//! written with hound in the formats a recording may have.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A 441 Hz tone at −12 dBFS: 0.4 s of silence, `secs` of tone, 0.2 s of silence.
fn tone(rate: u32, secs: f64) -> Vec<f64> {
    let w = std::f64::consts::TAU * 441.0 / f64::from(rate);
    let silence = |s: f64| vec![0.0; (s * f64::from(rate)) as usize];
    let mut x = silence(0.4);
    x.extend((0..(secs * f64::from(rate)) as usize).map(|n| 0.251 * (w * n as f64).sin()));
    x.extend(silence(0.2));
    x
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("izyrt-cli-glitches-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `x` to `path` on `channels` identical channels, as `bits`-bit integers (or
/// 32-bit float when `bits` is 0).
fn write(path: &Path, x: &[f64], rate: u32, channels: u16, bits: u16) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: if bits == 0 { 32 } else { bits },
        sample_format: if bits == 0 {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let full = if bits == 0 {
        0.0
    } else {
        f64::from(1u32 << (bits - 1))
    };
    for &v in x {
        for _ in 0..channels {
            if bits == 0 {
                w.write_sample(v as f32).unwrap();
            } else {
                w.write_sample((v * full).round() as i32).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

fn glitches(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .arg("glitches")
        .args(args)
        .output()
        .unwrap()
}

fn json(path: &Path) -> Value {
    let out = glitches(&[path.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn counts_known_defects_in_every_format() {
    let d = dir();
    for (rate, channels, bits) in [
        (48_000, 2, 16),
        (44_100, 1, 24),
        (96_000, 2, 32),
        (48_000, 1, 0),
    ] {
        let r = rate as usize;
        let mut x = tone(rate, 6.0);
        // A hard cut (5 ms of zeros) at 1.4 s; a 2 ms raised-cosine fade gap at 2.9 s.
        let cut = r * 14 / 10;
        x[cut..cut + r / 200].fill(0.0);
        let gap = r * 29 / 10;
        let len = r / 500;
        for (i, v) in x[gap..gap + len].iter_mut().enumerate() {
            *v *= 0.5 * (1.0 + (std::f64::consts::TAU * i as f64 / len as f64).cos());
        }
        // A dropped period (64 frames) at 4.3 s.
        let drop = r * 43 / 10;
        x.drain(drop..drop + 64);
        let path = d.join(format!("t{rate}-{channels}-{bits}.wav"));
        write(&path, &x, rate, channels, bits);
        let v = json(&path);
        let what = format!("{rate} Hz, {channels} ch, {bits} bits: {v}");
        assert_eq!(v["steps"], 2, "{what}");
        assert_eq!(v["holes"], 2, "{what}");
        assert_eq!(v["events"], 3, "{what}");
        let kinds: Vec<&str> = v["eventList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["step+hole", "hole", "step"], "{what}");
        let at = v["eventList"][0]["atSeconds"].as_f64().unwrap();
        assert!((at - 1.4).abs() < 0.002, "{what}");
        // What each did to the timeline: the cut and the fade left it where it was, the
        // drop moved it 64 frames ahead (modulo the tone's period, wrapped to half of it).
        let jumps: Vec<f64> = v["eventList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["jumpFrames"].as_f64().unwrap())
            .collect();
        let period = rate as f64 / 441.0;
        let dropped = 64.0 - if 64.0 > period / 2.0 { period } else { 0.0 };
        for (j, want) in jumps.iter().zip([0.0, 0.0, dropped]) {
            assert!((j - want).abs() < 0.5, "{what}: jumps {jumps:?}");
        }
        assert_eq!(v["eventList"][0]["zeroFrames"], r / 200, "{what}");
        assert_eq!(v["eventList"][2]["zeroFrames"], 0, "{what}");
        assert!(
            (v["toneHz"].as_f64().unwrap() - 441.0).abs() < 0.05,
            "{what}"
        );
        let secs = v["seconds"].as_f64().unwrap();
        assert!((secs - 5.96).abs() < 0.01, "{what}");
        let per_min = v["eventsPerMinute"].as_f64().unwrap();
        assert!((per_min - 3.0 * 60.0 / secs).abs() < 1e-9, "{what}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn prints_one_summary_line_and_refuses_what_it_cannot_measure() {
    let d = dir().join("summary");
    std::fs::create_dir_all(&d).unwrap();
    let clean = d.join("clean.wav");
    write(&clean, &tone(48_000, 3.0), 48_000, 2, 16);
    let out = glitches(&[clean.to_str().unwrap(), "--freq", "441"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("glitches:  0 events (0.00/min): 0 steps, 0 holes; tone 441.00 Hz at -12.0 dBFS; 3.0 s analysed"),
        "{text}"
    );

    // No tone at the frequency given, silence, a file that is not WAV: exit status 2,
    // one line naming the file.
    let silent = d.join("silent.wav");
    write(&silent, &[0.0; 48_000], 48_000, 1, 16);
    let junk = d.join("junk.wav");
    std::fs::write(&junk, b"not a wav file").unwrap();
    for (file, freq, says) in [
        (&clean, "1000", "no sinusoid within 2 % of 1000 Hz"),
        (&silent, "441", "the file is silent"),
        (&junk, "441", "is not a RIFF/WAVE file"),
    ] {
        let out = glitches(&[file.to_str().unwrap(), "--freq", freq]);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says) && err.lines().count() == 1, "{err}");
    }
    let out = glitches(&[clean.to_str().unwrap(), "--freq", "0"]);
    assert_eq!(out.status.code(), Some(64));
    let _ = std::fs::remove_dir_all(&d);
}
