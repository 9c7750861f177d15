//! Byte counts and their human-readable form.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A number of bytes, as counted by a VPN host or summed by Tollgate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ByteCount(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a byte count: {0:?}")]
pub struct ByteCountError(String);

/// A decimal number of ASCII digits only (no sign, no space), in one pass;
/// `None` if empty, anything else, or past `u64`. How `wg` and OpenVPN
/// print every count.
pub fn digits(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.bytes().try_fold(0u64, |n, b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

impl ByteCount {
    pub const ZERO: ByteCount = ByteCount(0);

    pub const fn new(bytes: u64) -> Self {
        Self(bytes)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// Parses a decimal count as printed by `wg` or OpenVPN (digits only).
    pub fn parse(text: &str) -> Result<Self, ByteCountError> {
        digits(text).map(Self).ok_or_else(|| ByteCountError(truncate(text)))
    }

    /// A size as an admin types it: bytes, or a number with a 1024-based
    /// unit as the panel prints them (`500M`, `10GB`, `1.5 TB`).
    pub fn parse_size(text: &str) -> Result<Self, ByteCountError> {
        let bad = || ByteCountError(truncate(text));
        let t = text.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let unit = unit.trim().to_ascii_uppercase();
        let power = match unit.trim_end_matches('B') {
            "" => 0,
            "K" => 1,
            "M" => 2,
            "G" => 3,
            "T" => 4,
            "P" => 5,
            _ => return Err(bad()),
        };
        if power == 0 {
            return Self::parse(number).map_err(|_| bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let bytes = value * 1024f64.powi(power);
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Self(bytes.round() as u64))
    }

    pub fn saturating_add(self, other: ByteCount) -> ByteCount {
        ByteCount(self.0.saturating_add(other.0))
    }

    /// Human-readable, with 1024-based steps and the unit names admins use
    /// ("1.5 GB" for 1,610,612,736 bytes).
    pub fn human(self) -> String {
        const UNITS: [&str; 6] = ["KB", "MB", "GB", "TB", "PB", "EB"];
        if self.0 < 1024 {
            return format!("{} B", self.0);
        }
        // Whole-number arithmetic (the browser's copy carries no float
        // formatting): the largest unit that leaves at least 1.
        let bytes = u128::from(self.0);
        let mut unit = 0;
        while unit + 1 < UNITS.len() && bytes >= 1u128 << (10 * (unit + 2)) {
            unit += 1;
        }
        let step = 1u128 << (10 * (unit + 1));
        // One decimal below 100, rounded half to even as `{:.1}` would;
        // no trailing ".0".
        let tenths = divide_rounding(bytes * 10, step);
        let text = if tenths >= 1000 {
            divide_rounding(bytes, step).to_string()
        } else if tenths.is_multiple_of(10) {
            (tenths / 10).to_string()
        } else {
            format!("{}.{}", tenths / 10, tenths % 10)
        };
        format!("{text} {}", UNITS[unit])
    }
}

/// `n / d` rounded to the nearest whole number, ties to even.
fn divide_rounding(n: u128, d: u128) -> u128 {
    let (q, r) = (n / d, n % d);
    if r * 2 > d || (r * 2 == d && q % 2 == 1) {
        q + 1
    } else {
        q
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(32).collect()
}

impl fmt::Display for ByteCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for ByteCount {
    fn from(value: u64) -> Self {
        Self(value)
    }
}

impl std::ops::Add for ByteCount {
    type Output = ByteCount;
    fn add(self, rhs: ByteCount) -> ByteCount {
        self.saturating_add(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_the_units_the_panel_prints() {
        let size = |t: &str| ByteCount::parse_size(t).map(ByteCount::get);
        assert_eq!(size("1000"), Ok(1000));
        assert_eq!(size("10GB"), Ok(10 * 1024 * 1024 * 1024));
        assert_eq!(size("1.5 TB"), Ok(1_649_267_441_664));
        assert_eq!(size("500m"), Ok(500 * 1024 * 1024));
        for bad in ["", "GB", "10 XB", "-5", "1.5", "ten"] {
            assert!(ByteCount::parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_number_sizes_read_as_the_float_form_they_replaced() {
        fn float_form(bytes: u64) -> String {
            let mut value = bytes as f64;
            let mut unit = "B";
            for name in ["KB", "MB", "GB", "TB", "PB", "EB"] {
                if value < 1024.0 {
                    break;
                }
                value /= 1024.0;
                unit = name;
            }
            let text = if value >= 100.0 {
                format!("{value:.0}")
            } else {
                let t = format!("{value:.1}");
                t.strip_suffix(".0").map(str::to_owned).unwrap_or(t)
            };
            format!("{text} {unit}")
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..200_000u64 {
            // Every size up to 2^50 bytes, spread over the units, and the
            // values next to each unit's edges.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = match i % 3 {
                0 => x >> (14 + (i % 36)),
                1 => (1u64 << (10 * (1 + i % 5))).wrapping_add(x % 2048).wrapping_sub(1024),
                _ => i * 37,
            };
            if bytes >= 1024 {
                assert_eq!(ByteCount::new(bytes).human(), float_form(bytes), "{bytes}");
            }
        }
    }

    #[test]
    fn human_sizes_match_what_admins_expect() {
        assert_eq!(ByteCount::new(0).human(), "0 B");
        assert_eq!(ByteCount::new(1023).human(), "1023 B");
        assert_eq!(ByteCount::new(1024).human(), "1 KB");
        assert_eq!(ByteCount::new(5572).human(), "5.4 KB");
        assert_eq!(ByteCount::new(1_610_612_736).human(), "1.5 GB");
        assert_eq!(ByteCount::new(3_435_973_836).human(), "3.2 GB");
        assert_eq!(ByteCount::new(150 * 1024 * 1024).human(), "150 MB");
        assert_eq!(ByteCount::new(u64::MAX).human(), "16 EB");
        assert_eq!(ByteCount::new(1024 * 1024 - 1).human(), "1024 KB", "rounds within its unit, as before");
        assert_eq!(ByteCount::new(2304).human(), "2.2 KB", "2.25: a tie goes to the even tenth");
        assert_eq!(ByteCount::new(2816).human(), "2.8 KB", "2.75: a tie goes to the even tenth");
        assert_eq!(ByteCount::new(102_349).human(), "100 KB", "99.95 rounds up to 100");
    }

    #[test]
    fn byte_counts_parse_only_plain_digits() {
        assert_eq!(ByteCount::parse("5540"), Ok(ByteCount::new(5540)));
        assert_eq!(ByteCount::parse("18446744073709551615"), Ok(ByteCount::new(u64::MAX)));
        assert!(ByteCount::parse("18446744073709551616").is_err());
        assert!(ByteCount::parse("-1").is_err());
        assert!(ByteCount::parse("+1").is_err());
        assert!(ByteCount::parse("").is_err());
        assert!(ByteCount::parse("1e3").is_err());
    }
}
