//! izyrt: a hard-realtime, low-latency networked audio engine.
//!
//! The source tree says which thread code runs on:
//!
//! | folder    | what it is                                   | thread |
//! |-----------|----------------------------------------------|--------|
//! | `wire`    | the streamproto1 codec                       | net thread (and tools) |
//! | `device`  | sound devices: ALSA, `virtual`, native JACK (`jack/callback.rs` runs on JACK's process thread, and there runs the RT thread's period, lent to it: `jack/lend.rs`; its shutdown callback, on whichever JACK thread libjack ends, first makes that thread immune to libjack's cancellation: `jack/cancel.rs`) | RT audio thread |
//! | `dsp`     | meters, sample conversion, resampling, quantiles (`quantile`, also the glitch detector's), the jitter ring, `playout` (clock lock, clock estimate, latency policy on the device's time, concealment and the rejoin in phase after a gap), `slope` (a stream's clock from block summaries, steps taken out; also the hub's `drift`) | RT audio thread (and the RT mixer thread) |
//! | `rt`      | spawning RT threads (`thread`; their promotion, `promote`, on the new thread; memory locking, `memory`, and their priority against a device plugin's threads, `plugin_threads`, on the main thread), wakeup histograms | RT audio thread |
//! | `net`     | epoll loop, sockets                          | net thread |
//! | `metrics` | snapshot publication, the HTTP server (one epoll loop), its routes and the dashboard page; the `incomingAudioTracks` entry the hub and clients build (`tracks.rs`, net or main thread) | HTTP thread |
//! | `measure` | round trips from click trains, glitches in a recorded tone | main thread (after the fact) |
//! | `file`    | WAV/RIFF reading and writing                 | main thread (prepares buffers) |
//! | `hub`     | the mixer hub: `mixer_thread` and `drift` (RT), `net_thread`, `users` (net) | RT mixer / net thread |
//! | `client`  | peer, monitor and source: `audio_thread` (RT), `hub_input` (its report written by the net thread, its loop run by the RT capture), `source` (a file paced by an RT clock), `net_thread`, `status` (net) | RT audio / net thread |
//! | `config`  | common options, `--config` JSON, `IZYRT_*`   | main thread |
//! | `cli`     | the command line                             | main thread |
//!
//! See `README.md` for how to run it and `../shared/DESIGN.md` for the design.
#![deny(missing_docs)]

pub mod cli;
pub mod client;
pub mod config;
pub mod device;
pub mod dsp;
pub mod file;
pub mod hub;
pub mod measure;
pub mod metrics;
pub mod net;
pub mod rt;
pub mod wire;
