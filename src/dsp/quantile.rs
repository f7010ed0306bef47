//! Quantiles by rank, in place: the block medians of a client's clock estimate (RT audio
//! thread, once a second), the slope fit's robust drift and spread (`dsp::slope`, RT) and
//! the glitch detector's levels (main thread, after the fact). `select_nth_unstable`
//! reorders the slice and allocates nothing.

/// The `q` quantile of `v` by rank (the sample at `round((len − 1) · q)` in order; the
/// upper one of two middles for the median of an even count); `None` when `v` is empty.
/// Reorders `v`.
///
/// Runs on: any thread, RT included. Must not: allocate, lock, block.
///
/// # Example
/// ```
/// use izyrt::dsp::quantile::{median, quantile};
/// assert_eq!(median(&mut [3.0, 1.0, 2.0, 4.0]), Some(3.0));
/// assert_eq!(quantile(&mut [5.0, 1.0, 4.0, 2.0, 3.0], 0.75), Some(4.0));
/// assert_eq!(median(&mut []), None);
/// ```
pub fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let k = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    Some(*v.select_nth_unstable_by(k, f64::total_cmp).1)
}

/// The median of `v` ([`quantile`] at 0.5); `None` when `v` is empty. Reorders `v`.
pub fn median(v: &mut [f64]) -> Option<f64> {
    quantile(v, 0.5)
}
