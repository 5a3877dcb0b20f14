//! An RBAC policy set compiled for requests: each policy's permissions and principals as
//! a tree of matchers over what the request and its connection show. Matching allocates
//! nothing (header matchers aside, which join a repeated header's values as Envoy does).

use std::net::{IpAddr, SocketAddr};

use crate::config::model::{Permission, Principal, RbacAction, RbacRules, StringMatcher};
use crate::routing::matcher::{header_matches, string_matches, RequestView};
use crate::tls::certs::San;
use crate::tls::Session;

/// What permissions and principals read.
pub struct RbacRequest<'a> {
    pub view: RequestView<'a>,
    /// The trusted client address (after `x-forwarded-for` trust).
    pub remote: IpAddr,
    /// The socket's peer.
    pub direct_remote: SocketAddr,
    /// The address the connection reached (destination ip / port).
    pub local: SocketAddr,
    pub tls: Option<&'a Session>,
}

/// `rules` or `shadow_rules` (or `matcher` / `shadow_matcher`), compiled.
pub struct Engine {
    pub action: RbacAction,
    pub policies: Box<[(Box<str>, crate::config::model::RbacPolicy)]>,
    /// The matcher API in place of the policies.
    matcher: Option<super::matcher::Compiled>,
}

impl Engine {
    pub fn new(r: &RbacRules) -> Self {
        let policies = r.policies.iter().map(|(n, p)| (n.as_str().into(), p.clone())).collect();
        Engine { action: r.action, policies, matcher: None }
    }

    pub fn from_matcher(m: &crate::config::model::XdsMatcher) -> Self {
        let matcher = Some(super::matcher::Compiled::new(m));
        Engine { action: RbacAction::Allow, policies: Box::default(), matcher }
    }

    /// The names a decision can name: the policies', or the matcher's actions'.
    pub fn names(&self) -> Vec<&str> {
        match &self.matcher {
            Some(m) => m.names.iter().map(|n| &**n).collect(),
            None => self.policies.iter().map(|(n, _)| &**n).collect(),
        }
    }

    /// The first policy (by name) that matches.
    fn matched(&self, req: &RbacRequest<'_>) -> Option<usize> {
        self.policies.iter().position(|(_, p)| {
            p.permissions.iter().any(|x| permission(x, req)) && p.principals.iter().any(|x| principal(x, req))
        })
    }

    /// Whether the request is allowed, and the policy that decided (if one matched).
    pub fn decide(&self, req: &RbacRequest<'_>) -> (bool, Option<usize>) {
        if let Some(matcher) = &self.matcher {
            return matcher.decide(req);
        }
        let m = self.matched(req);
        let allowed = match self.action {
            RbacAction::Allow => m.is_some(),
            RbacAction::Deny => m.is_none(),
            RbacAction::Log => true,
        };
        (allowed, m)
    }
}

/// The path without its query or fragment.
fn path_only(full: &str) -> &str {
    full.split(['?', '#']).next().unwrap_or(full)
}

fn permission(p: &Permission, req: &RbacRequest<'_>) -> bool {
    match p {
        Permission::Any => true,
        Permission::And(all) => all.iter().all(|x| permission(x, req)),
        Permission::Or(any) => any.iter().any(|x| permission(x, req)),
        Permission::Not(x) => !permission(x, req),
        Permission::Header(h) => header_matches(h, &req.view),
        Permission::UrlPath(m) => string_matches(m, path_only(req.view.full_path)),
        Permission::DestinationIp(c) => c.contains(req.local.ip()),
        Permission::DestinationPort(p) => req.local.port() == *p,
        Permission::DestinationPortRange { start, end } => (*start..*end).contains(&u32::from(req.local.port())),
        Permission::RequestedServerName(m) => {
            string_matches(m, req.tls.and_then(|t| t.server_name.as_deref()).unwrap_or(""))
        }
    }
}

fn principal(p: &Principal, req: &RbacRequest<'_>) -> bool {
    match p {
        Principal::Any => true,
        Principal::And(all) => all.iter().all(|x| principal(x, req)),
        Principal::Or(any) => any.iter().any(|x| principal(x, req)),
        Principal::Not(x) => !principal(x, req),
        Principal::Header(h) => header_matches(h, &req.view),
        Principal::UrlPath(m) => string_matches(m, path_only(req.view.full_path)),
        Principal::RemoteIp(c) => c.contains(req.remote),
        Principal::DirectRemoteIp(c) | Principal::SourceIp(c) => c.contains(req.direct_remote.ip()),
        Principal::Authenticated(name) => authenticated(name.as_ref(), req.tls),
    }
}

/// Envoy's `AuthenticatedMatcher`: a TLS connection; with `principal_name`, one of the peer
/// certificate's URI SANs, then DNS SANs, then its subject must match.
fn authenticated(name: Option<&StringMatcher>, tls: Option<&Session>) -> bool {
    let Some(tls) = tls else { return false };
    let Some(m) = name else { return true };
    let Some(peer) = &tls.peer else { return string_matches(m, "") };
    let sans = &peer.info.sans;
    let uri = sans.iter().any(|s| matches!(s, San::Uri(u) if string_matches(m, u)));
    uri || sans.iter().any(|s| matches!(s, San::Dns(d) if string_matches(m, d)))
        || string_matches(m, &peer.info.subject)
}
