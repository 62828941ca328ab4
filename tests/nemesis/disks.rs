//! The quiet-point disk check, as a pure function of what was read and what is on disk: an
//! object read back exactly once, on its HRW target and mountpath, with the content read; an
//! object read as absent nowhere; no name that no client wrote.

use std::collections::BTreeMap;

use super::cluster::ObjFile;
use super::history::{Outcome, short};

/// One broken rule of the governing rule (DESIGN §8) on one object.
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: &'static str,
    pub key: String,
    pub detail: String,
}

/// `read`: the outcome of the quiet read of each key; `files`: every object file on every
/// target, by name; `proper`: where a name belongs under the current map (target, mountpath).
pub fn compare(
    keys: &[String],
    read: &BTreeMap<String, Outcome>,
    files: &BTreeMap<String, Vec<ObjFile>>,
    proper: &dyn Fn(&str) -> Option<(String, usize)>,
    map_version: u64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |kind, key: &str, detail: String| {
        out.push(Finding {
            kind,
            key: key.to_string(),
            detail,
        })
    };
    for key in keys {
        let copies = files.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let where_: Vec<String> = copies
            .iter()
            .map(|c| format!("{}/mp{} #{}", c.node, c.mountpath, short(&c.checksum)))
            .collect();
        match read.get(key) {
            Some(Outcome::Value(sum)) => {
                if copies.len() != 1 {
                    push(
                        "duplicate",
                        key,
                        format!("{} copies on disk when quiet: {where_:?}", copies.len()),
                    );
                }
                let want = proper(key);
                for c in copies {
                    if Some((c.node.clone(), c.mountpath)) != want {
                        push(
                            "misplaced",
                            key,
                            format!(
                                "copy on {}/mp{}, proper location {want:?} (map v{map_version})",
                                c.node, c.mountpath
                            ),
                        );
                    }
                }
                if !copies.iter().any(|c| &c.checksum == sum) {
                    push(
                        "disk-mismatch",
                        key,
                        format!("read #{} but the disks hold {where_:?}", short(sum)),
                    );
                }
            }
            Some(Outcome::Absent) if !copies.is_empty() => {
                push(
                    "leftover",
                    key,
                    format!("read as not found, yet on disk: {where_:?}"),
                );
            }
            // Not read (the read failed: reported on its own) or absent and nowhere.
            _ => {}
        }
    }
    for (name, copies) in files {
        if !keys.contains(name) {
            push(
                "unknown-object",
                name,
                format!("no client wrote this name; on {} target(s)", copies.len()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(node: &str, mp: usize, sum: &str) -> ObjFile {
        ObjFile {
            node: node.into(),
            mountpath: mp,
            checksum: sum.into(),
            version: 1,
        }
    }

    fn kinds(read: &[(&str, Outcome)], files: &[(&str, ObjFile)]) -> Vec<(&'static str, String)> {
        let keys: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let read = read
            .iter()
            .map(|(k, o)| (k.to_string(), o.clone()))
            .collect();
        let mut by: BTreeMap<String, Vec<ObjFile>> = BTreeMap::new();
        for (k, f) in files {
            by.entry(k.to_string()).or_default().push(f.clone());
        }
        // "a" belongs on t1/mp0, "b" on t2/mp1.
        let proper = |k: &str| match k {
            "a" => Some(("t1".to_string(), 0)),
            _ => Some(("t2".to_string(), 1)),
        };
        compare(&keys, &read, &by, &proper, 7)
            .into_iter()
            .map(|f| (f.kind, f.key))
            .collect()
    }

    #[test]
    fn a_proper_cluster_passes() {
        let v = |s: &str| Outcome::Value(s.into());
        assert!(
            kinds(
                &[("a", v("x")), ("b", Outcome::Absent)],
                &[("a", file("t1", 0, "x"))]
            )
            .is_empty()
        );
    }

    #[test]
    fn each_broken_rule_is_named() {
        let v = |s: &str| Outcome::Value(s.into());
        let k = |s: &'static str, key: &str| (s, key.to_string());
        assert_eq!(
            kinds(
                &[("a", v("x"))],
                &[("a", file("t1", 0, "x")), ("a", file("t3", 0, "x"))]
            ),
            [k("duplicate", "a"), k("misplaced", "a")]
        );
        assert_eq!(
            kinds(&[("a", v("x"))], &[("a", file("t1", 1, "x"))]),
            [k("misplaced", "a")]
        );
        assert_eq!(
            kinds(&[("a", v("x"))], &[("a", file("t1", 0, "y"))]),
            [k("disk-mismatch", "a")]
        );
        assert_eq!(
            kinds(&[("b", Outcome::Absent)], &[("b", file("t2", 1, "x"))]),
            [k("leftover", "b")]
        );
        assert_eq!(
            kinds(&[], &[("zz", file("t2", 1, "x"))]),
            [k("unknown-object", "zz")]
        );
    }
}
