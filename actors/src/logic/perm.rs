//! Who may do what (issue #16), as pure rules: the built-in roles, parsing permissions as
//! operators write them, the checks on user and role names and passwords, and the one
//! decision of whether a principal may take an action. No clock, no files, no sockets.

use crate::error::{Error, Result};
use crate::types::auth::{Access, Perm, Principal, PrincipalKind, RoleDef, UserRec};

/// The roles every cluster has; they cannot be removed or redefined.
pub const ADMIN: &str = "admin";
pub const BUCKET_ADMIN: &str = "bucket-admin";
pub const READ_WRITE: &str = "read-write";
pub const READ_ONLY: &str = "read-only";

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

fn all(access: Access) -> Perm {
    Perm {
        access,
        bucket: "*".into(),
    }
}

pub fn builtin_roles() -> Vec<RoleDef> {
    let role = |name: &str, desc: &str, access| RoleDef {
        name: name.into(),
        desc: desc.into(),
        perms: vec![all(access)],
    };
    vec![
        role(
            ADMIN,
            "cluster admin: lifecycle, membership, buckets, users, keys, disks",
            Access::ClusterAdmin,
        ),
        role(
            BUCKET_ADMIN,
            "creates and destroys buckets, reads and writes every bucket",
            Access::BucketAdmin,
        ),
        role(
            READ_WRITE,
            "reads and writes every bucket",
            Access::ReadWrite,
        ),
        role(READ_ONLY, "reads and lists every bucket", Access::ReadOnly),
    ]
}

pub fn is_builtin(name: &str) -> bool {
    [ADMIN, BUCKET_ADMIN, READ_WRITE, READ_ONLY].contains(&name)
}

/// Every role known: the built-in ones, then the cluster's own.
pub fn all_roles(defined: &[RoleDef]) -> Vec<RoleDef> {
    let mut v = builtin_roles();
    v.extend(defined.iter().filter(|r| !is_builtin(&r.name)).cloned());
    v
}

pub fn find_role<'a>(defined: &'a [RoleDef], name: &str) -> Option<std::borrow::Cow<'a, RoleDef>> {
    if is_builtin(name) {
        return builtin_roles()
            .into_iter()
            .find(|r| r.name == name)
            .map(std::borrow::Cow::Owned);
    }
    defined
        .iter()
        .find(|r| r.name == name)
        .map(std::borrow::Cow::Borrowed)
}

/// The permissions of a set of role names. Roles that no longer exist give nothing.
pub fn perms_of(roles: &[String], defined: &[RoleDef]) -> Vec<Perm> {
    let mut out: Vec<Perm> = Vec::new();
    for r in roles {
        if let Some(def) = find_role(defined, r) {
            for p in &def.perms {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
    }
    out
}

/// A user's principal, with the permissions of their roles as defined now (a role changed or
/// removed takes effect on the next request, without new tokens).
pub fn user_principal(user: &UserRec, defined: &[RoleDef]) -> Principal {
    Principal {
        subject: user.name.clone(),
        kind: PrincipalKind::User,
        roles: user.roles.clone(),
        perms: perms_of(&user.roles, defined),
    }
}

/// Parses a permission as written on the command line: `cluster-admin`, `bucket-admin[:B]`,
/// `rw:B`, `ro:B` (also `read-write:B`, `read-only:B`), where `B` is `*`, a prefix ending in
/// `*`, or a bucket name.
pub fn parse_perm(s: &str) -> Result<Perm> {
    let bad = |why: &str| {
        Error::BadRequest(format!(
            "bad permission {s:?}: {why} (expected cluster-admin, bucket-admin[:BUCKETS], rw:BUCKETS or ro:BUCKETS; BUCKETS is *, a prefix ending in *, or a name)"
        ))
    };
    let (kind, bucket) = match s.split_once(':') {
        Some((k, b)) => (k, Some(b)),
        None => (s, None),
    };
    let access = match kind {
        "cluster-admin" | "admin" => Access::ClusterAdmin,
        "bucket-admin" => Access::BucketAdmin,
        "rw" | "read-write" => Access::ReadWrite,
        "ro" | "read-only" => Access::ReadOnly,
        _ => return Err(bad("unknown access")),
    };
    let bucket = match (access, bucket) {
        (Access::ClusterAdmin, Some(_)) => return Err(bad("cluster-admin takes no buckets")),
        (Access::ClusterAdmin, None) | (Access::BucketAdmin, None) => "*".to_string(),
        (_, None) | (_, Some("")) => return Err(bad("which buckets?")),
        (_, Some(b)) => {
            let name = b.strip_suffix('*').unwrap_or(b);
            if name.contains('*') {
                return Err(bad("`*` only at the end"));
            }
            if !name.is_empty() {
                super::names::validate_bucket(name).map_err(|e| bad(&e.to_string()))?;
            }
            b.to_string()
        }
    };
    Ok(Perm { access, bucket })
}

/// Whether a bucket pattern (`*`, `prefix*`, or a name) covers `bucket`.
pub fn covers(pattern: &str, bucket: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => bucket.starts_with(prefix),
        None => pattern == bucket,
    }
}

/// User and role names: 1–64 of letters, digits, `.`, `_`, `-`, `@`, starting with a letter
/// or digit — never a `:` (node and key subjects carry one) nor anything a terminal interprets.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "bad {what} name {:?}: 1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit",
            crate::logic::format::safe(&name.chars().take(80).collect::<String>())
        )))
    }
}

/// Refuses passwords that are empty, short, or the user's own name.
pub fn validate_password(user: &str, password: &str) -> Result<()> {
    if password.trim().is_empty() {
        return Err(Error::BadRequest("the password is empty".into()));
    }
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::BadRequest(format!(
            "the password is too weak: at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.eq_ignore_ascii_case(user) {
        return Err(Error::BadRequest(
            "the password is too weak: it is the user name".into(),
        ));
    }
    Ok(())
}

/// What a request wants to do, as far as privileges go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// See the cluster: maps, status, config (masked), bucket names, stats, `whoami`.
    View,
    /// Read or list objects of a bucket.
    Read(&'a str),
    /// Write or delete objects of a bucket.
    Write(&'a str),
    /// Create or destroy a bucket.
    Bucket(&'a str),
    /// Anything beyond buckets (lifecycle, membership, users and roles, keys, disks,
    /// rebalance settings), described for the refusal.
    Cluster(&'a str),
}

impl Action<'_> {
    fn describe(&self) -> String {
        match self {
            Action::View => "see the cluster".into(),
            Action::Read(b) => format!("read bucket {b:?}"),
            Action::Write(b) => format!("write to bucket {b:?}"),
            Action::Bucket(b) => format!("create or destroy bucket {b:?}"),
            Action::Cluster(what) => what.to_string(),
        }
    }

    fn needs(&self) -> &'static str {
        match self {
            Action::View => "a valid identity",
            Action::Read(_) => "ro, rw or bucket-admin on it",
            Action::Write(_) => "rw or bucket-admin on it",
            Action::Bucket(_) => "bucket-admin on it",
            Action::Cluster(_) => "cluster-admin (role admin)",
        }
    }
}

/// Whether `perms` allow `action`.
pub fn allows(perms: &[Perm], action: Action<'_>) -> bool {
    perms.iter().any(|p| {
        if p.access == Access::ClusterAdmin {
            return true;
        }
        match action {
            Action::View => true,
            Action::Read(b) => covers(&p.bucket, b),
            Action::Write(b) => p.access >= Access::ReadWrite && covers(&p.bucket, b),
            Action::Bucket(b) => p.access >= Access::BucketAdmin && covers(&p.bucket, b),
            Action::Cluster(_) => false,
        }
    })
}

/// Decides `action` for `who`: `Forbidden` with who, what and what it needs when refused.
/// Anyone (auth off) and nodes may do everything; any verified caller may view.
pub fn check(who: &Principal, action: Action<'_>) -> Result<()> {
    if matches!(who.kind, PrincipalKind::Anyone | PrincipalKind::Node)
        || action == Action::View
        || allows(&who.perms, action)
    {
        return Ok(());
    }
    let roles = if who.roles.is_empty() {
        String::new()
    } else {
        format!(" (roles: {})", who.roles.join(", "))
    };
    Err(Error::Forbidden(format!(
        "{}{roles} may not {}: that needs {}",
        who.subject,
        action.describe(),
        action.needs()
    )))
}

pub fn is_cluster_admin(who: &Principal) -> bool {
    check(who, Action::Cluster("")).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[&str], defined: &[RoleDef]) -> Principal {
        user_principal(
            &UserRec {
                name: "u".into(),
                roles: roles.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            defined,
        )
    }

    #[test]
    fn builtin_roles_form_a_ladder() {
        let ro = user(&[READ_ONLY], &[]);
        assert!(check(&ro, Action::View).is_ok());
        assert!(check(&ro, Action::Read("data")).is_ok());
        assert!(matches!(
            check(&ro, Action::Write("data")),
            Err(Error::Forbidden(m)) if m.contains("u (roles: read-only) may not write to bucket \"data\"")
        ));
        let rw = user(&[READ_WRITE], &[]);
        assert!(check(&rw, Action::Write("data")).is_ok());
        assert!(check(&rw, Action::Bucket("data")).is_err());
        let ba = user(&[BUCKET_ADMIN], &[]);
        assert!(check(&ba, Action::Bucket("new")).is_ok());
        assert!(check(&ba, Action::Write("new")).is_ok());
        assert!(matches!(
            check(&ba, Action::Cluster("put a node in maintenance")),
            Err(Error::Forbidden(m)) if m.contains("cluster-admin")
        ));
        let admin = user(&[ADMIN], &[]);
        for a in [
            Action::View,
            Action::Read("x"),
            Action::Write("x"),
            Action::Bucket("x"),
            Action::Cluster("x"),
        ] {
            assert!(check(&admin, a).is_ok(), "{a:?}");
        }
        assert!(is_cluster_admin(&admin) && !is_cluster_admin(&ba));
    }

    #[test]
    fn bucket_patterns_limit_custom_roles() {
        let logs = RoleDef {
            name: "logs-rw".into(),
            desc: String::new(),
            perms: vec![
                parse_perm("rw:logs-*").unwrap(),
                parse_perm("ro:shared").unwrap(),
            ],
        };
        let u = user(&["logs-rw", "gone"], std::slice::from_ref(&logs));
        assert!(check(&u, Action::Write("logs-2026")).is_ok());
        assert!(check(&u, Action::Write("logs")).is_err(), "prefix is logs-");
        assert!(check(&u, Action::Read("shared")).is_ok());
        assert!(check(&u, Action::Write("shared")).is_err());
        assert!(check(&u, Action::Read("shared2")).is_err(), "exact name");
        assert!(check(&u, Action::Bucket("logs-x")).is_err());
        // A user with no (existing) role may still see the cluster, nothing more.
        let none = user(&["gone"], &[]);
        assert!(check(&none, Action::View).is_ok());
        assert!(check(&none, Action::Read("x")).is_err());
        // The built-ins cannot be shadowed by a stored role of the same name.
        let fake = RoleDef {
            name: READ_ONLY.into(),
            desc: String::new(),
            perms: vec![parse_perm("cluster-admin").unwrap()],
        };
        assert!(check(&user(&[READ_ONLY], &[fake]), Action::Cluster("x")).is_err());
    }

    #[test]
    fn nodes_and_auth_off_may_do_everything() {
        for kind in [PrincipalKind::Anyone, PrincipalKind::Node] {
            let p = Principal {
                subject: "x".into(),
                kind,
                roles: vec![],
                perms: vec![],
            };
            assert!(check(&p, Action::Cluster("x")).is_ok());
        }
    }

    #[test]
    fn permissions_parse_strictly() {
        assert_eq!(
            parse_perm("cluster-admin").unwrap().to_string(),
            "cluster-admin"
        );
        assert_eq!(
            parse_perm("bucket-admin").unwrap().to_string(),
            "bucket-admin:*"
        );
        assert_eq!(parse_perm("rw:logs-*").unwrap().to_string(), "rw:logs-*");
        assert_eq!(parse_perm("read-only:data").unwrap().to_string(), "ro:data");
        for bad in [
            "",
            "rw",
            "ro:",
            "write:data",
            "cluster-admin:data",
            "rw:a*b",
            "rw:../x",
            "rw:a/b*",
            "ro:**",
        ] {
            assert!(
                matches!(parse_perm(bad), Err(Error::BadRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_and_passwords() {
        for good in ["alice", "a", "svc-backup_1", "ops@example.com", "A.B"] {
            assert!(validate_name("user", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-x",
            "node:p1",
            "a b",
            "a/b",
            "é",
            &"x".repeat(65),
            "\u{1b}[2J",
        ] {
            assert!(validate_name("user", bad).is_err(), "{bad:?}");
        }
        assert!(validate_password("alice", "").is_err());
        assert!(validate_password("alice", "        ").is_err());
        assert!(validate_password("alice", "short").is_err());
        assert!(validate_password("alicealice", "AliceAlice").is_err());
        assert!(validate_password("alice", "correct horse").is_ok());
    }

    proptest::proptest! {
        /// Parsing never panics, and what parses prints back to something that parses the same.
        #[test]
        fn parse_perm_never_panics(s in ".{0,40}") {
            if let Ok(p) = parse_perm(&s) {
                proptest::prop_assert_eq!(parse_perm(&p.to_string()).unwrap(), p);
            }
        }
    }
}
