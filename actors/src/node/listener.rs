//! The listener: accepts TCP connections and runs one task per connection that reads requests
//! and answers them in order. A connection that sends a bad frame gets an error and is closed.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::Ctx;
use super::handler;
use crate::wire::{Conn, Msg};

/// Caps concurrent connections so a flood cannot exhaust file descriptors.
const MAX_CONNECTIONS: usize = 1024;

pub fn spawn(ctx: Arc<Ctx>, listener: TcpListener) {
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = ctx.shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let max_frame = match ctx.meta().config.max_frame {
                    0 => crate::wire::DEFAULT_MAX_FRAME,
                    n => n,
                };
                let mut conn = Conn::new(stream, ctx.me.id.clone(), max_frame);
                serve(&ctx, &mut conn).await;
                tracing::trace!(%peer, "connection closed");
                drop(permit);
            });
        }
        tracing::debug!("listener stopped");
    });
}

async fn serve(ctx: &Arc<Ctx>, conn: &mut Conn) {
    loop {
        let env = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
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
        match handler::handle(ctx, conn, env).await {
            Ok(Some(reply)) => {
                if conn.send(corr, reply).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
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
