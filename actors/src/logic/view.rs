//! `show cluster` as the primary builds it (DESIGN §7, §11): one row per node from the map's
//! facts, the node's own stats, keepalive health and the latest rebalance — the red/cyan rule
//! for maintenance included.

use std::collections::{HashMap, HashSet};

use crate::types::smap::{Flags, Node, NodeId, Role, Smap};
use crate::types::status::{
    ClusterStatus, NodeState, NodeStats, NodeStatus, RebState, RebalanceStatus, Stage,
};

/// A finished rebalance is shown as `finished(gN)` for this long (as AIStore does).
pub const SHOW_FINISHED_FOR_SECS: u64 = 300;

/// The status of `n`: flags first, then health.
pub fn node_state(n: &Node, offline: bool, reachable: bool) -> NodeState {
    if n.flags.contains(Flags::DECOMM) {
        NodeState::Decommission
    } else if n.flags.contains(Flags::MAINT) {
        NodeState::Maintenance
    } else if offline || !reachable {
        NodeState::Offline
    } else {
        NodeState::Online
    }
}

/// The REBALANCE cell of a target: `running(g5)`, `finished(g5)`, `aborted(g5)` or `-`.
pub fn rebalance_cell(n: &Node, reb: Option<&RebalanceStatus>, now_unix: u64) -> String {
    let Some(r) = reb else { return "-".into() };
    if n.role != Role::Target {
        return "-".into();
    }
    let Some(mine) = r.targets.iter().find(|t| t.id == n.id.0) else {
        return "-".into();
    };
    match r.state {
        RebState::Running if mine.stage == Stage::Done => format!("finished({})", r.id),
        RebState::Running => format!("running({})", r.id),
        RebState::Finished => {
            let recent = r
                .finished
                .is_some_and(|f| now_unix.saturating_sub(f) < SHOW_FINISHED_FOR_SECS);
            if recent {
                format!("finished({})", r.id)
            } else {
                "-".into()
            }
        }
        RebState::Aborted => format!("aborted({})", r.id),
    }
}

/// One row; `stats` is `None` when the node did not answer.
pub fn node_row(
    n: &Node,
    primary: &NodeId,
    stats: Option<&NodeStats>,
    offline: bool,
    reb: Option<&RebalanceStatus>,
    now_unix: u64,
) -> NodeStatus {
    let reachable = stats.is_some();
    let s = stats.cloned().unwrap_or_default();
    // Leaving and not yet finalised: its data may still be the only copy (a rebalance runs,
    // or ended with errors, or there was none) — red, do not power off. Only the
    // post-rebalance flag, set when a clean rebalance completed, makes it safe.
    let leaving = n.flags.intersects(Flags::MAINT | Flags::DECOMM);
    let migrating = leaving && !n.flags.contains(Flags::MAINT_POST_REB);
    NodeStatus {
        id: n.id.0.clone(),
        role: n.role,
        mem_used_pct: s.mem_used_pct,
        mem_avail: s.mem_avail,
        cap_used_pct: s.cap_used_pct,
        cap_avail: s.cap_avail,
        cpu_used_pct: s.cpu_used_pct,
        rebalance: rebalance_cell(n, reb, now_unix),
        uptime_secs: s.uptime_secs,
        status: node_state(n, offline, reachable),
        flags: n.flags.names().into_iter().map(String::from).collect(),
        addr: n.addr.clone(),
        http_url: format!("http://{}", n.addr),
        reachable,
        migrating,
        safe_to_power_off: n.flags.contains(Flags::MAINT | Flags::MAINT_POST_REB)
            && !n.flags.contains(Flags::DECOMM),
        is_primary: &n.id == primary,
        non_electable: n.flags.contains(Flags::NON_ELECTABLE),
        object_count: s.object_count,
        mountpaths: s.mountpaths,
        restarts: s.restarts.values().sum(),
        restarts_by_child: s.restarts,
        resilver: s.resilver,
    }
}

/// The whole `show cluster` answer.
pub fn cluster_status(
    smap: &Smap,
    stats: &HashMap<NodeId, Option<NodeStats>>,
    offline: &HashSet<NodeId>,
    reb: Option<RebalanceStatus>,
    now_unix: u64,
) -> ClusterStatus {
    let row = |n: &Node| {
        node_row(
            n,
            &smap.primary,
            stats.get(&n.id).and_then(|s| s.as_ref()),
            offline.contains(&n.id),
            reb.as_ref(),
            now_unix,
        )
    };
    ClusterStatus {
        uuid: smap.uuid.clone(),
        smap_version: smap.version,
        primary: smap.primary.0.clone(),
        proxies: smap.proxies.values().map(row).collect(),
        targets: smap.targets.values().map(row).collect(),
        rebalance: reb.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::status::TargetRebStatus;

    fn target(id: &str, flags: Flags) -> Node {
        let mut n = Node::new(NodeId(id.into()), Role::Target, "t:1".into());
        n.flags = flags;
        n
    }

    fn reb(state: RebState, stage: Stage, finished: Option<u64>) -> RebalanceStatus {
        RebalanceStatus {
            id: "g4".into(),
            state,
            targets: vec![TargetRebStatus {
                id: "t1".into(),
                stage,
                ..Default::default()
            }],
            finished,
            ..Default::default()
        }
    }

    #[test]
    fn maintenance_is_red_while_migrating_and_cyan_once_safe() {
        let p = NodeId("p".into());
        let s = NodeStats::default();
        let running = reb(RebState::Running, Stage::Traverse, None);
        let n = target("t1", Flags::MAINT);
        let row = node_row(&n, &p, Some(&s), false, Some(&running), 0);
        assert_eq!(row.status, NodeState::Maintenance);
        assert!(row.migrating && !row.safe_to_power_off);
        assert_eq!(row.rebalance, "running(g4)");
        let n = target("t1", Flags::MAINT | Flags::MAINT_POST_REB);
        let done = reb(RebState::Finished, Stage::Done, Some(100));
        let row = node_row(&n, &p, Some(&s), false, Some(&done), 150);
        assert!(!row.migrating && row.safe_to_power_off);
        assert_eq!(row.rebalance, "finished(g4)");
        let row = node_row(
            &n,
            &p,
            Some(&s),
            false,
            Some(&done),
            100 + SHOW_FINISHED_FOR_SECS,
        );
        assert_eq!(row.rebalance, "-");
        // Decommission is never "safe to power off".
        let n = target("t1", Flags::DECOMM);
        let row = node_row(&n, &p, None, false, None, 0);
        assert_eq!(row.status, NodeState::Decommission);
        assert!(!row.safe_to_power_off && !row.reachable);
    }

    #[test]
    fn health_decides_online_and_offline() {
        let p = NodeId("p".into());
        let n = target("t1", Flags::default());
        let s = NodeStats::default();
        assert_eq!(
            node_row(&n, &p, Some(&s), false, None, 0).status,
            NodeState::Online
        );
        assert_eq!(
            node_row(&n, &p, Some(&s), true, None, 0).status,
            NodeState::Offline
        );
        assert_eq!(
            node_row(&n, &p, None, false, None, 0).status,
            NodeState::Offline
        );
    }
}
