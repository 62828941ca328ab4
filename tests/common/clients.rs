//! Real clients for the HTTP tests: the Python venv made by `tests/clients/setup.sh` (AIStore's
//! SDK, boto3, minio, the aws CLI, s3cmd), rclone and curl, each run as a subprocess with an
//! environment that keeps the host's settings out.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

static SETUP: Mutex<bool> = Mutex::new(false);

/// The venv's `bin/`; runs `setup.sh` once per test process (it is quick when cached, and
/// installs what is missing otherwise), so `cargo test` alone works.
pub fn venv_bin() -> PathBuf {
    let mut done = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let bin = std::env::var_os("SHOAL_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/py-venv"))
        .join("bin");
    if !*done {
        let out = Command::new("bash")
            .arg(root().join("tests/clients/setup.sh"))
            .stdin(Stdio::null())
            .output()
            .expect("run tests/clients/setup.sh");
        assert!(
            out.status.success(),
            "tests/clients/setup.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        *done = true;
    }
    bin
}

/// `program` with a clean environment: no proxies, no CA bundle override (rclone's AWS SDK
/// refuses one on plain HTTP), no user config (`HOME` is `home`).
pub fn cmd(program: impl AsRef<OsStr>, home: &Path) -> Command {
    let mut c = Command::new(program);
    for v in [
        "AWS_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "AWS_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "RCLONE_CONFIG",
    ] {
        c.env_remove(v);
    }
    c.env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "*")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    c
}

/// Runs `c`; `Ok(stdout)` on success, else a description with both outputs.
pub fn run(what: &str, c: &mut Command) -> Result<String, String> {
    let out: Output = c
        .output()
        .map_err(|e| format!("{what}: cannot run {c:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{what}: exit {:?}\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Peak resident memory of a process since the last [`reset_peak_rss`], bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Resets a process's peak RSS to its current RSS (`/proc/PID/clear_refs`, value 5).
pub fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Deterministic bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut v = vec![0u8; n];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}
