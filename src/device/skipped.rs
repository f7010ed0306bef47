//! Frames a device's xruns skipped, taken by the RT thread that drives it (RT audio thread
//! and RT mixer thread, once per period).
//!
//! Design: a device counts the stream time its thread never processed
//! ([`DeviceCounters::lost_frames`]); every stream izyrt sends is addressed by stream
//! time, so each reader of a device moves its stream on by what the device skipped: a
//! client's capture and its playout, and the hub's mix. One reader per stream it drives
//! (each half of a duplex device keeps its own, on the same counters).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::DeviceCounters;

/// Frames a device's xruns skipped (its `lost_frames`) that one reader has not yet
/// acted on.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::Ordering;
/// use izyrt::device::{DeviceCounters, SkippedFrames};
/// let counters = Arc::new(DeviceCounters::default());
/// let mut s = SkippedFrames::of(Arc::clone(&counters));
/// counters.lost_frames.store(128, Ordering::Relaxed);
/// assert_eq!((s.take(), s.take()), (128, 0));
/// ```
#[derive(Debug, Default)]
pub struct SkippedFrames {
    /// The device's counters (`None`: no device, a file source or a test).
    pub counters: Option<Arc<DeviceCounters>>,
    /// `lost_frames` already taken.
    pub seen: u64,
}

impl SkippedFrames {
    /// News of what `counters`' device skips, from its count now (main thread).
    pub fn of(counters: Arc<DeviceCounters>) -> SkippedFrames {
        let seen = counters.lost_frames.load(Ordering::Relaxed);
        SkippedFrames {
            counters: Some(counters),
            seen,
        }
    }

    /// Device frames skipped since the last call.
    ///
    /// Runs on: the RT thread that drives the device, once per period. Must not:
    /// allocate, lock, block.
    pub fn take(&mut self) -> u64 {
        let Some(c) = &self.counters else {
            return 0;
        };
        let lost = c.lost_frames.load(Ordering::Relaxed);
        // A count that went back (a device rebuilt with fresh counters) is news from there.
        let new = lost.saturating_sub(self.seen);
        self.seen = lost;
        new
    }
}
