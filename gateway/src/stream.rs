//! Object bodies between HTTP and the typed client, in bounded chunks so that memory stays flat
//! whatever the object size (DESIGN §4, §13).
//!
//! PUT: the HTTP body becomes an `AsyncRead` ([`Md5Reader`]) that is read whole or sent in
//! 1 MiB frames; the MD5 is computed on the way and checked against `Content-MD5` *before* the
//! last byte is handed over, so a wrong digest makes the put fail and nothing is stored.
//! GET: see [`crate::data::body_stream`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::Stream;
use md5::{Digest, Md5};
use tokio::io::{AsyncRead, ReadBuf};

/// Reads exactly `size` bytes from `inner`, computing their MD5; when `expect` is set, the read
/// that would complete the body fails instead if the digest differs.
pub struct Md5Reader<R> {
    inner: R,
    size: u64,
    read: u64,
    md5: Md5,
    expect: Option<[u8; 16]>,
    digest: Option<[u8; 16]>,
}

impl<R> Md5Reader<R> {
    pub fn new(inner: R, size: u64, expect: Option<[u8; 16]>) -> Self {
        Md5Reader {
            inner,
            size,
            read: 0,
            md5: Md5::new(),
            expect,
            // An empty body is never read: its digest is known now.
            digest: (size == 0).then(|| Md5::new().finalize().into()),
        }
    }

    /// For an empty body, which no read can fail: whether `expect` is its digest.
    pub fn empty_body_mismatch(&self) -> Option<([u8; 16], [u8; 16])> {
        match (self.size, self.expect, self.digest) {
            (0, Some(e), Some(d)) if e != d => Some((e, d)),
            _ => None,
        }
    }

    /// Bytes handed out so far (0: a failed request can be retried with the same body).
    pub fn consumed(&self) -> u64 {
        self.read
    }

    /// The MD5 of the whole body, once it has all been read.
    pub fn digest(&self) -> Option<[u8; 16]> {
        self.digest
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Md5Reader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let left = this.size - this.read;
        if left == 0 {
            return Poll::Ready(Ok(()));
        }
        // Never read past the declared size: the next request on the connection follows it.
        let want = (buf.remaining() as u64).min(left) as usize;
        let mut sub = ReadBuf::new(buf.initialize_unfilled_to(want));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut sub))?;
        let n = sub.filled().len();
        if n == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                ClientBody(format!(
                    "the request body ended after {} of {} bytes (Content-Length)",
                    this.read, this.size
                )),
            )));
        }
        this.md5.update(sub.filled());
        if this.read + n as u64 == this.size {
            let d: [u8; 16] = this.md5.clone().finalize().into();
            this.digest = Some(d);
            if let Some(e) = this.expect
                && e != d
            {
                // The bytes of this read are never handed over: the put stays incomplete.
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    BadDigest {
                        sent: e,
                        computed: d,
                    },
                )));
            }
        }
        buf.advance(n);
        this.read += n as u64;
        Poll::Ready(Ok(()))
    }
}

/// The error an [`Md5Reader`] fails with on a digest mismatch.
#[derive(Debug, thiserror::Error)]
#[error("Content-MD5 mismatch")]
pub struct BadDigest {
    pub sent: [u8; 16],
    pub computed: [u8; 16],
}

/// An error reading the client's request body (cut short, a chunk signature that does not
/// verify): the client's fault, not the cluster's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientBody(pub String);

/// Whether a cluster error came from reading the client's body, and why.
pub fn client_body(e: &shoal_actors::Error) -> Option<String> {
    if let shoal_actors::Error::Io(io) = e
        && let Some(b) = io.get_ref().and_then(|r| r.downcast_ref::<ClientBody>())
    {
        return Some(b.0.clone());
    }
    None
}

/// Whether a cluster error came from a reader's digest check, and which digests.
pub fn bad_digest(e: &shoal_actors::Error) -> Option<(String, String)> {
    if let shoal_actors::Error::Io(io) = e
        && let Some(b) = io.get_ref().and_then(|r| r.downcast_ref::<BadDigest>())
    {
        return Some((hex(&b.sent), hex(&b.computed)));
    }
    None
}

pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

pub fn unhex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Decodes a `Content-MD5` header (base64 of the 16-byte digest).
pub fn content_md5(v: &str) -> Option<[u8; 16]> {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .ok()?;
    b.try_into().ok()
}

/// An `AsyncRead` over a body stream.
pub fn reader<S, E>(s: S) -> impl AsyncRead + Unpin + Send
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    use futures::TryStreamExt;
    tokio_util::io::StreamReader::new(s.map_err(|e| io::Error::other(ClientBody(e.to_string()))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn md5_reader_computes_and_checks() {
        let data = b"hello world".to_vec();
        let good: [u8; 16] = Md5::digest(&data).into();
        let mut r = Md5Reader::new(&data[..], data.len() as u64, Some(good));
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, data);
        assert_eq!(r.digest(), Some(good));

        // A wrong digest fails the read that completes the body: the consumer never has it all.
        let mut r = Md5Reader::new(&data[..], data.len() as u64, Some([0u8; 16]));
        let mut buf = vec![0u8; data.len()];
        assert!(r.read_exact(&mut buf).await.is_err());
        assert_eq!(r.consumed(), 0);
    }

    #[tokio::test]
    async fn md5_reader_reports_short_bodies() {
        let data = b"short".to_vec();
        let mut r = Md5Reader::new(&data[..], 10, None);
        let mut buf = vec![0u8; 10];
        let e = r.read_exact(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn md5_reader_stops_at_size() {
        let data = b"0123456789".to_vec();
        let mut r = Md5Reader::new(&data[..], 4, None);
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"0123");
    }

    #[test]
    fn digests() {
        assert_eq!(
            content_md5("XUFAKrxLKna5cZ2REBfFkg=="),
            Some(Md5::digest(b"hello").into())
        );
        assert_eq!(content_md5("not base64"), None);
        assert_eq!(content_md5("aGVsbG8="), None);
        let h = hex(&[0xab; 16]);
        assert_eq!(unhex16(&h), Some([0xab; 16]));
        assert_eq!(unhex16("zz"), None);
        assert_eq!(unhex16(&"g".repeat(32)), None);
    }
}
