//! The model of the xDS matcher API (`xds.type.matcher.v3.Matcher`) as the RBAC filter's
//! `matcher` and `shadow_matcher` use it: a list of predicates or a tree keyed by one input,
//! each leading to an action or a nested matcher, and `on_no_match`.

use super::{CidrRange, RbacAction, StringMatcher};

/// What a predicate or tree reads from the request (the inputs legate implements).
#[derive(Debug, Clone, PartialEq)]
pub enum MatchInput {
    /// `envoy.type.matcher.v3.HttpRequestHeaderMatchInput` (`header_name`, lowercased).
    RequestHeader(String),
    /// `...network.v3.SourceIPInput`: the trusted client address.
    SourceIp,
    /// `...network.v3.DirectSourceIPInput`: the socket's peer.
    DirectSourceIp,
    /// `...network.v3.DestinationIPInput`
    DestinationIp,
    /// `...network.v3.DestinationPortInput`
    DestinationPort,
    /// `...network.v3.SourcePortInput`
    SourcePort,
    /// `...network.v3.ServerNameInput`: the TLS SNI.
    ServerName,
}

/// How a single predicate tests its input's value.
#[derive(Debug, Clone, PartialEq)]
pub enum InputMatcher {
    /// `value_match`
    String(StringMatcher),
    /// `custom_match` with `envoy.extensions.matching.input_matchers.ip.v3.Ip`.
    Ip(Vec<CidrRange>),
}

/// `xds.type.matcher.v3.Matcher.MatcherList.Predicate`
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Single(MatchInput, InputMatcher),
    Or(Vec<Predicate>),
    And(Vec<Predicate>),
    Not(Box<Predicate>),
}

/// `envoy.config.rbac.v3.Action`
#[derive(Debug, Clone, PartialEq)]
pub struct RbacMatchAction {
    pub name: String,
    pub action: RbacAction,
}

/// `xds.type.matcher.v3.Matcher.OnMatch`
#[derive(Debug, Clone, PartialEq)]
pub enum OnMatch {
    Action(RbacMatchAction),
    Matcher(Box<XdsMatcher>),
}

/// `xds.type.matcher.v3.Matcher`
#[derive(Debug, Clone, PartialEq)]
pub enum MatcherKind {
    /// `matcher_list.matchers`: the first whose predicate matches (and whose nested matcher,
    /// if any, matches) decides.
    List(Vec<(Predicate, OnMatch)>),
    /// `matcher_tree` with `exact_match_map`.
    Exact(MatchInput, Vec<(String, OnMatch)>),
    /// `matcher_tree` with `prefix_match_map`: the longest prefix first.
    Prefix(MatchInput, Vec<(String, OnMatch)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct XdsMatcher {
    pub kind: Option<MatcherKind>,
    pub on_no_match: Option<OnMatch>,
}
