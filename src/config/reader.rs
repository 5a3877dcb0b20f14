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

use std::any::Any;
use std::cell::OnceCell;
use std::fmt;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::duration::parse_duration;
use super::error::ConfigError;

/// Where errors of one load go, and what it may reuse of the last load of the same file.
pub(crate) struct Ctx {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
    /// The long list of the document (`docs.rs`), by the address of its items; 0 for none.
    pub memo_list: usize,
    /// The last document's validated items of that list, and which items are the same.
    pub memo_in: Option<(Splice, ListMemo)>,
    /// This document's validated items of that list, for the next load.
    pub memo_out: Option<ListMemo>,
    /// Files read while validating (`DataSource.filename`): what read one is not memoized,
    /// the file may change without the configuration changing.
    pub file_reads: usize,
    /// Items taken from `memo_in` (for tests).
    pub reused: usize,
    /// Discovery files only: an enum name Envoy does not know either becomes a warning and
    /// the field's default, as Envoy treats a dynamic resource it cannot fully parse.
    pub lenient_enums: bool,
    /// What was tolerated under `lenient_enums`: logged and counted by the caller
    /// (`server.dynamic_unknown_fields`).
    pub warnings: Vec<ConfigError>,
    /// The schema pass (`config::schema`) checked this document: a field nobody read is then
    /// one Envoy knows and legate does not implement, and goes to `unread`.
    pub schema: bool,
    /// Errors of the schema pass, merged into `errors` by `schema::merge`.
    pub schema_errors: Vec<ConfigError>,
    /// Fields nobody read, when `schema` is on (see `schema::merge`).
    pub unread: Vec<ConfigError>,
    /// The long list's items were checked against the schema one by one (`objs_memo`), so the
    /// check of the resource around them leaves the list out.
    pub memo_checked: bool,
}

impl Ctx {
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Ctx {
            file: file.into(),
            errors: Vec::new(),
            memo_list: 0,
            memo_in: None,
            memo_out: None,
            file_reads: 0,
            reused: 0,
            lenient_enums: false,
            warnings: Vec::new(),
            schema: false,
            schema_errors: Vec::new(),
            unread: Vec::new(),
            memo_checked: false,
        }
    }

    /// Records an error of the schema pass.
    pub fn schema_err(&mut self, path: String, message: String) {
        self.schema_errors.push(ConfigError { file: self.file.clone(), path, message });
    }

    /// Every problem recorded so far, of the validators and of the schema pass: what tells
    /// whether reading something found one.
    pub fn problem_count(&self) -> usize {
        self.errors.len() + self.schema_errors.len() + self.unread.len()
    }

    /// Records an error at `path` (anything that renders as a field path: a [`FieldPath`],
    /// a `String` built for the occasion, a literal).
    pub fn err(&mut self, path: impl fmt::Display, message: impl Into<String>) {
        self.errors.push(ConfigError { file: self.file.clone(), path: path.to_string(), message: message.into() });
    }

    pub fn error_count(&self) -> usize {
        self.errors.len()
    }
}

/// The dotted field path of a message or field (`resources[0].virtual_hosts[0].routes[7]`),
/// rendered only when an error is reported. Building one is a copy of its parent's `Rc` and a
/// segment, no formatting: a 10,000-route file builds a path for every message it reads,
/// and renders the few that are wrong.
#[derive(Clone, Default)]
pub(crate) struct FieldPath {
    parent: Option<Rc<FieldPath>>,
    last: Seg,
}

#[derive(Clone, Default)]
enum Seg {
    /// The document itself: the empty path.
    #[default]
    Root,
    /// A field, by the name the validator asked for (`per_try_timeout` also when the file
    /// wrote `perTryTimeout`).
    Field(&'static str),
    /// A key of a map-typed field, as written.
    Key(Rc<str>),
    Index(usize),
}

impl FieldPath {
    /// The path of the document (renders as the empty string).
    pub fn root() -> FieldPath {
        FieldPath::default()
    }

    /// A top-level field (`resources`, `static_resources`).
    #[cfg(test)]
    pub fn top(name: &'static str) -> FieldPath {
        FieldPath { parent: None, last: Seg::Field(name) }
    }

    fn under(parent: &Rc<FieldPath>, last: Seg) -> FieldPath {
        FieldPath { parent: Some(Rc::clone(parent)), last }
    }

    /// `self[i]` (a list's path is shared by its items: see [`Obj::list`]).
    pub fn index(&self, i: usize) -> FieldPath {
        FieldPath::under(&Rc::new(self.clone()), Seg::Index(i))
    }

    /// `self.name`
    #[cfg(test)]
    pub fn field(&self, name: &'static str) -> FieldPath {
        FieldPath::under(&Rc::new(self.clone()), Seg::Field(name))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = match &self.parent {
            Some(p) => {
                fmt::Display::fmt(p, f)?;
                matches!(p.last, Seg::Root)
            }
            None => true,
        };
        match &self.last {
            Seg::Root => Ok(()),
            Seg::Field(name) if root => f.write_str(name),
            Seg::Key(name) if root => f.write_str(name),
            Seg::Field(name) => write!(f, ".{name}"),
            Seg::Key(name) => write!(f, ".{name}"),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

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

/// How the long list of a document parsed in pieces relates to the last document's: its items
/// `[0, head)` and `[len - tail, len)` have the text, and so the value, of the last document's
/// items `[0, head)` and `[old_len - tail, old_len)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Splice {
    /// The address of the list's items in the new document.
    pub list: usize,
    pub len: usize,
    pub head: usize,
    pub tail: usize,
    pub old_len: usize,
}

impl Splice {
    /// The last document's index of item `i`, when it is one of the unchanged ones.
    fn old_index(&self, i: usize) -> Option<usize> {
        if i < self.head {
            Some(i)
        } else if i >= self.len - self.tail && i < self.len {
            Some(self.old_len - (self.len - i))
        } else {
            None
        }
    }
}

/// What one validator made of each item of a long list: `None` for an item that had errors or
/// read a file. Valid for the same validator (`site`) in the same `context` only.
pub(crate) struct ListMemo {
    site: &'static str,
    context: u64,
    /// `Vec<Option<T>>` of the validator's `T`.
    items: Box<dyn Any + Send + Sync>,
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

    /// Whether the field is present and not null.
    pub fn has(&self, name: &str) -> bool {
        matches!(self.lookup(name), Some((_, v)) if !v.is_null())
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

    /// A repeated message field, each item read by `each` into a `T` (items it returns `None`
    /// for are left out), like [`Obj::objs`] then `filter_map`. When the list is the long list
    /// of a document parsed in pieces, items unchanged since the last load are not read again:
    /// their `T` is the one `each` made then (`site` and `context` say which validator in which
    /// setting; anything else `each` depends on must be in the item). Errors are reported as
    /// without the memo: an item with errors is never memoized, and so always read again.
    pub fn objs_memo<T: Clone + Send + Sync + 'static>(
        &mut self,
        ctx: &mut Ctx,
        name: &'static str,
        site: &'static str,
        context: u64,
        mut each: impl FnMut(&mut Ctx, Obj<'v>) -> Option<T>,
    ) -> Vec<T> {
        let Some(v) = self.take(name) else {
            return Vec::new();
        };
        let list = Rc::new(self.at(name));
        let (items, long) = match v {
            Value::Sequence(items) => {
                (items.as_slice(), ctx.memo_list != 0 && items.as_ptr() as usize == ctx.memo_list)
            }
            // Like protobuf's JSON parser (and so Envoy), a single value stands for a list of one.
            single => (std::slice::from_ref(single), false),
        };
        let mut old: Option<(Splice, Vec<Option<T>>)> = None;
        if long {
            if let Some((splice, memo)) = ctx.memo_in.take() {
                if splice.list == ctx.memo_list
                    && splice.len == items.len()
                    && memo.site == site
                    && memo.context == context
                {
                    if let Ok(values) = memo.items.downcast::<Vec<Option<T>>>() {
                        old = Some((splice, *values)).filter(|(s, v)| v.len() == s.old_len);
                    }
                }
            }
        }
        // Messages first, then their contents, as `objs` + `filter_map` report errors.
        let mut slots: Vec<(Option<T>, Option<Obj<'v>>)> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let reused =
                old.as_mut().and_then(|(splice, values)| splice.old_index(i).and_then(|j| values.get_mut(j)?.take()));
            slots.push(match reused {
                Some(t) => {
                    ctx.reused += 1;
                    (Some(t), None)
                }
                None => (None, Obj::new(ctx, item, FieldPath::under(&list, Seg::Index(i)))),
            });
        }
        let mut out = Vec::with_capacity(items.len());
        let mut memo = long.then(|| Vec::with_capacity(items.len()));
        let schema_item = if long && ctx.schema { crate::config::schema::item_message(site) } else { None };
        if schema_item.is_some() {
            ctx.memo_checked = true;
        }
        for (i, slot) in slots.into_iter().enumerate() {
            let result = match slot {
                (Some(t), _) => Some(t),
                (None, Some(o)) => {
                    let (errors, reads, warnings) = (ctx.problem_count(), ctx.file_reads, ctx.warnings.len());
                    if let Some(message) = schema_item {
                        crate::config::schema::check(ctx, &items[i], message, &o.path.to_string(), 0);
                    }
                    let t = each(ctx, o);
                    // An item that warned is read again next time, so its warning is too.
                    if ctx.problem_count() != errors || ctx.file_reads != reads || ctx.warnings.len() != warnings {
                        if let Some(m) = &mut memo {
                            m.push(None);
                        }
                        if let Some(t) = t {
                            out.push(t);
                        }
                        continue;
                    }
                    t
                }
                (None, None) => None,
            };
            if let Some(m) = &mut memo {
                m.push(result.clone());
            }
            if let Some(t) = result {
                out.push(t);
            }
        }
        if let Some(items) = memo {
            ctx.memo_out = Some(ListMemo { site, context, items: Box::new(items) });
        }
        out
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
                ctx.err(self.at(name), format!("unknown value \"{s}\""));
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
    /// has usually said so already). Without it (the reader's own tests), names in
    /// `unsupported` are Envoy fields legate does not implement and anything else is unknown:
    /// the lists still passed by `validate/listener.rs` and `validate/hcm.rs` are unused.
    pub fn finish(self, ctx: &mut Ctx, unsupported: &[&str]) {
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
            let known = unsupported.iter().any(|u| *u == key || is_camel_of(&key, u));
            let msg = if known { "unsupported field (not implemented by legate)" } else { "unknown field" };
            ctx.err(path, msg);
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
        let Some(mut o) = Obj::new(&mut ctx, &v, FieldPath::top("c")) else { panic!("not an object") };
        assert_eq!(o.str(&mut ctx, "name").as_deref(), Some("x"));
        assert_eq!(o.u32(&mut ctx, "port_value"), Some(80));
        assert_eq!(o.enumv(&mut ctx, "lb_policy", &[("ROUND_ROBIN", Some(1)), ("MAGLEV", None)]), Some(1));
        o.finish(&mut ctx, &["health_checks"]);
        let msgs: Vec<_> = ctx.errors.iter().map(|e| format!("{}: {}", e.path, e.message)).collect();
        assert_eq!(msgs, ["c.extra: unknown field", "c.health_checks: unsupported field (not implemented by legate)"]);
    }

    #[test]
    fn paths_render_like_envoy_field_paths() {
        let resources = FieldPath::top("resources");
        let route = resources.index(0).field("virtual_hosts").index(2).field("routes").index(7);
        assert_eq!(route.to_string(), "resources[0].virtual_hosts[2].routes[7]");
        assert_eq!(FieldPath::root().to_string(), "");
        assert_eq!(FieldPath::root().index(3).to_string(), "[3]");
        assert_eq!(FieldPath::root().field("admin").to_string(), "admin");
        let v = yaml("{m: {k.x: 1}, o: {a: 1}}");
        let mut ctx = Ctx::new("f");
        let Some(mut o) = Obj::new(&mut ctx, &v, FieldPath::root()) else { panic!("not an object") };
        let entries = o.entries(&mut ctx, "m");
        assert_eq!(entries[0].2.to_string(), "m.k.x");
        let Some(inner) = o.obj(&mut ctx, "o") else { panic!("no o") };
        inner.finish(&mut ctx, &[]);
        assert_eq!(ctx.errors[0].path, "o.a");
    }

    #[test]
    fn enum_errors() {
        let v = yaml("{a: round_robbin, b: maglev}");
        let mut ctx = Ctx::new("f");
        let Some(mut o) = Obj::new(&mut ctx, &v, FieldPath::root()) else { panic!("not an object") };
        let t = [("ROUND_ROBIN", Some(1)), ("MAGLEV", None)];
        assert_eq!(o.enumv(&mut ctx, "a", &t), None);
        assert_eq!(o.enumv(&mut ctx, "b", &t), None);
        assert_eq!(ctx.errors[0].message, "unknown value \"round_robbin\"");
        assert_eq!(ctx.errors[1].message, "unsupported value \"maglev\"");
    }

    #[test]
    fn lenient_enums_warn_on_unknown_names_only() {
        let v = yaml("{a: no_such, b: maglev}");
        let mut ctx = Ctx::new("f");
        ctx.lenient_enums = true;
        let Some(mut o) = Obj::new(&mut ctx, &v, FieldPath::top("o")) else { panic!("not an object") };
        let table = [("ROUND_ROBIN", Some(1)), ("MAGLEV", None)];
        assert_eq!(o.enumv(&mut ctx, "a", &table), None);
        assert_eq!(o.enumv(&mut ctx, "b", &table), None);
        assert_eq!(ctx.warnings.len(), 1, "{:?}", ctx.warnings);
        assert_eq!(ctx.warnings[0].path, "o.a");
        assert_eq!(ctx.errors.len(), 1, "{:?}", ctx.errors);
        assert_eq!(ctx.errors[0].message, "unsupported value \"maglev\"");
    }
}
