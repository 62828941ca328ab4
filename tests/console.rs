//! The console in a real terminal (DESIGN §11, §12): `nodectl console` runs inside a detached
//! tmux session of a fixed 80×24 size against a live cluster; keys go in with `send-keys`, the
//! screen comes back with `capture-pane`, and the cluster's side is checked with
//! `nodectl show cluster --json`. Puts a target into maintenance and back from the keyboard,
//! checks the confirm dialog shows the equivalent `nodectl` command, and that `q` gives the
//! terminal back (alternate screen left, cursor shown, cooked mode restored). Attaches a
//! mountpath from a target's detail view (DESIGN §14) and checks it on screen and on the target.
//!
//! Needs `tmux` on `PATH`; without it the test fails and says so.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const WIDTH: u16 = 80;
const HEIGHT: u16 = 24;
/// Name of the tmux session (one per server, and each test run has its own server).
const SESSION: &str = "console";
/// Upper bound for any one thing to show up on screen or in the cluster.
const T: Duration = Duration::from_secs(30);

/// A private tmux server (its own `-L` socket), killed on drop, also when the test panics.
struct Tmux {
    socket: String,
    /// The socket file, removed on drop (tmux leaves it behind).
    socket_path: Option<std::path::PathBuf>,
}

impl Tmux {
    /// Checks that tmux exists (failing loudly if not) and picks a socket name no other run uses.
    fn new() -> Self {
        match Command::new("tmux").arg("-V").output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "`tmux -V` failed ({}): {}; tests/console.rs drives the console in a real \
                 terminal through tmux",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!(
                "tmux not found on PATH ({e}): tests/console.rs drives the console in a real \
                 terminal through tmux; install it (e.g. `apt-get install tmux`)"
            ),
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Tmux {
            socket: format!("shoal-console-test-{}-{nanos}", std::process::id()),
            socket_path: None,
        }
    }

    /// Runs `tmux -L <socket> <args>`. No user config, no inherited `$TMUX` (a test run from
    /// inside tmux must not talk to the outer server), and nothing that would change what the
    /// console prints or whom it talks to.
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .env_remove("NODECTL_TOKEN")
            .env_remove("NODECTL_ENDPOINT")
            .env_remove("SHOAL_LOG")
            .output()
            .expect("run tmux")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `sh -c shell_cmd` (whatever the user's shell) in a new detached WIDTH×HEIGHT
    /// session. The pane stays if its process exits, so what was left on screen can be read.
    fn start(&mut self, shell_cmd: &str) {
        let (w, h) = (WIDTH.to_string(), HEIGHT.to_string());
        self.ok(&[
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            &w,
            "-y",
            &h,
            "sh",
            "-c",
            shell_cmd,
            ";",
            "set-option",
            "-t",
            SESSION,
            "remain-on-exit",
            "on",
        ]);
        let path = self.ok(&["display-message", "-p", "#{socket_path}"]);
        self.socket_path = Some(path.trim().into());
    }

    /// The visible screen as plain text.
    fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", SESSION])
    }

    /// The visible screen with SGR escapes, to see which row is highlighted.
    fn screen_styled(&self) -> String {
        self.ok(&["capture-pane", "-p", "-e", "-t", SESSION])
    }

    /// Sends one key by its tmux name (`m`, `Enter`, `Escape`, `C-u`…).
    fn key(&self, key: &str) {
        self.ok(&["send-keys", "-t", SESSION, key]);
    }

    /// Types `text` as it is (no key names).
    fn type_text(&self, text: &str) {
        self.ok(&["send-keys", "-t", SESSION, "-l", text]);
    }

    /// A pane format variable such as `#{alternate_on}`.
    fn pane_var(&self, var: &str) -> String {
        self.ok(&[
            "display-message",
            "-p",
            "-t",
            SESSION,
            &format!("#{{{var}}}"),
        ])
        .trim()
        .to_string()
    }

    /// Polls the screen until `f` holds; panics with the last screen after the deadline.
    async fn wait_screen(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + T;
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            assert!(
                Instant::now() < until,
                "timed out after {T:?} waiting for {what}; the screen was:\n{s}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Ends the console too (SIGHUP) if the test failed before `q`.
        let _ = self.run(&["kill-server"]);
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Quotes `s` for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The rows of the Targets panel: (target ID, last cell = STATUS), in screen order.
fn target_rows(screen: &str) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let mut inside = false;
    for line in screen.lines() {
        if line.starts_with("┌ Targets") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if line.starts_with('└') {
            break;
        }
        let cells: Vec<&str> = line
            .split(|c: char| c == '│' || c.is_whitespace())
            .filter(|c| !c.is_empty() && *c != "*")
            .collect();
        if cells.len() >= 2 && cells[0] != "TARGET" {
            rows.push((cells[0].to_string(), cells[cells.len() - 1].to_string()));
        }
    }
    rows
}

/// STATUS of `id` as the console's Targets panel shows it.
fn shown_status(screen: &str, id: &str) -> Option<String> {
    target_rows(screen)
        .into_iter()
        .find(|(t, _)| t == id)
        .map(|(_, s)| s)
}

/// STATUS of target `id` as `nodectl show cluster --json` reports it.
fn cli_status(c: &TestCluster, id: &str) -> String {
    let st = c.nodectl_json(&["show", "cluster"]);
    st["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in `show cluster`: {st}"))["status"]
        .as_str()
        .expect("status")
        .to_string()
}

/// `nodectl --endpoint E console` in the pane, then what the shell sees after it.
fn console_cmd(c: &TestCluster) -> String {
    // `stty` after the console proves cooked mode (icanon, echo) is back for the shell.
    format!(
        "{} --endpoint {} console; echo \"console exited with $?\"; \
         echo \"tty after: $(stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' ')\"; \
         exec sleep 600",
        sh_quote(env!("CARGO_BIN_EXE_nodectl")),
        sh_quote(&c.lc.endpoint),
    )
}

/// Moves the cursor down to target `id` and waits until its row is the highlighted one.
async fn select_target(tmux: &Tmux, screen: &str, id: &str) {
    let index = target_rows(screen)
        .iter()
        .position(|(t, _)| t == id)
        .unwrap_or_else(|| panic!("{id} not in the targets table:\n{screen}"));
    for _ in 0..index {
        tmux.key("j");
    }
    let until = Instant::now() + T;
    loop {
        let styled = tmux.screen_styled();
        let highlighted: Vec<&str> = styled.lines().filter(|l| l.contains("\x1b[7m")).collect();
        if highlighted.len() == 1 && highlighted[0].contains(id) {
            return;
        }
        assert!(
            Instant::now() < until,
            "the row of {id} never got the highlight:\n{styled}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens the confirm dialog with `m` on the selected target and waits for its dry-run plan;
/// returns the screen showing the dialog.
async fn open_maintenance_dialog(tmux: &Tmux, op: &str, id: &str) -> String {
    tmux.key("m");
    let cmd = format!("nodectl cluster add-remove-nodes {op} t[{id}] --yes");
    let title = format!("Confirm {op}");
    let screen = tmux
        .wait_screen(&format!("the {op} dialog with its plan"), |s| {
            assert!(!s.contains("dry run failed"), "dry run failed:\n{s}");
            s.contains(&title) && s.contains(&cmd) && s.contains("plan: ")
        })
        .await;
    assert!(screen.contains("equivalent command:"), "{screen}");
    assert!(screen.contains("undo: can be undone"), "{screen}");
    screen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_terminal_toggles_maintenance_and_quits_cleanly() {
    let mut tmux = Tmux::new();
    let c = TestCluster::start(1, 3, 1, FAST_CONFIG).await;
    let objs = make_objects(24, 512, 32 << 10, 7);
    put_all(&c.client, &objs).await;
    let targets: Vec<String> = c.status().await.targets.into_iter().map(|t| t.id).collect();
    assert_eq!(targets.len(), 3);

    let shell_cmd = console_cmd(&c);
    tmux.start(&shell_cmd);
    let screen = tmux
        .wait_screen("the targets table", |s| {
            let rows = target_rows(s);
            rows.len() == 3 && rows.iter().all(|(_, st)| st == "online")
        })
        .await;
    assert!(screen.contains("Targets (3)"), "{screen}");
    assert!(
        screen.contains("? help"),
        "key hints in the footer:\n{screen}"
    );
    for id in &targets {
        assert!(
            shown_status(&screen, id).is_some(),
            "{id} missing:\n{screen}"
        );
    }
    assert_eq!(
        tmux.pane_var("alternate_on"),
        "1",
        "console draws on the alternate screen"
    );

    // Move the cursor to the second row.
    let second = target_rows(&screen)[1].0.clone();
    select_target(&tmux, &screen, &second).await;
    let id = second;

    // m → dialog with the equivalent command and the dry-run plan → y.
    let dialog = open_maintenance_dialog(&tmux, "start-maintenance", &id).await;
    assert!(dialog.contains("Enter/y confirm"), "{dialog}");
    tmux.key("y");
    wait_for("the target to go into maintenance", T, || async {
        cli_status(&c, &id) == "maintenance"
    })
    .await;
    c.wait_rebalance_idle(T).await;
    // The console sees it too (so that `m` now means stop-maintenance).
    tmux.wait_screen(
        "the maintenance status and the safe-to-power-off cue",
        |s| {
            shown_status(s, &id).as_deref() == Some("maintenance")
                && s.contains("safe to power off")
        },
    )
    .await;
    for other in targets.iter().filter(|t| **t != id) {
        assert_eq!(cli_status(&c, other), "online");
    }

    // m again on the same (still selected) target → stop-maintenance, confirmed with Enter.
    open_maintenance_dialog(&tmux, "stop-maintenance", &id).await;
    tmux.key("Enter");
    wait_for("the target to be back online", T, || async {
        cli_status(&c, &id) == "online"
    })
    .await;
    c.wait_rebalance_idle(T).await;
    tmux.wait_screen("every target online again", |s| {
        let rows = target_rows(s);
        rows.len() == 3 && rows.iter().all(|(_, st)| st == "online")
    })
    .await;

    // q exits and the shell gets its terminal back. Checked while the shell still runs (it
    // ends in `sleep`): tmux reports the cursor of a dead pane as hidden.
    tmux.key("q");
    tmux.wait_screen("the console to exit on q", |s| s.contains("tty after:"))
        .await;
    let screen = tmux.screen();
    assert_eq!(
        tmux.pane_var("alternate_on"),
        "0",
        "alternate screen left:\n{screen}"
    );
    assert_eq!(tmux.pane_var("cursor_flag"), "1", "cursor shown again");
    assert!(screen.contains("console exited with 0"), "{screen}");
    assert!(
        screen.contains("tty after: icanon echo"),
        "raw mode must be off after the console:\n{screen}"
    );
    assert!(!screen.contains("Targets ("), "the TUI is gone:\n{screen}");
}

/// A target's mountpaths as `nodectl show storage NODE --json` reports them: (path, state).
fn cli_mountpaths(c: &TestCluster, id: &str) -> Vec<(String, String)> {
    let st = c.nodectl_json(&["show", "storage", id]);
    st["targets"][0]["mountpaths"]
        .as_array()
        .unwrap_or_else(|| panic!("no mountpaths in `show storage`: {st}"))
        .iter()
        .map(|m| {
            (
                m["path"].as_str().expect("path").to_string(),
                m["state"].as_str().expect("state").to_string(),
            )
        })
        .collect()
}

/// The line of the detail view's mountpath list that shows `path` (which may be cut on the
/// left with `…`, so it is matched by its end).
fn mountpath_row<'a>(screen: &'a str, path: &str) -> Option<&'a str> {
    let tail: String = {
        let chars: Vec<char> = path.chars().collect();
        chars[chars.len().saturating_sub(24)..].iter().collect()
    };
    screen
        .lines()
        .find(|l| l.contains(&format!("{tail} ")) && !l.contains("resilver"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_attaches_a_mountpath_from_a_target_detail() {
    let mut tmux = Tmux::new();
    let c = TestCluster::start(1, 2, 1, FAST_CONFIG).await;
    let expected = put_all(&c.client, &make_objects(40, 512, 16 << 10, 11)).await;
    let id = c.id("target0").await.0;
    // A new, empty directory: the "disk" to attach.
    let new = c.dir().join("target0-new");
    std::fs::create_dir_all(&new).unwrap();
    let new = new.canonicalize().unwrap().to_str().unwrap().to_string();
    assert_eq!(cli_mountpaths(&c, &id).len(), 1);

    tmux.start(&console_cmd(&c));
    let screen = tmux
        .wait_screen("the targets table", |s| target_rows(s).len() == 2)
        .await;
    select_target(&tmux, &screen, &id).await;

    // Enter: the target's detail, its one mountpath enabled.
    tmux.key("Enter");
    let title = format!("t[{id}] (Esc back)");
    tmux.wait_screen("the target's detail with its mountpaths", |s| {
        s.contains(&title) && s.contains("MOUNTPATH") && s.contains("a attach")
    })
    .await;

    // a: the path input, cleared with Ctrl-U, then the new directory typed in.
    tmux.key("a");
    tmux.wait_screen("the attach input", |s| {
        s.contains(&format!("Attach a mountpath to t[{id}]")) && s.contains("path: /")
    })
    .await;
    tmux.key("C-u");
    tmux.wait_screen("the input cleared", |s| s.contains("path: _"))
        .await;
    tmux.type_text(&new);
    tmux.wait_screen("the typed path", |s| s.contains(&format!("path: {new}_")))
        .await;

    // Enter: the target's dry run, the equivalent command and the undo.
    tmux.key("Enter");
    let dialog = tmux
        .wait_screen("the confirm dialog with the dry run", |s| {
            assert!(!s.contains("dry run: NO"), "the dry run was refused:\n{s}");
            s.contains("Confirm attach mountpath") && s.contains("dry run: OK")
        })
        .await;
    assert!(
        dialog.contains(&format!("nodectl storage mountpath attach t[{id}]")),
        "{dialog}"
    );
    assert!(
        dialog.contains("undo: can be undone with detach (key d)"),
        "{dialog}"
    );
    assert!(dialog.contains("Enter/y confirm"), "{dialog}");
    assert_eq!(
        cli_mountpaths(&c, &id).len(),
        1,
        "a dry run changes nothing"
    );

    // y: attached on the target, and a resilver moves its share onto it.
    tmux.key("y");
    // The target records the mountpath a moment before it starts the resilver: wait for both.
    let attach_reason = format!("attach {new}");
    let until = Instant::now() + T;
    let rid = loop {
        let st = c.nodectl_json(&["show", "storage", &id]);
        let enabled = st["targets"][0]["mountpaths"]
            .as_array()
            .expect("mountpaths")
            .iter()
            .any(|m| m["path"] == new.as_str() && m["state"] == "enabled");
        let r = &st["targets"][0]["resilver"];
        if enabled && r["reason"] == attach_reason.as_str() {
            break r["id"].as_str().expect("resilver id").to_string();
        }
        if Instant::now() > until {
            c.dump_logs();
            panic!("no enabled {new} with its resilver after {T:?}: {st}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        c.mountpaths_of("target0")
            .iter()
            .any(|(p, enabled)| p.to_str() == Some(new.as_str()) && *enabled),
        "recorded by the target: {:?}",
        c.mountpaths_of("target0")
    );

    // The console shows it: the new row enabled, and the resilver line of that attach.
    let resilver = format!("resilver {rid} t[{id}]:");
    let screen = tmux
        .wait_screen("the new mountpath enabled and its resilver", |s| {
            mountpath_row(s, &new).is_some_and(|row| row.contains("enabled"))
                && s.contains(&resilver)
        })
        .await;
    assert!(
        screen.contains("(attach "),
        "the resilver says why:\n{screen}"
    );
    assert!(screen.contains(&title), "still in the detail:\n{screen}");
    // The outcome on the status line (cut at 80 columns; the event log has it whole).
    let outcome = format!("attach t[{id}] /");
    let screen = tmux
        .wait_screen("the outcome on the status line", |s| {
            let status = s.lines().rev().nth(1).unwrap_or_default();
            status.starts_with(&outcome) && !status.contains("sent, waiting")
        })
        .await;
    let status = screen.lines().rev().nth(1).unwrap_or_default();
    assert!(
        !status.contains("refused") && !status.contains("failed"),
        "{screen}"
    );

    // Every object still reads back once the resilver is done.
    wait_for("the resilver to finish", T, || async {
        let st = c.nodectl_json(&["show", "resilver", &id]);
        st["targets"][0]["id"] == rid.as_str() && st["targets"][0]["state"] == "finished"
    })
    .await;
    assert_all_readable(&c.client, &expected).await;

    tmux.key("Escape");
    tmux.wait_screen("back on the main screen", |s| {
        !s.contains(&title) && target_rows(s).len() == 2
    })
    .await;
    tmux.key("q");
    tmux.wait_screen("the console to exit on q", |s| {
        s.contains("console exited with 0")
    })
    .await;
}

/// `P` pauses a running rebalance and resumes it, in a terminal that is `vt100` with
/// `NO_COLOR` set: the words carry what colour would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pauses_and_resumes_a_rebalance_on_a_vt100_without_colour() {
    let mut tmux = Tmux::new();
    let faults = tempfile::tempdir().unwrap();
    let root = faults.path().to_path_buf();
    let c = TestCluster::start_with(1, 3, 1, FAST_CONFIG, None, fault_env(root.clone())).await;
    let expected = put_all(&c.client, &make_objects(90, 512, 8 << 10, 12)).await;
    let id = c.id("target2").await.0;
    // The maintenance's rebalance stays running until the sends are let go.
    switch_on(&root, "target2", "hold_reb_sends");
    c.nodectl_ok(&[
        "cluster",
        "add-remove-nodes",
        "start-maintenance",
        &format!("t[{id}]"),
        "--yes",
    ]);

    tmux.start(&format!("env TERM=vt100 NO_COLOR=1 {}", console_cmd(&c)));
    tmux.wait_screen("a running rebalance", |s| {
        s.contains(" running") && s.contains("ETA")
    })
    .await;
    // No colour at all: only default-colour SGR sequences (bold/reverse allowed).
    let styled = tmux.screen_styled();
    for code in ["[31m", "[32m", "[33m", "[36m", "[41m", "[38;5", "[48;5"] {
        assert!(
            !styled.contains(code),
            "colour {code} under NO_COLOR:\n{styled}"
        );
    }

    tmux.key("P");
    tmux.wait_screen("the pause dialog", |s| {
        s.contains("Pause the rebalance") && s.contains("nodectl rebalance pause --yes")
    })
    .await;
    tmux.key("y");
    tmux.wait_screen("PAUSED in the header", |s| s.contains("PAUSED"))
        .await;
    assert!(c.client.config().await.unwrap().rebalance.paused);
    // Let the sends go: still held by the pause.
    switch_off(&root, "target2", "hold_reb_sends");
    let r = c.client.rebalance_status().await.unwrap().unwrap();
    assert!(r.is_running() && r.paused, "{r:?}");

    tmux.key("P");
    tmux.wait_screen("the resume dialog", |s| s.contains("Resume the rebalance"))
        .await;
    tmux.key("Enter");
    tmux.wait_screen("the rebalance finished", |s| {
        s.contains(" finished") && !s.contains("PAUSED")
    })
    .await;
    assert!(!c.client.config().await.unwrap().rebalance.paused);
    assert_all_readable(&c.client, &expected).await;
    tmux.key("q");
    tmux.wait_screen("the console to exit", |s| {
        s.contains("console exited with 0")
    })
    .await;
}
