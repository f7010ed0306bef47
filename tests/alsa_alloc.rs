//! The realtime contract of the ALSA device, proved: a steady-state stretch of `cycle`
//! on a paced PCM (JACK's `dummy` driver through the ALSA `jack` plugin) makes no
//! allocator call on the RT thread, for capture, playback and duplex. Skipped, with a
//! message, when jackd or the plugin is missing.
#![cfg(target_os = "linux")]

#[path = "common/alsa.rs"]
mod alsa_env;

use std::sync::atomic::Ordering;

use alsa_env::{CHANNELS, JackServer, RATE, jack_stream};
use izyrt::device::alsa::AlsaDevice;
use izyrt::device::{Device, Direction};
use izyrt::rt::alloc_count::{CountingAllocator, count_allocations};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fn server() -> Option<(std::sync::MutexGuard<'static, ()>, JackServer)> {
    alsa_env::locked_server(RATE, 64)
}

/// A process callback that touches every sample and allocates nothing.
fn process_into(phase: &mut f32, energy: &mut f32, input: &[f32], output: &mut [f32]) {
    *energy += input.iter().map(|x| x * x).sum::<f32>();
    for frame in output.chunks_exact_mut(usize::from(CHANNELS)) {
        frame.fill(0.25 * phase.sin());
        *phase =
            (*phase + 2.0 * std::f32::consts::PI * 440.0 / RATE as f32) % std::f32::consts::TAU;
    }
}

#[test]
fn steady_state_cycles_make_no_allocation() {
    let Some((_lock, _jackd)) = server() else {
        return;
    };
    for (name, dir) in [
        ("izyrt_jack", Direction::Capture),
        ("izyrt_jack", Direction::Playback),
        ("izyrt_jack", Direction::Duplex),
        ("izyrt_loop", Direction::Duplex),
    ] {
        let mut dev = AlsaDevice::open(name, dir, jack_stream())
            .unwrap_or_else(|e| panic!("{name} {dir:?}: {e}"));
        let counters = dev.counters();
        dev.start().unwrap();
        let (mut phase, mut energy) = (0f32, 0f32);
        // Warm up: the first cycles may recover from a start-up xrun.
        for _ in 0..50 {
            dev.cycle(&mut |i, o| process_into(&mut phase, &mut energy, i, o))
                .unwrap();
        }
        let mut clean = false;
        for attempt in 1..=4 {
            let xruns = counters.xruns.load(Ordering::Relaxed);
            let (result, allocations) = count_allocations(|| {
                for _ in 0..150 {
                    dev.cycle(&mut |i, o| process_into(&mut phase, &mut energy, i, o))?;
                }
                Ok::<(), izyrt::device::DeviceError>(())
            });
            result.unwrap_or_else(|e| panic!("{name} {dir:?}: {e}"));
            let xruns = counters.xruns.load(Ordering::Relaxed) - xruns;
            if xruns > 0 {
                // Recovery is not steady state (it restarts the JACK client): measure again.
                println!(
                    "{name} {dir:?} attempt {attempt}: {xruns} xrun(s) during the stretch, measuring again"
                );
                continue;
            }
            println!("{name} {dir:?}: 150 steady-state cycles, {allocations} allocator calls");
            assert_eq!(
                allocations, 0,
                "{name} {dir:?}: cycle allocated in steady state"
            );
            clean = true;
            break;
        }
        assert!(
            clean,
            "{name} {dir:?}: xruns in every stretch, steady state never reached"
        );
        dev.stop();
    }
}

#[test]
fn the_counter_sees_an_allocating_process_callback() {
    let Some((_lock, _jackd)) = server() else {
        return;
    };
    let mut dev = AlsaDevice::open("izyrt_jack", Direction::Playback, jack_stream()).unwrap();
    dev.start().unwrap();
    dev.cycle(&mut |_, _| {}).unwrap();
    let (result, allocations) = count_allocations(|| {
        dev.cycle(&mut |_, o| {
            let v = vec![0.5f32; o.len()];
            o.copy_from_slice(std::hint::black_box(&v));
        })
    });
    result.unwrap();
    assert!(
        allocations >= 2,
        "alloc + free must be counted, got {allocations}"
    );
}
