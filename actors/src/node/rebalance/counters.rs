//! Live counters of one generation on one target: written by its joggers and the receive path,
//! read by its reporter (Garage's worker status model: stage, counters, errors, blocked_by).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use crate::types::status::{Stage, TargetRebStatus};

pub struct Counters {
    pub generation: u64,
    stage: AtomicU8,
    pub objs_total: AtomicU64,
    pub bytes_total: AtomicU64,
    /// Joggers whose counting walk finished (all of them: `objs_total` is final).
    pub joggers_counted: AtomicU64,
    pub tx_objs: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_objs: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub local_objs: AtomicU64,
    pub local_bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Unix seconds.
    pub started: u64,
    /// The throttle's schedule: (the limit it was made for, when the next send may start).
    pace: Mutex<(u64, Instant)>,
    finished: AtomicU64,
    blocked_by: Mutex<Option<String>>,
    /// Holding at `rebalance.paused`.
    paused: std::sync::atomic::AtomicBool,
    /// Joggers (one per mountpath).
    pub mountpaths: u64,
    /// Woken on every stage change: the reporter tells the primary at once.
    pub stage_changed: tokio::sync::Notify,
}

const STAGES: [Stage; 6] = [
    Stage::Init,
    Stage::Traverse,
    Stage::PostTraverse,
    Stage::Fin,
    Stage::Done,
    Stage::Aborted,
];

impl Counters {
    pub fn new(generation: u64, mountpaths: usize) -> Self {
        Counters {
            generation,
            stage: AtomicU8::new(0),
            objs_total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            joggers_counted: AtomicU64::new(0),
            tx_objs: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            rx_objs: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            local_objs: AtomicU64::new(0),
            local_bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            started: crate::types::unix_secs(),
            pace: Mutex::new((0, Instant::now())),
            finished: AtomicU64::new(0),
            blocked_by: Mutex::new(None),
            paused: Default::default(),
            mountpaths: mountpaths as u64,
            stage_changed: tokio::sync::Notify::new(),
        }
    }

    pub fn stage(&self) -> Stage {
        STAGES[self.stage.load(Ordering::Relaxed) as usize % STAGES.len()]
    }

    pub fn set_stage(&self, s: Stage) {
        let i = STAGES.iter().position(|x| *x == s).unwrap_or(0);
        if self.stage.swap(i as u8, Ordering::Relaxed) != i as u8 {
            self.stage_changed.notify_one();
        }
        if matches!(s, Stage::Done | Stage::Aborted) {
            self.finished
                .store(crate::types::unix_secs(), Ordering::Relaxed);
        }
    }

    /// How long a send of `bytes` waits to keep this target under `limit` bytes/s (0: no
    /// limit). Each send books its share of time after the previous ones; a new limit starts a
    /// new schedule, so lowering the throttle mid-run slows sends from now on rather than
    /// making up for what was sent before.
    pub fn pace(&self, limit: u64, bytes: u64) -> std::time::Duration {
        if limit == 0 {
            return std::time::Duration::ZERO;
        }
        let now = Instant::now();
        let mut p = self.pace.lock().expect("poisoned");
        if p.0 != limit || p.1 < now {
            *p = (limit, now);
        }
        let start = p.1;
        p.1 = start + std::time::Duration::from_secs_f64(bytes as f64 / limit as f64);
        start - now
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    pub fn set_blocked(&self, why: Option<String>) {
        *self.blocked_by.lock().expect("poisoned") = why;
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Moves `counter` from `was` (what was added) to `now`, by the difference.
    pub fn correct(counter: &AtomicU64, was: u64, now: u64) {
        if now >= was {
            counter.fetch_add(now - was, Ordering::Relaxed);
        } else {
            counter.fetch_sub(was - now, Ordering::Relaxed);
        }
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self, id: &str) -> TargetRebStatus {
        let fin = self.finished.load(Ordering::Relaxed);
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TargetRebStatus {
            id: id.to_string(),
            generation: self.generation,
            stage: self.stage(),
            objs_total: l(&self.objs_total),
            bytes_total: l(&self.bytes_total),
            counted: l(&self.joggers_counted) >= self.mountpaths,
            tx_objs: l(&self.tx_objs),
            tx_bytes: l(&self.tx_bytes),
            rx_objs: l(&self.rx_objs),
            rx_bytes: l(&self.rx_bytes),
            local_objs: l(&self.local_objs),
            local_bytes: l(&self.local_bytes),
            errors: l(&self.errors),
            started: Some(self.started),
            finished: (fin > 0).then_some(fin),
            blocked_by: self.blocked_by.lock().expect("poisoned").clone(),
            paused: self.paused.load(Ordering::Relaxed),
        }
    }
}
