//! `%START_TIME(...)%`: a strftime format compiled once at config time, rendered in UTC.
//!
//! Everything chrono understands is passed to it as pre-parsed items. Envoy's own additions are
//! handled here: `%f` (nine fractional digits), `%1f`..`%9f` (that many digits, truncated, not
//! rounded) and absl's `%E1S`..`%E9S` (seconds with that many fractional digits). `%s` (seconds
//! since the epoch) is chrono's own.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Timelike, Utc};

/// Envoy's default `START_TIME` rendering: `2026-11-22T03:41:29.102Z`.
const DEFAULT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// A compiled `START_TIME` format.
#[derive(Debug, Clone)]
pub struct TimeFormat {
    pieces: Vec<TimePiece>,
    /// The format is [`DEFAULT`]: rendered by hand, since chrono's formatting machinery costs
    /// more than the rest of a default line together.
    iso_millis: bool,
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
        Ok(TimeFormat { pieces, iso_millis: spec == DEFAULT })
    }

    /// Appends `time` rendered in UTC.
    pub fn render(&self, time: SystemTime, out: &mut String) {
        if self.iso_millis {
            if let Some(since_epoch) = time.duration_since(UNIX_EPOCH).ok().filter(|d| d.as_secs() < YEAR_10000) {
                push_iso_millis(since_epoch, out);
                return;
            }
        }
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

/// 10000-01-01T00:00:00Z: four year digits end there (chrono renders later years).
const YEAR_10000: u64 = 253_402_300_800;

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a time from the epoch to the year 9999 (the civil date from the day count
/// by H. Hinnant's `civil_from_days`).
fn push_iso_millis(since_epoch: Duration, out: &mut String) {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 0000-03-01, in 400-year eras of 146,097 days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, rem / 3600);
    put(14, 2, rem % 3600 / 60);
    put(17, 2, rem % 60);
    put(20, 3, u64::from(since_epoch.subsec_millis()));
    // Only ASCII digits and separators were written.
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
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
    fn the_default_by_hand_agrees_with_chrono() {
        let by_chrono = TimeFormat { iso_millis: false, ..TimeFormat::envoy_default() };
        let by_hand = TimeFormat::envoy_default();
        assert!(by_hand.iso_millis);
        // Leap days, year and century ends, the epoch, 2000 (a 400-year leap year), far ahead.
        let secs = [0, 951_782_400, 951_868_799, 978_307_199, 1_709_164_800, 4_107_542_399, 253_402_300_799];
        for s in secs.into_iter().chain((0..2000).map(|i| i * 7_776_013 + 12_345)) {
            for nanos in [0, 1_000_000, 999_999_999] {
                let t = UNIX_EPOCH + Duration::new(s, nanos);
                let (mut a, mut b) = (String::new(), String::new());
                by_chrono.render(t, &mut a);
                by_hand.render(t, &mut b);
                assert_eq!(a, b, "{s}.{nanos}");
            }
        }
        // Before the epoch and after 9999: chrono's rendering.
        let mut out = String::new();
        by_hand.render(UNIX_EPOCH - Duration::from_millis(1500), &mut out);
        assert_eq!(out, "1969-12-31T23:59:58.500Z");
        out.clear();
        by_hand.render(UNIX_EPOCH + Duration::from_secs(YEAR_10000), &mut out);
        assert_eq!(out, "+10000-01-01T00:00:00.000Z");
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
