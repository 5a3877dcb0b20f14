//! `envoy.filters.http.set_filter_state`, as Envoy 1.40 does it, and the stream's filter
//! state it writes. Each value of `on_request_headers` is a text format rendered on the
//! request as the filter sees it (a missing operator is `-`, or empty with
//! `omit_empty_values`); an empty result is skipped when `skip_if_empty` says so, otherwise it
//! becomes the object of its key, replacing any object of that key (Envoy 1.40 replaces even
//! a read-only one). What reads the state is the route's `hash_policy.filter_state`: an
//! `envoy.hashable_string` object hashes as Envoy's `HashableStringObject` does (xxHash64 of
//! the string); an `envoy.string` one is not hashable, so it gives no key.

use crate::access_log::{Format, LogContext};
use crate::config::filters::SetFilterStateConfig;
use crate::upstream::xxh64::xxh64;

/// One object: a string made by one of the two generic factories.
#[derive(Debug, Clone, PartialEq)]
struct Object {
    key: Box<str>,
    value: Box<str>,
    hashable: bool,
}

/// The stream's filter state (only string objects exist in legate), in the order first set.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FilterState {
    objects: Vec<Object>,
}

impl FilterState {
    /// Sets object `key`, replacing any object of that key.
    pub(crate) fn set(&mut self, key: &str, value: String, hashable: bool) {
        let value = value.into_boxed_str();
        match self.objects.iter_mut().find(|o| &*o.key == key) {
            Some(o) => {
                o.value = value;
                o.hashable = hashable;
            }
            None => self.objects.push(Object { key: key.into(), value, hashable }),
        }
    }

    /// The string of object `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.objects.iter().find(|o| &*o.key == key).map(|o| &*o.value)
    }

    /// Envoy's `Hashable::hash()` of object `key`: `None` when there is none or it is not
    /// hashable (an `envoy.string`).
    pub fn hash(&self, key: &str) -> Option<u64> {
        self.objects.iter().find(|o| &*o.key == key && o.hashable).map(|o| xxh64(o.value.as_bytes(), 0))
    }
}

struct Value {
    key: Box<str>,
    hashable: bool,
    format: Format,
    omit_empty: bool,
    skip_if_empty: bool,
}

pub struct SetFilterState {
    values: Box<[Value]>,
}

impl SetFilterState {
    pub fn new(c: &SetFilterStateConfig) -> Self {
        let values = c
            .values
            .iter()
            // Each format was compiled when the configuration was validated.
            .filter_map(|v| {
                Some(Value {
                    key: v.key.as_str().into(),
                    hashable: v.hashable,
                    format: Format::parse(&v.format).ok()?,
                    omit_empty: v.omit_empty,
                    skip_if_empty: v.skip_if_empty,
                })
            })
            .collect();
        SetFilterState { values }
    }

    /// Sets the values in order, each rendered on `ctx`.
    pub fn decode(&self, ctx: &LogContext<'_>, state: &mut Option<Box<FilterState>>) {
        for v in self.values.iter() {
            let mut out = String::new();
            if v.omit_empty {
                v.format.render_header(ctx, &mut out);
            } else {
                v.format.render(ctx, &mut out);
            }
            if out.is_empty() && v.skip_if_empty {
                continue;
            }
            state.get_or_insert_with(Box::default).set(&v.key, out, v.hashable);
        }
    }
}

#[cfg(test)]
mod tests;
