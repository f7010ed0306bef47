//! The RT rule, proven: the driver loop over the `virtual` device allocates nothing in
//! steady state (capture, playback, duplex; wakeup-histogram recording, its quantile
//! publication and meter publication included), with a control showing the counter does
//! see an allocation made inside `process`, and the RT runner's published count
//! (`steadyAllocations`), which leaves a device's recovery out and counts the rest. Plus
//! the device's pacing: N periods take
//! ~N × 1.333 ms, and a skew changes the number of periods in a fixed wall time in
//! proportion. Timing bounds are deliberately generous: the machine is shared.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use izyrt::device::{Device, Direction, Signal, StreamConfig, VirtualDevice, VirtualOptions, open};
use izyrt::dsp::meter::{Meter, MeterConfig};
use izyrt::rt::alloc_count::{CountingAllocator, count_allocations};
use izyrt::rt::clock::now_ns;
use izyrt::rt::driver::{Driver, DriverConfig};
use izyrt::rt::thread::{RtOptions, spawn};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const WARM_UP: u64 = 100;
const STEADY: u64 = 200;

/// What one steady-state stretch did.
#[derive(Debug)]
struct Stretch {
    allocations: u64,
    cycles: u64,
    wakeup_publications: u64,
    wakeups_recorded: u64,
    playback_windows: u64,
    capture_windows: u64,
    realtime: bool,
}

/// Runs the driver over a virtual device on an RT thread: `WARM_UP` periods, then
/// `STEADY` periods under the allocation counter. With `allocate_at`, `process`
/// allocates once in that steady-state period (the control).
fn steady_state(dir: Direction, allocate_at: Option<u64>) -> Stretch {
    let cfg = StreamConfig {
        rate: 48_000,
        channels: 2,
        period_frames: 64,
        periods: 4,
    };
    let opts = VirtualOptions {
        signal: Signal::Tone(1_000.0),
        skew_ppm: 0.0,
    };
    // Main thread: everything that allocates.
    let mut dev = VirtualDevice::open(opts, dir, cfg).unwrap();
    let playback_levels = dev.playback_levels();
    let mut capture_meter = Meter::new(MeterConfig {
        rate: cfg.rate,
        channels: cfg.channels,
        window_ms: 10, // 480 frames: several publications per stretch
        ..MeterConfig::default()
    })
    .unwrap();
    let capture_levels = capture_meter.levels();
    let mut driver = Driver::new(DriverConfig {
        publish_every: 50, // four quantile publications per stretch
        ..DriverConfig::default()
    })
    .unwrap();
    let stop = driver.stop_flag();
    let wakeups = driver.wakeup_stats();
    let stats = driver.stats();

    let t = spawn(
        &RtOptions {
            name: format!("rt-alloc-{dir:?}"),
            ..RtOptions::default()
        },
        move || {
            let limit = AtomicU64::new(WARM_UP);
            let mut calls = 0u64;
            let mut process = |capture: &[f32], playback: &mut [f32]| {
                calls += 1;
                if !capture.is_empty() {
                    capture_meter.process(capture);
                }
                if !playback.is_empty() {
                    if capture.is_empty() {
                        playback.fill(0.25);
                    } else {
                        playback.copy_from_slice(capture);
                    }
                }
                if allocate_at == Some(calls) {
                    std::hint::black_box(Box::new(calls));
                }
                if calls >= limit.load(Ordering::Relaxed) {
                    stop.store(true, Ordering::Relaxed);
                }
            };
            driver.run(&mut dev, &mut process).unwrap();
            let publications_before = wakeups.publications();
            let windows_before = capture_levels.windows();
            let playback_before = playback_levels.as_ref().map_or(0, |l| l.windows());
            let cycles_before = stats.cycles();

            stop.store(false, Ordering::Relaxed);
            limit.store(WARM_UP + STEADY, Ordering::Relaxed);
            let (result, allocations) = count_allocations(|| driver.run(&mut dev, &mut process));
            result.unwrap();

            Stretch {
                allocations,
                cycles: stats.cycles() - cycles_before,
                wakeup_publications: wakeups.publications() - publications_before,
                wakeups_recorded: wakeups.snapshot().count,
                playback_windows: playback_levels.as_ref().map_or(0, |l| l.windows())
                    - playback_before,
                capture_windows: capture_levels.windows() - windows_before,
                realtime: false,
            }
        },
    )
    .unwrap();
    let realtime = t.report().is_realtime();
    let mut s = t.join().unwrap();
    s.realtime = realtime;
    s
}

fn assert_allocation_free(dir: Direction) {
    let s = steady_state(dir, None);
    assert_eq!(
        s.allocations, 0,
        "{dir:?}: allocations in steady state: {s:?}"
    );
    // The stretch really exercised everything the claim covers.
    assert_eq!(s.cycles, STEADY, "{s:?}");
    assert_eq!(s.wakeups_recorded, WARM_UP + STEADY, "{s:?}");
    assert!(s.wakeup_publications >= STEADY / 50, "{s:?}");
    if dir.plays() {
        // 200 × 64 frames = 12800 frames: five 50 ms windows of the playback meter.
        assert!(s.playback_windows >= 5, "{s:?}");
    }
    if dir.captures() {
        assert!(s.capture_windows >= 26, "{s:?}");
    }
}

#[test]
fn capture_loop_allocates_nothing() {
    assert_allocation_free(Direction::Capture);
}

#[test]
fn playback_loop_allocates_nothing() {
    assert_allocation_free(Direction::Playback);
}

#[test]
fn duplex_loop_allocates_nothing() {
    assert_allocation_free(Direction::Duplex);
}

#[test]
fn control_an_allocation_in_process_is_seen() {
    let s = steady_state(Direction::Duplex, Some(WARM_UP + 50));
    // One Box: an allocation and a free.
    assert!(s.allocations >= 1, "the counter missed it: {s:?}");
    // And nothing else: the same loop is clean without it.
    assert_eq!(s.allocations, 2, "{s:?}");
}

/// Runs `dev` on an RT thread through the driver until `stop_at(elapsed_ns since the
/// first period, periods)` says so; returns (wall time of `run`, stream periods including
/// any dropped by xruns, xruns, realtime obtained).
fn run_virtual(
    mut dev: VirtualDevice,
    name: &str,
    mut stop_at: impl FnMut(u64, u64) -> bool + Send + 'static,
) -> (Duration, u64, u64, bool) {
    let mut driver = Driver::new(DriverConfig::default()).unwrap();
    let stop = driver.stop_flag();
    let counters = dev.counters();
    let frames = u64::from(dev.obtained().period_frames);
    let t = spawn(
        &RtOptions {
            name: name.into(),
            ..RtOptions::default()
        },
        move || {
            let mut first = None;
            let mut calls = 0;
            let t0 = Instant::now();
            driver
                .run(&mut dev, &mut |_, _| {
                    calls += 1;
                    let now = now_ns();
                    let first = *first.get_or_insert(now);
                    if stop_at(now - first, calls) {
                        stop.store(true, Ordering::Relaxed);
                    }
                })
                .unwrap();
            (t0.elapsed(), dev.position() / frames)
        },
    )
    .unwrap();
    let realtime = t.report().is_realtime();
    let (took, periods) = t.join().unwrap();
    (
        took,
        periods,
        counters.xruns.load(Ordering::Relaxed),
        realtime,
    )
}

fn virtual_capture(skew_ppm: f64) -> VirtualDevice {
    VirtualDevice::open(
        VirtualOptions {
            signal: Signal::Silence,
            skew_ppm,
        },
        Direction::Capture,
        StreamConfig {
            periods: 8,
            ..StreamConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn n_periods_take_n_times_the_period() {
    // 48 kHz / 64 frames: 750 periods are exactly 1 s of stream time.
    let (took, periods, xruns, rt) = run_virtual(virtual_capture(0.0), "rt-pace", |_, n| n >= 750);
    eprintln!("750 periods: {took:?} (xruns {xruns}, realtime {rt})");
    assert!(periods >= 750);
    // Never early: the 750th deadline is 1 s after the start.
    assert!(took >= Duration::from_secs(1), "{took:?}");
    // Generous upper bound (stalls would only add dropped periods, i.e. time).
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn skew_changes_the_period_count_in_proportion() {
    // Three cards at once for ~1.5 s of wall time: nominal, 10 % fast, 10 % slow.
    let wall_ns = 1_500_000_000;
    let run = |ppm: f64, name: &'static str| {
        std::thread::spawn(move || {
            run_virtual(virtual_capture(ppm), name, move |ns, _| ns >= wall_ns)
        })
    };
    let fast = run(100_000.0, "rt-fast");
    let slow = run(-100_000.0, "rt-slow");
    let nominal = run(0.0, "rt-nominal");
    let (_, fast, ..) = fast.join().unwrap();
    let (_, slow, ..) = slow.join().unwrap();
    let (_, nominal, ..) = nominal.join().unwrap();
    eprintln!("periods in 1.5 s: fast {fast}, nominal {nominal}, slow {slow}");
    // Expected 1237.5, 1125 and 1012.5 (+1 for the first period).
    let near = |got: u64, want: f64| (got as f64 / want - 1.0).abs() < 0.05;
    assert!(near(nominal, 1_126.0), "nominal {nominal}");
    assert!(near(fast, 1_238.5), "fast {fast}");
    assert!(near(slow, 1_013.5), "slow {slow}");
    // The ratio is what the skews say: 1.1 / 0.9 = 1.222.
    let ratio = fast as f64 / slow as f64;
    assert!((1.17..1.28).contains(&ratio), "fast/slow {ratio}");
}

#[test]
fn boxed_devices_from_open_run_through_the_driver_too() {
    let spec = "virtual:impulse".parse().unwrap();
    let mut dev = open(&spec, Direction::Duplex, StreamConfig::default()).unwrap();
    let mut driver = Driver::new(DriverConfig::default()).unwrap();
    let stop: Arc<AtomicBool> = driver.stop_flag();
    let mut clicks = 0;
    let mut n = 0;
    driver
        .run(&mut *dev, &mut |capture, _| {
            clicks += capture.iter().filter(|x| **x != 0.0).count();
            n += 1;
            if n == 10 {
                stop.store(true, Ordering::Relaxed);
            }
        })
        .unwrap();
    // Frame 0 of the stream is a click on both channels (unless a stall dropped it).
    let xruns = dev.counters().xruns.load(Ordering::Relaxed);
    assert!(clicks == 2 || xruns > 0, "clicks {clicks}, xruns {xruns}");
}

/// The clock-locking resampler allocates nothing per period once built: pull periods
/// (input_needed, push, process), push periods (push, process_available), the accounting
/// calls, a refused call and a reset, with the step changing every period.
#[test]
fn resampler_periods_allocate_nothing() {
    use izyrt::dsp::resampler::Resampler;

    let mut rs = Resampler::new(2, 64).unwrap();
    let input: Vec<f32> = (0..2 * 256).map(|i| (i as f32 * 0.01).sin()).collect();
    let mut out = vec![0.0f32; 2 * 64];
    let mut period = |rs: &mut Resampler, i: u32| {
        let step = 1.0 + 0.002 * (f64::from(i % 100) / 100.0 - 0.5);
        let need = rs.input_needed(64, step);
        rs.push(&input[..need * 2]);
        rs.process(&mut out, step).unwrap();
        rs.push(&input[..2 * 64]);
        let made = rs.process_available(&mut out, step);
        std::hint::black_box((made, rs.buffered_frames(), rs.delay_frames()));
        if i % 250 == 0 {
            let _ = rs.process(&mut out, f64::NAN);
            rs.reset();
        }
    };
    for i in 0..100 {
        period(&mut rs, i);
    }
    let (_, allocations) = count_allocations(|| {
        for i in 0..1000 {
            period(&mut rs, i);
        }
    });
    assert_eq!(allocations, 0, "allocations in 1000 resampler periods");
    // Control: the counter sees a Box made among the same calls.
    let (_, allocations) = count_allocations(|| {
        period(&mut rs, 1);
        std::hint::black_box(Box::new(1u8));
    });
    assert_eq!(allocations, 2, "the counter missed a Box");
}

/// The locked playout allocates nothing per period once built: packets pushed (with a
/// lost one now and then, so concealment and its lag search run, and a stall every
/// 500 periods, each a period longer than the last so that the target never covers it,
/// whose gap is rejoined in phase), periods pulled through
/// the clock loop, the clock estimate, the policy and the resampler, a reset; and the hub's concealment with a
/// gap and a splice.
#[test]
fn locked_playout_and_concealment_allocate_nothing() {
    use izyrt::dsp::jitter::JitterConfig;
    use izyrt::dsp::playout::conceal::Conceal;
    use izyrt::dsp::playout::{Playout, PlayoutConfig};

    let mut p = Playout::new(PlayoutConfig {
        ring: JitterConfig::default(),
        rate: 48_000,
        pull_frames: 64,
    })
    .unwrap();
    let mut conceal = Conceal::new(2, 48_000).unwrap();
    let packet: Vec<f32> = (0..2 * 64)
        .map(|i| (i as f32 * 0.05).sin() * 0.25)
        .collect();
    let mut out = vec![0.0f32; 2 * 64];
    let mut hub_in = vec![0.0f32; 2 * 64];
    let mut period = |p: &mut Playout, c: &mut Conceal, i: u64| {
        let stall = 2 + i / 500;
        match i % 500 {
            s if (200..200 + stall).contains(&s) => {}
            // The stall's end: its packets at once.
            s if s == 200 + stall => {
                for k in i - stall..=i {
                    p.push_at(k * 64, &packet, i * 1_333_333);
                }
            }
            _ if i % 97 != 50 => {
                p.push_at(i * 64, &packet, i * 1_333_333);
            }
            _ => {}
        }
        // Timed as the audio thread pulls: the device's clock ticks, and the dry spells of
        // the missing packets raise the target.
        std::hint::black_box(p.pull_at(&mut out, i * 1_333_333));
        std::hint::black_box((p.clock_ppm(), p.ratio(), p.fill_frames(), p.locked()));
        hub_in.copy_from_slice(&packet);
        if i % 50 == 7 {
            c.splice();
        }
        c.process(&mut hub_in, (i % 41 == 3).then_some(10..64));
        if i == 11_000 {
            p.reset();
        }
    };
    for i in 0..500 {
        period(&mut p, &mut conceal, i);
    }
    let rejoined = p.rejoins_in_phase();
    let (_, allocations) = count_allocations(|| {
        // 15 s: the clock estimate's block medians and fit run too (`playout/rate.rs`).
        for i in 500..12_000 {
            period(&mut p, &mut conceal, i);
        }
    });
    assert_eq!(allocations, 0, "allocations in 11 500 playout periods");
    assert!(p.concealed_frames() > 0 && conceal.concealed_frames() > 0);
    assert!(p.rejoins_in_phase() > rejoined, "no gap rejoined in phase");
    // Control: the counter sees a Box made among the same calls.
    let (_, allocations) = count_allocations(|| {
        period(&mut p, &mut conceal, 12_001);
        std::hint::black_box(Box::new(1u8));
    });
    assert_eq!(allocations, 2, "the counter missed a Box (made and freed)");
}

/// A hub input's pull allocates nothing when it drops or resumes: a tone from a sender
/// 2000 ppm fast (a drift trim every second or so, each a search for a cut in phase in
/// `dsp/jitter/splice.rs`) that stalls every 2 s for 4 ms and more (each gap concealed
/// and ended in phase, `dsp/jitter/resume.rs`), read as the mixer reads it, with its per-period
/// budget, its lateness floor and its concealment (`hub::mixer_thread::InputBuffer`).
#[test]
fn hub_input_trims_in_phase_allocate_nothing() {
    use izyrt::dsp::jitter::{JitterBuffer, JitterConfig};
    use izyrt::hub::mixer_thread::{CUTS_PER_PERIOD, InputBuffer};

    let mut jb =
        InputBuffer::new(JitterBuffer::new(JitterConfig::default()).unwrap(), 48_000).unwrap();
    let mut device = izyrt::dsp::playout::device_time::DeviceTime::new(48_000);
    let mut now = 0u64;
    let tone = |n: u64| (std::f64::consts::TAU * 441.0 * n as f64 / 48_000.0).sin() as f32 * 0.25;
    let mut packet = vec![0.0f32; 2 * 64];
    let mut out = vec![0.0f32; 2 * 64];
    let (mut sent, mut due) = (0u64, 0.0f64);
    let mut pulls = 0u64;
    let mut period = |jb: &mut InputBuffer| {
        due += 1.002;
        pulls += 1;
        // Each stall a period longer than the last: the lateness floor covers the last.
        let stalled = pulls % 1_500 < 3 + pulls / 1_500;
        while (sent as f64) < due && !stalled {
            for (i, x) in packet.chunks_exact_mut(2).enumerate() {
                let v = tone(sent * 64 + i as u64);
                x.copy_from_slice(&[v, v]);
            }
            jb.push_at(sent * 64, &packet, now, &device);
            sent += 1;
        }
        let mut cuts = CUTS_PER_PERIOD;
        std::hint::black_box(jb.pull_within(&mut out, now, &mut cuts));
        device.tick(now, 64);
        now += 1_333_333;
    };
    for _ in 0..1_000 {
        period(&mut jb);
    }
    let before = (jb.buffer().trimmed_frames(), jb.buffer().aligned_resumes());
    let (_, allocations) = count_allocations(|| {
        for _ in 0..15_000 {
            period(&mut jb);
        }
    });
    assert_eq!(allocations, 0, "allocations in 15 000 hub input periods");
    assert!(
        jb.buffer().trimmed_frames() > before.0,
        "no trim in the counted periods"
    );
    assert!(
        jb.buffer().aligned_resumes() > before.1,
        "no resume in phase in the counted periods"
    );
}

/// The runner's published counts: a period in which the device recovered is left out of
/// `steadyAllocations`, with the periods settling after it, and counted in
/// `recoveryAllocations`; a steady period that allocates is counted in the first.
/// Exactly: vec + free in each. (A real xrun of the host near the steady period would move
/// that one too: the device buffer is 16 periods deep so that only a 20 ms stall makes
/// one, and if one came, the two counts' sum is what is checked.)
#[test]
fn the_runner_counts_a_steady_allocation_and_leaves_a_recovery_out() {
    use izyrt::device::DeviceCounters;
    use izyrt::rt::runner::{WARM_UP_CYCLES, start};

    struct Steps {
        n: u64,
        counters: Arc<DeviceCounters>,
    }
    fn step(s: &mut Steps, _capture: &[f32], playback: &mut [f32]) {
        s.n += 1;
        playback.fill(0.0);
        if s.n == WARM_UP_CYCLES + 100 {
            // A recovery as the device would count it, allocating in its period.
            DeviceCounters::bump(&s.counters.xruns);
            std::hint::black_box(vec![0u8; 64]);
        }
        if s.n == WARM_UP_CYCLES + 200 {
            std::hint::black_box(vec![0u8; 64]);
        }
    }
    let dev = open(
        &"virtual".parse().unwrap(),
        Direction::Playback,
        StreamConfig {
            periods: 16,
            ..StreamConfig::default()
        },
    )
    .unwrap();
    let counters = dev.counters();
    let steps = Steps {
        n: 0,
        counters: Arc::clone(&counters),
    };
    let rt = start(
        &RtOptions::default(),
        dev,
        Driver::new(DriverConfig::default()).unwrap(),
        steps,
        step,
    )
    .unwrap();
    rt.go();
    let deadline = Instant::now() + Duration::from_secs(60);
    while counters.cycles.load(Ordering::Relaxed) < WARM_UP_CYCLES + 300 {
        assert!(
            Instant::now() < deadline,
            "the runner did not reach its periods"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let published = rt.status().steady_allocation_count();
    let recovery = rt.status().recovery_allocation_count();
    let recoveries = counters.recoveries();
    rt.stop();
    let end = rt.join().unwrap();
    assert!(end.state.n >= WARM_UP_CYCLES + 300);
    if recoveries == 1 {
        assert_eq!(
            published,
            Some(2),
            "the steady period's vec and free, no more"
        );
        assert_eq!(recovery, Some(2), "the recovery's vec and free, no more");
    } else {
        // The host stalled the thread into real xruns as well.
        assert_eq!(published.zip(recovery).map(|(a, b)| a + b), Some(4));
    }
}
