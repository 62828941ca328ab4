//! Metasync (DESIGN §3): the primary persists a change locally (through the node's metadata
//! writer — local disk, no network), then pushes it to every other node from a task. The actor
//! never waits on the network: whoever needs the push to have happened (a client told "started
//! g5" relies on every reachable node knowing g5) gets its answer from that task.

use std::sync::Arc;
use std::time::Duration;

use super::PrimaryState;
use crate::error::{Error, Result};
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
    /// Registered while the push is under way (see [`InFlight`]).
    flight: Flight,
}

/// The versions that pushes under way are delivering. A node whose heartbeat reports older
/// metadata gets a full catch-up, unless a push already on its way carries what it lacks: at
/// 1,000 nodes a push takes about a keepalive interval to reach everyone, and about half of
/// the nodes heartbeated before theirs arrived — each then got the whole metadata twice, and
/// the primary encoded it once more per node (control-plane bench, map change).
#[derive(Clone, Default)]
pub struct InFlight(Arc<std::sync::Mutex<InFlightInner>>);

#[derive(Default)]
struct InFlightInner {
    next: u64,
    /// Per push: the version of each part it carries (smap, rmd, bmd, config), 0 for none.
    pushes: std::collections::HashMap<u64, [u64; 4]>,
}

impl InFlight {
    fn register(&self, upd: &MetaUpdate) -> Flight {
        let carried = [
            upd.smap.as_ref().map_or(0, |s| s.version),
            upd.rmd.as_ref().map_or(0, |r| r.version),
            upd.bmd.as_ref().map_or(0, |b| b.version),
            upd.config.as_ref().map_or(0, |c| c.version),
        ];
        let mut g = self.0.lock().expect("poisoned");
        g.next += 1;
        let key = g.next;
        g.pushes.insert(key, carried);
        Flight {
            reg: self.clone(),
            key,
        }
    }

    /// Whether pushes under way bring a node at versions `theirs` up to `ours`: every part it
    /// lacks is carried, at our version, by one of them.
    pub fn covers(&self, theirs: [u64; 4], ours: [u64; 4]) -> bool {
        let g = self.0.lock().expect("poisoned");
        (0..4).all(|i| theirs[i] >= ours[i] || g.pushes.values().any(|c| c[i] == ours[i]))
    }
}

/// A push's entry in [`InFlight`], removed when the push is done (or dropped unsent).
struct Flight {
    reg: InFlight,
    key: u64,
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Ok(mut g) = self.reg.0.lock() {
            g.pushes.remove(&self.key);
        }
    }
}

impl Push {
    /// Pushes to every node (at once); returns the nodes that did not take it.
    pub async fn send(self) -> Vec<NodeId> {
        let Push {
            upd,
            to,
            pool,
            flight,
        } = self;
        let failed = match encode(upd) {
            Some(body) => send_to(&pool, &body, to).await,
            None => to.into_iter().map(|(id, _)| id).collect(),
        };
        drop(flight);
        failed
    }

    /// Pushes in a task, and again, with back-off, to the nodes that did not take it: for a
    /// new primary's announcement, which a node that misses it would otherwise wait for in
    /// vain — it heartbeats the old primary, and the catch-up rides on heartbeats
    /// (scale-benchmarks finding 11).
    pub fn spawn_until_taken(self) {
        tokio::spawn(async move {
            let Push {
                upd,
                mut to,
                pool,
                flight,
            } = self;
            let mut flight = Some(flight);
            let Some(body) = encode(upd) else { return };
            let mut wait = ANNOUNCE_RETRY_FIRST;
            for attempt in 0..=ANNOUNCE_RETRIES {
                let failed = send_to(&pool, &body, to.clone()).await;
                // Only the first round counts as under way: a node it missed is caught up by
                // its next heartbeat rather than left to the back-off.
                flight.take();
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
    let flight = state.pushing.register(&upd);
    Push {
        upd,
        to,
        pool: state.a.pool.clone(),
        flight,
    }
}

/// Persists and publishes `upd` locally, and returns its push to the others (in the new map).
pub async fn commit(state: &PrimaryState, upd: MetaUpdate) -> Result<Push> {
    state.has_majority()?;
    // A map change is built on a map that names this node primary: one that adopted another
    // primary's map (it stepped down, and this actor is about to stop) commits nothing.
    if let Some(s) = state.a.meta.get().smap.as_ref()
        && s.primary != state.a.me.id
    {
        return Err(Error::Unavailable(format!(
            "this proxy is no longer the primary (p[{}] is): try again",
            s.primary
        )));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::smap::{Bmd, Node, Role};

    fn smap_update(version: u64) -> MetaUpdate {
        let mut s = Smap::bootstrap(Node::new(NodeId("p1".into()), Role::Proxy, "a".into()));
        s.version = version;
        MetaUpdate::smap(s)
    }

    #[test]
    fn a_push_under_way_covers_only_what_it_carries_and_only_while_it_lasts() {
        let reg = InFlight::default();
        let ours = [7, 3, 2, 1];
        assert!(!reg.covers([6, 3, 2, 1], ours), "nothing under way");
        let flight = reg.register(&smap_update(7));
        assert!(reg.covers([6, 3, 2, 1], ours), "the push brings map v7");
        assert!(reg.covers([7, 3, 2, 1], ours), "nothing lacking");
        assert!(
            !reg.covers([6, 3, 1, 1], ours),
            "the bucket map it lacks is not on its way"
        );
        assert!(
            !reg.covers([5, 3, 2, 1], [8, 3, 2, 1]),
            "an older map on its way is not the newest"
        );
        let bmd = reg.register(&MetaUpdate {
            bmd: Some(Bmd {
                version: 2,
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(reg.covers([6, 3, 1, 1], ours), "two pushes together");
        drop(flight);
        assert!(!reg.covers([6, 3, 1, 1], ours), "map push done");
        drop(bmd);
        assert!(reg.0.lock().unwrap().pushes.is_empty());
    }
}
