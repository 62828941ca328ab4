//! The nemesis (issue #11, item 7): a live cluster of 3 proxies and 5 targets, several clients
//! doing put, overwrite, get, delete and list, and a nemesis injecting every lifecycle
//! operation, `kill -9` and restarts, SIGSTOP/SIGCONT, partitions through a relay mesh and a
//! full disk. The history is checked throughout and at quiet points (all faults healed, every
//! node back, rebalance idle), where the disks are checked too: every object exactly once at its
//! proper location, nothing deleted left behind. Seeded: the same seed draws the same faults.
//!
//! `run` is the whole thing; `tests/nemesis.rs` sets the duration and seed.

pub mod checker;
pub mod cluster;
pub mod disks;
pub mod faults;
pub mod history;
pub mod relay;
pub mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;

use checker::Violation;
use cluster::Sut;
use faults::Nemesis;
use history::{OpKind, Outcome, Recorder};
use workload::{Control, Counts};

#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// How long faults are injected (quiet points not included).
    pub chaos: Duration,
    /// Chaos time between two quiet points.
    pub quiet_every: Duration,
    pub clients: usize,
    pub keys: usize,
    /// Largest object, bytes.
    pub max_size: usize,
    /// How long a quiet point may take to converge before it is a violation.
    pub converge_within: Duration,
    /// Rebalance throttle, bytes per second per target (0 = unlimited).
    pub throttle: u64,
    /// Time between two fault injections, drawn between these bounds (ms).
    pub fault_every_ms: (u64, u64),
}

impl Config {
    /// From the environment: `SHOAL_NEMESIS_SEED` (a number; empty or `random` for a fresh
    /// one), `SHOAL_NEMESIS_SECS` (chaos time),
    /// `SHOAL_NEMESIS_QUIET_SECS`, `SHOAL_NEMESIS_CLIENTS`, `SHOAL_NEMESIS_KEYS`,
    /// `SHOAL_NEMESIS_MAX_SIZE`, `SHOAL_NEMESIS_THROTTLE`, over the given defaults.
    pub fn from_env(default: Config) -> Config {
        let num = |k: &str, d: u64| -> u64 {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(d)
        };
        // Set but empty (or "random"): a fresh seed, printed at the start for replay.
        let seed = match std::env::var("SHOAL_NEMESIS_SEED") {
            Ok(v) if v.trim().is_empty() || v.trim() == "random" => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 % 1_000_000)
                .unwrap_or(1),
            _ => num("SHOAL_NEMESIS_SEED", default.seed),
        };
        Config {
            seed,
            chaos: Duration::from_secs(num("SHOAL_NEMESIS_SECS", default.chaos.as_secs())),
            quiet_every: Duration::from_secs(num(
                "SHOAL_NEMESIS_QUIET_SECS",
                default.quiet_every.as_secs(),
            )),
            clients: num("SHOAL_NEMESIS_CLIENTS", default.clients as u64) as usize,
            keys: num("SHOAL_NEMESIS_KEYS", default.keys as u64) as usize,
            max_size: num("SHOAL_NEMESIS_MAX_SIZE", default.max_size as u64) as usize,
            converge_within: default.converge_within,
            throttle: num("SHOAL_NEMESIS_THROTTLE", default.throttle),
            fault_every_ms: default.fault_every_ms,
        }
    }
}

/// The closing note's figures.
pub struct Report {
    pub seed: u64,
    pub elapsed: Duration,
    pub ops: Counts,
    pub faults: Counts,
    pub lifecycle: Counts,
    pub quiet_points: usize,
    /// Node-to-node connections that went through the relay mesh.
    pub relayed: u64,
    pub violations: Vec<Violation>,
    /// Where the history, events, violations and node logs were saved.
    pub saved: Option<std::path::PathBuf>,
}

impl Report {
    pub fn by_kind(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for v in &self.violations {
            *m.entry(v.kind.clone()).or_default() += 1;
        }
        m
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        let total: u64 = self.ops.0.values().sum();
        let faults: u64 = self.faults.0.values().sum();
        let _ = writeln!(
            s,
            "nemesis: seed {} — {:.0}s, {total} operations, {faults} faults, {} quiet points, {} node-to-node connections relayed, {} violations",
            self.seed,
            self.elapsed.as_secs_f64(),
            self.quiet_points,
            self.relayed,
            self.violations.len()
        );
        let _ = writeln!(s, "  operations:");
        for (k, v) in &self.ops.0 {
            let _ = writeln!(s, "    {k:<28} {v}");
        }
        let _ = writeln!(s, "  faults injected:");
        for (k, v) in &self.faults.0 {
            let _ = writeln!(s, "    {k:<28} {v}");
        }
        let _ = writeln!(s, "  lifecycle commands (nodectl):");
        for (k, v) in &self.lifecycle.0 {
            let _ = writeln!(s, "    {k:<28} {v}");
        }
        let _ = writeln!(s, "  violations by kind:");
        if self.violations.is_empty() {
            let _ = writeln!(s, "    none");
        }
        for (k, v) in self.by_kind() {
            let keys: std::collections::BTreeSet<&str> = self
                .violations
                .iter()
                .filter(|x| x.kind == k)
                .map(|x| x.key.as_str())
                .collect();
            let _ = writeln!(s, "    {k:<28} {v} (on {} key(s))", keys.len());
        }
        if let Some(p) = &self.saved {
            let _ = writeln!(
                s,
                "  history, events and node logs saved in {}",
                p.display()
            );
        }
        let _ = writeln!(
            s,
            "  replay: SHOAL_NEMESIS_SEED={} SHOAL_NEMESIS_SECS=<same> cargo test --test nemesis -- --include-ignored --nocapture",
            self.seed
        );
        s
    }
}

/// Runs the nemesis as configured; returns the figures and every violation found.
pub async fn run(cfg: Config) -> Report {
    eprintln!(
        "nemesis: seed {} (replay with SHOAL_NEMESIS_SEED={}), {:?} of faults, {} clients, {} keys",
        cfg.seed, cfg.seed, cfg.chaos, cfg.clients, cfg.keys
    );
    let started = Instant::now();
    let sut = Sut::start(3, 5, 2, cfg.throttle).await;
    eprintln!(
        "nemesis: cluster up in {:.1}s (data and logs in {})",
        started.elapsed().as_secs_f64(),
        sut.dir().display()
    );
    let rec = Recorder::new();
    let ctl = Control::new();
    let keys = workload::keys(cfg.keys);
    let loader = sut.workload_clients().swap_remove(0);
    workload::prefill(cfg.clients, cfg.seed, &keys, &loader, &rec, cfg.max_size).await;
    let mut clients = Vec::new();
    for id in 0..cfg.clients {
        clients.push(tokio::spawn(workload::client(
            id,
            cfg.seed,
            keys.clone(),
            sut.workload_clients(),
            rec.clone(),
            ctl.clone(),
            cfg.max_size,
        )));
    }
    let mut nem = Nemesis::new(sut, rec.clone(), cfg.seed);
    // The pace of fault injection has its own stream, so that it does not shift the faults.
    let mut pace = StdRng::seed_from_u64(cfg.seed.wrapping_add(1));
    let mut quiet_points = 0;
    let mut chaos_left = cfg.chaos;
    let mut aborted = false;
    let mut last_progress = Instant::now();
    'run: while !chaos_left.is_zero() {
        let period = chaos_left.min(cfg.quiet_every);
        let until = Instant::now() + period;
        let mut next_fault = Instant::now() + Duration::from_millis(pace.random_range(300..1500));
        let mut next_check = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            nem.tick().await;
            if Instant::now() >= next_fault {
                nem.inject().await;
                let (lo, hi) = cfg.fault_every_ms;
                next_fault = Instant::now() + Duration::from_millis(pace.random_range(lo..=hi));
            }
            if Instant::now() >= next_check {
                check_history(&mut nem, &keys);
                next_check = Instant::now() + Duration::from_secs(15);
            }
            if last_progress.elapsed() > Duration::from_secs(30) {
                last_progress = Instant::now();
                progress(&nem, &ctl, started);
            }
            // The tick's pace: the nemesis looks at the cluster a few times a second.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        chaos_left = chaos_left.saturating_sub(period);
        quiet_points += 1;
        if !quiet_point(&mut nem, &ctl, &keys, cfg.converge_within).await {
            aborted = true;
            break 'run;
        }
    }
    ctl.stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = tokio::time::timeout(workload::OP_TIMEOUT * 2, c).await;
    }
    check_history(&mut nem, &keys);
    if aborted {
        eprintln!("nemesis: stopped early: the cluster did not converge (see above)");
    }
    let mut ops = ctl.counts.lock().expect("poisoned").clone();
    split_overwrites(&rec, &mut ops);
    let mut report = Report {
        seed: cfg.seed,
        elapsed: started.elapsed(),
        ops,
        faults: nem.faults.clone(),
        lifecycle: nem.lifecycle.clone(),
        quiet_points,
        relayed: nem.sut.mesh.relayed(),
        violations: nem.violations.clone(),
        saved: None,
    };
    report.saved = save(&nem, &report);
    // A stopped process would make every graceful stop wait for its grace period.
    for n in std::mem::take(&mut nem.sut.paused) {
        let _ = nem.sut.tc.lc.resume(&n);
    }
    nem.sut.tc.lc.stop_all();
    report
}

/// Counts puts to a key that held a value (as far as acknowledged writes tell) as overwrites.
fn split_overwrites(rec: &Recorder, ops: &mut Counts) {
    let mut holds: BTreeMap<String, bool> = BTreeMap::new();
    let mut overwrites = 0;
    for o in rec.ops() {
        match (&o.kind, &o.outcome) {
            (OpKind::Put { .. }, Outcome::Ok) => {
                let held = holds.insert(o.key.clone(), true);
                overwrites += u64::from(held == Some(true));
            }
            (OpKind::Delete, Outcome::Ok | Outcome::Absent) => {
                holds.insert(o.key.clone(), false);
            }
            _ => {}
        }
    }
    ops.0.insert("(of put ok: overwrites)".into(), overwrites);
}

fn progress(nem: &Nemesis, ctl: &Control, started: Instant) {
    let ops: u64 = ctl.counts.lock().expect("poisoned").0.values().sum();
    let faults: u64 = nem.faults.0.values().sum();
    eprintln!(
        "nemesis: {:>5.0}s  {ops} operations, {faults} faults, {} disturbed now, {} violations",
        started.elapsed().as_secs_f64(),
        nem.disturbed(),
        nem.violations.len()
    );
}

fn check_history(nem: &mut Nemesis, keys: &[String]) {
    let ops = nem.rec.ops();
    for v in checker::check(&ops, keys) {
        nem.violation(v);
    }
}

/// Stops the clients, heals everything, waits for the cluster to be quiet, then checks every
/// key through the cluster and on disk. False when the cluster did not converge in time.
async fn quiet_point(nem: &mut Nemesis, ctl: &Control, keys: &[String], within: Duration) -> bool {
    nem.rec
        .event("quiet point: every fault healed, clients stopping");
    // Heal first: a client stuck on a stopped node finishes as soon as the node resumes.
    nem.heal_everything();
    nem.tick().await;
    let gate = match tokio::time::timeout(workload::OP_TIMEOUT * 2, ctl.gate.write()).await {
        Ok(g) => g,
        Err(_) => {
            nem.violation(Violation {
                kind: "client-hung".into(),
                key: String::new(),
                detail: format!(
                    "{} client operations did not finish in {:?}",
                    nem.rec.pending(),
                    workload::OP_TIMEOUT * 2
                ),
                ops: vec![],
                window: (nem.rec.now(), nem.rec.now()),
            });
            return false;
        }
    };
    let t0 = Instant::now();
    let mut stable: Option<u64> = None;
    let mut why;
    loop {
        nem.tick().await;
        match nem.quiet().await {
            // Quiet twice in a row with the same map: nothing was still about to start.
            Ok(v) if stable == Some(v) => break,
            Ok(v) => {
                stable = Some(v);
                why = String::new();
            }
            Err(e) => {
                stable = None;
                why = e;
                // Whatever is still not healthy (also what a late command changed) is healed.
                nem.track_unhealthy(Duration::ZERO);
            }
        }
        if t0.elapsed() > within {
            let st = nem
                .last_status
                .as_ref()
                .map(|s| format!("{s:#?}"))
                .unwrap_or_else(|| "no status".into());
            eprintln!(
                "cluster status at the time:\n{}",
                history::one_line(&st, 4000)
            );
            eprintln!("{}", nem.sut.log_tails(15));
            nem.violation(Violation {
                kind: "no-convergence".into(),
                key: String::new(),
                detail: format!(
                    "the cluster was not quiet {within:?} after every fault was healed: {why}"
                ),
                ops: vec![],
                window: (nem.rec.now().saturating_sub(30_000_000), nem.rec.now()),
            });
            return false;
        }
        // The pace of polling for quiet.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    nem.rec.event(format!(
        "quiet after {:.1}s: checking every key",
        t0.elapsed().as_secs_f64()
    ));
    check_quiet(nem, keys).await;
    check_history(nem, keys);
    nem.rec.event("quiet point done: clients resume");
    drop(gate);
    true
}

/// At a quiet point: read every key through the cluster (recorded, so the history check covers
/// these reads too), then compare with the disks: a present object exactly once, on its HRW
/// target and mountpath, with the content read; an absent one nowhere; nothing else.
async fn check_quiet(nem: &mut Nemesis, keys: &[String]) {
    let clients = nem.sut.workload_clients();
    let mut seen: BTreeMap<String, Outcome> = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        let (via, c) = &clients[i % clients.len()];
        let mut last = Outcome::Failed("not read".into());
        for _ in 0..3 {
            let op = nem.rec.invoke(usize::MAX, key, OpKind::Get, via);
            let r = tokio::time::timeout(
                workload::OP_TIMEOUT,
                c.get_bytes(crate::common::BUCKET, key),
            )
            .await;
            let o = match r {
                Ok(Ok(d)) => Outcome::Value(crate::common::checksum(&d)),
                Ok(Err(e)) if cluster::absent(&e) => Outcome::Absent,
                Ok(Err(e)) => Outcome::Failed(e.to_string()),
                Err(_) => Outcome::Failed("harness timeout".into()),
            };
            nem.rec.complete(op, o.clone());
            last = o;
            if !matches!(last, Outcome::Failed(_)) {
                break;
            }
        }
        if let Outcome::Failed(e) = &last {
            let id = nem.rec.ops().len() - 1;
            nem.violation(Violation {
                kind: "quiet-unavailable".into(),
                key: key.clone(),
                detail: format!("GET failed three times on a quiet cluster: {e}"),
                ops: vec![id],
                window: (nem.rec.now().saturating_sub(10_000_000), nem.rec.now()),
            });
        }
        seen.insert(key.clone(), last);
    }
    let Some(smap) = nem.sut.smap().await else {
        return;
    };
    let files = nem.sut.files(&nem.sut.targets.clone());
    let now = nem.rec.now();
    let proper = |k: &str| nem.sut.proper_location(&smap, k);
    let findings = disks::compare(keys, &seen, &files, &proper, smap.version);
    let ops = nem.rec.ops();
    for f in findings {
        // Printed with the key's quiet read, the operation its content is compared with.
        let read = ops
            .iter()
            .rev()
            .find(|o| o.key == f.key && o.client == usize::MAX)
            .map(|o| vec![o.id])
            .unwrap_or_default();
        nem.violation(Violation {
            kind: f.kind.into(),
            key: f.key,
            detail: f.detail,
            ops: read,
            window: (now.saturating_sub(20_000_000), now),
        });
    }
}

/// Saves the history, the events, every violation and the node logs under the target dir, so
/// that a failure can be studied after the cluster's temp dir is gone.
fn save(nem: &Nemesis, report: &Report) -> Option<std::path::PathBuf> {
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("nemesis-{}", report.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).ok()?;
    let ops = nem.rec.ops();
    let events = nem.rec.events();
    let mut h = String::new();
    for o in &ops {
        let _ = writeln!(h, "{}", o.line());
    }
    std::fs::write(dir.join("history.txt"), h).ok()?;
    let mut e = format!("# t = 0 is {} in the node logs\n", nem.rec.wall0());
    for ev in &events {
        let _ = writeln!(e, "[{}] {}", history::fmt_t(ev.t), ev.text);
    }
    std::fs::write(dir.join("events.txt"), e).ok()?;
    let mut v = report.summary();
    for x in &report.violations {
        v.push('\n');
        v.push_str(&checker::render(x, &ops, &events, report.seed));
    }
    std::fs::write(dir.join("violations.txt"), v).ok()?;
    for (n, p) in &nem.sut.tc.lc.procs {
        let _ = std::fs::copy(&p.log, dir.join(format!("{n}.log")));
    }
    Some(dir)
}
