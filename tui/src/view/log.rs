//! Event log: the newest entries that fit, oldest at the top, newest at the bottom.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use crate::format;
use crate::model::Model;
use crate::view::severity_style;

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let blk = Block::bordered()
        .border_style(Style::new().fg(Color::DarkGray))
        .title(" Events ");
    let inner = blk.inner(area);
    blk.render(area, buf);
    let skip = m.events.len().saturating_sub(inner.height as usize);
    let lines: Vec<Line> = m
        .events
        .iter()
        .skip(skip)
        .map(|e| {
            Line::from(vec![
                Span::styled(
                    format!("{} ", format::clock(e.at)),
                    Style::new().fg(Color::DarkGray),
                ),
                Span::styled(e.text.as_str(), severity_style(e.severity)),
            ])
        })
        .collect();
    Paragraph::new(lines).render(inner, buf);
}
