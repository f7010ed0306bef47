//! The locked playout by simulation (benches/sim/playout.rs): the real `Playout` fed a
//! hub's tone over a modelled TCP path, on a clock `ppm` away, pulled on an exact device
//! clock. The same figures come out on any machine.
//!
//! Rows: ±1000 ppm and ±100 ppm with packet jitter up to a period (the acceptance
//! run: 10 simulated minutes by default, `IZYRT_BENCH_SECS` to change); this VM's stall
//! model (about one host stall every 10 s, up to 8 ms) at +300 ppm; a hub that loses
//! 200 ms of its clock once (an xrun), 45 s in, at +300 ppm; a client whose connection is
//! lost for 2 s at 60 s, at +1000 ppm (its "locked after" adds how long it took to lock
//! again once back); and this VM's JACK servers, whose clocks on both sides lose time at
//! random (a period, half a time and twice a second; 1.3–3 ms, once and four times a
//! second), at +100 ppm, and a storm that costs the client's side twice the hub's
//! (2 and 4 lost periods a second: about 2700 ppm of net lost time, beyond the clock
//! loop's ±2000 ppm). The last column is what the hub's input would hold of the
//! client's capture: its spread shows the walk that lost time leaves there, with the
//! capture steered by the hub's reports of that input (as izyrt's clients do) and by the
//! clock estimate alone.
//!
//! `cargo bench --bench playout_sim`. Other draws of the same models:
//! `IZYRT_SIM_SEED=N` (the random stream of every row; the README's rows are the
//! default's); only the rows whose name holds a text: `IZYRT_SIM_ROWS=text`.

#[path = "sim/playout.rs"]
mod sim;

use sim::{Scenario, run};

fn main() {
    let secs: f64 = std::env::var("IZYRT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600.0);
    let mut base = Scenario::clean(0.0, secs);
    if let Some(seed) = std::env::var("IZYRT_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        base.seed = seed;
    }
    let only = std::env::var("IZYRT_SIM_ROWS").unwrap_or_default();
    let rows = [
        (
            "+1000 ppm, jitter ≤ 1 period",
            Scenario {
                ppm: 1000.0,
                ..base
            },
        ),
        (
            "−1000 ppm, jitter ≤ 1 period",
            Scenario {
                ppm: -1000.0,
                ..base
            },
        ),
        (
            "+100 ppm, jitter ≤ 1 period",
            Scenario { ppm: 100.0, ..base },
        ),
        (
            "−100 ppm, jitter ≤ 1 period",
            Scenario {
                ppm: -100.0,
                ..base
            },
        ),
        (
            "+300 ppm, VM stalls ≤ 8 ms every ~10 s",
            Scenario {
                ppm: 300.0,
                stall_every_s: 10.0,
                stall_max_ms: 8.0,
                ..base
            },
        ),
        (
            "+300 ppm, the hub loses 200 ms at 45 s",
            Scenario {
                ppm: 300.0,
                loss_at_s: 45.0,
                loss_ms: 200.0,
                ..base
            },
        ),
        (
            "+300 ppm, the hub skips 200 ms at 45 s",
            Scenario {
                ppm: 300.0,
                loss_at_s: 45.0,
                loss_ms: 200.0,
                loss_skips: true,
                ..base
            },
        ),
        (
            "+1000 ppm, away 2 s from 60 s (a reconnect)",
            Scenario {
                ppm: 1000.0,
                away_at_s: 60.0,
                away_s: 2.0,
                ..base
            },
        ),
        (
            "+100 ppm, lost JACK cycles ~1/s each side, ≤ 3 ms",
            Scenario {
                ppm: 100.0,
                lost_per_s: 1.0,
                lost_max_ms: 3.0,
                ..base
            },
        ),
        (
            "+100 ppm, lost JACK cycles ~0.5/s each side, 1 period",
            Scenario {
                ppm: 100.0,
                lost_per_s: 0.5,
                lost_max_ms: 0.0,
                ..base
            },
        ),
        (
            "+100 ppm, lost JACK cycles ~2/s each side, 1 period",
            Scenario {
                ppm: 100.0,
                lost_per_s: 2.0,
                lost_max_ms: 0.0,
                ..base
            },
        ),
        (
            "+100 ppm, lost JACK cycles ~4/s each side, ≤ 3 ms",
            Scenario {
                ppm: 100.0,
                lost_per_s: 4.0,
                lost_max_ms: 3.0,
                ..base
            },
        ),
        (
            "+100 ppm, storm: lost JACK cycles ~2/s at the hub, ~4/s at the client, 1 period",
            Scenario {
                ppm: 100.0,
                lost_per_s: 2.0,
                lost_max_ms: 0.0,
                lost_device_factor: 2.0,
                ..base
            },
        ),
    ];
    println!("simulated seconds per row: {secs}, seed {:#x}", base.seed);
    println!();
    println!(
        "| scenario | locked after (s) | misses (after lock) | dropped frames | estimate (ppm) | worst error 5–10 s / after 60 s (ppm) | steps | largest residual | target mean (frames) | queued mean / p99 (ms) | hub input spread (ms): reports / estimate alone | hub input misses, dropped frames, depth (ms): reports / estimate alone |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, s) in rows
        .into_iter()
        .filter(|(name, _)| name.contains(only.as_str()))
    {
        let o = run(&s);
        println!(
            "| {name} | {} | {} ({}) | {} | {:.2} | {:.0} / {:.2} | {} | {:.1e} | {:.0} | {:.2} / {:.2} | {:.2} / {:.2} | {}, {}({}), {:.2} / {}, {}({}), {:.2} |",
            locked(&s, &o),
            o.misses,
            o.misses_after_lock,
            o.dropped,
            o.estimate_ppm,
            o.worst_error_5_to_10s,
            o.worst_error_after_60s,
            o.steps,
            o.max_residual,
            o.target_mean,
            o.fill_mean_ms,
            o.fill_p99_ms,
            o.hub_spread_ms,
            o.hub_spread_alone_ms,
            o.hub[0].misses,
            o.hub[0].dropped,
            o.hub[0].trimmed,
            o.hub[0].depth_mean_ms,
            o.hub[1].misses,
            o.hub[1].dropped,
            o.hub[1].trimmed,
            o.hub[1].depth_mean_ms,
        );
    }
}

/// When the loop locked, and after a reconnect how long it took to lock again.
fn locked(s: &Scenario, o: &sim::Outcome) -> String {
    let at = |t: Option<f64>| t.map_or("never".into(), |t| format!("{t:.1}"));
    if s.away_at_s.is_finite() {
        format!("{}; again {} after it", at(o.lock_s), at(o.relock_s))
    } else {
        at(o.lock_s)
    }
}
