//! One function per command; each prints human output or one JSON document.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::json;
use shoal_actors::types::lifecycle::ClusterOp;
use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleReply, LifecycleRequest, Plan};
use shoal_actors::types::smap::{NodeId, Role};
use shoal_actors::types::status::{ClusterStatus, NodeState, NodeStatus, RebState, Stage};

use crate::cli::*;
use crate::format::{self, Table};
use crate::{CmdResult, Env, Failure};

pub async fn dispatch(env: &Env, cmd: Command) -> CmdResult {
    match cmd {
        Command::Playground(a) => crate::playground::run(env, a).await,
        Command::Console(a) => console(env, a).await,
        Command::Show(ShowCmd::Cluster {
            what,
            refresh,
            count,
        }) => repeat(refresh, count, || show_cluster(env, what.as_deref())).await,
        Command::Show(ShowCmd::Rebalance {
            all: false,
            refresh,
            count,
        }) => repeat(refresh, count, || show_rebalance(env)).await,
        Command::Show(ShowCmd::Rebalance { all: true, .. }) => show_history(env).await,
        Command::Show(ShowCmd::Job { id }) => show_job(env, &id).await,
        Command::Show(ShowCmd::Storage {
            node,
            refresh,
            count,
        }) => {
            repeat(refresh, count, || {
                crate::storage::show_storage(env, node.as_deref())
            })
            .await
        }
        Command::Show(ShowCmd::Resilver {
            node,
            refresh,
            count,
        }) => {
            repeat(refresh, count, || {
                crate::storage::show_resilver(env, node.as_deref())
            })
            .await
        }
        Command::Wait(WaitCmd::Resilver { node, timeout }) => {
            crate::storage::wait_resilver(env, node.as_deref(), timeout).await
        }
        Command::Storage(StorageCmd::Mountpath(m)) => crate::storage::mountpath(env, m).await,
        Command::Rebalance(c) => rebalance_ctl(env, c).await,
        Command::Completion { shell } => crate::completion::script(&shell),
        Command::Cluster(ClusterCmd::Check(c)) => cluster_check(env, c).await,
        Command::Cluster(ClusterCmd::AddRemoveNodes(m)) => membership(env, m).await,
        Command::Cluster(ClusterCmd::Decommission { rm_user_data, yes }) => {
            confirm(
                yes,
                "about to permanently decommission the whole cluster. The operation cannot be undone!",
            )?;
            env.client
                .cluster_op(ClusterOp::Decommission { rm_user_data })
                .await?;
            done(
                env,
                json!({"rebalance_id": null, "smap_version": null}),
                "Cluster successfully decommissioned",
            )
        }
        Command::Cluster(ClusterCmd::Shutdown { yes }) => {
            confirm(yes, "Shut down the whole cluster")?;
            env.client.cluster_op(ClusterOp::Shutdown).await?;
            done(
                env,
                json!({"rebalance_id": null, "smap_version": null}),
                "Cluster successfully shut down",
            )
        }
        Command::Advanced(AdvancedCmd::RemoveFromSmap { node, yes }) => {
            let id = NodeId::parse_display(&node);
            confirm(
                yes,
                &format!("about to remove {id} from the cluster map without rebalancing (unsafe)"),
            )?;
            let r = env.client.remove_from_smap(id.clone()).await?;
            done(
                env,
                json!({"rebalance_id": r.rebalance_id, "smap_version": r.smap_version}),
                &format!("Node {id} removed from the cluster map"),
            )
        }
        Command::Config(ConfigCmd::Cluster { section }) => {
            let cfg = env.client.config().await?;
            let v = cfg.section_json(section.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            Ok(())
        }
        Command::Wait(WaitCmd::Rebalance { timeout }) => wait_rebalance(env, timeout).await,
        Command::Wait(WaitCmd::Node {
            node,
            status,
            timeout,
        }) => wait_node(env, &node, &status, timeout).await,
        Command::Bucket(b) => bucket(env, b).await,
        Command::Object(o) => object(env, o).await,
        Command::Auth(AuthCmd::S3Key(k)) => s3_key(env, k).await,
        Command::Auth(a) => crate::authn::run(env, a).await,
    }
}

/// `nodectl auth s3-key create|ls|rm` (admin).
async fn s3_key(env: &Env, k: crate::cli::S3KeyCmd) -> CmdResult {
    use crate::cli::S3KeyCmd;
    use shoal_actors::proto::msg::S3KeyOp;
    let op = match k {
        S3KeyCmd::Create { admin, user } => S3KeyOp::Create { admin, user },
        S3KeyCmd::Ls => S3KeyOp::List,
        S3KeyCmd::Rm { access_key } => S3KeyOp::Remove { access_key },
    };
    let removing = matches!(op, S3KeyOp::Remove { .. });
    let res = env.client.s3_keys(op).await?;
    if env.json {
        let created = res
            .created
            .as_ref()
            .map(|(a, s)| json!({"access_key": a, "secret_key": s}));
        println!(
            "{}",
            json!({"keys": res.keys.iter().map(|k| json!({"access_key": k.access_key, "admin": k.admin, "user": k.user, "created": k.created})).collect::<Vec<_>>(), "created": created})
        );
        return Ok(());
    }
    if let Some((a, s)) = &res.created {
        println!("access key: {a}");
        println!("secret key: {s}");
        println!("(the secret is shown this once; keep it)");
    } else if removing {
        println!("S3 key removed.");
    } else {
        let mut t = Table::new(&["ACCESS KEY", "ADMIN", "USER", "CREATED"]);
        for k in &res.keys {
            t.plain(vec![
                k.access_key.clone(),
                if k.admin { "yes" } else { "no" }.into(),
                if k.user.is_empty() {
                    "-".into()
                } else {
                    k.user.clone()
                },
                format::clock(Some(k.created)),
            ]);
        }
        print!("{}", t.render(false));
    }
    Ok(())
}

pub(crate) fn done(env: &Env, doc: serde_json::Value, human: &str) -> CmdResult {
    if env.json {
        println!("{doc}");
    } else {
        // Human lines may quote names from the cluster: print them safely.
        println!("{}", format::safe(human));
    }
    Ok(())
}

/// Asks on the terminal unless `--yes`. Without a terminal, `--yes` is required.
pub(crate) fn confirm(yes: bool, question: &str) -> CmdResult {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "{question}: confirmation needed; rerun with --yes"
        )));
    }
    eprint!("{question}\nProceed? [y/N]: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure {
            code: crate::exit::ERROR,
            message: "Operation canceled".into(),
        })
    }
}

async fn repeat<F, Fut>(refresh: Option<f64>, count: Option<u64>, mut f: F) -> CmdResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = CmdResult>,
{
    let Some(secs) = refresh else {
        return f().await;
    };
    if secs.is_nan() || secs <= 0.0 {
        return Err(Failure::usage(
            "--refresh must be a positive number of seconds",
        ));
    }
    let mut n = 0;
    loop {
        f().await?;
        n += 1;
        if count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        println!();
    }
}

async fn console(env: &Env, a: ConsoleArgs) -> CmdResult {
    if a.refresh.is_nan() || a.refresh <= 0.0 {
        return Err(Failure::usage(
            "--refresh must be a positive number of seconds",
        ));
    }
    shoal_tui::run(
        env.client.clone(),
        shoal_tui::ConsoleOptions {
            refresh: Duration::from_secs_f64(a.refresh),
            readonly: a.readonly,
        },
    )
    .await
    .map_err(Failure::from)
}

// ---------------------------------------------------------------------------------------------
// show
// ---------------------------------------------------------------------------------------------

fn metric_cells(n: &NodeStatus, target: bool) -> Vec<String> {
    if !n.reachable {
        let k = if target { 5 } else { 2 };
        return vec!["-".into(); k];
    }
    let mut v = vec![format::pct2(n.mem_used_pct), format::size(n.mem_avail)];
    if target {
        v.push(format::pct0(n.cap_used_pct));
        v.push(format::size(n.cap_avail));
        v.push(format::pct2(n.cpu_used_pct));
    }
    v
}

fn node_name(n: &NodeStatus, primary: bool) -> String {
    let mut s = n.id.clone();
    if primary {
        s.push_str("[P]");
    }
    if n.non_electable {
        s.push_str("[n/e]");
    }
    if !n.reachable {
        s.push_str("[x]");
    }
    s
}

fn uptime_cell(n: &NodeStatus) -> String {
    if n.reachable {
        format::duration(n.uptime_secs)
    } else {
        "-".into()
    }
}

pub fn targets_table(st: &ClusterStatus, colour: bool) -> String {
    let mut t = Table::new(&[
        "TARGET",
        "MEM USED %",
        "MEM AVAIL",
        "CAP USED %",
        "CAP AVAIL",
        "CPU USED %",
        "REBALANCE",
        "UPTIME",
        "STATUS",
    ]);
    for n in &st.targets {
        let mut cells: Vec<(String, Option<&'static str>)> = vec![(node_name(n, false), None)];
        cells.extend(metric_cells(n, true).into_iter().map(|c| (c, None)));
        cells.push((n.rebalance.clone(), None));
        cells.push((uptime_cell(n), None));
        cells.push((n.status.to_string(), format::status_colour(n)));
        t.row(cells);
    }
    t.render(colour)
}

pub fn proxies_table(st: &ClusterStatus, colour: bool) -> String {
    let mut t = Table::new(&["PROXY", "MEM USED %", "MEM AVAIL", "UPTIME", "STATUS"]);
    for n in &st.proxies {
        let mut cells: Vec<(String, Option<&'static str>)> =
            vec![(node_name(n, n.is_primary), None)];
        cells.extend(metric_cells(n, false).into_iter().map(|c| (c, None)));
        cells.push((uptime_cell(n), None));
        cells.push((n.status.to_string(), format::status_colour(n)));
        t.row(cells);
    }
    t.render(colour)
}

async fn show_cluster(env: &Env, what: Option<&str>) -> CmdResult {
    match what {
        None | Some("proxy") | Some("target") => {}
        Some("smap") => return show_smap(env).await,
        Some(other) => {
            return Err(Failure::usage(format!(
                "unknown argument {other:?}: expected proxy, target or smap"
            )));
        }
    }
    let st = env.client.cluster_status().await?;
    if env.json {
        let mut doc = serde_json::to_value(&st).expect("json");
        if let Some("proxy") = what {
            doc.as_object_mut().map(|o| o.remove("targets"));
        }
        if let Some("target") = what {
            doc.as_object_mut().map(|o| o.remove("proxies"));
        }
        println!("{doc}");
        return Ok(());
    }
    let colour = env.tty;
    let mut out = String::new();
    if what != Some("target") {
        out.push_str(&proxies_table(&st, colour));
    }
    if what.is_none() {
        out.push('\n');
    }
    if what != Some("proxy") {
        out.push_str(&targets_table(&st, colour));
    }
    if what.is_none() {
        let active = st
            .targets
            .iter()
            .filter(|t| t.status == NodeState::Online)
            .count();
        out.push_str(&format!(
            "\nSummary:\n Proxies:\t{}\n Targets:\t{} ({} active)\n Primary Proxy:\t{}\n Smap Version:\t{}\n Cluster UUID:\t{}\n",
            st.proxies.len(),
            st.targets.len(),
            active,
            st.primary,
            st.smap_version,
            st.uuid
        ));
        if let Some(r) = &st.rebalance {
            out.push_str(&format!(" Rebalance:\t{} {}\n", r.id, r.state));
        }
    }
    print!("{out}");
    Ok(())
}

async fn show_smap(env: &Env) -> CmdResult {
    let smap = env.client.smap().await?;
    if env.json {
        println!("{}", serde_json::to_string(&smap).expect("json"));
        return Ok(());
    }
    let mut t = Table::new(&["NODE", "TYPE", "PUBLIC URL", "FLAGS"]);
    for n in smap.proxies.values() {
        let mut id = n.id.0.clone();
        if n.id == smap.primary {
            id.push_str("[P]");
        }
        t.plain(vec![
            id,
            "proxy".into(),
            format!("tcp://{}", n.addr),
            n.flags.names().join(","),
        ]);
    }
    for n in smap.targets.values() {
        t.plain(vec![
            n.id.0.clone(),
            "target".into(),
            format!("tcp://{}", n.addr),
            n.flags.names().join(","),
        ]);
    }
    print!("{}", t.render(false));
    println!(
        "\nSummary:\tproxies({}), targets({}), cluster map(v{}), cluster ID(\"{}\")",
        smap.proxies.len(),
        smap.targets.len(),
        smap.version,
        smap.uuid
    );
    Ok(())
}

/// `nodectl cluster check ok-to-stop|safe-to-destroy NODE...`: exit 0 yes, 3 no.
async fn cluster_check(env: &Env, c: CheckCmd) -> CmdResult {
    use shoal_actors::logic::checks::{Check, check, in_map, refuse_unknown};
    let (kind, raw) = match c {
        CheckCmd::OkToStop { nodes } => (Check::OkToStop, nodes),
        CheckCmd::SafeToDestroy { nodes } => (Check::SafeToDestroy, nodes),
    };
    let nodes = parse_nodes(&raw)?;
    let status = env.client.cluster_status().await?;
    let mut v = check(kind, &status, &nodes);
    if !nodes.iter().all(|id| in_map(&status, id)) {
        let smap = env.client.smap().await?;
        refuse_unknown(&mut v, &status, &nodes, &smap.decommissioned);
    }
    let names: Vec<String> = nodes
        .iter()
        .map(|n| {
            if status.targets.iter().any(|t| t.id == n.0) {
                format!("t[{n}]")
            } else if status.proxies.iter().any(|p| p.id == n.0) {
                format!("p[{n}]")
            } else {
                n.to_string()
            }
        })
        .collect();
    if env.json {
        let mut j = serde_json::to_value(&v).expect("json");
        j["check"] = json!(kind.as_str());
        j["nodes"] = json!(nodes.iter().map(|n| n.0.clone()).collect::<Vec<_>>());
        println!("{j}");
    } else {
        let verdict = if v.ok { "yes" } else { "no" };
        println!("{} {}: {verdict}", kind.as_str(), names.join(" "));
        for r in &v.reasons {
            println!("  - {}", format::safe(r));
        }
        for n in &v.notes {
            println!("  note: {}", format::safe(n));
        }
    }
    if v.ok {
        Ok(())
    } else {
        Err(Failure {
            code: crate::exit::REFUSED,
            message: String::new(),
        })
    }
}

/// `nodectl rebalance pause|resume|throttle`: one change to the cluster config, which every
/// target's walk follows live.
async fn rebalance_ctl(env: &Env, c: RebalanceCmd) -> CmdResult {
    use shoal_actors::proto::msg::RebalanceCtl;
    let (ctl, question, yes) = match c {
        RebalanceCmd::Pause { yes } => (
            RebalanceCtl {
                paused: Some(true),
                ..Default::default()
            },
            "Pause the global rebalance on every target (until `nodectl rebalance resume`)".into(),
            yes,
        ),
        RebalanceCmd::Resume { yes } => (
            RebalanceCtl {
                paused: Some(false),
                ..Default::default()
            },
            "Resume the global rebalance".into(),
            yes,
        ),
        RebalanceCmd::Throttle { rate, yes } => {
            let bps = format::parse_rate(&rate).map_err(Failure::usage)?;
            let what = if bps == 0 {
                "Remove the rebalance throttle".to_string()
            } else {
                format!(
                    "Limit each target's rebalance traffic to {}/s",
                    format::size(bps)
                )
            };
            (
                RebalanceCtl {
                    throttle_bytes_per_sec: Some(bps),
                    ..Default::default()
                },
                what,
                yes,
            )
        }
    };
    confirm(yes, &question)?;
    let cfg = env.client.rpc(ctl).await?;
    let throttle = if cfg.throttle_bytes_per_sec == 0 {
        "off".to_string()
    } else {
        format!("{}/s per target", format::size(cfg.throttle_bytes_per_sec))
    };
    done(
        env,
        json!({"paused": cfg.paused, "throttle_bytes_per_sec": cfg.throttle_bytes_per_sec}),
        &format!(
            "Rebalance {}, throttle {throttle}",
            if cfg.paused { "paused" } else { "not paused" }
        ),
    )
}

/// `show rebalance --all`: the cluster's history (oldest first), then the current one.
async fn show_history(env: &Env) -> CmdResult {
    let cfg = env.client.config().await?;
    let current = env.client.rebalance_status().await?;
    let running = current.as_ref().filter(|r| r.is_running());
    if env.json {
        println!("{}", json!({ "history": cfg.history, "running": running }));
        return Ok(());
    }
    let mut t = Table::new(&[
        "REB ID", "TRIGGER", "START", "END", "OBJECTS", "BYTES", "ERRORS", "OUTCOME",
    ]);
    for r in &cfg.history {
        t.plain(vec![
            r.id.clone(),
            r.trigger.clone(),
            format::clock(Some(r.started)),
            format::clock(Some(r.finished)),
            r.objects.to_string(),
            format::size(r.bytes),
            r.errors.to_string(),
            r.outcome.clone(),
        ]);
    }
    if let Some(r) = running {
        t.plain(vec![
            r.id.clone(),
            "-".into(),
            format::clock(r.started),
            "-".into(),
            r.objs_moved.to_string(),
            format::size(r.bytes_moved),
            r.errors.to_string(),
            if r.paused { "paused" } else { "running" }.into(),
        ]);
    }
    if cfg.history.is_empty() && running.is_none() {
        println!("No rebalance has run in this cluster.");
        return Ok(());
    }
    print!("{}", t.render(false));
    Ok(())
}

/// `show job g<N>`: the running generation as `show rebalance` shows it, or a past one from
/// the history; `show job r<N>`: the target resilver with that ID.
async fn show_job(env: &Env, raw: &str) -> CmdResult {
    let id = raw.trim();
    if id.starts_with('r') {
        return crate::storage::show_resilver_job(env, id).await;
    }
    let id = if id.starts_with('g') {
        id.to_string()
    } else {
        format!("g{id}")
    };
    if id.len() < 2 || !id[1..].chars().all(|c| c.is_ascii_digit()) {
        return Err(Failure::usage(format!(
            "{raw:?}: a job is g<N> (a global rebalance) or r<N> (a resilver)"
        )));
    }
    if let Some(r) = env.client.rebalance_status().await?
        && r.id == id
    {
        return show_rebalance(env).await;
    }
    let cfg = env.client.config().await?;
    let Some(rec) = cfg.history.iter().find(|r| r.id == id) else {
        return Err(Failure::from(shoal_actors::Error::NotFound(format!(
            "no job {id}: not running and not in the history (the last {} are kept)",
            shoal_actors::types::config::HISTORY_KEEP
        ))));
    };
    if env.json {
        println!("{}", serde_json::to_string(rec).expect("json"));
        return Ok(());
    }
    println!("{}: {}", rec.id, rec.outcome);
    println!("trigger: {}", format::safe(&rec.trigger));
    println!(
        "start {}, end {}, {} objects, {} moved, {} errors",
        format::clock(Some(rec.started)),
        format::clock(Some(rec.finished)),
        rec.objects,
        format::size(rec.bytes),
        rec.errors
    );
    Ok(())
}

async fn show_rebalance(env: &Env) -> CmdResult {
    let r = env.client.rebalance_status().await?;
    if env.json {
        match r {
            Some(r) => println!("{}", serde_json::to_string(&r).expect("json")),
            None => println!("null"),
        }
        return Ok(());
    }
    let Some(r) = r else {
        println!("Global rebalance is not running.");
        return Ok(());
    };
    let mut t = Table::new(&[
        "REB ID",
        "NODE",
        "TX OBJECTS",
        "TX BYTES",
        "RX OBJECTS",
        "RX BYTES",
        "START",
        "END",
        "STATE",
    ]);
    for tr in &r.targets {
        let state = match tr.stage {
            Stage::Done => "Finished".to_string(),
            Stage::Aborted => "Aborted".to_string(),
            s if tr.paused => format!("Paused ({s})"),
            s => format!("Running ({s})"),
        };
        t.plain(vec![
            r.id.clone(),
            tr.id.clone(),
            tr.tx_objs.to_string(),
            format::size(tr.tx_bytes),
            tr.rx_objs.to_string(),
            format::size(tr.rx_bytes),
            format::clock(tr.started),
            format::clock(tr.finished),
            state,
        ]);
    }
    print!("{}", t.render(false));
    println!();
    println!("{}", format::rebalance_summary(&r));
    if r.paused {
        println!("paused: held by `nodectl rebalance pause`; `nodectl rebalance resume` goes on");
    }
    for b in &r.blocked_by {
        println!("blocked: {}", format::safe(b));
    }
    match r.state {
        // "Completed" would read as "done right" at 3 a.m.: objects may not have moved.
        RebState::Finished if r.errors > 0 => println!(
            "\nRebalance {} finished with {} errors: some objects did not move.",
            r.id, r.errors
        ),
        RebState::Finished => println!("\nRebalance {} completed.", r.id),
        RebState::Aborted => println!("\nRebalance {} aborted.", r.id),
        RebState::Running => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// lifecycle
// ---------------------------------------------------------------------------------------------

fn parse_nodes(raw: &[String]) -> Result<Vec<NodeId>, Failure> {
    let mut out = Vec::new();
    for r in raw {
        for part in r.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = NodeId::parse_display(part);
            if out.contains(&id) {
                return Err(Failure::usage(format!("{id} is specified more than once")));
            }
            out.push(id);
        }
    }
    if out.is_empty() {
        return Err(Failure::usage("no node IDs given"));
    }
    Ok(out)
}

async fn display_names(env: &Env, ids: &[NodeId]) -> Vec<String> {
    let smap = env.client.smap().await.ok();
    ids.iter()
        .map(|id| match smap.as_ref().and_then(|s| s.get(id)) {
            Some(n) => n.display_name(),
            None => id.0.clone(),
        })
        .collect()
}

async fn membership(env: &Env, m: MembershipCmd) -> CmdResult {
    let (op, args, rm_user_data) = match m {
        MembershipCmd::StartMaintenance(a) => (LifecycleOp::StartMaintenance, a, false),
        MembershipCmd::StopMaintenance(a) => (LifecycleOp::StopMaintenance, a, false),
        MembershipCmd::Shutdown(a) => (LifecycleOp::Shutdown, a, false),
        MembershipCmd::Decommission { op, rm_user_data } => {
            (LifecycleOp::Decommission, op, rm_user_data)
        }
        MembershipCmd::Join { addr, role } => return join(env, &addr, role.as_deref()).await,
    };
    let nodes = parse_nodes(&args.nodes)?;
    let names = display_names(env, &nodes).await;
    let who = names.join(", ");
    let req = LifecycleRequest {
        op,
        nodes: nodes.clone(),
        no_rebalance: args.no_rebalance,
        rm_user_data,
        dry_run: args.dry_run,
    };
    if args.dry_run {
        let r = env.client.lifecycle(req).await?;
        let plan = r.plan.unwrap_or_default();
        if env.json {
            println!("{}", serde_json::to_string(&plan).expect("json"));
        } else {
            print_plan(&plan, &who);
        }
        if !plan.fits {
            return Err(Failure {
                code: crate::exit::ERROR,
                message: "the remaining targets cannot hold the data; not safe to proceed".into(),
            });
        }
        return Ok(());
    }
    let has_target = names.iter().any(|n| n.starts_with("t["));
    if args.no_rebalance && has_target && op != LifecycleOp::StopMaintenance {
        eprintln!(
            "Warning: executing \"{op}\" _and_ not running global rebalance may lead to a loss of data!\n\
             To migrate the data later, take the node out of maintenance and run the operation again without --no-rebalance."
        );
    }
    let question = match op {
        LifecycleOp::StartMaintenance => format!("about to put {who} in maintenance mode"),
        LifecycleOp::StopMaintenance => format!("Take {who} out of maintenance mode"),
        LifecycleOp::Shutdown => format!("Shut down {who}"),
        LifecycleOp::Decommission => {
            format!("about to permanently decommission {who}. The operation cannot be undone!")
        }
    };
    confirm(args.yes, &question)?;
    let r = env.client.lifecycle(req).await?;
    if env.json {
        println!(
            "{}",
            json!({"rebalance_id": r.rebalance_id, "smap_version": r.smap_version,
                   "affected": r.affected, "skipped": r.skipped})
        );
        return Ok(());
    }
    print_lifecycle(op, &r, &nodes, &names);
    Ok(())
}

fn print_lifecycle(op: LifecycleOp, r: &LifecycleReply, ids: &[NodeId], names: &[String]) {
    if let Some(g) = &r.rebalance_id {
        println!("Started rebalance \"{g}\" (to monitor, run 'nodectl show rebalance').");
    }
    for (id, name) in ids.iter().zip(names) {
        if r.skipped.contains(&id.0) {
            let already = match op {
                LifecycleOp::StopMaintenance => "is already active",
                _ => "is already in maintenance mode",
            };
            println!("{name} {already} (nothing to do)");
            continue;
        }
        let reb = r.rebalance_id.is_some();
        let line = match (op, reb) {
            (LifecycleOp::StartMaintenance, _) => format!("{name} is now in maintenance mode"),
            (LifecycleOp::StopMaintenance, _) => format!("{name} is now active"),
            (LifecycleOp::Decommission, true) => format!(
                "{name} is being decommissioned, please wait for cluster rebalancing to finish..."
            ),
            (LifecycleOp::Decommission, false) => {
                format!("{name} has been decommissioned (permanently removed from the cluster)")
            }
            (LifecycleOp::Shutdown, true) => {
                format!("{name} is shutting down, please wait for cluster rebalancing to finish")
            }
            (LifecycleOp::Shutdown, false) => format!("{name} has been shut down"),
        };
        println!("{line}");
    }
    if op == LifecycleOp::Shutdown {
        for name in names {
            println!(
                "\nNote: the node {name} is _not_ decommissioned - it remains in the cluster map and can be manually\n\
                 restarted at any later time (and subsequently activated via 'stop-maintenance' operation)."
            );
        }
    }
}

fn print_plan(p: &Plan, who: &str) {
    println!(
        "Plan for \"{}\" of {who} (dry run: nothing was changed)",
        p.op
    );
    if !p.rebalance {
        println!("No data migrates for this operation.");
    } else if p.moves.is_empty() {
        println!("No objects need to move.");
    } else {
        let mut t = Table::new(&["FROM", "TO", "OBJECTS", "SIZE"]);
        for m in &p.moves {
            t.plain(vec![
                format!("t[{}]", m.from),
                format!("t[{}]", m.to),
                m.objs.to_string(),
                format::size(m.bytes),
            ]);
        }
        print!("{}", t.render(false));
        println!();
        let mut c = Table::new(&[
            "TARGET",
            "IN",
            "OUT",
            "CAP AVAIL NOW",
            "CAP AVAIL AFTER",
            "CAP USED AFTER",
        ]);
        for x in &p.capacity {
            c.plain(vec![
                format!("t[{}]", x.target),
                format::size(x.bytes_in),
                format::size(x.bytes_out),
                format::size(x.cap_avail_before),
                format::size(x.cap_avail_after),
                format!("{:.0}%", x.cap_used_pct_after),
            ]);
        }
        print!("{}", c.render(false));
        println!(
            "\nTotal: {} objects, {} would move.",
            p.objs_total,
            format::size(p.bytes_total)
        );
    }
    for w in &p.warnings {
        println!("WARNING: {}", format::safe(w));
    }
}

async fn join(env: &Env, addr: &str, role: Option<&str>) -> CmdResult {
    let role: Option<Role> = match role {
        None => None,
        Some(r) => Some(
            r.parse()
                .map_err(|e: shoal_actors::Error| Failure::usage(e.to_string()))?,
        ),
    };
    let r = env.client.join(addr, role).await?;
    if env.json {
        println!(
            "{}",
            json!({"rebalance_id": r.rebalance_id, "smap_version": r.smap_version, "node": r.affected.first()})
        );
        return Ok(());
    }
    let id = r.affected.first().cloned().unwrap_or_default();
    let names = display_names(env, &[NodeId(id)]).await;
    println!("{} successfully joined the cluster", names[0]);
    if let Some(g) = &r.rebalance_id {
        println!("Started rebalance \"{g}\" (to monitor, run 'nodectl show rebalance').");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// wait
// ---------------------------------------------------------------------------------------------

pub(crate) fn deadline(timeout: Option<f64>) -> Result<Option<Instant>, Failure> {
    match timeout {
        None => Ok(None),
        Some(t) if t > 0.0 => Ok(Some(Instant::now() + Duration::from_secs_f64(t))),
        Some(_) => Err(Failure::usage("--timeout must be positive")),
    }
}

/// Why a rebalance that stopped running is no all-clear: objects may not have moved.
fn not_done_right(r: &shoal_actors::types::status::RebalanceStatus) -> Option<String> {
    let mut m = match r.state {
        RebState::Aborted => format!(
            "rebalance {} was aborted ({} of {} objects moved): objects may not be where \
             they belong",
            r.id, r.objs_moved, r.objs_total
        ),
        _ if r.errors > 0 => format!(
            "rebalance {} finished with {} errors: some objects did not move",
            r.id, r.errors
        ),
        _ => return None,
    };
    for b in r.blocked_by.iter().filter(|b| b.starts_with("retried at ")) {
        m.push_str(&format!("; {}", format::safe(b)));
    }
    Some(m)
}

async fn wait_rebalance(env: &Env, timeout: Option<f64>) -> CmdResult {
    let until = deadline(timeout)?;
    let progress = std::io::stderr().is_terminal() && !env.json;
    let mut announced = false;
    loop {
        let r = env.client.rebalance_status().await?;
        match &r {
            None => {
                if env.json {
                    println!("{}", json!({"rebalance_id": null, "state": "idle"}));
                } else {
                    println!("Global rebalance is not running.");
                }
                return Ok(());
            }
            Some(r) if !r.is_running() => {
                if progress {
                    eprintln!(
                        "\r{}  {}",
                        format::bar(1.0, 30),
                        format::rebalance_summary(r)
                    );
                }
                if env.json {
                    println!(
                        "{}",
                        json!({"rebalance_id": r.id, "state": r.state, "errors": r.errors})
                    );
                }
                // A script that waits and then powers a node off must not go on: exit 1.
                if let Some(message) = not_done_right(r) {
                    return Err(Failure {
                        code: crate::exit::ERROR,
                        message,
                    });
                }
                if !env.json {
                    println!("Done.");
                }
                return Ok(());
            }
            Some(r) => {
                if !announced && !env.json {
                    println!("Waiting for rebalance[{}] ...", r.id);
                    announced = true;
                }
                if progress {
                    eprint!(
                        "\r{}  {}   ",
                        format::bar(r.fraction(), 30),
                        format::rebalance_summary(r)
                    );
                    let _ = std::io::stderr().flush();
                }
            }
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            if progress {
                eprintln!();
            }
            return Err(Failure::timeout(format!(
                "rebalance {} still running after the timeout",
                r.map(|r| r.id).unwrap_or_default()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

const NODE_STATUSES: [&str; 6] = [
    "online",
    "maintenance",
    "decommission",
    "offline",
    "safe",
    "removed",
];

async fn wait_node(env: &Env, node: &str, status: &str, timeout: Option<f64>) -> CmdResult {
    if !NODE_STATUSES.contains(&status) {
        return Err(Failure::usage(format!(
            "unknown status {status:?}: expected one of {}",
            NODE_STATUSES.join(", ")
        )));
    }
    let id = NodeId::parse_display(node);
    let until = deadline(timeout)?;
    let mut last = String::new();
    loop {
        let st = env.client.cluster_status().await;
        let now = match &st {
            Ok(st) => match st.targets.iter().chain(&st.proxies).find(|n| n.id == id.0) {
                None if status == "safe" => return wait_safe_gone(env, &id).await,
                None => "removed".to_string(),
                Some(n) if status == "safe" && n.safe_to_power_off => "safe".into(),
                Some(n) => n.status.to_string(),
            },
            Err(_) => "unreachable".into(),
        };
        if now == status {
            if env.json {
                println!("{}", json!({"node": id.0, "status": now}));
            } else {
                println!("{id}: {now}");
            }
            return Ok(());
        }
        if let Err(e) = st
            && !matches!(
                e,
                shoal_actors::Error::Io(_) | shoal_actors::Error::Timeout(_)
            )
        {
            return Err(e.into());
        }
        if now != last && !env.json && std::io::stderr().is_terminal() {
            eprintln!("{id}: {now} (waiting for {status})");
        }
        last = now;
        if until.is_some_and(|u| Instant::now() >= u) {
            return Err(Failure::timeout(format!(
                "{id} is {last}, not {status}, after the timeout"
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `wait node ID --status safe` for a node not in the map: safe if it left as decommissioned
/// (drained first); otherwise nothing says its data moved — a typo, or a node removed while
/// silent — and waiting would only run into the timeout (or never end).
async fn wait_safe_gone(env: &Env, id: &NodeId) -> CmdResult {
    let smap = env.client.smap().await?;
    if !smap.decommissioned.contains(id) {
        return Err(shoal_actors::Error::NotFound(format!(
            "{id} is not in the cluster map and was not decommissioned: nothing says its data has moved"
        ))
        .into());
    }
    if smap.undrained.contains(id) {
        // Never safe: what it held was not moved, as `check` says no (exit 3).
        return Err(Failure {
            code: crate::exit::REFUSED,
            message: format!(
                "{id} was decommissioned without a rebalance (--no-rebalance, or rebalancing \
                 off): its objects were not moved off it"
            ),
        });
    }
    if env.json {
        println!("{}", json!({"node": id.0, "status": "safe"}));
    } else {
        println!("{id}: safe (decommissioned: drained and out of the map)");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// buckets and objects
// ---------------------------------------------------------------------------------------------

async fn bucket(env: &Env, b: BucketCmd) -> CmdResult {
    use shoal_actors::client::parse_bucket_uri;
    match b {
        BucketCmd::Create { bucket } => {
            let b = parse_bucket_uri(&bucket)?;
            env.client.create_bucket(&b).await?;
            done(env, json!({"bucket": b}), &format!("\"ais://{b}\" created"))
        }
        BucketCmd::Rm { bucket, yes } => {
            let b = parse_bucket_uri(&bucket)?;
            // Asked only when it holds objects (one look: objects put after it go with the
            // bucket anyway), or when we cannot look; a missing bucket is for the destroy to say.
            if !yes {
                let holds = match env.client.list_objects_page(&b, "", None, 1).await {
                    Ok(page) => page
                        .entries
                        .first()
                        .map(|e| format!(" (such as {:?})", e.name)),
                    Err(shoal_actors::Error::NotFound(_)) => None,
                    Err(_) => Some(String::new()),
                };
                if let Some(example) = holds {
                    confirm(
                        false,
                        &format!("Destroy \"ais://{b}\" and every object in it{example}"),
                    )?;
                }
            }
            env.client.destroy_bucket(&b).await?;
            done(
                env,
                json!({"bucket": b}),
                &format!("\"ais://{b}\" destroyed"),
            )
        }
        BucketCmd::Ls => {
            let list = env.client.list_buckets().await?;
            if env.json {
                println!("{}", json!(list));
            } else {
                for b in list {
                    println!("ais://{b}");
                }
            }
            Ok(())
        }
    }
}

async fn object(env: &Env, o: ObjectCmd) -> CmdResult {
    use shoal_actors::client::{parse_bucket_uri, parse_object_uri};
    match o {
        ObjectCmd::Put { file, object } => {
            let (b, name) = parse_object_uri(&object)?;
            let sum = env
                .client
                .put_file(&file, &b, &name)
                .await
                .map_err(|e| match e {
                    shoal_actors::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
                        Failure::usage(format!("{}: no such file", file.display()))
                    }
                    other => other.into(),
                })?;
            done(
                env,
                json!({"bucket": b, "object": name, "checksum": sum}),
                &format!("PUT \"{}\" => ais://{b}/{name}", file.display()),
            )
        }
        ObjectCmd::Get {
            object,
            file,
            verify,
        } => {
            let (b, name) = parse_object_uri(&object)?;
            match file.as_deref() {
                None | Some("-") => {
                    let mut out = tokio::io::stdout();
                    env.client.get(&b, &name, &mut out, verify).await?;
                    tokio::io::AsyncWriteExt::flush(&mut out).await?;
                    Ok(())
                }
                Some(path) => {
                    // Write beside the target, rename when complete: no half files.
                    let tmp = format!("{path}.part");
                    let mut f = tokio::fs::File::create(&tmp).await?;
                    let res = env.client.get(&b, &name, &mut f, verify).await;
                    match res {
                        Ok(meta) => {
                            tokio::io::AsyncWriteExt::flush(&mut f).await?;
                            f.sync_all().await?;
                            std::fs::rename(&tmp, path)?;
                            done(
                                env,
                                json!({"bucket": b, "object": name, "size": meta.size, "checksum": meta.checksum}),
                                &format!(
                                    "GET ais://{b}/{name} => \"{path}\" ({})",
                                    format::size(meta.size)
                                ),
                            )
                        }
                        Err(e) => {
                            let _ = std::fs::remove_file(&tmp);
                            Err(e.into())
                        }
                    }
                }
            }
        }
        ObjectCmd::Ls { bucket, prefix } => {
            let b = parse_bucket_uri(&bucket)?;
            let list = env.client.list_objects(&b, &prefix).await?;
            if env.json {
                println!("{}", serde_json::to_string(&list).expect("json"));
            } else {
                let mut t = Table::new(&["NAME", "SIZE", "CHECKSUM"]);
                for e in &list {
                    t.plain(vec![
                        e.name.clone(),
                        format::size(e.size),
                        e.checksum.clone(),
                    ]);
                }
                print!("{}", t.render(false));
                println!("Listed {} objects", list.len());
            }
            Ok(())
        }
        ObjectCmd::Rm { object } => {
            let (b, name) = parse_object_uri(&object)?;
            env.client.delete(&b, &name).await?;
            done(
                env,
                json!({"bucket": b, "object": name}),
                &format!("\"ais://{b}/{name}\" deleted"),
            )
        }
        ObjectCmd::Locate { object } => {
            let (b, name) = parse_object_uri(&object)?;
            let loc = env.client.locate(&b, &name).await?;
            if env.json {
                println!("{}", serde_json::to_string(&loc).expect("json"));
            } else {
                println!("ais://{b}/{name}: t[{}] {}", loc.target, loc.mountpath);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `wait rebalance` gives the all-clear (exit 0) only for a rebalance that finished
    /// without errors: an aborted one, or one with errors, is an error a script stops on.
    #[test]
    fn only_a_clean_finish_is_an_all_clear() {
        use shoal_actors::types::status::RebalanceStatus;
        let r = |state, errors| RebalanceStatus {
            id: "g7".into(),
            state,
            errors,
            objs_total: 10,
            objs_moved: 4,
            ..Default::default()
        };
        assert_eq!(not_done_right(&r(RebState::Finished, 0)), None);
        let aborted = not_done_right(&r(RebState::Aborted, 0)).unwrap();
        assert!(
            aborted.contains("g7 was aborted (4 of 10 objects moved)"),
            "{aborted}"
        );
        let errors = not_done_right(&r(RebState::Finished, 3)).unwrap();
        assert!(errors.contains("finished with 3 errors"), "{errors}");
    }

    /// Target `i` of a simulated cluster, with widths that vary from row to row: three-digit CPU
    /// percentages, sizes in several units, every tenth offline, every seventh in maintenance.
    fn target(i: usize) -> NodeStatus {
        NodeStatus {
            id: format!("t{i}xt{}", 8100 + i),
            role: Role::Target,
            mem_used_pct: (i % 100) as f64 + 0.13,
            mem_avail: 33_586_659_328 >> (i % 5),
            cap_used_pct: (i * 7 % 101) as f64,
            cap_avail: 2_677_340_000_000 >> (i % 31),
            cpu_used_pct: i as f64 * 1.37,
            rebalance: if i.is_multiple_of(3) {
                "running(g5)"
            } else {
                "finished(g4)"
            }
            .into(),
            uptime_secs: (i as u64) * 3_599,
            status: if i.is_multiple_of(7) {
                NodeState::Maintenance
            } else if i % 10 == 3 {
                NodeState::Offline
            } else {
                NodeState::Online
            },
            reachable: i % 10 != 3,
            migrating: i.is_multiple_of(14),
            ..Default::default()
        }
    }

    fn cluster(n: usize) -> ClusterStatus {
        ClusterStatus {
            uuid: "7d1c9c2e".into(),
            smap_version: 12,
            primary: "p1".into(),
            proxies: vec![],
            targets: (0..n).map(target).collect(),
            rebalance: None,
        }
    }

    /// `s` without ANSI colour sequences.
    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                chars.by_ref().find(|&c| c == 'm');
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn a_metric_that_is_not_a_number_shows_as_a_dash_as_in_the_console() {
        let mut st = cluster(1);
        st.targets[0].cpu_used_pct = f64::NAN;
        st.targets[0].cap_used_pct = f64::INFINITY;
        let out = targets_table(&st, false);
        let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!((row[3], row[5]), ("-", "-"), "{out}");
        assert!(!out.contains("NaN") && !out.contains("inf"), "{out}");
    }

    #[test]
    fn show_cluster_at_200_targets_has_a_row_each_and_the_columns_line_up() {
        let n = 200;
        let st = cluster(n);
        let headers = [
            "TARGET",
            "MEM USED %",
            "MEM AVAIL",
            "CAP USED %",
            "CAP AVAIL",
            "CPU USED %",
            "REBALANCE",
            "UPTIME",
            "STATUS",
        ];
        for colour in [false, true] {
            let out = targets_table(&st, colour);
            assert_eq!(out.contains('\x1b'), colour);
            let plain = strip_ansi(&out);
            let lines: Vec<&str> = plain.lines().collect();
            assert_eq!(lines.len(), 1 + n, "a header and a row per target");
            let starts: Vec<usize> = headers
                .iter()
                .map(|h| {
                    lines[0]
                        .find(h)
                        .unwrap_or_else(|| panic!("{h} in {}", lines[0]))
                })
                .collect();
            assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
            // The cells of each row with where they start (none holds a space).
            let rows: Vec<Vec<(usize, &str)>> = lines[1..]
                .iter()
                .map(|line| {
                    line.split(' ')
                        .scan(0, |at, w| {
                            let cell = (*at, w);
                            *at += w.len() + 1;
                            Some(cell)
                        })
                        .filter(|(_, w)| !w.is_empty())
                        .collect()
                })
                .collect();
            // Each column is as wide as its widest cell (header included), then three blanks.
            for (j, h) in headers.iter().enumerate().take(headers.len() - 1) {
                let widest = rows.iter().map(|r| r[j].1.len()).chain([h.len()]).max();
                assert_eq!(Some(starts[j + 1] - starts[j] - 3), widest, "column {h}");
            }
            for (i, (line, cells)) in lines[1..].iter().zip(&rows).enumerate() {
                // Every cell starts under its header.
                let at: Vec<usize> = cells.iter().map(|c| c.0).collect();
                assert_eq!(at, starts, "row {i}: {line:?}\nheader: {:?}", lines[0]);
                let t = &st.targets[i];
                let name = if t.reachable {
                    t.id.clone()
                } else {
                    format!("{}[x]", t.id)
                };
                assert_eq!(cells[0].1, name);
                assert_eq!(cells[8].1, t.status.as_str());
                if !t.reachable {
                    assert!(cells[1..6].iter().all(|c| c.1 == "-"), "{line:?}");
                }
                assert_eq!(*line, line.trim_end(), "no trailing blanks");
            }
        }
    }
}
