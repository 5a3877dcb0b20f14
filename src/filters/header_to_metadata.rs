//! `envoy.filters.http.header_to_metadata`, as Envoy 1.40 does it: each rule reads one header
//! (all its values joined by commas) of the request (`request_rules`) or the response
//! (`response_rules`) and sets a key of the stream's dynamic metadata — the header's value or
//! the rule's own `value`, as a string or a number — when the header is there
//! (`on_header_present`) or not (`on_header_missing`); `remove` takes the header off. An empty
//! value sets nothing. The metadata is what the access log's `%DYNAMIC_METADATA(ns:key)%` reads.

use std::fmt::Write as _;

use http::HeaderMap;

use crate::config::filters::{HeaderToMetadataConfig, MetadataKeyValue, MetadataRule, MetadataType};

/// Envoy's `MAX_HEADER_VALUE_LEN`: a longer value is not stored.
const MAX_VALUE_LEN: usize = 8 * 1024;

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    String(String),
    Number(f64),
}

/// The stream's dynamic metadata: namespaces of keys, in the order first set.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DynamicMetadata {
    entries: Vec<(String, String, MetaValue)>,
}

impl DynamicMetadata {
    fn set(&mut self, namespace: &str, key: &str, value: MetaValue) {
        match self.entries.iter_mut().find(|(n, k, _)| n == namespace && k == key) {
            Some(e) => e.2 = value,
            None => self.entries.push((namespace.to_string(), key.to_string(), value)),
        }
    }

    /// `%DYNAMIC_METADATA(ns:key)%`: a string as it is, a number as JSON writes it; with no
    /// key, the namespace as a JSON object (keys sorted, as protobuf's JSON has them).
    pub fn render(&self, namespace: &str, key: Option<&str>) -> Option<String> {
        match key {
            Some(key) => self.entries.iter().find(|(n, k, _)| n == namespace && k == key).map(|(_, _, v)| match v {
                MetaValue::String(s) => s.clone(),
                MetaValue::Number(n) => number(*n),
            }),
            None => {
                let mut keys: Vec<&(String, String, MetaValue)> =
                    self.entries.iter().filter(|(n, _, _)| n == namespace).collect();
                if keys.is_empty() {
                    return None;
                }
                keys.sort_by(|a, b| a.1.cmp(&b.1));
                let mut out = String::from("{");
                for (i, (_, k, v)) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{}:", serde_json::Value::from(k.as_str()));
                    match v {
                        MetaValue::String(s) => {
                            let _ = write!(out, "{}", serde_json::Value::from(s.as_str()));
                        }
                        MetaValue::Number(n) => out.push_str(&number(*n)),
                    }
                }
                out.push('}');
                Some(out)
            }
        }
    }
}

/// A number as protobuf's JSON writes a `double`: integral values without a fraction.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

pub struct HeaderToMetadata {
    config: Box<HeaderToMetadataConfig>,
}

impl HeaderToMetadata {
    pub fn new(c: &HeaderToMetadataConfig) -> Self {
        HeaderToMetadata { config: Box::new(c.clone()) }
    }

    pub fn decode(&self, headers: &mut HeaderMap, meta: &mut Option<Box<DynamicMetadata>>) {
        apply(&self.config.request_rules, headers, meta);
    }

    pub fn encode(&self, headers: &mut HeaderMap, meta: &mut Option<Box<DynamicMetadata>>) {
        apply(&self.config.response_rules, headers, meta);
    }
}

fn apply(rules: &[MetadataRule], headers: &mut HeaderMap, meta: &mut Option<Box<DynamicMetadata>>) {
    for rule in rules {
        let mut values = headers.get_all(&rule.header).iter().map(|v| String::from_utf8_lossy(v.as_bytes()));
        let value = values.next().map(|first| values.fold(first.into_owned(), |acc, v| acc + "," + &v));
        let kv = match &value {
            Some(_) => rule.on_present.as_ref(),
            None => rule.on_missing.as_ref(),
        };
        if let Some(kv) = kv {
            let v = kv.value.clone().or(value.clone()).unwrap_or_default();
            if let Some(v) = typed(kv, v) {
                meta.get_or_insert_with(Box::default).set(&kv.namespace, &kv.key, v);
            }
        }
        if value.is_some() && rule.remove {
            headers.remove(&rule.header);
        }
    }
}

fn typed(kv: &MetadataKeyValue, value: String) -> Option<MetaValue> {
    if value.is_empty() || value.len() >= MAX_VALUE_LEN {
        return None;
    }
    match kv.kind {
        MetadataType::String => Some(MetaValue::String(value)),
        MetadataType::Number => value.trim().parse::<f64>().ok().filter(|n| n.is_finite()).map(MetaValue::Number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderName, HeaderValue};

    fn kv(ns: &str, key: &str, value: Option<&str>, kind: MetadataType) -> MetadataKeyValue {
        MetadataKeyValue { namespace: ns.into(), key: key.into(), value: value.map(Into::into), kind }
    }

    /// The cases Envoy 1.40 logged with `%DYNAMIC_METADATA(...)%`.
    #[test]
    fn rules_set_metadata_as_envoy() {
        let rules = vec![
            MetadataRule {
                header: HeaderName::from_static("x-version"),
                on_present: Some(kv("envoy.lb", "version", None, MetadataType::String)),
                on_missing: Some(kv("envoy.lb", "version", Some("none"), MetadataType::String)),
                remove: true,
            },
            MetadataRule {
                header: HeaderName::from_static("x-n"),
                on_present: Some(kv("envoy.lb", "nn", None, MetadataType::Number)),
                on_missing: None,
                remove: false,
            },
        ];
        let run = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            let mut meta = None;
            apply(&rules, &mut h, &mut meta);
            (h, meta)
        };
        let (h, meta) = run(&[("x-version", "v1.2"), ("x-n", "42")]);
        assert!(h.get("x-version").is_none(), "removed");
        let meta = meta.unwrap_or_default();
        assert_eq!(meta.render("envoy.lb", Some("version")).as_deref(), Some("v1.2"));
        assert_eq!(meta.render("envoy.lb", None).as_deref(), Some(r#"{"nn":42,"version":"v1.2"}"#));
        let meta = run(&[("x-n", "1.5")]).1.unwrap_or_default();
        assert_eq!(meta.render("envoy.lb", None).as_deref(), Some(r#"{"nn":1.5,"version":"none"}"#));
        let meta = run(&[("x-n", "abc"), ("x-version", "a"), ("x-version", "b")]).1.unwrap_or_default();
        assert_eq!(meta.render("envoy.lb", Some("version")).as_deref(), Some("a,b"));
        assert_eq!(meta.render("envoy.lb", Some("nn")), None);
        assert!(run(&[("x-version", "")]).1.is_none(), "an empty value sets nothing");
    }
}
