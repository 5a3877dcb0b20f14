//! First-match route lookup without a linear scan.
//!
//! Routes that match on the path alone (case-sensitive `path` or `prefix`, no header or query
//! matchers) go into hash maps: exact paths, and prefixes by length. The answer is the lowest
//! route index among the indexed hits and the other routes, which are tried in order only
//! while their index is below the best hit, so first-match semantics are kept exactly.

use std::collections::HashMap;

use super::matcher::{route_matches, RequestView};
use crate::config::model::{PathMatch, RouteMatch};

#[derive(Default)]
pub struct PathIndex {
    exact: HashMap<String, usize>,
    prefixes: HashMap<String, usize>,
    /// Distinct prefix lengths, ascending.
    prefix_lens: Vec<usize>,
    /// Routes that need a full evaluation, in route order.
    others: Vec<usize>,
}

impl PathIndex {
    pub fn build<'a>(matchers: impl Iterator<Item = &'a RouteMatch>) -> Self {
        let mut idx = PathIndex::default();
        for (i, m) in matchers.enumerate() {
            let simple = m.case_sensitive
                && !m.grpc
                && m.headers.is_empty()
                && m.query_parameters.is_empty()
                && m.tls_context.is_none()
                && m.runtime_fraction.is_none();
            match (&m.path, simple) {
                (PathMatch::Path(p), true) => {
                    idx.exact.entry(p.clone()).or_insert(i);
                }
                (PathMatch::Prefix(p), true) => {
                    idx.prefixes.entry(p.clone()).or_insert(i);
                }
                _ => idx.others.push(i),
            }
        }
        let mut lens: Vec<usize> = idx.prefixes.keys().map(String::len).collect();
        lens.sort_unstable();
        lens.dedup();
        idx.prefix_lens = lens;
        idx
    }

    /// The index of the first route that matches, if any.
    pub fn find(&self, matchers: &[RouteMatch], req: &RequestView<'_>) -> Option<usize> {
        let mut best = usize::MAX;
        if let Some(&i) = self.exact.get(req.path) {
            best = i;
        }
        for &len in &self.prefix_lens {
            if len > req.full_path.len() {
                break;
            }
            if let Some(prefix) = req.full_path.get(..len) {
                if let Some(&i) = self.prefixes.get(prefix) {
                    best = best.min(i);
                }
            }
        }
        for &i in &self.others {
            if i >= best {
                break;
            }
            if route_matches(&matchers[i], req) {
                best = i;
                break;
            }
        }
        (best != usize::MAX).then_some(best)
    }
}
