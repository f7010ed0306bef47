//! The capture's pace: how many hub frames a client's capture makes per device frame, so
//! that the hub's input of it neither fills nor drains (RT audio thread, once per device
//! period of the playback half).
//!
//! Design: a capture resampled by the clock estimate alone (`rate.rs`) sends the hub its
//! own *rate*, on average, but nothing brings back time either clock loses. A dummy JACK
//! server (and, rarely, a real card) loses a cycle now and then without telling its
//! clients: on this VM about once a second on each side, a period or more each time. A
//! cycle the client's device loses is a period the capture never made; one the hub's
//! loses is a period the hub never consumed. Each is a step in the hub's input buffer
//! that stays, and the rate estimate, fitted over half a minute, takes them only as a
//! little drift: the buffer's fill is a random walk, which the hub brings back only by
//! running dry or dropping audio, each a click in every mix that input is part of.
//!
//! So the capture follows the hub's stream in *phase*. The client counts the hub frames
//! its capture has been told to make (`sent`, the integral of the ratios it published)
//! and reads, every period, where the hub's stream stands (the position the clock
//! estimate also reads). `stream − sent` is what the hub's input holds of this client
//! plus the path's constant delay, so it is held where it stood when the stream started:
//! each block of [`BLOCK_S`](super::rate::BLOCK_S) is summarised by its median (no stall
//! shorter than half a block moves it), and the difference from the first block's, over
//! [`CORRECT_S`], is added to the estimate, within ±[`MOVE_PPM`] (3.5 cents, the latency
//! moves' bound) and slewed as the playback's ratio is. A lost cycle is made up within a
//! few seconds; an error of the estimate (while it acquires, or biased by stalls) becomes
//! a fixed offset of a few milliseconds instead of a walk. A step larger than
//! [`LET_GO_S`] (a burst of xruns, a hub that lost 200 ms) is not made up: the hub's
//! input takes a step that size once (it runs dry or trims), and making it up afterwards
//! would only push that input the other way.
//!
//! Measured by simulation (`benches/playout_sim.rs`, 10 minutes, a lost cycle of one
//! period about every other second on each clock): the spread of the hub input's fill,
//! 0.5th to 99.5th percentile, 20.1 ms with the estimate alone, 7.7 ms paced. The block,
//! the time to make up and the slew were tried from 0.25 to 0.5 s, 0.5 to 2 s and 4000 to
//! 16 000 ppm/s: none moved that figure by more than a millisecond, because a step of a
//! period takes most of a second to make up at the bound whatever the gains; the
//! quarter second is the shortest block whose median a stall of a few milliseconds does
//! not move.

use super::clock::{MOVE_PPM, SLEW_PPM_PER_S};
use crate::dsp::quantile::median;

/// Seconds of device time one block (one median) covers.
pub const BLOCK_S: f64 = 0.25;
/// Seconds over which a phase error is made up (its correction is error / this).
pub const CORRECT_S: f64 = 1.0;
/// A step in the phase larger than this, s, is let go, not made up.
pub const LET_GO_S: f64 = 0.010;
/// The most readings one block holds.
const BLOCK_READINGS: usize = 4096;

/// The pace's state.
///
/// # Example
/// ```
/// use izyrt::dsp::playout::pace::CapturePace;
/// // The hub's clock and the device's agree, but the device loses one 64-frame cycle
/// // 10 s in (its capture never made it; the hub's stream went on).
/// let mut p = CapturePace::new(48_000);
/// let (mut stream, mut sent) = (0.0, 0.0);
/// for i in 0..750 * 30 {
///     stream += 64.0;
///     if i == 7_500 {
///         stream += 64.0;
///     }
///     p.observe(64, stream, 0.0);
///     sent += 64.0 * p.ratio(0.0);
/// }
/// // Made up: what the capture sent is back level with the hub's stream.
/// assert!((stream - sent).abs() < 8.0, "{}", stream - sent);
/// ```
#[derive(Debug)]
pub struct CapturePace {
    rate: f64,
    /// Hub frames the capture was told to make since the stream started playing.
    sent: f64,
    /// This block's readings of `stream − sent`, and the device frames they span.
    block: Box<[f64]>,
    len: usize,
    block_frames: f64,
    /// `stream − sent` held: the first block's median, moved by each step let go.
    anchor: Option<f64>,
    /// The correction over the estimate (ratio − 1 − estimate), and where it slews to.
    correction: f64,
    aim: f64,
}

impl CapturePace {
    /// A pace for a stream at `rate` Hz, with no correction (allocates its block; main
    /// thread).
    pub fn new(rate: u32) -> CapturePace {
        CapturePace {
            rate: f64::from(rate.max(1)),
            sent: 0.0,
            block: vec![0.0; BLOCK_READINGS].into_boxed_slice(),
            len: 0,
            block_frames: 0.0,
            anchor: None,
            correction: 0.0,
            aim: 0.0,
        }
    }

    /// One device period of `frames`: the hub's stream stands at `stream_frames` and the
    /// capture resamples by the clock estimate `ppm` plus this pace's correction.
    ///
    /// Runs on: the RT audio thread, once per device period. Must not: allocate, lock,
    /// block (a median over a preallocated block once a second).
    pub fn observe(&mut self, frames: u32, stream_frames: f64, ppm: f64) {
        if !stream_frames.is_finite() || !ppm.is_finite() {
            return;
        }
        let frames = f64::from(frames);
        let slew = SLEW_PPM_PER_S * 1e-6 * frames / self.rate;
        self.correction += (self.aim - self.correction).clamp(-slew, slew);
        self.block[self.len] = stream_frames - self.sent;
        self.len += 1;
        self.block_frames += frames;
        self.sent += frames * self.ratio(ppm);
        if self.block_frames >= BLOCK_S * self.rate || self.len == self.block.len() {
            self.end_block();
        }
    }

    /// Closes the block: its median against the anchor sets the correction.
    fn end_block(&mut self) {
        let Some(m) = median(&mut self.block[..self.len]) else {
            return;
        };
        self.len = 0;
        self.block_frames = 0.0;
        let anchor = self.anchor.get_or_insert(m);
        let mut error = m - *anchor;
        if error.abs() > LET_GO_S * self.rate {
            *anchor = m;
            error = 0.0;
        }
        let bound = MOVE_PPM * 1e-6;
        self.aim = (error / self.rate / CORRECT_S).clamp(-bound, bound);
    }

    /// The ratio the capture resamples by (hub frames per device frame) with the clock
    /// estimate at `ppm`.
    pub fn ratio(&self, ppm: f64) -> f64 {
        1.0 + ppm * 1e-6 + self.correction
    }

    /// The correction over the estimate, ppm.
    pub fn correction_ppm(&self) -> f64 {
        self.correction * 1e6
    }

    /// A new stream (it started playing again, or a reconnect): its positions start
    /// afresh, and so does the phase held; the correction slews back to none. RT-safe.
    pub fn restart(&mut self) {
        self.sent = 0.0;
        self.len = 0;
        self.block_frames = 0.0;
        self.anchor = None;
        self.aim = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `secs` of 64-frame periods with the hub `ppm` fast and the estimate reading
    /// `est_ppm`; `lost(i)` frames lost at period `i` (positive: the device lost them, so
    /// the hub's stream went on without a capture; negative: the hub's clock lost them),
    /// `late(i)` frames the stream's reading lags at period `i` (a stall the burst
    /// after it makes up). Returns the hub input's fill (sent less consumed) each period.
    fn run(
        secs: u32,
        ppm: f64,
        est_ppm: f64,
        lost: impl Fn(u32) -> f64,
        late: impl Fn(u32) -> f64,
    ) -> (CapturePace, Vec<f64>) {
        let mut p = CapturePace::new(48_000);
        let (mut stream, mut sent) = (0.0f64, 0.0f64);
        let mut held = Vec::new();
        for i in 0..750 * secs {
            stream += 64.0 * (1.0 + ppm * 1e-6) + lost(i);
            p.observe(64, stream - late(i), est_ppm);
            sent += 64.0 * p.ratio(est_ppm);
            held.push(sent - stream);
        }
        (p, held)
    }

    fn spread(held: &[f64]) -> f64 {
        let (lo, hi) = held
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        hi - lo
    }

    #[test]
    fn a_lost_cycle_on_either_clock_is_made_up_within_seconds() {
        for sign in [1.0, -1.0] {
            let (p, held) = run(
                20,
                0.0,
                0.0,
                |i| if i == 3_000 { sign * 64.0 } else { 0.0 },
                |_| 0.0,
            );
            let before = held[2_999];
            // Within a period of where it stood 3 s later, and it stays.
            for (i, h) in held.iter().enumerate().skip(3_000 + 750 * 3) {
                assert!(
                    (h - before).abs() < 16.0,
                    "{sign}: {i}: {h} against {before}"
                );
            }
            assert!(p.correction_ppm().abs() < 20.0, "{}", p.correction_ppm());
        }
    }

    #[test]
    fn lost_cycles_on_both_clocks_stay_bounded_where_the_estimate_alone_walks() {
        // A lost 64-frame cycle on one clock or the other every 0.7 s on average, both
        // ways, 120 s. The hub input's fill, from 5 s on.
        let lost = |i: u32| {
            let h = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
            match h % 1_000 {
                0 => 64.0,
                1 => -64.0,
                _ => 0.0,
            }
        };
        let (_, held) = run(120, 250.0, 250.0, lost, |_| 0.0);
        let paced = spread(&held[3_750..]);
        // The estimate alone: what the same losses leave in the hub's input.
        let mut walk = 0.0f64;
        let walked: Vec<f64> = (0..750 * 120)
            .map(|i| {
                walk -= lost(i);
                walk
            })
            .collect();
        let alone = spread(&walked[3_750..]);
        assert!(alone > 1_000.0, "the losses walk by {alone} frames");
        // Measured: 339 frames (7 ms) against 1280. Without the pace, or with a pace that
        // could not follow steps of a period, it would stand near the walk.
        assert!(paced < 0.35 * alone, "paced: {paced} frames, alone {alone}");
    }

    #[test]
    fn an_estimate_off_by_hundreds_of_ppm_is_an_offset_not_a_walk() {
        for est in [-500.0, 300.0] {
            let (p, held) = run(60, 0.0, est, |_| 0.0, |_| 0.0);
            // 48 frames a second off at 1000 ppm: held within a few ms, the correction
            // making up the difference.
            assert!(spread(&held[750 * 10..]) < 4.0, "{est}");
            assert!(
                (p.correction_ppm() + est).abs() < 2.0,
                "{est}: {}",
                p.correction_ppm()
            );
            assert!(held.last().unwrap().abs() < 0.002 * 48_000.0, "{est}");
        }
    }

    #[test]
    fn a_step_beyond_the_let_go_is_not_made_up() {
        // The hub loses 200 ms at 10 s: its input takes that once; the capture goes on
        // at the stream's pace from there.
        let (p, held) = run(
            30,
            0.0,
            0.0,
            |i| if i == 7_500 { -9_600.0 } else { 0.0 },
            |_| 0.0,
        );
        let after = held[7_500 + 750];
        assert!((after - held[7_499] - 9_600.0).abs() < 64.0, "{after}");
        assert!((held.last().unwrap() - after).abs() < 16.0);
        assert!(p.correction_ppm().abs() < 1.0);
    }

    #[test]
    fn a_stall_the_stream_makes_up_moves_nothing() {
        // Every 7 s the stream's reading stands still for 100 ms, then catches up.
        let late = |i: u32| {
            let into = i % 5_250;
            if into < 75 {
                f64::from(into) * 64.0
            } else {
                0.0
            }
        };
        let (_, held) = run(60, 0.0, 0.0, |_| 0.0, late);
        assert!(spread(&held[750..]) < 48.0, "{}", spread(&held[750..]));
    }
}
