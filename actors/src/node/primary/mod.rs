//! The primary (DESIGN §3, §7, §9): the only creator of cluster metadata versions. It admits
//! joins and lifecycle operations (one membership change at a time), bumps and distributes the
//! map, tracks keepalives, follows the rebalance of each generation, and finalises lifecycle
//! operations when their rebalance is done.
//!
//! The actor never awaits the network inside a handler: pushes, probes, notices and dry runs
//! run in tasks that answer the client themselves or report back to the actor as messages, so a
//! keepalive is never stuck behind a slow node. Its state is rebuilt from the map and the RMD
//! when it starts (after an election, or a restart by the node's supervisor): generations left
//! in flight are resumed.
//!
//! `membership` (joins, keepalives, offline detection, removal), `ops` (lifecycle, buckets,
//! cluster-wide operations, finalisation), `generations` (starting, tracking and completing
//! rebalance generations), `push` (metasync).

mod finalize;
mod generations;
mod membership;
mod ops;
mod push;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

pub use push::fetch_stats;

use super::meta::MetaHandle;
use crate::error::{Error, Result};
use crate::logic::progress::Tracker;
use crate::proto::msg::{Control, GetRebStatus, Reply, Rpc};
use crate::proto::pool::Pool;
use crate::types::lifecycle::LifecycleRequest;
use crate::types::smap::{Node, NodeId, Role, Smap};
use crate::types::status::RebalanceStatus;

pub struct PrimaryActor;

pub struct PrimaryArgs {
    pub me: Node,
    pub meta: MetaHandle,
    pub pool: Arc<Pool>,
    /// The cluster secret (it seals S3 keys in the cluster config).
    pub secret: Option<crate::logic::auth::Secret>,
    /// See `Kit::primary_checked`.
    pub checked: tokio::sync::watch::Receiver<bool>,
}

/// Where a control request's answer goes.
pub type ReplyTo = RpcReplyPort<Result<Reply>>;

pub enum PrimaryMsg {
    /// A control request from a client or a node, with the verified subject of an admin's
    /// token when auth is on (who asked, for the rebalance history).
    Control(Control, Option<String>, ReplyTo),
    /// The map facts `show cluster` needs (the stats fan-out happens outside the actor).
    Snapshot(RpcReplyPort<Snapshot>),
    /// Periodic: offline detection, removal after grace, "am I still primary".
    Tick,
    /// Shortly after becoming primary: announce, refresh the proxy URLs, and finish lifecycle
    /// operations a previous primary (or incarnation) left in flight.
    Resume,
    /// An admin join's handshake answered (or not).
    AdminJoinMet {
        addr: String,
        role: Option<Role>,
        node: Result<Node>,
        reply: ReplyTo,
    },
    /// stop-maintenance's nodes were probed: `silent` did not answer.
    Probed {
        req: LifecycleRequest,
        silent: Vec<(Node, String)>,
        reply: ReplyTo,
    },
    /// remove-from-smap: the node went silent; drop it now.
    Silenced { node: NodeId, reply: ReplyTo },
    /// Decommissioned nodes were told to wipe themselves: drop them from the map, then answer
    /// `reply` (if any) with `value`.
    Decommissioned {
        nodes: Vec<NodeId>,
        /// Their data was moved off by a rebalance first (not `--no-rebalance`).
        drained: bool,
        then: Option<(ReplyTo, Reply)>,
    },
    /// A held progress report's time is up (see [`PrimaryState::held`]).
    ReleaseHeld,
    /// The push of a batch of self-joins is done (see [`PrimaryState::joins`]).
    JoinsDelivered,
}

/// What `show cluster` needs from the primary's state.
pub struct Snapshot {
    pub smap: Smap,
    pub offline: HashSet<NodeId>,
    pub rebalance: Option<RebalanceStatus>,
}

pub struct PrimaryState {
    a: Arc<PrimaryArgs>,
    myself: ActorRef<PrimaryMsg>,
    last_seen: HashMap<NodeId, Instant>,
    offline: HashSet<NodeId>,
    tracker: Option<Tracker>,
    /// Targets that were offline when a generation started: they rebalance when they return.
    missed: HashSet<NodeId>,
    /// Ticks so far; every few, check that no other primary was elected meanwhile.
    ticks: u64,
    /// Who asked for the control request being handled (auth on), for its history record.
    pub(super) requester: Option<String>,
    /// Reports of targets that finished sending and wait for the others (long poll): answered
    /// the moment every participant is past traverse, so the end of a generation is pushed
    /// rather than polled; at the latest after [`generations::HOLD`].
    held: Vec<generations::Held>,
    /// Self-joins: admitted in batches, one map version and one push per batch.
    joins: Joins,
    /// What pushes under way deliver: a heartbeat they cover needs no catch-up of its own.
    pushing: push::InFlight,
}

/// Self-joins that arrived while the previous batch was being pushed.
#[derive(Default)]
struct Joins {
    /// A batch's push is under way; new joins wait for it.
    in_flight: bool,
    waiting: Vec<(crate::proto::msg::JoinRequest, ReplyTo)>,
}

impl PrimaryState {
    fn smap(&self) -> Result<Smap> {
        self.a
            .meta
            .get()
            .smap
            .clone()
            .ok_or_else(|| Error::NotFound("no cluster map".into()))
    }

    fn status(&self) -> Option<RebalanceStatus> {
        let m = self.a.meta.get();
        let reb = &m.config.rebalance;
        self.tracker.as_ref().map(|t| {
            let mut s = t.status_at(
                &self.offline,
                Instant::now(),
                reb.paused,
                Duration::from_secs(reb.stall_secs),
            );
            if !t.running()
                && t.generation == m.rmd.version
                && let Some(due) = crate::logic::generation::retry_due(
                    &m.config.history,
                    m.rmd.version,
                    reb.retry_secs,
                )
            {
                // A time, not a countdown: the console logs each new reason once.
                let at = crate::logic::format::clock(due);
                s.blocked_by
                    .push(format!("retried at {at} UTC (rebalance.retry_secs)"));
            }
            s
        })
    }

    /// Logs a stalled generation once per stall (`show rebalance` and the console show it).
    fn log_stall(&mut self) {
        let Some(s) = self.status().filter(|s| s.stalled) else {
            return;
        };
        if let Some(t) = self.tracker.as_mut().filter(|t| !t.stall_logged) {
            t.stall_logged = true;
            tracing::warn!(rebalance = %s.id, blocked_by = %s.blocked_by.join("; "), "possible rebalance stall detected");
        }
    }

    /// Whether this primary hears from a majority of the proxies (itself included; proxies
    /// that are not expected to heartbeat do not count). Without one it may be cut off while
    /// the others elect a new primary: it then changes nothing (it steps down from acting).
    fn has_majority(&self) -> Result<()> {
        let meta = self.a.meta.get();
        let Some(smap) = meta.smap.as_ref() else {
            return Ok(());
        };
        let window = meta.config.keepalive.offline_after();
        let voters: Vec<&NodeId> = smap
            .proxies
            .values()
            .filter(|n| !n.flags.contains(crate::types::smap::Flags::MAINT_POST_REB))
            .map(|n| &n.id)
            .collect();
        let heard = voters
            .iter()
            .filter(|id| {
                **id == &self.a.me.id
                    || self
                        .last_seen
                        .get(**id)
                        .is_some_and(|t| t.elapsed() <= window)
            })
            .count();
        if heard * 2 > voters.len() {
            Ok(())
        } else {
            Err(Error::Unavailable(format!(
                "this primary hears from {heard} of {} proxies: without a majority it changes nothing (another primary may have been elected)",
                voters.len()
            )))
        }
    }
}

impl Actor for PrimaryActor {
    type Msg = PrimaryMsg;
    type State = PrimaryState;
    type Arguments = PrimaryArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: PrimaryArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        crate::fault::maybe_panic("primary");
        let now = Instant::now();
        let meta = args.meta.get();
        let last_seen = meta
            .smap
            .as_ref()
            .map(|s| s.all_nodes().map(|n| (n.id.clone(), now)).collect())
            .unwrap_or_default();
        let every = meta.config.keepalive.interval() / 2;
        myself.send_interval(every, || PrimaryMsg::Tick);
        // At once: after a restart, a generation in flight must be tracked again before anyone
        // asks for its progress.
        let _ = myself.cast(PrimaryMsg::Resume);
        tracing::info!("primary actor started");
        Ok(PrimaryState {
            a: Arc::new(args),
            myself,
            last_seen,
            offline: HashSet::new(),
            tracker: None,
            missed: HashSet::new(),
            ticks: 0,
            requester: None,
            held: Vec::new(),
            joins: Joins::default(),
            pushing: push::InFlight::default(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A primary that restarted acts once it knows the cluster did not elect another one
        // while it was down: a lifecycle command it took before that forked the map (nemesis
        // long seed 2614: two primaries, never converging). Messages wait meanwhile; the check
        // asks each proxy once, with a 1 s timeout.
        if !*state.a.checked.borrow() {
            let mut rx = state.a.checked.clone();
            let _ = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|c| *c)).await;
        }
        match msg {
            PrimaryMsg::Control(c, by, reply) => {
                state.requester = by;
                control(state, c, reply).await;
                state.requester = None;
            }
            PrimaryMsg::Snapshot(reply) => {
                let smap = state
                    .a
                    .meta
                    .get()
                    .smap
                    .clone()
                    .unwrap_or_else(|| Smap::bootstrap(state.a.me.clone()));
                let _ = reply.send(Snapshot {
                    smap,
                    offline: state.offline.clone(),
                    rebalance: state.status(),
                });
            }
            PrimaryMsg::Tick => {
                crate::fault::maybe_panic("primary");
                membership::tick(state).await;
                state.log_stall();
                generations::retry_failed(state).await;
            }
            PrimaryMsg::Resume => membership::resume(state).await,
            PrimaryMsg::AdminJoinMet {
                addr,
                role,
                node,
                reply,
            } => membership::admin_join_met(state, addr, role, node, reply).await,
            PrimaryMsg::Probed { req, silent, reply } => {
                if let Some((n, e)) = silent.first() {
                    let _ = reply.send(Err(Error::BadRequest(format!(
                        "{} does not answer at {} ({e}): start it first, then run stop-maintenance",
                        n.display_name(),
                        n.addr
                    ))));
                } else {
                    ops::lifecycle(state, req, reply, true).await;
                }
            }
            PrimaryMsg::Silenced { node, reply } => {
                membership::remove_silenced(state, node, reply).await
            }
            PrimaryMsg::Decommissioned {
                nodes,
                drained,
                then,
            } => finalize::remove_decommissioned(state, nodes, drained, then).await,
            PrimaryMsg::ReleaseHeld => generations::release_held(state),
            PrimaryMsg::JoinsDelivered => membership::joins_delivered(state).await,
        }
        Ok(())
    }
}

/// Routes one control request; most answer through `reply` from here, some from a task.
async fn control(state: &mut PrimaryState, c: Control, reply: ReplyTo) {
    match c {
        Control::Keepalive(hb) => {
            let _ = reply.send(membership::keepalive(state, hb));
        }
        Control::Join(j) => membership::self_join(state, j, reply).await,
        Control::RebReport(r) => {
            let stage = r.stage;
            let res = generations::report(state, *r).await;
            generations::answer_or_hold(state, stage, res, reply);
            generations::release_held(state);
        }
        Control::Rebalance(op) => ops::rebalance_ctl(state, op, reply).await,
        Control::GetRebStatus(_) => {
            let s = state.status().map(Box::new);
            let _ = reply.send(Ok(GetRebStatus::reply(s)));
        }
        Control::Lifecycle(req) => ops::lifecycle(state, req, reply, false).await,
        Control::AdminJoin(j) => membership::admin_join(state, j, reply),
        Control::RemoveFromSmap(r) => membership::remove_from_smap(state, r.node, reply),
        Control::Cluster(op) => ops::cluster_op(state, op, reply),
        Control::CreateBucket(b) => ops::bucket_op(state, b.bucket, true, reply).await,
        Control::DestroyBucket(b) => ops::bucket_op(state, b.bucket, false, reply).await,
        Control::S3Keys(op) => ops::s3_keys(state, op, reply).await,
        Control::Auth(op) => ops::auth(state, op, reply).await,
        Control::GetClusterStatus(_) => {
            // Answered by the server with a snapshot and a stats fan-out.
            let _ = reply.send(Err(Error::BadRequest(
                "cluster status is built by the server".into(),
            )));
        }
    }
}
