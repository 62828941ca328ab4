//! Whole-store walks of a target: paged listing, the dry-run plan, dropping destroyed buckets,
//! recounting, and purging old delete records.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::local::LocalStore;
use super::object as store;
use crate::error::{Error, Result};
use crate::logic::placement;
use crate::types::lifecycle::PlanMove;
use crate::types::object::{MAX_PAGE, ObjEntry, ObjPage};
use crate::types::smap::{NodeId, Smap};

/// A name's file found by a listing: not read yet (object or delete record), or read already
/// (a hashed long name, whose real name is only in its file).
enum Listed {
    File(bool, PathBuf),
    Read(ObjEntry),
}

/// The listing entry of the object (or, with `tombs`, delete record) file at `path`, if it is
/// readable and of `bucket`.
fn read_entry(tombs: bool, path: &std::path::Path, bucket: &str) -> Option<ObjEntry> {
    let (b, entry) = if tombs {
        store::read_tomb(path).map(|t| (t.bucket.clone(), ObjEntry::of_tomb(&t)))
    } else {
        store::read_meta(path).map(|m| (m.bucket.clone(), ObjEntry::of(&m)))
    }
    .ok()?;
    (b == bucket).then_some(entry)
}

impl LocalStore {
    /// One page of this target's objects in `bucket` whose names start with `prefix`, in name
    /// order after `start_after`, and of its delete records (entries marked `deleted`) where a
    /// record is newer than the copy here: the router merges every target's page, and a delete
    /// on the owner must beat an older copy still on another target. Memory holds at most one
    /// page of entries.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ObjPage> {
        let dirs: Vec<(bool, PathBuf)> = self
            .mps
            .readable()
            .iter()
            .flat_map(|(_, m)| {
                [
                    (false, store::bucket_dir(&m.path, bucket)),
                    (true, store::tomb_dir(&m.path, bucket)),
                ]
            })
            .collect();
        let (bucket, prefix) = (bucket.to_string(), prefix.to_string());
        let after = start_after.map(str::to_string);
        let limit = limit.clamp(1, MAX_PAGE);
        tokio::task::spawn_blocking(move || {
            // First the page's names, from the directory entries alone: most file names are
            // the escaped object name, so a name outside the page costs no open (reading every
            // trailer for every page made listing a bucket quadratic). Only hashed long names
            // are read to learn theirs. Then the files of the names in the page are read.
            let mut page: BTreeMap<String, Vec<Listed>> = BTreeMap::new();
            let mut more = false;
            let wanted =
                |name: &str| name.starts_with(&prefix) && after.as_deref().is_none_or(|a| name > a);
            for (tombs, d) in dirs {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in rd.flatten() {
                    let (name, found) = match e
                        .file_name()
                        .to_str()
                        .and_then(crate::logic::names::decode_plain)
                    {
                        Some(name) => (name, Listed::File(tombs, e.path())),
                        None => match read_entry(tombs, &e.path(), &bucket) {
                            Some(entry) => (entry.name.clone(), Listed::Read(entry)),
                            None => continue,
                        },
                    };
                    if !wanted(&name) {
                        continue;
                    }
                    if page.len() >= limit
                        && page.keys().next_back().is_some_and(|last| &name > last)
                    {
                        more = true;
                        continue;
                    }
                    page.entry(name).or_default().push(found);
                    if page.len() > limit {
                        page.pop_last();
                        more = true;
                    }
                }
            }
            // The page covers every name up to its last, even one whose file went meanwhile.
            let next = more.then(|| page.keys().next_back().cloned()).flatten();
            let entries: Vec<ObjEntry> = page
                .into_iter()
                .filter_map(|(name, found)| {
                    // The newest record of the name (a copy may sit on two mountpaths while it
                    // moves between them, beside a delete record).
                    found
                        .into_iter()
                        .filter_map(|f| match f {
                            Listed::Read(entry) => Some(entry),
                            Listed::File(tombs, path) => read_entry(tombs, &path, &bucket),
                        })
                        .filter(|entry| entry.name == name)
                        .reduce(|a, b| if b.newer_than(&a) { b } else { a })
                })
                .collect();
            ObjPage {
                entries,
                next,
                settling: false,
                smap_version: 0,
            }
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))
    }

    /// Dry run: objects and bytes this target (`me`) would send to each destination under
    /// `smap`.
    pub async fn plan_moves(&self, me: &NodeId, smap: &Smap) -> Result<Vec<PlanMove>> {
        let paths: Vec<PathBuf> = self
            .mps
            .readable()
            .iter()
            .map(|(_, m)| m.path.clone())
            .collect();
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
        for (_, mp) in self.mps.readable() {
            let _ = tokio::fs::remove_dir_all(store::bucket_dir(&mp.path, bucket)).await;
            let _ = tokio::fs::remove_dir_all(store::tomb_dir(&mp.path, bucket)).await;
        }
        self.recount().await;
    }

    /// Removes bucket directories the cluster no longer has (destroyed while this node was away,
    /// or while it was busy), so a later bucket of the same name starts empty.
    pub async fn drop_unknown_buckets(&self, known: &BTreeSet<String>) {
        let mut stale = BTreeSet::new();
        for dir in self
            .mps
            .readable()
            .iter()
            .flat_map(|(_, mp)| [mp.path.join("objs"), mp.path.join("tombs")])
        {
            if let Ok(rd) = std::fs::read_dir(dir) {
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
        for (_, m) in self.mps.readable() {
            let _ = tokio::task::spawn_blocking(move || m.recount()).await;
        }
    }

    /// Objects and bytes over all mountpaths.
    pub fn totals(&self) -> (u64, u64) {
        self.mps
            .readable()
            .iter()
            .fold((0, 0), |(o, b), (_, m)| (o + m.objects(), b + m.bytes()))
    }
}
