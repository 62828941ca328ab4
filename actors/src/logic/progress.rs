//! Rebalance progress as the primary computes it (DESIGN §8): per-target reports folded into
//! cluster totals, rate over a sliding window, ETA, the least advanced stage, and the reasons a
//! generation is blocked. Pure: time is passed in, so the math is tested without a cluster.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::types::smap::{NodeId, rebalance_id};
use crate::types::status::{RebState, RebalanceStatus, Stage, TargetRebStatus};

/// How far back the rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// The primary's view of one rebalance generation.
#[derive(Clone, Debug)]
pub struct Tracker {
    pub generation: u64,
    /// Targets expected to report `done` before the generation completes.
    pub participants: BTreeSet<NodeId>,
    reports: HashMap<NodeId, TargetRebStatus>,
    started: Instant,
    started_unix: u64,
    finished: Option<(Instant, u64)>,
    /// (when, bytes moved, objects moved): a sliding window for the rate.
    samples: VecDeque<(Instant, u64, u64)>,
    pub aborted: bool,
    /// Nodes whose lifecycle step completes with this generation (from the RMD).
    pub finalize: Vec<NodeId>,
    /// When the reports last showed progress (anything counted, moved, received, a stage
    /// passed), and what they showed then: the stall check's reference.
    last_progress: (Instant, u64),
    /// A stall was logged already (once per stall).
    pub stall_logged: bool,
    /// What started the generation (from the RMD), for its history record.
    pub trigger: String,
}

impl Tracker {
    pub fn new(
        generation: u64,
        participants: BTreeSet<NodeId>,
        finalize: Vec<NodeId>,
        now: Instant,
        now_unix: u64,
    ) -> Self {
        Tracker {
            generation,
            participants,
            reports: HashMap::new(),
            started: now,
            started_unix: now_unix,
            finished: None,
            samples: VecDeque::new(),
            aborted: false,
            finalize,
            last_progress: (now, 0),
            stall_logged: false,
            trigger: String::new(),
        }
    }

    pub fn running(&self) -> bool {
        self.finished.is_none() && !self.aborted
    }

    pub fn finished_at(&self) -> Option<u64> {
        self.finished.map(|(_, u)| u)
    }

    fn stage_of(&self, id: &NodeId) -> Stage {
        self.reports.get(id).map(|r| r.stage).unwrap_or(Stage::Init)
    }

    /// The least advanced stage among participants (aborted ones do not hold it back).
    pub fn min_stage(&self) -> Stage {
        self.participants
            .iter()
            .map(|id| self.stage_of(id))
            .filter(|s| *s != Stage::Aborted)
            .min()
            .unwrap_or(Stage::Done)
    }

    /// Every participant is done or gave up: nothing more will come of this generation. One
    /// that aborted makes it unclean, so it is not finalised and is retried (its reports after
    /// the abort, from a restart, are stale by stage order and would never arrive).
    pub fn all_ended(&self) -> bool {
        self.participants
            .iter()
            .all(|id| matches!(self.stage_of(id), Stage::Done | Stage::Aborted))
    }

    /// Every participant sent without errors and none aborted: nothing meant for another
    /// target is left behind on a sender.
    pub fn clean(&self) -> bool {
        self.errors() == 0
            && self
                .participants
                .iter()
                .all(|id| self.stage_of(id) != Stage::Aborted)
    }

    /// Errors reported by all targets so far; a participant that aborted counts as one at
    /// least (it left its part undone whatever its counters say).
    pub fn errors(&self) -> u64 {
        let reported: u64 = self.reports.values().map(|r| r.errors).sum();
        let gave_up = self
            .participants
            .iter()
            .filter_map(|id| self.reports.get(id))
            .filter(|r| r.stage == Stage::Aborted && r.errors == 0)
            .count();
        reported + gave_up as u64
    }

    /// (bytes, objects) moved so far, remote and local moves together.
    pub fn moved(&self) -> (u64, u64) {
        self.reports.values().fold((0, 0), |(b, o), r| {
            (b + r.tx_bytes + r.local_bytes, o + r.tx_objs + r.local_objs)
        })
    }

    /// Takes a target's report unless it is stale: reports travel on several connections and
    /// may arrive out of order, and an older one (an earlier stage, or smaller counters) must
    /// never replace a newer one. Returns whether it was taken.
    pub fn record(&mut self, report: TargetRebStatus, now: Instant) -> bool {
        let id = NodeId(report.id.clone());
        if report.generation != self.generation || !self.participants.contains(&id) {
            return false;
        }
        let stale = self.reports.get(&id).is_some_and(|cur| {
            cur.stage > report.stage
                || (cur.stage == report.stage
                    && cur.tx_bytes + cur.local_bytes > report.tx_bytes + report.local_bytes)
        });
        if stale {
            return false;
        }
        self.reports.insert(id, report);
        self.sample(now);
        let mark = self.reports.values().fold(0u64, |a, r| {
            a + r.objs_total
                + r.tx_objs
                + r.rx_objs
                + r.local_objs
                + r.errors
                + u64::from(r.counted)
                + r.stage as u64
                + u64::from(r.paused)
        });
        if mark != self.last_progress.1 {
            self.last_progress = (now, mark);
            self.stall_logged = false;
        }
        true
    }

    fn sample(&mut self, now: Instant) {
        let (b, o) = self.moved();
        self.samples.push_back((now, b, o));
        while self.samples.len() > 2 && now.duration_since(self.samples[0].0) > RATE_WINDOW {
            self.samples.pop_front();
        }
    }

    /// Participants that left the map no longer hold the generation up. Returns whether any
    /// were dropped.
    pub fn retain_participants(&mut self, keep: impl Fn(&NodeId) -> bool) -> bool {
        let before = self.participants.len();
        self.participants.retain(|id| keep(id));
        self.participants.len() != before
    }

    pub fn finish(&mut self, now: Instant, now_unix: u64) {
        self.finished = Some((now, now_unix));
    }

    /// The generation's line in the cluster's history, as it stands now.
    pub fn history_record(&self, outcome: impl Into<String>) -> crate::types::status::GenRecord {
        let (bytes, objects) = self.moved();
        crate::types::status::GenRecord {
            id: rebalance_id(self.generation),
            trigger: self.trigger.clone(),
            started: self.started_unix,
            finished: self.finished_at().unwrap_or_else(crate::types::unix_secs),
            objects,
            bytes,
            errors: self.errors(),
            outcome: outcome.into(),
        }
    }

    /// As [`status`](Self::status), with the cluster's pause flag and the stall verdict: a
    /// running, unpaused generation whose reports showed no progress for `stall_after` is
    /// stalled, and `blocked_by` says since when (its other lines say why).
    pub fn status_at(
        &self,
        offline: &HashSet<NodeId>,
        now: Instant,
        paused: bool,
        stall_after: Duration,
    ) -> RebalanceStatus {
        let mut s = self.status(offline);
        s.paused = paused && s.is_running();
        let idle = now.saturating_duration_since(self.last_progress.0);
        if s.is_running() && !paused && !stall_after.is_zero() && idle >= stall_after {
            s.stalled = true;
            s.blocked_by
                .insert(0, format!("stalled: no progress for {}s", idle.as_secs()));
        }
        s
    }

    /// The generation as `show rebalance` shows it; `offline` names targets whose keepalive
    /// was lost (they block a running generation).
    pub fn status(&self, offline: &HashSet<NodeId>) -> RebalanceStatus {
        let (bytes_moved, objs_moved) = self.moved();
        let objs_total: u64 = self.reports.values().map(|r| r.objs_total).sum();
        let bytes_total: u64 = self.reports.values().map(|r| r.bytes_total).sum();
        let counted = self
            .participants
            .iter()
            .all(|id| self.reports.get(id).is_some_and(|r| r.counted));
        let (rate_b, rate_o) = if self.running() {
            match (self.samples.front(), self.samples.back()) {
                (Some(a), Some(z)) if z.0 > a.0 => {
                    let dt = z.0.duration_since(a.0).as_secs_f64();
                    (
                        z.1.saturating_sub(a.1) as f64 / dt,
                        z.2.saturating_sub(a.2) as f64 / dt,
                    )
                }
                _ => (0.0, 0.0),
            }
        } else {
            // Finished: the average over the whole run.
            let dt = self
                .finished
                .map(|(f, _)| f.duration_since(self.started))
                .unwrap_or_default()
                .as_secs_f64()
                .max(0.001);
            (bytes_moved as f64 / dt, objs_moved as f64 / dt)
        };
        let eta = if !self.running() {
            Some(0)
        } else if counted && rate_b > 0.0 && bytes_total > 0 {
            Some((bytes_total.saturating_sub(bytes_moved) as f64 / rate_b).ceil() as u64)
        } else if counted && rate_o > 0.0 {
            Some((objs_total.saturating_sub(objs_moved) as f64 / rate_o).ceil() as u64)
        } else if counted && objs_total == 0 {
            Some(0)
        } else {
            None
        };
        let mut blocked = Vec::new();
        let errors: u64 = self.errors();
        if !self.running() && errors > 0 && !self.finalize.is_empty() {
            let nodes: Vec<String> = self.finalize.iter().map(|id| format!("{id}")).collect();
            blocked.push(format!(
                "{} finished with {errors} errors: not finalised for {} until a retry (or a repeat of the operation) finishes cleanly",
                rebalance_id(self.generation),
                nodes.join(", ")
            ));
        }
        for id in &self.participants {
            let report = self.reports.get(id);
            // Why a target gave up stays on show after the end: it is what the operator fixes.
            if let Some(r) = report.filter(|r| r.stage == Stage::Aborted) {
                let why = r.blocked_by.as_deref().unwrap_or("aborted");
                let next = if self.running() {
                    "; retried once the others finish"
                } else {
                    ""
                };
                blocked.push(format!("t[{id}] gave up its part: {why}{next}"));
                continue;
            }
            if !self.running() {
                continue;
            }
            if offline.contains(id) {
                blocked.push(format!("t[{id}] is offline (keepalive lost)"));
            }
            if let Some(b) = report.and_then(|r| r.blocked_by.clone()) {
                blocked.push(format!("t[{id}]: {b}"));
            }
        }
        let targets: Vec<TargetRebStatus> = self
            .participants
            .iter()
            .map(|id| {
                self.reports
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| TargetRebStatus {
                        id: id.0.clone(),
                        generation: self.generation,
                        ..Default::default()
                    })
            })
            .collect();
        RebalanceStatus {
            id: rebalance_id(self.generation),
            state: if self.aborted {
                RebState::Aborted
            } else if self.finished.is_some() {
                RebState::Finished
            } else {
                RebState::Running
            },
            stage: self.min_stage(),
            objs_total,
            bytes_total,
            objs_moved,
            bytes_moved,
            rate_bytes_per_sec: rate_b,
            rate_objs_per_sec: rate_o,
            eta_secs: eta,
            blocked_by: blocked,
            errors: targets.iter().map(|t| t.errors).sum(),
            targets,
            started: Some(self.started_unix),
            finished: self.finished_at(),
            paused: false,
            stalled: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> BTreeSet<NodeId> {
        (0..n).map(|i| NodeId(format!("t{i}"))).collect()
    }

    fn report(id: usize, stage: Stage, tx_bytes: u64, tx_objs: u64) -> TargetRebStatus {
        TargetRebStatus {
            id: format!("t{id}"),
            generation: 7,
            stage,
            objs_total: 100,
            bytes_total: 1000,
            counted: true,
            tx_objs,
            tx_bytes,
            ..Default::default()
        }
    }

    #[test]
    fn rate_and_eta_follow_the_reports() {
        let t0 = Instant::now();
        let mut t = Tracker::new(7, ids(2), vec![], t0, 1000);
        assert!(t.record(report(0, Stage::Traverse, 0, 0), t0));
        assert!(t.record(report(1, Stage::Traverse, 0, 0), t0));
        let st = t.status(&HashSet::new());
        assert_eq!((st.bytes_total, st.objs_total), (2000, 200));
        assert_eq!(st.eta_secs, None, "no rate yet");
        let t1 = t0 + Duration::from_secs(2);
        assert!(t.record(report(0, Stage::Traverse, 400, 40), t1));
        let st = t.status(&HashSet::new());
        assert_eq!(st.rate_bytes_per_sec, 200.0);
        // 1600 bytes left at 200 B/s.
        assert_eq!(st.eta_secs, Some(8));
        assert_eq!(st.state, RebState::Running);
        assert_eq!(st.stage, Stage::Traverse);
    }

    #[test]
    fn stale_reports_never_replace_newer_ones() {
        let t0 = Instant::now();
        let mut t = Tracker::new(7, ids(1), vec![], t0, 0);
        assert!(t.record(report(0, Stage::PostTraverse, 500, 5), t0));
        assert!(
            !t.record(report(0, Stage::Traverse, 900, 9), t0),
            "earlier stage"
        );
        assert!(
            !t.record(report(0, Stage::PostTraverse, 100, 1), t0),
            "smaller counters"
        );
        let mut other_gen = report(0, Stage::Done, 0, 0);
        other_gen.generation = 6;
        assert!(!t.record(other_gen, t0), "another generation");
        let mut stranger = report(0, Stage::Done, 0, 0);
        stranger.id = "nobody".into();
        assert!(!t.record(stranger, t0), "not a participant");
        assert_eq!(t.status(&HashSet::new()).bytes_moved, 500);
    }

    #[test]
    fn completion_waits_for_every_participant_and_aborted_do_not_hold_the_stage() {
        let t0 = Instant::now();
        let mut t = Tracker::new(7, ids(3), vec![], t0, 0);
        t.record(report(0, Stage::Done, 0, 0), t0);
        t.record(report(1, Stage::Aborted, 0, 0), t0);
        assert_eq!(t.min_stage(), Stage::Init, "t2 has not reported");
        t.record(report(2, Stage::PostTraverse, 0, 0), t0);
        assert_eq!(t.min_stage(), Stage::PostTraverse);
        assert!(!t.all_ended());
        // t1 leaves the map: it no longer holds the generation up.
        assert!(t.retain_participants(|id| id.0 != "t1"));
        t.record(report(2, Stage::Done, 0, 0), t0);
        assert!(t.all_ended());
        assert!(t.clean());
        t.finish(t0 + Duration::from_secs(4), 4);
        let st = t.status(&HashSet::new());
        assert_eq!(st.state, RebState::Finished);
        assert_eq!(st.eta_secs, Some(0));
    }

    #[test]
    fn a_participant_that_aborted_ends_the_generation_unclean_once_the_others_are_done() {
        let t0 = Instant::now();
        let mut t = Tracker::new(7, ids(2), vec![], t0, 0);
        t.record(report(0, Stage::Traverse, 0, 0), t0);
        t.record(report(1, Stage::Aborted, 0, 0), t0);
        assert!(!t.all_ended(), "t0 still sends");
        assert_eq!(
            t.min_stage(),
            Stage::Traverse,
            "the aborted one holds nothing"
        );
        let st = t.status(&HashSet::new());
        assert!(
            st.blocked_by
                .iter()
                .any(|b| b == "t[t1] gave up its part: aborted; retried once the others finish"),
            "{st:?}"
        );
        // Its later reports (a restart) are stale: it has given up on this generation.
        assert!(!t.record(report(1, Stage::Traverse, 0, 0), t0));
        t.record(report(0, Stage::Done, 0, 0), t0);
        assert!(t.all_ended());
        assert!(!t.clean());
        t.finish(t0, 0);
        // Why it gave up is still shown once the generation has ended.
        assert_eq!(
            t.status(&HashSet::new()).blocked_by,
            vec!["t[t1] gave up its part: aborted".to_string()]
        );
        // Counted as an error although its counters had none: the record says it failed.
        assert_eq!(t.errors(), 1);
        assert_eq!(t.history_record("x").errors, 1);
    }

    #[test]
    fn offline_and_blocked_targets_are_named() {
        let t0 = Instant::now();
        let mut t = Tracker::new(7, ids(2), vec![], t0, 0);
        let mut r = report(0, Stage::Traverse, 0, 0);
        r.blocked_by = Some("disk full".into());
        t.record(r, t0);
        let st = t.status(&[NodeId("t1".into())].into());
        assert_eq!(
            st.blocked_by,
            vec![
                "t[t0]: disk full".to_string(),
                "t[t1] is offline (keepalive lost)".to_string()
            ]
        );
    }

    #[test]
    fn nothing_to_move_has_a_zero_eta_once_counted() {
        let t0 = Instant::now();
        let mut t = Tracker::new(7, ids(1), vec![], t0, 0);
        let mut r = report(0, Stage::Traverse, 0, 0);
        (r.objs_total, r.bytes_total) = (0, 0);
        t.record(r, t0);
        assert_eq!(t.status(&HashSet::new()).eta_secs, Some(0));
    }
}
