//! The RBAC filter's `matcher` (and `shadow_matcher`) evaluated for a request, as Envoy's
//! `RoleBasedAccessControlMatcherEngineImpl`: the first matching entry of a list (or the
//! tree's entry for the input's value) leads to an action or a nested matcher; a nested
//! matcher that matches nothing makes its entry not match; `on_no_match` last. The action's
//! `ALLOW` or `LOG` lets the request through, `DENY` denies it, and so does matching nothing.

use std::borrow::Cow;
use std::net::IpAddr;

use super::RbacRequest;
use crate::config::model::{InputMatcher, MatchInput, MatcherKind, OnMatch, Predicate, XdsMatcher};
use crate::routing::matcher::{header_value, string_matches};

/// A compiled matcher and the names of its actions (indexes are what [`Compiled::decide`]
/// reports as the deciding policy).
pub struct Compiled {
    matcher: XdsMatcher,
    pub names: Box<[Box<str>]>,
}

impl Compiled {
    pub fn new(m: &XdsMatcher) -> Self {
        let mut names = Vec::new();
        collect_names(m, &mut names);
        Compiled { matcher: m.clone(), names: names.into() }
    }

    /// Whether the request is allowed, and the action that decided (its index in `names`).
    pub fn decide(&self, req: &RbacRequest<'_>) -> (bool, Option<usize>) {
        match evaluate(&self.matcher, req) {
            Some(a) => {
                let i = self.names.iter().position(|n| **n == *a.name);
                (a.action != crate::config::model::RbacAction::Deny, i)
            }
            None => (false, None),
        }
    }
}

fn collect_names(m: &XdsMatcher, out: &mut Vec<Box<str>>) {
    fn add(om: &OnMatch, out: &mut Vec<Box<str>>) {
        match om {
            OnMatch::Action(a) => {
                if !out.iter().any(|n| **n == *a.name) {
                    out.push(a.name.as_str().into());
                }
            }
            OnMatch::Matcher(inner) => collect_names(inner, out),
        }
    }
    match &m.kind {
        Some(MatcherKind::List(l)) => l.iter().for_each(|(_, om)| add(om, out)),
        Some(MatcherKind::Exact(_, map) | MatcherKind::Prefix(_, map)) => map.iter().for_each(|(_, om)| add(om, out)),
        None => {}
    }
    if let Some(om) = &m.on_no_match {
        add(om, out);
    }
}

type Action<'m> = &'m crate::config::model::RbacMatchAction;

fn on_match<'m>(om: &'m OnMatch, req: &RbacRequest<'_>) -> Option<Action<'m>> {
    match om {
        OnMatch::Action(a) => Some(a),
        OnMatch::Matcher(m) => evaluate(m, req),
    }
}

/// The action the matcher leads to, if any. Recursion is bounded by the configuration's
/// nesting, which the validator limits.
fn evaluate<'m>(m: &'m XdsMatcher, req: &RbacRequest<'_>) -> Option<Action<'m>> {
    let found = match &m.kind {
        Some(MatcherKind::List(list)) => {
            list.iter().filter(|(p, _)| predicate(p, req)).find_map(|(_, om)| on_match(om, req))
        }
        Some(MatcherKind::Exact(input, map)) => input_value(input, req)
            .and_then(|v| map.iter().find(|(k, _)| *k == *v))
            .and_then(|(_, om)| on_match(om, req)),
        Some(MatcherKind::Prefix(input, map)) => input_value(input, req).and_then(|v| {
            // Longest prefix first (sorted when read).
            map.iter().filter(|(k, _)| v.starts_with(k.as_str())).find_map(|(_, om)| on_match(om, req))
        }),
        None => None,
    };
    found.or_else(|| m.on_no_match.as_ref().and_then(|om| on_match(om, req)))
}

fn predicate(p: &Predicate, req: &RbacRequest<'_>) -> bool {
    match p {
        Predicate::Single(input, InputMatcher::Ip(ranges)) => {
            // An address input is matched as the address, not as its text.
            let ip = match input {
                MatchInput::SourceIp => Some(req.remote),
                MatchInput::DirectSourceIp => Some(req.direct_remote.ip()),
                MatchInput::DestinationIp => Some(req.local.ip()),
                _ => input_value(input, req).and_then(|v| v.parse::<IpAddr>().ok()),
            };
            ip.is_some_and(|ip| ranges.iter().any(|r| r.contains(ip)))
        }
        Predicate::Single(input, InputMatcher::String(s)) => {
            input_value(input, req).is_some_and(|v| string_matches(s, &v))
        }
        Predicate::Or(ps) => ps.iter().any(|p| predicate(p, req)),
        Predicate::And(ps) => ps.iter().all(|p| predicate(p, req)),
        Predicate::Not(p) => !predicate(p, req),
    }
}

/// The input's value; `None` when the request has none (a header it did not send, no SNI).
fn input_value<'a>(input: &MatchInput, req: &RbacRequest<'a>) -> Option<Cow<'a, str>> {
    let owned = |s: String| Some(Cow::Owned(s));
    match input {
        MatchInput::RequestHeader(name) => header_value(name, &req.view),
        MatchInput::SourceIp => owned(req.remote.to_string()),
        MatchInput::DirectSourceIp => owned(req.direct_remote.ip().to_string()),
        MatchInput::DestinationIp => owned(req.local.ip().to_string()),
        MatchInput::DestinationPort => owned(req.local.port().to_string()),
        MatchInput::SourcePort => owned(req.direct_remote.port().to_string()),
        MatchInput::ServerName => req.tls.and_then(|t| t.server_name.as_deref()).map(Cow::Borrowed),
    }
}
