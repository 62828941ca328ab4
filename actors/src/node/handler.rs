//! Request dispatch for one connection: which requests any node answers, which go to the
//! primary (forwarded by non-primary nodes), and which are data requests (redirected by proxies,
//! served by targets).

use std::sync::Arc;
use std::time::Duration;

use super::primary::{self, PrimaryMsg};
use super::{Ctx, NodeMsg};
use crate::auth;
use crate::error::{Error, Result};
use crate::placement;
use crate::smap::Role;
use crate::stats::StatsMsg;
use crate::wire::{Conn, Envelope, Msg, ObjEntry};

const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// Handles one request. Returns the reply to send, or `None` when the handler already streamed
/// its reply itself.
pub async fn handle(ctx: &Arc<Ctx>, conn: &mut Conn, env: Envelope) -> Result<Option<Msg>> {
    let corr = env.corr;
    if is_node_msg(&env.body) {
        auth::check_node(ctx, &env.from, env.token.as_deref())?;
    }
    match env.body {
        // ---- anyone ------------------------------------------------------------------------
        Msg::GetSmap => ctx
            .meta()
            .smap
            .clone()
            .map(|s| Some(Msg::Smap(s)))
            .ok_or_else(|| Error::NotFound("this node has not joined a cluster yet".into())),
        Msg::GetConfig => Ok(Some(Msg::Config(Box::new(ctx.meta().config.masked())))),
        Msg::ListBuckets => Ok(Some(Msg::Buckets(
            ctx.meta().bmd.buckets.iter().cloned().collect(),
        ))),
        Msg::GetNodeStats => Ok(Some(Msg::NodeStats(Box::new(node_stats(ctx).await?)))),

        // ---- from the primary ----------------------------------------------------------------
        Msg::Metasync {
            smap,
            rmd,
            bmd,
            config,
        } => {
            auth::check_member(ctx, &env.from, true)?;
            ctx.primary_contact();
            let Some(node) = ctx.node_ref() else {
                // Still starting (between the join answer and the actor tree): store it now so
                // no change is missed. The node actor looks at the metadata when it starts; if
                // it started while we stored, it may have looked before: make it look again
                // (reacting twice is harmless, missing a new generation stalls the cluster).
                if let Some(ms) = crate::fault::value("delay_early_metasync_ms")
                    && crate::fault::hits("joined") > 0
                    && rmd
                        .as_ref()
                        .is_some_and(|r| r.version > ctx.meta().rmd.version)
                {
                    tracing::warn!(ms, "fault delay_early_metasync_ms: metasync while starting");
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                ctx.apply(smap, rmd, bmd, config.map(|c| *c))?;
                if let Some(node) = ctx.node_ref() {
                    let _ = node.cast(NodeMsg::Refresh);
                }
                return Ok(Some(Msg::Ok));
            };
            let res = node
                .call(
                    |reply| NodeMsg::Metasync {
                        smap: smap.map(Box::new),
                        rmd,
                        bmd,
                        config,
                        reply: Some(reply),
                    },
                    Some(CONTROL_TIMEOUT),
                )
                .await
                .map_err(|e| Error::Remote(format!("node actor: {e}")))?;
            match res {
                ractor::rpc::CallResult::Success(Ok(())) => Ok(Some(Msg::Ok)),
                ractor::rpc::CallResult::Success(Err(m)) => Err(Error::BadRequest(m)),
                _ => Err(Error::Timeout("metasync".into())),
            }
        }
        Msg::NodeAction(action) => {
            auth::check_member(ctx, &env.from, true)?;
            let node = ctx
                .node_ref()
                .ok_or_else(|| Error::Busy("node is starting".into()))?;
            // Silence at once, before the primary drops us from the map: a heartbeat in between
            // would be answered "not in the map" and trigger a rejoin.
            if action == crate::lifecycle::NodeAction::StopKeepalive {
                ctx.keepalive_suspended
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            // Reply first: the action may end this process.
            conn.send(corr, Msg::Ok).await?;
            let _ = node.cast(NodeMsg::Action(action));
            Ok(None)
        }
        Msg::VoteRequest {
            candidate,
            old_primary,
        } => {
            auth::check_member(ctx, &env.from, false)?;
            Ok(Some(Msg::Vote {
                yes: crate::election::vote(ctx, &candidate, &old_primary),
            }))
        }
        Msg::Handshake { uuid } => {
            if let Some(s) = &ctx.meta().smap
                && s.uuid != uuid
            {
                return Err(Error::ClusterIntegrity(format!(
                    "this node belongs to cluster {}, not {uuid}",
                    s.uuid
                )));
            }
            if !ctx.args.standby && ctx.meta().smap.is_some() {
                return Err(Error::BadRequest(
                    "this node is already a cluster member".into(),
                ));
            }
            Ok(Some(Msg::HandshakeReply {
                node: ctx.me.clone(),
            }))
        }

        // ---- control: answered by the primary ------------------------------------------------
        body @ (Msg::Join { .. }
        | Msg::Keepalive { .. }
        | Msg::RebReport(_)
        | Msg::Lifecycle(_)
        | Msg::JoinByAdmin { .. }
        | Msg::RemoveFromSmap { .. }
        | Msg::Cluster(_)
        | Msg::CreateBucket { .. }
        | Msg::DestroyBucket { .. }
        | Msg::GetClusterStatus
        | Msg::GetRebStatus) => {
            if is_admin_op(&body) {
                auth::check_admin(ctx, env.token.as_deref())?;
            }
            if matches!(
                body,
                Msg::Join { .. } | Msg::Keepalive { .. } | Msg::RebReport(_)
            ) {
                auth::check_member_or_joining(ctx, &env.from, &body)?;
            }
            match ctx.primary_ref() {
                Some(p) => primary_call(ctx, p, body).await.map(Some),
                None => forward_to_primary(ctx, body, env.token).await.map(Some),
            }
        }

        // ---- data path ---------------------------------------------------------------------
        Msg::RebObject {
            generation,
            meta,
            bmd_version,
        } => {
            let t = target_of(ctx)?;
            t.receive_reb_object(ctx, conn, corr, generation, meta, bmd_version)
                .await
                .map(Some)
        }
        Msg::PlanMoves { smap } => {
            let t = target_of(ctx)?;
            Ok(Some(Msg::PlanMovesReply(t.plan_moves(ctx, &smap).await?)))
        }
        Msg::ListObjects {
            bucket,
            prefix,
            local,
        } => {
            check_bucket(ctx, &bucket)?;
            if local {
                let t = target_of(ctx)?;
                Ok(Some(Msg::Objects(t.list_local(&bucket, &prefix).await?)))
            } else {
                list_all(ctx, &bucket, &prefix).await.map(Some)
            }
        }
        body @ (Msg::Locate { .. }
        | Msg::PutObject { .. }
        | Msg::GetObject { .. }
        | Msg::HeadObject { .. }
        | Msg::DeleteObject { .. }) => match ctx.me.role {
            Role::Proxy => redirect(ctx, &body).map(Some),
            Role::Target => {
                let t = target_of(ctx)?;
                t.serve_data(ctx, conn, corr, body).await
            }
        },

        other => Err(Error::BadRequest(format!(
            "unexpected request {:?} for a {}",
            other.name(),
            ctx.me.role.as_str()
        ))),
    }
}

/// Requests only cluster members send each other.
fn is_node_msg(m: &Msg) -> bool {
    matches!(
        m,
        Msg::Metasync { .. }
            | Msg::NodeAction(_)
            | Msg::Join { .. }
            | Msg::Keepalive { .. }
            | Msg::RebReport(_)
            | Msg::RebObject { .. }
            | Msg::VoteRequest { .. }
            | Msg::PlanMoves { .. }
            | Msg::Handshake { .. }
    )
}

fn is_admin_op(m: &Msg) -> bool {
    matches!(
        m,
        Msg::Lifecycle(_)
            | Msg::JoinByAdmin { .. }
            | Msg::RemoveFromSmap { .. }
            | Msg::Cluster(_)
            | Msg::CreateBucket { .. }
            | Msg::DestroyBucket { .. }
    )
}

fn target_of(ctx: &Ctx) -> Result<&super::target::TargetCtx> {
    ctx.target
        .as_ref()
        .ok_or_else(|| Error::BadRequest("this node is not a target".into()))
}

fn check_bucket(ctx: &Ctx, bucket: &str) -> Result<()> {
    crate::store::validate_bucket(bucket)?;
    if !ctx.meta().bmd.buckets.contains(bucket) {
        return Err(Error::NotFound(format!("bucket {bucket:?} does not exist")));
    }
    Ok(())
}

async fn primary_call(ctx: &Arc<Ctx>, p: ractor::ActorRef<PrimaryMsg>, body: Msg) -> Result<Msg> {
    match body {
        Msg::GetClusterStatus => primary::cluster_status(ctx, &p).await,
        body => {
            let res = p
                .call(
                    |reply| PrimaryMsg::Request(Box::new(body), reply),
                    Some(CONTROL_TIMEOUT),
                )
                .await
                .map_err(|e| Error::Remote(format!("primary actor: {e}")))?;
            match res {
                ractor::rpc::CallResult::Success(r) => r,
                ractor::rpc::CallResult::Timeout => {
                    Err(Error::Timeout("the primary did not answer in time".into()))
                }
                ractor::rpc::CallResult::SenderError => {
                    Err(Error::Remote("the primary actor stopped".into()))
                }
            }
        }
    }
}

async fn forward_to_primary(ctx: &Arc<Ctx>, body: Msg, token: Option<String>) -> Result<Msg> {
    let addr = ctx
        .meta()
        .primary_addr()
        .ok_or_else(|| Error::NotFound("no primary known: this node has not joined".into()))?;
    let mut conn = ctx.pool.get(&addr, Duration::from_secs(5)).await?;
    // The client's token goes along (the primary checks it); the link keeps its own after.
    let own = std::mem::replace(&mut conn.token, token);
    let res = tokio::time::timeout(CONTROL_TIMEOUT, conn.request(body))
        .await
        .map_err(|_| Error::Timeout(format!("primary {addr} did not answer")))?;
    conn.token = own;
    if res.is_ok() {
        ctx.pool.put(&addr, conn);
    }
    res
}

/// Proxies answer data requests with the owner target's address.
fn redirect(ctx: &Ctx, body: &Msg) -> Result<Msg> {
    let key = match body {
        Msg::Locate { key }
        | Msg::PutObject { key, .. }
        | Msg::GetObject { key, .. }
        | Msg::HeadObject { key, .. }
        | Msg::DeleteObject { key, .. } => key,
        _ => unreachable!("only data requests are redirected"),
    };
    check_bucket(ctx, &key.bucket)?;
    crate::store::validate_object(&key.object)?;
    let meta = ctx.meta();
    let smap = meta
        .smap
        .as_ref()
        .ok_or_else(|| Error::NotFound("no cluster map yet".into()))?;
    let owner = placement::owner(smap, &key.bucket, &key.object)
        .ok_or_else(|| Error::NotFound("no active targets in the cluster".into()))?;
    Ok(Msg::Redirect {
        node: owner.id.clone(),
        addr: owner.addr.clone(),
    })
}

/// Lists a bucket across every target in the map; keeps the newest copy of each name (an object
/// caught between two targets mid-rebalance is listed once).
async fn list_all(ctx: &Arc<Ctx>, bucket: &str, prefix: &str) -> Result<Msg> {
    let meta = ctx.meta();
    let smap = meta
        .smap
        .as_ref()
        .ok_or_else(|| Error::NotFound("no cluster map yet".into()))?;
    let mut calls = Vec::new();
    for t in smap.targets.values() {
        let msg = Msg::ListObjects {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            local: true,
        };
        let addr = t.addr.clone();
        let id = t.id.clone();
        let active = t.is_active();
        let ctx = ctx.clone();
        calls.push(async move {
            (
                id,
                active,
                ctx.call(&addr, msg, Duration::from_secs(30)).await,
            )
        });
    }
    let results = futures::future::join_all(calls).await;
    let mut merged: std::collections::BTreeMap<String, ObjEntry> = Default::default();
    for (id, active, r) in results {
        match r {
            Ok(Msg::Objects(list)) => {
                for e in list {
                    match merged.get(&e.name) {
                        Some(cur) if cur.version >= e.version => {}
                        _ => {
                            merged.insert(e.name.clone(), e);
                        }
                    }
                }
            }
            Ok(other) => return Err(crate::client::unexpected(&other)),
            // A target in maintenance that is down holds nothing we can serve anyway.
            Err(e) if active => {
                return Err(Error::Offline(format!(
                    "cannot list {bucket}: target t[{id}] did not answer: {e}"
                )));
            }
            Err(_) => {}
        }
    }
    Ok(Msg::Objects(merged.into_values().collect()))
}

pub async fn node_stats(ctx: &Ctx) -> Result<crate::stats::NodeStats> {
    let stats = ctx
        .stats
        .lock()
        .expect("poisoned")
        .clone()
        .ok_or_else(|| Error::Busy("node is starting".into()))?;
    let mut s = ractor::call_t!(stats, StatsMsg::Get, 2000)
        .map_err(|e| Error::Remote(format!("stats actor: {e}")))?;
    s.uptime_secs = ctx.started.elapsed().as_secs();
    if let Some(t) = &ctx.target {
        for (i, mp) in t.mountpaths.iter().enumerate() {
            if let Some(m) = s.mountpaths.get_mut(i) {
                m.objects = mp.objects();
                m.object_bytes = mp.bytes();
            }
        }
        s.object_count = t.mountpaths.iter().map(|m| m.objects()).sum();
        s.object_bytes = t.mountpaths.iter().map(|m| m.bytes()).sum();
    }
    Ok(s)
}
