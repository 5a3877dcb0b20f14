//! What an authorization service decided, and how the decision changes the request (an
//! allowed one) or makes the client's answer (a denied one). The two services spell their
//! header changes differently; both come down to these few operations, applied as Envoy
//! applies them.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::StatusCode;

use crate::proxy::body::ResBody;

pub enum Decision {
    Allow(Allowed),
    Deny(Denied),
    /// The service could not be asked or did not answer a decision.
    Error,
}

/// An allowed request's changes.
#[derive(Default, Debug, PartialEq)]
pub struct Allowed {
    /// Set on the upstream request, replacing what the client sent.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Added to the upstream request as further lines (HTTP `allowed_upstream_headers_to_append`).
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Joined with a comma to a header the request has; nothing when it has none (gRPC
    /// `append: true`).
    pub append: Vec<(HeaderName, HeaderValue)>,
    /// Removed from the upstream request (never a pseudo-header or `host`).
    pub remove: Vec<HeaderName>,
    /// For the client's response.
    pub response: Vec<ResponseOp>,
}

/// How a header reaches the client's response of an allowed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Set,
    AddIfAbsent,
    OverwriteIfExists,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseOp {
    pub name: HeaderName,
    pub value: HeaderValue,
    pub action: Action,
}

/// A denial: the client gets this status, these headers and this body.
#[derive(Debug, PartialEq)]
pub struct Denied {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// What waits for the response side.
pub enum Reply {
    Denied(Denied),
    Success(Vec<ResponseOp>),
}

/// Sets each name's values, replacing what `h` had: the first value of a name replaces, the
/// next ones of the same name in `list` are added after it.
pub fn set_all(h: &mut HeaderMap, list: &[(HeaderName, HeaderValue)]) {
    for (i, (k, v)) in list.iter().enumerate() {
        if list[..i].iter().any(|(prev, _)| prev == k) {
            h.append(k.clone(), v.clone());
        } else {
            h.insert(k.clone(), v.clone());
        }
    }
}

impl Allowed {
    pub fn apply(&self, h: &mut HeaderMap) {
        set_all(h, &self.set);
        for (k, v) in &self.add {
            h.append(k.clone(), v.clone());
        }
        for (k, v) in &self.append {
            let Some(old) = h.get(k) else { continue };
            let mut joined = old.as_bytes().to_vec();
            joined.push(b',');
            joined.extend_from_slice(v.as_bytes());
            if let Ok(joined) = HeaderValue::from_bytes(&joined) {
                h.insert(k.clone(), joined);
            }
        }
        for k in &self.remove {
            h.remove(k);
        }
    }
}

/// The changes an allowing service asked for on the client's response, in Envoy's order:
/// the added ones, the set ones, then the conditional ones.
pub fn apply_response(ops: &[ResponseOp], h: &mut HeaderMap) {
    for action in [Action::Add, Action::Set, Action::AddIfAbsent, Action::OverwriteIfExists] {
        for op in ops.iter().filter(|o| o.action == action) {
            match action {
                Action::Add => {
                    h.append(op.name.clone(), op.value.clone());
                }
                Action::Set => {
                    h.insert(op.name.clone(), op.value.clone());
                }
                Action::AddIfAbsent if !h.contains_key(&op.name) => {
                    h.insert(op.name.clone(), op.value.clone());
                }
                Action::OverwriteIfExists if h.contains_key(&op.name) => {
                    h.insert(op.name.clone(), op.value.clone());
                }
                Action::AddIfAbsent | Action::OverwriteIfExists => {}
            }
        }
    }
}

impl Denied {
    /// Makes the local reply the denial: its body (`text/plain` unless the service's headers
    /// say otherwise), then the service's headers over the reply's.
    pub fn apply(&self, resp: &mut http::Response<ResBody>) {
        let h = resp.headers_mut();
        h.insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        if !self.body.is_empty() {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        let headers: Vec<_> = self.headers.iter().filter(|(k, _)| k != CONTENT_LENGTH).cloned().collect();
        set_all(h, &headers);
        *resp.body_mut() = ResBody::full(self.body.clone());
    }
}

/// Whether a header name is one the service may never change or remove on the request.
pub fn protected(name: &HeaderName) -> bool {
    name == http::header::HOST
}
