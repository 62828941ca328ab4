//! A mountpath: one directory (disk) a target stores objects in (DESIGN §14), with its state,
//! its identity marker, and live counters of what it holds (kept current by the data path, the
//! rebalance and the resilver).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::object as store;
use crate::error::{Error, Result};
use crate::logic::placement::MountpathKey;
use crate::types::smap::NodeId;
pub use crate::types::status::MpState;

/// Name of the identity marker at the root of every mountpath.
pub const MARKER: &str = ".shoal-mountpath";

/// What a mountpath's marker says: whose disk it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub target: NodeId,
    /// The cluster, once the target knows it.
    #[serde(default)]
    pub cluster: Option<String>,
}

/// One mountpath and its live counters.
pub struct Mountpath {
    pub path: PathBuf,
    pub key: MountpathKey,
    objects: AtomicU64,
    bytes: AtomicU64,
    state: Mutex<(MpState, Option<String>)>,
    /// Used past the high-water mark: takes no new objects (holds what it has).
    full: AtomicBool,
    /// I/O errors seen by the data path since the last good probe.
    io_errors: AtomicU32,
    /// Wakes the mountpath's actor to probe at once (after an I/O error).
    pub probe_now: tokio::sync::Notify,
    /// Per bucket, whether delete records may be here (`false`: its record directory was
    /// absent when looked at, and none was written since). Spares every read of a bucket that
    /// never saw a delete the failed opens of its records; a bucket turns `true` for good.
    tombs: Mutex<HashMap<String, bool>>,
}

impl Mountpath {
    pub fn new(path: PathBuf) -> Self {
        let key = MountpathKey::new(path.display().to_string());
        Mountpath {
            path,
            key,
            objects: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            state: Mutex::new((MpState::Enabled, None)),
            full: AtomicBool::new(false),
            io_errors: AtomicU32::new(0),
            probe_now: tokio::sync::Notify::new(),
            tombs: Mutex::default(),
        }
    }

    /// The data path hit an I/O error here: have the disk probed now.
    pub fn note_io_error(&self, e: &dyn std::fmt::Display) {
        let n = self.io_errors.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(mountpath = %self.path.display(), error = %e, errors = n, "I/O error on mountpath");
        self.probe_now.notify_one();
    }

    /// Data-path I/O errors since the last good probe (cleared by one).
    pub fn take_io_errors(&self) -> u32 {
        self.io_errors.swap(0, Ordering::Relaxed)
    }

    pub fn state(&self) -> MpState {
        self.state.lock().expect("poisoned").0
    }

    /// The state and why it is not enabled.
    pub fn status(&self) -> (MpState, Option<String>) {
        self.state.lock().expect("poisoned").clone()
    }

    /// Only through [`super::mpset::MountpathSet::set_state`], which keeps placement current.
    pub(super) fn set_state(&self, s: MpState, reason: Option<String>) {
        if s != MpState::Enabled {
            tracing::warn!(mountpath = %self.path.display(), state = s.as_str(), reason = reason.as_deref().unwrap_or(""), "mountpath state");
        }
        *self.state.lock().expect("poisoned") = (s, reason);
    }

    /// Takes new objects: enabled and under its high-water mark.
    pub fn placeable(&self) -> bool {
        self.state() == MpState::Enabled && !self.full.load(Ordering::Relaxed)
    }

    /// Whether delete records of `bucket` may be on this mountpath.
    pub fn may_hold_tombs(&self, bucket: &str) -> bool {
        if let Some(&known) = self.tombs.lock().expect("poisoned").get(bucket) {
            return known;
        }
        // Looked at outside the lock; a record written meanwhile has marked the bucket first
        // (`holds_tombs`), and that mark is kept over this look's answer.
        let present = match std::fs::symlink_metadata(store::tomb_dir(&self.path, bucket)) {
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            Ok(_) => true,
        };
        *self
            .tombs
            .lock()
            .expect("poisoned")
            .entry(bucket.to_string())
            .or_insert(present)
    }

    /// A delete record of `bucket` is about to be written here: called before it is.
    pub fn holds_tombs(&self, bucket: &str) {
        self.tombs
            .lock()
            .expect("poisoned")
            .insert(bucket.to_string(), true);
    }

    /// Holds objects that may be read (and moved off).
    pub fn readable(&self) -> bool {
        !matches!(self.state(), MpState::Failed | MpState::Detached)
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    pub fn set_full(&self, full: bool) {
        if self.full.swap(full, Ordering::Relaxed) != full {
            tracing::warn!(mountpath = %self.path.display(), full, "mountpath high-water mark");
        }
    }

    pub fn objects(&self) -> u64 {
        self.objects.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    pub fn added(&self, size: u64) {
        self.objects.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
    }
    pub fn removed(&self, size: u64) {
        let _ = self
            .objects
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(1))
            });
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(size))
            });
    }

    /// Recounts objects from disk (start-up, and to correct drift).
    pub fn recount(&self) {
        let (mut n, mut b) = (0u64, 0u64);
        let _ = store::walk_objects(&self.path, |p, _| {
            if let Ok(m) = std::fs::metadata(p) {
                n += 1;
                b += m.len();
            }
            true
        });
        self.objects.store(n, Ordering::Relaxed);
        // File sizes include the small trailer; close enough for capacity reporting.
        self.bytes.store(b, Ordering::Relaxed);
    }

    /// Writes, syncs and removes a small probe file.
    pub fn probe(&self) -> std::io::Result<()> {
        if self.io_fault() {
            return Err(std::io::Error::other(
                "injected I/O failure (fault fail_io)",
            ));
        }
        let p = store::tmp_dir(&self.path).join(".probe");
        std::fs::create_dir_all(store::tmp_dir(&self.path))?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&p)?;
            f.write_all(b"probe")?;
            f.sync_all()?;
        }
        std::fs::remove_file(&p)
    }

    /// Test hook: `fail_io_<dir name>` makes this mountpath's I/O fail.
    pub fn io_fault(&self) -> bool {
        // Checked on every object lookup: no name is built unless switches can be on.
        crate::fault::switches_enabled()
            && self
                .path
                .file_name()
                .is_some_and(|n| crate::fault::switch(&format!("fail_io_{}", n.to_string_lossy())))
    }

    /// Test hook: `lose_writeback_<dir name>` makes every object installed here fail the check
    /// after its flush, as when the disk failed to write its data back.
    pub fn writeback_fault(&self) -> bool {
        crate::fault::switches_enabled()
            && self.path.file_name().is_some_and(|n| {
                crate::fault::switch(&format!("lose_writeback_{}", n.to_string_lossy()))
            })
    }

    pub fn marker_path(&self) -> PathBuf {
        self.path.join(MARKER)
    }

    pub fn read_marker(&self) -> Result<Option<Marker>> {
        super::files::load(&self.marker_path())
    }

    pub fn write_marker(&self, m: &Marker) -> Result<()> {
        super::files::persist(&self.marker_path(), m)
    }

    /// Whether it holds no object and no delete record (empty bucket directories aside).
    pub fn is_fresh(&self) -> bool {
        let mut any = false;
        let _ = store::walk_objects(&self.path, |_, _| {
            any = true;
            false
        });
        if !any {
            let _ = store::walk_tombs(&self.path, |_, _| {
                any = true;
                false
            });
        }
        !any
    }
}

/// Checks a marker against this target (and cluster): `Err` with the reason the mountpath
/// must not be used.
pub fn check_marker(m: &Marker, me: &NodeId, cluster: Option<&str>) -> Result<()> {
    if &m.target != me {
        return Err(Error::BadRequest(format!(
            "it belongs to t[{}], not to this target",
            m.target
        )));
    }
    if let (Some(theirs), Some(ours)) = (m.cluster.as_deref(), cluster)
        && theirs != ours
    {
        return Err(Error::BadRequest(format!(
            "it belongs to cluster {theirs}, not {ours}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_name_their_target_and_cluster() {
        let me = NodeId("met1".into());
        let m = Marker {
            target: me.clone(),
            cluster: Some("u1".into()),
        };
        assert!(check_marker(&m, &me, Some("u1")).is_ok());
        assert!(check_marker(&m, &me, None).is_ok());
        assert!(check_marker(&m, &NodeId("other".into()), Some("u1")).is_err());
        assert!(check_marker(&m, &me, Some("u2")).is_err());
    }

    #[test]
    fn states_decide_placement_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mp = Mountpath::new(dir.path().to_path_buf());
        assert!(mp.placeable() && mp.readable());
        mp.set_full(true);
        assert!(
            !mp.placeable() && mp.readable(),
            "full: holds, takes nothing new"
        );
        mp.set_full(false);
        for (s, place, read) in [
            (MpState::Disabled, false, true),
            (MpState::Detaching, false, true),
            (MpState::Failed, false, false),
            (MpState::Detached, false, false),
        ] {
            mp.set_state(s, Some("test".into()));
            assert_eq!((mp.placeable(), mp.readable()), (place, read), "{s:?}");
        }
        assert!(mp.is_fresh());
    }
}
