//! Membership beyond maintenance: admin join of a standby node, remove-from-smap, cluster-wide
//! shutdown and decommission, dry-run refusals, confirmations; and privileges (auth on).

mod common;

use std::time::Duration;

use common::*;
use shoal_actors::types::smap::Role;
use shoal_nodectl::playground::free_port;

const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_join_of_a_standby_node_rebalances_onto_it() {
    let mut c = TestCluster::start(1, 2, 1, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(120, 1, 64 << 10, 3)).await;
    let port = free_port().unwrap();
    c.lc.add("standby", Role::Target, port, 2, &["--standby"])
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    // The standby node is up but not in the map until an admin joins it.
    wait_for("standby node to listen", T, || {
        let a = addr.clone();
        async move { std::net::TcpStream::connect(&a).is_ok() }
    })
    .await;
    assert_eq!(c.smap().await.targets.len(), 2);
    let out = c.nodectl(&[
        "cluster",
        "add-remove-nodes",
        "join",
        &addr,
        "--role",
        "target",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("successfully joined the cluster"), "{text}");
    assert!(text.contains("Started rebalance \"g"), "{text}");
    assert_eq!(c.smap().await.targets.len(), 3);
    c.wait_rebalance_idle(T).await;
    wait_for("joined node online", T, || async {
        c.node_status("standby")
            .await
            .is_some_and(|n| n.status == NodeState::Online)
    })
    .await;
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
    assert!(
        c.object_files().values().any(|v| v[0].0 == "standby"),
        "nothing moved to the new node"
    );
    // Joining it again is refused, and a wrong role is refused.
    let again = c.nodectl(&["cluster", "add-remove-nodes", "join", &addr]);
    assert_eq!(again.status.code(), Some(1));
    let nobody = c.nodectl(&["cluster", "add-remove-nodes", "join", "127.0.0.1:1"]);
    assert_eq!(nobody.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_from_smap_drops_a_node_without_rebalance() {
    let c = TestCluster::start(1, 3, 1, FAST_CONFIG).await;
    let t2 = c.id("target2").await;
    let v = c.smap().await.version;
    let reb_before = c.client.rebalance_status().await.unwrap().map(|r| r.id);
    c.nodectl_ok(&["advanced", "remove-from-smap", &format!("t[{t2}]"), "--yes"]);
    let smap = c.smap().await;
    assert_eq!(smap.version, v + 1);
    assert!(!smap.contains(&t2));
    assert_eq!(
        c.client.rebalance_status().await.unwrap().map(|r| r.id),
        reb_before,
        "no rebalance"
    );
    // It stays out (does not rejoin on its own) for several keepalive intervals.
    let until = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < until {
        assert!(
            !c.smap().await.contains(&t2),
            "removed node rejoined by itself"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The primary cannot be removed.
    let p = c.id("proxy0").await;
    assert_eq!(
        c.nodectl(&["advanced", "remove-from-smap", &p.0, "--yes"])
            .status
            .code(),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_shutdown_keeps_the_map_and_restarts() {
    let mut c = TestCluster::start(1, 2, 1, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(60, 1, 32 << 10, 5)).await;
    let smap = c.smap().await;
    let out = c.nodectl_ok(&["cluster", "shutdown", "--yes"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Cluster successfully shut down"));
    for n in ["proxy0", "target0", "target1"] {
        wait_for(&format!("{n} to exit"), T, || {
            let gone = c.lc.exited(n);
            async move { gone }
        })
        .await;
    }
    for n in ["proxy0", "target0", "target1"] {
        c.lc.start(n).unwrap();
    }
    c.lc.wait_ready(T).await.unwrap();
    let again = c.smap().await;
    assert_eq!(again.uuid, smap.uuid, "same cluster after restart");
    assert_eq!(again.targets.len(), 2);
    c.wait_for("targets online", T, || async {
        c.status()
            .await
            .targets
            .iter()
            .all(|t| t.status == NodeState::Online)
    })
    .await;
    assert_all_readable(&c.client, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_decommission_wipes_every_node() {
    let mut c = TestCluster::start(1, 2, 1, FAST_CONFIG).await;
    put_all(&c.client, &make_objects(20, 1, 4096, 9)).await;
    // Needs confirmation: without --yes and without a terminal it refuses (usage) and nothing changes.
    let out = c.nodectl(&["cluster", "decommission", "--rm-user-data"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(c.smap().await.targets.len(), 2);
    c.nodectl_ok(&["cluster", "decommission", "--rm-user-data", "--yes"]);
    for n in ["proxy0", "target0", "target1"] {
        wait_for(&format!("{n} to exit"), T, || {
            let gone = c.lc.exited(n);
            async move { gone }
        })
        .await;
        let dd = &c.lc.procs[n].data_dir;
        assert!(!dd.join("smap.msgpack").exists(), "{n} kept its map");
    }
    assert!(c.object_files().is_empty(), "user data left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_refuses_when_nothing_could_hold_the_data_and_confirmations() {
    let c = TestCluster::start(1, 2, 1, FAST_CONFIG).await;
    put_all(&c.client, &make_objects(10, 1, 4096, 1)).await;
    let (t0, t1) = (c.id("target0").await, c.id("target1").await);
    let v = c.smap().await.version;
    let out = c.nodectl(&[
        "cluster",
        "add-remove-nodes",
        "decommission",
        &t0.0,
        &t1.0,
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARNING") && text.contains("nowhere to go"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot hold the data"));
    // No --yes, no terminal: refused as a usage error, and nothing changed.
    let out = c.nodectl(&["cluster", "add-remove-nodes", "start-maintenance", &t0.0]);
    assert_eq!(out.status.code(), Some(2));
    // Duplicates and the primary are refused before anything is sent.
    assert_eq!(
        c.nodectl(&[
            "cluster",
            "add-remove-nodes",
            "start-maintenance",
            &t0.0,
            &format!("t[{t0}]"),
            "--yes"
        ])
        .status
        .code(),
        Some(2)
    );
    let p = c.id("proxy0").await;
    let out = c.nodectl(&["cluster", "add-remove-nodes", "shutdown", &p.0, "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is primary"));
    // --rm-user-data is only for decommission (clap) and a shutdown batch stays all-or-nothing.
    let out = c.nodectl(&[
        "cluster",
        "add-remove-nodes",
        "shutdown",
        &t0.0,
        "nosuchnode",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        c.smap().await.version,
        v,
        "refusals must not change the map"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileges_when_auth_is_on() {
    let secret = "s3cret-for-tests";
    let cfg = format!("{FAST_CONFIG}\n[cluster.auth]\nenabled = true\nsecret = \"{secret}\"\n");
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, secret).unwrap();
    let mint = |extra: &[&str]| -> String {
        let mut args = vec![
            "auth",
            "token",
            "--secret-file",
            secret_file.to_str().unwrap(),
        ];
        args.extend(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nodectl"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let admin = mint(&["--admin"]);
    let user = mint(&[]);
    let c = TestCluster::start_with_token(1, 2, 1, &cfg, Some(admin.clone())).await;
    let t0 = c.id("target0").await;
    let v = c.smap().await.version;
    let wrong = {
        let other = dir.path().join("other");
        std::fs::write(&other, "not the secret").unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nodectl"))
            .args([
                "auth",
                "token",
                "--admin",
                "--secret-file",
                other.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let expired = shoal_actors::logic::auth::jwt::sign(
        &shoal_actors::logic::auth::jwt::Claims {
            sub: "old".into(),
            exp: 1_000,
            admin: true,
            iat: None,
            cluster: None,
            jti: None,
        },
        secret.as_bytes(),
    )
    .unwrap();
    let run = |token: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_nodectl"));
        cmd.args([
            "--endpoint",
            &c.lc.endpoint,
            "cluster",
            "add-remove-nodes",
            "start-maintenance",
            &t0.0,
            "--yes",
        ]);
        match token {
            Some(t) => cmd.env("NODECTL_TOKEN", t),
            None => cmd.env_remove("NODECTL_TOKEN"),
        };
        cmd.output().unwrap()
    };
    for (token, word) in [
        (None, "unauthorized"),
        (Some(wrong.as_str()), "bad signature"),
        (Some(expired.as_str()), "expired"),
        (Some(user.as_str()), "forbidden"),
    ] {
        let out = run(token);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{word}: {err}");
        assert!(err.contains(word), "expected {word:?} in: {err}");
        assert_eq!(c.smap().await.version, v, "a refused call changed the map");
    }
    // Reads need a token too (any valid one); the secret is never shown.
    let anon = c.nodectl(&["config", "cluster", "auth", "--json"]);
    assert_eq!(
        anon.status.code(),
        Some(3),
        "a read without a token was served"
    );
    // With --json the error is a JSON document on stdout.
    let why: serde_json::Value = serde_json::from_slice(&anon.stdout).unwrap();
    assert!(
        why["error"].as_str().unwrap().contains("unauthorized"),
        "{why}"
    );
    let auth = c.nodectl_json(&["--token", &user, "config", "cluster", "auth"]);
    assert_eq!(auth["auth"]["enabled"], true);
    assert_eq!(auth["auth"]["secret"], "**********");
    // With auth on, a process posing as the primary (its real ID) without the cluster secret is
    // refused too.
    {
        use shoal_actors::proto::{Conn, Rpc};
        use shoal_actors::types::meta::MetaUpdate;
        let smap = c.smap().await;
        let target = smap.targets.values().next().unwrap().addr.clone();
        let mut forged = smap.clone();
        forged.version += 10;
        forged.targets.clear();
        for token in [None, Some(wrong.clone())] {
            let mut conn = Conn::connect(&target, smap.primary.clone(), Duration::from_secs(5))
                .await
                .unwrap();
            conn.token = token;
            let res = conn
                .request(MetaUpdate::smap(forged.clone()).into_msg())
                .await;
            assert!(
                matches!(res, Err(shoal_actors::Error::Unauthorized(_))),
                "{res:?}"
            );
        }
        assert_eq!(c.smap().await.version, v);
    }
    // The admin token works.
    let out = run(Some(&admin));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(c.smap().await.version > v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_messages_from_non_members_are_refused() {
    use shoal_actors::proto::{Conn, Rpc};
    use shoal_actors::types::lifecycle::NodeAction;
    use shoal_actors::types::meta::MetaUpdate;
    use shoal_actors::types::smap::{NodeId, Smap};
    let c = TestCluster::start(1, 1, 1, FAST_CONFIG).await;
    let smap = c.smap().await;
    let target = smap.targets.values().next().unwrap().clone();
    // A forged map from a process that is not a member, pushed straight to a target.
    let mut forged: Smap = smap.clone();
    forged.version += 10;
    forged.targets.clear();
    let mut conn = Conn::connect(
        &target.addr,
        NodeId("evil9999".into()),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let res = conn.request(MetaUpdate::smap(forged).into_msg()).await;
    assert!(
        matches!(res, Err(shoal_actors::Error::Forbidden(_))),
        "{res:?}"
    );
    let res = conn.request(NodeAction::Shutdown.into_msg()).await;
    assert!(
        matches!(res, Err(shoal_actors::Error::Forbidden(_))),
        "{res:?}"
    );
    assert_eq!(c.smap().await.version, smap.version);
    assert!(c.node_status("target0").await.is_some_and(|n| n.reachable));
    // Garbage on the wire: an error reply and a closed connection, the node keeps serving.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(&target.addr).await.unwrap();
    raw.write_all(&[0, 0, 0, 4, 0xc1, 0xc1, 0xc1, 0xc1])
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut buf))
        .await
        .expect("connection closed");
    assert!(!buf.is_empty(), "no error reply to a bad frame");
    assert!(c.node_status("target0").await.is_some_and(|n| n.reachable));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_silent_node_is_removed_and_rebalances_when_it_returns() {
    let cfg = format!("{FAST_CONFIG}remove_after_ms = 1500\n");
    let mut c = TestCluster::start(1, 3, 1, &cfg).await;
    let expected = put_all(&c.client, &make_objects(90, 1, 32 << 10, 13)).await;
    let t1 = c.id("target1").await;
    let reb_before = c.client.rebalance_status().await.unwrap().map(|r| r.id);
    c.lc.kill9("target1").unwrap();
    wait_for("silent node removed from the map", T, || async {
        !c.smap().await.contains(&t1)
    })
    .await;
    // Removal after the grace period starts no rebalance.
    assert_eq!(
        c.client.rebalance_status().await.unwrap().map(|r| r.id),
        reb_before
    );
    c.lc.start("target1").unwrap();
    wait_for("returning node to self-join", T, || async {
        c.smap().await.contains(&t1)
    })
    .await;
    let reb_after = c.client.rebalance_status().await.unwrap().map(|r| r.id);
    assert_ne!(reb_after, reb_before, "its return must start a rebalance");
    c.wait_rebalance_idle(T).await;
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}

/// A node asked to forward a join before it knows the primary (it is starting, or a standby)
/// says so as a retryable refusal: the joiner keeps trying and joins once the forwarder has
/// joined, rather than exiting on the first answer (which left a fresh target down when its
/// proxy was a moment slower to bootstrap than the target was to ask).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_forwarded_by_a_node_that_has_not_joined_yet_is_retried() {
    let mut c = TestCluster::start(1, 1, 1, FAST_CONFIG).await;
    let pport = free_port().unwrap();
    c.lc.add("late-proxy", Role::Proxy, pport, 0, &["--standby"])
        .unwrap();
    let paddr = format!("127.0.0.1:{pport}");
    wait_for("standby proxy to listen", T, || {
        let a = paddr.clone();
        async move { std::net::TcpStream::connect(&a).is_ok() }
    })
    .await;
    // The new target's only way in is the proxy that has not joined.
    let tport = free_port().unwrap();
    c.lc.add("late-target", Role::Target, tport, 1, &["--join", &paddr])
        .unwrap();
    let taddr = format!("127.0.0.1:{tport}");
    wait_for("target to listen", T, || {
        let a = taddr.clone();
        async move { std::net::TcpStream::connect(&a).is_ok() }
    })
    .await;
    assert_eq!(c.smap().await.targets.len(), 1);
    c.nodectl_ok(&[
        "cluster",
        "add-remove-nodes",
        "join",
        &paddr,
        "--role",
        "proxy",
    ]);
    wait_for("the target to join through the late proxy", T, || async {
        c.smap().await.targets.len() == 2
    })
    .await;
    assert!(
        c.lc.procs
            .get_mut("late-target")
            .and_then(|p| p.child.as_mut())
            .is_some_and(|ch| ch.try_wait().ok().flatten().is_none()),
        "the target exited"
    );
}

/// Nemesis long seed 3141 (`no-convergence`): a target restarted just before it was
/// decommissioned was still retrying its start-up join when the notice came. The join got
/// through after the primary had removed it: the map held a ghost under the old ID, at the
/// address the node, restarted with a fresh ID, could then never join with. The node now
/// abandons its join when it stops, and the primary refuses a join under a decommissioned ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_under_a_decommissioned_id_is_refused() {
    use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleRequest};
    let c = TestCluster::start(1, 3, 1, FAST_CONFIG).await;
    put_all(&c.client, &make_objects(30, 1, 4 << 10, 51)).await;
    let smap = c.smap().await;
    let gone = smap.get(&c.id("target2").await).unwrap().clone();
    let req = LifecycleRequest::new(LifecycleOp::Decommission, vec![gone.id.clone()]);
    c.client.lifecycle(req).await.unwrap();
    c.wait_for("target2 to leave the map", T, || async {
        !c.smap().await.contains(&gone.id)
    })
    .await;
    let before = c.smap().await.version;
    // Its old self asks back in, from a process that has not exited yet.
    assert_ghost_join_refused(&c.lc.endpoint, &gone, &smap.uuid).await;
    let after = c.smap().await;
    assert!(!after.contains(&gone.id));
    assert_eq!(after.version, before);
}
