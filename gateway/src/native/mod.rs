//! AIStore's native REST API: the subset its Python SDK (`aistore` 2.0.0) and its Go API call
//! (DESIGN §13, `reference/aistore-http-api.md`), with AIStore's paths, query parameters, JSON
//! action bodies, `ais-*` headers and status codes.

mod buckets;
mod daemon;
mod jobs;
mod objects;

use std::collections::HashMap;
use std::sync::Arc;

use http::{Method, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use crate::Gateway;
use crate::body::{self, GwBody};
use crate::error::{Error, Result};

pub use buckets::visible_page;

/// Action bodies larger than this are refused.
pub(super) const MAX_JSON_BODY: usize = 1 << 20;
/// A listing page when the client asks for "as many as you like" (AIStore's page for `ais://`).
pub(super) const DEFAULT_PAGE: usize = 10_000;
/// Names under this prefix are the gateway's own (S3 multipart parts): hidden from listings,
/// refused as user object names.
pub const HIDDEN_PREFIX: &str = ".shoal-mpu/";
/// AIStore's name for the checksum type Shoal stores (xxh3-64).
pub(super) const CKSUM_TYPE: &str = "xxhash3";

type Req = http::Request<crate::body::ReqBody>;

pub async fn handle(gw: &Arc<Gateway>, req: Req) -> Response<GwBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match route(gw, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(%method, %path, error = %e, "native request failed");
            }
            error_response(&e, &method, &path)
        }
    }
}

/// AIStore's error body: `{"status","message","method","url_path"}`.
pub fn error_response(e: &Error, method: &Method, path: &str) -> Response<GwBody> {
    let status = e.status();
    let body = serde_json::json!({
        "status": status.as_u16(),
        "message": e.to_string(),
        "method": method.as_str(),
        "url_path": path,
    });
    let mut r = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r = r.header(header::RETRY_AFTER, "1");
    }
    if let Error::RangeNotSatisfiable { size } = e {
        r = r.header(header::CONTENT_RANGE, format!("bytes */{size}"));
    }
    let body = if method == Method::HEAD {
        body::empty()
    } else {
        body::full(body.to_string())
    };
    r.body(body).expect("valid response")
}

pub(super) fn query(req: &Req) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub(super) fn bearer(req: &Req) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// `{"action","name","value"}`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ActionMsg {
    #[serde(default)]
    action: String,
    #[serde(default)]
    value: serde_json::Value,
}

pub(super) async fn json_body<T: serde::de::DeserializeOwned + Default>(
    body: crate::body::ReqBody,
) -> Result<T> {
    let bytes = http_body_util::Limited::new(body, MAX_JSON_BODY)
        .collect()
        .await
        .map_err(|e| Error::BadRequest(format!("reading the request body: {e}")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::BadRequest(format!("bad JSON body: {e}")))
}

pub(super) fn json<T: Serialize>(status: StatusCode, v: &T) -> Result<Response<GwBody>> {
    let b = serde_json::to_vec(v).map_err(|e| Error::BadRequest(e.to_string()))?;
    Ok(Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body::full(b))
        .expect("valid response"))
}

pub(super) fn empty(status: StatusCode) -> Response<GwBody> {
    Response::builder()
        .status(status)
        .body(body::empty())
        .expect("valid response")
}

pub(super) fn check_provider(q: &HashMap<String, String>) -> Result<()> {
    match q.get("provider").map(String::as_str) {
        None | Some("") | Some("ais") => Ok(()),
        Some(p) => Err(Error::NotImplemented(format!(
            "provider {p:?}: only ais:// buckets are served here"
        ))),
    }
}

/// Rewrites the cluster's "not found" in AIStore's words, which the SDK matches on: `ais://b`
/// for a bucket, `ais://b/obj` for an object.
pub(super) fn in_context(e: Error, bucket: &str, object: Option<&str>) -> Error {
    use shoal_actors::Error as C;
    match e {
        Error::Cluster(C::NotFound(m)) if m.starts_with("bucket") => Error::Cluster(C::NotFound(
            format!("bucket \"ais://{bucket}\" does not exist"),
        )),
        Error::Cluster(C::NotFound(_)) if object.is_some() => Error::Cluster(C::NotFound(format!(
            "ais://{bucket}/{} does not exist",
            object.unwrap_or("")
        ))),
        Error::Cluster(C::BadRequest(m)) if m.contains("already exists") => Error::Cluster(
            C::BadRequest(format!("bucket \"ais://{bucket}\" already exists")),
        ),
        other => other,
    }
}

pub(super) async fn route(gw: &Arc<Gateway>, req: Req) -> Result<Response<GwBody>> {
    let raw = req
        .uri()
        .path()
        .strip_prefix("/v1/")
        .unwrap_or("")
        .to_string();
    let (head, rest) = raw.split_once('/').unwrap_or((raw.as_str(), ""));
    match head {
        "daemon" => daemon::daemon(gw, req).await,
        "health" => daemon::health(gw, req).await,
        "buckets" => buckets::buckets(gw, req, rest).await,
        "objects" => {
            let (b, o) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket = decode(b)?;
            let object = decode(o)?;
            objects::objects(gw, req, &bucket, &object).await
        }
        "cluster" => jobs::cluster(gw, req).await,
        other => Err(Error::NotImplemented(format!(
            "/v1/{other} is not served by Shoal"
        ))),
    }
}

pub(super) fn decode(s: &str) -> Result<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::BadRequest("path is not UTF-8 once decoded".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_in_aistore_words() {
        use shoal_actors::Error as C;
        let e = in_context(
            Error::Cluster(C::NotFound("object b/o does not exist".into())),
            "b",
            Some("o"),
        );
        assert!(e.to_string().contains("ais://b/o"));
        let e = in_context(
            Error::Cluster(C::NotFound("bucket \"b\" does not exist".into())),
            "b",
            Some("o"),
        );
        assert!(e.to_string().contains("\"ais://b\""));
        let e = in_context(
            Error::Cluster(C::BadRequest("bucket \"b\" already exists".into())),
            "b",
            None,
        );
        assert_eq!(e.status(), StatusCode::CONFLICT);
    }
}
