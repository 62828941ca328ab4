//! The nemesis proper: injects faults at random (from a shuffled deck, so that a short run
//! still draws every kind), heals each disturbed node when its time comes, drives the cluster
//! back to quiet for the checks, and looks at every node the cluster finalises.
//!
//! Healing is one idempotent step per node per tick (resume, reconnect, free the disk,
//! restart, re-add after a decommission, stop maintenance), repeated until the node is healthy,
//! so that it converges from whatever mix of faults and half-finished operations it meets.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::checker::Violation;
use super::cluster::{ClusterStatus, NodeState, NodeStatus, Sut};
use super::history::{OpKind, Outcome, Recorder, short};
use super::relay::Mode;
use super::workload::Counts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// `start-maintenance` of a target or a non-primary proxy (sometimes two targets at once).
    Maintenance,
    /// `shutdown`: the node exits after its rebalance; restarted and taken out of maintenance.
    Shutdown,
    /// `decommission` (with or without `--rm-user-data`); the node is re-added as a fresh one.
    Decommission,
    /// A lifecycle operation naming the primary: must be refused.
    OnPrimary,
    /// `kill -9` of a node other than the primary, restarted later.
    Kill9,
    /// `kill -9` of the primary: an election.
    Kill9Primary,
    /// `kill -9` of the primary while the proxy that should succeed it is down too (killed or
    /// stopped): the election must still end once that proxy is back.
    ElectionCandidateDown,
    /// SIGSTOP, SIGCONT later.
    Pause,
    /// Two nodes cut from each other both ways.
    PartitionBoth,
    /// Two nodes cut one way only (A cannot reach B, B still reaches A).
    PartitionOneWay,
    /// One node (the primary included) cut from every other node; clients still reach it.
    Isolate,
    /// Every object write on one target fails with "no space".
    DiskFull,
}

pub const ALL: [Fault; 12] = [
    Fault::Maintenance,
    Fault::Shutdown,
    Fault::Decommission,
    Fault::OnPrimary,
    Fault::Kill9,
    Fault::Kill9Primary,
    Fault::ElectionCandidateDown,
    Fault::Pause,
    Fault::PartitionBoth,
    Fault::PartitionOneWay,
    Fault::Isolate,
    Fault::DiskFull,
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Maintenance => "start-maintenance",
            Fault::Shutdown => "shutdown",
            Fault::Decommission => "decommission",
            Fault::OnPrimary => "lifecycle-on-primary",
            Fault::Kill9 => "kill-9",
            Fault::Kill9Primary => "kill-9-primary",
            Fault::ElectionCandidateDown => "kill-9-primary-and-candidate",
            Fault::Pause => "sigstop",
            Fault::PartitionBoth => "partition-both-ways",
            Fault::PartitionOneWay => "partition-one-way",
            Fault::Isolate => "isolate-node",
            Fault::DiskFull => "disk-full",
        }
    }
}

/// At most this many targets and proxies disturbed at once: the cluster keeps 3 of 5 targets
/// and 2 of 3 proxies (a majority for elections) working.
const MAX_TARGETS_OUT: usize = 2;
const MAX_PROXIES_OUT: usize = 1;

pub struct Nemesis {
    pub sut: Sut,
    pub rec: Recorder,
    rng: StdRng,
    pub seed: u64,
    /// Disturbed nodes and when to start healing them.
    heal_at: BTreeMap<String, Instant>,
    /// Earliest next lifecycle command per node while healing (busy refusals back off).
    next_try: BTreeMap<String, Instant>,
    deck: VecDeque<Fault>,
    /// Faults injected, by kind.
    pub faults: Counts,
    /// Lifecycle commands by operation and result (accepted, busy, error).
    pub lifecycle: Counts,
    pub violations: Vec<Violation>,
    seen: BTreeSet<String>,
    pub last_status: Option<ClusterStatus>,
    /// Nodes seen safe to power off (by name and map version), already scanned.
    scanned: BTreeSet<(String, u64)>,
}

impl Nemesis {
    pub fn new(sut: Sut, rec: Recorder, seed: u64) -> Self {
        Nemesis {
            sut,
            rec,
            rng: StdRng::seed_from_u64(seed),
            seed,
            heal_at: BTreeMap::new(),
            next_try: BTreeMap::new(),
            deck: VecDeque::new(),
            faults: Counts::default(),
            lifecycle: Counts::default(),
            violations: Vec::new(),
            seen: BTreeSet::new(),
            last_status: None,
            scanned: BTreeSet::new(),
        }
    }

    /// Records a violation once; prints it when new. Returns whether it was new.
    pub fn violation(&mut self, v: Violation) -> bool {
        if !self.seen.insert(v.id()) {
            return false;
        }
        // The first of a kind on a key in full; later ones there are usually the same fault
        // seen again (e.g. by every listing until a quiet point).
        let again = self
            .violations
            .iter()
            .any(|o| o.kind == v.kind && o.key == v.key);
        if again {
            eprintln!("VIOLATION {} on {:?} again: {}", v.kind, v.key, v.detail);
        } else {
            let text = super::checker::render(&v, &self.rec.ops(), &self.rec.events(), self.seed);
            eprintln!("{text}");
        }
        self.rec
            .event(format!("VIOLATION {} on {:?}", v.kind, v.key));
        self.violations.push(v);
        true
    }

    pub fn rand_range(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(self.rng.random_range(lo_ms..=hi_ms))
    }

    fn out(&self, proxies: bool) -> usize {
        self.heal_at
            .keys()
            .filter(|n| self.sut.is_target(n) != proxies)
            .count()
    }

    fn primary_name(&self) -> Option<String> {
        let st = self.last_status.as_ref()?;
        let p = st.proxies.iter().find(|p| p.id == st.primary)?;
        self.sut.name_of_addr(&p.addr)
    }

    fn id_of(&self, name: &str) -> Option<String> {
        let st = self.last_status.as_ref()?;
        self.sut.row(st, name).map(|r| r.id.clone())
    }

    /// Undisturbed nodes of one role (the primary excluded unless asked for).
    fn eligible(&self, targets: bool, with_primary: bool) -> Vec<String> {
        let primary = self.primary_name();
        let pool = if targets {
            &self.sut.targets
        } else {
            &self.sut.proxies
        };
        pool.iter()
            .filter(|n| !self.heal_at.contains_key(*n))
            .filter(|n| with_primary || Some(*n) != primary.as_ref())
            .cloned()
            .collect()
    }

    fn budget(&self, name: &str) -> bool {
        if self.sut.is_target(name) {
            self.out(false) < MAX_TARGETS_OUT
        } else {
            self.out(true) < MAX_PROXIES_OUT
        }
    }

    fn pick(&mut self, v: &[String]) -> Option<String> {
        if v.is_empty() {
            None
        } else {
            Some(v[self.rng.random_range(0..v.len())].clone())
        }
    }

    /// A node of either role that may be disturbed now: targets more often (they hold data).
    fn pick_node(&mut self, with_primary: bool) -> Option<String> {
        let proxy_first = self.rng.random_bool(0.3);
        for proxies in [proxy_first, !proxy_first] {
            let v: Vec<String> = self
                .eligible(!proxies, with_primary)
                .into_iter()
                .filter(|n| self.budget(n))
                .collect();
            if let Some(n) = self.pick(&v) {
                return Some(n);
            }
        }
        None
    }

    /// A victim for a fault that can stack: sometimes a node already disturbed (a target in
    /// maintenance mid-rebalance killed, a stopped node cut off…), which costs no budget and
    /// makes the combinations the cluster finds hardest; otherwise an undisturbed node.
    fn pick_victim(&mut self, with_primary: bool, targets_only: bool) -> Option<String> {
        if self.rng.random_bool(0.35) {
            let primary = self.primary_name();
            let v: Vec<String> = self
                .heal_at
                .keys()
                .filter(|n| !targets_only || self.sut.is_target(n))
                .filter(|n| with_primary || Some(*n) != primary.as_ref())
                .filter(|n| !self.sut.paused.contains(*n))
                .cloned()
                .collect::<Vec<_>>()
                .into_iter()
                .filter(|n| self.sut.running(n))
                .collect();
            if let Some(n) = self.pick(&v) {
                return Some(n);
            }
        }
        if targets_only {
            let v: Vec<String> = self
                .eligible(true, false)
                .into_iter()
                .filter(|n| self.budget(n))
                .collect();
            return self.pick(&v);
        }
        self.pick_node(with_primary)
    }

    fn disturb(&mut self, name: &str, heal_in: Duration) {
        let at = Instant::now() + heal_in;
        let e = self.heal_at.entry(name.to_string()).or_insert(at);
        *e = (*e).max(at);
    }

    // -----------------------------------------------------------------------------------------
    // Injection
    // -----------------------------------------------------------------------------------------

    /// Draws the next fault from the deck and injects it if the cluster can take it now; a
    /// fault that cannot be injected goes back into the deck for later.
    pub async fn inject(&mut self) {
        if self.deck.is_empty() {
            let mut all = ALL.to_vec();
            all.shuffle(&mut self.rng);
            self.deck.extend(all);
        }
        let f = self.deck.pop_front().expect("refilled");
        if self.try_inject(f).await {
            self.faults.add(f.name());
        } else {
            let at = self.rng.random_range(0..=self.deck.len());
            self.deck.insert(at, f);
        }
    }

    async fn try_inject(&mut self, f: Fault) -> bool {
        match f {
            Fault::Maintenance | Fault::Shutdown | Fault::Decommission => {
                self.lifecycle_fault(f).await
            }
            Fault::OnPrimary => {
                let Some(p) = self.primary_name() else {
                    return false;
                };
                let Some(id) = self.id_of(&p) else {
                    return false;
                };
                let ops = ["start-maintenance", "shutdown", "decommission"];
                let op = ops[self.rng.random_range(0..ops.len())];
                let via =
                    self.sut.proxies[self.rng.random_range(0..self.sut.proxies.len())].clone();
                let code = self
                    .membership(&via, op, std::slice::from_ref(&id), &[])
                    .await;
                if code == Some(0) {
                    self.rec
                        .event(format!("{op} of the primary {p} p[{id}] was ACCEPTED"));
                }
                // Whatever happened, look at the node and heal it if need be.
                self.disturb(&p, Duration::ZERO);
                true
            }
            Fault::Kill9 | Fault::Kill9Primary => {
                let victim = if f == Fault::Kill9Primary {
                    match self.primary_name() {
                        Some(p) if self.out(true) == 0 && !self.heal_at.contains_key(&p) => p,
                        _ => return false,
                    }
                } else {
                    match self.pick_victim(false, false) {
                        Some(n) => n,
                        None => return false,
                    }
                };
                let _ = self.sut.tc.lc.kill9(&victim);
                self.sut.paused.remove(&victim);
                let down = if self.rng.random_bool(0.15) {
                    self.rand_range(8_000, 15_000)
                } else {
                    self.rand_range(1_000, 6_000)
                };
                self.rec
                    .event(format!("kill -9 {victim}; restart in {down:?}"));
                self.disturb(&victim, down);
                true
            }
            Fault::ElectionCandidateDown => {
                let Some(p) = self.primary_name() else {
                    return false;
                };
                if self.out(true) > 0 || self.heal_at.contains_key(&p) {
                    return false;
                }
                let Some(c) = self.sut.top_candidate().await.filter(|c| *c != p) else {
                    return false;
                };
                let how = if self.rng.random_bool(0.5) {
                    let _ = self.sut.tc.lc.kill9(&c);
                    "kill -9"
                } else if self.sut.tc.lc.pause(&c).is_ok() {
                    self.sut.paused.insert(c.clone());
                    "SIGSTOP"
                } else {
                    return false;
                };
                let _ = self.sut.tc.lc.kill9(&p);
                let (dc, dp) = (self.rand_range(2_000, 8_000), self.rand_range(1_000, 6_000));
                self.rec.event(format!(
                    "{how} the top candidate {c} (back in {dc:?}), then kill -9 the primary {p} (restart in {dp:?})"
                ));
                self.disturb(&c, dc);
                self.disturb(&p, dp);
                true
            }
            Fault::Pause => {
                let with_primary = self.rng.random_bool(0.3);
                let Some(n) = self.pick_victim(with_primary, false) else {
                    return false;
                };
                if !self.sut.running(&n) || self.sut.tc.lc.pause(&n).is_err() {
                    return false;
                }
                self.sut.paused.insert(n.clone());
                let d = self.rand_range(1_000, 6_000);
                self.rec.event(format!("SIGSTOP {n} for {d:?}"));
                self.disturb(&n, d);
                true
            }
            Fault::PartitionBoth | Fault::PartitionOneWay => {
                let with_primary = self.rng.random_bool(0.4);
                let Some(a) = self.pick_victim(with_primary, false) else {
                    return false;
                };
                let was = self.heal_at.get(&a).copied();
                self.disturb(&a, Duration::from_secs(3600));
                let b = self.pick_node(with_primary).filter(|b| *b != a);
                match was {
                    Some(t) => {
                        self.heal_at.insert(a.clone(), t);
                    }
                    None => {
                        self.heal_at.remove(&a);
                    }
                }
                let Some(b) = b else {
                    return false;
                };
                let mode = if self.rng.random_bool(0.5) {
                    Mode::Refuse
                } else {
                    Mode::Blackhole
                };
                let d = self.rand_range(2_000, 8_000);
                self.sut.mesh.set(&a, &b, mode);
                if f == Fault::PartitionBoth {
                    self.sut.mesh.set(&b, &a, mode);
                    self.rec
                        .event(format!("partition {a} <-> {b} ({mode:?}) for {d:?}"));
                } else {
                    self.rec
                        .event(format!("partition {a} -> {b} one way ({mode:?}) for {d:?}"));
                }
                self.disturb(&a, d);
                self.disturb(&b, d);
                true
            }
            Fault::Isolate => {
                let with_primary = self.rng.random_bool(0.4);
                let Some(n) = self.pick_victim(with_primary, false) else {
                    return false;
                };
                let mode = if self.rng.random_bool(0.5) {
                    Mode::Refuse
                } else {
                    Mode::Blackhole
                };
                let d = self.rand_range(2_000, 8_000);
                self.sut.mesh.isolate(&n, mode);
                self.rec
                    .event(format!("isolate {n} from every node ({mode:?}) for {d:?}"));
                self.disturb(&n, d);
                true
            }
            Fault::DiskFull => {
                let Some(t) = self.pick_victim(false, true) else {
                    return false;
                };
                self.sut.set_disk_full(&t, true);
                let d = self.rand_range(3_000, 10_000);
                self.rec.event(format!("disk full on {t} for {d:?}"));
                self.disturb(&t, d);
                true
            }
        }
    }

    async fn lifecycle_fault(&mut self, f: Fault) -> bool {
        let Some(first) = self.pick_node(false) else {
            return false;
        };
        let mut nodes = vec![first.clone()];
        // Sometimes a batch: two targets, one map change, one rebalance.
        if f == Fault::Maintenance && self.sut.is_target(&first) && self.rng.random_bool(0.25) {
            self.disturb(&first, Duration::from_secs(3600));
            let more: Vec<String> = self
                .eligible(true, false)
                .into_iter()
                .filter(|n| self.budget(n))
                .collect();
            self.heal_at.remove(&first);
            if let Some(second) = self.pick(&more) {
                nodes.push(second);
            }
        }
        let mut ids = Vec::new();
        for n in &nodes {
            match self.id_of(n) {
                Some(id) => ids.push(id),
                None => return false,
            }
        }
        let (op, extra, heal_in): (&str, Vec<&str>, Duration) = match f {
            // Often undone while its rebalance still runs (interrupted generations).
            Fault::Maintenance => ("start-maintenance", vec![], self.rand_range(1_000, 12_000)),
            Fault::Shutdown => ("shutdown", vec![], self.rand_range(2_000, 15_000)),
            _ => {
                let rm = self.rng.random_bool(0.5);
                (
                    "decommission",
                    if rm { vec!["--rm-user-data"] } else { vec![] },
                    Duration::ZERO,
                )
            }
        };
        let via = self.sut.proxies[self.rng.random_range(0..self.sut.proxies.len())].clone();
        let code = self.membership(&via, op, &ids, &extra).await;
        // A command that failed or timed out may still have been applied: have the nodes
        // checked (healed if need be) at once rather than left out of the budget.
        for n in &nodes {
            self.disturb(
                n,
                if code == Some(0) {
                    heal_in
                } else {
                    Duration::ZERO
                },
            );
        }
        code == Some(0)
    }

    /// `nodectl cluster add-remove-nodes OP IDS --yes --json` through proxy `via`; records
    /// the command and its result; returns the exit code.
    async fn membership(
        &mut self,
        via: &str,
        op: &str,
        ids: &[String],
        extra: &[&str],
    ) -> Option<i32> {
        let mut args = vec!["cluster", "add-remove-nodes", op];
        args.extend(ids.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args.push("--yes");
        let (code, out, err) = self.sut.nodectl(via, &args).await;
        let result = match code {
            Some(0) => "accepted",
            Some(3) => "refused-busy",
            Some(4) => "timeout",
            Some(_) => "error",
            None => "no-exit",
        };
        self.lifecycle.add(&format!("{op} {result}"));
        // With --json, errors are a JSON document on stdout; warnings go to stderr.
        let said = if code == Some(0) || err.trim().is_empty() {
            super::history::one_line(out.trim(), 200)
        } else {
            super::history::one_line(err.trim(), 200)
        };
        self.rec.event(format!(
            "nodectl (via {via}) {op} {} {} -> exit {code:?}: {said}",
            ids.join(" "),
            extra.join(" ")
        ));
        code
    }

    // -----------------------------------------------------------------------------------------
    // Observation and healing
    // -----------------------------------------------------------------------------------------

    /// One round: a fresh status, a look at every node the cluster calls safe to power off,
    /// and one healing step for every node whose time has come.
    pub async fn tick(&mut self) {
        let st = self.sut.status().await;
        if let Some(st) = &st {
            let safe: Vec<String> = st
                .targets
                .iter()
                .filter(|t| t.safe_to_power_off)
                .filter_map(|t| self.sut.name_of_addr(&t.addr))
                .collect();
            for n in safe {
                if self.scanned.insert((n.clone(), st.smap_version)) {
                    self.scan_finalised(&n, "reported safe to power off").await;
                }
            }
        }
        if st.is_some() {
            self.last_status = st;
            // A command that timed out may still be applied later: keep the model in step.
            self.track_unhealthy(Duration::from_secs(5));
        }
        let now = Instant::now();
        let due: Vec<String> = self
            .heal_at
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for n in due {
            self.heal_step(&n).await;
        }
    }

    /// Is this node healthy as far as the last status and our own knowledge go?
    fn healthy(&mut self, name: &str) -> bool {
        if !self.sut.running(name)
            || self.sut.paused.contains(name)
            || self.sut.mesh.touches(name)
            || (self.sut.is_target(name) && self.sut.disk_full(name))
        {
            return false;
        }
        self.row(name).is_some_and(|r| {
            r.status == NodeState::Online
                && r.reachable
                && r.flags.iter().all(|f| f == "non_electable")
        })
    }

    /// Puts every unhealthy node that is not being healed on the healing list, due after
    /// `grace` (the time an operation in flight gets to show itself).
    pub fn track_unhealthy(&mut self, grace: Duration) {
        for n in self.sut.all() {
            if !self.heal_at.contains_key(&n) && !self.healthy(&n) {
                self.disturb(&n, grace);
            }
        }
    }

    fn row(&self, name: &str) -> Option<NodeStatus> {
        let st = self.last_status.as_ref()?;
        self.sut.row(st, name).cloned()
    }

    fn rebalance_running(&self) -> bool {
        self.last_status
            .as_ref()
            .and_then(|s| s.rebalance.as_ref())
            .is_some_and(|r| r.is_running())
    }

    fn may_try(&mut self, name: &str, backoff: Duration) -> bool {
        let now = Instant::now();
        if self.next_try.get(name).is_some_and(|t| *t > now) {
            return false;
        }
        self.next_try.insert(name.to_string(), now + backoff);
        true
    }

    /// One idempotent step toward a healthy node.
    async fn heal_step(&mut self, name: &str) {
        if self.sut.paused.remove(name) {
            let _ = self.sut.tc.lc.resume(name);
            self.rec.event(format!("SIGCONT {name}"));
        }
        if self.sut.mesh.touches(name) {
            self.sut.mesh.isolate(name, Mode::Pass);
            self.rec.event(format!("heal every link of {name}"));
        }
        if self.sut.is_target(name) && self.sut.disk_full(name) {
            self.sut.set_disk_full(name, false);
            self.rec.event(format!("disk of {name} has space again"));
        }
        let row = self.row(name);
        if !self.sut.running(name) {
            self.point_joins_away_from(name);
            if self.sut.wiped(name) {
                self.scan_finalised(name, "decommissioned").await;
                self.sut.wipe(name);
                let r = self.sut.tc.lc.start(name);
                self.rec.event(format!(
                    "{name} finished its decommission: re-added as a fresh node ({r:?})"
                ));
            } else {
                if row.as_ref().is_some_and(|r| r.safe_to_power_off) {
                    self.scan_finalised(name, "shut down").await;
                }
                let r = self.sut.tc.lc.start(name);
                self.rec.event(format!("restart {name} ({r:?})"));
            }
            return;
        }
        let Some(row) = row else {
            // Running but not in the map (yet): joining.
            return;
        };
        let flags = &row.flags;
        if flags.iter().any(|f| f == "decomm") {
            // The point of no return: wait; repeat it if its rebalance ended without finishing
            // it (an operator's move after errors).
            if !self.rebalance_running() && self.may_try(name, Duration::from_secs(5)) {
                let via = self.any_proxy();
                self.membership(&via, "decommission", std::slice::from_ref(&row.id), &[])
                    .await;
            }
            return;
        }
        if flags.iter().any(|f| f == "maint") {
            if row.reachable && self.may_try(name, Duration::from_secs(2)) {
                let via = self.any_proxy();
                self.membership(&via, "stop-maintenance", std::slice::from_ref(&row.id), &[])
                    .await;
            }
            return;
        }
        if row.status == NodeState::Online && row.reachable {
            self.heal_at.remove(name);
            self.next_try.remove(name);
        }
    }

    /// A (re)started node joins through `--join` (the harness' endpoint): make that the
    /// primary, or another proxy, never the node itself (a fresh node asking itself hears "not
    /// joined yet" and gives up).
    fn point_joins_away_from(&mut self, name: &str) {
        let me = self.sut.addr(name);
        let primary = self
            .primary_name()
            .map(|p| self.sut.addr(&p))
            .filter(|a| *a != me);
        let other = || {
            self.sut
                .proxies
                .iter()
                .map(|p| self.sut.addr(p))
                .find(|a| *a != me)
        };
        if let Some(a) = primary.or_else(other) {
            self.sut.tc.lc.endpoint = a;
        }
    }

    fn any_proxy(&mut self) -> String {
        let live: Vec<String> = self
            .sut
            .proxies
            .iter()
            .filter(|p| !self.heal_at.contains_key(*p))
            .cloned()
            .collect();
        let pool = if live.is_empty() {
            self.sut.proxies.clone()
        } else {
            live
        };
        pool[self.rng.random_range(0..pool.len())].clone()
    }

    /// Heal every node now (for a quiet point).
    pub fn heal_everything(&mut self) {
        let now = Instant::now();
        for n in self.sut.all() {
            self.heal_at.insert(n, now);
        }
        self.next_try.clear();
        self.sut.mesh.heal_all();
    }

    pub fn disturbed(&self) -> usize {
        self.heal_at.len()
    }

    /// Is the cluster quiet: every node running, in the map, active and reachable, no
    /// rebalance, every proxy agreeing on the primary and the map version?
    pub async fn quiet(&mut self) -> Result<u64, String> {
        if !self.heal_at.is_empty() {
            return Err(format!(
                "still healing {:?}",
                self.heal_at.keys().collect::<Vec<_>>()
            ));
        }
        let Some(st) = self.last_status.clone() else {
            return Err("no cluster status".into());
        };
        for n in self.sut.all() {
            match self.sut.row(&st, &n) {
                Some(r)
                    if r.status == NodeState::Online
                        && r.reachable
                        && r.flags.iter().all(|f| f == "non_electable") => {}
                Some(r) => {
                    return Err(format!(
                        "{n}: {} flags {:?} reachable {}",
                        r.status, r.flags, r.reachable
                    ));
                }
                None => return Err(format!("{n} is not in the map")),
            }
        }
        if let Some(r) = st.rebalance.as_ref().filter(|r| r.is_running()) {
            return Err(format!("rebalance {} {} is running", r.id, r.stage));
        }
        for (p, m) in self.sut.proxy_maps().await {
            match m {
                Some(m) if m.primary.0 == st.primary && m.version == st.smap_version => {}
                Some(m) => {
                    return Err(format!(
                        "{p} sees primary {} v{}, the primary says {} v{}",
                        m.primary.0, m.version, st.primary, st.smap_version
                    ));
                }
                None => return Err(format!("{p} does not answer")),
            }
        }
        Ok(st.smap_version)
    }

    // -----------------------------------------------------------------------------------------
    // Finalised nodes
    // -----------------------------------------------------------------------------------------

    /// A node the cluster finalised (safe to power off, shut down, decommissioned) must not
    /// hold the only copy of an acknowledged object: every object file on it must have a copy
    /// as new or newer on an active target, or be of a write that was not acknowledged or was
    /// definitely replaced since.
    async fn scan_finalised(&mut self, name: &str, why: &str) {
        let mine = self.sut.files(&[name.to_string()]);
        if mine.is_empty() {
            return;
        }
        let Some(st) = self.sut.status().await else {
            return;
        };
        // Still finalised? (a stop-maintenance may have raced this look.)
        if why == "reported safe to power off"
            && !self.sut.row(&st, name).is_some_and(|r| r.safe_to_power_off)
        {
            return;
        }
        let active: Vec<String> = st
            .targets
            .iter()
            .filter(|t| !t.flags.iter().any(|f| f == "maint" || f == "decomm"))
            .filter_map(|t| self.sut.name_of_addr(&t.addr))
            .filter(|n| n != name)
            .collect();
        let others = self.sut.files(&active);
        let ops = self.rec.ops();
        let now = self.rec.now();
        let row = self.sut.row(&st, name).cloned();
        // (key, checksum, put op, acknowledged at, newest version elsewhere)
        let mut only: Vec<(String, String, usize, u64, Option<u64>)> = Vec::new();
        for (key, copies) in mine {
            for f in copies {
                let newest = others
                    .get(&key)
                    .and_then(|v| v.iter().map(|c| c.version).max());
                if newest.is_some_and(|v| v >= f.version) {
                    continue;
                }
                let Some(put) = ops.iter().find(|o| {
                    matches!(&o.kind, OpKind::Put { sum, .. } if *sum == f.checksum) && o.key == key
                }) else {
                    continue;
                };
                let first_seen = ops
                    .iter()
                    .filter(|o| o.key == key && o.outcome == Outcome::Value(f.checksum.clone()))
                    .filter_map(|o| o.resp)
                    .min();
                let acked_at = match (&put.outcome, put.resp) {
                    (Outcome::Ok, Some(t)) => t,
                    _ => match first_seen {
                        Some(t) => t,
                        None => continue,
                    },
                };
                // Definitely replaced since (an acknowledged write that began after it)?
                let replaced = ops.iter().any(|o| {
                    o.key == key
                        && o.is_write()
                        && o.inv > acked_at
                        && o.known_resp() < now
                        && o.id != put.id
                });
                if !replaced {
                    only.push((key.clone(), f.checksum.clone(), put.id, acked_at, newest));
                }
            }
        }
        if only.is_empty() {
            return;
        }
        let state = row
            .as_ref()
            .map(|r| format!("status {} flags {:?}", r.status, r.flags))
            .unwrap_or_else(|| "not in the map".into());
        let (key, sum, op, at, newest) = only[0].clone();
        let more: Vec<&str> = only[1..].iter().take(10).map(|o| o.0.as_str()).collect();
        self.violation(Violation {
            kind: "wrongly-finalised".into(),
            key: key.clone(),
            detail: format!(
                "{name} {why} ({state}) while holding the only copy of {} acknowledged object(s): {key} #{} (op{op}, acknowledged at {}; newest copy on an active target: {}){}",
                only.len(),
                short(&sum),
                super::history::fmt_t(at),
                newest
                    .map(|v| format!("an older version {v}"))
                    .unwrap_or_else(|| "none".into()),
                if more.is_empty() {
                    String::new()
                } else {
                    format!("; also {}", more.join(", "))
                }
            ),
            ops: only.iter().take(3).map(|o| o.2).collect(),
            window: (ops[op].inv, now),
        });
    }
}
