//! Who is in the cluster (DESIGN §7, §9): joins (self-joins and admin joins of standby nodes),
//! keepalives and offline detection, removal after a long silence, `remove-from-smap`, and what a
//! new primary does first (announce, refresh the proxy URLs, resume operations in flight).

use std::time::{Duration, Instant};

use super::generations::{self, busy};
use super::push::{self, Push};
use super::{PrimaryMsg, PrimaryState, ReplyTo};
use crate::error::{Error, Result};
use crate::logic::generation::{admit_join, new_rmd};
use crate::proto::msg::{
    AdminJoin, Handshake, Heartbeat, JoinRequest, Joined, KeepaliveAck, Reply, Rpc,
};
use crate::types::lifecycle::{LifecycleReply, NodeAction};
use crate::types::meta::MetaUpdate;
use crate::types::smap::{Flags, Node, NodeId, Rmd, Role};

/// The heartbeat of `hb.node`; a node that reports older metadata is sent everything.
pub fn keepalive(state: &mut PrimaryState, hb: Heartbeat) -> Result<Reply> {
    // Looked up in place: a heartbeat per node per interval must not copy the whole map
    // (O(N²) per interval on the primary at 1,000 nodes).
    let meta = state.a.meta.get();
    let smap = meta
        .smap
        .as_ref()
        .ok_or_else(|| Error::NotFound("no cluster map".into()))?;
    let Some(n) = smap.get(&hb.node) else {
        return Err(Error::NotFound(format!(
            "{} is not in the cluster map",
            hb.node
        )));
    };
    state.last_seen.insert(hb.node.clone(), Instant::now());
    if state.offline.remove(&hb.node) {
        tracing::info!(node = %hb.node, "node is back online");
    }
    let theirs = [
        hb.smap_version,
        hb.rmd_version,
        hb.bmd_version,
        hb.config_version,
    ];
    let ours = meta.versions();
    if theirs.iter().zip(ours).any(|(t, o)| *t < o) && !state.pushing.covers(theirs, ours) {
        push::catch_up(state, n.addr.clone());
    }
    Ok(Heartbeat::reply(KeepaliveAck {
        smap_version: smap.version,
    }))
}

/// What admitting joins committed.
struct Admitted {
    push: Option<Push>,
    /// The newcomers' addresses: each gets a full sync before anyone relies on it.
    newcomers: Vec<String>,
    rmd: Option<Rmd>,
    smap_before: u64,
}

/// One node asking to join.
struct Joiner<'a> {
    node: &'a Node,
    /// The cluster it says it belonged to.
    uuid: Option<&'a str>,
    /// It was mid-rebalance when it stopped.
    reb_interrupted: bool,
}

/// Admits `joiners` into one map version (and one rebalance when active targets arrive), and
/// commits it. Each joiner is refused or admitted on its own (the first element: its
/// refusal, in order); an error of the commit itself refuses them all.
async fn admit(
    state: &mut PrimaryState,
    joiners: &[Joiner<'_>],
) -> Result<(Vec<Result<()>>, Admitted)> {
    let smap = state.smap()?;
    let meta = state.a.meta.get();
    let mut next = smap.clone();
    let mut changed = false;
    let mut outcome = Vec::with_capacity(joiners.len());
    let mut newcomers = Vec::new();
    // Per admitted joiner: (its id, it asks for a rebalance as an active target, as a
    // returning sender), decided on the batch's final map below.
    let mut asks = Vec::new();
    for j in joiners {
        if smap.decommissioned.contains(&j.node.id) {
            outcome.push(Err(Error::ClusterIntegrity(format!(
                "{} was decommissioned: it can only join as a new node (start it with an empty \
                 data dir)",
                j.node.display_name()
            ))));
            continue;
        }
        let adm = match admit_join(&next, j.node, j.uuid) {
            Ok(a) => a,
            Err(e) => {
                outcome.push(Err(e));
                continue;
            }
        };
        outcome.push(Ok(()));
        state.last_seen.insert(j.node.id.clone(), Instant::now());
        state.offline.remove(&j.node.id);
        let active_target = adm
            .next
            .get(&j.node.id)
            .is_some_and(|n| n.role == Role::Target && n.is_active());
        let as_target = active_target
            && (adm.added_active_target || j.reb_interrupted || state.missed.remove(&j.node.id));
        asks.push((
            j.node.display_name(),
            as_target,
            j.reb_interrupted && !adm.newcomer,
        ));
        if adm.newcomer {
            newcomers.push(j.node.addr.clone());
        }
        changed |= adm.changed;
        next = adm.next;
    }
    // One version for the whole batch.
    next.version = smap.version + u64::from(changed);
    let active = next.count_active_targets();
    let wanting: Vec<&str> = asks
        .iter()
        .filter(|(_, as_target, returning)| {
            (*as_target && active >= 2 && meta.config.rebalance.enabled)
                // Someone that was mid-rebalance as a maintenance sender also needs a new
                // generation.
                || (*returning && active >= 1)
        })
        .map(|(name, ..)| name.as_str())
        .collect();
    let rmd = (!wanting.is_empty()).then(|| {
        let mut r = new_rmd(&next, meta.rmd.version);
        r.trigger = format!("join {}", wanting.join(" "));
        r
    });
    // A generation this join supersedes goes into the history in the same push.
    let superseded = rmd.as_ref().and_then(|r| {
        state
            .tracker
            .as_ref()
            .filter(|t| t.running())
            .map(|t| t.history_record(format!("superseded by {}", r.rebalance_id())))
    });
    if !changed && rmd.is_none() {
        let adm = Admitted {
            push: None,
            newcomers: Vec::new(),
            rmd: None,
            smap_before: smap.version,
        };
        return Ok((outcome, adm));
    }
    // A newcomer gets the bucket map and config in the same push as the map that names it, so
    // peers that start sending it objects find it knows their buckets (others ignore the equal
    // versions).
    let newcomer = !newcomers.is_empty();
    let upd = MetaUpdate {
        smap: changed.then_some(next),
        rmd: rmd.clone(),
        bmd: newcomer.then(|| meta.bmd.clone()),
        config: match superseded {
            Some(rec) => Some(generations::with_record(state, rec)),
            None => newcomer.then(|| Box::new(meta.config.clone())),
        },
    };
    let push = push::commit(state, upd).await?;
    let names = || {
        joiners
            .iter()
            .zip(&outcome)
            .filter(|(_, o)| o.is_ok())
            .map(|(j, _)| j.node.display_name())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match &rmd {
        Some(r) => {
            generations::track(state, r);
            tracing::info!(nodes = %names(), generation = %r.rebalance_id(), "joined; rebalancing");
        }
        None => tracing::info!(nodes = %names(), "joined"),
    }
    let adm = Admitted {
        push: Some(push),
        newcomers,
        rmd,
        smap_before: smap.version,
    };
    Ok((outcome, adm))
}

/// Sends the push and the newcomers' full syncs from a task, then `then`.
fn deliver(state: &PrimaryState, adm: Admitted, then: impl FnOnce() + Send + 'static) {
    let (pool, full) = (state.a.pool.clone(), state.a.meta.get().as_update());
    let push = adm.push;
    let newcomers = adm.newcomers;
    tokio::spawn(async move {
        if let Some(p) = push {
            p.send().await;
        }
        let syncs = newcomers
            .iter()
            .map(|addr| pool.rpc(addr, full.clone(), push::METASYNC_TIMEOUT));
        futures::future::join_all(syncs).await;
        then();
    });
}

/// A node's own join at start (or rejoin); answered once every reachable node knows it.
///
/// Joins that arrive while the previous ones are being pushed wait, and are then admitted
/// together as one map version with one push: at start-up, with every join its own version
/// pushed to every node, bring-up was O(N²) pushes of an O(N) map (scale-benchmarks finding
/// 3). A join that finds nothing in flight is admitted at once.
pub async fn self_join(state: &mut PrimaryState, j: JoinRequest, reply: ReplyTo) {
    state.joins.waiting.push((j, reply));
    if !state.joins.in_flight {
        admit_waiting_joins(state).await;
    }
}

/// The push of the last batch of joins is done: admit those that came meanwhile.
pub async fn joins_delivered(state: &mut PrimaryState) {
    state.joins.in_flight = false;
    if !state.joins.waiting.is_empty() {
        admit_waiting_joins(state).await;
    }
}

async fn admit_waiting_joins(state: &mut PrimaryState) {
    let batch = std::mem::take(&mut state.joins.waiting);
    let joiners: Vec<Joiner> = batch
        .iter()
        .map(|(j, _)| Joiner {
            node: &j.node,
            uuid: j.uuid.as_deref(),
            reb_interrupted: j.reb_interrupted,
        })
        .collect();
    let res = admit(state, &joiners).await;
    drop(joiners);
    let (outcome, adm) = match res {
        Ok(x) => x,
        Err(e) => {
            for (_, reply) in batch {
                let _ = reply.send(Err(Error::from(e.to_wire())));
            }
            return;
        }
    };
    let mut replies = Vec::new();
    for ((_, reply), o) in batch.into_iter().zip(outcome) {
        match o {
            Ok(()) => replies.push(reply),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }
    if adm.push.is_none() && adm.newcomers.is_empty() {
        // Nothing changed (a node rejoining as it was): answer at once.
        answer_joined(&state.a.meta, replies);
        return;
    }
    state.joins.in_flight = true;
    let (meta, me) = (state.a.meta.clone(), state.myself.clone());
    deliver(state, adm, move || {
        answer_joined(&meta, replies);
        let _ = me.cast(PrimaryMsg::JoinsDelivered);
    });
}

/// Answers joiners with everything they need, as it is now.
fn answer_joined(meta: &crate::node::meta::MetaHandle, replies: Vec<ReplyTo>) {
    let m = meta.get();
    for reply in replies {
        let res = m
            .smap
            .clone()
            .ok_or_else(|| Error::NotFound("no cluster map".into()))
            .map(|smap| {
                JoinRequest::reply(Box::new(Joined {
                    smap,
                    rmd: m.rmd.clone(),
                    bmd: m.bmd.clone(),
                    config: m.config.clone(),
                }))
            });
        let _ = reply.send(res);
    }
}

/// An admin join of a standby node: meet it first (from a task), then admit it.
pub fn admin_join(state: &mut PrimaryState, j: AdminJoin, reply: ReplyTo) {
    if let Some(t) = state.tracker.as_ref().filter(|t| t.running()) {
        let _ = reply.send(Err(busy("join", t)));
        return;
    }
    let smap = match state.smap() {
        Ok(s) => s,
        Err(e) => {
            let _ = reply.send(Err(e));
            return;
        }
    };
    let (pool, me) = (state.a.pool.clone(), state.myself.clone());
    tokio::spawn(async move {
        let hello = Handshake { uuid: smap.uuid };
        let node = pool
            .rpc(&j.addr, hello, Duration::from_secs(5))
            .await
            .map(|b| *b)
            .map_err(|e| match e {
                Error::Io(_) | Error::Timeout(_) => {
                    Error::NotFound(format!("no node answers at {}: {e}", j.addr))
                }
                other => other,
            });
        let _ = me.cast(PrimaryMsg::AdminJoinMet {
            addr: j.addr,
            role: j.role,
            node,
            reply,
        });
    });
}

pub async fn admin_join_met(
    state: &mut PrimaryState,
    addr: String,
    role: Option<Role>,
    node: Result<Node>,
    reply: ReplyTo,
) {
    let res = async {
        let node = node?;
        // The map may have changed while we met it.
        if let Some(t) = state.tracker.as_ref().filter(|t| t.running()) {
            return Err(busy("join", t));
        }
        if let Some(r) = role
            && r != node.role
        {
            return Err(Error::BadRequest(format!(
                "the node at {addr} is a {}, not a {}",
                node.role.as_str(),
                r.as_str()
            )));
        }
        if state.smap()?.contains(&node.id) {
            return Err(Error::BadRequest(format!(
                "{} is already in the cluster map",
                node.display_name()
            )));
        }
        let joiner = Joiner {
            node: &node,
            uuid: None,
            reb_interrupted: false,
        };
        let (mut outcome, adm) = admit(state, &[joiner]).await?;
        outcome.pop().unwrap_or(Ok(()))?;
        Ok((node, adm))
    }
    .await;
    let (node, adm) = match res {
        Ok(x) => x,
        Err(e) => {
            let _ = reply.send(Err(e));
            return;
        }
    };
    let meta = state.a.meta.get();
    let rebalance_id = adm.rmd.as_ref().map(|r| r.rebalance_id());
    let value = AdminJoin::reply(Box::new(LifecycleReply {
        rebalance_id,
        smap_version: meta
            .smap
            .as_ref()
            .map(|s| s.version)
            .unwrap_or(adm.smap_before),
        affected: vec![node.id.0.clone()],
        ..Default::default()
    }));
    deliver(state, adm, move || {
        let _ = reply.send(Ok(value));
    });
}

/// `remove-from-smap`: the node first goes silent (so no heartbeat in between makes it rejoin),
/// then leaves the map.
pub fn remove_from_smap(state: &mut PrimaryState, node: NodeId, reply: ReplyTo) {
    let res = (|| {
        if let Some(t) = state.tracker.as_ref().filter(|t| t.running()) {
            return Err(busy("remove-from-smap", t));
        }
        let smap = state.smap()?;
        if node == smap.primary {
            return Err(Error::BadRequest(format!(
                "p[{node}] is primary (cannot remove the primary node)"
            )));
        }
        smap.get(&node)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("node {node} is not in the cluster map")))
    })();
    let n = match res {
        Ok(n) => n,
        Err(e) => {
            let _ = reply.send(Err(e));
            return;
        }
    };
    let (pool, me) = (state.a.pool.clone(), state.myself.clone());
    tokio::spawn(async move {
        let _ = pool
            .rpc(&n.addr, NodeAction::StopKeepalive, Duration::from_secs(2))
            .await;
        let _ = me.cast(PrimaryMsg::Silenced { node: n.id, reply });
    });
}

pub async fn remove_silenced(state: &mut PrimaryState, node: NodeId, reply: ReplyTo) {
    let res = async {
        let smap = state.smap()?;
        let Some(next) = crate::logic::generation::remove_nodes(&smap, std::slice::from_ref(&node))
        else {
            return Err(Error::NotFound(format!(
                "node {node} is not in the cluster map"
            )));
        };
        let version = next.version;
        let push = push::commit(state, MetaUpdate::smap(next)).await?;
        state.last_seen.remove(&node);
        state.offline.remove(&node);
        Ok((push, version))
    }
    .await;
    match res {
        Ok((push, version)) => {
            let value = crate::proto::msg::RemoveFromSmap::reply(Box::new(LifecycleReply {
                smap_version: version,
                affected: vec![node.0],
                ..Default::default()
            }));
            push.spawn_then(move || {
                let _ = reply.send(Ok(value));
            });
        }
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// Periodic: offline detection, removal after the grace period, and a look at whether the
/// cluster elected someone else while this primary was cut off.
pub async fn tick(state: &mut PrimaryState) {
    state.ticks += 1;
    if state.ticks.is_multiple_of(4) {
        tokio::spawn(crate::node::election::check_still_primary(
            state.a.meta.clone(),
            state.a.pool.clone(),
            state.a.me.id.clone(),
        ));
    }
    let Ok(smap) = state.smap() else { return };
    let cfg = state.a.meta.get().config.keepalive.clone();
    let now = Instant::now();
    let mut remove = Vec::new();
    for n in smap.all_nodes() {
        if n.id == state.a.me.id || n.flags.contains(Flags::MAINT_POST_REB) {
            continue;
        }
        let seen = *state.last_seen.entry(n.id.clone()).or_insert(now);
        let silent = now.duration_since(seen);
        if silent > cfg.offline_after() && state.offline.insert(n.id.clone()) {
            tracing::warn!(node = %n.display_name(), ?silent, "node offline (keepalive lost)");
        }
        if silent > Duration::from_millis(cfg.remove_after_ms) {
            remove.push(n.id.clone());
        }
    }
    if !remove.is_empty()
        && let Some(next) = crate::logic::generation::remove_nodes(&smap, &remove)
    {
        for id in &remove {
            state.offline.remove(id);
            state.missed.insert(id.clone());
            tracing::warn!(node = %id, "removed from the map after a long silence (no rebalance)");
        }
        // A generation waiting for a removed node would wait forever: start a new one over the
        // nodes that are left (its senders re-plan every object).
        let running = state.tracker.as_ref().is_some_and(|t| t.running());
        let res = if running && next.count_active_targets() > 0 {
            let gone: Vec<String> = remove.iter().map(|n| n.to_string()).collect();
            let trigger = format!("remove silent nodes {}", gone.join(" "));
            generations::start(state, Some(next), trigger)
                .await
                .map(|(_, p)| p)
        } else {
            push::commit(state, MetaUpdate::smap(next)).await
        };
        match res {
            Ok(p) => p.spawn(),
            Err(e) => tracing::error!(error = %e, "cannot remove silent nodes"),
        }
        return;
    }
    // Participants that left the map no longer hold a generation up.
    let mut complete = false;
    if let Some(t) = state.tracker.as_mut()
        && t.retain_participants(|id| smap.contains(id))
    {
        complete = t.running() && t.all_ended();
    }
    if complete {
        generations::complete_generation(state).await;
    }
}

/// After an election or a (re)start: tell everyone, keep the discovery URLs current, and restart
/// the rebalance of lifecycle operations that were in flight (AIStore bumps the RMD by 100; one
/// is enough here).
pub async fn resume(state: &mut PrimaryState) {
    let Ok(smap) = state.smap() else { return };
    // The proxy URLs first, committed here only: the announcement then carries them, one push
    // to every node instead of two at once (at 1,000 nodes the second doubled the work of the
    // failover's critical window).
    refresh_urls(state).await;
    push::push(state, state.a.meta.get().as_update()).spawn_until_taken();
    let meta = state.a.meta.get();
    let unfinished: Vec<NodeId> = meta
        .rmd
        .finalize
        .iter()
        .filter(|id| smap.get(id).is_some_and(|n| n.in_transition()))
        .cloned()
        .collect();
    if state.tracker.is_none() && !unfinished.is_empty() && smap.count_active_targets() > 0 {
        let trigger = "resume lifecycle operations in flight (new primary)".to_string();
        match generations::start(state, None, trigger).await {
            Ok((rmd, push)) => {
                push.spawn();
                tracing::info!(generation = %rmd.rebalance_id(), nodes = ?unfinished, "resuming lifecycle operations left in flight");
            }
            Err(e) => tracing::error!(error = %e, "cannot resume lifecycle operations"),
        }
    }
}

/// `proxy.primary_url`, `original_url` and `discovery_url` follow the current primary and the
/// electable proxies, so that nodes with a stale config still find the cluster. Committed
/// here, not pushed: the caller's announcement carries the whole metadata.
async fn refresh_urls(state: &mut PrimaryState) {
    let Ok(smap) = state.smap() else { return };
    let mut cfg = state.a.meta.get().config.clone();
    let discovery: Vec<String> = smap
        .proxies
        .values()
        .filter(|n| !n.flags.contains(Flags::NON_ELECTABLE) && n.is_active())
        .map(|n| n.addr.clone())
        .collect();
    let (me, discovery) = (state.a.me.addr.clone(), discovery.join(","));
    if cfg.proxy.primary_url == me
        && cfg.proxy.original_url == me
        && cfg.proxy.discovery_url == discovery
    {
        return;
    }
    cfg.proxy.primary_url = me.clone();
    cfg.proxy.original_url = me;
    cfg.proxy.discovery_url = discovery;
    cfg.version += 1;
    let upd = MetaUpdate {
        config: Some(Box::new(cfg)),
        ..Default::default()
    };
    if let Err(e) = push::commit(state, upd).await {
        tracing::warn!(error = %e, "cannot update the proxy URLs");
    }
}
