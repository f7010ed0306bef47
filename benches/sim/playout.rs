//! A deterministic simulation of a client's locked playout: the real
//! [`Playout`](izyrt::dsp::playout::Playout) fed a hub's tone on a clock `ppm` away from the
//! device's, over a modelled TCP path, pulled on an exact device clock. No sockets and no
//! scheduler, so the same figures come out on any machine (shared by
//! `benches/playout_sim.rs` and `tests/playout_sim.rs`).
//!
//! The path: the hub sends a 64-frame packet every hub period (its clock is `ppm` fast or
//! slow in the client's time); each packet takes a base delay plus a uniform jitter, and
//! TCP keeps them in order (a packet never arrives before the one sent before it). The
//! optional *stall* model is this VM's: about every `stall_every_s` the host stops for up
//! to `stall_max_ms`, and every packet due meanwhile arrives when it resumes, at once.
//! The optional *loss* is a hub whose device xruns once: at `loss_at_s` its clock skips
//! `loss_ms`, and every later packet is sent that much later, for good; or, when the
//! device reports the xrun (`loss_skips`, as izyrt's hub does since 2026-12-06), the hub's
//! stream skips the span: the packets of that time are never sent, and the later ones go
//! out on time at their positions. The optional *lost
//! cycles* are what this VM's `jackd -d dummy` servers do on both sides at once: about
//! `lost_per_s` times a second, independently, the hub's clock and the device's each
//! stand still for one period to `lost_max_ms` and go on without catching up (the hub's
//! later packets are sent that much later, the device's later pulls come that much later).
//! The optional *reconnect* is a client that loses its connection at `away_at_s` and is
//! back `away_s` later: the hub's packets sent meanwhile never come, the client forgets
//! the stream shortly after the last one ([`Playout::reset`], as its audio thread does
//! when the net thread reports the session gone), and the new session's stream goes on
//! at the hub's position.
//!
//! What a listener would hear is judged on the output itself: the hub's signal is a
//! 441 Hz tone at 0.25, and a *step* is a sample that the tone's two-term recursion
//! (at the frequency the current ratio plays it) misses by more than [`STEP`]. What the
//! hub's input would hold of the client's capture is counted too: the hub frames the
//! capture sends (resampled by the clock estimate and by the correction the hub's reports
//! of that input ask for, every 500 ms, `client::hub_input`), less those the hub's clock
//! has consumed; and, beside it, what the estimate alone would leave there.

#![allow(dead_code)]

use std::collections::VecDeque;

use izyrt::client::hub_input::{HubInputLoop, HubInputReport};
use izyrt::dsp::jitter::{JitterBuffer, JitterConfig, PullResult};
use izyrt::dsp::playout::device_time::DeviceTime;
use izyrt::dsp::playout::{Playout, PlayoutConfig};
use izyrt::dsp::quantile::quantile;
use izyrt::hub::mixer_thread::{CUTS_PER_PERIOD, InputBuffer, input_jitter_config};

/// Frames per packet and per device period.
pub const P: u32 = 64;
/// Stream rate, Hz.
pub const RATE: f64 = 48_000.0;
/// A residual this large is a step (−46 dBFS; the tone moves 0.014 per sample).
pub const STEP: f32 = 0.005;

/// One simulated run.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The hub's clock against the device's, ppm.
    pub ppm: f64,
    /// Simulated seconds.
    pub secs: f64,
    /// Each packet's delay beyond the base: uniform in 0..this many periods.
    pub jitter_periods: f64,
    /// Host stalls: about one every this many seconds (0: none).
    pub stall_every_s: f64,
    /// ... each up to this long, ms.
    pub stall_max_ms: f64,
    /// When the hub loses time once, s (`f64::INFINITY`: never) ...
    pub loss_at_s: f64,
    /// ... and how much, ms.
    pub loss_ms: f64,
    /// Whether the hub's stream skips the loss (its positions move on) rather than going
    /// on late.
    pub loss_skips: bool,
    /// Lost cycles on each side, about this many a second (0: none) ...
    pub lost_per_s: f64,
    /// ... each from one period up to this long, ms.
    pub lost_max_ms: f64,
    /// How many times as often the client's device loses cycles as the hub's (1: alike;
    /// a storm on this VM read as if the client side lost several times more).
    pub lost_device_factor: f64,
    /// When the client's connection is lost, s (`f64::INFINITY`: never) ...
    pub away_at_s: f64,
    /// ... and how long until it is back, s.
    pub away_s: f64,
    /// The random stream.
    pub seed: u64,
}

impl Scenario {
    /// The acceptance link: the hub `ppm` away, packet jitter up to a period, no
    /// host stall, no loss, for `secs` (the bench's rows and the tests start from it).
    pub fn clean(ppm: f64, secs: f64) -> Scenario {
        Scenario {
            ppm,
            secs,
            jitter_periods: 1.0,
            stall_every_s: 0.0,
            stall_max_ms: 0.0,
            loss_at_s: f64::INFINITY,
            loss_ms: 0.0,
            loss_skips: false,
            lost_per_s: 0.0,
            lost_max_ms: 0.0,
            lost_device_factor: 1.0,
            away_at_s: f64::INFINITY,
            away_s: 0.0,
            seed: 0x1234_5678,
        }
    }
}

/// What a run showed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// Periods with concealed audio, in all and after the loop locked (those from a
    /// reconnect's loss until the loop locked again left out).
    pub misses: u64,
    pub misses_after_lock: u64,
    /// Frames received and never played.
    pub dropped: u64,
    /// Seconds until the loop first locked.
    pub lock_s: Option<f64>,
    /// Seconds from a reconnect (the new session's first packet sent) until the loop
    /// locked again.
    pub relock_s: Option<f64>,
    /// The estimate at the end, ppm.
    pub estimate_ppm: f64,
    /// Largest |estimate − truth| from 60 s on, ppm.
    pub worst_error_after_60s: f64,
    /// Largest |estimate − truth| from 5 to 10 s, ppm (what the capture resamples by
    /// while the loop acquires).
    pub worst_error_5_to_10s: f64,
    /// The latency target, frames: mean over the run.
    pub target_mean: f64,
    /// Steps in the output (after the first second).
    pub steps: u64,
    /// The largest residual seen (after the first second).
    pub max_residual: f32,
    /// Queued audio (ring + resampler), ms: mean and 99th percentile over the run.
    pub fill_mean_ms: f64,
    pub fill_p99_ms: f64,
    /// What the hub's input would hold of this client's capture, resampled by the clock
    /// estimate and the correction the hub's reports of it ask for (`client::hub_input`;
    /// frames sent less frames the hub's clock consumed, transit left out), ms
    /// from 60 s on: the spread between its 0.5th and 99.5th percentiles. Time either
    /// clock loses stays in it: a walk the hub brings back only by running dry or
    /// dropping audio.
    pub hub_spread_ms: f64,
    /// The same without the hub's reports (the capture resampled by the estimate alone,
    /// as before 2026-12-07).
    pub hub_spread_alone_ms: f64,
    /// The hub's input for the capture as its mixer runs it (steered by the hub's
    /// reports; by the estimate alone).
    pub hub: [HubFigures; 2],
}

/// A hub input's figures over a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct HubFigures {
    /// Pulls that missed (each a gap every mix hears, concealed).
    pub misses: u64,
    /// Frames the hub dropped (trims, shrinks, overflow: each drop a splice).
    pub dropped: u64,
    /// Of those, frames the drift rule trimmed (the input too long for a second).
    pub trimmed: u64,
    /// Mean depth before a pull from 60 s on, ms: the latency the input adds.
    pub depth_mean_ms: f64,
}

/// The hub's input for this client's capture: packets of what one capture period made
/// (in whole frames, the remainder carried), each after a base delay and a uniform
/// jitter, in order (TCP), into the mixer's own [`InputBuffer`], pulled a period at each
/// of the hub's periods on its device's time.
struct HubSide {
    input: InputBuffer,
    device: DeviceTime,
    /// Packets on their way: arrival (s), position, frames, `CLOCK_LOCKED`.
    queue: VecDeque<(f64, u64, usize, bool)>,
    /// The newest packet's `CLOCK_LOCKED`.
    locked: bool,
    rng: Rng,
    carry: f64,
    position: u64,
    last_arrival: f64,
    samples: Vec<f32>,
    out: Vec<f32>,
    misses: u64,
    depth: (f64, u64),
}

impl HubSide {
    fn new(seed: u64) -> HubSide {
        let cfg = input_jitter_config(1, P, P, RATE as u32);
        HubSide {
            input: InputBuffer::new(JitterBuffer::new(cfg).expect("buffer"), RATE as u32)
                .expect("input"),
            device: DeviceTime::new(RATE as u32),
            queue: VecDeque::new(),
            locked: false,
            rng: Rng(seed ^ 0x5bd1_e995 | 1),
            carry: 0.0,
            position: 0,
            last_arrival: 0.0,
            samples: vec![0.1; 2 * P as usize],
            out: vec![0.0; P as usize],
            misses: 0,
            depth: (0.0, 0),
        }
    }

    /// The capture period at `now` made `frames` hub frames; they travel up to `jitter` s
    /// beyond the base delay, flagged `locked` (`CLOCK_LOCKED`: the capture resampled by
    /// a measured estimate). The hub's pulls go by the newest packet's flag, as the
    /// mixer's do; a packet in flight carries the flag it was sent with.
    fn send(&mut self, now: f64, frames: f64, jitter: f64, locked: bool) {
        self.carry += frames;
        let n = self.carry.floor();
        self.carry -= n;
        let at = (now + 0.0005 + self.rng.unit() * jitter).max(self.last_arrival);
        self.last_arrival = at;
        self.queue
            .push_back((at, self.position, n as usize, locked));
        self.position += n as u64;
    }

    /// The hub's period at `at`: what has arrived by then, then one pull.
    fn pull(&mut self, at: f64) {
        let ns = (at * 1e9) as u64;
        while let Some(&(arrival, position, n, locked)) = self.queue.front() {
            if arrival > at {
                break;
            }
            self.queue.pop_front();
            self.locked = locked;
            let samples = &self.samples[..n.min(self.samples.len())];
            self.input
                .push_at(position, samples, (arrival * 1e9) as u64, &self.device);
        }
        if at >= 60.0 {
            self.depth.0 += self.input.buffer().depth_frames() as f64;
            self.depth.1 += 1;
        }
        let mut cuts = CUTS_PER_PERIOD;
        self.input.set_sender_locked(self.locked);
        let r = self.input.pull_within(&mut self.out, ns, &mut cuts);
        if matches!(r, PullResult::Miss { .. }) {
            self.misses += 1;
        }
        self.device.tick(ns, u64::from(P));
    }

    fn figures(&self) -> HubFigures {
        HubFigures {
            misses: self.misses,
            dropped: self.input.buffer().dropped_frames(),
            trimmed: self.input.buffer().trimmed_frames(),
            depth_mean_ms: self.depth.0 / self.depth.1.max(1) as f64 / RATE * 1e3,
        }
    }
}

struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One side's lost cycles: the time it has lost by its own time `t`, s.
struct Lost {
    rng: Rng,
    per_s: f64,
    max_s: f64,
    next: f64,
    total: f64,
}

impl Lost {
    /// The losses of one side, `per_s` of them a second.
    fn new(s: &Scenario, per_s: f64, seed: u64) -> Lost {
        let mut l = Lost {
            rng: Rng(seed | 1),
            per_s,
            max_s: s.lost_max_ms * 1e-3,
            next: f64::INFINITY,
            total: 0.0,
        };
        if l.per_s > 0.0 {
            l.next = l.gap();
        }
        l
    }

    /// Exponential gaps: the events are independent.
    fn gap(&mut self) -> f64 {
        -(1.0 - self.rng.unit()).ln() / self.per_s
    }

    fn by(&mut self, t: f64) -> f64 {
        let period = f64::from(P) / RATE;
        while t >= self.next {
            self.total += period + self.rng.unit() * (self.max_s - period).max(0.0);
            self.next += self.gap();
        }
        self.total
    }
}

/// The hub's signal at stream position `pos`: a 441 Hz tone at 0.25.
pub fn tone(pos: u64) -> f32 {
    let phase = (pos % 48_000) as f64 * 441.0 / RATE;
    (0.25 * (2.0 * std::f64::consts::PI * phase).sin()) as f32
}

/// The client's playout every simulation uses: mono, P-frame pulls, a target of 1 to 32
/// periods.
pub fn playout() -> Playout {
    Playout::new(PlayoutConfig {
        ring: JitterConfig {
            channels: 1,
            period_frames: P,
            capacity_frames: P * 40,
            initial_target_frames: P,
            min_target_frames: P,
            max_target_frames: P * 32,
            slack_frames: P * 4,
            ..JitterConfig::default()
        },
        rate: RATE as u32,
        pull_frames: P,
    })
    .expect("playout")
}

/// Runs one scenario.
pub fn run(s: &Scenario) -> Outcome {
    let mut playout = playout();
    let mut rng = Rng(s.seed | 1);
    let hub_period = f64::from(P) / (RATE * (1.0 + s.ppm * 1e-6));
    let dev_period = f64::from(P) / RATE;
    let base = 0.0005;
    let mut stall_at = if s.stall_every_s > 0.0 {
        rng.unit() * s.stall_every_s * 2.0
    } else {
        f64::INFINITY
    };
    let mut stall_len = rng.unit() * s.stall_max_ms * 1e-3;
    let mut last_arrival = 0.0f64;
    let mut next = (0.0, 0u64); // the next packet's arrival, and its index
    let mut packet = vec![0.0f32; P as usize];
    let mut out = vec![0.0f32; P as usize];
    let mut o = Outcome::default();
    let mut hist = [0.0f32; 2];
    let mut fills = Vec::new();
    let (mut targets, mut periods) = (0.0, 0u64);
    let mut hub_lost = Lost::new(s, s.lost_per_s, s.seed ^ 0x9e37_79b9);
    // The hub's clock again (the same losses), for what it has consumed by a time.
    let mut hub_clock = (Lost::new(s, s.lost_per_s, s.seed ^ 0x9e37_79b9), 0u64);
    let (mut sent, mut held) = (0.0f64, Vec::new());
    let (mut sent_alone, mut held_alone) = (0.0f64, Vec::new());
    // The hub's report of this client's input (its mean excess over a quarter second,
    // every 500 ms) and the capture's loop on it (`client::hub_input`).
    let report = HubInputReport::default();
    let mut hub_loop = HubInputLoop::new(RATE as u32);
    let mut next_report = 0.5f64;
    // The hub's input for the capture, as its mixer runs it: steered by its reports, and
    // by the estimate alone. Its pulls come on the hub's clock (the same losses again).
    let mut hub_in = [HubSide::new(s.seed), HubSide::new(s.seed)];
    let mut hub_pulls = (Lost::new(s, s.lost_per_s, s.seed ^ 0x9e37_79b9), 0u64);
    let mut dev_lost = Lost::new(s, s.lost_per_s * s.lost_device_factor, s.seed ^ 0x7f4a_7c15);
    let mut arrival = |k: u64, rng: &mut Rng, last: &mut f64| -> f64 {
        let mut t = sent_at(s, k, hub_period, &mut hub_lost)
            + base
            + rng.unit() * s.jitter_periods * dev_period;
        while t > stall_at + stall_len {
            stall_at += rng.unit() * s.stall_every_s * 2.0 + 0.05;
            stall_len = rng.unit() * s.stall_max_ms * 1e-3;
        }
        if t >= stall_at {
            t = stall_at + stall_len;
        }
        t = t.max(*last);
        *last = t;
        t
    };
    next.0 = arrival(0, &mut rng, &mut last_arrival);
    // A reconnect: the hub's packets sent while the client is away never come, and the
    // client forgets the stream once the last one before is due.
    let back_at = s.away_at_s + s.away_s;
    let away = |k: u64| (s.away_at_s..back_at).contains(&(k as f64 * hub_period));
    // A reported loss: the hub's packets of the lost span are never made.
    let skipped = |k: u64| {
        let span = s.loss_at_s..s.loss_at_s + s.loss_ms * 1e-3;
        s.loss_skips && span.contains(&(k as f64 * hub_period))
    };
    let mut forgotten = false;
    let pulls = (s.secs / dev_period) as u64;
    for j in 0..pulls {
        let own = j as f64 * dev_period;
        let now = own + dev_lost.by(own);
        if !forgotten && now >= s.away_at_s + 0.05 {
            playout.reset();
            forgotten = true;
        }
        while next.0 <= now {
            let k = next.1;
            if !away(k) && !skipped(k) {
                for (i, x) in packet.iter_mut().enumerate() {
                    *x = tone(k * u64::from(P) + i as u64);
                }
                playout.push_at(k * u64::from(P), &packet, (next.0 * 1e9) as u64);
            }
            next = (arrival(k + 1, &mut rng, &mut last_arrival), k + 1);
        }
        let r = playout.pull_at(&mut out, (now * 1e9) as u64);
        let reconnecting = now >= s.away_at_s && o.relock_s.is_none();
        if matches!(r, PullResult::Miss { .. }) {
            o.misses += 1;
            if o.lock_s.is_some() && !reconnecting {
                o.misses_after_lock += 1;
            }
        }
        if o.lock_s.is_none() && playout.locked() {
            o.lock_s = Some(now);
        }
        if forgotten && now >= back_at && o.relock_s.is_none() && playout.locked() {
            o.relock_s = Some(now - back_at);
        }
        // This period's capture, in hub frames, against what the hub's clock (with its
        // lost time and its one loss) has consumed by now.
        let correction = if playout.clock_measured() {
            hub_loop.correction_ppm(&report, (now * 1e9) as u64)
        } else {
            0.0
        };
        sent += f64::from(P) * (1.0 + (playout.clock_ppm() + correction) * 1e-6);
        sent_alone += f64::from(P) * (1.0 + playout.clock_ppm() * 1e-6);
        let (clock, consumed) = &mut hub_clock;
        while sent_at(s, *consumed + 1, hub_period, clock) <= now {
            *consumed += 1;
        }
        let (pulls_clock, pulled) = &mut hub_pulls;
        let corrections = [correction, 0.0];
        for (side, c) in hub_in.iter_mut().zip(corrections) {
            let frames = f64::from(P) * (1.0 + (playout.clock_ppm() + c) * 1e-6);
            side.send(
                now,
                frames,
                s.jitter_periods * dev_period,
                playout.clock_measured(),
            );
        }
        loop {
            let at = sent_at(s, *pulled, hub_period, pulls_clock);
            if at > now {
                break;
            }
            *pulled += 1;
            for side in &mut hub_in {
                side.pull(at);
            }
        }
        if now >= next_report {
            next_report += 0.5;
            report.report(hub_in[0].input.excess_frames(), (now * 1e9) as u64);
        }
        if now >= 60.0 {
            let c = (*consumed * u64::from(P)) as f64;
            held.push((sent - c) / RATE * 1e3);
            held_alone.push((sent_alone - c) / RATE * 1e3);
        }
        let err = (playout.clock_ppm() - s.ppm).abs();
        if now >= 60.0 {
            o.worst_error_after_60s = o.worst_error_after_60s.max(err);
        }
        if (5.0..10.0).contains(&now) {
            o.worst_error_5_to_10s = o.worst_error_5_to_10s.max(err);
        }
        targets += f64::from(playout.target_frames());
        periods += 1;
        if r != PullResult::Priming {
            fills.push(playout.fill_frames() / RATE * 1e3);
        }
        // The tone's recursion at the frequency the ratio plays it.
        let w = 2.0 * std::f64::consts::PI * 441.0 * playout.ratio() / RATE;
        let c = (2.0 * w.cos()) as f32;
        for &x in &out {
            let residual = (x - c * hist[1] + hist[0]).abs();
            if now >= 1.0 && r != PullResult::Priming {
                o.max_residual = o.max_residual.max(residual);
                if residual > STEP {
                    o.steps += 1;
                }
            }
            hist = [hist[1], x];
        }
    }
    o.target_mean = targets / periods.max(1) as f64;
    o.dropped = playout.dropped_frames();
    o.estimate_ppm = playout.clock_ppm();
    fills.sort_by(f64::total_cmp);
    if !fills.is_empty() {
        o.fill_mean_ms = fills.iter().sum::<f64>() / fills.len() as f64;
        o.fill_p99_ms = fills[(fills.len() * 99 / 100).min(fills.len() - 1)];
    }
    o.hub_spread_ms = spread(&mut held);
    o.hub_spread_alone_ms = spread(&mut held_alone);
    o.hub = hub_in.map(|side| side.figures());
    o
}

/// When the hub sends (and consumes) its period `k`: its clock's own time, plus what its
/// lost cycles and its one loss have cost it by then.
fn sent_at(s: &Scenario, k: u64, hub_period: f64, lost: &mut Lost) -> f64 {
    let mut t = k as f64 * hub_period;
    t += lost.by(t);
    if t >= s.loss_at_s && !s.loss_skips {
        t += s.loss_ms * 1e-3;
    }
    t
}

/// The distance between the 0.5th and 99.5th percentiles of `xs` (0 when empty).
fn spread(xs: &mut [f64]) -> f64 {
    match (quantile(xs, 0.995), quantile(xs, 0.005)) {
        (Some(hi), Some(lo)) => hi - lo,
        _ => 0.0,
    }
}
