//! A fault-injecting TCP relay on every directed pair of nodes. Node A reaches node B through
//! the relay of (A→B) (`SHOAL_FAULT_ROUTES` in A's environment), so the test can cut A→B alone
//! (A's requests to B fail while B's requests to A still pass) or both ways. Connections are
//! request/response, so cutting A→B stops A's calls to B and their replies.
//!
//! A cut link either refuses (new connections are closed at once, open ones are torn down) or
//! blackholes (connections are accepted and held silent until the link changes, as packets lost
//! in a partition; the caller sees timeouts, not errors).
//!
//! One difference from a real network: a relay accepts before it knows whether the destination
//! is up, so a dead node looks like "connected, then closed" to its peers rather than
//! "connection refused".

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Refuse,
    Blackhole,
}

struct Link {
    mode: watch::Sender<Mode>,
    /// The relay's own address, which the source node dials instead of the destination.
    via: String,
}

/// Every directed link between the nodes, by (from, to) harness name.
pub struct Mesh {
    links: BTreeMap<(String, String), Link>,
    /// Connections relayed so far: proof that node traffic really goes through the mesh.
    relayed: Arc<AtomicU64>,
    addrs: BTreeMap<String, String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Mesh {
    /// Binds one relay per ordered pair of `nodes` (name, listen address) and starts serving.
    pub async fn start(nodes: &[(String, String)]) -> std::io::Result<Self> {
        let mut links = BTreeMap::new();
        let mut tasks = Vec::new();
        let relayed = Arc::new(AtomicU64::new(0));
        for (from, _) in nodes {
            for (to, dest) in nodes {
                if from == to {
                    continue;
                }
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let via = listener.local_addr()?.to_string();
                let (tx, rx) = watch::channel(Mode::Pass);
                tasks.push(tokio::spawn(accept_loop(
                    listener,
                    dest.clone(),
                    rx,
                    relayed.clone(),
                )));
                links.insert((from.clone(), to.clone()), Link { mode: tx, via });
            }
        }
        Ok(Mesh {
            links,
            relayed,
            addrs: nodes.iter().cloned().collect(),
            tasks,
        })
    }

    /// `SHOAL_FAULT_ROUTES` for node `from`: every peer through its relay.
    pub fn routes(&self, from: &str) -> String {
        self.links
            .iter()
            .filter(|((f, _), _)| f == from)
            .map(|((_, t), l)| format!("{}>{}", self.addrs[t], l.via))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn set(&self, from: &str, to: &str, mode: Mode) {
        if let Some(l) = self.links.get(&(from.to_string(), to.to_string())) {
            l.mode.send_replace(mode);
        }
    }

    /// Cuts (or heals, with `Mode::Pass`) every link between `node` and the others.
    pub fn isolate(&self, node: &str, mode: Mode) {
        for ((f, t), l) in &self.links {
            if f == node || t == node {
                l.mode.send_replace(mode);
            }
        }
    }

    pub fn heal_all(&self) {
        for l in self.links.values() {
            l.mode.send_replace(Mode::Pass);
        }
    }

    /// Links currently cut: (from, to, mode).
    pub fn cut_links(&self) -> Vec<(String, String, Mode)> {
        self.links
            .iter()
            .filter(|(_, l)| *l.mode.borrow() != Mode::Pass)
            .map(|((f, t), l)| (f.clone(), t.clone(), *l.mode.borrow()))
            .collect()
    }

    pub fn relayed(&self) -> u64 {
        self.relayed.load(Ordering::Relaxed)
    }

    /// Whether any link to or from `node` is cut.
    pub fn touches(&self, node: &str) -> bool {
        self.cut_links()
            .iter()
            .any(|(f, t, _)| f == node || t == node)
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    dest: String,
    mode: watch::Receiver<Mode>,
    relayed: Arc<AtomicU64>,
) {
    while let Ok((inbound, _)) = listener.accept().await {
        relayed.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(inbound, dest.clone(), mode.clone()));
    }
}

/// Waits until the link leaves `Pass`; returns the new mode.
async fn until_cut(mode: &mut watch::Receiver<Mode>) -> Mode {
    loop {
        let m = *mode.borrow_and_update();
        if m != Mode::Pass {
            return m;
        }
        if mode.changed().await.is_err() {
            // The mesh is gone: never cut again.
            std::future::pending::<()>().await;
        }
    }
}

async fn serve(mut inbound: TcpStream, dest: String, mut mode: watch::Receiver<Mode>) {
    let _ = inbound.set_nodelay(true);
    let now = *mode.borrow_and_update();
    match now {
        Mode::Refuse => return,
        Mode::Blackhole => {
            // Held open and silent until the link changes, then closed.
            let _ = mode.changed().await;
            return;
        }
        Mode::Pass => {}
    }
    let mut outbound =
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&dest)).await {
            Ok(Ok(s)) => s,
            _ => return,
        };
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        m = until_cut(&mut mode) => {
            if m == Mode::Blackhole {
                // Stop forwarding but keep both ends open until the link changes again.
                let _ = mode.changed().await;
            }
        }
    }
}
