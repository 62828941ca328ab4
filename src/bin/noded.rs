//! `noded`: one Shoal node (proxy or target). All behaviour lives in `shoal_actors::node`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use shoal_actors::node::{self, NodeArgs};
use shoal_actors::types::config::NodeConfig;
use shoal_actors::types::smap::Role;

#[derive(Parser, Debug)]
#[command(
    name = "noded",
    version,
    about = "Shoal storage node: a proxy (gateway) or a storage target"
)]
struct Cli {
    /// proxy or target
    #[arg(long)]
    role: Option<String>,
    /// Address to listen on (control and data), HOST:PORT
    #[arg(long)]
    listen: Option<String>,
    /// Where the node keeps its ID, cluster map and metadata [default: the user data dir]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Object storage directory of a target (repeat for several) [default: DATA_DIR/mp0]
    #[arg(long = "mountpath")]
    mountpaths: Vec<PathBuf>,
    /// Bootstrap a new cluster with this proxy as its primary
    #[arg(long)]
    primary: bool,
    /// Join the cluster through this proxy, HOST:PORT
    #[arg(long)]
    join: Option<String>,
    /// Start without joining; wait for `nodectl cluster add-remove-nodes join`
    #[arg(long)]
    standby: bool,
    /// This proxy never becomes primary
    #[arg(long)]
    non_electable: bool,
    /// TOML config file (flags override it)
    #[arg(long)]
    config: Option<PathBuf>,
    /// File holding the cluster secret (needed with auth on; the same on every node, stored
    /// in the data dir with mode 0600, never sent to other nodes)
    #[arg(long, env = "SHOAL_AUTH_SECRET_FILE")]
    auth_secret_file: Option<PathBuf>,
}

/// The cluster secret from its file, else from the config file's `[cluster.auth] secret`.
fn secret(
    file: Option<PathBuf>,
    cluster: &shoal_actors::types::config::ClusterConfig,
) -> Result<Option<String>> {
    if let Some(f) = file {
        let raw = std::fs::read_to_string(&f)
            .with_context(|| format!("reading the auth secret file {}", f.display()))?;
        return Ok(Some(raw));
    }
    Ok((!cluster.auth.secret.is_empty()).then(|| cluster.auth.secret.clone()))
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(p) => NodeConfig::load(p).with_context(|| format!("loading {}", p.display()))?,
        None => NodeConfig::default(),
    };
    let role: Role = cli
        .role
        .or(file.role)
        .context("--role proxy|target is required")?
        .parse()?;
    let listen = cli
        .listen
        .or(file.listen)
        .context("--listen HOST:PORT is required")?;
    let data_dir = match cli.data_dir.or(file.data_dir) {
        Some(d) => d,
        None => directories::ProjectDirs::from("dev", "shoal", "shoal")
            .context("no home directory: give --data-dir")?
            .data_dir()
            .join(listen.replace(':', "_")),
    };
    let mut mountpaths = cli.mountpaths;
    if mountpaths.is_empty() {
        mountpaths = file.mountpaths;
    }
    if role == Role::Proxy && !mountpaths.is_empty() {
        bail!("--mountpath is for targets; proxies store no objects");
    }
    let args = NodeArgs {
        role,
        listen,
        data_dir,
        mountpaths,
        primary: cli.primary || file.primary,
        join: cli.join.or(file.join),
        standby: cli.standby || file.standby,
        non_electable: cli.non_electable || file.non_electable,
        secret: secret(
            cli.auth_secret_file.or(file.auth_secret_file),
            &file.cluster,
        )?,
        cluster: file.cluster,
    };
    if args.primary && role != Role::Proxy {
        bail!("--primary needs --role proxy");
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let handle = node::start(args).await?;
        let actor = handle.actor();
        // SIGTERM / Ctrl-C: graceful stop.
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("signal handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("stopping on signal");
            let _ = actor.cast(node::NodeMsg::Stop);
        });
        match handle.wait().await {
            Some(exit) if exit.failure => {
                tracing::error!(reason = %exit.reason, "node exited");
                anyhow::bail!("node stopped: {}", exit.reason)
            }
            Some(exit) => tracing::info!(reason = %exit.reason, "node exited"),
            None => tracing::info!(reason = "stopped", "node exited"),
        }
        anyhow::Ok(())
    })?;
    Ok(())
}
