//! The RBAC filter's `matcher` / `shadow_matcher`: `xds.type.matcher.v3.Matcher` with the
//! inputs, input matchers and actions legate implements; any other input, custom matcher or
//! action type is refused at its path, naming it.

use crate::config::model::{
    InputMatcher, MatchInput, MatcherKind, OnMatch, Predicate, RbacAction, RbacMatchAction, XdsMatcher,
};
use crate::config::reader::{Ctx, Obj};

use super::matcher::string_matcher;

const HEADER_INPUT: &str = "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput";
const NETWORK_INPUTS: &str = "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.";
const IP_MATCHER: &str = "type.googleapis.com/envoy.extensions.matching.input_matchers.ip.v3.Ip";
const RBAC_ACTION: &str = "type.googleapis.com/envoy.config.rbac.v3.Action";

/// How deep matchers may nest (Envoy bounds recursion too; a config this deep is a mistake).
const MAX_DEPTH: usize = 16;

/// `xds.type.matcher.v3.Matcher`
pub(crate) fn matcher(ctx: &mut Ctx, o: Obj<'_>) -> Option<XdsMatcher> {
    read_matcher(ctx, o, 0)
}

fn read_matcher(ctx: &mut Ctx, mut o: Obj<'_>, depth: usize) -> Option<XdsMatcher> {
    let before = ctx.error_count();
    if depth > MAX_DEPTH {
        ctx.err(&o.path, format!("matchers nest deeper than {MAX_DEPTH}"));
        return None;
    }
    let mut kinds = Vec::new();
    if let Some(mut list) = o.obj(ctx, "matcher_list") {
        let mut matchers = Vec::new();
        for mut fm in list.objs(ctx, "matchers") {
            let predicate = fm.obj(ctx, "predicate").and_then(|p| predicate(ctx, p, depth));
            let on_match = fm.obj(ctx, "on_match").and_then(|m| on_match(ctx, m, depth));
            let path = fm.path.clone();
            fm.finish(ctx, &[]);
            match (predicate, on_match) {
                (Some(p), Some(m)) => matchers.push((p, m)),
                (None, _) if ctx.error_count() <= before => ctx.err(format!("{path}.predicate"), "missing predicate"),
                (_, None) if ctx.error_count() <= before => ctx.err(format!("{path}.on_match"), "missing on_match"),
                _ => {}
            }
        }
        list.finish(ctx, &[]);
        kinds.push(MatcherKind::List(matchers));
    }
    if let Some(mut tree) = o.obj(ctx, "matcher_tree") {
        let input = tree.obj(ctx, "input").and_then(|i| match_input(ctx, i));
        let read_map = |ctx: &mut Ctx, tree: &mut Obj<'_>, field: &'static str| {
            tree.obj(ctx, field).map(|mut m| {
                let mut out = Vec::new();
                for (key, v, path) in m.entries(ctx, "map") {
                    if let Some(om) = Obj::new(ctx, v, path).and_then(|om| on_match(ctx, om, depth)) {
                        out.push((key, om));
                    }
                }
                m.finish(ctx, &[]);
                out
            })
        };
        let exact = read_map(ctx, &mut tree, "exact_match_map");
        let prefix = read_map(ctx, &mut tree, "prefix_match_map");
        let path = tree.path.clone();
        tree.finish(ctx, &[]);
        match (input, exact, prefix) {
            (Some(i), Some(e), None) => kinds.push(MatcherKind::Exact(i, e)),
            (Some(i), None, Some(mut p)) => {
                p.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
                kinds.push(MatcherKind::Prefix(i, p));
            }
            (_, Some(_), Some(_)) => ctx.err(&path, "only one of exact_match_map, prefix_match_map may be set"),
            (_, None, None) => ctx.err(&path, "one of exact_match_map, prefix_match_map is required"),
            (None, _, _) => {
                if ctx.error_count() <= before {
                    ctx.err(format!("{path}.input"), "missing input");
                }
            }
        }
    }
    let on_no_match = o.obj(ctx, "on_no_match").and_then(|m| on_match(ctx, m, depth));
    let path = o.path.clone();
    o.finish(ctx, &[]);
    if kinds.len() > 1 {
        ctx.err(&path, "only one of matcher_list, matcher_tree may be set");
    }
    if ctx.error_count() > before {
        return None;
    }
    Some(XdsMatcher { kind: kinds.pop(), on_no_match })
}

/// `xds.type.matcher.v3.Matcher.OnMatch`
fn on_match(ctx: &mut Ctx, mut o: Obj<'_>, depth: usize) -> Option<OnMatch> {
    let nested = o.obj(ctx, "matcher").and_then(|m| read_matcher(ctx, m, depth + 1));
    let action = o.obj(ctx, "action").and_then(|a| action(ctx, a));
    let path = o.path.clone();
    o.finish(ctx, &[]);
    match (nested, action) {
        (Some(m), None) => Some(OnMatch::Matcher(Box::new(m))),
        (None, Some(a)) => Some(OnMatch::Action(a)),
        (Some(_), Some(_)) => {
            ctx.err(&path, "only one of matcher, action may be set");
            None
        }
        (None, None) => None,
    }
}

/// An `action` (`xds.core.v3.TypedExtensionConfig`) holding an `envoy.config.rbac.v3.Action`.
fn action(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RbacMatchAction> {
    let _ = o.str(ctx, "name");
    let typed = o.obj(ctx, "typed_config");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let Some(mut t) = typed else {
        ctx.err(format!("{path}.typed_config"), "missing typed_config");
        return None;
    };
    let ty = t.str(ctx, "@type").unwrap_or_default();
    if ty != RBAC_ACTION {
        ctx.err(&t.path, format!("unsupported matcher action {ty} (only envoy.config.rbac.v3.Action)"));
        return None;
    }
    let name = t.str(ctx, "name").unwrap_or_default();
    let action = t
        .enumv(
            ctx,
            "action",
            &[("ALLOW", Some(RbacAction::Allow)), ("DENY", Some(RbacAction::Deny)), ("LOG", Some(RbacAction::Log))],
        )
        .unwrap_or(RbacAction::Allow);
    t.finish(ctx, &[]);
    Some(RbacMatchAction { name, action })
}

/// `xds.type.matcher.v3.Matcher.MatcherList.Predicate`
fn predicate(ctx: &mut Ctx, mut o: Obj<'_>, depth: usize) -> Option<Predicate> {
    if depth > MAX_DEPTH {
        ctx.err(&o.path, format!("predicates nest deeper than {MAX_DEPTH}"));
        return None;
    }
    let mut found = Vec::new();
    if let Some(mut s) = o.obj(ctx, "single_predicate") {
        let input = s.obj(ctx, "input").and_then(|i| match_input(ctx, i));
        let value = s.obj(ctx, "value_match").and_then(|v| string_matcher(ctx, v)).map(InputMatcher::String);
        let custom = s.obj(ctx, "custom_match").and_then(|c| custom_match(ctx, c));
        let path = s.path.clone();
        s.finish(ctx, &[]);
        match (input, value.or(custom)) {
            (Some(i), Some(m)) => found.push(Predicate::Single(i, m)),
            (None, _) => {}
            (Some(_), None) => ctx.err(&path, "one of value_match, custom_match is required"),
        }
    }
    for (field, make) in
        [("or_matcher", Predicate::Or as fn(Vec<Predicate>) -> Predicate), ("and_matcher", Predicate::And)]
    {
        if let Some(mut l) = o.obj(ctx, field) {
            let items: Vec<Predicate> =
                l.objs(ctx, "predicate").into_iter().filter_map(|p| predicate(ctx, p, depth + 1)).collect();
            l.finish(ctx, &[]);
            found.push(make(items));
        }
    }
    if let Some(n) = o.obj(ctx, "not_matcher") {
        found.extend(predicate(ctx, n, depth + 1).map(|p| Predicate::Not(Box::new(p))));
    }
    let path = o.path.clone();
    o.finish(ctx, &[]);
    match found.len() {
        1 => found.pop(),
        0 => None,
        _ => {
            ctx.err(&path, "only one of single_predicate, or_matcher, and_matcher, not_matcher may be set");
            None
        }
    }
}

/// An input (`xds.core.v3.TypedExtensionConfig`) legate can read.
fn match_input(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<MatchInput> {
    let _ = o.str(ctx, "name");
    let typed = o.obj(ctx, "typed_config");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let Some(mut t) = typed else {
        ctx.err(format!("{path}.typed_config"), "missing typed_config");
        return None;
    };
    let ty = t.str(ctx, "@type").unwrap_or_default();
    let input = if ty == HEADER_INPUT {
        let name = t.str(ctx, "header_name").unwrap_or_default().to_ascii_lowercase();
        if name.is_empty() {
            ctx.err(t.at("header_name"), "must not be empty");
        }
        Some(MatchInput::RequestHeader(name))
    } else {
        match ty.strip_prefix(NETWORK_INPUTS) {
            Some("SourceIPInput") => Some(MatchInput::SourceIp),
            Some("DirectSourceIPInput") => Some(MatchInput::DirectSourceIp),
            Some("DestinationIPInput") => Some(MatchInput::DestinationIp),
            Some("DestinationPortInput") => Some(MatchInput::DestinationPort),
            Some("SourcePortInput") => Some(MatchInput::SourcePort),
            Some("ServerNameInput") => Some(MatchInput::ServerName),
            _ => None,
        }
    };
    if input.is_none() {
        ctx.err(&t.path, format!("unsupported matching input {ty}"));
    }
    t.finish(ctx, &[]);
    input
}

/// `custom_match`: only `envoy.extensions.matching.input_matchers.ip.v3.Ip`.
fn custom_match(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<InputMatcher> {
    let _ = o.str(ctx, "name");
    let typed = o.obj(ctx, "typed_config");
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let Some(mut t) = typed else {
        ctx.err(format!("{path}.typed_config"), "missing typed_config");
        return None;
    };
    let ty = t.str(ctx, "@type").unwrap_or_default();
    if ty != IP_MATCHER {
        ctx.err(&t.path, format!("unsupported input matcher {ty}"));
        return None;
    }
    let ranges: Vec<_> = t.objs(ctx, "cidr_ranges").into_iter().filter_map(|c| super::rbac::cidr(ctx, c)).collect();
    let _ = t.str(ctx, "stat_prefix");
    let at = t.at("cidr_ranges");
    t.finish(ctx, &[]);
    if ranges.is_empty() {
        ctx.err(at, "at least one CIDR range is required");
        return None;
    }
    Some(InputMatcher::Ip(ranges))
}
