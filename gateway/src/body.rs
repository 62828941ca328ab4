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

/// Every request body the gateway reads. Its error is a concrete type: a boxed error inside
/// the conversions to boxed errors (s3s, `Limited`) defeats the `Send` proof of the connection
/// future (higher-ranked lifetimes in async code).
pub type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A request body for the handlers. For a request that sent `Expect: 100-continue`, reading
/// starts at once: hyper answers `100 Continue` when the body is first polled, and a client
/// that waited in vain (botocore gives up after one second) sends the body anyway — a `100`
/// arriving after that is taken for the final answer and the real one for garbage. Reading
/// ahead is bounded by [`EAGER_FRAMES`] frames.
pub fn request_body(b: hyper::body::Incoming, expect_continue: bool) -> ReqBody {
    if !expect_continue {
        return b.map_err(std::io::Error::other).boxed_unsync();
    }
    let hint = http_body::Body::size_hint(&b);
    let (tx, rx) = tokio::sync::mpsc::channel(EAGER_FRAMES);
    tokio::spawn(async move {
        let mut b = b;
        while let Some(f) = b.frame().await {
            let failed = f.is_err();
            if tx.send(f.map_err(std::io::Error::other)).await.is_err() || failed {
                break;
            }
        }
    });
    Eager {
        rx,
        left: hint.exact(),
    }
    .boxed_unsync()
}

/// Frames read ahead of a handler, at most.
const EAGER_FRAMES: usize = 2;

struct Eager {
    rx: tokio::sync::mpsc::Receiver<Result<hyper::body::Frame<Bytes>, std::io::Error>>,
    /// Bytes still to come when the length is known (kept so `Content-Length` checks work).
    left: Option<u64>,
}

impl http_body::Body for Eager {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        let r = self.rx.poll_recv(cx);
        if let std::task::Poll::Ready(Some(Ok(f))) = &r
            && let (Some(d), Some(left)) = (f.data_ref(), self.left)
        {
            self.left = Some(left.saturating_sub(d.len() as u64));
        }
        r
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.left {
            Some(n) => http_body::SizeHint::with_exact(n),
            None => http_body::SizeHint::default(),
        }
    }
}
