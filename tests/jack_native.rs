//! The native JACK device (`jack:`) against a real `jackd -d dummy`: refusals that name
//! what to change, audio through the JACK graph bit for bit, one period at a time and
//! lent to JACK's process thread for good, no allocation on either RT thread (izyrt's and
//! JACK's process thread), a server that vanishes and comes back, and the `izyrt` hub and
//! peer running on it. Skipped, with a message, when jackd is missing.
#![cfg(target_os = "linux")]

#[path = "common/alsa.rs"]
mod alsa_env;
#[path = "common/browser.rs"]
mod browser;
#[path = "common/procs.rs"]
mod procs;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alsa_env::{CHANNELS, JackServer, PERIOD, RATE};
use izyrt::device::jack::JackDevice;
use izyrt::device::{Device, DeviceError, Direction, JackOptions, StreamConfig};
use izyrt::rt::alloc_count::{CountingAllocator, count_allocations};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fn stream(period: u32) -> StreamConfig {
    StreamConfig {
        period_frames: period,
        ..alsa_env::jack_stream()
    }
}

fn opts(name: &str) -> JackOptions {
    JackOptions {
        name: name.into(),
        connect: false,
    }
}

fn jack_connect(from: &str, to: &str) {
    let ok = Command::new("jack_connect")
        .args([from, to])
        .status()
        .expect("run jack_connect");
    assert!(ok.success(), "jack_connect {from} {to}");
}

#[test]
fn no_server_and_another_period_are_refused_with_what_to_do() {
    alsa_env::use_alsa_config(alsa_env::JACK_PCMS);
    let _lock = alsa_env::serial();
    let e = JackDevice::open(&opts("iznone"), Direction::Duplex, stream(PERIOD)).unwrap_err();
    println!("without a server: {e}");
    assert!(
        e.to_string()
            .starts_with("cannot open device 'jack:name=iznone,noconnect': no JACK server"),
        "{e}"
    );
    let Some(_jackd) = JackServer::start(RATE, PERIOD) else {
        return;
    };
    let e = JackDevice::open(&opts("izwrong"), Direction::Duplex, stream(64)).unwrap_err();
    println!("another period: {e}");
    assert!(
        e.to_string().contains(&format!(
            "the JACK server runs at {RATE} Hz with {PERIOD}-frame periods, not {RATE} Hz with 64: use --rate {RATE} --period {PERIOD}"
        )),
        "{e}"
    );
}

/// Frame `i` of channel `c` in cycle `n`: distinct for every sample of a few seconds.
fn sample(n: u64, i: usize, c: usize) -> f32 {
    ((n % 1000) * 1000 + i as u64 * 2 + c as u64) as f32 / 1_000_000.0
}

#[test]
fn audio_crosses_the_graph_intact_and_no_rt_thread_allocates() {
    let Some((_lock, jackd)) = alsa_env::locked_server(RATE, PERIOD) else {
        return;
    };
    let mut dev = JackDevice::open(&opts("izloop"), Direction::Duplex, stream(PERIOD)).unwrap();
    let got = dev.obtained().clone();
    assert_eq!(
        (got.period_frames, got.buffer_frames, got.rate),
        (PERIOD, PERIOD, RATE)
    );
    assert_eq!((got.capture_channels, got.playback_channels), (2, 2));
    let name = dev.client_name().unwrap().to_string();
    // Our outputs feed our inputs: JACK delays a feedback connection by one cycle.
    jack_connect(&format!("{name}:out_1"), &format!("{name}:in_1"));
    jack_connect(&format!("{name}:out_2"), &format!("{name}:in_2"));
    let counters = dev.counters();
    // As izyrt's RT thread would be: realtime, above the 65 jackd gives its clients.
    let realtime = izyrt::rt::promote::raise_to_fifo(75);
    dev.start().unwrap();
    let ch = usize::from(CHANNELS);
    let (mut n, mut intact, mut checked) = (0u64, 0u32, 0u32);
    let mut run = |dev: &mut JackDevice, cycles: u32| {
        for _ in 0..cycles {
            let xruns = counters.xruns.load(Ordering::Relaxed);
            let mut ok = true;
            dev.cycle(&mut |input, output| {
                for (i, frame) in input.chunks_exact(ch).enumerate() {
                    for (c, x) in frame.iter().enumerate() {
                        ok &= n > 0 && *x == sample(n - 1, i, c);
                    }
                }
                for (i, frame) in output.chunks_exact_mut(ch).enumerate() {
                    for (c, x) in frame.iter_mut().enumerate() {
                        *x = sample(n, i, c);
                    }
                }
            })
            .unwrap();
            // A cycle after one JACK skipped carries silence, not the previous period.
            if counters.xruns.load(Ordering::Relaxed) == xruns && n > 0 {
                checked += 1;
                intact += u32::from(ok);
            }
            n += 1;
        }
    };
    run(&mut dev, 50);
    let before = dev.callback_allocations();
    let ((), ours) = count_allocations(|| run(&mut dev, 200));
    let theirs = dev.callback_allocations() - before;
    let xruns = counters.xruns.load(Ordering::Relaxed);
    println!(
        "{intact} of {checked} clean cycles intact; {xruns} late cycles, JACK client xruns {}; \
         allocations: izyrt thread {ours}, JACK process thread {theirs}",
        jackd.client_xruns()
    );
    if realtime {
        assert_eq!(
            dev.process_priority(),
            75,
            "JACK's process thread takes ours"
        );
    }
    assert_eq!(
        dev.denormals_flushed(),
        cfg!(any(target_arch = "x86_64", target_arch = "aarch64")),
        "FTZ/DAZ on JACK's process thread"
    );
    assert_eq!(ours, 0, "izyrt's RT thread allocated in steady state");
    assert_eq!(
        theirs, 0,
        "the JACK process callback allocated in steady state"
    );
    assert!(checked > 100, "only {checked} of 250 cycles were on time");
    // Every cycle that followed an on-time cycle got that cycle's output back exactly.
    assert!(intact + 5 >= checked, "{intact} of {checked} intact");
}

#[test]
fn driven_every_period_runs_on_jacks_thread_until_the_stop() {
    let Some((_lock, jackd)) = alsa_env::locked_server(RATE, PERIOD) else {
        return;
    };
    let mut dev = JackDevice::open(&opts("izdrive"), Direction::Duplex, stream(PERIOD)).unwrap();
    let name = dev.client_name().unwrap().to_string();
    jack_connect(&format!("{name}:out_1"), &format!("{name}:in_1"));
    jack_connect(&format!("{name}:out_2"), &format!("{name}:in_2"));
    let counters = dev.counters();
    dev.start().unwrap();
    let ch = usize::from(CHANNELS);
    let here = std::thread::current().id();
    let stop = AtomicBool::new(false);
    let late_before = jackd.client_xruns();
    let (mut n, mut intact, mut elsewhere) = (0u64, 0u32, 0u32);
    let mut period = |input: &[f32], output: &mut [f32], _late: u64| {
        let mut ok = n > 0;
        for (i, frame) in input.chunks_exact(ch).enumerate() {
            for (c, x) in frame.iter().enumerate() {
                ok &= n > 0 && *x == sample(n - 1, i, c);
            }
        }
        for (i, frame) in output.chunks_exact_mut(ch).enumerate() {
            for (c, x) in frame.iter_mut().enumerate() {
                *x = sample(n, i, c);
            }
        }
        intact += u32::from(ok);
        elsewhere += u32::from(std::thread::current().id() != here);
        n += 1;
        if n == 500 {
            stop.store(true, Ordering::Relaxed);
        }
    };
    dev.drive(&mut period, &stop)
        .expect("a JACK device runs its own periods")
        .unwrap();
    let late = jackd.client_xruns() - late_before;
    println!(
        "{intact} of 499 periods intact; {} late cycles, JACK client xruns {late}",
        counters.xruns.load(Ordering::Relaxed),
    );
    assert_eq!(n, 500, "no period after the stop");
    assert_eq!(elsewhere, 500, "every period on JACK's process thread");
    // Every period got the previous one's output back through the graph (a cycle the
    // server reported late may break one or two).
    assert!(
        intact as usize + 5 + 2 * late >= 499,
        "{intact} of 499 intact, {late} late"
    );
    // Taken back: one period at a time works again on the same device.
    dev.cycle(&mut |i, o| o.copy_from_slice(i)).unwrap();
}

#[test]
fn a_vanished_server_is_gone_and_reopen_brings_the_device_back() {
    let Some((_lock, jackd)) = alsa_env::locked_server(RATE, PERIOD) else {
        return;
    };
    let mut dev = JackDevice::open(&opts("izgone"), Direction::Duplex, stream(PERIOD)).unwrap();
    dev.start().unwrap();
    for _ in 0..20 {
        dev.cycle(&mut |i, o| o.copy_from_slice(i)).unwrap();
    }
    // Lent to JACK's thread for good when the server dies: the loan ends, the device gone.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(jackd);
        Instant::now()
    });
    let stop = AtomicBool::new(false);
    let e = dev
        .drive(&mut |i, o, _| o.copy_from_slice(i), &stop)
        .unwrap()
        .unwrap_err();
    let died = killer.join().unwrap();
    println!("after the server died ({:?}): {e}", died.elapsed());
    assert!(matches!(e, DeviceError::Gone { .. }), "{e}");
    assert!(
        matches!(dev.cycle(&mut |_, _| {}), Err(DeviceError::Gone { .. })),
        "one period at a time, too"
    );
    let e = dev.reopen().unwrap_err();
    assert!(e.to_string().contains("no JACK server"), "{e}");
    assert!(matches!(dev.start(), Err(DeviceError::Gone { .. })));

    let _jackd = alsa_env::reopen_on_a_new_server(&mut dev, RATE, PERIOD);
}

#[test]
fn a_server_that_vanishes_never_aborts_the_hub_or_the_peer() {
    // The server's end runs the shutdown callback on JACK's threads, which wakes izyrt's
    // RT thread into closing the client, and libjack cancels those threads as it closes
    // it (`src/device/jack/cancel.rs`). Before the callback made its thread immune, a hub
    // or a peer on `jack:` aborted (SIGABRT) in about half the servers that went away.
    // Five servers, each with a hub and a peer on it, each killed under them: both must
    // still run (the driver retries), and neither may have died.
    let Some((_lock, first)) = alsa_env::locked_server(RATE, 64) else {
        return;
    };
    let mut first = Some(first);
    for round in 0..5 {
        let jackd = first
            .take()
            .unwrap_or_else(|| JackServer::start(RATE, 64).expect("jackd started before"));
        let (mut hub, addr, _) = procs::hub(&["--device", "jack:name=izhub", "--period", "64"]);
        let (mut peer, peer_metrics) = procs::peer(
            addr,
            "alice",
            "jack:name=izalice,noconnect",
            &["--period", "64"],
        );
        procs::wait_for("the peer cycling on JACK", Duration::from_secs(30), || {
            let m = procs::metrics(peer_metrics);
            (m["realtime"]["izyrt-peer-audio"]["wakeups"].as_u64()? > 100).then_some(())
        });
        drop(jackd);
        std::thread::sleep(Duration::from_millis(1500));
        for p in [&mut hub, &mut peer] {
            let status = p.child.try_wait().unwrap();
            assert!(
                status.is_none(),
                "round {round}: the {} ended ({status:?}) when its JACK server went away:\n{}",
                p.name,
                p.output()
            );
        }
    }
}

#[test]
fn hub_and_peer_run_on_native_jack_clients() {
    let Some((_lock, _jackd)) = alsa_env::locked_server(RATE, 64) else {
        return;
    };
    let secs = Duration::from_secs;
    let (_hub, addr, hub_metrics) = procs::hub(&["--device", "jack:name=izhub", "--period", "64"]);
    let (_alice, alice_metrics) = procs::peer(
        addr,
        "alice",
        "jack:name=izalice,noconnect",
        &["--period", "64", "--cpu", "0"],
    );
    let (_bob, bob_metrics) = procs::peer(addr, "bob", "virtual:tone=660", &["--period", "64"]);
    let m = procs::wait_for("alice hears bob through JACK", secs(30), || {
        let m = procs::metrics(alice_metrics);
        let level = m["levels"]["speakerPeakDbfs"].as_f64()?;
        ((level + 12.0).abs() < 1.0 && m["micStatus"] == "green").then_some(m)
    });
    let rt = &m["realtime"]["izyrt-peer-audio"];
    assert_eq!(rt["device"], "jack:name=izalice,noconnect", "{rt}");
    // Its periods run on JACK's process thread, at least at the peer's priority when it
    // could be raised (0: the machine allows no realtime).
    let jack_priority = rt["deviceThread"]["priority"].as_i64();
    println!(
        "peer's RT thread priority {}, JACK's process thread {:?}",
        rt["priority"], jack_priority
    );
    assert!(
        jack_priority == Some(0) || jack_priority >= Some(rt["priority"].as_i64().unwrap()),
        "{rt}"
    );
    // `--cpu 0` keeps JACK's thread there too, once izyrt's RT thread could be pinned.
    if rt["cpu"] == 0 {
        assert_eq!(rt["deviceThread"]["cpu"], 0, "{rt}");
    } else {
        println!("--cpu 0 refused here: {rt}");
    }
    let bob_rt = &procs::metrics(bob_metrics)["realtime"]["izyrt-peer-audio"];
    assert!(
        bob_rt["deviceThread"].is_null(),
        "virtual runs on the peer's own thread: {bob_rt}"
    );
    assert_eq!(
        (rt["periodFrames"].as_u64(), rt["bufferFrames"].as_u64()),
        (Some(64), Some(64))
    );
    let h = procs::metrics(hub_metrics);
    assert_eq!(
        h["realtime"]["izyrt-hub-mixer"]["device"],
        "jack:name=izhub"
    );
    // Without --cpu JACK's thread stays where JACK put it.
    let hub_thread = &h["realtime"]["izyrt-hub-mixer"]["deviceThread"];
    assert!(
        hub_thread.is_object() && hub_thread["cpu"].is_null(),
        "{}",
        h["realtime"]["izyrt-hub-mixer"]
    );
    // The dashboard says so in the thread's row, with JACK's thread's priority.
    if let Some(chrome) = browser::chromium() {
        let page = browser::render(&chrome, alice_metrics, "jack-peer");
        let row = browser::element(&page.dom, "tr", "data-thread=\"izyrt-peer-audio\"")
            .unwrap_or_else(|| panic!("no izyrt-peer-audio row: {}", page.dom));
        let want = match jack_priority {
            Some(0) => "on the device's thread, not realtime".to_owned(),
            p => format!("on the device's thread at {}", p.unwrap()),
        };
        assert!(browser::text(row).contains(&want), "want {want:?}: {row}");
        let html = browser::html_tag(&page.dom);
        assert_eq!(browser::attr(html, "data-fits"), Some("true"), "{html}");
    } else {
        println!("dashboard check SKIPPED: no chromium (scripts/setup installs it)");
    }
    // The peer's RT thread, fed by JACK's cycle, does not allocate once steady (the
    // counter arms after 2000 periods: 2.7 s at 64 frames).
    let rt = procs::wait_for("the allocation counter armed", secs(30), || {
        let rt = procs::metrics(alice_metrics)["realtime"]["izyrt-peer-audio"].clone();
        rt["steadyAllocations"].is_u64().then_some(rt)
    });
    std::thread::sleep(secs(1));
    let rt2 = &procs::metrics(alice_metrics)["realtime"]["izyrt-peer-audio"];
    assert_eq!(rt2["steadyAllocations"], 0, "{rt} → {rt2}");
    // Its work, timed on JACK's thread, fits well inside the 1333 µs period.
    let p50 = rt2["work"]["p50Us"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 < 1333.0, "{rt2}");

    // A period the server does not run is refused with the one to use.
    let out = Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .args(["thru", "--device", "jack:name=izthru", "--period", "32"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("use --rate 48000 --period 64"), "{err}");
}
