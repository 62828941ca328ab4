//! The external identity providers' keys (`auth.oidc.issuer_ca_bundle`, `auth.oidc.jwks_file`),
//! read from this node's disk and kept until a file changes: every request with an external
//! token needs them, and re-parsing keys per request would cost more than the request.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::logic::oidc::OidcKeys;
use crate::types::auth::OidcConfig;

/// What the keys were read from: each file with its modification time and size.
type Stamp = Vec<(String, Option<SystemTime>, u64)>;

static CACHE: Mutex<Option<(Stamp, Arc<OidcKeys>)>> = Mutex::new(None);

fn stamp(files: &[&str]) -> Stamp {
    files
        .iter()
        .map(|f| match std::fs::metadata(f) {
            Ok(m) => (f.to_string(), m.modified().ok(), m.len()),
            Err(_) => (f.to_string(), None, 0),
        })
        .collect()
}

/// The keys of the trusted issuers; `Ok(None)` when `auth.oidc` trusts none.
pub fn oidc_keys(cfg: &OidcConfig) -> Result<Option<Arc<OidcKeys>>> {
    if !cfg.enabled() {
        return Ok(None);
    }
    let files = cfg.key_files();
    if files.is_empty() {
        return Err(Error::BadRequest(
            "auth.oidc.allowed_iss is set but no keys are: set issuer_ca_bundle or jwks_file"
                .into(),
        ));
    }
    let now = stamp(&files);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((s, k)) = cache.as_ref()
        && *s == now
    {
        return Ok(Some(k.clone()));
    }
    let mut keys = OidcKeys::default();
    if !cfg.issuer_ca_bundle.is_empty() && cfg.issuer_ca_bundle != "-" {
        let text = std::fs::read_to_string(&cfg.issuer_ca_bundle).map_err(|e| {
            Error::BadRequest(format!(
                "auth.oidc.issuer_ca_bundle {}: {e}",
                cfg.issuer_ca_bundle
            ))
        })?;
        keys.add_pem_bundle(&cfg.issuer_ca_bundle, &text)?;
    }
    if !cfg.jwks_file.is_empty() && cfg.jwks_file != "-" {
        let text = std::fs::read_to_string(&cfg.jwks_file).map_err(|e| {
            Error::BadRequest(format!("auth.oidc.jwks_file {}: {e}", cfg.jwks_file))
        })?;
        keys.add_jwks(&cfg.jwks_file, &text)?;
    }
    let keys = Arc::new(keys);
    *cache = Some((now, keys.clone()));
    Ok(Some(keys))
}
