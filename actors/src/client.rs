//! The typed client: what `nodectl`, the console, the HTTP gateway and the tests use to talk to
//! a cluster.
//!
//! It speaks to any proxy; data requests go to the owning target, so proxies never carry object
//! data. The owner is computed here from a cached cluster map (HRW, as the nodes and AIStore's
//! SDK with `direct=True` do): one round trip per small request. A stale map costs a hop, never
//! a wrong answer — a target with a newer map redirects (and the cache is dropped), and one that
//! is gone, or cannot act as an owner for now (behind on the map), sends the client back to the
//! proxy. Connections are pooled per address and shared by clones (the same pool and retry rule
//! the nodes use).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::error::{Error, Result};
use crate::proto::msg::{
    self, AdminJoin, ByteRange, CreateBucket, DeleteObject, DestroyBucket, GetClusterStatus,
    GetConfig, GetObject, GetRebStatus, GetSmap, HeadObject, ListBuckets, ListObjects, Locate,
    Located, Msg, PutObject, RemoveFromSmap, Reply, Rpc,
};
use crate::proto::pool::{Link, Pool};
use crate::types::checksum::Checksum;
use crate::types::config::ClusterConfig;
use crate::types::lifecycle::{ClusterOp, LifecycleReply, LifecycleRequest};
use crate::types::object::{MAX_PAGE, ObjAttrs, ObjEntry, ObjKey, ObjMeta, ObjPage};
use crate::types::smap::{NodeId, Role, Smap};
use crate::types::status::{ClusterStatus, RebalanceStatus};

/// Identity clients put in the `from` field.
pub const CLIENT_ID: &str = "cli";

/// How long redirects are followed while targets disagree about the owner (their maps are
/// being updated: a target that has not received the newest map yet sends the client back to
/// the previous owner, which sends it on again).
const REDIRECT_SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Client {
    /// `host:port` of a proxy.
    pub endpoint: String,
    pub token: Option<String>,
    /// Connect and per-reply timeout.
    pub timeout: Duration,
    pool: Arc<Pool>,
    /// The cluster map data requests are routed by (shared by clones); `None` until fetched,
    /// and again after a target said it is out of date.
    smap: Arc<std::sync::RwLock<Option<Arc<Smap>>>>,
}

/// Where an object lives.
pub type Location = Located;

impl Client {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self::build(endpoint.into(), None, Duration::from_secs(30))
    }

    fn build(endpoint: String, token: Option<String>, timeout: Duration) -> Self {
        Client {
            endpoint,
            token,
            timeout,
            // A body that stalls fails after the same timeout as a reply would. Each request
            // carries this client's token (clones for other users share the connections).
            pool: Arc::new(
                Pool::new(NodeId(CLIENT_ID.into()), Box::new(|| None)).with_io_timeout(timeout),
            ),
            smap: Default::default(),
        }
    }

    /// The same client acting with another token (connections are shared: each request
    /// carries its own token).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    async fn exchange(&self, addr: &str, msg: Msg) -> Result<(Link, Msg)> {
        self.pool
            .exchange_as(addr, msg, self.timeout, self.token.clone())
            .await
    }

    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self::build(self.endpoint, self.token, timeout)
    }

    /// One typed request to the endpoint.
    pub async fn rpc<R: Rpc>(&self, req: R) -> Result<R::Reply> {
        msg::expect::<R>(self.call(req.into_msg()).await?)
    }

    /// One raw request to the endpoint (tests of the protocol itself).
    pub async fn call(&self, msg: Msg) -> Result<Msg> {
        let (link, reply) = self.exchange(&self.endpoint, msg).await?;
        self.pool.release(link);
        Ok(reply)
    }

    pub async fn smap(&self) -> Result<Smap> {
        self.rpc(GetSmap).await
    }

    /// One typed request to a given node (a target's storage requests go to the target).
    pub async fn rpc_at<R: Rpc>(&self, addr: &str, req: R) -> Result<R::Reply> {
        let (link, reply) = self.exchange(addr, req.into_msg()).await?;
        self.pool.release(link);
        msg::expect::<R>(reply)
    }

    /// The targets of the map, or the one named (bare ID or `t[ID]`): `(id, addr)`.
    pub async fn targets(&self, only: Option<&str>) -> Result<Vec<(NodeId, String)>> {
        let smap = self.smap().await?;
        let want = only.map(NodeId::parse_display);
        if let Some(w) = &want
            && !smap.targets.contains_key(w)
        {
            return Err(match smap.proxies.contains_key(w) {
                true => Error::BadRequest(format!("{w} is a proxy: give a target")),
                false => Error::NotFound(format!("node {w} is not in the cluster map")),
            });
        }
        Ok(smap
            .targets
            .values()
            .filter(|t| want.as_ref().is_none_or(|w| &t.id == w))
            .map(|t| (t.id.clone(), t.addr.clone()))
            .collect())
    }

    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        self.rpc(GetClusterStatus).await.map(|b| *b)
    }

    pub async fn rebalance_status(&self) -> Result<Option<RebalanceStatus>> {
        self.rpc(GetRebStatus).await.map(|o| o.map(|b| *b))
    }

    pub async fn config(&self) -> Result<ClusterConfig> {
        self.rpc(GetConfig).await.map(|b| *b)
    }

    /// A lifecycle operation (or its dry run when `req.dry_run`).
    pub async fn lifecycle(&self, req: LifecycleRequest) -> Result<LifecycleReply> {
        self.rpc(req).await.map(|b| *b)
    }

    pub async fn join(&self, addr: &str, role: Option<Role>) -> Result<LifecycleReply> {
        self.rpc(AdminJoin {
            addr: addr.to_string(),
            role,
        })
        .await
        .map(|b| *b)
    }

    pub async fn remove_from_smap(&self, node: NodeId) -> Result<LifecycleReply> {
        self.rpc(RemoveFromSmap { node }).await.map(|b| *b)
    }

    pub async fn cluster_op(&self, op: ClusterOp) -> Result<()> {
        self.rpc(op).await
    }

    /// S3 access keys: create (the answer has the secret, once), list, remove.
    pub async fn s3_keys(
        &self,
        op: crate::proto::msg::S3KeyOp,
    ) -> Result<crate::proto::msg::S3Keys> {
        self.rpc(op).await
    }

    // ---- buckets --------------------------------------------------------------------------

    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        self.rpc(CreateBucket {
            bucket: bucket.into(),
        })
        .await
    }

    pub async fn destroy_bucket(&self, bucket: &str) -> Result<()> {
        self.rpc(DestroyBucket {
            bucket: bucket.into(),
        })
        .await
    }

    pub async fn list_buckets(&self) -> Result<Vec<String>> {
        self.rpc(ListBuckets).await
    }

    // ---- objects --------------------------------------------------------------------------

    /// One page of a listing, in name order after `start_after`.
    pub async fn list_objects_page(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ObjPage> {
        self.rpc(ListObjects {
            bucket: bucket.into(),
            prefix: prefix.into(),
            start_after: start_after.map(str::to_string),
            limit: limit.min(MAX_PAGE) as u32,
            local: false,
        })
        .await
    }

    /// Every object in `bucket` under `prefix`, page by page.
    pub async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjEntry>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .list_objects_page(bucket, prefix, after.as_deref(), MAX_PAGE)
                .await?;
            out.extend(page.entries);
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// The map data requests are routed by: the cached one, else the endpoint's (cached).
    async fn routing_map(&self) -> Option<Arc<Smap>> {
        if let Some(s) = self.smap.read().expect("poisoned").clone() {
            return Some(s);
        }
        let s = Arc::new(self.smap().await.ok()?);
        *self.smap.write().expect("poisoned") = Some(s.clone());
        Some(s)
    }

    /// A target answered from a newer map, or could not be reached: route by a fresh one.
    fn forget_map(&self) {
        *self.smap.write().expect("poisoned") = None;
    }

    /// The owner target of `key`: from the cached map when there is one (no round trip), and
    /// whether it came from there.
    async fn owner_direct(&self, key: &ObjKey) -> Result<(NodeId, String, bool)> {
        if let Some(smap) = self.routing_map().await
            && let Some(n) = crate::logic::placement::owner(&smap, &key.bucket, &key.object)
        {
            return Ok((n.id.clone(), n.addr.clone(), true));
        }
        let (n, a) = self.owner_of(key).await?;
        Ok((n, a, false))
    }

    /// The owner target of `key` as the endpoint sees it.
    async fn owner_of(&self, key: &ObjKey) -> Result<(NodeId, String)> {
        match self.rpc(Locate { key: key.clone() }).await {
            Err(Error::Moved { node, addr }) => Ok((NodeId(node), addr)),
            Ok(_) => Err(Error::Protocol(
                "the endpoint answered a locate itself: is it a target?".into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// A request to a target; one that cannot be reached is reported offline. Not so a put
    /// that carried its body, once the request may have reached the target: it may have been
    /// stored (a stopped target takes it when it resumes), so the failure says that.
    async fn at_target(&self, node: &NodeId, addr: &str, msg: Msg) -> Result<(Link, Msg)> {
        let writes = matches!(&msg, Msg::Data(msg::Data::Put(p)) if p.inline.is_some());
        let token = self.token.clone();
        let failed = match self
            .pool
            .exchange_sent(addr, msg, self.timeout, token)
            .await
        {
            Ok(answer) => return Ok(answer),
            Err(f) => f,
        };
        let unknown = format!(
            "the put reached t[{node}] at {addr} but no answer came: it may have been stored"
        );
        Err(match failed.error {
            Error::Timeout(e) if writes && failed.sent => {
                Error::Timeout(format!("{unknown} ({e})"))
            }
            Error::Io(e) if writes && failed.sent => {
                Error::Io(std::io::Error::new(e.kind(), format!("{unknown} ({e})")))
            }
            e @ (Error::Io(_) | Error::Timeout(_)) => {
                Error::Offline(format!("target t[{node}] at {addr} is offline: {e}"))
            }
            other => other,
        })
    }

    /// Sends `msg` to the owner of `key`, following redirects from targets that know a newer
    /// map. Returns the link (for a body that follows) and the first reply.
    async fn to_owner(&self, key: &ObjKey, msg: Msg) -> Result<(Link, Msg)> {
        let (mut node, mut addr, mut direct) = self.owner_direct(key).await?;
        let deadline = std::time::Instant::now() + REDIRECT_SETTLE;
        let mut visited = vec![node.clone()];
        let mut pause = std::time::Duration::from_millis(10);
        let mut asked_proxy = false;
        while std::time::Instant::now() < deadline {
            let answer = match self.at_target(&node, &addr, msg.clone()).await {
                Ok((link, Msg::Error(w))) => {
                    self.pool.release(link);
                    Err(Error::from(w))
                }
                other => other,
            };
            let answer = match answer {
                // Our map (or a target's, which sent us here) named a target that is gone or
                // down, or one that cannot act as an owner now (it is behind on the map, cut
                // off, or restarted and not rejoined yet): ask the proxy, whose map is current
                // (it may name another owner, or say why there is none). When we were sent
                // here by a target that had not yet received the newest map, the proxy names
                // that target again: wait a moment for the map to reach it, as for redirects.
                Err(e @ (Error::Offline(_) | Error::Unavailable(_))) => {
                    if direct {
                        self.forget_map();
                        direct = false;
                    }
                    if asked_proxy {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(std::time::Duration::from_millis(500));
                    }
                    asked_proxy = true;
                    // The proxy's own failure is not reported: the request may have reached
                    // the target before it went silent, and "connection refused" from the
                    // proxy would claim that nothing was sent.
                    let Ok((n, a)) = self.owner_of(key).await else {
                        return Err(e);
                    };
                    if n == node {
                        // Still the owner: it is down or unavailable, not moved.
                        return Err(e);
                    }
                    (node, addr) = (n, a);
                    visited = vec![node.clone()];
                    continue;
                }
                other => other?,
            };
            match answer {
                (link, Msg::Redirect { node: n, addr: a }) => {
                    self.pool.release(link);
                    // The target knows a newer map than ours (or an older one: then the
                    // refetch costs one request and changes nothing).
                    if direct {
                        self.forget_map();
                        direct = false;
                    }
                    // Sent back to a target already asked: their maps disagree until the
                    // newest one reaches them all (metasync). Wait for that, briefly, rather
                    // than give up after a fixed number of hops.
                    if visited.contains(&n) {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(std::time::Duration::from_millis(500));
                        visited.clear();
                    }
                    visited.push(n.clone());
                    (node, addr) = (n, a);
                }
                other => return Ok(other),
            }
        }
        Err(Error::Protocol(format!(
            "{key}: too many redirects (the cluster map is changing)"
        )))
    }

    /// A typed request to the owner whose reply carries no body.
    async fn owner_rpc<R: Rpc>(&self, key: &ObjKey, req: R) -> Result<R::Reply> {
        let (link, reply) = self.to_owner(key, req.into_msg()).await?;
        self.pool.release(link);
        msg::expect::<R>(reply)
    }

    /// Puts `size` bytes from `src` as `bucket/object`; returns the stored checksum.
    pub async fn put<R: AsyncRead + Unpin>(
        &self,
        bucket: &str,
        object: &str,
        src: &mut R,
        size: u64,
    ) -> Result<String> {
        self.put_with(bucket, object, src, size, ObjAttrs::default())
            .await
    }

    /// As [`put`](Self::put), with attributes kept with the object (MD5, content type, user
    /// metadata).
    pub async fn put_with<R: AsyncRead + Unpin>(
        &self,
        bucket: &str,
        object: &str,
        src: &mut R,
        size: u64,
        attrs: ObjAttrs,
    ) -> Result<String> {
        self.put_from(bucket, object, PutBody::Reader(src), size, attrs)
            .await
    }

    async fn put_from<R: AsyncRead + Unpin>(
        &self,
        bucket: &str,
        object: &str,
        body: PutBody<'_, R>,
        size: u64,
        attrs: ObjAttrs,
    ) -> Result<String> {
        let key = ObjKey::new(bucket, object);
        // A small body goes with the request: one round trip, and a stale link or a redirect
        // resends the request whole. A larger one waits for the target's go-ahead (or
        // redirect, if it knows a newer map), so a stale link is retried without losing it.
        let mut read = Vec::new();
        let body = match body {
            PutBody::Reader(src) if size <= msg::INLINE_PUT => {
                read.resize(size as usize, 0);
                src.read_exact(&mut read).await?;
                PutBody::Bytes(&read[..])
            }
            other => other,
        };
        let inline = match &body {
            PutBody::Bytes(data) if data.len() as u64 <= msg::INLINE_PUT => Some(data.to_vec()),
            _ => None,
        };
        let put = Msg::from(PutObject {
            key: key.clone(),
            size,
            attrs,
            inline,
        });
        let (mut link, first) = self.to_owner(&key, put).await?;
        if let Msg::Reply(Reply::Put(done)) = first {
            self.pool.release(link);
            return Ok(done.checksum);
        }
        // A target that takes no body with the request asks for it.
        msg::expect_go_ahead(first)?;
        let corr = link.conn.last_corr();
        match body {
            PutBody::Reader(src) => link.conn.send_body(corr, src, size).await?,
            PutBody::Bytes(data) => link.conn.send_body_streamed(corr, data).await?,
        }
        match link.conn.finish(corr).await? {
            Msg::Reply(Reply::Put(done)) => {
                self.pool.release(link);
                Ok(done.checksum)
            }
            other => Err(Error::Protocol(format!(
                "unexpected {} after a put",
                other.name()
            ))),
        }
    }

    /// Puts `data`; sent again (up to three times) if the cluster map changed while it was in
    /// flight (nothing was stored then).
    pub async fn put_bytes(&self, bucket: &str, object: &str, data: &[u8]) -> Result<String> {
        let mut tries = 0;
        loop {
            let body = PutBody::<&[u8]>::Bytes(data);
            let size = data.len() as u64;
            match self
                .put_from(bucket, object, body, size, ObjAttrs::default())
                .await
            {
                Err(Error::MapChanged(_)) if tries < 3 => tries += 1,
                other => return other,
            }
        }
    }

    /// Puts a file; sent again like [`put_bytes`](Self::put_bytes) after a map change.
    pub async fn put_file(&self, path: &Path, bucket: &str, object: &str) -> Result<String> {
        let mut tries = 0;
        loop {
            let mut f = tokio::fs::File::open(path).await?;
            let size = f.metadata().await?.len();
            match self.put(bucket, object, &mut f, size).await {
                Err(Error::MapChanged(_)) if tries < 3 => tries += 1,
                other => return other,
            }
        }
    }

    /// Opens `bucket/object` for reading (all of it, or `range`): its metadata at once, its
    /// body as it is read. Memory stays at one chunk whatever the size.
    pub async fn open(
        &self,
        bucket: &str,
        object: &str,
        range: Option<ByteRange>,
    ) -> Result<(ObjMeta, Body)> {
        let key = ObjKey::new(bucket, object);
        let get = Msg::from(GetObject {
            key: key.clone(),
            verify: false,
            local: false,
            range,
        });
        let (link, reply) = self.to_owner(&key, get).await?;
        let meta = match reply {
            Msg::Reply(Reply::Object(m)) => m,
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected {} in reply to a get",
                    other.name()
                )));
            }
        };
        let left = match range {
            None => meta.size,
            Some(r) => r.within(meta.size).map(|(_, l)| l).unwrap_or(0),
        };
        let body = Body {
            link: Some(link),
            left,
            pool: self.pool.clone(),
            hash: range.is_none().then(Checksum::new),
            checksum: meta.checksum.clone(),
        };
        Ok((meta, body))
    }

    /// Streams `bucket/object` into `dst`; returns its metadata. The content is checked
    /// against the stored checksum.
    pub async fn get<W: AsyncWrite + Unpin>(
        &self,
        bucket: &str,
        object: &str,
        dst: &mut W,
        verify: bool,
    ) -> Result<ObjMeta> {
        let key = ObjKey::new(bucket, object);
        let get = Msg::from(GetObject {
            key: key.clone(),
            verify,
            local: false,
            range: None,
        });
        let (link, reply) = self.to_owner(&key, get).await?;
        let meta = match reply {
            Msg::Reply(Reply::Object(m)) => m,
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected {} in reply to a get",
                    other.name()
                )));
            }
        };
        let mut body = Body {
            link: Some(link),
            left: meta.size,
            pool: self.pool.clone(),
            hash: Some(Checksum::new()),
            checksum: meta.checksum.clone(),
        };
        while let Some(chunk) = body.next().await? {
            tokio::io::AsyncWriteExt::write_all(dst, &chunk).await?;
        }
        Ok(meta)
    }

    /// The whole of `bucket/object` in memory, checked against its stored checksum.
    pub async fn get_bytes(&self, bucket: &str, object: &str) -> Result<Vec<u8>> {
        let (meta, body) = self.open(bucket, object, None).await?;
        // Sized once: no regrowth copies.
        let mut out = Vec::with_capacity(meta.size.min(1 << 30) as usize);
        body.read_to_end(&mut out).await?;
        Ok(out)
    }

    pub async fn head(&self, bucket: &str, object: &str) -> Result<ObjMeta> {
        let key = ObjKey::new(bucket, object);
        let req = HeadObject {
            key: key.clone(),
            local: false,
        };
        self.owner_rpc(&key, req).await
    }

    pub async fn delete(&self, bucket: &str, object: &str) -> Result<()> {
        let key = ObjKey::new(bucket, object);
        let req = DeleteObject {
            key: key.clone(),
            local: false,
            stamp: None,
            smap_version: 0,
        };
        self.owner_rpc(&key, req).await
    }

    /// Owner target and mountpath of `bucket/object` under the current map.
    pub async fn locate(&self, bucket: &str, object: &str) -> Result<Location> {
        let key = ObjKey::new(bucket, object);
        self.owner_rpc(&key, Locate { key: key.clone() }).await
    }
}

/// Where a put's body comes from: a reader, or bytes in memory (sent from where they are).
enum PutBody<'a, R> {
    Reader(&'a mut R),
    Bytes(&'a [u8]),
}

/// An object body being read: chunks as they arrive. A whole body is checked against the
/// stored checksum at its end; the connection goes back to the pool once it is all read.
pub struct Body {
    link: Option<Link>,
    left: u64,
    pool: Arc<Pool>,
    hash: Option<Checksum>,
    checksum: String,
}

impl Body {
    /// Bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.left
    }

    /// The next chunk, `None` at the end. The last chunk comes only if the whole body matches
    /// its stored checksum: a reader that stops once it has [`remaining`](Self::remaining)
    /// down to zero never calls again, and must still be told.
    pub async fn next(&mut self) -> Result<Option<bytes::Bytes>> {
        if self.left == 0 {
            self.end()?;
            return Ok(None);
        }
        let Some(link) = self.link.as_mut() else {
            return Ok(None);
        };
        let d = link.conn.next_body_chunk(&mut self.left).await?;
        if let Some(h) = self.hash.as_mut() {
            h.update(&d);
        }
        if self.left == 0 {
            self.end()?;
        }
        Ok(Some(d))
    }

    /// All that is left of the body, appended to `out`: large chunks are read from the socket
    /// straight into it, not copied there from buffers of their own.
    pub async fn read_to_end(mut self, out: &mut Vec<u8>) -> Result<()> {
        while self.left > 0 {
            let Some(link) = self.link.as_mut() else {
                break;
            };
            let from = out.len();
            link.conn.next_body_chunk_into(out, &mut self.left).await?;
            if let Some(h) = self.hash.as_mut() {
                h.update(&out[from..]);
            }
        }
        self.end()
    }

    /// At the end of the body: checks it against the stored checksum (once) and gives the
    /// connection back to the pool.
    fn end(&mut self) -> Result<()> {
        if let Some(link) = self.link.take() {
            if let Some(h) = self.hash.take() {
                let sum = h.hex();
                if sum != self.checksum {
                    return Err(Error::Checksum(format!(
                        "received {sum}, stored {}",
                        self.checksum
                    )));
                }
            }
            self.pool.release(link);
        }
        Ok(())
    }
}

/// Parses `BUCKET/OBJECT` or `ais://BUCKET/OBJECT`.
pub fn parse_object_uri(s: &str) -> Result<(String, String)> {
    let rest = s.strip_prefix("ais://").unwrap_or(s);
    match rest.split_once('/') {
        Some((b, o)) if !b.is_empty() && !o.is_empty() => Ok((b.to_string(), o.to_string())),
        _ => Err(Error::BadRequest(format!(
            "expected BUCKET/OBJECT or ais://BUCKET/OBJECT, got {s:?}"
        ))),
    }
}

/// Parses `BUCKET` or `ais://BUCKET`.
pub fn parse_bucket_uri(s: &str) -> Result<String> {
    let b = s.strip_prefix("ais://").unwrap_or(s).trim_end_matches('/');
    crate::logic::names::validate_bucket(b)?;
    Ok(b.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_uris() {
        assert_eq!(
            parse_object_uri("ais://b/o/x").unwrap(),
            ("b".into(), "o/x".into())
        );
        assert_eq!(parse_object_uri("b/o").unwrap(), ("b".into(), "o".into()));
        assert!(parse_object_uri("b").is_err());
        assert!(parse_object_uri("/o").is_err());
        assert_eq!(parse_bucket_uri("ais://bk/").unwrap(), "bk");
        assert!(parse_bucket_uri("a b").is_err());
    }

    /// A fake node at a fresh address: answers every request on every connection with
    /// `answer(how many requests it had before, request)`.
    async fn fake_node(
        answer: impl Fn(usize, &Msg) -> Msg + Send + Sync + 'static,
    ) -> (String, tokio::task::JoinHandle<()>) {
        use crate::proto::codec::Conn;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let answer = Arc::new(answer);
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (answer, seen) = (answer.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut c = Conn::new(s, NodeId("fake".into()), 1 << 20);
                    while let Ok(Some(env)) = c.recv().await {
                        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let reply = answer(n, &env.body);
                        if c.send(env.corr, reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, task)
    }

    /// The first request on the first connection `t` accepts, as target t1 sees it.
    async fn first_request(
        t: &tokio::net::TcpListener,
    ) -> (crate::proto::codec::Conn, crate::proto::codec::Envelope) {
        let (s, _) = t.accept().await.unwrap();
        let mut c = crate::proto::codec::Conn::new(s, NodeId("t1".into()), 1 << 20);
        let env = c.recv().await.unwrap().unwrap();
        (c, env)
    }

    /// A proxy at a fresh address whose map names one target, t1 at `t_addr`: it serves the
    /// map once, then goes down.
    async fn proxy_serving_a_map_once(t_addr: &str) -> (String, Smap, tokio::task::JoinHandle<()>) {
        use crate::proto::codec::Conn;
        use crate::types::smap::Node;
        let p = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p_addr = p.local_addr().unwrap().to_string();
        let mut smap = Smap::bootstrap(Node::new(NodeId("p1".into()), Role::Proxy, p_addr.clone()));
        let tn = Node::new(NodeId("t1".into()), Role::Target, t_addr.to_string());
        smap.targets.insert(tn.id.clone(), tn);
        let served = smap.clone();
        let task = tokio::spawn(async move {
            let (s, _) = p.accept().await.unwrap();
            let mut c = Conn::new(s, NodeId("p1".into()), 1 << 20);
            let env = c.recv().await.unwrap().unwrap();
            c.send(env.corr, Msg::Reply(Reply::Smap(served)))
                .await
                .unwrap();
        });
        (p_addr, smap, task)
    }

    /// Maps disagree for a moment after a node was removed: the client's (fresh) map names A,
    /// A's (not yet updated) sends it to B, and B, cut off and removed, refuses to act as the
    /// owner. The client asks the proxy again rather than fail: it names A, which has the new
    /// map by then and answers.
    #[tokio::test]
    async fn an_unavailable_target_a_stale_redirect_named_is_looked_up_again() {
        use crate::types::smap::Node;
        let (b_addr, b) = fake_node(|_, _| {
            Msg::from(Error::Unavailable(
                "t[B] has not heard from the primary for 301 s".into(),
            ))
        })
        .await;
        let to_b = b_addr.clone();
        let (a_addr, a) = fake_node(move |n, _| match n {
            0 => Msg::Redirect {
                node: NodeId("B".into()),
                addr: to_b.clone(),
            },
            _ => Msg::Reply(Reply::Object(ObjMeta {
                size: 7,
                ..Default::default()
            })),
        })
        .await;
        // The proxy: a map in which A owns everything, and "A" to every locate.
        let mut smap = Smap::bootstrap(Node::new(NodeId("P".into()), Role::Proxy, "-".into()));
        let an = Node::new(NodeId("A".into()), Role::Target, a_addr.clone());
        smap.targets.insert(an.id.clone(), an);
        let (p_addr, p) = fake_node(move |_, m| match m {
            Msg::Query(msg::Query::GetSmap(_)) => Msg::Reply(Reply::Smap(smap.clone())),
            _ => Msg::Redirect {
                node: NodeId("A".into()),
                addr: a_addr.clone(),
            },
        })
        .await;
        let client = Client::new(p_addr).with_timeout(Duration::from_secs(5));
        let meta = client.head("b", "o").await.unwrap();
        assert_eq!(meta.size, 7);
        for t in [a, b, p] {
            t.abort();
        }
    }

    /// A target that predates bodies sent with the put (it ignores the field) answers
    /// go-ahead: the client then sends the body as chunks, and the put completes. One that
    /// takes it answers at once. Either way the target sees the whole body once.
    #[tokio::test]
    async fn a_small_put_goes_whole_with_its_request_and_is_resent_to_a_target_that_asks() {
        for takes_inline in [true, false] {
            let t = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let t_addr = t.local_addr().unwrap().to_string();
            let target = tokio::spawn(async move {
                let (mut c, env) = first_request(&t).await;
                let Msg::Data(msg::Data::Put(put)) = env.body else {
                    panic!("not a put: {:?}", env.body.name());
                };
                assert_eq!(put.inline.as_ref().map(Vec::len), Some(put.size as usize));
                let body = if takes_inline {
                    put.inline.unwrap()
                } else {
                    c.send(env.corr, Msg::Reply(Reply::Ok)).await.unwrap();
                    let mut body = Vec::new();
                    c.recv_body(&mut body, put.size, |_| {}).await.unwrap();
                    body
                };
                let done = msg::PutDone {
                    version: 1,
                    checksum: crate::types::checksum::of(&body),
                };
                c.send(env.corr, Msg::Reply(Reply::Put(done)))
                    .await
                    .unwrap();
                body
            });
            let (p_addr, _, proxy) = proxy_serving_a_map_once(&t_addr).await;
            let client = Client::new(p_addr).with_timeout(Duration::from_secs(5));
            let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
            let sum = client.put_bytes("b", "o", &data).await.unwrap();
            assert_eq!(sum, crate::types::checksum::of(&data), "{takes_inline}");
            assert_eq!(target.await.unwrap(), data, "{takes_inline}");
            proxy.await.unwrap();
        }
    }

    /// A small put carries its body: once the request reached the target, a silence (here a
    /// target that takes it and stops, as under SIGSTOP, resuming later) is not "offline",
    /// which callers take as nothing done, but a put that may have been stored. A target no
    /// connection reaches is offline: nothing was sent.
    #[tokio::test]
    async fn a_put_that_reached_a_silent_target_may_be_stored_and_is_not_called_offline() {
        use crate::types::smap::Node;
        let t = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let t_addr = t.local_addr().unwrap().to_string();
        let (took, taken) = tokio::sync::oneshot::channel();
        let target = tokio::spawn(async move {
            let (mut c, env) = first_request(&t).await;
            let _ = took.send(env.body);
            // Silent until the client gives up.
            let _ = c.recv().await;
        });
        let (p_addr, smap, proxy) = proxy_serving_a_map_once(&t_addr).await;
        let client = Client::new(p_addr).with_timeout(Duration::from_millis(500));
        let err = client.put_bytes("b", "o", b"hello").await.unwrap_err();
        let body = taken.await.unwrap();
        assert!(
            matches!(&body, Msg::Data(msg::Data::Put(p)) if p.inline.as_deref() == Some(b"hello")),
            "{}",
            body.name()
        );
        let m = err.to_string();
        assert!(
            matches!(err, Error::Timeout(_)) && m.contains("may have been stored"),
            "{m}"
        );
        target.abort();
        proxy.await.unwrap();
        // The same put to a target that takes no connection: offline, nothing sent.
        drop(target);
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = closed.local_addr().unwrap().to_string();
        drop(closed);
        let mut smap2 = smap;
        let tn = Node::new(NodeId("t1".into()), Role::Target, gone);
        smap2.targets.insert(tn.id.clone(), tn);
        let (p2_addr, p2) = fake_node(move |_, m| match m {
            Msg::Query(msg::Query::GetSmap(_)) => Msg::Reply(Reply::Smap(smap2.clone())),
            // The proxy's map names the same target.
            _ => Msg::Redirect {
                node: NodeId("t1".into()),
                addr: "127.0.0.1:1".into(),
            },
        })
        .await;
        let client = Client::new(p2_addr).with_timeout(Duration::from_millis(500));
        let err = client.put_bytes("b", "o", b"hello").await.unwrap_err();
        assert!(matches!(err, Error::Offline(_)), "{err}");
        p2.abort();
    }

    /// A delete goes straight to the owner named by the client's map; the target takes it and
    /// goes silent before answering, and the proxy is down too. The caller must learn that the link
    /// to the target broke (the delete may have happened), not the proxy's "connection
    /// refused" (which would say nothing was sent).
    #[tokio::test]
    async fn a_request_lost_with_its_target_is_not_reported_as_refused_by_the_proxy() {
        let t = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let t_addr = t.local_addr().unwrap().to_string();
        let target = tokio::spawn(async move {
            let (mut c, env) = first_request(&t).await;
            assert!(matches!(env.body, Msg::Data(msg::Data::Delete(_))));
            // Stopped (SIGSTOP) before answering: silent until the client gives up.
            drop(t);
            let _ = c.recv().await;
        });
        let (p_addr, _, proxy) = proxy_serving_a_map_once(&t_addr).await;
        let client = Client::new(p_addr).with_timeout(Duration::from_secs(1));
        let err = client.delete("b", "o").await.unwrap_err();
        target.await.unwrap();
        proxy.await.unwrap();
        let m = err.to_string();
        assert!(
            matches!(err, Error::Offline(_)) && m.contains("t[t1]") && !m.contains("refused"),
            "{m}"
        );
    }
}
