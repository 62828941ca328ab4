//! AIStore's native REST API: the subset its Python SDK (`aistore` 2.0.0) and its Go API call
//! (DESIGN §13, `reference/aistore-http-api.md`), with AIStore's paths, query parameters, JSON
//! action bodies, `ais-*` headers and status codes.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use shoal_actors::lifecycle::{LifecycleOp, LifecycleRequest};
use shoal_actors::rebalance::RebalanceStatus;
use shoal_actors::smap::{Node, NodeId, Role};
use shoal_actors::store::ObjMeta;

use crate::Gateway;
use crate::body::{self, GwBody};
use crate::cluster::list_objects_page;
use crate::error::{Error, Result};
use crate::stream;

/// Action bodies larger than this are refused.
const MAX_JSON_BODY: usize = 1 << 20;
/// A listing page when the client asks for "as many as you like" (AIStore's page for `ais://`).
const DEFAULT_PAGE: usize = 10_000;
/// Names under this prefix are the gateway's own (S3 multipart parts): hidden from listings,
/// refused as user object names.
pub const HIDDEN_PREFIX: &str = ".shoal-mpu/";
/// AIStore's name for the checksum type Shoal stores (xxh3-64).
const CKSUM_TYPE: &str = "xxhash3";

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

fn query(req: &Req) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn bearer(req: &Req) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// `{"action","name","value"}`.
#[derive(Debug, Default, Deserialize)]
struct ActionMsg {
    #[serde(default)]
    action: String,
    #[serde(default)]
    value: serde_json::Value,
}

async fn json_body<T: serde::de::DeserializeOwned + Default>(
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

fn json<T: Serialize>(status: StatusCode, v: &T) -> Result<Response<GwBody>> {
    let b = serde_json::to_vec(v).map_err(|e| Error::BadRequest(e.to_string()))?;
    Ok(Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body::full(b))
        .expect("valid response"))
}

fn empty(status: StatusCode) -> Response<GwBody> {
    Response::builder()
        .status(status)
        .body(body::empty())
        .expect("valid response")
}

fn check_provider(q: &HashMap<String, String>) -> Result<()> {
    match q.get("provider").map(String::as_str) {
        None | Some("") | Some("ais") => Ok(()),
        Some(p) => Err(Error::NotImplemented(format!(
            "provider {p:?}: only ais:// buckets are served here"
        ))),
    }
}

/// Rewrites the cluster's "not found" in AIStore's words, which the SDK matches on: `ais://b`
/// for a bucket, `ais://b/obj` for an object.
fn in_context(e: Error, bucket: &str, object: Option<&str>) -> Error {
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

async fn route(gw: &Arc<Gateway>, req: Req) -> Result<Response<GwBody>> {
    let raw = req
        .uri()
        .path()
        .strip_prefix("/v1/")
        .unwrap_or("")
        .to_string();
    let (head, rest) = raw.split_once('/').unwrap_or((raw.as_str(), ""));
    match head {
        "daemon" => daemon(gw, req).await,
        "health" => health(gw, req).await,
        "buckets" => buckets(gw, req, rest).await,
        "objects" => {
            let (b, o) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket = decode(b)?;
            let object = decode(o)?;
            objects(gw, req, &bucket, &object).await
        }
        "cluster" => cluster(gw, req).await,
        other => Err(Error::NotImplemented(format!(
            "/v1/{other} is not served by Shoal"
        ))),
    }
}

fn decode(s: &str) -> Result<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::BadRequest("path is not UTF-8 once decoded".into()))
}

// ---- cluster map and health ---------------------------------------------------------------

#[derive(Serialize)]
struct NetInfo {
    node_hostname: String,
    daemon_port: String,
    direct_url: String,
}

#[derive(Serialize)]
struct Snode {
    daemon_id: String,
    daemon_type: &'static str,
    public_net: NetInfo,
    intra_control_net: NetInfo,
    intra_data_net: NetInfo,
    flags: u32,
    id_digest: u64,
}

fn snode(gw: &Gateway, n: &Node) -> Snode {
    let url = gw.cluster.http_url(n);
    let hostport = url.trim_start_matches("http://").to_string();
    let (host, port) = hostport
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .unwrap_or((hostport.clone(), String::new()));
    let (chost, cport) = n
        .addr
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .unwrap_or((n.addr.clone(), String::new()));
    let intra = || NetInfo {
        node_hostname: chost.clone(),
        daemon_port: cport.clone(),
        direct_url: format!("http://{}", n.addr),
    };
    Snode {
        daemon_id: n.id.0.clone(),
        daemon_type: n.role.as_str(),
        public_net: NetInfo {
            node_hostname: host,
            daemon_port: port,
            direct_url: url,
        },
        intra_control_net: intra(),
        intra_data_net: intra(),
        flags: n.flags.0,
        id_digest: n.id_digest,
    }
}

async fn smap_json(gw: &Gateway) -> Result<serde_json::Value> {
    let smap = gw.cluster.smap().await?;
    let map = |m: &std::collections::BTreeMap<NodeId, Node>| {
        m.iter()
            .map(|(id, n)| {
                (
                    id.0.clone(),
                    serde_json::to_value(snode(gw, n)).unwrap_or_default(),
                )
            })
            .collect::<serde_json::Map<_, _>>()
    };
    let primary = smap
        .proxies
        .get(&smap.primary)
        .map(|n| serde_json::to_value(snode(gw, n)).unwrap_or_default())
        .unwrap_or_default();
    Ok(serde_json::json!({
        "tmap": map(&smap.targets),
        "pmap": map(&smap.proxies),
        "proxy_si": primary,
        // Go's AIStore writes the version as a string.
        "version": smap.version.to_string(),
        "uuid": smap.uuid,
        "creation_time": "",
    }))
}

async fn daemon(gw: &Arc<Gateway>, req: Req) -> Result<Response<GwBody>> {
    let q = query(&req);
    match q.get("what").map(String::as_str) {
        Some("smap") => json(StatusCode::OK, &smap_json(gw).await?),
        Some("snode") => {
            let smap = gw.cluster.smap().await?;
            let me = smap
                .all_nodes()
                .find(|n| n.addr == gw.cfg.node_addr)
                .ok_or_else(|| Error::BadRequest("this node is not in the cluster map".into()))?;
            json(StatusCode::OK, &snode(gw, me))
        }
        Some(w) => Err(Error::NotImplemented(format!("daemon?what={w}"))),
        None => Err(Error::BadRequest("missing ?what=".into())),
    }
}

async fn health(gw: &Arc<Gateway>, req: Req) -> Result<Response<GwBody>> {
    let q = query(&req);
    if q.get("prr").is_some_and(|v| v == "true") {
        // "Primary ready for rebalance": the map is there and has storage.
        match gw.cluster.smap().await {
            Ok(s) if !s.targets.is_empty() => Ok(empty(StatusCode::OK)),
            _ => Ok(empty(StatusCode::SERVICE_UNAVAILABLE)),
        }
    } else {
        Ok(empty(StatusCode::OK))
    }
}

// ---- buckets --------------------------------------------------------------------------------

#[derive(Serialize)]
struct BucketModel {
    name: String,
    provider: &'static str,
}

/// `value` of a list-objects action.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListMsg {
    prefix: String,
    pagesize: u64,
    uuid: String,
    continuation_token: String,
    start_after: String,
}

/// One entry of AIStore's object listing (`cmn/objlist.go/LsoEntry`).
#[derive(Serialize)]
struct LsoEntry {
    n: String,
    cs: String,
    a: String,
    v: String,
    t: String,
    s: u64,
    c: u32,
    f: u32,
}

#[derive(Serialize)]
struct LsoResult {
    #[serde(rename = "UUID")]
    uuid: String,
    #[serde(rename = "ContinuationToken")]
    continuation_token: String,
    #[serde(rename = "Flags")]
    flags: u32,
    #[serde(rename = "Entries")]
    entries: Vec<LsoEntry>,
}

async fn buckets(gw: &Arc<Gateway>, req: Req, rest: &str) -> Result<Response<GwBody>> {
    let q = query(&req);
    let token = bearer(&req).map(str::to_string);
    let bucket = decode(rest.trim_end_matches('/'))?;
    let method = req.method().clone();
    if bucket.is_empty() {
        if method != Method::GET {
            return Err(Error::NotImplemented(format!("{method} /v1/buckets")));
        }
        let tok = gw.cfg.auth.check_bearer(token.as_deref(), false)?;
        if !matches!(
            q.get("provider").map(String::as_str),
            None | Some("") | Some("ais")
        ) {
            return json(StatusCode::OK, &Vec::<BucketModel>::new());
        }
        let names = gw
            .cluster
            .retry(tok, |c| async move { Ok(c.list_buckets().await?) })
            .await?;
        let list: Vec<BucketModel> = names
            .into_iter()
            .map(|name| BucketModel {
                name,
                provider: "ais",
            })
            .collect();
        return json(StatusCode::OK, &list);
    }
    check_provider(&q)?;
    shoal_actors::store::validate_bucket(&bucket).map_err(Error::Cluster)?;
    let accept_msgpack = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/msgpack"));
    match method {
        Method::HEAD => {
            let tok = gw.cfg.auth.check_bearer(token.as_deref(), false)?;
            let names = gw
                .cluster
                .retry(tok, |c| async move { Ok(c.list_buckets().await?) })
                .await?;
            if names.contains(&bucket) {
                let props = serde_json::json!({"provider": "ais", "name": bucket});
                Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header("Ais-Bucket-Props", props.to_string())
                    .body(body::empty())
                    .expect("valid response"))
            } else {
                Err(in_context(
                    Error::Cluster(shoal_actors::Error::NotFound("bucket".into())),
                    &bucket,
                    None,
                ))
            }
        }
        Method::POST => {
            let msg: ActionMsg = json_body(req.into_body()).await?;
            if msg.action != "create-bck" {
                return Err(Error::NotImplemented(format!(
                    "bucket action {:?} is not served by Shoal",
                    msg.action
                )));
            }
            let tok = gw.cfg.auth.check_bearer(token.as_deref(), true)?;
            let b = bucket.clone();
            gw.cluster
                .retry(tok, |c| {
                    let b = b.clone();
                    async move { Ok(c.create_bucket(&b).await?) }
                })
                .await
                .map_err(|e| in_context(e, &bucket, None))?;
            Ok(empty(StatusCode::OK))
        }
        Method::DELETE => {
            let msg: ActionMsg = json_body(req.into_body()).await?;
            if !msg.action.is_empty() && msg.action != "destroy-bck" {
                return Err(Error::NotImplemented(format!(
                    "bucket action {:?} is not served by Shoal",
                    msg.action
                )));
            }
            let tok = gw.cfg.auth.check_bearer(token.as_deref(), true)?;
            let b = bucket.clone();
            gw.cluster
                .retry(tok, |c| {
                    let b = b.clone();
                    async move { Ok(c.destroy_bucket(&b).await?) }
                })
                .await
                .map_err(|e| in_context(e, &bucket, None))?;
            Ok(empty(StatusCode::OK))
        }
        Method::GET => {
            let tok = gw.cfg.auth.check_bearer(token.as_deref(), false)?;
            let msg: ActionMsg = json_body(req.into_body()).await?;
            if !msg.action.is_empty() && msg.action != "list" {
                return Err(Error::NotImplemented(format!(
                    "bucket action {:?} is not served by Shoal",
                    msg.action
                )));
            }
            let lm: ListMsg = if msg.value.is_null() {
                ListMsg::default()
            } else {
                serde_json::from_value(msg.value)
                    .map_err(|e| Error::BadRequest(format!("bad list message: {e}")))?
            };
            let page = if lm.pagesize == 0 {
                DEFAULT_PAGE
            } else {
                (lm.pagesize as usize).min(DEFAULT_PAGE)
            };
            let after = if !lm.continuation_token.is_empty() {
                Some(lm.continuation_token.clone())
            } else if !lm.start_after.is_empty() {
                Some(lm.start_after.clone())
            } else {
                None
            };
            let smap = gw.cluster.smap().await.ok();
            let (b, p) = (bucket.clone(), lm.prefix.clone());
            let (entries, next) = gw
                .cluster
                .retry(tok, |c| {
                    let (b, p, a) = (b.clone(), p.clone(), after.clone());
                    async move { visible_page(&c, &b, &p, a.as_deref(), page).await }
                })
                .await
                .map_err(|e| in_context(e, &bucket, None))?;
            let entries = entries
                .into_iter()
                .map(|e| {
                    let t = smap
                        .as_ref()
                        .and_then(|s| shoal_actors::placement::owner(s, &bucket, &e.name))
                        .map(|n| n.id.0.clone())
                        .unwrap_or_default();
                    LsoEntry {
                        cs: e.checksum,
                        a: String::new(),
                        v: e.version.to_string(),
                        t,
                        s: e.size,
                        c: 1,
                        f: 0,
                        n: e.name,
                    }
                })
                .collect();
            let res = LsoResult {
                uuid: if lm.uuid.is_empty() {
                    format!("lso-{:x}", shoal_actors::store::unix_secs())
                } else {
                    lm.uuid
                },
                continuation_token: next.unwrap_or_default(),
                flags: 0,
                entries,
            };
            if accept_msgpack {
                let b = rmp_serde::to_vec_named(&res)
                    .map_err(|e| Error::BadRequest(format!("encoding the listing: {e}")))?;
                Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/msgpack")
                    .body(body::full(b))
                    .expect("valid response"))
            } else {
                json(StatusCode::OK, &res)
            }
        }
        other => Err(Error::NotImplemented(format!(
            "{other} /v1/buckets/{bucket}"
        ))),
    }
}

/// A listing page without the gateway's own hidden objects.
pub async fn visible_page(
    c: &shoal_actors::client::Client,
    bucket: &str,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<(Vec<shoal_actors::wire::ObjEntry>, Option<String>)> {
    let mut after = start_after.map(str::to_string);
    // A page made only of hidden names would read as the end; skip past them.
    loop {
        let (mut page, next) =
            list_objects_page(c, bucket, prefix, after.as_deref(), limit).await?;
        let raw_len = page.len();
        page.retain(|e| !e.name.starts_with(HIDDEN_PREFIX));
        if !page.is_empty() || next.is_none() || raw_len == 0 {
            return Ok((page, next));
        }
        after = next;
    }
}

// ---- objects --------------------------------------------------------------------------------

/// Headers AIStore's clients read about an object.
pub fn object_headers(mut r: http::response::Builder, meta: &ObjMeta) -> http::response::Builder {
    r = r
        .header("Ais-Checksum-Type", CKSUM_TYPE)
        .header("Ais-Checksum-Value", meta.checksum.as_str())
        .header("Ais-Version", meta.version.to_string())
        .header(
            "Ais-Atime",
            (meta.mtime.saturating_mul(1_000_000)).to_string(),
        )
        .header("Ais-Present", "true")
        .header(
            header::ETAG,
            format!("\"{}\"", stopgap_etag(meta.checksum.as_str())),
        )
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(lm) = last_modified(meta.mtime) {
        r = r.header(header::LAST_MODIFIED, lm);
    }
    r
}

/// TODO(lead): ObjMeta needs md5. Until the cluster stores each object's MD5, HEAD, GET and
/// listings answer this ETag, derived from the stored xxh3 checksum. It ends in `-1`, the shape
/// of a multipart ETag, so that clients which compare an ETag with the MD5 of the bytes (rclone,
/// s3cmd, the aws CLI) skip the comparison instead of reporting a false mismatch.
pub fn stopgap_etag(checksum: &str) -> String {
    format!("{checksum:0>32}-1")
}

pub fn last_modified(mtime_ms: u64) -> Option<String> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(mtime_ms);
    Some(httpdate::fmt_http_date(t))
}

/// Parses a `Range` header against an object of `size` bytes; `None` for the whole object.
pub fn parse_range(h: Option<&HeaderValue>, size: u64) -> Result<Option<std::ops::Range<u64>>> {
    let Some(h) = h else { return Ok(None) };
    let s = h
        .to_str()
        .map_err(|_| Error::BadRequest("Range is not ASCII".into()))?;
    let r = s3s::dto::Range::parse(s).map_err(|_| Error::BadRequest(format!("bad Range {s:?}")))?;
    r.check(size)
        .map(Some)
        .map_err(|_| Error::RangeNotSatisfiable { size })
}

async fn objects(
    gw: &Arc<Gateway>,
    req: Req,
    bucket: &str,
    object: &str,
) -> Result<Response<GwBody>> {
    let q = query(&req);
    check_provider(&q)?;
    shoal_actors::store::validate_bucket(bucket).map_err(Error::Cluster)?;
    if object.is_empty() {
        return Err(Error::BadRequest(
            "missing object name: /v1/objects/BUCKET/OBJECT".into(),
        ));
    }
    shoal_actors::store::validate_object(object).map_err(Error::Cluster)?;
    let token = gw.cfg.auth.check_bearer(bearer(&req), false)?;
    let method = req.method().clone();

    // Proxies do not carry object data: GET and PUT go to the owner, as AIStore redirects.
    if gw.cluster.role() == Role::Proxy && (method == Method::GET || method == Method::PUT) {
        let owner = gw.cluster.owner(bucket, object).await?;
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let location = format!("{}{}", gw.cluster.http_url(&owner), pq);
        return Ok(Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, location)
            .header("Ais-Node-Id", owner.id.0.as_str())
            .body(body::empty())
            .expect("valid response"));
    }

    let (b, o) = (bucket.to_string(), object.to_string());
    match method {
        Method::HEAD => {
            let meta = gw
                .cluster
                .retry(token, |c| {
                    let (b, o) = (b.clone(), o.clone());
                    async move { Ok(c.head(&b, &o).await?) }
                })
                .await
                .map_err(|e| in_context(e, bucket, Some(object)))?;
            Ok(object_headers(Response::builder(), &meta)
                .header(header::CONTENT_LENGTH, meta.size)
                .body(body::empty())
                .expect("valid response"))
        }
        Method::DELETE => {
            gw.cluster
                .retry(token, |c| {
                    let (b, o) = (b.clone(), o.clone());
                    async move { Ok(c.delete(&b, &o).await?) }
                })
                .await
                .map_err(|e| in_context(e, bucket, Some(object)))?;
            Ok(empty(StatusCode::OK))
        }
        Method::GET => {
            let meta = gw
                .cluster
                .retry(token.clone(), |c| {
                    let (b, o) = (b.clone(), o.clone());
                    async move { Ok(c.head(&b, &o).await?) }
                })
                .await
                .map_err(|e| in_context(e, bucket, Some(object)))?;
            let range = parse_range(req.headers().get(header::RANGE), meta.size)?;
            let client = gw.cluster.client(token).await?;
            let (status, span) = match &range {
                Some(r) => (StatusCode::PARTIAL_CONTENT, r.clone()),
                None => (StatusCode::OK, 0..meta.size),
            };
            let mut r = object_headers(Response::builder().status(status), &meta)
                .header(header::CONTENT_LENGTH, span.end - span.start)
                .header(header::CONTENT_TYPE, "application/octet-stream");
            if range.is_some() {
                r = r.header(
                    header::CONTENT_RANGE,
                    format!(
                        "bytes {}-{}/{}",
                        span.start,
                        span.end.saturating_sub(1),
                        meta.size
                    ),
                );
            }
            let s = stream::get_body(client, b, o, span, meta);
            Ok(r.body(body::stream(s)).expect("valid response"))
        }
        Method::PUT => {
            if object.starts_with(HIDDEN_PREFIX) {
                return Err(Error::BadRequest(format!(
                    "object names under {HIDDEN_PREFIX} are reserved"
                )));
            }
            let size = content_length(req.headers())?;
            let expect = match req.headers().get("content-md5") {
                Some(v) => Some(
                    v.to_str()
                        .ok()
                        .and_then(stream::content_md5)
                        .ok_or_else(|| Error::BadRequest("bad Content-MD5".into()))?,
                ),
                None => None,
            };
            let body = http_body_util::BodyDataStream::new(req.into_body());
            let (sum, md5) = put_stream(gw, token, bucket, object, body, size, expect)
                .await
                .map_err(|e| in_context(e, bucket, None))?;
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header("Ais-Checksum-Type", CKSUM_TYPE)
                .header("Ais-Checksum-Value", sum)
                .header(header::ETAG, format!("\"{}\"", stream::hex(&md5)))
                .body(body::empty())
                .expect("valid response"))
        }
        other => Err(Error::NotImplemented(format!("{other} /v1/objects"))),
    }
}

/// The declared body length; a body without one is refused (the cluster needs the size first).
pub fn content_length(h: &http::HeaderMap) -> Result<u64> {
    let v = h.get(header::CONTENT_LENGTH).ok_or_else(|| {
        Error::LengthRequired(
            "a PUT needs a Content-Length (chunked uploads are not served)".into(),
        )
    })?;
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| Error::BadRequest("bad Content-Length".into()))
}

/// Streams `body` (`size` bytes) into `bucket/object`; returns the stored checksum and the MD5.
/// Nothing is stored when the body is short, or its MD5 differs from `expect`.
pub async fn put_stream<S, E>(
    gw: &Gateway,
    token: Option<String>,
    bucket: &str,
    object: &str,
    body: S,
    size: u64,
    expect: Option<[u8; 16]>,
) -> Result<(String, [u8; 16])>
where
    S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    let mut r = stream::Md5Reader::new(stream::reader(body), size, expect);
    if let Some((sent, computed)) = r.empty_body_mismatch() {
        return Err(Error::BadDigest {
            sent: stream::hex(&sent),
            computed: stream::hex(&computed),
        });
    }
    let mut pause = std::time::Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        let c = gw.cluster.client(token.clone()).await?;
        match c.put(bucket, object, &mut r, size).await {
            Ok(sum) => {
                let md5 = r
                    .digest()
                    .ok_or_else(|| Error::Io(std::io::Error::other("body not fully read")))?;
                return Ok((sum, md5));
            }
            Err(e) => {
                if let Some((sent, computed)) = stream::bad_digest(&e) {
                    return Err(Error::BadDigest { sent, computed });
                }
                if let Some(why) = stream::client_body(&e) {
                    return Err(Error::ClientBody(why));
                }
                let e = Error::Cluster(e);
                // Retry only while the body is untouched (it cannot be read twice).
                if e.is_transient() && r.consumed() == 0 && attempt < 6 {
                    gw.cluster.invalidate();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                    attempt += 1;
                    continue;
                }
                return Err(e);
            }
        }
    }
}

// ---- jobs and lifecycle ---------------------------------------------------------------------

/// `JobArgs` as the SDK sends it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JobArgs {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Kind")]
    kind: String,
    /// `status_all` / `running_all` queries name it so.
    #[serde(alias = "kind")]
    kind_lower: String,
}

/// How a rebalance generation looks to AIStore's job API.
struct JobView {
    id: String,
    running: bool,
    aborted: bool,
    started: Option<u64>,
    finished: Option<u64>,
}

fn ns(secs: u64) -> u64 {
    secs.saturating_mul(1_000_000_000)
}

fn rfc3339(secs: Option<u64>) -> String {
    match secs {
        Some(s) if s > 0 => {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
            let mut buf = Vec::new();
            let _ =
                s3s::dto::Timestamp::from(t).format(s3s::dto::TimestampFormat::DateTime, &mut buf);
            String::from_utf8(buf).unwrap_or_default()
        }
        _ => "0001-01-01T00:00:00Z".into(),
    }
}

fn gen_of(id: &str) -> Option<u64> {
    id.strip_prefix('g').and_then(|n| n.parse().ok())
}

/// The generation `id` (or the latest when empty), as of `st`; `None` if unknown.
fn job_view(st: Option<&RebalanceStatus>, id: &str) -> Option<JobView> {
    let st = st?;
    let latest = gen_of(&st.id)?;
    let want = if id.is_empty() { latest } else { gen_of(id)? };
    if want == latest {
        Some(JobView {
            id: st.id.clone(),
            running: st.is_running(),
            aborted: st.state == "aborted",
            started: st.started,
            finished: st
                .finished
                .or_else(|| (!st.is_running()).then(shoal_actors::store::unix_secs)),
        })
    } else if want < latest {
        // A newer generation superseded it: it is over.
        Some(JobView {
            id: format!("g{want}"),
            running: false,
            aborted: false,
            started: st.started,
            finished: st
                .started
                .or_else(|| Some(shoal_actors::store::unix_secs())),
        })
    } else {
        None
    }
}

async fn cluster(gw: &Arc<Gateway>, req: Req) -> Result<Response<GwBody>> {
    let q = query(&req);
    let method = req.method().clone();
    match method {
        Method::GET => {
            let token = gw.cfg.auth.check_bearer(bearer(&req), false)?;
            let what = q.get("what").cloned().unwrap_or_default();
            let args: JobArgs = json_body(req.into_body()).await?;
            let kind = if args.kind.is_empty() {
                args.kind_lower.clone()
            } else {
                args.kind.clone()
            };
            if what == "smap" {
                return json(StatusCode::OK, &smap_json(gw).await?);
            }
            let st = gw
                .cluster
                .retry(token, |c| async move { Ok(c.rebalance_status().await?) })
                .await?;
            let not_ours = !kind.is_empty() && kind != "rebalance";
            match what.as_str() {
                "status" => {
                    let v = (!not_ours)
                        .then(|| job_view(st.as_ref(), &args.id))
                        .flatten()
                        .ok_or_else(|| {
                            Error::Cluster(shoal_actors::Error::NotFound(format!(
                                "job {:?} not found",
                                args.id
                            )))
                        })?;
                    json(
                        StatusCode::OK,
                        &serde_json::json!({
                            "uuid": v.id,
                            "err": "",
                            "end_time": if v.running { 0 } else { ns(v.finished.unwrap_or(0)) },
                            "aborted": v.aborted,
                        }),
                    )
                }
                "qryxstats" => {
                    let mut out = serde_json::Map::new();
                    if !not_ours
                        && let (Some(s), Some(v)) = (st.as_ref(), job_view(st.as_ref(), &args.id))
                    {
                        for t in &s.targets {
                            let done = !v.running || t.finished.is_some();
                            let snap = serde_json::json!({
                                "id": v.id,
                                "kind": "rebalance",
                                "start-time": rfc3339(t.started.or(v.started)),
                                "end-time": if done { rfc3339(t.finished.or(v.finished)) } else { rfc3339(None) },
                                "aborted": v.aborted,
                                "is_idle": done,
                                "abort-err": "",
                            });
                            out.insert(t.id.clone(), serde_json::Value::Array(vec![snap]));
                        }
                    }
                    if out.is_empty() && !args.id.is_empty() {
                        return Err(Error::Cluster(shoal_actors::Error::NotFound(format!(
                            "job {:?} not found",
                            args.id
                        ))));
                    }
                    json(StatusCode::OK, &serde_json::Value::Object(out))
                }
                "status_all" | "running_all" => {
                    let mut list = Vec::new();
                    if !not_ours
                        && let Some(v) = job_view(st.as_ref(), &args.id)
                        && (what == "status_all" || v.running)
                    {
                        list.push(serde_json::json!({
                            "uuid": v.id,
                            "kind": "rebalance",
                            "err": "",
                            "end_time": if v.running { 0 } else { ns(v.finished.unwrap_or(0)) },
                            "aborted": v.aborted,
                        }));
                    }
                    json(StatusCode::OK, &list)
                }
                other => Err(Error::NotImplemented(format!("cluster?what={other}"))),
            }
        }
        Method::PUT => {
            let auth = bearer(&req).map(str::to_string);
            let msg: ActionMsg = json_body(req.into_body()).await?;
            let op = match msg.action.as_str() {
                "start-maintenance" => LifecycleOp::StartMaintenance,
                "stop-maintenance" => LifecycleOp::StopMaintenance,
                "shutdown-node" => LifecycleOp::Shutdown,
                "decommission-node" => LifecycleOp::Decommission,
                "start" | "stop" => {
                    return Err(Error::NotImplemented(
                        "starting or stopping jobs by hand is not served: rebalances start with \
                         membership changes"
                            .into(),
                    ));
                }
                other => {
                    return Err(Error::NotImplemented(format!(
                        "cluster action {other:?} is not served by Shoal"
                    )));
                }
            };
            let token = gw.cfg.auth.check_bearer(auth.as_deref(), true)?;
            let v = &msg.value;
            let mut nodes: Vec<NodeId> = Vec::new();
            if let Some(s) = v.get("sid").and_then(|s| s.as_str())
                && !s.is_empty()
            {
                nodes.push(NodeId::parse_display(s));
            }
            if let Some(list) = v.get("sids").and_then(|s| s.as_array()) {
                nodes.extend(
                    list.iter()
                        .filter_map(|s| s.as_str())
                        .map(NodeId::parse_display),
                );
            }
            if nodes.is_empty() {
                return Err(Error::BadRequest(
                    "missing \"sid\" in the action value".into(),
                ));
            }
            let flag = |k: &str| v.get(k).and_then(|b| b.as_bool()).unwrap_or(false);
            let lreq = LifecycleRequest {
                op,
                nodes,
                no_rebalance: flag("skip_rebalance"),
                rm_user_data: flag("rm_user_data"),
                dry_run: false,
            };
            let c = gw.cluster.client(token).await?;
            let reply = c.lifecycle(lreq).await.map_err(|e| match e {
                shoal_actors::Error::Busy(m) => Error::Conflict(m),
                other => Error::Cluster(other),
            })?;
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(body::full(reply.rebalance_id.unwrap_or_default()))
                .expect("valid response"))
        }
        other => Err(Error::NotImplemented(format!("{other} /v1/cluster"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_by_generation() {
        let st = RebalanceStatus {
            id: "g7".into(),
            state: "running".into(),
            started: Some(100),
            ..Default::default()
        };
        let v = job_view(Some(&st), "g7").unwrap();
        assert!(v.running);
        let v = job_view(Some(&st), "").unwrap();
        assert_eq!(v.id, "g7");
        let v = job_view(Some(&st), "g5").unwrap();
        assert!(!v.running && v.finished.is_some());
        assert!(job_view(Some(&st), "g8").is_none());
        assert!(job_view(Some(&st), "x").is_none());
        assert!(job_view(None, "g1").is_none());
        let done = RebalanceStatus {
            state: "finished".into(),
            finished: Some(200),
            ..st
        };
        let v = job_view(Some(&done), "g7").unwrap();
        assert!(!v.running);
        assert_eq!(v.finished, Some(200));
    }

    #[test]
    fn ranges() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_range(None, 10).unwrap(), None);
        assert_eq!(parse_range(Some(&h("bytes=0-3")), 10).unwrap(), Some(0..4));
        assert_eq!(parse_range(Some(&h("bytes=-3")), 10).unwrap(), Some(7..10));
        assert_eq!(parse_range(Some(&h("bytes=5-")), 10).unwrap(), Some(5..10));
        assert!(matches!(
            parse_range(Some(&h("bytes=20-30")), 10),
            Err(Error::RangeNotSatisfiable { size: 10 })
        ));
        assert!(matches!(
            parse_range(Some(&h("furlongs=1-2")), 10),
            Err(Error::BadRequest(_))
        ));
    }

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

    #[test]
    fn stopgap_etags_do_not_look_like_md5() {
        let e = stopgap_etag("0123456789abcdef");
        assert!(e.ends_with("-1"));
        assert_eq!(e.len(), 34);
    }
}
