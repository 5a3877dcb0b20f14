//! `google.protobuf.Duration` as proto-JSON writes it: `"5s"`, `"0.25s"`, `"1.000000001s"`
//! (also `{seconds, nanos}`, which YAML configs sometimes use). Negative durations are errors:
//! no Envoy duration field legate supports accepts them.

use std::time::Duration;

use serde_yaml::Value;

/// Parses a duration value; the error is the message to report at the field's path.
pub(crate) fn parse_duration(v: &Value) -> Result<Duration, String> {
    match v {
        Value::String(s) => parse_duration_str(s),
        Value::Mapping(m) => {
            let mut secs = 0u64;
            let mut nanos = 0u32;
            for (k, v) in m {
                let n = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.parse::<i64>().ok(),
                    _ => None,
                };
                let Some(n) = n else {
                    return Err(format!("invalid duration: {k:?} is not an integer"));
                };
                if n < 0 {
                    return Err("invalid duration: negative".to_string());
                }
                match k.as_str() {
                    Some("seconds") => secs = n.unsigned_abs(),
                    Some("nanos") if n < 1_000_000_000 => nanos = u32::try_from(n).unwrap_or(0),
                    Some("nanos") => return Err("invalid duration: nanos out of range".to_string()),
                    _ => return Err(format!("invalid duration: unknown field {k:?}")),
                }
            }
            Ok(Duration::new(secs, nanos))
        }
        Value::Number(n) => Err(format!("invalid duration {n}: expected a string like \"{n}s\"")),
        _ => Err("invalid duration: expected a string like \"1.5s\"".to_string()),
    }
}

/// `"1.5s"` -> 1.5 s. Up to nine fractional digits, like protobuf.
pub(crate) fn parse_duration_str(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration \"{s}\": expected seconds with an \"s\" suffix, like \"1.5s\"");
    let body = s.trim().strip_suffix('s').ok_or_else(bad)?;
    if body.starts_with('-') {
        return Err(format!("invalid duration \"{s}\": negative"));
    }
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) || frac.len() > 9 {
        return Err(bad());
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad())? };
    // 315,576,000,000 s is protobuf's maximum duration.
    if secs > 315_576_000_000 {
        return Err(format!("invalid duration \"{s}\": too large"));
    }
    let nanos: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(|_| bad())? };
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proto_json_durations() {
        assert_eq!(parse_duration_str("0.25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration_str("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration_str("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration_str("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_str(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration_str("0.000000001s"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn rejects_bad_durations() {
        for s in ["5", "5ms", "-1s", "1.0000000001s", "s", "1,5s", "abc"] {
            assert!(parse_duration_str(s).is_err(), "{s} accepted");
        }
        assert!(parse_duration(&Value::Number(5.into())).is_err());
    }

    #[test]
    fn parses_seconds_nanos_mapping() {
        let v: Value = serde_yaml::from_str("{seconds: 2, nanos: 500000000}").unwrap_or(Value::Null);
        assert_eq!(parse_duration(&v), Ok(Duration::from_millis(2500)));
    }
}
