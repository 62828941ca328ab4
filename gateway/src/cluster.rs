//! The gateway's view of the cluster: typed clients to reach it, a short-lived cache of the
//! cluster map (for redirects and the native `smap`), each node's HTTP URL, and listing pages.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_actors::client::Client;
use shoal_actors::types::object::ObjEntry;
use shoal_actors::types::smap::{Node, Role, Smap};

use crate::error::{Error, Result};

/// A map younger than this is used as is; redirects that turn out stale are corrected by the
/// owner, which redirects again (the client follows).
const SMAP_TTL: Duration = Duration::from_millis(500);
/// Transient cluster errors (busy, target offline, timeouts) are retried this many times.
const RETRIES: u32 = 6;

/// How to find another node's HTTP URL from its cluster-map address (`host:port` of its
/// MessagePack listener).
///
/// TODO(lead): once the map (or `show cluster`) carries each node's HTTP URL, use it and drop
/// this mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerUrls {
    /// HTTP is served on the `--listen` port itself (the listener sniffs the first bytes).
    Listen,
    /// Every node serves HTTP on its `--listen` port plus this offset (`noded --http` with the
    /// same offset on every node; the playground and the tests start nodes that way).
    PortOffset(i32),
}

impl PeerUrls {
    /// `http://host:port` of a node whose cluster address is `addr`.
    pub fn url_for(&self, addr: &str) -> String {
        match self {
            PeerUrls::Listen => format!("http://{addr}"),
            PeerUrls::PortOffset(off) => match addr.rsplit_once(':') {
                Some((host, port)) => match port.parse::<i32>() {
                    Ok(p) => format!("http://{host}:{}", p + off),
                    Err(_) => format!("http://{addr}"),
                },
                None => format!("http://{addr}"),
            },
        }
    }
}

pub struct Cluster {
    role: Role,
    peer_urls: PeerUrls,
    /// This node's own HTTP URL, as configured (other nodes' come from `peer_urls`).
    public_http: String,
    /// A client of this very node: maps, config and status are answered by any node.
    own: Client,
    /// The live auth settings (the gateway signs its own requests to its node with them).
    auth: crate::auth::AuthSource,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    smap: Option<(Instant, Arc<Smap>)>,
    /// The client for data and control requests, by endpoint: on a proxy its own node, on a
    /// target the primary (a target answers `Locate` for its own objects with the location, not
    /// a redirect, so the typed client must start at a proxy).
    data: Option<(String, Client)>,
}

impl Cluster {
    pub fn new(
        node_addr: &str,
        role: Role,
        peer_urls: PeerUrls,
        public_http: &str,
        auth: crate::auth::AuthSource,
    ) -> Self {
        Cluster {
            role,
            peer_urls,
            public_http: public_http.trim_end_matches('/').to_string(),
            own: Client::new(node_addr).with_timeout(Duration::from_secs(30)),
            auth,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The gateway's own short-lived token for what it asks its node itself (the map), when
    /// auth is on: it is part of the node and knows the node's secret.
    fn service_token(&self) -> Option<String> {
        let cfg = (self.auth)();
        if !cfg.enabled || cfg.secret.is_empty() {
            return None;
        }
        let now = shoal_actors::types::unix_secs();
        let claims = shoal_actors::logic::auth::jwt::Claims {
            sub: format!("gateway:{}", self.own.endpoint),
            exp: now + 60,
            admin: false,
            iat: Some(now),
            cluster: None,
            jti: None,
        };
        shoal_actors::logic::auth::jwt::sign(&claims, cfg.secret.as_bytes()).ok()
    }

    /// This node's `/metrics` text, from the node itself.
    pub async fn metrics(&self) -> Result<String> {
        let own = self.own.clone().with_token(self.service_token());
        Ok(own.rpc(shoal_actors::proto::msg::GetMetrics).await?)
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn http_url(&self, node: &Node) -> String {
        if node.addr == self.own.endpoint && !self.public_http.is_empty() {
            return self.public_http.clone();
        }
        self.peer_urls.url_for(&node.addr)
    }

    /// The cluster map, at most [`SMAP_TTL`] old.
    pub async fn smap(&self) -> Result<Arc<Smap>> {
        if let Some((at, s)) = &self.cache.lock().expect("poisoned").smap
            && at.elapsed() < SMAP_TTL
        {
            return Ok(s.clone());
        }
        let own = self.own.clone().with_token(self.service_token());
        let s = Arc::new(own.smap().await?);
        self.cache.lock().expect("poisoned").smap = Some((Instant::now(), s.clone()));
        Ok(s)
    }

    /// Forgets the cached map (after an error that a newer map may explain).
    pub fn invalidate(&self) {
        self.cache.lock().expect("poisoned").smap = None;
    }

    /// A client for data and control requests, carrying `token`.
    pub async fn client(&self, token: Option<String>) -> Result<Client> {
        let endpoint = match self.role {
            Role::Proxy => self.own.endpoint.clone(),
            Role::Target => {
                let smap = self.smap().await?;
                smap.proxies
                    .get(&smap.primary)
                    .map(|p| p.addr.clone())
                    .ok_or_else(|| {
                        Error::Cluster(shoal_actors::Error::Offline(
                            "the cluster map names no primary".into(),
                        ))
                    })?
            }
        };
        let mut cache = self.cache.lock().expect("poisoned");
        let client = match &cache.data {
            Some((e, c)) if *e == endpoint => c.clone(),
            _ => {
                let c = Client::new(endpoint.clone()).with_timeout(Duration::from_secs(30));
                cache.data = Some((endpoint, c.clone()));
                c
            }
        };
        Ok(client.with_token(token))
    }

    /// Runs `f` with a client, again after a short pause while the cluster answers with a
    /// transient error (a target going offline mid-rebalance, a busy bucket map). Only for
    /// requests that consumed nothing of the client's body.
    pub async fn retry<T, F, Fut>(&self, token: Option<String>, mut f: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut pause = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let c = self.client(token.clone()).await?;
            match f(c).await {
                Err(e) if e.is_transient() && attempt < RETRIES => {
                    tracing::debug!(error = %e, attempt, "transient cluster error, retrying");
                    self.invalidate();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The owning target of `bucket/object` under the current map.
    pub async fn owner(&self, bucket: &str, object: &str) -> Result<Node> {
        let smap = self.smap().await?;
        shoal_actors::logic::placement::owner(&smap, bucket, object)
            .cloned()
            .ok_or_else(|| {
                Error::Cluster(shoal_actors::Error::Offline(
                    "no active targets in the cluster".into(),
                ))
            })
    }
}

/// One page of a listing: up to `limit` entries named after `start_after`, in name order, and
/// the token for the next page (the last name returned) when more remain. The cluster pages
/// itself: each target lists only its share of this page, merged by the proxy.
pub async fn list_objects_page(
    client: &Client,
    bucket: &str,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<(Vec<ObjEntry>, Option<String>)> {
    let page = client
        .list_objects_page(bucket, prefix, start_after, limit.max(1))
        .await?;
    Ok((page.entries, page.next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls() {
        assert_eq!(
            PeerUrls::Listen.url_for("127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            PeerUrls::PortOffset(1000).url_for("127.0.0.1:8080"),
            "http://127.0.0.1:9080"
        );
        assert_eq!(
            PeerUrls::PortOffset(-5).url_for("[::1]:8080"),
            "http://[::1]:8075"
        );
        assert_eq!(PeerUrls::PortOffset(1).url_for("nohost"), "http://nohost");
    }
}
