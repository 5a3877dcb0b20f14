//! Header additions and removals of a route, virtual host, weighted cluster or route
//! configuration, parsed into `HeaderName`s and values when the snapshot is built.
//!
//! A value is an Envoy format string (`%REQ(x-id)%`, `%UPSTREAM_CLUSTER%`, ...), compiled once
//! with the access log's operator parser; a value without an operator is a ready
//! `HeaderValue` and costs a request what a plain header always did. As in Envoy, each level
//! evaluates all its values against the headers as the level found them, then overwrites,
//! then appends; a value that formats empty is not added unless `keep_empty_value`.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::access_log::{Format, LogContext};
use crate::config::model::{AppendAction, HeaderOps, HeaderValueOption};

#[derive(Default, Clone)]
pub struct HeaderOpsRt {
    pub request_add: Vec<HeaderAdd>,
    pub request_remove: Vec<HeaderName>,
    pub response_add: Vec<HeaderAdd>,
    pub response_remove: Vec<HeaderName>,
    /// Some request / response value has an operator: the caller must give a context.
    pub request_formatted: bool,
    pub response_formatted: bool,
}

#[derive(Clone)]
pub struct HeaderAdd {
    pub name: HeaderName,
    pub value: HeaderText,
    pub action: AppendAction,
    pub keep_empty: bool,
}

/// A configured header value.
#[derive(Clone, Debug)]
pub enum HeaderText {
    Static(HeaderValue),
    Formatted(Box<Format>),
}

impl HeaderOpsRt {
    /// Fails on a name or value that is not a valid header or format (the config layer should
    /// have caught it; the message names the header).
    pub fn build(ops: &HeaderOps) -> Result<Self, String> {
        let request_add = adds(&ops.request_headers_to_add)?;
        let response_add = adds(&ops.response_headers_to_add)?;
        Ok(HeaderOpsRt {
            request_formatted: request_add.iter().any(HeaderAdd::formatted),
            response_formatted: response_add.iter().any(HeaderAdd::formatted),
            request_add,
            request_remove: names(&ops.request_headers_to_remove)?,
            response_add,
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

impl HeaderAdd {
    fn formatted(&self) -> bool {
        matches!(self.value, HeaderText::Formatted(_))
    }
}

/// Compiles one configured value: a format with operators, or the plain text it reads as.
pub fn header_text(value: &str) -> Result<HeaderText, String> {
    let format = Format::parse(value)?;
    match format.literal() {
        Some(text) => {
            HeaderValue::from_str(text).map(HeaderText::Static).map_err(|_| format!("invalid header value {value:?}"))
        }
        None => Ok(HeaderText::Formatted(Box::new(format))),
    }
}

fn adds(list: &[HeaderValueOption]) -> Result<Vec<HeaderAdd>, String> {
    list.iter()
        .map(|h| {
            let name =
                HeaderName::from_bytes(h.key.as_bytes()).map_err(|_| format!("invalid header name {:?}", h.key))?;
            let value = header_text(&h.value)?;
            Ok(HeaderAdd { name, value, action: h.action, keep_empty: h.keep_empty_value })
        })
        .collect()
}

fn names(list: &[String]) -> Result<Vec<HeaderName>, String> {
    list.iter()
        .map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("invalid header name {n:?}")))
        .collect()
}

/// Which map a level's formatted values are evaluated against, besides the one they are
/// added to: that one is the request's for request headers, the response's for response ones.
#[derive(Clone, Copy)]
pub enum Target {
    Request,
    Response,
}

/// Applies one level's additions. `ctx` is what formatted values read (the map being
/// changed is put in it); without one they are not added (no caller does that).
pub fn apply_adds(headers: &mut HeaderMap, adds: &[HeaderAdd], ctx: Option<&LogContext<'_>>, target: Target) {
    if adds.is_empty() {
        return;
    }
    // Formatted values first, all against the map as this level found it. Only a level with
    // formatted values allocates.
    let rendered: Vec<Option<HeaderValue>> = if adds.iter().any(HeaderAdd::formatted) {
        adds.iter().map(|a| render(a, headers, ctx, target)).collect()
    } else {
        Vec::new()
    };
    let value = |i: usize| -> Option<&HeaderValue> {
        match &adds[i].value {
            HeaderText::Static(v) => Some(v),
            HeaderText::Formatted(_) => rendered.get(i)?.as_ref(),
        }
    };
    let mut overwrite = Marks::new(adds.len());
    let mut append = Marks::new(adds.len());
    for (i, a) in adds.iter().enumerate() {
        let Some(v) = value(i) else { continue };
        if v.is_empty() && !a.keep_empty {
            continue;
        }
        match a.action {
            AppendAction::Append => append.set(i),
            AppendAction::AddIfAbsent => {
                if !headers.contains_key(&a.name) {
                    append.set(i);
                }
            }
            AppendAction::OverwriteIfExists => {
                if headers.contains_key(&a.name) {
                    overwrite.set(i);
                }
            }
            AppendAction::OverwriteOrAdd => overwrite.set(i),
        }
    }
    for (i, a) in adds.iter().enumerate() {
        if let Some(v) = value(i).filter(|_| overwrite.get(i)) {
            headers.insert(a.name.clone(), v.clone());
        }
    }
    for (i, a) in adds.iter().enumerate() {
        if let Some(v) = value(i).filter(|_| append.get(i)) {
            headers.append(a.name.clone(), v.clone());
        }
    }
}

fn render(a: &HeaderAdd, headers: &HeaderMap, ctx: Option<&LogContext<'_>>, target: Target) -> Option<HeaderValue> {
    let HeaderText::Formatted(format) = &a.value else { return None };
    let mut ctx = *ctx?;
    match target {
        Target::Request => ctx.request_headers = headers,
        Target::Response => ctx.response_headers = Some(headers),
    }
    let mut out = String::new();
    format.render_header(&ctx, &mut out);
    // What a request header carries can format into bytes no header may hold: Envoy would
    // send them; a header we cannot build is left out.
    HeaderValue::from_str(&out).ok()
}

/// Which additions of a level do what, decided before any is applied (one word up to 64).
enum Marks {
    Word(u64),
    Many(Vec<bool>),
}

impl Marks {
    fn new(len: usize) -> Self {
        if len <= 64 {
            Marks::Word(0)
        } else {
            Marks::Many(vec![false; len])
        }
    }

    fn set(&mut self, i: usize) {
        match self {
            Marks::Word(w) => *w |= 1 << i,
            Marks::Many(v) => v[i] = true,
        }
    }

    fn get(&self, i: usize) -> bool {
        match self {
            Marks::Word(w) => *w & (1 << i) != 0,
            Marks::Many(v) => v.get(i).copied().unwrap_or(false),
        }
    }
}

pub fn apply_removes(headers: &mut HeaderMap, names: &[HeaderName]) {
    for n in names {
        headers.remove(n);
    }
}

#[cfg(test)]
mod tests;
