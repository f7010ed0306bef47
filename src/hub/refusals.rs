//! Connections the hub refused before they joined, counted by reason (net thread).
//!
//! Design: a flood is invisible unless it is counted. Every connection that is closed
//! before its WELCOME (an ERROR sent by the hub, an eviction from the handshake budget, an
//! accept the process could not hold) adds one to [`Refusals::total`] and to one reason.
//! The table is published as `refusedConnections` in getMetrics; plain counters, copied
//! into each report.

use serde::Serialize;

use crate::wire::ErrorCode;

/// Why a connection was refused before it joined.
///
/// # Example
/// ```
/// use izyrt::hub::refusals::{Refusals, Refusal};
/// let mut r = Refusals::default();
/// r.count(Refusal::PendingPerAddress);
/// assert_eq!((r.total, r.pending_per_address), (1, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Too many connections from its address were awaiting HELLO: the oldest was evicted.
    PendingPerAddress,
    /// Too many connections in all were awaiting HELLO: the oldest was evicted.
    PendingTotal,
    /// The accept failed (e.g. out of file descriptors); the connection was closed at once.
    AcceptFailed,
    /// The hub sent this ERROR code before WELCOME.
    Error(ErrorCode),
}

impl Refusal {
    /// The ERROR code the client is sent (an eviction is a handshake timeout to it).
    ///
    /// # Example
    /// ```
    /// use izyrt::{hub::refusals::Refusal, wire::ErrorCode};
    /// assert_eq!(Refusal::PendingTotal.code(), ErrorCode::HelloTimeout);
    /// ```
    pub fn code(self) -> ErrorCode {
        match self {
            Refusal::PendingPerAddress | Refusal::PendingTotal => ErrorCode::HelloTimeout,
            Refusal::AcceptFailed => ErrorCode::Internal,
            Refusal::Error(c) => c,
        }
    }
}

/// Refused connections by reason: the `refusedConnections` object of getMetrics.
///
/// # Example
/// ```
/// use izyrt::{hub::refusals::{Refusal, Refusals}, wire::ErrorCode};
/// let mut r = Refusals::default();
/// r.count(Refusal::Error(ErrorCode::BadMagic));
/// r.count(Refusal::Error(ErrorCode::HubFull));
/// let v = serde_json::to_value(r).unwrap();
/// assert_eq!((v["total"].as_u64(), v["protocolError"].as_u64(), v["hubFull"].as_u64()),
///            (Some(2), Some(1), Some(1)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusals {
    /// Every refusal.
    pub total: u64,
    /// Evicted: too many awaiting HELLO from one address.
    pub pending_per_address: u64,
    /// Evicted: too many awaiting HELLO in all.
    pub pending_total: u64,
    /// No HELLO within the handshake deadline.
    pub hello_timeout: u64,
    /// `--max-clients` joined clients already.
    pub hub_full: u64,
    /// Wrong or missing token.
    pub unauthorized: u64,
    /// A HELLO this hub cannot serve.
    pub format_unsupported: u64,
    /// A malformed frame or a frame other than HELLO first.
    pub protocol_error: u64,
    /// The hub failed internally (mixer queue full, slot not built).
    pub internal: u64,
    /// The accept itself failed (out of file descriptors).
    pub accept_failed: u64,
}

impl Refusals {
    /// Counts one refusal.
    ///
    /// # Example
    /// See [`Refusals`].
    pub fn count(&mut self, why: Refusal) {
        self.total += 1;
        let slot = match why {
            Refusal::PendingPerAddress => &mut self.pending_per_address,
            Refusal::PendingTotal => &mut self.pending_total,
            Refusal::AcceptFailed => &mut self.accept_failed,
            Refusal::Error(ErrorCode::HelloTimeout) => &mut self.hello_timeout,
            Refusal::Error(ErrorCode::HubFull) => &mut self.hub_full,
            Refusal::Error(ErrorCode::Unauthorized) => &mut self.unauthorized,
            Refusal::Error(ErrorCode::FormatUnsupported) => &mut self.format_unsupported,
            Refusal::Error(ErrorCode::Internal) => &mut self.internal,
            Refusal::Error(_) => &mut self.protocol_error,
        };
        *slot += 1;
    }
}
