//! S3 listings over the cluster's pages: delimiters and common prefixes, continuation tokens,
//! `encoding-type=url`.

use s3s::dto::*;
use s3s::{S3Result, s3_error};
use shoal_actors::client::Client;
use shoal_actors::types::object::ObjEntry;

use crate::data;
use crate::native::visible_page;

use super::ops::*;

/// Names listed per cluster request while building one S3 listing page.
pub(super) const LIST_BATCH: usize = 1000;

/// Encodes a name for `encoding-type=url` listings: everything but unreserved characters and
/// `/` percent-encoded.
pub(super) fn url_encode(s: &str) -> String {
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
pub(super) fn encode_token(after: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after)
}

pub(super) fn decode_token(t: &str) -> S3Result<String> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "bad continuation token"))
}

/// One S3 listing page: objects and common prefixes in name order, at most `max` of them
/// together, and what to continue after when truncated.
pub(super) struct Listing {
    pub(super) objects: Vec<ObjEntry>,
    pub(super) prefixes: Vec<String>,
    pub(super) next_after: Option<String>,
}

pub(super) async fn list_page(
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

pub(super) fn s3_object(e: ObjEntry, url: bool) -> Object {
    Object {
        e_tag: Some(ETag::Strong(data::entry_etag(&e))),
        last_modified: Some(timestamp_ms(data::entry_mtime_ms(&e))),
        size: Some(e.size as i64),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        key: Some(if url { url_encode(&e.name) } else { e.name }),
        owner: Some(owner()),
        ..Default::default()
    }
}

pub(super) fn owner() -> Owner {
    Owner {
        display_name: Some("shoal".into()),
        id: Some("shoal".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_encoding() {
        let t = encode_token("dir/a b&c");
        assert_eq!(decode_token(&t).unwrap(), "dir/a b&c");
        assert!(decode_token("!!!").is_err());
        assert_eq!(url_encode("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
        use super::super::multipart::valid_upload_id;
        assert!(valid_upload_id("abc123"));
        assert!(!valid_upload_id("../x"));
        assert!(!valid_upload_id(""));
    }
}
