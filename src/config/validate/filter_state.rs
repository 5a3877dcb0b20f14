//! `envoy.extensions.filters.http.set_filter_state.v3.Config`: its `on_request_headers`
//! values, each a text format whose result becomes a string object of the stream's filter
//! state. Of Envoy's object factories legate has the two generic ones, `envoy.string` and
//! `envoy.hashable_string` (the one a route's `hash_policy.filter_state` can hash); a key
//! with neither is refused, as Envoy refuses a key with no factory at all.

use crate::access_log::Format;
use crate::config::filters::{FilterStateValue, HttpFilterKind, SetFilterStateConfig};
use crate::config::reader::{Ctx, Obj};

/// `envoy.extensions.filters.http.set_filter_state.v3.Config`
pub(crate) fn set_filter_state(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<HttpFilterKind> {
    let before = ctx.error_count();
    let values = o.objs(ctx, "on_request_headers").into_iter().filter_map(|v| value(ctx, v)).collect();
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then(|| HttpFilterKind::SetFilterState(Box::new(SetFilterStateConfig { values })))
}

/// `envoy.extensions.filters.common.set_filter_state.v3.FilterStateValue`
fn value(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<FilterStateValue> {
    let before = ctx.error_count();
    let key = o.str(ctx, "object_key").unwrap_or_default();
    if key.is_empty() {
        ctx.err(o.at("object_key"), "must not be empty");
    }
    // Envoy finds the factory by `factory_key`, or by the object's own key when it is unset.
    let factory_at = if o.has("factory_key") { o.at("factory_key") } else { o.at("object_key") };
    let factory = o.str(ctx, "factory_key").filter(|f| !f.is_empty()).unwrap_or_else(|| key.clone());
    let hashable = match factory.as_str() {
        "envoy.hashable_string" => Some(true),
        "envoy.string" => Some(false),
        _ => None,
    };
    if hashable.is_none() && !key.is_empty() {
        ctx.err(
            factory_at,
            format!(
                "'{key}' does not have an object factory legate implements \
                 (factory_key envoy.string or envoy.hashable_string)"
            ),
        );
    }
    // Envoy 1.40 lets a later value replace a read-only one all the same (checked), and no
    // filter of legate's changes filter state in place: nothing for `read_only` to guard.
    let _ = o.bool(ctx, "read_only");
    let skip_if_empty = o.bool(ctx, "skip_if_empty").unwrap_or(false);
    let _ = o.enumv(ctx, "shared_with_upstream", &[("NONE", Some(())), ("ONCE", None), ("TRANSITIVE", None)]);
    let format = match o.obj(ctx, "format_string") {
        Some(f) => format_string(ctx, f),
        None => {
            ctx.err(&o.path, "missing format_string");
            None
        }
    };
    o.finish(ctx, &[]);
    let (format, omit_empty) = format?;
    (ctx.error_count() == before).then(|| FilterStateValue {
        key,
        hashable: hashable.unwrap_or(false),
        format,
        omit_empty,
        skip_if_empty,
    })
}

/// A text `SubstitutionFormatString` (`text_format` or `text_format_source.inline_string`)
/// and its `omit_empty_values`.
fn format_string(ctx: &mut Ctx, mut f: Obj<'_>) -> Option<(String, bool)> {
    for refused in ["json_format", "content_type"] {
        if f.has(refused) {
            let at = f.at(refused);
            f.ignore(&[refused]);
            ctx.err(at, "unsupported field (not implemented by legate for set_filter_state: a text format only)");
        }
    }
    let omit_empty = f.bool(ctx, "omit_empty_values").unwrap_or(false);
    let path = f.path.clone();
    let text = f.str(ctx, "text_format");
    let source = f.obj(ctx, "text_format_source").and_then(|mut s| {
        let v = s.str(ctx, "inline_string");
        if v.is_none() {
            ctx.err(&s.path, "only inline_string is supported");
        }
        s.finish(ctx, &[]);
        v
    });
    f.finish(ctx, &[]);
    let spec = match (text, source) {
        (Some(_), Some(_)) => {
            ctx.err(&path, "only one of text_format, text_format_source may be set");
            return None;
        }
        (Some(s), None) | (None, Some(s)) => s,
        (None, None) => {
            ctx.err(&path, "missing text_format or text_format_source");
            return None;
        }
    };
    if let Err(e) = Format::parse(&spec) {
        ctx.err(&path, e);
        return None;
    }
    Some((spec, omit_empty))
}
