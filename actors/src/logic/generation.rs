//! Membership decisions of the primary, without the network (DESIGN §7, §8): who takes part in
//! a new rebalance generation, how a join changes the map, and what finalising a lifecycle step
//! does to the map and to which nodes.

use crate::error::{Error, Result};
use crate::types::smap::{Flags, Node, NodeId, Rmd, Role, Smap, rebalance_id};
use crate::types::status::GenRecord;

/// The outcome a generation that left objects unmoved is recorded with.
pub const FAILED: &str = "finished with errors";

/// The RMD of the next generation over `smap`.
pub fn new_rmd(smap: &Smap, current_version: u64) -> Rmd {
    let participants = smap
        .targets
        .values()
        // Post-rebalance maintenance nodes hold nothing; they may be powered off. Everyone else
        // takes part, offline or not: a leaving node's data must move before it is finalised,
        // so an offline participant holds the generation up (shown in blocked_by) until it
        // returns or is removed after the grace period (which starts a new generation).
        .filter(|n| !n.flags.contains(Flags::MAINT_POST_REB))
        .map(|n| n.id.clone())
        .collect();
    let finalize = smap
        .all_nodes()
        .filter(|n| n.in_transition())
        .map(|n| n.id.clone())
        .collect();
    Rmd {
        version: current_version + 1,
        smap_version: smap.version,
        participants,
        finalize,
        trigger: String::new(),
    }
}

/// When a generation that finished with errors is due to run again: `None` when the newest
/// record is not the current generation's, or it did not fail, or retries are off. The wait
/// doubles with each failure in a row (read from the history, so that a new primary goes on
/// where the old one stopped), up to 16 times `retry_secs`.
pub fn retry_due(history: &[GenRecord], current: u64, retry_secs: u64) -> Option<u64> {
    let last = history.last()?;
    if retry_secs == 0 || last.id != rebalance_id(current) || last.outcome != FAILED {
        return None;
    }
    let in_a_row = history
        .iter()
        .rev()
        .take_while(|r| r.outcome == FAILED)
        .count() as u32;
    let wait = retry_secs.saturating_mul(1 << in_a_row.saturating_sub(1).min(4));
    Some(last.finished.saturating_add(wait))
}

/// How a join changes the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinAdmission {
    /// The map with the node in it (version bumped when anything changed).
    pub next: Smap,
    pub changed: bool,
    /// The node was not in the map before.
    pub newcomer: bool,
    /// A new active target: data must move onto it.
    pub added_active_target: bool,
}

/// Admits `node` (self-join or admin join). `uuid`: the cluster it says it belonged to.
pub fn admit_join(smap: &Smap, node: &Node, uuid: Option<&str>) -> Result<JoinAdmission> {
    if let Some(u) = uuid
        && u != smap.uuid
    {
        return Err(Error::ClusterIntegrity(format!(
            "{} belongs to cluster {u}, this is cluster {}: refusing to merge clusters (start it with an empty data dir to join as a new node)",
            node.display_name(),
            smap.uuid
        )));
    }
    if let Some(other) = smap
        .all_nodes()
        .find(|n| n.addr == node.addr && n.id != node.id)
    {
        return Err(Error::BadRequest(format!(
            "address {} is already used by {} in the cluster map",
            node.addr,
            other.display_name()
        )));
    }
    let mut next = smap.clone();
    let (newcomer, added_active_target) = match smap.get(&node.id) {
        Some(cur) => {
            // A returning node keeps the flags the map has for it (maintenance survives
            // restarts); only its address may change.
            let mut n = cur.clone();
            n.addr = node.addr.clone();
            next.insert(n);
            (false, false)
        }
        None => {
            let mut n = node.clone();
            // Flags come from the map; a newcomer keeps only its own electability.
            n.flags = Flags(node.flags.0 & Flags::NON_ELECTABLE.0);
            let target = n.role == Role::Target;
            next.insert(n);
            (true, target)
        }
    };
    let changed = next != *smap;
    if changed {
        next.version = smap.version + 1;
    }
    Ok(JoinAdmission {
        next,
        changed,
        newcomer,
        added_active_target,
    })
}

/// What finalising lifecycle steps does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finalization {
    /// The map with post-rebalance flags set and pending shutdowns cleared, when it changes.
    pub next: Option<Smap>,
    /// Nodes to tell to exit (after the map is pushed).
    pub shutdown: Vec<Node>,
    /// Nodes to tell to wipe themselves and exit, with `rm_user_data`; they leave the map once
    /// told (see [`remove_nodes`]).
    pub decommission: Vec<(Node, bool)>,
}

/// Final step for `nodes` still in transition: post-rebalance maintenance, shutdown, or
/// decommission. Idempotent: it acts on flags, and a node already finalised has none left to
/// act on. `after_rebalance` is false for `--no-rebalance` (and proxy-only) operations:
/// maintenance then ends without the post-rebalance flag, as in AIStore.
pub fn finalize(smap: &Smap, nodes: &[NodeId], after_rebalance: bool) -> Finalization {
    let mut next = smap.clone();
    let mut out = Finalization::default();
    for id in nodes {
        let Some(n) = next.get_mut(id) else { continue };
        if n.flags.contains(Flags::DECOMM) {
            out.decommission
                .push((n.clone(), n.flags.contains(Flags::RM_USER_DATA)));
        } else if n.flags.contains(Flags::MAINT) {
            if after_rebalance {
                n.flags.set(Flags::MAINT_POST_REB);
            }
            if n.flags.contains(Flags::SHUTDOWN) {
                n.flags.clear(Flags::SHUTDOWN);
                out.shutdown.push(n.clone());
            }
        }
    }
    if next != *smap {
        next.version = smap.version + 1;
        out.next = Some(next);
    }
    out
}

/// The map without `ids` (those still in it), version bumped; `None` when nothing changes.
pub fn remove_nodes(smap: &Smap, ids: &[NodeId]) -> Option<Smap> {
    let mut next = smap.clone();
    for id in ids {
        next.remove(id);
    }
    (next != *smap).then(|| {
        next.version = smap.version + 1;
        next
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(g: u64, outcome: &str, finished: u64) -> GenRecord {
        GenRecord {
            id: rebalance_id(g),
            outcome: outcome.into(),
            finished,
            errors: u64::from(outcome == FAILED),
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_generation_is_retried_later_after_each_failure_in_a_row() {
        let ok = rec(3, "finished", 100);
        let once = [ok.clone(), rec(4, FAILED, 1000)];
        assert_eq!(retry_due(&once, 4, 30), Some(1030));
        // Only the current generation's failure: a newer one (running, or done) has the say.
        assert_eq!(retry_due(&once, 5, 30), None);
        assert_eq!(retry_due(&once, 4, 0), None, "retries off");
        assert_eq!(
            retry_due(std::slice::from_ref(&ok), 3, 30),
            None,
            "finished cleanly"
        );
        let superseded = [rec(4, "superseded by g5", 1000)];
        assert_eq!(retry_due(&superseded, 4, 30), None);
        assert_eq!(retry_due(&[], 4, 30), None);

        let thrice = [
            ok,
            rec(4, FAILED, 10),
            rec(5, FAILED, 20),
            rec(6, FAILED, 1000),
        ];
        assert_eq!(retry_due(&thrice, 6, 30), Some(1000 + 4 * 30));
        let many: Vec<GenRecord> = (1..=9).map(|g| rec(g, FAILED, 1000)).collect();
        assert_eq!(retry_due(&many, 9, 30), Some(1000 + 16 * 30), "capped");
        assert_eq!(retry_due(&many, 9, u64::MAX), Some(u64::MAX), "no overflow");
    }

    fn cluster(targets: usize) -> Smap {
        let mut m = Smap::bootstrap(Node::new(NodeId("pp1".into()), Role::Proxy, "p:1".into()));
        for i in 0..targets {
            m.insert(Node::new(
                NodeId(format!("t{i}")),
                Role::Target,
                format!("t:{i}"),
            ));
        }
        m
    }

    #[test]
    fn participants_exclude_post_rebalance_nodes_and_finalize_lists_transitions() {
        let mut m = cluster(3);
        m.targets.get_mut(&NodeId("t0".into())).unwrap().flags =
            Flags::MAINT | Flags::MAINT_POST_REB;
        m.targets.get_mut(&NodeId("t1".into())).unwrap().flags = Flags::DECOMM;
        let r = new_rmd(&m, 4);
        assert_eq!(r.version, 5);
        assert_eq!(
            r.participants,
            vec![NodeId("t1".into()), NodeId("t2".into())]
        );
        assert_eq!(r.finalize, vec![NodeId("t1".into())]);
    }

    #[test]
    fn joins_newcomers_returners_and_refusals() {
        let m = cluster(1);
        let new = Node::new(NodeId("t9".into()), Role::Target, "t:9".into());
        let a = admit_join(&m, &new, None).unwrap();
        assert!(a.changed && a.newcomer && a.added_active_target);
        assert_eq!(a.next.version, m.version + 1);
        // Returning with the same address changes nothing; with a new address bumps once.
        let back = admit_join(&a.next, &new, Some(&m.uuid)).unwrap();
        assert!(!back.changed && !back.newcomer);
        let mut moved = new.clone();
        moved.addr = "t:10".into();
        let back = admit_join(&a.next, &moved, None).unwrap();
        assert!(back.changed && !back.added_active_target);
        // A newcomer cannot bring flags other than its electability.
        let mut sneaky = Node::new(NodeId("p7".into()), Role::Proxy, "p:7".into());
        sneaky.flags = Flags::NON_ELECTABLE | Flags::MAINT_POST_REB;
        let a = admit_join(&m, &sneaky, None).unwrap();
        assert_eq!(a.next.get(&sneaky.id).unwrap().flags, Flags::NON_ELECTABLE);
        assert!(matches!(
            admit_join(&m, &new, Some("other-cluster")),
            Err(Error::ClusterIntegrity(_))
        ));
        let thief = Node::new(NodeId("t8".into()), Role::Target, "t:0".into());
        assert!(matches!(
            admit_join(&m, &thief, None),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn finalisation_is_idempotent_and_per_flag() {
        let mut m = cluster(3);
        m.targets.get_mut(&NodeId("t0".into())).unwrap().flags = Flags::MAINT;
        m.targets.get_mut(&NodeId("t1".into())).unwrap().flags = Flags::MAINT | Flags::SHUTDOWN;
        m.targets.get_mut(&NodeId("t2".into())).unwrap().flags =
            Flags::DECOMM | Flags::RM_USER_DATA;
        let ids: Vec<NodeId> = m.targets.keys().cloned().collect();
        let f = finalize(&m, &ids, true);
        let next = f.next.clone().unwrap();
        assert_eq!(next.version, m.version + 1);
        let flags = |id: &str| next.get(&NodeId(id.into())).unwrap().flags;
        assert!(flags("t0").contains(Flags::MAINT_POST_REB));
        assert!(
            flags("t1").contains(Flags::MAINT_POST_REB) && !flags("t1").contains(Flags::SHUTDOWN)
        );
        assert_eq!(f.shutdown.len(), 1);
        assert_eq!(
            f.decommission,
            vec![(m.get(&NodeId("t2".into())).unwrap().clone(), true)]
        );
        // Again on the result: nothing left to do but the decommission (still in the map).
        let again = finalize(&next, &ids, true);
        assert!(again.next.is_none() && again.shutdown.is_empty());
        let gone = remove_nodes(&next, &[NodeId("t2".into())]).unwrap();
        assert_eq!(gone.version, next.version + 1);
        assert!(remove_nodes(&gone, &[NodeId("t2".into())]).is_none());
        // Without a rebalance, maintenance ends without the post-rebalance flag.
        let f = finalize(&m, &[NodeId("t0".into())], false);
        assert!(f.next.is_none());
    }
}
