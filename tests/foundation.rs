//! Foundation, end to end on real processes: 1 proxy + 3 targets (2 mountpaths each); objects
//! round-trip through the cluster onto their HRW owner and mountpath; a `kill -9`ed target goes
//! offline while the rest keep serving and comes back with its objects; a node with another
//! cluster's data dir is refused; nodectl's JSON and exit codes.

mod common;

use std::time::Duration;

use common::*;
use shoal_actors::logic::placement;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_round_trip_to_their_owner_and_survive_kill9() {
    let c = TestCluster::start(1, 3, 2, FAST_CONFIG).await;
    // 1,000 objects, 1 B to 1 MiB (log-uniform, so the suite stays quick on 2 cores).
    let objs = make_objects(1000, 1, 1 << 20, 7);
    let expected = put_all(&c.client, &objs).await;
    assert_eq!(expected.len(), 1000);
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;

    // Listing sees everything once; prefix filters.
    let all = c.client.list_objects(BUCKET, "").await.unwrap();
    assert_eq!(all.len(), 1000);
    let dir3 = c.client.list_objects(BUCKET, "dir3/").await.unwrap();
    assert_eq!(
        dir3.len(),
        objs.iter().filter(|(n, _)| n.starts_with("dir3/")).count()
    );

    // kill -9 one target: it turns offline within a few keepalive intervals.
    let victim = "target1";
    let victim_id = c.id(victim).await;
    let mut c = c;
    c.lc.kill9(victim).unwrap();
    wait_for(
        "killed target to show offline",
        Duration::from_secs(10),
        || async {
            c.node_status(victim)
                .await
                .is_some_and(|n| n.status == NodeState::Offline && !n.reachable)
        },
    )
    .await;
    // The others keep serving; the victim's objects fail with a clear offline error.
    let smap = c.smap().await;
    let (mut ok, mut offline) = (0, 0);
    for (name, sum) in &expected {
        let owner = placement::owner(&smap, BUCKET, name).unwrap();
        match c.client.get_bytes(BUCKET, name).await {
            Ok(d) => {
                assert_ne!(owner.id, victim_id, "{name} was served by a dead node?");
                assert_eq!(&checksum(&d), sum);
                ok += 1;
            }
            Err(e) => {
                assert_eq!(owner.id, victim_id, "{name}: {e}");
                assert!(matches!(e, shoal_actors::Error::Offline(_)), "{name}: {e}");
                offline += 1;
            }
        }
    }
    assert!(ok > 500 && offline > 150, "ok={ok} offline={offline}");

    // Restart with the same data: same ID, back online, everything readable.
    c.lc.start(victim).unwrap();
    wait_for(
        "restarted target to be online",
        Duration::from_secs(15),
        || async {
            c.node_status(victim)
                .await
                .is_some_and(|n| n.status == NodeState::Online && n.reachable)
        },
    )
    .await;
    assert_eq!(c.id(victim).await, victim_id);
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;

    // Deletes are real and a second delete says not found.
    let (first, _) = &objs[0];
    c.client.delete(BUCKET, first).await.unwrap();
    assert!(matches!(
        c.client.get_bytes(BUCKET, first).await,
        Err(shoal_actors::Error::NotFound(_))
    ));
    assert!(matches!(
        c.client.delete(BUCKET, first).await,
        Err(shoal_actors::Error::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_from_another_cluster_is_refused() {
    let a = TestCluster::start(1, 1, 1, FAST_CONFIG).await;
    let b = TestCluster::start(1, 1, 1, FAST_CONFIG).await;
    let smap_a = a.smap().await;
    let smap_b = b.smap().await;
    assert_ne!(smap_a.uuid, smap_b.uuid);
    // Cluster A goes away entirely; its target's data dir is then pointed at cluster B.
    let mut a = a;
    a.lc.stop_all();
    let p = &a.lc.procs["target0"];
    let log = a.dir().join("foreign.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_noded"))
        .args(["--role", "target", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&p.data_dir)
        .arg("--mountpath")
        .arg(&p.mountpaths[0])
        .args(["--join", &b.lc.endpoint])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut status = None;
    wait_for("the foreign node to exit", Duration::from_secs(60), || {
        status = child.try_wait().unwrap();
        let done = status.is_some();
        async move { done }
    })
    .await;
    assert!(!status.unwrap().success(), "a foreign node must not start");
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(err.contains("refusing to merge clusters"), "stderr: {err}");
    let after = b.smap().await;
    assert_eq!(
        after.version, smap_b.version,
        "cluster B's map must not change"
    );
    assert_eq!(after.targets.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodectl_json_locate_and_exit_codes() {
    let c = TestCluster::start(1, 2, 2, FAST_CONFIG).await;
    let src = c.dir().join("hello.txt");
    std::fs::write(&src, b"hello shoal").unwrap();
    c.nodectl_json(&[
        "object",
        "put",
        src.to_str().unwrap(),
        "ais://data/greetings/hello.txt",
    ]);

    // show cluster --json has the documented keys.
    let doc = c.nodectl_json(&["show", "cluster"]);
    for k in ["smap_version", "primary", "proxies", "targets"] {
        assert!(doc.get(k).is_some(), "missing {k}: {doc}");
    }
    let t0 = &doc["targets"][0];
    for k in [
        "id",
        "role",
        "mem_used_pct",
        "mem_avail",
        "cap_used_pct",
        "cap_avail",
        "cpu_used_pct",
        "rebalance",
        "uptime_secs",
        "status",
        "flags",
        "addr",
    ] {
        assert!(t0.get(k).is_some(), "target row missing {k}: {t0}");
    }
    assert_eq!(t0["status"], "online");
    assert!(t0["mem_avail"].as_u64().unwrap() > 0 && t0["cap_avail"].as_u64().unwrap() > 0);

    // locate agrees with HRW computed here from the map.
    let loc = c.nodectl_json(&["object", "locate", "data/greetings/hello.txt"]);
    let smap = c.smap().await;
    let owner = placement::owner(&smap, "data", "greetings/hello.txt").unwrap();
    assert_eq!(loc["target"], owner.id.0);
    let tname =
        c.lc.procs
            .iter()
            .find(|(_, p)| p.addr == owner.addr)
            .unwrap()
            .0
            .clone();
    let keys = mountpath_keys(&c.lc.procs[&tname].mountpaths);
    let idx = placement::mountpath_index(
        &keys,
        placement::digest(&placement::uname("data", "greetings/hello.txt")),
    )
    .unwrap();
    assert_eq!(loc["mountpath"], keys[idx].path);

    // get to stdout returns the bytes.
    let out = c.nodectl(&["object", "get", "data/greetings/hello.txt", "-"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello shoal");

    // Exit codes: usage 2, error 1 (not found / unknown node).
    assert_eq!(
        c.nodectl(&["show", "cluster", "bogus"]).status.code(),
        Some(2)
    );
    assert_eq!(
        c.nodectl(&["cluster", "add-remove-nodes", "shutdown"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        c.nodectl(&["object", "get", "data/nope", "-"])
            .status
            .code(),
        Some(1)
    );
    let unknown = c.nodectl(&[
        "cluster",
        "add-remove-nodes",
        "start-maintenance",
        "t[nope1234]",
        "--yes",
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not in the cluster map"));
    // No server at all: an error, not a hang.
    let dead = std::process::Command::new(env!("CARGO_BIN_EXE_nodectl"))
        .args(["--endpoint", "127.0.0.1:1", "show", "cluster"])
        .output()
        .unwrap();
    assert_eq!(dead.status.code(), Some(1));
    // Bad bucket names are refused before anything changes.
    assert_eq!(
        c.nodectl(&["bucket", "create", "no spaces"]).status.code(),
        Some(1)
    );
    let buckets = c.nodectl_json(&["bucket", "ls"]);
    assert_eq!(buckets, serde_json::json!(["data"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_keep_their_attributes_and_serve_byte_ranges() {
    use shoal_actors::proto::msg::ByteRange;
    use shoal_actors::types::object::ObjAttrs;
    let c = TestCluster::start(1, 2, 1, FAST_CONFIG).await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let attrs = ObjAttrs {
        md5: Some("0123456789abcdef0123456789abcdef".into()),
        etag: None,
        content_type: Some("application/x-test".into()),
        user_meta: [("colour".to_string(), "teal".to_string())].into(),
    };
    let mut r = &data[..];
    c.client
        .put_with(BUCKET, "ranged", &mut r, data.len() as u64, attrs.clone())
        .await
        .unwrap();
    assert_eq!(c.client.head(BUCKET, "ranged").await.unwrap().attrs, attrs);
    let listed = c.client.list_objects(BUCKET, "rang").await.unwrap();
    assert_eq!(listed[0].etag.as_deref(), attrs.md5.as_deref());
    assert!(listed[0].mtime > 0);
    // A range across chunk boundaries, one at the end, and one past it.
    for (offset, len) in [(1_048_000u64, 2_000u64), (2_999_990, 100), (0, 1)] {
        let (meta, mut body) = c
            .client
            .open(BUCKET, "ranged", Some(ByteRange { offset, len }))
            .await
            .unwrap();
        assert_eq!(meta.size, data.len() as u64);
        let mut got = Vec::new();
        while let Some(chunk) = body.next().await.unwrap() {
            got.extend(chunk);
        }
        let end = (offset + len).min(data.len() as u64) as usize;
        assert_eq!(got, data[offset as usize..end], "range {offset}+{len}");
    }
    let past = c
        .client
        .open(
            BUCKET,
            "ranged",
            Some(ByteRange {
                offset: 3_000_000,
                len: 1,
            }),
        )
        .await;
    assert!(
        matches!(&past, Err(shoal_actors::Error::BadRequest(m)) if m.contains("not satisfiable")),
        "{:?}",
        past.err()
    );
    // The whole body streamed is checked against its checksum.
    let (_, mut body) = c.client.open(BUCKET, "ranged", None).await.unwrap();
    let mut n = 0;
    while let Some(chunk) = body.next().await.unwrap() {
        n += chunk.len();
    }
    assert_eq!(n, data.len());
}
