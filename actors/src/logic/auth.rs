//! Privileges (DESIGN §10), as pure checks over the auth settings.
//!
//! With `auth.enabled = false` everything is allowed. With it on, every request carries a JWT
//! (HMAC-SHA256) signed with the cluster secret: clients a user token (admin or not), nodes a
//! node token minted per request for their own ID and the cluster, valid for seconds only (a
//! captured one cannot be replayed later). The secret is provisioned on each node and never
//! travels: tokens prove that the sender knows it.

use crate::error::{Error, Result};
use crate::logic::oidc::{self, OidcKeys};
use crate::logic::perm::{self, Action};
use crate::types::auth::{Access, Perm, Principal, PrincipalKind};
use crate::types::config::AuthConfig;
use crate::types::smap::NodeId;

/// How long a node token is valid: long enough for clock skew and a slow peer, short enough
/// that a captured token is useless soon after.
pub const NODE_TOKEN_TTL_SECS: u64 = 30;
/// Clock skew tolerated between nodes.
pub const SKEW_SECS: u64 = 30;
/// Secrets shorter than this are accepted with a warning (tests use short ones).
pub const GOOD_SECRET_LEN: usize = 16;

/// The cluster secret as provisioned on this node. Trimmed (a secret file's trailing newline is
/// not part of it — `nodectl auth token` reads it the same way) and never empty. Its `Debug`
/// does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(raw: &str) -> Result<Self> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(Error::BadRequest(
                "the cluster secret is empty: with auth on, every node needs the same non-empty secret"
                    .into(),
            ));
        }
        Ok(Secret(s.to_string()))
    }

    pub fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The secret itself, for an in-process component that signs or checks tokens (the HTTP
    /// front door). Never for display.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_weak(&self) -> bool {
        self.0.len() < GOOD_SECRET_LEN
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(**********)")
    }
}

/// Seals `plain` (an S3 secret key) for the cluster config: ChaCha20-Poly1305 under a key
/// derived from the cluster secret, with a random nonce; base64url of nonce and ciphertext.
pub fn seal(secret: &Secret, plain: &str) -> Result<String> {
    use base64::Engine;
    use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(&sealing_key(secret));
    let nonce = chacha20poly1305::ChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ct = cipher
        .encrypt(&nonce, plain.as_bytes())
        .map_err(|_| Error::Encode("sealing failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend(ct);
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
}

/// Opens what [`seal`] made (with the same cluster secret).
pub fn unseal(secret: &Secret, sealed: &str) -> Result<String> {
    use base64::Engine;
    use chacha20poly1305::aead::{Aead, KeyInit};
    let bad = || Error::Unauthorized("a sealed key does not open with this node's secret".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| bad())?;
    if raw.len() < 12 {
        return Err(bad());
    }
    let (nonce, ct) = raw.split_at(12);
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(&sealing_key(secret));
    let plain = cipher
        .decrypt(chacha20poly1305::Nonce::from_slice(nonce), ct)
        .map_err(|_| bad())?;
    String::from_utf8(plain).map_err(|_| bad())
}

fn sealing_key(secret: &Secret) -> chacha20poly1305::Key {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.bytes())
        .expect("HMAC takes any key length");
    mac.update(b"shoal/s3-keys/v1");
    let k = mac.finalize().into_bytes();
    *chacha20poly1305::Key::from_slice(&k)
}

/// Subject of the tokens nodes sign their requests with.
pub fn node_subject(id: &NodeId) -> String {
    format!("node:{id}")
}

/// A node token for one request from `me` in cluster `uuid`.
pub fn node_token(secret: &Secret, me: &NodeId, uuid: Option<&str>) -> Option<String> {
    let now = crate::types::unix_secs();
    let claims = jwt::Claims {
        sub: node_subject(me),
        exp: now + NODE_TOKEN_TTL_SECS,
        admin: false,
        iat: Some(now),
        cluster: uuid.map(str::to_string),
        jti: None,
    };
    jwt::sign(&claims, secret.bytes()).ok()
}

/// What a receiver checks requests against.
pub struct Checker<'a> {
    pub enabled: bool,
    /// This node's secret (`None`: not provisioned).
    pub secret: Option<&'a Secret>,
    /// The cluster this node belongs to, once it has joined.
    pub uuid: Option<&'a str>,
    /// Users, roles, revocations and external issuers, as the cluster config has them now.
    pub cfg: &'a AuthConfig,
    /// The external issuers' keys, when `auth.oidc` trusts any (read by the node).
    pub oidc: Option<&'a OidcKeys>,
}

impl Checker<'_> {
    fn key(&self) -> Result<&Secret> {
        self.secret.ok_or_else(|| {
            Error::Unauthorized(
                "auth is on but this node has no cluster secret: provision it (auth secret file) and restart the node".into(),
            )
        })
    }

    fn verify(&self, token: Option<&str>, what: &str) -> Result<jwt::Claims> {
        let token = token.ok_or_else(|| Error::Unauthorized(format!("{what} needs a token")))?;
        jwt::verify(token, self.key()?.bytes())
    }

    /// A node token for `from`: signed for its ID, our cluster, and recent.
    fn node_claims(&self, c: &jwt::Claims, from: &NodeId) -> Result<()> {
        if c.sub != node_subject(from) {
            return Err(Error::Forbidden(format!(
                "token of {} used by {from}",
                c.sub
            )));
        }
        let now = crate::types::unix_secs();
        if c.exp > now + NODE_TOKEN_TTL_SECS + SKEW_SECS {
            return Err(Error::Unauthorized(format!(
                "node token of {from} is valid for too long (node tokens last {NODE_TOKEN_TTL_SECS} s)"
            )));
        }
        if let (Some(ours), Some(theirs)) = (self.uuid, c.cluster.as_deref())
            && ours != theirs
        {
            return Err(Error::Forbidden(format!(
                "{from} signs for cluster {theirs}, this is cluster {ours}"
            )));
        }
        Ok(())
    }

    /// Node-to-node requests: a node token for the node they claim to come from.
    pub fn node(&self, from: &NodeId, token: Option<&str>) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let c = self.verify(token, "a node request")?;
        self.node_claims(&c, from)
    }

    /// Who sends a request: a node, a holder of a shared-secret token, an AuthN user, an
    /// external identity. Missing, malformed, badly signed, expired or revoked tokens, and
    /// users that no longer exist, are *unauthorized*.
    pub fn identify(&self, from: &NodeId, token: Option<&str>) -> Result<Principal> {
        if !self.enabled {
            return Ok(Principal {
                subject: "anyone".into(),
                kind: PrincipalKind::Anyone,
                roles: Vec::new(),
                perms: Vec::new(),
            });
        }
        let t = token.ok_or_else(|| Error::Unauthorized("this request needs a token".into()))?;
        if oidc::is_external(t) {
            let keys = self.oidc.ok_or_else(|| {
                Error::Unauthorized(
                    "invalid external token: this cluster trusts no external issuer (auth.oidc)"
                        .into(),
                )
            })?;
            let ext = oidc::verify(t, keys, self.cfg)?;
            if let Some(j) = &ext.jti
                && self.cfg.is_revoked(j)
            {
                return Err(Error::Unauthorized(format!("token {j} was revoked")));
            }
            return Ok(oidc::principal(&ext, self.cfg));
        }
        let c = self.verify(Some(t), "this request")?;
        self.principal_of(&c, from)
    }

    /// The principal of verified claims of one of our own (HS256) tokens.
    fn principal_of(&self, c: &jwt::Claims, from: &NodeId) -> Result<Principal> {
        if c.sub.starts_with("node:") {
            self.node_claims(c, from)?;
            return Ok(Principal {
                subject: c.sub.clone(),
                kind: PrincipalKind::Node,
                roles: Vec::new(),
                perms: Vec::new(),
            });
        }
        match &c.jti {
            // Issued by the AuthN service: the user's roles as they are now.
            Some(j) => {
                if self.cfg.is_revoked(j) {
                    return Err(Error::Unauthorized(format!(
                        "token {j} of {} was revoked",
                        c.sub
                    )));
                }
                if let Some(at) = self.cfg.user_revoked_until(&c.sub)
                    && c.iat.unwrap_or(0) <= at
                {
                    return Err(Error::Unauthorized(format!(
                        "the tokens of {} issued before {} UTC were revoked: log in again",
                        c.sub,
                        crate::logic::format::clock(at + 1)
                    )));
                }
                let user = self.cfg.user(&c.sub).ok_or_else(|| {
                    Error::Unauthorized(format!("user {:?} does not exist (any more)", c.sub))
                })?;
                Ok(perm::user_principal(user, &self.cfg.roles))
            }
            // Minted from the shared secret (`nodectl auth token`): its admin flag decides,
            // as before users existed — admin for everything, otherwise data on every bucket.
            None => {
                let access = if c.admin {
                    Access::ClusterAdmin
                } else {
                    Access::ReadWrite
                };
                Ok(Principal {
                    subject: c.sub.clone(),
                    kind: PrincipalKind::Shared,
                    roles: Vec::new(),
                    perms: vec![Perm {
                        access,
                        bucket: "*".into(),
                    }],
                })
            }
        }
    }

    /// Identifies the sender and decides `action` for it: *unauthorized* when it cannot be
    /// identified, *forbidden* when it may not.
    pub fn authorize(
        &self,
        from: &NodeId,
        token: Option<&str>,
        action: Action<'_>,
    ) -> Result<Principal> {
        let p = self.identify(from, token)?;
        perm::check(&p, action)?;
        Ok(p)
    }

    /// Any request from a client or a node: any valid identity.
    pub fn user(&self, from: &NodeId, token: Option<&str>) -> Result<()> {
        self.identify(from, token).map(|_| ())
    }

    /// Lifecycle and cluster-wide operations: a cluster admin.
    pub fn admin(&self, token: Option<&str>) -> Result<()> {
        self.admin_subject(token).map(|_| ())
    }

    /// As [`admin`](Self::admin), returning who it is (`None` with auth off).
    pub fn admin_subject(&self, token: Option<&str>) -> Result<Option<String>> {
        if !self.enabled {
            return Ok(None);
        }
        let p = self.authorize(
            &NodeId(String::new()),
            token,
            Action::Cluster("run cluster-wide operations"),
        )?;
        Ok(Some(p.subject))
    }
}

/// The claims of one of our own tokens that is to be revoked: signed with our secret and
/// carrying an ID. Expired ones are refused (nothing left to revoke), as are shared-secret
/// tokens (they have no ID: rotating the secret is how those are revoked).
pub fn revocable(secret: &Secret, token: &str) -> Result<jwt::Claims> {
    let c = jwt::verify(token, secret.bytes()).map_err(|e| match e {
        Error::Unauthorized(m) => Error::BadRequest(format!("cannot revoke that token: {m}")),
        other => other,
    })?;
    if c.jti.is_none() {
        return Err(Error::BadRequest(
            "that token has no ID (minted from the shared secret): rotate the secret to revoke it"
                .into(),
        ));
    }
    Ok(c)
}

/// A fresh token ID: 128 random bits, hex.
pub fn new_jti() -> String {
    use rand::Rng;
    let v: u128 = rand::rng().random();
    format!("{v:032x}")
}

/// A token the AuthN service issues for `user`: HS256 under the cluster secret, with an ID
/// (revocable), its issue time `iat` (see `authn::next_iat`) and an expiry.
pub fn issue(
    secret: &Secret,
    user: &str,
    ttl_secs: u64,
    jti: String,
    iat: u64,
) -> Result<(String, u64)> {
    let now = crate::types::unix_secs();
    let claims = jwt::Claims {
        sub: user.to_string(),
        exp: now + ttl_secs.max(1),
        admin: false,
        iat: Some(iat),
        cluster: None,
        jti: Some(jti),
    };
    Ok((jwt::sign(&claims, secret.bytes())?, claims.exp))
}

/// Hashes a password with argon2id (random salt, the crate's default cost), PHC string.
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Encode(format!("password hashing failed: {e}")))
}

/// Whether `password` matches a PHC hash made by [`hash_password`]. A malformed hash matches
/// nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(h) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Control messages from nodes: the sender must be in our map (or, before we joined, anyone —
/// a standby node learns its cluster from the first primary that talks to it).
pub fn check_member(smap: Option<&crate::types::smap::Smap>, from: &NodeId) -> Result<()> {
    match smap {
        None => Ok(()),
        Some(s) if s.contains(from) => Ok(()),
        Some(_) => Err(Error::Forbidden(format!(
            "{from} is not a member of this cluster"
        ))),
    }
}

/// Metadata and final lifecycle steps come only from the primary of our map, or — for a map —
/// from a proxy of our cluster that carries a newer map naming it primary (an election).
pub fn check_from_primary(
    smap: Option<&crate::types::smap::Smap>,
    from: &NodeId,
    incoming: Option<&crate::types::smap::Smap>,
) -> Result<()> {
    let Some(s) = smap else {
        return Ok(()); // not joined yet: the first primary that talks to us
    };
    if &s.primary == from {
        return Ok(());
    }
    if let Some(m) = incoming
        && &m.primary == from
        && m.version > s.version
        && m.uuid == s.uuid
        && s.proxies.contains_key(from)
    {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "{from} is not the primary of this node's cluster map (p[{}])",
        s.primary
    )))
}

/// HMAC-SHA256 JSON Web Tokens with the claims Shoal uses.
pub mod jwt {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use hmac::{Hmac, Mac};
    use serde::{Deserialize, Serialize};
    use sha2::Sha256;

    use crate::error::{Error, Result};

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Claims {
        pub sub: String,
        /// Expiry, unix seconds.
        pub exp: u64,
        #[serde(default)]
        pub admin: bool,
        /// Issued at, unix seconds (node tokens).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub iat: Option<u64>,
        /// The cluster UUID a node token is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub cluster: Option<String>,
        /// Token ID of a token the AuthN service issued (login, S3 keys of users): what
        /// revocation names. Tokens minted from the shared secret have none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub jti: Option<String>,
    }

    const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    fn mac(secret: &[u8]) -> Result<Hmac<Sha256>> {
        if secret.is_empty() {
            return Err(Error::Unauthorized(
                "no token is valid under an empty secret".into(),
            ));
        }
        Hmac::<Sha256>::new_from_slice(secret).map_err(|e| Error::BadRequest(e.to_string()))
    }

    pub fn sign(claims: &Claims, secret: &[u8]) -> Result<String> {
        let payload = serde_json::to_vec(claims).map_err(|e| Error::Encode(e.to_string()))?;
        let msg = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
        let mut mac = mac(secret)?;
        mac.update(msg.as_bytes());
        Ok(format!("{msg}.{}", B64.encode(mac.finalize().into_bytes())))
    }

    /// Verifies signature, algorithm and expiry. Never panics, whatever the input.
    pub fn verify(token: &str, secret: &[u8]) -> Result<Claims> {
        let bad = |why: &str| Error::Unauthorized(format!("invalid token: {why}"));
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a JWT"));
        };
        let header = B64.decode(h).map_err(|_| bad("header is not base64url"))?;
        let header: serde_json::Value =
            serde_json::from_slice(&header).map_err(|_| bad("header is not JSON"))?;
        // Only HS256: `none` and every other algorithm are refused before anything else.
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(bad("algorithm must be HS256"));
        }
        let sig = B64
            .decode(s)
            .map_err(|_| bad("signature is not base64url"))?;
        let mut mac = mac(secret)?;
        mac.update(format!("{h}.{p}").as_bytes());
        mac.verify_slice(&sig).map_err(|_| bad("bad signature"))?;
        let payload = B64.decode(p).map_err(|_| bad("payload is not base64url"))?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| bad("bad claims"))?;
        if claims.exp <= crate::types::unix_secs() {
            return Err(bad("expired"));
        }
        Ok(claims)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn claims(exp: u64, admin: bool) -> Claims {
            Claims {
                sub: "ops".into(),
                exp,
                admin,
                iat: None,
                cluster: None,
                jti: None,
            }
        }

        /// A token with a hand-made header and payload, signed with `secret`.
        fn forge(header: &str, payload: &str, secret: &[u8]) -> String {
            let msg = format!("{}.{}", B64.encode(header), B64.encode(payload));
            let mut m = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            m.update(msg.as_bytes());
            format!("{msg}.{}", B64.encode(m.finalize().into_bytes()))
        }

        #[test]
        fn sign_verify_and_refusals() {
            let now = crate::types::unix_secs();
            let c = claims(now + 60, true);
            let t = sign(&c, b"k1").unwrap();
            assert_eq!(verify(&t, b"k1").unwrap(), c);
            assert!(matches!(verify(&t, b"k2"), Err(Error::Unauthorized(_))));
            let expired = sign(&claims(now - 1, true), b"k1").unwrap();
            assert!(
                matches!(verify(&expired, b"k1"), Err(Error::Unauthorized(m)) if m.contains("expired"))
            );
            let now_exp = sign(&claims(now, true), b"k1").unwrap();
            assert!(verify(&now_exp, b"k1").is_err(), "exp now is expired");
            for junk in ["", "a.b", "a.b.c.d", "!!.??.**", "...."] {
                assert!(verify(junk, b"k1").is_err(), "{junk:?}");
            }
        }

        #[test]
        fn hostile_tokens_are_refused() {
            let now = crate::types::unix_secs();
            let payload = format!(r#"{{"sub":"x","exp":{},"admin":true}}"#, now + 60);
            // alg none, with and without a signature.
            let none = format!(
                "{}.{}.",
                B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
                B64.encode(&payload)
            );
            assert!(verify(&none, b"k").is_err());
            let none_signed = forge(r#"{"alg":"none"}"#, &payload, b"k");
            assert!(verify(&none_signed, b"k").is_err());
            // Another algorithm, even correctly keyed.
            let hs512 = forge(r#"{"alg":"HS512","typ":"JWT"}"#, &payload, b"k");
            assert!(
                matches!(verify(&hs512, b"k"), Err(Error::Unauthorized(m)) if m.contains("HS256"))
            );
            // Padded base64 segments are not base64url as JWTs use it.
            let good = forge(r#"{"alg":"HS256","typ":"JWT"}"#, &payload, b"k");
            assert!(verify(&good, b"k").is_ok());
            let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
            parts[1].push('=');
            assert!(verify(&parts.join("."), b"k").is_err());
            // An extra segment.
            assert!(verify(&format!("{good}.x"), b"k").is_err());
            // exp missing, admin as a string.
            let no_exp = forge(r#"{"alg":"HS256"}"#, r#"{"sub":"x","admin":true}"#, b"k");
            assert!(verify(&no_exp, b"k").is_err());
            let admin_str = forge(
                r#"{"alg":"HS256"}"#,
                &format!(r#"{{"sub":"x","exp":{},"admin":"true"}}"#, now + 60),
                b"k",
            );
            assert!(verify(&admin_str, b"k").is_err());
            // No token is valid under an empty secret, and none can be made with one.
            assert!(sign(&claims(now + 60, true), b"").is_err());
            let empty_keyed = forge(r#"{"alg":"HS256"}"#, &payload, b"");
            assert!(verify(&empty_keyed, b"").is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::smap::{Node, Role, Smap};

    #[test]
    fn sealed_keys_open_only_with_the_cluster_secret() {
        let s = Secret::new("cluster-secret-for-tests").unwrap();
        let sealed = seal(&s, "AWS-SECRET-KEY").unwrap();
        assert!(!sealed.contains("AWS-SECRET-KEY"));
        assert_ne!(
            sealed,
            seal(&s, "AWS-SECRET-KEY").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(unseal(&s, &sealed).unwrap(), "AWS-SECRET-KEY");
        let other = Secret::new("another-secret").unwrap();
        assert!(unseal(&other, &sealed).is_err());
        for junk in ["", "!!", "AAAA", &sealed[..10]] {
            assert!(unseal(&s, junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn secrets_are_trimmed_and_never_empty() {
        assert!(Secret::new("").is_err());
        assert!(Secret::new(" \n\t").is_err());
        let s = Secret::new("s3cret\n").unwrap();
        assert_eq!(s.bytes(), b"s3cret");
        assert_eq!(s, Secret::new("  s3cret").unwrap());
        assert!(s.is_weak());
        assert_eq!(format!("{s:?}"), "Secret(**********)");
    }

    #[test]
    fn node_tokens_are_bound_to_the_sender_the_cluster_and_a_short_window() {
        let secret = Secret::new("cluster-secret-for-tests").unwrap();
        let a = NodeId("aaat1".into());
        let b = NodeId("bbbt2".into());
        let cfg = AuthConfig::default();
        let ck = Checker {
            enabled: true,
            secret: Some(&secret),
            uuid: Some("u1"),
            cfg: &cfg,
            oidc: None,
        };
        let t = node_token(&secret, &a, Some("u1")).unwrap();
        assert!(ck.node(&a, Some(&t)).is_ok());
        assert!(ck.user(&a, Some(&t)).is_ok());
        assert!(
            matches!(ck.node(&b, Some(&t)), Err(Error::Forbidden(_))),
            "claimed by another"
        );
        assert!(matches!(ck.user(&b, Some(&t)), Err(Error::Forbidden(_))));
        let other = node_token(&secret, &a, Some("u2")).unwrap();
        assert!(
            matches!(ck.node(&a, Some(&other)), Err(Error::Forbidden(_))),
            "other cluster"
        );
        // A node token made to last (a replay kept for later) is refused.
        let now = crate::types::unix_secs();
        let long = jwt::sign(
            &jwt::Claims {
                sub: node_subject(&a),
                exp: now + 3600,
                admin: false,
                iat: Some(now),
                cluster: Some("u1".into()),
                jti: None,
            },
            secret.bytes(),
        )
        .unwrap();
        assert!(matches!(
            ck.node(&a, Some(&long)),
            Err(Error::Unauthorized(_))
        ));
        assert!(matches!(ck.node(&a, None), Err(Error::Unauthorized(_))));
        // A user token is not a node token.
        let user = jwt::sign(
            &jwt::Claims {
                sub: "ops".into(),
                exp: now + 60,
                admin: true,
                iat: None,
                cluster: None,
                jti: None,
            },
            secret.bytes(),
        )
        .unwrap();
        assert!(matches!(ck.node(&a, Some(&user)), Err(Error::Forbidden(_))));
        assert!(ck.admin(Some(&user)).is_ok());
        // Auth on without a provisioned secret refuses everything, clearly.
        let blind = Checker {
            enabled: true,
            secret: None,
            uuid: None,
            cfg: &cfg,
            oidc: None,
        };
        assert!(
            matches!(blind.user(&a, Some(&t)), Err(Error::Unauthorized(m)) if m.contains("no cluster secret"))
        );
        // Auth off: anything goes.
        let off = Checker {
            enabled: false,
            secret: None,
            uuid: None,
            cfg: &cfg,
            oidc: None,
        };
        assert!(off.admin(None).is_ok() && off.node(&a, None).is_ok());
    }

    #[test]
    fn users_tokens_resolve_to_their_roles_until_revoked_or_removed() {
        let secret = Secret::new("cluster-secret-for-tests").unwrap();
        let mut cfg = AuthConfig {
            enabled: true,
            ..Default::default()
        };
        let hash = hash_password("correct horse").unwrap();
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not-a-phc-string"));
        crate::logic::authn::add_user(&mut cfg, "alice", &hash, &["read-only".into()], 1).unwrap();
        let now = crate::types::unix_secs();
        let (t, _) = issue(&secret, "alice", 60, "j1".into(), now).unwrap();
        let a = NodeId("x".into());
        let check = |cfg: &AuthConfig, action| {
            Checker {
                enabled: true,
                secret: Some(&secret),
                uuid: None,
                cfg,
                oidc: None,
            }
            .authorize(&a, Some(&t), action)
        };
        let p = check(&cfg, Action::Read("b")).unwrap();
        assert_eq!(
            (p.subject.as_str(), p.kind.clone()),
            ("alice", PrincipalKind::User)
        );
        assert!(matches!(
            check(&cfg, Action::Write("b")),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            check(&cfg, Action::Cluster("x")),
            Err(Error::Forbidden(_))
        ));
        let mut revoked = cfg.clone();
        crate::logic::authn::revoke(&mut revoked, "j1", 0, "alice", 1).unwrap();
        assert!(
            matches!(check(&revoked, Action::View), Err(Error::Unauthorized(m)) if m.contains("revoked"))
        );
        let mut everywhere = cfg.clone();
        crate::logic::authn::revoke_user(&mut everywhere, "alice", now).unwrap();
        assert!(
            matches!(check(&everywhere, Action::View), Err(Error::Unauthorized(m)) if m.contains("log in again"))
        );
        let iat = crate::logic::authn::next_iat(&everywhere, "alice", now);
        let (fresh, _) = issue(&secret, "alice", 60, "j3".into(), iat).unwrap();
        let ck2 = Checker {
            enabled: true,
            secret: Some(&secret),
            uuid: None,
            cfg: &everywhere,
            oidc: None,
        };
        assert!(
            ck2.identify(&a, Some(&fresh)).is_ok(),
            "a login after it is good"
        );
        let mut removed = cfg.clone();
        crate::logic::authn::remove_user(&mut removed, "alice").unwrap();
        assert!(
            matches!(check(&removed, Action::View), Err(Error::Unauthorized(m)) if m.contains("does not exist"))
        );
        let mut c = jwt::verify(&t, secret.bytes()).unwrap();
        c.exp = crate::types::unix_secs() - 1;
        let stale = jwt::sign(&c, secret.bytes()).unwrap();
        let ck = Checker {
            enabled: true,
            secret: Some(&secret),
            uuid: None,
            cfg: &cfg,
            oidc: None,
        };
        assert!(
            matches!(ck.identify(&a, Some(&stale)), Err(Error::Unauthorized(m)) if m.contains("expired"))
        );
        // Revoking needs one of our tokens with an ID.
        assert!(revocable(&secret, &t).is_ok());
        let shared = jwt::sign(
            &jwt::Claims {
                sub: "ops".into(),
                exp: crate::types::unix_secs() + 60,
                admin: true,
                iat: None,
                cluster: None,
                jti: None,
            },
            secret.bytes(),
        )
        .unwrap();
        assert!(matches!(
            revocable(&secret, &shared),
            Err(Error::BadRequest(_))
        ));
        assert!(revocable(&secret, "junk").is_err());
        // An external-looking token without any trusted issuer is unauthorized.
        assert!(matches!(
            ck.identify(&a, Some("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")),
            Err(Error::Unauthorized(_))
        ));
    }

    #[test]
    fn metadata_comes_only_from_the_primary_or_a_newly_elected_one() {
        let p = Node::new(NodeId("pp1".into()), Role::Proxy, "a".into());
        let mut smap = Smap::bootstrap(p.clone());
        let p2 = Node::new(NodeId("pp2".into()), Role::Proxy, "b".into());
        smap.insert(p2.clone());
        let t = Node::new(NodeId("tt1".into()), Role::Target, "c".into());
        smap.insert(t.clone());
        assert!(check_from_primary(Some(&smap), &p.id, None).is_ok());
        assert!(matches!(
            check_from_primary(Some(&smap), &t.id, None),
            Err(Error::Forbidden(_))
        ));
        // An election: p2 brings a newer map naming itself primary.
        let mut elected = smap.clone();
        elected.primary = p2.id.clone();
        elected.version += 1;
        assert!(check_from_primary(Some(&smap), &p2.id, Some(&elected)).is_ok());
        // A target cannot elect itself, nor can a map of another cluster or an old one.
        let mut fake = smap.clone();
        fake.primary = t.id.clone();
        fake.version += 1;
        assert!(check_from_primary(Some(&smap), &t.id, Some(&fake)).is_err());
        let mut stale = elected.clone();
        stale.version = smap.version;
        assert!(check_from_primary(Some(&smap), &p2.id, Some(&stale)).is_err());
        assert!(
            check_from_primary(None, &t.id, None).is_ok(),
            "not joined yet"
        );
    }
}
