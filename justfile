# Recipes for humans. CI runs `bash .ci/run`.

# A local cluster (1 proxy, 3 targets, sample data) with the console on it.
demo:
    cargo run --release -- playground

# Every test, with format and lint checks (what CI runs).
test:
    bash .ci/run

# Benchmarks: data path vs raw files, rebalance vs cp -r + sync. SHOAL_BENCH_SCALE=small|full
bench:
    cargo bench --bench cluster
    cargo bench -p shoal-tui

# Scale benches (issue 15 items 5 and 6), long runs: 1 proxy + TARGETS targets as processes holding
# OBJECTS small objects (load, paged listing, decommission, maintenance of 5, RSS per node), then
# a 1,000-node control plane (map push, keepalive CPU, failover, a 100-node dry run). Results: a
# table each, target/bench-scale.json, target/bench-control-plane.json, and their keys in
# target/bench-results.json. Needs about 6 GB of free disk for 1,000,000 objects.
bench-scale objects="1000000" targets="20" nodes="1000":
    SHOAL_SCALE_OBJECTS={{objects}} SHOAL_SCALE_TARGETS={{targets}} cargo bench --bench scale
    SHOAL_CP_NODES={{nodes}} cargo bench --bench control_plane

# Shoal's S3 front door beside Garage 2.5 in one run (data path and a decommission; ~25 min).
# Results: a table, and target/bench-http.json. Arguments go to the script (see its --help).
bench-http *ARGS:
    cargo build --release --bin noded --bin nodectl
    python3 benches/http_vs_garage.py {{ARGS}}

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Decoder robustness: the property tests feeding random, truncated and mutated frames, tokens,
# permission strings and aws-chunked bodies to the decoders, with 200,000 cases each instead
# of the suite's 2,000.
fuzz cases="200000":
    PROPTEST_CASES={{cases}} cargo test --release -p shoal-actors -p shoal-gateway --lib -- never_panic never_panics are_errors round_trip

# The nemesis, long run: a live 3+5 cluster under random faults with concurrent clients, the
# history and the disks checked throughout. SHOAL_NEMESIS_SEED replays a run (default: random);
# SHOAL_NEMESIS_SECS is the time under faults (default 600).
nemesis secs="600" seed="":
    SHOAL_NEMESIS_SECS={{secs}} SHOAL_NEMESIS_SEED={{seed}} SHOAL_NEMESIS_QUIET_SECS=${SHOAL_NEMESIS_QUIET_SECS:-90} SHOAL_NEMESIS_KEYS=${SHOAL_NEMESIS_KEYS:-128} cargo test --release --test nemesis -- --include-ignored --nocapture
