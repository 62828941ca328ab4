//! The recorded history: every client operation with its invocation and completion times and
//! what it observed, plus the nemesis' own events (faults, lifecycle commands), so that a
//! violation can be printed with the operations and faults around it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Microseconds since the run started.
pub type Micros = u64;

/// The completion time of an operation whose outcome is unknown: it may take effect at any
/// time after its invocation (a write that timed out can still land later).
pub const NEVER: Micros = u64::MAX;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A put of content whose xxh3 checksum is `sum` (content is unique per put).
    Put {
        sum: String,
        size: usize,
    },
    Get,
    Delete,
    /// A listing; it observes every workload key under `prefix`.
    List {
        prefix: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Invoked, not completed yet.
    Pending,
    /// Put or delete acknowledged.
    Ok,
    /// Get returned content with this checksum.
    Value(String),
    /// Get or delete: the cluster said the object does not exist.
    Absent,
    /// List: name → checksum of every listed workload object.
    Listed(Vec<(String, String)>),
    /// Error or timeout: a write is indeterminate, a read observed nothing.
    Failed(String),
    /// A write that failed before it could change anything (the request never reached a
    /// node able to apply it, or the body was never sent): it did not happen.
    NotApplied(String),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub id: usize,
    /// Workload client number; `usize::MAX` for the checker's own reads at quiet points.
    pub client: usize,
    /// Object name (empty for a listing).
    pub key: String,
    pub kind: OpKind,
    /// Proxy the request went through.
    pub via: String,
    pub inv: Micros,
    pub resp: Option<Micros>,
    pub outcome: Outcome,
}

impl Op {
    pub fn is_write(&self) -> bool {
        matches!(self.kind, OpKind::Put { .. } | OpKind::Delete)
    }

    /// Completion time as the checker uses it: [`NEVER`] unless the outcome is known.
    pub fn known_resp(&self) -> Micros {
        match (&self.outcome, self.resp) {
            (Outcome::Pending | Outcome::Failed(_) | Outcome::NotApplied(_), _) | (_, None) => {
                NEVER
            }
            (_, Some(t)) => t,
        }
    }

    pub fn line(&self) -> String {
        let who = if self.client == usize::MAX {
            "chk".to_string()
        } else {
            format!("c{}", self.client)
        };
        let resp = match self.resp {
            Some(t) => fmt_t(t),
            None => "   ...   ".to_string(),
        };
        let what = match &self.kind {
            OpKind::Put { sum, size } => format!("PUT    {} #{} ({size} B)", self.key, short(sum)),
            OpKind::Get => format!("GET    {}", self.key),
            OpKind::Delete => format!("DELETE {}", self.key),
            OpKind::List { prefix } => format!("LIST   prefix {prefix:?}"),
        };
        let out = match &self.outcome {
            Outcome::Pending => "pending".to_string(),
            Outcome::Ok => "ok".to_string(),
            Outcome::Value(s) => format!("-> #{}", short(s)),
            Outcome::Absent => "-> not found".to_string(),
            Outcome::Listed(v) => format!("-> {} objects", v.len()),
            Outcome::Failed(e) => format!("FAILED {}", one_line(e, 90)),
            Outcome::NotApplied(e) => format!("FAILED, not applied: {}", one_line(e, 80)),
        };
        format!(
            "[{} .. {}] op{:<6} {who:>3} via {:<7} {what}  {out}",
            fmt_t(self.inv),
            resp,
            self.id,
            self.via
        )
    }
}

/// A nemesis event: a fault injected or healed, a lifecycle command and its result.
#[derive(Clone, Debug)]
pub struct Event {
    pub t: Micros,
    pub text: String,
}

/// The shared recorder: clients and the nemesis append, the checker reads snapshots.
#[derive(Clone)]
pub struct Recorder {
    t0: Instant,
    /// The wall clock at `t0`, to find an operation in the node logs (which are in UTC).
    wall0: std::time::SystemTime,
    ops: Arc<Mutex<Vec<Op>>>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            t0: Instant::now(),
            wall0: std::time::SystemTime::now(),
            ops: Default::default(),
            events: Default::default(),
        }
    }

    /// `t = 0` as the node logs print time (UTC, time of day).
    pub fn wall0(&self) -> String {
        let d = self
            .wall0
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let s = d.as_secs() % 86_400;
        format!(
            "{:02}:{:02}:{:02}.{:03}Z",
            s / 3600,
            s / 60 % 60,
            s % 60,
            d.subsec_millis()
        )
    }

    pub fn now(&self) -> Micros {
        self.t0.elapsed().as_micros() as Micros
    }

    /// Records the invocation before the request is sent, so a read that sees this write's
    /// value while it is still in flight is never taken for an unknown value.
    pub fn invoke(&self, client: usize, key: &str, kind: OpKind, via: &str) -> usize {
        let mut ops = self.ops.lock().expect("poisoned");
        let id = ops.len();
        ops.push(Op {
            id,
            client,
            key: key.to_string(),
            kind,
            via: via.to_string(),
            inv: self.now(),
            resp: None,
            outcome: Outcome::Pending,
        });
        id
    }

    pub fn complete(&self, id: usize, outcome: Outcome) {
        let now = self.now();
        let mut ops = self.ops.lock().expect("poisoned");
        ops[id].resp = Some(now);
        ops[id].outcome = outcome;
    }

    pub fn event(&self, text: impl Into<String>) {
        let e = Event {
            t: self.now(),
            text: text.into(),
        };
        if std::env::var_os("SHOAL_NEMESIS_VERBOSE").is_some() {
            eprintln!("nemesis [{}] {}", fmt_t(e.t), e.text);
        }
        self.events.lock().expect("poisoned").push(e);
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().expect("poisoned").clone()
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("poisoned").clone()
    }

    pub fn pending(&self) -> usize {
        self.ops
            .lock()
            .expect("poisoned")
            .iter()
            .filter(|o| o.outcome == Outcome::Pending)
            .count()
    }
}

pub fn fmt_t(t: Micros) -> String {
    if t == NEVER {
        return "  never  ".to_string();
    }
    format!("{:>8.3}s", t as f64 / 1e6)
}

pub fn short(sum: &str) -> &str {
    &sum[..sum.len().min(8)]
}

pub fn one_line(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > max {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    } else {
        s
    }
}
