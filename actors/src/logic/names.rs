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

/// An object name as a file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encoded {
    /// The name itself, escaped: unique per name.
    Plain(String),
    /// `~<hash hex>` for a name too long to escape: names may share it, so readers compare the
    /// real name in the trailer and writers take the next free slot (`~<hash>.1`…).
    Hashed(String),
}

/// [`encode_name`] with the hash of long names given (tests make them collide).
pub fn encode_name_with(name: &str, hash: fn(&[u8]) -> u64) -> Encoded {
    let e = escape(name);
    if e.len() > 200 || e == "." || e == ".." || e.starts_with('.') {
        Encoded::Hashed(format!("~{:016x}", hash(name.as_bytes())))
    } else {
        Encoded::Plain(e)
    }
}

/// Encodes an object name as one file name: `[A-Za-z0-9._-]` kept, everything else `%XX`; names
/// whose encoding would be too long for a file name become `~<xxh3 hex>` (the full name lives in
/// the trailer, and readers compare it).
pub fn encode_name(name: &str) -> String {
    match encode_name_with(name, xxhash_rust::xxh3::xxh3_64) {
        Encoded::Plain(s) | Encoded::Hashed(s) => s,
    }
}

/// The object name a file name stands for, when the file name says it (an escaped name);
/// `None` for a hashed long name (its trailer says) or anything else.
pub fn decode_plain(file: &str) -> Option<String> {
    if file.starts_with('~') || file.starts_with('.') {
        return None;
    }
    let b = file.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = file.get(i + 1..i + 3)?;
                if hex.bytes().any(|c| c.is_ascii_lowercase()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_' => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
    fn plain_file_names_decode_to_their_object_names() {
        for name in [
            "plain-name_1.txt",
            "a/b c",
            "dir/ünï cödé/%41",
            "x.",
            "a%2Fb",
        ] {
            assert_eq!(decode_plain(&encode_name(name)).as_deref(), Some(name));
        }
        // Hashed, temporary and foreign names say nothing.
        assert_eq!(decode_plain(&encode_name(&"x/".repeat(300))), None);
        for bad in [".tmp.1", "~0123", "a%2", "a%zz", "a%2f", "a b", "%FF%FE"] {
            assert_eq!(decode_plain(bad), None, "{bad:?}");
        }
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
