//! Header additions and removals of a route, virtual host or route configuration, parsed into
//! `HeaderName`/`HeaderValue` when the snapshot is built.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::model::{AppendAction, HeaderOps, HeaderValueOption};

#[derive(Default, Clone)]
pub struct HeaderOpsRt {
    pub request_add: Vec<HeaderAdd>,
    pub request_remove: Vec<HeaderName>,
    pub response_add: Vec<HeaderAdd>,
    pub response_remove: Vec<HeaderName>,
}

#[derive(Clone)]
pub struct HeaderAdd {
    pub name: HeaderName,
    pub value: HeaderValue,
    pub action: AppendAction,
    pub keep_empty: bool,
}

impl HeaderOpsRt {
    /// Fails on a name or value that is not a valid header (the config layer should have
    /// caught it; the message names the header).
    pub fn build(ops: &HeaderOps) -> Result<Self, String> {
        Ok(HeaderOpsRt {
            request_add: adds(&ops.request_headers_to_add)?,
            request_remove: names(&ops.request_headers_to_remove)?,
            response_add: adds(&ops.response_headers_to_add)?,
            response_remove: names(&ops.response_headers_to_remove)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.request_add.is_empty()
            && self.request_remove.is_empty()
            && self.response_add.is_empty()
            && self.response_remove.is_empty()
    }
}

fn adds(list: &[HeaderValueOption]) -> Result<Vec<HeaderAdd>, String> {
    list.iter()
        .map(|h| {
            let name =
                HeaderName::from_bytes(h.key.as_bytes()).map_err(|_| format!("invalid header name {:?}", h.key))?;
            let value = HeaderValue::from_str(&h.value).map_err(|_| format!("invalid header value {:?}", h.value))?;
            Ok(HeaderAdd { name, value, action: h.action, keep_empty: h.keep_empty_value })
        })
        .collect()
}

fn names(list: &[String]) -> Result<Vec<HeaderName>, String> {
    list.iter()
        .map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("invalid header name {n:?}")))
        .collect()
}

/// Applies additions in order (Envoy: route, then virtual host, then route configuration).
pub fn apply_adds(headers: &mut HeaderMap, adds: &[HeaderAdd]) {
    for a in adds {
        if a.value.is_empty() && !a.keep_empty {
            continue;
        }
        match a.action {
            AppendAction::Append => {
                headers.append(a.name.clone(), a.value.clone());
            }
            AppendAction::AddIfAbsent => {
                if !headers.contains_key(&a.name) {
                    headers.insert(a.name.clone(), a.value.clone());
                }
            }
            AppendAction::OverwriteOrAdd => {
                headers.insert(a.name.clone(), a.value.clone());
            }
            AppendAction::OverwriteIfExists => {
                if headers.contains_key(&a.name) {
                    headers.insert(a.name.clone(), a.value.clone());
                }
            }
        }
    }
}

pub fn apply_removes(headers: &mut HeaderMap, names: &[HeaderName]) {
    for n in names {
        headers.remove(n);
    }
}
