//! Shared harness for the end-to-end tests: real `noded` processes on 127.0.0.1, data in temp
//! dirs, driven through the typed client and the real `nodectl` binary.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use shoal_actors::client::Client;
use shoal_actors::logic::placement::{self, MountpathKey};
use shoal_actors::store::object as store;
use shoal_actors::types::smap::{NodeId, Role, Smap};
use shoal_actors::types::status::{ClusterStatus, NodeStatus};
use shoal_nodectl::playground::{LocalCluster, free_port};

#[allow(unused_imports)] // not every test binary compares statuses
pub use shoal_actors::types::status::NodeState;

pub mod clients;

pub const BUCKET: &str = "data";

/// Keepalive fast enough that "offline" shows within a second.
pub const FAST_CONFIG: &str = r#"
[cluster.keepalive]
interval_ms = 250
num_retries = 3
"#;

/// HTTP tests: nodes serve HTTP this far from their `--listen` port — below the range that
/// `free_port` picks from (`playground::PORT_RANGE`), so an HTTP port never collides with
/// another node's port.
pub const HTTP_OFFSET: i32 = -11000;

/// A `--listen` port whose HTTP port ([`HTTP_OFFSET`] away) is free too.
pub fn lc_http_port() -> u16 {
    shoal_nodectl::playground::free_port_pair(HTTP_OFFSET).expect("free port pair")
}

/// One node for [`TestCluster::start_nodes`].
pub struct NodeSpec {
    /// Harness name (`proxy0`, `target3`): stable across restarts, unlike the node ID.
    pub name: String,
    pub role: Role,
    /// Listen port; 0 picks a free one.
    pub port: u16,
    pub mountpaths: usize,
    /// Environment of the process (fault hooks).
    pub env: Vec<(String, String)>,
}

impl NodeSpec {
    pub fn new(name: &str, role: Role, mountpaths: usize) -> Self {
        NodeSpec {
            name: name.to_string(),
            role,
            port: 0,
            mountpaths,
            env: Vec::new(),
        }
    }
}

pub struct TestCluster {
    pub lc: LocalCluster,
    pub client: Client,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `proxies` + `targets` nodes (targets with `mountpaths` each) and waits until all
    /// joined and the join rebalances settled.
    pub async fn start(proxies: usize, targets: usize, mountpaths: usize, config: &str) -> Self {
        Self::start_with_token(proxies, targets, mountpaths, config, None).await
    }

    /// As [`start`](Self::start), with an admin token for a cluster that has auth on.
    pub async fn start_with_token(
        proxies: usize,
        targets: usize,
        mountpaths: usize,
        config: &str,
        token: Option<String>,
    ) -> Self {
        Self::launch(
            proxies,
            targets,
            mountpaths,
            config,
            token,
            None,
            &|_| vec![],
        )
        .await
    }

    /// As [`start_with_token`](Self::start_with_token), with environment variables per node
    /// (by harness name: `proxy0`, `target1`…), for test-only fault hooks.
    pub async fn start_with(
        proxies: usize,
        targets: usize,
        mountpaths: usize,
        config: &str,
        token: Option<String>,
        env: impl Fn(&str) -> Vec<(String, String)>,
    ) -> Self {
        Self::launch(proxies, targets, mountpaths, config, token, None, &env).await
    }

    /// As [`start_with_token`](Self::start_with_token), every node also serving HTTP
    /// (`noded --http`, [`HTTP_OFFSET`] from its `--listen` port), with `extra` flags.
    pub async fn start_http(
        proxies: usize,
        targets: usize,
        mountpaths: usize,
        config: &str,
        token: Option<String>,
        extra: &[&str],
    ) -> Self {
        Self::launch(
            proxies,
            targets,
            mountpaths,
            config,
            token,
            Some(extra),
            &|_| vec![],
        )
        .await
    }

    async fn launch(
        proxies: usize,
        targets: usize,
        mountpaths: usize,
        config: &str,
        token: Option<String>,
        http: Option<&[&str]>,
        env: &dyn Fn(&str) -> Vec<(String, String)>,
    ) -> Self {
        let specs: Vec<NodeSpec> = (0..proxies)
            .map(|i| NodeSpec::new(&format!("proxy{i}"), Role::Proxy, 0))
            .chain(
                (0..targets)
                    .map(|i| NodeSpec::new(&format!("target{i}"), Role::Target, mountpaths)),
            )
            .map(|mut s| {
                s.env = env(&s.name);
                s
            })
            .collect();
        Self::start_specs(&specs, config, token, http).await
    }

    /// Starts the given nodes (the first proxy founds the cluster, the others join it), waits
    /// until all joined and the join rebalances settled, and creates [`BUCKET`]. For harnesses
    /// that need to know ports or give nodes an environment before they start.
    pub async fn start_nodes(specs: &[NodeSpec], config: &str) -> Self {
        Self::start_specs(specs, config, None, None).await
    }

    async fn start_specs(
        specs: &[NodeSpec],
        config: &str,
        token: Option<String>,
        http: Option<&[&str]>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("cluster.toml");
        // Test clusters share the host's disk: how full it is must not decide their outcome
        // (the high-water mark is tested through its fault switch).
        let config = match config.contains("[cluster.storage]") {
            true => config.to_string(),
            false => format!("{config}\n[cluster.storage]\nhigh_water_pct = 100\n"),
        };
        std::fs::write(&cfg, config).expect("config");
        let mut lc = LocalCluster::new(
            PathBuf::from(env!("CARGO_BIN_EXE_noded")),
            dir.path().to_path_buf(),
        );
        lc.config = Some(cfg);
        lc.token = token.clone();
        let extra = http.unwrap_or(&[]);
        let port = || match http {
            Some(_) => lc_http_port(),
            None => free_port().unwrap(),
        };
        if http.is_some() {
            lc.http_offset = Some(HTTP_OFFSET);
        }
        // Proxies first: the first one founds the cluster and must be up before anyone joins.
        let (proxies, targets): (Vec<&NodeSpec>, Vec<&NodeSpec>) =
            specs.iter().partition(|s| s.role == Role::Proxy);
        for (i, s) in proxies.iter().chain(&targets).enumerate() {
            let vars: Vec<(&str, &str)> = s
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let p = if s.port == 0 { port() } else { s.port };
            lc.add_with_env(&s.name, s.role, p, s.mountpaths, extra, &vars)
                .unwrap();
            if i == 0 {
                lc.wait_ready(Duration::from_secs(20)).await.unwrap();
            }
        }
        if let Err(e) = lc.wait_ready(Duration::from_secs(30)).await {
            // The temp dir goes with the panic: say why here.
            for (n, p) in &lc.procs {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                eprintln!("==== {n}\n{log}");
            }
            panic!("{e}");
        }
        let client = lc.client().with_token(token);
        let tc = TestCluster {
            lc,
            client,
            _dir: dir,
        };
        tc.wait_rebalance_idle(Duration::from_secs(30)).await;
        tc.client
            .create_bucket(BUCKET)
            .await
            .expect("create bucket");
        tc
    }

    pub fn dir(&self) -> PathBuf {
        self.lc.dir.clone()
    }

    /// `http://127.0.0.1:PORT` of a node started with [`start_http`](Self::start_http).
    pub fn http_url(&self, name: &str) -> String {
        shoal_nodectl::playground::http_url(&self.lc.procs[name].addr, HTTP_OFFSET)
    }

    /// PID of a node's process.
    pub fn pid(&self, name: &str) -> u32 {
        self.lc.procs[name].child.as_ref().expect("running").id()
    }

    /// Runs the real `nodectl` against this cluster.
    pub fn nodectl(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_nodectl"))
            .arg("--endpoint")
            .arg(&self.lc.endpoint)
            .args(args)
            .env_remove("NODECTL_TOKEN")
            // Never a token saved by a login in the real home (`nodectl auth login`).
            .env("NODECTL_TOKEN_FILE", self.dir().join("no-login-token"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run nodectl")
    }

    /// `nodectl ... --json`, parsed; panics with stderr if it failed.
    pub fn nodectl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_slice(&self.nodectl_ok(&a).stdout).expect("json")
    }

    /// [`nodectl`](Self::nodectl) that must succeed: panics with its output otherwise.
    pub fn nodectl_ok(&self, args: &[&str]) -> Output {
        let out = self.nodectl(args);
        assert!(
            out.status.success(),
            "nodectl {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub async fn status(&self) -> ClusterStatus {
        self.client.cluster_status().await.expect("cluster status")
    }

    pub async fn smap(&self) -> Smap {
        self.client.smap().await.expect("smap")
    }

    /// Node ID of a process by its harness name.
    pub async fn id(&self, name: &str) -> NodeId {
        let addr = &self.lc.procs[name].addr;
        let smap = self.smap().await;
        smap.all_nodes()
            .find(|n| &n.addr == addr)
            .unwrap_or_else(|| panic!("{name} ({addr}) not in the map"))
            .id
            .clone()
    }

    pub fn target_names(&self) -> Vec<String> {
        self.lc
            .procs
            .iter()
            .filter(|(_, p)| p.role == Role::Target)
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub async fn node_status(&self, name: &str) -> Option<NodeStatus> {
        let id = self.id_opt(name).await?;
        let st = self.status().await;
        st.targets
            .into_iter()
            .chain(st.proxies)
            .find(|n| n.id == id.0)
    }

    pub async fn id_opt(&self, name: &str) -> Option<NodeId> {
        let addr = &self.lc.procs[name].addr;
        let smap = self.client.smap().await.ok()?;
        smap.all_nodes()
            .find(|n| &n.addr == addr)
            .map(|n| n.id.clone())
    }

    /// Waits until no rebalance runs (polls; panics after `timeout`).
    pub async fn wait_rebalance_idle(&self, timeout: Duration) {
        let until = Instant::now() + timeout;
        loop {
            let r = self.client.rebalance_status().await;
            if matches!(&r, Ok(None)) || matches!(&r, Ok(Some(s)) if !s.is_running()) {
                return;
            }
            if Instant::now() > until {
                // Say why: the rebalance as the primary sees it, and every node's log.
                self.dump_logs();
                panic!("rebalance still running after {timeout:?}: {r:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Prints every node's log (to explain a failure).
    pub fn dump_logs(&self) {
        for (n, p) in &self.lc.procs {
            let log = std::fs::read_to_string(&p.log).unwrap_or_default();
            eprintln!("==== {n}\n{log}");
        }
    }

    /// Polls `f` as [`wait_for`] does; on timeout prints every node's log before panicking.
    pub async fn wait_for<F, Fut>(&self, what: &str, timeout: Duration, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let until = Instant::now() + timeout;
        while !f().await {
            if Instant::now() > until {
                self.dump_logs();
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A target's mountpaths — the configured ones, then any attached later — each with whether
    /// placement uses it, as the target recorded it.
    pub fn mountpaths_of(&self, name: &str) -> Vec<(PathBuf, bool)> {
        let p = &self.lc.procs[name];
        let rec = shoal_actors::store::mpset::recorded(&p.data_dir).unwrap_or_default();
        let enabled = |path: &PathBuf| {
            rec.iter()
                .find(|r| &r.path == path)
                .is_none_or(|r| r.state == shoal_actors::store::MpState::Enabled)
        };
        let mut out: Vec<(PathBuf, bool)> = p
            .mountpaths
            .iter()
            .map(|m| {
                let c = m.canonicalize().unwrap_or(m.clone());
                let e = enabled(&c);
                (c, e)
            })
            .collect();
        for r in rec {
            if !out.iter().any(|(p, _)| *p == r.path) {
                out.push((r.path, r.state == shoal_actors::store::MpState::Enabled));
            }
        }
        out
    }

    /// Every object file on every target's mountpaths: name → [(target name, mountpath index
    /// in [`mountpaths_of`](Self::mountpaths_of))].
    pub fn object_files(&self) -> BTreeMap<String, Vec<(String, usize, store::ObjMeta)>> {
        let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for (name, p) in &self.lc.procs {
            if p.role != Role::Target {
                continue;
            }
            for (i, (mp, _)) in self.mountpaths_of(name).iter().enumerate() {
                let _ = store::walk_objects(mp, |path, _| {
                    if let Ok(m) = store::read_meta(path) {
                        out.entry(format!("{}/{}", m.bucket, m.object))
                            .or_default()
                            .push((name.clone(), i, m));
                    }
                    true
                });
            }
        }
        out
    }

    /// Asserts the governing rule: each expected object exists exactly once, on its HRW owner
    /// and that owner's HRW mountpath, with the expected checksum; and nothing else exists.
    pub async fn assert_properly_located(&self, expected: &HashMap<String, String>) {
        let smap = self.smap().await;
        let files = self.object_files();
        let by_addr: HashMap<String, String> = self
            .lc
            .procs
            .iter()
            .map(|(n, p)| (p.addr.clone(), n.clone()))
            .collect();
        for (name, sum) in expected {
            let copies = files
                .get(&format!("{BUCKET}/{name}"))
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                copies.len(),
                1,
                "{name}: {} copies on disk: {:?}",
                copies.len(),
                copies.iter().map(|c| (&c.0, c.1)).collect::<Vec<_>>()
            );
            let (tname, mp, meta) = &copies[0];
            assert_eq!(&meta.checksum, sum, "{name}: content changed");
            let owner = placement::owner(&smap, BUCKET, name).expect("owner");
            assert_eq!(
                by_addr.get(&owner.addr),
                Some(tname),
                "{name} is on {tname}, owner is {}",
                owner.id
            );
            let enabled: Vec<(usize, u64)> = self
                .mountpaths_of(tname)
                .iter()
                .enumerate()
                .filter(|(_, (_, on))| *on)
                .map(|(i, (p, _))| (i, MountpathKey::new(p.display().to_string()).digest))
                .collect();
            let want = placement::best_mountpath(
                &enabled,
                placement::digest(&placement::uname(BUCKET, name)),
            )
            .unwrap();
            assert_eq!(
                *mp, want,
                "{name} on mountpath {mp} of {tname}, should be {want}"
            );
        }
        let extra: Vec<&String> = files
            .keys()
            .filter(|k| {
                k.starts_with(&format!("{BUCKET}/"))
                    && !expected.contains_key(&k[BUCKET.len() + 1..])
            })
            .collect();
        assert!(extra.is_empty(), "objects that should not exist: {extra:?}");
    }
}

pub fn mountpath_keys(paths: &[PathBuf]) -> Vec<MountpathKey> {
    paths
        .iter()
        .map(|p| MountpathKey::new(p.canonicalize().unwrap_or(p.clone()).display().to_string()))
        .collect()
}

/// Polls `f` every 50 ms until it is true; panics with `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(
            Instant::now() < until,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deterministic objects with sizes spread log-uniformly between `min` and `max` bytes.
pub fn make_objects(n: usize, min: usize, max: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (lmin, lmax) = ((min.max(1) as f64).ln(), (max as f64).ln());
    (0..n)
        .map(|i| {
            let size = rng.random_range(lmin..=lmax).exp().round() as usize;
            let size = size.clamp(min, max);
            let mut data = vec![0u8; size];
            rng.fill(&mut data[..]);
            (format!("dir{}/obj-{i:05}", i % 7), data)
        })
        .collect()
}

pub fn checksum(data: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(data))
}

/// Puts objects, 8 at a time; returns name → checksum.
pub async fn put_all(client: &Client, objs: &[(String, Vec<u8>)]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for chunk in objs.chunks(8) {
        let puts = chunk.iter().map(|(n, d)| client.put_bytes(BUCKET, n, d));
        for (r, (n, d)) in futures::future::join_all(puts).await.into_iter().zip(chunk) {
            let sum = r.unwrap_or_else(|e| panic!("put {n}: {e}"));
            assert_eq!(sum, checksum(d), "{n}: stored checksum differs");
            out.insert(n.clone(), sum);
        }
    }
    out
}

/// Once the cause of a failed generation is gone and nobody repeats the operation: `name`
/// becomes safe to power off by a retry that finished cleanly, and every object reads back at
/// its proper place.
pub async fn assert_retried_until_safe(
    c: &TestCluster,
    name: &str,
    expected: &HashMap<String, String>,
    timeout: Duration,
) {
    c.wait_for(&format!("{name} safe to power off"), timeout, || async {
        c.node_status(name)
            .await
            .is_some_and(|n| n.safe_to_power_off)
    })
    .await;
    let history = c.client.config().await.unwrap().history;
    let last = history.last().unwrap();
    assert!(
        last.trigger.starts_with("retry of ") && last.outcome == "finished",
        "{history:?}"
    );
    assert_all_readable(&c.client, expected).await;
    c.assert_properly_located(expected).await;
}

/// Reads every expected object back through the cluster and compares checksums.
pub async fn assert_all_readable(client: &Client, expected: &HashMap<String, String>) {
    let names: Vec<&String> = expected.keys().collect();
    for chunk in names.chunks(16) {
        let gets = chunk.iter().map(|n| client.get_bytes(BUCKET, n));
        for (r, n) in futures::future::join_all(gets).await.into_iter().zip(chunk) {
            let data = r.unwrap_or_else(|e| panic!("get {n}: {e}"));
            assert_eq!(&checksum(&data), &expected[*n], "{n}: content differs");
        }
    }
}

/// Each node's fault switch directory (`SHOAL_FAULT_DIR`) under `root`, for
/// [`TestCluster::start_with`].
pub fn fault_env(root: PathBuf) -> impl Fn(&str) -> Vec<(String, String)> {
    move |name| {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        vec![("SHOAL_FAULT_DIR".into(), d.display().to_string())]
    }
}

/// Turns fault switch `switch` on for node `name` (see `actors/src/fault.rs`).
pub fn switch_on(root: &std::path::Path, name: &str, switch: &str) {
    std::fs::create_dir_all(root.join(name)).unwrap();
    std::fs::write(root.join(name).join(switch), b"").unwrap();
}

pub fn switch_off(root: &std::path::Path, name: &str, switch: &str) {
    let _ = std::fs::remove_file(root.join(name).join(switch));
}

/// The old self of `gone`, a node decommissioned a moment ago whose process has not exited yet,
/// asks the node at `addr` to join cluster `uuid` again: it must be refused as decommissioned.
pub async fn assert_ghost_join_refused(
    addr: &str,
    gone: &shoal_actors::types::smap::Node,
    uuid: &str,
) {
    let join = shoal_actors::proto::msg::JoinRequest {
        node: gone.clone(),
        uuid: Some(uuid.to_string()),
        reb_interrupted: false,
    };
    let mut conn =
        shoal_actors::proto::Conn::connect(addr, gone.id.clone(), Duration::from_secs(30))
            .await
            .unwrap();
    let res = conn.rpc(join).await;
    assert!(
        matches!(&res, Err(shoal_actors::Error::ClusterIntegrity(m)) if m.contains("decommissioned")),
        "{res:?}"
    );
}

/// A name whose HRW owner under `smap` is `owner`.
pub fn name_owned_by(smap: &Smap, owner: &NodeId, prefix: &str) -> String {
    (0..100_000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| placement::owner(smap, BUCKET, n).is_some_and(|o| &o.id == owner))
        .expect("a name owned by the node")
}
