//! A 1,000-node control plane on one machine (issue 15, item 6). Measurements only, never
//! assertions: nothing here fails because something was slow.
//!
//! The primary proxy is a real `noded` process (so its CPU can be read from
//! `/proc/<pid>/stat`); the other N nodes (a few proxies, the rest targets) are full nodes started
//! inside this process with `shoal_actors::node::start` on 127.0.0.1, port 0, speaking the real
//! protocol over loopback and joining the primary as any node does. Their data dirs are on
//! `/dev/shm` by default: a thousand simulated nodes share one disk here, where real ones each
//! have their own, and their fsyncs of the map would otherwise measure that one disk.
//!
//! What is measured:
//! - bring-up: N nodes joining (time, and the primary's CPU for it);
//! - (b) the primary's CPU (utime + stime) over an idle window with every node heartbeating at
//!   the keepalive interval (1 s), against the same window before any node joined;
//! - (a) a map change reaching all N nodes: `start-maintenance` (and then `stop-maintenance`)
//!   of one target, from the request until every in-process node's metadata shows the new map
//!   version; baseline: a bare loopback fan-out of the same number of bytes (the size of the
//!   map) to N listeners over open connections, from this process;
//! - (d) admission plus dry run of a 100-node batch (`start-maintenance` of 100 targets with
//!   `dry_run`), then the batch itself and its undo;
//! - (c) failover: `kill -9` of the primary process, until every in-process node names the same
//!   new primary (needs at least 3 proxies besides the primary).
//!
//! Run (from the workspace root):
//!
//! ```text
//! cargo bench --bench control_plane                      # N = 1000
//! SHOAL_CP_NODES=50 cargo bench --bench control_plane    # development size
//! ```
//!
//! Knobs (environment): `SHOAL_CP_NODES` (N, default 1000), `SHOAL_CP_PROXIES` (in-process
//! proxies, default 3), `SHOAL_CP_BATCH` (default 100), `SHOAL_CP_IDLE_SECS` (default 20),
//! `SHOAL_CP_KEEPALIVE_MS` (default 1000), `SHOAL_CP_ROUNDS` (map-change repetitions, median
//! shown, default 3), `SHOAL_CP_JOIN_CONCURRENCY` (nodes starting at once, default 16),
//! `SHOAL_CP_REBALANCE=1` (leave rebalance on: every target join then starts a generation;
//! default off, see below), `SHOAL_CP_DIR` (parent of the data dirs, default `/dev/shm`),
//! `SHOAL_CP_FAILOVER_SECS` (how long to wait for a new primary, default 60), `SHOAL_NODED`.
//!
//! Rebalance is off in the cluster config by default: with it on, each of the 1,000 target
//! joins starts (and supersedes) a global rebalance on every target, which measures rebalance
//! churn rather than the control plane. Lifecycle operations then finish at once (no data to
//! move — the targets are empty anyway); the dry run still asks every target for its plan.
//!
//! Results: a table on stdout, `target/bench-control-plane.json`, and the same document under
//! the key `control_plane` of `target/bench-results.json` (merged). Run without `--bench`
//! (`cargo test --all-targets`) it does nothing.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use common::*;
use futures::StreamExt;
use serde_json::json;
use shoal_actors::client::Client;
use shoal_actors::node::{self, NodeArgs, NodeHandle};
use shoal_actors::types::config::ClusterConfig;
use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleReply, LifecycleRequest};
use shoal_actors::types::smap::{NodeId, Role};
use shoal_nodectl::playground::{LocalCluster, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

struct Settings {
    nodes: usize,
    proxies: usize,
    batch: usize,
    idle_secs: u64,
    keepalive_ms: u64,
    rounds: usize,
    join_concurrency: usize,
    rebalance: bool,
    failover_secs: u64,
    base_dir: PathBuf,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let nodes = env_usize("SHOAL_CP_NODES", 1000)?;
        let proxies = env_usize("SHOAL_CP_PROXIES", 3)?;
        if nodes < proxies + 2 {
            bail!(
                "SHOAL_CP_NODES={nodes}: need at least {} nodes",
                proxies + 2
            );
        }
        let default_dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        Ok(Settings {
            nodes,
            proxies,
            batch: env_usize("SHOAL_CP_BATCH", 100)?.min(nodes - proxies - 1),
            idle_secs: env_usize("SHOAL_CP_IDLE_SECS", 20)? as u64,
            keepalive_ms: env_usize("SHOAL_CP_KEEPALIVE_MS", 1000)? as u64,
            rounds: env_usize("SHOAL_CP_ROUNDS", 3)?.max(1),
            join_concurrency: env_usize("SHOAL_CP_JOIN_CONCURRENCY", 16)?.max(1),
            rebalance: env_usize("SHOAL_CP_REBALANCE", 0)? != 0,
            failover_secs: env_usize("SHOAL_CP_FAILOVER_SECS", 60)? as u64,
            base_dir: std::env::var_os("SHOAL_CP_DIR")
                .map(PathBuf::from)
                .unwrap_or(default_dir),
        })
    }

    fn cluster_config(&self) -> ClusterConfig {
        let mut c = ClusterConfig::default();
        c.keepalive.interval_ms = self.keepalive_ms;
        c.rebalance.enabled = self.rebalance;
        // The connection cap is the default: it grows with the map (two per member) beyond
        // `limits.max_connections`, so 1,000 keepalive links fit.
        c
    }

    /// The same settings as `noded --config` reads them.
    fn config_toml(&self) -> String {
        let c = self.cluster_config();
        format!(
            "[cluster.keepalive]\ninterval_ms = {}\n\n[cluster.rebalance]\nenabled = {}\n\n[cluster.limits]\nmax_connections = {}\n",
            c.keepalive.interval_ms, c.rebalance.enabled, c.limits.max_connections
        )
    }
}

// ---------------------------------------------------------------------------------------------
// In-process nodes
// ---------------------------------------------------------------------------------------------

struct Sim {
    name: String,
    role: Role,
    h: NodeHandle,
}

fn version_of(h: &NodeHandle) -> u64 {
    h.meta.get().smap.as_ref().map(|s| s.version).unwrap_or(0)
}

fn primary_of(h: &NodeHandle) -> Option<NodeId> {
    h.meta.get().smap.as_ref().map(|s| s.primary.clone())
}

/// Starts the in-process nodes, `conc` at a time: the proxies first, then the targets.
async fn start_nodes(
    s: &Settings,
    dir: &Path,
    primary: &str,
    cfg: &ClusterConfig,
) -> Result<(Vec<Sim>, Vec<String>)> {
    let specs: Vec<(String, Role)> = (0..s.nodes)
        .map(|i| {
            if i < s.proxies {
                (format!("p{i:04}"), Role::Proxy)
            } else {
                (format!("t{i:04}"), Role::Target)
            }
        })
        .collect();
    let t = Instant::now();
    let total = specs.len();
    let mut sims = Vec::with_capacity(total);
    let mut failed = Vec::new();
    // Proxies before targets, so that they are in every target's first map.
    for group in [Role::Proxy, Role::Target] {
        let batch: Vec<(String, Role)> =
            specs.iter().filter(|(_, r)| *r == group).cloned().collect();
        let mut stream = futures::stream::iter(batch.into_iter().map(|(name, role)| {
            let args = NodeArgs {
                role,
                listen: "127.0.0.1:0".into(),
                data_dir: dir.join(&name),
                mountpaths: vec![],
                primary: false,
                join: Some(primary.to_string()),
                standby: false,
                non_electable: false,
                cluster: cfg.clone(),
                secret: None,
            };
            async move { (name, role, node::start(args).await) }
        }))
        .buffer_unordered(s.join_concurrency);
        while let Some((name, role, r)) = stream.next().await {
            match r {
                Ok(h) => sims.push(Sim { name, role, h }),
                Err(e) => {
                    if failed.is_empty() {
                        eprintln!("!! {name} did not start: {e}");
                    }
                    failed.push(format!("{name}: {e}"));
                }
            }
            let done = sims.len() + failed.len();
            if done % 100 == 0 || done == total {
                println!(
                    "    {done}/{total} nodes started ({} failed), {:.1} s",
                    failed.len(),
                    t.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok((sims, failed))
}

/// When a new map version reached the nodes, from the request: the first node, half of them,
/// and all of them (where the time goes: a late first node means a slow sender, a wide spread
/// slow delivery or slow receivers).
#[derive(Clone, Copy, Debug, Default)]
struct Arrival {
    first: Option<Duration>,
    half: Option<Duration>,
    all: Duration,
    /// Nodes that had it when the wait ended (all of them unless it timed out).
    have: usize,
}

/// Waits until every node has a map of at least `version`, polling every 2 ms.
async fn wait_arrival(sims: &[Sim], version: u64, since: Instant, timeout: Duration) -> Arrival {
    let mut a = Arrival::default();
    loop {
        let have = sims.iter().filter(|s| version_of(&s.h) >= version).count();
        if have > 0 && a.first.is_none() {
            a.first = Some(since.elapsed());
        }
        if have * 2 >= sims.len() && a.half.is_none() {
            a.half = Some(since.elapsed());
        }
        if have == sims.len() || since.elapsed() > timeout {
            a.all = since.elapsed();
            a.have = have;
            return a;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// As [`wait_arrival`]: (time until all, how many had it).
async fn wait_all_version(
    sims: &[Sim],
    version: u64,
    since: Instant,
    timeout: Duration,
) -> (Duration, usize) {
    let a = wait_arrival(sims, version, since, timeout).await;
    (a.all, a.have)
}

/// Waits for quiet: the primary's map version reached by every node and unchanged for 300 ms.
async fn settle(client: &Client, sims: &[Sim], timeout: Duration) -> Result<u64> {
    let until = Instant::now() + timeout;
    let mut last = 0;
    loop {
        let v = client.smap().await?.version;
        let (_, have) = wait_all_version(sims, v, Instant::now(), Duration::from_secs(5)).await;
        if have == sims.len() && v == last {
            return Ok(v);
        }
        last = v;
        if Instant::now() > until {
            bail!(
                "no quiet map after {timeout:?}: version {v}, {have}/{} nodes have it",
                sims.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Baseline: a bare loopback fan-out
// ---------------------------------------------------------------------------------------------

/// Sends `bytes` to each of `n` listeners over connections opened beforehand, all at once, and
/// waits for each one's one-byte answer: the wire's cost of pushing a map of that size to `n`
/// nodes from one sender. Returns the median of `rounds` and one small round trip.
async fn fanout_baseline(n: usize, bytes: usize, rounds: usize) -> Result<(Duration, Duration)> {
    let mut conns = Vec::with_capacity(n);
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        servers.push(tokio::spawn(async move {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let _ = s.set_nodelay(true);
            let mut buf = Vec::new();
            loop {
                let Ok(len) = s.read_u32().await else { return };
                buf.resize(len as usize, 0);
                if s.read_exact(&mut buf).await.is_err() || s.write_u8(1).await.is_err() {
                    return;
                }
            }
        }));
        let c = tokio::net::TcpStream::connect(addr).await?;
        c.set_nodelay(true)?;
        conns.push(c);
    }
    let payload = Arc::new(vec![7u8; bytes]);
    // One small round trip on one connection (median of 20).
    let mut rtts = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        conns[0].write_u32(1).await?;
        conns[0].write_u8(0).await?;
        conns[0].read_u8().await?;
        rtts.push(t.elapsed());
    }
    rtts.sort();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let calls = conns.iter_mut().map(|c| {
            let p = payload.clone();
            async move {
                c.write_u32(p.len() as u32).await?;
                c.write_all(&p).await?;
                c.read_u8().await
            }
        });
        for r in futures::future::join_all(calls).await {
            r?;
        }
        times.push(t.elapsed());
    }
    drop(conns);
    for s in servers {
        s.abort();
    }
    times.sort();
    Ok((times[times.len() / 2], rtts[rtts.len() / 2]))
}

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------

/// One timed map change: the request's answer, then every node having the answer's version.
struct Change {
    reply: Duration,
    all: Duration,
    have: usize,
    version: u64,
    arrival: Arrival,
}

async fn timed_change(
    client: &Client,
    sims: &[Sim],
    op: LifecycleOp,
    nodes: Vec<NodeId>,
) -> Result<(Change, LifecycleReply)> {
    let t = Instant::now();
    let reply = client
        .lifecycle(LifecycleRequest::new(op, nodes))
        .await
        .with_context(|| format!("{op}"))?;
    let answered = t.elapsed();
    let arrival = wait_arrival(sims, reply.smap_version, t, Duration::from_secs(60)).await;
    Ok((
        Change {
            reply: answered,
            all: arrival.all,
            have: arrival.have,
            version: reply.smap_version,
            arrival,
        },
        reply,
    ))
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.0} ms", ms(d)))
        .unwrap_or_else(|| "never".into())
}

/// `first node 12 ms, half 40 ms`.
fn spread(a: &Arrival) -> String {
    format!("first node {}, half {}", opt_ms(a.first), opt_ms(a.half))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "control-plane bench: run it with `cargo bench --bench control_plane` (skipped in test mode)"
        );
        return Ok(());
    }
    let s = Settings::from_env()?;
    let nofile = raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let res = rt.block_on(run(s, nofile));
    // In-process nodes that did not stop in time are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_secs(5));
    res
}

async fn run(s: Settings, nofile: u64) -> Result<()> {
    let noded = noded_path()?;
    let root = tempfile::Builder::new()
        .prefix("shoal-cp-")
        .tempdir_in(&s.base_dir)
        .with_context(|| format!("temp dir in {}", s.base_dir.display()))?;
    let need_fds = s.nodes * 4 + 256;
    println!(
        "Shoal control-plane bench: primary (process) + {} in-process nodes ({} proxies, {} targets), keepalive {} ms, rebalance {}, {} cores, load {}",
        s.nodes,
        s.proxies,
        s.nodes - s.proxies,
        s.keepalive_ms,
        if s.rebalance { "on" } else { "off" },
        cores(),
        loadavg()
    );
    println!(
        "  noded: {}; data: {}; open files limit {nofile} (about {need_fds} needed)",
        noded.display(),
        root.path().display()
    );
    if (nofile as usize) < need_fds {
        eprintln!(
            "!! the open-files limit may be too low for {} nodes",
            s.nodes
        );
    }
    let cfg = s.cluster_config();
    let cfg_file = root.path().join("cluster.toml");
    std::fs::write(&cfg_file, s.config_toml())?;
    let me = std::process::id();
    let total = Instant::now();

    // The primary, alone.
    let mut lc = LocalCluster::new(noded.clone(), root.path().join("procs"));
    lc.config = Some(cfg_file);
    std::fs::create_dir_all(&lc.dir)?;
    lc.add("primary", Role::Proxy, free_port()?, 0, &[])?;
    let primary_addr = lc.procs["primary"].addr.clone();
    let ppid = lc.procs["primary"]
        .child
        .as_ref()
        .map(|c| c.id())
        .ok_or_else(|| anyhow!("primary did not start"))?;
    let client = lc.client().with_timeout(Duration::from_secs(120));
    let until = Instant::now() + Duration::from_secs(30);
    let old_primary = loop {
        match client.smap().await {
            Ok(m) => break m.primary,
            Err(e) if Instant::now() > until => bail!("primary not up: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let base_secs = s.idle_secs.clamp(1, 5);
    println!("  primary up ({primary_addr}); its CPU alone for {base_secs} s ...");
    let c0 = cpu_time(ppid).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(base_secs)).await;
    let cpu_alone = (cpu_time(ppid).unwrap_or_default() - c0).as_secs_f64() / base_secs as f64;

    // Bring-up.
    println!(
        "  starting {} in-process nodes, {} at a time ...",
        s.nodes, s.join_concurrency
    );
    let (c0, b0, t0) = (
        cpu_time(ppid).unwrap_or_default(),
        cpu_time(me).unwrap_or_default(),
        Instant::now(),
    );
    let (sims, failed) = start_nodes(&s, &root.path().join("nodes"), &primary_addr, &cfg).await?;
    let started = t0.elapsed();
    let settle_timeout = Duration::from_secs(120 + s.nodes as u64 / 5);
    let v_up = settle(&client, &sims, settle_timeout).await?;
    let up = t0.elapsed();
    let upcpu = (
        (cpu_time(ppid).unwrap_or_default() - c0).as_secs_f64(),
        (cpu_time(me).unwrap_or_default() - b0).as_secs_f64(),
    );
    let smap_bytes = std::fs::metadata(lc.procs["primary"].data_dir.join("smap.msgpack"))
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    println!(
        "  {} nodes up in {:.1} s (joined {:.1} s), map v{v_up}, {smap_bytes} bytes encoded; primary CPU {:.1} s, this process {:.1} s",
        sims.len(),
        up.as_secs_f64(),
        started.as_secs_f64(),
        upcpu.0,
        upcpu.1
    );

    // Baseline for the map push.
    println!(
        "  baseline: loopback fan-out of {smap_bytes} bytes to {} listeners ...",
        sims.len()
    );
    let (fanout, rtt) = fanout_baseline(sims.len(), smap_bytes.max(1), 3).await?;

    // (b) idle CPU of the primary.
    println!(
        "  (b) idle: the primary's CPU over {} s with {} nodes heartbeating ...",
        s.idle_secs,
        sims.len()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (c0, b0, t0) = (
        cpu_time(ppid).unwrap_or_default(),
        cpu_time(me).unwrap_or_default(),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(s.idle_secs.max(1))).await;
    let window = t0.elapsed().as_secs_f64();
    let cpu_idle = (cpu_time(ppid).unwrap_or_default() - c0).as_secs_f64() / window;
    let cpu_sims = (cpu_time(me).unwrap_or_default() - b0).as_secs_f64() / window;
    let primary_rss = status_kb(ppid, "VmRSS").unwrap_or(0);
    let bench_rss = status_kb(me, "VmRSS").unwrap_or(0);

    // (a) map changes.
    let targets: Vec<&Sim> = sims.iter().filter(|x| x.role == Role::Target).collect();
    let one = targets
        .first()
        .ok_or_else(|| anyhow!("no in-process target"))?;
    println!(
        "  (a) map change: start/stop-maintenance of {} ({}), {} round(s) ...",
        one.name, one.h.id, s.rounds
    );
    let mut starts = Vec::new();
    let mut stops = Vec::new();
    for _ in 0..s.rounds {
        let (c, _) = timed_change(
            &client,
            &sims,
            LifecycleOp::StartMaintenance,
            vec![one.h.id.clone()],
        )
        .await?;
        println!(
            "    start-maintenance: answered {:.0} ms, v{} on {}/{} nodes after {:.0} ms ({})",
            ms(c.reply),
            c.version,
            c.have,
            sims.len(),
            ms(c.all),
            spread(&c.arrival)
        );
        starts.push(c);
        settle(&client, &sims, settle_timeout).await?;
        let (c, _) = timed_change(
            &client,
            &sims,
            LifecycleOp::StopMaintenance,
            vec![one.h.id.clone()],
        )
        .await?;
        println!(
            "    stop-maintenance:  answered {:.0} ms, v{} on {}/{} nodes after {:.0} ms ({})",
            ms(c.reply),
            c.version,
            c.have,
            sims.len(),
            ms(c.all),
            spread(&c.arrival)
        );
        stops.push(c);
        settle(&client, &sims, settle_timeout).await?;
    }

    // (d) admission + dry run of a batch, then the batch and its undo.
    let batch: Vec<NodeId> = targets
        .iter()
        .skip(1)
        .take(s.batch)
        .map(|x| x.h.id.clone())
        .collect();
    println!(
        "  (d) dry run of start-maintenance of {} targets, {} round(s) ...",
        batch.len(),
        s.rounds
    );
    let mut dry = Vec::new();
    let mut plan_note = String::new();
    for _ in 0..s.rounds {
        let t = Instant::now();
        let r = client
            .lifecycle(LifecycleRequest {
                op: LifecycleOp::StartMaintenance,
                nodes: batch.clone(),
                no_rebalance: false,
                rm_user_data: false,
                dry_run: true,
            })
            .await?;
        dry.push(t.elapsed());
        if let Some(p) = &r.plan {
            plan_note = format!(
                "plan: {} moves, {} capacity rows, {} warnings, fits {}",
                p.moves.len(),
                p.capacity.len(),
                p.warnings.len(),
                p.fits
            );
        }
        println!("    dry run: {:.0} ms; {plan_note}", ms(t.elapsed()));
    }
    println!("  (d) the batch itself, then stop-maintenance of it ...");
    let (batch_start, _) =
        timed_change(&client, &sims, LifecycleOp::StartMaintenance, batch.clone()).await?;
    settle(&client, &sims, settle_timeout).await?;
    let (batch_stop, _) =
        timed_change(&client, &sims, LifecycleOp::StopMaintenance, batch.clone()).await?;
    settle(&client, &sims, settle_timeout).await?;
    for (what, c) in [("start", &batch_start), ("stop", &batch_stop)] {
        println!(
            "    {what}-maintenance of {}: answered {:.0} ms, v{} on {}/{} nodes after {:.0} ms ({})",
            batch.len(),
            ms(c.reply),
            c.version,
            c.have,
            sims.len(),
            ms(c.all),
            spread(&c.arrival)
        );
    }

    // (c) failover.
    let proxies_in = sims.iter().filter(|x| x.role == Role::Proxy).count();
    println!("  (c) failover: kill -9 the primary ({proxies_in} proxies remain) ...");
    let t = Instant::now();
    lc.kill9("primary")?;
    let killed = t.elapsed();
    let limit = Duration::from_secs(s.failover_secs);
    let mut first_new: Option<Duration> = None;
    let mut last_print = Instant::now();
    // (time since the kill, nodes agreeing on the new primary), every 5 s.
    let mut timeline: Vec<(Duration, usize)> = Vec::new();
    let (failover, agreed, new_primary) = loop {
        let mut counts: std::collections::HashMap<NodeId, usize> = Default::default();
        for x in &sims {
            if let Some(p) = primary_of(&x.h)
                && p != old_primary
            {
                *counts.entry(p).or_default() += 1;
            }
        }
        let best = counts.into_iter().max_by_key(|(_, n)| *n);
        if best.is_some() && first_new.is_none() {
            first_new = Some(t.elapsed());
        }
        let n = best.as_ref().map(|(_, n)| *n).unwrap_or(0);
        if n == sims.len() || t.elapsed() > limit {
            break (t.elapsed(), n, best.map(|(p, _)| p));
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            last_print = Instant::now();
            timeline.push((t.elapsed(), n));
            println!(
                "    {:.0} s: {n}/{} nodes name a new primary",
                t.elapsed().as_secs_f64(),
                sims.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let failover_ok = agreed == sims.len();
    println!(
        "    {agreed}/{} nodes agree on {} after {:.2} s (first node: {})",
        sims.len(),
        new_primary
            .as_ref()
            .map(|p| format!("p[{p}]"))
            .unwrap_or_else(|| "no new primary".into()),
        failover.as_secs_f64(),
        opt_ms(first_new)
    );

    // Stop everything.
    let running = sims.len();
    println!("  stopping {running} in-process nodes ...");
    let stop = futures::future::join_all(sims.into_iter().map(|x| x.h.stop()));
    if tokio::time::timeout(Duration::from_secs(60), stop)
        .await
        .is_err()
    {
        eprintln!("!! some in-process nodes did not stop within 60 s");
    }
    lc.stop_all();
    let total = total.elapsed();

    // ---- table ------------------------------------------------------------------------------
    let n = s.nodes;
    let med =
        |v: &[Change], f: fn(&Change) -> Duration| median(&v.iter().map(f).collect::<Vec<_>>());
    let start_all = med(&starts, |c| c.all);
    let stop_all = med(&stops, |c| c.all);
    let dry_med = median(&dry);
    println!();
    println!(
        "== Shoal control-plane bench: primary process + {n} in-process nodes ({} proxies), keepalive {} ms ({:.0} s; load average now {}) ==",
        s.proxies,
        s.keepalive_ms,
        total.as_secs_f64(),
        loadavg()
    );
    println!(
        "{:<44} {:>12} {:>10} {:>22}   note",
        "line", "measured", "goal", "baseline"
    );
    println!(
        "{:<44} {:>10.1} s {:>10} {:>22}   {} failed to start; map v{v_up}, {smap_bytes} B; CPU primary {:.1} s, in-process nodes {:.1} s",
        format!("bring-up: {running} of {n} nodes joined"),
        up.as_secs_f64(),
        "",
        "",
        failed.len(),
        upcpu.0,
        upcpu.1
    );
    println!(
        "{:<44} {:>9.0} ms {:>10} {:>19.1} ms   {:.1}x; answered {:.0} ms; first node {:.0} ms, half {:.0} ms; baseline = loopback fan-out of {smap_bytes} B to {running} (one RTT {:.0} us)",
        "(a) map change reaches all nodes (start-m.)",
        ms(start_all),
        "<= 1 s",
        ms(fanout),
        start_all.as_secs_f64() / fanout.as_secs_f64().max(1e-9),
        ms(med(&starts, |c| c.reply)),
        ms(med(&starts, |c| c.arrival.first.unwrap_or(c.all))),
        ms(med(&starts, |c| c.arrival.half.unwrap_or(c.all))),
        rtt.as_secs_f64() * 1e6
    );
    println!(
        "{:<44} {:>9.0} ms {:>10} {:>19.1} ms   {:.1}x; answered {:.0} ms (stop-maintenance probes the node first)",
        "(a) map change reaches all nodes (stop-m.)",
        ms(stop_all),
        "<= 1 s",
        ms(fanout),
        stop_all.as_secs_f64() / fanout.as_secs_f64().max(1e-9),
        ms(med(&stops, |c| c.reply)),
    );
    println!(
        "{:<44} {:>10.1} % {:>10} {:>20.1} %   of one core over {window:.0} s; baseline = the primary alone; the {running} in-process nodes used {:.0} % of one core",
        "(b) primary CPU, idle, keepalives",
        cpu_idle * 100.0,
        "<= 10 %",
        cpu_alone * 100.0,
        cpu_sims * 100.0
    );
    println!(
        "{:<44} {:>10.2} s {:>10} {:>22}   {agreed}/{} agree{}; first node: {}; detection alone is num_retries x interval",
        "(c) failover (kill -9 primary)",
        failover.as_secs_f64(),
        "<= 3 s",
        "",
        running,
        if failover_ok { "" } else { " (TIMED OUT)" },
        opt_ms(first_new)
    );
    println!(
        "{:<44} {:>9.0} ms {:>10} {:>22}   {plan_note}",
        format!("(d) admission + dry run, {} targets", batch.len()),
        ms(dry_med),
        "",
        ""
    );
    println!(
        "{:<44} {:>9.0} ms {:>10} {:>22}   answered {:.0} ms; stop-maintenance of the batch: all {:.0} ms, answered {:.0} ms",
        "(d) the batch: start-maint. reaches all",
        ms(batch_start.all),
        "",
        "",
        ms(batch_start.reply),
        ms(batch_stop.all),
        ms(batch_stop.reply)
    );
    println!(
        "memory: primary RSS {:.1} MiB; this process (the {running} nodes) {:.1} MiB = {:.0} KiB per node",
        mib(primary_rss),
        mib(bench_rss),
        bench_rss as f64 / running.max(1) as f64
    );

    let change_json = |c: &Change| json!({"reply_ms": round3(ms(c.reply)), "all_ms": round3(ms(c.all)), "nodes_with_it": c.have, "version": c.version});
    let doc = json!({
        "cores": cores(), "loadavg_end": loadavg(),
        "nodes": n, "nodes_running": running, "proxies_in_process": s.proxies, "keepalive_ms": s.keepalive_ms,
        "rebalance_enabled": s.rebalance, "join_concurrency": s.join_concurrency,
        "total_secs": round3(total.as_secs_f64()),
        "bring_up": {
            "secs": round3(up.as_secs_f64()), "started_secs": round3(started.as_secs_f64()),
            "failed": failed, "smap_version": v_up, "smap_bytes": smap_bytes,
            "primary_cpu_secs": round3(upcpu.0), "in_process_cpu_secs": round3(upcpu.1),
        },
        "map_change": {
            "goal_ms": 1000,
            "start_maintenance": starts.iter().map(change_json).collect::<Vec<_>>(),
            "stop_maintenance": stops.iter().map(change_json).collect::<Vec<_>>(),
            "median_all_ms_start": round3(ms(start_all)), "median_all_ms_stop": round3(ms(stop_all)),
            "baseline_fanout_ms": round3(ms(fanout)), "baseline_rtt_us": round3(rtt.as_secs_f64() * 1e6),
        },
        "idle_cpu": {
            "goal_pct": 10, "window_secs": round3(window),
            "primary_pct": round3(cpu_idle * 100.0), "primary_alone_pct": round3(cpu_alone * 100.0),
            "in_process_nodes_pct": round3(cpu_sims * 100.0),
        },
        "failover": {
            "goal_secs": 3, "secs": round3(failover.as_secs_f64()), "kill_secs": round3(killed.as_secs_f64()),
            "first_node_secs": first_new.map(|d| round3(d.as_secs_f64())),
            "agreed": agreed, "complete": failover_ok,
            "timeline": timeline.iter().map(|(d, n)| json!([round3(d.as_secs_f64()), n])).collect::<Vec<_>>(),
            "new_primary": new_primary.map(|p| p.0),
        },
        "batch": {
            "size": batch.len(),
            "dry_run_ms": dry.iter().map(|d| round3(ms(*d))).collect::<Vec<_>>(),
            "dry_run_median_ms": round3(ms(dry_med)), "plan": plan_note,
            "start_maintenance": change_json(&batch_start), "stop_maintenance": change_json(&batch_stop),
        },
        "memory_mib": { "primary_rss": round3(mib(primary_rss)), "in_process_rss": round3(mib(bench_rss)) },
    });
    let (own, merged) = write_results("control_plane", "bench-control-plane.json", &doc)?;
    println!();
    println!(
        "results: {} (and key \"control_plane\" of {})",
        own.display(),
        merged.display()
    );
    drop(root);
    Ok(())
}
