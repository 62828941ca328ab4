//! Pre-checks before a node is stopped or destroyed (DESIGN §15; Ceph's `ok-to-stop` and
//! `safe-to-destroy`, CockroachDB's decommission pre-checks), decided from what `show cluster`
//! already knows. Shoal keeps one copy of each object, so a target that still holds objects
//! cannot stop without making them unreadable.

use serde::{Deserialize, Serialize};

use crate::types::smap::NodeId;
use crate::types::status::{ClusterStatus, NodeState, NodeStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Reads stay served and every object keeps a reachable copy if these nodes stop now.
    OkToStop,
    /// Nothing the cluster needs is on these nodes any more: they may be wiped.
    SafeToDestroy,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::OkToStop => "ok-to-stop",
            Check::SafeToDestroy => "safe-to-destroy",
        }
    }
}

/// The answer, as `nodectl cluster check … --json` prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub ok: bool,
    /// Why not (empty when `ok`).
    pub reasons: Vec<String>,
    /// Worth knowing either way (an election will follow, a node is not a member…).
    pub notes: Vec<String>,
    /// Objects on the named targets (unreadable while they are down: one copy each).
    pub objects_on_nodes: u64,
    /// A global rebalance is running.
    pub rebalance_running: bool,
}

/// Whether the cluster map (as `status` shows it) holds node `id`.
pub fn in_map(status: &ClusterStatus, id: &NodeId) -> bool {
    status
        .proxies
        .iter()
        .chain(status.targets.iter())
        .any(|n| n.id == id.0)
}

/// Decides `check` for `nodes` on the cluster as `status` shows it.
pub fn check(check: Check, status: &ClusterStatus, nodes: &[NodeId]) -> Verdict {
    let mut v = Verdict::default();
    let named = |n: &NodeStatus| nodes.iter().any(|id| id.0 == n.id);
    for id in nodes {
        if !in_map(status, id) {
            v.notes.push(format!(
                "{id} is not in the cluster map (decommissioned, or never joined): the cluster needs nothing from it"
            ));
        }
    }
    if let Some(r) = status.rebalance.as_ref().filter(|r| r.is_running()) {
        v.rebalance_running = true;
        v.reasons.push(format!(
            "rebalance {} is running: objects are moving to and from targets; wait for it (nodectl wait rebalance)",
            r.id
        ));
    }
    for t in status.targets.iter().filter(|t| named(t)) {
        let tid = format!("t[{}]", t.id);
        if !t.reachable {
            // Counts unknown; already down for reads, but destroying it could lose its objects.
            match check {
                Check::OkToStop => v
                    .notes
                    .push(format!("{tid} does not answer (already down)")),
                Check::SafeToDestroy => v.reasons.push(format!(
                    "{tid} does not answer: cannot tell whether objects are still on it"
                )),
            }
            continue;
        }
        v.objects_on_nodes += t.object_count;
        if t.object_count > 0 {
            let what = match check {
                Check::OkToStop => "would become unreadable",
                Check::SafeToDestroy => "are still on it",
            };
            v.reasons.push(format!(
                "{tid}: {} objects {what} (start maintenance or decommission it and wait for its rebalance)",
                t.object_count
            ));
        }
        if check == Check::SafeToDestroy && t.status == NodeState::Online {
            v.reasons.push(format!(
                "{tid} still takes new objects: put it in maintenance or decommission it first"
            ));
        }
    }
    let active_targets = status
        .targets
        .iter()
        .filter(|t| t.status == NodeState::Online && t.reachable)
        .count();
    let targets_stopping = status
        .targets
        .iter()
        .filter(|t| named(t) && t.status == NodeState::Online && t.reachable)
        .count();
    if active_targets > 0 && targets_stopping == active_targets {
        v.reasons
            .push("no active target would remain to store objects".into());
    }
    let proxies_left: Vec<&NodeStatus> = status
        .proxies
        .iter()
        .filter(|p| !named(p) && p.reachable && p.status == NodeState::Online)
        .collect();
    let any_proxy_named = status.proxies.iter().any(named);
    if any_proxy_named && proxies_left.is_empty() {
        v.reasons
            .push("no proxy would remain to serve requests".into());
    }
    if let Some(p) = status.proxies.iter().find(|p| named(p) && p.is_primary) {
        let successor = proxies_left.iter().any(|p| !p.non_electable);
        match (check, successor) {
            (_, false) => v.reasons.push(format!(
                "p[{}] is the primary and no other electable proxy is online",
                p.id
            )),
            (Check::OkToStop, true) => v.notes.push(format!(
                "p[{}] is the primary: another proxy is elected when it stops",
                p.id
            )),
            (Check::SafeToDestroy, true) => v.reasons.push(format!(
                "p[{}] is the primary: stop it first (another proxy is elected) and check again",
                p.id
            )),
        }
    }
    v.ok = v.reasons.is_empty();
    v
}

/// Turns the note about a node the map does not hold into a "no" unless the map records it as
/// decommissioned (drained before it left): an ID it never held is likely a typo, and a "yes"
/// would send the operator to power off the machine they meant, which still holds objects.
pub fn refuse_unknown(
    v: &mut Verdict,
    status: &ClusterStatus,
    nodes: &[NodeId],
    decommissioned: &[NodeId],
) {
    for id in nodes
        .iter()
        .filter(|id| !in_map(status, id) && !decommissioned.contains(id))
    {
        v.notes
            .retain(|n| !n.starts_with(&format!("{id} is not in the cluster map")));
        v.reasons.push(format!(
            "{id} is not in the cluster map and was never decommissioned (a typo?): nothing says its data has moved"
        ));
    }
    v.ok = v.reasons.is_empty();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::smap::Role;
    use crate::types::status::{RebState, RebalanceStatus};

    fn node(id: &str, role: Role, objects: u64) -> NodeStatus {
        NodeStatus {
            id: id.into(),
            role,
            reachable: true,
            object_count: objects,
            ..Default::default()
        }
    }

    fn cluster() -> ClusterStatus {
        let mut p0 = node("P0", Role::Proxy, 0);
        p0.is_primary = true;
        ClusterStatus {
            proxies: vec![p0, node("P1", Role::Proxy, 0)],
            targets: vec![
                node("T0", Role::Target, 10),
                node("T1", Role::Target, 12),
                node("T2", Role::Target, 0),
            ],
            ..Default::default()
        }
    }

    fn ids(s: &[&str]) -> Vec<NodeId> {
        s.iter().map(|s| NodeId(s.to_string())).collect()
    }

    #[test]
    fn a_target_with_objects_is_neither_ok_to_stop_nor_safe_to_destroy() {
        let c = cluster();
        let v = check(Check::OkToStop, &c, &ids(&["T0"]));
        assert!(!v.ok);
        assert_eq!(v.objects_on_nodes, 10);
        assert!(
            v.reasons[0].contains("10 objects would become unreadable"),
            "{v:?}"
        );
        let v = check(Check::SafeToDestroy, &c, &ids(&["T0", "T1"]));
        assert!(!v.ok);
        assert_eq!(v.objects_on_nodes, 22);
    }

    #[test]
    fn an_emptied_target_in_maintenance_is_both() {
        let mut c = cluster();
        c.targets[2].status = NodeState::Maintenance;
        assert!(check(Check::OkToStop, &c, &ids(&["T2"])).ok);
        assert!(check(Check::SafeToDestroy, &c, &ids(&["T2"])).ok);
        // Empty but still in placement: may stop, must not be destroyed.
        c.targets[2].status = NodeState::Online;
        assert!(check(Check::OkToStop, &c, &ids(&["T2"])).ok);
        let v = check(Check::SafeToDestroy, &c, &ids(&["T2"]));
        assert!(
            !v.ok && v.reasons[0].contains("still takes new objects"),
            "{v:?}"
        );
    }

    #[test]
    fn a_running_rebalance_says_no_to_both() {
        let mut c = cluster();
        c.targets[2].status = NodeState::Maintenance;
        c.rebalance = Some(RebalanceStatus {
            id: "g7".into(),
            state: RebState::Running,
            ..Default::default()
        });
        for k in [Check::OkToStop, Check::SafeToDestroy] {
            let v = check(k, &c, &ids(&["T2"]));
            assert!(!v.ok && v.rebalance_running, "{v:?}");
            assert!(v.reasons[0].contains("g7 is running"), "{v:?}");
        }
    }

    #[test]
    fn the_primary_may_stop_only_with_an_electable_successor() {
        let mut c = cluster();
        let v = check(Check::OkToStop, &c, &ids(&["P0"]));
        assert!(v.ok, "{v:?}");
        assert!(v.notes[0].contains("another proxy is elected"), "{v:?}");
        assert!(!check(Check::SafeToDestroy, &c, &ids(&["P0"])).ok);
        assert!(check(Check::SafeToDestroy, &c, &ids(&["P1"])).ok);
        c.proxies[1].non_electable = true;
        assert!(!check(Check::OkToStop, &c, &ids(&["P0"])).ok);
        let v = check(Check::OkToStop, &c, &ids(&["P0", "P1"]));
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("no proxy would remain")),
            "{v:?}"
        );
    }

    #[test]
    fn stopping_every_active_target_is_refused_and_unknown_nodes_are_noted() {
        let mut c = cluster();
        for t in &mut c.targets {
            t.object_count = 0;
        }
        let v = check(Check::OkToStop, &c, &ids(&["T0", "T1", "T2"]));
        assert!(
            v.reasons.iter().any(|r| r.contains("no active target")),
            "{v:?}"
        );
        let v = check(Check::SafeToDestroy, &c, &ids(&["GONE"]));
        assert!(
            v.ok && v.notes[0].contains("not in the cluster map"),
            "{v:?}"
        );
        // Yes only if the map says it was decommissioned; an ID it never held is a no.
        let mut gone = v.clone();
        refuse_unknown(&mut gone, &c, &ids(&["GONE"]), &ids(&["GONE"]));
        assert_eq!(gone, v);
        let mut typo = v.clone();
        refuse_unknown(&mut typo, &c, &ids(&["GONE"]), &[]);
        assert!(
            !typo.ok && typo.notes.is_empty() && typo.reasons[0].contains("never decommissioned"),
            "{typo:?}"
        );
    }

    #[test]
    fn an_unreachable_target_cannot_be_declared_safe_to_destroy() {
        let mut c = cluster();
        c.targets[2].reachable = false;
        c.targets[2].status = NodeState::Offline;
        assert!(check(Check::OkToStop, &c, &ids(&["T2"])).ok);
        assert!(!check(Check::SafeToDestroy, &c, &ids(&["T2"])).ok);
    }
}
