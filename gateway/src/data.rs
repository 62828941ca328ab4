//! The object data path both APIs share: writes that store the MD5 with the object, reads in
//! one round trip (byte ranges included), bodies as streams of bounded chunks, and the ETag and
//! times an object shows.
//!
//! Writes: the cluster takes an object's attributes (MD5, ETag, content type, user metadata)
//! with the first frame of a put, before the body. A body of up to [`BUFFER_MAX`] is read
//! whole first (within a per-gateway memory budget), so its MD5 is known and stored, and the
//! put can be sent again when the cluster map changes under it. A larger body streams through
//! in 1 MiB frames: its MD5 is stored when the client sent `Content-MD5`, else it is computed
//! on the way (for the PUT's answer) but not stored, and such an object shows an ETag that
//! cannot be taken for an MD5 (see [`etag`]).

use std::io;
use std::ops::Range;

use bytes::Bytes;
use futures::Stream;
use shoal_actors::client::{Body, Client};
use shoal_actors::proto::msg::ByteRange;
use shoal_actors::types::object::{ObjAttrs, ObjEntry, ObjMeta};
use tokio::io::AsyncReadExt;

use crate::Gateway;
use crate::error::{Error, Result};
use crate::stream;

/// Bodies up to this size are read whole before they are sent (the aws CLI's and boto3's
/// multipart threshold and part size are 8 MiB, so their parts are too).
pub const BUFFER_MAX: u64 = 8 << 20;
/// Bytes of request bodies a gateway holds at once; a put that would go over waits.
pub const BUFFER_BUDGET: u64 = 32 << 20;
/// Transient failures of one put retried before the client is told to come back.
const PUT_RETRIES: u32 = 6;

/// What to put.
pub struct PutReq<'a> {
    pub bucket: &'a str,
    pub object: &'a str,
    pub size: u64,
    /// The MD5 the client declared (`Content-MD5`).
    pub expect: Option<[u8; 16]>,
    pub attrs: ObjAttrs,
    /// Read a body of up to [`BUFFER_MAX`] whole first, so that its MD5 is stored with it.
    /// Multipart parts stream: their MD5 is kept beside them.
    pub store_md5: bool,
}

impl<'a> PutReq<'a> {
    /// An object whose MD5 is stored with it.
    pub fn new(bucket: &'a str, object: &'a str, size: u64, attrs: ObjAttrs) -> Self {
        PutReq {
            bucket,
            object,
            size,
            expect: None,
            attrs,
            store_md5: true,
        }
    }
}

/// The outcome of a put.
pub struct Put {
    /// xxh3 of the content, as the cluster stored it.
    pub checksum: String,
    /// MD5 of the content (what S3 answers as the ETag of a single PUT).
    pub md5: [u8; 16],
}

/// The ETag of an object: its MD5, or a multipart upload's `md5-of-md5s-N`, as stored with it.
/// An object written without one (a large single PUT without `Content-MD5`, or by a writer
/// that does not send attributes) shows its xxh3 checksum in the shape of a multipart ETag,
/// so that clients which compare an ETag with the MD5 of the bytes skip the comparison instead
/// of reporting a false mismatch.
pub fn etag(meta: &ObjMeta) -> String {
    meta.attrs
        .etag
        .clone()
        .or_else(|| meta.attrs.md5.clone())
        .unwrap_or_else(|| without_md5(&meta.checksum))
}

/// [`etag`] of a listing entry.
pub fn entry_etag(e: &ObjEntry) -> String {
    e.etag.clone().unwrap_or_else(|| without_md5(&e.checksum))
}

fn without_md5(checksum: &str) -> String {
    format!("{checksum:0>32}-1")
}

/// Unix milliseconds of an entry's last write (entries of files written before listings
/// carried an mtime have only their write stamp, in nanoseconds).
pub fn entry_mtime_ms(e: &ObjEntry) -> u64 {
    if e.mtime > 0 {
        e.mtime
    } else {
        e.version / 1_000_000
    }
}

/// Puts `body` as `req` says. Nothing is stored when the body is short, or its MD5 differs
/// from the one the client declared.
pub async fn put<S, E>(gw: &Gateway, token: Option<String>, req: PutReq<'_>, body: S) -> Result<Put>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    let PutReq {
        bucket,
        object,
        size,
        expect,
        mut attrs,
        store_md5,
    } = req;
    let mut r = stream::Md5Reader::new(stream::reader(body), size, expect);
    if let Some((sent, computed)) = r.empty_body_mismatch() {
        return Err(Error::BadDigest {
            sent: stream::hex(&sent),
            computed: stream::hex(&computed),
        });
    }
    // A body small enough to go inside the put request is read first in any case (the client
    // does): held here, it can be sent again when the map changes under it.
    let small = size <= shoal_actors::proto::msg::INLINE_PUT;
    if (store_md5 || small) && size <= BUFFER_MAX {
        let _budget = gw
            .buffers
            .acquire_many(kib(size))
            .await
            // Not the client's doing: a 503 it retries elsewhere, not a 400.
            .map_err(|_| {
                Error::Cluster(shoal_actors::Error::Busy("the gateway is stopping".into()))
            })?;
        let mut buf = Vec::with_capacity(size as usize);
        r.read_to_end(&mut buf).await.map_err(body_error)?;
        let md5 = r.digest().ok_or_else(|| {
            Error::ClientBody(format!("the request body ended before {size} bytes"))
        })?;
        // Without `store_md5`, only a declared MD5 is kept (as when streamed).
        if attrs.md5.is_none() && (store_md5 || expect.is_some()) {
            attrs.md5 = Some(stream::hex(&md5));
        }
        let checksum = with_retries(gw, || {
            let (c, attrs, mut src) = (gw.cluster.client(token.clone()), attrs.clone(), &buf[..]);
            async move {
                let c = c.await?;
                Ok(c.put_with(bucket, object, &mut src, size, attrs).await?)
            }
        })
        .await?;
        return Ok(Put { checksum, md5 });
    }
    if let (None, Some(e)) = (&attrs.md5, expect) {
        attrs.md5 = Some(stream::hex(&e));
    }
    let mut pause = std::time::Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        let c = gw.cluster.client(token.clone()).await?;
        match c
            .put_with(bucket, object, &mut r, size, attrs.clone())
            .await
        {
            Ok(checksum) => {
                let md5 = r
                    .digest()
                    .ok_or_else(|| Error::Source("body not fully read".into()))?;
                return Ok(Put { checksum, md5 });
            }
            Err(e) => {
                if let Some((sent, computed)) = stream::bad_digest(&e) {
                    return Err(Error::BadDigest { sent, computed });
                }
                if let Some(why) = stream::client_body(&e) {
                    return Err(Error::ClientBody(why));
                }
                let e = Error::Cluster(e);
                // Again only while the body is untouched (it cannot be read twice); else the
                // client is told to send it again (503).
                if e.is_transient() && r.consumed() == 0 && attempt < PUT_RETRIES {
                    gw.cluster.invalidate();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                    attempt += 1;
                    continue;
                }
                return Err(e);
            }
        }
    }
}

/// Runs `f` again after a short pause while it fails transiently (the map changed under a put,
/// a target went offline): for puts whose body is held in memory.
async fn with_retries<T, F, Fut>(gw: &Gateway, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut pause = std::time::Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.is_transient() && attempt < PUT_RETRIES => {
                tracing::debug!(error = %e, attempt, "put failed transiently, sending it again");
                gw.cluster.invalidate();
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Budget units (KiB, at least one) of a body of `size` bytes.
fn kib(size: u64) -> u32 {
    size.div_ceil(1024).max(1) as u32
}

/// Budget of [`BUFFER_BUDGET`] in [`kib`] units.
pub fn budget_permits() -> usize {
    kib(BUFFER_BUDGET) as usize
}

/// An error reading the client's body, as the client's error where it is one.
fn body_error(e: io::Error) -> Error {
    let e = shoal_actors::Error::Io(e);
    if let Some((sent, computed)) = stream::bad_digest(&e) {
        return Error::BadDigest { sent, computed };
    }
    if let Some(why) = stream::client_body(&e) {
        return Error::ClientBody(why);
    }
    match e {
        shoal_actors::Error::Io(io) => Error::ClientBody(io.to_string()),
        other => Error::Cluster(other),
    }
}

/// An object opened for reading: its metadata, the bytes asked for, and their body.
pub struct Opened {
    pub meta: ObjMeta,
    /// The byte range served (end exclusive); `None` for the whole object.
    pub range: Option<Range<u64>>,
    pub body: Body,
}

impl Opened {
    /// Bytes the body carries.
    pub fn len(&self) -> u64 {
        self.range
            .as_ref()
            .map_or(self.meta.size, |r| r.end - r.start)
    }
}

/// Opens `bucket/object` (all of it, or `range`) in one round trip to its owner: the metadata
/// comes first, the body as it is read. A suffix range (`bytes=-N`) needs the size first, so
/// it costs a HEAD more. Out of range: [`Error::RangeNotSatisfiable`] with the object's size.
pub async fn open(
    gw: &Gateway,
    token: Option<String>,
    bucket: &str,
    object: &str,
    range: Option<&s3s::dto::Range>,
) -> Result<Opened> {
    use s3s::dto::Range as R;
    // A suffix range is computed from a size that may change before the read: then again.
    for _ in 0..3 {
        let (want, size_seen) = match range {
            None => (None, None),
            Some(R::Int { first, last }) => {
                let len = last.map_or(u64::MAX, |l| l.saturating_add(1).saturating_sub(*first));
                (
                    Some(ByteRange {
                        offset: *first,
                        len,
                    }),
                    None,
                )
            }
            Some(R::Suffix { length }) => {
                let size = head(gw, token.clone(), bucket, object).await?.size;
                let len = (*length).min(size);
                (
                    Some(ByteRange {
                        offset: size - len,
                        len,
                    }),
                    Some(size),
                )
            }
        };
        let opened = gw
            .cluster
            .retry(token.clone(), |c| async move {
                Ok(c.open(bucket, object, want).await?)
            })
            .await;
        let (meta, body) = match opened {
            Err(Error::Cluster(shoal_actors::Error::BadRequest(m)))
                if m.contains("not satisfiable") =>
            {
                let size = head(gw, token.clone(), bucket, object).await?.size;
                return Err(Error::RangeNotSatisfiable { size });
            }
            other => other?,
        };
        if size_seen.is_some_and(|s| s != meta.size) {
            continue;
        }
        let range = match range {
            None => None,
            Some(r) => Some(
                r.check(meta.size)
                    .map_err(|_| Error::RangeNotSatisfiable { size: meta.size })?,
            ),
        };
        return Ok(Opened { meta, range, body });
    }
    Err(Error::Cluster(shoal_actors::Error::Busy(format!(
        "{bucket}/{object} keeps changing size while it is read"
    ))))
}

pub async fn head(
    gw: &Gateway,
    token: Option<String>,
    bucket: &str,
    object: &str,
) -> Result<ObjMeta> {
    gw.cluster
        .retry(token, |c| async move { Ok(c.head(bucket, object).await?) })
        .await
}

/// Bodies up to this size are read whole before the answer starts: the headers and the bytes
/// leave together (one write, one segment for the client to read), and a body that fails its
/// checksum is an error status rather than a cut-off answer.
pub const SMALL_BODY: u64 = 256 << 10;

/// What an object body is served as.
pub enum Served {
    Whole(Bytes),
    Streamed(Box<Body>),
}

/// Reads a body of up to [`SMALL_BODY`] whole; a larger one is streamed.
pub async fn serve(body: Body) -> Result<Served> {
    if body.remaining() > SMALL_BODY {
        return Ok(Served::Streamed(Box::new(body)));
    }
    let mut body = body;
    let mut first: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    // The read after the last chunk checks the checksum and hands the connection back.
    while let Some(chunk) = body.next().await? {
        match first.take() {
            // A body that came as one chunk is served as it arrived, uncopied.
            None if more.is_empty() => first = Some(chunk),
            None => more.extend_from_slice(&chunk),
            Some(f) => {
                more.extend_from_slice(&f);
                more.extend_from_slice(&chunk);
            }
        }
    }
    Ok(Served::Whole(first.unwrap_or_else(|| Bytes::from(more))))
}

/// A body as a stream of chunks. An error ends the stream with that error, which aborts the
/// response: the client sees a truncated body, never a silently short one.
pub fn body_stream(body: Body) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures::stream::try_unfold(body, |mut b| async move {
        match b.next().await {
            Ok(Some(chunk)) => Ok(Some((chunk, b))),
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "object body aborted");
                Err(io::Error::other(e))
            }
        }
    })
}

/// The objects `parts` of `bucket` (names, in order) as one stream, read one after the other.
pub fn concat(
    c: Client,
    bucket: String,
    parts: Vec<String>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    struct State {
        c: Client,
        bucket: String,
        parts: std::vec::IntoIter<String>,
        body: Option<Body>,
    }
    let st = State {
        c,
        bucket,
        parts: parts.into_iter(),
        body: None,
    };
    futures::stream::try_unfold(st, |mut st| async move {
        loop {
            if let Some(b) = st.body.as_mut() {
                match b.next().await.map_err(io::Error::other)? {
                    Some(chunk) => return Ok(Some((chunk, st))),
                    None => st.body = None,
                }
            }
            let Some(p) = st.parts.next() else {
                return Ok(None);
            };
            let (_, body) =
                st.c.open(&st.bucket, &p, None)
                    .await
                    .map_err(io::Error::other)?;
            st.body = Some(body);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_prefer_what_was_stored() {
        let mut m = ObjMeta {
            checksum: "0123456789abcdef".into(),
            ..Default::default()
        };
        // Without a stored MD5: the checksum, shaped so that no client takes it for an MD5.
        assert_eq!(etag(&m), "00000000000000000123456789abcdef-1");
        m.attrs.md5 = Some("d41d8cd98f00b204e9800998ecf8427e".into());
        assert_eq!(etag(&m), "d41d8cd98f00b204e9800998ecf8427e");
        m.attrs.etag = Some("0a1b2c3d4e5f60718293a4b5c6d7e8f9-3".into());
        assert_eq!(etag(&m), "0a1b2c3d4e5f60718293a4b5c6d7e8f9-3");
        let e = ObjEntry::of(&m);
        assert_eq!(entry_etag(&e), "0a1b2c3d4e5f60718293a4b5c6d7e8f9-3");
    }

    #[test]
    fn budget_units() {
        assert_eq!(kib(0), 1);
        assert_eq!(kib(1), 1);
        assert_eq!(kib(1024), 1);
        assert_eq!(kib(1025), 2);
        assert!(kib(BUFFER_MAX) as usize <= budget_permits());
    }
}
