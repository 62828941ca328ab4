//! The S3 operations, each onto the typed client.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use shoal_actors::client::Client;
use shoal_actors::types::object::{ObjAttrs, ObjMeta};

use crate::Gateway;
use crate::data;
use crate::error::Error;
use crate::native::{HIDDEN_PREFIX, visible_page};
use crate::stream;

use super::ActAs;
use super::listing::*;
use super::multipart::*;

pub(super) struct ShoalS3 {
    pub(super) gw: Weak<Gateway>,
}

pub(super) fn token<T>(req: &S3Request<T>) -> Option<String> {
    req.extensions.get::<ActAs>().and_then(|a| a.0.clone())
}

impl ShoalS3 {
    fn gw(&self) -> S3Result<Arc<Gateway>> {
        self.gw
            .upgrade()
            .ok_or_else(|| s3_error!(ServiceUnavailable, "the gateway is stopping"))
    }
}

pub(super) fn s3err(e: Error) -> S3Error {
    e.to_s3()
}

pub(super) fn cl(e: shoal_actors::Error) -> S3Error {
    Error::Cluster(e).to_s3()
}

pub(super) fn no_such_bucket(b: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchBucket,
        format!("The specified bucket does not exist: {b}"),
    )
}

pub(super) fn check_user_key(key: &str) -> S3Result<()> {
    if key.starts_with(HIDDEN_PREFIX) {
        return Err(s3_error!(
            InvalidArgument,
            "object names under {HIDDEN_PREFIX} are reserved"
        ));
    }
    shoal_actors::logic::names::validate_object(key).map_err(|e| s3_error!(InvalidArgument, "{e}"))
}

/// Names of multipart uploads in progress: not objects of the bucket, so no client reads,
/// copies or deletes them as such (a delete would abandon the upload's parts).
fn hidden(key: &str) -> bool {
    key.starts_with(HIDDEN_PREFIX)
}

/// What a read of a hidden name answers: as for any name that is not there.
fn no_such_key(key: &str) -> s3s::S3Error {
    s3_error!(NoSuchKey, "object {key} does not exist")
}

/// Conditional writes (`If-Match`, `If-None-Match` on a put or a complete) need the check and
/// the write to be one step at the owner, which the cluster does not offer: refused, rather
/// than the condition ignored and the write done anyway.
fn refuse_conditional_write(if_match: bool, if_none_match: bool) -> S3Result<()> {
    if if_match || if_none_match {
        return Err(s3_error!(
            NotImplemented,
            "conditional writes (If-Match, If-None-Match) are not supported"
        ));
    }
    Ok(())
}

pub(super) fn timestamp_ms(ms: u64) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

pub(super) fn etag_of(meta: &ObjMeta) -> ETag {
    ETag::Strong(data::etag(meta))
}

/// What an S3 writer attaches to an object: its content type and `x-amz-meta-*` (by lower-case
/// name, as S3 keeps them).
pub(super) fn attrs_from(content_type: Option<&str>, metadata: Option<&Metadata>) -> ObjAttrs {
    ObjAttrs {
        content_type: content_type.map(str::to_string),
        user_meta: metadata
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// The content type an object is served with.
pub(super) fn content_type_of(meta: &ObjMeta) -> ContentType {
    meta.attrs
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".to_string())
}

/// The user metadata an object is served with (`x-amz-meta-*`).
pub(super) fn metadata_of(meta: &ObjMeta) -> Option<Metadata> {
    (!meta.attrs.user_meta.is_empty()).then(|| {
        meta.attrs
            .user_meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// Checks `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`.
pub(super) fn preconditions(
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
pub(super) fn cond_matches(c: &ETagCondition, etag: &ETag) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag.value(),
    }
}

pub(super) async fn bucket_exists(c: &Client, bucket: &str) -> S3Result<()> {
    let names = c.list_buckets().await.map_err(cl)?;
    if names.iter().any(|n| n == bucket) {
        Ok(())
    } else {
        Err(no_such_bucket(bucket))
    }
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
        refuse_conditional_write(input.if_match.is_some(), input.if_none_match.is_some())?;
        let size = match input.content_length {
            Some(n) if n >= 0 => n as u64,
            _ => return Err(s3_error!(MissingContentLength)),
        };
        let expect = match &input.content_md5 {
            Some(m) => Some(stream::content_md5(m).ok_or_else(|| s3_error!(InvalidDigest))?),
            None => None,
        };
        let attrs = attrs_from(input.content_type.as_deref(), input.metadata.as_ref());
        let body = input.body.unwrap_or_else(|| {
            s3s::dto::StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>())
        });
        let req = data::PutReq {
            expect,
            ..data::PutReq::new(&input.bucket, &input.key, size, attrs)
        };
        let put = data::put(&gw, tok, req, body).await.map_err(s3err)?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(stream::hex(&put.md5))),
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
        if hidden(&i.key) {
            return Err(no_such_key(&i.key));
        }
        let o = data::open(&gw, tok, &i.bucket, &i.key, i.range.as_ref())
            .await
            .map_err(s3err)?;
        preconditions(
            &o.meta,
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        let len = o.len();
        let out = GetObjectOutput {
            content_length: Some(len as i64),
            content_range: o.range.as_ref().map(|r| {
                format!(
                    "bytes {}-{}/{}",
                    r.start,
                    r.end.saturating_sub(1),
                    o.meta.size
                )
            }),
            e_tag: Some(etag_of(&o.meta)),
            last_modified: Some(timestamp_ms(o.meta.mtime)),
            accept_ranges: Some("bytes".into()),
            content_type: Some(
                i.response_content_type
                    .clone()
                    .unwrap_or_else(|| content_type_of(&o.meta)),
            ),
            metadata: metadata_of(&o.meta),
            body: Some(match data::serve(o.body).await.map_err(s3err)? {
                data::Served::Whole(b) => StreamingBlob::from(s3s::Body::from(b)),
                data::Served::Streamed(b) => StreamingBlob::wrap(data::body_stream(*b)),
            }),
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
        if hidden(&i.key) {
            return Err(no_such_key(&i.key));
        }
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
            content_type: Some(content_type_of(&meta)),
            metadata: metadata_of(&meta),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let gw = self.gw()?;
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        if hidden(&k) {
            // Not there, as far as S3 goes: deleting it succeeds and changes nothing.
            return Ok(S3Response::new(DeleteObjectOutput::default()));
        }
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
            let res = match hidden(&o.key) {
                true => Ok(()),
                false => c.delete(bucket, &o.key).await,
            };
            match res {
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
        if hidden(&sk) {
            return Err(no_such_key(&sk));
        }
        let src = data::open(&gw, tok.clone(), &sb, &sk, None)
            .await
            .map_err(s3err)?;
        let meta = &src.meta;
        preconditions(
            meta,
            i.copy_source_if_match.as_ref(),
            i.copy_source_if_none_match.as_ref(),
            i.copy_source_if_modified_since.as_ref(),
            i.copy_source_if_unmodified_since.as_ref(),
        )
        .map_err(|e| match e.code() {
            // A copy's failed conditions are 412, whichever they were.
            S3ErrorCode::NotModified => s3_error!(PreconditionFailed),
            _ => e,
        })?;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let mut attrs = if replace {
            attrs_from(i.content_type.as_deref(), i.metadata.as_ref())
        } else {
            ObjAttrs {
                content_type: meta.attrs.content_type.clone(),
                user_meta: meta.attrs.user_meta.clone(),
                ..Default::default()
            }
        };
        // The same bytes: the same MD5. A multipart source has none; a copy small enough to
        // be read whole gets one computed, a larger one keeps the source's ETag.
        attrs.md5 = meta.attrs.md5.clone();
        if attrs.md5.is_none() && meta.size > data::BUFFER_MAX {
            attrs.etag = meta.attrs.etag.clone();
        }
        let size = meta.size;
        let body = Box::pin(data::body_stream(src.body));
        let req = data::PutReq::new(&i.bucket, &i.key, size, attrs.clone());
        let put = data::put(&gw, tok, req, body)
            .await
            .map_err(|e| s3err(e.into_source_error()))?;
        let etag = attrs
            .etag
            .or(attrs.md5)
            .unwrap_or_else(|| stream::hex(&put.md5));
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(etag)),
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
        let attrs = attrs_from(i.content_type.as_deref(), i.metadata.as_ref());
        // Checked as the object will carry them (with its ETag, `md5-of-md5s-N`): refused now
        // rather than after every part was sent.
        ObjAttrs {
            etag: Some("0".repeat(32 + 6)),
            ..attrs.clone()
        }
        .check()
        .map_err(|m| s3_error!(InvalidArgument, "{m}"))?;
        let meta = serde_json::to_vec(&UploadMeta {
            key: i.key.clone(),
            initiated_ms: shoal_actors::types::unix_ms(),
            content_type: attrs.content_type,
            user_meta: attrs.user_meta,
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
        let part = format!("{dir}d{:05}.{}", i.part_number, random_id());
        let body = i.body.unwrap_or_else(|| {
            s3s::dto::StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>())
        });
        let req = data::PutReq {
            expect,
            store_md5: false,
            ..data::PutReq::new(&i.bucket, &part, size, ObjAttrs::default())
        };
        let put = data::put(&gw, tok, req, body).await.map_err(s3err)?;
        let ptr = PartPtr {
            data: part,
            md5: stream::hex(&put.md5),
            size,
            mtime_ms: shoal_actors::types::unix_ms(),
        };
        let b = serde_json::to_vec(&ptr).map_err(|e| s3_error!(InternalError, "{e}"))?;
        let pointer = format!("{dir}m{:05}", i.part_number);
        c.put_bytes(&i.bucket, &pointer, &b).await.map_err(cl)?;
        part_landed(&c, &i.bucket, &i.upload_id, [&ptr.data, &pointer]).await?;
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
        if hidden(&sk) {
            return Err(no_such_key(&sk));
        }
        let range = match i.copy_source_range.as_deref() {
            Some(r) => Some(
                Range::parse(r)
                    .map_err(|_| s3_error!(InvalidArgument, "bad x-amz-copy-source-range"))?,
            ),
            None => None,
        };
        let src = data::open(&gw, tok.clone(), &sb, &sk, range.as_ref())
            .await
            .map_err(s3err)?;
        if let Some(m) = &i.copy_source_if_match
            && !cond_matches(m, &etag_of(&src.meta))
        {
            return Err(s3_error!(PreconditionFailed));
        }
        let size = src.len();
        let dir = upload_dir(&i.upload_id);
        let part = format!("{dir}d{:05}.{}", i.part_number, random_id());
        let body = Box::pin(data::body_stream(src.body));
        let req = data::PutReq {
            store_md5: false,
            ..data::PutReq::new(&i.bucket, &part, size, ObjAttrs::default())
        };
        let put = data::put(&gw, tok, req, body)
            .await
            .map_err(|e| s3err(e.into_source_error()))?;
        let ptr = PartPtr {
            data: part,
            md5: stream::hex(&put.md5),
            size,
            mtime_ms: shoal_actors::types::unix_ms(),
        };
        let b = serde_json::to_vec(&ptr).map_err(|e| s3_error!(InternalError, "{e}"))?;
        let pointer = format!("{dir}m{:05}", i.part_number);
        c.put_bytes(&i.bucket, &pointer, &b).await.map_err(cl)?;
        part_landed(&c, &i.bucket, &i.upload_id, [&ptr.data, &pointer]).await?;
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
        refuse_conditional_write(i.if_match.is_some(), i.if_none_match.is_some())?;
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
        let attrs = ObjAttrs {
            etag: Some(etag.clone()),
            content_type: meta.content_type,
            user_meta: meta.user_meta,
            ..Default::default()
        };
        let body = Box::pin(data::concat(c.clone(), i.bucket.clone(), names));
        let req = data::PutReq {
            // The ETag is known (the MD5 of the part MD5s): nothing to gain from reading the
            // parts whole first.
            store_md5: false,
            ..data::PutReq::new(&i.bucket, &i.key, total, attrs)
        };
        data::put(&gw, tok, req, body)
            .await
            .map_err(|e| s3err(e.into_source_error()))?;
        // The object is stored: that is the answer. Parts left by a cleanup that failed
        // midway keep the upload listed (its record goes last), to be aborted later.
        if let Err(e) = remove_upload(&c, &i.bucket, &i.upload_id).await {
            tracing::warn!(bucket = %i.bucket, upload = %i.upload_id, error = ?e,
                "completed upload not cleaned up: abort it to free its parts");
        }
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
        // Only the uploads' records are kept, not the names of all their parts.
        let records = names_where(&c, &i.bucket, HIDDEN_PREFIX, |e| e.name.ends_with("/meta"));
        for e in records.await? {
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
        // In key order, then upload ID; a page starts after the markers it was given.
        uploads.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        if let Some(km) = i.key_marker.as_deref() {
            let um = i.upload_id_marker.as_deref().unwrap_or_default();
            uploads.retain(|u| {
                let (k, id) = (u.key.as_deref().unwrap_or_default(), u.upload_id.as_deref());
                k > km || (k == km && !um.is_empty() && id.unwrap_or_default() > um)
            });
        }
        let truncated = uploads.len() > max;
        uploads.truncate(max);
        let (next_key, next_id) = match uploads.last().filter(|_| truncated) {
            Some(u) => (u.key.clone(), u.upload_id.clone()),
            None => (None, None),
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: i.prefix,
            key_marker: i.key_marker,
            upload_id_marker: i.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}
