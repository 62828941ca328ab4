//! Node detail (Enter): address, role, flags, objects and every mountpath with its capacity.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, Widget};

use crate::format;
use crate::model::{Model, label};
use crate::view::{clear_popup, popup, power_cue, status_style};

/// Width of the mountpath table's columns after MOUNTPATH, with their spacing.
const MP_FIXED_W: u16 = 9 + 9 + 9 + 4 + 9 + 8 + 6;

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let Some(n) = m.selected() else { return };
    let dim = Style::new().fg(Color::DarkGray);
    let metric = |s: String| if n.reachable { s } else { "-".to_string() };
    let mut role = n.role.as_str().to_string();
    if n.is_primary {
        role.push_str(", primary");
    }
    if n.non_electable {
        role.push_str(", non-electable");
    }
    let mut status = vec![Span::styled(n.status.as_str(), status_style(n))];
    if let Some(cue) = power_cue(n) {
        status.push(Span::styled(format!("  ({cue})"), status_style(n)));
    }
    let field = |k: &'static str, v: String| Line::from(vec![Span::styled(k, dim), Span::raw(v)]);
    let mut lines = vec![
        Line::from([vec![Span::styled("status      ", dim)], status].concat()),
        field("role        ", role),
        field("address     ", n.addr.clone()),
        field(
            "flags       ",
            if n.flags.is_empty() {
                "-".into()
            } else {
                n.flags.join(" ")
            },
        ),
        field("objects     ", metric(format::count(n.object_count))),
        field("rebalance   ", n.rebalance.clone()),
        field(
            "memory      ",
            metric(format!(
                "{} used, {} available",
                format::pct2(n.mem_used_pct),
                format::iec(n.mem_avail)
            )),
        ),
        field("cpu         ", metric(format::pct2(n.cpu_used_pct))),
        field(
            "capacity    ",
            metric(format!(
                "{} used, {} available",
                format::pct0(n.cap_used_pct),
                format::iec(n.cap_avail)
            )),
        ),
        field("uptime      ", metric(format::duration(n.uptime_secs))),
    ];
    // Crashes the node repaired by itself: worth a look even when all is green.
    let restarts = if n.restarts_by_child.is_empty() {
        n.restarts.to_string()
    } else {
        let by: Vec<String> = n
            .restarts_by_child
            .iter()
            .map(|(c, k)| format!("{c} {k}"))
            .collect();
        format!("{} ({})", n.restarts, by.join(", "))
    };
    let restarts_style = if n.restarts > 0 {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    lines.push(Line::from(vec![
        Span::styled("restarts    ", dim),
        Span::styled(metric(restarts), restarts_style),
    ]));
    if !n.reachable {
        lines.push(Line::styled(
            "node does not answer: metrics are unknown",
            Style::new().fg(Color::Red),
        ));
    }
    let mp_rows = n.mountpaths.len() as u16;
    let want = lines.len() as u16 + 2 + if mp_rows > 0 { mp_rows + 2 } else { 0 };
    let rect = popup(area, area.width.saturating_sub(4).min(100), want);
    clear_popup(area, rect, buf);
    let blk = Block::bordered()
        .border_style(Style::new().fg(Color::Cyan))
        .title(Line::styled(
            format!(" {} (Esc back) ", label(n)),
            Style::new().add_modifier(Modifier::BOLD),
        ));
    let inner = blk.inner(rect);
    blk.render(rect, buf);
    if n.mountpaths.is_empty() {
        // No gap to keep for a table: every line (the last says why metrics are missing) shows.
        Paragraph::new(lines).render(inner, buf);
        return;
    }
    let [info, _, mps] = Layout::vertical([
        Constraint::Length(lines.len() as u16),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(inner);
    Paragraph::new(lines).render(info, buf);
    // The path gets what the numbers leave; it is cut from the left, since mountpaths of one
    // node usually differ only at the end (`…/mp1`, `…/mp2`).
    let path_w = usize::from(mps.width.saturating_sub(MP_FIXED_W));
    let rows = n.mountpaths.iter().map(|mp| {
        let used_pct = if mp.total > 0 {
            100.0 * mp.used as f64 / mp.total as f64
        } else {
            0.0
        };
        let row = Row::new(vec![
            Cell::from(format::ellipsize_left(&mp.path, path_w)),
            Cell::from(format::iec(mp.used)),
            Cell::from(format::iec(mp.avail)),
            Cell::from(format::iec(mp.total)),
            Cell::from(format::pct0(used_pct)),
            Cell::from(format::count(mp.objects)),
            Cell::from(if mp.enabled { "enabled" } else { "DISABLED" }),
        ]);
        if mp.enabled {
            row
        } else {
            row.style(Style::new().fg(Color::Red))
        }
    });
    Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(4),
            Constraint::Length(9),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new([
            "MOUNTPATH",
            "USED",
            "AVAIL",
            "TOTAL",
            "USE",
            "OBJECTS",
            "STATE",
        ])
        .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .column_spacing(1)
    .render(mps, buf);
}
