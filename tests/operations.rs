//! Operating a rebalance (issue #14, DESIGN §15): pause and resume, a live throttle, stall
//! detection; on real processes, through `nodectl`.

mod common;

use std::time::Duration;

use common::*;
use shoal_actors::types::status::{RebState, RebalanceStatus};

const T: Duration = Duration::from_secs(60);

async fn running(c: &TestCluster) -> Option<RebalanceStatus> {
    c.client
        .rebalance_status()
        .await
        .ok()
        .flatten()
        .filter(|r| r.is_running())
}

/// `nodectl cluster add-remove-nodes OP NODE --yes`, which must succeed.
fn lifecycle(c: &TestCluster, op: &str, node: &str) -> String {
    ok(&c.nodectl(&["cluster", "add-remove-nodes", op, node, "--yes"]))
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "nodectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_a_rebalance_still_across_a_restart_and_resume_completes_it() {
    let mut c = TestCluster::start(1, 3, 1, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(300, 1, 16 << 10, 141)).await;

    // Without a token nothing changes when auth is on; here (auth off) the answer is the state.
    let out = ok(&c.nodectl(&["rebalance", "pause", "--yes"]));
    assert!(out.contains("Rebalance paused"), "{out}");
    assert!(c.client.config().await.unwrap().rebalance.paused);

    let t2 = c.id("target2").await;
    lifecycle(&c, "start-maintenance", &format!("t[{t2}]"));
    // Every target holds its walk.
    c.wait_for("every target to hold at the pause", T, || async {
        running(&c)
            .await
            .is_some_and(|r| r.paused && r.targets.iter().all(|t| t.paused))
    })
    .await;
    let held = running(&c).await.unwrap();
    assert!(!held.stalled, "a paused rebalance is not stalled");
    let text = ok(&c.nodectl(&["show", "rebalance"]));
    assert!(text.contains("paused: held by"), "{text}");
    assert!(text.contains("Paused ("), "{text}");

    // The counters stay still while paused (watched over a while: nothing to wait for here).
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = running(&c).await.expect("still running while paused");
        assert_eq!(
            (now.objs_moved, now.bytes_moved),
            (held.objs_moved, held.bytes_moved),
            "progress while paused"
        );
    }

    // A target restarted meanwhile is still held: the pause is in the cluster config it keeps.
    // It was mid-walk, so its rejoin starts a new generation. Wait for that one: the old
    // generation's status still shows the old process's last report ("paused"), and a test
    // that took it for the new process's resumed before the rejoin, whose generation then found
    // everything already moved (1 run in about 30 under load).
    c.lc.stop("target0", Duration::from_secs(10)).unwrap();
    c.lc.start("target0").unwrap();
    let t0 = c.id("target0").await;
    c.wait_for(
        "the restarted target's rejoin to start a generation held everywhere",
        T,
        || async {
            running(&c).await.is_some_and(|r| {
                r.id != held.id
                    && r.targets.iter().any(|t| t.id == t0.0)
                    && r.targets.iter().all(|t| t.paused)
            })
        },
    )
    .await;
    let again = running(&c).await.expect("still running while paused");
    assert_eq!(
        (again.objs_moved, again.bytes_moved),
        (0, 0),
        "progress while paused: {again:?}"
    );

    let out = ok(&c.nodectl(&["rebalance", "resume", "--yes"]));
    assert!(out.contains("not paused"), "{out}");
    c.wait_rebalance_idle(T).await;
    let fin = c.client.rebalance_status().await.unwrap().unwrap();
    assert_eq!(fin.state, RebState::Finished);
    assert!(!fin.paused);
    assert_eq!(fin.id, again.id, "{fin:?}");
    assert!(
        fin.objs_moved > 0,
        "nothing moved after resume: held {again:?}, finished {fin:?}"
    );
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}

/// A finished rebalance's totals are what moved: objects counted on the leaving target and
/// deleted by clients before they were sent leave them (an operator reading "90 of 120 moved"
/// at the end would go looking for 30 lost objects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_deleted_before_they_are_sent_leave_the_totals() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let c = TestCluster::start_with(1, 3, 1, FAST_CONFIG, None, fault_env(root.clone())).await;
    let mut expected = put_all(&c.client, &make_objects(120, 1, 8 << 10, 143)).await;
    let on_t1: Vec<(String, u64)> = c
        .object_files()
        .into_iter()
        .filter(|(_, v)| v[0].0 == "target1")
        .map(|(_, v)| (v[0].2.object.clone(), v[0].2.size))
        .collect();
    assert!(on_t1.len() >= 20, "{}", on_t1.len());

    // target1 counts what it holds, then holds its sends while a quarter of it is deleted.
    switch_on(&root, "target1", "hold_reb_sends");
    let t1 = c.id("target1").await;
    lifecycle(&c, "start-maintenance", &format!("t[{t1}]"));
    c.wait_for("target1's count", T, || async {
        running(&c)
            .await
            .is_some_and(|r| r.objs_total == on_t1.len() as u64)
    })
    .await;
    // Counted without reading a trailer, the bytes too are exact (no attributes here).
    let counted = running(&c).await.expect("held");
    let all: u64 = on_t1.iter().map(|(_, s)| s).sum();
    assert_eq!(counted.bytes_total, all, "{counted:?}");
    let (deleted, kept): (Vec<_>, Vec<_>) = on_t1.iter().enumerate().partition(|(i, _)| i % 4 == 0);
    for (_, (name, _)) in &deleted {
        c.client.delete(BUCKET, name).await.unwrap();
        expected.remove(name);
    }
    switch_off(&root, "target1", "hold_reb_sends");
    c.wait_rebalance_idle(T).await;

    let fin = c.client.rebalance_status().await.unwrap().unwrap();
    assert_eq!(fin.state, RebState::Finished, "{fin:?}");
    let (objs, bytes) = (kept.len() as u64, kept.iter().map(|(_, (_, s))| s).sum());
    assert_eq!((fin.objs_moved, fin.objs_total), (objs, objs), "{fin:?}");
    assert_eq!(
        (fin.bytes_moved, fin.bytes_total),
        (bytes, bytes),
        "{fin:?}"
    );
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_changed_mid_rebalance_changes_its_rate() {
    let c = TestCluster::start(1, 3, 1, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(240, 64 << 10, 64 << 10, 142)).await;
    let limit: u64 = 64 << 10;
    ok(&c.nodectl(&["rebalance", "throttle", "64KiB", "--yes"]));
    assert_eq!(
        c.client
            .config()
            .await
            .unwrap()
            .rebalance
            .throttle_bytes_per_sec,
        limit
    );
    let t1 = c.id("target1").await;
    lifecycle(&c, "start-maintenance", &format!("t[{t1}]"));
    c.wait_for("the leaving target to send", T, || async {
        running(&c).await.is_some_and(|r| r.bytes_moved > 0)
    })
    .await;
    // Measured over a window: at most the limit (plus the one object each send may start
    // with), where unthrottled the ~5 MiB would be gone in a moment.
    let a = running(&c).await.expect("running");
    let t = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let b = running(&c).await.expect("still running under the throttle");
    let secs = t.elapsed().as_secs_f64();
    let moved = b.bytes_moved - a.bytes_moved;
    let bound = limit as f64 * (secs + 1.0) + (4 * limit) as f64;
    assert!(
        (moved as f64) <= bound,
        "{moved} bytes in {secs:.1}s under a {limit} B/s throttle"
    );
    assert!(
        b.bytes_total - b.bytes_moved > 2 << 20,
        "too little left to tell"
    );

    // Lifted: the rest (minutes at the limit) moves within the test's deadline.
    ok(&c.nodectl(&["rebalance", "throttle", "off", "--yes"]));
    c.wait_rebalance_idle(T).await;
    let fin = c.client.rebalance_status().await.unwrap().unwrap();
    assert_eq!(fin.state, RebState::Finished);
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;

    // Bad input changes nothing.
    let bad = c.nodectl(&["rebalance", "throttle", "fast", "--yes"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        c.client
            .config()
            .await
            .unwrap()
            .rebalance
            .throttle_bytes_per_sec,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_whose_receiver_is_stopped_is_reported_stalled() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let cfg = format!("{FAST_CONFIG}\n[cluster.rebalance]\nstall_secs = 2\n");
    let c = TestCluster::start_with(1, 2, 1, &cfg, None, fault_env(root.clone())).await;
    let expected = put_all(&c.client, &make_objects(120, 1, 8 << 10, 143)).await;
    // target0 counts what it must send but holds the sends until its receiver is stopped.
    switch_on(&root, "target0", "hold_reb_sends");
    let t0 = c.id("target0").await;
    lifecycle(&c, "start-maintenance", &format!("t[{t0}]"));
    c.wait_for("target0 to count its objects", T, || async {
        running(&c)
            .await
            .is_some_and(|r| r.targets.iter().any(|t| t.id == t0.0 && t.counted))
    })
    .await;
    c.lc.pause("target1").unwrap();
    switch_off(&root, "target0", "hold_reb_sends");
    // When, to set beside the nodes' logs should this fail.
    eprintln!(
        "{:?}: target1 stopped, target0's sends released",
        std::time::SystemTime::now()
    );
    // Within the configured time (2 s), with room for a loaded machine.
    c.wait_for(
        "the rebalance to be reported stalled",
        Duration::from_secs(2 + 10),
        || async { running(&c).await.is_some_and(|r| r.stalled) },
    )
    .await;
    let r = running(&c).await.unwrap();
    assert!(
        r.blocked_by[0].starts_with("stalled: no progress for"),
        "{:?}",
        r.blocked_by
    );
    let text = ok(&c.nodectl(&["show", "rebalance"]));
    assert!(text.contains("blocked: stalled: no progress"), "{text}");

    c.lc.resume("target1").unwrap();
    c.wait_rebalance_idle(T).await;
    let fin = c.client.rebalance_status().await.unwrap().unwrap();
    assert_eq!(fin.state, RebState::Finished);
    assert!(!fin.stalled);
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}

/// `nodectl cluster check …`: its exit code and, with `--json`, its verdict.
fn check(c: &TestCluster, kind: &str, nodes: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["cluster", "check", kind];
    args.extend_from_slice(nodes);
    let text = c.nodectl(&args);
    args.push("--json");
    let out = c.nodectl(&args);
    assert_eq!(
        out.status.code(),
        text.status.code(),
        "json and text disagree"
    );
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_checks_answer_before_during_and_after_a_decommission() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let c = TestCluster::start_with(1, 3, 1, FAST_CONFIG, None, fault_env(root.clone())).await;
    let expected = put_all(&c.client, &make_objects(150, 1, 8 << 10, 144)).await;
    let (t1, t2) = (c.id("target1").await, c.id("target2").await);
    let (tt1, tt2) = (format!("t[{t1}]"), format!("t[{t2}]"));
    let on_t2 = c
        .object_files()
        .values()
        .filter(|v| v[0].0 == "target2")
        .count() as u64;
    assert!(on_t2 > 0);

    // Before: target2 holds objects, so it may neither stop nor be destroyed.
    let (code, v) = check(&c, "ok-to-stop", &[&tt2]);
    assert_eq!(code, Some(3), "{v}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["objects_on_nodes"], on_t2);
    let text = c.nodectl(&["cluster", "check", "ok-to-stop", &tt2]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("{on_t2} objects would become unreadable")),
        "{text}"
    );
    assert_eq!(check(&c, "safe-to-destroy", &[&tt2]).0, Some(3));
    // The only proxy may not stop.
    let p0 = format!("p[{}]", c.id("proxy0").await);
    let (code, v) = check(&c, "ok-to-stop", &[&p0]);
    assert_eq!(code, Some(3));
    assert!(
        v["reasons"].to_string().contains("no proxy would remain"),
        "{v}"
    );

    // During: the decommission's rebalance is held on target2's sends.
    switch_on(&root, "target2", "hold_reb_sends");
    lifecycle(&c, "decommission", &tt2);
    c.wait_for("the decommission's rebalance to run", T, || async {
        running(&c).await.is_some()
    })
    .await;
    let (code, v) = check(&c, "safe-to-destroy", &[&tt2]);
    assert_eq!(code, Some(3), "{v}");
    assert_eq!(v["rebalance_running"], true);
    // Nothing else is safe to stop meanwhile either: objects are in flight.
    assert_eq!(check(&c, "ok-to-stop", &[&tt1]).0, Some(3));
    switch_off(&root, "target2", "hold_reb_sends");
    c.wait_rebalance_idle(T).await;
    c.wait_for("target2 to leave the map", T, || async {
        !c.smap().await.contains(&t2)
    })
    .await;

    // After: gone from the map, nothing needed from it.
    let (code, v) = check(&c, "safe-to-destroy", &[&tt2]);
    assert_eq!(code, Some(0), "{v}");
    assert!(
        v["notes"].to_string().contains("not in the cluster map"),
        "{v}"
    );
    assert_eq!(check(&c, "ok-to-stop", &[&tt2]).0, Some(0));
    // An ID the map never held (a typo) is a no, not a "yes, nothing needed from it".
    let (code, v) = check(&c, "ok-to-stop", &["t[nosuch]"]);
    assert_eq!(code, Some(3), "{v}");
    assert!(
        v["reasons"].to_string().contains("never decommissioned"),
        "{v}"
    );
    // A target emptied by maintenance is both; one still in placement is neither.
    assert_eq!(check(&c, "ok-to-stop", &[&tt1]).0, Some(3));
    lifecycle(&c, "start-maintenance", &tt1);
    c.wait_rebalance_idle(T).await;
    c.wait_for("target1's objects counted as gone", T, || async {
        check(&c, "safe-to-destroy", &[&tt1]).0 == Some(0)
    })
    .await;
    assert_eq!(check(&c, "ok-to-stop", &[&tt1]).0, Some(0));
    assert_all_readable(&c.client, &expected).await;
}

/// Runs `script` in a non-interactive bash with the completion script loaded and the cluster's
/// endpoint in the environment; returns stdout.
fn bash_with_completion(c: &TestCluster, script: &str) -> String {
    let nodectl = env!("CARGO_BIN_EXE_nodectl");
    let full = format!("source <('{nodectl}' completion bash)\n{script}");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(full)
        .env("NODECTL_ENDPOINT", &c.lc.endpoint)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What bash's completion function offers for `words`, the last one being completed.
fn complete(c: &TestCluster, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "COMP_WORDS=({}); COMP_CWORD={}; COMP_TYPE=9\n\
         _clap_complete_nodectl nodectl '{}' '{}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len().saturating_sub(2)],
    );
    bash_with_completion(c, &script)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_loads_in_bash_and_completes_live_node_ids() {
    let c = TestCluster::start(1, 2, 1, FAST_CONFIG).await;
    let t0 = format!("t[{}]", c.id("target0").await);
    let t1 = format!("t[{}]", c.id("target1").await);
    let p0 = format!("p[{}]", c.id("proxy0").await);

    // Subcommands.
    let subs = complete(&c, &["nodectl", "cluster", "ch"]);
    assert_eq!(subs, vec!["check"], "{subs:?}");
    // Node arguments: every live node, then narrowed by what was typed.
    let all = complete(&c, &["nodectl", "cluster", "check", "ok-to-stop", ""]);
    for id in [&t0, &t1, &p0] {
        assert!(all.iter().any(|w| w == id), "{id} not in {all:?}");
    }
    let targets = complete(
        &c,
        &[
            "nodectl",
            "cluster",
            "add-remove-nodes",
            "start-maintenance",
            "t[",
        ],
    );
    assert!(
        targets.contains(&t0) && targets.contains(&t1),
        "{targets:?}"
    );
    assert!(!targets.contains(&p0), "{targets:?}");
    let one = complete(&c, &["nodectl", "storage", "mountpath", "detach", &t1[..6]]);
    assert!(one.contains(&t1), "{one:?}");
    // Flags.
    let flags = complete(&c, &["nodectl", "rebalance", "pause", "--y"]);
    assert!(flags.iter().any(|f| f == "--yes"), "{flags:?}");
    // zsh and fish scripts are produced too (loading them needs those shells).
    for sh in ["zsh", "fish"] {
        let out = c.nodectl(&["completion", sh]);
        assert!(out.status.success() && !out.stdout.is_empty(), "{sh}");
    }
    assert_eq!(c.nodectl(&["completion", "tcsh"]).status.code(), Some(2));
}

#[test]
fn completion_with_no_cluster_offers_no_nodes_and_does_not_hang() {
    let nodectl = env!("CARGO_BIN_EXE_nodectl");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{nodectl}' completion bash)\n\
             COMP_WORDS=(nodectl cluster check ok-to-stop ''); COMP_CWORD=4; COMP_TYPE=9\n\
             _clap_complete_nodectl nodectl '' ok-to-stop\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        ))
        // Nothing listens on port 1.
        .env("NODECTL_ENDPOINT", "127.0.0.1:1")
        .output()
        .expect("bash");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("t["), "{text}");
}

/// Every node's `/metrics`, parsed by Python's `prometheus_client`: per node, its samples as
/// (name, labels, value).
type Samples = Vec<(String, serde_json::Map<String, serde_json::Value>, f64)>;

fn scrape(c: &TestCluster, names: &[&str]) -> Vec<Samples> {
    let bin = clients::venv_bin();
    let home = tempfile::tempdir().unwrap();
    let urls: Vec<String> = names
        .iter()
        .map(|n| format!("http://{}", c.lc.procs[*n].addr))
        .collect();
    let out = clients::run(
        "metrics.py",
        clients::cmd(bin.join("python"), home.path())
            .arg(clients::root().join("tests/clients/metrics.py"))
            .args(&urls),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v.as_array()
        .unwrap()
        .iter()
        .map(|node| {
            node["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap().to_string(),
                        s["labels"].as_object().unwrap().clone(),
                        s["value"].as_f64().unwrap(),
                    )
                })
                .collect()
        })
        .collect()
}

/// Sum of `name` over the samples whose labels include `with`.
fn sum(s: &Samples, name: &str, with: &[(&str, &str)]) -> f64 {
    s.iter()
        .filter(|(n, l, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| l.get(*k).and_then(|x| x.as_str()) == Some(v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_with_prometheus_client_and_match_show_rebalance() {
    let c = TestCluster::start(1, 3, 2, FAST_CONFIG).await;
    let n = 200;
    let expected = put_all(&c.client, &make_objects(n, 1, 16 << 10, 145)).await;
    let t0 = c.id("target0").await;
    lifecycle(&c, "start-maintenance", &format!("t[{t0}]"));
    c.wait_rebalance_idle(T).await;
    let reb = c.client.rebalance_status().await.unwrap().unwrap();
    assert_eq!(reb.state, RebState::Finished);
    assert!(reb.objs_moved > 0);

    let nodes = ["proxy0", "target0", "target1", "target2"];
    let all = scrape(&c, &nodes);
    let generation = [("rebalance", reb.id.as_str())];
    // The targets' own counters add up to what show rebalance says.
    let targets = &all[1..];
    let tx: f64 = targets
        .iter()
        .map(|s| {
            sum(s, "shoal_rebalance_tx_objects_total", &generation)
                + sum(s, "shoal_rebalance_local_objects_total", &generation)
        })
        .sum();
    assert_eq!(tx as u64, reb.objs_moved, "targets' tx vs show rebalance");
    let rx: f64 = targets
        .iter()
        .map(|s| sum(s, "shoal_rebalance_rx_objects_total", &generation))
        .sum();
    let local: f64 = targets
        .iter()
        .map(|s| sum(s, "shoal_rebalance_local_objects_total", &generation))
        .sum();
    assert_eq!((rx + local) as u64, reb.objs_moved, "received vs moved");
    let bytes: f64 = targets
        .iter()
        .map(|s| {
            sum(s, "shoal_rebalance_tx_bytes_total", &generation)
                + sum(s, "shoal_rebalance_local_bytes_total", &generation)
        })
        .sum();
    assert_eq!(bytes as u64, reb.bytes_moved);
    // The primary's cluster-wide view is show rebalance's.
    let p = &all[0];
    assert_eq!(
        sum(
            p,
            "shoal_cluster_rebalance_moved_objects_total",
            &generation
        ) as u64,
        reb.objs_moved
    );
    assert_eq!(sum(p, "shoal_cluster_rebalance_running", &generation), 0.0);
    // Objects: every one is on some target, none on the one in maintenance.
    let objects: f64 = targets.iter().map(|s| sum(s, "shoal_objects", &[])).sum();
    assert_eq!(objects as usize, expected.len());
    assert_eq!(sum(&targets[0], "shoal_objects", &[]), 0.0);
    let per_mp: f64 = targets
        .iter()
        .map(|s| sum(s, "shoal_mountpath_objects", &[("state", "enabled")]))
        .sum();
    assert_eq!(per_mp as usize, expected.len());
    // Requests: the puts were counted and timed on the targets.
    let puts: f64 = targets
        .iter()
        .map(|s| {
            sum(
                s,
                "shoal_requests_total",
                &[("op", "put-object"), ("outcome", "ok")],
            )
        })
        .sum();
    assert!(puts as usize >= n, "{puts} puts counted for {n}");
    let timed: f64 = targets
        .iter()
        .map(|s| {
            sum(
                s,
                "shoal_request_duration_seconds_count",
                &[("op", "put-object")],
            )
        })
        .sum();
    assert!(timed >= puts, "{timed} timed, {puts} counted");
    for s in &all {
        assert!(sum(s, "shoal_memory_available_bytes", &[]) > 0.0);
        assert_eq!(sum(s, "shoal_node", &[]), 1.0);
    }
}

/// `show rebalance --all --json` through `via` (a node name).
fn history_via(c: &TestCluster, via: &str) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nodectl"))
        .args([
            "--endpoint",
            &c.lc.procs[via].addr,
            "show",
            "rebalance",
            "--all",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["history"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_history_survives_a_primary_restart_and_a_failover() {
    let mut c = TestCluster::start(3, 3, 1, FAST_CONFIG).await;
    put_all(&c.client, &make_objects(120, 1, 8 << 10, 146)).await;
    let t2 = format!("t[{}]", c.id("target2").await);
    for op in ["start-maintenance", "stop-maintenance"] {
        lifecycle(&c, op, &t2);
        c.wait_rebalance_idle(T).await;
    }
    let want = |h: &[serde_json::Value], op: &str| -> serde_json::Value {
        h.iter()
            .find(|r| r["trigger"] == format!("{op} {t2}"))
            .unwrap_or_else(|| panic!("no {op} in {h:?}"))
            .clone()
    };
    let before = history_via(&c, "proxy0");
    let start = want(&before, "start-maintenance");
    assert_eq!(start["outcome"], "finished");
    assert!(start["objects"].as_u64().unwrap() > 0, "{start}");
    assert!(start["finished"].as_u64() >= start["started"].as_u64());
    let stop = want(&before, "stop-maintenance");
    // `show job` finds a past generation by its ID.
    let id = start["id"].as_str().unwrap();
    let job = ok(&c.nodectl(&["show", "job", id]));
    assert!(job.contains(&format!("{id}: finished")), "{job}");
    assert!(
        job.contains(&format!("trigger: start-maintenance {t2}")),
        "{job}"
    );
    assert_eq!(
        c.nodectl(&["show", "job", "g999999"]).status.code(),
        Some(1)
    );
    assert_eq!(c.nodectl(&["show", "job", "gx"]).status.code(), Some(2));

    // The primary restarts: the history is still there.
    let old = c.id("proxy0").await;
    c.lc.stop("proxy0", Duration::from_secs(10)).unwrap();
    c.lc.start("proxy0").unwrap();
    c.wait_for("the cluster to answer again", T, || async {
        c.client.smap().await.is_ok()
    })
    .await;
    let after_restart = history_via(&c, "proxy1");
    assert_eq!(want(&after_restart, "start-maintenance"), start);
    assert_eq!(want(&after_restart, "stop-maintenance"), stop);

    // It dies for good: the new primary has it too.
    let primary = c.smap().await.primary;
    let name = if primary == old {
        "proxy0"
    } else if primary == c.id("proxy1").await {
        "proxy1"
    } else {
        "proxy2"
    };
    let survivor = if name == "proxy2" { "proxy1" } else { "proxy2" };
    c.lc.kill9(name).unwrap();
    c.wait_for("a new primary", T, || async {
        let s = std::process::Command::new(env!("CARGO_BIN_EXE_nodectl"))
            .args([
                "--endpoint",
                &c.lc.procs[survivor].addr,
                "show",
                "cluster",
                "--json",
            ])
            .output()
            .unwrap();
        s.status.success()
            && serde_json::from_slice::<serde_json::Value>(&s.stdout)
                .is_ok_and(|v| v["primary"].as_str().is_some_and(|p| p != primary.0))
    })
    .await;
    let after_failover = history_via(&c, survivor);
    assert_eq!(want(&after_failover, "start-maintenance"), start);
    assert_eq!(want(&after_failover, "stop-maintenance"), stop);
}
