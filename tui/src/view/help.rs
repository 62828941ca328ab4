//! Help overlay (`?`): every key, and what read-only mode turns off.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use crate::model::Model;
use crate::view::{clear_popup, popup};

const NAV: &[(&str, &str)] = &[
    (
        "↑/k ↓/j",
        "move (in a target's detail: the mountpath cursor)",
    ),
    ("g / G", "top / bottom"),
    ("PgUp/PgDn", "page"),
    ("Tab", "switch targets / proxies"),
    ("/", "filter by node ID (Esc clears)"),
    ("Enter", "node details (Esc back)"),
    ("r", "refresh now"),
    ("?", "this help"),
    ("q / Esc", "quit (Esc closes dialogs first)"),
    ("Ctrl-C", "quit"),
];

const ACTIONS: &[(&str, &str)] = &[
    ("m", "start / stop maintenance"),
    ("s", "shutdown (undo: stop-maintenance)"),
    ("D", "decommission (type the node ID; no undo)"),
    ("P", "pause / resume the global rebalance"),
    ("H", "rebalance history (past generations)"),
    ("Space", "mark nodes for one batch"),
    ("n", "--no-rebalance for the next action"),
    (
        "a",
        "attach a mountpath, typing its directory (target detail)",
    ),
    (
        "d / e / x",
        "detach / enable / disable the selected mountpath",
    ),
];

/// `H`: past generations, newest first (the cluster's history, as `show rebalance --all`).
pub fn render_history(m: &Model, area: Rect, buf: &mut Buffer) {
    let Some(state) = &m.history else { return };
    let dim = Style::new().fg(Color::DarkGray);
    let mut lines = Vec::new();
    match state {
        None => lines.push(Line::styled("reading the history…", dim)),
        Some(Err(e)) => lines.push(Line::styled(
            format!("cannot read the history: {e}"),
            Style::new().fg(Color::Red),
        )),
        Some(Ok(h)) if h.is_empty() => {
            lines.push(Line::styled("no rebalance has run in this cluster", dim))
        }
        Some(Ok(h)) => {
            lines.push(Line::styled(
                format!(
                    "{:<6} {:<8} {:>8} {:>10} {:>4}  {:<22} TRIGGER",
                    "ID", "END", "OBJECTS", "BYTES", "ERR", "OUTCOME"
                ),
                Style::new().add_modifier(Modifier::BOLD),
            ));
            for r in h.iter().rev() {
                let style = if r.errors > 0 || r.outcome.contains("error") {
                    Style::new().fg(Color::Red)
                } else {
                    Style::new()
                };
                lines.push(Line::styled(
                    format!(
                        "{:<6} {:<8} {:>8} {:>10} {:>4}  {:<22} {}",
                        r.id,
                        crate::format::clock(r.finished),
                        crate::format::count(r.objects),
                        crate::format::iec(r.bytes),
                        r.errors,
                        r.outcome,
                        r.trigger
                    ),
                    style,
                ));
            }
        }
    }
    let width = area.width.saturating_sub(2).min(110);
    let h = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
    let rect = popup(area, width, h);
    clear_popup(area, rect, buf);
    Paragraph::new(lines)
        .block(
            Block::bordered()
                .border_style(Style::new().fg(Color::Cyan))
                .title(" Rebalance history (H or Esc to close) "),
        )
        .render(rect, buf);
}

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let key = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    let row = |(k, what): &(&'static str, &'static str), style: Style| {
        Line::from(vec![
            Span::styled(format!("{k:>10}  "), style),
            Span::raw(*what),
        ])
    };
    let mut lines: Vec<Line> = NAV.iter().map(|r| row(r, key)).collect();
    lines.push(Line::default());
    if m.readonly {
        lines.push(Line::styled(
            "read-only console: lifecycle and mountpath keys are disabled",
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
        let off = Style::new()
            .fg(Color::DarkGray)
            .add_modifier(Modifier::CROSSED_OUT);
        lines.extend(ACTIONS.iter().map(|r| row(r, off)));
    } else {
        lines.extend(ACTIONS.iter().map(|r| row(r, key)));
    }
    lines.push(Line::default());
    lines.push(Line::styled(
        "maintenance: red = rebalancing, do not power off; cyan = safe to power off",
        Style::new().fg(Color::DarkGray),
    ));
    let h = lines.len() as u16 + 2;
    let rect = popup(area, 78, h);
    clear_popup(area, rect, buf);
    Paragraph::new(lines)
        .block(
            Block::bordered()
                .border_style(Style::new().fg(Color::Cyan))
                .title(" Help (? or Esc to close) "),
        )
        .render(rect, buf);
}
