//! Buckets: list, create, destroy, head, and object listings with paging.

use std::sync::Arc;

use http::{Method, Response, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::Gateway;
use crate::body::{self, GwBody};
use crate::cluster::list_objects_page;
use crate::error::{Error, Result};

use super::*;

#[derive(Serialize)]
pub(super) struct BucketModel {
    name: String,
    provider: &'static str,
}

/// `value` of a list-objects action.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ListMsg {
    prefix: String,
    pagesize: u64,
    uuid: String,
    continuation_token: String,
    start_after: String,
}

/// One entry of AIStore's object listing (`cmn/objlist.go/LsoEntry`).
#[derive(Serialize)]
pub(super) struct LsoEntry {
    n: String,
    cs: String,
    a: String,
    v: String,
    t: String,
    s: u64,
    c: u32,
    f: u32,
}

#[derive(Serialize)]
pub(super) struct LsoResult {
    #[serde(rename = "UUID")]
    uuid: String,
    #[serde(rename = "ContinuationToken")]
    continuation_token: String,
    #[serde(rename = "Flags")]
    flags: u32,
    #[serde(rename = "Entries")]
    entries: Vec<LsoEntry>,
}

pub(super) async fn buckets(gw: &Arc<Gateway>, req: Req, rest: &str) -> Result<Response<GwBody>> {
    let q = query(&req);
    let token = bearer(&req).map(str::to_string);
    let bucket = decode(rest.trim_end_matches('/'))?;
    let method = req.method().clone();
    if bucket.is_empty() {
        if method != Method::GET {
            return Err(Error::NotImplemented(format!("{method} /v1/buckets")));
        }
        let tok = gw.cfg.auth.check_bearer(token.as_deref(), false)?;
        if !matches!(
            q.get("provider").map(String::as_str),
            None | Some("") | Some("ais")
        ) {
            return json(StatusCode::OK, &Vec::<BucketModel>::new());
        }
        let names = gw
            .cluster
            .retry(tok, |c| async move { Ok(c.list_buckets().await?) })
            .await?;
        let list: Vec<BucketModel> = names
            .into_iter()
            .map(|name| BucketModel {
                name,
                provider: "ais",
            })
            .collect();
        return json(StatusCode::OK, &list);
    }
    check_provider(&q)?;
    shoal_actors::logic::names::validate_bucket(&bucket).map_err(Error::Cluster)?;
    let accept_msgpack = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/msgpack"));
    match method {
        Method::HEAD => {
            let tok = gw.cfg.auth.check_bearer(token.as_deref(), false)?;
            let names = gw
                .cluster
                .retry(tok, |c| async move { Ok(c.list_buckets().await?) })
                .await?;
            if names.contains(&bucket) {
                let props = serde_json::json!({"provider": "ais", "name": bucket});
                Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header("Ais-Bucket-Props", props.to_string())
                    .body(body::empty())
                    .expect("valid response"))
            } else {
                Err(in_context(
                    Error::Cluster(shoal_actors::Error::NotFound("bucket".into())),
                    &bucket,
                    None,
                ))
            }
        }
        Method::POST => {
            let msg: ActionMsg = json_body(req.into_body()).await?;
            if msg.action != "create-bck" {
                return Err(Error::NotImplemented(format!(
                    "bucket action {:?} is not served by Shoal",
                    msg.action
                )));
            }
            let tok = gw.cfg.auth.check_bearer(token.as_deref(), true)?;
            let b = bucket.clone();
            gw.cluster
                .retry(tok, |c| {
                    let b = b.clone();
                    async move { Ok(c.create_bucket(&b).await?) }
                })
                .await
                .map_err(|e| in_context(e, &bucket, None))?;
            Ok(empty(StatusCode::OK))
        }
        Method::DELETE => {
            let msg: ActionMsg = json_body(req.into_body()).await?;
            if !msg.action.is_empty() && msg.action != "destroy-bck" {
                return Err(Error::NotImplemented(format!(
                    "bucket action {:?} is not served by Shoal",
                    msg.action
                )));
            }
            let tok = gw.cfg.auth.check_bearer(token.as_deref(), true)?;
            let b = bucket.clone();
            gw.cluster
                .retry(tok, |c| {
                    let b = b.clone();
                    async move { Ok(c.destroy_bucket(&b).await?) }
                })
                .await
                .map_err(|e| in_context(e, &bucket, None))?;
            Ok(empty(StatusCode::OK))
        }
        Method::GET => {
            let tok = gw.cfg.auth.check_bearer(token.as_deref(), false)?;
            let msg: ActionMsg = json_body(req.into_body()).await?;
            if !msg.action.is_empty() && msg.action != "list" {
                return Err(Error::NotImplemented(format!(
                    "bucket action {:?} is not served by Shoal",
                    msg.action
                )));
            }
            let lm: ListMsg = if msg.value.is_null() {
                ListMsg::default()
            } else {
                serde_json::from_value(msg.value)
                    .map_err(|e| Error::BadRequest(format!("bad list message: {e}")))?
            };
            let page = if lm.pagesize == 0 {
                DEFAULT_PAGE
            } else {
                (lm.pagesize as usize).min(DEFAULT_PAGE)
            };
            let after = if !lm.continuation_token.is_empty() {
                Some(lm.continuation_token.clone())
            } else if !lm.start_after.is_empty() {
                Some(lm.start_after.clone())
            } else {
                None
            };
            let smap = gw.cluster.smap().await.ok();
            let (b, p) = (bucket.clone(), lm.prefix.clone());
            let (entries, next) = gw
                .cluster
                .retry(tok, |c| {
                    let (b, p, a) = (b.clone(), p.clone(), after.clone());
                    async move { visible_page(&c, &b, &p, a.as_deref(), page).await }
                })
                .await
                .map_err(|e| in_context(e, &bucket, None))?;
            let entries = entries
                .into_iter()
                .map(|e| {
                    let t = smap
                        .as_ref()
                        .and_then(|s| shoal_actors::logic::placement::owner(s, &bucket, &e.name))
                        .map(|n| n.id.0.clone())
                        .unwrap_or_default();
                    LsoEntry {
                        cs: e.checksum,
                        a: String::new(),
                        v: e.version.to_string(),
                        t,
                        s: e.size,
                        c: 1,
                        f: 0,
                        n: e.name,
                    }
                })
                .collect();
            let res = LsoResult {
                uuid: if lm.uuid.is_empty() {
                    format!("lso-{:x}", shoal_actors::types::unix_secs())
                } else {
                    lm.uuid
                },
                continuation_token: next.unwrap_or_default(),
                flags: 0,
                entries,
            };
            if accept_msgpack {
                let b = rmp_serde::to_vec_named(&res)
                    .map_err(|e| Error::BadRequest(format!("encoding the listing: {e}")))?;
                Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/msgpack")
                    .body(body::full(b))
                    .expect("valid response"))
            } else {
                json(StatusCode::OK, &res)
            }
        }
        other => Err(Error::NotImplemented(format!(
            "{other} /v1/buckets/{bucket}"
        ))),
    }
}

/// A listing page without the gateway's own hidden objects.
pub async fn visible_page(
    c: &shoal_actors::client::Client,
    bucket: &str,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<(Vec<shoal_actors::types::object::ObjEntry>, Option<String>)> {
    let mut after = start_after.map(str::to_string);
    // A page made only of hidden names would read as the end; skip past them.
    loop {
        let (mut page, next) =
            list_objects_page(c, bucket, prefix, after.as_deref(), limit).await?;
        let raw_len = page.len();
        page.retain(|e| !e.name.starts_with(HIDDEN_PREFIX));
        if !page.is_empty() || next.is_none() || raw_len == 0 {
            return Ok((page, next));
        }
        after = next;
    }
}
