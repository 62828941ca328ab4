//! One actor per mountpath: counts its objects at start (and again after a restart: the counts
//! are rebuilt from disk) and probes its health. A mountpath whose probes keep failing is
//! reported disabled; one whose actor keeps failing is disabled by the node's supervisor, instead
//! of taking the node down.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::store::Mountpath;

pub struct MountpathActor;

pub enum MountpathMsg {
    Tick,
}

pub struct MountpathState {
    mp: Arc<Mountpath>,
    /// Its index among the target's mountpaths (its child label is `mp<index>`).
    index: usize,
    failures: u32,
    ticks: u64,
}

/// How often the actor wakes (test fault checks); a probe runs every [`PROBE_EVERY_TICKS`].
const TICK: Duration = Duration::from_secs(1);
const PROBE_EVERY_TICKS: u64 = 10;

impl Actor for MountpathActor {
    type Msg = MountpathMsg;
    type State = MountpathState;
    type Arguments = (usize, Arc<Mountpath>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (index, mp): (usize, Arc<Mountpath>),
    ) -> Result<Self::State, ActorProcessingErr> {
        let m = mp.clone();
        tokio::task::spawn_blocking(move || m.recount()).await?;
        myself.send_interval(TICK, || MountpathMsg::Tick);
        Ok(MountpathState {
            mp,
            index,
            failures: 0,
            ticks: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let MountpathMsg::Tick = msg;
        crate::fault::maybe_panic(&format!("mp{}", state.index));
        state.ticks += 1;
        if !state.ticks.is_multiple_of(PROBE_EVERY_TICKS) {
            return Ok(());
        }
        let m = state.mp.clone();
        match tokio::task::spawn_blocking(move || m.probe()).await? {
            Ok(()) => {
                state.failures = 0;
                state.mp.enabled.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                state.failures += 1;
                tracing::warn!(path = %state.mp.path.display(), error = %e, "mountpath probe failed");
                if state.failures >= 3 {
                    state.mp.enabled.store(false, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }
}
