//! The nemesis, short seeded run (issue #11, item 7): 3 proxies, 5 targets with 2 mountpaths,
//! 4 clients doing put, overwrite, get, delete and list, and every fault kind — each lifecycle
//! operation (and one naming the primary), `kill -9` of a node, of the primary, and of the
//! primary with its successor down, SIGSTOP, partitions both ways, one way and of a whole node
//! through the relay mesh, a full disk — drawn from a shuffled deck so that this short run
//! injects each kind (asserted). Checked throughout and at two quiet points; see
//! `nemesis/mod.rs`. `just nemesis` is the long run (10 minutes of faults, release build).
//!
//! Environment: `SHOAL_NEMESIS_SEED` (empty or `random`: a fresh one), `SHOAL_NEMESIS_SECS`
//! (time under faults), `SHOAL_NEMESIS_QUIET_SECS` (between quiet points),
//! `SHOAL_NEMESIS_CLIENTS`, `SHOAL_NEMESIS_KEYS`, `SHOAL_NEMESIS_MAX_SIZE`,
//! `SHOAL_NEMESIS_THROTTLE` (rebalance bytes/s per target), `SHOAL_NEMESIS_VERBOSE=1` (print
//! every nemesis event as it happens). A run saves its history, events, violations and node
//! logs in `target/tmp/nemesis-<seed>/`.
//!
//! Checks (all in `nemesis/`): the per-key history check (`lost-write`, `stale-read`,
//! `resurrected`, `unknown-value`, `future-read`, and the same for listings, `*-in-list`),
//! `wrongly-finalised` (a node reported safe to power off, shut down or decommissioned while it
//! holds the only copy of an acknowledged object), and at quiet points `no-convergence`,
//! `quiet-unavailable`, `duplicate`, `misplaced`, `disk-mismatch`, `leftover`, `unknown-object`.
//!
//! Status: every violation it found is fixed, each with its commit and a test of its own (F1,
//! F4, F6–F10 in `nemesis/FINDINGS.md`); F2, F3 and F5 of the old code were not seen again. The
//! last 10-minute run (seed 2613) ended with 0 violations. The checks are not weakened: a
//! violation fails the test, and its history says how to replay it.

mod common;
#[path = "nemesis/mod.rs"]
mod nemesis;

use std::time::Duration;

/// The seed of the in-suite run; any other can be given with `SHOAL_NEMESIS_SEED`.
const SEED: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_nemesis_run() {
    let cfg = nemesis::Config::from_env(nemesis::Config {
        seed: SEED,
        chaos: Duration::from_secs(70),
        quiet_every: Duration::from_secs(35),
        clients: 4,
        keys: 64,
        max_size: 64 << 10,
        converge_within: Duration::from_secs(60),
        // Slow enough that a maintenance of one target takes seconds: time for races.
        throttle: 16_000,
        fault_every_ms: (300, 1500),
    });
    let report = nemesis::run(cfg).await;
    eprintln!("{}", report.summary());
    assert!(
        report.relayed > 0,
        "no node-to-node connection went through the relays: partitions cut nothing"
    );
    for f in nemesis::faults::ALL {
        assert!(
            report.faults.0.contains_key(f.name()),
            "the run injected no {} fault (seed {}): lengthen it or change the seed",
            f.name(),
            report.seed
        );
    }
    assert!(
        report.violations.is_empty(),
        "{} violations (seed {}): {:?}\n{}",
        report.violations.len(),
        report.seed,
        report.by_kind(),
        report.summary()
    );
}
