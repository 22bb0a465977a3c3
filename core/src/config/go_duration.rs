//! Go's duration syntax (`90s`, `1m30s`, `1.5h`, `500ms`), which Kubernetes' `metav1.Duration`
//! fields and therefore MetalLB's BGPPeer timers use.

use std::fmt::Write as _;
use std::time::Duration;

/// Why a string is not a Go duration (or not one ironlb accepts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The syntax is not Go's.
    #[error("{0:?} is not a duration: expected a number and a unit (h, m, s, ms, us, ns), such as 90s or 1m30s")]
    Syntax(String),
    /// A number has no unit after it.
    #[error("{0:?} is not a duration: a unit (h, m, s, ms, us, ns) must follow each number")]
    MissingUnit(String),
    /// The unit is not one Go knows.
    #[error("{text:?} is not a duration: unknown unit {unit:?} (use h, m, s, ms, us or ns)")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// A negative duration.
    #[error("{0:?}: must not be negative")]
    Negative(String),
    /// Too large to hold (Go's limit is about 290 years).
    #[error("{0:?}: too large")]
    Overflow(String),
}

/// Nanoseconds per unit, as Go's `unitMap`.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration string (Go's `time.ParseDuration`), refusing negative values.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(text.to_owned());
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    // Go accepts a bare zero, and only zero, without a unit.
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(syntax());
    }
    // Go's limit: an int64 of nanoseconds.
    const MAX_NANOS: u128 = i64::MAX as u128;
    let overflow = || DurationError::Overflow(text.to_owned());
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let int_len = digits(rest);
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = digits(after_dot);
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(syntax());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(text.to_owned()));
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let per_unit = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            text: text.to_owned(),
            unit: unit.to_owned(),
        })?;
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut nanos = whole.checked_mul(per_unit).ok_or_else(overflow)?;
        // The fraction, truncated to whole nanoseconds as Go does. Like Go, digits past a limit
        // are ignored (here the 20th: they are worth under a nanosecond of an hour, and 20 keep
        // the product below within u128).
        let frac_part = &frac_part[..frac_part.len().min(20)];
        if !frac_part.is_empty() {
            let frac: u128 = frac_part.parse().map_err(|_| syntax())?;
            let scale = 10u128.pow(frac_part.len() as u32);
            nanos = nanos
                .checked_add(frac * per_unit / scale)
                .ok_or_else(overflow)?;
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        if total > MAX_NANOS {
            return Err(overflow());
        }
    }
    if negative && total > 0 {
        return Err(DurationError::Negative(text.to_owned()));
    }
    // `total` is at most i64::MAX nanoseconds, so both parts fit.
    let secs = (total / 1_000_000_000) as u64;
    let subsec = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, subsec))
}

/// Formats a duration as Go's `Duration.String` does (`1m30s`, `500ms`, `1h0m0s`), so messages
/// speak the syntax the user writes.
pub fn format_go_duration(d: Duration) -> String {
    // Digits after the decimal point, without trailing zeros.
    fn fraction(value: u128, digits: u32) -> String {
        let s = format!("{value:0width$}", width = digits as usize);
        let s = s.trim_end_matches('0');
        if s.is_empty() {
            String::new()
        } else {
            format!(".{s}")
        }
    }
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}{}\u{b5}s", nanos / 1_000, fraction(nanos % 1_000, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}{}ms", nanos / 1_000_000, fraction(nanos % 1_000_000, 6));
    }
    let secs = d.as_secs();
    let mut out = String::new();
    if secs >= 3600 {
        let _ = write!(out, "{}h", secs / 3600);
    }
    if secs >= 60 {
        let _ = write!(out, "{}m", secs % 3600 / 60);
    }
    let _ = write!(
        out,
        "{}{}s",
        secs % 60,
        fraction(u128::from(d.subsec_nanos()), 9)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_what_go_parses() {
        let cases = [
            ("0", ms(0)),
            ("0s", ms(0)),
            ("+5s", ms(5000)),
            ("-0s", ms(0)),
            ("90s", ms(90_000)),
            ("1m30s", ms(90_000)),
            ("3m", ms(180_000)),
            ("1h", ms(3_600_000)),
            ("1.5h", ms(5_400_000)),
            ("500ms", ms(500)),
            ("1.5s", ms(1500)),
            (".5s", ms(500)),
            ("1.s", ms(1000)),
            ("2h45m10s", ms(9_910_000)),
            ("10us", Duration::from_micros(10)),
            ("10\u{b5}s", Duration::from_micros(10)),
            ("10\u{3bc}s", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1s500ms", ms(1500)),
            ("0.000000001s", Duration::from_nanos(1)),
            ("0.0000000019s", Duration::from_nanos(1)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_go_refuses_and_negatives() {
        for text in ["", "s", ".s", "-", "1 s", " 1s", "1s ", "1,5s"] {
            assert!(parse_go_duration(text).is_err(), "{text:?}");
        }
        assert_eq!(
            parse_go_duration("90"),
            Err(DurationError::MissingUnit("90".into()))
        );
        assert_eq!(
            parse_go_duration("5d"),
            Err(DurationError::UnknownUnit {
                text: "5d".into(),
                unit: "d".into()
            })
        );
        assert_eq!(
            parse_go_duration("-5s"),
            Err(DurationError::Negative("-5s".into()))
        );
        assert_eq!(
            parse_go_duration("3000000h"),
            Err(DurationError::Overflow("3000000h".into()))
        );
        assert_eq!(
            parse_go_duration("99999999999999999999999999999999999999999h"),
            Err(DurationError::Overflow(
                "99999999999999999999999999999999999999999h".into()
            ))
        );
    }

    #[test]
    fn formats_as_go_does() {
        let cases = [
            (ms(0), "0s"),
            (ms(90_000), "1m30s"),
            (ms(3_600_000), "1h0m0s"),
            (ms(1500), "1.5s"),
            (ms(500), "500ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(1500), "1.5\u{b5}s"),
            (Duration::from_nanos(3), "3ns"),
            (ms(30_000), "30s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_go_duration(d), want);
        }
    }
}
