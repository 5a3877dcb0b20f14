//! Reading Envoy messages out of a `serde_yaml::Value` tree with proto-JSON leniency.
//!
//! An [`Obj`] wraps one YAML mapping (one proto message) and its dotted field path. Every
//! getter marks the field as consumed; [`Obj::finish`] then reports every field nobody read as
//! an error at its own path ("unknown field" / "unsupported field"), so nothing is silently
//! ignored. Getters never stop at the first problem: they push a [`ConfigError`] into the
//! [`Ctx`] and return `None`, so one load reports every error it can find.
//!
//! Proto-JSON rules applied here: field names in `snake_case` or `lowerCamelCase`, integers as
//! numbers or strings, enums in any case, durations as `"1.5s"` (or `{seconds, nanos}`), and
//! `null` meaning "not set".

use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::duration::parse_duration;
use super::error::ConfigError;

/// Where errors of one load go.
pub(crate) struct Ctx {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl Ctx {
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Ctx { file: file.into(), errors: Vec::new() }
    }

    pub fn err(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError { file: self.file.clone(), path: path.to_string(), message: message.into() });
    }

    pub fn error_count(&self) -> usize {
        self.errors.len()
    }
}

/// `a.b` (or `b` at the root).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `a[i]`
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Whether `key` is `snake` spelled in lowerCamelCase (`per_try_timeout` / `perTryTimeout`),
/// without allocating: this runs for every field lookup of every resource.
fn is_camel_of(key: &str, snake: &str) -> bool {
    let mut k = key.chars();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
            continue;
        }
        let want = if upper { c.to_ascii_uppercase() } else { c };
        upper = false;
        if k.next() != Some(want) {
            return false;
        }
    }
    k.next().is_none()
}

/// Text of a scalar as proto-JSON accepts it for a string field.
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One proto message being read.
pub(crate) struct Obj<'v> {
    pub path: String,
    map: Option<&'v Mapping>,
    /// Keys read, borrowed from the mapping.
    used: Vec<&'v str>,
}

impl<'v> Obj<'v> {
    /// A message at `path`; `null` reads as an empty message.
    pub fn new(ctx: &mut Ctx, value: &'v Value, path: impl Into<String>) -> Option<Obj<'v>> {
        let path = path.into();
        match value {
            Value::Mapping(m) => Some(Obj { path, map: Some(m), used: Vec::new() }),
            Value::Null => Some(Obj { path, map: None, used: Vec::new() }),
            Value::Tagged(t) => Obj::new(ctx, &t.value, path),
            _ => {
                ctx.err(&path, "expected an object");
                None
            }
        }
    }

    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn lookup(&self, name: &str) -> Option<(&'v str, &'v Value)> {
        let map = self.map?;
        map.iter().find_map(|(k, v)| match k {
            Value::String(s) if s == name || is_camel_of(s, name) => Some((s.as_str(), v)),
            _ => None,
        })
    }

    /// Whether the field is present and not null.
    pub fn has(&self, name: &str) -> bool {
        matches!(self.lookup(name), Some((_, v)) if !v.is_null())
    }

    /// The raw value of a field (marked as read); `None` when absent or null.
    pub fn get(&mut self, name: &str) -> Option<(&'v Value, String)> {
        let (key, v) = self.lookup(name)?;
        self.used.push(key);
        if v.is_null() {
            None
        } else {
            Some((v, self.at(name)))
        }
    }

    /// Marks fields as accepted and deliberately ignored.
    pub fn ignore(&mut self, names: &[&str]) {
        for n in names {
            let _ = self.get(n);
        }
    }

    pub fn str(&mut self, ctx: &mut Ctx, name: &str) -> Option<String> {
        let (v, path) = self.get(name)?;
        let s = scalar_string(v);
        if s.is_none() {
            ctx.err(&path, "expected a string");
        }
        s
    }

    pub fn bool(&mut self, ctx: &mut Ctx, name: &str) -> Option<bool> {
        let (v, path) = self.get(name)?;
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            _ => {
                ctx.err(&path, "expected a boolean");
                None
            }
        }
    }

    /// An unsigned integer (number or string) no larger than `max`.
    pub fn uint(&mut self, ctx: &mut Ctx, name: &str, max: u64) -> Option<u64> {
        let (v, path) = self.get(name)?;
        let n = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n <= max => Some(n),
            Some(n) => {
                ctx.err(&path, format!("value {n} out of range (max {max})"));
                None
            }
            None => {
                let shown = scalar_string(v).unwrap_or_else(|| "a non-scalar".to_string());
                ctx.err(&path, format!("expected an unsigned integer, got {shown:?}"));
                None
            }
        }
    }

    pub fn u32(&mut self, ctx: &mut Ctx, name: &str) -> Option<u32> {
        self.uint(ctx, name, u64::from(u32::MAX)).and_then(|n| u32::try_from(n).ok())
    }

    pub fn duration(&mut self, ctx: &mut Ctx, name: &str) -> Option<Duration> {
        let (v, path) = self.get(name)?;
        match parse_duration(v) {
            Ok(d) => Some(d),
            Err(msg) => {
                ctx.err(&path, msg);
                None
            }
        }
    }

    /// A sub-message.
    pub fn obj(&mut self, ctx: &mut Ctx, name: &str) -> Option<Obj<'v>> {
        let (v, path) = self.get(name)?;
        Obj::new(ctx, v, path)
    }

    /// A repeated field: each element with its indexed path.
    pub fn list(&mut self, _ctx: &mut Ctx, name: &str) -> Vec<(&'v Value, String)> {
        let Some((v, path)) = self.get(name) else {
            return Vec::new();
        };
        match v {
            Value::Sequence(items) => items.iter().enumerate().map(|(i, item)| (item, index(&path, i))).collect(),
            // Like protobuf's JSON parser (and so Envoy), a single value stands for a list of one.
            single => vec![(single, index(&path, 0))],
        }
    }

    /// A repeated message field.
    pub fn objs(&mut self, ctx: &mut Ctx, name: &str) -> Vec<Obj<'v>> {
        let items = self.list(ctx, name);
        items.into_iter().filter_map(|(v, p)| Obj::new(ctx, v, p)).collect()
    }

    /// A repeated string field.
    pub fn strs(&mut self, ctx: &mut Ctx, name: &str) -> Vec<String> {
        let items = self.list(ctx, name);
        let mut out = Vec::new();
        for (v, p) in items {
            match scalar_string(v) {
                Some(s) => out.push(s),
                None => ctx.err(&p, "expected a string"),
            }
        }
        out
    }

    /// An enum, any case; a table entry of `None` is a value Envoy knows and legate does not.
    pub fn enumv<T: Copy>(&mut self, ctx: &mut Ctx, name: &str, table: &[(&str, Option<T>)]) -> Option<T> {
        let (v, path) = self.get(name)?;
        let Some(s) = scalar_string(v) else {
            ctx.err(&path, "expected an enum name");
            return None;
        };
        match table.iter().find(|(n, _)| n.eq_ignore_ascii_case(&s)) {
            Some((_, Some(t))) => Some(*t),
            Some((_, None)) => {
                ctx.err(&path, format!("unsupported value \"{s}\""));
                None
            }
            None => {
                ctx.err(&path, format!("unknown value \"{s}\""));
                None
            }
        }
    }

    /// Keys of a map-typed field (`map<string, ...>`), in file order.
    pub fn entries(&mut self, ctx: &mut Ctx, name: &str) -> Vec<(String, &'v Value, String)> {
        let Some((v, path)) = self.get(name) else {
            return Vec::new();
        };
        let Value::Mapping(m) = v else {
            ctx.err(&path, "expected a map");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in m {
            match scalar_string(k) {
                Some(k) => {
                    let p = join(&path, &k);
                    out.push((k, v, p));
                }
                None => ctx.err(&path, "map keys must be strings"),
            }
        }
        out
    }

    /// Reports every field nobody read. Names in `unsupported` are Envoy fields legate does not
    /// implement; anything else is unknown.
    pub fn finish(self, ctx: &mut Ctx, unsupported: &[&str]) {
        let Some(map) = self.map else { return };
        for k in map.keys() {
            let key = scalar_string(k).unwrap_or_else(|| "?".to_string());
            if self.used.contains(&key.as_str()) {
                continue;
            }
            let known = unsupported.iter().any(|u| *u == key || is_camel_of(&key, u));
            let msg = if known { "unsupported field (not implemented by legate)" } else { "unknown field" };
            ctx.err(&join(&self.path, &key), msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_names_match_snake_case_fields() {
        assert!(is_camel_of("perTryTimeout", "per_try_timeout"));
        assert!(!is_camel_of("perTry", "per_try_timeout"));
        assert!(!is_camel_of("perTryTimeoutX", "per_try_timeout"));
        assert!(is_camel_of("name", "name"));
    }

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap_or(Value::Null)
    }

    #[test]
    fn reads_fields_and_reports_leftovers() {
        let v = yaml("{name: x, portValue: '80', lb_policy: round_robin, extra: 1, health_checks: []}");
        let mut ctx = Ctx::new("f.yaml");
        let Some(mut o) = Obj::new(&mut ctx, &v, "c") else { panic!("not an object") };
        assert_eq!(o.str(&mut ctx, "name").as_deref(), Some("x"));
        assert_eq!(o.u32(&mut ctx, "port_value"), Some(80));
        assert_eq!(o.enumv(&mut ctx, "lb_policy", &[("ROUND_ROBIN", Some(1)), ("MAGLEV", None)]), Some(1));
        o.finish(&mut ctx, &["health_checks"]);
        let msgs: Vec<_> = ctx.errors.iter().map(|e| format!("{}: {}", e.path, e.message)).collect();
        assert_eq!(msgs, ["c.extra: unknown field", "c.health_checks: unsupported field (not implemented by legate)"]);
    }

    #[test]
    fn enum_errors() {
        let v = yaml("{a: round_robbin, b: maglev}");
        let mut ctx = Ctx::new("f");
        let Some(mut o) = Obj::new(&mut ctx, &v, "") else { panic!("not an object") };
        let t = [("ROUND_ROBIN", Some(1)), ("MAGLEV", None)];
        assert_eq!(o.enumv(&mut ctx, "a", &t), None);
        assert_eq!(o.enumv(&mut ctx, "b", &t), None);
        assert_eq!(ctx.errors[0].message, "unknown value \"round_robbin\"");
        assert_eq!(ctx.errors[1].message, "unsupported value \"maglev\"");
    }
}
