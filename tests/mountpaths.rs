//! Mountpaths as first-class citizens (issue #13, DESIGN §14), on real `noded` processes:
//! attach and detach under continuous reads and writes, disable and enable, a disk whose marker
//! is missing at start, a disk whose I/O fails under load, the high-water mark, and the rule
//! between a resilver and a global rebalance. Every change goes through the real `nodectl`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use shoal_actors::client::Client;
use shoal_actors::logic::placement::{self, MountpathKey};
use shoal_actors::proto::msg::{GetResilver, GetStorage};
use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleRequest};
use shoal_actors::types::smap::NodeId;
use shoal_actors::types::status::{MpState, NodeState, ResilverStatus, StorageStatus};

const T: Duration = Duration::from_secs(60);

/// How many of the load's writes may create new objects; later ones overwrite them.
const NEW_OBJECTS_MAX: usize = 150;

/// Continuous writes (new objects and overwrites) and reads of what was written, until
/// stopped; every failure is kept, with what it was.
struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>, HashMap<String, String>)>,
}

impl Load {
    fn start(client: Client, mut known: HashMap<String, String>, tag: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, tag) = (stop.clone(), tag.to_string());
        let task = tokio::spawn(async move {
            let (mut ops, mut errors) = (0u64, Vec::new());
            let names: Vec<String> = known.keys().cloned().collect();
            let mut i = 0usize;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                // A write: a new object, or an overwrite of an old one every third time. New
                // names are bounded: the resilvers' work must not grow with the client's speed
                // (a release build wrote so many that a throttled detach outlasted the test).
                let name = match i % 3 {
                    0 if !names.is_empty() => names[i % names.len()].clone(),
                    _ if i > NEW_OBJECTS_MAX => format!("{tag}/w-{:06}", i % NEW_OBJECTS_MAX),
                    _ => format!("{tag}/w-{i:06}"),
                };
                let data = format!("{tag} {i} {}", "x".repeat(i % 5000)).into_bytes();
                match client.put_bytes(BUCKET, &name, &data).await {
                    Ok(sum) => {
                        known.insert(name, sum);
                    }
                    Err(e) => errors.push(format!("put {name}: {e}")),
                }
                // Two reads of what is known.
                for k in [i * 7, i * 13] {
                    let n = &names[k % names.len().max(1)];
                    match client.get_bytes(BUCKET, n).await {
                        Ok(d) if checksum(&d) == known[n] => {}
                        Ok(_) => errors.push(format!("get {n}: wrong content")),
                        Err(e) => errors.push(format!("get {n}: {e}")),
                    }
                }
                ops += 3;
            }
            (ops, errors, known)
        });
        Load { stop, task }
    }

    /// Stops; returns (operations, errors, what is now expected in the bucket).
    async fn finish(self) -> (u64, Vec<String>, HashMap<String, String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("load task")
    }
}

async fn addr_of(c: &TestCluster, name: &str) -> String {
    c.lc.procs[name].addr.clone()
}

async fn storage(c: &TestCluster, name: &str) -> StorageStatus {
    *c.client
        .rpc_at(&addr_of(c, name).await, GetStorage)
        .await
        .expect("show storage")
}

async fn resilver(c: &TestCluster, name: &str) -> Option<ResilverStatus> {
    c.client
        .rpc_at(&addr_of(c, name).await, GetResilver)
        .await
        .expect("show resilver")
        .map(|b| *b)
}

/// Waits until resilver `id` on `name` finished; returns its final status.
async fn resilver_done(c: &TestCluster, name: &str, id: &str) -> ResilverStatus {
    let until = std::time::Instant::now() + T;
    loop {
        let r = resilver(c, name).await;
        if let Some(r) = r.as_ref().filter(|r| r.id == id && !r.is_running()) {
            return r.clone();
        }
        if std::time::Instant::now() > until {
            c.dump_logs();
            panic!("resilver {id} on {name} not done after {T:?}: {r:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until resilver `id` has moved some but not all of its objects (the load is running).
async fn midway(c: &TestCluster, name: &str, id: &str) {
    c.wait_for(&format!("{id} midway"), T, || async {
        resilver(c, name).await.is_some_and(|r| {
            r.id == id && r.counted && r.objs_moved > 0 && r.objs_moved < r.objs_total
        })
    })
    .await;
}

/// `nodectl storage mountpath ACTION NODE PATH --yes --json`; returns the resilver ID.
fn mountpath_op(c: &TestCluster, action: &str, node: &NodeId, path: &Path) -> String {
    let v = c.nodectl_json(&[
        "storage",
        "mountpath",
        action,
        node.as_str(),
        path.to_str().unwrap(),
        "--yes",
    ]);
    v["resilver_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no resilver in {v}"))
        .to_string()
}

fn row<'a>(
    s: &'a StorageStatus,
    path: &Path,
) -> Option<&'a shoal_actors::types::status::MountpathStats> {
    let p = path.canonicalize().unwrap_or(path.to_path_buf());
    s.mountpaths.iter().find(|m| Path::new(&m.path) == p)
}

/// Objects on disk per mountpath path of one target.
fn files_on(c: &TestCluster, name: &str) -> HashMap<PathBuf, usize> {
    let paths: Vec<PathBuf> = c.mountpaths_of(name).into_iter().map(|(p, _)| p).collect();
    let mut out: HashMap<PathBuf, usize> = paths.iter().map(|p| (p.clone(), 0)).collect();
    for copies in c.object_files().values() {
        for (t, i, _) in copies {
            if t == name {
                *out.get_mut(&paths[*i]).unwrap() += 1;
            }
        }
    }
    out
}

/// Objects deleted while a resilver runs (or overwritten on the mountpath they belong on) leave
/// nothing to move: its total comes down to what there was, so a finished resilver reads all
/// moved rather than one short with no error to say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resilver_total_leaves_out_what_clients_deleted_meanwhile() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let c = TestCluster::start_with(1, 1, 1, FAST_CONFIG, None, fault_env(root.clone())).await;
    switch_on(&root, "target0", "slow_resilver");
    let expected = put_all(&c.client, &make_objects(60, 1, 4 << 10, 17)).await;
    let t0 = c.id("target0").await;
    let new = c.dir().join("target0-new");
    std::fs::create_dir_all(&new).unwrap();
    let r1 = mountpath_op(&c, "attach", &t0, &new);
    midway(&c, "target0", &r1).await;
    let counted = resilver(&c, "target0").await.unwrap().objs_total;
    // Those still waiting to move (on a mountpath other than their proper one) go first.
    let mps: Vec<(usize, u64)> = c
        .mountpaths_of("target0")
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (i, MountpathKey::new(p.display().to_string()).digest))
        .collect();
    let mut names: Vec<(bool, String)> = c
        .object_files()
        .into_iter()
        .map(|(k, copies)| {
            let name = k[BUCKET.len() + 1..].to_string();
            let want = placement::best_mountpath(
                &mps,
                placement::digest(&placement::uname(BUCKET, &name)),
            );
            (copies.iter().all(|(_, i, _)| Some(*i) == want), name)
        })
        .collect();
    names.sort();
    assert!(!names[0].0, "nothing left to move at midway");
    for (_, name) in &names {
        c.client.delete(BUCKET, name).await.unwrap();
    }
    let r = resilver_done(&c, "target0", &r1).await;
    assert_eq!(r.errors, 0, "{r:?}");
    assert!(r.objs_total < counted, "counted {counted}: {r:?}");
    assert!(r.objs_moved > 0 && r.objs_moved == r.objs_total, "{r:?}");
    // Deleted is deleted: nothing the resilver moved came back.
    for name in expected.keys() {
        let got = c.client.get_bytes(BUCKET, name).await;
        assert!(
            matches!(got, Err(shoal_actors::Error::NotFound(_))),
            "{name}: {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_then_detach_under_continuous_reads_and_writes() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let mut c = TestCluster::start_with(1, 2, 2, FAST_CONFIG, None, fault_env(root.clone())).await;
    // Each move takes a while: the load runs through the middle of both resilvers.
    switch_on(&root, "target0", "slow_resilver");
    let expected = put_all(&c.client, &make_objects(300, 1, 64 << 10, 131)).await;
    let t0 = c.id("target0").await;
    let load = Load::start(c.client.clone(), expected.clone(), "attach");

    // Attach: a dry run says what would move and changes nothing; then the real thing.
    let new = c.dir().join("target0-new");
    std::fs::create_dir_all(&new).unwrap();
    let plan = c.nodectl_json(&[
        "storage",
        "mountpath",
        "attach",
        t0.as_str(),
        new.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(plan["objs"].as_u64().unwrap() > 0, "{plan}");
    assert!(row(&storage(&c, "target0").await, &new).is_none());
    let r1 = mountpath_op(&c, "attach", &t0, &new);
    midway(&c, "target0", &r1).await;
    let r = resilver_done(&c, "target0", &r1).await;
    assert_eq!(r.errors, 0, "{r:?}");
    assert!(r.objs_moved > 0 && r.objs_moved == r.objs_total, "{r:?}");
    assert!(files_on(&c, "target0")[&new.canonicalize().unwrap()] > 0);

    // Detach the first configured mountpath: everything moves off it, then it is forgotten.
    let mp0 = c.lc.procs["target0"].mountpaths[0].canonicalize().unwrap();
    let before = files_on(&c, "target0")[&mp0];
    assert!(before > 0);
    let r2 = mountpath_op(&c, "detach", &t0, &mp0);
    midway(&c, "target0", &r2).await;
    let r = resilver_done(&c, "target0", &r2).await;
    assert_eq!(r.errors, 0, "{r:?}");
    let (ops, errors, expected) = load.finish().await;
    assert!(ops > 30, "the load ran ({ops} operations)");
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_eq!(
        files_on(&c, "target0")[&mp0],
        0,
        "nothing left on the detached disk"
    );
    assert!(!mp0.join(".shoal-mountpath").exists(), "its marker is gone");
    assert!(
        row(&storage(&c, "target0").await, &mp0).is_none(),
        "not shown any more"
    );
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;

    // Both decisions survive a restart (noded is started with the same --mountpath flags).
    c.lc.stop("target0", Duration::from_secs(10)).unwrap();
    c.lc.start("target0").unwrap();
    c.wait_for("target0 back online", T, || async {
        c.node_status("target0")
            .await
            .is_some_and(|n| n.reachable && n.status == NodeState::Online)
    })
    .await;
    let s = storage(&c, "target0").await;
    assert!(row(&s, &mp0).is_none(), "detached stays detached: {s:?}");
    assert_eq!(row(&s, &new).map(|m| m.state), Some(MpState::Enabled));
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_and_enable_move_objects_off_and_back() {
    let c = TestCluster::start(1, 1, 3, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(200, 1, 32 << 10, 7)).await;
    let t0 = c.id("target0").await;
    let mp1 = c.lc.procs["target0"].mountpaths[1].canonicalize().unwrap();
    let load = Load::start(c.client.clone(), expected.clone(), "disable");

    let r = mountpath_op(&c, "disable", &t0, &mp1);
    let st = resilver_done(&c, "target0", &r).await;
    assert_eq!(st.errors, 0, "{st:?}");
    let s = storage(&c, "target0").await;
    let m = row(&s, &mp1).unwrap();
    assert_eq!(m.state, MpState::Disabled);
    assert_eq!(m.reason.as_deref(), Some("disabled by an operator"));
    assert_eq!(files_on(&c, "target0")[&mp1], 0, "its objects moved off");
    // Disabling it again is refused with a reason, and changes nothing.
    let out = c.nodectl(&[
        "storage",
        "mountpath",
        "disable",
        t0.as_str(),
        mp1.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only an enabled mountpath"));
    // New writes do not land on it.
    let more = put_all(&c.client, &objects("more", 40, 1024, 8)).await;
    assert_eq!(files_on(&c, "target0")[&mp1], 0);

    let r = mountpath_op(&c, "enable", &t0, &mp1);
    let st = resilver_done(&c, "target0", &r).await;
    assert_eq!(st.errors, 0, "{st:?}");
    let (_, errors, mut expected) = load.finish().await;
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(files_on(&c, "target0")[&mp1] > 0, "its share came back");
    expected.extend(more);
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_missing_its_marker_is_disabled_and_the_node_starts_on_the_others() {
    let mut c = TestCluster::start(1, 1, 2, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(120, 1, 16 << 10, 21)).await;
    let t0 = c.id("target0").await;
    let mp1 = c.lc.procs["target0"].mountpaths[1].canonicalize().unwrap();
    let on_mp1: Vec<String> = c
        .object_files()
        .into_iter()
        .filter(|(_, v)| v[0].1 == 1)
        .map(|(k, _)| k[BUCKET.len() + 1..].to_string())
        .collect();
    assert!(!on_mp1.is_empty());

    // The disk is "unmounted": the directory underneath is there, empty.
    c.lc.stop("target0", Duration::from_secs(10)).unwrap();
    let away = c.dir().join("mp1-unmounted");
    std::fs::rename(&mp1, &away).unwrap();
    std::fs::create_dir_all(&mp1).unwrap();
    c.lc.start("target0").unwrap();
    c.wait_for("target0 online", T, || async {
        c.node_status("target0")
            .await
            .is_some_and(|n| n.reachable && n.status == NodeState::Online)
    })
    .await;
    let s = storage(&c, "target0").await;
    let m = row(&s, &mp1).unwrap();
    assert_eq!(m.state, MpState::Disabled, "{m:?}");
    assert!(m.reason.as_deref().unwrap().contains("marker"), "{m:?}");
    let human = c.nodectl(&["show", "storage", t0.as_str()]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("not mounted"));

    // The target serves from the other disk and writes nothing underneath the missing one.
    let others: HashMap<String, String> = expected
        .iter()
        .filter(|(k, _)| !on_mp1.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_all_readable(&c.client, &others).await;
    let more = put_all(&c.client, &objects("more", 30, 1024, 22)).await;
    assert_eq!(
        std::fs::read_dir(&mp1).unwrap().count(),
        0,
        "nothing written to the empty directory"
    );
    // Enabling it while the disk is still missing is refused with the reason.
    let out = c.nodectl(&[
        "storage",
        "mountpath",
        "enable",
        t0.as_str(),
        mp1.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("marker"));

    // "Mount" it again and enable it: everything is back, properly located.
    std::fs::remove_dir(&mp1).unwrap();
    std::fs::rename(&away, &mp1).unwrap();
    let r = mountpath_op(&c, "enable", &t0, &mp1);
    assert_eq!(resilver_done(&c, "target0", &r).await.errors, 0);
    let mut all = expected.clone();
    all.extend(more);
    assert_all_readable(&c.client, &all).await;
    c.assert_properly_located(&all).await;

    // Another target's disk is refused.
    let foreign = c.dir().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    shoal_actors::store::persist(
        &foreign.join(".shoal-mountpath"),
        &shoal_actors::store::mountpath::Marker {
            target: NodeId("someone-else".into()),
            cluster: None,
        },
    )
    .unwrap();
    let out = c.nodectl(&[
        "storage",
        "mountpath",
        "attach",
        t0.as_str(),
        foreign.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("foreign disk"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_is_taken_out_and_the_target_stays_up() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let c = TestCluster::start_with(1, 1, 2, FAST_CONFIG, None, fault_env(root.clone())).await;
    let expected = put_all(&c.client, &make_objects(150, 1, 16 << 10, 5)).await;
    let mp1 = c.lc.procs["target0"].mountpaths[1].canonicalize().unwrap();
    let (on_mp1, others): (Vec<String>, Vec<String>) = c
        .object_files()
        .into_iter()
        .map(|(k, v)| (k[BUCKET.len() + 1..].to_string(), v[0].1))
        .partition(|(_, mp)| *mp == 1)
        .into_iter_pair();
    assert!(!on_mp1.is_empty() && !others.is_empty());

    // Under load, the disk starts failing.
    let others_map: HashMap<String, String> = others
        .iter()
        .map(|k| (k.clone(), expected[k].clone()))
        .collect();
    let load = Load::start(c.client.clone(), others_map.clone(), "failing");
    let dir_name = mp1.file_name().unwrap().to_str().unwrap().to_string();
    switch_on(&root, "target0", &format!("fail_io_{dir_name}"));
    // Reads of its objects notice at once (no need to wait for the periodic probe).
    for n in on_mp1.iter().take(3) {
        let _ = c.client.get_bytes(BUCKET, n).await;
    }
    c.wait_for("mp1 marked failed", Duration::from_secs(20), || async {
        row(&storage(&c, "target0").await, &mp1).is_some_and(|m| m.state == MpState::Failed)
    })
    .await;
    let s = storage(&c, "target0").await;
    let m = row(&s, &mp1).unwrap();
    assert!(m.reason.as_deref().unwrap().contains("I/O"), "{m:?}");
    // Writes in the moment before it was marked may have failed; from now on none does. An
    // object written onto mp1 just before it failed is rightly unavailable (its one copy is
    // there): the reads from now on are of the objects elsewhere.
    let (_, _, mut known) = load.finish().await;
    for (k, v) in c.object_files() {
        if v.iter().all(|(_, mp, _)| *mp == 1) {
            known.remove(&k[BUCKET.len() + 1..]);
        }
    }
    let load = Load::start(c.client.clone(), known, "after");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ops, errors, known) = load.finish().await;
    assert!(ops > 10);
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_all_readable(&c.client, &known).await;

    // Its own objects fail fast with a clear reason, never a hang.
    let started = std::time::Instant::now();
    let e = c
        .client
        .get_bytes(BUCKET, &on_mp1[0])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("mountpath") && e.contains("failed"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered in {:?}",
        started.elapsed()
    );
    // The target is up; show storage and the log say what happened.
    let n = c.node_status("target0").await.unwrap();
    assert!(n.reachable && n.status == NodeState::Online);
    let human = String::from_utf8_lossy(&c.nodectl(&["show", "storage"]).stdout).to_string();
    assert!(
        human.contains("failed") && human.contains(&dir_name),
        "{human}"
    );
    let log = std::fs::read_to_string(&c.lc.procs["target0"].log).unwrap();
    assert!(log.contains("mountpath failed"), "the log says so");
}

/// A disk that fails to write an object's data back after it was renamed into place (the
/// kernel reports that once, possibly to another flush than the object's own): the put is not
/// acknowledged and leaves no file whose content the disk does not hold. A rename over an older
/// copy, whose data was made durable before the rename, is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_the_disk_failed_to_write_back_is_not_acknowledged() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let c = TestCluster::start_with(1, 1, 2, FAST_CONFIG, None, fault_env(root.clone())).await;
    c.client.put_bytes(BUCKET, "kept", b"first").await.unwrap();
    let switches: Vec<String> = c.lc.procs["target0"]
        .mountpaths
        .iter()
        .map(|m| {
            let m = m.canonicalize().unwrap();
            format!(
                "lose_writeback_{}",
                m.file_name().unwrap().to_str().unwrap()
            )
        })
        .collect();
    for s in &switches {
        switch_on(&root, "target0", s);
    }
    // A small body (written whole) and a streamed one (its writeback started while it arrived).
    let small = vec![7u8; 1000];
    let large = vec![9u8; 3 << 20];
    for (name, data) in [("new-small", &small), ("new-large", &large)] {
        let e = c.client.put_bytes(BUCKET, name, data).await.unwrap_err();
        assert!(e.to_string().contains("writeback"), "{name}: {e}");
        let e = c.client.get_bytes(BUCKET, name).await.unwrap_err();
        assert!(e.to_string().contains("not found"), "{name}: {e}");
    }
    assert!(
        c.object_files().keys().all(|k| !k.contains("new-")),
        "a file whose data the disk lost is left behind: {:?}",
        c.object_files().keys().collect::<Vec<_>>()
    );
    c.client.put_bytes(BUCKET, "kept", b"second").await.unwrap();
    assert_eq!(c.client.get_bytes(BUCKET, "kept").await.unwrap(), b"second");
    let log = std::fs::read_to_string(&c.lc.procs["target0"].log).unwrap();
    assert!(log.contains("writeback lost"), "the log says so");

    // The disk recovers: the same puts go through.
    for s in &switches {
        switch_off(&root, "target0", s);
    }
    for (name, data) in [("new-small", &small), ("new-large", &large)] {
        c.client.put_bytes(BUCKET, name, data).await.unwrap();
        assert_eq!(&c.client.get_bytes(BUCKET, name).await.unwrap(), data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mountpath_past_its_high_water_mark_takes_no_new_objects() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let c = TestCluster::start_with(1, 1, 2, FAST_CONFIG, None, fault_env(root.clone())).await;
    let mp0 = c.lc.procs["target0"].mountpaths[0].canonicalize().unwrap();
    let dir_name = mp0.file_name().unwrap().to_str().unwrap().to_string();
    let first = put_all(&c.client, &make_objects(60, 1, 1024, 1)).await;
    let held = files_on(&c, "target0")[&mp0];
    assert!(held > 0);
    switch_on(&root, "target0", &format!("full_{dir_name}"));
    c.wait_for("mp0 past its high-water mark", T, || async {
        row(&storage(&c, "target0").await, &mp0).is_some_and(|m| m.full)
    })
    .await;
    let m = row(&storage(&c, "target0").await, &mp0).cloned().unwrap();
    assert_eq!(m.state, MpState::Enabled, "it keeps serving what it holds");
    assert!(m.reason.unwrap().contains("high-water"));
    let more = put_all(&c.client, &objects("more", 80, 1024, 2)).await;
    assert_eq!(
        files_on(&c, "target0")[&mp0],
        held,
        "no new object on the full disk"
    );
    let mut all = first;
    all.extend(more);
    assert_all_readable(&c.client, &all).await;
    let human = String::from_utf8_lossy(&c.nodectl(&["show", "storage"]).stdout).to_string();
    assert!(human.contains("enabled (full)"), "{human}");
    switch_off(&root, "target0", &format!("full_{dir_name}"));
    c.wait_for("mp0 below its mark", T, || async {
        row(&storage(&c, "target0").await, &mp0).is_some_and(|m| !m.full)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resilver_waits_for_a_running_global_rebalance() {
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let c = TestCluster::start_with(1, 2, 1, FAST_CONFIG, None, fault_env(root.clone())).await;
    let expected = put_all(&c.client, &make_objects(150, 1, 8 << 10, 9)).await;
    let (t0, t1) = (c.id("target0").await, c.id("target1").await);
    // A global rebalance that stays running: target1 leaves but holds on to its objects.
    switch_on(&root, "target1", "hold_reb_sends");
    c.client
        .lifecycle(LifecycleRequest::new(
            LifecycleOp::StartMaintenance,
            vec![t1.clone()],
        ))
        .await
        .unwrap();
    c.wait_for("the rebalance running", T, || async {
        c.client
            .rebalance_status()
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.is_running())
    })
    .await;
    let new = c.dir().join("target0-new");
    std::fs::create_dir_all(&new).unwrap();
    let rid = mountpath_op(&c, "attach", &t0, &new);
    let r = resilver(&c, "target0").await.unwrap();
    assert_eq!(r.id, rid);
    assert!(r.is_running());
    assert!(
        r.blocked_by
            .as_deref()
            .is_some_and(|b| b.contains("waits for global rebalance")),
        "{r:?}"
    );
    let human = String::from_utf8_lossy(&c.nodectl(&["show", "resilver"]).stdout).to_string();
    assert!(human.contains("Waiting") && human.contains(&rid), "{human}");
    // Released, the rebalance finishes, then the resilver walks.
    switch_off(&root, "target1", "hold_reb_sends");
    c.wait_rebalance_idle(T).await;
    let r = resilver_done(&c, "target0", &rid).await;
    assert_eq!(r.errors, 0, "{r:?}");
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
    let out = c.nodectl(&["wait", "resilver", "--timeout", "30"]);
    assert!(out.status.success());
}

/// Objects whose names start with `tag/` (apart from those of `make_objects` alone).
fn objects(tag: &str, n: usize, max: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    make_objects(n, 1, max, seed)
        .into_iter()
        .map(|(k, v)| (format!("{tag}/{k}"), v))
        .collect()
}

/// `(a, b)` pairs partitioned into two lists of `a`.
trait PairsExt {
    fn into_iter_pair(self) -> (Vec<String>, Vec<String>);
}

impl PairsExt for (Vec<(String, usize)>, Vec<(String, usize)>) {
    fn into_iter_pair(self) -> (Vec<String>, Vec<String>) {
        (
            self.0.into_iter().map(|(k, _)| k).collect(),
            self.1.into_iter().map(|(k, _)| k).collect(),
        )
    }
}
