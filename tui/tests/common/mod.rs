//! Fixtures shared by the render tests, the update tests and the render benchmark: cluster
//! snapshots built by hand, and helpers to drive and read the console without a terminal.
#![allow(dead_code)] // each test binary uses a different subset

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

use shoal_actors::types::lifecycle::{Plan, PlanCapacity, PlanMove};
use shoal_actors::types::smap::Role;
use shoal_actors::types::status::{
    ClusterStatus, MountpathStats, MpState, NodeState, NodeStatus, RebState, RebalanceStatus,
    ResilverStatus, Stage, TargetRebStatus,
};
use shoal_tui::keys::map_key;
use shoal_tui::{Action, Command, Model, update, view};

pub const ENDPOINT: &str = "127.0.0.1:51080";
pub const PRIMARY: &str = "MWIp8080";
pub const NON_ELECTABLE: &str = "Qz7p8090";
/// Fixed clock for snapshots, so event-log timestamps are stable (14:02:11 UTC).
pub const T0: u64 = 1_767_276_131;

/// AIStore-looking target IDs: `T00xt8100`, `T01xt8101`…
pub fn tid(i: usize) -> String {
    format!("T{i:02}xt{}", 8100 + i)
}

pub fn target(i: usize) -> NodeStatus {
    NodeStatus {
        id: tid(i),
        role: Role::Target,
        mem_used_pct: 0.13,
        mem_avail: 33_586_659_328,
        cap_used_pct: 16.0,
        cap_avail: 2_677_340_000_000,
        cpu_used_pct: 0.12 + i as f64,
        rebalance: "finished(g4)".into(),
        uptime_secs: 31 * 60,
        status: NodeState::Online,
        flags: vec![],
        addr: format!("10.0.0.{}:{}", 10 + i, 8100 + i),
        http_url: format!("http://10.0.0.{}:{}", 10 + i, 8100 + i),
        reachable: true,
        migrating: false,
        safe_to_power_off: false,
        is_primary: false,
        non_electable: false,
        object_count: 1000 + i as u64,
        mountpaths: vec![
            MountpathStats {
                path: format!("/data/{}/mp1", tid(i)),
                used: 400 << 30,
                avail: 1600 << 30,
                total: 2000 << 30,
                objects: 600,
                object_bytes: 300 << 30,
                enabled: true,
                fs: "ext4 /dev/sdb1".into(),
                ..Default::default()
            },
            MountpathStats {
                path: format!("/data/{}/mp2", tid(i)),
                used: 300 << 30,
                avail: 1700 << 30,
                total: 2000 << 30,
                objects: 400 + i as u64,
                object_bytes: 200 << 30,
                enabled: true,
                fs: "ext4 /dev/sdc1".into(),
                ..Default::default()
            },
        ],
        restarts: 0,
        restarts_by_child: Default::default(),
        resilver: None,
    }
}

/// Target `i`'s disks in every state: mp1 enabled, mp2 failed with its I/O error, and a third
/// `mp3` freshly attached while a resilver moves objects onto it.
pub fn storage_trouble(c: &mut ClusterStatus, i: usize) {
    let t = &mut c.targets[i];
    let mp2 = &mut t.mountpaths[1];
    mp2.enabled = false;
    mp2.state = MpState::Failed;
    mp2.reason = Some("I/O failing: Input/output error (os error 5), 3 errors in 10s".into());
    t.mountpaths.push(MountpathStats {
        path: format!("/data/{}/mp3", tid(i)),
        used: 1 << 30,
        avail: 1999 << 30,
        total: 2000 << 30,
        objects: 120,
        object_bytes: 1 << 30,
        enabled: true,
        fs: "xfs /dev/sdd1".into(),
        ..Default::default()
    });
    t.resilver = Some(running_resilver(i, "attach"));
}

/// Resilver r3 on target `i`, 24% through, after `what` (`attach`…) of its mp3.
pub fn running_resilver(i: usize, what: &str) -> ResilverStatus {
    ResilverStatus {
        target: tid(i),
        id: "r3".into(),
        state: RebState::Running,
        stage: Stage::Traverse,
        reason: format!("{what} /data/{}/mp3", tid(i)),
        objs_total: 500,
        bytes_total: 5 << 20,
        counted: true,
        objs_moved: 120,
        bytes_moved: 1_258_291,
        rate_bytes_per_sec: (30 << 20) as f64,
        eta_secs: Some(4),
        errors: 0,
        blocked_by: None,
        started: Some(T0 - 10),
        finished: None,
    }
}

pub fn proxy(id: &str, primary: bool, non_electable: bool) -> NodeStatus {
    NodeStatus {
        id: id.into(),
        role: Role::Proxy,
        mem_used_pct: 0.2,
        mem_avail: 33_586_659_328,
        cpu_used_pct: 1.5,
        rebalance: "-".into(),
        uptime_secs: 2 * 3600 + 5 * 60,
        status: NodeState::Online,
        addr: "10.0.0.2:8080".into(),
        reachable: true,
        is_primary: primary,
        non_electable,
        ..Default::default()
    }
}

/// A healthy cluster: two proxies (one primary, one non-electable) and `n` online targets.
pub fn cluster(n: usize) -> ClusterStatus {
    ClusterStatus {
        uuid: "7d1c9c2e-0f5a-4e2b-9d35-5c9b8a7f1e22".into(),
        smap_version: 12,
        primary: PRIMARY.into(),
        proxies: vec![
            proxy(PRIMARY, true, false),
            proxy(NON_ELECTABLE, false, true),
        ],
        targets: (0..n).map(target).collect(),
        rebalance: None,
    }
}

/// Target `i` in maintenance; `migrating` while its rebalance runs, else safe to power off.
pub fn in_maintenance(c: &mut ClusterStatus, i: usize, migrating: bool) {
    let t = &mut c.targets[i];
    t.status = NodeState::Maintenance;
    t.migrating = migrating;
    t.safe_to_power_off = !migrating;
    t.flags = if migrating {
        vec!["maint".into()]
    } else {
        vec!["maint".into(), "maint_post_reb".into()]
    };
}

pub fn offline(c: &mut ClusterStatus, i: usize) {
    let t = &mut c.targets[i];
    t.status = NodeState::Offline;
    t.reachable = false;
    t.mem_used_pct = 0.0;
    t.mem_avail = 0;
    t.cap_avail = 0;
}

/// Generation g5, 42% through, 80 s left, optionally blocked.
pub fn running_rebalance(targets: usize, blocked: Option<&str>) -> RebalanceStatus {
    RebalanceStatus {
        id: "g5".into(),
        state: RebState::Running,
        stage: Stage::Traverse,
        objs_total: 5000,
        bytes_total: 100 << 30,
        objs_moved: 2100,
        bytes_moved: 42 << 30,
        rate_bytes_per_sec: (512 << 20) as f64,
        rate_objs_per_sec: 25.0,
        eta_secs: Some(80),
        blocked_by: blocked.into_iter().map(String::from).collect(),
        targets: (0..targets)
            .map(|i| TargetRebStatus {
                id: tid(i),
                generation: 5,
                stage: Stage::Traverse,
                objs_total: 1000,
                bytes_total: 20 << 30,
                counted: true,
                tx_objs: 400 + i as u64,
                tx_bytes: 8 << 30,
                rx_objs: 300,
                rx_bytes: 6 << 30,
                blocked_by: (i == 0).then(|| blocked.map(String::from)).flatten(),
                ..Default::default()
            })
            .collect(),
        started: Some(T0 - 60),
        finished: None,
        errors: 0,
        ..Default::default()
    }
}

pub fn finished_rebalance() -> RebalanceStatus {
    RebalanceStatus {
        state: RebState::Finished,
        stage: Stage::Done,
        objs_moved: 5000,
        bytes_moved: 100 << 30,
        eta_secs: None,
        finished: Some(T0),
        ..running_rebalance(0, None)
    }
}

pub fn plan_for(node: &str) -> Plan {
    Plan {
        op: "start-maintenance".into(),
        nodes: vec![node.into()],
        rebalance: true,
        moves: vec![PlanMove {
            from: node.into(),
            to: tid(2),
            objs: 1000,
            bytes: 50 << 30,
        }],
        capacity: vec![PlanCapacity {
            target: tid(2),
            bytes_in: 50 << 30,
            bytes_out: 0,
            cap_avail_before: 1600 << 30,
            cap_avail_after: 1550 << 30,
            cap_used_pct_after: 22.5,
        }],
        objs_total: 1000,
        bytes_total: 50 << 30,
        fits: true,
        warnings: vec![],
    }
}

pub fn snapshot(c: &ClusterStatus, r: Option<&RebalanceStatus>, at: u64) -> Action {
    Action::Snapshot {
        cluster: Box::new(c.clone()),
        rebalance: r.cloned().map(Box::new),
        at,
    }
}

/// A console that has received one snapshot.
pub fn model_with(c: &ClusterStatus, r: Option<&RebalanceStatus>, readonly: bool) -> Model {
    let mut m = Model::new(ENDPOINT, readonly);
    assert_eq!(update(&mut m, snapshot(c, r, T0)), None);
    m
}

/// What `whoami` answers for a user with `roles` (the built-in ones), auth on.
pub fn identity(subject: &str, roles: &[&str]) -> shoal_actors::types::auth::WhoAmI {
    use shoal_actors::types::auth::{Principal, PrincipalKind, UserRec, WhoAmI};
    let user = UserRec {
        name: subject.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    };
    let principal: Principal = shoal_actors::logic::perm::user_principal(&user, &[]);
    assert_eq!(principal.kind, PrincipalKind::User);
    WhoAmI {
        auth_enabled: true,
        principal,
        exp: None,
    }
}

/// Presses one key the way the runner does: map it, then update.
pub fn press(m: &mut Model, code: KeyCode) -> Option<Command> {
    press_mod(m, code, KeyModifiers::NONE)
}

pub fn press_mod(m: &mut Model, code: KeyCode, mods: KeyModifiers) -> Option<Command> {
    map_key(m, KeyEvent::new(code, mods)).and_then(|a| update(m, a))
}

/// Types `s` character by character; returns every command produced.
pub fn type_str(m: &mut Model, s: &str) -> Vec<Command> {
    s.chars()
        .filter_map(|c| press(m, KeyCode::Char(c)))
        .collect()
}

pub fn render(m: &Model, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view(m, f)).unwrap();
    t.backend().buffer().clone()
}

/// The buffer as one string per row.
pub fn lines(buf: &Buffer) -> Vec<String> {
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

pub fn text(buf: &Buffer) -> String {
    lines(buf).join("\n")
}

/// Cell position of the first occurrence of `needle` (by columns, so ASCII needles only).
pub fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    find_in_row(buf, needle, 0..buf.area.height)
}

pub fn find_in_row(
    buf: &Buffer,
    needle: &str,
    rows: impl IntoIterator<Item = u16>,
) -> Option<(u16, u16)> {
    let chars: Vec<String> = needle.chars().map(String::from).collect();
    for y in rows {
        let row: Vec<&str> = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        let hit = row
            .windows(chars.len().max(1))
            .position(|w| w.iter().zip(&chars).all(|(a, b)| *a == b.as_str()));
        if let Some(x) = hit {
            return Some((x as u16, y));
        }
    }
    None
}

/// Row of the targets table that shows `id`.
pub fn row_of(buf: &Buffer, id: &str) -> u16 {
    find(buf, id)
        .unwrap_or_else(|| panic!("{id} not on screen:\n{}", text(buf)))
        .1
}

/// True when no cell uses RGB or 256-colour indices (the console promises 16 colours).
pub fn only_named_colours(buf: &Buffer) -> bool {
    let named = |c: Color| !matches!(c, Color::Rgb(..) | Color::Indexed(_));
    buf.content.iter().all(|c| named(c.fg) && named(c.bg))
}
