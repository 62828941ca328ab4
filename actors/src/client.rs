//! Typed client: what `nodectl`, the console and the tests use to talk to a cluster.
//!
//! It speaks to any proxy; data requests are redirected to the owning target and followed here,
//! so proxies never carry object data.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::lifecycle::{LifecycleReply, LifecycleRequest};
use crate::rebalance::RebalanceStatus;
use crate::smap::{NodeId, Role, Smap};
use crate::stats::ClusterStatus;
use crate::store::ObjMeta;
use crate::wire::{ClusterOp, Conn, Msg, ObjEntry, ObjKey};

/// Identity clients put in the `from` field.
pub const CLIENT_ID: &str = "cli";

#[derive(Clone, Debug)]
pub struct Client {
    /// `host:port` of a proxy.
    pub endpoint: String,
    pub token: Option<String>,
    /// Connect and per-reply timeout for control requests.
    pub timeout: Duration,
    /// Idle connections by address, shared by clones: an operation costs no TCP handshakes.
    pool: std::sync::Arc<Pool>,
}

/// Idle connections, at most [`POOL_PER_ADDR`] per address.
#[derive(Default)]
struct Pool(std::sync::Mutex<std::collections::HashMap<String, Vec<Conn>>>);

const POOL_PER_ADDR: usize = 16;

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

/// A connection in use, and whether it came from the pool (it may have gone stale).
struct Link {
    conn: Conn,
    addr: String,
    reused: bool,
}

/// Errors of the link itself (not an answer from the peer).
fn is_transport(e: &Error) -> bool {
    matches!(
        e,
        Error::Io(_) | Error::Decode(_) | Error::Protocol(_) | Error::Timeout(_)
    )
}

/// Where an object lives.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub target: String,
    pub mountpath: String,
}

impl Client {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Client {
            endpoint: endpoint.into(),
            token: None,
            timeout: Duration::from_secs(30),
            pool: Default::default(),
        }
    }

    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn conn(&self, addr: &str) -> Result<Conn> {
        let mut c = Conn::connect(addr, NodeId(CLIENT_ID.into()), self.timeout).await?;
        c.token = self.token.clone();
        Ok(c)
    }

    /// A pooled connection to `addr`, or a new one.
    async fn link(&self, addr: &str, fresh: bool) -> Result<Link> {
        let pooled = if fresh {
            None
        } else {
            self.pool
                .0
                .lock()
                .expect("poisoned")
                .get_mut(addr)
                .and_then(|v| v.pop())
        };
        match pooled {
            Some(conn) => Ok(Link {
                conn,
                addr: addr.to_string(),
                reused: true,
            }),
            None => Ok(Link {
                conn: self.conn(addr).await?,
                addr: addr.to_string(),
                reused: false,
            }),
        }
    }

    /// Returns a connection whose exchanges all completed.
    fn release(&self, link: Link) {
        let mut idle = self.pool.0.lock().expect("poisoned");
        let v = idle.entry(link.addr).or_default();
        if v.len() < POOL_PER_ADDR {
            v.push(link.conn);
        }
    }

    /// One request to `addr` and its reply; a pooled link that turns out stale (the peer
    /// restarted) is replaced by a new one once. The link is handed back for any body.
    async fn exchange(&self, addr: &str, msg: Msg) -> Result<(Link, Msg)> {
        let mut link = self.link(addr, false).await?;
        let res = tokio::time::timeout(self.timeout, link.conn.request(msg.clone())).await;
        let res = match res {
            Ok(Err(e)) if link.reused && is_transport(&e) => {
                link = self.link(addr, true).await?;
                tokio::time::timeout(self.timeout, link.conn.request(msg)).await
            }
            other => other,
        };
        match res {
            Err(_) => Err(Error::Timeout(format!(
                "no answer from {addr} within {:?}",
                self.timeout
            ))),
            Ok(Ok(reply)) => Ok((link, reply)),
            Ok(Err(e)) => {
                if !is_transport(&e) {
                    self.release(link);
                }
                Err(e)
            }
        }
    }

    /// One control request to the endpoint, with the timeout applied to the exchange.
    pub async fn call(&self, msg: Msg) -> Result<Msg> {
        let (link, reply) = self.exchange(&self.endpoint.clone(), msg).await?;
        self.release(link);
        Ok(reply)
    }

    pub async fn smap(&self) -> Result<Smap> {
        match self.call(Msg::GetSmap).await? {
            Msg::Smap(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        match self.call(Msg::GetClusterStatus).await? {
            Msg::ClusterStatus(s) => Ok(*s),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn rebalance_status(&self) -> Result<Option<RebalanceStatus>> {
        match self.call(Msg::GetRebStatus).await? {
            Msg::RebStatus(s) => Ok(s.map(|b| *b)),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn config(&self) -> Result<ClusterConfig> {
        match self.call(Msg::GetConfig).await? {
            Msg::Config(c) => Ok(*c),
            other => Err(unexpected(&other)),
        }
    }

    /// A lifecycle operation (or its dry run when `req.dry_run`).
    pub async fn lifecycle(&self, req: LifecycleRequest) -> Result<LifecycleReply> {
        lifecycle_reply(self.call(Msg::Lifecycle(req)).await?)
    }

    pub async fn join(&self, addr: &str, role: Option<Role>) -> Result<LifecycleReply> {
        lifecycle_reply(
            self.call(Msg::JoinByAdmin {
                addr: addr.to_string(),
                role,
            })
            .await?,
        )
    }

    pub async fn remove_from_smap(&self, node: NodeId) -> Result<LifecycleReply> {
        lifecycle_reply(self.call(Msg::RemoveFromSmap { node }).await?)
    }

    pub async fn cluster_op(&self, op: ClusterOp) -> Result<()> {
        expect_ok(self.call(Msg::Cluster(op)).await?)
    }

    // ---- buckets --------------------------------------------------------------------------

    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        expect_ok(
            self.call(Msg::CreateBucket {
                bucket: bucket.into(),
            })
            .await?,
        )
    }

    pub async fn destroy_bucket(&self, bucket: &str) -> Result<()> {
        expect_ok(
            self.call(Msg::DestroyBucket {
                bucket: bucket.into(),
            })
            .await?,
        )
    }

    pub async fn list_buckets(&self) -> Result<Vec<String>> {
        match self.call(Msg::ListBuckets).await? {
            Msg::Buckets(b) => Ok(b),
            other => Err(unexpected(&other)),
        }
    }

    // ---- objects --------------------------------------------------------------------------

    pub async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjEntry>> {
        match self
            .call(Msg::ListObjects {
                bucket: bucket.into(),
                prefix: prefix.into(),
                local: false,
            })
            .await?
        {
            Msg::Objects(o) => Ok(o),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the proxy which target owns `key`: its ID and address.
    async fn redirected(&self, probe: Msg) -> Result<(NodeId, String)> {
        match self.call(probe).await? {
            Msg::Redirect { node, addr } => Ok((node, addr)),
            other => Err(unexpected(&other)),
        }
    }

    /// A request to a target; a target that cannot be reached is reported offline.
    async fn at_target(&self, node: &NodeId, addr: &str, msg: Msg) -> Result<(Link, Msg)> {
        self.exchange(addr, msg).await.map_err(|e| match e {
            Error::Io(_) | Error::Timeout(_) => {
                Error::Offline(format!("target t[{node}] at {addr} is offline: {e}"))
            }
            other => other,
        })
    }

    /// Puts `size` bytes from `src` as `bucket/object`; returns the stored checksum.
    pub async fn put<R: AsyncRead + Unpin>(
        &self,
        bucket: &str,
        object: &str,
        src: &mut R,
        size: u64,
    ) -> Result<String> {
        let key = ObjKey {
            bucket: bucket.into(),
            object: object.into(),
        };
        let (mut node, mut addr) = self.redirected(Msg::Locate { key: key.clone() }).await?;
        // Two phases: the target says go ahead (or redirects, if it knows a newer map) before
        // any byte of the body is sent, so a stale link is retried without losing the body.
        for _ in 0..3 {
            let put = Msg::PutObject {
                key: key.clone(),
                size,
            };
            match self.at_target(&node, &addr, put).await? {
                (mut link, Msg::Ok) => {
                    let corr = link.conn.last_corr();
                    link.conn.send_body(corr, src, size).await?;
                    return match link.conn.finish(corr).await? {
                        Msg::Put { checksum, .. } => {
                            self.release(link);
                            Ok(checksum)
                        }
                        other => Err(unexpected(&other)),
                    };
                }
                (link, Msg::Redirect { node: n, addr: a }) => {
                    self.release(link);
                    (node, addr) = (n, a);
                }
                (_, other) => return Err(unexpected(&other)),
            }
        }
        Err(Error::Protocol(format!(
            "{bucket}/{object}: too many redirects (the cluster map is changing)"
        )))
    }

    /// Sends `probe` to the owner, following a redirect from a target with a newer map.
    async fn to_owner(&self, probe: Msg) -> Result<(Link, Msg)> {
        let (mut node, mut addr) = self
            .redirected(Msg::Locate {
                key: key_of(&probe),
            })
            .await?;
        for _ in 0..3 {
            match self.at_target(&node, &addr, probe.clone()).await? {
                (link, Msg::Redirect { node: n, addr: a }) => {
                    self.release(link);
                    (node, addr) = (n, a);
                }
                other => return Ok(other),
            }
        }
        Err(Error::Protocol(
            "too many redirects (the cluster map is changing)".into(),
        ))
    }

    /// A request to the owner whose reply carries no body.
    async fn owner_call(&self, probe: Msg) -> Result<Msg> {
        let (link, reply) = self.to_owner(probe).await?;
        self.release(link);
        Ok(reply)
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
        let key = ObjKey {
            bucket: bucket.into(),
            object: object.into(),
        };
        let (mut link, reply) = self
            .to_owner(Msg::GetObject {
                key,
                verify,
                local: false,
            })
            .await?;
        let meta = match reply {
            Msg::Object(m) => m,
            other => return Err(unexpected(&other)),
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        link.conn.recv_body(dst, meta.size, |d| h.update(d)).await?;
        self.release(link);
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
        let key = ObjKey {
            bucket: bucket.into(),
            object: object.into(),
        };
        match self
            .to_owner(Msg::HeadObject { key, local: false })
            .await?
            .1
        {
            Msg::Object(m) => Ok(m),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn delete(&self, bucket: &str, object: &str) -> Result<()> {
        let key = ObjKey {
            bucket: bucket.into(),
            object: object.into(),
        };
        expect_ok(
            self.owner_call(Msg::DeleteObject { key, local: false })
                .await?,
        )
    }

    /// Owner target and mountpath of `bucket/object` under the current map.
    pub async fn locate(&self, bucket: &str, object: &str) -> Result<Location> {
        let key = ObjKey {
            bucket: bucket.into(),
            object: object.into(),
        };
        match self.owner_call(Msg::Locate { key }).await? {
            Msg::Located { target, mountpath } => Ok(Location {
                target: target.0,
                mountpath,
            }),
            other => Err(unexpected(&other)),
        }
    }
}

fn key_of(m: &Msg) -> ObjKey {
    match m {
        Msg::GetObject { key, .. }
        | Msg::HeadObject { key, .. }
        | Msg::DeleteObject { key, .. }
        | Msg::Locate { key }
        | Msg::PutObject { key, .. } => key.clone(),
        _ => ObjKey {
            bucket: String::new(),
            object: String::new(),
        },
    }
}

fn lifecycle_reply(m: Msg) -> Result<LifecycleReply> {
    match m {
        Msg::LifecycleReply(r) => Ok(r),
        other => Err(unexpected(&other)),
    }
}

fn expect_ok(m: Msg) -> Result<()> {
    match m {
        Msg::Ok => Ok(()),
        other => Err(unexpected(&other)),
    }
}

pub(crate) fn unexpected(m: &Msg) -> Error {
    Error::Protocol(format!("unexpected reply: {}", m.name()))
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
    crate::store::validate_bucket(b)?;
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
