//! The per-key consistency check over the recorded history ("linearizability-lite").
//!
//! Each key is a register whose writes are puts (of unique content) and deletes (of "absent"),
//! starting absent. A write whose outcome is unknown (error, timeout) may take effect at any
//! time after its invocation. A write `w` is *definitely overwritten* by the time another write
//! that began after `w` completed has itself completed. A read (a GET, or a listing for every
//! key under its prefix) must return a value that was written before the read ended and was not
//! yet definitely overwritten when the read began: the last acknowledged value or one
//! concurrent with it. That one rule gives the three checks:
//!
//! - an absent read while an acknowledged put is definitely current: `lost-write`
//!   (an acknowledged write not readable until overwritten or deleted);
//! - the value of a put definitely overwritten by a later put: `stale-read`;
//! - the value of a put definitely deleted since: `resurrected` (a deleted object came back).
//!
//! A read also bounds when the write it observed took effect (no later than the read's end),
//! so a later read that goes back to an older value is caught as `stale-read` too (reads are
//! monotonic). Content nobody wrote is `unknown-value`, a value read before its put began is
//! `future-read`. A write that failed before it reached anything able to apply it (see
//! `cluster::not_applied`) is left out, as if never invoked.
//!
//! This is a necessary condition for linearizability per key, checked in O(n log n) per key;
//! it is not a full linearizability search, on purpose: it is cheap enough to run throughout.

use std::collections::{BTreeMap, HashMap};

use super::history::{Micros, NEVER, Op, OpKind, Outcome, fmt_t, short};

/// One broken rule, with what is needed to print a minimal history.
#[derive(Clone, Debug)]
pub struct Violation {
    /// Short stable name (`stale-read`, `misplaced`, …), used to count and group.
    pub kind: String,
    /// The object involved ("" when cluster-wide).
    pub key: String,
    pub detail: String,
    /// Operations that matter (printed highlighted with the key's history).
    pub ops: Vec<usize>,
    /// The time window of the key's history to print.
    pub window: (Micros, Micros),
}

impl Violation {
    /// Identity for de-duplication across repeated checks.
    pub fn id(&self) -> String {
        format!("{}|{}|{:?}|{}", self.kind, self.key, self.ops, self.detail)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Val {
    Absent,
    Sum(String),
}

struct Write {
    op: Option<usize>,
    val: Val,
    inv: Micros,
    /// Latest time by which it took effect: its acknowledgement, or the end of the first read
    /// that observed it; [`NEVER`] when unknown.
    resp: Micros,
}

struct Read {
    op: usize,
    inv: Micros,
    resp: Micros,
    val: Val,
    listing: bool,
}

/// Does `key` fall under a listing with `prefix`?
fn listed_by(prefix: &str, key: &str) -> bool {
    key.starts_with(prefix)
}

/// Checks every key of `keys` over `ops` (a snapshot; pending operations count as unknown).
pub fn check(ops: &[Op], keys: &[String]) -> Vec<Violation> {
    let mut per_key: HashMap<&str, Vec<&Op>> = HashMap::new();
    let mut lists: Vec<&Op> = Vec::new();
    for op in ops {
        match op.kind {
            OpKind::List { .. } => lists.push(op),
            _ => per_key.entry(op.key.as_str()).or_default().push(op),
        }
    }
    let mut out = Vec::new();
    for key in keys {
        let mine = per_key.get(key.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        check_key(key, mine, &lists, &mut out);
    }
    out
}

fn check_key(key: &str, ops: &[&Op], lists: &[&Op], out: &mut Vec<Violation>) {
    // The register starts absent, as if deleted at time zero.
    let mut writes = vec![Write {
        op: None,
        val: Val::Absent,
        inv: 0,
        resp: 0,
    }];
    let mut reads = Vec::new();
    for op in ops {
        match (&op.kind, &op.outcome) {
            // Failed before it could change anything: as if never invoked (its content can
            // then never be read, which makes a read of it an `unknown-value`).
            (_, Outcome::NotApplied(_)) => {}
            (OpKind::Put { sum, .. }, _) => writes.push(Write {
                op: Some(op.id),
                val: Val::Sum(sum.clone()),
                inv: op.inv,
                resp: op.known_resp(),
            }),
            (OpKind::Delete, o) => writes.push(Write {
                op: Some(op.id),
                val: Val::Absent,
                inv: op.inv,
                // "Does not exist" from a delete says the key is absent from then on, too.
                resp: match o {
                    Outcome::Ok | Outcome::Absent => op.resp.unwrap_or(NEVER),
                    _ => NEVER,
                },
            }),
            (OpKind::Get, Outcome::Value(s)) => reads.push(Read {
                op: op.id,
                inv: op.inv,
                resp: op.resp.unwrap_or(NEVER),
                val: Val::Sum(s.clone()),
                listing: false,
            }),
            (OpKind::Get, Outcome::Absent) => reads.push(Read {
                op: op.id,
                inv: op.inv,
                resp: op.resp.unwrap_or(NEVER),
                val: Val::Absent,
                listing: false,
            }),
            _ => {}
        }
    }
    for l in lists {
        let (OpKind::List { prefix }, Outcome::Listed(entries)) = (&l.kind, &l.outcome) else {
            continue;
        };
        if !listed_by(prefix, key) {
            continue;
        }
        let val = match entries.iter().find(|(n, _)| n == key) {
            Some((_, s)) => Val::Sum(s.clone()),
            None => Val::Absent,
        };
        reads.push(Read {
            op: l.id,
            inv: l.inv,
            resp: l.resp.unwrap_or(NEVER),
            val,
            listing: true,
        });
    }

    let by_sum: HashMap<String, usize> = writes
        .iter()
        .enumerate()
        .filter_map(|(i, w)| match &w.val {
            Val::Sum(s) => Some((s.clone(), i)),
            Val::Absent => None,
        })
        .collect();

    // A read bounds when the put it saw took effect.
    for r in &reads {
        if let Val::Sum(s) = &r.val
            && let Some(&i) = by_sum.get(s)
            && writes[i].inv < r.resp
        {
            writes[i].resp = writes[i].resp.min(r.resp);
        }
    }

    // When is each write definitely overwritten? The earliest completion among writes that
    // began after it completed: a suffix minimum over writes sorted by invocation.
    let mut order: Vec<usize> = (0..writes.len()).collect();
    order.sort_by_key(|&i| writes[i].inv);
    let invs: Vec<Micros> = order.iter().map(|&i| writes[i].inv).collect();
    let mut suf: Vec<(Micros, usize)> = vec![(NEVER, usize::MAX); order.len() + 1];
    for j in (0..order.len()).rev() {
        let w = &writes[order[j]];
        suf[j] = if w.resp < suf[j + 1].0 {
            (w.resp, order[j])
        } else {
            suf[j + 1]
        };
    }
    // (time, index of the overwriting write) per write.
    let overwritten: Vec<(Micros, usize)> = writes
        .iter()
        .map(|w| {
            if w.resp == NEVER {
                return (NEVER, usize::MAX);
            }
            let j = invs.partition_point(|&t| t <= w.resp);
            suf[j]
        })
        .collect();
    let absents: Vec<usize> = (0..writes.len())
        .filter(|&i| writes[i].val == Val::Absent)
        .collect();

    for r in &reads {
        let suffix = if r.listing { "-in-list" } else { "" };
        let candidates: Vec<usize> = match &r.val {
            Val::Sum(s) => match by_sum.get(s) {
                Some(&i) => vec![i],
                None => {
                    out.push(Violation {
                        kind: format!("unknown-value{suffix}"),
                        key: key.to_string(),
                        detail: format!("read returned #{} which no client wrote", short(s)),
                        ops: vec![r.op],
                        window: (r.inv.saturating_sub(5_000_000), r.resp),
                    });
                    continue;
                }
            },
            Val::Absent => absents.clone(),
        };
        let started: Vec<usize> = candidates
            .into_iter()
            .filter(|&i| writes[i].inv < r.resp)
            .collect();
        if started.is_empty() {
            let w = &writes[by_sum[match &r.val {
                Val::Sum(s) => s,
                Val::Absent => unreachable!("the initial state is always a candidate"),
            }]];
            out.push(Violation {
                kind: format!("future-read{suffix}"),
                key: key.to_string(),
                detail: format!(
                    "read ended at {} but the put of its value began at {}",
                    fmt_t(r.resp),
                    fmt_t(w.inv)
                ),
                ops: vec![r.op, w.op.unwrap_or(r.op)],
                window: (r.inv, w.inv),
            });
            continue;
        }
        if started.iter().any(|&i| overwritten[i].0 >= r.inv) {
            continue;
        }
        // Explain with the candidate that survived longest and what overwrote it.
        let &best = started
            .iter()
            .max_by_key(|&&i| overwritten[i].0)
            .expect("non-empty");
        let (when, by) = overwritten[best];
        let over = &writes[by];
        let kind = match (&r.val, &over.val) {
            (Val::Sum(_), Val::Absent) => "resurrected",
            (Val::Sum(_), Val::Sum(_)) => "stale-read",
            (Val::Absent, _) => "lost-write",
        };
        let what = match &r.val {
            Val::Sum(s) => format!("#{}", short(s)),
            Val::Absent => "not found".to_string(),
        };
        let over_desc = match (&over.val, over.op) {
            (Val::Absent, Some(o)) => format!("delete op{o}"),
            (Val::Sum(s), Some(o)) => format!("put op{o} of #{}", short(s)),
            _ => "the initial state".to_string(),
        };
        // And the write acknowledged last before the read began, which readers expect.
        let last = writes
            .iter()
            .filter(|w| w.resp < r.inv)
            .max_by_key(|w| w.resp)
            .expect("the initial state completes at zero");
        let last_desc = match (&last.val, last.op) {
            (Val::Absent, Some(o)) => format!("delete op{o}"),
            (Val::Sum(s), Some(o)) => format!("put op{o} of #{}", short(s)),
            _ => "the initial state".to_string(),
        };
        let mut ops = vec![r.op];
        ops.extend(writes[best].op);
        ops.extend(over.op);
        ops.extend(last.op);
        ops.sort_unstable();
        ops.dedup();
        out.push(Violation {
            kind: format!("{kind}{suffix}"),
            key: key.to_string(),
            detail: format!(
                "{} op{} (began {}) returned {what}, but {over_desc} had definitely replaced that by {}; last write acknowledged before the read: {last_desc} at {}",
                if r.listing { "LIST" } else { "GET" },
                r.op,
                fmt_t(r.inv),
                fmt_t(when),
                fmt_t(last.resp)
            ),
            ops,
            window: (writes[best].inv.min(over.inv).min(last.inv), r.resp),
        });
    }
}

/// The minimal history of a violation: the key's operations overlapping its window (the ones
/// that matter marked `>>`), and the nemesis events shortly before and during it.
pub fn render(v: &Violation, ops: &[Op], events: &[super::history::Event], seed: u64) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "VIOLATION {} on {:?} (seed {seed}): {}",
        v.kind, v.key, v.detail
    );
    let (from, to) = v.window;
    let overlaps = |o: &Op| o.inv <= to && o.resp.unwrap_or(NEVER) >= from;
    let mut lines: BTreeMap<usize, String> = BTreeMap::new();
    for o in ops {
        let relevant = if v.key.is_empty() {
            v.ops.contains(&o.id)
        } else {
            match &o.kind {
                OpKind::List { prefix } => v.ops.contains(&o.id) && listed_by(prefix, &v.key),
                _ => o.key == v.key,
            }
        };
        if relevant && (overlaps(o) || v.ops.contains(&o.id)) {
            let mark = if v.ops.contains(&o.id) { ">>" } else { "  " };
            lines.insert(o.id, format!("  {mark} {}", o.line()));
        }
    }
    // Keep it minimal: the marked operations and the nearest others, at most 30 lines.
    if lines.len() > 30 {
        let marked: Vec<usize> = v.ops.clone();
        let keep: Vec<usize> = lines
            .keys()
            .copied()
            .filter(|id| {
                marked.contains(id)
                    || marked
                        .iter()
                        .any(|m| (*id as i64 - *m as i64).unsigned_abs() < 200)
            })
            .collect();
        lines.retain(|id, _| keep.contains(id));
        while lines.len() > 30 {
            let drop = lines
                .keys()
                .copied()
                .find(|id| !marked.contains(id))
                .expect("more lines than marked ops");
            lines.remove(&drop);
        }
    }
    let _ = writeln!(s, "  operations on this key:");
    for l in lines.values() {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(
        s,
        "  nemesis events from {} to {}:",
        fmt_t(from.saturating_sub(5_000_000)),
        fmt_t(to)
    );
    let mut n = 0;
    for e in events
        .iter()
        .filter(|e| e.t + 5_000_000 >= from && e.t <= to)
    {
        n += 1;
        if n > 40 {
            let _ = writeln!(s, "     …");
            break;
        }
        let _ = writeln!(s, "     [{}] {}", fmt_t(e.t), e.text);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: usize, key: &str, kind: OpKind, inv: u64, resp: u64, outcome: Outcome) -> Op {
        Op {
            id,
            client: 0,
            key: key.into(),
            kind,
            via: "p".into(),
            inv,
            resp: Some(resp),
            outcome,
        }
    }
    fn put(id: usize, sum: &str, inv: u64, resp: u64, ok: bool) -> Op {
        op(
            id,
            "k",
            OpKind::Put {
                sum: sum.into(),
                size: 1,
            },
            inv,
            resp,
            if ok {
                Outcome::Ok
            } else {
                Outcome::Failed("timeout".into())
            },
        )
    }
    fn get(id: usize, inv: u64, resp: u64, v: Option<&str>) -> Op {
        op(
            id,
            "k",
            OpKind::Get,
            inv,
            resp,
            match v {
                Some(s) => Outcome::Value(s.into()),
                None => Outcome::Absent,
            },
        )
    }
    fn del(id: usize, inv: u64, resp: u64) -> Op {
        op(id, "k", OpKind::Delete, inv, resp, Outcome::Ok)
    }
    fn kinds(ops: &[Op]) -> Vec<String> {
        check(ops, &["k".to_string()])
            .into_iter()
            .map(|v| v.kind)
            .collect()
    }

    #[test]
    fn linearizable_histories_pass() {
        // Sequential, concurrent overwrite (either value), unknown write seen late.
        let h = vec![
            get(0, 1, 2, None),
            put(1, "a", 3, 4, true),
            get(2, 5, 6, Some("a")),
            put(3, "b", 7, 20, true),
            get(4, 8, 9, Some("a")),
            get(5, 10, 11, Some("b")),
            put(6, "c", 21, 22, false),
            get(7, 30, 31, Some("b")),
            get(8, 40, 41, Some("c")),
            del(9, 50, 51),
            get(10, 52, 53, None),
        ];
        assert!(kinds(&h).is_empty(), "{:?}", check(&h, &["k".into()]));
    }

    #[test]
    fn the_three_rules() {
        let lost = vec![put(0, "a", 1, 2, true), get(1, 3, 4, None)];
        assert_eq!(kinds(&lost), ["lost-write"]);
        let stale = vec![
            put(0, "a", 1, 2, true),
            put(1, "b", 3, 4, true),
            get(2, 5, 6, Some("a")),
        ];
        assert_eq!(kinds(&stale), ["stale-read"]);
        let back = vec![
            put(0, "a", 1, 2, true),
            del(1, 3, 4),
            get(2, 5, 6, Some("a")),
        ];
        assert_eq!(kinds(&back), ["resurrected"]);
        let unknown = vec![get(0, 1, 2, Some("zz"))];
        assert_eq!(kinds(&unknown), ["unknown-value"]);
        let future = vec![get(0, 1, 2, Some("a")), put(1, "a", 3, 4, true)];
        assert_eq!(kinds(&future), ["future-read"]);
    }

    #[test]
    fn reads_are_monotonic_and_bound_unknown_writes() {
        // b's put is concurrent with both reads, but once a read saw b, a is gone for good.
        let h = vec![
            put(0, "a", 1, 2, true),
            put(1, "b", 3, 100, true),
            get(2, 4, 5, Some("b")),
            get(3, 6, 7, Some("a")),
        ];
        assert_eq!(kinds(&h), ["stale-read"]);
        // A timed-out put seen by a read, then deleted: coming back is a resurrection.
        let h = vec![
            put(0, "a", 1, 2, false),
            get(1, 3, 4, Some("a")),
            del(2, 5, 6),
            get(3, 7, 8, Some("a")),
        ];
        assert_eq!(kinds(&h), ["resurrected"]);
    }

    #[test]
    fn writes_that_were_not_applied_are_left_out() {
        let mut p = put(1, "b", 3, 4, false);
        p.outcome = Outcome::NotApplied("connection refused".into());
        // The failed put does not excuse reading the old value, and its own value is unknown.
        let h = vec![put(0, "a", 1, 2, true), p, get(2, 5, 6, Some("a"))];
        assert!(kinds(&h).is_empty());
        let mut p = put(1, "b", 3, 4, false);
        p.outcome = Outcome::NotApplied("connection refused".into());
        let h = vec![put(0, "a", 1, 2, true), p, get(2, 5, 6, Some("b"))];
        assert_eq!(kinds(&h), ["unknown-value"]);
    }

    #[test]
    fn listings_observe_every_key_under_their_prefix() {
        let h = vec![
            put(0, "a", 1, 2, true),
            op(
                1,
                "",
                OpKind::List { prefix: "".into() },
                3,
                4,
                Outcome::Listed(vec![]),
            ),
        ];
        assert_eq!(kinds(&h), ["lost-write-in-list"]);
    }
}
