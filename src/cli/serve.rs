//! Running a networked role until Ctrl-C/SIGTERM (main thread): start the metrics server,
//! wait for a signal or for the role to end by itself, stop in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::CliError;
use super::rt_session::{catch_signals, interrupted, set_mask};
use crate::metrics::{MetricsHandle, MetricsServer, SnapshotCell};
use crate::net::stamp::LinePrefix;

/// Blocks SIGINT/SIGTERM so that the threads about to be started inherit the block (the
/// main thread unblocks them in [`wait`]). Call before starting a role.
pub fn prepare_signals() {
    catch_signals();
}

/// Starts the metrics HTTP thread on `addr` serving `cell`, and says where.
///
/// # Errors
/// [`CliError::Usage`] naming `--metrics` when the address cannot be bound.
pub fn start_metrics(
    addr: Option<SocketAddr>,
    cell: Arc<SnapshotCell>,
) -> Result<Option<MetricsHandle>, CliError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let handle = MetricsServer::bind(addr, cell)
        .and_then(MetricsServer::spawn)
        .map_err(|e| CliError::Usage(format!("--metrics {addr}: {e}")))?;
    let at = LinePrefix::now();
    eprintln!(
        "{at}metrics:   http://{}/service/mixeradminclient?getMetrics",
        handle.local_addr()
    );
    eprintln!("{at}dashboard: http://{}/", handle.local_addr());
    Ok(Some(handle))
}

/// Polls every 100 ms until a signal arrives (returns `Ok`) or `ended` reports that the
/// role stopped by itself (returns `Err` with its reason). `tick` runs at each poll.
///
/// # Errors
/// The role's own reason for ending.
pub fn wait(mut ended: impl FnMut() -> bool, mut tick: impl FnMut()) -> Result<(), ()> {
    set_mask(libc::SIG_UNBLOCK);
    loop {
        if interrupted().is_some() {
            return Ok(());
        }
        if ended() {
            return Err(());
        }
        tick();
        std::thread::sleep(Duration::from_millis(100));
    }
}
