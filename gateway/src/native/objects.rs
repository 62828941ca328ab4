//! Objects: PUT, GET (with ranges), HEAD, DELETE; proxies redirect data to the owner.

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};
use shoal_actors::types::object::{ObjAttrs, ObjMeta};
use shoal_actors::types::smap::Role;

use crate::Gateway;
use crate::body::{self, GwBody};
use crate::data;
use crate::error::{Error, Result};
use crate::stream;

use super::*;

/// Headers AIStore's clients read about an object (and S3's `ETag`, `Last-Modified` and
/// `Content-Type`, which AIStore sends too).
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
        .header(header::ETAG, format!("\"{}\"", data::etag(meta)))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_TYPE,
            meta.attrs
                .content_type
                .as_deref()
                .and_then(|t| HeaderValue::from_str(t).ok())
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        );
    if let Some(md) = custom_md(meta) {
        r = r.header("Ais-Custom-Md", md);
    }
    if let Some(lm) = last_modified(meta.mtime) {
        r = r.header(header::LAST_MODIFIED, lm);
    }
    r
}

/// AIStore's `ais-custom-md` (`key=value` pairs, comma-separated, as its SDK parses them): the
/// user metadata (S3's `x-amz-meta-*`). Pairs that cannot be written so are left out.
fn custom_md(meta: &ObjMeta) -> Option<HeaderValue> {
    let pairs: Vec<String> = meta
        .attrs
        .user_meta
        .iter()
        .filter(|(k, v)| !k.contains([',', '=']) && !v.contains(','))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    HeaderValue::from_str(&pairs.join(",")).ok()
}

pub fn last_modified(mtime_ms: u64) -> Option<String> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(mtime_ms);
    Some(httpdate::fmt_http_date(t))
}

/// Parses a `Range` header (checked against the size once the object is open).
pub fn parse_range(h: Option<&HeaderValue>) -> Result<Option<s3s::dto::Range>> {
    let Some(h) = h else { return Ok(None) };
    let s = h
        .to_str()
        .map_err(|_| Error::BadRequest("Range is not ASCII".into()))?;
    s3s::dto::Range::parse(s)
        .map(Some)
        .map_err(|_| Error::BadRequest(format!("bad Range {s:?}")))
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
    if object.starts_with(HIDDEN_PREFIX) {
        // S3 multipart uploads in progress live there: not objects of the bucket.
        return Err(match method {
            Method::PUT => {
                Error::BadRequest(format!("object names under {HIDDEN_PREFIX} are reserved"))
            }
            _ => Error::Cluster(shoal_actors::Error::NotFound(format!(
                "object {bucket}/{object} does not exist"
            ))),
        });
    }

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
            let range = parse_range(req.headers().get(header::RANGE))?;
            let o = data::open(gw, token, bucket, object, range.as_ref())
                .await
                .map_err(|e| in_context(e, bucket, Some(object)))?;
            let status = match o.range {
                Some(_) => StatusCode::PARTIAL_CONTENT,
                None => StatusCode::OK,
            };
            let mut r = object_headers(Response::builder().status(status), &o.meta)
                .header(header::CONTENT_LENGTH, o.len());
            if let Some(span) = &o.range {
                r = r.header(
                    header::CONTENT_RANGE,
                    format!(
                        "bytes {}-{}/{}",
                        span.start,
                        span.end.saturating_sub(1),
                        o.meta.size
                    ),
                );
            }
            let b = match data::serve(o.body)
                .await
                .map_err(|e| in_context(e, bucket, Some(object)))?
            {
                data::Served::Whole(b) => body::full(b),
                data::Served::Streamed(b) => body::stream(data::body_stream(*b)),
            };
            Ok(r.body(b).expect("valid response"))
        }
        Method::PUT => {
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
            let attrs = ObjAttrs {
                content_type: req
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                ..Default::default()
            };
            let body = http_body_util::BodyDataStream::new(req.into_body());
            let req = data::PutReq {
                expect,
                ..data::PutReq::new(bucket, object, size, attrs)
            };
            let put = data::put(gw, token, req, body)
                .await
                .map_err(|e| in_context(e, bucket, None))?;
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header("Ais-Checksum-Type", CKSUM_TYPE)
                .header("Ais-Checksum-Value", put.checksum)
                .header(header::ETAG, format!("\"{}\"", stream::hex(&put.md5)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use s3s::dto::Range as R;
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(parse_range(None).unwrap().is_none());
        assert!(matches!(
            parse_range(Some(&h("bytes=0-3"))).unwrap(),
            Some(R::Int {
                first: 0,
                last: Some(3)
            })
        ));
        assert!(matches!(
            parse_range(Some(&h("bytes=-3"))).unwrap(),
            Some(R::Suffix { length: 3 })
        ));
        assert!(matches!(
            parse_range(Some(&h("furlongs=1-2"))),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn custom_metadata_as_aistore_writes_it() {
        let mut m = ObjMeta::default();
        assert!(custom_md(&m).is_none());
        m.attrs.user_meta.insert("colour".into(), "teal".into());
        m.attrs.user_meta.insert("md5chksum".into(), "abc=".into());
        m.attrs.user_meta.insert("odd,key".into(), "x".into());
        assert_eq!(custom_md(&m).unwrap(), "colour=teal,md5chksum=abc=");
    }
}
