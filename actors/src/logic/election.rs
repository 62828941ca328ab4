//! Primary election choices (DESIGN §9), without the network: who should take over, and whether
//! a proxy votes for a candidate.

use crate::types::smap::{Flags, Node, NodeId, Smap};

/// The proxy that should take over from `old`: electable, active, highest `id_digest`.
pub fn candidate<'a>(smap: &'a Smap, old: &NodeId) -> Option<&'a Node> {
    smap.proxies
        .values()
        .filter(|n| &n.id != old && n.is_active() && !n.flags.contains(Flags::NON_ELECTABLE))
        .max_by_key(|n| (n.id_digest, n.id.clone()))
}

/// Whether a proxy with map `smap` votes for `candidate_id` to replace `old`. `silent`: it has
/// not heard from the primary for longer than a keepalive interval either, so a partitioned
/// proxy cannot take over a healthy cluster on its own.
pub fn vote(smap: &Smap, candidate_id: &NodeId, old: &NodeId, silent: bool) -> bool {
    if &smap.primary == candidate_id {
        return true; // already follows it
    }
    if &smap.primary != old {
        return false; // we know of a different, newer primary
    }
    silent && candidate(smap, old).is_some_and(|c| &c.id == candidate_id)
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
    fn votes_need_silence_and_the_same_candidate() {
        let smap = cluster();
        let old = smap.primary.clone();
        let c = candidate(&smap, &old).unwrap().id.clone();
        assert!(vote(&smap, &c, &old, true));
        assert!(
            !vote(&smap, &c, &old, false),
            "a proxy that hears the primary says no"
        );
        let other = smap
            .proxies
            .keys()
            .find(|id| **id != c && **id != old)
            .unwrap()
            .clone();
        assert!(
            !vote(&smap, &other, &old, true),
            "not the candidate we compute"
        );
        // A voter that already follows a newer primary says no to replacing the old one.
        let mut moved = smap.clone();
        moved.primary = other.clone();
        assert!(!vote(&moved, &c, &old, true));
        assert!(vote(&moved, &other, &old, false));
    }
}
