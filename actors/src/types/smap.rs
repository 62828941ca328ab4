//! Cluster map (Smap), rebalance metadata (RMD) and bucket metadata (BMD) — DESIGN §3.
//!
//! Only the primary creates versions; every other node accepts a map through [`Smap::check_update`],
//! which enforces the rules scripts and operators rely on: equal version ignored, lower refused,
//! foreign cluster UUID fatal.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Seed AIStore uses for every placement digest.
pub const DIGEST_SEED: u64 = 1103515245;

/// `xxh64(utf8(s), seed)`: node ID digests and object digests for HRW (DESIGN §5).
pub fn digest(s: &str) -> u64 {
    xxhash_rust::xxh64::xxh64(s.as_bytes(), DIGEST_SEED)
}

/// Node identifier, AIStore style: a short random part, the role letter, the port (`Xq3ft8083`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl NodeId {
    /// Makes a fresh ID for a node of `role` listening on `port`.
    pub fn generate(role: Role, port: u16) -> Self {
        use rand::Rng;
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut rng = rand::rng();
        let random: String = (0..4)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        NodeId(format!("{random}{}{port}", role.letter()))
    }

    /// Accepts the bare ID and the `t[ID]` / `p[ID]` display forms.
    pub fn parse_display(s: &str) -> Self {
        let s = s.trim();
        for prefix in ["t[", "p["] {
            if let Some(inner) = s.strip_prefix(prefix).and_then(|r| r.strip_suffix(']')) {
                return NodeId(inner.to_string());
            }
        }
        NodeId(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Proxy,
    Target,
}

impl Role {
    pub fn letter(self) -> char {
        match self {
            Role::Proxy => 'p',
            Role::Target => 't',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Proxy => "proxy",
            Role::Target => "target",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "proxy" | "p" => Ok(Role::Proxy),
            "target" | "t" => Ok(Role::Target),
            other => Err(Error::BadRequest(format!(
                "unknown role {other:?} (expected proxy or target)"
            ))),
        }
    }
}

/// Node flags, bit-compatible with AIStore's where they overlap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Flags(pub u32);

impl Flags {
    pub const NON_ELECTABLE: Flags = Flags(1);
    pub const MAINT: Flags = Flags(4);
    pub const DECOMM: Flags = Flags(8);
    pub const MAINT_POST_REB: Flags = Flags(16);
    /// Shoal: exit once the rebalance is done (shutdown in progress). Kept in the map so that a
    /// new primary can finish the operation.
    pub const SHUTDOWN: Flags = Flags(32);
    /// Shoal: decommission also deletes the node's objects.
    pub const RM_USER_DATA: Flags = Flags(64);

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }
    pub fn set(&mut self, other: Flags) {
        self.0 |= other.0;
    }
    pub fn clear(&mut self, other: Flags) {
        self.0 &= !other.0;
    }
    /// Names of the set flags, for display and JSON.
    pub fn names(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (flag, name) in [
            (Flags::NON_ELECTABLE, "non_electable"),
            (Flags::MAINT, "maint"),
            (Flags::DECOMM, "decomm"),
            (Flags::MAINT_POST_REB, "maint_post_reb"),
            (Flags::SHUTDOWN, "shutdown"),
            (Flags::RM_USER_DATA, "rm_user_data"),
        ] {
            if self.contains(flag) {
                out.push(name);
            }
        }
        out
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    pub role: Role,
    /// Control and data address, `host:port`; one listener serves both.
    pub addr: String,
    pub flags: Flags,
    /// `xxh64(id, seed)`: HRW input and election order, cached so it is computed once.
    pub id_digest: u64,
}

impl Node {
    pub fn new(id: NodeId, role: Role, addr: String) -> Self {
        let id_digest = digest(id.as_str());
        Node {
            id,
            role,
            addr,
            flags: Flags::default(),
            id_digest,
        }
    }

    /// Active nodes take part in placement: neither in maintenance nor being decommissioned.
    pub fn is_active(&self) -> bool {
        !self.flags.intersects(Flags::MAINT | Flags::DECOMM)
    }

    /// In maintenance after the rebalance that moved its data off finished without errors: it
    /// holds no copy that matters, so reads and listings need not wait for its answer.
    pub fn emptied(&self) -> bool {
        self.flags.contains(Flags::MAINT | Flags::MAINT_POST_REB)
    }

    /// Leaving, with its final step still to come (maintenance before post-rebalance, a pending
    /// shutdown, or a decommission).
    pub fn in_transition(&self) -> bool {
        self.flags.intersects(Flags::DECOMM | Flags::SHUTDOWN)
            || (self.flags.contains(Flags::MAINT) && !self.flags.contains(Flags::MAINT_POST_REB))
    }

    /// `t[ID]` or `p[ID]`.
    pub fn display_name(&self) -> String {
        display_name(self.role, &self.id)
    }
}

pub fn display_name(role: Role, id: &NodeId) -> String {
    format!("{}[{}]", role.letter(), id)
}

/// The cluster map: who is in the cluster, who is primary, and each node's flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Smap {
    /// Cluster identity; a map with another UUID is never merged.
    pub uuid: String,
    /// Bumped by one for every mutation, only by the primary.
    pub version: u64,
    pub primary: NodeId,
    pub proxies: BTreeMap<NodeId, Node>,
    pub targets: BTreeMap<NodeId, Node>,
    /// Nodes removed as decommissioned, the newest last (at most [`DECOMMISSIONED_KEEP`]).
    /// They wiped their IDs, so a join under one comes from a process on its way out (its join
    /// crossed the notice) and would put a ghost in the map. Kept in the map so that the next
    /// primary refuses it too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decommissioned: Vec<NodeId>,
    /// Those of them that were targets decommissioned without a rebalance (`--no-rebalance`,
    /// or rebalancing off): their objects were not moved off them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undrained: Vec<NodeId>,
}

/// How many decommissioned IDs the map remembers: a ghost join comes right after the removal,
/// and every map push carries the list.
pub const DECOMMISSIONED_KEEP: usize = 64;

impl Smap {
    /// A new cluster with `primary` as its only member.
    pub fn bootstrap(primary: Node) -> Self {
        let uuid = {
            use rand::Rng;
            let mut rng = rand::rng();
            format!("{:016x}", rng.random::<u64>())
        };
        let mut proxies = BTreeMap::new();
        let id = primary.id.clone();
        proxies.insert(id.clone(), primary);
        Smap {
            uuid,
            version: 1,
            primary: id,
            proxies,
            targets: BTreeMap::new(),
            decommissioned: Vec::new(),
            undrained: Vec::new(),
        }
    }

    /// Notes `ids` as removed for good (see [`decommissioned`](Self::decommissioned)), and
    /// which of them left without their data moved off (see [`undrained`](Self::undrained)).
    pub fn note_decommissioned(&mut self, ids: &[NodeId], undrained: &[NodeId]) {
        for id in ids {
            if !self.decommissioned.contains(id) {
                self.decommissioned.push(id.clone());
            }
        }
        let extra = self
            .decommissioned
            .len()
            .saturating_sub(DECOMMISSIONED_KEEP);
        self.decommissioned.drain(..extra);
        self.undrained.extend(undrained.iter().cloned());
        let kept = &self.decommissioned;
        self.undrained.retain(|id| kept.contains(id));
    }

    pub fn get(&self, id: &NodeId) -> Option<&Node> {
        self.proxies.get(id).or_else(|| self.targets.get(id))
    }

    pub fn get_mut(&mut self, id: &NodeId) -> Option<&mut Node> {
        match self.proxies.get_mut(id) {
            Some(n) => Some(n),
            None => self.targets.get_mut(id),
        }
    }

    pub fn contains(&self, id: &NodeId) -> bool {
        self.get(id).is_some()
    }

    pub fn primary_node(&self) -> Option<&Node> {
        self.proxies.get(&self.primary)
    }

    pub fn insert(&mut self, node: Node) {
        match node.role {
            Role::Proxy => self.proxies.insert(node.id.clone(), node),
            Role::Target => self.targets.insert(node.id.clone(), node),
        };
    }

    pub fn remove(&mut self, id: &NodeId) -> Option<Node> {
        self.proxies.remove(id).or_else(|| self.targets.remove(id))
    }

    pub fn all_nodes(&self) -> impl Iterator<Item = &Node> {
        self.proxies.values().chain(self.targets.values())
    }

    pub fn active_targets(&self) -> impl Iterator<Item = &Node> {
        self.targets.values().filter(|n| n.is_active())
    }

    pub fn count_active_targets(&self) -> usize {
        self.active_targets().count()
    }

    /// A digest of the whole map's content (deterministic: maps are ordered).
    pub fn digest(&self) -> u64 {
        let bytes = rmp_serde::to_vec_named(self).unwrap_or_default();
        xxhash_rust::xxh64::xxh64(&bytes, DIGEST_SEED)
    }

    /// Checks a map received from the primary against ours; `Ok(true)` means adopt it.
    pub fn check_update(current: Option<&Smap>, incoming: &Smap) -> Result<bool> {
        let Some(cur) = current else { return Ok(true) };
        if cur.uuid != incoming.uuid {
            return Err(Error::ClusterIntegrity(format!(
                "cluster map UUID {} differs from ours ({}): refusing to merge two clusters",
                incoming.uuid, cur.uuid
            )));
        }
        match incoming.version.cmp(&cur.version) {
            std::cmp::Ordering::Greater => Ok(true),
            // Two maps of one version that differ (primaries on both sides of a partition, or
            // an election racing a change): every node keeps the one with the higher content
            // digest, so all of them converge on the same map whatever order they see them in.
            std::cmp::Ordering::Equal => Ok(incoming != cur && incoming.digest() > cur.digest()),
            std::cmp::Ordering::Less => Err(Error::Downgrade {
                have: cur.version,
                got: incoming.version,
            }),
        }
    }
}

/// Rebalance metadata: a new version starts global rebalance `g<version>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rmd {
    pub version: u64,
    /// Smap version this generation was started for; targets rebalance under the newest map they
    /// have, which is at least this one.
    pub smap_version: u64,
    /// Targets expected to take part (every target in the map at the time, maintenance ones
    /// included: they are the senders).
    pub participants: Vec<NodeId>,
    /// Nodes whose lifecycle operation completes when this generation does (maintenance,
    /// shutdown, decommission in progress). In the RMD so that a new primary can finish them.
    #[serde(default)]
    pub finalize: Vec<NodeId>,
    /// What started this generation (`show rebalance --all`).
    #[serde(default)]
    pub trigger: String,
}

impl Rmd {
    pub fn rebalance_id(&self) -> String {
        rebalance_id(self.version)
    }
}

pub fn rebalance_id(version: u64) -> String {
    format!("g{version}")
}

/// Bucket metadata: the set of buckets, versioned and distributed like the Smap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bmd {
    pub version: u64,
    pub buckets: std::collections::BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, role: Role) -> Node {
        Node::new(NodeId(id.into()), role, "127.0.0.1:1".into())
    }

    #[test]
    fn the_map_remembers_the_newest_decommissioned_ids_once_each() {
        let mut m = Smap::bootstrap(node("p1", Role::Proxy));
        let ids: Vec<NodeId> = (0..DECOMMISSIONED_KEEP + 5)
            .map(|i| NodeId(format!("t{i}")))
            .collect();
        m.note_decommissioned(&ids[..2], &ids[1..2]);
        m.note_decommissioned(&ids[..2], &[]);
        assert_eq!(m.decommissioned, ids[..2]);
        assert_eq!(m.undrained, ids[1..2], "left without a rebalance");
        m.note_decommissioned(&ids, &[]);
        assert_eq!(m.decommissioned, ids[5..], "the oldest go first");
        assert!(m.undrained.is_empty(), "forgotten with its decommission");
        // A map from before the field decodes with an empty list.
        let mut old = m.clone();
        old.decommissioned.clear();
        let bytes = rmp_serde::to_vec_named(&old).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("decommissioned"));
        let back: Smap = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, old);
    }

    #[test]
    fn display_forms_parse_to_bare_ids() {
        assert_eq!(NodeId::parse_display("t[ab3t8083]").0, "ab3t8083");
        assert_eq!(NodeId::parse_display("p[xYp8080]").0, "xYp8080");
        assert_eq!(NodeId::parse_display("ab3t8083").0, "ab3t8083");
    }

    #[test]
    fn generated_ids_carry_role_and_port() {
        let id = NodeId::generate(Role::Target, 8083);
        assert!(id.0.ends_with("t8083"), "{id}");
        assert_eq!(id.0.len(), 4 + 1 + 4);
    }

    #[test]
    fn update_rules() {
        let mut a = Smap::bootstrap(node("p1p1", Role::Proxy));
        a.version = 5;
        let mut newer = a.clone();
        newer.version = 6;
        let mut older = a.clone();
        older.version = 4;
        let mut foreign = newer.clone();
        foreign.uuid = "other".into();
        assert!(Smap::check_update(Some(&a), &newer).unwrap());
        assert!(!Smap::check_update(Some(&a), &a).unwrap());
        assert!(matches!(
            Smap::check_update(Some(&a), &older),
            Err(Error::Downgrade { .. })
        ));
        assert!(matches!(
            Smap::check_update(Some(&a), &foreign),
            Err(Error::ClusterIntegrity(_))
        ));
        // Same version, different content: the higher digest wins, from either side.
        let mut b = a.clone();
        b.insert(node("t9t9", Role::Target));
        let (hi, lo) = if b.digest() > a.digest() {
            (&b, &a)
        } else {
            (&a, &b)
        };
        assert!(Smap::check_update(Some(lo), hi).unwrap());
        assert!(!Smap::check_update(Some(hi), lo).unwrap());
    }

    #[test]
    fn active_excludes_maintenance_and_decommission() {
        let mut m = Smap::bootstrap(node("p1p1", Role::Proxy));
        for (i, f) in [Flags(0), Flags::MAINT, Flags::DECOMM]
            .into_iter()
            .enumerate()
        {
            let mut n = node(&format!("t{i}"), Role::Target);
            n.flags = f;
            m.insert(n);
        }
        assert_eq!(m.count_active_targets(), 1);
    }
}
