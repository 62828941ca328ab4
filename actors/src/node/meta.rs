//! The metadata writer (DESIGN §2, §3): the one actor that persists and publishes this node's
//! Smap, RMD, BMD and cluster config. Everything else reads the published value through a
//! [`MetaHandle`] (a `watch` receiver, so a reader never misses the latest value) and asks this
//! actor to apply updates; "one writer" holds by construction, not by a lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;

use super::names;
use crate::error::{Error, Result};
use crate::logic::meta::{Changed, merge};
use crate::store::{self, LocalStore};
use crate::types::config::ClusterConfig;
use crate::types::meta::{Meta, MetaUpdate};
use crate::types::smap::NodeId;

/// File names of the persisted metadata in a node's data dir.
pub const SMAP_FILE: &str = "smap.msgpack";
pub const RMD_FILE: &str = "rmd.msgpack";
pub const BMD_FILE: &str = "bmd.msgpack";
pub const CONFIG_FILE: &str = "config.msgpack";

/// Loads what a node persisted; `config` is used when none was (a new node).
pub fn load(data_dir: &Path, config: &ClusterConfig) -> Result<Meta> {
    Ok(Meta {
        smap: store::load(&data_dir.join(SMAP_FILE))?,
        rmd: store::load(&data_dir.join(RMD_FILE))?.unwrap_or_default(),
        bmd: store::load(&data_dir.join(BMD_FILE))?.unwrap_or_default(),
        config: store::load(&data_dir.join(CONFIG_FILE))?.unwrap_or_else(|| config.clone()),
    })
}

/// Reads the metadata and reaches the writer.
#[derive(Clone)]
pub struct MetaHandle {
    rx: watch::Receiver<Arc<Meta>>,
    writer: String,
}

impl MetaHandle {
    pub fn new(rx: watch::Receiver<Arc<Meta>>, id: &NodeId) -> Self {
        MetaHandle {
            rx,
            writer: names::meta(id),
        }
    }

    /// The current metadata.
    pub fn get(&self) -> Arc<Meta> {
        self.rx.borrow().clone()
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Meta>> {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        rx
    }

    /// Applies `upd` through the writer: persisted, then published, before this returns.
    pub async fn apply(&self, upd: MetaUpdate) -> Result<Changed> {
        // The writer may be restarting after a failure: give it a moment.
        let mut wait = Duration::from_millis(20);
        let writer = loop {
            match names::lookup::<MetaMsg>(&self.writer) {
                Some(w) => break w,
                None if wait < Duration::from_secs(2) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                None => {
                    return Err(Error::Unavailable(
                        "the metadata writer is not running".into(),
                    ));
                }
            }
        };
        ractor::call_t!(writer, MetaMsg::Apply, 30_000, Box::new(upd))
            .map_err(|e| Error::Unavailable(format!("metadata writer: {e}")))?
    }
}

pub struct MetaActor;

pub struct MetaArgs {
    pub data_dir: PathBuf,
    /// When the node started (test hooks time faults from it).
    pub started: std::time::Instant,
    /// The publishing side: owned by the node so that it outlives a restart of this actor.
    pub tx: Arc<watch::Sender<Arc<Meta>>>,
    pub me: NodeId,
    /// A target's store: its `settling` flag is raised with the publication of a generation
    /// that names it (see [`apply`]).
    pub store: Option<Arc<LocalStore>>,
}

pub enum MetaMsg {
    /// Merge, persist the changed parts, publish; reply with what changed.
    Apply(Box<MetaUpdate>, RpcReplyPort<Result<Changed>>),
    /// Decommission: forget the cluster (remove the persisted files; the published value
    /// stays until the process exits).
    Wipe(RpcReplyPort<Result<()>>),
}

impl Actor for MetaActor {
    type Msg = MetaMsg;
    type State = MetaArgs;
    type Arguments = MetaArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: MetaArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // After a restart, the disk is the truth: take any part persisted newer than what is
        // published (a write that landed before a crash mid-publish).
        let cur = args.tx.borrow().clone();
        let disk = load(&args.data_dir, &cur.config)?;
        if let Some(next) = merge(&cur, disk.as_update())?.next {
            args.tx.send_replace(Arc::new(next));
        }
        crate::fault::maybe_panic("meta");
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The file work (write, fsync, rename, directory fsync) runs on the blocking pool, not
        // on a runtime worker: two fsyncs per map change stalled a worker on every node
        // (scale-benchmarks finding 6). This handler still waits for it before taking the next
        // message, so updates are persisted and published in the order they came, and each is
        // durable before it is acknowledged.
        match msg {
            MetaMsg::Apply(upd, reply) => {
                let (dir, tx, started) = (state.data_dir.clone(), state.tx.clone(), state.started);
                let settling = state.store.clone().map(|s| (state.me.clone(), s));
                let res = blocking(move || apply(&dir, &tx, started, settling, *upd)).await;
                let _ = reply.send(res);
            }
            MetaMsg::Wipe(reply) => {
                let dir = state.data_dir.clone();
                let _ = reply.send(blocking(move || wipe(&dir)).await);
            }
        }
        Ok(())
    }
}

/// Runs `f` on the blocking pool; a panic in it is this actor's panic (its supervisor restarts
/// it, as when the work ran inline).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Unavailable(format!("metadata writer: {e}"))),
    }
}

fn wipe(dir: &Path) -> Result<()> {
    let mut res = Ok(());
    for f in [SMAP_FILE, RMD_FILE, BMD_FILE, CONFIG_FILE] {
        match std::fs::remove_file(dir.join(f)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => res = Err(e.into()),
        }
    }
    res
}

fn apply(
    dir: &Path,
    tx: &watch::Sender<Arc<Meta>>,
    started: std::time::Instant,
    settling: Option<(NodeId, Arc<LocalStore>)>,
    mut upd: MetaUpdate,
) -> Result<Changed> {
    // Test hook: a joiner that learns of buckets late (see `fault::hold_bmd`).
    if upd.bmd.is_some() && crate::fault::hold_bmd(started) {
        upd.bmd = None;
    }
    let cur = tx.borrow().clone();
    let m = merge(&cur, upd)?;
    if let Some(next) = m.next {
        // Persist before publishing: nobody acts on metadata that a crash could take back.
        if m.changed.smap
            && let Some(s) = &next.smap
        {
            store::persist(&dir.join(SMAP_FILE), s)?;
        }
        if m.changed.rmd {
            store::persist(&dir.join(RMD_FILE), &next.rmd)?;
        }
        if m.changed.bmd {
            store::persist(&dir.join(BMD_FILE), &next.bmd)?;
        }
        if m.changed.config {
            store::persist(&dir.join(CONFIG_FILE), &next.config)?;
        }
        // Requests are routed by the new map as soon as it is published, but the generation
        // that moves objects to their new owners starts later (the rebalance actor follows
        // the published value). In between, a copy here may be older than one written on the
        // previous owner (by a client or target still on the older map): reads must ask the
        // others from the first moment, so the flag goes up before the map is visible (nemesis
        // seed 5: a new owner served its own older copy). The generation lowers it once every
        // sender is done.
        if let Some((me, store)) = settling
            && next.rmd.version > cur.rmd.version
            && (next.rmd.participants.is_empty() || next.rmd.participants.contains(&me))
        {
            store
                .settling
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        tx.send_replace(Arc::new(next));
    }
    match m.refused {
        Some(e) => Err(e),
        None => Ok(m.changed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::smap::Rmd;
    use std::sync::atomic::Ordering;

    fn rmd(version: u64, participants: &[&str]) -> MetaUpdate {
        MetaUpdate {
            rmd: Some(Rmd {
                version,
                participants: participants.iter().map(|p| NodeId((*p).into())).collect(),
                ..Rmd::default()
            }),
            ..MetaUpdate::default()
        }
    }

    /// The window of nemesis seed 5: a generation naming this target is published (requests
    /// are routed by its map from then on) before the rebalance actor starts it. Reads must
    /// already ask the other targets then, so `settling` is up by the time anyone can see the
    /// new value.
    #[test]
    fn a_generation_naming_this_target_is_published_with_reads_settling() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::open(&[dir.path().join("mp")]).unwrap());
        let (tx, mut rx) = watch::channel(Arc::new(Meta::default()));
        let started = std::time::Instant::now();
        let me = NodeId("t1".into());
        let publish = |version, participants: &[&str]| {
            let settling = Some((me.clone(), store.clone()));
            apply(
                dir.path(),
                &tx,
                started,
                settling,
                rmd(version, participants),
            )
            .unwrap();
        };

        // Another target's generation: nothing comes here.
        publish(1, &["t2", "t3"]);
        assert!(rx.has_changed().unwrap());
        assert!(!store.settling.load(Ordering::Relaxed));
        rx.mark_unchanged();

        publish(2, &["t1", "t2"]);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().rmd.version, 2);
        assert!(store.settling.load(Ordering::Relaxed));

        // The same generation again (a repeated push) changes nothing; the generation's end is
        // what lowers the flag.
        store.settling.store(false, Ordering::Relaxed);
        publish(2, &["t1", "t2"]);
        assert!(!store.settling.load(Ordering::Relaxed));
        // An RMD with no list of participants names everyone.
        publish(3, &[]);
        assert!(store.settling.load(Ordering::Relaxed));
    }
}
