//! The dry-run plan of a lifecycle step (DESIGN §7): what would move where and each target's
//! capacity afterwards, from the moves the targets report — pure, so the arithmetic is tested
//! alone.

use std::collections::HashMap;

use super::admission::Admission;
use crate::types::config::StorageConfig;
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
/// that could not hold its share or would end past `storage`'s high-water mark — past which its
/// mountpaths take no new objects, so the rebalance could not finish.
pub fn complete(
    mut plan: Plan,
    smap: &Smap,
    next: &Smap,
    moves: Vec<PlanMove>,
    stats: &HashMap<NodeId, Option<NodeStats>>,
    storage: &StorageConfig,
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
        // As `df` and the high-water mark count it: used over used + available.
        let all = s.cap_used.saturating_add(s.cap_avail);
        let used_after = match all {
            0 => 0.0,
            _ => 100.0 * all.saturating_sub(avail_after) as f64 / all as f64,
        };
        let receiving = next.get(&t.id).is_some_and(|n| n.is_active());
        if receiving && bytes_in > 0 && s.cap_total > 0 {
            let why = if bytes_in > s.cap_avail {
                Some(format!("has {} free", s.cap_avail))
            } else if storage.past_high_water(Some(used_after), false) {
                Some(format!(
                    "would be {used_after:.1}% used, at or past the high-water mark of {}%",
                    storage.high_water_pct
                ))
            } else {
                None
            };
            if let Some(why) = why {
                plan.fits = false;
                plan.warnings.push(format!(
                    "t[{}] cannot hold its share: needs {bytes_in} bytes, {why}",
                    t.id
                ));
            }
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

    fn mark(high_water_pct: u8) -> StorageConfig {
        StorageConfig {
            high_water_pct,
            ..Default::default()
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
                    cap_used: 5000,
                    cap_total: 10_000,
                    ..Default::default()
                }),
            ),
            (
                NodeId("t1".into()),
                Some(NodeStats {
                    cap_avail: 1000,
                    cap_used: 9000,
                    cap_total: 10_000,
                    ..Default::default()
                }),
            ),
        ]
        .into();
        let next = adm.smap.clone().unwrap();
        let p = complete(plan.clone(), &m, &next, moves.clone(), &stats, &mark(95));
        assert_eq!((p.objs_total, p.bytes_total), (10, 900));
        let t1 = p.capacity.iter().find(|c| c.target == "t1").unwrap();
        assert_eq!((t1.bytes_in, t1.cap_avail_after), (900, 100));
        assert!((t1.cap_used_pct_after - 99.0).abs() < 1e-9);
        // 99% used after the moves is past the high-water mark: its mountpaths would refuse.
        assert_eq!(p.warnings.len(), 1);
        assert!(!p.fits && p.warnings[0].contains("t[t1] cannot hold its share"));
        assert!(
            p.warnings[0].contains("high-water mark of 95%"),
            "{:?}",
            p.warnings
        );
        let t0 = p.capacity.iter().find(|c| c.target == "t0").unwrap();
        assert_eq!((t0.bytes_out, t0.cap_avail_after), (900, 5900));
        assert!((t0.cap_used_pct_after - 41.0).abs() < 1e-9);
        // With the mark at 100 (nothing refused for being full), what is free decides alone.
        let p = complete(plan.clone(), &m, &next, moves.clone(), &stats, &mark(100));
        assert!(p.fits && p.warnings.is_empty(), "{:?}", p.warnings);
        let more = vec![PlanMove {
            bytes: 1001,
            ..moves[0].clone()
        }];
        let p = complete(plan.clone(), &m, &next, more, &stats, &mark(100));
        assert!(!p.fits && p.warnings[0].ends_with("needs 1001 bytes, has 1000 free"));
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
