//! The jitter buffer's margin in time, judged by simulation: the real [`JitterBuffer`] fed
//! packets whose arrival times follow a lateness model, pulled on an exact clock. It needs
//! no sockets and no scheduler, so the same figures come out on any machine, and a policy
//! is compared on the same arrivals (a timed run on a shared host cannot tell a 2× change
//! in misses from the host's noise).
//!
//! For each margin (a share of a period) and each model, 40 phases between the sender's
//! clock and the reader's, at 48 kHz / 64 frames: the misses and the mean depth after
//! each pull (the latency the buffer adds, frames), in two tables:
//! - *steady state*: `IZYRT_BENCH_SECS` (default 300) simulated seconds each, after a 5 s
//!   warm-up (the margin a shrink or drop must leave);
//! - *start*: the first 10 s of each stream, from its first packet (the margin a stream
//!   starts with; a short run such as `izyrt latency` sees mostly this).
//!
//! The models:
//! - *rare spikes*: lateness under a tenth of a period, and about every 10 s one of up to
//!   1.2 periods (a host that stalls now and then);
//! - *busy*: 2% of packets up to half a period late and 0.1% up to 1.5 periods (a loaded
//!   host or network);
//! - *VM stalls* (third table only): lateness under a tenth of a period, and about every
//!   10 s the sender stalls for up to 8 ms (6 periods), its packets then arriving at once
//!   when it resumes: this project's 2-core VM, as `playout_sim` models it;
//! - *clock steps* (third table only): lateness under a tenth of a period, and about
//!   every 0.6 s the sender's clock steps back by up to 1.5 periods (a dummy JACK server
//!   whose driver woke late: it skips the cycles it missed), while the sender, locked,
//!   sends faster by the steps' mean rate. A step takes depth, not audio, from a buffer
//!   whose margin covers it: the stream goes on where it was.
//!
//! A third table weighs the hub's *lateness floor*: at izyrt's margin, the probing rules
//! alone against the same buffer whose target never falls below the largest lateness of
//! the last 32 s ([`InputBuffer`], `src/hub/mixer_thread/input_buffer.rs`, as the hub's
//! mixer reads it). Besides the misses it counts *events*, runs of misses each within
//! 20 ms of the one before: a listener hears a stall's three missed pulls as one glitch,
//! and a rule that trades many scattered misses for a few long runs is better than the
//! miss count says.
//!
//! `cargo bench --bench jitter_policy`.

use izyrt::dsp::jitter::{JitterBuffer, JitterConfig, PullResult};
use izyrt::dsp::playout::device_time::DeviceTime;
use izyrt::hub::mixer_thread::{InputBuffer, input_jitter_config};

const PERIOD: u32 = 64;
const PERIOD_NS: u64 = 1_333_333;
const PHASES: u64 = 40;

/// xorshift64: the same arrivals for every margin.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A lateness model: a uniform draw in, lateness in periods out.
type Model = fn(&mut Rng) -> f64;

fn rare_spikes(r: &mut Rng) -> f64 {
    if r.unit() < 0.99987 {
        r.unit() * 0.1
    } else {
        r.unit() * 1.2
    }
}

fn busy(r: &mut Rng) -> f64 {
    let u = r.unit();
    if u < 0.98 {
        r.unit() * 0.05
    } else if u < 0.999 {
        r.unit() * 0.5
    } else {
        0.5 + r.unit()
    }
}

/// The sender stalls for up to 6 periods about every 10 s; what it sends meanwhile
/// arrives when it resumes. Otherwise lateness under a tenth of a period.
fn vm_stalls(r: &mut Rng, resumes: &mut f64, k: u64) -> f64 {
    let k = k as f64;
    if *resumes <= k && r.unit() < 1.0 / 7_500.0 {
        *resumes = k + r.unit() * 6.0;
    }
    (*resumes - k).max(0.0) + r.unit() * 0.1
}

/// The sender's clock steps back by up to 1.5 periods about every 0.6 s: a dummy JACK
/// server whose driver woke late skips the cycles it missed (at 32-frame periods on this
/// VM, about 100 times a minute). The sender is locked to the reader's clock, and its
/// clock loop takes the steps for a slow device: it sends faster by their mean rate, so
/// the stream keeps the reader's rate on average and wanders around it. `behind` is the
/// sum of the steps so far, periods. Otherwise lateness under a tenth of a period.
fn clock_steps(r: &mut Rng, behind: &mut f64, k: u64) -> f64 {
    const EVERY: f64 = 450.0;
    const MEAN: f64 = 0.75;
    if r.unit() < 1.0 / EVERY {
        *behind += r.unit() * 2.0 * MEAN;
    }
    *behind - k as f64 * MEAN / EVERY + r.unit() * 0.1
}

/// How packets arrive in a run.
#[derive(Clone, Copy)]
enum Arrivals {
    /// Each packet late by the model's draw, independently.
    Model(Model),
    /// [`vm_stalls`].
    VmStalls,
    /// [`clock_steps`].
    ClockSteps,
}

/// Which buffer a run simulates.
#[derive(Clone, Copy)]
enum Buffer {
    /// `JitterConfig::default()` (mono) with this margin: the probing rules alone.
    Margin(u64),
    /// The hub's input buffer at 64 frames, with (`true`) or without its lateness floor.
    Hub(bool),
}

/// The buffer a run reads: alone, or as the hub's input reads it.
enum Reader {
    Plain(Box<JitterBuffer>),
    /// With the hub device's time, ticked once a pull as the mixer ticks it.
    Floored(Box<InputBuffer>, DeviceTime),
}

impl Reader {
    fn push_at(&mut self, position: u64, samples: &[f32], at: u64) {
        match self {
            Reader::Plain(jb) => {
                jb.push_at(position, samples, at);
            }
            Reader::Floored(input, device) => {
                input.push_at(position, samples, at, device);
            }
        }
    }

    fn pull_at(&mut self, out: &mut [f32], now: u64) -> PullResult {
        let mut unlimited = u32::MAX;
        match self {
            Reader::Plain(jb) => jb.pull_within(out, now, &mut unlimited),
            Reader::Floored(input, device) => {
                let r = input.pull_within(out, now, &mut unlimited);
                device.tick(now, u64::from(PERIOD));
                r
            }
        }
    }

    fn depth_frames(&self) -> u64 {
        match self {
            Reader::Plain(jb) => jb.depth_frames(),
            Reader::Floored(input, _) => input.buffer().depth_frames(),
        }
    }
}

/// Misses closer than this to the one before are one event: what a listener hears as one
/// glitch (as `izyrt glitches` merges a recording's steps and holes).
const EVENT_GAP_NS: u64 = 20_000_000;

/// What one buffer made of one arrival model, over every phase.
struct Outcome {
    /// Pulls that missed.
    misses: u64,
    /// Runs of misses, each within [`EVENT_GAP_NS`] of the one before.
    events: u64,
    /// Mean depth after each pull, frames.
    depth: f64,
}

/// The [`Outcome`] for one buffer and arrival model, counted after `warm` of `secs`
/// simulated seconds.
fn run(buffer: Buffer, arrivals: Arrivals, secs: u64, warm: u64) -> Outcome {
    let periods = secs * 750;
    let warm = warm * 750;
    let (mut misses, mut events, mut depth, mut pulls) = (0, 0, 0.0, 0u64);
    let packet = vec![0.1f32; PERIOD as usize];
    let mut out = vec![0f32; PERIOD as usize];
    for phase in 0..PHASES {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (phase + 1).wrapping_mul(7919));
        let (cfg, floor) = match buffer {
            Buffer::Margin(margin_ns) => (
                JitterConfig {
                    channels: 1,
                    margin_ns,
                    ..JitterConfig::default()
                },
                false,
            ),
            Buffer::Hub(floor) => (input_jitter_config(1, PERIOD, PERIOD, 48_000), floor),
        };
        let jb = JitterBuffer::new(cfg).expect("valid config");
        let mut reader = if floor {
            Reader::Floored(
                Box::new(InputBuffer::new(jb, 48_000).expect("valid config")),
                DeviceTime::new(48_000),
            )
        } else {
            Reader::Plain(Box::new(jb))
        };
        // Packet k arrives `early` before pull k would need it at a one-period target,
        // plus its lateness; arrivals may reorder.
        let early = PERIOD_NS * phase / PHASES;
        let start = 10 * PERIOD_NS;
        // `vm_stalls`' resume or `clock_steps`' sum of steps.
        let mut carry = 0.0;
        let mut arrivals: Vec<(u64, u64)> = (0..periods)
            .map(|k| {
                let late = match arrivals {
                    Arrivals::Model(model) => model(&mut rng),
                    Arrivals::VmStalls => vm_stalls(&mut rng, &mut carry, k),
                    Arrivals::ClockSteps => clock_steps(&mut rng, &mut carry, k),
                };
                let late = (late * PERIOD_NS as f64) as u64;
                (start + (k + 1) * PERIOD_NS - early + late, k)
            })
            .collect();
        arrivals.sort_unstable();
        let mut next = arrivals.iter().peekable();
        let mut last_miss: Option<u64> = None;
        for k in 0..periods - 20 {
            let now = start + (k + 1) * PERIOD_NS;
            while let Some(&&(at, n)) = next.peek() {
                if at > now {
                    break;
                }
                reader.push_at(n * u64::from(PERIOD), &packet, at);
                next.next();
            }
            let r = reader.pull_at(&mut out, now);
            if k >= warm {
                if matches!(r, PullResult::Miss { .. }) {
                    misses += 1;
                    events += u64::from(last_miss.is_none_or(|t| now - t > EVENT_GAP_NS));
                    last_miss = Some(now);
                }
                depth += reader.depth_frames() as f64;
                pulls += 1;
            }
        }
    }
    Outcome {
        misses,
        events,
        depth: depth / pulls.max(1) as f64,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = std::env::var("IZYRT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let models: [(&str, Model); 2] = [("rare spikes", rare_spikes), ("busy", busy)];
    println!(
        "| model | margin (share of a period) | steady: misses | steady: mean depth, frames | start: misses | start: mean depth, frames |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, model) in models {
        for pct in [0, 25, 50, 75] {
            let margin = PERIOD_NS * pct / 100;
            let arrivals = Arrivals::Model(model);
            let steady = run(Buffer::Margin(margin), arrivals, secs, 5);
            let start = run(Buffer::Margin(margin), arrivals, 10, 0);
            println!(
                "| {name} | {pct}% | {} | {:.1} | {} | {:.1} |",
                steady.misses, steady.depth, start.misses, start.depth
            );
        }
    }
    println!(
        "\n{PHASES} sender phases, 48 kHz / {PERIOD} frames: steady state over {secs} s each after 5 s, start over the first 10 s; izyrt uses 50%."
    );
    println!(
        "\n| model | hub input buffer | misses | events | mean depth, frames |\n|---|---|---:|---:|---:|"
    );
    let models = [
        ("rare spikes", Arrivals::Model(rare_spikes)),
        ("busy", Arrivals::Model(busy)),
        ("VM stalls", Arrivals::VmStalls),
        ("clock steps", Arrivals::ClockSteps),
    ];
    for (name, arrivals) in models {
        for (label, floor) in [("probing alone", false), ("with the lateness floor", true)] {
            let o = run(Buffer::Hub(floor), arrivals, secs, 5);
            println!(
                "| {name} | {label} | {} | {} | {:.1} |",
                o.misses, o.events, o.depth
            );
        }
    }
    println!(
        "\nThe hub's input buffer (`input_jitter_config`, 64-frame packets), {PHASES} phases, {secs} s each after 5 s; an event is a run of misses each within 20 ms of the one before."
    );
}
