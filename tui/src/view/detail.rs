//! Node detail (Enter): address, role, flags, objects; for a target also every mountpath with
//! its capacity, state and the reason it is not in use, its resilver, and the mountpath keys.
//! The mountpath rows are the part the operator acts on here, so they get the space first.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget};

use shoal_actors::logic::format::resilver_line;
use shoal_actors::types::smap::Role;
use shoal_actors::types::status::{MountpathStats, MpState, NodeStatus, RebState, ResilverStatus};

use crate::format;
use crate::model::{Model, label, mp_state_word};
use crate::view::log::wrap;
use crate::view::{clear_popup, popup, power_cue, status_style};

/// Widest the detail popup gets: beyond this, lines are too long to read.
const MAX_W: u16 = 120;
/// The path column never gets narrower than this to make room for optional columns.
const MIN_PATH_W: usize = 32;
/// Node facts always kept when the popup is short (status, role, address).
const MIN_INFO_LINES: usize = 3;

/// One column of the mountpath list after MOUNTPATH.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MpCol {
    Fs,
    Used,
    Avail,
    Total,
    Use,
    Objects,
    State,
}

impl MpCol {
    /// Display order.
    const ALL: [MpCol; 7] = [
        MpCol::Fs,
        MpCol::Used,
        MpCol::Avail,
        MpCol::Total,
        MpCol::Use,
        MpCol::Objects,
        MpCol::State,
    ];
    /// Shown at any width.
    const ALWAYS: [MpCol; 4] = [MpCol::Avail, MpCol::Use, MpCol::Objects, MpCol::State];
    /// Added in this order while the path keeps [`MIN_PATH_W`] columns.
    const OPTIONAL: [MpCol; 3] = [MpCol::Fs, MpCol::Total, MpCol::Used];

    fn header(self) -> &'static str {
        match self {
            MpCol::Fs => "FS",
            MpCol::Used => "USED",
            MpCol::Avail => "AVAIL",
            MpCol::Total => "TOTAL",
            MpCol::Use => "USE",
            MpCol::Objects => "OBJECTS",
            MpCol::State => "STATE",
        }
    }

    fn width(self) -> usize {
        match self {
            MpCol::Fs => 16,
            MpCol::Use => 4,
            // "enabled (full)"
            MpCol::State => 14,
            _ => 9,
        }
    }

    fn cell(self, mp: &MountpathStats) -> String {
        match self {
            MpCol::Fs if mp.fs.is_empty() => "-".into(),
            MpCol::Fs => ellipsize(&mp.fs, self.width()),
            MpCol::Used => format::iec(mp.used),
            MpCol::Avail => format::iec(mp.avail),
            MpCol::Total => format::iec(mp.total),
            MpCol::Use => format::pct0(mp.used_pct()),
            MpCol::Objects => format::count(mp.objects),
            MpCol::State => mp_state_word(mp),
        }
    }
}

/// `s` cut to `width` characters, marked with `…` at the end.
fn ellipsize(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The columns that fit `width` beside a path of at least [`MIN_PATH_W`], and the path width.
fn mp_columns(width: usize) -> (Vec<MpCol>, usize) {
    let used = |cols: &[MpCol]| cols.iter().map(|c| c.width() + 1).sum::<usize>();
    let mut cols = MpCol::ALWAYS.to_vec();
    for c in MpCol::OPTIONAL {
        let mut more = cols.clone();
        more.push(c);
        if width.saturating_sub(used(&more)) >= MIN_PATH_W {
            cols = more;
        }
    }
    cols.sort_by_key(|c| MpCol::ALL.iter().position(|a| a == c));
    let path_w = width.saturating_sub(used(&cols)).max(1);
    (cols, path_w)
}

/// Colour of a mountpath's state: green in use, yellow when it takes nothing new or was taken
/// out by an operator, cyan while its objects move off, red when its disk failed.
pub fn mp_state_style(mp: &MountpathStats) -> Style {
    match mp.state {
        MpState::Enabled if mp.full => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        MpState::Enabled => Style::new().fg(Color::Green),
        MpState::Disabled => Style::new().fg(Color::Yellow),
        MpState::Detaching => Style::new().fg(Color::Cyan),
        MpState::Detached => Style::new().fg(Color::DarkGray),
        MpState::Failed => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

/// Colour of a resilver line: as a rebalance's state, yellow for a finish with errors.
pub fn resilver_style(r: &ResilverStatus) -> Style {
    if r.state == RebState::Finished && r.errors > 0 {
        Style::new().fg(Color::Yellow)
    } else {
        super::reb_state_style(r.state)
    }
}

/// Header, then per mountpath its row and (wrapped) reason lines; also which lines belong to
/// the selected mountpath, for scrolling.
fn mountpath_lines(
    n: &NodeStatus,
    sel: Option<usize>,
    width: usize,
) -> (Vec<Line<'static>>, Option<(usize, usize)>) {
    let (cols, path_w) = mp_columns(width);
    let pad = |s: String, w: usize| format!("{s:<w$} ");
    let mut header = pad("MOUNTPATH".into(), path_w);
    for c in &cols {
        header.push_str(&pad(c.header().into(), c.width()));
    }
    let mut lines = vec![Line::styled(
        header.trim_end().to_string(),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    let mut sel_range = None;
    for (i, mp) in n.mountpaths.iter().enumerate() {
        let first = lines.len();
        let state_style = mp_state_style(mp);
        // The path is cut from the left: mountpaths of one node usually differ at the end.
        let mut spans = vec![Span::raw(pad(
            format::ellipsize_left(&mp.path, path_w),
            path_w,
        ))];
        for c in &cols {
            let text = pad(c.cell(mp), c.width());
            spans.push(match c {
                MpCol::State => Span::styled(text, state_style),
                _ => Span::raw(text),
            });
        }
        lines.push(Line::from(spans));
        // Why it is not in use (or takes nothing new): under its row, whole.
        if let Some(reason) = &mp.reason {
            let style = if mp.state == MpState::Enabled && !mp.full {
                Style::new().fg(Color::DarkGray)
            } else {
                state_style.remove_modifier(Modifier::BOLD)
            };
            for (k, piece) in wrap(reason, width.saturating_sub(4))
                .into_iter()
                .enumerate()
            {
                let lead = if k == 0 { "  ↳ " } else { "    " };
                lines.push(Line::from(vec![
                    Span::raw(lead),
                    Span::styled(piece, style),
                ]));
            }
        }
        if sel == Some(i) {
            for l in &mut lines[first..] {
                // Only the modifier is patched, so the state keeps its colour.
                l.spans.iter_mut().for_each(|s| {
                    s.style = s.style.add_modifier(Modifier::REVERSED);
                });
                // Reverse the whole width, so the selection reads as one bar.
                let w = l.width();
                if w < width {
                    l.spans.push(Span::styled(
                        " ".repeat(width - w),
                        Style::new().add_modifier(Modifier::REVERSED),
                    ));
                }
            }
            sel_range = Some((first, lines.len()));
        }
    }
    (lines, sel_range)
}

/// The target's resilver, wrapped, the same words as `nodectl show resilver`.
fn resilver_lines(r: &ResilverStatus, width: usize) -> Vec<Line<'static>> {
    resilver_lines_led(r, width, Style::new().fg(Color::DarkGray))
}

/// A resilver's line wrapped to `width` behind a `resilver ` lead in `lead_style` (the detail
/// view and the main screen's strip differ only in that style).
pub(super) fn resilver_lines_led(
    r: &ResilverStatus,
    width: usize,
    lead_style: Style,
) -> Vec<Line<'static>> {
    let style = resilver_style(r);
    const LEAD: &str = "resilver ";
    wrap(&resilver_line(r), width.saturating_sub(LEAD.len()))
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let lead = if i == 0 {
                Span::styled(LEAD, lead_style)
            } else {
                Span::raw(" ".repeat(LEAD.len()))
            };
            Line::from(vec![lead, Span::styled(piece, style)])
        })
        .collect()
}

/// The mountpath keys, or why they are off.
fn key_hints(m: &Model) -> Line<'static> {
    let key = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    let mut spans = Vec::new();
    if m.readonly {
        spans.push(Span::styled(
            "READ-ONLY: a/d/e/x disabled",
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
        spans.push(Span::raw("  "));
    }
    let mut hints = vec![("↑↓", "select")];
    if !m.readonly {
        hints.extend([
            ("a", "attach"),
            ("d", "detach"),
            ("e", "enable"),
            ("x", "disable"),
        ]);
    }
    hints.push(("Esc", "back"));
    for (k, what) in hints {
        spans.push(Span::styled(k, key));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    Line::from(spans)
}

fn info_lines(n: &NodeStatus) -> Vec<Line<'static>> {
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
    lines
}

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let Some(n) = m.selected() else { return };
    let info = info_lines(n);
    let rect_w = area.width.saturating_sub(4).min(MAX_W);
    let width = usize::from(rect_w.saturating_sub(2));
    let is_target = n.role == Role::Target;
    let (mps, sel) = if n.mountpaths.is_empty() {
        (Vec::new(), None)
    } else {
        mountpath_lines(n, Some(m.mp_sel), width)
    };
    let mut bottom = n
        .resilver
        .as_ref()
        .map(|r| resilver_lines(r, width))
        .unwrap_or_default();
    if is_target {
        bottom.push(key_hints(m));
    }
    let gap = |v: &[Line]| usize::from(!v.is_empty());
    let want = info.len() + gap(&mps) + mps.len() + gap(&bottom) + bottom.len();
    let max_inner = usize::from(area.height.saturating_sub(2));
    // Short terminal: the node facts give way first (keeping the first few), then the list
    // scrolls to keep the selected mountpath in view.
    let info_h = if want <= max_inner {
        info.len()
    } else {
        let rest = gap(&mps) + mps.len() + gap(&bottom) + bottom.len();
        max_inner
            .saturating_sub(rest)
            .max(MIN_INFO_LINES.min(info.len()))
    };
    let inner_h = want.min(max_inner);
    let rect = popup(area, rect_w, inner_h as u16 + 2);
    clear_popup(area, rect, buf);
    let blk = Block::bordered()
        .border_style(Style::new().fg(Color::Cyan))
        .title(Line::styled(
            format!(" {} (Esc back) ", label(n)),
            Style::new().add_modifier(Modifier::BOLD),
        ));
    let inner = blk.inner(rect);
    blk.render(rect, buf);
    let [info_a, _, mps_a, _, bottom_a] = Layout::vertical([
        Constraint::Length(info_h as u16),
        Constraint::Length(gap(&mps) as u16),
        Constraint::Fill(1),
        Constraint::Length(gap(&bottom) as u16),
        Constraint::Length(bottom.len() as u16),
    ])
    .areas(inner);
    Paragraph::new(info).render(info_a, buf);
    if !mps.is_empty() {
        render_list(mps, sel, mps_a, buf);
    }
    Paragraph::new(bottom).render(bottom_a, buf);
}

/// The header line stays; the rows below it scroll so the selected mountpath is in view.
fn render_list(
    mut lines: Vec<Line<'static>>,
    sel: Option<(usize, usize)>,
    a: Rect,
    buf: &mut Buffer,
) {
    let h = usize::from(a.height);
    if h == 0 {
        return;
    }
    let header = lines.remove(0);
    let rows_h = h - 1;
    // Line indices counted without the header now; a selection taller than the list shows
    // its start.
    let skip = sel.map_or(0, |(first, end)| {
        (end - 1).saturating_sub(rows_h).min(first - 1)
    });
    let mut shown = vec![header];
    shown.extend(lines.into_iter().skip(skip).take(rows_h));
    Paragraph::new(shown).render(a, buf);
}
