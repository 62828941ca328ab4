//! The cluster map (`GET /v1/daemon?what=smap`) and health (`GET /v1/health`).

use std::sync::Arc;

use http::{Response, StatusCode};
use serde::Serialize;
use shoal_actors::types::smap::{Node, NodeId};

use crate::Gateway;
use crate::body::GwBody;
use crate::error::{Error, Result};

use super::*;

#[derive(Serialize)]
pub(super) struct NetInfo {
    node_hostname: String,
    daemon_port: String,
    direct_url: String,
}

#[derive(Serialize)]
pub(super) struct Snode {
    daemon_id: String,
    daemon_type: &'static str,
    public_net: NetInfo,
    intra_control_net: NetInfo,
    intra_data_net: NetInfo,
    flags: u32,
    id_digest: u64,
}

pub(super) fn snode(gw: &Gateway, n: &Node) -> Snode {
    let url = gw.cluster.http_url(n);
    let hostport = url.trim_start_matches("http://").to_string();
    let (host, port) = hostport
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .unwrap_or((hostport.clone(), String::new()));
    let (chost, cport) = n
        .addr
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .unwrap_or((n.addr.clone(), String::new()));
    let intra = || NetInfo {
        node_hostname: chost.clone(),
        daemon_port: cport.clone(),
        direct_url: format!("http://{}", n.addr),
    };
    Snode {
        daemon_id: n.id.0.clone(),
        daemon_type: n.role.as_str(),
        public_net: NetInfo {
            node_hostname: host,
            daemon_port: port,
            direct_url: url,
        },
        intra_control_net: intra(),
        intra_data_net: intra(),
        flags: n.flags.0,
        id_digest: n.id_digest,
    }
}

pub(super) async fn smap_json(gw: &Gateway) -> Result<serde_json::Value> {
    let smap = gw.cluster.smap().await?;
    let map = |m: &std::collections::BTreeMap<NodeId, Node>| {
        m.iter()
            .map(|(id, n)| {
                (
                    id.0.clone(),
                    serde_json::to_value(snode(gw, n)).unwrap_or_default(),
                )
            })
            .collect::<serde_json::Map<_, _>>()
    };
    let primary = smap
        .proxies
        .get(&smap.primary)
        .map(|n| serde_json::to_value(snode(gw, n)).unwrap_or_default())
        .unwrap_or_default();
    Ok(serde_json::json!({
        "tmap": map(&smap.targets),
        "pmap": map(&smap.proxies),
        "proxy_si": primary,
        // Go's AIStore writes the version as a string.
        "version": smap.version.to_string(),
        "uuid": smap.uuid,
        "creation_time": "",
    }))
}

pub(super) async fn daemon(gw: &Arc<Gateway>, req: Req) -> Result<Response<GwBody>> {
    let q = query(&req);
    match q.get("what").map(String::as_str) {
        Some("smap") => json(StatusCode::OK, &smap_json(gw).await?),
        Some("snode") => {
            let smap = gw.cluster.smap().await?;
            let me = smap
                .all_nodes()
                .find(|n| n.addr == gw.cfg.node_addr)
                .ok_or_else(|| Error::BadRequest("this node is not in the cluster map".into()))?;
            json(StatusCode::OK, &snode(gw, me))
        }
        Some(w) => Err(Error::NotImplemented(format!("daemon?what={w}"))),
        None => Err(Error::BadRequest("missing ?what=".into())),
    }
}

pub(super) async fn health(gw: &Arc<Gateway>, req: Req) -> Result<Response<GwBody>> {
    let q = query(&req);
    if q.get("prr").is_some_and(|v| v == "true") {
        // "Primary ready for rebalance": the map is there and has storage.
        match gw.cluster.smap().await {
            Ok(s) if !s.targets.is_empty() => Ok(empty(StatusCode::OK)),
            _ => Ok(empty(StatusCode::SERVICE_UNAVAILABLE)),
        }
    } else {
        Ok(empty(StatusCode::OK))
    }
}
