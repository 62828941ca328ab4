//! The set of a target's mountpaths (DESIGN §14): which there are, their states, where each
//! object belongs among them, and the record on disk that makes attach, detach and disable
//! survive a restart. Disk identity markers are checked here, at start and on attach, so that an
//! unmounted disk (an empty directory on the root filesystem) or another node's disk is never
//! written to.
//!
//! Indices are stable for the life of the process: the list only grows, and a detached
//! mountpath keeps its slot (attached again, it gets the same one).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::mountpath::{Marker, Mountpath, MpState, check_marker};
use super::object as store;
use crate::error::{Error, Result};
use crate::logic::placement;
use crate::types::smap::NodeId;

/// Where a target records its mountpaths, in its data dir.
pub const RECORD: &str = "mountpaths";

/// What the operator decided for one mountpath (its runtime state may be worse: failed, or
/// disabled for a missing marker).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: PathBuf,
    pub state: MpState,
}

/// The mountpaths a target recorded in `data_dir`, as the operator left them.
pub fn recorded(data_dir: &Path) -> Result<Vec<Entry>> {
    Ok(super::files::load(&data_dir.join(RECORD))?.unwrap_or_default())
}

/// Whose disks these are: written into markers and checked against them.
#[derive(Clone, Debug)]
pub struct Identity {
    pub target: NodeId,
    pub cluster: Option<String>,
}

pub struct MountpathSet {
    list: RwLock<Vec<Arc<Mountpath>>>,
    /// `(index, path digest)` of the enabled mountpaths: where objects belong. Rebuilt on every
    /// state change.
    placement: RwLock<Vec<(usize, u64)>>,
    /// The operator's decisions, as recorded.
    entries: RwLock<Vec<Entry>>,
    record: Option<PathBuf>,
    identity: Option<Identity>,
    /// Bumped on every change (a state, an attach): the node's supervisor follows it to start
    /// and stop mountpath actors.
    changes: tokio::sync::watch::Sender<u64>,
}

impl MountpathSet {
    /// Wakes on every change of the set or of a state.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Plain mountpaths: no record, no markers (unit tests, tools).
    pub fn plain(paths: &[PathBuf]) -> Result<Self> {
        let set = MountpathSet::empty(None, None);
        for p in paths {
            std::fs::create_dir_all(p)?;
            let p = p.canonicalize()?;
            reset_tmp(&p)?;
            set.push(Arc::new(Mountpath::new(p.clone())), MpState::Enabled);
        }
        set.refresh();
        Ok(set)
    }

    /// A target's mountpaths at start: the recorded ones (with the operator's decisions) and
    /// the configured ones, each checked: a known mountpath whose directory or marker is gone
    /// (an unmounted disk) or whose marker names another target or cluster is disabled with the
    /// reason, and the target starts on the others.
    pub fn open(configured: &[PathBuf], data_dir: &Path, identity: Identity) -> Result<Self> {
        let record = data_dir.join(RECORD);
        let recorded: Vec<Entry> = super::files::load(&record)?.unwrap_or_default();
        let set = MountpathSet::empty(Some(record), Some(identity));
        let mut entries = recorded.clone();
        for p in configured {
            let p = absolute(p)?;
            match entries.iter().find(|e| e.path == p) {
                Some(e) if e.state == MpState::Detached => tracing::warn!(
                    mountpath = %p.display(),
                    "configured, but detached by an operator: not used (attach it again with nodectl)"
                ),
                Some(_) => {}
                None => entries.push(Entry {
                    path: p,
                    state: MpState::Enabled,
                }),
            }
        }
        for e in &entries {
            let known = recorded.iter().any(|r| r.path == e.path);
            let mp = Arc::new(Mountpath::new(e.path.clone()));
            let (state, reason) = match e.state {
                MpState::Detached => (MpState::Detached, None),
                wanted => match set.check_at_start(&mp, known) {
                    Err(why) => (MpState::Disabled, Some(why)),
                    Ok(()) if wanted == MpState::Disabled => {
                        (MpState::Disabled, Some("disabled by an operator".into()))
                    }
                    Ok(()) => (wanted, None),
                },
            };
            if state != MpState::Enabled {
                mp.set_state(state, reason);
            }
            set.list.write().expect("poisoned").push(mp);
        }
        *set.entries.write().expect("poisoned") = entries;
        set.refresh();
        set.save()?;
        if set.placement.read().expect("poisoned").is_empty() {
            tracing::error!(
                "no usable mountpath: this target takes no objects until one is attached or enabled"
            );
        }
        Ok(set)
    }

    fn empty(record: Option<PathBuf>, identity: Option<Identity>) -> Self {
        MountpathSet {
            list: RwLock::new(Vec::new()),
            placement: RwLock::new(Vec::new()),
            entries: RwLock::new(Vec::new()),
            record,
            identity,
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    fn push(&self, mp: Arc<Mountpath>, state: MpState) -> usize {
        let mut list = self.list.write().expect("poisoned");
        self.entries.write().expect("poisoned").push(Entry {
            path: mp.path.clone(),
            state,
        });
        list.push(mp);
        list.len() - 1
    }

    /// Why a mountpath must not be used, checked at start: its directory, its marker, a probe.
    fn check_at_start(&self, mp: &Mountpath, known: bool) -> std::result::Result<(), String> {
        let p = &mp.path;
        if !p.is_dir() {
            if known {
                return Err(format!(
                    "{} is missing: the disk is not mounted?",
                    p.display()
                ));
            }
            std::fs::create_dir_all(p).map_err(|e| format!("cannot create it: {e}"))?;
        }
        self.check_marker(mp, known)?;
        reset_tmp(p).map_err(|e| format!("cannot write to it: {e}"))?;
        mp.probe().map_err(|e| format!("I/O failing: {e}"))
    }

    /// Checks (and where needed writes) the identity marker. `known`: this target used the
    /// directory before, so its marker must be there.
    fn check_marker(&self, mp: &Mountpath, known: bool) -> std::result::Result<(), String> {
        let Some(id) = &self.identity else {
            return Ok(());
        };
        match mp.read_marker() {
            Ok(Some(m)) => {
                check_marker(&m, &id.target, id.cluster.as_deref())
                    .map_err(|e| format!("foreign disk: {}", e.bare_message()))?;
                if m.cluster.is_none() && id.cluster.is_some() {
                    self.write_marker(mp)
                        .map_err(|e| format!("cannot write its marker: {e}"))?;
                }
                Ok(())
            }
            Ok(None) if known => Err(format!(
                "its marker {} is missing: the disk is not mounted, or was replaced (detach it, then attach it again to use a new disk)",
                super::mountpath::MARKER
            )),
            Ok(None) => self
                .write_marker(mp)
                .map_err(|e| format!("cannot write its marker: {e}")),
            Err(e) => Err(format!("unreadable marker: {e}")),
        }
    }

    fn write_marker(&self, mp: &Mountpath) -> Result<()> {
        let Some(id) = &self.identity else {
            return Ok(());
        };
        mp.write_marker(&Marker {
            target: id.target.clone(),
            cluster: id.cluster.clone(),
        })
    }

    /// Records the operator's decisions (atomically, durably).
    fn save(&self) -> Result<()> {
        match &self.record {
            Some(r) => super::files::persist(r, &*self.entries.read().expect("poisoned")),
            None => Ok(()),
        }
    }

    /// Rebuilds the placement list from the states.
    fn refresh(&self) {
        let list = self.list.read().expect("poisoned");
        let keys = list
            .iter()
            .enumerate()
            .filter(|(_, m)| m.state() == MpState::Enabled)
            .map(|(i, m)| (i, m.key.digest))
            .collect();
        *self.placement.write().expect("poisoned") = keys;
        self.changes.send_modify(|v| *v += 1);
    }

    // ---- reading ------------------------------------------------------------------------------

    pub fn len(&self) -> usize {
        self.list.read().expect("poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> Option<Arc<Mountpath>> {
        self.list.read().expect("poisoned").get(i).cloned()
    }

    /// Every mountpath, by index (detached ones too).
    pub fn all(&self) -> Vec<Arc<Mountpath>> {
        self.list.read().expect("poisoned").clone()
    }

    /// The mountpaths whose objects may be read (and moved off), with their indices.
    pub fn readable(&self) -> Vec<(usize, Arc<Mountpath>)> {
        self.all()
            .into_iter()
            .enumerate()
            .filter(|(_, m)| m.readable())
            .collect()
    }

    pub fn index_of(&self, path: &Path) -> Option<usize> {
        self.list
            .read()
            .expect("poisoned")
            .iter()
            .position(|m| m.path == path)
    }

    /// Where an object with this digest belongs: the best enabled mountpath (`None` when none
    /// is enabled).
    pub fn proper(&self, obj_digest: u64) -> Option<usize> {
        placement::best_mountpath(&self.placement.read().expect("poisoned"), obj_digest)
    }

    /// Where a new copy goes: its proper mountpath unless that one is past its high-water mark,
    /// then the best one that is not.
    pub fn for_write(&self, obj_digest: u64) -> Result<usize> {
        let keys = self.placement.read().expect("poisoned").clone();
        if keys.is_empty() {
            return Err(Error::NoSpace(
                "no enabled mountpath on this target (all disabled, detached or failed)".into(),
            ));
        }
        let list = self.all();
        let room: Vec<(usize, u64)> = keys
            .into_iter()
            .filter(|(i, _)| list.get(*i).is_some_and(|m| !m.is_full()))
            .collect();
        placement::best_mountpath(&room, obj_digest).ok_or_else(|| {
            Error::NoSpace("every mountpath of this target is past its high-water mark".into())
        })
    }

    /// Where an object on mountpath `at` should move locally, if anywhere: to its proper
    /// mountpath — unless that one is full and `at` may keep it — or, leaving a mountpath that
    /// is going away, wherever there is room.
    pub fn local_dest(&self, at: usize, obj_digest: u64) -> Option<usize> {
        let proper = self.proper(obj_digest)?;
        if proper == at {
            return None;
        }
        let here = self.get(at)?;
        if here.state() == MpState::Enabled {
            return match self.get(proper).is_some_and(|m| !m.is_full()) {
                true => Some(proper),
                false => None,
            };
        }
        self.for_write(obj_digest).ok().filter(|&to| to != at)
    }

    /// Mountpaths that failed, with why.
    pub fn failed(&self) -> Vec<(PathBuf, String)> {
        self.all()
            .iter()
            .filter(|m| m.state() == MpState::Failed)
            .map(|m| {
                let why = m.status().1.unwrap_or_default();
                (m.path.clone(), why)
            })
            .collect()
    }

    // ---- changing -----------------------------------------------------------------------------

    /// Sets a mountpath's state; `record` also records it as the operator's decision.
    pub fn set_state(
        &self,
        i: usize,
        state: MpState,
        reason: Option<String>,
        record: bool,
    ) -> Result<()> {
        let mp = self
            .get(i)
            .ok_or_else(|| Error::NotFound(format!("no mountpath #{i}")))?;
        mp.set_state(state, reason);
        self.refresh();
        if record {
            if let Some(e) = self
                .entries
                .write()
                .expect("poisoned")
                .iter_mut()
                .find(|e| e.path == mp.path)
            {
                e.state = state;
            }
            self.save()?;
        }
        Ok(())
    }

    /// Checks that `path` may become a mountpath of this target (a directory, not overlapping
    /// another, its marker ours or absent, writable); returns it canonical, and the index it had
    /// if it was detached before.
    pub fn check_attach(&self, path: &Path) -> Result<(PathBuf, Option<usize>)> {
        if !path.is_absolute() {
            return Err(Error::BadRequest(format!(
                "{}: give an absolute path",
                path.display()
            )));
        }
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::BadRequest(format!(
                "{}: {e} (mount the disk and create the directory first)",
                path.display()
            ))
        })?;
        if !meta.is_dir() {
            return Err(Error::BadRequest(format!(
                "{} is not a directory",
                path.display()
            )));
        }
        let p = path.canonicalize()?;
        let mut again = None;
        for (i, m) in self.all().iter().enumerate() {
            if m.path == p {
                if m.state() == MpState::Detached {
                    again = Some(i);
                    continue;
                }
                return Err(Error::BadRequest(format!(
                    "{} is already a mountpath of this target ({})",
                    p.display(),
                    m.state()
                )));
            }
            if m.state() != MpState::Detached && (p.starts_with(&m.path) || m.path.starts_with(&p))
            {
                return Err(Error::BadRequest(format!(
                    "{} overlaps mountpath {}: mountpaths must be separate directories",
                    p.display(),
                    m.path.display()
                )));
            }
        }
        let probe = Mountpath::new(p.clone());
        if let Some(id) = &self.identity
            && let Some(m) = probe.read_marker()?
        {
            check_marker(&m, &id.target, id.cluster.as_deref()).map_err(|e| {
                Error::BadRequest(format!(
                    "{}: foreign disk: {}",
                    p.display(),
                    e.bare_message()
                ))
            })?;
        }
        reset_tmp(&p)?;
        probe
            .probe()
            .map_err(|e| Error::BadRequest(format!("{}: I/O failing: {e}", p.display())))?;
        Ok((p, again))
    }

    /// Attaches `path` (checked with [`check_attach`](Self::check_attach)): its marker is
    /// written, it is recorded, and it takes its share of objects at once. Returns its index.
    pub fn attach(&self, path: &Path) -> Result<usize> {
        let (p, again) = self.check_attach(path)?;
        let mp = Arc::new(Mountpath::new(p.clone()));
        self.write_marker(&mp)?;
        let i = match again {
            Some(i) => {
                self.list.write().expect("poisoned")[i] = mp;
                if let Some(e) = self
                    .entries
                    .write()
                    .expect("poisoned")
                    .iter_mut()
                    .find(|e| e.path == p)
                {
                    e.state = MpState::Enabled;
                }
                i
            }
            None => self.push(mp, MpState::Enabled),
        };
        self.refresh();
        self.save()?;
        Ok(i)
    }

    /// Enables a disabled (or failed) mountpath again after checking it as at start.
    pub fn enable(&self, i: usize) -> Result<()> {
        let mp = self
            .get(i)
            .ok_or_else(|| Error::NotFound(format!("no mountpath #{i}")))?;
        if !mp.path.is_dir() {
            return Err(Error::BadRequest(format!(
                "{} is missing: mount the disk first",
                mp.path.display()
            )));
        }
        self.check_marker(&mp, true)
            .map_err(|why| Error::BadRequest(format!("{}: {why}", mp.path.display())))?;
        reset_tmp(&mp.path)?;
        mp.probe()
            .map_err(|e| Error::BadRequest(format!("{}: I/O failing: {e}", mp.path.display())))?;
        mp.take_io_errors();
        self.set_state(i, MpState::Enabled, None, true)
    }

    /// A detaching mountpath that holds nothing any more is forgotten: detached, its marker
    /// removed (the disk may go to another target). Returns the ones detached.
    pub fn finish_detach(&self) -> Result<Vec<PathBuf>> {
        let mut done = Vec::new();
        for (i, m) in self.all().iter().enumerate() {
            if m.state() == MpState::Detaching && m.is_fresh() {
                let _ = std::fs::remove_file(m.marker_path());
                self.set_state(i, MpState::Detached, None, true)?;
                done.push(m.path.clone());
            }
        }
        Ok(done)
    }
}

/// A half-written object of a crashed run is garbage: its writer never acknowledged it.
fn reset_tmp(p: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(store::tmp_dir(p));
    std::fs::create_dir_all(store::tmp_dir(p))
}

/// `p` made absolute (canonical when it exists).
fn absolute(p: &Path) -> Result<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Ok(c);
    }
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: &str) -> Identity {
        Identity {
            target: NodeId(t.into()),
            cluster: Some("u1".into()),
        }
    }

    #[test]
    fn an_unmounted_or_foreign_disk_is_disabled_and_the_rest_serve() {
        let data = tempfile::tempdir().unwrap();
        let (a, b) = (data.path().join("a"), data.path().join("b"));
        let set = MountpathSet::open(&[a.clone(), b.clone()], data.path(), id("t1")).unwrap();
        assert_eq!(set.readable().len(), 2);
        drop(set);
        // The disk under b is "unmounted": its directory is there, empty.
        std::fs::remove_dir_all(&b).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let set = MountpathSet::open(&[a.clone(), b.clone()], data.path(), id("t1")).unwrap();
        let mb = set.get(1).unwrap();
        assert_eq!(mb.state(), MpState::Disabled);
        assert!(
            mb.status().1.unwrap().contains("marker"),
            "{:?}",
            mb.status()
        );
        assert_eq!(set.proper(42), Some(0), "placement uses the others");
        assert!(
            set.enable(1).is_err(),
            "enable refuses a disk without its marker"
        );
        drop(set);
        // Another target's disk.
        let set = MountpathSet::open(std::slice::from_ref(&a), data.path(), id("t2")).unwrap();
        assert_eq!(set.get(0).unwrap().state(), MpState::Disabled);
        assert!(set.get(0).unwrap().status().1.unwrap().contains("foreign"));
    }

    #[test]
    fn decisions_survive_a_restart_and_detached_slots_are_reused() {
        let data = tempfile::tempdir().unwrap();
        let a = data.path().join("a");
        let set = MountpathSet::open(std::slice::from_ref(&a), data.path(), id("t1")).unwrap();
        let extra = data.path().join("extra");
        std::fs::create_dir_all(&extra).unwrap();
        let i = set.attach(&extra).unwrap();
        assert_eq!(i, 1);
        assert!(set.attach(&extra).is_err(), "attached twice");
        assert!(set.attach(&extra.join("sub")).is_err(), "nested");
        assert!(set.attach(Path::new("relative")).is_err());
        set.set_state(0, MpState::Disabled, Some("op".into()), true)
            .unwrap();
        drop(set);
        let set = MountpathSet::open(std::slice::from_ref(&a), data.path(), id("t1")).unwrap();
        assert_eq!(set.len(), 2, "the attached one is remembered");
        assert_eq!(set.get(0).unwrap().state(), MpState::Disabled);
        assert_eq!(set.proper(7), Some(1));
        set.set_state(1, MpState::Detaching, None, true).unwrap();
        assert_eq!(set.finish_detach().unwrap().len(), 1);
        assert!(!extra.join(super::super::mountpath::MARKER).exists());
        assert_eq!(set.attach(&extra).unwrap(), 1, "same slot again");
    }

    #[test]
    fn full_mountpaths_keep_their_objects_and_take_nothing_new() {
        let data = tempfile::tempdir().unwrap();
        let set = MountpathSet::plain(&[data.path().join("a"), data.path().join("b")]).unwrap();
        let d = (0..1000u64)
            .find(|d| set.proper(*d) == Some(0))
            .expect("some digest lands on a");
        set.get(0).unwrap().set_full(true);
        assert_eq!(set.for_write(d).unwrap(), 1);
        assert_eq!(set.local_dest(1, d), None, "not moved onto a full disk");
        set.get(1).unwrap().set_full(true);
        assert!(matches!(set.for_write(d), Err(Error::NoSpace(_))));
        set.get(0).unwrap().set_full(false);
        set.set_state(1, MpState::Disabled, None, false).unwrap();
        assert_eq!(
            set.local_dest(1, d),
            Some(0),
            "leaving: goes where it belongs"
        );
    }
}
