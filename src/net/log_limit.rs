//! [`LogLimit`]: a rate limit for one log call site on a realtime-priority thread.
//!
//! Design: the net threads run `SCHED_FIFO`. A line on stderr is a blocking write to a
//! terminal, a pipe or journald; a client that connects and fails in a loop would make
//! such a thread write as fast as it can, taking a core from everything below it. Like
//! PipeWire's `spa_ratelimit`, each call site owns one limiter: at most `burst` lines per
//! `interval`; lines beyond that are counted, not written, and the first line after the
//! interval (or [`LogLimit::flush`] from a periodic tick) first says how many were
//! suppressed. The limiter holds two integers and never allocates; the clock is passed in,
//! so tests drive it with a fake one. Off a terminal each line starts with its UTC time
//! ([`LinePrefix`]).

use std::fmt;

use super::stamp::LinePrefix;

/// What [`LogLimit::admit`] decided for one line.
///
/// # Example
/// ```
/// use izyrt::net::log_limit::{Admit, LogLimit};
/// let mut l = LogLimit::new(1, 1_000);
/// assert_eq!(l.admit(0), Admit::Write { suppressed: 0 });
/// assert_eq!(l.admit(1), Admit::Suppress);
/// assert_eq!(l.admit(1_000), Admit::Write { suppressed: 1 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write the line, after a "suppressed N lines" line when `suppressed > 0`.
    Write {
        /// Lines suppressed since the last line written.
        suppressed: u64,
    },
    /// Drop the line (it is counted).
    Suppress,
}

/// At most `burst` lines per `interval_ns` for one call site. See the module docs.
///
/// # Example
/// ```
/// use izyrt::net::log_limit::LogLimit;
/// let mut joins = LogLimit::new(10, 1_000_000_000);
/// joins.log(izyrt::rt::clock::now_ns(), "izyrt hub", format_args!("alice joined"));
/// ```
#[derive(Debug, Clone)]
pub struct LogLimit {
    burst: u32,
    interval_ns: u64,
    window_start_ns: u64,
    in_window: u32,
    suppressed: u64,
    started: bool,
}

impl LogLimit {
    /// Lines written per interval on the net threads' call sites by default.
    pub const DEFAULT_BURST: u32 = 10;
    /// The default interval: 5 s.
    pub const DEFAULT_INTERVAL_NS: u64 = 5_000_000_000;

    /// A limiter letting `burst` lines (at least 1) through per `interval_ns`.
    ///
    /// # Example
    /// ```
    /// let l = izyrt::net::log_limit::LogLimit::new(0, 10);
    /// assert_eq!(l.suppressed(), 0);
    /// ```
    pub const fn new(burst: u32, interval_ns: u64) -> LogLimit {
        LogLimit {
            burst: if burst == 0 { 1 } else { burst },
            interval_ns,
            window_start_ns: 0,
            in_window: 0,
            suppressed: 0,
            started: false,
        }
    }

    /// The net threads' default: [`Self::DEFAULT_BURST`] lines per
    /// [`Self::DEFAULT_INTERVAL_NS`].
    ///
    /// # Example
    /// ```
    /// let _ = izyrt::net::log_limit::LogLimit::per_site();
    /// ```
    pub const fn per_site() -> LogLimit {
        LogLimit::new(Self::DEFAULT_BURST, Self::DEFAULT_INTERVAL_NS)
    }

    /// Lines suppressed and not yet reported.
    ///
    /// # Example
    /// See [`Admit`].
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Decides for one line at monotonic time `now_ns`.
    ///
    /// # Example
    /// See [`Admit`].
    pub fn admit(&mut self, now_ns: u64) -> Admit {
        if !self.started || now_ns.saturating_sub(self.window_start_ns) >= self.interval_ns {
            self.started = true;
            self.window_start_ns = now_ns;
            self.in_window = 0;
        }
        if self.in_window >= self.burst {
            self.suppressed += 1;
            return Admit::Suppress;
        }
        self.in_window += 1;
        Admit::Write {
            suppressed: std::mem::take(&mut self.suppressed),
        }
    }

    /// Writes `what: args` on stderr if admitted, preceded by the suppressed count (each
    /// line stamped with the time off a terminal).
    ///
    /// # Example
    /// See [`LogLimit`].
    pub fn log(&mut self, now_ns: u64, what: &str, args: fmt::Arguments<'_>) {
        if let Admit::Write { suppressed } = self.admit(now_ns) {
            let at = LinePrefix::now();
            if suppressed > 0 {
                eprintln!("{at}{what}: suppressed {suppressed} lines");
            }
            eprintln!("{at}{what}: {args}");
        }
    }

    /// The pending "suppressed N lines" count, once the interval that suppressed them is
    /// over (so a burst that stopped is still reported); `None` otherwise.
    ///
    /// # Example
    /// ```
    /// use izyrt::net::log_limit::LogLimit;
    /// let mut l = LogLimit::new(1, 100);
    /// l.admit(0);
    /// l.admit(1);
    /// assert_eq!(l.take_due(50), None);
    /// assert_eq!(l.take_due(100), Some(1));
    /// assert_eq!(l.take_due(200), None);
    /// ```
    pub fn take_due(&mut self, now_ns: u64) -> Option<u64> {
        if self.suppressed == 0 || now_ns.saturating_sub(self.window_start_ns) < self.interval_ns {
            return None;
        }
        Some(std::mem::take(&mut self.suppressed))
    }

    /// Writes the pending suppressed count on stderr when due ([`Self::take_due`]); for a
    /// periodic tick.
    ///
    /// # Example
    /// ```
    /// izyrt::net::log_limit::LogLimit::per_site().flush(0, "izyrt hub");
    /// ```
    pub fn flush(&mut self, now_ns: u64, what: &str) {
        if let Some(n) = self.take_due(now_ns) {
            eprintln!("{}{what}: suppressed {n} lines", LinePrefix::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_silence_then_one_summary() {
        const S: u64 = 1_000_000_000;
        let mut l = LogLimit::new(3, 5 * S);
        let mut clock = 10 * S; // a fake clock
        let mut written = 0;
        for _ in 0..1000 {
            if let Admit::Write { suppressed } = l.admit(clock) {
                assert_eq!(suppressed, 0);
                written += 1;
            }
            clock += 1_000_000; // 1 ms apart: 1000 lines in 1 s
        }
        assert_eq!((written, l.suppressed()), (3, 997));
        assert_eq!(l.take_due(clock), None, "still inside the interval");
        clock = 15 * S;
        assert_eq!(l.admit(clock), Admit::Write { suppressed: 997 });
        assert_eq!(l.admit(clock + 1), Admit::Write { suppressed: 0 });
        assert_eq!(l.admit(clock + 2), Admit::Write { suppressed: 0 });
        assert_eq!(l.admit(clock + 3), Admit::Suppress);
        assert_eq!(l.take_due(clock + 5 * S), Some(1));
        assert_eq!(l.suppressed(), 0);
    }

    #[test]
    fn a_steady_trickle_is_never_suppressed() {
        let mut l = LogLimit::new(2, 100);
        for t in (0..10_000).step_by(60) {
            assert!(matches!(l.admit(t), Admit::Write { .. }), "at {t}");
        }
    }
}
