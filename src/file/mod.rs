//! WAV/RIFF files: preloaded sources to play and recordings to write.
//!
//! Which thread runs what:
//!
//! | item | thread |
//! |------|--------|
//! | [`decode`], [`map_channels`], [`resample`], [`Clip::load`] | main thread, before RT starts (they allocate) |
//! | [`ClipReader`] | RT thread: one period at a time, allocation-free |
//! | [`RecordTap`] | RT thread: pushes periods into the recording queue, never blocks |
//! | [`Recorder`], [`WavRecording`] | the recorder thread: drains the queue to disk |
//!
//! A file source is loaded whole into memory in the engine's rate and channel count, so
//! the RT thread never touches the disk; a recording is the same path reversed through an
//! rtrb queue.

mod channel_map;
mod clip;
mod clip_reader;
mod decode;
mod record;
mod recorder;
mod resample;

pub use channel_map::map_channels;
pub use clip::Clip;
pub use clip_reader::ClipReader;
pub use decode::{LoadError, WavInfo, WavSampleFormat, decode};
pub use record::{RecordError, RecordFormat, RecordSummary, WavRecording};
pub use recorder::{RecordTap, Recorder};
pub use resample::{ResampleError, resample};
