//! What the benches share by path (a bench cannot depend on another crate's): the render bench
//! here, `show cluster` in nodectl, and the root benches through `benches/common` —
//! percentiles, the load average, and writing results into one `target/bench-results.json`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The value below which `q` of the sorted `v` lie (nearest rank).
pub fn percentile(v: &[f64], q: f64) -> f64 {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `target/` of this build: the bench runs as `target/<profile>/deps/<bench>-<hash>`.
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(3).map(Path::to_path_buf))
        .filter(|d| d.join("CACHEDIR.TAG").exists() || d.ends_with("target"))
        .unwrap_or_else(|| {
            // The workspace's: the first `target` above the crate that includes this file.
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .map(|d| d.join("target"))
                .find(|t| t.is_dir())
                .unwrap_or_else(|| PathBuf::from("target"))
        })
}

/// Writes `doc` to `target/<own_file>` and merges it under `key` into
/// `target/bench-results.json` (read, replace that key, write: the other benches' keys stay).
pub fn write_results(
    key: &str,
    own_file: &str,
    doc: &Value,
) -> std::io::Result<(PathBuf, PathBuf)> {
    let dir = target_dir();
    let own = dir.join(own_file);
    std::fs::write(&own, serde_json::to_string_pretty(doc)?)?;
    let merged = dir.join("bench-results.json");
    let mut all = std::fs::read_to_string(&merged)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .filter(|v| v.is_object())
        .unwrap_or_else(|| json!({}));
    all[key] = doc.clone();
    std::fs::write(&merged, serde_json::to_string_pretty(&all)?)?;
    Ok((own, merged))
}
