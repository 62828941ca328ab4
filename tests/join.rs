//! A target joining while the cluster is not at its best (issue #8): a peer stopped by SIGSTOP
//! during the join, and a joiner that learns of the buckets only after its peers start sending
//! it objects. Every acknowledged object must survive, exactly once, at its proper location.

mod common;

use std::time::Duration;

use common::*;
use shoal_actors::types::smap::Role;
use shoal_nodectl::playground::free_port;

const T: Duration = Duration::from_secs(60);

/// Objects the targets have sent (and had acknowledged) in the running rebalance, as the
/// primary's view counts them.
async fn objects_sent(c: &TestCluster) -> u64 {
    match c.client.rebalance_status().await {
        Ok(Some(r)) => r.targets.iter().map(|t| t.tx_objs).sum(),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_while_a_peer_is_stopped_loses_nothing() {
    let mut c = TestCluster::start(1, 3, 1, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(600, 1, 20 << 10, 8)).await;
    assert_eq!(c.object_files().len(), 600);

    // A peer hangs: the join's metadata push to it cannot complete while the others already
    // rebalance onto the newcomer.
    c.lc.pause("target2").unwrap();
    c.lc.add("joiner", Role::Target, free_port().unwrap(), 1, &[])
        .unwrap();
    c.wait_for(
        "objects sent to the joiner while a peer is stopped",
        T,
        || objects_sent(&c).map(|n| n > 0),
    )
    .await;
    c.lc.resume("target2").unwrap();

    c.wait_rebalance_idle(T).await;
    assert_eq!(c.smap().await.targets.len(), 4);
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
    assert!(
        c.object_files().values().any(|v| v[0].0 == "joiner"),
        "nothing moved to the joiner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_that_learns_of_buckets_late_loses_nothing() {
    let mut c = TestCluster::start(1, 2, 1, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(300, 1, 20 << 10, 9)).await;
    // The joiner holds back every bucket map it is sent until it has refused three rebalanced
    // objects of a bucket it does not know: the senders must keep them and retry.
    c.lc.add_with_env(
        "joiner",
        Role::Target,
        free_port().unwrap(),
        2,
        &[],
        &[("SHOAL_FAULTS", "hold_bmd_refusals=3")],
    )
    .unwrap();
    c.lc.wait_ready(T).await.unwrap();
    c.wait_rebalance_idle(T).await;
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
    let log = std::fs::read_to_string(&c.lc.procs["joiner"].log).unwrap();
    assert!(
        log.contains("fault hold_bmd_refusals: bucket map released"),
        "the joiner never refused an object of an unknown bucket: {log}"
    );
    assert!(
        c.object_files().values().any(|v| v[0].0 == "joiner"),
        "nothing moved to the joiner"
    );
}

trait MapFut: std::future::Future + Sized {
    fn map<U>(self, f: impl FnOnce(Self::Output) -> U) -> impl std::future::Future<Output = U> {
        async move { f(self.await) }
    }
}
impl<F: std::future::Future> MapFut for F {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_pushed_while_a_target_starts_is_run() {
    let mut c = TestCluster::start(1, 1, 1, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(100, 1, 8 << 10, 10)).await;
    // The slow starter's rebalance actor begins to follow the metadata only 3 s after it
    // started: a generation pushed meanwhile must still be run (it used to be missed by a node
    // whose actors looked at the metadata before it was stored, stalling the cluster).
    c.lc.add_with_env(
        "slow",
        Role::Target,
        free_port().unwrap(),
        1,
        &[],
        &[("SHOAL_FAULTS", "delay_rebalance_follow_ms=3000")],
    )
    .unwrap();
    c.wait_for("the slow starter to join", T, || async {
        c.id_opt("slow").await.is_some()
    })
    .await;
    // Another target joins now: its generation reaches the slow starter in that window.
    c.lc.add("late", Role::Target, free_port().unwrap(), 1, &[])
        .unwrap();
    c.lc.wait_ready(T).await.unwrap();
    c.wait_rebalance_idle(T).await;
    let log = std::fs::read_to_string(&c.lc.procs["slow"].log).unwrap();
    assert!(
        log.contains("fault delay_rebalance_follow_ms"),
        "the fault did not apply: {log}"
    );
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}
