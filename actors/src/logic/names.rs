//! Names that reach the filesystem: bucket and object name rules, and how an object name becomes
//! one file name. Every name that arrives from the network passes through here first.

use crate::error::{Error, Result};

/// Longest object name accepted, bytes.
pub const MAX_NAME: usize = 1024;
/// Longest bucket name accepted, bytes.
pub const MAX_BUCKET: usize = 64;

/// Checks a bucket name: short, and safe as one path component.
pub fn validate_bucket(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_BUCKET
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "invalid bucket name {name:?}: use 1-{MAX_BUCKET} of [A-Za-z0-9._-]"
        )))
    }
}

/// Checks an object name: 1 to [`MAX_NAME`] bytes, no NUL (any other byte is fine: the name is
/// encoded before it touches the filesystem).
pub fn validate_object(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME || name.contains('\0') {
        return Err(Error::BadRequest(format!(
            "invalid object name (1-{MAX_NAME} bytes, no NUL)"
        )));
    }
    Ok(())
}

/// Encodes an object name as one file name: `[A-Za-z0-9._-]` kept, everything else `%XX`; names
/// whose encoding would be too long for a file name become `~<xxh3 hex>` (the full name lives in
/// the trailer, and readers compare it).
pub fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > 200 || out == "." || out == ".." || out.starts_with('.') {
        format!("~{:016x}", xxhash_rust::xxh3::xxh3_64(name.as_bytes()))
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_encode_to_single_components() {
        assert_eq!(encode_name("plain-name_1.txt"), "plain-name_1.txt");
        assert_eq!(encode_name("a/b c"), "a%2Fb%20c");
        assert!(!encode_name("..").contains('/'));
        assert!(encode_name("..").starts_with('~'));
        let long = "x/".repeat(300);
        let e = encode_name(&long);
        assert!(e.starts_with('~') && e.len() < 40);
        assert_ne!(encode_name("a/b"), encode_name("a%2Fb"));
    }

    #[test]
    fn bucket_and_object_rules() {
        for bad in ["", ".", "..", "a/b", "a b", "x\0", &"b".repeat(65)] {
            assert!(validate_bucket(bad).is_err(), "{bad:?}");
        }
        for good in ["data", "a.b-c_d", &"b".repeat(64)] {
            assert!(validate_bucket(good).is_ok(), "{good:?}");
        }
        assert!(validate_object("").is_err());
        assert!(validate_object("a\0b").is_err());
        assert!(validate_object(&"o".repeat(MAX_NAME + 1)).is_err());
        assert!(validate_object("../x").is_ok());
    }
}
