//! Highest-random-weight placement, bit-compatible with AIStore (DESIGN §5).
//!
//! The same node IDs and object names give the same owner here as in AIStore's own SDK; the
//! vectors in `fixtures/hrw_vectors.json` were produced by that SDK and are checked in tests.

pub use crate::types::smap::{DIGEST_SEED as SEED, digest};
use crate::types::smap::{Node, Smap};

const GOLDEN: u64 = 0x9e3779b97f4a7c15;
const C1: u64 = 0xbf58476d1ce4e5b9;
const C2: u64 = 0x94d049bb133111eb;

/// Object uname in the global namespace of the `ais` provider.
pub fn uname(bucket: &str, object: &str) -> String {
    format!("ais/@#/{bucket}/{object}")
}

/// AIStore's xoshiro256**-style finaliser over `node_digest ^ obj_digest`.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(C1);
    z = (z ^ (z >> 27)).wrapping_mul(C2);
    z = (z ^ (z >> 31)).wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(C1);
    z = (z ^ (z >> 27)).wrapping_mul(C2);
    z = (z ^ (z >> 31)).wrapping_mul(5);
    z.rotate_left(7).wrapping_mul(9)
}

/// Picks the item with the greatest weight; ties go to the later item, as in AIStore (`>=`).
fn argmax<'a, T>(items: impl Iterator<Item = (&'a T, u64)>, obj_digest: u64) -> Option<&'a T> {
    let mut best: Option<(&T, u64)> = None;
    for (item, d) in items {
        let w = mix(d ^ obj_digest);
        if best.is_none_or(|(_, bw)| w >= bw) {
            best = Some((item, w));
        }
    }
    best.map(|(t, _)| t)
}

/// The owner of `bucket/object`: the active target with the greatest weight.
pub fn owner<'a>(smap: &'a Smap, bucket: &str, object: &str) -> Option<&'a Node> {
    owner_by_digest(smap, digest(&uname(bucket, object)))
}

pub fn owner_by_digest(smap: &Smap, obj_digest: u64) -> Option<&Node> {
    argmax(smap.active_targets().map(|n| (n, n.id_digest)), obj_digest)
}

/// A mountpath as placement sees it: its path and that path's digest.
#[derive(Clone, Debug)]
pub struct MountpathKey {
    pub path: String,
    pub digest: u64,
}

impl MountpathKey {
    pub fn new(path: impl Into<String>) -> Self {
        let path = path.into();
        let digest = digest(&path);
        MountpathKey { path, digest }
    }
}

/// Index of the mountpath that should hold the object, among `mountpaths`.
pub fn mountpath_index(mountpaths: &[MountpathKey], obj_digest: u64) -> Option<usize> {
    let indexed: Vec<(usize, u64)> = mountpaths
        .iter()
        .enumerate()
        .map(|(i, m)| (i, m.digest))
        .collect();
    argmax(indexed.iter().map(|(i, d)| (i, *d)), obj_digest).copied()
}

/// The best of `candidates` — `(index, path digest)` pairs, as a target's usable mountpaths —
/// for an object: the same choice as [`mountpath_index`] over the same paths.
pub fn best_mountpath(candidates: &[(usize, u64)], obj_digest: u64) -> Option<usize> {
    argmax(candidates.iter().map(|(i, d)| (i, *d)), obj_digest).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::smap::{Flags, NodeId, Role};
    use proptest::prelude::*;

    fn cluster(ids: &[String]) -> Smap {
        let mut smap = Smap::bootstrap(Node::new(
            NodeId("prxp8080".into()),
            Role::Proxy,
            "x".into(),
        ));
        for id in ids {
            smap.insert(Node::new(NodeId(id.clone()), Role::Target, "x".into()));
        }
        smap
    }

    fn target_ids(n: usize, salt: u32) -> Vec<String> {
        (0..n)
            .map(|i| format!("{salt:x}k{i}t{}", 8081 + i))
            .collect()
    }

    #[test]
    fn mix_is_deterministic_and_spreads() {
        assert_eq!(mix(0), mix(0));
        assert_ne!(mix(0), mix(1));
    }

    #[test]
    fn no_active_targets_means_no_owner() {
        let mut smap = cluster(&target_ids(2, 0));
        for n in smap.targets.values_mut() {
            n.flags.set(Flags::MAINT);
        }
        assert!(owner(&smap, "b", "o").is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Each of N targets gets a fair share: within ±35% of objects/N for 4000 objects.
        #[test]
        fn spread_is_balanced(n in 2usize..8, salt in any::<u32>()) {
            let smap = cluster(&target_ids(n, salt));
            let mut counts = std::collections::HashMap::new();
            let objs = 4000;
            for i in 0..objs {
                let o = owner(&smap, "bench", &format!("obj-{salt}-{i}")).unwrap();
                *counts.entry(o.id.clone()).or_insert(0usize) += 1;
            }
            let fair = objs as f64 / n as f64;
            prop_assert_eq!(counts.len(), n);
            for c in counts.values() {
                prop_assert!((*c as f64) > fair * 0.65 && (*c as f64) < fair * 1.35, "{counts:?}");
            }
        }

        /// Taking one of N targets out moves only its objects (≈1/N), nothing else.
        #[test]
        fn removal_moves_only_the_leavers_objects(n in 2usize..8, salt in any::<u32>(), pick in any::<usize>()) {
            let ids = target_ids(n, salt);
            let before = cluster(&ids);
            let mut after = before.clone();
            let leaving = NodeId(ids[pick % n].clone());
            after.targets.get_mut(&leaving).unwrap().flags.set(Flags::MAINT);
            let objs = 3000;
            let mut moved = 0;
            for i in 0..objs {
                let name = format!("o{i}");
                let a = owner(&before, "b", &name).unwrap().id.clone();
                let b = owner(&after, "b", &name).unwrap().id.clone();
                if a != b {
                    prop_assert_eq!(&a, &leaving, "an object of a staying target moved");
                    moved += 1;
                }
            }
            let share = objs as f64 / n as f64;
            prop_assert!((moved as f64) > share * 0.6 && (moved as f64) < share * 1.4, "moved {moved} of {objs} with n={n}");
        }

        /// A mountpath is chosen among a target's mountpaths and adding one moves ≈1/(M+1).
        #[test]
        fn mountpath_choice_is_stable(m in 1usize..5, salt in any::<u32>()) {
            let mps: Vec<MountpathKey> = (0..m).map(|i| MountpathKey::new(format!("/data/{salt}/mp{i}"))).collect();
            let mut more = mps.clone();
            more.push(MountpathKey::new(format!("/data/{salt}/mp{m}")));
            for i in 0..500 {
                let d = digest(&uname("b", &format!("o{i}")));
                let a = mountpath_index(&mps, d).unwrap();
                let b = mountpath_index(&more, d).unwrap();
                prop_assert!(a < m);
                prop_assert!(b == a || b == m);
            }
        }
    }
}
