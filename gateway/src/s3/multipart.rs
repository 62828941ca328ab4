//! Multipart uploads.

use std::collections::BTreeMap;

use s3s::{S3Result, s3_error};
use serde::{Deserialize, Serialize};
use shoal_actors::client::Client;
use shoal_actors::types::object::ObjEntry;

use crate::native::HIDDEN_PREFIX;

use super::listing::LIST_BATCH;
use super::ops::*;

/// Reads a small object whole (multipart bookkeeping).
pub(super) async fn get_small(
    c: &Client,
    bucket: &str,
    object: &str,
) -> shoal_actors::Result<Vec<u8>> {
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
pub(super) struct UploadMeta {
    pub(super) key: String,
    pub(super) initiated_ms: u64,
    /// What CreateMultipartUpload said the object is: kept with it once complete.
    #[serde(default)]
    pub(super) content_type: Option<String>,
    #[serde(default)]
    pub(super) user_meta: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct PartPtr {
    pub(super) data: String,
    pub(super) md5: String,
    pub(super) size: u64,
    pub(super) mtime_ms: u64,
}

pub(super) fn upload_dir(upload_id: &str) -> String {
    format!("{HIDDEN_PREFIX}{upload_id}/")
}

pub(super) fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub(super) async fn upload_meta(c: &Client, bucket: &str, upload_id: &str) -> S3Result<UploadMeta> {
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
pub(super) async fn all_names(c: &Client, bucket: &str, prefix: &str) -> S3Result<Vec<ObjEntry>> {
    names_where(c, bucket, prefix, |_| true).await
}

/// The listed names under `prefix` that `keep` keeps, page by page: memory for those only.
pub(super) async fn names_where(
    c: &Client,
    bucket: &str,
    prefix: &str,
    keep: impl Fn(&ObjEntry) -> bool,
) -> S3Result<Vec<ObjEntry>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, next) =
            crate::cluster::list_objects_page(c, bucket, prefix, after.as_deref(), LIST_BATCH)
                .await
                .map_err(s3err)?;
        out.extend(page.into_iter().filter(&keep));
        match next {
            None => return Ok(out),
            n => after = n,
        }
    }
}

pub(super) async fn part_ptrs(
    c: &Client,
    bucket: &str,
    upload_id: &str,
) -> S3Result<BTreeMap<i32, PartPtr>> {
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

pub(super) async fn remove_upload(c: &Client, bucket: &str, upload_id: &str) -> S3Result<()> {
    // The meta object last: an upload is listed until all of it is gone.
    let dir = upload_dir(upload_id);
    let meta = format!("{dir}meta");
    remove_all(c, bucket, &dir, &meta).await?;
    match c.delete(bucket, &meta).await {
        Ok(()) | Err(shoal_actors::Error::NotFound(_)) => {}
        Err(e) => return Err(cl(e)),
    }
    // Once more: a part whose upload was under way during the first pass landed after it
    // (a part that lands later finds the record gone and removes itself: `part_landed`).
    remove_all(c, bucket, &dir, &meta).await
}

/// Deletes every object under `dir` but `keep`.
async fn remove_all(c: &Client, bucket: &str, dir: &str, keep: &str) -> S3Result<()> {
    for e in all_names(c, bucket, dir).await? {
        if e.name != keep {
            match c.delete(bucket, &e.name).await {
                Ok(()) | Err(shoal_actors::Error::NotFound(_)) => {}
                Err(e) => return Err(cl(e)),
            }
        }
    }
    Ok(())
}

/// After a part's data and pointer are stored: if its upload was aborted or completed
/// meanwhile, they would be left behind unseen, so they go, and the part is refused.
pub(super) async fn part_landed(
    c: &Client,
    bucket: &str,
    upload_id: &str,
    names: [&str; 2],
) -> S3Result<()> {
    match upload_meta(c, bucket, upload_id).await {
        Err(e) if *e.code() == s3s::S3ErrorCode::NoSuchUpload => {
            for n in names {
                let _ = c.delete(bucket, n).await;
            }
            Err(e)
        }
        _ => Ok(()),
    }
}

pub(super) fn random_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..24)
        .map(|_| {
            let i = rng.random_range(0..36u8);
            (if i < 10 { b'0' + i } else { b'a' + i - 10 }) as char
        })
        .collect()
}

pub(super) fn strip_quotes(s: &str) -> &str {
    s.trim().trim_matches('"')
}
