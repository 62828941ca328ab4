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
}

impl Default for RebalanceConfig {
    fn default() -> Self {
        RebalanceConfig {
            enabled: true,
            dest_retry_ms: 2000,
            senders_per_mountpath: 4,
            throttle_bytes_per_sec: 0,
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
    /// HMAC secret; masked whenever the config is shown.
    pub secret: String,
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
    /// Largest frame accepted on the wire, bytes.
    pub max_frame: usize,
}

impl ClusterConfig {
    /// A copy safe to print: secrets masked.
    pub fn masked(&self) -> ClusterConfig {
        let mut c = self.clone();
        if !c.auth.secret.is_empty() {
            c.auth.secret = "**********".into();
        }
        c
    }

    /// One section as JSON (`nodectl config cluster SECTION`), or all of it.
    pub fn section_json(&self, section: Option<&str>) -> Result<serde_json::Value> {
        let all = serde_json::to_value(self.masked()).map_err(|e| Error::Encode(e.to_string()))?;
        match section {
            None => Ok(all),
            Some(s) => {
                let v = all.get(s).cloned().ok_or_else(|| {
                    Error::BadRequest(format!(
                        "unknown config section {s:?} (sections: keepalive, rebalance, proxy, auth)"
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
        let v = c.section_json(Some("auth")).unwrap();
        assert_eq!(v["auth"]["secret"], "**********");
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
