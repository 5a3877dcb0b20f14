//! Route matching: `match` (path specifier, `case_sensitive`, headers, query parameters) and
//! the string matchers they use. Regexes are compiled anchored, as full matches.

use crate::config::model::{
    HeaderMatchKind, HeaderMatcher, PathMatch, QueryParameterMatcher, RouteMatch, StringMatch, StringMatcher,
    TlsContextMatch,
};
use crate::config::reader::{Ctx, Obj};

use super::common::regex_matcher;

pub(crate) fn route_match(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RouteMatch> {
    let before = ctx.error_count();
    let mut specs: Vec<PathMatch> = Vec::new();
    if let Some(p) = o.str(ctx, "prefix") {
        specs.push(PathMatch::Prefix(p));
    }
    if let Some(p) = o.str(ctx, "path") {
        specs.push(PathMatch::Path(p));
    }
    if let Some(r) = o.obj(ctx, "safe_regex").and_then(|r| regex_matcher(ctx, r, true)) {
        specs.push(PathMatch::Regex(r));
    }
    if let Some(p) = o.str(ctx, "path_separated_prefix") {
        if p.contains(['?', '#']) || p.ends_with('/') {
            ctx.err(o.at("path_separated_prefix"), "must not contain ? or # nor end with /");
        }
        specs.push(PathMatch::PathSeparatedPrefix(p));
    }
    let case_sensitive = o.bool(ctx, "case_sensitive").unwrap_or(true);
    let headers = o.objs(ctx, "headers").into_iter().filter_map(|h| header_matcher(ctx, h)).collect();
    let query_parameters = o.objs(ctx, "query_parameters").into_iter().filter_map(|q| query_matcher(ctx, q)).collect();
    // `GrpcRouteMatchOptions` has no fields.
    let grpc = o.obj(ctx, "grpc").map(|g| g.finish(ctx, &[])).is_some();
    let tls_context = o.obj(ctx, "tls_context").map(|mut t| {
        let presented = t.bool(ctx, "presented");
        let validated = t.bool(ctx, "validated");
        t.finish(ctx, &[]);
        TlsContextMatch { presented, validated }
    });
    let runtime_fraction = super::cors_csrf::runtime_fraction(ctx, &mut o, "runtime_fraction");
    let path = o.path.clone();
    // A path specifier legate does not implement is refused by the support table.
    let unsupported_spec = o.has_unread();
    o.finish(ctx, &[]);
    if specs.len() > 1 {
        ctx.err(&path, "only one of prefix, path, safe_regex, path_separated_prefix may be set");
    }
    if specs.is_empty() && !unsupported_spec && ctx.error_count() == before {
        ctx.err(&path, "missing path specifier (prefix, path, safe_regex or path_separated_prefix)");
    }
    let path_match = specs.pop()?;
    if ctx.error_count() > before {
        return None;
    }
    Some(RouteMatch {
        path: path_match,
        case_sensitive,
        headers,
        query_parameters,
        grpc,
        tls_context,
        runtime_fraction,
    })
}

/// A `StringMatcher` message.
pub(crate) fn string_matcher(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<StringMatcher> {
    let mut kinds = Vec::new();
    for (field, make) in [
        ("exact", StringMatch::Exact as fn(String) -> StringMatch),
        ("prefix", StringMatch::Prefix),
        ("suffix", StringMatch::Suffix),
        ("contains", StringMatch::Contains),
    ] {
        if let Some(s) = o.str(ctx, field) {
            if field != "exact" && s.is_empty() {
                ctx.err(o.at(field), "must not be empty");
            }
            kinds.push(make(s));
        }
    }
    let regex_path = o.at("safe_regex");
    if let Some(r) = o.obj(ctx, "safe_regex").and_then(|r| regex_matcher(ctx, r, true)) {
        kinds.push(StringMatch::Regex(r));
    }
    let ignore_case = o.bool(ctx, "ignore_case").unwrap_or(false);
    let path = o.path.clone();
    let had_regex = o.has("safe_regex");
    o.finish(ctx, &[]);
    if kinds.len() > 1 {
        ctx.err(&path, "only one of exact, prefix, suffix, contains, safe_regex may be set");
    }
    if kinds.is_empty() && !had_regex {
        ctx.err(&path, "missing match pattern (exact, prefix, suffix, contains or safe_regex)");
    }
    if ignore_case && matches!(kinds.last(), Some(StringMatch::Regex(_))) {
        ctx.err(&regex_path, "ignore_case has no effect on safe_regex");
    }
    Some(StringMatcher { kind: kinds.pop()?, ignore_case })
}

pub(crate) fn header_matcher(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<HeaderMatcher> {
    let before = ctx.error_count();
    let name = o.str(ctx, "name");
    let invert_match = o.bool(ctx, "invert_match").unwrap_or(false);
    let mut kinds = Vec::new();
    if let Some(sm) = o.obj(ctx, "string_match").and_then(|s| string_matcher(ctx, s)) {
        kinds.push(HeaderMatchKind::String(sm));
    }
    if let Some(p) = o.bool(ctx, "present_match") {
        kinds.push(HeaderMatchKind::Present(p));
    }
    for (field, make) in [
        ("exact_match", StringMatch::Exact as fn(String) -> StringMatch),
        ("prefix_match", StringMatch::Prefix),
        ("suffix_match", StringMatch::Suffix),
        ("contains_match", StringMatch::Contains),
    ] {
        if let Some(s) = o.str(ctx, field) {
            kinds.push(HeaderMatchKind::String(StringMatcher { kind: make(s), ignore_case: false }));
        }
    }
    if let Some(r) = o.obj(ctx, "safe_regex_match").and_then(|r| regex_matcher(ctx, r, true)) {
        kinds.push(HeaderMatchKind::String(StringMatcher { kind: StringMatch::Regex(r), ignore_case: false }));
    }
    if let Some(mut r) = o.obj(ctx, "range_match") {
        // Envoy takes any range; one with `start >= end` matches no value.
        let start = int64(ctx, &mut r, "start");
        let end = int64(ctx, &mut r, "end");
        r.finish(ctx, &[]);
        kinds.push(HeaderMatchKind::Range { start, end });
    }
    let treat_missing_as_empty = o.bool(ctx, "treat_missing_header_as_empty").unwrap_or(false);
    let path = o.path.clone();
    o.finish(ctx, &[]);
    if kinds.len() > 1 {
        ctx.err(&path, "only one header match specifier may be set");
    }
    let Some(name) = name else {
        ctx.err(format!("{path}.name"), "missing name");
        return None;
    };
    if ctx.error_count() > before {
        return None;
    }
    // No specifier: the header must be present.
    let kind = kinds.pop().unwrap_or(HeaderMatchKind::Present(true));
    Some(HeaderMatcher { name: name.to_ascii_lowercase(), kind, invert_match, treat_missing_as_empty })
}

/// An `int64` field (a JSON number or, as protobuf's JSON mapping writes it, a string); 0
/// when unset.
fn int64(ctx: &mut Ctx, o: &mut Obj<'_>, name: &'static str) -> i64 {
    let Some((v, path)) = o.get(name) else { return 0 };
    let n = match v {
        serde_yaml::Value::Number(n) => n.as_i64(),
        serde_yaml::Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.unwrap_or_else(|| {
        ctx.err(path, "expected a 64-bit integer");
        0
    })
}

fn query_matcher(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<QueryParameterMatcher> {
    let before = ctx.error_count();
    let name = o.str(ctx, "name");
    let string_match = o.obj(ctx, "string_match").and_then(|s| string_matcher(ctx, s));
    let present = o.bool(ctx, "present_match");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    if string_match.is_some() && present.is_some() {
        ctx.err(&path, "only one of string_match, present_match may be set");
    }
    if present == Some(false) {
        ctx.err(format!("{path}.present_match"), "present_match: false is not supported");
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        ctx.err(format!("{path}.name"), "missing name");
        return None;
    };
    if ctx.error_count() > before {
        return None;
    }
    Some(QueryParameterMatcher { name, string_match })
}
