//! The server: accepts TCP connections and runs one task per connection that reads requests and
//! answers them in order (through the [`Router`]). A connection that sends a bad frame gets an
//! error and is closed. Limits keep one client from starving the node (`limits` in the cluster
//! config): a cap on connections that closes the longest-idle one to admit a new one (or refuses
//! the new one as busy), an idle timeout, a per-frame time limit on bodies, and a frame codec
//! that only holds memory for bytes that arrived. The accept loop belongs to the server actor: if the loop dies, the actor
//! fails and its supervisor restarts it on the same listening socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::dispatch::Router;
use crate::proto::codec::{Conn, DEFAULT_MAX_FRAME};
use crate::proto::msg::Msg;

pub struct ServerActor;

pub struct ServerArgs {
    /// Bound once by the node; kept across restarts of this actor.
    pub listener: Arc<TcpListener>,
    pub router: Arc<Router>,
    /// Serves connections that speak HTTP on the same port (DESIGN §13), if the node has one.
    pub http: Option<Arc<dyn HttpFront>>,
    pub shutdown: CancellationToken,
}

/// The node's HTTP front door, as the server hands it connections: one whose first byte is a
/// letter (an HTTP request line) rather than 0 (the high byte of a frame's length).
pub trait HttpFront: Send + Sync {
    fn serve(&self, stream: tokio::net::TcpStream) -> futures::future::BoxFuture<'static, ()>;
}

/// What a connection speaks, from its first byte.
#[derive(Debug, PartialEq, Eq)]
enum Speaks {
    Frames,
    Http,
}

/// Waits for the first byte without taking it.
async fn sniff(stream: &tokio::net::TcpStream, within: Duration) -> Option<Speaks> {
    let mut b = [0u8; 1];
    match tokio::time::timeout(within, stream.peek(&mut b)).await {
        Ok(Ok(1)) if b[0].is_ascii_alphabetic() => Some(Speaks::Http),
        Ok(Ok(1)) => Some(Speaks::Frames),
        _ => None,
    }
}

pub enum ServerMsg {
    /// The accept loop ended while the node runs.
    LoopEnded(String),
    /// Test builds: a chance for an injected fault.
    FaultCheck,
}

pub struct ServerState {
    /// Stops this incarnation's accept loop (a restart starts a new one).
    stop: CancellationToken,
}

impl Actor for ServerActor {
    type Msg = ServerMsg;
    type State = ServerState;
    type Arguments = ServerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ServerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let stop = args.shutdown.child_token();
        let (l, router, http, token) = (args.listener, args.router, args.http, stop.clone());
        tokio::spawn(async move {
            let why = accept_loop(&l, router, http, &token).await;
            if !token.is_cancelled() {
                let _ = myself.cast(ServerMsg::LoopEnded(why));
            }
        });
        Ok(ServerState { stop })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if crate::fault::switches_enabled() {
            myself.send_interval(Duration::from_millis(200), || ServerMsg::FaultCheck);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ServerMsg::LoopEnded(why) => Err(format!("accept loop ended: {why}").into()),
            ServerMsg::FaultCheck => {
                crate::fault::maybe_panic("server");
                Ok(())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.stop.cancel();
        Ok(())
    }
}

/// The connections being served: when each last asked something, whether it is busy, and how
/// to close it (to make room for a new one).
#[derive(Default)]
struct Slots {
    open: Mutex<HashMap<u64, Slot>>,
    next: AtomicU64,
}

struct Slot {
    last: Instant,
    busy: bool,
    close: CancellationToken,
}

impl Slots {
    /// Admits a new connection, closing the longest-idle one if the node is full. `None`: full
    /// of busy connections, refuse this one.
    fn admit(&self, max: usize) -> Option<(u64, CancellationToken)> {
        let mut open = self.open.lock().expect("poisoned");
        if open.len() >= max.max(1) {
            let idle = open
                .iter()
                .filter(|(_, s)| !s.busy)
                .min_by_key(|(_, s)| s.last)
                .map(|(id, _)| *id)?;
            if let Some(s) = open.remove(&idle) {
                s.close.cancel();
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = CancellationToken::new();
        open.insert(
            id,
            Slot {
                last: Instant::now(),
                busy: false,
                close: close.clone(),
            },
        );
        Some((id, close))
    }

    /// Closes the longest-idle connection (out of file descriptors). Returns whether one was.
    fn evict_idle(&self) -> bool {
        let mut open = self.open.lock().expect("poisoned");
        let idle = open
            .iter()
            .filter(|(_, s)| !s.busy)
            .min_by_key(|(_, s)| s.last)
            .map(|(id, _)| *id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(s) => {
                s.close.cancel();
                true
            }
            None => false,
        }
    }

    fn mark(&self, id: u64, busy: bool) {
        if let Some(s) = self.open.lock().expect("poisoned").get_mut(&id) {
            s.busy = busy;
            s.last = Instant::now();
        }
    }

    fn remove(&self, id: u64) {
        self.open.lock().expect("poisoned").remove(&id);
    }
}

/// Tells a connection the node cannot take it, then closes it (never blocks the accept loop).
fn shed(stream: tokio::net::TcpStream, me: crate::types::smap::NodeId) {
    tokio::spawn(async move {
        let mut conn = Conn::new(stream, me, DEFAULT_MAX_FRAME);
        let busy = crate::Error::Busy("too many connections: try again".into());
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.send(0, Msg::from(busy))).await;
    });
}

async fn accept_loop(
    listener: &TcpListener,
    router: Arc<Router>,
    http: Option<Arc<dyn HttpFront>>,
    stop: &CancellationToken,
) -> String {
    let slots = Arc::new(Slots::default());
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return "stopped".into(),
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors (or a transient error): make room by closing an idle
                // connection, and pause the loop a moment instead of spinning.
                let freed = slots.evict_idle();
                tracing::warn!(error = %e, freed, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (limits, members) = {
            let m = router.meta.get();
            let members = m
                .smap
                .as_ref()
                .map_or(0, |s| s.proxies.len() + s.targets.len());
            (m.config.limits.clone(), members)
        };
        let Some((slot, close)) = slots.admit(limits.connection_cap(members)) else {
            tracing::debug!(%peer, "connection refused: every slot is busy");
            shed(stream, router.me.id.clone());
            continue;
        };
        let (router, stop, slots, http) =
            (router.clone(), stop.clone(), slots.clone(), http.clone());
        tokio::spawn(async move {
            if let Some(front) = &http {
                match sniff(&stream, limits.idle_timeout()).await {
                    Some(Speaks::Http) => {
                        tokio::select! {
                            _ = front.serve(stream) => {}
                            _ = close.cancelled() => {}
                            _ = stop.cancelled() => {}
                        }
                        slots.remove(slot);
                        return;
                    }
                    Some(Speaks::Frames) => {}
                    None => {
                        slots.remove(slot);
                        return;
                    }
                }
            }
            let max_frame = match router.meta.get().config.max_frame {
                0 => DEFAULT_MAX_FRAME,
                n => n,
            };
            let mut conn = Conn::new(stream, router.me.id.clone(), max_frame);
            conn.io_timeout = Some(limits.frame_timeout());
            let limit = Limit {
                idle: limits.idle_timeout(),
                slot,
                slots: &slots,
                close: &close,
                stop: &stop,
            };
            serve(&router, &mut conn, limit).await;
            slots.remove(slot);
            tracing::trace!(%peer, "connection closed");
        });
    }
}

/// What ends a connection besides its peer: the node stopping, eviction, idleness.
struct Limit<'a> {
    idle: Duration,
    slot: u64,
    slots: &'a Slots,
    close: &'a CancellationToken,
    stop: &'a CancellationToken,
}

async fn serve(router: &Arc<Router>, conn: &mut Conn, limit: Limit<'_>) {
    loop {
        let env = tokio::select! {
            _ = limit.stop.cancelled() => return,
            _ = limit.close.cancelled() => return,
            e = tokio::time::timeout(limit.idle, conn.recv()) => match e {
                Ok(e) => e,
                Err(_) => return, // idle too long
            },
        };
        let env = match env {
            Ok(Some(env)) => env,
            Ok(None) => return,
            Err(e) => {
                // Bad frame or unknown protocol: say why, then drop the link.
                tracing::debug!(peer = %conn.peer, error = %e, "bad frame");
                let _ = conn.send(0, Msg::from(e)).await;
                return;
            }
        };
        let corr = env.corr;
        limit.slots.mark(limit.slot, true);
        let res = router.handle(conn, env).await;
        limit.slots.mark(limit.slot, false);
        match res {
            Ok(Some(reply)) => {
                if conn.send(corr, reply).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                // After a broken stream the connection is out of step: close it. So it is
                // after a timeout: a body that stalled may have stopped in the middle of a
                // frame (large chunks are read straight off the socket).
                let fatal = matches!(
                    e,
                    crate::Error::Io(_)
                        | crate::Error::Decode(_)
                        | crate::Error::Protocol(_)
                        | crate::Error::Timeout(_)
                );
                if conn.send(corr, Msg::from(e)).await.is_err() || fatal {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn first_bytes(bytes: &'static [u8]) -> Option<Speaks> {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(bytes).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        let (s, _) = l.accept().await.unwrap();
        let got = sniff(&s, Duration::from_millis(150)).await;
        client.await.unwrap();
        got
    }

    #[tokio::test]
    async fn http_and_frames_are_told_apart_by_the_first_byte() {
        assert_eq!(first_bytes(b"GET / HTTP/1.1\r\n").await, Some(Speaks::Http));
        assert_eq!(first_bytes(b"PUT /s3/b/o").await, Some(Speaks::Http));
        assert_eq!(first_bytes(&[0, 0, 0, 42]).await, Some(Speaks::Frames));
        assert_eq!(first_bytes(b"").await, None, "silent: nothing to serve");
    }
}
