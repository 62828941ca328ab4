//! Primary election (DESIGN §9), the networked half (the choices are in `logic::election`).
//! When the primary stops answering keepalives, the electable, active proxy with the highest
//! `id_digest` (old primary excluded) asks the other proxies for votes; a majority makes it
//! primary. It then drops the old primary from the map and bumps the version; its node actor
//! starts the primary actor, which announces the new map to everyone.

use std::time::Duration;

use super::Contact;
use super::meta::MetaHandle;
use crate::error::Result;
use crate::logic::election;
use crate::proto::msg::{GetSmap, VoteRequest};
use crate::proto::pool::Pool;
use crate::types::meta::MetaUpdate;
use crate::types::smap::{Node, NodeId, Role, Smap};

/// How long a proxy ranked above a candidate may take to show it is alive.
const PROBE: Duration = Duration::from_millis(800);

/// The proxies of `ahead` that do not answer.
async fn unreachable(pool: &Pool, ahead: &[&Node]) -> std::collections::HashSet<NodeId> {
    let calls = ahead.iter().map(|n| async move {
        (
            n.id.clone(),
            pool.rpc(&n.addr, GetSmap, PROBE).await.is_err(),
        )
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|(_, down)| *down)
        .map(|(id, _)| id)
        .collect()
}

/// Whether this node votes for `candidate` to replace `old`: it too has lost the primary, and
/// every proxy ranked above the candidate is unreachable from here as well.
pub async fn vote(
    meta: &MetaHandle,
    pool: &Pool,
    contact: &Contact,
    candidate: &NodeId,
    old: &NodeId,
) -> bool {
    let m = meta.get();
    let Some(smap) = m.smap.as_ref() else {
        return false;
    };
    let silent = contact.silence() > m.config.keepalive.interval();
    let ahead = election::ahead_of(smap, old, candidate);
    let down = unreachable(pool, &ahead).await;
    election::vote(smap, candidate, old, silent, |id| down.contains(id))
}

/// Called by the keepalive actor when the primary missed `num_retries` heartbeats.
pub async fn on_primary_lost(meta: &MetaHandle, pool: &Pool, me: &Node, contact: &Contact) {
    // First catch up: another node may already know a newer map (a new primary, or a change
    // this node missed). Electing on a stale map would fork the cluster's history.
    let res = match sync_from_peers(meta, pool, me).await {
        Ok(true) => Ok(false),
        _ if me.role != Role::Proxy => Ok(false),
        _ => run(meta, pool, me, contact).await,
    };
    match res {
        Ok(true) => tracing::info!("won the election: this proxy is now primary"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "election failed"),
    }
}

/// The newest map of this cluster that any of `peers` has, if newer than `smap`.
async fn newest_from(
    pool: &Pool,
    smap: &Smap,
    peers: Vec<&Node>,
    timeout: Duration,
) -> Option<Smap> {
    let calls = peers
        .into_iter()
        .map(|n| pool.rpc(&n.addr, GetSmap, timeout));
    futures::future::join_all(calls)
        .await
        .into_iter()
        .filter_map(|r| r.ok())
        .filter(|s| s.uuid == smap.uuid && s.version > smap.version)
        .max_by_key(|s| s.version)
}

/// Adopts the newest map (same cluster) that any other reachable proxy has, if newer than ours.
/// Returns true if it adopted one naming another primary. Proxies only: every map version
/// reaches them, and asking every node from every node is N² requests of an O(N) map on each
/// keepalive tick while the primary is missing (36 s of failover at 200 nodes).
async fn sync_from_peers(meta: &MetaHandle, pool: &Pool, me: &Node) -> Result<bool> {
    let Some(smap) = meta.get().smap.clone() else {
        return Ok(false);
    };
    let peers = smap
        .proxies
        .values()
        .filter(|n| n.id != me.id && n.id != smap.primary)
        .collect();
    let Some(newer) = newest_from(pool, &smap, peers, Duration::from_millis(800)).await else {
        return Ok(false);
    };
    let moved_on = newer.primary != smap.primary;
    tracing::info!(version = newer.version, primary = %newer.primary, "adopting a newer cluster map from a peer");
    meta.apply(MetaUpdate::smap(newer)).await?;
    // Same primary, newer map: still lost, so the election goes on from the fresher map.
    Ok(moved_on)
}

/// A target that lost the primary asks one proxy (the `ask`-th, in turn) for a newer map, in
/// case it missed the new primary's announcement. Targets are never elected, so they do not
/// take part otherwise.
pub async fn ask_one_proxy(meta: &MetaHandle, pool: &Pool, me: &Node, ask: u32) {
    let Some(smap) = meta.get().smap.clone() else {
        return;
    };
    let peers: Vec<&Node> = smap
        .proxies
        .values()
        .filter(|n| n.id != me.id && n.id != smap.primary)
        .collect();
    if peers.is_empty() {
        return;
    }
    let peer = peers[ask as usize % peers.len()];
    if let Some(newer) = newest_from(pool, &smap, vec![peer], Duration::from_secs(2)).await {
        tracing::info!(version = newer.version, primary = %newer.primary, from = %peer.display_name(), "adopting a newer cluster map from a proxy");
        if let Err(e) = meta.apply(MetaUpdate::smap(newer)).await {
            tracing::warn!(error = %e, "could not adopt the newer map");
        }
    }
}

async fn run(meta: &MetaHandle, pool: &Pool, me: &Node, contact: &Contact) -> Result<bool> {
    let Some(smap) = meta.get().smap.clone() else {
        return Ok(false);
    };
    let old = smap.primary.clone();
    if election::ranking(&smap, &old).is_empty() {
        tracing::warn!("primary lost and no electable proxy is left");
        return Ok(false);
    }
    // The best candidate that answers takes over; proxies ranked above this one that are
    // down too do not hold the election up.
    let ahead = election::ahead_of(&smap, &old, &me.id);
    if !election::ranking(&smap, &old).iter().any(|n| n.id == me.id) {
        return Ok(false);
    }
    let down = unreachable(pool, &ahead).await;
    if let Some(alive) = ahead.iter().find(|n| !down.contains(&n.id)) {
        tracing::info!(candidate = %alive.display_name(), "primary lost; waiting for the candidate");
        return Ok(false);
    }
    // Is it really gone? One direct look before taking over.
    if let Some(p) = smap.primary_node()
        && pool
            .rpc(&p.addr, GetSmap, Duration::from_millis(800))
            .await
            .is_ok()
    {
        return Ok(false);
    }
    if contact.silence() < meta.get().config.keepalive.interval() {
        return Ok(false); // the primary reached us meanwhile
    }
    let voters: Vec<Node> = smap
        .proxies
        .values()
        .filter(|n| n.id != old && n.id != me.id)
        .cloned()
        .collect();
    let calls = voters.iter().map(|v| {
        let req = VoteRequest {
            candidate: me.id.clone(),
            old_primary: old.clone(),
        };
        pool.rpc(&v.addr, req, Duration::from_secs(2))
    });
    let yes = 1 + futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| r.as_ref().is_ok_and(|v| v.yes))
        .count();
    let total = voters.len() + 1;
    if yes * 2 <= total {
        tracing::warn!(yes, total, "lost the election");
        return Ok(false);
    }
    let mut next = smap.clone();
    next.primary = me.id.clone();
    next.remove(&old);
    next.version += 1;
    tracing::info!(old = %old, yes, total, version = next.version, "elected primary");
    // The node actor follows the map: it starts the primary actor, which announces.
    meta.apply(MetaUpdate::smap(next)).await?;
    Ok(true)
}

/// Run periodically by the primary: if the cluster elected another primary while this one was
/// cut off (partition, long stall), adopt that map, which makes this node step down and rejoin.
pub async fn check_still_primary(meta: MetaHandle, pool: std::sync::Arc<Pool>, me: NodeId) {
    let Some(smap) = meta.get().smap.clone() else {
        return;
    };
    let proxies = smap.proxies.values().filter(|n| n.id != me).collect();
    let newer = newest_from(&pool, &smap, proxies, Duration::from_secs(1))
        .await
        .filter(|s| s.primary != me);
    if let Some(s) = newer {
        tracing::warn!(primary = %s.primary, version = s.version, "the cluster has a newer primary");
        if let Err(e) = meta.apply(MetaUpdate::smap(s)).await {
            tracing::warn!(error = %e, "could not adopt the newer map");
        }
    }
}

/// At start, a node whose persisted map names itself primary first asks the other proxies:
/// if the cluster moved on (an election while it was down), it adopts the newer map and rejoins
/// as a non-primary instead of splitting the cluster.
pub async fn reconcile_at_start(meta: &MetaHandle, pool: &Pool, me: &NodeId) -> Result<bool> {
    let Some(smap) = meta.get().smap.clone() else {
        return Ok(false);
    };
    if &smap.primary != me {
        return Ok(false);
    }
    // Test hook: a check that comes late, so a test can reach the node before it is done.
    if let Some(ms) = crate::fault::value("delay_reconcile_ms") {
        tracing::warn!(
            ms,
            "fault delay_reconcile_ms: checking for a newer primary late"
        );
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let others = smap.proxies.values().filter(|n| &n.id != me).collect();
    match newest_from(pool, &smap, others, Duration::from_secs(1)).await {
        Some(s) if &s.primary != me => {
            tracing::warn!(primary = %s.primary, version = s.version, "the cluster elected another primary while this node was down; rejoining as non-primary");
            meta.apply(MetaUpdate::smap(s)).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}
