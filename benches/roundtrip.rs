//! Round trip through a hub in `loopback` mix, on `virtual` devices, over real TCP on
//! loopback: capture → peer net thread → hub jitter buffer → mixer → hub net thread →
//! peer jitter buffer → playback, measured exactly by `izyrt latency` at each period size,
//! in frames and ms, p50/p99/max, with the misses on both sides, the xruns, and the RT
//! threads' worst wakeup p99.9 and worst single wakeup of the run (the machine's share of
//! the figure: a wakeup later than the buffers' margin is a miss whatever izyrt does).
//!
//! Each period size is measured in several rounds, the sizes taking turns (16, 32, 64,
//! 128, 16, ...), so that a burst of host noise falls on one round of each size rather
//! than on every round of one: the verdict says in how many rounds each size met its goal.
//!
//! `cargo bench --bench roundtrip`; `IZYRT_BENCH_SECS` (default 20) seconds per round,
//! `IZYRT_BENCH_ROUNDS` (default 3), `IZYRT_BENCH_PERIODS` (default `16,32,64,128`),
//! `IZYRT_BENCH_BUFFER` (device periods, default 2). Goals: at most 3 periods at 64 frames,
//! 4 at 16 and 32, with zero misses.

use std::process::Command;

use serde_json::Value;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

/// The goal's bound on the round trip at `period` frames, in periods (the issue sets none
/// at 128 frames).
fn goal_periods(period: u32) -> Option<f64> {
    match period {
        16 | 32 => Some(4.0),
        64 => Some(3.0),
        _ => None,
    }
}

/// One `izyrt latency` run: its JSON, or why it failed.
fn measure(period: u32, buffer: u32, secs: u64) -> Result<Value, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_izyrt"))
        .args(["latency", "--device", "virtual", "--json"])
        .args(["--period", &period.to_string()])
        .args(["--periods", &buffer.to_string()])
        .args(["--seconds", &secs.to_string()])
        .output()
        .map_err(|e| format!("izyrt latency: {e}"))?;
    serde_json::from_slice(&out.stdout)
        .map_err(|_| String::from_utf8_lossy(&out.stderr).trim().to_string())
}

/// The median, to two decimals ("—" for none).
fn median(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let m = match v.len() {
        0 => return "—".into(),
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    format!("{m:.2}")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list
    }
    let secs: u64 = env("IZYRT_BENCH_SECS").unwrap_or(20);
    let rounds: usize = env("IZYRT_BENCH_ROUNDS").unwrap_or(3).max(1);
    let buffer: u32 = env("IZYRT_BENCH_BUFFER").unwrap_or(2);
    let periods: Vec<u32> = std::env::var("IZYRT_BENCH_PERIODS")
        .unwrap_or_else(|_| "16,32,64,128".into())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    // results[i][r]: period size i, round r.
    let mut results: Vec<Vec<Result<Value, String>>> = periods.iter().map(|_| vec![]).collect();
    for _ in 0..rounds {
        for (i, &period) in periods.iter().enumerate() {
            results[i].push(measure(period, buffer, secs));
        }
    }
    println!(
        "| period | round | clicks | lost | p50 frames | p99 frames | max frames | p50 ms | p99 ms | periods (p99) | peer misses | hub misses | xruns | worst wakeup p99.9 µs | worst wakeup µs |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut verdicts = Vec::new();
    for (&period, runs) in periods.iter().zip(&results) {
        let (mut p99s, mut met, mut clean) = (Vec::new(), 0, 0);
        for (r, run) in runs.iter().enumerate() {
            let v = match run {
                Ok(v) => v,
                Err(why) => {
                    println!("| {period} | {} | failed: {why} |", r + 1);
                    continue;
                }
            };
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let p99 = f("p99Frames") / f64::from(period);
            // Both sides counted and none missed (the hub's count is null when unknown).
            let no_miss = ["peerMisses", "hubMisses"]
                .iter()
                .all(|k| v[*k].as_u64() == Some(0));
            println!(
                "| {period} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {p99:.2} | {} | {} | {} | {:.0} | {:.0} |",
                r + 1,
                v["clicks"],
                v["lost"],
                f("p50Frames"),
                f("p99Frames"),
                f("maxFrames"),
                f("p50Ms"),
                f("p99Ms"),
                v["peerMisses"],
                v["hubMisses"],
                v["xruns"],
                f("worstWakeupP999Us"),
                f("worstWakeupMaxUs"),
            );
            p99s.push(p99);
            clean += usize::from(no_miss);
            met += usize::from(no_miss && goal_periods(period).is_some_and(|g| p99 <= g));
        }
        let goal = match goal_periods(period) {
            Some(g) => format!("goal (≤ {g} periods, zero misses) met in {met} of {rounds}"),
            None => "no goal at this size".to_string(),
        };
        verdicts.push(format!(
            "- {period} frames: median p99 {} periods; rounds with zero misses: {clean} of {rounds}; {goal}",
            median(p99s)
        ));
    }
    println!();
    for v in verdicts {
        println!("{v}");
    }
}
