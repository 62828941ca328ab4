//! Rebalance progress as operators see it: per-target counters and stage, cluster totals with
//! rate and ETA, and the reasons a stalled rebalance is blocked (DESIGN §8).

use serde::{Deserialize, Serialize};

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
}

/// Cluster-wide state of the latest generation, as `nodectl show rebalance --json` prints it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RebalanceStatus {
    /// `g<N>`.
    pub id: String,
    /// `running`, `finished` or `aborted`.
    pub state: String,
    /// The least advanced stage among the participating targets.
    pub stage: String,
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
}

impl RebalanceStatus {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// Fraction done in 0..=1 (bytes when there are bytes to move, else objects).
    pub fn fraction(&self) -> f64 {
        let f = if self.bytes_total > 0 {
            self.bytes_moved as f64 / self.bytes_total as f64
        } else if self.objs_total > 0 {
            self.objs_moved as f64 / self.objs_total as f64
        } else if self.state == "running" {
            0.0
        } else {
            1.0
        };
        f.clamp(0.0, 1.0)
    }
}
