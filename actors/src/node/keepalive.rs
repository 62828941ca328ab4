//! Keepalive (DESIGN §9): every non-primary node heartbeats the primary each
//! `keepalive.interval`. A node in post-rebalance maintenance sends nothing (it is not expected
//! to). A node the primary no longer knows (removed after a long silence) rejoins on its own; a
//! primary that stops answering starts the election. The heartbeat itself runs in a task, so
//! this actor answers at once even while the primary is slow.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::Contact;
use super::meta::MetaHandle;
use crate::error::{Error, Result};
use crate::proto::msg::{Heartbeat, KeepaliveAck};
use crate::proto::pool::Pool;
use crate::types::smap::{Flags, Node};

pub struct KeepaliveActor;

pub struct KeepaliveArgs {
    pub me: Node,
    pub meta: MetaHandle,
    pub pool: Arc<Pool>,
    pub contact: Arc<Contact>,
    /// Where to join if the primary forgot us.
    pub join: Option<String>,
    /// For the rebalance marker a rejoin reports.
    pub data_dir: PathBuf,
}

pub enum KeepaliveMsg {
    Tick,
    /// The answer to the heartbeat in flight.
    Beat(Result<KeepaliveAck>),
    /// Go silent (`remove-from-smap`): before the primary drops us, so that a heartbeat in
    /// between cannot make us rejoin. Answered once in effect.
    Suspend(RpcReplyPort<()>),
}

pub struct KeepaliveState {
    args: KeepaliveArgs,
    /// Consecutive failed heartbeats (primary unreachable).
    misses: u32,
    /// A heartbeat is in flight; ticks do not pile up behind a slow primary.
    busy: bool,
    suspended: bool,
    /// A rejoin or an election is in flight; do not start another.
    acting: Arc<AtomicBool>,
}

impl Actor for KeepaliveActor {
    type Msg = KeepaliveMsg;
    type State = KeepaliveState;
    type Arguments = KeepaliveArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: KeepaliveArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        crate::fault::maybe_panic("keepalive");
        let interval = args.meta.get().config.keepalive.interval();
        myself.send_interval(interval, || KeepaliveMsg::Tick);
        Ok(KeepaliveState {
            args,
            misses: 0,
            busy: false,
            suspended: false,
            acting: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            KeepaliveMsg::Tick => {
                crate::fault::maybe_panic("keepalive");
                beat(&myself, state);
            }
            KeepaliveMsg::Beat(res) => {
                state.busy = false;
                answered(state, res);
            }
            KeepaliveMsg::Suspend(reply) => {
                state.suspended = true;
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// Sends one heartbeat in a task, unless there is nothing to do.
fn beat(myself: &ActorRef<KeepaliveMsg>, state: &mut KeepaliveState) {
    let a = &state.args;
    let meta = a.meta.get();
    let Some(smap) = meta.smap.as_ref() else {
        return; // standby: nothing to heartbeat yet
    };
    if smap.primary == a.me.id
        || state.suspended
        || state.busy
        || meta.flags_of(&a.me.id).contains(Flags::MAINT_POST_REB)
    {
        return;
    }
    let Some(addr) = meta.primary_addr() else {
        return;
    };
    let [smap_version, rmd_version, bmd_version, config_version] = meta.versions();
    let hb = Heartbeat {
        node: a.me.id.clone(),
        smap_version,
        rmd_version,
        bmd_version,
        config_version,
    };
    let timeout = meta.config.keepalive.interval();
    let pool = a.pool.clone();
    let me = myself.clone();
    state.busy = true;
    tokio::spawn(async move {
        let res = pool.rpc(&addr, hb, timeout).await;
        let _ = me.cast(KeepaliveMsg::Beat(res));
    });
}

fn answered(state: &mut KeepaliveState, res: Result<KeepaliveAck>) {
    let a = &state.args;
    match res {
        Ok(_) => {
            state.misses = 0;
            a.contact.touch();
        }
        Err(_) if state.suspended => {}
        Err(Error::NotFound(_)) => {
            // Removed from the map while silent: rejoin (the primary rebalances then).
            if !state.acting.swap(true, Ordering::AcqRel) {
                let (meta, pool, me, join) =
                    (a.meta.clone(), a.pool.clone(), a.me.clone(), a.join.clone());
                let interrupted = a.data_dir.join(super::rebalance::MARKER).exists();
                let flag = state.acting.clone();
                tokio::spawn(async move {
                    if let Err(e) =
                        super::join_cluster(&meta, &pool, &me, join.as_deref(), interrupted).await
                    {
                        tracing::warn!(error = %e, "rejoin failed");
                    }
                    flag.store(false, Ordering::Release);
                });
            }
        }
        Err(e) => {
            state.misses += 1;
            let retries = a.meta.get().config.keepalive.num_retries;
            if state.misses == retries {
                tracing::warn!(error = %e, "primary unreachable");
            }
            if state.misses >= retries && !state.acting.swap(true, Ordering::AcqRel) {
                let (meta, pool, me, contact) = (
                    a.meta.clone(),
                    a.pool.clone(),
                    a.me.clone(),
                    a.contact.clone(),
                );
                let flag = state.acting.clone();
                tokio::spawn(async move {
                    super::election::on_primary_lost(&meta, &pool, &me, &contact).await;
                    flag.store(false, Ordering::Release);
                });
            }
        }
    }
}
