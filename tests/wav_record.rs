//! WAV recordings: every format round trips, the recorder drains its RT tap to a
//! finished file, and a full queue drops whole periods and counts them. This binary counts
//! allocations through the global allocator, to prove the record tap allocates nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use izyrt::file::{Clip, RecordFormat, RecordTap, Recorder, WavRecording};
use izyrt::rt::alloc_count::{CountingAllocator, count_allocations};

#[path = "common/wav.rs"]
mod wav;
use wav::{assert_close, signal};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wav_record-{name}"))
}

#[test]
fn recordings_round_trip_in_every_format() {
    let rate = 48_000;
    let x = signal(2000, 2, rate);
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    for (format, tol) in [
        (RecordFormat::F32, 0.0),
        (RecordFormat::I16, 0.5 / 32768.0 + 1e-7),
        (RecordFormat::I24, 0.5 / 8_388_608.0 + 1e-7),
    ] {
        let path = tmp(&format!("rec-{format:?}.wav"));
        let mut rec = WavRecording::create(&path, rate, 2, format).unwrap();
        for period in xf.chunks(333) {
            rec.write(period).unwrap();
        }
        let summary = rec.finalize().unwrap();
        assert_eq!((summary.frames, summary.clipped_samples), (2000, 0));
        let clip = Clip::load(&path, rate, 2).unwrap();
        let want: Vec<f64> = xf.iter().map(|&v| v as f64).collect();
        assert_close(clip.samples(), &want, tol, &format!("{format:?}"));
    }
    // Out-of-range samples are clipped and counted in integer formats.
    let path = tmp("rec-clip.wav");
    let mut rec = WavRecording::create(&path, rate, 1, RecordFormat::I16).unwrap();
    rec.write(&[1.5, -2.0, 0.5]).unwrap();
    assert_eq!(rec.finalize().unwrap().clipped_samples, 2);
    let clip = Clip::load(&path, rate, 1).unwrap();
    assert_eq!(clip.samples(), &[32767.0 / 32768.0, -1.0, 0.5]);
}

#[test]
fn the_recorder_drains_the_tap_and_finalises_the_file() {
    let path = tmp("recorder.wav");
    let recording = WavRecording::create(&path, 48_000, 2, RecordFormat::F32).unwrap();
    // Room for the whole stream, so nothing may be dropped however the threads interleave.
    let (recorder, mut tap) = Recorder::with_tap(recording, 64 * 200).unwrap();
    let x: Vec<f32> = signal(64 * 150, 2, 48_000)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let rt = std::thread::spawn(move || {
        let (pushed, allocations) = count_allocations(|| {
            x.chunks(64 * 2)
                .map(|period| tap.push(period))
                .filter(|&ok| ok)
                .count()
        });
        (pushed, allocations, tap, x)
    });
    let (pushed, allocations, tap, x) = rt.join().unwrap();
    assert_eq!(
        allocations, 0,
        "RecordTap::push allocated {allocations} times"
    );
    assert_eq!(pushed, 150);
    let summary = recorder.stop().unwrap();
    assert_eq!((summary.frames, summary.dropped_frames), (64 * 150, 0));
    drop(tap);
    let clip = Clip::load(&path, 48_000, 2).unwrap();
    assert_eq!(clip.samples(), &x[..]);
}

#[test]
fn the_recorder_finishes_by_itself_when_the_tap_goes_away() {
    let path = tmp("recorder-abandoned.wav");
    let recording = WavRecording::create(&path, 8_000, 1, RecordFormat::I16).unwrap();
    let (recorder, mut tap) = Recorder::with_tap(recording, 100).unwrap();
    assert!(tap.push(&[0.25; 50]));
    drop(tap);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !recorder.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the recorder did not notice"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(recorder.stop().unwrap().frames, 50);
    assert_eq!(Clip::load(&path, 8_000, 1).unwrap().samples(), &[0.25; 50]);
}

#[test]
fn a_full_queue_drops_whole_periods_and_counts_them() {
    let (producer, mut consumer) = rtrb::RingBuffer::<f32>::new(10 * 2);
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tap = RecordTap::new(producer, 2, Arc::clone(&dropped));
    let period = [0.5f32; 4 * 2];
    let results: Vec<bool> = (0..4).map(|_| tap.push(&period)).collect();
    // 10 frames of room: two 4-frame periods fit, the third does not (only 2 frames left).
    assert_eq!(results, [true, true, false, false]);
    assert_eq!(tap.dropped_frames(), 8);
    assert_eq!(consumer.slots(), 16);
    // Room again once the consumer reads.
    consumer.read_chunk(16).unwrap().commit_all();
    assert!(tap.push(&period));
    assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), 8);
}
