//! The node (DESIGN §2): a [`NodeActor`] that owns this node's view of the cluster metadata and
//! supervises the listener, keepalive and stats actors, and per role the primary actor (proxy)
//! or the mountpath and rebalance actors (target).
//!
//! Connection tasks read the current metadata from a `watch` channel without going through the
//! actor; every change goes through the actor, so there is one writer.

mod handler;
pub mod listener;
pub mod peers;
pub mod primary;
pub mod target;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::keepalive::{KeepaliveActor, KeepaliveArgs};
use crate::lifecycle::NodeAction;
use crate::smap::{Bmd, Flags, Node, NodeId, Rmd, Role, Smap};
use crate::stats::{StatsActor, StatsArgs, StatsMsg};
use crate::store;
use crate::wire::Msg;

pub use peers::PeerPool;

/// What `noded` is started with.
#[derive(Clone, Debug)]
pub struct NodeArgs {
    pub role: Role,
    /// `host:port`; port 0 picks a free one (tests).
    pub listen: String,
    pub data_dir: PathBuf,
    /// Target mountpaths; default `<data-dir>/mp0`.
    pub mountpaths: Vec<PathBuf>,
    /// Bootstrap a new cluster with this proxy as primary (when no map is persisted).
    pub primary: bool,
    /// Where to join (the primary, or any proxy that forwards).
    pub join: Option<String>,
    /// Wait for an admin join instead of joining at start.
    pub standby: bool,
    pub non_electable: bool,
    /// Cluster config used when bootstrapping.
    pub cluster: ClusterConfig,
}

/// A node's view of cluster metadata.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// `None` until the node has joined (standby, or before the first join answer).
    pub smap: Option<Smap>,
    pub rmd: Rmd,
    pub bmd: Bmd,
    pub config: ClusterConfig,
}

impl Meta {
    pub fn primary_addr(&self) -> Option<String> {
        let s = self.smap.as_ref()?;
        s.primary_node().map(|n| n.addr.clone())
    }
}

/// State shared by every task and actor of one node.
pub struct Ctx {
    pub me: Node,
    pub data_dir: PathBuf,
    pub meta: watch::Sender<Arc<Meta>>,
    /// Serialises metadata writers (the node actor, and handlers before it exists).
    apply_lock: Mutex<()>,
    pub pool: PeerPool,
    /// Cancelled when the node stops; every task watches it.
    pub shutdown: CancellationToken,
    /// Set when the process should exit after stopping (shutdown, decommission).
    pub exit_reason: Mutex<Option<String>>,
    pub target: Option<target::TargetCtx>,
    pub primary: Mutex<Option<ActorRef<primary::PrimaryMsg>>>,
    pub stats: Mutex<Option<ActorRef<StatsMsg>>>,
    pub node: Mutex<Option<ActorRef<NodeMsg>>>,
    pub started: std::time::Instant,
    /// Last time the primary answered us or pushed to us (elections need silence first).
    pub last_primary_contact: Mutex<std::time::Instant>,
    /// An election is running on this node.
    pub electing: std::sync::atomic::AtomicBool,
    /// Set by `remove-from-smap`: the node stays up but silent, and does not rejoin on its own.
    pub keepalive_suspended: std::sync::atomic::AtomicBool,
    /// RMD version persisted before this start: a newer one learned while joining means a
    /// generation to run as soon as the actors are up.
    pub rmd_at_start: u64,
    pub args: NodeArgs,
}

impl Ctx {
    pub fn meta(&self) -> Arc<Meta> {
        self.meta.borrow().clone()
    }

    pub fn id(&self) -> &NodeId {
        &self.me.id
    }

    pub fn is_primary(&self) -> bool {
        self.meta()
            .smap
            .as_ref()
            .is_some_and(|s| s.primary == self.me.id)
    }

    /// A request to another node over the pool.
    pub async fn call(&self, addr: &str, msg: Msg, timeout: Duration) -> Result<Msg> {
        self.pool.call(addr, msg, timeout).await
    }

    pub fn primary_contact(&self) {
        *self.last_primary_contact.lock().expect("poisoned") = std::time::Instant::now();
    }

    pub fn since_primary_contact(&self) -> Duration {
        self.last_primary_contact
            .lock()
            .expect("poisoned")
            .elapsed()
    }

    pub fn primary_ref(&self) -> Option<ActorRef<primary::PrimaryMsg>> {
        self.primary.lock().expect("poisoned").clone()
    }

    pub fn node_ref(&self) -> Option<ActorRef<NodeMsg>> {
        self.node.lock().expect("poisoned").clone()
    }

    /// My flags in the current map.
    pub fn my_flags(&self) -> Flags {
        self.meta()
            .smap
            .as_ref()
            .and_then(|s| s.get(&self.me.id).map(|n| n.flags))
            .unwrap_or_default()
    }

    fn smap_path(&self) -> PathBuf {
        self.data_dir.join("smap.msgpack")
    }
    fn rmd_path(&self) -> PathBuf {
        self.data_dir.join("rmd.msgpack")
    }
    fn bmd_path(&self) -> PathBuf {
        self.data_dir.join("bmd.msgpack")
    }
    fn config_path(&self) -> PathBuf {
        self.data_dir.join("config.msgpack")
    }

    /// Applies metadata parts (each checked against its own version), persisting first.
    /// Returns what changed so callers can act on it.
    pub fn apply(
        &self,
        smap: Option<Smap>,
        rmd: Option<Rmd>,
        bmd: Option<Bmd>,
        config: Option<ClusterConfig>,
    ) -> Result<Applied> {
        let _writer = self.apply_lock.lock().expect("poisoned");
        let cur = self.meta();
        let mut next = (*cur).clone();
        let mut applied = Applied::default();
        // A lower map is refused, but the other parts are still taken (they carry their own
        // versions); the refusal is reported once they are stored.
        let mut refused = None;
        if let Some(s) = smap {
            match Smap::check_update(cur.smap.as_ref(), &s) {
                Ok(true) => {
                    store::persist(&self.smap_path(), &s)?;
                    next.smap = Some(s);
                    applied.smap = true;
                }
                Ok(false) => {}
                Err(e @ Error::Downgrade { .. }) => refused = Some(e),
                Err(e) => return Err(e),
            }
        }
        if let Some(r) = rmd
            && r.version > cur.rmd.version
        {
            store::persist(&self.rmd_path(), &r)?;
            next.rmd = r;
            applied.rmd = true;
        }
        // Test hook: a joiner that learns of buckets late (see `fault::hold_bmd`).
        let bmd = bmd.filter(|_| !crate::fault::hold_bmd(self.started));
        if let Some(b) = bmd
            && b.version > cur.bmd.version
        {
            store::persist(&self.bmd_path(), &b)?;
            applied.removed_buckets = cur.bmd.buckets.difference(&b.buckets).cloned().collect();
            next.bmd = b;
            applied.bmd = true;
        }
        if let Some(c) = config
            && c.version > cur.config.version
        {
            store::persist(&self.config_path(), &c)?;
            self.pool
                .set_secret(c.auth.enabled.then(|| c.auth.secret.clone()));
            next.config = c;
            applied.config = true;
        }
        if applied.any() {
            self.meta.send_replace(Arc::new(next));
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(applied),
        }
    }
}

#[derive(Debug, Default)]
pub struct Applied {
    pub smap: bool,
    pub rmd: bool,
    pub bmd: bool,
    pub config: bool,
    pub removed_buckets: Vec<String>,
}

impl Applied {
    fn any(&self) -> bool {
        self.smap || self.rmd || self.bmd || self.config
    }
}

// ---------------------------------------------------------------------------------------------
// NodeActor
// ---------------------------------------------------------------------------------------------

pub struct NodeActor;

pub enum NodeMsg {
    /// Metadata pushed by the primary (or received in a join answer).
    Metasync {
        smap: Option<Box<Smap>>,
        rmd: Option<Rmd>,
        bmd: Option<Bmd>,
        config: Option<Box<ClusterConfig>>,
        reply: Option<RpcReplyPort<Result<(), String>>>,
    },
    /// Final step of a lifecycle operation, sent by the primary.
    Action(NodeAction),
    /// Metadata changed without passing through this actor (stored while it was starting):
    /// react to the current metadata as at start.
    Refresh,
    /// Stop the node (SIGTERM, tests).
    Stop,
}

pub struct NodeState {
    ctx: Arc<Ctx>,
    /// Restart counts per child kind, for back-off and giving up.
    restarts: std::collections::HashMap<String, u32>,
}

impl Actor for NodeActor {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        ctx: Arc<Ctx>,
    ) -> Result<Self::State, ActorProcessingErr> {
        *ctx.node.lock().expect("poisoned") = Some(myself.clone());
        let mountpaths = ctx
            .target
            .as_ref()
            .map(|t| t.mountpaths.iter().map(|m| m.path.clone()).collect())
            .unwrap_or_else(|| vec![ctx.data_dir.clone()]);
        let (stats, _) = Actor::spawn_linked(
            None,
            StatsActor,
            StatsArgs { mountpaths },
            myself.get_cell(),
        )
        .await?;
        *ctx.stats.lock().expect("poisoned") = Some(stats);
        Actor::spawn_linked(
            None,
            KeepaliveActor,
            KeepaliveArgs { ctx: ctx.clone() },
            myself.get_cell(),
        )
        .await?;
        if let Some(t) = &ctx.target {
            t.start(&ctx, myself.get_cell()).await?;
        }
        react_to_meta(&ctx, &myself, ctx.meta().rmd.version > ctx.rmd_at_start).await?;
        Ok(NodeState {
            ctx,
            restarts: Default::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let ctx = state.ctx.clone();
        match msg {
            NodeMsg::Metasync {
                smap,
                rmd,
                bmd,
                config,
                reply,
            } => {
                let res = ctx.apply(smap.map(|s| *s), rmd, bmd, config.map(|c| *c));
                let out = match res {
                    Ok(applied) => {
                        after_apply(&ctx, &applied, &myself).await;
                        Ok(())
                    }
                    Err(e) => {
                        if matches!(e, Error::ClusterIntegrity(_)) {
                            tracing::error!(error = %e, "refusing metadata from another cluster");
                        } else {
                            tracing::warn!(error = %e, "metasync refused");
                        }
                        Err(e.to_wire().message)
                    }
                };
                if let Some(r) = reply {
                    let _ = r.send(out);
                }
            }
            NodeMsg::Action(action) => {
                tracing::info!(?action, "lifecycle action from primary");
                match action {
                    NodeAction::StopKeepalive => {
                        ctx.keepalive_suspended
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        if let Some(t) = &ctx.target {
                            t.stop_rebalance().await;
                        }
                    }
                    NodeAction::Shutdown => {
                        request_exit(&ctx, "shutdown by the cluster");
                        myself.stop(Some("shutdown".into()));
                    }
                    NodeAction::Decommission { rm_user_data } => {
                        if let Some(t) = &ctx.target {
                            t.stop_rebalance().await;
                        }
                        if let Err(e) = decommission_wipe(&ctx, rm_user_data) {
                            tracing::error!(error = %e, "decommission cleanup failed");
                        }
                        request_exit(&ctx, "decommissioned");
                        myself.stop(Some("decommission".into()));
                    }
                }
            }
            NodeMsg::Refresh => {
                let new_generation = ctx.meta().rmd.version > ctx.rmd_at_start;
                if let Err(e) = react_to_meta(&ctx, &myself, new_generation).await {
                    tracing::error!(error = %e, "cannot start the primary actor");
                }
            }
            NodeMsg::Stop => {
                if let Some(t) = &ctx.target {
                    t.stop_rebalance().await;
                }
                myself.stop(Some("stop".into()));
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
        // The default would stop the node when any child ends: decide per child instead.
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                let name = cell.get_name().unwrap_or_else(|| cell.get_id().to_string());
                let n = state.restarts.entry(name.clone()).or_default();
                *n += 1;
                tracing::error!(child = %name, restarts = *n, error = %err, "child actor failed");
                if state.ctx.shutdown.is_cancelled() {
                    return Ok(());
                }
                if *n > 5 {
                    tracing::error!(child = %name, "child keeps failing; stopping the node");
                    myself.stop(Some(format!("{name} failed repeatedly")));
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                tracing::debug!(child = ?cell.get_name(), ?reason, "child stopped");
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.ctx.shutdown.cancel();
        Ok(())
    }
}

/// What a starting node does with the metadata it has: drop buckets destroyed while it was
/// away, run the current rebalance generation (`new_generation`: one it has not run yet), and
/// start the primary actor if the map names it. Idempotent.
async fn react_to_meta(
    ctx: &Arc<Ctx>,
    myself: &ActorRef<NodeMsg>,
    new_generation: bool,
) -> Result<(), ActorProcessingErr> {
    if let Some(t) = &ctx.target {
        let bmd = ctx.meta().bmd.clone();
        if bmd.version > 0 {
            t.drop_unknown_buckets(&bmd.buckets).await;
        }
        if new_generation {
            t.on_meta(ctx).await;
        }
    }
    if ctx.is_primary() && ctx.primary_ref().is_none() {
        primary::start(ctx, myself.get_cell()).await?;
    }
    Ok(())
}

async fn after_apply(ctx: &Arc<Ctx>, applied: &Applied, _myself: &ActorRef<NodeMsg>) {
    let meta = ctx.meta();
    if let Some(t) = &ctx.target {
        for b in &applied.removed_buckets {
            t.remove_bucket(b).await;
        }
        if applied.rmd || applied.smap {
            t.on_meta(ctx).await;
        }
    }
    // A primary that learns of a newer map naming someone else steps down.
    if applied.smap
        && meta.smap.as_ref().is_some_and(|s| s.primary != ctx.me.id)
        && let Some(p) = ctx.primary.lock().expect("poisoned").take()
    {
        tracing::warn!("another proxy is primary now: stepping down");
        p.stop(Some("no longer primary".into()));
    }
    // A proxy that finds itself primary in a new map starts the primary actor (election).
    if applied.smap
        && meta.smap.as_ref().is_some_and(|s| s.primary == ctx.me.id)
        && ctx.primary_ref().is_none()
        && let Some(node) = ctx.node_ref()
        && let Err(e) = primary::start(ctx, node.get_cell()).await
    {
        tracing::error!(error = %e, "cannot start the primary actor");
    }
}

fn request_exit(ctx: &Ctx, why: &str) {
    *ctx.exit_reason.lock().expect("poisoned") = Some(why.to_string());
}

/// Decommission: remove cluster metadata (and objects with `rm_user_data`) so the node cannot
/// come back without a fresh join.
fn decommission_wipe(ctx: &Ctx, rm_user_data: bool) -> Result<()> {
    for p in [
        ctx.smap_path(),
        ctx.rmd_path(),
        ctx.bmd_path(),
        ctx.config_path(),
        ctx.data_dir.join("node.id"),
        ctx.data_dir.join(crate::rebalance::MARKER),
    ] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    if rm_user_data && let Some(t) = &ctx.target {
        for mp in &t.mountpaths {
            let _ = std::fs::remove_dir_all(mp.path.join("objs"));
            let _ = std::fs::remove_dir_all(store::tmp_dir(&mp.path));
        }
    }
    tracing::info!(rm_user_data, "node metadata wiped (decommissioned)");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Starting a node
// ---------------------------------------------------------------------------------------------

/// A running node.
pub struct NodeHandle {
    pub id: NodeId,
    pub addr: String,
    pub ctx: Arc<Ctx>,
    actor: ActorRef<NodeMsg>,
    join: tokio::task::JoinHandle<()>,
}

impl NodeHandle {
    /// Stops gracefully and waits.
    pub async fn stop(self) {
        let _ = self.actor.cast(NodeMsg::Stop);
        self.wait().await;
    }

    /// Waits until the node stops on its own (shutdown/decommission) or is stopped; returns
    /// why it stopped, if it was asked to exit.
    pub async fn wait(self) -> Option<String> {
        let _ = self.join.await;
        self.ctx.shutdown.cancel();
        self.ctx.exit_reason.lock().expect("poisoned").clone()
    }

    pub fn actor(&self) -> ActorRef<NodeMsg> {
        self.actor.clone()
    }
}

/// Loads or creates this node's persistent ID.
fn node_id(data_dir: &std::path::Path, role: Role, port: u16) -> Result<NodeId> {
    let p = data_dir.join("node.id");
    if let Some(id) = store::load::<NodeId>(&p)? {
        return Ok(id);
    }
    let id = NodeId::generate(role, port);
    store::persist(&p, &id)?;
    Ok(id)
}

/// Starts a node: binds, loads persisted state, joins (or bootstraps), starts the actor tree.
pub async fn start(args: NodeArgs) -> Result<NodeHandle> {
    std::fs::create_dir_all(&args.data_dir)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", args.listen),
            ))
        })?;
    let local = listener.local_addr()?;
    let addr = local.to_string();
    let id = node_id(&args.data_dir, args.role, local.port())?;
    let mut me = Node::new(id.clone(), args.role, addr.clone());
    if args.non_electable {
        me.flags.set(Flags::NON_ELECTABLE);
    }

    let persisted = Meta {
        smap: store::load(&args.data_dir.join("smap.msgpack"))?,
        rmd: store::load(&args.data_dir.join("rmd.msgpack"))?.unwrap_or_default(),
        bmd: store::load(&args.data_dir.join("bmd.msgpack"))?.unwrap_or_default(),
        config: store::load(&args.data_dir.join("config.msgpack"))?
            .unwrap_or_else(|| args.cluster.clone()),
    };
    let target = match args.role {
        Role::Target => Some(target::TargetCtx::open(&args)?),
        Role::Proxy => None,
    };
    let reb_interrupted = target.as_ref().is_some_and(|t| t.interrupted);
    let rmd_at_start = persisted.rmd.version;
    let (meta_tx, _) = watch::channel(Arc::new(persisted));
    let ctx = Arc::new(Ctx {
        me: me.clone(),
        data_dir: args.data_dir.clone(),
        meta: meta_tx,
        apply_lock: Mutex::new(()),
        pool: PeerPool::new(id.clone()),
        shutdown: CancellationToken::new(),
        exit_reason: Mutex::new(None),
        target,
        primary: Mutex::new(None),
        stats: Mutex::new(None),
        node: Mutex::new(None),
        started: std::time::Instant::now(),
        rmd_at_start,
        keepalive_suspended: std::sync::atomic::AtomicBool::new(false),
        last_primary_contact: Mutex::new(std::time::Instant::now()),
        electing: std::sync::atomic::AtomicBool::new(false),
        args: args.clone(),
    });

    {
        let auth = &ctx.meta().config.auth;
        ctx.pool
            .set_secret(auth.enabled.then(|| auth.secret.clone()));
    }

    // Bootstrap, rejoin, or wait (standby).
    let have_smap = ctx.meta().smap.is_some();
    if args.primary && !have_smap {
        let mut cfg = args.cluster.clone();
        cfg.version = cfg.version.max(1);
        cfg.proxy.primary_url = addr.clone();
        cfg.proxy.original_url = addr.clone();
        cfg.proxy.discovery_url = addr.clone();
        let smap = Smap::bootstrap(me.clone());
        let bmd = Bmd {
            version: 1,
            ..Default::default()
        };
        ctx.apply(Some(smap), None, Some(bmd), Some(cfg))?;
        tracing::info!(node = %id, %addr, "bootstrapped a new cluster as primary");
    }

    listener::spawn(ctx.clone(), listener);

    // A returning primary checks that the cluster did not elect another one meanwhile.
    if ctx.is_primary() && !args.standby {
        crate::election::reconcile_at_start(&ctx).await?;
    }
    if !args.standby && !ctx.is_primary() {
        join_cluster(&ctx, reb_interrupted).await?;
    }

    crate::fault::hit("joined");
    if let Some(ms) = crate::fault::value("delay_actor_start_ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let (actor, handle) = Actor::spawn(None, NodeActor, ctx.clone())
        .await
        .map_err(|e| Error::Remote(format!("node actor: {e}")))?;
    let join = tokio::spawn(async move {
        let _ = handle.await;
    });
    tracing::info!(node = %id, role = args.role.as_str(), %addr, "node started");
    Ok(NodeHandle {
        id,
        addr,
        ctx,
        actor,
        join,
    })
}

/// Self-join: try the primary of the persisted map, then the configured join address, then the
/// discovery and original URLs; a refusal for integrity reasons is final.
pub async fn join_cluster(ctx: &Arc<Ctx>, reb_interrupted: bool) -> Result<()> {
    let meta = ctx.meta();
    let mut candidates: Vec<String> = Vec::new();
    if let Some(a) = meta.primary_addr()
        && a != ctx.me.addr
    {
        candidates.push(a);
    }
    if let Some(j) = &ctx.args.join {
        candidates.push(j.clone());
    }
    // The discovery URL may list several proxies (any of them forwards a join to the primary).
    for u in [
        &meta.config.proxy.primary_url,
        &meta.config.proxy.discovery_url,
        &meta.config.proxy.original_url,
    ] {
        for a in u.split(',').map(str::trim) {
            if !a.is_empty() && a != ctx.me.addr && !candidates.iter().any(|c| c == a) {
                candidates.push(a.to_string());
            }
        }
    }
    if candidates.is_empty() {
        return Err(Error::BadRequest(
            "nowhere to join: give --join HOST:PORT (or --primary to bootstrap a cluster)".into(),
        ));
    }
    let mut me = ctx.me.clone();
    // Keep flags from the map we knew (maintenance survives restarts).
    if let Some(n) = meta.smap.as_ref().and_then(|s| s.get(&me.id)) {
        me.flags = n.flags;
    }
    let msg = Msg::Join {
        node: me,
        uuid: meta.smap.as_ref().map(|s| s.uuid.clone()),
        reb_interrupted,
    };
    let mut last_err = None;
    // A few passes over the list: the primary may still be starting.
    for pass in 0..20 {
        for c in &candidates {
            match ctx.call(c, msg.clone(), Duration::from_secs(5)).await {
                Ok(Msg::Joined {
                    smap,
                    rmd,
                    bmd,
                    config,
                }) => {
                    // A newer map may already have been pushed to us meanwhile: fine.
                    match ctx.apply(Some(smap), Some(rmd), Some(bmd), Some(*config)) {
                        Ok(_) | Err(Error::Downgrade { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    tracing::info!(via = %c, "joined the cluster");
                    return Ok(());
                }
                Ok(other) => last_err = Some(crate::client::unexpected(&other)),
                Err(
                    e @ (Error::ClusterIntegrity(_) | Error::BadRequest(_) | Error::NotFound(_)),
                ) => {
                    return Err(e);
                }
                Err(e) => {
                    tracing::debug!(candidate = %c, error = %e, "join attempt failed");
                    last_err = Some(e);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250 * (pass + 1).min(8))).await;
    }
    Err(last_err.unwrap_or_else(|| Error::Timeout("join".into())))
}
