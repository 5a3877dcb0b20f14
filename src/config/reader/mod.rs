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
//!
//! `ctx.rs` holds what a load collects, `path.rs` the field paths errors are reported at,
//! `memo.rs` the reuse of a long list's items between two loads of a document.

mod ctx;
mod memo;
mod path;
#[cfg(test)]
mod tests;

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::duration::parse_duration;
use super::error::ConfigError;

pub(crate) use ctx::Ctx;
pub(crate) use memo::{ListMemo, Splice};
pub(crate) use path::FieldPath;
use path::Seg;

/// Whether `key` is `snake` spelled in lowerCamelCase (`per_try_timeout` / `perTryTimeout`),
/// without allocating: this runs for every field lookup of every resource.
fn is_camel_of(key: &str, snake: &str) -> bool {
    // Cheap rejections first: the camel spelling is never longer and starts alike.
    if key.len() > snake.len() || key.as_bytes().first() != snake.as_bytes().first() {
        return false;
    }
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

/// What a field Envoy knows and legate does not implement is refused with.
pub(crate) const NOT_IMPLEMENTED: &str = "not implemented by legate";

/// Which keys of a mapping were read, by position: a bit each for the first 64 (every real
/// message), a list beyond.
#[derive(Default)]
struct Used {
    first: u64,
    more: Vec<usize>,
}

impl Used {
    fn mark(&mut self, i: usize) {
        match 1u64.checked_shl(i as u32).filter(|_| i < 64) {
            Some(bit) => self.first |= bit,
            None => self.more.push(i),
        }
    }

    fn has(&self, i: usize) -> bool {
        if i < 64 {
            self.first & (1 << i) != 0
        } else {
            self.more.contains(&i)
        }
    }
}

/// One proto message being read.
pub(crate) struct Obj<'v> {
    pub path: FieldPath,
    /// `path` shared by the paths of this message's fields, made by the first that needs it.
    shared: OnceCell<Rc<FieldPath>>,
    map: Option<&'v Mapping>,
    used: Used,
}

impl<'v> Obj<'v> {
    /// A message at `path`; `null` reads as an empty message.
    pub fn new(ctx: &mut Ctx, value: &'v Value, path: FieldPath) -> Option<Obj<'v>> {
        match value {
            Value::Mapping(m) => Some(Obj { path, shared: OnceCell::new(), map: Some(m), used: Used::default() }),
            Value::Null => Some(Obj { path, shared: OnceCell::new(), map: None, used: Used::default() }),
            Value::Tagged(t) => Obj::new(ctx, &t.value, path),
            _ => {
                ctx.err(&path, "expected an object");
                None
            }
        }
    }

    fn shared(&self) -> &Rc<FieldPath> {
        self.shared.get_or_init(|| Rc::new(self.path.clone()))
    }

    /// The path of field `key` of this message.
    pub fn at(&self, key: &'static str) -> FieldPath {
        FieldPath::under(self.shared(), Seg::Field(key))
    }

    fn lookup(&self, name: &str) -> Option<(usize, &'v Value)> {
        let map = self.map?;
        map.iter().enumerate().find_map(|(i, (k, v))| match k {
            Value::String(s) if s == name || is_camel_of(s, name) => Some((i, v)),
            _ => None,
        })
    }

    /// The `@type` of the `Any` in field `name` (a `typed_config`), without reading it.
    pub fn type_url(&self, name: &str) -> Option<&'v str> {
        let (_, v) = self.lookup(name)?;
        v.get("@type")?.as_str()
    }

    /// A string field's value without reading it (the name of a resource that fails
    /// validation, so that references to it are not reported as well).
    pub fn peek_str(&self, name: &str) -> Option<String> {
        self.lookup(name).and_then(|(_, v)| scalar_string(v))
    }

    /// Whether the field is present and not null.
    pub fn has(&self, name: &str) -> bool {
        matches!(self.lookup(name), Some((_, v)) if !v.is_null())
    }

    /// Whether some field is left that nobody read: [`Obj::finish`] refuses it (not
    /// implemented, by the support table, or unknown), which says more than "missing X"
    /// would when that field was the X the validator looks for.
    pub fn has_unread(&self) -> bool {
        self.map.is_some_and(|m| (0..m.len()).any(|i| !self.used.has(i)))
    }

    /// The raw value of a field, marked as read; `None` when absent or null.
    fn take(&mut self, name: &str) -> Option<&'v Value> {
        let (i, v) = self.lookup(name)?;
        self.used.mark(i);
        if v.is_null() {
            None
        } else {
            Some(v)
        }
    }

    /// The raw value of a field (marked as read) with its path; `None` when absent or null.
    pub fn get(&mut self, name: &'static str) -> Option<(&'v Value, FieldPath)> {
        let v = self.take(name)?;
        Some((v, self.at(name)))
    }

    /// Marks fields as accepted and deliberately ignored.
    pub fn ignore(&mut self, names: &[&str]) {
        for n in names {
            let _ = self.take(n);
        }
    }

    pub fn str(&mut self, ctx: &mut Ctx, name: &'static str) -> Option<String> {
        let v = self.take(name)?;
        let s = scalar_string(v);
        if s.is_none() {
            ctx.err(self.at(name), "expected a string");
        }
        s
    }

    pub fn bool(&mut self, ctx: &mut Ctx, name: &'static str) -> Option<bool> {
        match self.take(name)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            _ => {
                ctx.err(self.at(name), "expected a boolean");
                None
            }
        }
    }

    /// An unsigned integer (number or string) no larger than `max`.
    pub fn uint(&mut self, ctx: &mut Ctx, name: &'static str, max: u64) -> Option<u64> {
        let v = self.take(name)?;
        let n = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n <= max => Some(n),
            Some(n) => {
                ctx.err(self.at(name), format!("value {n} out of range (max {max})"));
                None
            }
            None => {
                let shown = scalar_string(v).unwrap_or_else(|| "a non-scalar".to_string());
                ctx.err(self.at(name), format!("expected an unsigned integer, got {shown:?}"));
                None
            }
        }
    }

    pub fn u32(&mut self, ctx: &mut Ctx, name: &'static str) -> Option<u32> {
        self.uint(ctx, name, u64::from(u32::MAX)).and_then(|n| u32::try_from(n).ok())
    }

    pub fn duration(&mut self, ctx: &mut Ctx, name: &'static str) -> Option<Duration> {
        let v = self.take(name)?;
        match parse_duration(v) {
            Ok(d) => Some(d),
            Err(msg) => {
                ctx.err(self.at(name), msg);
                None
            }
        }
    }

    /// A sub-message.
    pub fn obj(&mut self, ctx: &mut Ctx, name: &'static str) -> Option<Obj<'v>> {
        let v = self.take(name)?;
        Obj::new(ctx, v, self.at(name))
    }

    /// A repeated field: each element with its indexed path.
    pub fn list(&mut self, _ctx: &mut Ctx, name: &'static str) -> Vec<(&'v Value, FieldPath)> {
        let Some(v) = self.take(name) else {
            return Vec::new();
        };
        let list = Rc::new(self.at(name));
        match v {
            Value::Sequence(items) => {
                items.iter().enumerate().map(|(i, item)| (item, FieldPath::under(&list, Seg::Index(i)))).collect()
            }
            // Like protobuf's JSON parser (and so Envoy), a single value stands for a list of one.
            single => vec![(single, FieldPath::under(&list, Seg::Index(0)))],
        }
    }

    /// A repeated message field.
    pub fn objs(&mut self, ctx: &mut Ctx, name: &'static str) -> Vec<Obj<'v>> {
        let items = self.list(ctx, name);
        items.into_iter().filter_map(|(v, p)| Obj::new(ctx, v, p)).collect()
    }
    /// A repeated string field.
    pub fn strs(&mut self, ctx: &mut Ctx, name: &'static str) -> Vec<String> {
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
    pub fn enumv<T: Copy>(&mut self, ctx: &mut Ctx, name: &'static str, table: &[(&str, Option<T>)]) -> Option<T> {
        let v = self.take(name)?;
        let Some(s) = scalar_string(v) else {
            ctx.err(self.at(name), "expected an enum name");
            return None;
        };
        match table.iter().find(|(n, _)| n.eq_ignore_ascii_case(&s)) {
            Some((_, Some(t))) => Some(*t),
            Some((_, None)) => {
                ctx.err(self.at(name), format!("unsupported value \"{s}\""));
                None
            }
            None if ctx.lenient_enums => {
                let path = self.at(name).to_string();
                let message = format!("unknown value \"{s}\" ignored: the default applies");
                ctx.warnings.push(ConfigError { file: ctx.file.clone(), path, message });
                None
            }
            None => {
                let valid: Vec<&str> = table.iter().filter(|(_, t)| t.is_some()).map(|(n, _)| *n).collect();
                ctx.err(self.at(name), format!("unknown value \"{s}\" (expected one of {})", valid.join(", ")));
                None
            }
        }
    }

    /// Keys of a map-typed field (`map<string, ...>`), in file order.
    pub fn entries(&mut self, ctx: &mut Ctx, name: &'static str) -> Vec<(String, &'v Value, FieldPath)> {
        let Some(v) = self.take(name) else {
            return Vec::new();
        };
        let Value::Mapping(m) = v else {
            ctx.err(self.at(name), "expected a map");
            return Vec::new();
        };
        let map = Rc::new(self.at(name));
        let mut out = Vec::new();
        for (k, v) in m {
            match scalar_string(k) {
                Some(k) => {
                    let p = FieldPath::under(&map, Seg::Key(Rc::from(k.as_str())));
                    out.push((k, v, p));
                }
                None => ctx.err(&*map, "map keys must be strings"),
            }
        }
        out
    }

    /// Reports every field nobody read. Under the schema pass (every real load) such a field
    /// is one Envoy knows and legate does not implement (`Ctx::unread`; the support table
    /// has usually said so already). Without it (the reader's own tests, a discovery file's
    /// root) it is an unknown field. Which fields are "not implemented" is the support
    /// table's alone: `_unsupported` is ignored (every caller passes `&[]`); it stays only so
    /// that branches written against this signature still build, and can go in one sweep.
    pub fn finish(self, ctx: &mut Ctx, _unsupported: &[&str]) {
        let Some(map) = self.map else { return };
        for (i, k) in map.keys().enumerate() {
            if self.used.has(i) {
                continue;
            }
            let key = scalar_string(k).unwrap_or_else(|| "?".to_string());
            let path = FieldPath::under(self.shared(), Seg::Key(Rc::from(key.as_str())));
            if ctx.schema {
                // Envoy's schema knows the field (it would have said otherwise).
                let message = NOT_IMPLEMENTED.to_string();
                ctx.unread.push(ConfigError { file: ctx.file.clone(), path: path.to_string(), message });
                continue;
            }
            ctx.err(path, "unknown field");
        }
    }
}
