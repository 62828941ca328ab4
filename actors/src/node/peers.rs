//! Links to peers: a small pool of framed connections per peer address, reused across requests
//! so a rebalance does not pay a TCP handshake per object.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::smap::NodeId;
use crate::wire::{Conn, Msg};

/// Idle connections kept per peer.
const MAX_IDLE: usize = 16;

pub struct PeerPool {
    me: NodeId,
    idle: Mutex<HashMap<String, Vec<Conn>>>,
    /// Cluster secret when auth is on: node-to-node requests then carry a token proving that
    /// the sender knows it (a process outside the cluster cannot forge them).
    secret: Mutex<Option<String>>,
}

impl PeerPool {
    pub fn new(me: NodeId) -> Self {
        PeerPool {
            me,
            idle: Mutex::new(HashMap::new()),
            secret: Mutex::new(None),
        }
    }

    /// Sets (or clears) the cluster secret used to sign node-to-node requests.
    pub fn set_secret(&self, secret: Option<String>) {
        *self.secret.lock().expect("poisoned") = secret;
        // Connections carry their token: drop the idle ones so new ones get the new token.
        self.idle.lock().expect("poisoned").clear();
    }

    fn node_token(&self) -> Option<String> {
        let secret = self.secret.lock().expect("poisoned").clone()?;
        let claims = crate::auth::jwt::Claims {
            sub: crate::auth::node_subject(&self.me),
            exp: crate::store::unix_secs() + 3600,
            admin: false,
        };
        crate::auth::jwt::sign(&claims, secret.as_bytes()).ok()
    }

    /// Takes an idle connection to `addr` or opens a new one.
    pub async fn get(&self, addr: &str, timeout: Duration) -> Result<Conn> {
        if let Some(c) = self
            .idle
            .lock()
            .expect("poisoned")
            .get_mut(addr)
            .and_then(|v| v.pop())
        {
            return Ok(c);
        }
        let mut conn = Conn::connect(addr, self.me.clone(), timeout).await?;
        conn.token = self.node_token();
        Ok(conn)
    }

    /// Returns a connection whose last exchange completed cleanly.
    pub fn put(&self, addr: &str, conn: Conn) {
        let mut idle = self.idle.lock().expect("poisoned");
        let v = idle.entry(addr.to_string()).or_default();
        if v.len() < MAX_IDLE {
            v.push(conn);
        }
    }

    /// Drops idle connections to `addr` (after the peer restarted or failed).
    pub fn forget(&self, addr: &str) {
        self.idle.lock().expect("poisoned").remove(addr);
    }

    /// One request and its reply, within `timeout`. A pooled connection that turns out to be
    /// stale (peer restarted) is retried once on a fresh one.
    pub async fn call(&self, addr: &str, msg: Msg, timeout: Duration) -> Result<Msg> {
        for attempt in 0..2 {
            let mut conn = self.get(addr, timeout).await?;
            let res = tokio::time::timeout(timeout, conn.request(msg.clone()))
                .await
                .map_err(|_| Error::Timeout(format!("no answer from {addr} within {timeout:?}")));
            match res {
                Ok(Ok(reply)) => {
                    self.put(addr, conn);
                    return Ok(reply);
                }
                // An error reply leaves the connection usable.
                Ok(Err(e)) if is_remote_reply(&e) => {
                    self.put(addr, conn);
                    return Err(e);
                }
                Ok(Err(e)) if attempt == 0 => {
                    tracing::debug!(%addr, error = %e, "stale pooled connection, retrying");
                    self.forget(addr);
                }
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(e),
            }
        }
        unreachable!("loop returns on the second attempt")
    }
}

/// True for errors that came back as an `Error` reply (the link itself is fine).
fn is_remote_reply(e: &Error) -> bool {
    !matches!(
        e,
        Error::Io(_) | Error::Decode(_) | Error::Protocol(_) | Error::Timeout(_)
    )
}
