//! One runtime value, parsed once when a layer is loaded (as Envoy's `SnapshotImpl::Entry`),
//! so a request's look-up does no parsing: a boolean, an unsigned integer and a double, or a
//! `FractionalPercent` written as a YAML map.

use crate::config::filters::Fraction;

/// A key's value as the layers left it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    /// The text as the layer gave it (what `/runtime` shows).
    pub raw: String,
    pub boolean: Option<bool>,
    pub uint: Option<u64>,
    pub double: Option<f64>,
    pub fraction: Option<Fraction>,
}

impl Entry {
    /// Envoy's `resolveEntryType`: `true` / `false` (any case) are booleans; a non-negative
    /// integer is also a boolean (non-zero is true); a number is a double, and its integral
    /// part the integer when it is not negative; otherwise a YAML map of `numerator` and
    /// `denominator` is a fractional percent.
    pub fn parse(raw: &str) -> Entry {
        let mut e = Entry { raw: raw.to_string(), ..Entry::default() };
        let t = raw.trim();
        if t.eq_ignore_ascii_case("true") {
            e.boolean = Some(true);
            return e;
        }
        if t.eq_ignore_ascii_case("false") {
            e.boolean = Some(false);
            return e;
        }
        if let Ok(n) = t.parse::<u64>() {
            e.boolean = Some(n != 0);
        }
        if let Ok(d) = t.parse::<f64>() {
            if d.is_finite() {
                e.double = Some(d);
                if d >= 0.0 && d <= u64::MAX as f64 {
                    e.uint = Some(t.parse::<u64>().unwrap_or(d as u64));
                }
                return e;
            }
        }
        e.fraction = fraction(t);
        e
    }

    /// Envoy's `featureEnabled` reading of the entry: a fractional percent as written; an
    /// integer as a percentage (over 100; above 100 always).
    pub fn percent(&self) -> Option<Fraction> {
        if let Some(f) = self.fraction {
            return Some(f);
        }
        let n = self.uint?;
        Some(Fraction { numerator: u32::try_from(n.min(101)).unwrap_or(101), denominator: 100 })
    }
}

/// `{numerator: N, denominator: HUNDRED | TEN_THOUSAND | MILLION}` (the denominator defaults
/// to `HUNDRED`); any other field makes it no fraction.
fn fraction(text: &str) -> Option<Fraction> {
    use serde_yaml::Value;
    let Ok(Value::Mapping(m)) = serde_yaml::from_str::<Value>(text) else { return None };
    let mut f = Fraction { numerator: 0, denominator: 100 };
    for (k, v) in &m {
        match (k.as_str()?, v) {
            ("numerator", v) => f.numerator = u32::try_from(v.as_u64()?).ok()?,
            ("denominator", Value::String(s)) => {
                f.denominator = match s.as_str() {
                    "HUNDRED" => 100,
                    "TEN_THOUSAND" => 10_000,
                    "MILLION" => 1_000_000,
                    _ => return None,
                }
            }
            ("denominator", v) => {
                f.denominator = match v.as_u64()? {
                    0 => 100,
                    1 => 10_000,
                    2 => 1_000_000,
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_envoy_resolves_them() {
        let e = Entry::parse("true");
        assert_eq!((e.boolean, e.uint), (Some(true), None));
        assert_eq!(Entry::parse(" FALSE ").boolean, Some(false));
        let e = Entry::parse("7\n");
        assert_eq!((e.boolean, e.uint, e.double), (Some(true), Some(7), Some(7.0)));
        assert_eq!(Entry::parse("0").boolean, Some(false));
        let e = Entry::parse("1.5");
        assert_eq!((e.boolean, e.uint, e.double), (None, Some(1), Some(1.5)));
        let e = Entry::parse("-3");
        assert_eq!((e.uint, e.double), (None, Some(-3.0)));
        let e = Entry::parse("hello");
        assert_eq!((e.boolean, e.uint, e.double, e.fraction), (None, None, None, None));
        let f = Entry::parse("numerator: 5\ndenominator: TEN_THOUSAND").fraction;
        assert_eq!(f, Some(Fraction { numerator: 5, denominator: 10_000 }));
        assert_eq!(Entry::parse("{numerator: 5}").fraction, Some(Fraction { numerator: 5, denominator: 100 }));
        assert_eq!(Entry::parse("{numerator: 5, other: 1}").fraction, None);
    }

    #[test]
    fn an_integer_is_a_percentage() {
        assert_eq!(Entry::parse("30").percent(), Some(Fraction { numerator: 30, denominator: 100 }));
        assert_eq!(Entry::parse("500").percent(), Some(Fraction { numerator: 101, denominator: 100 }));
        let f = Entry::parse("{numerator: 2, denominator: MILLION}").percent();
        assert_eq!(f, Some(Fraction { numerator: 2, denominator: 1_000_000 }));
        assert_eq!(Entry::parse("x").percent(), None);
    }
}
