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

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Uri, header};
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};
use shoal_actors::client::Client;
use shoal_actors::store::ObjMeta;
use shoal_actors::wire::ObjEntry;

use crate::Gateway;
use crate::auth::{AuthSettings, KeysAuth};
use crate::body::{self, GwBody};
use crate::error::Error;
use crate::native::{self, HIDDEN_PREFIX, visible_page};
use crate::stream;

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
/// Names listed per cluster request while building one S3 listing page.
const LIST_BATCH: usize = 1000;

/// The token a request acts with on the cluster (auth on: signed by the gateway for the key
/// that verified), carried from the outer to the inner service in the request's extensions.
#[derive(Clone, Debug)]
struct ActAs(Option<String>);

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
    strip_headers(&mut parts.headers, decoded_len);
    parts.extensions.insert(ActAs(None));
    let body = if chunked {
        let r = tokio::io::BufReader::new(stream::reader(body));
        let decoded = crate::chunked::decode(r).map(|r| r.map(hyper::body::Frame::data));
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
        shoal_actors::store::validate_bucket(name).is_ok()
    }
}

// ---- the operations -------------------------------------------------------------------------

struct ShoalS3 {
    gw: Weak<Gateway>,
}

fn token<T>(req: &S3Request<T>) -> Option<String> {
    req.extensions.get::<ActAs>().and_then(|a| a.0.clone())
}

impl ShoalS3 {
    fn gw(&self) -> S3Result<Arc<Gateway>> {
        self.gw
            .upgrade()
            .ok_or_else(|| s3_error!(ServiceUnavailable, "the gateway is stopping"))
    }
}

fn s3err(e: Error) -> S3Error {
    e.to_s3()
}

fn cl(e: shoal_actors::Error) -> S3Error {
    Error::Cluster(e).to_s3()
}

fn no_such_bucket(b: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchBucket,
        format!("The specified bucket does not exist: {b}"),
    )
}

fn check_user_key(key: &str) -> S3Result<()> {
    if key.starts_with(HIDDEN_PREFIX) {
        return Err(s3_error!(
            InvalidArgument,
            "object names under {HIDDEN_PREFIX} are reserved"
        ));
    }
    shoal_actors::store::validate_object(key).map_err(|e| s3_error!(InvalidArgument, "{e}"))
}

fn timestamp_ms(ms: u64) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

/// Listing entries carry a write stamp in nanoseconds (their version), not an mtime.
/// TODO(lead): ObjEntry needs mtime.
fn entry_time(e: &ObjEntry) -> Timestamp {
    timestamp_ms(e.version / 1_000_000)
}

fn etag_of(meta: &ObjMeta) -> ETag {
    ETag::Strong(native::stopgap_etag(&meta.checksum))
}

/// Checks `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`.
fn preconditions(
    meta: &ObjMeta,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let etag = etag_of(meta);
    let secs = |t: &Timestamp| time::OffsetDateTime::from(t.clone()).unix_timestamp();
    let mtime = (meta.mtime / 1000) as i64;
    if let Some(c) = if_match
        && !cond_matches(c, &etag)
    {
        return Err(s3_error!(PreconditionFailed));
    }
    if let Some(c) = if_none_match
        && cond_matches(c, &etag)
    {
        return Err(S3Error::new(S3ErrorCode::NotModified));
    }
    if if_match.is_none()
        && let Some(t) = if_unmodified_since
        && mtime > secs(t)
    {
        return Err(s3_error!(PreconditionFailed));
    }
    if if_none_match.is_none()
        && let Some(t) = if_modified_since
        && mtime <= secs(t)
    {
        return Err(S3Error::new(S3ErrorCode::NotModified));
    }
    Ok(())
}

/// Whether an `If-Match` / `If-None-Match` condition holds for `etag`.
fn cond_matches(c: &ETagCondition, etag: &ETag) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag.value(),
    }
}

async fn bucket_exists(c: &Client, bucket: &str) -> S3Result<()> {
    let names = c.list_buckets().await.map_err(cl)?;
    if names.iter().any(|n| n == bucket) {
        Ok(())
    } else {
        Err(no_such_bucket(bucket))
    }
}

/// Encodes a name for `encoding-type=url` listings: everything but unreserved characters and
/// `/` percent-encoded.
fn url_encode(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(s, KEEP).to_string()
}

/// Continuation tokens are opaque to clients: the name to continue after, base64url.
fn encode_token(after: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after)
}

fn decode_token(t: &str) -> S3Result<String> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "bad continuation token"))
}

/// One S3 listing page: objects and common prefixes in name order, at most `max` of them
/// together, and what to continue after when truncated.
struct Listing {
    objects: Vec<ObjEntry>,
    prefixes: Vec<String>,
    next_after: Option<String>,
}

async fn list_page(
    c: &Client,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<String>,
    max: usize,
) -> S3Result<Listing> {
    let mut out = Listing {
        objects: Vec::new(),
        prefixes: Vec::new(),
        next_after: None,
    };
    // A marker may name a common prefix (V1's NextMarker does): what rolls up into it or into
    // an earlier one was listed already.
    let floor = start_after.clone();
    let mut after = start_after;
    let delimiter = delimiter.filter(|d| !d.is_empty());
    loop {
        let (page, next) = visible_page(c, bucket, prefix, after.as_deref(), LIST_BATCH)
            .await
            .map_err(s3err)?;
        for e in page {
            let cp = delimiter.and_then(|d| {
                e.name.get(prefix.len()..).and_then(|rest| {
                    rest.find(d)
                        .map(|i| e.name[..prefix.len() + i + d.len()].to_string())
                })
            });
            if let Some(cp) = cp {
                if out.prefixes.last() == Some(&cp)
                    || floor.as_deref().is_some_and(|f| cp.as_str() <= f)
                {
                    after = Some(e.name);
                    continue;
                }
                if out.objects.len() + out.prefixes.len() >= max {
                    out.next_after = after;
                    return Ok(out);
                }
                // Continue past everything under this prefix.
                after = Some(format!("{cp}\u{10FFFF}"));
                out.prefixes.push(cp);
            } else {
                if out.objects.len() + out.prefixes.len() >= max {
                    out.next_after = after;
                    return Ok(out);
                }
                after = Some(e.name.clone());
                out.objects.push(e);
            }
        }
        match next {
            None => return Ok(out),
            Some(n) => {
                // Skip what a common prefix already covers.
                after = Some(match after {
                    Some(a) if a > n => a,
                    _ => n,
                });
            }
        }
    }
}

fn s3_object(e: ObjEntry, url: bool) -> Object {
    Object {
        e_tag: Some(ETag::Strong(native::stopgap_etag(&e.checksum))),
        last_modified: Some(entry_time(&e)),
        size: Some(e.size as i64),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        key: Some(if url { url_encode(&e.name) } else { e.name }),
        owner: Some(owner()),
        ..Default::default()
    }
}

fn owner() -> Owner {
    Owner {
        display_name: Some("shoal".into()),
        id: Some("shoal".into()),
    }
}

/// Reads a small object whole (multipart bookkeeping).
async fn get_small(c: &Client, bucket: &str, object: &str) -> shoal_actors::Result<Vec<u8>> {
    c.get_bytes(bucket, object).await
}

// ---- multipart bookkeeping ------------------------------------------------------------------
//
// An upload `U` of `bucket/key` lives in the same bucket under `.shoal-mpu/U/` (hidden from
// listings): `meta` (the key and start time), each part's bytes as an immutable object
// `d<part>.<nonce>`, and a small pointer `m<part>` naming the current bytes of that part with
// their MD5 and size. A re-sent part gets new bytes and a new pointer, so the pointer and the
// bytes it names always agree. Complete streams the parts into the final object and removes
// the upload.

#[derive(Serialize, Deserialize)]
struct UploadMeta {
    key: String,
    initiated_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct PartPtr {
    data: String,
    md5: String,
    size: u64,
    mtime_ms: u64,
}

fn upload_dir(upload_id: &str) -> String {
    format!("{HIDDEN_PREFIX}{upload_id}/")
}

fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

async fn upload_meta(c: &Client, bucket: &str, upload_id: &str) -> S3Result<UploadMeta> {
    if !valid_upload_id(upload_id) {
        return Err(s3_error!(NoSuchUpload));
    }
    match get_small(c, bucket, &format!("{}meta", upload_dir(upload_id))).await {
        Ok(b) => serde_json::from_slice(&b).map_err(|_| s3_error!(NoSuchUpload)),
        Err(shoal_actors::Error::NotFound(m)) if m.starts_with("bucket") => {
            Err(no_such_bucket(bucket))
        }
        Err(shoal_actors::Error::NotFound(_)) => Err(s3_error!(NoSuchUpload)),
        Err(e) => Err(cl(e)),
    }
}

/// Every listed name under `prefix` (hidden ones included).
async fn all_names(c: &Client, bucket: &str, prefix: &str) -> S3Result<Vec<ObjEntry>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, next) =
            crate::cluster::list_objects_page(c, bucket, prefix, after.as_deref(), LIST_BATCH)
                .await
                .map_err(s3err)?;
        out.extend(page);
        match next {
            None => return Ok(out),
            n => after = n,
        }
    }
}

async fn part_ptrs(c: &Client, bucket: &str, upload_id: &str) -> S3Result<BTreeMap<i32, PartPtr>> {
    let dir = upload_dir(upload_id);
    let mut out = BTreeMap::new();
    for e in all_names(c, bucket, &format!("{dir}m")).await? {
        let Some(n) = e.name[dir.len() + 1..].parse::<i32>().ok() else {
            continue;
        };
        match get_small(c, bucket, &e.name).await {
            Ok(b) => {
                if let Ok(p) = serde_json::from_slice::<PartPtr>(&b) {
                    out.insert(n, p);
                }
            }
            Err(shoal_actors::Error::NotFound(_)) => {}
            Err(e) => return Err(cl(e)),
        }
    }
    Ok(out)
}

async fn remove_upload(c: &Client, bucket: &str, upload_id: &str) -> S3Result<()> {
    // The meta object last: an upload is listed until all of it is gone.
    let dir = upload_dir(upload_id);
    let meta = format!("{dir}meta");
    for e in all_names(c, bucket, &dir).await? {
        if e.name != meta {
            match c.delete(bucket, &e.name).await {
                Ok(()) | Err(shoal_actors::Error::NotFound(_)) => {}
                Err(e) => return Err(cl(e)),
            }
        }
    }
    match c.delete(bucket, &meta).await {
        Ok(()) | Err(shoal_actors::Error::NotFound(_)) => Ok(()),
        Err(e) => Err(cl(e)),
    }
}

fn random_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..24)
        .map(|_| {
            let i = rng.random_range(0..36u8);
            (if i < 10 { b'0' + i } else { b'a' + i - 10 }) as char
        })
        .collect()
}

fn strip_quotes(s: &str) -> &str {
    s.trim().trim_matches('"')
}

/// Streams `parts` (bucket-relative names, in order) into one reader, one at a time.
fn concat_parts(
    c: Client,
    bucket: String,
    parts: Vec<String>,
) -> (
    tokio::io::DuplexStream,
    tokio::task::JoinHandle<shoal_actors::Result<()>>,
) {
    let (rd, mut wr) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(async move {
        for p in parts {
            c.get(&bucket, &p, &mut wr, false).await?;
        }
        Ok(())
    });
    (rd, task)
}

#[async_trait::async_trait]
impl S3 for ShoalS3 {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let gw = self.gw()?;
        let names = gw
            .cluster
            .retry(token(&req), |c| async move { Ok(c.list_buckets().await?) })
            .await
            .map_err(s3err)?;
        let now = Timestamp::from(std::time::SystemTime::now());
        let buckets = names
            .into_iter()
            .filter(|n| req.input.prefix.as_deref().is_none_or(|p| n.starts_with(p)))
            .map(|name| Bucket {
                name: Some(name),
                creation_date: Some(now.clone()),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let gw = self.gw()?;
        let b = req.input.bucket.clone();
        gw.cluster
            .retry(token(&req), |c| {
                let b = b.clone();
                async move { Ok(c.create_bucket(&b).await?) }
            })
            .await
            .map_err(s3err)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{b}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let gw = self.gw()?;
        let c = gw.cluster.client(token(&req)).await.map_err(s3err)?;
        bucket_exists(&c, &req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let gw = self.gw()?;
        let c = gw.cluster.client(token(&req)).await.map_err(s3err)?;
        bucket_exists(&c, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let gw = self.gw()?;
        let b = req.input.bucket.clone();
        let c = gw.cluster.client(token(&req)).await.map_err(s3err)?;
        // S3 refuses to delete a bucket that still has objects; Shoal's destroy would not.
        let (page, _) = visible_page(&c, &b, "", None, 1).await.map_err(s3err)?;
        if !page.is_empty() {
            return Err(s3_error!(BucketNotEmpty));
        }
        c.destroy_bucket(&b).await.map_err(cl)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let gw = self.gw()?;
        let tok = token(&req);
        let input = req.input;
        check_user_key(&input.key)?;
        let size = match input.content_length {
            Some(n) if n >= 0 => n as u64,
            _ => return Err(s3_error!(MissingContentLength)),
        };
        let expect = match &input.content_md5 {
            Some(m) => Some(stream::content_md5(m).ok_or_else(|| s3_error!(InvalidDigest))?),
            None => None,
        };
        let body = input.body.unwrap_or_else(|| {
            s3s::dto::StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>())
        });
        let (_, md5) = native::put_stream(&gw, tok, &input.bucket, &input.key, body, size, expect)
            .await
            .map_err(s3err)?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(stream::hex(&md5))),
            size: Some(size as i64),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let gw = self.gw()?;
        let tok = token(&req);
        let i = &req.input;
        let (b, k) = (i.bucket.clone(), i.key.clone());
        let meta = gw
            .cluster
            .retry(tok.clone(), |c| {
                let (b, k) = (b.clone(), k.clone());
                async move { Ok(c.head(&b, &k).await?) }
            })
            .await
            .map_err(s3err)?;
        preconditions(
            &meta,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let range = match i.range {
            Some(r) => Some(r.check(meta.size).map_err(|_| {
                S3Error::with_message(
                    S3ErrorCode::InvalidRange,
                    format!(
                        "The requested range is not satisfiable (object size {})",
                        meta.size
                    ),
                )
            })?),
            None => None,
        };
        let span = range.clone().unwrap_or(0..meta.size);
        let c = gw.cluster.client(tok).await.map_err(s3err)?;
        let out = GetObjectOutput {
            content_length: Some((span.end - span.start) as i64),
            content_range: range.as_ref().map(|r| {
                format!(
                    "bytes {}-{}/{}",
                    r.start,
                    r.end.saturating_sub(1),
                    meta.size
                )
            }),
            e_tag: Some(etag_of(&meta)),
            last_modified: Some(timestamp_ms(meta.mtime)),
            accept_ranges: Some("bytes".into()),
            content_type: Some(
                "application/octet-stream"
                    .parse()
                    .map_err(|_| s3_error!(InternalError))?,
            ),
            body: Some(StreamingBlob::wrap(stream::get_body(c, b, k, span, meta))),
            ..Default::default()
        };
        Ok(S3Response::new(out))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let gw = self.gw()?;
        let i = &req.input;
        let (b, k) = (i.bucket.clone(), i.key.clone());
        let meta = gw
            .cluster
            .retry(token(&req), |c| {
                let (b, k) = (b.clone(), k.clone());
                async move { Ok(c.head(&b, &k).await?) }
            })
            .await
            .map_err(s3err)?;
        preconditions(
            &meta,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(meta.size as i64),
            e_tag: Some(etag_of(&meta)),
            last_modified: Some(timestamp_ms(meta.mtime)),
            accept_ranges: Some("bytes".into()),
            content_type: Some(
                "application/octet-stream"
                    .parse()
                    .map_err(|_| s3_error!(InternalError))?,
            ),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let gw = self.gw()?;
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        let res = gw
            .cluster
            .retry(token(&req), |c| {
                let (b, k) = (b.clone(), k.clone());
                async move { Ok(c.delete(&b, &k).await?) }
            })
            .await;
        match res {
            Ok(()) => {}
            // Deleting a missing key succeeds in S3; a missing bucket does not.
            Err(Error::Cluster(shoal_actors::Error::NotFound(m))) if !m.starts_with("bucket") => {}
            Err(e) => return Err(s3err(e)),
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let gw = self.gw()?;
        let c = gw.cluster.client(token(&req)).await.map_err(s3err)?;
        let bucket = &req.input.bucket;
        bucket_exists(&c, bucket).await?;
        let quiet = req.input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in &req.input.delete.objects {
            match c.delete(bucket, &o.key).await {
                Ok(()) | Err(shoal_actors::Error::NotFound(_)) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(o.key.clone()),
                            ..Default::default()
                        });
                    }
                }
                Err(e) => {
                    let s = cl(e);
                    errors.push(s3s::dto::Error {
                        code: Some(s.code().as_str().to_string()),
                        key: Some(o.key.clone()),
                        message: s.message().map(str::to_string),
                        version_id: None,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let gw = self.gw()?;
        let tok = token(&req);
        let i = &req.input;
        check_user_key(&i.key)?;
        let (sb, sk) = match &i.copy_source {
            CopySource::Bucket { bucket, key, .. } => (bucket.to_string(), key.to_string()),
            _ => return Err(s3_error!(NotImplemented, "copy from an access point")),
        };
        let c = gw.cluster.client(tok.clone()).await.map_err(s3err)?;
        let meta = c.head(&sb, &sk).await.map_err(cl)?;
        if let Some(m) = &i.copy_source_if_match
            && !cond_matches(m, &etag_of(&meta))
        {
            return Err(s3_error!(PreconditionFailed));
        }
        // The source streams into the destination through a bounded pipe.
        let (rd, task) = concat_parts(c.clone(), sb.clone(), vec![sk.clone()]);
        let body = tokio_util::io::ReaderStream::new(rd);
        let put = native::put_stream(&gw, tok, &i.bucket, &i.key, body, meta.size, None).await;
        let got = task
            .await
            .map_err(|e| s3_error!(InternalError, "copy task: {e}"))?;
        got.map_err(cl)?;
        let (_, md5) = put.map_err(s3err)?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(stream::hex(&md5))),
                last_modified: Some(Timestamp::from(std::time::SystemTime::now())),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let gw = self.gw()?;
        let c = gw.cluster.client(token(&req)).await.map_err(s3err)?;
        let i = req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        let max = i.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let url = i
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let l = list_page(
            &c,
            &i.bucket,
            &prefix,
            i.delimiter.as_deref(),
            i.marker.clone().filter(|m| !m.is_empty()),
            max,
        )
        .await
        .map_err(|e| {
            if e.code() == &S3ErrorCode::NoSuchKey {
                no_such_bucket(&i.bucket)
            } else {
                e
            }
        })?;
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let truncated = l.next_after.is_some();
        let next_marker = l
            .next_after
            .clone()
            .map(|n| enc(n.trim_end_matches('\u{10FFFF}').to_string()));
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket.clone()),
            prefix: Some(enc(prefix)),
            marker: i.marker.clone().map(enc),
            max_keys: Some(max as i32),
            is_truncated: Some(truncated),
            contents: Some(l.objects.into_iter().map(|e| s3_object(e, url)).collect()),
            common_prefixes: Some(
                l.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.clone().map(enc),
            next_marker: if truncated { next_marker } else { None },
            encoding_type: i.encoding_type.clone(),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let gw = self.gw()?;
        let c = gw.cluster.client(token(&req)).await.map_err(s3err)?;
        let i = req.input;
        let prefix = i.prefix.clone().unwrap_or_default();
        let max = i.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let url = i
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let after = match i.continuation_token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => Some(decode_token(t)?),
            None => i.start_after.clone().filter(|s| !s.is_empty()),
        };
        let l = list_page(&c, &i.bucket, &prefix, i.delimiter.as_deref(), after, max).await?;
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let key_count = (l.objects.len() + l.prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket.clone()),
            prefix: Some(enc(prefix)),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            continuation_token: i.continuation_token.clone(),
            is_truncated: Some(l.next_after.is_some()),
            next_continuation_token: l.next_after.as_deref().map(encode_token),
            contents: Some(l.objects.into_iter().map(|e| s3_object(e, url)).collect()),
            common_prefixes: Some(
                l.prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.clone().map(enc),
            encoding_type: i.encoding_type.clone(),
            start_after: i.start_after.clone().map(enc),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let gw = self.gw()?;
        let c = gw.cluster.client(token(&req)).await.map_err(s3err)?;
        let i = req.input;
        check_user_key(&i.key)?;
        let id = random_id();
        let meta = serde_json::to_vec(&UploadMeta {
            key: i.key.clone(),
            initiated_ms: shoal_actors::store::unix_secs() * 1000,
        })
        .map_err(|e| s3_error!(InternalError, "{e}"))?;
        c.put_bytes(&i.bucket, &format!("{}meta", upload_dir(&id)), &meta)
            .await
            .map_err(cl)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let gw = self.gw()?;
        let tok = token(&req);
        let c = gw.cluster.client(tok.clone()).await.map_err(s3err)?;
        let i = req.input;
        if !(1..=10_000).contains(&i.part_number) {
            return Err(s3_error!(InvalidArgument, "part numbers are 1 to 10000"));
        }
        let meta = upload_meta(&c, &i.bucket, &i.upload_id).await?;
        if meta.key != i.key {
            return Err(s3_error!(NoSuchUpload));
        }
        let size = match i.content_length {
            Some(n) if n >= 0 => n as u64,
            _ => return Err(s3_error!(MissingContentLength)),
        };
        let expect = match &i.content_md5 {
            Some(m) => Some(stream::content_md5(m).ok_or_else(|| s3_error!(InvalidDigest))?),
            None => None,
        };
        let dir = upload_dir(&i.upload_id);
        let data = format!("{dir}d{:05}.{}", i.part_number, random_id());
        let body = i.body.unwrap_or_else(|| {
            s3s::dto::StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>())
        });
        let (_, md5) = native::put_stream(&gw, tok, &i.bucket, &data, body, size, expect)
            .await
            .map_err(s3err)?;
        let ptr = PartPtr {
            data,
            md5: stream::hex(&md5),
            size,
            mtime_ms: shoal_actors::store::unix_secs() * 1000,
        };
        let b = serde_json::to_vec(&ptr).map_err(|e| s3_error!(InternalError, "{e}"))?;
        c.put_bytes(&i.bucket, &format!("{dir}m{:05}", i.part_number), &b)
            .await
            .map_err(cl)?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(ptr.md5)),
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let gw = self.gw()?;
        let tok = token(&req);
        let c = gw.cluster.client(tok.clone()).await.map_err(s3err)?;
        let i = req.input;
        if !(1..=10_000).contains(&i.part_number) {
            return Err(s3_error!(InvalidArgument, "part numbers are 1 to 10000"));
        }
        let meta = upload_meta(&c, &i.bucket, &i.upload_id).await?;
        if meta.key != i.key {
            return Err(s3_error!(NoSuchUpload));
        }
        let (sb, sk) = match &i.copy_source {
            CopySource::Bucket { bucket, key, .. } => (bucket.to_string(), key.to_string()),
            _ => return Err(s3_error!(NotImplemented, "copy from an access point")),
        };
        let src = c.head(&sb, &sk).await.map_err(cl)?;
        if let Some(m) = &i.copy_source_if_match
            && !cond_matches(m, &etag_of(&src))
        {
            return Err(s3_error!(PreconditionFailed));
        }
        let span = match i.copy_source_range.as_deref() {
            Some(r) => Range::parse(r)
                .map_err(|_| s3_error!(InvalidArgument, "bad x-amz-copy-source-range"))?
                .check(src.size)
                .map_err(|_| s3_error!(InvalidRange))?,
            None => 0..src.size,
        };
        let size = span.end - span.start;
        let dir = upload_dir(&i.upload_id);
        let data = format!("{dir}d{:05}.{}", i.part_number, random_id());
        let body = Box::pin(stream::get_body(c.clone(), sb, sk, span, src));
        let (_, md5) = native::put_stream(&gw, tok, &i.bucket, &data, body, size, None)
            .await
            .map_err(s3err)?;
        let ptr = PartPtr {
            data,
            md5: stream::hex(&md5),
            size,
            mtime_ms: shoal_actors::store::unix_secs() * 1000,
        };
        let b = serde_json::to_vec(&ptr).map_err(|e| s3_error!(InternalError, "{e}"))?;
        c.put_bytes(&i.bucket, &format!("{dir}m{:05}", i.part_number), &b)
            .await
            .map_err(cl)?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(ptr.md5)),
                last_modified: Some(timestamp_ms(ptr.mtime_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let gw = self.gw()?;
        let tok = token(&req);
        let c = gw.cluster.client(tok.clone()).await.map_err(s3err)?;
        let i = req.input;
        let meta = upload_meta(&c, &i.bucket, &i.upload_id).await?;
        if meta.key != i.key {
            return Err(s3_error!(NoSuchUpload));
        }
        let asked = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if asked.is_empty() {
            return Err(s3_error!(MalformedXML, "no parts to complete"));
        }
        let have = part_ptrs(&c, &i.bucket, &i.upload_id).await?;
        let mut last = 0;
        let mut md5s = Md5::new();
        let mut names = Vec::new();
        let mut total = 0u64;
        for p in &asked {
            let n = p.part_number.unwrap_or(0);
            if n <= last {
                return Err(s3_error!(InvalidPartOrder));
            }
            last = n;
            let ptr = have
                .get(&n)
                .ok_or_else(|| s3_error!(InvalidPart, "part {n} was not uploaded"))?;
            if let Some(e) = &p.e_tag
                && strip_quotes(e.value()) != ptr.md5
            {
                return Err(s3_error!(InvalidPart, "part {n}: ETag does not match"));
            }
            md5s.update(stream::unhex16(&ptr.md5).unwrap_or_default());
            names.push(ptr.data.clone());
            total += ptr.size;
        }
        let etag = format!("{}-{}", stream::hex(&md5s.finalize()), asked.len());
        let (rd, task) = concat_parts(c.clone(), i.bucket.clone(), names);
        let body = tokio_util::io::ReaderStream::new(rd);
        let put = native::put_stream(&gw, tok, &i.bucket, &i.key, body, total, None).await;
        let got = task
            .await
            .map_err(|e| s3_error!(InternalError, "complete task: {e}"))?;
        got.map_err(cl)?;
        put.map_err(s3err)?;
        remove_upload(&c, &i.bucket, &i.upload_id).await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(i.bucket.clone()),
            key: Some(i.key.clone()),
            e_tag: Some(ETag::Strong(etag)),
            location: Some(format!("/{}/{}", i.bucket, i.key)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let gw = self.gw()?;
        let c = gw.cluster.client(token(&req)).await.map_err(s3err)?;
        let i = req.input;
        let meta = upload_meta(&c, &i.bucket, &i.upload_id).await?;
        if meta.key != i.key {
            return Err(s3_error!(NoSuchUpload));
        }
        remove_upload(&c, &i.bucket, &i.upload_id).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let gw = self.gw()?;
        let c = gw.cluster.client(token(&req)).await.map_err(s3err)?;
        let i = req.input;
        let meta = upload_meta(&c, &i.bucket, &i.upload_id).await?;
        if meta.key != i.key {
            return Err(s3_error!(NoSuchUpload));
        }
        let max = i.max_parts.unwrap_or(1000).clamp(1, 1000) as usize;
        let marker = i.part_number_marker.unwrap_or(0);
        let have = part_ptrs(&c, &i.bucket, &i.upload_id).await?;
        let mut rest = have.into_iter().filter(|(n, _)| *n > marker);
        let parts: Vec<Part> = rest
            .by_ref()
            .take(max)
            .map(|(n, p)| Part {
                part_number: Some(n),
                e_tag: Some(ETag::Strong(p.md5)),
                size: Some(p.size as i64),
                last_modified: Some(timestamp_ms(p.mtime_ms)),
                ..Default::default()
            })
            .collect();
        let truncated = rest.next().is_some();
        let next = parts.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(i.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: i.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            is_truncated: Some(truncated),
            parts: Some(parts),
            owner: Some(owner()),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let gw = self.gw()?;
        let c = gw.cluster.client(token(&req)).await.map_err(s3err)?;
        let i = req.input;
        bucket_exists(&c, &i.bucket).await?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let max = i.max_uploads.unwrap_or(1000).clamp(1, 1000) as usize;
        let mut uploads = Vec::new();
        for e in all_names(&c, &i.bucket, HIDDEN_PREFIX).await? {
            let Some(id) = e
                .name
                .strip_prefix(HIDDEN_PREFIX)
                .and_then(|r| r.strip_suffix("/meta"))
            else {
                continue;
            };
            let Ok(m) = upload_meta(&c, &i.bucket, id).await else {
                continue;
            };
            if m.key.starts_with(&prefix) {
                uploads.push(MultipartUpload {
                    key: Some(m.key),
                    upload_id: Some(id.to_string()),
                    initiated: Some(timestamp_ms(m.initiated_ms)),
                    owner: Some(owner()),
                    ..Default::default()
                });
            }
        }
        uploads.sort_by(|a, b| a.key.cmp(&b.key));
        let truncated = uploads.len() > max;
        uploads.truncate(max);
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: i.prefix,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            uploads: Some(uploads),
            ..Default::default()
        }))
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

    #[test]
    fn tokens_and_encoding() {
        let t = encode_token("dir/a b&c");
        assert_eq!(decode_token(&t).unwrap(), "dir/a b&c");
        assert!(decode_token("!!!").is_err());
        assert_eq!(url_encode("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
        assert!(valid_upload_id("abc123"));
        assert!(!valid_upload_id("../x"));
        assert!(!valid_upload_id(""));
    }
}
