//! Scale on one machine (issue 15, item 5): 1 proxy + 20 targets as real `noded` processes
//! holding many small objects (1,000,000 × 1 KiB in the long run). Measurements only, never
//! assertions: nothing here fails because something was slow.
//!
//! What is measured, in this order, on one cluster:
//! 1. Start: first spawn → every node joined → join rebalances settled.
//! 2. Load: every object put through the typed client at concurrency C, in two steps (the first
//!    10 %, then the rest) so that memory can be read at 10 % and at 100 % loaded. Baseline,
//!    measured first on the same disk: raw `write + fsync + rename` of the same number of files
//!    of the same size at the same concurrency, spread over one directory per target (what each
//!    put does at the bottom, without the cluster; the cluster also fsyncs the directory and
//!    writes a metadata trailer — see `cluster.rs` for the `+dirsync` variant).
//! 3. Listing: every object, page by page (10,000 per page) through the proxy: time, objects/s,
//!    first/median/last page latency; the count is checked against the objects loaded.
//! 4. Decommission of one target: time from the request to its rebalance `finished`, against
//!    `cp -r <its mountpath> && sync` of the same files (what moving them costs the disk).
//! 5. Maintenance of 5 targets at once: time from the request to its rebalance `finished`.
//! 6. Check (cheap): a random sample of gets (content compared), and object files on disk: the
//!    active targets hold every object, the departed ones none.
//!
//! Peak RSS of every node is sampled (VmHWM/VmRSS every 100 ms) in every phase; the goal is
//! ≤ 64 MiB per target whatever the object count, so RSS is also shown at 10 % and 100 % loaded.
//!
//! Run (from the workspace root):
//!
//! ```text
//! cargo bench --bench scale                          # smoke: 20 targets, 20,000 objects, ~2 min
//! just bench-scale                                   # long: 20 targets, 1,000,000 objects
//! SHOAL_SCALE_OBJECTS=100000 cargo bench --bench scale
//! ```
//!
//! Knobs (environment): `SHOAL_SCALE_OBJECTS` (default 20000), `SHOAL_SCALE_TARGETS` (20),
//! `SHOAL_SCALE_SIZE` (object size in bytes, 1024), `SHOAL_SCALE_CONCURRENCY` (16),
//! `SHOAL_SCALE_MAINT` (targets put in maintenance at once, 5), `SHOAL_SCALE_GETS` (sample of
//! gets checked, 1000), `SHOAL_SCALE_RAW` (files in the raw baseline, default the object count;
//! 0 skips it), `SHOAL_BENCH_DIR` (parent of the temp dir, default the system temp dir),
//! `SHOAL_NODED` (a `noded` to use instead of the one cargo built).
//!
//! Results: a table on stdout, `target/bench-scale.json`, and the same document under the key
//! `scale` of `target/bench-results.json` (merged: other benches' keys are kept).
//! All data is deleted at the end. Run without `--bench` (`cargo test --all-targets`) it does
//! nothing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use common::*;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use shoal_actors::client::Client;
use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleRequest};
use shoal_actors::types::object::MAX_PAGE;
use shoal_actors::types::smap::{NodeId, Role};
use shoal_actors::types::status::{RebState, RebalanceStatus};
use shoal_nodectl::playground::{LocalCluster, free_port};

const BUCKET: &str = "scale";
const PREFIX: &str = "obj-";

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

struct Settings {
    objects: usize,
    targets: usize,
    size: usize,
    concurrency: usize,
    maint: usize,
    gets: usize,
    raw: usize,
    base_dir: PathBuf,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let objects = env_usize("SHOAL_SCALE_OBJECTS", 20_000)?.max(10);
        let targets = env_usize("SHOAL_SCALE_TARGETS", 20)?.max(2);
        let maint = env_usize("SHOAL_SCALE_MAINT", 5)?;
        if 1 + maint >= targets {
            bail!(
                "SHOAL_SCALE_MAINT={maint} leaves no target to receive (targets {targets}, one decommissioned)"
            );
        }
        Ok(Settings {
            objects,
            targets,
            size: env_usize("SHOAL_SCALE_SIZE", KIB)?.max(1),
            concurrency: env_usize("SHOAL_SCALE_CONCURRENCY", 16)?.max(1),
            maint,
            gets: env_usize("SHOAL_SCALE_GETS", 1000)?,
            raw: env_usize("SHOAL_SCALE_RAW", objects)?,
            base_dir: std::env::var_os("SHOAL_BENCH_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
        })
    }
}

fn name(i: usize) -> String {
    format!("{PREFIX}{i:07}")
}

/// Random bytes; object `i` is a slice of it at an offset depending on `i`.
struct Pool(Vec<u8>);

impl Pool {
    fn new() -> Self {
        let mut v = vec![0u8; 4 * MIB];
        rand::rngs::StdRng::seed_from_u64(15).fill(&mut v[..]);
        Pool(v)
    }
    fn obj(&self, i: usize, size: usize) -> &[u8] {
        let span = self.0.len() - size;
        let off = (i.wrapping_mul(4099)) % span.max(1);
        &self.0[off..off + size]
    }
}

// ---------------------------------------------------------------------------------------------
// Memory per phase
// ---------------------------------------------------------------------------------------------

/// Peak RSS of every node, per phase: a thread samples `max(VmHWM, VmRSS)` every 100 ms into
/// the current phase; `VmHWM` is reset when a phase begins.
struct PhaseRss {
    pids: Arc<Mutex<Vec<(String, u32)>>>,
    cur: Arc<Mutex<String>>,
    peaks: Arc<Mutex<BTreeMap<String, BTreeMap<String, u64>>>>,
    /// Phases in the order they began.
    order: Mutex<Vec<String>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Whether every `VmHWM` reset worked (else peaks are since the process started).
    reset_ok: std::sync::atomic::AtomicBool,
}

impl PhaseRss {
    fn start(pids: Vec<(String, u32)>) -> Arc<Self> {
        let me = Arc::new(PhaseRss {
            pids: Arc::new(Mutex::new(pids)),
            cur: Arc::new(Mutex::new("start".into())),
            peaks: Default::default(),
            order: Mutex::new(vec!["start".into()]),
            stop: Default::default(),
            reset_ok: true.into(),
        });
        let m = me.clone();
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            while !m.stop.load(Ordering::Relaxed) {
                let pids = m.pids.lock().unwrap().clone();
                let phase = m.cur.lock().unwrap().clone();
                let mut sample = Vec::new();
                for (n, p) in &pids {
                    if let Some(v) = status_kb(*p, "VmHWM")
                        .into_iter()
                        .chain(status_kb(*p, "VmRSS"))
                        .max()
                    {
                        sample.push((n.clone(), v));
                    }
                }
                let mut peaks = m.peaks.lock().unwrap();
                let ph = peaks.entry(phase).or_default();
                for (n, v) in sample {
                    let e = ph.entry(n).or_default();
                    *e = (*e).max(v);
                }
                drop(peaks);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        me
    }

    fn phase(&self, name: &str) {
        use std::sync::atomic::Ordering;
        for (_, p) in self.pids.lock().unwrap().iter() {
            if !reset_hwm(*p) {
                self.reset_ok.store(false, Ordering::Relaxed);
            }
        }
        *self.cur.lock().unwrap() = name.to_string();
        self.order.lock().unwrap().push(name.to_string());
    }

    fn forget(&self, node: &str) {
        self.pids.lock().unwrap().retain(|(n, _)| n != node);
    }

    fn peaks(&self, phase: &str) -> BTreeMap<String, u64> {
        self.peaks
            .lock()
            .unwrap()
            .get(phase)
            .cloned()
            .unwrap_or_default()
    }

    /// Peak over every phase.
    fn overall(&self) -> BTreeMap<String, u64> {
        let mut all: BTreeMap<String, u64> = BTreeMap::new();
        for ph in self.peaks.lock().unwrap().values() {
            for (n, v) in ph {
                let e = all.entry(n.clone()).or_default();
                *e = (*e).max(*v);
            }
        }
        all
    }

    fn finish(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The targets' part of a per-node map.
fn targets_only(m: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    m.iter()
        .filter(|(n, _)| n.starts_with("target"))
        .map(|(n, v)| (n.clone(), *v))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

struct Cluster {
    lc: LocalCluster,
    client: Client,
    joined: Duration,
    settled: Duration,
}

impl Cluster {
    async fn start(noded: &Path, dir: &Path, targets: usize) -> Result<Cluster> {
        std::fs::create_dir_all(dir)?;
        let mut lc = LocalCluster::new(noded.to_path_buf(), dir.to_path_buf());
        let t0 = Instant::now();
        lc.add("proxy0", Role::Proxy, free_port()?, 0, &[])?;
        let client = lc.client().with_timeout(Duration::from_secs(5));
        wait_nodes(&client, 1, Duration::from_secs(30)).await?;
        for i in 0..targets {
            lc.add(&format!("target{i:02}"), Role::Target, free_port()?, 1, &[])?;
        }
        wait_nodes(&client, 1 + targets, Duration::from_secs(120)).await?;
        let joined = t0.elapsed();
        wait_rebalance_idle(&client, Duration::from_secs(300)).await?;
        let settled = t0.elapsed();
        let client = lc.client().with_timeout(Duration::from_secs(60));
        client.create_bucket(BUCKET).await?;
        Ok(Cluster {
            lc,
            client,
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

    fn mountpaths(&self, names: &[String]) -> Vec<PathBuf> {
        names
            .iter()
            .flat_map(|n| self.lc.procs[n].mountpaths.clone())
            .collect()
    }
}

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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a lifecycle operation and waits for its rebalance to end: (seconds from the request to
/// the end, final status).
async fn lifecycle_timed(
    client: &Client,
    op: LifecycleOp,
    nodes: Vec<NodeId>,
) -> Result<(f64, Option<RebalanceStatus>)> {
    let t = Instant::now();
    let reply = client.lifecycle(LifecycleRequest::new(op, nodes)).await?;
    let rid = reply
        .rebalance_id
        .clone()
        .ok_or_else(|| anyhow!("{op} started no rebalance: {reply:?}"))?;
    let deadline = Instant::now() + Duration::from_secs(4 * 3600);
    let mut last_print = Instant::now();
    loop {
        match client.rebalance_status().await {
            Ok(Some(r)) if r.id == rid && !r.is_running() => {
                let secs = t.elapsed().as_secs_f64();
                if r.state != RebState::Finished {
                    eprintln!("!! rebalance {rid} ended {}: {:?}", r.state, r.blocked_by);
                }
                return Ok((secs, Some(r)));
            }
            Ok(Some(r)) if last_print.elapsed() > Duration::from_secs(15) => {
                last_print = Instant::now();
                println!(
                    "    {op}: {} {} {}/{} objects moved ({:.0} obj/s), {:.0} s",
                    r.id,
                    r.stage,
                    r.objs_moved,
                    r.objs_total,
                    r.rate_objs_per_sec,
                    t.elapsed().as_secs_f64()
                );
            }
            Ok(_) => {}
            Err(e) => eprintln!("!! rebalance status: {e}"),
        }
        if Instant::now() > deadline {
            eprintln!("!! rebalance {rid} did not finish within 4 h; giving up");
            return Ok((t.elapsed().as_secs_f64(), None));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Object files under `<mountpath>/objs/*` of every mountpath (names only: no file is opened).
fn count_objs(mountpaths: &[PathBuf]) -> u64 {
    let mut files = 0;
    for mp in mountpaths {
        let Ok(buckets) = std::fs::read_dir(mp.join("objs")) else {
            continue;
        };
        for b in buckets.flatten() {
            if let Ok(entries) = std::fs::read_dir(b.path()) {
                files += entries.flatten().count() as u64;
            }
        }
    }
    files
}

// ---------------------------------------------------------------------------------------------
// Baselines
// ---------------------------------------------------------------------------------------------

/// `write + fsync + rename` of `n` files of `size` bytes at `conc` threads, over `dirs`
/// directories (one per target, as the cluster spreads them).
fn raw_writes(
    root: &Path,
    dirs: usize,
    n: usize,
    size: usize,
    conc: usize,
    pool: &Pool,
) -> RunStats {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    for d in 0..dirs {
        let _ = std::fs::create_dir_all(root.join(format!("d{d:02}")));
    }
    let next = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let first = Mutex::new(None::<String>);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..conc {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let dir = root.join(format!("d{:02}", i % dirs));
                    let res = (|| -> std::io::Result<u64> {
                        let tmp = dir.join(format!(".tmp-{i}"));
                        let data = pool.obj(i, size);
                        let mut f = std::fs::File::create(&tmp)?;
                        f.write_all(data)?;
                        f.sync_all()?;
                        drop(f);
                        std::fs::rename(&tmp, dir.join(name(i)))?;
                        Ok(data.len() as u64)
                    })();
                    match res {
                        Ok(b) => {
                            bytes.fetch_add(b, Ordering::Relaxed);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first.lock().unwrap().get_or_insert(format!("#{i}: {e}"));
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
        first_error: first.into_inner().unwrap(),
        cpu_secs: None,
    }
}

/// `cp -r <mountpaths> <dst> && sync`, seconds.
fn cp_sync(mountpaths: &[PathBuf], dst: &Path) -> Result<f64> {
    std::fs::create_dir_all(dst)?;
    sync_fs();
    let t = Instant::now();
    let st = Command::new("cp")
        .arg("-r")
        .args(mountpaths)
        .arg(dst)
        .status()
        .context("running cp")?;
    sync_fs();
    let secs = t.elapsed().as_secs_f64();
    if !st.success() {
        eprintln!("!! cp -r exited with {st}");
    }
    // The copy stays until the bench ends: on ext4 without a journal every file made in the
    // next minutes would skip its freed inodes (`recently_deleted`), taxing the decommission.
    Ok(secs)
}

// ---------------------------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------------------------

async fn load(
    c: &Cluster,
    pool: &Arc<Pool>,
    range: std::ops::Range<usize>,
    s: &Settings,
) -> RunStats {
    let done = Arc::new(AtomicUsize::new(0));
    let n = range.len();
    let prog = progress(
        format!("load {}..{}", range.start, range.end),
        done.clone(),
        n,
        Duration::from_secs(30),
    );
    let (client, p, size) = (c.client.clone(), pool.clone(), s.size);
    let r = run_tasks(range, s.concurrency, done, move |i| {
        let (client, p) = (client.clone(), p.clone());
        async move {
            client.put_bytes(BUCKET, &name(i), p.obj(i, size)).await?;
            Ok(size as u64)
        }
    })
    .await;
    prog.abort();
    r.warn("load");
    r
}

struct Listing {
    secs: f64,
    count: usize,
    pages: usize,
    /// Seconds per page, in order.
    page_secs: Vec<f64>,
    error: Option<String>,
}

async fn list_all(client: &Client) -> Listing {
    let t = Instant::now();
    let (mut count, mut pages, mut page_secs) = (0, 0, Vec::new());
    let mut after: Option<String> = None;
    let mut error = None;
    loop {
        let tp = Instant::now();
        match client
            .list_objects_page(BUCKET, "", after.as_deref(), MAX_PAGE)
            .await
        {
            Ok(page) => {
                page_secs.push(tp.elapsed().as_secs_f64());
                pages += 1;
                count += page.entries.len();
                if pages % 10 == 0 {
                    println!(
                        "    list: {pages} pages, {count} objects, last page {:.2} s, {:.0} s",
                        tp.elapsed().as_secs_f64(),
                        t.elapsed().as_secs_f64()
                    );
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            Err(e) => {
                error = Some(format!("page {}: {e}", pages + 1));
                break;
            }
        }
    }
    Listing {
        secs: t.elapsed().as_secs_f64(),
        count,
        pages,
        page_secs,
        error,
    }
}

/// Gets of `n` random objects of `0..loaded`, content compared: (checked, wrong or failed,
/// first failure).
async fn sample_gets(
    client: &Client,
    pool: &Arc<Pool>,
    loaded: usize,
    n: usize,
    size: usize,
) -> (usize, u64, Option<String>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let picks: Arc<Vec<usize>> = Arc::new((0..n).map(|_| rng.random_range(0..loaded)).collect());
    let (c, p, pk) = (client.clone(), pool.clone(), picks.clone());
    let r = run_tasks(0..n, 8, Arc::new(AtomicUsize::new(0)), move |k| {
        let (c, p, i) = (c.clone(), p.clone(), pk[k]);
        async move {
            let v = c.get_bytes(BUCKET, &name(i)).await?;
            if v != p.obj(i, size) {
                bail!("{}: content differs ({} bytes)", name(i), v.len());
            }
            Ok(v.len() as u64)
        }
    })
    .await;
    (n, r.errors, r.first_error)
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("scale bench: run it with `cargo bench --bench scale` (skipped in test mode)");
        return Ok(());
    }
    let s = Settings::from_env()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(s))
}

fn stat_line(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    (v[0], s[s.len() / 2], v[v.len() - 1])
}

async fn run(s: Settings) -> Result<()> {
    let noded = noded_path()?;
    raise_nofile();
    let root = tempfile::Builder::new()
        .prefix("shoal-scale-")
        .tempdir_in(&s.base_dir)
        .with_context(|| format!("temp dir in {}", s.base_dir.display()))?;
    // Per object: one 4 KiB block (small objects) plus inode and directory entry. The raw
    // baseline and the cp copy (one target's share) stay until the end: deleting many files
    // taxes every file made in the next minutes on ext4 without a journal (`recently_deleted`),
    // which would charge the cluster's load and decommission for the baselines' cleanup.
    let per_obj = (s.size.div_ceil(4096) * 4096 + 1024) as u64;
    let need = per_obj * (s.objects as u64 + s.raw as u64) * 13 / 10 + (1 << 30);
    let free = disk_free(root.path());
    println!(
        "Shoal scale bench: 1 proxy + {} targets (processes), {} objects x {} B, concurrency {}, {} cores, load {}",
        s.targets,
        s.objects,
        s.size,
        s.concurrency,
        cores(),
        loadavg()
    );
    println!("  noded: {}", noded.display());
    println!(
        "  data dir: {} (free {:.1} GiB, needs about {:.1} GiB)",
        root.path().display(),
        free.unwrap_or(0) as f64 / (1u64 << 30) as f64,
        need as f64 / (1u64 << 30) as f64
    );
    if let Some(f) = free
        && f < need
    {
        bail!("not enough free disk space in {}", root.path().display());
    }
    let pool = Arc::new(Pool::new());
    let started = Instant::now();

    // Raw baseline first, alone on the disk (kept until the end, see `need`).
    let raw = if s.raw > 0 {
        println!(
            "  baseline: raw write+fsync+rename of {} files x {} B over {} dirs, {} threads ...",
            s.raw, s.size, s.targets, s.concurrency
        );
        let dir = root.path().join("raw");
        let r = raw_writes(&dir, s.targets, s.raw, s.size, s.concurrency, &pool);
        r.warn("raw write");
        sync_fs();
        Some(r)
    } else {
        None
    };

    println!("  starting 1 proxy + {} targets ...", s.targets);
    let c = Cluster::start(&noded, &root.path().join("cluster"), s.targets).await?;
    let rss = PhaseRss::start(c.pids());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_now(&c.pids());

    // Load: 10 %, then the rest.
    let tenth = s.objects / 10;
    println!("  load: {} objects (first 10 %: {tenth}) ...", s.objects);
    rss.phase("load-10pct");
    let load1 = load(&c, &pool, 0..tenth, &s).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_at_10 = rss_now(&c.pids());
    let peak_at_10 = rss.peaks("load-10pct");
    rss.phase("load-100pct");
    let load2 = load(&c, &pool, tenth..s.objects, &s).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_at_100 = rss_now(&c.pids());
    let peak_at_100 = rss.peaks("load-100pct");
    let loaded_ok = s.objects - (load1.errors + load2.errors) as usize;
    let load_secs = load1.secs + load2.secs;

    // Listing.
    println!("  listing every object, {MAX_PAGE} per page ...");
    rss.phase("list");
    let listing = list_all(&c.client).await;
    if let Some(e) = &listing.error {
        eprintln!("!! listing failed: {e}");
    }
    let peak_list = rss.peaks("list");

    // Decommission of one target, after its cp -r baseline.
    let targets = c.target_names();
    let victim = targets[0].clone();
    let victim_id = c.id(&victim).await?;
    let victim_mps = c.mountpaths(std::slice::from_ref(&victim));
    let victim_files = count_objs(&victim_mps);
    println!("  baseline: cp -r + sync of {victim}'s mountpath ({victim_files} files) ...");
    let cp_secs = cp_sync(&victim_mps, &root.path().join("cp-baseline"))?;
    println!("  decommission {victim} (t[{victim_id}]) ...");
    rss.phase("decommission");
    let (decomm_secs, decomm_status) =
        lifecycle_timed(&c.client, LifecycleOp::Decommission, vec![victim_id]).await?;
    let peak_decomm = rss.peaks("decommission");
    rss.forget(&victim);

    // Maintenance of several targets at once.
    let maint: Vec<String> = targets[1..=s.maint].to_vec();
    let mut maint_ids = Vec::new();
    for n in &maint {
        maint_ids.push(c.id(n).await?);
    }
    let maint_files = count_objs(&c.mountpaths(&maint));
    println!(
        "  start-maintenance of {} targets at once ({maint_files} files) ...",
        maint.len()
    );
    rss.phase("maintenance");
    let (maint_secs, maint_status) = if maint.is_empty() {
        (0.0, None)
    } else {
        lifecycle_timed(&c.client, LifecycleOp::StartMaintenance, maint_ids).await?
    };
    let peak_maint = rss.peaks("maintenance");

    // Cheap checks.
    println!(
        "  checking: {} sample gets, object files on disk ...",
        s.gets
    );
    rss.phase("check");
    let (checked, get_errors, get_first) =
        sample_gets(&c.client, &pool, s.objects, s.gets.min(s.objects), s.size).await;
    let active: Vec<String> = targets
        .iter()
        .filter(|n| **n != victim && !maint.contains(n))
        .cloned()
        .collect();
    let on_active = count_objs(&c.mountpaths(&active));
    let departed: Vec<String> = maint.iter().cloned().chain([victim.clone()]).collect();
    let on_departed = count_objs(&c.mountpaths(&departed));
    rss.finish();
    let overall = rss.overall();
    let reset_ok = rss.reset_ok.load(std::sync::atomic::Ordering::Relaxed);
    let total = started.elapsed();

    // Tear down and delete every file.
    let mut lc = c.lc;
    lc.stop_all();
    drop(lc);
    drop(root);
    sync_fs();

    // ---- table ------------------------------------------------------------------------------
    let t_over = targets_only(&overall);
    let (lo, med, hi) = spread_mib(&t_over);
    println!();
    println!(
        "== Shoal scale bench: 1 proxy + {} targets, {} objects x {} B, concurrency {} ({:.0} s; load average now {}) ==",
        s.targets,
        s.objects,
        s.size,
        s.concurrency,
        total.as_secs_f64(),
        loadavg()
    );
    println!(
        "{:<34} {:>10} {:>12} {:>16} {:>8}   note",
        "line", "seconds", "objects/s", "baseline obj/s", "ratio"
    );
    let row = |what: &str, secs: f64, objs: f64, base: Option<f64>, note: String| {
        println!(
            "{:<34} {:>10.2} {:>12.0} {:>16} {:>8}   {}",
            what,
            secs,
            objs / secs.max(1e-9),
            base.map(|b| format!("{b:.0}")).unwrap_or_default(),
            base.map(|b| format!("{:.2}x", objs / secs.max(1e-9) / b))
                .unwrap_or_default(),
            note
        );
    };
    println!(
        "{:<34} {:>10.2} {:>12} {:>16} {:>8}   first spawn -> {} nodes joined {:.2} s",
        "start (join rebalances settled)",
        c.settled.as_secs_f64(),
        "",
        "",
        "",
        1 + s.targets,
        c.joined.as_secs_f64()
    );
    let raw_rate = raw.as_ref().map(|r| r.ops_s());
    row(
        "load (put, all)",
        load_secs,
        loaded_ok as f64,
        raw_rate,
        format!(
            "baseline raw write+fsync+rename; errors {}; 0-10 % {:.0}/s, 10-100 % {:.0}/s",
            load1.errors + load2.errors,
            load1.ops_s(),
            load2.ops_s()
        ),
    );
    let (p1, pm, pl) = stat_line(&listing.page_secs);
    row(
        "list all (paged)",
        listing.secs,
        listing.count as f64,
        None,
        format!(
            "{} objects in {} pages (want {loaded_ok}{}); page s first {p1:.2} median {pm:.2} last {pl:.2}",
            listing.count,
            listing.pages,
            if listing.count == loaded_ok {
                ", ok"
            } else {
                ", MISMATCH"
            }
        ),
    );
    let st_note = |st: &Option<RebalanceStatus>| {
        st.as_ref()
            .map(|r| {
                format!(
                    "{} {}: moved {} objects, errors {}",
                    r.id, r.state, r.objs_moved, r.errors
                )
            })
            .unwrap_or_else(|| "no final status".into())
    };
    row(
        &format!("decommission 1 target ({victim_files})"),
        decomm_secs,
        victim_files as f64,
        Some(victim_files as f64 / cp_secs.max(1e-9)),
        format!(
            "baseline cp -r + sync {cp_secs:.2} s; {}",
            st_note(&decomm_status)
        ),
    );
    row(
        &format!("maintenance of {} targets ({maint_files})", maint.len()),
        maint_secs,
        maint_files as f64,
        None,
        st_note(&maint_status),
    );
    println!();
    println!(
        "peak RSS per target, MiB (goal <= 64, flat in object count): min {lo:.1} / median {med:.1} / max {hi:.1} over the whole run; proxy {:.1}{}",
        mib(overall.get("proxy0").copied().unwrap_or(0)),
        if reset_ok {
            ""
        } else {
            " (VmHWM reset failed: lifetime peaks)"
        }
    );
    for (what, m) in [
        ("idle before load (RSS)", &rss_idle),
        ("at 10 % loaded (RSS)", &rss_at_10),
        ("at 100 % loaded (RSS)", &rss_at_100),
        ("peak during load 0-10 %", &peak_at_10),
        ("peak during load 10-100 %", &peak_at_100),
        ("peak during listing", &peak_list),
        ("peak during decommission", &peak_decomm),
        ("peak during maintenance", &peak_maint),
    ] {
        let t = targets_only(m);
        let (a, b, c) = spread_mib(&t);
        println!(
            "  {what:<28} targets min {a:>6.1} median {b:>6.1} max {c:>6.1}   proxy {:>6.1}",
            mib(m.get("proxy0").copied().unwrap_or(0))
        );
    }
    println!();
    println!(
        "check: {checked} sample gets, {get_errors} failed or wrong{}; object files on the {} active targets {on_active} (want {loaded_ok}{}), left on the {} departed {on_departed} (want 0)",
        get_first
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
        active.len(),
        if on_active as usize == loaded_ok {
            ", ok"
        } else {
            ", MISMATCH"
        },
        departed.len()
    );

    let status_json = |st: &Option<RebalanceStatus>| {
        st.as_ref()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
    };
    let doc = json!({
        "cores": cores(),
        "loadavg_end": loadavg(),
        "topology": { "proxies": 1, "targets": s.targets, "mountpaths_per_target": 1 },
        "objects": s.objects, "object_size": s.size, "concurrency": s.concurrency,
        "total_secs": round3(total.as_secs_f64()),
        "start": { "all_joined_secs": round3(c.joined.as_secs_f64()), "settled_secs": round3(c.settled.as_secs_f64()) },
        "raw_write_fsync_rename": raw.as_ref().map(|r| r.json()),
        "load": {
            "secs": round3(load_secs), "objects_ok": loaded_ok,
            "objs_per_sec": round3(loaded_ok as f64 / load_secs.max(1e-9)),
            "ratio_over_raw": raw_rate.map(|b| round3(loaded_ok as f64 / load_secs.max(1e-9) / b)),
            "first_tenth": load1.json(), "rest": load2.json(),
        },
        "list": {
            "secs": round3(listing.secs), "objects": listing.count, "pages": listing.pages,
            "objs_per_sec": round3(listing.count as f64 / listing.secs.max(1e-9)),
            "page_secs": listing.page_secs.iter().map(|x| round3(*x)).collect::<Vec<_>>(),
            "count_ok": listing.count == loaded_ok, "error": listing.error,
        },
        "decommission": {
            "target": victim, "objects": victim_files, "secs": round3(decomm_secs),
            "cp_sync_secs": round3(cp_secs),
            "ratio_over_cp": round3(cp_secs / decomm_secs.max(1e-9)),
            "status": status_json(&decomm_status),
        },
        "maintenance": {
            "targets": maint, "objects": maint_files, "secs": round3(maint_secs),
            "status": status_json(&maint_status),
        },
        "rss_mib": {
            "hwm_reset_ok": reset_ok,
            "idle": kb_json(&rss_idle),
            "at_10pct": kb_json(&rss_at_10), "at_100pct": kb_json(&rss_at_100),
            "peak_load_0_10pct": kb_json(&peak_at_10), "peak_load_10_100pct": kb_json(&peak_at_100),
            "peak_list": kb_json(&peak_list), "peak_decommission": kb_json(&peak_decomm),
            "peak_maintenance": kb_json(&peak_maint), "peak_overall": kb_json(&overall),
        },
        "check": {
            "sample_gets": checked, "sample_get_errors": get_errors, "first_error": get_first,
            "files_on_active_targets": on_active, "files_on_departed_targets": on_departed,
        },
    });
    let (own, merged) = write_results("scale", "bench-scale.json", &doc)?;
    println!();
    println!(
        "results: {} (and key \"scale\" of {})",
        own.display(),
        merged.display()
    );
    Ok(())
}
