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
            // The `limit` smallest names after `after`, newest copy of each (a copy may sit on
            // two mountpaths while it moves between them).
            let mut best: BTreeMap<String, ObjEntry> = BTreeMap::new();
            let mut more = false;
            for (tombs, d) in dirs {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in rd.flatten() {
                    // Most file names are the escaped object name: a name outside the page is
                    // skipped without opening its file (listing every object page by page
                    // read every trailer for every page). Hashed long names are read.
                    if let Some(name) = e
                        .file_name()
                        .to_str()
                        .and_then(crate::logic::names::decode_plain)
                        && (!name.starts_with(&prefix)
                            || after.as_deref().is_some_and(|a| name.as_str() <= a)
                            || (best.len() >= limit
                                && best.keys().next_back().is_some_and(|last| &name > last)))
                    {
                        if best.len() >= limit && name.starts_with(&prefix) {
                            more |= after.as_deref().is_none_or(|a| name.as_str() > a);
                        }
                        continue;
                    }
                    let read = if tombs {
                        store::read_tomb(&e.path())
                            .map(|t| (t.bucket.clone(), ObjEntry::of_tomb(&t)))
                    } else {
                        store::read_meta(&e.path()).map(|m| (m.bucket.clone(), ObjEntry::of(&m)))
                    };
                    let Ok((b, entry)) = read else {
                        continue;
                    };
                    if b != bucket
                        || !entry.name.starts_with(&prefix)
                        || after.as_deref().is_some_and(|a| entry.name.as_str() <= a)
                    {
                        continue;
                    }
                    if best.len() >= limit
                        && best
                            .keys()
                            .next_back()
                            .is_some_and(|last| &entry.name > last)
                    {
                        more = true;
                        continue;
                    }
                    match best.get(&entry.name) {
                        Some(cur) if !entry.newer_than(cur) => {}
                        _ => {
                            best.insert(entry.name.clone(), entry);
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
