//! Keepalive (DESIGN §9): every non-primary node heartbeats the primary each
//! `keepalive.interval`. A node in post-rebalance maintenance sends nothing (it is not expected
//! to). A node the primary no longer knows (removed after a long silence) rejoins on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::error::Error;
use crate::node::Ctx;
use crate::smap::Flags;
use crate::wire::Msg;

pub struct KeepaliveActor;

pub struct KeepaliveArgs {
    pub ctx: Arc<Ctx>,
}

pub enum KeepaliveMsg {
    Tick,
}

pub struct KeepaliveState {
    ctx: Arc<Ctx>,
    /// Consecutive failed heartbeats (primary unreachable).
    misses: u32,
    /// A rejoin is in flight; do not start another.
    rejoining: Arc<AtomicBool>,
    /// A heartbeat is in flight; ticks do not pile up behind a slow primary.
    busy: Arc<AtomicBool>,
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
        let interval = args.ctx.meta().config.keepalive.interval();
        myself.send_interval(interval, || KeepaliveMsg::Tick);
        Ok(KeepaliveState {
            ctx: args.ctx,
            misses: 0,
            rejoining: Arc::new(AtomicBool::new(false)),
            busy: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        _msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let ctx = state.ctx.clone();
        let meta = ctx.meta();
        let Some(smap) = meta.smap.as_ref() else {
            return Ok(()); // standby: nothing to heartbeat yet
        };
        if smap.primary == ctx.me.id || ctx.shutdown.is_cancelled() {
            return Ok(());
        }
        if ctx.my_flags().contains(Flags::MAINT_POST_REB)
            || ctx.keepalive_suspended.load(Ordering::Relaxed)
        {
            return Ok(());
        }
        if state.busy.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let Some(addr) = meta.primary_addr() else {
            state.busy.store(false, Ordering::Release);
            return Ok(());
        };
        let msg = Msg::Keepalive {
            node: ctx.me.id.clone(),
            smap_version: smap.version,
            rmd_version: meta.rmd.version,
            bmd_version: meta.bmd.version,
            config_version: meta.config.version,
        };
        let timeout = meta.config.keepalive.interval();
        let res = ctx.call(&addr, msg, timeout).await;
        state.busy.store(false, Ordering::Release);
        match res {
            Ok(_) => {
                state.misses = 0;
                ctx.primary_contact();
            }
            Err(Error::NotFound(_)) if ctx.keepalive_suspended.load(Ordering::Relaxed) => {}
            Err(Error::NotFound(_)) => {
                // Removed from the map while silent: rejoin (the primary rebalances then).
                if !state.rejoining.swap(true, Ordering::AcqRel) {
                    let flag = state.rejoining.clone();
                    tokio::spawn(async move {
                        let interrupted = ctx.target.as_ref().is_some_and(|t| t.has_marker(&ctx));
                        if let Err(e) = crate::node::join_cluster(&ctx, interrupted).await {
                            tracing::warn!(error = %e, "rejoin failed");
                        }
                        flag.store(false, Ordering::Release);
                    });
                }
            }
            Err(e) => {
                state.misses += 1;
                if state.misses == meta.config.keepalive.num_retries {
                    tracing::warn!(primary = %addr, error = %e, "primary unreachable");
                }
                if state.misses >= meta.config.keepalive.num_retries {
                    tokio::spawn(crate::election::on_primary_lost(ctx.clone()));
                }
            }
        }
        Ok(())
    }
}
