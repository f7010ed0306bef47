//! Realtime threads: spawning, priority, allocation accounting.

pub mod alloc_count;
pub mod clock;
pub mod denormals;
pub mod driver;
pub mod memory;
pub mod pipe;
pub mod plugin_threads;
pub mod promote;
pub mod runner;
pub mod thread;
pub mod wakeup;
