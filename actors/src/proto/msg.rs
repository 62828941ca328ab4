//! The messages (DESIGN §4): one enum per subsystem — queries any node answers, control requests
//! the primary answers, node-to-node messages, the object data path and rebalance transfers —
//! and the typed replies. Every request that has a plain reply implements [`Rpc`], which pairs
//! it with its reply type once, here: callers get the typed value (`pool.rpc(addr, GetSmap)` is
//! a `Smap`), and handlers build replies through the same pairing, so a mismatch is a compile
//! error wherever the types can tell.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, WireError};
use crate::types::auth::{Perm, RoleDef, WhoAmI};
use crate::types::config::{ClusterConfig, RebalanceConfig};
use crate::types::lifecycle::{ClusterOp, LifecycleReply, LifecycleRequest, NodeAction, PlanMove};
use crate::types::meta::MetaUpdate;
use crate::types::object::{ObjAttrs, ObjKey, ObjMeta, ObjPage, Stamp, Tomb};
use crate::types::smap::{Bmd, Node, NodeId, Rmd, Role, Smap};
use crate::types::status::{
    ClusterStatus, NodeStats, RebalanceStatus, ResilverStatus, Stage, StorageStatus,
    TargetRebStatus,
};
use crate::types::storage::{MountpathReply, MpAction};

/// Every frame's body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    Error(WireError),
    /// A data request answered by a proxy, or by a target with a newer map: go to this target.
    Redirect {
        node: NodeId,
        addr: String,
    },
    /// A piece of an object body (after a put's go-ahead, a get's reply, a rebalance object).
    Chunk(#[serde(with = "serde_bytes")] Vec<u8>),
    Query(Query),
    Control(Control),
    Peer(Peer),
    Data(Data),
    Reb(Reb),
    Reply(Reply),
    Storage(Storage),
}

impl Msg {
    /// Short names for logs; Debug would dump object chunks.
    pub fn name(&self) -> &'static str {
        match self {
            Msg::Error(_) => "error",
            Msg::Redirect { .. } => "redirect",
            Msg::Chunk(_) => "chunk",
            Msg::Query(q) => match q {
                Query::GetSmap(_) => "get-smap",
                Query::GetConfig(_) => "get-config",
                Query::ListBuckets(_) => "list-buckets",
                Query::GetNodeStats(_) => "node-stats",
                Query::GetMetrics(_) => "metrics",
            },
            Msg::Control(c) => c.name(),
            Msg::Peer(p) => match p {
                Peer::Metasync(_) => "metasync",
                Peer::Action(_) => "node-action",
                Peer::Vote(_) => "vote-request",
                Peer::Handshake(_) => "handshake",
            },
            Msg::Data(d) => match d {
                Data::List(_) => "list-objects",
                Data::Put(_) => "put-object",
                Data::Get(_) => "get-object",
                Data::Head(_) => "head-object",
                Data::Delete(_) => "delete-object",
                Data::Locate(_) => "locate",
                Data::Stamp(_) => "stamp",
            },
            Msg::Reb(Reb::Object(_)) => "reb-object",
            Msg::Reb(Reb::PlanMoves(_)) => "plan-moves",
            Msg::Reb(Reb::Tomb(_)) => "reb-tomb",
            Msg::Reb(Reb::Batch(_)) => "reb-batch",
            Msg::Reply(_) => "reply",
            Msg::Storage(s) => match s {
                Storage::Show(_) => "show-storage",
                Storage::Mountpath(_) => "mountpath-op",
                Storage::Resilver(_) => "resilver-status",
            },
        }
    }
}

impl From<Error> for Msg {
    fn from(e: Error) -> Self {
        Msg::Error(e.to_wire())
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Answered by any node from what it knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Query {
    GetSmap(GetSmap),
    GetConfig(GetConfig),
    ListBuckets(ListBuckets),
    GetNodeStats(GetNodeStats),
    /// This node in the Prometheus text format (`GET /metrics`).
    GetMetrics(GetMetrics),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetSmap;
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetConfig;
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListBuckets;
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetNodeStats;
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMetrics;

/// Answered by the primary (other nodes forward them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Control {
    GetClusterStatus(GetClusterStatus),
    GetRebStatus(GetRebStatus),
    Lifecycle(LifecycleRequest),
    AdminJoin(AdminJoin),
    RemoveFromSmap(RemoveFromSmap),
    Cluster(ClusterOp),
    CreateBucket(CreateBucket),
    DestroyBucket(DestroyBucket),
    /// From nodes: joining, heartbeats, rebalance progress.
    Join(JoinRequest),
    Keepalive(Heartbeat),
    RebReport(Box<TargetRebStatus>),
    /// S3 access keys: create, list, remove (admin).
    S3Keys(S3KeyOp),
    /// Pause, resume or throttle rebalancing cluster-wide (admin; empty: just read).
    Rebalance(RebalanceCtl),
    /// The AuthN service: login and whoami (answered by any node), users, roles and
    /// revocations (the primary changes the cluster config).
    Auth(AuthOp),
}

impl Control {
    pub fn name(&self) -> &'static str {
        match self {
            Control::GetClusterStatus(_) => "cluster-status",
            Control::GetRebStatus(_) => "rebalance-status",
            Control::Lifecycle(_) => "lifecycle",
            Control::AdminJoin(_) => "admin-join",
            Control::RemoveFromSmap(_) => "remove-from-smap",
            Control::Cluster(_) => "cluster-op",
            Control::CreateBucket(_) => "create-bucket",
            Control::DestroyBucket(_) => "destroy-bucket",
            Control::Join(_) => "join",
            Control::Keepalive(_) => "keepalive",
            Control::RebReport(_) => "reb-report",
            Control::S3Keys(_) => "s3-keys",
            Control::Rebalance(_) => "rebalance-ctl",
            Control::Auth(a) => a.name(),
        }
    }

    /// Needs an admin token when auth is on.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Control::Lifecycle(_)
                | Control::AdminJoin(_)
                | Control::RemoveFromSmap(_)
                | Control::Cluster(_)
                | Control::CreateBucket(_)
                | Control::DestroyBucket(_)
                | Control::S3Keys(_)
                | Control::Rebalance(_)
        ) || matches!(self, Control::Auth(a) if a.is_admin())
    }

    /// Sent by nodes, not clients: needs the sender to be (or become) a member.
    pub fn is_from_node(&self) -> bool {
        matches!(
            self,
            Control::Join(_) | Control::Keepalive(_) | Control::RebReport(_)
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetClusterStatus;

/// Requests to the AuthN service (`nodectl auth ...`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthOp {
    /// A token for a user and password (no token needed); `ttl_secs` 0: the configured TTL.
    Login {
        user: String,
        password: String,
        ttl_secs: u64,
    },
    /// Who the caller's token says they are.
    WhoAmI,
    /// A new user with roles (admin). The password is hashed by the primary's node before
    /// the primary stores it; `password_hash` is set there and nowhere else.
    UserAdd {
        name: String,
        password: String,
        roles: Vec<String>,
        #[serde(default)]
        password_hash: String,
    },
    /// Removes a user; their tokens and S3 keys stop working at once (admin).
    UserRm {
        name: String,
    },
    UserLs,
    /// A new role (admin); the built-in ones cannot be redefined.
    RoleAdd {
        name: String,
        desc: String,
        perms: Vec<Perm>,
    },
    RoleRm {
        name: String,
    },
    RoleLs,
    /// Revokes a token: by the token itself (its holder or an admin) or by its ID (admin);
    /// or every token of a user issued until now (admin).
    Revoke {
        token: Option<String>,
        jti: Option<String>,
        #[serde(default)]
        user: Option<String>,
    },
}

impl std::fmt::Debug for AuthOp {
    /// Passwords and tokens never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthOp::Login { user, ttl_secs, .. } => {
                write!(f, "Login {{ user: {user:?}, ttl_secs: {ttl_secs} }}")
            }
            AuthOp::UserAdd { name, roles, .. } => {
                write!(f, "UserAdd {{ name: {name:?}, roles: {roles:?} }}")
            }
            AuthOp::Revoke { jti, token, user } => write!(
                f,
                "Revoke {{ jti: {jti:?}, user: {user:?}, token: {} }}",
                if token.is_some() { "<token>" } else { "None" }
            ),
            AuthOp::WhoAmI => f.write_str("WhoAmI"),
            AuthOp::UserRm { name } => write!(f, "UserRm {{ name: {name:?} }}"),
            AuthOp::UserLs => f.write_str("UserLs"),
            AuthOp::RoleAdd { name, perms, .. } => {
                write!(f, "RoleAdd {{ name: {name:?}, perms: {perms:?} }}")
            }
            AuthOp::RoleRm { name } => write!(f, "RoleRm {{ name: {name:?} }}"),
            AuthOp::RoleLs => f.write_str("RoleLs"),
        }
    }
}

impl AuthOp {
    pub fn name(&self) -> &'static str {
        match self {
            AuthOp::Login { .. } => "auth-login",
            AuthOp::WhoAmI => "auth-whoami",
            AuthOp::UserAdd { .. } => "auth-user-add",
            AuthOp::UserRm { .. } => "auth-user-rm",
            AuthOp::UserLs => "auth-user-ls",
            AuthOp::RoleAdd { .. } => "auth-role-add",
            AuthOp::RoleRm { .. } => "auth-role-rm",
            AuthOp::RoleLs => "auth-role-ls",
            AuthOp::Revoke { .. } => "auth-revoke",
        }
    }

    /// Needs a cluster admin (revoking one's own token does not; the node checks that).
    pub fn is_admin(&self) -> bool {
        !matches!(
            self,
            AuthOp::Login { .. } | AuthOp::WhoAmI | AuthOp::Revoke { .. }
        )
    }
}

/// One user as listed (never the hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    pub roles: Vec<String>,
    pub created: u64,
}

/// What the AuthN service answers; each request fills its part.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthReply {
    /// Login: the token and when it expires.
    pub token: Option<String>,
    pub exp: Option<u64>,
    pub users: Vec<UserInfo>,
    /// Every role, the built-in ones first.
    pub roles: Vec<RoleDef>,
    pub whoami: Option<WhoAmI>,
    /// Revoke: the token ID revoked.
    pub revoked: Option<String>,
}

/// Changes to the live rebalance settings; `None` leaves one as it is. Answered with the
/// settings in force afterwards.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebalanceCtl {
    pub paused: Option<bool>,
    /// Bytes/s per target; 0 = unlimited.
    pub throttle_bytes_per_sec: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum S3KeyOp {
    /// A new key; its secret is in the answer, once.
    Create {
        admin: bool,
        /// The AuthN user the key acts as (their roles decide, not `admin`).
        #[serde(default)]
        user: Option<String>,
    },
    List,
    Remove {
        access_key: String,
    },
}

/// One S3 access key as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3KeyInfo {
    pub access_key: String,
    pub admin: bool,
    /// The user the key acts as, if any.
    #[serde(default)]
    pub user: String,
    pub created: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Keys {
    pub keys: Vec<S3KeyInfo>,
    /// After a create: the new key and its secret (shown this once).
    pub created: Option<(String, String)>,
}
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRebStatus;

/// Admin join of a standby node at `addr`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminJoin {
    pub addr: String,
    pub role: Option<Role>,
}

/// Unsafe, test-only: drop a node from the map at once, without rebalance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveFromSmap {
    pub node: NodeId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBucket {
    pub bucket: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestroyBucket {
    pub bucket: String,
}

/// Self-join (or rejoin) of a node at start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub node: Node,
    /// The cluster UUID the node belonged to, if any; another UUID is refused.
    pub uuid: Option<String>,
    /// A rebalance marker was found at start: the last run was interrupted.
    pub reb_interrupted: bool,
}

/// A node's heartbeat, with the versions of what it knows so that one that missed a push
/// catches up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: NodeId,
    pub smap_version: u64,
    #[serde(default)]
    pub rmd_version: u64,
    #[serde(default)]
    pub bmd_version: u64,
    #[serde(default)]
    pub config_version: u64,
}

/// Node to node, mostly from the primary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Peer {
    /// Metadata pushed by the primary; each part only when it changed (or a full sync).
    Metasync(Box<MetaUpdate>),
    /// The final step of a lifecycle operation.
    Action(NodeAction),
    Vote(VoteRequest),
    /// The primary meeting a standby node before an admin join.
    Handshake(Handshake),
}

/// Election: would you accept `candidate` as primary in place of `old_primary`?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    pub candidate: NodeId,
    pub old_primary: NodeId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    pub uuid: String,
}

/// The object data path: served by targets, redirected by proxies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Data {
    List(ListObjects),
    /// Two phases: the target answers `Reply::Ok` (go ahead), then chunks adding up to `size`
    /// follow, then the target answers `Reply::Put`.
    Put(PutObject),
    /// Answered by `Reply::Object` followed by the body's chunks.
    Get(GetObject),
    Head(HeadObject),
    Delete(DeleteObject),
    Locate(Locate),
    /// Between targets: the newest stamp this target knows of an object (a copy or a delete).
    Stamp(StampQuery),
}

impl Data {
    /// Drops the map version a request carries (one not sent by a member target).
    pub fn forget_map_version(&mut self) {
        match self {
            Data::Stamp(q) => q.smap_version = 0,
            Data::Delete(d) => d.smap_version = 0,
            _ => {}
        }
    }
}

/// One page of a bucket listing, names in order, after `start_after`. `local` asks one target
/// for its own objects only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListObjects {
    pub bucket: String,
    pub prefix: String,
    pub start_after: Option<String>,
    /// At most this many entries (capped by [`crate::types::object::MAX_PAGE`]).
    pub limit: u32,
    pub local: bool,
}

/// Bodies up to this size may travel inside the PUT request itself ([`PutObject::inline`]).
pub const INLINE_PUT: u64 = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutObject {
    pub key: ObjKey,
    pub size: u64,
    /// What the writer attaches (MD5, content type, user metadata).
    #[serde(default)]
    pub attrs: ObjAttrs,
    /// The whole body, when it is small (exactly `size` bytes, at most [`INLINE_PUT`]): the
    /// put is then one round trip instead of a request, a go-ahead and the body. A target
    /// that does not know the field answers go-ahead, and the body follows as chunks.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    pub inline: Option<Vec<u8>>,
}

/// `local`: answer from this target's disks only (get-from-neighbor), no redirect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetObject {
    pub key: ObjKey,
    pub verify: bool,
    pub local: bool,
    /// Only these bytes of the body (the reply's metadata still describes the whole object).
    #[serde(default)]
    pub range: Option<ByteRange>,
}

/// `len` bytes from `offset` (clamped to the object's end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    pub offset: u64,
    pub len: u64,
}

impl ByteRange {
    /// The bytes of an object of `size` this range covers, as (offset, len); `None` when it
    /// starts past the end.
    pub fn within(self, size: u64) -> Option<(u64, u64)> {
        (self.offset < size || (size == 0 && self.offset == 0))
            .then(|| (self.offset, self.len.min(size - self.offset.min(size))))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadObject {
    pub key: ObjKey,
    pub local: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteObject {
    pub key: ObjKey,
    /// From the owner to the other targets: remove local copies only (no redirect, no record).
    pub local: bool,
    /// With `local`: remove copies stamped up to this (the owner's delete stamp).
    #[serde(default)]
    pub stamp: Option<u64>,
    /// With `local`: the version of the map the owner acts under (a target with an older one
    /// learns that it may have missed a change of owners).
    #[serde(default)]
    pub smap_version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locate {
    pub key: ObjKey,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampQuery {
    pub key: ObjKey,
    /// The version of the map the asking owner acts under (as in [`DeleteObject`]).
    #[serde(default)]
    pub smap_version: u64,
}

/// Rebalance transfers between targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reb {
    /// A rebalancing object: the receiver says go ahead (or refuses), chunks follow, and it
    /// acknowledges only once the object is durably installed.
    Object(RebObject),
    /// Dry run: what would this target send where under `smap`?
    PlanMoves(PlanMoves),
    /// A delete record moving to the object's new owner (acknowledged with `RebAck`).
    Tomb(RebTomb),
    /// Many small rebalancing objects in one exchange: go ahead (or a refusal of the whole
    /// batch), then their bodies back to back as one body, then `RebBatchAck` once every
    /// installed one is durable.
    Batch(RebBatch),
}

/// What a receiver accepts in one [`RebBatch`] (larger ones are refused as bad requests).
pub const REB_BATCH_MAX_OBJS: usize = 1024;
pub const REB_BATCH_MAX_BYTES: u64 = 8 << 20;

/// Small objects travel this way so that one round trip and one flush to disk serve many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebBatch {
    pub generation: u64,
    /// As in [`RebObject`].
    pub bmd_version: u64,
    /// In the order of their bodies.
    pub metas: Vec<ObjMeta>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebObject {
    pub generation: u64,
    pub meta: ObjMeta,
    /// The sender's bucket-map version: a receiver that does not know the bucket yet and has
    /// an older bucket map must hold off (refuse with busy), never drop the object.
    #[serde(default)]
    pub bmd_version: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanMoves {
    pub smap: Smap,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebTomb {
    pub generation: u64,
    pub tomb: Tomb,
    /// As in [`RebObject`].
    pub bmd_version: u64,
}

/// Asked of one target directly (DESIGN §14): its mountpaths, changes to them, its resilver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Storage {
    Show(GetStorage),
    /// Admin.
    Mountpath(MountpathOp),
    Resilver(GetResilver),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetStorage;
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetResilver;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountpathOp {
    pub action: MpAction,
    pub path: String,
    /// Say what would move, change nothing.
    pub dry_run: bool,
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Done (no value), or "go ahead" in a two-phase exchange.
    Ok,
    Smap(Smap),
    Config(Box<ClusterConfig>),
    Buckets(Vec<String>),
    NodeStats(Box<NodeStats>),
    ClusterStatus(Box<ClusterStatus>),
    RebStatus(Option<Box<RebalanceStatus>>),
    Lifecycle(Box<LifecycleReply>),
    Joined(Box<Joined>),
    KeepaliveAck(KeepaliveAck),
    RebReportAck(RebReportAck),
    Vote(Vote),
    Handshake(Box<Node>),
    Objects(ObjPage),
    /// Object metadata (a head, or the header of a get whose chunks follow).
    Object(ObjMeta),
    Put(PutDone),
    Located(Located),
    RebAck(RebAck),
    RebBatchAck(RebBatchAck),
    PlanMoves(Vec<PlanMove>),
    Stamp(Option<Stamp>),
    S3Keys(S3Keys),
    Storage(Box<StorageStatus>),
    Mountpath(Box<MountpathReply>),
    Resilver(Option<Box<ResilverStatus>>),
    RebalanceConfig(Box<RebalanceConfig>),
    Metrics(String),
    Auth(Box<AuthReply>),
}

/// Everything a node needs after joining.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Joined {
    pub smap: Smap,
    pub rmd: Rmd,
    pub bmd: Bmd,
    pub config: ClusterConfig,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepaliveAck {
    pub smap_version: u64,
}

/// The primary's answer to a progress report: the least advanced stage among participants of
/// the current generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebReportAck {
    pub min_stage: Stage,
    pub current_gen: u64,
    /// So far every participant sent without errors and none aborted (see
    /// `Tracker::clean`). False from a primary that does not say: a receiver then keeps
    /// asking the others, the safe side.
    #[serde(default)]
    pub clean: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub yes: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutDone {
    pub version: u64,
    pub checksum: String,
}

/// Where an object lives under the current map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Located {
    pub target: String,
    pub mountpath: String,
}

/// `stored`: the receiver now holds this object or a newer copy (or a newer delete), durably;
/// only then may the sender delete its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebAck {
    pub stored: bool,
}

/// One [`RebAck::stored`] per object of a [`RebBatch`], in its order. An object not stored
/// (checksum mismatch, a refusal of its own) stays with the sender, which sends it on its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebBatchAck {
    pub stored: Vec<bool>,
}

// ---------------------------------------------------------------------------------------------
// Request ↔ reply pairing
// ---------------------------------------------------------------------------------------------

/// A request with a plain reply: its message form and its reply type.
pub trait Rpc: Sized {
    type Reply;
    fn into_msg(self) -> Msg;
    /// The typed value of a reply, if it is the right kind.
    fn from_reply(r: Reply) -> Option<Self::Reply>;
    /// The wire form of a typed reply (for handlers).
    fn reply(v: Self::Reply) -> Reply;
}

macro_rules! rpc {
    ($req:ty, $group:ident :: $variant:ident, $rep:ty, Reply::$rv:ident) => {
        impl Rpc for $req {
            type Reply = $rep;
            fn into_msg(self) -> Msg {
                Msg::$group($group::$variant(self.into()))
            }
            fn from_reply(r: Reply) -> Option<$rep> {
                match r {
                    Reply::$rv(v) => Some(v),
                    _ => None,
                }
            }
            fn reply(v: $rep) -> Reply {
                Reply::$rv(v)
            }
        }
    };
    ($req:ty, $group:ident :: $variant:ident, ()) => {
        impl Rpc for $req {
            type Reply = ();
            fn into_msg(self) -> Msg {
                Msg::$group($group::$variant(self.into()))
            }
            fn from_reply(r: Reply) -> Option<()> {
                matches!(r, Reply::Ok).then_some(())
            }
            fn reply(_: ()) -> Reply {
                Reply::Ok
            }
        }
    };
}

rpc!(GetSmap, Query::GetSmap, Smap, Reply::Smap);
rpc!(
    GetConfig,
    Query::GetConfig,
    Box<ClusterConfig>,
    Reply::Config
);
rpc!(ListBuckets, Query::ListBuckets, Vec<String>, Reply::Buckets);
rpc!(GetMetrics, Query::GetMetrics, String, Reply::Metrics);
rpc!(
    GetNodeStats,
    Query::GetNodeStats,
    Box<NodeStats>,
    Reply::NodeStats
);
rpc!(
    GetClusterStatus,
    Control::GetClusterStatus,
    Box<ClusterStatus>,
    Reply::ClusterStatus
);
rpc!(
    GetRebStatus,
    Control::GetRebStatus,
    Option<Box<RebalanceStatus>>,
    Reply::RebStatus
);
rpc!(
    LifecycleRequest,
    Control::Lifecycle,
    Box<LifecycleReply>,
    Reply::Lifecycle
);
rpc!(
    AdminJoin,
    Control::AdminJoin,
    Box<LifecycleReply>,
    Reply::Lifecycle
);
rpc!(
    RemoveFromSmap,
    Control::RemoveFromSmap,
    Box<LifecycleReply>,
    Reply::Lifecycle
);
rpc!(ClusterOp, Control::Cluster, ());
rpc!(CreateBucket, Control::CreateBucket, ());
rpc!(DestroyBucket, Control::DestroyBucket, ());
rpc!(JoinRequest, Control::Join, Box<Joined>, Reply::Joined);
rpc!(
    Heartbeat,
    Control::Keepalive,
    KeepaliveAck,
    Reply::KeepaliveAck
);
rpc!(
    TargetRebStatus,
    Control::RebReport,
    RebReportAck,
    Reply::RebReportAck
);
rpc!(MetaUpdate, Peer::Metasync, ());
rpc!(NodeAction, Peer::Action, ());
rpc!(VoteRequest, Peer::Vote, Vote, Reply::Vote);
rpc!(Handshake, Peer::Handshake, Box<Node>, Reply::Handshake);
rpc!(ListObjects, Data::List, ObjPage, Reply::Objects);
rpc!(HeadObject, Data::Head, ObjMeta, Reply::Object);
rpc!(DeleteObject, Data::Delete, ());
rpc!(Locate, Data::Locate, Located, Reply::Located);
rpc!(PlanMoves, Reb::PlanMoves, Vec<PlanMove>, Reply::PlanMoves);
rpc!(RebTomb, Reb::Tomb, RebAck, Reply::RebAck);
rpc!(StampQuery, Data::Stamp, Option<Stamp>, Reply::Stamp);
rpc!(S3KeyOp, Control::S3Keys, S3Keys, Reply::S3Keys);
rpc!(AuthOp, Control::Auth, Box<AuthReply>, Reply::Auth);
rpc!(
    RebalanceCtl,
    Control::Rebalance,
    Box<RebalanceConfig>,
    Reply::RebalanceConfig
);
rpc!(
    GetStorage,
    Storage::Show,
    Box<StorageStatus>,
    Reply::Storage
);
rpc!(
    MountpathOp,
    Storage::Mountpath,
    Box<MountpathReply>,
    Reply::Mountpath
);
rpc!(
    GetResilver,
    Storage::Resilver,
    Option<Box<ResilverStatus>>,
    Reply::Resilver
);

/// Message forms of the requests whose replies are streamed (no [`Rpc`] pairing).
impl From<PutObject> for Msg {
    fn from(p: PutObject) -> Msg {
        Msg::Data(Data::Put(p))
    }
}

impl From<GetObject> for Msg {
    fn from(g: GetObject) -> Msg {
        Msg::Data(Data::Get(g))
    }
}

impl From<RebBatch> for Msg {
    fn from(r: RebBatch) -> Msg {
        Msg::Reb(Reb::Batch(r))
    }
}

impl From<RebObject> for Msg {
    fn from(r: RebObject) -> Msg {
        Msg::Reb(Reb::Object(r))
    }
}

/// The typed value of `msg` as the reply to an `R`: an error reply becomes `Err`, a redirect
/// becomes [`Error::Moved`], anything else that is not `R`'s reply is a protocol error.
pub fn expect<R: Rpc>(msg: Msg) -> Result<R::Reply> {
    match msg {
        Msg::Reply(r) => R::from_reply(r)
            .ok_or_else(|| Error::Protocol(format!("unexpected reply to {}", type_name::<R>()))),
        Msg::Error(w) => Err(w.into()),
        Msg::Redirect { node, addr } => Err(Error::Moved { node: node.0, addr }),
        other => Err(Error::Protocol(format!(
            "unexpected {} in reply to {}",
            other.name(),
            type_name::<R>()
        ))),
    }
}

fn type_name<T>() -> &'static str {
    let n = std::any::type_name::<T>();
    n.rsplit("::").next().unwrap_or(n)
}

/// `Reply::Ok` as the answer to a two-phase request's first message (go ahead).
pub fn expect_go_ahead(msg: Msg) -> Result<()> {
    match msg {
        Msg::Reply(Reply::Ok) => Ok(()),
        Msg::Error(w) => Err(w.into()),
        Msg::Redirect { node, addr } => Err(Error::Moved { node: node.0, addr }),
        other => Err(Error::Protocol(format!(
            "expected go-ahead, got {}",
            other.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_paired_with_their_requests() {
        let smap = Smap::bootstrap(Node::new(NodeId("p".into()), Role::Proxy, "a".into()));
        let m = Msg::Reply(GetSmap::reply(smap.clone()));
        assert_eq!(expect::<GetSmap>(m).unwrap(), smap);
        // The wrong kind of reply is refused, not misread.
        let m = Msg::Reply(Reply::Buckets(vec![]));
        assert!(matches!(expect::<GetSmap>(m), Err(Error::Protocol(m)) if m.contains("GetSmap")));
        let m = Msg::Redirect {
            node: NodeId("t".into()),
            addr: "x:1".into(),
        };
        assert!(matches!(expect::<HeadObject>(m), Err(Error::Moved { .. })));
        let m = Msg::from(Error::Busy("later".into()));
        assert!(matches!(expect::<CreateBucket>(m), Err(Error::Busy(_))));
        assert!(expect::<CreateBucket>(Msg::Reply(Reply::Ok)).is_ok());
    }
}
