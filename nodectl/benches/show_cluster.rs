//! Cost of `nodectl show cluster`'s targets table (issue #15 item 5: `show cluster` at 200
//! targets) with 100, 200 and 1,000 simulated targets, plain and coloured: the formatting
//! only, not the status request. A plain `Instant` loop (no harness):
//! `cargo bench -p shoal-nodectl --bench show_cluster`.
//!
//! Results: stdout, `target/bench-show-cluster.json`, and the key `show_cluster` of
//! `target/bench-results.json` (merged), beside the console's `render`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};
use shoal_actors::types::smap::Role;
use shoal_actors::types::status::{ClusterStatus, NodeState, NodeStatus};

const RUNS: usize = 300;
const WARMUP: usize = 20;

fn main() {
    println!("show cluster: load average {} (1, 5, 15 min)", loadavg());
    let mut runs = serde_json::Map::new();
    for n in [100, 200, 1000] {
        let st = cluster(n);
        let mut by_mode = serde_json::Map::new();
        for colour in [false, true] {
            let mode = if colour { "colour" } else { "plain" };
            for _ in 0..WARMUP {
                black_box(shoal_nodectl::targets_table(black_box(&st), colour));
            }
            let mut us: Vec<f64> = (0..RUNS)
                .map(|_| {
                    let t = Instant::now();
                    black_box(shoal_nodectl::targets_table(black_box(&st), colour));
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            us.sort_by(f64::total_cmp);
            let (median, p99) = (percentile(&us, 0.50), percentile(&us, 0.99));
            println!(
                "show cluster: {n} targets, {mode}, {RUNS} tables: median {median:.1} µs, p99 {p99:.1} µs"
            );
            by_mode.insert(
                mode.into(),
                json!({ "median_us": round1(median), "p99_us": round1(p99) }),
            );
        }
        runs.insert(n.to_string(), Value::Object(by_mode));
    }
    let doc = json!({ "runs": RUNS, "loadavg": loadavg(), "targets": runs });
    match write_results("show_cluster", "bench-show-cluster.json", &doc) {
        Ok((own, merged)) => println!(
            "show cluster: results in {} and {}",
            own.display(),
            merged.display()
        ),
        Err(e) => eprintln!("show cluster: could not write results: {e}"),
    }
}

/// Target `i` of a simulated cluster: widths vary from row to row, a tenth offline, a seventh
/// in maintenance.
fn target(i: usize) -> NodeStatus {
    NodeStatus {
        id: format!("t{i}xt{}", 8100 + i),
        role: Role::Target,
        mem_used_pct: (i % 100) as f64 + 0.13,
        mem_avail: 33_586_659_328 >> (i % 5),
        cap_used_pct: (i * 7 % 101) as f64,
        cap_avail: 2_677_340_000_000 >> (i % 31),
        cpu_used_pct: i as f64 * 1.37,
        rebalance: "finished(g4)".into(),
        uptime_secs: (i as u64) * 3_599,
        status: if i.is_multiple_of(7) {
            NodeState::Maintenance
        } else if i % 10 == 3 {
            NodeState::Offline
        } else {
            NodeState::Online
        },
        reachable: i % 10 != 3,
        migrating: i.is_multiple_of(14),
        ..Default::default()
    }
}

fn cluster(n: usize) -> ClusterStatus {
    ClusterStatus {
        uuid: "7d1c9c2e".into(),
        smap_version: 12,
        primary: "p1".into(),
        proxies: vec![],
        targets: (0..n).map(target).collect(),
        rebalance: None,
    }
}

/// The value below which `q` of the sorted `v` lie (nearest rank).
fn percentile(v: &[f64], q: f64) -> f64 {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

// As in the console's render bench: the root benches' helpers need the whole workspace.

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `target/` of this build: the bench runs as `target/<profile>/deps/<bench>-<hash>`.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(3).map(Path::to_path_buf))
        .filter(|d| d.join("CACHEDIR.TAG").exists() || d.ends_with("target"))
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        })
}

/// Writes `doc` to `target/<own_file>` and merges it under `key` into
/// `target/bench-results.json` (the other benches' keys stay).
fn write_results(key: &str, own_file: &str, doc: &Value) -> std::io::Result<(PathBuf, PathBuf)> {
    let dir = target_dir();
    let own = dir.join(own_file);
    std::fs::write(&own, serde_json::to_string_pretty(doc)?)?;
    let merged = dir.join("bench-results.json");
    let mut all = std::fs::read_to_string(&merged)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .filter(|v| v.is_object())
        .unwrap_or_else(|| json!({}));
    all[key] = doc.clone();
    std::fs::write(&merged, serde_json::to_string_pretty(&all)?)?;
    Ok((own, merged))
}
