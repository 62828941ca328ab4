//! Objects: PUT, GET (with ranges), HEAD, DELETE; proxies redirect data to the owner.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use shoal_actors::types::object::ObjMeta;
use shoal_actors::types::smap::Role;

use crate::Gateway;
use crate::body::{self, GwBody};
use crate::error::{Error, Result};
use crate::stream;

use super::*;

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

pub(super) async fn objects(
    gw: &Arc<Gateway>,
    req: Req,
    bucket: &str,
    object: &str,
) -> Result<Response<GwBody>> {
    let q = query(&req);
    check_provider(&q)?;
    shoal_actors::logic::names::validate_bucket(bucket).map_err(Error::Cluster)?;
    if object.is_empty() {
        return Err(Error::BadRequest(
            "missing object name: /v1/objects/BUCKET/OBJECT".into(),
        ));
    }
    shoal_actors::logic::names::validate_object(object).map_err(Error::Cluster)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn stopgap_etags_do_not_look_like_md5() {
        let e = stopgap_etag("0123456789abcdef");
        assert!(e.ends_with("-1"));
        assert_eq!(e.len(), 34);
    }
}
