use super::*;
use crate::device::{DeviceCounters, SkippedFrames};
use crate::dsp::jitter::JitterConfig;
use crate::dsp::meter::MeterConfig;
use crate::rt::pipe::pipe;
use rtrb::RingBuffer;

const P: u32 = 64;

/// A mono meter at 48 kHz with a 10 ms silence hold.
fn meter() -> Meter {
    Meter::new(MeterConfig {
        rate: 48_000,
        channels: 1,
        window_ms: 2,
        silence_threshold_dbfs: -60.0,
        silence_hold_ms: 10,
    })
    .unwrap()
}

fn half() -> (PlaybackHalf, PipeTx, rtrb::Producer<PlaybackCommand>) {
    let (tx, rx) = pipe(1, 4096, 64);
    let (cmd_tx, cmd_rx) = RingBuffer::new(4);
    let meter = meter();
    let levels = meter.levels();
    let playout = Playout::new(crate::dsp::playout::PlayoutConfig {
        ring: JitterConfig {
            channels: 1,
            period_frames: P,
            capacity_frames: P * 64,
            initial_target_frames: P,
            min_target_frames: P,
            max_target_frames: P * 8,
            slack_frames: P * 4,
            steady_pulls: 10_000,
            drift_pulls: 100,
            margin_ns: 0,
        },
        rate: 48_000,
        pull_frames: P,
    })
    .unwrap();
    let h = PlaybackHalf {
        input: rx,
        commands: cmd_rx,
        playout,
        interpolator: None,
        wire: vec![0.0; P as usize],
        meter,
        levels,
        stats: Arc::new(SpeakerStats::default()),
        channels: 1,
        tap: None,
        clicks: None,
        skipped: SkippedFrames::default(),
        input_stopped: false,
    };
    (h, tx, cmd_tx)
}

fn send(tx: &mut PipeTx, pos: &mut u64, value: f32) {
    let meta = PacketMeta {
        position: *pos,
        origin_ns: 0,
        frames: P,
        arrival_ns: 0,
        locked: false,
    };
    assert!(tx.push(meta, &[value; P as usize]));
    *pos += u64::from(P);
}

/// Plays a tone-level stream with one missing packet: one miss.
fn with_a_miss() -> (PlaybackHalf, PipeTx, rtrb::Producer<PlaybackCommand>, u64) {
    let (mut h, mut tx, cmd) = half();
    let mut out = [0.0f32; P as usize];
    let mut pos = 0;
    for i in 0..40 {
        if i != 20 {
            send(&mut tx, &mut pos, 0.5);
        } else {
            pos += u64::from(P); // lost
        }
        h.play(&mut out);
    }
    assert!(h.stats.misses.load(Ordering::Relaxed) >= 1);
    (h, tx, cmd, pos)
}

#[test]
fn misses_reset_when_the_speaker_turns_silent() {
    let (mut h, mut tx, _cmd, mut pos) = with_a_miss();
    let misses = h.stats.misses.load(Ordering::Relaxed);
    let mut out = [0.0f32; P as usize];
    // Still audible: the count stays.
    for _ in 0..5 {
        send(&mut tx, &mut pos, 0.5);
        h.play(&mut out);
    }
    assert_eq!(h.stats.misses.load(Ordering::Relaxed), misses);
    // Silence for longer than the 10 ms hold: reset.
    for _ in 0..20 {
        send(&mut tx, &mut pos, 0.0);
        h.play(&mut out);
    }
    assert!(h.levels.silent());
    assert_eq!(h.stats.misses.load(Ordering::Relaxed), 0);
    assert!(
        h.stats.misses_total.load(Ordering::Relaxed) >= misses,
        "the total keeps them"
    );
}

#[test]
fn misses_are_held_at_zero_while_the_input_is_stalled_and_count_again_after() {
    let (mut h, mut tx, mut cmd, mut pos) = with_a_miss();
    let mut out = [0.0f32; P as usize];
    // The mix stops arriving on a live connection: misses pile up...
    for _ in 0..5 {
        h.play(&mut out);
    }
    assert!(h.stats.misses.load(Ordering::Relaxed) > 1);
    // ...until the net thread says the input stopped: reset, and held at 0.
    cmd.push(PlaybackCommand::InputStopped).unwrap();
    for _ in 0..5 {
        h.play(&mut out);
        assert_eq!(h.stats.misses.load(Ordering::Relaxed), 0);
    }
    assert!(
        h.stats.misses_total.load(Ordering::Relaxed) > 5,
        "the total keeps them"
    );
    // Running again: the counter counts again (the stream was kept, not reset).
    cmd.push(PlaybackCommand::InputRunning).unwrap();
    for i in 0..10 {
        if i != 4 {
            send(&mut tx, &mut pos, 0.5);
        } else {
            pos += u64::from(P);
        }
        h.play(&mut out);
    }
    assert!(h.stats.misses.load(Ordering::Relaxed) >= 1);
}

#[test]
fn device_skips_are_told_after_the_counter_restarts() {
    let (mut h, mut tx, _cmd) = half();
    let counters = Arc::new(DeviceCounters::default());
    h.skipped = SkippedFrames::of(Arc::clone(&counters));
    let mut out = [0.0f32; P as usize];
    let mut pos = 0;
    counters.lost_frames.store(1_000, Ordering::Relaxed);
    send(&mut tx, &mut pos, 0.5);
    h.play(&mut out);
    assert_eq!(h.skipped.seen, 1_000);
    // A reopened device counts from 0 again: its next skips are new ones.
    counters.lost_frames.store(64, Ordering::Relaxed);
    send(&mut tx, &mut pos, 0.5);
    h.play(&mut out);
    assert_eq!(h.skipped.seen, 64, "a count that went back was ignored");
}

#[test]
fn a_click_train_with_no_channels_does_not_panic() {
    let mut c = ClickTrain {
        every: 4,
        played: 0,
    };
    let mut out = [0.5f32; 8];
    c.fill(&mut out, 0);
    // Served sample by sample, as one channel.
    assert_eq!(c.played, 8);
    assert_eq!(out, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn a_capture_period_longer_than_the_decimator_takes_is_counted_not_sliced() {
    let (tx, _rx) = pipe(1, 4096, 64);
    let meter = meter();
    let mut c = CaptureHalf {
        out: tx,
        waker: Arc::new(Waker::new().unwrap()),
        decimator: Some(Decimator::new(2, 1, 2 * P as usize).unwrap()),
        wire: vec![0.0; P as usize],
        meter,
        stats: Arc::new(MicStats::default()),
        channels: 1,
        position: 0,
        tap: None,
        lock: None,
        skipped: SkippedFrames::default(),
    };
    c.capture(&[0.25; 2 * P as usize]);
    assert_eq!(c.position, u64::from(P));
    // The device came back with twice the period: not sent, counted.
    c.capture(&[0.25; 4 * P as usize]);
    assert_eq!(c.stats.unfit_periods.load(Ordering::Relaxed), 1);
    assert_eq!(c.position, u64::from(P));
}

#[test]
fn misses_reset_when_the_hub_input_stops() {
    let (mut h, _tx, mut cmd, _) = with_a_miss();
    cmd.push(PlaybackCommand::Reset).unwrap();
    let mut out = [0.0f32; P as usize];
    h.play(&mut out);
    assert_eq!(h.stats.misses.load(Ordering::Relaxed), 0);
    assert_eq!(h.stats.depth_frames.load(Ordering::Relaxed), 0);
    // With the stream gone the buffer waits for a new one: priming, not misses.
    for _ in 0..10 {
        h.play(&mut out);
    }
    assert_eq!(h.stats.misses.load(Ordering::Relaxed), 0);
}

/// A capture half of one channel, `down` device frames a wire frame, resampled to the
/// hub's clock when `lock` (an estimate of `ppm`), on `counters`; and its pipe.
fn capture_half(
    down: u32,
    lock: Option<f64>,
    counters: &Arc<DeviceCounters>,
) -> (CaptureHalf, PipeRx) {
    let (tx, rx) = pipe(1, 4096, 64);
    let lock = lock.map(|ppm| {
        let clock = Arc::new(SpeakerStats::default());
        clock.clock_ppm.store(ppm.to_bits(), Ordering::Relaxed);
        CaptureLock {
            resampler: Resampler::new(1, P as usize * 4).unwrap(),
            clock,
            hub: HubInputLoop::new(48_000),
            out: vec![0.0; P as usize * 4],
            period: P as usize,
        }
    });
    let c = CaptureHalf {
        out: tx,
        waker: Arc::new(Waker::new().unwrap()),
        decimator: (down > 1).then(|| Decimator::new(down, 1, (down * P) as usize).unwrap()),
        wire: vec![0.0; P as usize],
        meter: meter(),
        stats: Arc::new(MicStats::default()),
        channels: 1,
        position: 0,
        tap: None,
        lock,
        skipped: SkippedFrames::of(Arc::clone(counters)),
    };
    (c, rx)
}

/// The stream positions of the packets queued in `rx`, with their frames.
fn positions(rx: &mut PipeRx) -> Vec<(u64, usize)> {
    let mut v = Vec::new();
    rx.drain_runs(|position, samples, _| v.push((position, samples.len())));
    v
}

#[test]
fn frames_a_capture_xrun_skipped_are_a_gap_in_the_stream() {
    // Before, the audio after an xrun went out at the next position, spliced to the audio
    // before it: a step every listener heard, and the stream a piece of time short for good.
    for (down, lock, lost, gap) in [
        (1, None, 128, 128),
        (2, None, 256, 128),
        // Resampled to a hub 2000 ppm fast: a second lost is a second of the hub's frames.
        (1, Some(2000.0), 48_000, 48_096),
    ] {
        let counters = Arc::new(DeviceCounters::default());
        counters.lost_frames.store(640, Ordering::Relaxed);
        let (mut c, mut rx) = capture_half(down, lock, &counters);
        let period = vec![0.25f32; (down * P) as usize];
        c.capture(&period);
        let first = positions(&mut rx);
        let sent: u64 = first.iter().map(|p| p.1 as u64).sum();
        assert_eq!(
            c.position, sent,
            "the count before the half was built is not news"
        );
        counters.lost_frames.fetch_add(lost, Ordering::Relaxed);
        c.capture(&period);
        let next = positions(&mut rx);
        assert_eq!(next[0].0, sent + gap, "down {down}, lock {lock:?}");
        assert_eq!(c.stats.skipped_frames.load(Ordering::Relaxed), gap);
        c.capture(&period);
        let after = positions(&mut rx);
        let sent2: u64 = next.iter().map(|p| p.1 as u64).sum();
        assert_eq!(after[0].0, sent + gap + sent2, "one gap, then contiguous");
    }
}

#[test]
fn the_hubs_report_of_a_short_input_sends_it_more_once_the_clock_is_measured() {
    // 4 s of capture on a clock the estimate puts at 0 ppm, the hub saying this input
    // stands 480 frames short: once measured, the capture sends more (2000 ppm, after a
    // glide of half a second: about 350 frames in 4 s); not before, and not unasked.
    let sent = |measured: bool, report: Option<f64>| {
        let counters = Arc::new(DeviceCounters::default());
        let (mut c, mut rx) = capture_half(1, Some(0.0), &counters);
        let lock = c.lock.as_ref().unwrap();
        lock.clock
            .measured
            .store(u64::from(measured), Ordering::Relaxed);
        if let Some(excess) = report {
            lock.clock.hub_input.report(excess, 1);
        }
        let period = vec![0.25f32; P as usize];
        let mut frames = 0u64;
        for k in 1..=3000u64 {
            c.capture_at(&period, k * 1_333_333);
            frames += positions(&mut rx).iter().map(|p| p.1 as u64).sum::<u64>();
            if let Some(excess) = report {
                // The hub reports every 500 ms; here it keeps saying the same.
                if k % 375 == 0 {
                    c.lock
                        .as_ref()
                        .unwrap()
                        .clock
                        .hub_input
                        .report(excess, k * 1_333_333);
                }
            }
        }
        (
            frames,
            f64::from_bits(c.stats.correction_ppm.load(Ordering::Relaxed)),
        )
    };
    let (alone, ppm) = sent(true, None);
    assert_eq!(ppm, 0.0);
    let (short, ppm) = sent(true, Some(-480.0));
    assert_eq!(ppm, 2000.0);
    let extra = short as i64 - alone as i64;
    assert!((300..=400).contains(&extra), "{extra} frames more");
    let (unmeasured, ppm) = sent(false, Some(-480.0));
    assert_eq!((unmeasured, ppm), (alone, 0.0), "not before the estimate");
    let (long, _) = sent(true, Some(480.0));
    assert!(
        (300..=400).contains(&(alone as i64 - long as i64)),
        "and fewer when long"
    );
}
