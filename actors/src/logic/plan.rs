//! The dry-run plan of a lifecycle step (DESIGN §7): what would move where and each target's
//! capacity afterwards, from the moves the targets report — pure, so the arithmetic is tested
//! alone.

use std::collections::HashMap;

use super::admission::Admission;
use crate::types::lifecycle::{LifecycleRequest, Plan, PlanCapacity, PlanMove};
use crate::types::smap::{NodeId, Smap};
use crate::types::status::NodeStats;

/// The plan before any target is asked: warnings that do not need the data, and whether the
/// targets must be asked (a rebalance would run and has somewhere to go).
pub fn outline(
    smap: &Smap,
    req: &LifecycleRequest,
    adm: &Admission,
    rebalance_enabled: bool,
) -> (Plan, bool) {
    let next = adm.smap.as_ref().unwrap_or(smap);
    let mut plan = Plan {
        op: req.op.as_str().into(),
        nodes: req.nodes.iter().map(|n| n.0.clone()).collect(),
        rebalance: adm.rebalance && rebalance_enabled,
        fits: true,
        ..Default::default()
    };
    if next.count_active_targets() == 0 && smap.count_active_targets() > 0 {
        plan.fits = false;
        plan.warnings
            .push("no active target would remain: the data would have nowhere to go".into());
    }
    if req.no_rebalance && adm.moves_data {
        plan.warnings.push(format!(
            "executing \"{}\" _and_ not running global rebalance may lead to a loss of data!",
            req.op
        ));
    }
    let ask = adm.rebalance && next.count_active_targets() > 0;
    (plan, ask)
}

/// Completes `plan` with the moves the targets reported and their capacity figures: each
/// target's bytes in and out, space after, and a warning (and `fits = false`) for a receiver
/// that could not hold its share or would be left with under 2% free.
pub fn complete(
    mut plan: Plan,
    smap: &Smap,
    next: &Smap,
    moves: Vec<PlanMove>,
    stats: &HashMap<NodeId, Option<NodeStats>>,
) -> Plan {
    for t in smap.targets.values() {
        let bytes_in: u64 = moves
            .iter()
            .filter(|m| m.to == t.id.0)
            .map(|m| m.bytes)
            .sum();
        let bytes_out: u64 = moves
            .iter()
            .filter(|m| m.from == t.id.0)
            .map(|m| m.bytes)
            .sum();
        let s = stats.get(&t.id).cloned().flatten().unwrap_or_default();
        let avail_after = (s.cap_avail + bytes_out).saturating_sub(bytes_in);
        let total = s.cap_total.max(1);
        let used_after = 100.0 * total.saturating_sub(avail_after) as f64 / total as f64;
        let receiving = next.get(&t.id).is_some_and(|n| n.is_active());
        if receiving
            && bytes_in > 0
            && s.cap_total > 0
            && (bytes_in > s.cap_avail || avail_after < total / 50)
        {
            plan.fits = false;
            plan.warnings.push(format!(
                "t[{}] cannot hold its share: needs {bytes_in} bytes, has {} free",
                t.id, s.cap_avail
            ));
        }
        plan.capacity.push(PlanCapacity {
            target: t.id.0.clone(),
            bytes_in,
            bytes_out,
            cap_avail_before: s.cap_avail,
            cap_avail_after: avail_after,
            cap_used_pct_after: used_after,
        });
    }
    plan.objs_total = moves.iter().map(|m| m.objs).sum();
    plan.bytes_total = moves.iter().map(|m| m.bytes).sum();
    plan.moves = moves;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::admission::admit;
    use crate::types::lifecycle::LifecycleOp;
    use crate::types::smap::{Node, Role};

    fn cluster() -> Smap {
        let mut m = Smap::bootstrap(Node::new(NodeId("pp".into()), Role::Proxy, "p".into()));
        for id in ["t0", "t1"] {
            m.insert(Node::new(NodeId(id.into()), Role::Target, id.into()));
        }
        m
    }

    fn req(op: LifecycleOp, id: &str) -> LifecycleRequest {
        LifecycleRequest {
            op,
            nodes: vec![NodeId(id.into())],
            no_rebalance: false,
            rm_user_data: false,
            dry_run: true,
        }
    }

    #[test]
    fn capacity_after_the_moves_and_a_receiver_that_cannot_hold_them() {
        let m = cluster();
        let r = req(LifecycleOp::StartMaintenance, "t0");
        let adm = admit(&m, &r).unwrap();
        let (plan, ask) = outline(&m, &r, &adm, true);
        assert!(ask && plan.rebalance && plan.fits);
        let moves = vec![PlanMove {
            from: "t0".into(),
            to: "t1".into(),
            objs: 10,
            bytes: 900,
        }];
        let stats: HashMap<NodeId, Option<NodeStats>> = [
            (
                NodeId("t0".into()),
                Some(NodeStats {
                    cap_avail: 5000,
                    cap_total: 10_000,
                    ..Default::default()
                }),
            ),
            (
                NodeId("t1".into()),
                Some(NodeStats {
                    cap_avail: 1000,
                    cap_total: 10_000,
                    ..Default::default()
                }),
            ),
        ]
        .into();
        let next = adm.smap.clone().unwrap();
        let p = complete(plan.clone(), &m, &next, moves.clone(), &stats);
        assert_eq!((p.objs_total, p.bytes_total), (10, 900));
        let t1 = p.capacity.iter().find(|c| c.target == "t1").unwrap();
        assert_eq!((t1.bytes_in, t1.cap_avail_after), (900, 100));
        // 100 bytes left of 10,000 is under 2%: does not fit.
        assert!(!p.fits && p.warnings[0].contains("t[t1] cannot hold its share"));
        let t0 = p.capacity.iter().find(|c| c.target == "t0").unwrap();
        assert_eq!((t0.bytes_out, t0.cap_avail_after), (900, 5900));
    }

    #[test]
    fn nowhere_to_go_and_no_rebalance_warnings() {
        let mut m = cluster();
        m.targets.get_mut(&NodeId("t1".into())).unwrap().flags = crate::types::smap::Flags::MAINT;
        let r = req(LifecycleOp::StartMaintenance, "t0");
        let adm = admit(&m, &r).unwrap();
        let (plan, ask) = outline(&m, &r, &adm, true);
        assert!(!plan.fits && !ask);
        let mut r = req(LifecycleOp::StartMaintenance, "t0");
        r.no_rebalance = true;
        let m = cluster();
        let adm = admit(&m, &r).unwrap();
        let (plan, ask) = outline(&m, &r, &adm, true);
        assert!(!ask && !plan.rebalance);
        assert!(plan.warnings[0].contains("may lead to a loss of data"));
    }
}
