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
    /// Also serve the HTTP front door (AIStore-native API and S3 under /s3) on HOST:PORT, as
    /// well as on --listen. Every node of a cluster then uses the same port offset from
    /// --listen, which is how a proxy finds a target's HTTP address for redirects
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<String>,
    /// S3 access keys (`ACCESS_KEY SECRET` lines) checked when auth is enabled
    #[arg(long, value_name = "FILE")]
    s3_keys: Option<PathBuf>,
    /// S3 virtual-host-style addressing: BUCKET.DOMAIN in the Host header names the bucket
    #[arg(long, value_name = "DOMAIN")]
    s3_domain: Option<String>,
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

/// The port of `HOST:PORT`.
fn port_of(addr: &str) -> Result<i32> {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .with_context(|| format!("{addr}: expected HOST:PORT"))
}

/// glibc raises its mmap threshold to the largest block freed (up to 32 MiB), so once a 1 MiB
/// rebalance batch was freed every later one came from the heap arenas, which keep what they
/// held: a sender's peak RSS grew with the object count (48 MiB for 50,000 objects of 4 KiB,
/// 29 MiB for 5,000). A fixed threshold hands big buffers back at once (30 MiB for either).
/// `MALLOC_MMAP_THRESHOLD_` in the environment still decides.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fixed_mmap_threshold() {
    const THRESHOLD: libc::c_int = 256 * 1024;
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets an allocator parameter (under glibc's own lock).
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_mmap_threshold() {}

fn main() -> Result<()> {
    fixed_mmap_threshold();
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
    let http = match &cli.http {
        Some(h) => Some((h.clone(), port_of(h)? - port_of(&listen)?)),
        None => None,
    };
    let keys = match &cli.s3_keys {
        Some(p) => shoal_gateway::StaticKeys::load(p)?,
        None => shoal_gateway::StaticKeys::default(),
    };
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
        // HTTP is served on the --listen port itself (and on --http if given).
        let front = std::sync::Arc::new(shoal_gateway::NodeFront::default());
        let handle = node::start_with(args, Some(front.clone())).await?;
        let actor = handle.actor();
        let http_stop = tokio_util::sync::CancellationToken::new();
        let peer_urls = match &http {
            Some((_, offset)) => shoal_gateway::PeerUrls::PortOffset(*offset),
            None => shoal_gateway::PeerUrls::Listen,
        };
        let (meta, secret) = (handle.meta.clone(), handle.secret.clone());
        let auth_src: shoal_gateway::auth::AuthSource =
            std::sync::Arc::new(move || node::auth_of(&meta, secret.as_ref()));
        let gw = shoal_gateway::Gateway::new(shoal_gateway::GatewayConfig {
            node_addr: handle.addr.clone(),
            role,
            public_http: peer_urls.url_for(&handle.addr),
            peer_urls,
            auth: shoal_gateway::AuthSettings {
                // Live: the primary distributes the auth switch; the secret is this node's.
                cluster: auth_src.clone(),
                keys: std::sync::Arc::new(shoal_gateway::ClusterKeys {
                    auth: auth_src,
                    fixed: keys,
                }),
            },
            s3_domain: cli.s3_domain,
        });
        front.set(gw.clone());
        if let Some((addr, _)) = http {
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("binding --http {addr}"))?;
            tracing::info!(%addr, "serving HTTP (native /v1, S3 /s3)");
            tokio::spawn(shoal_gateway::serve(gw, listener, http_stop.clone()));
        }
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
        let exit = handle.wait().await;
        http_stop.cancel();
        match exit {
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
