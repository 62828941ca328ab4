//! Resilver benchmark (issue #13): a target's mountpath is detached, so every object on it moves
//! to the other mountpath, timed from the request to the resilver's end; against `cp -r` of the
//! same files between the same two directories followed by `sync`, in the same run. A
//! measurement, never an assertion.
//!
//! Two placements of the second mountpath:
//! - `same-fs`: both mountpaths on one filesystem — a move is a rename (plus directory syncs),
//!   while `cp` copies the data;
//! - `cross-fs`: the second one on another filesystem (`SHOAL_BENCH_XFS_DIR`, default `/dev/shm`
//!   when it is a different filesystem) — a move is a copy, an fsync, a rename and the removal.
//!
//! ```text
//! cargo bench --bench resilver                          # 1 MiB × 256 and 4 KiB × 10,000
//! SHOAL_BENCH_SCALE=small cargo bench --bench resilver  # a quick run
//! ```
//!
//! Results: a table on stdout and `target/bench-resilver.json`. Run without `--bench` it does
//! nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use shoal_actors::client::Client;
use shoal_actors::proto::msg::{GetResilver, MountpathOp};
use shoal_actors::types::smap::Role;
use shoal_actors::types::storage::MpAction;
use shoal_nodectl::playground::{LocalCluster, free_port};

const BUCKET: &str = "bench";

struct Case {
    name: &'static str,
    size: usize,
    count: usize,
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let small = std::env::var("SHOAL_BENCH_SCALE").is_ok_and(|s| s == "small");
    let cases = [
        Case {
            name: "1MiB",
            size: 1 << 20,
            count: if small { 32 } else { 256 },
        },
        Case {
            name: "4KiB",
            size: 4 << 10,
            count: if small { 1000 } else { 10_000 },
        },
    ];
    let root = tempfile::Builder::new()
        .prefix("shoal-bench-resilver")
        .tempdir_in(std::env::var_os("SHOAL_BENCH_DIR").unwrap_or(std::env::temp_dir().into()))?;
    let xfs = cross_fs_dir(root.path());
    let rows = match run_all(&cases, root.path(), xfs.as_deref()) {
        Ok(rows) => rows,
        Err(e) => {
            // A failed case keeps its directory (the node logs) for a look.
            let kept = root.keep();
            return Err(e.context(format!("kept {}", kept.display())));
        }
    };
    print_and_save(&rows, xfs.is_some())
}

/// Every case, same filesystem and (when there is one) across filesystems.
fn run_all(cases: &[Case], root: &Path, xfs: Option<&Path>) -> Result<Vec<Value>> {
    let rt = tokio::runtime::Runtime::new()?;
    let mut rows = Vec::new();
    for c in cases {
        let same = root.join(format!("{}-same", c.name));
        let r = rt.block_on(run(c, &same, &same.join("mp1"), "same-fs"));
        rows.push(r?);
        if let Some(x) = xfs {
            let dir = x.join(format!("shoal-bench-{}-{}", std::process::id(), c.name));
            let r = rt.block_on(run(
                c,
                &root.join(format!("{}-x", c.name)),
                &dir,
                "cross-fs",
            ));
            let _ = std::fs::remove_dir_all(&dir);
            rows.push(r?);
        }
    }
    Ok(rows)
}

fn print_and_save(rows: &[Value], cross_fs: bool) -> Result<()> {
    println!(
        "\n{:<6} {:<9} {:>8} {:>10} {:>12} {:>12} {:>8}",
        "CASE", "PLACE", "OBJECTS", "MiB", "RESILVER", "CP+SYNC", "RATIO"
    );
    for r in rows {
        println!(
            "{:<6} {:<9} {:>8} {:>10.1} {:>9.1}MB/s {:>9.1}MB/s {:>7.2}x",
            r["case"].as_str().unwrap_or(""),
            r["placement"].as_str().unwrap_or(""),
            r["objects"],
            r["bytes"].as_f64().unwrap_or(0.0) / (1 << 20) as f64,
            r["resilver_mb_s"].as_f64().unwrap_or(0.0),
            r["cp_sync_mb_s"].as_f64().unwrap_or(0.0),
            r["ratio"].as_f64().unwrap_or(0.0),
        );
    }
    if !cross_fs {
        println!(
            "(cross-fs skipped: set SHOAL_BENCH_XFS_DIR to a directory on another filesystem)"
        );
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-resilver.json");
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json!({ "results": rows }))?,
    )?;
    println!("results: {}", out.display());
    Ok(())
}

/// A directory on another filesystem than `here`, if there is one to use.
fn cross_fs_dir(here: &Path) -> Option<PathBuf> {
    let cand = std::env::var_os("SHOAL_BENCH_XFS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"));
    let dev = |p: &Path| std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(p).ok()?).into();
    let (a, b): (Option<u64>, Option<u64>) = (dev(here), dev(&cand));
    (a.is_some() && b.is_some() && a != b).then_some(cand)
}

/// One case: a target with mountpaths `<dir>/mp0` and `mp1`; the objects are loaded, `cp -r` +
/// `sync` of mp0's objects into a sibling of mp1 is timed, then mp0 is detached and the
/// resilver timed.
async fn run(c: &Case, dir: &Path, mp1: &Path, placement: &str) -> Result<Value> {
    std::fs::create_dir_all(dir)?;
    std::fs::create_dir_all(mp1)?;
    let mp0 = dir.join("mp0");
    let mut lc = LocalCluster::new(noded()?, dir.to_path_buf());
    lc.add("proxy0", Role::Proxy, free_port()?, 0, &[])?;
    let mps = [
        "--mountpath".to_string(),
        mp0.display().to_string(),
        "--mountpath".to_string(),
        mp1.display().to_string(),
    ];
    let extra: Vec<&str> = mps.iter().map(String::as_str).collect();
    lc.add("target0", Role::Target, free_port()?, 0, &extra)?;
    lc.wait_ready(Duration::from_secs(30)).await?;
    let client = lc.client();
    client.create_bucket(BUCKET).await?;
    load(&client, c).await?;
    let addr = lc.procs["target0"].addr.clone();
    let on_mp0 = files_under(&mp0.join("objs"));
    let bytes: u64 = on_mp0.iter().map(|(_, s)| s).sum();
    sync();

    // Baseline: the same files, the same two directories.
    let copy = mp1.with_file_name(format!("{}-cp", mp1.file_name().unwrap().to_string_lossy()));
    let t = Instant::now();
    let st = Command::new("cp")
        .arg("-r")
        .arg(mp0.join("objs"))
        .arg(&copy)
        .status()?;
    if !st.success() {
        bail!("cp -r failed");
    }
    sync();
    let cp_secs = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&copy)?;
    sync();

    let t = Instant::now();
    let r = client
        .rpc_at(
            &addr,
            MountpathOp {
                action: MpAction::Detach,
                path: mp0.display().to_string(),
                dry_run: false,
            },
        )
        .await?;
    let id = r
        .resilver_id
        .clone()
        .ok_or_else(|| anyhow!("no resilver"))?;
    let st = loop {
        if let Some(s) = client.rpc_at(&addr, GetResilver).await?
            && s.id == id
            && !s.is_running()
        {
            break s;
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("resilver {id} did not finish");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let secs = t.elapsed().as_secs_f64();
    lc.stop_all();
    let left = files_under(&mp0.join("objs")).len();
    let _ = std::fs::remove_dir_all(dir);
    let mb = bytes as f64 / 1e6;
    let (res_mb_s, cp_mb_s) = (mb / secs, mb / cp_secs);
    eprintln!(
        "{} {placement}: {} objects, {:.1} MB: resilver {secs:.2}s ({} moved, {} errors, {left} left), cp -r + sync {cp_secs:.2}s",
        c.name,
        on_mp0.len(),
        mb,
        st.objs_moved,
        st.errors
    );
    Ok(json!({
        "case": c.name,
        "placement": placement,
        "objects": on_mp0.len(),
        "bytes": bytes,
        "moved": st.objs_moved,
        "errors": st.errors,
        "left_behind": left,
        "resilver_secs": secs,
        "cp_sync_secs": cp_secs,
        "resilver_mb_s": res_mb_s,
        "cp_sync_mb_s": cp_mb_s,
        "ratio": res_mb_s / cp_mb_s,
    }))
}

/// Puts `c.count` objects of `c.size` bytes, 8 at a time.
async fn load(client: &Client, c: &Case) -> Result<()> {
    let data = Arc::new(
        (0..c.size)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for i in 0..c.count {
        let (client, data, sem) = (client.clone(), data.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.expect("semaphore");
            let mut d = data.to_vec();
            d[..8].copy_from_slice(&(i as u64).to_le_bytes());
            client.put_bytes(BUCKET, &format!("o/{i:07}"), &d).await
        }));
    }
    for t in tasks {
        t.await?.context("put")?;
    }
    Ok(())
}

/// Object files and their sizes under `dir`.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => out.push((p, e.metadata().map(|m| m.len()).unwrap_or(0))),
                Err(_) => {}
            }
        }
    }
    out
}

fn sync() {
    let _ = Command::new("sync").status();
}

fn noded() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SHOAL_NODED") {
        return Ok(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_BIN_EXE_noded"));
    if p.exists() {
        Ok(p)
    } else {
        bail!("noded not found at {}", p.display())
    }
}
