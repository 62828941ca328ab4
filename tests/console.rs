//! The console in a real terminal (DESIGN §11, §12): `nodectl console` runs inside a detached
//! tmux session of a fixed 80×24 size against a live cluster; keys go in with `send-keys`, the
//! screen comes back with `capture-pane`, and the cluster's side is checked with
//! `nodectl show cluster --json`. Puts a target into maintenance and back from the keyboard,
//! checks the confirm dialog shows the equivalent `nodectl` command, and that `q` gives the
//! terminal back (alternate screen left, cursor shown, cooked mode restored).
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

    /// Sends one key by its tmux name (`m`, `Enter`, `Escape`…).
    fn key(&self, key: &str) {
        self.ok(&["send-keys", "-t", SESSION, key]);
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

    // `stty` after the console proves cooked mode (icanon, echo) is back for the shell.
    let shell_cmd = format!(
        "{} --endpoint {} console; echo \"console exited with $?\"; \
         echo \"tty after: $(stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' ')\"; \
         exec sleep 600",
        sh_quote(env!("CARGO_BIN_EXE_nodectl")),
        sh_quote(&c.lc.endpoint),
    );
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

    // Move the cursor to the second row and find out, from the highlight, which node that is.
    let second = target_rows(&screen)[1].0.clone();
    tmux.key("j");
    let until = Instant::now() + T;
    loop {
        let styled = tmux.screen_styled();
        let highlighted: Vec<&str> = styled.lines().filter(|l| l.contains("\x1b[7m")).collect();
        if highlighted.len() == 1 && highlighted[0].contains(&second) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the second row ({second}) never got the highlight:\n{styled}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
