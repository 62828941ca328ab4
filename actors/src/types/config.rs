//! Configuration: the cluster-wide config the primary distributes (keepalive, rebalance, proxy
//! URLs, auth), and a node's local settings (`noded --config FILE`, TOML).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeepaliveConfig {
    /// Heartbeat period, milliseconds (AIStore uses 10 s; 1 s here).
    pub interval_ms: u64,
    /// Missed heartbeats before the primary marks a node offline.
    pub num_retries: u32,
    /// After this long offline a node is removed from the map (no rebalance), milliseconds.
    pub remove_after_ms: u64,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            interval_ms: 1000,
            num_retries: 3,
            remove_after_ms: 10 * 60 * 1000,
        }
    }
}

impl KeepaliveConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(10))
    }
    pub fn offline_after(&self) -> Duration {
        self.interval() * self.num_retries.max(1)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RebalanceConfig {
    pub enabled: bool,
    /// How long a sender retries an unreachable destination before reporting it blocked, ms.
    pub dest_retry_ms: u64,
    /// Concurrent object sends per jogger.
    pub senders_per_mountpath: usize,
    /// Upper bound on each target's outgoing rebalance traffic, bytes/s; 0 = unlimited. Lets an
    /// operator trade rebalance time for foreground bandwidth (Garage's "tranquility").
    pub throttle_bytes_per_sec: u64,
    /// Every target holds its walk (`nodectl rebalance pause|resume`); kept in the cluster
    /// config so that a pause survives restarts and reaches targets that join meanwhile.
    pub paused: bool,
    /// A running, unpaused generation with no progress for this long is reported as stalled.
    pub stall_secs: u64,
}

impl Default for RebalanceConfig {
    fn default() -> Self {
        RebalanceConfig {
            enabled: true,
            dest_retry_ms: 2000,
            senders_per_mountpath: 4,
            throttle_bytes_per_sec: 0,
            paused: false,
            stall_secs: 60,
        }
    }
}

/// Limits that keep one client from starving a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Connections a node serves at once. Past it, the longest-idle connection is closed to
    /// admit a new one; when none is idle, the new one is refused as busy.
    pub max_connections: usize,
    /// A connection that sends no request for this long is closed, ms.
    pub idle_timeout_ms: u64,
    /// Longest wait for one frame of an object body, either way, ms.
    pub frame_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 1024,
            idle_timeout_ms: 120_000,
            frame_timeout_ms: 30_000,
        }
    }
}

impl LimitsConfig {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(100))
    }
    pub fn frame_timeout(&self) -> Duration {
        Duration::from_millis(self.frame_timeout_ms.max(100))
    }
}

/// How targets treat their mountpaths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// A mountpath whose filesystem is used past this share (as `df` counts it) takes no new
    /// objects and keeps what it holds, percent. AIStore's "out of space" mark.
    pub high_water_pct: u8,
    /// How often each mountpath is probed (a small write, sync and remove), ms. An I/O error
    /// in the data path probes at once.
    pub probe_interval_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            high_water_pct: 95,
            probe_interval_ms: 10_000,
        }
    }
}

/// `proxy` section, as `nodectl config cluster proxy --json` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyConfig {
    pub primary_url: String,
    pub original_url: String,
    pub discovery_url: String,
    pub non_electable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    pub enabled: bool,
    /// Only as read from a node's own config file (`[cluster.auth] secret`) or shown masked:
    /// the secret itself is node-local and is blanked before this config is stored or sent.
    pub secret: String,
    /// S3 access keys (SigV4 needs each key's secret on every node): the secrets travel
    /// sealed with a key derived from the cluster secret, which only nodes have.
    pub s3_keys: Vec<S3Key>,
}

/// One S3 access key as the cluster config carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Key {
    pub access_key: String,
    /// The secret key, sealed (`logic::auth::seal`); `**********` when shown.
    pub secret_sealed: String,
    /// Admin keys may also create and destroy buckets; others read and write data.
    pub admin: bool,
    /// Unix seconds.
    pub created: u64,
}

/// The cluster-wide configuration, versioned and distributed by the primary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    pub version: u64,
    pub keepalive: KeepaliveConfig,
    pub rebalance: RebalanceConfig,
    pub proxy: ProxyConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub storage: StorageConfig,
    /// Largest frame accepted on the wire, bytes.
    pub max_frame: usize,
    /// Past global rebalances, oldest first, at most [`HISTORY_KEEP`] (`show rebalance
    /// --all`). Kept here because the config is the cluster's replicated, versioned and
    /// persisted document: the history survives a primary restart and a failover with it.
    pub history: Vec<crate::types::status::GenRecord>,
}

/// Past generations the cluster remembers.
pub const HISTORY_KEEP: usize = 64;

impl ClusterConfig {
    /// A copy safe to store or send: without any secret.
    pub fn shareable(&self) -> ClusterConfig {
        let mut c = self.clone();
        c.auth.secret.clear();
        c
    }

    /// A copy safe to print: the secret shown only as provisioned (`**********`) or not, and
    /// no sealed key material.
    pub fn masked(&self, secret_provisioned: bool) -> ClusterConfig {
        let mut c = self.shareable();
        if secret_provisioned {
            c.auth.secret = "**********".into();
        }
        for k in &mut c.auth.s3_keys {
            k.secret_sealed = "**********".into();
        }
        c
    }

    /// One section as JSON (`nodectl config cluster SECTION`), or all of it.
    pub fn section_json(&self, section: Option<&str>) -> Result<serde_json::Value> {
        // Called on configs already masked by the node that answered. The history is state,
        // not a setting: `show rebalance --all` shows it.
        let mut all = serde_json::to_value(self).map_err(|e| Error::Encode(e.to_string()))?;
        if let Some(o) = all.as_object_mut() {
            o.remove("history");
        }
        match section {
            None => Ok(all),
            Some(s) => {
                let v = all.get(s).cloned().ok_or_else(|| {
                    Error::BadRequest(format!(
                        "unknown config section {s:?} (sections: keepalive, rebalance, proxy, auth, limits, storage)"
                    ))
                })?;
                Ok(serde_json::json!({ s: v }))
            }
        }
    }
}

/// Local settings of one `noded` (file or flags); flags win over the file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeConfig {
    pub role: Option<String>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub mountpaths: Vec<PathBuf>,
    /// Address of a node to join through (usually the primary).
    pub join: Option<String>,
    pub primary: bool,
    pub standby: bool,
    pub non_electable: bool,
    /// Cluster config used when this node bootstraps a new cluster.
    pub cluster: ClusterConfig,
    /// File holding the cluster secret (auth); provisioned on every node, never sent.
    pub auth_secret_file: Option<PathBuf>,
}

impl NodeConfig {
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)?;
        toml::from_str(&text)
            .map_err(|e| Error::BadRequest(format!("config {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_masking() {
        let mut c = ClusterConfig::default();
        c.auth.secret = "hunter2".into();
        c.proxy.primary_url = "127.0.0.1:8080".into();
        assert_eq!(c.shareable().auth.secret, "");
        let v = c.masked(true).section_json(Some("auth")).unwrap();
        assert_eq!(v["auth"]["secret"], "**********");
        let v = c.masked(false).section_json(Some("auth")).unwrap();
        assert_eq!(v["auth"]["secret"], "");
        let v = c.section_json(Some("proxy")).unwrap();
        assert_eq!(v["proxy"]["primary_url"], "127.0.0.1:8080");
        assert!(c.section_json(Some("nope")).is_err());
    }

    #[test]
    fn node_config_from_toml() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n.toml");
        std::fs::write(
            &p,
            "role = \"target\"\nlisten = \"127.0.0.1:9001\"\n[cluster.keepalive]\ninterval_ms = 250\n",
        )
        .unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.role.as_deref(), Some("target"));
        assert_eq!(c.cluster.keepalive.interval_ms, 250);
        assert_eq!(c.cluster.keepalive.num_retries, 3);
        std::fs::write(&p, "role = [").unwrap();
        assert!(NodeConfig::load(&p).is_err());
    }
}
