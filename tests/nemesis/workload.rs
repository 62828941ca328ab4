//! The clients: several tasks doing put (new and overwrite), get, delete and list on a small
//! shared key space, each operation through a random proxy, every one recorded in the history.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::RwLock;

use super::cluster::{Client, absent, not_applied};
use super::history::{OpKind, Outcome, Recorder};
use crate::common::{BUCKET, checksum};

/// Bound on one operation, whatever the client's own timeouts do (a put is a locate, a
/// request and a body).
pub const OP_TIMEOUT: Duration = Duration::from_secs(20);

/// Prefixes of the key space; listings use them.
pub const PREFIXES: [&str; 3] = ["a/", "b/", "c/"];

pub fn keys(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{}k{i:03}", PREFIXES[i % PREFIXES.len()]))
        .collect()
}

/// Counts of operations by kind and outcome, for the closing note.
#[derive(Default, Clone, Debug)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    pub fn add(&mut self, what: &str) {
        *self.0.entry(what.to_string()).or_default() += 1;
    }
}

/// What the workload shares with the nemesis.
#[derive(Clone)]
pub struct Control {
    /// Held for reading by every operation in flight; the nemesis takes it for writing to
    /// quiesce the clients (no operation in flight, none starting) at a check point.
    pub gate: Arc<RwLock<()>>,
    pub stop: Arc<AtomicBool>,
    pub counts: Arc<Mutex<Counts>>,
}

impl Control {
    pub fn new() -> Self {
        Control {
            gate: Arc::new(RwLock::new(())),
            stop: Arc::new(AtomicBool::new(false)),
            counts: Default::default(),
        }
    }
}

/// Unique content: the key, the client and its sequence number lead, random bytes follow.
pub fn content(rng: &mut StdRng, key: &str, client: usize, seq: u64, max: usize) -> Vec<u8> {
    let size = match rng.random_range(0..100) {
        0..70 => rng.random_range(16..1024),
        70..95 => rng.random_range(1024..16 << 10),
        _ => rng.random_range(16 << 10..=max.max(16 << 10)),
    }
    .min(max);
    let mut v = format!("{key}|c{client}|s{seq}|").into_bytes();
    let head = v.len();
    v.resize(size.max(head), 0);
    rng.fill(&mut v[head..]);
    v
}

/// One client until `ctl.stop`.
pub async fn client(
    id: usize,
    seed: u64,
    keys: Vec<String>,
    proxies: Vec<(String, Client)>,
    rec: Recorder,
    ctl: Control,
    max_size: usize,
) {
    let mut rng =
        StdRng::seed_from_u64(seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(id as u64 + 1)));
    let mut seq = 0u64;
    // A few hot keys get most of the traffic, so clients collide on them.
    let hot = keys.len().min(6);
    while !ctl.stop.load(Ordering::Relaxed) {
        let key = if rng.random_bool(0.5) {
            keys[rng.random_range(0..hot)].clone()
        } else {
            keys[rng.random_range(0..keys.len())].clone()
        };
        let (via, c) = &proxies[rng.random_range(0..proxies.len())];
        let roll = rng.random_range(0..100);
        let pace = Duration::from_millis(rng.random_range(0..25));
        let in_flight = ctl.gate.read().await;
        if ctl.stop.load(Ordering::Relaxed) {
            break;
        }
        match roll {
            0..40 => {
                seq += 1;
                let data = content(&mut rng, &key, id, seq, max_size);
                let sum = checksum(&data);
                let op = rec.invoke(
                    id,
                    &key,
                    OpKind::Put {
                        sum: sum.clone(),
                        size: data.len(),
                    },
                    via,
                );
                let r = tokio::time::timeout(OP_TIMEOUT, c.put_bytes(BUCKET, &key, &data)).await;
                let outcome = match r {
                    Ok(Ok(s)) if s == sum => Outcome::Ok,
                    Ok(Ok(s)) => {
                        Outcome::Failed(format!("acknowledged with checksum {s}, sent {sum}"))
                    }
                    Ok(Err(e)) if not_applied(&e, true) => Outcome::NotApplied(e.to_string()),
                    Ok(Err(e)) => Outcome::Failed(e.to_string()),
                    Err(_) => Outcome::Failed("harness timeout".into()),
                };
                count(&ctl, "put", &outcome);
                rec.complete(op, outcome);
            }
            40..75 => {
                let op = rec.invoke(id, &key, OpKind::Get, via);
                let r = tokio::time::timeout(OP_TIMEOUT, c.get_bytes(BUCKET, &key)).await;
                let outcome = match r {
                    Ok(Ok(data)) => Outcome::Value(checksum(&data)),
                    Ok(Err(e)) if absent(&e) => Outcome::Absent,
                    Ok(Err(e)) => Outcome::Failed(e.to_string()),
                    Err(_) => Outcome::Failed("harness timeout".into()),
                };
                count(&ctl, "get", &outcome);
                rec.complete(op, outcome);
            }
            75..90 => {
                let op = rec.invoke(id, &key, OpKind::Delete, via);
                let r = tokio::time::timeout(OP_TIMEOUT, c.delete(BUCKET, &key)).await;
                let outcome = match r {
                    Ok(Ok(())) => Outcome::Ok,
                    Ok(Err(e)) if absent(&e) => Outcome::Absent,
                    Ok(Err(e)) if not_applied(&e, false) => Outcome::NotApplied(e.to_string()),
                    Ok(Err(e)) => Outcome::Failed(e.to_string()),
                    Err(_) => Outcome::Failed("harness timeout".into()),
                };
                count(&ctl, "delete", &outcome);
                rec.complete(op, outcome);
            }
            _ => {
                let prefix = if rng.random_bool(0.4) {
                    String::new()
                } else {
                    PREFIXES[rng.random_range(0..PREFIXES.len())].to_string()
                };
                let op = rec.invoke(
                    id,
                    "",
                    OpKind::List {
                        prefix: prefix.clone(),
                    },
                    via,
                );
                let r = tokio::time::timeout(OP_TIMEOUT, c.list_objects(BUCKET, &prefix)).await;
                let outcome = match r {
                    Ok(Ok(entries)) => {
                        Outcome::Listed(entries.into_iter().map(|e| (e.name, e.checksum)).collect())
                    }
                    Ok(Err(e)) => Outcome::Failed(e.to_string()),
                    Err(_) => Outcome::Failed("harness timeout".into()),
                };
                count(&ctl, "list", &outcome);
                rec.complete(op, outcome);
            }
        }
        drop(in_flight);
        // The workload's pace, not a wait for a condition.
        tokio::time::sleep(pace).await;
    }
}

/// Puts every key once before the clients start (recorded as client `loader`), so that every
/// lifecycle operation has data to move from the first second.
pub async fn prefill(
    loader: usize,
    seed: u64,
    keys: &[String],
    c: &(String, Client),
    rec: &Recorder,
    max_size: usize,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let items: Vec<(String, Vec<u8>)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), content(&mut rng, k, loader, i as u64, max_size)))
        .collect();
    for chunk in items.chunks(8) {
        let puts = chunk.iter().map(|(k, data)| async move {
            let sum = checksum(data);
            let op = rec.invoke(
                loader,
                k,
                OpKind::Put {
                    sum: sum.clone(),
                    size: data.len(),
                },
                &c.0,
            );
            let r = tokio::time::timeout(OP_TIMEOUT, c.1.put_bytes(BUCKET, k, data)).await;
            let outcome = match r {
                Ok(Ok(s)) if s == sum => Outcome::Ok,
                Ok(Ok(s)) => Outcome::Failed(format!("acknowledged with checksum {s}, sent {sum}")),
                Ok(Err(e)) if not_applied(&e, true) => Outcome::NotApplied(e.to_string()),
                Ok(Err(e)) => Outcome::Failed(e.to_string()),
                Err(_) => Outcome::Failed("harness timeout".into()),
            };
            rec.complete(op, outcome);
        });
        futures::future::join_all(puts).await;
    }
}

fn count(ctl: &Control, kind: &str, o: &Outcome) {
    let result = match o {
        Outcome::Failed(_) => "failed",
        Outcome::NotApplied(_) => "failed (not applied)",
        Outcome::Absent => "not-found",
        _ => "ok",
    };
    ctl.counts
        .lock()
        .expect("poisoned")
        .add(&format!("{kind} {result}"));
}
