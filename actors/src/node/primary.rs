//! The primary (DESIGN §3, §7, §9): the only writer of cluster metadata. It admits joins and
//! lifecycle operations (one membership change at a time), bumps and distributes the map
//! (metasync), tracks keepalives, follows the rebalance of each generation, and finalizes
//! lifecycle operations when their rebalance is done.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::Ctx;
use crate::error::{Error, Result};
use crate::lifecycle::{
    self, LifecycleOp, LifecycleReply, LifecycleRequest, NodeAction, Plan, PlanCapacity, PlanMove,
};
use crate::rebalance::{RebalanceStatus, Stage, TargetRebStatus};
use crate::smap::{Bmd, Flags, Node, NodeId, Rmd, Role, Smap, rebalance_id};
use crate::stats::{ClusterStatus, NodeStats, NodeStatus};
use crate::wire::{ClusterOp, Msg};

const METASYNC_TIMEOUT: Duration = Duration::from_secs(5);
const STATS_TIMEOUT: Duration = Duration::from_millis(1500);
/// A finished rebalance is shown as `finished(gN)` for this long (as AIStore does).
const SHOW_FINISHED_FOR: Duration = Duration::from_secs(300);

pub struct PrimaryActor;

pub enum PrimaryMsg {
    /// A control request from a client or a node; the reply is the wire answer.
    Request(Box<Msg>, RpcReplyPort<Result<Msg>>),
    /// Snapshot for `show cluster` (the fan-out for stats happens outside the actor).
    Snapshot(RpcReplyPort<Snapshot>),
    /// Periodic: offline detection, removal after grace.
    Tick,
    /// Shortly after becoming primary: announce, refresh the proxy URLs, and finish lifecycle
    /// operations a previous primary left in flight.
    Resume,
}

/// What `show cluster` needs from the primary's state.
pub struct Snapshot {
    pub smap: Smap,
    pub offline: HashSet<NodeId>,
    pub rebalance: Option<RebalanceStatus>,
}

/// The primary's view of the latest rebalance generation.
struct Tracker {
    generation: u64,
    participants: BTreeSet<NodeId>,
    reports: HashMap<NodeId, TargetRebStatus>,
    started: Instant,
    started_unix: u64,
    finished: Option<(Instant, u64)>,
    /// (when, bytes moved, objects moved): a sliding window for the rate.
    samples: VecDeque<(Instant, u64, u64)>,
    aborted: bool,
    /// Nodes whose lifecycle step completes with this generation (from the RMD).
    finalize: Vec<NodeId>,
}

impl Tracker {
    fn new(generation: u64, participants: BTreeSet<NodeId>, finalize: Vec<NodeId>) -> Self {
        Tracker {
            generation,
            participants,
            reports: HashMap::new(),
            started: Instant::now(),
            started_unix: crate::store::unix_secs(),
            finished: None,
            samples: VecDeque::new(),
            aborted: false,
            finalize,
        }
    }

    fn running(&self) -> bool {
        self.finished.is_none() && !self.aborted
    }

    fn stage_of(&self, id: &NodeId) -> Stage {
        self.reports.get(id).map(|r| r.stage).unwrap_or(Stage::Init)
    }

    fn min_stage(&self) -> Stage {
        self.participants
            .iter()
            .map(|id| self.stage_of(id))
            .filter(|s| *s != Stage::Aborted)
            .min()
            .unwrap_or(Stage::Done)
    }

    fn all_done(&self) -> bool {
        self.participants
            .iter()
            .all(|id| self.stage_of(id) == Stage::Done)
    }

    fn moved(&self) -> (u64, u64) {
        self.reports.values().fold((0, 0), |(b, o), r| {
            (b + r.tx_bytes + r.local_bytes, o + r.tx_objs + r.local_objs)
        })
    }

    fn sample(&mut self) {
        let (b, o) = self.moved();
        let now = Instant::now();
        self.samples.push_back((now, b, o));
        while self.samples.len() > 2
            && now.duration_since(self.samples[0].0) > Duration::from_secs(10)
        {
            self.samples.pop_front();
        }
    }

    fn status(&self, offline: &HashSet<NodeId>) -> RebalanceStatus {
        let (bytes_moved, objs_moved) = self.moved();
        let objs_total: u64 = self.reports.values().map(|r| r.objs_total).sum();
        let bytes_total: u64 = self.reports.values().map(|r| r.bytes_total).sum();
        let counted = self
            .participants
            .iter()
            .all(|id| self.reports.get(id).is_some_and(|r| r.counted));
        let (rate_b, rate_o) = match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(z)) if z.0 > a.0 => {
                let dt = z.0.duration_since(a.0).as_secs_f64();
                (
                    z.1.saturating_sub(a.1) as f64 / dt,
                    z.2.saturating_sub(a.2) as f64 / dt,
                )
            }
            _ => (0.0, 0.0),
        };
        let (rate_b, rate_o) = if self.running() {
            (rate_b, rate_o)
        } else {
            // Finished: the average over the whole run.
            let dt = self
                .finished
                .map(|(f, _)| f.duration_since(self.started))
                .unwrap_or_default()
                .as_secs_f64()
                .max(0.001);
            (bytes_moved as f64 / dt, objs_moved as f64 / dt)
        };
        let eta = if !self.running() {
            Some(0)
        } else if counted && rate_b > 0.0 && bytes_total > 0 {
            Some((bytes_total.saturating_sub(bytes_moved) as f64 / rate_b).ceil() as u64)
        } else if counted && rate_o > 0.0 {
            Some((objs_total.saturating_sub(objs_moved) as f64 / rate_o).ceil() as u64)
        } else if counted && objs_total == 0 {
            Some(0)
        } else {
            None
        };
        let mut blocked = Vec::new();
        if self.running() {
            for id in &self.participants {
                if offline.contains(id) {
                    blocked.push(format!("t[{id}] is offline (keepalive lost)"));
                }
                if let Some(b) = self.reports.get(id).and_then(|r| r.blocked_by.clone()) {
                    blocked.push(format!("t[{id}]: {b}"));
                }
            }
        }
        let mut targets: Vec<TargetRebStatus> = self
            .participants
            .iter()
            .map(|id| {
                self.reports
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| TargetRebStatus {
                        id: id.0.clone(),
                        generation: self.generation,
                        ..Default::default()
                    })
            })
            .collect();
        targets.sort_by(|a, b| a.id.cmp(&b.id));
        RebalanceStatus {
            id: rebalance_id(self.generation),
            state: if self.aborted {
                "aborted".into()
            } else if self.finished.is_some() {
                "finished".into()
            } else {
                "running".into()
            },
            stage: self.min_stage().as_str().into(),
            objs_total,
            bytes_total,
            objs_moved,
            bytes_moved,
            rate_bytes_per_sec: rate_b,
            rate_objs_per_sec: rate_o,
            eta_secs: eta,
            blocked_by: blocked,
            errors: targets.iter().map(|t| t.errors).sum(),
            targets,
            started: Some(self.started_unix),
            finished: self.finished.map(|(_, u)| u),
        }
    }
}

pub struct PrimaryState {
    ctx: Arc<Ctx>,
    last_seen: HashMap<NodeId, Instant>,
    offline: HashSet<NodeId>,
    tracker: Option<Tracker>,
    /// Targets that were offline when a generation started: they rebalance when they return.
    missed: HashSet<NodeId>,
    /// Ticks so far; every few, check that no other primary was elected meanwhile.
    ticks: u64,
}

/// Starts the primary actor under the node actor.
pub async fn start(ctx: &Arc<Ctx>, supervisor: ActorCell) -> Result<()> {
    let (p, _) = Actor::spawn_linked(None, PrimaryActor, ctx.clone(), supervisor)
        .await
        .map_err(|e| Error::Remote(format!("primary actor: {e}")))?;
    *ctx.primary.lock().expect("poisoned") = Some(p);
    Ok(())
}

impl Actor for PrimaryActor {
    type Msg = PrimaryMsg;
    type State = PrimaryState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let now = Instant::now();
        let last_seen = ctx
            .meta()
            .smap
            .as_ref()
            .map(|s| s.all_nodes().map(|n| (n.id.clone(), now)).collect())
            .unwrap_or_default();
        let every = ctx.meta().config.keepalive.interval() / 2;
        myself.send_interval(every, || PrimaryMsg::Tick);
        tracing::info!("primary actor started");
        let state = PrimaryState {
            ctx,
            last_seen,
            offline: HashSet::new(),
            tracker: None,
            missed: HashSet::new(),
            ticks: 0,
        };
        myself.send_after(Duration::from_millis(300), || PrimaryMsg::Resume);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PrimaryMsg::Request(body, reply) => {
                let res = request(state, *body, reply).await;
                if let Some((r, res)) = res {
                    let _ = r.send(res);
                }
            }
            PrimaryMsg::Snapshot(reply) => {
                let smap = state
                    .ctx
                    .meta()
                    .smap
                    .clone()
                    .unwrap_or_else(|| Smap::bootstrap(state.ctx.me.clone()));
                let _ = reply.send(Snapshot {
                    smap,
                    offline: state.offline.clone(),
                    rebalance: state.tracker.as_ref().map(|t| t.status(&state.offline)),
                });
            }
            PrimaryMsg::Tick => tick(state).await,
            PrimaryMsg::Resume => resume(state).await,
        }
        Ok(())
    }
}

/// After an election or a restart: tell everyone, keep the discovery URLs current, and restart
/// the rebalance of lifecycle operations that were in flight (AIStore bumps the RMD by 100;
/// one is enough here).
async fn resume(state: &mut PrimaryState) {
    let ctx = state.ctx.clone();
    let Ok(smap) = smap_of(state) else { return };
    let msg = full_sync(&ctx);
    broadcast(&ctx, &msg).await;
    refresh_urls(state).await;
    let meta = ctx.meta();
    let unfinished: Vec<NodeId> = meta
        .rmd
        .finalize
        .iter()
        .filter(|id| smap.get(id).is_some_and(|n| n.in_transition()))
        .cloned()
        .collect();
    if state.tracker.is_none()
        && !unfinished.is_empty()
        && smap.count_active_targets() > 0
        && let Ok(rmd) = start_generation(state, None).await
    {
        tracing::info!(generation = %rmd.rebalance_id(), nodes = ?unfinished, "resuming lifecycle operations left in flight");
    }
}

/// `proxy.primary_url`, `original_url` and `discovery_url` follow the current primary and the
/// electable proxies, so that nodes with a stale config still find the cluster.
async fn refresh_urls(state: &mut PrimaryState) {
    let ctx = state.ctx.clone();
    let Ok(smap) = smap_of(state) else { return };
    let mut cfg = ctx.meta().config.clone();
    let discovery: Vec<String> = smap
        .proxies
        .values()
        .filter(|n| !n.flags.contains(Flags::NON_ELECTABLE) && n.is_active())
        .map(|n| n.addr.clone())
        .collect();
    let want = (ctx.me.addr.clone(), discovery.join(","));
    if cfg.proxy.primary_url == want.0
        && cfg.proxy.original_url == want.0
        && cfg.proxy.discovery_url == want.1
    {
        return;
    }
    cfg.proxy.primary_url = want.0.clone();
    cfg.proxy.original_url = want.0;
    cfg.proxy.discovery_url = want.1;
    cfg.version += 1;
    if let Err(e) = ctx.apply(None, None, None, Some(cfg.clone())) {
        tracing::warn!(error = %e, "cannot update the proxy URLs");
        return;
    }
    let msg = Msg::Metasync {
        smap: None,
        rmd: None,
        bmd: None,
        config: Some(Box::new(cfg)),
    };
    broadcast(&ctx, &msg).await;
}

type Reply = RpcReplyPort<Result<Msg>>;

/// Handles one request; returns the reply port and answer unless a task took them over.
async fn request(
    state: &mut PrimaryState,
    body: Msg,
    reply: Reply,
) -> Option<(Reply, Result<Msg>)> {
    let res = match body {
        Msg::Keepalive {
            node,
            smap_version,
            rmd_version,
            bmd_version,
            config_version,
        } => keepalive(
            state,
            node,
            [smap_version, rmd_version, bmd_version, config_version],
        ),
        Msg::Join {
            node,
            uuid,
            reb_interrupted,
        } => join(state, node, uuid, reb_interrupted).await,
        Msg::RebReport(r) => reb_report(state, *r).await,
        Msg::GetRebStatus => Ok(Msg::RebStatus(
            state
                .tracker
                .as_ref()
                .map(|t| Box::new(t.status(&state.offline))),
        )),
        Msg::Lifecycle(req) if req.dry_run => {
            // Planning walks every target's objects: do it outside the actor.
            let ctx = state.ctx.clone();
            let smap = ctx.meta().smap.clone();
            tokio::spawn(async move {
                let res = match smap {
                    Some(s) => dry_run(&ctx, &s, &req).await.map(|plan| {
                        Msg::LifecycleReply(LifecycleReply {
                            rebalance_id: None,
                            smap_version: s.version,
                            plan: Some(plan),
                            ..Default::default()
                        })
                    }),
                    None => Err(Error::NotFound("no cluster map".into())),
                };
                let _ = reply.send(res);
            });
            return None;
        }
        Msg::Lifecycle(req) => lifecycle_op(state, req).await,
        Msg::JoinByAdmin { addr, role } => admin_join(state, addr, role).await,
        Msg::RemoveFromSmap { node } => remove_from_smap(state, node).await,
        Msg::Cluster(op) => cluster_op(state, op).await,
        Msg::CreateBucket { bucket } => bucket_op(state, bucket, true).await,
        Msg::DestroyBucket { bucket } => bucket_op(state, bucket, false).await,
        other => Err(Error::BadRequest(format!(
            "the primary does not handle {}",
            other.name()
        ))),
    };
    Some((reply, res))
}

fn smap_of(state: &PrimaryState) -> Result<Smap> {
    state
        .ctx
        .meta()
        .smap
        .clone()
        .ok_or_else(|| Error::NotFound("no cluster map".into()))
}

/// Sends `msg` to every other node of the current map at once.
async fn broadcast(ctx: &Arc<Ctx>, msg: &Msg) -> Vec<(NodeId, Result<Msg>)> {
    let meta = ctx.meta();
    let Some(smap) = meta.smap.as_ref() else {
        return Vec::new();
    };
    let calls = smap.all_nodes().filter(|n| n.id != ctx.me.id).map(|n| {
        let (id, addr, msg) = (n.id.clone(), n.addr.clone(), msg.clone());
        async move { (id, ctx.call(&addr, msg, METASYNC_TIMEOUT).await) }
    });
    futures::future::join_all(calls).await
}

/// Persists and applies locally, then pushes to every other node in the (new) map.
async fn commit(
    state: &mut PrimaryState,
    smap: Option<Smap>,
    rmd: Option<Rmd>,
    bmd: Option<Bmd>,
) -> Result<()> {
    let ctx = &state.ctx;
    ctx.apply(smap.clone(), rmd.clone(), bmd.clone(), None)?;
    let msg = Msg::Metasync {
        smap,
        rmd,
        bmd,
        config: None,
    };
    // Wait for the push (bounded): a client that is told "started g5" can rely on every
    // reachable node knowing about g5.
    for (node, r) in broadcast(ctx, &msg).await {
        if let Err(e) = r {
            tracing::debug!(%node, error = %e, "metasync failed (will catch up)");
        }
    }
    Ok(())
}

/// Everything a node needs, for one that is new or reported an old map version.
fn full_sync(ctx: &Ctx) -> Msg {
    let meta = ctx.meta();
    Msg::Metasync {
        smap: meta.smap.clone(),
        rmd: Some(meta.rmd.clone()),
        bmd: Some(meta.bmd.clone()),
        config: Some(Box::new(meta.config.clone())),
    }
}

fn catch_up(ctx: &Arc<Ctx>, addr: String) {
    let msg = full_sync(ctx);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let _ = ctx.call(&addr, msg, METASYNC_TIMEOUT).await;
    });
}

/// `versions`: the node's smap, RMD, BMD and config versions.
fn keepalive(state: &mut PrimaryState, node: NodeId, versions: [u64; 4]) -> Result<Msg> {
    let smap = smap_of(state)?;
    let Some(n) = smap.get(&node) else {
        return Err(Error::NotFound(format!("{node} is not in the cluster map")));
    };
    state.last_seen.insert(node.clone(), Instant::now());
    if state.offline.remove(&node) {
        tracing::info!(node = %node, "node is back online");
    }
    let meta = state.ctx.meta();
    let ours = [
        smap.version,
        meta.rmd.version,
        meta.bmd.version,
        meta.config.version,
    ];
    if versions
        .iter()
        .zip(ours)
        .any(|(theirs, ours)| *theirs < ours)
    {
        catch_up(&state.ctx, n.addr.clone());
    }
    Ok(Msg::KeepaliveAck {
        smap_version: smap.version,
    })
}

async fn tick(state: &mut PrimaryState) {
    state.ticks += 1;
    if state.ticks.is_multiple_of(4) {
        tokio::spawn(crate::election::check_still_primary(state.ctx.clone()));
    }
    let Ok(smap) = smap_of(state) else { return };
    let cfg = state.ctx.meta().config.keepalive.clone();
    let now = Instant::now();
    let mut remove = Vec::new();
    for n in smap.all_nodes() {
        if n.id == state.ctx.me.id || n.flags.contains(Flags::MAINT_POST_REB) {
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
    if !remove.is_empty() {
        let mut next = smap.clone();
        for id in &remove {
            next.remove(id);
            state.offline.remove(id);
            state.missed.insert(id.clone());
            tracing::warn!(node = %id, "removed from the map after a long silence (no rebalance)");
        }
        next.version += 1;
        // A generation waiting for a removed node would wait forever: start a new one over the
        // nodes that are left (its senders re-plan every object).
        let running = state.tracker.as_ref().is_some_and(|t| t.running());
        if running && next.count_active_targets() > 0 {
            let _ = start_generation(state, Some(next)).await;
        } else {
            let _ = commit(state, Some(next), None, None).await;
        }
        return;
    }
    // Participants that left the map no longer hold a generation up.
    if let Some(t) = state.tracker.as_mut() {
        let before = t.participants.len();
        t.participants.retain(|id| smap.contains(id));
        if t.participants.len() != before && t.running() && t.all_done() {
            complete_generation(state).await;
        }
    }
}

async fn join(
    state: &mut PrimaryState,
    node: Node,
    uuid: Option<String>,
    reb_interrupted: bool,
) -> Result<Msg> {
    let smap = smap_of(state)?;
    if let Some(u) = uuid
        && u != smap.uuid
    {
        return Err(Error::ClusterIntegrity(format!(
            "{} belongs to cluster {u}, this is cluster {}: refusing to merge clusters (start it with an empty data dir to join as a new node)",
            node.display_name(),
            smap.uuid
        )));
    }
    if let Some(other) = smap
        .all_nodes()
        .find(|n| n.addr == node.addr && n.id != node.id)
    {
        return Err(Error::BadRequest(format!(
            "address {} is already used by {} in the cluster map",
            node.addr,
            other.display_name()
        )));
    }
    let mut next = smap.clone();
    let existing = smap.get(&node.id).cloned();
    let added_active_target;
    match &existing {
        Some(cur) => {
            let mut n = cur.clone();
            n.addr = node.addr.clone();
            next.insert(n);
            added_active_target = false;
        }
        None => {
            let mut n = node.clone();
            // Flags come from the map; a newcomer keeps only its own electability.
            n.flags = Flags(node.flags.0 & Flags::NON_ELECTABLE.0);
            added_active_target = n.role == Role::Target;
            next.insert(n);
        }
    }
    let changed = next != smap;
    if changed {
        next.version = smap.version + 1;
    }
    state.last_seen.insert(node.id.clone(), Instant::now());
    state.offline.remove(&node.id);
    let is_active_target = next
        .get(&node.id)
        .is_some_and(|n| n.role == Role::Target && n.is_active());
    let wants_reb = is_active_target
        && (added_active_target || reb_interrupted || state.missed.remove(&node.id))
        && next.count_active_targets() >= 2
        && state.ctx.meta().config.rebalance.enabled;
    // Someone that was mid-rebalance as a maintenance sender also needs a new generation.
    let wants_reb =
        wants_reb || (reb_interrupted && next.count_active_targets() >= 1 && existing.is_some());
    let rmd = if wants_reb {
        Some(new_rmd(state, &next))
    } else {
        None
    };
    if changed || rmd.is_some() {
        // A newcomer gets the bucket map in the same push as the map that names it, so peers
        // that start sending it objects find it knows their buckets (others ignore the equal
        // version).
        let bmd = existing.is_none().then(|| state.ctx.meta().bmd.clone());
        commit(state, changed.then_some(next.clone()), rmd.clone(), bmd).await?;
        if existing.is_none() {
            // A newcomer has no buckets or config yet (an admin-joined node got no Joined
            // answer): give it everything before anyone sends it data.
            let _ = state
                .ctx
                .call(&node.addr, full_sync(&state.ctx), METASYNC_TIMEOUT)
                .await;
        }
        if let Some(r) = &rmd {
            start_tracking(state, r);
            tracing::info!(node = %node.display_name(), generation = %r.rebalance_id(), "node joined; rebalancing");
        } else {
            tracing::info!(node = %node.display_name(), "node joined");
        }
    }
    let meta = state.ctx.meta();
    Ok(Msg::Joined {
        smap: meta.smap.clone().expect("primary has a map"),
        rmd: meta.rmd.clone(),
        bmd: meta.bmd.clone(),
        config: Box::new(meta.config.clone()),
    })
}

/// Commits `map_change` (if any) with a new RMD over the resulting map, and tracks it.
async fn start_generation(state: &mut PrimaryState, map_change: Option<Smap>) -> Result<Rmd> {
    let basis = match &map_change {
        Some(s) => s.clone(),
        None => smap_of(state)?,
    };
    let rmd = new_rmd(state, &basis);
    commit(state, map_change, Some(rmd.clone()), None).await?;
    start_tracking(state, &rmd);
    Ok(rmd)
}

fn new_rmd(state: &PrimaryState, smap: &Smap) -> Rmd {
    let cur = state.ctx.meta().rmd.version;
    let participants = smap
        .targets
        .values()
        // Post-rebalance maintenance nodes hold nothing; they may be powered off. Everyone else
        // takes part, offline or not: a leaving node's data must move before it is finalised,
        // so an offline participant holds the generation up (shown in blocked_by) until it
        // returns or is removed after the grace period (which starts a new generation).
        .filter(|n| !n.flags.contains(Flags::MAINT_POST_REB))
        .map(|n| n.id.clone())
        .collect();
    let finalize = smap
        .all_nodes()
        .filter(|n| n.in_transition())
        .map(|n| n.id.clone())
        .collect();
    Rmd {
        version: cur + 1,
        smap_version: smap.version,
        participants,
        finalize,
    }
}

fn start_tracking(state: &mut PrimaryState, rmd: &Rmd) {
    let participants: BTreeSet<NodeId> = rmd.participants.iter().cloned().collect();
    let smap = state.ctx.meta().smap.clone();
    if let Some(s) = smap {
        for t in s.targets.values() {
            if !participants.contains(&t.id) && state.offline.contains(&t.id) {
                state.missed.insert(t.id.clone());
            }
        }
    }
    state.tracker = Some(Tracker::new(
        rmd.version,
        participants,
        rmd.finalize.clone(),
    ));
}

fn busy_error(op: &str, t: &Tracker) -> Error {
    Error::Busy(format!(
        "cluster membership \"{op}\" is currently busy (rebalance[{}] is running), please try again",
        rebalance_id(t.generation)
    ))
}

async fn lifecycle_op(state: &mut PrimaryState, req: LifecycleRequest) -> Result<Msg> {
    let smap = smap_of(state)?;
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
            return Err(busy_error(req.op.as_str(), t));
        }
    }
    let adm = lifecycle::admit(&smap, &req)?;
    if req.op == LifecycleOp::StopMaintenance {
        // A node must be up to come back (AIStore health-checks it first): otherwise the
        // rebalance would wait for it forever.
        for id in &adm.affected {
            let Some(n) = smap.get(id) else { continue };
            if n.id != state.ctx.me.id
                && state
                    .ctx
                    .call(&n.addr, Msg::GetNodeStats, Duration::from_secs(2))
                    .await
                    .is_err()
            {
                return Err(Error::BadRequest(format!(
                    "{} does not answer at {}: start it first, then run stop-maintenance",
                    n.display_name(),
                    n.addr
                )));
            }
        }
    }
    let enabled = state.ctx.meta().config.rebalance.enabled;
    let rebalance = adm.rebalance && enabled;
    if req.no_rebalance && !adm.rebalance && adm.smap.is_some() {
        tracing::warn!(op = %req.op, "lifecycle without rebalance: data on the nodes is not migrated");
    }
    let version = adm.smap.as_ref().map(|s| s.version).unwrap_or(smap.version);
    let mut reply = LifecycleReply {
        rebalance_id: None,
        smap_version: version,
        affected: adm.affected.iter().map(|n| n.0.clone()).collect(),
        skipped: adm.skipped.iter().map(|n| n.0.clone()).collect(),
        completed: vec![],
        plan: None,
    };
    if adm.affected.is_empty() {
        return Ok(Msg::LifecycleReply(reply));
    }
    if rebalance {
        let rmd = start_generation(state, adm.smap.clone()).await?;
        reply.rebalance_id = Some(rmd.rebalance_id());
        tracing::info!(op = %req.op, nodes = ?reply.affected, generation = %rmd.rebalance_id(), "lifecycle operation started");
    } else {
        if adm.smap.is_some() {
            commit(state, adm.smap.clone(), None, None).await?;
        }
        // No migration: the final step runs now.
        finalize(state, &adm.affected, false).await?;
        reply.completed = reply.affected.clone();
    }
    reply.smap_version = state
        .ctx
        .meta()
        .smap
        .as_ref()
        .map(|s| s.version)
        .unwrap_or(version);
    Ok(Msg::LifecycleReply(reply))
}

/// Final step for `nodes` still in transition: post-rebalance maintenance, shutdown, or
/// removal. Idempotent: it acts on flags, and a node already finalized has none left to act on.
/// `after_rebalance` is false for `--no-rebalance` (and proxy-only) operations: maintenance then
/// ends without the post-rebalance flag, as in AIStore.
async fn finalize(state: &mut PrimaryState, nodes: &[NodeId], after_rebalance: bool) -> Result<()> {
    let smap = smap_of(state)?;
    let mut next = smap.clone();
    let mut shutdown: Vec<Node> = Vec::new();
    let mut decommission: Vec<(Node, bool)> = Vec::new();
    for id in nodes {
        let Some(n) = next.get_mut(id) else { continue };
        if n.flags.contains(Flags::DECOMM) {
            decommission.push((n.clone(), n.flags.contains(Flags::RM_USER_DATA)));
        } else if n.flags.contains(Flags::MAINT) {
            if after_rebalance {
                n.flags.set(Flags::MAINT_POST_REB);
            }
            if n.flags.contains(Flags::SHUTDOWN) {
                n.flags.clear(Flags::SHUTDOWN);
                shutdown.push(n.clone());
            }
        }
    }
    // Tell decommissioned nodes first, then drop them from the map.
    for (n, rm_user_data) in &decommission {
        let action = Msg::NodeAction(NodeAction::Decommission {
            rm_user_data: *rm_user_data,
        });
        if let Err(e) = state.ctx.call(&n.addr, action, METASYNC_TIMEOUT).await {
            tracing::warn!(node = %n.display_name(), error = %e, "decommission notice failed; removing anyway");
        }
        next.remove(&n.id);
        state.last_seen.remove(&n.id);
        state.offline.remove(&n.id);
    }
    if next != smap {
        next.version = smap.version + 1;
        commit(state, Some(next), None, None).await?;
    }
    for n in shutdown {
        if let Err(e) = state
            .ctx
            .call(
                &n.addr,
                Msg::NodeAction(NodeAction::Shutdown),
                METASYNC_TIMEOUT,
            )
            .await
        {
            tracing::warn!(node = %n.display_name(), error = %e, "shutdown notice failed");
        }
    }
    Ok(())
}

async fn reb_report(state: &mut PrimaryState, r: TargetRebStatus) -> Result<Msg> {
    let id = NodeId(r.id.clone());
    state.last_seen.insert(id.clone(), Instant::now());
    let current = state.ctx.meta().rmd.version;
    if state.tracker.is_none() && r.generation == current && r.stage < Stage::Done {
        // A generation started under a previous primary is still running here and nobody
        // tracks it: start a fresh one (the walk is idempotent) so it completes and is seen.
        if let Ok(smap) = smap_of(state)
            && smap.count_active_targets() > 0
            && let Ok(rmd) = start_generation(state, None).await
        {
            tracing::info!(old = %rebalance_id(current), new = %rmd.rebalance_id(), "resuming an untracked rebalance");
        }
    }
    let current = state.ctx.meta().rmd.version;
    let mut complete = false;
    if let Some(t) = state.tracker.as_mut()
        && t.generation == r.generation
    {
        // Reports travel on several connections and may arrive out of order: never let an
        // older one (an earlier stage, or smaller counters) replace a newer one.
        let stale = t.reports.get(&id).is_some_and(|cur| {
            cur.stage > r.stage
                || (cur.stage == r.stage
                    && cur.tx_bytes + cur.local_bytes > r.tx_bytes + r.local_bytes)
        });
        if t.participants.contains(&id) && !stale {
            t.reports.insert(id, r);
            t.sample();
        }
        if t.running() && t.all_done() {
            complete = true;
        }
    }
    if complete {
        complete_generation(state).await;
    }
    let min_stage = state
        .tracker
        .as_ref()
        .filter(|t| t.generation == current)
        .map(|t| t.min_stage())
        .unwrap_or(Stage::Init);
    Ok(Msg::RebReportAck {
        min_stage,
        current_gen: current,
    })
}

async fn complete_generation(state: &mut PrimaryState) {
    let Some(t) = state.tracker.as_mut() else {
        return;
    };
    t.finished = Some((Instant::now(), crate::store::unix_secs()));
    let g = t.generation;
    tracing::info!(generation = %rebalance_id(g), "rebalance finished on every target");
    let nodes = t.finalize.clone();
    let errors: u64 = t.reports.values().map(|r| r.errors).sum();
    if errors > 0 {
        // Some objects did not move: finalising would strand or wipe them. The nodes stay in
        // transition (repeating the operation starts a new generation).
        tracing::error!(generation = %rebalance_id(g), errors, "rebalance finished with errors; lifecycle operations not finalised");
        return;
    }
    if let Err(e) = finalize(state, &nodes, true).await {
        tracing::error!(error = %e, "finalizing lifecycle operations failed");
    }
}

async fn admin_join(state: &mut PrimaryState, addr: String, role: Option<Role>) -> Result<Msg> {
    if let Some(t) = state.tracker.as_ref().filter(|t| t.running()) {
        return Err(busy_error("join", t));
    }
    let smap = smap_of(state)?;
    let reply = state
        .ctx
        .call(
            &addr,
            Msg::Handshake {
                uuid: smap.uuid.clone(),
            },
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| match e {
            Error::Io(_) | Error::Timeout(_) => {
                Error::NotFound(format!("no node answers at {addr}: {e}"))
            }
            other => other,
        })?;
    let Msg::HandshakeReply { node } = reply else {
        return Err(crate::client::unexpected(&reply));
    };
    if let Some(r) = role
        && r != node.role
    {
        return Err(Error::BadRequest(format!(
            "the node at {addr} is a {}, not a {}",
            node.role.as_str(),
            r.as_str()
        )));
    }
    if smap.contains(&node.id) {
        return Err(Error::BadRequest(format!(
            "{} is already in the cluster map",
            node.display_name()
        )));
    }
    let before = smap.version;
    join(state, node.clone(), None, false).await?;
    let meta = state.ctx.meta();
    let rebalance_id = (meta.rmd.version > 0
        && state
            .tracker
            .as_ref()
            .is_some_and(|t| t.running() && t.generation == meta.rmd.version)
        && meta.smap.as_ref().is_some_and(|s| s.version > before))
    .then(|| meta.rmd.rebalance_id());
    Ok(Msg::LifecycleReply(LifecycleReply {
        rebalance_id,
        smap_version: meta.smap.as_ref().map(|s| s.version).unwrap_or(before),
        affected: vec![node.id.0.clone()],
        ..Default::default()
    }))
}

async fn remove_from_smap(state: &mut PrimaryState, node: NodeId) -> Result<Msg> {
    if let Some(t) = state.tracker.as_ref().filter(|t| t.running()) {
        return Err(busy_error("remove-from-smap", t));
    }
    let smap = smap_of(state)?;
    if node == smap.primary {
        return Err(Error::BadRequest(format!(
            "p[{node}] is primary (cannot remove the primary node)"
        )));
    }
    let Some(n) = smap.get(&node).cloned() else {
        return Err(Error::NotFound(format!(
            "node {node} is not in the cluster map"
        )));
    };
    let mut next = smap.clone();
    next.remove(&node);
    next.version += 1;
    let _ = state
        .ctx
        .call(
            &n.addr,
            Msg::NodeAction(NodeAction::StopKeepalive),
            Duration::from_secs(2),
        )
        .await;
    commit(state, Some(next), None, None).await?;
    state.last_seen.remove(&node);
    state.offline.remove(&node);
    Ok(Msg::LifecycleReply(LifecycleReply {
        smap_version: smap.version + 1,
        affected: vec![node.0],
        ..Default::default()
    }))
}

async fn cluster_op(state: &mut PrimaryState, op: ClusterOp) -> Result<Msg> {
    let action = match op {
        ClusterOp::Shutdown => NodeAction::Shutdown,
        ClusterOp::Decommission { rm_user_data } => NodeAction::Decommission { rm_user_data },
    };
    broadcast(&state.ctx, &Msg::NodeAction(action.clone())).await;
    // The primary goes last, after its answer is on the way.
    if let Some(node) = state.ctx.node_ref() {
        let a = action.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = node.cast(super::NodeMsg::Action(a));
        });
    }
    Ok(Msg::Ok)
}

async fn bucket_op(state: &mut PrimaryState, bucket: String, create: bool) -> Result<Msg> {
    crate::store::validate_bucket(&bucket)?;
    let mut bmd = state.ctx.meta().bmd.clone();
    let exists = bmd.buckets.contains(&bucket);
    match (create, exists) {
        (true, true) => {
            return Err(Error::BadRequest(format!(
                "bucket {bucket:?} already exists"
            )));
        }
        (false, false) => return Err(Error::NotFound(format!("bucket {bucket:?} does not exist"))),
        (true, false) => {
            bmd.buckets.insert(bucket);
        }
        (false, true) => {
            bmd.buckets.remove(&bucket);
        }
    }
    bmd.version += 1;
    commit(state, None, None, Some(bmd)).await?;
    Ok(Msg::Ok)
}

// ---------------------------------------------------------------------------------------------
// Dry run
// ---------------------------------------------------------------------------------------------

async fn dry_run(ctx: &Arc<Ctx>, smap: &Smap, req: &LifecycleRequest) -> Result<Plan> {
    let adm = lifecycle::admit(smap, req)?;
    let next = adm.smap.clone().unwrap_or_else(|| smap.clone());
    let mut plan = Plan {
        op: req.op.as_str().into(),
        nodes: req.nodes.iter().map(|n| n.0.clone()).collect(),
        rebalance: adm.rebalance && ctx.meta().config.rebalance.enabled,
        fits: true,
        ..Default::default()
    };
    if next.count_active_targets() == 0 && smap.count_active_targets() > 0 {
        plan.fits = false;
        plan.warnings
            .push("no active target would remain: the data would have nowhere to go".into());
    }
    if req.no_rebalance && adm.rebalance {
        plan.warnings.push(format!(
            "executing \"{}\" _and_ not running global rebalance may lead to a loss of data!",
            req.op
        ));
    }
    if !adm.rebalance || next.count_active_targets() == 0 {
        return Ok(plan);
    }
    let calls = smap.targets.values().map(|t| {
        let ctx = ctx.clone();
        let addr = t.addr.clone();
        let msg = Msg::PlanMoves { smap: next.clone() };
        let id = t.id.clone();
        async move { (id, ctx.call(&addr, msg, Duration::from_secs(120)).await) }
    });
    let mut moves: Vec<PlanMove> = Vec::new();
    for (id, r) in futures::future::join_all(calls).await {
        match r {
            Ok(Msg::PlanMovesReply(m)) => moves.extend(m),
            Ok(other) => return Err(crate::client::unexpected(&other)),
            Err(e) => plan.warnings.push(format!(
                "t[{id}] did not answer ({e}); its objects are not counted"
            )),
        }
    }
    let stats = fetch_stats(ctx, smap).await;
    for t in smap.targets.values() {
        let bytes_in: u64 = moves
            .iter()
            .filter(|m| m.to == t.id.0)
            .map(|m| m.bytes)
            .sum();
        let bytes_out: u64 = moves
            .iter()
            .filter(|m| m.from == t.id.0)
            .map(|m| m.bytes)
            .sum();
        let s = stats.get(&t.id).cloned().flatten().unwrap_or_default();
        let avail_after = (s.cap_avail + bytes_out).saturating_sub(bytes_in);
        let total = s.cap_total.max(1);
        let used_after = 100.0 * total.saturating_sub(avail_after) as f64 / total as f64;
        let receiving = next.get(&t.id).is_some_and(|n| n.is_active());
        if receiving
            && bytes_in > 0
            && s.cap_total > 0
            && (bytes_in > s.cap_avail || avail_after < total / 50)
        {
            plan.fits = false;
            plan.warnings.push(format!(
                "t[{}] cannot hold its share: needs {bytes_in} bytes, has {} free",
                t.id, s.cap_avail
            ));
        }
        plan.capacity.push(PlanCapacity {
            target: t.id.0.clone(),
            bytes_in,
            bytes_out,
            cap_avail_before: s.cap_avail,
            cap_avail_after: avail_after,
            cap_used_pct_after: used_after,
        });
    }
    plan.objs_total = moves.iter().map(|m| m.objs).sum();
    plan.bytes_total = moves.iter().map(|m| m.bytes).sum();
    plan.moves = moves;
    Ok(plan)
}

// ---------------------------------------------------------------------------------------------
// show cluster
// ---------------------------------------------------------------------------------------------

async fn fetch_stats(ctx: &Arc<Ctx>, smap: &Smap) -> HashMap<NodeId, Option<NodeStats>> {
    let calls = smap.all_nodes().map(|n| {
        let ctx = ctx.clone();
        let n = n.clone();
        async move {
            let s = if n.id == ctx.me.id {
                super::handler::node_stats(&ctx).await.ok()
            } else {
                match ctx.call(&n.addr, Msg::GetNodeStats, STATS_TIMEOUT).await {
                    Ok(Msg::NodeStats(s)) => Some(*s),
                    _ => None,
                }
            };
            (n.id.clone(), s)
        }
    });
    futures::future::join_all(calls).await.into_iter().collect()
}

/// Builds `show cluster`: map facts from the primary, live stats from each node.
pub async fn cluster_status(ctx: &Arc<Ctx>, p: &ActorRef<PrimaryMsg>) -> Result<Msg> {
    let snap = ractor::call_t!(p, PrimaryMsg::Snapshot, 10_000)
        .map_err(|e| Error::Remote(format!("primary actor: {e}")))?;
    let stats = fetch_stats(ctx, &snap.smap).await;
    let reb = snap.rebalance.clone();
    let reb_running = reb.as_ref().is_some_and(|r| r.is_running());
    let row = |n: &Node| -> NodeStatus {
        let s = stats.get(&n.id).cloned().flatten();
        let reachable = s.is_some();
        let s = s.unwrap_or_default();
        let status = if n.flags.contains(Flags::DECOMM) {
            "decommission"
        } else if n.flags.contains(Flags::MAINT) {
            "maintenance"
        } else if snap.offline.contains(&n.id) || !reachable {
            "offline"
        } else {
            "online"
        };
        let leaving = n.flags.intersects(Flags::MAINT | Flags::DECOMM);
        let migrating = leaving && !n.flags.contains(Flags::MAINT_POST_REB) && reb_running;
        let rebalance = match &reb {
            Some(r) if n.role == Role::Target => {
                let mine = r.targets.iter().find(|t| t.id == n.id.0);
                match (r.state.as_str(), mine) {
                    (_, None) => "-".to_string(),
                    ("running", Some(t)) if t.stage == Stage::Done => format!("finished({})", r.id),
                    ("running", Some(_)) => format!("running({})", r.id),
                    ("finished", Some(_)) => {
                        let recent = r.finished.is_some_and(|f| {
                            crate::store::unix_secs().saturating_sub(f)
                                < SHOW_FINISHED_FOR.as_secs()
                        });
                        if recent {
                            format!("finished({})", r.id)
                        } else {
                            "-".into()
                        }
                    }
                    (state, Some(_)) => format!("{state}({})", r.id),
                }
            }
            _ => "-".into(),
        };
        NodeStatus {
            id: n.id.0.clone(),
            role: n.role.as_str().into(),
            mem_used_pct: s.mem_used_pct,
            mem_avail: s.mem_avail,
            cap_used_pct: s.cap_used_pct,
            cap_avail: s.cap_avail,
            cpu_used_pct: s.cpu_used_pct,
            rebalance,
            uptime_secs: s.uptime_secs,
            status: status.into(),
            flags: n.flags.names().into_iter().map(String::from).collect(),
            addr: n.addr.clone(),
            reachable,
            migrating,
            safe_to_power_off: n.flags.contains(Flags::MAINT)
                && !migrating
                && !n.flags.contains(Flags::DECOMM),
            is_primary: n.id == snap.smap.primary,
            non_electable: n.flags.contains(Flags::NON_ELECTABLE),
            object_count: s.object_count,
            mountpaths: s.mountpaths,
        }
    };
    let status = ClusterStatus {
        uuid: snap.smap.uuid.clone(),
        smap_version: snap.smap.version,
        primary: snap.smap.primary.0.clone(),
        proxies: snap.smap.proxies.values().map(&row).collect(),
        targets: snap.smap.targets.values().map(&row).collect(),
        rebalance: reb,
    };
    Ok(Msg::ClusterStatus(Box::new(status)))
}
