//! Human output: AIStore-style sizes, durations and aligned tables.

use shoal_actors::types::status::{NodeState, NodeStatus, RebState, RebalanceStatus};

// Sizes, durations and times come from the formatter the console uses too (DESIGN §11).
pub use shoal_actors::logic::format::{
    clock_opt as clock, duration, iec as size, pct0, pct2, safe,
};

pub const RED: &str = "\x1b[31m";
pub const CYAN: &str = "\x1b[36m";
pub const DIM: &str = "\x1b[2m";
pub const RESET: &str = "\x1b[0m";

/// A table whose cells may carry an ANSI colour that does not count toward the width.
pub struct Table {
    rows: Vec<Vec<(String, Option<&'static str>)>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            rows: vec![header.iter().map(|h| (h.to_string(), None)).collect()],
        }
    }

    /// Adds a row. Cells are printed safely: names from the cluster may hold escape sequences.
    pub fn row(&mut self, cells: Vec<(String, Option<&'static str>)>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|(c, col)| {
                    // Most cells are safe already: keep them rather than copy them.
                    let escaped = match safe(&c) {
                        std::borrow::Cow::Owned(e) => Some(e),
                        std::borrow::Cow::Borrowed(_) => None,
                    };
                    (escaped.unwrap_or(c), col)
                })
                .collect(),
        );
    }

    pub fn plain(&mut self, cells: Vec<String>) {
        self.row(cells.into_iter().map(|c| (c, None)).collect());
    }

    pub fn render(&self, colour: bool) -> String {
        let cols = self.rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut width = vec![0usize; cols];
        for r in &self.rows {
            for (i, (c, _)) in r.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        // One string for the whole table, rows written straight into it (200 targets are
        // 1,800 cells: no string per cell or per line).
        let line_len: usize = width.iter().map(|w| w + 3).sum::<usize>() + 16;
        let mut out = String::with_capacity(self.rows.len() * line_len);
        for r in &self.rows {
            let start = out.len();
            for (i, (c, col)) in r.iter().enumerate() {
                match (colour, col) {
                    (true, Some(code)) => {
                        out.push_str(code);
                        out.push_str(c);
                        out.push_str(RESET);
                    }
                    _ => out.push_str(c),
                }
                if i + 1 < r.len() {
                    let pad = width[i] + 3 - c.chars().count();
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            let kept = out[start..].trim_end().len();
            out.truncate(start + kept);
            out.push('\n');
        }
        out
    }
}

/// The colour AIStore gives a node's status: red while migrating, cyan once safe.
pub fn status_colour(n: &NodeStatus) -> Option<&'static str> {
    match n.status {
        NodeState::Maintenance | NodeState::Decommission if n.migrating => Some(RED),
        NodeState::Maintenance if n.safe_to_power_off => Some(CYAN),
        NodeState::Decommission => Some(RED),
        NodeState::Offline => Some(DIM),
        _ => None,
    }
}

/// A text progress bar for terminals: `[#######.......]  45%`.
pub fn bar(fraction: f64, width: usize) -> String {
    let f = fraction.clamp(0.0, 1.0);
    let filled = (f * width as f64).round() as usize;
    format!(
        "[{}{}] {:>3.0}%",
        "#".repeat(filled),
        ".".repeat(width - filled),
        f * 100.0
    )
}

/// A rate as `nodectl rebalance throttle` takes it: `off` (or 0), a byte count, or one with a
/// unit (`50MiB`, `200MB`, `1.5GiB`, `64k`), optionally followed by `/s`.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("/s");
    if t.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected BYTES_PER_SEC (e.g. 50MiB) or off"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (B, KB, KiB, MB, MiB, GB, GiB)"
            ));
        }
    };
    let v = n * mult;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(format!("{s:?}: too large"));
    }
    Ok(v.round() as u64)
}

/// One line summarising a rebalance: totals, rate and ETA.
pub fn rebalance_summary(r: &RebalanceStatus) -> String {
    let eta = match (r.state, r.eta_secs) {
        (RebState::Running, _) if r.paused => "paused".into(),
        (RebState::Running, Some(s)) => format!("ETA {}", duration(s)),
        (RebState::Running, None) => "ETA calculating".into(),
        _ => "done".into(),
    };
    format!(
        "{}: {} of {} objects, {} of {} moved, {}/s, {}",
        r.id,
        r.objs_moved,
        r.objs_total,
        size(r.bytes_moved),
        size(r.bytes_total),
        size(r.rate_bytes_per_sec as u64),
        eta
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units_and_bad_ones_are_refused() {
        assert_eq!(parse_rate("off"), Ok(0));
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("1048576"), Ok(1 << 20));
        assert_eq!(parse_rate("50MiB"), Ok(50 << 20));
        assert_eq!(parse_rate("200MB/s"), Ok(200_000_000));
        assert_eq!(parse_rate("1.5k"), Ok(1500));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("-5").is_err());
        assert!(parse_rate("10 parsecs").is_err());
        assert!(parse_rate("1e400").is_err());
        assert!(parse_rate("").is_err());
    }

    #[test]
    fn sizes_and_times_as_the_console_shows_them() {
        // One formatter: DESIGN §11's `31.28GiB` and `2.435TiB`.
        assert_eq!(size(33_587_000_000), "31.28GiB");
        assert_eq!(size(2_677_340_000_000), "2.435TiB");
        assert_eq!(duration(31 * 60 + 5), "31m");
        assert_eq!(clock(Some(3600 + 61)), "01:01:01");
        assert_eq!(clock(None), "-");
    }

    #[test]
    fn tables_align_ignoring_colour() {
        let mut t = Table::new(&["A", "BB"]);
        t.row(vec![("xyz".into(), Some(RED)), ("1".into(), None)]);
        let plain = t.render(false);
        assert_eq!(plain, "A     BB\nxyz   1\n");
        let coloured = t.render(true);
        assert!(coloured.contains("\x1b[31mxyz\x1b[0m   1"));
    }

    #[test]
    fn bar_is_clamped() {
        assert_eq!(bar(2.0, 4), "[####] 100%");
        assert_eq!(bar(-1.0, 4), "[....]   0%");
    }
}
