//! What operators see (DESIGN §8, §11): node statistics and `show cluster` rows, rebalance
//! progress per target and cluster-wide, and the status values as enums — serialised to the
//! strings scripts rely on (`online`, `maintenance`, `running`, …).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::smap::Role;

/// A node's status in `show cluster` (DESIGN §7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    #[default]
    Online,
    /// Red while its rebalance runs, cyan once safe to power off (`MAINT_POST_REB`).
    Maintenance,
    Decommission,
    /// Keepalive lost, or the node does not answer.
    Offline,
}

impl NodeState {
    pub const ALL: [NodeState; 4] = [
        NodeState::Online,
        NodeState::Maintenance,
        NodeState::Decommission,
        NodeState::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Online => "online",
            NodeState::Maintenance => "maintenance",
            NodeState::Decommission => "decommission",
            NodeState::Offline => "offline",
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// State of a rebalance generation as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RebState {
    #[default]
    Running,
    Finished,
    Aborted,
}

impl RebState {
    pub fn as_str(self) -> &'static str {
        match self {
            RebState::Running => "running",
            RebState::Finished => "finished",
            RebState::Aborted => "aborted",
        }
    }
}

impl std::fmt::Display for RebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stages of one generation on one target, in order.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    #[default]
    Init,
    Traverse,
    PostTraverse,
    Fin,
    Done,
    Aborted,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Init => "init",
            Stage::Traverse => "traverse",
            Stage::PostTraverse => "post-traverse",
            Stage::Fin => "fin",
            Stage::Done => "done",
            Stage::Aborted => "aborted",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One target's view of one generation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetRebStatus {
    pub id: String,
    /// Generation number (`g<gen>`).
    pub generation: u64,
    pub stage: Stage,
    /// Objects and bytes this target found misplaced while walking (to send or move locally).
    pub objs_total: u64,
    pub bytes_total: u64,
    /// True once the counting walk finished, so `objs_total` is final.
    pub counted: bool,
    pub tx_objs: u64,
    pub tx_bytes: u64,
    pub rx_objs: u64,
    pub rx_bytes: u64,
    /// Objects moved between this target's own mountpaths.
    pub local_objs: u64,
    pub local_bytes: u64,
    pub errors: u64,
    /// Unix seconds.
    pub started: Option<u64>,
    pub finished: Option<u64>,
    /// Why this target is not progressing right now, if it is not (peer unreachable, disk full…).
    pub blocked_by: Option<String>,
    /// Holding its walk at `nodectl rebalance pause`.
    #[serde(default)]
    pub paused: bool,
}

/// Cluster-wide state of the latest generation, as `nodectl show rebalance --json` prints it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RebalanceStatus {
    /// `g<N>`.
    pub id: String,
    pub state: RebState,
    /// The least advanced stage among the participating targets.
    pub stage: Stage,
    pub objs_total: u64,
    pub bytes_total: u64,
    pub objs_moved: u64,
    pub bytes_moved: u64,
    pub rate_bytes_per_sec: f64,
    pub rate_objs_per_sec: f64,
    /// Seconds left at the current rate; `None` until there is a rate to go by.
    pub eta_secs: Option<u64>,
    pub blocked_by: Vec<String>,
    pub targets: Vec<TargetRebStatus>,
    /// Unix seconds.
    pub started: Option<u64>,
    pub finished: Option<u64>,
    pub errors: u64,
    /// Held by `nodectl rebalance pause` (the cluster config says so; it resumes where it was).
    #[serde(default)]
    pub paused: bool,
    /// Running, not paused, and no progress for `rebalance.stall_secs` (the reason is in
    /// `blocked_by`).
    #[serde(default)]
    pub stalled: bool,
}

impl RebalanceStatus {
    pub fn is_running(&self) -> bool {
        self.state == RebState::Running
    }

    /// Fraction done in 0..=1 (bytes when there are bytes to move, else objects).
    pub fn fraction(&self) -> f64 {
        fraction(
            (self.bytes_moved, self.bytes_total),
            (self.objs_moved, self.objs_total),
            self.is_running(),
        )
    }
}

/// Progress of a job in 0..=1: bytes when there are bytes to move, else objects; nothing to
/// move is 0 while running and 1 once done.
fn fraction(bytes: (u64, u64), objs: (u64, u64), running: bool) -> f64 {
    let f = if bytes.1 > 0 {
        bytes.0 as f64 / bytes.1 as f64
    } else if objs.1 > 0 {
        objs.0 as f64 / objs.1 as f64
    } else if running {
        0.0
    } else {
        1.0
    };
    f.clamp(0.0, 1.0)
}

/// One past global rebalance, as `show rebalance --all` and `show job` show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenRecord {
    /// `g<N>`.
    pub id: String,
    /// What started it: the operation and its nodes (`start-maintenance t[X]`, `join t[Y]`…).
    pub trigger: String,
    /// Unix seconds.
    pub started: u64,
    pub finished: u64,
    pub objects: u64,
    pub bytes: u64,
    pub errors: u64,
    /// `finished`, `finished with errors`, `aborted` or `superseded by g<N>`.
    pub outcome: String,
}

/// A mountpath's state (DESIGN §14), as `show storage` shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MpState {
    /// In placement: takes new objects, holds its share.
    #[default]
    Enabled,
    /// Out of placement; its objects move off while it is still readable (an operator's
    /// decision, or a missing or foreign marker at start).
    Disabled,
    /// Leaving: its objects move off, then it is forgotten.
    Detaching,
    /// Forgotten (kept only so that indices stay stable).
    Detached,
    /// Its I/O keeps failing: out of placement and not read.
    Failed,
}

impl MpState {
    pub fn as_str(self) -> &'static str {
        match self {
            MpState::Enabled => "enabled",
            MpState::Disabled => "disabled",
            MpState::Detaching => "detaching",
            MpState::Detached => "detached",
            MpState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for MpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One mountpath of a target, as reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MountpathStats {
    pub path: String,
    pub used: u64,
    pub avail: u64,
    pub total: u64,
    /// Number of objects stored on it (counted by the mountpath actor).
    pub objects: u64,
    /// Bytes of object data stored on it.
    pub object_bytes: u64,
    /// In placement (state `enabled`).
    pub enabled: bool,
    #[serde(default)]
    pub state: MpState,
    /// Why it is not enabled, or why it takes no new objects.
    #[serde(default)]
    pub reason: Option<String>,
    /// Past the high-water mark: holds what it has, takes nothing new.
    #[serde(default)]
    pub full: bool,
    /// The filesystem under it: type and device (`ext4 /dev/sdb1`).
    #[serde(default)]
    pub fs: String,
}

impl MountpathStats {
    /// As `df` shows it (blocks reserved for root count neither way).
    pub fn used_pct(&self) -> f64 {
        let all = self.used.saturating_add(self.avail);
        if all == 0 {
            0.0
        } else {
            100.0 * self.used as f64 / all as f64
        }
    }
}

/// One target's mountpaths, as `nodectl show storage` prints them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageStatus {
    pub target: String,
    pub mountpaths: Vec<MountpathStats>,
    /// The target's resilver, if one ran since it started.
    pub resilver: Option<ResilverStatus>,
}

/// A resilver — the local rebalance between one target's mountpaths (DESIGN §14) — with the
/// progress model of a rebalance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResilverStatus {
    pub target: String,
    /// `r<N>`.
    pub id: String,
    pub state: RebState,
    pub stage: Stage,
    /// What started it (`attach /data/mp3`, `disable /data/mp1`, `restart`…).
    pub reason: String,
    pub objs_total: u64,
    pub bytes_total: u64,
    /// True once the counting walk finished, so the totals are final.
    pub counted: bool,
    pub objs_moved: u64,
    pub bytes_moved: u64,
    pub rate_bytes_per_sec: f64,
    pub eta_secs: Option<u64>,
    pub errors: u64,
    pub blocked_by: Option<String>,
    /// Unix seconds.
    pub started: Option<u64>,
    pub finished: Option<u64>,
}

impl ResilverStatus {
    pub fn is_running(&self) -> bool {
        self.state == RebState::Running
    }

    /// Fraction done in 0..=1.
    pub fn fraction(&self) -> f64 {
        fraction(
            (self.bytes_moved, self.bytes_total),
            (self.objs_moved, self.objs_total),
            self.is_running(),
        )
    }
}

/// What one node reports about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    pub mem_used_pct: f64,
    pub mem_avail: u64,
    pub cpu_used_pct: f64,
    /// Used share of the node's distinct filesystems (de-duplicated by filesystem ID).
    pub cap_used_pct: f64,
    pub cap_avail: u64,
    pub cap_total: u64,
    /// Used bytes of those filesystems, as `df` counts them (root's reserve in neither this nor
    /// `cap_avail`).
    #[serde(default)]
    pub cap_used: u64,
    pub uptime_secs: u64,
    pub mountpaths: Vec<MountpathStats>,
    pub object_count: u64,
    pub object_bytes: u64,
    /// Resident set size of the node process, bytes.
    pub rss: u64,
    /// Restarts of supervised children since the node started, by child (`primary`,
    /// `keepalive`, `mp0`…): a crash that was repaired still shows here.
    #[serde(default)]
    pub restarts: BTreeMap<String, u64>,
    /// A target's latest resilver, if one ran since it started.
    #[serde(default)]
    pub resilver: Option<ResilverStatus>,
}

/// One row of `show cluster`: map facts, health and the node's last stats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: String,
    pub role: Role,
    pub mem_used_pct: f64,
    pub mem_avail: u64,
    pub cap_used_pct: f64,
    pub cap_avail: u64,
    pub cpu_used_pct: f64,
    /// `running(g5)`, `finished(g5)`, `aborted(g5)` or `-`.
    pub rebalance: String,
    pub uptime_secs: u64,
    pub status: NodeState,
    pub flags: Vec<String>,
    pub addr: String,
    /// Where the node's HTTP front door answers (the same port as `addr`).
    #[serde(default)]
    pub http_url: String,
    /// False when the node did not answer (its metrics are then zero and shown as `-`).
    pub reachable: bool,
    /// Maintenance or decommission whose rebalance still runs: red, do not power off.
    pub migrating: bool,
    /// Maintenance after its rebalance finished (`MAINT_POST_REB`): cyan, safe to power off.
    pub safe_to_power_off: bool,
    pub is_primary: bool,
    pub non_electable: bool,
    pub object_count: u64,
    pub mountpaths: Vec<MountpathStats>,
    /// Restarts of the node's supervised children (all kinds together).
    #[serde(default)]
    pub restarts: u64,
    /// The same, by child.
    #[serde(default)]
    pub restarts_by_child: BTreeMap<String, u64>,
    /// A target's latest resilver (the local rebalance between its mountpaths).
    #[serde(default)]
    pub resilver: Option<ResilverStatus>,
}

/// The answer to `show cluster`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub uuid: String,
    pub smap_version: u64,
    pub primary: String,
    pub proxies: Vec<NodeStatus>,
    pub targets: Vec<NodeStatus>,
    /// The latest global rebalance, if any ran since the primary started.
    pub rebalance: Option<RebalanceStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_values_serialise_to_the_strings_scripts_use() {
        for s in NodeState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(
            serde_json::to_value(RebState::Finished).unwrap(),
            "finished"
        );
        assert_eq!(
            serde_json::to_value(Stage::PostTraverse).unwrap(),
            "post-traverse"
        );
        assert_eq!(serde_json::to_value(Role::Target).unwrap(), "target");
        let back: NodeState = serde_json::from_str("\"maintenance\"").unwrap();
        assert_eq!(back, NodeState::Maintenance);
    }
}
