//! Nobody gets in (issue #10, DESIGN §10): with auth on, every data and admin request needs the
//! right token, no program can pose as a member or as the primary, hostile names never reach the
//! disk, a join through a non-primary proxy works; and, auth on or off, idle connections beyond
//! the cap do not starve the clients that work.

mod common;

use std::time::Duration;

use common::*;
use shoal_actors::Error;
use shoal_actors::client::Client;
use shoal_actors::logic::auth::{self, Secret, jwt};
use shoal_actors::proto::Conn;
use shoal_actors::types::lifecycle::{ClusterOp, LifecycleOp, LifecycleRequest, NodeAction};
use shoal_actors::types::meta::MetaUpdate;
use shoal_actors::types::smap::{Bmd, NodeId, Role};
use shoal_nodectl::playground::free_port;

const SECRET: &str = "a-cluster-secret-for-the-tests";
const T: Duration = Duration::from_secs(60);

fn user_token(admin: bool, exp_in: i64, secret: &str) -> String {
    let now = shoal_actors::types::unix_secs() as i64;
    jwt::sign(
        &jwt::Claims {
            sub: if admin { "ops" } else { "reader" }.into(),
            exp: (now + exp_in) as u64,
            admin,
            iat: Some(now as u64),
            cluster: None,
            jti: None,
        },
        secret.as_bytes(),
    )
    .unwrap()
}

/// Copies of an object on disk: (target, mountpath, checksum).
type Copies = Vec<(String, usize, String)>;

/// What a refused request must not have changed.
#[derive(PartialEq, Debug)]
struct Fingerprint {
    smap_version: u64,
    buckets: Vec<String>,
    files: Vec<(String, Copies)>,
}

async fn fingerprint(c: &TestCluster) -> Fingerprint {
    let files = c
        .object_files()
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.into_iter()
                    .map(|(n, mp, m)| (n, mp, m.checksum))
                    .collect(),
            )
        })
        .collect();
    Fingerprint {
        smap_version: c.smap().await.version,
        buckets: c.client.list_buckets().await.unwrap(),
        files,
    }
}

fn refused(res: &shoal_actors::Result<impl std::fmt::Debug>, forbidden: bool) -> bool {
    match res {
        Err(Error::Unauthorized(_)) => !forbidden,
        Err(Error::Forbidden(_)) => forbidden,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_on_nothing_gets_in_without_the_right_token() {
    let cfg = format!("{FAST_CONFIG}\n[cluster.auth]\nenabled = true\nsecret = \"{SECRET}\"\n");
    let admin = user_token(true, 3600, SECRET);
    let mut c = TestCluster::start_with_token(2, 2, 1, &cfg, Some(admin.clone())).await;
    let expected = put_all(&c.client, &make_objects(30, 1, 4 << 10, 31)).await;
    let (name, _) = expected.iter().next().unwrap();
    let smap = c.smap().await;
    let t0 = smap.targets.values().next().unwrap().clone();
    let before = fingerprint(&c).await;

    let bad_sig = user_token(true, 3600, "not-the-secret");
    let expired = user_token(true, -10, SECRET);
    let reader = user_token(false, 3600, SECRET);
    let as_user = |t: Option<&str>| c.client.clone().with_token(t.map(str::to_string));
    for (token, what) in [
        (None, "no token"),
        (Some(bad_sig.as_str()), "bad signature"),
        (Some(expired.as_str()), "expired"),
    ] {
        let u = as_user(token);
        assert!(
            refused(&u.put_bytes(BUCKET, "intruder", b"x").await, false),
            "put, {what}"
        );
        assert!(
            refused(&u.get_bytes(BUCKET, name).await, false),
            "get, {what}"
        );
        assert!(refused(&u.head(BUCKET, name).await, false), "head, {what}");
        assert!(
            refused(&u.delete(BUCKET, name).await, false),
            "delete, {what}"
        );
        assert!(
            refused(&u.list_objects(BUCKET, "").await, false),
            "list, {what}"
        );
        assert!(
            refused(&u.locate(BUCKET, name).await, false),
            "locate, {what}"
        );
        assert!(refused(&u.smap().await, false), "smap, {what}");
        assert!(
            refused(&u.cluster_status().await, false),
            "show cluster, {what}"
        );
        assert!(
            refused(&u.create_bucket("sneaky").await, false),
            "create bucket, {what}"
        );
        // And straight to a target, past the proxy.
        let direct = Client::new(t0.addr.clone()).with_token(token.map(str::to_string));
        let mut conn = Conn::connect(&t0.addr, NodeId("cli".into()), T)
            .await
            .unwrap();
        conn.token = token.map(str::to_string);
        let res = conn
            .rpc(shoal_actors::proto::msg::DeleteObject {
                key: shoal_actors::types::object::ObjKey::new(BUCKET, name.clone()),
                local: true,
                stamp: None,
                smap_version: 0,
            })
            .await;
        assert!(
            refused(&res, false),
            "delete at the target, {what}: {res:?}"
        );
        assert!(
            refused(&direct.list_buckets().await, false),
            "buckets at the target"
        );
    }
    // A valid non-admin token reads and writes data, but changes nothing else.
    let u = as_user(Some(&reader));
    assert!(u.get_bytes(BUCKET, name).await.is_ok());
    let maint = LifecycleRequest::new(LifecycleOp::StartMaintenance, vec![t0.id.clone()]);
    assert!(
        refused(&u.lifecycle(maint.clone()).await, true),
        "lifecycle"
    );
    assert!(
        refused(&u.create_bucket("sneaky").await, true),
        "create bucket"
    );
    assert!(
        refused(&u.destroy_bucket(BUCKET).await, true),
        "destroy bucket"
    );
    assert!(
        refused(&u.cluster_op(ClusterOp::Shutdown).await, true),
        "cluster shutdown"
    );
    assert!(
        refused(&u.remove_from_smap(t0.id.clone()).await, true),
        "remove-from-smap"
    );
    assert!(
        refused(&u.join("127.0.0.1:1", None).await, true),
        "admin join"
    );
    assert_eq!(
        fingerprint(&c).await,
        before,
        "a refused request changed something"
    );

    // Posing as a member: a program without the secret, then one with a member's token.
    let secret = Secret::new(SECRET).unwrap();
    let primary = smap.primary.clone();
    let proxy1 = smap
        .proxies
        .keys()
        .find(|id| **id != primary)
        .unwrap()
        .clone();
    let mut forged = smap.clone();
    forged.version += 10;
    forged.targets.clear();
    let raw = |from: &NodeId, token: Option<String>| {
        let (addr, from) = (t0.addr.clone(), from.clone());
        async move {
            let mut conn = Conn::connect(&addr, from, T).await.unwrap();
            conn.token = token;
            conn
        }
    };
    let member = |id: &NodeId| auth::node_token(&secret, id, Some(&smap.uuid));
    // The primary's ID without its token.
    let mut conn = raw(&primary, None).await;
    let res = conn.rpc(MetaUpdate::smap(forged.clone())).await;
    assert!(refused(&res, false), "metasync without a token: {res:?}");
    // Another member's valid token, claimed in the primary's name.
    let mut conn = raw(&primary, member(&proxy1)).await;
    let res = conn.rpc(MetaUpdate::smap(forged.clone())).await;
    assert!(
        refused(&res, true),
        "metasync with someone else's token: {res:?}"
    );
    // A member in its own name, but not the primary: no metadata, no node actions.
    let mut conn = raw(&proxy1, member(&proxy1)).await;
    let res = conn.rpc(MetaUpdate::smap(forged.clone())).await;
    assert!(refused(&res, true), "metasync from a non-primary: {res:?}");
    let res = conn
        .rpc(NodeAction::Decommission { rm_user_data: true })
        .await;
    assert!(
        refused(&res, true),
        "node action from a non-primary: {res:?}"
    );
    // A token of the primary made to last an hour (a replay kept for later) is refused.
    let now = shoal_actors::types::unix_secs();
    let kept = jwt::sign(
        &jwt::Claims {
            sub: auth::node_subject(&primary),
            exp: now + 3600,
            admin: false,
            iat: Some(now),
            cluster: Some(smap.uuid.clone()),
            jti: None,
        },
        secret.bytes(),
    )
    .unwrap();
    let mut conn = raw(&primary, Some(kept)).await;
    let res = conn.rpc(NodeAction::Shutdown).await;
    assert!(refused(&res, false), "a long-lived node token: {res:?}");
    // Even the real primary cannot push bucket names that are not one path component.
    let bmd_v = c.client.list_buckets().await.unwrap().len() as u64 + 100;
    for hostile in ["..", "a/b", "x\0y", "", &"b".repeat(65)] {
        let mut conn = raw(&primary, member(&primary)).await;
        let upd = MetaUpdate {
            bmd: Some(Bmd {
                version: bmd_v,
                buckets: [hostile.to_string()].into(),
            }),
            ..Default::default()
        };
        let res = conn.rpc(upd).await;
        assert!(
            matches!(res, Err(Error::BadRequest(_))),
            "bucket {hostile:?}: {res:?}"
        );
    }
    assert_eq!(
        fingerprint(&c).await,
        before,
        "a forged message changed something"
    );
    assert!(c.node_status("target0").await.is_some_and(|n| n.reachable));

    // The secret is on each node only, readable by its owner alone, and in no stored metadata.
    for p in c.lc.procs.values() {
        use std::os::unix::fs::PermissionsExt;
        let key = p.data_dir.join(shoal_actors::node::SECRET_FILE);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        for f in std::fs::read_dir(&p.data_dir).unwrap().flatten() {
            if f.path() == key || f.path().is_dir() {
                continue;
            }
            let bytes = std::fs::read(f.path()).unwrap();
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "the secret is stored in {}",
                f.path().display()
            );
        }
    }

    // A new target joins through the non-primary proxy (its own token travels along), started
    // as the README says: with the secret file only, no cluster config saying auth is on.
    let via = c.lc.procs["proxy1"].addr.clone();
    let secret_file = c.dir().join("joiner-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let config = c.lc.config.take();
    c.lc.add(
        "joiner",
        Role::Target,
        free_port().unwrap(),
        1,
        &[
            "--join",
            &via,
            "--auth-secret-file",
            secret_file.to_str().unwrap(),
        ],
    )
    .unwrap();
    c.lc.config = config;
    c.wait_for("the joiner in the map", T, || async {
        c.id_opt("joiner").await.is_some()
    })
    .await;
    c.wait_rebalance_idle(T).await;
    assert_all_readable(&c.client, &expected).await;
    c.assert_properly_located(&expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_cap_do_not_starve_clients() {
    let cfg = format!("{FAST_CONFIG}\n[cluster.limits]\nmax_connections = 32\n");
    let c = TestCluster::start(1, 2, 1, &cfg).await;
    let expected = put_all(&c.client, &make_objects(20, 1, 4 << 10, 32)).await;
    let smap = c.smap().await;
    // Three times the cap of idle connections on every node, held open.
    let mut idle = Vec::new();
    for n in smap.all_nodes() {
        for _ in 0..96 {
            idle.push(tokio::net::TcpStream::connect(&n.addr).await.unwrap());
        }
    }
    // Fresh clients (new connections each) still get every answer.
    for round in 0..3 {
        let client = Client::new(c.lc.endpoint.clone());
        for (n, sum) in &expected {
            let d = client
                .get_bytes(BUCKET, n)
                .await
                .unwrap_or_else(|e| panic!("round {round}, get {n}: {e}"));
            assert_eq!(&checksum(&d), sum);
        }
    }
    drop(idle);
}

/// With auth on, the rebalance history names who started each operation (the verified
/// subject of the admin token, never what a client claims).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebalance_history_names_the_admin_who_asked() {
    let cfg = format!("{FAST_CONFIG}\n[cluster.auth]\nenabled = true\nsecret = \"{SECRET}\"\n");
    let admin = user_token(true, 3600, SECRET);
    let c = TestCluster::start_with_token(1, 2, 1, &cfg, Some(admin)).await;
    put_all(&c.client, &make_objects(20, 1, 4 << 10, 147)).await;
    let t1 = c.id("target1").await;
    c.client
        .lifecycle(LifecycleRequest::new(
            LifecycleOp::StartMaintenance,
            vec![t1.clone()],
        ))
        .await
        .unwrap();
    c.wait_rebalance_idle(Duration::from_secs(60)).await;
    let history = c.client.config().await.unwrap().history;
    let rec = history
        .iter()
        .find(|r| r.trigger.starts_with("start-maintenance"))
        .unwrap_or_else(|| panic!("{history:?}"));
    assert_eq!(rec.trigger, format!("start-maintenance t[{t1}] by ops"));
}
