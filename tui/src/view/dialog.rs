//! Confirm dialog: what will happen (dry-run plan), the equivalent `nodectl` command, whether it
//! can be undone, and — for decommission — the node ID typed back as confirmation.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Widget, Wrap};

use shoal_actors::types::lifecycle::Plan;
use shoal_actors::types::status::MpState;
use shoal_actors::types::storage::MpAction;

use crate::format;
use crate::model::{Dialog, Model, MpDialog, MpStep, PlanState};
use crate::view::severity_style;
use crate::view::{clear_popup, popup};

/// Lines a wrapped paragraph of `lines` needs at `width` (approximation by characters).
fn wrapped_height(lines: &[Line], width: u16) -> u16 {
    let w = width.max(1) as usize;
    lines
        .iter()
        .map(|l| l.width().max(1).div_ceil(w) as u16)
        .sum()
}

fn top_lines(d: &Dialog) -> Vec<Line<'static>> {
    let dim = Style::new().fg(Color::DarkGray);
    let mut lines = vec![Line::from(vec![
        Span::styled("nodes: ", dim),
        Span::styled(
            d.labels.join(" "),
            Style::new().add_modifier(Modifier::BOLD),
        ),
    ])];
    if d.req.no_rebalance {
        lines.push(Line::styled(
            "--no-rebalance: data is not migrated, data may be lost",
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        ));
    }
    if let Some((kind, v)) = &d.precheck {
        let (text, style) = if v.ok {
            (
                format!("{} now: yes", kind.as_str()),
                Style::new().fg(Color::Green),
            )
        } else {
            let first = v.reasons.first().cloned().unwrap_or_default();
            let then = if d.req.no_rebalance {
                ""
            } else {
                " (the rebalance moves its objects off first)"
            };
            let style = if d.req.no_rebalance {
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
            } else {
                Style::new().fg(Color::Yellow)
            };
            (format!("{} now: NO: {first}{then}", kind.as_str()), style)
        };
        lines.push(Line::styled(text, style));
    }
    // On a line of its own so it can be copied whole.
    lines.push(Line::styled("equivalent command:", dim));
    lines.push(Line::styled(
        d.nodectl_command(),
        Style::new().fg(Color::Cyan),
    ));
    let undo_style = if d.req.op.undoable() {
        Style::new().fg(Color::Green)
    } else {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    };
    lines.push(Line::from(vec![
        Span::styled("undo: ", dim),
        Span::styled(d.undo_text(), undo_style),
    ]));
    lines
}

fn plan_lines(d: &Dialog) -> Vec<Line<'static>> {
    match &d.plan {
        PlanState::Loading => vec![Line::styled(
            "dry run: computing the plan…",
            Style::new().fg(Color::DarkGray),
        )],
        PlanState::Failed(e) => vec![Line::styled(
            format!("dry run failed: {e}"),
            Style::new().fg(Color::Red),
        )],
        PlanState::Ready(p) => ready_plan(p),
    }
}

fn ready_plan(p: &Plan) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(vec![
        Span::styled("plan: ", Style::new().fg(Color::DarkGray)),
        Span::raw(if p.rebalance {
            format!(
                "{} objects, {} to move",
                format::count(p.objs_total),
                format::iec(p.bytes_total)
            )
        } else {
            "no rebalance: nothing moves".to_string()
        }),
        Span::raw("   fits: "),
        if p.fits {
            Span::styled("yes", Style::new().fg(Color::Green))
        } else {
            Span::styled(
                "NO, the remaining targets cannot hold the data",
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            )
        },
    ])];
    for w in &p.warnings {
        lines.push(Line::styled(
            format!("! {w}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    for mv in &p.moves {
        lines.push(Line::raw(format!(
            "  {} → {}  {} objs  {}",
            mv.from,
            mv.to,
            format::count(mv.objs),
            format::iec(mv.bytes)
        )));
    }
    if !p.capacity.is_empty() {
        lines.push(Line::styled(
            "capacity after:",
            Style::new().fg(Color::DarkGray),
        ));
    }
    for c in &p.capacity {
        lines.push(Line::raw(format!(
            "  {}  avail {} → {}  used {}",
            c.target,
            format::iec(c.cap_avail_before),
            format::iec(c.cap_avail_after),
            format::pct0(c.cap_used_pct_after)
        )));
    }
    lines
}

fn bottom_lines(d: &Dialog, readonly: bool) -> Vec<Line<'static>> {
    let key = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    let mut lines = Vec::new();
    if let Some(expect) = &d.expect_typed {
        let ok = d.typed_ok();
        lines.push(Line::from(vec![
            Span::raw("type "),
            Span::styled(expect.clone(), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" to confirm: "),
            Span::styled(
                format!("{}_", d.typed),
                if ok {
                    Style::new().fg(Color::Green)
                } else {
                    Style::new().fg(Color::Yellow)
                },
            ),
        ]));
        lines.push(Line::from(vec![
            Span::styled("Enter", key),
            Span::raw(" confirm   "),
            Span::styled("Esc", key),
            Span::raw(" cancel"),
        ]));
    } else {
        let mut spans = vec![
            Span::styled("Enter/y", key),
            Span::raw(" confirm   "),
            Span::styled("Esc", key),
            Span::raw(" cancel"),
        ];
        if !readonly {
            spans.extend([
                Span::raw("   "),
                Span::styled("n", key),
                Span::raw(" toggle --no-rebalance"),
            ]);
        }
        lines.push(Line::from(spans));
    }
    lines
}

pub fn render(m: &Model, area: Rect, buf: &mut Buffer) {
    let Some(d) = &m.dialog else { return };
    let width = area.width.saturating_sub(4).min(96);
    let inner_w = width.saturating_sub(2);
    let top = top_lines(d);
    let plan = plan_lines(d);
    let bottom = bottom_lines(d, m.readonly);
    let top_h = wrapped_height(&top, inner_w);
    let plan_h = wrapped_height(&plan, inner_w);
    let bottom_h = bottom.len() as u16;
    let want = top_h + 1 + plan_h + 1 + bottom_h + 2;
    let rect = popup(area, width, want.min(area.height.saturating_sub(2)));

    let danger = !d.req.op.undoable() || d.req.no_rebalance;
    let border = if danger { Color::Red } else { Color::Yellow };
    let blk = Block::bordered()
        .border_style(Style::new().fg(border))
        .title(Line::styled(
            format!(" Confirm {} ", d.req.op),
            Style::new().fg(border).add_modifier(Modifier::BOLD),
        ));
    let inner = blk.inner(rect);
    clear_popup(area, rect, buf);
    blk.render(rect, buf);
    // Command, undo and the confirm keys never get cut: the plan gives way first.
    let [top_a, _, plan_a, _, bottom_a] = Layout::vertical([
        Constraint::Length(top_h),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(bottom_h),
    ])
    .areas(inner);
    Paragraph::new(top)
        .wrap(Wrap { trim: false })
        .render(top_a, buf);
    Paragraph::new(plan)
        .wrap(Wrap { trim: false })
        .render(plan_a, buf);
    Paragraph::new(bottom).render(bottom_a, buf);
}

/// What a mountpath action does, in one clause (as `nodectl storage mountpath` says it).
fn mp_effect(a: MpAction) -> &'static str {
    match a {
        MpAction::Attach => "it takes its share of objects",
        MpAction::Detach => "its objects move to the other mountpaths, then it is forgotten",
        MpAction::Enable => "it takes its share of objects again",
        MpAction::Disable => "it takes no new objects at once and its objects move off",
    }
}

fn mp_top_lines(d: &MpDialog) -> Vec<Line<'static>> {
    let dim = Style::new().fg(Color::DarkGray);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = Vec::new();
    if d.step == MpStep::EnterPath {
        lines.push(Line::styled(
            "directory on the target's host (absolute; mount the disk and create it first):",
            dim,
        ));
        lines.push(Line::from(vec![
            Span::styled("path: ", dim),
            Span::styled(
                format!("{}_", d.req.op.path),
                Style::new().fg(Color::Yellow),
            ),
        ]));
    } else {
        lines.push(Line::from(vec![
            Span::styled("target: ", dim),
            Span::styled(d.target_label(), bold),
            Span::styled("   mountpath: ", dim),
            Span::styled(d.req.op.path.clone(), bold),
        ]));
        if let MpStep::Ready(r) = &d.step
            && r.path != d.req.op.path
        {
            lines.push(Line::styled(
                format!("(the target resolves it to {})", r.path),
                dim,
            ));
        }
        lines.push(Line::from(vec![
            Span::styled("effect: ", dim),
            Span::raw(mp_effect(d.req.op.action)),
        ]));
    }
    lines.push(Line::styled("equivalent command:", dim));
    lines.push(Line::styled(
        d.nodectl_command(),
        Style::new().fg(Color::Cyan),
    ));
    lines.push(Line::from(vec![
        Span::styled("undo: ", dim),
        Span::styled(d.undo_text(), Style::new().fg(Color::Green)),
    ]));
    lines
}

fn mp_plan_lines(d: &MpDialog) -> Vec<Line<'static>> {
    let dim = Style::new().fg(Color::DarkGray);
    match &d.step {
        MpStep::EnterPath => vec![],
        MpStep::Loading => vec![Line::styled(
            format!("dry run: asking {}…", d.target_label()),
            dim,
        )],
        MpStep::Ready(r) => {
            let dir = match d.req.op.action {
                MpAction::Attach | MpAction::Enable => "onto it",
                MpAction::Detach | MpAction::Disable => "off it",
            };
            let mut lines = vec![Line::from(vec![
                Span::styled("dry run: ", dim),
                Span::styled(
                    "OK",
                    Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!(
                    ", {} objects ({}) would move {dir}",
                    format::count(r.objs),
                    format::iec(r.bytes)
                )),
            ])];
            if r.state == MpState::Failed && d.req.op.action == MpAction::Detach {
                lines.push(Line::styled(
                    "its disk failed: nothing can be read off it, so nothing moves",
                    Style::new().fg(Color::Yellow),
                ));
            }
            lines
        }
        MpStep::Refused(e) => vec![
            Line::from(vec![
                Span::styled("dry run: ", dim),
                Span::styled(
                    format!("NO ({}): {}", e.kind, e.message),
                    severity_style(e.severity()),
                ),
            ]),
            Line::styled("nothing can be confirmed; nothing was changed", dim),
        ],
    }
}

fn mp_bottom_line(d: &MpDialog) -> Line<'static> {
    let key = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    let pairs: &[(&'static str, &'static str)] = match d.step {
        MpStep::EnterPath => &[
            ("Enter", " dry run   "),
            ("Ctrl-U", " clear   "),
            ("Esc", " cancel"),
        ],
        MpStep::Refused(_) => &[("Esc", " close")],
        _ => &[("Enter/y", " confirm   "), ("Esc", " cancel")],
    };
    Line::from(
        pairs
            .iter()
            .flat_map(|(k, what)| [Span::styled(*k, key), Span::raw(*what)])
            .collect::<Vec<_>>(),
    )
}

/// `P`: pause or resume the global rebalance — what it does, the command, how to undo it.
pub fn render_pause(m: &Model, area: Rect, buf: &mut Buffer) {
    let Some(pause) = m.reb_dialog else { return };
    let dim = Style::new().fg(Color::DarkGray);
    let (title, what, cmd, undo) = if pause {
        (
            " Pause the rebalance ",
            "Every target holds its rebalance walk (objects in flight finish); maintenance and decommission wait. Held across restarts.",
            "nodectl rebalance pause --yes",
            "nodectl rebalance resume",
        )
    } else {
        (
            " Resume the rebalance ",
            "Every target goes on from where it was.",
            "nodectl rebalance resume --yes",
            "nodectl rebalance pause",
        )
    };
    let running = match &m.rebalance {
        Some(r) if r.is_running() => format!("{} is running", r.id),
        _ => "no rebalance is running now: the setting holds for the next one".to_string(),
    };
    let lines = vec![
        Line::raw(what),
        Line::styled(running, dim),
        Line::styled("equivalent command:", dim),
        Line::styled(cmd, Style::new().fg(Color::Cyan)),
        Line::from(vec![
            Span::styled("undo: ", dim),
            Span::styled(undo, Style::new().fg(Color::Green)),
        ]),
        Line::raw(""),
        Line::styled(
            "y / Enter: confirm   Esc / n: cancel",
            Style::new().add_modifier(Modifier::BOLD),
        ),
    ];
    let width = area.width.saturating_sub(4).min(80);
    let h = wrapped_height(&lines, width.saturating_sub(2)) + 2;
    let rect = popup(area, width, h.min(area.height.saturating_sub(2)));
    let blk = Block::bordered()
        .border_style(Style::new().fg(Color::Yellow))
        .title(Line::styled(
            title,
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    let inner = blk.inner(rect);
    clear_popup(area, rect, buf);
    blk.render(rect, buf);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(inner, buf);
}

/// The mountpath dialog: the path being typed (attach), then the target's dry-run answer,
/// the equivalent `nodectl` command and how to undo it.
pub fn render_mountpath(m: &Model, area: Rect, buf: &mut Buffer) {
    let Some(d) = &m.mp_dialog else { return };
    let width = area.width.saturating_sub(4).min(96);
    let inner_w = width.saturating_sub(2);
    let top = mp_top_lines(d);
    let plan = mp_plan_lines(d);
    let bottom = vec![mp_bottom_line(d)];
    let top_h = wrapped_height(&top, inner_w);
    let plan_h = if plan.is_empty() {
        0
    } else {
        wrapped_height(&plan, inner_w) + 1
    };
    let want = top_h + plan_h + 1 + 1 + 2;
    let rect = popup(area, width, want.min(area.height.saturating_sub(2)));
    let refused = matches!(d.step, MpStep::Refused(_));
    let border = if refused { Color::Red } else { Color::Yellow };
    let title = if d.step == MpStep::EnterPath {
        format!(" Attach a mountpath to {} ", d.target_label())
    } else {
        format!(" Confirm {} mountpath ", d.req.op.action)
    };
    let blk = Block::bordered()
        .border_style(Style::new().fg(border))
        .title(Line::styled(
            title,
            Style::new().fg(border).add_modifier(Modifier::BOLD),
        ));
    let inner = blk.inner(rect);
    clear_popup(area, rect, buf);
    blk.render(rect, buf);
    // The keys never get cut; the plan gives way last, the command and undo first.
    let [top_a, _, plan_a, _, bottom_a] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(u16::from(plan_h > 0)),
        Constraint::Length(plan_h.saturating_sub(1)),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    Paragraph::new(top)
        .wrap(Wrap { trim: false })
        .render(top_a, buf);
    Paragraph::new(plan)
        .wrap(Wrap { trim: false })
        .render(plan_a, buf);
    Paragraph::new(bottom).render(bottom_a, buf);
}
