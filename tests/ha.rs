//! Highly available control plane on real processes (3 proxies, 3 targets): primary election
//! after `kill -9`, the old primary returning as non-primary, a decommission finishing under the
//! new primary, and joining through the discovery URL.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shoal_actors::client::Client;
use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleRequest};
use shoal_actors::types::smap::{NodeId, Role};
use shoal_nodectl::playground::free_port;

const T: Duration = Duration::from_secs(60);

fn client_of(c: &TestCluster, name: &str) -> Client {
    Client::new(c.lc.procs[name].addr.clone()).with_timeout(Duration::from_secs(5))
}

/// Waits until `via` reports a primary other than `old`; returns it.
async fn new_primary(c: &TestCluster, via: &str, old: &str) -> String {
    let client = client_of(c, via);
    let until = Instant::now() + T;
    loop {
        if let Ok(s) = client.smap().await
            && s.primary.0 != old
        {
            return s.primary.0;
        }
        if Instant::now() > until {
            for (n, p) in &c.lc.procs {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                eprintln!("==== {n}\n{log}");
            }
            panic!("no new primary seen by {via} after {T:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_failover_and_return() {
    let mut c = TestCluster::start(3, 3, 1, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(60, 1, 64 << 10, 21)).await;
    let old = c.id("proxy0").await;
    let killed = Instant::now();
    c.lc.kill9("proxy0").unwrap();
    let p1 = new_primary(&c, "proxy1", &old.0).await;
    let elected_after = killed.elapsed();
    // Every surviving proxy names the same new primary, and it is one of them.
    let p2 = new_primary(&c, "proxy2", &old.0).await;
    assert_eq!(p1, p2);
    let smap = client_of(&c, "proxy1").smap().await.unwrap();
    let winner = smap
        .proxies
        .values()
        .find(|n| n.id.0 == p1)
        .expect("primary in the map");
    assert!([&c.lc.procs["proxy1"].addr, &c.lc.procs["proxy2"].addr].contains(&&winner.addr));
    assert!(
        !smap.proxies.contains_key(&old),
        "the dead primary is still in the map"
    );
    // Data keeps flowing through any proxy.
    let via = client_of(&c, "proxy2");
    let t0 = Instant::now();
    wait_for("a put through the new control plane", T, || async {
        via.put_bytes(BUCKET, "after-failover", b"still here")
            .await
            .is_ok()
    })
    .await;
    let first_put_after = elected_after + t0.elapsed();
    assert_eq!(
        via.get_bytes(BUCKET, "after-failover").await.unwrap(),
        b"still here"
    );
    assert_all_readable(&via, &expected).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nodectl"))
        .args([
            "--endpoint",
            &c.lc.procs["proxy1"].addr,
            "show",
            "cluster",
            "--json",
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["primary"], p1.as_str());
    // proxy.primary_url follows the new primary.
    let p1_addr = via
        .smap()
        .await
        .unwrap()
        .proxies
        .values()
        .find(|n| n.id.0 == p1)
        .unwrap()
        .addr
        .clone();
    wait_for("primary_url to follow the new primary", T, || async {
        via.config()
            .await
            .is_ok_and(|c| c.proxy.primary_url == p1_addr)
    })
    .await;
    eprintln!(
        "failover: new primary after {elected_after:?}, first successful put after {first_put_after:?}"
    );

    // The old primary comes back as a non-primary member; no split.
    c.lc.start("proxy0").unwrap();
    wait_for("old primary to rejoin as non-primary", T, || async {
        via.smap()
            .await
            .is_ok_and(|s| s.primary.0 == p1 && s.proxies.contains_key(&old))
    })
    .await;
    let direct = client_of(&c, "proxy0");
    wait_for("old primary to follow the new one", T, || async {
        direct.smap().await.is_ok_and(|s| s.primary.0 == p1)
    })
    .await;
}

/// Nemesis F13 across a failover: the primary that removed a decommissioned node is gone, and
/// the join of that node's old self (its join crossed the notice) reaches the next primary. It
/// is refused there too: the decommissioned IDs travel in the map.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_under_a_decommissioned_id_is_refused_by_the_next_primary() {
    let mut c = TestCluster::start(3, 3, 1, FAST_CONFIG).await;
    put_all(&c.client, &make_objects(20, 1, 4 << 10, 23)).await;
    let smap = c.smap().await;
    let gone = smap.get(&c.id("target2").await).unwrap().clone();
    let req = LifecycleRequest::new(LifecycleOp::Decommission, vec![gone.id.clone()]);
    c.client.lifecycle(req).await.unwrap();
    let via = client_of(&c, "proxy1");
    wait_for("proxy1 to see target2 leave the map", T, || async {
        via.smap().await.is_ok_and(|s| !s.contains(&gone.id))
    })
    .await;
    let old = c.id("proxy0").await;
    c.lc.kill9("proxy0").unwrap();
    let p1 = new_primary(&c, "proxy1", &old.0).await;
    let primary = via
        .smap()
        .await
        .unwrap()
        .get(&NodeId(p1))
        .unwrap()
        .addr
        .clone();
    assert_ghost_join_refused(&primary, &gone, &smap.uuid).await;
    // (The map's version may move meanwhile: the new primary drops the dead one in time.)
    assert!(!via.smap().await.unwrap().contains(&gone.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_completes_under_a_new_primary() {
    let cfg = format!("{FAST_CONFIG}\n[cluster.rebalance]\nthrottle_bytes_per_sec = 2000000\n");
    let mut c = TestCluster::start(3, 3, 1, &cfg).await;
    let expected = put_all(&c.client, &make_objects(120, 1024, 512 << 10, 22)).await;
    let t2 = c.id("target2").await;
    let old = c.id("proxy0").await;
    // Through a non-primary proxy, which forwards to the primary.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nodectl"))
        .args([
            "--endpoint",
            &c.lc.procs["proxy1"].addr,
            "cluster",
            "add-remove-nodes",
            "decommission",
            &t2.0,
            "--yes",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        c.client
            .rebalance_status()
            .await
            .unwrap()
            .unwrap()
            .is_running()
    );
    c.lc.kill9("proxy0").unwrap();
    new_primary(&c, "proxy1", &old.0).await;
    let via = client_of(&c, "proxy1");
    wait_for(
        "the decommissioned target to leave the map",
        Duration::from_secs(120),
        || async { via.smap().await.is_ok_and(|s| !s.contains(&t2)) },
    )
    .await;
    wait_for("its process to exit", T, || {
        let gone = c.lc.exited("target2");
        async move { gone }
    })
    .await;
    assert_all_readable(&via, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_stale_primary_joins_through_the_discovery_url() {
    let mut c = TestCluster::start(3, 1, 1, FAST_CONFIG).await;
    let old = c.id("proxy0").await;
    c.lc.kill9("proxy0").unwrap();
    new_primary(&c, "proxy1", &old.0).await;
    // The newcomer's config still names the dead primary; discovery lists the survivors.
    let discovery = format!(
        "{},{}",
        c.lc.procs["proxy1"].addr, c.lc.procs["proxy2"].addr
    );
    let cfg = c.dir().join("newcomer.toml");
    std::fs::write(&cfg, format!("{FAST_CONFIG}\n[cluster.proxy]\nprimary_url = \"{}\"\ndiscovery_url = \"{discovery}\"\n", c.lc.endpoint)).unwrap();
    c.lc.config = Some(cfg);
    c.lc.add("newcomer", Role::Target, free_port().unwrap(), 1, &[])
        .unwrap();
    let via = client_of(&c, "proxy2");
    let addr = c.lc.procs["newcomer"].addr.clone();
    let until = Instant::now() + T;
    while !via
        .smap()
        .await
        .is_ok_and(|s| s.targets.values().any(|n| n.addr == addr))
    {
        let log = std::fs::read_to_string(&c.lc.procs["newcomer"].log).unwrap_or_default();
        assert!(
            Instant::now() < until,
            "the newcomer did not join; its log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // config cluster proxy shows the section as in the seed, kept current by the new primary.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nodectl"))
        .args([
            "--endpoint",
            &c.lc.procs["proxy2"].addr,
            "config",
            "cluster",
            "proxy",
            "--json",
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "primary_url",
        "original_url",
        "discovery_url",
        "non_electable",
    ] {
        assert!(doc["proxy"].get(k).is_some(), "missing {k}: {doc}");
    }
    // Kept current by the new primary (pushed to every node shortly after the election).
    let dead = c.lc.endpoint.clone();
    wait_for("proxy.primary_url to leave the dead primary", T, || async {
        via.config().await.is_ok_and(|cfg| {
            !cfg.proxy.primary_url.is_empty()
                && cfg.proxy.primary_url != dead
                && cfg.proxy.discovery_url.split(',').all(|a| a != dead)
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_electable_proxies_never_become_primary() {
    let mut c = TestCluster::start(1, 1, 1, FAST_CONFIG).await;
    c.lc.add(
        "ne",
        Role::Proxy,
        free_port().unwrap(),
        0,
        &["--non-electable"],
    )
    .unwrap();
    c.lc.add("el", Role::Proxy, free_port().unwrap(), 0, &[])
        .unwrap();
    c.lc.wait_ready(T).await.unwrap();
    let ne = c.id("ne").await;
    let old = c.id("proxy0").await;
    c.lc.kill9("proxy0").unwrap();
    let p = new_primary(&c, "el", &old.0).await;
    assert_ne!(p, ne.0, "a non-electable proxy became primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_primary_steps_down_when_it_wakes_up() {
    let c = TestCluster::start(3, 2, 1, FAST_CONFIG).await;
    let old = c.id("proxy0").await;
    let pid = c.lc.procs["proxy0"]
        .child
        .as_ref()
        .unwrap()
        .id()
        .to_string();
    let signal = |sig: &str| {
        let st = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(st.success());
    };
    // Frozen, not dead: its sockets accept but nothing answers. The others elect a new primary.
    signal("-STOP");
    let p1 = new_primary(&c, "proxy1", &old.0).await;
    signal("-CONT");
    // Awake again, it must not go on as a second primary: it follows the new one and rejoins.
    let direct = client_of(&c, "proxy0");
    wait_for("the old primary to step down", T, || async {
        direct.smap().await.is_ok_and(|s| s.primary.0 == p1)
    })
    .await;
    let via = client_of(&c, "proxy1");
    wait_for("the old primary to rejoin as a member", T, || async {
        via.smap()
            .await
            .is_ok_and(|s| s.primary.0 == p1 && s.proxies.contains_key(&old))
    })
    .await;
    assert!(
        via.put_bytes(BUCKET, "after-stall", b"one cluster")
            .await
            .is_ok()
    );
}

/// Nemesis long seed 2614 (`no-convergence`): a primary restarted after the others elected a
/// new one served requests before it had asked them. It took a decommission of the new primary,
/// committed a map of its own (the same version as theirs, other content), and from then on two
/// proxies were primary and the maps never agreed again. Now it changes nothing until it knows;
/// then it steps down and the command is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_primary_changes_nothing_before_it_knows_it_was_replaced() {
    let mut c = TestCluster::start(3, 1, 1, FAST_CONFIG).await;
    let old = c.id("proxy0").await;
    c.lc.kill9("proxy0").unwrap();
    let p = new_primary(&c, "proxy1", &old.0).await;
    // proxy0 comes back with its map still naming it primary, and checks late.
    c.lc.procs
        .get_mut("proxy0")
        .unwrap()
        .env
        .push(("SHOAL_FAULTS".into(), "delay_reconcile_ms=1500".into()));
    c.lc.start("proxy0").unwrap();
    let addr = c.lc.procs["proxy0"].addr.clone();
    wait_for("proxy0 to listen", T, || {
        let addr = addr.clone();
        async move { tokio::net::TcpStream::connect(&addr).await.is_ok() }
    })
    .await;
    let req = LifecycleRequest::new(LifecycleOp::Decommission, vec![NodeId(p.clone())]);
    let res = client_of(&c, "proxy0").lifecycle(req).await;
    assert!(res.is_err(), "{res:?}");
    // One primary, one map, the new primary still in it.
    let clients: Vec<Client> = ["proxy0", "proxy1", "proxy2"]
        .iter()
        .map(|n| client_of(&c, n))
        .collect();
    wait_for("every proxy to agree on the map", T, || async {
        let mut maps = Vec::new();
        for cl in &clients {
            match cl.smap().await {
                Ok(s) => maps.push(s),
                Err(_) => return false,
            }
        }
        maps.iter()
            .all(|s| s.primary.0 == p && s.version == maps[0].version)
            && maps[0].contains(&NodeId(p.clone()))
            && maps[0].contains(&old)
    })
    .await;
}
