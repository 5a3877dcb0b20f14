//! The support-table pass: walks a parsed message and refuses, at its path, every field that
//! is set and that legate does not implement (`support.rs`), and every `Any` whose type it
//! does not implement. Reports every such field, not only the first.

use prost_reflect::{DynamicMessage, MapKey, ReflectMessage, Value};

use super::support::{self, Field};
use super::{join, message};
use crate::config::reader::{Ctx, NOT_IMPLEMENTED};

const ANY: &str = "google.protobuf.Any";
const FILTER_CONFIG: &str = "envoy.config.route.v3.FilterConfig";
const HTTP_FILTER: &str = "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter";

/// Checks `msg` (at `path`) against the support table.
pub(super) fn walk(ctx: &mut Ctx, msg: &DynamicMessage, path: &str) {
    let desc = msg.descriptor();
    let name = desc.full_name();
    // Well-known types (durations, wrappers, Struct) are values, not configuration.
    if name.starts_with("google.protobuf.") {
        return;
    }
    let entry = support::find(name);
    if name == HTTP_FILTER && !http_filter_implemented(msg) {
        // Envoy skips an optional filter it does not know; so does the validator.
        if is_optional(msg) {
            return;
        }
        let filter = msg.get_field_by_name("name").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        ctx.schema_err(path.to_string(), format!("unsupported HTTP filter {filter}"));
        return;
    }
    for (field, value) in msg.fields() {
        let at = join(path, field.name());
        match entry.map_or(Field::NotImplemented, |e| e.field(field.name())) {
            Field::Honoured => walk_value(ctx, value, &at),
            Field::Inert => {}
            Field::NotImplemented => ctx.schema_err(at, NOT_IMPLEMENTED.to_string()),
        }
    }
}

fn walk_value(ctx: &mut Ctx, value: &Value, path: &str) {
    match value {
        Value::Message(m) if m.descriptor().full_name() == ANY => walk_any(ctx, m, path),
        Value::Message(m) => walk(ctx, m, path),
        Value::List(items) => {
            for (i, v) in items.iter().enumerate() {
                walk_value(ctx, v, &format!("{path}[{i}]"));
            }
        }
        Value::Map(entries) => {
            let mut keys: Vec<(String, &Value)> = entries.iter().map(|(k, v)| (key_text(k), v)).collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in keys {
                walk_value(ctx, v, &join(path, &k));
            }
        }
        _ => {}
    }
}

fn key_text(k: &MapKey) -> String {
    match k {
        MapKey::String(s) => s.clone(),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    }
}

/// The type URL of an `Any` and its payload decoded, when the pool knows the type.
fn unpack(any: &DynamicMessage) -> (String, Option<DynamicMessage>) {
    let url = any.get_field_by_name("type_url").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let inner = message(&url).and_then(|desc| {
        let bytes = any.get_field_by_name("value").and_then(|v| v.as_bytes().cloned()).unwrap_or_default();
        DynamicMessage::decode(desc, bytes).ok()
    });
    (url, inner)
}

fn walk_any(ctx: &mut Ctx, any: &DynamicMessage, path: &str) {
    let (url, inner) = unpack(any);
    // A per-route `FilterConfig` marked optional may carry a type legate does not know: the
    // validator ignores it, as Envoy does.
    if let Some(m) = &inner {
        if m.descriptor().full_name() == FILTER_CONFIG && is_optional(m) {
            return;
        }
    }
    match inner {
        Some(m) if support::find(m.descriptor().full_name()).is_some() => walk(ctx, &m, path),
        _ => ctx.schema_err(path.to_string(), format!("unsupported extension {url}")),
    }
}

/// Whether an HTTP filter's `typed_config` is of a type legate implements (an absent one is
/// left to the validator).
fn http_filter_implemented(filter: &DynamicMessage) -> bool {
    let Some(v) = filter.get_field_by_name("typed_config") else { return true };
    let Value::Message(any) = v.as_ref() else { return true };
    if !filter.has_field_by_name("typed_config") {
        return true;
    }
    let (_, inner) = unpack(any);
    inner.is_some_and(|m| support::find(m.descriptor().full_name()).is_some())
}

/// `is_optional: true` on an HTTP filter or a per-route `FilterConfig`.
fn is_optional(msg: &DynamicMessage) -> bool {
    msg.get_field_by_name("is_optional").and_then(|v| v.as_bool()).unwrap_or(false)
}
