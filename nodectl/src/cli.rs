//! Command-line grammar (clap derive), as fixed in DESIGN §11.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::ArgValueCompleter;

/// Used when neither --endpoint, $NODECTL_ENDPOINT nor the config file name one.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:8080";

#[derive(Parser, Debug)]
#[command(
    name = "nodectl",
    version,
    about = "Operate a Shoal cluster: node lifecycle, rebalance, buckets and objects",
    after_help = "Exit codes: 0 ok, 1 error, 2 usage, 3 refused (busy/unauthorized/forbidden), 4 timeout"
)]
pub struct Cli {
    /// Proxy to talk to, HOST:PORT [env: NODECTL_ENDPOINT; else the config file; else 127.0.0.1:8080]
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// Token (JWT) [else the one saved by `nodectl auth login`]
    #[arg(long, global = true, env = "NODECTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// One JSON document on stdout, stable keys
    #[arg(long, global = true)]
    pub json: bool,
    /// Per-request timeout, seconds
    #[arg(
        long = "request-timeout",
        global = true,
        default_value_t = 30,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=86400)
    )]
    pub timeout_secs: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a local cluster (real noded processes) with sample data, and open the console on it
    Playground(PlaygroundArgs),
    /// The interactive terminal console
    Console(ConsoleArgs),
    /// Show cluster state or rebalance progress
    #[command(subcommand)]
    Show(ShowCmd),
    /// Cluster membership and cluster-wide operations
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Unsafe, test-only operations
    #[command(subcommand)]
    Advanced(AdvancedCmd),
    /// Show the cluster configuration
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Block until a rebalance finishes or a node reaches a status
    #[command(subcommand)]
    Wait(WaitCmd),
    /// Buckets
    #[command(subcommand)]
    Bucket(BucketCmd),
    /// Objects
    #[command(subcommand)]
    Object(ObjectCmd),
    /// Users, roles, logins and tokens (AuthN), and S3 keys
    #[command(subcommand)]
    Auth(AuthCmd),
    /// A target's disks (mountpaths)
    #[command(subcommand)]
    Storage(StorageCmd),
    /// Pause, resume or throttle the global rebalance, live on every target
    #[command(subcommand)]
    Rebalance(RebalanceCmd),
    /// Print a shell completion script: `source <(nodectl completion bash)` (node arguments
    /// complete to the live cluster's node IDs)
    Completion {
        #[arg(value_parser = ["bash", "zsh", "fish", "elvish", "powershell"])]
        shell: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RebalanceCmd {
    /// Hold every target's rebalance walk (objects in flight finish); survives restarts
    Pause {
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Let a paused rebalance go on from where it was
    Resume {
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Limit each target's outgoing rebalance traffic: BYTES_PER_SEC (e.g. 50MiB, 200MB, 1048576) or off
    Throttle {
        #[arg(value_name = "BYTES_PER_SEC|off")]
        rate: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum StorageCmd {
    /// Attach, detach, enable or disable a mountpath of a target (each starts a resilver)
    #[command(subcommand)]
    Mountpath(MountpathCmd),
}

#[derive(Subcommand, Debug)]
pub enum MountpathCmd {
    /// Add a directory (a mounted disk) as a mountpath; its share of objects moves onto it
    Attach(MountpathArgs),
    /// Move a mountpath's objects to the others, then forget it (the disk can be pulled after)
    Detach(MountpathArgs),
    /// Use a disabled mountpath again; its share of objects moves back onto it
    Enable(MountpathArgs),
    /// Stop placing objects on a mountpath at once; its objects move off while it is readable
    Disable(MountpathArgs),
}

#[derive(Args, Debug, Clone)]
pub struct MountpathArgs {
    /// Target: bare ID or t[ID]
    #[arg(add = ArgValueCompleter::new(crate::completion::nodes))]
    pub node: String,
    /// The mountpath's directory on that target (absolute)
    pub path: String,
    /// Print what would move, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Args, Debug, Clone)]
pub struct PlaygroundArgs {
    #[arg(long, default_value_t = 1)]
    pub proxies: usize,
    #[arg(long, default_value_t = 3)]
    pub targets: usize,
    /// Mountpaths per target
    #[arg(long, default_value_t = 2)]
    pub mountpaths: usize,
    /// Sample objects to load into bucket "demo"
    #[arg(long, default_value_t = 300)]
    pub objects: usize,
    /// Leave the cluster running and exit (prints how to stop it)
    #[arg(long)]
    pub detach: bool,
    /// Do not open the console; wait for Ctrl-C instead
    #[arg(long)]
    pub no_console: bool,
    /// Where the nodes keep their data [default: a new directory under the system temp dir]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// First port (proxies, then targets); 0 picks free ports
    #[arg(long, default_value_t = 8080)]
    pub base_port: u16,
}

#[derive(Args, Debug, Clone)]
pub struct ConsoleArgs {
    /// Seconds between cluster polls (the screen redraws independently)
    #[arg(long, default_value_t = 1.0, value_parser = secs)]
    pub refresh: f64,
    /// Hide the keys that change the cluster
    #[arg(long)]
    pub readonly: bool,
}

#[derive(Subcommand, Debug)]
pub enum ShowCmd {
    /// Proxies and targets with memory, capacity, CPU, rebalance and status
    Cluster {
        /// proxy, target or smap
        what: Option<String>,
        /// Repeat every SECS seconds
        #[arg(long, value_name = "SECS", value_parser = secs)]
        refresh: Option<f64>,
        /// With --refresh: stop after N reports
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// Progress of the global rebalance
    Rebalance {
        /// Past generations too (the cluster's history: trigger, start, end, objects, outcome)
        #[arg(long)]
        all: bool,
        #[arg(long, value_name = "SECS", value_parser = secs)]
        refresh: Option<f64>,
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// One job: a global rebalance g<N> (running or past) or a resilver r<N> of a target
    Job {
        /// g<N> (or a bare N)
        id: String,
    },
    /// Mountpaths of every target (or one): filesystem, used %, available, objects, state
    Storage {
        /// Target: bare ID or t[ID]
        #[arg(add = ArgValueCompleter::new(crate::completion::nodes))]
        node: Option<String>,
        #[arg(long, value_name = "SECS", value_parser = secs)]
        refresh: Option<f64>,
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// Progress of the targets' resilvers (the local rebalance between mountpaths)
    Resilver {
        /// Target: bare ID or t[ID]
        #[arg(add = ArgValueCompleter::new(crate::completion::nodes))]
        node: Option<String>,
        #[arg(long, value_name = "SECS", value_parser = secs)]
        refresh: Option<f64>,
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Node lifecycle: maintenance, shutdown, decommission, join
    #[command(subcommand, name = "add-remove-nodes", alias = "membership")]
    AddRemoveNodes(MembershipCmd),
    /// Decommission every node of the cluster (destroys it)
    Decommission {
        #[arg(long)]
        rm_user_data: bool,
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Shut down every node (the map survives restarts)
    Shutdown {
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Pre-checks before stopping or destroying nodes: exit 0 yes, 3 no (with the reasons)
    #[command(subcommand)]
    Check(CheckCmd),
}

#[derive(Subcommand, Debug)]
pub enum CheckCmd {
    /// Would reads stay served, every object readable, if these nodes stopped now?
    OkToStop {
        /// Node IDs: bare, t[ID] or p[ID]; space- or comma-separated
        #[arg(required = true, num_args = 1..)]
        #[arg(add = ArgValueCompleter::new(crate::completion::nodes))]
        nodes: Vec<String>,
    },
    /// Is nothing the cluster needs left on these nodes (may they be wiped)?
    SafeToDestroy {
        /// Node IDs: bare, t[ID] or p[ID]; space- or comma-separated
        #[arg(required = true, num_args = 1..)]
        #[arg(add = ArgValueCompleter::new(crate::completion::nodes))]
        nodes: Vec<String>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct NodeOpArgs {
    /// Node IDs: bare, t[ID] or p[ID]; space- or comma-separated
    #[arg(required = true, num_args = 1..)]
    #[arg(add = ArgValueCompleter::new(crate::completion::nodes))]
    pub nodes: Vec<String>,
    /// Skip data migration (advanced: data can be lost)
    #[arg(long)]
    pub no_rebalance: bool,
    /// Print what would move, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Subcommand, Debug)]
pub enum MembershipCmd {
    /// Put nodes in maintenance (data migrates away; the nodes stay up and in the map)
    StartMaintenance(NodeOpArgs),
    /// Take nodes out of maintenance (data migrates back)
    StopMaintenance(NodeOpArgs),
    /// Maintenance, then the node processes exit (targets after the rebalance)
    Shutdown(NodeOpArgs),
    /// Migrate data away, wipe the nodes' metadata and remove them (cannot be undone)
    Decommission {
        #[command(flatten)]
        op: NodeOpArgs,
        /// Also delete the nodes' objects
        #[arg(long)]
        rm_user_data: bool,
    },
    /// Add a node started with --standby (or a misconfigured one)
    Join {
        /// HOST:PORT of the node
        addr: String,
        /// proxy or target
        #[arg(long)]
        role: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdvancedCmd {
    /// Remove a node from the map at once, without rebalance (unsafe, test-only)
    RemoveFromSmap {
        #[arg(add = ArgValueCompleter::new(crate::completion::nodes))]
        node: String,
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Cluster configuration, or one section (keepalive, rebalance, proxy, auth)
    Cluster { section: Option<String> },
}

#[derive(Subcommand, Debug)]
pub enum WaitCmd {
    /// Until the current rebalance finishes (exit 1 if it finished with errors: objects did not move)
    Rebalance {
        #[arg(long, value_name = "SECS", value_parser = secs)]
        timeout: Option<f64>,
    },
    /// Until no target (or NODE) runs a resilver
    Resilver {
        /// Target: bare ID or t[ID]
        #[arg(add = ArgValueCompleter::new(crate::completion::nodes))]
        node: Option<String>,
        #[arg(long, value_name = "SECS", value_parser = secs)]
        timeout: Option<f64>,
    },
    /// Until NODE reaches STATUS (online, maintenance, decommission, offline, safe, removed)
    Node {
        #[arg(add = ArgValueCompleter::new(crate::completion::nodes))]
        node: String,
        #[arg(long)]
        status: String,
        #[arg(long, value_name = "SECS", value_parser = secs)]
        timeout: Option<f64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BucketCmd {
    /// Create BUCKET (ais://NAME or NAME)
    Create { bucket: String },
    /// List the buckets
    Ls,
    /// Destroy BUCKET and every object in it
    Rm {
        bucket: String,
        /// Destroy a bucket that holds objects without asking (an empty one is never asked
        /// about)
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ObjectCmd {
    /// Upload FILE as BUCKET/OBJECT
    Put { file: PathBuf, object: String },
    /// Download BUCKET/OBJECT to FILE, or to stdout with '-' or no FILE
    Get {
        object: String,
        file: Option<String>,
        /// Verify the stored checksum on the target before sending
        #[arg(long)]
        verify: bool,
    },
    /// List the objects in BUCKET: name, size, checksum
    Ls {
        bucket: String,
        /// Only names starting with this
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Delete BUCKET/OBJECT
    Rm { object: String },
    /// Owner target and mountpath of an object
    Locate { object: String },
}

#[derive(Subcommand, Debug)]
pub enum AuthCmd {
    /// Mint a token signed with the cluster secret, or revoke one (`token revoke`)
    Token(TokenArgs),
    /// Log in as an AuthN user: the token is saved (mode 0600) and used when no --token is given
    Login {
        user: String,
        /// Read the password from this file (else $NODECTL_PASSWORD, else a line of stdin)
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Token lifetime, e.g. 30m, 12h, 7d (default: the cluster's auth.token_ttl_secs)
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Revoke the saved token and remove it
    Logout,
    /// Who the token in use says you are: subject, kind, roles, permissions
    Whoami,
    /// Users of the AuthN service (admin)
    #[command(subcommand)]
    User(UserCmd),
    /// Roles: named sets of permissions (admin)
    #[command(subcommand)]
    Role(RoleCmd),
    /// S3 access keys for the HTTP front door (SigV4, checked when auth is on)
    #[command(name = "s3-key", subcommand)]
    S3Key(S3KeyCmd),
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub cmd: Option<TokenCmd>,
    /// The cluster secret (the file given to every noded as --auth-secret-file)
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Grant admin: bucket and lifecycle changes, mountpaths, S3 keys
    #[arg(long)]
    pub admin: bool,
    /// Lifetime, e.g. 30m, 12h, 7d
    #[arg(long, default_value = "24h")]
    pub ttl: String,
    /// Subject (user name)
    #[arg(long, default_value = "nodectl")]
    pub sub: String,
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Revoke a token at once on every node: a token you hold, or any token ID (admin)
    Revoke {
        /// The token (JWT) to revoke. (Not named `token`: that is the global --token, the
        /// caller's own, which clap would otherwise fill this with.)
        #[arg(value_name = "TOKEN")]
        revoked: Option<String>,
        /// Revoke by token ID (`jti`) instead
        #[arg(long, conflicts_with = "revoked")]
        jti: Option<String>,
        /// Revoke every token of this user issued until now (log out everywhere)
        #[arg(long, conflicts_with_all = ["revoked", "jti"])]
        user: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user with one or more roles
    Add {
        name: String,
        /// A role (repeat for more): admin, bucket-admin, read-write, read-only, or your own
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Read the password from this file (else $NODECTL_PASSWORD, else a line of stdin)
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Remove a user: their tokens and S3 keys stop working at once
    Rm { name: String },
    /// List users and their roles
    Ls,
}

#[derive(Subcommand, Debug)]
pub enum RoleCmd {
    /// Add a role: PERM is cluster-admin, bucket-admin[:BUCKETS], rw:BUCKETS or ro:BUCKETS
    /// (BUCKETS: *, a prefix ending in *, or a name)
    Add {
        name: String,
        #[arg(required = true)]
        perms: Vec<String>,
        #[arg(long, default_value = "")]
        desc: String,
    },
    /// Remove a role no user has
    Rm { name: String },
    /// List roles (built-in ones first) and their permissions
    Ls,
}

#[derive(Subcommand, Debug)]
pub enum S3KeyCmd {
    /// Create a key; its secret is printed once
    Create {
        /// The key may also create and destroy buckets
        #[arg(long)]
        admin: bool,
        /// The key acts as this AuthN user (their roles decide what it may do)
        #[arg(long, conflicts_with = "admin")]
        user: Option<String>,
    },
    /// List the keys (never their secrets)
    Ls,
    /// Remove a key
    Rm { access_key: String },
}

/// Where `nodectl auth login` keeps the token: $NODECTL_TOKEN_FILE, else
/// `<config dir>/shoal/token`.
pub fn token_file() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NODECTL_TOKEN_FILE")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    let dirs = directories::ProjectDirs::from("dev", "shoal", "shoal")?;
    Some(dirs.config_dir().join("token"))
}

/// --token / $NODECTL_TOKEN, else the token saved by `nodectl auth login`.
pub fn resolve_token(flag: Option<String>) -> Option<String> {
    flag.filter(|t| !t.is_empty()).or_else(|| {
        let text = std::fs::read_to_string(token_file()?).ok()?;
        let t = text.trim();
        (!t.is_empty()).then(|| t.to_string())
    })
}

/// --endpoint, then $NODECTL_ENDPOINT, then the config file, then the default.
pub fn resolve_endpoint(flag: Option<String>) -> String {
    if let Some(e) = flag {
        return e;
    }
    if let Ok(e) = std::env::var("NODECTL_ENDPOINT")
        && !e.is_empty()
    {
        return e;
    }
    if let Some(e) = config_file_endpoint() {
        return e;
    }
    DEFAULT_ENDPOINT.to_string()
}

/// `endpoint = "HOST:PORT"` in `<config dir>/shoal/nodectl.toml`.
fn config_file_endpoint() -> Option<String> {
    let dirs = directories::ProjectDirs::from("dev", "shoal", "shoal")?;
    let text = std::fs::read_to_string(dirs.config_dir().join("nodectl.toml")).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "endpoint").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Parses `30s`, `5m`, `12h`, `7d` (or plain seconds).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n.checked_mul(mult)?))
}

/// Longest `--timeout` or `--refresh`: anything longer is a typo, and an infinite or huge
/// number of seconds cannot be turned into a deadline.
const MAX_SECS: f64 = 366.0 * 86400.0;

/// A `--timeout` or `--refresh` value: seconds (`90`, `0.5`) or a duration (`250ms`, `30s`,
/// `5m`, `2h`), positive and at most a year.
pub fn secs(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, mult) = [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
        .iter()
        .find_map(|(unit, m)| t.strip_suffix(unit).map(|n| (n, *m)))
        .unwrap_or((t, 1.0));
    match num.parse::<f64>().map(|n| n * mult) {
        Ok(v) if v > 0.0 && v <= MAX_SECS => Ok(v),
        _ => Err(format!(
            "{s:?} is not a duration: give seconds (90, 0.5) or 250ms, 30s, 5m, 2h; positive, at most a year"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_refresh_periods_are_checked_durations() {
        assert_eq!(secs("90"), Ok(90.0));
        assert_eq!(secs("0.5"), Ok(0.5));
        assert_eq!(secs("300s"), Ok(300.0));
        assert_eq!(secs("5m"), Ok(300.0));
        assert_eq!(secs("2h"), Ok(7200.0));
        assert_eq!(secs("250ms"), Ok(0.25));
        // Values that used to panic (infinite or too big for a deadline) or make no sense.
        for bad in ["inf", "1e300", "NaN", "0", "-1", "", "5x", "ms", "400d"] {
            assert!(secs(bad).is_err(), "{bad}");
        }
        let c = Cli::try_parse_from(["nodectl", "wait", "rebalance", "--timeout", "5m"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Wait(WaitCmd::Rebalance { timeout: Some(t) }) if t == 300.0
        ));
        assert!(Cli::try_parse_from(["nodectl", "wait", "rebalance", "--timeout", "inf"]).is_err());
        assert!(Cli::try_parse_from(["nodectl", "show", "cluster", "--refresh", "1e300"]).is_err());
        assert!(Cli::try_parse_from(["nodectl", "console", "--refresh", "-1"]).is_err());
        // No request can be answered within 0 s, and no report count of 0 makes sense.
        assert!(
            Cli::try_parse_from(["nodectl", "--request-timeout", "0", "show", "cluster"]).is_err()
        );
        assert!(
            Cli::try_parse_from([
                "nodectl",
                "show",
                "rebalance",
                "--refresh",
                "1",
                "--count",
                "0"
            ])
            .is_err()
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("5m").unwrap().as_secs(), 300);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172800);
        assert!(parse_duration("5x").is_none());
        assert!(parse_duration("").is_none());
    }

    #[test]
    fn grammar_parses_design_examples() {
        let c = Cli::try_parse_from([
            "nodectl",
            "cluster",
            "add-remove-nodes",
            "shutdown",
            "t[ikht8083]",
            "--yes",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Command::Cluster(ClusterCmd::AddRemoveNodes(MembershipCmd::Shutdown(ref a))) if a.yes && a.nodes == ["t[ikht8083]"]
        ));
        assert!(Cli::try_parse_from(["nodectl", "show", "cluster", "target", "--json"]).is_ok());
        assert!(
            Cli::try_parse_from(["nodectl", "wait", "node", "x", "--status", "online"]).is_ok()
        );
        assert!(
            Cli::try_parse_from(["nodectl", "cluster", "add-remove-nodes", "shutdown"]).is_err()
        );
    }

    #[test]
    fn auth_grammar_keeps_the_shared_secret_token() {
        let c = Cli::try_parse_from([
            "nodectl",
            "auth",
            "token",
            "--secret-file",
            "f",
            "--admin",
            "--ttl",
            "1h",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Command::Auth(AuthCmd::Token(TokenArgs { cmd: None, admin: true, ref secret_file, .. })) if secret_file.is_some()
        ));
        // The caller's --token and the token to revoke are two different things.
        let c = Cli::try_parse_from([
            "nodectl", "--token", "mine", "auth", "token", "revoke", "theirs",
        ])
        .unwrap();
        assert_eq!(c.token.as_deref(), Some("mine"));
        assert!(matches!(
            c.command,
            Command::Auth(AuthCmd::Token(TokenArgs { cmd: Some(TokenCmd::Revoke { ref revoked, .. }), .. })) if revoked.as_deref() == Some("theirs")
        ));
        let c = Cli::try_parse_from(["nodectl", "auth", "token", "revoke", "--jti", "j1"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Auth(AuthCmd::Token(TokenArgs { cmd: Some(TokenCmd::Revoke { ref jti, .. }), .. })) if jti.as_deref() == Some("j1")
        ));
        assert!(
            Cli::try_parse_from(["nodectl", "auth", "user", "add", "alice"]).is_err(),
            "a role is required"
        );
        assert!(
            Cli::try_parse_from([
                "nodectl",
                "auth",
                "user",
                "add",
                "alice",
                "--role",
                "read-only"
            ])
            .is_ok()
        );
        assert!(
            Cli::try_parse_from(["nodectl", "auth", "role", "add", "r"]).is_err(),
            "a permission is required"
        );
        assert!(
            Cli::try_parse_from(["nodectl", "auth", "role", "add", "r", "rw:logs-*", "ro:*"])
                .is_ok()
        );
        assert!(Cli::try_parse_from(["nodectl", "auth", "login", "alice"]).is_ok());
        assert!(
            Cli::try_parse_from(["nodectl", "auth", "s3-key", "create", "--user", "alice"]).is_ok()
        );
    }
}
