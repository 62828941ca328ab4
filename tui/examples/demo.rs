//! The console against a simulated cluster, for trying it in a real terminal:
//! `cargo run -p shoal-tui --example demo` (add `-- HOST:PORT` to use a real proxy instead,
//! `-- --readonly` for read-only, `-- --panic` to see the terminal restored after a panic). The fake proxy answers status polls and lifecycle requests;
//! a maintenance rebalance advances on every poll, then the node turns safe to power off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_actors::Error;
use shoal_actors::client::Client;
use shoal_actors::proto::msg::{Control, Reply};
use shoal_actors::proto::{Conn, DEFAULT_MAX_FRAME, Msg};
use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleReply, Plan, PlanMove};
use shoal_actors::types::smap::{NodeId, Role};
use shoal_actors::types::status::{
    ClusterStatus, MountpathStats, NodeState, NodeStatus, RebState, RebalanceStatus, Stage,
    TargetRebStatus,
};
use shoal_tui::{ConsoleOptions, run};

/// The simulated cluster: status plus the rebalance in progress.
struct Sim {
    cluster: ClusterStatus,
    reb: Option<RebalanceStatus>,
    generation: u64,
}

fn node(id: &str, role: Role, i: u64) -> NodeStatus {
    NodeStatus {
        id: id.into(),
        role,
        mem_used_pct: 12.5 + i as f64,
        mem_avail: (30 << 30) + i * (1 << 28),
        cap_used_pct: 16.0 + i as f64,
        cap_avail: 2_677_340_000_000 - i * (1 << 36),
        cpu_used_pct: 0.5 * i as f64,
        rebalance: "-".into(),
        uptime_secs: 1860 + i * 400,
        status: NodeState::Online,
        addr: format!("127.0.0.1:{}", 8080 + i),
        reachable: true,
        object_count: 10_000 + i * 37,
        mountpaths: (1..=2)
            .map(|k| MountpathStats {
                path: format!("/shoal/{id}/mp{k}"),
                used: 400 << 30,
                avail: 1600 << 30,
                total: 2000 << 30,
                objects: 5000 + i,
                object_bytes: 300 << 30,
                enabled: true,
                fs: format!("ext4 /dev/sd{}1", (b'a' + k as u8) as char),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

impl Sim {
    fn new() -> Self {
        let mut proxies = vec![
            node("MWIp8080", Role::Proxy, 0),
            node("Qz7p8090", Role::Proxy, 1),
        ];
        proxies[0].is_primary = true;
        proxies[1].non_electable = true;
        let ids = [
            "ikht8083",
            "noXt8082",
            "VmQt8081",
            "59Rt8087",
            "93ft8084",
            "Xq3ft8085",
        ];
        let targets = ids
            .iter()
            .enumerate()
            .map(|(i, id)| node(id, Role::Target, i as u64))
            .collect();
        Sim {
            cluster: ClusterStatus {
                uuid: "7d1c9c2e-0f5a-4e2b-9d35-5c9b8a7f1e22".into(),
                smap_version: 12,
                primary: "MWIp8080".into(),
                proxies,
                targets,
                rebalance: None,
            },
            reb: None,
            generation: 4,
        }
    }

    /// One poll's worth of progress.
    fn advance(&mut self) {
        let Some(r) = self.reb.as_mut().filter(|r| r.is_running()) else {
            return;
        };
        r.bytes_moved = (r.bytes_moved + r.bytes_total / 8).min(r.bytes_total);
        r.objs_moved = (r.objs_moved + r.objs_total / 8).min(r.objs_total);
        let left = r.bytes_total - r.bytes_moved;
        r.eta_secs = Some(left / r.rate_bytes_per_sec as u64);
        for t in &mut r.targets {
            t.tx_bytes += 1 << 30;
            t.tx_objs += 120;
            t.stage = Stage::Traverse;
        }
        if left == 0 {
            r.state = RebState::Finished;
            r.stage = Stage::Done;
            r.eta_secs = None;
            let id = r.id.clone();
            for t in &mut self.cluster.targets {
                t.rebalance = format!("finished({id})");
                if t.migrating {
                    t.migrating = false;
                    t.safe_to_power_off = t.status == NodeState::Maintenance;
                }
            }
            self.cluster
                .targets
                .retain(|t| t.status != NodeState::Decommission);
        }
    }

    fn lifecycle(&mut self, req: shoal_actors::types::lifecycle::LifecycleRequest) -> Msg {
        if self.reb.as_ref().is_some_and(|r| r.is_running()) && !req.dry_run {
            let id = &self.reb.as_ref().unwrap().id;
            return Error::Busy(format!(
                "cluster membership is busy: rebalance {id} is running"
            ))
            .into();
        }
        let ids: Vec<String> = req.nodes.iter().map(|n| n.0.clone()).collect();
        if req.dry_run {
            let moves = ids
                .iter()
                .map(|id| PlanMove {
                    from: id.clone(),
                    to: "93ft8084".into(),
                    objs: 4200,
                    bytes: 37 << 30,
                })
                .collect();
            return lifecycle_reply(LifecycleReply {
                plan: Some(Plan {
                    op: req.op.to_string(),
                    nodes: ids,
                    rebalance: !req.no_rebalance,
                    moves,
                    objs_total: 4200,
                    bytes_total: 37 << 30,
                    fits: true,
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        self.generation += 1;
        let gen_id = format!("g{}", self.generation);
        for t in self
            .cluster
            .targets
            .iter_mut()
            .chain(&mut self.cluster.proxies)
        {
            if !ids.contains(&t.id) {
                continue;
            }
            let (status, migrating) = match req.op {
                LifecycleOp::StartMaintenance | LifecycleOp::Shutdown => {
                    (NodeState::Maintenance, true)
                }
                LifecycleOp::Decommission => (NodeState::Decommission, true),
                LifecycleOp::StopMaintenance => (NodeState::Online, false),
            };
            t.status = status;
            t.migrating = migrating && !req.no_rebalance;
            t.safe_to_power_off = status == NodeState::Maintenance && req.no_rebalance;
            if req.op == LifecycleOp::Shutdown {
                t.reachable = false;
            }
        }
        self.cluster.smap_version += 1;
        if req.no_rebalance {
            return lifecycle_reply(LifecycleReply {
                smap_version: self.cluster.smap_version,
                ..Default::default()
            });
        }
        for t in &mut self.cluster.targets {
            t.rebalance = format!("running({gen_id})");
        }
        self.reb = Some(RebalanceStatus {
            id: gen_id.clone(),
            state: RebState::Running,
            stage: Stage::Traverse,
            objs_total: 4200,
            bytes_total: 37 << 30,
            rate_bytes_per_sec: (450 << 20) as f64,
            eta_secs: None,
            targets: self
                .cluster
                .targets
                .iter()
                .map(|t| TargetRebStatus {
                    id: t.id.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        lifecycle_reply(LifecycleReply {
            rebalance_id: Some(gen_id),
            smap_version: self.cluster.smap_version,
            affected: ids,
            ..Default::default()
        })
    }
}

fn lifecycle_reply(r: LifecycleReply) -> Msg {
    Msg::Reply(Reply::Lifecycle(Box::new(r)))
}

async fn fake_proxy() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let sim = Arc::new(Mutex::new(Sim::new()));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sim = sim.clone();
            tokio::spawn(async move {
                let mut conn = Conn::new(stream, NodeId("MWIp8080".into()), DEFAULT_MAX_FRAME);
                while let Ok(Some(env)) = conn.recv().await {
                    let reply = {
                        let mut s = sim.lock().unwrap();
                        match env.body {
                            Msg::Control(Control::GetClusterStatus(_)) => {
                                s.advance();
                                let mut c = s.cluster.clone();
                                c.rebalance = s.reb.clone();
                                Msg::Reply(Reply::ClusterStatus(Box::new(c)))
                            }
                            Msg::Control(Control::GetRebStatus(_)) => {
                                Msg::Reply(Reply::RebStatus(s.reb.clone().map(Box::new)))
                            }
                            Msg::Control(Control::Lifecycle(req)) => s.lifecycle(req),
                            _ => Error::BadRequest("not simulated".into()).into(),
                        }
                    };
                    if conn.send(env.corr, reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let readonly = args.iter().any(|a| a == "--readonly");
    if args.iter().any(|a| a == "--panic") {
        // Checks the panic hook: the terminal must come back in a usable state.
        tokio::spawn(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            panic!("demo panic requested with --panic");
        });
    }
    let endpoint = match args.iter().find(|a| !a.starts_with("--")) {
        Some(ep) => ep.clone(),
        None => fake_proxy().await?,
    };
    run(
        Client::new(endpoint),
        ConsoleOptions {
            refresh: Duration::from_secs(1),
            readonly,
        },
    )
    .await
}
