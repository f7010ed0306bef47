//! The session table's data: per user, what a dashboard row needs beside its levels and
//! its own QOS report (net thread keeps it, publisher thread renders it).
//!
//! Design: a user outlives its connections (see [`super::users`]), and so do these
//! figures. Each connection gets a fresh mixer slot whose [`SlotStats`] count from 0, so
//! when a user joins again the counts of its previous slot are folded into its
//! [`LifeTotals`]: `hubMisses` is then monotonic over the user's life at the hub, which a
//! Prometheus counter needs. The misses of the last 10 s come from a [`MissWindow`]: a
//! fixed ring of (time, total) samples the net thread takes at the METADATA cadence
//! (copying it into the publisher's report costs a few hundred bytes per user, and it never
//! allocates). Figures that do not apply to a user (jitter figures of a monitor, which
//! sends no audio; the depth of a buffer that no longer exists) are `null`, never 0.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::mixer_thread::SlotStats;
use super::users::User;
use crate::rt::clock::ns_to_ms;

/// Samples the [`MissWindow`] keeps: at least [`SAMPLE_EVERY_NS`] apart, they cover more
/// than [`WINDOW_NS`].
const SAMPLES: usize = 24;
/// The shortest spacing of two samples (the METADATA cadence).
const SAMPLE_EVERY_NS: u64 = 450_000_000;
/// The span of `hubMisses10s`.
pub const WINDOW_NS: u64 = 10_000_000_000;

/// The jitter figures of a user's earlier connections (their slots are gone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifeTotals {
    /// Periods the mixer found the user's buffer dry.
    pub misses: u64,
    /// Frames that came after their time.
    pub late_frames: u64,
    /// Frames dropped by trims and overflow.
    pub dropped_frames: u64,
    /// Frames the hub filled with a fading continuation.
    pub concealed_frames: u64,
}

impl LifeTotals {
    /// Adds what `stats` counted (a slot being replaced).
    pub fn fold(&mut self, stats: &SlotStats) {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        self.misses += load(&stats.misses);
        self.late_frames += load(&stats.late_frames);
        self.dropped_frames += load(&stats.dropped_frames);
        self.concealed_frames += load(&stats.concealed_frames);
    }

    /// These totals plus what `stats` (the live slot, if any) counted so far.
    pub fn with(&self, stats: Option<&SlotStats>) -> LifeTotals {
        let mut t = *self;
        if let Some(s) = stats {
            t.fold(s);
        }
        t
    }
}

/// A user's miss totals over the last seconds, for `hubMisses10s`.
///
/// # Example
/// ```
/// use izyrt::hub::sessions::MissWindow;
/// let s = 1_000_000_000;
/// let mut w = MissWindow::default();
/// for t in 0..=20 {
///     w.note(t * s, t * 3); // 3 misses a second
/// }
/// assert_eq!(w.in_last_10s(20 * s, 60), 30);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MissWindow {
    /// (monotonic ns, total misses), oldest first from `head`.
    samples: [(u64, u64); SAMPLES],
    len: usize,
    head: usize,
}

impl Default for MissWindow {
    fn default() -> MissWindow {
        MissWindow {
            samples: [(0, 0); SAMPLES],
            len: 0,
            head: 0,
        }
    }
}

impl MissWindow {
    /// Notes the total at `now_ns`, unless the last sample is younger than the METADATA
    /// cadence (joins and leaves publish in between). No allocation.
    pub fn note(&mut self, now_ns: u64, total: u64) {
        if let Some((t, _)) = self.newest() {
            if now_ns.saturating_sub(t) < SAMPLE_EVERY_NS {
                return;
            }
        }
        let at = (self.head + self.len) % SAMPLES;
        self.samples[at] = (now_ns, total);
        if self.len < SAMPLES {
            self.len += 1;
        } else {
            self.head = (self.head + 1) % SAMPLES;
        }
    }

    fn newest(&self) -> Option<(u64, u64)> {
        (self.len > 0).then(|| self.samples[(self.head + self.len - 1) % SAMPLES])
    }

    /// Misses between 10 s before `now_ns` (to within the sampling) and `total`, the
    /// total now: `total` minus the newest sample at least 10 s old, or minus the oldest
    /// sample when none is that old (a user seen for less than 10 s), or `total` itself
    /// before any sample.
    pub fn in_last_10s(&self, now_ns: u64, total: u64) -> u64 {
        let cutoff = now_ns.saturating_sub(WINDOW_NS);
        let mut base = None;
        for i in 0..self.len {
            let (t, v) = self.samples[(self.head + i) % SAMPLES];
            if base.is_none() || t <= cutoff {
                base = Some(v);
            }
            if t > cutoff {
                break;
            }
        }
        total.saturating_sub(base.unwrap_or(0))
    }
}

/// One user's entry of `mixeradminSharedState` (METADATA) and of getMetrics' `sessions`:
/// the seed's keys (`connected`, `role`, `audioInputMetadata`, `QOSMetrics`) and the
/// session table's (`since`, `leftReason`, `leftAt`, `hubMisses`, `hubMisses10s`,
/// `rttMs`, `driftPpm`, `senderLocked`, `concealedFrames`, `jitterDepthFrames`,
/// `jitterTargetFrames`, `jitterExcessFrames` (the input's depth before each pull less its
/// target, a mean over a quarter second: what the client's capture steers by),
/// `jitterLateFrames`,
/// `jitterDroppedFrames`, `senderSkippedMs`: the audio its own device lost, sent as gaps,
/// over every connection). Times are Unix ms; `rttMs` is measured by the hub.
pub fn entry(u: &User, now_ns: u64) -> Value {
    let stats = u.stats.as_deref();
    // Jitter figures exist only for a user that sends audio through a slot.
    let input = u.audio.is_some();
    let totals = input.then(|| u.life.with(stats));
    let live = |f: fn(&SlotStats) -> u64| stats.filter(|_| input && u.connected).map(f);
    json!({
        "connected": u.connected,
        "role": u.role,
        "audioInputMetadata": if input { u.input_metadata() } else { Value::Null },
        "QOSMetrics": u.latest_qos(),
        "since": u.since_unix_ms,
        "leftReason": if u.connected { None } else { u.left_because.as_deref() },
        "leftAt": if u.connected { None } else { u.left_at_unix_ms },
        "hubMisses": totals.map(|t| t.misses),
        "hubMisses10s": totals.map(|t| u.miss_window.in_last_10s(now_ns, t.misses)),
        "rttMs": u.rtt_ns.map(ns_to_ms),
        "driftPpm": stats.filter(|_| input).and_then(SlotStats::drift_ppm),
        "senderLocked": stats.filter(|_| input).map(SlotStats::sender_locked),
        "concealedFrames": totals.map(|t| t.concealed_frames),
        "jitterDepthFrames": live(|s| s.depth_frames.load(Ordering::Relaxed)),
        "jitterTargetFrames": live(|s| s.target_frames.load(Ordering::Relaxed)),
        // Where the input stands against its target (the client's capture steers by it).
        "jitterExcessFrames": stats.filter(|_| input && u.connected).map(|s| {
            (f64::from_bits(s.excess_frames.load(Ordering::Relaxed)) * 10.0).round() / 10.0
        }),
        "jitterLateFrames": totals.map(|t| t.late_frames),
        "jitterDroppedFrames": totals.map(|t| t.dropped_frames),
        "senderSkippedMs": u.audio.map(|a| {
            u.sender_skipped_frames as f64 * 1e3 / f64::from(a.sample_rate.max(1))
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn window_counts_the_last_ten_seconds() {
        let mut w = MissWindow::default();
        assert_eq!(
            w.in_last_10s(0, 7),
            7,
            "nothing sampled: everything is recent"
        );
        w.note(0, 0);
        assert_eq!(
            w.in_last_10s(3 * S, 5),
            5,
            "younger than 10 s: since the start"
        );
        // 100 misses in a burst between 1.5 s and 2 s, then none; sampled every 0.5 s.
        let total = |t: u64| if t >= 2 * S { 100 } else { 0 };
        let mut t = 0;
        let mut run_to = |w: &mut MissWindow, end: u64| {
            while t < end {
                t += S / 2;
                w.note(t, total(t));
            }
        };
        run_to(&mut w, 23 * S / 2);
        assert_eq!(
            w.in_last_10s(23 * S / 2, 100),
            100,
            "the burst is under 10 s old"
        );
        run_to(&mut w, 25 * S / 2);
        assert_eq!(
            w.in_last_10s(25 * S / 2, 100),
            0,
            "the burst has left the window"
        );
        run_to(&mut w, 40 * S);
        assert_eq!(w.in_last_10s(40 * S, 104), 4, "4 new misses");
    }

    #[test]
    fn window_samples_at_most_every_cadence_and_keeps_enough() {
        let mut w = MissWindow::default();
        w.note(0, 1);
        w.note(S / 10, 2); // too soon: a join between two METADATA
        assert_eq!(w.len, 1);
        for i in 1..=100u64 {
            w.note(i * S / 2, i);
        }
        assert_eq!(w.len, SAMPLES);
        let (oldest, _) = w.samples[w.head];
        let (newest, _) = w.newest().unwrap();
        assert!(newest - oldest > WINDOW_NS, "{oldest}..{newest}");
    }

    #[test]
    fn life_totals_fold_slots() {
        let s = SlotStats::default();
        s.misses.store(3, Ordering::Relaxed);
        s.late_frames.store(64, Ordering::Relaxed);
        let mut life = LifeTotals::default();
        life.fold(&s);
        let fresh = SlotStats::default();
        fresh.misses.store(2, Ordering::Relaxed);
        let t = life.with(Some(&fresh));
        assert_eq!((t.misses, t.late_frames), (5, 64));
        assert_eq!(life.with(None).misses, 3);
    }
}
