//! Virtual host choice by Envoy's rules: exact domain, then the longest `*.suffix`, then the
//! longest `prefix.*`, then `*`. The Host header is compared whole (with its port), lowercased.

use std::collections::HashMap;

#[derive(Default)]
pub struct DomainIndex {
    exact: HashMap<String, usize>,
    /// (suffix without the `*`, vhost), longest first.
    suffixes: Vec<(String, usize)>,
    /// (prefix without the `*`, vhost), longest first.
    prefixes: Vec<(String, usize)>,
    default: Option<usize>,
}

impl DomainIndex {
    pub fn build<'a>(vhosts: impl Iterator<Item = &'a [String]>) -> Self {
        let mut idx = DomainIndex::default();
        for (i, domains) in vhosts.enumerate() {
            for d in domains {
                let d = d.to_ascii_lowercase();
                if d == "*" {
                    idx.default.get_or_insert(i);
                } else if let Some(s) = d.strip_prefix('*') {
                    idx.suffixes.push((s.to_string(), i));
                } else if let Some(p) = d.strip_suffix('*') {
                    idx.prefixes.push((p.to_string(), i));
                } else {
                    idx.exact.entry(d).or_insert(i);
                }
            }
        }
        // Stable sorts: among equal lengths the first declared wins.
        idx.suffixes.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        idx.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        idx
    }

    pub fn find(&self, host: &str) -> Option<usize> {
        let lowered;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            lowered.as_str()
        } else {
            host
        };
        if let Some(i) = self.exact.get(host) {
            return Some(*i);
        }
        for (s, i) in &self.suffixes {
            if host.len() > s.len() && host.ends_with(s.as_str()) {
                return Some(*i);
            }
        }
        for (p, i) in &self.prefixes {
            if host.len() > p.len() && host.starts_with(p.as_str()) {
                return Some(*i);
            }
        }
        self.default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(v: &[&[&str]]) -> DomainIndex {
        let owned: Vec<Vec<String>> = v.iter().map(|d| d.iter().map(|s| s.to_string()).collect()).collect();
        DomainIndex::build(owned.iter().map(|v| v.as_slice()))
    }

    #[test]
    fn envoy_precedence() {
        let i = idx(&[&["*"], &["example.*"], &["*.example.com"], &["*.b.example.com"], &["api.example.com"]]);
        assert_eq!(i.find("api.example.com"), Some(4));
        assert_eq!(i.find("API.Example.COM"), Some(4));
        assert_eq!(i.find("x.b.example.com"), Some(3));
        assert_eq!(i.find("x.example.com"), Some(2));
        assert_eq!(i.find("example.com"), Some(1));
        assert_eq!(i.find("example.org"), Some(1));
        assert_eq!(i.find("other.org"), Some(0));
        // The port is part of the host.
        assert_eq!(i.find("api.example.com:8080"), Some(0));
    }
}
