//! Operations an admin asks for (DESIGN §7): lifecycle steps (with their dry run and the probe
//! stop-maintenance needs), bucket create/destroy, cluster-wide shutdown and decommission, and
//! the final step of lifecycle operations.

use std::time::Duration;

use super::finalize;
use super::generations::{self, busy};
use super::push::{self, METASYNC_TIMEOUT};
use super::{PrimaryMsg, PrimaryState, ReplyTo};
use crate::error::{Error, Result};
use crate::logic::auth;
use crate::logic::{admission, authn, names, plan};
use crate::proto::msg::{
    AuthOp, AuthReply, CreateBucket, GetNodeStats, PlanMoves, RebalanceCtl, Reply, Rpc, S3KeyInfo,
    S3KeyOp, S3Keys, UserInfo,
};
use crate::types::auth::RoleDef;
use crate::types::config::S3Key;
use crate::types::lifecycle::{
    ClusterOp, LifecycleOp, LifecycleReply, LifecycleRequest, NodeAction, PlanMove,
};
use crate::types::meta::MetaUpdate;
use crate::types::smap::{Flags, NodeId, Smap};

/// A lifecycle step. `probed`: stop-maintenance's nodes were found answering.
pub async fn lifecycle(
    state: &mut PrimaryState,
    req: LifecycleRequest,
    reply: ReplyTo,
    probed: bool,
) {
    if req.dry_run {
        dry_run(state, req, reply);
        return;
    }
    match run_lifecycle(state, req, probed).await {
        Ok(Step::Answer(value, then)) => match then {
            Some(push) => push.spawn_then(move || {
                let _ = reply.send(Ok(value));
            }),
            None => {
                let _ = reply.send(Ok(value));
            }
        },
        Ok(Step::Probe(req, nodes)) => {
            let (pool, me) = (state.a.pool.clone(), state.myself.clone());
            tokio::spawn(async move {
                // A node must be up to come back (AIStore health-checks it first): otherwise
                // the rebalance would wait for it forever.
                let calls = nodes.into_iter().map(|n| {
                    let pool = pool.clone();
                    async move {
                        let r = pool
                            .rpc(&n.addr, GetNodeStats, Duration::from_secs(2))
                            .await;
                        (n, r)
                    }
                });
                let silent = futures::future::join_all(calls)
                    .await
                    .into_iter()
                    .filter_map(|(n, r)| r.err().map(|e| (n, e.to_string())))
                    .collect();
                let _ = me.cast(PrimaryMsg::Probed { req, silent, reply });
            });
        }
        Ok(Step::Finalize(nodes, value)) => {
            if let Err(e) = finalize::finalize(state, &nodes, false, Some((reply, value))).await {
                tracing::error!(error = %e, "finalizing lifecycle operations failed");
            }
        }
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// What a lifecycle request leads to (short-lived: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Step {
    /// Answer (after the push, if any).
    Answer(Reply, Option<push::Push>),
    /// Probe these nodes first (stop-maintenance), then run again.
    Probe(LifecycleRequest, Vec<crate::types::smap::Node>),
    /// No rebalance: finalise these nodes now, then answer.
    Finalize(Vec<NodeId>, Reply),
}

async fn run_lifecycle(
    state: &mut PrimaryState,
    req: LifecycleRequest,
    probed: bool,
) -> Result<Step> {
    let smap = state.smap()?;
    if let Some(t) = state.tracker.as_ref().filter(|t| t.running()) {
        // stop-maintenance may interrupt a maintenance/shutdown whose rebalance still runs.
        let interrupting = req.op == LifecycleOp::StopMaintenance
            && req.nodes.iter().all(|n| {
                t.finalize.contains(n)
                    && smap.get(n).is_some_and(|x| {
                        x.flags.contains(Flags::MAINT) && !x.flags.contains(Flags::DECOMM)
                    })
            });
        if !interrupting {
            return Err(busy(req.op.as_str(), t));
        }
    }
    let adm = admission::admit(&smap, &req)?;
    if req.op == LifecycleOp::StopMaintenance && !probed {
        let nodes: Vec<_> = adm
            .affected
            .iter()
            .filter(|id| **id != state.a.me.id)
            .filter_map(|id| smap.get(id).cloned())
            .collect();
        if !nodes.is_empty() {
            return Ok(Step::Probe(req, nodes));
        }
    }
    let enabled = state.a.meta.get().config.rebalance.enabled;
    let rebalance = adm.rebalance && enabled;
    if req.no_rebalance && adm.moves_data {
        tracing::warn!(op = %req.op, "lifecycle without rebalance: data on the nodes is not migrated");
    }
    let mut out = LifecycleReply {
        rebalance_id: None,
        smap_version: adm.smap.as_ref().map(|s| s.version).unwrap_or(smap.version),
        affected: adm.affected.iter().map(|n| n.0.clone()).collect(),
        skipped: adm.skipped.iter().map(|n| n.0.clone()).collect(),
        completed: vec![],
        plan: None,
    };
    if adm.affected.is_empty() {
        return Ok(Step::Answer(req_reply(out), None));
    }
    if rebalance {
        let nodes: Vec<String> = adm
            .affected
            .iter()
            .map(|n| smap.get(n).map_or(n.to_string(), |x| x.display_name()))
            .collect();
        let mut trigger = format!("{} {}", req.op, nodes.join(" "));
        if let Some(by) = &state.requester {
            trigger.push_str(&format!(" by {by}"));
        }
        let (rmd, push) = generations::start(state, adm.smap.clone(), trigger).await?;
        out.rebalance_id = Some(rmd.rebalance_id());
        tracing::info!(op = %req.op, nodes = ?out.affected, generation = %rmd.rebalance_id(), "lifecycle operation started");
        return Ok(Step::Answer(req_reply(out), Some(push)));
    }
    if let Some(next) = adm.smap.clone() {
        push::commit(state, MetaUpdate::smap(next)).await?.spawn();
    }
    // No migration: the final step runs now.
    out.completed = out.affected.clone();
    out.smap_version = state.smap()?.version;
    Ok(Step::Finalize(adm.affected, req_reply(out)))
}

fn req_reply(r: LifecycleReply) -> Reply {
    LifecycleRequest::reply(Box::new(r))
}

/// Cluster-wide shutdown or decommission: every other node is told (from a task), the answer
/// sent, and this node goes last.
pub fn cluster_op(state: &mut PrimaryState, op: ClusterOp, reply: ReplyTo) {
    let action = match op {
        ClusterOp::Shutdown => NodeAction::Shutdown,
        ClusterOp::Decommission { rm_user_data } => NodeAction::Decommission { rm_user_data },
    };
    let meta = state.a.meta.get();
    let others: Vec<String> = meta
        .smap
        .as_ref()
        .map(|s| {
            s.all_nodes()
                .filter(|n| n.id != state.a.me.id)
                .map(|n| n.addr.clone())
                .collect()
        })
        .unwrap_or_default();
    let (pool, me) = (state.a.pool.clone(), state.a.me.addr.clone());
    tokio::spawn(async move {
        let calls = others
            .iter()
            .map(|a| pool.rpc(a, action.clone(), METASYNC_TIMEOUT));
        futures::future::join_all(calls).await;
        let _ = reply.send(Ok(ClusterOp::reply(())));
        // The primary goes last, after its answer is on the way, told like any other node.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = pool.rpc(&me, action, METASYNC_TIMEOUT).await;
    });
}

pub async fn bucket_op(state: &mut PrimaryState, bucket: String, create: bool, reply: ReplyTo) {
    let res = async {
        names::validate_bucket(&bucket)?;
        let mut bmd = state.a.meta.get().bmd.clone();
        match (create, bmd.buckets.contains(&bucket)) {
            (true, true) => {
                return Err(Error::BadRequest(format!(
                    "bucket {bucket:?} already exists"
                )));
            }
            (false, false) => {
                return Err(Error::NotFound(format!("bucket {bucket:?} does not exist")));
            }
            (true, false) => bmd.buckets.insert(bucket),
            (false, true) => bmd.buckets.remove(&bucket),
        };
        bmd.version += 1;
        push::commit(
            state,
            MetaUpdate {
                bmd: Some(bmd),
                ..Default::default()
            },
        )
        .await
    }
    .await;
    match res {
        Ok(push) => push.spawn_then(move || {
            let _ = reply.send(Ok(CreateBucket::reply(())));
        }),
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// Dry run: admission here, then a task asks every target what it would move and every node
/// for its capacity, and answers.
fn dry_run(state: &mut PrimaryState, req: LifecycleRequest, reply: ReplyTo) {
    let res = (|| {
        let smap = state.smap()?;
        let adm = admission::admit(&smap, &req)?;
        Ok::<_, Error>((smap, adm))
    })();
    let (smap, adm) = match res {
        Ok(x) => x,
        Err(e) => {
            let _ = reply.send(Err(e));
            return;
        }
    };
    let config = &state.a.meta.get().config;
    let (enabled, storage) = (config.rebalance.enabled, config.storage.clone());
    let pool = state.a.pool.clone();
    tokio::spawn(async move {
        let (mut outline, ask) = plan::outline(&smap, &req, &adm, enabled);
        let next = adm.smap.clone().unwrap_or_else(|| smap.clone());
        if ask {
            let (moves, warnings) = ask_moves(&pool, &smap, &next).await;
            outline.warnings.extend(warnings);
            let stats = push::fetch_stats(&pool, &smap).await;
            outline = plan::complete(outline, &smap, &next, moves, &stats, &storage);
        }
        let value = LifecycleRequest::reply(Box::new(LifecycleReply {
            rebalance_id: None,
            smap_version: smap.version,
            plan: Some(outline),
            ..Default::default()
        }));
        let _ = reply.send(Ok(value));
    });
}

/// What each target would send where under `next`; targets that do not answer are named.
async fn ask_moves(
    pool: &crate::proto::pool::Pool,
    smap: &Smap,
    next: &Smap,
) -> (Vec<PlanMove>, Vec<String>) {
    // Encoded once for every target: a clone and an encoding of the whole map per target was
    // most of a dry run's time at 1,000 nodes (scale-benchmarks finding 9).
    let body = match crate::proto::codec::Encoded::new(&PlanMoves { smap: next.clone() }.into_msg())
    {
        Ok(b) => b,
        Err(e) => {
            return (
                Vec::new(),
                vec![format!("cannot encode the plan request: {e}")],
            );
        }
    };
    let body = &body;
    let calls = smap.targets.values().map(|t| {
        let (addr, id) = (t.addr.clone(), t.id.clone());
        async move {
            let r = pool
                .call_encoded(&addr, body, Duration::from_secs(120))
                .await
                .and_then(crate::proto::msg::expect::<PlanMoves>);
            (id, r)
        }
    });
    let mut moves = Vec::new();
    let mut warnings = Vec::new();
    for (id, r) in futures::future::join_all(calls).await {
        match r {
            Ok(m) => moves.extend(m),
            Err(e) => warnings.push(format!(
                "t[{id}] did not answer ({e}); its objects are not counted"
            )),
        }
    }
    (moves, warnings)
}

/// Live rebalance settings in the cluster config (pushed to every node, persisted there, so a
/// pause holds across restarts and for targets that join meanwhile).
pub async fn rebalance_ctl(state: &mut PrimaryState, op: RebalanceCtl, reply: ReplyTo) {
    let mut cfg = state.a.meta.get().config.clone();
    let before = cfg.rebalance.clone();
    if let Some(p) = op.paused {
        cfg.rebalance.paused = p;
    }
    if let Some(t) = op.throttle_bytes_per_sec {
        cfg.rebalance.throttle_bytes_per_sec = t;
    }
    let value = RebalanceCtl::reply(Box::new(cfg.rebalance.clone()));
    if cfg.rebalance == before {
        let _ = reply.send(Ok(value));
        return;
    }
    tracing::info!(
        paused = cfg.rebalance.paused,
        throttle = cfg.rebalance.throttle_bytes_per_sec,
        "rebalance settings changed"
    );
    cfg.version += 1;
    let upd = MetaUpdate {
        config: Some(Box::new(cfg)),
        ..Default::default()
    };
    match push::commit(state, upd).await {
        Ok(push) => push.spawn_then(move || {
            let _ = reply.send(Ok(value));
        }),
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// S3 access keys in the cluster config: created with a random secret sealed under the
/// cluster secret, listed without secrets, removed.
pub async fn s3_keys(state: &mut PrimaryState, op: S3KeyOp, reply: ReplyTo) {
    let res = async {
        let mut cfg = state.a.meta.get().config.clone();
        let mut created = None;
        let changes = !matches!(op, S3KeyOp::List);
        match op {
            S3KeyOp::List => {}
            S3KeyOp::Create { admin, user } => {
                if let Some(u) = &user
                    && cfg.auth.user(u).is_none()
                {
                    return Err(Error::BadRequest(format!(
                        "no user {:?}: add the user first (nodectl auth user add)",
                        crate::logic::format::safe(u)
                    )));
                }
                let secret = state.a.secret.as_ref().ok_or_else(|| {
                    Error::BadRequest(
                        "S3 keys are sealed with the cluster secret: provision it on the nodes first"
                            .into(),
                    )
                })?;
                let (access, key) = (random_text(20, true), random_text(40, false));
                cfg.auth.s3_keys.push(S3Key {
                    access_key: access.clone(),
                    secret_sealed: auth::seal(secret, &key)?,
                    admin,
                    user: user.unwrap_or_default(),
                    created: crate::types::unix_secs(),
                });
                created = Some((access, key));
            }
            S3KeyOp::Remove { access_key } => {
                let before = cfg.auth.s3_keys.len();
                cfg.auth.s3_keys.retain(|k| k.access_key != access_key);
                if cfg.auth.s3_keys.len() == before {
                    return Err(Error::NotFound(format!("no S3 key {access_key:?}")));
                }
            }
        }
        let keys = cfg
            .auth
            .s3_keys
            .iter()
            .map(|k| S3KeyInfo {
                access_key: k.access_key.clone(),
                admin: k.admin,
                user: k.user.clone(),
                created: k.created,
            })
            .collect();
        let value = S3KeyOp::reply(S3Keys { keys, created });
        if !changes {
            return Ok((None, value));
        }
        cfg.version += 1;
        let upd = MetaUpdate {
            config: Some(Box::new(cfg)),
            ..Default::default()
        };
        Ok((Some(push::commit(state, upd).await?), value))
    }
    .await;
    answer_after_push(res, reply);
}

/// The AuthN service's changes to users, roles and revocations: applied to the config by the
/// rules of `logic::authn`, then persisted and pushed to every node before the answer (so a
/// revoked token is refused everywhere once the revoke returns). Logins and `whoami` are
/// answered by the node that received them.
pub async fn auth(state: &mut PrimaryState, op: AuthOp, reply: ReplyTo) {
    let res = async {
        let mut cfg = state.a.meta.get().config.clone();
        let now = crate::types::unix_secs();
        let mut out = AuthReply::default();
        let changes = match op {
            AuthOp::UserLs | AuthOp::RoleLs => false,
            AuthOp::UserAdd {
                name,
                roles,
                password_hash,
                ..
            } => {
                authn::add_user(&mut cfg.auth, &name, &password_hash, &roles, now)?;
                tracing::info!(user = %name, ?roles, "user added");
                true
            }
            AuthOp::UserRm { name } => {
                authn::remove_user(&mut cfg.auth, &name)?;
                tracing::info!(user = %name, "user removed");
                true
            }
            AuthOp::RoleAdd { name, desc, perms } => {
                authn::add_role(&mut cfg.auth, RoleDef { name, desc, perms })?;
                true
            }
            AuthOp::RoleRm { name } => {
                authn::remove_role(&mut cfg.auth, &name)?;
                true
            }
            AuthOp::Revoke {
                user: Some(user), ..
            } => {
                authn::revoke_user(&mut cfg.auth, &user, now)?;
                tracing::info!(%user, "every token of the user revoked");
                out.revoked = Some(format!("every token of {user}"));
                true
            }
            AuthOp::Revoke { token, jti, .. } => {
                let (jti, exp, sub) = match (token, jti) {
                    (Some(t), _) => {
                        let secret = state.a.secret.as_ref().ok_or_else(|| {
                            Error::BadRequest("this node has no cluster secret".into())
                        })?;
                        let c = auth::revocable(secret, &t)?;
                        (c.jti.unwrap_or_default(), c.exp, c.sub)
                    }
                    (None, Some(j)) => (j, 0, String::new()),
                    (None, None) => {
                        return Err(Error::BadRequest(
                            "revoke what? a token or a token ID".into(),
                        ));
                    }
                };
                authn::revoke(&mut cfg.auth, &jti, exp, &sub, now)?;
                tracing::info!(%jti, %sub, "token revoked");
                out.revoked = Some(jti);
                true
            }
            AuthOp::Login { .. } | AuthOp::WhoAmI => {
                return Err(Error::BadRequest(
                    "logins are answered by the node that receives them".into(),
                ));
            }
        };
        out.users = cfg
            .auth
            .users
            .iter()
            .map(|u| UserInfo {
                name: u.name.clone(),
                roles: u.roles.clone(),
                created: u.created,
            })
            .collect();
        out.roles = crate::logic::perm::all_roles(&cfg.auth.roles);
        let value = AuthOp::reply(Box::new(out));
        if !changes {
            return Ok((None, value));
        }
        cfg.version += 1;
        let upd = MetaUpdate {
            config: Some(Box::new(cfg)),
            ..Default::default()
        };
        Ok((Some(push::commit(state, upd).await?), value))
    }
    .await;
    answer_after_push(res, reply);
}

/// Random text for keys: upper-case letters and digits (access keys), or letters, digits and
/// `+/` (secrets), as AWS makes them.
fn random_text(n: usize, access: bool) -> String {
    use rand::Rng;
    const ACCESS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let set = if access { ACCESS } else { SECRET };
    let mut rng = rand::rng();
    (0..n)
        .map(|_| set[rng.random_range(0..set.len())] as char)
        .collect()
}

/// Answers `reply` with `res` once the config change it committed (if any) has been pushed to
/// every node: a change the caller was told about is in force everywhere.
fn answer_after_push(res: Result<(Option<push::Push>, Reply)>, reply: ReplyTo) {
    match res {
        Ok((Some(push), value)) => push.spawn_then(move || {
            let _ = reply.send(Ok(value));
        }),
        Ok((None, value)) => {
            let _ = reply.send(Ok(value));
        }
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}
