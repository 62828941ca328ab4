//! Listings longer than a page, across several targets, through the HTTP front door (DESIGN
//! §13): S3 V1 and V2 (with and without a delimiter) and AIStore's list_objects and
//! list_all_objects, each driven by its real client (tests/clients/listing.py). The cluster pages
//! itself: every page is merged from the targets' own pages.

mod common;

use std::collections::BTreeMap;

use common::clients::{self, cmd, run};
use common::{BUCKET, FAST_CONFIG, TestCluster};
use futures::StreamExt;
use shoal_actors::types::object::MAX_PAGE;

/// More than the cluster's largest page, so that even AIStore's default page size (the
/// cluster's maximum) needs two.
const OBJECTS: usize = MAX_PAGE + 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_across_targets_with_real_clients() {
    let bin = clients::venv_bin();
    let tc = TestCluster::start_http(1, 3, 1, FAST_CONFIG, None, &[]).await;
    let names: Vec<String> = (0..OBJECTS)
        .map(|i| format!("many/{}/obj-{i:06}", i % 7))
        .collect();
    let c = &tc.client;
    let puts = futures::stream::iter(names.iter())
        .map(|n| async move { c.put_bytes(BUCKET, n, b"x").await.map(|_| ()) })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(puts.iter().all(|r| r.is_ok()), "puts failed");

    // Every target holds part of the listing.
    let smap = tc.client.smap().await.unwrap();
    let mut per_target: BTreeMap<String, usize> = BTreeMap::new();
    for n in &names {
        let owner = shoal_actors::logic::placement::owner(&smap, BUCKET, n).unwrap();
        *per_target.entry(owner.id.0.clone()).or_default() += 1;
    }
    assert_eq!(per_target.len(), 3, "{per_target:?}");
    // And one page of the cluster's does not hold all of it.
    let first = tc
        .client
        .list_objects_page(BUCKET, "many/", None, MAX_PAGE)
        .await
        .unwrap();
    assert_eq!(first.entries.len(), MAX_PAGE);
    assert!(first.next.is_some());

    let url = tc.http_url("proxy0");
    let home = tempfile::tempdir().unwrap();
    let out = run(
        "listing.py",
        cmd(bin.join("python"), home.path())
            .arg(clients::root().join("tests/clients/listing.py"))
            .args([&url, BUCKET, &OBJECTS.to_string()]),
    );
    match out {
        Ok(out) => eprintln!("{out}"),
        Err(e) => {
            tc.dump_logs();
            panic!("{e}");
        }
    }
}
