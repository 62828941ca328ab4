//! Node lifecycle seen through the HTTP front door (DESIGN §7, §13): while a target goes into
//! maintenance and another is decommissioned, boto3 (S3) and AIStore's SDK (native, following
//! the proxy's redirects to the targets) read and write continuously with zero errors, and
//! `client.job(job_id=...).wait()` returns when the rebalance has ended. The decommission is
//! asked for over HTTP, as AIStore's Go API sends it (`PUT /v1/cluster`).

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::clients::{self, cmd, run};
use common::{BUCKET, TestCluster};
use serde_json::Value;

/// Fast keepalive, and a rebalance slow enough (throttled) that the clients run across it.
const CONFIG: &str = r#"
[cluster.keepalive]
interval_ms = 250
num_retries = 3

[cluster.rebalance]
throttle_bytes_per_sec = 4194304
"#;

fn start_load(bin: &Path, home: &Path, client: &str, url: &str, stop: &Path) -> Child {
    cmd(bin.join("python"), home)
        .arg(clients::root().join("tests/clients/load.py"))
        .args([client, url, BUCKET])
        .arg(stop)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start load.py")
}

/// `client.job(job_id=id).wait()` with AIStore's SDK; returns the seconds it waited.
fn sdk_job_wait(bin: &Path, home: &Path, url: &str, id: &str) -> f64 {
    let script = format!(
        "import time\nfrom aistore.sdk import Client\nt = time.time()\n\
         r = Client({url:?}).job(job_id={id:?}).wait(timeout=180)\n\
         assert r.success, r\nprint(time.time() - t)\n"
    );
    let out = run(
        "job wait",
        cmd(bin.join("python"), home).args(["-c", &script]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out.trim().parse().unwrap_or(0.0)
}

/// What the primary says about the rebalance right now.
async fn rebalance_running(tc: &TestCluster) -> bool {
    tc.client
        .rebalance_status()
        .await
        .ok()
        .flatten()
        .is_some_and(|r| r.is_running())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_errors_over_http_during_maintenance_and_decommission() {
    let bin = clients::venv_bin();
    let tc = TestCluster::start_http(1, 4, 1, CONFIG, None, &[]).await;
    let url = tc.http_url("proxy0");
    let home = tempfile::tempdir().unwrap();
    // Data for the rebalances to move (the throttle makes them last a few seconds).
    let objs = common::make_objects(240, 16 << 10, 256 << 10, 7);
    let expected = common::put_all(&tc.client, &objs).await;

    let stop = home.path().join("stop");
    let loads: Vec<(&str, Child)> = ["boto3", "aistore"]
        .into_iter()
        .map(|c| (c, start_load(&bin, home.path(), c, &url, &stop)))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Maintenance, driven by nodectl; the SDK waits for its rebalance.
    let t1 = tc.id("target1").await;
    let r = tc.nodectl_json(&[
        "cluster",
        "add-remove-nodes",
        "start-maintenance",
        &format!("t[{t1}]"),
        "--yes",
    ]);
    let g = r["rebalance_id"].as_str().expect("a rebalance").to_string();
    let was_running = rebalance_running(&tc).await;
    let waited = sdk_job_wait(&bin, home.path(), &url, &g);
    assert!(
        !rebalance_running(&tc).await,
        "job({g}).wait() returned while the rebalance still runs"
    );
    eprintln!("maintenance: {g} (running when asked: {was_running}), job wait took {waited:.1}s");

    // Decommission of another target, asked over HTTP as AIStore's Go API sends it.
    let t2 = tc.id("target2").await;
    let body = serde_json::json!({
        "action": "decommission-node",
        "value": {"sid": t2.0, "skip_rebalance": false, "rm_user_data": false},
    })
    .to_string();
    let g2 = run(
        "PUT /v1/cluster decommission-node",
        cmd("curl", home.path())
            .args(["-sf", "-X", "PUT", "-d", &body])
            .arg(format!("{url}/v1/cluster")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        g2.starts_with('g'),
        "decommission answered {g2:?}, not a rebalance ID"
    );
    let waited = sdk_job_wait(&bin, home.path(), &url, &g2);
    assert!(
        !rebalance_running(&tc).await,
        "job({g2}).wait() returned early"
    );
    eprintln!("decommission: {g2}, job wait took {waited:.1}s");
    tc.wait_for(
        "the decommissioned target to leave",
        Duration::from_secs(30),
        || async { !tc.smap().await.targets.contains_key(&t2) },
    )
    .await;

    // A little more traffic on the smaller cluster, then stop and collect.
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::write(&stop, b"").unwrap();
    let until = Instant::now() + Duration::from_secs(120);
    let mut failures = Vec::new();
    for (client, mut child) in loads {
        // Bounded: a client that hangs is killed and reported.
        while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let out = child.wait_with_output().expect("load.py");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or("");
        match serde_json::from_str::<Value>(line) {
            Ok(v) => {
                eprintln!("{client}: {v}");
                if v["errors"] != 0 || v["writes"].as_u64().unwrap_or(0) < 20 {
                    failures.push(format!("{client}: {v}"));
                }
            }
            Err(_) => failures.push(format!(
                "{client} printed no summary:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
    if !failures.is_empty() {
        tc.dump_logs();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // And the objects that were there before are all still there, intact.
    common::assert_all_readable(&tc.client, &expected).await;
}
