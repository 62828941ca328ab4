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
use crate::store::LocalStore;
use crate::types::smap::{Flags, Node, Role};

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
    /// A target's store: told the primary's map version (see `LocalStore::map_seen`).
    pub store: Option<Arc<LocalStore>>,
    /// Cancelled when the node stops: a rejoin under way is abandoned.
    pub shutdown: tokio_util::sync::CancellationToken,
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
    /// Consecutive answers whose map version was ahead of ours.
    behind: u32,
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
            behind: 0,
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
        Ok(ack) => {
            state.misses = 0;
            a.contact.touch();
            // The primary's map is newer: owners may have changed, so this target acts as
            // none until it has that map. The primary pushes it on a stale heartbeat; when
            // that push still has not come by the next answer (the primary cannot reach this
            // node), this node fetches everything by rejoining.
            if let Some(s) = &a.store {
                s.map_seen.fetch_max(ack.smap_version, Ordering::Relaxed);
            }
            let mine = a.meta.get().smap.as_ref().map_or(0, |s| s.version);
            state.behind = if ack.smap_version > mine {
                state.behind + 1
            } else {
                0
            };
            if state.behind >= 2 {
                state.behind = 0;
                tracing::warn!(
                    mine,
                    primary = ack.smap_version,
                    "the primary's map did not reach this node: rejoining to fetch it"
                );
                rejoin(state, false);
            }
        }
        Err(_) if state.suspended => {}
        // Removed from the map while silent: this node owns nothing until it is back in
        // (the primary rebalances then).
        Err(Error::NotFound(_)) => rejoin(state, true),
        Err(e) => {
            let retries = a.meta.get().config.keepalive.num_retries.max(1);
            let was_lost = state.misses >= retries;
            // A refused connection means no process listens at the primary's address any more
            // (killed, crashed): waiting out `num_retries` intervals only delays the failover
            // (scale-benchmarks finding 2). A timeout may be a slow primary: one miss each.
            state.misses = if refused(&e) {
                (state.misses + 1).max(retries)
            } else {
                state.misses + 1
            };
            if state.misses >= retries && !was_lost {
                tracing::warn!(error = %e, "primary unreachable");
            }
            if state.misses < retries || state.acting.swap(true, Ordering::AcqRel) {
                return;
            }
            let (meta, pool, me, contact) = (
                a.meta.clone(),
                a.pool.clone(),
                a.me.clone(),
                a.contact.clone(),
            );
            let flag = state.acting.clone();
            if me.role == Role::Proxy {
                tokio::spawn(async move {
                    super::election::on_primary_lost(&meta, &pool, &me, &contact).await;
                    flag.store(false, Ordering::Release);
                });
            } else if let Some(ask) = target_asks(&me, state.misses - retries) {
                // A target cannot be elected: the new primary's announcement (retried until
                // taken) brings it the new map. Asking every proxy on every tick as well made
                // the proxies answer N maps a second in the middle of their election (finding
                // 1); a target only asks one proxy now and then, in case it was missed.
                tokio::spawn(async move {
                    super::election::ask_one_proxy(&meta, &pool, &me, ask).await;
                    flag.store(false, Ordering::Release);
                });
            } else {
                flag.store(false, Ordering::Release);
            }
        }
    }
}

/// Joins again, unless a rejoin or an election is in flight. A node `removed` from the map
/// acts as no object's owner until the join is answered.
fn rejoin(state: &mut KeepaliveState, removed: bool) {
    if state.acting.swap(true, Ordering::AcqRel) {
        return;
    }
    let a = &state.args;
    let store = a.store.clone();
    if removed && let Some(s) = &store {
        s.joined.send_replace(false);
    }
    let (meta, pool, me, join) = (a.meta.clone(), a.pool.clone(), a.me.clone(), a.join.clone());
    let interrupted = a.data_dir.join(super::rebalance::MARKER).exists();
    let flag = state.acting.clone();
    let stop = a.shutdown.clone();
    tokio::spawn(async move {
        match super::join_cluster(&meta, &pool, &me, join.as_deref(), interrupted, &stop).await {
            Ok(()) => {
                if let Some(s) = &store {
                    s.joined.send_replace(true);
                }
            }
            Err(e) => tracing::warn!(error = %e, "rejoin failed"),
        }
        flag.store(false, Ordering::Release);
    });
}

/// Whether a connection to the primary was refused (nothing listens there).
fn refused(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// Whether a target that lost the primary `since` ticks ago asks a proxy for a newer map now,
/// and which ask this is: first after 4 to 7 ticks (spread by node, so that targets do not all
/// ask at once), then at doubling intervals, at most every 64 ticks.
fn target_asks(me: &Node, since: u32) -> Option<u32> {
    let first = 4 + (me.id_digest % 4) as u32;
    let k = since.checked_sub(first)?;
    if k >= 64 {
        return (k % 64 == 0).then_some(6 + k / 64);
    }
    (k == 0 || k.is_power_of_two()).then(|| if k == 0 { 0 } else { k.trailing_zeros() + 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::smap::NodeId;

    #[test]
    fn a_refused_connection_is_a_lost_primary_a_timeout_is_one_miss() {
        let io = |k| Error::Io(std::io::Error::new(k, "x"));
        assert!(refused(&io(std::io::ErrorKind::ConnectionRefused)));
        assert!(!refused(&io(std::io::ErrorKind::ConnectionReset)));
        assert!(!refused(&Error::Timeout("slow".into())));
    }

    #[test]
    fn a_target_asks_a_proxy_rarely_and_ever_less_often() {
        let me = Node::new(NodeId("abcdt9000".into()), Role::Target, "a".into());
        let asks: Vec<u32> = (0..400)
            .filter(|t| target_asks(&me, *t).is_some())
            .collect();
        let first = asks[0];
        assert!((4..8).contains(&first), "{asks:?}");
        // Doubling gaps up to 64 ticks, then every 64.
        let gaps: Vec<u32> = asks.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
        assert!(gaps.iter().all(|g| *g <= 64), "{gaps:?}");
        assert_eq!(asks.len(), 13, "{asks:?}");
        // Each ask has its own number (the proxy asked rotates with it).
        let nums: Vec<u32> = asks.iter().map(|t| target_asks(&me, *t).unwrap()).collect();
        assert!(nums.windows(2).all(|w| w[1] > w[0]), "{nums:?}");
    }
}
