//! Bad input at the HTTP front door, with raw requests on a socket: each gets a proper S3 or
//! AIStore error and nothing is stored (DESIGN §13). And with auth on: SigV4 (header,
//! presigned, streaming `aws-chunked`) against access keys, bearer tokens on the native API.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::clients::{self, cmd, run};
use common::{BUCKET, FAST_CONFIG, TestCluster};

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Sends `req` (a whole request, `Connection: close`) and reads the answer to the end.
fn raw(base: &str, req: &[u8], half_close: bool) -> Reply {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // A server may answer (and close) before reading a whole request it refuses.
    let _ = s.write_all(req);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn req(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

fn with_len(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    let mut h = headers.to_vec();
    h.push(("Content-Length", &len));
    req(method, path, &h, body)
}

#[track_caller]
fn expect_s3(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}\n{}", r.head, r.body);
    assert!(
        r.body.contains(&format!("<Code>{code}</Code>")),
        "expected S3 code {code}: {}\n{}",
        r.head,
        r.body
    );
}

#[track_caller]
fn expect_ais(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{}\n{}", r.head, r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|_| panic!("not an AIStore JSON error: {}", r.body));
    assert_eq!(v["status"], status, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

/// Starts a multipart upload of `data/<key>` through the S3 API; its upload ID.
fn create_upload(base: &str, key: &str) -> String {
    let r = raw(
        base,
        &with_len("POST", &format!("/s3/data/{key}?uploads"), &[], b""),
        false,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .split("<UploadId>")
        .nth(1)
        .and_then(|s| s.split("</UploadId>").next())
        .expect("an upload ID")
        .to_string()
}

async fn absent(tc: &TestCluster, name: &str) {
    match tc.client.head(BUCKET, name).await {
        Err(shoal_actors::Error::NotFound(_)) => {}
        other => panic!("{name} should not exist: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_proper_errors_and_stores_nothing() {
    let tc = TestCluster::start_http(1, 2, 1, FAST_CONFIG, None, &["--s3-domain", "s3.test"]).await;
    let p = tc.http_url("proxy0");
    // Native object data goes to targets (a proxy redirects); ask one directly.
    let t = tc.http_url("target0");
    tc.client
        .put_bytes(BUCKET, "ten", b"0123456789")
        .await
        .unwrap();

    // Virtual-host-style addressing (the bucket in the Host header), under /s3 and at the root.
    for path in ["/s3/ten", "/ten"] {
        let r = raw(
            &p,
            format!("GET {path} HTTP/1.1\r\nHost: data.s3.test\r\nConnection: close\r\n\r\n")
                .as_bytes(),
            false,
        );
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "0123456789"),
            "{path}: {}",
            r.head
        );
    }

    // A proxy redirects a native PUT without inviting its body: no `100 Continue`, so a client
    // that waits for one (curl, and the body never sent here) goes to the target directly.
    let r = raw(
        &p,
        &req(
            "PUT",
            "/v1/objects/data/big",
            &[("Content-Length", "5000000"), ("Expect", "100-continue")],
            b"",
        ),
        false,
    );
    assert_eq!(r.status, 307, "{}", r.head);
    assert!(!r.head.contains("100 Continue"), "{}", r.head);

    // Malformed XML: DeleteObjects and CompleteMultipartUpload.
    let r = raw(
        &p,
        &with_len(
            "POST",
            "/s3/data?delete",
            &[],
            b"<Delete><Object><Key>ten</Key></Obj",
        ),
        false,
    );
    expect_s3(&r, 400, "MalformedXML");
    let id = create_upload(&p, "mpu");
    let r = raw(
        &p,
        &with_len(
            "POST",
            &format!("/s3/data/mpu?uploadId={id}"),
            &[],
            b"<Complete<<",
        ),
        false,
    );
    expect_s3(&r, 400, "MalformedXML");
    absent(&tc, "mpu").await;
    tc.client.head(BUCKET, "ten").await.expect("ten untouched");

    // Wrong and malformed Content-MD5.
    let zero_md5 = "AAAAAAAAAAAAAAAAAAAAAA==";
    let r = raw(
        &p,
        &with_len(
            "PUT",
            "/s3/data/md5",
            &[("Content-MD5", zero_md5)],
            b"hello",
        ),
        false,
    );
    expect_s3(&r, 400, "BadDigest");
    let r = raw(
        &p,
        &with_len(
            "PUT",
            "/s3/data/md5",
            &[("Content-MD5", "!!notbase64")],
            b"hello",
        ),
        false,
    );
    expect_s3(&r, 400, "InvalidDigest");
    let r = raw(
        &t,
        &with_len(
            "PUT",
            "/v1/objects/data/md5",
            &[("Content-MD5", zero_md5)],
            b"hello",
        ),
        false,
    );
    expect_ais(&r, 400);
    absent(&tc, "md5").await;

    // Out-of-range reads: 416 with the object's size.
    let r = raw(
        &p,
        &req("GET", "/s3/data/ten", &[("Range", "bytes=20-30")], b""),
        false,
    );
    expect_s3(&r, 416, "InvalidRange");
    let r = raw(
        &t,
        &req(
            "GET",
            "/v1/objects/data/ten",
            &[("Range", "bytes=20-30")],
            b"",
        ),
        false,
    );
    expect_ais(&r, 416);
    assert!(
        r.head.to_lowercase().contains("content-range: bytes */10"),
        "{}",
        r.head
    );

    // A body without a Content-Length, and one shorter than it says.
    let chunked = b"5\r\nhello\r\n0\r\n\r\n";
    let r = raw(
        &p,
        &req(
            "PUT",
            "/s3/data/nolen",
            &[("Transfer-Encoding", "chunked")],
            chunked,
        ),
        false,
    );
    expect_s3(&r, 411, "MissingContentLength");
    let r = raw(
        &t,
        &req(
            "PUT",
            "/v1/objects/data/nolen",
            &[("Transfer-Encoding", "chunked")],
            chunked,
        ),
        false,
    );
    expect_ais(&r, 411);
    absent(&tc, "nolen").await;
    for (base, path) in [(&p, "/s3/data/short"), (&t, "/v1/objects/data/short")] {
        let r = raw(
            base,
            &req(
                "PUT",
                path,
                &[("Content-Length", "100000")],
                b"only a few bytes",
            ),
            true,
        );
        assert!(r.status == 0 || r.status >= 400, "{path}: {}", r.head);
    }
    absent(&tc, "short").await;

    // Headers far too large: refused before any handler runs.
    let big = "x".repeat(100 * 1024);
    let r = raw(
        &p,
        &req("GET", "/s3/data/ten", &[("X-Big", &big)], b""),
        false,
    );
    assert_eq!(r.status, 431, "{}", r.head);

    // Operations Shoal does not serve: 501 with S3's code.
    let r = raw(&p, &req("GET", "/s3/data?acl", &[], b""), false);
    expect_s3(&r, 501, "NotImplemented");
    let r = raw(&p, &req("DELETE", "/s3/data?cors", &[], b""), false);
    expect_s3(&r, 501, "NotImplemented");
    let r = raw(
        &p,
        &with_len("PUT", "/v1/cluster", &[], br#"{"action":"bogus"}"#),
        false,
    );
    expect_ais(&r, 501);

    // Invalid bucket names, in both APIs; nothing created.
    let r = raw(&p, &with_len("PUT", "/s3/bad!name", &[], b""), false);
    expect_s3(&r, 400, "InvalidBucketName");
    let r = raw(
        &p,
        &with_len(
            "POST",
            "/v1/buckets/bad!name",
            &[],
            br#"{"action":"create-bck"}"#,
        ),
        false,
    );
    expect_ais(&r, 400);
    let r = raw(
        &p,
        &with_len("POST", "/v1/buckets/newb", &[], b"{not json"),
        false,
    );
    expect_ais(&r, 400);
    let buckets = tc.client.list_buckets().await.unwrap();
    assert_eq!(
        buckets,
        vec![BUCKET.to_string()],
        "nothing else was created"
    );

    // Broken aws-chunked framing (auth off: decoded, not verified).
    let r = raw(
        &p,
        &with_len(
            "PUT",
            "/s3/data/badchunk",
            &[
                ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
                ("x-amz-decoded-content-length", "5"),
                ("Content-Encoding", "aws-chunked"),
            ],
            b"zz\r\nhello\r\n0\r\n\r\n",
        ),
        false,
    );
    assert!(r.status >= 400, "{}", r.head);
    absent(&tc, "badchunk").await;

    // Missing things, in each API's words.
    let r = raw(&p, &req("GET", "/s3/data/nope", &[], b""), false);
    expect_s3(&r, 404, "NoSuchKey");
    let r = raw(&p, &req("GET", "/s3/nobucket/x", &[], b""), false);
    expect_s3(&r, 404, "NoSuchBucket");
    let r = raw(&t, &req("GET", "/v1/objects/data/nope", &[], b""), false);
    expect_ais(&r, 404);
    assert!(r.body.contains("ais://data/nope"), "{}", r.body);

    // A well-formed streaming upload with any signature is accepted while auth is off.
    let bin = clients::venv_bin();
    let home = tempfile::tempdir().unwrap();
    let out = run(
        "chunked put",
        cmd(bin.join("python"), home.path())
            .arg(clients::root().join("tests/clients/chunked_put.py"))
            .args([&p, BUCKET, "chunked", "anykey", "anysecret", "300000"]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.starts_with("200"), "{out}");
    assert_eq!(
        tc.client.head(BUCKET, "chunked").await.unwrap().size,
        300_000
    );
}

/// Writes the gateway cannot honour as asked are refused and change nothing: a conditional put
/// or complete, an aws-chunked body longer than it declared, an upload whose metadata its
/// object could not carry. A multipart upload's own records are not objects: no client reads,
/// copies or deletes them by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_cannot_be_honoured_are_refused_and_uploads_stay_private() {
    let tc = TestCluster::start_http(1, 1, 1, FAST_CONFIG, None, &[]).await;
    let p = tc.http_url("proxy0");
    let t = tc.http_url("target0");

    for (name, cond) in [
        ("c1", ("If-None-Match", "*")),
        ("c2", ("If-Match", "\"abc\"")),
    ] {
        let r = raw(
            &p,
            &with_len("PUT", &format!("/s3/data/{name}"), &[cond], b"x"),
            false,
        );
        expect_s3(&r, 501, "NotImplemented");
        absent(&tc, name).await;
    }

    let r = raw(
        &p,
        &with_len(
            "PUT",
            "/s3/data/long",
            &[
                ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
                ("x-amz-decoded-content-length", "5"),
                ("Content-Encoding", "aws-chunked"),
            ],
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        ),
        false,
    );
    assert_eq!(r.status, 400, "{}\n{}", r.head, r.body);
    absent(&tc, "long").await;

    let big = "v".repeat(20_000);
    let r = raw(
        &p,
        &with_len(
            "POST",
            "/s3/data/meta-heavy?uploads",
            &[("x-amz-meta-big", &big)],
            b"",
        ),
        false,
    );
    expect_s3(&r, 400, "InvalidArgument");

    let id = create_upload(&p, "mpu");
    let record = format!(".shoal-mpu/{id}/meta");
    tc.client
        .head(BUCKET, &record)
        .await
        .expect("the upload's record");
    let r = raw(
        &p,
        &req("GET", &format!("/s3/data/{record}"), &[], b""),
        false,
    );
    expect_s3(&r, 404, "NoSuchKey");
    let r = raw(
        &p,
        &req("HEAD", &format!("/s3/data/{record}"), &[], b""),
        false,
    );
    assert_eq!(r.status, 404, "{}", r.head);
    let r = raw(
        &t,
        &req("GET", &format!("/v1/objects/data/{record}"), &[], b""),
        false,
    );
    expect_ais(&r, 404);
    let r = raw(
        &p,
        &with_len(
            "PUT",
            "/s3/data/copy",
            &[("x-amz-copy-source", &format!("/data/{record}"))],
            b"",
        ),
        false,
    );
    expect_s3(&r, 404, "NoSuchKey");
    absent(&tc, "copy").await;
    let r = raw(
        &p,
        &req("DELETE", &format!("/s3/data/{record}"), &[], b""),
        false,
    );
    assert_eq!(r.status, 204, "{}", r.head);
    let del = format!("<Delete><Object><Key>{record}</Key></Object></Delete>");
    let r = raw(
        &p,
        &with_len("POST", "/s3/data?delete", &[], del.as_bytes()),
        false,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = raw(
        &t,
        &req("DELETE", &format!("/v1/objects/data/{record}"), &[], b""),
        false,
    );
    expect_ais(&r, 404);
    tc.client
        .head(BUCKET, &record)
        .await
        .expect("the upload's record is still there");
    let r = raw(&p, &req("GET", "/s3/data?uploads", &[], b""), false);
    assert!(
        r.body.contains(&id),
        "the upload is still listed: {}",
        r.body
    );

    // Uploads page: each page starts after the markers of the one before, none twice.
    let mut all = vec![id, create_upload(&p, "mpu"), create_upload(&p, "zz")];
    all.sort();
    let tag = |body: &str, t: &str| -> Option<String> {
        let open = format!("<{t}>");
        Some(
            body.split(&open)
                .nth(1)?
                .split(&format!("</{t}>"))
                .next()?
                .to_string(),
        )
    };
    let mut seen = Vec::new();
    let mut query = "uploads&max-uploads=2".to_string();
    for _ in 0..3 {
        let r = raw(
            &p,
            &req("GET", &format!("/s3/data?{query}"), &[], b""),
            false,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        seen.extend(
            r.body
                .split("<UploadId>")
                .skip(1)
                .filter_map(|s| s.split("</UploadId>").next())
                .map(str::to_string),
        );
        if tag(&r.body, "IsTruncated").as_deref() != Some("true") {
            break;
        }
        let (k, u) = (
            tag(&r.body, "NextKeyMarker").expect("a next key marker"),
            tag(&r.body, "NextUploadIdMarker").expect("a next upload ID marker"),
        );
        query = format!("uploads&max-uploads=2&key-marker={k}&upload-id-marker={u}");
    }
    seen.sort();
    assert_eq!(seen, all, "every upload once, over pages of 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_and_tokens_when_auth_is_on() {
    use shoal_actors::logic::auth::jwt;
    let secret = "gateway-test-secret";
    let cfg = format!("{FAST_CONFIG}\n[cluster.auth]\nenabled = true\nsecret = \"{secret}\"\n");
    let home = tempfile::tempdir().unwrap();
    let keys = home.path().join("s3-keys");
    std::fs::write(&keys, "# test keys\nAKTEST SKTEST\n").unwrap();
    let mint = |admin: bool| {
        jwt::sign(
            &jwt::Claims {
                sub: if admin { "ops" } else { "user" }.into(),
                exp: shoal_actors::types::unix_secs() + 600,
                admin,
                iat: None,
                cluster: None,
                jti: None,
            },
            secret.as_bytes(),
        )
        .unwrap()
    };
    let (admin, user) = (mint(true), mint(false));
    let tc = TestCluster::start_http(
        1,
        2,
        1,
        &cfg,
        Some(admin.clone()),
        &["--s3-keys", keys.to_str().unwrap()],
    )
    .await;
    let p = tc.http_url("proxy0");
    let bin = clients::venv_bin();

    // S3 with boto3: the right key works; wrong, unknown and missing signatures do not.
    let out = run(
        "auth_s3.py",
        cmd(bin.join("python"), home.path())
            .current_dir(home.path())
            .arg(clients::root().join("tests/clients/auth_s3.py"))
            .args([&p, "AKTEST", "SKTEST"]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{out}");
    let url_of = |tag: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{tag} ")))
            .unwrap_or_else(|| panic!("no {tag} URL in:\n{out}"))
            .to_string()
    };
    let fetch = |u: &str| {
        run(
            "curl",
            cmd("curl", home.path()).args(["-s", "-o", "/dev/null", "-w", "%{http_code}", u]),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(fetch(&url_of("presigned")), "200", "a SigV4 presigned GET");
    assert_eq!(
        fetch(&url_of("tampered")),
        "403",
        "a tampered presigned GET"
    );
    let r = raw(&p, &req("GET", "/s3/authb/k", &[], b""), false);
    expect_s3(&r, 403, "AccessDenied");

    // Streaming SigV4 (aws-chunked): verified chunk by chunk.
    let chunked = |key: &str, secret: &str, tamper: bool| {
        let mut c = cmd(bin.join("python"), home.path());
        c.arg(clients::root().join("tests/clients/chunked_put.py"))
            .args([&p, "authb", key, "AKTEST", secret, "200000"]);
        if tamper {
            c.arg("tamper");
        }
        run("chunked put", &mut c).unwrap_or_else(|e| panic!("{e}"))
    };
    let ok = chunked("streamed", "SKTEST", false);
    assert!(ok.starts_with("200"), "{ok}");
    assert_eq!(
        tc.client.head("authb", "streamed").await.unwrap().size,
        200_000
    );
    let bad = chunked("tampered", "SKTEST", true);
    assert!(bad.starts_with('4'), "a tampered chunk was accepted: {bad}");
    let wrong = chunked("wrongkey", "nope", false);
    assert!(wrong.starts_with("403"), "{wrong}");
    for k in ["tampered", "wrongkey"] {
        assert!(
            matches!(
                tc.client.head("authb", k).await,
                Err(shoal_actors::Error::NotFound(_))
            ),
            "{k} was stored"
        );
    }

    // Native: bearer tokens, admin rights for bucket and lifecycle changes.
    let bearer = |t: &str| format!("Bearer {t}");
    let r = raw(&p, &req("GET", "/v1/buckets?provider=ais", &[], b""), false);
    expect_ais(&r, 401);
    let r = raw(
        &p,
        &req(
            "GET",
            "/v1/buckets?provider=ais",
            &[("Authorization", &bearer("junk"))],
            b"",
        ),
        false,
    );
    expect_ais(&r, 401);
    let r = raw(
        &p,
        &req(
            "GET",
            "/v1/buckets?provider=ais",
            &[("Authorization", &bearer(&user))],
            b"",
        ),
        false,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("authb"), "{}", r.body);
    let create = br#"{"action":"create-bck"}"#;
    let r = raw(
        &p,
        &with_len(
            "POST",
            "/v1/buckets/userb",
            &[("Authorization", &bearer(&user))],
            create,
        ),
        false,
    );
    expect_ais(&r, 403);
    let t0 = tc.id("target0").await;
    let maint = format!(r#"{{"action":"start-maintenance","value":{{"sid":"{t0}"}}}}"#);
    let r = raw(
        &p,
        &with_len(
            "PUT",
            "/v1/cluster",
            &[("Authorization", &bearer(&user))],
            maint.as_bytes(),
        ),
        false,
    );
    expect_ais(&r, 403);
    assert!(
        !tc.smap().await.targets[&t0]
            .flags
            .contains(shoal_actors::types::smap::Flags::MAINT)
    );
    let r = raw(
        &p,
        &with_len(
            "POST",
            "/v1/buckets/adminb",
            &[("Authorization", &bearer(&admin))],
            create,
        ),
        false,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t = tc.http_url("target0");
    let r = raw(
        &t,
        &with_len(
            "PUT",
            "/v1/objects/adminb/o",
            &[("Authorization", &bearer(&user))],
            b"data with a user token",
        ),
        false,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = raw(
        &t,
        &with_len("PUT", "/v1/objects/adminb/o2", &[], b"x"),
        false,
    );
    expect_ais(&r, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_keys_kept_by_the_cluster_sign_requests_and_carry_their_rights() {
    use shoal_actors::logic::auth::jwt;
    let secret = "gateway-key-secret";
    let cfg = format!("{FAST_CONFIG}\n[cluster.auth]\nenabled = true\nsecret = \"{secret}\"\n");
    let admin = jwt::sign(
        &jwt::Claims {
            sub: "ops".into(),
            exp: shoal_actors::types::unix_secs() + 600,
            admin: true,
            iat: None,
            cluster: None,
            jti: None,
        },
        secret.as_bytes(),
    )
    .unwrap();
    let tc = TestCluster::start_http(1, 2, 1, &cfg, Some(admin.clone()), &[]).await;
    let p = tc.http_url("proxy0");
    let home = tempfile::tempdir().unwrap();
    let key = |extra: &[&str]| {
        let mut args = vec!["--token", admin.as_str(), "auth", "s3-key"];
        args.extend(extra);
        tc.nodectl_json(&args)
    };
    let made = key(&["create", "--admin"]);
    let (ak, sk) = (
        made["created"]["access_key"].as_str().unwrap().to_string(),
        made["created"]["secret_key"].as_str().unwrap().to_string(),
    );
    let plain = key(&["create"]);
    let (pk, ps) = (
        plain["created"]["access_key"].as_str().unwrap().to_string(),
        plain["created"]["secret_key"].as_str().unwrap().to_string(),
    );
    // Listed without secrets; the config shows none either.
    let listed = key(&["ls"]);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(&sk));
    let shown = tc.nodectl_json(&["--token", &admin, "config", "cluster", "auth"]);
    assert!(!shown.to_string().contains(&sk) && !shown.to_string().contains(&ps));
    // The admin key does everything auth_s3.py checks (right, wrong and missing signatures).
    let bin = clients::venv_bin();
    run(
        "auth_s3.py",
        cmd(bin.join("python"), home.path())
            .current_dir(home.path())
            .arg(clients::root().join("tests/clients/auth_s3.py"))
            .args([&p, &ak, &sk]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // A key without admin rights reads and writes data but creates no bucket.
    let script = r#"
import sys, boto3
from botocore.config import Config
from botocore.exceptions import ClientError
ep, ak, sk = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=ep + "/s3", aws_access_key_id=ak,
                  aws_secret_access_key=sk, region_name="us-east-1",
                  config=Config(retries={"max_attempts": 1}))
s3.put_object(Bucket="authb", Key="by-plain", Body=b"plain")
assert s3.get_object(Bucket="authb", Key="by-plain")["Body"].read() == b"plain"
try:
    s3.create_bucket(Bucket="notyours")
    raise SystemExit("a non-admin key created a bucket")
except ClientError as e:
    print("refused", e.response["Error"]["Code"])
"#;
    let out = run(
        "non-admin key",
        cmd(bin.join("python"), home.path())
            .arg("-c")
            .arg(script)
            .args([&p, &pk, &ps]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("refused"), "{out}");
    // Removed: the key no longer signs anything.
    key(&["rm", &pk]);
    let out = run(
        "removed key",
        cmd(bin.join("python"), home.path())
            .arg("-c")
            .arg(script)
            .args([&p, &pk, &ps]),
    );
    assert!(
        out.as_ref()
            .is_err_and(|e| e.contains("InvalidAccessKeyId")),
        "{out:?}"
    );
}
