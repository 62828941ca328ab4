//! Primary election (DESIGN §9). When the primary stops answering keepalives, the electable,
//! active proxy with the highest `id_digest` (old primary excluded) asks the other proxies for
//! votes; a majority makes it primary. It then drops the old primary from the map, bumps the
//! version, and its primary actor announces the new map to everyone (see `node::primary`).
//!
//! A voter says yes only if it has not heard from the primary lately either and computes the same
//! candidate, so a partitioned proxy cannot take over a healthy cluster on its own.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::node::{Ctx, NodeMsg};
use crate::smap::{Flags, Node, NodeId, Role, Smap};
use crate::wire::Msg;

/// The proxy that should take over from `old`: electable, active, highest `id_digest`.
pub fn candidate<'a>(smap: &'a Smap, old: &NodeId) -> Option<&'a Node> {
    smap.proxies
        .values()
        .filter(|n| &n.id != old && n.is_active() && !n.flags.contains(Flags::NON_ELECTABLE))
        .max_by_key(|n| (n.id_digest, n.id.clone()))
}

/// Whether this node would vote for `candidate` to replace `old`.
pub fn vote(ctx: &Ctx, candidate_id: &NodeId, old: &NodeId) -> bool {
    let meta = ctx.meta();
    let Some(smap) = meta.smap.as_ref() else {
        return false;
    };
    if &smap.primary == candidate_id {
        return true; // already follows it
    }
    if &smap.primary != old {
        return false; // we know of a different, newer primary
    }
    let silent = ctx.since_primary_contact() > meta.config.keepalive.interval();
    silent && candidate(smap, old).is_some_and(|c| &c.id == candidate_id)
}

/// Called by the keepalive actor when the primary missed `num_retries` heartbeats.
pub async fn on_primary_lost(ctx: Arc<Ctx>) {
    if ctx.electing.swap(true, Ordering::AcqRel) {
        return;
    }
    // First catch up: another node may already know a newer map (a new primary, or a change
    // this node missed). Electing on a stale map would fork the cluster's history.
    let res = match sync_from_peers(&ctx).await {
        Ok(true) => Ok(false),
        _ if ctx.me.role != Role::Proxy => Ok(false),
        _ => run(&ctx).await,
    };
    ctx.electing.store(false, Ordering::Release);
    match res {
        Ok(true) => tracing::info!("won the election: this proxy is now primary"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "election failed"),
    }
}

/// The newest map of this cluster that any of `peers` has, if newer than `smap`.
async fn newest_from(ctx: &Ctx, smap: &Smap, peers: Vec<&Node>, timeout: Duration) -> Option<Smap> {
    let calls = peers
        .into_iter()
        .map(|n| ctx.call(&n.addr, Msg::GetSmap, timeout));
    futures::future::join_all(calls)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Ok(Msg::Smap(s)) if s.uuid == smap.uuid && s.version > smap.version => Some(s),
            _ => None,
        })
        .max_by_key(|s| s.version)
}

/// Adopts the newest map (same cluster) that any other reachable node has, if newer than ours
/// and naming a primary that answers. Returns true if it adopted one.
async fn sync_from_peers(ctx: &Arc<Ctx>) -> Result<bool> {
    let meta = ctx.meta();
    let Some(smap) = meta.smap.clone() else {
        return Ok(false);
    };
    let peers = smap
        .all_nodes()
        .filter(|n| n.id != ctx.me.id && n.id != smap.primary)
        .collect();
    let Some(newer) = newest_from(ctx, &smap, peers, Duration::from_millis(800)).await else {
        return Ok(false);
    };
    let moved_on = newer.primary != smap.primary;
    tracing::info!(version = newer.version, primary = %newer.primary, "adopting a newer cluster map from a peer");
    adopt(ctx, newer).await?;
    // Same primary, newer map: still lost, so the election goes on from the fresher map.
    Ok(moved_on)
}

async fn run(ctx: &Arc<Ctx>) -> Result<bool> {
    let meta = ctx.meta();
    let Some(smap) = meta.smap.clone() else {
        return Ok(false);
    };
    let old = smap.primary.clone();
    let Some(cand) = candidate(&smap, &old) else {
        tracing::warn!("primary lost and no electable proxy is left");
        return Ok(false);
    };
    if cand.id != ctx.me.id {
        tracing::info!(candidate = %cand.display_name(), "primary lost; waiting for the candidate");
        return Ok(false);
    }
    // Is it really gone? One direct look before taking over.
    if let Some(p) = smap.primary_node()
        && ctx
            .call(&p.addr, Msg::GetSmap, Duration::from_millis(800))
            .await
            .is_ok()
    {
        return Ok(false);
    }
    let voters: Vec<Node> = smap
        .proxies
        .values()
        .filter(|n| n.id != old && n.id != ctx.me.id)
        .cloned()
        .collect();
    let calls = voters.iter().map(|v| {
        let msg = Msg::VoteRequest {
            candidate: ctx.me.id.clone(),
            old_primary: old.clone(),
        };
        ctx.call(&v.addr, msg, Duration::from_secs(2))
    });
    let yes = 1 + futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Msg::Vote { yes: true })))
        .count();
    let total = voters.len() + 1;
    if yes * 2 <= total {
        tracing::warn!(yes, total, "lost the election");
        return Ok(false);
    }
    let mut next = smap.clone();
    next.primary = ctx.me.id.clone();
    next.remove(&old);
    next.version += 1;
    tracing::info!(old = %old, yes, total, version = next.version, "elected primary");
    // Through the node actor: it persists the map and starts the primary actor, which announces.
    adopt(ctx, next).await?;
    Ok(true)
}

/// Applies a map through the node actor, so that its side effects (starting the primary actor,
/// a rebalance) follow.
async fn adopt(ctx: &Ctx, smap: Smap) -> Result<()> {
    let node = ctx
        .node_ref()
        .ok_or_else(|| Error::Busy("node is starting".into()))?;
    let res = node
        .call(
            |reply| NodeMsg::Metasync {
                smap: Some(Box::new(smap)),
                rmd: None,
                bmd: None,
                config: None,
                reply: Some(reply),
            },
            Some(Duration::from_secs(10)),
        )
        .await
        .map_err(|e| Error::Remote(format!("node actor: {e}")))?;
    match res {
        ractor::rpc::CallResult::Success(Ok(())) => Ok(()),
        ractor::rpc::CallResult::Success(Err(m)) => Err(Error::BadRequest(m)),
        _ => Err(Error::Timeout("node actor did not apply the map".into())),
    }
}

/// Run periodically by the primary: if the cluster elected another primary while this one was
/// cut off (partition, long stall), adopt that map, which makes this node step down and rejoin.
pub async fn check_still_primary(ctx: Arc<Ctx>) {
    let meta = ctx.meta();
    let Some(smap) = meta.smap.clone() else {
        return;
    };
    let proxies = smap
        .proxies
        .values()
        .filter(|n| n.id != ctx.me.id)
        .collect();
    let newer = newest_from(&ctx, &smap, proxies, Duration::from_secs(1))
        .await
        .filter(|s| s.primary != ctx.me.id);
    if let Some(s) = newer {
        tracing::warn!(primary = %s.primary, version = s.version, "the cluster has a newer primary");
        if let Err(e) = adopt(&ctx, s).await {
            tracing::warn!(error = %e, "could not adopt the newer map");
        }
    }
}

/// At start, a node whose persisted map names itself primary first asks the other proxies:
/// if the cluster moved on (an election while it was down), it adopts the newer map and rejoins
/// as a non-primary instead of splitting the cluster.
pub async fn reconcile_at_start(ctx: &Ctx) -> Result<bool> {
    let meta = ctx.meta();
    let Some(smap) = meta.smap.as_ref() else {
        return Ok(false);
    };
    if smap.primary != ctx.me.id {
        return Ok(false);
    }
    let others = smap
        .proxies
        .values()
        .filter(|n| n.id != ctx.me.id)
        .collect();
    let newest = newest_from(ctx, smap, others, Duration::from_secs(1)).await;
    match newest {
        Some(s) if s.primary != ctx.me.id => {
            tracing::warn!(primary = %s.primary, version = s.version, "the cluster elected another primary while this node was down; rejoining as non-primary");
            ctx.apply(Some(s), None, None, None)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(id: &str, flags: Flags) -> Node {
        let mut n = Node::new(NodeId(id.into()), Role::Proxy, "a".into());
        n.flags = flags;
        n
    }

    #[test]
    fn candidate_is_highest_digest_electable_active_non_primary() {
        let mut smap = Smap::bootstrap(proxy("p0p1", Flags::default()));
        for id in ["p1p2", "p2p3", "p3p4", "p4p5"] {
            smap.insert(proxy(id, Flags::default()));
        }
        let old = smap.primary.clone();
        let c = candidate(&smap, &old).unwrap().clone();
        assert_ne!(c.id, old);
        let best = smap
            .proxies
            .values()
            .filter(|n| n.id != old)
            .map(|n| n.id_digest)
            .max()
            .unwrap();
        assert_eq!(c.id_digest, best);
        // Non-electable and maintenance proxies never win.
        smap.proxies.get_mut(&c.id).unwrap().flags = Flags::NON_ELECTABLE;
        let c2 = candidate(&smap, &old).unwrap().clone();
        assert_ne!(c2.id, c.id);
        smap.proxies.get_mut(&c2.id).unwrap().flags = Flags::MAINT;
        let c3 = candidate(&smap, &old).unwrap();
        assert!(c3.id != c.id && c3.id != c2.id);
    }
}
