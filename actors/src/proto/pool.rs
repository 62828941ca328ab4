//! One connection pool with one retry rule, shared by the nodes and the client: idle framed
//! connections per peer address, reused across requests so neither a rebalance nor a client
//! pays a TCP handshake per object. Each request carries a fresh token from the pool's token
//! source (node tokens when auth is on, a user's token for clients).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::codec::{Conn, Encoded};
use super::msg::{Msg, Rpc, expect};
use crate::error::{Error, Result};
use crate::types::smap::NodeId;

/// Idle connections kept per peer.
const MAX_IDLE: usize = 16;

/// Where the token for each request comes from.
pub type TokenSource = Box<dyn Fn() -> Option<String> + Send + Sync>;

pub struct Pool {
    /// Identity put in every envelope's `from`.
    me: NodeId,
    idle: Mutex<HashMap<String, Vec<Conn>>>,
    token: TokenSource,
    /// Longest wait for one frame of an object body on a link.
    io_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({})", self.me)
    }
}

/// A connection in use, and whether it came from the pool (it may have gone stale).
pub struct Link {
    pub conn: Conn,
    pub addr: String,
    reused: bool,
}

/// A request that failed, and whether it may have reached the peer (it was written to a
/// connection, or to a pooled one that broke as it was reused); `false` only when no
/// connection could be made.
#[derive(Debug)]
pub struct Failed {
    pub error: Error,
    pub sent: bool,
}

/// Errors of the link itself, not answers from the peer: after one, the link is unusable.
pub fn is_transport(e: &Error) -> bool {
    matches!(
        e,
        Error::Io(_) | Error::Decode(_) | Error::Protocol(_) | Error::Timeout(_)
    )
}

impl Pool {
    pub fn new(me: NodeId, token: TokenSource) -> Self {
        Pool {
            me,
            idle: Mutex::new(HashMap::new()),
            token,
            io_timeout: Duration::from_secs(30),
        }
    }

    /// The same pool with another body time limit.
    pub fn with_io_timeout(mut self, t: Duration) -> Self {
        self.io_timeout = t;
        self
    }

    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// An idle connection to `addr` or a new one (`fresh`: never a pooled one), carrying a
    /// token from the pool's source.
    pub async fn link(&self, addr: &str, timeout: Duration, fresh: bool) -> Result<Link> {
        self.link_as(addr, timeout, fresh, (self.token)()).await
    }

    /// As [`link`](Self::link), with `token` for this request (clients of one pool may act for
    /// different users: a pooled connection never keeps the last one's token).
    pub async fn link_as(
        &self,
        addr: &str,
        timeout: Duration,
        fresh: bool,
        token: Option<String>,
    ) -> Result<Link> {
        let pooled = if fresh {
            None
        } else {
            let mut idle = self.idle.lock().expect("poisoned");
            let v = idle.get_mut(addr);
            // Links the peer closed meanwhile are dropped here, before anything is sent.
            v.and_then(|v| std::iter::from_fn(|| v.pop()).find(Conn::reusable))
        };
        let (mut conn, reused) = match pooled {
            Some(c) => (c, true),
            None => (Conn::connect(addr, self.me.clone(), timeout).await?, false),
        };
        conn.token = token;
        conn.io_timeout = Some(self.io_timeout);
        Ok(Link {
            conn,
            addr: addr.to_string(),
            reused,
        })
    }

    /// Returns a connection whose exchanges all completed cleanly.
    pub fn release(&self, link: Link) {
        let mut idle = self.idle.lock().expect("poisoned");
        let v = idle.entry(link.addr).or_default();
        if v.len() < MAX_IDLE {
            v.push(link.conn);
        }
    }

    /// Drops idle connections to `addr` (after the peer restarted or failed).
    pub fn forget(&self, addr: &str) {
        self.idle.lock().expect("poisoned").remove(addr);
    }

    /// Drops every idle connection (the token source changed).
    pub fn clear(&self) {
        self.idle.lock().expect("poisoned").clear();
    }

    /// One request to `addr` and its first reply, within `timeout`; the link is handed back for
    /// a body that follows. The one retry rule: a pooled link that fails at the transport level
    /// (the peer closed it just as it was reused) is replaced by a new connection once. A fresh
    /// link is never retried. When the new connection cannot even be made, the first failure is
    /// what is reported: the request may have reached the peer before it went down, and a
    /// "connection refused" would claim that nothing was sent.
    pub async fn exchange(&self, addr: &str, msg: Msg, timeout: Duration) -> Result<(Link, Msg)> {
        self.exchange_as(addr, msg, timeout, (self.token)()).await
    }

    /// As [`exchange`](Self::exchange), with `token` for this request.
    pub async fn exchange_as(
        &self,
        addr: &str,
        msg: Msg,
        timeout: Duration,
        token: Option<String>,
    ) -> Result<(Link, Msg)> {
        // Encoded once: a retry resends the same bytes instead of a copy of the message.
        let body = Encoded::new(&msg)?;
        self.exchange_encoded(addr, &body, timeout, token).await
    }

    async fn exchange_encoded(
        &self,
        addr: &str,
        body: &Encoded,
        timeout: Duration,
        token: Option<String>,
    ) -> Result<(Link, Msg)> {
        self.exchange_tracked(addr, body, timeout, token)
            .await
            .map_err(|f| f.error)
    }

    /// As [`exchange_as`](Self::exchange_as), saying on failure whether the request may have
    /// reached the peer: a request that carries a write (a put with its body) may then have
    /// been applied, whatever the error.
    pub async fn exchange_sent(
        &self,
        addr: &str,
        msg: Msg,
        timeout: Duration,
        token: Option<String>,
    ) -> std::result::Result<(Link, Msg), Failed> {
        let body = Encoded::new(&msg).map_err(|error| Failed { error, sent: false })?;
        self.exchange_tracked(addr, &body, timeout, token).await
    }

    async fn exchange_tracked(
        &self,
        addr: &str,
        body: &Encoded,
        timeout: Duration,
        token: Option<String>,
    ) -> std::result::Result<(Link, Msg), Failed> {
        let unsent = |error| Failed { error, sent: false };
        let sent = |error| Failed { error, sent: true };
        let mut link = self
            .link_as(addr, timeout, false, token.clone())
            .await
            .map_err(unsent)?;
        let first = tokio::time::timeout(timeout, link.conn.request_encoded(body)).await;
        let res = match first {
            Ok(Err(e)) if link.reused && is_transport(&e) => {
                tracing::debug!(%addr, error = %e, "stale pooled connection, retrying");
                self.forget(addr);
                link = match self.link_as(addr, timeout, true, token).await {
                    Ok(l) => l,
                    Err(_) => return Err(sent(e)),
                };
                tokio::time::timeout(timeout, link.conn.request_encoded(body)).await
            }
            other => other,
        };
        match res {
            Err(_) => Err(sent(Error::Timeout(format!(
                "no answer from {addr} within {timeout:?}"
            )))),
            Ok(Ok(reply)) => Ok((link, reply)),
            Ok(Err(e)) => {
                // An error reply leaves the connection usable.
                if !is_transport(&e) {
                    self.release(link);
                }
                Err(sent(e))
            }
        }
    }

    /// One request encoded beforehand, shared by many destinations (a metasync), and its
    /// reply; the same retry rule as [`exchange`](Self::exchange).
    pub async fn call_encoded(&self, addr: &str, body: &Encoded, timeout: Duration) -> Result<Msg> {
        let (link, reply) = self
            .exchange_encoded(addr, body, timeout, (self.token)())
            .await?;
        self.release(link);
        Ok(reply)
    }

    /// One request and its reply (no body).
    pub async fn call(&self, addr: &str, msg: Msg, timeout: Duration) -> Result<Msg> {
        let (link, reply) = self.exchange(addr, msg, timeout).await?;
        self.release(link);
        Ok(reply)
    }

    /// One typed request and its typed reply.
    pub async fn rpc<R: Rpc>(&self, addr: &str, req: R, timeout: Duration) -> Result<R::Reply> {
        expect::<R>(self.call(addr, req.into_msg(), timeout).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msg::{GetSmap, Query, Reply};
    use crate::types::smap::{Node, Role, Smap};

    /// A server that answers GetSmap on each connection, then closes it after one answer.
    async fn one_shot_server() -> (String, tokio::task::JoinHandle<u32>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = tokio::spawn(async move {
            let mut served = 0;
            while served < 2 {
                let (s, _) = l.accept().await.unwrap();
                let mut c = Conn::new(s, NodeId("srv".into()), 1 << 20);
                if let Ok(Some(env)) = c.recv().await {
                    assert!(matches!(env.body, Msg::Query(Query::GetSmap(_))));
                    let smap =
                        Smap::bootstrap(Node::new(NodeId("p".into()), Role::Proxy, "a".into()));
                    c.send(env.corr, Msg::Reply(Reply::Smap(smap)))
                        .await
                        .unwrap();
                    served += 1;
                }
            }
            served
        });
        (addr, h)
    }

    #[tokio::test]
    async fn a_stale_pooled_link_is_retried_once_on_a_fresh_one() {
        let (addr, server) = one_shot_server().await;
        let pool = Pool::new(NodeId("cli".into()), Box::new(|| Some("tok".into())));
        let t = Duration::from_secs(5);
        let s = pool.rpc(&addr, GetSmap, t).await.unwrap();
        assert_eq!(s.version, 1);
        // The server closed the pooled link: the next call retries on a new connection.
        let s = pool.rpc(&addr, GetSmap, t).await.unwrap();
        assert_eq!(s.version, 1);
        assert_eq!(server.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_link_the_peer_closed_is_seen_as_not_reusable_before_sending() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let c = Conn::connect(&addr, NodeId("cli".into()), Duration::from_secs(5))
            .await
            .unwrap();
        let (s, _) = l.accept().await.unwrap();
        assert!(c.reusable(), "an open, quiet link is reusable");
        drop(s);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while c.reusable() {
            assert!(
                std::time::Instant::now() < deadline,
                "a link the peer closed still looks reusable"
            );
            tokio::task::yield_now().await;
        }
    }

    /// A peer that takes the second request on a link and then goes down with its listener
    /// (killed after acting, before answering): the caller is told the link broke — the
    /// request may have been acted on — not that the connection was refused.
    #[tokio::test]
    async fn a_request_lost_with_its_peer_is_reported_as_a_broken_link_not_a_refusal() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut c = Conn::new(s, NodeId("srv".into()), 1 << 20);
            let env = c.recv().await.unwrap().unwrap();
            let smap = Smap::bootstrap(Node::new(NodeId("p".into()), Role::Proxy, "a".into()));
            c.send(env.corr, Msg::Reply(Reply::Smap(smap)))
                .await
                .unwrap();
            // The second request arrives; the peer dies without answering.
            assert!(c.recv().await.unwrap().is_some());
            drop(c);
            drop(l);
        });
        let pool = Pool::new(NodeId("cli".into()), Box::new(|| None));
        let t = Duration::from_secs(5);
        pool.rpc(&addr, GetSmap, t).await.unwrap();
        let err = pool.rpc(&addr, GetSmap, t).await.unwrap_err();
        server.await.unwrap();
        assert!(is_transport(&err), "{err}");
        assert!(
            !err.to_string().contains("refused"),
            "the request was sent: a refusal would claim it was not ({err})"
        );
    }
}
