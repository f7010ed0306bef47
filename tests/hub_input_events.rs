//! What a listener hears when a hub input gives latency back: the hub has no resampler,
//! so its input buffer drops frames (a drift trim for a client that does not lock, the
//! excess a stall's burst left behind) and the mixer cross-fades the cut. Judged by the
//! independent measure (`izyrt::measure::tone_glitches`) on what the input plays, each
//! such cut must leave no step and no hole: `dsp/jitter/splice.rs` chooses its length so
//! that the waveform continues. The same for a stall's gap: concealed, and ended where the
//! stream continues the concealment in phase (`dsp/jitter/resume.rs`). And a client's
//! capture xrun, which it sends as a gap in its positions: concealed the same way.
//!
//! The run is scripted, with no sockets or scheduler: the hub's own input path (the
//! `JitterBuffer` as the hub configures it by default, read with `pull_concealed` and the
//! `Conceal` the mixer runs with it) is fed a 441 Hz tone from a sender whose clock is
//! `ppm` fast, and every period it plays is recorded.

use izyrt::dsp::jitter::{JitterBuffer, JitterConfig, PullResult};
use izyrt::dsp::playout::conceal::Conceal;
use izyrt::hub::mixer_thread::CUTS_PER_PERIOD;
use izyrt::measure::{GlitchConfig, tone_glitches};

const RATE: f64 = 48_000.0;
const P: usize = 64;

fn tone(n: u64) -> f32 {
    (std::f64::consts::TAU * 441.0 * n as f64 / RATE).sin() as f32 * 0.25
}

struct Run {
    recording: Vec<f32>,
    trimmed: u64,
    dropped: u64,
    misses: u64,
}

/// One hub input of one channel (`cfg`), read as the mixer reads it, and what it played.
struct Input {
    jb: JitterBuffer,
    conceal: Conceal,
    out: [f32; P],
    recording: Vec<f32>,
    misses: u64,
}

impl Input {
    fn new(cfg: JitterConfig) -> Input {
        Input {
            jb: JitterBuffer::new(JitterConfig { channels: 1, ..cfg }).unwrap(),
            conceal: Conceal::new(1, RATE as u32).unwrap(),
            out: [0.0; P],
            recording: Vec::new(),
            misses: 0,
        }
    }

    /// One mixer period: the pull, recorded once the stream has started.
    fn pull(&mut self) {
        let mut cuts = CUTS_PER_PERIOD;
        let r = self
            .jb
            .pull_concealed(&mut self.out, u64::MAX, &mut cuts, &mut self.conceal);
        self.misses += u64::from(matches!(r, PullResult::Miss { .. }));
        if r != PullResult::Priming {
            self.recording.extend_from_slice(&self.out);
        }
    }

    fn played(self) -> Run {
        Run {
            trimmed: self.jb.trimmed_frames(),
            dropped: self.jb.dropped_frames(),
            recording: self.recording,
            misses: self.misses,
        }
    }
}

/// `secs` of a sender `ppm` fast into one hub input; with `stall_at`, the sender's packets
/// are held back for `stall_ms` from that second on, then arrive at once.
fn run(ppm: f64, secs: f64, stall: Option<(f64, f64)>) -> Run {
    let mut input = Input::new(JitterConfig::default());
    let send_period = P as f64 / (RATE * (1.0 + ppm * 1e-6));
    let pull_period = P as f64 / RATE;
    let mut packet = [0.0f32; P];
    let mut sent = 0u64;
    for j in 0..(secs / pull_period) as u64 {
        let now = j as f64 * pull_period;
        loop {
            let at = sent as f64 * send_period;
            let arrives = match stall {
                Some((from, ms)) if at >= from && at < from + ms / 1e3 => from + ms / 1e3,
                _ => at,
            };
            if arrives > now {
                break;
            }
            for (i, x) in packet.iter_mut().enumerate() {
                *x = tone(sent * P as u64 + i as u64);
            }
            input.jb.push(sent * P as u64, &packet);
            sent += 1;
        }
        input.pull();
    }
    input.played()
}

fn events(r: &Run) -> izyrt::measure::GlitchReport {
    tone_glitches(
        &r.recording,
        1,
        RATE as u32,
        &GlitchConfig {
            freq_hz: Some(441.0),
            ..GlitchConfig::default()
        },
    )
    .expect("a tone")
}

#[test]
fn drift_trims_of_a_client_that_does_not_lock_leave_no_step_and_no_hole() {
    // +500 ppm: the depth creeps up a period every 2.7 s; the steady rule drops what its
    // window never needed, and the drift rule trims what stands above the target and
    // the slack for a second.
    let r = run(500.0, 60.0, None);
    assert!(r.dropped >= 3 * 256, "only {} frames dropped", r.dropped);
    assert_eq!(r.misses, 0);
    let report = events(&r);
    assert_eq!(
        (report.steps, report.holes, report.events.len()),
        (0, 0, 0),
        "{} frames dropped ({} by the drift rule): {report}",
        r.dropped,
        r.trimmed
    );
}

#[test]
fn the_excess_a_stall_leaves_is_given_back_without_a_step_or_a_hole() {
    // A 20 ms stall at 3 s: the input misses (concealed), the burst leaves 20 ms more
    // in the buffer, and the drift rule takes it back a second later. Only what the
    // stall itself cost may be heard.
    let r = run(0.0, 12.0, Some((3.0, 20.0)));
    assert!(r.dropped >= 256, "only {} frames dropped", r.dropped);
    let report = events(&r);
    let after_stall = report
        .events
        .iter()
        .filter(|e| e.frame as f64 / RATE > 3.2)
        .count();
    assert_eq!(after_stall, 0, "{} frames dropped: {report}", r.dropped);
}

#[test]
fn a_stall_of_a_few_periods_is_bridged_at_full_level_and_joined_in_phase() {
    // Stalls of 0.5 to 10.25 ms, each at four phases against the hub's periods: the input
    // misses one to eight periods and rebuffers. The continuation plays at full level
    // through such a gap (`conceal::HOLD_MS`), and the stream resumes at the frame in
    // phase with it (`dsp/jitter/resume.rs`), so the join does not dip either. Measured
    // on this path: 0 events in the 160 stalls; 76 when the stream resumed where it
    // stopped (a cross-fade between a tone and itself out of phase dips), 152 when the
    // continuation also faded out through every gap.
    let (mut heard, mut stalls, mut misses) = (0, 0, 0);
    for i in 0..40 {
        let ms = 0.5 + f64::from(i) * 0.25;
        for phase in 0..4 {
            let r = run(0.0, 5.0, Some((3.0 + f64::from(phase) * 0.0003, ms)));
            misses += r.misses;
            heard += events(&r).events.len();
            stalls += 1;
        }
    }
    assert!(misses >= stalls, "only {misses} misses in {stalls} stalls");
    eprintln!("{heard} events, {misses} misses in {stalls} stalls");
    assert!(heard <= 4, "{heard} events in {stalls} stalls");
}

/// 5 s of a sender on the hub's clock whose capture device xruns at `at` s: its thread
/// stalls for `lost` frames and its card skips them (a card's capture after an xrun is at
/// stream time: the tone goes on from where time is). `gap`: the sender moves its stream
/// position on by the frames skipped (`CaptureHalf::capture`), else it splices the audio
/// either side; what the hub's input plays.
fn capture_xrun(at: f64, lost: u64, gap: bool) -> Run {
    // The input's target as this host's stalls had grown it (256–832 frames measured):
    // deeper than the stall, so the input does not run dry through it.
    let mut input = Input::new(JitterConfig {
        initial_target_frames: 8 * P as u32,
        min_target_frames: 8 * P as u32,
        ..JitterConfig::default()
    });
    let mut packet = [0.0f32; P];
    let (mut device, mut position) = (0u64, 0u64);
    let xrun = (at * RATE) as u64 / P as u64 * P as u64;
    for j in 0..(5.0 * RATE) as u64 / P as u64 {
        let now = j * P as u64;
        // The card's periods that are complete by now; none while the thread stalls.
        while device + P as u64 <= now && !(device == xrun && now < xrun + lost) {
            if device == xrun {
                device += lost;
                position += if gap { lost } else { 0 };
                continue;
            }
            for (i, x) in packet.iter_mut().enumerate() {
                *x = tone(device + i as u64);
            }
            input.jb.push(position, &packet);
            device += P as u64;
            position += P as u64;
        }
        input.pull();
    }
    input.played()
}

#[test]
fn a_capture_xrun_sent_as_a_gap_is_concealed_where_a_splice_was_heard() {
    // Capture xruns of one to eight periods at four phases, into an input deeper than
    // most of them. Sent as a gap: concealed and rejoined in phase, nothing heard. Spliced
    // (as clients sent them before): wherever the input's depth covered the stall, so
    // that it did not run dry and rejoin, the tone's phase jumped: a step (20 of 24).
    let (mut gaps, mut splices, mut n) = (0, 0, 0);
    for lost in [64u64, 128, 192, 256, 384, 512] {
        for phase in 0..4 {
            let at = 3.0 + f64::from(phase) * 0.0007;
            let heard = events(&capture_xrun(at, lost, true));
            assert_eq!(
                heard.events.len(),
                0,
                "{lost} frames lost, as a gap: {heard}"
            );
            gaps += heard.events.len();
            splices += events(&capture_xrun(at, lost, false)).events.len();
            n += 1;
        }
    }
    eprintln!("{n} capture xruns: {gaps} events as gaps, {splices} as splices");
    assert!(
        splices >= 20,
        "the splices were heard {splices} times in {n}"
    );
}
