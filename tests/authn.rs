//! Privileges the three ways of the seed (issue #16), on real `noded` processes: users and
//! roles of the integrated AuthN service (login, what each role may do, revocation and expiry
//! seen by every node, storage on disk), tokens of an external identity provider (RS256 and
//! ES256, allowed and foreign issuers), and S3 access keys that act as users.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use shoal_actors::Error;
use shoal_actors::client::Client;
use shoal_actors::logic::auth::jwt;
use shoal_actors::proto::msg::AuthOp;

const SECRET: &str = "authn-cluster-secret-for-the-tests";
const T: Duration = Duration::from_secs(60);

fn auth_config(extra: &str) -> String {
    format!("{FAST_CONFIG}\n[cluster.auth]\nenabled = true\nsecret = \"{SECRET}\"\n{extra}\n")
}

/// A token minted from the shared secret (`nodectl auth token --admin`): how the cluster is
/// bootstrapped before it has users.
fn shared_admin() -> String {
    let now = shoal_actors::types::unix_secs();
    jwt::sign(
        &jwt::Claims {
            sub: "ops".into(),
            exp: now + 3600,
            admin: true,
            iat: Some(now),
            cluster: None,
            jti: None,
        },
        SECRET.as_bytes(),
    )
    .unwrap()
}

/// Runs the real `nodectl` with an environment of our choosing (and nothing of the host's).
fn ctl(c: &TestCluster, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nodectl"))
        .arg("--endpoint")
        .arg(&c.lc.endpoint)
        .args(args)
        .env_remove("NODECTL_TOKEN")
        .env_remove("NODECTL_PASSWORD")
        .env("NODECTL_TOKEN_FILE", c.dir().join("no-login-token"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run nodectl")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", text(&o));
    o
}

/// Refused with exit code 3 and `why` in the message.
#[track_caller]
fn refused(o: Output, why: &str) {
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(why), "wanted {why:?} in: {err}");
}

/// An error (exit 1) saying `why`.
#[track_caller]
fn failed(o: Output, why: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(why), "wanted {why:?} in: {err}");
}

async fn login(c: &TestCluster, user: &str, password: &str, ttl_secs: u64) -> String {
    let r = Client::new(c.lc.endpoint.clone())
        .rpc(AuthOp::Login {
            user: user.into(),
            password: password.into(),
            ttl_secs,
        })
        .await
        .unwrap_or_else(|e| panic!("login {user}: {e}"));
    r.token.expect("a token")
}

/// Every node's address (proxies and targets).
async fn all_addrs(c: &TestCluster) -> Vec<String> {
    c.smap().await.all_nodes().map(|n| n.addr.clone()).collect()
}

/// Whether each node answers a request made with `token` (a query every node answers itself).
async fn answered_by(addrs: &[String], token: &str) -> Vec<shoal_actors::Result<Vec<String>>> {
    let mut out = Vec::new();
    for a in addrs {
        let cl = Client::new(a.clone()).with_token(Some(token.to_string()));
        out.push(cl.list_buckets().await);
    }
    out
}

/// Polls every node until each refuses `token` as unauthorized (never a fixed sleep).
async fn wait_refused_everywhere(c: &TestCluster, token: &str, what: &str) {
    let addrs = all_addrs(c).await;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let res = answered_by(&addrs, token).await;
        if res.iter().all(|r| matches!(r, Err(Error::Unauthorized(_)))) {
            return;
        }
        assert!(
            Instant::now() < until,
            "{what}: still accepted somewhere: {res:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a refused request must not have changed.
async fn fingerprint(c: &TestCluster) -> (u64, Vec<String>, BTreeSet<String>) {
    let names = c
        .client
        .list_objects(BUCKET, "")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    (
        c.smap().await.version,
        c.client.list_buckets().await.unwrap(),
        names,
    )
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_roles_decide_who_may_do_what_until_revoked_or_expired() {
    let admin = shared_admin();
    let c = TestCluster::start_with_token(2, 2, 1, &auth_config(""), Some(admin.clone())).await;
    let expected = put_all(&c.client, &make_objects(20, 1, 4 << 10, 161)).await;
    let (name, _) = expected.iter().next().unwrap();
    let as_admin = [("NODECTL_TOKEN", admin.as_str())];

    // Users, provisioned with the shared-secret admin token (the way in before any user).
    let users = [
        ("reader", "read-only", "reader-password-1"),
        ("bucketeer", "bucket-admin", "bucketeer-password-1"),
        ("boss", "admin", "boss-password-1"),
    ];
    for (u, role, pw) in users {
        ok(ctl(
            &c,
            &[as_admin[0], ("NODECTL_PASSWORD", pw)],
            &["auth", "user", "add", u, "--role", role],
        ));
    }
    let listed = ok(ctl(&c, &as_admin, &["auth", "user", "ls", "--json"])).stdout;

    // Bad input: clear errors, nothing changed.
    let with_pw = |pw: &'static str| [as_admin[0], ("NODECTL_PASSWORD", pw)];
    failed(
        ctl(
            &c,
            &with_pw("another-password"),
            &["auth", "user", "add", "reader", "--role", "read-only"],
        ),
        "already exists",
    );
    failed(
        ctl(
            &c,
            &with_pw("short"),
            &["auth", "user", "add", "weak", "--role", "read-only"],
        ),
        "too weak",
    );
    failed(
        ctl(
            &c,
            &with_pw(""),
            &["auth", "user", "add", "empty", "--role", "read-only"],
        ),
        "empty",
    );
    failed(
        ctl(
            &c,
            &with_pw("long-enough-pw"),
            &["auth", "user", "add", "nobody", "--role", "superuser"],
        ),
        "unknown role",
    );
    failed(
        ctl(
            &c,
            &with_pw("long-enough-pw"),
            &["auth", "user", "add", "bad/name", "--role", "read-only"],
        ),
        "bad user name",
    );
    failed(
        ctl(&c, &as_admin, &["auth", "user", "rm", "ghost"]),
        "no user",
    );
    failed(
        ctl(&c, &as_admin, &["auth", "role", "add", "r1", "write:data"]),
        "bad permission",
    );
    failed(
        ctl(&c, &as_admin, &["auth", "role", "rm", "read-only"]),
        "built in",
    );
    // The same checks hold on the wire, past nodectl's own.
    let wire = c
        .client
        .rpc(AuthOp::UserAdd {
            name: "wire".into(),
            password: String::new(),
            roles: vec!["read-only".into()],
            password_hash: "$argon2id$forged".into(),
        })
        .await;
    assert!(
        matches!(wire, Err(Error::BadRequest(ref m)) if m.contains("empty")),
        "{wire:?}"
    );
    assert_eq!(
        ok(ctl(&c, &as_admin, &["auth", "user", "ls", "--json"])).stdout,
        listed,
        "a refused change changed the users"
    );

    // Logins: a wrong password and an unknown user get the same refusal.
    let reader_file = c.dir().join("reader.token");
    let reader_env = [("NODECTL_TOKEN_FILE", reader_file.to_str().unwrap())];
    refused(
        ctl(
            &c,
            &[reader_env[0], ("NODECTL_PASSWORD", "wrong-password")],
            &["auth", "login", "reader"],
        ),
        "wrong user name or password",
    );
    refused(
        ctl(
            &c,
            &[reader_env[0], ("NODECTL_PASSWORD", "whatever-pw")],
            &["auth", "login", "mallory"],
        ),
        "wrong user name or password",
    );
    assert!(!reader_file.exists());
    ok(ctl(
        &c,
        &[reader_env[0], ("NODECTL_PASSWORD", "reader-password-1")],
        &["auth", "login", "reader"],
    ));
    assert_eq!(mode(&reader_file), 0o600, "the saved token is private");
    let reader = std::fs::read_to_string(&reader_file)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(reader.split('.').count(), 3, "a JWT: {reader}");
    for junk in ["not-a-token", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        refused(
            ctl(&c, &[("NODECTL_TOKEN", junk)], &["bucket", "ls"]),
            "unauthorized",
        );
    }

    // The read-only user: who they are, reads and lists, but writes nothing.
    let who = ok(ctl(&c, &reader_env, &["auth", "whoami", "--json"])).stdout;
    let who: serde_json::Value = serde_json::from_slice(&who).unwrap();
    assert_eq!(who["principal"]["subject"], "reader");
    assert_eq!(who["principal"]["roles"][0], "read-only");
    let before = fingerprint(&c).await;
    ok(ctl(&c, &reader_env, &["object", "ls", BUCKET]));
    let got = ok(ctl(
        &c,
        &reader_env,
        &["object", "get", &format!("{BUCKET}/{name}"), "-"],
    ))
    .stdout;
    assert_eq!(&checksum(&got), &expected[name]);
    let file = c.dir().join("payload");
    std::fs::write(&file, b"not allowed").unwrap();
    let file = file.to_str().unwrap();
    refused(
        ctl(
            &c,
            &reader_env,
            &["object", "put", file, &format!("{BUCKET}/by-reader")],
        ),
        "forbidden",
    );
    refused(
        ctl(
            &c,
            &reader_env,
            &["object", "rm", &format!("{BUCKET}/{name}")],
        ),
        "forbidden",
    );
    refused(
        ctl(&c, &reader_env, &["bucket", "create", "readers-bucket"]),
        "forbidden",
    );
    refused(
        ctl(
            &c,
            &[reader_env[0], ("NODECTL_PASSWORD", "long-enough-pw")],
            &["auth", "user", "add", "x", "--role", "admin"],
        ),
        "forbidden",
    );
    assert_eq!(
        fingerprint(&c).await,
        before,
        "a refused request changed something"
    );

    // The bucket admin: creates and destroys buckets, writes, but no maintenance.
    let bucketeer = login(&c, "bucketeer", "bucketeer-password-1", 0).await;
    let b_env = [("NODECTL_TOKEN", bucketeer.as_str())];
    ok(ctl(&c, &b_env, &["bucket", "create", "scratch"]));
    ok(ctl(&c, &b_env, &["object", "put", file, "scratch/x"]));
    // A bucket that holds objects is destroyed only when confirmed (no terminal: --yes).
    let o = ctl(&c, &b_env, &["bucket", "rm", "scratch"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("rerun with --yes"), "{}", text(&o));
    ok(ctl(&c, &b_env, &["object", "get", "scratch/x", "-"]));
    ok(ctl(&c, &b_env, &["bucket", "rm", "scratch", "--yes"]));
    // An empty one needs no confirmation.
    ok(ctl(&c, &b_env, &["bucket", "create", "scratch2"]));
    ok(ctl(&c, &b_env, &["bucket", "rm", "scratch2"]));
    let t1 = c.id("target1").await;
    let before = fingerprint(&c).await;
    let o = ctl(
        &c,
        &b_env,
        &[
            "cluster",
            "add-remove-nodes",
            "start-maintenance",
            &t1.0,
            "--yes",
        ],
    );
    refused(o, "cluster-admin");
    assert_eq!(fingerprint(&c).await, before);
    assert!(
        c.smap().await.targets[&t1].is_active(),
        "no maintenance flag"
    );

    // The cluster admin can.
    let boss = login(&c, "boss", "boss-password-1", 0).await;
    let boss_env = [("NODECTL_TOKEN", boss.as_str())];
    ok(ctl(
        &c,
        &boss_env,
        &[
            "cluster",
            "add-remove-nodes",
            "start-maintenance",
            &t1.0,
            "--yes",
        ],
    ));
    c.wait_rebalance_idle(T).await;
    ok(ctl(
        &c,
        &boss_env,
        &[
            "cluster",
            "add-remove-nodes",
            "stop-maintenance",
            &t1.0,
            "--yes",
        ],
    ));
    c.wait_rebalance_idle(T).await;
    assert_all_readable(&c.client, &expected).await;

    // A revoked token stops working at once on every node. Nobody but its holder or an admin
    // may revoke it.
    let addrs = all_addrs(&c).await;
    assert_eq!(addrs.len(), 4);
    assert!(answered_by(&addrs, &reader).await.iter().all(|r| r.is_ok()));
    refused(
        ctl(&c, &b_env, &["auth", "token", "revoke", &reader]),
        "forbidden",
    );
    ok(ctl(&c, &boss_env, &["auth", "token", "revoke", &reader]));
    wait_refused_everywhere(&c, &reader, "revoked token").await;
    refused(ctl(&c, &reader_env, &["object", "ls", BUCKET]), "revoked");

    // Logout revokes the holder's own token and removes the saved one.
    let b_file = c.dir().join("bucketeer.token");
    std::fs::write(&b_file, &bucketeer).unwrap();
    ok(ctl(
        &c,
        &[("NODECTL_TOKEN_FILE", b_file.to_str().unwrap())],
        &["auth", "logout"],
    ));
    assert!(!b_file.exists());
    wait_refused_everywhere(&c, &bucketeer, "logged-out token").await;

    // An expired token too.
    let brief = login(&c, "boss", "boss-password-1", 2).await;
    wait_refused_everywhere(&c, &brief, "expired token").await;

    // A removed user's tokens stop working, and a new login fails.
    let again = login(&c, "reader", "reader-password-1", 0).await;

    // "Log out everywhere": every token of a user issued until now, and only an admin may;
    // a login right after works at once.
    let as_reader = c.client.clone().with_token(Some(again.clone()));
    let sneaky = as_reader
        .rpc(AuthOp::Revoke {
            token: Some(again.clone()),
            jti: None,
            user: Some("boss".into()),
        })
        .await;
    assert!(matches!(sneaky, Err(Error::Forbidden(_))), "{sneaky:?}");
    let boss2 = login(&c, "boss", "boss-password-1", 0).await;
    assert!(answered_by(&addrs, &boss).await.iter().all(|r| r.is_ok()));
    ok(ctl(
        &c,
        &as_admin,
        &["auth", "token", "revoke", "--user", "boss"],
    ));
    wait_refused_everywhere(&c, &boss, "boss's first token").await;
    wait_refused_everywhere(&c, &boss2, "boss's second token").await;
    let boss = login(&c, "boss", "boss-password-1", 0).await;
    let boss_env = [("NODECTL_TOKEN", boss.as_str())];
    let res = answered_by(&addrs, &boss).await;
    assert!(
        res.iter().all(|r| r.is_ok()),
        "a new login after it: {res:?}"
    );

    ok(ctl(&c, &boss_env, &["auth", "user", "rm", "reader"]));
    wait_refused_everywhere(&c, &again, "removed user's token").await;

    // On disk: argon2 hashes only, in metadata only its owner can read.
    let passwords: Vec<&str> = users.iter().map(|(_, _, pw)| *pw).collect();
    for (n, p) in &c.lc.procs {
        let cfg = p.data_dir.join(shoal_actors::node::meta::CONFIG_FILE);
        assert_eq!(mode(&cfg), 0o600, "{n}: {}", cfg.display());
        let bytes = std::fs::read(&cfg).unwrap();
        let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(has("$argon2id$"), "{n}: no password hash in the config");
        for pw in &passwords {
            assert!(!has(pw), "{n}: a plaintext password in {}", cfg.display());
        }
        assert!(!has(&boss), "{n}: a token stored");
    }

    // The config section in the seed's shape, secrets masked.
    let v: serde_json::Value = serde_json::from_slice(
        &ok(ctl(&c, &boss_env, &["config", "cluster", "auth", "--json"])).stdout,
    )
    .unwrap();
    let a = &v["auth"];
    assert_eq!(a["enabled"], true);
    assert_eq!(a["signature"]["method"], "hmac");
    assert_eq!(a["signature"]["key"], "**********");
    assert_eq!(a["required_claims"]["aud"], serde_json::Value::Null);
    assert_eq!(a["oidc"]["allowed_iss"], serde_json::Value::Null);
    assert_eq!(a["oidc"]["issuer_ca_bundle"], "-");
    assert!(
        a["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["password_hash"] == "**********")
    );
    let shown = v.to_string();
    assert!(
        !shown.contains(SECRET) && !shown.contains("$argon2"),
        "{shown}"
    );
}

// ---- external identity providers -----------------------------------------------------------

/// A key pair made with the `openssl` CLI: (private PEM, public PEM).
fn keypair(dir: &Path, name: &str, ec: bool) -> (String, String) {
    let key = dir.join(format!("{name}.key"));
    let mut cmd = Command::new("openssl");
    cmd.arg("genpkey");
    if ec {
        cmd.args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    } else {
        cmd.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    }
    assert!(
        cmd.arg("-out")
            .arg(&key)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    (
        std::fs::read_to_string(&key).unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

/// A token as an identity provider would sign it.
fn idp_token(alg: &str, private: &str, iss: &str, groups: &[&str], exp_in: i64) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let now = shoal_actors::types::unix_secs() as i64;
    let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#);
    let claims = serde_json::json!({
        "iss": iss, "sub": "erin@example.com", "aud": ["shoal"],
        "exp": now + exp_in, "iat": now, "groups": groups,
    });
    let msg = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    // Signed by the openssl CLI, as a provider's own stack would: nothing of Shoal's involved.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    std::fs::write(&key, private).unwrap();
    let input = dir.path().join("msg");
    std::fs::write(&input, &msg).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sig = if alg == "ES256" {
        der_to_raw(&out.stdout)
    } else {
        out.stdout
    };
    format!("{msg}.{}", b64(&sig))
}

/// ECDSA signatures come from openssl as DER; JWS wants r || s, 32 bytes each.
fn der_to_raw(der: &[u8]) -> Vec<u8> {
    // SEQUENCE { INTEGER r, INTEGER s }, short lengths for P-256.
    let mut i = 2;
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[i], 0x02, "INTEGER");
        let len = der[i + 1] as usize;
        let int = &der[i + 2..i + 2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0u8, 32 - int.len()));
        out.extend_from_slice(int);
        i += 2 + len;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_a_configured_issuer_are_accepted_and_mapped_to_roles() {
    let keys = tempfile::tempdir().unwrap();
    let (rsa_priv, rsa_pub) = keypair(keys.path(), "rsa", false);
    let (ec_priv, ec_pub) = keypair(keys.path(), "ec", true);
    let (foreign_priv, _) = keypair(keys.path(), "foreign", false);
    let bundle = keys.path().join("issuers.pem");
    std::fs::write(&bundle, format!("{rsa_pub}{ec_pub}")).unwrap();
    let idp = "https://idp.example.test";
    let extra = format!(
        "[cluster.auth.required_claims]\naud = [\"shoal\"]\n\
         [cluster.auth.oidc]\nallowed_iss = [\"{idp}\"]\nissuer_ca_bundle = \"{}\"\n\
         [cluster.auth.oidc.role_map]\nstorage-admins = \"admin\"\nreaders = \"read-only\"\n",
        bundle.display()
    );
    let admin = shared_admin();
    let c = TestCluster::start_http(1, 2, 1, &auth_config(&extra), Some(admin.clone()), &[]).await;
    let expected = put_all(&c.client, &make_objects(10, 1, 2 << 10, 162)).await;
    let (name, _) = expected.iter().next().unwrap();
    let as_user = |t: &str| c.client.clone().with_token(Some(t.to_string()));

    // RS256 from the configured issuer, group "readers": reads and lists, no writes.
    let reader = idp_token("RS256", &rsa_priv, idp, &["readers", "unrelated"], 600);
    let u = as_user(&reader);
    assert_eq!(
        checksum(&u.get_bytes(BUCKET, name).await.unwrap()),
        expected[name]
    );
    assert!(u.list_objects(BUCKET, "").await.is_ok());
    assert!(matches!(
        u.put_bytes(BUCKET, "idp-put", b"x").await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        u.create_bucket("idp").await,
        Err(Error::Forbidden(_))
    ));
    let who = ok(ctl(
        &c,
        &[("NODECTL_TOKEN", reader.as_str())],
        &["auth", "whoami", "--json"],
    ))
    .stdout;
    let who: serde_json::Value = serde_json::from_slice(&who).unwrap();
    assert_eq!(who["principal"]["subject"], "erin@example.com");
    assert_eq!(who["principal"]["kind"], "external");
    assert_eq!(who["principal"]["roles"][0], "read-only");

    // ES256, group "storage-admins": a cluster admin.
    let boss = idp_token("ES256", &ec_priv, idp, &["storage-admins"], 600);
    let b = as_user(&boss);
    b.create_bucket("idp-bucket").await.unwrap();
    b.put_bytes("idp-bucket", "o", b"by the idp admin")
        .await
        .unwrap();

    // Refused as unauthorized: another issuer (its own key), our key but a foreign issuer, a
    // key no trusted issuer has, and an expired token.
    let before = fingerprint(&c).await;
    for (t, what) in [
        (
            idp_token(
                "RS256",
                &foreign_priv,
                "https://evil.example",
                &["storage-admins"],
                600,
            ),
            "foreign issuer",
        ),
        (
            idp_token(
                "RS256",
                &rsa_priv,
                "https://evil.example",
                &["storage-admins"],
                600,
            ),
            "issuer not allowed",
        ),
        (
            idp_token("RS256", &foreign_priv, idp, &["storage-admins"], 600),
            "unknown key",
        ),
        (
            idp_token("RS256", &rsa_priv, idp, &["storage-admins"], -600),
            "expired",
        ),
    ] {
        let res = as_user(&t).create_bucket("intruder").await;
        assert!(
            matches!(res, Err(Error::Unauthorized(_))),
            "{what}: {res:?}"
        );
        let res = as_user(&t).get_bytes(BUCKET, name).await;
        assert!(
            matches!(res, Err(Error::Unauthorized(_))),
            "{what}: {res:?}"
        );
        refused(
            ctl(&c, &[("NODECTL_TOKEN", t.as_str())], &["bucket", "ls"]),
            "unauthorized",
        );
    }
    assert_eq!(fingerprint(&c).await, before);

    // The same through the native REST API, with the same rules.
    let http = c.http_url("proxy0");
    let curl = |token: &str, method: &str, path: &str| -> String {
        let mut cmd = Command::new("curl");
        if method == "DELETE" {
            cmd.args(["-d", r#"{"action":"destroy-bck"}"#]);
        }
        let out = cmd
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
            .arg("-H")
            .arg(format!("Authorization: Bearer {token}"))
            .arg(format!("{http}{path}"))
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(curl(&reader, "GET", "/v1/buckets?provider=ais"), "200");
    let foreign = idp_token(
        "RS256",
        &foreign_priv,
        "https://evil.example",
        &["storage-admins"],
        600,
    );
    assert_eq!(curl(&foreign, "GET", "/v1/buckets?provider=ais"), "401");
    assert_eq!(
        curl(&reader, "DELETE", "/v1/buckets/idp-bucket?provider=ais"),
        "403"
    );
    assert!(
        c.client
            .list_buckets()
            .await
            .unwrap()
            .contains(&"idp-bucket".to_string())
    );
    assert_eq!(
        curl(&boss, "DELETE", "/v1/buckets/idp-bucket?provider=ais"),
        "200"
    );
    assert!(
        !c.client
            .list_buckets()
            .await
            .unwrap()
            .contains(&"idp-bucket".to_string())
    );

    // The section shows the issuer settings.
    let v = c.nodectl_json(&["--token", &admin, "config", "cluster", "auth"]);
    assert_eq!(v["auth"]["oidc"]["allowed_iss"][0], idp);
    assert_eq!(v["auth"]["required_claims"]["aud"][0], "shoal");
    assert_eq!(
        v["auth"]["oidc"]["issuer_ca_bundle"],
        bundle.to_str().unwrap()
    );
}

// ---- S3 access keys mapped to users ----------------------------------------------------------

/// boto3 against the cluster as one access key; `mode` says what the key's user may do, and the
/// script checks both what works and what is refused (S3's AccessDenied).
const S3_MATRIX: &str = r#"
import sys, boto3
from botocore.config import Config
from botocore.exceptions import ClientError
ep, ak, sk, mode, obj = sys.argv[1:6]
s3 = boto3.client("s3", endpoint_url=ep + "/s3", aws_access_key_id=ak,
                  aws_secret_access_key=sk, region_name="us-east-1",
                  config=Config(retries={"max_attempts": 1}))
def denied(what, fn):
    try:
        fn()
    except ClientError as e:
        code = e.response["Error"]["Code"]
        assert code == "AccessDenied", (what, code)
        print("denied", what)
        return
    raise SystemExit(f"{mode}: {what} was allowed")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="data").get("Contents", [])]
assert obj in keys, keys
assert len(s3.get_object(Bucket="data", Key=obj)["Body"].read()) > 0
if mode == "ro":
    denied("put", lambda: s3.put_object(Bucket="data", Key="by-ro", Body=b"x"))
    denied("delete", lambda: s3.delete_object(Bucket="data", Key=obj))
    denied("create bucket", lambda: s3.create_bucket(Bucket="ro-bucket"))
elif mode == "rw":
    s3.put_object(Bucket="data", Key="by-rw", Body=b"rw")
    assert s3.get_object(Bucket="data", Key="by-rw")["Body"].read() == b"rw"
    denied("create bucket", lambda: s3.create_bucket(Bucket="rw-bucket"))
elif mode == "bucket-admin":
    s3.create_bucket(Bucket="s3-scratch")
    s3.put_object(Bucket="s3-scratch", Key="k", Body=b"v")
    s3.delete_object(Bucket="s3-scratch", Key="k")
    s3.delete_bucket(Bucket="s3-scratch")
print("done", mode)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_access_keys_act_with_their_users_roles() {
    use common::clients::{self, cmd, run};
    let admin = shared_admin();
    let c = TestCluster::start_http(1, 2, 1, &auth_config(""), Some(admin.clone()), &[]).await;
    let expected = put_all(&c.client, &make_objects(10, 1, 2 << 10, 163)).await;
    let (name, _) = expected.iter().next().unwrap();
    let as_admin = [("NODECTL_TOKEN", admin.as_str())];
    let mut keys = Vec::new();
    for (u, role) in [
        ("ro-user", "read-only"),
        ("rw-user", "read-write"),
        ("ba-user", "bucket-admin"),
    ] {
        ok(ctl(
            &c,
            &[as_admin[0], ("NODECTL_PASSWORD", "a-good-password")],
            &["auth", "user", "add", u, "--role", role],
        ));
        let v: serde_json::Value = serde_json::from_slice(
            &ok(ctl(
                &c,
                &as_admin,
                &["auth", "s3-key", "create", "--user", u, "--json"],
            ))
            .stdout,
        )
        .unwrap();
        let k = &v["created"];
        keys.push((
            u,
            role,
            k["access_key"].as_str().unwrap().to_string(),
            k["secret_key"].as_str().unwrap().to_string(),
        ));
    }
    failed(
        ctl(
            &c,
            &as_admin,
            &["auth", "s3-key", "create", "--user", "ghost"],
        ),
        "no user",
    );
    let listed = c.nodectl_json(&["--token", &admin, "auth", "s3-key", "ls"]);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 3, "{listed}");

    let p = c.http_url("proxy0");
    let home = tempfile::tempdir().unwrap();
    let bin = clients::venv_bin();
    let matrix = |ak: &str, sk: &str, mode: &str| {
        run(
            mode,
            cmd(bin.join("python"), home.path())
                .arg("-c")
                .arg(S3_MATRIX)
                .args([p.as_str(), ak, sk, mode, name.as_str()]),
        )
    };
    let before = fingerprint(&c).await;
    let (_, _, ak, sk) = &keys[0];
    let out = matrix(ak, sk, "ro").unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("done ro"), "{out}");
    assert_eq!(
        fingerprint(&c).await,
        before,
        "a refused S3 request changed something"
    );
    for (_, mode, ak, sk) in &keys[1..] {
        let mode = if *mode == "read-write" { "rw" } else { mode };
        let out = matrix(ak, sk, mode).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.contains(&format!("done {mode}")), "{out}");
    }
    assert!(c.client.head(BUCKET, "by-rw").await.is_ok());
    assert!(
        !c.client
            .list_buckets()
            .await
            .unwrap()
            .contains(&"s3-scratch".to_string())
    );

    // A removed user's keys go with them.
    ok(ctl(&c, &as_admin, &["auth", "user", "rm", "ro-user"]));
    let out = matrix(ak, sk, "ro");
    assert!(
        out.as_ref()
            .is_err_and(|e| e.contains("InvalidAccessKeyId")),
        "{out:?}"
    );
}
