//! A node's view of the cluster metadata: the map, the rebalance and bucket metadata, and the
//! cluster config — each versioned by the primary (DESIGN §3) — and an update of some of them.

use serde::{Deserialize, Serialize};

use super::config::ClusterConfig;
use super::smap::{Bmd, Flags, NodeId, Rmd, Smap};

/// What one node knows. Published through a `watch` channel by the node's metadata writer;
/// everything else reads it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    /// `None` until the node has joined (standby, or before the first join answer).
    pub smap: Option<Smap>,
    pub rmd: Rmd,
    pub bmd: Bmd,
    pub config: ClusterConfig,
}

impl Meta {
    pub fn primary_addr(&self) -> Option<String> {
        let s = self.smap.as_ref()?;
        s.primary_node().map(|n| n.addr.clone())
    }

    pub fn is_primary(&self, me: &NodeId) -> bool {
        self.smap.as_ref().is_some_and(|s| &s.primary == me)
    }

    /// A node's flags in this map (none when it is not in it).
    pub fn flags_of(&self, id: &NodeId) -> Flags {
        self.smap
            .as_ref()
            .and_then(|s| s.get(id).map(|n| n.flags))
            .unwrap_or_default()
    }

    /// All four versions, in the order keepalives carry them.
    pub fn versions(&self) -> [u64; 4] {
        [
            self.smap.as_ref().map(|s| s.version).unwrap_or(0),
            self.rmd.version,
            self.bmd.version,
            self.config.version,
        ]
    }

    /// Everything, as an update (a full sync).
    pub fn as_update(&self) -> MetaUpdate {
        MetaUpdate {
            smap: self.smap.clone(),
            rmd: Some(self.rmd.clone()),
            bmd: Some(self.bmd.clone()),
            config: Some(Box::new(self.config.clone())),
        }
    }
}

/// Some parts of the metadata, each with its own version: what a metasync carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaUpdate {
    pub smap: Option<Smap>,
    pub rmd: Option<Rmd>,
    pub bmd: Option<Bmd>,
    pub config: Option<Box<ClusterConfig>>,
}

impl MetaUpdate {
    pub fn smap(s: Smap) -> Self {
        MetaUpdate {
            smap: Some(s),
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.smap.is_none() && self.rmd.is_none() && self.bmd.is_none() && self.config.is_none()
    }
}
