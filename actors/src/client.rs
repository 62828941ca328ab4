//! The typed client: what `nodectl`, the console, the HTTP gateway and the tests use to talk to
//! a cluster.
//!
//! It speaks to any proxy; data requests are redirected to the owning target and followed here,
//! so proxies never carry object data. Connections are pooled per address and shared by clones
//! (the same pool and retry rule the nodes use).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};
use crate::proto::msg::{
    self, AdminJoin, CreateBucket, DeleteObject, DestroyBucket, GetClusterStatus, GetConfig,
    GetObject, GetRebStatus, GetSmap, HeadObject, ListBuckets, ListObjects, Locate, Located, Msg,
    PutObject, RemoveFromSmap, Reply, Rpc,
};
use crate::proto::pool::{Link, Pool};
use crate::types::config::ClusterConfig;
use crate::types::lifecycle::{ClusterOp, LifecycleReply, LifecycleRequest};
use crate::types::object::{MAX_PAGE, ObjEntry, ObjKey, ObjMeta, ObjPage};
use crate::types::smap::{NodeId, Role, Smap};
use crate::types::status::{ClusterStatus, RebalanceStatus};

/// Identity clients put in the `from` field.
pub const CLIENT_ID: &str = "cli";

/// Redirects followed before giving up (the map is changing under us).
const MAX_REDIRECTS: usize = 3;

#[derive(Clone, Debug)]
pub struct Client {
    /// `host:port` of a proxy.
    pub endpoint: String,
    pub token: Option<String>,
    /// Connect and per-reply timeout.
    pub timeout: Duration,
    pool: Arc<Pool>,
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

    /// A request to a target; one that cannot be reached is reported offline.
    async fn at_target(&self, node: &NodeId, addr: &str, msg: Msg) -> Result<(Link, Msg)> {
        self.exchange(addr, msg).await.map_err(|e| match e {
            Error::Io(_) | Error::Timeout(_) => {
                Error::Offline(format!("target t[{node}] at {addr} is offline: {e}"))
            }
            other => other,
        })
    }

    /// Sends `msg` to the owner of `key`, following redirects from targets that know a newer
    /// map. Returns the link (for a body that follows) and the first reply.
    async fn to_owner(&self, key: &ObjKey, msg: Msg) -> Result<(Link, Msg)> {
        let (mut node, mut addr) = self.owner_of(key).await?;
        for _ in 0..MAX_REDIRECTS {
            match self.at_target(&node, &addr, msg.clone()).await? {
                (link, Msg::Redirect { node: n, addr: a }) => {
                    self.pool.release(link);
                    (node, addr) = (n, a);
                }
                (link, Msg::Error(w)) => {
                    self.pool.release(link);
                    return Err(w.into());
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
        let key = ObjKey::new(bucket, object);
        // Two phases: the target says go ahead (or redirects, if it knows a newer map) before
        // any byte of the body is sent, so a stale link is retried without losing the body.
        let put = Msg::from(PutObject {
            key: key.clone(),
            size,
        });
        let (mut link, first) = self.to_owner(&key, put).await?;
        msg::expect_go_ahead(first)?;
        let corr = link.conn.last_corr();
        link.conn.send_body(corr, src, size).await?;
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

    pub async fn put_bytes(&self, bucket: &str, object: &str, data: &[u8]) -> Result<String> {
        let mut r = data;
        self.put(bucket, object, &mut r, data.len() as u64).await
    }

    pub async fn put_file(&self, path: &Path, bucket: &str, object: &str) -> Result<String> {
        let mut f = tokio::fs::File::open(path).await?;
        let size = f.metadata().await?.len();
        self.put(bucket, object, &mut f, size).await
    }

    /// Streams `bucket/object` into `dst`; returns its metadata.
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
        });
        let (mut link, reply) = self.to_owner(&key, get).await?;
        let meta = match reply {
            Msg::Reply(Reply::Object(m)) => m,
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected {} in reply to a get",
                    other.name()
                )));
            }
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        link.conn.recv_body(dst, meta.size, |d| h.update(d)).await?;
        self.pool.release(link);
        let sum = format!("{:016x}", h.digest());
        if sum != meta.checksum {
            return Err(Error::Checksum(format!(
                "{bucket}/{object}: received {sum}, stored {}",
                meta.checksum
            )));
        }
        Ok(meta)
    }

    pub async fn get_bytes(&self, bucket: &str, object: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.get(bucket, object, &mut out, false).await?;
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
        };
        self.owner_rpc(&key, req).await
    }

    /// Owner target and mountpath of `bucket/object` under the current map.
    pub async fn locate(&self, bucket: &str, object: &str) -> Result<Location> {
        let key = ObjKey::new(bucket, object);
        self.owner_rpc(&key, Locate { key: key.clone() }).await
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
}
