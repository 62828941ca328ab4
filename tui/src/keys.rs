//! Key handling: a pure map from a crossterm key event to an [`Action`], given the mode the
//! model is in (dialog, help, filter, normal). Keeping it pure makes every binding testable.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use shoal_actors::types::storage::MpAction;

use crate::model::{Model, MpStep};
use crate::update::{Action, LifecycleKey};

/// The action for `key`, or `None` when the key means nothing in the current mode.
pub fn map_key(m: &Model, key: KeyEvent) -> Option<Action> {
    // Terminals that report releases (Windows, kitty protocol) would otherwise act twice.
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c')) {
        return Some(Action::Quit);
    }
    // Ctrl-U clears a typed field, as in a shell.
    let typing = m.dialog.as_ref().is_some_and(|d| d.expect_typed.is_some())
        || m.mp_dialog
            .as_ref()
            .is_some_and(|d| d.step == MpStep::EnterPath);
    if ctrl && typing && !m.help && matches!(key.code, KeyCode::Char('u')) {
        return Some(Action::DialogClear);
    }
    if ctrl {
        return None;
    }
    if m.help {
        return match key.code {
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') => Some(Action::Back),
            _ => None,
        };
    }
    if let Some(d) = &m.dialog {
        if d.expect_typed.is_some() {
            // Every printable key is part of the node ID being typed.
            return match key.code {
                KeyCode::Esc => Some(Action::Back),
                KeyCode::Enter => Some(Action::Confirm),
                KeyCode::Backspace => Some(Action::DialogBackspace),
                KeyCode::Char(c) => Some(Action::DialogInput(c)),
                _ => None,
            };
        }
        return match key.code {
            KeyCode::Esc | KeyCode::Char('q') => Some(Action::Back),
            KeyCode::Enter | KeyCode::Char('y') => Some(Action::Confirm),
            KeyCode::Char('n') if !m.readonly => Some(Action::ToggleNoRebalance),
            _ => None,
        };
    }
    if m.history.is_some() {
        return match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('H') => Some(Action::Back),
            _ => None,
        };
    }
    if m.reb_dialog.is_some() {
        return match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('n') => Some(Action::Back),
            KeyCode::Enter | KeyCode::Char('y') => Some(Action::Confirm),
            _ => None,
        };
    }
    if let Some(d) = &m.mp_dialog {
        if d.step == MpStep::EnterPath {
            // Every printable key is part of the path being typed.
            return match key.code {
                KeyCode::Esc => Some(Action::Back),
                KeyCode::Enter => Some(Action::Confirm),
                KeyCode::Backspace => Some(Action::DialogBackspace),
                KeyCode::Char(c) => Some(Action::DialogInput(c)),
                _ => None,
            };
        }
        return match key.code {
            KeyCode::Esc | KeyCode::Char('q') => Some(Action::Back),
            KeyCode::Enter | KeyCode::Char('y') => Some(Action::Confirm),
            _ => None,
        };
    }
    if m.filter_editing {
        return match key.code {
            KeyCode::Esc => Some(Action::Back),
            KeyCode::Enter => Some(Action::FilterDone),
            KeyCode::Backspace => Some(Action::FilterBackspace),
            KeyCode::Char(c) => Some(Action::FilterInput(c)),
            KeyCode::Up => Some(Action::Up),
            KeyCode::Down => Some(Action::Down),
            _ => None,
        };
    }
    let action = match key.code {
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Home | KeyCode::Char('g') => Action::Top,
        KeyCode::End | KeyCode::Char('G') => Action::Bottom,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Tab | KeyCode::BackTab => Action::SwitchFocus,
        KeyCode::Char('/') => Action::FilterStart,
        KeyCode::Enter => Action::OpenDetail,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('H') => Action::History,
        KeyCode::Char('r') => Action::Refresh,
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Esc => Action::Back,
        // Dangerous keys do nothing in a read-only console; the footer and help say so.
        _ if m.readonly => return None,
        KeyCode::Char(' ') => Action::ToggleMark,
        KeyCode::Char('n') => Action::ToggleNoRebalance,
        KeyCode::Char('m') => Action::Lifecycle(LifecycleKey::ToggleMaintenance),
        KeyCode::Char('s') => Action::Lifecycle(LifecycleKey::Shutdown),
        KeyCode::Char('D') => Action::Lifecycle(LifecycleKey::Decommission),
        KeyCode::Char('P') => Action::PauseResume,
        // Mountpath keys mean something only in a target's detail view.
        KeyCode::Char(c) if m.detail_target().is_some() => match c {
            'a' => Action::Mountpath(MpAction::Attach),
            'd' => Action::Mountpath(MpAction::Detach),
            'e' => Action::Mountpath(MpAction::Enable),
            'x' => Action::Mountpath(MpAction::Disable),
            _ => return None,
        },
        _ => return None,
    };
    Some(action)
}

/// Splits an Alt+letter press into Esc and the letter. Terminals send Alt+x as `ESC x`, and so
/// does tmux or screen (over SSH, say) when Esc and a key come within its escape time: the
/// operator who closes a view with Esc and types on at once means the two keys. The console
/// binds nothing to Alt, so nothing is lost; every other key passes through unchanged.
pub fn split_meta(key: KeyEvent) -> Vec<KeyEvent> {
    let meta = key.modifiers.contains(KeyModifiers::ALT)
        && !key.modifiers.contains(KeyModifiers::CONTROL)
        && key.kind != KeyEventKind::Release
        && matches!(key.code, KeyCode::Char(_));
    if !meta {
        return vec![key];
    }
    vec![
        KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
        KeyEvent {
            modifiers: key.modifiers - KeyModifiers::ALT,
            ..key
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn ctrl_c_quits_in_every_mode() {
        let mut m = Model::new("x", false);
        m.filter_editing = true;
        let ev = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(map_key(&m, ev), Some(Action::Quit));
        m.help = true;
        assert_eq!(map_key(&m, ev), Some(Action::Quit));
    }

    #[test]
    fn filter_mode_captures_letters() {
        let mut m = Model::new("x", false);
        m.filter_editing = true;
        assert_eq!(
            map_key(&m, key(KeyCode::Char('q'))),
            Some(Action::FilterInput('q'))
        );
        assert_eq!(map_key(&m, key(KeyCode::Esc)), Some(Action::Back));
    }

    #[test]
    fn releases_are_ignored_and_readonly_drops_dangerous_keys() {
        let mut m = Model::new("x", true);
        let mut ev = key(KeyCode::Char('j'));
        ev.kind = KeyEventKind::Release;
        assert_eq!(map_key(&m, ev), None);
        for c in ['m', 's', 'D', ' ', 'n'] {
            assert_eq!(map_key(&m, key(KeyCode::Char(c))), None, "{c}");
        }
        m.readonly = false;
        assert_eq!(
            map_key(&m, key(KeyCode::Char('D'))),
            Some(Action::Lifecycle(LifecycleKey::Decommission))
        );
    }

    #[test]
    fn esc_then_a_key_in_one_read_is_two_keys() {
        let alt_s = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::ALT);
        assert_eq!(
            split_meta(alt_s),
            [key(KeyCode::Esc), key(KeyCode::Char('s'))]
        );
        let ctrl_alt = KeyEvent::new(
            KeyCode::Char('c'),
            KeyModifiers::ALT | KeyModifiers::CONTROL,
        );
        assert_eq!(split_meta(ctrl_alt), [ctrl_alt]);
        assert_eq!(
            split_meta(key(KeyCode::Char('j'))),
            [key(KeyCode::Char('j'))]
        );
        // Esc closes the detail view, then `j` moves: not `s`hutdown on top of the detail.
        let mut m = Model::new("x", false);
        m.detail = true;
        let actions: Vec<_> = split_meta(KeyEvent::new(KeyCode::Char('j'), KeyModifiers::ALT))
            .into_iter()
            .map(|k| map_key(&m, k))
            .collect();
        assert_eq!(actions, [Some(Action::Back), Some(Action::Down)]);
    }
}
