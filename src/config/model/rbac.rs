//! The model of `envoy.filters.http.rbac` (`RBAC` and `RBACPerRoute`): policies of
//! permissions and principals, as `envoy.config.rbac.v3` defines them.

use super::{CidrRange, HeaderMatcher, StringMatcher};

/// `envoy.extensions.filters.http.rbac.v3.RBAC`
#[derive(Debug, Clone, PartialEq)]
pub struct RbacConfig {
    /// `rules`: enforced; `None` lets every request through.
    pub rules: Option<RbacRules>,
    /// `shadow_rules`: evaluated and counted, never enforced.
    pub shadow_rules: Option<RbacRules>,
    /// `rules_stat_prefix`
    pub rules_stat_prefix: String,
    /// `shadow_rules_stat_prefix`
    pub shadow_rules_stat_prefix: String,
    /// `track_per_rule_stats`: `rbac.<prefix>policy.<name>.allowed|denied`.
    pub track_per_rule_stats: bool,
    /// `matcher`: enforced in place of `rules` (a request no action matches is denied).
    pub matcher: Option<super::XdsMatcher>,
    /// `shadow_matcher`: evaluated and counted in place of `shadow_rules`.
    pub shadow_matcher: Option<super::XdsMatcher>,
}

/// `envoy.config.rbac.v3.RBAC`
#[derive(Debug, Clone, PartialEq)]
pub struct RbacRules {
    pub action: RbacAction,
    /// `policies`, sorted by name: Envoy keeps them in an ordered map and the first
    /// matching name is the effective policy.
    pub policies: Vec<(String, RbacPolicy)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbacAction {
    Allow,
    Deny,
    /// Always allowed; only marks the request as to be logged.
    Log,
}

/// `envoy.config.rbac.v3.Policy`: any permission and any principal.
#[derive(Debug, Clone, PartialEq)]
pub struct RbacPolicy {
    pub permissions: Vec<Permission>,
    pub principals: Vec<Principal>,
}

/// `envoy.config.rbac.v3.Permission`
#[derive(Debug, Clone, PartialEq)]
pub enum Permission {
    Any,
    And(Vec<Permission>),
    Or(Vec<Permission>),
    Not(Box<Permission>),
    Header(HeaderMatcher),
    /// `url_path.path`: the path without its query.
    UrlPath(StringMatcher),
    DestinationIp(CidrRange),
    DestinationPort(u16),
    /// `[start, end)`
    DestinationPortRange {
        start: u32,
        end: u32,
    },
    /// The TLS SNI (empty without TLS).
    RequestedServerName(StringMatcher),
}

/// `envoy.config.rbac.v3.Principal`
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Any,
    And(Vec<Principal>),
    Or(Vec<Principal>),
    Not(Box<Principal>),
    Header(HeaderMatcher),
    UrlPath(StringMatcher),
    /// `remote_ip`: the client address after `x-forwarded-for` trust.
    RemoteIp(CidrRange),
    /// `direct_remote_ip`: the socket's peer.
    DirectRemoteIp(CidrRange),
    /// `source_ip` (deprecated): the connection's peer.
    SourceIp(CidrRange),
    /// `authenticated`: a TLS connection, its peer certificate's URI SANs, DNS SANs or subject
    /// matching `principal_name` (any TLS connection when it is unset).
    Authenticated(Option<StringMatcher>),
}
