//! The stats actor: samples memory, CPU and per-mountpath capacity (statvfs, de-duplicated by
//! filesystem) once a second and answers with the latest sample.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::types::status::{MountpathStats, NodeStats};

// ---------------------------------------------------------------------------------------------
// StatsActor
// ---------------------------------------------------------------------------------------------

/// Samples the host and the node's mountpaths; answers with the latest sample.
pub struct StatsActor;

/// The directories whose filesystems are measured (a target's mountpaths change at run time).
pub type Dirs = Box<dyn Fn() -> Vec<PathBuf> + Send + Sync>;

pub struct StatsState {
    sys: sysinfo::System,
    /// Mountpath directories whose filesystems we measure.
    mountpaths: Dirs,
    started: std::time::Instant,
    latest: NodeStats,
}

pub struct StatsArgs {
    pub mountpaths: Dirs,
}

pub enum StatsMsg {
    /// Timer tick: take a new sample (CPU needs two refreshes some time apart).
    Sample,
    /// The latest sample; the node fills in per-mountpath object counts itself.
    Get(RpcReplyPort<NodeStats>),
}

/// How often the host is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(1000);

impl Actor for StatsActor {
    type Msg = StatsMsg;
    type State = StatsState;
    type Arguments = StatsArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: StatsArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        crate::fault::maybe_panic("stats");
        let mut sys = sysinfo::System::new()?;
        sys.refresh_memory();
        sys.refresh_cpu_usage();
        myself.send_interval(SAMPLE_INTERVAL, || StatsMsg::Sample);
        let mut state = StatsState {
            sys,
            mountpaths: args.mountpaths,
            started: std::time::Instant::now(),
            latest: NodeStats::default(),
        };
        sample(&mut state);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StatsMsg::Sample => {
                crate::fault::maybe_panic("stats");
                sample(state)
            }
            StatsMsg::Get(reply) => {
                let mut s = state.latest.clone();
                s.uptime_secs = state.started.elapsed().as_secs();
                let _ = reply.send(s);
            }
        }
        Ok(())
    }
}

fn sample(state: &mut StatsState) {
    state.sys.refresh_memory();
    state.sys.refresh_cpu_usage();
    let total = state.sys.total_memory().max(1);
    let avail = state.sys.available_memory();
    let latest = &mut state.latest;
    latest.mem_avail = avail;
    latest.mem_used_pct = 100.0 * (total.saturating_sub(avail)) as f64 / total as f64;
    latest.cpu_used_pct = state.sys.global_cpu_usage() as f64;
    latest.rss = process_rss();
    let mut seen = HashSet::new();
    let (mut cap_total, mut cap_avail, mut cap_used) = (0u64, 0u64, 0u64);
    let dirs = (state.mountpaths)();
    let mut mps = Vec::with_capacity(dirs.len());
    for mp in &dirs {
        let cap = capacity(mp);
        if let Some(c) = cap {
            // Two mountpaths on one filesystem must not count its space twice.
            if seen.insert(c.fs_id) {
                cap_total += c.total;
                cap_avail += c.avail;
                cap_used += c.used;
            }
        }
        let c = cap.unwrap_or_default();
        mps.push(MountpathStats {
            path: mp.display().to_string(),
            used: c.used,
            avail: c.avail,
            total: c.total,
            enabled: cap.is_some(),
            fs: filesystem(mp).unwrap_or_default(),
            ..Default::default()
        });
    }
    latest.cap_total = cap_total;
    latest.cap_avail = cap_avail;
    latest.cap_used = cap_used;
    latest.cap_used_pct = used_pct(cap_used, cap_avail);
    latest.mountpaths = mps;
}

#[derive(Clone, Copy, Default, Debug)]
pub struct Capacity {
    pub fs_id: u64,
    pub total: u64,
    /// Available to this (unprivileged) process.
    pub avail: u64,
    /// In use (blocks not free).
    pub used: u64,
}

impl Capacity {
    /// Used share as `df` shows it: used over what an unprivileged user could have (the
    /// blocks reserved for root do not count either way).
    pub fn used_pct(&self) -> f64 {
        used_pct(self.used, self.avail)
    }
}

fn used_pct(used: u64, avail: u64) -> f64 {
    let all = used.saturating_add(avail);
    if all == 0 {
        0.0
    } else {
        100.0 * used as f64 / all as f64
    }
}

/// Capacity of the filesystem holding `path`, from `statvfs` (sysinfo reports mount points only).
pub fn capacity(path: &std::path::Path) -> Option<Capacity> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(Capacity {
        fs_id: st.f_fsid,
        total: st.f_blocks.saturating_mul(st.f_frsize),
        avail: st.f_bavail.saturating_mul(st.f_frsize),
        used: st
            .f_blocks
            .saturating_sub(st.f_bfree)
            .saturating_mul(st.f_frsize),
    })
}

/// The filesystem holding `path`: its type and source (`ext4 /dev/sdb1`), from the longest
/// mount point in `/proc/self/mountinfo` that contains it.
pub fn filesystem(path: &std::path::Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source ...
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let Some(point) = pre.split(' ').nth(4).map(unescape_mount) else {
            continue;
        };
        let mut rest = post.split(' ');
        let (fstype, source) = (rest.next().unwrap_or("?"), rest.next().unwrap_or(""));
        if path.starts_with(&point) && best.as_ref().is_none_or(|(n, _)| point.len() >= *n) {
            best = Some((point.len(), format!("{fstype} {source}")));
        }
    }
    best.map(|(_, fs)| fs)
}

/// Mount points in mountinfo escape spaces and the like as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resident set size of this process, from /proc (0 where unavailable).
pub fn process_rss() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_of_a_temp_dir_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let c = capacity(dir.path()).expect("statvfs");
        assert!(c.total > 0 && c.avail <= c.total);
    }

    #[tokio::test]
    async fn stats_actor_reports_memory_and_dedups_filesystems() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let (actor, handle) = Actor::spawn(
            None,
            StatsActor,
            StatsArgs {
                mountpaths: Box::new(move || vec![a.clone(), b.clone()]),
            },
        )
        .await
        .unwrap();
        let s = ractor::call!(actor, StatsMsg::Get).unwrap();
        assert!(s.mem_avail > 0);
        assert!(s.mem_used_pct > 0.0 && s.mem_used_pct <= 100.0);
        assert_eq!(s.mountpaths.len(), 2);
        // Both mountpaths share one filesystem: counted once.
        assert_eq!(s.cap_total, s.mountpaths[0].total);
        assert!(s.rss > 0);
        assert!(!s.mountpaths[0].fs.is_empty(), "the filesystem is named");
        actor.stop(None);
        handle.await.unwrap();
    }
}
