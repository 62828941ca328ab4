//! `view(&Model, &mut Frame)`: pure rendering. The screen is cut into named areas
//! ([`AppLayout`]) and each panel is its own widget module. Only the 16 named ANSI colours are
//! used, so the console looks the same over any SSH terminal.

mod cell_width;
mod detail;
mod dialog;
mod header;
mod help;
mod log;
mod rebalance;
mod tables;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Widget, Wrap};

use shoal_actors::types::status::{NodeState, NodeStatus, RebState, ResilverStatus};

use crate::model::{Connection, Model, Severity};

pub use tables::{TargetColumn, target_columns};

/// Terminals at least this wide (and [`WIDE_MIN_HEIGHT`] tall) get the side-by-side layout.
pub const WIDE_MIN_WIDTH: u16 = 150;
pub const WIDE_MIN_HEIGHT: u16 = 30;

/// Where each panel goes; computed from the frame size alone (plus a few counts), so tests and
/// the renderer agree on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppLayout {
    /// Cluster identity, map version, primary, counts, rebalance summary: two lines.
    pub header: Rect,
    /// "cluster unreachable" banner; zero height while connected.
    pub banner: Rect,
    /// One line per running resilver (the local rebalance of a target); zero height when none.
    pub resilver: Rect,
    /// The targets table: the main work area, gets the spare rows.
    pub targets: Rect,
    /// The proxies table, sized to its rows (capped).
    pub proxies: Rect,
    /// Rebalance progress: bar, totals, rate, ETA, blocked reasons, per-target rows.
    pub rebalance: Rect,
    /// The timestamped event log.
    pub events: Rect,
    /// Outcome of the last action, or the filter being typed.
    pub status: Rect,
    /// Key hints, read-only and no-rebalance warnings.
    pub footer: Rect,
}

/// Splits `area` into the console's panels.
pub fn layout(area: Rect, m: &Model) -> AppLayout {
    // The banner wraps to a second line rather than cut off the reason (80 columns rarely hold
    // the endpoint, the attempt count and an OS error together).
    let banner_h = banner_text(m).map_or(0, |t| {
        if t.chars().count() > usize::from(area.width) {
            2
        } else {
            1
        }
    });
    let resilver_h = resilver_strip(m, area.width).len() as u16;
    let [header, banner, resilver, body, status, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(banner_h),
        Constraint::Length(resilver_h),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let n_proxies = m.cluster.as_ref().map_or(1, |c| c.proxies.len()) as u16;
    let wide = area.width >= WIDE_MIN_WIDTH && area.height >= WIDE_MIN_HEIGHT;
    let (targets, proxies, rebalance, events) = if wide {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
                .areas(body);
        let [targets, proxies] = Layout::vertical([
            Constraint::Fill(1),
            Constraint::Length((n_proxies + 3).clamp(4, 12)),
        ])
        .areas(left);
        let n_reb = m.rebalance.as_ref().map_or(0, |r| r.targets.len()) as u16;
        let [rebalance, events] = Layout::vertical([
            Constraint::Length((n_reb + 8).clamp(8, body.height / 2)),
            Constraint::Fill(1),
        ])
        .areas(right);
        (targets, proxies, rebalance, events)
    } else {
        let bottom_h = (body.height / 3).clamp(7, 14);
        let [targets, proxies, bottom] = Layout::vertical([
            Constraint::Min(5),
            Constraint::Length((n_proxies + 3).clamp(4, 6)),
            Constraint::Length(bottom_h),
        ])
        .areas(body);
        let [rebalance, events] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(bottom);
        (targets, proxies, rebalance, events)
    };
    AppLayout {
        header,
        banner,
        resilver,
        targets,
        proxies,
        rebalance,
        events,
        status,
        footer,
    }
}

/// Draws the whole console for `m`.
pub fn view(m: &Model, frame: &mut Frame) {
    let area = frame.area();
    let l = layout(area, m);
    let buf = frame.buffer_mut();
    header::render(m, l.header, buf);
    render_banner(m, l.banner, buf);
    Paragraph::new(resilver_strip(m, l.resilver.width)).render(l.resilver, buf);
    tables::render_targets(m, l.targets, buf);
    tables::render_proxies(m, l.proxies, buf);
    rebalance::render(m, l.rebalance, buf);
    log::render(m, l.events, buf);
    render_status(m, l.status, buf);
    render_footer(m, l.footer, buf);
    if m.detail {
        detail::render(m, area, buf);
    }
    if m.dialog.is_some() {
        dialog::render(m, area, buf);
    }
    if m.mp_dialog.is_some() {
        dialog::render_mountpath(m, area, buf);
    }
    if m.reb_dialog.is_some() {
        dialog::render_pause(m, area, buf);
    }
    if m.history.is_some() {
        help::render_history(m, area, buf);
    }
    if m.help {
        help::render(m, area, buf);
    }
    if m.no_color {
        strip_colours(buf);
    }
}

/// `NO_COLOR`: every cell in the terminal's own colours; bold and reverse stay, so highlights
/// and the selection still show.
fn strip_colours(buf: &mut ratatui::buffer::Buffer) {
    for cell in buf.content.iter_mut() {
        if cell.bg != Color::Reset && cell.bg != Color::Black {
            // A coloured background marked something (a warning, the selection): keep it seen.
            cell.modifier |= Modifier::REVERSED;
        }
        cell.fg = Color::Reset;
        cell.bg = Color::Reset;
    }
}

/// Running resilvers never get more rows than this; the last one then counts the rest.
const MAX_RESILVER_ROWS: usize = 4;

/// The running resilvers, a wrapped `resilver_line` each (as `nodectl show resilver`), at most
/// [`MAX_RESILVER_ROWS`] rows.
fn resilver_strip(m: &Model, width: u16) -> Vec<Line<'static>> {
    let running: Vec<&ResilverStatus> = m
        .cluster
        .iter()
        .flat_map(|c| &c.targets)
        .filter_map(|t| t.resilver.as_ref().filter(|r| r.is_running()))
        .collect();
    const LEAD: &str = "resilver ";
    let width = usize::from(width);
    let each: Vec<Vec<Line<'static>>> = running
        .iter()
        .map(|r| {
            let lead = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
            detail::resilver_lines_led(r, width, lead)
        })
        .collect();
    if each.iter().map(Vec::len).sum::<usize>() <= MAX_RESILVER_ROWS {
        return each.into_iter().flatten().collect();
    }
    // Too many: whole ones while they fit, then a count of the rest.
    let mut lines = Vec::new();
    let mut shown = 0;
    for l in &each {
        if lines.len() + l.len() > MAX_RESILVER_ROWS - 1 {
            break;
        }
        lines.extend(l.iter().cloned());
        shown += 1;
    }
    lines.push(Line::styled(
        format!(
            "{LEAD}… and {} more running (a target's detail shows its own)",
            each.len() - shown
        ),
        Style::new().fg(Color::Yellow),
    ));
    lines
}

/// The "unreachable, retrying" text; `None` while the cluster answers.
fn banner_text(m: &Model) -> Option<String> {
    let Connection::Unreachable {
        error, attempts, ..
    } = &m.connection
    else {
        return None;
    };
    Some(format!(
        " cluster unreachable at {}, retrying… (attempt {attempts}: {error})",
        m.endpoint
    ))
}

fn render_banner(m: &Model, area: Rect, buf: &mut Buffer) {
    let Some(text) = banner_text(m) else { return };
    Paragraph::new(text)
        .wrap(Wrap { trim: false })
        .style(
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        )
        .render(area, buf);
}

fn render_status(m: &Model, area: Rect, buf: &mut Buffer) {
    let line = if m.filter_editing {
        Line::from(vec![
            Span::styled("filter /", Style::new().fg(Color::Yellow)),
            Span::raw(m.filter.as_str()),
            Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled(
                "  (Enter keep, Esc clear)",
                Style::new().fg(Color::DarkGray),
            ),
        ])
    } else if let Some(s) = &m.status {
        Line::styled(s.text.as_str(), severity_style(s.severity))
    } else {
        Line::default()
    };
    line.render(area, buf);
}

fn render_footer(m: &Model, area: Rect, buf: &mut Buffer) {
    let key = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    let mut spans = Vec::new();
    let storage = m.detail_target().is_some();
    if m.readonly {
        spans.push(Span::styled(
            if storage {
                "READ-ONLY: a/d/e/x m/s/D disabled "
            } else {
                "READ-ONLY: m/s/D/Space/n disabled "
            },
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
        spans.push(Span::raw(" "));
    } else if m.no_rebalance {
        spans.push(Span::styled(
            "NO-REBALANCE armed: data may be lost ",
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(" "));
    }
    let mut hints: Vec<(&str, &str)> = vec![("?", "help"), ("q", "quit"), ("/", "filter")];
    if storage {
        // In a target's detail: its mountpath keys first.
        hints = vec![("?", "help"), ("Esc", "back"), ("↑↓", "mountpath")];
        if !m.readonly {
            hints.extend([
                ("a", "attach"),
                ("d", "detach"),
                ("e", "enable"),
                ("x", "disable"),
            ]);
        }
        hints.push(("r", "refresh"));
    } else if !m.readonly {
        hints.extend([
            ("m", "maint"),
            ("s", "shutdown"),
            ("D", "decomm"),
            ("Space", "mark"),
            ("n", "no-reb"),
        ]);
    }
    if !storage {
        hints.extend([("Enter", "detail"), ("Tab", "focus"), ("r", "refresh")]);
    }
    // Whole hints only: a narrow terminal drops the last ones (all are in `?`) rather than
    // showing half a word.
    let mut used: usize = spans.iter().map(|s| s.width()).sum();
    for (k, what) in hints {
        let w = k.chars().count() + 1 + what.chars().count();
        if used + w > usize::from(area.width) {
            break;
        }
        used += w + 2;
        spans.push(Span::styled(k, key));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    Line::from(spans).render(area, buf);
}

/// Colour of a message by severity.
pub fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Info => Style::new(),
        Severity::Notice => Style::new().fg(Color::Cyan),
        Severity::Warn => Style::new().fg(Color::Yellow),
        Severity::Error => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

/// A rebalance's state: yellow while running, green once finished, red when aborted.
pub fn reb_state_style(state: RebState) -> Style {
    match state {
        RebState::Running => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        RebState::Finished => Style::new().fg(Color::Green),
        RebState::Aborted => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

/// STATUS cell style: maintenance red while migrating, cyan once safe to power off (DESIGN §7).
pub fn status_style(n: &NodeStatus) -> Style {
    match n.status {
        NodeState::Maintenance if n.migrating => {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        }
        NodeState::Maintenance if n.safe_to_power_off => Style::new().fg(Color::Cyan),
        NodeState::Maintenance => Style::new().fg(Color::Yellow),
        NodeState::Decommission => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        NodeState::Offline => Style::new().fg(Color::DarkGray),
        NodeState::Online => Style::new().fg(Color::Green),
    }
}

/// The words that go with the colour, since colour alone is not enough (colour-blind operators,
/// monochrome terminals, screenshots in tickets).
pub fn power_cue(n: &NodeStatus) -> Option<&'static str> {
    match n.status {
        NodeState::Maintenance if n.migrating => Some("rebalancing: do NOT power off"),
        // A node that was shut down (or lost) is past the point where powering off matters.
        NodeState::Maintenance if !n.reachable => Some("not answering"),
        NodeState::Maintenance if n.safe_to_power_off => Some("safe to power off"),
        NodeState::Maintenance => Some("in maintenance"),
        NodeState::Decommission if n.migrating => {
            Some("decommissioning: data migrating, do NOT power off")
        }
        NodeState::Decommission => Some("decommissioning"),
        // Follows the status word ("offline: keepalive lost"), so it does not repeat it.
        NodeState::Offline => Some("keepalive lost"),
        _ if !n.reachable => Some("not answering"),
        _ => None,
    }
}

/// Blanks `rect` for a popup, and the column either side of it too (within `area`) except
/// for the borders of the panels underneath: a letter of a table cell stuck to the popup's
/// border reads as part of the popup.
pub fn clear_popup(area: Rect, rect: Rect, buf: &mut Buffer) {
    Clear.render(rect, buf);
    let sides = [rect.x.checked_sub(1), Some(rect.x + rect.width)];
    for x in sides.into_iter().flatten() {
        if x < area.x || x >= area.x + area.width {
            continue;
        }
        for y in rect.y..rect.y + rect.height {
            let cell = &mut buf[(x, y)];
            let is_border = cell
                .symbol()
                .chars()
                .all(|c| ('\u{2500}'..='\u{257f}').contains(&c));
            if !is_border {
                cell.reset();
            }
        }
    }
}

/// A centred rectangle of at most `w`×`h` inside `area`.
pub fn popup(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}
