//! Rebalance generations as the primary runs them (DESIGN §8): a new RMD version per generation
//! (with the map change that caused it, in one push), the tracker of its progress, the targets'
//! reports, and its completion, which finalises the lifecycle operations waiting on it — unless
//! some objects did not move.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::PrimaryState;
use super::push::{self, Push};
use crate::error::{Error, Result};
use crate::logic::generation::{FAILED, new_rmd, retry_due};
use crate::logic::progress::Tracker;
use crate::proto::msg::{RebReportAck, Reply, Rpc};
use crate::types::config::{ClusterConfig, HISTORY_KEEP};
use crate::types::meta::MetaUpdate;
use crate::types::smap::{NodeId, Rmd, Smap, rebalance_id};
use crate::types::status::{GenRecord, Stage, TargetRebStatus};

/// Commits `map_change` (if any) with a new RMD over the resulting map, and tracks it. Returns
/// the RMD and the push to send.
pub async fn start(
    state: &mut PrimaryState,
    map_change: Option<Smap>,
    trigger: String,
) -> Result<(Rmd, Push)> {
    let basis = match &map_change {
        Some(s) => s.clone(),
        None => state.smap()?,
    };
    let mut rmd = new_rmd(&basis, state.a.meta.get().rmd.version);
    rmd.trigger = trigger;
    // A generation still running is superseded: its line goes into the history with this one.
    let config = state.tracker.as_ref().filter(|t| t.running()).map(|t| {
        with_record(
            state,
            t.history_record(format!("superseded by {}", rmd.rebalance_id())),
        )
    });
    let push = push::commit(
        state,
        MetaUpdate {
            smap: map_change,
            rmd: Some(rmd.clone()),
            config,
            ..Default::default()
        },
    )
    .await?;
    track(state, &rmd);
    Ok((rmd, push))
}

pub fn track(state: &mut PrimaryState, rmd: &Rmd) {
    let participants: BTreeSet<NodeId> = rmd.participants.iter().cloned().collect();
    if let Some(s) = state.a.meta.get().smap.as_ref() {
        for t in s.targets.values() {
            if !participants.contains(&t.id) && state.offline.contains(&t.id) {
                state.missed.insert(t.id.clone());
            }
        }
    }
    let mut t = Tracker::new(
        rmd.version,
        participants,
        rmd.finalize.clone(),
        Instant::now(),
        crate::types::unix_secs(),
    );
    t.trigger = rmd.trigger.clone();
    state.tracker = Some(t);
}

/// Runs a generation that finished with errors again once its retry is due (each tick): its
/// objects left behind move once the cause is gone, its lifecycle steps complete, and its
/// targets stop asking the others — without the operator repeating the operation.
pub async fn retry_failed(state: &mut PrimaryState) {
    if state.tracker.as_ref().is_some_and(|t| t.running()) {
        return;
    }
    let m = state.a.meta.get();
    let reb = &m.config.rebalance;
    let (Some(due), Some(last)) = (
        retry_due(&m.config.history, m.rmd.version, reb.retry_secs),
        m.config.history.last(),
    ) else {
        return;
    };
    if reb.paused || crate::types::unix_secs() < due {
        return;
    }
    let trigger = format!("retry of {} ({} errors)", last.id, last.errors);
    match start(state, None, trigger).await {
        Ok((rmd, push)) => {
            push.spawn();
            tracing::info!(failed = %last.id, new = %rmd.rebalance_id(), "running a generation that finished with errors again");
        }
        Err(e) => tracing::warn!(failed = %last.id, error = %e, "cannot retry the generation"),
    }
}

/// The cluster config with `rec` added to its history (bounded), as the next version.
pub(super) fn with_record(state: &PrimaryState, rec: GenRecord) -> Box<ClusterConfig> {
    let mut cfg = state.a.meta.get().config.clone();
    cfg.history.retain(|r| r.id != rec.id);
    cfg.history.push(rec);
    let extra = cfg.history.len().saturating_sub(HISTORY_KEEP);
    cfg.history.drain(..extra);
    cfg.version += 1;
    Box::new(cfg)
}

/// The refusal of a membership change while a generation runs (DESIGN §7).
pub fn busy(op: &str, t: &Tracker) -> Error {
    Error::Busy(format!(
        "cluster membership \"{op}\" is currently busy (rebalance[{}] is running), please try again",
        rebalance_id(t.generation)
    ))
}

/// A target's progress report. The answer says how far the slowest participant is.
pub async fn report(state: &mut PrimaryState, r: TargetRebStatus) -> Result<Reply> {
    let id = NodeId(r.id.clone());
    state.last_seen.insert(id.clone(), Instant::now());
    let current = state.a.meta.get().rmd.version;
    if state.tracker.is_none() && r.generation == current && r.stage < Stage::Done {
        // A generation started under a previous primary (or before this actor restarted) is
        // still running there and nobody tracks it: start a fresh one (the walk is idempotent)
        // so it completes and is seen.
        if let Ok(smap) = state.smap()
            && smap.count_active_targets() > 0
            && let Ok((rmd, push)) =
                start(state, None, "resume a generation nobody tracked".into()).await
        {
            push.spawn();
            tracing::info!(old = %rebalance_id(current), new = %rmd.rebalance_id(), "resuming an untracked rebalance");
        }
    }
    let mut complete = false;
    if let Some(t) = state.tracker.as_mut() {
        t.record(r, Instant::now());
        complete = t.running() && t.all_ended();
    }
    if complete {
        complete_generation(state).await;
    }
    let current = state.a.meta.get().rmd.version;
    let (min_stage, clean) = progress_of(state, current);
    Ok(TargetRebStatus::reply(RebReportAck {
        min_stage,
        current_gen: current,
        clean,
    }))
}

/// How far the slowest participant of generation `current` is, and whether it has gone
/// cleanly so far (`Init` and not clean when it is not tracked).
fn progress_of(state: &PrimaryState, current: u64) -> (Stage, bool) {
    state
        .tracker
        .as_ref()
        .filter(|t| t.generation == current)
        .map_or((Stage::Init, false), |t| (t.min_stage(), t.clean()))
}

/// How long a report that waits for the other participants is held at most: well under the
/// reporter's RPC timeout, so a slow generation costs one more report, never an error.
pub const HOLD: Duration = Duration::from_secs(1);

/// A held report: the generation it was about, since when, and where its answer goes.
pub struct Held {
    generation: u64,
    since: Instant,
    reply: super::ReplyTo,
}

/// Answers a report now, or holds it when it says "I am done sending" while others are not:
/// it is answered as soon as they are (see [`release_held`]).
pub fn answer_or_hold(
    state: &mut PrimaryState,
    stage: Stage,
    res: Result<Reply>,
    reply: super::ReplyTo,
) {
    if let Ok(Reply::RebReportAck(ack)) = &res
        && stage == Stage::PostTraverse
        && ack.min_stage < Stage::PostTraverse
    {
        state.held.push(Held {
            generation: ack.current_gen,
            since: Instant::now(),
            reply,
        });
        state
            .myself
            .send_after(HOLD, || super::PrimaryMsg::ReleaseHeld);
        return;
    }
    let _ = reply.send(res);
}

/// Answers the held reports whose wait is over: every participant of their generation is past
/// traverse, the generation is no longer the current one, or [`HOLD`] has passed.
pub fn release_held(state: &mut PrimaryState) {
    if state.held.is_empty() {
        return;
    }
    let current = state.a.meta.get().rmd.version;
    let (min_stage, clean) = progress_of(state, current);
    let now = Instant::now();
    let (due, keep): (Vec<Held>, Vec<Held>) =
        std::mem::take(&mut state.held).into_iter().partition(|h| {
            h.generation != current
                || min_stage >= Stage::PostTraverse
                || now.duration_since(h.since) >= HOLD
        });
    state.held = keep;
    for h in due {
        let _ = h.reply.send(Ok(TargetRebStatus::reply(RebReportAck {
            min_stage,
            current_gen: current,
            clean,
        })));
    }
}

/// Every participant is done (or gave up): finalise the lifecycle steps waiting on this
/// generation, unless objects failed to move or a participant aborted (finalising would strand
/// or wipe them: the nodes stay in transition until a retry, or a repeat of the operation,
/// finishes cleanly).
pub async fn complete_generation(state: &mut PrimaryState) {
    let Some(t) = state.tracker.as_mut() else {
        return;
    };
    t.finish(Instant::now(), crate::types::unix_secs());
    let g = t.generation;
    tracing::info!(generation = %rebalance_id(g), "rebalance finished on every target");
    let (nodes, errors) = (t.finalize.clone(), t.errors());
    let outcome = if errors > 0 { FAILED } else { "finished" };
    let rec = t.history_record(outcome);
    let upd = MetaUpdate {
        config: Some(with_record(state, rec)),
        ..Default::default()
    };
    match push::commit(state, upd).await {
        Ok(p) => p.spawn(),
        Err(e) => tracing::warn!(error = %e, "rebalance history not recorded"),
    }
    if errors > 0 {
        tracing::error!(generation = %rebalance_id(g), errors, "rebalance finished with errors; lifecycle operations not finalised until a retry finishes cleanly");
        return;
    }
    if let Err(e) = super::finalize::finalize(state, &nodes, true, None).await {
        tracing::error!(error = %e, "finalizing lifecycle operations failed");
    }
}
