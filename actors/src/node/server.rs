//! The server: accepts TCP connections and runs one task per connection that reads requests and
//! answers them in order (through the [`Router`]). A connection that sends a bad frame gets an
//! error and is closed. The accept loop belongs to the server actor: if the loop dies, the actor
//! fails and its supervisor restarts it on the same listening socket.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::dispatch::Router;
use crate::proto::codec::{Conn, DEFAULT_MAX_FRAME};
use crate::proto::msg::Msg;

/// Caps concurrent connections so a flood cannot exhaust file descriptors.
const MAX_CONNECTIONS: usize = 1024;

pub struct ServerActor;

pub struct ServerArgs {
    /// Bound once by the node; kept across restarts of this actor.
    pub listener: Arc<TcpListener>,
    pub router: Arc<Router>,
    pub shutdown: CancellationToken,
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
        let (l, router, token) = (args.listener, args.router, stop.clone());
        tokio::spawn(async move {
            let why = accept_loop(&l, router, &token).await;
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

async fn accept_loop(
    listener: &TcpListener,
    router: Arc<Router>,
    stop: &CancellationToken,
) -> String {
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return "stopped".into(),
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return "connection limit closed".into();
        };
        let router = router.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let max_frame = match router.meta.get().config.max_frame {
                0 => DEFAULT_MAX_FRAME,
                n => n,
            };
            let mut conn = Conn::new(stream, router.me.id.clone(), max_frame);
            serve(&router, &mut conn, &stop).await;
            tracing::trace!(%peer, "connection closed");
            drop(permit);
        });
    }
}

async fn serve(router: &Arc<Router>, conn: &mut Conn, stop: &CancellationToken) {
    loop {
        let env = tokio::select! {
            _ = stop.cancelled() => return,
            e = conn.recv() => e,
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
        match router.handle(conn, env).await {
            Ok(Some(reply)) => {
                if conn.send(corr, reply).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                // After a broken stream the connection is out of step: close it.
                let fatal = matches!(
                    e,
                    crate::Error::Io(_) | crate::Error::Decode(_) | crate::Error::Protocol(_)
                );
                if conn.send(corr, Msg::from(e)).await.is_err() || fatal {
                    return;
                }
            }
        }
    }
}
