//! Mountpath operations as an operator asks for them and as a target answers (DESIGN §14).

use serde::{Deserialize, Serialize};

use super::status::MpState;

/// `nodectl storage mountpath ACTION NODE PATH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MpAction {
    /// Add a mountpath; its share of objects moves onto it.
    Attach,
    /// Move its objects off, then forget it.
    Detach,
    /// Use a disabled mountpath again; its share moves back.
    Enable,
    /// Stop placing objects on it at once; its objects move off while it is readable.
    Disable,
}

impl MpAction {
    pub fn as_str(self) -> &'static str {
        match self {
            MpAction::Attach => "attach",
            MpAction::Detach => "detach",
            MpAction::Enable => "enable",
            MpAction::Disable => "disable",
        }
    }

    /// Whether the step can be undone (for confirm prompts): each has its inverse.
    pub fn undo(self) -> &'static str {
        match self {
            MpAction::Attach => "detach",
            MpAction::Detach => "attach",
            MpAction::Enable => "disable",
            MpAction::Disable => "enable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "attach" => MpAction::Attach,
            "detach" => MpAction::Detach,
            "enable" => MpAction::Enable,
            "disable" => MpAction::Disable,
            _ => return None,
        })
    }
}

impl std::fmt::Display for MpAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a mountpath operation did (or, as a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MountpathReply {
    pub target: String,
    /// The mountpath, canonical.
    pub path: String,
    pub dry_run: bool,
    /// Its state after the operation (before it, for a dry run).
    pub state: MpState,
    /// Objects and bytes that move (would move) between mountpaths.
    pub objs: u64,
    pub bytes: u64,
    /// The resilver that moves them (`r<N>`), if one was started.
    pub resilver_id: Option<String>,
}
