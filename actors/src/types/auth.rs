//! Users, roles, permissions and revocations (issue #16): what the cluster config carries
//! so that every node can decide who may do what, and what `whoami` answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a permission allows. Each level includes the ones below it on the same buckets;
/// only `ClusterAdmin` reaches beyond buckets (lifecycle, membership, users, keys, disks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    ReadOnly,
    ReadWrite,
    BucketAdmin,
    ClusterAdmin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "ro",
            Access::ReadWrite => "rw",
            Access::BucketAdmin => "bucket-admin",
            Access::ClusterAdmin => "cluster-admin",
        }
    }
}

/// One permission: an access level on the buckets `bucket` names — `*` for all, `logs-*` for
/// every name starting with `logs-`, otherwise exactly one bucket. Ignored for cluster admins.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Perm {
    pub access: Access,
    pub bucket: String,
}

impl std::fmt::Display for Perm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.access {
            Access::ClusterAdmin => f.write_str("cluster-admin"),
            a => write!(f, "{}:{}", a.as_str(), self.bucket),
        }
    }
}

/// A named set of permissions that users (and mapped identity-provider groups) are given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoleDef {
    pub name: String,
    pub desc: String,
    pub perms: Vec<Perm>,
}

/// A user of the integrated AuthN service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserRec {
    pub name: String,
    /// argon2id in the PHC string format (salt and parameters inside); never the password.
    /// `**********` when shown.
    pub password_hash: String,
    pub roles: Vec<String>,
    /// Unix seconds.
    pub created: u64,
}

/// A token that must no longer be accepted, by its ID (`jti`); or, with `jti` empty, every
/// token of user `sub` issued at or before `at` ("log out everywhere"). Kept until the tokens
/// would have expired anyway (`exp`), then dropped: the list stays as short as the live tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Revoked {
    pub jti: String,
    /// Unix seconds; 0 = unknown (kept for [`REVOKED_UNKNOWN_EXP_SECS`] from `at`).
    pub exp: u64,
    /// When it was revoked, unix seconds.
    pub at: u64,
    /// Whose it was, when known (for the operator reading `token ls`).
    pub sub: String,
}

/// Longest lifetime of a token the AuthN service issues (so a per-user revocation can be
/// forgotten after it).
pub const MAX_TOKEN_TTL_SECS: u64 = 365 * 24 * 3600;

/// A revocation of a token whose expiry is unknown (revoked by ID) is kept this long.
pub const REVOKED_UNKNOWN_EXP_SECS: u64 = 30 * 24 * 3600;

/// `auth.required_claims`, as the seed shows it: claims every token must carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequiredClaims {
    /// Accepted audiences: an external token must name one of them in `aud` (`None`: any).
    pub aud: Option<Vec<String>>,
}

/// `auth.oidc`: trust tokens signed (RS256 / ES256) by an organisation's identity provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcConfig {
    /// Issuers (`iss`) whose tokens are accepted; `None` or empty: no external tokens.
    pub allowed_iss: Option<Vec<String>>,
    /// PEM file with the issuers' public keys or certificates (`-` or empty: none). A path on
    /// every node: the cluster config is replicated, the file is provisioned like the secret.
    pub issuer_ca_bundle: String,
    /// JWKS file (`{"keys": [...]}`) with the issuers' keys, matched by `kid`.
    pub jwks_file: String,
    /// The claim whose values (a string or an array of strings) name the caller's groups;
    /// empty: `groups`, then `roles`.
    pub roles_claim: String,
    /// Group (claim value) → Shoal role. Groups not listed give nothing.
    pub role_map: BTreeMap<String, String>,
}

impl OidcConfig {
    /// Whether external tokens can be accepted at all.
    pub fn enabled(&self) -> bool {
        self.allowed_iss.as_ref().is_some_and(|v| !v.is_empty())
    }

    /// The key files to read (bundle, JWKS), set ones only.
    pub fn key_files(&self) -> Vec<&str> {
        [self.issuer_ca_bundle.as_str(), self.jwks_file.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty() && *p != "-")
            .collect()
    }
}

/// Who a request comes from, once its token is verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrincipalKind {
    /// Auth is off: everyone may do everything.
    Anyone,
    /// A cluster node (node token), or the gateway of one.
    Node,
    /// A token minted from the shared secret (`nodectl auth token`), with its `admin` flag.
    Shared,
    /// A user of the integrated AuthN service (`nodectl auth login`), or an S3 key mapped to one.
    User,
    /// A token of an external identity provider.
    External,
}

/// A verified caller: who, with which roles, allowed what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub subject: String,
    pub kind: PrincipalKind,
    /// Role names (users and mapped external groups); empty for the other kinds.
    pub roles: Vec<String>,
    pub perms: Vec<Perm>,
}

/// `nodectl auth whoami` and the console's header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub auth_enabled: bool,
    pub principal: Principal,
    /// Unix seconds the token expires, when there is one.
    pub exp: Option<u64>,
}
