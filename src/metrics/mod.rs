//! Metrics: snapshot publication and the HTTP server (HTTP thread).
//!
//! Producers (the net thread, the main thread; never an RT thread) build the
//! `aggregatedStatesSnapshot` JSON object and [`SnapshotCell::publish`] it; the HTTP
//! thread ([`MetricsServer`]) serves the latest one as JSON (getMetrics), as Prometheus
//! text ([`render_prometheus`]) and through a small dashboard page.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use izyrt::metrics::{MetricsServer, SnapshotCell};
//!
//! let cell = Arc::new(SnapshotCell::default());
//! let server = MetricsServer::bind("127.0.0.1:0", Arc::clone(&cell)).unwrap();
//! let handle = server.spawn().unwrap();
//! assert!(handle.local_addr().ip().is_loopback());
//! handle.stop();
//! ```

mod http;
mod page;
mod prometheus;
mod routes;
mod server;
mod snapshot;
mod tracks;

pub use http::{MetricsHandle, MetricsServer, ServerLimits};
pub use prometheus::render_prometheus;
pub use routes::{Request, Response, route};
pub use snapshot::{SNAPSHOT_KEYS, SnapshotCell, default_snapshot};
pub use tracks::IncomingTrack;
