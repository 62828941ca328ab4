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

/// The outcome of [`merge`]: the new metadata, what changed, and a refusal to report once the
/// other parts are stored (a lower map is refused, but the parts that come with it carry their
/// own versions and are still taken).
#[derive(Debug)]
pub struct Merged {
    pub next: Meta,
    pub changed: Changed,
    pub refused: Option<Error>,
}

/// Merges `upd` into `cur`. A different cluster UUID refuses the whole update.
pub fn merge(cur: &Meta, upd: MetaUpdate) -> Result<Merged> {
    let mut next = cur.clone();
    let mut changed = Changed::default();
    let mut refused = None;
    if let Some(s) = upd.smap {
        match Smap::check_update(cur.smap.as_ref(), &s) {
            Ok(true) => {
                next.smap = Some(s);
                changed.smap = true;
            }
            Ok(false) => {}
            Err(e @ Error::Downgrade { .. }) => refused = Some(e),
            Err(e) => return Err(e),
        }
    }
    if let Some(r) = upd.rmd
        && r.version > cur.rmd.version
    {
        next.rmd = r;
        changed.rmd = true;
    }
    if let Some(b) = upd.bmd
        && b.version > cur.bmd.version
    {
        // Bucket names become directory names: a map with a hostile one is refused whole.
        for name in &b.buckets {
            crate::logic::names::validate_bucket(name)?;
        }
        changed.removed_buckets = cur.bmd.buckets.difference(&b.buckets).cloned().collect();
        next.bmd = b;
        changed.bmd = true;
    }
    if let Some(c) = upd.config
        && c.version > cur.config.version
    {
        // The secret is node-local: whatever a config carries, it is not kept.
        next.config = c.shareable();
        changed.config = true;
    }
    Ok(Merged {
        next,
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
        assert_eq!(m.next.smap.unwrap().version, 6);
        assert!(m.refused.is_none());
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
        assert_eq!(m.next.smap.unwrap().version, 5);
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
        assert_eq!(merge(&cur, upd).unwrap().next.config.auth.secret, "");
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
