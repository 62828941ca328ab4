//! Global rebalance on a target (DESIGN §8): the [`RebalanceActor`] follows the RMD and runs one
//! generation `g<N>` at a time — a [`generation::GenerationActor`] with a
//! [`jogger::JoggerActor`] per mountpath that walks objects and sends the misplaced ones to their
//! new owner (or moves them to the right local mountpath).
//!
//! Stages per target: `init → traverse → post-traverse → fin → done`. Traverse counts what must
//! move (so totals and ETA are known early), then moves it; post-traverse waits until every
//! participant finished sending (reported through the primary); fin removes the on-disk marker;
//! done is reported to the primary, which completes the lifecycle operation when every target is
//! done. A newer generation preempts the running one. A generation owns its actors, tasks,
//! counters and marker, and releases them however it ends, so an aborted generation never
//! breaks the next one (AIStore issue #288). After a restart of this actor, a generation whose
//! marker is still on disk runs again (the walk is idempotent).
//!
//! The same actor runs the target's resilver (`r<N>`, see [`resilver`]), so that the rule
//! between the two lives in one place: a global generation preempts a resilver, which walks
//! again once the generation ends; a resilver asked for meanwhile waits.

mod counters;
pub mod generation;
pub mod jogger;
pub mod resilver;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio_util::sync::{CancellationToken, DropGuard};

pub use counters::Counters;
use generation::{GenArgs, GenMsg, GenerationActor};

use super::Restarts;
use super::meta::MetaHandle;
use crate::proto::pool::Pool;
use crate::store::LocalStore;
use crate::types::smap::NodeId;
use crate::types::status::{ResilverStatus, Stage, TargetRebStatus};
use resilver::Resilver;

/// Marker file in the data dir while a generation runs (its number inside): present at boot =
/// interrupted.
pub const MARKER: &str = "rebalance.marker";
/// The last generation that finished on this target without errors (its number inside). A
/// target that persisted a newer RMD but died before that generation's walk began (so before
/// its marker was written) runs it when it starts again: its peers and the primary wait for it.
pub const DONE: &str = "rebalance.done";
/// Present while a resilver has not finished cleanly: at start, one runs again.
pub const RESILVER_MARKER: &str = "resilver.marker";
/// The number of the last resilver (`r<N>`), so IDs keep growing across restarts.
const RESILVER_ID: &str = "resilver.id";

pub struct RebalanceActor;

pub struct RebArgs {
    pub me: NodeId,
    pub meta: MetaHandle,
    pub pool: Arc<Pool>,
    pub store: Arc<LocalStore>,
    pub data_dir: PathBuf,
    /// RMD version persisted before the process started (see `node::Kit`).
    pub rmd_at_start: u64,
    pub restarts: Arc<Restarts>,
    pub shutdown: CancellationToken,
}

pub enum RebMsg {
    /// The metadata changed: start a newer generation if there is one for us.
    MetaChanged,
    /// `objs` objects of `generation` were received (counted here).
    Received {
        generation: u64,
        objs: u64,
        bytes: u64,
    },
    /// The running generation ended (done or aborted).
    Ended { generation: u64 },
    /// Stop the running generation (the node leaves, or goes silent).
    Stop,
    /// This target's view of the latest generation.
    Status(RpcReplyPort<Option<TargetRebStatus>>),
    /// Test builds: a chance for an injected fault.
    FaultCheck,
    /// Run a resilver (the mountpaths changed); answers its ID.
    Resilver {
        reason: String,
        reply: RpcReplyPort<String>,
    },
    /// The latest resilver, if any ran since the node started.
    ResilverStatus(RpcReplyPort<Option<ResilverStatus>>),
    /// A resilver's walk ended: `completed` unless it was cancelled.
    ResilverEnded { id: u64, completed: bool },
}

struct Running {
    generation: u64,
    counters: Arc<Counters>,
    actor: Option<ActorRef<GenMsg>>,
    /// Cancels the generation's tasks when dropped (however this actor ends).
    _cancel: DropGuard,
    cancel: CancellationToken,
}

pub struct RebState {
    args: Arc<RebArgs>,
    current: Option<Running>,
    resilver: Option<Resilver>,
    last_resilver: u64,
    /// Cancels the metadata follower when this actor ends.
    _follow: DropGuard,
}

impl Actor for RebalanceActor {
    type Msg = RebMsg;
    type State = RebState;
    type Arguments = RebArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RebArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        crate::fault::maybe_panic("rebalance");
        let stop = args.shutdown.child_token();
        let mut rx = args.meta.subscribe();
        let (me, token) = (myself.clone(), stop.clone());
        let late = crate::fault::value("delay_rebalance_follow_ms");
        tokio::spawn(async move {
            // Test hook: changes that arrive before the follower listens must not be missed
            // (the watch keeps them).
            if let Some(ms) = late {
                tracing::warn!(
                    ms,
                    "fault delay_rebalance_follow_ms: following the metadata late"
                );
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    r = rx.changed() => if r.is_err() || me.cast(RebMsg::MetaChanged).is_err() {
                        return;
                    },
                }
            }
        });
        if crate::fault::switches_enabled() {
            myself.send_interval(Duration::from_millis(200), || RebMsg::FaultCheck);
        }
        let args = Arc::new(args);
        let last_resilver = std::fs::read_to_string(args.data_dir.join(RESILVER_ID))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let mut state = RebState {
            args: args.clone(),
            current: None,
            resilver: None,
            last_resilver,
            _follow: stop.drop_guard(),
        };
        // What to run now: a generation learned since the process started, or — after a
        // restart of this actor — the one whose marker says it did not finish.
        let rmd = args.meta.get().rmd.clone();
        let restarted = args.restarts.snapshot().contains_key("rebalance");
        let marker = marker_generation(&args.data_dir);
        let missed = generation_in(&args.data_dir, DONE).is_some_and(|d| rmd.version > d);
        if rmd.version > args.rmd_at_start || (restarted && marker == Some(rmd.version)) || missed {
            follow(&myself, &mut state).await;
        }
        // A resilver that did not finish, or a detach that did not, goes on.
        let detaching = args
            .store
            .mps
            .all()
            .iter()
            .any(|m| m.state() == crate::store::MpState::Detaching);
        if args.data_dir.join(RESILVER_MARKER).exists() || detaching {
            request_resilver(&myself, &mut state, "interrupted: running again".into());
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RebMsg::MetaChanged => follow(&myself, state).await,
            RebMsg::Received {
                generation,
                objs,
                bytes,
            } => {
                if let Some(r) = state
                    .current
                    .as_ref()
                    .filter(|r| r.generation == generation)
                {
                    Counters::add(&r.counters.rx_objs, objs);
                    Counters::add(&r.counters.rx_bytes, bytes);
                }
            }
            RebMsg::Ended { generation } => {
                if let Some(r) = state
                    .current
                    .as_mut()
                    .filter(|r| r.generation == generation)
                {
                    r.actor = None;
                }
                resume_resilver(&myself, state);
            }
            RebMsg::Stop => {
                if let Some(r) = state.current.as_mut() {
                    abort(r).await;
                }
                // The node leaves the cluster; its disks are still its own business.
                resume_resilver(&myself, state);
            }
            RebMsg::Resilver { reason, reply } => {
                let id = request_resilver(&myself, state, reason);
                let _ = reply.send(id);
            }
            RebMsg::ResilverStatus(reply) => {
                let me = state.args.me.as_str();
                let _ = reply.send(state.resilver.as_ref().map(|r| r.status(me)));
            }
            RebMsg::ResilverEnded { id, completed } => resilver_ended(state, id, completed),
            RebMsg::Status(reply) => {
                let s = state
                    .current
                    .as_ref()
                    .map(|r| r.counters.snapshot(state.args.me.as_str()));
                let _ = reply.send(s);
            }
            RebMsg::FaultCheck => crate::fault::maybe_panic("rebalance"),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A generation actor that fails is started again for the same generation (its walk is
        // idempotent), as long as it is still the current one.
        if let SupervisionEvent::ActorFailed(cell, err) = evt
            && let Some(r) = state.current.as_mut()
            && r.actor
                .as_ref()
                .is_some_and(|a| a.get_id() == cell.get_id())
        {
            let n = state.args.restarts.bump("generation");
            tracing::error!(generation = r.generation, restarts = n, error = %err, "generation actor failed; running it again");
            let g = r.generation;
            r.actor = None;
            r.cancel.cancel();
            state.current = None;
            if state.args.meta.get().rmd.version == g {
                start(&myself, state, g).await;
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Whatever the outcome, nothing of a generation or a resilver keeps running.
        if let Some(r) = state.current.as_mut() {
            abort(r).await;
        }
        if let Some(r) = &state.resilver {
            r.cancel.cancel();
        }
        Ok(())
    }
}

/// The generation number in the marker file, if there is one.
pub fn marker_generation(data_dir: &std::path::Path) -> Option<u64> {
    generation_in(data_dir, MARKER)
}

/// The generation number in file `name` of the data dir, if there is one.
fn generation_in(data_dir: &std::path::Path, name: &str) -> Option<u64> {
    std::fs::read_to_string(data_dir.join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Starts a new generation when the RMD moved past the running one and names this target.
async fn follow(myself: &ActorRef<RebMsg>, state: &mut RebState) {
    let meta = state.args.meta.get();
    let want = meta.rmd.version;
    if want == 0 || meta.smap.is_none() {
        return;
    }
    if state.current.as_ref().is_some_and(|r| r.generation >= want) {
        return;
    }
    if !meta.rmd.participants.is_empty() && !meta.rmd.participants.contains(&state.args.me) {
        // Not part of this generation (e.g. joined right after it started).
        return;
    }
    // A generation walks under the map it was made for (or a newer one). The RMD can arrive
    // alone — a restarted target's rejoin leaves its map entry unchanged, so the primary
    // pushes no map — and a walk under the older map it restarted with sends nothing that the
    // newer one moved (nemesis long seed 2002: "misplaced" after a stop-maintenance). The map
    // follows within a keepalive (an older version is caught up), and with it this call again.
    if let Some(have) = meta.smap.as_ref().map(|s| s.version)
        && have < meta.rmd.smap_version
    {
        tracing::info!(
            generation = want,
            have,
            need = meta.rmd.smap_version,
            "rebalance waits for the cluster map it was made for"
        );
        return;
    }
    if let Some(mut old) = state.current.take() {
        tracing::info!(old = old.generation, new = want, "preempting rebalance");
        abort(&mut old).await;
    }
    // The generation's walk moves objects between mountpaths too: a resilver waits for it.
    if let Some(r) = state.resilver.as_mut().filter(|r| r.running()) {
        if r.waiting_for.is_none() {
            tracing::info!(resilver = %format!("r{}", r.id), generation = want, "global rebalance preempts the resilver; it walks again afterwards");
            r.cancel.cancel();
            r.counters.set_stage(Stage::Init);
        }
        r.waiting_for = Some(want);
    }
    start(myself, state, want).await;
}

/// The running global generation, if one is walking or finishing here.
fn generation_running(state: &RebState) -> Option<u64> {
    state
        .current
        .as_ref()
        .filter(|r| r.actor.is_some())
        .map(|r| r.generation)
}

/// Starts a resilver (or queues it behind a running generation); a running one is replaced:
/// its walk saw the mountpaths as they were.
fn request_resilver(myself: &ActorRef<RebMsg>, state: &mut RebState, reason: String) -> String {
    if let Some(old) = state.resilver.as_mut().filter(|r| r.running()) {
        old.cancel.cancel();
        old.counters
            .set_blocked(Some(format!("superseded by r{}", state.last_resilver + 1)));
        old.counters.set_stage(Stage::Aborted);
    }
    state.last_resilver += 1;
    let id = state.last_resilver;
    let dir = &state.args.data_dir;
    for (file, what) in [
        (RESILVER_ID, id.to_string()),
        (RESILVER_MARKER, reason.clone()),
    ] {
        if let Err(e) = crate::store::write_atomic(&dir.join(file), what.as_bytes()) {
            tracing::error!(error = %e, file, "cannot record the resilver");
        }
    }
    let n = state.args.store.mps.readable().len();
    let mut r = Resilver::new(id, reason, n);
    tracing::info!(resilver = %format!("r{id}"), reason = %r.reason, "resilver requested");
    match generation_running(state) {
        Some(g) => r.waiting_for = Some(g),
        None => launch(myself, &mut r, &state.args),
    }
    state.resilver = Some(r);
    format!("r{id}")
}

/// Starts (or starts again) a resilver's walk with fresh counters.
fn launch(myself: &ActorRef<RebMsg>, r: &mut Resilver, args: &RebArgs) {
    r.waiting_for = None;
    r.cancel = args.shutdown.child_token();
    r.counters = Arc::new(Counters::new(r.id, args.store.mps.readable().len()));
    let (store, c, cancel, me, id) = (
        args.store.clone(),
        r.counters.clone(),
        r.cancel.clone(),
        myself.clone(),
        r.id,
    );
    tokio::spawn(async move {
        let completed = resilver::run(store, c, cancel).await.is_ok();
        let _ = me.cast(RebMsg::ResilverEnded { id, completed });
    });
}

/// A waiting resilver walks once no generation runs.
fn resume_resilver(myself: &ActorRef<RebMsg>, state: &mut RebState) {
    if generation_running(state).is_some() {
        return;
    }
    let args = state.args.clone();
    if let Some(r) = state
        .resilver
        .as_mut()
        .filter(|r| r.running() && r.waiting_for.is_some())
    {
        tracing::info!(resilver = %format!("r{}", r.id), "resilver walks again after the global rebalance");
        launch(myself, r, &args);
    }
}

/// The end of a resilver's walk: detaching mountpaths that hold nothing any more are
/// forgotten, and a clean run clears the marker.
fn resilver_ended(state: &mut RebState, id: u64, completed: bool) {
    let Some(r) = state.resilver.as_mut().filter(|r| r.id == id) else {
        return;
    };
    if !completed || r.waiting_for.is_some() {
        return; // cancelled: preempted (walks again later) or replaced
    }
    let c = &r.counters;
    let store = &state.args.store;
    if c.errors() == 0 {
        match store.mps.finish_detach() {
            Ok(gone) => {
                for p in gone {
                    tracing::info!(mountpath = %p.display(), "mountpath detached");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record a detach");
                Counters::add(&c.errors, 1);
            }
        }
    }
    if c.errors() == 0 {
        let _ = std::fs::remove_file(state.args.data_dir.join(RESILVER_MARKER));
    }
    c.set_stage(Stage::Done);
    tracing::info!(
        resilver = %format!("r{id}"),
        moved = c.local_objs.load(std::sync::atomic::Ordering::Relaxed),
        errors = c.errors(),
        "resilver done"
    );
}

async fn start(myself: &ActorRef<RebMsg>, state: &mut RebState, generation: u64) {
    let a = &state.args;
    let counters = Arc::new(Counters::new(generation, a.store.mps.readable().len()));
    let cancel = a.shutdown.child_token();
    let args = GenArgs {
        me: a.me.clone(),
        generation,
        meta: a.meta.clone(),
        pool: a.pool.clone(),
        store: a.store.clone(),
        data_dir: a.data_dir.clone(),
        counters: counters.clone(),
        cancel: cancel.clone(),
        restarts: a.restarts.clone(),
        manager: myself.clone(),
    };
    let name = Some(super::names::name(&a.me, &format!("g{generation}")));
    let actor =
        match Actor::spawn_linked(name, GenerationActor, args.clone(), myself.get_cell()).await {
            Ok((actor, _)) => Some(actor),
            Err(e) => {
                // E.g. the marker cannot be written (a full or failing data disk). Said to the
                // primary, which ends the generation and retries it, instead of waiting for ever.
                tracing::error!(error = %e, "cannot start rebalance g{generation}");
                Counters::add(&counters.errors, 1);
                counters.set_blocked(Some(format!("cannot start: {e}")));
                counters.set_stage(crate::types::status::Stage::Aborted);
                generation::report_last(Arc::new(args));
                None
            }
        };
    state.current = Some(Running {
        generation,
        counters,
        actor,
        _cancel: cancel.clone().drop_guard(),
        cancel,
    });
}

/// Aborts a generation and waits until its actors are gone (its tasks watch the token).
async fn abort(r: &mut Running) {
    r.cancel.cancel();
    if let Some(a) = r.actor.take() {
        a.stop_and_wait(Some("preempted".into()), Some(Duration::from_secs(10)))
            .await
            .ok();
    }
    if r.counters.stage() != crate::types::status::Stage::Done {
        r.counters.set_stage(crate::types::status::Stage::Aborted);
    }
}
