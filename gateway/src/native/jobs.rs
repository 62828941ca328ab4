//! Jobs (rebalance generations as AIStore jobs) and lifecycle operations.

use std::sync::Arc;

use http::{Method, Response, StatusCode, header};
use serde::Deserialize;
use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleRequest};
use shoal_actors::types::smap::NodeId;
use shoal_actors::types::status::RebalanceStatus;

use crate::Gateway;
use crate::body::{self, GwBody};
use crate::error::{Error, Result};

use super::daemon::smap_json;
use super::*;

/// `JobArgs` as the SDK sends it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct JobArgs {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Kind")]
    kind: String,
    /// `status_all` / `running_all` queries name it so.
    #[serde(alias = "kind")]
    kind_lower: String,
}

/// How a rebalance generation looks to AIStore's job API.
pub(super) struct JobView {
    id: String,
    running: bool,
    aborted: bool,
    started: Option<u64>,
    finished: Option<u64>,
    /// Why the job did not do all it should have (`err` in AIStore's job status); empty when
    /// it did, or while it runs.
    err: String,
}

pub(super) fn ns(secs: u64) -> u64 {
    secs.saturating_mul(1_000_000_000)
}

pub(super) fn rfc3339(secs: Option<u64>) -> String {
    match secs {
        Some(s) if s > 0 => {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
            let mut buf = Vec::new();
            let _ =
                s3s::dto::Timestamp::from(t).format(s3s::dto::TimestampFormat::DateTime, &mut buf);
            String::from_utf8(buf).unwrap_or_default()
        }
        _ => "0001-01-01T00:00:00Z".into(),
    }
}

pub(super) fn gen_of(id: &str) -> Option<u64> {
    id.strip_prefix('g').and_then(|n| n.parse().ok())
}

/// The generation `id` (or the latest when empty), as of `st`; `None` if unknown.
pub(super) fn job_view(st: Option<&RebalanceStatus>, id: &str) -> Option<JobView> {
    let st = st?;
    let latest = gen_of(&st.id)?;
    let want = if id.is_empty() { latest } else { gen_of(id)? };
    if want == latest {
        Some(JobView {
            id: st.id.clone(),
            running: st.is_running(),
            aborted: st.state == shoal_actors::types::status::RebState::Aborted,
            started: st.started,
            finished: st
                .finished
                .or_else(|| (!st.is_running()).then(shoal_actors::types::unix_secs)),
            // Ended with objects it could not move: not done, whatever its state says (a
            // script waiting on it must not take the nodes it drains for empty).
            err: match st.errors {
                0 => String::new(),
                _ if st.is_running() => String::new(),
                n => format!("{}: {n} objects could not be moved", st.id),
            },
        })
    } else if want < latest {
        // A newer generation superseded it: it is over.
        Some(JobView {
            id: format!("g{want}"),
            running: false,
            aborted: false,
            started: st.started,
            finished: st
                .started
                .or_else(|| Some(shoal_actors::types::unix_secs())),
            err: String::new(),
        })
    } else {
        None
    }
}

pub(super) async fn cluster(gw: &Arc<Gateway>, req: Req) -> Result<Response<GwBody>> {
    let q = query(&req);
    let method = req.method().clone();
    match method {
        Method::GET => {
            let token = gw.cfg.auth.check_bearer(bearer(&req), false)?;
            let what = q.get("what").cloned().unwrap_or_default();
            let args: JobArgs = json_body(req.into_body()).await?;
            let kind = if args.kind.is_empty() {
                args.kind_lower.clone()
            } else {
                args.kind.clone()
            };
            if what == "smap" {
                return json(StatusCode::OK, &smap_json(gw).await?);
            }
            let st = gw
                .cluster
                .retry(token, |c| async move { Ok(c.rebalance_status().await?) })
                .await?;
            let not_ours = !kind.is_empty() && kind != "rebalance";
            match what.as_str() {
                "status" => {
                    let v = (!not_ours)
                        .then(|| job_view(st.as_ref(), &args.id))
                        .flatten()
                        .ok_or_else(|| {
                            Error::Cluster(shoal_actors::Error::NotFound(format!(
                                "job {:?} not found",
                                args.id
                            )))
                        })?;
                    json(
                        StatusCode::OK,
                        &serde_json::json!({
                            "uuid": v.id,
                            "err": v.err,
                            "end_time": if v.running { 0 } else { ns(v.finished.unwrap_or(0)) },
                            "aborted": v.aborted,
                        }),
                    )
                }
                "qryxstats" => {
                    let mut out = serde_json::Map::new();
                    if !not_ours
                        && let (Some(s), Some(v)) = (st.as_ref(), job_view(st.as_ref(), &args.id))
                    {
                        for t in &s.targets {
                            let done = !v.running || t.finished.is_some();
                            let snap = serde_json::json!({
                                "id": v.id,
                                "kind": "rebalance",
                                "start-time": rfc3339(t.started.or(v.started)),
                                "end-time": if done { rfc3339(t.finished.or(v.finished)) } else { rfc3339(None) },
                                "aborted": v.aborted,
                                "is_idle": done,
                                "abort-err": match t.errors {
                                    0 => String::new(),
                                    n if done => format!("{n} objects could not be moved"),
                                    _ => String::new(),
                                },
                            });
                            out.insert(t.id.clone(), serde_json::Value::Array(vec![snap]));
                        }
                    }
                    if out.is_empty() && !args.id.is_empty() {
                        return Err(Error::Cluster(shoal_actors::Error::NotFound(format!(
                            "job {:?} not found",
                            args.id
                        ))));
                    }
                    json(StatusCode::OK, &serde_json::Value::Object(out))
                }
                "status_all" | "running_all" => {
                    let mut list = Vec::new();
                    if !not_ours
                        && let Some(v) = job_view(st.as_ref(), &args.id)
                        && (what == "status_all" || v.running)
                    {
                        list.push(serde_json::json!({
                            "uuid": v.id,
                            "kind": "rebalance",
                            "err": v.err,
                            "end_time": if v.running { 0 } else { ns(v.finished.unwrap_or(0)) },
                            "aborted": v.aborted,
                        }));
                    }
                    json(StatusCode::OK, &list)
                }
                other => Err(Error::NotImplemented(format!("cluster?what={other}"))),
            }
        }
        Method::PUT => {
            let auth = bearer(&req).map(str::to_string);
            let msg: ActionMsg = json_body(req.into_body()).await?;
            let op = match msg.action.as_str() {
                "start-maintenance" => LifecycleOp::StartMaintenance,
                "stop-maintenance" => LifecycleOp::StopMaintenance,
                "shutdown-node" => LifecycleOp::Shutdown,
                "decommission-node" => LifecycleOp::Decommission,
                "start" | "stop" => {
                    return Err(Error::NotImplemented(
                        "starting or stopping jobs by hand is not served: rebalances start with \
                         membership changes"
                            .into(),
                    ));
                }
                other => {
                    return Err(Error::NotImplemented(format!(
                        "cluster action {other:?} is not served by Shoal"
                    )));
                }
            };
            let token = gw.cfg.auth.check_bearer(auth.as_deref(), true)?;
            let v = &msg.value;
            let mut nodes: Vec<NodeId> = Vec::new();
            if let Some(s) = v.get("sid").and_then(|s| s.as_str())
                && !s.is_empty()
            {
                nodes.push(NodeId::parse_display(s));
            }
            if let Some(list) = v.get("sids").and_then(|s| s.as_array()) {
                nodes.extend(
                    list.iter()
                        .filter_map(|s| s.as_str())
                        .map(NodeId::parse_display),
                );
            }
            if nodes.is_empty() {
                return Err(Error::BadRequest(
                    "missing \"sid\" in the action value".into(),
                ));
            }
            let flag = |k: &str| v.get(k).and_then(|b| b.as_bool()).unwrap_or(false);
            let lreq = LifecycleRequest {
                op,
                nodes,
                no_rebalance: flag("skip_rebalance"),
                rm_user_data: flag("rm_user_data"),
                dry_run: false,
            };
            let c = gw.cluster.client(token).await?;
            let reply = c.lifecycle(lreq).await.map_err(|e| match e {
                shoal_actors::Error::Busy(m) => Error::Conflict(m),
                other => Error::Cluster(other),
            })?;
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(body::full(reply.rebalance_id.unwrap_or_default()))
                .expect("valid response"))
        }
        other => Err(Error::NotImplemented(format!("{other} /v1/cluster"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_by_generation() {
        let st = RebalanceStatus {
            id: "g7".into(),
            state: shoal_actors::types::status::RebState::Running,
            started: Some(100),
            ..Default::default()
        };
        let v = job_view(Some(&st), "g7").unwrap();
        assert!(v.running);
        let v = job_view(Some(&st), "").unwrap();
        assert_eq!(v.id, "g7");
        let v = job_view(Some(&st), "g5").unwrap();
        assert!(!v.running && v.finished.is_some());
        assert!(job_view(Some(&st), "g8").is_none());
        assert!(job_view(Some(&st), "x").is_none());
        assert!(job_view(None, "g1").is_none());
        let done = RebalanceStatus {
            state: shoal_actors::types::status::RebState::Finished,
            finished: Some(200),
            ..st
        };
        let v = job_view(Some(&done), "g7").unwrap();
        assert!(!v.running);
        assert_eq!(v.finished, Some(200));
        assert_eq!(v.err, "", "done right: no error");
        // Over, with objects it could not move: the SDK's wait must not take it for done.
        let failed = RebalanceStatus { errors: 3, ..done };
        let v = job_view(Some(&failed), "g7").unwrap();
        assert!(v.err.contains("3 objects could not be moved"), "{}", v.err);
        let running = RebalanceStatus {
            state: shoal_actors::types::status::RebState::Running,
            ..failed
        };
        assert_eq!(
            job_view(Some(&running), "g7").unwrap().err,
            "",
            "still at it"
        );
    }
}
