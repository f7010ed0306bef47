//! Round trip through a hub in `loopback` mix, on `virtual` devices, over real TCP on
//! loopback: capture → peer net thread → hub jitter buffer → mixer → hub net thread →
//! peer jitter buffer → playback, measured exactly by `izyrt latency` at each period size,
//! in frames and ms, p50/p99/max, with the misses on both sides, the xruns, and the RT
//! threads' worst wakeup p99.9 and worst single wakeup of the run (the machine's share of
//! the figure: a wakeup later than the buffers' margin is a miss whatever izyrt does).
//!
//! `cargo bench --bench roundtrip`; `IZYRT_BENCH_SECS` (default 20) seconds per period
//! size, `IZYRT_BENCH_PERIODS` (default `16,32,64,128`), `IZYRT_BENCH_BUFFER` (device
//! periods, default 2). Goals: at most 3 periods at 64 frames, 4 at 16 and 32.

use std::process::Command;

use serde_json::Value;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list
    }
    let secs: u64 = env("IZYRT_BENCH_SECS").unwrap_or(20);
    let buffer: u32 = env("IZYRT_BENCH_BUFFER").unwrap_or(2);
    let periods = std::env::var("IZYRT_BENCH_PERIODS").unwrap_or_else(|_| "16,32,64,128".into());
    println!(
        "| period | clicks | lost | p50 frames | p99 frames | max frames | p50 ms | p99 ms | periods (p99) | peer misses | hub misses | xruns | worst wakeup p99.9 µs | worst wakeup µs |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for period in periods.split(',').map(str::trim) {
        let out = Command::new(env!("CARGO_BIN_EXE_izyrt"))
            .args([
                "latency", "--device", "virtual", "--json", "--period", period,
            ])
            .args([
                "--periods",
                &buffer.to_string(),
                "--seconds",
                &secs.to_string(),
            ])
            .output()
            .expect("izyrt latency");
        let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else {
            println!(
                "| {period} | failed: {} |",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            continue;
        };
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {period} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {:.0} | {:.0} |",
            v["clicks"],
            v["lost"],
            f("p50Frames"),
            f("p99Frames"),
            f("maxFrames"),
            f("p50Ms"),
            f("p99Ms"),
            f("p99Frames") / period.parse::<f64>().unwrap_or(f64::NAN),
            v["peerMisses"],
            v["hubMisses"],
            v["xruns"],
            f("worstWakeupP999Us"),
            f("worstWakeupMaxUs"),
        );
    }
}
