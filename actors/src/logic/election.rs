//! Primary election choices (DESIGN §9), without the network: who should take over, and whether
//! a proxy votes for a candidate.

use crate::types::smap::{Flags, Node, NodeId, Smap};

/// The proxies that may take over from `old`, best first: electable, active, highest
/// `id_digest` first.
pub fn ranking<'a>(smap: &'a Smap, old: &NodeId) -> Vec<&'a Node> {
    let mut r: Vec<&Node> = smap
        .proxies
        .values()
        .filter(|n| &n.id != old && n.is_active() && !n.flags.contains(Flags::NON_ELECTABLE))
        .collect();
    r.sort_by(|a, b| (b.id_digest, &b.id).cmp(&(a.id_digest, &a.id)));
    r
}

/// The proxy that should take over from `old` when every proxy can be reached.
pub fn candidate<'a>(smap: &'a Smap, old: &NodeId) -> Option<&'a Node> {
    ranking(smap, old).into_iter().next()
}

/// The proxies ranked above `candidate_id` (they take precedence while they answer).
pub fn ahead_of<'a>(smap: &'a Smap, old: &NodeId, candidate_id: &NodeId) -> Vec<&'a Node> {
    ranking(smap, old)
        .into_iter()
        .take_while(|n| &n.id != candidate_id)
        .collect()
}

/// Whether a proxy with map `smap` votes for `candidate_id` to replace `old`. `silent`: it has
/// not heard from the primary for longer than a keepalive interval either, so a partitioned
/// proxy cannot take over a healthy cluster on its own. `down`: whether a proxy ranked above
/// the candidate is unreachable — the next one may take over only when those above it are
/// down too (a dead top candidate must not stall the election).
pub fn vote(
    smap: &Smap,
    candidate_id: &NodeId,
    old: &NodeId,
    silent: bool,
    down: impl Fn(&NodeId) -> bool,
) -> bool {
    if &smap.primary == candidate_id {
        return true; // already follows it
    }
    if &smap.primary != old {
        return false; // we know of a different, newer primary
    }
    let ranked = ranking(smap, old);
    silent
        && ranked.iter().any(|n| &n.id == candidate_id)
        && ahead_of(smap, old, candidate_id)
            .iter()
            .all(|n| down(&n.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::smap::Role;

    fn proxy(id: &str, flags: Flags) -> Node {
        let mut n = Node::new(NodeId(id.into()), Role::Proxy, "a".into());
        n.flags = flags;
        n
    }

    fn cluster() -> Smap {
        let mut smap = Smap::bootstrap(proxy("p0p1", Flags::default()));
        for id in ["p1p2", "p2p3", "p3p4", "p4p5"] {
            smap.insert(proxy(id, Flags::default()));
        }
        smap
    }

    #[test]
    fn candidate_is_highest_digest_electable_active_non_primary() {
        let mut smap = cluster();
        let old = smap.primary.clone();
        let c = candidate(&smap, &old).unwrap().clone();
        assert_ne!(c.id, old);
        let best = smap
            .proxies
            .values()
            .filter(|n| n.id != old)
            .map(|n| n.id_digest)
            .max()
            .unwrap();
        assert_eq!(c.id_digest, best);
        // Non-electable and maintenance proxies never win.
        smap.proxies.get_mut(&c.id).unwrap().flags = Flags::NON_ELECTABLE;
        let c2 = candidate(&smap, &old).unwrap().clone();
        assert_ne!(c2.id, c.id);
        smap.proxies.get_mut(&c2.id).unwrap().flags = Flags::MAINT;
        let c3 = candidate(&smap, &old).unwrap();
        assert!(c3.id != c.id && c3.id != c2.id);
    }

    #[test]
    fn votes_need_silence_and_the_best_reachable_candidate() {
        let smap = cluster();
        let old = smap.primary.clone();
        let ranked: Vec<NodeId> = ranking(&smap, &old).iter().map(|n| n.id.clone()).collect();
        assert_eq!(ranked.len(), 4);
        let (first, second) = (&ranked[0], &ranked[1]);
        let up = |_: &NodeId| false;
        assert!(vote(&smap, first, &old, true, up));
        assert!(
            !vote(&smap, first, &old, false, up),
            "a proxy that hears the primary says no"
        );
        assert!(
            !vote(&smap, second, &old, true, up),
            "the best one still answers"
        );
        // The best candidate is down too: the next one may take over.
        let first_down = |id: &NodeId| id == first;
        assert!(vote(&smap, second, &old, true, first_down));
        assert!(!vote(&smap, &ranked[2], &old, true, first_down));
        let nobody = NodeId("nobody".into());
        assert!(
            !vote(&smap, &nobody, &old, true, |_| true),
            "not a proxy of the map"
        );
        // A voter that already follows a newer primary says no to replacing the old one.
        let mut moved = smap.clone();
        moved.primary = second.clone();
        assert!(!vote(&moved, first, &old, true, up));
        assert!(vote(&moved, second, &old, false, up));
    }
}
