//! Cross-implementation check: Shoal's placement against vectors produced by NVIDIA AIStore's
//! own Python SDK (`fixtures/gen_hrw_vectors.py` writes `fixtures/hrw_vectors.json`).

use serde_json::Value;
use shoal_actors::logic::placement::{digest, owner, uname};
use shoal_actors::types::smap::{Node, NodeId, Role, Smap};

fn u64_of(v: &Value, what: &str) -> u64 {
    match v {
        Value::String(s) => s
            .parse()
            .unwrap_or_else(|e| panic!("{what}: bad u64 {s:?}: {e}")),
        Value::Number(n) => n
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: not a u64: {n}")),
        other => panic!("{what}: expected a u64, got {other}"),
    }
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

#[test]
fn placement_matches_aistore_sdk_vectors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/hrw_vectors.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let doc: Value = serde_json::from_str(&text).expect("hrw_vectors.json is not valid JSON");
    assert_eq!(
        doc["seed"].as_u64(),
        Some(1103515245),
        "xxh64 seed recorded in {path}"
    );
    let cases = doc["cases"].as_array().expect("\"cases\" must be an array");
    assert!(
        cases.len() >= 100,
        "only {} cases in {path}; expected at least 100",
        cases.len()
    );

    for (i, case) in cases.iter().enumerate() {
        let bucket = str_of(&case["bucket"], "bucket");
        let object = str_of(&case["object"], "object");
        let name = format!("case #{i} (bucket {bucket:?}, object {object:?})");
        let want_uname = str_of(&case["uname"], "uname");
        let targets: Vec<String> = case["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: targets must be an array"))
            .iter()
            .map(|t| str_of(t, "target id").to_owned())
            .collect();

        assert_eq!(uname(bucket, object), want_uname, "{name}: uname");
        let want = u64_of(&case["uname_digest"], "uname_digest");
        assert_eq!(
            digest(want_uname),
            want,
            "{name}: digest of uname {want_uname:?}"
        );
        for t in &targets {
            let want = u64_of(&case["target_digests"][t.as_str()], "target digest");
            assert_eq!(digest(t), want, "{name}: digest of target id {t:?}");
        }

        let mut smap = Smap::bootstrap(Node::new(
            NodeId("prxp8080".into()),
            Role::Proxy,
            "127.0.0.1:8080".into(),
        ));
        for t in &targets {
            smap.insert(Node::new(
                NodeId(t.clone()),
                Role::Target,
                "127.0.0.1:1".into(),
            ));
        }
        let got = owner(&smap, bucket, object).unwrap_or_else(|| panic!("{name}: no owner"));
        let want_owner = str_of(&case["owner"], "owner");
        assert_eq!(got.id.0, want_owner, "{name}: owner among {targets:?}");
    }
}
