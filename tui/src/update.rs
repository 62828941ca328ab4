//! `update(&mut Model, Action) -> Option<Command>`: every state change of the console, pure and
//! synchronous. Side effects (talking to the cluster) come back out as a [`Command`] for the
//! runner to execute; their results come back in as actions.

use shoal_actors::logic::checks::{self, Check};
use shoal_actors::logic::perm::Action as PermAction;
use shoal_actors::proto::msg::MountpathOp;
use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleReply, LifecycleRequest, Plan};
use shoal_actors::types::smap::NodeId;
use shoal_actors::types::status::ClusterStatus;
use shoal_actors::types::status::{NodeState, RebalanceStatus};
use shoal_actors::types::storage::{MountpathReply, MpAction};

use crate::events;
use crate::format;
use crate::model::{
    Connection, Dialog, Focus, Model, MpDialog, MpStep, PlanState, Severity, label,
};

/// What the cluster said no with, cloned out of `shoal_actors::Error` (which is not `Clone`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdError {
    /// `Error::kind()`: `busy`, `unauthorized`, `io`…
    pub kind: String,
    pub message: String,
    /// Busy / unauthorized / forbidden: an expected "no", not a fault.
    pub refusal: bool,
}

impl From<&shoal_actors::Error> for CmdError {
    fn from(e: &shoal_actors::Error) -> Self {
        CmdError {
            kind: e.kind().to_string(),
            message: e.to_string(),
            refusal: e.is_refusal(),
        }
    }
}

impl CmdError {
    /// How loud the "no" is: a refusal or a request the target rejected as wrong (foreign
    /// disk, not a mountpath…) is an expected answer; anything else (timeout, I/O) is a fault.
    pub fn severity(&self) -> Severity {
        if self.refusal || matches!(self.kind.as_str(), "bad_request" | "not_found") {
            Severity::Warn
        } else {
            Severity::Error
        }
    }
}

/// A mountpath operation on one target. Storage requests go to the target itself, not through
/// the proxy (DESIGN §14), so the request carries the target's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpRequest {
    /// The target's ID, for labels and to match answers to the dialog.
    pub target: String,
    /// Where the target listens (`NodeStatus.addr`).
    pub addr: String,
    pub op: MountpathOp,
}

impl MpRequest {
    /// `attach t[ID] /data/mp3`, in `nodectl`'s order, for the status line and the log.
    pub fn describe(&self) -> String {
        format!("{} t[{}] {}", self.op.action, self.target, self.op.path)
    }

    fn dry(&self, dry_run: bool) -> MpRequest {
        let mut r = self.clone();
        r.op.dry_run = dry_run;
        r
    }
}

/// Lifecycle keys, before they are resolved to an operation for the selected nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleKey {
    /// `m`: start- or stop-maintenance, whichever undoes the node's current state.
    ToggleMaintenance,
    /// `s`
    Shutdown,
    /// `D`
    Decommission,
}

/// Everything that can happen to the console: keys (already mapped), and news from the runner.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    /// Tab: targets ↔ proxies.
    SwitchFocus,
    /// `/`: start typing a filter.
    FilterStart,
    FilterInput(char),
    FilterBackspace,
    /// Enter while filtering: keep the filter, stop typing.
    FilterDone,
    /// Space: add/remove the selected node to the batch.
    ToggleMark,
    /// `n`: arm/disarm `--no-rebalance` for the next action.
    ToggleNoRebalance,
    Lifecycle(LifecycleKey),
    /// `a` / `d` / `e` / `x` in a target's detail: attach (asks for the path), detach, enable
    /// or disable the selected mountpath.
    Mountpath(MpAction),
    /// `P`: pause the global rebalance, or resume it when it is paused (asks first).
    PauseResume,
    /// `H`: the rebalance history screen.
    History,
    /// The history arrived (or could not be read).
    HistoryDone(Result<Vec<shoal_actors::types::status::GenRecord>, String>),
    /// Typed character inside a dialog that asks for text (a node ID, a mountpath).
    DialogInput(char),
    DialogBackspace,
    /// Ctrl-U: clear what was typed.
    DialogClear,
    /// Enter / `y` in a dialog.
    Confirm,
    /// Esc: close the innermost thing open (dialog, help, detail, filter); quit when none is.
    Back,
    /// Enter: node detail view.
    OpenDetail,
    ToggleHelp,
    /// `r`: poll now.
    Refresh,
    /// `q` / Ctrl-C.
    Quit,
    /// A poll succeeded.
    Snapshot {
        cluster: Box<ClusterStatus>,
        rebalance: Option<Box<RebalanceStatus>>,
        at: u64,
    },
    /// A poll failed.
    Unreachable {
        error: String,
        at: u64,
    },
    /// The dry run for `req` (sent with `dry_run: false` here, to match the dialog) finished.
    DryRunDone {
        req: LifecycleRequest,
        result: Result<Plan, CmdError>,
    },
    /// A confirmed lifecycle request finished.
    LifecycleDone {
        req: LifecycleRequest,
        result: Result<LifecycleReply, CmdError>,
    },
    /// The dry run of a mountpath operation finished; `req` has `dry_run` off, as the dialog's.
    MpDryRunDone {
        req: MpRequest,
        result: Result<MountpathReply, CmdError>,
    },
    /// A confirmed pause (`true`) or resume finished.
    RebalanceCtlDone {
        pause: bool,
        result: Result<(), CmdError>,
    },
    /// A confirmed mountpath operation finished.
    MountpathDone {
        req: MpRequest,
        result: Result<MountpathReply, CmdError>,
    },
    /// Redraw tick: advances the clock used for "updated Ns ago".
    Tick {
        now: u64,
    },
    /// Who the console's token says it is (asked once at start).
    Identity(Result<shoal_actors::types::auth::WhoAmI, String>),
}

/// What the runner must do on the cluster's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Ask for the plan; `req.dry_run` is true.
    DryRun(LifecycleRequest),
    /// Do it; `req.dry_run` is false.
    Lifecycle(LifecycleRequest),
    /// Ask the target what a mountpath operation would do; `req.op.dry_run` is true.
    MountpathDryRun(MpRequest),
    /// Do it; `req.op.dry_run` is false.
    Mountpath(MpRequest),
    /// `nodectl rebalance pause` (`true`) or `resume`.
    RebalanceCtl(bool),
    /// Read the rebalance history (the cluster config's).
    FetchHistory,
    /// Ask who the console's token says it is.
    WhoAmI,
    /// Poll the cluster now rather than at the next refresh.
    Refresh,
}

/// Rows moved by PageUp/PageDown.
const PAGE: usize = 10;

/// Applies `action` to `m`; returns the side effect to run, if any.
pub fn update(m: &mut Model, action: Action) -> Option<Command> {
    match action {
        Action::Up => move_sel(m, |i, _| i.saturating_sub(1)),
        Action::Down => move_sel(m, |i, n| (i + 1).min(n.saturating_sub(1))),
        Action::Top => move_sel(m, |_, _| 0),
        Action::Bottom => move_sel(m, |_, n| n.saturating_sub(1)),
        Action::PageUp => move_sel(m, |i, _| i.saturating_sub(PAGE)),
        Action::PageDown => move_sel(m, |i, n| (i + PAGE).min(n.saturating_sub(1))),
        Action::SwitchFocus => {
            m.focus = match m.focus {
                Focus::Targets => Focus::Proxies,
                Focus::Proxies => Focus::Targets,
            };
        }
        Action::FilterStart => m.filter_editing = true,
        Action::FilterInput(c) => {
            m.filter.push(c);
            clamp_selection(m);
        }
        Action::FilterBackspace => {
            m.filter.pop();
            clamp_selection(m);
        }
        Action::FilterDone => m.filter_editing = false,
        Action::ToggleMark => toggle_mark(m),
        Action::ToggleNoRebalance => return toggle_no_rebalance(m),
        Action::Lifecycle(key) => return begin_lifecycle(m, key),
        Action::Mountpath(action) => return begin_mountpath(m, action),
        Action::History => {
            m.history = Some(None);
            return Some(Command::FetchHistory);
        }
        Action::HistoryDone(r) => {
            // Closed meanwhile: nothing to show.
            if m.history.is_some() {
                m.history = Some(Some(r));
            }
        }
        Action::PauseResume => {
            if !refuse_readonly(m, "pause / resume") {
                let paused = m.rebalance.as_ref().is_some_and(|r| r.paused);
                m.reb_dialog = Some(!paused);
            }
        }
        Action::RebalanceCtlDone { pause, result } => {
            let what = if pause { "pause" } else { "resume" };
            match result {
                Ok(()) => {
                    m.log(Severity::Info, format!("rebalance {what}: done"));
                    m.set_status(Severity::Info, format!("rebalance {what}: done"));
                    return Some(Command::Refresh);
                }
                Err(e) => {
                    let sev = if e.refusal {
                        Severity::Warn
                    } else {
                        Severity::Error
                    };
                    m.log(sev, format!("rebalance {what}: {}", e.message));
                    m.set_status(sev, format!("rebalance {what} failed: {}", e.message));
                }
            }
        }
        Action::DialogInput(c) => {
            if let Some(text) = typed_text(m) {
                text.push(c);
            }
        }
        Action::DialogBackspace => {
            if let Some(text) = typed_text(m) {
                text.pop();
            }
        }
        Action::DialogClear => {
            if let Some(text) = typed_text(m) {
                text.clear();
            }
        }
        Action::Confirm => return confirm(m),
        Action::Back => back(m),
        Action::OpenDetail => {
            if m.selected().is_some() && !m.detail {
                m.detail = true;
                m.mp_sel = 0;
            }
        }
        Action::ToggleHelp => m.help = !m.help,
        Action::Refresh => return Some(Command::Refresh),
        Action::Quit => m.quit = true,
        Action::Snapshot {
            cluster,
            rebalance,
            at,
        } => snapshot(m, *cluster, rebalance.map(|r| *r), at),
        Action::Unreachable { error, at } => unreachable(m, error, at),
        Action::DryRunDone { req, result } => {
            if let Some(d) = m.dialog.as_mut().filter(|d| d.req == req) {
                d.plan = match result {
                    Ok(plan) => PlanState::Ready(plan),
                    Err(e) => {
                        // A refused dry run predicts a refused step: say so outside the dialog too.
                        let sev = if e.refusal {
                            Severity::Warn
                        } else {
                            Severity::Error
                        };
                        m.status = Some(crate::model::StatusLine {
                            severity: sev,
                            text: format!("dry run {}: {}", e.kind, e.message),
                        });
                        PlanState::Failed(e.message)
                    }
                };
            }
            // Otherwise the dialog was cancelled or changed meanwhile: the answer is stale.
        }
        Action::LifecycleDone { req, result } => return lifecycle_done(m, req, result),
        Action::MpDryRunDone { req, result } => mp_dry_run_done(m, req, result),
        Action::MountpathDone { req, result } => return mountpath_done(m, req, result),
        Action::Tick { now } => m.now = now,
        Action::Identity(Ok(who)) => {
            m.identity = Some(who);
            if let Some(t) = crate::model::identity_text(m) {
                m.log(Severity::Info, format!("acting as {t}"));
            }
        }
        Action::Identity(Err(e)) => {
            m.log(Severity::Warn, format!("who am I: {e}"));
        }
    }
    None
}

fn visible_len(m: &Model) -> usize {
    match m.focus {
        Focus::Targets => m.visible_targets().len(),
        Focus::Proxies => m.visible_proxies().len(),
    }
}

fn move_sel(m: &mut Model, f: impl Fn(usize, usize) -> usize) {
    // In a target's detail the cursor keys pick a mountpath, for `d`, `e` and `x`.
    if let Some(t) = m.detail_target() {
        let n = t.mountpaths.len();
        m.mp_sel = f(m.mp_sel, n);
        return;
    }
    let n = visible_len(m);
    let sel = match m.focus {
        Focus::Targets => &mut m.target_sel,
        Focus::Proxies => &mut m.proxy_sel,
    };
    *sel = f(*sel, n);
}

fn clamp_selection(m: &mut Model) {
    let (t, p) = (m.visible_targets().len(), m.visible_proxies().len());
    m.target_sel = m.target_sel.min(t.saturating_sub(1));
    m.proxy_sel = m.proxy_sel.min(p.saturating_sub(1));
}

fn back(m: &mut Model) {
    if m.help {
        m.help = false;
    } else if m.history.is_some() {
        m.history = None;
    } else if m.dialog.take().is_some()
        || m.mp_dialog.take().is_some()
        || m.reb_dialog.take().is_some()
    {
        m.set_status(Severity::Info, "cancelled: nothing was sent");
    } else if m.detail {
        m.detail = false;
    } else if m.filter_editing || !m.filter.is_empty() {
        m.filter_editing = false;
        m.filter.clear();
        clamp_selection(m);
    } else {
        m.quit = true;
    }
}

/// Every key that changes the cluster passes here: refused on a read-only console, and when
/// the console's identity may not change the cluster (the request would be forbidden), with
/// the reason the cluster would give.
fn refuse_readonly(m: &mut Model, what: &str) -> bool {
    if m.readonly {
        m.set_status(
            Severity::Warn,
            format!("read-only console: {what} is disabled"),
        );
        return true;
    }
    let Some(who) = m.identity.as_ref().filter(|w| w.auth_enabled) else {
        return false;
    };
    let doing = format!("use {what}");
    match shoal_actors::logic::perm::check(&who.principal, PermAction::Cluster(&doing)) {
        Ok(()) => false,
        Err(e) => {
            let msg = match e {
                shoal_actors::Error::Forbidden(m) => m,
                other => other.to_string(),
            };
            m.set_status(Severity::Warn, format!("forbidden: {msg}"));
            true
        }
    }
}

fn toggle_mark(m: &mut Model) {
    if refuse_readonly(m, "marking nodes for a batch") {
        return;
    }
    let Some(id) = m.selected().map(|n| n.id.clone()) else {
        return;
    };
    if !m.marked.remove(&id) {
        m.marked.insert(id);
    }
    // Marking moves on, as in file managers, so several nodes are quick to pick.
    update(m, Action::Down);
}

fn toggle_no_rebalance(m: &mut Model) -> Option<Command> {
    if refuse_readonly(m, "--no-rebalance") {
        return None;
    }
    m.no_rebalance = !m.no_rebalance;
    if m.no_rebalance {
        m.set_status(
            Severity::Warn,
            "--no-rebalance armed for the next action: data may be lost",
        );
    } else {
        m.set_status(Severity::Info, "--no-rebalance disarmed");
    }
    // Inside a dialog the plan depends on it: ask again.
    let no_reb = m.no_rebalance;
    let d = m.dialog.as_mut()?;
    d.req.no_rebalance = no_reb;
    d.plan = PlanState::Loading;
    Some(Command::DryRun(LifecycleRequest {
        dry_run: true,
        ..d.req.clone()
    }))
}

fn begin_lifecycle(m: &mut Model, key: LifecycleKey) -> Option<Command> {
    let (what, verb) = match key {
        LifecycleKey::ToggleMaintenance => ("maintenance", "put in maintenance"),
        LifecycleKey::Shutdown => ("shutdown", "shut down"),
        LifecycleKey::Decommission => ("decommission", "decommissioned"),
    };
    if refuse_readonly(m, what) || m.dialog.is_some() || m.mp_dialog.is_some() {
        return None;
    }
    let nodes = m.action_nodes();
    if nodes.is_empty() {
        m.set_status(Severity::Warn, "no node selected");
        return None;
    }
    let primary = m.cluster.as_ref().map(|c| c.primary.as_str());
    if let Some(p) = nodes.iter().find(|n| Some(n.id.as_str()) == primary) {
        let msg = format!("{} is primary (the primary cannot be {verb})", label(p));
        m.set_status(Severity::Warn, msg);
        return None;
    }
    let op = match key {
        LifecycleKey::Shutdown => LifecycleOp::Shutdown,
        LifecycleKey::Decommission => LifecycleOp::Decommission,
        LifecycleKey::ToggleMaintenance => {
            if let Some(n) = nodes.iter().find(|n| n.status == NodeState::Decommission) {
                let msg = format!("{} is being decommissioned", label(n));
                m.set_status(Severity::Warn, msg);
                return None;
            }
            let in_maint = nodes
                .iter()
                .filter(|n| n.status == NodeState::Maintenance)
                .count();
            if in_maint == nodes.len() {
                LifecycleOp::StopMaintenance
            } else if in_maint == 0 {
                LifecycleOp::StartMaintenance
            } else {
                m.set_status(
                    Severity::Warn,
                    "marked nodes mix online and maintenance: unmark some (Space) first",
                );
                return None;
            }
        }
    };
    let labels: Vec<String> = nodes.iter().map(|n| label(n)).collect();
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let req = LifecycleRequest {
        op,
        nodes: ids.iter().cloned().map(NodeId).collect(),
        no_rebalance: m.no_rebalance,
        rm_user_data: false,
        dry_run: false,
    };
    let expect_typed = (op == LifecycleOp::Decommission).then(|| ids.join(" "));
    let kind = match op {
        LifecycleOp::Shutdown => Some(Check::OkToStop),
        LifecycleOp::Decommission => Some(Check::SafeToDestroy),
        _ => None,
    };
    let precheck = kind
        .zip(m.cluster.as_ref())
        .map(|(k, c)| (k, checks::check(k, c, &req.nodes)));
    m.dialog = Some(Dialog {
        req: req.clone(),
        labels,
        plan: PlanState::Loading,
        expect_typed,
        typed: String::new(),
        precheck,
    });
    Some(Command::DryRun(LifecycleRequest {
        dry_run: true,
        ..req
    }))
}

/// The text a dialog is capturing: the node ID typed to confirm, or the path to attach.
fn typed_text(m: &mut Model) -> Option<&mut String> {
    if let Some(d) = &mut m.dialog {
        return d.expect_typed.is_some().then_some(&mut d.typed);
    }
    match &mut m.mp_dialog {
        Some(MpDialog {
            req,
            step: MpStep::EnterPath,
        }) => Some(&mut req.op.path),
        _ => None,
    }
}

fn confirm(m: &mut Model) -> Option<Command> {
    if let Some(pause) = m.reb_dialog.take() {
        if m.readonly {
            return None;
        }
        let cmd = if pause { "pause" } else { "resume" };
        m.log(
            Severity::Info,
            format!("sent: nodectl rebalance {cmd} --yes"),
        );
        m.set_status(Severity::Info, format!("rebalance {cmd} sent…"));
        return Some(Command::RebalanceCtl(pause));
    }
    if m.dialog.is_none() {
        return confirm_mountpath(m);
    }
    let d = m.dialog.as_ref()?;
    if m.readonly {
        // Unreachable by keys; kept so a read-only console can never send.
        m.dialog = None;
        return None;
    }
    if d.plan == PlanState::Loading {
        m.set_status(Severity::Info, "waiting for the dry-run plan…");
        return None;
    }
    if !d.typed_ok() {
        let expect = d.expect_typed.clone().unwrap_or_default();
        m.set_status(
            Severity::Warn,
            format!("type {expect} exactly to confirm (Esc cancels)"),
        );
        return None;
    }
    let d = m.dialog.take()?;
    let cmd = d.nodectl_command();
    m.log(Severity::Info, format!("sent: {cmd}"));
    m.set_status(
        Severity::Info,
        format!("{} sent, waiting for the cluster…", d.req.op),
    );
    // `n` arms one action only; the batch is done with once sent.
    m.no_rebalance = false;
    m.marked.clear();
    Some(Command::Lifecycle(d.req))
}

fn lifecycle_done(
    m: &mut Model,
    req: LifecycleRequest,
    result: Result<LifecycleReply, CmdError>,
) -> Option<Command> {
    let nodes: Vec<String> = req
        .nodes
        .iter()
        .map(|id| m.node(&id.0).map(label).unwrap_or_else(|| id.0.clone()))
        .collect();
    let what = format!("{} {}", req.op, nodes.join(" "));
    match result {
        Ok(reply) => {
            let mut text = match &reply.rebalance_id {
                Some(id) => format!(
                    "{what}: started rebalance \"{id}\" (map v{})",
                    reply.smap_version
                ),
                None => format!("{what}: done (map v{}, no rebalance)", reply.smap_version),
            };
            if !reply.skipped.is_empty() {
                text.push_str(&format!(
                    "; already in that state: {}",
                    reply.skipped.join(" ")
                ));
            }
            m.log(Severity::Notice, text.clone());
            m.set_status(Severity::Notice, text);
        }
        Err(e) if e.refusal => {
            let text = format!("{what}: refused ({}): {}", e.kind, e.message);
            m.log(Severity::Warn, text.clone());
            m.set_status(Severity::Warn, text);
        }
        Err(e) => {
            let text = format!("{what}: failed: {}", e.message);
            m.log(Severity::Error, text.clone());
            m.set_status(Severity::Error, text);
        }
    }
    // Show the consequences without waiting for the next refresh.
    Some(Command::Refresh)
}

/// `a`/`d`/`e`/`x`: opens the mountpath dialog. Attach first asks for the directory; the
/// others act on the selected mountpath and ask the target for a dry run at once.
fn begin_mountpath(m: &mut Model, action: MpAction) -> Option<Command> {
    if refuse_readonly(m, &format!("mountpath {action}"))
        || m.dialog.is_some()
        || m.mp_dialog.is_some()
    {
        return None;
    }
    let Some(t) = m.detail_target() else {
        m.set_status(
            Severity::Warn,
            "mountpaths are a target's: open a target's detail (Enter) first",
        );
        return None;
    };
    let (target, addr) = (t.id.clone(), t.addr.clone());
    let path = match action {
        // Starts in the directory of the selected mountpath: new disks usually go next to it.
        MpAction::Attach => m
            .selected_mountpath()
            .and_then(|mp| std::path::Path::new(&mp.path).parent())
            .map(|p| {
                let p = p.display().to_string();
                if p.ends_with('/') { p } else { p + "/" }
            })
            .unwrap_or_else(|| "/".to_string()),
        _ => match m.selected_mountpath() {
            Some(mp) => mp.path.clone(),
            None => {
                m.set_status(Severity::Warn, "no mountpath selected");
                return None;
            }
        },
    };
    let req = MpRequest {
        target,
        addr,
        op: MountpathOp {
            action,
            path,
            dry_run: false,
        },
    };
    if action == MpAction::Attach {
        m.mp_dialog = Some(MpDialog {
            req,
            step: MpStep::EnterPath,
        });
        return None;
    }
    let dry = req.dry(true);
    m.mp_dialog = Some(MpDialog {
        req,
        step: MpStep::Loading,
    });
    Some(Command::MountpathDryRun(dry))
}

/// Enter / `y` in the mountpath dialog: submits the typed path for a dry run, or sends the
/// operation once the dry run said yes.
fn confirm_mountpath(m: &mut Model) -> Option<Command> {
    let d = m.mp_dialog.as_mut()?;
    if m.readonly {
        // Unreachable by keys; kept so a read-only console can never send.
        m.mp_dialog = None;
        return None;
    }
    match &d.step {
        MpStep::EnterPath => {
            let path = d.req.op.path.trim().to_string();
            if path.is_empty() {
                m.set_status(Severity::Warn, "type the directory to attach (Esc cancels)");
                return None;
            }
            d.req.op.path = path;
            d.step = MpStep::Loading;
            Some(Command::MountpathDryRun(d.req.dry(true)))
        }
        MpStep::Loading => {
            m.set_status(Severity::Info, "waiting for the dry run…");
            None
        }
        MpStep::Refused(_) => {
            m.set_status(
                Severity::Warn,
                "the dry run said no: nothing to confirm (Esc closes)",
            );
            None
        }
        MpStep::Ready(_) => {
            let d = m.mp_dialog.take()?;
            m.log(Severity::Info, format!("sent: {}", d.nodectl_command()));
            m.set_status(
                Severity::Info,
                format!("{} sent, waiting for the target…", d.req.describe()),
            );
            Some(Command::Mountpath(d.req))
        }
    }
}

fn mp_dry_run_done(m: &mut Model, req: MpRequest, result: Result<MountpathReply, CmdError>) {
    // Only the dialog that asked takes the answer; a cancelled or retyped one ignores it.
    let Some(d) = m
        .mp_dialog
        .as_mut()
        .filter(|d| d.req == req && d.step == MpStep::Loading)
    else {
        return;
    };
    d.step = match result {
        Ok(reply) => MpStep::Ready(reply),
        Err(e) => {
            let text = format!("dry run of {}: {}", req.describe(), e.message);
            m.status = Some(crate::model::StatusLine {
                severity: e.severity(),
                text,
            });
            MpStep::Refused(e)
        }
    };
}

fn mountpath_done(
    m: &mut Model,
    req: MpRequest,
    result: Result<MountpathReply, CmdError>,
) -> Option<Command> {
    let what = req.describe();
    let (sev, text) = match result {
        Ok(r) => {
            // The path as the target resolved it, when that differs from the one typed.
            let mut text = what.clone();
            if !r.path.is_empty() && r.path != req.op.path {
                text.push_str(&format!(" (= {})", r.path));
            }
            text.push_str(&format!(": {}", r.state));
            if let Some(id) = &r.resilver_id {
                text.push_str(&format!(", resilver \"{id}\" started"));
            }
            (Severity::Notice, text)
        }
        Err(e) if e.refusal => (
            Severity::Warn,
            format!("{what}: refused ({}): {}", e.kind, e.message),
        ),
        Err(e) => (e.severity(), format!("{what}: failed: {}", e.message)),
    };
    m.log(sev, text.clone());
    m.set_status(sev, text);
    Some(Command::Refresh)
}

fn snapshot(m: &mut Model, cluster: ClusterStatus, rebalance: Option<RebalanceStatus>, at: u64) {
    m.now = m.now.max(at);
    let rebalance = rebalance.or_else(|| cluster.rebalance.clone());
    if let Connection::Unreachable { attempts, .. } = &m.connection {
        let msg = format!(
            "cluster at {} reachable again after {attempts} failed polls",
            m.endpoint
        );
        m.log(Severity::Notice, msg);
    }
    for (sev, text) in events::diff(
        m.cluster.as_ref(),
        m.rebalance.as_ref(),
        &cluster,
        rebalance.as_ref(),
    ) {
        m.log(sev, text);
    }
    // Keep the cursor on the same node when rows come and go.
    let sel_t = m.visible_targets().get(m.target_sel).map(|n| n.id.clone());
    let sel_p = m.visible_proxies().get(m.proxy_sel).map(|n| n.id.clone());
    let sel_mp = m.selected_mountpath().map(|mp| mp.path.clone());
    m.marked.retain(|id| {
        cluster
            .targets
            .iter()
            .chain(&cluster.proxies)
            .any(|n| &n.id == id)
    });
    m.cluster = Some(cluster);
    m.rebalance = rebalance;
    m.connection = Connection::Connected;
    m.last_update = Some(at);
    if let Some(i) = sel_t.and_then(|id| m.visible_targets().iter().position(|n| n.id == id)) {
        m.target_sel = i;
    }
    if let Some(i) = sel_p.and_then(|id| m.visible_proxies().iter().position(|n| n.id == id)) {
        m.proxy_sel = i;
    }
    clamp_selection(m);
    // The mountpath cursor stays on its path when mountpaths are attached or detached.
    let mps: Vec<String> = m
        .detail_target()
        .map(|t| t.mountpaths.iter().map(|mp| mp.path.clone()).collect())
        .unwrap_or_default();
    if let Some(i) = sel_mp.and_then(|p| mps.iter().position(|q| *q == p)) {
        m.mp_sel = i;
    }
    m.mp_sel = m.mp_sel.min(mps.len().saturating_sub(1));
}

fn unreachable(m: &mut Model, error: String, at: u64) {
    m.now = m.now.max(at);
    m.connection = match std::mem::take(&mut m.connection) {
        Connection::Unreachable {
            attempts, since, ..
        } => Connection::Unreachable {
            error,
            attempts: attempts + 1,
            since,
        },
        _ => {
            let msg = format!("cluster unreachable at {}: {error}", m.endpoint);
            m.log(Severity::Error, msg);
            Connection::Unreachable {
                error,
                attempts: 1,
                since: at,
            }
        }
    };
}

/// "updated 3s ago" for the header; `None` before the first snapshot.
pub fn freshness(m: &Model) -> Option<String> {
    m.last_update
        .map(|t| format!("updated {} ago", format::duration(m.now.saturating_sub(t))))
}
