//! The console's whole state: the latest cluster snapshot plus UI state. `update` is the only
//! writer and `view` the only reader, so every screen is a function of this struct.

use std::collections::{BTreeSet, VecDeque};

use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleRequest, Plan};
use shoal_actors::types::smap::Role;
use shoal_actors::types::status::{ClusterStatus, NodeStatus};
use shoal_actors::types::status::{MountpathStats, MpState, RebalanceStatus};
use shoal_actors::types::storage::{MountpathReply, MpAction};

use crate::update::{CmdError, MpRequest};

/// How many event-log entries are kept; older ones scroll away.
pub const EVENT_LOG_CAP: usize = 500;

/// Which table the cursor keys act on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Focus {
    #[default]
    Targets,
    Proxies,
}

/// Health of the link to the cluster, driving the "unreachable" banner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Connection {
    /// No answer yet (first poll in flight).
    #[default]
    Connecting,
    /// The last poll succeeded.
    Connected,
    /// Polls fail; the last good snapshot (if any) stays on screen, marked stale.
    Unreachable {
        /// The last error text, so the operator sees why (refused, timeout…).
        error: String,
        /// Consecutive failed polls, to show that retrying is really happening.
        attempts: u32,
        /// Unix seconds of the first failure in this streak.
        since: u64,
    },
}

/// How loud an event-log or status-line message is; maps to a colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Info,
    /// Lifecycle and rebalance progress worth noticing.
    Notice,
    /// Refusals (busy, unauthorized, forbidden) and risky toggles.
    Warn,
    Error,
}

/// One timestamped line of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Unix seconds when the console learned of it.
    pub at: u64,
    /// Picks the colour, so refusals and failures stand out in a long log.
    pub severity: Severity,
    /// One human sentence, AIStore wording where there is one.
    pub text: String,
}

/// The one-line message under the panels: the outcome of the last key press or command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusLine {
    /// Colour of the line: a refusal must not look like a success.
    pub severity: Severity,
    /// What happened, in one line.
    pub text: String,
}

/// The dry-run plan shown in a confirm dialog, fetched after the dialog opens.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanState {
    /// Dry run sent, no answer yet; confirming waits for it so nobody confirms blind.
    Loading,
    Ready(Plan),
    /// The dry run failed (busy cluster, node unknown…); the text says why.
    Failed(String),
}

/// A pending lifecycle step awaiting the operator's confirmation.
#[derive(Clone, Debug, PartialEq)]
pub struct Dialog {
    /// The exact request that will be sent on confirm (`dry_run` false).
    pub req: LifecycleRequest,
    /// `t[ID]` / `p[ID]` per node, in request order, for the text and the nodectl command.
    pub labels: Vec<String>,
    /// The dry run's answer: what would move where, and whether it fits.
    pub plan: PlanState,
    /// What the operator must type to confirm (decommission only: the point of no return).
    pub expect_typed: Option<String>,
    /// What has been typed so far.
    pub typed: String,
    /// Before a shutdown or decommission: `cluster check` on the nodes as the cluster is now.
    pub precheck: Option<(
        shoal_actors::logic::checks::Check,
        shoal_actors::logic::checks::Verdict,
    )>,
}

impl Dialog {
    /// The `nodectl` command that does the same thing, so operators can script it next time.
    pub fn nodectl_command(&self) -> String {
        let mut cmd = format!(
            "nodectl cluster add-remove-nodes {} {}",
            self.req.op,
            self.labels.join(" ")
        );
        if self.req.no_rebalance {
            cmd.push_str(" --no-rebalance");
        }
        if self.req.rm_user_data {
            cmd.push_str(" --rm-user-data");
        }
        cmd.push_str(" --yes");
        cmd
    }

    /// Whether and how the step can be reverted.
    pub fn undo_text(&self) -> &'static str {
        match self.req.op {
            LifecycleOp::StopMaintenance => "can be undone with start-maintenance",
            op if op.undoable() => "can be undone with stop-maintenance",
            _ => "cannot be undone: point of no return",
        }
    }

    /// True when the typed confirmation (if one is needed) matches exactly.
    pub fn typed_ok(&self) -> bool {
        self.expect_typed.as_deref().is_none_or(|e| e == self.typed)
    }
}

/// Where a mountpath dialog is: typing the directory (attach only), then the dry run's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum MpStep {
    /// `a`: the operator types the directory to attach; Enter asks for the dry run.
    EnterPath,
    /// Dry run sent, no answer yet; confirming waits for it.
    Loading,
    /// The target checked the request: what would move (objects, bytes) and the canonical path.
    Ready(MountpathReply),
    /// The target said no (foreign disk, only enabled mountpath, unauthorized…): nothing can be
    /// confirmed, only cancelled.
    Refused(CmdError),
}

/// A pending mountpath operation (attach, detach, enable, disable) on one target.
#[derive(Clone, Debug, PartialEq)]
pub struct MpDialog {
    /// The request sent on confirm (`dry_run` false); while typing, `op.path` is the input.
    pub req: MpRequest,
    pub step: MpStep,
}

impl MpDialog {
    /// `t[ID]`, the form `nodectl` accepts and prints.
    pub fn target_label(&self) -> String {
        format!("t[{}]", self.req.target)
    }

    /// The `nodectl` command that does the same thing.
    pub fn nodectl_command(&self) -> String {
        let path = if self.req.op.path.is_empty() {
            "PATH".to_string()
        } else {
            sh_quote(&self.req.op.path)
        };
        format!(
            "nodectl storage mountpath {} {} {path} --yes",
            self.req.op.action,
            self.target_label()
        )
    }

    /// How the step is undone: every mountpath action has an inverse.
    pub fn undo_text(&self) -> String {
        let action = self.req.op.action;
        let how = match action {
            MpAction::Attach => "its objects move back to the other mountpaths",
            MpAction::Detach => "it takes its share of objects again",
            MpAction::Enable => "its objects move off again",
            MpAction::Disable => "its share of objects moves back",
        };
        format!(
            "can be undone with {} (key {}): {how}",
            action.undo(),
            mp_key(MpAction::parse(action.undo()).unwrap_or(action))
        )
    }
}

/// The console key of a mountpath action (target detail view).
pub fn mp_key(a: MpAction) -> char {
    match a {
        MpAction::Attach => 'a',
        MpAction::Detach => 'd',
        MpAction::Enable => 'e',
        MpAction::Disable => 'x',
    }
}

/// `s` as one `sh` word: unchanged when it is plain, else single-quoted.
fn sh_quote(s: &str) -> String {
    let plain = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A mountpath's state as one word, the way `nodectl show storage` prints it.
pub fn mp_state_word(mp: &MountpathStats) -> String {
    if mp.full && mp.state == MpState::Enabled {
        "enabled (full)".to_string()
    } else {
        mp.state.to_string()
    }
}

/// Everything the console knows and shows.
#[derive(Clone, Debug)]
pub struct Model {
    /// Proxy address the console talks to, named in the unreachable banner.
    pub endpoint: String,
    /// `--readonly`: lifecycle keys are disabled and the footer says so.
    pub readonly: bool,
    /// `NO_COLOR` is set: no colours at all; every colour's meaning is in words already.
    pub no_color: bool,
    /// The latest cluster snapshot; kept while unreachable so the screen is not blanked.
    pub cluster: Option<ClusterStatus>,
    /// The latest rebalance, from `rebalance_status()` (falls back to the snapshot's own).
    pub rebalance: Option<RebalanceStatus>,
    /// Whether the last poll worked; drives the "unreachable, retrying" banner.
    pub connection: Connection,
    /// Unix seconds of the runner's clock, passed in by actions so `update` stays pure.
    pub now: u64,
    /// Unix seconds of the last good snapshot, for "updated Ns ago".
    pub last_update: Option<u64>,
    /// Which table the cursor keys and lifecycle keys act on.
    pub focus: Focus,
    /// Cursor row among the *visible* (filtered) targets.
    pub target_sel: usize,
    /// Cursor row among the visible proxies.
    pub proxy_sel: usize,
    /// Node IDs marked with Space, acted on together as one batch (one map change, one rebalance).
    pub marked: BTreeSet<String>,
    /// ID substring filter for both tables; empty shows all.
    pub filter: String,
    /// True while `/` is capturing keystrokes into `filter`.
    pub filter_editing: bool,
    /// The confirm dialog, when a lifecycle step is pending.
    pub dialog: Option<Dialog>,
    /// Armed by `n`: the next lifecycle request skips rebalance. Disarmed after it is sent.
    pub no_rebalance: bool,
    /// Timestamped history of lifecycle, rebalance and command events, oldest first.
    pub events: VecDeque<LogEntry>,
    /// Outcome of the last key press or command.
    pub status: Option<StatusLine>,
    /// The `?` overlay is open.
    pub help: bool,
    /// The node detail view (Enter) is open for the selected node.
    pub detail: bool,
    /// Cursor row among the mountpaths of the target whose detail is open.
    pub mp_sel: usize,
    /// The mountpath dialog (keys `a`, `d`, `e`, `x` in a target's detail), when one is open.
    pub mp_dialog: Option<MpDialog>,
    /// `P`: pause (true) or resume (false) the global rebalance, waiting for a confirm.
    pub reb_dialog: Option<bool>,
    /// `H`: the cluster's rebalance history (`None`: closed; `Some(None)`: being fetched).
    pub history: Option<Option<Result<Vec<shoal_actors::types::status::GenRecord>, String>>>,
    /// Set by quit keys; the runner leaves its loop when it sees it.
    pub quit: bool,
    /// Who the console acts as (its token's subject and roles), asked once at start: shown in
    /// the header, and keys whose request would be refused are refused here first, with why.
    /// `None` until known (or when it could not be asked): the cluster decides alone.
    pub identity: Option<shoal_actors::types::auth::WhoAmI>,
}

impl Model {
    pub fn new(endpoint: impl Into<String>, readonly: bool) -> Self {
        Model {
            endpoint: endpoint.into(),
            readonly,
            no_color: false,
            cluster: None,
            rebalance: None,
            connection: Connection::Connecting,
            now: 0,
            last_update: None,
            focus: Focus::Targets,
            target_sel: 0,
            proxy_sel: 0,
            marked: BTreeSet::new(),
            filter: String::new(),
            filter_editing: false,
            dialog: None,
            no_rebalance: false,
            events: VecDeque::new(),
            status: None,
            help: false,
            detail: false,
            mp_sel: 0,
            mp_dialog: None,
            reb_dialog: None,
            history: None,
            quit: false,
            identity: None,
        }
    }

    fn matches(&self, n: &NodeStatus) -> bool {
        self.filter.is_empty() || n.id.contains(&self.filter)
    }

    /// Targets that pass the filter, in the cluster's order.
    pub fn visible_targets(&self) -> Vec<&NodeStatus> {
        self.cluster
            .iter()
            .flat_map(|c| &c.targets)
            .filter(|n| self.matches(n))
            .collect()
    }

    /// Proxies that pass the filter, in the cluster's order.
    pub fn visible_proxies(&self) -> Vec<&NodeStatus> {
        self.cluster
            .iter()
            .flat_map(|c| &c.proxies)
            .filter(|n| self.matches(n))
            .collect()
    }

    /// The node under the cursor in the focused table.
    pub fn selected(&self) -> Option<&NodeStatus> {
        match self.focus {
            Focus::Targets => self.visible_targets().get(self.target_sel).copied(),
            Focus::Proxies => self.visible_proxies().get(self.proxy_sel).copied(),
        }
    }

    /// The target whose detail view is open (`None` when it is closed or shows a proxy).
    pub fn detail_target(&self) -> Option<&NodeStatus> {
        if !self.detail {
            return None;
        }
        self.selected().filter(|n| n.role == Role::Target)
    }

    /// The mountpath under the cursor in the open target detail.
    pub fn selected_mountpath(&self) -> Option<&MountpathStats> {
        self.detail_target()?.mountpaths.get(self.mp_sel)
    }

    /// Looks a node up by ID among targets and proxies.
    pub fn node(&self, id: &str) -> Option<&NodeStatus> {
        self.cluster
            .iter()
            .flat_map(|c| c.targets.iter().chain(&c.proxies))
            .find(|n| n.id == id)
    }

    /// The nodes a lifecycle key acts on: the marked batch if any, else the selected node.
    /// Targets come first, each table in display order, so the request reads like the screen.
    pub fn action_nodes(&self) -> Vec<&NodeStatus> {
        if self.marked.is_empty() {
            return self.selected().into_iter().collect();
        }
        self.cluster
            .iter()
            .flat_map(|c| c.targets.iter().chain(&c.proxies))
            .filter(|n| self.marked.contains(&n.id))
            .collect()
    }

    /// Appends to the event log, dropping the oldest entry past the cap.
    pub fn log(&mut self, severity: Severity, text: impl Into<String>) {
        if self.events.len() >= EVENT_LOG_CAP {
            self.events.pop_front();
        }
        self.events.push_back(LogEntry {
            at: self.now,
            severity,
            text: text.into(),
        });
    }

    pub fn set_status(&mut self, severity: Severity, text: impl Into<String>) {
        self.status = Some(StatusLine {
            severity,
            text: text.into(),
        });
    }
}

/// `t[ID]` or `p[ID]` for a node, the form `nodectl` accepts and prints.
/// "alice (read-only)": who the console acts as, for the header; `None` with auth off or
/// before it is known.
pub fn identity_text(m: &Model) -> Option<String> {
    let who = m.identity.as_ref().filter(|w| w.auth_enabled)?;
    let p = &who.principal;
    let what = if !p.roles.is_empty() {
        p.roles.join(",")
    } else if shoal_actors::logic::perm::is_cluster_admin(p) {
        "admin".into()
    } else {
        p.perms
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    Some(if what.is_empty() {
        p.subject.clone()
    } else {
        format!("{} ({what})", p.subject)
    })
}

pub fn label(n: &NodeStatus) -> String {
    let letter = n.role.letter();
    format!("{letter}[{}]", n.id)
}
