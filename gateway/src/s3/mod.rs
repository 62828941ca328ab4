//! S3 under `/s3/` (DESIGN §13), on top of `s3s` for the protocol (routing, XML, SigV4).
//!
//! Two s3s services take part:
//! - the *inner* one serves the operations ([`ShoalS3`]) on paths without the `/s3` prefix and
//!   checks no signature;
//! - with auth on, an *outer* one first verifies the request as the client signed it — over
//!   `/s3/...`, the path the signature covers — including presigned URLs and `aws-chunked`
//!   bodies, whose framing it removes; a catch-all route then hands the verified request to
//!   the inner service.
//!
//! With auth off there is nothing to verify: the signature is dropped, `aws-chunked` framing is
//! removed by [`crate::chunked`], and the inner service answers.

mod listing;
mod multipart;
mod ops;

use std::sync::Weak;

use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Uri, header};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::Gateway;
use crate::auth::{AuthSettings, KeysAuth};
use crate::body::{self, GwBody};
use crate::stream;

use ops::ShoalS3;

/// Query parameters that carry a signature (SigV4 and SigV2 presigned URLs).
const SIG_PARAMS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
];

/// The token a request acts with on the cluster (auth on: signed by the gateway for the key
/// that verified), carried from the outer to the inner service in the request's extensions.
#[derive(Clone, Debug)]
pub(super) struct ActAs(pub(super) Option<String>);

pub struct S3Front {
    inner: S3Service,
    outer: S3Service,
    auth: AuthSettings,
}

impl S3Front {
    pub(crate) fn new(gw: Weak<Gateway>, auth: &AuthSettings, domain: Option<String>) -> Self {
        let mut b = S3ServiceBuilder::new(ShoalS3 { gw });
        b.set_validation(ShoalNames);
        if let Some(d) = domain.filter(|d| !d.is_empty()) {
            b.set_host(VhostDomain(d.to_ascii_lowercase()));
        }
        let inner = b.build();
        let mut o = S3ServiceBuilder::new(Unreachable);
        o.set_auth(KeysAuth(auth.keys.clone()));
        o.set_validation(ShoalNames);
        o.set_route(Forward {
            inner: inner.clone(),
            auth: auth.clone(),
        });
        S3Front {
            inner,
            outer: o.build(),
            auth: auth.clone(),
        }
    }

    /// Serves one S3 request; `prefixed`: its path starts with `/s3`.
    pub async fn call(
        &self,
        req: http::Request<crate::body::ReqBody>,
        prefixed: bool,
    ) -> http::Response<GwBody> {
        let mut req = req.map(to_s3s);
        req.extensions_mut().insert(Prefixed(prefixed));
        let res = if self.auth.enabled() {
            self.outer.call(req).await
        } else {
            match unsigned(req) {
                Ok(r) => self.inner.call(r).await,
                Err(e) => return s3_error_response(e),
            }
        };
        match res {
            Ok(r) => r.map(body::from_s3s),
            Err(e) => {
                tracing::warn!(error = ?e, "s3 request failed");
                s3_error_response(s3_error!(InternalError, "internal error"))
            }
        }
    }
}

/// Our request body as s3s's (a plain function: keeps the generic conversion out of the
/// connection future, whose `Send` proof trips over it otherwise).
fn to_s3s(b: crate::body::ReqBody) -> s3s::Body {
    s3s::Body::http_body_unsync(b)
}

fn s3_error_response(e: S3Error) -> http::Response<GwBody> {
    match e.to_http_response() {
        Ok(r) => r.map(body::from_s3s),
        Err(_) => http::Response::builder()
            .status(500)
            .body(body::empty())
            .expect("valid response"),
    }
}

/// Whether a request came under `/s3` (else at the root).
#[derive(Clone, Copy, Debug)]
struct Prefixed(bool);

/// `/s3/b/k?x` (or `/b/k?x` when not `prefixed`) → `/b/k?x` without signature parameters.
fn strip_uri(uri: &Uri, prefixed: bool) -> S3Result<Uri> {
    let path = uri.path();
    let rest = if prefixed {
        path.strip_prefix("/s3").unwrap_or(path)
    } else {
        path
    };
    let rest = if rest.is_empty() { "/" } else { rest };
    let query: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| {
            let k = kv.split('=').next().unwrap_or("");
            !kv.is_empty() && !SIG_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(k))
        })
        .collect();
    let pq = if query.is_empty() {
        rest.to_string()
    } else {
        format!("{rest}?{}", query.join("&"))
    };
    pq.parse()
        .map_err(|_| s3_error!(InvalidURI, "cannot rewrite the request URI"))
}

fn is_aws_chunked(h: &HeaderMap) -> bool {
    h.get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"))
        || h.get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("aws-chunked"))
}

/// Removes what only the signature check needed, so the inner service sees a plain request.
fn strip_headers(h: &mut HeaderMap, decoded_len: Option<HeaderValue>) {
    h.remove(header::AUTHORIZATION);
    h.remove("x-amz-content-sha256");
    h.remove("x-amz-decoded-content-length");
    h.remove("x-amz-trailer");
    if let Some(ce) = h
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        let rest: Vec<&str> = ce
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty() && *e != "aws-chunked")
            .collect();
        if rest.is_empty() {
            h.remove(header::CONTENT_ENCODING);
        } else if let Ok(v) = HeaderValue::from_str(&rest.join(", ")) {
            h.insert(header::CONTENT_ENCODING, v);
        }
    }
    if let Some(len) = decoded_len {
        h.insert(header::CONTENT_LENGTH, len);
        h.remove(header::TRANSFER_ENCODING);
    }
}

/// Auth off: accept any signature. Drops it, and decodes an `aws-chunked` body.
fn unsigned(req: http::Request<s3s::Body>) -> S3Result<http::Request<s3s::Body>> {
    let (mut parts, body) = req.into_parts();
    let prefixed = parts.extensions.get::<Prefixed>().is_none_or(|p| p.0);
    parts.uri = strip_uri(&parts.uri, prefixed)?;
    let chunked = is_aws_chunked(&parts.headers);
    let decoded_len = if chunked {
        let v = parts
            .headers
            .get("x-amz-decoded-content-length")
            .cloned()
            .ok_or_else(|| {
                s3_error!(
                    MissingContentLength,
                    "aws-chunked bodies need x-amz-decoded-content-length"
                )
            })?;
        Some(v)
    } else {
        None
    };
    let declared = match &decoded_len {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "x-amz-decoded-content-length is not a number"
                    )
                })?,
        ),
        None => None,
    };
    strip_headers(&mut parts.headers, decoded_len);
    parts.extensions.insert(ActAs(None));
    let body = if let Some(declared) = declared {
        let r = tokio::io::BufReader::new(stream::reader(body));
        let decoded = crate::chunked::decode(r, declared).map(|r| r.map(hyper::body::Frame::data));
        s3s::Body::http_body_unsync(http_body_util::StreamBody::new(decoded))
    } else {
        body
    };
    Ok(http::Request::from_parts(parts, body))
}

/// The outer service's catch-all: every request, once its signature has been verified, goes to
/// the inner service.
struct Forward {
    inner: S3Service,
    auth: AuthSettings,
}

#[async_trait::async_trait]
impl s3s::route::S3Route for Forward {
    fn is_match(
        &self,
        _method: &Method,
        _uri: &Uri,
        _headers: &HeaderMap,
        _ext: &mut http::Extensions,
    ) -> bool {
        true
    }

    async fn call(&self, req: S3Request<s3s::Body>) -> S3Result<S3Response<s3s::Body>> {
        let access_key = req
            .credentials
            .as_ref()
            .map(|c| c.access_key.clone())
            .ok_or_else(|| s3_error!(AccessDenied, "Signature is required"))?;
        let prefixed = req.extensions.get::<Prefixed>().is_none_or(|p| p.0);
        let mut b = http::Request::builder()
            .method(req.method.clone())
            .uri(strip_uri(&req.uri, prefixed)?);
        let mut headers = req.headers;
        // s3s already set Content-Length to the decoded length of an aws-chunked body.
        strip_headers(&mut headers, None);
        if let Some(h) = b.headers_mut() {
            *h = headers;
        }
        let mut fwd = b
            .body(req.input)
            .map_err(|e| s3_error!(InvalidRequest, "{e}"))?;
        fwd.extensions_mut()
            .insert(ActAs(self.auth.token_for_s3(&access_key)));
        match self.inner.call(fwd).await {
            Ok(r) => {
                let (parts, body) = r.into_parts();
                let mut out = S3Response::new(body);
                out.status = Some(parts.status);
                out.headers = parts.headers;
                Ok(out)
            }
            Err(e) => Err(S3Error::with_source(S3ErrorCode::InternalError, e.into())),
        }
    }
}

/// The outer service routes everything to [`Forward`]; its own operations are never called.
struct Unreachable;

#[async_trait::async_trait]
impl S3 for Unreachable {}

/// Virtual-host-style addressing: `BUCKET.DOMAIN[:port]` names the bucket; any other host
/// (an IP address, the domain itself, `localhost`) means path style.
struct VhostDomain(String);

impl s3s::host::S3Host for VhostDomain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let vh = s3s::host::VirtualHost::new(name);
        let lower = name.to_ascii_lowercase();
        match lower
            .strip_suffix(&self.0)
            .and_then(|b| b.strip_suffix('.'))
        {
            Some(b) if !b.is_empty() => Ok(vh.with_bucket(b.to_string())),
            _ => Ok(vh),
        }
    }
}

/// Shoal's bucket names (`[A-Za-z0-9._-]{1,64}`), so that S3 reaches every bucket the native
/// API can create.
struct ShoalNames;

impl s3s::validation::NameValidation for ShoalNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        shoal_actors::logic::names::validate_bucket(name).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_rewrite() {
        let u: Uri = "/s3/b/k%20x?uploads&X-Amz-Signature=abc&x-amz-credential=z&prefix=a"
            .parse()
            .unwrap();
        assert_eq!(
            strip_uri(&u, true).unwrap().to_string(),
            "/b/k%20x?uploads&prefix=a"
        );
        let u: Uri = "/s3".parse().unwrap();
        assert_eq!(strip_uri(&u, true).unwrap().to_string(), "/");
        let u: Uri = "/s3/?X-Amz-Date=1".parse().unwrap();
        assert_eq!(strip_uri(&u, true).unwrap().to_string(), "/");
        let u: Uri = "/s3/k".parse().unwrap();
        assert_eq!(strip_uri(&u, false).unwrap().to_string(), "/s3/k");
    }

    #[test]
    fn header_stripping() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 x"),
        );
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        );
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static("aws-chunked, gzip"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("200"));
        assert!(is_aws_chunked(&h));
        strip_headers(&mut h, Some(HeaderValue::from_static("100")));
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert_eq!(h.get(header::CONTENT_ENCODING).unwrap(), "gzip");
        assert_eq!(h.get(header::CONTENT_LENGTH).unwrap(), "100");
        assert!(!is_aws_chunked(&h));
    }

    #[test]
    fn virtual_hosts() {
        use s3s::host::S3Host;
        let d = VhostDomain("s3.test".into());
        let bucket = |h: &str| {
            d.parse_host_header(h)
                .unwrap()
                .bucket()
                .map(|b| b.to_string())
        };
        assert_eq!(bucket("data.s3.test:9080").as_deref(), Some("data"));
        assert_eq!(bucket("My.Bucket.S3.test").as_deref(), Some("my.bucket"));
        assert_eq!(bucket("s3.test:9080"), None);
        assert_eq!(bucket("localhost:9080"), None);
        assert_eq!(bucket("xs3.test"), None);
    }
}
