//! Privileges (DESIGN §10): the checks, as pure functions over the auth config and the map.
//! Lifecycle and cluster-wide operations need admin rights; with `auth.enabled = false`
//! everything is allowed. Node-to-node requests carry a token signed with the cluster secret for
//! the node they claim to come from, and control messages are accepted only from members.

use crate::error::{Error, Result};
use crate::types::config::AuthConfig;
use crate::types::meta::Meta;
use crate::types::smap::NodeId;

/// Checks that an admin request carries an admin token (when auth is on).
pub fn check_admin(cfg: &AuthConfig, token: Option<&str>) -> Result<()> {
    if !cfg.enabled {
        return Ok(());
    }
    let Some(token) = token else {
        return Err(Error::Unauthorized(
            "this operation needs an admin token".into(),
        ));
    };
    let claims = jwt::verify(token, cfg.secret.as_bytes())?;
    if !claims.admin {
        return Err(Error::Forbidden(format!("{} is not an admin", claims.sub)));
    }
    Ok(())
}

/// Subject of the tokens nodes sign their requests with.
pub fn node_subject(id: &NodeId) -> String {
    format!("node:{id}")
}

/// How long a node token is valid.
pub const NODE_TOKEN_TTL_SECS: u64 = 3600;

/// A token for node-to-node requests from `me`, when auth is on.
pub fn node_token(cfg: &AuthConfig, me: &NodeId) -> Option<String> {
    if !cfg.enabled {
        return None;
    }
    let claims = jwt::Claims {
        sub: node_subject(me),
        exp: crate::types::unix_secs() + NODE_TOKEN_TTL_SECS,
        admin: false,
    };
    jwt::sign(&claims, cfg.secret.as_bytes()).ok()
}

/// With auth on, node-to-node requests must carry a token signed with the cluster secret for
/// the node they claim to come from; without it a process could pose as a member.
pub fn check_node(cfg: &AuthConfig, from: &NodeId, token: Option<&str>) -> Result<()> {
    if !cfg.enabled {
        return Ok(());
    }
    let token = token.ok_or_else(|| {
        Error::Unauthorized(format!("{from}: node requests need the cluster's token"))
    })?;
    let claims = jwt::verify(token, cfg.secret.as_bytes())?;
    if claims.sub != node_subject(from) {
        return Err(Error::Forbidden(format!(
            "token of {} used by {from}",
            claims.sub
        )));
    }
    Ok(())
}

/// Control messages from nodes: the sender must be in our map (or, before we joined, anyone —
/// a standby node learns its cluster from the first primary that talks to it).
pub fn check_member(meta: &Meta, from: &NodeId) -> Result<()> {
    match &meta.smap {
        None => Ok(()),
        Some(s) if s.contains(from) => Ok(()),
        Some(_) => Err(Error::Forbidden(format!(
            "{from} is not a member of this cluster"
        ))),
    }
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
        pub admin: bool,
    }

    const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    pub fn sign(claims: &Claims, secret: &[u8]) -> Result<String> {
        let payload = serde_json::to_vec(claims).map_err(|e| Error::Encode(e.to_string()))?;
        let msg = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).map_err(|e| Error::BadRequest(e.to_string()))?;
        mac.update(msg.as_bytes());
        Ok(format!("{msg}.{}", B64.encode(mac.finalize().into_bytes())))
    }

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
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(bad("algorithm must be HS256"));
        }
        let sig = B64
            .decode(s)
            .map_err(|_| bad("signature is not base64url"))?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).map_err(|e| Error::BadRequest(e.to_string()))?;
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

        #[test]
        fn sign_verify_and_refusals() {
            let now = crate::types::unix_secs();
            let c = Claims {
                sub: "ops".into(),
                exp: now + 60,
                admin: true,
            };
            let t = sign(&c, b"k1").unwrap();
            assert_eq!(verify(&t, b"k1").unwrap(), c);
            assert!(matches!(verify(&t, b"k2"), Err(Error::Unauthorized(_))));
            let expired = sign(
                &Claims {
                    exp: now - 1,
                    ..c.clone()
                },
                b"k1",
            )
            .unwrap();
            assert!(
                matches!(verify(&expired, b"k1"), Err(Error::Unauthorized(m)) if m.contains("expired"))
            );
            for junk in ["", "a.b", "a.b.c.d", "!!.??.**"] {
                assert!(verify(junk, b"k1").is_err());
            }
        }
    }
}
