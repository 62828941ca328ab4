//! Header: which cluster, which map, who is primary, how many nodes, and the rebalance now.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::format;
use crate::model::{Connection, Model};
use crate::update::freshness;
use shoal_actors::types::status::NodeState;

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let dim = Style::new().fg(Color::DarkGray);
    // An 80-column terminal gets the short UUID and tighter spacing, so the counts still fit.
    let narrow = area.width < 120;
    let sep = if narrow { " " } else { "  " };
    let mut first = Vec::new();
    if !narrow {
        first.push(Span::styled("Shoal ", bold.fg(Color::Cyan)));
    }
    match &m.cluster {
        Some(c) => {
            let uuid = if narrow {
                c.uuid.chars().take(8).collect::<String>()
            } else {
                c.uuid.clone()
            };
            let count = |s: NodeState| c.targets.iter().filter(|t| t.status == s).count();
            let (maint, decomm) = (
                count(NodeState::Maintenance),
                count(NodeState::Decommission),
            );
            let offline = c
                .targets
                .iter()
                .chain(&c.proxies)
                .filter(|t| !t.reachable)
                .count();
            if !narrow {
                first.push(Span::styled("cluster ", dim));
            }
            first.extend([
                Span::raw(uuid),
                Span::styled(format!("{sep}map "), dim),
                Span::styled(format!("v{}", c.smap_version), bold),
                Span::styled(format!("{sep}primary "), dim),
                Span::raw(format!("p[{}]", c.primary)),
                Span::styled(format!("{sep}proxies "), dim),
                Span::raw(c.proxies.len().to_string()),
                Span::styled(format!("{sep}targets "), dim),
                Span::raw(c.targets.len().to_string()),
            ]);
            let mut notes = Vec::new();
            if maint > 0 {
                notes.push(Span::styled(
                    format!("{maint} maint"),
                    Style::new().fg(Color::Yellow),
                ));
            }
            if decomm > 0 {
                notes.push(Span::styled(
                    format!("{decomm} decomm"),
                    Style::new().fg(Color::Red),
                ));
            }
            if offline > 0 {
                notes.push(Span::styled(
                    format!("{offline} offline"),
                    Style::new().fg(Color::Red),
                ));
            }
            let any_note = !notes.is_empty();
            for (i, note) in notes.into_iter().enumerate() {
                first.push(Span::raw(if i == 0 { " (" } else { ", " }));
                first.push(note);
            }
            if any_note {
                first.push(Span::raw(")"));
            }
        }
        None => first.push(Span::styled(format!("connecting to {}…", m.endpoint), dim)),
    }

    let mut second = vec![Span::styled("rebalance ", dim)];
    match &m.rebalance {
        Some(r) => {
            let style = super::reb_state_style(r.state);
            second.push(Span::styled(format!("{} {}", r.id, r.state), style));
            if r.is_running() {
                second.push(Span::raw(format!(
                    "  {:.0}%  {}",
                    r.fraction() * 100.0,
                    r.eta_secs
                        .map_or("ETA -".to_string(), |s| format!("ETA {}", format::eta(s)))
                )));
            }
            if r.paused {
                second.push(Span::styled(
                    "  PAUSED",
                    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ));
            }
            if r.stalled {
                second.push(Span::styled(
                    "  STALLED",
                    Style::new()
                        .fg(Color::White)
                        .bg(Color::Red)
                        .add_modifier(Modifier::BOLD),
                ));
            } else if !r.blocked_by.is_empty() {
                second.push(Span::styled(
                    "  BLOCKED",
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                ));
            }
        }
        None => second.push(Span::raw("none")),
    }
    second.push(Span::raw("   "));
    match (&m.connection, freshness(m)) {
        (Connection::Unreachable { .. }, Some(f)) => second.push(Span::styled(
            format!("stale, last {f}"),
            Style::new().fg(Color::Red),
        )),
        (_, Some(f)) => second.push(Span::styled(f, dim)),
        _ => {}
    }
    if let Some(who) = crate::model::identity_text(m) {
        second.push(Span::styled("  as ", dim));
        second.push(Span::styled(who, bold));
    }
    if m.readonly {
        second.push(Span::styled("  read-only", Style::new().fg(Color::Yellow)));
    }

    let [a, b] = [
        Rect {
            height: area.height.min(1),
            ..area
        },
        Rect {
            y: area.y + 1,
            height: area.height.saturating_sub(1),
            ..area
        },
    ];
    Line::from(first).render(a, buf);
    Line::from(second).render(b, buf);
}
