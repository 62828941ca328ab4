//! Render tests on ratatui's `TestBackend`: text where words matter, cell styles where colour
//! carries meaning (maintenance red while rebalancing, cyan when safe to power off).

mod common;

use common::*;
use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};
use shoal_actors::types::status::NodeState;
use shoal_tui::update::CmdError;
use shoal_tui::view::{TargetColumn, layout, target_columns};
use shoal_tui::{Action, update};

/// Style of the STATUS cell of the row showing `id`.
fn status_cell(buf: &ratatui::buffer::Buffer, id: &str, status: &str) -> ratatui::buffer::Cell {
    let y = row_of(buf, id);
    let (x, _) = find_in_row(buf, status, [y])
        .unwrap_or_else(|| panic!("{status} not in the row of {id}:\n{}", text(buf)));
    buf[(x, y)].clone()
}

#[test]
fn all_online_cluster_at_80x24() {
    let m = model_with(&cluster(4), None, false);
    let buf = render(&m, 80, 24);
    let t = text(&buf);
    assert!(t.contains("map v12"), "{t}");
    assert!(t.contains("primary p[MWIp8080]"), "{t}");
    assert!(t.contains("proxies 2"), "{t}");
    assert!(t.contains("targets 4"), "{t}");
    assert!(t.contains("7d1c9c2e"), "short UUID at 80 columns:\n{t}");
    let hdr = find(&buf, "TARGET").expect("targets header").1;
    assert!(find_in_row(&buf, "STATUS", [hdr]).is_some(), "{t}");
    for i in 0..4 {
        let y = row_of(&buf, &tid(i));
        assert!(find_in_row(&buf, "online", [y]).is_some(), "{t}");
        assert!(find_in_row(&buf, "2.435TiB", [y]).is_some(), "{t}");
        assert!(find_in_row(&buf, "16%", [y]).is_some(), "{t}");
    }
    assert_eq!(status_cell(&buf, &tid(1), "online").fg, Color::Green);
    assert!(t.contains("MWIp8080 [P]"), "{t}");
    assert!(t.contains("Qz7p8090 [n/e]"), "{t}");
    assert!(t.contains("no rebalance since the primary started"), "{t}");
    // Long events wrap inside the narrow pane, under their text.
    assert!(
        t.contains("cluster map v12: 2 proxies, 4"),
        "event log:\n{t}"
    );
    assert!(
        t.contains("│         targets, primary p[MWIp8080]"),
        "event log:\n{t}"
    );
    assert!(t.contains("14:02:11"), "event timestamps:\n{t}");
    assert!(t.contains("? help"), "{t}");
    assert!(only_named_colours(&buf));
    // The selected row is reversed, everything else is not.
    let y0 = row_of(&buf, &tid(0));
    let (x0, _) = find(&buf, &tid(0)).unwrap();
    assert!(buf[(x0, y0)].modifier.contains(Modifier::REVERSED));
    let (x1, y1) = find(&buf, &tid(1)).unwrap();
    assert!(!buf[(x1, y1)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn wide_terminal_shows_every_column_and_panels_side_by_side() {
    let m = model_with(&cluster(4), Some(&running_rebalance(4, None)), false);
    let buf = render(&m, 200, 50);
    let t = text(&buf);
    let hdr = find(&buf, "TARGET").unwrap().1;
    for h in [
        "MEM USED %",
        "MEM AVAIL",
        "CAP USED %",
        "CAP AVAIL",
        "CPU USED %",
        "REBALANCE",
        "UPTIME",
        "STATUS",
    ] {
        assert!(find_in_row(&buf, h, [hdr]).is_some(), "{h} missing:\n{t}");
    }
    let y = row_of(&buf, &tid(0));
    for cell in [
        "0.13%",
        "31.28GiB",
        "16%",
        "2.435TiB",
        "0.12%",
        "finished(g4)",
        "31m",
    ] {
        assert!(
            find_in_row(&buf, cell, [y]).is_some(),
            "{cell} missing:\n{t}"
        );
    }
    assert!(
        t.contains("7d1c9c2e-0f5a-4e2b-9d35-5c9b8a7f1e22"),
        "full UUID:\n{t}"
    );
    let l = layout(Rect::new(0, 0, 200, 50), &m);
    assert!(l.rebalance.x > l.targets.x && l.rebalance.y == l.targets.y);
    // Per-target rebalance rows get their full columns on the wide pane.
    assert!(t.contains("TX BYTES") && t.contains("RX OBJS"), "{t}");
    assert!(only_named_colours(&buf));
}

#[test]
fn with_no_color_there_is_no_colour_and_the_meaning_is_in_words() {
    let mut c = cluster(4);
    in_maintenance(&mut c, 1, true);
    let mut reb = running_rebalance(4, Some("peer unreachable"));
    reb.stalled = true;
    let mut m = model_with(&c, Some(&reb), false);
    m.no_color = true;
    press(&mut m, KeyCode::Down);
    for (w, h) in [(80, 24), (200, 50)] {
        let buf = render(&m, w, h);
        assert!(
            buf.content
                .iter()
                .all(|c| c.fg == Color::Reset && c.bg == Color::Reset),
            "a coloured cell under NO_COLOR"
        );
        let t = text(&buf);
        assert!(t.contains("do NOT power off"), "{t}");
        assert!(t.contains("STALLED"), "{t}");
        // The warning stays marked (reverse video where it had a background).
        let (x, y) = find(&buf, "BLOCKED: peer").unwrap();
        assert!(buf[(x, y)].modifier.contains(Modifier::REVERSED));
    }
}

#[test]
fn maintenance_is_red_while_rebalancing_and_cyan_after() {
    let mut c = cluster(4);
    in_maintenance(&mut c, 1, true);
    c.targets[1].rebalance = "running(g5)".into();
    let reb = running_rebalance(4, None);
    let mut m = model_with(&c, Some(&reb), false);
    press(&mut m, KeyCode::Down); // select the node: its cue is spelled out
    let buf = render(&m, 80, 24);
    let cell = status_cell(&buf, &tid(1), "maintenance");
    assert_eq!(cell.fg, Color::Red, "{}", text(&buf));
    assert!(text(&buf).contains("do NOT power off"), "{}", text(&buf));
    // Online neighbours stay green.
    assert_eq!(status_cell(&buf, &tid(2), "online").fg, Color::Green);

    let mut after = c.clone();
    in_maintenance(&mut after, 1, false);
    update(
        &mut m,
        snapshot(&after, Some(&finished_rebalance()), T0 + 30),
    );
    let buf = render(&m, 80, 24);
    let cell = status_cell(&buf, &tid(1), "maintenance");
    assert_eq!(cell.fg, Color::Cyan, "{}", text(&buf));
    let t = text(&buf);
    assert!(t.contains("safe to power off"), "{t}");
    assert!(t.contains("rebalance g5 finished"), "event log:\n{t}");
}

#[test]
fn selected_maintenance_row_keeps_its_colour_under_the_highlight() {
    let mut c = cluster(3);
    in_maintenance(&mut c, 0, true);
    let m = model_with(&c, None, false);
    let buf = render(&m, 120, 30);
    let cell = status_cell(&buf, &tid(0), "maintenance");
    assert_eq!(cell.fg, Color::Red);
    assert!(cell.modifier.contains(Modifier::REVERSED));
}

#[test]
fn decommission_is_red_and_offline_rows_are_dimmed_with_dashes() {
    let mut c = cluster(4);
    c.targets[0].status = NodeState::Decommission;
    c.targets[0].migrating = true;
    offline(&mut c, 2);
    let m = model_with(&c, None, false);
    let buf = render(&m, 120, 30);
    assert_eq!(status_cell(&buf, &tid(0), "decommission").fg, Color::Red);
    let y = row_of(&buf, &tid(2));
    let (x, _) = find(&buf, &tid(2)).unwrap();
    let id_cell = &buf[(x, y)];
    assert!(
        id_cell.modifier.contains(Modifier::DIM),
        "offline row not dimmed"
    );
    assert_eq!(id_cell.fg, Color::DarkGray);
    let row = &lines(&buf)[y as usize];
    assert!(
        row.matches(" - ").count() >= 4,
        "metric cells must be '-': {row}"
    );
    assert!(!row.contains("GiB") && !row.contains("TiB"), "{row}");
    assert!(row.contains("offline"), "{row}");
    // Reachable rows keep their numbers.
    let y1 = row_of(&buf, &tid(1));
    assert!(lines(&buf)[y1 as usize].contains("31.28GiB"));
}

#[test]
fn a_paused_rebalance_and_a_stalled_one_say_so_in_words_and_colour() {
    let mut reb = running_rebalance(3, None);
    reb.paused = true;
    let m = model_with(&cluster(3), Some(&reb), false);
    for (w, h) in [(80, 24), (200, 50)] {
        let buf = render(&m, w, h);
        let t = text(&buf);
        assert!(t.contains("PAUSED"), "{w}x{h}:\n{t}");
        assert!(!t.contains("STALLED"), "{w}x{h}:\n{t}");
        let (x, y) = find(&buf, "PAUSED").unwrap();
        assert_eq!(buf[(x, y)].fg, Color::Yellow);
    }
    let mut reb = running_rebalance(3, Some("stalled: no progress for 61s"));
    reb.stalled = true;
    let m = model_with(&cluster(3), Some(&reb), false);
    for (w, h) in [(80, 24), (200, 50)] {
        let buf = render(&m, w, h);
        let t = text(&buf);
        assert!(t.contains("STALLED"), "{w}x{h}:\n{t}");
        assert!(
            t.contains("BLOCKED: stalled: no progress for 61s"),
            "{w}x{h}:\n{t}"
        );
        assert!(!t.contains("PAUSED"), "{w}x{h}:\n{t}");
        let (x, y) = find(&buf, "STALLED").unwrap();
        assert_eq!(buf[(x, y)].bg, Color::Red);
        assert!(only_named_colours(&buf));
    }
}

#[test]
fn running_rebalance_shows_progress_eta_rate_and_blocked_reasons() {
    let reb = running_rebalance(3, Some("peer T02xt8102 unreachable"));
    let m = model_with(&cluster(3), Some(&reb), false);
    for (w, h) in [(80, 24), (200, 50)] {
        let buf = render(&m, w, h);
        let t = text(&buf);
        assert!(t.contains("ETA 1m20s"), "{w}x{h}:\n{t}");
        assert!(t.contains("42.0%"), "{w}x{h}:\n{t}");
        assert!(t.contains("2,100/5,000 objs"), "{w}x{h}:\n{t}");
        assert!(t.contains("42.00GiB/100.0GiB"), "{w}x{h}:\n{t}");
        assert!(t.contains("512.0MiB/s"), "{w}x{h}:\n{t}");
        assert!(t.contains("g5 running"), "{w}x{h}:\n{t}");
        let (x, y) = find(&buf, "BLOCKED: peer").expect("blocked reason");
        assert_eq!(buf[(x, y)].bg, Color::Red);
        assert!(only_named_colours(&buf));
    }
    let buf = render(&m, 200, 50);
    let y = row_of(&buf, "T01xt8101 401");
    assert!(
        find_in_row(&buf, "8.000GiB", [y]).is_some(),
        "{}",
        text(&buf)
    );
}

#[test]
fn gauge_never_panics_on_odd_progress() {
    let mut reb = running_rebalance(1, None);
    reb.bytes_moved = reb.bytes_total * 3; // counters raced past the total
    reb.eta_secs = None;
    let m = model_with(&cluster(2), Some(&reb), false);
    let t = text(&render(&m, 80, 24));
    assert!(t.contains("100.0%") && t.contains("ETA -"), "{t}");
    reb.bytes_total = 0;
    reb.objs_total = 0;
    let m = model_with(&cluster(2), Some(&reb), false);
    render(&m, 80, 24);
}

#[test]
fn confirm_dialog_shows_plan_command_and_undo_at_80x24() {
    let mut m = model_with(&cluster(4), None, false);
    press(&mut m, KeyCode::Down);
    let cmd = press(&mut m, KeyCode::Char('m')).expect("dry run");
    let shoal_tui::Command::DryRun(req) = cmd else {
        panic!("{cmd:?}")
    };
    let t = text(&render(&m, 80, 24));
    assert!(t.contains("computing the plan"), "{t}");
    update(
        &mut m,
        Action::DryRunDone {
            req: shoal_actors::types::lifecycle::LifecycleRequest {
                dry_run: false,
                ..req
            },
            result: Ok(plan_for(&tid(1))),
        },
    );
    let buf = render(&m, 80, 24);
    let t = text(&buf);
    assert!(
        t.contains("nodectl cluster add-remove-nodes start-maintenance t[T01xt8101] --yes"),
        "{t}"
    );
    assert!(t.contains("can be undone with stop-maintenance"), "{t}");
    assert!(t.contains("1,000 objects, 50.00GiB to move"), "{t}");
    assert!(t.contains("fits: yes"), "{t}");
    assert!(t.contains("T01xt8101 → T02xt8102"), "{t}");
    assert!(t.contains("1.562TiB → 1.514TiB"), "capacity after:\n{t}");
    assert!(t.contains("Enter/y confirm"), "{t}");
    let (x, y) = find(&buf, "can be undone").unwrap();
    assert_eq!(buf[(x, y)].fg, Color::Green);
}

#[test]
fn decommission_dialog_says_no_undo_and_asks_for_the_id() {
    let mut m = model_with(&cluster(4), None, false);
    press(&mut m, KeyCode::Char('G'));
    press(&mut m, KeyCode::Char('D'));
    type_str(&mut m, "T03");
    let buf = render(&m, 80, 24);
    let t = text(&buf);
    assert!(
        t.contains("nodectl cluster add-remove-nodes decommission t[T03xt8103] --yes"),
        "{t}"
    );
    assert!(t.contains("cannot be undone"), "{t}");
    assert!(t.contains("type T03xt8103 to confirm: T03_"), "{t}");
    let (x, y) = find(&buf, "cannot be undone").unwrap();
    assert_eq!(buf[(x, y)].fg, Color::Red);
}

#[test]
fn shift_h_shows_the_rebalance_history_newest_first() {
    use shoal_actors::types::status::GenRecord;
    let mut m = model_with(&cluster(3), None, false);
    assert_eq!(
        press(&mut m, KeyCode::Char('H')),
        Some(shoal_tui::Command::FetchHistory)
    );
    assert!(text(&render(&m, 120, 30)).contains("reading the history"));
    let rec = |id: &str, trigger: &str, errors: u64, outcome: &str| GenRecord {
        id: id.into(),
        trigger: trigger.into(),
        started: T0,
        finished: T0 + 10,
        objects: 1234,
        bytes: 5 << 20,
        errors,
        outcome: outcome.into(),
    };
    update(
        &mut m,
        Action::HistoryDone(Ok(vec![
            rec("g3", "join t[T02xt8102]", 0, "superseded by g4"),
            rec(
                "g4",
                "start-maintenance t[T01xt8101]",
                2,
                "finished with errors",
            ),
        ])),
    );
    let buf = render(&m, 120, 30);
    let t = text(&buf);
    assert!(t.contains("Rebalance history"), "{t}");
    let (_, y4) = find(&buf, "start-maintenance t[T01xt8101]").expect("g4 shown");
    let (_, y3) = find(&buf, "join t[T02xt8102]").expect("g3 shown");
    assert!(y4 < y3, "newest first:\n{t}");
    assert!(t.contains("1,234") && t.contains("superseded by g4"), "{t}");
    let (x, y) = find(&buf, "finished with errors").unwrap();
    assert_eq!(buf[(x, y)].fg, Color::Red);
    // Esc closes it, and only it.
    press(&mut m, KeyCode::Esc);
    assert!(m.history.is_none() && !m.quit);
}

#[test]
fn the_pause_dialog_shows_the_command_and_its_undo() {
    let mut m = model_with(&cluster(3), Some(&running_rebalance(3, None)), false);
    press(&mut m, KeyCode::Char('P'));
    for (w, h) in [(80, 24), (200, 50)] {
        let t = text(&render(&m, w, h));
        assert!(t.contains("Pause the rebalance"), "{w}x{h}:\n{t}");
        assert!(t.contains("nodectl rebalance pause --yes"), "{w}x{h}:\n{t}");
        assert!(
            t.contains("undo: nodectl rebalance resume"),
            "{w}x{h}:\n{t}"
        );
        assert!(t.contains("g5 is running"), "{w}x{h}:\n{t}");
    }
}

#[test]
fn a_shutdown_dialog_shows_the_ok_to_stop_verdict_first() {
    let mut c = cluster(3);
    c.targets[0].object_count = 1234;
    let mut m = model_with(&c, None, false);
    press(&mut m, KeyCode::Char('s'));
    let t = text(&render(&m, 120, 40));
    assert!(
        t.contains("ok-to-stop now: NO: t[T00xt8100]: 1234 objects would become unreadable"),
        "{t}"
    );
    assert!(t.contains("moves its objects off first"), "{t}");
    let (x, y) = find(&render(&m, 120, 40), "ok-to-stop now").unwrap();
    assert_eq!(render(&m, 120, 40)[(x, y)].fg, Color::Yellow);
    // An empty target: yes.
    c.targets[0].object_count = 0;
    let mut m = model_with(&c, None, false);
    press(&mut m, KeyCode::Char('s'));
    let t = text(&render(&m, 120, 40));
    assert!(t.contains("ok-to-stop now: yes"), "{t}");
}

#[test]
fn no_rebalance_warning_is_visible_in_footer_and_dialog() {
    let mut m = model_with(&cluster(3), None, false);
    press(&mut m, KeyCode::Char('n'));
    let t = text(&render(&m, 80, 24));
    assert!(t.contains("data may be lost"), "{t}");
    press(&mut m, KeyCode::Char('s'));
    let req = m.dialog.as_ref().unwrap().req.clone();
    update(
        &mut m,
        Action::DryRunDone {
            req,
            result: Err(CmdError {
                kind: "busy".into(),
                message: "rebalance g4 is running".into(),
                refusal: true,
            }),
        },
    );
    let t = text(&render(&m, 80, 24));
    assert!(
        t.contains("--no-rebalance: data is not migrated, data may be lost"),
        "{t}"
    );
    // 85 characters wrap at 80 columns; the dialog holds the whole command.
    assert_eq!(
        m.dialog.as_ref().unwrap().nodectl_command(),
        "nodectl cluster add-remove-nodes shutdown t[T00xt8100] --no-rebalance --yes"
    );
    assert!(
        t.contains("nodectl cluster add-remove-nodes shutdown t[T00xt8100] --no-rebalance"),
        "{t}"
    );
    assert!(t.contains("dry run failed: rebalance g4 is running"), "{t}");
}

#[test]
fn unreachable_cluster_shows_a_banner_and_keeps_the_last_snapshot() {
    let mut m = model_with(&cluster(3), None, false);
    for i in 0..3 {
        update(
            &mut m,
            Action::Unreachable {
                error: "connection refused".into(),
                at: T0 + 5 + i,
            },
        );
    }
    let buf = render(&m, 80, 24);
    let t = text(&buf);
    assert!(
        t.contains("cluster unreachable at 127.0.0.1:51080, retrying… (attempt 3"),
        "{t}"
    );
    assert!(t.contains(&tid(0)), "last snapshot stays on screen:\n{t}");
    assert!(t.contains("stale"), "{t}");
    let (x, y) = find(&buf, "cluster unreachable at").unwrap();
    assert_eq!(buf[(x, y)].bg, Color::Red);
    // Before any snapshot: the banner, and a waiting message rather than an empty table.
    let mut fresh = shoal_tui::Model::new(ENDPOINT, false);
    update(
        &mut fresh,
        Action::Unreachable {
            error: "timed out".into(),
            at: T0,
        },
    );
    let t = text(&render(&fresh, 80, 24));
    assert!(t.contains("cluster unreachable at 127.0.0.1:51080"), "{t}");
    assert!(t.contains("waiting for the first cluster snapshot"), "{t}");
}

#[test]
fn detail_view_lists_mountpaths_and_esc_goes_back() {
    let mut m = model_with(&cluster(3), None, false);
    press(&mut m, KeyCode::Char('j'));
    press(&mut m, KeyCode::Enter);
    let t = text(&render(&m, 80, 24));
    assert!(t.contains("t[T01xt8101] (Esc back)"), "{t}");
    assert!(t.contains("/data/T01xt8101/mp1"), "{t}");
    assert!(t.contains("1.562TiB"), "mountpath avail:\n{t}");
    assert!(t.contains("10.0.0.11:8101"), "address:\n{t}");
    assert!(t.contains("1,001"), "object count:\n{t}");
    assert!(t.contains("MOUNTPATH"), "{t}");
    press(&mut m, KeyCode::Esc);
    assert!(!m.quit);
    let t = text(&render(&m, 80, 24));
    assert!(!t.contains("/data/T01xt8101/mp1"), "{t}");
}

#[test]
fn detail_view_shows_restarts_of_supervised_children() {
    let mut c = cluster(2);
    c.targets[1].restarts = 3;
    c.targets[1].restarts_by_child = [("mp0".to_string(), 2), ("primary".to_string(), 1)].into();
    let mut m = model_with(&c, None, false);
    press(&mut m, KeyCode::Char('j'));
    press(&mut m, KeyCode::Enter);
    let buf = render(&m, 100, 30);
    let t = text(&buf);
    assert!(t.contains("restarts    3 (mp0 2, primary 1)"), "{t}");
    let (x, y) = find(&buf, "3 (mp0 2").expect("restarts cell");
    assert_eq!(buf[(x, y)].fg, Color::Yellow, "restarts stand out");
    // A node that never restarted anything says 0, in the plain colour.
    press(&mut m, KeyCode::Esc);
    press(&mut m, KeyCode::Char('k'));
    press(&mut m, KeyCode::Enter);
    let t = text(&render(&m, 100, 30));
    assert!(t.contains("restarts    0"), "{t}");
}

#[test]
fn the_header_says_who_the_console_acts_as() {
    let mut m = model_with(&cluster(2), None, false);
    let t = text(&render(&m, 80, 24));
    assert!(!t.contains(" as "), "unknown yet: nothing shown\n{t}");
    update(
        &mut m,
        Action::Identity(Ok(identity("reader", &["read-only"]))),
    );
    let buf = render(&m, 80, 24);
    let (x, y) = find(&buf, "as reader (read-only)").unwrap_or_else(|| panic!("{}", text(&buf)));
    assert_eq!(y, 1, "on the header's second line");
    assert!(
        buf[(x + 3, y)].modifier.contains(Modifier::BOLD),
        "the name stands out"
    );
    // A refused key says why on the status line, in the warning colour.
    press(&mut m, KeyCode::Char('m'));
    let buf = render(&m, 80, 24);
    let (x, y) = find(&buf, "forbidden: reader").unwrap_or_else(|| panic!("{}", text(&buf)));
    assert_eq!(buf[(x, y)].fg, Color::Yellow);
}

#[test]
fn help_overlay_and_readonly_notice() {
    let mut m = model_with(&cluster(2), None, true);
    let t = text(&render(&m, 80, 24));
    assert!(t.contains("READ-ONLY"), "{t}");
    assert!(
        !t.contains("m maint"),
        "dangerous keys hidden in the footer:\n{t}"
    );
    press(&mut m, KeyCode::Char('?'));
    let t = text(&render(&m, 80, 24));
    assert!(
        t.contains("read-only console: lifecycle and mountpath keys are disabled"),
        "{t}"
    );
    assert!(t.contains("decommission"), "{t}");
    press(&mut m, KeyCode::Char('?'));
    assert!(!m.help);
}

#[test]
fn marked_rows_are_visibly_marked() {
    let mut m = model_with(&cluster(4), None, false);
    press(&mut m, KeyCode::Char(' '));
    press(&mut m, KeyCode::Char(' '));
    let buf = render(&m, 80, 24);
    for i in [0, 1] {
        let y = row_of(&buf, &tid(i));
        let (x, _) = find_in_row(&buf, "*", [y]).expect("mark");
        assert_eq!(buf[(x, y)].fg, Color::Yellow);
    }
    let y = row_of(&buf, &tid(2));
    assert!(find_in_row(&buf, "*", [y]).is_none());
    assert!(text(&buf).contains("2 marked"));
}

#[test]
fn narrow_terminals_abbreviate_then_drop_columns() {
    let c = cluster(4);
    let rows: Vec<_> = c.targets.iter().collect();
    let (cols, short) = target_columns(&rows, 200);
    assert!(!short && cols.len() == 9);
    // 80 columns: every column, with abbreviated headers.
    let (cols, short) = target_columns(&rows, 78);
    assert!(short && cols.len() == 9);
    let (cols, short) = target_columns(&rows, 60);
    assert!(short);
    let names: Vec<TargetColumn> = cols.iter().map(|c| c.0).collect();
    assert!(names.contains(&TargetColumn::Target) && names.contains(&TargetColumn::Status));
    assert!(!names.contains(&TargetColumn::CpuUsed), "{names:?}");
    let used: u16 = cols.iter().map(|c| c.1 + 1).sum::<u16>() + 1;
    assert!(used <= 60, "{cols:?}");
    let (cols, _) = target_columns(&rows, 20);
    let names: Vec<TargetColumn> = cols.iter().map(|c| c.0).collect();
    assert_eq!(names, [TargetColumn::Target, TargetColumn::Status]);
}

#[test]
fn redraws_on_resize_and_survives_tiny_terminals() {
    let mut c = cluster(6);
    in_maintenance(&mut c, 3, true);
    let mut m = model_with(&c, Some(&running_rebalance(6, Some("disk full"))), false);
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    term.draw(|f| shoal_tui::view(&m, f)).unwrap();
    assert!(!text(term.backend().buffer()).contains("REBALANCE"));
    term.backend_mut().resize(200, 50);
    term.draw(|f| shoal_tui::view(&m, f)).unwrap();
    let buf = term.backend().buffer();
    assert_eq!(buf.area, Rect::new(0, 0, 200, 50));
    assert!(text(buf).contains("REBALANCE"), "{}", text(buf));
    press(&mut m, KeyCode::Char('m'));
    for (w, h) in [(1, 1), (10, 3), (20, 6), (40, 10), (79, 23)] {
        term.backend_mut().resize(w, h);
        term.draw(|f| shoal_tui::view(&m, f)).unwrap();
    }
}

/// Found by running the console at 80×24 in a real terminal (tests/console.rs, tmux).
mod found_in_a_real_terminal {
    use super::*;

    #[test]
    fn footer_drops_whole_hints_instead_of_cutting_one() {
        let mut m = model_with(&cluster(3), None, false);
        for armed in [false, true] {
            if armed {
                press(&mut m, KeyCode::Char('n'));
            }
            for w in [60, 80, 100, 200] {
                let buf = render(&m, w, 24);
                let footer = lines(&buf).last().unwrap().trim_end().to_string();
                assert!(footer.starts_with("? help") || armed, "{footer}");
                let hints = [
                    "? help",
                    "q quit",
                    "/ filter",
                    "m maint",
                    "s shutdown",
                    "D decomm",
                    "Space mark",
                    "n no-reb",
                    "Enter detail",
                    "Tab focus",
                    "r refresh",
                ];
                assert!(
                    hints.iter().any(|h| footer.ends_with(h)),
                    "{w} columns, footer ends mid-hint: {footer:?}"
                );
            }
        }
        let footer = lines(&render(&m, 200, 24)).last().unwrap().clone();
        assert!(footer.contains("r refresh"), "{footer}");
    }

    #[test]
    fn detail_keeps_the_distinguishing_end_of_long_mountpaths() {
        let mut c = cluster(3);
        for (i, mp) in c.targets[0].mountpaths.iter_mut().enumerate() {
            mp.path = format!("/tmp/shoal-playground-12484/target0/mp{i}");
        }
        let mut m = model_with(&c, None, false);
        press(&mut m, KeyCode::Enter);
        let buf = render(&m, 80, 24);
        let t = text(&buf);
        for end in ["/target0/mp0 ", "/target0/mp1 "] {
            let (x, y) = find(&buf, end).unwrap_or_else(|| panic!("{end}:\n{t}"));
            let line = &lines(&buf)[y as usize];
            assert!(line.contains('…'), "cut on the left, and says so: {line}");
            assert!(x > 0);
        }
        let t = text(&render(&m, 200, 50));
        assert!(t.contains("/tmp/shoal-playground-12484/target0/mp1"), "{t}");
    }

    #[test]
    fn event_log_shows_whole_entries_only() {
        let mut m = model_with(&cluster(3), None, false);
        for i in 0..12 {
            m.log(
                shoal_tui::model::Severity::Info,
                format!("entry {i} is long enough to wrap over two lines of the narrow pane"),
            );
        }
        let buf = render(&m, 80, 24);
        let l = layout(Rect::new(0, 0, 80, 24), &m);
        let first = &lines(&buf)[l.events.y as usize + 1];
        let inner: String = first
            .chars()
            .skip(l.events.x as usize + 1)
            .take(8)
            .collect();
        assert!(
            inner.chars().all(|c| c.is_ascii_digit() || c == ':'),
            "the pane starts with a continuation line: {first:?}\n{}",
            text(&buf)
        );
        assert!(text(&buf).contains("entry 11"), "newest entry shown");
    }

    #[test]
    fn unreachable_banner_wraps_instead_of_hiding_the_reason() {
        let mut m = shoal_tui::Model::new(ENDPOINT, false);
        update(
            &mut m,
            Action::Unreachable {
                error: "I/O: 127.0.0.1:51080: Connection refused (os error 111)".into(),
                at: T0,
            },
        );
        let t = text(&render(&m, 80, 24));
        assert!(t.contains("Connection refused (os error 111)"), "{t}");
        assert!(t.contains("cluster unreachable at 127.0.0.1:51080"), "{t}");
        // Never connected: no claim about rebalances or proxies, just waiting.
        assert!(!t.contains("no rebalance since"), "{t}");
        assert_eq!(
            t.matches("waiting for the first cluster snapshot").count(),
            3,
            "{t}"
        );
        let wide = layout(Rect::new(0, 0, 200, 50), &m);
        assert_eq!(wide.banner.height, 1);
        assert_eq!(layout(Rect::new(0, 0, 80, 24), &m).banner.height, 2);
    }

    #[test]
    fn header_counts_decommission_apart_from_maintenance() {
        let mut c = cluster(4);
        c.targets[0].status = NodeState::Decommission;
        in_maintenance(&mut c, 1, false);
        let t = text(&render(&model_with(&c, None, false), 80, 24));
        assert!(t.contains("(1 maint, 1 decomm)"), "{t}");
    }

    #[test]
    fn filtered_out_proxies_say_so() {
        let mut m = model_with(&cluster(3), None, false);
        press(&mut m, KeyCode::Char('/'));
        type_str(&mut m, "T01");
        let t = text(&render(&m, 80, 24));
        assert!(t.contains("no proxy matches the filter"), "{t}");
    }

    #[test]
    fn popups_do_not_touch_the_panel_underneath() {
        let mut c = cluster(3);
        in_maintenance(&mut c, 1, false);
        // Long enough to reach the right edge of the targets table, under the dialog's border.
        c.targets[1].rebalance = "finished(g12345)".into();
        let mut m = model_with(&c, None, false);
        press(&mut m, KeyCode::Down);
        press(&mut m, KeyCode::Char('m'));
        let buf = render(&m, 80, 24);
        let (x0, y0) = find(&buf, "┌ Confirm").expect("dialog");
        let x1 = (x0..80).find(|&x| buf[(x, y0)].symbol() == "┐").unwrap();
        let y1 = (y0..24).find(|&y| buf[(x0, y)].symbol() == "└").unwrap();
        for y in y0..=y1 {
            for x in [x0 - 1, x1 + 1] {
                // Blank, or the border of the panel underneath.
                let sym = buf[(x, y)].symbol();
                assert!(
                    sym == " " || "│─└┘┌┐".contains(sym),
                    "({x},{y}) {sym:?}\n{}",
                    text(&buf)
                );
            }
        }
    }

    #[test]
    fn detail_of_a_node_that_does_not_answer_says_so() {
        let mut c = cluster(3);
        in_maintenance(&mut c, 1, false);
        // Shut down: still in the map, in maintenance, not answering, no mountpath stats.
        c.targets[1].reachable = false;
        c.targets[1].mountpaths.clear();
        let mut m = model_with(&c, None, false);
        press(&mut m, KeyCode::Down);
        let t = text(&render(&m, 80, 24));
        assert!(t.contains("maintenance: not answering"), "{t}");
        assert!(!t.contains("safe to power off"), "{t}");
        press(&mut m, KeyCode::Enter);
        let t = text(&render(&m, 80, 24));
        assert!(
            t.contains("node does not answer: metrics are unknown"),
            "{t}"
        );
    }

    #[test]
    fn offline_cue_does_not_repeat_the_status() {
        let mut c = cluster(3);
        offline(&mut c, 0);
        let t = text(&render(&model_with(&c, None, false), 80, 24));
        assert!(t.contains("t[T00xt8100] offline: keepalive lost"), "{t}");
        assert!(!t.contains("offline: offline"), "{t}");
    }

    #[test]
    fn long_blocked_reasons_wrap_in_the_half_width_pane() {
        let reason = "t[T01xt8101] is offline (keepalive lost), its objects wait";
        let reb = running_rebalance(3, Some(reason));
        let m = model_with(&cluster(3), Some(&reb), false);
        let buf = render(&m, 80, 24);
        let t = text(&buf);
        assert!(t.contains("BLOCKED: t[T01xt8101] is offline"), "{t}");
        assert!(t.contains("objects wait"), "the end of the reason:\n{t}");
    }

    #[test]
    fn a_rebalance_already_blocked_at_start_is_logged_with_its_reason() {
        let reb = running_rebalance(3, Some("disk full"));
        let m = model_with(&cluster(3), Some(&reb), false);
        assert!(
            m.events
                .iter()
                .any(|e| e.text == "rebalance g5 blocked: disk full"),
            "{:?}",
            m.events
        );
    }

    #[test]
    fn refusing_the_primary_reads_as_english() {
        let mut m = model_with(&cluster(3), None, false);
        press(&mut m, KeyCode::Tab);
        press(&mut m, KeyCode::Char('m'));
        let status = m.status.as_ref().unwrap().text.clone();
        assert_eq!(
            status,
            "p[MWIp8080] is primary (the primary cannot be put in maintenance)"
        );
    }
}

/// Mountpaths in a target's detail (DESIGN §14) and resilvers on the main screen.
mod storage {
    use super::*;
    use shoal_actors::logic::format::resilver_line;
    use shoal_actors::types::status::{MountpathStats, MpState, RebState};
    use shoal_actors::types::storage::MountpathReply;
    use shoal_tui::update::MpRequest;

    /// Target 1's detail open on a cluster with [`storage_trouble`] on it.
    fn trouble_detail(readonly: bool) -> shoal_tui::Model {
        let mut c = cluster(3);
        storage_trouble(&mut c, 1);
        let mut m = model_with(&c, None, readonly);
        press(&mut m, KeyCode::Char('j'));
        press(&mut m, KeyCode::Enter);
        m
    }

    fn reversed(buf: &ratatui::buffer::Buffer, needle: &str) -> bool {
        let (x, y) = find(buf, needle).unwrap_or_else(|| panic!("{needle}:\n{}", text(buf)));
        buf[(x, y)].modifier.contains(Modifier::REVERSED)
    }

    #[test]
    fn detail_at_80x24_shows_state_reason_resilver_and_the_selected_mountpath() {
        let mut m = trouble_detail(false);
        press(&mut m, KeyCode::Char('j'));
        let buf = render(&m, 80, 24);
        let t = text(&buf);
        let hdr = find(&buf, "MOUNTPATH").expect("mountpath header").1;
        for h in ["AVAIL", "USE", "OBJECTS", "STATE"] {
            assert!(find_in_row(&buf, h, [hdr]).is_some(), "{h}:\n{t}");
        }
        // The state in words and colour, the reason under its row.
        let y1 = row_of(&buf, "/data/T01xt8101/mp1");
        let (x, _) = find_in_row(&buf, "enabled", [y1]).expect("mp1 enabled");
        assert_eq!(buf[(x, y1)].fg, Color::Green, "{t}");
        let y2 = row_of(&buf, "/data/T01xt8101/mp2");
        let (x, _) = find_in_row(&buf, "failed", [y2]).expect("mp2 failed");
        assert_eq!(buf[(x, y2)].fg, Color::Red, "{t}");
        let (_, yr) = find(&buf, "↳ I/O failing: Input/output error (os error 5)")
            .unwrap_or_else(|| panic!("the reason:\n{t}"));
        assert_eq!(yr, y2 + 1, "the reason is under its mountpath:\n{t}");
        assert!(find(&buf, "/data/T01xt8101/mp3").is_some(), "{t}");
        // The resilver, in nodectl's words (wrapped at 80 columns).
        let line = resilver_line(
            m.cluster.as_ref().unwrap().targets[1]
                .resilver
                .as_ref()
                .unwrap(),
        );
        assert!(
            line.starts_with("r3 t[T01xt8101]: 120 of 500 objects"),
            "{line}"
        );
        assert!(
            t.contains("resilver r3 t[T01xt8101]: 120 of 500 objects, 1.200MiB of 5.000MiB"),
            "{t}"
        );
        assert!(t.contains("ETA 4s (attach /data/T01xt8101/mp3)"), "{t}");
        // The cursor is on mp2 and its reason, nowhere else.
        assert!(reversed(&buf, "/data/T01xt8101/mp2"));
        assert!(reversed(&buf, "I/O failing"));
        assert!(!reversed(&buf, "/data/T01xt8101/mp1"));
        assert!(!reversed(&buf, "/data/T01xt8101/mp3"));
        // The keys, in the popup and in the footer.
        assert!(t.contains("a attach  d detach  e enable  x disable"), "{t}");
        let footer = lines(&buf).last().unwrap().clone();
        assert!(footer.contains("x disable"), "{footer}");
        assert!(only_named_colours(&buf));
    }

    #[test]
    fn detail_names_every_state_and_why() {
        let mut c = cluster(2);
        let base = c.targets[0].mountpaths[0].clone();
        let mp = |k: usize, state: MpState, full: bool, reason: Option<&str>| MountpathStats {
            path: format!("/d/mp{k}"),
            state,
            enabled: state == MpState::Enabled,
            full,
            reason: reason.map(String::from),
            ..base.clone()
        };
        c.targets[0].mountpaths = vec![
            mp(
                1,
                MpState::Enabled,
                true,
                Some("past the high-water mark (95%)"),
            ),
            mp(
                2,
                MpState::Disabled,
                false,
                Some("marker names another target"),
            ),
            mp(3, MpState::Detaching, false, None),
            mp(4, MpState::Failed, false, Some("I/O failing: EIO")),
        ];
        let mut m = model_with(&c, None, false);
        press(&mut m, KeyCode::Enter);
        let buf = render(&m, 80, 24);
        let t = text(&buf);
        for (k, word, colour) in [
            (1, "enabled (full)", Color::Yellow),
            (2, "disabled", Color::Yellow),
            (3, "detaching", Color::Cyan),
            (4, "failed", Color::Red),
        ] {
            let y = row_of(&buf, &format!("/d/mp{k} "));
            let (x, _) = find_in_row(&buf, word, [y]).unwrap_or_else(|| panic!("{word}:\n{t}"));
            assert_eq!(buf[(x, y)].fg, colour, "{word}:\n{t}");
        }
        for why in [
            "↳ past the high-water mark (95%)",
            "↳ marker names another target",
            "↳ I/O failing: EIO",
        ] {
            assert!(t.contains(why), "{why}:\n{t}");
        }
        // No resilver ran: no resilver line.
        assert!(!t.contains("resilver "), "{t}");
    }

    #[test]
    fn wide_detail_adds_the_filesystem_and_sizes() {
        let m = trouble_detail(false);
        let buf = render(&m, 200, 50);
        let t = text(&buf);
        let hdr = find(&buf, "MOUNTPATH").unwrap().1;
        for h in ["FS", "USED", "AVAIL", "TOTAL", "USE", "OBJECTS", "STATE"] {
            assert!(find_in_row(&buf, h, [hdr]).is_some(), "{h}:\n{t}");
        }
        // (The main screen's resilver strip names mp3 too, followed by a parenthesis.)
        let y = row_of(&buf, "/data/T01xt8101/mp3 ");
        assert!(find_in_row(&buf, "xfs /dev/sdd1", [y]).is_some(), "{t}");
        assert!(find_in_row(&buf, "1.953TiB", [y]).is_some(), "{t}");
        // The whole line fits the full-width strip of the main screen.
        let line = resilver_line(&running_resilver(1, "attach"));
        assert_eq!(find(&buf, &format!("resilver {line}")), Some((0, 2)), "{t}");
        // The first mountpath is selected when the detail opens.
        assert!(reversed(&buf, "/data/T01xt8101/mp1"));
    }

    #[test]
    fn many_mountpaths_scroll_to_keep_the_cursor_in_view() {
        let mut c = cluster(2);
        let base = c.targets[0].mountpaths[0].clone();
        c.targets[0].mountpaths = (0..20)
            .map(|k| MountpathStats {
                path: format!("/disks/mp{k:02}"),
                ..base.clone()
            })
            .collect();
        let mut m = model_with(&c, None, false);
        press(&mut m, KeyCode::Enter);
        press(&mut m, KeyCode::Char('G'));
        assert_eq!(m.mp_sel, 19);
        let buf = render(&m, 80, 24);
        let t = text(&buf);
        assert!(reversed(&buf, "/disks/mp19"), "{t}");
        assert!(t.contains("MOUNTPATH"), "the header stays:\n{t}");
        assert!(t.contains("x disable"), "the keys stay:\n{t}");
        assert!(t.contains("status      online"), "{t}");
        press(&mut m, KeyCode::Char('g'));
        let buf = render(&m, 80, 24);
        assert!(reversed(&buf, "/disks/mp00"), "{}", text(&buf));
    }

    #[test]
    fn readonly_detail_says_the_mountpath_keys_are_off() {
        let m = trouble_detail(true);
        let buf = render(&m, 80, 24);
        let t = text(&buf);
        assert!(t.contains("READ-ONLY: a/d/e/x disabled"), "{t}");
        assert!(!t.contains("a attach"), "{t}");
        assert!(
            t.contains("READ-ONLY: a/d/e/x m/s/D disabled"),
            "footer:\n{t}"
        );
    }

    #[test]
    fn running_resilvers_show_on_the_main_screen() {
        let mut c = cluster(3);
        storage_trouble(&mut c, 1);
        let m = model_with(&c, None, false);
        for (w, h) in [(80, 24), (200, 50)] {
            let buf = render(&m, w, h);
            let t = text(&buf);
            let (x, y) = find(&buf, "resilver r3 t[T01xt8101]: 120 of 500 objects")
                .unwrap_or_else(|| panic!("{w}x{h}:\n{t}"));
            assert_eq!((x, y), (0, 2), "under the header:\n{t}");
            assert_eq!(buf[(x, y)].fg, Color::Yellow);
            assert!(t.contains("(attach /data/T01xt8101/mp3)"), "{w}x{h}:\n{t}");
            let l = layout(Rect::new(0, 0, w, h), &m);
            assert_eq!(l.targets.y, l.resilver.y + l.resilver.height);
        }
        // A finished resilver leaves the main screen (it stays in the target's detail).
        let mut done = c.clone();
        let r = done.targets[1].resilver.as_mut().unwrap();
        r.state = RebState::Finished;
        r.objs_moved = 500;
        let m = model_with(&done, None, false);
        let buf = render(&m, 80, 24);
        assert!(!text(&buf).contains("resilver r3"), "{}", text(&buf));
        assert_eq!(layout(Rect::new(0, 0, 80, 24), &m).resilver.height, 0);
        // Many at once: a few whole lines, then how many more.
        let mut many = cluster(6);
        for i in 0..6 {
            many.targets[i].resilver = Some(running_resilver(i, "enable"));
        }
        let m = model_with(&many, None, false);
        let buf = render(&m, 80, 24);
        let t = text(&buf);
        let h = layout(Rect::new(0, 0, 80, 24), &m).resilver.height;
        assert!(
            (2..=4).contains(&h),
            "{h} rows:
{t}"
        );
        assert!(t.contains("resilver … and 5 more running"), "{t}");
    }

    fn disable_mp1(m: &mut shoal_tui::Model) -> MpRequest {
        let Some(shoal_tui::Command::MountpathDryRun(mut req)) = press(m, KeyCode::Char('x'))
        else {
            panic!("x sends a dry run")
        };
        req.op.dry_run = false;
        req
    }

    #[test]
    fn mountpath_dialog_shows_the_dry_run_command_and_undo() {
        let mut m = trouble_detail(false);
        let req = disable_mp1(&mut m);
        let t = text(&render(&m, 80, 24));
        assert!(t.contains("Confirm disable mountpath"), "{t}");
        assert!(t.contains("target: t[T01xt8101]"), "{t}");
        assert!(t.contains("mountpath: /data/T01xt8101/mp1"), "{t}");
        assert!(t.contains("dry run: asking t[T01xt8101]…"), "{t}");
        assert!(
            t.contains("nodectl storage mountpath disable t[T01xt8101] /data/T01xt8101/mp1 --yes"),
            "{t}"
        );
        assert!(t.contains("undo: can be undone with enable (key e)"), "{t}");
        update(
            &mut m,
            Action::MpDryRunDone {
                req: req.clone(),
                result: Ok(MountpathReply {
                    target: tid(1),
                    path: req.op.path.clone(),
                    objs: 600,
                    bytes: 300 << 30,
                    ..Default::default()
                }),
            },
        );
        let buf = render(&m, 80, 24);
        let t = text(&buf);
        assert!(
            t.contains("dry run: OK, 600 objects (300.0GiB) would move off it"),
            "{t}"
        );
        assert!(t.contains("Enter/y confirm   Esc cancel"), "{t}");
        let (x, y) = find(&buf, "┌ Confirm").unwrap();
        assert_eq!(buf[(x, y)].fg, Color::Yellow);
        assert!(only_named_colours(&buf));
    }

    #[test]
    fn a_refused_dry_run_shows_why_and_only_esc() {
        let mut m = trouble_detail(false);
        let req = disable_mp1(&mut m);
        let err = shoal_actors::Error::BadRequest(
            "cannot disable /data/T01xt8101/mp1: it is the only enabled mountpath of t[T01xt8101] and holds 600 objects (attach or enable another first)".into(),
        );
        update(
            &mut m,
            Action::MpDryRunDone {
                req,
                result: Err(CmdError::from(&err)),
            },
        );
        let buf = render(&m, 80, 24);
        let t = text(&buf);
        assert!(t.contains("dry run: NO (bad_request)"), "{t}");
        assert!(t.contains("only enabled mountpath"), "{t}");
        assert!(
            t.contains("(attach or enable another first)"),
            "whole reason:\n{t}"
        );
        assert!(t.contains("Esc close"), "{t}");
        assert!(!t.contains("Enter/y confirm"), "{t}");
        let (x, y) = find(&buf, "┌ Confirm").unwrap();
        assert_eq!(buf[(x, y)].fg, Color::Red);
    }

    #[test]
    fn attach_asks_for_the_directory() {
        let mut m = trouble_detail(false);
        press(&mut m, KeyCode::Char('a'));
        let t = text(&render(&m, 80, 24));
        assert!(t.contains("Attach a mountpath to t[T01xt8101]"), "{t}");
        // Starts next to the selected mountpath.
        assert!(t.contains("path: /data/T01xt8101/_"), "{t}");
        assert!(
            t.contains("Enter dry run   Ctrl-U clear   Esc cancel"),
            "{t}"
        );
        type_str(&mut m, "mp 9");
        let t = text(&render(&m, 80, 24));
        assert!(t.contains("path: /data/T01xt8101/mp 9_"), "{t}");
        assert!(
            t.contains(
                "nodectl storage mountpath attach t[T01xt8101] '/data/T01xt8101/mp 9' --yes"
            ),
            "quoted for the shell:\n{t}"
        );
    }
}

/// The targets table builds rows only for the window on screen (issue #15: ≤ 1 ms a frame at
/// 200 targets); these fail if the window and the selection ever part ways.
mod large_clusters {
    use super::*;
    use ratatui::buffer::Buffer;

    /// The target IDs on the body lines of the targets table at `area` (inside its border,
    /// below its header), top to bottom.
    fn target_rows(buf: &Buffer, area: Rect) -> Vec<String> {
        (area.y + 2..area.bottom().saturating_sub(1))
            .filter_map(|y| {
                let line: String = (area.x + 1..area.right().saturating_sub(1))
                    .map(|x| buf[(x, y)].symbol())
                    .collect();
                line.split_whitespace()
                    .find(|w| w.starts_with('T') && w.contains("xt"))
                    .map(String::from)
            })
            .collect()
    }

    /// Lines of the table body the terminal has room for.
    fn body_height(area: Rect) -> usize {
        usize::from(area.height.saturating_sub(3))
    }

    fn is_highlighted(buf: &Buffer, id: &str) -> bool {
        let (x, y) = find(buf, id).unwrap_or_else(|| panic!("{id} not on screen"));
        buf[(x, y)].modifier.contains(Modifier::REVERSED)
    }

    #[test]
    fn with_200_targets_the_selection_stays_on_screen_from_first_to_last() {
        let n = 200;
        let mut m = model_with(&cluster(n), None, false);
        let (w, h) = (120, 40);
        let area = layout(Rect::new(0, 0, w, h), &m).targets;
        let height = body_height(area);
        assert!(height > 5 && height < n, "{area:?}");

        // First page: rows 0.. as many as fit, the first one selected.
        let top = render(&m, w, h);
        let ids = target_rows(&top, area);
        assert_eq!(ids, (0..height).map(tid).collect::<Vec<_>>());
        assert!(is_highlighted(&top, &tid(0)));

        // End: the last target on the bottom line, highlighted, one full page above it.
        press(&mut m, KeyCode::End);
        assert_eq!(m.target_sel, n - 1);
        let bottom = render(&m, w, h);
        let ids = target_rows(&bottom, area);
        assert_eq!(ids, (n - height..n).map(tid).collect::<Vec<_>>());
        assert!(is_highlighted(&bottom, &tid(n - 1)));
        // Columns are sized over every target, not the window: the header does not move.
        let header = |b: &Buffer| lines(b)[usize::from(area.y) + 1].clone();
        assert_eq!(header(&top), header(&bottom));

        // One up: as before the window, the selection stays on the bottom line.
        press(&mut m, KeyCode::Up);
        let ids = target_rows(&render(&m, w, h), area);
        assert_eq!(ids.len(), height);
        assert_eq!(ids.last(), Some(&tid(n - 2)));

        // Back to the top: the first page again.
        press(&mut m, KeyCode::Home);
        let again = render(&m, w, h);
        assert_eq!(
            target_rows(&again, area),
            (0..height).map(tid).collect::<Vec<_>>()
        );
        assert!(is_highlighted(&again, &tid(0)));
        assert_eq!(lines(&again), lines(&top));
    }

    #[test]
    fn with_1000_targets_a_page_down_walk_always_shows_the_selected_row() {
        let n = 1000;
        let mut m = model_with(&cluster(n), None, false);
        let (w, h) = (200, 60);
        let area = layout(Rect::new(0, 0, w, h), &m).targets;
        let height = body_height(area);
        let mut seen = 0;
        while m.target_sel < n - 1 {
            press(&mut m, KeyCode::PageDown);
            let buf = render(&m, w, h);
            let (sel, ids) = (m.target_sel, target_rows(&buf, area));
            assert_eq!(ids.len(), height, "at {sel}");
            // The first page until the selection leaves it, then the selection at the bottom.
            let start = (sel + 1).saturating_sub(height);
            assert_eq!(ids, (start..start + height).map(tid).collect::<Vec<_>>());
            assert!(is_highlighted(&buf, &tid(sel)));
            seen += 1;
        }
        assert!(seen > 1);
    }

    #[test]
    fn a_filter_windows_the_matching_rows_only() {
        let n = 200;
        let mut m = model_with(&cluster(n), None, false);
        // `T1` matches T10..T19 and T100..T199: 110 targets.
        press(&mut m, KeyCode::Char('/'));
        type_str(&mut m, "T1");
        press(&mut m, KeyCode::Enter);
        let (w, h) = (120, 40);
        let area = layout(Rect::new(0, 0, w, h), &m).targets;
        let height = body_height(area);
        let buf = render(&m, w, h);
        assert!(text(&buf).contains("(110/200)"), "{}", text(&buf));
        let first: Vec<String> = (10..20).chain(100..200).map(tid).collect();
        assert_eq!(target_rows(&buf, area), first[..height]);
        press(&mut m, KeyCode::End);
        let buf = render(&m, w, h);
        assert_eq!(target_rows(&buf, area), first[first.len() - height..]);
        assert!(is_highlighted(&buf, &tid(199)));
    }

    #[test]
    fn the_rebalance_pane_lists_the_first_targets_that_fit() {
        let n = 200;
        let m = model_with(&cluster(n), Some(&running_rebalance(n, None)), false);
        let (w, h) = (200, 60);
        let reb = layout(Rect::new(0, 0, w, h), &m).rebalance;
        let buf = render(&m, w, h);
        let (ys, rows): (Vec<u16>, Vec<String>) = (reb.y..reb.bottom())
            .filter_map(|y| {
                let line: String = (reb.x + 1..reb.right() - 1)
                    .map(|x| buf[(x, y)].symbol())
                    .collect();
                line.split_whitespace()
                    .next()
                    .filter(|w| w.starts_with('T') && w.contains("xt"))
                    .map(|id| (y, id.to_string()))
            })
            .unzip();
        assert!(rows.len() > 3, "{}", text(&buf));
        assert_eq!(rows, (0..rows.len()).map(tid).collect::<Vec<_>>());
        // As many as fit: the last one on the pane's last line, inside its border.
        assert_eq!(ys.last(), Some(&(reb.bottom() - 2)));
    }
}
