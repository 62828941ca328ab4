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

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Decoder robustness: property tests feeding random, truncated and mutated frames.
fuzz:
    PROPTEST_CASES=200000 cargo test -p shoal-actors --lib wire::tests
