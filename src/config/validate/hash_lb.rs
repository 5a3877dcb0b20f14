//! Consistent hashing: a cluster's `ring_hash_lb_config` / `maglev_lb_config` (read with its
//! `lb_policy`), `common_lb_config.consistent_hashing_lb_config`, and a route's `hash_policy`.

use http::HeaderName;

use crate::config::model::{ConsistentHashing, HashPolicy, HashPolicyKind, LbPolicy, RegexRewrite};
use crate::config::reader::{Ctx, FieldPath, Obj};
use crate::upstream::{maglev, ring_hash};

use super::common::regex_matcher;

/// `lb_policy` completed by its config message; either message without its policy is refused
/// (it would have no effect).
pub(crate) fn hash_lb_config(ctx: &mut Ctx, o: &mut Obj<'_>, policy: LbPolicy) -> LbPolicy {
    let ring_at = o.at("ring_hash_lb_config");
    let ring = o.obj(ctx, "ring_hash_lb_config");
    let maglev_at = o.at("maglev_lb_config");
    let maglev = o.obj(ctx, "maglev_lb_config");
    if ring.is_some() && !matches!(policy, LbPolicy::RingHash { .. }) {
        ctx.err(&ring_at, "ring_hash_lb_config needs lb_policy RING_HASH");
    }
    if maglev.is_some() && !matches!(policy, LbPolicy::Maglev { .. }) {
        ctx.err(&maglev_at, "maglev_lb_config needs lb_policy MAGLEV");
    }
    match policy {
        LbPolicy::RingHash { .. } => {
            let (mut min, mut max) = (ring_hash::DEFAULT_MIN_RING, ring_hash::MAX_RING);
            if let Some(mut r) = ring {
                min = r.uint(ctx, "minimum_ring_size", ring_hash::MAX_RING).unwrap_or(min);
                max = r.uint(ctx, "maximum_ring_size", ring_hash::MAX_RING).unwrap_or(max);
                // MURMUR_HASH_2 places hosts elsewhere than XX_HASH: refused, not ignored.
                r.enumv(ctx, "hash_function", &[("XX_HASH", Some(())), ("MURMUR_HASH_2", None)]);
                r.finish(ctx, &[]);
                if min > max {
                    // Envoy's words.
                    ctx.err(&ring_at, format!("ring hash: minimum_ring_size ({min}) > maximum_ring_size ({max})"));
                }
            }
            LbPolicy::RingHash { minimum_ring_size: min, maximum_ring_size: max }
        }
        LbPolicy::Maglev { .. } => {
            let mut table_size = maglev::DEFAULT_TABLE_SIZE;
            if let Some(mut m) = maglev {
                let at = m.at("table_size");
                if let Some(n) = m.uint(ctx, "table_size", maglev::MAX_TABLE_SIZE) {
                    if maglev::is_prime(n) {
                        table_size = n;
                    } else {
                        ctx.err(at, "The table size of maglev must be prime number");
                    }
                }
                m.finish(ctx, &[]);
            }
            LbPolicy::Maglev { table_size }
        }
        other => other,
    }
}

/// `consistent_hashing_lb_config` at `at`, for a cluster of `policy` and Envoy's type
/// `cluster_type`; refused without RING_HASH or MAGLEV (it would have no effect).
pub(crate) fn consistent_hashing(
    ctx: &mut Ctx,
    mut o: Obj<'_>,
    at: FieldPath,
    policy: LbPolicy,
    cluster_type: &str,
) -> ConsistentHashing {
    let mut c = ConsistentHashing::default();
    if !policy.is_hashing() {
        ctx.err(&at, "consistent_hashing_lb_config needs lb_policy RING_HASH or MAGLEV");
    }
    let hostname_at = o.at("use_hostname_for_hashing");
    c.use_hostname = o.bool(ctx, "use_hostname_for_hashing").unwrap_or(false);
    if c.use_hostname && cluster_type != "envoy.cluster.strict_dns" {
        // Envoy's words: only a STRICT_DNS host has a name to hash on.
        ctx.err(
            hostname_at,
            format!("Cannot use hostname for consistent hashing loadbalancing for cluster of type: '{cluster_type}'"),
        );
    }
    let factor_at = o.at("hash_balance_factor");
    match o.uint(ctx, "hash_balance_factor", u64::from(u32::MAX)) {
        Some(n) if n >= 100 => c.balance_factor = n as u32,
        // The proto's rule (`uint32 gte: 100`), in Envoy's words.
        Some(_) => ctx.err(factor_at, "value must be greater than or equal to 100"),
        None => {}
    }
    o.finish(ctx, &[]);
    c
}

/// A route action's `hash_policy` list.
pub(crate) fn hash_policies(ctx: &mut Ctx, o: &mut Obj<'_>) -> Vec<HashPolicy> {
    o.objs(ctx, "hash_policy").into_iter().filter_map(|p| hash_policy(ctx, p)).collect()
}

fn hash_policy(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<HashPolicy> {
    let before = ctx.error_count();
    let terminal = o.bool(ctx, "terminal").unwrap_or(false);
    let mut kinds = Vec::new();
    if let Some(mut h) = o.obj(ctx, "header") {
        let name = nonempty(ctx, &mut h, "header_name").map(|n| n.to_ascii_lowercase());
        if let Some(n) = &name {
            if n.starts_with(':') && ![":authority", ":path", ":method"].contains(&n.as_str()) {
                // legate's request has no other pseudo-header to hash.
                ctx.err(h.at("header_name"), format!("unsupported pseudo-header \"{n}\" (not implemented by legate)"));
            } else if !n.starts_with(':') && HeaderName::from_bytes(n.as_bytes()).is_err() {
                ctx.err(h.at("header_name"), format!("invalid header name \"{n}\""));
            }
        }
        let regex_rewrite = h.obj(ctx, "regex_rewrite").and_then(|r| rewrite(ctx, r));
        h.finish(ctx, &[]);
        kinds.push(name.map(|name| HashPolicyKind::Header { name, regex_rewrite }));
    }
    if let Some(mut c) = o.obj(ctx, "cookie") {
        let name = nonempty(ctx, &mut c, "name");
        let ttl = c.duration(ctx, "ttl");
        let path = c.str(ctx, "path").unwrap_or_default();
        let mut attributes = Vec::new();
        for mut a in c.objs(ctx, "attributes") {
            let n = nonempty(ctx, &mut a, "name");
            let v = a.str(ctx, "value").unwrap_or_default();
            a.finish(ctx, &[]);
            attributes.extend(n.map(|n| (n, v)));
        }
        c.finish(ctx, &[]);
        kinds.push(name.map(|name| HashPolicyKind::Cookie { name, ttl, path, attributes }));
    }
    let mut source_ip = None;
    if let Some(mut c) = o.obj(ctx, "connection_properties") {
        source_ip = Some(c.bool(ctx, "source_ip").unwrap_or(false));
        c.finish(ctx, &[]);
    }
    if let Some(mut q) = o.obj(ctx, "query_parameter") {
        let name = nonempty(ctx, &mut q, "name");
        q.finish(ctx, &[]);
        kinds.push(name.map(HashPolicyKind::QueryParameter));
    }
    if let Some(mut f) = o.obj(ctx, "filter_state") {
        let key = nonempty(ctx, &mut f, "key");
        f.finish(ctx, &[]);
        kinds.push(key.map(HashPolicyKind::FilterState));
    }
    let path = o.path.clone();
    let other = o.has_unread();
    o.finish(ctx, &[]);
    let n = kinds.len() + usize::from(source_ip.is_some());
    if n > 1 {
        ctx.err(&path, "only one of header, cookie, connection_properties, query_parameter, filter_state may be set");
    } else if n == 0 && !other && ctx.error_count() == before {
        ctx.err(&path, "missing policy (header, cookie, connection_properties, query_parameter or filter_state)");
    }
    if ctx.error_count() > before {
        return None;
    }
    let kind = match source_ip {
        // Envoy adds no method for `source_ip: false`.
        Some(false) => return None,
        Some(true) => HashPolicyKind::SourceIp,
        None => kinds.pop()??,
    };
    Some(HashPolicy { kind, terminal })
}

fn nonempty(ctx: &mut Ctx, o: &mut Obj<'_>, field: &'static str) -> Option<String> {
    let v = o.str(ctx, field).filter(|s| !s.is_empty());
    if v.is_none() {
        ctx.err(o.at(field), "must not be empty");
    }
    v
}

fn rewrite(ctx: &mut Ctx, mut o: Obj<'_>) -> Option<RegexRewrite> {
    let pattern = o.obj(ctx, "pattern").and_then(|p| regex_matcher(ctx, p, false));
    let substitution = o.str(ctx, "substitution");
    if substitution.is_none() {
        ctx.err(o.at("substitution"), "missing substitution");
    }
    o.finish(ctx, &[]);
    Some(RegexRewrite { pattern: pattern?, substitution: substitution? })
}
