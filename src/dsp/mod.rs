//! Signal processing that runs on the RT audio thread: meters, sample conversion,
//! rate ratios, the jitter buffer and the mixer.
//!
//! Everything here follows the RT rules of the design: state and buffers are allocated by
//! constructors on the main thread, and the per-period calls neither allocate, lock, log
//! nor panic on the data they are given.

pub mod convert;
mod fir;
pub mod jitter;
pub mod meter;
pub mod mixer;
pub mod playout;
pub mod quantile;
pub mod ratio;
pub mod resampler;
pub mod slope;
