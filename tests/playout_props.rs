//! Property tests of the playout path as the RT threads drive it: arbitrary arrival
//! orders, positions (anywhere in the u64 stream, wrapping past its end), packet sizes
//! (0, 1, above a period, above the ring), losses, duplicates, stream jumps, resets and
//! device periods, fed to
//!
//! - the hub's path: `JitterBuffer::push_at` / `pull_at` of one mixer period, then
//!   `Conceal::process` over the pull's gap (as `hub::mixer_thread::step` does);
//! - the client's path: `Playout::push_at` / `pull` of any device period (a reopened
//!   device may bring another one), `device_skipped`, `reset` (as
//!   `client::audio_thread::PlaybackHalf::play` does).
//!
//! Each run asserts: no panic; the ring's depth never above its capacity and the target
//! within its configured limits; every output sample written (the buffer is poisoned with
//! NaN before each pull) and finite; a hub pull within [-1, 1] (its samples are copied or
//! faded by raised-cosine weights that sum to 1); a client pull within ±[`PLAYOUT_GAIN`]
//! (the resampler's worst case: see there); a miss's played + silent frames equal to the
//! frames requested; and a stream that keeps coming in order after any of this plays
//! again (positions wrapping past u64::MAX included).

use izyrt::dsp::jitter::{JitterBuffer, JitterConfig, PullResult};
use izyrt::dsp::playout::conceal::Conceal;
use izyrt::dsp::playout::{Playout, PlayoutConfig};
use proptest::prelude::*;

/// The most a client pull may exceed full scale by, for input within [-1, 1]: the
/// resampler's 48-tap Kaiser-windowed sinc (cutoff 0.45, β 10.06) has an L1 norm of about
/// 2.1 at unit DC gain, reached only by an input whose signs follow its taps.
const PLAYOUT_GAIN: f32 = 2.2;

/// One thing that happens to the stream or the reader.
#[derive(Debug, Clone)]
enum Op {
    /// The sender's next packet arrives.
    Send { frames: u32, level: f32, alt: bool },
    /// The sender's next packet is lost.
    Lose { frames: u32 },
    /// The last packet arrives again.
    Dup,
    /// A packet from `back` frames before the sender's position arrives (late or reordered).
    Late { back: u32, frames: u32 },
    /// The sender's next packet is held back (reordered after later ones).
    Hold { frames: u32 },
    /// The held packets arrive, newest first.
    Release,
    /// The sender's position jumps anywhere (a restart, a hostile sender).
    Jump { delta: u64 },
    /// The reader pulls one period (the hub: its mixer period; a client: `frames`).
    Pull { frames: u32, partial: bool },
    /// The stream restarts (the hub input stopped, a slot rejoined).
    Reset,
    /// The client's device skipped frames (an xrun).
    Skip { frames: u32 },
}

/// Packet sizes: 0, 1, small, about a period, larger than any ring here.
fn size() -> impl Strategy<Value = u32> {
    prop_oneof![
        1 => Just(0u32),
        2 => Just(1u32),
        8 => 2u32..=300,
        1 => 1_500u32..=5_000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (size(), -1.0f32..=1.0, any::<bool>())
            .prop_map(|(frames, level, alt)| Op::Send { frames, level, alt }),
        2 => size().prop_map(|frames| Op::Lose { frames }),
        2 => Just(Op::Dup),
        2 => (0u32..=4_000, size()).prop_map(|(back, frames)| Op::Late { back, frames }),
        2 => size().prop_map(|frames| Op::Hold { frames }),
        2 => Just(Op::Release),
        1 => prop_oneof![any::<u64>(), Just(u64::MAX), 1u64..=10_000]
            .prop_map(|delta| Op::Jump { delta }),
        12 => (prop_oneof![Just(0u32), Just(1), 1u32..=700, Just(5_000)], any::<bool>())
            .prop_map(|(frames, partial)| Op::Pull { frames, partial }),
        1 => Just(Op::Reset),
        1 => (0u32..=2_000).prop_map(|frames| Op::Skip { frames }),
    ]
}

/// Where the stream starts: at 0, anywhere, or just before a u32 or u64 limit.
fn start() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        any::<u64>(),
        (0u64..=20_000).prop_map(|d| u64::MAX - d),
        (0u64..=20_000).prop_map(|d| u64::from(u32::MAX) - d),
        (0u64..=20_000).prop_map(|d| (i64::MAX as u64) - d),
    ]
}

/// A ring: 1–2 channels, a period of 1–128 frames, targets of 1–8 periods, slack of
/// 1–4, and a little spare capacity.
fn ring() -> impl Strategy<Value = JitterConfig> {
    (
        1u16..=2,
        1u32..=128,
        1u32..=8,
        1u32..=4,
        0u32..=64,
        1u32..=50,
        1u32..=20,
    )
        .prop_flat_map(|(channels, period, max_p, slack_p, spare, steady, drift)| {
            (
                1u32..=max_p,
                Just((channels, period, max_p, slack_p, spare, steady, drift)),
            )
        })
        .prop_map(
            |(min_p, (channels, period, max_p, slack_p, spare, steady, drift))| {
                let max = period * max_p;
                let slack = period * slack_p;
                JitterConfig {
                    channels,
                    period_frames: period,
                    capacity_frames: max + slack + period + spare,
                    initial_target_frames: period * min_p,
                    min_target_frames: period * min_p,
                    max_target_frames: max,
                    slack_frames: slack,
                    steady_pulls: steady,
                    drift_pulls: drift,
                    margin_ns: 500_000,
                }
            },
        )
}

/// The sender's side of a run: its position, the last packet, the held ones.
struct Sender {
    ch: usize,
    pos: u64,
    last: Option<(u64, Vec<f32>)>,
    held: Vec<(u64, Vec<f32>)>,
}

impl Sender {
    fn packet(&self, frames: u32, level: f32, alt: bool) -> Vec<f32> {
        (0..frames as usize * self.ch)
            .map(|i| {
                if alt && (i / self.ch) % 2 == 1 {
                    -level
                } else {
                    level
                }
            })
            .collect()
    }
}

/// What a reader under test does with the sender's packets and pulls.
trait Reader {
    fn push(&mut self, position: u64, samples: &[f32], at: u64);
    /// One pull of `frames` (with a trailing partial frame when `partial`): checks the
    /// output and the invariants.
    fn pull(&mut self, frames: u32, partial: bool, now: u64) -> Result<(), TestCaseError>;
    fn reset(&mut self);
    fn skip(&mut self, frames: u32);
}

/// Plays `ops` through `reader`.
fn run(reader: &mut impl Reader, ch: usize, start: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut s = Sender {
        ch,
        pos: start,
        last: None,
        held: Vec::new(),
    };
    let period_ns = 1_333_333u64;
    let mut now = 1_000_000_000u64;
    for op in ops {
        match *op {
            Op::Send { frames, level, alt } => {
                let p = s.packet(frames, level, alt);
                reader.push(s.pos, &p, now);
                s.last = Some((s.pos, p));
                s.pos = s.pos.wrapping_add(u64::from(frames));
            }
            Op::Lose { frames } => s.pos = s.pos.wrapping_add(u64::from(frames)),
            Op::Dup => {
                if let Some((pos, p)) = &s.last {
                    reader.push(*pos, p, now);
                }
            }
            Op::Late { back, frames } => {
                let p = s.packet(frames, 0.5, false);
                reader.push(s.pos.wrapping_sub(u64::from(back)), &p, now);
            }
            Op::Hold { frames } => {
                if s.held.len() < 16 {
                    s.held.push((s.pos, s.packet(frames, -0.75, true)));
                }
                s.pos = s.pos.wrapping_add(u64::from(frames));
            }
            Op::Release => {
                while let Some((pos, p)) = s.held.pop() {
                    reader.push(pos, &p, now);
                }
            }
            Op::Jump { delta } => s.pos = s.pos.wrapping_add(delta),
            Op::Pull { frames, partial } => {
                now += period_ns;
                reader.pull(frames, partial, now)?;
            }
            Op::Reset => reader.reset(),
            Op::Skip { frames } => reader.skip(frames),
        }
    }
    Ok(())
}

/// The hub's mixer input: a jitter buffer pulled one mixer period at a time, concealed.
struct Hub {
    jb: JitterBuffer,
    conceal: Conceal,
    out: Vec<f32>,
}

impl Reader for Hub {
    fn push(&mut self, position: u64, samples: &[f32], at: u64) {
        let r = self.jb.push_at(position, samples, at);
        let frames = (samples.len() / self.out_ch()) as u64;
        // (`evicted` also counts older frames dropped to make room: not bounded by these.)
        assert!(
            r.stored + r.late + r.duplicate <= frames,
            "{r:?} of {frames}"
        );
    }

    fn pull(&mut self, _frames: u32, _partial: bool, now: u64) -> Result<(), TestCaseError> {
        // The mixer's period never changes: its input is always one period.
        self.out.fill(f32::NAN);
        let r = self.jb.pull_at(&mut self.out, now);
        if r != PullResult::Priming {
            self.conceal.process(&mut self.out, self.jb.gap());
        } else {
            self.conceal.reset();
        }
        let frames = (self.out.len() / self.out_ch()) as u32;
        if let PullResult::Miss { played, silent } = r {
            prop_assert_eq!(played + silent, frames);
        }
        check(&self.out, 1.0)?;
        let c = self.jb.config();
        prop_assert!(self.jb.depth_frames() <= u64::from(c.capacity_frames));
        prop_assert!(
            (c.min_target_frames..=c.max_target_frames).contains(&self.jb.target_frames())
        );
        Ok(())
    }

    fn reset(&mut self) {
        self.jb.reset();
        self.conceal.reset();
    }

    fn skip(&mut self, _frames: u32) {}
}

impl Hub {
    fn out_ch(&self) -> usize {
        usize::from(self.jb.config().channels)
    }
}

/// A client's speaker: the locked playout pulled at whatever period its device has.
struct Client {
    p: Playout,
    cfg: JitterConfig,
    out: Vec<f32>,
    peak: f32,
}

impl Reader for Client {
    fn push(&mut self, position: u64, samples: &[f32], at: u64) {
        self.p.push_at(position, samples, at);
    }

    fn pull(&mut self, frames: u32, partial: bool, _now: u64) -> Result<(), TestCaseError> {
        let ch = usize::from(self.cfg.channels);
        let len = frames as usize * ch + usize::from(partial && ch > 1);
        let out = &mut self.out[..len];
        out.fill(f32::NAN);
        let r = self.p.pull(out);
        if let PullResult::Miss { played, silent } = r {
            // Counted in ring frames (what the resampler needed): at most the scratch
            // the playout reads into (two periods and the filter's reach).
            let most = 2 * u64::from(self.cfg.period_frames) + 64;
            prop_assert!(u64::from(played) + u64::from(silent) <= most);
        }
        check(out, PLAYOUT_GAIN)?;
        self.peak = out.iter().fold(self.peak, |m, x| m.max(x.abs()));
        prop_assert!(self.p.depth_frames() <= u64::from(self.cfg.capacity_frames));
        prop_assert!(
            (self.cfg.min_target_frames.min(self.cfg.max_target_frames)
                ..=self.cfg.max_target_frames)
                .contains(&self.p.target_frames()),
            "target {} outside {}..={}",
            self.p.target_frames(),
            self.cfg.min_target_frames,
            self.cfg.max_target_frames
        );
        prop_assert!(self.p.ratio().is_finite() && self.p.clock_ppm().is_finite());
        Ok(())
    }

    fn reset(&mut self) {
        self.p.reset();
    }

    fn skip(&mut self, frames: u32) {
        self.p.device_skipped(u64::from(frames));
    }
}

/// Every sample written, finite, within ±`bound`.
fn check(out: &[f32], bound: f32) -> Result<(), TestCaseError> {
    for (i, &x) in out.iter().enumerate() {
        prop_assert!(x.is_finite(), "sample {} is {} (not written?)", i, x);
        prop_assert!(x.abs() <= bound, "sample {} is {}", i, x);
    }
    Ok(())
}

/// After the ops: the sender restarts its stream at `pos` (anywhere, wrapping past
/// u64::MAX within the run) and sends in order, one period per pull: within 200 pulls
/// the reader plays it.
fn recovers(
    push: &mut dyn FnMut(u64, &[f32], u64),
    pull: &mut dyn FnMut(u64) -> bool,
    ch: usize,
    period: u32,
    pos: u64,
) -> bool {
    let packet = vec![0.25f32; period as usize * ch];
    let mut pos = pos;
    let mut now = 1_000_000_000_000u64;
    let mut played = 0;
    for _ in 0..200 {
        now += 1_333_333;
        push(pos, &packet, now);
        pos = pos.wrapping_add(u64::from(period));
        if pull(now) {
            played += 1;
        }
    }
    played >= 100
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// The hub's mixer input under any arrivals.
    #[test]
    fn hub_jitter_path(cfg in ring(), start in start(), ops in prop::collection::vec(op(), 1..120)) {
        let ch = usize::from(cfg.channels);
        let mut hub = Hub {
            jb: JitterBuffer::new(cfg).unwrap(),
            conceal: Conceal::new(cfg.channels, 48_000).unwrap(),
            out: vec![0.0; cfg.period_frames as usize * ch],
        };
        run(&mut hub, ch, start, &ops)?;
        // A fresh stream anywhere plays again: the slot rejoins (the net thread resets
        // it on a new connection) or the sender's stream wraps past u64::MAX.
        hub.reset();
        let Hub { jb, out, .. } = &mut hub;
        let jb = std::cell::RefCell::new(jb);
        let ok = recovers(
            &mut |p, s, at| { jb.borrow_mut().push_at(p, s, at); },
            &mut |now| { out.fill(f32::NAN); jb.borrow_mut().pull_at(out, now) == PullResult::Played },
            ch,
            cfg.period_frames,
            u64::MAX - 50 * u64::from(cfg.period_frames),
        );
        prop_assert!(ok, "the stream did not play again");
    }

    /// A client's speaker under any arrivals and device periods.
    #[test]
    fn client_playout_path(
        cfg in ring(),
        rate in prop_oneof![Just(48_000u32), Just(44_100), Just(8_000), Just(96_000)],
        start in start(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let ch = usize::from(cfg.channels);
        let mut client = Client {
            p: Playout::new(PlayoutConfig { ring: cfg, rate, pull_frames: cfg.period_frames }).unwrap(),
            cfg,
            out: vec![0.0; 5_000 * ch + 1],
            peak: 0.0,
        };
        run(&mut client, ch, start, &ops)?;
        client.p.reset();
        let Client { p, out, .. } = &mut client;
        let p = std::cell::RefCell::new(p);
        let n = cfg.period_frames as usize * ch;
        let ok = recovers(
            &mut |pos, s, at| { p.borrow_mut().push_at(pos, s, at); },
            &mut |_| { p.borrow_mut().pull(&mut out[..n]) == PullResult::Played },
            ch,
            cfg.period_frames,
            u64::MAX - 50 * u64::from(cfg.period_frames),
        );
        prop_assert!(ok, "the stream did not play again");
    }
}

/// Regression (the wrap the properties' recovery check runs into): a stream whose
/// positions cross u64::MAX, as senders' wrapping counters do, kept arriving "late" at
/// the hub after the wrap and was never played again.
#[test]
fn a_hub_input_crossing_u64_max_keeps_playing() {
    let mut jb = JitterBuffer::new(JitterConfig {
        channels: 1,
        period_frames: 4,
        capacity_frames: 64,
        initial_target_frames: 4,
        min_target_frames: 4,
        max_target_frames: 16,
        slack_frames: 8,
        steady_pulls: 100,
        drift_pulls: 10,
        margin_ns: 0,
    })
    .unwrap();
    let mut out = [0.0f32; 4];
    let mut pos = u64::MAX - 9;
    for i in 0..20 {
        jb.push(pos, &[0.5; 4]);
        pos = pos.wrapping_add(4);
        let r = jb.pull(&mut out);
        if i > 0 {
            assert_eq!(r, PullResult::Played, "pull {i}");
        }
    }
    assert_eq!((jb.misses(), jb.late_packets()), (0, 0));
    assert_eq!(jb.end_position(), pos);
}

/// Regression (same wrap, the client's path): after a stream crossed u64::MAX every packet
/// measured as 4·10^14 s late (the latency target jumped to its maximum for good) and the
/// ring dropped them all as late.
#[test]
fn a_client_stream_crossing_u64_max_keeps_its_target_and_plays() {
    let mut p = Playout::new(PlayoutConfig {
        ring: JitterConfig {
            channels: 1,
            ..JitterConfig::default()
        },
        rate: 48_000,
        pull_frames: 64,
    })
    .unwrap();
    let floor = p.target_frames();
    let mut out = [0.0f32; 64];
    let mut pos = u64::MAX - 64 * 500;
    for i in 0..1_000u64 {
        p.push_at(pos, &[0.25; 64], i * 1_333_333);
        pos = pos.wrapping_add(64);
        let r = p.pull(&mut out);
        if i > 10 {
            assert_eq!(r, PullResult::Played, "pull {i}");
        }
    }
    assert_eq!((p.misses(), p.late_packets()), (0, 0));
    // The clock estimate settling tilts measured lateness by a few frames; a wrap measured
    // as a plain difference took the target to its maximum (1024) for good.
    assert!(p.target_frames() <= floor + 64, "{}", p.target_frames());
}
