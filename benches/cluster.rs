//! Cluster benchmarks (DESIGN §12): real `noded` processes on 127.0.0.1, each figure next to a
//! baseline measured in the same run on the same disk. These are measurements, never assertions:
//! nothing here fails because something was slow.
//!
//! What is measured:
//! 1. Data path: put/get throughput through 1 proxy + 3 targets (2 mountpaths each) with the
//!    typed client, 4 KiB and 1 MiB objects, against raw `write + fsync + rename` and raw reads
//!    of the same count and sizes at the same concurrency, and against the bare wire (a
//!    request/response of the same payload over loopback TCP, same concurrency and runtime:
//!    what one round trip costs here, with no disk), and against a bare server over that wire
//!    (each put's body written, fsynced and renamed with a directory fsync, each get's answer
//!    read from its file: what the wire and the disk cost together, before any work of
//!    ours); peak RSS of every node meanwhile.
//! 2. Rebalance: decommission of a target holding (a) ≥ 1 GiB in 1 MiB objects and (b) ≥ 50,000
//!    objects of 4 KiB, timed from the lifecycle request to `state == "finished"`, against
//!    `cp -r <its mountpaths> && sync` of the same files; peak RSS of the sender and receivers.
//! 3. Idle: RSS of an idle proxy and targets, and the start time of the cluster (first process
//!    spawned → every node joined → join rebalances settled).
//! 4. The smallest rebalance: generations with nothing to move (an empty target into
//!    maintenance and back), from the lifecycle request to `finished`.
//!
//! Run (from the workspace root; `cargo bench` builds `noded` in the same profile):
//!
//! ```text
//! cargo bench --bench cluster                          # full (default), ~3-4 min on 2 cores
//! SHOAL_BENCH_SCALE=small cargo bench --bench cluster  # ~30 s smoke run, for CI
//! cargo bench --bench cluster -- datapath              # only sections whose name contains
//!                                                      # the filter: datapath, rebalance-1mib,
//!                                                      # rebalance-4kib, rebalance-4kib-tenth,
//!                                                      # rebalance-empty
//!                                                      # (idle is always measured)
//! ```
//!
//! Results: a table on stdout and `target/bench-results.json`.
//!
//! Knobs (environment): `SHOAL_BENCH_SCALE=small|full`; `SHOAL_BENCH_DIR` (parent of the temp
//! dir, default the system temp dir — all data and baselines go there, on one disk);
//! `SHOAL_BENCH_CONCURRENCY` (default 8); `SHOAL_BENCH_ROUNDS` (data-path rounds, median
//! reported; full 5, small 1); `SHOAL_BENCH_DP_4K` / `SHOAL_BENCH_DP_1M` (data-path
//! object counts); `SHOAL_BENCH_REB_1M` / `SHOAL_BENCH_REB_4K` (objects on the decommissioned
//! target); `SHOAL_NODED` (a `noded` binary to use instead of the one cargo built).
//!
//! Run without `--bench` (e.g. by `cargo test --all-targets`) it does nothing.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use shoal_actors::client::Client;
use shoal_actors::logic::placement;
use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleRequest};
use shoal_actors::types::smap::{NodeId, Role};
use shoal_actors::types::status::RebalanceStatus;
use shoal_nodectl::playground::{LocalCluster, free_port};

mod common;
use common::{
    CpuMeter, RssSampler, RunStats, env_usize, kb_json, mib, round3, status_kb, sync_dir, sync_fs,
    target_dir,
};

const BUCKET: &str = "bench";
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const TARGETS: usize = 3;
const MOUNTPATHS: usize = 2;
/// Concurrency used to load data that is not itself measured.
const LOAD_CONCURRENCY: usize = 16;

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

struct Settings {
    scale: String,
    concurrency: usize,
    rounds: usize,
    dp_4k: usize,
    dp_1m: usize,
    reb_1m: usize,
    reb_4k: usize,
    base_dir: PathBuf,
    filters: Vec<String>,
}

impl Settings {
    fn from_env(filters: Vec<String>) -> Result<Self> {
        let scale = std::env::var("SHOAL_BENCH_SCALE").unwrap_or_else(|_| "full".into());
        // (dp 4 KiB, dp 1 MiB, rebalance 1 MiB objects, rebalance 4 KiB objects)
        let (a, b, c, d, r) = match scale.as_str() {
            "full" => (5_000, 300, 1_024, 50_000, 5),
            "small" => (1_000, 50, 100, 5_000, 1),
            other => bail!("SHOAL_BENCH_SCALE must be small or full, not {other:?}"),
        };
        Ok(Settings {
            scale,
            concurrency: env_usize("SHOAL_BENCH_CONCURRENCY", 8)?.max(1),
            rounds: env_usize("SHOAL_BENCH_ROUNDS", r)?.max(1),
            dp_4k: env_usize("SHOAL_BENCH_DP_4K", a)?,
            dp_1m: env_usize("SHOAL_BENCH_DP_1M", b)?,
            reb_1m: env_usize("SHOAL_BENCH_REB_1M", c)?,
            reb_4k: env_usize("SHOAL_BENCH_REB_4K", d)?,
            base_dir: std::env::var_os("SHOAL_BENCH_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            filters,
        })
    }

    fn wants(&self, section: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| section.contains(f.as_str()))
    }
}

fn noded_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SHOAL_NODED") {
        return Ok(PathBuf::from(p));
    }
    // Cargo sets this for benches as for integration tests, and builds `noded` in the same
    // profile before the bench.
    let p = PathBuf::from(env!("CARGO_BIN_EXE_noded"));
    if p.exists() {
        return Ok(p);
    }
    // Fallback: next to the bench executable's profile dir (target/<profile>/deps/cluster-*).
    let exe = std::env::current_exe()?;
    if let Some(c) = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("noded"))
        && c.exists()
    {
        return Ok(c);
    }
    bail!(
        "noded not found at {} (build it first: cargo build --release --bins)",
        p.display()
    )
}

// ---------------------------------------------------------------------------------------------
// Memory: /proc/<pid>/status
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

struct Bench {
    lc: LocalCluster,
    client: Client,
    dir: PathBuf,
    /// First spawn → every node in the primary's map.
    joined: Duration,
    /// First spawn → join rebalances finished (the cluster is usable).
    settled: Duration,
}

impl Bench {
    async fn start(noded: &Path, dir: PathBuf) -> Result<Bench> {
        std::fs::create_dir_all(&dir)?;
        let mut lc = LocalCluster::new(noded.to_path_buf(), dir.clone());
        let t0 = Instant::now();
        // As `nodectl playground` does: the primary first, then everyone joins through it.
        lc.add("proxy0", Role::Proxy, free_port()?, 0, &[])?;
        let client = lc.client().with_timeout(Duration::from_secs(2));
        wait_nodes(&client, 1, Duration::from_secs(20)).await?;
        for i in 0..TARGETS {
            lc.add(
                &format!("target{i}"),
                Role::Target,
                free_port()?,
                MOUNTPATHS,
                &[],
            )?;
        }
        wait_nodes(&client, 1 + TARGETS, Duration::from_secs(30)).await?;
        let joined = t0.elapsed();
        // The primary starts a join's rebalance in the same step that adds the node, so once
        // every node is in the map, "no rebalance running" means the joins have settled.
        wait_rebalance_idle(&client, Duration::from_secs(60)).await?;
        let settled = t0.elapsed();
        let client = lc.client();
        client.create_bucket(BUCKET).await?;
        Ok(Bench {
            lc,
            client,
            dir,
            joined,
            settled,
        })
    }

    fn pids(&self) -> Vec<(String, u32)> {
        common::pids_of(&self.lc)
    }

    fn target_names(&self) -> Vec<String> {
        common::target_names_of(&self.lc)
    }

    async fn id(&self, name: &str) -> Result<NodeId> {
        common::id_of(&self.lc, &self.client, name).await
    }

    /// Stops every node. The cluster's directory stays until the bench ends (see [`done_with`]).
    fn finish(mut self) {
        self.lc.stop_all();
    }
}

/// Polls the primary's map every 10 ms (finer than `LocalCluster::wait_ready`, which this
/// mirrors) until it lists `n` nodes.
async fn wait_nodes(client: &Client, n: usize, timeout: Duration) -> Result<()> {
    let until = Instant::now() + timeout;
    loop {
        let last = match client.smap().await {
            Ok(s) if s.proxies.len() + s.targets.len() >= n => return Ok(()),
            Ok(s) => format!("{} of {n} nodes joined", s.proxies.len() + s.targets.len()),
            Err(e) => e.to_string(),
        };
        if Instant::now() > until {
            bail!("cluster not ready after {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The smallest rebalance (issue #15, item 4): on an empty cluster, a target goes into
/// maintenance and back, `rounds` times; each generation has nothing to move. Seconds from the
/// lifecycle request to the generation's `finished` state, polled every 2 ms (so the figure
/// is the cluster's own floor, not the poll's).
async fn empty_rebalances(b: &Bench, rounds: usize) -> Result<Vec<f64>> {
    let victim = b.id("target0").await?;
    let mut secs = Vec::new();
    for i in 0..rounds * 2 {
        let op = if i % 2 == 0 {
            LifecycleOp::StartMaintenance
        } else {
            LifecycleOp::StopMaintenance
        };
        let t = Instant::now();
        let reply = b
            .client
            .lifecycle(LifecycleRequest::new(op, vec![victim.clone()]))
            .await?;
        let rid = reply
            .rebalance_id
            .ok_or_else(|| anyhow!("{op:?} started no rebalance"))?;
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(r)) = b.client.rebalance_status().await
                && r.id == rid
                && !r.is_running()
            {
                break;
            }
            if Instant::now() > until {
                bail!("the empty rebalance {rid} did not finish within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        secs.push(t.elapsed().as_secs_f64());
        // The next request must not find the cluster busy finalising this one.
        wait_rebalance_idle(&b.client, Duration::from_secs(60)).await?;
    }
    Ok(secs)
}

async fn wait_rebalance_idle(client: &Client, timeout: Duration) -> Result<()> {
    let until = Instant::now() + timeout;
    loop {
        match client.rebalance_status().await {
            Ok(None) => return Ok(()),
            Ok(Some(r)) if !r.is_running() => return Ok(()),
            _ => {}
        }
        if Instant::now() > until {
            bail!("rebalance still running after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Load generation
// ---------------------------------------------------------------------------------------------

/// Random bytes; object `i` of `size` is a slice of it at an offset depending on `i`.
struct Pool(Vec<u8>);

impl Pool {
    fn new() -> Self {
        let mut v = vec![0u8; 4 * MIB];
        rand::rngs::StdRng::seed_from_u64(7).fill(&mut v[..]);
        Pool(v)
    }
    fn obj(&self, i: usize, size: usize) -> &[u8] {
        let span = self.0.len() - size;
        let off = (i.wrapping_mul(4099)) % span.max(1);
        &self.0[off..off + size]
    }
}

/// Runs `f(0..n)` on `conc` tokio tasks pulling indices from a shared counter.
async fn run_tasks<F, Fut>(n: usize, conc: usize, f: F) -> RunStats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64>> + Send,
{
    common::run_tasks(0..n, conc, Arc::new(AtomicUsize::new(0)), f).await
}

/// Same as [`run_tasks`] with OS threads, for the raw file-system baselines.
fn run_threads<F>(n: usize, conc: usize, f: F) -> RunStats
where
    F: Fn(usize) -> std::io::Result<u64> + Send + Sync,
{
    let next = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let first_error = std::sync::Mutex::new(None::<String>);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..conc {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    match f(i) {
                        Ok(b) => {
                            bytes.fetch_add(b, Ordering::Relaxed);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap()
                                .get_or_insert(format!("#{i}: {e}"));
                        }
                    }
                }
            });
        }
    });
    RunStats {
        secs: t.elapsed().as_secs_f64(),
        ops: n,
        bytes: bytes.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        first_error: first_error.into_inner().unwrap(),
        cpu_secs: None,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Data path
// ---------------------------------------------------------------------------------------------

struct DataPath {
    label: String,
    size: usize,
    raw_put: RunStats,
    raw_put_dirsync: RunStats,
    raw_get: RunStats,
    put: RunStats,
    get: RunStats,
    /// The bare wire: the same payloads, request/response over loopback TCP.
    wire_put: RunStats,
    wire_get: RunStats,
    /// A bare server over that wire: bodies stored durably, answers read from files.
    server_put: RunStats,
    server_get: RunStats,
    /// Every round, for the JSON.
    all_rounds: Vec<Value>,
    /// Lowest and highest MB/s over the rounds, in the order raw put, raw put+dirsync, raw get,
    /// cluster put, cluster get, wire put, wire get, server put, server get.
    spread: [(f64, f64); 9],
    /// Failed operations summed over every round, in the order of `spread`: a failed round's
    /// MB/s is meaningless, and the median alone would hide it.
    failed: [u64; 9],
    /// Machine CPU per operation (µs) over all rounds, in the order of `spread`.
    cpu: [Option<f64>; 9],
    /// Peak RSS per node during the cluster put+get, kB.
    rss: BTreeMap<String, u64>,
}

/// Removes a directory the bench is done with, unless its objects are small: those stay until
/// the bench's temp dir goes at the very end. On ext4 without a journal, every new file skips
/// the inodes freed in the last one to six minutes (`recently_deleted`, re-checked for each
/// create), so deleting thousands of small files taxed every file made after them: a third of
/// the machine's CPU in a profile of 4 KiB puts, and whichever writer ran next after the
/// deletes decided the 4 KiB PUT ratio (0.45x in one run, 1.50x in another). A few hundred
/// 1 MiB files cost little to delete and much disk to keep.
fn done_with(dir: &Path, size: usize) {
    if size >= MIB {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `write + fsync + rename` into `dir` (plus an fsync of the directory with `dirsync`, which
/// is what the cluster does to make the rename durable).
fn raw_writes(
    dir: &Path,
    n: usize,
    size: usize,
    conc: usize,
    pool: &Pool,
    dirsync: bool,
) -> RunStats {
    std::fs::create_dir_all(dir).expect("raw dir");
    sync_dir(dir).ok();
    run_threads(n, conc, |i| {
        let data = pool.obj(i, size);
        store(dir, i, data, dirsync)?;
        Ok(data.len() as u64)
    })
}

/// Stores `data` as `dir/obj-<i>`: written to a temp file, fsynced, renamed into place, and
/// with `dirsync` the rename made durable too. The raw baselines and the bare server's puts.
fn store(dir: &Path, i: usize, data: &[u8], dirsync: bool) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!(".tmp-{i}"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(format!("obj-{i:06}")))?;
    if dirsync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Size of a bare-wire request or response header: what any protocol needs at least (an
/// operation, a name, a length), so the wire baseline is not flattered by empty messages.
const WIRE_HEADER: usize = 64;

/// The bare wire (issue #15, item 2): what loopback TCP itself allows on this machine at the
/// same payload size, concurrency and runtime as the cluster's data path. A server answers each
/// request (a header, then `req` bytes) with a header and `resp` bytes; `conc` clients, one
/// connection each, pull request indices from a shared counter. One round trip per operation,
/// no disk: the ceiling any request/response data path can reach here.
async fn wire(n: usize, conc: usize, req: usize, resp: usize) -> Result<RunStats> {
    wire_serving(n, conc, req, resp, Serve::Echo).await
}

/// What the bare server does with a request besides answering it. Storing or loading makes it
/// the least a storage server must do over this wire and this disk: the cluster's put and get
/// against it say what the cluster's own work costs, apart from what loopback TCP and the disk
/// cost together.
#[derive(Clone)]
enum Serve {
    /// Nothing: the wire alone.
    Echo,
    /// Stores the request's body as `obj-<index>` in the directory as the raw baseline with
    /// dirsync does (write, fsync, rename, fsync of the directory) before answering.
    Store(PathBuf),
    /// Answers with the body of `obj-<index>` from the directory, read whole.
    Load(PathBuf),
}

async fn wire_serving(
    n: usize,
    conc: usize,
    req: usize,
    resp: usize,
    serve: Serve,
) -> Result<RunStats> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if let Serve::Store(dir) = &serve {
        std::fs::create_dir_all(dir)?;
    }
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let server = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let serve = serve.clone();
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let (mut r, mut w) = tokio::io::split(tokio::io::BufStream::new(s));
                let mut reply = vec![0u8; WIRE_HEADER + resp];
                reply[..8].copy_from_slice(&(resp as u64).to_le_bytes());
                let mut buf = vec![0u8; WIRE_HEADER + req];
                loop {
                    if r.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let i = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
                    // A store's fsyncs go to the blocking pool (on a worker they would stall
                    // the other connections), its buffer there and back instead of copied; a
                    // load from the page cache is read in place, the fastest way.
                    let done = match &serve {
                        Serve::Echo => Ok(()),
                        Serve::Store(dir) => {
                            let dir = dir.clone();
                            let (b, res) = tokio::task::spawn_blocking(move || {
                                let res = store(&dir, i as usize, &buf[WIRE_HEADER..], true);
                                (buf, res)
                            })
                            .await
                            .expect("store task");
                            buf = b;
                            res
                        }
                        Serve::Load(dir) => {
                            use std::io::Read;
                            std::fs::File::open(dir.join(format!("obj-{i:06}")))
                                .and_then(|mut f| f.read_exact(&mut reply[WIRE_HEADER..]))
                        }
                    };
                    if done.is_err()
                        || w.write_all(&reply).await.is_err()
                        || w.flush().await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let mut s = tokio::io::BufStream::new(s);
            let mut msg = vec![0u8; WIRE_HEADER + req];
            msg[..8].copy_from_slice(&(req as u64).to_le_bytes());
            let mut back = vec![0u8; WIRE_HEADER + resp];
            let mut bytes = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                msg[8..16].copy_from_slice(&(i as u64).to_le_bytes());
                s.write_all(&msg).await?;
                s.flush().await?;
                s.read_exact(&mut back).await?;
                bytes += req.max(resp) as u64;
            }
            anyhow::Ok(bytes)
        }));
    }
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    server.abort();
    Ok(RunStats {
        secs,
        ops: n,
        bytes,
        errors: 0,
        first_error: None,
        cpu_secs: None,
    })
}

fn raw_reads(dir: &Path, n: usize, conc: usize) -> RunStats {
    run_threads(n, conc, |i| {
        let v = std::fs::read(dir.join(format!("obj-{i:06}")))?;
        Ok(std::hint::black_box(v).len() as u64)
    })
}

async fn data_path(
    b: &Bench,
    s: &Settings,
    pool: &Arc<Pool>,
    label: &str,
    n: usize,
    size: usize,
) -> Result<DataPath> {
    let conc = s.concurrency;
    println!(
        "  data path {label}: {n} objects, concurrency {conc}, {} round(s)",
        s.rounds
    );
    // Rounds interleave baseline and cluster so that a noisy disk moment hits both; the table
    // shows the median round of each operation.
    let mut rounds: Vec<[RunStats; 9]> = Vec::new();
    let sampler = RssSampler::start(b.pids());
    for round in 0..s.rounds {
        // A directory per round: writing the same names again would free the last round's
        // inodes (see `done_with`).
        let raw_dir = b.dir.join(format!("raw-{label}-r{round}"));
        let raw_dir2 = b.dir.join(format!("raw-{label}-dirsync-r{round}"));
        let prefix = format!("dp-{label}/r{round}/obj-");
        // The four writers take turns going first: on a shared virtual disk, fsync latency
        // drifts, and whoever runs right after a burst of deletes pays for it.
        let server_dir = b.dir.join(format!("server-{label}-r{round}"));
        let (mut raw_put, mut raw_put_dirsync, mut put, mut server_put) = (None, None, None, None);
        for k in 0..4 {
            match (k + round) % 4 {
                0 => {
                    let m = CpuMeter::start();
                    let r = m.stamp(raw_writes(&raw_dir, n, size, conc, pool, false));
                    r.warn("raw write");
                    raw_put = Some(r);
                }
                1 => {
                    let m = CpuMeter::start();
                    let r = m.stamp(raw_writes(&raw_dir2, n, size, conc, pool, true));
                    r.warn("raw write+dirsync");
                    raw_put_dirsync = Some(r);
                }
                2 => {
                    let serve = Serve::Store(server_dir.clone());
                    let m = CpuMeter::start();
                    server_put = Some(m.stamp(wire_serving(n, conc, size, 0, serve).await?))
                }
                _ => {
                    let (c, p, pre) = (b.client.clone(), pool.clone(), prefix.clone());
                    let m = CpuMeter::start();
                    let r = run_tasks(n, conc, move |i| {
                        let (c, p, name) = (c.clone(), p.clone(), format!("{pre}{i:06}"));
                        async move {
                            c.put_bytes(BUCKET, &name, p.obj(i, size)).await?;
                            Ok(size as u64)
                        }
                    })
                    .await;
                    let r = m.stamp(r);
                    r.warn("cluster put");
                    put = Some(r);
                }
            }
        }
        let (raw_put, raw_put_dirsync, put, server_put) = (
            raw_put.expect("ran"),
            raw_put_dirsync.expect("ran"),
            put.expect("ran"),
            server_put.expect("ran"),
        );
        done_with(&raw_dir2, size);
        done_with(&server_dir, size);

        sync_fs();
        let m = CpuMeter::start();
        let raw_get = m.stamp(raw_reads(&raw_dir, n, conc));
        raw_get.warn("raw read");

        let c = b.client.clone();
        let pre = prefix.clone();
        let m = CpuMeter::start();
        let get = run_tasks(n, conc, move |i| {
            let (c, name) = (c.clone(), format!("{pre}{i:06}"));
            async move {
                let v = c.get_bytes(BUCKET, &name).await?;
                if v.len() != size {
                    bail!("{name}: got {} bytes, want {size}", v.len());
                }
                Ok(v.len() as u64)
            }
        })
        .await;
        let get = m.stamp(get);
        get.warn("cluster get");
        let m = CpuMeter::start();
        let server_get =
            m.stamp(wire_serving(n, conc, 0, size, Serve::Load(raw_dir.clone())).await?);
        done_with(&raw_dir, size);
        sync_fs();
        let m = CpuMeter::start();
        let wire_put = m.stamp(wire(n, conc, size, 0).await?);
        let m = CpuMeter::start();
        let wire_get = m.stamp(wire(n, conc, 0, size).await?);
        rounds.push([
            raw_put,
            raw_put_dirsync,
            raw_get,
            put,
            get,
            wire_put,
            wire_get,
            server_put,
            server_get,
        ]);
    }
    let rss = sampler.finish();
    let median = |k: usize| -> RunStats {
        let mut v: Vec<&RunStats> = rounds.iter().map(|r| &r[k]).collect();
        v.sort_by(|a, b| a.mb_s().total_cmp(&b.mb_s()));
        v[v.len() / 2].clone()
    };
    Ok(DataPath {
        label: label.into(),
        size,
        raw_put: median(0),
        raw_put_dirsync: median(1),
        raw_get: median(2),
        put: median(3),
        get: median(4),
        wire_put: median(5),
        wire_get: median(6),
        server_put: median(7),
        server_get: median(8),
        spread: std::array::from_fn(|k| {
            let v = rounds.iter().map(|r| r[k].mb_s());
            (
                v.clone().fold(f64::INFINITY, f64::min),
                v.fold(0.0, f64::max),
            )
        }),
        failed: std::array::from_fn(|k| rounds.iter().map(|r| r[k].errors).sum()),
        // Over all rounds together: /proc/stat counts 10 ms ticks, which one short round
        // (a few dozen ticks) would blur.
        cpu: std::array::from_fn(|k| {
            let cpu: Option<f64> = rounds.iter().map(|r| r[k].cpu_secs).sum();
            let ops: u64 = rounds
                .iter()
                .map(|r| (r[k].ops as u64).saturating_sub(r[k].errors))
                .sum();
            cpu.map(|c| c * 1e6 / ops.max(1) as f64)
        }),
        all_rounds: rounds
            .iter()
            .map(|r| {
                json!({
                    "raw_put": r[0].json(), "raw_put_dirsync": r[1].json(), "raw_get": r[2].json(),
                    "cluster_put": r[3].json(), "cluster_get": r[4].json(),
                    "wire_put": r[5].json(), "wire_get": r[6].json(),
                    "server_put": r[7].json(), "server_get": r[8].json(),
                })
            })
            .collect(),
        rss,
    })
}

// ---------------------------------------------------------------------------------------------
// 2. Rebalance (decommission)
// ---------------------------------------------------------------------------------------------

struct Rebalance {
    label: String,
    size: usize,
    objects: usize,
    /// What the victim held on disk before (files, bytes incl. metadata trailers).
    victim_files: u64,
    victim_bytes: u64,
    load: RunStats,
    cp_secs: f64,
    reb_secs: f64,
    status: Option<RebalanceStatus>,
    status_errors: u64,
    /// Object files on the receivers / left on the victim afterwards (sanity, not asserted).
    after_on_receivers: u64,
    after_on_victim: u64,
    victim: String,
    /// Idle VmRSS after loading, kB; peak VmHWM/VmRSS during the rebalance, kB.
    rss_before: BTreeMap<String, u64>,
    rss_peak: BTreeMap<String, u64>,
    hwm_reset: bool,
    joined: Duration,
    settled: Duration,
}

/// (files, bytes) under `<mountpath>/objs` of every mountpath.
fn du_objs(mountpaths: &[PathBuf]) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for mp in mountpaths {
        let Ok(buckets) = std::fs::read_dir(mp.join("objs")) else {
            continue;
        };
        for b in buckets.flatten() {
            let Ok(entries) = std::fs::read_dir(b.path()) else {
                continue;
            };
            for e in entries.flatten() {
                if let Ok(m) = e.metadata()
                    && m.is_file()
                {
                    files += 1;
                    bytes += m.len();
                }
            }
        }
    }
    (files, bytes)
}

async fn rebalance(
    noded: &Path,
    root: &Path,
    pool: &Arc<Pool>,
    label: &str,
    objects: usize,
    size: usize,
) -> Result<Rebalance> {
    let b = Bench::start(noded, root.join(format!("reb-{label}"))).await?;
    let victim = "target0".to_string();
    let victim_id = b.id(&victim).await?;
    let smap = b.client.smap().await?;
    // Only objects the victim owns: the whole load lands on the target to decommission.
    let names: Vec<String> = (0..)
        .map(|i| format!("reb-{label}/obj-{i:07}"))
        .filter(|n| placement::owner(&smap, BUCKET, n).is_some_and(|o| o.id == victim_id))
        .take(objects)
        .collect();
    println!("  rebalance {label}: loading {objects} objects onto {victim} (t[{victim_id}]) ...");
    let names = Arc::new(names);
    let (c, p, nm) = (b.client.clone(), pool.clone(), names.clone());
    let load = run_tasks(objects, LOAD_CONCURRENCY, move |i| {
        let (c, p, nm) = (c.clone(), p.clone(), nm.clone());
        async move {
            c.put_bytes(BUCKET, &nm[i], p.obj(i, size)).await?;
            Ok(size as u64)
        }
    })
    .await;
    load.warn("load");
    let victim_mps = b.lc.procs[&victim].mountpaths.clone();
    let (victim_files, victim_bytes) = du_objs(&victim_mps);
    sync_fs();

    // Baseline: copy the victim's mountpaths on the same disk, then sync.
    let copy = b.dir.join("cp-baseline");
    std::fs::create_dir_all(&copy)?;
    let t = Instant::now();
    let st = Command::new("cp")
        .arg("-r")
        .args(&victim_mps)
        .arg(&copy)
        .status()
        .context("running cp")?;
    sync_fs();
    let cp_secs = t.elapsed().as_secs_f64();
    if !st.success() {
        eprintln!("!! cp -r exited with {st}");
    }
    // The copy stays until the decommission is measured (see `done_with`): removing tens of
    // thousands of files right before would tax every file the receivers create.

    let receivers: Vec<String> = b
        .target_names()
        .into_iter()
        .filter(|n| *n != victim)
        .collect();
    let watched: Vec<(String, u32)> = b
        .pids()
        .into_iter()
        .filter(|(n, _)| n.starts_with("target"))
        .collect();
    let rss_before: BTreeMap<String, u64> = watched
        .iter()
        .filter_map(|(n, p)| Some((n.clone(), status_kb(*p, "VmRSS")?)))
        .collect();
    let sampler = RssSampler::start(watched);
    let hwm_reset = sampler.reset_ok;

    println!("  rebalance {label}: decommission {victim} ...");
    let t = Instant::now();
    let reply = b
        .client
        .lifecycle(LifecycleRequest::new(
            LifecycleOp::Decommission,
            vec![victim_id.clone()],
        ))
        .await?;
    let rid = reply
        .rebalance_id
        .clone()
        .ok_or_else(|| anyhow!("decommission started no rebalance: {reply:?}"))?;
    let mut status = None;
    let mut status_errors = 0;
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    loop {
        match b.client.rebalance_status().await {
            Ok(Some(r)) if r.id == rid && !r.is_running() => {
                status = Some(r);
                break;
            }
            Ok(_) => {}
            Err(e) => {
                status_errors += 1;
                if status_errors == 1 {
                    eprintln!("!! rebalance status: {e}");
                }
            }
        }
        if Instant::now() > deadline {
            eprintln!("!! rebalance {rid} did not finish within 30 min; giving up");
            break;
        }
        // Polled often: a 100 ms poll added up to 100 ms to a 1.5 s decommission (the 1 MiB
        // line's times came in steps of 0.1 s); a status request costs the cluster little.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reb_secs = t.elapsed().as_secs_f64();
    let rss_peak = sampler.finish();
    if let Some(s) = &status
        && s.state != shoal_actors::types::status::RebState::Finished
    {
        eprintln!("!! rebalance {rid} ended {}: {:?}", s.state, s.blocked_by);
    }

    let after_on_receivers = receivers
        .iter()
        .map(|n| du_objs(&b.lc.procs[n].mountpaths).0)
        .sum();
    let after_on_victim = du_objs(&victim_mps).0;
    done_with(&copy, size);
    let (joined, settled) = (b.joined, b.settled);
    b.finish();
    Ok(Rebalance {
        label: label.into(),
        size,
        objects,
        victim_files,
        victim_bytes,
        load,
        cp_secs,
        reb_secs,
        status,
        status_errors,
        after_on_receivers,
        after_on_victim,
        victim,
        rss_before,
        rss_peak,
        hwm_reset,
        joined,
        settled,
    })
}

impl Rebalance {
    fn bytes(&self) -> u64 {
        (self.objects * self.size) as u64
    }
    fn reb_mb_s(&self) -> f64 {
        self.bytes() as f64 / 1e6 / self.reb_secs
    }
    fn reb_objs_s(&self) -> f64 {
        self.objects as f64 / self.reb_secs
    }
    fn cp_mb_s(&self) -> f64 {
        self.bytes() as f64 / 1e6 / self.cp_secs
    }
    fn cp_objs_s(&self) -> f64 {
        self.objects as f64 / self.cp_secs
    }
    fn receiver_peak(&self) -> u64 {
        self.rss_peak
            .iter()
            .filter(|(n, _)| **n != self.victim)
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(0)
    }
    fn sender_peak(&self) -> u64 {
        self.rss_peak.get(&self.victim).copied().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

/// How many times the baseline's CPU per operation a line spent (`null` where not measured).
fn cpu_ratio_json(line: Option<f64>, base: Option<f64>) -> Value {
    match (line, base) {
        (Some(a), Some(b)) if b > 0.0 => json!(round3(a / b)),
        _ => Value::Null,
    }
}

fn rss_list(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(n, kb)| format!("{n} {:.1}", mib(*kb)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn size_label(size: usize) -> String {
    if size >= MIB {
        format!("{} MiB", size / MIB)
    } else {
        format!("{} KiB", size / KIB)
    }
}

fn disk_free(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1)?;
    line.split_whitespace()
        .nth(3)?
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("cluster bench: run it with `cargo bench --bench cluster` (skipped in test mode)");
        return Ok(());
    }
    let filters = args.into_iter().filter(|a| !a.starts_with('-')).collect();
    let s = Settings::from_env(filters)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(s))
}

async fn run(s: Settings) -> Result<()> {
    let noded = noded_path()?;
    let root = tempfile::Builder::new()
        .prefix("shoal-bench-")
        .tempdir_in(&s.base_dir)
        .with_context(|| format!("temp dir in {}", s.base_dir.display()))?;
    let free = disk_free(root.path());
    // Small objects stay on disk until the end (`done_with`); each takes two 4 KiB blocks with
    // its trailer. Data path: four writers a round; rebalance: the objects and their copy.
    let small = 8 * KIB;
    let need = (s.dp_4k * small * 4 * s.rounds
        + s.dp_1m * MIB * (3 + s.rounds)
        + s.reb_1m * MIB * 3
        + (s.reb_4k + s.reb_4k / 10) * small * 3) as u64;
    println!(
        "Shoal cluster bench: scale {}, {} cores, 1 proxy + {TARGETS} targets x {MOUNTPATHS} mountpaths, concurrency {}",
        s.scale,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        s.concurrency
    );
    println!("  noded: {}", noded.display());
    println!(
        "  data dir: {} (free {:.1} GiB, needs about {:.1} GiB)",
        root.path().display(),
        free.unwrap_or(0) as f64 / (1u64 << 30) as f64,
        need as f64 / (1u64 << 30) as f64
    );
    if let Some(f) = free
        && f < need + (1 << 30)
    {
        bail!("not enough free disk space in {}", root.path().display());
    }
    let pool = Arc::new(Pool::new());
    let started = Instant::now();

    // 1 + 3: idle footprint and start time, then the data path on the same cluster.
    println!("  starting the data-path cluster ...");
    let b = Bench::start(&noded, root.path().join("dp")).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss: BTreeMap<String, u64> = b
        .pids()
        .into_iter()
        .filter_map(|(n, p)| Some((n, status_kb(p, "VmRSS")?)))
        .collect();
    let mut startups = vec![(b.joined, b.settled)];
    let empty = if s.wants("rebalance-empty") {
        println!("  empty rebalances (maintenance of an empty target, on and off) ...");
        empty_rebalances(&b, s.rounds.max(3)).await?
    } else {
        Vec::new()
    };
    let mut dps = Vec::new();
    if s.wants("datapath") {
        dps.push(data_path(&b, &s, &pool, "4k", s.dp_4k, 4 * KIB).await?);
        dps.push(data_path(&b, &s, &pool, "1m", s.dp_1m, MIB).await?);
    }
    b.finish();

    // 2: rebalance.
    let mut rebs = Vec::new();
    if s.wants("rebalance-1mib") && s.reb_1m > 0 {
        rebs.push(rebalance(&noded, root.path(), &pool, "1mib", s.reb_1m, MIB).await?);
    }
    // The same 4 KiB decommission with a tenth of the objects: memory against object count at
    // one object size.
    if s.wants("rebalance-4kib-tenth") && s.reb_4k >= 10 {
        let n = s.reb_4k / 10;
        rebs.push(rebalance(&noded, root.path(), &pool, "4kib-tenth", n, 4 * KIB).await?);
    }
    if s.wants("rebalance-4kib") && s.reb_4k > 0 {
        rebs.push(rebalance(&noded, root.path(), &pool, "4kib", s.reb_4k, 4 * KIB).await?);
    }
    for r in &rebs {
        startups.push((r.joined, r.settled));
    }
    let total = started.elapsed();
    drop(root);

    // ---- table ------------------------------------------------------------------------------
    println!();
    println!(
        "== Shoal cluster bench ({} scale, {:.0} s) ==",
        s.scale,
        total.as_secs_f64()
    );
    let mut j_dp = Vec::new();
    if !dps.is_empty() {
        println!();
        println!(
            "1. DATA PATH   (1 proxy + {TARGETS} targets x {MOUNTPATHS} mountpaths, concurrency {}; median of {} round(s); MB = 10^6 bytes)",
            s.concurrency, s.rounds
        );
        println!(
            "{:<8} {:>7} {:<32} {:>9} {:>10} {:>8} {:>14} {:>8} {:>10} {:>7} {:>17} {:>10} {:>10}",
            "size",
            "objects",
            "operation",
            "MB/s",
            "objs/s",
            "vs raw",
            "vs raw+dirsync",
            "vs wire",
            "vs server",
            "failed",
            "MB/s over rounds",
            "CPU us/op",
            "CPU/server"
        );
        let mut failed_rows = Vec::new();
        for d in &dps {
            let sz = size_label(d.size);
            // (operation, median round, its baselines in the column order, spread index)
            type Row<'a> = (&'a str, &'a RunStats, [Option<&'a RunStats>; 4], usize);
            let rows: [Row; 9] = [
                ("raw write+fsync+rename", &d.raw_put, [None; 4], 0),
                (
                    "raw write+fsync+rename+dirsync",
                    &d.raw_put_dirsync,
                    [None; 4],
                    1,
                ),
                ("bare wire put (loopback)", &d.wire_put, [None; 4], 5),
                (
                    "bare server put (wire+dirsync)",
                    &d.server_put,
                    [None; 4],
                    7,
                ),
                (
                    "cluster put",
                    &d.put,
                    [
                        Some(&d.raw_put),
                        Some(&d.raw_put_dirsync),
                        Some(&d.wire_put),
                        Some(&d.server_put),
                    ],
                    3,
                ),
                ("raw read", &d.raw_get, [None; 4], 2),
                ("bare wire get (loopback)", &d.wire_get, [None; 4], 6),
                ("bare server get (wire+read)", &d.server_get, [None; 4], 8),
                (
                    "cluster get",
                    &d.get,
                    [
                        Some(&d.raw_get),
                        None,
                        Some(&d.wire_get),
                        Some(&d.server_get),
                    ],
                    4,
                ),
            ];
            let ratio = |r: &RunStats, b: Option<&RunStats>| {
                b.map(|b| format!("{:.2}x", r.mb_s() / b.mb_s()))
                    .unwrap_or_default()
            };
            // Machine CPU per operation (over all rounds), and for the cluster's lines
            // how many times the bare server's that is.
            let cpu = |k: usize| d.cpu[k].map(|c| format!("{c:.0}")).unwrap_or_default();
            let cpu_ratio = |k: usize| {
                let server = match k {
                    3 => 7,
                    4 => 8,
                    _ => return String::new(),
                };
                d.cpu[k]
                    .zip(d.cpu[server])
                    .map(|(a, b)| format!("{:.2}x", a / b))
                    .unwrap_or_default()
            };
            for (op, r, [raw, raw2, wire, server], k) in rows {
                let (lo, hi) = d.spread[k];
                if d.failed[k] > 0 {
                    failed_rows.push(format!("{sz} {op}: {} failed", d.failed[k]));
                }
                println!(
                    "{:<8} {:>7} {:<32} {:>9.1} {:>10.0} {:>8} {:>14} {:>8} {:>10} {:>7} {:>17} {:>10} {:>10}",
                    sz,
                    r.ops,
                    op,
                    r.mb_s(),
                    r.ops_s(),
                    ratio(r, raw),
                    ratio(r, raw2),
                    ratio(r, wire),
                    ratio(r, server),
                    d.failed[k],
                    format!("{lo:.1}-{hi:.1}"),
                    cpu(k),
                    cpu_ratio(k),
                );
            }
            println!(
                "{:<8} {:>7} peak RSS during all rounds of put+get (MiB): {}",
                sz,
                "",
                rss_list(&d.rss)
            );
            j_dp.push(json!({
                "label": d.label, "object_size": d.size,
                "raw_put": d.raw_put.json(), "raw_put_dirsync": d.raw_put_dirsync.json(),
                "raw_get": d.raw_get.json(),
                "cluster_put": d.put.json(), "cluster_get": d.get.json(),
                "put_ratio_cluster_over_raw": round3(d.put.mb_s() / d.raw_put.mb_s()),
                "put_ratio_cluster_over_raw_dirsync": round3(d.put.mb_s() / d.raw_put_dirsync.mb_s()),
                "get_ratio_cluster_over_raw": round3(d.get.mb_s() / d.raw_get.mb_s()),
                "wire_put": d.wire_put.json(), "wire_get": d.wire_get.json(),
                "put_ratio_cluster_over_wire": round3(d.put.mb_s() / d.wire_put.mb_s()),
                "get_ratio_cluster_over_wire": round3(d.get.mb_s() / d.wire_get.mb_s()),
                "server_put": d.server_put.json(), "server_get": d.server_get.json(),
                "put_ratio_cluster_over_server": round3(d.put.mb_s() / d.server_put.mb_s()),
                "get_ratio_cluster_over_server": round3(d.get.mb_s() / d.server_get.mb_s()),
                "cpu_us_per_op_all_rounds": {
                    "raw_put": d.cpu[0], "raw_put_dirsync": d.cpu[1], "raw_get": d.cpu[2],
                    "cluster_put": d.cpu[3], "cluster_get": d.cpu[4],
                    "wire_put": d.cpu[5], "wire_get": d.cpu[6],
                    "server_put": d.cpu[7], "server_get": d.cpu[8],
                },
                "put_cpu_ratio_cluster_over_server": cpu_ratio_json(d.cpu[3], d.cpu[7]),
                "get_cpu_ratio_cluster_over_server": cpu_ratio_json(d.cpu[4], d.cpu[8]),
                "put_cpu_ratio_cluster_over_wire": cpu_ratio_json(d.cpu[3], d.cpu[5]),
                "get_cpu_ratio_cluster_over_wire": cpu_ratio_json(d.cpu[4], d.cpu[6]),
                "peak_rss_mib": kb_json(&d.rss),
                "failed_in_any_round": d.failed.iter().sum::<u64>(),
                "rounds": d.all_rounds,
            }));
        }
        if !failed_rows.is_empty() {
            println!();
            println!("!! SOME ROUNDS FAILED: their MB/s counts only what succeeded, and the lines");
            println!("!! below are not comparable (see each round's first_error in the JSON):");
            for f in &failed_rows {
                println!("!!   {f}");
            }
        }
    }

    let mut j_reb = Vec::new();
    let mut j_mem = Vec::new();
    if !rebs.is_empty() {
        println!();
        println!(
            "2. REBALANCE (decommission of one target; the others receive; baseline cp -r <its mountpaths> && sync)"
        );
        println!(
            "{:<10} {:>7} {:>9} {:>8} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8} {:>10} {:>10}",
            "case",
            "objects",
            "GiB",
            "reb s",
            "reb MB/s",
            "reb obj/s",
            "cp s",
            "cp MB/s",
            "cp obj/s",
            "reb/cp",
            "sender MiB",
            "recv MiB"
        );
        for r in &rebs {
            println!(
                "{:<10} {:>7} {:>9.3} {:>8.2} {:>9.1} {:>9.0} {:>8.2} {:>9.1} {:>9.0} {:>7.2}x {:>10.1} {:>10.1}",
                r.label,
                r.objects,
                r.bytes() as f64 / (1u64 << 30) as f64,
                r.reb_secs,
                r.reb_mb_s(),
                r.reb_objs_s(),
                r.cp_secs,
                r.cp_mb_s(),
                r.cp_objs_s(),
                r.cp_secs / r.reb_secs,
                mib(r.sender_peak()),
                mib(r.receiver_peak()),
            );
        }
        for r in &rebs {
            let st = r.status.as_ref();
            println!(
                "  {} ({} objects): victim held {} files / {:.3} GiB on disk; status {} {}: objs_moved {}, bytes_moved {}, \
                 rate {:.1} MB/s {:.0} obj/s, errors {}; afterwards {} objects on receivers, {} left on the victim; \
                 load {:.1} MB/s {:.0} obj/s (concurrency {LOAD_CONCURRENCY}); RSS before (MiB) {}; peak (MiB) {}{}",
                r.label,
                size_label(r.size),
                r.victim_files,
                r.victim_bytes as f64 / (1u64 << 30) as f64,
                st.map(|s| s.id.as_str()).unwrap_or("?"),
                st.map(|s| s.state.as_str()).unwrap_or("unknown"),
                st.map(|s| s.objs_moved).unwrap_or(0),
                st.map(|s| s.bytes_moved).unwrap_or(0),
                st.map(|s| s.rate_bytes_per_sec / 1e6).unwrap_or(0.0),
                st.map(|s| s.rate_objs_per_sec).unwrap_or(0.0),
                st.map(|s| s.errors).unwrap_or(0),
                r.after_on_receivers,
                r.after_on_victim,
                r.load.mb_s(),
                r.load.ops_s(),
                rss_list(&r.rss_before),
                rss_list(&r.rss_peak),
                if r.hwm_reset {
                    ""
                } else {
                    " (VmHWM reset failed: lifetime peaks)"
                },
            );
            j_reb.push(json!({
                "label": r.label, "object_size": r.size, "objects": r.objects, "bytes": r.bytes(),
                "victim": r.victim, "victim_files": r.victim_files, "victim_bytes_on_disk": r.victim_bytes,
                "rebalance_secs": round3(r.reb_secs),
                "rebalance_mb_per_sec": round3(r.reb_mb_s()),
                "rebalance_objs_per_sec": round3(r.reb_objs_s()),
                "cp_secs": round3(r.cp_secs),
                "cp_mb_per_sec": round3(r.cp_mb_s()),
                "cp_objs_per_sec": round3(r.cp_objs_s()),
                "speed_ratio_rebalance_over_cp": round3(r.cp_secs / r.reb_secs),
                "status": r.status.as_ref().map(|s| serde_json::to_value(s).unwrap_or(Value::Null)),
                "status_poll_errors": r.status_errors,
                "objects_on_receivers_after": r.after_on_receivers,
                "objects_left_on_victim": r.after_on_victim,
                "load": r.load.json(),
                "rss_before_mib": kb_json(&r.rss_before),
                "peak_rss_mib": kb_json(&r.rss_peak),
                "hwm_reset": r.hwm_reset,
                "sender_peak_rss_mib": round3(mib(r.sender_peak())),
                "receiver_peak_rss_mib": round3(mib(r.receiver_peak())),
            }));
        }
        let by = |l: &str| rebs.iter().find(|r| r.label == l);
        for (what, a, b) in [
            ("(a) 1 MiB vs (b) 4 KiB", by("1mib"), by("4kib")),
            ("4 KiB, a tenth vs all", by("4kib-tenth"), by("4kib")),
        ] {
            let (Some(a), Some(b)) = (a, b) else { continue };
            let grow = |r: &Rebalance| {
                mib(r.sender_peak()) - mib(r.rss_before.get(&r.victim).copied().unwrap_or(0))
            };
            println!(
                "  memory vs object count, {what}: {:.1}x the objects ({} -> {}) => sender peak {:.2}x ({:.1} -> {:.1} MiB; growth over its idle RSS {:.1} -> {:.1} MiB), receiver peak {:.2}x ({:.1} -> {:.1} MiB)",
                b.objects as f64 / a.objects as f64,
                a.objects,
                b.objects,
                b.sender_peak() as f64 / a.sender_peak().max(1) as f64,
                mib(a.sender_peak()),
                mib(b.sender_peak()),
                grow(a),
                grow(b),
                b.receiver_peak() as f64 / a.receiver_peak().max(1) as f64,
                mib(a.receiver_peak()),
                mib(b.receiver_peak()),
            );
            j_mem.push(json!({
                "compare": what, "objects": [a.objects, b.objects],
                "sender_peak_rss_mib": [round3(mib(a.sender_peak())), round3(mib(b.sender_peak()))],
                "sender_growth_mib": [round3(grow(a)), round3(grow(b))],
                "receiver_peak_rss_mib": [round3(mib(a.receiver_peak())), round3(mib(b.receiver_peak()))],
            }));
        }
    }

    println!();
    println!("3. IDLE");
    let proxy_idle = idle_rss.get("proxy0").copied().unwrap_or(0);
    let targets_idle: Vec<u64> = idle_rss
        .iter()
        .filter(|(n, _)| n.starts_with("target"))
        .map(|(_, v)| *v)
        .collect();
    println!(
        "  idle RSS (MiB, 3 s after settling): proxy {:.1}; targets {}",
        mib(proxy_idle),
        targets_idle
            .iter()
            .map(|v| format!("{:.1}", mib(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (i, (j, st)) in startups.iter().enumerate() {
        println!(
            "  start #{}: first spawn -> all {} nodes joined {:.2} s; -> join rebalances settled {:.2} s",
            i + 1,
            1 + TARGETS,
            j.as_secs_f64(),
            st.as_secs_f64()
        );
    }

    let mut sorted = empty.clone();
    sorted.sort_by(f64::total_cmp);
    if !sorted.is_empty() {
        println!();
        println!(
            "4. SMALLEST REBALANCE (nothing to move: an empty target into maintenance and back; request -> finished, polled every 2 ms; goal <= 50 ms)"
        );
        println!(
            "  {} generations: median {:.1} ms, min {:.1} ms, max {:.1} ms",
            sorted.len(),
            sorted[sorted.len() / 2] * 1e3,
            sorted[0] * 1e3,
            sorted[sorted.len() - 1] * 1e3
        );
    }

    let doc = json!({
        "scale": s.scale,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "topology": { "proxies": 1, "targets": TARGETS, "mountpaths_per_target": MOUNTPATHS },
        "concurrency": s.concurrency,
        "data_path_rounds": s.rounds,
        "total_secs": round3(total.as_secs_f64()),
        "data_path": j_dp,
        "rebalance": j_reb,
        "rebalance_memory_vs_object_count": j_mem,
        "empty_rebalance_secs": {
            "all": empty.iter().map(|x| (*x * 1e6).round() / 1e6).collect::<Vec<_>>(),
            "median": sorted.get(sorted.len() / 2).copied(),
        },
        "idle": {
            "rss_mib": kb_json(&idle_rss),
            "startups": startups.iter().map(|(j, st)| json!({
                "all_joined_secs": round3(j.as_secs_f64()),
                "settled_secs": round3(st.as_secs_f64()),
            })).collect::<Vec<_>>(),
        },
    });
    let out = target_dir().join("bench-results.json");
    std::fs::write(&out, serde_json::to_string_pretty(&doc)?)?;
    println!();
    println!("results: {}", out.display());
    Ok(())
}
