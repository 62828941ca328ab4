//! One rebalance generation on one target: its marker, its joggers (one per mountpath, restarted
//! if one fails), its reporter, and the end of it — post-traverse waits (through the primary)
//! until every participant has finished sending, then fin and done.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::jogger::{self, JoggerActor, JoggerArgs};
use super::{Counters, DONE, MARKER, RebMsg};
use crate::error::{Error, Result};
use crate::node::Restarts;
use crate::node::meta::MetaHandle;
use crate::proto::pool::Pool;
use crate::store::LocalStore;
use crate::types::smap::NodeId;
use crate::types::status::Stage;

/// How often a running generation reports to the primary.
const REPORT_EVERY: Duration = Duration::from_millis(500);
/// A jogger that fails more often than this aborts the generation (with errors).
const MAX_JOGGER_RESTARTS: u32 = 5;

pub struct GenerationActor;

#[derive(Clone)]
pub struct GenArgs {
    pub me: NodeId,
    pub generation: u64,
    pub meta: MetaHandle,
    pub pool: Arc<Pool>,
    pub store: Arc<LocalStore>,
    pub data_dir: PathBuf,
    pub counters: Arc<Counters>,
    pub cancel: CancellationToken,
    pub restarts: Arc<Restarts>,
    pub manager: ActorRef<RebMsg>,
}

pub enum GenMsg {
    /// Every participant is past traverse: finish. `clean`: none had errors or aborted, so
    /// nothing meant for this target is left on a sender.
    AllSent { clean: bool },
}

pub struct GenState {
    args: Arc<GenArgs>,
    /// Mountpaths whose jogger has not finished.
    left: Vec<usize>,
    /// Jogger actors by mountpath, to tell which one failed.
    joggers: Vec<Option<ractor::ActorId>>,
    /// Whether each mountpath's objects are counted in the totals (kept across restarts).
    counted: Vec<Arc<std::sync::atomic::AtomicBool>>,
    jogger_failures: u32,
    _cancel: DropGuard,
}

impl Actor for GenerationActor {
    type Msg = GenMsg;
    type State = GenState;
    type Arguments = GenArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: GenArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let g = args.generation;
        // Writes that checked ownership under the previous map finish before the walk starts
        // (see `LocalStore::installs`); later ones see this generation's map.
        drop(args.store.installs.write().await);
        // Until every sender is done, a copy here may be older than one in flight: reads ask.
        args.store
            .settling
            .store(true, std::sync::atomic::Ordering::Relaxed);
        crate::store::write_atomic(&args.data_dir.join(MARKER), g.to_string().as_bytes())?;
        tracing::info!(generation = %format!("g{g}"), "rebalance started");
        args.counters.set_stage(Stage::Traverse);
        // One jogger per readable mountpath (a failed or detached one holds nothing to read).
        let walk: Vec<usize> = args.store.mps.readable().iter().map(|(i, _)| *i).collect();
        let n = args.store.mps.len();
        let args = Arc::new(args);
        let mut state = GenState {
            args: args.clone(),
            left: walk.clone(),
            joggers: vec![None; n],
            counted: (0..n).map(|_| Default::default()).collect(),
            jogger_failures: 0,
            _cancel: args.cancel.clone().drop_guard(),
        };
        if walk.is_empty() {
            args.counters.set_stage(Stage::PostTraverse);
            wait_for_peers(args.clone(), myself.clone());
        }
        for i in walk {
            spawn_jogger(&myself, &mut state, i).await?;
        }
        spawn_reporter(args);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GenMsg::AllSent { clean } => {
                let a = &state.args;
                let c = &a.counters;
                // Not when a newer generation naming this target was published meanwhile: the
                // meta writer raised the flag for it, and it has not run yet. Nor when a sender
                // failed or aborted: a newer copy meant for here may still be on it, and a read
                // of the older one here must ask (nemesis long seed 3141).
                if clean && a.meta.get().rmd.version == a.generation {
                    a.store
                        .settling
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                }
                c.set_stage(Stage::Fin);
                // With errors the marker stays, so a restart runs a new generation.
                if c.errors() == 0 {
                    let _ = crate::store::write_atomic(
                        &a.data_dir.join(DONE),
                        a.generation.to_string().as_bytes(),
                    );
                    let _ = std::fs::remove_file(a.data_dir.join(MARKER));
                }
                c.set_stage(Stage::Done);
                c.set_blocked(None);
                report_last(a.clone());
                tracing::info!(
                    generation = %format!("g{}", a.generation),
                    tx = c.tx_objs.load(std::sync::atomic::Ordering::Relaxed),
                    rx = c.rx_objs.load(std::sync::atomic::Ordering::Relaxed),
                    "rebalance done"
                );
                a.cancel.cancel();
                let _ = a.manager.cast(RebMsg::Ended {
                    generation: a.generation,
                });
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
        // A jogger that finished is done with its mountpath; a failed one walks it again (the
        // walk is idempotent); one that keeps failing aborts the generation, whose marker stays
        // so the cluster retries.
        let (cell, err) = match evt {
            SupervisionEvent::ActorTerminated(cell, _, Some(reason)) if reason == jogger::DONE => {
                if let Some(i) = state
                    .joggers
                    .iter()
                    .position(|j| j.as_ref() == Some(&cell.get_id()))
                {
                    state.joggers[i] = None;
                    state.left.retain(|m| *m != i);
                    if state.left.is_empty() {
                        state.args.counters.set_stage(Stage::PostTraverse);
                        wait_for_peers(state.args.clone(), myself.clone());
                    }
                }
                return Ok(());
            }
            SupervisionEvent::ActorFailed(cell, err) => (cell, err),
            _ => return Ok(()),
        };
        let Some(i) = state
            .joggers
            .iter()
            .position(|j| j.as_ref() == Some(&cell.get_id()))
        else {
            return Ok(());
        };
        state.joggers[i] = None;
        if state.args.cancel.is_cancelled() {
            return Ok(());
        }
        state.jogger_failures += 1;
        let n = state.args.restarts.bump("jogger");
        tracing::error!(mountpath = i, restarts = n, error = %err, "jogger failed");
        if state.jogger_failures > MAX_JOGGER_RESTARTS {
            tracing::error!("joggers keep failing; aborting the generation");
            state.args.counters.set_blocked(Some(format!(
                "the walk of mountpath {i} failed {} times: {err}",
                state.jogger_failures
            )));
            Counters::add(&state.args.counters.errors, 1);
            state.args.counters.set_stage(Stage::Aborted);
            report_last(state.args.clone());
            state.args.cancel.cancel();
            let _ = state.args.manager.cast(RebMsg::Ended {
                generation: state.args.generation,
            });
            myself.stop(Some("joggers failed".into()));
            return Ok(());
        }
        if let Err(e) = spawn_jogger(&myself, state, i).await {
            tracing::error!(error = %e, "cannot restart jogger");
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.args.cancel.cancel();
        if state.args.counters.stage() != Stage::Done {
            state.args.counters.set_stage(Stage::Aborted);
        }
        Ok(())
    }
}

async fn spawn_jogger(
    myself: &ActorRef<GenMsg>,
    state: &mut GenState,
    mountpath: usize,
) -> Result<(), ActorProcessingErr> {
    let a = &state.args;
    let args = JoggerArgs {
        me: a.me.clone(),
        generation: a.generation,
        mountpath,
        meta: a.meta.clone(),
        pool: a.pool.clone(),
        store: a.store.clone(),
        counters: a.counters.clone(),
        cancel: a.cancel.clone(),
        counted: state.counted[mountpath].clone(),
    };
    let (j, _) = Actor::spawn_linked(None, JoggerActor, args, myself.get_cell()).await?;
    state.joggers[mountpath] = Some(j.get_id());
    Ok(())
}

/// Sends this target's progress to the primary; the answer says how far the slowest is.
async fn report(a: &GenArgs) -> Result<crate::proto::msg::RebReportAck> {
    let status = a.counters.snapshot(a.me.as_str());
    let addr = a
        .meta
        .get()
        .primary_addr()
        .ok_or_else(|| Error::NotFound("no primary".into()))?;
    a.pool.rpc(&addr, status, Duration::from_secs(5)).await
}

/// This target's last word on the generation (done, or aborted): the primary completes the
/// lifecycle operation, or ends the generation for a retry, on it — so make sure it arrives
/// (tried for about ten seconds; the reporter stops with the generation).
pub(super) fn report_last(a: Arc<GenArgs>) {
    tokio::spawn(async move {
        for _ in 0..50 {
            if report(&a).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// Reports every [`REPORT_EVERY`], and at once when the stage changes (the primary learns that
/// a target finished as it happens, not up to a period later).
fn spawn_reporter(a: Arc<GenArgs>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = report(&a).await {
                tracing::debug!(error = %e, "rebalance report failed");
            }
            tokio::select! {
                _ = a.cancel.cancelled() => break,
                _ = a.counters.stage_changed.notified() => {}
                _ = tokio::time::sleep(REPORT_EVERY) => {}
            }
        }
    });
}

/// Post-traverse: wait until every participant has finished sending, then finish. The primary
/// holds this report until they have (a long poll, up to a second), so the answer comes as soon
/// as the last one is done; one that comes back at once (the primary could not hold it: an
/// error, or another generation) is asked again after a pause.
fn wait_for_peers(a: Arc<GenArgs>, me: ActorRef<GenMsg>) {
    tokio::spawn(async move {
        loop {
            let asked = std::time::Instant::now();
            match report(&a).await {
                Ok(ack) if ack.min_stage >= Stage::PostTraverse => {
                    let _ = me.cast(GenMsg::AllSent { clean: ack.clean });
                    return;
                }
                Ok(_) => a.counters.set_blocked(None),
                Err(e) => a
                    .counters
                    .set_blocked(Some(format!("primary unreachable: {e}"))),
            }
            let pause = Duration::from_millis(200).saturating_sub(asked.elapsed());
            tokio::select! {
                _ = a.cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    });
}
