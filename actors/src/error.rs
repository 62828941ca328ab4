//! The one error enum of the `actors` crate.
//!
//! Errors that cross the wire travel as [`WireError`] (a kind plus a message) and come back as
//! the same variant on the client, so `nodectl` can map them to exit codes.

use serde::{Deserialize, Serialize};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Decode(String),
    #[error("encode: {0}")]
    Encode(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// One membership change at a time (DESIGN §7); names the running rebalance.
    #[error("{0}")]
    Busy(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("cluster integrity error: {0}")]
    ClusterIntegrity(String),
    #[error("cluster map downgrade refused: have v{have}, got v{got}")]
    Downgrade { have: u64, got: u64 },
    #[error("target offline: {0}")]
    Offline(String),
    #[error("checksum mismatch: {0}")]
    Checksum(String),
    #[error("insufficient space: {0}")]
    NoSpace(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("protocol: {0}")]
    Protocol(String),
    /// An error reported by a peer whose kind we do not know (newer peer).
    #[error("remote: {0}")]
    Remote(String),
    /// A data request must go to another node (a redirect, as the typed client sees it).
    #[error("moved to t[{node}] at {addr}")]
    Moved { node: String, addr: String },
    /// A supervised actor is not running (restarting, or gone for good).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The cluster map changed while a write was in flight: it must be sent again (to the
    /// new owner). Nothing was stored.
    #[error("{0}")]
    MapChanged(String),
}

/// What an error looks like on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub kind: String,
    pub message: String,
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io(_) => "io",
            Error::Decode(_) => "decode",
            Error::Encode(_) => "encode",
            Error::BadRequest(_) => "bad_request",
            Error::NotFound(_) => "not_found",
            Error::Busy(_) => "busy",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::ClusterIntegrity(_) => "cluster_integrity",
            Error::Downgrade { .. } => "downgrade",
            Error::Offline(_) => "offline",
            Error::Checksum(_) => "checksum",
            Error::NoSpace(_) => "no_space",
            Error::Timeout(_) => "timeout",
            Error::Protocol(_) => "protocol",
            Error::Remote(_) => "remote",
            Error::Moved { .. } => "moved",
            Error::Unavailable(_) => "unavailable",
            Error::MapChanged(_) => "map_changed",
        }
    }

    /// The message without the variant's prefix, so it does not double up after a round trip.
    pub fn bare_message(&self) -> String {
        match self {
            Error::Io(e) => e.to_string(),
            Error::Decode(m)
            | Error::Encode(m)
            | Error::BadRequest(m)
            | Error::NotFound(m)
            | Error::Busy(m)
            | Error::Unauthorized(m)
            | Error::Forbidden(m)
            | Error::ClusterIntegrity(m)
            | Error::Offline(m)
            | Error::Checksum(m)
            | Error::NoSpace(m)
            | Error::Timeout(m)
            | Error::Protocol(m)
            | Error::Remote(m)
            | Error::Unavailable(m)
            | Error::MapChanged(m) => m.clone(),
            Error::Downgrade { .. } | Error::Moved { .. } => self.to_string(),
        }
    }

    pub fn to_wire(&self) -> WireError {
        WireError {
            kind: self.kind().to_string(),
            message: self.bare_message(),
        }
    }

    /// Refusals (`nodectl` exit code 3): busy, unauthorized, forbidden.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::Busy(_) | Error::Unauthorized(_) | Error::Forbidden(_)
        )
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Self {
        let m = w.message;
        match w.kind.as_str() {
            "io" => Error::Io(std::io::Error::other(m)),
            "decode" => Error::Decode(m),
            "encode" => Error::Encode(m),
            "bad_request" => Error::BadRequest(m),
            "not_found" => Error::NotFound(m),
            "busy" => Error::Busy(m),
            "unauthorized" => Error::Unauthorized(m),
            "forbidden" => Error::Forbidden(m),
            "cluster_integrity" => Error::ClusterIntegrity(m),
            "offline" => Error::Offline(m),
            "checksum" => Error::Checksum(m),
            "no_space" => Error::NoSpace(m),
            "timeout" => Error::Timeout(m),
            "protocol" => Error::Protocol(m),
            "unavailable" => Error::Unavailable(m),
            "map_changed" => Error::MapChanged(m),
            _ => Error::Remote(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_keeps_kind_and_message() {
        let e = Error::Busy("cluster membership is busy".into());
        let back: Error = e.to_wire().into();
        assert!(matches!(back, Error::Busy(ref m) if m == "cluster membership is busy"));
        assert!(back.is_refusal());
        let unknown: Error = WireError {
            kind: "from_the_future".into(),
            message: "x".into(),
        }
        .into();
        assert!(matches!(unknown, Error::Remote(_)));
    }
}
