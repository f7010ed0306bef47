//! The roles on ALSA devices, without a sound card: `jackd -d dummy` keeps time and the
//! ALSA `jack` PCM (libasound2-plugins) is the device. A hub clocked by an ALSA PCM, a peer
//! on an ALSA duplex PCM and a `virtual` peer: the ALSA peer hears the other through its
//! ALSA playback, reports QoS, and its RT thread does not allocate. Skipped, with a
//! message, when jackd or the plugin is missing.
#![cfg(target_os = "linux")]

#[path = "common/alsa.rs"]
mod alsa_env;
#[path = "common/procs.rs"]
mod procs;

use std::time::Duration;

use alsa_env::JackServer;
use procs::{hub, metrics, peer, wait_for};

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn hub_and_peer_on_alsa_devices() {
    alsa_env::use_alsa_config(alsa_env::JACK_PCMS);
    let _lock = alsa_env::serial();
    let Some(_jackd) = JackServer::start(48_000, 256) else {
        return;
    };
    let alsa = ["--period", "256", "--periods", "4"];
    let (hub_proc, addr, hub_metrics) = hub(&[&["--device", "izyrt_play"][..], &alsa].concat());
    let (alice, alice_metrics) = peer(
        addr,
        "alice",
        "izyrt_jack",
        &[&["--qos"][..], &alsa].concat(),
    );
    let (_bob, _) = peer(addr, "bob", "virtual:tone=660", &alsa);
    let m = wait_for("alice hears bob through ALSA", SECS(30), || {
        let m = metrics(alice_metrics);
        let level = m["levels"]["speakerPeakDbfs"].as_f64()?;
        ((level + 12.0).abs() < 1.0 && m["micStatus"] == "green").then_some(m)
    });
    assert_eq!(m["aggregatorStatus"], "running");
    let rt = &m["realtime"]["izyrt-peer-audio"];
    assert_eq!(rt["device"], "izyrt_jack", "{rt}");
    assert_eq!(rt["periodFrames"], 256);
    // The stream time xruns skipped, in whole periods (usually none).
    let lost = rt["lostFrames"].as_u64().expect("lostFrames");
    assert_eq!(lost % 256, 0, "{rt}");
    let h = wait_for("alice's QOS at the hub", SECS(10), || {
        let h = metrics(hub_metrics);
        h["mixeradminSharedState"]["alice"]["QOSMetrics"]["head"]["frames"]
            .is_u64()
            .then_some(h)
    });
    let mixer = &h["realtime"]["izyrt-hub-mixer"];
    assert_eq!(mixer["device"], "izyrt_play", "{mixer}");
    // Where realtime is granted (to izyrt, so to jackd -R -P 70 as well), the PCM's JACK
    // threads in each process run at 65, izyrt's RT thread one below them and its net
    // thread one above them (not ten below the RT thread).
    for (t, pid, net) in [
        (rt, alice.child.id(), "izyrt-peer-net"),
        (mixer, hub_proc.child.id(), "izyrt-hub-net"),
    ] {
        if t["policy"] == "SCHED_FIFO" {
            assert_eq!(
                (t["priority"].as_u64(), t["belowPluginThreads"].as_u64()),
                (Some(64), Some(65)),
                "{t}"
            );
            assert_eq!(rt_priority_of_thread(pid, net), Some(66), "{net}");
        }
    }
    assert!(mixer["wakeups"].as_u64().unwrap_or(0) > 0 || mixer["periodFrames"] == 256);
    assert_eq!(h["connections"]["alice"]["connected"], true);
    // Steady state on the ALSA thread: the counter arms after 2000 periods (10.7 s at 256).
    let rt = wait_for("the allocation counter armed", SECS(40), || {
        let m = metrics(alice_metrics);
        let rt = m["realtime"]["izyrt-peer-audio"].clone();
        rt["steadyAllocations"].is_u64().then_some(rt)
    });
    std::thread::sleep(SECS(2));
    let rt2 = &metrics(alice_metrics)["realtime"]["izyrt-peer-audio"];
    assert_eq!(rt2["steadyAllocations"], 0, "{rt} → {rt2}");
}

#[test]
fn every_role_on_a_sound_server_pcm_says_which_device_to_use() {
    alsa_env::use_alsa_config(alsa_env::JACK_PCMS);
    let _lock = alsa_env::serial();
    let Some(_jackd) = JackServer::start(48_000, 256) else {
        return;
    };
    let alsa = ["--period", "256", "--periods", "4"];
    let (mut hub, addr, _) = hub(&[&["--device", "izyrt_play"][..], &alsa].concat());
    let (mut alice, _) = peer(addr, "alice", "izyrt_jack", &alsa);
    let (bob, bob_metrics) = peer(addr, "bob", "virtual", &alsa);
    // The ALSA `jack` PCM goes through a sound server: the peer and the hub say so, name
    // the reason and the fix (no sound card here: `izyrt devices`). One shared line.
    for (p, device) in [(&mut alice, "izyrt_jack"), (&mut hub, "izyrt_play")] {
        let line = p.wait_line("warning:", SECS(20));
        assert!(
            line.contains(&format!("device {device} is not a direct sound card"))
                && line.contains("goes through the JACK sound server")
                && line.contains("izyrt devices"),
            "{line}"
        );
    }
    // A direct device (here `virtual`) gets none.
    wait_for("bob running", SECS(20), || {
        (metrics(bob_metrics)["aggregatorStatus"] == "running").then_some(())
    });
    assert!(!bob.output().contains("warning:"), "{}", bob.output());
}

#[test]
fn latency_through_a_loopback_cable() {
    alsa_env::use_alsa_config(alsa_env::JACK_PCMS);
    let _lock = alsa_env::serial();
    let Some(_jackd) = JackServer::start(48_000, 256) else {
        return;
    };
    // `izyrt_loop` plays into JACK client izyplay, whose outputs feed the capture of
    // izyrec: a loopback cable from output to input.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .args([
            "latency",
            "--device",
            "izyrt_loop",
            "--period",
            "256",
            "--periods",
            "4",
        ])
        .args(["--seconds", "6", "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("connect its output to its input"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "loopback cable", "{v}");
    assert!(v["clicks"].as_u64().unwrap() >= 3 && v["lost"] == 0, "{v}");
    // Device out + cable + device in + hub: at least two periods, well under a second.
    let p50 = v["p50Frames"].as_f64().unwrap();
    assert!((512.0..24_000.0).contains(&p50), "{v}");
}

/// The realtime priority of process `pid`'s thread named `name`.
fn rt_priority_of_thread(pid: u32, name: &str) -> Option<i32> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let path = task.path();
        // A thread that ended since the listing has no comm: not the one looked for.
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        let tid = path.file_name()?.to_str()?.parse().ok()?;
        return izyrt::rt::promote::realtime_priority_of(tid);
    }
    None
}
