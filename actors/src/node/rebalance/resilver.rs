//! Resilver: the local rebalance of one target (DESIGN §14). Every readable mountpath is walked
//! — first counting what must move (totals and ETA early), then moving it — and each object or
//! delete record that is not on the mountpath where it belongs goes there: onto an attached or
//! enabled mountpath its share, off a disabled or detaching one everything. Moves hold the
//! object's lock and are durable before the source goes, so reads never miss an object (a read
//! that races a move looks again and finds it at its new place).
//!
//! The rule with the global rebalance (one waits for the other, they never walk at once): a
//! global generation preempts a running resilver, whose walk then runs again after the
//! generation ends — the generation's own joggers also move objects between this target's
//! mountpaths, so nothing waits long; a resilver asked for while a generation runs waits for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Counters;
use super::jogger::{stream_named, stream_objects};
use crate::error::{Error, Result};
use crate::store::LocalStore;
use crate::store::object as store;
use crate::types::status::{RebState, ResilverStatus, Stage};

/// Concurrent moves per mountpath (cross-filesystem moves copy and sync).
const MOVES_PER_MOUNTPATH: usize = 32;

/// One resilver as its manager keeps it.
pub struct Resilver {
    pub id: u64,
    pub reason: String,
    pub counters: Arc<Counters>,
    /// Set while it waits for a global generation (not walking).
    pub waiting_for: Option<u64>,
    pub cancel: CancellationToken,
}

impl Resilver {
    pub fn new(id: u64, reason: String, mountpaths: usize) -> Self {
        Resilver {
            id,
            reason,
            counters: Arc::new(Counters::new(id, mountpaths)),
            waiting_for: None,
            cancel: CancellationToken::new(),
        }
    }

    pub fn running(&self) -> bool {
        !matches!(self.counters.stage(), Stage::Done | Stage::Aborted)
    }

    pub fn status(&self, target: &str) -> ResilverStatus {
        let s = self.counters.snapshot(target);
        let state = match s.stage {
            Stage::Done => RebState::Finished,
            Stage::Aborted => RebState::Aborted,
            _ => RebState::Running,
        };
        let now = crate::types::unix_secs();
        let end = s.finished.unwrap_or(now);
        let elapsed = end.saturating_sub(s.started.unwrap_or(end)).max(1) as f64;
        let rate = s.local_bytes as f64 / elapsed;
        let eta = (state == RebState::Running && s.counted && rate > 0.0)
            .then(|| (s.bytes_total.saturating_sub(s.local_bytes) as f64 / rate).ceil() as u64);
        let blocked_by = match self.waiting_for {
            Some(g) => Some(format!(
                "waits for global rebalance g{g} (which also moves objects between mountpaths)"
            )),
            None => s.blocked_by,
        };
        ResilverStatus {
            target: target.to_string(),
            id: format!("r{}", self.id),
            state,
            stage: s.stage,
            reason: self.reason.clone(),
            objs_total: s.objs_total,
            bytes_total: s.bytes_total,
            counted: s.counted,
            objs_moved: s.local_objs,
            bytes_moved: s.local_bytes,
            rate_bytes_per_sec: rate,
            eta_secs: eta,
            errors: s.errors,
            blocked_by,
            started: s.started,
            finished: s.finished,
        }
    }
}

/// Walks every readable mountpath and moves what is misplaced; `Ok` when the walk ended (with
/// the errors counted), `Err` when it was cancelled.
pub async fn run(
    store: Arc<LocalStore>,
    c: Arc<Counters>,
    cancel: CancellationToken,
) -> Result<()> {
    c.set_stage(Stage::Traverse);
    let walks = store.mps.readable().into_iter().map(|(i, _)| {
        let (store, c, cancel) = (store.clone(), c.clone(), cancel.clone());
        async move { walk(&store, i, &c, &cancel).await }
    });
    futures::future::join_all(walks).await;
    if cancel.is_cancelled() {
        return Err(Error::Remote("aborted".into()));
    }
    Ok(())
}

async fn walk(store: &Arc<LocalStore>, mp: usize, c: &Counters, cancel: &CancellationToken) {
    let root = store.path_of(mp);
    // Pass 1: count, by file name where it says the name (no file opened; the totals are
    // corrected to what moved at the end).
    let (mut counted, mut counted_bytes) = (0, 0);
    let st = store.clone();
    let mut rx = stream_named(root.clone(), cancel.clone(), move |bucket, object| {
        st.local_dest(mp, bucket, object).is_some()
    });
    while let Some((_, m)) = rx.next().await {
        counted += 1;
        counted_bytes += m.size;
    }
    Counters::add(&c.objs_total, counted);
    Counters::add(&c.bytes_total, counted_bytes);
    Counters::add(&c.joggers_counted, 1);
    if cancel.is_cancelled() {
        return;
    }
    settle_tombs(store, mp, c, cancel).await;
    // Pass 2: move.
    let leaving = store
        .mps
        .get(mp)
        .is_some_and(|m| m.state() != crate::store::MpState::Enabled);
    // What this pass moved or failed to: clients write and delete meanwhile, so the count
    // above was an estimate (an object deleted, or overwritten on its proper mountpath, has
    // nothing left to move).
    let (found, found_bytes) = (&AtomicU64::new(0), &AtomicU64::new(0));
    stream_objects(root, cancel.clone())
        .for_each_concurrent(MOVES_PER_MOUNTPATH, |(path, m)| async move {
            if cancel.is_cancelled() {
                return;
            }
            // Test hook: a resilver slow enough to watch reads and writes go on during it —
            // one move at a time, so its length does not shrink with the moves in flight (at 32
            // a test polling for "midway" could miss the whole of it).
            if crate::fault::switch("slow_resilver") {
                static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
                let _turn = ONE_AT_A_TIME.lock().await;
                tokio::time::sleep(std::time::Duration::from_millis(40)).await;
            }
            let Some(to) = store.local_dest(mp, &m.bucket, &m.object) else {
                if leaving && store.proper(&m.bucket, &m.object).is_some() {
                    // Leaving, and nowhere with room: it stays, and the operator is told.
                    c.set_blocked(Some(
                        "no other mountpath has room (all past the high-water mark)".into(),
                    ));
                    Counters::add(&c.errors, 1);
                }
                return;
            };
            match store.move_local(&path, &m, to).await {
                Ok(true) => {
                    Counters::add(found, 1);
                    Counters::add(found_bytes, m.size);
                    Counters::add(&c.local_objs, 1);
                    Counters::add(&c.local_bytes, m.size);
                }
                // Deleted or overwritten meanwhile: nothing to move.
                Ok(false) => {}
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    Counters::add(found, 1);
                    Counters::add(found_bytes, m.size);
                    tracing::warn!(object = %format!("{}/{}", m.bucket, m.object), error = %e, "resilver move failed");
                    c.set_blocked(Some(format!("moving {}/{}: {e}", m.bucket, m.object)));
                    Counters::add(&c.errors, 1);
                }
            }
        })
        .await;
    if !cancel.is_cancelled() {
        // The totals become what there was to move, so a finished resilver reads all moved.
        Counters::correct(&c.objs_total, counted, found.load(Ordering::Relaxed));
        Counters::correct(
            &c.bytes_total,
            counted_bytes,
            found_bytes.load(Ordering::Relaxed),
        );
    }
    if leaving && c.errors.load(Ordering::Relaxed) == 0 {
        c.set_blocked(None);
    }
}

/// Delete records not on their proper mountpath move there (before the objects, so a delete is
/// never behind the copy it deleted).
async fn settle_tombs(store: &LocalStore, mp: usize, c: &Counters, cancel: &CancellationToken) {
    let root = store.path_of(mp);
    let stop = cancel.clone();
    let tombs = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let _ = store::walk_tombs(&root, |p, _| {
            if let Ok(t) = store::read_tomb(p) {
                out.push(t);
            }
            !stop.is_cancelled()
        });
        out
    })
    .await
    .unwrap_or_default();
    for t in tombs {
        if cancel.is_cancelled() {
            return;
        }
        if store.local_dest(mp, &t.bucket, &t.object).is_some()
            && let Err(e) = store.settle_tomb(&t).await
        {
            tracing::warn!(object = %format!("{}/{}", t.bucket, t.object), error = %e, "resilver: delete record did not move");
            Counters::add(&c.errors, 1);
        }
    }
}
