//! Key sequences → commands, and snapshot diffs → events. Keys go through the same
//! `map_key` + `update` path as in the real terminal.

mod common;

use common::*;
use crossterm::event::{KeyCode, KeyModifiers};
use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleReply, LifecycleRequest};
use shoal_actors::types::smap::NodeId;
use shoal_tui::model::{Connection, Focus, PlanState, Severity};
use shoal_tui::update::{CmdError, LifecycleKey};
use shoal_tui::{Action, Command, Model, update};

fn req(op: LifecycleOp, ids: &[String], no_rebalance: bool) -> LifecycleRequest {
    LifecycleRequest {
        op,
        nodes: ids.iter().cloned().map(NodeId).collect(),
        no_rebalance,
        rm_user_data: false,
        dry_run: false,
    }
}

/// Answers the pending dry run the way the runner does (plan matched to the dialog's request).
fn answer_dry_run(m: &mut Model, cmd: Option<Command>) {
    let Some(Command::DryRun(r)) = cmd else {
        panic!("expected a dry run, got {cmd:?}")
    };
    assert!(r.dry_run);
    let node = r.nodes[0].0.clone();
    let r = LifecycleRequest {
        dry_run: false,
        ..r
    };
    assert_eq!(
        update(
            m,
            Action::DryRunDone {
                req: r,
                result: Ok(plan_for(&node)),
            }
        ),
        None
    );
}

fn is_mutation(c: &Command) -> bool {
    matches!(c, Command::DryRun(_) | Command::Lifecycle(_))
}

#[test]
fn m_on_online_target_dry_runs_then_starts_maintenance_on_confirm() {
    let mut m = model_with(&cluster(4), None, false);
    press(&mut m, KeyCode::Down);
    let dry = press(&mut m, KeyCode::Char('m'));
    let mut expected = req(LifecycleOp::StartMaintenance, &[tid(1)], false);
    expected.dry_run = true;
    assert_eq!(dry, Some(Command::DryRun(expected)));
    // No blind confirmation while the plan is still coming.
    assert_eq!(press(&mut m, KeyCode::Enter), None);
    assert!(m.dialog.is_some());
    answer_dry_run(&mut m, dry);
    assert!(matches!(
        m.dialog.as_ref().unwrap().plan,
        PlanState::Ready(_)
    ));
    let sent = press(&mut m, KeyCode::Enter);
    assert_eq!(
        sent,
        Some(Command::Lifecycle(req(
            LifecycleOp::StartMaintenance,
            &[tid(1)],
            false
        )))
    );
    assert!(m.dialog.is_none());
    assert!(
        m.events.iter().any(|e| e.text.contains(
            "sent: nodectl cluster add-remove-nodes start-maintenance t[T01xt8101] --yes"
        ))
    );
}

#[test]
fn y_also_confirms() {
    let mut m = model_with(&cluster(3), None, false);
    let dry = press(&mut m, KeyCode::Char('s'));
    answer_dry_run(&mut m, dry);
    assert_eq!(
        press(&mut m, KeyCode::Char('y')),
        Some(Command::Lifecycle(req(
            LifecycleOp::Shutdown,
            &[tid(0)],
            false
        )))
    );
}

#[test]
fn m_on_maintenance_target_stops_maintenance() {
    let mut c = cluster(4);
    in_maintenance(&mut c, 2, false);
    let mut m = model_with(&c, None, false);
    press(&mut m, KeyCode::Char('j'));
    press(&mut m, KeyCode::Char('j'));
    let dry = press(&mut m, KeyCode::Char('m'));
    assert_eq!(
        m.dialog.as_ref().unwrap().undo_text(),
        "can be undone with start-maintenance"
    );
    answer_dry_run(&mut m, dry);
    assert_eq!(
        press(&mut m, KeyCode::Enter),
        Some(Command::Lifecycle(req(
            LifecycleOp::StopMaintenance,
            &[tid(2)],
            false
        )))
    );
}

#[test]
fn decommission_needs_the_exact_node_id() {
    let mut m = model_with(&cluster(4), None, false);
    press(&mut m, KeyCode::Char('G'));
    let dry = press(&mut m, KeyCode::Char('D'));
    answer_dry_run(&mut m, dry);
    // Wrong ID: nothing is sent, the dialog stays and says what to type.
    assert!(type_str(&mut m, "T02xt8102").is_empty());
    assert_eq!(press(&mut m, KeyCode::Enter), None);
    assert!(m.dialog.is_some());
    assert!(m.status.as_ref().unwrap().text.contains("type T03xt8103"));
    // 'y' and 'n' are letters of the ID here, not confirm / no-rebalance.
    for _ in 0.."T02xt8102".len() {
        press(&mut m, KeyCode::Backspace);
    }
    assert!(type_str(&mut m, "T03xt810").is_empty());
    assert_eq!(
        press(&mut m, KeyCode::Enter),
        None,
        "a prefix is not enough"
    );
    assert!(type_str(&mut m, "3").is_empty());
    assert_eq!(
        press(&mut m, KeyCode::Enter),
        Some(Command::Lifecycle(req(
            LifecycleOp::Decommission,
            &[tid(3)],
            false
        )))
    );
}

#[test]
fn typed_confirmation_treats_y_and_n_as_letters() {
    let mut m = model_with(&cluster(2), None, false);
    let dry = press(&mut m, KeyCode::Char('D'));
    answer_dry_run(&mut m, dry);
    assert_eq!(press(&mut m, KeyCode::Char('y')), None);
    assert_eq!(press(&mut m, KeyCode::Char('n')), None);
    assert!(!m.no_rebalance);
    assert_eq!(m.dialog.as_ref().unwrap().typed, "yn");
}

#[test]
fn esc_cancels_without_sending_and_a_second_esc_quits() {
    let mut m = model_with(&cluster(3), None, false);
    let dry = press(&mut m, KeyCode::Char('m'));
    answer_dry_run(&mut m, dry);
    assert_eq!(press(&mut m, KeyCode::Esc), None);
    assert!(m.dialog.is_none() && !m.quit);
    // Enter now opens the details, it does not resurrect the dialog.
    assert_eq!(press(&mut m, KeyCode::Enter), None);
    assert!(m.detail);
    assert_eq!(press(&mut m, KeyCode::Esc), None);
    assert!(!m.detail && !m.quit);
    press(&mut m, KeyCode::Esc);
    assert!(m.quit);
}

#[test]
fn stale_dry_run_answers_are_ignored() {
    let mut m = model_with(&cluster(3), None, false);
    press(&mut m, KeyCode::Char('m'));
    press(&mut m, KeyCode::Esc);
    press(&mut m, KeyCode::Char('s'));
    update(
        &mut m,
        Action::DryRunDone {
            req: req(LifecycleOp::StartMaintenance, &[tid(0)], false),
            result: Ok(plan_for(&tid(0))),
        },
    );
    assert_eq!(m.dialog.as_ref().unwrap().plan, PlanState::Loading);
}

#[test]
fn space_marks_a_batch_sent_as_one_request() {
    let mut m = model_with(&cluster(4), None, false);
    press(&mut m, KeyCode::Char(' ')); // marks T00, cursor moves to T01
    press(&mut m, KeyCode::Char('j')); // skip T01
    press(&mut m, KeyCode::Char(' ')); // marks T02
    assert_eq!(m.marked.len(), 2);
    let dry = press(&mut m, KeyCode::Char('m'));
    let d = m.dialog.as_ref().unwrap();
    assert_eq!(d.labels, ["t[T00xt8100]", "t[T02xt8102]"]);
    assert_eq!(
        d.nodectl_command(),
        "nodectl cluster add-remove-nodes start-maintenance t[T00xt8100] t[T02xt8102] --yes"
    );
    answer_dry_run(&mut m, dry);
    assert_eq!(
        press(&mut m, KeyCode::Enter),
        Some(Command::Lifecycle(req(
            LifecycleOp::StartMaintenance,
            &[tid(0), tid(2)],
            false
        )))
    );
    assert!(m.marked.is_empty(), "a sent batch is done with");
    // Space again unmarks.
    press(&mut m, KeyCode::Char('g'));
    press(&mut m, KeyCode::Char(' '));
    press(&mut m, KeyCode::Char('k'));
    press(&mut m, KeyCode::Char(' '));
    assert!(m.marked.is_empty());
}

#[test]
fn batch_mixing_online_and_maintenance_is_refused() {
    let mut c = cluster(3);
    in_maintenance(&mut c, 1, true);
    let mut m = model_with(&c, None, false);
    press(&mut m, KeyCode::Char(' '));
    press(&mut m, KeyCode::Char(' '));
    assert_eq!(press(&mut m, KeyCode::Char('m')), None);
    assert!(m.dialog.is_none());
    assert!(
        m.status
            .as_ref()
            .unwrap()
            .text
            .contains("mix online and maintenance")
    );
}

#[test]
fn n_sets_no_rebalance_for_the_next_request_only() {
    let mut m = model_with(&cluster(3), None, false);
    press(&mut m, KeyCode::Char('n'));
    assert!(m.no_rebalance);
    assert!(m.status.as_ref().unwrap().text.contains("data may be lost"));
    let dry = press(&mut m, KeyCode::Char('m'));
    let Some(Command::DryRun(r)) = &dry else {
        panic!("{dry:?}")
    };
    assert!(r.no_rebalance);
    answer_dry_run(&mut m, dry);
    assert_eq!(
        press(&mut m, KeyCode::Enter),
        Some(Command::Lifecycle(req(
            LifecycleOp::StartMaintenance,
            &[tid(0)],
            true
        )))
    );
    assert!(!m.no_rebalance, "disarmed after one action");
}

#[test]
fn n_inside_a_dialog_toggles_and_asks_for_a_new_plan() {
    let mut m = model_with(&cluster(3), None, false);
    let dry = press(&mut m, KeyCode::Char('m'));
    answer_dry_run(&mut m, dry);
    let again = press(&mut m, KeyCode::Char('n'));
    let mut expected = req(LifecycleOp::StartMaintenance, &[tid(0)], true);
    expected.dry_run = true;
    assert_eq!(again, Some(Command::DryRun(expected)));
    assert_eq!(m.dialog.as_ref().unwrap().plan, PlanState::Loading);
    assert!(
        m.dialog
            .as_ref()
            .unwrap()
            .nodectl_command()
            .contains("--no-rebalance")
    );
}

#[test]
fn keys_the_console_identity_may_not_use_are_refused_with_the_reason() {
    let mut c = cluster(4);
    in_maintenance(&mut c, 1, false);
    let mut m = model_with(&c, None, false);
    assert_eq!(
        update(
            &mut m,
            Action::Identity(Ok(identity("reader", &["read-only"])))
        ),
        None
    );
    assert!(
        m.events
            .iter()
            .any(|e| e.text == "acting as reader (read-only)")
    );
    for k in [
        KeyCode::Char('m'),
        KeyCode::Char('s'),
        KeyCode::Char('D'),
        KeyCode::Char('P'),
        KeyCode::Char(' '),
        KeyCode::Char('n'),
    ] {
        if let Some(cmd) = press(&mut m, k) {
            assert!(!is_mutation(&cmd), "{k:?} produced {cmd:?}");
        }
        assert!(
            m.dialog.is_none() && m.reb_dialog.is_none(),
            "{k:?} opened a dialog"
        );
        let st = m.status.clone().expect("a reason");
        assert_eq!(st.severity, Severity::Warn);
        assert!(
            st.text
                .starts_with("forbidden: reader (roles: read-only) may not use ")
                && st.text.ends_with("that needs cluster-admin (role admin)"),
            "{k:?}: {}",
            st.text
        );
    }
    assert!(m.marked.is_empty() && !m.no_rebalance);
    // A bucket admin may not either; a cluster admin may.
    update(
        &mut m,
        Action::Identity(Ok(identity("bucketeer", &["bucket-admin"]))),
    );
    assert_eq!(press(&mut m, KeyCode::Char('m')), None);
    assert!(m.status.as_ref().unwrap().text.contains("bucketeer"));
    update(&mut m, Action::Identity(Ok(identity("boss", &["admin"]))));
    let cmd = press(&mut m, KeyCode::Char('m'));
    assert!(matches!(cmd, Some(Command::DryRun(_))), "{cmd:?}");
    // Not known (or not asked): the cluster decides, as before.
    let mut m = model_with(&c, None, false);
    update(
        &mut m,
        Action::Identity(Err("unauthorized: token revoked".into())),
    );
    assert!(m.identity.is_none());
    assert!(matches!(
        press(&mut m, KeyCode::Char('m')),
        Some(Command::DryRun(_))
    ));
}

#[test]
fn readonly_console_never_produces_cluster_commands() {
    let mut c = cluster(4);
    in_maintenance(&mut c, 1, false);
    let mut m = model_with(&c, None, true);
    let keys = [
        KeyCode::Char(' '),
        KeyCode::Char('n'),
        KeyCode::Char('m'),
        KeyCode::Enter,
        KeyCode::Char('y'),
        KeyCode::Esc,
        KeyCode::Char('j'),
        KeyCode::Char('m'),
        KeyCode::Char('s'),
        KeyCode::Char('D'),
        KeyCode::Char('y'),
        KeyCode::Tab,
        KeyCode::Char('s'),
        KeyCode::Enter,
    ];
    for k in keys {
        if let Some(cmd) = press(&mut m, k) {
            assert!(!is_mutation(&cmd), "{k:?} produced {cmd:?}");
        }
    }
    assert!(m.marked.is_empty() && !m.no_rebalance && m.dialog.is_none());
    // Even actions that bypass the key map are refused.
    for key in [
        LifecycleKey::ToggleMaintenance,
        LifecycleKey::Shutdown,
        LifecycleKey::Decommission,
    ] {
        assert_eq!(update(&mut m, Action::Lifecycle(key)), None);
        assert!(m.dialog.is_none());
    }
    assert_eq!(update(&mut m, Action::ToggleMark), None);
    assert!(m.marked.is_empty());
    assert!(m.status.as_ref().unwrap().text.contains("read-only"));
}

#[test]
fn the_primary_is_protected_and_proxies_can_be_acted_on() {
    let mut m = model_with(&cluster(2), None, false);
    press(&mut m, KeyCode::Tab);
    assert_eq!(m.focus, Focus::Proxies);
    assert_eq!(press(&mut m, KeyCode::Char('s')), None);
    assert!(
        m.status
            .as_ref()
            .unwrap()
            .text
            .contains("p[MWIp8080] is primary")
    );
    press(&mut m, KeyCode::Down);
    let dry = press(&mut m, KeyCode::Char('s'));
    answer_dry_run(&mut m, dry);
    assert_eq!(
        m.dialog.as_ref().unwrap().nodectl_command(),
        "nodectl cluster add-remove-nodes shutdown p[Qz7p8090] --yes"
    );
    assert_eq!(
        press(&mut m, KeyCode::Enter),
        Some(Command::Lifecycle(req(
            LifecycleOp::Shutdown,
            &[NON_ELECTABLE.to_string()],
            false
        )))
    );
}

#[test]
fn refusals_are_reported_not_fatal() {
    let mut m = model_with(&cluster(3), None, false);
    let r = req(LifecycleOp::StartMaintenance, &[tid(0)], false);
    for (err, expect) in [
        (
            shoal_actors::Error::Busy("rebalance g7 is running".into()),
            "refused (busy): rebalance g7 is running",
        ),
        (
            shoal_actors::Error::Unauthorized("token expired".into()),
            "refused (unauthorized)",
        ),
        (
            shoal_actors::Error::Forbidden("admin required".into()),
            "refused (forbidden)",
        ),
    ] {
        let cmd = update(
            &mut m,
            Action::LifecycleDone {
                req: r.clone(),
                result: Err(CmdError::from(&err)),
            },
        );
        assert_eq!(cmd, Some(Command::Refresh));
        let s = m.status.as_ref().unwrap();
        assert_eq!(s.severity, Severity::Warn);
        assert!(s.text.contains(expect), "{}", s.text);
        assert!(
            s.text.contains("start-maintenance t[T00xt8100]"),
            "{}",
            s.text
        );
        assert!(m.events.back().unwrap().text.contains(expect));
        assert!(!m.quit);
    }
    // A plain failure is an error, still not a crash.
    update(
        &mut m,
        Action::LifecycleDone {
            req: r.clone(),
            result: Err(CmdError::from(&shoal_actors::Error::Timeout("x".into()))),
        },
    );
    assert_eq!(m.status.as_ref().unwrap().severity, Severity::Error);
    // Success names the rebalance.
    update(
        &mut m,
        Action::LifecycleDone {
            req: r,
            result: Ok(LifecycleReply {
                rebalance_id: Some("g8".into()),
                smap_version: 13,
                ..Default::default()
            }),
        },
    );
    assert!(
        m.events
            .back()
            .unwrap()
            .text
            .contains("started rebalance \"g8\"")
    );
}

#[test]
fn navigation_keys_and_filter() {
    let mut m = model_with(&cluster(12), None, false);
    press(&mut m, KeyCode::Char('G'));
    assert_eq!(m.target_sel, 11);
    press(&mut m, KeyCode::Char('j'));
    assert_eq!(m.target_sel, 11, "stops at the bottom");
    press(&mut m, KeyCode::Up);
    press(&mut m, KeyCode::Char('k'));
    assert_eq!(m.target_sel, 9);
    press(&mut m, KeyCode::Char('g'));
    assert_eq!(m.target_sel, 0);
    press(&mut m, KeyCode::PageDown);
    assert_eq!(m.target_sel, 10);

    press(&mut m, KeyCode::Char('/'));
    assert!(
        type_str(&mut m, "T1").is_empty(),
        "typing a filter sends nothing"
    );
    assert_eq!(m.filter, "T1");
    let shown: Vec<&str> = m.visible_targets().iter().map(|n| n.id.as_str()).collect();
    assert_eq!(shown, [tid(10), tid(11)]);
    assert!(m.target_sel < 2, "cursor clamped into the filtered rows");
    press(&mut m, KeyCode::Enter);
    assert!(!m.filter_editing && m.filter == "T1");
    // Keys act on the filtered row.
    press(&mut m, KeyCode::Char('g'));
    press(&mut m, KeyCode::Char('m'));
    assert_eq!(m.dialog.as_ref().unwrap().labels, ["t[T10xt8110]"]);
    press(&mut m, KeyCode::Esc); // closes the dialog
    press(&mut m, KeyCode::Esc); // clears the filter
    assert!(m.filter.is_empty() && !m.quit);
    assert_eq!(m.visible_targets().len(), 12);
}

#[test]
fn quit_keys() {
    let mut m = model_with(&cluster(1), None, false);
    press(&mut m, KeyCode::Char('q'));
    assert!(m.quit);
    let mut m = model_with(&cluster(1), None, false);
    press(&mut m, KeyCode::Char('D'));
    press_mod(&mut m, KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(m.quit, "Ctrl-C quits even from a dialog");
    let mut m = model_with(&cluster(1), None, false);
    press(&mut m, KeyCode::Char('m'));
    press(&mut m, KeyCode::Char('q'));
    assert!(!m.quit && m.dialog.is_none(), "q closes the dialog first");
}

#[test]
fn snapshot_diffs_become_timestamped_events() {
    let c = cluster(3);
    let mut m = model_with(&c, None, false);
    let mut next = c.clone();
    in_maintenance(&mut next, 1, true);
    next.smap_version = 13;
    let reb = running_rebalance(3, None);
    update(&mut m, snapshot(&next, Some(&reb), T0 + 10));
    let texts: Vec<&str> = m.events.iter().map(|e| e.text.as_str()).collect();
    assert!(
        texts.contains(&"t[T01xt8101] online → maintenance"),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"rebalance g5 started (running)"),
        "{texts:?}"
    );
    assert_eq!(m.events.back().unwrap().at, T0 + 10);

    let mut done = next.clone();
    in_maintenance(&mut done, 1, false);
    offline(&mut done, 2);
    done.targets.remove(0);
    update(
        &mut m,
        snapshot(&done, Some(&finished_rebalance()), T0 + 20),
    );
    let texts: Vec<&str> = m.events.iter().map(|e| e.text.as_str()).collect();
    assert!(
        texts.contains(&"t[T01xt8101] finished migrating: safe to power off"),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"t[T02xt8102] online → offline"),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"t[T00xt8100] removed from the cluster map"),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("rebalance g5 finished: 5,000 objects")),
        "{texts:?}"
    );
    // An unchanged snapshot adds nothing.
    let n = m.events.len();
    update(
        &mut m,
        snapshot(&done, Some(&finished_rebalance()), T0 + 30),
    );
    assert_eq!(m.events.len(), n);
}

#[test]
fn selection_follows_the_node_when_rows_change() {
    let c = cluster(4);
    let mut m = model_with(&c, None, false);
    press(&mut m, KeyCode::Char('G')); // T03
    let mut next = c.clone();
    next.targets.remove(0);
    update(&mut m, snapshot(&next, None, T0 + 1));
    assert_eq!(m.selected().unwrap().id, tid(3));
    next.targets.truncate(1);
    update(&mut m, snapshot(&next, None, T0 + 2));
    assert_eq!(
        m.selected().unwrap().id,
        tid(1),
        "clamped when the node left"
    );
}

#[test]
fn unreachable_then_back_keeps_retrying_and_logs_both() {
    let mut m = model_with(&cluster(2), None, false);
    for i in 1..=3 {
        update(
            &mut m,
            Action::Unreachable {
                error: "connection refused".into(),
                at: T0 + i,
            },
        );
    }
    assert!(matches!(
        m.connection,
        Connection::Unreachable { attempts: 3, since, .. } if since == T0 + 1
    ));
    assert!(!m.quit);
    let unreachable_logs = m
        .events
        .iter()
        .filter(|e| e.text.contains("cluster unreachable at 127.0.0.1:51080"))
        .count();
    assert_eq!(unreachable_logs, 1, "one log line per outage, not per poll");
    update(&mut m, snapshot(&cluster(2), None, T0 + 9));
    assert_eq!(m.connection, Connection::Connected);
    assert!(
        m.events
            .back()
            .unwrap()
            .text
            .contains("reachable again after 3 failed polls")
    );
}

#[test]
fn refresh_key_asks_for_a_poll() {
    let mut m = model_with(&cluster(1), None, true);
    assert_eq!(press(&mut m, KeyCode::Char('r')), Some(Command::Refresh));
}

/// Mountpath keys in a target's detail (`a`, `d`, `e`, `x`), their dialog, and the events
/// derived from resilvers and mountpath states.
mod mountpaths {
    use super::*;
    use shoal_actors::proto::msg::MountpathOp;
    use shoal_actors::types::status::{MpState, RebState};
    use shoal_actors::types::storage::{MountpathReply, MpAction};
    use shoal_tui::model::MpStep;
    use shoal_tui::update::MpRequest;

    fn mp_path(t: usize, k: usize) -> String {
        format!("/data/{}/mp{k}", tid(t))
    }

    /// A console with target 1's detail open.
    fn detail(readonly: bool) -> Model {
        let mut m = model_with(&cluster(3), None, readonly);
        press(&mut m, KeyCode::Down);
        press(&mut m, KeyCode::Enter);
        assert!(m.detail);
        m
    }

    fn mp_req(action: MpAction, path: &str) -> MpRequest {
        MpRequest {
            target: tid(1),
            addr: "10.0.0.11:8101".into(),
            op: MountpathOp {
                action,
                path: path.into(),
                dry_run: false,
            },
        }
    }

    fn dry(r: &MpRequest) -> MpRequest {
        let mut r = r.clone();
        r.op.dry_run = true;
        r
    }

    fn ok_reply(r: &MpRequest, objs: u64) -> MountpathReply {
        MountpathReply {
            target: r.target.clone(),
            path: r.op.path.clone(),
            dry_run: true,
            objs,
            bytes: objs << 20,
            ..Default::default()
        }
    }

    fn is_mp_mutation(c: &Command) -> bool {
        matches!(c, Command::MountpathDryRun(_) | Command::Mountpath(_))
    }

    #[test]
    fn arrows_pick_a_mountpath_in_a_target_detail_and_nodes_outside_it() {
        let mut m = detail(false);
        assert_eq!(m.mp_sel, 0);
        press(&mut m, KeyCode::Char('j'));
        assert_eq!((m.mp_sel, m.target_sel), (1, 1), "the node stays");
        press(&mut m, KeyCode::Down);
        assert_eq!(m.mp_sel, 1, "clamped to the last mountpath");
        press(&mut m, KeyCode::Char('k'));
        assert_eq!(m.mp_sel, 0);
        press(&mut m, KeyCode::Char('G'));
        assert_eq!(m.selected_mountpath().unwrap().path, mp_path(1, 2));
        // Esc is still "back", and then the arrows move between nodes again.
        press(&mut m, KeyCode::Esc);
        assert!(!m.detail && !m.quit);
        press(&mut m, KeyCode::Char('j'));
        assert_eq!(m.target_sel, 2);
        // Reopening starts at the first mountpath.
        press(&mut m, KeyCode::Enter);
        assert_eq!(m.mp_sel, 0);
    }

    #[test]
    fn x_dry_runs_then_disables_the_selected_mountpath_on_confirm() {
        let mut m = detail(false);
        press(&mut m, KeyCode::Char('j'));
        let want = mp_req(MpAction::Disable, &mp_path(1, 2));
        assert_eq!(
            press(&mut m, KeyCode::Char('x')),
            Some(Command::MountpathDryRun(dry(&want)))
        );
        // No blind confirmation while the target has not answered.
        assert_eq!(press(&mut m, KeyCode::Enter), None);
        assert_eq!(press(&mut m, KeyCode::Char('y')), None);
        assert!(
            m.status
                .as_ref()
                .unwrap()
                .text
                .contains("waiting for the dry run")
        );
        assert_eq!(m.mp_dialog.as_ref().unwrap().step, MpStep::Loading);
        update(
            &mut m,
            Action::MpDryRunDone {
                req: want.clone(),
                result: Ok(ok_reply(&want, 401)),
            },
        );
        assert!(matches!(
            m.mp_dialog.as_ref().unwrap().step,
            MpStep::Ready(ref r) if r.objs == 401
        ));
        assert_eq!(
            press(&mut m, KeyCode::Enter),
            Some(Command::Mountpath(want.clone()))
        );
        assert!(m.mp_dialog.is_none() && m.detail, "back to the detail");
        assert!(
            m.events.back().unwrap().text.ends_with(&format!(
                "sent: nodectl storage mountpath disable t[{}] {} --yes",
                tid(1),
                mp_path(1, 2)
            )),
            "{:?}",
            m.events.back()
        );
        let cmd = update(
            &mut m,
            Action::MountpathDone {
                req: want.clone(),
                result: Ok(MountpathReply {
                    state: MpState::Disabled,
                    resilver_id: Some("r4".into()),
                    ..ok_reply(&want, 401)
                }),
            },
        );
        assert_eq!(cmd, Some(Command::Refresh));
        let s = m.status.as_ref().unwrap();
        assert_eq!(s.severity, Severity::Notice);
        assert!(
            s.text.ends_with(": disabled, resilver \"r4\" started"),
            "{}",
            s.text
        );
        assert_eq!(m.events.back().unwrap().text, s.text);
    }

    #[test]
    fn d_and_e_act_on_the_selected_mountpath() {
        for (key, action) in [('d', MpAction::Detach), ('e', MpAction::Enable)] {
            let mut m = detail(false);
            let cmd = press(&mut m, KeyCode::Char(key));
            assert_eq!(
                cmd,
                Some(Command::MountpathDryRun(dry(&mp_req(
                    action,
                    &mp_path(1, 1)
                ))))
            );
            let d = m.mp_dialog.as_ref().unwrap();
            let undo = if action == MpAction::Detach {
                "attach (key a)"
            } else {
                "disable (key x)"
            };
            assert!(d.undo_text().contains(undo), "{}", d.undo_text());
        }
    }

    #[test]
    fn a_asks_for_the_path_then_dry_runs_it() {
        let mut m = detail(false);
        assert_eq!(press(&mut m, KeyCode::Char('a')), None, "nothing sent yet");
        let d = m.mp_dialog.as_ref().unwrap();
        assert_eq!(d.step, MpStep::EnterPath);
        assert_eq!(d.req.op.path, format!("/data/{}/", tid(1)));
        // Ctrl-U clears; every letter is part of the path, q and y and j included.
        press_mod(&mut m, KeyCode::Char('u'), KeyModifiers::CONTROL);
        assert_eq!(m.mp_dialog.as_ref().unwrap().req.op.path, "");
        assert!(type_str(&mut m, "/mnt/qyjdx-disk9").is_empty());
        press(&mut m, KeyCode::Backspace);
        assert!(!m.quit && m.mp_dialog.is_some());
        let want = mp_req(MpAction::Attach, "/mnt/qyjdx-disk");
        assert_eq!(
            press(&mut m, KeyCode::Enter),
            Some(Command::MountpathDryRun(dry(&want)))
        );
        // Now typing is over: y confirms, but only after the answer.
        assert_eq!(press(&mut m, KeyCode::Char('y')), None);
        update(
            &mut m,
            Action::MpDryRunDone {
                req: want.clone(),
                result: Ok(ok_reply(&want, 12)),
            },
        );
        assert_eq!(
            press(&mut m, KeyCode::Char('y')),
            Some(Command::Mountpath(want))
        );
    }

    #[test]
    fn an_empty_path_is_not_sent() {
        let mut m = detail(false);
        press(&mut m, KeyCode::Char('a'));
        press_mod(&mut m, KeyCode::Char('u'), KeyModifiers::CONTROL);
        type_str(&mut m, "   ");
        assert_eq!(press(&mut m, KeyCode::Enter), None);
        assert_eq!(m.mp_dialog.as_ref().unwrap().step, MpStep::EnterPath);
        assert_eq!(m.status.as_ref().unwrap().severity, Severity::Warn);
    }

    #[test]
    fn esc_cancels_at_every_step_and_sends_nothing() {
        // While typing.
        let mut m = detail(false);
        press(&mut m, KeyCode::Char('a'));
        type_str(&mut m, "new");
        assert_eq!(press(&mut m, KeyCode::Esc), None);
        assert!(m.mp_dialog.is_none() && m.detail);
        assert!(m.status.as_ref().unwrap().text.contains("nothing was sent"));
        // While the dry run is out: its late answer is ignored.
        let want = mp_req(MpAction::Detach, &mp_path(1, 1));
        press(&mut m, KeyCode::Char('d'));
        press(&mut m, KeyCode::Char('q')); // q closes the dialog, it does not quit
        assert!(m.mp_dialog.is_none() && !m.quit);
        update(
            &mut m,
            Action::MpDryRunDone {
                req: want.clone(),
                result: Ok(ok_reply(&want, 600)),
            },
        );
        assert!(m.mp_dialog.is_none());
        // After the answer.
        press(&mut m, KeyCode::Char('d'));
        update(
            &mut m,
            Action::MpDryRunDone {
                req: want.clone(),
                result: Ok(ok_reply(&want, 600)),
            },
        );
        assert_eq!(press(&mut m, KeyCode::Esc), None);
        assert!(m.mp_dialog.is_none() && m.detail);
        // Nothing pressed after a cancel sends anything.
        for k in [KeyCode::Enter, KeyCode::Char('y')] {
            if let Some(c) = press(&mut m, k) {
                assert!(!is_mp_mutation(&c), "{k:?} sent {c:?}");
            }
        }
        // Esc again closes the detail, and only then would quit.
        press(&mut m, KeyCode::Esc);
        assert!(!m.detail && !m.quit);
    }

    #[test]
    fn a_refused_dry_run_cannot_be_confirmed() {
        let mut m = detail(false);
        press(&mut m, KeyCode::Char('x'));
        let want = mp_req(MpAction::Disable, &mp_path(1, 1));
        let err = shoal_actors::Error::BadRequest(
            "cannot disable /data/x/mp1: it is the only enabled mountpath of t[x] and holds 3 objects (attach or enable another first)"
                .into(),
        );
        update(
            &mut m,
            Action::MpDryRunDone {
                req: want,
                result: Err(CmdError::from(&err)),
            },
        );
        let s = m.status.as_ref().unwrap();
        assert_eq!(s.severity, Severity::Warn);
        assert!(s.text.contains("only enabled mountpath"), "{}", s.text);
        for k in [KeyCode::Enter, KeyCode::Char('y')] {
            assert_eq!(press(&mut m, k), None);
        }
        assert!(matches!(
            m.mp_dialog.as_ref().unwrap().step,
            MpStep::Refused(_)
        ));
        press(&mut m, KeyCode::Esc);
        assert!(m.mp_dialog.is_none());
    }

    #[test]
    fn refusals_of_the_operation_are_warnings_in_status_and_log() {
        let mut m = detail(false);
        let r = mp_req(MpAction::Attach, "/mnt/new");
        for (err, expect, sev) in [
            (
                shoal_actors::Error::Unauthorized("admin token required".into()),
                "refused (unauthorized)",
                Severity::Warn,
            ),
            (
                shoal_actors::Error::Forbidden("admin required".into()),
                "refused (forbidden)",
                Severity::Warn,
            ),
            (
                shoal_actors::Error::BadRequest(
                    "/mnt/new: marker names another target: a disk from another node".into(),
                ),
                "failed: bad request: /mnt/new: marker names another target",
                Severity::Warn,
            ),
            (
                shoal_actors::Error::Timeout("t[x]".into()),
                "failed: timed out",
                Severity::Error,
            ),
        ] {
            let cmd = update(
                &mut m,
                Action::MountpathDone {
                    req: r.clone(),
                    result: Err(CmdError::from(&err)),
                },
            );
            assert_eq!(cmd, Some(Command::Refresh));
            let s = m.status.as_ref().unwrap();
            assert_eq!(s.severity, sev, "{}", s.text);
            assert!(s.text.contains(expect), "{}", s.text);
            assert!(s.text.contains(&format!("attach t[{}] /mnt/new", tid(1))));
            let e = m.events.back().unwrap();
            assert_eq!((e.severity, &e.text), (sev, &s.text));
        }
    }

    #[test]
    fn readonly_console_has_no_mountpath_keys() {
        let mut m = detail(true);
        for k in ['a', 'd', 'e', 'x', 'y'] {
            assert_eq!(press(&mut m, KeyCode::Char(k)), None, "{k}");
        }
        assert!(m.mp_dialog.is_none());
        // Even actions that bypass the key map are refused, and say so.
        for a in [
            MpAction::Attach,
            MpAction::Detach,
            MpAction::Enable,
            MpAction::Disable,
        ] {
            assert_eq!(update(&mut m, Action::Mountpath(a)), None);
            assert!(m.mp_dialog.is_none());
            let s = m.status.as_ref().unwrap();
            assert_eq!(s.severity, Severity::Warn);
            assert!(s.text.contains("read-only"), "{}", s.text);
        }
    }

    #[test]
    fn mountpath_keys_mean_nothing_outside_a_target_detail() {
        let mut m = model_with(&cluster(3), None, false);
        for k in ['a', 'd', 'e', 'x'] {
            assert_eq!(press(&mut m, KeyCode::Char(k)), None, "{k}");
            assert!(m.mp_dialog.is_none());
        }
        // A proxy's detail has no mountpaths.
        press(&mut m, KeyCode::Tab);
        press(&mut m, KeyCode::Enter);
        assert!(m.detail);
        for k in ['a', 'd', 'e', 'x'] {
            assert_eq!(press(&mut m, KeyCode::Char(k)), None, "{k}");
            assert!(m.mp_dialog.is_none());
        }
        assert_eq!(update(&mut m, Action::Mountpath(MpAction::Attach)), None);
        assert!(m.status.as_ref().unwrap().text.contains("target's detail"));
    }

    #[test]
    fn the_cursor_stays_on_its_mountpath_across_snapshots() {
        let mut c = cluster(3);
        let mut m = model_with(&c, None, false);
        press(&mut m, KeyCode::Down);
        press(&mut m, KeyCode::Enter);
        press(&mut m, KeyCode::Down);
        assert_eq!(m.selected_mountpath().unwrap().path, mp_path(1, 2));
        // A mountpath attached before it in the list.
        let mut first = c.targets[1].mountpaths[0].clone();
        first.path = "/data/aaa".into();
        c.targets[1].mountpaths.insert(0, first);
        update(&mut m, snapshot(&c, None, T0 + 1));
        assert_eq!(m.selected_mountpath().unwrap().path, mp_path(1, 2));
        // It is detached: the cursor stays within the list.
        c.targets[1].mountpaths.remove(2);
        update(&mut m, snapshot(&c, None, T0 + 2));
        assert_eq!(m.mp_sel, 1);
        assert!(m.selected_mountpath().is_some());
    }

    fn events_after(
        prev: &shoal_actors::types::status::ClusterStatus,
        next: &shoal_actors::types::status::ClusterStatus,
    ) -> Vec<(Severity, String)> {
        let mut m = model_with(prev, None, false);
        let before = m.events.len();
        update(&mut m, snapshot(next, None, T0 + 5));
        m.events
            .iter()
            .skip(before)
            .map(|e| (e.severity, e.text.clone()))
            .collect()
    }

    #[test]
    fn resilvers_starting_finishing_and_waiting_are_logged() {
        let c0 = cluster(3);
        let mut c1 = c0.clone();
        c1.targets[1].resilver = Some(running_resilver(1, "attach"));
        let t1 = format!("t[{}]", tid(1));
        assert_eq!(
            events_after(&c0, &c1),
            [(
                Severity::Notice,
                format!("resilver r3 on {t1} started (attach /data/{}/mp3)", tid(1))
            )]
        );
        // Blocked behind a global rebalance: said once, with the reason.
        let mut c2 = c1.clone();
        c2.targets[1].resilver.as_mut().unwrap().blocked_by =
            Some("global rebalance g6 is running".into());
        assert_eq!(
            events_after(&c1, &c2),
            [(
                Severity::Warn,
                format!("resilver r3 on {t1} waits: global rebalance g6 is running")
            )]
        );
        assert!(events_after(&c2, &c2).is_empty());
        // Finished, with errors: a warning with the counts.
        let mut c3 = c1.clone();
        let r = c3.targets[1].resilver.as_mut().unwrap();
        r.state = RebState::Finished;
        r.objs_moved = 498;
        r.bytes_moved = 5 << 20;
        r.errors = 2;
        assert_eq!(
            events_after(&c1, &c3),
            [(
                Severity::Warn,
                format!(
                    "resilver r3 on {t1} finished: 498 objects, 5.000MiB moved, 2 errors (attach /data/{}/mp3)",
                    tid(1)
                )
            )]
        );
        assert!(events_after(&c3, &c3).is_empty(), "said once");
        // Started and finished between two polls: both lines; a clean finish is a notice.
        let mut c4 = c3.clone();
        c4.targets[1].resilver.as_mut().unwrap().errors = 0;
        let ev = events_after(&c0, &c4);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(ev[0].1.contains("started") && ev[1].1.contains("finished"));
        assert_eq!(ev[1].0, Severity::Notice);
        // Already running when the console starts.
        let m = model_with(&c1, None, false);
        assert!(
            m.events.iter().any(|e| e.text
                == format!(
                    "resilver r3 on {t1} is running (attach /data/{}/mp3)",
                    tid(1)
                )),
            "{:?}",
            m.events
        );
    }

    #[test]
    fn mountpath_state_changes_are_logged_with_the_reason() {
        let c0 = cluster(3);
        let t1 = format!("t[{}]", tid(1));
        let mut c1 = c0.clone();
        let mp = &mut c1.targets[1].mountpaths[1];
        mp.state = MpState::Failed;
        mp.enabled = false;
        mp.reason = Some("I/O failing: Input/output error (os error 5)".into());
        assert_eq!(
            events_after(&c0, &c1),
            [(
                Severity::Error,
                format!(
                    "{t1} mountpath {}: enabled → failed (I/O failing: Input/output error (os error 5))",
                    mp_path(1, 2)
                )
            )]
        );
        // Full, then attached, then detached.
        let mut c2 = c0.clone();
        c2.targets[1].mountpaths[0].full = true;
        let ev = events_after(&c0, &c2);
        assert_eq!(ev[0].0, Severity::Warn);
        assert!(ev[0].1.ends_with("enabled → enabled (full)"), "{ev:?}");
        let mut c3 = c0.clone();
        let mut new = c3.targets[1].mountpaths[0].clone();
        new.path = "/mnt/new".into();
        c3.targets[1].mountpaths.push(new);
        assert_eq!(
            events_after(&c0, &c3),
            [(
                Severity::Notice,
                format!("{t1} mountpath /mnt/new: attached (enabled)")
            )]
        );
        assert_eq!(
            events_after(&c3, &c0),
            [(
                Severity::Notice,
                format!("{t1} mountpath /mnt/new: detached")
            )]
        );
        // A node that stops answering reports no mountpaths: not a mass detach.
        let mut c4 = c0.clone();
        c4.targets[1].reachable = false;
        c4.targets[1].mountpaths.clear();
        let ev = events_after(&c0, &c4);
        assert!(ev.iter().all(|(_, t)| !t.contains("mountpath")), "{ev:?}");
        // A disk already failed when the console starts is in the first lines.
        let m = model_with(&c1, None, false);
        assert!(
            m.events.iter().any(|e| e.severity == Severity::Error
                && e.text.contains("mountpath")
                && e.text.contains("failed (I/O failing")),
            "{:?}",
            m.events
        );
    }
}

#[test]
fn shift_p_pauses_after_a_confirm_and_resumes_a_paused_rebalance() {
    let reb = running_rebalance(3, None);
    let mut m = model_with(&cluster(3), Some(&reb), false);
    // Nothing is sent before the confirm; Esc sends nothing at all.
    assert_eq!(press(&mut m, KeyCode::Char('P')), None);
    assert_eq!(m.reb_dialog, Some(true));
    assert_eq!(press(&mut m, KeyCode::Esc), None);
    assert_eq!(m.reb_dialog, None);
    assert!(!m.quit, "Esc closed the dialog, not the console");
    press(&mut m, KeyCode::Char('P'));
    assert_eq!(
        press(&mut m, KeyCode::Char('y')),
        Some(Command::RebalanceCtl(true))
    );
    assert_eq!(m.reb_dialog, None);
    assert_eq!(
        update(
            &mut m,
            Action::RebalanceCtlDone {
                pause: true,
                result: Ok(())
            }
        ),
        Some(Command::Refresh)
    );
    // Once the cluster says paused, the same key offers to resume.
    let mut paused = reb.clone();
    paused.paused = true;
    update(&mut m, snapshot(&cluster(3), Some(&paused), T0 + 2));
    press(&mut m, KeyCode::Char('P'));
    assert_eq!(m.reb_dialog, Some(false));
    assert_eq!(
        press(&mut m, KeyCode::Enter),
        Some(Command::RebalanceCtl(false))
    );
    // A refusal is reported, not swallowed.
    update(
        &mut m,
        Action::RebalanceCtlDone {
            pause: false,
            result: Err(CmdError {
                kind: "unauthorized".into(),
                message: "admin token required".into(),
                refusal: true,
            }),
        },
    );
    assert!(
        m.status
            .as_ref()
            .is_some_and(|s| s.text.contains("admin token required"))
    );
}

#[test]
fn a_readonly_console_never_pauses() {
    let mut m = model_with(&cluster(3), Some(&running_rebalance(3, None)), true);
    assert_eq!(press(&mut m, KeyCode::Char('P')), None);
    assert_eq!(m.reb_dialog, None);
}
