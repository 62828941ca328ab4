//! The HTTP front door with real, unmodified clients on a live cluster (DESIGN §13): AIStore's
//! Python SDK, boto3 and minio (tests/clients/roundtrip.py), the aws CLI, s3cmd, rclone, and
//! curl on a presigned URL. Each round-trips objects from 0 B to 64 MiB byte-identical and
//! names that are hard on URLs, through the proxy's HTTP port.

mod common;

use std::path::Path;

use common::clients::{self, cmd, run};
use common::{FAST_CONFIG, TestCluster};
use md5::{Digest, Md5};

const SIZES: [usize; 5] = [0, 1, 1000, (1 << 20) + 3, 64 << 20];
const MIB: u64 = 1 << 20;

fn write_sizes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(dir).unwrap();
    SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let name = format!("size-{n}");
            let d = clients::bytes(n, i as u64);
            std::fs::write(dir.join(&name), &d).unwrap();
            (name, d)
        })
        .collect()
}

fn same_file(path: &Path, want: &[u8]) -> Result<(), String> {
    let got = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if got.len() != want.len() || Md5::digest(&got) != Md5::digest(want) {
        return Err(format!(
            "{}: {} bytes differ from the {} sent",
            path.display(),
            got.len(),
            want.len()
        ));
    }
    Ok(())
}

fn aws_cli(bin: &Path, home: &Path, url: &str) -> Result<(), String> {
    let work = tempfile::tempdir().unwrap();
    let aws = |args: &[&str]| {
        run(
            &format!("aws {}", args.join(" ")),
            cmd(bin.join("aws"), home)
                .env("AWS_ACCESS_KEY_ID", "anykey")
                .env("AWS_SECRET_ACCESS_KEY", "anysecret")
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .arg("--endpoint-url")
                .arg(format!("{url}/s3"))
                .args(args),
        )
    };
    let up = work.path().join("up");
    let files = write_sizes(&up);
    aws(&["s3", "mb", "s3://awscli"])?;
    // 64 MiB is over the CLI's 8 MiB multipart threshold.
    aws(&[
        "s3",
        "cp",
        up.to_str().unwrap(),
        "s3://awscli/up/",
        "--recursive",
        "--only-show-errors",
    ])?;
    let back = work.path().join("back");
    aws(&[
        "s3",
        "cp",
        "s3://awscli/up/",
        back.to_str().unwrap(),
        "--recursive",
        "--only-show-errors",
    ])?;
    for (name, d) in &files {
        same_file(&back.join(name), d)?;
    }
    let ls = aws(&["s3", "ls", "s3://awscli/up/"])?;
    if files.iter().any(|(n, _)| !ls.contains(n.as_str())) {
        return Err(format!("aws s3 ls misses objects:\n{ls}"));
    }
    // `s3 sync` compares sizes and modification times: a second sync uploads nothing.
    let up_dir = up.to_str().unwrap();
    let first = aws(&["s3", "sync", up_dir, "s3://awscli/sync/", "--no-progress"])?;
    if first.lines().filter(|l| l.starts_with("upload:")).count() != files.len() {
        return Err(format!("aws s3 sync did not upload every file:\n{first}"));
    }
    let again = aws(&["s3", "sync", up_dir, "s3://awscli/sync/", "--no-progress"])?;
    if again.lines().any(|l| l.starts_with("upload:")) {
        return Err(format!("a second aws s3 sync uploaded again:\n{again}"));
    }
    for (i, name) in names().iter().enumerate() {
        let name = name.as_str();
        let src = work.path().join(format!("name-{i}"));
        std::fs::write(&src, name.as_bytes()).unwrap();
        aws(&[
            "s3api",
            "put-object",
            "--bucket",
            "awscli",
            "--key",
            name,
            "--body",
            src.to_str().unwrap(),
        ])?;
        let dst = work.path().join(format!("name-{i}.back"));
        aws(&[
            "s3api",
            "get-object",
            "--bucket",
            "awscli",
            "--key",
            name,
            dst.to_str().unwrap(),
        ])?;
        same_file(&dst, name.as_bytes())?;
    }
    // A copy over the multipart threshold is done with UploadPartCopy.
    aws(&[
        "s3",
        "cp",
        "s3://awscli/up/size-67108864",
        "s3://awscli/copy",
        "--only-show-errors",
    ])?;
    let copy = work.path().join("copy");
    aws(&[
        "s3",
        "cp",
        "s3://awscli/copy",
        copy.to_str().unwrap(),
        "--only-show-errors",
    ])?;
    same_file(&copy, &files[4].1)?;
    aws(&["s3", "rm", "s3://awscli/copy", "--only-show-errors"])?;
    aws(&["s3", "rb", "s3://awscli", "--force"])?;
    Ok(())
}

/// Names that are hard on URLs, and one of the longest allowed (1,024 bytes).
fn names() -> Vec<String> {
    let mut v: Vec<String> = ["a b", "&+-é\"", "%2F", "dir/", "../x"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push("n".repeat(1024));
    v
}

fn s3cmd(bin: &Path, home: &Path, url: &str) -> Result<(), String> {
    let work = tempfile::tempdir().unwrap();
    let hostport = url.trim_start_matches("http://");
    // s3cmd's endpoint cannot carry a path: it talks S3 at the root of the HTTP port.
    let cfg = work.path().join("s3cfg");
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = anykey\nsecret_key = anysecret\nhost_base = {hostport}\n\
             host_bucket = {hostport}\nuse_https = False\nsignature_v2 = False\n"
        ),
    )
    .unwrap();
    let s3cmd = |args: &[&str]| {
        run(
            &format!("s3cmd {}", args.join(" ")),
            cmd(bin.join("s3cmd"), home)
                .arg("-c")
                .arg(&cfg)
                .arg("--no-progress")
                .args(args),
        )
    };
    let up = work.path().join("up");
    let files = write_sizes(&up);
    s3cmd(&["mb", "s3://s3cmd"])?;
    for (name, d) in &files {
        // 64 MiB is over s3cmd's 15 MiB multipart chunk.
        let src = up.join(name);
        s3cmd(&["put", src.to_str().unwrap(), &format!("s3://s3cmd/{name}")])?;
        let dst = work.path().join(format!("{name}.back"));
        s3cmd(&["get", &format!("s3://s3cmd/{name}"), dst.to_str().unwrap()])?;
        same_file(&dst, d)?;
    }
    // "dir/": s3cmd takes a trailing slash as "put into this folder".
    for (i, name) in names().iter().enumerate().filter(|(_, n)| *n != "dir/") {
        let src = work.path().join(format!("name-{i}"));
        std::fs::write(&src, name.as_bytes()).unwrap();
        s3cmd(&["put", src.to_str().unwrap(), &format!("s3://s3cmd/{name}")])?;
        let dst = work.path().join(format!("name-{i}.back"));
        s3cmd(&["get", &format!("s3://s3cmd/{name}"), dst.to_str().unwrap()])?;
        same_file(&dst, name.as_bytes())?;
    }
    let ls = s3cmd(&["ls", "s3://s3cmd/"])?;
    if !ls.contains("s3://s3cmd/size-1000") || !ls.contains("s3://s3cmd/a b") {
        return Err(format!("s3cmd ls misses objects:\n{ls}"));
    }
    s3cmd(&["del", "--recursive", "--force", "s3://s3cmd/"])?;
    s3cmd(&["rb", "s3://s3cmd"])?;
    Ok(())
}

fn rclone(home: &Path, url: &str) -> Result<(), String> {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let files = write_sizes(&tree.join("sizes"));
    // File-system names (a file name cannot be `dir/`, `../x` or 1,024 bytes long).
    let odd = ["a b", "&+-é\"", "%2F"];
    std::fs::create_dir_all(tree.join("d/e")).unwrap();
    for n in odd {
        std::fs::write(tree.join("d/e").join(n), n.as_bytes()).unwrap();
    }
    let rc = |args: &[&str]| {
        run(
            &format!("rclone {}", args.join(" ")),
            cmd("rclone", home)
                .env("RCLONE_CONFIG_SH_TYPE", "s3")
                .env("RCLONE_CONFIG_SH_PROVIDER", "Other")
                .env("RCLONE_CONFIG_SH_ENDPOINT", format!("{url}/s3"))
                .env("RCLONE_CONFIG_SH_ACCESS_KEY_ID", "anykey")
                .env("RCLONE_CONFIG_SH_SECRET_ACCESS_KEY", "anysecret")
                .env("RCLONE_CONFIG_SH_FORCE_PATH_STYLE", "true")
                // 64 MiB goes up in 5 MiB parts.
                .env("RCLONE_S3_UPLOAD_CUTOFF", "8M")
                .env("RCLONE_S3_CHUNK_SIZE", "5M")
                .args(args),
        )
    };
    let t = tree.to_str().unwrap();
    rc(&["mkdir", "sh:rclone"])?;
    // --checksum compares sizes and MD5s: the ETag of single-part uploads, the metadata rclone
    // attaches to multipart ones (X-Amz-Meta-Md5chksum).
    rc(&["sync", "--checksum", t, "sh:rclone/tree"])?;
    let log = work.path().join("resync.log");
    rc(&[
        "sync",
        "--checksum",
        "-vv",
        "--log-file",
        log.to_str().unwrap(),
        t,
        "sh:rclone/tree",
    ])?;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    if log.contains("Copied (") || !log.contains("Unchanged skipping") {
        return Err(format!(
            "a second rclone sync --checksum copied again:\n{log}"
        ));
    }
    let back = work.path().join("back");
    rc(&["sync", "sh:rclone/tree", back.to_str().unwrap()])?;
    for (name, d) in &files {
        same_file(&back.join("sizes").join(name), d)?;
    }
    for n in odd {
        same_file(&back.join("d/e").join(n), n.as_bytes())?;
    }
    rc(&["check", t, "sh:rclone/tree"])?;
    std::fs::remove_file(tree.join("d/e/a b")).unwrap();
    rc(&["sync", "--checksum", t, "sh:rclone/tree"])?;
    let listed = rc(&["lsf", "-R", "sh:rclone/tree"])?;
    if listed.lines().any(|l| l == "d/e/a b") || !listed.lines().any(|l| l == "d/e/%2F") {
        return Err(format!("rclone sync did not mirror a deletion:\n{listed}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_round_trip_through_a_proxy() {
    let bin = clients::venv_bin();
    let tc = TestCluster::start_http(1, 3, 1, FAST_CONFIG, None, &[]).await;
    let url = tc.http_url("proxy0");
    let home = tempfile::tempdir().unwrap();
    let script = clients::root().join("tests/clients/roundtrip.py");
    let proxy = tc.pid("proxy0");
    let mut failures = Vec::new();

    for client in ["aistore", "boto3", "minio"] {
        clients::reset_peak_rss(proxy);
        let res = run(
            client,
            cmd(bin.join("python"), home.path()).arg(&script).args([
                client,
                &url,
                &format!("rt-{client}"),
            ]),
        );
        let out = match res {
            Ok(out) => out,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        eprintln!("{out}");
        if client == "boto3" {
            // boto3 sent 64 MiB in one PUT and read it back, through the proxy (S3 streams
            // through proxies; it is not redirected).
            let peak = clients::peak_rss(proxy);
            eprintln!(
                "proxy peak RSS while boto3 moved 64 MiB objects through it: {:.1} MiB",
                peak as f64 / MIB as f64
            );
            if peak > 48 * MIB {
                failures.push(format!(
                    "proxy peak RSS {peak} bytes: object data is being buffered"
                ));
            }
            // The presigned URL the script made, fetched with curl.
            if let Some(line) = out.lines().find(|l| l.starts_with("presigned ")) {
                let mut it = line.split_whitespace().skip(1);
                let (u, want) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
                let dst = home.path().join("presigned.out");
                match run(
                    "curl presigned",
                    cmd("curl", home.path())
                        .args(["-sf", "-o"])
                        .arg(&dst)
                        .arg(u),
                ) {
                    Ok(_) => {
                        let got = std::fs::read(&dst).unwrap_or_default();
                        let got: String = Md5::digest(&got)
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect();
                        if got != want {
                            failures.push(format!("presigned GET: md5 {got}, want {want}"));
                        }
                    }
                    Err(e) => failures.push(e),
                }
            } else {
                failures.push("boto3 printed no presigned URL".into());
            }
        }
    }
    for (what, res) in [
        ("aws cli", aws_cli(&bin, home.path(), &url)),
        ("s3cmd", s3cmd(&bin, home.path(), &url)),
        ("rclone", rclone(home.path(), &url)),
    ] {
        match res {
            Ok(()) => eprintln!("ok {what}"),
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        tc.dump_logs();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
