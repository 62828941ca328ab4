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

# Shoal's S3 front door beside Garage 2.5 in one run (data path and a decommission; ~25 min).
# Results: a table, and target/bench-http.json. Arguments go to the script (see its --help).
bench-http *ARGS:
    cargo build --release --bin noded --bin nodectl
    python3 benches/http_vs_garage.py {{ARGS}}

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Decoder robustness: property tests feeding random, truncated and mutated frames.
fuzz:
    PROPTEST_CASES=200000 cargo test -p shoal-actors --lib wire::tests
