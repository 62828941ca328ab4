//! Metasync (DESIGN §3): the primary persists a change locally (through the node's metadata
//! writer — local disk, no network), then pushes it to every other node from a task. The actor
//! never waits on the network: whoever needs the push to have happened (a client told "started
//! g5" relies on every reachable node knowing g5) gets its answer from that task.

use std::sync::Arc;
use std::time::Duration;

use super::PrimaryState;
use crate::error::Result;
use crate::proto::codec::Encoded;
use crate::proto::msg::{GetNodeStats, Rpc, expect};
use crate::proto::pool::Pool;
use crate::types::meta::MetaUpdate;
use crate::types::smap::{NodeId, Smap};
use crate::types::status::NodeStats;

/// How long a node's stats may take when `show cluster` asks.
pub const STATS_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long a push may wait for one node.
pub const METASYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// Pushes in flight at once. The update is encoded once and shared, but each link still holds
/// its own frame while it is written: at 1,000 nodes an unbounded fan-out held them all at once
/// (3 GiB for an 80 KB map with 16 concurrent joins, helper-8's control-plane bench). A silent
/// node holds its slot up to [`METASYNC_TIMEOUT`]; a refused one frees it at once.
const PUSHES_IN_FLIGHT: usize = 256;

/// A committed change on its way to the other nodes.
pub struct Push {
    upd: MetaUpdate,
    to: Vec<(NodeId, String)>,
    pool: Arc<Pool>,
}

impl Push {
    /// Pushes to every node (at once); returns the nodes that did not take it.
    pub async fn send(self) -> Vec<NodeId> {
        match encode(self.upd) {
            Some(body) => send_to(&self.pool, &body, self.to).await,
            None => self.to.into_iter().map(|(id, _)| id).collect(),
        }
    }

    /// Pushes in a task, and again, with back-off, to the nodes that did not take it: for a
    /// new primary's announcement, which a node that misses it would otherwise wait for in
    /// vain — it heartbeats the old primary, and the catch-up rides on heartbeats
    /// (scale-benchmarks finding 11).
    pub fn spawn_until_taken(self) {
        tokio::spawn(async move {
            let Push { upd, mut to, pool } = self;
            let Some(body) = encode(upd) else { return };
            let mut wait = ANNOUNCE_RETRY_FIRST;
            for attempt in 0..=ANNOUNCE_RETRIES {
                let failed = send_to(&pool, &body, to.clone()).await;
                if failed.is_empty() {
                    return;
                }
                if attempt == ANNOUNCE_RETRIES {
                    tracing::info!(
                        nodes = failed.len(),
                        "announcement not taken; left to catch up"
                    );
                    return;
                }
                let failed: std::collections::HashSet<NodeId> = failed.into_iter().collect();
                to.retain(|(id, _)| failed.contains(id));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(ANNOUNCE_RETRY_MAX);
            }
        });
    }

    /// Pushes in a task, then runs `then`.
    pub fn spawn_then(self, then: impl FnOnce() + Send + 'static) {
        tokio::spawn(async move {
            self.send().await;
            then();
        });
    }

    pub fn spawn(self) {
        self.spawn_then(|| {});
    }
}

/// Retries of an announcement to the nodes that did not take it, and the waits between them
/// (doubling): about a minute in all.
const ANNOUNCE_RETRIES: u32 = 10;
const ANNOUNCE_RETRY_FIRST: Duration = Duration::from_millis(250);
const ANNOUNCE_RETRY_MAX: Duration = Duration::from_secs(8);

/// An update encoded once for every destination (not cloned and encoded per node).
fn encode(upd: MetaUpdate) -> Option<Encoded> {
    Encoded::new(&upd.into_msg())
        .inspect_err(|e| tracing::error!(error = %e, "cannot encode a metasync"))
        .ok()
}

/// Sends `body` to each of `to`, [`PUSHES_IN_FLIGHT`] at a time; returns those that did not
/// take it.
async fn send_to(pool: &Pool, body: &Encoded, to: Vec<(NodeId, String)>) -> Vec<NodeId> {
    use futures::StreamExt;
    let calls = futures::stream::iter(to.into_iter().map(|(id, addr)| async move {
        let r = pool
            .call_encoded(&addr, body, METASYNC_TIMEOUT)
            .await
            .and_then(expect::<MetaUpdate>);
        (id, r)
    }))
    .buffer_unordered(PUSHES_IN_FLIGHT);
    let results: Vec<_> = calls.collect().await;
    let mut failed = Vec::new();
    for (id, r) in results {
        if let Err(e) = r {
            tracing::debug!(node = %id, error = %e, "metasync failed (will catch up)");
            failed.push(id);
        }
    }
    failed
}

/// Every other node of `smap`, with its address.
fn others(smap: &Smap, me: &NodeId) -> Vec<(NodeId, String)> {
    smap.all_nodes()
        .filter(|n| &n.id != me)
        .map(|n| (n.id.clone(), n.addr.clone()))
        .collect()
}

/// A push of `upd` to every other node of the current map.
pub fn push(state: &PrimaryState, upd: MetaUpdate) -> Push {
    let meta = state.a.meta.get();
    let to = meta
        .smap
        .as_ref()
        .map(|s| others(s, &state.a.me.id))
        .unwrap_or_default();
    Push {
        upd,
        to,
        pool: state.a.pool.clone(),
    }
}

/// Persists and publishes `upd` locally, and returns its push to the others (in the new map).
pub async fn commit(state: &PrimaryState, upd: MetaUpdate) -> Result<Push> {
    state.has_majority()?;
    state.a.meta.apply(upd.clone()).await?;
    Ok(push(state, upd))
}

/// Everything a node needs, for one that is new or reported an old version, pushed to it alone
/// from a task.
pub fn catch_up(state: &PrimaryState, addr: String) {
    let upd = state.a.meta.get().as_update();
    let pool = state.a.pool.clone();
    tokio::spawn(async move {
        let _ = pool.rpc(&addr, upd, METASYNC_TIMEOUT).await;
    });
}

/// Every node's stats (nodes that do not answer in time are `None`).
pub async fn fetch_stats(
    pool: &Pool,
    smap: &Smap,
) -> std::collections::HashMap<NodeId, Option<NodeStats>> {
    let calls = smap.all_nodes().map(|n| async move {
        let s = pool
            .rpc(&n.addr, GetNodeStats, STATS_TIMEOUT)
            .await
            .ok()
            .map(|b| *b);
        (n.id.clone(), s)
    });
    futures::future::join_all(calls).await.into_iter().collect()
}
