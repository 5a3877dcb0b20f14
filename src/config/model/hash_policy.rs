//! A route's `hash_policy`: what a request's consistent-hashing key (RING_HASH, MAGLEV) is
//! made of.

use std::time::Duration;

use super::RegexRewrite;

#[derive(Debug, Clone, PartialEq)]
pub struct HashPolicy {
    pub kind: HashPolicyKind,
    /// `terminal`: once this policy yields a key, the ones after it are not evaluated.
    pub terminal: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HashPolicyKind {
    /// `header`: the (lowercased) header's values, rewritten by `regex_rewrite` if set.
    Header { name: String, regex_rewrite: Option<RegexRewrite> },
    /// `cookie`: the cookie's value; when absent and `ttl` is set, one is generated and set on
    /// the response.
    Cookie { name: String, ttl: Option<Duration>, path: String, attributes: Vec<(String, String)> },
    /// `connection_properties.source_ip`
    SourceIp,
    /// `query_parameter`: the first value of the parameter.
    QueryParameter(String),
    /// `filter_state.key`: the hash of the stream's filter state object of that key.
    FilterState(String),
}
