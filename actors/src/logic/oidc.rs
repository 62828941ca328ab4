//! Tokens of an external identity provider (issue #16, the seed's third way): RS256 or ES256
//! JWTs from an allowed issuer (`auth.oidc.allowed_iss`), checked against the issuers' public
//! keys (a PEM bundle, a JWKS document), with the audience of `auth.required_claims.aud`, and
//! their groups mapped to Shoal roles (`auth.oidc.role_map`). Pure: the node reads the key files
//! and hands their text here.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};

use crate::error::{Error, Result};
use crate::types::auth::{Principal, PrincipalKind};
use crate::types::config::AuthConfig;

/// Clock skew tolerated on `exp` and `nbf` of external tokens, seconds.
pub const LEEWAY_SECS: u64 = 5;

/// The issuers' public keys.
#[derive(Clone, Default)]
pub struct OidcKeys {
    /// `(kid, key)`; PEM keys have no `kid`.
    keys: Vec<(Option<String>, DecodingKey)>,
}

impl std::fmt::Debug for OidcKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OidcKeys({} keys)", self.keys.len())
    }
}

fn bad_keys(what: &str, why: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!("identity provider keys ({what}): {why}"))
}

impl OidcKeys {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds every public key or certificate of a PEM bundle (RSA or EC P-256).
    pub fn add_pem_bundle(&mut self, what: &str, text: &str) -> Result<()> {
        let mut found = 0;
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN ") {
            let block = &rest[start..];
            let Some(end_tag) = block.find("-----END ") else {
                return Err(bad_keys(what, "a PEM block has no END line"));
            };
            let after = &block[end_tag + 9..];
            let end = after.find("-----").map(|i| end_tag + 9 + i + 5);
            let Some(end) = end else {
                return Err(bad_keys(what, "a PEM END line is cut short"));
            };
            let pem = &block[..end];
            let key = DecodingKey::from_rsa_pem(pem.as_bytes())
                .or_else(|_| DecodingKey::from_ec_pem(pem.as_bytes()))
                .map_err(|e| bad_keys(what, format!("block {}: {e}", found + 1)))?;
            self.keys.push((None, key));
            found += 1;
            rest = &block[end..];
        }
        if found == 0 {
            return Err(bad_keys(what, "no PEM block in it"));
        }
        Ok(())
    }

    /// Adds the RSA and EC keys of a JWKS document (`{"keys": [...]}`); others are skipped.
    pub fn add_jwks(&mut self, what: &str, text: &str) -> Result<()> {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(text).map_err(|e| bad_keys(what, e))?;
        for jwk in &set.keys {
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                self.keys.push((jwk.common.key_id.clone(), key));
            }
        }
        Ok(())
    }
}

/// What an external token says, once verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct External {
    pub sub: String,
    pub iss: String,
    pub exp: u64,
    pub jti: Option<String>,
    /// Values of the roles claim.
    pub groups: Vec<String>,
}

fn unauthorized(why: impl std::fmt::Display) -> Error {
    Error::Unauthorized(format!("invalid external token: {why}"))
}

/// Whether a token is signed the way identity providers sign (RS256 / ES256), by its header.
pub fn is_external(token: &str) -> bool {
    matches!(
        jsonwebtoken::decode_header(token).map(|h| h.alg),
        Ok(Algorithm::RS256 | Algorithm::ES256)
    )
}

/// Verifies an external token: algorithm, issuer, signature by one of `keys`, expiry, audience.
/// Never panics, whatever the input.
pub fn verify(token: &str, keys: &OidcKeys, cfg: &AuthConfig) -> Result<External> {
    let allowed = match &cfg.oidc.allowed_iss {
        Some(l) if !l.is_empty() => l,
        _ => {
            return Err(unauthorized(
                "no external issuer is trusted (auth.oidc.allowed_iss is empty)",
            ));
        }
    };
    let header = jsonwebtoken::decode_header(token).map_err(unauthorized)?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(unauthorized(format!(
            "algorithm {:?} (RS256 or ES256 only)",
            header.alg
        )));
    }
    // The issuer first, unverified, only to say clearly why a token is refused.
    let peek: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(unauthorized)?;
    let iss = peek.get("iss").and_then(|v| v.as_str()).unwrap_or("");
    if !allowed.iter().any(|a| a == iss) {
        return Err(unauthorized(format!(
            "issuer {:?} is not in auth.oidc.allowed_iss",
            crate::logic::format::safe(&iss.chars().take(100).collect::<String>())
        )));
    }
    let mut v = Validation::new(header.alg);
    v.leeway = LEEWAY_SECS;
    v.set_issuer(allowed);
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    match &cfg.required_claims.aud {
        Some(aud) if !aud.is_empty() => {
            v.set_audience(aud);
            v.required_spec_claims.insert("aud".into());
        }
        _ => v.validate_aud = false,
    }
    let family = header.alg.family();
    let candidates = keys.keys.iter().filter(|(kid, k)| {
        k.family() == family
            && match (&header.kid, kid) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    });
    let mut last = None;
    for (_, key) in candidates {
        match jsonwebtoken::decode::<serde_json::Value>(token, key, &v) {
            Ok(data) => return external(data.claims, &cfg.oidc.roles_claim),
            Err(e) => match e.kind() {
                // Another key may have signed it: keep trying.
                ErrorKind::InvalidSignature | ErrorKind::InvalidKeyFormat => last = Some(e),
                ErrorKind::ExpiredSignature => return Err(unauthorized("expired")),
                ErrorKind::InvalidAudience => {
                    return Err(unauthorized(
                        "audience (aud) is not one of auth.required_claims.aud",
                    ));
                }
                ErrorKind::MissingRequiredClaim(c) => {
                    return Err(unauthorized(format!("claim {c:?} is missing")));
                }
                _ => return Err(unauthorized(e)),
            },
        }
    }
    Err(unauthorized(match last {
        Some(_) => "its signature matches no key of the trusted issuers".to_string(),
        None => format!("no {family:?} key of the trusted issuers to check it with"),
    }))
}

fn external(claims: serde_json::Value, roles_claim: &str) -> Result<External> {
    let s = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let sub = s("sub")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unauthorized("no sub"))?;
    let groups_of = |k: &str| -> Vec<String> {
        match claims.get(k) {
            Some(serde_json::Value::String(g)) => vec![g.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let groups = match roles_claim {
        "" => {
            let g = groups_of("groups");
            if g.is_empty() { groups_of("roles") } else { g }
        }
        c => groups_of(c),
    };
    Ok(External {
        sub,
        iss: s("iss").unwrap_or_default(),
        exp: claims.get("exp").and_then(|v| v.as_u64()).unwrap_or(0),
        jti: s("jti"),
        groups,
    })
}

/// The principal of a verified external token: its groups mapped to roles by configuration.
pub fn principal(ext: &External, cfg: &AuthConfig) -> Principal {
    let mut roles: Vec<String> = Vec::new();
    for g in &ext.groups {
        if let Some(r) = cfg.oidc.role_map.get(g)
            && !roles.contains(r)
        {
            roles.push(r.clone());
        }
    }
    Principal {
        subject: ext.sub.clone(),
        kind: PrincipalKind::External,
        perms: super::perm::perms_of(&roles, &cfg.roles),
        roles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    /// A key pair made by the `openssl` CLI: (private PEM, public PEM).
    fn keypair(dir: &std::path::Path, name: &str, ec: bool) -> (String, String) {
        let key = dir.join(format!("{name}.key"));
        let mut cmd = std::process::Command::new("openssl");
        cmd.arg("genpkey");
        if ec {
            cmd.args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
        } else {
            cmd.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
        }
        assert!(
            cmd.arg("-out")
                .arg(&key)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        );
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success());
        (
            std::fs::read_to_string(&key).unwrap(),
            String::from_utf8(out.stdout).unwrap(),
        )
    }

    fn token(alg: Algorithm, private: &str, claims: serde_json::Value) -> String {
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
            _ => EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
        };
        jsonwebtoken::encode(&Header::new(alg), &claims, &key).unwrap()
    }

    fn cfg() -> AuthConfig {
        let mut c = AuthConfig {
            enabled: true,
            ..Default::default()
        };
        c.oidc.allowed_iss = Some(vec!["https://idp.test".into()]);
        c.required_claims.aud = Some(vec!["shoal".into()]);
        c.oidc.role_map = [
            ("storage-admins".to_string(), "admin".to_string()),
            ("readers".to_string(), "read-only".to_string()),
        ]
        .into();
        c
    }

    #[test]
    fn external_tokens_are_checked_and_mapped() {
        if std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_err()
        {
            eprintln!("no openssl CLI: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (rsa_priv, rsa_pub) = keypair(dir.path(), "rsa", false);
        let (ec_priv, ec_pub) = keypair(dir.path(), "ec", true);
        let (other_priv, _) = keypair(dir.path(), "other", false);
        let mut keys = OidcKeys::default();
        keys.add_pem_bundle("bundle", &format!("{rsa_pub}\n{ec_pub}"))
            .unwrap();
        assert_eq!(keys.len(), 2);
        let cfg = cfg();
        let now = crate::types::unix_secs();
        let claims = |iss: &str, aud: &str, exp: u64, groups: &[&str]| serde_json::json!({"sub": "erin", "iss": iss, "aud": aud, "exp": exp, "groups": groups, "jti": "x1"});
        let good = claims(
            "https://idp.test",
            "shoal",
            now + 60,
            &["readers", "unmapped"],
        );
        let t = token(Algorithm::RS256, &rsa_priv, good.clone());
        assert!(is_external(&t));
        let ext = verify(&t, &keys, &cfg).unwrap();
        assert_eq!(ext.sub, "erin");
        assert_eq!(ext.jti.as_deref(), Some("x1"));
        let p = principal(&ext, &cfg);
        assert_eq!(p.roles, vec!["read-only".to_string()]);
        assert!(crate::logic::perm::check(&p, crate::logic::perm::Action::Read("b")).is_ok());
        assert!(crate::logic::perm::check(&p, crate::logic::perm::Action::Write("b")).is_err());
        // ES256 too.
        let t = token(
            Algorithm::ES256,
            &ec_priv,
            claims("https://idp.test", "shoal", now + 60, &["storage-admins"]),
        );
        let p = principal(&verify(&t, &keys, &cfg).unwrap(), &cfg);
        assert!(crate::logic::perm::is_cluster_admin(&p));
        // Refusals, all unauthorized, with the reason.
        let refused = |t: &str, why: &str| match verify(t, &keys, &cfg) {
            Err(Error::Unauthorized(m)) => assert!(m.contains(why), "{m} (wanted {why})"),
            other => panic!("{other:?} (wanted {why})"),
        };
        refused(
            &token(
                Algorithm::RS256,
                &rsa_priv,
                claims("https://evil.test", "shoal", now + 60, &[]),
            ),
            "not in auth.oidc.allowed_iss",
        );
        refused(
            &token(Algorithm::RS256, &other_priv, good.clone()),
            "matches no key",
        );
        refused(
            &token(
                Algorithm::RS256,
                &rsa_priv,
                claims("https://idp.test", "other", now + 60, &[]),
            ),
            "audience",
        );
        refused(
            &token(
                Algorithm::RS256,
                &rsa_priv,
                claims("https://idp.test", "shoal", now - 3600, &[]),
            ),
            "expired",
        );
        let no_aud = serde_json::json!({"sub": "erin", "iss": "https://idp.test", "exp": now + 60});
        refused(&token(Algorithm::RS256, &rsa_priv, no_aud), "aud");
        // An RSA-signed token relabelled ES256 (algorithm confusion) gets nowhere.
        let t = token(Algorithm::RS256, &rsa_priv, good.clone());
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        use base64::Engine;
        parts[0] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"ES256","typ":"JWT"}"#);
        assert!(verify(&parts.join("."), &keys, &cfg).is_err());
        // Nothing trusted: refused whatever the token.
        let mut off = cfg.clone();
        off.oidc.allowed_iss = None;
        assert!(verify(&t, &keys, &off).is_err());
    }

    #[test]
    fn jwks_keys_are_matched_by_kid() {
        if std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_err()
        {
            eprintln!("no openssl CLI: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (a_priv, a_pub) = keypair(dir.path(), "a", false);
        let (b_priv, b_pub) = keypair(dir.path(), "b", true);
        let jwk = |public: &str, alg: Algorithm, kid: &str, ec: bool| {
            let key = if ec {
                DecodingKey::from_ec_pem(public.as_bytes()).unwrap()
            } else {
                DecodingKey::from_rsa_pem(public.as_bytes()).unwrap()
            };
            let mut j = jsonwebtoken::jwk::Jwk::from_decoding_key(&key, Some(alg)).unwrap();
            j.common.key_id = Some(kid.into());
            j
        };
        let set = jsonwebtoken::jwk::JwkSet {
            keys: vec![
                jwk(&a_pub, Algorithm::RS256, "rsa-1", false),
                jwk(&b_pub, Algorithm::ES256, "ec-1", true),
            ],
        };
        let mut keys = OidcKeys::default();
        keys.add_jwks("jwks", &serde_json::to_string(&set).unwrap())
            .unwrap();
        assert_eq!(keys.len(), 2);
        let cfg = cfg();
        let now = crate::types::unix_secs();
        let claims = serde_json::json!({"sub": "s", "iss": "https://idp.test", "aud": "shoal", "exp": now + 60});
        let signed = |alg, private: &str, kid: &str| {
            let key = match alg {
                Algorithm::ES256 => EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
                _ => EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
            };
            let mut h = Header::new(alg);
            h.kid = Some(kid.into());
            jsonwebtoken::encode(&h, &claims, &key).unwrap()
        };
        assert!(verify(&signed(Algorithm::RS256, &a_priv, "rsa-1"), &keys, &cfg).is_ok());
        assert!(verify(&signed(Algorithm::ES256, &b_priv, "ec-1"), &keys, &cfg).is_ok());
        // A kid naming another key: not checked against the wrong one, refused.
        assert!(verify(&signed(Algorithm::RS256, &a_priv, "ec-1"), &keys, &cfg).is_err());
        assert!(verify(&signed(Algorithm::RS256, &a_priv, "unknown"), &keys, &cfg).is_err());
    }

    #[test]
    fn key_files_and_tokens_never_panic() {
        let mut k = OidcKeys::default();
        for junk in [
            "",
            "hello",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            "-----BEGIN X",
        ] {
            assert!(k.add_pem_bundle("t", junk).is_err(), "{junk:?}");
        }
        assert!(k.add_jwks("t", "{").is_err());
        assert!(k.add_jwks("t", r#"{"keys": []}"#).is_ok());
        let cfg = cfg();
        for junk in [
            "",
            ".",
            "a.b.c",
            "eyJhbGciOiJSUzI1NiJ9.e30.",
            "eyJhbGciOiJub25lIn0.e30.",
        ] {
            assert!(verify(junk, &k, &cfg).is_err(), "{junk:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn verify_never_panics(s in ".{0,200}") {
            let _ = verify(&s, &OidcKeys::default(), &cfg());
            let _ = is_external(&s);
        }
    }
}
