//! Supervision that works (issue #9, DESIGN §2): a child that panics in a live node is restarted
//! and the node repairs itself while a rebalance runs and clients read; a primary actor that
//! keeps failing stops its node so the cluster elects another primary; a target that gives up
//! its part of a rebalance does not leave the generation running forever; and the primary keeps
//! answering keepalives while it waits on a stopped node.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleRequest};
use shoal_actors::types::smap::NodeId;

const T: Duration = Duration::from_secs(60);

/// Restarts of `child` on node `name`, as `show cluster --json` reports them.
async fn restarts(c: &TestCluster, name: &str, child: &str) -> u64 {
    c.node_status(name)
        .await
        .and_then(|n| n.restarts_by_child.get(child).copied())
        .unwrap_or(0)
}

/// Puts `id` into maintenance; the ID of the rebalance that drains it.
async fn start_maintenance(c: &TestCluster, id: &NodeId) -> String {
    let req = LifecycleRequest::new(LifecycleOp::StartMaintenance, vec![id.clone()]);
    let reply = c.client.lifecycle(req).await.unwrap();
    reply.rebalance_id.expect("a rebalance")
}

/// Reads random expected objects until told to stop; counts failures.
fn spawn_reader(
    c: &TestCluster,
    expected: &HashMap<String, String>,
) -> (
    Arc<AtomicBool>,
    Arc<AtomicU64>,
    tokio::task::JoinHandle<u64>,
) {
    let (stop, errors) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let client = c.client.clone();
    let names: Vec<(String, String)> = expected.clone().into_iter().collect();
    let (s, e) = (stop.clone(), errors.clone());
    let h = tokio::spawn(async move {
        let mut reads = 0u64;
        let mut i = 0usize;
        while !s.load(Ordering::Relaxed) {
            let (n, sum) = &names[i % names.len()];
            i += 7;
            match client.get_bytes(BUCKET, n).await {
                Ok(d) if &checksum(&d) == sum => {}
                Ok(_) => {
                    eprintln!("read {n}: wrong content");
                    e.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    eprintln!("read {n}: {err}");
                    e.fetch_add(1, Ordering::Relaxed);
                }
            }
            reads += 1;
        }
        reads
    });
    (stop, errors, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_that_panic_are_restarted_and_the_node_repairs_itself() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    // A slow rebalance (about 8 s), so that faults land while it runs.
    let cfg = format!("{FAST_CONFIG}\n[cluster.rebalance]\nthrottle_bytes_per_sec = 150000\n");
    let c = TestCluster::start_with(1, 3, 2, &cfg, None, fault_env(root.clone())).await;
    let expected = put_all(&c.client, &make_objects(600, 1, 48 << 10, 21)).await;
    let before = c.smap().await;
    let (stop, errors, reader) = spawn_reader(&c, &expected);

    let t0 = c.id("target0").await;
    start_maintenance(&c, &t0).await;
    // One at a time, while target0 sends its objects away: its jogger fails, then its
    // rebalance actor, then the primary actor that tracks the generation.
    for (node, child) in [
        ("target0", "jogger"),
        ("target0", "rebalance"),
        ("proxy0", "primary"),
    ] {
        switch_on(&root, node, &format!("panic_{child}"));
        c.wait_for(&format!("{node}/{child} to be restarted"), T, || async {
            restarts(&c, node, child).await >= 1
        })
        .await;
    }
    let r = c.client.rebalance_status().await.unwrap();
    assert!(
        r.as_ref().is_some_and(|r| r.is_running()),
        "the rebalance is not running on after the faults: {r:?}"
    );
    // Elsewhere: a keepalive, a stats sampler and a mountpath actor.
    for (node, child) in [
        ("target1", "keepalive"),
        ("target1", "stats"),
        ("target2", "mp1"),
    ] {
        switch_on(&root, node, &format!("panic_{child}"));
        c.wait_for(&format!("{node}/{child} to be restarted"), T, || async {
            restarts(&c, node, child).await >= 1
        })
        .await;
    }
    // The restart is counted in the node's total too.
    let row = c.node_status("target0").await.unwrap();
    assert!(row.restarts >= 2, "{row:?}");

    // The rebalance that was running converges: target0 is drained and safe to power off.
    c.wait_rebalance_idle(T).await;
    c.wait_for("target0 to be safe to power off", T, || async {
        c.node_status("target0")
            .await
            .is_some_and(|n| n.status == NodeState::Maintenance && n.safe_to_power_off)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let reads = reader.await.unwrap();
    assert!(reads > 0);
    if errors.load(Ordering::Relaxed) > 0 {
        c.dump_logs();
        panic!(
            "{} of {reads} reads failed during repairs",
            errors.load(Ordering::Relaxed)
        );
    }

    // The map is intact: the same nodes, the same primary, only the maintenance changed.
    let after = c.smap().await;
    assert_eq!(after.primary, before.primary);
    assert_eq!(
        after.all_nodes().map(|n| &n.id).collect::<Vec<_>>(),
        before.all_nodes().map(|n| &n.id).collect::<Vec<_>>()
    );
    assert!(after.version > before.version);
    // Nothing lost or duplicated, everything at its proper place.
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
    assert!(
        !c.object_files().values().any(|v| v[0].0 == "target0"),
        "target0 still holds objects"
    );
}

/// A target whose joggers keep failing aborts its part of a generation. The generation then
/// ends as failed and is retried; it does not stay "running" forever, holding the node short of
/// safe and every lifecycle operation as busy until someone restarts the target. Once the cause
/// is gone, a retry completes the maintenance without the operator repeating it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_a_target_aborted_ends_and_is_retried() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let cfg = format!("{FAST_CONFIG}\n[cluster.rebalance]\nretry_secs = 1\n");
    let c = TestCluster::start_with(1, 3, 2, &cfg, None, fault_env(root.clone())).await;
    let expected = put_all(&c.client, &make_objects(60, 1, 4 << 10, 23)).await;
    let t0 = c.id("target0").await;
    // target0's joggers hold their sends (so that the walk outlasts a fault check) and fail at
    // every check: past the restarts allowed, target0 aborts the generation.
    switch_on(&root, "target0", "hold_reb_sends");
    switch_on(&root, "target0", "panic_always_jogger");
    let g = start_maintenance(&c, &t0).await;
    c.wait_for(&format!("{g} to end as failed"), T, || async {
        c.client.config().await.is_ok_and(|cfg| {
            cfg.history
                .iter()
                .any(|r| r.id == g && r.outcome == "finished with errors" && r.errors > 0)
        })
    })
    .await;
    let row = c.node_status("target0").await.unwrap();
    assert!(!row.safe_to_power_off, "{row:?}");
    assert_all_readable(&c.client, &expected).await;

    // The cause goes away; nobody repeats the operation.
    switch_off(&root, "target0", "panic_always_jogger");
    switch_off(&root, "target0", "hold_reb_sends");
    assert_retried_until_safe(&c, "target0", &expected, T).await;
    assert!(
        !c.object_files().values().any(|v| v[0].0 == "target0"),
        "target0 still holds objects"
    );
}

/// A jogger that panics mid-walk is restarted and walks on alone: its first walk stops with it
/// (it used to run on beside the restart until the generation ended, sending the same objects
/// again), and the restart does not count the mountpath's objects into the totals a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_jogger_walks_alone_and_counts_once() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let c = TestCluster::start_with(1, 2, 1, FAST_CONFIG, None, fault_env(root.clone())).await;
    let expected = put_all(&c.client, &make_objects(40, 4 << 10, 4 << 10, 24)).await;
    let held = c
        .object_files()
        .values()
        .filter(|v| v[0].0 == "target0")
        .count() as u64;
    assert!(held >= 10, "target0 holds {held} objects");
    let t0 = c.id("target0").await;
    // The walk counts, then waits to send its first objects; there its jogger fails.
    switch_on(&root, "target0", "hold_reb_sends");
    let g = start_maintenance(&c, &t0).await;
    let row = |r: &shoal_actors::types::status::RebalanceStatus| {
        r.targets.iter().find(|t| t.id == t0.0).cloned()
    };
    c.wait_for("target0 to have counted its objects", T, || async {
        let r = c.client.rebalance_status().await.ok().flatten();
        r.as_ref().and_then(row).is_some_and(|t| t.counted)
    })
    .await;
    switch_on(&root, "target0", "panic_jogger");
    c.wait_for("target0's jogger to be restarted", T, || async {
        restarts(&c, "target0", "jogger").await >= 1
    })
    .await;
    // The stopped walk sends nothing on its way out: whatever it held is the new walk's.
    let r = c.client.rebalance_status().await.unwrap().unwrap();
    assert_eq!(row(&r).unwrap().tx_objs, 0, "{r:?}");
    switch_off(&root, "target0", "hold_reb_sends");
    c.wait_rebalance_idle(T).await;
    let r = c.client.rebalance_status().await.unwrap().unwrap();
    assert_eq!(r.id, g);
    let t = row(&r).unwrap();
    assert_eq!(
        (t.objs_total, t.tx_objs, t.errors),
        (held, held, 0),
        "each object counted and sent once: {t:?}"
    );
    let rx: u64 = r.targets.iter().map(|t| t.rx_objs).sum();
    assert_eq!(rx, held, "each object delivered once: {r:?}");
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
    assert!(
        !c.object_files().values().any(|v| v[0].0 == "target0"),
        "target0 still holds objects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_actor_that_keeps_failing_leads_to_an_election() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let mut c = TestCluster::start_with(3, 2, 1, FAST_CONFIG, None, fault_env(root.clone())).await;
    let expected = put_all(&c.client, &make_objects(40, 1, 4 << 10, 22)).await;
    let old = c.smap().await.primary;
    assert_eq!(c.id("proxy0").await, old);
    // From now on the primary actor fails whenever it starts or ticks.
    switch_on(&root, "proxy0", "panic_always_primary");
    wait_for("proxy0 to stop after repeated failures", T, || {
        let gone = c.lc.exited("proxy0");
        async move { gone }
    })
    .await;
    let log = std::fs::read_to_string(&c.lc.procs["proxy0"].log).unwrap();
    assert!(
        log.contains("primary failed") && log.contains("stopping the node"),
        "{log}"
    );
    // The others elect a new primary and the cluster goes on.
    let other = shoal_actors::client::Client::new(c.lc.procs["proxy1"].addr.clone());
    c.wait_for("a new primary", T, || async {
        other.smap().await.is_ok_and(|s| s.primary != old)
    })
    .await;
    for (n, sum) in &expected {
        let d = other.get_bytes(BUCKET, n).await.unwrap();
        assert_eq!(&checksum(&d), sum);
    }
    other
        .put_bytes(BUCKET, "after-election", b"still here")
        .await
        .unwrap();
    assert_eq!(
        other.get_bytes(BUCKET, "after-election").await.unwrap(),
        b"still here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_are_answered_while_the_primary_waits_on_a_stopped_node() {
    let c = TestCluster::start(1, 4, 1, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(120, 1, 8 << 10, 23)).await;
    let stopped = c.id("target3").await;
    c.lc.pause("target3").unwrap();
    // A lifecycle operation whose metadata push waits on the stopped node (up to its timeout).
    let t0 = c.id("target0").await;
    start_maintenance(&c, &t0).await;
    // Long enough for every keepalive deadline (750 ms) to pass several times over.
    c.wait_for("the stopped node to be seen offline", T, || async {
        c.client.rebalance_status().await.is_ok_and(|r| {
            r.is_some_and(|r| r.blocked_by.iter().any(|b| b.contains(stopped.as_str())))
        })
    })
    .await;
    c.lc.resume("target3").unwrap();
    c.wait_rebalance_idle(T).await;
    // Only the stopped node was ever taken for offline by the primary.
    let log = std::fs::read_to_string(&c.lc.procs["proxy0"].log).unwrap();
    let offline: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("node offline (keepalive lost)"))
        .collect();
    assert!(
        !offline.is_empty(),
        "the stopped node was never seen offline"
    );
    for l in &offline {
        assert!(l.contains(stopped.as_str()), "falsely marked offline: {l}");
    }
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}
