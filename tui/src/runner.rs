//! The runner: owns the terminal, polls the cluster in a background task, and loops over keys,
//! snapshots, command results and a redraw tick. Everything else is pure and lives elsewhere.

use std::io::{IsTerminal, Stdout, Write, stdout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use crossterm::event::{Event, EventStream};
use crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};

use shoal_actors::client::Client;
use shoal_actors::types::lifecycle::LifecycleRequest;

use crate::keys::{map_key, split_meta};
use crate::model::Model;
use crate::update::{Action, CmdError, Command, update};
use crate::view::view;

/// How the console is started (`nodectl console`).
#[derive(Clone, Debug)]
pub struct ConsoleOptions {
    /// How often the cluster is polled.
    pub refresh: Duration,
    /// Disable every key that changes the cluster.
    pub readonly: bool,
}

/// Redraw cadence, independent of `refresh`: keeps "updated Ns ago" honest between polls.
const REDRAW_TICK: Duration = Duration::from_millis(250);
/// Polls must not hang for the client's long default timeout; a slow answer is a stale screen.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);
/// Polling faster than this only loads the primary.
const MIN_REFRESH: Duration = Duration::from_millis(200);

/// Set by the panic hook: the terminal has been restored, so the loop must stop drawing.
static PANICKED: AtomicBool = AtomicBool::new(false);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Leaves raw mode and the alternate screen. Safe to call more than once.
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, cursor::Show);
    let _ = stdout().flush();
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Raw mode + alternate screen for as long as it lives; restores them on drop (normal exit,
/// error, Ctrl-C) and from a panic hook (panics), then puts the previous hook back.
struct TerminalGuard {
    /// The hook that was installed before ours: called after restoring, and put back on drop.
    previous_hook: Arc<PanicHook>,
}

impl TerminalGuard {
    fn enter() -> anyhow::Result<Self> {
        let previous_hook: Arc<PanicHook> = Arc::new(std::panic::take_hook());
        let prev = previous_hook.clone();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            // Restore first, or the panic message is lost in the alternate screen.
            restore_terminal();
            prev(info);
        }));
        // The guard exists before the terminal changes, so a failure below is undone too.
        let guard = TerminalGuard { previous_hook };
        enable_raw_mode().context("enabling raw mode")?;
        // Clearing through crossterm, not `Terminal::clear`: that one asks the terminal for the
        // cursor position, and a terminal that does not answer would stop the console.
        execute!(
            stdout(),
            EnterAlternateScreen,
            Clear(ClearType::All),
            cursor::Hide
        )
        .context("entering the alternate screen")?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
        let _ = std::panic::take_hook();
        let prev = self.previous_hook.clone();
        std::panic::set_hook(Box::new(move |info| prev(info)));
    }
}

/// Aborts a background task when the loop ends, however it ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the interactive console until the operator quits.
pub async fn run(client: Client, opts: ConsoleOptions) -> anyhow::Result<()> {
    if !stdout().is_terminal() {
        anyhow::bail!(
            "the console needs a terminal; in scripts use `nodectl show cluster` instead"
        );
    }
    let guard = TerminalGuard::enter()?;
    let mut terminal =
        Terminal::new(CrosstermBackend::new(stdout())).context("creating the terminal")?;
    let result = event_loop(&mut terminal, client, opts).await;
    drop(terminal);
    drop(guard);
    result
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    client: Client,
    opts: ConsoleOptions,
) -> anyhow::Result<()> {
    let mut model = Model::new(client.endpoint.clone(), opts.readonly);
    model.now = unix_now();
    // https://no-color.org: present and not empty.
    model.no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    // Snapshots and command results share one channel: both are just actions for `update`.
    let (tx, mut rx) = mpsc::channel::<Action>(64);
    let refresh_now = Arc::new(Notify::new());
    let poller = tokio::spawn(poll(
        client.clone(),
        opts.refresh.max(MIN_REFRESH),
        tx.clone(),
        refresh_now.clone(),
    ));
    let _poller_guard = AbortOnDrop(poller.abort_handle());

    execute(Command::WhoAmI, &client, &tx, &refresh_now);
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(REDRAW_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // In raw mode Ctrl-C arrives as a key; these cover `kill`, and SSH hang-ups.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;

    loop {
        if PANICKED.load(Ordering::SeqCst) {
            anyhow::bail!("the console stopped after an internal panic (reported above)");
        }
        if poller.is_finished() {
            anyhow::bail!("the cluster poller stopped unexpectedly");
        }
        terminal.draw(|f| view(&model, f))?;
        let mut pressed = Vec::new();
        let action = tokio::select! {
            ev = keys.next() => match ev {
                Some(Ok(Event::Key(k))) => {
                    // Mapped one by one below: each key sees the state the previous one left.
                    pressed = split_meta(k);
                    None
                }
                // Resize needs no action: the next draw picks up the new size.
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(e).context("reading terminal events"),
                None => return Ok(()),
            },
            Some(a) = rx.recv() => Some(a),
            _ = tick.tick() => Some(Action::Tick { now: unix_now() }),
            _ = sigint.recv() => Some(Action::Quit),
            _ = sigterm.recv() => Some(Action::Quit),
            _ = sighup.recv() => Some(Action::Quit),
        };
        for key in pressed {
            if let Some(cmd) = map_key(&model, key).and_then(|a| update(&mut model, a)) {
                execute(cmd, &client, &tx, &refresh_now);
            }
            if model.quit {
                return Ok(());
            }
        }
        if let Some(cmd) = action.and_then(|a| update(&mut model, a)) {
            execute(cmd, &client, &tx, &refresh_now);
        }
        if model.quit {
            return Ok(());
        }
    }
}

/// Runs a command's network side in its own task; the result comes back as an action.
fn execute(cmd: Command, client: &Client, tx: &mpsc::Sender<Action>, refresh_now: &Notify) {
    let (client, tx) = (client.clone(), tx.clone());
    match cmd {
        Command::Refresh => refresh_now.notify_one(),
        Command::WhoAmI => {
            tokio::spawn(async move {
                let r = client
                    .rpc(shoal_actors::proto::msg::AuthOp::WhoAmI)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.whoami.ok_or_else(|| "no answer".to_string()));
                let _ = tx.send(Action::Identity(r)).await;
            });
        }
        Command::DryRun(req) => {
            tokio::spawn(async move {
                let result = match client.lifecycle(req.clone()).await {
                    Ok(reply) => reply.plan.ok_or_else(|| CmdError {
                        kind: "protocol".into(),
                        message: "the dry run returned no plan".into(),
                        refusal: false,
                    }),
                    Err(e) => Err(CmdError::from(&e)),
                };
                // Results are matched against the dialog's request, which has `dry_run` off.
                let req = LifecycleRequest {
                    dry_run: false,
                    ..req
                };
                let _ = tx.send(Action::DryRunDone { req, result }).await;
            });
        }
        Command::Lifecycle(req) => {
            tokio::spawn(async move {
                let result = client
                    .lifecycle(req.clone())
                    .await
                    .map_err(|e| CmdError::from(&e));
                let _ = tx.send(Action::LifecycleDone { req, result }).await;
            });
        }
        // Storage requests go to the target itself, with the console's token.
        Command::MountpathDryRun(mut req) => {
            tokio::spawn(async move {
                let result = client
                    .rpc_at(&req.addr, req.op.clone())
                    .await
                    .map(|r| *r)
                    .map_err(|e| CmdError::from(&e));
                // Matched against the dialog's request, which has `dry_run` off.
                req.op.dry_run = false;
                let _ = tx.send(Action::MpDryRunDone { req, result }).await;
            });
        }
        Command::FetchHistory => {
            tokio::spawn(async move {
                let r = client
                    .config()
                    .await
                    .map(|c| c.history)
                    .map_err(|e| e.to_string());
                let _ = tx.send(Action::HistoryDone(r)).await;
            });
        }
        Command::RebalanceCtl(pause) => {
            tokio::spawn(async move {
                let ctl = shoal_actors::proto::msg::RebalanceCtl {
                    paused: Some(pause),
                    ..Default::default()
                };
                let result = client
                    .rpc(ctl)
                    .await
                    .map(|_| ())
                    .map_err(|e| CmdError::from(&e));
                let _ = tx.send(Action::RebalanceCtlDone { pause, result }).await;
            });
        }
        Command::Mountpath(req) => {
            tokio::spawn(async move {
                let result = client
                    .rpc_at(&req.addr, req.op.clone())
                    .await
                    .map(|r| *r)
                    .map_err(|e| CmdError::from(&e));
                let _ = tx.send(Action::MountpathDone { req, result }).await;
            });
        }
    }
}

/// Polls the cluster every `refresh` (or at once when notified) until the receiver is gone.
/// Failures become `Unreachable` actions; it never gives up.
async fn poll(
    client: Client,
    refresh: Duration,
    tx: mpsc::Sender<Action>,
    refresh_now: Arc<Notify>,
) {
    let timeout = client.timeout.min(POLL_TIMEOUT);
    let client = client.with_timeout(timeout);
    loop {
        let action = match client.cluster_status().await {
            Ok(cluster) => {
                // The dedicated call carries per-target detail; the snapshot's copy is a fallback.
                let rebalance = client.rebalance_status().await.ok().flatten();
                Action::Snapshot {
                    cluster: Box::new(cluster),
                    rebalance: rebalance.map(Box::new),
                    at: unix_now(),
                }
            }
            Err(e) => Action::Unreachable {
                error: e.to_string(),
                at: unix_now(),
            },
        };
        if tx.send(action).await.is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(refresh) => {}
            _ = refresh_now.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! The runner's network side against a fake proxy on a loopback port: the poller, and
    //! command execution. The terminal side is exercised by the `demo` example in a real tty.

    use super::*;
    use shoal_actors::Error;
    use shoal_actors::proto::msg::{Control, MountpathOp, Reply, Storage};
    use shoal_actors::proto::{Conn, DEFAULT_MAX_FRAME, Msg};
    use shoal_actors::types::lifecycle::{LifecycleOp, LifecycleReply, Plan};
    use shoal_actors::types::smap::NodeId;
    use shoal_actors::types::status::ClusterStatus;
    use shoal_actors::types::storage::{MountpathReply, MpAction};
    use tokio::net::TcpListener;

    /// Answers cluster-status, rebalance-status and lifecycle requests; lifecycle non-dry-runs
    /// are refused as busy, as a primary does while a rebalance runs. Also plays a target with
    /// auth on for mountpath operations: dry runs answer, the real thing needs an admin.
    async fn fake_proxy() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut conn = Conn::new(stream, NodeId("fakep8080".into()), DEFAULT_MAX_FRAME);
                    while let Ok(Some(env)) = conn.recv().await {
                        let reply = match env.body {
                            Msg::Control(Control::GetClusterStatus(_)) => {
                                Msg::Reply(Reply::ClusterStatus(Box::new(ClusterStatus {
                                    uuid: "u1".into(),
                                    smap_version: 7,
                                    primary: "fakep8080".into(),
                                    ..Default::default()
                                })))
                            }
                            Msg::Control(Control::GetRebStatus(_)) => {
                                Msg::Reply(Reply::RebStatus(None))
                            }
                            Msg::Control(Control::Lifecycle(req)) if req.dry_run => {
                                Msg::Reply(Reply::Lifecycle(Box::new(LifecycleReply {
                                    plan: Some(Plan {
                                        fits: true,
                                        ..Default::default()
                                    }),
                                    ..Default::default()
                                })))
                            }
                            Msg::Control(Control::Lifecycle(_)) => {
                                Error::Busy("rebalance g3 is running".into()).into()
                            }
                            Msg::Storage(Storage::Mountpath(op)) if op.dry_run => {
                                Msg::Reply(Reply::Mountpath(Box::new(MountpathReply {
                                    target: "fakt8083".into(),
                                    path: op.path,
                                    dry_run: true,
                                    objs: 7,
                                    ..Default::default()
                                })))
                            }
                            Msg::Storage(Storage::Mountpath(_)) => {
                                Error::Unauthorized("admin token required".into()).into()
                            }
                            _ => Error::BadRequest("unexpected".into()).into(),
                        };
                        if conn.send(env.corr, reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    /// nodectl may spawn the console on a multi-threaded runtime: its future must be `Send`.
    #[test]
    fn run_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let fut = run(
            Client::new("127.0.0.1:1"),
            ConsoleOptions {
                refresh: Duration::from_secs(1),
                readonly: true,
            },
        );
        assert_send(&fut);
        drop(fut); // never polled: no terminal is touched
    }

    #[tokio::test]
    async fn poller_sends_snapshots_and_polls_again_when_asked() {
        let client = Client::new(fake_proxy().await);
        let (tx, mut rx) = mpsc::channel(4);
        let now = Arc::new(Notify::new());
        // An hour-long refresh: the second snapshot can only come from the notification.
        let task = tokio::spawn(poll(client, Duration::from_secs(3600), tx, now.clone()));
        let Some(Action::Snapshot { cluster, .. }) = rx.recv().await else {
            panic!("expected a snapshot")
        };
        assert_eq!(cluster.smap_version, 7);
        now.notify_one();
        assert!(matches!(rx.recv().await, Some(Action::Snapshot { .. })));
        drop(rx);
        now.notify_one();
        task.await.unwrap(); // ends once the console is gone
    }

    #[tokio::test]
    async fn poller_reports_an_unreachable_cluster_and_keeps_going() {
        // A port that was just free: connecting is refused.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let client = Client::new(addr).with_timeout(Duration::from_secs(5));
        let (tx, mut rx) = mpsc::channel(4);
        let now = Arc::new(Notify::new());
        let task = tokio::spawn(poll(client, Duration::from_secs(3600), tx, now.clone()));
        for _ in 0..2 {
            assert!(matches!(rx.recv().await, Some(Action::Unreachable { .. })));
            now.notify_one();
        }
        task.abort();
    }

    #[tokio::test]
    async fn commands_come_back_as_actions_with_refusals_intact() {
        let client = Client::new(fake_proxy().await);
        let (tx, mut rx) = mpsc::channel(4);
        let notify = Notify::new();
        let req = LifecycleRequest {
            op: LifecycleOp::StartMaintenance,
            nodes: vec![NodeId("abct8083".into())],
            no_rebalance: false,
            rm_user_data: false,
            dry_run: true,
        };
        execute(Command::DryRun(req.clone()), &client, &tx, &notify);
        match rx.recv().await {
            Some(Action::DryRunDone { req: r, result }) => {
                assert!(!r.dry_run, "matched against the dialog's request");
                assert!(result.unwrap().fits);
            }
            other => panic!("{other:?}"),
        }
        let real = LifecycleRequest {
            dry_run: false,
            ..req
        };
        execute(Command::Lifecycle(real), &client, &tx, &notify);
        match rx.recv().await {
            Some(Action::LifecycleDone { result: Err(e), .. }) => {
                assert!(e.refusal && e.kind == "busy", "{e:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn mountpath_commands_go_to_the_target_and_come_back_matched() {
        let addr = fake_proxy().await;
        // The console's endpoint is elsewhere: storage requests must use the target's address.
        let client = Client::new("127.0.0.1:1").with_timeout(Duration::from_secs(5));
        let (tx, mut rx) = mpsc::channel(4);
        let notify = Notify::new();
        let req = crate::update::MpRequest {
            target: "fakt8083".into(),
            addr,
            op: MountpathOp {
                action: MpAction::Attach,
                path: "/mnt/new".into(),
                dry_run: true,
            },
        };
        execute(Command::MountpathDryRun(req.clone()), &client, &tx, &notify);
        let mut real = req.clone();
        real.op.dry_run = false;
        match rx.recv().await {
            Some(Action::MpDryRunDone { req: r, result }) => {
                assert_eq!(r, real, "matched against the dialog's request");
                assert_eq!(result.unwrap().objs, 7);
            }
            other => panic!("{other:?}"),
        }
        execute(Command::Mountpath(real), &client, &tx, &notify);
        match rx.recv().await {
            Some(Action::MountpathDone { result: Err(e), .. }) => {
                assert!(e.refusal && e.kind == "unauthorized", "{e:?}");
            }
            other => panic!("{other:?}"),
        }
    }
}
