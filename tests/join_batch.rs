//! Self-joins are admitted in batches (scale-benchmarks finding 3): joins that arrive while the
//! previous joins' push is still under way wait for it, then enter the map together as one
//! version with one push. Every joiner is still answered, and every node ends with the same map.
//! In-process nodes (one primary and a few targets) around a member that never answers a push,
//! so that the first join's push is held up for its whole time limit while the others arrive.

use std::time::{Duration, Instant};

use shoal_actors::node::{self, NodeArgs, NodeHandle};
use shoal_actors::proto::msg::JoinRequest;
use shoal_actors::proto::pool::Pool;
use shoal_actors::types::config::ClusterConfig;
use shoal_actors::types::smap::{Node, NodeId, Role};

fn args(dir: &std::path::Path, role: Role, primary: bool, join: Option<String>) -> NodeArgs {
    NodeArgs {
        role,
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        mountpaths: vec![],
        primary,
        join,
        standby: false,
        non_electable: false,
        cluster: ClusterConfig::default(),
        secret: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_behind_a_slow_push_are_admitted_together_and_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    let primary = node::start(args(&dir.path().join("p"), Role::Proxy, true, None))
        .await
        .unwrap();

    // A member that takes connections and never answers: every push to it waits out the
    // push's time limit.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute_addr = mute.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = mute.accept().await {
            conns.push(s);
        }
    });
    let pool = Pool::new(NodeId("mutet1".into()), Box::new(|| None));
    let mute_node = Node::new(NodeId("mutet1".into()), Role::Target, mute_addr);
    let join = JoinRequest {
        node: mute_node.clone(),
        uuid: None,
        reb_interrupted: false,
    };
    let paddr = primary.addr.clone();
    let mute_join = tokio::spawn(async move {
        let r = pool.rpc(&paddr, join, Duration::from_secs(60)).await;
        r.map(|_| ())
    });
    // Its join is committed (and its push to everyone, itself included, under way).
    let until = Instant::now() + Duration::from_secs(30);
    let v_mute = loop {
        let m = primary.meta.get();
        if let Some(s) = m.smap.as_ref().filter(|s| s.contains(&mute_node.id)) {
            break s.version;
        }
        if mute_join.is_finished() || Instant::now() > until {
            panic!("the mute member was not admitted: {:?}", mute_join.await);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    // Now several targets at once: they arrive while that push waits on the mute member.
    let n = 6;
    let starts = (0..n).map(|i| {
        let a = args(
            &dir.path().join(format!("t{i}")),
            Role::Target,
            false,
            Some(primary.addr.clone()),
        );
        node::start(a)
    });
    let targets: Vec<NodeHandle> = futures::future::join_all(starts)
        .await
        .into_iter()
        .map(|r| r.expect("every joiner is answered"))
        .collect();
    assert!(mute_join.await.unwrap().is_ok(), "the mute member's join");

    // Everyone is in the primary's map, and every joiner knows all the others.
    let smap = primary.meta.get().smap.clone().unwrap();
    for t in &targets {
        assert!(smap.contains(&t.id), "{} is in the map", t.id);
    }
    let all_in = smap.version;
    for t in &targets {
        let m = t.meta.get();
        let s = m.smap.as_ref().unwrap();
        assert!(
            targets.iter().all(|o| s.contains(&o.id)),
            "{} knows every joiner",
            t.id
        );
    }
    // One version per join would be `n` versions after the mute member's; the joins that
    // waited behind its push shared versions.
    assert!(
        all_in - v_mute < n as u64,
        "{n} joins took {} map versions",
        all_in - v_mute
    );

    for t in targets {
        t.stop().await;
    }
    primary.stop().await;
    held.abort();
}
