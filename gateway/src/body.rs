//! The response body type shared by both APIs: small bodies in one piece, object bodies as a
//! stream of bounded chunks.

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body the gateway sends.
pub type GwBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn empty() -> GwBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn full(b: impl Into<Bytes>) -> GwBody {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body read from `s`; an error from `s` aborts the response (the connection is closed, so
/// the client sees a truncated body, never a silently short one).
pub fn stream<S>(s: S) -> GwBody
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    StreamBody::new(
        s.map_ok(hyper::body::Frame::data)
            .map_err(|e| Box::new(e) as BoxError),
    )
    .boxed_unsync()
}

/// An s3s body as ours.
pub fn from_s3s(b: s3s::Body) -> GwBody {
    b.boxed_unsync()
}
