//! The one formatter for numbers, sizes and times, used by both `nodectl` and the console so
//! they read the same (DESIGN §11: `31.28GiB`, `2.435TiB`, `0.13%`, `2h5m`).

/// Bytes in IEC units with four significant digits, AIStore style: `31.28GiB`, `2.435TiB`, `512B`.
pub fn iec(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let decimals = if v < 10.0 {
        3
    } else if v < 100.0 {
        2
    } else if v < 1000.0 {
        1
    } else {
        0
    };
    format!("{v:.decimals$}{}", UNITS[unit])
}

/// A percentage with two decimals (`0.13%`); non-finite inputs show as `-`.
pub fn pct2(p: f64) -> String {
    if p.is_finite() {
        format!("{p:.2}%")
    } else {
        "-".into()
    }
}

/// A whole percentage (`16%`), as capacity is shown by `show cluster`.
pub fn pct0(p: f64) -> String {
    if p.is_finite() {
        format!("{p:.0}%")
    } else {
        "-".into()
    }
}

/// A duration in the two most significant units: `45s`, `31m`, `2h5m`, `3d4h`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h{m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d{h}h"),
    }
}

/// Like [`duration`] but keeps seconds under an hour, since an ETA counts down visibly.
pub fn eta(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        duration(secs)
    }
}

/// A byte rate, `12.50MiB/s`.
pub fn rate(bytes_per_sec: f64) -> String {
    if bytes_per_sec.is_finite() && bytes_per_sec > 0.0 {
        format!("{}/s", iec(bytes_per_sec as u64))
    } else {
        "-".into()
    }
}

/// Wall-clock time of day (UTC) for the event log: `14:02:11`.
pub fn clock(unix_secs: u64) -> String {
    let s = unix_secs % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// Like [`clock`], `-` when unset (a rebalance not finished yet).
pub fn clock_opt(unix_secs: Option<u64>) -> String {
    match unix_secs {
        Some(t) if t > 0 => clock(t),
        _ => "-".into(),
    }
}

/// `s` safe to print on a terminal: control characters (escape sequences, carriage returns,
/// C1 codes) and bidirectional overrides become visible escapes (`\u{1b}`), and a backslash
/// doubles so that escapes cannot be faked. Everything else is kept as is.
pub fn safe(s: &str) -> std::borrow::Cow<'_, str> {
    let hostile = |c: char| {
        c.is_control()
            || c == '\\'
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(hostile) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if hostile(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A count with thousands separators, `1,234,567`, for object counts.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `s` cut to at most `width` characters by dropping its start, marked with `…`: for paths,
/// whose end is what tells them apart.
pub fn ellipsize_left(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let keep = width - 1;
    std::iter::once('…')
        .chain(s.chars().skip(n - keep))
        .collect()
}

/// One line for a resilver, the same in `nodectl` and the console:
/// `r3 t[abc]: 120 of 500 objects, 1.20MiB of 5.00MiB moved, 30.0MiB/s, ETA 4s (attach /data/mp3)`.
pub fn resilver_line(r: &crate::types::status::ResilverStatus) -> String {
    use crate::types::status::RebState;
    let tail = match (r.state, r.eta_secs, &r.blocked_by) {
        (RebState::Running, _, Some(b)) => format!("blocked: {b}"),
        (RebState::Running, Some(s), None) => format!("ETA {}", eta(s)),
        (RebState::Running, None, None) => "ETA calculating".into(),
        (RebState::Finished, ..) if r.errors > 0 => format!("finished with {} errors", r.errors),
        (RebState::Finished, ..) => "done".into(),
        (RebState::Aborted, ..) => "aborted".into(),
    };
    format!(
        "{} t[{}]: {} of {} objects, {} of {} moved, {}, {} ({})",
        r.id,
        r.target,
        r.objs_moved,
        r.objs_total,
        iec(r.bytes_moved),
        iec(r.bytes_total),
        rate(r.rate_bytes_per_sec),
        tail,
        r.reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_design_shows_them() {
        assert_eq!(iec(0), "0B");
        assert_eq!(iec(1023), "1023B");
        assert_eq!(iec(1024), "1.000KiB");
        assert_eq!(iec(33_586_659_328), "31.28GiB");
        assert_eq!(iec(2_677_340_000_000), "2.435TiB");
        assert_eq!(iec(u64::MAX), "16.00EiB");
    }

    #[test]
    fn percentages_and_durations() {
        assert_eq!(pct2(0.1349), "0.13%");
        assert_eq!(pct2(f64::NAN), "-");
        assert_eq!(pct0(16.2), "16%");
        assert_eq!(duration(31 * 60 + 5), "31m");
        assert_eq!(duration(2 * 3600 + 5 * 60), "2h5m");
        assert_eq!(duration(7200), "2h");
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 1), "3d4h");
        assert_eq!(eta(80), "1m20s");
        assert_eq!(eta(7), "7s");
        assert_eq!(clock(86_400 + 3600 * 14 + 2 * 60 + 11), "14:02:11");
        assert_eq!(clock_opt(Some(3600 + 61)), "01:01:01");
        assert_eq!(clock_opt(None), "-");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(rate(0.0), "-");
    }

    #[test]
    fn names_print_safely() {
        assert_eq!(safe("plain/name é.txt"), "plain/name é.txt");
        assert_eq!(safe("\x1b[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(safe("a\nb\rc\td"), "a\\u{a}b\\u{d}c\\u{9}d");
        assert_eq!(safe("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(safe("\u{9b}31m"), "\\u{9b}31m", "C1 CSI");
        assert_eq!(safe("back\\slash"), "back\\\\slash");
        // What it prints has no control character left.
        for s in ["\x1b]0;title\x07", "\u{7f}", "\u{0}"] {
            assert!(!safe(s).chars().any(|c| c.is_control()), "{s:?}");
        }
    }

    #[test]
    fn long_paths_keep_their_end() {
        assert_eq!(ellipsize_left("/data/mp1", 20), "/data/mp1");
        assert_eq!(ellipsize_left("/tmp/shoal/target0/mp1", 10), "…rget0/mp1");
        assert_eq!(ellipsize_left("abc", 0), "");
        assert_eq!(ellipsize_left("abc", 1), "…");
    }
}
