//! The net thread's foundation: one epoll loop and the file descriptors it waits on
//! (net thread).
//!
//! Design: like PipeWire's `spa_loop`, every syscall the net thread blocks in goes through
//! one small abstraction, [`EventLoop`], so the thread has exactly one place where it
//! sleeps. Everything it waits for is a file descriptor registered there with a `u64`
//! token: nonblocking TCP sockets ([`socket`]), a [`Waker`] (eventfd) that RT threads
//! signal after queueing audio, and [`Timer`]s (timerfd) for handshake timeouts, liveness,
//! METADATA cadence and reconnect backoff. No async runtime: the hub and peer roles built
//! on top of this dispatch on the tokens themselves.
//!
//! Linux only (epoll, eventfd, timerfd).
#![cfg(target_os = "linux")]

pub mod conn;
pub mod event_loop;
pub mod log_limit;
pub mod seq;
pub mod socket;
pub mod stamp;
pub mod timer;
pub mod waker;
pub mod write_queue;

pub use event_loop::{Event, EventLoop, Events, Interest};
pub use socket::{AppliedTuning, SocketTuning};
pub use timer::Timer;
pub use waker::Waker;
pub use write_queue::{QueueFull, WriteQueue, WriteQueueConfig};
