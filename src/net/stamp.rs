//! RFC 3339 UTC timestamps for log lines, and whether stderr is a terminal (main and net
//! threads; never an RT audio thread).
//!
//! Design: a line written off a terminal (a pipe, a file, journald) starts with the time
//! it was written, `2026-12-03T16:39:15.123Z`, so a log read hours later says when a
//! peer lost its hub. The date is computed from `SystemTime` with plain integer
//! arithmetic (days to civil date, after Howard Hinnant's `civil_from_days`) into a
//! fixed 24-byte buffer: no allocation, no lock, no time-zone database, so the net threads
//! may stamp their (rate-limited) lines too. On a terminal a person watches the lines as
//! they come: no stamp there.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC timestamp with milliseconds, formatted as RFC 3339 (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
///
/// # Example
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use izyrt::net::stamp::Stamp;
/// let t = UNIX_EPOCH + Duration::from_millis(1_796_315_955_123);
/// assert_eq!(Stamp::at(t).to_string(), "2026-12-03T16:39:15.123Z");
/// assert_eq!(Stamp::at(UNIX_EPOCH).as_str(), "1970-01-01T00:00:00.000Z");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Stamp([u8; 24]);

impl Stamp {
    /// The time now.
    pub fn now() -> Stamp {
        Stamp::at(SystemTime::now())
    }

    /// The time `t` (times before 1970 print as the epoch).
    pub fn at(t: SystemTime) -> Stamp {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil_from_days(days);
        let mut b = *b"0000-00-00T00:00:00.000Z";
        put(&mut b[0..4], y);
        put(&mut b[5..7], m);
        put(&mut b[8..10], d);
        put(&mut b[11..13], rem / 3_600);
        put(&mut b[14..16], rem / 60 % 60);
        put(&mut b[17..19], rem % 60);
        put(&mut b[20..23], u64::from(since.subsec_millis()));
        Stamp(b)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes `v` as decimal digits right-aligned in `out`, zero-padded (higher digits cut).
fn put(out: &mut [u8], mut v: u64) {
    for c in out.iter_mut().rev() {
        *c = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), proleptic Gregorian.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Whether stderr is a terminal (asked once per process).
///
/// # Example
/// ```
/// let _ = izyrt::net::stamp::stderr_is_terminal();
/// ```
pub fn stderr_is_terminal() -> bool {
    static TERMINAL: OnceLock<bool> = OnceLock::new();
    *TERMINAL.get_or_init(|| std::io::stderr().is_terminal())
}

/// What a log line starts with: `"<stamp> "` off a terminal, nothing on one.
///
/// # Example
/// ```
/// eprintln!("{}izyrt hub: alice joined", izyrt::net::stamp::LinePrefix::now());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LinePrefix(Option<Stamp>);

impl LinePrefix {
    /// The prefix for a line written now.
    pub fn now() -> LinePrefix {
        LinePrefix((!stderr_is_terminal()).then(Stamp::now))
    }
}

impl fmt::Display for LinePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(s) => write!(f, "{s} "),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_across_leap_years_and_centuries() {
        let at = |s: u64| Stamp::at(UNIX_EPOCH + Duration::from_secs(s)).to_string();
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(951_868_799), "2000-02-29T23:59:59.000Z");
        assert_eq!(at(1_709_164_800), "2024-02-29T00:00:00.000Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00.000Z");
        assert_eq!(at(1_704_067_199), "2023-12-31T23:59:59.000Z");
        // Against the C library's own conversion, over a spread of times.
        for s in (0..4_102_444_800u64).step_by(86_400 * 37 + 3_601) {
            let t = s as libc::time_t;
            // SAFETY: gmtime_r writes into the zeroed tm we own.
            let tm = unsafe {
                let mut tm: libc::tm = std::mem::zeroed();
                libc::gmtime_r(&t, &mut tm);
                tm
            };
            let want = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
                tm.tm_year + 1900,
                tm.tm_mon + 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec
            );
            assert_eq!(at(s), want);
        }
    }
}
