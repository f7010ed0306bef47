//! The time of the device that consumes a stream: the clock lateness is measured on (RT
//! audio thread and RT mixer thread, once per period and per packet).
//!
//! Design: a jitter buffer needs depth for the packets that arrive after the device that
//! plays them wanted them, not for packets that arrive late on the wall clock. The two
//! differ when the device itself stands still: a host stall that stops the sender and
//! this side's device together (a virtual machine's paused CPUs, a JACK server whose
//! cycles were lost) delays the packets, but the device asks for nothing while it lasts,
//! so nothing was late. Measured on the monotonic clock, such a stall counted as lateness
//! and held the target (`policy.rs`) up by its length for the whole window: on this
//! project's test VM, at 32-frame periods through JACK, about 4 ms on the hub's inputs and
//! again on the client, where the listener needed none of it.
//!
//! So arrivals are put on the device's time: the frames it has pulled, at its nominal
//! rate, counted at each period's tick; between ticks, the monotonic time since the last
//! one, up to the period the device last took. A packet arriving while the device stands
//! still is stamped with where the device will be when it goes on. A stall of the sender
//! alone still shows in full (the device went on consuming), and so does the device's own
//! stall on a real sound card, whose catch-up pulls then come back to back.
//!
//! Frames an xrun skipped are not counted, though the time passed for the device: the
//! packets that came while it lasted can only be stamped with the tick after it, so they
//! look early; counting the skip would then make every packet after it look late by
//! the skip, against that early base, where not counting it leaves the device's time
//! behind by the skip for good, which lateness (measured against the earliest recent
//! arrivals) does not see. A lost JACK cycle is the same case, and is never reported.

/// A device's consumption as a clock, in nanoseconds of its audio.
///
/// # Example
/// ```
/// use izyrt::dsp::playout::device_time::DeviceTime;
/// let mut d = DeviceTime::new(48_000);
/// let period_ns = 64_000_000_000 / 48_000; // 1.333 ms
/// d.tick(1_000_000_000, 64);
/// // Between ticks it runs as the monotonic clock does...
/// assert_eq!(d.at(1_000_000_000 + 500_000), d.at(1_000_000_000) + 500_000);
/// // ...up to the period the device last took: 10 ms later, a device that has not
/// // ticked since has consumed only that period.
/// assert_eq!(d.at(1_010_000_000), d.at(1_000_000_000) + period_ns);
/// ```
#[derive(Debug, Clone)]
pub struct DeviceTime {
    ns_per_frame: f64,
    /// The last tick: its monotonic time, the device time then (ns), and the span of the
    /// frames it took (ns).
    last: Option<(u64, f64, f64)>,
}

impl DeviceTime {
    /// A device at `rate` Hz that has not ticked yet: until it does, device time is the
    /// monotonic time.
    pub fn new(rate: u32) -> DeviceTime {
        DeviceTime {
            ns_per_frame: 1e9 / f64::from(rate.max(1)),
            last: None,
        }
    }

    /// The device takes `frames` at monotonic `now_ns` (one period's pull).
    ///
    /// Runs on: the RT thread that pulls, once per period. Must not: allocate, lock, block.
    pub fn tick(&mut self, now_ns: u64, frames: u64) {
        let span = frames as f64 * self.ns_per_frame;
        self.last = Some(match self.last {
            None => (now_ns, now_ns as f64, span),
            // The device time here is where the last tick's frames took it.
            Some((_, at, last_span)) => (now_ns, at + last_span, span),
        });
    }

    /// The device time of monotonic instant `t_ns`, ns (arrivals since the last tick;
    /// one before it reads as the tick itself).
    ///
    /// Runs on: the RT thread that pulls, once per packet. Must not: allocate, lock, block.
    pub fn at(&self, t_ns: u64) -> u64 {
        match self.last {
            None => t_ns,
            Some((tick, at, span)) => {
                let since = t_ns.saturating_sub(tick) as f64;
                (at + since.min(span)) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 1_333_333; // 64 frames at 48 kHz, ns (rounded down)

    #[test]
    fn a_device_that_ticks_on_time_keeps_monotonic_time() {
        let mut d = DeviceTime::new(48_000);
        let t0 = 5_000_000_000u64;
        for k in 0..1000u64 {
            d.tick(t0 + k * P, 64);
        }
        // 1000 periods later the device time is 999 spans on; an arrival halfway
        // through the next period reads half a period more.
        let base = d.at(t0 + 999 * P);
        let exact = t0 as f64 + 999.0 * 64e9 / 48_000.0;
        assert!((base as f64 - exact).abs() <= 1.0, "{base} {exact}");
        assert_eq!(d.at(t0 + 999 * P + P / 2), base + P / 2);
    }

    #[test]
    fn a_stall_of_the_device_does_not_move_its_time() {
        let mut d = DeviceTime::new(48_000);
        let t0 = 1_000_000_000u64;
        d.tick(t0, 64);
        d.tick(t0 + P, 64);
        // The device stands still for 20 ms: arrivals during it and right after it read
        // as the end of the period it had taken.
        let end = d.at(t0 + P) + P;
        assert_eq!(d.at(t0 + P + 10_000_000), end);
        assert_eq!(d.at(t0 + P + 20_000_000), end);
        // It goes on: the next tick is one period on, whatever the wall clock says.
        d.tick(t0 + P + 20_000_000, 64);
        assert!(d.at(t0 + P + 20_000_000).abs_diff(end) <= 1);
        assert!(d.at(t0 + P + 20_000_000 + 1000).abs_diff(end + 1000) <= 1);
    }

    #[test]
    fn a_device_that_catches_up_is_counted_by_what_it_took() {
        let mut d = DeviceTime::new(48_000);
        let t0 = 1_000_000_000u64;
        d.tick(t0, 64);
        let start = d.at(t0);
        // A real card's thread was held up 4 periods: it pulls 4 back to back.
        let late = t0 + 4 * P + 1000;
        for _ in 0..4 {
            d.tick(late, 64);
        }
        assert!(d.at(late).abs_diff(start + 5_333_333) <= 1);
    }
}
