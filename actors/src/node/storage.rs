//! A target's storage requests (DESIGN §14): its mountpaths as `show storage` reports them,
//! attach / detach / enable / disable (each with a dry run), and its resilver. A change starts a
//! resilver at once (or queues it behind a running global rebalance, see
//! [`super::rebalance::resilver`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::names;
use super::rebalance::RebMsg;
use crate::error::{Error, Result};
use crate::logic::placement;
use crate::proto::msg::{GetResilver, GetStorage, MountpathOp, Msg, Rpc, Storage};
use crate::store::object as store;
use crate::store::{LocalStore, MpState};
use crate::types::smap::NodeId;
use crate::types::status::{MountpathStats, ResilverStatus, StorageStatus};
use crate::types::storage::{MountpathReply, MpAction};

/// The mountpath rows of a target's stats: the sampled capacities, with states, reasons and
/// object counts from the store. Detached mountpaths are not shown.
pub fn mountpath_rows(store: &LocalStore, sampled: &[MountpathStats]) -> Vec<MountpathStats> {
    store
        .mps
        .all()
        .iter()
        .filter(|m| m.state() != MpState::Detached)
        .map(|m| {
            let path = m.path.display().to_string();
            let mut row = sampled
                .iter()
                .find(|s| s.path == path)
                .cloned()
                .unwrap_or_else(|| {
                    // Attached since the last sample: measure it now rather than show zeros.
                    let c = super::stats::capacity(&m.path).unwrap_or_default();
                    MountpathStats {
                        path,
                        used: c.used,
                        avail: c.avail,
                        total: c.total,
                        fs: super::stats::filesystem(&m.path).unwrap_or_default(),
                        ..Default::default()
                    }
                });
            let (state, reason) = m.status();
            row.objects = m.objects();
            row.object_bytes = m.bytes();
            row.state = state;
            row.enabled = state == MpState::Enabled;
            row.full = m.is_full();
            row.reason = match reason {
                None if row.full => Some(super::mountpath::FULL_REASON.into()),
                r => r,
            };
            row
        })
        .collect()
}

/// Serves one storage request on this target. `rows` are its current mountpath rows (for
/// `Show`).
pub async fn serve(
    me: &NodeId,
    store: &Arc<LocalStore>,
    rows: Vec<MountpathStats>,
    s: Storage,
) -> Result<Msg> {
    match s {
        Storage::Show(_) => {
            let status = StorageStatus {
                target: me.0.clone(),
                mountpaths: rows,
                // The disks are the answer; a rebalance actor still starting (or restarting)
                // only means no resilver to show yet.
                resilver: resilver_status(me).await.ok().flatten(),
            };
            Ok(Msg::Reply(GetStorage::reply(Box::new(status))))
        }
        Storage::Resilver(_) => {
            let r = resilver_status(me).await?.map(Box::new);
            Ok(Msg::Reply(GetResilver::reply(r)))
        }
        Storage::Mountpath(op) => {
            let r = mountpath_op(me, store, op).await?;
            Ok(Msg::Reply(MountpathOp::reply(Box::new(r))))
        }
    }
}

pub async fn resilver_status(me: &NodeId) -> Result<Option<ResilverStatus>> {
    let reb = names::lookup::<RebMsg>(&names::rebalance(me))
        .ok_or_else(|| Error::Unavailable("the rebalance actor is not running".into()))?;
    ractor::call_t!(reb, RebMsg::ResilverStatus, 5000)
        .map_err(|e| Error::Unavailable(format!("rebalance actor: {e}")))
}

async fn start_resilver(me: &NodeId, reason: String) -> Result<String> {
    let reb = names::lookup::<RebMsg>(&names::rebalance(me)).ok_or_else(|| {
        Error::Unavailable(
            "the rebalance actor is restarting: the change is recorded, its resilver runs when it is back"
                .into(),
        )
    })?;
    ractor::call_t!(reb, |reply| RebMsg::Resilver { reason, reply }, 5000)
        .map_err(|e| Error::Unavailable(format!("rebalance actor: {e}")))
}

async fn mountpath_op(
    me: &NodeId,
    store: &Arc<LocalStore>,
    op: MountpathOp,
) -> Result<MountpathReply> {
    let raw = PathBuf::from(op.path.trim());
    if op.path.trim().is_empty() {
        return Err(Error::BadRequest("give the mountpath's directory".into()));
    }
    let mut reply = MountpathReply {
        target: me.0.clone(),
        dry_run: op.dry_run,
        ..Default::default()
    };
    if op.action == MpAction::Attach {
        let (path, _) = store.mps.check_attach(&raw)?;
        reply.path = path.display().to_string();
        if op.dry_run {
            (reply.objs, reply.bytes) = moving_onto(store, &path).await?;
            return Ok(reply);
        }
        // The node's supervisor follows the set and starts the new mountpath's actor.
        blocking(store, move |s| s.mps.attach(&path)).await?;
        reply.state = MpState::Enabled;
        reply.resilver_id = Some(start_resilver(me, format!("attach {}", reply.path)).await?);
        return Ok(reply);
    }
    let i = find(store, &raw)?;
    let mp = store.mps.get(i).expect("found by index");
    reply.path = mp.path.display().to_string();
    let state = mp.state();
    reply.state = state;
    let last_enabled = || {
        state == MpState::Enabled
            && store
                .mps
                .all()
                .iter()
                .filter(|m| m.state() == MpState::Enabled)
                .count()
                == 1
    };
    match op.action {
        MpAction::Attach => unreachable!("handled above"),
        MpAction::Detach | MpAction::Disable => {
            let verb = op.action.as_str();
            match (op.action, state) {
                (_, MpState::Detached) => {
                    return Err(Error::BadRequest(format!("{} is detached", reply.path)));
                }
                (MpAction::Disable, s) if s != MpState::Enabled => {
                    return Err(Error::BadRequest(format!(
                        "{} is {s}: only an enabled mountpath can be disabled",
                        reply.path
                    )));
                }
                (MpAction::Detach, MpState::Detaching) => {
                    return Err(Error::BadRequest(format!(
                        "{} is already detaching (see 'nodectl show resilver')",
                        reply.path
                    )));
                }
                _ => {}
            }
            if last_enabled() && mp.objects() > 0 {
                return Err(Error::BadRequest(format!(
                    "cannot {verb} {}: it is the only enabled mountpath of t[{me}] and holds {} objects (attach or enable another first)",
                    reply.path,
                    mp.objects()
                )));
            }
            // A failed disk cannot be read: there is nothing to move off it.
            let readable = state != MpState::Failed;
            if readable {
                (reply.objs, reply.bytes) = (mp.objects(), mp.bytes());
            }
            if op.dry_run {
                return Ok(reply);
            }
            let next = match (op.action, readable) {
                (MpAction::Disable, _) => MpState::Disabled,
                (_, true) => MpState::Detaching,
                (_, false) => MpState::Detached,
            };
            let why = (next == MpState::Disabled).then(|| "disabled by an operator".to_string());
            store.mps.set_state(i, next, why, true)?;
            reply.state = next;
            if next != MpState::Detached {
                let reason = format!("{verb} {}", reply.path);
                reply.resilver_id = Some(start_resilver(me, reason).await?);
            }
        }
        MpAction::Enable => {
            match state {
                MpState::Enabled => {
                    return Err(Error::BadRequest(format!(
                        "{} is already enabled",
                        reply.path
                    )));
                }
                MpState::Detached => {
                    return Err(Error::BadRequest(format!(
                        "{} is detached: attach it again",
                        reply.path
                    )));
                }
                _ => {}
            }
            if op.dry_run {
                (reply.objs, reply.bytes) = moving_onto(store, &mp.path).await?;
                return Ok(reply);
            }
            blocking(store, move |s| s.mps.enable(i)).await?;
            reply.state = MpState::Enabled;
            let reason = format!("enable {}", reply.path);
            reply.resilver_id = Some(start_resilver(me, reason).await?);
        }
    }
    Ok(reply)
}

/// The index of the mountpath at `raw` (as given, or canonical).
fn find(store: &LocalStore, raw: &Path) -> Result<usize> {
    let canon = raw.canonicalize().ok();
    store
        .mps
        .index_of(raw)
        .or_else(|| canon.and_then(|c| store.mps.index_of(&c)))
        .ok_or_else(|| {
            Error::NotFound(format!(
                "{} is not a mountpath of this target (see 'nodectl show storage')",
                raw.display()
            ))
        })
}

/// Runs store work that touches disks off the async workers.
async fn blocking<T: Send + 'static>(
    store: &Arc<LocalStore>,
    f: impl FnOnce(&LocalStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}

/// Objects and bytes that would move onto a mountpath at `path` were it enabled (a dry run of
/// attach or enable): those whose best mountpath it would become.
async fn moving_onto(store: &Arc<LocalStore>, path: &Path) -> Result<(u64, u64)> {
    let new_key = placement::MountpathKey::new(path.display().to_string()).digest;
    const NEW: usize = usize::MAX;
    let mut cands: Vec<(usize, u64)> = store
        .mps
        .all()
        .iter()
        .enumerate()
        .filter(|(_, m)| m.state() == MpState::Enabled && m.path != path)
        .map(|(i, m)| (i, m.key.digest))
        .collect();
    cands.push((NEW, new_key));
    let roots: Vec<PathBuf> = store
        .mps
        .readable()
        .iter()
        .filter(|(_, m)| m.path != path)
        .map(|(_, m)| m.path.clone())
        .collect();
    tokio::task::spawn_blocking(move || {
        let (mut n, mut b) = (0u64, 0u64);
        for root in roots {
            let _ = store::walk_objects(&root, |p, _| {
                if let Ok(m) = store::read_meta(p) {
                    let d = placement::digest(&placement::uname(&m.bucket, &m.object));
                    if placement::best_mountpath(&cands, d) == Some(NEW) {
                        n += 1;
                        b += m.size;
                    }
                }
                true
            });
        }
        (n, b)
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))
}
