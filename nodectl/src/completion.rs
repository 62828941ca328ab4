//! Shell completion (DESIGN §15; the seed's `<TAB-TAB>`): clap's dynamic completer, so that
//! node arguments complete to the live cluster's node IDs. The shell calls `nodectl` back with
//! `COMPLETE=<shell>` set; `nodectl completion SHELL` prints the script that does so.

use std::ffi::OsStr;
use std::time::Duration;

use clap::CommandFactory;
use clap_complete::CompletionCandidate;
use clap_complete::env::{CompleteEnv, Shells};
use shoal_actors::client::Client;

use crate::cli::Cli;

/// The variable the registration scripts set when they call `nodectl` back.
const VAR: &str = "COMPLETE";

/// A completion request from the shell is answered and the process exits; otherwise returns.
pub fn answer_if_asked() {
    CompleteEnv::with_factory(Cli::command).var(VAR).complete();
}

/// `nodectl completion SHELL`: the script to `source`.
pub fn script(shell: &str) -> Result<(), crate::Failure> {
    let shells = Shells::builtins();
    let sh = shells
        .completer(shell)
        .ok_or_else(|| crate::Failure::usage(format!("unknown shell {shell:?}")))?;
    // The completer is this very binary, wherever it is installed.
    let me = std::env::current_exe()?;
    let mut out = Vec::new();
    sh.write_registration(VAR, "nodectl", "nodectl", &me.to_string_lossy(), &mut out)?;
    print!("{}", String::from_utf8_lossy(&out));
    Ok(())
}

/// Live node IDs as `t[ID]` / `p[ID]`, with their role and status; nothing when the cluster
/// does not answer within a moment (a completion must never hang the shell).
pub fn nodes(current: &OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy().to_string();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let endpoint = crate::cli::resolve_endpoint(None);
    let client = Client::new(endpoint).with_timeout(Duration::from_millis(1500));
    let status = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), client.cluster_status()).await
    });
    let Ok(Ok(status)) = status else {
        return Vec::new();
    };
    let rows = status
        .targets
        .iter()
        .map(|n| ("t", n))
        .chain(status.proxies.iter().map(|n| ("p", n)));
    rows.filter_map(|(kind, n)| {
        let label = format!("{kind}[{}]", n.id);
        let matches = label.starts_with(&prefix) || n.id.starts_with(&prefix);
        matches.then(|| {
            let role = if kind == "t" { "target" } else { "proxy" };
            CompletionCandidate::new(label).help(Some(format!("{role}, {}", n.status).into()))
        })
    })
    .collect()
}
