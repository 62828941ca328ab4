//! `nodectl storage mountpath …`, `show storage`, `show resilver`, `wait resilver` (DESIGN §14).
//! Storage requests go straight to the target (found in the cluster map), with the token.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::json;
use shoal_actors::logic::format::resilver_line;
use shoal_actors::proto::msg::{GetResilver, GetStorage, MountpathOp};
use shoal_actors::types::smap::NodeId;
use shoal_actors::types::status::{MpState, ResilverStatus, StorageStatus};
use shoal_actors::types::storage::MpAction;

use crate::cli::MountpathCmd;
use crate::commands::{confirm, deadline, done};
use crate::format::{self, Table};
use crate::{CmdResult, Env, Failure};

/// Asks every target (or the one named) with `req`; a target that does not answer is reported
/// with its error, not dropped.
async fn ask_targets<R>(
    env: &Env,
    node: Option<&str>,
    req: R,
) -> Result<Vec<(NodeId, Result<R::Reply, shoal_actors::Error>)>, Failure>
where
    R: shoal_actors::proto::msg::Rpc + Clone,
{
    let targets = env.client.targets(node).await?;
    let calls = targets.into_iter().map(|(id, addr)| {
        let req = req.clone();
        async move { (id, env.client.rpc_at(&addr, req).await) }
    });
    let out = futures::future::join_all(calls).await;
    // Asked for one target: its error is the command's error.
    if node.is_some()
        && let Some((_, Err(_))) = out.first()
    {
        let (_, e) = out.into_iter().next().expect("one");
        return Err(e.err().expect("an error").into());
    }
    Ok(out)
}

pub async fn show_storage(env: &Env, node: Option<&str>) -> CmdResult {
    let answers = ask_targets(env, node, GetStorage).await?;
    if env.json {
        let targets: Vec<serde_json::Value> = answers
            .iter()
            .map(|(id, r)| match r {
                Ok(s) => serde_json::to_value(&**s).expect("json"),
                Err(e) => json!({ "target": id.0, "error": e.to_string() }),
            })
            .collect();
        println!("{}", json!({ "targets": targets }));
        return Ok(());
    }
    let mut t = Table::new(&[
        "TARGET",
        "MOUNTPATH",
        "FS",
        "USED %",
        "AVAIL",
        "OBJECTS",
        "STATE",
        "REASON",
    ]);
    let mut notes = Vec::new();
    for (id, r) in &answers {
        match r {
            Ok(s) => storage_rows(&mut t, s),
            Err(e) => notes.push(format!("t[{id}]: {e}")),
        }
    }
    print!("{}", t.render(env.tty));
    for n in notes {
        println!("{}", format::safe(&n));
    }
    Ok(())
}

fn storage_rows(t: &mut Table, s: &StorageStatus) {
    for m in &s.mountpaths {
        let colour = match m.state {
            MpState::Failed => Some(format::RED),
            MpState::Enabled if m.full => Some(format::RED),
            MpState::Enabled => None,
            _ => Some(format::CYAN),
        };
        let state = if m.full && m.state == MpState::Enabled {
            "enabled (full)".to_string()
        } else {
            m.state.to_string()
        };
        t.row(vec![
            (s.target.clone(), None),
            (m.path.clone(), None),
            (
                if m.fs.is_empty() {
                    "-".into()
                } else {
                    m.fs.clone()
                },
                None,
            ),
            (format!("{:.0}%", m.used_pct()), None),
            (format::size(m.avail), None),
            (m.objects.to_string(), None),
            (state, colour),
            (m.reason.clone().unwrap_or_else(|| "-".into()), None),
        ]);
    }
}

/// `show job r<N>`: each target whose latest resilver is `id` (resilver IDs count per target).
pub async fn show_resilver_job(env: &Env, id: &str) -> CmdResult {
    let answers = ask_targets(env, None, GetResilver).await?;
    let found: Vec<ResilverStatus> = answers
        .into_iter()
        .filter_map(|(_, r)| r.ok().flatten())
        .filter(|s| s.id == id)
        .map(|s| *s)
        .collect();
    if found.is_empty() {
        return Err(Failure::from(shoal_actors::Error::NotFound(format!(
            "no target's latest resilver is {id}"
        ))));
    }
    if env.json {
        println!("{}", json!({ "targets": found }));
        return Ok(());
    }
    for s in &found {
        println!("{}", format::safe(&resilver_line(s)));
    }
    Ok(())
}

pub async fn show_resilver(env: &Env, node: Option<&str>) -> CmdResult {
    let answers = ask_targets(env, node, GetResilver).await?;
    if env.json {
        let targets: Vec<serde_json::Value> = answers
            .iter()
            .filter_map(|(id, r)| match r {
                Ok(Some(s)) => Some(serde_json::to_value(&**s).expect("json")),
                Ok(None) => None,
                Err(e) => Some(json!({ "target": id.0, "error": e.to_string() })),
            })
            .collect();
        println!("{}", json!({ "targets": targets }));
        return Ok(());
    }
    let mut t = Table::new(&[
        "RES ID", "NODE", "OBJECTS", "BYTES", "START", "END", "STATE", "REASON",
    ]);
    let mut lines = Vec::new();
    for (id, r) in &answers {
        match r {
            Ok(Some(s)) => {
                t.plain(vec![
                    s.id.clone(),
                    s.target.clone(),
                    format!("{}/{}", s.objs_moved, s.objs_total),
                    format!(
                        "{}/{}",
                        format::size(s.bytes_moved),
                        format::size(s.bytes_total)
                    ),
                    format::clock(s.started),
                    format::clock(s.finished),
                    state_word(s),
                    s.reason.clone(),
                ]);
                lines.push(resilver_line(s));
            }
            Ok(None) => {}
            Err(e) => lines.push(format!("t[{id}]: {e}")),
        }
    }
    if lines.is_empty() {
        println!("No resilver has run since the targets started.");
        return Ok(());
    }
    print!("{}", t.render(false));
    println!();
    for l in lines {
        println!("{}", format::safe(&l));
    }
    Ok(())
}

fn state_word(s: &ResilverStatus) -> String {
    use shoal_actors::types::status::RebState;
    match s.state {
        RebState::Finished if s.errors > 0 => format!("Finished ({} errors)", s.errors),
        RebState::Finished => "Finished".into(),
        RebState::Aborted => "Aborted".into(),
        RebState::Running if s.blocked_by.is_some() => format!("Waiting ({})", s.stage),
        RebState::Running => format!("Running ({})", s.stage),
    }
}

pub async fn wait_resilver(env: &Env, node: Option<&str>, timeout: Option<f64>) -> CmdResult {
    let until = deadline(timeout)?;
    let progress = std::io::stderr().is_terminal() && !env.json;
    let mut announced = false;
    loop {
        let answers = ask_targets(env, node, GetResilver).await?;
        let mut running = Vec::new();
        let mut last = Vec::new();
        for (id, r) in answers {
            match r {
                Ok(Some(s)) if s.is_running() => running.push(*s),
                Ok(Some(s)) => last.push(*s),
                Ok(None) => {}
                // A target that cannot say is not known to be done.
                Err(e) => {
                    return Err(Failure::from(e).with_context(&format!("t[{id}]")));
                }
            }
        }
        if running.is_empty() {
            if progress {
                eprintln!();
            }
            if env.json {
                let ids: Vec<&str> = last.iter().map(|s| s.id.as_str()).collect();
                println!("{}", json!({ "resilvers": ids, "state": "idle" }));
            } else if last.is_empty() {
                println!("No resilver is running.");
            } else {
                println!("Done.");
            }
            return Ok(());
        }
        if !announced && !env.json {
            let ids: Vec<String> = running
                .iter()
                .map(|s| format!("{} on t[{}]", s.id, s.target))
                .collect();
            println!("Waiting for resilver {} ...", ids.join(", "));
            announced = true;
        }
        if progress {
            let s = &running[0];
            eprint!(
                "\r{}  {}   ",
                format::bar(s.fraction(), 30),
                resilver_line(s)
            );
            let _ = std::io::stderr().flush();
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            if progress {
                eprintln!();
            }
            let ids: Vec<String> = running.iter().map(|s| s.id.clone()).collect();
            return Err(Failure::timeout(format!(
                "resilver {} still running after the timeout",
                ids.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn mountpath(env: &Env, m: MountpathCmd) -> CmdResult {
    let (action, a) = match m {
        MountpathCmd::Attach(a) => (MpAction::Attach, a),
        MountpathCmd::Detach(a) => (MpAction::Detach, a),
        MountpathCmd::Enable(a) => (MpAction::Enable, a),
        MountpathCmd::Disable(a) => (MpAction::Disable, a),
    };
    let targets = env.client.targets(Some(&a.node)).await?;
    let (id, addr) = targets
        .into_iter()
        .next()
        .ok_or_else(|| Failure::usage("no such target"))?;
    let op = |dry_run| MountpathOp {
        action,
        path: a.path.clone(),
        dry_run,
    };
    // The dry run first: it checks the request and says what will move.
    let plan = env.client.rpc_at(&addr, op(true)).await?;
    let moves = format!(
        "{} objects ({}) {}",
        plan.objs,
        format::size(plan.bytes),
        match action {
            MpAction::Attach | MpAction::Enable => "would move onto it",
            MpAction::Detach | MpAction::Disable => "would move off it",
        }
    );
    if a.dry_run {
        let human = format!(
            "[DRY RUN] {} mountpath {} of t[{id}]: {moves}; nothing changed",
            action, plan.path
        );
        return done(env, serde_json::to_value(&*plan).expect("json"), &human);
    }
    let what = match action {
        MpAction::Attach => "it takes its share of objects",
        MpAction::Detach => "its objects move to the other mountpaths, then it is forgotten",
        MpAction::Enable => "it takes its share of objects again",
        MpAction::Disable => "it takes no new objects and its objects move off",
    };
    // The path comes from the target: printed safely.
    let path = format::safe(&plan.path);
    confirm(
        a.yes,
        &format!(
            "About to {action} mountpath {path} of t[{id}]: {what} ({moves}).\nCan be undone: 'nodectl storage mountpath {} {id} {path}'.",
            action.undo(),
        ),
    )?;
    let r = env.client.rpc_at(&addr, op(false)).await?;
    let doc = serde_json::to_value(&*r).expect("json");
    let human = match &r.resilver_id {
        Some(rid) => format!(
            "Mountpath {} of t[{id}] is {}: resilver \"{rid}\" started (to monitor, run 'nodectl show resilver {id}')",
            r.path, r.state
        ),
        None => format!("Mountpath {} of t[{id}] is {}", r.path, r.state),
    };
    done(env, doc, &human)
}

impl Failure {
    fn with_context(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}
