//! Node lifecycle with global rebalance, end to end on real processes: 1 proxy, 4 targets with 2
//! mountpaths each, objects of mixed sizes; checksums recorded before every step and compared
//! after; the governing rule (each object exactly once, at its proper location) checked on disk.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use serde_json::Value;
use shoal_actors::types::status::RebState;

/// Rebalance throttled so that tests can act while it runs.
fn config(throttle: u64) -> String {
    format!("{FAST_CONFIG}\n[cluster.rebalance]\nthrottle_bytes_per_sec = {throttle}\n")
}

const T: Duration = Duration::from_secs(60);

async fn cluster(throttle: u64) -> (TestCluster, HashMap<String, String>) {
    let c = TestCluster::start(1, 4, 2, &config(throttle)).await;
    let objs = make_objects(200, 1024, 1 << 20, 11);
    let expected = put_all(&c.client, &objs).await;
    (c, expected)
}

fn op(c: &TestCluster, args: &[&str]) -> Value {
    c.nodectl_json(args)
}

/// `nodectl cluster add-remove-nodes ARGS --yes --json`.
fn membership(c: &TestCluster, args: &[&str]) -> Value {
    let mut a = vec!["cluster", "add-remove-nodes"];
    a.extend_from_slice(args);
    a.push("--yes");
    c.nodectl_json(&a)
}

fn active_targets(st: &shoal_actors::types::status::ClusterStatus) -> usize {
    st.targets
        .iter()
        .filter(|t| t.status == NodeState::Online)
        .count()
}

/// GETs in a loop until stopped; counts successes and errors.
fn spawn_readers(
    client: shoal_actors::client::Client,
    names: Vec<String>,
) -> (
    Arc<AtomicBool>,
    Arc<AtomicU64>,
    Arc<AtomicU64>,
    tokio::task::JoinHandle<Vec<String>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let (s, o, b) = (stop.clone(), ok.clone(), bad.clone());
    let h = tokio::spawn(async move {
        let mut errors = Vec::new();
        let mut i = 0usize;
        while !s.load(Ordering::Relaxed) {
            let n = &names[i % names.len()];
            i += 7;
            match client.get_bytes(BUCKET, n).await {
                Ok(_) => o.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    errors.push(format!("{n}: {e}"));
                    b.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        errors
    });
    (stop, ok, bad, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_on_and_off_with_continuous_reads() {
    let (c, expected) = cluster(4_000_000).await;
    let t0 = c.id("target0").await;
    let before = c.smap().await.version;

    // Dry run: the plan names what t0 holds and changes nothing.
    let plan = op(
        &c,
        &[
            "cluster",
            "add-remove-nodes",
            "start-maintenance",
            &format!("t[{t0}]"),
            "--dry-run",
        ],
    );
    let planned: u64 = plan["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["objs"].as_u64().unwrap())
        .sum();
    let (on_t0, bytes_on_t0) = c
        .object_files()
        .values()
        .filter(|v| v[0].0 == "target0")
        .fold((0, 0), |(n, b), v| (n + 1, b + v[0].2.size));
    assert_eq!(planned, on_t0, "plan: {plan}");
    assert!(
        plan["moves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["from"] == t0.0.as_str() && m["to"] != t0.0.as_str())
    );
    assert_eq!(plan["capacity"].as_array().unwrap().len(), 4);
    assert_eq!(plan["fits"], true);
    assert_eq!(
        c.smap().await.version,
        before,
        "a dry run must not change the map"
    );

    let names: Vec<String> = expected.keys().cloned().collect();
    let (stop, ok, bad, readers) = spawn_readers(c.client.clone(), names);

    let r = membership(&c, &["start-maintenance", &format!("t[{t0}]")]);
    let g = r["rebalance_id"].as_str().expect("a rebalance").to_string();
    // While it migrates the node is red (migrating), not safe to power off.
    let st = c.status().await;
    let row = st.targets.iter().find(|t| t.id == t0.0).unwrap();
    assert_eq!(row.status, NodeState::Maintenance);
    if st.rebalance.as_ref().is_some_and(|r| r.is_running()) {
        assert!(row.migrating && !row.safe_to_power_off, "{row:?}");
        assert_eq!(row.rebalance, format!("running({g})"));
    }
    let w = c.nodectl(&["wait", "rebalance", "--timeout", "60"]);
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    wait_for("t0 post-rebalance maintenance", T, || async {
        c.node_status("target0")
            .await
            .is_some_and(|n| n.safe_to_power_off && n.flags.contains(&"maint_post_reb".to_string()))
    })
    .await;
    assert_eq!(active_targets(&c.status().await), 3);
    let reb = c.client.rebalance_status().await.unwrap().unwrap();
    assert_eq!(reb.id, g);
    assert_eq!(reb.state, RebState::Finished);
    assert_eq!(reb.objs_moved, on_t0, "{reb:?}");
    assert_eq!(reb.objs_total, on_t0);
    // Counted by file name, corrected to object sizes as each trailer is read: the totals
    // are what moved, not what the files held.
    assert_eq!(
        (reb.bytes_moved, reb.bytes_total),
        (bytes_on_t0, bytes_on_t0)
    );
    assert_eq!(reb.eta_secs, Some(0));
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;

    // Back on.
    let r = membership(&c, &["stop-maintenance", &t0.0]);
    assert!(r["rebalance_id"].is_string());
    c.wait_rebalance_idle(T).await;
    assert_eq!(active_targets(&c.status().await), 4);
    stop.store(true, Ordering::Relaxed);
    let errors = readers.await.unwrap();
    assert!(
        errors.is_empty(),
        "GET errors during transitions: {errors:?}"
    );
    assert_eq!(bad.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 50, "readers barely ran");
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;

    // Repeating a completed operation: no new map version, no rebalance.
    let v = c.smap().await.version;
    let r = membership(&c, &["stop-maintenance", &t0.0]);
    assert_eq!(r["rebalance_id"], Value::Null);
    assert_eq!(r["smap_version"].as_u64(), Some(v));
    assert_eq!(c.smap().await.version, v);
    let human = c.nodectl(&[
        "cluster",
        "add-remove-nodes",
        "stop-maintenance",
        &t0.0,
        "--yes",
    ]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("is already active"));
}

/// `nodectl wait node NODE --status safe --timeout SECS`.
fn wait_safe(c: &TestCluster, node: &str, secs: &str) -> std::process::Output {
    c.nodectl(&["wait", "node", node, "--status", "safe", "--timeout", secs])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_with_and_without_user_data() {
    let (mut c, expected) = cluster(0).await;
    for (name, extra) in [("target3", None), ("target2", Some("--rm-user-data"))] {
        let id = c.id(name).await;
        let mut args = vec![
            "cluster",
            "add-remove-nodes",
            "decommission",
            id.0.as_str(),
            "--yes",
        ];
        args.extend(extra);
        let out = c.nodectl(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Started rebalance \"g") && text.contains("is being decommissioned"),
            "{text}"
        );
        wait_for("decommissioned node to leave the map", T, || async {
            c.id_opt(name).await.is_none()
        })
        .await;
        wait_for("decommissioned process to exit", T, || {
            let gone = c.lc.exited(name);
            async move { gone }
        })
        .await;
        // `decommission X && wait node X --status safe && poweroff` goes on: a decommissioned
        // node is drained and out of the map.
        let out = wait_safe(&c, id.0.as_str(), "10");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("safe"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Its metadata is wiped: it cannot come back without a fresh join.
        let dd = &c.lc.procs[name].data_dir;
        assert!(!dd.join("smap.msgpack").exists() && !dd.join("node.id").exists());
        assert_all_readable(&c.client, &expected).await;
        c.assert_properly_located(&expected).await;
    }
    assert_eq!(c.smap().await.targets.len(), 2);
    // A node the map has never held (a typo) is not "safe": said at once (exit 1), not after
    // the timeout (exit 4).
    let out = wait_safe(&c, "t[nosuch]", "60");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not in the cluster map"), "{err}");

    // Decommissioned without a rebalance: out of the map, but its objects were never moved
    // off it, so it is never "safe" (exit 3, as `check` says no), whatever the wait.
    let id = c.id("target1").await;
    c.nodectl_ok(&[
        "cluster",
        "add-remove-nodes",
        "decommission",
        id.0.as_str(),
        "--no-rebalance",
        "--yes",
    ]);
    wait_for("decommissioned node to leave the map", T, || async {
        c.id_opt("target1").await.is_none()
    })
    .await;
    let out = wait_safe(&c, id.0.as_str(), "60");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("without a rebalance"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_restart_and_stop_maintenance() {
    let (mut c, expected) = cluster(0).await;
    let t1 = c.id("target1").await;
    let out = c.nodectl(&[
        "cluster",
        "add-remove-nodes",
        "shutdown",
        &format!("t[{t1}]"),
        "--yes",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(&format!(
            "t[{t1}] is shutting down, please wait for cluster rebalancing to finish"
        )),
        "{text}"
    );
    assert!(text.contains("is _not_ decommissioned"), "{text}");
    wait_for("shut-down target to exit", T, || {
        let gone = c.lc.exited("target1");
        async move { gone }
    })
    .await;
    // Still in the map, in maintenance, safe to power off.
    let row = c.node_status("target1").await.expect("still in the map");
    assert_eq!(row.status, NodeState::Maintenance);
    assert!(row.safe_to_power_off && !row.reachable, "{row:?}");
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
    // wait node: safe now; online never (timeout exit code 4).
    assert!(
        c.nodectl(&["wait", "node", &t1.0, "--status", "safe", "--timeout", "10"])
            .status
            .success()
    );
    assert_eq!(
        c.nodectl(&[
            "wait",
            "node",
            &t1.0,
            "--status",
            "online",
            "--timeout",
            "0.5"
        ])
        .status
        .code(),
        Some(4)
    );

    // Taking it out of maintenance while it is down is refused (it must be started first).
    let v = c.smap().await.version;
    let out = c.nodectl(&[
        "cluster",
        "add-remove-nodes",
        "stop-maintenance",
        &t1.0,
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("start it first"));
    assert_eq!(c.smap().await.version, v);

    // Restart: rejoins still in maintenance.
    c.lc.start("target1").unwrap();
    wait_for("restarted node to answer", T, || async {
        c.node_status("target1").await.is_some_and(|n| n.reachable)
    })
    .await;
    assert_eq!(
        c.node_status("target1").await.unwrap().status,
        NodeState::Maintenance
    );
    assert_eq!(c.id("target1").await, t1);
    // stop-maintenance: 4 active, objects spread back.
    membership(&c, &["stop-maintenance", &t1.0]);
    c.wait_rebalance_idle(T).await;
    assert_eq!(active_targets(&c.status().await), 4);
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
    assert!(
        c.object_files().values().any(|v| v[0].0 == "target1"),
        "nothing moved back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_one_rebalance_and_busy_matrix() {
    let (c, expected) = cluster(3_000_000).await;
    let (t0, t1, t2, t3) = (
        c.id("target0").await,
        c.id("target1").await,
        c.id("target2").await,
        c.id("target3").await,
    );
    let v0 = c.smap().await.version;
    let r = membership(&c, &["start-maintenance", &t0.0, &format!("t[{t1}]")]);
    let g = r["rebalance_id"].as_str().unwrap().to_string();
    assert_eq!(
        r["smap_version"].as_u64(),
        Some(v0 + 1),
        "one map change for the batch"
    );

    // While g runs, every other membership change is refused (exit 3) naming g.
    let running = c.client.rebalance_status().await.unwrap().unwrap();
    assert!(
        running.is_running(),
        "throttled rebalance finished too soon to test: {running:?}"
    );
    for args in [
        vec!["start-maintenance", t0.0.as_str()], // subset of the batch
        vec!["start-maintenance", t2.0.as_str()], // disjoint
        vec!["decommission", t3.0.as_str()],      // decommission
        vec!["shutdown", t0.0.as_str(), t1.0.as_str()], // same nodes, other op
    ] {
        let mut a = vec!["cluster", "add-remove-nodes"];
        a.extend(args.iter().copied());
        a.push("--yes");
        let out = c.nodectl(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{a:?}: {err}");
        assert!(
            err.contains(&format!("rebalance[{g}] is running")) && err.contains("busy"),
            "{err}"
        );
    }
    assert_eq!(
        c.smap().await.version,
        v0 + 1,
        "refusals must not change the map"
    );
    c.wait_rebalance_idle(T).await;
    wait_for("both in post-rebalance maintenance", T, || async {
        let st = c.status().await;
        [&t0, &t1].iter().all(|id| {
            st.targets.iter().any(|t| {
                t.id == id.0 && t.safe_to_power_off && t.flags.contains(&"maint_post_reb".into())
            })
        })
    })
    .await;
    let reb = c.client.rebalance_status().await.unwrap().unwrap();
    assert_eq!(reb.id, g, "one rebalance for the batch");
    c.assert_properly_located(&expected).await;

    // The inverse while it runs: stop-maintenance starts g', then start-maintenance is busy.
    let r = membership(&c, &["stop-maintenance", &t0.0, &t1.0]);
    let g2 = r["rebalance_id"].as_str().unwrap().to_string();
    let out = c.nodectl(&[
        "cluster",
        "add-remove-nodes",
        "start-maintenance",
        &t0.0,
        "--yes",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("rebalance[{g2}]")));
    c.wait_rebalance_idle(T).await;
    // Accepted once it finished.
    let r = membership(&c, &["start-maintenance", &t2.0]);
    assert!(r["rebalance_id"].is_string());
    c.wait_rebalance_idle(T).await;
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_maintenance_interrupts_a_running_maintenance() {
    let (c, expected) = cluster(2_000_000).await;
    let t0 = c.id("target0").await;
    let r = membership(&c, &["start-maintenance", &t0.0]);
    let g = r["rebalance_id"].as_str().unwrap().to_string();
    assert!(
        c.client
            .rebalance_status()
            .await
            .unwrap()
            .unwrap()
            .is_running()
    );
    let r = membership(&c, &["stop-maintenance", &t0.0]);
    let g2 = r["rebalance_id"]
        .as_str()
        .expect("interrupting starts a new generation")
        .to_string();
    assert_ne!(g, g2);
    c.wait_rebalance_idle(T).await;
    let row = c.node_status("target0").await.unwrap();
    assert_eq!(row.status, NodeState::Online, "{row:?}");
    assert_eq!(active_targets(&c.status().await), 4);
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_sender_mid_rebalance_converges() {
    let (mut c, expected) = cluster(2_000_000).await;
    let t0 = c.id("target0").await;
    membership(&c, &["start-maintenance", &t0.0]);
    wait_for("t0 to have sent something", T, || async {
        c.client
            .rebalance_status()
            .await
            .ok()
            .flatten()
            .is_some_and(|r| {
                r.is_running() && r.targets.iter().any(|t| t.id == t0.0 && t.tx_objs > 0)
            })
    })
    .await;
    c.lc.kill9("target0").unwrap();
    wait_for("blocked_by to name the dead sender", T, || async {
        c.client
            .rebalance_status()
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.blocked_by.iter().any(|b| b.contains(&t0.0)))
    })
    .await;
    c.lc.start("target0").unwrap();
    wait_for(
        "maintenance of t0 to complete after the restart",
        Duration::from_secs(120),
        || async {
            c.node_status("target0")
                .await
                .is_some_and(|n| n.safe_to_power_off && n.reachable)
        },
    )
    .await;
    c.wait_rebalance_idle(T).await;
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_and_deletes_during_rebalance() {
    let (c, mut expected) = cluster(3_000_000).await;
    let t0 = c.id("target0").await;
    membership(&c, &["start-maintenance", &t0.0]);
    assert!(
        c.client
            .rebalance_status()
            .await
            .unwrap()
            .unwrap()
            .is_running()
    );
    // Overwrite a third, delete a tenth, while objects are moving.
    let mut names: Vec<String> = expected.keys().cloned().collect();
    names.sort();
    for (i, n) in names.iter().enumerate() {
        if i % 3 == 0 {
            let data = format!("version two of {n}").into_bytes();
            let sum = c.client.put_bytes(BUCKET, n, &data).await.unwrap();
            expected.insert(n.clone(), sum);
        } else if i % 10 == 1 {
            c.client.delete(BUCKET, n).await.unwrap();
            expected.remove(n);
        }
    }
    c.wait_rebalance_idle(T).await;
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
    let listed = c.client.list_objects(BUCKET, "").await.unwrap();
    assert_eq!(
        listed.len(),
        expected.len(),
        "deleted objects came back or new ones vanished"
    );

    // Back to 4 targets: every target holds a fair share.
    membership(&c, &["stop-maintenance", &t0.0]);
    c.wait_rebalance_idle(T).await;
    c.assert_properly_located(&expected).await;
    let files = c.object_files();
    for t in c.target_names() {
        let n = files.values().filter(|v| v[0].0 == t).count() as f64;
        assert!(
            n >= 0.3 * expected.len() as f64 / 4.0,
            "{t} holds only {n} of {}",
            expected.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rebalance_maintenance_then_stop() {
    let (c, expected) = cluster(0).await;
    let t0 = c.id("target0").await;
    let out = c.nodectl(&[
        "cluster",
        "add-remove-nodes",
        "start-maintenance",
        &t0.0,
        "--no-rebalance",
        "--yes",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("may lead to a loss of data"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Started rebalance"));
    assert!(
        c.client
            .rebalance_status()
            .await
            .unwrap()
            .is_none_or(|r| !r.is_running())
    );
    // Its objects stayed on it, yet every object is readable (get-from-neighbor).
    assert!(c.object_files().values().any(|v| v[0].0 == "target0"));
    assert_all_readable(&c.client, &expected).await;
    membership(&c, &["stop-maintenance", &t0.0]);
    c.wait_rebalance_idle(T).await;
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}

/// Data requests (get, put, head, delete, locate) a node has served, from its `/metrics`.
async fn data_requests_served(c: &TestCluster, node: &str) -> u64 {
    let text = c
        .client
        .rpc_at(&c.lc.procs[node].addr, shoal_actors::proto::msg::GetMetrics)
        .await
        .expect("metrics");
    let ops = [
        "get-object",
        "put-object",
        "head-object",
        "delete-object",
        "locate",
    ];
    text.lines()
        .filter(|l| l.contains("requests_total{"))
        .filter(|l| ops.iter().any(|o| l.contains(&format!("op=\"{o}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Issue #15 item 1: a client routes data requests by its own copy of the map (one round trip,
/// the proxy is not asked), and that copy going stale during a rebalance costs hops, never a
/// wrong answer: reads return the last write, writes land at their proper location.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_an_old_map_reads_and_writes_correctly_during_a_rebalance() {
    let (c, mut expected) = cluster(2_000_000).await;
    let stale = c.lc.client();
    // The first request fetches the map; from then on the proxy sees no data request.
    let first = expected.keys().next().unwrap().clone();
    stale.get_bytes(BUCKET, &first).await.unwrap();
    let before = data_requests_served(&c, "proxy0").await;
    let sample: Vec<String> = expected.keys().take(50).cloned().collect();
    for n in &sample {
        let data = stale.get_bytes(BUCKET, n).await.unwrap();
        assert_eq!(checksum(&data), expected[n], "{n}");
        stale.head(BUCKET, n).await.unwrap();
    }
    let fresh = make_objects(10, 100, 4096, 77);
    for (n, d) in &fresh {
        stale
            .put_bytes(BUCKET, &format!("direct/{n}"), d)
            .await
            .unwrap();
    }
    assert_eq!(
        data_requests_served(&c, "proxy0").await,
        before,
        "with a map at hand, data requests must go straight to the owner target"
    );
    for (n, d) in &fresh {
        expected.insert(format!("direct/{n}"), checksum(d));
    }

    // The map changes under it: a target goes into maintenance, its objects move (throttled).
    let t0 = c.id("target0").await;
    membership(&c, &["start-maintenance", &t0.0]);
    assert!(
        c.client
            .rebalance_status()
            .await
            .unwrap()
            .is_some_and(|r| r.is_running()),
        "throttled rebalance finished too soon to test"
    );
    // Everything reads back right through the old map while objects move...
    assert_all_readable(&stale, &expected).await;
    // ...and overwrites and new objects land where the new map wants them.
    let later = make_objects(40, 100, 64 << 10, 78);
    for (i, (n, d)) in later.iter().enumerate() {
        let name = if i % 2 == 0 {
            sample[i].clone()
        } else {
            format!("during/{n}")
        };
        stale.put_bytes(BUCKET, &name, d).await.unwrap();
        expected.insert(name, checksum(d));
    }
    assert_all_readable(&stale, &expected).await;
    c.wait_rebalance_idle(T).await;
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}
