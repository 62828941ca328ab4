//! The node actor: the root of a node's supervision tree (DESIGN §2).
//!
//! It starts every child under the name `<node-id>/<child>`, restarts a child that fails with
//! back-off (the child rebuilds its state from disk and the cluster map), counts restarts for
//! `show cluster`, and gives up past a limit: a mountpath is then disabled, any other child
//! stops the node with the reason logged (a primary that cannot run any more thus leaves the
//! cluster to elect another). It also follows the map: it starts the primary child when the map
//! names this node primary and stops it when it no longer does, and drops the data of buckets
//! the cluster destroyed. And it carries out the final steps of lifecycle operations.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::{Kit, names};
use crate::types::lifecycle::NodeAction;
use crate::types::smap::Role;

/// Failures of one child within [`FAILURE_WINDOW`] after which it is not restarted again.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A supervised child of the node actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Child {
    Meta,
    Server,
    Stats,
    Keepalive,
    Primary,
    Rebalance,
    Mountpath(usize),
}

impl Child {
    /// The label in names, logs and restart counts.
    pub fn label(self) -> String {
        match self {
            Child::Meta => "meta".into(),
            Child::Server => "server".into(),
            Child::Stats => "stats".into(),
            Child::Keepalive => "keepalive".into(),
            Child::Primary => "primary".into(),
            Child::Rebalance => "rebalance".into(),
            Child::Mountpath(i) => format!("mp{i}"),
        }
    }

    fn from_label(s: &str) -> Option<Child> {
        Some(match s {
            "meta" => Child::Meta,
            "server" => Child::Server,
            "stats" => Child::Stats,
            "keepalive" => Child::Keepalive,
            "primary" => Child::Primary,
            "rebalance" => Child::Rebalance,
            mp => Child::Mountpath(mp.strip_prefix("mp")?.parse().ok()?),
        })
    }
}

pub struct NodeActor;

pub enum NodeMsg {
    /// The metadata changed: follow the primary role, drop destroyed buckets.
    MetaChanged,
    /// Restart a child after its back-off.
    Restart(Child),
    /// Final step of a lifecycle operation, sent by the primary.
    Action(NodeAction),
    /// The target's mountpaths changed: start the actors of new or re-enabled ones.
    MountpathsChanged,
    /// Stop the node (SIGTERM, tests).
    Stop,
}

pub struct NodeState {
    kit: Arc<Kit>,
    children: HashMap<Child, ActorCell>,
    /// Recent failure times per child, for back-off and giving up.
    failures: HashMap<Child, VecDeque<Instant>>,
    /// Children given up on (not restarted again).
    given_up: Vec<Child>,
    /// The BMD version whose destroyed buckets were dropped.
    bmd_seen: u64,
}

impl Actor for NodeActor {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = Kit;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        kit: Kit,
    ) -> Result<Self::State, ActorProcessingErr> {
        let kit = Arc::new(kit);
        let mut state = NodeState {
            kit: kit.clone(),
            children: HashMap::new(),
            failures: HashMap::new(),
            given_up: Vec::new(),
            bmd_seen: 0,
        };
        // The writer and the server first: nothing works without them, so a failure here fails
        // the start.
        for c in [Child::Meta, Child::Server] {
            let cell = spawn_child(&kit, c, myself.get_cell()).await?;
            state.children.insert(c, cell);
        }
        let mut rest = vec![Child::Stats, Child::Keepalive];
        if let Some(store) = &kit.store {
            rest.extend(
                store
                    .mps
                    .all()
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.state() != crate::store::MpState::Detached)
                    .map(|(i, _)| Child::Mountpath(i)),
            );
            rest.push(Child::Rebalance);
        }
        for c in rest {
            start_or_retry(&myself, &mut state, c).await;
        }
        if let Some(store) = &kit.store {
            let mut rx = store.mps.subscribe();
            let (me, stop) = (myself.clone(), kit.shutdown.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        r = rx.changed() => if r.is_err() || me.cast(NodeMsg::MountpathsChanged).is_err() {
                            return;
                        },
                    }
                }
            });
        }
        // Follow the metadata: a forwarding task wakes this actor on every change.
        let mut rx = kit.meta.subscribe();
        let me = myself.clone();
        let stop = kit.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = rx.changed() => if r.is_err() || me.cast(NodeMsg::MetaChanged).is_err() {
                        return;
                    },
                }
            }
        });
        follow_meta(&myself, &mut state).await;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeMsg::MetaChanged => follow_meta(&myself, state).await,
            NodeMsg::Restart(c) => {
                if state.kit.shutdown.is_cancelled() || state.children.contains_key(&c) {
                    return Ok(());
                }
                // The primary is restarted only while the map still names this node primary.
                if c == Child::Primary && !state.kit.meta.get().is_primary(&state.kit.me.id) {
                    return Ok(());
                }
                let n = state.kit.restarts.bump(&c.label());
                tracing::warn!(child = %c.label(), restarts = n, "restarting child");
                start_or_retry(&myself, state, c).await;
            }
            NodeMsg::Action(action) => {
                tracing::info!(?action, "lifecycle action from primary");
                match action {
                    NodeAction::StopKeepalive => {}
                    NodeAction::Shutdown => {
                        request_exit(&state.kit, "shutdown by the cluster", false);
                        stop_node(&myself, state).await;
                    }
                    NodeAction::Decommission { rm_user_data } => {
                        stop_child(state, Child::Rebalance).await;
                        if let Err(e) = decommission_wipe(&state.kit, rm_user_data).await {
                            tracing::error!(error = %e, "decommission cleanup failed");
                        }
                        request_exit(&state.kit, "decommissioned", false);
                        stop_node(&myself, state).await;
                    }
                }
            }
            NodeMsg::MountpathsChanged => follow_mountpaths(&myself, state).await,
            NodeMsg::Stop => stop_node(&myself, state).await,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The default would stop the node when any child ends: decide per child instead.
        let (cell, why) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let Some(c) = child_of(&cell) else {
                    return Ok(());
                };
                // Children end on their own only when told to (or the node stops).
                if state
                    .children
                    .get(&c)
                    .is_none_or(|x| x.get_id() != cell.get_id())
                {
                    return Ok(());
                }
                // The actor of a detached mountpath ends with it.
                if matches!(c, Child::Mountpath(_))
                    && reason.as_deref() == Some(super::mountpath::DETACHED)
                {
                    state.children.remove(&c);
                    return Ok(());
                }
                (cell, format!("stopped: {}", reason.unwrap_or_default()))
            }
            _ => return Ok(()),
        };
        let Some(c) = child_of(&cell) else {
            return Ok(());
        };
        if state
            .children
            .get(&c)
            .is_some_and(|x| x.get_id() == cell.get_id())
        {
            state.children.remove(&c);
        }
        if state.kit.shutdown.is_cancelled() {
            return Ok(());
        }
        tracing::error!(child = %c.label(), %why, "child actor ended unexpectedly");
        on_failure(&myself, state, c);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.kit.shutdown.cancel();
        Ok(())
    }
}

fn child_of(cell: &ActorCell) -> Option<Child> {
    let name = cell.get_name()?;
    Child::from_label(name.rsplit('/').next()?)
}

/// Records a failure of `c` and schedules its restart, or gives up on it.
fn on_failure(myself: &ActorRef<NodeMsg>, state: &mut NodeState, c: Child) {
    let now = Instant::now();
    let recent = state.failures.entry(c).or_default();
    recent.push_back(now);
    while recent
        .front()
        .is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW)
    {
        recent.pop_front();
    }
    let n = recent.len();
    if n > MAX_FAILURES {
        give_up(myself, state, c, n);
        return;
    }
    let backoff = (FIRST_BACKOFF * 2u32.pow((n as u32).saturating_sub(1))).min(MAX_BACKOFF);
    myself.send_after(backoff, move || NodeMsg::Restart(c));
}

fn give_up(myself: &ActorRef<NodeMsg>, state: &mut NodeState, c: Child, failures: usize) {
    state.given_up.push(c);
    match c {
        Child::Mountpath(i) => {
            if let Some(store) = state.kit.store.as_ref()
                && let Some(mp) = store.mps.get(i)
            {
                tracing::error!(mountpath = %mp.path.display(), failures, "mountpath actor keeps failing: mountpath failed");
                let why = format!("its actor failed {failures} times within {FAILURE_WINDOW:?}");
                let _ = store
                    .mps
                    .set_state(i, crate::store::MpState::Failed, Some(why), false);
            }
        }
        _ => {
            let why = format!(
                "{} failed {failures} times within {FAILURE_WINDOW:?}: stopping the node",
                c.label()
            );
            tracing::error!(child = %c.label(), "{why}");
            request_exit(&state.kit, &why, true);
            let _ = myself.cast(NodeMsg::Stop);
        }
    }
}

/// Starts `c`; a failure to start counts as a failure of the child (back-off, limit).
async fn start_or_retry(myself: &ActorRef<NodeMsg>, state: &mut NodeState, c: Child) {
    if state.given_up.contains(&c) {
        return;
    }
    match spawn_child(&state.kit, c, myself.get_cell()).await {
        Ok(cell) => {
            state.children.insert(c, cell);
        }
        Err(e) => {
            tracing::error!(child = %c.label(), error = %e, "child failed to start");
            on_failure(myself, state, c);
        }
    }
}

/// Builds child `c` from the kit: each gets only what it uses.
async fn spawn_child(
    kit: &Arc<Kit>,
    c: Child,
    sup: ActorCell,
) -> Result<ActorCell, ActorProcessingErr> {
    let id = &kit.me.id;
    let name = Some(names::name(id, &c.label()));
    let cell = match c {
        Child::Meta => {
            let args = super::meta::MetaArgs {
                data_dir: kit.data_dir.clone(),
                started: kit.started,
                tx: kit.meta_tx.clone(),
                me: kit.me.id.clone(),
                store: kit.store.clone(),
            };
            Actor::spawn_linked(name, super::meta::MetaActor, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Server => {
            let node = names::node(id);
            let on_action: super::dispatch::ActionSink = Arc::new(move |a| {
                if let Some(n) = names::lookup::<NodeMsg>(&node) {
                    let _ = n.cast(NodeMsg::Action(a));
                }
            });
            let args = super::server::ServerArgs {
                listener: kit.listener.clone(),
                http: kit.http.clone(),
                router: Arc::new(super::dispatch::Router::new(kit, on_action)),
                shutdown: kit.shutdown.clone(),
            };
            Actor::spawn_linked(name, super::server::ServerActor, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Stats => {
            let mountpaths: super::stats::Dirs = match &kit.store {
                Some(s) => {
                    let s = s.clone();
                    Box::new(move || {
                        s.mps
                            .all()
                            .iter()
                            .filter(|m| m.state() != crate::store::MpState::Detached)
                            .map(|m| m.path.clone())
                            .collect()
                    })
                }
                None => {
                    let d = kit.data_dir.clone();
                    Box::new(move || vec![d.clone()])
                }
            };
            let args = super::stats::StatsArgs { mountpaths };
            Actor::spawn_linked(name, super::stats::StatsActor, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Keepalive => {
            let args = super::keepalive::KeepaliveArgs {
                me: kit.me.clone(),
                meta: kit.meta.clone(),
                pool: kit.pool.clone(),
                contact: kit.contact.clone(),
                join: kit.args.join.clone(),
                data_dir: kit.data_dir.clone(),
                store: kit.store.clone(),
                shutdown: kit.shutdown.clone(),
            };
            Actor::spawn_linked(name, super::keepalive::KeepaliveActor, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Primary => {
            let args = super::primary::PrimaryArgs {
                me: kit.me.clone(),
                meta: kit.meta.clone(),
                pool: kit.pool.clone(),
                secret: kit.secret.clone(),
                checked: kit.primary_checked.clone(),
            };
            Actor::spawn_linked(name, super::primary::PrimaryActor, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Rebalance => {
            let args = super::rebalance::RebArgs {
                me: kit.me.id.clone(),
                meta: kit.meta.clone(),
                pool: kit.pool.clone(),
                store: kit.store.clone().expect("targets only"),
                data_dir: kit.data_dir.clone(),
                rmd_at_start: kit.rmd_at_start,
                restarts: kit.restarts.clone(),
                shutdown: kit.shutdown.clone(),
            };
            Actor::spawn_linked(name, super::rebalance::RebalanceActor, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Mountpath(index) => {
            let args = super::mountpath::MountpathArgs {
                index,
                store: kit.store.clone().expect("targets only"),
                meta: kit.meta.clone(),
            };
            Actor::spawn_linked(name, super::mountpath::MountpathActor, args, sup)
                .await?
                .0
                .get_cell()
        }
    };
    Ok(cell)
}

/// Follows the map: the primary child runs exactly while the map names this node primary; the
/// objects of destroyed buckets go.
async fn follow_meta(myself: &ActorRef<NodeMsg>, state: &mut NodeState) {
    let meta = state.kit.meta.get();
    let primary = meta.is_primary(&state.kit.me.id);
    let running = state.children.contains_key(&Child::Primary);
    if primary && !running && state.kit.me.role == Role::Proxy && !state.kit.shutdown.is_cancelled()
    {
        start_or_retry(myself, state, Child::Primary).await;
    } else if !primary && running {
        tracing::warn!("another proxy is primary now: stepping down");
        stop_child(state, Child::Primary).await;
    }
    if let Some(store) = &state.kit.store
        && meta.bmd.version > state.bmd_seen
        && meta.bmd.version > 0
    {
        state.bmd_seen = meta.bmd.version;
        let (store, known) = (store.clone(), meta.bmd.buckets.clone());
        tokio::spawn(async move { store.drop_unknown_buckets(&known).await });
    }
}

/// Every mountpath that is in use (not detached, not failed) has a running actor: one attached
/// or enabled again by an operator gets one (even if its old actor had been given up on).
async fn follow_mountpaths(myself: &ActorRef<NodeMsg>, state: &mut NodeState) {
    let Some(store) = state.kit.store.clone() else {
        return;
    };
    for (i, m) in store.mps.all().iter().enumerate() {
        use crate::store::MpState;
        let c = Child::Mountpath(i);
        if matches!(m.state(), MpState::Detached | MpState::Failed)
            || state.children.contains_key(&c)
            || state.kit.shutdown.is_cancelled()
        {
            continue;
        }
        state.given_up.retain(|g| *g != c);
        state.failures.remove(&c);
        start_or_retry(myself, state, c).await;
    }
}

/// Stops a child on purpose (not a failure) and waits for it.
async fn stop_child(state: &mut NodeState, c: Child) {
    if let Some(cell) = state.children.remove(&c) {
        cell.stop_and_wait(
            Some("stopped by the node".into()),
            Some(Duration::from_secs(10)),
        )
        .await
        .ok();
    }
}

/// Stops every child (the rebalance first, so its senders stop before the server), then
/// this actor.
async fn stop_node(myself: &ActorRef<NodeMsg>, state: &mut NodeState) {
    state.kit.shutdown.cancel();
    for c in [Child::Rebalance, Child::Primary, Child::Keepalive] {
        stop_child(state, c).await;
    }
    let rest: Vec<Child> = state.children.keys().copied().collect();
    for c in rest {
        stop_child(state, c).await;
    }
    myself.stop(Some("node stopped".into()));
}

fn request_exit(kit: &Kit, why: &str, failure: bool) {
    let mut r = kit.exit_reason.lock().expect("poisoned");
    if r.is_none() {
        *r = Some(super::Exit {
            reason: why.to_string(),
            failure,
        });
    }
}

/// Decommission: remove cluster metadata (and objects with `rm_user_data`) so the node cannot
/// come back without a fresh join.
async fn decommission_wipe(kit: &Kit, rm_user_data: bool) -> crate::error::Result<()> {
    if let Some(w) = names::lookup::<super::meta::MetaMsg>(&names::meta(&kit.me.id)) {
        ractor::call_t!(w, super::meta::MetaMsg::Wipe, 10_000)
            .map_err(|e| crate::error::Error::Unavailable(format!("metadata writer: {e}")))??;
    }
    for p in [
        kit.data_dir.join("node.id"),
        kit.data_dir.join(super::rebalance::MARKER),
        kit.data_dir.join(super::rebalance::DONE),
    ] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    if rm_user_data && let Some(s) = &kit.store {
        for mp in s.mps.all() {
            let _ = std::fs::remove_dir_all(mp.path.join("objs"));
            let _ = std::fs::remove_dir_all(crate::store::object::tmp_dir(&mp.path));
        }
    }
    tracing::info!(rm_user_data, "node metadata wiped (decommissioned)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_labels_round_trip() {
        for c in [
            Child::Meta,
            Child::Server,
            Child::Stats,
            Child::Keepalive,
            Child::Primary,
            Child::Rebalance,
            Child::Mountpath(3),
        ] {
            assert_eq!(Child::from_label(&c.label()), Some(c));
        }
        assert_eq!(Child::from_label("mpx"), None);
        assert_eq!(Child::from_label("jogger"), None);
    }
}
