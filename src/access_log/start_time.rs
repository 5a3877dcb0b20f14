//! `%START_TIME(...)%`: a strftime format compiled once at config time, rendered in UTC.
//!
//! Everything chrono understands is passed to it as pre-parsed items. Envoy's own additions are
//! handled here: `%f` (nine fractional digits), `%1f`..`%9f` (that many digits, truncated, not
//! rounded) and absl's `%E1S`..`%E9S` (seconds with that many fractional digits). `%s` (seconds
//! since the epoch) is chrono's own.

use std::fmt::Write as _;
use std::time::SystemTime;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Timelike, Utc};

/// Envoy's default `START_TIME` rendering: `2026-11-22T03:41:29.102Z`.
const DEFAULT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// A compiled `START_TIME` format.
#[derive(Debug, Clone)]
pub struct TimeFormat {
    pieces: Vec<TimePiece>,
}

#[derive(Debug, Clone)]
enum TimePiece {
    /// Items chrono renders.
    Chrono(Vec<Item<'static>>),
    /// The first `n` digits of the nanoseconds within the second.
    Fraction(usize),
}

impl TimeFormat {
    /// Envoy's default: ISO 8601 in UTC with milliseconds.
    pub fn envoy_default() -> Self {
        Self::parse(DEFAULT).expect("the default START_TIME format is valid")
    }

    /// Compiles a strftime format; an unknown specifier is an error naming it.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut chrono_run = String::new();
        let mut rest = spec;
        while let Some(at) = rest.find('%') {
            chrono_run.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (fraction, seconds, used) = match after.as_bytes() {
                [b'f', ..] => (Some(9), false, 1),
                [d @ b'1'..=b'9', b'f', ..] => (Some(usize::from(d - b'0')), false, 2),
                [b'E', d @ b'1'..=b'9', b'S', ..] => (Some(usize::from(d - b'0')), true, 3),
                _ => (None, false, 0),
            };
            match fraction {
                Some(digits) => {
                    if seconds {
                        chrono_run.push_str("%S.");
                    }
                    push_chrono(&mut pieces, &mut chrono_run, spec)?;
                    pieces.push(TimePiece::Fraction(digits));
                    rest = &after[used..];
                }
                None => {
                    // Keep `%%` and `%x` together so a `%%f` stays a literal `%f`.
                    let len = after.chars().next().map_or(0, char::len_utf8);
                    chrono_run.push('%');
                    chrono_run.push_str(&after[..len]);
                    rest = &after[len..];
                }
            }
        }
        chrono_run.push_str(rest);
        push_chrono(&mut pieces, &mut chrono_run, spec)?;
        Ok(TimeFormat { pieces })
    }

    /// Appends `time` rendered in UTC.
    pub fn render(&self, time: SystemTime, out: &mut String) {
        let utc: DateTime<Utc> = time.into();
        for piece in &self.pieces {
            match piece {
                // Items were validated at parse time, so formatting cannot fail.
                TimePiece::Chrono(items) => {
                    let _ = write!(out, "{}", utc.format_with_items(items.iter()));
                }
                TimePiece::Fraction(digits) => {
                    let nanos = utc.nanosecond() % 1_000_000_000;
                    let _ = write!(out, "{:0width$}", nanos / 10u32.pow(9 - *digits as u32), width = *digits);
                }
            }
        }
    }
}

/// Moves the pending chrono text into a validated piece.
fn push_chrono(pieces: &mut Vec<TimePiece>, run: &mut String, spec: &str) -> Result<(), String> {
    if run.is_empty() {
        return Ok(());
    }
    let items: Vec<Item<'static>> = StrftimeItems::new(run).map(Item::to_owned).collect();
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err(format!("invalid START_TIME format \"{spec}\""));
    }
    pieces.push(TimePiece::Chrono(items));
    run.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2026-11-22T03:41:29.102345678Z
    fn sample() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_795_318_889, 102_345_678)
    }

    fn render(spec: &str) -> String {
        let mut out = String::new();
        TimeFormat::parse(spec).expect("valid format").render(sample(), &mut out);
        out
    }

    #[test]
    fn default_is_iso_with_millis() {
        let mut out = String::new();
        TimeFormat::envoy_default().render(sample(), &mut out);
        assert_eq!(out, "2026-11-22T03:41:29.102Z");
    }

    #[test]
    fn strftime_and_envoy_fractions() {
        assert_eq!(render("%Y/%m/%d %H:%M:%S"), "2026/11/22 03:41:29");
        assert_eq!(render("%s.%3f"), "1795318889.102");
        assert_eq!(render("%s.%6f"), "1795318889.102345");
        assert_eq!(render("%f"), "102345678");
        assert_eq!(render("%9f|%1f|%4f"), "102345678|1|1023");
        assert_eq!(render("%E3S"), "29.102");
        assert_eq!(render("100%% at %H"), "100% at 03");
        assert_eq!(render("%%f"), "%f");
    }

    #[test]
    fn bad_specifier_is_an_error() {
        let err = TimeFormat::parse("%Y %Q").expect_err("unknown specifier");
        assert!(err.contains("%Y %Q"), "{err}");
        assert!(TimeFormat::parse("%").is_err());
    }
}
