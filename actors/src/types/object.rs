//! Objects as they cross boundaries: their key, their stored metadata, listing entries and pages.

use serde::{Deserialize, Serialize};

/// Object name within a bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjKey {
    pub bucket: String,
    pub object: String,
}

impl ObjKey {
    pub fn new(bucket: impl Into<String>, object: impl Into<String>) -> Self {
        ObjKey {
            bucket: bucket.into(),
            object: object.into(),
        }
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.bucket, self.object)
    }
}

/// What a client may attach to an object when it writes it (S3 and AIStore clients do): kept
/// with the object and returned with it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjAttrs {
    /// MD5 of the content, lower-case hex (S3's ETag for a single PUT).
    pub md5: Option<String>,
    /// The ETag when it is not the MD5 (a multipart upload's `md5-of-md5s-N`).
    pub etag: Option<String>,
    pub content_type: Option<String>,
    /// User metadata (S3 `x-amz-meta-*`), by lower-case name.
    pub user_meta: std::collections::BTreeMap<String, String>,
}

impl ObjAttrs {
    /// Most bytes of attributes an object may carry: they live in every object file's trailer.
    pub const MAX_BYTES: usize = 16 * 1024;

    /// Bounds what a writer may attach (targets check every put; the gateway checks a
    /// multipart upload's at its start, not after its parts).
    pub fn check(&self) -> Result<(), String> {
        let size: usize = self.md5.as_ref().map_or(0, |s| s.len())
            + self.etag.as_ref().map_or(0, |s| s.len())
            + self.content_type.as_ref().map_or(0, |s| s.len())
            + self
                .user_meta
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if size > Self::MAX_BYTES {
            return Err(format!(
                "object attributes of {size} bytes: at most 16 KiB (user metadata, content type, ETag)"
            ));
        }
        Ok(())
    }
}

/// Metadata stored with every object (in its file's trailer).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjMeta {
    pub bucket: String,
    pub object: String,
    pub size: u64,
    /// xxh3-64 of the content, lower-case hex.
    pub checksum: String,
    /// Write stamp: nanoseconds since the epoch at the first write, made unique and monotonic
    /// per node. The newest write wins when a rebalance brings an older copy.
    pub version: u64,
    /// Unix milliseconds of the write.
    pub mtime: u64,
    /// What the writer attached (absent in files written before attributes existed).
    #[serde(default)]
    pub attrs: ObjAttrs,
}

impl ObjMeta {
    pub fn key(&self) -> ObjKey {
        ObjKey::new(&self.bucket, &self.object)
    }
}

/// One entry of an object listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjEntry {
    pub name: String,
    pub size: u64,
    pub checksum: String,
    pub version: u64,
    /// Unix milliseconds of the write.
    #[serde(default)]
    pub mtime: u64,
    /// The S3 ETag (the MD5, or a multipart upload's), when the writer gave one.
    #[serde(default)]
    pub etag: Option<String>,
    /// A delete record, not a copy: only in a target's own listing, so that the router can
    /// tell that a copy elsewhere (stranded on a previous owner) is older than a delete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl ObjEntry {
    pub fn of(m: &ObjMeta) -> Self {
        ObjEntry {
            name: m.object.clone(),
            size: m.size,
            checksum: m.checksum.clone(),
            version: m.version,
            mtime: m.mtime,
            etag: m.attrs.etag.clone().or_else(|| m.attrs.md5.clone()),
            deleted: false,
        }
    }

    /// A delete record's entry.
    pub fn of_tomb(t: &Tomb) -> Self {
        ObjEntry {
            name: t.object.clone(),
            size: 0,
            checksum: String::new(),
            version: t.version,
            mtime: 0,
            etag: None,
            deleted: true,
        }
    }

    /// Whether this entry (a copy or a delete) beats `other` of the same name: the higher
    /// stamp; on a tie the delete, as for reads.
    pub fn newer_than(&self, other: &ObjEntry) -> bool {
        (self.version, self.deleted) > (other.version, other.deleted)
    }
}

/// One page of a listing, in name order. `next` is where the following page starts (pass it as
/// `start_after`); `None` on the last page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjPage {
    pub entries: Vec<ObjEntry>,
    pub next: Option<String>,
    /// A target's own page only: a rebalance may be moving objects to or from it (the router
    /// then reads every target again, see `list_all`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub settling: bool,
    /// A target's own page only: the version of the cluster map it listed under. A router
    /// whose map is older may not know every target that holds objects (0: not said).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub smap_version: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Largest page a listing returns, whatever was asked: keeps every reply far below the frame
/// limit (1,024-byte names × 10,000 ≈ 10 MiB at most).
pub const MAX_PAGE: usize = 10_000;

/// A delete, remembered durably by the object's owner (and moved with its ownership by the
/// rebalance), so that no older copy — in flight, or on a target that was away — brings the
/// object back. Kept for a number of rebalance generations after the delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tomb {
    pub bucket: String,
    pub object: String,
    /// The delete's stamp: copies with a version up to it are deleted.
    pub version: u64,
    /// The rebalance generation (RMD version) current when the object was deleted.
    pub generation: u64,
}

/// The newest thing a target knows of an object: a copy or a delete, with its stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub version: u64,
    pub deleted: bool,
}
