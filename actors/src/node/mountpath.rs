//! One actor per mountpath (DESIGN §14): counts its objects at start (and again after a restart:
//! the counts are rebuilt from disk), keeps its high-water flag current, and probes its health
//! — on a timer, and at once when the data path hits an I/O error there. A mountpath whose
//! probes keep failing is marked failed: out of placement at once, not read, reported in
//! `show storage` and the log; the target stays up on the others. A mountpath whose actor keeps
//! failing is marked failed by the node's supervisor instead of taking the node down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::meta::MetaHandle;
use crate::store::{LocalStore, Mountpath, MpState};

pub struct MountpathActor;

pub struct MountpathArgs {
    /// Its index among the target's mountpaths (its child label is `mp<index>`).
    pub index: usize,
    pub store: Arc<LocalStore>,
    pub meta: MetaHandle,
}

pub enum MountpathMsg {
    Tick,
    /// The data path saw an I/O error here: probe now.
    ProbeNow,
}

pub struct MountpathState {
    args: MountpathArgs,
    mp: Arc<Mountpath>,
    failures: u32,
    last_probe: Instant,
    ticks: u64,
    _wake: DropGuard,
}

/// How often the actor wakes (capacity, test fault checks).
const TICK: Duration = Duration::from_secs(1);
/// Consecutive failed probes that mark a mountpath failed.
const FAILED_AFTER: u32 = 3;
/// Between the probes that confirm an I/O error.
const RECHECK: Duration = Duration::from_millis(100);
/// Reason given while a mountpath is past its high-water mark.
pub const FULL_REASON: &str = "past the high-water mark: takes no new objects";

impl Actor for MountpathActor {
    type Msg = MountpathMsg;
    type State = MountpathState;
    type Arguments = MountpathArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: MountpathArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mp = args.store.mps.get(args.index).ok_or("no such mountpath")?;
        let m = mp.clone();
        tokio::task::spawn_blocking(move || m.recount()).await?;
        myself.send_interval(TICK, || MountpathMsg::Tick);
        // I/O errors reported by the data path wake this actor at once.
        let stop = CancellationToken::new();
        let (m, me, token) = (mp.clone(), myself.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = m.probe_now.notified() => if me.cast(MountpathMsg::ProbeNow).is_err() {
                        return;
                    },
                }
            }
        });
        Ok(MountpathState {
            args,
            mp,
            failures: 0,
            last_probe: Instant::now(),
            ticks: 0,
            _wake: stop.drop_guard(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        crate::fault::maybe_panic(&format!("mp{}", state.args.index));
        match state.mp.state() {
            // Forgotten: nothing left to watch.
            MpState::Detached => {
                myself.stop(Some(DETACHED.into()));
                return Ok(());
            }
            // Stays failed until an operator enables it again (which probes first).
            MpState::Failed => return Ok(()),
            _ => {}
        }
        match msg {
            MountpathMsg::Tick => {
                state.ticks += 1;
                watch_capacity(state);
                let every = Duration::from_millis(
                    state
                        .args
                        .meta
                        .get()
                        .config
                        .storage
                        .probe_interval_ms
                        .max(100),
                );
                if state.last_probe.elapsed() >= every {
                    probe(state).await?;
                }
            }
            MountpathMsg::ProbeNow => {
                // Confirm: a single error may be the object's, not the disk's.
                for _ in 0..FAILED_AFTER {
                    if probe(state).await? {
                        break;
                    }
                    tokio::time::sleep(RECHECK).await;
                }
            }
        }
        Ok(())
    }
}

/// The stop reason of the actor of a detached mountpath (not restarted).
pub const DETACHED: &str = "detached";

/// Probes once; returns whether the mountpath is healthy. After [`FAILED_AFTER`] failures in a
/// row it is marked failed.
async fn probe(state: &mut MountpathState) -> Result<bool, ActorProcessingErr> {
    state.last_probe = Instant::now();
    let m = state.mp.clone();
    match tokio::task::spawn_blocking(move || m.probe()).await? {
        Ok(()) => {
            state.failures = 0;
            state.mp.take_io_errors();
            Ok(true)
        }
        Err(e) => {
            state.failures += 1;
            tracing::warn!(path = %state.mp.path.display(), error = %e, failures = state.failures, "mountpath probe failed");
            if state.failures >= FAILED_AFTER {
                let why = format!("I/O failing: {e}");
                tracing::error!(mountpath = %state.mp.path.display(), reason = %why, "mountpath failed: out of placement, not read");
                state.args.store.mps.set_state(
                    state.args.index,
                    MpState::Failed,
                    Some(why),
                    false,
                )?;
            }
            Ok(false)
        }
    }
}

/// Sets or clears the high-water flag from the filesystem's use.
fn watch_capacity(state: &mut MountpathState) {
    let mp = &state.mp;
    let forced = mp
        .path
        .file_name()
        .is_some_and(|n| crate::fault::switch(&format!("full_{}", n.to_string_lossy())));
    let used = super::stats::capacity(&mp.path)
        .filter(|c| c.total > 0)
        .map(|c| c.used_pct());
    let storage = &state.args.meta.get().config.storage;
    mp.set_full(forced || storage.past_high_water(used, mp.is_full()));
}
