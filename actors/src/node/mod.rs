//! The node (DESIGN §2): one process, one supervision tree. [`start`] binds the listener, loads
//! what the node persisted, starts the [`supervisor::NodeActor`] (which starts and restarts every
//! child: metadata writer, server, keepalive, stats, and per role the primary or the mountpaths
//! and the rebalance), then bootstraps, rejoins or waits (standby).
//!
//! Each actor gets what it uses in its arguments; shared pieces are small and named: the
//! [`meta::MetaHandle`] (read the metadata, ask its one writer to change it), the connection
//! [`Pool`](crate::proto::Pool), the target's [`LocalStore`](crate::store::LocalStore), and
//! the few counters below.

pub mod dispatch;
pub mod election;
pub mod keepalive;
pub mod meta;
pub mod metrics;
pub mod mountpath;
pub mod names;
pub mod primary;
pub mod rebalance;
pub mod server;
pub mod stats;
pub mod storage;
pub mod supervisor;
pub mod target;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorRef};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::logic::auth::Secret;
use crate::proto::msg::{JoinRequest, Joined};
use crate::proto::pool::Pool;
use crate::store::{self, LocalStore};
use crate::types::config::ClusterConfig;
use crate::types::meta::MetaUpdate;
use crate::types::smap::{Bmd, Flags, Node, NodeId, Role, Smap};
use meta::MetaHandle;
pub use supervisor::{NodeActor, NodeMsg};

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
    /// The cluster secret as provisioned for this node (auth); kept in the data dir, mode 0600,
    /// so a restart without it still has it. Never sent to another node.
    pub secret: Option<String>,
}

/// Where a node keeps its provisioned cluster secret.
pub const SECRET_FILE: &str = "secret.key";

/// The node's secret: the one given now (stored, 0600), else the one stored before.
fn resolve_secret(args: &NodeArgs) -> Result<Option<Secret>> {
    let path = args.data_dir.join(SECRET_FILE);
    if let Some(raw) = &args.secret {
        let s = Secret::new(raw)?;
        write_private(&path, s.bytes())?;
        return Ok(Some(s));
    }
    match std::fs::read_to_string(&path) {
        Ok(raw) => Secret::new(&raw).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes a file only its owner can read, atomically.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        store::files::sync_dir(dir)?;
    }
    Ok(())
}

/// When this node last heard from its primary (elections need silence first). Written by the
/// keepalive and by incoming metasyncs, read by voting.
#[derive(Debug)]
pub struct Contact {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Default for Contact {
    fn default() -> Self {
        Contact {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Contact {
    pub fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub fn silence(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Restarts of supervised children, by child label (`primary`, `mp0`, `jogger`…): written by
/// supervisors, shown in `show cluster --json` and the console.
#[derive(Debug, Default)]
pub struct Restarts(Mutex<BTreeMap<String, u64>>);

impl Restarts {
    pub fn bump(&self, child: &str) -> u64 {
        let mut m = self.0.lock().expect("poisoned");
        let n = m.entry(child.to_string()).or_default();
        *n += 1;
        *n
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().expect("poisoned").clone()
    }
}

/// What the supervisor builds its children from (its own kit, not passed around whole).
pub struct Kit {
    pub me: Node,
    pub data_dir: PathBuf,
    pub started: Instant,
    pub meta: MetaHandle,
    pub meta_tx: Arc<watch::Sender<Arc<crate::types::meta::Meta>>>,
    pub pool: Arc<Pool>,
    /// The cluster secret provisioned on this node, if any.
    pub secret: Option<Secret>,
    /// Targets only.
    pub store: Option<Arc<LocalStore>>,
    pub listener: Arc<tokio::net::TcpListener>,
    pub contact: Arc<Contact>,
    pub restarts: Arc<Restarts>,
    /// Requests served, by operation: counts and latencies for `/metrics`.
    pub metrics: Arc<metrics::RequestMetrics>,
    /// The HTTP front door on the same port, if the node has one.
    pub http: Option<Arc<dyn server::HttpFront>>,
    /// Cancelled when the node stops; every task watches it.
    pub shutdown: CancellationToken,
    /// Set when the process should exit after stopping (shutdown, decommission, a child that
    /// kept failing): why.
    pub exit_reason: Arc<Mutex<Option<Exit>>>,
    /// RMD version persisted before this start: a newer one learned later is a generation to
    /// run; the persisted one is not (its interruption is reported when joining).
    pub rmd_at_start: u64,
    /// False while a node restarted as the primary of its persisted map has not yet checked
    /// that the cluster did not elect another one meanwhile (`election::reconcile_at_start`):
    /// its primary actor changes nothing until then.
    pub primary_checked: watch::Receiver<bool>,
    pub args: NodeArgs,
}

/// Why a node stopped on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub reason: String,
    /// A failure (a child that could not be kept running), not an operator's request: the
    /// process should exit with an error so a service manager restarts it.
    pub failure: bool,
}

/// A running node.
pub struct NodeHandle {
    pub id: NodeId,
    pub addr: String,
    pub meta: MetaHandle,
    /// The cluster secret provisioned on this node.
    pub secret: Option<Secret>,
    actor: ActorRef<NodeMsg>,
    shutdown: CancellationToken,
    exit_reason: Arc<Mutex<Option<Exit>>>,
    join: tokio::task::JoinHandle<()>,
}

impl NodeHandle {
    /// Stops gracefully and waits.
    pub async fn stop(self) {
        let _ = self.actor.cast(NodeMsg::Stop);
        self.wait().await;
    }

    /// Waits until the node stops on its own (shutdown, decommission, a child that kept
    /// failing) or is stopped; returns why, if it was asked to exit.
    pub async fn wait(self) -> Option<Exit> {
        let _ = self.join.await;
        self.shutdown.cancel();
        self.exit_reason.lock().expect("poisoned").clone()
    }

    pub fn actor(&self) -> ActorRef<NodeMsg> {
        self.actor.clone()
    }

    /// The cluster's auth settings as this node applies them: the distributed switch, with
    /// this node's own secret (which no stored or shared config carries).
    pub fn auth(&self) -> crate::types::config::AuthConfig {
        auth_of(&self.meta, self.secret.as_ref())
    }
}

/// See [`NodeHandle::auth`] (a closure-friendly form).
pub fn auth_of(meta: &MetaHandle, secret: Option<&Secret>) -> crate::types::config::AuthConfig {
    let mut a = meta.get().config.auth.clone();
    a.secret = secret.map(|s| s.expose().to_string()).unwrap_or_default();
    a
}

impl NodeHandle {}

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

/// Starts a node: binds, loads persisted state, starts the supervision tree, then bootstraps,
/// rejoins or waits.
pub async fn start(args: NodeArgs) -> Result<NodeHandle> {
    start_with(args, None).await
}

/// As [`start`], with an HTTP front door served on the same port (connections are told apart
/// by their first byte).
pub async fn start_with(
    args: NodeArgs,
    http: Option<Arc<dyn server::HttpFront>>,
) -> Result<NodeHandle> {
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
    let secret = resolve_secret(&args)?;
    let mut persisted = meta::load(&args.data_dir, &args.cluster.shareable())?;
    persisted.config = persisted.config.shareable();
    if persisted.config.auth.enabled && secret.is_none() {
        return Err(Error::BadRequest(
            "auth is enabled but no cluster secret is provisioned on this node (auth_secret_file)"
                .into(),
        ));
    }
    if secret.as_ref().is_some_and(|s| s.is_weak()) {
        tracing::warn!("the cluster secret is short: use at least 16 random bytes");
    }
    let rmd_at_start = persisted.rmd.version;
    let returning_primary = !args.standby && persisted.is_primary(&id);
    let (checked_tx, checked_rx) = watch::channel(!returning_primary);
    let persisted_uuid = persisted.smap.as_ref().map(|s| s.uuid.clone());
    let (tx, rx) = watch::channel(Arc::new(persisted));
    let meta = MetaHandle::new(rx.clone(), &id);
    // With auth on, node-to-node requests carry a token minted per request for this node and
    // its cluster.
    let pool = {
        let (rx, id, secret) = (rx.clone(), id.clone(), secret.clone());
        Arc::new(Pool::new(
            id.clone(),
            Box::new(move || {
                let m = rx.borrow();
                // Signed whenever a secret is provisioned, not only once this node knows the
                // cluster has auth on: a node started with just the secret (as the README says)
                // must be able to join. A cluster with auth off ignores the token.
                let s = secret.as_ref()?;
                crate::logic::auth::node_token(s, &id, m.smap.as_ref().map(|s| s.uuid.as_str()))
            }),
        ))
    };
    let store = match args.role {
        Role::Target => {
            let mut paths = args.mountpaths.clone();
            if paths.is_empty() && !args.data_dir.join(store::mpset::RECORD).exists() {
                paths.push(args.data_dir.join("mp0"));
            }
            let identity = store::Identity {
                target: id.clone(),
                cluster: persisted_uuid.clone(),
            };
            Some(Arc::new(LocalStore::open_target(
                &paths,
                &args.data_dir,
                identity,
            )?))
        }
        Role::Proxy => None,
    };
    // A target that will join acts as no object's owner until the join is answered.
    let joining = !args.standby && !returning_primary;
    if let Some(s) = store.as_ref().filter(|_| joining) {
        s.joined.send_replace(false);
    }
    let reb_interrupted = args.data_dir.join(rebalance::MARKER).exists();
    if reb_interrupted {
        tracing::warn!("rebalance marker found: the last rebalance was interrupted");
    }
    let shutdown = CancellationToken::new();
    let exit_reason = Arc::new(Mutex::new(None));
    let joined = store.clone();
    let kit = Kit {
        me: me.clone(),
        data_dir: args.data_dir.clone(),
        started: Instant::now(),
        meta: meta.clone(),
        meta_tx: Arc::new(tx),
        pool: pool.clone(),
        secret: secret.clone(),
        store,
        listener: Arc::new(listener),
        http,
        contact: Arc::new(Contact::default()),
        restarts: Arc::new(Restarts::default()),
        metrics: Arc::new(metrics::RequestMetrics::default()),
        shutdown: shutdown.clone(),
        exit_reason: exit_reason.clone(),
        rmd_at_start,
        primary_checked: checked_rx,
        args: args.clone(),
    };
    let (actor, handle) = Actor::spawn(Some(names::node(&id)), NodeActor, kit)
        .await
        .map_err(|e| Error::Unavailable(format!("node actor: {e}")))?;
    let join = tokio::spawn(async move {
        let _ = handle.await;
    });
    let node = NodeHandle {
        id: id.clone(),
        addr: addr.clone(),
        meta: meta.clone(),
        secret,
        actor,
        shutdown,
        exit_reason,
        join,
    };

    let res = async {
        if args.primary && meta.get().smap.is_none() {
            if args.cluster.auth.enabled && kit_has_no_secret(&args) {
                return Err(Error::BadRequest(
                    "auth is enabled but no cluster secret is provisioned (auth_secret_file)"
                        .into(),
                ));
            }
            bootstrap(&meta, &me, &args.cluster.shareable()).await?;
            tracing::info!(node = %id, %addr, "bootstrapped a new cluster as primary");
        }
        let is_primary = meta.get().is_primary(&id);
        // A returning primary checks that the cluster did not elect another one meanwhile.
        if is_primary && !args.standby {
            let res = election::reconcile_at_start(&meta, &pool, &id).await;
            checked_tx.send_replace(true);
            res?;
        }
        if !args.standby && !meta.get().is_primary(&id) {
            let stop = &node.shutdown;
            join_cluster(
                &meta,
                &pool,
                &me,
                args.join.as_deref(),
                reb_interrupted,
                stop,
            )
            .await?;
        }
        if let Some(s) = &joined {
            s.joined.send_replace(true);
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = res {
        node.stop().await;
        return Err(e);
    }
    tracing::info!(node = %id, role = args.role.as_str(), %addr, "node started");
    Ok(node)
}

fn kit_has_no_secret(args: &NodeArgs) -> bool {
    args.secret.is_none() && !args.data_dir.join(SECRET_FILE).exists()
}

/// A new cluster with `me` as its primary and only member.
async fn bootstrap(meta: &MetaHandle, me: &Node, cluster: &ClusterConfig) -> Result<()> {
    let mut cfg = cluster.clone();
    cfg.version = cfg.version.max(1);
    cfg.proxy.primary_url = me.addr.clone();
    cfg.proxy.original_url = me.addr.clone();
    cfg.proxy.discovery_url = me.addr.clone();
    meta.apply(MetaUpdate {
        smap: Some(Smap::bootstrap(me.clone())),
        rmd: None,
        bmd: Some(Bmd {
            version: 1,
            ..Default::default()
        }),
        config: Some(Box::new(cfg)),
    })
    .await?;
    Ok(())
}

/// Self-join: try the primary of the persisted map, then the configured join address, then the
/// discovery and original URLs; a refusal for integrity reasons is final. Abandoned once the
/// node is stopping (`stop`): a node decommissioned meanwhile must not be added back.
pub async fn join_cluster(
    meta: &MetaHandle,
    pool: &Pool,
    me: &Node,
    join: Option<&str>,
    reb_interrupted: bool,
    stop: &CancellationToken,
) -> Result<()> {
    let m = meta.get();
    let mut candidates: Vec<String> = Vec::new();
    let mut add = |a: &str| {
        let a = a.trim();
        if !a.is_empty() && a != me.addr && !candidates.iter().any(|c| c == a) {
            candidates.push(a.to_string());
        }
    };
    if let Some(a) = m.primary_addr() {
        add(&a);
    }
    if let Some(j) = join {
        add(j);
    }
    // The discovery URL may list several proxies (any of them forwards a join to the primary).
    for u in [
        &m.config.proxy.primary_url,
        &m.config.proxy.discovery_url,
        &m.config.proxy.original_url,
    ] {
        for a in u.split(',') {
            add(a);
        }
    }
    if candidates.is_empty() {
        return Err(Error::BadRequest(
            "nowhere to join: give --join HOST:PORT (or --primary to bootstrap a cluster)".into(),
        ));
    }
    let mut node = me.clone();
    // Keep flags from the map we knew (maintenance survives restarts).
    if let Some(n) = m.smap.as_ref().and_then(|s| s.get(&me.id)) {
        node.flags = n.flags;
    }
    let req = JoinRequest {
        node,
        uuid: m.smap.as_ref().map(|s| s.uuid.clone()),
        reb_interrupted,
    };
    let mut last_err = None;
    // A few passes over the list: the primary may still be starting.
    for pass in 0..20u32 {
        for c in &candidates {
            if stop.is_cancelled() {
                return Err(Error::Unavailable(
                    "the node is stopping: join abandoned".into(),
                ));
            }
            match pool.rpc(c, req.clone(), Duration::from_secs(10)).await {
                Ok(joined) => {
                    let Joined {
                        smap,
                        rmd,
                        bmd,
                        config,
                    } = *joined;
                    let upd = MetaUpdate {
                        smap: Some(smap),
                        rmd: Some(rmd),
                        bmd: Some(bmd),
                        config: Some(Box::new(config)),
                    };
                    // A newer map may already have been pushed to us meanwhile: fine.
                    match meta.apply(upd).await {
                        Ok(_) | Err(Error::Downgrade { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    tracing::info!(via = %c, "joined the cluster");
                    return Ok(());
                }
                Err(
                    e @ (Error::ClusterIntegrity(_)
                    | Error::BadRequest(_)
                    | Error::NotFound(_)
                    | Error::Unauthorized(_)
                    | Error::Forbidden(_)),
                ) => return Err(e),
                Err(e) => {
                    tracing::debug!(candidate = %c, error = %e, "join attempt failed");
                    last_err = Some(e);
                }
            }
        }
        let pause = Duration::from_millis(250 * u64::from((pass + 1).min(8)));
        let _ = tokio::time::timeout(pause, stop.cancelled()).await;
    }
    Err(last_err.unwrap_or_else(|| Error::Timeout("join".into())))
}
