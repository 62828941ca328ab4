//! Render cost of one console frame with 100, 200 and 1,000 targets (a tenth in maintenance,
//! some offline) and a running rebalance, on a 200×60 `TestBackend`, the selection in the
//! middle. A plain `Instant` loop (no harness): `cargo bench -p shoal-tui --bench render`
//! prints the mean per frame beside the goal of issue #15 (≤ 1 ms at 200 targets), then the
//! median and 99th percentile of the frames, timed one by one. It measures our widgets and
//! layout, not a real terminal's output.
//!
//! Results: stdout, `target/bench-render.json`, and the key `render` of
//! `target/bench-results.json` (merged: the other benches' keys stay), as the root benches
//! write theirs. The machine is shared, so the load average goes with the figures.

#[path = "../tests/common/mod.rs"]
mod common;
mod report;

use std::hint::black_box;
use std::time::Instant;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};

use report::{loadavg, percentile, round1, write_results};

const FRAMES: u32 = 1000;
const WARMUP: u32 = 50;

/// The frame budget at 200 targets (issue #15).
const GOAL_US: f64 = 1000.0;

/// Cluster sizes measured: the goal's 200, and either side of it.
const SIZES: [usize; 3] = [100, 200, 1000];

fn main() {
    println!("render: load average {} (1, 5, 15 min)", loadavg());
    let mut runs = serde_json::Map::new();
    for n in SIZES {
        runs.insert(n.to_string(), bench(n));
    }
    let doc = json!({
        "frame": "200x60",
        "frames": FRAMES,
        "goal_us_at_200": GOAL_US,
        "loadavg": loadavg(),
        "targets": runs,
    });
    match write_results("render", "bench-render.json", &doc) {
        Ok((own, merged)) => println!(
            "render: results in {} and {}",
            own.display(),
            merged.display()
        ),
        Err(e) => eprintln!("render: could not write results: {e}"),
    }
}

fn bench(n: usize) -> Value {
    let mut c = common::cluster(n);
    for i in (0..n).step_by(7) {
        common::in_maintenance(&mut c, i, i % 2 == 0);
    }
    for i in (3..n).step_by(11) {
        common::offline(&mut c, i);
    }
    let reb = common::running_rebalance(n, Some("peer T03xt8103 unreachable"));
    let mut m = common::model_with(&c, Some(&reb), false);
    // Fill the event log so that pane does real work too.
    for k in 0..200u64 {
        m.now = common::T0 + k;
        m.log(
            shoal_tui::model::Severity::Notice,
            format!(
                "t[{}] online → maintenance (event {k})",
                common::tid(k as usize % n)
            ),
        );
    }
    m.target_sel = n / 2;

    let mut term = Terminal::new(TestBackend::new(200, 60)).expect("test backend");
    for _ in 0..WARMUP {
        term.draw(|f| shoal_tui::view(black_box(&m), f)).unwrap();
    }
    let mut frames_us = Vec::with_capacity(FRAMES as usize);
    let start = Instant::now();
    for _ in 0..FRAMES {
        let t = Instant::now();
        term.draw(|f| shoal_tui::view(black_box(&m), f)).unwrap();
        frames_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let elapsed = start.elapsed();
    let mean_us = elapsed.as_secs_f64() * 1e6 / f64::from(FRAMES);
    println!(
        "render: {n} targets, 200x60, {FRAMES} frames: mean {mean_us:.1} µs/frame ({:.1} frames/s; {:.2}x of the {GOAL_US:.0} µs budget)",
        1e6 / mean_us,
        mean_us / GOAL_US
    );
    frames_us.sort_by(f64::total_cmp);
    let (median, p99, max) = (
        percentile(&frames_us, 0.50),
        percentile(&frames_us, 0.99),
        frames_us[frames_us.len() - 1],
    );
    println!(
        "render: {n} targets, 200x60, per frame: median {median:.1} µs, p99 {p99:.1} µs, max {max:.1} µs"
    );
    json!({
        "mean_us": round1(mean_us),
        "median_us": round1(median),
        "p99_us": round1(p99),
        "max_us": round1(max),
    })
}
