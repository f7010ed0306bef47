//! The original system's names and behaviours, on real processes: `izyrt getaudiodevices`,
//! `izyrt source` (a file streamed to a hub), the hub's own file sources as tracks and
//! users, `upsampleRatio`/`downsampleRatio` in the monitor and dev mode, and the speaker's
//! misses reset when the hub input stalls on a live connection.
#![cfg(target_os = "linux")]

#[path = "common/procs.rs"]
mod procs;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use procs::{Proc, hub, metrics, monitor, peer, scratch, wait_for};
use serde_json::{Value, json};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Writes a stereo 16-bit WAV of a `hz` sine at half scale, `seconds` long.
fn tone_wav(path: &Path, rate: u32, hz: f64, seconds: f64) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..(seconds * f64::from(rate)) as usize {
        let x = (std::f64::consts::TAU * hz * n as f64 / f64::from(rate)).sin() * 0.5;
        let s = (x * 32_767.0) as i16;
        w.write_sample(s).unwrap();
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn stdout_of(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn getaudiodevices_is_the_originals_name_for_devices() {
    for json in [&[][..], &["--json"][..]] {
        let (code, original) = stdout_of(&[&["getaudiodevices"][..], json].concat());
        let (code2, ours) = stdout_of(&[&["devices"][..], json].concat());
        assert_eq!((code, code2), (Some(0), Some(0)));
        assert!(original.contains("virtual"), "{original}");
        assert_eq!(original, ours);
    }
}

/// Waits until a process exits; its exit code.
fn exit_code(p: &mut Proc, timeout: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = p.child.try_wait() {
            return status.code();
        }
        assert!(
            start.elapsed() < timeout,
            "{} still runs:\n{}",
            p.name,
            p.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn source_streams_a_file_to_the_hub_in_real_time_and_ends_at_its_end() {
    let dir = scratch("source");
    // 44.1 kHz: the source resamples it to the hub's 48 kHz.
    let wav = dir.join("jingle.wav");
    tone_wav(&wav, 44_100, 440.0, 4.0);
    let (_hub, addr, hub_metrics) = hub(&[]);
    let (_mon, mon_metrics) = monitor(addr, "admin", &[]);
    let hub_addr = addr.to_string();
    let mut source = Proc::start(
        "source",
        &[
            "source",
            "--hub",
            &hub_addr,
            "--user",
            "jingle",
            "--file",
            wav.to_str().unwrap(),
            "--periods",
            procs::PERIODS,
        ],
    );
    source.wait_line("source:    streaming", SECS(20));
    // The monitor hears the file (the hub's full mix) and sees the source in METADATA.
    let m = wait_for("the monitor hearing the source", SECS(20), || {
        let m = metrics(mon_metrics);
        let level = m["levels"]["speakerPeakDbfs"].as_f64()?;
        let shared = &m["mixeradminSharedState"]["jingle"];
        // METADATA's levels lag the mix by up to one report (500 ms).
        let input = shared["audioInputMetadata"]["peakDbfs"].as_f64()?;
        (level > -20.0 && input > -20.0 && shared["connected"] == true).then_some(m)
    });
    assert_eq!(
        m["mixeradminSharedState"]["jingle"]["role"], "source",
        "{m}"
    );
    let peak = m["mixeradminSharedState"]["jingle"]["audioInputMetadata"]["peakDbfs"]
        .as_f64()
        .unwrap();
    assert!((peak + 6.0).abs() < 1.5, "a half-scale tone: {peak} dBFS");
    let h = metrics(hub_metrics);
    assert_eq!(h["connections"]["jingle"]["role"], "source", "{h}");
    assert_eq!(h["connections"]["jingle"]["sampleRate"], 48_000);
    // At the end of the file it says BYE and exits 0.
    assert_eq!(
        exit_code(&mut source, SECS(30)),
        Some(0),
        "{}",
        source.output()
    );
    assert!(
        source.output().contains("end of file"),
        "{}",
        source.output()
    );
    let h = wait_for("the hub seeing the source leave", SECS(10), || {
        let h = metrics(hub_metrics);
        (h["connections"]["jingle"]["connected"] == false).then_some(h)
    });
    // 4 s of file at 64 frames are 3000 packets: not padded beyond the end, and not cut
    // short (a few may be lost to a stall of this shared machine).
    let packets = h["connections"]["jingle"]["packetsIn"].as_u64().unwrap();
    assert!((2_900..=3_000).contains(&packets), "{packets} packets: {h}");
}

#[test]
fn the_hubs_file_sources_are_tracks_and_source_users() {
    let dir = scratch("hubfile");
    let wav = dir.join("song.wav");
    tone_wav(&wav, 48_000, 1_000.0, 1.0);
    let (_hub, addr, hub_metrics) = hub(&["--file", wav.to_str().unwrap()]);
    let h = wait_for("the file's track", SECS(10), || {
        let h = metrics(hub_metrics);
        let tracks = h["incomingAudioTracks"].as_array()?.clone();
        let t = tracks.iter().find(|t| t["from"] == "song.wav")?.clone();
        (t["connected"] == true && t["packets"].as_u64()? > 0).then_some(h)
    });
    assert_eq!(
        h["mixeradminSharedState"]["song.wav"]["role"], "source",
        "{h}"
    );
    assert_eq!(h["connections"]["song.wav"]["role"], "source");
    assert_eq!(h["connections"]["song.wav"]["file"], wav.to_str().unwrap());
    // A monitor's view of the session (METADATA) lists it too.
    let (_mon, mon_metrics) = monitor(addr, "admin", &[]);
    let m = wait_for("the file in the monitor's METADATA", SECS(10), || {
        let m = metrics(mon_metrics);
        (m["mixeradminSharedState"]["song.wav"]["role"] == "source").then_some(m)
    });
    let peak = m["mixeradminSharedState"]["song.wav"]["audioInputMetadata"]["peakDbfs"].clone();
    assert!(peak.as_f64().is_some_and(|p| p > -10.0), "{m}");
}

/// The device rate and period of the client's playback thread.
fn playback(m: &Value, thread: &str) -> (Value, Value) {
    (
        m["currentSpeakerSampleRate"].clone(),
        m["realtime"][thread]["periodFrames"].clone(),
    )
}

#[test]
fn upsample_ratio_works_in_the_monitor_from_the_flag_and_the_config_file() {
    let cfg = scratch("ratio-mon").join("monitor.json");
    std::fs::write(&cfg, json!({"upsampleRatio": 3}).to_string()).unwrap();
    let (_hub, addr, _) = hub(&[]);
    let (_p, _) = peer(addr, "alice", "virtual:tone=440", &[]);
    let (_flag, flag_metrics) = monitor(addr, "flag", &["--upsample-ratio", "2"]);
    let (_file, file_metrics) = monitor(addr, "file", &["--config", cfg.to_str().unwrap()]);
    for (metrics_addr, ratio) in [(flag_metrics, 2u64), (file_metrics, 3)] {
        let m = wait_for("the monitor hearing alice", SECS(20), || {
            let m = metrics(metrics_addr);
            let level = m["levels"]["speakerPeakDbfs"].as_f64()?;
            (level > -20.0).then_some(m)
        });
        assert_eq!(
            playback(&m, "izyrt-monitor-playback"),
            (json!(48_000 * ratio), json!(64 * ratio)),
            "{m}"
        );
    }
}

#[test]
fn the_ratios_work_in_dev_mode_from_the_flags_and_the_config_file() {
    let cfg = scratch("ratio-dev").join("dev.json");
    std::fs::write(
        &cfg,
        json!({"downsampleRatio": 2, "upsampleRatio": 2, "device": "virtual:tone=440"}).to_string(),
    )
    .unwrap();
    let flags = [
        "--device",
        "virtual:tone=440",
        "--downsample-ratio",
        "3",
        "--upsample-ratio",
        "3",
    ];
    let file = ["--config", cfg.to_str().unwrap()];
    for (args, ratio) in [(&flags[..], 3u64), (&file[..], 2)] {
        let mut dev = Proc::start(
            "dev",
            &[
                args,
                &["--metrics", "127.0.0.1:0", "--periods", procs::PERIODS],
            ]
            .concat(),
        );
        let metrics_addr = dev.metrics_addr();
        let m = wait_for("dev mode hearing itself", SECS(20), || {
            let m = metrics(metrics_addr);
            let level = m["levels"]["speakerPeakDbfs"].as_f64()?;
            (level > -20.0).then_some(m)
        });
        assert_eq!(
            playback(&m, "izyrt-peer-audio"),
            (json!(48_000 * ratio), json!(64 * ratio)),
            "{m}"
        );
        // The hub still runs at the stream rate: the peer sends it 48 kHz.
        assert_eq!(m["connections"]["dev"]["sampleRate"], 48_000, "{m}");
        assert_eq!(dev.interrupt(SECS(10)), Some(0));
    }
}

#[test]
fn a_stall_of_the_hub_resets_the_clients_misses_on_a_live_connection() {
    let (hub, addr, _) = hub(&["--mix", "full"]);
    // Silence must not be what resets the misses here: a hold far beyond the stall.
    let (_p, peer_metrics) = peer(
        addr,
        "alice",
        "virtual:tone=440",
        &["--silence-hold-ms", "600000"],
    );
    let before = wait_for("alice running", SECS(20), || {
        let m = metrics(peer_metrics);
        (m["aggregatorStatus"] == "running").then_some(m)
    });
    let total_before = before["connections"]["alice"]["missesTotal"]
        .as_u64()
        .unwrap();
    // Stop the hub's process for 1.5 s: the connection stays (liveness 5 s) but nothing
    // arrives. Every snapshot the peer publishes meanwhile is kept.
    hub.signal(libc::SIGSTOP);
    let start = Instant::now();
    let mut during = Vec::new();
    while start.elapsed() < Duration::from_millis(1_500) {
        during.push(metrics(peer_metrics));
        std::thread::sleep(Duration::from_millis(50));
    }
    hub.signal(libc::SIGCONT);
    // The input stopped, the speaker missed (the total grew), and the counter was reset.
    let reset = during.iter().find(|m| {
        m["aggregatorStatus"] == "stopped"
            && m["connections"]["alice"]["missesTotal"].as_u64() > Some(total_before)
            && m["speakerScriptProcessorIncomingBufferMisses"] == 0
    });
    assert!(
        reset.is_some(),
        "no snapshot showed the reset: {:?}",
        during
            .iter()
            .map(|m| (
                m["aggregatorStatus"].clone(),
                m["speakerScriptProcessorIncomingBufferMisses"].clone(),
                m["connections"]["alice"]["missesTotal"].clone()
            ))
            .collect::<Vec<_>>()
    );
    // The same connection runs again.
    let after = wait_for("alice running again", SECS(20), || {
        let m = metrics(peer_metrics);
        (m["aggregatorStatus"] == "running").then_some(m)
    });
    assert_eq!(after["connections"]["alice"]["sessions"], 1, "{after}");
}
