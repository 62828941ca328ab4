//! Configuration: the cluster-wide config the primary distributes (keepalive, rebalance, proxy
//! URLs, auth), and a node's local settings (`noded --config FILE`, TOML).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::auth::{OidcConfig, RequiredClaims, Revoked, RoleDef, UserRec};

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
    /// Concurrent batch sends per jogger; objects too large for a batch go from their files,
    /// twice as many at a time.
    pub senders_per_mountpath: usize,
    /// Upper bound on each target's outgoing rebalance traffic, bytes/s; 0 = unlimited. Lets an
    /// operator trade rebalance time for foreground bandwidth (Garage's "tranquility").
    pub throttle_bytes_per_sec: u64,
    /// Every target holds its walk (`nodectl rebalance pause|resume`); kept in the cluster
    /// config so that a pause survives restarts and reaches targets that join meanwhile.
    pub paused: bool,
    /// A running, unpaused generation with no progress for this long is reported as stalled.
    pub stall_secs: u64,
    /// A generation that finished with errors is run again (a new generation over the same
    /// map) this long after it ended, then twice as long after each further failure in a row,
    /// up to 16 times this; 0 = never (the operator repeats the operation).
    pub retry_secs: u64,
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
            retry_secs: 30,
        }
    }
}

/// Limits that keep one client from starving a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Connections a node serves at once, besides the cluster's own (see
    /// [`connection_cap`](LimitsConfig::connection_cap)). Past it, the longest-idle connection
    /// is closed to admit a new one; when none is idle, the new one is refused as busy.
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
    /// The connections a node of a `members`-node cluster serves at once: the client cap plus
    /// two per member. Every node keeps a keepalive link to the primary and members talk to
    /// each other, so a fixed cap below the cluster's size made the primary of 1,000 nodes
    /// evict keepalive links on every beat (scale-benchmarks finding 8).
    pub fn connection_cap(&self, members: usize) -> usize {
        self.max_connections
            .saturating_add(members.saturating_mul(2))
    }

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
    /// objects and keeps what it holds, percent. AIStore's "out of space" mark. 100 turns it
    /// off: only a disk that is really full refuses writes ("no space").
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

/// Below the high-water mark by this much before a full mountpath takes objects again (no
/// flapping at the mark).
const HYSTERESIS_PCT: f64 = 2.0;

impl StorageConfig {
    /// Whether a filesystem used `used` percent (as `df` counts it; `None`: unknown) is past
    /// the high-water mark, given whether it was before: the one rule the data path, the
    /// dry-run plan and the playground share.
    pub fn past_high_water(&self, used: Option<f64>, was: bool) -> bool {
        let mark = f64::from(self.high_water_pct.clamp(1, 100));
        match used {
            // 100 turns the mark off (a disk that fills up still answers "no space").
            _ if mark >= 100.0 => false,
            Some(u) if was => u >= mark - HYSTERESIS_PCT,
            Some(u) => u >= mark,
            None => was,
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
    /// Users of the integrated AuthN service (argon2 hashes only). Kept here, in the config
    /// the primary versions, persists and metasyncs, so every node can check every request
    /// and a change (a user removed, a token revoked) reaches every node in one push.
    pub users: Vec<UserRec>,
    /// Roles defined by the operators, beside the built-in ones (`logic::perm`).
    pub roles: Vec<RoleDef>,
    /// Revoked token IDs, until their tokens would have expired anyway.
    pub revoked: Vec<Revoked>,
    /// How long a login token lasts when the client asks for no TTL, seconds (0: 24 h).
    pub token_ttl_secs: u64,
    pub required_claims: RequiredClaims,
    pub oidc: OidcConfig,
}

/// A login token lasts this long unless asked otherwise.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 24 * 3600;

impl AuthConfig {
    pub fn user(&self, name: &str) -> Option<&UserRec> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        !jti.is_empty() && self.revoked.iter().any(|r| r.jti == jti)
    }

    /// Tokens of `user` issued at or before this instant (unix seconds) are revoked.
    pub fn user_revoked_until(&self, user: &str) -> Option<u64> {
        self.revoked
            .iter()
            .filter(|r| r.jti.is_empty() && r.sub == user)
            .map(|r| r.at)
            .max()
    }

    pub fn token_ttl(&self) -> u64 {
        match self.token_ttl_secs {
            0 => DEFAULT_TOKEN_TTL_SECS,
            n => n,
        }
    }

    /// The section as `nodectl config cluster auth --json` shows it: the seed's shape
    /// (`signature`, `required_claims`, `oidc`, `enabled`), then what Shoal adds (users and
    /// their roles, roles, S3 keys, revocations) — secrets and hashes masked.
    pub fn seed_view(&self) -> serde_json::Value {
        let opt_list = |v: &Option<Vec<String>>| match v {
            Some(l) if !l.is_empty() => serde_json::json!(l),
            _ => serde_json::Value::Null,
        };
        let bundle = match self.oidc.issuer_ca_bundle.as_str() {
            "" => "-",
            b => b,
        };
        serde_json::json!({
            "signature": {
                "key": if self.secret.is_empty() { "" } else { MASK },
                "method": "hmac",
            },
            "required_claims": { "aud": opt_list(&self.required_claims.aud) },
            "oidc": {
                "issuer_ca_bundle": bundle,
                "allowed_iss": opt_list(&self.oidc.allowed_iss),
                "jwks_file": if self.oidc.jwks_file.is_empty() { "-" } else { &self.oidc.jwks_file },
                "roles_claim": if self.oidc.roles_claim.is_empty() { "groups" } else { &self.oidc.roles_claim },
                "role_map": self.oidc.role_map,
            },
            "enabled": self.enabled,
            // Kept beside `signature.key` for scripts written before the seed's shape.
            "secret": if self.secret.is_empty() { "" } else { MASK },
            "token_ttl": crate::logic::format::duration(self.token_ttl()),
            "users": self.users.iter().map(|u| serde_json::json!({
                "name": u.name, "roles": u.roles, "password_hash": MASK,
            })).collect::<Vec<_>>(),
            "roles": self.roles.iter().map(|r| serde_json::json!({
                "name": r.name, "desc": r.desc,
                "perms": r.perms.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "s3_keys": self.s3_keys.iter().map(|k| serde_json::json!({
                "access_key": k.access_key, "secret_key": MASK, "admin": k.admin,
                "user": if k.user.is_empty() { serde_json::Value::Null } else { k.user.clone().into() },
            })).collect::<Vec<_>>(),
            "revoked_tokens": self.revoked.iter().filter(|r| !r.jti.is_empty()).count(),
            "revoked_users": self.revoked.iter().filter(|r| r.jti.is_empty()).map(|r| r.sub.clone()).collect::<Vec<_>>(),
        })
    }
}

/// How secrets show.
pub const MASK: &str = "**********";

/// One S3 access key as the cluster config carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Key {
    pub access_key: String,
    /// The secret key, sealed (`logic::auth::seal`); `**********` when shown.
    pub secret_sealed: String,
    /// Admin keys may also create and destroy buckets; others read and write data. Ignored
    /// when the key belongs to a user: then the user's roles decide.
    pub admin: bool,
    /// The AuthN user this key acts as (empty: a key of its own, with `admin`).
    pub user: String,
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

/// The smallest `max_frame` (other than 0, the default of 16 MiB) a cluster runs with: a body
/// frame of `proto::codec::CHUNK_SIZE` (1 MiB) and its head must fit.
pub const MIN_MAX_FRAME: usize = 2 << 20;

/// Past generations the cluster remembers.
pub const HISTORY_KEEP: usize = 64;

impl ClusterConfig {
    /// Refuses settings the cluster cannot run with.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.max_frame != 0 && self.max_frame < MIN_MAX_FRAME {
            return Err(format!(
                "max_frame = {} is too small: at least {MIN_MAX_FRAME} bytes (object bodies \
                 travel in 1 MiB frames), or 0 for the default of 16 MiB",
                self.max_frame
            ));
        }
        Ok(())
    }

    /// A copy safe to store or send: without any secret.
    pub fn shareable(&self) -> ClusterConfig {
        self.clone().into_shareable()
    }

    /// As [`shareable`](Self::shareable), without a copy.
    pub fn into_shareable(mut self) -> ClusterConfig {
        self.auth.secret.clear();
        self
    }

    /// A copy safe to print: the secret shown only as provisioned (`**********`) or not, and
    /// no sealed key material.
    pub fn masked(&self, secret_provisioned: bool) -> ClusterConfig {
        let mut c = self.shareable();
        if secret_provisioned {
            c.auth.secret = MASK.into();
        }
        for k in &mut c.auth.s3_keys {
            k.secret_sealed = MASK.into();
        }
        for u in &mut c.auth.users {
            u.password_hash = MASK.into();
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
            o.insert("auth".into(), self.auth.seed_view());
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
        let c: NodeConfig = toml::from_str(&text)
            .map_err(|e| Error::BadRequest(format!("config {}: {e}", path.display())))?;
        c.cluster
            .check()
            .map_err(|e| Error::BadRequest(format!("config {}: {e}", path.display())))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_water_mark_with_hysteresis_and_turned_off() {
        let at = |pct| StorageConfig {
            high_water_pct: pct,
            ..Default::default()
        };
        let past = |pct, used, was| at(pct).past_high_water(used, was);
        assert!(!past(95, Some(94.9), false));
        assert!(past(95, Some(95.0), false));
        // Once past, it takes objects again only 2 points under the mark.
        assert!(past(95, Some(93.5), true));
        assert!(!past(95, Some(92.9), true));
        assert!(past(95, None, true) && !past(95, None, false));
        // At 100 nothing is past it, however full the disk, and a flag set before clears.
        assert!(!past(100, Some(100.0), false));
        assert!(!past(100, Some(99.0), true));
        assert!(!past(100, None, true));
    }

    #[test]
    fn the_connection_cap_grows_with_the_cluster() {
        let l = LimitsConfig::default();
        assert_eq!(l.connection_cap(0), l.max_connections);
        assert!(l.connection_cap(1000) >= l.max_connections + 1000);
        assert_eq!(l.connection_cap(usize::MAX), usize::MAX);
    }

    #[test]
    fn sections_and_masking() {
        let mut c = ClusterConfig::default();
        c.auth.secret = "hunter2".into();
        c.proxy.primary_url = "127.0.0.1:8080".into();
        assert_eq!(c.shareable().auth.secret, "");
        c.auth.users.push(UserRec {
            name: "alice".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            roles: vec!["read-only".into()],
            created: 1,
        });
        c.auth.oidc.allowed_iss = Some(vec!["https://idp.example".into()]);
        c.auth.required_claims.aud = Some(vec!["shoal".into()]);
        let v = c.masked(true).section_json(Some("auth")).unwrap();
        // The seed's shape: signature, required_claims, oidc, enabled.
        assert_eq!(v["auth"]["signature"]["key"], "**********");
        assert_eq!(
            v["auth"]["secret"], "**********",
            "the key scripts read before"
        );
        assert_eq!(v["auth"]["signature"]["method"], "hmac");
        assert_eq!(v["auth"]["required_claims"]["aud"][0], "shoal");
        assert_eq!(v["auth"]["oidc"]["allowed_iss"][0], "https://idp.example");
        assert_eq!(v["auth"]["oidc"]["issuer_ca_bundle"], "-");
        assert_eq!(v["auth"]["enabled"], false);
        assert_eq!(v["auth"]["users"][0]["password_hash"], "**********");
        let text = v.to_string();
        assert!(
            !text.contains("argon2") && !text.contains("hunter2"),
            "{text}"
        );
        let v = c.masked(false).section_json(Some("auth")).unwrap();
        assert_eq!(v["auth"]["signature"]["key"], "");
        assert_eq!(
            ClusterConfig::default().section_json(Some("auth")).unwrap()["auth"]["required_claims"]
                ["aud"],
            serde_json::Value::Null
        );
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
        // A frame limit under one body frame: refused at start, saying why.
        std::fs::write(&p, "[cluster]\nmax_frame = 1048576\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("max_frame") && e.contains("too small"), "{e}");
        std::fs::write(&p, format!("[cluster]\nmax_frame = {MIN_MAX_FRAME}\n")).unwrap();
        assert_eq!(
            NodeConfig::load(&p).unwrap().cluster.max_frame,
            MIN_MAX_FRAME
        );
    }
}
