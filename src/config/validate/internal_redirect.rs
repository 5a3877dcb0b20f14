//! `RouteAction.internal_redirect_policy` and the deprecated `internal_redirect_action` /
//! `max_internal_redirects` it replaced (Envoy 1.40 still honours them, with a warning).

use crate::config::model::{InternalRedirectPolicy, RedirectPredicate};
use crate::config::reader::{Ctx, Obj};

use super::common;

const ALLOW_LISTED: &str =
    "type.googleapis.com/envoy.extensions.internal_redirect.allow_listed_routes.v3.AllowListedRoutesConfig";
const PREVIOUS_ROUTES: &str =
    "type.googleapis.com/envoy.extensions.internal_redirect.previous_routes.v3.PreviousRoutesConfig";
const SAFE_CROSS_SCHEME: &str =
    "type.googleapis.com/envoy.extensions.internal_redirect.safe_cross_scheme.v3.SafeCrossSchemeConfig";

/// The codes Envoy follows; any other listed code is dropped without a word, as Envoy does.
const REDIRECT_CODES: [u16; 5] = [301, 302, 303, 307, 308];

/// The route action's policy: `internal_redirect_policy` when set (the deprecated fields are
/// then read and ignored, as in Envoy), else the deprecated pair.
pub(crate) fn route_policy(ctx: &mut Ctx, o: &mut Obj<'_>) -> Option<InternalRedirectPolicy> {
    let policy = o.obj(ctx, "internal_redirect_policy").and_then(|p| policy(ctx, p));
    let handle = o
        .enumv(
            ctx,
            "internal_redirect_action",
            &[("PASS_THROUGH_INTERNAL_REDIRECT", Some(false)), ("HANDLE_INTERNAL_REDIRECT", Some(true))],
        )
        .unwrap_or(false);
    let max = o.u32(ctx, "max_internal_redirects");
    if policy.is_some() {
        return policy;
    }
    handle.then(|| InternalRedirectPolicy { max_internal_redirects: max.unwrap_or(1), ..default_policy() })
}

fn default_policy() -> InternalRedirectPolicy {
    InternalRedirectPolicy {
        max_internal_redirects: 1,
        codes: vec![302],
        predicates: Vec::new(),
        allow_cross_scheme_redirect: false,
        response_headers_to_copy: Vec::new(),
    }
}

fn policy(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<InternalRedirectPolicy> {
    let before = ctx.error_count();
    let max_internal_redirects = o.u32(ctx, "max_internal_redirects").unwrap_or(1);
    let listed = o.list(ctx, "redirect_response_codes");
    if listed.len() > 5 {
        ctx.err(o.at("redirect_response_codes"), "at most 5 codes");
    }
    let mut codes = Vec::new();
    for (v, path) in &listed {
        match v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(c) if u32::try_from(c).is_ok() => {
                if let Some(c) = REDIRECT_CODES.iter().find(|r| u64::from(**r) == c) {
                    codes.push(*c);
                }
            }
            _ => ctx.err(path, "expected an unsigned integer"),
        }
    }
    if listed.is_empty() {
        codes.push(302);
    }
    let predicates = o.objs(ctx, "predicates").into_iter().filter_map(|p| predicate(ctx, p)).collect();
    let allow_cross_scheme_redirect = o.bool(ctx, "allow_cross_scheme_redirect").unwrap_or(false);
    let copy_at = o.at("response_headers_to_copy");
    let mut response_headers_to_copy = Vec::new();
    for name in o.strs(ctx, "response_headers_to_copy") {
        let lower = name.to_ascii_lowercase();
        // Envoy: only headers a filter may modify.
        if lower.starts_with(':') || lower == "host" || http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            ctx.err(&copy_at, format!("{name:?}: :-prefixed headers or Hosts may not be specified here."));
        } else {
            response_headers_to_copy.push(lower);
        }
    }
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then_some(InternalRedirectPolicy {
        max_internal_redirects,
        codes,
        predicates,
        allow_cross_scheme_redirect,
        response_headers_to_copy,
    })
}

/// One predicate, known by its `typed_config`'s type as Envoy finds its factory.
fn predicate(ctx: &mut Ctx, mut p: Obj<'_>) -> Option<RedirectPredicate> {
    p.ignore(&["name"]);
    let known = [
        (ALLOW_LISTED, "allow_listed_routes"),
        (PREVIOUS_ROUTES, "previous_routes"),
        (SAFE_CROSS_SCHEME, "safe_cross_scheme"),
    ];
    let out = match common::extension_by_type(&p, &known) {
        Some("allow_listed_routes") => {
            let mut t = common::typed_config(ctx, &mut p, ALLOW_LISTED)?;
            let names_at = t.at("allowed_route_names");
            let names = t.strs(ctx, "allowed_route_names");
            if names.iter().any(String::is_empty) {
                ctx.err(names_at, "route names must not be empty");
            }
            t.finish(ctx, &[]);
            Some(RedirectPredicate::AllowListedRoutes(names))
        }
        Some("previous_routes") => {
            common::typed_config(ctx, &mut p, PREVIOUS_ROUTES)?.finish(ctx, &[]);
            Some(RedirectPredicate::PreviousRoutes)
        }
        Some("safe_cross_scheme") => {
            common::typed_config(ctx, &mut p, SAFE_CROSS_SCHEME)?.finish(ctx, &[]);
            Some(RedirectPredicate::SafeCrossScheme)
        }
        _ => {
            ctx.err(
                p.at("typed_config"),
                "unsupported internal redirect predicate (only allow_listed_routes, previous_routes, safe_cross_scheme)",
            );
            p.ignore(&["typed_config"]);
            None
        }
    };
    p.finish(ctx, &[]);
    out
}
