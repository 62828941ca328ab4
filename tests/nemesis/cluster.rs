//! The system under test: 3 proxies and 5 targets started through the shared harness, every
//! node-to-node link through the relay mesh, a fault-switch directory per target, and the few
//! cluster queries the nemesis needs. This is the one module that names `shoal_actors` types,
//! so the nemesis follows the crate's restructuring in one place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

pub use shoal_actors::Error;
pub use shoal_actors::client::Client;
use shoal_actors::logic::placement;
use shoal_actors::store::object as store;
use shoal_actors::types::smap::{Role, Smap};
pub use shoal_actors::types::status::{ClusterStatus, NodeState, NodeStatus};

use super::relay::Mesh;
use crate::common::{BUCKET, FAST_CONFIG, NodeSpec, TestCluster, mountpath_keys};

/// Per-request timeout of the workload and status clients: short, so that a paused or
/// partitioned node costs seconds, not the client's default 30 s.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);

/// Classifies an error for the history: "object … does not exist" is an observation (absent);
/// anything else (bucket not known yet, no map, timeouts, offline targets) observed nothing.
pub fn absent(e: &Error) -> bool {
    let m = e.to_string();
    matches!(e, Error::NotFound(_)) && m.contains("object ") && m.contains(" does not exist")
}

/// Did a failed put or delete certainly change nothing? Only for failures that happen before
/// the request can reach a node able to apply it, going by the client's protocol: a refused
/// connection (nothing was sent); for a put also a target that refused or could not be asked
/// before the body was sent (offline, no space, unknown bucket, no owner), since an object
/// is only written once its body arrives -- a small put carries its body, and the client
/// calls it offline only when no connection reached the target (else: "may have been
/// stored", a timeout or broken link) -- and a put refused at install because the map
/// changed while its body travelled (`MapChanged`: "nothing was stored", the client already
/// sent it again three times). Timeouts and broken links stay indeterminate.
pub fn not_applied(e: &Error, put: bool) -> bool {
    let m = e.to_string();
    if m.contains("Connection refused") || m.contains("too many redirects") {
        return true;
    }
    put && matches!(
        e,
        Error::Offline(_)
            | Error::NoSpace(_)
            | Error::NotFound(_)
            | Error::BadRequest(_)
            | Error::MapChanged(_)
    )
}

/// Bound on a status query: the primary itself gives up on a silent node after 1.5 s, so this
/// is enough for an answer and keeps the nemesis' ticks short while the primary is gone.
pub const STATUS_TIMEOUT: Duration = Duration::from_millis(2500);

/// One object file found on a target's mountpath.
#[derive(Clone, Debug)]
pub struct ObjFile {
    pub node: String,
    pub mountpath: usize,
    pub checksum: String,
    /// Write stamp (newest wins across copies).
    pub version: u64,
}

pub struct Sut {
    pub tc: TestCluster,
    pub mesh: Mesh,
    pub proxies: Vec<String>,
    pub targets: Vec<String>,
    /// Per target: the directory of its fault switches (`disk_full`).
    pub fault_dirs: BTreeMap<String, PathBuf>,
    /// Nodes we stopped with SIGSTOP (a stopped process cannot tell us itself).
    pub paused: BTreeSet<String>,
    /// One direct status client per proxy.
    status_clients: BTreeMap<String, Client>,
    _faults: tempfile::TempDir,
}

impl Sut {
    /// `throttle`: the rebalance's bytes per second per target (0 = unlimited); a slow
    /// rebalance leaves time for faults and client operations to race it.
    pub async fn start(proxies: usize, targets: usize, mountpaths: usize, throttle: u64) -> Self {
        let faults = tempfile::tempdir().expect("tempdir");
        let mut specs: Vec<NodeSpec> = (0..proxies)
            .map(|i| NodeSpec::new(&format!("proxy{i}"), Role::Proxy, 0))
            .chain(
                (0..targets)
                    .map(|i| NodeSpec::new(&format!("target{i}"), Role::Target, mountpaths)),
            )
            .collect();
        // Ports are fixed up front (restarts keep them), so every route is known before start.
        for s in &mut specs {
            s.port = shoal_nodectl::playground::free_port().expect("port");
        }
        let nodes: Vec<(String, String)> = specs
            .iter()
            .map(|s| (s.name.clone(), format!("127.0.0.1:{}", s.port)))
            .collect();
        let mesh = Mesh::start(&nodes).await.expect("relays");
        let mut fault_dirs = BTreeMap::new();
        for s in &mut specs {
            s.env
                .push(("SHOAL_FAULT_ROUTES".into(), mesh.routes(&s.name)));
            if s.role == Role::Target {
                let d = faults.path().join(&s.name);
                std::fs::create_dir_all(&d).expect("fault dir");
                s.env
                    .push(("SHOAL_FAULT_DIR".into(), d.display().to_string()));
                fault_dirs.insert(s.name.clone(), d);
            }
        }
        // A node restarted with wiped metadata (re-added after a decommission) finds the
        // cluster through any proxy, whichever is primary by then.
        let discovery: Vec<&str> = nodes[..proxies].iter().map(|(_, a)| a.as_str()).collect();
        // Generations that finish with errors are retried soon (the default waits 30 s), so
        // that automatic generations cross the nemesis' own operations and faults.
        let config = format!(
            "{FAST_CONFIG}\n[cluster.proxy]\ndiscovery_url = \"{}\"\n[cluster.rebalance]\nthrottle_bytes_per_sec = {throttle}\nretry_secs = 2\n",
            discovery.join(",")
        );
        // Only the first start founds the cluster (`--primary` goes to the node at the harness'
        // endpoint): before any restart the nemesis points the endpoint at another proxy
        // (`Nemesis::point_joins_away_from`), so that a proxy restarted, even with wiped
        // metadata, joins the cluster instead of founding a second one.
        let tc = TestCluster::start_nodes(&specs, &config).await;
        let status_clients = specs
            .iter()
            .filter(|s| s.role == Role::Proxy)
            .map(|s| {
                (
                    s.name.clone(),
                    Client::new(format!("127.0.0.1:{}", s.port)).with_timeout(CLIENT_TIMEOUT),
                )
            })
            .collect();
        Sut {
            tc,
            mesh,
            proxies: specs
                .iter()
                .filter(|s| s.role == Role::Proxy)
                .map(|s| s.name.clone())
                .collect(),
            targets: specs
                .iter()
                .filter(|s| s.role == Role::Target)
                .map(|s| s.name.clone())
                .collect(),
            fault_dirs,
            paused: BTreeSet::new(),
            status_clients,
            _faults: faults,
        }
    }

    pub fn all(&self) -> Vec<String> {
        self.proxies.iter().chain(&self.targets).cloned().collect()
    }

    pub fn addr(&self, name: &str) -> String {
        self.tc.lc.procs[name].addr.clone()
    }

    pub fn name_of_addr(&self, addr: &str) -> Option<String> {
        self.tc
            .lc
            .procs
            .iter()
            .find(|(_, p)| p.addr == addr)
            .map(|(n, _)| n.clone())
    }

    pub fn is_target(&self, name: &str) -> bool {
        self.targets.iter().any(|t| t == name)
    }

    /// Whether the process is running (reaps it if it exited).
    pub fn running(&mut self, name: &str) -> bool {
        !self.tc.lc.exited(name)
    }

    /// Clients for the workload: one per proxy, each with its own connection pool.
    pub fn workload_clients(&self) -> Vec<(String, Client)> {
        self.proxies
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    Client::new(self.addr(p)).with_timeout(CLIENT_TIMEOUT),
                )
            })
            .collect()
    }

    /// The cluster status as the primary sees it, from whichever proxy answers first (asked
    /// all at once: with the primary gone, each would otherwise cost a full timeout).
    pub async fn status(&self) -> Option<ClusterStatus> {
        let asks = self
            .status_clients
            .iter()
            .filter(|(name, _)| !self.paused.contains(*name))
            .map(|(_, c)| {
                Box::pin(async move {
                    match tokio::time::timeout(STATUS_TIMEOUT, c.cluster_status()).await {
                        Ok(Ok(s)) => Ok(s),
                        _ => Err(()),
                    }
                })
            })
            .collect::<Vec<_>>();
        if asks.is_empty() {
            return None;
        }
        futures::future::select_ok(asks).await.ok().map(|(s, _)| s)
    }

    /// Each proxy's own map (`None` when it does not answer), for agreement checks.
    pub async fn proxy_maps(&self) -> Vec<(String, Option<Smap>)> {
        let asks = self.status_clients.iter().map(|(name, c)| async move {
            let m = tokio::time::timeout(STATUS_TIMEOUT, c.smap())
                .await
                .ok()
                .and_then(Result::ok);
            (name.clone(), m)
        });
        futures::future::join_all(asks).await
    }

    /// A node's row in `status`, found by its address (IDs change when a node is re-added).
    pub fn row<'a>(&self, st: &'a ClusterStatus, name: &str) -> Option<&'a NodeStatus> {
        let addr = self.addr(name);
        st.proxies
            .iter()
            .chain(&st.targets)
            .find(|n| n.addr == addr)
    }

    pub fn set_disk_full(&self, target: &str, on: bool) {
        let f = self.fault_dirs[target].join("disk_full");
        if on {
            std::fs::write(&f, b"").expect("disk_full switch");
        } else {
            let _ = std::fs::remove_file(&f);
        }
    }

    pub fn disk_full(&self, target: &str) -> bool {
        self.fault_dirs[target].join("disk_full").exists()
    }

    /// Was the node's metadata wiped (it finished a decommission)?
    pub fn wiped(&self, name: &str) -> bool {
        !self.tc.lc.procs[name].data_dir.join("node.id").exists()
    }

    /// Removes a (stopped) node's data dir and mountpaths: it comes back as a fresh node.
    pub fn wipe(&self, name: &str) {
        let p = &self.tc.lc.procs[name];
        let _ = std::fs::remove_dir_all(&p.data_dir);
        for m in &p.mountpaths {
            let _ = std::fs::remove_dir_all(m);
        }
    }

    /// Every object file of the workload bucket on `nodes`: name → copies.
    pub fn files(&self, nodes: &[String]) -> BTreeMap<String, Vec<ObjFile>> {
        let mut out: BTreeMap<String, Vec<ObjFile>> = BTreeMap::new();
        for n in nodes {
            let p = &self.tc.lc.procs[n];
            for (i, mp) in p.mountpaths.iter().enumerate() {
                let _ = store::walk_objects(mp, |path, _| {
                    if let Ok(m) = store::read_meta(path)
                        && m.bucket == BUCKET
                    {
                        out.entry(m.object.clone()).or_default().push(ObjFile {
                            node: n.clone(),
                            mountpath: i,
                            checksum: m.checksum,
                            version: m.version,
                        });
                    }
                    true
                });
            }
        }
        out
    }

    /// Where `object` belongs under `smap`: (target name, mountpath index).
    pub fn proper_location(&self, smap: &Smap, object: &str) -> Option<(String, usize)> {
        let owner = placement::owner(smap, BUCKET, object)?;
        let name = self.name_of_addr(&owner.addr)?;
        let keys = mountpath_keys(&self.tc.lc.procs[&name].mountpaths);
        let mp = placement::mountpath_index(
            &keys,
            placement::digest(&placement::uname(BUCKET, object)),
        )?;
        Some((name, mp))
    }

    /// The proxy that would take over if the primary went now (electable, active, highest
    /// `id_digest`, as the election computes it), by harness name.
    pub async fn top_candidate(&self) -> Option<String> {
        let smap = self.smap().await?;
        let c = shoal_actors::logic::election::candidate(&smap, &smap.primary)?;
        self.name_of_addr(&c.addr)
    }

    /// The map of the first proxy that answers.
    pub async fn smap(&self) -> Option<Smap> {
        self.proxy_maps().await.into_iter().find_map(|(_, m)| m)
    }

    /// Runs the real `nodectl --json` through proxy `via`; (exit code, stdout, stderr). Bounded:
    /// a hung command is killed.
    pub async fn nodectl(&self, via: &str, args: &[&str]) -> (Option<i32>, String, String) {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_nodectl"));
        cmd.arg("--endpoint")
            .arg(self.addr(via))
            .args(["--request-timeout", "5", "--json"])
            .args(args)
            .env_remove("NODECTL_TOKEN")
            .env_remove("NODECTL_ENDPOINT")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        match tokio::time::timeout(Duration::from_secs(30), cmd.output()).await {
            Ok(Ok(out)) => (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            ),
            Ok(Err(e)) => (None, String::new(), format!("spawn: {e}")),
            Err(_) => (None, String::new(), "nodectl did not finish in 30 s".into()),
        }
    }

    /// The last lines of every node's log, for a failure report that stays readable.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut s = String::new();
        for (n, p) in &self.tc.lc.procs {
            let log = std::fs::read_to_string(&p.log).unwrap_or_default();
            let all: Vec<&str> = log.lines().collect();
            s.push_str(&format!(
                "==== {n} (last {lines} lines of {})\n",
                p.log.display()
            ));
            for l in &all[all.len().saturating_sub(lines)..] {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    pub fn dir(&self) -> PathBuf {
        self.tc.dir()
    }
}
