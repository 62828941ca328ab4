//! The local object store of a target: its mountpaths, where each object belongs among them, and
//! the check-then-act operations on object files (install, remove, move, delete, list) made
//! atomic against each other by per-object locks. No network: the data path and the rebalance
//! build on it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::mountpath::Mountpath;
use super::object::{self as store, ObjLocks, TempObject};
use crate::error::{Error, Result};
use crate::logic::names::Encoded;
use crate::logic::placement::{self, MountpathKey};
use crate::types::lifecycle::PlanMove;
use crate::types::object::{MAX_PAGE, ObjEntry, ObjMeta, ObjPage};
use crate::types::smap::{NodeId, Smap};

/// How long a delete is remembered, so an older copy in flight cannot bring the object back.
const TOMBSTONE_TTL: Duration = Duration::from_secs(600);
const TOMBSTONE_MAX: usize = 100_000;

/// What became of an object offered to [`LocalStore::install`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    /// Written durably on its proper mountpath.
    Stored,
    /// A newer copy, or a newer delete, is already here: the offered one is obsolete.
    Superseded,
}

/// Files a hashed long name may occupy (names whose hashes collide take the next one).
pub const NAME_SLOTS: usize = 16;

pub struct LocalStore {
    pub mountpaths: Vec<Arc<Mountpath>>,
    keys: Vec<MountpathKey>,
    /// Hash of names too long for a file name (tests make every one collide).
    long_hash: fn(&[u8]) -> u64,
    locks: ObjLocks,
    /// uname → (delete stamp, when): deletes win over older copies arriving later.
    tombstones: Mutex<HashMap<String, (u64, Instant)>>,
}

impl LocalStore {
    /// Opens (creating) the mountpaths. Half-written objects of a crashed run are garbage: their
    /// writers never acknowledged them.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        Self::open_with_hash(paths, xxhash_rust::xxh3::xxh3_64)
    }

    /// As [`open`](Self::open), with another hash for long names.
    pub fn open_with_hash(paths: &[PathBuf], long_hash: fn(&[u8]) -> u64) -> Result<Self> {
        let mut mountpaths = Vec::new();
        for p in paths {
            std::fs::create_dir_all(p)?;
            let p = p.canonicalize()?;
            let _ = std::fs::remove_dir_all(store::tmp_dir(&p));
            std::fs::create_dir_all(store::tmp_dir(&p))?;
            mountpaths.push(Arc::new(Mountpath::new(p)));
        }
        let keys = mountpaths.iter().map(|m| m.key.clone()).collect();
        Ok(LocalStore {
            mountpaths,
            keys,
            long_hash,
            locks: Default::default(),
            tombstones: Mutex::new(HashMap::new()),
        })
    }

    /// Index of the mountpath that should hold `bucket/object`.
    pub fn mountpath_for(&self, bucket: &str, object: &str) -> usize {
        let d = placement::digest(&placement::uname(bucket, object));
        placement::mountpath_index(&self.keys, d).unwrap_or(0)
    }

    pub fn path_of(&self, mp: usize) -> &Path {
        &self.mountpaths[mp].path
    }

    /// The files `bucket/object` may be in on mountpath `mp`: its encoded name, or — for a name
    /// too long to encode, which becomes a hash — every slot of that hash.
    fn candidates(&self, mp: usize, bucket: &str, object: &str) -> Vec<PathBuf> {
        let dir = store::bucket_dir(&self.mountpaths[mp].path, bucket);
        match crate::logic::names::encode_name_with(object, self.long_hash) {
            Encoded::Plain(n) => vec![dir.join(n)],
            Encoded::Hashed(base) => (0..NAME_SLOTS)
                .map(|k| match k {
                    0 => dir.join(&base),
                    k => dir.join(format!("{base}.{k}")),
                })
                .collect(),
        }
    }

    /// The file of `bucket/object` on mountpath `mp`, if there is one. The real name in the
    /// trailer must match: two long names may share a hash.
    fn locate_on(&self, mp: usize, bucket: &str, object: &str) -> Option<(PathBuf, ObjMeta)> {
        self.candidates(mp, bucket, object)
            .into_iter()
            .find_map(|p| {
                store::read_meta(&p)
                    .ok()
                    .filter(|m| m.bucket == bucket && m.object == object)
                    .map(|m| (p, m))
            })
    }

    /// Where to write `bucket/object` on mountpath `mp`: its own file there, else the first
    /// free slot (a colliding long name never overwrites another object).
    fn dest_on(&self, mp: usize, bucket: &str, object: &str) -> Result<PathBuf> {
        if let Some((p, _)) = self.locate_on(mp, bucket, object) {
            return Ok(p);
        }
        self.candidates(mp, bucket, object)
            .into_iter()
            .find(|p| !p.exists())
            .ok_or_else(|| {
                Error::NoSpace(format!(
                    "{bucket}/{object}: {NAME_SLOTS} other long names share its hash"
                ))
            })
    }

    /// Finds a local copy: the proper mountpath first, then the others (not yet resilvered).
    pub fn find(&self, bucket: &str, object: &str) -> Option<(usize, PathBuf, ObjMeta)> {
        let first = self.mountpath_for(bucket, object);
        let order =
            std::iter::once(first).chain((0..self.mountpaths.len()).filter(|&i| i != first));
        for i in order {
            if let Some((p, m)) = self.locate_on(i, bucket, object) {
                return Some((i, p, m));
            }
        }
        None
    }

    fn tombstone(&self, bucket: &str, object: &str) -> Option<u64> {
        let key = placement::uname(bucket, object);
        let t = self.tombstones.lock().expect("poisoned");
        t.get(&key)
            .filter(|(_, at)| at.elapsed() < TOMBSTONE_TTL)
            .map(|(v, _)| *v)
    }

    fn set_tombstone(&self, bucket: &str, object: &str, version: u64) {
        let mut t = self.tombstones.lock().expect("poisoned");
        if t.len() >= TOMBSTONE_MAX {
            t.retain(|_, (_, at)| at.elapsed() < TOMBSTONE_TTL);
        }
        if t.len() < TOMBSTONE_MAX {
            t.insert(placement::uname(bucket, object), (version, Instant::now()));
        }
    }

    /// Installs a complete temp object on mountpath `dest_mp` unless a newer copy (or a newer
    /// delete) is already here. Older copies on other mountpaths are removed.
    pub async fn install(
        &self,
        meta: &ObjMeta,
        tmp: TempObject,
        dest_mp: usize,
    ) -> Result<Install> {
        let _g = self.locks.lock(&meta.bucket, &meta.object).await;
        if self
            .tombstone(&meta.bucket, &meta.object)
            .is_some_and(|v| v >= meta.version)
        {
            return Ok(Install::Superseded);
        }
        let mut olds = Vec::new();
        for i in 0..self.mountpaths.len() {
            if let Some((p, m)) = self.locate_on(i, &meta.bucket, &meta.object) {
                if m.version >= meta.version {
                    return Ok(Install::Superseded);
                }
                olds.push((i, p, m.size));
            }
        }
        let dest = self.dest_on(dest_mp, &meta.bucket, &meta.object)?;
        tmp.commit(&dest)?;
        self.mountpaths[dest_mp].added(meta.size);
        for (i, p, size) in olds {
            if p != dest {
                let _ = std::fs::remove_file(&p);
            }
            self.mountpaths[i].removed(size);
        }
        Ok(Install::Stored)
    }

    /// Removes the local copy of `meta` if it is still that version (after a peer acked it).
    pub async fn remove_if_version(&self, meta: &ObjMeta) -> Result<bool> {
        let _g = self.locks.lock(&meta.bucket, &meta.object).await;
        for i in 0..self.mountpaths.len() {
            if let Some((p, m)) = self.locate_on(i, &meta.bucket, &meta.object)
                && m.version == meta.version
            {
                std::fs::remove_file(&p)?;
                self.mountpaths[i].removed(m.size);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Moves an object to its proper local mountpath (same filesystem: a rename).
    pub async fn move_local(&self, from: &Path, meta: &ObjMeta, to_mp: usize) -> Result<()> {
        let _g = self.locks.lock(&meta.bucket, &meta.object).await;
        if let Some((_, m)) = self.locate_on(to_mp, &meta.bucket, &meta.object)
            && m.version >= meta.version
        {
            // A newer copy is already in place; the misplaced one is stale.
            let _ = std::fs::remove_file(from);
            return Ok(());
        }
        let dest = self.dest_on(to_mp, &meta.bucket, &meta.object)?;
        let dir = dest
            .parent()
            .ok_or_else(|| Error::BadRequest("object path without a parent".into()))?;
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            if let Some(up) = dir.parent() {
                super::files::sync_dir(up)?;
            }
        }
        if std::fs::rename(from, &dest).is_err() {
            // Different filesystems: copy to a temp file on the destination, make it and its
            // rename durable, and only then remove the source.
            let tmp = store::tmp_dir(&self.mountpaths[to_mp].path)
                .join(format!("mv.{}", store::next_version()));
            std::fs::copy(from, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &dest)?;
            super::files::sync_dir(dir)?;
            std::fs::remove_file(from)?;
        } else {
            super::files::sync_dir(dir)?;
        }
        if let Some(i) = self
            .mountpaths
            .iter()
            .position(|m| from.starts_with(&m.path))
        {
            self.mountpaths[i].removed(meta.size);
        }
        self.mountpaths[to_mp].added(meta.size);
        Ok(())
    }

    /// Deletes every local copy of `bucket/object` and remembers the delete, so a copy still in
    /// flight cannot bring it back. Returns whether a copy was here.
    pub async fn delete(&self, bucket: &str, object: &str, stamp: u64) -> Result<bool> {
        let _g = self.locks.lock(bucket, object).await;
        let mut found = false;
        for i in 0..self.mountpaths.len() {
            if let Some((p, m)) = self.locate_on(i, bucket, object) {
                std::fs::remove_file(&p)?;
                self.mountpaths[i].removed(m.size);
                found = true;
            }
        }
        self.set_tombstone(bucket, object, stamp);
        Ok(found)
    }

    /// One page of this target's objects in `bucket` whose names start with `prefix`, in name
    /// order after `start_after`. Memory holds at most one page of entries.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ObjPage> {
        let dirs: Vec<PathBuf> = self
            .mountpaths
            .iter()
            .map(|m| store::bucket_dir(&m.path, bucket))
            .collect();
        let (bucket, prefix) = (bucket.to_string(), prefix.to_string());
        let after = start_after.map(str::to_string);
        let limit = limit.clamp(1, MAX_PAGE);
        tokio::task::spawn_blocking(move || {
            // The `limit` smallest names after `after`, newest copy of each (a copy may sit on
            // two mountpaths while it moves between them).
            let mut best: BTreeMap<String, ObjEntry> = BTreeMap::new();
            let mut more = false;
            for d in dirs {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in rd.flatten() {
                    let Ok(m) = store::read_meta(&e.path()) else {
                        continue;
                    };
                    if m.bucket != bucket
                        || !m.object.starts_with(&prefix)
                        || after.as_deref().is_some_and(|a| m.object.as_str() <= a)
                    {
                        continue;
                    }
                    if best.len() >= limit
                        && best.keys().next_back().is_some_and(|last| &m.object > last)
                    {
                        more = true;
                        continue;
                    }
                    match best.get(&m.object) {
                        Some(cur) if cur.version >= m.version => {}
                        _ => {
                            best.insert(
                                m.object.clone(),
                                ObjEntry {
                                    name: m.object,
                                    size: m.size,
                                    checksum: m.checksum,
                                    version: m.version,
                                },
                            );
                        }
                    }
                    if best.len() > limit {
                        best.pop_last();
                        more = true;
                    }
                }
            }
            let entries: Vec<ObjEntry> = best.into_values().collect();
            let next = more
                .then(|| entries.last().map(|e| e.name.clone()))
                .flatten();
            ObjPage { entries, next }
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))
    }

    /// Dry run: objects and bytes this target (`me`) would send to each destination under
    /// `smap`.
    pub async fn plan_moves(&self, me: &NodeId, smap: &Smap) -> Result<Vec<PlanMove>> {
        let paths: Vec<PathBuf> = self.mountpaths.iter().map(|m| m.path.clone()).collect();
        let smap = smap.clone();
        let me = me.clone();
        tokio::task::spawn_blocking(move || {
            let mut per: BTreeMap<String, (u64, u64)> = Default::default();
            for p in paths {
                let _ = store::walk_objects(&p, |path, _| {
                    if let Ok(m) = store::read_meta(path)
                        && let Some(o) = placement::owner(&smap, &m.bucket, &m.object)
                        && o.id != me
                    {
                        let e = per.entry(o.id.0.clone()).or_default();
                        e.0 += 1;
                        e.1 += m.size;
                    }
                    true
                });
            }
            per.into_iter()
                .map(|(to, (objs, bytes))| PlanMove {
                    from: me.0.clone(),
                    to,
                    objs,
                    bytes,
                })
                .collect()
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))
    }

    /// Removes a destroyed bucket's objects from every mountpath.
    pub async fn remove_bucket(&self, bucket: &str) {
        for mp in &self.mountpaths {
            let dir = store::bucket_dir(&mp.path, bucket);
            let _ = tokio::fs::remove_dir_all(&dir).await;
        }
        self.recount().await;
    }

    /// Removes bucket directories the cluster no longer has (destroyed while this node was away,
    /// or while it was busy), so a later bucket of the same name starts empty.
    pub async fn drop_unknown_buckets(&self, known: &BTreeSet<String>) {
        let mut stale = BTreeSet::new();
        for mp in &self.mountpaths {
            if let Ok(rd) = std::fs::read_dir(mp.path.join("objs")) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if !known.contains(&name) {
                        stale.insert(name);
                    }
                }
            }
        }
        for b in stale {
            tracing::info!(bucket = %b, "removing the objects of a destroyed bucket");
            self.remove_bucket(&b).await;
        }
    }

    /// Recounts every mountpath from disk.
    pub async fn recount(&self) {
        for mp in &self.mountpaths {
            let m = mp.clone();
            let _ = tokio::task::spawn_blocking(move || m.recount()).await;
        }
    }

    /// Objects and bytes over all mountpaths.
    pub fn totals(&self) -> (u64, u64) {
        self.mountpaths
            .iter()
            .fold((0, 0), |(o, b), m| (o + m.objects(), b + m.bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::object::ObjectWriter;
    use tokio::io::AsyncWriteExt;

    async fn write(ls: &LocalStore, name: &str, version: u64) -> Install {
        let mp = ls.mountpath_for("b", name);
        let mut w = ObjectWriter::create(ls.path_of(mp)).await.unwrap();
        let data = name.as_bytes();
        w.observe(data);
        w.file().write_all(data).await.unwrap();
        let meta = ObjMeta {
            bucket: "b".into(),
            object: name.into(),
            size: data.len() as u64,
            checksum: w.checksum(),
            version,
            mtime: 0,
        };
        let tmp = w.finish(&meta).await.unwrap();
        ls.install(&meta, tmp, mp).await.unwrap()
    }

    #[tokio::test]
    async fn long_names_that_share_a_hash_all_survive() {
        let dir = tempfile::tempdir().unwrap();
        // Every long name hashes the same: the worst case of a collision.
        let ls = LocalStore::open_with_hash(&[dir.path().join("a")], |_| 42).unwrap();
        let a = format!("{}-a", "x/".repeat(150));
        let b = format!("{}-b", "x/".repeat(150));
        assert_eq!(write(&ls, &a, 10).await, Install::Stored);
        assert_eq!(write(&ls, &b, 10).await, Install::Stored);
        assert_eq!(ls.find("b", &a).unwrap().2.object, a);
        assert_eq!(ls.find("b", &b).unwrap().2.object, b);
        // A newer b replaces b, not a.
        assert_eq!(write(&ls, &b, 11).await, Install::Stored);
        assert_eq!(ls.find("b", &a).unwrap().2.version, 10);
        assert_eq!(ls.find("b", &b).unwrap().2.version, 11);
        assert_eq!(ls.totals().0, 2);
        // Deleting a (slot 0) leaves b reachable, and a third name reuses the hole.
        assert!(ls.delete("b", &a, 100).await.unwrap());
        assert!(ls.find("b", &a).is_none());
        assert_eq!(ls.find("b", &b).unwrap().2.version, 11);
        let c = format!("{}-c", "x/".repeat(150));
        assert_eq!(write(&ls, &c, 10).await, Install::Stored);
        let page = ls.list("b", "", None, 10).await.unwrap();
        let names: Vec<&str> = page.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, vec![b.as_str(), c.as_str()]);
    }

    #[tokio::test]
    async fn newer_copies_and_deletes_win_and_listing_pages_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let ls = LocalStore::open(&[dir.path().join("a"), dir.path().join("b")]).unwrap();
        assert_eq!(write(&ls, "x", 10).await, Install::Stored);
        assert_eq!(write(&ls, "x", 5).await, Install::Superseded);
        assert_eq!(ls.find("b", "x").unwrap().2.version, 10);
        assert!(ls.delete("b", "x", 20).await.unwrap());
        assert!(ls.find("b", "x").is_none());
        assert_eq!(
            write(&ls, "x", 15).await,
            Install::Superseded,
            "deleted later"
        );
        for i in 0..25 {
            write(&ls, &format!("o{i:02}"), 100).await;
        }
        let mut names = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = ls.list("b", "o", after.as_deref(), 10).await.unwrap();
            assert!(page.entries.len() <= 10);
            names.extend(page.entries.iter().map(|e| e.name.clone()));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let want: Vec<String> = (0..25).map(|i| format!("o{i:02}")).collect();
        assert_eq!(names, want);
        assert_eq!(ls.totals().0, 25);
    }
}
