//! A jogger walks one mountpath for one generation: first it counts what must move (for totals
//! and ETA), then it moves it. A remote move is send → receiver writes atomically and verifies
//! the checksum → ack → only then delete here. Walking is idempotent, so a later generation
//! converges wherever an earlier one stopped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::Semaphore;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::Counters;
use crate::error::{Error, Result};
use crate::logic::placement;
use crate::node::meta::MetaHandle;
use crate::proto::codec::STREAM_CHUNK;
use crate::proto::msg::{Msg, RebBatch, RebObject, RebTomb, Reply, expect_go_ahead};
use crate::proto::pool::Pool;
use crate::store::LocalStore;
use crate::store::local::SentCopy;
use crate::store::object::{self as store, FileId, ObjMeta};
use crate::types::smap::{Node, NodeId};

/// The stop reason of a jogger that walked its whole mountpath.
pub const DONE: &str = "done";

/// Rebalance generations a delete record is kept for after the delete (then purged by the
/// owner's next walk). A target away for longer than that must rejoin empty.
pub const TOMB_KEEP_GENERATIONS: u64 = 16;

pub struct JoggerActor;

pub struct JoggerArgs {
    pub me: NodeId,
    pub generation: u64,
    /// Index of the mountpath this jogger walks.
    pub mountpath: usize,
    pub meta: MetaHandle,
    pub pool: Arc<Pool>,
    pub store: Arc<LocalStore>,
    pub counters: Arc<Counters>,
    pub cancel: CancellationToken,
    /// Set once this mountpath's objects are in the generation's totals: a restarted jogger
    /// does not count them again.
    pub counted: Arc<AtomicBool>,
}

pub struct JoggerState {
    args: JoggerArgs,
    /// Stops this jogger's walk when the actor ends, however it ends: a restarted jogger must
    /// not walk beside the walk of the one that panicked.
    _walk: DropGuard,
}

pub enum JoggerMsg {
    /// The walk task ended (`Err` = it failed).
    Finished(std::result::Result<(), String>),
    /// Test builds: panic if the switch `panic_jogger` is on (checked every 200 ms while the
    /// walk runs, like the other actors' injected faults: a check per work item could miss a
    /// switch turned on after the last item started).
    FaultCheck,
}

impl Actor for JoggerActor {
    type Msg = JoggerMsg;
    type State = JoggerState;
    type Arguments = JoggerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: JoggerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // The walk runs in a task so the actor stays responsive to stop requests; it ends with
        // the generation's token or with this actor.
        let walk = args.cancel.child_token();
        let w = Walk {
            me: args.me.clone(),
            generation: args.generation,
            mp: args.mountpath,
            meta: args.meta.clone(),
            pool: args.pool.clone(),
            store: args.store.clone(),
            c: args.counters.clone(),
            cancel: walk.clone(),
            counted: args.counted.clone(),
            by_name: AtomicBool::new(false),
        };
        if crate::fault::switches_enabled() {
            myself.send_interval(std::time::Duration::from_millis(200), || {
                JoggerMsg::FaultCheck
            });
        }
        tokio::spawn(async move {
            let res = w.walk().await;
            let _ = myself.cast(JoggerMsg::Finished(res.map_err(|e| e.to_string())));
        });
        Ok(JoggerState {
            args,
            _walk: walk.drop_guard(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let res = match msg {
            JoggerMsg::Finished(res) => res,
            JoggerMsg::FaultCheck => {
                crate::fault::maybe_panic("jogger");
                return Ok(());
            }
        };
        match res {
            Ok(()) => {
                // The generation learns of it from the termination reason.
                myself.stop(Some(DONE.into()));
                Ok(())
            }
            Err(e) if state.args.cancel.is_cancelled() => {
                tracing::debug!(error = %e, "jogger stopped by abort");
                myself.stop(None);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Objects the walk hands over at once: one wake-up of the walk's reader per this many, where
/// one per object cost a few percent of a small-object decommission.
const WALK_CHUNK: usize = 64;

/// Streams `(path, meta)` of every object on a mountpath from a blocking thread through a
/// bounded channel: memory stays flat whatever the object count.
pub(super) fn stream_objects(
    root: PathBuf,
    cancel: CancellationToken,
) -> tokio_stream_lite::Receiver<(PathBuf, ObjMeta)> {
    stream_walk(root, cancel, false, |_, _| true)
}

/// As [`stream_objects`], but only the objects `select(bucket, object)` picks, and one whose
/// file name says its name comes with only that and the size its file's length says
/// ([`is_named`]): its trailer is read when it is sent, where the data is read anyway. A walk reads each small
/// file it moves once instead of twice, and neither opens nor stats one that stays.
pub(super) fn stream_named(
    root: PathBuf,
    cancel: CancellationToken,
    select: impl Fn(&str, &str) -> bool + Send + 'static,
) -> tokio_stream_lite::Receiver<(PathBuf, ObjMeta)> {
    stream_walk(root, cancel, true, select)
}

fn stream_walk(
    root: PathBuf,
    cancel: CancellationToken,
    by_name: bool,
    select: impl Fn(&str, &str) -> bool + Send + 'static,
) -> tokio_stream_lite::Receiver<(PathBuf, ObjMeta)> {
    let (tx, rx) = tokio::sync::mpsc::channel(256 / WALK_CHUNK);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(WALK_CHUNK);
        let _ = store::walk_object_entries(&root, |e, bucket| {
            if cancel.is_cancelled() {
                return false;
            }
            let plain = by_name
                .then(|| crate::logic::names::decode_plain(e.file_name().to_str()?))
                .flatten();
            if let Some(object) = &plain
                && !select(bucket, object)
            {
                return true;
            }
            let path = e.path();
            let named =
                plain.and_then(|object| Some(named(bucket, object, e.metadata().ok()?.len())));
            match named.map(Ok).unwrap_or_else(|| store::read_meta(&path)) {
                // A named one was picked above.
                Ok(m) if !is_named(&m) && !select(&m.bucket, &m.object) => {}
                Ok(m) => chunk.push((path, m)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable object skipped");
                }
            }
            chunk.len() < WALK_CHUNK
                || tx
                    .blocking_send(std::mem::replace(
                        &mut chunk,
                        Vec::with_capacity(WALK_CHUNK),
                    ))
                    .is_ok()
        });
        if !chunk.is_empty() && !cancel.is_cancelled() {
            let _ = tx.blocking_send(chunk);
        }
    });
    tokio_stream_lite::Receiver::new(rx)
}

/// An object known by its file's name only: its size is what its file's length says (see
/// [`store::size_from_len`]), and it has no checksum or version until its trailer is read.
fn named(bucket: &str, object: String, len: u64) -> ObjMeta {
    ObjMeta {
        size: store::size_from_len(bucket, &object, len),
        bucket: bucket.to_string(),
        object,
        checksum: String::new(),
        version: 0,
        mtime: 0,
        attrs: Default::default(),
    }
}

/// Whether `m` came from [`named`] (a stored object always has a checksum).
fn is_named(m: &ObjMeta) -> bool {
    m.checksum.is_empty() && m.version == 0
}

/// Objects up to this size travel in batches.
const BATCH_OBJ_MAX: u64 = 128 * 1024;
/// A batch is sent once it holds this many objects or bytes (the receiver holds one batch in
/// memory per sender).
const BATCH_OBJS: usize = 256;
const BATCH_BYTES: u64 = 1024 * 1024;
/// Tries of a batch the receiver is not ready for (busy) before its objects go one by one.
const BATCH_BUSY_TRIES: usize = 8;

/// Objects to send, as the walk found them.
type Items = Vec<(PathBuf, ObjMeta)>;

/// One step of the moving pass.
enum Work {
    One(PathBuf, ObjMeta),
    Batch(Node, Items),
}

/// Where an object should go under the current map.
enum Dest {
    Stay,
    Local(usize),
    Remote(Node),
}

/// Takes `n` off a total, never below zero (an object the count missed may still be seen).
fn less(total: &std::sync::atomic::AtomicU64, n: u64) {
    if n > 0 {
        let _ = total.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
            Some(t.saturating_sub(n))
        });
    }
}

/// Where an object on mountpath `mp` of target `me` should go under the current map.
fn destination(
    meta: &MetaHandle,
    store: &LocalStore,
    me: &NodeId,
    mp: usize,
    bucket: &str,
    object: &str,
) -> Dest {
    let meta = meta.get();
    let Some(smap) = meta.smap.as_ref() else {
        return Dest::Stay;
    };
    match placement::owner(smap, bucket, object) {
        None => Dest::Stay, // no active target at all: nowhere to go
        Some(o) if o.id != *me => Dest::Remote(o.clone()),
        Some(_) => match store.local_dest(mp, bucket, object) {
            Some(to) => Dest::Local(to),
            None => Dest::Stay,
        },
    }
}

/// One jogger's walk of one mountpath for one generation.
struct Walk {
    me: NodeId,
    generation: u64,
    mp: usize,
    meta: MetaHandle,
    pool: Arc<Pool>,
    store: Arc<LocalStore>,
    c: Arc<Counters>,
    cancel: CancellationToken,
    counted: Arc<AtomicBool>,
    /// This walk counted by name: the total holds each named object's size as its file's
    /// length says it (exact but for its attributes) until its trailer is read and the total
    /// corrected to it.
    by_name: AtomicBool,
}

impl Walk {
    fn destination(&self, m: &ObjMeta) -> Dest {
        destination(
            &self.meta,
            &self.store,
            &self.me,
            self.mp,
            &m.bucket,
            &m.object,
        )
    }

    /// Named objects' trailers were read: their share of the counted bytes, `counted` (from
    /// their files' lengths), becomes their sizes. Only the walk that counted them corrects it,
    /// once.
    fn sized(&self, counted: u64, size: u64) {
        if self.by_name.load(Ordering::Relaxed) {
            match size.checked_sub(counted) {
                Some(more) => Counters::add(&self.c.bytes_total, more),
                None => less(&self.c.bytes_total, counted - size),
            }
        }
    }

    /// A counted object that does not move after all (deleted, replaced or its bucket
    /// destroyed since the count): out of the totals, so that a finished walk's totals are
    /// what moved. `size` is what the byte total holds for it.
    fn forget(&self, size: u64) {
        if self.by_name.load(Ordering::Relaxed) {
            less(&self.c.objs_total, 1);
            less(&self.c.bytes_total, size);
        }
    }

    /// Whether an object belongs elsewhere under the map current when it is asked: the walk
    /// asks it of each object it finds, on its own thread.
    fn misplaced(&self) -> impl Fn(&str, &str) -> bool + Send + 'static {
        let (meta, store, me, mp) = (
            self.meta.clone(),
            self.store.clone(),
            self.me.clone(),
            self.mp,
        );
        move |bucket, object| {
            !matches!(
                destination(&meta, &store, &me, mp, bucket, object),
                Dest::Stay
            )
        }
    }

    async fn walk(&self) -> Result<()> {
        let root = self.store.path_of(self.mp);
        let c = &self.c;

        // Pass 1: count, so progress has totals (and ETA) before the first byte moves. Added
        // whole once the count is complete, and once per generation: a walk that stopped
        // half-way leaves nothing to add twice. By name, as the moving pass walks: no file is
        // opened to count it (a third of a small-object decommission's walking was that).
        if !self.counted.load(Ordering::Acquire) {
            let (mut objs, mut bytes) = (0, 0);
            let mut rx = stream_named(root.clone(), self.cancel.clone(), self.misplaced());
            while let Some((_, m)) = rx.next().await {
                objs += 1;
                bytes += m.size;
            }
            if self.cancel.is_cancelled() {
                return Err(Error::Remote("aborted".into()));
            }
            Counters::add(&c.objs_total, objs);
            Counters::add(&c.bytes_total, bytes);
            Counters::add(&c.joggers_counted, 1);
            self.by_name.store(true, Ordering::Relaxed);
            self.counted.store(true, Ordering::Release);
        }

        // Delete records first: the new owner learns of deletes before any older copy could
        // reach it from elsewhere.
        self.move_tombs(&root).await;

        // Pass 2: move. Small objects bound for the same target travel in batches; several
        // batches (or large objects) are in flight at once, so walking, reading, sending and
        // the receivers' writing overlap. A batch holds its bodies in memory here and at its
        // receiver, so `senders` of them at a time (a slot, taken in `send_batch` until its
        // body is acknowledged: removing the sent copies needs none); a large object goes from
        // its file and holds no buffer, and twice as many keep the receivers' fsyncs
        // overlapped (a 1 MiB decommission waited on them with a core idle).
        let senders = self
            .meta
            .get()
            .config
            .rebalance
            .senders_per_mountpath
            .max(1);
        // Held here too while paused: a walk that finds nothing to move would otherwise end
        // its part while the others hold theirs (it never meets an object to hold at).
        self.while_paused().await;
        let stream = stream_named(root, self.cancel.clone(), self.misplaced());
        let failed = std::sync::atomic::AtomicBool::new(false);
        let batch_slots = Semaphore::new(senders);
        self.batched(stream)
            .for_each_concurrent(senders * 2, |work| {
                let (failed, batch_slots) = (&failed, &batch_slots);
                async move {
                    if self.cancel.is_cancelled() {
                        return;
                    }
                    self.while_paused().await;
                    let ok = match work {
                        Work::One(path, m) => self.move_one(path, m).await,
                        Work::Batch(node, items) => {
                            self.move_batch(&node, items, batch_slots).await
                        }
                    };
                    if !ok {
                        failed.store(true, Ordering::Relaxed);
                    }
                }
            })
            .await;
        if self.cancel.is_cancelled() {
            return Err(Error::Remote("aborted".into()));
        }
        if failed.load(Ordering::Relaxed) {
            // Some objects could not move: keep the marker (the cluster retries in a new
            // generation) but let this one finish so the operator sees the errors.
            tracing::warn!(mountpath = self.mp, "rebalance walk finished with errors");
        }
        Ok(())
    }

    /// Groups the walk's small objects by destination target into batches (at most
    /// [`BATCH_OBJS`] objects, [`BATCH_BYTES`] bytes); everything else goes one by one. At most
    /// one partial batch per target waits for more, so memory stays flat.
    fn batched<'a>(
        &'a self,
        rx: tokio_stream_lite::Receiver<(PathBuf, ObjMeta)>,
    ) -> impl futures::Stream<Item = Work> + 'a {
        struct St {
            rx: tokio_stream_lite::Receiver<(PathBuf, ObjMeta)>,
            pending: std::collections::HashMap<NodeId, (Node, Items, u64)>,
            ready: std::collections::VecDeque<Work>,
            done: bool,
        }
        let st = St {
            rx,
            pending: Default::default(),
            ready: Default::default(),
            done: false,
        };
        futures::stream::unfold(st, move |mut st| async move {
            loop {
                if let Some(w) = st.ready.pop_front() {
                    return Some((w, st));
                }
                if st.done {
                    return None;
                }
                let Some((path, m)) = st.rx.next().await else {
                    st.done = true;
                    st.ready.extend(
                        st.pending
                            .drain()
                            .map(|(_, (node, items, _))| Work::Batch(node, items)),
                    );
                    continue;
                };
                let node = match self.destination(&m) {
                    Dest::Remote(node) if m.size <= BATCH_OBJ_MAX => node,
                    _ => {
                        st.ready.push_back(Work::One(path, m));
                        continue;
                    }
                };
                let size = m.size;
                let id = node.id.clone();
                let entry = st
                    .pending
                    .entry(id.clone())
                    .or_insert_with(|| (node, Vec::new(), 0));
                entry.1.push((path, m));
                entry.2 += size;
                if (entry.1.len() >= BATCH_OBJS || entry.2 >= self.batch_bytes())
                    && let Some((node, items, _)) = st.pending.remove(&id)
                {
                    st.ready.push_back(Work::Batch(node, items));
                }
            }
        })
    }

    /// Moves one object where it belongs now; false if it failed (counted and logged).
    async fn move_one(&self, path: PathBuf, m: ObjMeta) -> bool {
        if self.cancel.is_cancelled() {
            return true;
        }
        let m = if is_named(&m) {
            // A trailer read, as every lookup of one is, on this thread.
            match store::read_meta(&path) {
                Ok(read) if read.bucket == m.bucket && read.object == m.object => {
                    self.sized(m.size, read.size);
                    read
                }
                // Deleted or replaced by another object's file meanwhile: nothing to move.
                Ok(_) => {
                    self.forget(m.size);
                    return true;
                }
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.forget(m.size);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable object skipped");
                    return true;
                }
            }
        } else {
            m
        };
        let c = &self.c;
        let res = match self.destination(&m) {
            Dest::Stay => Ok(()),
            Dest::Local(to) => self.store.move_local(&path, &m, to).await.map(|moved| {
                if moved {
                    Counters::add(&c.local_objs, 1);
                    Counters::add(&c.local_bytes, m.size);
                } else {
                    // Deleted or overwritten meanwhile.
                    self.forget(m.size);
                }
            }),
            Dest::Remote(node) => {
                self.throttle(m.size).await;
                self.send_with_retry(&node, &path, &m).await
            }
        };
        match res {
            Err(e) if !self.cancel.is_cancelled() => {
                tracing::warn!(object = %format!("{}/{}", m.bucket, m.object), error = %e, "rebalance move failed");
                Counters::add(&c.errors, 1);
                false
            }
            _ => true,
        }
    }

    /// Moves a batch of small objects to `node`; whatever the batch did not store (refused,
    /// failed its checksum, moved elsewhere meanwhile) goes on one by one, where every
    /// failure has its own handling.
    async fn move_batch(&self, node: &Node, items: Items, slots: &Semaphore) -> bool {
        let bytes = items.iter().map(|(_, m)| m.size).sum();
        self.throttle(bytes).await;
        let mut delay = Duration::from_millis(20);
        let mut left = items;
        for _ in 0..BATCH_BUSY_TRIES {
            if self.cancel.is_cancelled() || left.is_empty() {
                return true;
            }
            match self.send_batch(node, left, slots).await {
                Ok(rest) => {
                    left = rest;
                    break;
                }
                // The receiver has not started this generation yet (or lacks a bucket): it
                // will shortly, keep batching.
                Err((Error::Busy(_), rest)) => left = rest,
                Err((e, rest)) => {
                    tracing::debug!(to = %node.id, error = %e, "batch refused, sending one by one");
                    left = rest;
                    break;
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return true,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_millis(200));
        }
        let mut ok = true;
        for (path, m) in left {
            ok &= self.move_one(path, m).await;
        }
        ok
    }

    /// One batch exchange. Returns the objects it did not store (to send one by one), or the
    /// error that refused the whole batch with every object still to send.
    async fn send_batch(
        &self,
        node: &Node,
        items: Items,
        slots: &Semaphore,
    ) -> std::result::Result<Items, (Error, Items)> {
        // Test hook: hold this target's sends (an object that stays here for a while).
        while crate::fault::switch("hold_reb_sends") && !self.cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut rest = Vec::new();
        let mut sendable = Vec::with_capacity(items.len());
        for (path, m) in items {
            // The map may have changed while the batch filled: such objects are decided anew.
            match self.destination(&m) {
                Dest::Remote(n) if n.id == node.id => sendable.push((path, m)),
                _ => rest.push((path, m)),
            }
        }
        if sendable.is_empty() {
            return Ok(rest);
        }
        // Held while the body is in memory, here and at the receiver.
        let slot = slots.acquire().await;
        // A walk stopped while it waited (its jogger ended, or the generation) sends nothing
        // more: a restarted jogger's walk owns these objects now.
        if self.cancel.is_cancelled() {
            rest.extend(sendable);
            return Err((Error::Remote("aborted".into()), rest));
        }
        // Read every object whole, appended in place to one body: one open and one read each.
        // Room for every body and one trailer: no growing (and copying) as it fills.
        let room = sendable.iter().map(|(_, m)| m.size as usize).sum::<usize>() + 4096;
        let read = tokio::task::spawn_blocking(move || {
            let mut body = Vec::with_capacity(room);
            let mut sent = Vec::with_capacity(sendable.len());
            let mut rest = Vec::new();
            // Trailers of named objects read: (their sizes as counted, as read).
            let mut named = (0, 0);
            // Sizes of the objects gone since the walk.
            let mut gone = Vec::new();
            for (path, walked) in sendable {
                let from = body.len();
                match store::read_small_into(&path, BATCH_OBJ_MAX, &mut body) {
                    Ok((meta, id))
                        if meta.bucket == walked.bucket && meta.object == walked.object =>
                    {
                        if is_named(&walked) {
                            named.0 += walked.size;
                            named.1 += meta.size;
                        }
                        sent.push((path, meta, id))
                    }
                    // The path names another object now (long names share slots): not for
                    // this destination; it stays for a later walk.
                    Ok(_) => {
                        body.truncate(from);
                        gone.push(walked.size);
                    }
                    // Deleted or replaced meanwhile: nothing to move.
                    Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                        gone.push(walked.size)
                    }
                    // Grown large, unreadable: the one-by-one path sends or reports it.
                    Err(_) => rest.push((path, walked)),
                }
            }
            (body, sent, rest, named, gone)
        })
        .await;
        let (body, sent, more, named, gone) = match read {
            Ok(x) => x,
            Err(e) => return Err((Error::Io(std::io::Error::other(e)), rest)),
        };
        self.sized(named.0, named.1);
        for size in gone {
            self.forget(size);
        }
        rest.extend(more);
        if sent.is_empty() {
            return Ok(rest);
        }
        let mut offered: Vec<ObjMeta> = sent.iter().map(|(_, m, _)| m.clone()).collect();
        if crate::fault::switch("corrupt_reb_sends") {
            // Test hook: the receiver finds checksum mismatches.
            for m in &mut offered {
                m.checksum = "0".repeat(16);
            }
        }
        let offer = Msg::from(RebBatch {
            generation: self.generation,
            bmd_version: self.meta.get().bmd.version,
            metas: offered,
        });
        let all = |rest: Items, sent: Vec<(PathBuf, ObjMeta, FileId)>| {
            let mut v = rest;
            v.extend(sent.into_iter().map(|(p, m, _)| (p, m)));
            v
        };
        let (mut link, first) = match self
            .pool
            .exchange(&node.addr, offer, Duration::from_secs(5))
            .await
        {
            Ok(x) => x,
            Err(e) => return Err((e, all(rest, sent))),
        };
        if let Err(e) = expect_go_ahead(first) {
            self.pool.release(link);
            return Err((e, all(rest, sent)));
        }
        let corr = link.conn.last_corr();
        let io = async {
            link.conn.send_body_bytes(corr, &body).await?;
            match link.conn.finish(corr).await? {
                Msg::Reply(Reply::RebBatchAck(ack)) if ack.stored.len() == sent.len() => {
                    Ok(ack.stored)
                }
                other => Err(Error::Protocol(format!(
                    "unexpected {} after a rebalance batch",
                    other.name()
                ))),
            }
        };
        let stored = match tokio::time::timeout(Duration::from_secs(60), io).await {
            Ok(Ok(s)) => s,
            // The link is dropped, not pooled: it may be out of step.
            Ok(Err(e)) => return Err((e, all(rest, sent))),
            Err(_) => {
                return Err((
                    Error::Timeout(format!("sending to {}", node.addr)),
                    all(rest, sent),
                ));
            }
        };
        self.pool.release(link);
        drop(body);
        drop(slot);
        // A newer generation may have decided otherwise meanwhile: then it owns the decision
        // and these copies stay.
        let current = self.meta.get().rmd.version == self.generation;
        let c = &self.c;
        let mut delivered = Vec::with_capacity(sent.len());
        for ((path, meta, id), ok) in sent.into_iter().zip(stored) {
            if !ok {
                rest.push((path, meta));
                continue;
            }
            Counters::add(&c.tx_objs, 1);
            Counters::add(&c.tx_bytes, meta.size);
            delivered.push(SentCopy { path, meta, id });
        }
        if current {
            for (meta, r) in self.store.remove_sent(self.mp, delivered).await {
                if let Err(e) = r {
                    tracing::warn!(object = %format!("{}/{}", meta.bucket, meta.object), error = %e, "sent copy not removed");
                }
            }
        }
        c.set_blocked(None);
        Ok(rest)
    }

    /// Sends misplaced delete records to their object's owner (or to the right local
    /// mountpath), and purges the ones kept long enough (DESIGN §8: a delete is remembered for
    /// [`TOMB_KEEP_GENERATIONS`] generations after it, wherever its object's ownership went).
    async fn move_tombs(&self, root: &std::path::Path) {
        let mut tombs = Vec::new();
        let r = root.to_path_buf();
        let cancel = self.cancel.clone();
        let walked = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let _ = store::walk_tombs(&r, |p, _| {
                if let Ok(t) = store::read_tomb(p) {
                    out.push((p.to_path_buf(), t));
                }
                !cancel.is_cancelled()
            });
            out
        })
        .await;
        if let Ok(w) = walked {
            tombs = w;
        }
        for (path, tomb) in tombs {
            if self.cancel.is_cancelled() {
                return;
            }
            let probe = ObjMeta {
                bucket: tomb.bucket.clone(),
                object: tomb.object.clone(),
                version: tomb.version,
                ..Default::default()
            };
            let res = match self.destination(&probe) {
                Dest::Stay => {
                    if tomb.generation + TOMB_KEEP_GENERATIONS <= self.generation {
                        let _ = std::fs::remove_file(&path);
                    }
                    Ok(())
                }
                Dest::Local(_) => self.store.settle_tomb(&tomb).await,
                Dest::Remote(node) => {
                    let req = RebTomb {
                        generation: self.generation,
                        tomb: tomb.clone(),
                        bmd_version: self.meta.get().bmd.version,
                    };
                    match self
                        .pool
                        .rpc(&node.addr, req, Duration::from_secs(10))
                        .await
                    {
                        Ok(_) | Err(Error::NotFound(_)) => self.store.remove_tomb_if(&tomb).await,
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = res
                && !self.cancel.is_cancelled()
            {
                tracing::warn!(object = %format!("{}/{}", tomb.bucket, tomb.object), error = %e, "delete record did not move");
                Counters::add(&self.c.errors, 1);
            }
        }
    }

    /// Keeps this target's outgoing rate under `rebalance.throttle_bytes_per_sec`, read live
    /// (`nodectl rebalance throttle`): a changed limit (or none) applies to a send already
    /// waiting, not only to the next one.
    async fn throttle(&self, bytes: u64) {
        let mut rx = self.meta.subscribe();
        let mut limit = rx
            .borrow_and_update()
            .config
            .rebalance
            .throttle_bytes_per_sec;
        loop {
            let wait = self.c.pace(limit, bytes);
            if wait.is_zero() {
                return;
            }
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = &mut sleep => return,
                    r = rx.changed() => {
                        if r.is_err() {
                            return;
                        }
                        let now = rx.borrow_and_update().config.rebalance.throttle_bytes_per_sec;
                        if now != limit {
                            limit = now;
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Bytes a batch may carry: under a throttle, about a second's worth, so the rate stays
    /// even and a lifted throttle is not stuck behind a long booking.
    fn batch_bytes(&self) -> u64 {
        match self.meta.get().config.rebalance.throttle_bytes_per_sec {
            0 => BATCH_BYTES,
            limit => limit.min(BATCH_BYTES),
        }
    }

    /// Holds the walk while the cluster config says `rebalance.paused` (`nodectl rebalance
    /// pause`); it goes on from the next object on resume, or stops on abort.
    async fn while_paused(&self) {
        let mut rx = self.meta.subscribe();
        loop {
            if !rx.borrow_and_update().config.rebalance.paused {
                self.c.set_paused(false);
                return;
            }
            self.c.set_paused(true);
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = rx.changed() => if r.is_err() { return },
            }
        }
    }

    /// Sends one object until it is acked, the generation is aborted, or it fails for good.
    async fn send_with_retry(
        &self,
        node: &Node,
        path: &std::path::Path,
        walked: &ObjMeta,
    ) -> Result<()> {
        let c = &self.c;
        let mut delay = Duration::from_millis(50);
        let mut checksum_failures = 0;
        // Test hook: hold this target's sends (an object that stays here for a while).
        while crate::fault::switch("hold_reb_sends") && !self.cancel.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            if self.cancel.is_cancelled() {
                return Err(Error::Remote("aborted".into()));
            }
            match self.send_once(node, path, walked).await {
                Ok(Some(size)) => {
                    Counters::add(&c.tx_objs, 1);
                    Counters::add(&c.tx_bytes, size);
                    c.set_blocked(None);
                    return Ok(());
                }
                Ok(None) => {
                    // Gone or replaced locally meanwhile: nothing to move.
                    self.forget(walked.size);
                    return Ok(());
                }
                Err(Error::Checksum(m)) => {
                    checksum_failures += 1;
                    c.set_blocked(Some(format!(
                        "checksum mismatch sending to t[{}]: {m}",
                        node.id
                    )));
                    if checksum_failures >= 3 {
                        return Err(Error::Checksum(m));
                    }
                }
                // Stale generation, implausible object, bad name: retrying cannot help.
                Err(e @ Error::BadRequest(_)) => return Err(e),
                Err(Error::NoSpace(m)) => {
                    // Our copy stays; the send is retried with back-off and resumes by itself
                    // once the receiver has room again.
                    c.set_blocked(Some(format!("disk full on t[{}]: {m}", node.id)));
                }
                Err(Error::Busy(m)) => {
                    // The receiver has not seen this generation (or this bucket) yet; it will
                    // shortly. Our copy stays until it is installed there.
                    c.set_blocked(Some(format!("t[{}] not ready: {m}", node.id)));
                    delay = delay.min(Duration::from_millis(200));
                }
                Err(Error::NotFound(m)) => {
                    // The bucket was destroyed: our copy goes with it, nothing to move.
                    tracing::debug!(to = %node.id, reason = %m, "rebalance object refused");
                    self.forget(walked.size);
                    return Ok(());
                }
                Err(e) => {
                    self.pool.forget(&node.addr);
                    c.set_blocked(Some(format!("t[{}] unreachable: {e}", node.id)));
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(Error::Remote("aborted".into())),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// One attempt: returns the size sent, or `None` if there was nothing to send any more.
    async fn send_once(
        &self,
        node: &Node,
        path: &std::path::Path,
        walked: &ObjMeta,
    ) -> Result<Option<u64>> {
        let (file, meta) = match store::open_object(path).await {
            // The path names another object now (long names share slots): `node` is not its
            // owner. It stays here (readable through the neighbours) for a later walk.
            Ok((_, m)) if m.bucket != walked.bucket || m.object != walked.object => {
                return Ok(None);
            }
            Ok(x) => x,
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut offered = meta.clone();
        if crate::fault::switch("corrupt_reb_sends") {
            // Test hook: the receiver finds a checksum mismatch (a send that keeps failing).
            offered.checksum = "0".repeat(16);
        }
        let offer = Msg::from(RebObject {
            generation: self.generation,
            meta: offered,
            bmd_version: self.meta.get().bmd.version,
        });
        // The receiver refuses (busy, stale, bucket gone) before any body byte is sent.
        let (mut link, first) = self
            .pool
            .exchange(&node.addr, offer, Duration::from_secs(5))
            .await?;
        if let Err(e) = expect_go_ahead(first) {
            self.pool.release(link);
            return Err(e);
        }
        let corr = link.conn.last_corr();
        let io = async {
            // The receiver writes as the body arrives: smaller frames overlap better there.
            link.conn
                .send_file(corr, file, 0, meta.size, STREAM_CHUNK)
                .await?;
            match link.conn.finish(corr).await? {
                Msg::Reply(Reply::RebAck(ack)) => Ok(ack.stored),
                other => Err(Error::Protocol(format!(
                    "unexpected {} after a rebalance object",
                    other.name()
                ))),
            }
        };
        let stored = tokio::time::timeout(Duration::from_secs(60), io)
            .await
            .map_err(|_| Error::Timeout(format!("sending to {}", node.addr)))??;
        self.pool.release(link);
        // A newer generation may have decided otherwise meanwhile: then it owns the decision
        // and this copy stays.
        if stored && self.meta.get().rmd.version == self.generation {
            self.store.remove_if_version(&meta).await?;
        }
        Ok(Some(meta.size))
    }
}

/// A minimal `Stream` over a tokio mpsc receiver (avoids another dependency).
mod tokio_stream_lite {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Items sent in chunks, taken one by one.
    pub struct Receiver<T> {
        rx: tokio::sync::mpsc::Receiver<Vec<T>>,
        chunk: std::vec::IntoIter<T>,
    }

    impl<T> Receiver<T> {
        pub fn new(rx: tokio::sync::mpsc::Receiver<Vec<T>>) -> Self {
            Receiver {
                rx,
                chunk: Vec::new().into_iter(),
            }
        }
    }

    impl<T> Unpin for Receiver<T> {}

    impl<T> futures::Stream for Receiver<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            loop {
                if let Some(x) = self.chunk.next() {
                    return Poll::Ready(Some(x));
                }
                match self.rx.poll_recv(cx) {
                    Poll::Ready(Some(c)) => self.chunk = c.into_iter(),
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(object: &str, data: &[u8]) -> ObjMeta {
        ObjMeta {
            bucket: "b".into(),
            object: object.into(),
            size: data.len() as u64,
            checksum: crate::types::checksum::of(data),
            // Stamped as a write is: the widths of these numbers are in the trailer's length.
            version: store::next_version(),
            mtime: crate::types::unix_ms(),
            attrs: Default::default(),
        }
    }

    async fn collect(
        mut rx: tokio_stream_lite::Receiver<(PathBuf, ObjMeta)>,
    ) -> Vec<(PathBuf, ObjMeta)> {
        let mut out = Vec::new();
        while let Some(x) = rx.next().await {
            out.push(x);
        }
        out.sort_by(|a, b| a.1.object.cmp(&b.1.object));
        out
    }

    /// A jogger's walk knows an object by its file name when the name says it (no open), by
    /// its trailer otherwise (a long name's file is a hash), and passes on only the objects
    /// it is asked for. Every object comes exactly once, however the walk chunks them.
    #[tokio::test]
    async fn a_walk_knows_plain_names_without_reading_them_and_picks_what_it_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(store::tmp_dir(&root)).unwrap();
        let long = "l".repeat(300);
        let mut names: Vec<String> = (0..150).map(|i| format!("dir/obj {i:03}")).collect();
        names.push(long.clone());
        for n in &names {
            let data = format!("data of {n}").into_bytes();
            let path = store::object_path(&root, "b", n);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            store::write_temp_unsynced(&store::tmp_dir(&root), &meta(n, &data), &data)
                .unwrap()
                .commit_unsynced(&path)
                .unwrap();
        }
        names.sort();

        let read = collect(stream_objects(root.clone(), CancellationToken::new())).await;
        let named = collect(stream_named(
            root.clone(),
            CancellationToken::new(),
            |_, _| true,
        ))
        .await;
        for walked in [&read, &named] {
            let got: Vec<&str> = walked.iter().map(|(_, m)| m.object.as_str()).collect();
            assert_eq!(got, names);
        }
        for ((path, r), (npath, n)) in read.iter().zip(&named) {
            assert_eq!(path, npath);
            assert_eq!(
                *r,
                store::read_meta(path).unwrap(),
                "the count reads the trailer"
            );
            if r.object == long {
                assert!(!is_named(n), "a hashed name is read");
                assert_eq!(n, r);
            } else {
                assert!(is_named(n), "{}", r.object);
                assert_eq!(
                    (n.bucket.as_str(), n.object.as_str()),
                    ("b", r.object.as_str())
                );
                // Without reading the trailer, exact for an object without attributes.
                assert_eq!(n.size, r.size, "{}", r.object);
            }
        }

        // Only what the walk is asked for, named or read.
        let wanted = |o: &str| o.ends_with('7') || o.len() > 200;
        let picked = collect(stream_named(
            root.clone(),
            CancellationToken::new(),
            move |b, o| b == "b" && wanted(o),
        ))
        .await;
        let got: Vec<&str> = picked.iter().map(|(_, m)| m.object.as_str()).collect();
        let want: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|o| wanted(o))
            .collect();
        assert_eq!(got.len(), 16);
        assert_eq!(got, want);
    }
}
