//! The absolute-time period clock that paces the hub's mixer and the `virtual` device
//! (RT audio thread).
//!
//! Design: a relative sleep ("sleep one period") accumulates every wakeup's lateness and
//! every rounding of the period to whole nanoseconds, so a clock built on it drifts away
//! from the rate it claims, and two of them drift apart. This clock never adds periods up:
//! the deadline of period `n` is computed from the start time and `n` alone, as
//! `origin + ⌊n · frames · 10⁹ / rate⌋` ns in exact 128-bit integer arithmetic, and the
//! thread sleeps with `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` until that instant.
//! A late wakeup therefore delays one period, never the ones after it, and after a million
//! periods the deadline is still exactly `n · 64 / 48000` s from the start.
//!
//! A skew in parts per million models a sound card whose crystal is off: a positive skew
//! runs fast (shorter periods, more of them per second), as a card at `rate · (1 + ppm·10⁻⁶)`
//! would. It is kept as an integer number of parts per billion so the deadlines stay exact.
//!
//! `CLOCK_MONOTONIC` rather than `CLOCK_MONOTONIC_RAW`: only the former can be slept on,
//! and NTP slewing (at most 500 ppm) is what every other clock on the machine follows too.
//! Reading the time (`clock_gettime` through the vDSO) and sleeping neither allocate nor
//! lock, so [`PeriodClock::wait`] is RT-safe.

/// Nanoseconds per second.
const NS_PER_S: u64 = 1_000_000_000;
/// Parts per billion in one (the skew's fixed-point unit).
const PPB_ONE: i64 = 1_000_000_000;
/// The largest skew accepted, in ppm (the same bound as the device string's `skew=`).
pub const MAX_SKEW_PPM: f64 = 100_000.0;

/// Why a [`PeriodClock`] could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The rate is zero.
    #[error("clock rate {0} Hz is not allowed (must be at least 1 Hz)")]
    Rate(u32),
    /// The period is zero frames.
    #[error("clock period {0} frames is not allowed (must be at least 1 frame)")]
    PeriodFrames(u32),
    /// The skew is not finite or beyond [`MAX_SKEW_PPM`].
    #[error("clock skew {0} ppm is not allowed (must be within ±100000 ppm)")]
    Skew(f64),
}

/// Now on `CLOCK_MONOTONIC`, in nanoseconds. RT-safe (vDSO, no allocation).
///
/// # Example
/// ```
/// let a = izyrt::rt::clock::now_ns();
/// let b = izyrt::rt::clock::now_ns();
/// assert!(b >= a);
/// ```
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * NS_PER_S + ts.tv_nsec as u64
}

/// Now as Unix time, in milliseconds (the wall clock the spec's timestamps use; 0 before
/// 1970). Not for RT threads' pacing: it can jump.
///
/// # Example
/// ```
/// assert!(izyrt::rt::clock::unix_ms() > 1_700_000_000_000);
/// ```
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Nanoseconds as milliseconds (for reports: getMetrics, METADATA).
///
/// # Example
/// ```
/// assert_eq!(izyrt::rt::clock::ns_to_ms(1_500_000), 1.5);
/// ```
pub fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// How long `frames` last at `rate_hz`, ns, rounded down (0 for a rate of 0).
///
/// # Example
/// ```
/// assert_eq!(izyrt::rt::clock::frames_ns(64, 48_000), 1_333_333);
/// assert_eq!(izyrt::rt::clock::frames_ns(64, 0), 0);
/// ```
pub fn frames_ns(frames: u64, rate_hz: u32) -> u64 {
    if rate_hz == 0 {
        return 0;
    }
    frames * NS_PER_S / u64::from(rate_hz)
}

/// Sleeps until `deadline_ns` on `CLOCK_MONOTONIC` (as returned by [`now_ns`]); returns at
/// once when it has passed. Signals do not cut the sleep short. RT-safe.
///
/// # Example
/// ```
/// use izyrt::rt::clock::{now_ns, sleep_until_ns};
/// let deadline = now_ns() + 1_000_000;
/// sleep_until_ns(deadline);
/// assert!(now_ns() >= deadline);
/// ```
pub fn sleep_until_ns(deadline_ns: u64) {
    #[cfg(target_os = "linux")]
    {
        let ts = libc::timespec {
            tv_sec: (deadline_ns / NS_PER_S) as libc::time_t,
            tv_nsec: (deadline_ns % NS_PER_S) as libc::c_long,
        };
        loop {
            // SAFETY: `ts` is a valid timespec; the remainder pointer may be null with
            // TIMER_ABSTIME.
            let rc = unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &ts,
                    std::ptr::null_mut(),
                )
            };
            // clock_nanosleep returns the error number itself. Only EINTR is worth a retry:
            // the absolute deadline makes retrying exact. EINVAL cannot happen with a
            // normalised timespec.
            if rc != libc::EINTR {
                break;
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        // No absolute-time sleep here: sleep the remaining time, re-checking the clock, so
        // the deadline (not the sleep length) still decides when we are done.
        loop {
            let now = now_ns();
            if now >= deadline_ns {
                break;
            }
            let left = deadline_ns - now;
            let ts = libc::timespec {
                tv_sec: (left / NS_PER_S) as libc::time_t,
                tv_nsec: (left % NS_PER_S) as libc::c_long,
            };
            // SAFETY: `ts` is a valid timespec; the remainder pointer may be null.
            unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
        }
    }
}

/// A clock that ticks once per period of `period_frames` at `rate`, optionally skewed,
/// with deadlines computed from the start time so it never drifts.
///
/// Period `n` (counted from 1) ends at [`PeriodClock::deadline_ns`]`(n)`; [`PeriodClock::wait`]
/// sleeps until the end of the next period and says how late the thread woke.
///
/// # Example
/// ```
/// use izyrt::rt::clock::PeriodClock;
/// let mut clock = PeriodClock::new(48_000, 64, 0.0)?;
/// // 48 kHz / 64 frames: every third period ends on a whole nanosecond.
/// assert_eq!(clock.offset_ns(3), 4_000_000);
/// assert_eq!(clock.offset_ns(1_000_000), 1_333_333_333_333);
/// clock.start();
/// let late_ns = clock.wait(); // returns 1.333 ms after start, plus the wakeup latency
/// assert_eq!(clock.index(), 1);
/// assert!(late_ns < 1_000_000_000);
/// # Ok::<(), izyrt::rt::clock::ClockError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PeriodClock {
    rate: u32,
    period_frames: u32,
    skew_ppb: i64,
    /// `rate · (10⁹ + skew_ppb)`: frames per 10⁹ s, the divisor of every deadline.
    divisor: u128,
    origin_ns: u64,
    index: u64,
}

impl PeriodClock {
    /// A clock of `period_frames` at `rate` frames per second, running `skew_ppm` parts
    /// per million fast (negative: slow). It starts when [`PeriodClock::start`] is called.
    ///
    /// The skew is kept to the nearest part per billion.
    ///
    /// # Errors
    /// [`ClockError`] for a zero rate or period, or a skew that is not finite or beyond
    /// ±[`MAX_SKEW_PPM`].
    pub fn new(rate: u32, period_frames: u32, skew_ppm: f64) -> Result<Self, ClockError> {
        if rate == 0 {
            return Err(ClockError::Rate(rate));
        }
        if period_frames == 0 {
            return Err(ClockError::PeriodFrames(period_frames));
        }
        if !skew_ppm.is_finite() || skew_ppm.abs() > MAX_SKEW_PPM {
            return Err(ClockError::Skew(skew_ppm));
        }
        let skew_ppb = (skew_ppm * 1_000.0).round() as i64;
        let divisor = rate as u128 * (PPB_ONE + skew_ppb) as u128;
        Ok(PeriodClock {
            rate,
            period_frames,
            skew_ppb,
            divisor,
            origin_ns: now_ns(),
            index: 0,
        })
    }

    /// Frames per second (nominal, before skew).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Frames per period.
    pub fn period_frames(&self) -> u32 {
        self.period_frames
    }

    /// The skew in ppm, as kept (to the nearest part per billion).
    pub fn skew_ppm(&self) -> f64 {
        self.skew_ppb as f64 / 1_000.0
    }

    /// Starts counting periods now: period 1 ends one period from now.
    pub fn start(&mut self) {
        self.start_at(now_ns());
    }

    /// Starts counting periods at `origin_ns` (a [`now_ns`] time, possibly in the past).
    pub fn start_at(&mut self, origin_ns: u64) {
        self.origin_ns = origin_ns;
        self.index = 0;
    }

    /// The time the clock was started at ([`now_ns`] scale).
    pub fn origin_ns(&self) -> u64 {
        self.origin_ns
    }

    /// Periods completed: how many times [`PeriodClock::wait`] returned, plus periods
    /// skipped by [`PeriodClock::skip_missed`].
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Nanoseconds from the start to the end of period `n`, rounded down:
    /// `⌊n · period_frames · 10⁹ / (rate · (1 + skew))⌋`, exactly.
    pub fn offset_ns(&self, n: u64) -> u64 {
        // F·10¹⁸ / divisor would overflow u128 for huge n, so split F by the divisor:
        // ⌊F·N/D⌋ = ⌊F/D⌋·N + ⌊(F mod D)·N/D⌋ exactly, and every term fits.
        const N: u128 = (NS_PER_S as u128) * (PPB_ONE as u128);
        let frames = n as u128 * self.period_frames as u128;
        let whole = frames / self.divisor;
        let rest = frames % self.divisor;
        let ns = whole * N + rest * N / self.divisor;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// The end of period `n` on the [`now_ns`] scale.
    pub fn deadline_ns(&self, n: u64) -> u64 {
        self.origin_ns.saturating_add(self.offset_ns(n))
    }

    /// The deadline the next [`PeriodClock::wait`] sleeps until.
    pub fn next_deadline_ns(&self) -> u64 {
        self.deadline_ns(self.index + 1)
    }

    /// Sleeps until the end of the next period and returns how late the thread woke
    /// against that deadline, in ns (0 when it was already past and `wait` returned at
    /// once: then the lateness is how far behind the clock the caller is).
    ///
    /// RT-safe: no allocation, no lock.
    pub fn wait(&mut self) -> u64 {
        let deadline = self.next_deadline_ns();
        sleep_until_ns(deadline);
        self.index += 1;
        now_ns().saturating_sub(deadline)
    }

    /// After a stall, skips every period whose deadline has already passed, so the next
    /// [`PeriodClock::wait`] sleeps until a deadline in the future; returns how many were
    /// skipped. The grid does not move: deadlines stay `origin + offset(n)`.
    ///
    /// RT-safe.
    pub fn skip_missed(&mut self) -> u64 {
        let now = now_ns();
        if now < self.next_deadline_ns() {
            return 0;
        }
        let elapsed = now - self.origin_ns;
        // Estimate the last period that has ended, then correct the estimate exactly.
        let per_ns = self.divisor as f64 / (self.period_frames as f64 * 1e18);
        let mut n = ((elapsed as f64 * per_ns) as u64).max(self.index);
        while self.offset_ns(n + 1) <= elapsed {
            n += 1;
        }
        while n > self.index && self.offset_ns(n) > elapsed {
            n -= 1;
        }
        let skipped = n - self.index;
        self.index = n;
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_exact_over_a_million_periods() {
        let c = PeriodClock::new(48_000, 64, 0.0).unwrap();
        for n in 0..1_000_000u64 {
            assert_eq!(c.offset_ns(n), n * 64 * NS_PER_S / 48_000, "period {n}");
        }
        // 1e6 × 64 / 48000 s = 1333.333… s, no cumulative rounding.
        assert_eq!(c.offset_ns(1_000_000), 1_333_333_333_333);
        assert_eq!(c.offset_ns(3_000_000), 4_000_000_000_000);
    }

    #[test]
    fn huge_period_indices_do_not_overflow() {
        let c = PeriodClock::new(8_000, 4096, -100_000.0).unwrap();
        // Beyond u64 ns: saturates instead of wrapping.
        assert_eq!(c.offset_ns(u64::MAX), u64::MAX);
        let c = PeriodClock::new(384_000, 1, 0.0).unwrap();
        // A year of 1-frame periods at 384 kHz.
        let n = 384_000 * 86_400 * 365;
        assert_eq!(c.offset_ns(n), 86_400 * 365 * NS_PER_S);
    }

    #[test]
    fn skew_changes_the_period_by_the_right_amount() {
        let nominal = PeriodClock::new(48_000, 64, 0.0).unwrap();
        let fast = PeriodClock::new(48_000, 64, 100.0).unwrap();
        let slow = PeriodClock::new(48_000, 64, -100.0).unwrap();
        let n = 1_000_000;
        let t = nominal.offset_ns(n) as f64;
        // Running 100 ppm fast: the same periods take 1/(1 + 1e-4) of the time.
        let want_fast = t / 1.0001;
        let want_slow = t / 0.9999;
        assert!((fast.offset_ns(n) as f64 - want_fast).abs() <= 2.0);
        assert!((slow.offset_ns(n) as f64 - want_slow).abs() <= 2.0);
        // About 133 ms over 1333 s, in opposite directions.
        assert!(fast.offset_ns(n) < nominal.offset_ns(n));
        assert!(slow.offset_ns(n) > nominal.offset_ns(n));
        let d = nominal.offset_ns(n) - fast.offset_ns(n);
        assert!((133_300_000..133_350_000).contains(&d), "{d}");
        // Sub-ppm skews are kept too.
        let tiny = PeriodClock::new(48_000, 64, 0.5).unwrap();
        assert_eq!(tiny.skew_ppm(), 0.5);
        assert!(tiny.offset_ns(n) < nominal.offset_ns(n));
    }

    #[test]
    fn rejects_bad_parameters_by_value() {
        assert_eq!(
            PeriodClock::new(0, 64, 0.0).unwrap_err(),
            ClockError::Rate(0)
        );
        assert_eq!(
            PeriodClock::new(48_000, 0, 0.0).unwrap_err(),
            ClockError::PeriodFrames(0)
        );
        let e = PeriodClock::new(48_000, 64, 200_000.0).unwrap_err();
        assert!(e.to_string().contains("200000"), "{e}");
        assert!(PeriodClock::new(48_000, 64, f64::NAN).is_err());
    }

    #[test]
    fn wait_never_returns_before_the_deadline() {
        let mut c = PeriodClock::new(48_000, 64, 0.0).unwrap();
        c.start();
        for n in 1..=20 {
            let deadline = c.next_deadline_ns();
            assert_eq!(deadline, c.deadline_ns(n));
            let late = c.wait();
            let now = now_ns();
            assert!(now >= deadline, "woke before the deadline of period {n}");
            assert!(now - deadline >= late);
        }
        assert_eq!(c.index(), 20);
        assert!(now_ns() - c.origin_ns() >= c.offset_ns(20));
    }

    #[test]
    fn skip_missed_lands_on_the_grid() {
        let mut c = PeriodClock::new(48_000, 64, 0.0).unwrap();
        // Started 100 periods ago: ~100 periods are already over.
        let origin = now_ns() - c.offset_ns(100);
        c.start_at(origin);
        let skipped = c.skip_missed();
        assert!(skipped >= 100, "{skipped}");
        assert_eq!(c.index(), skipped);
        // The last skipped deadline has passed, the next one has not (or only just).
        assert!(c.deadline_ns(c.index()) <= now_ns());
        assert!(c.next_deadline_ns() > c.deadline_ns(c.index()));
        assert_eq!(c.origin_ns(), origin);
        // Nothing to skip right after.
        let before = c.index();
        c.wait();
        assert_eq!(c.index(), before + 1);
    }
}
