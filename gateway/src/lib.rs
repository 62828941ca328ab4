//! Shoal's HTTP front door (DESIGN §13): AIStore's native REST API under `/v1/` and S3 under
//! `/s3/`, served on HTTP/1.1 and translated onto the cluster through the typed
//! [`Client`](shoal_actors::client::Client) — the gateway adds no cluster state of its own.
//!
//! - [`native`]: the subset of AIStore's API its Python SDK and Go API call. Proxies answer
//!   object GET/PUT with `307` to the owning target's HTTP address, as AIStore does; targets
//!   serve the bytes.
//! - [`s3`]: the S3 protocol through `s3s` (XML, SigV4, multipart) under `/s3/` — and at the
//!   root for clients whose endpoint cannot carry a path (minio, s3cmd) — served on every node;
//!   on a proxy the bytes stream through in bounded chunks (S3 clients do not re-send a PUT
//!   body on a redirect).
//! - [`Rewind`] replays the bytes a listener sniffed to tell HTTP from MessagePack.
//!
//! Entry points: [`Gateway::new`], [`serve_connection`] (one accepted connection), [`serve`]
//! (`noded --http HOST:PORT`).

pub mod auth;
mod body;
mod chunked;
mod cluster;
mod data;
pub mod error;
mod native;
mod rewind;
pub mod s3;
mod stream;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use shoal_actors::types::smap::Role;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{AccessKeys, AuthSettings, ClusterKeys, StaticKeys};
pub use body::GwBody;
pub use cluster::PeerUrls;
pub use error::{Error, Result};
pub use rewind::{Rewind, Sniffed, sniff};

/// Request headers larger than this are refused (431) before any handler runs.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most headers one request may carry.
const MAX_HEADERS: usize = 128;
/// A connection that sends no complete request head within this long is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How a gateway is set up.
pub struct GatewayConfig {
    /// This node's MessagePack address (`--listen`): the gateway is a client of its own node.
    pub node_addr: String,
    /// Proxies redirect object data; targets serve it.
    pub role: Role,
    /// The URL base this node's HTTP is reachable at (`http://HOST:PORT`), shown as its
    /// `direct_url` and used in redirects to it.
    pub public_http: String,
    /// How other nodes' HTTP URLs are derived from their cluster-map address.
    pub peer_urls: PeerUrls,
    pub auth: AuthSettings,
    /// S3 virtual-host-style addressing: `BUCKET.<s3_domain>` in the `Host` header names the
    /// bucket. `None`: path style only.
    pub s3_domain: Option<String>,
}

/// One node's HTTP front door. Cheap to share: serve every connection with the same `Arc`.
pub struct Gateway {
    cfg: GatewayConfig,
    cluster: cluster::Cluster,
    s3: s3::S3Front,
    /// Memory for request bodies read whole before they are sent ([`data::BUFFER_BUDGET`]).
    buffers: tokio::sync::Semaphore,
}

impl Gateway {
    pub fn new(cfg: GatewayConfig) -> Arc<Self> {
        let cluster = cluster::Cluster::new(
            &cfg.node_addr,
            cfg.role,
            cfg.peer_urls.clone(),
            &cfg.public_http,
            cfg.auth.cluster.clone(),
        );
        Arc::new_cyclic(|weak| Gateway {
            s3: s3::S3Front::new(weak.clone(), &cfg.auth, cfg.s3_domain.clone()),
            cluster,
            cfg,
            buffers: tokio::sync::Semaphore::new(data::budget_permits()),
        })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    /// `GET /metrics`: the node in the Prometheus text format (open like `/v1/health`: it
    /// carries counts and sizes, never names or secrets).
    async fn metrics(&self) -> http::Response<GwBody> {
        match self.cluster.metrics().await {
            Ok(text) => http::Response::builder()
                .status(http::StatusCode::OK)
                .header(
                    http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )
                .body(body::full(text))
                .expect("valid response"),
            Err(e) => native::error_response(&e, &http::Method::GET, "/metrics"),
        }
    }

    /// Answers one request; never fails (errors become HTTP error responses).
    pub async fn handle(
        self: Arc<Self>,
        req: http::Request<Incoming>,
    ) -> std::result::Result<http::Response<GwBody>, Infallible> {
        let expect_continue = req
            .headers()
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        // hyper sends no `100 Continue` for an empty body, and botocore then keeps the final
        // status line of this exchange for the next request on the connection (its
        // `response_class` is not reset when that one expects 100 too), which breaks it: such
        // a connection is closed after the answer. S3 itself always sends the 100.
        // A proxy answers a native object PUT with a redirect: it must not invite the body
        // (`curl -L -T` would send it here first), so that body is not read ahead.
        let redirected_put = self.cfg.role == Role::Proxy
            && req.method() == http::Method::PUT
            && req.uri().path().starts_with("/v1/objects/");
        let eager = expect_continue && !redirected_put;
        let close_after = expect_continue
            && (redirected_put
                || req
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .is_some_and(|v| v.as_bytes() == b"0"));
        let req = req.map(|b| body::request_body(b, eager));
        let started = std::time::Instant::now();
        let (method, logged_path) = (req.method().clone(), req.uri().path().to_string());
        let path = req.uri().path();
        // `/metrics` unless an S3 client signed it (then it is a bucket named `metrics`).
        let s3_signed = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes().starts_with(b"AWS"))
            || req.uri().query().is_some_and(|q| q.contains("X-Amz-"));
        let resp = if path == "/metrics" && req.method() == http::Method::GET && !s3_signed {
            self.metrics().await
        } else if path == "/s3" || path.starts_with("/s3/") {
            self.s3.call(req, true).await
        } else if path.starts_with("/v1/") {
            native::handle(&self, req).await
        } else {
            // S3 at the root too, for clients whose endpoint cannot carry a path (minio, s3cmd).
            self.s3.call(req, false).await
        };
        // One line per request at debug level (`SHOAL_LOG=shoal_gateway=debug`); errors of the
        // cluster are logged where they happen.
        tracing::debug!(
            %method,
            path = %logged_path,
            status = resp.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "http"
        );
        let mut resp = resp;
        if close_after {
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        Ok(resp)
    }
}

/// Serves one accepted connection (plain or a [`Rewind`] after sniffing) until it closes.
pub async fn serve_connection<IO>(gw: Arc<Gateway>, io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| gw.clone().handle(req));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    if let Err(e) = builder.serve_connection(TokioIo::new(io), svc).await {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

/// For a node's own listener (one port for both protocols, DESIGN §13): looks at the first
/// byte of a fresh connection without consuming it; an HTTP connection is served here (in a
/// task of its own) and `None` returned; anything else comes back to the caller to be read as
/// MessagePack frames. A listener that has already read bytes off the socket serves HTTP with
/// [`serve_connection`] over a [`Rewind`] instead.
pub async fn route_connection(
    gw: &Arc<Gateway>,
    stream: tokio::net::TcpStream,
) -> std::io::Result<Option<tokio::net::TcpStream>> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    if n == 1 && sniff(first[0]) == Sniffed::Http {
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(gw.clone(), stream));
        Ok(None)
    } else {
        Ok(Some(stream))
    }
}

/// Accepts HTTP connections on `listener` until `shutdown` (`noded --http HOST:PORT`).
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(gw.clone(), stream));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn gateway() -> Arc<Gateway> {
        Gateway::new(GatewayConfig {
            // Nothing listens here: the requests below never reach the cluster.
            node_addr: "127.0.0.1:9".into(),
            role: Role::Proxy,
            public_http: "http://127.0.0.1:9".into(),
            peer_urls: PeerUrls::Listen,
            auth: AuthSettings::disabled(),
            s3_domain: None,
        })
    }

    async fn get_health(mut c: tokio::net::TcpStream) -> String {
        c.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    /// The listener's side: peek, serve HTTP, hand MessagePack back.
    #[tokio::test]
    async fn one_port_for_both_protocols() {
        let gw = gateway();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut handed_back = 0;
            for _ in 0..2 {
                let (s, _) = l.accept().await.unwrap();
                if let Some(mut s) = route_connection(&gw, s).await.unwrap() {
                    // A MessagePack frame: its length prefix starts with 0, and is all there.
                    let mut len = [0u8; 4];
                    s.read_exact(&mut len).await.unwrap();
                    assert_eq!(len, [0, 0, 0, 3]);
                    handed_back += 1;
                }
            }
            handed_back
        });
        let http = get_health(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
        assert!(http.starts_with("HTTP/1.1 200"), "{http}");
        let mut m = tokio::net::TcpStream::connect(addr).await.unwrap();
        m.write_all(&[0, 0, 0, 3, 1, 2, 3]).await.unwrap();
        assert_eq!(server.await.unwrap(), 1);
    }

    /// A listener that already read the first bytes replays them through `Rewind`.
    #[tokio::test]
    async fn serves_a_rewound_connection() {
        let gw = gateway();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut first = [0u8; 4];
            s.read_exact(&mut first).await.unwrap();
            assert_eq!(sniff(first[0]), Sniffed::Http);
            serve_connection(gw, Rewind::new(first.to_vec(), s)).await;
        });
        let http = get_health(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
        assert!(http.starts_with("HTTP/1.1 200"), "{http}");
    }
}

/// The gateway as the node's HTTP front door on its own `--listen` port: the node's server
/// hands it the connections whose first byte says HTTP. Set once the node (and so the gateway,
/// which is a client of it) is up; connections that arrive before are closed.
#[derive(Default)]
pub struct NodeFront(std::sync::OnceLock<Arc<Gateway>>);

impl NodeFront {
    pub fn set(&self, gw: Arc<Gateway>) {
        let _ = self.0.set(gw);
    }
}

impl shoal_actors::node::server::HttpFront for NodeFront {
    fn serve(&self, stream: tokio::net::TcpStream) -> futures::future::BoxFuture<'static, ()> {
        let gw = self.0.get().cloned();
        Box::pin(async move {
            if let Some(gw) = gw {
                // Small answers go out at once (Nagle plus delayed ACKs would hold each for
                // up to 40 ms).
                let _ = stream.set_nodelay(true);
                serve_connection(gw, stream).await;
            }
        })
    }
}
