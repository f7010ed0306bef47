//! Round trip through a hub in `loopback` mix, on `virtual` devices, over real TCP on
//! loopback: capture → peer net thread → hub jitter buffer → mixer → hub net thread →
//! peer jitter buffer → playback. Measured exactly from the `impulse` click train (see
//! `izyrt::measure::pair_clicks`), in frames and ms, p50/p99/max, with the misses on both sides.
//!
//! `cargo bench --bench roundtrip`; `IZYRT_BENCH_SECS` (default 20) seconds per period
//! size, `IZYRT_BENCH_PERIODS` (default `64`, e.g. `16,32,64,128`), `IZYRT_BENCH_BUFFER`
//! (device periods, default 2). Goal at 64 frames: at most 3 periods (192 frames).

use std::time::Duration;

use izyrt::client::{Client, ClientConfig, Devices};
use izyrt::hub::{Hub, HubConfig};
use izyrt::measure::{pair_clicks, summarise};
use izyrt::wire::Mix;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list
    }
    let secs: u64 = env("IZYRT_BENCH_SECS").unwrap_or(20);
    let buffer: u32 = env("IZYRT_BENCH_BUFFER").unwrap_or(2);
    let periods: Vec<u32> = std::env::var("IZYRT_BENCH_PERIODS")
        .unwrap_or_else(|_| "64".into())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let rate = 48_000u32;
    println!(
        "| period | clicks | lost | p50 frames | p99 frames | max frames | p50 ms | p99 ms | periods (p99) | peer misses | hub misses | xruns | worst wakeup p99.9 µs |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for period in periods {
        let dir = std::env::temp_dir().join(format!("izyrt-bench-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wav = dir.join(format!("rt-{period}.wav"));
        let sent = dir.join(format!("rt-{period}-sent.wav"));
        let mut hub_cfg = HubConfig::new("127.0.0.1:0".parse().unwrap());
        hub_cfg.settings.period = period;
        hub_cfg.settings.periods = buffer;
        hub_cfg.mix = Mix::Loopback;
        let hub_cfg_settings = hub_cfg.settings.clone();
        let hub = Hub::start(hub_cfg).expect("hub");
        let mut cfg = ClientConfig::peer(
            hub.local_addr(),
            "bench",
            Devices::Duplex("virtual:impulse".parse().unwrap()),
        );
        cfg.settings = hub_cfg_settings.clone();
        cfg.record = Some(wav.clone());
        cfg.record_capture = Some(sent.clone());
        let client = Client::start(cfg).expect("peer");
        std::thread::sleep(Duration::from_secs(secs));
        let peer_snap = client.snapshot().latest();
        let hub_snap = hub.snapshot().latest();
        client.stop().expect("peer stop");
        hub.stop().expect("hub stop");

        let channel0 = |path: &std::path::Path| -> Vec<f32> {
            let mut r = hound::WavReader::open(path).unwrap();
            let ch = usize::from(r.spec().channels);
            r.samples::<f32>().step_by(ch).map(Result::unwrap).collect()
        };
        // Skip the first two clicks: the connection is being made.
        let delays = pair_clicks(
            &channel0(&sent),
            &channel0(&wav),
            rate as usize / 2,
            rate as usize / 2,
        );
        let s = summarise(&delays[2.min(delays.len())..]).expect("no click came back");
        let ms = |f: f64| f * 1000.0 / f64::from(rate);
        let xruns: u64 = [&peer_snap, &hub_snap]
            .iter()
            .flat_map(|s| s["realtime"].as_object().into_iter().flatten())
            .filter_map(|(_, t)| t["xruns"].as_u64())
            .sum();
        // How late the RT threads woke in this run: the machine's share of the figure.
        let wakeup = [&peer_snap, &hub_snap]
            .iter()
            .flat_map(|s| s["realtime"].as_object().into_iter().flatten())
            .filter_map(|(_, t)| t["p999Us"].as_f64())
            .fold(0.0, f64::max);
        println!(
            "| {period} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {} | {xruns} | {wakeup:.0} |",
            s.count,
            s.lost,
            s.p50,
            s.p99,
            s.max,
            ms(s.p50),
            ms(s.p99),
            s.p99 / f64::from(period),
            peer_snap["connections"]["bench"]["missesTotal"],
            hub_snap["connections"]["bench"]["jitterMisses"],
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
