//! The recorder: a non-RT thread that drains an rtrb queue into a [`WavRecording`], and
//! the RT-side tap that feeds it.
//!
//! Design: the RT thread must never wait for the disk, so it only copies each period into a
//! lock-free single-producer ring ([`RecordTap::push`]): the whole period goes in, or, when
//! the ring lacks room for all of it, none of it does and its frames are counted as dropped.
//! All-or-nothing keeps the stream frame-aligned and the gap a whole period. The design's
//! rule is to drop the *oldest* audio when a queue is full, but the producer of an SPSC ring
//! cannot pop; for a recording the result is the same (a gap where the disk stalled), so the
//! newest period is the one dropped. The recorder thread wakes every few milliseconds (a
//! quarter of the queue's duration, between 1 and 20 ms), writes whatever is queued, and on
//! [`Recorder::stop`] (or when the tap is dropped) drains the rest and finalises the header.
//! Size the queue for the longest disk stall to ride out: a second of audio is cheap.
//!
//! ```text
//! RT thread:  period ─► RecordTap::push ─► rtrb (f32) ─► recorder thread ─► hound ─► file.wav
//!                          │ full? drop, count                   stop() ─► drain, finalise
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rtrb::{Consumer, Producer, RingBuffer};

use super::record::{RecordError, RecordSummary, WavRecording};

/// The RT-side end of a recording: pushes whole periods into the queue without blocking.
///
/// # Realtime contract
/// [`RecordTap::push`] neither allocates, locks nor blocks: it copies into the ring or
/// drops the period and bumps an atomic counter. Drop the tap off the RT thread (hand it
/// back through a queue) so that the RT thread is never the last owner of the ring.
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::AtomicU64;
/// use izyrt::file::RecordTap;
///
/// let (producer, mut consumer) = rtrb::RingBuffer::<f32>::new(8);
/// let mut tap = RecordTap::new(producer, 2, Arc::new(AtomicU64::new(0)));
/// assert!(tap.push(&[0.1, 0.2, 0.3, 0.4]));
/// assert!(tap.push(&[0.5, 0.6, 0.7, 0.8]));
/// assert!(!tap.push(&[0.9, 1.0])); // full: dropped, not blocked
/// assert_eq!(tap.dropped_frames(), 1);
/// assert_eq!(consumer.slots(), 8);
/// ```
#[derive(Debug)]
pub struct RecordTap {
    producer: Producer<f32>,
    channels: usize,
    dropped: Arc<AtomicU64>,
}

impl RecordTap {
    /// Wraps the producer end of a queue of interleaved `channels`-channel samples; dropped
    /// frames are added to `dropped`.
    ///
    /// # Panics
    /// When `channels` is 0.
    pub fn new(producer: Producer<f32>, channels: u16, dropped: Arc<AtomicU64>) -> RecordTap {
        assert!(channels > 0, "a recording needs at least one channel");
        RecordTap {
            producer,
            channels: channels as usize,
            dropped,
        }
    }

    /// Queues one period of interleaved samples, all or nothing. Returns false (and counts
    /// the period's frames as dropped) when the queue lacks room for all of it.
    pub fn push(&mut self, samples: &[f32]) -> bool {
        match self.producer.push_entire_slice(samples) {
            Ok(()) => true,
            Err(_) => {
                let frames = samples.len().div_ceil(self.channels) as u64;
                self.dropped.fetch_add(frames, Ordering::Relaxed);
                false
            }
        }
    }

    /// Frames dropped so far because the queue was full.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// True when the recorder has gone (stopped or failed): pushes will fill and drop.
    pub fn is_abandoned(&self) -> bool {
        self.producer.is_abandoned()
    }
}

/// A thread that owns a [`WavRecording`] and drains a queue of interleaved f32 into it
/// until told to stop.
///
/// # Example
/// ```
/// use izyrt::file::{RecordFormat, Recorder, WavRecording};
///
/// let path = std::env::temp_dir().join(format!("izyrt-recorder-doc-{}.wav", std::process::id()));
/// let recording = WavRecording::create(&path, 48_000, 2, RecordFormat::F32)?;
/// // A queue of 0.5 s; `tap` moves to the RT thread.
/// let (recorder, mut tap) = Recorder::with_tap(recording, 24_000)?;
/// let period = [0.25f32; 64 * 2];
/// for _ in 0..10 {
///     tap.push(&period); // on the RT thread: never blocks
/// }
/// let summary = recorder.stop()?; // main thread: drain, finalise the header
/// assert_eq!(summary.frames + summary.dropped_frames, 640);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), izyrt::file::RecordError>(())
/// ```
#[derive(Debug)]
pub struct Recorder {
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<RecordSummary, RecordError>>>,
    path: std::path::PathBuf,
}

impl Recorder {
    /// Starts a recorder thread that drains `consumer` (interleaved samples with the
    /// recording's channel count) into `recording`.
    ///
    /// # Errors
    /// [`RecordError::Thread`] when the thread cannot be spawned.
    pub fn spawn(
        recording: WavRecording,
        consumer: Consumer<f32>,
    ) -> Result<Recorder, RecordError> {
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let path = recording.path().to_owned();
        let frames = consumer.buffer().capacity() / recording.channels() as usize;
        let queue_secs = frames as f64 / recording.rate() as f64;
        let poll = Duration::from_secs_f64((queue_secs / 4.0).clamp(0.001, 0.020));
        let thread = thread::Builder::new()
            .name("izyrt-recorder".to_owned())
            .spawn({
                let stop = Arc::clone(&stop);
                move || drain(recording, consumer, &stop, poll)
            })
            .map_err(|e| RecordError::Thread {
                path: path.clone(),
                reason: format!("could not start: {e}"),
            })?;
        Ok(Recorder {
            stop,
            dropped,
            thread: Some(thread),
            path,
        })
    }

    /// Creates a queue of `capacity_frames` frames, starts the recorder on its consumer and
    /// returns the [`RecordTap`] for the RT thread, which reports drops to this recorder.
    ///
    /// # Errors
    /// [`RecordError::Thread`] when the thread cannot be spawned.
    pub fn with_tap(
        recording: WavRecording,
        capacity_frames: usize,
    ) -> Result<(Recorder, RecordTap), RecordError> {
        let channels = recording.channels();
        let (producer, consumer) = RingBuffer::new(capacity_frames.max(1) * channels as usize);
        let recorder = Recorder::spawn(recording, consumer)?;
        let tap = RecordTap::new(producer, channels, recorder.dropped_counter());
        Ok((recorder, tap))
    }

    /// The counter of dropped frames reported in [`RecordSummary::dropped_frames`], for an
    /// RT side that pushes into its own producer.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }

    /// True when the thread has ended on its own (the tap was dropped, or writing failed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Tells the thread to stop, waits while it writes what is still queued and finalises
    /// the file, and returns the summary.
    ///
    /// # Errors
    /// The first [`RecordError`] the thread met, or [`RecordError::Thread`] if it panicked.
    pub fn stop(mut self) -> Result<RecordSummary, RecordError> {
        let mut summary = self.finish()?;
        summary.dropped_frames = self.dropped.load(Ordering::Relaxed);
        Ok(summary)
    }

    fn finish(&mut self) -> Result<RecordSummary, RecordError> {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return Err(RecordError::Thread {
                path: self.path.clone(),
                reason: "was already stopped".to_owned(),
            });
        };
        thread.thread().unpark();
        thread.join().unwrap_or_else(|_| {
            Err(RecordError::Thread {
                path: self.path.clone(),
                reason: "panicked".to_owned(),
            })
        })
    }
}

impl Drop for Recorder {
    /// Stops and finalises the recording if [`Recorder::stop`] was not called; errors are
    /// lost, so prefer `stop`.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.finish();
        }
    }
}

/// The recorder thread's loop.
fn drain(
    mut recording: WavRecording,
    mut consumer: Consumer<f32>,
    stop: &AtomicBool,
    poll: Duration,
) -> Result<RecordSummary, RecordError> {
    loop {
        // Read the flag before looking at the queue: whatever was pushed before `stop()`
        // is then visible below and gets written before we leave.
        let stopping = stop.load(Ordering::Acquire) || consumer.is_abandoned();
        let queued = consumer.slots();
        if queued > 0 {
            let Ok(chunk) = consumer.read_chunk(queued) else {
                continue;
            };
            let (first, second) = chunk.as_slices();
            recording.write(first)?;
            recording.write(second)?;
            chunk.commit_all();
        } else if stopping {
            return recording.finalize();
        } else {
            thread::park_timeout(poll);
        }
    }
}
