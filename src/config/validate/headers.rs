//! Header mutations (`request_headers_to_add`, `..._to_remove`, `response_...`) shared by route
//! configurations, virtual hosts, routes and weighted clusters.

use http::HeaderName;

use crate::config::model::{AppendAction, HeaderOps, HeaderValueOption};
use crate::config::reader::{Ctx, Obj};

/// Reads the four header-mutation fields of a message.
pub(crate) fn header_ops(ctx: &mut Ctx, o: &mut Obj<'_>) -> HeaderOps {
    HeaderOps {
        request_headers_to_add: to_add(ctx, o, "request_headers_to_add"),
        request_headers_to_remove: to_remove(ctx, o, "request_headers_to_remove"),
        response_headers_to_add: to_add(ctx, o, "response_headers_to_add"),
        response_headers_to_remove: to_remove(ctx, o, "response_headers_to_remove"),
    }
}

/// A lowercased, valid, non-pseudo header name.
fn header_name(ctx: &mut Ctx, name: &str, path: impl std::fmt::Display) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with(':') || lower == "host" {
        ctx.err(path, format!("invalid header \"{name}\": pseudo-headers and host cannot be modified"));
        return None;
    }
    if HeaderName::from_bytes(lower.as_bytes()).is_err() {
        ctx.err(path, format!("invalid header name \"{name}\""));
        return None;
    }
    Some(lower)
}

fn to_remove(ctx: &mut Ctx, o: &mut Obj<'_>, field: &'static str) -> Vec<String> {
    let names = o.strs(ctx, field);
    if names.is_empty() {
        return names;
    }
    let path = o.at(field);
    names.iter().enumerate().filter_map(|(i, n)| header_name(ctx, n, path.index(i))).collect()
}

pub(crate) fn to_add(ctx: &mut Ctx, o: &mut Obj<'_>, field: &'static str) -> Vec<HeaderValueOption> {
    o.objs(ctx, field).into_iter().filter_map(|hvo| header_value_option(ctx, hvo)).collect()
}

fn header_value_option(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<HeaderValueOption> {
    let header = o.obj(ctx, "header");
    let append = o.bool(ctx, "append");
    let action = o.enumv(
        ctx,
        "append_action",
        &[
            ("APPEND_IF_EXISTS_OR_ADD", Some(AppendAction::Append)),
            ("ADD_IF_ABSENT", Some(AppendAction::AddIfAbsent)),
            ("OVERWRITE_IF_EXISTS_OR_ADD", Some(AppendAction::OverwriteOrAdd)),
            ("OVERWRITE_IF_EXISTS", Some(AppendAction::OverwriteIfExists)),
        ],
    );
    let keep_empty_value = o.bool(ctx, "keep_empty_value").unwrap_or(false);
    if append.is_some() && o.has("append_action") {
        ctx.err(o.at("append"), "append and append_action are mutually exclusive");
    }
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let Some(mut header) = header else {
        ctx.err(format!("{path}.header"), "missing header");
        return None;
    };
    let key = header.str(ctx, "key");
    let value = header.str(ctx, "value").unwrap_or_default();
    // An Envoy format string: an unknown or malformed operator fails here, naming the field.
    if let Err(e) = crate::routing::header_ops::header_text(&value) {
        ctx.err(header.at("value"), e);
    }
    let key_path = header.at("key");
    header.finish(ctx, &[]);
    let Some(key) = key else {
        ctx.err(&key_path, "missing key");
        return None;
    };
    let key = header_name(ctx, &key, &key_path)?;
    let action = match (append, action) {
        (_, Some(a)) => a,
        (Some(false), None) => AppendAction::OverwriteOrAdd,
        _ => AppendAction::Append,
    };
    Some(HeaderValueOption { key, value, action, keep_empty_value })
}
