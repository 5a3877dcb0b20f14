//! What the schema's errors add to help a newcomer: for an unknown field, the nearest field
//! name its message has ("did you mean `prefix_rewrite`?"); for an unknown enum name, the names
//! the field takes. Both come from Envoy's descriptors, following the error's path through
//! the document (an `Any` by its `@type`).

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::Value as Json;

use super::PathSeg;

/// Beyond this many names an enum's list is cut (`...`).
const MAX_LISTED: usize = 24;

/// `message` with its hint, when there is one.
pub(super) fn explain(root: &MessageDescriptor, json: &Json, segments: &[PathSeg], message: String) -> String {
    if message == "unknown field" {
        let Some((PathSeg::Key(key), parents)) = segments.split_last() else { return message };
        let Some(At::Message(m)) = walk(root, json, parents) else { return message };
        return match nearest(key, m.fields().map(|f| f.name().to_string())) {
            Some(name) => format!("unknown field (did you mean `{name}`?)"),
            None => message,
        };
    }
    if message.starts_with("unknown value") {
        if let Some(At::Value(f)) = walk(root, json, segments) {
            if let Kind::Enum(e) = f.kind() {
                let mut names: Vec<String> = e.values().take(MAX_LISTED).map(|v| v.name().to_string()).collect();
                if e.values().len() > MAX_LISTED {
                    names.push("...".to_string());
                }
                return format!("{message} (expected one of {})", names.join(", "));
            }
        }
    }
    message
}

/// Where a path leads in the schema.
enum At {
    /// A message.
    Message(MessageDescriptor),
    /// A repeated or map field, before its index or key.
    Container(FieldDescriptor),
    /// A single value of a field.
    Value(FieldDescriptor),
}

fn value_of(f: FieldDescriptor) -> At {
    match f.kind() {
        Kind::Message(m) => At::Message(m),
        _ => At::Value(f),
    }
}

/// Follows `segments` from `root`, with the JSON alongside (an `Any` names its message in
/// its `@type`).
fn walk(root: &MessageDescriptor, json: &Json, segments: &[PathSeg]) -> Option<At> {
    let mut at = At::Message(root.clone());
    let mut j = Some(json);
    for s in segments {
        at = match (at, s) {
            (At::Message(m), PathSeg::Key(k)) => {
                let m = if m.full_name() == "google.protobuf.Any" {
                    super::message(j?.get("@type")?.as_str()?)?
                } else {
                    m
                };
                let f = m.get_field_by_name(k).or_else(|| m.get_field_by_json_name(k))?;
                if f.is_list() || f.is_map() {
                    At::Container(f)
                } else {
                    value_of(f)
                }
            }
            (At::Container(f), PathSeg::Index(_)) if f.is_list() => value_of(f),
            (At::Container(f), PathSeg::Key(_)) if f.is_map() => {
                let Kind::Message(entry) = f.kind() else { return None };
                value_of(entry.map_entry_value_field())
            }
            _ => return None,
        };
        j = match s {
            PathSeg::Key(k) => j.and_then(|j| j.get(k.as_str())),
            PathSeg::Index(i) => j.and_then(|j| j.get(*i)),
        };
    }
    Some(at)
}

/// The name closest to `key` by edit distance, when close enough to be a slip.
fn nearest(key: &str, names: impl Iterator<Item = String>) -> Option<String> {
    // lowerCamelCase is how proto-JSON also spells a field: compare in snake case.
    let mut snake = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    let key = snake;
    let limit = 2.max(key.len() / 4);
    names.map(|n| (distance(&key, &n), n)).filter(|(d, _)| *d <= limit).min_by_key(|(d, _)| *d).map(|(_, n)| n)
}

/// Levenshtein distance over bytes (field names are ASCII).
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == cb { prev } else { 1 + prev.min(cur).min(row[j]) };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_name_within_a_slip() {
        let names = || ["prefix_rewrite", "regex_rewrite", "host_rewrite_literal"].into_iter().map(String::from);
        assert_eq!(nearest("prefix_rewirte", names()).as_deref(), Some("prefix_rewrite"));
        assert_eq!(nearest("prefixRewrit", names()).as_deref(), Some("prefix_rewrite"), "compared in snake case");
        assert_eq!(nearest("bogus_field", names()), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
