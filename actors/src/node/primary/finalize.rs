//! The final step of lifecycle operations (DESIGN §7): post-rebalance maintenance, shutdown,
//! or decommission, once their rebalance is done (or at once without one).

use super::push::{self, METASYNC_TIMEOUT};
use super::{PrimaryMsg, PrimaryState, ReplyTo};
use crate::error::{Error, Result};
use crate::logic::generation;
use crate::proto::msg::Reply;
use crate::types::lifecycle::NodeAction;
use crate::types::meta::MetaUpdate;
use crate::types::smap::{Flags, NodeId};

/// Final step for `nodes` still in transition (see `logic::generation::finalize`): the map
/// change is pushed, shutdowns are told after it, and decommissioned nodes are told to wipe
/// themselves before they leave the map (else their keepalive would make them rejoin). `then`
/// is answered once all of it is done.
pub async fn finalize(
    state: &mut PrimaryState,
    nodes: &[NodeId],
    after_rebalance: bool,
    then: Option<(ReplyTo, Reply)>,
) -> Result<()> {
    let smap = state.smap()?;
    let f = generation::finalize(&smap, nodes, after_rebalance);
    let push = match f.next {
        Some(next) => Some(push::commit(state, MetaUpdate::smap(next)).await?),
        None => None,
    };
    let (pool, me) = (state.a.pool.clone(), state.myself.clone());
    tokio::spawn(async move {
        if let Some(p) = push {
            p.send().await;
        }
        for n in &f.shutdown {
            if let Err(e) = pool
                .rpc(&n.addr, NodeAction::Shutdown, METASYNC_TIMEOUT)
                .await
            {
                tracing::warn!(node = %n.display_name(), error = %e, "shutdown notice failed");
            }
        }
        for (n, rm_user_data) in &f.decommission {
            let action = NodeAction::Decommission {
                rm_user_data: *rm_user_data,
            };
            if let Err(e) = pool.rpc(&n.addr, action, METASYNC_TIMEOUT).await {
                tracing::warn!(node = %n.display_name(), error = %e, "decommission notice failed; removing anyway");
            }
        }
        let nodes: Vec<NodeId> = f.decommission.iter().map(|(n, _)| n.id.clone()).collect();
        match (nodes.is_empty(), then) {
            (true, Some((reply, value))) => {
                let _ = reply.send(Ok(value));
            }
            (true, None) => {}
            (false, then) => {
                let _ = me.cast(PrimaryMsg::Decommissioned {
                    nodes,
                    drained: after_rebalance,
                    then,
                });
            }
        }
    });
    Ok(())
}

/// Drops decommissioned nodes (told already) from the map.
pub async fn remove_decommissioned(
    state: &mut PrimaryState,
    nodes: Vec<NodeId>,
    drained: bool,
    then: Option<(ReplyTo, Reply)>,
) {
    let res = async {
        let smap = state.smap()?;
        let gone: Vec<NodeId> = nodes
            .into_iter()
            .filter(|id| {
                smap.get(id)
                    .is_some_and(|n| n.flags.contains(Flags::DECOMM))
            })
            .collect();
        for id in &gone {
            state.last_seen.remove(id);
            state.offline.remove(id);
        }
        match generation::remove_nodes(&smap, &gone) {
            Some(mut next) => {
                // Targets whose objects no rebalance moved off: `wait node --status safe`
                // must not call them drained.
                let undrained: Vec<NodeId> = gone
                    .iter()
                    .filter(|id| !drained && smap.targets.contains_key(*id))
                    .cloned()
                    .collect();
                next.note_decommissioned(&gone, &undrained);
                Ok(Some(push::commit(state, MetaUpdate::smap(next)).await?))
            }
            None => Ok::<_, Error>(None),
        }
    }
    .await;
    let push = match res {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot remove decommissioned nodes");
            if let Some((reply, _)) = then {
                let _ = reply.send(Err(e));
            }
            return;
        }
    };
    let answer = move || {
        if let Some((reply, value)) = then {
            let _ = reply.send(Ok(value));
        }
    };
    match push {
        Some(p) => p.spawn_then(answer),
        None => answer(),
    }
}
