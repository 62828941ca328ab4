//! Who may do what over HTTP (DESIGN §10, §13).
//!
//! With `auth.enabled = false` (the default) everything is allowed: any or no bearer token on
//! the native API, any SigV4 signature on S3 (AIStore's habit). With it on:
//! - native: `Authorization: Bearer <jwt>` — a shared-secret token, an AuthN user's, or an
//!   external issuer's — identified here; what it may do (per bucket, bucket admin, cluster
//!   admin) is decided by the node serving the request, by the rules of `logic::perm`;
//! - S3: SigV4 (header, presigned, `aws-chunked`) checked by s3s against [`AccessKeys`]. A
//!   verified key acts with a short-lived token the gateway signs for it: as the key's user
//!   when it has one (their roles decide), else with the key's admin flag.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use shoal_actors::logic::auth::{Checker, Secret, jwt};
use shoal_actors::types::auth::{Access, PrincipalKind};
use shoal_actors::types::config::AuthConfig;
use shoal_actors::types::smap::NodeId;

use crate::error::{Error, Result};

/// S3 access keys: the secret of an access key ID. The cluster keeps them ([`ClusterKeys`],
/// `nodectl auth s3-key create|ls|rm`); [`StaticKeys`] serves tests and `noded --s3-keys`.
pub trait AccessKeys: Send + Sync + 'static {
    fn secret_for(&self, access_key: &str) -> Option<String>;
    /// Whether requests signed with this key act as an admin (bucket create and destroy).
    fn is_admin(&self, _access_key: &str) -> bool {
        true
    }
    /// The AuthN user requests signed with this key act as (their roles decide), if any.
    fn user_of(&self, _access_key: &str) -> Option<String> {
        None
    }
}

/// The S3 keys the cluster keeps (`nodectl auth s3-key create`), read from the live config and
/// opened with this node's secret, and any static ones besides.
pub struct ClusterKeys {
    pub auth: AuthSource,
    pub fixed: StaticKeys,
}

impl ClusterKeys {
    fn find(&self, access_key: &str) -> Option<(String, bool, String)> {
        let cfg = (self.auth)();
        let k = cfg.s3_keys.iter().find(|k| k.access_key == access_key)?;
        let secret = shoal_actors::logic::auth::Secret::new(&cfg.secret).ok()?;
        let plain = shoal_actors::logic::auth::unseal(&secret, &k.secret_sealed).ok()?;
        Some((plain, k.admin, k.user.clone()))
    }
}

impl AccessKeys for ClusterKeys {
    fn secret_for(&self, access_key: &str) -> Option<String> {
        self.find(access_key)
            .map(|(s, _, _)| s)
            .or_else(|| self.fixed.secret_for(access_key))
    }

    fn is_admin(&self, access_key: &str) -> bool {
        match self.find(access_key) {
            Some((_, admin, _)) => admin,
            None => self.fixed.is_admin(access_key),
        }
    }

    fn user_of(&self, access_key: &str) -> Option<String> {
        self.find(access_key)
            .map(|(_, _, user)| user)
            .filter(|u| !u.is_empty())
    }
}

/// Access keys held in memory, from code or from a file of `ACCESS_KEY SECRET` lines.
#[derive(Clone, Debug, Default)]
pub struct StaticKeys(HashMap<String, String>);

impl StaticKeys {
    pub fn new<I, K, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, S)>,
        K: Into<String>,
        S: Into<String>,
    {
        StaticKeys(
            pairs
                .into_iter()
                .map(|(k, s)| (k.into(), s.into()))
                .collect(),
        )
    }

    /// Reads `ACCESS_KEY SECRET` lines (blank lines and `#` comments skipped).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Self::parse(&text)
            .map_err(|e| Error::BadRequest(format!("access keys {}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut keys = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut it = line.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some(k), Some(s), None) => {
                    keys.insert(k.to_string(), s.to_string());
                }
                _ => return Err(format!("line {}: expected ACCESS_KEY SECRET", i + 1)),
            }
        }
        Ok(StaticKeys(keys))
    }
}

impl AccessKeys for StaticKeys {
    fn secret_for(&self, access_key: &str) -> Option<String> {
        self.0.get(access_key).cloned()
    }
}

/// The cluster's auth section, read live (the primary may change it).
pub type AuthSource = Arc<dyn Fn() -> AuthConfig + Send + Sync>;

/// Where the gateway learns whether auth is on, the cluster secret and the S3 keys.
#[derive(Clone)]
pub struct AuthSettings {
    pub cluster: AuthSource,
    pub keys: Arc<dyn AccessKeys>,
}

impl AuthSettings {
    /// Auth off, no keys.
    pub fn disabled() -> Self {
        AuthSettings {
            cluster: Arc::new(AuthConfig::default),
            keys: Arc::new(StaticKeys::default()),
        }
    }

    /// A fixed auth section (tests; nodes pass their live config instead).
    pub fn fixed(cfg: AuthConfig, keys: Arc<dyn AccessKeys>) -> Self {
        AuthSettings {
            cluster: Arc::new(move || cfg.clone()),
            keys,
        }
    }

    pub fn current(&self) -> AuthConfig {
        (self.cluster)()
    }

    pub fn enabled(&self) -> bool {
        self.current().enabled
    }

    /// Checks a native request's bearer token; returns the token to pass on to the cluster.
    /// The identity is checked here (signature, expiry, revocation, user, external issuer);
    /// what it may do is decided by the node that serves the request, by the same rules, so
    /// `admin` only turns away at once those who hold no admin right of any kind.
    pub fn check_bearer(&self, header: Option<&str>, admin: bool) -> Result<Option<String>> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_string());
        let cfg = self.current();
        if !cfg.enabled {
            return Ok(token);
        }
        let Some(t) = token else {
            return Err(Error::Unauthorized(
                "this cluster needs a token: Authorization: Bearer <jwt>".into(),
            ));
        };
        let secret = Secret::new(&cfg.secret).ok();
        let keys = match shoal_actors::store::keys::oidc_keys(&cfg.oidc) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("external tokens cannot be checked: {e}");
                None
            }
        };
        let ck = Checker {
            enabled: true,
            secret: secret.as_ref(),
            uuid: None,
            cfg: &cfg,
            oidc: keys.as_deref(),
        };
        let who = ck
            .identify(&NodeId("http".into()), Some(&t))
            .map_err(|e| match e {
                shoal_actors::Error::Unauthorized(m) => Error::Unauthorized(m),
                shoal_actors::Error::Forbidden(m) => Error::Forbidden(m),
                other => Error::Unauthorized(other.to_string()),
            })?;
        if admin
            && !who.perms.iter().any(|p| p.access >= Access::BucketAdmin)
            && who.kind != PrincipalKind::Node
        {
            return Err(Error::Forbidden(format!(
                "{} is not an admin: this operation needs admin rights",
                who.subject
            )));
        }
        Ok(Some(t))
    }

    /// The token an S3 request verified for `access_key` acts with (auth on), short-lived: as
    /// the key's user (an ID marks it as the AuthN service's, so their roles decide), or for a
    /// key of its own, with its admin flag.
    pub fn token_for_s3(&self, access_key: &str) -> Option<String> {
        let cfg = self.current();
        if !cfg.enabled {
            return None;
        }
        let now = shoal_actors::types::unix_secs();
        let (sub, jti) = match self.keys.user_of(access_key) {
            Some(u) => (u, Some(format!("s3:{access_key}"))),
            None => (format!("s3:{access_key}"), None),
        };
        // Issued now (after any "log out everywhere" of the user: keys go with `s3-key rm`).
        let iat = shoal_actors::logic::authn::next_iat(&cfg, &sub, now);
        let claims = jwt::Claims {
            sub,
            exp: now + 600,
            admin: self.keys.is_admin(access_key),
            iat: Some(iat),
            cluster: None,
            jti,
        };
        jwt::sign(&claims, cfg.secret.as_bytes()).ok()
    }
}

/// s3s's view of our access keys.
pub(crate) struct KeysAuth(pub Arc<dyn AccessKeys>);

#[async_trait::async_trait]
impl s3s::auth::S3Auth for KeysAuth {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<s3s::auth::SecretKey> {
        self.0
            .secret_for(access_key)
            .map(s3s::auth::SecretKey::from)
            .ok_or_else(|| {
                s3s::S3Error::with_message(
                    s3s::S3ErrorCode::InvalidAccessKeyId,
                    "The AWS access key Id you provided does not exist in our records.",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(secret: &str) -> AuthSettings {
        AuthSettings::fixed(
            AuthConfig {
                enabled: true,
                secret: secret.into(),
                ..Default::default()
            },
            Arc::new(StaticKeys::default()),
        )
    }

    fn token(secret: &str, admin: bool) -> String {
        jwt::sign(
            &jwt::Claims {
                sub: "u".into(),
                exp: shoal_actors::types::unix_secs() + 60,
                admin,
                iat: None,
                cluster: None,
                jti: None,
            },
            secret.as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn bearer_rules() {
        let off = AuthSettings::disabled();
        assert_eq!(off.check_bearer(None, true).unwrap(), None);
        assert_eq!(
            off.check_bearer(Some("Bearer junk"), true).unwrap(),
            Some("junk".into())
        );

        let a = on("s3cret");
        assert!(matches!(
            a.check_bearer(None, false),
            Err(Error::Unauthorized(_))
        ));
        assert!(matches!(
            a.check_bearer(Some("Bearer junk"), false),
            Err(Error::Unauthorized(_))
        ));
        let user = format!("Bearer {}", token("s3cret", false));
        assert!(a.check_bearer(Some(&user), false).is_ok());
        assert!(matches!(
            a.check_bearer(Some(&user), true),
            Err(Error::Forbidden(_))
        ));
        let admin = format!("Bearer {}", token("s3cret", true));
        assert!(a.check_bearer(Some(&admin), true).is_ok());
        let other = format!("Bearer {}", token("other", true));
        assert!(matches!(
            a.check_bearer(Some(&other), true),
            Err(Error::Unauthorized(_))
        ));
        assert!(a.token_for_s3("AK").is_some());
        assert!(off.token_for_s3("AK").is_none());
    }

    #[test]
    fn key_files() {
        let k = StaticKeys::parse("# keys\n\nAK1 secret1\nAK2   secret2\n").unwrap();
        assert_eq!(k.secret_for("AK1").as_deref(), Some("secret1"));
        assert_eq!(k.secret_for("AK2").as_deref(), Some("secret2"));
        assert_eq!(k.secret_for("AK3"), None);
        assert!(StaticKeys::parse("only-one-field").is_err());
        assert!(StaticKeys::parse("a b c").is_err());
    }
}
