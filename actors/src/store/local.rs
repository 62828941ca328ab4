//! The local object store of a target: its mountpaths, where each object belongs among them, and
//! the check-then-act operations on object files (install, remove, move, delete, list) made
//! atomic against each other by per-object locks. No network: the data path and the rebalance
//! build on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use super::mpset::{Identity, MountpathSet};
use super::object::{self as store, FileId, ObjLocks, TempObject, Unsynced};
use crate::error::{Error, Result};
use crate::logic::names::Encoded;
use crate::logic::placement;
use crate::types::object::{ObjMeta, Stamp, Tomb};

/// A rename into place: refused for a newer copy or delete here, or done, with what it
/// replaces besides the file at its own path.
enum Renamed {
    /// A newer copy or delete is here; a copy that is still on its way to the disk comes
    /// with what to wait for.
    Superseded(Option<Unconfirmed>),
    Stored(Option<Replaced>, Unsynced, Pending),
}

/// Whether a renamed file stayed: `None` until its installer's flush and check are done.
type Settling = tokio::sync::watch::Receiver<Option<bool>>;

/// A file renamed into place that no flush has confirmed yet, as the registry holds it.
#[derive(Clone)]
struct Unconfirmed {
    id: u64,
    path: PathBuf,
    /// The registry speaks of this file only, not of another one that comes to the same
    /// path later.
    file: store::FileId,
    mp: usize,
    news: Settling,
}

/// A file renamed into place and registered as such until its fate is known.
struct Pending {
    id: u64,
    news: tokio::sync::watch::Sender<Option<bool>>,
}

/// An installed item of a batch, until it is known durable.
struct StoredItem {
    /// Its place among the batch's results.
    at: usize,
    meta: ObjMeta,
    mp: usize,
    replaced: Option<Replaced>,
    file: Unsynced,
    pending: Pending,
}

/// What an install replaces besides the file at its own path: removed once it is durable.
struct Replaced {
    bucket: String,
    object: String,
    /// The installed version: only older copies and records go.
    version: u64,
    /// Mountpaths holding an older copy.
    olds: Vec<usize>,
    /// Delete records of the name were here.
    tomb: bool,
}

/// What became of an object offered to [`LocalStore::install_flushed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    /// Written durably on its proper mountpath.
    Stored,
    /// A newer copy, or a newer delete, is already here: the offered one is obsolete.
    Superseded,
}

/// A local copy found by [`LocalStore::find_reading`].
#[derive(Debug)]
pub struct Found {
    pub mp: usize,
    pub path: PathBuf,
    pub meta: ObjMeta,
    /// The whole data when the copy was small enough to read with its metadata, else its
    /// open file.
    pub held: store::Held,
}

/// Files a hashed long name may occupy (names whose hashes collide take the next one).
pub const NAME_SLOTS: usize = 16;

/// Delivered copies a rebalance sender removes at once (see `remove_sent`).
const REMOVE_AT_ONCE: usize = 8;

/// A copy a rebalance sent and its receiver stored: removed here only if it is still the file
/// that was read.
#[derive(Debug)]
pub struct SentCopy {
    pub path: PathBuf,
    pub meta: ObjMeta,
    pub id: FileId,
}

pub struct LocalStore {
    /// The mountpaths, their states, and where objects belong among them.
    pub mps: MountpathSet,
    /// Hash of names too long for a file name (tests make every one collide).
    long_hash: fn(&[u8]) -> u64,
    locks: ObjLocks,
    /// The install barrier: writes hold it shared from their ownership check to their
    /// install; a new rebalance generation takes it exclusively before it walks, so no write
    /// that checked ownership under the old map lands after the walk went by.
    pub installs: tokio::sync::RwLock<()>,
    /// True while a rebalance generation may still bring objects here (from its start until
    /// every sender has finished): a local copy may then be older than one in flight, and
    /// reads check the other targets first.
    pub settling: AtomicBool,
    /// The newest cluster map version another target has acted under in a request to this
    /// one. Ahead of this target's own map, it says a push was missed (cut off from the
    /// primary): owners may have changed, so this target does not act as one until it has
    /// that map.
    pub map_seen: AtomicU64,
    /// False from the start of a target that rejoins until the cluster answered its join: the
    /// map it persisted may be long out of date (it may have been cut off before it stopped),
    /// so it does not act as an owner under that map.
    pub joined: tokio::sync::watch::Sender<bool>,
    /// Group commit of the flushes that make rebalance batches durable.
    flush: super::flush::FsFlush,
    /// Object files renamed into place that no flush has confirmed yet, by path. An offered
    /// copy superseded by one of them is answered only once it is known to stay: the answer
    /// lets a rebalance sender delete its copy (and a client's older write count as done).
    /// Entries of files whose flush failed stay, marked so, until a later install there.
    pending: std::sync::Mutex<std::collections::HashMap<PathBuf, Unconfirmed>>,
    next_pending: AtomicU64,
}

/// One try of a move between mountpaths: done (and whether a copy moved), or a file its
/// flush has not confirmed yet is in the way.
enum MoveStep {
    Done(bool),
    Wait(Unconfirmed),
}

impl LocalStore {
    /// Opens (creating) plain mountpaths: no record, no identity markers (tests, tools).
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        Self::open_with_hash(paths, xxhash_rust::xxh3::xxh3_64)
    }

    /// As [`open`](Self::open), with another hash for long names.
    pub fn open_with_hash(paths: &[PathBuf], long_hash: fn(&[u8]) -> u64) -> Result<Self> {
        Ok(Self::with(MountpathSet::plain(paths)?, long_hash))
    }

    /// A target's store: its configured and recorded mountpaths, each checked against its
    /// identity marker (DESIGN §14).
    pub fn open_target(paths: &[PathBuf], data_dir: &Path, identity: Identity) -> Result<Self> {
        let mps = MountpathSet::open(paths, data_dir, identity)?;
        // Files renamed into place by an earlier run that stopped before their flush count as
        // stored from now on (a copy they supersede is answered as such, and its sender
        // deletes it): they are made durable first, once per filesystem.
        let mut devs = Vec::new();
        for (_, m) in mps.readable() {
            use std::os::unix::fs::MetadataExt;
            let Ok(dev) = std::fs::metadata(&m.path).map(|md| md.dev()) else {
                continue;
            };
            if !devs.contains(&dev) {
                devs.push(dev);
                if let Err(e) = super::files::sync_fs(&m.path) {
                    m.note_io_error(&e);
                }
            }
        }
        Ok(Self::with(mps, xxhash_rust::xxh3::xxh3_64))
    }

    fn with(mps: MountpathSet, long_hash: fn(&[u8]) -> u64) -> Self {
        LocalStore {
            mps,
            long_hash,
            installs: tokio::sync::RwLock::new(()),
            locks: Default::default(),
            settling: AtomicBool::new(false),
            map_seen: AtomicU64::new(0),
            joined: tokio::sync::watch::Sender::new(true),
            flush: Default::default(),
            pending: Default::default(),
            next_pending: AtomicU64::new(0),
        }
    }

    fn digest(bucket: &str, object: &str) -> u64 {
        placement::digest(&placement::uname(bucket, object))
    }

    /// The mountpath `bucket/object` belongs on (`None` when no mountpath is enabled).
    pub fn proper(&self, bucket: &str, object: &str) -> Option<usize> {
        self.mps.proper(Self::digest(bucket, object))
    }

    /// The mountpath a new copy of `bucket/object` goes to (its proper one unless that is past
    /// its high-water mark); an error when no mountpath may take it.
    pub fn mountpath_for(&self, bucket: &str, object: &str) -> Result<usize> {
        self.mps.for_write(Self::digest(bucket, object))
    }

    /// Where an object found on mountpath `at` should move locally, if anywhere.
    pub fn local_dest(&self, at: usize, bucket: &str, object: &str) -> Option<usize> {
        self.mps.local_dest(at, Self::digest(bucket, object))
    }

    pub fn path_of(&self, mp: usize) -> PathBuf {
        self.mps.get(mp).map(|m| m.path.clone()).unwrap_or_default()
    }

    /// Indices of the mountpaths that may be read.
    fn readable(&self) -> Vec<usize> {
        self.mps.readable().into_iter().map(|(i, _)| i).collect()
    }

    fn counted(&self, mp: usize, added: Option<u64>, removed: Option<u64>) {
        if let Some(m) = self.mps.get(mp) {
            if let Some(n) = added {
                m.added(n);
            }
            if let Some(n) = removed {
                m.removed(n);
            }
        }
    }

    /// Why an object that is not here may still exist: a mountpath that failed held it.
    pub fn failed_note(&self) -> Option<String> {
        let failed = self.mps.failed();
        (!failed.is_empty()).then(|| {
            failed
                .iter()
                .map(|(p, why)| format!("mountpath {} failed ({why})", p.display()))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// The files `bucket/object` may be in on mountpath `mp` (objects, or with `tombs` its
    /// delete records): its encoded name, or — for a name too long to encode, which becomes a
    /// hash — every slot of that hash.
    fn candidates_in(&self, tombs: bool, mp: usize, bucket: &str, object: &str) -> Vec<PathBuf> {
        let root = self.path_of(mp);
        let dir = if tombs {
            store::tomb_dir(&root, bucket)
        } else {
            store::bucket_dir(&root, bucket)
        };
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
    fn candidates(&self, mp: usize, bucket: &str, object: &str) -> Vec<PathBuf> {
        self.candidates_in(false, mp, bucket, object)
    }

    fn locate_on(&self, mp: usize, bucket: &str, object: &str) -> Option<(PathBuf, ObjMeta)> {
        self.locate_or_free(mp, bucket, object).ok()
    }

    /// As [`locate_on`](Self::locate_on); when there is no copy, `Err` holds the path a new
    /// copy may take if the look itself showed it free: a plain name (its one file, unique to
    /// the name) that is not there. Spares [`free_slot`](Self::free_slot)'s second look at
    /// every new object; a long name's slots, which other names share, are still looked for
    /// by `free_slot`.
    fn locate_or_free(
        &self,
        mp: usize,
        bucket: &str,
        object: &str,
    ) -> std::result::Result<(PathBuf, ObjMeta), Option<PathBuf>> {
        self.locate_reading(mp, bucket, object, 0)
            .map(|(p, meta, _)| (p, meta))
    }

    /// As [`locate_or_free`](Self::locate_or_free), with the data of an object of at most
    /// about `small` bytes read in the same go.
    fn locate_reading(
        &self,
        mp: usize,
        bucket: &str,
        object: &str,
        small: u64,
    ) -> std::result::Result<(PathBuf, ObjMeta, store::Held), Option<PathBuf>> {
        let Some(m) = self.mps.get(mp) else {
            return Err(None);
        };
        if m.io_fault() {
            m.note_io_error(&"injected I/O failure (fault fail_io)");
            return Err(None);
        }
        let cands = self.candidates(mp, bucket, object);
        let plain = cands.len() == 1;
        let mut free = None;
        for p in cands {
            match store::read_meta_and_small(&p, small) {
                Ok((meta, data)) if meta.bucket == bucket && meta.object == object => {
                    return Ok((p, meta, data));
                }
                Ok(_) => {}
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    if plain {
                        free = Some(p);
                    }
                }
                Err(Error::Io(e)) => m.note_io_error(&e),
                Err(_) => {}
            }
        }
        Err(free)
    }

    /// Where to write `bucket/object` on mountpath `mp`: its own file there, else the first
    /// free slot (a colliding long name never overwrites another object).
    fn dest_on(&self, mp: usize, bucket: &str, object: &str) -> Result<PathBuf> {
        if let Some((p, _)) = self.locate_on(mp, bucket, object) {
            return Ok(p);
        }
        self.free_slot(mp, bucket, object)
    }

    /// Where a new `bucket/object` goes on mountpath `mp`, which does not hold it.
    fn free_slot(&self, mp: usize, bucket: &str, object: &str) -> Result<PathBuf> {
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
        self.find_reading(bucket, object, 0)
            .map(|f| (f.mp, f.path, f.meta))
    }

    /// As [`find`](Self::find), reading the data of a copy of at most about `small` bytes in
    /// the same open (0: never).
    pub fn find_reading(&self, bucket: &str, object: &str, small: u64) -> Option<Found> {
        let first = self.proper(bucket, object);
        let order = first
            .into_iter()
            .chain(self.readable().into_iter().filter(|&i| Some(i) != first));
        for mp in order {
            if let Ok((path, meta, held)) = self.locate_reading(mp, bucket, object, small) {
                return Some(Found {
                    mp,
                    path,
                    meta,
                    held,
                });
            }
        }
        None
    }

    /// The delete records of `bucket/object` here (normally one, on its proper mountpath).
    fn tombs_of(&self, bucket: &str, object: &str) -> Vec<(usize, PathBuf, Tomb)> {
        let mut out = Vec::new();
        for (mp, m) in self.mps.readable() {
            if !m.may_hold_tombs(bucket) {
                continue;
            }
            for p in self.candidates_in(true, mp, bucket, object) {
                if let Ok(t) = store::read_tomb(&p)
                    && t.bucket == bucket
                    && t.object == object
                {
                    out.push((mp, p, t));
                }
            }
        }
        out
    }

    /// The newest delete of `bucket/object` recorded here.
    pub fn tomb(&self, bucket: &str, object: &str) -> Option<Tomb> {
        self.tombs_of(bucket, object)
            .into_iter()
            .map(|(_, _, t)| t)
            .max_by_key(|t| t.version)
    }

    /// The newest stamp known here for `bucket/object`: its copy's version or its delete's.
    pub fn stamp(&self, bucket: &str, object: &str) -> Option<Stamp> {
        let copy = self.find(bucket, object);
        self.stamp_beside(bucket, object, copy.as_ref().map(|(_, _, m)| m))
    }

    /// The newest stamp for `bucket/object` given its local copy, already looked up.
    pub fn stamp_beside(
        &self,
        bucket: &str,
        object: &str,
        copy: Option<&ObjMeta>,
    ) -> Option<Stamp> {
        let copy = copy.map(|m| Stamp {
            version: m.version,
            deleted: false,
        });
        let tomb = self.tomb(bucket, object).map(|t| Stamp {
            version: t.version,
            deleted: true,
        });
        match (copy, tomb) {
            (Some(c), Some(t)) => Some(if t.version >= c.version { t } else { c }),
            (c, t) => c.or(t),
        }
    }

    /// The highest stamp of `bucket/object` here, 0 if none: a new write must exceed it.
    pub fn newest_stamp(&self, bucket: &str, object: &str) -> u64 {
        self.stamp(bucket, object).map(|s| s.version).unwrap_or(0)
    }

    /// Writes `tomb` durably on its proper mountpath and removes older records of the name.
    /// Caller holds the object's lock.
    fn write_tomb(&self, tomb: &Tomb) -> Result<()> {
        // Records are tiny: one goes to its proper mountpath even past the high-water mark.
        let mp = match self.proper(&tomb.bucket, &tomb.object) {
            Some(mp) => mp,
            None => self.mountpath_for(&tomb.bucket, &tomb.object)?,
        };
        let olds = self.tombs_of(&tomb.bucket, &tomb.object);
        let dest = match olds.iter().find(|(m, _, _)| *m == mp) {
            Some((_, p, _)) => p.clone(),
            None => self
                .candidates_in(true, mp, &tomb.bucket, &tomb.object)
                .into_iter()
                .find(|p| !p.exists())
                .ok_or_else(|| {
                    Error::NoSpace(format!(
                        "{}/{}: {NAME_SLOTS} other long names share its hash",
                        tomb.bucket, tomb.object
                    ))
                })?,
        };
        if let Some(m) = self.mps.get(mp) {
            m.holds_tombs(&tomb.bucket);
        }
        super::files::persist(&dest, tomb)?;
        for (_, p, _) in olds {
            if p != dest {
                let _ = std::fs::remove_file(&p);
            }
        }
        Ok(())
    }

    /// Removes the delete records of a name (a newer write made them obsolete).
    fn clear_tombs(&self, bucket: &str, object: &str) {
        for (_, p, _) in self.tombs_of(bucket, object) {
            let _ = std::fs::remove_file(&p);
        }
    }

    /// Installs one object written unsynced ([`store::write_temp_unsynced`],
    /// `ObjectWriter::finish_unsynced`) on mountpath `dest_mp` unless a newer copy (or a newer
    /// delete) is already here, and makes it durable by a flush of its filesystem that
    /// concurrent installs share (group commit): one journal commit for many writes, where an
    /// fsync of the file and one of its directory would cost two each. Older copies on other
    /// mountpaths are removed once it is durable.
    pub async fn install_flushed(
        &self,
        meta: &ObjMeta,
        tmp: TempObject,
        dest_mp: usize,
    ) -> Result<Install> {
        let mut r = self.install_batch(vec![(meta.clone(), tmp, dest_mp)]).await;
        r.pop().expect("one result per item")
    }

    /// Installs a batch of objects as [`Self::install_flushed`] does each, then makes them
    /// durable together: one flush of each filesystem touched, then each file asked whether
    /// its data was written back (the flush's own success does not say). Nothing may be
    /// acknowledged before this returns; an `Err` entry is an object not stored.
    pub async fn install_batch(
        &self,
        items: Vec<(ObjMeta, TempObject, usize)>,
    ) -> Vec<Result<Install>> {
        let mut out = Vec::with_capacity(items.len());
        let mut touched: Vec<usize> = Vec::new();
        let mut stored = Vec::new();
        // Superseded by copies not yet confirmed: answered once they are.
        let mut waiting = Vec::new();
        for (meta, tmp, mp) in items {
            let r = match self.install_unsynced(&meta, tmp, mp).await {
                Ok(Renamed::Stored(replaced, file, pending)) => {
                    stored.push(StoredItem {
                        at: out.len(),
                        meta,
                        mp,
                        replaced,
                        file,
                        pending,
                    });
                    if !touched.contains(&mp) {
                        touched.push(mp);
                    }
                    Ok(Install::Stored)
                }
                Ok(Renamed::Superseded(settling)) => {
                    waiting.extend(settling.map(|s| (out.len(), s)));
                    Ok(Install::Superseded)
                }
                Err(e) => Err(e),
            };
            out.push(r);
        }
        let mut flushed = Ok(());
        let mut devs = Vec::new();
        for i in touched {
            // Once per filesystem (mountpaths that share one need one flush), shared with the
            // batches being installed at the same time.
            use std::os::unix::fs::MetadataExt;
            let path = self.path_of(i);
            let res = match std::fs::metadata(&path) {
                Ok(m) if devs.contains(&m.dev()) => continue,
                Ok(m) => {
                    devs.push(m.dev());
                    self.flush.flush(m.dev(), &path).await
                }
                Err(e) => Err(e.into()),
            };
            if let Err(e) = res {
                // A disk that cannot make writes durable is failing, as when an fsync fails.
                if let (Error::Io(io), Some(m)) = (&e, self.mps.get(i)) {
                    m.note_io_error(io);
                }
                flushed = Err(e);
                break;
            }
        }
        match flushed {
            Ok(()) => {
                for s in stored {
                    match self.written_back(&s.file, s.mp) {
                        Ok(()) => {
                            self.settle(&s.file.path, &s.pending, true, false);
                            if let Some(r) = s.replaced {
                                self.drop_replaced(r).await;
                            }
                        }
                        Err(e) => {
                            // The data did not reach the disk: not stored. What it would
                            // replace stays; the file goes, as readers would get whatever the
                            // disk holds once its pages leave the cache.
                            if let Some(m) = self.mps.get(s.mp) {
                                m.note_io_error(&e);
                            }
                            self.unlink_unwritten(&s.meta, s.mp, &s.file).await;
                            self.settle(&s.file.path, &s.pending, false, true);
                            out[s.at] = Err(Error::Io(e));
                        }
                    }
                }
            }
            Err(e) => {
                // Renamed but maybe not durable: none of it counts as stored (the senders keep
                // their copies), and the copies it would replace stay. A file whose data was
                // not made durable before its rename goes; one that was stays (it replaced an
                // older copy at its path), still marked unconfirmed.
                let msg = e.to_string();
                for s in stored {
                    let gone = !s.file.synced_before_rename();
                    if gone {
                        self.unlink_unwritten(&s.meta, s.mp, &s.file).await;
                    }
                    self.settle(&s.file.path, &s.pending, false, gone);
                    out[s.at] = Err(Error::Io(std::io::Error::other(msg.clone())));
                }
            }
        }
        for (at, u) in waiting {
            if let Err(e) = self.confirmed(u).await {
                out[at] = Err(e);
            }
        }
        out
    }

    /// Registers file `file` just renamed into `path` on `mp` as not yet confirmed.
    fn register_pending(&self, path: &Path, file: store::FileId, mp: usize) -> Pending {
        let id = self
            .next_pending
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (news, rx) = tokio::sync::watch::channel(None);
        let u = Unconfirmed {
            id,
            path: path.to_path_buf(),
            file,
            mp,
            news: rx,
        };
        self.pending
            .lock()
            .expect("poisoned")
            .insert(path.to_path_buf(), u);
        Pending { id, news }
    }

    /// Tells whoever waits whether the file at `path` stayed. A confirmed one, and one that
    /// is gone, leave the registry; one that stayed unconfirmed (its flush failed) stays in
    /// it, for a waiter to confirm ([`Self::confirmed`]) or a later install to replace.
    fn settle(&self, path: &Path, p: &Pending, stays: bool, gone: bool) {
        p.news.send_replace(Some(stays));
        if stays || gone {
            self.forget_pending(path, p.id);
        }
    }

    fn forget_pending(&self, path: &Path, id: u64) {
        let mut m = self.pending.lock().expect("poisoned");
        if m.get(path).is_some_and(|u| u.id == id) {
            m.remove(path);
        }
    }

    /// The unconfirmed file at `path`, if the file there now is one.
    fn settling(&self, path: &Path) -> Option<Unconfirmed> {
        let u = self.pending.lock().expect("poisoned").get(path).cloned()?;
        match store::path_id(path) {
            Ok(id) if id == u.file => Some(u),
            // Gone, or another file now (moved there, which is durable at once): forgotten.
            _ => {
                self.forget_pending(path, u.id);
                None
            }
        }
    }

    /// Waits until the unconfirmed file `u` is known to stay on disk. Its installer says so
    /// after its flush; if that flush failed (or the installer never finished) and the file
    /// is still there, a flush of its filesystem and a check of its writeback here decide.
    async fn confirmed(&self, u: Unconfirmed) -> Result<()> {
        let mut news = u.news.clone();
        if matches!(
            news.wait_for(Option::is_some).await.as_deref(),
            Ok(Some(true))
        ) {
            return Ok(());
        }
        let not_stored = || {
            Error::Io(std::io::Error::other(
                "superseded by a copy here that did not reach the disk: not stored, retry",
            ))
        };
        if store::path_id(&u.path).ok() != Some(u.file) {
            return Err(not_stored());
        }
        self.flush
            .flush(u.file.dev, &self.path_of(u.mp))
            .await
            .map_err(|_| not_stored())?;
        let check = Unsynced::at(u.path.clone(), u.file);
        self.written_back(&check, u.mp).map_err(|_| not_stored())?;
        self.forget_pending(&u.path, u.id);
        Ok(())
    }

    /// Whether an installed file's data reached the disk (after the flush of its filesystem).
    fn written_back(&self, file: &Unsynced, mp: usize) -> std::io::Result<()> {
        file.written_back()?;
        if !file.synced_before_rename() && self.mps.get(mp).is_some_and(|m| m.writeback_fault()) {
            return Err(std::io::Error::other("injected: writeback lost"));
        }
        Ok(())
    }

    /// Removes an installed file whose data did not reach the disk, unless a newer copy has
    /// been renamed over it meanwhile.
    async fn unlink_unwritten(&self, meta: &ObjMeta, mp: usize, file: &Unsynced) {
        let _g = self.locks.lock(&meta.bucket, &meta.object).await;
        if file.still_at_path() && std::fs::remove_file(&file.path).is_ok() {
            self.counted(mp, None, Some(meta.size));
        }
    }

    /// Renames `tmp` into place unless a newer copy or delete is here. Not durable yet: what
    /// it replaces elsewhere, if anything, is returned, to go once it is.
    async fn install_unsynced(
        &self,
        meta: &ObjMeta,
        tmp: TempObject,
        dest_mp: usize,
    ) -> Result<Renamed> {
        let _g = self.locks.lock(&meta.bucket, &meta.object).await;
        let tomb = self.tomb(&meta.bucket, &meta.object);
        if tomb.as_ref().is_some_and(|t| t.version >= meta.version) {
            return Ok(Renamed::Superseded(None));
        }
        let mut olds = Vec::new();
        let mut dest_free = None;
        let readable = self.readable();
        for &i in &readable {
            match self.locate_or_free(i, &meta.bucket, &meta.object) {
                Ok((p, m)) => {
                    if m.version >= meta.version {
                        return Ok(Renamed::Superseded(self.settling(&p)));
                    }
                    olds.push((i, p, m.size));
                }
                Err(free) if i == dest_mp => dest_free = free,
                Err(_) => {}
            }
        }
        // The look above covered the destination too (when readable): not repeated.
        let mut replaces = false;
        let dest = match olds.iter().find(|(i, ..)| *i == dest_mp) {
            Some((_, p, _)) => {
                replaces = true;
                p.clone()
            }
            None if readable.contains(&dest_mp) => match dest_free {
                Some(p) => p,
                None => self.free_slot(dest_mp, &meta.bucket, &meta.object)?,
            },
            None => {
                // Failed or forgotten since the body started: nothing may land there (a
                // forgotten one has left the target). The writer keeps its copy.
                let state = self.mps.get(dest_mp).map(|m| m.state().as_str());
                return Err(Error::Unavailable(format!(
                    "{}/{}: its mountpath {} is {} now: not stored, try again",
                    meta.bucket,
                    meta.object,
                    self.path_of(dest_mp).display(),
                    state.unwrap_or("gone")
                )));
            }
        };
        let tmp = if replaces {
            // The rename replaces a copy that may have been acknowledged: its data must be on
            // disk before the rename can be, or a crash could leave neither version.
            let mut tmp = tmp;
            tokio::task::spawn_blocking(move || tmp.sync().map(|()| tmp))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))??
        } else {
            tmp
        };
        let file = tmp.commit_unsynced(&dest)?;
        self.counted(dest_mp, Some(meta.size), None);
        let mut elsewhere = Vec::new();
        for (i, p, size) in olds {
            if p == dest {
                self.counted(i, None, Some(size));
            } else {
                elsewhere.push(i);
            }
        }
        let replaced = (!elsewhere.is_empty() || tomb.is_some()).then(|| Replaced {
            bucket: meta.bucket.clone(),
            object: meta.object.clone(),
            version: meta.version,
            olds: elsewhere,
            tomb: tomb.is_some(),
        });
        let pending = self.register_pending(&dest, file.id(), dest_mp);
        Ok(Renamed::Stored(replaced, file, pending))
    }

    /// Once an install is durable: the older copies on other mountpaths and the delete records
    /// it made obsolete go -- those still older than it (a newer write or delete may have come
    /// since).
    async fn drop_replaced(&self, r: Replaced) {
        let Replaced {
            bucket,
            object,
            version,
            olds,
            tomb,
        } = r;
        let _g = self.locks.lock(&bucket, &object).await;
        for i in olds {
            if let Some((p, m)) = self.locate_on(i, &bucket, &object)
                && m.version < version
                && std::fs::remove_file(&p).is_ok()
            {
                self.counted(i, None, Some(m.size));
            }
        }
        if tomb
            && self
                .tomb(&bucket, &object)
                .is_some_and(|t| t.version < version)
        {
            self.clear_tombs(&bucket, &object);
        }
    }

    /// Removes the local copy of `meta` if it is still that version (after a peer acked it).
    pub async fn remove_if_version(&self, meta: &ObjMeta) -> Result<bool> {
        let _g = self.locks.lock(&meta.bucket, &meta.object).await;
        self.remove_if_version_locked(meta)
    }

    /// As [`remove_if_version`](Self::remove_if_version), for the copies a rebalance batch
    /// read from mountpath `mp` and delivered. Off the runtime, in [`REMOVE_AT_ONCE`] threads
    /// at a time: these unlinks were the slowest step of a small-object decommission (each
    /// waits for the filesystem: its journal, or a discard of the freed blocks). Each thread
    /// takes its copies in turn, each under its object's lock; one blocking task per copy
    /// cost two thread wake-ups per object, a fifth of the sender's CPU.
    pub async fn remove_sent(
        self: &Arc<Self>,
        mp: usize,
        copies: Vec<SentCopy>,
    ) -> Vec<(ObjMeta, Result<bool>)> {
        let per = copies.len().div_ceil(REMOVE_AT_ONCE).max(1);
        let mut groups = Vec::new();
        let mut it = copies.into_iter().peekable();
        while it.peek().is_some() {
            groups.push(it.by_ref().take(per).collect::<Vec<_>>());
        }
        let tasks = groups.into_iter().map(|group| {
            let st = self.clone();
            tokio::task::spawn_blocking(move || {
                group
                    .into_iter()
                    .map(|c| {
                        let r = st.remove_copy(mp, &c);
                        (c.meta, r)
                    })
                    .collect::<Vec<_>>()
            })
        });
        let mut out = Vec::new();
        for done in futures::future::join_all(tasks).await {
            match done {
                Ok(v) => out.extend(v),
                // Copies left in place: a later walk sends them again (the receiver has them).
                Err(e) => tracing::error!(error = %e, "removing sent copies failed"),
            }
        }
        out
    }

    /// Removes one sent copy, if the file at its path is still the one that was read and sent
    /// (files are replaced by renames, never changed in place): one look at the path, where
    /// finding the copy by its version opens and reads it. Anything else (replaced, moved to
    /// another mountpath, the mountpath failing or gone) is decided by the version, as before.
    /// From a blocking thread.
    fn remove_copy(&self, mp: usize, c: &SentCopy) -> Result<bool> {
        let _g = self.locks.blocking_lock(&c.meta.bucket, &c.meta.object);
        let usable =
            self.mps.get(mp).is_some_and(|m| !m.io_fault()) && self.readable().contains(&mp);
        if usable && store::path_id(&c.path).is_ok_and(|id| id == c.id) {
            std::fs::remove_file(&c.path)?;
            self.counted(mp, None, Some(c.meta.size));
            return Ok(true);
        }
        self.remove_if_version_locked(&c.meta)
    }

    /// The work of [`remove_if_version`](Self::remove_if_version); the caller holds the
    /// object's lock.
    fn remove_if_version_locked(&self, meta: &ObjMeta) -> Result<bool> {
        for i in self.readable() {
            if let Some((p, m)) = self.locate_on(i, &meta.bucket, &meta.object)
                && m.version == meta.version
            {
                std::fs::remove_file(&p)?;
                self.counted(i, None, Some(m.size));
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Moves an object to its proper local mountpath (same filesystem: a rename).
    pub async fn move_local(&self, from: &Path, walked: &ObjMeta, to_mp: usize) -> Result<bool> {
        // A file not yet confirmed by its flush (the one to move, or the copy that makes it
        // stale) is waited for first, without the object's lock, which its installer may need.
        for _ in 0..3 {
            match self.move_local_once(from, walked, to_mp).await? {
                MoveStep::Done(moved) => return Ok(moved),
                MoveStep::Wait(u) => {
                    let _ = self.confirmed(u).await;
                }
            }
        }
        Err(Error::Busy(format!(
            "{}/{}: rewritten while it was being moved; moved on a later pass",
            walked.bucket, walked.object
        )))
    }

    /// One try of [`Self::move_local`].
    async fn move_local_once(
        &self,
        from: &Path,
        walked: &ObjMeta,
        to_mp: usize,
    ) -> Result<MoveStep> {
        let _g = self.locks.lock(&walked.bucket, &walked.object).await;
        // What the walk saw may have been replaced since (a put lands on a mountpath other
        // than the proper one while that is past its high-water mark): the file there now
        // decides. Gone (deleted, or overwritten where it belongs): nothing to move.
        let meta = match store::read_meta(from) {
            Ok(m) if m.bucket == walked.bucket && m.object == walked.object => m,
            Ok(_) => return Ok(MoveStep::Done(false)),
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(MoveStep::Done(false));
            }
            Err(e) => return Err(e),
        };
        let meta = &meta;
        if let Some(u) = self.settling(from) {
            return Ok(MoveStep::Wait(u));
        }
        if let Some((p, m)) = self.locate_on(to_mp, &meta.bucket, &meta.object)
            && m.version >= meta.version
        {
            // A newer copy is in place: the misplaced one is stale, once that one is on disk.
            if let Some(u) = self.settling(&p) {
                return Ok(MoveStep::Wait(u));
            }
            let _ = std::fs::remove_file(from);
            return Ok(MoveStep::Done(false));
        }
        let dest = self.dest_on(to_mp, &meta.bucket, &meta.object)?;
        let tmp =
            store::tmp_dir(&self.path_of(to_mp)).join(format!("mv.{}", store::next_version()));
        let from_owned = from.to_path_buf();
        // File I/O off the async workers (the object's lock is held meanwhile).
        tokio::task::spawn_blocking(move || move_file(&from_owned, &dest, &tmp))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        if let Some(i) = self
            .mps
            .all()
            .iter()
            .position(|m| from.starts_with(&m.path))
        {
            self.counted(i, None, Some(meta.size));
        }
        self.counted(to_mp, Some(meta.size), None);
        Ok(MoveStep::Done(true))
    }

    /// Deletes every local copy of `bucket/object` and records the delete durably first, so
    /// that no older copy — in flight, or on a target that was away — brings it back. Returns
    /// whether a copy was here.
    pub async fn delete(&self, tomb: &Tomb) -> Result<bool> {
        let _g = self.locks.lock(&tomb.bucket, &tomb.object).await;
        if self
            .tomb(&tomb.bucket, &tomb.object)
            .is_none_or(|t| t.version < tomb.version)
        {
            self.write_tomb(tomb)?;
        }
        self.remove_copies_upto(&tomb.bucket, &tomb.object, tomb.version)
    }

    /// Removes local copies stamped up to `version` (another target recorded the delete).
    pub async fn delete_copies(&self, bucket: &str, object: &str, version: u64) -> Result<bool> {
        let _g = self.locks.lock(bucket, object).await;
        self.remove_copies_upto(bucket, object, version)
    }

    /// Removes local copies stamped up to `version`, durably. Caller holds the object's lock.
    fn remove_copies_upto(&self, bucket: &str, object: &str, version: u64) -> Result<bool> {
        let mut found = false;
        for i in self.readable() {
            if let Some((p, m)) = self.locate_on(i, bucket, object)
                && m.version <= version
            {
                std::fs::remove_file(&p)?;
                if let Some(dir) = p.parent() {
                    super::files::sync_dir(dir)?;
                }
                self.counted(i, None, Some(m.size));
                found = true;
            }
        }
        Ok(found)
    }

    /// A delete record offered by a peer (it moves with its object's ownership): older copies
    /// here go, and the record stays. `Superseded` when a newer delete or a newer copy is here
    /// (the record is obsolete); either way the sender may drop its own.
    pub async fn apply_tomb(&self, tomb: &Tomb) -> Result<Install> {
        let _g = self.locks.lock(&tomb.bucket, &tomb.object).await;
        if self
            .stamp(&tomb.bucket, &tomb.object)
            .is_some_and(|s| s.version > tomb.version || (s.deleted && s.version == tomb.version))
        {
            return Ok(Install::Superseded);
        }
        self.write_tomb(tomb)?;
        self.remove_copies_upto(&tomb.bucket, &tomb.object, tomb.version)?;
        Ok(Install::Stored)
    }

    /// Removes this node's record of `tomb` if it is still that one (after a peer took it).
    pub async fn remove_tomb_if(&self, tomb: &Tomb) -> Result<()> {
        let _g = self.locks.lock(&tomb.bucket, &tomb.object).await;
        for (_, p, t) in self.tombs_of(&tomb.bucket, &tomb.object) {
            if t.version == tomb.version {
                std::fs::remove_file(&p)?;
            }
        }
        Ok(())
    }

    /// Moves a delete record to its proper mountpath (rewritten there, then removed here).
    pub async fn settle_tomb(&self, tomb: &Tomb) -> Result<()> {
        let _g = self.locks.lock(&tomb.bucket, &tomb.object).await;
        self.write_tomb(tomb)
    }
}

/// Moves an object file durably: a rename on one filesystem; across filesystems a copy to a
/// temp file on the destination, made durable with its rename, and only then the source removed.
fn move_file(from: &Path, dest: &Path, tmp: &Path) -> Result<()> {
    let dir = dest
        .parent()
        .ok_or_else(|| Error::BadRequest("object path without a parent".into()))?;
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        if let Some(up) = dir.parent() {
            super::files::sync_dir(up)?;
        }
    }
    if std::fs::rename(from, dest).is_err() {
        std::fs::copy(from, tmp)?;
        std::fs::File::open(tmp)?.sync_all()?;
        std::fs::rename(tmp, dest)?;
        super::files::sync_dir(dir)?;
        std::fs::remove_file(from)?;
    } else {
        super::files::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::object::ObjectWriter;

    fn tomb(name: &str, version: u64) -> Tomb {
        Tomb {
            bucket: "b".into(),
            object: name.into(),
            version,
            generation: 1,
        }
    }

    async fn write(ls: &LocalStore, name: &str, version: u64) -> Install {
        let mp = ls.mountpath_for("b", name).unwrap();
        let mut w = ObjectWriter::create(&ls.path_of(mp)).await.unwrap();
        let data = name.as_bytes();
        w.write(bytes::Bytes::copy_from_slice(data)).await.unwrap();
        let meta = ObjMeta {
            bucket: "b".into(),
            object: name.into(),
            size: data.len() as u64,
            checksum: w.checksum(),
            version,
            mtime: 0,
            attrs: Default::default(),
        };
        let tmp = w.finish_unsynced(&meta).await.unwrap();
        ls.install_flushed(&meta, tmp, mp).await.unwrap()
    }

    /// A temp object of `b/name` at `version` on its proper mountpath, not installed.
    fn temp(ls: &LocalStore, name: &str, version: u64) -> (ObjMeta, TempObject, usize) {
        let mp = ls.mountpath_for("b", name).unwrap();
        let data = name.as_bytes();
        let meta = small(name, version, data);
        let tmp = store::write_temp_unsynced(&ls.path_of(mp), &meta, data).unwrap();
        (meta, tmp, mp)
    }

    /// How the installer of the newer copy ends, in the test below.
    #[derive(Clone, Copy, Debug)]
    enum Fate {
        /// Flushed and checked.
        Stays,
        /// Its data did not reach the disk: removed.
        Lost,
        /// Its flush failed, but it stays (its data was synced before its rename).
        Unconfirmed,
    }

    /// An offered copy superseded by one renamed here but not yet confirmed by its flush is
    /// answered only once that one's fate is known: superseded if it stays, not stored if it
    /// does not (a rebalance sender deletes its copy on the first answer), and confirmed by
    /// the waiter itself if its installer could not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn superseded_by_an_unconfirmed_copy_waits_for_its_flush() {
        let dir = tempfile::tempdir().unwrap();
        let ls = Arc::new(LocalStore::open(&[dir.path().join("a")]).unwrap());
        for fate in [Fate::Stays, Fate::Lost, Fate::Unconfirmed] {
            let name = format!("o-{fate:?}");
            // The newer copy is renamed into place; its flush has not run.
            let (m2, t2, mp) = temp(&ls, &name, 20);
            let Renamed::Stored(_, file, pending) = ls.install_unsynced(&m2, t2, mp).await.unwrap()
            else {
                panic!("stored");
            };
            let (m1, t1, mp1) = temp(&ls, &name, 10);
            let mut offered = tokio::spawn({
                let ls = ls.clone();
                async move { ls.install_batch(vec![(m1, t1, mp1)]).await }
            });
            let early =
                tokio::time::timeout(std::time::Duration::from_millis(100), &mut offered).await;
            assert!(
                early.is_err(),
                "answered before the newer copy was confirmed"
            );
            match fate {
                Fate::Stays => ls.settle(&file.path, &pending, true, false),
                Fate::Lost => {
                    std::fs::remove_file(&file.path).unwrap();
                    ls.settle(&file.path, &pending, false, true);
                }
                Fate::Unconfirmed => ls.settle(&file.path, &pending, false, false),
            }
            let got = offered.await.unwrap().pop().unwrap();
            match fate {
                Fate::Lost => {
                    let e = got.unwrap_err().to_string();
                    assert!(e.contains("not stored"), "{e}");
                    assert!(ls.settling(&file.path).is_none(), "gone: forgotten");
                }
                Fate::Stays | Fate::Unconfirmed => {
                    assert_eq!(got.unwrap(), Install::Superseded);
                    assert!(
                        ls.settling(&file.path).is_none(),
                        "confirmed: no longer pending"
                    );
                    // Later offers are answered at once.
                    let (m0, t0, mp0) = temp(&ls, &name, 5);
                    let got = ls.install_batch(vec![(m0, t0, mp0)]).await.pop().unwrap();
                    assert_eq!(got.unwrap(), Install::Superseded);
                }
            }
        }
    }

    /// The registry speaks of one file: another one at the same path later (a local move
    /// brings an older copy there) is not held up by what happened to the first.
    #[tokio::test]
    async fn an_entry_of_the_registry_is_forgotten_when_its_file_is_not_there() {
        let dir = tempfile::tempdir().unwrap();
        let ls = LocalStore::open(&[dir.path().join("a")]).unwrap();
        let (m, t, mp) = temp(&ls, "x", 20);
        let Renamed::Stored(_, file, pending) = ls.install_unsynced(&m, t, mp).await.unwrap()
        else {
            panic!("stored");
        };
        // Its flush failed; it stays unconfirmed ...
        ls.settle(&file.path, &pending, false, false);
        assert!(ls.settling(&file.path).is_some());
        // ... until another file takes its path.
        std::fs::remove_file(&file.path).unwrap();
        std::fs::write(&file.path, b"another file").unwrap();
        assert!(ls.settling(&file.path).is_none());
        assert!(ls.pending.lock().unwrap().is_empty(), "forgotten");
    }

    #[tokio::test]
    async fn a_listing_shows_delete_records_newer_than_the_copy_here() {
        let dir = tempfile::tempdir().unwrap();
        let ls = LocalStore::open(&[dir.path().join("a"), dir.path().join("b")]).unwrap();
        write(&ls, "kept", 5).await;
        write(&ls, "gone", 5).await;
        ls.delete(&tomb("gone", 7)).await.unwrap();
        // A record of a name with no copy here (the copy is on a previous owner).
        ls.apply_tomb(&tomb("elsewhere", 9)).await.unwrap();
        let page = ls.list("b", "", None, 10).await.unwrap();
        let got: Vec<(&str, u64, bool)> = page
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.version, e.deleted))
            .collect();
        assert_eq!(
            got,
            [
                ("elsewhere", 9, true),
                ("gone", 7, true),
                ("kept", 5, false)
            ]
        );
        // A newer copy replaces the record.
        write(&ls, "gone", 8).await;
        let page = ls.list("b", "g", None, 10).await.unwrap();
        assert_eq!(page.entries.len(), 1);
        assert!(!page.entries[0].deleted && page.entries[0].version == 8);
    }

    #[tokio::test]
    async fn a_delete_is_seen_after_reads_found_no_records_and_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let paths = [dir.path().join("a"), dir.path().join("b")];
        let ls = LocalStore::open(&paths).unwrap();
        write(&ls, "x", 5).await;
        // Reads before any delete find no record directory and skip looking from then on.
        assert_eq!(ls.stamp("b", "x").map(|s| s.version), Some(5));
        assert!(ls.tomb("b", "x").is_none());
        assert!(ls.delete(&tomb("x", 7)).await.unwrap());
        assert_eq!(ls.tomb("b", "x").map(|t| t.version), Some(7));
        let s = ls.stamp("b", "x").unwrap();
        assert!(s.deleted && s.version == 7);
        // A record of a name never written here, after the bucket was looked at.
        ls.apply_tomb(&tomb("y", 9)).await.unwrap();
        assert_eq!(ls.tomb("b", "y").map(|t| t.version), Some(9));
        // A store opened afresh over the same disks finds what the first one wrote.
        drop(ls);
        let ls = LocalStore::open(&paths).unwrap();
        assert_eq!(ls.tomb("b", "x").map(|t| t.version), Some(7));
        assert_eq!(ls.tomb("b", "y").map(|t| t.version), Some(9));
        assert!(ls.tomb("other", "x").is_none());
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
        assert!(ls.delete(&tomb(&a, 100)).await.unwrap());
        assert!(ls.find("b", &a).is_none());
        assert_eq!(ls.find("b", &b).unwrap().2.version, 11);
        let c = format!("{}-c", "x/".repeat(150));
        assert_eq!(write(&ls, &c, 10).await, Install::Stored);
        let page = ls.list("b", "", None, 10).await.unwrap();
        let names: Vec<&str> = page
            .entries
            .iter()
            .filter(|e| !e.deleted)
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, vec![b.as_str(), c.as_str()]);
    }

    fn small(name: &str, version: u64, data: &[u8]) -> ObjMeta {
        ObjMeta {
            bucket: "b".into(),
            object: name.into(),
            size: data.len() as u64,
            checksum: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(data)),
            version,
            mtime: 0,
            attrs: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_batch_installs_each_object_as_one_install_would() {
        let dir = tempfile::tempdir().unwrap();
        let ls = LocalStore::open(&[dir.path().join("a"), dir.path().join("b")]).unwrap();
        write(&ls, "newer-here", 50).await;
        ls.delete(&tomb("deleted-here", 50)).await.unwrap();
        let mut items = Vec::new();
        for (name, version) in [
            ("n1", 10),
            ("n2", 10),
            ("newer-here", 40),
            ("deleted-here", 40),
        ] {
            let data = format!("data of {name}");
            let meta = small(name, version, data.as_bytes());
            let mp = ls.mountpath_for("b", name).unwrap();
            let tmp = store::write_temp_unsynced(&ls.path_of(mp), &meta, data.as_bytes()).unwrap();
            items.push((meta, tmp, mp));
        }
        let got: Vec<Install> = ls
            .install_batch(items)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            got,
            [
                Install::Stored,
                Install::Stored,
                Install::Superseded,
                Install::Superseded
            ]
        );
        for name in ["n1", "n2"] {
            let (_, path, meta) = ls.find("b", name).unwrap();
            assert_eq!(meta.version, 10);
            // A whole, valid object file: data and trailer agree.
            assert_eq!(store::verify(&path).unwrap(), meta);
            let mut data = Vec::new();
            let (m, _) = store::read_small_into(&path, 1024, &mut data).unwrap();
            assert_eq!((m, data), (meta, format!("data of {name}").into_bytes()));
        }
        assert_eq!(ls.find("b", "newer-here").unwrap().2.version, 50);
        assert!(ls.find("b", "deleted-here").is_none());
        // No temp file is left behind.
        for mp in 0..2 {
            let tmp = store::tmp_dir(&ls.path_of(mp));
            let left = std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);
            assert_eq!(left, 0, "{}", tmp.display());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_installed_by_a_shared_flush_replace_older_copies() {
        let dir = tempfile::tempdir().unwrap();
        let ls = Arc::new(LocalStore::open(&[dir.path().join("a"), dir.path().join("b")]).unwrap());
        // Older state: o0 at its place (the new copy renames over it), o1 on the other
        // mountpath (removed once the new copy is durable), o2 deleted (the record goes).
        write(&ls, "o0", 5).await;
        let other = 1 - ls.mountpath_for("b", "o1").unwrap();
        let old = small("o1", 5, b"old o1");
        let tmp = store::write_temp_unsynced(&ls.path_of(other), &old, b"old o1").unwrap();
        assert_eq!(
            ls.install_flushed(&old, tmp, other).await.unwrap(),
            Install::Stored
        );
        ls.delete(&tomb("o2", 5)).await.unwrap();
        // A PUT's way: written unsynced (streamed), installed together with others running at
        // the same time.
        let puts = (0..8).map(|i| {
            let ls = ls.clone();
            tokio::spawn(async move {
                let name = format!("o{i}");
                let mp = ls.mountpath_for("b", &name).unwrap();
                let mut w = ObjectWriter::create(&ls.path_of(mp)).await.unwrap();
                w.write(bytes::Bytes::from(format!("new {name}")))
                    .await
                    .unwrap();
                let mut meta = small(&name, 6, format!("new {name}").as_bytes());
                meta.checksum = w.checksum();
                let tmp = w.finish_unsynced(&meta).await.unwrap();
                ls.install_flushed(&meta, tmp, mp).await.unwrap()
            })
        });
        for p in futures::future::join_all(puts).await {
            assert_eq!(p.unwrap(), Install::Stored);
        }
        for i in 0..8 {
            let (_, path, meta) = ls.find("b", &format!("o{i}")).unwrap();
            assert_eq!(meta.version, 6);
            assert_eq!(store::verify(&path).unwrap(), meta);
        }
        // The older copies and the delete record are gone, each mountpath counts what it holds,
        // and no temp file is left behind.
        for name in ["o0", "o1"] {
            let copies: usize = (0..2)
                .map(|mp| ls.locate_on(mp, "b", name).is_some() as usize)
                .sum();
            assert_eq!(copies, 1, "{name}");
        }
        assert!(ls.tomb("b", "o2").is_none());
        let counted: u64 = (0..2).map(|mp| ls.mps.get(mp).unwrap().objects()).sum();
        assert_eq!(counted, 8);
        for mp in 0..2 {
            let tmp = store::tmp_dir(&ls.path_of(mp));
            let left = std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);
            assert_eq!(left, 0, "{}", tmp.display());
        }
    }

    #[tokio::test]
    async fn newer_copies_and_deletes_win_and_listing_pages_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let ls = LocalStore::open(&[dir.path().join("a"), dir.path().join("b")]).unwrap();
        assert_eq!(write(&ls, "x", 10).await, Install::Stored);
        assert_eq!(write(&ls, "x", 5).await, Install::Superseded);
        assert_eq!(ls.find("b", "x").unwrap().2.version, 10);
        assert!(ls.delete(&tomb("x", 20)).await.unwrap());
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

    /// A sender removes the delivered copies of a batch, all at once, but only those still
    /// at the version that was delivered: a newer write here meanwhile stays, and a copy
    /// moved to the other mountpath since it was read is found there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn removing_sent_copies_takes_only_the_delivered_versions() {
        let dir = tempfile::tempdir().unwrap();
        let ls = Arc::new(LocalStore::open(&[dir.path().join("a"), dir.path().join("b")]).unwrap());
        // Per mountpath, as a walk reads them.
        let mut sent: [Vec<SentCopy>; 2] = Default::default();
        for i in 0..40 {
            let name = format!("o{i:02}");
            assert_eq!(write(&ls, &name, 10).await, Install::Stored);
            let (mp, path, meta) = ls.find("b", &name).unwrap();
            let id = store::path_id(&path).unwrap();
            sent[mp].push(SentCopy { path, meta, id });
        }
        // Two were overwritten after they were sent.
        assert_eq!(write(&ls, "o03", 11).await, Install::Stored);
        assert_eq!(write(&ls, "o27", 11).await, Install::Stored);
        // One moved to the other mountpath (a rename: the same file, elsewhere).
        let (mp, from, meta) = ls.find("b", "o15").unwrap();
        assert!(ls.move_local(&from, &meta, 1 - mp).await.unwrap());
        assert_eq!(ls.find("b", "o15").unwrap().0, 1 - mp);
        let [a, b] = sent;
        let mut results = ls.remove_sent(0, a).await;
        results.extend(ls.remove_sent(1, b).await);
        assert_eq!(results.len(), 40);
        for (meta, r) in results {
            let kept = meta.object == "o03" || meta.object == "o27";
            assert_eq!(r.unwrap(), !kept, "{}", meta.object);
            assert_eq!(
                ls.find("b", &meta.object).is_some(),
                kept,
                "{}",
                meta.object
            );
        }
        assert_eq!(ls.totals().0, 2);
    }
}
