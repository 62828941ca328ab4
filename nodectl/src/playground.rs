//! The local playground: real `noded` processes on 127.0.0.1 with data in a directory, sample
//! objects, and the console on top. [`LocalCluster`] is also the process-level harness the
//! end-to-end tests drive (start, `kill -9`, restart, stop).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use shoal_actors::client::Client;
use shoal_actors::types::smap::Role;

use crate::cli::PlaygroundArgs;
use crate::{CmdResult, Env};

/// One `noded` process started by us.
pub struct Proc {
    pub role: Role,
    pub addr: String,
    pub data_dir: PathBuf,
    pub mountpaths: Vec<PathBuf>,
    pub extra: Vec<String>,
    pub child: Option<Child>,
    pub log: PathBuf,
    /// Environment for the process (tests: `SHOAL_FAULTS`, `SHOAL_LOG`).
    pub env: Vec<(String, String)>,
}

/// A set of local `noded` processes sharing one directory.
pub struct LocalCluster {
    pub noded: PathBuf,
    pub dir: PathBuf,
    /// By a stable name (`proxy0`, `target2`) rather than node ID, which the nodes make.
    pub procs: BTreeMap<String, Proc>,
    pub endpoint: String,
    /// Kill the processes when this value is dropped (off for `--detach`).
    pub kill_on_drop: bool,
    /// Config file passed to every node (tests shorten keepalive this way).
    pub config: Option<PathBuf>,
    /// Token for the clients this harness makes (a cluster with auth on).
    pub token: Option<String>,
    /// When set, every node also serves HTTP (`--http`) on its port plus this offset.
    pub http_offset: Option<i32>,
}

/// Where [`free_port`] picks: below Linux's default ephemeral range (32768–60999). A port the
/// kernel hands out is one it may hand out again to any outgoing connection, so a node restarted
/// on its old port could find it taken; ports below the range are only ever taken by a bind.
/// Leaves room under 32768 for the playground's HTTP ports (+1000) and below 21000 for the
/// tests' (−11000).
pub const PORT_RANGE: std::ops::Range<u16> = 21000..31500;

/// Ports this process has handed out. A port is free only until its node binds it, and free
/// again while that node restarts: without this, another cluster of the same test binary could
/// be given it meanwhile, and the node would fail to start ("address already in use").
static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Claims `p` for this process; false if it was handed out before.
fn claim(p: u16) -> bool {
    HANDED_OUT.lock().expect("poisoned").insert(p)
}

/// Picks a free TCP port on loopback, at random in [`PORT_RANGE`] (random, so that tests running
/// side by side rarely try the same one), else any the kernel gives; never one this process
/// handed out before.
pub fn free_port() -> Result<u16> {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..500 {
        let p = rng.random_range(PORT_RANGE);
        if port_free(p) && claim(p) {
            return Ok(p);
        }
    }
    for _ in 0..100 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let p = l.local_addr()?.port();
        if claim(p) {
            return Ok(p);
        }
    }
    bail!("no free port on 127.0.0.1")
}

fn port_free(p: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
}

/// A free port `p` whose `p + offset` is free too (a node's `--listen` and `--http`).
pub fn free_port_pair(offset: i32) -> Result<u16> {
    for _ in 0..200 {
        let p = free_port()?;
        if let Ok(h) = u16::try_from(p as i32 + offset)
            && h > 1024
            && port_free(h)
            && claim(h)
        {
            return Ok(p);
        }
    }
    bail!("no free port pair {{p, p{offset:+}}} on 127.0.0.1")
}

/// `http://127.0.0.1:PORT` of a node listening on `addr` when HTTP is `offset` ports away.
pub fn http_url(addr: &str, offset: i32) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
    let port: i32 = port.parse().unwrap_or(0);
    format!("http://{host}:{}", port + offset)
}

/// Finds the `noded` binary next to the running executable, building it when run by cargo.
pub fn find_noded() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable has no directory")?;
    let candidate = dir.join("noded");
    if candidate.exists() {
        return Ok(candidate);
    }
    // `cargo run --bin nodectl` builds only nodectl; build noded with the same profile.
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--bin", "noded"]);
        if release {
            cmd.arg("--release");
        }
        eprintln!("building noded ...");
        let st = cmd.status().context("running cargo build --bin noded")?;
        if st.success() && candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "cannot find the noded binary next to {} (build it with: cargo build --release --bins)",
        exe.display()
    )
}

impl LocalCluster {
    pub fn new(noded: PathBuf, dir: PathBuf) -> Self {
        LocalCluster {
            noded,
            dir,
            procs: BTreeMap::new(),
            endpoint: String::new(),
            kill_on_drop: true,
            config: None,
            token: None,
            http_offset: None,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.endpoint.clone()).with_token(self.token.clone())
    }

    /// The next free port from `base` (and its HTTP port `offset` away), or any free one.
    fn pick_port(base: &mut u16, offset: i32) -> Result<u16> {
        if *base == 0 {
            return free_port_pair(offset);
        }
        while *base < u16::MAX - 1 {
            let p = *base;
            *base += 1;
            let http_free =
                u16::try_from(p as i32 + offset).is_ok_and(|h| offset == 0 || port_free(h));
            if port_free(p) && http_free {
                return Ok(p);
            }
        }
        free_port_pair(offset)
    }

    /// Adds a node definition and starts it.
    pub fn add(
        &mut self,
        name: &str,
        role: Role,
        port: u16,
        mountpaths: usize,
        extra: &[&str],
    ) -> Result<()> {
        self.add_with_env(name, role, port, mountpaths, extra, &[])
    }

    /// As [`add`](Self::add), with environment variables for the process.
    pub fn add_with_env(
        &mut self,
        name: &str,
        role: Role,
        port: u16,
        mountpaths: usize,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<()> {
        let data_dir = self.dir.join(name);
        let mps = (0..mountpaths)
            .map(|i| self.dir.join(format!("{name}-mp{i}")))
            .collect();
        let addr = format!("127.0.0.1:{port}");
        let proc = Proc {
            role,
            addr: addr.clone(),
            data_dir,
            mountpaths: mps,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            log: self.dir.join(format!("{name}.log")),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        self.procs.insert(name.to_string(), proc);
        if self.endpoint.is_empty() && role == Role::Proxy {
            self.endpoint = addr;
        }
        self.start(name)
    }

    /// (Re)starts a defined node with its data dir and mountpaths.
    pub fn start(&mut self, name: &str) -> Result<()> {
        let endpoint = self.endpoint.clone();
        let noded = self.noded.clone();
        let config = self.config.clone();
        let kill_on_drop = self.kill_on_drop;
        let http_offset = self.http_offset;
        let p = self
            .procs
            .get_mut(name)
            .ok_or_else(|| anyhow!("no node named {name}"))?;
        if p.child.is_some() {
            bail!("{name} is already running");
        }
        let mut cmd = Command::new(&noded);
        cmd.arg("--role")
            .arg(p.role.as_str())
            .arg("--listen")
            .arg(&p.addr)
            .arg("--data-dir")
            .arg(&p.data_dir);
        for m in &p.mountpaths {
            cmd.arg("--mountpath").arg(m);
        }
        if let Some(c) = &config {
            cmd.arg("--config").arg(c);
        }
        if let Some(off) = http_offset {
            let url = http_url(&p.addr, off);
            cmd.arg("--http").arg(url.trim_start_matches("http://"));
        }
        if p.addr == endpoint {
            cmd.arg("--primary");
        } else if !p.extra.iter().any(|e| e == "--standby" || e == "--join") {
            cmd.arg("--join").arg(&endpoint);
        }
        cmd.args(&p.extra);
        cmd.envs(p.env.iter().map(|(k, v)| (k, v)));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log)
            .with_context(|| format!("opening {}", p.log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if kill_on_drop {
            // Children die with us, even if we are killed: no orphaned nodes.
            use std::os::unix::process::CommandExt;
            unsafe {
                cmd.pre_exec(|| {
                    rustix::process::set_parent_process_death_signal(Some(
                        rustix::process::Signal::TERM,
                    ))
                    .map_err(std::io::Error::from)
                });
            }
        } else {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", noded.display()))?;
        p.child = Some(child);
        Ok(())
    }

    /// `kill -9`.
    pub fn kill9(&mut self, name: &str) -> Result<()> {
        let p = self
            .procs
            .get_mut(name)
            .ok_or_else(|| anyhow!("no node {name}"))?;
        if let Some(mut c) = p.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        Ok(())
    }

    /// SIGSTOP: the process stays, silent, as a hung or overloaded node would.
    pub fn pause(&self, name: &str) -> Result<()> {
        self.signal(name, rustix::process::Signal::STOP)
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self, name: &str) -> Result<()> {
        self.signal(name, rustix::process::Signal::CONT)
    }

    fn signal(&self, name: &str, sig: rustix::process::Signal) -> Result<()> {
        let p = self
            .procs
            .get(name)
            .ok_or_else(|| anyhow!("no node {name}"))?;
        let child = p
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("{name} is not running"))?;
        let pid = rustix::process::Pid::from_raw(child.id() as i32)
            .ok_or_else(|| anyhow!("{name}: bad pid"))?;
        rustix::process::kill_process(pid, sig).with_context(|| format!("signalling {name}"))?;
        Ok(())
    }

    /// SIGTERM and wait (SIGKILL after `grace`).
    pub fn stop(&mut self, name: &str, grace: Duration) -> Result<()> {
        let p = self
            .procs
            .get_mut(name)
            .ok_or_else(|| anyhow!("no node {name}"))?;
        if let Some(c) = p.child.take() {
            terminate(c, grace);
        }
        Ok(())
    }

    /// Whether the process has exited (reaps it if so).
    pub fn exited(&mut self, name: &str) -> bool {
        let Some(p) = self.procs.get_mut(name) else {
            return true;
        };
        match p.child.as_mut() {
            None => true,
            Some(c) => match c.try_wait() {
                Ok(Some(_)) => {
                    p.child = None;
                    true
                }
                _ => false,
            },
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs
            .values()
            .filter_map(|p| p.child.as_ref().map(|c| c.id()))
            .collect()
    }

    pub fn stop_all(&mut self) {
        let names: Vec<String> = self.procs.keys().cloned().collect();
        // Targets first, then proxies, so nobody waits on a gone primary.
        let targets: Vec<String> = names
            .iter()
            .filter(|n| self.procs[*n].role == Role::Target)
            .cloned()
            .collect();
        for n in &targets {
            let _ = self.stop(n, Duration::from_secs(5));
        }
        for n in &names {
            let _ = self.stop(n, Duration::from_secs(5));
        }
    }

    /// Waits until the primary's map lists every running node.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let want = self
            .procs
            .values()
            .filter(|p| p.child.is_some() && !p.extra.iter().any(|e| e == "--standby"))
            .count();
        let until = Instant::now() + timeout;
        let client = self.client().with_timeout(Duration::from_secs(2));
        let mut last;
        loop {
            match client.smap().await {
                Ok(s) if s.proxies.len() + s.targets.len() >= want => return Ok(()),
                Ok(s) => {
                    last = format!(
                        "{} of {want} nodes joined",
                        s.proxies.len() + s.targets.len()
                    )
                }
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > until {
                bail!(
                    "cluster not ready after {timeout:?}: {last} (logs in {})",
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn terminate(mut c: Child, grace: Duration) {
    let pid = rustix::process::Pid::from_raw(c.id() as i32);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.kill_on_drop {
            for p in self.procs.values_mut() {
                if let Some(mut c) = p.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }
}

/// The playground's nodes serve HTTP this many ports above their `--listen` port (8080 → 9080).
pub const HTTP_OFFSET: i32 = 1000;

/// Loads `n` sample objects of mixed sizes into bucket `demo`.
pub async fn load_samples(client: &Client, n: usize) -> Result<u64> {
    use rand::{Rng, SeedableRng};
    match client.create_bucket("demo").await {
        Ok(()) | Err(shoal_actors::Error::BadRequest(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let prefixes = ["images/", "logs/2026/", "models/", "datasets/train/"];
    let mut total = 0u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let items: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let size = rng.random_range(1024..=256 * 1024);
            let mut data = vec![0u8; size];
            rng.fill(&mut data[..]);
            (format!("{}obj-{i:05}", prefixes[i % prefixes.len()]), data)
        })
        .collect();
    for chunk in items.chunks(8) {
        let puts = chunk
            .iter()
            .map(|(name, data)| client.put_bytes("demo", name, data));
        for r in futures::future::join_all(puts).await {
            r?;
        }
        total += chunk.iter().map(|(_, d)| d.len() as u64).sum::<u64>();
    }
    Ok(total)
}

/// `nodectl playground`.
pub async fn run(env: &Env, a: PlaygroundArgs) -> CmdResult {
    if a.proxies == 0 || a.targets == 0 || a.mountpaths == 0 {
        return Err(crate::Failure::usage(
            "the playground needs at least one proxy, one target and one mountpath",
        ));
    }
    let noded = find_noded()?;
    // Start time counts from the first process, not from building noded.
    let t0 = Instant::now();
    let dir = match a.dir.clone() {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("shoal-playground-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(anyhow::Error::from)?;
    let mut c = LocalCluster::new(noded, dir.clone());
    c.kill_on_drop = !a.detach;
    c.http_offset = Some(HTTP_OFFSET);
    let mut base = a.base_port;
    for i in 0..a.proxies {
        let port = LocalCluster::pick_port(&mut base, HTTP_OFFSET)?;
        c.add(&format!("proxy{i}"), Role::Proxy, port, 0, &[])?;
        if i == 0 {
            // Others join through the primary: let it come up first.
            c.wait_ready(Duration::from_secs(20)).await?;
        }
    }
    for i in 0..a.targets {
        let port = LocalCluster::pick_port(&mut base, HTTP_OFFSET)?;
        c.add(&format!("target{i}"), Role::Target, port, a.mountpaths, &[])?;
    }
    c.wait_ready(Duration::from_secs(30)).await?;
    let client = c.client();
    // Joins trigger rebalances of empty targets; let them settle before loading data.
    wait_idle(&client, Duration::from_secs(30)).await;
    let bytes = load_samples(&client, a.objects).await?;
    let started = t0.elapsed();
    let tty = std::io::stdout().is_terminal();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    println!(
        "Shoal playground: {}, {} ({} each), {} objects ({}) in ais://demo; up in {:.1}s",
        plural(a.proxies, "proxy", "proxies"),
        plural(a.targets, "target", "targets"),
        plural(a.mountpaths, "mountpath", "mountpaths"),
        a.objects,
        crate::format::size(bytes),
        started.as_secs_f64()
    );
    println!(
        "Endpoint: {}   (export NODECTL_ENDPOINT={})",
        c.endpoint, c.endpoint
    );
    let http = http_url(&c.endpoint, HTTP_OFFSET);
    println!("HTTP:     {http}/v1 (AIStore API: aistore.sdk.Client(\"{http}\"))");
    println!("S3:       {http}/s3   (any access key and secret while auth is off), e.g.");
    println!(
        "  AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x aws --endpoint-url {http}/s3 s3 ls s3://demo/"
    );
    println!(
        "  python3 -c 'import boto3; s3 = boto3.client(\"s3\", endpoint_url=\"{http}/s3\", \\\n      aws_access_key_id=\"x\", aws_secret_access_key=\"x\", region_name=\"us-east-1\"); \\\n      print([o[\"Key\"] for o in s3.list_objects_v2(Bucket=\"demo\", MaxKeys=5)[\"Contents\"]])'"
    );
    println!("Data and logs: {}", dir.display());
    // Default config: the targets refuse new objects past this mark, which on a nearly full
    // disk would otherwise show only as failed writes.
    let storage = shoal_actors::types::config::StorageConfig::default();
    if let Some(used) = shoal_actors::node::stats::capacity(&dir).map(|c| c.used_pct())
        && storage.past_high_water(Some(used), false)
    {
        println!(
            "Note: the disk holding it is {used:.0}% used, past the high-water mark ({}%): the \
             targets take no new objects. Free some space or pick another --dir.",
            storage.high_water_pct
        );
    }
    if a.detach {
        c.kill_on_drop = false;
        let pids: Vec<String> = c.pids().iter().map(|p| p.to_string()).collect();
        println!("Running in the background. To stop it:");
        println!("  nodectl --endpoint {} cluster shutdown --yes", c.endpoint);
        println!("  (or: kill {})", pids.join(" "));
        return Ok(());
    }
    let _ = env;
    if tty && !a.no_console {
        let res = shoal_tui::run(
            client,
            shoal_tui::ConsoleOptions {
                refresh: Duration::from_secs(1),
                readonly: false,
            },
        )
        .await;
        c.stop_all();
        println!("Playground stopped. Data and logs: {}", dir.display());
        res.map_err(crate::Failure::from)?;
    } else {
        println!("Press Ctrl-C to stop the cluster.");
        let _ = tokio::signal::ctrl_c().await;
        c.stop_all();
        println!("Playground stopped.");
    }
    Ok(())
}

/// Waits (bounded) until no rebalance runs.
pub async fn wait_idle(client: &Client, timeout: Duration) {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        match client.rebalance_status().await {
            Ok(Some(r)) if r.is_running() => {}
            Ok(_) => return,
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_never_handed_out_twice_even_once_it_is_free_again() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..300 {
            // Nothing binds them: each is free again right away, as a restarting node's is.
            assert!(seen.insert(free_port().unwrap()), "a port handed out twice");
        }
        let p = free_port_pair(-11000).unwrap();
        assert!(!seen.contains(&p) && !seen.contains(&(p - 11000)));
        assert!(!claim(p) && !claim(p - 11000), "the pair is claimed");
    }
}
