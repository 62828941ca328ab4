//! Lifecycle, rebalance, resilver and mountpath events, derived by diffing two successive
//! snapshots. The cluster reports state, not history, so the console reconstructs "what just
//! happened" itself.

use std::collections::HashMap;

use shoal_actors::types::status::{ClusterStatus, NodeStatus, ResilverStatus};
use shoal_actors::types::status::{MountpathStats, MpState, NodeState, RebState, RebalanceStatus};

use crate::format;
use crate::model::{Severity, label, mp_state_word};

/// What changed between `prev` and `next`, oldest-first, ready for the event log.
pub fn diff(
    prev: Option<&ClusterStatus>,
    prev_reb: Option<&RebalanceStatus>,
    next: &ClusterStatus,
    next_reb: Option<&RebalanceStatus>,
) -> Vec<(Severity, String)> {
    let mut out = Vec::new();
    let Some(prev) = prev else {
        out.push((
            Severity::Info,
            format!(
                "cluster map v{}: {}, {}, primary p[{}]",
                next.smap_version,
                plural(next.proxies.len(), "proxy", "proxies"),
                plural(next.targets.len(), "target", "targets"),
                next.primary
            ),
        ));
        for n in &next.targets {
            if let Some(r) = n.resilver.as_ref().filter(|r| r.is_running()) {
                out.push((
                    Severity::Notice,
                    format!(
                        "resilver {} on {} is running ({})",
                        r.id,
                        label(n),
                        r.reason
                    ),
                ));
            }
            // A disk that is out already when the console starts is worth a line too.
            for mp in n.mountpaths.iter().filter(|mp| mp.state == MpState::Failed) {
                out.push((Severity::Error, mp_line(n, mp, "failed".into())));
            }
        }
        if let Some(r) = next_reb.filter(|r| r.is_running()) {
            out.push((Severity::Notice, format!("rebalance {} is running", r.id)));
            // Already stuck when the console started: say why, as a later block would be.
            for reason in &r.blocked_by {
                out.push((
                    Severity::Warn,
                    format!("rebalance {} blocked: {reason}", r.id),
                ));
            }
        }
        return out;
    };

    if prev.uuid != next.uuid && !prev.uuid.is_empty() {
        out.push((
            Severity::Error,
            format!("cluster UUID changed: {} → {}", prev.uuid, next.uuid),
        ));
    }
    if prev.primary != next.primary {
        out.push((
            Severity::Notice,
            format!("primary p[{}] → p[{}]", prev.primary, next.primary),
        ));
    }

    let before: HashMap<&str, &NodeStatus> = prev
        .proxies
        .iter()
        .chain(&prev.targets)
        .map(|n| (n.id.as_str(), n))
        .collect();
    let after: HashMap<&str, &NodeStatus> = next
        .proxies
        .iter()
        .chain(&next.targets)
        .map(|n| (n.id.as_str(), n))
        .collect();
    for n in next.proxies.iter().chain(&next.targets) {
        match before.get(n.id.as_str()) {
            None => out.push((
                Severity::Notice,
                format!("{} joined ({})", label(n), n.status),
            )),
            Some(old) => node_changes(old, n, &mut out),
        }
    }
    for n in prev.proxies.iter().chain(&prev.targets) {
        if !after.contains_key(n.id.as_str()) {
            out.push((
                Severity::Notice,
                format!("{} removed from the cluster map", label(n)),
            ));
        }
    }

    rebalance_changes(prev_reb, next_reb, &mut out);
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn node_changes(old: &NodeStatus, new: &NodeStatus, out: &mut Vec<(Severity, String)>) {
    let l = label(new);
    if old.status != new.status {
        let sev = match new.status {
            NodeState::Offline | NodeState::Decommission => Severity::Warn,
            _ => Severity::Notice,
        };
        out.push((sev, format!("{l} {} → {}", old.status, new.status)));
    }
    if !old.safe_to_power_off && new.safe_to_power_off {
        out.push((
            Severity::Notice,
            format!("{l} finished migrating: safe to power off"),
        ));
    }
    // Offline status already says it; only report reachability when the status did not change.
    if old.status == new.status && old.reachable != new.reachable {
        if new.reachable {
            out.push((Severity::Info, format!("{l} answers again")));
        } else {
            out.push((Severity::Warn, format!("{l} stopped answering")));
        }
    }
    // A node that does not answer reports no mountpaths: that is not every disk detached.
    // Nor does it report its resilver: compare only what both snapshots know.
    if old.reachable && new.reachable {
        if !old.mountpaths.is_empty() && !new.mountpaths.is_empty() {
            mountpath_changes(old, new, out);
        }
        resilver_changes(new, old.resilver.as_ref(), new.resilver.as_ref(), out);
    }
}

/// `t[ID] mountpath /p: WHAT (reason)`.
fn mp_line(n: &NodeStatus, mp: &MountpathStats, what: String) -> String {
    let mut text = format!("{} mountpath {}: {what}", label(n), mp.path);
    if let Some(r) = &mp.reason {
        text.push_str(&format!(" ({r})"));
    }
    text
}

/// Mountpaths that appeared, went, or changed state (`enabled → failed (I/O failing: …)`).
fn mountpath_changes(old: &NodeStatus, new: &NodeStatus, out: &mut Vec<(Severity, String)>) {
    let l = label(new);
    for mp in &new.mountpaths {
        let now = mp_state_word(mp);
        let sev = match mp.state {
            MpState::Failed => Severity::Error,
            MpState::Enabled if !mp.full => Severity::Notice,
            _ => Severity::Warn,
        };
        match old.mountpaths.iter().find(|o| o.path == mp.path) {
            None => out.push((sev, mp_line(new, mp, format!("attached ({now})")))),
            Some(o) => {
                let before = mp_state_word(o);
                if before != now {
                    out.push((sev, mp_line(new, mp, format!("{before} → {now}"))));
                }
            }
        }
    }
    for o in &old.mountpaths {
        if !new.mountpaths.iter().any(|mp| mp.path == o.path) {
            out.push((
                Severity::Notice,
                format!("{l} mountpath {}: detached", o.path),
            ));
        }
    }
}

/// A resilver that started, finished (with its errors) or got blocked on a target.
fn resilver_changes(
    n: &NodeStatus,
    prev: Option<&ResilverStatus>,
    next: Option<&ResilverStatus>,
    out: &mut Vec<(Severity, String)>,
) {
    let Some(next) = next else { return };
    let l = label(n);
    let same = prev.is_some_and(|p| p.id == next.id);
    if !same {
        out.push((
            Severity::Notice,
            format!("resilver {} on {l} started ({})", next.id, next.reason),
        ));
    }
    let was_running = prev.filter(|_| same).is_none_or(|p| p.is_running());
    if was_running && !next.is_running() {
        let sev = if next.state == RebState::Aborted || next.errors > 0 {
            Severity::Warn
        } else {
            Severity::Notice
        };
        out.push((
            sev,
            format!(
                "resilver {} on {l} {}: {} objects, {} moved, {} errors ({})",
                next.id,
                next.state,
                format::count(next.objs_moved),
                format::iec(next.bytes_moved),
                next.errors,
                next.reason
            ),
        ));
    }
    let old_blocked = prev.filter(|_| same).and_then(|p| p.blocked_by.as_ref());
    if let Some(b) = next.blocked_by.as_ref().filter(|b| Some(*b) != old_blocked) {
        out.push((
            Severity::Warn,
            format!("resilver {} on {l} waits: {b}", next.id),
        ));
    }
}

fn rebalance_changes(
    prev: Option<&RebalanceStatus>,
    next: Option<&RebalanceStatus>,
    out: &mut Vec<(Severity, String)>,
) {
    let Some(next) = next else { return };
    let same_gen = prev.is_some_and(|p| p.id == next.id);
    if !same_gen {
        if let Some(p) = prev.filter(|p| p.is_running()) {
            out.push((
                Severity::Notice,
                format!("rebalance {} superseded by {}", p.id, next.id),
            ));
        }
        out.push((
            Severity::Notice,
            format!("rebalance {} started ({})", next.id, next.state),
        ));
    }
    let prev_state = prev.filter(|_| same_gen).map(|p| p.state);
    if prev_state != Some(next.state) && !next.is_running() {
        let sev = if next.state == RebState::Aborted || next.errors > 0 {
            Severity::Warn
        } else {
            Severity::Notice
        };
        out.push((
            sev,
            format!(
                "rebalance {} {}: {} objects, {} moved, {} errors",
                next.id,
                next.state,
                format::count(next.objs_moved),
                format::iec(next.bytes_moved),
                next.errors
            ),
        ));
    }
    let old_blocked: &[String] = prev
        .filter(|_| same_gen)
        .map(|p| p.blocked_by.as_slice())
        .unwrap_or(&[]);
    for reason in &next.blocked_by {
        if !old_blocked.contains(reason) {
            out.push((
                Severity::Warn,
                format!("rebalance {} blocked: {reason}", next.id),
            ));
        }
    }
}
