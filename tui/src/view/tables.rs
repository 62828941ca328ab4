//! The targets and proxies tables. Columns follow `nodectl show cluster`; on narrow terminals
//! headers shrink first and then the least useful columns go, so TARGET and STATUS always show.
//!
//! A frame builds rows only for the nodes on screen ([`window`]): at 1,000 targets, formatting
//! every row each frame cost more than drawing the whole screen. Column widths still come from
//! every row that passes the filter, measured without formatting ([`TargetColumn::width`]), so
//! columns stay put while the selection scrolls.

use std::ops::Range;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, StatefulWidget, Table, TableState, Widget};

use shoal_actors::types::status::NodeStatus;

use crate::format;
use crate::model::{Focus, Model, label};
use crate::view::cell_width;
use crate::view::{power_cue, status_style};

/// One column of the targets table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetColumn {
    Target,
    MemUsed,
    MemAvail,
    CapUsed,
    CapAvail,
    CpuUsed,
    Rebalance,
    Uptime,
    Status,
}

impl TargetColumn {
    /// In declaration order: `column as usize` indexes the per-row cell arrays.
    const ALL: [TargetColumn; 9] = [
        TargetColumn::Target,
        TargetColumn::MemUsed,
        TargetColumn::MemAvail,
        TargetColumn::CapUsed,
        TargetColumn::CapAvail,
        TargetColumn::CpuUsed,
        TargetColumn::Rebalance,
        TargetColumn::Uptime,
        TargetColumn::Status,
    ];

    /// Order in which columns are given up when space runs out (first goes first).
    const DROP_ORDER: [TargetColumn; 7] = [
        TargetColumn::CpuUsed,
        TargetColumn::MemAvail,
        TargetColumn::MemUsed,
        TargetColumn::Uptime,
        TargetColumn::CapUsed,
        TargetColumn::Rebalance,
        TargetColumn::CapAvail,
    ];

    pub fn header(self, short: bool) -> &'static str {
        match (self, short) {
            (TargetColumn::Target, _) => "TARGET",
            (TargetColumn::MemUsed, false) => "MEM USED %",
            (TargetColumn::MemUsed, true) => "MEM%",
            (TargetColumn::MemAvail, false) => "MEM AVAIL",
            (TargetColumn::MemAvail, true) => "MEM AV",
            (TargetColumn::CapUsed, false) => "CAP USED %",
            (TargetColumn::CapUsed, true) => "CAP%",
            (TargetColumn::CapAvail, false) => "CAP AVAIL",
            (TargetColumn::CapAvail, true) => "CAP AV",
            (TargetColumn::CpuUsed, false) => "CPU USED %",
            (TargetColumn::CpuUsed, true) => "CPU%",
            (TargetColumn::Rebalance, false) => "REBALANCE",
            (TargetColumn::Rebalance, true) => "REB",
            (TargetColumn::Uptime, false) => "UPTIME",
            (TargetColumn::Uptime, true) => "UP",
            (TargetColumn::Status, _) => "STATUS",
        }
    }

    /// The cell text; metrics of a node that does not answer are `-`, as in `show cluster`.
    pub fn cell(self, n: &NodeStatus) -> String {
        let metric = |s: String| if n.reachable { s } else { "-".to_string() };
        match self {
            TargetColumn::Target => n.id.clone(),
            TargetColumn::MemUsed => metric(format::pct2(n.mem_used_pct)),
            TargetColumn::MemAvail => metric(format::iec(n.mem_avail)),
            TargetColumn::CapUsed => metric(format::pct0(n.cap_used_pct)),
            TargetColumn::CapAvail => metric(format::iec(n.cap_avail)),
            TargetColumn::CpuUsed => metric(format::pct2(n.cpu_used_pct)),
            TargetColumn::Rebalance => n.rebalance.clone(),
            TargetColumn::Uptime => metric(format::duration(n.uptime_secs)),
            TargetColumn::Status => n.status.to_string(),
        }
    }

    /// `self.cell(n).chars().count()`, without formatting: sizing a column reads every row.
    pub fn width(self, n: &NodeStatus) -> usize {
        let metric = |w: usize| if n.reachable { w } else { 1 };
        match self {
            TargetColumn::Target => n.id.chars().count(),
            TargetColumn::MemUsed => metric(cell_width::pct2(n.mem_used_pct)),
            TargetColumn::MemAvail => metric(cell_width::iec(n.mem_avail)),
            TargetColumn::CapUsed => metric(cell_width::pct0(n.cap_used_pct)),
            TargetColumn::CapAvail => metric(cell_width::iec(n.cap_avail)),
            TargetColumn::CpuUsed => metric(cell_width::pct2(n.cpu_used_pct)),
            TargetColumn::Rebalance => n.rebalance.chars().count(),
            TargetColumn::Uptime => metric(cell_width::duration(n.uptime_secs)),
            TargetColumn::Status => n.status.as_str().chars().count(),
        }
    }
}

/// The rows `[start, end)` that ratatui's `Table` shows of `len` one-line rows in `height`
/// lines (below the header), given the selection and a fresh `TableState` (offset 0), which is
/// how every frame draws: the first page until the selection goes past it, then the selection
/// on the bottom line. A selection past the end scrolls to the last row and highlights none.
///
/// Handing the table only these rows, with the selection shifted by `start`, draws the same
/// lines as handing it all of them (the tests check this against ratatui itself).
pub fn window(len: usize, selected: Option<usize>, height: usize) -> Range<usize> {
    let first_page = len.min(height);
    match selected {
        Some(sel) if len > 0 => {
            let sel = sel.min(len - 1);
            if sel < first_page {
                0..first_page
            } else {
                sel + 1 - height..sel + 1
            }
        }
        _ => 0..first_page,
    }
}

/// The selection as an index into the rows of `window`.
fn selected_in(window: &Range<usize>, selected: Option<usize>) -> Option<usize> {
    selected.and_then(|s| s.checked_sub(window.start))
}

/// Width of the mark column (`*` for nodes marked for a batch).
const MARK_W: u16 = 1;

/// Which columns fit in `width` for these rows, whether headers are abbreviated, and each
/// column's width. Public so tests can check the 80-column choice directly.
pub fn target_columns(rows: &[&NodeStatus], width: u16) -> (Vec<(TargetColumn, u16)>, bool) {
    fit_columns(&content_widths(rows), width)
}

/// Every cell of one row on screen.
fn target_cells(n: &NodeStatus) -> [String; 9] {
    TargetColumn::ALL.map(|c| c.cell(n))
}

/// The widest cell of each column over `rows`, none of them formatted.
fn content_widths(rows: &[&NodeStatus]) -> [usize; 9] {
    let mut w = [0; 9];
    for n in rows {
        for (w, c) in w.iter_mut().zip(TargetColumn::ALL) {
            *w = (*w).max(c.width(n));
        }
    }
    w
}

fn fit_columns(content: &[usize; 9], width: u16) -> (Vec<(TargetColumn, u16)>, bool) {
    let widths = |short: bool, cols: &[TargetColumn]| -> Vec<(TargetColumn, u16)> {
        cols.iter()
            .map(|&c| {
                let w = content[c as usize].max(c.header(short).len());
                (c, w as u16)
            })
            .collect()
    };
    let total = |cols: &[(TargetColumn, u16)], spacing: u16| -> u16 {
        MARK_W + spacing + cols.iter().map(|c| c.1 + spacing).sum::<u16>() - spacing
    };
    let long = widths(false, &TargetColumn::ALL);
    if total(&long, 2) <= width {
        return (long, false);
    }
    let mut cols: Vec<TargetColumn> = TargetColumn::ALL.to_vec();
    let mut short = widths(true, &cols);
    for drop in TargetColumn::DROP_ORDER {
        if total(&short, 1) <= width {
            break;
        }
        cols.retain(|&c| c != drop);
        short = widths(true, &cols);
    }
    (short, true)
}

fn block<'a>(title: Line<'a>, focused: bool) -> Block<'a> {
    let border = if focused {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    Block::bordered().border_style(border).title(title)
}

fn title<'a>(name: &'a str, shown: usize, total: usize, m: &Model, focused: bool) -> Line<'a> {
    let style = if focused {
        Style::new().add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    let mut spans = vec![Span::styled(format!(" {name} "), style)];
    if m.filter.is_empty() {
        spans.push(Span::raw(format!("({total}) ")));
    } else {
        spans.push(Span::raw(format!("({shown}/{total}) ")));
        spans.push(Span::styled(
            format!("filter: {} ", m.filter),
            Style::new().fg(Color::Yellow),
        ));
    }
    if !m.marked.is_empty() && name == "Targets" {
        spans.push(Span::styled(
            format!("{} marked ", m.marked.len()),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    Line::from(spans)
}

/// Row style shared by both tables: offline nodes dimmed.
fn row_style(n: &NodeStatus) -> Style {
    if n.reachable {
        Style::new()
    } else {
        Style::new().fg(Color::DarkGray).add_modifier(Modifier::DIM)
    }
}

fn mark_cell(m: &Model, n: &NodeStatus) -> Cell<'static> {
    if m.marked.contains(&n.id) {
        Cell::from("*").style(Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD))
    } else {
        Cell::from(" ")
    }
}

/// A selected row is reversed; only the modifier is patched so the STATUS colour stays.
fn highlight() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

pub fn render_targets(m: &Model, area: Rect, buf: &mut Buffer) {
    let rows = m.visible_targets();
    let total = m.cluster.as_ref().map_or(0, |c| c.targets.len());
    let focused = m.focus == Focus::Targets;
    let mut blk = block(title("Targets", rows.len(), total, m, focused), focused);
    // The cue in words for the selected node: colour alone is not enough.
    let selected = rows.get(m.target_sel).filter(|_| focused);
    if let Some((n, cue)) = selected.and_then(|n| power_cue(n).map(|c| (n, c))) {
        blk = blk.title_bottom(Line::from(vec![
            Span::raw(format!(" {} {}: ", label(n), n.status)),
            Span::styled(format!("{cue} "), status_style(n)),
        ]));
    }
    let inner = blk.inner(area);
    blk.render(area, buf);
    if rows.is_empty() {
        render_empty(m, total, ("target", "targets"), inner, buf);
        return;
    }
    let (cols, short) = fit_columns(&content_widths(&rows), inner.width);
    let spacing = if short { 1 } else { 2 };
    let header = Row::new(
        std::iter::once(Cell::from(""))
            .chain(cols.iter().map(|(c, _)| Cell::from(c.header(short)))),
    )
    .style(Style::new().add_modifier(Modifier::BOLD));
    // Below the one-line header.
    let sel = focused.then_some(m.target_sel);
    let shown = window(rows.len(), sel, usize::from(inner.height.saturating_sub(1)));
    let body = rows[shown.clone()].iter().map(|n| {
        let mut row = target_cells(n);
        let cells = std::iter::once(mark_cell(m, n)).chain(cols.iter().map(|&(c, _)| {
            let cell = Cell::from(std::mem::take(&mut row[c as usize]));
            match c {
                TargetColumn::Status => cell.style(status_style(n)),
                TargetColumn::Target if m.marked.contains(&n.id) => {
                    cell.style(Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD))
                }
                _ => cell,
            }
        }));
        Row::new(cells).style(row_style(n))
    });
    let widths = std::iter::once(Constraint::Length(MARK_W))
        .chain(cols.iter().map(|&(_, w)| Constraint::Length(w)));
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(spacing)
        .row_highlight_style(highlight());
    let mut state = TableState::default().with_selected(selected_in(&shown, sel));
    StatefulWidget::render(table, inner, buf, &mut state);
}

/// What an empty table says: no snapshot yet, nothing matches the filter, or nothing at all.
fn render_empty(m: &Model, total: usize, (one, many): (&str, &str), inner: Rect, buf: &mut Buffer) {
    let text = if m.cluster.is_none() {
        "waiting for the first cluster snapshot…".to_string()
    } else if total > 0 {
        format!("no {one} matches the filter")
    } else {
        format!("no {many} in the cluster map")
    };
    Paragraph::new(text)
        .style(Style::new().fg(Color::DarkGray))
        .render(inner, buf);
}

pub fn render_proxies(m: &Model, area: Rect, buf: &mut Buffer) {
    let rows = m.visible_proxies();
    let total = m.cluster.as_ref().map_or(0, |c| c.proxies.len());
    let focused = m.focus == Focus::Proxies;
    let blk = block(title("Proxies", rows.len(), total, m, focused), focused);
    let inner = blk.inner(area);
    blk.render(area, buf);
    if rows.is_empty() {
        render_empty(m, total, ("proxy", "proxies"), inner, buf);
        return;
    }
    let id_w = rows
        .iter()
        .map(|n| n.id.len() + 4 * usize::from(n.is_primary) + 6 * usize::from(n.non_electable))
        .max()
        .unwrap_or(5)
        .max(5) as u16;
    // Uptime and address only when everything fits: STATUS must never be cut.
    let wide = inner.width >= MARK_W + id_w + 10 + 9 + 10 + 6 + 21 + 12 + 7;
    let mut headers = vec!["", "PROXY", "MEM USED %", "MEM AVAIL", "CPU USED %"];
    if wide {
        headers.extend(["UPTIME", "ADDR"]);
    }
    headers.push("STATUS");
    let sel = focused.then_some(m.proxy_sel);
    let shown = window(rows.len(), sel, usize::from(inner.height.saturating_sub(1)));
    let body: Vec<Row> = rows[shown.clone()]
        .iter()
        .map(|n| {
            let metric = |s: String| if n.reachable { s } else { "-".to_string() };
            let mut id = n.id.clone();
            if n.is_primary {
                id.push_str(" [P]");
            }
            if n.non_electable {
                id.push_str(" [n/e]");
            }
            let mut cells = vec![
                mark_cell(m, n),
                Cell::from(id),
                Cell::from(metric(format::pct2(n.mem_used_pct))),
                Cell::from(metric(format::iec(n.mem_avail))),
                Cell::from(metric(format::pct2(n.cpu_used_pct))),
            ];
            if wide {
                cells.push(Cell::from(metric(format::duration(n.uptime_secs))));
                cells.push(Cell::from(n.addr.clone()));
            }
            cells.push(Cell::from(n.status.as_str()).style(status_style(n)));
            Row::new(cells).style(row_style(n))
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(MARK_W),
        Constraint::Length(id_w),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(10),
    ];
    if wide {
        widths.extend([Constraint::Length(6), Constraint::Length(21)]);
    }
    widths.push(Constraint::Length(12));
    let table = Table::new(body, widths)
        .header(Row::new(headers).style(Style::new().add_modifier(Modifier::BOLD)))
        .column_spacing(1)
        .row_highlight_style(highlight());
    let mut state = TableState::default().with_selected(selected_in(&shown, sel));
    StatefulWidget::render(table, inner, buf, &mut state);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ratatui's `Table` draws of `rows` in `area` (one header line) with `selected`.
    fn draw(rows: &[(usize, String)], selected: Option<usize>, area: Rect) -> Buffer {
        let body = rows.iter().map(|(i, r)| {
            // Every third row styled, as offline nodes are, so a shifted style shows too.
            let style = if i % 3 == 0 {
                Style::new().fg(Color::DarkGray)
            } else {
                Style::new()
            };
            Row::new([Cell::from(r.as_str())]).style(style)
        });
        let table = Table::new(body, [Constraint::Length(area.width)])
            .header(Row::new(["ROWS"]))
            .row_highlight_style(highlight());
        let mut buf = Buffer::empty(area);
        let mut state = TableState::default().with_selected(selected);
        StatefulWidget::render(table, area, &mut buf, &mut state);
        buf
    }

    #[test]
    fn the_window_draws_exactly_what_the_whole_table_draws() {
        for len in 0..14 {
            let rows: Vec<(usize, String)> = (0..len).map(|i| (i, format!("row {i}"))).collect();
            for height in 0..8u16 {
                let area = Rect::new(0, 0, 8, height + 1);
                let sels = std::iter::once(None).chain((0..len + 3).map(Some));
                for sel in sels {
                    let whole = draw(&rows, sel, area);
                    let w = window(len, sel, usize::from(height));
                    let part = draw(&rows[w.clone()], selected_in(&w, sel), area);
                    assert_eq!(part, whole, "len {len}, height {height}, selected {sel:?}");
                }
            }
        }
    }

    #[test]
    fn the_window_follows_the_selection_to_the_end_and_back() {
        assert_eq!(window(200, Some(0), 40), 0..40);
        assert_eq!(window(200, Some(39), 40), 0..40);
        assert_eq!(window(200, Some(40), 40), 1..41);
        assert_eq!(window(200, Some(199), 40), 160..200);
        assert_eq!(window(200, Some(500), 40), 160..200);
        assert_eq!(window(200, None, 40), 0..40);
        assert_eq!(window(10, Some(9), 40), 0..10);
        assert_eq!(window(0, Some(0), 40), 0..0);
    }
}
