//! Rebalance pane: progress bar, totals, rate and ETA, why it is blocked, and per-target traffic.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Gauge, Paragraph, Row, Table, Widget, Wrap};

use crate::format;
use crate::model::Model;

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let Some(r) = &m.rebalance else {
        let blk = Block::bordered()
            .border_style(Style::new().fg(Color::DarkGray))
            .title(" Rebalance ");
        let inner = blk.inner(area);
        blk.render(area, buf);
        let text = if m.cluster.is_none() {
            "waiting for the first cluster snapshot…"
        } else {
            "no rebalance since the primary started"
        };
        Paragraph::new(text)
            .style(Style::new().fg(Color::DarkGray))
            .render(inner, buf);
        return;
    };
    let state_style = super::reb_state_style(r.state);
    let blk = Block::bordered()
        .border_style(Style::new().fg(Color::DarkGray))
        .title(Line::from(vec![
            Span::raw(" Rebalance "),
            Span::styled(format!("{} {}", r.id, r.state), state_style),
            Span::raw(format!(" {} ", r.stage)),
        ]));
    let inner = blk.inner(area);
    blk.render(area, buf);

    // Reasons wrap (they name peers and OS errors, longer than a half-width pane); the
    // per-target table gives way first.
    let w = usize::from(inner.width.max(1));
    let n_blocked = r
        .blocked_by
        .iter()
        .map(|b| ("BLOCKED: ".len() + b.chars().count()).div_ceil(w) as u16)
        .sum::<u16>()
        .min(inner.height.saturating_sub(3));
    let [gauge, totals, speed, blocked, per_target] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(n_blocked),
        Constraint::Fill(1),
    ])
    .areas(inner);

    // `fraction()` clamps already; NaN-proof it again because Gauge panics outside 0..=1.
    let ratio = r.fraction();
    let ratio = if ratio.is_finite() {
        ratio.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let gauge_style = if r.blocked_by.is_empty() {
        Style::new().fg(Color::Cyan).bg(Color::Black)
    } else {
        Style::new().fg(Color::Red).bg(Color::Black)
    };
    Gauge::default()
        .ratio(ratio)
        .label(format!("{:.1}%", ratio * 100.0))
        .gauge_style(gauge_style)
        .render(gauge, buf);

    Line::from(vec![
        Span::raw(format!(
            "{}/{} objs  ",
            format::count(r.objs_moved),
            format::count(r.objs_total)
        )),
        Span::raw(format!(
            "{}/{}",
            format::iec(r.bytes_moved),
            format::iec(r.bytes_total)
        )),
    ])
    .render(totals, buf);

    let eta = match (r.is_running(), r.eta_secs) {
        (true, Some(s)) => format!("ETA {}", format::eta(s)),
        (true, None) => "ETA -".to_string(),
        (false, _) => "done".to_string(),
    };
    let mut speed_spans = vec![
        Span::raw(format!("{}  ", format::rate(r.rate_bytes_per_sec))),
        Span::styled(eta, Style::new().add_modifier(Modifier::BOLD)),
    ];
    if r.paused {
        speed_spans.push(Span::styled(
            "  PAUSED (nodectl rebalance resume)",
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    if r.stalled {
        speed_spans.push(Span::styled(
            "  STALLED",
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        ));
    }
    if r.errors > 0 {
        speed_spans.push(Span::styled(
            format!("  {} errors", r.errors),
            Style::new().fg(Color::Red),
        ));
    }
    Line::from(speed_spans).render(speed, buf);

    let warn = Style::new()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD);
    let lines: Vec<Line> = r
        .blocked_by
        .iter()
        .map(|b| Line::styled(format!("BLOCKED: {b}"), warn))
        .collect();
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(blocked, buf);

    if per_target.height < 2 || r.targets.is_empty() {
        return;
    }
    let wide = per_target.width >= 60;
    let header: Vec<&str> = if wide {
        vec![
            "TARGET", "TX OBJS", "TX BYTES", "RX OBJS", "RX BYTES", "STAGE", "ERR",
        ]
    } else {
        vec!["TARGET", "TX", "RX", "STAGE"]
    };
    // Only the rows on screen are built: the table has no selection, so it shows the first
    // ones that fit below its header.
    let shown = super::tables::window(r.targets.len(), None, usize::from(per_target.height - 1));
    let rows = r.targets[shown].iter().map(|t| {
        let stage_style = if t.blocked_by.is_some() {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        let stage = Cell::from(t.stage.as_str()).style(stage_style);
        if wide {
            Row::new(vec![
                Cell::from(t.id.clone()),
                Cell::from(format::count(t.tx_objs)),
                Cell::from(format::iec(t.tx_bytes)),
                Cell::from(format::count(t.rx_objs)),
                Cell::from(format::iec(t.rx_bytes)),
                stage,
                Cell::from(t.errors.to_string()),
            ])
        } else {
            Row::new(vec![
                Cell::from(t.id.clone()),
                Cell::from(format::iec(t.tx_bytes)),
                Cell::from(format::iec(t.rx_bytes)),
                stage,
            ])
        }
    });
    let id_w = r
        .targets
        .iter()
        .map(|t| t.id.len())
        .max()
        .unwrap_or(6)
        .max(6) as u16;
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(id_w),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(13),
            Constraint::Length(4),
        ]
    } else {
        vec![
            Constraint::Length(id_w),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Fill(1),
        ]
    };
    Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
        .column_spacing(1)
        .render(per_target, buf);
}
