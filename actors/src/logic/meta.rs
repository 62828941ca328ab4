//! The metadata update rules (DESIGN §3) in one place: each part is taken only when its version
//! is newer; an equal map is ignored, a lower one refused, and a map of another cluster is a
//! fatal integrity error.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::types::meta::{Meta, MetaUpdate};
use crate::types::smap::Smap;

/// Which parts an update changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    pub smap: bool,
    pub rmd: bool,
    pub bmd: bool,
    pub config: bool,
    /// Buckets the new bucket map no longer has.
    pub removed_buckets: BTreeSet<String>,
}

impl Changed {
    pub fn any(&self) -> bool {
        self.smap || self.rmd || self.bmd || self.config
    }
}

/// The outcome of [`merge`]: the new metadata (`None` when nothing changed), what changed, and
/// a refusal to report once the other parts are stored (a lower map is refused, but the parts
/// that come with it carry their own versions and are still taken).
#[derive(Debug)]
pub struct Merged {
    pub next: Option<Meta>,
    pub changed: Changed,
    pub refused: Option<Error>,
}

/// Merges `upd` into `cur`. A different cluster UUID refuses the whole update.
///
/// Nothing of `cur` is copied unless something changed, and then only the parts that did not:
/// most updates a node sees are repeats (a push it already has, a keepalive catch-up, a join
/// answer after the push), and a copy of a 1,000-node map per update was a large share of
/// every node's CPU (scale-benchmarks finding 10).
pub fn merge(cur: &Meta, upd: MetaUpdate) -> Result<Merged> {
    let mut changed = Changed::default();
    let mut refused = None;
    let smap = match upd.smap {
        Some(s) => match Smap::check_update(cur.smap.as_ref(), &s) {
            Ok(true) => Some(s),
            Ok(false) => None,
            Err(e @ Error::Downgrade { .. }) => {
                refused = Some(e);
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    changed.smap = smap.is_some();
    let rmd = upd.rmd.filter(|r| r.version > cur.rmd.version);
    changed.rmd = rmd.is_some();
    let bmd = match upd.bmd {
        Some(b) if b.version > cur.bmd.version => {
            // Bucket names become directory names: a map with a hostile one is refused whole.
            for name in &b.buckets {
                crate::logic::names::validate_bucket(name)?;
            }
            changed.removed_buckets = cur.bmd.buckets.difference(&b.buckets).cloned().collect();
            Some(b)
        }
        _ => None,
    };
    changed.bmd = bmd.is_some();
    // The secret is node-local: whatever a config carries, it is not kept.
    let config = upd
        .config
        .filter(|c| c.version > cur.config.version)
        .map(|c| c.into_shareable());
    changed.config = config.is_some();
    if !changed.any() {
        return Ok(Merged {
            next: None,
            changed,
            refused,
        });
    }
    let next = Meta {
        smap: smap.or_else(|| cur.smap.clone()),
        rmd: rmd.unwrap_or_else(|| cur.rmd.clone()),
        bmd: bmd.unwrap_or_else(|| cur.bmd.clone()),
        config: config.unwrap_or_else(|| cur.config.clone()),
    };
    Ok(Merged {
        next: Some(next),
        changed,
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::smap::{Bmd, Node, NodeId, Rmd, Role};

    fn meta() -> Meta {
        let mut smap = Smap::bootstrap(Node::new(NodeId("pp1".into()), Role::Proxy, "a".into()));
        smap.version = 5;
        Meta {
            smap: Some(smap),
            rmd: Rmd {
                version: 3,
                ..Default::default()
            },
            bmd: Bmd {
                version: 2,
                buckets: ["a".to_string(), "b".to_string()].into(),
            },
            config: Default::default(),
        }
    }

    #[test]
    fn newer_parts_are_taken_older_and_equal_are_not() {
        let cur = meta();
        let mut smap = cur.smap.clone().unwrap();
        smap.version = 6;
        let upd = MetaUpdate {
            smap: Some(smap.clone()),
            rmd: Some(Rmd {
                version: 3,
                ..Default::default()
            }),
            bmd: Some(Bmd {
                version: 3,
                buckets: ["a".to_string()].into(),
            }),
            config: None,
        };
        let m = merge(&cur, upd).unwrap();
        assert!(m.changed.smap && !m.changed.rmd && m.changed.bmd && !m.changed.config);
        assert_eq!(m.changed.removed_buckets, ["b".to_string()].into());
        assert_eq!(m.next.unwrap().smap.unwrap().version, 6);
        assert!(m.refused.is_none());
    }

    #[test]
    fn an_update_with_nothing_newer_builds_no_new_metadata() {
        let cur = meta();
        let mut older_cfg = cur.config.clone();
        older_cfg.version = 0;
        let m = merge(&cur, {
            let mut u = cur.as_update();
            u.config = Some(Box::new(older_cfg));
            u
        })
        .unwrap();
        assert!(m.next.is_none() && !m.changed.any() && m.refused.is_none());
        // Only the new part replaces; the others are the current ones.
        let upd = MetaUpdate {
            rmd: Some(Rmd {
                version: 4,
                ..Default::default()
            }),
            ..Default::default()
        };
        let next = merge(&cur, upd).unwrap().next.unwrap();
        assert_eq!(next.rmd.version, 4);
        assert_eq!(
            (&next.smap, &next.bmd, &next.config),
            (&cur.smap, &cur.bmd, &cur.config)
        );
    }

    #[test]
    fn a_lower_map_is_refused_but_its_companions_are_taken() {
        let cur = meta();
        let mut smap = cur.smap.clone().unwrap();
        smap.version = 4;
        let upd = MetaUpdate {
            smap: Some(smap),
            rmd: Some(Rmd {
                version: 4,
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = merge(&cur, upd).unwrap();
        assert!(matches!(
            m.refused,
            Some(Error::Downgrade { have: 5, got: 4 })
        ));
        assert!(m.changed.rmd && !m.changed.smap);
        assert_eq!(m.next.unwrap().smap.unwrap().version, 5);
    }

    #[test]
    fn hostile_bucket_names_and_secrets_are_never_taken() {
        let cur = meta();
        for bad in ["..", "a/b", "x\0y", "", &"b".repeat(65)] {
            let upd = MetaUpdate {
                bmd: Some(Bmd {
                    version: 9,
                    buckets: ["ok".to_string(), bad.to_string()].into(),
                }),
                ..Default::default()
            };
            assert!(merge(&cur, upd).is_err(), "{bad:?}");
        }
        let mut cfg = cur.config.clone();
        cfg.version = 9;
        cfg.auth.secret = "leaked".into();
        let upd = MetaUpdate {
            config: Some(Box::new(cfg)),
            ..Default::default()
        };
        assert_eq!(
            merge(&cur, upd).unwrap().next.unwrap().config.auth.secret,
            ""
        );
    }

    #[test]
    fn another_cluster_is_refused_whole() {
        let cur = meta();
        let mut other = cur.smap.clone().unwrap();
        other.uuid = "someone-else".into();
        other.version = 9;
        let upd = MetaUpdate {
            smap: Some(other),
            rmd: Some(Rmd {
                version: 9,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(merge(&cur, upd), Err(Error::ClusterIntegrity(_))));
    }
}
