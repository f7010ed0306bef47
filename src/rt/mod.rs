//! Realtime threads: spawning, priority, allocation accounting.

pub mod alloc_count;
