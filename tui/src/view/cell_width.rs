//! How many characters [`crate::format`]'s output would take, without building the string.
//!
//! The targets table sizes its columns over every row that passes the filter (so columns do not
//! jump while scrolling), but formats only the rows on screen. Sizing must not cost a
//! `String` per cell: at 1,000 targets that was most of the frame. These functions mirror the
//! formatter's rules with integer arithmetic; near a rounding carry (`9.996` → `10.00`), for
//! negative or huge values they ask the formatter itself, so they are exact everywhere. The
//! tests compare them with the formatter over sweeps that cross every carry.

/// Decimal digits of `n` (`0` has one).
pub fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Width of `format!("{v:.decimals$}")`.
fn fixed(v: f64, decimals: usize) -> usize {
    // Small non-negative values: the integer part keeps its digits unless rounding carries it
    // to the next power of ten, which only a value within half a last digit below it can do
    // (the 0.1% margin dwarfs f64's error below 1e6).
    const POW10: [f64; 8] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7];
    if v.is_sign_positive() && v < 1e6 && decimals < POW10.len() {
        let k = digits(v as u64);
        let half = 0.5 / POW10[decimals];
        if v < POW10[k] - half * 1.001 {
            let frac = if decimals > 0 { decimals + 1 } else { 0 };
            return k + frac;
        }
    }
    format!("{v:.decimals$}").chars().count()
}

/// Width of [`crate::format::pct2`].
pub fn pct2(p: f64) -> usize {
    if p.is_finite() { fixed(p, 2) + 1 } else { 1 }
}

/// Width of [`crate::format::pct0`].
pub fn pct0(p: f64) -> usize {
    if p.is_finite() { fixed(p, 0) + 1 } else { 1 }
}

/// Width of [`crate::format::iec`]: the same unit and decimals choice, every unit three letters.
pub fn iec(bytes: u64) -> usize {
    if bytes < 1024 {
        return digits(bytes) + 1;
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < 6 {
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
    fixed(v, decimals) + 3
}

/// Width of [`crate::format::duration`].
pub fn duration(secs: u64) -> usize {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => digits(s) + 1,
        (0, 0, _) => digits(m) + 1,
        (0, _, 0) => digits(h) + 1,
        (0, _, _) => digits(h) + digits(m) + 2,
        (_, 0, _) => digits(d) + 1,
        _ => digits(d) + digits(h) + 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format;

    /// A fixed xorshift sequence: the same values every run.
    fn xorshift(mut x: u64) -> impl Iterator<Item = u64> {
        std::iter::repeat_with(move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
    }

    fn len(s: String) -> usize {
        s.chars().count()
    }

    #[test]
    fn digits_of_powers_of_ten() {
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
        assert_eq!(digits(999_999), 6);
        assert_eq!(digits(u64::MAX), 20);
    }

    #[test]
    fn percentages_match_the_formatter_across_every_carry() {
        let odd = [
            0.0,
            -0.0,
            -0.004,
            -0.006,
            -12.5,
            0.005,
            0.5,
            1.5,
            2.5,
            9.5,
            9.49,
            9.994_999,
            9.995,
            9.995_001,
            99.995,
            99.5,
            999.995,
            100.0,
            1e5 - 0.001,
            1e6,
            1e6 - 0.004,
            1e15,
            1e300,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        // Every thousandth up to 1,100 %, so every carry below is crossed in small steps.
        let sweep = (0..=1_100_000).map(|i| f64::from(i) / 1000.0);
        let random = xorshift(0x9e37_79b9_7f4a_7c15)
            .take(100_000)
            .map(|x| (x >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi((x % 9) as i32));
        for p in odd.into_iter().chain(sweep).chain(random) {
            assert_eq!(pct2(p), len(format::pct2(p)), "pct2({p:?})");
            assert_eq!(pct0(p), len(format::pct0(p)), "pct0({p:?})");
        }
    }

    #[test]
    fn sizes_match_the_formatter_across_every_unit_and_carry() {
        let mut values: Vec<u64> = vec![0, 1, 9, 10, 1023, 1024, 1025, u64::MAX, u64::MAX - 1];
        // Around each step where the digits or the unit change: 1, 10, 100, 1000 and 1024 of
        // each unit, a little below and above.
        for unit in 0..7u32 {
            let base = 1024f64.powi(unit as i32 + 1);
            for step in [1.0, 10.0, 100.0, 1000.0, 1024.0] {
                let at = step * base;
                for rel in [-1e-3, -5e-4, -1e-4, -5e-5, -1e-5, -1e-6, 0.0, 1e-6, 1e-4] {
                    let b = at * (1.0 + rel);
                    if b < u64::MAX as f64 {
                        let b = b as u64;
                        values.extend([b.saturating_sub(1), b, b.saturating_add(1)]);
                    }
                }
            }
        }
        values.extend(
            xorshift(0x2545_f491_4f6c_dd1d)
                .take(50_000)
                .map(|x| x >> (x % 60)),
        );
        // Every byte count around 10 KiB and 100 KiB, where `9.999KiB` becomes `10.00KiB`.
        values.extend(10_230..10_250);
        values.extend(102_380..102_420);
        values.extend(1_023_900..1_024_100);
        for b in values {
            assert_eq!(iec(b), len(format::iec(b)), "iec({b})");
        }
    }

    #[test]
    fn durations_match_the_formatter() {
        let sweep = (0..200_000u64).chain((0..2_000).map(|d| d * 86_400 + 3599));
        let random = xorshift(0xdead_beef_cafe_f00d)
            .take(20_000)
            .map(|x| x >> (x % 64));
        for s in sweep.chain(random).chain([u64::MAX]) {
            assert_eq!(duration(s), len(format::duration(s)), "duration({s})");
        }
    }
}
