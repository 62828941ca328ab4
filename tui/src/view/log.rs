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

/// Splits `text` into pieces of at most `width` characters, breaking at spaces where it can.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let (lw, ww) = (line.chars().count(), word.chars().count());
        if lw > 0 && lw + 1 + ww <= width {
            line.push(' ');
            line.push_str(word);
            continue;
        }
        if lw > 0 {
            out.push(std::mem::take(&mut line));
        }
        // A word longer than the pane is cut hard.
        let chars: Vec<char> = word.chars().collect();
        let mut chunks = chars.chunks(width).peekable();
        while let Some(chunk) = chunks.next() {
            if chunks.peek().is_some() {
                out.push(chunk.iter().collect());
            } else {
                line = chunk.iter().collect();
            }
        }
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

/// The screen lines of one entry at `width` columns, continuation lines under the text.
fn entry_lines(e: &LogEntry, width: usize) -> Vec<Line<'static>> {
    let style = severity_style(e.severity);
    wrap(&e.text, width.saturating_sub(STAMP_W))
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let lead = if i == 0 {
                Span::styled(
                    format!("{} ", format::clock(e.at)),
                    Style::new().fg(Color::DarkGray),
                )
            } else {
                Span::raw(" ".repeat(STAMP_W))
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
    // Walk back from the newest entry while whole entries fit: a continuation line without
    // its timestamp at the top would read as an entry of its own.
    let mut lines: Vec<Line> = Vec::with_capacity(height);
    for e in m.events.iter().rev() {
        let mut l = entry_lines(e, inner.width as usize);
        if !lines.is_empty() && lines.len() + l.len() > height {
            break;
        }
        l.append(&mut lines);
        lines = l;
        if lines.len() >= height {
            break;
        }
    }
    // Only the newest entry can be taller than the pane: keep its start, with the timestamp.
    lines.truncate(height);
    Paragraph::new(lines).render(inner, buf);
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh x", 3), ["abc", "def", "gh", "x"]);
        assert_eq!(wrap("", 4), [""]);
        assert_eq!(wrap("one", 10), ["one"]);
    }
}
