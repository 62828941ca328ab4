//! The AuthN service's rules for changing users, roles and revocations in the auth section of
//! the cluster config (the primary applies them, then persists and metasyncs the config). Each
//! function checks everything before it changes anything: a refused request changes nothing.

use crate::error::{Error, Result};
use crate::logic::perm;
use crate::types::auth::{MAX_TOKEN_TTL_SECS, REVOKED_UNKNOWN_EXP_SECS, Revoked, RoleDef, UserRec};
use crate::types::config::AuthConfig;

/// Adds a user whose password was already hashed (`password_hash`, PHC string).
pub fn add_user(
    auth: &mut AuthConfig,
    name: &str,
    password_hash: &str,
    roles: &[String],
    now: u64,
) -> Result<()> {
    perm::validate_name("user", name)?;
    if auth.user(name).is_some() {
        return Err(Error::BadRequest(format!("user {name:?} already exists")));
    }
    if !password_hash.starts_with("$argon2") {
        return Err(Error::BadRequest(
            "the password must be hashed by the node before it is stored".into(),
        ));
    }
    if roles.is_empty() {
        return Err(Error::BadRequest(format!(
            "user {name:?} needs at least one role (built-in: {}, {}, {}, {})",
            perm::ADMIN,
            perm::BUCKET_ADMIN,
            perm::READ_WRITE,
            perm::READ_ONLY
        )));
    }
    for r in roles {
        if perm::find_role(&auth.roles, r).is_none() {
            return Err(Error::BadRequest(format!(
                "unknown role {:?} (roles: {})",
                crate::logic::format::safe(r),
                role_names(auth)
            )));
        }
    }
    let mut roles = roles.to_vec();
    roles.dedup();
    auth.users.push(UserRec {
        name: name.to_string(),
        password_hash: password_hash.to_string(),
        roles,
        created: now,
    });
    Ok(())
}

fn role_names(auth: &AuthConfig) -> String {
    perm::all_roles(&auth.roles)
        .iter()
        .map(|r| r.name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Removes a user, and the S3 keys that act as them.
pub fn remove_user(auth: &mut AuthConfig, name: &str) -> Result<()> {
    if auth.user(name).is_none() {
        return Err(Error::NotFound(format!(
            "no user {:?}",
            crate::logic::format::safe(name)
        )));
    }
    auth.users.retain(|u| u.name != name);
    auth.s3_keys.retain(|k| k.user != name);
    Ok(())
}

pub fn add_role(auth: &mut AuthConfig, role: RoleDef) -> Result<()> {
    perm::validate_name("role", &role.name)?;
    if perm::find_role(&auth.roles, &role.name).is_some() {
        return Err(Error::BadRequest(format!(
            "role {:?} already exists",
            role.name
        )));
    }
    if role.perms.is_empty() {
        return Err(Error::BadRequest(format!(
            "role {:?} needs at least one permission",
            role.name
        )));
    }
    // Permissions that came over the wire are held to what the CLI could have written.
    for p in &role.perms {
        perm::parse_perm(&p.to_string())?;
    }
    auth.roles.push(role);
    Ok(())
}

/// Removes a role no user has (a role in use would silently strip its users' rights).
pub fn remove_role(auth: &mut AuthConfig, name: &str) -> Result<()> {
    if perm::is_builtin(name) {
        return Err(Error::BadRequest(format!(
            "role {name:?} is built in and cannot be removed"
        )));
    }
    if !auth.roles.iter().any(|r| r.name == name) {
        return Err(Error::NotFound(format!(
            "no role {:?}",
            crate::logic::format::safe(name)
        )));
    }
    let users: Vec<&str> = auth
        .users
        .iter()
        .filter(|u| u.roles.iter().any(|r| r == name))
        .map(|u| u.name.as_str())
        .collect();
    if !users.is_empty() {
        return Err(Error::BadRequest(format!(
            "role {name:?} is given to {}: remove those users first",
            users.join(", ")
        )));
    }
    auth.roles.retain(|r| r.name != name);
    Ok(())
}

/// Revokes token `jti` (expiring at `exp`, 0 if unknown); forgets revocations of tokens that
/// have expired since. Revoking twice is not an error.
pub fn revoke(auth: &mut AuthConfig, jti: &str, exp: u64, sub: &str, now: u64) -> Result<()> {
    if jti.is_empty() || jti.len() > 128 {
        return Err(Error::BadRequest("a token ID is 1-128 characters".into()));
    }
    prune_revoked(auth, now);
    if !auth.is_revoked(jti) {
        auth.revoked.push(Revoked {
            jti: jti.to_string(),
            exp,
            at: now,
            sub: sub.to_string(),
        });
    }
    Ok(())
}

/// Revokes every token of `user` issued until now (tokens issued later, by a new login, are
/// good: the AuthN service issues them with a later `iat`).
pub fn revoke_user(auth: &mut AuthConfig, user: &str, now: u64) -> Result<()> {
    if auth.user(user).is_none() {
        return Err(Error::NotFound(format!(
            "no user {:?}",
            crate::logic::format::safe(user)
        )));
    }
    prune_revoked(auth, now);
    auth.revoked
        .retain(|r| !(r.jti.is_empty() && r.sub == user));
    auth.revoked.push(Revoked {
        jti: String::new(),
        exp: now + MAX_TOKEN_TTL_SECS,
        at: now,
        sub: user.to_string(),
    });
    Ok(())
}

/// The `iat` a new token of `user` gets: now, but always after the user's last revocation,
/// so that a login in the same second as a "log out everywhere" is not caught by it.
pub fn next_iat(auth: &AuthConfig, user: &str, now: u64) -> u64 {
    match auth.user_revoked_until(user) {
        Some(at) => now.max(at + 1),
        None => now,
    }
}

/// Drops revocations of tokens that are expired anyway.
pub fn prune_revoked(auth: &mut AuthConfig, now: u64) {
    auth.revoked.retain(|r| {
        let until = if r.exp == 0 {
            r.at + REVOKED_UNKNOWN_EXP_SECS
        } else {
            r.exp
        };
        until > now
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn users_are_checked_before_anything_changes() {
        let mut a = AuthConfig::default();
        add_user(&mut a, "alice", HASH, &roles(&["read-only"]), 1).unwrap();
        let before = a.clone();
        for (name, hash, r) in [
            ("alice", HASH, roles(&["read-only"])),      // duplicate
            ("bob", HASH, roles(&["no-such-role"])),     // unknown role
            ("bob", HASH, roles(&[])),                   // no role
            ("bob", "plaintext", roles(&["read-only"])), // not hashed
            ("bad name", HASH, roles(&["read-only"])),
            ("", HASH, roles(&["read-only"])),
        ] {
            assert!(
                matches!(
                    add_user(&mut a, name, hash, &r, 2),
                    Err(Error::BadRequest(_))
                ),
                "{name:?} {r:?}"
            );
            assert_eq!(a, before);
        }
        assert!(matches!(
            remove_user(&mut a, "nobody"),
            Err(Error::NotFound(_))
        ));
        assert_eq!(a, before);
        remove_user(&mut a, "alice").unwrap();
        assert!(a.users.is_empty());
    }

    #[test]
    fn roles_in_use_and_builtin_roles_stay() {
        let mut a = AuthConfig::default();
        let role = RoleDef {
            name: "logs".into(),
            desc: "logs writers".into(),
            perms: vec![perm::parse_perm("rw:logs-*").unwrap()],
        };
        add_role(&mut a, role.clone()).unwrap();
        assert!(add_role(&mut a, role.clone()).is_err(), "duplicate");
        let mut builtin = role.clone();
        builtin.name = "admin".into();
        assert!(add_role(&mut a, builtin).is_err(), "built-in name");
        let mut empty = role.clone();
        empty.name = "empty".into();
        empty.perms.clear();
        assert!(add_role(&mut a, empty).is_err());
        add_user(&mut a, "carol", HASH, &roles(&["logs"]), 1).unwrap();
        assert!(
            matches!(remove_role(&mut a, "logs"), Err(Error::BadRequest(m)) if m.contains("carol"))
        );
        assert!(remove_role(&mut a, "read-only").is_err());
        assert!(matches!(
            remove_role(&mut a, "nope"),
            Err(Error::NotFound(_))
        ));
        remove_user(&mut a, "carol").unwrap();
        remove_role(&mut a, "logs").unwrap();
        assert!(a.roles.is_empty());
    }

    #[test]
    fn revocations_last_as_long_as_their_tokens() {
        let mut a = AuthConfig::default();
        revoke(&mut a, "j1", 100, "alice", 10).unwrap();
        revoke(&mut a, "j1", 100, "alice", 11).unwrap();
        revoke(&mut a, "j2", 0, "", 10).unwrap();
        assert_eq!(a.revoked.len(), 2);
        assert!(a.is_revoked("j1") && a.is_revoked("j2"));
        assert!(revoke(&mut a, "", 0, "", 10).is_err());
        prune_revoked(&mut a, 100);
        assert!(!a.is_revoked("j1"), "expired: no need to remember");
        assert!(a.is_revoked("j2"));
        prune_revoked(&mut a, 10 + REVOKED_UNKNOWN_EXP_SECS);
        assert!(a.revoked.is_empty());
    }

    #[test]
    fn a_user_can_be_logged_out_everywhere() {
        let mut a = AuthConfig::default();
        assert!(matches!(
            revoke_user(&mut a, "ghost", 5),
            Err(Error::NotFound(_))
        ));
        add_user(&mut a, "alice", HASH, &roles(&["read-only"]), 1).unwrap();
        assert_eq!(next_iat(&a, "alice", 100), 100);
        revoke_user(&mut a, "alice", 100).unwrap();
        assert_eq!(a.user_revoked_until("alice"), Some(100));
        assert!(!a.is_revoked(""), "a per-user entry is no token ID");
        // A login in the same second gets a later iat; later logins keep theirs.
        assert_eq!(next_iat(&a, "alice", 100), 101);
        assert_eq!(next_iat(&a, "alice", 150), 150);
        revoke_user(&mut a, "alice", 200).unwrap();
        assert_eq!(
            a.revoked.len(),
            1,
            "the newer revocation replaces the older"
        );
        assert_eq!(a.user_revoked_until("alice"), Some(200));
        prune_revoked(&mut a, 200 + MAX_TOKEN_TTL_SECS);
        assert!(a.revoked.is_empty());
    }
}
