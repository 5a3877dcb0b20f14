//! `envoy.extensions.filters.http.rbac.v3.RBAC` and `RBACPerRoute`: policies of permissions
//! and principals (`envoy.config.rbac.v3`), or the matcher API (`matcher`, `shadow_matcher`,
//! `rbac_matcher.rs`). The CEL conditions are refused by the support table at their paths.

use crate::config::model::{
    CidrRange, Permission, Principal, RbacAction, RbacConfig, RbacPolicy, RbacRules, StringMatcher,
};
use crate::config::reader::{Ctx, Obj};

use super::common::parse_ip;
use super::matcher::{header_matcher, string_matcher};

/// `RBAC` (the filter's, or the one an `RBACPerRoute` carries).
pub(crate) fn rbac(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RbacConfig> {
    let before = ctx.error_count();
    let rules = o.obj(ctx, "rules").and_then(|r| read_rules(ctx, r));
    let shadow_rules = o.obj(ctx, "shadow_rules").and_then(|r| read_rules(ctx, r));
    let rules_stat_prefix = o.str(ctx, "rules_stat_prefix").unwrap_or_default();
    let shadow_rules_stat_prefix = o.str(ctx, "shadow_rules_stat_prefix").unwrap_or_default();
    let track_per_rule_stats = o.bool(ctx, "track_per_rule_stats").unwrap_or(false);
    let matcher = o.obj(ctx, "matcher").and_then(|m| super::rbac_matcher::matcher(ctx, m));
    let shadow_matcher = o.obj(ctx, "shadow_matcher").and_then(|m| super::rbac_matcher::matcher(ctx, m));
    let path = o.path.clone();
    o.finish(ctx, &[]);
    // Envoy 1.40 takes the matcher and warns.
    if rules.is_some() && matcher.is_some() {
        tracing::warn!(config.path = %path, "RBAC rules are ignored when matcher is configured");
    }
    if shadow_rules.is_some() && shadow_matcher.is_some() {
        tracing::warn!(config.path = %path, "RBAC shadow rules are ignored when shadow matcher is configured");
    }
    (ctx.error_count() == before).then_some(RbacConfig {
        rules,
        shadow_rules,
        rules_stat_prefix,
        shadow_rules_stat_prefix,
        track_per_rule_stats,
        matcher,
        shadow_matcher,
    })
}

/// `RBACPerRoute`: `None` inside when `rbac` is unset, which disables the filter on the route.
pub(crate) fn rbac_per_route(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<Option<RbacConfig>> {
    let before = ctx.error_count();
    let config = o.obj(ctx, "rbac").and_then(|r| rbac(ctx, r));
    o.finish(ctx, &[]);
    (ctx.error_count() == before).then_some(config)
}

fn read_rules(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RbacRules> {
    let action = o
        .enumv(
            ctx,
            "action",
            &[("ALLOW", Some(RbacAction::Allow)), ("DENY", Some(RbacAction::Deny)), ("LOG", Some(RbacAction::Log))],
        )
        .unwrap_or(RbacAction::Allow);
    let mut policies = Vec::new();
    for (name, v, path) in o.entries(ctx, "policies") {
        let Some(p) = Obj::new(ctx, v, path) else { continue };
        if let Some(p) = policy(ctx, p) {
            policies.push((name, p));
        }
    }
    policies.sort_by(|a, b| a.0.cmp(&b.0));
    o.finish(ctx, &[]);
    Some(RbacRules { action, policies })
}

fn policy(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RbacPolicy> {
    let before = ctx.error_count();
    let permissions: Vec<Permission> =
        o.objs(ctx, "permissions").into_iter().filter_map(|p| permission(ctx, p)).collect();
    let principals: Vec<Principal> = o.objs(ctx, "principals").into_iter().filter_map(|p| principal(ctx, p)).collect();
    let path = o.path.clone();
    o.finish(ctx, &[]);
    if ctx.error_count() > before {
        return None;
    }
    if permissions.is_empty() {
        ctx.err(format!("{path}.permissions"), "at least one permission is required");
    }
    if principals.is_empty() {
        ctx.err(format!("{path}.principals"), "at least one principal is required");
    }
    (ctx.error_count() == before).then_some(RbacPolicy { permissions, principals })
}

/// Exactly one of the rule's kinds; `found` holds the ones read. Kinds legate does not read
/// were refused by the support table, so their absence from `found` is not reported again.
fn one<T>(ctx: &mut Ctx, o: Obj<'_>, mut found: Vec<T>, unsupported: &[&str], what: &str) -> Option<T> {
    let path = o.path.clone();
    let other = unsupported.iter().any(|f| o.has(f));
    o.finish(ctx, &[]);
    match found.len() {
        1 => found.pop(),
        0 if other => None,
        0 => {
            ctx.err(&path, format!("one {what} rule is required"));
            None
        }
        _ => {
            ctx.err(&path, format!("only one {what} rule may be set"));
            None
        }
    }
}

fn any_true(ctx: &mut Ctx, o: &mut Obj<'_>) -> bool {
    match o.bool(ctx, "any") {
        Some(true) => true,
        Some(false) => {
            ctx.err(o.at("any"), "must be true");
            false
        }
        None => false,
    }
}

fn permission(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<Permission> {
    let mut found = Vec::new();
    if any_true(ctx, &mut o) {
        found.push(Permission::Any);
    }
    if let Some(s) = o.obj(ctx, "and_rules") {
        found.extend(set(ctx, s, "rules", permission).map(Permission::And));
    }
    if let Some(s) = o.obj(ctx, "or_rules") {
        found.extend(set(ctx, s, "rules", permission).map(Permission::Or));
    }
    if let Some(n) = o.obj(ctx, "not_rule") {
        found.extend(permission(ctx, n).map(|p| Permission::Not(Box::new(p))));
    }
    if let Some(h) = o.obj(ctx, "header") {
        found.extend(header_matcher(ctx, h).map(Permission::Header));
    }
    if let Some(p) = o.obj(ctx, "url_path") {
        found.extend(path_matcher(ctx, p).map(Permission::UrlPath));
    }
    if let Some(c) = o.obj(ctx, "destination_ip") {
        found.extend(cidr(ctx, c).map(Permission::DestinationIp));
    }
    if let Some(p) = o.uint(ctx, "destination_port", 65535) {
        found.push(Permission::DestinationPort(p as u16));
    }
    if let Some(mut r) = o.obj(ctx, "destination_port_range") {
        let start = r.uint(ctx, "start", 65536).unwrap_or(0) as u32;
        let end = r.uint(ctx, "end", 65536).unwrap_or(0) as u32;
        let path = r.path.clone();
        r.finish(ctx, &[]);
        if start > end {
            ctx.err(path, "start must not be greater than end");
        } else {
            found.push(Permission::DestinationPortRange { start, end });
        }
    }
    if let Some(s) = o.obj(ctx, "requested_server_name").and_then(|s| string_matcher(ctx, s)) {
        found.push(Permission::RequestedServerName(s));
    }
    one(ctx, o, found, &["metadata", "matcher", "uri_template", "sourced_metadata"], "permission")
}

fn principal(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<Principal> {
    let mut found = Vec::new();
    if any_true(ctx, &mut o) {
        found.push(Principal::Any);
    }
    if let Some(s) = o.obj(ctx, "and_ids") {
        found.extend(set(ctx, s, "ids", principal).map(Principal::And));
    }
    if let Some(s) = o.obj(ctx, "or_ids") {
        found.extend(set(ctx, s, "ids", principal).map(Principal::Or));
    }
    if let Some(n) = o.obj(ctx, "not_id") {
        found.extend(principal(ctx, n).map(|p| Principal::Not(Box::new(p))));
    }
    if let Some(h) = o.obj(ctx, "header") {
        found.extend(header_matcher(ctx, h).map(Principal::Header));
    }
    if let Some(p) = o.obj(ctx, "url_path") {
        found.extend(path_matcher(ctx, p).map(Principal::UrlPath));
    }
    if let Some(c) = o.obj(ctx, "remote_ip") {
        found.extend(cidr(ctx, c).map(Principal::RemoteIp));
    }
    if let Some(c) = o.obj(ctx, "direct_remote_ip") {
        found.extend(cidr(ctx, c).map(Principal::DirectRemoteIp));
    }
    if let Some(c) = o.obj(ctx, "source_ip") {
        found.extend(cidr(ctx, c).map(Principal::SourceIp));
    }
    if let Some(mut a) = o.obj(ctx, "authenticated") {
        let name = a.obj(ctx, "principal_name").and_then(|s| string_matcher(ctx, s));
        a.finish(ctx, &[]);
        found.push(Principal::Authenticated(name));
    }
    one(ctx, o, found, &["metadata", "filter_state", "sourced_metadata", "custom"], "principal")
}

/// `Permission.Set` / `Principal.Set`: at least one rule.
fn set<T>(
    ctx: &mut Ctx,
    mut o: Obj<'_>,
    field: &'static str,
    item: fn(&mut Ctx, Obj<'_>) -> Option<T>,
) -> Option<Vec<T>> {
    let before = ctx.error_count();
    let items = o.objs(ctx, field);
    let path = o.at(field);
    let n = items.len();
    let out: Vec<T> = items.into_iter().filter_map(|i| item(ctx, i)).collect();
    o.finish(ctx, &[]);
    if n == 0 {
        ctx.err(path, "at least one rule is required");
    }
    (ctx.error_count() == before).then_some(out)
}

/// `envoy.type.matcher.v3.PathMatcher`
fn path_matcher(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<StringMatcher> {
    let path = o.at("path");
    let m = o.obj(ctx, "path").and_then(|p| string_matcher(ctx, p));
    o.finish(ctx, &[]);
    if m.is_none() {
        ctx.err(path, "missing path");
    }
    m
}

/// `envoy.config.core.v3.CidrRange`
pub(super) fn cidr(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<CidrRange> {
    let prefix = o.str(ctx, "address_prefix");
    let len = o.uint(ctx, "prefix_len", 128).unwrap_or(0);
    let path = o.path.clone();
    o.finish(ctx, &[]);
    let Some(address) = prefix.as_deref().and_then(parse_ip) else {
        ctx.err(format!("{path}.address_prefix"), "expected an IP address");
        return None;
    };
    let max = if address.is_ipv4() { 32 } else { 128 };
    if len > max {
        ctx.err(format!("{path}.prefix_len"), format!("must be at most {max}"));
        return None;
    }
    Some(CidrRange { address, prefix_len: len as u8 })
}
