//! The RT threads' wakeup lateness as a Prometheus histogram (HTTP thread).
//!
//! Each `realtime.THREAD.wakeupHistogram` (`boundsUs`, `cumulative`, `sumUs`; see
//! [`crate::rt::wakeup`]) becomes `izyrt_rt_wakeup_lateness_seconds_bucket{thread,le}`
//! (cumulative, the last `le="+Inf"`), `_sum` and `_count`. Its counters only grow, so
//! `histogram_quantile(0.999, rate(izyrt_rt_wakeup_lateness_seconds_bucket[1m]))` is the
//! tail of the last minute. A thread whose histogram is malformed (bounds and counts of
//! different lengths, a count that goes down) is left out rather than exported wrong.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Rows, Scale, header, number, with_label};

const NAME: &str = "izyrt_rt_wakeup_lateness_seconds";

/// One thread's histogram, checked.
struct Hist {
    le: Vec<String>,
    cumulative: Vec<u64>,
    sum: String,
}

fn parse(v: &Value) -> Option<Hist> {
    let bounds = v.get("boundsUs")?.as_array()?;
    let cumulative: Vec<u64> = v
        .get("cumulative")?
        .as_array()?
        .iter()
        .map(Value::as_u64)
        .collect::<Option<_>>()?;
    if cumulative.len() != bounds.len() + 1 || cumulative.windows(2).any(|w| w[0] > w[1]) {
        return None;
    }
    let le = bounds
        .iter()
        .map(|b| number(b, Scale::Micro))
        .collect::<Option<_>>()?;
    let sum = number(v.get("sumUs")?, Scale::Micro)?;
    Some(Hist {
        le,
        cumulative,
        sum,
    })
}

/// Writes the family for every thread of `realtime` that has a histogram.
pub(super) fn render(out: &mut String, realtime: &Rows<'_>) {
    let hists: Vec<(&str, Hist)> = realtime
        .iter()
        .filter_map(|(labels, obj)| Some((labels.as_str(), parse(obj.get("wakeupHistogram")?)?)))
        .collect();
    if hists.is_empty() {
        return;
    }
    header(
        out,
        NAME,
        "histogram",
        "How late the RT thread woke up for its period, since its start.",
    );
    for (labels, h) in &hists {
        for (le, n) in h.le.iter().zip(&h.cumulative) {
            let _ = writeln!(out, "{NAME}_bucket{} {n}", with_label(labels, "le", le));
        }
        let total = h.cumulative.last().copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{NAME}_bucket{} {total}",
            with_label(labels, "le", "+Inf")
        );
        let _ = writeln!(out, "{NAME}_sum{labels} {}", h.sum);
        let _ = writeln!(out, "{NAME}_count{labels} {total}");
    }
}
