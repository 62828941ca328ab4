//! Helpers shared by the scale benches (`scale.rs`, `control_plane.rs`): settings from the
//! environment, finding `noded` and `target/`, per-process memory and CPU from `/proc`, a
//! concurrent task runner, and merging results into `target/bench-results.json`.
//!
//! `benches/cluster.rs` has its own copies of some of these (it came first); these follow its
//! habits so that the three benches read alike.

#![allow(dead_code)] // each bench uses its own subset

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Environment, paths
// ---------------------------------------------------------------------------------------------

pub fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        _ => Ok(default),
    }
}

/// The `noded` cargo built for this bench (same profile), or `SHOAL_NODED`.
pub fn noded_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SHOAL_NODED") {
        return Ok(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_BIN_EXE_noded"));
    if p.exists() {
        return Ok(p);
    }
    bail!(
        "noded not found at {} (build it first: cargo build --release --bins)",
        p.display()
    )
}

/// Free bytes on the filesystem of `dir` (`df`).
pub fn disk_free(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1)?;
    line.split_whitespace()
        .nth(3)?
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The 1-, 5- and 15-minute load averages: printed with every result, since the machine is
/// shared.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn sync_fs() {
    let _ = Command::new("sync").status();
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// /proc: memory and CPU of a process
// ---------------------------------------------------------------------------------------------

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// Resets the peak-RSS counter (`VmHWM`) of a process (Linux: `echo 5 > clear_refs`).
pub fn reset_hwm(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

pub fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime) are 12 and 13 after the name and state.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/<pid>/stat` times (100 on Linux in practice).
fn clock_ticks() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Raises this process's soft limit on open files to its hard limit (a thousand in-process
/// nodes hold several thousand sockets); returns the limit now in force.
pub fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if let Some(max) = l.maximum {
        l.current = Some(max);
        let _ = setrlimit(Resource::Nofile, l);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Peak RSS of a set of processes over a phase: resets `VmHWM` at the start, then samples
/// `VmHWM` and `VmRSS` every 100 ms from a thread (a process that exits during the phase still
/// has its peak up to shortly before it went).
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<BTreeMap<String, u64>>,
    pub reset_ok: bool,
}

impl RssSampler {
    pub fn start(pids: Vec<(String, u32)>) -> Self {
        let reset_ok = pids.iter().all(|(_, p)| reset_hwm(*p));
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                for (name, pid) in &pids {
                    let v = status_kb(*pid, "VmHWM")
                        .into_iter()
                        .chain(status_kb(*pid, "VmRSS"))
                        .max();
                    if let Some(v) = v {
                        let e = peak.entry(name.clone()).or_default();
                        *e = (*e).max(v);
                    }
                }
                if s.load(Ordering::Relaxed) {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RssSampler {
            stop,
            handle,
            reset_ok,
        }
    }

    /// Peak RSS per process, kB.
    pub fn finish(self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Current RSS per process, kB.
pub fn rss_now(pids: &[(String, u32)]) -> BTreeMap<String, u64> {
    pids.iter()
        .filter_map(|(n, p)| Some((n.clone(), status_kb(*p, "VmRSS")?)))
        .collect()
}

/// `(min, median, max)` of a set of kB values, in MiB.
pub fn spread_mib(m: &BTreeMap<String, u64>) -> (f64, f64, f64) {
    let mut v: Vec<u64> = m.values().copied().collect();
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_unstable();
    (mib(v[0]), mib(v[v.len() / 2]), mib(v[v.len() - 1]))
}

pub fn kb_json(m: &BTreeMap<String, u64>) -> Value {
    Value::Object(
        m.iter()
            .map(|(n, kb)| (n.clone(), json!(round3(mib(*kb)))))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Running many requests
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub secs: f64,
    pub ops: usize,
    pub bytes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// CPU the whole machine spent during the run (every process and kernel thread: the
    /// writeback of a PUT's data runs in neither client nor server), when measured.
    pub cpu_secs: Option<f64>,
}

/// CPU time the whole machine has spent busy, from `/proc/stat`: on a shared VM, throughput
/// swings with the neighbours, while the CPU an operation costs moves far less.
pub struct CpuMeter(Option<f64>);

impl CpuMeter {
    pub fn start() -> Self {
        CpuMeter(busy_cpu_secs())
    }
    /// CPU seconds spent busy since [`start`](Self::start).
    pub fn secs(&self) -> Option<f64> {
        Some(busy_cpu_secs()? - self.0?)
    }
    /// `r` with the CPU spent since the start (the run that made it began after it).
    pub fn stamp(&self, r: RunStats) -> RunStats {
        RunStats {
            cpu_secs: self.secs(),
            ..r
        }
    }
}

/// User, nice, system, irq and softirq time of all CPUs (not idle, iowait or steal).
fn busy_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let busy = [0, 1, 2, 5, 6]
        .iter()
        .map(|&k| ticks.get(k).copied())
        .sum::<Option<u64>>()?;
    // /proc/stat counts in USER_HZ, which Linux fixes at 100 on every architecture.
    Some(busy as f64 / 100.0)
}

impl RunStats {
    /// Machine CPU per operation, microseconds.
    pub fn cpu_us_per_op(&self) -> Option<f64> {
        self.cpu_secs
            .map(|c| c * 1e6 / (self.ops as u64).saturating_sub(self.errors).max(1) as f64)
    }
    pub fn mb_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs.max(1e-9)
    }
    pub fn ops_s(&self) -> f64 {
        (self.ops as u64).saturating_sub(self.errors) as f64 / self.secs.max(1e-9)
    }
    pub fn json(&self) -> Value {
        json!({
            "secs": round3(self.secs), "objects": self.ops, "bytes": self.bytes,
            "errors": self.errors, "first_error": self.first_error,
            "mb_per_sec": round3(self.mb_s()), "objs_per_sec": round3(self.ops_s()),
            "cpu_secs": self.cpu_secs.map(round3),
            "cpu_us_per_op": self.cpu_us_per_op().map(round3),
        })
    }
    pub fn warn(&self, what: &str) {
        if self.errors > 0 {
            eprintln!(
                "!! {what}: {} of {} failed; first: {}",
                self.errors,
                self.ops,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
    }
}

/// Runs `f(i)` for `i` in `range` on `conc` tokio tasks pulling indices from a shared counter;
/// `done` counts completions (for progress lines).
pub async fn run_tasks<F, Fut>(
    range: std::ops::Range<usize>,
    conc: usize,
    done: Arc<AtomicUsize>,
    f: F,
) -> RunStats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64>> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(range.start));
    let end = range.end;
    let bytes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let t = Instant::now();
    let tasks: Vec<_> = (0..conc.max(1))
        .map(|_| {
            let (f, next, bytes, errors, first_error, done) = (
                f.clone(),
                next.clone(),
                bytes.clone(),
                errors.clone(),
                first_error.clone(),
                done.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return;
                    }
                    match f(i).await {
                        Ok(b) => {
                            bytes.fetch_add(b, Ordering::Relaxed);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap()
                                .get_or_insert(format!("#{i}: {e:#}"));
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let first_error = first_error.lock().unwrap().take();
    RunStats {
        secs: t.elapsed().as_secs_f64(),
        ops: end.saturating_sub(range.start),
        bytes: bytes.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        first_error,
        cpu_secs: None,
    }
}

/// Prints `label: done/total (rate/s)` every `every` until `total` is reached or `stop` is set.
pub fn progress(
    label: String,
    done: Arc<AtomicUsize>,
    total: usize,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let t = Instant::now();
        loop {
            tokio::time::sleep(every).await;
            let d = done.load(Ordering::Relaxed);
            if d >= total {
                return;
            }
            println!(
                "    {label}: {d}/{total} ({:.0}/s, {:.0} s)",
                d as f64 / t.elapsed().as_secs_f64(),
                t.elapsed().as_secs_f64()
            );
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

// `target_dir` and `write_results` (merging under a key into `target/bench-results.json`):
// shared with the console's benches. `cluster.rs` rewrites that file whole, so run it first
// when both are wanted there; each bench's own file always has its latest result.
#[path = "../../tui/benches/report/mod.rs"]
mod report;
#[allow(unused_imports)] // each bench uses its own subset, as with the rest of this module
pub use report::{target_dir, write_results};

/// Every running process of `lc`, by harness name, with its PID.
pub fn pids_of(lc: &shoal_nodectl::playground::LocalCluster) -> Vec<(String, u32)> {
    lc.procs
        .iter()
        .filter_map(|(n, p)| Some((n.clone(), p.child.as_ref()?.id())))
        .collect()
}

/// The harness names of `lc`'s targets.
pub fn target_names_of(lc: &shoal_nodectl::playground::LocalCluster) -> Vec<String> {
    lc.procs
        .iter()
        .filter(|(_, p)| p.role == shoal_actors::types::smap::Role::Target)
        .map(|(n, _)| n.clone())
        .collect()
}

/// The node ID of harness node `name`, from the cluster map.
pub async fn id_of(
    lc: &shoal_nodectl::playground::LocalCluster,
    client: &shoal_actors::client::Client,
    name: &str,
) -> Result<shoal_actors::types::smap::NodeId> {
    let addr = &lc.procs[name].addr;
    let smap = client.smap().await?;
    smap.all_nodes()
        .find(|n| &n.addr == addr)
        .map(|n| n.id.clone())
        .ok_or_else(|| anyhow::anyhow!("{name} ({addr}) is not in the map"))
}
