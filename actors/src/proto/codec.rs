//! Frames and connections (DESIGN §4): length-delimited frames (u32 big-endian length, bounded)
//! carrying MessagePack [`Envelope`]s with named fields. One request/response exchange at a time
//! per connection, matched by correlation ID; object bodies follow their header as bounded
//! [`Msg::Chunk`] frames so memory stays flat whatever the object size.

use bytes::{Buf, Bytes};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::frame::FrameCodec;

use super::msg::{Msg, Rpc};
use crate::error::{Error, Result};
use crate::types::smap::NodeId;

/// Protocol version spoken by this build.
pub const PROTO_VERSION: u16 = 2;
/// Default upper bound for one frame; larger frames are refused before any allocation.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;
/// Object bodies travel in chunks of at most this many bytes.
pub const CHUNK_SIZE: usize = 1 << 20;
/// Chunks streamed to a receiver that writes them (a put's body from a reader or from memory,
/// a rebalanced file) are this large: it holds about two of them per body under way (the frame
/// arriving, the one being written), so this sets the memory that large puts and rebalances
/// need, while frames this size already cost the wire little. A get's body goes in frames of
/// [`CHUNK_SIZE`] (see [`Conn::send_file`]).
pub const STREAM_CHUNK: usize = 128 << 10;
/// Chunks at least this large are written to the socket from their own buffer, after their
/// frame's head, instead of copied into the connection's write buffer first.
const DIRECT_CHUNK: usize = 16 << 10;

/// Every frame's payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub proto: u16,
    /// Sender: a node ID, or `cli` for clients.
    pub from: NodeId,
    /// Correlation ID: a reply carries the request's.
    pub corr: u64,
    /// Bearer token (JWT) when auth is on.
    #[serde(default)]
    pub token: Option<String>,
    pub body: Msg,
}

/// Encodes an envelope with named fields (so newer peers can add fields).
pub fn encode(env: &Envelope) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(env).map_err(|e| Error::Encode(e.to_string()))
}

/// Decodes and checks an envelope. Never panics, whatever the bytes.
pub fn decode(buf: &[u8]) -> Result<Envelope> {
    let env: Envelope = rmp_serde::from_slice(buf).map_err(|e| Error::Decode(e.to_string()))?;
    if env.proto != PROTO_VERSION {
        return Err(Error::Protocol(format!(
            "unsupported protocol version {} (this node speaks {PROTO_VERSION})",
            env.proto
        )));
    }
    Ok(env)
}

/// A body chunk on its way out, borrowing its bytes: encoded straight into the connection's
/// write buffer (the same bytes an [`Envelope`] with [`Msg::Chunk`] encodes to, so receivers
/// see no difference), instead of copied into a `Vec`, encoded into another and copied again.
#[derive(Serialize)]
pub struct ChunkOut<'a> {
    proto: u16,
    from: &'a NodeId,
    corr: u64,
    token: Option<&'a str>,
    body: ChunkBody<'a>,
}

/// Mirrors [`Msg`]'s first variants so `Chunk` has its name and its index.
#[derive(Serialize)]
#[allow(dead_code)]
enum ChunkBody<'a> {
    Error,
    Redirect,
    Chunk(#[serde(with = "serde_bytes")] &'a [u8]),
}

impl tokio_util::codec::Encoder<ChunkOut<'_>> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: ChunkOut<'_>, dst: &mut bytes::BytesMut) -> std::io::Result<()> {
        use bytes::BufMut;
        let start = dst.len();
        dst.reserve(4 + item.body.len() + 64);
        dst.put_u32(0);
        let res = rmp_serde::encode::write_named(&mut (&mut *dst).writer(), &item);
        let len = dst.len() - start - 4;
        if let Err(e) = res {
            dst.truncate(start);
            return Err(std::io::Error::other(e));
        }
        if len > self.max() {
            dst.truncate(start);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "frame of {len} bytes exceeds the limit of {} bytes",
                    self.max()
                ),
            ));
        }
        dst[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }
}

impl ChunkBody<'_> {
    fn len(&self) -> usize {
        match self {
            ChunkBody::Chunk(b) => b.len(),
            _ => 0,
        }
    }
}

/// The head of a chunk frame of `len` bytes of data: the u32 frame length and the envelope up
/// to and including the data's `bin` marker. Head then data are byte for byte the frame
/// [`ChunkOut`] encodes to, so the data can go out from its own buffer.
fn chunk_head(from: &NodeId, corr: u64, len: usize, max: usize) -> Result<Vec<u8>> {
    let empty = ChunkOut {
        proto: PROTO_VERSION,
        from,
        corr,
        token: None,
        body: ChunkBody::Chunk(&[]),
    };
    let mut head = vec![0u8; 4];
    rmp_serde::encode::write_named(&mut head, &empty).map_err(|e| Error::Encode(e.to_string()))?;
    // The data is the envelope's last value: an empty one ends it as `bin8 0`, which becomes
    // the real length in MessagePack's smallest form.
    if !head.ends_with(&[0xc4, 0x00]) {
        return Err(Error::Encode("unexpected chunk encoding".into()));
    }
    head.truncate(head.len() - 2);
    match u8::try_from(len) {
        Ok(n) => head.extend_from_slice(&[0xc4, n]),
        Err(_) => match u16::try_from(len) {
            Ok(n) => {
                head.push(0xc5);
                head.extend_from_slice(&n.to_be_bytes());
            }
            Err(_) => {
                let n = u32::try_from(len)
                    .map_err(|_| Error::Encode(format!("a chunk of {len} bytes")))?;
                head.push(0xc6);
                head.extend_from_slice(&n.to_be_bytes());
            }
        },
    }
    let frame = head.len() - 4 + len;
    if frame > max {
        return Err(Error::Encode(format!(
            "frame of {frame} bytes exceeds the limit of {max} bytes"
        )));
    }
    head[..4].copy_from_slice(&(frame as u32).to_be_bytes());
    Ok(head)
}

/// What a receiver reads of a chunk frame: the version and the data, borrowed from the frame.
/// Any other message fails to decode as this and is decoded whole instead.
#[derive(Deserialize)]
struct ChunkIn<'a> {
    proto: u16,
    #[serde(borrow)]
    body: ChunkBodyIn<'a>,
}

/// Mirrors [`Msg`]'s first variants, as [`ChunkBody`] does.
#[derive(Deserialize)]
#[allow(dead_code)]
enum ChunkBodyIn<'a> {
    Error(serde::de::IgnoredAny),
    Redirect(serde::de::IgnoredAny),
    Chunk(&'a [u8]),
}

/// What the first bytes of a frame say about it, for reading a chunk's data straight into its
/// destination.
#[derive(Debug, PartialEq)]
enum ChunkAt {
    /// A chunk whose data is the frame's last `len` bytes, after `head` bytes of envelope.
    Data { head: usize, len: usize },
    /// Not enough of the frame has arrived to tell.
    More,
    /// Anything else (another message, another version, bad bytes): decoded whole instead.
    Other,
}

/// The longest envelope head before a chunk's data that is looked for; a longer one (a long
/// token) is decoded the ordinary way.
const CHUNK_HEAD_MAX: usize = 1024;

// The smallest frame limit a config may set holds a body frame and its head.
const _: () = assert!(CHUNK_SIZE + CHUNK_HEAD_MAX <= crate::types::config::MIN_MAX_FRAME);

/// Reads the head of a chunk frame of `frame` bytes from its first bytes, `prefix`: the
/// envelope's fields as [`ChunkOut`] writes them, `body` last and holding the data. Whatever
/// does not follow that shape is `Other`, so the full decoder (and its errors) handles it.
fn chunk_at(frame: usize, prefix: &[u8]) -> ChunkAt {
    fn walk(mut rd: &[u8]) -> Option<(usize, usize)> {
        use rmp::decode::{read_bin_len, read_int, read_map_len, read_str_from_slice};
        let start = rd.len();
        let fields = read_map_len(&mut rd).ok()?;
        let mut proto = None;
        for i in 0..fields {
            let (key, rest) = read_str_from_slice(rd).ok()?;
            rd = rest;
            match key {
                "proto" => proto = Some(read_int::<u16, _>(&mut rd).ok()?),
                "from" => rd = read_str_from_slice(rd).ok()?.1,
                "corr" => {
                    read_int::<u64, _>(&mut rd).ok()?;
                }
                "token" if rd.first() == Some(&0xc0) => rd = &rd[1..],
                "token" => rd = read_str_from_slice(rd).ok()?.1,
                "body" if i + 1 == fields && proto == Some(PROTO_VERSION) => {
                    if read_map_len(&mut rd).ok()? != 1 {
                        return None;
                    }
                    let (variant, rest) = read_str_from_slice(rd).ok()?;
                    rd = rest;
                    if variant != "Chunk" {
                        return None;
                    }
                    let len = read_bin_len(&mut rd).ok()? as usize;
                    return Some((start - rd.len(), len));
                }
                _ => return None,
            }
        }
        None
    }
    match walk(prefix) {
        Some((head, len)) if head.checked_add(len) == Some(frame) => ChunkAt::Data { head, len },
        Some(_) => ChunkAt::Other,
        // Cut short, or not a chunk: only more bytes can tell which.
        None if prefix.len() < frame.min(CHUNK_HEAD_MAX) => ChunkAt::More,
        None => ChunkAt::Other,
    }
}

/// [`chunk_at`] for a frame from its first bytes, length included (`head` counts it too): a
/// frame too small to be worth reading apart, or too large to be valid, is `Other`.
fn frame_at(first: &[u8], max: usize) -> ChunkAt {
    let Some(len) = first.first_chunk::<4>() else {
        return ChunkAt::More;
    };
    let frame = u32::from_be_bytes(*len) as usize;
    if !(DIRECT_CHUNK..=max).contains(&frame) {
        return ChunkAt::Other;
    }
    match chunk_at(frame, &first[4..first.len().min(4 + frame)]) {
        ChunkAt::Data { head, len } => ChunkAt::Data {
            head: 4 + head,
            len,
        },
        other => other,
    }
}

/// A duplicate of a connection's socket, for sends off the runtime.
#[derive(Clone)]
struct SockFd(std::sync::Arc<std::os::fd::OwnedFd>);

impl std::os::fd::AsRawFd for SockFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// A file being sent as chunk frames by `sendfile`: where it is, where the frame under way
/// ends, and that frame's head with how much of it went out.
struct FileOut {
    file: std::sync::Arc<std::fs::File>,
    at: u64,
    end: u64,
    frame_end: u64,
    head: Vec<u8>,
    head_sent: usize,
    me: NodeId,
    corr: u64,
    max: usize,
    /// Data bytes per chunk frame.
    frame: usize,
}

impl FileOut {
    /// Sends what the socket takes without waiting; `Ok(true)` once everything went out.
    fn step(&mut self, sock: &std::os::fd::OwnedFd) -> Result<bool> {
        use rustix::io::Errno;
        loop {
            if self.at == self.frame_end {
                if self.at == self.end {
                    return Ok(true);
                }
                let n = (self.end - self.at).min(self.frame as u64) as usize;
                self.head = chunk_head(&self.me, self.corr, n, self.max)?;
                self.head_sent = 0;
                self.frame_end = self.at + n as u64;
            }
            let res = if self.head_sent < self.head.len() {
                // More follows at once: let TCP put the head in one segment with its data.
                rustix::net::send(
                    sock,
                    &self.head[self.head_sent..],
                    rustix::net::SendFlags::MORE,
                )
                .map(|n| self.head_sent += n)
            } else {
                let want = (self.frame_end - self.at) as usize;
                match rustix::fs::sendfile(sock, &*self.file, Some(&mut self.at), want) {
                    Ok(0) => {
                        return Err(Error::Io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the object's file ended before its data did",
                        )));
                    }
                    other => other.map(drop),
                }
            };
            match res {
                Ok(()) | Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(false),
                Err(e) => return Err(Error::Io(e.into())),
            }
        }
    }
}

/// Writes `head` then `data` with vectored writes: one system call for both, no copy of `data`.
async fn write_both(
    stream: &mut TcpStream,
    head: &mut bytes::BytesMut,
    data: &[u8],
) -> std::io::Result<()> {
    use bytes::Buf;
    let mut rest = data;
    while !head.is_empty() || !rest.is_empty() {
        let bufs = [std::io::IoSlice::new(head), std::io::IoSlice::new(rest)];
        let n = stream.write_vectored(&bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head.advance(from_head);
        rest = &rest[n - from_head..];
    }
    Ok(())
}

/// A chunk of `len` bytes must fit in the `left` bytes its body still announces.
fn check_within(len: usize, left: u64) -> Result<()> {
    match (len as u64).checked_sub(left) {
        Some(over) if over > 0 => Err(Error::Protocol(format!(
            "body overruns its declared size by {over} bytes"
        ))),
        _ => Ok(()),
    }
}

pub fn codec(max_frame: usize) -> FrameCodec {
    FrameCodec::new(max_frame)
}

/// Runs one step of a body transfer under the per-frame time limit.
async fn timed<T>(
    limit: Option<std::time::Duration>,
    step: impl std::future::Future<Output = std::io::Result<T>>,
    stalled: impl FnOnce() -> Error,
) -> Result<std::io::Result<T>> {
    match limit {
        // The error is built only when it happens (this runs for every frame of a body).
        Some(t) => tokio::time::timeout(t, step).await.map_err(|_| stalled()),
        None => Ok(step.await),
    }
}

fn stalled(what: &str, peer: &str, limit: Option<std::time::Duration>) -> Error {
    Error::Timeout(format!(
        "{what}: {peer} sent nothing for {:?}",
        limit.unwrap_or_default()
    ))
}

/// A framed connection with a sender identity and an optional token.
pub struct Conn {
    framed: Framed<TcpStream, FrameCodec>,
    pub me: NodeId,
    pub token: Option<String>,
    /// Longest wait for one frame of an object body (each way); `None`: no limit.
    pub io_timeout: Option<std::time::Duration>,
    next_corr: u64,
    /// Address of the peer (for error messages).
    pub peer: String,
}

impl Conn {
    pub fn new(stream: TcpStream, me: NodeId, max_frame: usize) -> Self {
        let _ = stream.set_nodelay(true);
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        Conn {
            framed: Framed::new(stream, codec(max_frame)),
            me,
            token: None,
            io_timeout: None,
            next_corr: 1,
            peer,
        }
    }

    /// Whether this idle connection can carry a request: the peer has not closed it (a node
    /// that restarted) and nothing unasked-for waits on it. Checked without blocking before a
    /// pooled connection is reused, so that a request is not sent on a link already dead: a
    /// failure after sending leaves open whether the peer acted on it.
    pub fn reusable(&self) -> bool {
        use rustix::net::RecvFlags;
        if !self.framed.read_buffer().is_empty() {
            return false;
        }
        let mut b = [0u8; 1];
        matches!(
            rustix::net::recv(
                self.framed.get_ref(),
                &mut b[..],
                RecvFlags::PEEK | RecvFlags::DONTWAIT
            ),
            Err(rustix::io::Errno::AGAIN)
        )
    }

    pub async fn connect(addr: &str, me: NodeId, timeout: std::time::Duration) -> Result<Self> {
        let via = crate::fault::route(addr);
        let stream = tokio::time::timeout(timeout, TcpStream::connect(via.as_ref()))
            .await
            .map_err(|_| Error::Timeout(format!("connecting to {addr}")))?
            .map_err(|e| Error::Io(std::io::Error::new(e.kind(), format!("{addr}: {e}"))))?;
        Ok(Conn::new(stream, me, DEFAULT_MAX_FRAME))
    }

    /// Sends one message with the given correlation ID.
    pub async fn send(&mut self, corr: u64, body: Msg) -> Result<()> {
        let frame = self.frame(corr, body)?;
        self.framed.send(frame).await?;
        Ok(())
    }

    fn frame(&self, corr: u64, body: Msg) -> Result<Bytes> {
        let env = Envelope {
            proto: PROTO_VERSION,
            from: self.me.clone(),
            corr,
            token: self.token.clone(),
            body,
        };
        Ok(Bytes::from(encode(&env)?))
    }

    /// A reply header and its whole body held in memory, written out together: one flush
    /// (one write on the socket, for a small object) instead of one per frame.
    pub async fn send_with_body(&mut self, corr: u64, header: Msg, body: &[u8]) -> Result<()> {
        let frame = self.frame(corr, header)?;
        let (peer, limit) = (&self.peer, self.io_timeout);
        let stalled = || stalled("sending a reply", peer, limit);
        timed(self.io_timeout, self.framed.feed(frame), stalled).await??;
        self.send_body_bytes(corr, body).await
    }

    /// Receives one envelope; `None` when the peer closed the connection cleanly.
    pub async fn recv(&mut self) -> Result<Option<Envelope>> {
        match self.framed.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(Error::Decode(format!("frame from {}: {e}", self.peer))),
            Some(Ok(buf)) => decode(&buf).map(Some),
        }
    }

    /// Receives a reply or fails if the connection closed.
    pub async fn recv_reply(&mut self) -> Result<Envelope> {
        self.recv()
            .await?
            .ok_or_else(|| Error::Protocol(format!("{} closed the connection", self.peer)))
    }

    /// Starts a request: sends it and returns its correlation ID (for requests with bodies).
    pub async fn start(&mut self, body: Msg) -> Result<u64> {
        let corr = self.next_corr;
        self.next_corr += 1;
        self.send(corr, body).await?;
        Ok(corr)
    }

    /// Correlation ID of the last request started on this connection.
    pub fn last_corr(&self) -> u64 {
        self.next_corr.saturating_sub(1)
    }

    /// Reads the reply to `corr`, turning an `Error` reply into `Err`.
    pub async fn finish(&mut self, corr: u64) -> Result<Msg> {
        let env = self.recv_reply().await?;
        if env.corr != corr {
            return Err(Error::Protocol(format!(
                "reply correlation {} does not match request {corr}",
                env.corr
            )));
        }
        match env.body {
            Msg::Error(w) => Err(w.into()),
            other => Ok(other),
        }
    }

    /// One request, one reply.
    pub async fn request(&mut self, body: Msg) -> Result<Msg> {
        let corr = self.start(body).await?;
        self.finish(corr).await
    }

    /// One typed request and its typed reply.
    pub async fn rpc<R: Rpc>(&mut self, req: R) -> Result<R::Reply> {
        let reply = self.request(req.into_msg()).await?;
        super::msg::expect::<R>(reply)
    }

    /// Sends a body held in memory as chunks with correlation `corr`, straight from `body`.
    pub async fn send_body_bytes(&mut self, corr: u64, body: &[u8]) -> Result<()> {
        for piece in body.chunks(CHUNK_SIZE) {
            self.feed_chunk(corr, piece).await?;
        }
        self.flush_body().await
    }

    /// As [`send_body_bytes`](Self::send_body_bytes), in the pieces a stream is sent in: the
    /// receiver holds one such frame at a time per body (a large body stored on disk), not
    /// one of up to [`CHUNK_SIZE`].
    pub async fn send_body_streamed(&mut self, corr: u64, body: &[u8]) -> Result<()> {
        for piece in body.chunks(STREAM_CHUNK) {
            self.feed_chunk(corr, piece).await?;
        }
        self.flush_body().await
    }

    /// Queues one chunk without flushing: the sink writes once its buffer fills. A large chunk
    /// is written at once instead, after what is queued, from its own buffer.
    async fn feed_chunk(&mut self, corr: u64, data: &[u8]) -> Result<()> {
        if data.len() >= DIRECT_CHUNK {
            return self.write_chunk(corr, data).await;
        }
        let chunk = ChunkOut {
            proto: PROTO_VERSION,
            from: &self.me,
            corr,
            token: None,
            body: ChunkBody::Chunk(data),
        };
        let (peer, limit) = (&self.peer, self.io_timeout);
        let stalled = || stalled("sending a body", peer, limit);
        timed(self.io_timeout, self.framed.feed(chunk), stalled).await??;
        Ok(())
    }

    async fn write_chunk(&mut self, corr: u64, data: &[u8]) -> Result<()> {
        let head = chunk_head(&self.me, corr, data.len(), self.framed.codec().max())?;
        // What is queued goes first, then this frame's head, then its data.
        let mut queued = std::mem::take(self.framed.write_buffer_mut());
        queued.extend_from_slice(&head);
        let (peer, limit) = (&self.peer, self.io_timeout);
        let stalled = || stalled("sending a body", peer, limit);
        let stream = self.framed.get_mut();
        let res = timed(limit, write_both(stream, &mut queued, data), stalled).await;
        // The buffer keeps its capacity for the frames after this one.
        queued.clear();
        *self.framed.write_buffer_mut() = queued;
        res??;
        Ok(())
    }

    async fn flush_body(&mut self) -> Result<()> {
        let (peer, limit) = (&self.peer, self.io_timeout);
        let stalled = || stalled("sending a body", peer, limit);
        timed(
            self.io_timeout,
            SinkExt::<Bytes>::flush(&mut self.framed),
            stalled,
        )
        .await??;
        Ok(())
    }

    /// Streams exactly `size` bytes from `src` as chunks with correlation `corr`.
    pub async fn send_body<R: AsyncRead + Unpin>(
        &mut self,
        corr: u64,
        src: &mut R,
        size: u64,
    ) -> Result<()> {
        let mut left = size;
        let mut buf = vec![0u8; STREAM_CHUNK.min(size.max(1) as usize)];
        while left > 0 {
            let n = (left as usize).min(buf.len());
            src.read_exact(&mut buf[..n]).await?;
            self.feed_chunk(corr, &buf[..n]).await?;
            left -= n as u64;
        }
        self.flush_body().await
    }

    /// Streams `len` bytes of `file` from `offset` as chunks of `frame` bytes (at most
    /// [`CHUNK_SIZE`]) with correlation `corr`. The data goes from the page cache to the socket
    /// by `sendfile`, never copied through this process.
    ///
    /// A receiver that writes as it receives (a rebalance) overlaps better with
    /// [`STREAM_CHUNK`]; a reader that takes the chunks straight into its destination (a get)
    /// does best with the largest frames: each frame costs a head, a push of the socket and a
    /// wake-up of the reader.
    /// Each step runs on the blocking pool (a file not in the page cache blocks there, not on
    /// the runtime) and sends only what the socket takes without waiting; waiting for the peer
    /// happens on the runtime, so a slow reader holds no thread.
    pub async fn send_file(
        &mut self,
        corr: u64,
        file: std::fs::File,
        offset: u64,
        len: u64,
        frame: usize,
    ) -> Result<()> {
        use std::os::fd::AsFd;
        use tokio::io::unix::AsyncFd;
        // What is queued (the reply's header) goes first, through the connection's buffer.
        self.flush_body().await?;
        let sock = SockFd(std::sync::Arc::new(
            self.framed.get_ref().as_fd().try_clone_to_owned()?,
        ));
        // SAFETY: the descriptor is a duplicate owned by the `Arc` the `AsyncFd` holds, so it
        // stays open, and refers to the same socket, for as long as the `AsyncFd` lives.
        let ready =
            unsafe { AsyncFd::register_with_interest(sock.clone(), tokio::io::Interest::WRITABLE) }
                .map_err(|e| Error::Io(e.into_parts().1))?;
        let mut out = FileOut {
            file: std::sync::Arc::new(file),
            at: offset,
            end: offset + len,
            frame_end: offset,
            head: Vec::new(),
            head_sent: 0,
            me: self.me.clone(),
            corr,
            max: self.framed.codec().max(),
            frame: frame.clamp(1, CHUNK_SIZE),
        };
        let (peer, limit) = (&self.peer, self.io_timeout);
        loop {
            let stalled = || stalled("sending a body", peer, limit);
            let mut guard = timed(limit, ready.writable(), stalled).await??;
            let fd = sock.clone();
            let (back, sent) = tokio::task::spawn_blocking(move || {
                let sent = out.step(&fd.0);
                (out, sent)
            })
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
            out = back;
            if sent? {
                return Ok(());
            }
            // The socket was full: wait until it drains. A wake-up that came in meanwhile is
            // kept (the guard clears only the readiness it saw).
            guard.clear_ready();
        }
    }

    fn stalled(&self, what: &str) -> Error {
        stalled(what, &self.peer, self.io_timeout)
    }

    /// Receives one body chunk. Its bytes are a view of the frame they came in, not a copy. An
    /// `Error` reply becomes `Err`, and any other message is a protocol error.
    pub async fn recv_chunk(&mut self) -> Result<Bytes> {
        let frame = match self.framed.next().await {
            None => {
                return Err(Error::Protocol(format!(
                    "{} closed the connection",
                    self.peer
                )));
            }
            Some(Err(e)) => return Err(Error::Decode(format!("frame from {}: {e}", self.peer))),
            Some(Ok(buf)) => buf.freeze(),
        };
        if let Ok(ChunkIn {
            proto: PROTO_VERSION,
            body: ChunkBodyIn::Chunk(data),
        }) = rmp_serde::from_slice(&frame)
        {
            return Ok(frame.slice_ref(data));
        }
        match decode(&frame)?.body {
            Msg::Chunk(d) => Ok(Bytes::from(d)),
            Msg::Error(w) => Err(w.into()),
            other => Err(Error::Protocol(format!(
                "expected a body chunk, got {}",
                other.name()
            ))),
        }
    }

    /// Receives one body chunk of at most `left` bytes. A large one is read from the socket
    /// straight onto the end of `dst`, its length returned: no copy through the frame buffer,
    /// and no buffer growing while the frame arrives. A small one, and any other message, comes
    /// through the frame codec as [`Self::recv_chunk`] has it (`Err` of its bytes).
    async fn recv_chunk_into(
        &mut self,
        dst: &mut Vec<u8>,
        left: u64,
    ) -> Result<Result<usize, Bytes>> {
        let max = self.framed.codec().max();
        // The frame's first bytes: those buffered, then, if they do not settle it, those
        // waiting on the socket, peeked at so that the frame codec still finds them there
        // if the frame is not read here.
        let mut first = [0u8; 4 + CHUNK_HEAD_MAX];
        let buf = self.framed.read_buffer();
        let buffered = buf.len();
        let mut seen = buffered.min(first.len());
        first[..seen].copy_from_slice(&buf[..seen]);
        let mut at = frame_at(&first[..seen], max);
        if at == ChunkAt::More && seen == buffered {
            seen += self.framed.get_ref().peek(&mut first[seen..]).await?;
            at = frame_at(&first[..seen], max);
        }
        let ChunkAt::Data { head, len } = at else {
            // Anything else, or a head still incomplete: through the codec.
            return self.recv_chunk().await.map(Err);
        };
        check_within(len, left)?;
        // The head: what is buffered of it, then the rest, which was peeked at, off the socket.
        let from_buffer = buffered.min(head);
        self.framed.read_buffer_mut().advance(from_buffer);
        self.framed
            .get_mut()
            .read_exact(&mut first[..head - from_buffer])
            .await?;
        self.read_data(dst, len).await.map(Ok)
    }

    /// Appends the next `len` bytes of the stream (a chunk's data) to `dst`: what is buffered
    /// already, then the rest from the socket.
    async fn read_data(&mut self, dst: &mut Vec<u8>, len: usize) -> Result<usize> {
        use bytes::BufMut;
        let buf = self.framed.read_buffer_mut();
        let have = buf.len().min(len);
        dst.reserve(len);
        dst.extend_from_slice(&buf[..have]);
        buf.advance(have);
        let mut rest = len - have;
        while rest > 0 {
            let got = self
                .framed
                .get_mut()
                .read_buf(&mut (&mut *dst).limit(rest))
                .await?;
            if got == 0 {
                return Err(Error::Protocol(format!(
                    "{} closed the connection in the middle of a chunk",
                    self.peer
                )));
            }
            rest -= got;
        }
        Ok(len)
    }

    /// The next chunk of a body of which `left` bytes are still to come, appended to `dst`
    /// (read into it from the socket when large), under the per-frame time limit; `left`
    /// shrinks by its length, which is returned.
    pub async fn next_body_chunk_into(
        &mut self,
        dst: &mut Vec<u8>,
        left: &mut u64,
    ) -> Result<usize> {
        let n = match self.chunk_within(dst, *left).await? {
            Ok(n) => n,
            Err(data) => {
                dst.extend_from_slice(&data);
                data.len()
            }
        };
        *left -= n as u64;
        Ok(n)
    }

    /// [`Self::recv_chunk_into`] under the per-frame time limit, and within `left`.
    async fn chunk_within(&mut self, dst: &mut Vec<u8>, left: u64) -> Result<Result<usize, Bytes>> {
        let got = match self.io_timeout {
            Some(t) => tokio::time::timeout(t, self.recv_chunk_into(dst, left))
                .await
                .map_err(|_| self.stalled("receiving a body"))??,
            None => self.recv_chunk_into(dst, left).await?,
        };
        if let Err(data) = &got {
            check_within(data.len(), left)?;
        }
        Ok(got)
    }

    /// Receives chunks adding up to exactly `size` bytes onto the end of `dst`, calling
    /// `observe` on each.
    pub async fn recv_body(
        &mut self,
        dst: &mut Vec<u8>,
        size: u64,
        mut observe: impl FnMut(&[u8]),
    ) -> Result<()> {
        let mut left = size;
        while left > 0 {
            let from = dst.len();
            self.next_body_chunk_into(dst, &mut left).await?;
            observe(&dst[from..]);
        }
        Ok(())
    }

    /// The next chunk of a body of which `left` bytes are still to come, waited for under the
    /// per-frame time limit; `left` shrinks by its length. A chunk longer than what is left is
    /// a protocol error.
    pub async fn next_body_chunk(&mut self, left: &mut u64) -> Result<Bytes> {
        let mut own = Vec::new();
        // A large chunk was read into a buffer of its own, which becomes the `Bytes` as is.
        let data = match self.chunk_within(&mut own, *left).await? {
            Ok(_) => Bytes::from(own),
            Err(view) => view,
        };
        *left -= data.len() as u64;
        Ok(data)
    }

    /// Skips a body of `size` bytes (after an early refusal), keeping the stream in step.
    pub async fn drain_body(&mut self, size: u64) -> Result<()> {
        let mut left = size;
        while left > 0 {
            self.next_body_chunk(&mut left).await?;
        }
        Ok(())
    }
}

/// A request body encoded once for many links (a metasync goes to every node): each link adds
/// only its own envelope head, instead of every destination cloning and encoding the whole
/// map (scale-benchmarks finding 3).
#[derive(Clone, Debug)]
pub struct Encoded(Bytes);

impl Encoded {
    pub fn new(body: &Msg) -> Result<Self> {
        rmp_serde::to_vec_named(body)
            .map(|b| Encoded(Bytes::from(b)))
            .map_err(|e| Error::Encode(e.to_string()))
    }
}

/// An [`Envelope`] around an already encoded body, byte for byte what [`encode`] makes: the
/// head is the envelope's first four fields as a map, widened to five, then `body`.
fn encode_around(from: &NodeId, corr: u64, token: Option<&str>, body: &Encoded) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Head<'a> {
        proto: u16,
        from: &'a NodeId,
        corr: u64,
        token: Option<&'a str>,
    }
    let head = Head {
        proto: PROTO_VERSION,
        from,
        corr,
        token,
    };
    let mut buf = Vec::with_capacity(64 + body.0.len());
    rmp_serde::encode::write_named(&mut buf, &head).map_err(|e| Error::Encode(e.to_string()))?;
    // A fixmap of 4 (0x84) becomes one of 5, followed by the fifth key and its value.
    match buf.first_mut() {
        Some(b @ 0x84) => *b = 0x85,
        _ => return Err(Error::Encode("unexpected envelope head".into())),
    }
    buf.push(0xa4); // a fixstr of 4 bytes
    buf.extend_from_slice(b"body");
    buf.extend_from_slice(&body.0);
    Ok(buf)
}

impl Conn {
    /// One request whose body was encoded beforehand (see [`Encoded`]), one reply.
    pub async fn request_encoded(&mut self, body: &Encoded) -> Result<Msg> {
        let corr = self.next_corr;
        self.next_corr += 1;
        let buf = encode_around(&self.me, corr, self.token.as_deref(), body)?;
        self.framed.send(Bytes::from(buf)).await?;
        self.finish(corr).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Envelope {
        Envelope {
            proto: PROTO_VERSION,
            from: NodeId("abcdt9000".into()),
            corr: 7,
            token: None,
            body: Msg::from(crate::proto::msg::PutObject {
                key: crate::types::object::ObjKey::new("b", "o/1"),
                size: 42,
                attrs: Default::default(),
                inline: None,
            }),
        }
    }

    /// A body chunk as an owned envelope: what every way of sending one must encode to.
    fn chunk_envelope(from: &NodeId, corr: u64, data: &[u8]) -> Envelope {
        Envelope {
            proto: PROTO_VERSION,
            from: from.clone(),
            corr,
            token: None,
            body: Msg::Chunk(data.to_vec()),
        }
    }

    #[test]
    fn borrowed_chunks_encode_exactly_as_owned_ones() {
        use tokio_util::codec::{Decoder, Encoder};
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let me = NodeId("t[abc]".into());
        let mut codec = codec(DEFAULT_MAX_FRAME);
        let mut wire = bytes::BytesMut::new();
        let out = ChunkOut {
            proto: PROTO_VERSION,
            from: &me,
            corr: 42,
            token: None,
            body: ChunkBody::Chunk(&data),
        };
        codec.encode(out, &mut wire).unwrap();
        let owned = chunk_envelope(&me, 42, &data);
        let frame = codec.decode(&mut wire).unwrap().unwrap();
        assert!(wire.is_empty());
        assert_eq!(&frame[..], &encode(&owned).unwrap()[..]);
        assert_eq!(decode(&frame).unwrap(), owned);
        // Too large for the limit: refused, nothing half-written.
        let mut small = super::super::frame::FrameCodec::new(100);
        let mut wire = bytes::BytesMut::new();
        let out = ChunkOut {
            proto: PROTO_VERSION,
            from: &me,
            corr: 1,
            token: None,
            body: ChunkBody::Chunk(&data),
        };
        assert!(small.encode(out, &mut wire).is_err());
        assert!(wire.is_empty());
    }

    /// A chunk written from its own buffer after its head is, byte for byte, the frame the
    /// encoder makes, for every size of MessagePack's length field.
    #[test]
    fn a_chunk_head_and_its_data_make_the_encoded_frame() {
        let me = NodeId("t[abc]".into());
        for len in [0usize, 1, 255, 256, 65_535, 65_536, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let owned = chunk_envelope(&me, 9, &data);
            let head = chunk_head(&me, 9, len, DEFAULT_MAX_FRAME).unwrap();
            let mut frame = head[4..].to_vec();
            frame.extend_from_slice(&data);
            assert_eq!(frame, encode(&owned).unwrap(), "{len} bytes");
            assert_eq!(
                u32::from_be_bytes(head[..4].try_into().unwrap()) as usize,
                frame.len()
            );
        }
        assert!(chunk_head(&me, 9, 2000, 1000).is_err());
    }

    /// A connected pair of connections over loopback TCP.
    async fn pair() -> (Conn, Conn) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(listener.accept(), TcpStream::connect(addr));
        (
            Conn::new(a.unwrap().0, NodeId("a".into()), DEFAULT_MAX_FRAME),
            Conn::new(b.unwrap(), NodeId("b".into()), DEFAULT_MAX_FRAME),
        )
    }

    /// What a receiver expecting a chunk may get instead: an error reply ("gone"), then another
    /// message.
    async fn send_error_then_ok(tx: &mut Conn) {
        tx.send(5, Msg::from(Error::NotFound("gone".into())))
            .await
            .unwrap();
        tx.send(5, Msg::Reply(crate::proto::msg::Reply::Ok))
            .await
            .unwrap();
    }

    /// Chunks arrive as views of their frames; an error reply in their place is the error it
    /// carries, and any other message a protocol error, never taken for data.
    #[tokio::test]
    async fn chunks_are_received_whole_and_anything_else_is_refused() {
        let (mut tx, mut rx) = pair().await;
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
        tx.send_body_bytes(5, b"small").await.unwrap();
        tx.send_body_bytes(5, &big).await.unwrap();
        send_error_then_ok(&mut tx).await;
        assert_eq!(&rx.recv_chunk().await.unwrap()[..], b"small");
        assert_eq!(rx.recv_chunk().await.unwrap(), big);
        assert!(matches!(rx.recv_chunk().await, Err(Error::NotFound(m)) if m == "gone"));
        assert!(matches!(rx.recv_chunk().await, Err(Error::Protocol(_))));
        drop(tx);
        assert!(matches!(rx.recv_chunk().await, Err(Error::Protocol(_))));
    }

    /// A chunk's data is found right after its head, however the envelope was made and however
    /// little of it has arrived; other messages, versions and long heads are left to the full
    /// decoder.
    #[test]
    fn chunk_heads_are_found_where_the_encoder_puts_them() {
        let me = NodeId("t[abc]".into());
        for token in [None, Some("a.jwt.token".to_string())] {
            for len in [0usize, 1, 255, 65_535, 65_536, 200_000] {
                let data = vec![0xc6u8; len];
                let env = Envelope {
                    token: token.clone(),
                    ..chunk_envelope(&me, u64::MAX, &data)
                };
                let frame = encode(&env).unwrap();
                let head = frame.len() - len;
                for cut in 0..head {
                    assert_eq!(
                        chunk_at(frame.len(), &frame[..cut]),
                        ChunkAt::More,
                        "{len} {cut}"
                    );
                }
                for cut in [head, head + len / 2, frame.len()] {
                    assert_eq!(
                        chunk_at(frame.len(), &frame[..cut]),
                        ChunkAt::Data { head, len }
                    );
                }
                // The same head in a frame of another length is not this chunk.
                assert_eq!(chunk_at(frame.len() + 1, &frame), ChunkAt::Other);
            }
        }
        let other_version = Envelope {
            proto: PROTO_VERSION + 1,
            ..chunk_envelope(&me, 1, &[1; 100])
        };
        let long_token = Envelope {
            token: Some("x".repeat(2 * CHUNK_HEAD_MAX)),
            ..chunk_envelope(&me, 1, &[1; 100])
        };
        let error = Envelope {
            body: Msg::from(Error::NotFound("gone".into())),
            ..sample()
        };
        // A head longer than looked for is left to the full decoder.
        for env in [other_version, long_token, error, sample()] {
            let frame = encode(&env).unwrap();
            let prefix = &frame[..frame.len().min(CHUNK_HEAD_MAX)];
            assert_eq!(chunk_at(frame.len(), prefix), ChunkAt::Other, "{env:?}");
        }
    }

    /// Large chunks are read from the socket straight into their destination, small ones and
    /// everything else come through the frame codec: both give the same bytes, errors in the
    /// middle of a body come back as errors, a chunk longer than the body is refused before it
    /// is read, and a link that closes in the middle of a chunk is an error.
    #[tokio::test]
    async fn chunks_read_into_their_destination_arrive_exactly() {
        let (mut tx, mut rx) = pair().await;
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let send = async {
            tx.send_body_bytes(5, b"small").await.unwrap();
            tx.send_body_streamed(5, &big).await.unwrap();
            tx.send_body_bytes(5, &big[..100_000]).await.unwrap();
            tx.token = Some("t".repeat(2 * CHUNK_HEAD_MAX));
            tx.send(5, Msg::Chunk(big[..70_000].to_vec()))
                .await
                .unwrap();
            tx.token = Some("short".into());
            tx.send(5, Msg::Chunk(big[..70_000].to_vec()))
                .await
                .unwrap();
            send_error_then_ok(&mut tx).await;
            tx.send_body_bytes(5, &big[..100_000]).await.unwrap();
            // A frame cut short: its head and half its data, then the link closes.
            let head = chunk_head(&tx.me, 5, 100_000, DEFAULT_MAX_FRAME).unwrap();
            let sock = tx.framed.get_mut();
            sock.write_all(&head).await.unwrap();
            sock.write_all(&big[..50_000]).await.unwrap();
            drop(tx);
        };
        let recv = async {
            let mut out = b"x".to_vec();
            let mut left = 5;
            assert_eq!(
                rx.next_body_chunk_into(&mut out, &mut left).await.unwrap(),
                5
            );
            assert_eq!((&out[..], left), (&b"xsmall"[..], 0));
            let mut out = Vec::new();
            let mut left = big.len() as u64;
            while left > 0 {
                rx.next_body_chunk_into(&mut out, &mut left).await.unwrap();
            }
            assert_eq!(out, big);
            let mut left = 100_000;
            assert_eq!(rx.next_body_chunk(&mut left).await.unwrap(), big[..100_000]);
            for _ in 0..2 {
                let mut out = Vec::new();
                let mut left = 70_000;
                rx.next_body_chunk_into(&mut out, &mut left).await.unwrap();
                assert_eq!(out, big[..70_000]);
            }
            let mut out = Vec::new();
            let mut left = 10;
            let got = rx.next_body_chunk_into(&mut out, &mut left).await;
            assert!(matches!(got, Err(Error::NotFound(m)) if m == "gone"));
            let got = rx.next_body_chunk_into(&mut out, &mut left).await;
            assert!(matches!(got, Err(Error::Protocol(_))), "{got:?}");
            let mut left = 99_999;
            let got = rx.next_body_chunk_into(&mut out, &mut left).await;
            assert!(
                matches!(&got, Err(Error::Protocol(m)) if m.contains("overruns")),
                "{got:?}"
            );
            assert!(out.is_empty());
        };
        tokio::join!(send, recv);
        // The refused chunk is still on the link, then the cut one.
        let mut left = 100_000;
        rx.next_body_chunk(&mut left).await.unwrap();
        let mut out = Vec::new();
        let mut left = 100_000;
        let got = rx.next_body_chunk_into(&mut out, &mut left).await;
        assert!(
            matches!(&got, Err(Error::Protocol(m)) if m.contains("closed")),
            "{got:?}"
        );
    }

    /// A file is sent by `sendfile` in chunk frames: any span of it arrives exactly, even
    /// through a send buffer far smaller than the body, which makes the sender wait for the
    /// reader again and again; a file shorter than the span claimed is an error, not a hang.
    #[tokio::test]
    async fn a_file_span_arrives_exactly_through_a_small_send_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3_000_005u32).map(|i| (i % 239) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let (mut tx, mut rx) = pair().await;
        rustix::net::sockopt::set_socket_send_buffer_size(tx.framed.get_ref(), 4096).unwrap();
        for (offset, len, frame) in [
            (0u64, data.len() as u64, STREAM_CHUNK),
            (0, data.len() as u64, CHUNK_SIZE),
            (7, 300_000, STREAM_CHUNK),
            (7, 300_000, 100_000),
            (131_071, 2, STREAM_CHUNK),
            (5, 0, CHUNK_SIZE),
        ] {
            let file = std::fs::File::open(&path).unwrap();
            let send = tx.send_file(3, file, offset, len, frame);
            let mut got = Vec::new();
            let recv = rx.recv_body(&mut got, len, |_| {});
            let (s, r) = tokio::join!(send, recv);
            s.unwrap();
            r.unwrap();
            assert_eq!(got, &data[offset as usize..(offset + len) as usize]);
        }
        let file = std::fs::File::open(&path).unwrap();
        let res = tx.send_file(3, file, 2_999_000, 10_000, STREAM_CHUNK).await;
        assert!(
            matches!(&res, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{res:?}"
        );
    }

    #[test]
    fn a_body_encoded_once_makes_the_same_envelope() {
        for token in [None, Some("a.jwt.token".to_string())] {
            let env = Envelope {
                token: token.clone(),
                ..sample()
            };
            let body = Encoded::new(&env.body).unwrap();
            let spliced = encode_around(&env.from, env.corr, token.as_deref(), &body).unwrap();
            assert_eq!(spliced, encode(&env).unwrap());
            assert_eq!(decode(&spliced).unwrap(), env);
        }
    }

    #[test]
    fn round_trip() {
        let env = sample();
        assert_eq!(decode(&encode(&env).unwrap()).unwrap(), env);
    }

    #[test]
    fn other_protocol_versions_get_a_clear_error() {
        let mut env = sample();
        env.proto = 99;
        let err = decode(&encode(&env).unwrap()).unwrap_err();
        assert!(
            matches!(err, Error::Protocol(ref m) if m.contains("99")),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        // A newer peer adds a field: older decoders must still accept the envelope.
        #[derive(Serialize)]
        struct Newer<'a> {
            proto: u16,
            from: &'a str,
            corr: u64,
            body: Msg,
            shiny_new_field: u32,
        }
        let buf = rmp_serde::to_vec_named(&Newer {
            proto: PROTO_VERSION,
            from: "x",
            corr: 1,
            body: Msg::Reply(crate::proto::msg::Reply::Ok),
            shiny_new_field: 3,
        })
        .unwrap();
        assert_eq!(
            decode(&buf).unwrap().body,
            Msg::Reply(crate::proto::msg::Reply::Ok)
        );
    }

    /// 2,000 cases in the suite; `PROPTEST_CASES` (as `just fuzz` sets it) for longer runs.
    fn fuzz_config() -> ProptestConfig {
        match std::env::var("PROPTEST_CASES") {
            Ok(_) => ProptestConfig::default(),
            Err(_) => ProptestConfig::with_cases(2000),
        }
    }

    proptest! {
        #![proptest_config(fuzz_config())]
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn truncated_envelopes_are_errors(cut in 0usize..1000) {
            let buf = encode(&sample()).unwrap();
            let cut = cut % buf.len();
            prop_assert!(decode(&buf[..cut]).is_err());
        }

        #[test]
        fn chunk_heads_of_any_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            extra in 0usize..100_000,
        ) {
            if let ChunkAt::Data { head, len } = chunk_at(bytes.len() + extra, &bytes) {
                prop_assert_eq!(head + len, bytes.len() + extra);
                prop_assert!(head <= bytes.len());
            }
        }

        #[test]
        fn mutated_chunk_heads_never_panic(pos in any::<usize>(), val in any::<u8>()) {
            let mut buf = encode(&chunk_envelope(&NodeId("a".into()), 3, &[7; 40])).unwrap();
            let i = pos % buf.len();
            buf[i] = val;
            if let ChunkAt::Data { head, len } = chunk_at(buf.len(), &buf) {
                prop_assert_eq!(head + len, buf.len());
            }
        }

        #[test]
        fn mutated_envelopes_never_panic(pos in any::<usize>(), val in any::<u8>()) {
            let mut buf = encode(&sample()).unwrap();
            let i = pos % buf.len();
            buf[i] = val;
            let _ = decode(&buf);
        }
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_without_allocation() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut conn = Conn::new(s, NodeId("srv".into()), 1024);
            conn.recv().await
        });
        let mut raw = TcpStream::connect(addr).await.unwrap();
        // Announce a 4 GiB frame; the decoder must refuse on the header alone.
        raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        raw.write_all(&[0u8; 16]).await.unwrap();
        let res = server.await.unwrap();
        assert!(matches!(res, Err(Error::Decode(_))), "{res:?}");
    }
}
