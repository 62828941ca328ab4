//! Node lifecycle (DESIGN §7): the operations, their requests and replies, and the dry-run plan.

use serde::{Deserialize, Serialize};

use super::smap::NodeId;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LifecycleOp {
    StartMaintenance,
    StopMaintenance,
    Shutdown,
    Decommission,
}

impl LifecycleOp {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleOp::StartMaintenance => "start-maintenance",
            LifecycleOp::StopMaintenance => "stop-maintenance",
            LifecycleOp::Shutdown => "shutdown",
            LifecycleOp::Decommission => "decommission",
        }
    }

    /// Whether the step can be undone with `stop-maintenance`.
    pub fn undoable(self) -> bool {
        !matches!(self, LifecycleOp::Decommission)
    }
}

impl std::fmt::Display for LifecycleOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LifecycleOp {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "start-maintenance" => LifecycleOp::StartMaintenance,
            "stop-maintenance" => LifecycleOp::StopMaintenance,
            "shutdown" => LifecycleOp::Shutdown,
            "decommission" => LifecycleOp::Decommission,
            other => return Err(Error::BadRequest(format!("unknown operation {other:?}"))),
        })
    }
}

/// A batch lifecycle request: one map change and at most one rebalance for all `nodes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRequest {
    pub op: LifecycleOp,
    pub nodes: Vec<NodeId>,
    /// Skip data migration (advanced; data can be lost).
    pub no_rebalance: bool,
    /// Decommission only: also delete the node's objects.
    pub rm_user_data: bool,
    /// Compute and return the plan; change nothing.
    pub dry_run: bool,
}

impl LifecycleRequest {
    /// `op` on `nodes` with data migration, keeping user data, for real (no flags set).
    pub fn new(op: LifecycleOp, nodes: Vec<NodeId>) -> Self {
        LifecycleRequest {
            op,
            nodes,
            no_rebalance: false,
            rm_user_data: false,
            dry_run: false,
        }
    }
}

/// What a mutating command returns (`--json`: `rebalance_id`, `smap_version`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LifecycleReply {
    pub rebalance_id: Option<String>,
    pub smap_version: u64,
    /// Nodes the operation changed.
    pub affected: Vec<String>,
    /// Nodes left alone because they already were in the requested state.
    pub skipped: Vec<String>,
    /// Nodes the operation completed on at once (no rebalance needed).
    pub completed: Vec<String>,
    /// Set for a dry run.
    pub plan: Option<Plan>,
}

/// Data movement one source→destination pair would carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanMove {
    pub from: String,
    pub to: String,
    pub objs: u64,
    pub bytes: u64,
}

/// A target's capacity after the planned moves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanCapacity {
    pub target: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub cap_avail_before: u64,
    pub cap_avail_after: u64,
    pub cap_used_pct_after: f64,
}

/// What a lifecycle step would do, from the dry-run: nothing is changed to compute it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub op: String,
    pub nodes: Vec<String>,
    pub rebalance: bool,
    pub moves: Vec<PlanMove>,
    pub capacity: Vec<PlanCapacity>,
    pub objs_total: u64,
    pub bytes_total: u64,
    /// False when the remaining targets cannot hold the data.
    pub fits: bool,
    pub warnings: Vec<String>,
}

/// The node-side action the primary sends when a lifecycle step finalizes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeAction {
    /// Maintenance finished: stop keepalive, stay up.
    StopKeepalive,
    /// Exit the process; on restart rejoin still in maintenance.
    Shutdown,
    /// Wipe metadata (and objects with `rm_user_data`) and exit.
    Decommission { rm_user_data: bool },
}

/// Cluster-wide operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterOp {
    Shutdown,
    Decommission { rm_user_data: bool },
}
