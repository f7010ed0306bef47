//! Realtime threads: spawning, priority, allocation accounting.

pub mod alloc_count;
pub mod clock;
pub mod driver;
pub mod thread;
pub mod wakeup;
