//! Event log: the newest entries that fit, oldest at the top, newest at the bottom. Long
//! entries wrap under their text (narrow panes would otherwise cut off the interesting end).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use crate::format;
use crate::model::{LogEntry, Model};
use crate::view::severity_style;

/// Width of `HH:MM:SS `.
const STAMP_W: usize = 9;

/// The screen lines of one entry at `width` columns, hard-wrapped by characters.
fn entry_lines(e: &LogEntry, width: usize) -> Vec<Line<'static>> {
    let text_w = width.saturating_sub(STAMP_W).max(1);
    let chars: Vec<char> = e.text.chars().collect();
    let style = severity_style(e.severity);
    chars
        .chunks(text_w)
        .enumerate()
        .map(|(i, chunk)| {
            let lead = if i == 0 {
                Span::styled(
                    format!("{} ", format::clock(e.at)),
                    Style::new().fg(Color::DarkGray),
                )
            } else {
                Span::raw(" ".repeat(STAMP_W))
            };
            let text: String = chunk.iter().collect();
            // A space at the wrap point would indent the continuation by one.
            let text = if i == 0 {
                text
            } else {
                text.trim_start().to_string()
            };
            Line::from(vec![lead, Span::styled(text, style)])
        })
        .collect()
}

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let blk = Block::bordered()
        .border_style(Style::new().fg(Color::DarkGray))
        .title(" Events ");
    let inner = blk.inner(area);
    blk.render(area, buf);
    let height = inner.height as usize;
    // Walk back from the newest entry until the pane is full.
    let mut lines: Vec<Line> = Vec::with_capacity(height);
    for e in m.events.iter().rev() {
        if lines.len() >= height {
            break;
        }
        let mut l = entry_lines(e, inner.width as usize);
        l.append(&mut lines);
        lines = l;
    }
    let skip = lines.len().saturating_sub(height);
    Paragraph::new(lines.split_off(skip)).render(inner, buf);
}
