//! [`Rewind`]: an I/O stream with some bytes put back in front of it.
//!
//! A node's listener reads the first bytes of a connection to tell a MessagePack frame (a u32
//! big-endian length whose first byte is 0) from an HTTP request line (a letter). Those bytes are
//! gone from the socket; the HTTP side must still see them, so the listener hands the connection
//! over wrapped in a `Rewind` that replays them before reading on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a sniffed first byte says about a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// A MessagePack frame: its u32 big-endian length starts with 0 (frames are < 16 MiB).
    MsgPack,
    /// An HTTP/1.1 request line starts with a method: an upper-case ASCII letter.
    Http,
    /// Neither: close the connection.
    Unknown,
}

/// Classifies a connection by its first byte (DESIGN §13).
pub fn sniff(first: u8) -> Sniffed {
    match first {
        0 => Sniffed::MsgPack,
        b'A'..=b'Z' => Sniffed::Http,
        _ => Sniffed::Unknown,
    }
}

/// `io` with `prefix` read first. Writes go straight through.
pub struct Rewind<IO> {
    /// Bytes already taken off `io` that the reader must still see.
    prefix: Bytes,
    io: IO,
}

impl<IO> Rewind<IO> {
    pub fn new(prefix: impl Into<Bytes>, io: IO) -> Self {
        Rewind {
            prefix: prefix.into(),
            io,
        }
    }

    /// The underlying stream, once the prefix is no longer needed.
    pub fn into_inner(self) -> (Bytes, IO) {
        (self.prefix, self.io)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replays_the_prefix_then_reads_on() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"T / HTTP/1.1\r\n").await.unwrap();
        drop(a);
        let mut r = Rewind::new(Bytes::from_static(b"GE"), b);
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn small_reads_split_the_prefix() {
        let (a, b) = tokio::io::duplex(64);
        drop(a);
        let mut r = Rewind::new(Bytes::from_static(b"abcdef"), b);
        let mut two = [0u8; 2];
        r.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"ab");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"cdef");
    }

    #[tokio::test]
    async fn writes_pass_through() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut r = Rewind::new(Bytes::new(), b);
        r.write_all(b"pong").await.unwrap();
        let mut got = [0u8; 4];
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(0), Sniffed::MsgPack);
        for m in [b'G', b'P', b'H', b'D', b'O'] {
            assert_eq!(sniff(m), Sniffed::Http);
        }
        assert_eq!(sniff(0x16), Sniffed::Unknown); // a TLS handshake
        assert_eq!(sniff(b'g'), Sniffed::Unknown);
    }
}
