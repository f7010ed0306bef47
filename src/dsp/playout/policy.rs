//! How much audio a client keeps queued: the latency target, chosen from how late the
//! hub's packets actually arrive (RT audio thread, once per packet).
//!
//! Design: the old policy probed by failing: it shrank after 5 s without a miss and grew
//! after the next one, so every quiet stretch gave back the margin the next hiccup needed,
//! and each probe was a click. This one measures instead. Each packet's *lateness* is how
//! much later it arrived than the earliest-arriving packets of the last half second would
//! predict, on the hub's clock as the clock-recovery loop estimates it (so a few hundred
//! ppm of drift is not mistaken for lateness). Arrivals are timed on the consuming
//! device's time (`device_time.rs`), so a stall that stops the device as well as the
//! stream is no lateness: the device wanted nothing while it lasted. The target is
//!
//! > frames one pull needs + the largest lateness of the last [`WINDOW_S`] s + a margin
//!
//! clamped to the user's `--jitter-min-ms` / `--jitter-max-ms`. It **rises at once**: the
//! packet that arrives late raises it before the pull that needs it (and the burst that
//! follows a stall refills the buffer to exactly that depth). It **falls slowly**: only when
//! the late packet's block of [`BLOCK_S`] ages out of the window, and then the clock loop
//! drains the excess by playing at most 0.2 % faster, inaudibly. A link that is steady
//! settles and stays: the window's maximum is a statistic that a recurring stall keeps up,
//! so no quiet stretch gives its margin away. The lateness base is the minimum over the
//! last quarter to half second, not the whole window, so that an error of the clock
//! estimate (which tilts every offset) costs at most half a second's worth of tilt.
//!
//! A late run that ends in a *skip* is taken back: when the sender's stream jumps ahead
//! (its device lost the time a stall took, and it moved its position on by as much) right
//! after packets that came late, those packets were caught in the same stall, in the
//! sender's pipe. No depth would have spared the listener that stall's gap, which the
//! skip makes anyway, so the lateness they raised the target by goes again: kept, it held
//! the hub's input for a peer stopped 300 ms at the cap for the whole window
//! (`tests/stopped_processes.rs`, now and then: when the stop caught a packet unsent).
//! A client's dry spell that ends in such a skip is likewise not held for what the skip
//! covers.
//!
//! `benches/playout_sim.rs` weighs the choice by simulation against this VM's stalls.

/// One block of lateness statistics, s.
pub const BLOCK_S: f64 = 2.0;
/// One block of the lateness base (the least offset), s: the base is the least over the
/// current and the previous one, so a clock estimate off by 1000 ppm (before the loop
/// has locked) tilts lateness by at most half a millisecond. It must outlast the longest
/// stall measured (a stall's late packets are measured against the packets before it).
const BASE_S: f64 = 0.25;
/// Seconds after a stream (re)starts during which arrivals only set the lateness base.
/// In its first second a stream is still settling (the connection, the hub's input, this
/// process's own threads faulting their memory in), and a hiccup then is not the link's
/// lateness; measured as such, the target held it for the whole window (at 32-frame
/// periods on a quiet host: 228 frames, 4.8 ms, for the first 32 s of every connection,
/// where the link needed 72-119).
pub const WARMUP_S: f64 = 1.0;
/// Lateness beyond this, s, is an outage, not the link's jitter: the sender stopped (its
/// device vanished and came back, a debugger, a suspended laptop) and went on at the
/// position it had, so its packets come seconds "late". Measured, that would hold the
/// target at its largest for the whole window after every outage; no buffer is sized
/// for one, so the schedule starts afresh from the packet that ends it, as after
/// [`LatencyPolicy::restart`]. Far above any scheduling stall (this VM's longest seen:
/// tens of milliseconds).
pub const OUTAGE_S: f64 = 0.5;
/// How much more than a skip the late run before it may have been, s, and still be the
/// stall the skip lost: a device skips whole periods of what a stall took, less what its
/// buffer still held (a few periods), and the packet caught in the stall was sent a little
/// after the device woke.
const SKIP_SLACK_S: f64 = 0.005;
/// Blocks kept: the window over which the largest lateness is remembered.
const BLOCKS: usize = 16;
/// The window, s.
pub const WINDOW_S: f64 = BLOCK_S * BLOCKS as f64;

/// The limits the target moves within, frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyConfig {
    /// Stream rate, Hz (the hub's nominal rate).
    pub rate: u32,
    /// Frames one pull consumes (the device period, in hub frames).
    pub need_frames: u32,
    /// Time kept beyond the largest lateness, frames.
    pub margin_frames: u32,
    /// The least target (`--jitter-min-ms`, at least `need + margin`).
    pub min_frames: u32,
    /// The largest target (`--jitter-max-ms`).
    pub max_frames: u32,
}

/// The latency policy's state.
///
/// # Example
/// ```
/// use izyrt::dsp::playout::policy::{LatencyPolicy, PolicyConfig};
/// let mut p = LatencyPolicy::new(PolicyConfig {
///     rate: 48_000, need_frames: 64, margin_frames: 32, min_frames: 96, max_frames: 4800 });
/// // Packets every 1.333 ms, on time: the target stays at need + margin.
/// let period_ns = 1_333_333u64;
/// for i in 0..1000u64 {
///     p.on_packet(i * 64, 64, i * period_ns, 0.0);
/// }
/// assert_eq!(p.target_frames(), 96);
/// // One arrives 5 ms late: at once the target covers it (240 frames more).
/// p.on_packet(1000 * 64, 64, 1000 * period_ns + 5_000_000, 0.0);
/// assert_eq!(p.target_frames(), 96 + 240);
/// ```
#[derive(Debug, Clone)]
pub struct LatencyPolicy {
    cfg: PolicyConfig,
    /// The schedule: the stream position and the time (ns, local clock) it was expected.
    sched: Option<(u64, f64)>,
    /// The least arrival offset, ns, in the current and the previous base block, and
    /// when the current one started.
    least: [f64; 2],
    base_start: u64,
    /// Per block: the largest lateness, ns.
    late: [f64; BLOCKS],
    /// The largest of `late` over every block but the current one (kept as blocks
    /// turn over, so that a packet compares two numbers, not sixteen: a hub calls this
    /// for every packet of every input).
    older: f64,
    block: usize,
    block_start: u64,
    target: u32,
    /// The largest lateness seen, ns (for metrics).
    worst_ns: f64,
    /// What the current dry spell showed was needed, ns ([`LatencyPolicy::cover`]): in
    /// the target at once, held for the window only once the stream resumes
    /// ([`LatencyPolicy::resumed`]). A spell that ends in a new stream
    /// ([`LatencyPolicy::restart`]) was the connection's end, not the link's lateness:
    /// kept, a hub that went away 50 ms before the client noticed held the next
    /// session's target at its largest for the whole window.
    spell_ns: f64,
    /// When the current stream's first packet arrived, ns.
    started_ns: u64,
    /// Whether the newest packet came within the warm-up.
    warming: bool,
    /// A late run in progress: the block it raised, that block's largest lateness before
    /// it, and the run's largest lateness, ns (see the design note on skips).
    late_run: Option<(usize, f64, f64)>,
}

impl LatencyPolicy {
    /// A policy with no packet seen: the target starts at its floor.
    pub fn new(cfg: PolicyConfig) -> LatencyPolicy {
        let mut p = LatencyPolicy {
            cfg,
            sched: None,
            least: [f64::INFINITY; 2],
            base_start: 0,
            late: [0.0; BLOCKS],
            older: 0.0,
            block: 0,
            block_start: 0,
            target: 0,
            worst_ns: 0.0,
            spell_ns: 0.0,
            started_ns: 0,
            warming: true,
            late_run: None,
        };
        p.target = p.floor();
        p
    }

    fn floor(&self) -> u32 {
        let c = &self.cfg;
        c.min_frames
            .max(c.need_frames.saturating_add(c.margin_frames))
            .min(c.max_frames)
    }

    /// A packet of `frames` at stream `position` arrived at `arrival_ns` (the consuming
    /// device's time, [`DeviceTime::at`](super::device_time::DeviceTime::at), or any local
    /// clock in ns); `clock_ppm` is the clock loop's estimate of the hub's clock against ours.
    ///
    /// Runs on: the RT audio thread, once per packet received. Must not: allocate, lock,
    /// block (arithmetic over fixed arrays).
    pub fn on_packet(&mut self, position: u64, frames: u32, arrival_ns: u64, clock_ppm: f64) {
        let ppm = if clock_ppm.is_finite() {
            clock_ppm.clamp(-1e4, 1e4)
        } else {
            0.0
        };
        let rate = f64::from(self.cfg.rate.max(1)) * (1.0 + ppm * 1e-6);
        let end = position.wrapping_add(u64::from(frames));
        // Stream frames the sender skipped just before this packet (its position ahead of
        // where the last one ended).
        let skipped = self.sched.map_or(0, |(pos, _)| {
            let ahead = position.wrapping_sub(pos) as i64;
            u64::try_from(ahead).unwrap_or(0)
        });
        // As much of a dry spell as the skip covers was the sender's lost time too.
        self.spell_ns = (self.spell_ns - skipped as f64 * 1e9 / rate).max(0.0);
        let t = arrival_ns as f64;
        let expected = match self.sched {
            None => {
                self.block_start = arrival_ns;
                self.measure_from(arrival_ns);
                t
            }
            // Positions wrap past u64::MAX: the distance is the wrapping one, signed.
            Some((pos, at)) => at + end.wrapping_sub(pos) as i64 as f64 * 1e9 / rate,
        };
        // Only move the schedule forward: a reordered packet is measured, not followed.
        if self
            .sched
            .is_none_or(|(pos, _)| (end.wrapping_sub(pos) as i64) > 0)
        {
            self.sched = Some((end, expected));
        }
        let offset = t - expected;
        if offset - self.least[0].min(self.least[1]) > OUTAGE_S * 1e9 {
            // An outage: measure afresh from here (the lateness of the window is kept).
            self.sched = Some((end, t));
            self.measure_from(arrival_ns);
            return;
        }
        if arrival_ns.saturating_sub(self.block_start) as f64 >= BLOCK_S * 1e9 {
            self.block = (self.block + 1) % BLOCKS;
            self.late[self.block] = 0.0;
            self.block_start = arrival_ns;
            self.older = self.late.iter().copied().fold(0.0, f64::max);
        }
        if arrival_ns.saturating_sub(self.base_start) as f64 >= BASE_S * 1e9 {
            self.least = [self.least[1], f64::INFINITY];
            self.base_start = arrival_ns;
        }
        self.least[1] = self.least[1].min(offset);
        let base = self.least[0].min(self.least[1]);
        let warming = (arrival_ns.saturating_sub(self.started_ns) as f64) < WARMUP_S * 1e9;
        self.warming = warming;
        let lateness = if warming {
            0.0
        } else {
            (offset - base).max(0.0)
        };
        self.worst_ns = self.worst_ns.max(lateness);
        if let Some((block, before, run)) = self.late_run {
            let skipped_ns = skipped as f64 * 1e9 / rate;
            if skipped > 0 && block == self.block && run <= skipped_ns + SKIP_SLACK_S * 1e9 {
                // The run was the stall this skip lost: not the link's lateness.
                self.late[block] = before;
                self.late_run = None;
            } else if lateness * 2.0 < run {
                // On time again: the run is the link's.
                self.late_run = None;
            } else {
                self.late_run = Some((block, before, run.max(lateness)));
            }
        }
        let b = self.block;
        if self.late_run.is_none() && lateness > self.older.max(self.late[b]) {
            self.late_run = Some((b, self.late[b], lateness));
        }
        self.note(lateness);
    }

    /// The playout ran dry although the fill stood at the target: a target of `frames`
    /// would have covered what the lateness measure did not foresee (the fill's own
    /// excursions: a sender's clock that lost time for good leaves the buffer that much
    /// lower until the clock loop refills it, and the next loss can come first). In the
    /// target at once; held for the window like a lateness once the stream
    /// [`resumed`](Self::resumed); a spell longer than an outage, or one within the
    /// warm-up, is not the link's.
    ///
    /// Runs on: the RT audio thread, in a period that concealed. Must not: allocate, lock,
    /// block.
    pub fn cover(&mut self, frames: u64) {
        let c = &self.cfg;
        let rate = f64::from(c.rate.max(1));
        let beyond = frames as f64 - f64::from(c.need_frames) - f64::from(c.margin_frames);
        if self.warming || beyond <= 0.0 || beyond / rate > OUTAGE_S {
            return;
        }
        self.spell_ns = self.spell_ns.max(beyond / rate * 1e9);
        self.set_target();
    }

    /// The playout played received audio again after a dry spell: what the spell showed
    /// was needed is the link's, held for the window.
    ///
    /// Runs on: the RT audio thread, in the period after a spell. Must not: allocate,
    /// lock, block.
    pub fn resumed(&mut self) {
        let spell = std::mem::take(&mut self.spell_ns);
        if spell > 0.0 {
            self.note(spell);
        }
    }

    /// Takes `lateness` (ns) into the current block and sets the target from the window.
    fn note(&mut self, lateness: f64) {
        let b = self.block;
        self.late[b] = self.late[b].max(lateness);
        self.set_target();
    }

    /// The target from the window's largest lateness and the current dry spell.
    fn set_target(&mut self) {
        let worst = self.older.max(self.late[self.block]).max(self.spell_ns);
        // (Less a hundredth of a frame: the nanoseconds' rounding is not lateness.)
        let frames_late = (worst * f64::from(self.cfg.rate) / 1e9 - 0.01)
            .ceil()
            .max(0.0);
        let want =
            f64::from(self.cfg.need_frames) + f64::from(self.cfg.margin_frames) + frames_late;
        self.target = (want.min(f64::from(u32::MAX)) as u32)
            .max(self.floor())
            .min(self.cfg.max_frames);
    }

    /// The fill the clock loop should hold before each pull, frames.
    pub fn target_frames(&self) -> u32 {
        self.target
    }

    /// The largest lateness seen since the start, ms.
    pub fn worst_lateness_ms(&self) -> f64 {
        self.worst_ns / 1e6
    }

    /// Starts the warm-up and the base of earliest arrivals afresh at `arrival_ns` (a
    /// stream's first packet, or the one that ends an outage).
    fn measure_from(&mut self, arrival_ns: u64) {
        self.started_ns = arrival_ns;
        self.base_start = arrival_ns;
        self.least = [f64::INFINITY; 2];
    }

    /// Forgets the stream's schedule (a new stream starts); the lateness it showed is
    /// kept for the window, as the link is likely the same, but not a dry spell it ended
    /// in (see `spell_ns`).
    pub fn restart(&mut self) {
        self.sched = None;
        self.spell_ns = 0.0;
        self.set_target();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LatencyPolicy {
        LatencyPolicy::new(PolicyConfig {
            rate: 48_000,
            need_frames: 64,
            margin_frames: 32,
            min_frames: 96,
            max_frames: 4800,
        })
    }

    const PERIOD_NS: f64 = 64.0 * 1e9 / 48_000.0;

    /// A policy fed `packets` of 64 frames on time from the stream's start.
    fn on_time(packets: u64) -> LatencyPolicy {
        let mut p = policy();
        for i in 0..packets {
            p.on_packet(i * 64, 64, (i as f64 * PERIOD_NS) as u64, 0.0);
        }
        p
    }

    #[test]
    fn a_dry_spell_is_held_only_when_the_stream_resumes() {
        let mut p = on_time(1500);
        assert_eq!(p.target_frames(), 96);
        // 50 ms dry beyond the need and the margin: covered at once.
        p.cover(96 + 2400);
        assert_eq!(p.target_frames(), 96 + 2400);
        // The connection ended there: the next stream does not inherit the spell.
        p.restart();
        assert_eq!(p.target_frames(), 96);
        // A spell the same stream came back from is the link's: held for the window.
        p.cover(96 + 2400);
        p.resumed();
        p.restart();
        assert_eq!(p.target_frames(), 96 + 2400);
    }

    #[test]
    fn drift_is_not_lateness() {
        let mut p = policy();
        // A hub 1000 ppm fast, known to the clock loop: packets come early and earlier.
        for i in 0..48_000u64 {
            let t = (i as f64 * PERIOD_NS / 1.001) as u64;
            p.on_packet(i * 64, 64, t, 1000.0);
        }
        assert_eq!(p.target_frames(), 96);
        // Unknown (estimate 0), the tilt within two base blocks shows as up to
        // 2 × 0.25 s × 1000 ppm = 0.5 ms (24 frames).
        let mut q = policy();
        for i in 0..48_000u64 {
            let t = (i as f64 * PERIOD_NS * 1.001) as u64;
            q.on_packet(i * 64, 64, t, 0.0);
        }
        assert!(q.target_frames() <= 96 + 24 + 1, "{}", q.target_frames());
    }

    #[test]
    fn a_stall_raises_the_target_at_once_and_it_falls_after_the_window() {
        let mut p = policy();
        let mut t = 0.0;
        let mut i = 0u64;
        let mut send = |p: &mut LatencyPolicy, extra: f64, t: &mut f64| {
            p.on_packet(i * 64, 64, (*t + extra) as u64, 0.0);
            i += 1;
            *t += PERIOD_NS;
        };
        for _ in 0..7_500 {
            send(&mut p, 0.0, &mut t); // 10 s on time
        }
        assert_eq!(p.target_frames(), 96);
        send(&mut p, 10e6, &mut t); // 10 ms late
        assert_eq!(p.target_frames(), 96 + 480);
        for _ in 0..7_500 * 3 {
            send(&mut p, 0.0, &mut t); // 30 s: still remembered
        }
        assert_eq!(p.target_frames(), 96 + 480);
        for _ in 0..7_500 {
            send(&mut p, 0.0, &mut t); // past the window: gone
        }
        assert_eq!(p.target_frames(), 96);
        assert!((p.worst_lateness_ms() - 10.0).abs() < 0.01);
    }

    /// `packets` on time, but those from `at` come 20 ms late, at once (the stream
    /// stalled and resumed).
    fn with_hiccup(at: u64, packets: u64) -> LatencyPolicy {
        let mut p = policy();
        for i in 0..packets {
            let t = if (at..at + 15).contains(&i) {
                (at + 15) as f64 * PERIOD_NS
            } else {
                i as f64 * PERIOD_NS
            };
            p.on_packet(i * 64, 64, t as u64, 0.0);
        }
        p
    }

    #[test]
    fn a_dry_spell_the_stream_skipped_was_not_lateness() {
        let spell = |skipped: u64| {
            let mut p = on_time(1500);
            // 300 ms dry; the stream then resumes 300 ms further on, or 250 ms.
            p.cover(96 + 14_400);
            let at = 1500.0 * PERIOD_NS + 300e6;
            p.on_packet(1500 * 64 + skipped, 64, at as u64, 0.0);
            p.resumed();
            p.target_frames()
        };
        assert_eq!(spell(14_400), 96);
        // What the skip does not cover (50 ms) was the link's.
        assert_eq!(spell(12_000), 96 + 2_400);
    }

    #[test]
    fn a_late_run_that_ends_in_a_skip_was_the_stall_the_skip_lost() {
        // 10 s on time, then the sender stops for 300 ms with two packets unsent: they come
        // 300 ms late, and the next packet skips the 300 ms its device lost.
        let stalled = |skip: bool| {
            let mut p = on_time(7_500);
            let resumed = 7_500.0 * PERIOD_NS + 300e6;
            for i in 7_500..7_502u64 {
                p.on_packet(i * 64, 64, resumed as u64, 0.0);
            }
            let lost = if skip { 225 } else { 0 };
            for k in 0..750u64 {
                let i = 7_502 + k;
                let at = resumed + (k as f64 + if skip { 1.0 } else { 0.0 }) * PERIOD_NS;
                p.on_packet((i + lost) * 64, 64, at as u64, 0.0);
            }
            p.target_frames()
        };
        // Skipped: the target is back where the link keeps it.
        assert_eq!(stalled(true), 96);
        // Control: the same late run with the stream going on where it was is the link's
        // (300 ms, held at the largest target, 100 ms).
        assert_eq!(stalled(false), 4_800);
    }

    #[test]
    fn an_outage_is_not_lateness() {
        // 10 s on time, then the sender stops for 2 s and goes on at the position it had
        // (its packets come 2 s "late"); its first second back is the warm-up, and a
        // 5 ms stall after that is measured again.
        let mut p = policy();
        let send = |p: &mut LatencyPolicy, i: u64, t: f64| {
            p.on_packet(i * 64, 64, t as u64, 0.0);
        };
        for i in 0..7_500 {
            send(&mut p, i, i as f64 * PERIOD_NS);
        }
        let gap = 2e9;
        for i in 7_500..9_000 {
            send(&mut p, i, i as f64 * PERIOD_NS + gap);
        }
        assert_eq!(p.target_frames(), 96, "an outage of 2 s");
        send(&mut p, 9_000, 9_000.0 * PERIOD_NS + gap + 5e6);
        assert_eq!(p.target_frames(), 96 + 240, "a 5 ms stall after it");
    }

    #[test]
    fn a_hiccup_while_the_stream_starts_is_not_lateness() {
        // 20 ms in, while the connection sets up.
        assert_eq!(with_hiccup(15, 7_500).target_frames(), 96);
        // Control: the same hiccup a second in is measured.
        let q = with_hiccup(750, 1_500);
        assert!(q.target_frames() > 96 + 900, "{}", q.target_frames());
    }

    #[test]
    fn the_target_stays_within_the_user_limits() {
        let mut p = LatencyPolicy::new(PolicyConfig {
            rate: 48_000,
            need_frames: 64,
            margin_frames: 32,
            min_frames: 256,
            max_frames: 512,
        });
        assert_eq!(p.target_frames(), 256);
        // Past the first second on time, then one packet 100 ms late.
        for i in 0..900u64 {
            p.on_packet(i * 64, 64, (i as f64 * PERIOD_NS) as u64, 0.0);
        }
        assert_eq!(p.target_frames(), 256);
        p.on_packet(900 * 64, 64, (900.0 * PERIOD_NS + 1e8) as u64, 0.0);
        assert_eq!(p.target_frames(), 512);
        p.on_packet(u64::MAX - 3, 64, u64::MAX, f64::NAN);
    }

    #[test]
    fn a_dry_spell_the_lateness_did_not_foresee_raises_the_target_for_the_window() {
        let mut p = policy();
        let mut i = 0u64;
        let mut on_time = |p: &mut LatencyPolicy, n: u64| {
            for _ in 0..n {
                p.on_packet(i * 64, 64, (i as f64 * PERIOD_NS) as u64, 0.0);
                i += 1;
            }
        };
        on_time(&mut p, 1_500);
        assert_eq!(p.target_frames(), 96);
        // A spell that began at the target and concealed 200 frames: 296 would have
        // covered it.
        p.cover(96 + 200);
        assert_eq!(p.target_frames(), 296);
        // Less than the target changes nothing; an outage's worth is not the link's.
        p.cover(100);
        p.cover(96 + 48_000);
        assert_eq!(p.target_frames(), 296);
        assert!(
            p.worst_lateness_ms() < 0.01,
            "a dry spell is not a lateness"
        );
        // The stream resumed (the playout played audio again).
        p.resumed();
        on_time(&mut p, 7_500 * 3);
        assert_eq!(p.target_frames(), 296, "held for the window");
        on_time(&mut p, 7_500 * 2);
        assert_eq!(p.target_frames(), 96, "and gone after it");
    }

    #[test]
    fn a_dry_spell_while_the_stream_starts_is_not_the_links() {
        let mut p = policy();
        for i in 0..100u64 {
            p.on_packet(i * 64, 64, (i as f64 * PERIOD_NS) as u64, 0.0);
        }
        p.cover(500);
        assert_eq!(p.target_frames(), 96);
    }
}
