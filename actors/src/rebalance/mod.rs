//! Global rebalance (DESIGN §8): a [`RebalanceActor`] per generation `g<N>` on every target,
//! with a [`jogger::JoggerActor`] per mountpath that walks objects and sends the misplaced ones
//! to their new owner (or moves them to the right local mountpath).
//!
//! Stages per target: `init → traverse → post-traverse → fin → done`. Traverse counts what must
//! move (so totals and ETA are known early), then moves it; post-traverse waits until every
//! participant finished sending (reported through the primary); fin removes the on-disk marker;
//! done is reported to the primary, which completes the lifecycle operation when every target is
//! done. A generation owns its tasks, counters and marker, and releases them however it ends, so
//! an aborted generation never breaks the next one (AIStore issue #288).

pub mod jogger;
mod progress;

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio_util::sync::CancellationToken;

pub use progress::{RebalanceStatus, Stage, TargetRebStatus};

use crate::error::{Error, Result};
use crate::node::Ctx;
use crate::store;
use crate::wire::Msg;

/// Marker file in the data dir while a generation runs: present at boot = interrupted.
pub const MARKER: &str = "rebalance.marker";
/// How often a running generation reports to the primary.
const REPORT_EVERY: Duration = Duration::from_millis(500);

/// Live counters of one generation on one target.
pub struct Counters {
    pub generation: u64,
    stage: AtomicU8,
    pub objs_total: AtomicU64,
    pub bytes_total: AtomicU64,
    pub joggers_counted: AtomicU64,
    pub tx_objs: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_objs: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub local_objs: AtomicU64,
    pub local_bytes: AtomicU64,
    pub errors: AtomicU64,
    pub started: u64,
    /// Monotonic start, for rates and the throttle.
    pub started_at: std::time::Instant,
    finished: AtomicU64,
    pub blocked_by: Mutex<Option<String>>,
    pub mountpaths: u64,
}

const STAGES: [Stage; 6] = [
    Stage::Init,
    Stage::Traverse,
    Stage::PostTraverse,
    Stage::Fin,
    Stage::Done,
    Stage::Aborted,
];

impl Counters {
    pub fn stage(&self) -> Stage {
        STAGES[self.stage.load(Ordering::Relaxed) as usize % STAGES.len()]
    }
    pub fn set_stage(&self, s: Stage) {
        let i = STAGES.iter().position(|x| *x == s).unwrap_or(0);
        self.stage.store(i as u8, Ordering::Relaxed);
        if matches!(s, Stage::Done | Stage::Aborted) {
            self.finished.store(store::unix_secs(), Ordering::Relaxed);
        }
    }
    pub fn set_blocked(&self, why: Option<String>) {
        *self.blocked_by.lock().expect("poisoned") = why;
    }

    pub fn snapshot(&self, id: &str) -> TargetRebStatus {
        let fin = self.finished.load(Ordering::Relaxed);
        TargetRebStatus {
            id: id.to_string(),
            generation: self.generation,
            stage: self.stage(),
            objs_total: self.objs_total.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            counted: self.joggers_counted.load(Ordering::Relaxed) >= self.mountpaths,
            tx_objs: self.tx_objs.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            rx_objs: self.rx_objs.load(Ordering::Relaxed),
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
            local_objs: self.local_objs.load(Ordering::Relaxed),
            local_bytes: self.local_bytes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            started: Some(self.started),
            finished: (fin > 0).then_some(fin),
            blocked_by: self.blocked_by.lock().expect("poisoned").clone(),
        }
    }
}

/// What the target keeps of a running generation.
pub struct RebHandle {
    pub generation: u64,
    pub counters: Arc<Counters>,
    cancel: CancellationToken,
    actor: ActorRef<RebMsg>,
    join: tokio::task::JoinHandle<()>,
}

impl RebHandle {
    /// Aborts the generation and waits until its actors and tasks are gone.
    pub async fn abort(self) {
        self.cancel.cancel();
        self.actor.stop(Some("preempted".into()));
        let _ = self.join.await;
    }
}

/// Starts generation `generation` on this target.
pub async fn start(ctx: Arc<Ctx>, generation: u64) -> Result<RebHandle> {
    let t = ctx
        .target
        .as_ref()
        .ok_or_else(|| Error::BadRequest("not a target".into()))?;
    let counters = Arc::new(Counters {
        generation,
        stage: AtomicU8::new(0),
        objs_total: AtomicU64::new(0),
        bytes_total: AtomicU64::new(0),
        joggers_counted: AtomicU64::new(0),
        tx_objs: AtomicU64::new(0),
        tx_bytes: AtomicU64::new(0),
        rx_objs: AtomicU64::new(0),
        rx_bytes: AtomicU64::new(0),
        local_objs: AtomicU64::new(0),
        local_bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        started: store::unix_secs(),
        started_at: std::time::Instant::now(),
        finished: AtomicU64::new(0),
        blocked_by: Mutex::new(None),
        mountpaths: t.mountpaths.len() as u64,
    });
    let cancel = CancellationToken::new();
    let (actor, handle) = Actor::spawn(
        None,
        RebalanceActor,
        RebArgs {
            ctx: ctx.clone(),
            generation,
            counters: counters.clone(),
            cancel: cancel.clone(),
        },
    )
    .await
    .map_err(|e| Error::Remote(format!("rebalance actor: {e}")))?;
    let join = tokio::spawn(async move {
        let _ = handle.await;
    });
    Ok(RebHandle {
        generation,
        counters,
        cancel,
        actor,
        join,
    })
}

/// Counts a received object against the running generation.
pub async fn count_rx(ctx: &Ctx, generation: u64, size: u64) {
    if let Some(t) = &ctx.target
        && let Some(h) = t.reb.lock().await.as_ref()
        && h.generation == generation
    {
        h.counters.rx_objs.fetch_add(1, Ordering::Relaxed);
        h.counters.rx_bytes.fetch_add(size, Ordering::Relaxed);
    }
}

pub async fn count_error(ctx: &Ctx, generation: u64) {
    if let Some(t) = &ctx.target
        && let Some(h) = t.reb.lock().await.as_ref()
        && h.generation == generation
    {
        h.counters.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// This target's status for `generation`, if it runs or ran it.
pub async fn local_status(ctx: &Ctx) -> Option<TargetRebStatus> {
    let t = ctx.target.as_ref()?;
    let g = t.reb.lock().await;
    g.as_ref().map(|h| h.counters.snapshot(ctx.me.id.as_str()))
}

// ---------------------------------------------------------------------------------------------
// RebalanceActor
// ---------------------------------------------------------------------------------------------

pub struct RebalanceActor;

pub struct RebArgs {
    pub ctx: Arc<Ctx>,
    pub generation: u64,
    pub counters: Arc<Counters>,
    pub cancel: CancellationToken,
}

pub enum RebMsg {
    /// A jogger finished its mountpath.
    JoggerDone { mountpath: usize },
    /// Every participant is past traverse: finish.
    AllSent,
}

pub struct RebState {
    args: RebArgs,
    joggers_left: usize,
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
        let ctx = &args.ctx;
        let g = args.generation;
        store::write_atomic(&ctx.data_dir.join(MARKER), g.to_string().as_bytes())?;
        tracing::info!(generation = %format!("g{g}"), "rebalance started");
        args.counters.set_stage(Stage::Traverse);
        let t = ctx.target.as_ref().expect("rebalance runs on targets");
        for i in 0..t.mountpaths.len() {
            Actor::spawn_linked(
                None,
                jogger::JoggerActor,
                jogger::JoggerArgs {
                    ctx: ctx.clone(),
                    generation: g,
                    mountpath: i,
                    counters: args.counters.clone(),
                    cancel: args.cancel.clone(),
                    parent: myself.clone(),
                },
                myself.get_cell(),
            )
            .await?;
        }
        spawn_reporter(ctx.clone(), args.counters.clone(), args.cancel.clone());
        let joggers_left = t.mountpaths.len();
        Ok(RebState { args, joggers_left })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RebMsg::JoggerDone { mountpath } => {
                tracing::debug!(mountpath, "jogger finished");
                state.joggers_left = state.joggers_left.saturating_sub(1);
                if state.joggers_left == 0 {
                    state.args.counters.set_stage(Stage::PostTraverse);
                    wait_for_peers(
                        state.args.ctx.clone(),
                        state.args.counters.clone(),
                        state.args.cancel.clone(),
                        myself.clone(),
                    );
                }
            }
            RebMsg::AllSent => {
                let c = &state.args.counters;
                c.set_stage(Stage::Fin);
                // With errors the marker stays, so a restart runs a new generation.
                if c.errors.load(Ordering::Relaxed) == 0 {
                    let _ = std::fs::remove_file(state.args.ctx.data_dir.join(MARKER));
                }
                c.set_stage(Stage::Done);
                c.set_blocked(None);
                // The primary completes the operation on this report: make sure it arrives.
                let (ctx, counters) = (state.args.ctx.clone(), c.clone());
                tokio::spawn(async move {
                    for _ in 0..50 {
                        if report(&ctx, &counters).await.is_ok() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                });
                tracing::info!(
                    generation = %format!("g{}", state.args.generation),
                    tx = c.tx_objs.load(Ordering::Relaxed),
                    rx = c.rx_objs.load(Ordering::Relaxed),
                    "rebalance done"
                );
                state.args.cancel.cancel();
                myself.stop(Some("done".into()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A failed jogger aborts this generation; the marker stays so the cluster retries.
        if let SupervisionEvent::ActorFailed(_, err) = evt {
            tracing::error!(error = %err, "jogger failed; aborting generation");
            state.args.counters.set_stage(Stage::Aborted);
            state.args.cancel.cancel();
            myself.stop(Some("jogger failed".into()));
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Whatever the outcome, nothing of this generation keeps running.
        state.args.cancel.cancel();
        if state.args.counters.stage() != Stage::Done {
            state.args.counters.set_stage(Stage::Aborted);
        }
        Ok(())
    }
}

/// Sends this target's progress to the primary; the answer says how far the slowest is.
async fn report(ctx: &Arc<Ctx>, c: &Counters) -> Result<Stage> {
    let status = c.snapshot(ctx.me.id.as_str());
    let msg = Msg::RebReport(Box::new(status));
    let addr = ctx
        .meta()
        .primary_addr()
        .ok_or_else(|| Error::NotFound("no primary".into()))?;
    let reply = ctx.call(&addr, msg, Duration::from_secs(5)).await?;
    match reply {
        Msg::RebReportAck { min_stage, .. } => Ok(min_stage),
        other => Err(crate::client::unexpected(&other)),
    }
}

fn spawn_reporter(ctx: Arc<Ctx>, c: Arc<Counters>, cancel: CancellationToken) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = report(&ctx, &c).await {
                tracing::debug!(error = %e, "rebalance report failed");
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(REPORT_EVERY) => {}
            }
        }
    });
}

/// Post-traverse: poll until every participant has finished sending, then finish.
fn wait_for_peers(
    ctx: Arc<Ctx>,
    c: Arc<Counters>,
    cancel: CancellationToken,
    me: ActorRef<RebMsg>,
) {
    tokio::spawn(async move {
        loop {
            match report(&ctx, &c).await {
                Ok(min) if min >= Stage::PostTraverse => {
                    let _ = me.cast(RebMsg::AllSent);
                    return;
                }
                Ok(_) => c.set_blocked(None),
                Err(e) => c.set_blocked(Some(format!("primary unreachable: {e}"))),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    });
}
