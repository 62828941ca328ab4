//! Cost of `nodectl show cluster`'s targets table (issue #15 item 5: `show cluster` at 200
//! targets) with 100, 200 and 1,000 simulated targets, plain and coloured: the formatting
//! only, not the status request. A plain `Instant` loop (no harness):
//! `cargo bench -p shoal-nodectl --bench show_cluster`.
//!
//! Results: stdout, `target/bench-show-cluster.json`, and the key `show_cluster` of
//! `target/bench-results.json` (merged), beside the console's `render`.

// The console's bench helpers, shared by path (a bench cannot depend on another crate's).
#[path = "../../tui/benches/report/mod.rs"]
mod report;

use std::hint::black_box;
use std::time::Instant;

use serde_json::{Value, json};
use shoal_actors::types::smap::Role;
use shoal_actors::types::status::{ClusterStatus, NodeState, NodeStatus};

use report::{loadavg, percentile, round1, write_results};

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
