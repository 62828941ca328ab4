//! A jogger walks one mountpath for one generation: first it counts what must move (for totals
//! and ETA), then it moves it. A remote move is send → receiver writes atomically and verifies
//! the checksum → ack → only then delete here. Walking is idempotent, so a later generation
//! converges wherever an earlier one stopped.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio_util::sync::CancellationToken;

use super::{Counters, RebMsg};
use crate::error::{Error, Result};
use crate::node::Ctx;
use crate::placement;
use crate::smap::Node;
use crate::store::{self, ObjMeta};
use crate::wire::Msg;

pub struct JoggerActor;

pub struct JoggerArgs {
    pub ctx: Arc<Ctx>,
    pub generation: u64,
    /// Index of the mountpath this jogger walks.
    pub mountpath: usize,
    pub counters: Arc<Counters>,
    pub cancel: CancellationToken,
    pub parent: ActorRef<RebMsg>,
}

pub enum JoggerMsg {
    /// The walk task ended (`Err` = it failed and the generation must abort).
    Finished(std::result::Result<(), String>),
}

impl Actor for JoggerActor {
    type Msg = JoggerMsg;
    type State = JoggerArgs;
    type Arguments = JoggerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: JoggerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // The walk runs in a task so the actor stays responsive to stop requests.
        let (ctx, g, mp, c, cancel) = (
            args.ctx.clone(),
            args.generation,
            args.mountpath,
            args.counters.clone(),
            args.cancel.clone(),
        );
        tokio::spawn(async move {
            let res = walk(&ctx, g, mp, &c, &cancel).await;
            let _ = myself.cast(JoggerMsg::Finished(res.map_err(|e| e.to_string())));
        });
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let JoggerMsg::Finished(res) = msg;
        match res {
            Ok(()) => {
                let _ = state.parent.cast(RebMsg::JoggerDone {
                    mountpath: state.mountpath,
                });
                myself.stop(None);
                Ok(())
            }
            Err(e) if state.cancel.is_cancelled() => {
                tracing::debug!(error = %e, "jogger stopped by abort");
                myself.stop(None);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Streams `(path, meta)` of every object on a mountpath from a blocking thread through a
/// bounded channel: memory stays flat whatever the object count.
fn stream_objects(
    root: PathBuf,
    cancel: CancellationToken,
) -> tokio_stream_lite::Receiver<(PathBuf, ObjMeta)> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::task::spawn_blocking(move || {
        let _ = store::walk_objects(&root, |path, _| {
            if cancel.is_cancelled() {
                return false;
            }
            match store::read_meta(path) {
                Ok(m) => tx.blocking_send((path.to_path_buf(), m)).is_ok(),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable object skipped");
                    true
                }
            }
        });
    });
    tokio_stream_lite::Receiver(rx)
}

/// Where an object should go under the current map.
enum Dest {
    Stay,
    Local(usize),
    Remote(Node),
}

fn destination(ctx: &Ctx, mp: usize, m: &ObjMeta) -> Dest {
    let meta = ctx.meta();
    let Some(smap) = meta.smap.as_ref() else {
        return Dest::Stay;
    };
    match placement::owner(smap, &m.bucket, &m.object) {
        None => Dest::Stay, // no active target at all: nowhere to go
        Some(o) if o.id != ctx.me.id => Dest::Remote(o.clone()),
        Some(_) => {
            let t = ctx.target.as_ref().expect("target");
            let want = t.mountpath_for(&m.bucket, &m.object);
            if want == mp {
                Dest::Stay
            } else {
                Dest::Local(want)
            }
        }
    }
}

async fn walk(
    ctx: &Arc<Ctx>,
    generation: u64,
    mp: usize,
    c: &Arc<Counters>,
    cancel: &CancellationToken,
) -> Result<()> {
    let t = ctx.target.as_ref().expect("target");
    let root = t.mountpaths[mp].path.clone();

    // Pass 1: count, so progress has totals (and ETA) before the first byte moves.
    let mut rx = stream_objects(root.clone(), cancel.clone());
    while let Some((_, m)) = rx.next().await {
        if !matches!(destination(ctx, mp, &m), Dest::Stay) {
            c.objs_total.fetch_add(1, Ordering::Relaxed);
            c.bytes_total.fetch_add(m.size, Ordering::Relaxed);
        }
    }
    c.joggers_counted.fetch_add(1, Ordering::Relaxed);
    if cancel.is_cancelled() {
        return Err(Error::Remote("aborted".into()));
    }

    // Pass 2: move.
    let senders = ctx.meta().config.rebalance.senders_per_mountpath.max(1);
    let stream = stream_objects(root, cancel.clone());
    let failed = std::sync::atomic::AtomicBool::new(false);
    stream
        .for_each_concurrent(senders, |(path, m)| {
            let failed = &failed;
            async move {
                if cancel.is_cancelled() {
                    return;
                }
                let res = match destination(ctx, mp, &m) {
                    Dest::Stay => Ok(()),
                    Dest::Local(to) => match t.move_local(&path, &m, to).await {
                        Ok(()) => {
                            c.local_objs.fetch_add(1, Ordering::Relaxed);
                            c.local_bytes.fetch_add(m.size, Ordering::Relaxed);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    },
                    Dest::Remote(node) => {
                        throttle(ctx, c, cancel).await;
                        send_with_retry(ctx, generation, &node, &path, c, cancel).await
                    }
                };
                if let Err(e) = res
                    && !cancel.is_cancelled()
                {
                        tracing::warn!(object = %format!("{}/{}", m.bucket, m.object), error = %e, "rebalance move failed");
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        failed.store(true, Ordering::Relaxed);
                }
            }
        })
        .await;
    if cancel.is_cancelled() {
        return Err(Error::Remote("aborted".into()));
    }
    if failed.load(Ordering::Relaxed) {
        // Some objects could not move: keep the marker (the cluster retries in a new
        // generation) but let this one finish so the operator sees the errors.
        tracing::warn!(mountpath = mp, "rebalance walk finished with errors");
    }
    Ok(())
}

/// Keeps this target's outgoing rate under `rebalance.throttle_bytes_per_sec`.
async fn throttle(ctx: &Ctx, c: &Counters, cancel: &CancellationToken) {
    let limit = ctx.meta().config.rebalance.throttle_bytes_per_sec;
    if limit == 0 {
        return;
    }
    let sent = c.tx_bytes.load(Ordering::Relaxed) as f64;
    let elapsed = store_elapsed(c);
    let due = sent / limit as f64;
    if due > elapsed {
        let wait = Duration::from_secs_f64((due - elapsed).min(5.0));
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn store_elapsed(c: &Counters) -> f64 {
    c.started_at.elapsed().as_secs_f64()
}

/// Sends one object until it is acked, the generation is aborted, or it fails for good.
async fn send_with_retry(
    ctx: &Arc<Ctx>,
    generation: u64,
    node: &Node,
    path: &std::path::Path,
    c: &Counters,
    cancel: &CancellationToken,
) -> Result<()> {
    let mut delay = Duration::from_millis(50);
    let mut checksum_failures = 0;
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Remote("aborted".into()));
        }
        match send_once(ctx, generation, node, path).await {
            Ok(Some(size)) => {
                c.tx_objs.fetch_add(1, Ordering::Relaxed);
                c.tx_bytes.fetch_add(size, Ordering::Relaxed);
                c.set_blocked(None);
                return Ok(());
            }
            Ok(None) => return Ok(()), // gone or replaced locally meanwhile: nothing to move
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
            Err(Error::BadRequest(m)) if m.contains("stale rebalance generation") => {
                return Err(Error::Remote(m));
            }
            Err(Error::NoSpace(m)) => {
                c.set_blocked(Some(format!("t[{}] disk full: {m}", node.id)));
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
                return Ok(());
            }
            Err(e) => {
                ctx.pool.forget(&node.addr);
                c.set_blocked(Some(format!("t[{}] unreachable: {e}", node.id)));
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(Error::Remote("aborted".into())),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// One attempt: returns the size sent, or `None` if there was nothing to send any more.
async fn send_once(
    ctx: &Arc<Ctx>,
    generation: u64,
    node: &Node,
    path: &std::path::Path,
) -> Result<Option<u64>> {
    let t = ctx.target.as_ref().expect("target");
    let (mut file, meta) = match store::open_object(path).await {
        Ok(x) => x,
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut conn = ctx.pool.get(&node.addr, Duration::from_secs(5)).await?;
    let corr = conn
        .start(Msg::RebObject {
            generation,
            meta: meta.clone(),
            bmd_version: ctx.meta().bmd.version,
        })
        .await?;
    let io = async {
        match conn.finish(corr).await? {
            Msg::Ok => {}
            other => return Err(crate::client::unexpected(&other)),
        }
        conn.send_body(corr, &mut file, meta.size).await?;
        match conn.finish(corr).await? {
            Msg::RebAck { stored } => Ok(stored),
            other => Err(crate::client::unexpected(&other)),
        }
    };
    let res = tokio::time::timeout(Duration::from_secs(60), io)
        .await
        .map_err(|_| Error::Timeout(format!("sending to {}", node.addr)))?;
    match res {
        Ok(stored) => {
            ctx.pool.put(&node.addr, conn);
            // A newer generation may have decided otherwise meanwhile: then it owns the
            // decision and this copy stays.
            if stored && ctx.meta().rmd.version == generation {
                t.remove_if_version(&meta).await?;
            }
            Ok(Some(meta.size))
        }
        Err(e) => {
            // Refusals before the body leave the link usable; anything else does not.
            if matches!(e, Error::Busy(_) | Error::BadRequest(_)) {
                ctx.pool.put(&node.addr, conn);
            }
            Err(e)
        }
    }
}

/// A minimal `Stream` over a tokio mpsc receiver (avoids another dependency).
mod tokio_stream_lite {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct Receiver<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures::Stream for Receiver<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}
