//! Mountpaths: the directories a target stores objects in, and one [`MountpathActor`] per
//! mountpath that counts its objects at start and probes its health. A mountpath whose probes
//! keep failing is reported disabled instead of taking the node down.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::placement::MountpathKey;
use crate::store;

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
    fn probe(&self) -> std::io::Result<()> {
        let p = store::tmp_dir(&self.path).join(".probe");
        std::fs::create_dir_all(store::tmp_dir(&self.path))?;
        std::fs::write(&p, b"probe")?;
        std::fs::remove_file(&p)
    }
}

pub struct MountpathActor;

pub enum MountpathMsg {
    Probe,
}

pub struct MountpathState {
    mp: Arc<Mountpath>,
    failures: u32,
}

const PROBE_EVERY: Duration = Duration::from_secs(10);

impl Actor for MountpathActor {
    type Msg = MountpathMsg;
    type State = MountpathState;
    type Arguments = Arc<Mountpath>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        mp: Arc<Mountpath>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let m = mp.clone();
        tokio::task::spawn_blocking(move || m.recount()).await?;
        myself.send_interval(PROBE_EVERY, || MountpathMsg::Probe);
        Ok(MountpathState { mp, failures: 0 })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MountpathMsg::Probe => {
                let m = state.mp.clone();
                match tokio::task::spawn_blocking(move || m.probe()).await? {
                    Ok(()) => {
                        state.failures = 0;
                        state.mp.enabled.store(true, Ordering::Relaxed);
                    }
                    Err(e) => {
                        state.failures += 1;
                        tracing::warn!(path = %state.mp.path.display(), error = %e, "mountpath probe failed");
                        if state.failures >= 3 {
                            state.mp.enabled.store(false, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
