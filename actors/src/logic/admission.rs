//! Admission (DESIGN §7): which nodes a lifecycle request changes, the map it produces, and
//! whether a rebalance follows — pure functions over the cluster map, tested alone.

use crate::error::{Error, Result};
use crate::types::lifecycle::{LifecycleOp, LifecycleRequest};
use crate::types::smap::{Flags, NodeId, Role, Smap};

/// The outcome of admission: which nodes change and whether a rebalance is needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The new map (version bumped once) when anything changes.
    pub smap: Option<Smap>,
    pub affected: Vec<NodeId>,
    pub skipped: Vec<NodeId>,
    /// True when an active↔inactive transition of a target happened and migration is wanted.
    pub rebalance: bool,
    /// True when a target became active or inactive: data would have to move (whether or not
    /// `--no-rebalance` skips it).
    pub moves_data: bool,
}

/// Applies admission rules for `req` to `smap`. Never mutates `smap`; all-or-nothing.
pub fn admit(smap: &Smap, req: &LifecycleRequest) -> Result<Admission> {
    if req.nodes.is_empty() {
        return Err(Error::BadRequest("no nodes given".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for id in &req.nodes {
        if !seen.insert(id) {
            return Err(Error::BadRequest(format!(
                "{id} is specified more than once"
            )));
        }
        let Some(node) = smap.get(id) else {
            return Err(Error::NotFound(format!(
                "node {id} is not in the cluster map"
            )));
        };
        if *id == smap.primary {
            return Err(Error::BadRequest(format!(
                "{} is primary (cannot {} the primary node)",
                node.display_name(),
                req.op
            )));
        }
        if req.rm_user_data && req.op != LifecycleOp::Decommission {
            return Err(Error::BadRequest(
                "option --rm-user-data is valid only for decommissioning".into(),
            ));
        }
        if node.flags.contains(Flags::DECOMM) && req.op != LifecycleOp::Decommission {
            return Err(Error::BadRequest(format!(
                "{} is currently being decommissioned",
                node.display_name()
            )));
        }
    }

    let active_before = smap.count_active_targets();
    let mut next = smap.clone();
    let mut affected = Vec::new();
    let mut skipped = Vec::new();
    // A target whose leaving did not complete (its rebalance was interrupted or ended with
    // errors): repeating the operation moves its data again.
    let mut redo = false;
    for id in &req.nodes {
        let node = next.get_mut(id).expect("checked above");
        let f = node.flags;
        let changed = match req.op {
            LifecycleOp::StartMaintenance => {
                // Complete maintenance repeated: no-op. Incomplete (no post-rebalance): reapply.
                if f.contains(Flags::MAINT) && f.contains(Flags::MAINT_POST_REB) {
                    false
                } else if f.contains(Flags::MAINT) {
                    affected.push(id.clone());
                    redo |= node.role == Role::Target;
                    continue;
                } else {
                    node.flags.set(Flags::MAINT);
                    true
                }
            }
            LifecycleOp::Shutdown => {
                // A node in maintenance can still be shut down (it then exits at once).
                node.flags.set(Flags::MAINT | Flags::SHUTDOWN);
                if !f.contains(Flags::MAINT) {
                    true
                } else {
                    affected.push(id.clone());
                    continue;
                }
            }
            LifecycleOp::Decommission => {
                if f.contains(Flags::DECOMM) {
                    affected.push(id.clone());
                    redo |= node.role == Role::Target;
                    continue;
                }
                node.flags.set(Flags::DECOMM);
                if req.rm_user_data {
                    node.flags.set(Flags::RM_USER_DATA);
                }
                node.flags.clear(Flags::MAINT_POST_REB | Flags::SHUTDOWN);
                true
            }
            LifecycleOp::StopMaintenance => {
                if f.contains(Flags::MAINT) {
                    node.flags
                        .clear(Flags::MAINT | Flags::MAINT_POST_REB | Flags::SHUTDOWN);
                    true
                } else {
                    false
                }
            }
        };
        if changed {
            affected.push(id.clone());
        } else {
            skipped.push(id.clone());
        }
    }
    let map_changed = next != *smap;
    if map_changed {
        next.version = smap.version + 1;
    }
    let active_after = next.count_active_targets();
    let target_transition = req.nodes.iter().any(|id| {
        let before = smap
            .get(id)
            .map(|n| n.role == Role::Target && n.is_active());
        let after = next
            .get(id)
            .map(|n| n.role == Role::Target && n.is_active());
        before != after
    });
    let moves_data = (target_transition || redo) && active_before > 0 && active_after > 0;
    Ok(Admission {
        smap: map_changed.then_some(next),
        affected,
        skipped,
        rebalance: moves_data && !req.no_rebalance,
        moves_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::smap::Node;
    use proptest::prelude::*;

    fn smap(targets: usize) -> Smap {
        let mut m = Smap::bootstrap(Node::new(NodeId("pp8080".into()), Role::Proxy, "a".into()));
        m.insert(Node::new(NodeId("p2p8081".into()), Role::Proxy, "a".into()));
        for i in 0..targets {
            m.insert(Node::new(
                NodeId(format!("t{i}t90{i}")),
                Role::Target,
                "a".into(),
            ));
        }
        m
    }

    fn req(op: LifecycleOp, ids: &[&str]) -> LifecycleRequest {
        LifecycleRequest::new(op, ids.iter().map(|s| NodeId(s.to_string())).collect())
    }

    #[test]
    fn batch_bumps_version_once_and_rebalances_once() {
        let m = smap(4);
        let a = admit(
            &m,
            &req(LifecycleOp::StartMaintenance, &["t0t900", "t1t901"]),
        )
        .unwrap();
        let next = a.smap.unwrap();
        assert_eq!(next.version, m.version + 1);
        assert_eq!(next.count_active_targets(), 2);
        assert!(a.rebalance);
        assert_eq!(a.affected.len(), 2);
    }

    #[test]
    fn refusals_change_nothing() {
        let m = smap(3);
        assert!(matches!(
            admit(&m, &req(LifecycleOp::Shutdown, &["pp8080"])),
            Err(Error::BadRequest(msg)) if msg.contains("is primary")
        ));
        assert!(matches!(
            admit(&m, &req(LifecycleOp::Shutdown, &["t0t900", "nope"])),
            Err(Error::NotFound(_))
        ));
        assert!(admit(&m, &req(LifecycleOp::Shutdown, &["t0t900", "t0t900"])).is_err());
        let mut r = req(LifecycleOp::Shutdown, &["t0t900"]);
        r.rm_user_data = true;
        assert!(admit(&m, &r).is_err());
    }

    #[test]
    fn decommissioning_node_refuses_maintenance_changes() {
        let m = smap(3);
        let d = admit(&m, &req(LifecycleOp::Decommission, &["t0t900"]))
            .unwrap()
            .smap
            .unwrap();
        for op in [LifecycleOp::StartMaintenance, LifecycleOp::StopMaintenance] {
            assert!(
                matches!(admit(&d, &req(op, &["t0t900"])), Err(Error::BadRequest(m)) if m.contains("decommissioned"))
            );
        }
    }

    #[test]
    fn repeats_of_complete_operations_are_noops() {
        let m = smap(3);
        let a = admit(&m, &req(LifecycleOp::StopMaintenance, &["t0t900"])).unwrap();
        assert!(a.smap.is_none() && !a.rebalance);
        assert_eq!(a.skipped.len(), 1);
        let mut post = m.clone();
        post.targets
            .get_mut(&NodeId("t0t900".into()))
            .unwrap()
            .flags = Flags::MAINT | Flags::MAINT_POST_REB;
        let a = admit(&post, &req(LifecycleOp::StartMaintenance, &["t0t900"])).unwrap();
        assert!(a.smap.is_none() && !a.rebalance);
    }

    #[test]
    fn repeating_an_incomplete_leave_moves_the_data_again() {
        let m = smap(3);
        let a = admit(&m, &req(LifecycleOp::StartMaintenance, &["t0t900"])).unwrap();
        let maint = a.smap.unwrap();
        // Its rebalance ended with errors: no post-rebalance flag. Again: a new rebalance.
        let again = admit(&maint, &req(LifecycleOp::StartMaintenance, &["t0t900"])).unwrap();
        assert!(again.smap.is_none() && again.rebalance, "{again:?}");
        assert_eq!(again.affected.len(), 1);
        let d = admit(&m, &req(LifecycleOp::Decommission, &["t0t900"]))
            .unwrap()
            .smap
            .unwrap();
        assert!(
            admit(&d, &req(LifecycleOp::Decommission, &["t0t900"]))
                .unwrap()
                .rebalance
        );
    }

    #[test]
    fn proxies_and_no_rebalance_do_not_rebalance() {
        let m = smap(3);
        let a = admit(&m, &req(LifecycleOp::StartMaintenance, &["p2p8081"])).unwrap();
        assert!(a.smap.is_some() && !a.rebalance);
        let mut r = req(LifecycleOp::StartMaintenance, &["t0t900"]);
        r.no_rebalance = true;
        let a = admit(&m, &r).unwrap();
        assert!(a.smap.is_some() && !a.rebalance);
    }

    proptest! {
        /// Any sequence of admitted operations keeps the state machine's invariants: the primary
        /// is never flagged, versions only grow by one per change, DECOMM nodes never return to
        /// MAINT changes, and a no-op admission never asks for a rebalance.
        #[test]
        fn state_machine_invariants(steps in proptest::collection::vec((0usize..4, proptest::collection::vec(0usize..5, 1..3), any::<bool>()), 1..30)) {
            let mut m = smap(4);
            let ids: Vec<NodeId> = m.all_nodes().map(|n| n.id.clone()).collect();
            let ops = [LifecycleOp::StartMaintenance, LifecycleOp::StopMaintenance, LifecycleOp::Shutdown, LifecycleOp::Decommission];
            for (op, nodes, no_reb) in steps {
                let mut r = req(ops[op], &[]);
                r.nodes = nodes.iter().map(|i| ids[i % ids.len()].clone()).collect();
                r.no_rebalance = no_reb;
                let decommissioning = r.nodes.iter().any(|id| m.get(id).is_some_and(|n| n.flags.contains(Flags::DECOMM)));
                let res = admit(&m, &r);
                if decommissioning && r.op != LifecycleOp::Decommission {
                    prop_assert!(res.is_err(), "a decommissioning node accepted {:?}", r.op);
                }
                if let Ok(a) = res {
                    if let Some(next) = a.smap {
                        prop_assert_eq!(next.version, m.version + 1);
                        prop_assert!(next.primary_node().unwrap().flags == Flags::default());
                        m = next;
                    } else {
                        // Without a map change, only a leave that did not complete moves data.
                        let incomplete = a.affected.iter().any(|id| {
                            m.get(id).is_some_and(|n| {
                                n.role == Role::Target
                                    && (n.flags.contains(Flags::DECOMM)
                                        || (n.flags.contains(Flags::MAINT)
                                            && !n.flags.contains(Flags::MAINT_POST_REB)))
                            })
                        });
                        prop_assert!(!a.rebalance || incomplete);
                    }
                }
            }
        }
    }
}
