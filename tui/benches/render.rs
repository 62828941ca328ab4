//! Render cost of one console frame with 100 and 200 targets (a tenth in maintenance, some
//! offline) and a running rebalance, on a 200×60 `TestBackend`. A plain `Instant` loop (no
//! harness): `cargo bench -p shoal-tui` prints the mean per frame beside the goal of issue #15
//! (≤ 1 ms at 200 targets). It measures our widgets and layout, not a real terminal's output.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use ratatui::Terminal;
use ratatui::backend::TestBackend;

const FRAMES: u32 = 200;
const WARMUP: u32 = 20;

/// The frame budget at 200 targets (issue #15).
const GOAL_US: f64 = 1000.0;

fn main() {
    for n in [100, 200] {
        bench(n);
    }
}

fn bench(n: usize) {
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
    let start = Instant::now();
    for _ in 0..FRAMES {
        term.draw(|f| shoal_tui::view(black_box(&m), f)).unwrap();
    }
    let elapsed = start.elapsed();
    let mean_us = elapsed.as_secs_f64() * 1e6 / f64::from(FRAMES);
    println!(
        "render: {n} targets, 200x60, {FRAMES} frames: mean {mean_us:.1} µs/frame ({:.1} frames/s; {:.2}x of the {GOAL_US:.0} µs budget)",
        1e6 / mean_us,
        mean_us / GOAL_US
    );
}
