//! A mountpath: one directory (disk) a target stores objects in, with live counters of what it
//! holds, kept current by the data path and the rebalance.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::object as store;
use crate::logic::placement::MountpathKey;

/// One mountpath and its live counters (updated by the data path and the rebalance).
pub struct Mountpath {
    pub path: PathBuf,
    pub key: MountpathKey,
    objects: AtomicU64,
    bytes: AtomicU64,
    /// False after repeated failed health probes.
    pub enabled: AtomicBool,
}

impl Mountpath {
    pub fn new(path: PathBuf) -> Self {
        let key = MountpathKey::new(path.display().to_string());
        Mountpath {
            path,
            key,
            objects: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            enabled: AtomicBool::new(true),
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
        let p = store::tmp_dir(&self.path).join(".probe");
        std::fs::create_dir_all(store::tmp_dir(&self.path))?;
        std::fs::write(&p, b"probe")?;
        std::fs::remove_file(&p)
    }
}
